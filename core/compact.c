/*
 * compact.c - compaction runs: a flush as a run, nrem and prune over all
 * segments, and the automatic size-tiered merge of some (policy in
 * tier.c); their stats and progress.  rem will go here too.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine_int.h"

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
 * The automatic compaction (eng_auto_pick) is the same run over some adjacent
 * segments only, segs[lo..hi), without the flush: the output takes their
 * place in the list, between the older segments and the newer ones, so
 * that lookups, which go newest first, find what they found before.
 * Superseded versions among the inputs are dropped (a newer one is in the
 * output), but tombstones are kept unless the oldest segment is an input:
 * they still hide versions in the older segments.  Such a merge is
 * upkeep, not consolidation: it leaves kappa alone, since raising it for
 * the items that happen to lie in the merged segments (the recently
 * written ones, over and over) would make kappa depend on when flushes
 * happened; an explicit nrem merges everything and raises all of it.
 *
 * An automatic merge holds flush_mu only to choose its inputs and to
 * install its output, not while it reads and writes: a big merge would
 * otherwise keep every flush waiting, and the live log would grow without
 * a bound meanwhile (the write stall needs a flush under way).  Flushes
 * only append segments newer than the inputs, so the output still takes
 * the inputs' place; before installing it, the merge checks that the
 * inputs are still where it found them (anything else is a lost race: the
 * output is dropped and the run tried again).  Its output file, in place
 * before its MANIFEST, is db->merge_out_id, which no collection of
 * unlisted files removes. */

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

/* What nrem does to an item's kappa: the boost, capped at 1, and rounded
 * to 12 decimal places, so that boosts of 0.05 from 0 make 0.15, the
 * value a user compares with (max_kappa=0.15, prune_min_kappa 0.15), not
 * the 0.15000000000000002 of adding doubles. */
static double nrem_kappa(const struct t4dx *db, double kappa)
{
	if (db->cfg.compaction.nrem_kappa_boost <= 0)
		return kappa;           /* no boost: nothing changes */
	kappa += db->cfg.compaction.nrem_kappa_boost;
	if (kappa > 1)
		return 1;
	return round(kappa * 1e12) / 1e12;
}

/* nrem's boost for the items changed while it ran.
 *
 * A change logged during the run was applied onto the version the
 * memtable or the old segments held then, unboosted, and that version in
 * the memtable hides nrem's output for its key (or, after a rename, for
 * its new key).  A replay after a crash would apply the same records
 * onto the output instead: an update or a rename keeps the boosted kappa
 * there.  So that the two never differ, every regular file in the
 * memtable that existed before the run (ino below ino_before; the
 * memtable holds only changes of the run, since nrem flushed first) gets
 * its boost now as a logged update of kappa: live, the update raises the
 * memtable's version; replayed, it comes after the same changes and
 * gives the same value.  An item changed during the run is boosted once,
 * like every other.  Called with db->lock held for writing, right after
 * the output is installed; *last is the LSN of the last record (0 if
 * none).  Any error leaves live and replay apart: it is fatal (changes
 * refused until a restart, whose replay makes them agree). */
static int nrem_boost_changed(struct t4dx *db, uint64_t ino_before,
			      uint64_t *last)
{
	struct t4dx_rec *todo = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	*last = 0;
	if (db->cfg.compaction.nrem_kappa_boost <= 0)
		return 0;
	/* the keys first: a put into the memtable may move its entries */
	for (const struct t4dx_entry *e = t4dx_mem_seek(db->mem, 0, "", 0);
	     e; e = t4dx_mem_next(db->mem, e)) {
		if (e->tombstone || e->provisional || !S_ISREG(e->mode) ||
		    e->ino >= ino_before || nrem_kappa(db, e->kappa) == e->kappa)
			continue;
		if (n == cap) {
			size_t c = cap ? 2 * cap : 16;
			struct t4dx_rec *t = realloc(todo, c * sizeof(*t));
			if (!t) {
				free(todo);
				return eng_fatal(db, ENOMEM);
			}
			todo = t;
			cap = c;
		}
		struct t4dx_rec *r = &todo[n++];
		memset(r, 0, sizeof(*r));
		t4dx_entry_set_key(&r->e, e->parent, e->name, e->name_len);
		r->op = T4DX_OP_UPDATE;
		r->mask = T4DX_F_KAPPA;
		r->e.kappa = nrem_kappa(db, e->kappa);
	}
	for (size_t i = 0; i < n && !rc; i++) {
		rc = t4dx_wal_add(db->wal, &todo[i]);
		if (!rc) {
			*last = todo[i].lsn;
			rc = eng_apply(db, &todo[i]);
		}
		if (rc)
			rc = eng_fatal(db, rc);
	}
	free(todo);
	return rc;
}

static void sleep_s(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s,
			       .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* nrem or prune over all segments, or with tiered the automatic merge
 * of the segments eng_auto_pick chooses (kind nrem; T4DX_ENOTFOUND if there
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
	bool merging = false, have_flush_mu = true, out_marked = false;
	bool have_reject_mu = false;
	bool dropped = false;   /* the inputs' index graphs */
	uint64_t ino_before = 0;
	int64_t now = t4dx_now_ns();
	int rc = 0;

	pthread_mutex_lock(&db->flush_mu);
	if (!tiered && (rc = eng_flush_locked(db, NULL)))
		goto out;
	/* flush_mu, held to the end, keeps the list as it is now */
	pthread_rwlock_rdlock(&db->lock);
	if (!tiered) {
		hi = db->nsegs;
	} else if (!eng_auto_pick(db, &lo, &hi)) {
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
	ino_before = db->next_ino;
	pthread_rwlock_unlock(&db->lock);
	if (tiered) {
		/* the inputs are held by reference; flushes go on */
		pthread_mutex_unlock(&db->flush_mu);
		have_flush_mu = false;
	}
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
	rc = eng_merge_open(&m, NULL, NULL, in, nin, 0, "", 0, true);
	if (rc)
		goto out;
	merging = true;
	const struct t4dx_entry *e;
	struct t4dx_entry c;    /* the entry written, boosted by nrem */
	while ((rc = eng_merge_next(&m, &e)) == 0) {
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
			if (tiered) {
				db->merge_out_id = id;
				out_marked = true;
			}
			pthread_rwlock_unlock(&db->lock);
			if ((rc = eng_begin_segment(db, id, run->items_in, &w)))
				break;
		}
		t4dx_entry_copy(&c, e);
		if (kind == T4DX_COMPACT_NREM && !tiered && S_ISREG(c.mode))
			c.kappa = nrem_kappa(db, c.kappa);
		rc = t4dx_seg_writer_add(w, &c);
		t4dx_entry_clear(&c);
		if (rc)
			break;
	}
	if (rc != T4DX_ENOTFOUND)
		goto out;
	rc = 0;
	/* an input block whose vector part failed its checks was read
	 * without its vectors (seg_block.c): writing its items so would
	 * lose them for good, silently, with the damaged input retired.
	 * The run fails instead; the marker has the next start quarantine
	 * and rebuild that segment, and say what it lost */
	for (size_t i = 0; i < nin; i++)
		if (t4dx_seg_vec_lost(in[i])) {
			eng_mark_damaged(db, in[i], T4DX_ECORRUPT);
			rc = T4DX_ECORRUPT;
		}
	if (rc)
		goto out;

	if (w) {
		/* the inputs' graphs go while the output's is built */
		if (!tiered) {
			eng_index_drop_inputs(db, in, nin);
			dropped = true;
		}
		rc = eng_end_segment(db, id, w, &out);
		w = NULL;
		if (rc)
			goto out;
		run->items_out = t4dx_seg_count(out);
		run->bytes_out = t4dx_seg_file_bytes(out);
	}
	if (db->test_pause_s > 0)
		sleep_s(db->test_pause_s);

	if (!have_flush_mu) {
		pthread_mutex_lock(&db->flush_mu);
		have_flush_mu = true;
	}
	/* policy reject: the records logged below must not share a commit
	 * with a change that fails and is dropped (flush_mu, then reject_mu,
	 * then db->lock, as a flush takes them) */
	if (!tiered && !eng_queueing(db)) {
		pthread_mutex_lock(&db->reject_mu);
		have_reject_mu = true;
	}
	pthread_rwlock_wrlock(&db->lock);
	bool moved = hi > db->nsegs;
	for (size_t i = 0; i < nin && !moved; i++)
		moved = db->segs[lo + i] != in[i];
	if (moved) {
		/* only flushes ran meanwhile, which append; a change of the
		 * inputs' places is not ours to merge into */
		pthread_rwlock_unlock(&db->lock);
		if (out) {
			eng_seg_unlink(db, id);
		}
		rc = EAGAIN;
		goto out;
	}
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
			eng_seg_unlink(db, id);
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
	rc = list ? eng_install_segments(db, list, nnew, db->flushed_lsn,
				    db->man_next_ino, db->seg_items - ngone)
		 : ENOMEM;
	if (rc) {
		pthread_rwlock_unlock(&db->lock);
		free(list);
		if (out) {
			eng_seg_unlink(db, id);
		}
		goto out;
	}
	/* the list takes over the references of the segments kept */
	dropped = false;        /* the inputs are retired now */
	struct t4dx_seg **old = db->segs;
	if (out)
		list[lo] = t4dx_seg_ref(out);
	db->segs = list;
	db->nsegs = nnew;
	db->items -= live_gone;
	/* the WAL also says what prune removed (a no-op when replayed), so
	 * that a segment rebuilt from the archive does not bring it back */
	uint64_t last_del = 0, last_boost = 0;
	for (size_t i = 0; i < live_gone; i++) {
		struct t4dx_rec dr;
		memset(&dr, 0, sizeof(dr));
		dr.op = T4DX_OP_DELETE;
		t4dx_entry_set_key(&dr.e, gone[i].parent, gone[i].name,
				   gone[i].name_len);
		if (!t4dx_wal_add(db->wal, &dr))
			last_del = dr.lsn;
	}
	int brc = 0;
	if (kind == T4DX_COMPACT_NREM && !tiered)
		brc = nrem_boost_changed(db, ino_before, &last_boost);
	pthread_rwlock_unlock(&db->lock);
	if (last_boost > last_del)
		last_del = last_boost;
	if (last_del && t4dx_wal_sync(db->wal, last_del) && last_boost) {
		if (have_reject_mu)
			/* reject: applied but not durable, and the next
			 * failing commit would drop them; a restart's replay
			 * agrees again */
			brc = eng_fatal(db, EIO);
		else
			/* queue: they wait in the queue like any change
			 * readers already see, and health counts them */
			eng_mark_unpersisted(db, last_boost);
	}
	if (have_reject_mu) {
		pthread_mutex_unlock(&db->reject_mu);
		have_reject_mu = false;
	}
	if (brc && !rc)
		rc = brc;
	/* once the new MANIFEST is durable the inputs are garbage */
	bool keep = db->manifest_unsynced;
	for (size_t i = lo; i < hi; i++) {
		if (!keep)
			eng_seg_unlink(db, t4dx_seg_id(old[i]));
		t4dx_seg_unref(old[i]);
	}
	free(old);
	t4dx_io_fsync_dir(db->seg_dir);
	if (removed)
		for (size_t i = 0; i < live_gone; i++)
			removed(arg, gone[i].parent, gone[i].name,
				gone[i].name_len, gone[i].ino);
out:
	if (have_reject_mu)
		pthread_mutex_unlock(&db->reject_mu);
	if (merging)
		eng_merge_close(&m);
	if (out_marked) {
		pthread_rwlock_wrlock(&db->lock);
		db->merge_out_id = 0;
		pthread_rwlock_unlock(&db->lock);
	}
	if (have_flush_mu)
		pthread_mutex_unlock(&db->flush_mu);
	t4dx_seg_writer_abort(w);
	free(gone);
	if (dropped && rc)
		eng_index_restore_inputs(db, in, nin);  /* still live */
	for (size_t i = 0; i < nin; i++)
		t4dx_seg_unref(in[i]);
	free(in);
	t4dx_seg_unref(out);
	return rc;
}

/* Account a run of kind (its stats, histogram, and an alert if it
 * failed). */
static void run_done(struct t4dx *db, int kind, struct t4dx_compact_run *run,
		     const struct timespec *t0, int rc)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	uint64_t ns = (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000000000LL +
				 (t1.tv_nsec - t0->tv_nsec));
	run->duration_s = (double)ns / 1e9;
	run->result = rc;
	t4dx_hist_observe_ns(&db->compact_hist[kind], ns);
	pthread_mutex_lock(&db->cstats_mu);
	db->cstats[kind].runs++;
	db->cstats[kind].bytes_written += run->bytes_out;
	db->cstats[kind].has_last = true;
	db->cstats[kind].last = *run;
	pthread_mutex_unlock(&db->cstats_mu);
	if (rc)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"compaction %s failed: %s",
				t4dx_compact_name(kind), t4dx_strerror(rc));
}

/* The flusher's flush while another run holds compact_mu: an automatic
 * merge, which does not hold flush_mu while it writes, so the flush goes
 * ahead beside it (an nrem or prune holds flush_mu: the flush waits for
 * it as before).  The run under way keeps .ctl/compact's "running". */
static int flush_beside(struct t4dx *db)
{
	struct t4dx_compact_run run = { .start_ns = t4dx_now_ns() };
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&db->flush_mu);
	int rc = eng_flush_locked(db, &run);
	pthread_mutex_unlock(&db->flush_mu);
	run_done(db, T4DX_COMPACT_FLUSH, &run, &t0, rc);
	return rc;
}

/* One run; block: wait for a run under way instead of EBUSY; tiered: the
 * automatic merge (an nrem run in the stats), T4DX_ENOTFOUND and no run
 * counted if there is nothing to merge. */
int eng_compact(struct t4dx *db, int kind, t4dx_removed_fn removed, void *arg,
		bool block, bool tiered)
{
	if (kind == T4DX_COMPACT_REM)
		return EOPNOTSUPP;
	if (kind < 0 || kind >= T4DX_COMPACT_KINDS)
		return EINVAL;
	/* level 1 and 2: the data directory is not written */
	if (db->readonly || eng_current_level(db))
		return EROFS;
	if (pthread_mutex_trylock(&db->compact_mu)) {
		if (!block)
			return EBUSY;
		if (kind == T4DX_COMPACT_FLUSH)
			return flush_beside(db);
		pthread_mutex_lock(&db->compact_mu);
	}
	atomic_store(&db->progress_done, 0);
	atomic_store(&db->progress_total, 0);
	atomic_store(&db->running, kind);
	struct t4dx_compact_run run = { .start_ns = t4dx_now_ns() };
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc;
	if (kind == T4DX_COMPACT_FLUSH) {
		pthread_mutex_lock(&db->flush_mu);
		rc = eng_flush_locked(db, &run);
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
	run_done(db, kind, &run, &t0, rc);
	atomic_store(&db->running, -1);
	atomic_store(&db->progress_done, 0);
	atomic_store(&db->progress_total, 0);
	pthread_mutex_unlock(&db->compact_mu);
	return rc;
}

int t4dx_compact(struct t4dx *db, int kind, t4dx_removed_fn removed,
		 void *arg)
{
	return eng_compact(db, kind, removed, arg, false, false);
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
