/*
 * seg.c - immutable segment files (see seg.h).
 *
 * FILE FORMAT (version 4; versions 1 to 3 are still read, see below).  All
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
 *      8   4  format version (4)
 *     12   4  reserved, written as zero, ignored
 *
 * Data block (versions 2 to 4): a meta part immediately followed by a
 * content part and (version 4) a vector part, each the LZ4 block-format
 * compression (LZ4_compress_default) of its own raw bytes, compressed and
 * checked independently, so that a listing reads, checksums and
 * decompresses the meta part only.
 *  - raw meta part: a run of records with strictly increasing keys (below);
 *  - raw content part: the contents of the block's records back to back,
 *    in record order.  A record's content starts at the sum of the sizes
 *    of the records before it in the block; the sizes of all records sum
 *    to the raw content length exactly.  When that length is 0 the content
 *    part is absent: zero bytes on disk, compressed length 0, CRC 0.
 *  - raw vector part: the vectors of the block's records that have one,
 *    back to back in record order, each 4 * vec_dim bytes (vec.h: IEEE
 *    754 binary32 values, little-endian); the lengths sum to the raw
 *    vector length exactly.  Absent (0, 0, CRC 0) when no record of the
 *    block has a vector.  It follows the content part (its chunks too).
 * The writer closes a block before a record that would take the raw meta
 * part, the raw content part or the raw vector part past 16 KiB, so a
 * content larger than 16 KiB gets a block of its own (and a lookup with
 * content decompresses about as much as in version 1).  The CRCs and
 * lengths of the parts live in the block's index entry, not in the block.
 * A read with content reads the content and vector parts together.
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
 * Record (n = name_len), 123 + n bytes (120 + n before version 4):
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
 *  120+n   1  vec_src: 0 none, 1 embedder, 2 by hand, 3 none from the
 *             embedder, which read the content (version 4)
 *  121+n   2  vec_dim: 1..4096, 0 iff vec_src is 0 or 3 (version 4)
 *
 * Block index entry (n1, n2 = name lengths), 68..578 bytes (version 4;
 * version 2 and 3 entries lack bytes 36..48: 56..566 bytes):
 *      0   8  file offset of the block (its meta part)
 *      8   4  meta part: compressed length (>= 1)
 *     12   4             raw length
 *     16   4             CRC-32 (zlib) of the compressed bytes
 *     20   4  number of records (>= 1)
 *     24   4  content part: compressed length (0 iff raw length is 0);
 *             it starts at offset + meta compressed length
 *     28   4                raw length
 *     32   4                CRC-32 (zlib) of the compressed bytes
 *     36   4  vector part: compressed length (0 iff raw length is 0);
 *             it starts where the content part ends
 *     40   4               raw length (a multiple of 4)
 *     44   4               CRC-32 (zlib) of the compressed bytes
 *     48   8  first key: parent
 *     56   2            name_len, 1..255
 *     58  n1            name
 *  58+n1   8  last key: parent
 *  66+n1   2            name_len, 1..255
 *  68+n1  n2            name
 *
 * VERSION 3 is version 4 without vectors: records of 120 + n bytes (no
 * vec_src, vec_dim), index entries without the vector part's 12 bytes,
 * no vector parts.  Its items have no vector.
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
 *     72   4  format version (4, 3, 2 or 1)
 *     76   4  CRC-32 of footer bytes 0..76
 *     80   8  magic "T4DXSEG\0"
 *
 * VALIDITY.  open checks, in this order, and answers:
 *  - neither the header nor the footer has the magic: T4DX_EFORMAT (not a
 *    segment); only one of them: T4DX_ECORRUPT (a segment that was
 *    truncated or overwritten);
 *  - header and footer versions differ: T4DX_ECORRUPT; they agree on a
 *    version other than 1 to 4: T4DX_EFORMAT;
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
 * first and last keys, and fill the raw block (versions 2 to 4: the raw
 * meta part, with their sizes the raw content length, and with their
 * vector lengths the raw vector length) exactly; each vector source is
 * known and its values finite (a read with content); in a chunked part,
 * each chunk's length fits what is left of the part and the chunks end
 * where the part does.  A read without content reads and checks the meta
 * part only; a read with content also the content and vector parts; a
 * read of the vectors alone (T4DX_SEG_VEC) the meta and vector parts;
 * t4dx_seg_verify reads and checks every part of every block.  Any failure answers T4DX_ECORRUPT for that block only;
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

#include "seg_int.h"

_Static_assert(sizeof(double) == 8, "doubles are stored as 8 bytes");

void seg_block_unref(struct block *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1,
					   memory_order_acq_rel) == 1)
		free(b);
}

void seg_cpart_free(struct cpart *c)
{
	if (c) {
		t4dx_blob_unref(c->raw);
		t4dx_blob_unref(c->vraw);
		free(c);
	}
}

void seg_cpart_unref(struct cpart *c)
{
	if (c && atomic_fetch_sub_explicit(&c->refs, 1,
					   memory_order_acq_rel) == 1)
		seg_cpart_free(c);
}

/* ---- little-endian encoding ------------------------------------------ */

unsigned char *seg_put8(unsigned char *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

unsigned char *seg_put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	return p + 2;
}

unsigned char *seg_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + 4;
}

unsigned char *seg_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + 8;
}

unsigned char *seg_putf64(unsigned char *p, double d)
{
	uint64_t v;
	memcpy(&v, &d, 8);
	return seg_put64(p, v);
}

double seg_getf64(const unsigned char *p)
{
	uint64_t v = t4dx_get_u64(p);
	double d;
	memcpy(&d, &v, 8);
	return d;
}

uint32_t seg_crc(const void *p, size_t len)
{
	return (uint32_t)crc32_z(0, p, len);
}

/* ---- Bloom filter ---------------------------------------------------- */

static uint64_t bloom_step(uint64_t h)
{
	return (h << 32 | h >> 32) | 1;
}

void seg_bloom_add(unsigned char *bits, uint64_t m, unsigned k, uint64_t h)
{
	uint64_t step = bloom_step(h);
	for (unsigned j = 0; j < k; j++, h += step)
		bits[h % m / 8] |= (unsigned char)(1u << (h % m % 8));
}

bool seg_bloom_may_have(const struct t4dx_seg *s, uint64_t h)
{
	uint64_t step = bloom_step(h);
	for (unsigned j = 0; j < s->bloom_k; j++, h += step) {
		uint64_t b = h % s->bloom_bits;
		if (!(s->bloom[b / 8] & (1u << (b % 8))))
			return false;
	}
	return true;
}

/* Most bytes a content part of rlen raw bytes can take on disk: one LZ4
 * block, or (chunked) each chunk's length and LZ4 block. */
uint64_t seg_cpart_bound(bool chunked, uint32_t rlen)
{
	if (!chunked)
		return (uint64_t)LZ4_compressBound((int)rlen);
	uint64_t full = rlen / CHUNK_RAW, tail = rlen % CHUNK_RAW;
	return full * (4 + (uint64_t)LZ4_compressBound((int)CHUNK_RAW)) +
	       (tail ? 4 + (uint64_t)LZ4_compressBound((int)tail) : 0);
}

/* ---- keys and content parts ------------------------------------------ */

/* Parse one key at *p (end e); 0 or T4DX_ECORRUPT. */
int seg_get_key(const unsigned char **p, const unsigned char *e,
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

/* Is the content part of block bi in chunks (version 3, long)? */
bool seg_chunked(const struct t4dx_seg *s, const struct blkinfo *bi)
{
	return s->version >= 3 && bi->crlen > CHUNK_RAW;
}
