/*
 * offline.c - t4dx verify, ls and dump: a data directory read straight
 * from disk, with no daemon, changing nothing (t4dx_verify and a
 * read-only t4dx_open_flags).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <json-c/json.h>

#include "t4dx.h"
#include "tool.h"

/* ---- verify ------------------------------------------------------------ */

struct vstate {
	bool json, progress;
	struct json_object *problems, *notes;
};

static void on_finding(void *arg, bool damage, const char *file,
		       int64_t offset, const char *what)
{
	struct vstate *v = arg;
	if (v->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "file", json_object_new_string(file));
		json_object_object_add(o, "offset", offset < 0 ? NULL :
				       json_object_new_int64(offset));
		json_object_object_add(o, "what", json_object_new_string(what));
		json_object_array_add(damage ? v->problems : v->notes, o);
		return;
	}
	if (v->progress)
		progress_line("verify", 0, 0, true, true);
	if (offset >= 0)
		printf("%s%s: offset %lld: %s\n", damage ? "" : "note: ", file,
		       (long long)offset, what);
	else
		printf("%s%s: %s\n", damage ? "" : "note: ", file, what);
	fflush(stdout);
}

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct vstate *v = arg;
	if (v->progress && done < total)
		progress_line("verify", done, total, true, false);
}

/* Why a store cannot be read, as the exit code and message of c. */
static int cannot(const struct command *c, int rc, const char *msg)
{
	if (rc == T4DX_ELOCKED)
		return fail(c, EXIT_CANNOT, "%s; stop it, read through its "
			    "mount, or pass --force-readonly", msg);
	return fail(c, EXIT_CANNOT, "%s", *msg ? msg : t4dx_strerror(rc));
}

int cmd_verify(const struct command *c, int argc, char **argv)
{
	struct opts o;
	int rc = parse_opts(c, "json,force-readonly,progress", &argc, argv,
			    &o);
	if (rc)
		return rc;
	if (argc != 1)
		return usage_error(c, "expected DATA_DIR");
	struct vstate v = { .json = o.json, .progress = want_progress(&o) };
	if (o.json) {
		v.problems = json_object_new_array();
		v.notes = json_object_new_array();
	}
	struct t4dx_verify_report rep;
	char msg[PATH_MAX + 200];
	rc = t4dx_verify(argv[0], o.force_readonly ? T4DX_OPEN_NOLOCK : 0,
			 on_finding, on_progress, &v, &rep, msg, sizeof(msg));
	if (v.progress)
		progress_line("verify", 0, 0, true, true);
	if (rc) {
		json_object_put(v.problems);
		json_object_put(v.notes);
		return cannot(c, rc, msg);
	}
	if (o.json) {
		struct json_object *r = json_object_new_object();
		json_object_object_add(r, "data_dir",
				       json_object_new_string(argv[0]));
		json_object_object_add(r, "ok",
				       json_object_new_boolean(!rep.problems));
		json_object_object_add(r, "problems", v.problems);
		json_object_object_add(r, "notes", v.notes);
		json_object_object_add(r, "manifest_ok",
				       json_object_new_boolean(rep.manifest_ok));
#define NUM(f) json_object_object_add(r, #f, \
				      json_object_new_int64((int64_t)rep.f))
		NUM(segments);
		NUM(segment_blocks);
		NUM(items);
		NUM(index_files);
		NUM(wal_records);
		NUM(wal_last_lsn);
		NUM(flushed_lsn);
		NUM(rescue_files);
		NUM(rescue_records);
		NUM(bytes_total);
#undef NUM
		int prc = print_json(r);
		json_object_put(r);
		if (prc)
			return prc;
	} else {
		char b[32];
		printf("%s: %llu segments (%llu blocks, %llu entries, %llu "
		       "index files), %llu WAL records up to LSN %llu, %llu "
		       "rescue files; %s read: %s\n", argv[0],
		       (unsigned long long)rep.segments,
		       (unsigned long long)rep.segment_blocks,
		       (unsigned long long)rep.items,
		       (unsigned long long)rep.index_files,
		       (unsigned long long)rep.wal_records,
		       (unsigned long long)rep.wal_last_lsn,
		       (unsigned long long)rep.rescue_files,
		       human_bytes(rep.bytes_total, b, sizeof(b)),
		       rep.problems ? "DAMAGED" : "no damage");
	}
	return rep.problems ? EXIT_PROBLEMS : 0;
}

/* ---- ls and dump ------------------------------------------------------- */

static int open_store(const struct command *c, const char *dir,
		      const struct opts *o, struct t4dx **db)
{
	char msg[PATH_MAX + 200];
	unsigned flags = T4DX_OPEN_READONLY |
			 (o->force_readonly ? T4DX_OPEN_NOLOCK : 0);
	struct t4dx_open_args a = { .flags = flags };
	int rc = t4dx_open_args(dir, &a, db, msg, sizeof(msg));
	return rc ? cannot(c, rc, msg) : 0;
}

/* What the read-only open found wrong, as one warning line: 1 if
 * anything (what is shown may then be incomplete), else 0. */
static int warn_damage(const struct command *c, struct t4dx *db,
		       const char *dir)
{
	struct t4dx_stats st;
	char what[512] = "";
	size_t n = 0;
	t4dx_get_stats(db, &st);
	const struct t4dx_recovery *r = &st.recovery;
	if (r->segments_damaged)
		n += (size_t)snprintf(what + n, sizeof(what) - n, "; %llu "
			"damaged segment(s) rebuilt from the WAL",
			(unsigned long long)r->segments_damaged);
	if (r->rebuild_missing_before && n < sizeof(what))
		n += (size_t)snprintf(what + n, sizeof(what) - n, "; the WAL "
			"archive begins at record %llu, so older items of "
			"them are lost",
			(unsigned long long)r->rebuild_missing_before);
	if (r->bytes_dropped && n < sizeof(what))
		n += (size_t)snprintf(what + n, sizeof(what) - n, "; %llu "
			"damaged WAL bytes not read",
			(unsigned long long)r->bytes_dropped);
	if (r->wal_gap_to && n < sizeof(what))
		n += (size_t)snprintf(what + n, sizeof(what) - n, "; WAL "
			"records %llu to %llu are missing",
			(unsigned long long)r->wal_gap_from,
			(unsigned long long)r->wal_gap_to);
	if (!n)
		return 0;
	fail(c, EXIT_PROBLEMS, "warning: %s is damaged%s; what is shown may "
	     "be incomplete (t4dx verify %s says more)", dir, what, dir);
	return EXIT_PROBLEMS;
}

/* A name on one line: see print_escaped. */
static void print_name(const char *name, size_t len)
{
	print_escaped(stdout, name, len, true);
}

/* What to add to "no such item": a path is taken inside items/ (the
 * store knows nothing of the mount's other directories), so one that
 * starts with "items" most likely repeats it; said only then, since a
 * namespace may well be called items. */
static const char *not_found_hint(const char *path)
{
	path += strspn(path, "/");
	if (!strncmp(path, "items", 5) && (!path[5] || path[5] == '/'))
		return " (a path is taken inside items/: leave out the "
		       "leading \"items/\")";
	return " (a path is taken inside items/)";
}

/* Walk path (under items/; "" or "/" is its top) to its entry.  0, or
 * T4DX_ENOTFOUND / ENOTDIR / an error. */
#define DEPTH_MAX 4096

static void set_root(struct t4dx_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = T4DX_ROOT_INO;
	e->mode = S_IFDIR | 0755;
}

static int resolve(struct t4dx *db, const char *path, struct t4dx_entry *e)
{
	/* the entries walked through, for ".." (the top's parent is the
	 * top, as for "/..") */
	static struct t4dx_entry at[DEPTH_MAX];
	size_t depth = 0;
	set_root(e);
	while (*path) {
		size_t n = strcspn(path, "/");
		bool slash = path[n] == '/';
		if (n == 0 || (n == 1 && path[0] == '.')) {
			if (!S_ISDIR(e->mode))
				return ENOTDIR;
			path += n + slash;
			continue;
		}
		if (!S_ISDIR(e->mode))
			return ENOTDIR;
		if (n == 2 && path[0] == '.' && path[1] == '.') {
			if (depth) {
				t4dx_entry_clear(e);
				*e = at[--depth];
			}
			path += n + slash;
			continue;
		}
		if (depth == DEPTH_MAX)
			return ENAMETOOLONG;
		at[depth++] = *e;
		uint64_t parent = e->ino;
		int rc = t4dx_get(db, parent, path, n, 0, e);
		if (rc)
			return rc;
		if (slash && !S_ISDIR(e->mode) && !path[n + 1])
			return ENOTDIR;         /* "file/" */
		path += n + slash;
	}
	return 0;
}

static const char *type_of(uint32_t mode)
{
	return S_ISDIR(mode) ? "directory" : S_ISLNK(mode) ? "symlink" : "file";
}

/* Valid UTF-8 without NUL bytes (what a JSON string carries as is)? */
static bool utf8_text(const unsigned char *p, size_t n)
{
	return t4dx_utf8_valid(p, n);
}

/* Standard base64 with padding, NUL-terminated; NULL if out of memory. */
static char *base64(const unsigned char *p, size_t n)
{
	char *out = malloc((n + 2) / 3 * 4 + 1);
	if (out)
		out[t4dx_base64_put(out, p, n)] = 0;
	return out;
}

/* The shortest decimal that reads back as d. */
static struct json_object *json_double(double d)
{
	char buf[40];
	snprintf(buf, sizeof(buf), "%.15g", d);
	if (strtod(buf, NULL) != d)
		snprintf(buf, sizeof(buf), "%.17g", d);
	return json_object_new_double_s(d, buf);
}

static struct json_object *entry_json(const struct t4dx_entry *e,
				      const char *name)
{
	struct json_object *o = json_object_new_object();
	size_t nlen = strlen(name);
	if (utf8_text((const unsigned char *)name, nlen)) {
		json_object_object_add(o, "name", json_object_new_string(name));
	} else {
		char *b64 = base64((const unsigned char *)name, nlen);
		json_object_object_add(o, "name_base64",
				       b64 ? json_object_new_string(b64) : NULL);
		free(b64);
	}
	json_object_object_add(o, "type",
			       json_object_new_string(type_of(e->mode)));
	json_object_object_add(o, "inode", json_object_new_int64(
				       (int64_t)e->ino));
	json_object_object_add(o, "mode", json_object_new_int(
				       (int)(e->mode & 07777)));
	json_object_object_add(o, "uid", json_object_new_int64(e->uid));
	json_object_object_add(o, "gid", json_object_new_int64(e->gid));
	json_object_object_add(o, "size", json_object_new_int64(
				       (int64_t)e->size));
	json_object_object_add(o, "atime_ns", json_object_new_int64(
				       e->atime_ns));
	json_object_object_add(o, "mtime_ns", json_object_new_int64(
				       e->mtime_ns));
	json_object_object_add(o, "ctime_ns", json_object_new_int64(
				       e->ctime_ns));
	json_object_object_add(o, "lsn", json_object_new_int64(
				       (int64_t)e->lsn));
	if (S_ISREG(e->mode)) {
		json_object_object_add(o, "kappa",
				       json_double(e->kappa));
		json_object_object_add(o, "importance",
				       json_double(e->importance));
		json_object_object_add(o, "memory_type", json_object_new_string(
					       t4dx_type_name(e->type)));
		json_object_object_add(o, "event_time_ns",
				       json_object_new_int64(e->event_time_ns));
		json_object_object_add(o, "access_count", json_object_new_int64(
					       (int64_t)e->access_count));
	}
	return o;
}

static void print_long(const struct t4dx_entry *e, const char *name)
{
	char mode[11], t[32];
	static const char rwx[] = "rwxrwxrwx";
	mode[0] = S_ISDIR(e->mode) ? 'd' : S_ISLNK(e->mode) ? 'l' : '-';
	for (int i = 0; i < 9; i++)
		mode[i + 1] = e->mode & (0400u >> i) ? rwx[i] : '-';
	mode[10] = 0;
	printf("%s %10llu %s ", mode, (unsigned long long)e->size,
	       human_time(e->mtime_ns, t, sizeof(t)));
	print_name(name, strlen(name));
	printf("%s\n", S_ISDIR(e->mode) ? "/" : "");
}

struct lister {
	const struct opts *o;
	struct json_object *arr;
};

static int list_one(void *arg, const struct t4dx_entry *e)
{
	struct lister *l = arg;
	if (l->o->json)
		json_object_array_add(l->arr, entry_json(e, e->name));
	else if (l->o->long_list)
		print_long(e, e->name);
	else {
		print_name(e->name, e->name_len);
		printf("%s\n", S_ISDIR(e->mode) ? "/" : "");
	}
	return 0;
}

int cmd_ls(const struct command *c, int argc, char **argv)
{
	struct opts o;
	struct t4dx *db;
	struct t4dx_entry e;
	int rc = parse_opts(c, "json,l,force-readonly", &argc, argv, &o);
	if (rc)
		return rc;
	if (argc < 1 || argc > 2)
		return usage_error(c, "expected DATA_DIR [DIR]");
	const char *path = argc == 2 ? argv[1] : "";
	if ((rc = open_store(c, argv[0], &o, &db)))
		return rc;
	int damaged = warn_damage(c, db, argv[0]);
	rc = resolve(db, path, &e);
	if (rc) {
		t4dx_close(db);
		return fail(c, EXIT_PROBLEMS, "%s: %s%s", path,
			    rc == T4DX_ENOTFOUND ? "no such item or directory"
						 : t4dx_strerror(rc),
			    rc == T4DX_ENOTFOUND ? not_found_hint(path) : "");
	}
	struct lister l = { &o, o.json ? json_object_new_array() : NULL };
	if (S_ISDIR(e.mode))
		rc = t4dx_scan(db, e.ino, list_one, &l);
	else {
		const char *base = strrchr(path, '/');
		snprintf(e.name, sizeof(e.name), "%s", base ? base + 1 : path);
		rc = list_one(&l, &e);
	}
	t4dx_entry_clear(&e);
	if (rc)
		rc = fail(c, EXIT_PROBLEMS, "%s: %s", path, t4dx_strerror(rc));
	else if (o.json)
		rc = print_json(l.arr);
	json_object_put(l.arr);
	t4dx_close(db);
	return rc ? rc : damaged;
}

int cmd_dump(const struct command *c, int argc, char **argv)
{
	struct opts o;
	struct t4dx *db;
	struct t4dx_entry e;
	int rc = parse_opts(c, "json,force-readonly", &argc, argv, &o);
	if (rc)
		return rc;
	if (argc != 2)
		return usage_error(c, "expected DATA_DIR and PATH");
	const char *path = argv[1];
	if ((rc = open_store(c, argv[0], &o, &db)))
		return rc;
	int damaged = warn_damage(c, db, argv[0]);
	rc = resolve(db, path, &e);
	if (!rc && S_ISDIR(e.mode)) {
		t4dx_entry_clear(&e);
		t4dx_close(db);
		return fail(c, EXIT_PROBLEMS, "%s: is a directory (t4dx ls "
			    "lists it)", path);
	}
	if (!rc) {
		/* again, with the content */
		uint64_t parent = e.parent;
		char name[T4DX_NAME_MAX + 1];
		size_t len = e.name_len;
		memcpy(name, e.name, len + 1);
		t4dx_entry_clear(&e);
		rc = t4dx_get(db, parent, name, len, T4DX_GET_CONTENT, &e);
	}
	if (rc) {
		t4dx_close(db);
		return fail(c, EXIT_PROBLEMS, "%s: %s%s", path,
			    rc == T4DX_ENOTFOUND ? "no such item"
						 : t4dx_strerror(rc),
			    rc == T4DX_ENOTFOUND ? not_found_hint(path) : "");
	}
	const unsigned char *data = e.content ? e.content->data
					      : (const unsigned char *)"";
	size_t size = e.content ? e.content->len : 0;
	if (o.json) {
		struct json_object *j = entry_json(&e, e.name);
		json_object_object_add(j, "path", json_object_new_string(path));
		if (utf8_text(data, size)) {
			json_object_object_add(j, "content",
				json_object_new_string_len((const char *)data,
							   (int)size));
		} else {
			char *b64 = base64(data, size);
			json_object_object_add(j, "content_base64",
				b64 ? json_object_new_string(b64) : NULL);
			free(b64);
		}
		rc = print_json(j);
		json_object_put(j);
	} else if (size && fwrite(data, 1, size, stdout) != size) {
		rc = fail(c, EXIT_CANNOT, "write error: %s", strerror(errno));
	}
	t4dx_entry_clear(&e);
	t4dx_close(db);
	return rc ? rc : damaged;
}
