/*
 * seg_block.c - one block of a segment, read back: its parts checked
 * against their CRCs and unpacked, the one-block cache, records decoded;
 * and verification, block by block.  The format is described in seg.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <zlib.h>

#include "seg_int.h"
#include "vec.h"

/* ---- blocks ---------------------------------------------------------- */

int seg_key_cmp_rec(const unsigned char *r, uint64_t parent, const char *name,
		    size_t len)
{
	return t4dx_key_cmp(t4dx_get_u64(r), (const char *)r + 10,
			    t4dx_get_u16(r + 8), parent, name, len);
}

/* Walk the raw records of b, recording their offsets and those of their
 * contents: every check a reader later relies on happens here, once per
 * read. */
static int block_check(const struct t4dx_seg *s, struct block *b,
		       const struct blkinfo *bi)
{
	const unsigned char *p = b->raw, *end = b->raw + bi->rlen;
	const unsigned char *prev = NULL;
	bool v1 = s->version == SEG_VERSION_V1;
	size_t fixed = seg_rec_fixed(s);
	uint64_t csum = 0;      /* versions 2 to 4: content bytes so far */
	uint64_t vsum = 0;      /* version 4: vector bytes so far */
	uint32_t i = 0;
	while (p < end) {
		uint64_t parent;
		const char *name;
		uint16_t n;
		const unsigned char *r = p;
		if (i == bi->nrec || seg_get_key(&p, end, &parent, &name, &n) ||
		    memchr(name, '/', n) || memchr(name, 0, n) ||
		    (size_t)(end - p) < fixed - 10)
			return T4DX_ECORRUPT;
		uint8_t flags = p[0];
		uint64_t size = t4dx_get_u64(p + 102);
		if (s->version >= SEG_VERSION) {
			uint8_t src = p[110];
			uint32_t vlen = 4 * (uint32_t)t4dx_get_u16(p + 111);
			if (src > T4DX_VEC_TRIED ||
			    t4dx_vec_src_has(src) != !!vlen ||
			    vlen > 4 * T4DX_VEC_DIM_MAX ||
			    vlen > bi->vrlen - vsum)
				return T4DX_ECORRUPT;
			b->voff[i] = (uint32_t)vsum;
			vsum += vlen;
		}
		p += fixed - 10;
		if ((flags & ~(F_TOMBSTONE | F_BLOB)) ||
		    (size && !(flags & F_BLOB)))
			return T4DX_ECORRUPT;
		if (v1) {
			if (size > (uint64_t)(end - p))
				return T4DX_ECORRUPT;
			b->coff[i] = (uint32_t)(p - b->raw);
			p += size;
		} else {
			if (size > bi->crlen - csum)
				return T4DX_ECORRUPT;
			b->coff[i] = (uint32_t)csum;
			csum += size;
		}
		if (prev && seg_key_cmp_rec(prev, parent, name, n) >= 0)
			return T4DX_ECORRUPT;
		if (i == 0 && t4dx_key_cmp(parent, name, n, bi->first_parent,
					   bi->first, bi->first_len))
			return T4DX_ECORRUPT;
		b->roff[i++] = (uint32_t)(r - b->raw);
		prev = r;
	}
	if (i != bi->nrec || csum != bi->crlen || vsum != bi->vrlen ||
	    seg_key_cmp_rec(prev, bi->last_parent, bi->last, bi->last_len))
		return T4DX_ECORRUPT;
	return 0;
}

/* Check the CRC of z[0..zlen) and decompress it to exactly rlen bytes. */
static int part_unpack(const unsigned char *z, uint32_t zlen, uint32_t zcrc,
		       unsigned char *raw, uint32_t rlen)
{
	if (seg_crc(z, zlen) != zcrc ||
	    LZ4_decompress_safe((const char *)z, (char *)raw, (int)zlen,
				(int)rlen) != (int)rlen)
		return T4DX_ECORRUPT;
	return 0;
}

/* Read a chunked content part a chunk at a time, check each chunk's
 * length and decompression and the CRC of the whole part, and
 * decompress it to raw (NULL: only check it, in bounded memory).  A
 * damaged chunk is decompressed safely and the part refused. */
static int chunks_unpack(const struct t4dx_seg *s, const struct blkinfo *bi,
			 unsigned char *raw)
{
	size_t zcap = 4 + (size_t)LZ4_compressBound((int)CHUNK_RAW);
	unsigned char *z = malloc(zcap + (raw ? 0 : CHUNK_RAW));
	if (!z)
		return ENOMEM;
	uint64_t off = bi->off + bi->clen, end = off + bi->cclen;
	uLong c = crc32(0L, Z_NULL, 0);
	int rc = 0;
	for (uint32_t at = 0; at < bi->crlen && !rc;) {
		uint32_t n = bi->crlen - at < CHUNK_RAW ? bi->crlen - at
							: CHUNK_RAW;
		if (end - off < 4) {
			rc = T4DX_ECORRUPT;
			break;
		}
		if ((rc = t4dx_io_pread_all(s->fd, z, 4, (off_t)off)))
			break;
		uint32_t k = t4dx_get_u32(z);
		if (k < 1 || k > (uint32_t)LZ4_compressBound((int)n) ||
		    end - off - 4 < k) {
			rc = T4DX_ECORRUPT;
			break;
		}
		if ((rc = t4dx_io_pread_all(s->fd, z + 4, k,
					    (off_t)(off + 4))))
			break;
		c = crc32(c, z, (uInt)k + 4);
		unsigned char *dst = raw ? raw + at : z + zcap;
		if (LZ4_decompress_safe((const char *)z + 4, (char *)dst,
					(int)k, (int)n) != (int)n)
			rc = T4DX_ECORRUPT;
		off += 4 + (uint64_t)k;
		at += n;
	}
	if (!rc && (off != end || (uint32_t)c != bi->ccrc))
		rc = T4DX_ECORRUPT;
	free(z);
	return rc;
}

/* Read the parts of block i that are asked for (bout: the meta part,
 * cout: the payload, content and vector parts) from disk with one pread,
 * check and decompress them (a chunked content part a chunk at a time,
 * and then the vector part with a pread of its own).  The payload is
 * only asked for in version 2 to 4 blocks that have one; craw, when not
 * NULL, is its content part already decoded (the caller's reference
 * passes to *cout, or is dropped on error), and only the vector part is
 * read.  A vector part that fails its checks is an error when strict
 * (verify); otherwise the payload comes without it (vraw NULL) and the
 * segment says so (vec_lost): vectors can be computed again, content
 * cannot. */
static int parts_read(struct t4dx_seg *s, size_t i, struct block **bout,
		      struct cpart **cout, struct t4dx_blob *craw,
		      bool strict)
{
	const struct blkinfo *bi = &s->blk[i];
	bool chunks = cout && !craw && seg_chunked(s, bi);
	uint32_t mlen = bout ? bi->clen : 0;
	uint32_t clen = cout && !chunks && !craw ? bi->cclen : 0;
	uint32_t vlen = cout ? bi->vclen : 0;
	/* the vector part follows the content part: in the one pread unless
	 * the content part is read in chunks or not at all */
	bool vapart = chunks || craw;
	size_t zlen = (size_t)mlen + clen + (vapart ? 0 : vlen);
	size_t zcap = zlen > vlen ? zlen : vlen;
	unsigned char *z = zcap ? malloc(zcap) : NULL;
	struct block *b = NULL;
	struct cpart *c = NULL;
	int rc = 0;
	if (bout) {
		b = malloc(sizeof(*b) + 3 * bi->nrec * sizeof(uint32_t) +
			   bi->rlen);
		if (b) {
			atomic_init(&b->refs, 1);
			b->idx = i;
			b->nrec = bi->nrec;
			b->roff = (uint32_t *)(b + 1);
			b->coff = b->roff + bi->nrec;
			b->voff = b->coff + bi->nrec;
			b->raw = (unsigned char *)(b->voff + bi->nrec);
		}
	}
	if (cout) {
		c = malloc(sizeof(*c));
		if (c) {
			atomic_init(&c->refs, 1);
			c->idx = i;
			c->raw = craw ? craw : t4dx_blob_new(bi->crlen);
			craw = NULL;
			c->vraw = bi->vrlen ? t4dx_blob_new(bi->vrlen) : NULL;
		}
	}
	if ((zcap && !z) || (bout && !b) ||
	    (cout && (!c || !c->raw || (bi->vrlen && !c->vraw)))) {
		rc = ENOMEM;
		goto out;
	}
	if (zlen &&
	    (rc = t4dx_io_pread_all(s->fd, z, zlen,
				    (off_t)(bi->off + (bout ? 0 : bi->clen)))))
		goto out;
	if (b && !(rc = part_unpack(z, bi->clen, bi->crc, b->raw, bi->rlen)))
		rc = block_check(s, b, bi);
	if (!rc && c && chunks)
		rc = chunks_unpack(s, bi, c->raw->data);
	else if (!rc && c && clen)
		rc = part_unpack(z + mlen, bi->cclen, bi->ccrc, c->raw->data,
				 bi->crlen);
	if (!rc && vlen) {
		const unsigned char *vz = z + mlen + clen;
		if (vapart) {
			vz = z;
			rc = t4dx_io_pread_all(s->fd, z, vlen,
					       (off_t)(bi->off + bi->clen +
						       bi->cclen));
		}
		if (!rc)
			rc = part_unpack(vz, vlen, bi->vcrc, c->vraw->data,
					 bi->vrlen);
		if (rc == T4DX_ECORRUPT && !strict) {
			/* the meta and content parts passed: serve them,
			 * without vectors (seg_rec_decode) */
			t4dx_blob_unref(c->vraw);
			c->vraw = NULL;
			atomic_store(&s->vec_lost, true);
			rc = 0;
		}
	}
out:
	free(z);
	t4dx_blob_unref(craw);  /* not taken over by a part */
	if (rc) {
		free(b);
		seg_cpart_free(c);
		b = NULL;
		c = NULL;
	}
	if (bout)
		*bout = b;
	if (cout)
		*cout = c;
	return rc;
}

/* Whether reading block i with content needs its payload. */
bool seg_has_cpart(const struct t4dx_seg *s, size_t i)
{
	return s->blk[i].crlen > 0 || s->blk[i].vrlen > 0;
}

/* The decoded content part of block i that a reader still holds, with a
 * new reference, or NULL. */
static struct t4dx_blob *share_get(struct t4dx_seg *s, size_t i)
{
	struct t4dx_blob *b = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->shared && s->shared[i])
		b = t4dx_blob_slot_get(s->shared[i]);
	pthread_mutex_unlock(&s->mu);
	return b;
}

/* Offer raw, the content part of block i just decoded, to later readers
 * for as long as someone holds it.  Out of memory, it is not shared. */
static void share_set(struct t4dx_seg *s, size_t i, struct t4dx_blob *raw)
{
	pthread_mutex_lock(&s->mu);
	if (!s->shared)
		s->shared = calloc(s->nblk, sizeof(*s->shared));
	if (s->shared && !s->shared[i])
		s->shared[i] = t4dx_blob_slot_new();
	if (s->shared && s->shared[i])
		t4dx_blob_slot_set(s->shared[i], raw);
	pthread_mutex_unlock(&s->mu);
}

/* The parts of block i asked for (bout, cout non-NULL), through the
 * one-block cache, reading what is missing with one pread.  The caller
 * owns a reference to each part returned; *cout is NULL when the block has
 * no content part. */
int seg_parts_get(struct t4dx_seg *s, size_t i, struct block **bout,
		  struct cpart **cout)
{
	struct block *b = NULL;
	struct cpart *c = NULL;
	bool want_c = cout && seg_has_cpart(s, i);
	pthread_mutex_lock(&s->mu);
	if (bout && s->cache && s->cache->idx == i) {
		b = s->cache;
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	}
	if (want_c && s->ccache && s->ccache->idx == i) {
		c = s->ccache;
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&s->mu);

	bool read_b = bout && !b, read_c = want_c && !c;
	bool keep_b = read_b && s->blk[i].rlen <= CACHE_MAX_RAW;
	bool keep_c = read_c && (uint64_t)s->blk[i].crlen +
				s->blk[i].vrlen <= CACHE_MAX_RAW;
	/* a large content part another reader holds decoded */
	struct t4dx_blob *craw = read_c && !keep_c ? share_get(s, i) : NULL;
	if (read_b || read_c) {
		int rc = parts_read(s, i, read_b ? &b : NULL,
				    read_c ? &c : NULL, craw, false);
		if (!rc && read_c && !craw && !keep_c)
			share_set(s, i, c->raw);
		if (rc) {
			seg_block_unref(read_b ? NULL : b);
			seg_cpart_unref(read_c ? NULL : c);
			return rc;
		}
		struct block *oldb = NULL;
		struct cpart *oldc = NULL;
		if (keep_b)
			atomic_fetch_add_explicit(&b->refs, 1,
						  memory_order_relaxed);
		if (keep_c)
			atomic_fetch_add_explicit(&c->refs, 1,
						  memory_order_relaxed);
		pthread_mutex_lock(&s->mu);
		if (keep_b) {
			oldb = s->cache;
			s->cache = b;
		}
		if (keep_c) {
			oldc = s->ccache;
			s->ccache = c;
		}
		pthread_mutex_unlock(&s->mu);
		seg_block_unref(oldb);
		seg_cpart_unref(oldc);
	}
	if (bout)
		*bout = b;
	if (cout)
		*cout = c;
	return 0;
}

int seg_vpart_get(struct t4dx_seg *s, size_t i, struct cpart **vout)
{
	struct cpart *c = NULL;
	*vout = NULL;
	if (!s->blk[i].vrlen)
		return 0;
	pthread_mutex_lock(&s->mu);
	if (s->ccache && s->ccache->idx == i) {
		c = s->ccache;
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&s->mu);
	if (c) {
		*vout = c;
		return 0;
	}
	/* as a payload whose content part is decoded already, and empty:
	 * parts_read then reads the vector part alone */
	struct t4dx_blob *none = t4dx_blob_new(0);
	if (!none)
		return ENOMEM;
	return parts_read(s, i, NULL, vout, none, false);
}

/* Where the content of record r of b starts, for a read with content:
 * version 1 inline in b, later versions in c (NULL when the block has
 * none, and then every size is 0). */
const unsigned char *seg_rec_content(const struct t4dx_seg *s,
				     const struct block *b,
				     const struct cpart *c, uint32_t r)
{
	static const unsigned char nothing[1];
	if (s->version == SEG_VERSION_V1)
		return b->raw + b->coff[r];
	return c ? c->raw->data + b->coff[r] : nothing;
}

/* Fill out from checked record ri of b; what (T4DX_SEG_*): its content
 * and vector too, or its vector alone, from c.  A record whose content is
 * all of c's gets a reference to it instead of a copy. */
int seg_rec_decode(const struct t4dx_seg *s, const struct block *b,
		   const struct cpart *c, uint32_t ri, unsigned what,
		   struct t4dx_entry *out)
{
	bool with_content = what == T4DX_SEG_ALL;
	bool with_vec = what == T4DX_SEG_ALL || what == T4DX_SEG_VEC;
	const unsigned char *r = b->raw + b->roff[ri];
	uint16_t n = t4dx_get_u16(r + 8);
	const unsigned char *q = r + 10 + n;
	struct t4dx_blob *blob = NULL, *vec = NULL;
	uint64_t size = t4dx_get_u64(q + 102);
	bool v4 = s->version >= SEG_VERSION;
	uint8_t vsrc = v4 ? q[110] : T4DX_VEC_NONE;
	if (with_content && (q[0] & F_BLOB)) {
		const unsigned char *content = seg_rec_content(s, b, c, ri);
		if (c && content == c->raw->data && size == c->raw->len)
			blob = t4dx_blob_ref(c->raw);
		else
			blob = t4dx_blob_from(content, (size_t)size);
		if (!blob)
			return ENOMEM;
	}
	if (with_vec && t4dx_vec_src_has(vsrc) && !(c && c->vraw)) {
		/* the vector part failed its checks (parts_read): the
		 * entry goes without its vector */
		vsrc = T4DX_VEC_NONE;
	} else if (with_vec && t4dx_vec_src_has(vsrc)) {
		/* block_check saw the lengths add up to the vector part's */
		size_t vlen = 4 * (size_t)t4dx_get_u16(q + 111);
		const unsigned char *v = c->vraw->data + b->voff[ri];
		int rc = t4dx_vec_check(v, vlen);
		if (!rc && !(vec = t4dx_blob_from(v, vlen)))
			rc = ENOMEM;
		if (rc) {
			t4dx_blob_unref(blob);
			return rc == EINVAL ? T4DX_ECORRUPT : rc;
		}
	}
	/* every field is set below: no memset of the whole entry, which is
	 * mostly the name array, once per record of a listing */
	out->parent = t4dx_get_u64(r);
	out->name_len = n;
	memcpy(out->name, r + 10, n);
	out->name[n] = 0;
	out->tombstone = q[0] & F_TOMBSTONE;
	out->provisional = false;
	out->lsn = t4dx_get_u64(q + 1);
	out->ino = t4dx_get_u64(q + 9);
	out->mode = t4dx_get_u32(q + 17);
	out->uid = t4dx_get_u32(q + 21);
	out->gid = t4dx_get_u32(q + 25);
	out->atime_ns = (int64_t)t4dx_get_u64(q + 29);
	out->mtime_ns = (int64_t)t4dx_get_u64(q + 37);
	out->ctime_ns = (int64_t)t4dx_get_u64(q + 45);
	memcpy(out->id, q + 53, 16);
	out->kappa = seg_getf64(q + 69);
	out->importance = seg_getf64(q + 77);
	out->type = q[85];
	out->event_time_ns = (int64_t)t4dx_get_u64(q + 86);
	out->access_count = t4dx_get_u64(q + 94);
	out->size = size;
	out->content = blob;
	out->vec_src = vsrc;
	out->vec = vec;
	return 0;
}

/* Check the vector part of a block whose content part is chunked. */
static int vpart_check(const struct t4dx_seg *s, const struct blkinfo *bi)
{
	unsigned char *z = malloc((size_t)bi->vclen + bi->vrlen);
	if (!z)
		return ENOMEM;
	int rc = t4dx_io_pread_all(s->fd, z, bi->vclen,
				   (off_t)(bi->off + bi->clen + bi->cclen));
	if (!rc)
		rc = part_unpack(z, bi->vclen, bi->vcrc, z + bi->vclen,
				 bi->vrlen);
	free(z);
	return rc;
}

int t4dx_seg_verify_some(struct t4dx_seg *s, size_t *next,
			 uint64_t max_bytes)
{
	/* Straight from the disk, both parts of each block: a cached part
	 * says nothing about the bytes there now. */
	uint64_t done = 0;
	while (*next < s->nblk && (done == 0 || done < max_bytes)) {
		size_t i = (*next)++;
		struct block *b;
		struct cpart *c = NULL;
		bool chunks = seg_chunked(s, &s->blk[i]);
		int rc = parts_read(s, i, &b, seg_has_cpart(s, i) && !chunks ?
					      &c : NULL, NULL, true);
		/* a long content part is checked a chunk at a time, and
		 * then the vector part after it */
		if (!rc && chunks)
			rc = chunks_unpack(s, &s->blk[i], NULL);
		if (!rc && chunks && s->blk[i].vclen)
			rc = vpart_check(s, &s->blk[i]);
		if (rc) {
			seg_block_unref(b);
			return rc;
		}
		seg_block_unref(b);
		seg_cpart_unref(c);
		done += (uint64_t)s->blk[i].clen + s->blk[i].cclen +
			s->blk[i].vclen;
	}
	return 0;
}

int t4dx_seg_salvage(struct t4dx_seg *s,
		     int (*fn)(void *arg, struct t4dx_entry *e), void *arg,
		     size_t *lost)
{
	*lost = 0;
	for (size_t i = 0; i < s->nblk; i++) {
		struct block *b = NULL;
		struct cpart *c = NULL;
		/* straight from the disk, like verify */
		int rc = parts_read(s, i, &b,
				    seg_has_cpart(s, i) ? &c : NULL, NULL,
				    false);
		if (rc == ENOMEM)
			return rc;
		if (rc) {
			(*lost)++;
			continue;
		}
		/* a block whose CRCs pass may still hold a record that does
		 * not decode (a vector value that is not finite): the block
		 * counts as lost, its other records are kept */
		bool bad = false;
		for (uint32_t r = 0; !rc && r < b->nrec; r++) {
			struct t4dx_entry e;
			rc = seg_rec_decode(s, b, c, r, true, &e);
			if (rc && rc != ENOMEM) {
				bad = true;
				rc = 0;
				continue;
			}
			if (!rc)
				rc = fn(arg, &e);   /* takes e's content */
		}
		*lost += bad;
		seg_block_unref(b);
		seg_cpart_unref(c);
		if (rc)
			return rc;
	}
	return 0;
}

int t4dx_seg_verify(struct t4dx_seg *s)
{
	size_t next = 0;
	return t4dx_seg_verify_some(s, &next, UINT64_MAX);
}

bool t4dx_seg_vec_lost(const struct t4dx_seg *s)
{
	return atomic_load(&s->vec_lost);
}

size_t t4dx_seg_blocks(const struct t4dx_seg *s)
{
	return s->nblk;
}

uint64_t t4dx_seg_block_offset(const struct t4dx_seg *s, size_t i)
{
	return i < s->nblk ? s->blk[i].off : 0;
}

int t4dx_seg_vpart_range(const struct t4dx_seg *s, size_t i, uint64_t *off,
			 uint64_t *len)
{
	if (i >= s->nblk)
		return EINVAL;
	const struct blkinfo *bi = &s->blk[i];
	*off = bi->off + bi->clen + bi->cclen;
	*len = bi->vclen;
	return 0;
}
