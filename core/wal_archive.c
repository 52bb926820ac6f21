/*
 * wal_archive.c - archiving: whole files whose records a MANIFEST covers
 * move from the live log to wal/archive, which is trimmed to its budget.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "wal_int.h"

static int trim_archive(struct t4dx_wal *w, uint64_t budget, uint64_t *total)
{
	uint64_t *names;
	size_t n;
	char path[PATH_MAX];
	int rc = wal_list_dir(w->arch, &names, &n);
	if (rc)
		return rc;
	uint64_t *sizes = calloc(n ? n : 1, sizeof(*sizes));
	if (!sizes) {
		free(names);
		return ENOMEM;
	}
	*total = 0;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		wal_file_path(path, sizeof(path), w->arch, names[i]);
		if (stat(path, &st) == 0)
			sizes[i] = (uint64_t)st.st_size;
		*total += sizes[i];
	}
	bool removed = false;
	for (size_t i = 0; i < n && *total > budget; i++) {
		wal_file_path(path, sizeof(path), w->arch, names[i]);
		if (t4dx_io.unlink(path) && errno != ENOENT) {
			rc = errno;
			break;
		}
		*total -= sizes[i];
		removed = true;
	}
	if (removed && !rc)
		rc = t4dx_io_fsync_dir(w->arch);
	free(sizes);
	free(names);
	return rc;
}

int t4dx_wal_archive(struct t4dx_wal *w, uint64_t upto,
		     uint64_t archive_max_bytes)
{
	char from[PATH_MAX], to[PATH_MAX];
	int rc = 0;
	size_t moved = 0;
	pthread_mutex_lock(&w->mu);
	wal_own(w);
	for (;;) {              /* always the oldest live file */
		if (w->nfiles == 0 || (w->fd >= 0 && w->nfiles == 1))
			break;  /* the file open for appending stays */
		uint64_t first = w->files[0].first;
		uint64_t last = w->nfiles > 1 ? w->files[1].first - 1 :
				w->durable;
		if (last > upto)
			break;
		uint64_t bytes = w->files[0].bytes;
		pthread_mutex_unlock(&w->mu);
		wal_file_path(from, sizeof(from), w->dir, first);
		wal_file_path(to, sizeof(to), w->arch, first);
		if (t4dx_io.rename(from, to))
			rc = errno ? errno : EIO;
		pthread_mutex_lock(&w->mu);
		if (rc)
			break;
		if (w->bad_first == first)
			w->bad_first = 0;
		wal_drop_file(w, 0);
		w->archive_bytes += bytes;
		moved++;
	}
	pthread_mutex_unlock(&w->mu);
	if (moved && !rc && !(rc = t4dx_io_fsync_dir(w->arch)))
		rc = t4dx_io_fsync_dir(w->dir);
	uint64_t total = 0;
	int rc2 = trim_archive(w, archive_max_bytes, &total);
	pthread_mutex_lock(&w->mu);
	if (!rc2)
		w->archive_bytes = total;
	wal_disown(w);
	pthread_mutex_unlock(&w->mu);
	return rc ? rc : rc2;
}
