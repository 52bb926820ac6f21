/*
 * seg_index.c - the vector index of each segment: seg/<id>.hnsw (its
 * format is described in hnsw.cc), built when the segment is written,
 * loaded at the first search, checked and rebuilt by the health thread.
 *
 * What it indexes.  The vectors of the segment's live puts whose length
 * is vector.dim, each under its record's ordinal in the segment (0 for
 * the first record in key order, as the writer added them), which
 * t4dx_seg_get_nth resolves through the blocks' record counts.  A
 * segment of fewer than vector.index_min_items entries gets no index:
 * reading its vectors costs less than a graph (search reads them); nor
 * does one of a format before vectors (version 3 and older).
 *
 * Durability.  The index is written where the segment is (the flusher,
 * the merger, nrem and prune runs, the rebuild of a damaged segment at
 * start), after the segment file is in place and before the MANIFEST
 * that names the segment: <id>.hnsw.tmp, fdatasync, rename, fsync of
 * seg/.  So a listed segment has its index unless building failed (an
 * alert), and a crash before the MANIFEST leaves an index of a segment
 * no MANIFEST names, which the next start removes with the other files
 * of unlisted segments (eng_index_orphan, at open); a segment id is
 * only reused after such a crash, and writing a segment replaces or removes the
 * index file of its id first.  An index file goes with its segment
 * (eng_seg_unlink).
 *
 * Building.  The graph is built as the segment is read, CHUNK vectors at a
 * time, with no copy of all the vectors next to the graph's (at 100,000
 * vectors of dim 256 that copy was 98 MiB more at the peak of an nrem).
 * Two helpers at nice 19 insert each chunk while the thread writing the
 * segment waits: they take only CPU nobody else wants, so that an idle
 * machine builds on two cores and a busy one leaves them to writers (a
 * flush's build used to insert half of each chunk at the daemon's
 * priority, the largest share of what the builtin embedder cost 16
 * writers that never pause).  The thread writing the segment inserts too
 * once a flush under way falls behind the writers (eng_flush_behind), so
 * that a starved build does not make them stall.  hnswlib inserts
 * concurrently under its own per-node locks (and the random level of a
 * new node is drawn under a lock of hnsw.cc's, "LEVELS").
 *
 * Memory of a full compaction.  nrem and prune build the index of all
 * live items while the inputs' indexes, loaded by searches, are still
 * held: at 100,000 vectors of dim 256, 123 MiB each.  The inputs are
 * retired by the MANIFEST switch that installs the output, so their
 * graphs are dropped before the output's is built (the index objects
 * stay with their segments, empty): searches in the meantime read those
 * segments whole, which is slower but exact.  A run that fails leaves
 * its inputs live: their indexes are loaded again at once.
 *
 * Graph or scan.  Each index loaded (or rebuilt by the health thread) is
 * tuned (t4dx_index_tune): its graph's recall is measured at
 * vector.ef_search and, below vector.min_recall, searches of it scan
 * 8-bit codes of its vectors instead (exact, hnsw.cc).  An index built
 * at a flush or a compaction is freed once saved and loaded by the first
 * search, so it is tuned then, off the write path and its locks.
 *
 * Damage.  A missing or damaged index (t4dx_index_load checks every
 * byte; its header names the segment's id, so that another segment's
 * file, copied or renamed by hand, counts as damaged) is never fatal: the segment is searched by reading its vectors,
 * a warning says so once, and the health thread builds the file again
 * after it has read the segment back whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine_int.h"
#include "index.h"
#include "vec.h"

void eng_index_file(struct t4dx *db, uint64_t id, char *path, size_t len,
		    bool tmp)
{
	snprintf(path, len, "%s/%020llu.hnsw%s", db->seg_dir,
		 (unsigned long long)id, tmp ? ".tmp" : "");
}

bool eng_index_wanted(struct t4dx *db, struct t4dx_seg *s)
{
	/* a segment written before vectors existed has none to index */
	return t4dx_seg_has_vectors(s) &&
	       t4dx_seg_count(s) >= db->cfg.vector.index_min_items;
}

#define CHUNK 256               /* vectors read, then inserted by two */
#define HELPER_NICE 19
#define HELPERS 2               /* threads inserting a chunk */

/* A chunk of vectors being inserted: the next one to take, the first
 * error, the helpers still at it (left, under mu). */
struct chunk {
	struct t4dx_index *ix;
	const uint32_t *keys;
	const float *vecs;
	uint32_t dim;
	size_t n;
	atomic_size_t next;
	atomic_int rc;
	pthread_mutex_t mu;
	pthread_cond_t done;
	size_t left;
};

static void chunk_insert(struct chunk *c)
{
	size_t i;
	while ((i = atomic_fetch_add(&c->next, 1)) < c->n &&
	       !atomic_load(&c->rc)) {
		int rc = t4dx_index_add(c->ix, c->keys[i],
					c->vecs + i * c->dim);
		int none = 0;
		if (rc)
			atomic_compare_exchange_strong(&c->rc, &none, rc);
	}
}

static void *helper_main(void *arg)
{
	struct chunk *c = arg;
	/* spare CPU only (if the nice cannot be set, it runs as is) */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
			HELPER_NICE) != 0)
		errno = 0;
	chunk_insert(c);
	pthread_mutex_lock(&c->mu);
	if (!--c->left)
		pthread_cond_signal(&c->done);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Insert the n vectors of a chunk into ix.  HELPERS threads at nice 19
 * do it while this one waits, so that a flush's graph takes only CPU the
 * writers leave; this one inserts too if no thread can be started, or
 * once the flush under way falls behind the writers (eng_flush_behind,
 * looked at every BEHIND_POLL_MS): a build starved on a busy machine
 * would otherwise keep the log from being cut until writers stall. */
#define BEHIND_POLL_MS 20
static int insert_chunk(struct t4dx *db, struct t4dx_index *ix,
			const uint32_t *keys, const float *vecs, uint32_t dim,
			size_t n)
{
	struct chunk c = { .ix = ix, .keys = keys, .vecs = vecs, .dim = dim,
			   .n = n };
	atomic_init(&c.next, 0);
	atomic_init(&c.rc, 0);
	pthread_mutex_init(&c.mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c.done, &ca);
	pthread_condattr_destroy(&ca);
	pthread_t thr[HELPERS];
	size_t helped = 0;
	pthread_mutex_lock(&c.mu);
	while (helped < HELPERS && helped < n &&
	       pthread_create(&thr[helped], NULL, helper_main, &c) == 0)
		c.left = ++helped;
	while (c.left) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += BEHIND_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&c.done, &c.mu, &ts) != ETIMEDOUT ||
		    !c.left)
			continue;
		pthread_mutex_unlock(&c.mu);
		if (eng_flush_behind(db))
			chunk_insert(&c);       /* what is left of the chunk */
		pthread_mutex_lock(&c.mu);
	}
	if (!helped) {
		pthread_mutex_unlock(&c.mu);
		chunk_insert(&c);
		pthread_mutex_lock(&c.mu);
	}
	pthread_mutex_unlock(&c.mu);
	for (size_t t = 0; t < helped; t++)
		pthread_join(thr[t], NULL);
	pthread_cond_destroy(&c.done);
	pthread_mutex_destroy(&c.mu);
	return atomic_load(&c.rc);
}

/* Add the indexed vectors of s to ix, a chunk at a time as they are
 * read. */
static int add_vectors(struct t4dx *db, struct t4dx_seg *s,
		       struct t4dx_index *ix)
{
	uint32_t dim = db->cfg.vector.dim;
	float *vecs = malloc((size_t)CHUNK * dim * sizeof(*vecs));
	uint32_t keys[CHUNK];
	size_t have = 0;
	struct t4dx_seg_iter *it;
	struct t4dx_entry e;
	if (!vecs)
		return ENOMEM;
	int rc = t4dx_seg_iter_open(s, 0, "", 0, &it);
	if (rc) {
		free(vecs);
		return rc;
	}
	for (uint32_t ord = 0;
	     (rc = t4dx_seg_iter_next(it, T4DX_SEG_VEC, &e)) == 0;
	     ord++) {
		bool take = !e.tombstone && e.vec_src != T4DX_VEC_NONE &&
			    t4dx_vec_dim(e.vec) == dim;
		if (take) {
			/* at unit length, so that the graph's inner product
			 * orders as search's cosine does (a vector set by
			 * hand may have any length; a zero one matches
			 * nothing) */
			float *x = vecs + have * dim;
			double norm = 0;
			t4dx_vec_get(e.vec, x);
			for (uint32_t d = 0; d < dim; d++)
				norm += (double)x[d] * x[d];
			if (norm > 0) {
				/* in double: 1 / |x| of values below the
				 * smallest normal float is past FLT_MAX */
				double len = sqrt(norm);
				for (uint32_t d = 0; d < dim; d++)
					x[d] = (float)(x[d] / len);
				keys[have++] = ord;
			}
		}
		t4dx_entry_clear(&e);
		if (have == CHUNK) {
			rc = insert_chunk(db, ix, keys, vecs, dim, have);
			have = 0;
			if (rc)
				break;
		}
	}
	t4dx_seg_iter_close(it);
	if (rc == T4DX_ENOTFOUND)
		rc = insert_chunk(db, ix, keys, vecs, dim, have);
	free(vecs);
	return rc;
}

/* Save ix as s's index file: temporary name, fdatasync, rename, fsync
 * of seg/.  Nothing is left behind on failure. */
static int save_index(struct t4dx *db, uint64_t id, struct t4dx_index *ix)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	eng_index_file(db, id, tmp, sizeof(tmp), true);
	eng_index_file(db, id, path, sizeof(path), false);
	int fd = t4dx_io.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return errno ? errno : EIO;
	t4dx_index_set_tag(ix, id);     /* whose it is: see load_index */
	int rc = t4dx_index_save(ix, fd);
	if (t4dx_io.close(fd) && !rc)
		rc = errno ? errno : EIO;
	if (!rc && t4dx_io.rename(tmp, path))
		rc = errno ? errno : EIO;
	if (rc) {
		t4dx_io.unlink(tmp);
		return rc;
	}
	return t4dx_io_fsync_dir(db->seg_dir);
}

int eng_index_build(struct t4dx *db, struct t4dx_seg *s,
		    struct t4dx_index **out)
{
	uint64_t id = t4dx_seg_id(s);
	*out = NULL;
	if (!eng_index_wanted(db, s)) {
		/* an index of an earlier segment of this id (a crash before
		 * its MANIFEST) must not pass for this one's */
		char path[PATH_MAX];
		eng_index_file(db, id, path, sizeof(path), false);
		if (t4dx_io.unlink(path) == 0)
			return t4dx_io_fsync_dir(db->seg_dir);
		return errno == ENOENT ? 0 : errno;
	}
	struct t4dx_index *ix = NULL;
	/* room for every entry: those with a vector are fewer */
	int rc = t4dx_index_begin(db->cfg.vector.dim, db->cfg.vector.index_m,
				  db->cfg.vector.ef_construction,
				  t4dx_seg_count(s), &ix);
	if (!rc && !(rc = add_vectors(db, s, ix)))
		t4dx_index_end(ix);
	if (!rc)
		rc = save_index(db, id, ix);
	if (rc) {
		t4dx_index_free(ix);
		return rc;
	}
	*out = ix;
	return 0;
}

int eng_index_place(struct t4dx *db, struct t4dx_seg *s)
{
	/* an index left by an earlier segment of this id (written, then a
	 * crash before its MANIFEST) goes first, durably, whatever happens
	 * next: it must never pass for this segment's */
	char path[PATH_MAX];
	eng_index_file(db, t4dx_seg_id(s), path, sizeof(path), false);
	if (t4dx_io.unlink(path) == 0) {
		int rc = t4dx_io_fsync_dir(db->seg_dir);
		if (rc)
			return rc;
	} else if (errno != ENOENT) {
		return errno ? errno : EIO;
	}
	struct t4dx_index *ix;
	int rc = eng_index_build(db, s, &ix);
	if (rc) {
		t4dx_seg_index_set(s, NULL, T4DX_SEG_IX_BAD);
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"segment %s: its vector index could not be "
				"written (%s): searched without one until the "
				"health check builds it", t4dx_seg_path(s),
				t4dx_strerror(rc));
		return 0;
	}
	/* loaded when a search first needs it */
	t4dx_index_free(ix);
	return 0;
}

/* Tune a loaded or rebuilt index: graph or scan (hnsw.cc).  Failing
 * (memory) leaves it in graph mode, which answers, if less well. */
static void tune(struct t4dx *db, struct t4dx_index *ix)
{
	int rc = t4dx_index_tune(ix, db->cfg.vector.ef_search,
				 (float)db->cfg.vector.min_recall);
	if (rc)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"a vector index could not be tuned (%s): its "
				"graph answers searches", t4dx_strerror(rc));
}

/* Load s's index file, checked, and tune it.  0 with *out, or the
 * error. */
static int load_index(struct t4dx *db, struct t4dx_seg *s,
		      struct t4dx_index **out)
{
	char path[PATH_MAX];
	eng_index_file(db, t4dx_seg_id(s), path, sizeof(path), false);
	int fd = t4dx_io.open(path, O_RDONLY, 0);
	if (fd < 0)
		return errno ? errno : EIO;
	int rc = t4dx_index_load(fd, db->cfg.vector.dim, out);
	t4dx_io.close(fd);
	/* keys are ordinals of records of this segment; a file tagged
	 * with another segment's id (copied or renamed by hand) is not
	 * this one's, whatever its count (0: a file written before tags) */
	if (!rc && (t4dx_index_count(*out) > t4dx_seg_count(s) ||
		    (t4dx_index_tag(*out) &&
		     t4dx_index_tag(*out) != t4dx_seg_id(s)))) {
		t4dx_index_free(*out);
		rc = T4DX_ECORRUPT;
	}
	if (!rc)
		tune(db, *out);
	return rc;
}

static void alert_bad(struct t4dx *db, struct t4dx_seg *s, int rc)
{
	char path[PATH_MAX];
	eng_index_file(db, t4dx_seg_id(s), path, sizeof(path), false);
	t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
			"vector index %s is %s (%s): segment %s is searched "
			"without it until the health check rebuilds it", path,
			rc == ENOENT ? "missing" : "unusable",
			t4dx_strerror(rc), t4dx_seg_path(s));
}

static bool seg_live(struct t4dx *db, struct t4dx_seg *s);

/*
 * The first searches of a segment: one claims the load (state LOADING),
 * loads and tunes the index (seconds at 100,000 vectors), the others
 * wait for it rather than load a copy each (150 MB each).  Its end is
 * always a set, which wakes them: LOADED, BAD (the file is damaged: all
 * read the segment whole) or UNKNOWN (no memory, or a full compaction
 * held s meanwhile: those waiting read it whole this once, a later
 * search tries again).  The health check claims the same way
 * (eng_index_check), and leaves a segment that a search loads alone.
 */
int eng_seg_index(struct t4dx *db, struct t4dx_seg *s,
		  struct t4dx_index **ix)
{
	int st;
	for (;;) {
		st = t4dx_seg_index_get(s, ix);
		if (st == T4DX_SEG_IX_LOADING) {
			st = t4dx_seg_index_wait(s, ix);
			/* the load waited for gave up: not again now */
			if (st == T4DX_SEG_IX_UNKNOWN ||
			    st == T4DX_SEG_IX_LOADING)
				return T4DX_SEG_IX_BAD;
		}
		/* a graph dropped for a full compaction: read whole
		 * meanwhile */
		if (st == T4DX_SEG_IX_LOADED && t4dx_index_dropped(*ix))
			return T4DX_SEG_IX_BAD;
		if (st != T4DX_SEG_IX_UNKNOWN)
			return st;
		/* an input of the full compaction under way, never loaded:
		 * not now either (its graph would sit beside the output's) */
		if (t4dx_seg_index_held(s))
			return T4DX_SEG_IX_BAD;
		if (!eng_index_wanted(db, s)) {
			t4dx_seg_index_set(s, NULL, T4DX_SEG_IX_NONE);
			return t4dx_seg_index_get(s, ix);
		}
		if (t4dx_seg_index_claim(s))
			break;
		/* another search claimed it first, or a run held it */
	}
	struct t4dx_index *got;
	int rc = load_index(db, s, &got);
	if (rc == ENOMEM) {
		/* says nothing of the file */
		t4dx_seg_index_set(s, NULL, T4DX_SEG_IX_UNKNOWN);
		return T4DX_SEG_IX_BAD;
	}
	if (rc) {
		t4dx_seg_index_set(s, NULL, T4DX_SEG_IX_BAD);
		/* once, by the one load; and not of a segment a merge
		 * retired since the search took it (its index went with
		 * it: nothing is missing) */
		if (rc != ENOENT || seg_live(db, s))
			alert_bad(db, s, rc);
		return t4dx_seg_index_get(s, ix);
	}
	if (t4dx_seg_index_held(s)) {   /* held while it loaded */
		t4dx_index_free(got);
		t4dx_seg_index_set(s, NULL, T4DX_SEG_IX_UNKNOWN);
		return T4DX_SEG_IX_BAD;
	}
	t4dx_seg_index_set(s, got, T4DX_SEG_IX_LOADED);
	return t4dx_seg_index_get(s, ix);
}

/* Is s still one of the live segments? */
static bool seg_live(struct t4dx *db, struct t4dx_seg *s)
{
	bool live = false;
	pthread_rwlock_rdlock(&db->lock);
	for (size_t i = 0; i < db->nsegs && !live; i++)
		live = db->segs[i] == s;
	pthread_rwlock_unlock(&db->lock);
	return live;
}

/* ix, just loaded or built, for a segment whose index is cur, loaded:
 * it goes, unless cur's graph was dropped by a run that could not load
 * it back (eng_index_restore_inputs), when it takes that place; not while
 * a run is on, which may be dropping it on purpose. */
static void keep_loaded(struct t4dx *db, struct t4dx_index *cur,
			struct t4dx_index *ix)
{
	if (!t4dx_index_dropped(cur) || t4dx_compact_running(db) >= 0 ||
	    t4dx_index_adopt(cur, ix))
		t4dx_index_free(ix);
}

/* s's index file against cur, the graph in memory that was loaded from
 * it or saved to it: still what was written? */
static int verify_file(struct t4dx *db, struct t4dx_seg *s,
		       const struct t4dx_index *cur)
{
	char path[PATH_MAX];
	uint64_t count, tag;
	eng_index_file(db, t4dx_seg_id(s), path, sizeof(path), false);
	int fd = t4dx_io.open(path, O_RDONLY, 0);
	if (fd < 0)
		return errno ? errno : EIO;
	int rc = t4dx_index_verify(fd, db->cfg.vector.dim, &count, &tag);
	t4dx_io.close(fd);
	if (!rc && (count != t4dx_index_count(cur) ||
		    tag != t4dx_index_tag(cur)))
		rc = T4DX_ECORRUPT;
	return rc;
}

int eng_index_check(struct t4dx *db, struct t4dx_seg *s)
{
	/* an input of the full compaction under way: left to it */
	if (!eng_index_wanted(db, s) || t4dx_seg_index_held(s))
		return 0;
	struct t4dx_index *ix = NULL, *cur;
	int st = t4dx_seg_index_get(s, &cur), rc;
	/* never looked for: claimed like a search's load (which checks
	 * the file whole too), so that none loads a second copy; a
	 * segment a search is loading is left to it */
	if (st == T4DX_SEG_IX_UNKNOWN && !t4dx_seg_index_claim(s))
		return 0;
	if (st == T4DX_SEG_IX_LOADING)
		return 0;
	/* A graph in memory was checked whole when it was loaded, or was
	 * built here: its file need only be what was written, and no
	 * second copy is loaded beside it for the check (at 100,000
	 * vectors, 123 MiB more).  Nor is one dropped by a run under way
	 * loaded back. */
	if (st == T4DX_SEG_IX_LOADED &&
	    (!t4dx_index_dropped(cur) || t4dx_compact_running(db) >= 0))
		rc = verify_file(db, s, cur);
	else
		rc = load_index(db, s, &ix);
	if (rc == ENOMEM) {
		if (st == T4DX_SEG_IX_UNKNOWN)  /* the claim ends */
			t4dx_seg_index_set(s, NULL, T4DX_SEG_IX_UNKNOWN);
		return rc;
	}
	if (!rc) {
		/* a good file: searches may use it from now on */
		if (!ix)
			return 0;
		if (st == T4DX_SEG_IX_UNKNOWN && t4dx_seg_index_held(s)) {
			/* a full compaction of s began meanwhile */
			t4dx_index_free(ix);
			t4dx_seg_index_set(s, NULL, T4DX_SEG_IX_UNKNOWN);
		} else if (st != T4DX_SEG_IX_LOADED) {
			t4dx_seg_index_set(s, ix, T4DX_SEG_IX_LOADED);
		}
		else
			keep_loaded(db, cur, ix);
		return 0;
	}
	if (st != T4DX_SEG_IX_BAD)
		alert_bad(db, s, rc);
	if (st != T4DX_SEG_IX_LOADED)
		t4dx_seg_index_set(s, NULL, T4DX_SEG_IX_BAD);
	int brc = eng_index_build(db, s, &ix);
	if (brc) {
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"vector index of segment %s cannot be rebuilt: "
				"%s", t4dx_seg_path(s), t4dx_strerror(brc));
		return rc;
	}
	/* a compaction may have retired s meanwhile, removing the files
	 * it had: then this one goes too */
	if (!seg_live(db, s)) {
		char path[PATH_MAX];
		eng_index_file(db, t4dx_seg_id(s), path, sizeof(path), false);
		t4dx_io.unlink(path);
		t4dx_index_free(ix);
		return 0;
	}
	tune(db, ix);
	if (st == T4DX_SEG_IX_LOADED)
		keep_loaded(db, cur, ix);
	else
		t4dx_seg_index_set(s, ix, T4DX_SEG_IX_LOADED);
	t4dx_alerts_add(db->alerts, T4DX_ALERT_INFO,
			"vector index of segment %s rebuilt",
			t4dx_seg_path(s));
	return 0;
}

void eng_index_drop_inputs(struct t4dx *db, struct t4dx_seg **in, size_t n)
{
	bool dropped = false;
	for (size_t i = 0; i < n; i++) {
		struct t4dx_index *ix;
		/* loaded or not: none is loaded until the run ends */
		t4dx_seg_index_hold(in[i], true);
		if (t4dx_seg_index_get(in[i], &ix) == T4DX_SEG_IX_LOADED &&
		    !t4dx_index_dropped(ix)) {
			t4dx_index_drop(ix);
			dropped = true;
		}
	}
	/* the graph's vectors are one large block, unmapped when freed;
	 * its upper levels' lists are small ones, which malloc keeps
	 * unless asked */
	if (dropped)
		malloc_trim(0);
}

void eng_index_restore_inputs(struct t4dx *db, struct t4dx_seg **in,
			      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct t4dx_index *ix, *got;
		t4dx_seg_index_hold(in[i], false);
		if (t4dx_seg_index_get(in[i], &ix) != T4DX_SEG_IX_LOADED ||
		    !t4dx_index_dropped(ix))
			continue;
		int rc = load_index(db, in[i], &got);
		if (!rc && (rc = t4dx_index_adopt(ix, got)))
			t4dx_index_free(got);
		/* searched whole until the health check loads it */
		if (rc)
			t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
					"vector index of segment %s could not be "
					"loaded again after a compaction: %s",
					t4dx_seg_path(in[i]), t4dx_strerror(rc));
	}
}

void t4dx_index_modes(struct t4dx *db, struct t4dx_index_modes *out)
{
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&db->lock);
	for (size_t i = 0; i < db->nsegs; i++) {
		struct t4dx_index *ix;
		if (t4dx_seg_index_get(db->segs[i], &ix) != T4DX_SEG_IX_LOADED ||
		    t4dx_index_dropped(ix))
			continue;
		if (t4dx_index_mode(ix) == T4DX_INDEX_SCAN) {
			out->scan++;
			out->scan_bytes += t4dx_index_code_bytes(ix);
		} else {
			out->graph++;
		}
	}
	pthread_rwlock_unlock(&db->lock);
}

/* The id of an index file name of seg/ (<id>.hnsw or <id>.hnsw.tmp). */
static bool index_name(const char *name, uint64_t *id)
{
	size_t n = strlen(name);
	if ((n != 25 && n != 29) || strspn(name, "0123456789") != 20 ||
	    strcmp(name + 20, n == 25 ? ".hnsw" : ".hnsw.tmp"))
		return false;
	*id = strtoull(name, NULL, 10);
	return true;
}

bool eng_index_name(const char *name, uint64_t *id)
{
	uint64_t any;
	return index_name(name, id ? id : &any);
}

bool eng_index_orphan(struct t4dx *db, const char *name)
{
	uint64_t id;
	if (!index_name(name, &id))
		return false;
	if (strstr(name, ".tmp"))
		return true;
	for (size_t i = 0; i < db->nsegs; i++)
		if (t4dx_seg_id(db->segs[i]) == id)
			return false;
	return true;
}
