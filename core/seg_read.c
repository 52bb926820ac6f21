/*
 * seg_read.c - reading a segment: opening it (header, footer, index,
 * Bloom filter), references, and the lookups and iterators that find
 * records through the index.  The format is described in seg.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4.h>

#include "index.h"
#include "seg_int.h"

static int parse_index(struct t4dx_seg *s, uint64_t ix_len, uint64_t ix_off)
{
	const unsigned char *p = s->ix, *end = s->ix + ix_len;
	uint64_t off = HDR_SIZE, total = 0;
	bool v1 = s->version == SEG_VERSION_V1;
	bool v4 = s->version >= SEG_VERSION;
	long fixed = (v1 ? IX_FIXED_V1 : v4 ? IX_FIXED : IX_FIXED_V3) -
		     20;        /* before the keys */
	for (size_t i = 0; i < s->nblk; i++) {
		struct blkinfo *b = &s->blk[i];
		if (end - p < fixed)
			return T4DX_ECORRUPT;
		b->off = t4dx_get_u64(p);
		b->clen = t4dx_get_u32(p + 8);
		b->rlen = t4dx_get_u32(p + 12);
		b->crc = t4dx_get_u32(p + 16);
		b->nrec = t4dx_get_u32(p + 20);
		if (!v1) {
			b->cclen = t4dx_get_u32(p + 24);
			b->crlen = t4dx_get_u32(p + 28);
			b->ccrc = t4dx_get_u32(p + 32);
		}
		if (v4) {
			b->vclen = t4dx_get_u32(p + 36);
			b->vrlen = t4dx_get_u32(p + 40);
			b->vcrc = t4dx_get_u32(p + 44);
		}
		p += fixed;
		if (seg_get_key(&p, end, &b->first_parent, &b->first,
				&b->first_len) ||
		    seg_get_key(&p, end, &b->last_parent, &b->last,
				&b->last_len))
			return T4DX_ECORRUPT;
		if (b->off != off || b->clen < 1 || b->nrec < 1 ||
		    b->rlen > LZ4_MAX_INPUT_SIZE ||
		    (uint64_t)b->nrec * (seg_rec_fixed(s) + 1) > b->rlen ||
		    b->clen > (uint32_t)LZ4_compressBound((int)b->rlen))
			return T4DX_ECORRUPT;
		if (!b->cclen != !b->crlen || b->crlen > LZ4_MAX_INPUT_SIZE ||
		    (b->crlen && b->cclen > seg_cpart_bound(
				s->version >= 3 && b->crlen > CHUNK_RAW,
				b->crlen)) ||
		    /* a chunk is at least its length and one byte */
		    (s->version >= 3 && b->crlen > CHUNK_RAW &&
		     b->cclen < 5 * ((b->crlen + CHUNK_RAW - 1) / CHUNK_RAW)) ||
		    (!b->cclen && b->ccrc))
			return T4DX_ECORRUPT;
		if (!b->vclen != !b->vrlen || b->vrlen % 4 ||
		    b->vrlen > LZ4_MAX_INPUT_SIZE ||
		    b->vclen > (uint32_t)LZ4_compressBound((int)b->vrlen) ||
		    (!b->vclen && b->vcrc))
			return T4DX_ECORRUPT;
		if (t4dx_key_cmp(b->first_parent, b->first, b->first_len,
				 b->last_parent, b->last, b->last_len) > 0)
			return T4DX_ECORRUPT;
		if (i && t4dx_key_cmp(b[-1].last_parent, b[-1].last,
				      b[-1].last_len, b->first_parent,
				      b->first, b->first_len) >= 0)
			return T4DX_ECORRUPT;
		off += (uint64_t)b->clen + b->cclen + b->vclen;
		total += b->nrec;
	}
	if (p != end || off != ix_off || total != s->count)
		return T4DX_ECORRUPT;
	return 0;
}

/* Read and check footer, index and Bloom filter of an open s->fd. */
static int load_meta(struct t4dx_seg *s)
{
	struct stat st;
	if (fstat(s->fd, &st))
		return errno;
	s->file_bytes = (uint64_t)st.st_size;

	unsigned char h[HDR_SIZE] = { 0 }, f[FTR_SIZE] = { 0 };
	bool hmagic = false, fmagic = false;
	int rc;
	if (s->file_bytes >= HDR_SIZE) {
		if ((rc = t4dx_io_pread_all(s->fd, h, HDR_SIZE, 0)))
			return rc;
		hmagic = !memcmp(h, SEG_MAGIC, 8);
	}
	if (s->file_bytes >= HDR_SIZE + FTR_SIZE) {
		if ((rc = t4dx_io_pread_all(s->fd, f, FTR_SIZE,
					    (off_t)(s->file_bytes - FTR_SIZE))))
			return rc;
		fmagic = !memcmp(f + 80, SEG_MAGIC, 8);
	}
	if (!hmagic && !fmagic)
		return T4DX_EFORMAT;
	if (!hmagic || !fmagic ||
	    t4dx_get_u32(h + 8) != t4dx_get_u32(f + 72))
		return T4DX_ECORRUPT;
	s->version = t4dx_get_u32(f + 72);
	if (s->version != SEG_VERSION && s->version != SEG_VERSION_V3 &&
	    s->version != SEG_VERSION_V2 && s->version != SEG_VERSION_V1)
		return T4DX_EFORMAT;
	if (seg_crc(f, 76) != t4dx_get_u32(f + 76))
		return T4DX_ECORRUPT;

	uint64_t ix_off = t4dx_get_u64(f), ix_len = t4dx_get_u64(f + 8);
	uint64_t bl_off = t4dx_get_u64(f + 16), bl_len = t4dx_get_u64(f + 24);
	s->count = t4dx_get_u64(f + 32);
	s->min_lsn = t4dx_get_u64(f + 40);
	s->max_lsn = t4dx_get_u64(f + 48);
	s->nblk = t4dx_get_u32(f + 56);
	s->bloom_k = t4dx_get_u32(f + 68);
	/* The footer CRC passed, so these come from a writer; still, every
	 * size is bounded by the file before anything is allocated. */
	uint64_t ftr_off = s->file_bytes - FTR_SIZE;
	if (ix_off < HDR_SIZE + s->nblk || ix_off > ftr_off ||
	    ix_len > ftr_off - ix_off || bl_off != ix_off + ix_len ||
	    bl_len != ftr_off - bl_off || bl_len < 8 || s->nblk < 1 ||
	    s->count < s->nblk || s->bloom_k < 1 || s->bloom_k > 30)
		return T4DX_ECORRUPT;

	s->ix = malloc(ix_len ? ix_len : 1);
	s->blk = calloc(s->nblk, sizeof(*s->blk));
	s->bloom = malloc(bl_len);
	if (!s->ix || !s->blk || !s->bloom)
		return ENOMEM;
	if ((rc = t4dx_io_pread_all(s->fd, s->ix, ix_len, (off_t)ix_off)) ||
	    (rc = t4dx_io_pread_all(s->fd, s->bloom, bl_len, (off_t)bl_off)))
		return rc;
	if (seg_crc(s->ix, ix_len) != t4dx_get_u32(f + 60) ||
	    seg_crc(s->bloom, bl_len) != t4dx_get_u32(f + 64))
		return T4DX_ECORRUPT;
	s->bloom_bits = bl_len * 8;
	return parse_index(s, ix_len, ix_off);
}

static void seg_free(struct t4dx_seg *s)
{
	if (s->fd >= 0)
		t4dx_io.close(s->fd);
	seg_block_unref(s->cache);
	seg_cpart_unref(s->ccache);
	if (s->shared)
		for (size_t i = 0; i < s->nblk; i++)
			t4dx_blob_slot_unref(s->shared[i]);
	free(s->shared);
	t4dx_index_free(s->index);
	free(s->first_rec);
	free(s->dirs);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->index_cv);
	free(s->ix);
	free(s->blk);
	free(s->bloom);
	free(s->path);
	free(s);
}

int t4dx_seg_open(const char *path, uint64_t id, struct t4dx_seg **out)
{
	struct t4dx_seg *s = calloc(1, sizeof(*s));
	if (!s)
		return ENOMEM;
	atomic_init(&s->refs, 1);
	s->id = id;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->index_cv, NULL);
	s->path = strdup(path);
	s->fd = t4dx_io.open(path, O_RDONLY, 0);
	int rc = 0;
	if (s->fd < 0)
		rc = errno ? errno : EIO;
	else if (!s->path)
		rc = ENOMEM;
	else
		rc = load_meta(s);
	if (!rc && !(s->first_rec = malloc((s->nblk + 1) *
					   sizeof(*s->first_rec))))
		rc = ENOMEM;
	if (!rc) {
		s->first_rec[0] = 0;
		for (size_t i = 0; i < s->nblk; i++)
			s->first_rec[i + 1] = s->first_rec[i] + s->blk[i].nrec;
	}
	if (rc) {
		seg_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

struct t4dx_seg *t4dx_seg_ref(struct t4dx_seg *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void t4dx_seg_unref(struct t4dx_seg *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1,
					   memory_order_acq_rel) == 1)
		seg_free(s);
}

uint64_t t4dx_seg_id(const struct t4dx_seg *s) { return s->id; }

uint64_t t4dx_seg_count(const struct t4dx_seg *s) { return s->count; }

uint64_t t4dx_seg_file_bytes(const struct t4dx_seg *s) { return s->file_bytes; }

uint64_t t4dx_seg_min_lsn(const struct t4dx_seg *s) { return s->min_lsn; }

uint64_t t4dx_seg_max_lsn(const struct t4dx_seg *s) { return s->max_lsn; }

const char *t4dx_seg_path(const struct t4dx_seg *s) { return s->path; }

bool t4dx_seg_has_vectors(const struct t4dx_seg *s)
{
	return s->version >= SEG_VERSION;
}

/* First record in b with key >= (parent, name). */
static uint32_t block_lower_bound(const struct block *b, uint64_t parent,
				  const char *name, size_t len)
{
	uint32_t lo = 0, hi = b->nrec;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (seg_key_cmp_rec(b->raw + b->roff[mid], parent, name,
				    len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* First block whose last key is >= (parent, name); nblk if none. */
static size_t index_lower_bound(const struct t4dx_seg *s, uint64_t parent,
				const char *name, size_t len)
{
	size_t lo = 0, hi = s->nblk;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct blkinfo *b = &s->blk[mid];
		if (t4dx_key_cmp(b->last_parent, b->last, b->last_len, parent,
				 name, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- reading --------------------------------------------------------- */

bool t4dx_seg_may_have(const struct t4dx_seg *s, uint64_t parent,
		       const char *name, size_t name_len)
{
	if (!seg_bloom_may_have(s, t4dx_key_hash(parent, name, name_len)))
		return false;
	size_t i = index_lower_bound(s, parent, name, name_len);
	return i < s->nblk &&
	       t4dx_key_cmp(s->blk[i].first_parent, s->blk[i].first,
			    s->blk[i].first_len, parent, name, name_len) <= 0;
}

int t4dx_seg_get(struct t4dx_seg *s, uint64_t parent, const char *name,
		 size_t name_len, unsigned what, struct t4dx_entry *out)
{
	if (!seg_bloom_may_have(s, t4dx_key_hash(parent, name, name_len)))
		return T4DX_ENOTFOUND;
	size_t i = index_lower_bound(s, parent, name, name_len);
	if (i == s->nblk ||
	    t4dx_key_cmp(s->blk[i].first_parent, s->blk[i].first,
			 s->blk[i].first_len, parent, name, name_len) > 0)
		return T4DX_ENOTFOUND;
	struct block *b;
	struct cpart *c = NULL;
	int rc = seg_parts_get(s, i, &b, what == T4DX_SEG_ALL ? &c : NULL);
	if (rc)
		return rc;
	uint32_t r = block_lower_bound(b, parent, name, name_len);
	bool found = r < b->nrec &&
		     !seg_key_cmp_rec(b->raw + b->roff[r], parent, name,
				      name_len);
	if (found && what == T4DX_SEG_VEC && (rc = seg_vpart_get(s, i, &c))) {
		seg_block_unref(b);
		return rc;
	}
	if (found)
		rc = seg_rec_decode(s, b, c, r, what, out);
	else
		rc = T4DX_ENOTFOUND;
	seg_block_unref(b);
	seg_cpart_unref(c);
	return rc;
}

int t4dx_seg_get_nth(struct t4dx_seg *s, uint64_t ord, unsigned what,
		     struct t4dx_entry *out)
{
	if (ord >= s->first_rec[s->nblk])
		return T4DX_ENOTFOUND;
	/* the last block whose first record is at or before ord */
	size_t lo = 0, hi = s->nblk;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->first_rec[mid] <= ord)
			lo = mid;
		else
			hi = mid;
	}
	struct block *b;
	struct cpart *c = NULL;
	int rc = seg_parts_get(s, lo, &b, what == T4DX_SEG_ALL ? &c : NULL);
	if (rc)
		return rc;
	if (what == T4DX_SEG_VEC && (rc = seg_vpart_get(s, lo, &c))) {
		seg_block_unref(b);
		return rc;
	}
	uint32_t r = (uint32_t)(ord - s->first_rec[lo]);
	rc = r < b->nrec ? seg_rec_decode(s, b, c, r, what, out)
			 : T4DX_ECORRUPT;
	seg_block_unref(b);
	seg_cpart_unref(c);
	return rc;
}

int t4dx_seg_dirs(struct t4dx_seg *s, const struct t4dx_seg_dir **dirs,
		  size_t *n)
{
	pthread_mutex_lock(&s->mu);
	bool have = s->dirs_read;
	*dirs = s->dirs;
	*n = s->ndirs;
	pthread_mutex_unlock(&s->mu);
	if (have)
		return 0;
	/* read without mu (reading blocks takes it); a concurrent first
	 * call reads the same, and one copy is kept */
	struct t4dx_seg_dir *v = NULL;
	size_t nv = 0, cap = 0;
	struct t4dx_seg_iter *it;
	struct t4dx_entry e;
	int rc = t4dx_seg_iter_open(s, 0, "", 0, &it);
	if (rc)
		return rc;
	while ((rc = t4dx_seg_iter_next(it, false, &e)) == 0) {
		if (e.tombstone || !S_ISDIR(e.mode))
			continue;
		if (nv == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct t4dx_seg_dir *nd = realloc(v, nc * sizeof(*v));
			if (!nd) {
				rc = ENOMEM;
				break;
			}
			v = nd;
			cap = nc;
		}
		struct t4dx_seg_dir *d = &v[nv++];
		d->parent = e.parent;
		d->ino = e.ino;
		d->name_len = e.name_len;
		memcpy(d->name, e.name, e.name_len + 1);
	}
	t4dx_seg_iter_close(it);
	if (rc != T4DX_ENOTFOUND) {
		free(v);
		return rc;
	}
	pthread_mutex_lock(&s->mu);
	if (!s->dirs_read) {
		s->dirs = v;
		s->ndirs = nv;
		s->dirs_read = true;
		v = NULL;
	}
	*dirs = s->dirs;
	*n = s->ndirs;
	pthread_mutex_unlock(&s->mu);
	free(v);
	return 0;
}

int t4dx_seg_index_get(struct t4dx_seg *s, struct t4dx_index **ix)
{
	pthread_mutex_lock(&s->mu);
	int state = s->index_state;
	*ix = s->index;
	pthread_mutex_unlock(&s->mu);
	return state;
}

void t4dx_seg_index_hold(struct t4dx_seg *s, bool held)
{
	pthread_mutex_lock(&s->mu);
	s->index_held = held;
	pthread_mutex_unlock(&s->mu);
}

bool t4dx_seg_index_held(struct t4dx_seg *s)
{
	pthread_mutex_lock(&s->mu);
	bool held = s->index_held;
	pthread_mutex_unlock(&s->mu);
	return held;
}

void t4dx_seg_index_set(struct t4dx_seg *s, struct t4dx_index *ix, int state)
{
	pthread_mutex_lock(&s->mu);
	if (s->index_state == T4DX_SEG_IX_LOADED) {
		/* searches may be walking it: it stays */
		pthread_mutex_unlock(&s->mu);
		if (ix != s->index)
			t4dx_index_free(ix);
		return;
	}
	if (s->index_state == T4DX_SEG_IX_LOADING)
		pthread_cond_broadcast(&s->index_cv);
	s->index = ix;
	s->index_state = state;
	pthread_mutex_unlock(&s->mu);
}

bool t4dx_seg_index_claim(struct t4dx_seg *s)
{
	pthread_mutex_lock(&s->mu);
	bool claimed = s->index_state == T4DX_SEG_IX_UNKNOWN && !s->index_held;
	if (claimed)
		s->index_state = T4DX_SEG_IX_LOADING;
	pthread_mutex_unlock(&s->mu);
	return claimed;
}

int t4dx_seg_index_wait(struct t4dx_seg *s, struct t4dx_index **ix)
{
	pthread_mutex_lock(&s->mu);
	while (s->index_state == T4DX_SEG_IX_LOADING)
		pthread_cond_wait(&s->index_cv, &s->mu);
	int state = s->index_state;
	*ix = s->index;
	pthread_mutex_unlock(&s->mu);
	return state;
}

int t4dx_seg_iter_open(struct t4dx_seg *s, uint64_t parent, const char *name,
		       size_t name_len, struct t4dx_seg_iter **out)
{
	if (name_len > T4DX_NAME_MAX)
		return EINVAL;
	struct t4dx_seg_iter *it = calloc(1, sizeof(*it));
	if (!it)
		return ENOMEM;
	it->s = t4dx_seg_ref(s);
	it->parent = parent;
	it->name_len = (uint16_t)name_len;
	if (name_len)
		memcpy(it->name, name, name_len);
	it->bi = index_lower_bound(s, parent, it->name, name_len);
	*out = it;
	return 0;
}

int t4dx_seg_iter_next(struct t4dx_seg_iter *it, unsigned what,
		       struct t4dx_entry *out)
{
	struct t4dx_seg *s = it->s;
	bool with_content = what == T4DX_SEG_ALL;
	int rc;
	while (!it->b || it->ri == it->b->nrec) {
		if (it->b) {
			seg_block_unref(it->b);
			seg_cpart_unref(it->c);
			seg_cpart_unref(it->v);
			it->b = NULL;
			it->c = NULL;
			it->v = NULL;
			it->bi++;
		}
		if (it->bi >= s->nblk)
			return T4DX_ENOTFOUND;
		rc = seg_parts_get(s, it->bi, &it->b,
				   with_content ? &it->c : NULL);
		if (rc)
			return rc;      /* the next call retries this block */
		it->ri = it->started ? 0 :
			 block_lower_bound(it->b, it->parent, it->name,
					   it->name_len);
		it->started = true;
	}
	/* the content part of a block first read without content */
	if (with_content && !it->c && seg_has_cpart(s, it->bi) &&
	    (rc = seg_parts_get(s, it->bi, NULL, &it->c)))
		return rc;              /* the next call retries it */
	/* the vector part alone, unless the whole payload is in hand */
	if (what == T4DX_SEG_VEC && !it->c && !it->v &&
	    (rc = seg_vpart_get(s, it->bi, &it->v)))
		return rc;              /* the next call retries it */
	rc = seg_rec_decode(s, it->b, what == T4DX_SEG_VEC && !it->c ? it->v
								     : it->c,
			    it->ri, what, out);
	if (!rc)
		it->ri++;
	return rc;
}

int t4dx_seg_iter_content(struct t4dx_seg_iter *it, struct t4dx_entry *out)
{
	struct t4dx_seg *s = it->s;
	if (!it->b || it->ri == 0)
		return EINVAL;
	int rc;
	if (!it->c && seg_has_cpart(s, it->bi) &&
	    (rc = seg_parts_get(s, it->bi, NULL, &it->c)))
		return rc;
	struct t4dx_entry e;
	if ((rc = seg_rec_decode(s, it->b, it->c, it->ri - 1, true, &e)))
		return rc;
	t4dx_entry_clear(out);
	out->content = e.content;
	out->vec = e.vec;
	out->vec_src = e.vec_src;       /* none if the vector part was lost */
	return 0;
}

void t4dx_seg_iter_close(struct t4dx_seg_iter *it)
{
	if (!it)
		return;
	seg_block_unref(it->b);
	seg_cpart_unref(it->c);
	seg_cpart_unref(it->v);
	t4dx_seg_unref(it->s);
	free(it);
}
