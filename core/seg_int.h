/*
 * seg_int.h - a segment's layout constants, the in-memory state of an
 * open segment, and the calls between the files that make up the
 * segment code.  Only the seg*.c files include it; everyone else uses
 * seg.h.  The on-disk format is described at the top of seg.c.
 *
 * Layering (calls only go downwards):
 *
 *   seg_read.c    open, references, lookups, iterators
 *   seg_block.c   one block read back and checked; verify   seg_write.c
 *   seg.c         format helpers: encoding, CRC, Bloom filter, keys,
 *                 block and content part references
 */
#ifndef T4DX_SEG_INT_H
#define T4DX_SEG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "io.h"
#include "seg.h"

#define SEG_MAGIC         "T4DXSEG"     /* + its NUL: 8 bytes */

#define SEG_VERSION       4u            /* the one the writer writes */

#define SEG_VERSION_V3    3u

#define SEG_VERSION_V2    2u

#define SEG_VERSION_V1    1u

#define HDR_SIZE          16

#define FTR_SIZE          88

#define REC_FIXED         123           /* record bytes besides name, content */

#define REC_FIXED_V3      120           /* versions 1 to 3 */

#define IX_FIXED          68            /* index entry bytes besides names */

#define IX_FIXED_V3       56            /* versions 2 and 3 */

#define IX_FIXED_V1       44

#define BLOCK_TARGET      (16 * 1024)   /* raw meta part; all of a v1 block */

#define CONTENT_TARGET    (16 * 1024)   /* raw content part */

#define VEC_TARGET        (16 * 1024)   /* raw vector part */

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
 * crlen, ccrc: the content part (all 0 in version 1); vclen, vrlen, vcrc:
 * the vector part (all 0 before version 4). */
struct blkinfo {
	uint64_t off;
	uint32_t clen, rlen, crc, nrec;
	uint32_t cclen, crlen, ccrc;
	uint32_t vclen, vrlen, vcrc;
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
	uint32_t *voff;         /* offset of each vector in the vector part
				 * (version 4; meaningless for a record
				 * without one) */
	unsigned char *raw;
};

/* The decompressed payload of a version 2, 3 or 4 block: its content
 * part and (version 4) its vector part, shared like a block and read
 * together by a read with content.  Their consistency with the records is
 * checked with the meta part: the sizes, and the vectors' lengths, sum to
 * their raw lengths.  The content bytes are a blob, so that the content
 * of a block's only record is handed out without a copy. */
struct cpart {
	atomic_uint refs;
	size_t idx;
	struct t4dx_blob *raw;
	struct t4dx_blob *vraw;         /* NULL when the block has none */
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
	uint32_t version;       /* of the file: 1 to 4 */
	pthread_mutex_t mu;
	struct block *cache;    /* last small meta part read; guarded by mu */
	struct cpart *ccache;   /* last small content part; guarded by mu */
	/* per block, once a content part too large for ccache was read:
	 * its decoded bytes while some reader holds them, so that readers
	 * of one large item share a copy; the array and its slots guarded
	 * by mu, nblk of them, freed with s */
	struct t4dx_blob_slot **shared;
	/* the segment's vector index, once loaded (seg.h), and what is
	 * known of it; both guarded by mu, the index freed with s */
	struct t4dx_index *index;
	int index_state;
	pthread_cond_t index_cv;        /* index_state left LOADING (mu) */
	bool index_held;        /* a full compaction of it builds its
	                           output's index: none loaded (mu) */
	uint64_t *first_rec;    /* ordinal of each block's first record,
				 * nblk + 1 of them; made at open */
	/* t4dx_seg_dirs, once read; guarded by mu */
	struct t4dx_seg_dir *dirs;
	size_t ndirs;
	bool dirs_read;
	atomic_bool vec_lost;   /* a vector part failed its checks: its
				   block's vectors were left out of reads */
};

struct t4dx_seg_iter {
	struct t4dx_seg *s;     /* holds a reference */
	size_t bi;              /* current block */
	uint32_t ri;            /* next record in b */
	struct block *b;        /* NULL until block bi is loaded */
	struct cpart *c;        /* block bi's content part, once needed */
	struct cpart *v;        /* its vector part alone (T4DX_SEG_VEC) */
	bool started;           /* the start key has been looked for */
	uint64_t parent;        /* start key */
	uint16_t name_len;
	char name[T4DX_NAME_MAX + 1];
};


/* seg.c */
/* Drop a reference to a meta part, freeing it with the last. */
void seg_block_unref(struct block *b);
/* Free a content part. */
void seg_cpart_free(struct cpart *c);
/* Drop a reference to a content part, freeing it with the last. */
void seg_cpart_unref(struct cpart *c);
/* Little-endian stores; each returns p past what it wrote. */
unsigned char *seg_put8(unsigned char *p, uint8_t v);
unsigned char *seg_put16(unsigned char *p, uint16_t v);
unsigned char *seg_put32(unsigned char *p, uint32_t v);
unsigned char *seg_put64(unsigned char *p, uint64_t v);
unsigned char *seg_putf64(unsigned char *p, double d);
/* The double stored at p. */
double seg_getf64(const unsigned char *p);
/* The CRC-32 of p[0..len). */
uint32_t seg_crc(const void *p, size_t len);
/* Set the k bits of hash h in a Bloom filter of m bits. */
void seg_bloom_add(unsigned char *bits, uint64_t m, unsigned k, uint64_t h);
/* May s hold a key of hash h?  (false: it does not) */
bool seg_bloom_may_have(const struct t4dx_seg *s, uint64_t h);
/* The most bytes a content part of rlen raw bytes takes on disk. */
uint64_t seg_cpart_bound(bool chunked, uint32_t rlen);
/* Read a key at *p (not past e) and move *p past it. */
int seg_get_key(const unsigned char **p, const unsigned char *e,
		uint64_t *parent, const char **name, uint16_t *len);
/* Is the content part of block bi compressed in chunks? */
bool seg_chunked(const struct t4dx_seg *s, const struct blkinfo *bi);
/* Record bytes besides the name (and, in version 1, the content). */
static inline size_t seg_rec_fixed(const struct t4dx_seg *s)
{
	return s->version >= SEG_VERSION ? REC_FIXED : REC_FIXED_V3;
}

/* seg_block.c */
/* Compare the key of the record at r with (parent, name, len). */
int seg_key_cmp_rec(const unsigned char *r, uint64_t parent, const char *name,
		    size_t len);
/* Has block i a payload (a content part or a vector part)? */
bool seg_has_cpart(const struct t4dx_seg *s, size_t i);
/* Block i's meta part, and its content part if cout: checked, referenced. */
int seg_parts_get(struct t4dx_seg *s, size_t i, struct block **bout,
		  struct cpart **cout);
/* Block i's vector part without its content part (a payload whose raw is
 * empty; or the whole payload, if the one-block cache holds it): checked,
 * referenced, never cached.  *vout NULL when the block has none. */
int seg_vpart_get(struct t4dx_seg *s, size_t i, struct cpart **vout);
/* Where the content of record r of block b lies in content part c. */
const unsigned char *seg_rec_content(const struct t4dx_seg *s,
				     const struct block *b,
				     const struct cpart *c, uint32_t r);
/* Decode record r of block b into out; what (T4DX_SEG_*): its content
 * and vector too (ALL), or its vector (VEC), from c (the block's payload,
 * or for VEC its vector part alone; NULL when it has none). */
int seg_rec_decode(const struct t4dx_seg *s, const struct block *b,
		   const struct cpart *c, uint32_t r, unsigned what,
		   struct t4dx_entry *out);

#endif
