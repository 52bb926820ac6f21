/*
 * wal_dir.c - the log's files on disk: their names and listing, the
 * writer's list of live files, the archive's size, and moving damaged
 * files or bytes to the quarantine.  The format is described in wal.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal_int.h"

void wal_file_path(char *out, size_t n, const char *dir, uint64_t first)
{
	if (snprintf(out, n, "%s/%020" PRIu64 WAL_EXT, dir, first) >= (int)n)
		out[0] = 0;     /* cannot happen (DIR_MAX); fails to open */
}

/* Parse a log file name: 1..20 digits then ".jsonl". */
static bool parse_name(const char *s, uint64_t *first)
{
	size_t d = strspn(s, "0123456789");
	if (d == 0 || d > 20 || strcmp(s + d, WAL_EXT))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < d; i++) {
		unsigned x = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - x) / 10)
			return false;
		v = v * 10 + x;
	}
	*first = v;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The log files in dir, sorted.  A missing dir is an empty list. */
int wal_list_dir(const char *dir, uint64_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : errno;
	size_t cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t first;
		if (!parse_name(de->d_name, &first))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *p = realloc(*out, cap * sizeof(*p));
			if (!p) {
				rc = ENOMEM;
				break;
			}
			*out = p;
		}
		(*out)[(*n)++] = first;
	}
	closedir(d);
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
		return rc;
	}
	if (*n > 1)
		qsort(*out, *n, sizeof(**out), cmp_u64);
	return 0;
}

int wal_fsync_parent(const char *path)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	char *s = strrchr(p, '/');
	if (!s)
		return t4dx_io_fsync_dir(".");
	if (s == p)
		s[1] = 0;
	else
		*s = 0;
	return t4dx_io_fsync_dir(p);
}

/* The quarantine directory, made (and its making durable) if need be. */
static int quarantine_ready(const char *qdir)
{
	bool made;
	int rc = t4dx_io_make_dir(qdir, &made);
	if (!rc && made)
		rc = wal_fsync_parent(qdir);
	return rc;
}

/* Move dir/<first>.jsonl to qdir/wal-<first>.jsonl (with a .K suffix if
 * that name is taken).  The caller fsyncs both directories. */
int wal_quarantine_file(const char *dir, const char *qdir, uint64_t first)
{
	char from[PATH_MAX], to[PATH_MAX + 64], base[48];
	int rc = quarantine_ready(qdir);
	if (rc)
		return rc;
	wal_file_path(from, sizeof(from), dir, first);
	snprintf(base, sizeof(base), "wal-%020" PRIu64 WAL_EXT, first);
	return t4dx_io_quarantine(from, qdir, base, to, sizeof(to));
}

/* Bytes copied at a time into the quarantine. */
#define QUARANTINE_PIECE (1u << 20)

/* Before a damaged file is cut at valid_end, copy what is cut, the
 * damaged bytes [data_begin, data_end), to qdir/wal-<first>.at-<offset>
 * (fdatasync'ed, the directory too): recovery never throws bytes away.
 * 0 or an errno; the file is not cut unless this succeeds. */
int wal_quarantine_tail(const char *qdir, int fd, uint64_t first,
			uint64_t from, uint64_t to)
{
	char path[PATH_MAX + 64], base[80];
	int rc = quarantine_ready(qdir);
	if (rc)
		return rc;
	if (to <= from)
		return 0;
	/* copied a piece at a time: the damage may be most of a file */
	size_t cap = to - from < QUARANTINE_PIECE ? (size_t)(to - from)
						 : QUARANTINE_PIECE;
	unsigned char *b = malloc(cap);
	if (!b)
		return ENOMEM;
	int q = -1;
	snprintf(base, sizeof(base), "wal-%020" PRIu64 WAL_EXT ".at-%" PRIu64,
		 first, from);
	for (int k = 0; !rc && k < 10000; k++) {
		t4dx_io_quarantine_name(path, sizeof(path), qdir, base,
					k);
		q = t4dx_io.open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (q >= 0 || errno != EEXIST)
			break;
	}
	if (!rc && q < 0)
		rc = errno ? errno : EEXIST;
	for (uint64_t at = from; !rc && at < to;) {
		size_t len = to - at < cap ? (size_t)(to - at) : cap;
		rc = t4dx_io_pread_all(fd, b, len, (off_t)at);
		if (rc == T4DX_ECORRUPT)
			rc = EIO;  /* shorter than fstat said: cannot happen */
		if (!rc)
			rc = t4dx_io_pwrite_all(q, b, len, (off_t)(at - from));
		at += len;
	}
	if (!rc && t4dx_io.fsync(q))
		rc = errno ? errno : EIO;
	if (q >= 0)
		t4dx_io.close(q);
	if (!rc)
		rc = t4dx_io_fsync_dir(qdir);
	free(b);
	return rc;
}

/* ---- the writer's list of files ------------------------------------- */

int wal_add_file(struct t4dx_wal *w, uint64_t first, uint64_t bytes)
{
	if (w->nfiles && w->files[w->nfiles - 1].first == first) {
		w->files[w->nfiles - 1].bytes = bytes;
		return 0;
	}
	if (w->nfiles == w->fcap) {
		size_t cap = w->fcap ? w->fcap * 2 : 16;
		struct wal_file *p = realloc(w->files, cap * sizeof(*p));
		if (!p)
			return ENOMEM;
		w->files = p;
		w->fcap = cap;
	}
	w->files[w->nfiles++] = (struct wal_file){ first, bytes };
	return 0;
}

void wal_drop_file(struct t4dx_wal *w, size_t i)
{
	memmove(&w->files[i], &w->files[i + 1],
		(w->nfiles - i - 1) * sizeof(w->files[0]));
	w->nfiles--;
}

/* Sum of the sizes of the archived log files. */
int wal_archive_size(const char *arch, uint64_t *total)
{
	uint64_t *names;
	size_t n;
	char path[PATH_MAX];
	*total = 0;
	int rc = wal_list_dir(arch, &names, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		struct stat st;
		wal_file_path(path, sizeof(path), arch, names[i]);
		if (stat(path, &st) == 0)
			*total += (uint64_t)st.st_size;
	}
	free(names);
	return rc;
}
