/*
 * qcode.c - see qcode.h.
 *
 * THE BOUND.  With q' = sq * qc and x' = scale * c the coded query and
 * vector (|q_j - q'_j| <= sq / 2, |x_j - x'_j| <= scale / 2: each value
 * rounds to the nearest step, and no value is clamped, the step being
 * max |x_j| / 127),
 *
 *     q.x - q'.x' = q.(x - x') + (q - q').x'
 *     |q.x - q'.x'| <= |q|_1 * scale / 2 + sq / 2 * |x'|_1
 *
 * where |.|_1 is the sum of absolute values; |x'|_1 / 2 is kept with
 * each vector (half_l1).  The score the caller computes is a float dot
 * product, itself off the real one by at most dim * 2^-24 * sum |q_j x_j|
 * <= dim * 2^-24 * |q|_1 * 127 * scale; that is added, and a relative
 * margin for the rounding of the bound itself.  So a vector's float
 * score lies within [a - err, a + err] of its estimate a, and a vector
 * whose a + err is below the k-th best a - err of the others cannot be
 * among the k best: the scan keeps the others.  On 100,000 uniformly
 * random unit vectors of dim 256, err is about 0.02 where the 10th best
 * score is about 0.23: some hundreds of candidates.
 *
 * SPEED.  The scan reads n * stride bytes (dim rounded up to 32, zeros
 * past dim): 25.6 MB at 100,000 vectors of dim 256, about 1.2 ms with
 * AVX2 on the 2-core machine of the bench (memory bound: AVX-512 VNNI
 * measured no faster).  The AVX2 kernel is chosen at run time, as
 * hnsw.cc does for float distances; else a portable loop.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "qcode.h"

#define STEP 32                 /* codes and query padded to a multiple */

struct vinfo {
	float scale;            /* x ~ scale * c */
	float half_l1;          /* scale * sum |c_j| / 2 */
};

struct t4dx_qcodes {
	uint32_t dim, stride;
	size_t n;
	int8_t *codes;          /* n * stride, zeros past dim */
	struct vinfo *info;     /* n */
};

int t4dx_qcodes_new(uint32_t dim, size_t n, struct t4dx_qcodes **out)
{
	if (dim < 1 || dim > T4DX_INDEX_DIM_MAX || n >= UINT32_MAX)
		return EINVAL;
	struct t4dx_qcodes *c = calloc(1, sizeof(*c));
	if (!c)
		return ENOMEM;
	c->dim = dim;
	c->stride = (dim + STEP - 1) / STEP * STEP;
	c->n = n;
	size_t bytes = (n ? n : 1) * c->stride;
	c->codes = aligned_alloc(STEP, bytes);
	c->info = calloc(n ? n : 1, sizeof(*c->info));
	if (!c->codes || !c->info) {
		t4dx_qcodes_free(c);
		return ENOMEM;
	}
	memset(c->codes, 0, bytes);
	*out = c;
	return 0;
}

void t4dx_qcodes_free(struct t4dx_qcodes *c)
{
	if (!c)
		return;
	free(c->codes);
	free(c->info);
	free(c);
}

size_t t4dx_qcodes_bytes(const struct t4dx_qcodes *c)
{
	return sizeof(*c) + c->n * (c->stride + sizeof(*c->info));
}

/* x (dim values) as codes into out (stride bytes, zeros past dim); its
 * step, and the L1 norm of the codes. */
static float code_one(const float *x, uint32_t dim, uint32_t stride,
		      int8_t *out, uint32_t *l1)
{
	float m = 0;
	for (uint32_t j = 0; j < dim; j++)
		m = fmaxf(m, fabsf(x[j]));
	memset(out, 0, stride);
	*l1 = 0;
	if (m == 0)
		return 0;
	float inv = 127.0f / m;
	for (uint32_t j = 0; j < dim; j++) {
		long v = lrintf(x[j] * inv);
		v = v > 127 ? 127 : v < -127 ? -127 : v;
		out[j] = (int8_t)v;
		*l1 += (uint32_t)labs(v);
	}
	return m / 127.0f;
}

void t4dx_qcodes_set(struct t4dx_qcodes *c, size_t i, const float *x)
{
	uint32_t l1;
	float s = code_one(x, c->dim, c->stride, c->codes + i * c->stride, &l1);
	c->info[i].scale = s;
	c->info[i].half_l1 = s * (float)l1 / 2;
}

/* ---- the integer dot products ----------------------------------------- */

typedef void (*dots_fn)(const int8_t *codes, size_t n, uint32_t stride,
			const int8_t *q, int32_t *out);

static void dots_plain(const int8_t *codes, size_t n, uint32_t stride,
		       const int8_t *q, int32_t *out)
{
	for (size_t i = 0; i < n; i++) {
		const int8_t *x = codes + i * stride;
		int32_t s = 0;
		for (uint32_t j = 0; j < stride; j++)
			s += (int32_t)q[j] * x[j];
		out[i] = s;
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* maddubs multiplies unsigned by signed bytes: |q| by x with q's sign,
 * pairs summed into 16 bits (at most 2 * 127 * 127, no saturation). */
__attribute__((target("avx2")))
static void dots_avx2(const int8_t *codes, size_t n, uint32_t stride,
		      const int8_t *q, int32_t *out)
{
	const __m256i ones = _mm256_set1_epi16(1);
	for (size_t i = 0; i < n; i++) {
		const int8_t *x = codes + i * stride;
		__m256i acc = _mm256_setzero_si256();
		for (uint32_t j = 0; j < stride; j += 32) {
			__m256i a = _mm256_loadu_si256((const __m256i *)(q + j));
			__m256i b = _mm256_loadu_si256((const __m256i *)(x + j));
			__m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(a),
							 _mm256_sign_epi8(b, a));
			acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
		}
		__m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc),
					  _mm256_extracti128_si256(acc, 1));
		s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
		s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
		out[i] = _mm_cvtsi128_si32(s);
	}
}
#endif

static dots_fn pick_dots(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (__builtin_cpu_supports("avx2"))
		return dots_avx2;
#endif
	return dots_plain;
}

/* ---- the scan ------------------------------------------------------------ */

/* A min-heap of the k best lower bounds: its top is the k-th best. */
static void lo_push(float *h, uint32_t *n, uint32_t k, float v)
{
	size_t i;
	if (*n == k) {
		if (v <= h[0])
			return;
		/* replace the top, sift down */
		i = 0;
		for (;;) {
			size_t l = 2 * i + 1, r = l + 1, m = i;
			float mv = v;
			if (l < k && h[l] < mv)
				m = l, mv = h[l];
			if (r < k && h[r] < mv)
				m = r;
			if (m == i)
				break;
			h[i] = h[m];
			i = m;
		}
		h[i] = v;
		return;
	}
	i = (*n)++;
	while (i && h[(i - 1) / 2] > v) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = v;
}

static int by_hi(const void *pa, const void *pb)
{
	const struct t4dx_qcand *a = pa, *b = pb;
	if (a->hi != b->hi)
		return a->hi > b->hi ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* Keep the candidates that can still reach thr. */
static size_t cut(struct t4dx_qcand *c, size_t n, float thr)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		if (c[i].hi >= thr)
			c[o++] = c[i];
	return o;
}

#define BATCH 256               /* vectors whose dots are taken at once */

int t4dx_qcodes_scan(const struct t4dx_qcodes *c, const float *q,
		     uint32_t k, float floor, struct t4dx_qcand **out,
		     size_t *nout)
{
	dots_fn dots = pick_dots();
	*out = NULL;
	*nout = 0;
	if (!k || !c->n)
		return 0;
	if (k > c->n)
		k = (uint32_t)c->n;

	int8_t *qc = aligned_alloc(STEP, c->stride);
	float *lo = malloc(k * sizeof(*lo));
	size_t cap = (size_t)k * 4 + 64, ncand = 0;
	struct t4dx_qcand *cand = malloc(cap * sizeof(*cand));
	if (!qc || !lo || !cand) {
		free(qc);
		free(lo);
		free(cand);
		return ENOMEM;
	}
	/* A tiny query (a vector set by hand) is coded and estimated at
	 * 2^e times its length, exactly (a power of two), and the bounds
	 * scaled back by down1 * down2: else 127 / max overflows, or the
	 * steps are subnormal and their product underflows.  Each score
	 * the caller takes may also underflow, and a scaled bound round,
	 * by a subnormal step: dim + 2 of them are added (sub, nothing
	 * beside a normal score). */
	float qmax = 0;
	for (uint32_t j = 0; j < c->dim; j++)
		qmax = fmaxf(qmax, fabsf(q[j]));
	int e = 0;
	if (qmax > 0 && qmax < 0x1p-60f) {
		(void)frexpf(qmax, &e);
		e = -e;                 /* qmax * 2^e in [0.5, 1) */
	}
	float *qs = NULL;
	if (e) {
		qs = malloc(c->dim * sizeof(*qs));
		if (!qs) {
			free(qc);
			free(lo);
			free(cand);
			return ENOMEM;
		}
		for (uint32_t j = 0; j < c->dim; j++)
			qs[j] = ldexpf(q[j], e);
		q = qs;
	}
	float down1 = ldexpf(1, -(e < 126 ? e : 126));
	float down2 = ldexpf(1, -(e < 126 ? 0 : e - 126));
	float sub = (float)(c->dim + 2) * 0x1p-149f;
	uint32_t l1q_codes;
	float sq = code_one(q, c->dim, c->stride, qc, &l1q_codes);
	double l1q = 0;
	for (uint32_t j = 0; j < c->dim; j++)
		l1q += fabs((double)q[j]);
	free(qs);
	/* the coding of x, and the float dot product the caller takes
	 * (see THE BOUND) */
	float hq = (float)(l1q * (0.5 + (double)c->dim * 127.0 * 0x1p-23));
	const float rel = 1 + 1e-5f;

	int32_t dot[BATCH];
	uint32_t nlo = 0;
	float thr = floor;
	for (size_t b = 0; b < c->n; b += BATCH) {
		size_t m = c->n - b < BATCH ? c->n - b : BATCH;
		dots(c->codes + b * c->stride, m, c->stride, qc, dot);
		for (size_t j = 0; j < m; j++) {
			const struct vinfo *v = &c->info[b + j];
			float a = sq * v->scale * (float)dot[j];
			float err = (v->scale * hq + sq * v->half_l1) * rel +
				    1e-6f * fabsf(a);
			float hi = a + err, low = a - err;
			if (e) {
				hi = hi * down1 * down2;
				low = low * down1 * down2;
			}
			hi += sub;
			low -= sub;
			if (hi < thr)
				continue;
			if (ncand == cap) {
				ncand = cut(cand, ncand, thr);
				if (ncand > cap / 2) {
					struct t4dx_qcand *nc = realloc(
						cand, 2 * cap * sizeof(*cand));
					if (!nc) {
						free(qc);
						free(lo);
						free(cand);
						return ENOMEM;
					}
					cand = nc;
					cap *= 2;
				}
			}
			cand[ncand++] = (struct t4dx_qcand){ (uint32_t)(b + j),
							     hi };
			lo_push(lo, &nlo, k, low);
			if (nlo == k && lo[0] > thr)
				thr = lo[0];
		}
	}
	ncand = cut(cand, ncand, thr);
	qsort(cand, ncand, sizeof(*cand), by_hi);
	free(qc);
	free(lo);
	*out = cand;
	*nout = ncand;
	return 0;
}
