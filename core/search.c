/*
 * search.c - finding items by meaning: the items whose vectors are
 * nearest a query vector (cosine similarity), with filters, and each
 * one's path below the root.
 *
 * A search works on a snapshot: under the engine's read lock it copies
 * the memtables (entries without their contents) and takes a reference
 * to each live segment, then drops the lock; everything else reads only
 * the snapshot, so writers, flushes and compactions go on meanwhile.
 *
 *   - the memtables are searched exactly (every vector read);
 *   - a segment with a vector index (seg_index.c) is searched at
 *     vector.ef_search and asked for 4k candidates (with a filter,
 *     max(4k, vector.ef_search)); each is read back from the
 *     segment (its record's ordinal is the index key), kept only if it
 *     passes the filters and no newer source (the memtables, a newer
 *     segment) holds its key, which is the merge rule that hides
 *     overwritten and deleted items from listings, and scored exactly.
 *     When the filters leave fewer than k, the segment is asked again
 *     for four times as many, and read whole past half its vectors;
 *   - a segment without an index (too small, or its index missing or
 *     damaged) is read whole, its vectors scored exactly, with the same
 *     rule;
 *   - an index that holds no vector says the segment has none: it is
 *     not read at all.
 *
 * The segments read whole go first, then the indexed ones, most vectors
 * first: once k results are held, a graph search is told the worst of
 * them (t4dx_index_search_above) and stops where nothing it has left to
 * look at can beat it, which on a small segment with nothing that near
 * costs a few nodes' neighbours instead of the whole breadth.  An index
 * in scan mode (its graph answered poorly when measured, hnsw.cc) takes
 * the same floor: it scans every code anyway, and returns only the
 * vectors that may reach it, exactly scored.
 *
 * The best k of all sources, by exact score, are the result: the same as
 * an exact search whenever the indexes return the true neighbours among
 * their candidates.  The directories (for paths and the under filter)
 * are the memtables' and each segment's (read once and kept with it),
 * by the same merge rule.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uthash.h>

#include "engine_int.h"
#include "index.h"
#include "vec.h"

/* A live directory: where it sits, to build paths and test "under". */
struct dnode {
	uint64_t ino, parent;
	uint16_t name_len;
	char name[T4DX_NAME_MAX + 1];
	UT_hash_handle hh;
};

struct search {
	struct t4dx *db;
	struct t4dx_mem *mem;           /* the memtables, copied */
	struct t4dx_seg **segs;         /* referenced, oldest first */
	bool *unread;                   /* best effort: segment i left out */
	size_t nsegs;
	const float *q;
	uint32_t dim;
	double qnorm;
	const struct t4dx_search_opts *o;
	struct dnode *dirs;
	struct t4dx_hit *heap;          /* a min-heap on score, k slots */
	size_t n;
	float *x;                       /* one vector as floats */
};

static void dirs_free(struct dnode **dirs)
{
	struct dnode *d, *t;
	HASH_ITER(hh, *dirs, d, t) {
		HASH_DEL(*dirs, d);
		free(d);
	}
}

/* Is ino (a directory) at or below dir?  A chain that does not reach the
 * root (a directory seen in no listing) counts as not below. */
static bool below(struct dnode *dirs, uint64_t ino, uint64_t dir)
{
	for (unsigned depth = 0; depth < 4096; depth++) {
		if (ino == dir)
			return true;
		if (ino == T4DX_ROOT_INO)
			return false;
		struct dnode *d;
		HASH_FIND(hh, dirs, &ino, sizeof(ino), d);
		if (!d)
			return false;
		ino = d->parent;
	}
	return false;
}

/* The path of (parent, name) below the root: "a/b/name", malloc'd; NULL
 * if a directory on the way is not in dirs (or a cycle, which a sound
 * store never has) or for want of memory.  Two walks up, the second
 * writing from the end: any depth. */
static char *path_of(struct dnode *dirs, uint64_t parent, const char *name,
		     size_t name_len)
{
	size_t len = name_len, depth = 0;
	for (uint64_t at = parent; at != T4DX_ROOT_INO; depth++) {
		struct dnode *d;
		HASH_FIND(hh, dirs, &at, sizeof(at), d);
		if (!d || depth > HASH_COUNT(dirs))
			return NULL;
		len += d->name_len + 1;
		at = d->parent;
	}
	char *p = malloc(len + 1);
	if (!p)
		return NULL;
	char *o = p + len - name_len;
	memcpy(o, name, name_len);
	p[len] = 0;
	for (uint64_t at = parent; at != T4DX_ROOT_INO;) {
		struct dnode *d;
		HASH_FIND(hh, dirs, &at, sizeof(at), d);
		*--o = '/';
		o -= d->name_len;
		memcpy(o, d->name, d->name_len);
		at = d->parent;
	}
	return p;
}

/* Better: a higher score, then the smaller key (results do not depend on
 * which source held an item). */
static bool better(const struct t4dx_hit *a, const struct t4dx_hit *b)
{
	if (a->score != b->score)
		return a->score > b->score;
	return t4dx_key_cmp(a->e.parent, a->e.name, a->e.name_len,
			    b->e.parent, b->e.name, b->e.name_len) < 0;
}

static void sift_down(struct t4dx_hit *h, size_t n, size_t i)
{
	for (;;) {
		size_t m = i, l = 2 * i + 1, r = l + 1;
		if (l < n && better(&h[m], &h[l]))
			m = l;
		if (r < n && better(&h[m], &h[r]))
			m = r;
		if (m == i)
			return;
		struct t4dx_hit t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void sift_up(struct t4dx_hit *h, size_t i)
{
	while (i) {
		size_t p = (i - 1) / 2;
		if (!better(&h[p], &h[i]))
			return;
		struct t4dx_hit t = h[i];
		h[i] = h[p];
		h[p] = t;
		i = p;
	}
}

static bool wanted(const struct search *s, const struct t4dx_entry *e)
{
	const struct t4dx_search_opts *o = s->o;
	if (e->tombstone || S_ISDIR(e->mode) || e->vec_src == T4DX_VEC_NONE ||
	    t4dx_vec_dim(e->vec) != s->dim ||
	    (o->skip_ino && e->ino == o->skip_ino))
		return false;
	if ((o->type >= 0 && e->type != o->type) || e->kappa < o->min_kappa ||
	    e->kappa > o->max_kappa || e->event_time_ns < o->since_ns ||
	    e->event_time_ns > o->until_ns)
		return false;
	return !o->under || below(s->dirs, e->parent, o->under);
}

/* e (wanted) as a hit, scored exactly; false for a zero vector. */
static bool score(struct search *s, const struct t4dx_entry *e,
		  struct t4dx_hit *h)
{
	t4dx_vec_get(e->vec, s->x);
	double dot = 0, norm = 0;
	for (uint32_t i = 0; i < s->dim; i++) {
		dot += (double)s->q[i] * s->x[i];
		norm += (double)s->x[i] * s->x[i];
	}
	if (norm == 0)
		return false;
	memset(h, 0, sizeof(*h));
	h->score = (float)(dot / (s->qnorm * sqrt(norm)));
	h->e = *e;
	h->e.content = NULL;
	h->e.vec = NULL;
	return true;
}

static void push(struct search *s, const struct t4dx_hit *h)
{
	if (s->n < s->o->k) {
		s->heap[s->n] = *h;
		sift_up(s->heap, s->n++);
	} else if (better(h, &s->heap[0])) {
		s->heap[0] = *h;
		sift_down(s->heap, s->n, 0);
	}
}

static void consider(struct search *s, const struct t4dx_entry *e)
{
	struct t4dx_hit h;
	if (wanted(s, e) && score(s, e, &h))
		push(s, &h);
}

/* Copy the memtables (imm, then mem over it) and reference the live
 * segments, under the read lock. */
static int snapshot(struct t4dx *db, struct search *s)
{
	int rc = 0;
	if (!(s->mem = t4dx_mem_new()))
		return ENOMEM;
	pthread_rwlock_rdlock(&db->lock);
	struct t4dx_mem *mems[2] = { db->imm, db->mem };
	for (int k = 0; k < 2 && !rc; k++) {
		if (!mems[k])
			continue;
		for (const struct t4dx_entry *e = t4dx_mem_seek(mems[k], 0,
								 "", 0);
		     e && !rc; e = t4dx_mem_next(mems[k], e)) {
			/* contents are never read: not kept alive */
			struct t4dx_entry c = *e;
			c.content = NULL;
			rc = t4dx_mem_put(s->mem, &c);
		}
	}
	if (!rc && !(s->segs = calloc(db->nsegs ? db->nsegs : 1,
				      sizeof(*s->segs))))
		rc = ENOMEM;
	for (size_t i = 0; !rc && i < db->nsegs; i++)
		s->segs[s->nsegs++] = t4dx_seg_ref(db->segs[i]);
	pthread_rwlock_unlock(&db->lock);
	return rc;
}

static void snapshot_free(struct search *s)
{
	t4dx_mem_free(s->mem);
	for (size_t i = 0; i < s->nsegs; i++)
		t4dx_seg_unref(s->segs[i]);
	free(s->segs);
}

/* rc, an error reading segment i: 0 if the search is best effort and
 * leaves that segment out from now on (what it gave so far stays). */
static int left_out(struct search *s, size_t i, int rc)
{
	if (!rc || rc == ENOMEM)
		return rc;
	/* as a lookup does: level 2 from now on, the segment marked if
	 * damaged (a search may be the first to read a damaged block) */
	if (rc == T4DX_ECORRUPT || rc == T4DX_EFORMAT || rc == EIO)
		eng_seg_unreadable(s->db, s->segs[i], rc);
	if (!s->o->best_effort || !s->unread)
		return rc;
	s->unread[i] = true;
	return 0;
}

/* Does a source newer than segment i hold key (parent, name)?  0 with
 * *out, or a read error of a newer segment.  A newer segment left out
 * (best effort) that may hold the key hides it too: a version there (a
 * delete, an overwrite) cannot be read, and an answer that is partial
 * may lack an item but must not show one that is gone. */
static int hidden(struct search *s, size_t i, uint64_t parent,
		  const char *name, size_t len, bool *out)
{
	*out = true;
	if (t4dx_mem_get(s->mem, parent, name, len))
		return 0;
	for (size_t j = i + 1; j < s->nsegs; j++) {
		struct t4dx_entry x;
		if (s->unread && s->unread[j]) {
			if (t4dx_seg_may_have(s->segs[j], parent, name, len))
				return 0;
			continue;
		}
		int rc = t4dx_seg_get(s->segs[j], parent, name, len, false, &x);
		if (rc == 0) {
			t4dx_entry_clear(&x);
			return 0;
		}
		if (rc != T4DX_ENOTFOUND)
			return left_out(s, j, rc);      /* 0: hidden */
	}
	*out = false;
	return 0;
}

/* Directory ino at (parent, name), unless a newer source gave it. */
static int add_dir(struct search *s, uint64_t ino, uint64_t parent,
		   const char *name, uint16_t len)
{
	struct dnode *d;
	HASH_FIND(hh, s->dirs, &ino, sizeof(ino), d);
	if (d)
		return 0;
	if (!(d = malloc(sizeof(*d))))
		return ENOMEM;
	d->ino = ino;
	d->parent = parent;
	d->name_len = len;
	memcpy(d->name, name, len);
	d->name[len] = 0;
	HASH_ADD(hh, s->dirs, ino, sizeof(d->ino), d);
	return 0;
}

/* The live directories of the snapshot, newest source first: the
 * memtables', then each segment's (kept with it, t4dx_seg_dirs) whose
 * key no newer source holds, as a merged listing would show them. */
static int scan_dirs(struct search *s)
{
	int rc = 0;
	for (const struct t4dx_entry *e = t4dx_mem_seek(s->mem, 0, "", 0);
	     e && !rc; e = t4dx_mem_next(s->mem, e))
		if (!e->tombstone && S_ISDIR(e->mode))
			rc = add_dir(s, e->ino, e->parent, e->name,
				     e->name_len);
	for (size_t i = s->nsegs; i-- > 0 && !rc;) {
		const struct t4dx_seg_dir *d;
		size_t n = 0;
		rc = left_out(s, i, t4dx_seg_dirs(s->segs[i], &d, &n));
		for (size_t j = 0; j < n && !rc && !s->unread[i]; j++) {
			/* a newer version of the same directory (its times
			 * change with every entry made in it) was taken:
			 * no lookup needed */
			struct dnode *have;
			HASH_FIND(hh, s->dirs, &d[j].ino, sizeof(d[j].ino),
				  have);
			if (have)
				continue;
			bool hid;
			rc = hidden(s, i, d[j].parent, d[j].name, d[j].name_len,
				    &hid);
			if (!rc && !hid)
				rc = add_dir(s, d[j].ino, d[j].parent,
					     d[j].name, d[j].name_len);
		}
	}
	return rc;
}

/* e of segment i, if it is wanted and the newest version of its key. */
static int consider_seg(struct search *s, size_t i, const struct t4dx_entry *e,
			struct t4dx_hit *h, bool *got)
{
	bool hid;
	*got = false;
	if (!wanted(s, e) || !score(s, e, h))
		return 0;
	int rc = hidden(s, i, e->parent, e->name, e->name_len, &hid);
	*got = !rc && !hid;
	return rc;
}

/* Segment i read whole, every vector scored. */
static int seg_exact(struct search *s, size_t i)
{
	struct t4dx_seg_iter *it;
	struct t4dx_entry e;
	struct t4dx_hit h;
	bool got;
	int rc = t4dx_seg_iter_open(s->segs[i], 0, "", 0, &it);
	if (rc)
		return rc;
	while ((rc = t4dx_seg_iter_next(it, T4DX_SEG_VEC, &e)) == 0) {
		rc = consider_seg(s, i, &e, &h, &got);
		t4dx_entry_clear(&e);
		if (rc)
			break;
		if (got)
			push(s, &h);
	}
	t4dx_seg_iter_close(it);
	return rc == T4DX_ENOTFOUND ? 0 : rc;
}

/* How far a graph's score may be from the exact one, relative to |q|
 * (float rounding of a dot product of unit vectors). */
#define EPS 1e-4f

/* Segment i through its index ix (nvec vectors): candidates from the
 * index, checked and scored; asked for more while the filters leave
 * fewer than k, read whole past half its vectors. */
static int seg_indexed(struct search *s, size_t i, struct t4dx_index *ix,
		       size_t nvec)
{
	const struct t4dx_search_opts *o = s->o;
	uint32_t ef = s->db->cfg.vector.ef_search;
	/* The graph's search keeps ef candidates whatever it is asked for,
	 * but each one it returns is scored and sorted: 4k of them leave
	 * room enough for the versions that newer sources hide; a filter
	 * may take many more, and gets all ef at once rather than a second
	 * search. */
	bool filtered = o->type >= 0 || o->min_kappa > 0 || o->max_kappa < 1 ||
			o->since_ns != INT64_MIN || o->until_ns != INT64_MAX ||
			o->under;
	size_t want = (size_t)o->k * 4;
	if (filtered && want < ef)
		want = ef;
	float eps = EPS * (float)s->qnorm;      /* in the graph's scores */
	struct t4dx_index_hit *ih = NULL;
	struct t4dx_hit *got = NULL;
	int rc = 0;
	for (;;) {
		if (want > nvec)
			want = nvec;
		if (want > T4DX_INDEX_EF_MAX)
			want = T4DX_INDEX_EF_MAX;
		free(ih);
		free(got);
		ih = malloc(want * sizeof(*ih));
		got = malloc(want * sizeof(*got));
		if (!ih || !got) {
			rc = ENOMEM;
			break;
		}
		uint32_t nh = 0;
		size_t ngot = 0;
		bool cut = false;
		float kth = 0;
		/* what scores below the worst result held cannot enter:
		 * the graph may stop short of its breadth there */
		float floor = s->n == s->o->k ?
			      (s->heap[0].score - EPS) * (float)s->qnorm :
			      -INFINITY;
		rc = t4dx_index_search_above(ix, s->q, (uint32_t)want, ef,
					     floor, ih, &nh);
		for (uint32_t j = 0; !rc && j < nh; j++) {
			struct t4dx_entry e;
			bool ok;
			/* the candidates come best first, scored by the graph
			 * on the unit vector (cosine * |q|, as exact scoring
			 * gives but for rounding): once k of this segment are
			 * kept, or the next cannot enter the results, the rest
			 * need not be read */
			float cos = (float)(ih[j].score / s->qnorm);
			if ((ngot >= s->o->k && ih[j].score < kth - eps) ||
			    (s->n == s->o->k && cos < s->heap[0].score - EPS)) {
				cut = true;
				break;
			}
			rc = t4dx_seg_get_nth(s->segs[i], ih[j].key,
					      T4DX_SEG_VEC, &e);
			if (rc == T4DX_ENOTFOUND) {
				rc = 0;         /* not a key of this segment */
				continue;
			}
			if (rc)
				break;
			rc = consider_seg(s, i, &e, &got[ngot], &ok);
			t4dx_entry_clear(&e);
			ngot += ok;
			if (ok && ngot == s->o->k)
				kth = ih[j].score;
		}
		if (rc)
			break;
		/* fewer than asked under a floor: nothing more of this
		 * segment can enter (a scan-mode index answers only what
		 * may reach the floor) */
		if (floor > -INFINITY && nh < want)
			cut = true;
		if (cut || ngot >= s->o->k || want >= nvec) {
			for (size_t j = 0; j < ngot; j++)
				push(s, &got[j]);
			break;
		}
		/* the filters or newer versions took too many: ask for more,
		 * or read the segment whole past half its vectors or once
		 * the index cannot give more (a segment over 2 x EF_MAX
		 * vectors: stopping there lost matches far from the query) */
		want *= 4;
		if (want >= nvec / 2 || want / 4 >= T4DX_INDEX_EF_MAX) {
			rc = seg_exact(s, i);
			break;
		}
	}
	free(ih);
	free(got);
	return rc;
}

/* A segment of the snapshot, in the order it is searched. */
struct seg_turn {
	size_t i;
	struct t4dx_index *ix;  /* NULL: read whole */
	size_t nvec;
};

/* Read-whole segments first, then indexed ones by their vectors, most
 * first: each sets the worst score the next must beat, and a graph
 * search that starts with a good one stops early (the floor of
 * t4dx_index_search_above). */
static int turn_cmp(const void *pa, const void *pb)
{
	const struct seg_turn *a = pa, *b = pb;
	if (!a->ix != !b->ix)
		return a->ix ? 1 : -1;
	if (a->nvec != b->nvec)
		return a->nvec > b->nvec ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

static int search_segments(struct search *s)
{
	int rc = 0;
	struct seg_turn *t = calloc(s->nsegs ? s->nsegs : 1, sizeof(*t));
	if (!t)
		return ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < s->nsegs; i++) {
		struct t4dx_index *ix = NULL;
		/* an index holds the vectors of vector.dim only */
		int st = s->o->exact || s->dim != s->db->cfg.vector.dim ?
			 T4DX_SEG_IX_NONE :
			 eng_seg_index(s->db, s->segs[i], &ix);
		if (st != T4DX_SEG_IX_LOADED || t4dx_index_dim(ix) != s->dim)
			t[n++] = (struct seg_turn){ i, NULL, 0 };
		else if (t4dx_index_count(ix))
			t[n++] = (struct seg_turn){ i, ix,
						    t4dx_index_count(ix) };
		/* else: no vector of this dim in the segment */
	}
	qsort(t, n, sizeof(*t), turn_cmp);
	for (size_t j = 0; j < n && !rc; j++) {
		if (s->unread[t[j].i])
			continue;
		rc = t[j].ix ? seg_indexed(s, t[j].i, t[j].ix, t[j].nvec) :
			       seg_exact(s, t[j].i);
		if (rc == ESTALE && t[j].ix)
			/* its graph was dropped meanwhile (an nrem,
			 * seg_index.c) before any of its hits was kept */
			rc = seg_exact(s, t[j].i);
		/* a vector part that failed its checks gave its block's
		 * items without vectors, left out here: marked, as a lookup
		 * does (merge.c), so that the next start quarantines and
		 * rebuilds the segment and says what it lost */
		if (t4dx_seg_vec_lost(s->segs[t[j].i]))
			eng_mark_damaged(s->db, s->segs[t[j].i],
					 T4DX_ECORRUPT);
		rc = left_out(s, t[j].i, rc);
	}
	free(t);
	return rc;
}

static int cmp_hits(const void *a, const void *b)
{
	return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

int t4dx_search(struct t4dx *db, const float *q, uint32_t dim,
		const struct t4dx_search_opts *o, struct t4dx_hit **out,
		size_t *nout)
{
	*out = NULL;
	*nout = 0;
	if (dim == 0 || dim > T4DX_VEC_DIM_MAX || o->k == 0 ||
	    o->k > T4DX_SEARCH_K_MAX)
		return EINVAL;
	double qn = 0;
	for (uint32_t i = 0; i < dim; i++) {
		if (!isfinite(q[i]))
			return EINVAL;
		qn += (double)q[i] * q[i];
	}
	if (qn == 0)
		return EINVAL;          /* no direction to be near */
	/* at unit length (in double), as the indexes hold their vectors:
	 * the graph's float scores of a query of any finite length (a hand
	 * vector's, a command embedder's) would overflow or lose their
	 * bits, and with them the floor and the cuts below */
	float *qu = malloc(sizeof(*qu) * dim);
	if (!qu)
		return ENOMEM;
	double len = sqrt(qn);
	qn = 0;
	for (uint32_t i = 0; i < dim; i++) {
		qu[i] = (float)(q[i] / len);
		qn += (double)qu[i] * qu[i];
	}
	struct search s = { .db = db, .q = qu, .dim = dim, .qnorm = sqrt(qn),
			    .o = o };
	s.heap = calloc(o->k, sizeof(*s.heap));
	s.x = malloc(sizeof(*s.x) * dim);
	int rc = !s.heap || !s.x ? ENOMEM : snapshot(db, &s);
	if (!rc && !(s.unread = calloc(s.nsegs + 1, sizeof(*s.unread))))
		rc = ENOMEM;
	if (!rc)
		rc = scan_dirs(&s);     /* the directories first */
	for (const struct t4dx_entry *e = rc ? NULL :
		     t4dx_mem_seek(s.mem, 0, "", 0);
	     e; e = t4dx_mem_next(s.mem, e))
		consider(&s, e);
	if (!rc)
		rc = search_segments(&s);
	snapshot_free(&s);
	free(s.unread);
	free(s.x);
	free(qu);
	if (!rc) {
		qsort(s.heap, s.n, sizeof(*s.heap), cmp_hits);
		size_t kept = 0;
		for (size_t i = 0; i < s.n && !rc; i++) {
			struct t4dx_hit *h = &s.heap[i];
			h->path = path_of(s.dirs, h->e.parent, h->e.name,
					  h->e.name_len);
			if (h->path)
				s.heap[kept++] = *h;
			else if (!o->best_effort)
				rc = ENOMEM;
			/* else: in a directory of a segment left out */
		}
		if (!rc)
			s.n = kept;
	}
	dirs_free(&s.dirs);
	if (rc) {
		t4dx_hits_free(s.heap, s.n);
		return rc;
	}
	*out = s.heap;
	*nout = s.n;
	return 0;
}

int eng_path_of(struct t4dx *db, uint64_t parent, const char *name,
		size_t len, char **out)
{
	struct t4dx_search_opts o;
	t4dx_search_defaults(&o);
	o.best_effort = true;   /* a damaged segment: what the rest gives */
	struct search s = { .db = db, .o = &o };
	*out = NULL;
	int rc = snapshot(db, &s);
	if (!rc && !(s.unread = calloc(s.nsegs + 1, sizeof(*s.unread))))
		rc = ENOMEM;
	if (!rc)
		rc = scan_dirs(&s);
	snapshot_free(&s);
	free(s.unread);
	if (!rc && !(*out = path_of(s.dirs, parent, name, len)))
		rc = ENOENT;    /* or no memory: either way, no path */
	dirs_free(&s.dirs);
	return rc;
}

void t4dx_search_stamp(struct t4dx *db, struct t4dx_search_stamp *st)
{
	struct t4dx_health h;
	memset(st, 0, sizeof(*st));
	/* the level first: a change that moves it is then seen either in
	 * it or in what the lock shows */
	t4dx_get_health(db, &h);
	st->level = h.level;
	pthread_rwlock_rdlock(&db->lock);
	st->mem = t4dx_mem_version(db->mem);
	st->imm = t4dx_mem_version(db->imm);
	st->next_seg_id = db->next_seg_id;
	st->nsegs = db->nsegs;
	pthread_rwlock_unlock(&db->lock);
}

void t4dx_hits_free(struct t4dx_hit *hits, size_t n)
{
	for (size_t i = 0; hits && i < n; i++)
		free(hits[i].path);
	free(hits);
}

void t4dx_search_defaults(struct t4dx_search_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->k = 10;
	o->type = -1;
	o->min_kappa = 0;
	o->max_kappa = 1;
	o->since_ns = INT64_MIN;
	o->until_ns = INT64_MAX;
}
