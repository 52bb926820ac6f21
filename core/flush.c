/*
 * flush.c - flushing: when a flush is due (the trigger the write path
 * checks), cutting the memtable into a new segment and installing it,
 * the flush of an empty memtable (a checkpoint), and saving what the log
 * held when its files were removed behind the daemon's back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "embed.h"
#include "engine_int.h"
#include "vec.h"

/* Is a flush due?  The memtable's limits hold only the newest version
 * of each item, so rewrites of the same files never reach them: the log
 * written since the last cut counts too (wal.checkpoint_bytes), which
 * bounds the live WAL and the replay of a restart.  That holds with an
 * empty memtable too (health probes alone on an idle store): the flush
 * of nothing then moves the flushed LSN (eng_flush_cut).  db->lock held. */
bool eng_flush_due(struct t4dx *db)
{
	if (t4dx_mem_count(db->mem) >= db->cfg.memtable.max_items ||
	    t4dx_mem_bytes(db->mem) >= db->cfg.memtable.max_bytes)
		return true;
	uint64_t cut = db->imm ? db->imm_lsn : db->flushed_lsn;
	return t4dx_wal_bytes_after(db->wal, cut) >=
	       db->cfg.wal.checkpoint_bytes;
}

/* Is a flush under way falling behind the writers?  Its memtable was cut
 * at imm_lsn; once the log has grown by half of wal.checkpoint_bytes
 * since, the work it gave to threads at nice 19 (vectors, the index) is
 * done at the daemon's priority too: past checkpoint_bytes the writers
 * would stall behind it (commit.c).  No answer is false: the lock may be
 * held by the caller (a start's rebuild) or wanted by a writer. */
bool eng_flush_behind(struct t4dx *db)
{
	if (pthread_rwlock_tryrdlock(&db->lock))
		return false;
	bool behind = db->imm && db->wal &&
		      t4dx_wal_bytes_after(db->wal, db->imm_lsn) >=
		      db->cfg.wal.checkpoint_bytes / 2;
	pthread_rwlock_unlock(&db->lock);
	return behind;
}

bool eng_flush_under_way(struct t4dx *db, uint64_t *gen)
{
	pthread_mutex_lock(&db->bg_mu);
	*gen = db->flush_gen;   /* read first: an end after it counts */
	bool flushing = db->flushing > 0;
	pthread_mutex_unlock(&db->bg_mu);
	return flushing;
}

void eng_maybe_wake_flusher(struct t4dx *db)
{
	if (!eng_flush_due(db))
		return;
	pthread_mutex_lock(&db->bg_mu);
	db->bg_want = true;
	pthread_cond_signal(&db->bg_cond);
	pthread_mutex_unlock(&db->bg_mu);
}

/* ---- vectors at a flush ------------------------------------------------
 * With the builtin embedder, a file's vector is a function of its bytes
 * alone (embed.c), so a flush computes the vectors of the files it
 * writes that have none yet from the content it holds anyway, and the
 * segment holds them from the start: the embedder thread then finds them
 * there and has nothing to read back, log or flush again (it checks a
 * file's vector before it reads the content).  A file that gets none here
 * (no time left, no memory) is the thread's, as before.  Nothing changes
 * for a crash: until the MANIFEST names the segment, the file is in the
 * log without a vector, and the start's sweep queues it.  The vectors
 * are those of the running version of the embedder, which is what
 * EMBEDDER records at the end of a redo, so a redo finds them the same;
 * and none before EMBEDDER names that embedder or marks its redo
 * (db->emb_named): the flusher starts before the embedder thread, and a
 * start's flush of a long replayed log computed vectors of a new
 * vector.dim that a crash and a start with the old one kept for good.
 * Content that gets no vector (binary, no word) is marked as tried, as
 * the thread would.
 *
 * Writers first: the vectors are computed by FLUSH_EMBED_THREADS threads
 * at nice FLUSH_EMBED_NICE, which take only CPU the writers leave, while
 * the flush waits for them; the flush itself keeps the daemon's priority
 * for what holds locks, and joins in only once it falls behind the
 * writers (eng_flush_behind).  They stop at FLUSH_EMBED_BUDGET_MS: on a
 * machine too busy to give them that much, the rest waits for the
 * embedder thread rather than keep the memtable from its segment.  Nor
 * do they compute any while files are written on a busy CPU (busy.c,
 * looked at by the flush before it starts them, then every
 * FLUSH_EMBED_GATE_EVERY files): those are left to the thread, which
 * waits for the writes to pause. */
#define FLUSH_EMBED_THREADS 2
#define FLUSH_EMBED_NICE 19
#define FLUSH_EMBED_BUDGET_MS 2000
#define BEHIND_POLL_MS 20
#define FLUSH_EMBED_GATE_EVERY 64       /* files between looks at the gate */

struct fembed {
	struct t4dx_entry *const *v;    /* the flush's entries, key order */
	const size_t *pick;             /* those to embed: indexes into v */
	struct t4dx_entry *out;         /* out[j]: pick[j]'s copy, with */
	bool *made;                     /* its vector or mark if made[j] */
	size_t n;                       /* picked */
	uint32_t dim;
	int64_t until;                  /* CLOCK_MONOTONIC ns */
	struct t4dx *db;
	atomic_size_t next;
	atomic_bool busy;               /* the gate closed: left to the
					 * embedder thread */
	uint64_t vectors, marks;        /* made: counted once the segment
					 * is in the MANIFEST (a failed
					 * flush is tried again) */
};

bool eng_flush_embeds(const struct t4dx_entry *e)
{
	return !e->tombstone && !e->provisional && S_ISREG(e->mode) &&
	       e->vec_src == T4DX_VEC_NONE && e->content && e->content->len;
}

static void fembed_run(struct fembed *f)
{
	float *x = malloc(sizeof(*x) * f->dim);
	size_t j;
	if (!x)
		return;
	while ((j = atomic_fetch_add(&f->next, 1)) < f->n &&
	       eng_mono_ns() < f->until && !atomic_load(&f->busy)) {
		/* files written meanwhile on a busy CPU: the rest waits
		 * (busy.c) */
		if (j % FLUSH_EMBED_GATE_EVERY == 0 && eng_busy(f->db)) {
			atomic_store(&f->busy, true);
			break;
		}
		const struct t4dx_entry *e = f->v[f->pick[j]];
		struct t4dx_blob *vec = NULL;
		int rc = t4dx_embed(e->content->data, e->content->len, f->dim,
				    x);
		if (rc == 0 && !(vec = t4dx_vec_new(x, f->dim)))
			continue;
		if (rc && rc != ENODATA)
			continue;
		t4dx_entry_copy(&f->out[j], e);
		f->out[j].vec = vec;
		f->out[j].vec_src = vec ? T4DX_VEC_EMBED : T4DX_VEC_TRIED;
		f->made[j] = true;
	}
	free(x);
}

static void *fembed_main(void *arg)
{
	/* spare CPU only (if the nice cannot be set, it runs as is) */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
			FLUSH_EMBED_NICE) != 0)
		errno = 0;
	fembed_run(arg);
	return NULL;
}

/* Give the entries of v that need one a vector (see above): v[i] then
 * points into f->out.  fembed_done() frees what this made. */
static void fembed_start(struct t4dx *db, struct t4dx_entry **v, size_t n,
			 struct fembed *f)
{
	memset(f, 0, sizeof(*f));
	atomic_init(&f->next, 0);
	atomic_init(&f->busy, false);
	f->db = db;
	/* not before EMBEDDER names this embedder or marks its redo (the
	 * start's first flush may come first): the thread's, then */
	if (db->readonly || strcmp(db->cfg.vector.embedder, "builtin") ||
	    !atomic_load(&db->emb_named))
		return;
	/* the gate first, here: a thread at nice 19 that looked at it
	 * itself could be held back in the middle of that look while the
	 * other computed on, and starting them only for that is a flush
	 * that waits for nothing */
	if (eng_busy(db))
		return;
	size_t *pick = malloc(sizeof(*pick) * (n ? n : 1)), m = 0;
	if (!pick)
		return;
	for (size_t i = 0; i < n; i++)
		if (eng_flush_embeds(v[i]))
			pick[m++] = i;
	f->out = m ? calloc(m, sizeof(*f->out)) : NULL;
	f->made = m ? calloc(m, sizeof(*f->made)) : NULL;
	if (!f->out || !f->made) {
		free(pick);
		free(f->out);
		free(f->made);
		f->out = NULL;
		f->made = NULL;
		return;
	}
	f->v = v;
	f->pick = pick;
	f->n = m;
	f->dim = db->cfg.vector.dim;
	f->until = eng_mono_ns() + FLUSH_EMBED_BUDGET_MS * 1000000LL;
	pthread_t thr[FLUSH_EMBED_THREADS];
	size_t started = 0;
	while (started < FLUSH_EMBED_THREADS && started < m &&
	       pthread_create(&thr[started], NULL, fembed_main, f) == 0)
		started++;
	if (!started)
		fembed_run(f);          /* no thread: on this one */
	/* this one joins in once the flush falls behind the writers */
	while (started && atomic_load(&f->next) < m &&
	       eng_mono_ns() < f->until && !atomic_load(&f->busy)) {
		struct timespec nap = { 0, BEHIND_POLL_MS * 1000000L };
		nanosleep(&nap, NULL);
		if (eng_flush_behind(db)) {
			fembed_run(f);
			break;
		}
	}
	for (size_t t = 0; t < started; t++)
		pthread_join(thr[t], NULL);
	for (size_t j = 0; j < m; j++) {
		if (!f->made[j])
			continue;
		v[pick[j]] = &f->out[j];
		if (f->out[j].vec)
			f->vectors++;
		else
			f->marks++;
	}
}

static void fembed_done(struct fembed *f)
{
	for (size_t j = 0; j < f->n; j++)
		if (f->made[j])
			t4dx_entry_clear(&f->out[j]);
	free((void *)f->pick);
	free(f->out);
	free(f->made);
}

/* Write imm to segment id.  No lock needed: imm is immutable.  *vectors
 * and *marks: those the flush computed for it (fembed_start). */
static int write_imm(struct t4dx *db, uint64_t id, struct t4dx_seg **out,
		     uint64_t *vectors, uint64_t *marks)
{
	size_t n = t4dx_mem_count(db->imm), i = 0;
	struct t4dx_entry **v = calloc(n ? n : 1, sizeof(*v));
	struct fembed f;
	if (!v)
		return ENOMEM;
	for (const struct t4dx_entry *e = t4dx_mem_seek(db->imm, 0, "", 0);
	     e; e = t4dx_mem_next(db->imm, e))
		v[i++] = (struct t4dx_entry *)e;
	fembed_start(db, v, n, &f);
	int rc = eng_make_segment(db, id, v, n, out);
	*vectors = f.vectors;
	*marks = f.marks;
	fembed_done(&f);
	free(v);
	return rc;
}

/* A durable MANIFEST names every segment: the memtables kept for the
 * rescue file are saved.  flush_mu held. */
void eng_drop_unsaved(struct t4dx *db)
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
	int rc = eng_install_segments(db, db->segs, db->nsegs, db->flushed_lsn,
				      db->man_next_ino, db->seg_items);
	if (!rc && db->manifest_unsynced)
		rc = EIO;
	if (!rc)
		eng_drop_unsaved(db);
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
	rc = eng_install_segments(db, db->segs, db->nsegs, upto, db->next_ino,
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
int eng_flush_cut(struct t4dx *db, struct t4dx_compact_run *run, bool wal_lost)
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
	bool rejecting = !eng_queueing(db);
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

	uint64_t vectors, marks;
	rc = write_imm(db, id, &seg, &vectors, &marks);
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
	rc = eng_install_segments(db, segs, db->nsegs + 1, last, next_ino,
				  items);
	if (rc)
		goto fail;
	db->nsegs++;
	eng_embed_count_flush(db, vectors, marks);
	bool pile = eng_auto_pick(db, NULL, NULL);
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
		eng_drop_unsaved(db);
	if (!db->manifest_unsynced && !wal_lost)
		t4dx_wal_archive(db->wal, last, db->cfg.wal.archive_max_bytes);
	if (pile) {
		/* segments of a size gathered (eng_auto_pick): in the
		 * background */
		pthread_mutex_lock(&db->bg_mu);
		db->bg_compact = true;
		pthread_cond_signal(&db->merge_cond);
		pthread_mutex_unlock(&db->bg_mu);
	}
	return 0;
fail:
	pthread_rwlock_unlock(&db->lock);
	t4dx_seg_unref(seg);
	return rc;
}

int eng_flush_locked(struct t4dx *db, struct t4dx_compact_run *run)
{
	return eng_flush_cut(db, run, false);
}

int t4dx_flush(struct t4dx *db)
{
	if (db->readonly)
		return EROFS;
	pthread_mutex_lock(&db->flush_mu);
	int rc = eng_flush_locked(db, NULL);
	pthread_mutex_unlock(&db->flush_mu);
	return rc;
}

/* The log's files were removed behind the daemon's back (rm -rf
 * DATA/wal): the records they held, and those that could not be written
 * since, live in the memtable alone.  Cut it into a segment as if every
 * record up to the last were in the log (eng_flush_cut's wal_lost), then let
 * the log begin anew in a new file.  The breaker, opened by the failures
 * that found the files gone, closes: the disk took the segment and the
 * MANIFEST.  If the cut fails (DATA_DIR is gone too), the next failed
 * group tries again, and the unmount writes a rescue file. */
void eng_save_lost_wal(struct t4dx *db)
{
	/* a group that failed while the last save ran finds it done */
	if (atomic_load(&db->fatal) || !t4dx_wal_gone(db->wal))
		return;
	pthread_mutex_lock(&db->flush_mu);
	int cut = eng_flush_cut(db, NULL, true);
	if (!cut && t4dx_mem_count(db->mem))
		cut = eng_flush_cut(db, NULL, true);  /* the first took imm */
	if (!cut)       /* a MANIFEST of an earlier try made durable */
		cut = eng_flush_cut(db, NULL, true);
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
	eng_note_level(db);
	/* what was queued since goes to the new log now */
	t4dx_wal_sync(db->wal, t4dx_wal_last_lsn(db->wal));
}
