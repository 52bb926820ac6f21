/*
 * engine_int.h - the engine's state and the calls between the files that
 * make up the engine.  Only core/ includes it; everyone else sees
 * struct t4dx through t4dx.h as an opaque handle.
 *
 * Layering.  The engine's files call each other only downwards, so that
 * the call graph is a DAG (a file never calls one on its own level or
 * above it):
 *
 *   engine.c     open, close, stats
 *   recover.c    replay, load and rebuild segments, rescue file replay
 *   flusher.c    the background threads (flusher, merger)
 *   compact.c    compaction runs         health.c   the health thread
 *   commit.c     apply and the write path
 *   flush.c      the flush trigger, cutting the memtable into a segment
 *   merge.c      lookups, merge iterator     tier.c      what to merge
 *   segments.c   segment files, MANIFEST     fallback.c  levels, rescue
 *   seg_index.c  each segment's vector index file
 *
 * Signalling another thread (setting a flag under bg_mu and waking it) is
 * not a call: commit.c and flush.c wake the flusher that way.  Nor is the
 * WAL's group hook, eng_group_done (commit.c), which t4dx_wal_sync runs
 * for whoever syncs (fallback.c, flush.c too): a leaf that only records
 * the result in the breaker and wakes the flusher.
 *
 * Locking.  db->lock (a rwlock) guards mem, imm, segs, next_ino, items,
 * next_seg_id and flushed_lsn.  A change takes it for writing while it
 * validates, queues its WAL record and applies it to the memtable, so the
 * memtable always equals the WAL replayed in LSN order; it then drops the
 * lock and waits for its LSN to become durable, so many writers share one
 * group commit.  Readers take it for reading.  db->flush_mu makes flushes
 * run one at a time; a flush holds db->lock only to swap memtables and to
 * install the new segment, never while it writes the segment.  An
 * automatic merge (merger thread) holds flush_mu only to choose its
 * inputs and to install its output, so that flushes go on while it
 * writes; nrem and prune hold it for their whole run.
 *
 * Readers may see a change whose commit is still under way (as with a page
 * cache); a change whose commit fails stays queued in the WAL and is
 * written by the next commit, so what readers saw and what recovery
 * rebuilds never disagree.
 */
#ifndef T4DX_ENGINE_INT_H
#define T4DX_ENGINE_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "alert.h"
#include "breaker.h"
#include "io.h"
#include "lru.h"
#include "manifest.h"
#include "metrics.h"
#include "memtable.h"
#include "rec.h"
#include "seg.h"
#include "t4dx.h"
#include "wal.h"

/*
 * The state of an open store.  Each field says what guards it:
 *   "lock"        db->lock (read to read it, write to change it);
 *   "flush_mu", "bg_mu", "health_mu", "cstats_mu": that mutex;
 *   "open"        set while opening, before any thread starts, and
 *                 constant until close;
 *   "atomic"      a C11 atomic, read and written without a lock;
 *   "own lock"    an object that locks itself;
 *   a thread's name: used by that thread alone (close reads it only
 *                 after joining the thread).
 */
struct t4dx {
	char *dir;                      /* open */
	/* shorter than PATH_MAX so that file names fit below them; open */
	char seg_dir[PATH_MAX - 64], wal_dir[PATH_MAX - 64],
	     quarantine_dir[PATH_MAX - 64];
	int lock_fd;                    /* open */
	bool lock_held;                 /* open: LOCK is ours (exclusive) */
	struct t4dx_config cfg;         /* open */
	struct t4dx_wal *wal;           /* open; own lock */

	pthread_rwlock_t lock;
	struct t4dx_mem *mem;           /* guarded by lock */
	struct t4dx_mem *imm;           /* being flushed; guarded by lock
	                                   (its entries never change: the
	                                   flush reads them unlocked) */
	uint64_t imm_lsn;               /* last LSN in imm; lock */
	uint64_t imm_items, imm_next_ino; /* items, next_ino as of imm_lsn;
	                                     lock */
	struct t4dx_seg **segs;         /* oldest first; guarded by lock */
	size_t nsegs;                   /* lock */
	uint64_t next_ino, items, next_seg_id, flushed_lsn;     /* lock */
	/* the state the MANIFEST describes (as of flushed_lsn); lock */
	uint64_t seg_items, man_next_ino;
	bool manifest_unsynced;         /* last MANIFEST maybe not durable:
	                                   keep what the old one names;
	                                   flush_mu (written with lock held
	                                   too) */

	pthread_mutex_t flush_mu;       /* one flush at a time */

	pthread_mutex_t bg_mu;          /* guards the flusher's flags */
	pthread_cond_t bg_cond;
	bool bg_want, bg_stop;          /* bg_mu */
	bool bg_started;                /* open */
	/* the write stall (stall_behind_flush, commit.c): flushes ended,
	 * success or not, flushes under way, and the writers waiting for
	 * the next end (bg_mu) */
	uint64_t flush_gen, stalls;
	unsigned stalled, flushing;
	pthread_cond_t flush_done;
	bool bg_compact;                /* segments piled up: merge some;
	                                   bg_mu (the merger's flag, waited
	                                   for on merge_cond) */
	pthread_cond_t merge_cond;
	pthread_t merger;               /* open */
	bool merger_started;            /* open */
	uint64_t merge_out_id;          /* the segment an automatic merge is
	                                   writing, not yet in the MANIFEST,
	                                   or 0; lock */
	bool bg_wal_gone;               /* a group found the log removed;
	                                   bg_mu */
	bool wal_save_failed;           /* eng_save_lost_wal failed; the
	                                   flusher thread */
	/* memtables cut into a segment while the log was gone, whose
	 * MANIFEST may not be durable: the rescue file holds them until a
	 * MANIFEST is (oldest first; guarded by flush_mu) */
	struct t4dx_mem **unsaved;
	size_t nunsaved;                /* flush_mu */
	pthread_t bg;                   /* open */

	struct t4dx_recovery recovery;  /* written while opening only */

	struct t4dx_breaker *breaker;   /* open; own lock */
	struct t4dx_alerts *alerts;     /* open; own lock */
	struct t4dx_hist fsync_hist;    /* atomic (the WAL observes it) */
	struct t4dx_hist compact_hist[T4DX_COMPACT_KINDS];     /* atomic */

	/* health checker */
	pthread_t health_thr;           /* open */
	bool health_started;            /* open */
	pthread_mutex_t health_mu;      /* guards health, health_stop */
	pthread_cond_t health_cond;
	bool health_stop;               /* health_mu */
	struct t4dx_health health;      /* health_mu */
	size_t verify_next;             /* next segment to verify; the
	                                   health thread */
	struct t4dx_seg *verify_seg;    /* being verified, a slice a tick,
	                                   from block verify_block on; both
	                                   used by the health thread only */
	size_t verify_block;

	/* the embedder thread (embedder.c), NULL when vector.embedder is
	 * "off"; its own lock.  Set at open, cleared at close. */
	struct eng_embedder *emb;
	/* vectors and marks that flushes made, counted once their segment
	 * is in the MANIFEST (flush.c); atomic */
	atomic_uint_least64_t flush_embedded, flush_tried;
	/* and the files whose vectors they left to it for a busy CPU */
	atomic_uint_least64_t flush_left;
	/* DATA_DIR/EMBEDDER names the running embedder, or marks its redo
	 * (embedder.c): only then may a flush compute its vectors.  The
	 * flusher starts before the embedder thread, and flushes a long
	 * replayed log at once: a vector of a new embedder (another
	 * vector.dim) in a segment while EMBEDDER still names the old one
	 * would stay for good after a crash and a start with the old one */
	atomic_bool emb_named;
	/* vector work waits while files are written on a busy CPU (busy.c) */
#define BUSY_FIELDS 8   /* /proc/stat's "cpu" fields read: to steal */
	struct eng_busy {
		pthread_mutex_t mu;
		atomic_int_least64_t last_put;  /* a put's last key, mono ns */
		int64_t quiet;                  /* writes paused: ns; set at open */
		int fixed;                      /* tests' spare share, or -1 */
		char *path;                     /* tests' /proc/stat, or NULL */
		atomic_int_least64_t at;        /* the last sample, written
						 * under mu */
		uint64_t v[BUSY_FIELDS];        /* its counters; mu */
		bool have;                      /* v was read; mu */
		atomic_int pct;                 /* spare share since the one
						 * before, -1 unknown; written
						 * under mu */
	} busy;

	/* compaction: compact_mu is held for a whole run */
	pthread_mutex_t compact_mu;
	atomic_int running;             /* kind running, or -1; atomic */
	pthread_mutex_t reject_mu;      /* policy reject: one commit at a time */
	pthread_mutex_t cstats_mu;      /* guards cstats */
	struct t4dx_compact_stats cstats[T4DX_COMPACT_KINDS];  /* cstats_mu */
	double test_pause_s;            /* T4DX_TEST_COMPACT_PAUSE; open */

	/* fallback */
	atomic_uint_least64_t unpersisted_hi;  /* highest LSN acknowledged
	                                          before it was durable;
	                                          atomic */
	/* the embedder's records not yet known durable, LSN order (one
	 * thread logs them, under the change lock): the replay queue's
	 * bound counts users' changes only, and these apart */
	pthread_mutex_t vq_mu;
	struct eng_vq { uint64_t lsn, bytes; } *vq;     /* vq_mu */
	size_t vq_head, vq_n, vq_cap;                   /* vq_mu, a ring */
	uint64_t vq_bytes;                              /* vq_mu */
	atomic_bool seg_failed;         /* a segment could not be read;
	                                   atomic */
	unsigned verify_ok_run;         /* segment checks passed since; under
	                                   health_mu */
	struct t4dx_lru *lru;           /* the fallback cache; open; own
	                                   lock */
	uint64_t rescued;               /* records replayed from rescue
	                                   files; written while opening
	                                   only */
	char rescue_dir[PATH_MAX];      /* where rescue files go when DATA_DIR
	                                   cannot take them; "" if nowhere;
	                                   open */
	char rescue_tag[40];            /* names this store in rescue_dir;
	                                   open */
	char rescue_problem[PATH_MAX + 320]; /* "" or why rescue_dir is poor;
	                                        open */
	t4dx_dump_fn dump;              /* unsaved records, the last resort;
	                                   set by the caller before close */
	void *dump_arg;
	/* a record was queued but could not be applied: the memtable no
	 * longer equals the WAL, so every later change is refused (EIO)
	 * until a restart replays the WAL (LMDB's MDB_FATAL_ERROR); atomic */
	atomic_bool fatal;

	/* T4DX_OPEN_READONLY: nothing in dir is changed (no WAL open, no
	 * thread, no quarantine); every change answers EROFS; open */
	bool readonly;
	uint64_t ro_last_lsn;           /* last WAL record read; open */
	bool nolock;                    /* read-only without the lock; open */
	uint64_t man_seg_id;            /* next_seg_id of the MANIFEST read;
	                                   open */
	t4dx_rebuild_fn rebuild_fn;     /* progress of a rebuild at open */
	void *rebuild_arg;

	/* what the compaction under way has done: entries taken and the
	 * most it will take (0/0 when none runs); atomic */
	atomic_uint_least64_t progress_done, progress_total;
	/* the commit timer (flusher.c): records queued that nobody waits
	 * for are committed within cfg.wal.commit_interval_ms.  ct_armed
	 * is set by whoever queues such a record (atomic, so that only the
	 * first of a window takes ct_mu to wake the thread) */
	atomic_bool ct_armed;
	pthread_mutex_t ct_mu;
	pthread_cond_t ct_cond;         /* CLOCK_MONOTONIC */
	bool ct_stop;                   /* ct_mu */
	pthread_t ct_thr;               /* open */
	bool ct_started;                /* open */
	/* T4DX_DURABLE_CLOSE or T4DX_DURABLE_FSYNC (t4dx_wait); atomic */
	atomic_int durability;

	/* id -> key, a hint checked at each use (idmap.c); idmap_mu, a
	 * leaf lock (never held while taking another) */
	pthread_mutex_t idmap_mu;
	struct idkey *idmap;            /* idmap_mu */
	uint64_t idmap_walks;           /* idmap_mu */
};


/* The merge iterator (merge.c): sources newest first, see eng_merge_open. */
struct msrc;
struct merge {
	struct msrc *src;
	size_t n;
	struct msrc **ties;             /* eng_merge_next's scratch: n slots */
	bool with_content;
	struct t4dx_entry cur;          /* a mem entry returned without its
	                                   content, owned */
};

/* merge.c */
/* Find a key in mem, imm, then the segments newest first.  Lock held. */
int eng_lookup(struct t4dx *db, uint64_t parent, const char *name, size_t len,
	       bool with_content, struct t4dx_entry *out);
/* The same, reading what (T4DX_SEG_*): the vector without the content
 * (T4DX_SEG_VEC) reads no segment's content part. */
int eng_lookup_what(struct t4dx *db, uint64_t parent, const char *name,
		    size_t len, unsigned what, struct t4dx_entry *out);
/* Open the merge over mem, imm and segs[0..nsegs), from a key on. */
int eng_merge_open(struct merge *m, struct t4dx_mem *mem, struct t4dx_mem *imm,
		   struct t4dx_seg **segs, size_t nsegs, uint64_t parent,
		   const char *name, size_t len, bool with_content);
/* The next key's newest entry (maybe a tombstone), owned by the merge. */
int eng_merge_next(struct merge *m, const struct t4dx_entry **out);
/* Release what eng_merge_open took. */
void eng_merge_close(struct merge *m);
/* 0 if directory ino has no live child, else ENOTEMPTY.  Lock held. */
int eng_check_empty(struct t4dx *db, uint64_t ino);

/* idmap.c */
/* Free the id map (close). */
void eng_idmap_free(struct t4dx *db);

/* tier.c */
/* Should segments merge?  Then segs[*lo..*hi) (lo may be NULL). */
bool eng_auto_pick(struct t4dx *db, size_t *lo, size_t *hi);

/* segments.c */
/* The path of segment id (tmp: its temporary file). */
void eng_seg_file(struct t4dx *db, uint64_t id, char *path, size_t len,
		  bool tmp);
/* The path of segment id's damage marker. */
void eng_seg_marker(struct t4dx *db, uint64_t id, char *path, size_t len);
/* s was found damaged (why): leave its marker for the next start, and
 * alert.  0 or the errno of the marker's write. */
int eng_mark_damaged(struct t4dx *db, struct t4dx_seg *s, int why);
/* (merge.c) Reading s failed with rc, in a lookup or a search: mark it
 * if damaged, and go to level 2 (segments cannot be read), with an
 * alert the first time. */
void eng_seg_unreadable(struct t4dx *db, struct t4dx_seg *s, int rc);
/* Write a MANIFEST naming segs[0..n) as of flushed_lsn.  Lock held. */
int eng_save_manifest(struct t4dx *db, struct t4dx_seg **segs, size_t n,
		      uint64_t flushed_lsn, uint64_t next_ino, uint64_t items);
/* Write sorted entries v[0..n) as segment id, durable and open. */
int eng_make_segment(struct t4dx *db, uint64_t id, struct t4dx_entry **v,
		     size_t n, struct t4dx_seg **out);
/* Remove the files of seg/ that doomed(db, name, arg) picks, then sync
 * seg/ if any went. */
void eng_seg_dir_remove(struct t4dx *db,
			bool (*doomed)(struct t4dx *db, const char *name,
				       void *arg),
			void *arg);
/* Remove segment id's file and its index file (not the directory sync). */
void eng_seg_unlink(struct t4dx *db, uint64_t id);
/* Begin segment id to be written an entry at a time. */
int eng_begin_segment(struct t4dx *db, uint64_t id, uint64_t n_hint,
		      struct t4dx_seg_writer **w);
/* Finish what eng_begin_segment began and put it in place, open. */
int eng_end_segment(struct t4dx *db, uint64_t id, struct t4dx_seg_writer *w,
		    struct t4dx_seg **out);
/* Make segs[0..n) the live list, in the MANIFEST and in db.  Lock held. */
int eng_install_segments(struct t4dx *db, struct t4dx_seg **segs, size_t n,
			 uint64_t flushed_lsn, uint64_t next_ino,
			 uint64_t seg_items);

/* seg_index.c */
struct t4dx_index;
/* The path of segment id's index file (tmp: its temporary file). */
void eng_index_file(struct t4dx *db, uint64_t id, char *path, size_t len,
		    bool tmp);
/* Does s get an index (vector.index_min_items, a format with vectors)? */
bool eng_index_wanted(struct t4dx *db, struct t4dx_seg *s);
/* Build s's index from its vectors and save it durably (or remove a
 * stale file of its id when s wants none: *out NULL).  No lock held. */
int eng_index_build(struct t4dx *db, struct t4dx_seg *s,
		    struct t4dx_index **out);
/* The index of a segment just written, before a MANIFEST names it: any
 * file of its id removed durably (else that error), then
 * eng_index_build, whose failure is an alert and leaves s to be searched
 * without an index (0). */
int eng_index_place(struct t4dx *db, struct t4dx_seg *s);
/* s's index, loaded on first use: T4DX_SEG_IX_* and *ix (see seg.h); a
 * missing or damaged file is an alert, once. */
int eng_seg_index(struct t4dx *db, struct t4dx_seg *s,
		  struct t4dx_index **ix);
/* nrem and prune (compact.c) build one index of everything while the
 * inputs' indexes, retired by the same switch, may be loaded: drop frees
 * the graphs of those loaded (searches read those segments whole until
 * the switch), restore loads them again after a run that failed, whose
 * inputs stay live.  No lock held. */
void eng_index_drop_inputs(struct t4dx *db, struct t4dx_seg **in, size_t n);
void eng_index_restore_inputs(struct t4dx *db, struct t4dx_seg **in,
			      size_t n);
/* The health check of s's index file: read and checked whole; missing or
 * damaged, it is rebuilt.  0 or the problem found (the rebuild's result
 * is an alert).  No lock held. */
int eng_index_check(struct t4dx *db, struct t4dx_seg *s);
/* Is name an index file name of seg/ (its segment's id in *id, if
 * id is not NULL)? */
bool eng_index_name(const char *name, uint64_t *id);
/* Is name an index file of seg/ that no live segment owns (a temporary
 * one, or that of a segment quarantined or named by no MANIFEST)? */
bool eng_index_orphan(struct t4dx *db, const char *name);

/* fallback.c */
/* Is the fallback policy "queue" (not "reject")? */
bool eng_queueing(struct t4dx *db);
/* How many acknowledged records are not durable yet. */
uint64_t eng_unpersisted(struct t4dx *db);
/* The degradation level now: 0 normal, 1 read-only, 2 in-memory. */
int eng_current_level(struct t4dx *db);
/* Recompute the degradation level; a change is an alert. */
void eng_note_level(struct t4dx *db);
/* Records up to lsn were acknowledged before they were durable. */
void eng_mark_unpersisted(struct t4dx *db, uint64_t lsn);
/* May a change be applied now?  0, ENOSPC, EIO or EROFS. */
int eng_gate(struct t4dx *db);
/* commit_locked's flag: the embedder's record (see eng_vq_push) */
#define ENG_DERIVED 0x100
/* May the embedder log a record now?  0, EAGAIN, EIO or EROFS. */
int eng_gate_embedder(struct t4dx *db);
/* The embedder's record lsn of bytes was logged (change lock held). */
int eng_vq_push(struct t4dx *db, uint64_t lsn, uint64_t bytes);
/* The embedder's records among the ws->pending ones, and their bytes. */
void eng_vq_count(struct t4dx *db, const struct t4dx_wal_stats *ws,
		  uint64_t *n, uint64_t *bytes);
/* Save the records that could not be made durable in a rescue file. */
int eng_write_rescue(struct t4dx *db, bool wal_lost);
/* Read DATA_DIR/ID, or make it if it does not exist. */
int eng_store_id(struct t4dx *db);
/* Choose where rescue files go when DATA_DIR cannot take them. */
void eng_choose_rescue_dir(struct t4dx *db);

/* flush.c */
/* Is a flush due (memtable limits, log since the last cut)?  Lock held. */
bool eng_flush_due(struct t4dx *db);
/* Wake the flusher if a flush is due.  Lock held. */
void eng_maybe_wake_flusher(struct t4dx *db);
/* Free the memtables kept for a rescue file.  flush_mu held. */
void eng_drop_unsaved(struct t4dx *db);
/* Cut the memtable into a segment (wal_lost: see t4dx_close). */
int eng_flush_cut(struct t4dx *db, struct t4dx_compact_run *run, bool wal_lost);
/* A flush, flush_mu held. */
int eng_flush_locked(struct t4dx *db, struct t4dx_compact_run *run);
/* Save the records of a log removed while mounted in a segment. */
void eng_save_lost_wal(struct t4dx *db);

/* commit.c */
/* Apply record r to the memtable (live change or replay).  Lock held. */
int eng_apply(struct t4dx *db, struct t4dx_rec *r);
/* A queued record could not be applied: refuse changes from now on. */
int eng_fatal(struct t4dx *db, int rc);
/* The WAL's group commit hook: counts each group in the breaker. */
void eng_group_done(void *arg, int rc);
/* Records were queued that nobody may wait for: have the commit timer
 * write them within wal.commit_interval_ms. */
void eng_commit_soon(struct t4dx *db);
/* Make every record queued so far durable, as a waiter would (the
 * breaker, the fallback); the commit timer's group.  0, the error, or
 * EAGAIN without trying while the breaker is OPEN. */
int eng_commit_queued(struct t4dx *db);
/* t4dx_wait in every durability mode (mode fsync does not skip it): for
 * the engine's own records whose durability something else is said to
 * follow (the embedder: idle, a redo's end in EMBEDDER). */
int eng_wait_always(struct t4dx *db, uint64_t lsn);
/* Log the embedder's outcome for (parent, name), computed from content
 * c of the file's version seen (its LSN; 0 if unknown), without waiting
 * (its LSN in *lsn): src EMBED with the vector v, or TRIED (v NULL: the
 * content gets none).  Only if the file still holds those bytes and no
 * hand vector (else ESTALE, nothing done), and only at level 0 (else
 * EAGAIN). */
int eng_set_embedded(struct t4dx *db, uint64_t parent, const char *name,
		     size_t name_len, const struct t4dx_blob *c,
		     uint64_t seen, int src, struct t4dx_blob *v,
		     uint64_t *lsn);

/* search.c */
/* The path below items/ of the entry at (parent, name), as a search's
 * results name it ("a/b/name", malloc'd into *out): from the directories
 * of the memtables and of every segment (kept with each once read), so
 * not for the write path.  0; ENOENT if a directory on the way is not
 * live (or in a segment that cannot be read); ENOMEM. */
int eng_path_of(struct t4dx *db, uint64_t parent, const char *name,
		size_t len, char **out);

/* embedder.c */
/* Start the thread (vector.embedder "builtin" or "command"; else
 * nothing), which first
 * queues every file without a vector (and, when DATA_DIR/EMBEDDER names
 * another embedder, every file of the embedder's); stop it (close). */
int eng_embedder_start(struct t4dx *db);
void eng_embedder_stop(struct t4dx *db);
/* A flush under way falls behind the writers: what it left to threads at
 * nice 19 is to be done at normal priority too (flush.c). */
bool eng_flush_behind(struct t4dx *db);
/* A flush gave made files their vector and marked tried more (counted
 * with the embedder's own in t4dx_embed_stats), and left the vectors of
 * left files to the thread for a busy CPU. */
void eng_embed_count_flush(struct t4dx *db, uint64_t made, uint64_t tried,
			   uint64_t left);
/* Queue a file whose content changed, for its vector (a put: also the
 * time busy.c goes by). */
void eng_embed_queue(struct t4dx *db, uint64_t parent, const char *name,
		     size_t len);

/* health.c */
/* The health thread (arg: the struct t4dx). */
void *eng_health_main(void *arg);

/* compact.c */
/* One compaction run of kind (block: wait; tiered: automatic merge). */
int eng_compact(struct t4dx *db, int kind, t4dx_removed_fn removed, void *arg,
		bool block, bool tiered);

/* flusher.c */
/* The flush thread (arg: the struct t4dx). */
void *eng_flusher(void *arg);
/* The automatic merge thread (arg: the struct t4dx). */
void *eng_merger(void *arg);
/* The commit timer thread (arg: the struct t4dx). */
void *eng_committer(void *arg);

/* recover.c */
/* The WAL replay callback: apply one record. */
int eng_replay_one(void *arg, struct t4dx_rec *r);
/* Alert about files in DATA_DIR the engine does not know. */
void eng_report_strays(struct t4dx *db);
/* Open the MANIFEST's segments; quarantine and rebuild damaged ones. */
/* Where a rescue file may go besides DATA_DIR (fallback.c). */
#define ENG_RESCUE_CANDIDATES 4
size_t eng_rescue_candidates(const struct t4dx *db,
			     const char *out[ENG_RESCUE_CANDIDATES]);
int eng_load_segments(struct t4dx *db, struct t4dx_manifest *m, char *msg,
		      size_t msglen);
/* Read-only open: replay the WAL into the memtable, change nothing. */
int eng_open_wal_readonly(struct t4dx *db, char *msg, size_t msglen);
/* After the WAL's open: archive the log files it found covered. */
void eng_archive_covered(struct t4dx *db, uint64_t files);
/* Replay the rescue files in dir whose names start with prefix. */
void eng_replay_rescue_dir(struct t4dx *db, const char *dir,
			   const char *prefix);

/* Is a flush writing a segment now?  *gen: the flush generation, read
 * first, so that an end after the call counts (flush_done). */
bool eng_flush_under_way(struct t4dx *db, uint64_t *gen);
/* Does a flush compute e's vector (the builtin embedder)?  A file with
 * content and neither a vector nor a mark, and not provisional (its put,
 * with a record, comes and replaces it). */
bool eng_flush_embeds(const struct t4dx_entry *e);

/* The gate of vector work (busy.c).  eng_busy: files are being written
 * (a put less than 500 ms, or the tests' quiet time, ago) and the CPU had less than half of
 * its time spare over the last sample, with vector.defer_s > 0; the two
 * halves apart: eng_busy_writing, eng_busy_cpu.  eng_busy_put: a put at
 * now.  eng_cpu_fields reads the counters of /proc/stat's "cpu " line,
 * eng_cpu_counters their spare and total sums; eng_cpu_spare_pct, the
 * spare share between two such sums (-1 if they say nothing). */
void eng_busy_init(struct t4dx *db);
void eng_busy_destroy(struct t4dx *db);
void eng_busy_put(struct t4dx *db, int64_t now);
bool eng_busy_writing(struct t4dx *db, int64_t now);
bool eng_busy_cpu(struct t4dx *db, int64_t now);
bool eng_busy(struct t4dx *db);
int eng_cpu_counters(const char *line, uint64_t *spare, uint64_t *total);
int eng_cpu_fields(const char *line, uint64_t v[BUSY_FIELDS]);
int eng_cpu_spare_pct(uint64_t spare0, uint64_t total0, uint64_t spare1,
		      uint64_t total1);

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t eng_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
