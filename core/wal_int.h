/*
 * wal_int.h - the write-ahead log's state and the calls between the files
 * that make it up.  Only the wal*.c files include it; everyone else uses
 * wal.h.  The on-disk format and the recovery rules are described at the
 * top of wal.c.
 *
 * Layering (calls only go downwards):
 *
 *   wal_archive.c   moving covered files to the archive, trimming it
 *   wal.c           open, add, group commit, rotate, reset, close
 *   wal_recover.c   recovery at open
 *   wal_read.c      reading files: records, holes, damage; read_all
 *   wal_dir.c       file names, listing, quarantine   wal_queue.c  the
 *                                                     record queue
 *
 * Locking: see struct t4dx_wal (w->mu, and the busy owner).
 */
#ifndef T4DX_WAL_INT_H
#define T4DX_WAL_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "io.h"
#include "metrics.h"
#include "rec.h"
#include "wal.h"

struct wal_waiter;

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

struct t4dx_wal {
	char *dir, *arch, *qdir;
	uint64_t max_file_bytes;
	struct t4dx_buf scratch;        /* t4dx_wal_add's (caller-serialized) */

	pthread_mutex_t mu;
	pthread_cond_t cv;              /* busy cleared (for wal_own()) */
	/* guarded by mu */
	uint64_t last;                  /* last LSN assigned */
	uint64_t last_bytes;            /* its encoded size (read and
	                                   written by t4dx_wal_add's
	                                   serialized callers) */
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

/* Directory names are checked against DIR_MAX when the log is opened, so
 * every path built from them fits in PATH_MAX. */
#define DIR_MAX (PATH_MAX - 64)

/* The state of a reading of the log (wal_read.c; wal_recover.c). */
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


/* wal_dir.c */
/* The path of the log file whose first record is first. */
void wal_file_path(char *out, size_t n, const char *dir, uint64_t first);
/* The first LSNs of the log files in dir, sorted; *out is the caller's. */
int wal_list_dir(const char *dir, uint64_t **out, size_t *n);
/* fsync the directory that holds path. */
int wal_fsync_parent(const char *path);
/* Move dir/<first>.jsonl into qdir (the caller fsyncs both). */
int wal_quarantine_file(const char *dir, const char *qdir, uint64_t first);
/* Copy bytes [from, to) of fd to qdir before a file is cut there. */
int wal_quarantine_tail(const char *qdir, int fd, uint64_t first,
			uint64_t from, uint64_t to);
/* Append a live file to w's list. */
int wal_add_file(struct t4dx_wal *w, uint64_t first, uint64_t bytes);
/* Remove file i from w's list. */
void wal_drop_file(struct t4dx_wal *w, size_t i);
/* The bytes of the archived files in arch. */
int wal_archive_size(const char *arch, uint64_t *total);

/* wal_queue.c */
/* The bytes the queue's records take, contents included. */
uint64_t wal_queue_bytes(const struct wal_queue *q);
/* Room for more contents held by reference. */
int wal_ext_reserve(struct wal_queue *q, size_t more);
/* Drop the first k contents; the others' offsets move down by shift. */
void wal_ext_drop_front(struct wal_queue *q, size_t k, size_t shift);
/* How many contents lie within the first len bytes of buf. */
size_t wal_ext_within(const struct wal_queue *q, size_t len);
/* Empty the queue, keeping its memory. */
void wal_queue_clear(struct wal_queue *q);
/* Free the queue's memory. */
void wal_queue_free(struct wal_queue *q);
/* Append src's records to dst and empty src. */
int wal_queue_move(struct wal_queue *dst, struct wal_queue *src);
/* The queue's records as the lines of the log, appended to out. */
int wal_queue_lines(const struct wal_queue *q, struct t4dx_buf *out);
/* Drop the records up to LSN upto from the front of the queue. */
void wal_queue_drop_upto(struct wal_queue *q, uint64_t upto);

/* wal_read.c */
/* Read one file of the log (name: its first LSN) into rp and *fr. */
int wal_read_file(struct replay *rp, int fd, uint64_t name,
		  struct file_result *fr);
/* Does a file named n continue what rp has read so far? */
bool wal_continues(const struct replay *rp, uint64_t n);
/* File n held no record: note it as rp's reading would. */
void wal_note_empty(struct replay *rp, uint64_t n);

/* wal_recover.c */
/* Recover the log in w->dir at open, replaying it through rp. */
int wal_recover(struct t4dx_wal *w, struct replay *rp);

/* wal.c */
/* Wait for and take the writer's file state.  w->mu held. */
void wal_own(struct t4dx_wal *w);
/* Give up what wal_own took. */
void wal_disown(struct t4dx_wal *w);

#endif
