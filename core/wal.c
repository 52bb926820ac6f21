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
 * Files are read in LSN (= name) order.  Per file, lines are read from the
 * start.  If everything after the last valid record is '\n' bytes, that
 * is padding: the file ends cleanly there, nothing is dropped and the
 * padding is left for the writer.  Otherwise the file ends, for
 * recovery, at the first line that
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

#include "io.h"
#include "metrics.h"
#include "wal.h"

#define WAL_EXT ".jsonl"
#define READ_CHUNK (1u << 20)
#define STOP INT_MIN            /* internal: the file ends here */

/* A file of the log, as the writer sees it. */
struct wal_file {
	uint64_t first;         /* its name */
	uint64_t bytes;         /* its size (valid end) */
};

/* Encoded records with contiguous LSNs lo..hi (n = 0 when empty): the
 * bytes of buf, with the encoding of each large content (ext[0..next), in
 * the order of their at) inserted where it says.  An encoded content
 * holds no '\n', so the records end at the '\n's of buf.  The queue
 * holds a reference to each of those contents: a large record costs the
 * queue its line without the content, not a second copy of the item. */
struct wal_queue {
	struct t4dx_buf buf;
	struct t4dx_rec_ext *ext;
	size_t next, ecap;
	uint64_t ext_bytes;     /* the sum of their enc_len */
	uint64_t lo, hi, n;
};

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

struct t4dx_wal {
	char *dir, *arch, *qdir;
	uint64_t max_file_bytes;
	struct t4dx_buf scratch;        /* t4dx_wal_add's (caller-serialized) */

	pthread_mutex_t mu;
	pthread_cond_t cv;              /* busy cleared (for own()) */
	/* guarded by mu */
	uint64_t last;                  /* last LSN assigned */
	uint64_t durable;               /* every LSN <= durable is on disk */
	struct wal_queue q;             /* added, not yet taken by a leader */
	bool busy;                      /* a leader (or rotate, archive,
	                                   close) owns the fields below */
	struct wal_waiter *waiters;
	struct wal_file *files;         /* live files in LSN order */
	size_t nfiles, fcap;
	uint64_t archive_bytes, syncs, records;

	/* owned by the thread that set busy */
	struct wal_queue head;          /* the group being written, or the
	                                   failed group waiting to be retried */
	struct t4dx_hist *sync_hist;    /* fdatasync latency, or NULL */
	void (*on_group)(void *, int);  /* each group's result, or NULL */
	void *on_group_arg;
	uint64_t batch_max;             /* records per group, 0: no limit */
	bool poisoned;                  /* discard after an abandoned file:
	                                   refuse new records (EROFS) */
	int fd;                         /* file to append to, -1: create one
	                                   at the next write */
	uint64_t off;                   /* its valid end */
	uint64_t pad_end;               /* its padding ends here (>= off) */
	uint64_t cur_first;             /* its name */
	uint64_t bad_first;             /* abandoned file, 0 if none */
};

/* ---- small helpers --------------------------------------------------- */

/* Directory names are checked against DIR_MAX when the log is opened, so
 * every path built from them fits in PATH_MAX. */
#define DIR_MAX (PATH_MAX - 64)

static void file_path(char *out, size_t n, const char *dir, uint64_t first)
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
static int list_dir(const char *dir, uint64_t **out, size_t *n)
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

/* mkdir that accepts an existing directory; *made tells if it was new. */
static int make_dir(const char *path, bool *made)
{
	*made = false;
	if (t4dx_io.mkdir(path, 0700) == 0) {
		*made = true;
		return 0;
	}
	return errno == EEXIST ? 0 : errno;
}

static int fsync_parent(const char *path)
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
	int rc = make_dir(qdir, &made);
	if (!rc && made)
		rc = fsync_parent(qdir);
	return rc;
}

/* The k-th name tried for base in the quarantine: qdir/base, then
 * qdir/base.K (nothing there is ever replaced). */
static void quarantine_name(char *out, size_t n, const char *qdir,
			    const char *base, int k)
{
	if (k == 0)
		snprintf(out, n, "%s/%s", qdir, base);
	else
		snprintf(out, n, "%s/%s.%d", qdir, base, k);
}

/* Move dir/<first>.jsonl to qdir/wal-<first>.jsonl (with a .K suffix if
 * that name is taken).  The caller fsyncs both directories. */
static int quarantine_file(const char *dir, const char *qdir, uint64_t first)
{
	char from[PATH_MAX], to[PATH_MAX + 64], base[48];
	int rc = quarantine_ready(qdir);
	if (rc)
		return rc;
	file_path(from, sizeof(from), dir, first);
	snprintf(base, sizeof(base), "wal-%020" PRIu64 WAL_EXT, first);
	for (int k = 0; k < 10000; k++) {
		quarantine_name(to, sizeof(to), qdir, base, k);
		struct stat st;
		if (lstat(to, &st) == 0)
			continue;
		if (errno != ENOENT)
			return errno;
		return t4dx_io.rename(from, to) ? errno : 0;
	}
	return EEXIST;
}

/* Bytes copied at a time into the quarantine. */
#define QUARANTINE_PIECE (1u << 20)

/* Before a damaged file is cut at valid_end, copy what is cut, the
 * damaged bytes [data_begin, data_end), to qdir/wal-<first>.at-<offset>
 * (fdatasync'ed, the directory too): recovery never throws bytes away.
 * 0 or an errno; the file is not cut unless this succeeds. */
static int quarantine_tail(const char *qdir, int fd, uint64_t first,
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
		quarantine_name(path, sizeof(path), qdir, base, k);
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

/* Bytes of the queue's lines, contents included. */
static uint64_t queue_bytes(const struct wal_queue *q)
{
	return q->buf.len + q->ext_bytes;
}

/* Room for more entries in q->ext.  0 or ENOMEM. */
static int ext_reserve(struct wal_queue *q, size_t more)
{
	if (q->next + more <= q->ecap)
		return 0;
	size_t cap = q->ecap ? 2 * q->ecap : 4;
	while (cap < q->next + more)
		cap *= 2;
	struct t4dx_rec_ext *x = realloc(q->ext, cap * sizeof(*x));
	if (!x)
		return ENOMEM;
	q->ext = x;
	q->ecap = cap;
	return 0;
}

/* Drop the first k contents (their records are gone) and move the
 * others back by the shift bytes cut from the front of buf. */
static void ext_drop_front(struct wal_queue *q, size_t k, size_t shift)
{
	for (size_t i = 0; i < k; i++) {
		q->ext_bytes -= q->ext[i].enc_len;
		t4dx_blob_unref(q->ext[i].blob);
	}
	if (q->next > k)        /* ext may be NULL (none ever queued) */
		memmove(q->ext, q->ext + k, (q->next - k) * sizeof(*q->ext));
	q->next -= k;
	for (size_t i = 0; i < q->next; i++)
		q->ext[i].at -= shift;
}

/* How many contents go into the first len bytes of buf. */
static size_t ext_within(const struct wal_queue *q, size_t len)
{
	size_t k = 0;
	while (k < q->next && q->ext[k].at < len)
		k++;
	return k;
}

static void queue_clear(struct wal_queue *q)
{
	ext_drop_front(q, q->next, 0);
	q->buf.len = 0;
	q->lo = q->hi = q->n = 0;
	if (q->buf.cap > (4u << 20))    /* do not keep a huge buffer around */
		t4dx_buf_free(&q->buf);
	if (q->ecap > 64) {
		free(q->ext);
		q->ext = NULL;
		q->ecap = 0;
	}
}

static void queue_free(struct wal_queue *q)
{
	queue_clear(q);
	t4dx_buf_free(&q->buf);
	free(q->ext);
}

/* Move the records of src to the end of dst (which holds the records
 * just before them), leaving src empty.  0 or ENOMEM (nothing moved). */
static int queue_move(struct wal_queue *dst, struct wal_queue *src)
{
	size_t base = dst->buf.len;
	if (ext_reserve(dst, src->next) ||
	    t4dx_buf_add(&dst->buf, src->buf.p, src->buf.len))
		return ENOMEM;
	for (size_t i = 0; i < src->next; i++) {
		dst->ext[dst->next] = src->ext[i];
		dst->ext[dst->next++].at += base;
	}
	dst->ext_bytes += src->ext_bytes;
	if (!dst->n)
		dst->lo = src->lo;
	dst->hi = src->hi;
	dst->n += src->n;
	src->next = 0;          /* the references moved with them */
	src->ext_bytes = 0;
	queue_clear(src);
	return 0;
}

/* Append the lines of q, contents included, to out.  0 or ENOMEM. */
static int queue_lines(const struct wal_queue *q, struct t4dx_buf *out)
{
	size_t pos = 0;
	for (size_t i = 0; i <= q->next; i++) {
		size_t end = i < q->next ? q->ext[i].at : q->buf.len;
		if (t4dx_buf_add(out, q->buf.p + pos, end - pos))
			return ENOMEM;
		pos = end;
		if (i == q->next)
			break;
		const struct t4dx_rec_ext *x = &q->ext[i];
		if (t4dx_buf_reserve(out, x->enc_len))
			return ENOMEM;
		out->len += t4dx_rec_ext_put(x, 0, x->blob->len,
					     (char *)out->p + out->len);
	}
	return 0;
}

/* ---- reading (recovery and read_all) --------------------------------- */

struct replay {
	uint64_t from;
	uint64_t floor;                 /* a file named up to floor + 1
	                                   continues the log whatever came
	                                   before it (the segments hold all
	                                   records up to floor) */
	t4dx_wal_replay_fn fn;
	void *arg;
	void (*progress)(void *arg, uint64_t bytes);     /* bytes read */
	uint64_t expect;                /* LSN the next record must have;
	                                   0: anything (no file read yet) */
	uint64_t last;                  /* highest valid LSN, 0 if none */
	bool lead_gap;                  /* a first record past floor + 1 is
	                                   a hole too (recovery) */
	bool broken;                    /* the last file read ended in
	                                   damage: a file that does not
	                                   continue it ends the reading */
	bool scan;                      /* only find the highest LSN of the
	                                   lines that decode (last) */
	struct t4dx_wal_report rep;
	unsigned char *p;               /* read buffer */
	size_t cap;
};

/* What reading one file found. */
struct file_result {
	uint64_t nrec;                  /* valid records */
	uint64_t last;                  /* LSN of the last of them */
	uint64_t valid_end;             /* bytes up to the damage or EOF */
	uint64_t size;
	bool damaged;                   /* valid_end < size, not padding */
	bool padded;                    /* valid_end < size, all '\n' */
	uint64_t data_begin, data_end;  /* the bytes after valid_end that
	                                   are not padding: the damage */
	bool foreign;                   /* first record is not the name */
	const char *why;                /* what ends the valid records */
};

static int read_more(int fd, unsigned char *p, size_t len, uint64_t off,
		     size_t *got)
{
	for (;;) {
		ssize_t n = t4dx_io.pread(fd, p, len, (off_t)off);
		if (n >= 0) {
			*got = (size_t)n;
			return 0;
		}
		if (errno != EINTR)
			return errno ? errno : EIO;
	}
}

/* Records from..to are missing (a file was removed); reading goes on. */
static void note_hole(struct replay *rp, uint64_t from, uint64_t to)
{
	struct t4dx_wal_report *rep = &rp->rep;
	if (rep->gaps < T4DX_WAL_HOLES) {
		rep->hole[rep->gaps].from = from;
		rep->hole[rep->gaps].to = to;
	}
	if (!rep->gaps)
		rep->gap_from = from;
	rep->gap_to = to;
	rep->gap_records += to - from + 1;
	rep->gaps++;
}

/* One decoded line: check the sequence and hand it on.  Returns 0, STOP
 * if the file ends here (damage), or an error. */
static int take_record(struct replay *rp, struct file_result *fr,
		       uint64_t name, struct t4dx_rec *r)
{
	if (rp->scan) {
		if (r->lsn > rp->last)
			rp->last = r->lsn;
		return 0;
	}
	if (fr->nrec == 0 ? r->lsn != name : r->lsn != fr->last + 1) {
		if (fr->nrec == 0)
			fr->foreign = true;
		fr->why = fr->nrec == 0 ? "the first record's LSN is not the "
					  "file's name"
					: "a record breaks the LSN sequence";
		return STOP;
	}
	fr->nrec++;
	fr->last = r->lsn;
	if (r->lsn <= rp->last)
		return 0;       /* a copy left in an abandoned file: seen */
	/* the log should go on where the segments end, and each file
	 * where the one before it ends: a hole is a removed file */
	uint64_t prev = rp->last > rp->floor ? rp->last : rp->floor;
	if ((rp->last || rp->lead_gap) && rp->floor < UINT64_MAX &&
	    r->lsn > prev + 1)
		note_hole(rp, prev + 1, r->lsn - 1);
	rp->last = r->lsn;
	rp->expect = r->lsn + 1;
	if (r->lsn <= rp->from) {
		rp->rep.skipped++;
		return 0;
	}
	int rc = rp->fn ? rp->fn(rp->arg, r) : 0;
	if (rc)
		return rc == STOP ? EIO : rc;
	rp->rep.records++;
	return 0;
}

/* Where, in [from, to), the file's data (bytes other than '\n') begins
 * and ends: *end is after its last such byte and the '\n' that follows
 * it, both are from if there is none (padding only).  Uses the read
 * buffer. */
static int data_span(int fd, uint64_t from, uint64_t to, struct replay *rp,
		     uint64_t *begin, uint64_t *end)
{
	uint64_t start = from;
	*begin = *end = from;
	bool any = false;
	while (from < to) {
		size_t want = rp->cap;
		if (want > to - from)
			want = (size_t)(to - from);
		size_t got;
		int rc = read_more(fd, rp->p, want, from, &got);
		if (rc)
			return rc;
		if (got == 0)
			break;          /* shorter than fstat said: nothing */
		for (size_t i = 0; !any && i < got; i++)
			if (rp->p[i] != '\n') {
				*begin = from + i;
				any = true;
			}
		for (size_t i = got; i-- > 0;)
			if (rp->p[i] != '\n') {
				*end = from + i + 1;
				break;
			}
		from += got;
	}
	/* with the '\n' that ends the last line of data */
	if (*end > start && *end < to)
		(*end)++;
	return 0;
}

static int read_file(struct replay *rp, int fd, uint64_t name,
		     struct file_result *fr)
{
	memset(fr, 0, sizeof(*fr));
	struct stat st;
	if (fstat(fd, &st))
		return errno;
	fr->size = (uint64_t)st.st_size;
	uint64_t base = 0;              /* file offset of rp->p[0] */
	size_t start = 0, scan = 0, have = 0;
	bool eof = false;
	int rc = 0;
	for (;;) {
		unsigned char *nl = have > scan ?
				    memchr(rp->p + scan, '\n', have - scan) :
				    NULL;
		if (!nl) {
			if (eof || have - start >= (size_t)INT_MAX) {
				/* a torn line (or one too long to be a
				 * record), if have > start */
				fr->why = "a line without its end (torn write)";
				break;
			}
			if (start) {
				memmove(rp->p, rp->p + start, have - start);
				base += start;
				have -= start;
				start = 0;
			}
			if (have == rp->cap) {
				size_t cap = rp->cap ? rp->cap * 2 : READ_CHUNK;
				unsigned char *p = realloc(rp->p, cap);
				if (!p)
					return ENOMEM;
				rp->p = p;
				rp->cap = cap;
			}
			size_t got;
			rc = read_more(fd, rp->p + have, rp->cap - have,
				       base + have, &got);
			if (rc)
				return rc;
			scan = have;
			have += got;
			eof = got == 0;
			if (rp->progress && got)
				rp->progress(rp->arg, got);
			continue;
		}
		size_t len = (size_t)(nl - (rp->p + start));
		struct t4dx_rec r;
		rc = t4dx_rec_decode((const char *)rp->p + start, len, &r);
		if (rc == ENOMEM)
			return rc;
		if (rc) {
			fr->why = rc == T4DX_ECORRUPT ? "a record fails its CRC "
				  "or does not parse" : t4dx_strerror(rc);
			break;
		}
		rc = take_record(rp, fr, name, &r);
		t4dx_entry_clear(&r.e);
		if (rc == STOP)
			break;
		if (rc)
			return rc;
		fr->valid_end = base + start + len + 1;
		start = scan = (size_t)(nl - rp->p) + 1;
	}
	fr->data_begin = fr->data_end = fr->valid_end;
	if (fr->valid_end < fr->size &&
	    (rc = data_span(fd, fr->valid_end, fr->size, rp, &fr->data_begin,
			    &fr->data_end)))
		return rc;
	fr->padded = fr->valid_end < fr->size &&
		     fr->data_end == fr->valid_end;
	fr->damaged = fr->data_end > fr->valid_end;
	return 0;
}

/* Does a file named n continue the log read so far? */
static bool continues(const struct replay *rp, uint64_t n)
{
	return rp->expect == 0 || n <= rp->expect ||
	       (rp->floor < UINT64_MAX && n <= rp->floor + 1);
}

/* After a file with no valid record: the next one must start at its
 * name at the earliest. */
static void note_empty(struct replay *rp, uint64_t n)
{
	if (n > rp->expect)
		rp->expect = n;
}

/* ---- t4dx_wal_read_all ----------------------------------------------- */

/* Does [from, to) of the file hold a line after its first that is a
 * valid record?  Then what stopped the reading is damage in the middle,
 * not the torn end of a write.  A region too large to read is assumed
 * to. */
static bool any_record(int fd, uint64_t from, uint64_t to)
{
	if (to <= from)
		return false;
	if (to - from > (64u << 20))
		return true;
	size_t len = (size_t)(to - from);
	char *p = malloc(len);
	if (!p || t4dx_io_pread_all(fd, p, len, (off_t)from)) {
		free(p);
		return true;
	}
	bool found = false;
	char *nl = memchr(p, '\n', len);
	while (nl && !found) {
		char *line = nl + 1, *end = memchr(line, '\n',
						   len - (size_t)(line - p));
		size_t n = end ? (size_t)(end - line) : len - (size_t)(line - p);
		struct t4dx_rec r;
		if (n && t4dx_rec_decode(line, n, &r) == 0) {
			t4dx_entry_clear(&r.e);
			found = true;
		}
		nl = end;
	}
	free(p);
	return found;
}

uint64_t t4dx_wal_files_bytes(const char *dir, bool with_archive)
{
	char sub[PATH_MAX], path[PATH_MAX];
	uint64_t total = 0;
	if (strlen(dir) > DIR_MAX)
		return 0;
	for (int k = 0; k < (with_archive ? 2 : 1); k++) {
		uint64_t *names;
		size_t n;
		snprintf(sub, sizeof(sub), k ? "%s/archive" : "%s", dir);
		if (list_dir(sub, &names, &n))
			continue;
		for (size_t i = 0; i < n; i++) {
			struct stat st;
			file_path(path, sizeof(path), sub, names[i]);
			if (stat(path, &st) == 0)
				total += (uint64_t)st.st_size;
		}
		free(names);
	}
	return total;
}

int t4dx_wal_read_all(const char *dir, bool with_archive,
		      t4dx_wal_replay_fn fn, void *arg)
{
	return t4dx_wal_read_all_damage(dir, with_archive, fn, arg, NULL);
}

int t4dx_wal_read_all_damage(const char *dir, bool with_archive,
			     t4dx_wal_replay_fn fn, void *arg,
			     struct t4dx_wal_damage *dmg)
{
	return t4dx_wal_read_all_progress(dir, with_archive, 0, fn, NULL,
					  arg, dmg);
}

/* t4dx_wal_dump's reader: each record encoded again into line. */
struct wal_dump {
	t4dx_wal_line_fn fn;
	void *arg;
	struct t4dx_buf line;
};

static int wal_dump_one(void *arg, struct t4dx_rec *r)
{
	struct wal_dump *d = arg;
	d->line.len = 0;
	int rc = t4dx_rec_encode(r, &d->line);
	return rc ? rc : d->fn(d->arg, (const char *)d->line.p, d->line.len);
}

int t4dx_wal_dump(const char *wal_dir, bool with_archive,
		  t4dx_wal_line_fn fn, void *arg, struct t4dx_wal_damage *dmg)
{
	struct wal_dump d = { .fn = fn, .arg = arg };
	int rc = t4dx_wal_read_all_damage(wal_dir, with_archive, wal_dump_one,
					  &d, dmg);
	t4dx_buf_free(&d.line);
	return rc;
}

int t4dx_wal_read_all_progress(const char *dir, bool with_archive,
			       uint64_t floor, t4dx_wal_replay_fn fn,
			       void (*progress)(void *arg, uint64_t bytes),
			       void *arg, struct t4dx_wal_damage *dmg)
{
	char arch[PATH_MAX], path[PATH_MAX];
	if (dmg)
		memset(dmg, 0, sizeof(*dmg));
	uint64_t *live = NULL, *old = NULL;
	size_t nlive = 0, nold = 0;
	struct replay rp = { .floor = floor, .fn = fn, .arg = arg,
			     .progress = progress };
	if (strlen(dir) > DIR_MAX)
		return ENAMETOOLONG;
	snprintf(arch, sizeof(arch), "%s/archive", dir);
	int rc = list_dir(dir, &live, &nlive);
	if (!rc && with_archive)
		rc = list_dir(arch, &old, &nold);
	if (rc)
		goto out;
	/* Merge both sorted lists; a name in both is read once (live). */
	size_t i = 0, j = 0;
	while (i < nlive || j < nold) {
		const char *from;
		uint64_t n;
		if (j < nold && (i == nlive || old[j] < live[i])) {
			n = old[j++];
			from = arch;
		} else {
			n = live[i++];
			from = dir;
			if (j < nold && old[j] == n)
				j++;
		}
		file_path(path, sizeof(path), from, n);
		if (!continues(&rp, n) && rp.broken) {
			if (dmg && !*dmg->path) {
				snprintf(dmg->path, sizeof(dmg->path), "%s",
					 path);
				snprintf(dmg->what, sizeof(dmg->what),
					 "the file does not continue the log: "
					 "records %llu to %llu are missing",
					 (unsigned long long)rp.expect,
					 (unsigned long long)(n - 1));
				struct stat st;
				dmg->bytes = stat(path, &st) ? 0
					     : (uint64_t)st.st_size;
			}
			break;
		}
		int fd = t4dx_io.open(path, O_RDONLY, 0);
		if (fd < 0) {
			rc = errno;
			goto out;
		}
		struct file_result fr;
		rc = read_file(&rp, fd, n, &fr);
		/* damage at the end of the last file, with no record after
		 * it, is what a crash in the middle of a group write leaves */
		bool torn = !rc && fr.damaged && i == nlive && j == nold &&
			    !any_record(fd, fr.data_begin, fr.data_end);
		t4dx_io.close(fd);
		if (rc)
			goto out;
		if (fr.foreign) {
			if (dmg && !*dmg->path) {
				snprintf(dmg->path, sizeof(dmg->path), "%s",
					 path);
				snprintf(dmg->what, sizeof(dmg->what), "%s",
					 fr.why);
				dmg->bytes = fr.size;
			}
			break;
		}
		if (fr.damaged && dmg && !*dmg->path) {
			snprintf(dmg->path, sizeof(dmg->path), "%s", path);
			snprintf(dmg->what, sizeof(dmg->what), "%s",
				 fr.why ? fr.why : "damaged");
			dmg->offset = fr.data_begin;
			dmg->bytes = fr.data_end - fr.data_begin;
			dmg->torn = torn;
		}
		if (fr.nrec == 0)
			note_empty(&rp, n);
		rp.broken = fr.damaged;
	}
	if (dmg) {
		dmg->gap_from = rp.rep.gap_from;
		dmg->gap_to = rp.rep.gap_to;
		dmg->gap_records = rp.rep.gap_records;
	}
	/* the files after the one that stopped the reading */
	if (dmg && *dmg->path)
		while (i < nlive || j < nold) {
			if (j < nold && (i == nlive || old[j] < live[i])) {
				j++;
			} else {
				if (j < nold && old[j] == live[i])
					j++;
				i++;
			}
			dmg->files_skipped++;
		}
out:
	free(live);
	free(old);
	free(rp.p);
	return rc;
}

/* ---- t4dx_wal_open --------------------------------------------------- */

static int add_file(struct t4dx_wal *w, uint64_t first, uint64_t bytes)
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

static void drop_file(struct t4dx_wal *w, size_t i)
{
	memmove(&w->files[i], &w->files[i + 1],
		(w->nfiles - i - 1) * sizeof(w->files[0]));
	w->nfiles--;
}

/* Sum of the sizes of the archived log files. */
static int archive_size(const char *arch, uint64_t *total)
{
	uint64_t *names;
	size_t n;
	char path[PATH_MAX];
	*total = 0;
	int rc = list_dir(arch, &names, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		struct stat st;
		file_path(path, sizeof(path), arch, names[i]);
		if (stat(path, &st) == 0)
			*total += (uint64_t)st.st_size;
	}
	free(names);
	return rc;
}

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
	int rc = read_file(&sc, fd, name, &fr);
	t4dx_io.close(fd);
	free(sc.p);
	if (!rc && sc.last > *top)
		*top = sc.last;
	return rc;
}

static int recover(struct t4dx_wal *w, struct replay *rp)
{
	uint64_t *names = NULL;
	size_t n = 0, nq = 0;
	char path[PATH_MAX];
	int tail_fd = -1;               /* last file read, open */
	bool tail_ro = false;
	struct file_result tail = { 0 };
	uint64_t tail_name = 0;
	int rc = list_dir(w->dir, &names, &n);
	if (rc)
		return rc;
	size_t i = 0;
	for (; i < n; i++) {
		/* after damage, point in time: nothing later is applied;
		 * after a clean end, a file that starts later means a file
		 * in between was removed: the records after that hole are
		 * valid and were acknowledged, so they are replayed (and
		 * the hole reported, see take_record) */
		if (!continues(rp, names[i]) && rp->broken)
			break;
		file_path(path, sizeof(path), w->dir, names[i]);
		bool ro;
		int fd = open_rw(path, &ro);
		if (fd < 0) {
			rc = errno;
			goto out;
		}
		struct file_result fr;
		rc = read_file(rp, fd, names[i], &fr);
		if (!rc && fr.foreign) {
			t4dx_io.close(fd);
			break;          /* quarantined below with the rest */
		}
		if (!rc && fr.damaged) {
			if (ro)
				rc = EROFS;
			else if ((rc = quarantine_tail(w->qdir, fd, names[i],
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
			rc = add_file(w, names[i], fr.valid_end);
		if (rc) {
			t4dx_io.close(fd);
			goto out;
		}
		rp->rep.files++;
		if (fr.nrec == 0)
			note_empty(rp, names[i]);
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
		file_path(path, sizeof(path), w->dir, names[i]);
		if ((rc = highest_lsn(path, names[i], &top)))
			goto out;
		if (top > rp->rep.quarantined_lsn)
			rp->rep.quarantined_lsn = top;
		if ((rc = quarantine_file(w->dir, w->qdir, names[i])))
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
		file_path(path, sizeof(path), w->dir, tail_name);
		if (t4dx_io.unlink(path) || (rc = t4dx_io_fsync_dir(w->dir))) {
			rc = rc ? rc : errno;
			goto out;
		}
		drop_file(w, w->nfiles - 1);
	}
out:
	if (tail_fd >= 0)
		t4dx_io.close(tail_fd);
	free(names);
	return rc;
}

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
	if ((rc = make_dir(w->dir, &made)) ||
	    (made && (rc = fsync_parent(w->dir))) ||
	    (rc = make_dir(w->arch, &made)) ||
	    (made && (rc = t4dx_io_fsync_dir(w->dir))))
		goto out;
	if ((rc = recover(w, &rp)) ||
	    (rc = archive_size(w->arch, &w->archive_bytes)))
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
	pthread_mutex_lock(&w->mu);
	struct wal_queue *q = &w->q;
	size_t base = q->buf.len;
	if (w->poisoned) {
		rc = EROFS;
	} else if (split && ext_reserve(q, 1)) {
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
		if ((rc = quarantine_file(w->dir, w->qdir, first)) ||
		    (rc = t4dx_io_fsync_dir(w->qdir)))
			return rc;
		w->bad_first = 0;
		pthread_mutex_lock(&w->mu);
		if (w->nfiles && w->files[w->nfiles - 1].first == first)
			drop_file(w, w->nfiles - 1);
		pthread_mutex_unlock(&w->mu);
	}
	file_path(path, sizeof(path), w->dir, first);
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
	rc = add_file(w, first, 0);
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
		file_path(path, sizeof(path), w->dir, w->cur_first);
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
		(void)queue_move(h, q);
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
		size_t ke = ext_within(h, len);
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
			add_file(w, w->cur_first, w->off);  /* updates size */
			if (k == h->n) {
				queue_clear(h);
			} else {
				memmove(h->buf.p, h->buf.p + len,
					h->buf.len - len);
				h->buf.len -= len;
				ext_drop_front(h, ke, len);
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
static void own(struct t4dx_wal *w)
{
	while (w->busy)
		pthread_cond_wait(&w->cv, &w->mu);
	w->busy = true;
}

static void disown(struct t4dx_wal *w)
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
	own(w);
	uint64_t last = w->last;
	pthread_mutex_unlock(&w->mu);
	/* An empty open file already has the next LSN as its name. */
	if (w->fd >= 0 && w->off > 0)
		close_file(w);
	pthread_mutex_lock(&w->mu);
	disown(w);
	pthread_mutex_unlock(&w->mu);
	if (last_lsn)
		*last_lsn = last;
	return 0;
}

/* Drop the records of q up to upto (a prefix: q holds lo..hi in order). */
static void queue_drop_upto(struct wal_queue *q, uint64_t upto)
{
	if (!q->n || q->lo > upto)
		return;
	if (q->hi <= upto) {
		queue_clear(q);
		return;
	}
	uint64_t k = upto - q->lo + 1;
	const unsigned char *p = q->buf.p;
	for (uint64_t i = 0; i < k; i++)
		p = (const unsigned char *)memchr(p, '\n', q->buf.len -
						  (size_t)(p - q->buf.p)) + 1;
	size_t len = (size_t)(p - q->buf.p);
	size_t ke = ext_within(q, len);
	memmove(q->buf.p, q->buf.p + len, q->buf.len - len);
	q->buf.len -= len;
	ext_drop_front(q, ke, len);
	q->lo += k;
	q->n -= k;
}

bool t4dx_wal_gone(struct t4dx_wal *w)
{
	char path[PATH_MAX];
	struct stat st;
	pthread_mutex_lock(&w->mu);
	own(w);
	pthread_mutex_unlock(&w->mu);
	bool gone = stat(w->dir, &st) != 0 || !S_ISDIR(st.st_mode);
	if (!gone && w->fd >= 0) {
		file_path(path, sizeof(path), w->dir, w->cur_first);
		gone = t4dx_io.linked(w->fd, path) == ESTALE;
	}
	pthread_mutex_lock(&w->mu);
	disown(w);
	pthread_mutex_unlock(&w->mu);
	return gone;
}

int t4dx_wal_reset(struct t4dx_wal *w, uint64_t upto)
{
	char path[PATH_MAX];
	bool made;
	pthread_mutex_lock(&w->mu);
	own(w);
	queue_drop_upto(&w->head, upto);
	queue_drop_upto(&w->q, upto);
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
	if ((rc = make_dir(w->dir, &made)) ||
	    (made && (rc = fsync_parent(w->dir))) ||
	    (rc = make_dir(w->arch, &made)) ||
	    (made && (rc = t4dx_io_fsync_dir(w->dir))))
		goto out;
	uint64_t arch;
	if (!archive_size(w->arch, &arch))
		w->archive_bytes = arch;
out:
	pthread_mutex_lock(&w->mu);
	/* forget the files that are no longer there */
	for (size_t i = w->nfiles; i-- > 0;) {
		struct stat st;
		file_path(path, sizeof(path), w->dir, w->files[i].first);
		if (stat(path, &st) && errno == ENOENT &&
		    !(w->fd >= 0 && w->files[i].first == w->cur_first))
			drop_file(w, i);
	}
	disown(w);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

static int trim_archive(struct t4dx_wal *w, uint64_t budget, uint64_t *total)
{
	uint64_t *names;
	size_t n;
	char path[PATH_MAX];
	int rc = list_dir(w->arch, &names, &n);
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
		file_path(path, sizeof(path), w->arch, names[i]);
		if (stat(path, &st) == 0)
			sizes[i] = (uint64_t)st.st_size;
		*total += sizes[i];
	}
	bool removed = false;
	for (size_t i = 0; i < n && *total > budget; i++) {
		file_path(path, sizeof(path), w->arch, names[i]);
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
	own(w);
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
		file_path(from, sizeof(from), w->dir, first);
		file_path(to, sizeof(to), w->arch, first);
		if (t4dx_io.rename(from, to))
			rc = errno ? errno : EIO;
		pthread_mutex_lock(&w->mu);
		if (rc)
			break;
		if (w->bad_first == first)
			w->bad_first = 0;
		drop_file(w, 0);
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
	disown(w);
	pthread_mutex_unlock(&w->mu);
	return rc ? rc : rc2;
}

/* ---- queries and close ----------------------------------------------- */

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
	st->pending_bytes = queue_bytes(&w->q) + queue_bytes(&w->head);
	pthread_mutex_unlock(&w->mu);
}

void t4dx_wal_close(struct t4dx_wal *w)
{
	if (!w)
		return;
	t4dx_wal_sync(w, UINT64_MAX);
	pthread_mutex_lock(&w->mu);
	own(w);
	pthread_mutex_unlock(&w->mu);
	if (w->fd >= 0)
		close_file(w);
	queue_free(&w->q);
	queue_free(&w->head);
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
		rc = queue_lines(&w->head, out);
	if (!rc && w->q.n)
		rc = queue_lines(&w->q, out);
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
	queue_clear(&w->head);
	queue_clear(&w->q);
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
