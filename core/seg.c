/*
 * seg.c - immutable segment files (see seg.h).
 *
 * FILE FORMAT (version 1).  All integers are little-endian; doubles are the
 * IEEE 754 binary64 bit pattern stored as a u64.  A key is (parent, name)
 * ordered as t4dx_key_cmp orders it.
 *
 *     header        16 bytes at offset 0
 *     data blocks   back to back from offset 16
 *     block index   one entry per block, in block (= key) order
 *     Bloom filter  a bit array
 *     footer        88 bytes, the last bytes of the file
 *
 * Header:
 *      0   8  magic "T4DXSEG\0"
 *      8   4  format version (1)
 *     12   4  reserved, written as zero, ignored
 *
 * Data block: the LZ4 block-format compression (LZ4_compress_default) of a
 * raw block, which is a run of records with strictly increasing keys.  The
 * writer closes a block before a record that would take it past 16 KiB, so
 * a record larger than that gets a block of its own.  The CRC and lengths
 * of a block live in its index entry, not in the block.
 *
 * Record (n = name_len, c = content length), 120 + n + c bytes:
 *      0   8  parent
 *      8   2  name_len, 1..255
 *     10   n  name: no NUL, no '/'
 *   10+n   1  flags: bit 0 tombstone, bit 1 content is a blob (set for any
 *             entry written with a content blob, even an empty one; a
 *             record with c > 0 must have it); other bits zero
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
 *  112+n   8  size = c
 *  120+n   c  content
 *
 * Block index entry (n1, n2 = name lengths), 46..556 bytes:
 *      0   8  file offset of the block
 *      8   4  compressed length (>= 1)
 *     12   4  raw length
 *     16   4  CRC-32 (zlib) of the compressed bytes
 *     20   4  number of records (>= 1)
 *     24   8  first key: parent
 *     32   2            name_len, 1..255
 *     34  n1            name
 *  34+n1   8  last key: parent
 *  42+n1   2            name_len, 1..255
 *  44+n1  n2            name
 *
 * Bloom filter: m = 8 * length bits, bit i is byte i/8, mask 1 << (i%8).
 * For h = t4dx_key_hash(parent, name), probe j (0 <= j < k) tests bit
 * (h + j * (rotl64(h, 32) | 1)) mod m, arithmetic mod 2^64.  The writer
 * gives it 10 bits per key (at least 64) and k = 7, about 1% false
 * positives.
 *
 * Footer (F = file size - 88):
 *      0   8  index offset
 *      8   8  index length
 *     16   8  Bloom offset
 *     24   8  Bloom length
 *     32   8  entry count
 *     40   8  min LSN (as given to the writer)
 *     48   8  max LSN
 *     56   4  block count
 *     60   4  CRC-32 of the index
 *     64   4  CRC-32 of the Bloom filter
 *     68   4  Bloom k, 1..30
 *     72   4  format version (1)
 *     76   4  CRC-32 of footer bytes 0..76
 *     80   8  magic "T4DXSEG\0"
 *
 * VALIDITY.  open checks, in this order, and answers:
 *  - neither the header nor the footer has the magic: T4DX_EFORMAT (not a
 *    segment); only one of them: T4DX_ECORRUPT (a segment that was
 *    truncated or overwritten);
 *  - header and footer versions differ: T4DX_ECORRUPT; they agree on a
 *    version other than 1: T4DX_EFORMAT;
 *  - footer CRC, then index CRC, then Bloom CRC: T4DX_ECORRUPT;
 *  - layout (T4DX_ECORRUPT unless all hold): the parts tile the file with
 *    no gap (blocks from 16 up to the index, index, Bloom, footer), every
 *    index entry is well formed and consumes the index exactly, block
 *    offsets follow one another, first <= last key within a block and
 *    last < next first across blocks, record counts sum to the entry
 *    count, a block's lengths are ones LZ4 can produce.
 * A block is checked when it is read: its CRC, that it decompresses to
 * exactly its raw length, and that its records parse, are valid, are in
 * strictly increasing key order, match the index's count and first and
 * last keys, and fill the raw block exactly.  Any failure answers
 * T4DX_ECORRUPT for that block only; nothing of a damaged block is ever
 * returned.  Other blocks stay readable.  A reader never repairs a
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
#define SEG_VERSION       1u
#define HDR_SIZE          16
#define FTR_SIZE          88
#define REC_FIXED         120           /* record bytes besides name, content */
#define IX_FIXED          44            /* index entry bytes besides names */
#define BLOCK_TARGET      (16 * 1024)
#define BLOOM_BITS_PER_KEY 10
#define BLOOM_K           7
/* Only small blocks enter the one-block cache, so a segment holding a
 * 16 MiB item does not keep 16 MiB alive for as long as it is open. */
#define CACHE_MAX_RAW     (4 * BLOCK_TARGET)

#define F_TOMBSTONE       0x01
#define F_BLOB            0x02

/* What the index says about one block.  Names point into t4dx_seg.ix. */
struct blkinfo {
	uint64_t off;
	uint32_t clen, rlen, crc, nrec;
	uint64_t first_parent, last_parent;
	const char *first, *last;
	uint16_t first_len, last_len;
};

/* A decompressed, validated block.  Shared by the cache, gets and
 * iterators; freed when the last reference goes. */
struct block {
	atomic_uint refs;
	size_t idx;
	uint32_t nrec;
	uint32_t *roff;         /* offset of each record in raw */
	unsigned char *raw;
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
	pthread_mutex_t mu;
	struct block *cache;    /* last small block read; guarded by mu */
};

struct t4dx_seg_iter {
	struct t4dx_seg *s;     /* holds a reference */
	size_t bi;              /* current block */
	uint32_t ri;            /* next record in b */
	struct block *b;        /* NULL until block bi is loaded */
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

struct writer {
	int fd;
	uint64_t off;                   /* where the next block goes */
	struct t4dx_buf raw, z, ix;
	const struct t4dx_entry *first, *last;  /* keys of the open block */
	uint32_t nrec, nblk;
};

static size_t rec_size(const struct t4dx_entry *e)
{
	return REC_FIXED + e->name_len + (size_t)e->size;
}

static int check_entries(struct t4dx_entry *const *entries, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct t4dx_entry *e = entries[i];
		if (e->name_len < 1 || e->name_len > T4DX_NAME_MAX ||
		    memchr(e->name, '/', e->name_len) ||
		    memchr(e->name, 0, e->name_len))
			return EINVAL;
		if (e->content ? e->content->len != e->size : e->size != 0)
			return EINVAL;
		if (e->size > LZ4_MAX_INPUT_SIZE - REC_FIXED - T4DX_NAME_MAX)
			return EFBIG;
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
	p = put64(p, e->size);
	if (e->size)
		memcpy(p, e->content->data, (size_t)e->size);
}

static unsigned char *put_key(unsigned char *p, const struct t4dx_entry *e)
{
	p = put64(p, e->parent);
	p = put16(p, e->name_len);
	memcpy(p, e->name, e->name_len);
	return p + e->name_len;
}

static int flush_block(struct writer *w)
{
	if (!w->nrec)
		return 0;
	int bound = LZ4_compressBound((int)w->raw.len);
	w->z.len = 0;
	if (t4dx_buf_reserve(&w->z, (size_t)bound) ||
	    t4dx_buf_reserve(&w->ix, IX_FIXED + w->first->name_len +
					     w->last->name_len))
		return ENOMEM;
	int clen = LZ4_compress_default((const char *)w->raw.p,
					(char *)w->z.p, (int)w->raw.len, bound);
	if (clen <= 0)
		return EIO;     /* cannot happen with a compressBound buffer */
	int rc = t4dx_io_pwrite_all(w->fd, w->z.p, (size_t)clen,
				    (off_t)w->off);
	if (rc)
		return rc;

	unsigned char *p = w->ix.p + w->ix.len;
	p = put64(p, w->off);
	p = put32(p, (uint32_t)clen);
	p = put32(p, (uint32_t)w->raw.len);
	p = put32(p, crc(w->z.p, (size_t)clen));
	p = put32(p, w->nrec);
	p = put_key(p, w->first);
	p = put_key(p, w->last);
	w->ix.len = (size_t)(p - w->ix.p);

	w->off += (uint64_t)clen;
	w->raw.len = 0;
	w->nrec = 0;
	w->nblk++;
	return 0;
}

static int write_all(struct writer *w, struct t4dx_entry *const *entries,
		     size_t n, uint64_t min_lsn, uint64_t max_lsn)
{
	unsigned char hdr[HDR_SIZE] = { 0 };
	memcpy(hdr, SEG_MAGIC, 8);
	put32(hdr + 8, SEG_VERSION);
	int rc = t4dx_io_pwrite_all(w->fd, hdr, HDR_SIZE, 0);
	if (rc)
		return rc;
	w->off = HDR_SIZE;

	size_t bloom_len = (n * BLOOM_BITS_PER_KEY + 7) / 8;
	if (bloom_len < 8)
		bloom_len = 8;
	unsigned char *bloom = calloc(1, bloom_len);
	if (!bloom)
		return ENOMEM;

	for (size_t i = 0; i < n; i++) {
		const struct t4dx_entry *e = entries[i];
		size_t len = rec_size(e);
		if (w->nrec && w->raw.len + len > BLOCK_TARGET)
			rc = flush_block(w);
		if (!rc && t4dx_buf_reserve(&w->raw, len))
			rc = ENOMEM;
		if (rc)
			break;
		encode_rec(w->raw.p + w->raw.len, e);
		w->raw.len += len;
		if (!w->nrec++)
			w->first = e;
		w->last = e;
		bloom_add(bloom, (uint64_t)bloom_len * 8, BLOOM_K,
			  t4dx_key_hash(e->parent, e->name, e->name_len));
	}
	if (!rc)
		rc = flush_block(w);

	uint64_t ix_off = w->off, bloom_off = ix_off + w->ix.len;
	uint64_t ftr_off = bloom_off + bloom_len;
	if (!rc)
		rc = t4dx_io_pwrite_all(w->fd, w->ix.p, w->ix.len,
					(off_t)ix_off);
	if (!rc)
		rc = t4dx_io_pwrite_all(w->fd, bloom, bloom_len,
					(off_t)bloom_off);
	if (!rc) {
		unsigned char f[FTR_SIZE], *p = f;
		p = put64(p, ix_off);
		p = put64(p, w->ix.len);
		p = put64(p, bloom_off);
		p = put64(p, bloom_len);
		p = put64(p, n);
		p = put64(p, min_lsn);
		p = put64(p, max_lsn);
		p = put32(p, w->nblk);
		p = put32(p, crc(w->ix.p, w->ix.len));
		p = put32(p, crc(bloom, bloom_len));
		p = put32(p, BLOOM_K);
		p = put32(p, SEG_VERSION);
		p = put32(p, crc(f, 76));
		memcpy(p, SEG_MAGIC, 8);
		rc = t4dx_io_pwrite_all(w->fd, f, FTR_SIZE, (off_t)ftr_off);
	}
	free(bloom);
	if (!rc && t4dx_io.fsync(w->fd))
		rc = errno ? errno : EIO;
	return rc;
}

int t4dx_seg_write(const char *path, struct t4dx_entry *const *entries,
		   size_t n, uint64_t min_lsn, uint64_t max_lsn)
{
	if (n == 0 || min_lsn > max_lsn)
		return EINVAL;
	int rc = check_entries(entries, n);
	if (rc)
		return rc;

	struct writer w = { 0 };
	w.fd = t4dx_io.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (w.fd < 0)
		return errno ? errno : EIO;
	rc = write_all(&w, entries, n, min_lsn, max_lsn);
	if (t4dx_io.close(w.fd) && !rc)
		rc = errno ? errno : EIO;
	if (rc)
		t4dx_io.unlink(path);
	t4dx_buf_free(&w.raw);
	t4dx_buf_free(&w.z);
	t4dx_buf_free(&w.ix);
	return rc;
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
	for (size_t i = 0; i < s->nblk; i++) {
		struct blkinfo *b = &s->blk[i];
		if (end - p < 24)
			return T4DX_ECORRUPT;
		b->off = t4dx_get_u64(p);
		b->clen = t4dx_get_u32(p + 8);
		b->rlen = t4dx_get_u32(p + 12);
		b->crc = t4dx_get_u32(p + 16);
		b->nrec = t4dx_get_u32(p + 20);
		p += 24;
		if (get_key(&p, end, &b->first_parent, &b->first,
			    &b->first_len) ||
		    get_key(&p, end, &b->last_parent, &b->last, &b->last_len))
			return T4DX_ECORRUPT;
		if (b->off != off || b->clen < 1 || b->nrec < 1 ||
		    b->rlen > LZ4_MAX_INPUT_SIZE ||
		    (uint64_t)b->nrec * (REC_FIXED + 1) > b->rlen ||
		    b->clen > (uint32_t)LZ4_compressBound((int)b->rlen))
			return T4DX_ECORRUPT;
		if (t4dx_key_cmp(b->first_parent, b->first, b->first_len,
				 b->last_parent, b->last, b->last_len) > 0)
			return T4DX_ECORRUPT;
		if (i && t4dx_key_cmp(b[-1].last_parent, b[-1].last,
				      b[-1].last_len, b->first_parent,
				      b->first, b->first_len) >= 0)
			return T4DX_ECORRUPT;
		off += b->clen;
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
	if (t4dx_get_u32(f + 72) != SEG_VERSION)
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

/* Walk the raw records of b, recording their offsets: every check a
 * reader later relies on happens here, once per read. */
static int block_check(struct block *b, const struct blkinfo *bi)
{
	const unsigned char *p = b->raw, *end = b->raw + bi->rlen;
	const unsigned char *prev = NULL;
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
		    (size && !(flags & F_BLOB)) || size > (uint64_t)(end - p))
			return T4DX_ECORRUPT;
		p += size;
		if (prev && key_cmp_rec(prev, parent, name, n) >= 0)
			return T4DX_ECORRUPT;
		if (i == 0 && t4dx_key_cmp(parent, name, n, bi->first_parent,
					   bi->first, bi->first_len))
			return T4DX_ECORRUPT;
		b->roff[i++] = (uint32_t)(r - b->raw);
		prev = r;
	}
	if (i != bi->nrec ||
	    key_cmp_rec(prev, bi->last_parent, bi->last, bi->last_len))
		return T4DX_ECORRUPT;
	return 0;
}

/* Read block i from disk, check and decompress it. */
static int block_read(struct t4dx_seg *s, size_t i, struct block **out)
{
	const struct blkinfo *bi = &s->blk[i];
	unsigned char *z = malloc(bi->clen);
	struct block *b = malloc(sizeof(*b) + bi->nrec * sizeof(uint32_t) +
				 bi->rlen);
	int rc = 0;
	if (!z || !b) {
		rc = ENOMEM;
		goto out;
	}
	atomic_init(&b->refs, 1);
	b->idx = i;
	b->nrec = bi->nrec;
	b->roff = (uint32_t *)(b + 1);
	b->raw = (unsigned char *)(b->roff + bi->nrec);
	if ((rc = t4dx_io_pread_all(s->fd, z, bi->clen, (off_t)bi->off)))
		goto out;
	if (crc(z, bi->clen) != bi->crc ||
	    LZ4_decompress_safe((const char *)z, (char *)b->raw,
				(int)bi->clen, (int)bi->rlen) != (int)bi->rlen) {
		rc = T4DX_ECORRUPT;
		goto out;
	}
	rc = block_check(b, bi);
out:
	free(z);
	if (rc) {
		free(b);
		b = NULL;
	}
	*out = b;
	return rc;
}

/* Block i through the one-block cache.  The caller owns a reference. */
static int block_get(struct t4dx_seg *s, size_t i, struct block **out)
{
	pthread_mutex_lock(&s->mu);
	struct block *b = s->cache;
	if (b && b->idx == i)
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	else
		b = NULL;
	pthread_mutex_unlock(&s->mu);
	if (b) {
		*out = b;
		return 0;
	}
	int rc = block_read(s, i, &b);
	if (rc)
		return rc;
	if (s->blk[i].rlen <= CACHE_MAX_RAW) {
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
		pthread_mutex_lock(&s->mu);
		struct block *old = s->cache;
		s->cache = b;
		pthread_mutex_unlock(&s->mu);
		block_unref(old);
	}
	*out = b;
	return 0;
}

/* Fill out from a checked record. */
static int rec_decode(const unsigned char *r, bool with_content,
		      struct t4dx_entry *out)
{
	uint16_t n = t4dx_get_u16(r + 8);
	const unsigned char *q = r + 10 + n;
	struct t4dx_blob *content = NULL;
	uint64_t size = t4dx_get_u64(q + 102);
	if (with_content && (q[0] & F_BLOB)) {
		content = t4dx_blob_from(q + 110, (size_t)size);
		if (!content)
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
	out->content = content;
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
	int rc = block_get(s, i, &b);
	if (rc)
		return rc;
	uint32_t r = block_lower_bound(b, parent, name, name_len);
	if (r < b->nrec &&
	    !key_cmp_rec(b->raw + b->roff[r], parent, name, name_len))
		rc = rec_decode(b->raw + b->roff[r], with_content, out);
	else
		rc = T4DX_ENOTFOUND;
	block_unref(b);
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
	while (!it->b || it->ri == it->b->nrec) {
		if (it->b) {
			block_unref(it->b);
			it->b = NULL;
			it->bi++;
		}
		if (it->bi >= it->s->nblk)
			return T4DX_ENOTFOUND;
		int rc = block_get(it->s, it->bi, &it->b);
		if (rc)
			return rc;      /* the next call retries this block */
		it->ri = it->started ? 0 :
			 block_lower_bound(it->b, it->parent, it->name,
					   it->name_len);
		it->started = true;
	}
	int rc = rec_decode(it->b->raw + it->b->roff[it->ri], with_content,
			    out);
	if (!rc)
		it->ri++;
	return rc;
}

void t4dx_seg_iter_close(struct t4dx_seg_iter *it)
{
	if (!it)
		return;
	block_unref(it->b);
	t4dx_seg_unref(it->s);
	free(it);
}

int t4dx_seg_verify(struct t4dx_seg *s)
{
	/* Straight from the disk: a cached block says nothing about the
	 * bytes there now. */
	for (size_t i = 0; i < s->nblk; i++) {
		struct block *b;
		int rc = block_read(s, i, &b);
		if (rc)
			return rc;
		block_unref(b);
	}
	return 0;
}
