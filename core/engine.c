/*
 * engine.c - the t4dx engine: opening and recovering DATA_DIR, the write
 * path (validate -> WAL -> memtable -> wait for durability), the read path
 * (memtable, then the memtable being flushed, then segments newest first)
 * and flushing.
 *
 * Locking.  db->lock (a rwlock) guards mem, imm, segs, next_ino, items,
 * next_seg_id and flushed_lsn.  A change takes it for writing while it
 * validates, queues its WAL record and applies it to the memtable, so the
 * memtable always equals the WAL replayed in LSN order; it then drops the
 * lock and waits for its LSN to become durable, so many writers share one
 * group commit.  Readers take it for reading.  db->flush_mu makes flushes
 * run one at a time; a flush holds db->lock only to swap memtables and to
 * install the new segment, never while it writes the segment.
 *
 * Readers may see a change whose commit is still under way (as with a page
 * cache); a change whose commit fails stays queued in the WAL and is
 * written by the next commit, so what readers saw and what recovery
 * rebuilds never disagree.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

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

struct t4dx {
	char *dir;
	/* shorter than PATH_MAX so that file names fit below them */
	char seg_dir[PATH_MAX - 64], wal_dir[PATH_MAX - 64],
	     quarantine_dir[PATH_MAX - 64];
	int lock_fd;
	struct t4dx_config cfg;
	struct t4dx_wal *wal;

	pthread_rwlock_t lock;
	struct t4dx_mem *mem;           /* guarded by lock */
	struct t4dx_mem *imm;           /* being flushed; guarded by lock */
	uint64_t imm_lsn;               /* last LSN in imm */
	uint64_t imm_items, imm_next_ino; /* items, next_ino as of imm_lsn */
	struct t4dx_seg **segs;         /* oldest first; guarded by lock */
	size_t nsegs;
	uint64_t next_ino, items, next_seg_id, flushed_lsn;
	/* the state the MANIFEST describes (as of flushed_lsn) */
	uint64_t seg_items, man_next_ino;
	bool manifest_unsynced;         /* last MANIFEST maybe not durable:
	                                   keep what the old one names */

	pthread_mutex_t flush_mu;       /* one flush at a time */

	pthread_mutex_t bg_mu;          /* guards the flusher's flags */
	pthread_cond_t bg_cond;
	bool bg_want, bg_stop, bg_started;
	/* the write stall (stall_behind_flush): flushes ended, success or
	 * not, flushes under way, and the writers waiting for the next end
	 * (bg_mu) */
	uint64_t flush_gen, stalls;
	unsigned stalled, flushing;
	pthread_cond_t flush_done;
	bool bg_compact;                /* segments piled up: merge some */
	bool bg_wal_gone;               /* a group found the log removed */
	bool wal_save_failed;           /* save_lost_wal failed (flusher) */
	/* memtables cut into a segment while the log was gone, whose
	 * MANIFEST may not be durable: the rescue file holds them until a
	 * MANIFEST is (oldest first; guarded by flush_mu) */
	struct t4dx_mem **unsaved;
	size_t nunsaved;
	pthread_t bg;

	struct t4dx_recovery recovery;

	struct t4dx_breaker *breaker;
	struct t4dx_alerts *alerts;
	struct t4dx_hist fsync_hist;
	struct t4dx_hist compact_hist[T4DX_COMPACT_KINDS];

	/* health checker */
	pthread_t health_thr;
	bool health_started;
	pthread_mutex_t health_mu;      /* guards health, health_stop */
	pthread_cond_t health_cond;
	bool health_stop;
	struct t4dx_health health;
	size_t verify_next;             /* next segment to verify */
	struct t4dx_seg *verify_seg;    /* being verified, a slice a tick,
	                                   from block verify_block on; both
	                                   used by the health thread only */
	size_t verify_block;

	/* compaction: compact_mu is held for a whole run */
	pthread_mutex_t compact_mu;
	atomic_int running;             /* kind running, or -1 */
	pthread_mutex_t reject_mu;      /* policy reject: one commit at a time */
	pthread_mutex_t cstats_mu;      /* guards cstats */
	struct t4dx_compact_stats cstats[T4DX_COMPACT_KINDS];
	double test_pause_s;            /* T4DX_TEST_COMPACT_PAUSE */

	/* fallback */
	atomic_uint_least64_t unpersisted_hi;  /* highest LSN acknowledged
	                                          before it was durable */
	atomic_bool seg_failed;         /* a segment could not be read */
	unsigned verify_ok_run;         /* segment checks passed since; under
	                                   health_mu */
	struct t4dx_lru *lru;           /* the fallback cache */
	uint64_t rescued;               /* records replayed from rescue files */
	char rescue_dir[PATH_MAX];      /* where rescue files go when DATA_DIR
	                                   cannot take them; "" if nowhere */
	char rescue_tag[40];            /* names this store in rescue_dir */
	char rescue_problem[PATH_MAX + 320]; /* "" or why rescue_dir is poor */
	t4dx_dump_fn dump;              /* unsaved records, the last resort */
	void *dump_arg;
	/* a record was queued but could not be applied: the memtable no
	 * longer equals the WAL, so every later change is refused (EIO)
	 * until a restart replays the WAL (LMDB's MDB_FATAL_ERROR) */
	atomic_bool fatal;

	/* T4DX_OPEN_READONLY: nothing in dir is changed (no WAL open, no
	 * thread, no quarantine); every change answers EROFS */
	bool readonly;
	uint64_t ro_last_lsn;           /* last WAL record read */
	bool nolock;                    /* read-only without the lock */
	uint64_t man_seg_id;            /* next_seg_id of the MANIFEST read */
	t4dx_rebuild_fn rebuild_fn;     /* progress of a rebuild at open */
	void *rebuild_arg;

	/* what the compaction under way has done: entries taken and the
	 * most it will take (0/0 when none runs) */
	atomic_uint_least64_t progress_done, progress_total;
};

/* The automatic compaction (see auto_pick) */
#define AUTO_RUN_SEGMENTS 8     /* more adjacent segments of a size: merge */
#define AUTO_RUN_RATIO 4        /* of a size: biggest <= 4 x smallest */
#define AUTO_PILE_SEGMENTS 24   /* more live segments: merge the cheapest */

/* ---- lookups ---------------------------------------------------------- */

static void copy_out(struct t4dx_entry *out, const struct t4dx_entry *e,
		     bool with_content)
{
	*out = *e;
	out->content = with_content ? t4dx_blob_ref(e->content) : NULL;
}

/* Find key across mem, imm and segments.  0 (live entry in *out),
 * T4DX_ENOTFOUND (absent or deleted) or an error.  Lock held. */
static int lookup(struct t4dx *db, uint64_t parent, const char *name,
		  size_t len, bool with_content, struct t4dx_entry *out)
{
	struct t4dx_mem *mems[2] = { db->mem, db->imm };
	for (int i = 0; i < 2; i++) {
		if (!mems[i])
			continue;
		const struct t4dx_entry *e = t4dx_mem_get(mems[i], parent,
							  name, len);
		if (e) {
			if (e->tombstone)
				return T4DX_ENOTFOUND;
			copy_out(out, e, with_content);
			return 0;
		}
	}
	for (size_t i = db->nsegs; i-- > 0;) {
		int rc = t4dx_seg_get(db->segs[i], parent, name, len,
				      with_content, out);
		if (rc == T4DX_ENOTFOUND)
			continue;
		if (rc) {
			/* level 2: segments cannot be read; the fallback cache
			 * answers what it has, the rest is EIO (damaged bytes
			 * are never served) */
			if (db->lru && !atomic_exchange(&db->seg_failed, true))
				t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
						"segment %s cannot be read: %s",
						t4dx_seg_path(db->segs[i]),
						t4dx_strerror(rc));
			if (db->lru && !t4dx_lru_get(db->lru, parent, name, len,
						     with_content, out))
				return out->tombstone ? T4DX_ENOTFOUND : 0;
			return EIO;
		}
		if (out->tombstone) {
			t4dx_entry_clear(out);
			return T4DX_ENOTFOUND;
		}
		if (with_content && db->lru)
			t4dx_lru_put(db->lru, out);
		return 0;
	}
	return T4DX_ENOTFOUND;
}

int t4dx_get(struct t4dx *db, uint64_t parent, const char *name,
	     size_t name_len, unsigned flags, struct t4dx_entry *out)
{
	if (name_len == 0 || name_len > T4DX_NAME_MAX)
		return name_len ? ENAMETOOLONG : T4DX_ENOTFOUND;
	pthread_rwlock_rdlock(&db->lock);
	int rc = lookup(db, parent, name, name_len,
			flags & T4DX_GET_CONTENT, out);
	pthread_rwlock_unlock(&db->lock);
	return rc;
}

/* ---- merged iteration over all sources ---------------------------------
 * Sources in order of age, newest first: mem, imm, segments newest to
 * oldest.  For each key the newest source's entry wins; tombstones are
 * returned too, so that the caller decides. */

struct msrc {
	struct t4dx_mem *mem;
	const struct t4dx_entry *me;    /* current mem entry */
	struct t4dx_seg_iter *it;
	struct t4dx_entry se;           /* current segment entry */
	bool has;
	bool stale;                     /* on the key returned last: moves
	                                   past it at the next merge_next */
};

struct merge {
	struct msrc *src;
	size_t n;
	struct msrc **ties;             /* merge_next's scratch: n slots */
	bool with_content;
	struct t4dx_entry cur;          /* a mem entry returned without its
	                                   content, owned */
};

static const struct t4dx_entry *msrc_cur(struct msrc *s)
{
	return s->mem ? s->me : &s->se;
}

static int msrc_advance(struct msrc *s, bool with_content)
{
	if (s->mem) {
		s->me = t4dx_mem_next(s->mem, s->me);
		s->has = s->me != NULL;
		return 0;
	}
	t4dx_entry_clear(&s->se);
	int rc = t4dx_seg_iter_next(s->it, with_content, &s->se);
	s->has = rc == 0;
	return rc == T4DX_ENOTFOUND ? 0 : rc;
}

static void merge_close(struct merge *m)
{
	for (size_t i = 0; i < m->n; i++) {
		t4dx_seg_iter_close(m->src[i].it);
		t4dx_entry_clear(&m->src[i].se);
	}
	free(m->src);
	free(m->ties);
	t4dx_entry_clear(&m->cur);
	memset(m, 0, sizeof(*m));
}

/* Open over mem/imm (if include_mem) and segs[0..nsegs), from key. */
static int merge_open(struct merge *m, struct t4dx_mem *mem,
		      struct t4dx_mem *imm, struct t4dx_seg **segs,
		      size_t nsegs, uint64_t parent, const char *name,
		      size_t len, bool with_content)
{
	memset(m, 0, sizeof(*m));
	m->with_content = with_content;
	m->src = calloc(nsegs + 2, sizeof(*m->src));
	m->ties = calloc(nsegs + 2, sizeof(*m->ties));
	if (!m->src || !m->ties) {
		free(m->src);
		free(m->ties);
		m->src = NULL;
		m->ties = NULL;
		return ENOMEM;
	}
	struct t4dx_mem *mems[2] = { mem, imm };
	for (int i = 0; i < 2; i++) {
		if (!mems[i])
			continue;
		struct msrc *s = &m->src[m->n++];
		s->mem = mems[i];
		s->me = t4dx_mem_seek(mems[i], parent, name, len);
		s->has = s->me != NULL;
	}
	for (size_t i = nsegs; i-- > 0;) {
		struct msrc *s = &m->src[m->n++];
		int rc = t4dx_seg_iter_open(segs[i], parent, name, len,
					    &s->it);
		if (!rc)
			rc = msrc_advance(s, with_content);
		if (rc) {
			merge_close(m);
			return rc;
		}
	}
	return 0;
}

/* Next entry in key order (maybe a tombstone): 0 with *out pointing to an
 * entry owned by the iterator, valid until the next call, T4DX_ENOTFOUND
 * at the end, or an error.  A segment's entry is handed out in place, not
 * copied: the sources move past a returned key only at the next call. */
static int merge_next(struct merge *m, const struct t4dx_entry **out)
{
	for (size_t i = 0; i < m->n; i++) {
		struct msrc *s = &m->src[i];
		if (!s->stale)
			continue;
		s->stale = false;
		int rc = msrc_advance(s, m->with_content);
		if (rc)
			return rc;
	}
	/* the least key, and every source at it (older versions of it,
	 * skipped): a source equal to the least so far joins its ties, a
	 * smaller one starts them anew */
	struct msrc *best = NULL;
	size_t nties = 0;
	for (size_t i = 0; i < m->n; i++) {
		struct msrc *s = &m->src[i];
		if (!s->has)
			continue;
		int cmp = -1;
		if (best) {
			const struct t4dx_entry *e = msrc_cur(s);
			const struct t4dx_entry *b = msrc_cur(best);
			cmp = t4dx_key_cmp(e->parent, e->name, e->name_len,
					   b->parent, b->name, b->name_len);
		}
		if (cmp < 0) {
			best = s;
			nties = 0;
		}
		if (cmp <= 0)
			m->ties[nties++] = s;
	}
	if (!best)
		return T4DX_ENOTFOUND;
	for (size_t i = 0; i < nties; i++)
		m->ties[i]->stale = true;
	const struct t4dx_entry *c = msrc_cur(best);
	if (best->mem && !m->with_content) {
		t4dx_entry_clear(&m->cur);
		copy_out(&m->cur, c, false);
		c = &m->cur;
	}
	*out = c;
	return 0;
}

/* Call fn for each live child of parent.  Lock held. */
static int scan_locked(struct t4dx *db, uint64_t parent, t4dx_scan_fn fn,
		       void *arg)
{
	struct merge m;
	int rc = merge_open(&m, db->mem, db->imm, db->segs, db->nsegs,
			    parent, "", 0, false);
	if (rc)
		return rc;
	const struct t4dx_entry *e;
	while ((rc = merge_next(&m, &e)) == 0) {
		if (e->parent != parent)
			break;
		if (e->tombstone)
			continue;
		if ((rc = fn(arg, e)))
			break;
	}
	merge_close(&m);
	return rc == T4DX_ENOTFOUND ? 0 : rc;
}

int t4dx_scan(struct t4dx *db, uint64_t parent, t4dx_scan_fn fn, void *arg)
{
	pthread_rwlock_rdlock(&db->lock);
	int rc = scan_locked(db, parent, fn, arg);
	pthread_rwlock_unlock(&db->lock);
	return rc;
}

static int stop_at_first(void *arg, const struct t4dx_entry *e)
{
	return 1;
}

/* 0 if directory ino has no live child, ENOTEMPTY if it has, or an
 * error.  Lock held. */
static int check_empty(struct t4dx *db, uint64_t ino)
{
	int rc = scan_locked(db, ino, stop_at_first, NULL);
	return rc == 1 ? ENOTEMPTY : rc;
}

/* ---- applying records ------------------------------------------------- */

/* Apply r to the memtable; the same code serves live changes and WAL
 * replay, so both give the same state.  Keeps items up to date.  A record
 * whose key is absent changes nothing (replay of a change to what a later
 * record removed); any other failure (a segment that cannot be read, no
 * memory) is returned, and a caller whose record is already queued must
 * then go fatal().  Lock held for writing. */
static int apply(struct t4dx *db, struct t4dx_rec *r)
{
	struct t4dx_entry old, ne;
	int rc, had;
	switch (r->op) {
	case T4DX_OP_PUT:
	case T4DX_OP_MKDIR:
		/* only to count items: a put needs no old version */
		had = lookup(db, r->e.parent, r->e.name, r->e.name_len, false,
			     &old) == 0;
		r->e.lsn = r->lsn;
		r->e.tombstone = false;
		if ((rc = t4dx_mem_put(db->mem, &r->e)))
			return rc;
		if (db->lru)
			t4dx_lru_put(db->lru, &r->e);
		if (!had)
			db->items++;
		if (r->e.ino >= db->next_ino)
			db->next_ino = r->e.ino + 1;
		return 0;
	case T4DX_OP_DELETE:
	case T4DX_OP_RMDIR:
		rc = lookup(db, r->e.parent, r->e.name, r->e.name_len, false,
			    &old);
		if (rc)
			return rc == T4DX_ENOTFOUND ? 0 : rc;
		memset(&ne, 0, sizeof(ne));
		t4dx_entry_set_key(&ne, r->e.parent, r->e.name, r->e.name_len);
		ne.tombstone = true;
		ne.lsn = r->lsn;
		if ((rc = t4dx_mem_put(db->mem, &ne)))
			return rc;
		if (db->lru)
			t4dx_lru_put(db->lru, &ne);
		db->items--;
		return 0;
	case T4DX_OP_RENAME:
		rc = lookup(db, r->e.parent, r->e.name, r->e.name_len, true,
			    &old);
		if (rc)
			return rc == T4DX_ENOTFOUND ? 0 : rc;
		rc = lookup(db, r->new_parent, r->new_name, r->new_name_len,
			    false, &ne);
		if (rc && rc != T4DX_ENOTFOUND) {
			t4dx_entry_clear(&old);
			return rc;
		}
		had = rc == 0;
		memset(&ne, 0, sizeof(ne));
		t4dx_entry_set_key(&ne, r->e.parent, r->e.name, r->e.name_len);
		ne.tombstone = true;
		ne.lsn = r->lsn;
		t4dx_entry_set_key(&old, r->new_parent, r->new_name,
				   r->new_name_len);
		old.lsn = r->lsn;
		old.provisional = false;
		rc = t4dx_mem_put(db->mem, &ne);
		if (!rc)
			rc = t4dx_mem_put(db->mem, &old);
		if (!rc && db->lru) {
			t4dx_lru_put(db->lru, &ne);
			t4dx_lru_put(db->lru, &old);
		}
		t4dx_entry_clear(&old);
		if (!rc && had)
			db->items--;
		return rc;
	case T4DX_OP_UPDATE: {
		rc = lookup(db, r->e.parent, r->e.name, r->e.name_len, true,
			    &old);
		if (rc)
			return rc == T4DX_ENOTFOUND ? 0 : rc;
		t4dx_entry_apply(&old, &r->e, r->mask);
		old.lsn = r->lsn;
		old.provisional = false;
		rc = t4dx_mem_put(db->mem, &old);
		if (!rc && db->lru)
			t4dx_lru_put(db->lru, &old);
		t4dx_entry_clear(&old);
		return rc;
	}
	case T4DX_OP_PROBE:
		return 0;
	}
	return 0;
}

/* A record is in the WAL queue but not in the memtable (apply failed
 * with rc): refuse every later change until a restart, whose replay makes
 * the two agree again.  Returns EIO for the caller to report. */
static int fatal(struct t4dx *db, int rc)
{
	if (!atomic_exchange(&db->fatal, true))
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"a logged change could not be applied (%s): "
				"changes are refused until t4dx restarts",
				t4dx_strerror(rc));
	return EIO;
}

/* The breaker counts group commits, not their waiters: one failed
 * fdatasync shared by N committers is one storage failure. */
static void group_done(void *arg, int rc)
{
	struct t4dx *db = arg;
	t4dx_breaker_record(db->breaker, rc);
	if (rc == ESTALE) {
		/* the log files are gone: the flusher saves what they held */
		pthread_mutex_lock(&db->bg_mu);
		db->bg_wal_gone = true;
		pthread_cond_signal(&db->bg_cond);
		pthread_mutex_unlock(&db->bg_mu);
	}
}

/* Is a flush due?  The memtable's limits hold only the newest version
 * of each item, so rewrites of the same files never reach them: the log
 * written since the last cut counts too (wal.checkpoint_bytes), which
 * bounds the live WAL and the replay of a restart.  That holds with an
 * empty memtable too (health probes alone on an idle store): the flush
 * of nothing then moves the flushed LSN (flush_cut).  db->lock held. */
static bool flush_due(struct t4dx *db)
{
	if (t4dx_mem_count(db->mem) >= db->cfg.memtable.max_items ||
	    t4dx_mem_bytes(db->mem) >= db->cfg.memtable.max_bytes)
		return true;
	uint64_t cut = db->imm ? db->imm_lsn : db->flushed_lsn;
	return t4dx_wal_bytes_after(db->wal, cut) >=
	       db->cfg.wal.checkpoint_bytes;
}

static void maybe_wake_flusher(struct t4dx *db)
{
	if (!flush_due(db))
		return;
	pthread_mutex_lock(&db->bg_mu);
	db->bg_want = true;
	pthread_cond_signal(&db->bg_cond);
	pthread_mutex_unlock(&db->bg_mu);
}

/* Queue r in the WAL and apply it; then wait for durability unless
 * T4DX_NOWAIT.  Lock held for writing on entry, released on return. */
static bool queueing(struct t4dx *db);

/* Policy "reject": a change that is not durable must leave no trace, so
 * commits run one at a time (reject_mu) and a change is applied only once
 * its record is durable; a failed record is dropped from the WAL, its LSN
 * given back.  Lock held for writing on entry, released on return. */
static int commit_rejecting(struct t4dx *db, struct t4dx_rec *r,
			    uint64_t *lsn)
{
	pthread_rwlock_unlock(&db->lock);
	pthread_mutex_lock(&db->reject_mu);
	pthread_rwlock_wrlock(&db->lock);
	int rc = t4dx_wal_add(db->wal, r);
	pthread_rwlock_unlock(&db->lock);
	if (!rc)
		rc = t4dx_wal_sync(db->wal, r->lsn);    /* group_done counts */
	pthread_rwlock_wrlock(&db->lock);
	if (!rc) {
		rc = apply(db, r);
		if (rc)
			rc = fatal(db, rc);
		else
			maybe_wake_flusher(db);
	} else {
		uint64_t from, to;
		t4dx_wal_discard_pending(db->wal, &from, &to);
	}
	pthread_rwlock_unlock(&db->lock);
	pthread_mutex_unlock(&db->reject_mu);
	if (!rc && lsn)
		*lsn = r->lsn;
	/* a log file removed behind our back is an I/O error to the caller,
	 * as in wait_durable */
	return rc == ESTALE ? EIO : rc;
}

static int commit_locked(struct t4dx *db, struct t4dx_rec *r, unsigned flags,
			 uint64_t *lsn)
{
	if (!queueing(db))
		return commit_rejecting(db, r, lsn);
	int rc = t4dx_wal_add(db->wal, r);
	if (!rc && (rc = apply(db, r)))
		rc = fatal(db, rc);
	if (!rc)
		maybe_wake_flusher(db);
	pthread_rwlock_unlock(&db->lock);
	if (rc)
		return rc;
	if (lsn)
		*lsn = r->lsn;
	if (flags & T4DX_NOWAIT)
		return 0;
	return t4dx_wait(db, r->lsn);
}

/* ---- the fallback ------------------------------------------------------
 * The replay queue is the WAL's own queue: a change is applied to the
 * memtable (readers see it at once) and its record waits in the WAL until
 * a group commit makes it durable.  When that commit fails with a storage
 * error, or the breaker is OPEN so that no commit is even tried, the
 * record simply stays queued and the change is acknowledged as
 * unpersisted (policy "queue"); the next commit that succeeds (the health
 * probe's, once the disk works again) writes the whole queue, in order,
 * drain_batch records per group.  Because the memtable is the WAL applied
 * in LSN order, what readers see and what the WAL will hold never
 * disagree, and a later change of a name always wins.  The queue is
 * bounded: a change that would make more than max_queue records wait is
 * refused with ENOSPC before it is applied.  With policy "reject" an OPEN
 * breaker fails changes fast with EIO instead. */

static bool queueing(struct t4dx *db)
{
	return strcmp(db->cfg.fallback.policy, "reject") != 0;
}

static uint64_t unpersisted(struct t4dx *db)
{
	uint64_t hi = atomic_load(&db->unpersisted_hi);
	uint64_t durable = t4dx_wal_durable_lsn(db->wal);
	return hi > durable ? hi - durable : 0;
}

static int current_level(struct t4dx *db)
{
	struct t4dx_breaker_info bi;
	if (atomic_load(&db->seg_failed))
		return 2;
	t4dx_breaker_get(db->breaker, &bi);
	return bi.state != T4DX_CLOSED || unpersisted(db) ? 1 : 0;
}

/* Recompute the degradation level; a change is an alert. */
static void note_level(struct t4dx *db)
{
	int now = current_level(db);
	pthread_mutex_lock(&db->health_mu);
	int was = db->health.level;
	db->health.level = now;
	pthread_mutex_unlock(&db->health_mu);
	if (now != was)
		t4dx_alerts_add(db->alerts, now > was ? T4DX_ALERT_WARN
						      : T4DX_ALERT_INFO,
				"degradation level %d (%s) -> %d (%s)", was,
				t4dx_level_name(was), now,
				t4dx_level_name(now));
}

static void mark_unpersisted(struct t4dx *db, uint64_t lsn)
{
	uint64_t hi = atomic_load(&db->unpersisted_hi);
	while (hi < lsn &&
	       !atomic_compare_exchange_weak(&db->unpersisted_hi, &hi, lsn))
		;
	note_level(db);
}

/* Make the records up to lsn durable: 0, or the error (EIO when the
 * breaker keeps the disk untried).  With policy queue, what could not be
 * written stays queued, applied, and counts as unpersisted. */
static int wait_durable(struct t4dx *db, uint64_t lsn)
{
	if (lsn <= t4dx_wal_durable_lsn(db->wal))
		return 0;
	int rc = EIO;                           /* OPEN: disk not tried */
	if (t4dx_breaker_allow(db->breaker)) {
		rc = t4dx_wal_sync(db->wal, lsn);       /* group_done counts */
		t4dx_breaker_done(db->breaker);
	}
	if (rc && queueing(db))
		mark_unpersisted(db, lsn);
	/* a log file removed behind our back is an I/O error to the caller */
	return rc == ESTALE ? EIO : rc;
}

/* The write stall.  A flush cuts the memtable at the log's end and
 * writes it out while writers go on into a new memtable; if they write
 * wal.checkpoint_bytes more before that flush ends (many writers of big
 * files, a slow disk), the live log would grow past its bound by as much
 * as they can write meanwhile.  Such a writer waits, once its change is
 * in (t4dx_wait), until the flush under way ends, saved or not
 * (flush_gen), or STALL_MAX_S passed (a disk that hangs must not hang
 * every writer for good; the log then grows, as it would without the
 * stall).  Not while segments cannot be written at all (level 2): no
 * flush would end it.  Counted in the stats (write_stalls). */
#define STALL_MAX_S 10
static void stall_behind_flush(struct t4dx *db)
{
	pthread_mutex_lock(&db->bg_mu);
	uint64_t gen = db->flush_gen;   /* read first: an end after it counts */
	/* imm without a flush under way (one failed, and the next is not
	 * tried yet, or not at all while the breaker is not CLOSED): no end
	 * would come to wake the writer */
	bool flushing = db->flushing > 0;
	pthread_mutex_unlock(&db->bg_mu);
	if (!flushing)
		return;
	pthread_rwlock_rdlock(&db->lock);
	bool behind = db->imm && !atomic_load(&db->seg_failed) &&
		      t4dx_wal_bytes_after(db->wal, db->imm_lsn) >=
		      db->cfg.wal.checkpoint_bytes;
	pthread_rwlock_unlock(&db->lock);
	if (!behind)
		return;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += STALL_MAX_S;
	pthread_mutex_lock(&db->bg_mu);
	db->stalls++;
	db->stalled++;
	while (db->flush_gen == gen && !db->bg_stop &&
	       pthread_cond_timedwait(&db->flush_done, &db->bg_mu,
				      &until) != ETIMEDOUT)
		;
	db->stalled--;
	pthread_mutex_unlock(&db->bg_mu);
}

int t4dx_wait(struct t4dx *db, uint64_t lsn)
{
	if (db->readonly)
		return EROFS;
	int rc = wait_durable(db, lsn);
	/* here, once the change is in the log and outside the caller's
	 * locks (fs/ adds records under its namespace lock and waits after
	 * it): a stalled writer holds up only itself, and each writer adds
	 * at most one record past the bound */
	stall_behind_flush(db);
	/* policy queue: acknowledged as unpersisted */
	return rc && queueing(db) ? 0 : rc;
}

int t4dx_sync(struct t4dx *db, uint64_t lsn)
{
	if (db->readonly)
		return EROFS;
	if (!lsn)
		lsn = t4dx_wal_last_lsn(db->wal);
	int rc = wait_durable(db, lsn);
	if (rc)
		return rc;
	/* Synced once is not enough if the log was removed since (rm -rf
	 * DATA/wal): records that only it held are durable again once the
	 * flusher has saved them in a segment, which this asks for.  The
	 * flushed LSN counts only once a durable MANIFEST names the segment:
	 * a power cut may bring back the one before (manifest_unsynced). */
	pthread_rwlock_rdlock(&db->lock);
	bool in_segments = lsn <= db->flushed_lsn && !db->manifest_unsynced;
	pthread_rwlock_unlock(&db->lock);
	if (in_segments || !t4dx_wal_gone(db->wal))
		return 0;
	group_done(db, ESTALE);
	return EIO;
}

/* Is the replay queue full, by records or by bytes (a record larger
 * than the byte limit still goes into an empty queue)? */
static bool queue_full(struct t4dx *db, const struct t4dx_wal_stats *ws)
{
	return ws->pending >= db->cfg.fallback.max_queue ||
	       (ws->pending_bytes &&
		ws->pending_bytes >= db->cfg.fallback.max_queue_bytes);
}

/* May a change be applied now?  ENOSPC when the replay queue is full,
 * EIO when the breaker is OPEN and the policy is reject. */
static int gate(struct t4dx *db)
{
	struct t4dx_wal_stats ws;
	if (db->readonly)
		return EROFS;
	if (atomic_load(&db->fatal))
		return EIO;
	if (!queueing(db)) {
		/* reject: the commit that follows is one at a time
		 * (reject_mu), so the place is not kept for it */
		if (!t4dx_breaker_allow(db->breaker))
			return EIO;
		t4dx_breaker_done(db->breaker);
	}
	t4dx_wal_get_stats(db->wal, &ws);
	if (!queue_full(db, &ws))
		return 0;
	/* full: if the disk may be tried, drain first */
	if (t4dx_breaker_allow(db->breaker)) {
		t4dx_wal_sync(db->wal, t4dx_wal_last_lsn(db->wal));
		t4dx_breaker_done(db->breaker);
		t4dx_wal_get_stats(db->wal, &ws);
	}
	return queue_full(db, &ws) ? ENOSPC : 0;
}

static int check_name(size_t len)
{
	if (len == 0)
		return EINVAL;
	return len > T4DX_NAME_MAX ? ENAMETOOLONG : 0;
}

int t4dx_put(struct t4dx *db, struct t4dx_entry *e, unsigned flags,
	     uint64_t *lsn)
{
	struct t4dx_rec r;
	struct t4dx_entry old;
	int rc = check_name(e->name_len);
	if (rc)
		return rc;
	if (e->content && e->content->len != e->size)
		return EINVAL;
	if (!S_ISDIR(e->mode) && e->size > db->cfg.limits.max_item_bytes)
		return EFBIG;
	if ((rc = gate(db)))
		return rc;
	pthread_rwlock_wrlock(&db->lock);
	rc = lookup(db, e->parent, e->name, e->name_len, false, &old);
	if (rc == 0) {
		if (flags & T4DX_EXCL)
			rc = EEXIST;
		else if (S_ISDIR(old.mode) && !S_ISDIR(e->mode))
			rc = EISDIR;
		else if (S_ISDIR(e->mode))
			rc = EEXIST;
	} else if (rc == T4DX_ENOTFOUND) {
		rc = 0;
	}
	if (rc) {
		pthread_rwlock_unlock(&db->lock);
		return rc;
	}
	if (!e->ino)
		e->ino = db->next_ino++;
	memset(&r, 0, sizeof(r));
	r.op = S_ISDIR(e->mode) ? T4DX_OP_MKDIR : T4DX_OP_PUT;
	r.e = *e;               /* borrows e->content while locked */
	r.e.provisional = false;
	if ((flags & T4DX_PROVISIONAL) && r.op == T4DX_OP_PUT &&
	    queueing(db)) {
		/* no record: the entry carries the last LSN so far, which
		 * keeps the memtable's LSN range that of its records */
		r.lsn = t4dx_wal_last_lsn(db->wal);
		r.e.provisional = true;
		rc = apply(db, &r);
		if (!rc)
			maybe_wake_flusher(db);
		pthread_rwlock_unlock(&db->lock);
		if (lsn)
			*lsn = 0;
		e->lsn = 0;
		return rc;
	}
	rc = commit_locked(db, &r, flags, lsn);
	e->lsn = r.lsn;
	return rc;
}

/* Before a record that acknowledges something about a provisional entry
 * (rename, update), write the put the entry never had, so that replay
 * finds it.  Lock held for writing. */
static int materialize(struct t4dx *db, const struct t4dx_entry *old)
{
	struct t4dx_rec r;
	if (!old->provisional)
		return 0;
	memset(&r, 0, sizeof(r));
	r.op = T4DX_OP_PUT;
	int rc = lookup(db, old->parent, old->name, old->name_len, true, &r.e);
	if (rc)
		return rc == T4DX_ENOTFOUND ? ENOENT : rc;
	r.e.provisional = false;
	rc = t4dx_wal_add(db->wal, &r);
	if (!rc && (rc = apply(db, &r)))
		rc = fatal(db, rc);
	t4dx_entry_clear(&r.e);
	return rc;
}

int t4dx_delete(struct t4dx *db, uint64_t parent, const char *name,
		size_t name_len, bool dir, unsigned flags, uint64_t *lsn)
{
	struct t4dx_rec r;
	struct t4dx_entry old;
	int rc = check_name(name_len);
	if (rc)
		return rc;
	if ((rc = gate(db)))
		return rc;
	memset(&r, 0, sizeof(r));
	t4dx_entry_set_key(&r.e, parent, name, name_len);
	pthread_rwlock_wrlock(&db->lock);
	rc = lookup(db, parent, name, name_len, false, &old);
	if (rc == T4DX_ENOTFOUND)
		rc = ENOENT;
	else if (!rc && dir && !S_ISDIR(old.mode))
		rc = ENOTDIR;
	else if (!rc && !dir && S_ISDIR(old.mode))
		rc = EISDIR;
	else if (!rc && dir)
		rc = check_empty(db, old.ino);
	if (rc) {
		pthread_rwlock_unlock(&db->lock);
		return rc;
	}
	r.op = dir ? T4DX_OP_RMDIR : T4DX_OP_DELETE;
	return commit_locked(db, &r, flags, lsn);
}

int t4dx_rename(struct t4dx *db, uint64_t parent, const char *name,
		size_t name_len, uint64_t new_parent, const char *new_name,
		size_t new_name_len, unsigned flags, uint64_t *lsn)
{
	struct t4dx_rec r;
	struct t4dx_entry src, dst;
	int rc = check_name(name_len);
	if (!rc)
		rc = check_name(new_name_len);
	if (!rc)
		rc = gate(db);
	if (rc)
		return rc;
	memset(&r, 0, sizeof(r));
	t4dx_entry_set_key(&r.e, parent, name, name_len);
	r.new_parent = new_parent;
	r.new_name_len = (uint16_t)new_name_len;
	memcpy(r.new_name, new_name, new_name_len);
	r.new_name[new_name_len] = 0;

	pthread_rwlock_wrlock(&db->lock);
	/* with the content, as apply() will read it: a part that cannot be
	 * read fails the rename here, before its record is queued */
	rc = lookup(db, parent, name, name_len, true, &src);
	if (!rc) {
		t4dx_blob_unref(src.content);
		src.content = NULL;
	}
	if (rc == T4DX_ENOTFOUND)
		rc = ENOENT;
	if (rc)
		goto fail;
	rc = lookup(db, new_parent, new_name, new_name_len, false, &dst);
	if (rc == T4DX_ENOTFOUND) {
		rc = 0;
	} else if (rc == 0) {
		if (src.ino == dst.ino) {       /* same entry: nothing to do */
			pthread_rwlock_unlock(&db->lock);
			if (lsn)
				*lsn = 0;
			return 0;
		}
		if (flags & T4DX_NOREPLACE)
			rc = EEXIST;
		else if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode))
			rc = ENOTDIR;
		else if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode))
			rc = EISDIR;
		else if (S_ISDIR(dst.mode))
			rc = check_empty(db, dst.ino);
	}
	if (!rc)
		rc = materialize(db, &src);
	if (rc)
		goto fail;
	r.op = T4DX_OP_RENAME;
	return commit_locked(db, &r, flags, lsn);
fail:
	pthread_rwlock_unlock(&db->lock);
	return rc;
}

int t4dx_update(struct t4dx *db, uint64_t parent, const char *name,
		size_t name_len, const struct t4dx_entry *f, uint32_t mask,
		unsigned flags, uint64_t *lsn)
{
	struct t4dx_rec r;
	struct t4dx_entry old;
	int rc = check_name(name_len);
	if (rc)
		return rc;
	if (mask & ~(uint32_t)T4DX_F_ALL)
		return EINVAL;
	if ((rc = gate(db)))
		return rc;
	memset(&r, 0, sizeof(r));
	r.e = *f;
	r.e.content = NULL;
	t4dx_entry_set_key(&r.e, parent, name, name_len);
	r.op = T4DX_OP_UPDATE;
	r.mask = mask;
	pthread_rwlock_wrlock(&db->lock);
	/* with the content, as apply() will read it (see t4dx_rename) */
	rc = lookup(db, parent, name, name_len, true, &old);
	if (!rc) {
		t4dx_blob_unref(old.content);
		old.content = NULL;
	}
	if (rc == T4DX_ENOTFOUND)
		rc = ENOENT;
	if (!rc)
		rc = materialize(db, &old);
	if (rc) {
		pthread_rwlock_unlock(&db->lock);
		return rc;
	}
	return commit_locked(db, &r, flags, lsn);
}

/* ---- flushing --------------------------------------------------------- */

static void seg_file(struct t4dx *db, uint64_t id, char *path, size_t len,
		     bool tmp)
{
	snprintf(path, len, "%s/%020llu.t4s%s", db->seg_dir,
		 (unsigned long long)id, tmp ? ".tmp" : "");
}

/* Remove the segment files of seg/ that the MANIFEST just made durable
 * does not list: inputs of a compaction kept while an older MANIFEST
 * naming them might have come back.  The caller holds flush_mu, so no
 * segment is being written.  A segment id at or past next_seg_id is not
 * ours to judge. */
static void collect_segments(struct t4dx *db, const struct t4dx_manifest *m)
{
	DIR *d = opendir(db->seg_dir);
	if (!d)
		return;
	struct dirent *de;
	bool removed = false;
	while ((de = readdir(d))) {
		unsigned long long id;
		char tail[8];
		if (strlen(de->d_name) != 24 ||
		    sscanf(de->d_name, "%20llu%7s", &id, tail) != 2 ||
		    strcmp(tail, ".t4s") || id >= m->next_seg_id)
			continue;
		bool live = false;
		for (size_t i = 0; i < m->nsegs && !live; i++)
			live = m->segs[i].id == id;
		if (live)
			continue;
		char path[2 * PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", db->seg_dir, de->d_name);
		removed |= t4dx_io.unlink(path) == 0;
	}
	closedir(d);
	if (removed)
		t4dx_io_fsync_dir(db->seg_dir);
}

/* Write the live segment list with the given flushed LSN. Lock held. */
static int save_manifest(struct t4dx *db, struct t4dx_seg **segs, size_t n,
			 uint64_t flushed_lsn, uint64_t next_ino,
			 uint64_t items)
{
	struct t4dx_manifest m = {
		.next_seg_id = db->next_seg_id,
		.flushed_lsn = flushed_lsn,
		.next_ino = next_ino,
		.items = items,
		.nsegs = n,
	};
	m.segs = calloc(n ? n : 1, sizeof(*m.segs));
	if (!m.segs)
		return ENOMEM;
	for (size_t i = 0; i < n; i++) {
		m.segs[i].id = t4dx_seg_id(segs[i]);
		m.segs[i].min_lsn = t4dx_seg_min_lsn(segs[i]);
		m.segs[i].max_lsn = t4dx_seg_max_lsn(segs[i]);
		m.segs[i].items = t4dx_seg_count(segs[i]);
	}
	bool installed, was_unsynced = db->manifest_unsynced;
	int rc = t4dx_manifest_save(db->dir, &m, &installed);
	if (rc && installed) {
		/* in place but maybe not durable: the old MANIFEST may come
		 * back after a crash, so nothing it names may go */
		db->manifest_unsynced = true;
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"MANIFEST replaced but its directory could not "
				"be synced (%s): old files are kept",
				strerror(rc));
		free(m.segs);
		return 0;
	}
	if (!rc) {
		db->manifest_unsynced = false;
		if (was_unsynced)
			collect_segments(db, &m);
	}
	free(m.segs);
	return rc;
}

/* Rename segment id's written temporary file into place, sync the
 * directory and open it; on failure nothing is left behind. */
static int place_segment(struct t4dx *db, uint64_t id, struct t4dx_seg **out)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	seg_file(db, id, tmp, sizeof(tmp), true);
	seg_file(db, id, path, sizeof(path), false);
	int rc;
	if (t4dx_io.rename(tmp, path)) {
		rc = errno;
		t4dx_io.unlink(tmp);
		return rc;
	}
	if ((rc = t4dx_io_fsync_dir(db->seg_dir)) ||
	    (rc = t4dx_seg_open(path, id, out)))
		t4dx_io.unlink(path);
	return rc;
}

/* Write entries v[0..n) (sorted) as segment id: a temporary file made
 * durable, renamed into place, the directory synced, then opened.  Not
 * live until a MANIFEST names it; nothing is left behind on failure. */
static int make_segment(struct t4dx *db, uint64_t id, struct t4dx_entry **v,
			size_t n, struct t4dx_seg **out)
{
	char tmp[PATH_MAX];
	uint64_t min_lsn = UINT64_MAX, max_lsn = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i]->lsn < min_lsn)
			min_lsn = v[i]->lsn;
		if (v[i]->lsn > max_lsn)
			max_lsn = v[i]->lsn;
	}
	seg_file(db, id, tmp, sizeof(tmp), true);
	int rc = t4dx_seg_write(tmp, v, n, min_lsn, max_lsn);
	if (rc)
		return rc;
	return place_segment(db, id, out);
}

/* make_segment one entry at a time: begin creates segment id's temporary
 * file (n_hint: at most that many entries), t4dx_seg_writer_add adds,
 * end finishes the file and places it as make_segment does.  end with
 * no entry added, like any failure, leaves nothing behind. */
static int begin_segment(struct t4dx *db, uint64_t id, uint64_t n_hint,
			 struct t4dx_seg_writer **w)
{
	char tmp[PATH_MAX];
	seg_file(db, id, tmp, sizeof(tmp), true);
	return t4dx_seg_writer_open(tmp, n_hint, w);
}

static int end_segment(struct t4dx *db, uint64_t id,
		       struct t4dx_seg_writer *w, struct t4dx_seg **out)
{
	int rc = t4dx_seg_writer_finish(w, NULL);
	if (rc)
		return rc;
	return place_segment(db, id, out);
}

/* Write imm to segment id.  No lock needed: imm is immutable. */
static int write_imm(struct t4dx *db, uint64_t id, struct t4dx_seg **out)
{
	size_t n = t4dx_mem_count(db->imm), i = 0;
	struct t4dx_entry **v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return ENOMEM;
	for (const struct t4dx_entry *e = t4dx_mem_seek(db->imm, 0, "", 0);
	     e; e = t4dx_mem_next(db->imm, e))
		v[i++] = (struct t4dx_entry *)e;
	int rc = make_segment(db, id, v, n, out);
	free(v);
	return rc;
}

/* Install segs[0..n) as the live list in the MANIFEST and in memory.
 * Lock held for writing.  On success the old list's references are
 * dropped (the array is reused). */
static int install_segments(struct t4dx *db, struct t4dx_seg **segs,
			    size_t n, uint64_t flushed_lsn,
			    uint64_t next_ino, uint64_t seg_items)
{
	int rc = save_manifest(db, segs, n, flushed_lsn, next_ino, seg_items);
	if (rc)
		return rc;
	db->flushed_lsn = flushed_lsn;
	db->man_next_ino = next_ino;
	db->seg_items = seg_items;
	return 0;
}

/* The automatic compaction is size-tiered.  Flushes add small segments
 * at the new end of the list; merging every segment each time a few have
 * gathered would rewrite the big old ones again and again, so that a
 * long run of small flushes costs as many rewrites of the whole store.
 * Instead, more than AUTO_RUN_SEGMENTS adjacent segments whose sizes are
 * within AUTO_RUN_RATIO of each other merge into one, which takes their
 * place in age order.  That one is about as big as all of them, so it
 * joins a tier of bigger segments, which merges in its turn once enough
 * of them have gathered: every byte is rewritten about once per tier, a
 * logarithmic number of times, and a segment far bigger than the new
 * ones stays as it is until they have grown to its size.  The newest
 * qualifying run is taken (new segments are the small ones), as long as
 * its sizes allow (a run never mixes sizes further apart than the
 * ratio).  Should sizes alternate so that no such run forms, more than
 * AUTO_PILE_SEGMENTS live segments are a pile: then the adjacent
 * AUTO_RUN_SEGMENTS + 1 with the fewest bytes in all merge, whatever
 * their sizes.
 *
 * With segs[lo..hi) from auto_pick, true if something should merge.
 * Lock held. */
static bool auto_pick(struct t4dx *db, size_t *lo, size_t *hi)
{
	size_t n = db->nsegs, want = AUTO_RUN_SEGMENTS + 1;
	if (n < want)
		return false;
	for (size_t j = n; j-- > 0;) {
		/* the longest run of similar sizes ending at j */
		uint64_t least = t4dx_seg_file_bytes(db->segs[j]), most = least;
		size_t i = j;
		while (i > 0) {
			uint64_t b = t4dx_seg_file_bytes(db->segs[i - 1]);
			uint64_t l = b < least ? b : least;
			uint64_t m = b > most ? b : most;
			if (m / AUTO_RUN_RATIO > l)
				break;
			least = l;
			most = m;
			i--;
		}
		if (j + 1 - i >= want) {
			if (lo) {
				*lo = i;
				*hi = j + 1;
			}
			return true;
		}
	}
	if (n <= AUTO_PILE_SEGMENTS)
		return false;
	size_t best = 0;
	uint64_t best_bytes = UINT64_MAX;
	for (size_t i = 0; i + want <= n; i++) {
		uint64_t sum = 0;
		for (size_t k = i; k < i + want; k++)
			sum += t4dx_seg_file_bytes(db->segs[k]);
		if (sum < best_bytes) {
			best_bytes = sum;
			best = i;
		}
	}
	if (lo) {
		*lo = best;
		*hi = best + want;
	}
	return true;
}

/* A durable MANIFEST names every segment: the memtables kept for the
 * rescue file are saved.  flush_mu held. */
static void drop_unsaved(struct t4dx *db)
{
	for (size_t i = 0; i < db->nunsaved; i++)
		t4dx_mem_free(db->unsaved[i]);
	db->nunsaved = 0;
}

/* The log is gone and nothing is left to cut: if the last MANIFEST may
 * not be durable, write it again.  0 once the segments are named by a
 * durable MANIFEST, else EIO or the error.  flush_mu and db->lock (for
 * writing) held. */
static int resave_manifest(struct t4dx *db)
{
	if (!db->manifest_unsynced && !db->nunsaved)
		return 0;
	int rc = install_segments(db, db->segs, db->nsegs, db->flushed_lsn,
				  db->man_next_ino, db->seg_items);
	if (!rc && db->manifest_unsynced)
		rc = EIO;
	if (!rc)
		drop_unsaved(db);
	return rc;
}

/* The flush of an empty memtable: records after the flushed LSN that
 * left nothing in it (health probes) still make the live log grow, and
 * a restart replay it.  Start a new log file and record in the MANIFEST
 * that everything up to the last record is covered, so the old files can
 * be archived.  *last: that LSN, 0 if nothing moved.  flush_mu and
 * db->lock (for writing) held. */
static int checkpoint_empty(struct t4dx *db, uint64_t *last)
{
	*last = 0;
	if (db->manifest_unsynced ||
	    t4dx_wal_last_lsn(db->wal) <= db->flushed_lsn)
		return 0;
	uint64_t upto;
	int rc = t4dx_wal_rotate(db->wal, &upto);
	if (rc || upto <= db->flushed_lsn)
		return rc;
	rc = install_segments(db, db->segs, db->nsegs, upto, db->next_ino,
			      db->items);
	if (!rc)
		*last = upto;
	return rc;
}

/* Flush: the memtable becomes a new segment.  flush_mu held.  With
 * wal_lost (the log files were removed behind the daemon's back, see
 * t4dx_close), the segment covers every record applied, durable or not,
 * and no log file is rotated or archived: the next start begins a new
 * log after them. */
static int flush_cut_once(struct t4dx *db, struct t4dx_compact_run *run,
			  bool wal_lost);

/* Every flush attempt ends here, saved or not: writers stalled behind it
 * (stall_behind_flush) go on. */
static int flush_cut(struct t4dx *db, struct t4dx_compact_run *run,
		     bool wal_lost)
{
	pthread_mutex_lock(&db->bg_mu);
	db->flushing++;
	pthread_mutex_unlock(&db->bg_mu);
	int rc = flush_cut_once(db, run, wal_lost);
	pthread_mutex_lock(&db->bg_mu);
	db->flushing--;
	db->flush_gen++;
	pthread_cond_broadcast(&db->flush_done);
	pthread_mutex_unlock(&db->bg_mu);
	return rc;
}

static int flush_cut_once(struct t4dx *db, struct t4dx_compact_run *run,
			  bool wal_lost)
{
	int rc = 0;
	uint64_t last, next_ino, items, id;
	struct t4dx_seg *seg = NULL, **segs;

	/* a memtable that disagrees with the WAL is never written out: the
	 * WAL, replayed at the next start, is the truth */
	if (atomic_load(&db->fatal))
		return EIO;

	/* policy reject applies a change only after its record is durable:
	 * no such change may be between the two when the memtable is cut */
	bool rejecting = !queueing(db);
	if (rejecting)
		pthread_mutex_lock(&db->reject_mu);
	pthread_rwlock_wrlock(&db->lock);
	if (rejecting)
		pthread_mutex_unlock(&db->reject_mu);
	if (!db->imm) {
		/* a failed flush leaves imm in place; it is retried first */
		if (t4dx_mem_count(db->mem) == 0) {
			last = 0;
			rc = wal_lost ? resave_manifest(db)
				      : checkpoint_empty(db, &last);
			pthread_rwlock_unlock(&db->lock);
			if (!rc && last && !db->manifest_unsynced)
				t4dx_wal_archive(db->wal, last,
						 db->cfg.wal.archive_max_bytes);
			return rc;
		}
		struct t4dx_mem *fresh = t4dx_mem_new();
		if (!fresh) {
			pthread_rwlock_unlock(&db->lock);
			return ENOMEM;
		}
		/* every record in mem must be durable and the WAL must
		 * start a new file, so that whole files can be archived */
		if (wal_lost)
			last = t4dx_wal_last_lsn(db->wal);
		else
			rc = t4dx_wal_rotate(db->wal, &last);
		if (rc) {
			t4dx_mem_free(fresh);
			pthread_rwlock_unlock(&db->lock);
			return rc;
		}
		db->imm = db->mem;
		db->imm_lsn = last;
		db->imm_items = db->items;
		db->imm_next_ino = db->next_ino;
		db->mem = fresh;
	}
	/* the MANIFEST describes the state as of imm_lsn: recovery replays
	 * the records after it on top */
	last = db->imm_lsn;
	next_ino = db->imm_next_ino;
	items = db->imm_items;
	id = db->next_seg_id++;
	if (run) {
		run->items_in = t4dx_mem_count(db->imm);
		run->bytes_in = t4dx_mem_bytes(db->imm);
	}
	pthread_rwlock_unlock(&db->lock);

	rc = write_imm(db, id, &seg);
	if (rc)
		return rc;
	if (run) {
		run->items_out = t4dx_seg_count(seg);
		run->bytes_out = t4dx_seg_file_bytes(seg);
	}

	pthread_rwlock_wrlock(&db->lock);
	/* room to keep imm if the log is gone and the MANIFEST may not
	 * be durable (below) */
	struct t4dx_mem **keep = wal_lost ?
		realloc(db->unsaved, (db->nunsaved + 1) * sizeof(*keep)) :
		NULL;
	if (keep)
		db->unsaved = keep;
	segs = realloc(db->segs, (db->nsegs + 1) * sizeof(*segs));
	if (!segs || (wal_lost && !keep)) {
		rc = ENOMEM;
		goto fail;
	}
	db->segs = segs;
	segs[db->nsegs] = seg;
	rc = install_segments(db, segs, db->nsegs + 1, last, next_ino, items);
	if (rc)
		goto fail;
	db->nsegs++;
	bool pile = auto_pick(db, NULL, NULL);
	struct t4dx_mem *old = db->imm;
	db->imm = NULL;
	pthread_rwlock_unlock(&db->lock);
	/* with the log gone, a MANIFEST that may not survive a power cut
	 * is no save: the memtable is kept for the rescue file the caller
	 * then writes, until a MANIFEST is durable */
	if (wal_lost && db->manifest_unsynced) {
		db->unsaved[db->nunsaved++] = old;
		return EIO;
	}
	t4dx_mem_free(old);
	if (!db->manifest_unsynced)
		drop_unsaved(db);
	if (!db->manifest_unsynced && !wal_lost)
		t4dx_wal_archive(db->wal, last, db->cfg.wal.archive_max_bytes);
	if (pile) {
		/* segments of a size gathered (auto_pick): in the background */
		pthread_mutex_lock(&db->bg_mu);
		db->bg_compact = true;
		pthread_cond_signal(&db->bg_cond);
		pthread_mutex_unlock(&db->bg_mu);
	}
	return 0;
fail:
	pthread_rwlock_unlock(&db->lock);
	t4dx_seg_unref(seg);
	return rc;
}

static int flush_locked(struct t4dx *db, struct t4dx_compact_run *run)
{
	return flush_cut(db, run, false);
}

int t4dx_flush(struct t4dx *db)
{
	if (db->readonly)
		return EROFS;
	pthread_mutex_lock(&db->flush_mu);
	int rc = flush_locked(db, NULL);
	pthread_mutex_unlock(&db->flush_mu);
	return rc;
}

/* ---- compaction --------------------------------------------------------
 * nrem and prune rewrite all live segments as one.  They first flush, then
 * hold flush_mu, so the set of segments cannot change under them; writers
 * go on into the memtable, which is newer than any segment.  The new
 * segment becomes live only with the MANIFEST that names it and no longer
 * names the inputs, so a crash leaves either the old set or the new one;
 * the input files are unlinked only after that MANIFEST is durable.
 * Because every segment is an input, tombstones and superseded versions
 * have nothing older left to hide and are dropped.
 *
 * The automatic compaction (auto_pick) is the same run over some adjacent
 * segments only, segs[lo..hi), without the flush: the output takes their
 * place in the list, between the older segments and the newer ones, so
 * that lookups, which go newest first, find what they found before.
 * Superseded versions among the inputs are dropped (a newer one is in the
 * output), but tombstones are kept unless the oldest segment is an input:
 * they still hide versions in the older segments.  Such a merge is
 * upkeep, not consolidation: it leaves kappa alone, since raising it for
 * the items that happen to lie in the merged segments (the recently
 * written ones, over and over) would make kappa depend on when flushes
 * happened; an explicit nrem merges everything and raises all of it. */

static const char *const compact_names[T4DX_COMPACT_KINDS] = {
	"flush", "nrem", "prune", "rem",
};

const char *t4dx_compact_name(int kind)
{
	return kind >= 0 && kind < T4DX_COMPACT_KINDS ? compact_names[kind]
						      : "none";
}

int t4dx_compact_parse(const char *str, size_t len)
{
	for (int i = 0; i < T4DX_COMPACT_KINDS; i++)
		if (strlen(compact_names[i]) == len &&
		    !memcmp(str, compact_names[i], len))
			return i;
	return -1;
}

struct removed_key {
	uint64_t parent, ino;
	uint16_t name_len;
	char name[T4DX_NAME_MAX + 1];
};

static bool prunable(struct t4dx *db, const struct t4dx_entry *e,
		     int64_t now)
{
	const struct t4dx_config *c = &db->cfg;
	if (!S_ISREG(e->mode))
		return false;
	if (e->kappa <= c->compaction.prune_min_kappa &&
	    e->importance < c->compaction.prune_max_importance)
		return true;
	return c->compaction.prune_max_age_s > 0 &&
	       (double)(now - e->event_time_ns) / 1e9 >
		       c->compaction.prune_max_age_s;
}

static void sleep_s(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s,
			       .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* nrem or prune over all segments, or with tiered the automatic merge
 * of the segments auto_pick chooses (kind nrem; T4DX_ENOTFOUND if there
 * are none).  compact_mu held. */
static int merge_run(struct t4dx *db, int kind, struct t4dx_compact_run *run,
		     t4dx_removed_fn removed, void *arg, bool tiered)
{
	struct t4dx_seg **in = NULL, *out = NULL;
	struct t4dx_seg_writer *w = NULL;
	struct removed_key *gone = NULL;
	size_t nin = 0, ngone = 0, gcap = 0, lo = 0, hi = 0;
	uint64_t id = 0;
	struct merge m = { 0 };
	bool merging = false;
	int64_t now = t4dx_now_ns();
	int rc = 0;

	pthread_mutex_lock(&db->flush_mu);
	if (!tiered && (rc = flush_locked(db, NULL)))
		goto out;
	/* flush_mu, held to the end, keeps the list as it is now */
	pthread_rwlock_rdlock(&db->lock);
	if (!tiered) {
		hi = db->nsegs;
	} else if (!auto_pick(db, &lo, &hi)) {
		pthread_rwlock_unlock(&db->lock);
		rc = T4DX_ENOTFOUND;
		goto out;
	}
	nin = hi - lo;
	in = calloc(nin ? nin : 1, sizeof(*in));
	if (in)
		for (size_t i = 0; i < nin; i++)
			in[i] = t4dx_seg_ref(db->segs[lo + i]);
	id = db->next_seg_id;
	pthread_rwlock_unlock(&db->lock);
	/* nothing older than the inputs: tombstones hide nothing */
	bool keep_tombstones = lo > 0;
	if (!in) {
		nin = 0;        /* nothing to unreference */
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nin; i++) {
		run->items_in += t4dx_seg_count(in[i]);
		run->bytes_in += t4dx_seg_file_bytes(in[i]);
	}
	atomic_store(&db->progress_total, run->items_in);
	if (nin == 0)
		goto out;

	/* newest version of each key, with its content */
	rc = merge_open(&m, NULL, NULL, in, nin, 0, "", 0, true);
	if (rc)
		goto out;
	merging = true;
	const struct t4dx_entry *e;
	struct t4dx_entry c;    /* the entry written, boosted by nrem */
	while ((rc = merge_next(&m, &e)) == 0) {
		/* keys, not entries: older versions are passed over
		 * unseen, so done stays below total until the end */
		atomic_fetch_add(&db->progress_done, 1);
		if (e->tombstone && !keep_tombstones)
			continue;
		if (kind == T4DX_COMPACT_PRUNE && prunable(db, e, now)) {
			if (ngone == gcap) {
				gcap = gcap ? 2 * gcap : 64;
				struct removed_key *g = realloc(gone,
						gcap * sizeof(*g));
				if (!g) {
					rc = ENOMEM;
					break;
				}
				gone = g;
			}
			struct removed_key *g = &gone[ngone++];
			g->parent = e->parent;
			g->ino = e->ino;
			g->name_len = e->name_len;
			memcpy(g->name, e->name, e->name_len + 1);
			continue;
		}
		/* streamed to the output, which is begun at the first
		 * entry that survives */
		if (!w) {
			pthread_rwlock_wrlock(&db->lock);
			id = db->next_seg_id++;
			pthread_rwlock_unlock(&db->lock);
			if ((rc = begin_segment(db, id, run->items_in, &w)))
				break;
		}
		t4dx_entry_copy(&c, e);
		if (kind == T4DX_COMPACT_NREM && !tiered && S_ISREG(c.mode)) {
			c.kappa += db->cfg.compaction.nrem_kappa_boost;
			if (c.kappa > 1)
				c.kappa = 1;
		}
		rc = t4dx_seg_writer_add(w, &c);
		t4dx_entry_clear(&c);
		if (rc)
			break;
	}
	if (rc != T4DX_ENOTFOUND)
		goto out;
	rc = 0;

	if (w) {
		rc = end_segment(db, id, w, &out);
		w = NULL;
		if (rc)
			goto out;
		run->items_out = t4dx_seg_count(out);
		run->bytes_out = t4dx_seg_file_bytes(out);
	}
	if (db->test_pause_s > 0)
		sleep_s(db->test_pause_s);

	pthread_rwlock_wrlock(&db->lock);
	/* pruned keys that the memtable has seen since are decided there:
	 * they are not removed (moved to the end of gone[]) */
	size_t live_gone = 0;
	for (size_t i = 0; i < ngone; i++) {
		struct t4dx_mem *mems[2] = { db->mem, db->imm };
		bool shadowed = false;
		for (int k = 0; k < 2; k++)
			if (mems[k] && t4dx_mem_get(mems[k], gone[i].parent,
						    gone[i].name,
						    gone[i].name_len))
				shadowed = true;
		if (!shadowed) {
			struct removed_key t = gone[live_gone];
			gone[live_gone++] = gone[i];
			gone[i] = t;
		}
	}
	if (live_gone < ngone) {
		/* A pruned key changed since the run began: the records of
		 * that change apply to the version the new segment drops, so
		 * a replay after a crash would find nothing to apply them to.
		 * Give up this run (the caller runs it again). */
		pthread_rwlock_unlock(&db->lock);
		if (out) {
			char path[PATH_MAX];
			seg_file(db, id, path, sizeof(path), false);
			t4dx_io.unlink(path);
		}
		rc = EAGAIN;
		goto out;
	}
	/* the new list first: once the MANIFEST names the output, nothing
	 * may fail before memory says the same.  The output takes the
	 * inputs' place. */
	size_t nold = db->nsegs, nnew = nold - nin + (out ? 1 : 0), k = 0;
	struct t4dx_seg **list = calloc(nnew ? nnew : 1, sizeof(*list));
	if (list) {
		for (size_t i = 0; i < lo; i++)
			list[k++] = db->segs[i];
		if (out)
			list[k++] = out;
		for (size_t i = hi; i < nold; i++)
			list[k++] = db->segs[i];
	}
	rc = list ? install_segments(db, list, nnew, db->flushed_lsn,
				    db->man_next_ino, db->seg_items - ngone)
		 : ENOMEM;
	if (rc) {
		pthread_rwlock_unlock(&db->lock);
		free(list);
		if (out) {
			char path[PATH_MAX];
			seg_file(db, id, path, sizeof(path), false);
			t4dx_io.unlink(path);
		}
		goto out;
	}
	/* the list takes over the references of the segments kept */
	struct t4dx_seg **old = db->segs;
	if (out)
		list[lo] = t4dx_seg_ref(out);
	db->segs = list;
	db->nsegs = nnew;
	db->items -= live_gone;
	/* the WAL also says what prune removed (a no-op when replayed), so
	 * that a segment rebuilt from the archive does not bring it back */
	uint64_t last_del = 0;
	for (size_t i = 0; i < live_gone; i++) {
		struct t4dx_rec dr;
		memset(&dr, 0, sizeof(dr));
		dr.op = T4DX_OP_DELETE;
		t4dx_entry_set_key(&dr.e, gone[i].parent, gone[i].name,
				   gone[i].name_len);
		if (!t4dx_wal_add(db->wal, &dr))
			last_del = dr.lsn;
	}
	pthread_rwlock_unlock(&db->lock);
	if (last_del)
		t4dx_wal_sync(db->wal, last_del);
	/* once the new MANIFEST is durable the inputs are garbage */
	bool keep = db->manifest_unsynced;
	for (size_t i = lo; i < hi; i++) {
		if (!keep)
			t4dx_io.unlink(t4dx_seg_path(old[i]));
		t4dx_seg_unref(old[i]);
	}
	free(old);
	t4dx_io_fsync_dir(db->seg_dir);
	if (removed)
		for (size_t i = 0; i < live_gone; i++)
			removed(arg, gone[i].parent, gone[i].name,
				gone[i].name_len, gone[i].ino);
out:
	if (merging)
		merge_close(&m);
	pthread_mutex_unlock(&db->flush_mu);
	t4dx_seg_writer_abort(w);
	free(gone);
	for (size_t i = 0; i < nin; i++)
		t4dx_seg_unref(in[i]);
	free(in);
	t4dx_seg_unref(out);
	return rc;
}

/* One run; block: wait for a run under way instead of EBUSY; tiered: the
 * automatic merge (an nrem run in the stats), T4DX_ENOTFOUND and no run
 * counted if there is nothing to merge. */
static int compact(struct t4dx *db, int kind, t4dx_removed_fn removed,
		   void *arg, bool block, bool tiered)
{
	if (kind == T4DX_COMPACT_REM)
		return EOPNOTSUPP;
	if (kind < 0 || kind >= T4DX_COMPACT_KINDS)
		return EINVAL;
	/* level 1 and 2: the data directory is not written */
	if (db->readonly || current_level(db))
		return EROFS;
	if (block)
		pthread_mutex_lock(&db->compact_mu);
	else if (pthread_mutex_trylock(&db->compact_mu))
		return EBUSY;
	atomic_store(&db->progress_done, 0);
	atomic_store(&db->progress_total, 0);
	atomic_store(&db->running, kind);
	struct t4dx_compact_run run = { .start_ns = t4dx_now_ns() };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc;
	if (kind == T4DX_COMPACT_FLUSH) {
		pthread_mutex_lock(&db->flush_mu);
		rc = flush_locked(db, &run);
		pthread_mutex_unlock(&db->flush_mu);
	} else {
		/* a prune that raced a change of a pruned key runs again */
		for (int tries = 0; tries < 5; tries++) {
			memset(&run, 0, sizeof(run));
			atomic_store(&db->progress_done, 0);
			run.start_ns = t4dx_now_ns();
			rc = merge_run(db, kind, &run, removed, arg, tiered);
			if (rc != EAGAIN)
				break;
		}
		if (rc == EAGAIN)
			rc = EBUSY;
	}
	if (rc == T4DX_ENOTFOUND) {
		atomic_store(&db->running, -1);
		pthread_mutex_unlock(&db->compact_mu);
		return rc;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	uint64_t ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL +
				 (t1.tv_nsec - t0.tv_nsec));
	run.duration_s = (double)ns / 1e9;
	run.result = rc;
	t4dx_hist_observe_ns(&db->compact_hist[kind], ns);
	pthread_mutex_lock(&db->cstats_mu);
	db->cstats[kind].runs++;
	db->cstats[kind].bytes_written += run.bytes_out;
	db->cstats[kind].has_last = true;
	db->cstats[kind].last = run;
	pthread_mutex_unlock(&db->cstats_mu);
	if (rc)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"compaction %s failed: %s",
				t4dx_compact_name(kind), t4dx_strerror(rc));
	atomic_store(&db->running, -1);
	atomic_store(&db->progress_done, 0);
	atomic_store(&db->progress_total, 0);
	pthread_mutex_unlock(&db->compact_mu);
	return rc;
}

int t4dx_compact(struct t4dx *db, int kind, t4dx_removed_fn removed,
		 void *arg)
{
	return compact(db, kind, removed, arg, false, false);
}

void t4dx_get_compact_stats(struct t4dx *db, int kind,
			    struct t4dx_compact_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (kind < 0 || kind >= T4DX_COMPACT_KINDS)
		return;
	pthread_mutex_lock(&db->cstats_mu);
	*out = db->cstats[kind];
	pthread_mutex_unlock(&db->cstats_mu);
}

int t4dx_compact_running(struct t4dx *db)
{
	return atomic_load(&db->running);
}

int t4dx_compact_progress(struct t4dx *db, uint64_t *done, uint64_t *total)
{
	int kind = atomic_load(&db->running);
	*total = atomic_load(&db->progress_total);
	*done = atomic_load(&db->progress_done);
	if (*done > *total)
		*done = *total;
	return kind;
}

/* The log's files were removed behind the daemon's back (rm -rf
 * DATA/wal): the records they held, and those that could not be written
 * since, live in the memtable alone.  Cut it into a segment as if every
 * record up to the last were in the log (flush_cut's wal_lost), then let
 * the log begin anew in a new file.  The breaker, opened by the failures
 * that found the files gone, closes: the disk took the segment and the
 * MANIFEST.  If the cut fails (DATA_DIR is gone too), the next failed
 * group tries again, and the unmount writes a rescue file. */
static void save_lost_wal(struct t4dx *db)
{
	/* a group that failed while the last save ran finds it done */
	if (atomic_load(&db->fatal) || !t4dx_wal_gone(db->wal))
		return;
	pthread_mutex_lock(&db->flush_mu);
	int cut = flush_cut(db, NULL, true);
	if (!cut && t4dx_mem_count(db->mem))
		cut = flush_cut(db, NULL, true);  /* the first took imm */
	if (!cut)       /* a MANIFEST of an earlier try made durable */
		cut = flush_cut(db, NULL, true);
	pthread_rwlock_rdlock(&db->lock);
	uint64_t upto = db->flushed_lsn;
	pthread_rwlock_unlock(&db->lock);
	int rc = cut ? cut : t4dx_wal_reset(db->wal, upto);
	pthread_mutex_unlock(&db->flush_mu);
	if (rc) {
		/* once, not at every failed group that tries again */
		if (!db->wal_save_failed && cut)
			t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
					"the log in %s was removed while "
					"mounted, and what it held could not "
					"be saved in a segment with a durable "
					"MANIFEST: %s (the unmount writes a "
					"rescue file)", db->wal_dir,
					t4dx_strerror(rc));
		else if (!db->wal_save_failed)
			t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
					"the log in %s was removed while "
					"mounted; every change up to record "
					"%llu is saved in a segment, but a new "
					"log cannot begin: %s", db->wal_dir,
					(unsigned long long)upto,
					t4dx_strerror(rc));
		db->wal_save_failed = true;
		return;
	}
	db->wal_save_failed = false;
	t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
			"the log in %s was removed while mounted (Stale file "
			"handle); every change up to record %llu is saved in a "
			"segment and a new log begins", db->wal_dir,
			(unsigned long long)upto);
	t4dx_breaker_close_because(db->breaker, "the log was made anew");
	note_level(db);
	/* what was queued since goes to the new log now */
	t4dx_wal_sync(db->wal, t4dx_wal_last_lsn(db->wal));
}

static void *flusher(void *arg)
{
	struct t4dx *db = arg;
	pthread_mutex_lock(&db->bg_mu);
	for (;;) {
		while (!db->bg_want && !db->bg_compact && !db->bg_wal_gone &&
		       !db->bg_stop)
			pthread_cond_wait(&db->bg_cond, &db->bg_mu);
		if (db->bg_stop)
			break;
		bool flush = db->bg_want, want_compact = db->bg_compact;
		bool gone = db->bg_wal_gone;
		db->bg_want = db->bg_compact = db->bg_wal_gone = false;
		pthread_mutex_unlock(&db->bg_mu);
		if (gone)
			save_lost_wal(db);
		/* a failed run is in the compaction stats and an alert */
		if (flush)
			compact(db, T4DX_COMPACT_FLUSH, NULL, NULL, true, false);
		/* after the run under way, if that did not merge them; a
		 * merge may make a run of the next size, which merges in
		 * turn (each merge takes at least one segment away; a
		 * failed one waits for the next flush) */
		for (bool more = want_compact; more;) {
			pthread_mutex_lock(&db->bg_mu);
			bool stop = db->bg_stop;
			pthread_mutex_unlock(&db->bg_mu);
			pthread_rwlock_rdlock(&db->lock);
			more = !stop && auto_pick(db, NULL, NULL);
			pthread_rwlock_unlock(&db->lock);
			if (more)
				more = compact(db, T4DX_COMPACT_NREM, NULL,
					       NULL, true, true) == 0;
		}
		pthread_mutex_lock(&db->bg_mu);
	}
	pthread_mutex_unlock(&db->bg_mu);
	return NULL;
}

/* ---- health ------------------------------------------------------------ */

static void check_done(struct t4dx *db, struct t4dx_check *c, const char *what,
		       int rc, double dur)
{
	pthread_mutex_lock(&db->health_mu);
	c->runs++;
	c->last_run_ns = t4dx_now_ns();
	c->duration_s = dur;
	c->ok = rc == 0;
	c->last_error = rc;
	unsigned n = rc ? ++c->consecutive_failures : 0;
	bool recovered = !rc && c->consecutive_failures >=
					db->cfg.health.alert_threshold;
	if (!rc)
		c->consecutive_failures = 0;
	pthread_mutex_unlock(&db->health_mu);
	if (rc && n == db->cfg.health.alert_threshold)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"health check %s failed %u times in a row: %s",
				what, n, t4dx_strerror(rc));
	else if (recovered)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_INFO,
				"health check %s passes again", what);
}

static double mono_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Append and fdatasync a probe record.  It goes through the breaker: a
 * pass while OPEN lets the breaker try HALF_OPEN. */
static void check_wal(struct t4dx *db)
{
	struct t4dx_rec r;
	memset(&r, 0, sizeof(r));
	r.op = T4DX_OP_PROBE;
	struct t4dx_breaker_info bi;
	/* forced OPEN: an operator said not to touch the disk */
	t4dx_breaker_get(db->breaker, &bi);
	if (bi.forced)
		return;
	double t0 = mono_s();
	struct t4dx_wal_stats ws;
	int rc = 0, add_rc = 0;
	bool rejecting = !queueing(db);
	if (rejecting)
		pthread_mutex_lock(&db->reject_mu);
	t4dx_wal_get_stats(db->wal, &ws);
	pthread_rwlock_wrlock(&db->lock);
	/* with records waiting, writing them is the probe (a new probe
	 * record would only lengthen the replay queue) */
	if (ws.pending)
		r.lsn = t4dx_wal_last_lsn(db->wal);
	else
		rc = add_rc = t4dx_wal_add(db->wal, &r);
	pthread_rwlock_unlock(&db->lock);
	if (!rc)
		rc = t4dx_wal_sync(db->wal, r.lsn);
	if (rc && rejecting) {
		uint64_t from, to;
		pthread_rwlock_wrlock(&db->lock);
		t4dx_wal_discard_pending(db->wal, &from, &to);
		pthread_rwlock_unlock(&db->lock);
	}
	if (rejecting)
		pthread_mutex_unlock(&db->reject_mu);
	if (!rc) {
		/* probes alone grow the log too: the checkpoint covers them */
		pthread_rwlock_rdlock(&db->lock);
		maybe_wake_flusher(db);
		pthread_rwlock_unlock(&db->lock);
	}
	double dur = mono_s() - t0;
	bool slow = !rc && dur > db->cfg.health.timeout_s;
	if (slow)
		rc = ETIMEDOUT;
	t4dx_breaker_get(db->breaker, &bi);
	if (!rc && bi.state == T4DX_OPEN) {
		t4dx_breaker_probe_ok(db->breaker);
		/* and the probe is the first trial that passed (its group
		 * commit, counted while still OPEN, was not): an idle store
		 * whose disk works again closes at the next probe */
		t4dx_breaker_record(db->breaker, 0);
	}
	/* the group commit's own result was counted by group_done; a slow
	 * one, or a probe that could not even be queued, counts here */
	t4dx_breaker_get(db->breaker, &bi);
	if ((slow || add_rc) && bi.state != T4DX_OPEN)
		t4dx_breaker_record(db->breaker, rc);
	check_done(db, &db->health.wal, "wal", rc, dur);
}

/* Verify one segment per tick, in turn, so that every segment is read
 * over time without a tick ever reading the whole store. */
static void check_segments(struct t4dx *db)
{
	struct t4dx_seg *s = db->verify_seg;
	pthread_rwlock_rdlock(&db->lock);
	if (s) {
		/* a segment that compaction retired meanwhile is not read on */
		bool live = false;
		for (size_t i = 0; i < db->nsegs && !live; i++)
			live = db->segs[i] == s;
		if (!live) {
			t4dx_seg_unref(s);
			s = NULL;
		}
	}
	if (!s && db->nsegs) {
		s = t4dx_seg_ref(db->segs[db->verify_next++ % db->nsegs]);
		db->verify_block = 0;
	}
	pthread_rwlock_unlock(&db->lock);
	double t0 = mono_s();
	/* a slice per tick, timed by itself: a big healthy segment is no
	 * timeout */
	int rc = s ? t4dx_seg_verify_some(s, &db->verify_block,
					  db->cfg.health.verify_bytes) : 0;
	bool whole = !s || db->verify_block >= t4dx_seg_blocks(s);
	double dur = mono_s() - t0;
	if (!rc && dur > db->cfg.health.timeout_s)
		rc = ETIMEDOUT;
	if (rc && rc != ETIMEDOUT) {
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"segment %s failed verification: %s (it is "
				"quarantined and rebuilt at the next start)",
				t4dx_seg_path(s), t4dx_strerror(rc));
		atomic_store(&db->seg_failed, true);
	}
	pthread_rwlock_rdlock(&db->lock);
	size_t nsegs = db->nsegs;
	pthread_rwlock_unlock(&db->lock);
	pthread_mutex_lock(&db->health_mu);
	/* whole segments read back without an error since the last one */
	if (rc)
		db->verify_ok_run = 0;
	else if (whole)
		db->verify_ok_run++;
	bool clean = db->verify_ok_run > nsegs;
	pthread_mutex_unlock(&db->health_mu);
	/* every segment read back whole since the last failure */
	if (clean && atomic_load(&db->seg_failed)) {
		atomic_store(&db->seg_failed, false);
		t4dx_alerts_add(db->alerts, T4DX_ALERT_INFO,
				"segments read back whole again");
	}
	if (whole || rc) {
		/* the next tick starts on the next segment */
		t4dx_seg_unref(s);
		s = NULL;
	}
	db->verify_seg = s;
	check_done(db, &db->health.segments, "segments", rc, dur);
}

static void *health_main(void *arg)
{
	struct t4dx *db = arg;
	pthread_mutex_lock(&db->health_mu);
	while (!db->health_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		double when = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 +
			      db->cfg.health.interval_s;
		ts.tv_sec = (time_t)when;
		ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
		while (!db->health_stop &&
		       pthread_cond_timedwait(&db->health_cond, &db->health_mu,
					      &ts) != ETIMEDOUT)
			;
		if (db->health_stop)
			break;
		pthread_mutex_unlock(&db->health_mu);
		check_wal(db);
		check_segments(db);
		note_level(db);
		pthread_mutex_lock(&db->health_mu);
	}
	pthread_mutex_unlock(&db->health_mu);
	return NULL;
}

void t4dx_get_health(struct t4dx *db, struct t4dx_health *out)
{
	struct t4dx_wal_stats ws;
	if (!db->wal) {                 /* read-only: nothing runs */
		memset(out, 0, sizeof(*out));
		return;
	}
	note_level(db);
	pthread_mutex_lock(&db->health_mu);
	*out = db->health;
	pthread_mutex_unlock(&db->health_mu);
	out->unpersisted = unpersisted(db);
	t4dx_wal_get_stats(db->wal, &ws);
	out->queue_depth = ws.pending;
	out->rescued = db->rescued;
	out->fatal = atomic_load(&db->fatal);
}

const char *t4dx_level_name(int level)
{
	switch (level) {
	case 0: return "normal";
	case 1: return "read-only";
	default: return "in-memory";
	}
}

struct t4dx_breaker *t4dx_get_breaker(struct t4dx *db)
{
	return db->breaker;
}

void t4dx_set_alert_sink(struct t4dx *db, t4dx_alert_fn fn, void *arg)
{
	t4dx_alerts_set_sink(db->alerts, fn, arg);
}

int t4dx_render_alerts(struct t4dx *db, struct t4dx_buf *out)
{
	return t4dx_alerts_render(db->alerts, out);
}

struct t4dx_hist *t4dx_fsync_hist(struct t4dx *db)
{
	return &db->fsync_hist;
}

struct t4dx_hist *t4dx_compact_hist(struct t4dx *db, int kind)
{
	return &db->compact_hist[kind];
}

static void breaker_changed(void *arg, int from, int to, const char *why)
{
	struct t4dx *db = arg;
	t4dx_alerts_add(db->alerts, to == T4DX_OPEN ? T4DX_ALERT_WARN
						    : T4DX_ALERT_INFO,
			"breaker %s -> %s: %s", t4dx_breaker_state_name(from),
			t4dx_breaker_state_name(to), why);
	if (db->wal)
		note_level(db);
}

/* ---- rescue files ------------------------------------------------------
 * At close, records that still could not be made durable are written, as
 * the WAL lines they are, to a rescue file: DATA_DIR/rescue-<lsn>.jsonl,
 * or, when DATA_DIR cannot take it (it is full, most likely), to the
 * rescue directory as t4dx-rescue-<tag>-<lsn>.jsonl, where the tag names
 * the store (several stores may share the directory) (write temp,
 * fdatasync, rename, fsync dir).  The rescue directory is
 * fallback.rescue_dir, or else the first of $TMPDIR, /var/tmp, /tmp and
 * /dev/shm that is writable and not on DATA_DIR's filesystem
 * (choose_rescue_dir).
 * If no file can be written, the records go to the log (the dump sink),
 * so that nothing acknowledged disappears without a copy.  The next open
 * replays the records the WAL does not already hold, makes them durable,
 * and only then renames the file to *.replayed.  Nothing is ever
 * deleted. */

static int write_file_durably(const char *dir, const char *name,
			      const struct t4dx_buf *b)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		return ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* a fresh file of our own, never one planted under the name in a
	 * shared directory (a link, or someone else's file) */
	t4dx_io.unlink(tmp);
	int fd = t4dx_io.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
			      0600);
	if (fd < 0)
		return errno;
	int rc = t4dx_io_pwrite_all(fd, b->p, b->len, 0);
	if (!rc && t4dx_io.fsync(fd))   /* a new file: its size too */
		rc = errno;
	t4dx_io.close(fd);
	if (!rc && t4dx_io.rename(tmp, path))
		rc = errno;
	if (!rc)
		rc = t4dx_io_fsync_dir(dir);
	if (rc)
		t4dx_io.unlink(tmp);
	return rc;
}

/* The directories a rescue file may go to besides DATA_DIR, in order of
 * preference: $TMPDIR (if absolute), /var/tmp, /tmp, /dev/shm, each once
 * and none that is the chosen rescue directory (the caller tries that
 * first).  Nothing is checked: a directory that cannot take the file
 * fails when it is tried.  Returns how many were put in out. */
#define RESCUE_CANDIDATES 4
static size_t rescue_candidates(const struct t4dx *db,
				const char *out[RESCUE_CANDIDATES])
{
	const char *tmp = getenv("TMPDIR");
	const char *const all[RESCUE_CANDIDATES] = {
		tmp && *tmp == '/' ? tmp : "/var/tmp", "/var/tmp", "/tmp",
		"/dev/shm" };
	size_t n = 0;
	for (size_t i = 0; i < RESCUE_CANDIDATES; i++) {
		bool seen = !strcmp(all[i], db->rescue_dir);
		for (size_t j = 0; !seen && j < n; j++)
			seen = !strcmp(all[i], out[j]);
		if (!seen)
			out[n++] = all[i];
	}
	return n;
}

/* The entries of m as records (put, mkdir, delete) numbered from *lsn
 * on, appended to out.  0 or ENOMEM. */
static int mem_records(struct t4dx_mem *m, uint64_t *lsn,
		       struct t4dx_buf *out)
{
	if (!m)
		return 0;
	for (const struct t4dx_entry *e = t4dx_mem_seek(m, 0, "", 0); e;
	     e = t4dx_mem_next(m, e)) {
		struct t4dx_rec r;
		memset(&r, 0, sizeof(r));
		r.e = *e;       /* borrowed: not cleared */
		r.e.provisional = false;
		r.op = e->tombstone ? T4DX_OP_DELETE :
		       S_ISDIR(e->mode) ? T4DX_OP_MKDIR : T4DX_OP_PUT;
		r.lsn = (*lsn)++;
		int rc = t4dx_rec_encode(&r, out);
		if (rc)
			return rc;
	}
	return 0;
}

/* Save the records the WAL could not write in a rescue file: 0, or the
 * error that left them unsaved.  With wal_lost (the log was removed and
 * no segment took its records), the records that were durable in the
 * removed log exist only in memory too: the file then holds the whole
 * state since the flushed LSN instead, as records numbered after the
 * last LSN given out (so that a start applies them all, after whatever
 * log it finds): the memtables kept for it, imm and the memtable, oldest
 * first, each entry as a put, mkdir or delete.  The queued records are
 * part of that state (every change applied is in the memtable). */
static int write_rescue(struct t4dx *db, bool wal_lost)
{
	struct t4dx_buf b = { 0 };
	uint64_t first = 0;
	char name[128];
	int rc;
	if (wal_lost) {
		uint64_t lsn = first = t4dx_wal_last_lsn(db->wal) + 1;
		pthread_rwlock_rdlock(&db->lock);
		rc = 0;
		for (size_t i = 0; !rc && i < db->nunsaved; i++)
			rc = mem_records(db->unsaved[i], &lsn, &b);
		if (!rc)
			rc = mem_records(db->imm, &lsn, &b);
		if (!rc)
			rc = mem_records(db->mem, &lsn, &b);
		pthread_rwlock_unlock(&db->lock);
	} else {
		rc = t4dx_wal_pending(db->wal, &b, &first);
	}
	if (rc || !b.len) {
		t4dx_buf_free(&b);
		return rc;
	}
	uint64_t n = 0;
	for (size_t i = 0; i < b.len; i++)
		n += b.p[i] == '\n';
	snprintf(name, sizeof(name), "rescue-%020llu.jsonl",
		 (unsigned long long)first);
	const char *where = db->dir;
	rc = write_file_durably(db->dir, name, &b);
	if (rc && *db->rescue_tag) {
		/* the chosen rescue directory, then (rescue_fallback) the
		 * other candidates whatever their filesystem: a file in
		 * memory or on the full disk's neighbour beats the log */
		const char *dirs[1 + RESCUE_CANDIDATES];
		size_t nd = 0;
		if (*db->rescue_dir)
			dirs[nd++] = db->rescue_dir;
		if (db->cfg.fallback.rescue_fallback)
			nd += rescue_candidates(db, dirs + nd);
		snprintf(name, sizeof(name), "t4dx-rescue-%s-%020llu.jsonl",
			 db->rescue_tag, (unsigned long long)first);
		for (size_t i = 0; rc && i < nd; i++) {
			where = dirs[i];
			int e = write_file_durably(where, name, &b);
			if (e)
				t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
						"rescue file %s/%s: %s", where,
						name, strerror(e));
			rc = e;
		}
	}
	const char *what = wal_lost ? "changes held in memory only (the "
				      "log was removed)"
				    : "unpersisted records";
	if (rc) {
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"%llu %s (from LSN %llu) could not be saved in "
				"a rescue file: %s; they follow in the log, one "
				"JSON line each", (unsigned long long)n, what,
				(unsigned long long)first, strerror(rc));
		/* the last copy: the records themselves, in the log */
		for (size_t off = 0; off < b.len;) {
			const unsigned char *nl = memchr(b.p + off, '\n',
							 b.len - off);
			size_t len = nl ? (size_t)(nl - b.p) - off
					: b.len - off;
			if (db->dump)
				db->dump(db->dump_arg, (const char *)b.p + off,
					 len);
			else
				fprintf(stderr, "%.*s\n", (int)len,
					(const char *)b.p + off);
			off += len + 1;
		}
	} else
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"%llu %s saved in %s/%s; the next start replays "
				"them", (unsigned long long)n, what, where,
				name);
	t4dx_buf_free(&b);
	return rc;
}

/* Replay one rescue file: records beyond the WAL's end are applied and
 * queued.  Returns how many; *bad is set if the file ends in damage. */
static uint64_t replay_rescue_file(struct t4dx *db, const char *path)
{
	struct t4dx_buf b = { 0 };
	uint64_t n = 0;
	int fd = t4dx_io.open(path, O_RDONLY, 0);
	if (fd < 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size > 0 &&
	    !t4dx_buf_reserve(&b, (size_t)st.st_size) &&
	    !t4dx_io_pread_all(fd, b.p, (size_t)st.st_size, 0))
		b.len = (size_t)st.st_size;
	t4dx_io.close(fd);
	size_t off = 0;
	while (off < b.len) {
		unsigned char *nl = memchr(b.p + off, '\n', b.len - off);
		if (!nl)
			break;
		struct t4dx_rec r;
		if (t4dx_rec_decode((const char *)b.p + off,
				    (size_t)(nl - b.p) - off, &r))
			break;
		off = (size_t)(nl - b.p) + 1;
		pthread_rwlock_wrlock(&db->lock);
		if (r.lsn > t4dx_wal_last_lsn(db->wal) &&
		    !t4dx_wal_add(db->wal, &r)) {
			int rc = apply(db, &r);
			if (rc)
				fatal(db, rc);
			else
				n++;
		}
		pthread_rwlock_unlock(&db->lock);
		t4dx_entry_clear(&r.e);
	}
	t4dx_buf_free(&b);
	return n;
}

/* prefix, then the first LSN's digits, then .jsonl: nothing else (a
 * shared rescue directory holds other stores' files too) */
static int rescue_name(const struct dirent *d, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(d->d_name, prefix, pl))
		return 0;
	size_t digits = strspn(d->d_name + pl, "0123456789");
	return digits > 0 && !strcmp(d->d_name + pl + digits, ".jsonl");
}

/* The store's identity, DATA_DIR/ID: 32 random hex digits made at the
 * first open (also of a store made by a version without it), which name
 * this store's rescue files in a directory other stores share.  Only an
 * ID that does not exist is made: one that cannot be read (EACCES, EIO)
 * or is damaged is left as it is and the open goes on, with rescue files
 * to DATA_DIR only (rescue_problem says why).  A new ID would orphan the
 * rescue files named by the old one, which the next start that reads the
 * ID again replays; refusing the open would keep the whole store away for
 * the sake of a fallback. */
static int store_id(struct t4dx *db)
{
	char path[PATH_MAX], id[40] = "";
	snprintf(path, sizeof(path), "%s/ID", db->dir);
	int fd = t4dx_io.open(path, O_RDONLY, 0);
	int rc = fd < 0 ? errno : 0;
	if (fd >= 0) {
		ssize_t n = t4dx_io.pread(fd, id, 33, 0);
		rc = n < 0 ? errno : 0;
		t4dx_io.close(fd);
		if (n == 33 && id[32] == '\n' &&
		    strspn(id, "0123456789abcdef") == 32) {
			id[32] = 0;
			snprintf(db->rescue_tag, sizeof(db->rescue_tag), "%s",
				 id);
			return 0;
		}
		if (!rc) {
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "%s is damaged (not 32 hex digits and a "
				 "newline), so rescue files go to DATA_DIR "
				 "only; restore it, or remove it to make a new "
				 "one (rescue files named by the old one are "
				 "then replayed by hand)", path);
			return EINVAL;
		}
	}
	if (rc != ENOENT) {
		snprintf(db->rescue_problem, sizeof(db->rescue_problem),
			 "cannot read %s: %s, so rescue files go to DATA_DIR "
			 "only (until it can be read: a new ID would leave "
			 "the rescue files named by this one behind)", path,
			 strerror(rc ? rc : EIO));
		return rc ? rc : EIO;
	}
	unsigned char r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return errno ? errno : EIO;
	for (int i = 0; i < 16; i++)
		snprintf(id + 2 * i, 3, "%02x", r[i]);
	id[32] = '\n';
	struct t4dx_buf b = { (unsigned char *)id, 33, 33 };
	rc = write_file_durably(db->dir, "ID", &b);
	if (!rc) {
		id[32] = 0;
		snprintf(db->rescue_tag, sizeof(db->rescue_tag), "%s", id);
	}
	return rc;
}

/* Is path on a filesystem held in memory (tmpfs, ramfs), which a reboot
 * empties?  Rescue files are written at unmount, most often at a
 * shutdown, and replayed at the next start. */
static bool in_memory_fs(const char *path)
{
	struct statfs sf;
	if (statfs(path, &sf))
		return false;
	return sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
}

/* Where rescue files go when DATA_DIR cannot take them: a directory
 * that exists, is writable, is not on DATA_DIR's filesystem (which is
 * full when they are needed most) and, by preference, outlives a reboot.
 * One in memory is still better than none, but said to be poor.
 * rescue_problem says what is wrong with the choice, for the start's
 * warning and health. */
static void choose_rescue_dir(struct t4dx *db)
{
	struct stat ds, st;
	if (!*db->rescue_tag) {
		if (!*db->rescue_problem)
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "%s/ID could not be made, so rescue files can "
				 "go to DATA_DIR only", db->dir);
		return;
	}
	if (stat(db->dir, &ds)) {
		snprintf(db->rescue_problem, sizeof(db->rescue_problem),
			 "cannot stat %s: %s", db->dir, strerror(errno));
		return;
	}
	const char *set = db->cfg.fallback.rescue_dir;
	if (*set) {
		snprintf(db->rescue_dir, sizeof(db->rescue_dir), "%s", set);
		if (stat(set, &st) || !S_ISDIR(st.st_mode))
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "fallback.rescue_dir %s is not a directory",
				 set);
		else if (access(set, W_OK | X_OK))
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "fallback.rescue_dir %s is not writable: %s",
				 set, strerror(errno));
		else if (st.st_dev == ds.st_dev)
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "fallback.rescue_dir %s is on DATA_DIR's "
				 "filesystem, which a full disk fills too", set);
		else if (in_memory_fs(set))
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "fallback.rescue_dir %s is in memory (tmpfs, "
				 "ramfs), which a reboot empties: rescue files "
				 "written at a shutdown would be lost", set);
		return;
	}
	const char *dirs[RESCUE_CANDIDATES];
	size_t nd = rescue_candidates(db, dirs);   /* rescue_dir is "" */
	const char *ram = NULL;
	for (size_t i = 0; i < nd; i++) {
		if (stat(dirs[i], &st) || !S_ISDIR(st.st_mode) ||
		    st.st_dev == ds.st_dev || access(dirs[i], W_OK | X_OK))
			continue;
		if (!in_memory_fs(dirs[i])) {
			snprintf(db->rescue_dir, sizeof(db->rescue_dir), "%s",
				 dirs[i]);
			return;
		}
		if (!ram)
			ram = dirs[i];
	}
	if (ram) {
		snprintf(db->rescue_dir, sizeof(db->rescue_dir), "%s", ram);
		snprintf(db->rescue_problem, sizeof(db->rescue_problem),
			 "%s is in memory (tmpfs, ramfs), which a reboot "
			 "empties: rescue files written at a shutdown would be "
			 "lost; "
			 "set fallback.rescue_dir to a directory on a disk "
			 "other than DATA_DIR's", ram);
		return;
	}
	snprintf(db->rescue_problem, sizeof(db->rescue_problem),
		 "no writable directory outside DATA_DIR's filesystem "
		 "($TMPDIR, /var/tmp, /tmp, /dev/shm): set "
		 "fallback.rescue_dir");
}

void t4dx_set_dump_sink(struct t4dx *db, t4dx_dump_fn fn, void *arg)
{
	db->dump = fn;
	db->dump_arg = arg;
}

void t4dx_get_rescue(struct t4dx *db, const char **dir, const char **problem)
{
	*dir = db->rescue_dir;
	*problem = db->rescue_problem;
}

static void replay_rescue_dir(struct t4dx *db, const char *dir,
			      const char *prefix)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		char path[2 * PATH_MAX], done[2 * PATH_MAX + 16];
		snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		struct stat st;
		if (!rescue_name(list[i], prefix)) {
			/* not a rescue file of this store */
		} else if (lstat(path, &st) || !S_ISREG(st.st_mode) ||
			   st.st_uid != geteuid() || (st.st_mode & 022)) {
			/* only a regular file of ours that nobody else may
			 * have written: rescue directories may be shared */
			t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
					"rescue file %s is not a regular file "
					"of this user, closed to others: not "
					"replayed", path);
		} else {
			uint64_t k = replay_rescue_file(db, path);
			uint64_t last = t4dx_wal_last_lsn(db->wal);
			int rc = t4dx_wal_sync(db->wal, last);
			db->rescued += k;
			if (rc) {
				/* kept as it is: replayed again next time */
				mark_unpersisted(db, last);
				t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
						"rescue file %s: %llu records "
						"queued, not yet durable: %s",
						path, (unsigned long long)k,
						strerror(rc));
			} else {
				snprintf(done, sizeof(done), "%s.replayed",
					 path);
				if (!t4dx_io.rename(path, done))
					t4dx_io_fsync_dir(dir);
				t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
						"rescue file %s: %llu records "
						"replayed", path,
						(unsigned long long)k);
			}
		}
		free(list[i]);
	}
	if (n > 0)
		free(list);
}

/* ---- open and close --------------------------------------------------- */

static int replay_one(void *arg, struct t4dx_rec *r)
{
	struct t4dx *db = arg;
	int rc = apply(db, r);
	t4dx_entry_clear(&r->e);
	return rc;
}

static int make_dir(const char *path)
{
	/* private: the store holds every user's content */
	if (t4dx_io.mkdir(path, 0700) && errno != EEXIST)
		return errno;
	struct stat st;
	if (stat(path, &st))
		return errno;
	return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

static int take_lock(struct t4dx *db, char *msg, size_t msglen)
{
	char path[PATH_MAX], pid[32] = "";
	snprintf(path, sizeof(path), "%s/LOCK", db->dir);
	db->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (db->lock_fd < 0) {
		int rc = errno;
		snprintf(msg, msglen, "cannot open %s: %s", path, strerror(rc));
		return rc;
	}
	/* a reader that changes nothing (t4dx verify, ls, dump) holds a
	 * shared lock for a while: wait up to 10 s for it, then say so */
	for (int tries = 0; flock(db->lock_fd, LOCK_EX | LOCK_NB); tries++) {
		int rc = errno;
		bool readers = false;
		if (rc == EWOULDBLOCK &&
		    flock(db->lock_fd, LOCK_SH | LOCK_NB) == 0) {
			flock(db->lock_fd, LOCK_UN);
			readers = true;
		}
		if (readers && tries < 200) {
			struct timespec ts = { 0, 50000000 };
			nanosleep(&ts, NULL);
			continue;
		}
		if (readers) {
			snprintf(msg, msglen, "%s is being read by a t4dx tool "
				 "(verify, ls or dump): try again when it is "
				 "done", db->dir);
			return T4DX_ELOCKED;
		}
		if (rc == EWOULDBLOCK) {
			ssize_t n = pread(db->lock_fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			pid[strcspn(pid, "\n")] = 0;
			snprintf(msg, msglen, "%s is in use by process %s "
				 "(it holds %s)", db->dir,
				 *pid ? pid : "(unknown)", path);
			return T4DX_ELOCKED;
		}
		snprintf(msg, msglen, "cannot lock %s: %s", path, strerror(rc));
		return rc;
	}
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(db->lock_fd, 0) || pwrite(db->lock_fd, pid, (size_t)n, 0) != n) {
		int rc = errno;
		snprintf(msg, msglen, "cannot write %s: %s", path, strerror(rc));
		return rc;
	}
	return 0;
}

static void quarantine(struct t4dx *db, const char *path)
{
	char to[2 * PATH_MAX];
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	snprintf(to, sizeof(to), "%s/%s", db->quarantine_dir, base);
	/* never over an earlier casualty */
	for (int k = 1; access(to, F_OK) == 0; k++)
		snprintf(to, sizeof(to), "%s/%s.%d", db->quarantine_dir, base,
			 k);
	if (t4dx_io.rename(path, to) == 0)
		t4dx_io_fsync_dir(db->quarantine_dir);
	db->recovery.segments_quarantined++;
	size_t used = strlen(db->recovery.quarantined);
	snprintf(db->recovery.quarantined + used,
		 sizeof(db->recovery.quarantined) - used, "%s%s",
		 used ? " " : "", base);
	t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
			"segment %s is damaged: moved to %s", path, to);
}

/* ---- rebuilding a damaged segment --------------------------------------
 * The live segments together hold every key's newest version as of the
 * MANIFEST's flushed LSN; each segment holds the keys whose newest record
 * up to then lies in its LSN range (a flush: the memtable's; an nrem:
 * everything up to its end), tombstones too.  Replaying the WAL, archive
 * included, from its first record up to the flushed LSN into an empty
 * scratch state therefore gives back exactly the damaged segment's keys:
 * those whose version there has an LSN in its range.  They become a new
 * segment in the damaged one's place.  Records after the flushed LSN are
 * left to the ordinary replay that follows, which finds the rebuilt keys
 * to update, rename or delete (prune's logged deletions among them).
 * Replaying further here would be wrong: a key updated or renamed after
 * the flush would have its newest LSN outside the range and be dropped,
 * and the later record would then find nothing to apply to.  What
 * compaction did to the keys (kappa raised by nrem) is not in the WAL and
 * is lost; if the archive no longer reaches back to LSN 1, what only older
 * records described is lost too, and health says so.  Both only for the
 * keys of blocks that no longer read back: the damaged segment's whole
 * blocks are salvaged as they are (rebuild_segment). */

struct rebuild {
	struct t4dx *scratch;
	uint64_t upto, first;
	struct t4dx *db;                /* for the progress */
	uint64_t seg_id, done, total;
};

static void rebuild_progress(void *arg, uint64_t bytes)
{
	struct rebuild *rb = arg;
	rb->done += bytes;
	if (rb->done > rb->total)
		rb->done = rb->total;
	if (rb->db->rebuild_fn)
		rb->db->rebuild_fn(rb->db->rebuild_arg, rb->seg_id, rb->done,
				   rb->total);
}

static int rebuild_one(void *arg, struct t4dx_rec *r)
{
	struct rebuild *rb = arg;
	if (!rb->first)
		rb->first = r->lsn;
	if (r->lsn <= rb->upto)
		apply(rb->scratch, r);
	return 0;
}

static int salvage_one(void *arg, struct t4dx_entry *e)
{
	int rc = t4dx_mem_put(arg, e);
	t4dx_entry_clear(e);
	return rc;
}

static bool in_range(const struct t4dx_manifest_seg *ms,
		     const struct t4dx_entry *e)
{
	return e->lsn >= ms->min_lsn && e->lsn <= ms->max_lsn;
}

/* Does one of the segments from db->segs[from] on (newer than the one
 * rebuilt) hold e's key, a tombstone included?  An error counts as yes:
 * the older version is not put above what cannot be read. */
static bool held_newer(struct t4dx *db, size_t from,
		       const struct t4dx_entry *e)
{
	for (size_t j = from; j < db->nsegs; j++) {
		struct t4dx_entry x;
		int rc = t4dx_seg_get(db->segs[j], e->parent, e->name,
				      e->name_len, false, &x);
		if (rc == T4DX_ENOTFOUND)
			continue;
		if (!rc)
			t4dx_entry_clear(&x);
		return true;
	}
	return false;
}

/* Rebuild the segment ms names.  damaged: the segment itself, if it
 * could be opened (its footer and index are whole), else NULL.  Its
 * blocks that still read back whole are exact: their entries are kept as
 * they are (kappa and all); the archive replay gives the keys of the
 * blocks that do not, as far back as it reaches.  Without the salvage
 * one bad block would lose every key older than the archive. */
static int rebuild_segment(struct t4dx *db, const struct t4dx_manifest_seg *ms,
			   struct t4dx_seg *damaged, size_t newer_from,
			   struct t4dx_seg **out)
{
	struct t4dx scratch;
	struct rebuild rb = { .scratch = &scratch, .upto = db->flushed_lsn,
			      .db = db, .seg_id = ms->id };
	struct t4dx_entry **v = NULL;
	struct t4dx_mem *good = t4dx_mem_new();
	size_t n = 0, kept = 0, lost = 0;
	int rc;

	memset(&scratch, 0, sizeof(scratch));
	scratch.mem = t4dx_mem_new();
	if (!scratch.mem || !good) {
		rc = ENOMEM;
		goto out;
	}
	if (damaged &&
	    (rc = t4dx_seg_salvage(damaged, salvage_one, good, &lost)))
		goto out;
	rb.total = t4dx_wal_files_bytes(db->wal_dir, true);
	if (db->rebuild_fn)
		db->rebuild_fn(db->rebuild_arg, ms->id, 0, rb.total);
	rc = t4dx_wal_read_all_progress(db->wal_dir, true, db->flushed_lsn,
					rebuild_one,
					rebuild_progress, &rb, NULL);
	if (db->rebuild_fn)
		db->rebuild_fn(db->rebuild_arg, ms->id, rb.total, rb.total);
	if (rc)
		goto out;
	/* nothing read: the archive holds nothing up to the flushed LSN */
	if (!rb.first)
		rb.first = db->flushed_lsn + 1;
	/* only what lost blocks held can be missing */
	if (rb.first > 1 && (!damaged || lost) &&
	    (!db->recovery.rebuild_missing_before ||
	     rb.first > db->recovery.rebuild_missing_before))
		db->recovery.rebuild_missing_before = rb.first;
	/* the union, in key order: a salvaged entry wins over the replay's */
	size_t cap = t4dx_mem_count(good) + t4dx_mem_count(scratch.mem);
	v = calloc(cap ? cap : 1, sizeof(*v));
	if (!v) {
		rc = ENOMEM;
		goto out;
	}
	const struct t4dx_entry *g = t4dx_mem_seek(good, 0, "", 0);
	const struct t4dx_entry *a = t4dx_mem_seek(scratch.mem, 0, "", 0);
	while (g || a) {
		if (a && !in_range(ms, a)) {
			a = t4dx_mem_next(scratch.mem, a);
			continue;
		}
		int c = !a ? -1 : !g ? 1 :
			t4dx_key_cmp(g->parent, g->name, g->name_len,
				     a->parent, a->name, a->name_len);
		if (c <= 0) {
			v[n++] = (struct t4dx_entry *)g;
			kept++;
			g = t4dx_mem_next(good, g);
			if (c == 0)
				a = t4dx_mem_next(scratch.mem, a);
		} else {
			v[n++] = (struct t4dx_entry *)a;
			a = t4dx_mem_next(scratch.mem, a);
		}
	}
	if (n == 0)
		goto out;               /* nothing to put back */
	if (db->readonly) {
		/* the memtable is above every segment: only what no newer
		 * segment (db->segs[newer_from] on, all open by now) holds of
		 * the key goes there; the replay's entries are the newest as
		 * of flushed_lsn anyway, a salvaged one may be older */
		size_t put = 0;
		for (size_t i = 0; i < n && !rc; i++) {
			if (held_newer(db, newer_from, v[i]))
				continue;
			rc = t4dx_mem_put(db->mem, v[i]);
			put++;
		}
		if (!rc)
			db->recovery.items_rebuilt += put;
		goto out;
	}
	/* under a new id: the damaged file's name stays its own */
	uint64_t id = db->next_seg_id++;
	if ((rc = make_segment(db, id, v, n, out)))
		goto out;
	db->recovery.items_rebuilt += n;
	t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
			"segment %llu rebuilt as segment %llu: %zu entries, "
			"%zu from its %zu blocks that read back whole (%zu "
			"did not), %zu from the WAL archive",
			(unsigned long long)ms->id, (unsigned long long)id, n,
			kept, damaged ? t4dx_seg_blocks(damaged) - lost : 0,
			lost, n - kept);
out:
	free(v);
	t4dx_mem_free(scratch.mem);
	t4dx_mem_free(good);
	return rc;
}

/* Files in DATA_DIR that the engine does not know are reported and left
 * alone: they may be an operator's, and nothing here deletes them. */
static bool known_name(const char *dir, const char *name)
{
	static const char *const top[] = { ".", "..", "LOCK", "MANIFEST",
		"MANIFEST.tmp", "ID", "wal", "seg", "quarantine", NULL };
	size_t n = strlen(name);
	if (!strcmp(dir, "seg"))
		return !strcmp(name, ".") || !strcmp(name, "..") ||
		       (n == 24 && strspn(name, "0123456789") == 20 &&
			!strcmp(name + 20, ".t4s"));
	for (int i = 0; top[i]; i++)
		if (!strcmp(name, top[i]))
			return true;
	return !strncmp(name, "rescue-", 7);
}

static void report_strays(struct t4dx *db)
{
	const char *subs[] = { "", "seg" };
	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", db->dir, subs[i]);
		DIR *d = opendir(path);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d)))
			if (!known_name(subs[i], de->d_name))
				t4dx_alerts_add(db->alerts, T4DX_ALERT_INFO,
						"ignoring unknown file %s/%s",
						path, de->d_name);
		closedir(d);
	}
}

/* The live items the segments hold (tombstones and the versions they
 * hide left out). */
static int count_seg_items(struct t4dx *db, uint64_t *out)
{
	struct merge m;
	const struct t4dx_entry *e;
	uint64_t n = 0;
	/* read-only, the rebuilt entries are in the memtable */
	int rc = merge_open(&m, db->readonly ? db->mem : NULL, NULL, db->segs,
			    db->nsegs, 0, "", 0, false);
	if (rc)
		return rc;
	while ((rc = merge_next(&m, &e)) == 0)
		n += !e->tombstone;
	merge_close(&m);
	*out = n;
	return rc == T4DX_ENOTFOUND ? 0 : rc;
}

/* Open the MANIFEST's segments, checking every block.  A damaged one is
 * quarantined and rebuilt in its place from its blocks that read back
 * whole and the WAL archive (rebuild_segment). */
static int load_segments(struct t4dx *db, struct t4dx_manifest *m,
			 char *msg, size_t msglen)
{
	bool rebuilt = false;
	int rc;
	/* the damaged files, moved to quarantine/ only once a MANIFEST that
	 * names their rebuilt segments instead is saved: a rebuild that
	 * fails (a full disk) or a crash before that leaves them where the
	 * next start salvages them again */
	uint64_t *damaged_ids = calloc(m->nsegs ? m->nsegs : 1,
				       sizeof(*damaged_ids));
	size_t ndamaged = 0;
	/* read-only, a rebuild goes to the memtable, above every segment:
	 * it waits until the newer segments are open (held_newer) */
	struct ro_rebuild { size_t i, from; struct t4dx_seg *damaged; } *later =
		calloc(m->nsegs ? m->nsegs : 1, sizeof(*later));
	size_t nlater = 0;
	db->segs = calloc(m->nsegs ? m->nsegs : 1, sizeof(*db->segs));
	if (!db->segs || !damaged_ids || !later) {
		free(damaged_ids);
		free(later);
		return ENOMEM;
	}
	for (size_t i = 0; i < m->nsegs; i++) {
		char path[PATH_MAX];
		struct t4dx_seg *s = NULL;
		seg_file(db, m->segs[i].id, path, sizeof(path), false);
		struct t4dx_seg *damaged = NULL;
		rc = t4dx_seg_open(path, m->segs[i].id, &s);
		if (!rc) {
			rc = t4dx_seg_verify(s);
			if (rc == T4DX_ECORRUPT || rc == T4DX_EFORMAT)
				damaged = s;    /* salvaged below */
			else if (rc)
				t4dx_seg_unref(s);
			if (rc)
				s = NULL;
		}
		if (rc == ENOENT && db->nolock) {
			/* a daemon's compaction: read again */
			snprintf(msg, msglen, "a daemon keeps changing %s while "
				 "it is read; try again", db->dir);
			rc = EAGAIN;
			goto out;
		}
		if (rc == T4DX_ECORRUPT || rc == T4DX_EFORMAT ||
		    (rc == ENOENT && m->segs[i].items)) {
			db->recovery.segments_damaged++;
			if (rc != ENOENT && !db->readonly)
				damaged_ids[ndamaged++] = m->segs[i].id;
			else if (rc != ENOENT)
				t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
						"segment %s is damaged: its "
						"items are read from its "
						"whole blocks and the WAL "
						"archive", path);
			rebuilt = true;
			if (db->readonly) {
				later[nlater].i = i;
				later[nlater].from = db->nsegs;
				later[nlater++].damaged = damaged;
				continue;
			}
			rc = rebuild_segment(db, &m->segs[i], damaged,
					     db->nsegs, &s);
			t4dx_seg_unref(damaged);
			damaged = NULL;
			if (rc) {
				snprintf(msg, msglen, "cannot rebuild segment "
					 "%s: %s", path, t4dx_strerror(rc));
				goto out;
			}
			if (!s)
				continue;
		}
		if (rc) {
			snprintf(msg, msglen, "cannot open segment %s: %s",
				 path, t4dx_strerror(rc));
			goto out;
		}
		db->segs[db->nsegs++] = s;
	}
	for (size_t k = 0; k < nlater; k++) {
		struct t4dx_seg *s = NULL;
		char path[PATH_MAX];
		seg_file(db, m->segs[later[k].i].id, path, sizeof(path),
			 false);
		rc = rebuild_segment(db, &m->segs[later[k].i],
				     later[k].damaged, later[k].from, &s);
		t4dx_seg_unref(s);      /* none made read-only */
		if (rc) {
			snprintf(msg, msglen, "cannot rebuild segment %s: %s",
				 path, t4dx_strerror(rc));
			goto out;
		}
	}
	if (rebuilt) {
		/* what unreadable blocks held is gone: count again */
		rc = count_seg_items(db, &db->seg_items);
		if (rc) {
			snprintf(msg, msglen, "cannot count the items after a "
				 "rebuild: %s", t4dx_strerror(rc));
			goto out;
		}
		db->items = db->seg_items;
	}
	if (rebuilt && !db->readonly) {
		/* the MANIFEST names the rebuilt segments instead of the
		 * damaged ones (one that came back empty drops out) */
		rc = save_manifest(db, db->segs, db->nsegs, db->flushed_lsn,
				   db->man_next_ino, db->seg_items);
		if (rc) {
			snprintf(msg, msglen, "cannot write the MANIFEST: %s",
				 t4dx_strerror(rc));
			goto out;
		}
	}
	for (size_t i = 0; i < ndamaged; i++) {
		char path[PATH_MAX];
		seg_file(db, damaged_ids[i], path, sizeof(path), false);
		quarantine(db, path);
	}
	if (db->recovery.rebuild_missing_before)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"rebuild incomplete: the WAL archive starts at "
				"LSN %llu; items of unreadable segment blocks "
				"that only older records described are lost", (unsigned long long)
				db->recovery.rebuild_missing_before);
	rc = 0;
out:
	for (size_t k = 0; k < nlater; k++)
		t4dx_seg_unref(later[k].damaged);
	free(later);
	free(damaged_ids);
	return rc;
}

/* Read-only replay: records after the MANIFEST's flushed LSN go to the
 * memtable; the damage that a start would cut is only counted. */
static int replay_ro(void *arg, struct t4dx_rec *r)
{
	struct t4dx *db = arg;
	db->ro_last_lsn = r->lsn;
	if (r->lsn <= db->flushed_lsn)
		return 0;
	if (!db->recovery.records_replayed && r->lsn > db->flushed_lsn + 1) {
		/* as a start would find (t4dx_wal_report.gap_from) */
		db->recovery.wal_gap_from = db->flushed_lsn + 1;
		db->recovery.wal_gap_to = r->lsn - 1;
	}
	db->recovery.records_replayed++;
	return replay_one(db, r);
}

static int open_wal_readonly(struct t4dx *db, char *msg, size_t msglen)
{
	struct t4dx_wal_damage dmg;
	db->ro_last_lsn = db->flushed_lsn;
	int rc = t4dx_wal_read_all_progress(db->wal_dir, false,
					    db->flushed_lsn, replay_ro, NULL,
					    db, &dmg);
	if (rc) {
		snprintf(msg, msglen, "cannot read the WAL in %s: %s",
			 db->wal_dir, t4dx_strerror(rc));
		return rc;
	}
	if (dmg.gap_to) {
		/* holes between files: a start replays on after them */
		if (!db->recovery.wal_gap_to)
			db->recovery.wal_gap_from = dmg.gap_from;
		db->recovery.wal_gap_to = dmg.gap_to;
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"WAL records %llu to %llu: %llu are missing "
				"(a log file was removed?)",
				(unsigned long long)dmg.gap_from,
				(unsigned long long)dmg.gap_to,
				(unsigned long long)dmg.gap_records);
	}
	if (*dmg.path && !dmg.torn) {
		db->recovery.bytes_dropped = dmg.bytes;
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"%s is damaged at byte %llu: the records from "
				"there on are not read", dmg.path,
				(unsigned long long)dmg.offset);
	}
	return 0;
}

int t4dx_open(const char *dir, const struct t4dx_config *cfg,
	      struct t4dx **out, char *msg, size_t msglen)
{
	struct t4dx_open_args a = { .cfg = cfg };
	return t4dx_open_args(dir, &a, out, msg, msglen);
}

static int open_once(const char *dir, const struct t4dx_open_args *a,
		     struct t4dx **out, char *msg, size_t msglen);

/* Did the MANIFEST change since it said flushed_lsn (a daemon's flush or
 * compaction while a NOLOCK reader opened)? */
static bool manifest_moved(const char *dir, uint64_t flushed_lsn,
			   uint64_t next_seg_id)
{
	struct t4dx_manifest m = { 0 };
	int rc = t4dx_manifest_load(dir, &m);
	bool moved = rc == 0 ? m.flushed_lsn != flushed_lsn ||
			       m.next_seg_id != next_seg_id
			     : rc != T4DX_ENOTFOUND || flushed_lsn != 0;
	t4dx_manifest_free(&m);
	return moved;
}

int t4dx_open_args(const char *dir, const struct t4dx_open_args *a,
		   struct t4dx **out, char *msg, size_t msglen)
{
	/* without the lock, a daemon may flush or compact while the store
	 * is read (segments unlinked, log files archived): read again until
	 * one reading saw a MANIFEST that did not move under it */
	bool racy = (a->flags & T4DX_OPEN_READONLY) &&
		    (a->flags & T4DX_OPEN_NOLOCK);
	for (int tries = 0;; tries++) {
		int rc = open_once(dir, a, out, msg, msglen);
		if (!racy || tries == 9)
			return rc;
		if (rc == EAGAIN)
			continue;
		if (rc)
			return rc;
		if (!manifest_moved(dir, (*out)->flushed_lsn,
				    (*out)->man_seg_id))
			return 0;
		t4dx_close(*out);
		*out = NULL;
	}
}

static int open_once(const char *dir, const struct t4dx_open_args *a,
		     struct t4dx **out, char *msg, size_t msglen)
{
	const struct t4dx_config *cfg = a->cfg;
	unsigned flags = a->flags;
	struct t4dx_manifest m = { 0 };
	struct t4dx_wal_report rep = { 0 };
	int rc;
	struct t4dx *db = calloc(1, sizeof(*db));
	if (!db)
		return ENOMEM;
	snprintf(msg, msglen, "%s", "");
	db->lock_fd = -1;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&db->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&db->flush_mu, NULL);
	pthread_mutex_init(&db->bg_mu, NULL);
	pthread_cond_init(&db->bg_cond, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->flush_done, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&db->health_mu, NULL);
	pthread_cond_init(&db->health_cond, NULL);
	pthread_mutex_init(&db->compact_mu, NULL);
	pthread_mutex_init(&db->reject_mu, NULL);
	pthread_mutex_init(&db->cstats_mu, NULL);
	atomic_init(&db->running, -1);
	if (cfg)
		db->cfg = *cfg;
	else
		t4dx_config_defaults(&db->cfg);
	const char *pause = getenv("T4DX_TEST_COMPACT_PAUSE");
	if (pause)
		db->test_pause_s = strtod(pause, NULL);
	db->dir = strdup(dir);
	db->mem = t4dx_mem_new();
	db->alerts = t4dx_alerts_new();
	db->lru = t4dx_lru_new(db->cfg.fallback.max_items,
			       db->cfg.fallback.cache_bytes);
	struct t4dx_breaker_cfg bc = {
		.failure_threshold = db->cfg.breaker.failure_threshold,
		.success_threshold = db->cfg.breaker.success_threshold,
		.reset_timeout_s = db->cfg.breaker.reset_timeout_s,
	};
	db->breaker = t4dx_breaker_new(&bc, NULL, NULL, breaker_changed, db);
	if (!db->dir || !db->mem || !db->alerts || !db->breaker || !db->lru) {
		rc = ENOMEM;
		goto fail;
	}
	if (strlen(dir) > sizeof(db->seg_dir) - 16) {
		rc = ENAMETOOLONG;
		snprintf(msg, msglen, "data directory path is too long");
		goto fail;
	}
	snprintf(db->seg_dir, sizeof(db->seg_dir), "%s/seg", dir);
	snprintf(db->wal_dir, sizeof(db->wal_dir), "%s/wal", dir);
	snprintf(db->quarantine_dir, sizeof(db->quarantine_dir),
		 "%s/quarantine", dir);
	db->readonly = flags & T4DX_OPEN_READONLY;
	db->nolock = db->readonly && (flags & T4DX_OPEN_NOLOCK);
	db->rebuild_fn = a->rebuild;
	db->rebuild_arg = a->arg;
	if (db->readonly) {
		if ((rc = t4dx_io_check_store(dir, msg, msglen)))
			goto fail;
		if (!(flags & T4DX_OPEN_NOLOCK) &&
		    (rc = t4dx_io_lock_shared(dir, &db->lock_fd, msg,
					      msglen)))
			goto fail;
	} else if ((rc = make_dir(dir))) {
		snprintf(msg, msglen, "cannot use data directory %s: %s", dir,
			 strerror(rc));
		goto fail;
	}
	if (!db->readonly && (rc = take_lock(db, msg, msglen)))
		goto fail;
	if (!db->readonly &&
	    ((rc = make_dir(db->seg_dir)) || (rc = make_dir(db->wal_dir)) ||
	     (rc = make_dir(db->quarantine_dir)))) {
		snprintf(msg, msglen, "cannot create directories in %s: %s",
			 dir, strerror(rc));
		goto fail;
	}
	/* without it, rescue files can go to DATA_DIR only
	 * (choose_rescue_dir says so) */
	if (!db->readonly)
		store_id(db);

	rc = t4dx_manifest_load(dir, &m);
	if (rc == T4DX_ENOTFOUND) {
		m.next_seg_id = 1;
		m.next_ino = T4DX_ROOT_INO + 1;
		rc = 0;
	}
	if (rc) {
		snprintf(msg, msglen, "cannot read %s/MANIFEST: %s", dir,
			 t4dx_strerror(rc));
		goto fail;
	}
	db->next_seg_id = m.next_seg_id;
	db->man_seg_id = m.next_seg_id;
	db->flushed_lsn = m.flushed_lsn;
	db->next_ino = m.next_ino > T4DX_ROOT_INO ? m.next_ino
						  : T4DX_ROOT_INO + 1;
	db->items = m.items;
	db->seg_items = m.items;
	db->man_next_ino = db->next_ino;
	report_strays(db);
	if ((rc = load_segments(db, &m, msg, msglen)))
		goto fail;
	if (db->readonly) {
		/* rescue files are not applied: t4dx verify checks them */
		if ((rc = open_wal_readonly(db, msg, msglen)))
			goto fail;
		t4dx_manifest_free(&m);
		*out = db;
		return 0;
	}

	pthread_rwlock_wrlock(&db->lock);
	rc = t4dx_wal_open(db->wal_dir, db->quarantine_dir, m.flushed_lsn,
			   db->cfg.wal.max_file_bytes, replay_one, db, &rep,
			   &db->wal);
	pthread_rwlock_unlock(&db->lock);
	if (rc) {
		snprintf(msg, msglen, "cannot recover the WAL in %s: %s",
			 db->wal_dir, t4dx_strerror(rc));
		goto fail;
	}
	db->recovery.records_replayed = rep.records;
	db->recovery.bytes_dropped = rep.bytes_dropped;
	db->recovery.wal_files = rep.files;
	db->recovery.wal_gap_from = rep.gap_from;
	db->recovery.wal_gap_to = rep.gap_to;
	db->recovery.wal_files_quarantined = rep.files_quarantined;
	/* one alert per hole; the records after each were replayed */
	for (uint64_t i = 0; i < rep.gaps && i < T4DX_WAL_HOLES; i++)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"WAL records %llu to %llu are missing (a log "
				"file was removed from %s?): the changes they "
				"held are lost; the records after them are "
				"replayed", (unsigned long long)rep.hole[i].from,
				(unsigned long long)rep.hole[i].to, db->wal_dir);
	if (rep.gaps > T4DX_WAL_HOLES)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"WAL records %llu to %llu: %llu records are "
				"missing in %llu holes",
				(unsigned long long)rep.gap_from,
				(unsigned long long)rep.gap_to,
				(unsigned long long)rep.gap_records,
				(unsigned long long)rep.gaps);
	if (rep.files_quarantined)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"%llu WAL files after damage were moved to %s "
				"(records up to %llu): they are not replayed, "
				"and new records are numbered after them",
				(unsigned long long)rep.files_quarantined,
				db->quarantine_dir,
				(unsigned long long)rep.quarantined_lsn);
	t4dx_wal_set_sync_hist(db->wal, &db->fsync_hist);
	t4dx_wal_set_group_hook(db->wal, group_done, db);
	t4dx_wal_set_batch(db->wal, db->cfg.fallback.drain_batch);
	choose_rescue_dir(db);
	replay_rescue_dir(db, db->dir, "rescue-");
	if (*db->rescue_tag) {
		char prefix[64];
		const char *dirs[1 + RESCUE_CANDIDATES];
		size_t nd = 0;
		snprintf(prefix, sizeof(prefix), "t4dx-rescue-%s-",
			 db->rescue_tag);
		if (*db->rescue_dir)
			dirs[nd++] = db->rescue_dir;
		/* where a rescue that its directory refused may have gone */
		if (db->cfg.fallback.rescue_fallback)
			nd += rescue_candidates(db, dirs + nd);
		for (size_t i = 0; i < nd; i++)
			replay_rescue_dir(db, dirs[i], prefix);
	}
	/* files of a version that did not tag them */
	if (*db->cfg.fallback.rescue_dir)
		replay_rescue_dir(db, db->cfg.fallback.rescue_dir,
				  "t4dx-rescue-");
	if (*db->rescue_problem)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN, "rescue files: %s",
				db->rescue_problem);
	if (rep.bytes_dropped || db->recovery.segments_quarantined)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"recovery dropped %llu damaged WAL bytes and "
				"quarantined %llu segments",
				(unsigned long long)rep.bytes_dropped,
				(unsigned long long)
					db->recovery.segments_quarantined);

	/* a long log replayed (a crash after much writing): cut it now, so
	 * that the next crash does not replay it all again */
	pthread_rwlock_rdlock(&db->lock);
	bool due = flush_due(db);
	pthread_rwlock_unlock(&db->lock);
	/* after a hole, or LSNs left to quarantined files, the log now
	 * jumps: cut it, so that the next start does not report the same
	 * loss again as a new hole (this start's alerts said it) */
	if (rep.gaps || rep.files_quarantined)
		due = true;
	if (due) {
		int frc = t4dx_flush(db);
		db->recovery.flushed = frc == 0;
		if (frc)
			t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
					"the flush after the replay failed: %s",
					t4dx_strerror(frc));
	}

	if ((rc = pthread_create(&db->bg, NULL, flusher, db))) {
		snprintf(msg, msglen, "cannot start the flush thread: %s",
			 strerror(rc));
		goto fail;
	}
	db->bg_started = true;
	if ((rc = pthread_create(&db->health_thr, NULL, health_main, db))) {
		snprintf(msg, msglen, "cannot start the health thread: %s",
			 strerror(rc));
		goto fail;
	}
	db->health_started = true;
	t4dx_manifest_free(&m);
	*out = db;
	return 0;
fail:
	t4dx_manifest_free(&m);
	if (!*msg)
		snprintf(msg, msglen, "%s", t4dx_strerror(rc));
	t4dx_close(db);
	return rc;
}

int t4dx_close(struct t4dx *db)
{
	int rc = 0;
	if (!db)
		return 0;
	if (db->health_started) {
		pthread_mutex_lock(&db->health_mu);
		db->health_stop = true;
		pthread_cond_signal(&db->health_cond);
		pthread_mutex_unlock(&db->health_mu);
		pthread_join(db->health_thr, NULL);
	}
	t4dx_seg_unref(db->verify_seg);
	if (db->bg_started) {
		pthread_mutex_lock(&db->bg_mu);
		db->bg_stop = true;
		pthread_cond_signal(&db->bg_cond);
		pthread_cond_broadcast(&db->flush_done);
		pthread_mutex_unlock(&db->bg_mu);
		pthread_join(db->bg, NULL);
	}
	if (db->wal) {
		/* a last drain; what still cannot be written is rescued */
		uint64_t last = t4dx_wal_last_lsn(db->wal);
		int src = t4dx_wal_sync(db->wal, last);
		/* also when nothing waits: what the removed log held, if no
		 * save took it yet, is in memory alone */
		bool lost = !atomic_load(&db->fatal) &&
			    (src == ESTALE || db->wal_save_failed ||
			     db->nunsaved || t4dx_wal_gone(db->wal));
		if (lost) {
			/* the log files were removed behind our back: what
			 * they held lives on in the memtable alone, so it goes
			 * to a segment, with what never reached the log */
			pthread_mutex_lock(&db->flush_mu);
			rc = flush_cut(db, NULL, true);
			if (!rc && t4dx_mem_count(db->mem))
				rc = flush_cut(db, NULL, true);
			if (!rc)        /* an earlier cut's MANIFEST */
				rc = flush_cut(db, NULL, true);
			if (rc)
				t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
						"the log was removed and the "
						"changes it held could not be "
						"saved in a segment with a "
						"durable MANIFEST: %s",
						t4dx_strerror(rc));
			else
				t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
						"the log was removed while "
						"mounted; its changes were saved "
						"in a segment at unmount");
			if (rc)
				rc = write_rescue(db, true);
			pthread_mutex_unlock(&db->flush_mu);
		} else if (src) {
			rc = write_rescue(db, false);
		} else if (atomic_load(&db->fatal))
			rc = EIO;       /* the next start replays the WAL */
		else
			rc = t4dx_flush(db);
		/* (with the log lost, imm is in the segment or the rescue
		 * file by now) */
		if (!rc && db->imm && !lost)
			rc = t4dx_flush(db);
		t4dx_wal_close(db->wal);
	}
	for (size_t i = 0; i < db->nsegs; i++)
		t4dx_seg_unref(db->segs[i]);
	free(db->segs);
	drop_unsaved(db);
	free(db->unsaved);
	t4dx_mem_free(db->mem);
	t4dx_mem_free(db->imm);
	if (db->lock_fd >= 0)
		close(db->lock_fd);     /* releases the flock */
	pthread_rwlock_destroy(&db->lock);
	pthread_mutex_destroy(&db->flush_mu);
	pthread_mutex_destroy(&db->bg_mu);
	pthread_cond_destroy(&db->bg_cond);
	pthread_cond_destroy(&db->flush_done);
	pthread_mutex_destroy(&db->health_mu);
	pthread_cond_destroy(&db->health_cond);
	pthread_mutex_destroy(&db->compact_mu);
	pthread_mutex_destroy(&db->reject_mu);
	pthread_mutex_destroy(&db->cstats_mu);
	t4dx_breaker_free(db->breaker);
	t4dx_alerts_free(db->alerts);
	t4dx_lru_free(db->lru);
	free(db->dir);
	free(db);
	return rc;
}

void t4dx_get_stats(struct t4dx *db, struct t4dx_stats *st)
{
	struct t4dx_wal_stats ws;
	memset(st, 0, sizeof(*st));
	pthread_rwlock_rdlock(&db->lock);
	st->items = db->items;
	st->memtable_items = t4dx_mem_count(db->mem);
	st->memtable_bytes = t4dx_mem_bytes(db->mem);
	if (db->imm) {
		st->memtable_items += t4dx_mem_count(db->imm);
		st->memtable_bytes += t4dx_mem_bytes(db->imm);
	}
	st->segments = db->nsegs;
	for (size_t i = 0; i < db->nsegs; i++)
		st->segment_bytes += t4dx_seg_file_bytes(db->segs[i]);
	pthread_rwlock_unlock(&db->lock);
	st->recovery = db->recovery;
	pthread_mutex_lock(&db->bg_mu);
	st->write_stalls = db->stalls;
	st->writers_stalled = db->stalled;
	pthread_mutex_unlock(&db->bg_mu);
	if (!db->wal) {                 /* read-only */
		st->wal_lsn = db->ro_last_lsn;
		return;
	}
	t4dx_wal_get_stats(db->wal, &ws);
	st->wal_lsn = t4dx_wal_last_lsn(db->wal);
	st->wal_bytes = ws.bytes;
	st->archive_bytes = ws.archive_bytes;
	st->wal_syncs = ws.syncs;
	st->wal_records = ws.records;
}

int t4dx_statfs(struct t4dx *db, struct statvfs *out)
{
	return statvfs(db->dir, out) ? errno : 0;
}
