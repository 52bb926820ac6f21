/*
 * search.c - finding items by meaning: the items whose vectors are
 * nearest a query vector (cosine similarity), with filters, and each
 * one's path below the root.
 *
 * This is the exact search: one pass over the merged view of the
 * memtables and segments, the view listings use, so deleted and
 * overwritten items never appear.  It reads every vector, which costs
 * the store's size per query; the per-segment HNSW indexes replace it for
 * segments (and it stays the fallback for a segment whose index is
 * missing or damaged).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uthash.h>

#include "engine_int.h"
#include "vec.h"

/* A live directory: where it sits, to build paths and test "under". */
struct dnode {
	uint64_t ino, parent;
	uint16_t name_len;
	char name[T4DX_NAME_MAX + 1];
	UT_hash_handle hh;
};

struct search {
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

/* The path of (parent, name) below the root: "a/b/name", malloc'd. */
static char *path_of(struct dnode *dirs, uint64_t parent, const char *name,
		     size_t name_len)
{
	const struct dnode *chain[256];
	size_t depth = 0, len = name_len;
	while (parent != T4DX_ROOT_INO) {
		struct dnode *d;
		HASH_FIND(hh, dirs, &parent, sizeof(parent), d);
		if (!d || depth == sizeof(chain) / sizeof(chain[0]))
			return NULL;
		chain[depth++] = d;
		len += d->name_len + 1;
		parent = d->parent;
	}
	char *p = malloc(len + 1), *o = p;
	if (!p)
		return NULL;
	while (depth--) {
		memcpy(o, chain[depth]->name, chain[depth]->name_len);
		o += chain[depth]->name_len;
		*o++ = '/';
	}
	memcpy(o, name, name_len);
	o[name_len] = 0;
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
	    t4dx_vec_dim(e->vec) != s->dim)
		return false;
	if ((o->type >= 0 && e->type != o->type) || e->kappa < o->min_kappa ||
	    e->kappa > o->max_kappa || e->event_time_ns < o->since_ns ||
	    e->event_time_ns > o->until_ns)
		return false;
	return !o->under || below(s->dirs, e->parent, o->under);
}

static void consider(struct search *s, const struct t4dx_entry *e)
{
	if (!wanted(s, e))
		return;
	t4dx_vec_get(e->vec, s->x);
	double dot = 0, norm = 0;
	for (uint32_t i = 0; i < s->dim; i++) {
		dot += (double)s->q[i] * s->x[i];
		norm += (double)s->x[i] * s->x[i];
	}
	if (norm == 0)
		return;
	struct t4dx_hit h;
	memset(&h, 0, sizeof(h));
	h.score = (float)(dot / (s->qnorm * sqrt(norm)));
	h.e = *e;
	h.e.content = NULL;
	h.e.vec = NULL;
	if (s->n < s->o->k) {
		s->heap[s->n] = h;
		sift_up(s->heap, s->n++);
	} else if (better(&h, &s->heap[0])) {
		s->heap[0] = h;
		sift_down(s->heap, s->n, 0);
	}
}

static int scan(struct t4dx *db, struct search *s, bool with_content)
{
	struct merge m;
	int rc = eng_merge_open(&m, db->mem, db->imm, db->segs, db->nsegs, 0,
				"", 0, with_content);
	if (rc)
		return rc;
	const struct t4dx_entry *e;
	while (!rc && (rc = eng_merge_next(&m, &e)) == 0) {
		if (e->tombstone)
			continue;
		if (with_content) {
			consider(s, e);
		} else if (S_ISDIR(e->mode)) {
			struct dnode *d = malloc(sizeof(*d));
			if (!d) {
				rc = ENOMEM;
				break;
			}
			d->ino = e->ino;
			d->parent = e->parent;
			d->name_len = e->name_len;
			memcpy(d->name, e->name, e->name_len + 1);
			struct dnode *old;
			HASH_REPLACE(hh, s->dirs, ino, sizeof(d->ino), d, old);
			free(old);
		}
	}
	eng_merge_close(&m);
	return rc == T4DX_ENOTFOUND ? 0 : rc;
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
	struct search s = { .q = q, .dim = dim, .qnorm = sqrt(qn), .o = o };
	s.heap = calloc(o->k, sizeof(*s.heap));
	s.x = malloc(sizeof(*s.x) * dim);
	if (!s.heap || !s.x) {
		free(s.heap);
		free(s.x);
		return ENOMEM;
	}
	pthread_rwlock_rdlock(&db->lock);
	int rc = scan(db, &s, false);   /* the directories first */
	if (!rc)
		rc = scan(db, &s, true);
	pthread_rwlock_unlock(&db->lock);
	free(s.x);
	if (!rc) {
		qsort(s.heap, s.n, sizeof(*s.heap), cmp_hits);
		for (size_t i = 0; i < s.n && !rc; i++) {
			struct t4dx_hit *h = &s.heap[i];
			h->path = path_of(s.dirs, h->e.parent, h->e.name,
					  h->e.name_len);
			if (!h->path)
				rc = ENOMEM;
		}
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
