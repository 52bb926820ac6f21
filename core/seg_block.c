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
	uint64_t csum = 0;      /* versions 2, 3: content bytes so far */
	uint32_t i = 0;
	while (p < end) {
		uint64_t parent;
		const char *name;
		uint16_t n;
		const unsigned char *r = p;
		if (i == bi->nrec || seg_get_key(&p, end, &parent, &name, &n) ||
		    memchr(name, '/', n) || memchr(name, 0, n) ||
		    (size_t)(end - p) < REC_FIXED - 10)
			return T4DX_ECORRUPT;
		uint8_t flags = p[0];
		uint64_t size = t4dx_get_u64(p + 102);
		p += REC_FIXED - 10;
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
	if (i != bi->nrec || csum != bi->crlen ||
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

/* Read the parts of block i that are asked for (bout, cout non-NULL) from
 * disk with one pread, check and decompress them (a chunked content part
 * a chunk at a time).  The content part is only asked for in version 2
 * and 3 blocks that have one. */
static int parts_read(struct t4dx_seg *s, size_t i, struct block **bout,
		      struct cpart **cout)
{
	const struct blkinfo *bi = &s->blk[i];
	bool chunks = cout && seg_chunked(s, bi);
	uint32_t mlen = bout ? bi->clen : 0;
	uint32_t clen = cout && !chunks ? bi->cclen : 0;
	unsigned char *z = mlen + clen ? malloc((size_t)mlen + clen) : NULL;
	struct block *b = NULL;
	struct cpart *c = NULL;
	int rc = 0;
	if (bout) {
		b = malloc(sizeof(*b) + 2 * bi->nrec * sizeof(uint32_t) +
			   bi->rlen);
		if (b) {
			atomic_init(&b->refs, 1);
			b->idx = i;
			b->nrec = bi->nrec;
			b->roff = (uint32_t *)(b + 1);
			b->coff = b->roff + bi->nrec;
			b->raw = (unsigned char *)(b->coff + bi->nrec);
		}
	}
	if (cout) {
		c = malloc(sizeof(*c));
		if (c) {
			atomic_init(&c->refs, 1);
			c->idx = i;
			c->raw = t4dx_blob_new(bi->crlen);
		}
	}
	if ((mlen + clen && !z) || (bout && !b) || (cout && (!c || !c->raw))) {
		rc = ENOMEM;
		goto out;
	}
	if (mlen + clen &&
	    (rc = t4dx_io_pread_all(s->fd, z, (size_t)mlen + clen,
				    (off_t)(bi->off + (bout ? 0 : bi->clen)))))
		goto out;
	if (b && !(rc = part_unpack(z, bi->clen, bi->crc, b->raw, bi->rlen)))
		rc = block_check(s, b, bi);
	if (!rc && c && chunks)
		rc = chunks_unpack(s, bi, c->raw->data);
	else if (!rc && c)
		rc = part_unpack(z + mlen, bi->cclen, bi->ccrc, c->raw->data,
				 bi->crlen);
out:
	free(z);
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

/* Whether reading block i with content needs its content part. */
bool seg_has_cpart(const struct t4dx_seg *s, size_t i)
{
	return s->blk[i].crlen > 0;
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
	if (read_b || read_c) {
		int rc = parts_read(s, i, read_b ? &b : NULL,
				    read_c ? &c : NULL);
		if (rc) {
			seg_block_unref(read_b ? NULL : b);
			seg_cpart_unref(read_c ? NULL : c);
			return rc;
		}
		struct block *oldb = NULL;
		struct cpart *oldc = NULL;
		bool keep_b = read_b && s->blk[i].rlen <= CACHE_MAX_RAW;
		bool keep_c = read_c && s->blk[i].crlen <= CACHE_MAX_RAW;
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

/* Fill out from a checked record; content NULL: leave the content out.
 * c: the block's content part, if any; a record whose content is all of
 * it gets a reference to it instead of a copy. */
int seg_rec_decode(const unsigned char *r, const unsigned char *content,
		   const struct cpart *c, struct t4dx_entry *out)
{
	uint16_t n = t4dx_get_u16(r + 8);
	const unsigned char *q = r + 10 + n;
	struct t4dx_blob *blob = NULL;
	uint64_t size = t4dx_get_u64(q + 102);
	if (content && (q[0] & F_BLOB)) {
		if (c && content == c->raw->data && size == c->raw->len)
			blob = t4dx_blob_ref(c->raw);
		else
			blob = t4dx_blob_from(content, (size_t)size);
		if (!blob)
			return ENOMEM;
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
	return 0;
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
					      &c : NULL);
		/* a long content part is checked a chunk at a time */
		if (!rc && chunks)
			rc = chunks_unpack(s, &s->blk[i], NULL);
		if (rc) {
			seg_block_unref(b);
			return rc;
		}
		seg_block_unref(b);
		seg_cpart_unref(c);
		done += (uint64_t)s->blk[i].clen +
			(seg_has_cpart(s, i) ? s->blk[i].cclen : 0);
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
				    seg_has_cpart(s, i) ? &c : NULL);
		if (rc == ENOMEM)
			return rc;
		if (rc) {
			(*lost)++;
			continue;
		}
		for (uint32_t r = 0; !rc && r < b->nrec; r++) {
			struct t4dx_entry e;
			rc = seg_rec_decode(b->raw + b->roff[r],
					    seg_rec_content(s, b, c, r), c, &e);
			if (!rc)
				rc = fn(arg, &e);   /* takes e's content */
		}
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

size_t t4dx_seg_blocks(const struct t4dx_seg *s)
{
	return s->nblk;
}

uint64_t t4dx_seg_block_offset(const struct t4dx_seg *s, size_t i)
{
	return i < s->nblk ? s->blk[i].off : 0;
}
