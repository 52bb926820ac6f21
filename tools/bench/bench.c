/*
 * bench.c - the workloads of the t4dx benchmark (tools/bench), driven
 * against a directory (t4dx, nullfs, a plain ext4 directory) or a SQLite
 * database, printing one machine-readable line per run:
 *
 *     workload=write label=t4dx threads=16 ops=4000 errors=0 seconds=0.81
 *       ops_per_s=4938.3 p50_us=2900.1 p90_us=... p99_us=... max_us=...
 *
 * (one line; "ops" counts the operations timed, "errors" those that failed,
 * latencies are per operation).  run-bench.sh mounts, remounts, drops
 * caches and alternates rounds; this program only times.
 *
 *   bench write DIR -t THREADS -n PER_THREAD [-s SIZE] [--fsync] [-p PREFIX]
 *       each thread creates PER_THREAD items DIR/PREFIXnnnnnn (thread t
 *       numbers t * PER_THREAD ..) of SIZE bytes (default 1024) with open(O_CREAT|O_TRUNC)/write/close, and
 *       fdatasync before close with --fsync
 *   bench read-hot FILE -n COUNT [-m MAX_SECONDS]
 *       open/fstat/read to EOF/close of the same file, as cat does
 *   bench read-cold DIR -p PREFIX -N ITEMS -n COUNT [--seed S]
 *       the same for COUNT distinct items picked at random out of
 *       DIR/PREFIX000000 .. DIR/PREFIX(ITEMS-1) (six digits)
 *   bench ls DIR [--long]
 *       read the names (getdents), with --long lstat each in directory
 *       order (as ls -l does), then sort the names
 *   bench mountwait MNT [-m MAX_SECONDS]
 *       wait until MNT is a mount point with MNT/items in it
 *   bench run -- CMD [ARG...]
 *       time CMD (stdout to /dev/null)
 *   bench rewrite DIR -t THREADS -n TIMES -s SIZE -w WALDIR [-k PID -b BYTES]
 *       each thread rewrites its own file DIR/PREFIX-t TIMES times (open
 *       O_TRUNC, write SIZE random bytes in 1 MiB writes, close: one
 *       durable put each)
 *       while the main thread sums the sizes of the regular files in
 *       WALDIR (the live log, not its archive/ below) every 10 ms and
 *       keeps the peak; with -k, PID gets SIGKILL once that sum reaches
 *       BYTES (the writers then see errors and stop)
 * and, when built with SQLite (HAVE_SQLITE), on the table
 * items(name TEXT PRIMARY KEY, content BLOB) of a database in WAL mode:
 *   bench sqlite-write DB -t THREADS -n PER_THREAD [-s SIZE] [-p PREFIX]
 *       synchronous=FULL, one connection per thread, one autocommit
 *       INSERT OR REPLACE per item
 *   bench sqlite-populate DB -p PREFIX -N ITEMS [-s SIZE]
 *       ITEMS rows PREFIX000000.. in one transaction (setup, not a figure)
 *   bench sqlite-read-hot DB -p NAME -n COUNT [-m MAX_SECONDS]
 *   bench sqlite-read-cold DB -p PREFIX -N ITEMS -n COUNT [--seed S]
 *       SELECT content ... WHERE name = ? on a fresh connection
 *   bench sqlite-ls DB -p PREFIX [--long]
 *       SELECT name (with --long also length(content)) ORDER BY name
 *
 * Options common to all: -l LABEL names the system in the output line.
 * The exit status is 0 when the workload ran (even with errors counted),
 * 2 for a usage error, 1 when the harness itself failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_SQLITE
#include <sqlite3.h>
#endif

#define READ_BUF (128 * 1024)   /* what cat reads at a time */

struct opts {
	const char *label;
	const char *prefix;
	int threads;
	long count;
	long items;
	size_t size;
	bool fsync;
	bool lng;
	unsigned seed;
	double max_seconds;
	const char *wal_dir;            /* rewrite: the log directory */
	long kill_pid;                  /* rewrite: SIGKILL it at kill_bytes */
	unsigned long long kill_bytes;
};

/* ---- timing and results --------------------------------------------------- */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Latencies of one run, in microseconds. */
struct lat {
	double *v;
	size_t n, cap;
};

static int lat_add(struct lat *l, double us)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 1024;
		double *nv = realloc(l->v, ncap * sizeof(*nv));
		if (!nv)
			return ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = us;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const struct lat *l, double p)
{
	if (!l->n)
		return 0.0;
	size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
	return l->v[i];
}

/* Print the result line; sorts l. */
static void report(const char *workload, const struct opts *o, long ops,
		   long errors, double seconds, struct lat *l,
		   const char *extra)
{
	if (l && l->n)
		qsort(l->v, l->n, sizeof(double), cmp_double);
	printf("workload=%s label=%s", workload, o->label);
	if (o->threads)
		printf(" threads=%d", o->threads);
	printf(" ops=%ld errors=%ld seconds=%.6f ops_per_s=%.1f", ops, errors,
	       seconds, seconds > 0 ? (double)ops / seconds : 0.0);
	if (l && l->n)
		printf(" p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f",
		       pct(l, 0.50), pct(l, 0.90), pct(l, 0.99),
		       l->v[l->n - 1]);
	if (extra && *extra)
		printf(" %s", extra);
	printf("\n");
	fflush(stdout);
}

/* Remember the first error of a run for stderr, count all. */
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static long nerrors;

static void op_error(const char *what, const char *path, int err)
{
	pthread_mutex_lock(&err_mu);
	if (nerrors++ < 3)
		fprintf(stderr, "bench: %s %s: %s\n", what, path,
			strerror(err));
	pthread_mutex_unlock(&err_mu);
}

/* Words that content is made of: text of about the compressibility of
 * real notes (LZ4 gets about 2x out of it, as out of English prose), not
 * one phrase repeated, which a compressing store would shrink 20-fold. */
static const char *const words[] = {
	"the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as",
	"was", "with", "be", "by", "on", "not", "he", "this", "are", "or",
	"his", "from", "at", "which", "but", "have", "an", "had", "they",
	"you", "were", "their", "one", "all", "we", "can", "her", "has",
	"there", "been", "if", "more", "when", "will", "would", "who", "so",
	"no", "meeting", "agent", "prefers", "green", "tea", "project",
	"deadline", "Alice", "Bob", "cafe", "Tuesday", "report", "server",
	"latency", "database", "migrated", "kappa", "memory", "session",
	"observed", "user", "asked", "about", "configuration", "error",
	"retry", "succeeded", "after", "minutes", "budget", "approved",
};

/* Fill buf[0..size) with the content of item name: a first line naming
 * it, then words picked by a generator seeded with the name; ends in a
 * newline.  buf must hold size + 1 bytes. */
static void make_content(char *buf, size_t size, const char *name)
{
	uint64_t x = 1469598103934665603ULL;
	for (const char *p = name; *p; p++)
		x = (x ^ (unsigned char)*p) * 1099511628211ULL;
	int n = snprintf(buf, size + 1, "memory %s:", name);
	size_t pos = n > 0 && (size_t)n < size ? (size_t)n : size;
	while (pos < size) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		const char *w = words[x % (sizeof(words) / sizeof(words[0]))];
		buf[pos++] = (x >> 32) % 11 ? ' ' : '\n';
		for (; *w && pos < size; w++)
			buf[pos++] = *w;
	}
	buf[size - 1] = '\n';
	buf[size] = '\0';
}

/* ---- threads ------------------------------------------------------------- */

struct worker {
	const struct opts *o;
	const char *target;     /* DIR or DB */
	int id;
	pthread_barrier_t *start;
	struct lat lat;
	long done;
	int rc;                 /* harness failure */
	double t_start, t_end;  /* after the barrier, after the last op */
};

/* Wait for the common start; a worker times itself from there (the main
 * thread may be scheduled long after the barrier opens). */
static void worker_begin(struct worker *w)
{
	pthread_barrier_wait(w->start);
	w->t_start = now_s();
}

typedef void *(*worker_fn)(void *);

/* Run o->threads workers of fn; *seconds gets the wall time from the
 * first worker's start to the last worker's end; merges latencies into
 * all.  fn calls worker_begin() once and sets t_end when done. */
static int run_workers(const struct opts *o, const char *target,
		       worker_fn fn, struct lat *all, long *done,
		       double *seconds)
{
	int n = o->threads, rc = 0;
	struct worker *w = calloc((size_t)n, sizeof(*w));
	pthread_t *tid = calloc((size_t)n, sizeof(*tid));
	pthread_barrier_t start;
	if (!w || !tid) {
		free(w);
		free(tid);
		return ENOMEM;
	}
	pthread_barrier_init(&start, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){ .o = o, .target = target, .id = i,
					.start = &start };
		if (pthread_create(&tid[i], NULL, fn, &w[i])) {
			fprintf(stderr, "bench: cannot start thread %d\n", i);
			exit(1);
		}
	}
	pthread_barrier_wait(&start);
	for (int i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	double t0 = w[0].t_start, t1 = w[0].t_end;
	*done = 0;
	for (int i = 0; i < n; i++) {
		*done += w[i].done;
		if (w[i].t_start < t0)
			t0 = w[i].t_start;
		if (w[i].t_end > t1)
			t1 = w[i].t_end;
		for (size_t j = 0; !rc && j < w[i].lat.n; j++)
			rc = lat_add(all, w[i].lat.v[j]);
		if (!rc && w[i].rc)
			rc = w[i].rc;
		free(w[i].lat.v);
	}
	*seconds = t1 - t0;
	pthread_barrier_destroy(&start);
	free(w);
	free(tid);
	return rc;
}

/* ---- file workloads -------------------------------------------------------- */

/* Thread t's item i is PREFIX followed by t * PER_THREAD + i in six digits,
 * so that items 0 .. N-1 exist after N / THREADS each (read-cold). */
static void item_name(char *out, size_t len, const struct opts *o, int t,
		      long i)
{
	snprintf(out, len, "%s%06ld", o->prefix, (long)t * o->count + i);
}

/* One durable small write: 0 or an errno (counted by the caller). */
static int write_one(const char *path, const char *buf, size_t size,
		     bool sync)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	int rc = 0;
	for (size_t off = 0; off < size;) {
		ssize_t w = write(fd, buf + off, size - off);
		if (w < 0) {
			rc = errno;
			break;
		}
		off += (size_t)w;
	}
	if (!rc && sync && fdatasync(fd))
		rc = errno;
	/* on t4dx the close is the commit: its error is the write's */
	if (close(fd) && !rc)
		rc = errno;
	return rc;
}

static void *write_worker(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	char name[300], path[4096];
	char *buf = malloc(o->size + 1);
	worker_begin(w);
	if (!buf) {
		w->rc = ENOMEM;
		w->t_end = now_s();
		return NULL;
	}
	for (long i = 0; i < o->count; i++) {
		item_name(name, sizeof(name), o, w->id, i);
		snprintf(path, sizeof(path), "%s/%s", w->target, name);
		/* made before the clock starts */
		make_content(buf, o->size, name);
		double t0 = now_s();
		int rc = write_one(path, buf, o->size, o->fsync);
		double us = (now_s() - t0) * 1e6;
		if (rc)
			op_error("write", path, rc);
		else
			w->done++;
		if (lat_add(&w->lat, us)) {
			w->rc = ENOMEM;
			break;
		}
	}
	w->t_end = now_s();
	free(buf);
	return NULL;
}

static int cmd_write(const struct opts *o, const char *dir)
{
	struct lat all = { 0 };
	long done;
	double secs;
	int rc = run_workers(o, dir, write_worker, &all, &done, &secs);
	if (rc) {
		fprintf(stderr, "bench: write: %s\n", strerror(rc));
		return 1;
	}
	char extra[64];
	snprintf(extra, sizeof(extra), "size=%zu fsync=%d", o->size, o->fsync);
	report("write", o, done, nerrors, secs, &all, extra);
	free(all.v);
	return 0;
}

/* Read a file as cat does: 0 or an errno; *bytes gets its length. */
static int cat_one(const char *path, char *buf, size_t *bytes)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int rc = 0;
	struct stat st;
	size_t total = 0;
	if (fstat(fd, &st))
		rc = errno;
	while (!rc) {
		ssize_t r = read(fd, buf, READ_BUF);
		if (r < 0)
			rc = errno;
		else if (r == 0)
			break;
		else
			total += (size_t)r;
	}
	if (close(fd) && !rc)
		rc = errno;
	*bytes = total;
	return rc;
}

static int cmd_read_hot(const struct opts *o, const char *path)
{
	char *buf = malloc(READ_BUF);
	struct lat l = { 0 };
	size_t bytes = 0;
	long done = 0;
	if (!buf)
		return 1;
	/* warm up: the first reads fill the caches */
	for (int i = 0; i < 10; i++)
		if (cat_one(path, buf, &bytes) == ENOENT) {
			op_error("read", path, ENOENT);
			break;
		}
	double t0 = now_s(), t;
	for (long i = 0; i < o->count; i++) {
		double s = now_s();
		int rc = cat_one(path, buf, &bytes);
		t = now_s();
		if (rc)
			op_error("read", path, rc);
		else
			done++;
		if (lat_add(&l, (t - s) * 1e6))
			return 1;
		if (o->max_seconds > 0 && t - t0 > o->max_seconds && i >= 100)
			break;
	}
	double secs = now_s() - t0;
	char extra[64];
	snprintf(extra, sizeof(extra), "bytes=%zu", bytes);
	report("read-hot", o, done, nerrors, secs, &l, extra);
	free(l.v);
	free(buf);
	return 0;
}

/* COUNT distinct indexes out of ITEMS, picked by seed (caller frees). */
static long *pick(long items, long count, unsigned seed)
{
	long *ix = malloc((size_t)items * sizeof(*ix));
	if (!ix)
		return NULL;
	for (long i = 0; i < items; i++)
		ix[i] = i;
	uint64_t x = 0x9e3779b97f4a7c15ULL ^ seed;
	for (long i = 0; i < count && i < items - 1; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		long j = i + (long)(x % (uint64_t)(items - i));
		long tmp = ix[i];
		ix[i] = ix[j];
		ix[j] = tmp;
	}
	return ix;
}

static int cmd_read_cold(const struct opts *o, const char *dir)
{
	long count = o->count < o->items ? o->count : o->items;
	long *ix = pick(o->items, count, o->seed);
	char *buf = malloc(READ_BUF);
	struct lat l = { 0 };
	char path[4096];
	size_t bytes = 0, total = 0;
	long done = 0;
	if (!ix || !buf)
		return 1;
	double t0 = now_s();
	for (long i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/%s%06ld", dir, o->prefix,
			 ix[i]);
		double s = now_s();
		int rc = cat_one(path, buf, &bytes);
		if (lat_add(&l, (now_s() - s) * 1e6))
			return 1;
		if (rc) {
			op_error("read", path, rc);
		} else {
			done++;
			total += bytes;
		}
	}
	double secs = now_s() - t0;
	char extra[64];
	snprintf(extra, sizeof(extra), "items=%ld bytes=%zu", o->items, total);
	report("read-cold", o, done, nerrors, secs, &l, extra);
	free(l.v);
	free(buf);
	free(ix);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_ls(const struct opts *o, const char *dir)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	long errs = 0;
	double t0 = now_s();
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "bench: opendir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	int dfd = dirfd(d);
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' && (!de->d_name[1] ||
		    (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		if (o->lng) {
			struct stat st;
			if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW)) {
				op_error("stat", de->d_name, errno);
				errs++;
			}
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (!nn)
				return 1;
			names = nn;
		}
		if (!(names[n++] = strdup(de->d_name)))
			return 1;
		errno = 0;
	}
	if (errno) {
		op_error("readdir", dir, errno);
		errs++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	double secs = now_s() - t0;
	char extra[64];
	snprintf(extra, sizeof(extra), "items=%zu us_per_item=%.2f", n,
		 n ? secs * 1e6 / (double)n : 0.0);
	report(o->lng ? "ls-l" : "ls", o, (long)n, errs, secs, NULL, extra);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return 0;
}

static bool mount_ready(const char *mnt)
{
	char up[4096], items[4096];
	struct stat a, b, c;
	snprintf(up, sizeof(up), "%s/..", mnt);
	snprintf(items, sizeof(items), "%s/items", mnt);
	return !stat(mnt, &a) && !stat(up, &b) && a.st_dev != b.st_dev &&
	       !stat(items, &c) && S_ISDIR(c.st_mode);
}

static int cmd_mountwait(const struct opts *o, const char *mnt)
{
	double t0 = now_s(), limit = o->max_seconds > 0 ? o->max_seconds : 60;
	while (!mount_ready(mnt)) {
		if (now_s() - t0 > limit) {
			fprintf(stderr, "bench: %s not mounted after %.0f s\n",
				mnt, limit);
			return 1;
		}
		usleep(1000);
	}
	printf("workload=mountwait label=%s seconds=%.6f\n", o->label,
	       now_s() - t0);
	return 0;
}

/* COUNT files under dir, each written SIZE bytes (1 MiB a write) while
 * all of them stay open, then closed: the most memory open files' writes
 * can hold at once (limits.write_buffer_bytes bounds it). */
static int cmd_hold(const struct opts *o, const char *dir)
{
	size_t n = (size_t)o->count, chunk = 1u << 20;
	int *fds = calloc(n, sizeof(*fds));
	char *buf = malloc(chunk);
	if (!fds || !buf)
		return 1;
	memset(buf, 'h', chunk);
	size_t refused = 0;
	unsigned long long stored = 0;
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s-%zu", dir, o->prefix, i);
		fds[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fds[i] < 0) {
			fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	for (size_t i = 0; i < n; i++)
		for (size_t at = 0; at < o->size; at += chunk) {
			size_t k = o->size - at < chunk ? o->size - at : chunk;
			if (pwrite(fds[i], buf, k, (off_t)at) != (ssize_t)k) {
				refused++;      /* ENOSPC past the budget */
				break;
			}
			stored += k;
		}
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	printf("workload=hold label=%s files=%zu refused=%zu bytes=%llu\n",
	       o->label, n, refused, stored);
	free(fds);
	free(buf);
	return 0;
}

/* The bytes of the regular files directly in dir (not below). */
static unsigned long long dir_bytes(const char *dir)
{
	unsigned long long sum = 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			sum += (unsigned long long)st.st_size;
	}
	closedir(d);
	return sum;
}

struct rewriter {
	const struct opts *o;
	const char *dir;
	int t;
	long done, errors;
	volatile int *stop;
	int *ended;                     /* workers done; guarded by end_mu */
};

static pthread_mutex_t end_mu = PTHREAD_MUTEX_INITIALIZER;

static void *rewrite_worker(void *arg)
{
	struct rewriter *w = arg;
	size_t chunk = 1u << 20;
	char *buf = malloc(chunk), path[4096];
	if (!buf)
		return NULL;
	/* incompressible, like the photos and archives users copy: LZ4
	 * would shrink a repeated byte to nothing and hide the segment
	 * writes (xorshift64, a seed per thread) */
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(w->t + 1);
	for (size_t i = 0; i + 8 <= chunk; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	snprintf(path, sizeof(path), "%s/%s-%d", w->dir, w->o->prefix, w->t);
	for (long i = 0; i < w->o->count && !*w->stop; i++) {
		/* a different first byte each time: a real new version */
		buf[0] = (char)i;
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0644);
		bool ok = fd >= 0;
		for (size_t at = 0; ok && at < w->o->size; at += chunk) {
			size_t k = w->o->size - at < chunk ? w->o->size - at
							   : chunk;
			ok = pwrite(fd, buf, k, (off_t)at) == (ssize_t)k;
		}
		if (fd >= 0 && close(fd))
			ok = false;
		if (ok)
			w->done++;
		else if (++w->errors > 2)
			break;          /* the daemon is gone */
	}
	free(buf);
	pthread_mutex_lock(&end_mu);
	(*w->ended)++;
	pthread_mutex_unlock(&end_mu);
	return NULL;
}

static int cmd_rewrite(const struct opts *o, const char *dir)
{
	int n = o->threads;
	struct rewriter *w = calloc((size_t)n, sizeof(*w));
	pthread_t *th = calloc((size_t)n, sizeof(*th));
	volatile int stop = 0;
	int ended = 0;
	if (!w || !th || !o->wal_dir)
		return 1;
	double t0 = now_s();
	int started = 0;
	for (; started < n; started++) {
		w[started] = (struct rewriter){ .o = o, .dir = dir,
						.t = started, .stop = &stop,
						.ended = &ended };
		if (pthread_create(&th[started], NULL, rewrite_worker,
				   &w[started]))
			break;
	}
	unsigned long long peak = 0, at_kill = 0;
	bool killed = false;
	for (;;) {
		pthread_mutex_lock(&end_mu);
		bool running = ended < started;
		pthread_mutex_unlock(&end_mu);
		unsigned long long now = dir_bytes(o->wal_dir);
		if (now > peak)
			peak = now;
		if (o->kill_pid > 0 && !killed && now >= o->kill_bytes) {
			kill((pid_t)o->kill_pid, SIGKILL);
			killed = true;
			at_kill = now;
			stop = 1;
		}
		if (!running)
			break;
		usleep(10000);
	}
	long done = 0, errors = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		done += w[i].done;
		errors += w[i].errors;
	}
	printf("workload=rewrite label=%s threads=%d ops=%ld errors=%ld "
	       "seconds=%.3f size=%zu wal_peak=%llu killed=%d wal_at_kill=%llu\n",
	       o->label, n, done, errors, now_s() - t0, o->size, peak,
	       killed, at_kill);
	free(w);
	free(th);
	return started == n ? 0 : 1;
}

static int cmd_run(const struct opts *o, char **argv)
{
	double t0 = now_s();
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return 1;
	double secs = now_s() - t0;
	int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (status == 127)
		return 1;
	printf("workload=run label=%s ops=1 errors=%d seconds=%.6f "
	       "status=%d\n", o->label, status != 0, secs, status);
	return 0;
}

/* ---- SQLite ------------------------------------------------------------------ */

#ifdef HAVE_SQLITE
static sqlite3 *db_open(const char *path, bool full_sync)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
			    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		fprintf(stderr, "bench: sqlite open %s: %s\n", path,
			db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 60000);
	char *err = NULL;
	if (sqlite3_exec(db, full_sync ?
			 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;" :
			 "PRAGMA journal_mode=WAL;", NULL, NULL,
			 &err) != SQLITE_OK) {
		fprintf(stderr, "bench: sqlite pragma: %s\n", err);
		sqlite3_free(err);
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static int db_setup(const char *path)
{
	sqlite3 *db = db_open(path, true);
	char *err = NULL;
	if (!db)
		return 1;
	int rc = sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS items("
			      "name TEXT PRIMARY KEY, content BLOB)",
			      NULL, NULL, &err);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "bench: sqlite create: %s\n", err);
		sqlite3_free(err);
	}
	sqlite3_close(db);
	return rc != SQLITE_OK;
}

static const char insert_sql[] =
	"INSERT OR REPLACE INTO items(name, content) VALUES(?1, ?2)";

static void *sqlite_write_worker(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	sqlite3 *db = db_open(w->target, true);
	sqlite3_stmt *st = NULL;
	char name[300];
	char *buf = malloc(o->size + 1);
	if (!db || !buf ||
	    sqlite3_prepare_v2(db, insert_sql, -1, &st, NULL) != SQLITE_OK) {
		w->rc = EIO;
		worker_begin(w);
		goto out;
	}
	/* the connection is opened before the clock starts */
	worker_begin(w);
	for (long i = 0; i < o->count; i++) {
		item_name(name, sizeof(name), o, w->id, i);
		make_content(buf, o->size, name);
		double t0 = now_s();
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, buf, (int)o->size, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		double us = (now_s() - t0) * 1e6;
		if (rc != SQLITE_DONE) {
			pthread_mutex_lock(&err_mu);
			if (nerrors++ < 3)
				fprintf(stderr, "bench: sqlite insert %s: %s\n",
					name, sqlite3_errmsg(db));
			pthread_mutex_unlock(&err_mu);
		} else {
			w->done++;
		}
		if (lat_add(&w->lat, us)) {
			w->rc = ENOMEM;
			break;
		}
	}
out:
	w->t_end = now_s();
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(buf);
	return NULL;
}

static int cmd_sqlite_write(const struct opts *o, const char *path)
{
	struct lat all = { 0 };
	long done;
	double secs;
	if (db_setup(path))
		return 1;
	int rc = run_workers(o, path, sqlite_write_worker, &all, &done, &secs);
	if (rc) {
		fprintf(stderr, "bench: sqlite-write: %s\n", strerror(rc));
		return 1;
	}
	char extra[64];
	snprintf(extra, sizeof(extra), "size=%zu synchronous=FULL", o->size);
	report("write", o, done, nerrors, secs, &all, extra);
	free(all.v);
	return 0;
}

static int cmd_sqlite_populate(const struct opts *o, const char *path)
{
	if (db_setup(path))
		return 1;
	sqlite3 *db = db_open(path, true);
	sqlite3_stmt *st = NULL;
	char name[300];
	char *buf = malloc(o->size + 1);
	int rc = 1;
	double t0 = now_s();
	if (!db || !buf ||
	    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, insert_sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	for (long i = 0; i < o->items; i++) {
		snprintf(name, sizeof(name), "%s%06ld", o->prefix, i);
		make_content(buf, o->size, name);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, buf, (int)o->size, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
		sqlite3_reset(st);
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	rc = 0;
	report("populate", o, o->items, 0, now_s() - t0, NULL, NULL);
out:
	if (rc)
		fprintf(stderr, "bench: sqlite populate: %s\n",
			db ? sqlite3_errmsg(db) : "cannot open");
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(buf);
	return rc;
}

static const char select_sql[] = "SELECT content FROM items WHERE name = ?1";

/* One SELECT of name: 0, or 1 with the error counted. */
static int sqlite_get(sqlite3 *db, sqlite3_stmt *st, const char *name,
		      size_t *bytes)
{
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		*bytes = (size_t)sqlite3_column_bytes(st, 0);
		(void)p;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		pthread_mutex_lock(&err_mu);
		if (nerrors++ < 3)
			fprintf(stderr, "bench: sqlite select %s: %s\n", name,
				rc == SQLITE_DONE ? "no row" :
				sqlite3_errmsg(db));
		pthread_mutex_unlock(&err_mu);
		return 1;
	}
	return 0;
}

static int cmd_sqlite_read(const struct opts *o, const char *path, bool cold)
{
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	struct lat l = { 0 };
	char name[300];
	size_t bytes = 0, total = 0;
	long done = 0, count = o->count, *ix = NULL;
	double t0 = now_s();
	if (cold) {
		count = count < o->items ? count : o->items;
		if (!(ix = pick(o->items, count, o->seed)))
			return 1;
	}
	/* cold: the connection is opened inside the first timed read */
	double s = now_s();
	if (!(db = db_open(path, true)) ||
	    sqlite3_prepare_v2(db, select_sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench: sqlite prepare: %s\n",
			db ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return 1;
	}
	if (!cold)
		for (int i = 0; i < 10; i++)
			sqlite_get(db, st, o->prefix, &bytes);
	if (!cold)
		t0 = now_s();
	for (long i = 0; i < count; i++) {
		if (!cold || i)
			s = now_s();
		if (cold)
			snprintf(name, sizeof(name), "%s%06ld", o->prefix,
				 ix[i]);
		int rc = sqlite_get(db, st, cold ? name : o->prefix, &bytes);
		double t = now_s();
		if (lat_add(&l, (t - s) * 1e6))
			return 1;
		if (!rc) {
			done++;
			total += bytes;
		}
		if (!cold && o->max_seconds > 0 && t - t0 > o->max_seconds &&
		    i >= 100)
			break;
	}
	double secs = now_s() - t0;
	char extra[64];
	snprintf(extra, sizeof(extra), "bytes=%zu", cold ? total : bytes);
	report(cold ? "read-cold" : "read-hot", o, done, nerrors, secs, &l,
	       extra);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(l.v);
	free(ix);
	return 0;
}

static int cmd_sqlite_ls(const struct opts *o, const char *path)
{
	sqlite3 *db = db_open(path, true);
	sqlite3_stmt *st = NULL;
	char hi[300];
	long n = 0, bytes = 0;
	double t0 = now_s();
	snprintf(hi, sizeof(hi), "%s\xff", o->prefix);
	if (!db || sqlite3_prepare_v2(db, o->lng ?
			"SELECT name, length(content) FROM items WHERE "
			"name >= ?1 AND name < ?2 ORDER BY name" :
			"SELECT name FROM items WHERE name >= ?1 AND "
			"name < ?2 ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "bench: sqlite ls: %s\n",
			db ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return 1;
	}
	sqlite3_bind_text(st, 1, o->prefix, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		bytes += (long)strlen((const char *)sqlite3_column_text(st, 0));
		if (o->lng)
			bytes += sqlite3_column_int64(st, 1) > 0;
	}
	double secs = now_s() - t0;
	char extra[64];
	snprintf(extra, sizeof(extra), "items=%ld us_per_item=%.2f", n,
		 n ? secs * 1e6 / (double)n : 0.0);
	report(o->lng ? "ls-l" : "ls", o, n, rc != SQLITE_DONE, secs, NULL,
	       extra);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return 0;
}
#endif

/* ---- command line ------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench write DIR -t THREADS -n PER_THREAD [-s SIZE] "
		"[--fsync] [-p PREFIX]\n"
		"       bench read-hot FILE -n COUNT [-m MAX_SECONDS]\n"
		"       bench read-cold DIR -p PREFIX -N ITEMS -n COUNT "
		"[--seed S]\n"
		"       bench ls DIR [--long]\n"
		"       bench mountwait MNT [-m MAX_SECONDS]\n"
		"       bench hold DIR -n FILES -s SIZE [-p PREFIX]\n"
		"       bench run -- CMD [ARG...]\n"
		"       bench rewrite DIR -t THREADS -n TIMES -s SIZE -w WALDIR "
		"[-k PID -b BYTES]\n"
#ifdef HAVE_SQLITE
		"       bench sqlite-write DB -t THREADS -n PER_THREAD "
		"[-s SIZE] [-p PREFIX]\n"
		"       bench sqlite-populate DB -p PREFIX -N ITEMS [-s SIZE]\n"
		"       bench sqlite-read-hot DB -p NAME -n COUNT "
		"[-m MAX_SECONDS]\n"
		"       bench sqlite-read-cold DB -p PREFIX -N ITEMS -n COUNT "
		"[--seed S]\n"
		"       bench sqlite-ls DB -p PREFIX [--long]\n"
#endif
		"  every command takes -l LABEL (the system, for the output)\n");
}

int main(int argc, char **argv)
{
	struct opts o = { .label = "-", .prefix = "item", .threads = 0,
			  .count = 1000, .items = 5000, .size = 1024,
			  .seed = 1 };
	static const struct option lopts[] = {
		{ "fsync", no_argument, NULL, 'F' },
		{ "long", no_argument, NULL, 'L' },
		{ "seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	optind = 2;
	int c;
	bool threads_set = false;
	while ((c = getopt_long(argc, argv, "l:p:t:n:N:s:m:w:k:b:h", lopts,
				NULL)) != -1) {
		switch (c) {
		case 'l': o.label = optarg; break;
		case 'p': o.prefix = optarg; break;
		case 't': o.threads = atoi(optarg); threads_set = true; break;
		case 'n': o.count = atol(optarg); break;
		case 'N': o.items = atol(optarg); break;
		case 's': o.size = (size_t)atol(optarg); break;
		case 'm': o.max_seconds = atof(optarg); break;
		case 'w': o.wal_dir = optarg; break;
		case 'k': o.kill_pid = atol(optarg); break;
		case 'b': o.kill_bytes = strtoull(optarg, NULL, 10); break;
		case 'F': o.fsync = true; break;
		case 'L': o.lng = true; break;
		case 'S': o.seed = (unsigned)atol(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!strcmp(cmd, "run")) {
		/* getopt stopped at "--" */
		if (optind >= argc || strcmp(argv[optind - 1], "--")) {
			usage(stderr);
			return 2;
		}
		return cmd_run(&o, argv + optind);
	}
	if (optind != argc - 1 || (threads_set && o.threads < 1) ||
	    o.count < 1 || o.items < 1 || o.size < 32) {
		usage(stderr);
		return 2;
	}
	const char *target = argv[optind];
	bool threaded = !strcmp(cmd, "write") || !strcmp(cmd, "sqlite-write") ||
			!strcmp(cmd, "rewrite");
	if (threaded && !o.threads)
		o.threads = 1;
	if (!threaded)
		o.threads = 0;

	if (!strcmp(cmd, "write"))
		return cmd_write(&o, target);
	if (!strcmp(cmd, "read-hot"))
		return cmd_read_hot(&o, target);
	if (!strcmp(cmd, "read-cold"))
		return cmd_read_cold(&o, target);
	if (!strcmp(cmd, "ls"))
		return cmd_ls(&o, target);
	if (!strcmp(cmd, "mountwait"))
		return cmd_mountwait(&o, target);
	if (!strcmp(cmd, "hold"))
		return cmd_hold(&o, target);
	if (!strcmp(cmd, "rewrite"))
		return cmd_rewrite(&o, target);
#ifdef HAVE_SQLITE
	if (!strcmp(cmd, "sqlite-write"))
		return cmd_sqlite_write(&o, target);
	if (!strcmp(cmd, "sqlite-populate"))
		return cmd_sqlite_populate(&o, target);
	if (!strcmp(cmd, "sqlite-read-hot"))
		return cmd_sqlite_read(&o, target, false);
	if (!strcmp(cmd, "sqlite-read-cold"))
		return cmd_sqlite_read(&o, target, true);
	if (!strcmp(cmd, "sqlite-ls"))
		return cmd_sqlite_ls(&o, target);
#endif
	fprintf(stderr, "bench: unknown command %s\n", cmd);
	usage(stderr);
	return 2;
}
