/*
 * merge.c - the read path: point lookups across the memtable, the
 * memtable being flushed and the segments (newest first), and the merge
 * iterator that walks all of them in key order, which directory scans
 * and compaction runs share.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* ---- lookups ---------------------------------------------------------- */

static void copy_out(struct t4dx_entry *out, const struct t4dx_entry *e,
		     unsigned what)
{
	*out = *e;
	out->content = what == T4DX_SEG_ALL ? t4dx_blob_ref(e->content)
					    : NULL;
	out->vec = what != T4DX_SEG_META ? t4dx_blob_ref(e->vec) : NULL;
}

int eng_lookup(struct t4dx *db, uint64_t parent, const char *name, size_t len,
	       bool with_content, struct t4dx_entry *out)
{
	return eng_lookup_what(db, parent, name, len,
			       with_content ? T4DX_SEG_ALL : T4DX_SEG_META,
			       out);
}

int eng_lookup_what(struct t4dx *db, uint64_t parent, const char *name,
		    size_t len, unsigned what, struct t4dx_entry *out)
{
	bool with_content = what == T4DX_SEG_ALL;
	struct t4dx_mem *mems[2] = { db->mem, db->imm };
	for (int i = 0; i < 2; i++) {
		if (!mems[i])
			continue;
		const struct t4dx_entry *e = t4dx_mem_get(mems[i], parent,
							  name, len);
		if (e) {
			if (e->tombstone)
				return T4DX_ENOTFOUND;
			copy_out(out, e, what);
			return 0;
		}
	}
	for (size_t i = db->nsegs; i-- > 0;) {
		int rc = t4dx_seg_get(db->segs[i], parent, name, len, what,
				      out);
		if (rc == T4DX_ENOTFOUND)
			continue;
		if (rc) {
			/* level 2: segments cannot be read; the fallback cache
			 * answers what it has, the rest is EIO (damaged bytes
			 * are never served) */
			eng_seg_unreadable(db, db->segs[i], rc);
			if (db->lru && !t4dx_lru_get(db->lru, parent, name, len,
						     what != T4DX_SEG_META,
						     out)) {
				if (!with_content) {    /* the vector alone */
					t4dx_blob_unref(out->content);
					out->content = NULL;
				}
				return out->tombstone ? T4DX_ENOTFOUND : 0;
			}
			return EIO;
		}
		if (out->tombstone) {
			t4dx_entry_clear(out);
			return T4DX_ENOTFOUND;
		}
		/* served without the vectors of a vector part that failed
		 * its checks: marked, so that the next start quarantines it
		 * and says what it lost, rather than the loss passing
		 * unseen until a compaction */
		if (what != T4DX_SEG_META && t4dx_seg_vec_lost(db->segs[i]))
			eng_mark_damaged(db, db->segs[i], T4DX_ECORRUPT);
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
	int rc = eng_lookup_what(db, parent, name, name_len,
				 flags & T4DX_GET_CONTENT ? T4DX_SEG_ALL :
				 flags & T4DX_GET_VECTOR ? T4DX_SEG_VEC :
							   T4DX_SEG_META,
				 out);
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
	struct t4dx_entry se;           /* current segment entry, read
	                                   without its content until the
	                                   merge returns it */
	bool has;
	bool stale;                     /* on the key returned last: moves
	                                   past it at the next eng_merge_next */
};

static const struct t4dx_entry *msrc_cur(struct msrc *s)
{
	return s->mem ? s->me : &s->se;
}

/* Segments are read without content: the versions a merge passes over
 * are never decoded, so merging n versions of a large item holds one of
 * them, not n (eng_merge_next loads the one it returns). */
static int msrc_advance(struct msrc *s)
{
	if (s->mem) {
		s->me = t4dx_mem_next(s->mem, s->me);
		s->has = s->me != NULL;
		return 0;
	}
	t4dx_entry_clear(&s->se);
	int rc = t4dx_seg_iter_next(s->it, false, &s->se);
	s->has = rc == 0;
	return rc == T4DX_ENOTFOUND ? 0 : rc;
}

void eng_merge_close(struct merge *m)
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
int eng_merge_open(struct merge *m, struct t4dx_mem *mem, struct t4dx_mem *imm,
		   struct t4dx_seg **segs, size_t nsegs, uint64_t parent,
		   const char *name, size_t len, bool with_content)
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
			rc = msrc_advance(s);
		if (rc) {
			eng_merge_close(m);
			return rc;
		}
	}
	return 0;
}

/* Next entry in key order (maybe a tombstone): 0 with *out pointing to an
 * entry owned by the iterator, valid until the next call, T4DX_ENOTFOUND
 * at the end, or an error.  A segment's entry is handed out in place, not
 * copied: the sources move past a returned key only at the next call. */
int eng_merge_next(struct merge *m, const struct t4dx_entry **out)
{
	for (size_t i = 0; i < m->n; i++) {
		struct msrc *s = &m->src[i];
		if (!s->stale)
			continue;
		s->stale = false;
		int rc = msrc_advance(s);
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
	if (!best->mem && m->with_content && !best->se.tombstone) {
		/* before the ties are marked: a failed load is retried */
		int rc = t4dx_seg_iter_content(best->it, &best->se);
		if (rc)
			return rc;
	}
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
	int rc = eng_merge_open(&m, db->mem, db->imm, db->segs, db->nsegs,
				parent, "", 0, false);
	if (rc)
		return rc;
	const struct t4dx_entry *e;
	while ((rc = eng_merge_next(&m, &e)) == 0) {
		if (e->parent != parent)
			break;
		if (e->tombstone)
			continue;
		if ((rc = fn(arg, e)))
			break;
	}
	eng_merge_close(&m);
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
int eng_check_empty(struct t4dx *db, uint64_t ino)
{
	int rc = scan_locked(db, ino, stop_at_first, NULL);
	return rc == 1 ? ENOTEMPTY : rc;
}

void eng_seg_unreadable(struct t4dx *db, struct t4dx_seg *s, int rc)
{
	if (rc == T4DX_ECORRUPT || rc == T4DX_EFORMAT)
		/* (once a segment) the next start rebuilds it */
		eng_mark_damaged(db, s, rc);
	if (db->lru && !atomic_exchange(&db->seg_failed, true))
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"segment %s cannot be read: %s",
				t4dx_seg_path(s), t4dx_strerror(rc));
}
