/*
 * seg.c - immutable segment files (see seg.h).
 *
 * FILE FORMAT (version 3; versions 1 and 2 are still read, see below).  All
 * integers are little-endian; doubles are the IEEE 754 binary64 bit pattern
 * stored as a u64.  A key is (parent, name) ordered as t4dx_key_cmp orders
 * it.
 *
 *     header        16 bytes at offset 0
 *     data blocks   back to back from offset 16
 *     block index   one entry per block, in block (= key) order
 *     Bloom filter  a bit array
 *     footer        88 bytes, the last bytes of the file
 *
 * Header:
 *      0   8  magic "T4DXSEG\0"
 *      8   4  format version (3)
 *     12   4  reserved, written as zero, ignored
 *
 * Data block (versions 2 and 3): a meta part immediately followed by a content
 * part, each the LZ4 block-format compression (LZ4_compress_default) of its
 * own raw bytes, compressed and checked independently, so that a listing
 * reads, checksums and decompresses the meta part only.
 *  - raw meta part: a run of records with strictly increasing keys (below);
 *  - raw content part: the contents of the block's records back to back,
 *    in record order.  A record's content starts at the sum of the sizes
 *    of the records before it in the block; the sizes of all records sum
 *    to the raw content length exactly.  When that length is 0 the content
 *    part is absent: zero bytes on disk, compressed length 0, CRC 0.
 * The writer closes a block before a record that would take the raw meta
 * part or the raw content part past 16 KiB, so a content larger than
 * 16 KiB gets a block of its own (and a lookup with content decompresses
 * about as much as in version 1).  The CRCs and lengths of both parts
 * live in the block's index entry, not in the block.
 *
 * Chunked content part (version 3, a raw content length over 1 MiB, which
 * is always a block's only record): instead of one LZ4 block, chunks
 * back to back, chunk j holding raw bytes [j MiB, min((j + 1) MiB, raw
 * length)) as a 4-byte compressed length k >= 1 followed by the k bytes
 * of that range's own LZ4 block.  The part's compressed length and CRC
 * in the index cover all its chunks, lengths included.  Writer and
 * reader then hold one chunk at a time besides the content itself, so a
 * large item costs little more than its own size to write or read.
 * Version 2 is version 3 without chunks: every content part is one LZ4
 * block, whatever its length.
 *
 * Record (n = name_len), 120 + n bytes:
 *      0   8  parent
 *      8   2  name_len, 1..255
 *     10   n  name: no NUL, no '/'
 *   10+n   1  flags: bit 0 tombstone, bit 1 content is a blob (set for any
 *             entry written with a content blob, even an empty one; a
 *             record with size > 0 must have it); other bits zero
 *   11+n   8  lsn
 *   19+n   8  ino
 *   27+n   4  mode
 *   31+n   4  uid
 *   35+n   4  gid
 *   39+n   8  atime_ns   (signed)
 *   47+n   8  mtime_ns   (signed)
 *   55+n   8  ctime_ns   (signed)
 *   63+n  16  id
 *   79+n   8  kappa      (double)
 *   87+n   8  importance (double)
 *   95+n   1  type
 *   96+n   8  event_time_ns (signed)
 *  104+n   8  access_count
 *  112+n   8  size: the content's length in the content part
 *
 * Block index entry (n1, n2 = name lengths), 56..566 bytes:
 *      0   8  file offset of the block (its meta part)
 *      8   4  meta part: compressed length (>= 1)
 *     12   4             raw length
 *     16   4             CRC-32 (zlib) of the compressed bytes
 *     20   4  number of records (>= 1)
 *     24   4  content part: compressed length (0 iff raw length is 0);
 *             it starts at offset + meta compressed length
 *     28   4                raw length
 *     32   4                CRC-32 (zlib) of the compressed bytes
 *     36   8  first key: parent
 *     44   2            name_len, 1..255
 *     46  n1            name
 *  46+n1   8  last key: parent
 *  54+n1   2            name_len, 1..255
 *  56+n1  n2            name
 *
 * VERSION 1 (written by earlier t4dx, still read; the version field of
 * header and footer is 1).  Header, Bloom filter and footer as in version
 * 2.  A data block is one LZ4-compressed raw block holding the records
 * with each content inline: the record above followed by its size bytes
 * of content (120 + n + size bytes), the block closed before a record
 * that would take it past 16 KiB.  Its index entry is the version 2 entry
 * without bytes 24..36 (46..556 bytes): offset, compressed length, raw
 * length, CRC, record count, first key, last key.
 *
 * Bloom filter: m = 8 * length bits, bit i is byte i/8, mask 1 << (i%8).
 * For h = t4dx_key_hash(parent, name), probe j (0 <= j < k) tests bit
 * (h + j * (rotl64(h, 32) | 1)) mod m, arithmetic mod 2^64.  The writer
 * gives it 10 bits per key (per key of the hint, an upper bound, for the
 * streaming writer; at least 64) and k = 7, about 1% false positives.
 *
 * Footer (F = file size - 88):
 *      0   8  index offset
 *      8   8  index length
 *     16   8  Bloom offset
 *     24   8  Bloom length
 *     32   8  entry count
 *     40   8  min LSN (as given to t4dx_seg_write; the streaming
 *               writer: the least LSN of the entries written)
 *     48   8  max LSN (likewise)
 *     56   4  block count
 *     60   4  CRC-32 of the index
 *     64   4  CRC-32 of the Bloom filter
 *     68   4  Bloom k, 1..30
 *     72   4  format version (3, 2 or 1)
 *     76   4  CRC-32 of footer bytes 0..76
 *     80   8  magic "T4DXSEG\0"
 *
 * VALIDITY.  open checks, in this order, and answers:
 *  - neither the header nor the footer has the magic: T4DX_EFORMAT (not a
 *    segment); only one of them: T4DX_ECORRUPT (a segment that was
 *    truncated or overwritten);
 *  - header and footer versions differ: T4DX_ECORRUPT; they agree on a
 *    version other than 1, 2 and 3: T4DX_EFORMAT;
 *  - footer CRC, then index CRC, then Bloom CRC: T4DX_ECORRUPT;
 *  - layout (T4DX_ECORRUPT unless all hold): the parts tile the file with
 *    no gap (blocks from 16 up to the index, index, Bloom, footer), every
 *    index entry is well formed and consumes the index exactly, block
 *    offsets follow one another, first <= last key within a block and
 *    last < next first across blocks, record counts sum to the entry
 *    count, a block's lengths (each part's) are ones LZ4 can produce (a
 *    chunked part: at most each chunk's bound plus its 4 bytes).
 * A block is checked when it is read: the CRC of each part read, that it
 * decompresses to exactly its raw length, and that the records parse, are
 * valid, are in strictly increasing key order, match the index's count and
 * first and last keys, and fill the raw block (versions 2 and 3: the raw
 * meta part, and with their sizes the raw content length) exactly; in a
 * chunked part, each chunk's length fits what is left of the part and
 * the chunks end where the part does.  A read
 * without content reads and checks the meta part only; a read with content
 * also the content part; t4dx_seg_verify reads and checks both parts of
 * every block.  Any failure answers T4DX_ECORRUPT for that block only;
 * nothing of a damaged block is ever returned.  Other blocks stay
 * readable.  A reader never repairs a
 * segment: the engine quarantines it and rebuilds from the WAL archive.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lz4.h>
#include <zlib.h>

#include "buf.h"
#include "io.h"
#include "seg.h"

_Static_assert(sizeof(double) == 8, "doubles are stored as 8 bytes");

#define SEG_MAGIC         "T4DXSEG"     /* + its NUL: 8 bytes */
#define SEG_VERSION       3u            /* the one the writer writes */
#define SEG_VERSION_V2    2u
#define SEG_VERSION_V1    1u
#define HDR_SIZE          16
#define FTR_SIZE          88
#define REC_FIXED         120           /* record bytes besides name, content */
#define IX_FIXED          56            /* index entry bytes besides names */
#define IX_FIXED_V1       44
#define BLOCK_TARGET      (16 * 1024)   /* raw meta part; all of a v1 block */
#define CONTENT_TARGET    (16 * 1024)   /* raw content part */
#define CHUNK_RAW         (1u << 20)    /* v3: longer content parts are
					   compressed in chunks this long */
#define BLOOM_BITS_PER_KEY 10
#define BLOOM_K           7
/* Only small parts enter the one-block cache, so a segment holding a
 * 16 MiB item does not keep 16 MiB alive for as long as it is open. */
#define CACHE_MAX_RAW     (4 * BLOCK_TARGET)

#define F_TOMBSTONE       0x01
#define F_BLOB            0x02

/* What the index says about one block.  Names point into t4dx_seg.ix.
 * clen, rlen, crc: the meta part (version 1: the whole block); cclen,
 * crlen, ccrc: the content part (all 0 in version 1). */
struct blkinfo {
	uint64_t off;
	uint32_t clen, rlen, crc, nrec;
	uint32_t cclen, crlen, ccrc;
	uint64_t first_parent, last_parent;
	const char *first, *last;
	uint16_t first_len, last_len;
};

/* A decompressed, validated meta part (version 1: the whole block).
 * Shared by the cache, gets and iterators; freed when the last reference
 * goes. */
struct block {
	atomic_uint refs;
	size_t idx;
	uint32_t nrec;
	uint32_t *roff;         /* offset of each record in raw */
	uint32_t *coff;         /* offset of each content: version 1 in raw,
				 * later versions in the content part */
	unsigned char *raw;
};

/* A decompressed content part of a version 2 or 3 block, shared like a
 * block.  Its consistency with the records is checked with the meta part:
 * the sizes sum to its raw length.  The bytes are a blob, so that the
 * content of a block's only record is handed out without a copy. */
struct cpart {
	atomic_uint refs;
	size_t idx;
	struct t4dx_blob *raw;
};

struct t4dx_seg {
	atomic_uint refs;
	int fd;
	char *path;
	uint64_t id, count, file_bytes, min_lsn, max_lsn;
	unsigned char *ix;      /* the index bytes, which blk[] points into */
	struct blkinfo *blk;
	size_t nblk;
	unsigned char *bloom;
	uint64_t bloom_bits;
	unsigned bloom_k;
	uint32_t version;       /* of the file: 1 or 2 */
	pthread_mutex_t mu;
	struct block *cache;    /* last small meta part read; guarded by mu */
	struct cpart *ccache;   /* last small content part; guarded by mu */
};

struct t4dx_seg_iter {
	struct t4dx_seg *s;     /* holds a reference */
	size_t bi;              /* current block */
	uint32_t ri;            /* next record in b */
	struct block *b;        /* NULL until block bi is loaded */
	struct cpart *c;        /* block bi's content part, once needed */
	bool started;           /* the start key has been looked for */
	uint64_t parent;        /* start key */
	uint16_t name_len;
	char name[T4DX_NAME_MAX + 1];
};

static void block_unref(struct block *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1,
					   memory_order_acq_rel) == 1)
		free(b);
}

static void cpart_free(struct cpart *c)
{
	if (c) {
		t4dx_blob_unref(c->raw);
		free(c);
	}
}

static void cpart_unref(struct cpart *c)
{
	if (c && atomic_fetch_sub_explicit(&c->refs, 1,
					   memory_order_acq_rel) == 1)
		cpart_free(c);
}

/* ---- little-endian encoding ------------------------------------------ */

static unsigned char *put8(unsigned char *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static unsigned char *put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	return p + 2;
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + 4;
}

static unsigned char *put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + 8;
}

static unsigned char *putf64(unsigned char *p, double d)
{
	uint64_t v;
	memcpy(&v, &d, 8);
	return put64(p, v);
}

static double getf64(const unsigned char *p)
{
	uint64_t v = t4dx_get_u64(p);
	double d;
	memcpy(&d, &v, 8);
	return d;
}

static uint32_t crc(const void *p, size_t len)
{
	return (uint32_t)crc32_z(0, p, len);
}

/* ---- Bloom filter ---------------------------------------------------- */

static uint64_t bloom_step(uint64_t h)
{
	return (h << 32 | h >> 32) | 1;
}

static void bloom_add(unsigned char *bits, uint64_t m, unsigned k, uint64_t h)
{
	uint64_t step = bloom_step(h);
	for (unsigned j = 0; j < k; j++, h += step)
		bits[h % m / 8] |= (unsigned char)(1u << (h % m % 8));
}

static bool bloom_may_have(const struct t4dx_seg *s, uint64_t h)
{
	uint64_t step = bloom_step(h);
	for (unsigned j = 0; j < s->bloom_k; j++, h += step) {
		uint64_t b = h % s->bloom_bits;
		if (!(s->bloom[b / 8] & (1u << (b % 8))))
			return false;
	}
	return true;
}

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
	p = put64(p, e->parent);
	p = put16(p, e->name_len);
	memcpy(p, e->name, e->name_len);
	p += e->name_len;
	p = put8(p, (uint8_t)((e->tombstone ? F_TOMBSTONE : 0) |
			      (e->content ? F_BLOB : 0)));
	p = put64(p, e->lsn);
	p = put64(p, e->ino);
	p = put32(p, e->mode);
	p = put32(p, e->uid);
	p = put32(p, e->gid);
	p = put64(p, (uint64_t)e->atime_ns);
	p = put64(p, (uint64_t)e->mtime_ns);
	p = put64(p, (uint64_t)e->ctime_ns);
	memcpy(p, e->id, 16);
	p += 16;
	p = putf64(p, e->kappa);
	p = putf64(p, e->importance);
	p = put8(p, e->type);
	p = put64(p, (uint64_t)e->event_time_ns);
	p = put64(p, e->access_count);
	put64(p, e->size);
}

static unsigned char *put_key(unsigned char *p, const struct wkey *k)
{
	p = put64(p, k->parent);
	p = put16(p, k->name_len);
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

/* Most bytes a content part of rlen raw bytes can take on disk: one LZ4
 * block, or (chunked) each chunk's length and LZ4 block. */
static uint64_t cpart_bound(bool chunked, uint32_t rlen)
{
	if (!chunked)
		return (uint64_t)LZ4_compressBound((int)rlen);
	uint64_t full = rlen / CHUNK_RAW, tail = rlen % CHUNK_RAW;
	return full * (4 + (uint64_t)LZ4_compressBound((int)CHUNK_RAW)) +
	       (tail ? 4 + (uint64_t)LZ4_compressBound((int)tail) : 0);
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
		put32(w->zc.p, (uint32_t)k);
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
	uint32_t mcrc = crc(w->z.p, (size_t)clen);
	uint32_t cclen = (uint32_t)k;
	uint32_t ccrc = k ? crc(w->z.p + clen, (size_t)k) : 0;
	if (chunked && (rc = write_chunks(w, cp, cl, w->off + (uint64_t)clen,
					  &cclen, &ccrc)))
		return rc;

	unsigned char *p = w->ix.p + w->ix.len;
	p = put64(p, w->off);
	p = put32(p, (uint32_t)clen);
	p = put32(p, (uint32_t)w->raw.len);
	p = put32(p, mcrc);
	p = put32(p, w->nrec);
	p = put32(p, cclen);
	p = put32(p, (uint32_t)cl);
	p = put32(p, ccrc);
	p = put_key(p, &w->first);
	p = put_key(p, &w->last);
	w->ix.len = (size_t)(p - w->ix.p);

	w->off += (uint64_t)clen + cclen;
	w->raw.len = 0;
	w->content.len = 0;
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
	put32(hdr + 8, SEG_VERSION);
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
	if (w->nrec && (w->raw.len + len > BLOCK_TARGET ||
			open_content_len(w) + clen > CONTENT_TARGET))
		rc = flush_block(w);
	/* a content past the target is alone in its block (the one before
	 * was just closed): kept by reference, compressed from the blob */
	bool by_ref = clen > CONTENT_TARGET;
	if (!rc && (t4dx_buf_reserve(&w->raw, len) ||
		    (!by_ref && t4dx_buf_reserve(&w->content, clen))))
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
	if (!w->nrec++)
		set_key(&w->first, e);
	set_key(&w->last, e);
	bloom_add(w->bloom, (uint64_t)w->bloom_len * 8, BLOOM_K,
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
		p = put64(p, ix_off);
		p = put64(p, w->ix.len);
		p = put64(p, bloom_off);
		p = put64(p, w->bloom_len);
		p = put64(p, w->count);
		p = put64(p, min_lsn);
		p = put64(p, max_lsn);
		p = put32(p, w->nblk);
		p = put32(p, crc(w->ix.p, w->ix.len));
		p = put32(p, crc(w->bloom, w->bloom_len));
		p = put32(p, BLOOM_K);
		p = put32(p, SEG_VERSION);
		p = put32(p, crc(f, 76));
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

/* ---- opening --------------------------------------------------------- */

/* Parse one key at *p (end e); 0 or T4DX_ECORRUPT. */
static int get_key(const unsigned char **p, const unsigned char *e,
		   uint64_t *parent, const char **name, uint16_t *len)
{
	if (e - *p < 10)
		return T4DX_ECORRUPT;
	*parent = t4dx_get_u64(*p);
	*len = t4dx_get_u16(*p + 8);
	*name = (const char *)*p + 10;
	if (*len < 1 || *len > T4DX_NAME_MAX || e - *p - 10 < *len)
		return T4DX_ECORRUPT;
	*p += 10 + *len;
	return 0;
}

static int parse_index(struct t4dx_seg *s, uint64_t ix_len, uint64_t ix_off)
{
	const unsigned char *p = s->ix, *end = s->ix + ix_len;
	uint64_t off = HDR_SIZE, total = 0;
	bool v1 = s->version == SEG_VERSION_V1;
	long fixed = (v1 ? IX_FIXED_V1 : IX_FIXED) - 20;  /* before the keys */
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
		p += fixed;
		if (get_key(&p, end, &b->first_parent, &b->first,
			    &b->first_len) ||
		    get_key(&p, end, &b->last_parent, &b->last, &b->last_len))
			return T4DX_ECORRUPT;
		if (b->off != off || b->clen < 1 || b->nrec < 1 ||
		    b->rlen > LZ4_MAX_INPUT_SIZE ||
		    (uint64_t)b->nrec * (REC_FIXED + 1) > b->rlen ||
		    b->clen > (uint32_t)LZ4_compressBound((int)b->rlen))
			return T4DX_ECORRUPT;
		if (!b->cclen != !b->crlen || b->crlen > LZ4_MAX_INPUT_SIZE ||
		    (b->crlen && b->cclen > cpart_bound(
				s->version >= 3 && b->crlen > CHUNK_RAW,
				b->crlen)) ||
		    /* a chunk is at least its length and one byte */
		    (s->version >= 3 && b->crlen > CHUNK_RAW &&
		     b->cclen < 5 * ((b->crlen + CHUNK_RAW - 1) / CHUNK_RAW)) ||
		    (!b->cclen && b->ccrc))
			return T4DX_ECORRUPT;
		if (t4dx_key_cmp(b->first_parent, b->first, b->first_len,
				 b->last_parent, b->last, b->last_len) > 0)
			return T4DX_ECORRUPT;
		if (i && t4dx_key_cmp(b[-1].last_parent, b[-1].last,
				      b[-1].last_len, b->first_parent,
				      b->first, b->first_len) >= 0)
			return T4DX_ECORRUPT;
		off += (uint64_t)b->clen + b->cclen;
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
	if (s->version != SEG_VERSION && s->version != SEG_VERSION_V2 &&
	    s->version != SEG_VERSION_V1)
		return T4DX_EFORMAT;
	if (crc(f, 76) != t4dx_get_u32(f + 76))
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
	if (crc(s->ix, ix_len) != t4dx_get_u32(f + 60) ||
	    crc(s->bloom, bl_len) != t4dx_get_u32(f + 64))
		return T4DX_ECORRUPT;
	s->bloom_bits = bl_len * 8;
	return parse_index(s, ix_len, ix_off);
}

static void seg_free(struct t4dx_seg *s)
{
	if (s->fd >= 0)
		t4dx_io.close(s->fd);
	block_unref(s->cache);
	cpart_unref(s->ccache);
	pthread_mutex_destroy(&s->mu);
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
	s->path = strdup(path);
	s->fd = t4dx_io.open(path, O_RDONLY, 0);
	int rc = 0;
	if (s->fd < 0)
		rc = errno ? errno : EIO;
	else if (!s->path)
		rc = ENOMEM;
	else
		rc = load_meta(s);
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

/* ---- blocks ---------------------------------------------------------- */

static int key_cmp_rec(const unsigned char *r, uint64_t parent,
		       const char *name, size_t len)
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
		if (i == bi->nrec || get_key(&p, end, &parent, &name, &n) ||
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
		if (prev && key_cmp_rec(prev, parent, name, n) >= 0)
			return T4DX_ECORRUPT;
		if (i == 0 && t4dx_key_cmp(parent, name, n, bi->first_parent,
					   bi->first, bi->first_len))
			return T4DX_ECORRUPT;
		b->roff[i++] = (uint32_t)(r - b->raw);
		prev = r;
	}
	if (i != bi->nrec || csum != bi->crlen ||
	    key_cmp_rec(prev, bi->last_parent, bi->last, bi->last_len))
		return T4DX_ECORRUPT;
	return 0;
}

/* Check the CRC of z[0..zlen) and decompress it to exactly rlen bytes. */
static int part_unpack(const unsigned char *z, uint32_t zlen, uint32_t zcrc,
		       unsigned char *raw, uint32_t rlen)
{
	if (crc(z, zlen) != zcrc ||
	    LZ4_decompress_safe((const char *)z, (char *)raw, (int)zlen,
				(int)rlen) != (int)rlen)
		return T4DX_ECORRUPT;
	return 0;
}

/* Is the content part of block bi in chunks (version 3, long)? */
static bool chunked(const struct t4dx_seg *s, const struct blkinfo *bi)
{
	return s->version >= 3 && bi->crlen > CHUNK_RAW;
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
	bool chunks = cout && chunked(s, bi);
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
		cpart_free(c);
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
static bool has_cpart(const struct t4dx_seg *s, size_t i)
{
	return s->blk[i].crlen > 0;
}

/* The parts of block i asked for (bout, cout non-NULL), through the
 * one-block cache, reading what is missing with one pread.  The caller
 * owns a reference to each part returned; *cout is NULL when the block has
 * no content part. */
static int parts_get(struct t4dx_seg *s, size_t i, struct block **bout,
		     struct cpart **cout)
{
	struct block *b = NULL;
	struct cpart *c = NULL;
	bool want_c = cout && has_cpart(s, i);
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
			block_unref(read_b ? NULL : b);
			cpart_unref(read_c ? NULL : c);
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
		block_unref(oldb);
		cpart_unref(oldc);
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
static const unsigned char *rec_content(const struct t4dx_seg *s,
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
static int rec_decode(const unsigned char *r, const unsigned char *content,
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
	out->kappa = getf64(q + 69);
	out->importance = getf64(q + 77);
	out->type = q[85];
	out->event_time_ns = (int64_t)t4dx_get_u64(q + 86);
	out->access_count = t4dx_get_u64(q + 94);
	out->size = size;
	out->content = blob;
	return 0;
}

/* First record in b with key >= (parent, name). */
static uint32_t block_lower_bound(const struct block *b, uint64_t parent,
				  const char *name, size_t len)
{
	uint32_t lo = 0, hi = b->nrec;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (key_cmp_rec(b->raw + b->roff[mid], parent, name, len) < 0)
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

int t4dx_seg_get(struct t4dx_seg *s, uint64_t parent, const char *name,
		 size_t name_len, bool with_content, struct t4dx_entry *out)
{
	if (!bloom_may_have(s, t4dx_key_hash(parent, name, name_len)))
		return T4DX_ENOTFOUND;
	size_t i = index_lower_bound(s, parent, name, name_len);
	if (i == s->nblk ||
	    t4dx_key_cmp(s->blk[i].first_parent, s->blk[i].first,
			 s->blk[i].first_len, parent, name, name_len) > 0)
		return T4DX_ENOTFOUND;
	struct block *b;
	struct cpart *c = NULL;
	int rc = parts_get(s, i, &b, with_content ? &c : NULL);
	if (rc)
		return rc;
	uint32_t r = block_lower_bound(b, parent, name, name_len);
	if (r < b->nrec &&
	    !key_cmp_rec(b->raw + b->roff[r], parent, name, name_len))
		rc = rec_decode(b->raw + b->roff[r],
				with_content ? rec_content(s, b, c, r) : NULL,
				c, out);
	else
		rc = T4DX_ENOTFOUND;
	block_unref(b);
	cpart_unref(c);
	return rc;
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

int t4dx_seg_iter_next(struct t4dx_seg_iter *it, bool with_content,
		       struct t4dx_entry *out)
{
	struct t4dx_seg *s = it->s;
	int rc;
	while (!it->b || it->ri == it->b->nrec) {
		if (it->b) {
			block_unref(it->b);
			cpart_unref(it->c);
			it->b = NULL;
			it->c = NULL;
			it->bi++;
		}
		if (it->bi >= s->nblk)
			return T4DX_ENOTFOUND;
		rc = parts_get(s, it->bi, &it->b, with_content ? &it->c : NULL);
		if (rc)
			return rc;      /* the next call retries this block */
		it->ri = it->started ? 0 :
			 block_lower_bound(it->b, it->parent, it->name,
					   it->name_len);
		it->started = true;
	}
	/* the content part of a block first read without content */
	if (with_content && !it->c && has_cpart(s, it->bi) &&
	    (rc = parts_get(s, it->bi, NULL, &it->c)))
		return rc;              /* the next call retries it */
	rc = rec_decode(it->b->raw + it->b->roff[it->ri],
			with_content ? rec_content(s, it->b, it->c, it->ri) :
				       NULL,
			it->c, out);
	if (!rc)
		it->ri++;
	return rc;
}

void t4dx_seg_iter_close(struct t4dx_seg_iter *it)
{
	if (!it)
		return;
	block_unref(it->b);
	cpart_unref(it->c);
	t4dx_seg_unref(it->s);
	free(it);
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
		bool chunks = chunked(s, &s->blk[i]);
		int rc = parts_read(s, i, &b, has_cpart(s, i) && !chunks ?
					      &c : NULL);
		/* a long content part is checked a chunk at a time */
		if (!rc && chunks)
			rc = chunks_unpack(s, &s->blk[i], NULL);
		if (rc) {
			block_unref(b);
			return rc;
		}
		block_unref(b);
		cpart_unref(c);
		done += (uint64_t)s->blk[i].clen +
			(has_cpart(s, i) ? s->blk[i].cclen : 0);
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
		int rc = parts_read(s, i, &b, has_cpart(s, i) ? &c : NULL);
		if (rc == ENOMEM)
			return rc;
		if (rc) {
			(*lost)++;
			continue;
		}
		for (uint32_t r = 0; !rc && r < b->nrec; r++) {
			struct t4dx_entry e;
			rc = rec_decode(b->raw + b->roff[r],
					rec_content(s, b, c, r), c, &e);
			if (!rc)
				rc = fn(arg, &e);   /* takes e's content */
		}
		block_unref(b);
		cpart_unref(c);
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
