/*
 * seg.h - immutable segment files (DATA_DIR/seg/<id>.t4s): blocks of
 * entries sorted by key, each an LZ4-compressed meta part (keys and stat
 * fields) and content part, a block index, a Bloom filter and a footer
 * with CRCs.  The format (version 3; versions 1 and 2 are still read) is
 * described at the top of seg.c.
 *
 * An open segment is reference counted and safe to read from many threads.
 */
#ifndef T4DX_SEG_H
#define T4DX_SEG_H

#include <stdbool.h>
#include <stdint.h>

#include "t4dx.h"

struct t4dx_seg;
struct t4dx_seg_iter;
struct t4dx_seg_writer;

/* Write entries[0..n) (sorted by key, unique keys, tombstones included)
 * to path, fsync it, and close it.  The directory is not fsync'ed.
 * Returns 0 or a positive errno; a partial file is unlinked. */
int t4dx_seg_write(const char *path, struct t4dx_entry *const *entries,
		   size_t n, uint64_t min_lsn, uint64_t max_lsn);

/* The same, one entry at a time, so that the entries never need to be in
 * memory together.  open creates (truncates) path and writes the header;
 * n_hint, an upper bound on the number of entries, sizes the Bloom filter.
 * add copies what it needs of e (e need only be valid during the call) and
 * checks it as t4dx_seg_write checks its entries: EINVAL for a bad name,
 * a content whose length is not size, or a key not above the previous one
 * (EFBIG for too large a content).  The first failure sticks: later adds
 * and finish return it.  finish writes the rest, fsyncs and closes; the
 * footer holds the count and the min and max LSN of the entries added;
 * *count (may be NULL) is that count.  finish with no entry added is
 * EINVAL.  finish and abort free w; on any failure, and on abort, the file
 * is unlinked.  All return 0 or a positive errno. */
int t4dx_seg_writer_open(const char *path, uint64_t n_hint,
			 struct t4dx_seg_writer **out);
int t4dx_seg_writer_add(struct t4dx_seg_writer *w,
			const struct t4dx_entry *e);
int t4dx_seg_writer_finish(struct t4dx_seg_writer *w, uint64_t *count);
void t4dx_seg_writer_abort(struct t4dx_seg_writer *w);   /* NULL-safe */

/* Open a segment: read and check the footer, block index and Bloom filter
 * (T4DX_ECORRUPT / T4DX_EFORMAT on damage).  refs = 1. */
int t4dx_seg_open(const char *path, uint64_t id, struct t4dx_seg **out);
struct t4dx_seg *t4dx_seg_ref(struct t4dx_seg *s);
void t4dx_seg_unref(struct t4dx_seg *s);   /* closes at zero, NULL-safe */

uint64_t t4dx_seg_id(const struct t4dx_seg *s);
uint64_t t4dx_seg_count(const struct t4dx_seg *s);     /* entries */
uint64_t t4dx_seg_file_bytes(const struct t4dx_seg *s);
uint64_t t4dx_seg_min_lsn(const struct t4dx_seg *s);
uint64_t t4dx_seg_max_lsn(const struct t4dx_seg *s);
const char *t4dx_seg_path(const struct t4dx_seg *s);
/* Can s hold vectors (format version 4 on)? */
bool t4dx_seg_has_vectors(const struct t4dx_seg *s);

/* Whether key (parent, name) may be in s, from what is in memory (the
 * Bloom filter and the block index), without a read: false means it is
 * not. */
bool t4dx_seg_may_have(const struct t4dx_seg *s, uint64_t parent,
		       const char *name, size_t name_len);
/* Find key.  0 with *out filled (maybe a tombstone), T4DX_ENOTFOUND, or an
 * error (T4DX_ECORRUPT if a part of the block it reads fails its checks,
 * errno on I/O error).  what (T4DX_SEG_*, below): T4DX_SEG_ALL also loads
 * the content blob and the vector, and the block's payload with them;
 * T4DX_SEG_VEC the vector, and the block's vector part alone;
 * T4DX_SEG_META only the meta part is read. */
int t4dx_seg_get(struct t4dx_seg *s, uint64_t parent, const char *name,
		 size_t name_len, unsigned what, struct t4dx_entry *out);

/* What a read of a record decodes (the what of iter_next and get_nth;
 * a bool with_content there is META or ALL): the record alone (META: the
 * meta part only is read); its content and vector too (ALL); or its
 * vector alone (VEC: the meta and vector parts are read, the content
 * part never is, so that scoring the vectors of large files costs what
 * their vectors do; a vector part that fails its checks leaves the
 * entry without, as for ALL). */
#define T4DX_SEG_META 0u
#define T4DX_SEG_ALL  1u
#define T4DX_SEG_VEC  2u

/* Iterate entries in key order starting at the first key >= (parent,
 * name) (name may be "" with len 0).  next returns 0 with *out filled,
 * T4DX_ENOTFOUND at the end, or an error; what: T4DX_SEG_*. */
int t4dx_seg_iter_open(struct t4dx_seg *s, uint64_t parent, const char *name,
		       size_t name_len, struct t4dx_seg_iter **out);
int t4dx_seg_iter_next(struct t4dx_seg_iter *it, unsigned what,
		       struct t4dx_entry *out);
/* Load the content and vector of the entry the last next returned
 * without them into out (which must be that entry): a merge reads only
 * the version it keeps.  0 or an error as for get. */
int t4dx_seg_iter_content(struct t4dx_seg_iter *it, struct t4dx_entry *out);
void t4dx_seg_iter_close(struct t4dx_seg_iter *it);

/* Read both parts of every block from disk and check their CRCs and
 * decoding.  0, T4DX_ECORRUPT or an errno. */
int t4dx_seg_verify(struct t4dx_seg *s);
/* The same for a slice: blocks from *next on, until max_bytes of them
 * were read (at least one block); *next moves past them.  Done when
 * *next == t4dx_seg_blocks(s). */
int t4dx_seg_verify_some(struct t4dx_seg *s, size_t *next,
			 uint64_t max_bytes);
/* What a damaged segment still holds: every entry (with its content) of
 * each block whose meta and content parts read back whole and pass their
 * checks, in key order, to fn, which owns the entry's content reference
 * from then on; *lost counts the blocks that did not, and those with a
 * record that does not decode (whose other records are passed on).  A
 * block whose vector part alone is damaged is kept, its entries without
 * vectors (see t4dx_seg_vec_lost).  0, ENOMEM, or what fn returned. */
int t4dx_seg_salvage(struct t4dx_seg *s,
		     int (*fn)(void *arg, struct t4dx_entry *e), void *arg,
		     size_t *lost);
size_t t4dx_seg_blocks(const struct t4dx_seg *s);

/* Record ord (0 .. count-1, in key order, as the writer added them: the
 * key a segment's vector index gives each vector).  As t4dx_seg_get;
 * T4DX_ENOTFOUND past the end. */
int t4dx_seg_get_nth(struct t4dx_seg *s, uint64_t ord, unsigned what,
		     struct t4dx_entry *out);

/* A directory a segment holds: its key and inode. */
struct t4dx_seg_dir {
	uint64_t parent, ino;
	uint16_t name_len;
	char name[T4DX_NAME_MAX + 1];
};
/* The directories s holds (tombstones left out), in key order: read by
 * one pass over its meta parts at the first call, then kept with s.
 * *dirs stays valid while the caller holds a reference to s.  0 or the
 * error of that pass. */
int t4dx_seg_dirs(struct t4dx_seg *s, const struct t4dx_seg_dir **dirs,
		  size_t *n);

/* The vector index kept with an open segment (index.h), loaded lazily by
 * the engine: its state (T4DX_SEG_IX_*) and the index (NULL unless
 * LOADED), read together.  set installs ix (may be NULL) and state; s
 * owns ix from then on and frees it when it closes.  A loaded index is
 * never replaced (searches may be walking it): set then frees ix and
 * changes nothing. */
enum {
	T4DX_SEG_IX_UNKNOWN,    /* not looked for yet */
	T4DX_SEG_IX_NONE,       /* none wanted: too few entries */
	T4DX_SEG_IX_LOADED,
	T4DX_SEG_IX_BAD,        /* missing or damaged: search reads vectors */
	T4DX_SEG_IX_LOADING,    /* claimed: its claimer loads it */
};
struct t4dx_index;
int t4dx_seg_index_get(struct t4dx_seg *s, struct t4dx_index **ix);
void t4dx_seg_index_set(struct t4dx_seg *s, struct t4dx_index *ix, int state);
/* UNKNOWN to LOADING, if s is UNKNOWN and not held: true if this caller
 * claimed the load, which it ends with a set (UNKNOWN again if it gave
 * up).  One load at a time, so that concurrent first searches do not
 * each load a copy (seconds and 150 MB each at 100,000 vectors). */
bool t4dx_seg_index_claim(struct t4dx_seg *s);
/* Wait while s is LOADING, then as get. */
int t4dx_seg_index_wait(struct t4dx_seg *s, struct t4dx_index **ix);
/* While held (an nrem or prune of s builds its output's index), no
 * graph of s is to be loaded: searches read it whole. */
void t4dx_seg_index_hold(struct t4dx_seg *s, bool held);
bool t4dx_seg_index_held(struct t4dx_seg *s);
/* Whether a read (or salvage) found a vector part damaged and gave its
 * block's entries without their vectors.  The vectors are derived data
 * or hand-set extras: content and attributes are not held back for them;
 * verify still reports such a block as damage. */
bool t4dx_seg_vec_lost(const struct t4dx_seg *s);
/* Where block i begins in the file (for a damage report). */
uint64_t t4dx_seg_block_offset(const struct t4dx_seg *s, size_t i);
/* Where the vector part of block i lies in the file: *off, *len (0 when
 * the block has none).  EINVAL for no such block. */
int t4dx_seg_vpart_range(const struct t4dx_seg *s, size_t i, uint64_t *off,
			 uint64_t *len);

#endif
