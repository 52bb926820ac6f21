/*
 * index.h - the vector index of a segment: an HNSW graph (hnswlib, behind
 * the C interface of core/hnsw.cc) over the segment's vectors, each under
 * a key, the ordinal the segment maps to its item; and exact search, for
 * the memtable and for a segment whose index is missing or damaged.
 *
 * Vectors are float32 of unit L2 norm (the embedder's, or checked ones set
 * by hand); a hit's score is the inner product, the cosine, higher is
 * closer.  An index is immutable once built or loaded (but for dropping
 * its graph, below), and any number of threads may search it at once.
 * Returns are 0, a positive errno, or T4DX_ECORRUPT / T4DX_EFORMAT
 * (t4dx.h); no C++ exception gets out.
 */
#ifndef T4DX_INDEX_H
#define T4DX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct t4dx_index;

struct t4dx_index_hit {
	uint32_t key;
	float score;
};

/* Most neighbours and search breadth an index file may carry. */
#define T4DX_INDEX_M_MAX        128
#define T4DX_INDEX_EF_MAX       65536
#define T4DX_INDEX_DIM_MAX      4096

/* Build an index of n vectors, vecs[i*dim .. (i+1)*dim) under keys[i]
 * (keys distinct), with m neighbours a node (2..M_MAX) and build breadth
 * ef_construction (1..EF_MAX).  n may be 0.  0 with *out (to free with
 * t4dx_index_free), EINVAL for a bad parameter, a repeated key or a
 * number that is not finite, ENOMEM.  On the calling thread, and not
 * cheap: 10,000 vectors of dim 256 at m 16 take 2 to 8 s of one core
 * (ef_construction 50 to 200). */
int t4dx_index_build(uint32_t dim, uint32_t m, uint32_t ef_construction,
		     const uint32_t *keys, const float *vecs, size_t n,
		     struct t4dx_index **out);
void t4dx_index_free(struct t4dx_index *ix);

/* The same, one vector at a time, with no copy of all vectors besides the
 * graph's own: begin with room for at most n vectors (the parameters as
 * for build), add each (EINVAL for a key already added or a number that
 * is not finite, or past n; ENOMEM), then end, after which the index
 * is as one built; or free it.  add may be called from several threads
 * at once (distinct keys), never at the same time as end. */
int t4dx_index_begin(uint32_t dim, uint32_t m, uint32_t ef_construction,
		     size_t n, struct t4dx_index **out);
int t4dx_index_add(struct t4dx_index *ix, uint32_t key, const float *v);
void t4dx_index_end(struct t4dx_index *ix);

/* The (at most) k closest vectors to q (dim floats), best first (equal
 * scores by key), in hits[0..*nhits) (room for k).  ef: the breadth of the search
 * (the larger, the better the recall and the slower; max(ef, k) is
 * used).  0 or EINVAL (k or ef out of range), ENOMEM.  Approximate:
 * a true neighbour may be missing. */
int t4dx_index_search(const struct t4dx_index *ix, const float *q,
		      uint32_t k, uint32_t ef, struct t4dx_index_hit *hits,
		      uint32_t *nhits);
/* The same, for a caller that needs only the hits scoring at least
 * floor (the worst of the results it already holds): the search may stop
 * once every node it has left to look at scores below floor, which on a
 * segment holding nothing that near costs a few nodes' neighbours rather
 * than the whole breadth.  The hits are then the best of what it saw,
 * some of them below floor; those above are as the plain search finds
 * them but for the approximation.  Fewer than k hits (of an index
 * holding more): nothing else reaches floor, but for the approximation.
 * In scan mode (t4dx_index_tune) the hits are exactly the k best of the
 * vectors that can reach floor.  floor -INFINITY: the plain search; NaN
 * is EINVAL. */
int t4dx_index_search_above(const struct t4dx_index *ix, const float *q,
			    uint32_t k, uint32_t ef, float floor,
			    struct t4dx_index_hit *hits, uint32_t *nhits);

/* Choose how ix answers searches, by measuring: the graph's recall@10
 * at breadth ef (1..EF_MAX) on 32 of its own vectors (each a query, its
 * own key left out; the truth from the codes below, exact).  At
 * min_recall or above, the graph answers (graph mode); below, a scan of
 * 8-bit codes of every vector (dim bytes and 8 more each, kept beside
 * the graph) and an exact rerank of the few whose score may reach the k
 * best answers instead, exactly as t4dx_index_exact_search would (scan
 * mode): for vectors with no neighbourhoods (uniformly random ones),
 * where a graph needs a breadth near the count.  min_recall <= 0: graph
 * mode, nothing measured; above 1: scan mode.  An index is in graph mode
 * until tuned; the mode is not saved in the file (load, then tune).
 * 0.76 s at 100,000 vectors of dim 256 (2 cores at load 6).  0, EINVAL
 * (ef, NaN), ESTALE
 * (dropped) or ENOMEM (the mode is then unchanged).  Searches may run
 * meanwhile. */
int t4dx_index_tune(struct t4dx_index *ix, uint32_t ef, float min_recall);
enum { T4DX_INDEX_GRAPH, T4DX_INDEX_SCAN };
/* T4DX_INDEX_GRAPH or _SCAN (a dropped index: GRAPH). */
int t4dx_index_mode(const struct t4dx_index *ix);
/* The recall the last tune measured, NaN if it measured none. */
float t4dx_index_recall(const struct t4dx_index *ix);
/* How many searches of ix so far read every vector because its graph
 * mode's walk found nothing that stands out (hnsw.cc, "ISOLATED
 * NODES"). */
uint64_t t4dx_index_full_reads(const struct t4dx_index *ix);
/* Bytes of the codes of scan mode (0 in graph mode): also in
 * t4dx_index_bytes. */
size_t t4dx_index_code_bytes(const struct t4dx_index *ix);

/* Write ix as an index file into fd, a regular file open for writing
 * (from offset 0, cut to the index's length), then fdatasync it.  The
 * caller names the file: write under a temporary name, rename, fsync
 * the directory.  0 or a positive errno (the file is then garbage).
 * Through t4dx_io, so tests can fail its writes. */
int t4dx_index_save(const struct t4dx_index *ix, int fd);
/* A number saved in the file's header with the index and read back by
 * load and verify (0 unless set): t4dx's segment id, so that the index
 * file of another segment is not taken for this one's. */
void t4dx_index_set_tag(struct t4dx_index *ix, uint64_t tag);
uint64_t t4dx_index_tag(const struct t4dx_index *ix);
/* Read the index file open at fd, checking its header, checksums and
 * every field and link of the graph before it is used: a damaged or
 * forged file is an error, never a crash.  dim: the dim the file must
 * have (0: any).  0 with *out; T4DX_EFORMAT for what is not an index
 * file of this version or of this machine's layout, or of another dim;
 * T4DX_ECORRUPT for a file that fails a check; ENOMEM; an I/O errno. */
int t4dx_index_load(int fd, uint32_t dim, struct t4dx_index **out);

/* The checks of load that need no graph in memory: the header, the
 * file's length and the payload's checksum, read through a 1 MiB
 * buffer; the header's count of vectors in *count, its tag in *tag
 * (unless NULL).  For a file whose
 * graph is in memory already, loaded from it (checked whole then) or
 * built and saved here: is it still what was written?  0 or an error as
 * load's. */
int t4dx_index_verify(int fd, uint32_t dim, uint64_t *count, uint64_t *tag);

uint32_t t4dx_index_dim(const struct t4dx_index *ix);
size_t t4dx_index_count(const struct t4dx_index *ix);
/* Bytes of memory the index holds, vectors included; a search in
 * progress adds 2 bytes an item (kept for reuse by the next one). */
size_t t4dx_index_bytes(const struct t4dx_index *ix);

/* Free the graph of ix (and the codes of scan mode), the bulk of its memory (vectors included),
 * keeping ix itself, its dim and its count: for an index that searches
 * may be walking when its owner wants the memory back (the inputs of an
 * nrem, seg_index.c).  Waits for the searches under way; a search of ix
 * started from then on answers ESTALE at once (nothing in hits).  Saving
 * a dropped index is EINVAL. */
void t4dx_index_drop(struct t4dx_index *ix);
bool t4dx_index_dropped(const struct t4dx_index *ix);
/* Give the dropped ix the graph of from (of the same dim and count: in
 * practice loaded from the same file), and from's mode (its codes, its
 * measured recall: tune from before adopt); ix is then as before its drop.
 * 0 (from is freed), EINVAL (ix not dropped, or from unlike it) or
 * ENOMEM (from is then still the caller's). */
int t4dx_index_adopt(struct t4dx_index *ix, struct t4dx_index *from);

/* Exact search over n vectors vecs[i*dim ..] (keys[i], or i if keys is
 * NULL): the k best into hits (room for k), best first (equal scores by
 * key), scored exactly as t4dx_index_search scores its hits.  0 or
 * EINVAL.  About 1.6 ms for 10,000 vectors of dim 256. */
int t4dx_index_exact_search(const float *vecs, const uint32_t *keys,
			    size_t n, uint32_t dim, const float *q,
			    uint32_t k, struct t4dx_index_hit *hits,
			    uint32_t *nhits);

#ifdef __cplusplus
}
#endif

#endif
