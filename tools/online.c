/*
 * online.c - t4dx status and t4dx compact: a mounted store, through the
 * control files of MOUNT/.ctl/ (which are JSON, but for alerts: one
 * "TIME LEVEL text" line each); t4dx search, through MOUNT/search/;
 * t4dx sync, an fsync of MOUNT/items/.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "t4dx.h"
#include "tool.h"

/* MOUNT/.ctl/name parsed; NULL with *err set if it cannot be read or
 * does not parse. */
static struct json_object *ctl_json(const char *mount, const char *name,
				    int *err)
{
	char path[PATH_MAX], *text;
	snprintf(path, sizeof(path), "%s/.ctl/%s", mount, name);
	if ((*err = slurp(path, &text, NULL)))
		return NULL;
	struct json_object *o = json_tokener_parse(text);
	free(text);
	if (!o)
		*err = EBADMSG;
	return o;
}

/* Is mount a t4dx mount?  Its .ctl/health must be there and parse. */
static int check_mount(const struct command *c, const char *mount)
{
	char path[PATH_MAX];
	struct stat st;
	if (stat(mount, &st)) {
		/* a mount whose daemon died: a t4dx that is down */
		if (errno == ENOTCONN)
			return fail(c, EXIT_PROBLEMS, "%s: the daemon of this "
				    "mount is gone (%s); unmount it "
				    "(fusermount3 -u) and mount again", mount,
				    strerror(errno));
		return fail(c, EXIT_CANNOT, "%s: %s", mount, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return fail(c, EXIT_CANNOT, "%s: not a directory", mount);
	snprintf(path, sizeof(path), "%s/.ctl/health", mount);
	if (access(path, R_OK) && errno == ENOTCONN)
		return fail(c, EXIT_PROBLEMS, "%s: the daemon of this mount is "
			    "gone (%s); unmount it (fusermount3 -u) and mount "
			    "again", mount, strerror(ENOTCONN));
	if (access(path, R_OK))
		return fail(c, EXIT_CANNOT, "%s is not a t4dx mount (no "
			    ".ctl/health: %s)", mount, strerror(errno));
	return 0;
}

static struct json_object *get(struct json_object *o, const char *path)
{
	/* "a.b.c" */
	char key[64];
	while (o && *path) {
		size_t n = strcspn(path, ".");
		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		path += n;
		path += *path == '.';
	}
	return o;
}

static const char *str(struct json_object *o, const char *path)
{
	struct json_object *v = get(o, path);
	return v && json_object_is_type(v, json_type_string)
	       ? json_object_get_string(v) : "?";
}

static uint64_t num(struct json_object *o, const char *path)
{
	struct json_object *v = get(o, path);
	return v ? (uint64_t)json_object_get_int64(v) : 0;
}

static double dbl(struct json_object *o, const char *path)
{
	struct json_object *v = get(o, path);
	return v ? json_object_get_double(v) : 0;
}

/* ---- sync -------------------------------------------------------------- */

/* The kernel sends no syncfs to a FUSE mount (only to virtiofs), so
 * `sync -f MOUNT` cannot wait for what t4dxfs holds; an fsync of items/,
 * the root of the tree, waits for every change made so far (fs/file.c,
 * sync_ino). */
int cmd_sync(const struct command *c, int argc, char **argv)
{
	struct opts o;
	char path[PATH_MAX];
	int rc = parse_opts(c, "", &argc, argv, &o);
	if (rc)
		return rc;
	if (argc != 1)
		return usage_error(c, "expected MOUNT");
	const char *mount = argv[0];
	if ((rc = check_mount(c, mount)))
		return rc;
	snprintf(path, sizeof(path), "%s/items", mount);
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fail(c, EXIT_CANNOT, "%s: %s", path, strerror(errno));
	rc = fsync(fd) ? errno : 0;
	close(fd);
	if (rc)
		return fail(c, EXIT_PROBLEMS, "%s: changes are not durable: %s "
			    "(see t4dx status)", mount, strerror(rc));
	return 0;
}

/* ---- status ------------------------------------------------------------ */

static void print_check(struct json_object *h, const char *name)
{
	char k[64];
	snprintf(k, sizeof(k), "checks.%s", name);
	struct json_object *c = get(h, k);
	if (!c) {
		printf(" %s ?", name);
		return;
	}
	bool ok = json_object_get_boolean(get(c, "ok"));
	printf("  %s %s", name, ok ? "ok" : "FAILING");
	if (!ok)
		printf(" (%s, %llu in a row)", str(c, "error"),
		       (unsigned long long)num(c, "consecutive_failures"));
	printf(", %llu runs", (unsigned long long)num(c, "runs"));
}

static void print_compaction(struct json_object *cp, const char *kind,
			     bool first)
{
	char t[32];
	struct json_object *k = get(cp, kind);
	printf("%-11s%-6s ", first ? "compaction" : "", kind);
	struct json_object *last = get(k, "last");
	if (!last || json_object_is_type(last, json_type_null)) {
		printf("never run\n");
		return;
	}
	printf("%llu runs; last %s, %.2f s, %s, %llu -> %llu items\n",
	       (unsigned long long)num(k, "runs"),
	       human_time((int64_t)num(last, "start_ns"), t, sizeof(t)),
	       dbl(last, "duration_s"), str(last, "result"),
	       (unsigned long long)num(last, "items_in"),
	       (unsigned long long)num(last, "items_out"));
}

int cmd_status(const struct command *c, int argc, char **argv)
{
	struct opts o;
	int rc = parse_opts(c, "json", &argc, argv, &o);
	if (rc)
		return rc;
	if (argc != 1)
		return usage_error(c, "expected MOUNT");
	const char *mount = argv[0];
	if ((rc = check_mount(c, mount)))
		return rc;
	static const char *const files[] = { "health", "breaker", "stats",
					     "compact" };
	struct json_object *f[4] = { 0 };
	for (int i = 0; i < 4; i++) {
		int err;
		f[i] = ctl_json(mount, files[i], &err);
		if (!f[i]) {
			rc = fail(c, EXIT_CANNOT, "%s/.ctl/%s: %s", mount,
				  files[i], strerror(err));
			goto out;
		}
	}
	char *alerts = NULL, path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/.ctl/alerts", mount);
	if (slurp(path, &alerts, NULL))
		alerts = NULL;
	struct json_object *h = f[0], *b = f[1], *st = f[2], *cp = f[3];
	/* a copy: --json hands the parsed files over to its output */
	char status[32];
	snprintf(status, sizeof(status), "%s", str(h, "status"));
	if (o.json) {
		struct json_object *all = json_object_new_object();
		struct json_object *al = json_object_new_array();
		json_object_object_add(all, "mount",
				       json_object_new_string(mount));
		for (int i = 0; i < 4; i++) {
			json_object_object_add(all, files[i], f[i]);
			f[i] = NULL;
		}
		for (char *p = alerts, *nl; p && *p; p = nl + 1) {
			if (!(nl = strchr(p, '\n')))
				nl = p + strlen(p) - 1;
			json_object_array_add(al, json_object_new_string_len(p,
						(int)(nl - p + (*nl != '\n'))));
		}
		json_object_object_add(all, "alerts", al);
		rc = print_json(all);
		json_object_put(all);
	} else {
		char a[32], bb[32], cc[32];
		printf("t4dx at %s: %s\n", mount, status);
		printf("%-11slevel %llu (%s), breaker %s%s\n", "state",
		       (unsigned long long)num(h, "level"), str(h, "mode"),
		       str(b, "state"),
		       get(h, "fatal") && json_object_get_boolean(get(h,
			       "fatal")) ? ", FATAL: changes refused until a "
			       "restart" : "");
		printf("%-11s", "health");
		print_check(h, "wal");
		print_check(h, "segments");
		struct json_object *v = get(h, "vectors");
		if (v) {
			printf("\n%-11s%s", "vectors", str(v, "embedder"));
			if (!strcmp(str(v, "program"), "failing"))
				printf(", program FAILING (%s)", str(v, "error"));
			if (num(v, "index_files_unusable"))
				printf(", %llu index files unusable (those "
				       "segments are read whole)",
				       (unsigned long long)num(v,
					       "index_files_unusable"));
			if (json_object_get_boolean(get(v, "ok")))
				printf(" ok");
		}
		/* the embedder's vectors wait in the same queue, but are
		 * nobody's change: counted apart, as health does */
		printf("\n%-11s%llu records waiting (and %llu vectors of the "
		       "embedder), %llu changes not yet durable\n", "queue",
		       (unsigned long long)num(h, "queue_depth"),
		       (unsigned long long)num(h, "queue_vectors"),
		       (unsigned long long)num(h, "unpersisted"));
		printf("%-11s%llu items; %llu segments, %s; memtable %llu "
		       "entries\n", "store",
		       (unsigned long long)num(st, "items"),
		       (unsigned long long)num(st, "segments"),
		       human_bytes(num(st, "segment_bytes"), a, sizeof(a)),
		       (unsigned long long)num(st, "memtable_items"));
		printf("%-11s%s live, %s archived, last LSN %llu\n", "wal",
		       human_bytes(num(st, "wal_bytes"), bb, sizeof(bb)),
		       human_bytes(num(st, "archive_bytes"), cc, sizeof(cc)),
		       (unsigned long long)num(st, "wal_lsn"));
		/* the directory and the problem come from the
		 * configuration: print them so that no control character
		 * in them reaches the terminal */
		const char *rd = str(h, "rescue.dir");
		const char *rp = str(h, "rescue.problem");
		printf("%-11s", "rescue");
		if (*rd)
			print_escaped(stdout, rd, strlen(rd), false);
		else
			fputs("(none)", stdout);
		if (!json_object_get_boolean(get(h, "rescue.ok"))) {
			fputs(": ", stdout);
			print_escaped(stdout, rp, strlen(rp), false);
		}
		putchar('\n');
		const char *running = str(cp, "running");
		if (strcmp(running, "?"))
			printf("%-11s%s running: %llu of %llu\n", "compaction",
			       running,
			       (unsigned long long)num(cp, "progress.done"),
			       (unsigned long long)num(cp, "progress.total"));
		print_compaction(cp, "flush", !strcmp(running, "?"));
		print_compaction(cp, "nrem", false);
		print_compaction(cp, "prune", false);
		/* the last five alerts */
		char *ring[5];
		unsigned n = 0;
		for (char *p = alerts; p && *p;) {
			char *e = strchr(p, '\n');
			ring[n++ % 5] = p;
			if (!e)
				break;
			*e = 0;
			p = e + 1;
		}
		printf("%-11s%s", "alerts", n ? "" : "none\n");
		for (unsigned i = n > 5 ? n - 5 : 0; i < n; i++) {
			fputs(i == (n > 5 ? n - 5 : 0) ? "" : "           ",
			      stdout);
			print_escaped(stdout, ring[i % 5], strlen(ring[i % 5]),
				      false);
			putchar('\n');
		}
	}
	free(alerts);
	if (!rc && strcmp(status, "ok"))
		rc = EXIT_PROBLEMS;
out:
	for (int i = 0; i < 4; i++)
		json_object_put(f[i]);
	return rc;
}

/* ---- compact ----------------------------------------------------------- */

struct run {
	char path[PATH_MAX];
	const char *kind;
	atomic_int done;
	int err;
	pthread_mutex_t mu;
	pthread_cond_t cond;
};

/* The write returns when the run has ended. */
static void *run_compaction(void *arg)
{
	struct run *r = arg;
	int err = 0;
	int fd = open(r->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		err = errno;
	else {
		ssize_t n = write(fd, r->kind, strlen(r->kind));
		if (n < 0)
			err = errno;
		if (close(fd) && !err)
			err = errno;
	}
	pthread_mutex_lock(&r->mu);
	r->err = err;
	atomic_store(&r->done, 1);
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int cmd_compact(const struct command *c, int argc, char **argv)
{
	struct opts o;
	int rc = parse_opts(c, "json,progress", &argc, argv, &o);
	if (rc)
		return rc;
	if (argc != 2)
		return usage_error(c, "expected MOUNT and a kind");
	const char *mount = argv[0], *kind = argv[1];
	if (t4dx_compact_parse(kind, strlen(kind)) < 0)
		return usage_error(c, "unknown kind '%s' (flush, nrem, prune "
				   "or rem)", kind);
	if ((rc = check_mount(c, mount)))
		return rc;

	/* the runs of this kind so far: the one that ends next is ours
	 * unless another (the daemon's own, say) ends first */
	int err0;
	struct json_object *before = ctl_json(mount, "compact", &err0);
	char key[32];
	snprintf(key, sizeof(key), "%s.runs", kind);
	uint64_t runs0 = before ? num(before, key) : 0;
	json_object_put(before);
	struct run r = { .kind = kind };
	snprintf(r.path, sizeof(r.path), "%s/.ctl/compact", mount);
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cond, NULL);
	pthread_t t;
	if ((rc = pthread_create(&t, NULL, run_compaction, &r)))
		return fail(c, EXIT_CANNOT, "cannot start: %s", strerror(rc));
	bool show = want_progress(&o);
	char what[64];
	snprintf(what, sizeof(what), "%s", kind);
	pthread_mutex_lock(&r.mu);
	while (!atomic_load(&r.done)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&r.cond, &r.mu, &ts);
		if (!show || atomic_load(&r.done))
			continue;
		pthread_mutex_unlock(&r.mu);
		int err;
		struct json_object *cp = ctl_json(mount, "compact", &err);
		if (cp && !strcmp(str(cp, "running"), kind))
			progress_line(what, num(cp, "progress.done"),
				      num(cp, "progress.total"), false, false);
		json_object_put(cp);
		pthread_mutex_lock(&r.mu);
	}
	pthread_mutex_unlock(&r.mu);
	pthread_join(t, NULL);
	if (show)
		progress_line(what, 0, 0, false, true);

	int err;
	struct json_object *cp = ctl_json(mount, "compact", &err);
	struct json_object *last = cp && !r.err ? get(get(cp, kind), "last")
					       : NULL;
	if (o.json) {
		struct json_object *out = json_object_new_object();
		json_object_object_add(out, "kind",
				       json_object_new_string(kind));
		json_object_object_add(out, "result", json_object_new_string(
			r.err ? strerror(r.err) : "ok"));
		json_object_object_add(out, "last", json_object_get(last));
		int prc = print_json(out);
		json_object_put(out);
		if (prc) {
			json_object_put(cp);
			return prc;
		}
	}
	if (r.err == EBUSY || r.err == EOPNOTSUPP || r.err == EROFS)
		json_object_put(cp);
	if (r.err == EBUSY)
		return fail(c, EXIT_PROBLEMS, "another compaction is running; "
			    "try again when it has ended");
	if (r.err == EOPNOTSUPP)
		return fail(c, EXIT_PROBLEMS, "%s is not available yet (it needs "
			    "vectors)", kind);
	if (r.err == EROFS)
		return fail(c, EXIT_PROBLEMS, "the store is degraded and does "
			    "not write its data directory now (t4dx status %s)",
			    mount);
	if (!o.json && !r.err && last && cp && num(cp, key) != runs0 + 1)
		printf("(another %s run ended meanwhile; the last one is "
		       "shown)\n", kind);
	if (!o.json && !r.err && last) {
		char a[32], b[32];
		printf("%s: ok in %.2f s: %llu -> %llu items, %s -> %s\n", kind,
		       dbl(last, "duration_s"),
		       (unsigned long long)num(last, "items_in"),
		       (unsigned long long)num(last, "items_out"),
		       human_bytes(num(last, "bytes_in"), a, sizeof(a)),
		       human_bytes(num(last, "bytes_out"), b, sizeof(b)));
	}
	json_object_put(cp);
	if (r.err)
		return fail(c, EXIT_PROBLEMS, "%s failed: %s", kind,
			    strerror(r.err));
	return 0;
}

/* ---- search --------------------------------------------------------------
 * A query directory of the mount (MOUNT/search/TEXT?k=N, see fs/search.c)
 * read through its results.json. */

/* Take "-k N" (or -kN) out of argv: 0, or 2 after a usage message. */
static int take_k(const struct command *c, int *argc, char **argv,
		  unsigned long *k)
{
	int n = 0;
	bool ended = false;
	for (int i = 0; i < *argc; i++) {
		const char *a = argv[i], *v = NULL;
		if (!ended && !strcmp(a, "--"))
			ended = true;
		if (ended || strncmp(a, "-k", 2)) {
			argv[n++] = argv[i];
			continue;
		}
		v = a[2] ? a + 2 : i + 1 < *argc ? argv[++i] : NULL;
		char *end;
		errno = 0;
		*k = v ? strtoul(v, &end, 10) : 0;
		if (!v || !*v || *end || errno || *k < 1 ||
		    *k > T4DX_SEARCH_K_MAX)
			return usage_error(c, "-k takes a number from 1 to %d",
					   T4DX_SEARCH_K_MAX);
	}
	*argc = n;
	return 0;
}

/* The first line of the item at MOUNT/items/path, escaped, at most
 * width bytes of it. */
static void print_first_line(const char *mount, const char *path)
{
	char p[PATH_MAX], line[160];
	snprintf(p, sizeof(p), "%s/items/%s", mount, path);
	int fd = open(p, O_RDONLY | O_NOFOLLOW);
	ssize_t n = fd < 0 ? -1 : read(fd, line, sizeof(line));
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	size_t len = strcspn(line, "\n");
	if (len > (size_t)n)
		len = (size_t)n;
	/* a cut character would print as \x.. bytes: end before it */
	if (len == sizeof(line))
		while (len && ((unsigned char)line[len] & 0xc0) == 0x80)
			len--;
	fputs("  ", stdout);
	print_escaped(stdout, line, len, false);
}

int cmd_search(const struct command *c, int argc, char **argv)
{
	struct opts o;
	unsigned long k = 10;
	int rc = take_k(c, &argc, argv, &k);
	if (!rc)
		rc = parse_opts(c, "json", &argc, argv, &o);
	if (rc)
		return rc;
	if (argc != 2)
		return usage_error(c, "expected MOUNT and TEXT");
	const char *mount = argv[0];
	if ((rc = check_mount(c, mount)))
		return rc;
	/* '/' cannot be in a name and '?' starts the options: both are
	 * spaces to the embedder anyway */
	char q[T4DX_NAME_MAX + 1], path[PATH_MAX];
	int n = snprintf(q, sizeof(q), "%s?k=%lu", argv[1], k);
	if (n < 0 || (size_t)n >= sizeof(q))
		return fail(c, EXIT_CANNOT, "the text is too long: a query "
			    "holds at most %d bytes with its options",
			    T4DX_NAME_MAX);
	for (char *p = q; *p && p < q + strlen(argv[1]); p++)
		if (*p == '/' || *p == '?')
			*p = ' ';
	/* '@' and 32 hex digits is an id; any other '@' starts a text (a
	 * mention), which search/ would refuse as a bad id */
	bool id = argv[1][0] == '@' && strlen(argv[1]) == 33 &&
		  strspn(argv[1] + 1, "0123456789abcdefABCDEF") == 32;
	if (argv[1][0] == '@' && !id)
		q[0] = ' ';             /* text, not an id */
	snprintf(path, sizeof(path), "%s/search/%s/results.json", mount, q);
	char *text;
	int err = slurp(path, &text, NULL);
	if (err == ENOENT && q[0] == '@')
		return fail(c, EXIT_PROBLEMS, "no item has the id %.32s",
			    q + 1);
	if (err)
		return fail(c, EXIT_PROBLEMS, "%s: %s", path, strerror(err));
	struct json_object *r = json_tokener_parse(text), *v = NULL;
	free(text);
	if (!r || !json_object_object_get_ex(r, "results", &v) ||
	    !json_object_is_type(v, json_type_array)) {
		json_object_put(r);
		return fail(c, EXIT_PROBLEMS, "%s: not a search answer", path);
	}
	if (o.json) {
		rc = print_json(r);
		json_object_put(r);
		return rc;
	}
	if (json_object_get_boolean(get(r, "partial")))
		fputs("(partial: the store is degraded, only what it could "
		      "read was searched)\n", stdout);
	struct json_object *pend = get(r, "pending");
	if (pend && json_object_get_uint64(pend))
		printf("(pending: %" PRIu64 " files closed before the search "
		       "had no vector yet and may be missing)\n",
		       json_object_get_uint64(pend));
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *h = json_object_array_get_idx(v, i);
		const char *p = str(h, "path");
		/* a path that is not UTF-8 comes in base64 */
		char raw[PATH_MAX];
		struct json_object *b = get(h, "path_b64");
		size_t blen = b ? (size_t)json_object_get_string_len(b) : 0, rn;
		if (b && blen / 4 * 3 < sizeof(raw) &&
		    !t4dx_base64_decode(json_object_get_string(b), blen,
					(unsigned char *)raw, &rn) &&
		    !memchr(raw, 0, rn)) {
			raw[rn] = 0;
			p = raw;
		}
		printf("%2d  %.3f  ", json_object_get_int(get(h, "rank")),
		       json_object_get_double(get(h, "score")));
		print_escaped(stdout, p, strlen(p), true);
		print_first_line(mount, p);
		putchar('\n');
	}
	json_object_put(r);
	return fflush(stdout) ? EXIT_CANNOT : 0;
}
