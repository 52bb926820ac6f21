/*
 * qcode.h - 8-bit codes of a set of vectors, and the scan of them that
 * finds every vector that may be among the k best for a query, for an
 * index whose graph answers poorly (hnsw.cc, "scan mode").
 *
 * Vector i is kept as scale[i] * c[i], c[i] int8 in -127..127 (scale =
 * max |x_j| / 127): dim bytes and 8 more a vector, a quarter of its
 * floats.  A scan codes the query the same way, takes the integer dot
 * product with every code, and bounds how far that estimate can be from
 * the float score (rounding to the nearest code moves each value by at
 * most half a step): the vectors it returns are all those whose score
 * may reach the k-th best, so an exact rerank of them gives exactly the
 * k best.  Internal to core: hnsw.cc is its one caller.
 */
#ifndef T4DX_QCODE_H
#define T4DX_QCODE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct t4dx_qcodes;

/* A candidate of a scan: the vector's number and the most its score can
 * be. */
struct t4dx_qcand {
	uint32_t i;
	float hi;
};

/* Room for the codes of n vectors of dim values (1..4096): 0 with *out,
 * EINVAL or ENOMEM. */
int t4dx_qcodes_new(uint32_t dim, size_t n, struct t4dx_qcodes **out);
void t4dx_qcodes_free(struct t4dx_qcodes *c);
/* Code vector i (< n) from its dim finite floats x. */
void t4dx_qcodes_set(struct t4dx_qcodes *c, size_t i, const float *x);
/* Bytes of memory the codes hold. */
size_t t4dx_qcodes_bytes(const struct t4dx_qcodes *c);

/* The candidates for the k best scores (inner product with q, dim
 * finite floats) of the n vectors: every vector whose score may be among
 * the k best and may reach floor (-INFINITY: any), best bound first, in
 * *out (malloc'd, the caller frees it) and *nout.  Typically a few times
 * k; all n where the scores are too close to tell apart.  0 or ENOMEM. */
int t4dx_qcodes_scan(const struct t4dx_qcodes *c, const float *q,
		     uint32_t k, float floor, struct t4dx_qcand **out,
		     size_t *nout);

#ifdef __cplusplus
}
#endif

#endif
