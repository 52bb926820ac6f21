/*
 * wal_recover.c - the recovery of t4dx_wal_open: list the files the
 * segments cover whole without reading them, replay the others, cut a
 * torn or damaged tail (after copying it to the quarantine), move the
 * files after damage aside, and find where the next record goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal_int.h"

static int open_rw(const char *path, bool *ro)
{
	*ro = false;
	int fd = t4dx_io.open(path, O_RDWR, 0);
	if (fd < 0 && (errno == EROFS || errno == EACCES || errno == EPERM)) {
		int saved = errno;
		fd = t4dx_io.open(path, O_RDONLY, 0);
		if (fd < 0)
			errno = saved;
		else
			*ro = true;
	}
	return fd;
}

/* The highest LSN of the lines of the file that decode, up to the first
 * that does not, or its name if none does (a file about to be set aside:
 * the LSNs it holds must not be given to new records). */
static int highest_lsn(const char *path, uint64_t name, uint64_t *top)
{
	struct replay sc = { .floor = UINT64_MAX, .from = UINT64_MAX,
			     .scan = true };
	struct file_result fr;
	*top = name;
	int fd = t4dx_io.open(path, O_RDONLY, 0);
	if (fd < 0)
		return errno ? errno : EIO;
	int rc = wal_read_file(&sc, fd, name, &fr);
	t4dx_io.close(fd);
	free(sc.p);
	if (!rc && sc.last > *top)
		*top = sc.last;
	return rc;
}

/* How many of the first files the segments cover whole: file i when the
 * next file's name is floor + 1 or less.  Its records run up to that
 * name - 1 (an abandoned file may hold copies of a few more, which the
 * next file holds too), so every one of them is <= floor: replay would
 * check and skip them all.  They are not read at all, which keeps a
 * restart from reading and parsing log files that a kill between a
 * MANIFEST and the archiving of its files (or a checkpoint stalled
 * behind a long group write) left in place.  The last file is always
 * read: nothing after it bounds its records.
 *
 * Damage in such a file (a bad CRC, a torn line, a first record that is
 * not its name) is then not found here, and nothing is lost by that: the
 * records are in segments, and a reading would only have cut the file
 * and gone on at the next, which continues the log through the floor
 * rule anyway.  The file moves to the archive as it is; `t4dx verify`
 * still reads every live and archived file and reports such damage
 * (a rebuild of a segment from the archive reads such a file up to its
 * damage, as it reads a file cut there). */
static size_t covered_files(const struct replay *rp, const uint64_t *names,
			    size_t n)
{
	size_t k = 0;
	if (rp->floor == 0 || rp->floor == UINT64_MAX)
		return 0;
	while (k + 1 < n && names[k + 1] <= rp->floor + 1)
		k++;
	return k;
}

int wal_recover(struct t4dx_wal *w, struct replay *rp)
{
	uint64_t *names = NULL;
	size_t n = 0, nq = 0;
	char path[PATH_MAX];
	int tail_fd = -1;               /* last file read, open */
	bool tail_ro = false;
	struct file_result tail = { 0 };
	uint64_t tail_name = 0;
	int rc = wal_list_dir(w->dir, &names, &n);
	if (rc)
		return rc;
	size_t i = 0, covered = covered_files(rp, names, n);
	for (; i < covered; i++) {
		/* listed for the archive (t4dx_wal_archive moves them) */
		struct stat st;
		wal_file_path(path, sizeof(path), w->dir, names[i]);
		if (stat(path, &st)) {
			rc = errno;
			goto out;
		}
		if ((rc = wal_add_file(w, names[i], (uint64_t)st.st_size)))
			goto out;
		rp->rep.files_covered++;
		rp->rep.bytes_covered += (uint64_t)st.st_size;
	}
	for (; i < n; i++) {
		/* after damage, point in time: nothing later is applied;
		 * after a clean end, a file that starts later means a file
		 * in between was removed: the records after that hole are
		 * valid and were acknowledged, so they are replayed (and
		 * the hole reported, see take_record) */
		if (!wal_continues(rp, names[i]) && rp->broken)
			break;
		wal_file_path(path, sizeof(path), w->dir, names[i]);
		bool ro;
		int fd = open_rw(path, &ro);
		if (fd < 0) {
			rc = errno;
			goto out;
		}
		struct file_result fr;
		rc = wal_read_file(rp, fd, names[i], &fr);
		if (!rc && fr.foreign) {
			t4dx_io.close(fd);
			break;          /* quarantined below with the rest */
		}
		if (!rc && fr.damaged) {
			if (ro)
				rc = EROFS;
			else if ((rc = wal_quarantine_tail(w->qdir, fd,
							   names[i],
							   fr.data_begin,
							   fr.data_end)))
				;       /* not cut: the start fails, says why */
			else if (t4dx_io.ftruncate(fd, (off_t)fr.valid_end) ||
				 t4dx_io.fsync(fd))
				rc = errno ? errno : EIO;
			else
				rp->rep.bytes_dropped +=
					fr.data_end - fr.data_begin;
		}
		if (!rc)
			rc = wal_add_file(w, names[i], fr.valid_end);
		if (rc) {
			t4dx_io.close(fd);
			goto out;
		}
		rp->rep.files++;
		if (fr.nrec == 0)
			wal_note_empty(rp, names[i]);
		rp->broken = fr.damaged;
		if (tail_fd >= 0)
			t4dx_io.close(tail_fd);
		tail_fd = fd;
		tail_ro = ro;
		tail = fr;
		tail_name = names[i];
	}
	/* Everything from the first file that does not continue on.  The
	 * LSNs those files hold are never given out again. */
	for (; i < n; i++, nq++) {
		uint64_t top;
		wal_file_path(path, sizeof(path), w->dir, names[i]);
		if ((rc = highest_lsn(path, names[i], &top)))
			goto out;
		if (top > rp->rep.quarantined_lsn)
			rp->rep.quarantined_lsn = top;
		if ((rc = wal_quarantine_file(w->dir, w->qdir, names[i])))
			goto out;
		rp->rep.files_quarantined++;
	}
	if (nq && ((rc = t4dx_io_fsync_dir(w->qdir)) ||
		   (rc = t4dx_io_fsync_dir(w->dir))))
		goto out;

	uint64_t next = (rp->last > rp->from ? rp->last : rp->from) + 1;
	if (rp->rep.quarantined_lsn >= next)
		next = rp->rep.quarantined_lsn + 1;
	if (tail_fd >= 0 && !tail_ro &&
	    ((tail.nrec && tail.last + 1 == next) ||
	     (!tail.nrec && tail_name == next))) {
		w->fd = tail_fd;
		w->off = tail.valid_end;
		w->pad_end = tail.padded ? tail.size : tail.valid_end;
		w->cur_first = tail_name;
		tail_fd = -1;
	} else if (tail_fd >= 0 && !tail.nrec && !tail_ro) {
		/* An empty file that would break the sequence: nothing in
		 * it to keep. */
		wal_file_path(path, sizeof(path), w->dir, tail_name);
		if (t4dx_io.unlink(path) || (rc = t4dx_io_fsync_dir(w->dir))) {
			rc = rc ? rc : errno;
			goto out;
		}
		wal_drop_file(w, w->nfiles - 1);
	}
out:
	if (tail_fd >= 0)
		t4dx_io.close(tail_fd);
	free(names);
	return rc;
}
