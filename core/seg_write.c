/*
 * seg_write.c - writing a segment: records encoded and checked, packed
 * into blocks (a meta part, a content part and a vector part, each
 * LZ4-compressed, long content in chunks), then the index, the Bloom
 * filter and the footer.  The format is described in seg.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lz4.h>
#include <zlib.h>

#include "seg_int.h"
#include "vec.h"

/* ---- writing --------------------------------------------------------- */

/* A key kept by the writer: the caller's entry is only valid during the
 * add call. */
struct wkey {
	uint64_t parent;
	uint16_t name_len;
	char name[T4DX_NAME_MAX + 1];
};

struct t4dx_seg_writer {
	int fd;
	char *path;
	int err;                        /* sticky: the first failure */
	uint64_t off;                   /* where the next block goes */
	struct t4dx_buf raw, content, z, ix;    /* raw: the meta part */
	struct t4dx_buf vecs, zv;       /* the vector part, raw and packed */
	struct t4dx_blob *big;          /* the open block's content part when
					 * it is one large content: taken by
					 * reference, not copied into content */
	struct t4dx_buf zc;             /* one compressed chunk */
	struct wkey first, last;        /* keys of the open block; last is
					 * also the last key added */
	uint32_t nrec, nblk;
	uint64_t count, min_lsn, max_lsn;
	unsigned char *bloom;
	size_t bloom_len;
};

static size_t rec_size(const struct t4dx_entry *e)
{
	return REC_FIXED + e->name_len;
}

/* One entry on its own: name, content size, size limit. */
static int check_entry(const struct t4dx_entry *e)
{
	if (e->name_len < 1 || e->name_len > T4DX_NAME_MAX ||
	    memchr(e->name, '/', e->name_len) ||
	    memchr(e->name, 0, e->name_len))
		return EINVAL;
	if (e->content ? e->content->len != e->size : e->size != 0)
		return EINVAL;
	/* a vector source without its bytes would lose the vector */
	if (e->vec_src > T4DX_VEC_TRIED ||
	    t4dx_vec_src_has(e->vec_src) != !!e->vec ||
	    (e->vec && t4dx_vec_check(e->vec->data, e->vec->len)))
		return EINVAL;
	if (e->size > LZ4_MAX_INPUT_SIZE - REC_FIXED - T4DX_NAME_MAX)
		return EFBIG;
	return 0;
}

static int check_entries(struct t4dx_entry *const *entries, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct t4dx_entry *e = entries[i];
		int rc = check_entry(e);
		if (rc)
			return rc;
		if (i && t4dx_key_cmp(entries[i - 1]->parent,
				      entries[i - 1]->name,
				      entries[i - 1]->name_len, e->parent,
				      e->name, e->name_len) >= 0)
			return EINVAL;
	}
	return 0;
}

static void encode_rec(unsigned char *p, const struct t4dx_entry *e)
{
	p = seg_put64(p, e->parent);
	p = seg_put16(p, e->name_len);
	memcpy(p, e->name, e->name_len);
	p += e->name_len;
	p = seg_put8(p, (uint8_t)((e->tombstone ? F_TOMBSTONE : 0) |
			      (e->content ? F_BLOB : 0)));
	p = seg_put64(p, e->lsn);
	p = seg_put64(p, e->ino);
	p = seg_put32(p, e->mode);
	p = seg_put32(p, e->uid);
	p = seg_put32(p, e->gid);
	p = seg_put64(p, (uint64_t)e->atime_ns);
	p = seg_put64(p, (uint64_t)e->mtime_ns);
	p = seg_put64(p, (uint64_t)e->ctime_ns);
	memcpy(p, e->id, 16);
	p += 16;
	p = seg_putf64(p, e->kappa);
	p = seg_putf64(p, e->importance);
	p = seg_put8(p, e->type);
	p = seg_put64(p, (uint64_t)e->event_time_ns);
	p = seg_put64(p, e->access_count);
	p = seg_put64(p, e->size);
	p = seg_put8(p, e->vec_src);
	seg_put16(p, (uint16_t)t4dx_vec_dim(e->vec));
}

static unsigned char *put_key(unsigned char *p, const struct wkey *k)
{
	p = seg_put64(p, k->parent);
	p = seg_put16(p, k->name_len);
	memcpy(p, k->name, k->name_len);
	return p + k->name_len;
}

static void set_key(struct wkey *k, const struct t4dx_entry *e)
{
	k->parent = e->parent;
	k->name_len = e->name_len;
	memcpy(k->name, e->name, e->name_len);
}

/* Raw bytes of the open block's content part. */
static size_t open_content_len(const struct t4dx_seg_writer *w)
{
	return w->big ? w->big->len : w->content.len;
}

/* Write a content part of more than CHUNK_RAW bytes at off as chunks,
 * one compressed at a time; *zlen and *zcrc get its length and CRC. */
static int write_chunks(struct t4dx_seg_writer *w, const unsigned char *raw,
			size_t len, uint64_t off, uint32_t *zlen,
			uint32_t *zcrc)
{
	int bound = LZ4_compressBound((int)CHUNK_RAW);
	if (t4dx_buf_reserve(&w->zc, 4 + (size_t)bound))
		return ENOMEM;
	uLong c = crc32(0L, Z_NULL, 0);
	uint64_t start = off;
	for (size_t at = 0; at < len; at += CHUNK_RAW) {
		int n = len - at < CHUNK_RAW ? (int)(len - at) : (int)CHUNK_RAW;
		int k = LZ4_compress_default((const char *)raw + at,
					     (char *)w->zc.p + 4, n, bound);
		if (k <= 0)     /* cannot happen with a compressBound buffer */
			return EIO;
		seg_put32(w->zc.p, (uint32_t)k);
		c = crc32(c, w->zc.p, (uInt)k + 4);
		int rc = t4dx_io_pwrite_all(w->fd, w->zc.p, (size_t)k + 4,
					    (off_t)off);
		if (rc)
			return rc;
		off += (uint64_t)k + 4;
	}
	*zlen = (uint32_t)(off - start);
	*zcrc = (uint32_t)c;
	return 0;
}

/* Compress both parts of the open block into z, meta part first, and
 * write them with one pwrite; a content part of more than CHUNK_RAW
 * bytes follows in chunks. */
static int flush_block(struct t4dx_seg_writer *w)
{
	if (!w->nrec)
		return 0;
	const unsigned char *cp = w->big ? w->big->data : w->content.p;
	size_t cl = open_content_len(w);
	bool chunked = cl > CHUNK_RAW;
	int mbound = LZ4_compressBound((int)w->raw.len);
	int cbound = cl && !chunked ? LZ4_compressBound((int)cl) : 0;
	w->z.len = 0;
	if (t4dx_buf_reserve(&w->z, (size_t)mbound + (size_t)cbound) ||
	    t4dx_buf_reserve(&w->ix, IX_FIXED + w->first.name_len +
					     w->last.name_len))
		return ENOMEM;
	int clen = LZ4_compress_default((const char *)w->raw.p,
					(char *)w->z.p, (int)w->raw.len,
					mbound);
	int k = 0;
	if (cl && !chunked)
		k = LZ4_compress_default((const char *)cp,
					 (char *)w->z.p + clen, (int)cl, cbound);
	/* cannot happen with compressBound buffers */
	if (clen <= 0 || (cl && !chunked && k <= 0))
		return EIO;
	int rc = t4dx_io_pwrite_all(w->fd, w->z.p, (size_t)clen + (size_t)k,
				    (off_t)w->off);
	if (rc)
		return rc;
	uint32_t mcrc = seg_crc(w->z.p, (size_t)clen);
	uint32_t cclen = (uint32_t)k;
	uint32_t ccrc = k ? seg_crc(w->z.p + clen, (size_t)k) : 0;
	if (chunked && (rc = write_chunks(w, cp, cl, w->off + (uint64_t)clen,
					  &cclen, &ccrc)))
		return rc;
	uint32_t vclen = 0, vcrc = 0;
	if (w->vecs.len) {
		int vbound = LZ4_compressBound((int)w->vecs.len);
		w->zv.len = 0;
		if (t4dx_buf_reserve(&w->zv, (size_t)vbound))
			return ENOMEM;
		int v = LZ4_compress_default((const char *)w->vecs.p,
					     (char *)w->zv.p,
					     (int)w->vecs.len, vbound);
		if (v <= 0)
			return EIO;
		vclen = (uint32_t)v;
		vcrc = seg_crc(w->zv.p, vclen);
		rc = t4dx_io_pwrite_all(w->fd, w->zv.p, vclen,
					(off_t)(w->off + (uint64_t)clen +
						cclen));
		if (rc)
			return rc;
	}

	unsigned char *p = w->ix.p + w->ix.len;
	p = seg_put64(p, w->off);
	p = seg_put32(p, (uint32_t)clen);
	p = seg_put32(p, (uint32_t)w->raw.len);
	p = seg_put32(p, mcrc);
	p = seg_put32(p, w->nrec);
	p = seg_put32(p, cclen);
	p = seg_put32(p, (uint32_t)cl);
	p = seg_put32(p, ccrc);
	p = seg_put32(p, vclen);
	p = seg_put32(p, (uint32_t)w->vecs.len);
	p = seg_put32(p, vcrc);
	p = put_key(p, &w->first);
	p = put_key(p, &w->last);
	w->ix.len = (size_t)(p - w->ix.p);

	w->off += (uint64_t)clen + cclen + vclen;
	w->raw.len = 0;
	w->content.len = 0;
	w->vecs.len = 0;
	t4dx_blob_unref(w->big);
	w->big = NULL;
	w->nrec = 0;
	w->nblk++;
	return 0;
}

/* Close the file and free w; on failure (rc, or the close failing) the
 * file is unlinked.  Returns rc or the close's error. */
static int writer_close(struct t4dx_seg_writer *w, int rc)
{
	if (t4dx_io.close(w->fd) && !rc)
		rc = errno ? errno : EIO;
	if (rc)
		t4dx_io.unlink(w->path);
	t4dx_buf_free(&w->raw);
	t4dx_buf_free(&w->content);
	t4dx_buf_free(&w->z);
	t4dx_buf_free(&w->zc);
	t4dx_buf_free(&w->vecs);
	t4dx_buf_free(&w->zv);
	t4dx_blob_unref(w->big);
	t4dx_buf_free(&w->ix);
	free(w->bloom);
	free(w->path);
	free(w);
	return rc;
}

int t4dx_seg_writer_open(const char *path, uint64_t n_hint,
			 struct t4dx_seg_writer **out)
{
	*out = NULL;
	if (n_hint > SIZE_MAX / BLOOM_BITS_PER_KEY - 7)
		return ENOMEM;
	struct t4dx_seg_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return ENOMEM;
	w->min_lsn = UINT64_MAX;
	w->bloom_len = ((size_t)n_hint * BLOOM_BITS_PER_KEY + 7) / 8;
	if (w->bloom_len < 8)
		w->bloom_len = 8;
	w->bloom = calloc(1, w->bloom_len);
	w->path = strdup(path);
	if (!w->bloom || !w->path) {
		free(w->bloom);
		free(w->path);
		free(w);
		return ENOMEM;
	}
	w->fd = t4dx_io.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (w->fd < 0) {
		int rc = errno ? errno : EIO;
		free(w->bloom);
		free(w->path);
		free(w);
		return rc;
	}

	unsigned char hdr[HDR_SIZE] = { 0 };
	memcpy(hdr, SEG_MAGIC, 8);
	seg_put32(hdr + 8, SEG_VERSION);
	int rc = t4dx_io_pwrite_all(w->fd, hdr, HDR_SIZE, 0);
	if (rc)
		return writer_close(w, rc);
	w->off = HDR_SIZE;
	*out = w;
	return 0;
}

int t4dx_seg_writer_add(struct t4dx_seg_writer *w, const struct t4dx_entry *e)
{
	if (w->err)
		return w->err;
	int rc = check_entry(e);
	if (rc)
		return w->err = rc;
	if (w->count && t4dx_key_cmp(w->last.parent, w->last.name,
				     w->last.name_len, e->parent, e->name,
				     e->name_len) >= 0)
		return w->err = EINVAL;

	size_t len = rec_size(e), clen = (size_t)e->size;
	size_t vlen = e->vec ? e->vec->len : 0;
	if (w->nrec && (w->raw.len + len > BLOCK_TARGET ||
			open_content_len(w) + clen > CONTENT_TARGET ||
			w->vecs.len + vlen > VEC_TARGET))
		rc = flush_block(w);
	/* a content past the target is alone in its block (the one before
	 * was just closed): kept by reference, compressed from the blob */
	bool by_ref = clen > CONTENT_TARGET;
	if (!rc && (t4dx_buf_reserve(&w->raw, len) ||
		    (!by_ref && t4dx_buf_reserve(&w->content, clen)) ||
		    t4dx_buf_reserve(&w->vecs, vlen)))
		rc = ENOMEM;
	if (rc)
		return w->err = rc;
	encode_rec(w->raw.p + w->raw.len, e);
	w->raw.len += len;
	if (by_ref) {
		w->big = t4dx_blob_ref(e->content);
	} else if (clen) {
		memcpy(w->content.p + w->content.len, e->content->data, clen);
		w->content.len += clen;
	}
	if (vlen) {
		memcpy(w->vecs.p + w->vecs.len, e->vec->data, vlen);
		w->vecs.len += vlen;
	}
	if (!w->nrec++)
		set_key(&w->first, e);
	set_key(&w->last, e);
	seg_bloom_add(w->bloom, (uint64_t)w->bloom_len * 8, BLOOM_K,
		      t4dx_key_hash(e->parent, e->name, e->name_len));
	w->count++;
	if (e->lsn < w->min_lsn)
		w->min_lsn = e->lsn;
	if (e->lsn > w->max_lsn)
		w->max_lsn = e->lsn;
	return 0;
}

/* The last block, the index, the Bloom filter and the footer (with the
 * LSNs given), then fsync. */
static int write_tail(struct t4dx_seg_writer *w, uint64_t min_lsn,
		      uint64_t max_lsn)
{
	int rc = flush_block(w);
	uint64_t ix_off = w->off, bloom_off = ix_off + w->ix.len;
	uint64_t ftr_off = bloom_off + w->bloom_len;
	if (!rc)
		rc = t4dx_io_pwrite_all(w->fd, w->ix.p, w->ix.len,
					(off_t)ix_off);
	if (!rc)
		rc = t4dx_io_pwrite_all(w->fd, w->bloom, w->bloom_len,
					(off_t)bloom_off);
	if (!rc) {
		unsigned char f[FTR_SIZE], *p = f;
		p = seg_put64(p, ix_off);
		p = seg_put64(p, w->ix.len);
		p = seg_put64(p, bloom_off);
		p = seg_put64(p, w->bloom_len);
		p = seg_put64(p, w->count);
		p = seg_put64(p, min_lsn);
		p = seg_put64(p, max_lsn);
		p = seg_put32(p, w->nblk);
		p = seg_put32(p, seg_crc(w->ix.p, w->ix.len));
		p = seg_put32(p, seg_crc(w->bloom, w->bloom_len));
		p = seg_put32(p, BLOOM_K);
		p = seg_put32(p, SEG_VERSION);
		p = seg_put32(p, seg_crc(f, 76));
		memcpy(p, SEG_MAGIC, 8);
		rc = t4dx_io_pwrite_all(w->fd, f, FTR_SIZE, (off_t)ftr_off);
	}
	if (!rc && t4dx_io.fsync(w->fd))
		rc = errno ? errno : EIO;
	return rc;
}

int t4dx_seg_writer_finish(struct t4dx_seg_writer *w, uint64_t *count)
{
	int rc = w->err;
	if (!rc && !w->count)
		rc = EINVAL;
	if (!rc)
		rc = write_tail(w, w->min_lsn, w->max_lsn);
	if (count)
		*count = rc ? 0 : w->count;
	return writer_close(w, rc);
}

void t4dx_seg_writer_abort(struct t4dx_seg_writer *w)
{
	if (w)
		writer_close(w, ECANCELED);
}

int t4dx_seg_write(const char *path, struct t4dx_entry *const *entries,
		   size_t n, uint64_t min_lsn, uint64_t max_lsn)
{
	if (n == 0 || min_lsn > max_lsn)
		return EINVAL;
	/* checked before the file is created, so a bad call leaves no file */
	int rc = check_entries(entries, n);
	if (rc)
		return rc;

	struct t4dx_seg_writer *w;
	if ((rc = t4dx_seg_writer_open(path, n, &w)))
		return rc;
	for (size_t i = 0; i < n && !rc; i++)
		rc = t4dx_seg_writer_add(w, entries[i]);
	if (!rc)
		rc = write_tail(w, min_lsn, max_lsn);
	return writer_close(w, rc);
}
