/*
 * wal.h - the write-ahead log: JSON-lines files in DATA_DIR/wal, named by
 * the first LSN they hold, with group commit.  Format and recovery rules
 * are described at the top of wal.c.
 *
 * Threading: t4dx_wal_add() must be called by one thread at a time (the
 * engine calls it under its own mutex, so LSN order is apply order).
 * t4dx_wal_sync() may be called by many threads at once: one of them (the
 * leader) writes and fdatasyncs everything queued so far while the others
 * wait; records queued while a leader syncs are taken by the next leader.
 */
#ifndef T4DX_WAL_H
#define T4DX_WAL_H

#include <stdint.h>

#include "rec.h"

struct t4dx_wal;

/* Called for every valid record during recovery, in LSN order.  A non-zero
 * return aborts recovery with that code.  r is valid during the call only:
 * to keep r->e.content, take a reference (t4dx_entry_copy) or take it
 * over by setting r->e.content to NULL. */
typedef int (*t4dx_wal_replay_fn)(void *arg, struct t4dx_rec *r);

struct t4dx_wal_report {
	uint64_t records;       /* records passed to the replay callback */
	uint64_t skipped;       /* valid records with lsn <= from_lsn */
	uint64_t bytes_dropped; /* torn/damaged bytes truncated away */
	uint64_t files;         /* WAL files read */
	uint64_t bytes_read;    /* bytes read from them */
	/* the first files, whose records the segments hold all (the next
	 * file starts at from_lsn + 1 or before): listed, not read */
	uint64_t files_covered, bytes_covered;
	uint64_t last_lsn;      /* highest valid LSN found (or from_lsn) */
	/* Records the log should hold and does not (a log file was
	 * removed): before the first record found (from_lsn + 1 on) or
	 * between two files.  The records after a hole are replayed.
	 * [gap_from, gap_to] spans every hole (0 0 if none); gap_records
	 * counts the missing LSNs, gaps the holes, and hole[] names the
	 * first T4DX_WAL_HOLES of them. */
	uint64_t gap_from, gap_to;
	uint64_t gap_records, gaps;
#define T4DX_WAL_HOLES 4
	struct { uint64_t from, to; } hole[T4DX_WAL_HOLES];
	/* files moved to the quarantine (they did not continue the log
	 * after damage, or their first record is not their name), and the
	 * highest LSN found in them: new records are numbered after it, so
	 * that no LSN is ever given to two records */
	uint64_t files_quarantined;
	uint64_t quarantined_lsn;
};

/* Open the log in dir (DATA_DIR/wal; created with dir/archive if missing).
 * Replays, in LSN order, every valid record with lsn > from_lsn through fn
 * (files whose records are all <= from_lsn are not read, see
 * rep.files_covered; t4dx_wal_archive moves them);
 * stops at the first record that is torn, unparsable, fails its CRC or
 * breaks the LSN sequence, truncates the file there and moves any later
 * files that do not continue it to quarantine_dir (never deletes them).
 * A file that starts past the end of a clean previous file (a file in
 * between was removed) is replayed, and the hole reported in rep.  New
 * records get LSNs from max(last valid LSN, from_lsn, the highest LSN in
 * a quarantined file) + 1.  max_file_bytes: rotate to a new file when the
 * current one grows past it. */
int t4dx_wal_open(const char *dir, const char *quarantine_dir,
		  uint64_t from_lsn, uint64_t max_file_bytes,
		  t4dx_wal_replay_fn fn, void *arg,
		  struct t4dx_wal_report *rep, struct t4dx_wal **out);

/* Assign the next LSN to r (stored in r->lsn), encode it and queue it for
 * the next group commit.  Nothing is written yet.  0 or ENOMEM. */
int t4dx_wal_add(struct t4dx_wal *w, struct t4dx_rec *r);

/* Wait until every record up to lsn is durable (written and fdatasync'ed),
 * leading a group commit if no other thread is.  Returns 0, or the errno
 * of the failed write/fdatasync/truncate of the group lsn belonged to.  A
 * failed group is truncated away and stays queued: the next commit writes
 * it again (after a failed fdatasync the earlier bytes are never trusted).
 * If the file cannot even be truncated back, the next commit starts a new
 * file instead. */
int t4dx_wal_sync(struct t4dx_wal *w, uint64_t lsn);

/* Make everything queued durable, then start a new file whose name is the
 * next LSN (created when its first record is written).  Returns the LSN of
 * the last record in the old files.  The caller must not call
 * t4dx_wal_add() concurrently. */
int t4dx_wal_rotate(struct t4dx_wal *w, uint64_t *last_lsn);

/* The log's files were removed behind the daemon's back (a group failed
 * with ESTALE) and every record up to upto has since been saved in a
 * segment: drop the queued records up to upto (they count as durable),
 * forget the files that are gone, make dir and dir/archive again, and go
 * on in a new file from the next group.  Records after upto stay queued.
 * 0, or the errno of making the directories. */
int t4dx_wal_reset(struct t4dx_wal *w, uint64_t upto);
/* Is the log removed: its directory, or the file being appended to? */
bool t4dx_wal_gone(struct t4dx_wal *w);
/* Move every WAL file whose records all have lsn <= upto into
 * dir/archive, then delete the oldest archived files while the archive is
 * larger than archive_max_bytes. */
int t4dx_wal_archive(struct t4dx_wal *w, uint64_t upto,
		     uint64_t archive_max_bytes);

uint64_t t4dx_wal_last_lsn(struct t4dx_wal *w);     /* last assigned */
/* The encoded size of the record the last t4dx_wal_add queued (for its
 * serialized callers). */
uint64_t t4dx_wal_last_add_bytes(struct t4dx_wal *w);
uint64_t t4dx_wal_durable_lsn(struct t4dx_wal *w);
struct t4dx_wal_stats {
	uint64_t bytes;         /* bytes in live (unarchived) files */
	uint64_t archive_bytes;
	uint64_t syncs;         /* fdatasync calls that succeeded */
	uint64_t records;       /* records made durable */
	uint64_t pending;       /* records queued, not yet durable */
	uint64_t pending_bytes; /* their encoded size */
	uint64_t durable;       /* every LSN up to it is on disk */
};
void t4dx_wal_get_stats(struct t4dx_wal *w, struct t4dx_wal_stats *st);
/* Bytes of the live files that hold only records after lsn (a file is
 * named by its first LSN; the flush starts a new file). */
uint64_t t4dx_wal_bytes_after(struct t4dx_wal *w, uint64_t lsn);

/* Observe the latency of every fdatasync in h (NULL: none).  h must
 * outlive the log. */
struct t4dx_hist;
void t4dx_wal_set_sync_hist(struct t4dx_wal *w, struct t4dx_hist *h);
/* Call fn(arg, rc) once for every group commit tried, by its leader, with
 * 0 or the errno that failed it (no lock of the WAL held). */
void t4dx_wal_set_group_hook(struct t4dx_wal *w, void (*fn)(void *, int),
			     void *arg);

/* Write at most max_records records per group commit (0: no limit), so
 * that a long backlog drains in bounded steps. */
void t4dx_wal_set_batch(struct t4dx_wal *w, uint64_t max_records);

/* Append to out the lines of every record queued but not yet durable, in
 * LSN order; *first is the LSN of the first (0 if none). */
int t4dx_wal_pending(struct t4dx_wal *w, struct t4dx_buf *out,
		     uint64_t *first);

/* Drop every record that is queued but not durable and give their LSNs
 * back (the next record gets durable + 1), so that a refused change is
 * never written later.  [*from, *to] is the dropped range (empty if from
 * > to).  If a file had to be abandoned (it could not be cut back and may
 * hold copies of those records) the LSNs are not given back and the log
 * refuses every new record with EROFS until it is reopened.  The caller
 * must not call t4dx_wal_add() concurrently. */
int t4dx_wal_discard_pending(struct t4dx_wal *w, uint64_t *from,
			     uint64_t *to);

/* Sync what is queued (errors ignored) and free everything. */
void t4dx_wal_close(struct t4dx_wal *w);

/* Read every record of the files in dir (and dir/archive if
 * with_archive) in LSN order, without changing anything; for t4dx
 * wal-dump and segment rebuilds.  Stops quietly at damage. */
int t4dx_wal_read_all(const char *dir, bool with_archive,
		      t4dx_wal_replay_fn fn, void *arg);
/* struct t4dx_wal_damage is in t4dx.h (t4dx_wal_dump gives it too). */
int t4dx_wal_read_all_damage(const char *dir, bool with_archive,
			     t4dx_wal_replay_fn fn, void *arg,
			     struct t4dx_wal_damage *dmg);
/* Bytes of the log's files (and the archive's). */
uint64_t t4dx_wal_files_bytes(const char *dir, bool with_archive);
/* The same, calling progress (may be NULL) with the bytes of each read
 * from the files (for a progress bar).  floor: the MANIFEST's flushed
 * LSN; as at a start, a file named up to floor + 1 continues the log
 * whatever is missing before it (those records are in segments). */
int t4dx_wal_read_all_progress(const char *dir, bool with_archive,
			       uint64_t floor, t4dx_wal_replay_fn fn,
			       void (*progress)(void *arg, uint64_t bytes),
			       void *arg, struct t4dx_wal_damage *dmg);

#endif
