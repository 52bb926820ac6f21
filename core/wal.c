/*
 * wal.c - the write-ahead log (see wal.h for the interface).
 *
 * FILES
 *
 *   DATA_DIR/wal/NNNNNNNNNNNNNNNNNNNN.jsonl   live log files
 *   DATA_DIR/wal/archive/NNN...N.jsonl        files already covered by
 *                                             segments (t4dx_wal_archive)
 *   QUARANTINE/wal-NNN...N.jsonl[.K]          files recovery set aside
 *
 * A log file is named by the LSN of its first record, in decimal, zero
 * padded to 20 digits so that names sort in LSN order.  (Readers accept
 * 1 to 20 digits; other names in the directory are ignored.)  A file is
 * a sequence of records, possibly followed by padding, and nothing else
 * (no header, no trailer): each record is one line of UTF-8 JSON text as
 * described at
 * the top of rec.c, ending in its "crc" and then exactly one '\n' (0x0a;
 * no '\r').  A line holds no raw '\n' (JSON escapes it), so a line is
 * everything up to the next '\n'.  Within a file the LSNs go up by
 * exactly one from line to line.  Normally each file continues the
 * previous one (its name is the previous file's last LSN + 1); see
 * "abandoned" below for the one exception the writer makes.  Example,
 * wal/00000000000000000041.jsonl:
 *
 *   {"lsn":41,"op":"delete","parent":16,"name":"a","crc":2575560998}\n
 *   {"lsn":42,"op":"probe","crc":4285319664}\n
 *
 * PADDING.  The writer keeps the file it appends to longer than its
 * records by a run of '\n' bytes (empty lines), extended PAD_CHUNK
 * (64 KiB) at a time, so that a group overwrites bytes the file already
 * has: its fdatasync then writes the data alone, not also the inode for
 * a new file size (about half the time per fdatasync on ext4 here).
 * Padding is best effort (on a full disk records are simply appended)
 * and goes through t4dx_io.pad.  Closing a file cuts it off; after a
 * crash it stays, and readers take it for the end of the file.
 *
 * WRITING (group commit)
 *
 * t4dx_wal_add() gives the record the next LSN, encodes it and appends the
 * line to an in-memory queue; LSNs are therefore contiguous and the
 * queue is fully described by its bytes and its LSN range.
 * t4dx_wal_sync(lsn) waits until lsn is durable.  One waiter at a time is
 * the leader: it takes everything queued, writes it at the end of the
 * current file with one pwrite, calls fdatasync once, and publishes the
 * new durable LSN to all waiters.  Records queued while it works are
 * taken by the next leader, so N concurrent committers cost far fewer
 * than N fdatasyncs.  A new file is created (O_EXCL, then fsync of the
 * wal directory) when the first record after an open, a rotation or an
 * abandoned file is written; it is named by that record's LSN.  After a
 * successful group the file is closed once it has reached max_file_bytes,
 * and the next group starts a new one.
 *
 * A failed pwrite or fdatasync fails the group: the file is truncated back
 * to where the group started (earlier groups were fdatasync'ed; the
 * group's own bytes are never trusted, even those that reached the page
 * cache), every waiter whose LSN is in the group gets the errno, and the
 * group stays at the head of the queue so the next leader writes it again
 * (together with what was queued meanwhile).  If the truncate fails too,
 * the file is *abandoned*: it is closed and never written again, and the
 * next leader starts a new file named by the first queued LSN, i.e. the
 * LSN right after the abandoned file's last durable record.  The
 * abandoned file may end in a torn line, or even in complete, valid
 * copies of (some of) the failed group's records: recovery below copes
 * with both.  If the abandoned file has the same name as the new one (the
 * failed group was its first write), it is moved to quarantine first.
 *
 * RECOVERY (t4dx_wal_open)
 *
 * Files are read in LSN (= name) order, except the first ones that the
 * segments cover whole: a file followed by one named from_lsn + 1 or less
 * holds no record above from_lsn and is not read at all (nor checked:
 * see wal_recover.c); it stays listed until t4dx_wal_archive moves it.
 * Per file, lines are read from the start.  If everything after the last
 * valid record is '\n' bytes, that is padding: the file ends cleanly
 * there, nothing is dropped and the padding is left for the writer.
 * Otherwise the file ends, for recovery, at the first line that
 *   - is torn (the file ends without '\n'),
 *   - does not decode (JSON, field or CRC error: t4dx_rec_decode; this
 *     includes an empty line and a line of 2^31 bytes or more), or
 *   - whose LSN is not the previous line's LSN + 1.
 * The damaged bytes (not the padding around them) are first copied to
 * the quarantine directory as wal-<name>.at-<offset> (fsync'ed, the
 * directory too), then the file is truncated there (ftruncate + fsync)
 * and the bytes cut off are reported as dropped, less the padding around them (from the first
 * byte that is not '\n' to the end of the last line that is not padding:
 * a torn record that landed on padding is counted with the '\n' of
 * padding after it); a file damaged in its first line is truncated
 * to nothing.  The first line of a file must carry the
 * file's name as LSN; if it decodes but carries another LSN the file is
 * not truncated but treated as a file that does not continue (below).
 *
 * Let E be the LSN the next record must have (the last valid LSN + 1, or
 * the name of a file that held no valid record).  The first file may
 * start anywhere (>= 1).  A later file named N continues the log when
 *   - N == E (the normal case, and also a file started after a file that
 *     was abandoned with a torn tail), or
 *   - N < E (a file started after a file that was abandoned with complete
 *     copies of records N..E-1 at its end: those copies and the new
 *     file's records below E are the same bytes; the new file's records
 *     below E are checked but not replayed again), or
 *   - N <= from_lsn + 1 (the missing LSNs are already in segments).
 * A file named N > E after a file that ended cleanly (no damage) means a
 * file in between was removed: records E..N-1 are lost, but the records
 * after that hole are valid and were acknowledged, so they are read and
 * replayed like the others, and the hole is reported (with the one
 * before the first record, from_lsn + 1 up to it, if any) in
 * t4dx_wal_report: the store comes back with everything the log still
 * holds.  After a file that ended in damage, the first file that does
 * not continue, and every file after it, is moved (renamed) to the
 * quarantine directory as wal-<name>, or wal-<name>.K if that is taken,
 * never deleted (point in time: nothing after damage is applied); so is
 * a file whose first record is not its name, and every file after it.
 * Then the quarantine and wal directories are fsync'ed.
 *
 * Records with lsn <= from_lsn are checked like the others but not passed
 * to the callback (they are counted as skipped).  New LSNs start at
 * max(last valid LSN, from_lsn, highest LSN of a line that decodes in a
 * file moved to the quarantine) + 1: an LSN is never given to two
 * records.  The last file read is reopened for
 * appending at its valid end when its last record is the LSN before
 * that, or when it holds no record and is named by it; an empty last file
 * with another name is removed; otherwise the next record starts a new
 * file.  Recovery changes nothing on disk when nothing is damaged; if a
 * needed repair (truncate, rename, fsync) fails, t4dx_wal_open fails with
 * that errno and the next open tries again.  If the files cannot be
 * opened for writing (read-only file system), recovery still reads them,
 * and fails only if a repair is needed.
 *
 * ARCHIVE
 *
 * t4dx_wal_archive(upto) moves the oldest files whose records are all
 * <= upto into archive/ (a file's last LSN is the next file's name - 1,
 * or for the last file the durable LSN; the file open for appending is
 * never moved), fsyncs both directories, then deletes the oldest archived
 * files while the archive holds more than its byte budget.
 * t4dx_wal_read_all() reads archive/ and the live files together with the
 * same rules, but changes nothing and stops quietly at damage; it reads
 * on over a hole, as recovery does, and reports it.
 *
 * t4dx_wal_reset() (the log was removed while in use and its records
 * saved in a segment) always begins a new file, named by the next
 * record's LSN: the file it appended to, if it is still or again there,
 * ends before the records the segment took.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wal_int.h"

/* Contents at least this long are queued by reference. */
#define EXT_MIN (256u << 10)

/* Bytes of content encoded at a time when such a record is written. */
#define EXT_PIECE (3u << 17)

/* A thread in t4dx_wal_sync(); err is set by a leader whose group held
 * lsn and failed.  On the waiter's stack, linked under w->mu.  Each
 * waiter sleeps on its own condition variable, so that the end of a group
 * wakes only the waiters it is done with and one to lead the next group,
 * not every thread that waits for a later one. */
struct wal_waiter {
	struct wal_waiter *next;
	uint64_t lsn;
	int err;
	pthread_cond_t cv;
};

/* ---- open ------------------------------------------------------------ */

int t4dx_wal_open(const char *dir, const char *quarantine_dir,
		  uint64_t from_lsn, uint64_t max_file_bytes,
		  t4dx_wal_replay_fn fn, void *arg,
		  struct t4dx_wal_report *rep, struct t4dx_wal **out)
{
	*out = NULL;
	struct t4dx_wal *w = calloc(1, sizeof(*w));
	if (!w)
		return ENOMEM;
	w->fd = -1;
	w->max_file_bytes = max_file_bytes;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	struct replay rp = { .from = from_lsn, .floor = from_lsn, .fn = fn,
			     .arg = arg, .lead_gap = true };
	int rc = ENAMETOOLONG;
	if (strlen(dir) > DIR_MAX || strlen(quarantine_dir) > DIR_MAX)
		goto out;
	rc = ENOMEM;
	size_t alen = strlen(dir) + sizeof("/archive");
	w->dir = strdup(dir);
	w->qdir = strdup(quarantine_dir);
	w->arch = malloc(alen);
	if (!w->dir || !w->qdir || !w->arch)
		goto out;
	snprintf(w->arch, alen, "%s/archive", dir);
	bool made;
	if ((rc = t4dx_io_make_dir(w->dir, &made)) ||
	    (made && (rc = wal_fsync_parent(w->dir))) ||
	    (rc = t4dx_io_make_dir(w->arch, &made)) ||
	    (made && (rc = t4dx_io_fsync_dir(w->dir))))
		goto out;
	if ((rc = wal_recover(w, &rp)) ||
	    (rc = wal_archive_size(w->arch, &w->archive_bytes)))
		goto out;
	w->last = w->durable = rp.last > from_lsn ? rp.last : from_lsn;
	if (rp.rep.quarantined_lsn > w->last)
		w->last = w->durable = rp.rep.quarantined_lsn;
	rp.rep.last_lsn = w->last;
out:
	free(rp.p);
	if (rep)
		*rep = rp.rep;
	if (rc) {
		t4dx_wal_close(w);
		return rc;
	}
	*out = w;
	return 0;
}

/* ---- writing --------------------------------------------------------- */

int t4dx_wal_add(struct t4dx_wal *w, struct t4dx_rec *r)
{
	/* Only this function writes w->last, and its callers are
	 * serialized, so it may read it without the lock. */
	uint64_t saved = r->lsn, lsn = w->last + 1;
	r->lsn = lsn;
	w->scratch.len = 0;
	struct t4dx_rec_ext x;
	bool split;
	int rc = t4dx_rec_encode_split(r, &w->scratch, EXT_MIN, &x, &split);
	if (rc) {
		r->lsn = saved;
		return rc;
	}
	uint64_t size = w->scratch.len + (split ? x.enc_len : 0);
	pthread_mutex_lock(&w->mu);
	struct wal_queue *q = &w->q;
	size_t base = q->buf.len;
	if (w->poisoned) {
		rc = EROFS;
	} else if (split && wal_ext_reserve(q, 1)) {
		rc = ENOMEM;
	} else if (q->buf.len == 0) {   /* hand the buffer over, no copy */
		struct t4dx_buf t = q->buf;
		q->buf = w->scratch;
		w->scratch = t;
	} else {
		rc = t4dx_buf_add(&q->buf, w->scratch.p, w->scratch.len);
	}
	if (!rc) {
		if (split) {    /* the queue takes the reference */
			x.at += base;
			q->ext[q->next++] = x;
			q->ext_bytes += x.enc_len;
			split = false;
		}
		if (!q->n)
			q->lo = lsn;
		q->hi = lsn;
		q->n++;
		w->last = lsn;
		w->last_bytes = size;
	}
	pthread_mutex_unlock(&w->mu);
	if (split)
		t4dx_blob_unref(x.blob);
	if (rc)
		r->lsn = saved;
	if (w->scratch.cap > (4u << 20))
		t4dx_buf_free(&w->scratch);
	return rc;
}

/* Create the file named first for the next group (busy held). */
static int file_create(struct t4dx_wal *w, uint64_t first)
{
	char path[PATH_MAX];
	int rc;
	if (w->bad_first == first) {
		/* The abandoned file holds nothing durable (the failed
		 * group was its first write); set it aside. */
		if ((rc = wal_quarantine_file(w->dir, w->qdir, first)) ||
		    (rc = t4dx_io_fsync_dir(w->qdir)))
			return rc;
		w->bad_first = 0;
		pthread_mutex_lock(&w->mu);
		if (w->nfiles && w->files[w->nfiles - 1].first == first)
			wal_drop_file(w, w->nfiles - 1);
		pthread_mutex_unlock(&w->mu);
	}
	wal_file_path(path, sizeof(path), w->dir, first);
	int fd = t4dx_io.open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* Left empty by an attempt whose directory fsync failed. */
		struct stat st;
		fd = t4dx_io.open(path, O_RDWR, 0);
		if (fd >= 0 && (fstat(fd, &st) || st.st_size != 0)) {
			t4dx_io.close(fd);
			errno = EEXIST;
			fd = -1;
		}
	}
	if (fd < 0)
		return errno ? errno : EIO;
	if ((rc = t4dx_io_fsync_dir(w->dir))) {
		t4dx_io.close(fd);
		return rc;
	}
	pthread_mutex_lock(&w->mu);
	rc = wal_add_file(w, first, 0);
	pthread_mutex_unlock(&w->mu);
	if (rc) {
		t4dx_io.close(fd);
		return rc;
	}
	w->fd = fd;
	w->off = w->pad_end = 0;
	w->cur_first = first;
	w->bad_first = 0;
	return 0;
}

/* Padding is written PAD_CHUNK at a time, ahead of the records. */
#define PAD_CHUNK (64u << 10)

/* Make sure the file extends, with padding, past end: a group then
 * overwrites bytes the file already has, and its fdatasync writes the
 * data without the inode (whose size no longer changes at every group).
 * Best effort: without it (a full disk, say) records are appended as
 * they would be anyway.  Busy held. */
static void pad_ahead(struct t4dx_wal *w, uint64_t end)
{
	unsigned char nl[16384];
	if (end <= w->pad_end)
		return;
	memset(nl, '\n', sizeof(nl));
	uint64_t to = (end / PAD_CHUNK + 1) * PAD_CHUNK;
	uint64_t at = w->pad_end > w->off ? w->pad_end : w->off;
	while (at < to) {
		size_t n = to - at < sizeof(nl) ? (size_t)(to - at) : sizeof(nl);
		ssize_t k = t4dx_io.pad(w->fd, nl, n, (off_t)at);
		if (k <= 0)
			break;
		at += (uint64_t)k;
	}
	w->pad_end = at;
}

/* Close the file being appended to, without its padding (if the cut is
 * lost in a crash, recovery reads the padding as the end anyway).  Busy
 * held. */
static void close_file(struct t4dx_wal *w)
{
	if (w->pad_end > w->off)
		(void)t4dx_io.ftruncate(w->fd, (off_t)w->off);
	t4dx_io.close(w->fd);
	w->fd = -1;
}

/* Write the lines of the first len bytes of g's buf, with the first ke
 * contents encoded into them a piece at a time, at offset at.  Busy
 * held. */
static int write_lines(struct t4dx_wal *w, const struct wal_queue *g,
		       size_t len, size_t ke, uint64_t at)
{
	char *piece = NULL;
	if (ke && !(piece = malloc(T4DX_REC_EXT_ROOM(EXT_PIECE))))
		return ENOMEM;
	size_t pos = 0;
	int rc = 0;
	for (size_t i = 0; !rc; i++) {
		size_t end = i < ke ? g->ext[i].at : len;
		rc = t4dx_io_pwrite_all(w->fd, g->buf.p + pos, end - pos,
					(off_t)at);
		at += end - pos;
		pos = end;
		if (i == ke)
			break;
		const struct t4dx_rec_ext *x = &g->ext[i];
		for (size_t from = 0; !rc && from < x->blob->len;
		     from += EXT_PIECE) {
			size_t n = x->blob->len - from;
			if (n > EXT_PIECE)
				n = EXT_PIECE;
			size_t k = t4dx_rec_ext_put(x, from, n, piece);
			rc = t4dx_io_pwrite_all(w->fd, piece, k, (off_t)at);
			at += k;
		}
	}
	free(piece);
	return rc;
}

/* Write and fdatasync the records in the first len bytes of w->head's
 * buf, which hold its first ke contents (busy held, mu not held). */
static int group_write(struct t4dx_wal *w, size_t len, size_t ke)
{
	struct wal_queue *g = &w->head;
	int rc;
	if (w->fd < 0 && (rc = file_create(w, g->lo)))
		/* no directory to make it in: the log was removed */
		return rc == ENOENT ? ESTALE : rc;
	uint64_t start = w->off, total = len;
	for (size_t i = 0; i < ke; i++)
		total += g->ext[i].enc_len;
	pad_ahead(w, start + total);
	rc = write_lines(w, g, len, ke, start);
	if (!rc) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (t4dx_io.fdatasync(w->fd))
			rc = errno ? errno : EIO;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (w->sync_hist)
			t4dx_hist_observe_ns(w->sync_hist, (uint64_t)
				((t1.tv_sec - t0.tv_sec) * 1000000000LL +
				 (t1.tv_nsec - t0.tv_nsec)));
	}
	if (!rc) {
		/* on disk, but in the file the directory still names?  A
		 * log removed behind the daemon's back (rm -rf DATA/wal) is
		 * written and synced without an error, and gone at the next
		 * start: a failure (ESTALE), so the breaker and health say
		 * so and nothing more is acknowledged as durable */
		char path[PATH_MAX];
		wal_file_path(path, sizeof(path), w->dir, w->cur_first);
		rc = t4dx_io.linked(w->fd, path);
		/* only a file known to be gone fails the group: if the
		 * check itself fails (EACCES, ENOMEM), the bytes are synced
		 * in the file we believe in, and failing here would give
		 * their LSNs back while they sit on disk */
		if (rc != ESTALE) {
			w->off = start + total;
			return 0;
		}
		return rc;
	}
	if (t4dx_io.ftruncate(w->fd, (off_t)start)) {
		/* Cannot take the bytes back: never write here again. */
		t4dx_io.close(w->fd);
		w->fd = -1;
		w->bad_first = w->cur_first;
	} else {
		w->pad_end = start;
	}
	return rc;
}

/* Wake the waiters that are done (their LSN is durable or their group
 * failed) and, if no one holds busy, one other waiter to lead the next
 * group; self, the caller, is never picked (it leads again itself if it
 * must).  mu held. */
static void wake_waiters(struct t4dx_wal *w, struct wal_waiter *self)
{
	bool next = !w->busy;
	for (struct wal_waiter *x = w->waiters; x; x = x->next) {
		if (x->lsn <= w->durable || x->err) {
			pthread_cond_signal(&x->cv);
		} else if (next && x != self) {
			pthread_cond_signal(&x->cv);
			next = false;
		}
	}
}

/* Lead one group commit.  Called and returns with mu held.  Returns
 * false if there was nothing to write (which would be a bug). */
static bool lead(struct t4dx_wal *w, struct wal_waiter *self)
{
	struct wal_queue *h = &w->head, *q = &w->q;
	w->busy = true;
	/* let writers that are about to queue a record join this group */
	pthread_mutex_unlock(&w->mu);
	sched_yield();
	pthread_mutex_lock(&w->mu);
	if (h->n == 0) {
		struct wal_queue t = *h;
		*h = *q;
		*q = t;
	} else if (q->n) {
		/* Behind a failed group; if the copy fails for lack of
		 * memory, the queue simply waits for the next group. */
		(void)wal_queue_move(h, q);
	}
	int rc = 0;
	bool any = h->n != 0;
	if (any) {
		/* at most batch_max records per group: a long backlog (the
		 * replay queue after an outage) drains in bounded steps */
		uint64_t k = h->n;
		size_t len = h->buf.len;
		if (w->batch_max && k > w->batch_max) {
			const unsigned char *p = h->buf.p;
			k = w->batch_max;
			for (uint64_t i = 0; i < k; i++)
				p = (const unsigned char *)memchr(p, '\n',
					h->buf.len - (size_t)(p - h->buf.p)) + 1;
			len = (size_t)(p - h->buf.p);
		}
		size_t ke = wal_ext_within(h, len);
		pthread_mutex_unlock(&w->mu);
		rc = group_write(w, len, ke);
		bool full = !rc && w->max_file_bytes &&
			    w->off >= w->max_file_bytes;
		if (full)
			close_file(w);
		/* one result per group, however many wait for it */
		if (w->on_group)
			w->on_group(w->on_group_arg, rc);
		pthread_mutex_lock(&w->mu);
		if (!rc) {
			w->durable = h->lo + k - 1;
			w->syncs++;
			w->records += k;
			/* updates its size */
			wal_add_file(w, w->cur_first, w->off);
			if (k == h->n) {
				wal_queue_clear(h);
			} else {
				memmove(h->buf.p, h->buf.p + len,
					h->buf.len - len);
				h->buf.len -= len;
				wal_ext_drop_front(h, ke, len);
				h->lo += k;
				h->n -= k;
			}
		} else {
			/* every waiter for a record of the group or after it:
			 * records become durable in order, so none after the
			 * group can be before the group is (leading it again
			 * would fail the same way for as long as the disk
			 * does).  Waiters for records already durable are
			 * not touched; the records stay queued for a retry. */
			for (struct wal_waiter *x = w->waiters; x; x = x->next)
				if (x->lsn >= h->lo)
					x->err = rc;
		}
	}
	w->busy = false;
	pthread_cond_broadcast(&w->cv);
	wake_waiters(w, self);
	return any;
}

int t4dx_wal_sync(struct t4dx_wal *w, uint64_t lsn)
{
	pthread_mutex_lock(&w->mu);
	if (lsn > w->last)
		lsn = w->last;
	struct wal_waiter me = { .lsn = lsn, .next = w->waiters };
	pthread_cond_init(&me.cv, NULL);
	w->waiters = &me;
	while (w->durable < lsn && !me.err) {
		if (w->busy)
			pthread_cond_wait(&me.cv, &w->mu);
		else if (!lead(w, &me))
			me.err = EIO;
	}
	struct wal_waiter **pp = &w->waiters;
	while (*pp != &me)
		pp = &(*pp)->next;
	*pp = me.next;
	pthread_mutex_unlock(&w->mu);
	pthread_cond_destroy(&me.cv);
	return me.err;
}

/* Wait for and take the file state (mu held). */
void wal_own(struct t4dx_wal *w)
{
	while (w->busy)
		pthread_cond_wait(&w->cv, &w->mu);
	w->busy = true;
}

void wal_disown(struct t4dx_wal *w)
{
	w->busy = false;
	pthread_cond_broadcast(&w->cv);
	wake_waiters(w, NULL);
}

int t4dx_wal_rotate(struct t4dx_wal *w, uint64_t *last_lsn)
{
	int rc = t4dx_wal_sync(w, UINT64_MAX);
	if (rc)
		return rc;
	pthread_mutex_lock(&w->mu);
	wal_own(w);
	uint64_t last = w->last;
	pthread_mutex_unlock(&w->mu);
	/* An empty open file already has the next LSN as its name. */
	if (w->fd >= 0 && w->off > 0)
		close_file(w);
	pthread_mutex_lock(&w->mu);
	wal_disown(w);
	pthread_mutex_unlock(&w->mu);
	if (last_lsn)
		*last_lsn = last;
	return 0;
}

bool t4dx_wal_gone(struct t4dx_wal *w)
{
	char path[PATH_MAX];
	struct stat st;
	pthread_mutex_lock(&w->mu);
	wal_own(w);
	pthread_mutex_unlock(&w->mu);
	bool gone = stat(w->dir, &st) != 0 || !S_ISDIR(st.st_mode);
	if (!gone && w->fd >= 0) {
		wal_file_path(path, sizeof(path), w->dir, w->cur_first);
		gone = t4dx_io.linked(w->fd, path) == ESTALE;
	}
	pthread_mutex_lock(&w->mu);
	wal_disown(w);
	pthread_mutex_unlock(&w->mu);
	return gone;
}

int t4dx_wal_reset(struct t4dx_wal *w, uint64_t upto)
{
	char path[PATH_MAX];
	bool made;
	pthread_mutex_lock(&w->mu);
	wal_own(w);
	wal_queue_drop_upto(&w->head, upto);
	wal_queue_drop_upto(&w->q, upto);
	if (w->durable < upto)
		w->durable = upto;
	pthread_mutex_unlock(&w->mu);
	/* the next group begins a new file, named by its first LSN, even
	 * if the one being appended to is still (or again: wal/ moved away
	 * and back) in the directory: it ends at a record before upto, and
	 * the records after upto must not follow it there */
	if (w->fd >= 0)
		close_file(w);
	w->bad_first = 0;
	int rc = 0;
	if ((rc = t4dx_io_make_dir(w->dir, &made)) ||
	    (made && (rc = wal_fsync_parent(w->dir))) ||
	    (rc = t4dx_io_make_dir(w->arch, &made)) ||
	    (made && (rc = t4dx_io_fsync_dir(w->dir))))
		goto out;
	uint64_t arch;
	if (!wal_archive_size(w->arch, &arch))
		w->archive_bytes = arch;
out:
	pthread_mutex_lock(&w->mu);
	/* forget the files that are no longer there */
	for (size_t i = w->nfiles; i-- > 0;) {
		struct stat st;
		wal_file_path(path, sizeof(path), w->dir, w->files[i].first);
		if (stat(path, &st) && errno == ENOENT &&
		    !(w->fd >= 0 && w->files[i].first == w->cur_first))
			wal_drop_file(w, i);
	}
	wal_disown(w);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* ---- queries and close ----------------------------------------------- */

uint64_t t4dx_wal_last_add_bytes(struct t4dx_wal *w)
{
	return w->last_bytes;
}

uint64_t t4dx_wal_last_lsn(struct t4dx_wal *w)
{
	pthread_mutex_lock(&w->mu);
	uint64_t v = w->last;
	pthread_mutex_unlock(&w->mu);
	return v;
}

uint64_t t4dx_wal_durable_lsn(struct t4dx_wal *w)
{
	pthread_mutex_lock(&w->mu);
	uint64_t v = w->durable;
	pthread_mutex_unlock(&w->mu);
	return v;
}

uint64_t t4dx_wal_bytes_after(struct t4dx_wal *w, uint64_t lsn)
{
	uint64_t n = 0;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->nfiles; i++)
		if (w->files[i].first > lsn)
			n += w->files[i].bytes;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void t4dx_wal_get_stats(struct t4dx_wal *w, struct t4dx_wal_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->nfiles; i++)
		st->bytes += w->files[i].bytes;
	st->archive_bytes = w->archive_bytes;
	st->syncs = w->syncs;
	st->records = w->records;
	st->pending = w->last - w->durable;
	st->durable = w->durable;
	st->pending_bytes = wal_queue_bytes(&w->q) + wal_queue_bytes(&w->head);
	pthread_mutex_unlock(&w->mu);
}

void t4dx_wal_close(struct t4dx_wal *w)
{
	if (!w)
		return;
	t4dx_wal_sync(w, UINT64_MAX);
	pthread_mutex_lock(&w->mu);
	wal_own(w);
	pthread_mutex_unlock(&w->mu);
	if (w->fd >= 0)
		close_file(w);
	wal_queue_free(&w->q);
	wal_queue_free(&w->head);
	t4dx_buf_free(&w->scratch);
	free(w->files);
	free(w->dir);
	free(w->arch);
	free(w->qdir);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void t4dx_wal_set_group_hook(struct t4dx_wal *w, void (*fn)(void *, int),
			     void *arg)
{
	pthread_mutex_lock(&w->mu);
	w->on_group = fn;
	w->on_group_arg = arg;
	pthread_mutex_unlock(&w->mu);
}

void t4dx_wal_set_sync_hist(struct t4dx_wal *w, struct t4dx_hist *h)
{
	pthread_mutex_lock(&w->mu);
	w->sync_hist = h;
	pthread_mutex_unlock(&w->mu);
}

void t4dx_wal_set_batch(struct t4dx_wal *w, uint64_t max_records)
{
	pthread_mutex_lock(&w->mu);
	w->batch_max = max_records;
	pthread_mutex_unlock(&w->mu);
}

int t4dx_wal_pending(struct t4dx_wal *w, struct t4dx_buf *out,
		     uint64_t *first)
{
	int rc = 0;
	pthread_mutex_lock(&w->mu);
	while (w->busy)
		pthread_cond_wait(&w->cv, &w->mu);
	*first = w->head.n ? w->head.lo : w->q.lo;
	if (w->head.n)
		rc = wal_queue_lines(&w->head, out);
	if (!rc && w->q.n)
		rc = wal_queue_lines(&w->q, out);
	if (!w->head.n && !w->q.n)
		*first = 0;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int t4dx_wal_discard_pending(struct t4dx_wal *w, uint64_t *from,
			     uint64_t *to)
{
	pthread_mutex_lock(&w->mu);
	while (w->busy)
		pthread_cond_wait(&w->cv, &w->mu);
	*from = w->durable + 1;
	*to = w->last;
	wal_queue_clear(&w->head);
	wal_queue_clear(&w->q);
	if (w->bad_first) {
		/* a file could not be cut back and may hold whole copies of
		 * the dropped records: their LSNs cannot be given out again,
		 * and the log takes nothing more until it is reopened */
		w->poisoned = true;
	} else {
		w->last = w->durable;
	}
	/* waiters on the dropped records see durable < lsn with nothing to
	 * write, and get EIO (each wakes the next as it leads) */
	pthread_cond_broadcast(&w->cv);
	wake_waiters(w, NULL);
	pthread_mutex_unlock(&w->mu);
	return 0;
}
