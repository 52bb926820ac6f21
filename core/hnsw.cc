/*
 * hnsw.cc - see index.h.  The one C++ file of core: hnswlib (0.6, header
 * only) builds and searches the graph; this file gives it a C interface,
 * its own file format, and checks a file completely before any of the
 * library's code walks it.  No exception leaves a function of index.h.
 *
 * INDEX FILE.  A 64-byte header, little-endian, then the payload:
 *
 *    0  8  magic "T4DXHNSW"
 *    8  4  format version, 1
 *   12  4  header length, 64
 *   16  4  dim (1..T4DX_INDEX_DIM_MAX)
 *   20  4  M (2..T4DX_INDEX_M_MAX)
 *   24  4  ef_construction (1..T4DX_INDEX_EF_MAX)
 *   28  4  layout of the payload: host_layout() of the machine that wrote
 *          it (the payload is in its byte order and word size)
 *   32  8  count of vectors
 *   40  8  payload length in bytes
 *   48  4  CRC-32 (zlib) of the payload
 *   52  8  tag: the caller's (t4dx names the segment by its id), 0 in
 *          files written before there was one (taken as any)
 *   60  4  CRC-32 of bytes 0..59
 *
 * The payload is what hnswlib 0.6's saveIndex() writes, in the host's
 * byte order: 96 bytes of parameters (offsetLevel0_, max_elements_,
 * cur_element_count, size_data_per_element_, label_offset_, offsetData_
 * as size_t; maxlevel_ as int; enterpoint_node_ as uint32; maxM_, maxM0_,
 * M_ as size_t; mult_ as double; ef_construction_ as size_t), count
 * level-0 records of size_data_per_element_ bytes (a link count in a
 * 16-bit word, a zero flag byte and a zero byte, maxM0_ links of 4
 * bytes, dim floats, the key as size_t), then for each vector in order
 * a uint32 length and that many bytes of links of its upper levels (a
 * multiple of the size of one level's list: count word, maxM_ links).
 * The library's own loader could read it, after the header is cut off.
 *
 * VALID.  The header CRC and fields first (another magic, version or
 * layout, or another dim than the caller's, is T4DX_EFORMAT; the rest
 * T4DX_ECORRUPT), the file length (header + payload, exactly), the
 * payload CRC as it is read, then the graph: every parameter equal to
 * what dim and M give, every link to an existing vector that has the
 * level of the link, every list no longer than its capacity, no deleted
 * flag, an entry point at the top level, finite vectors, distinct keys
 * that fit in 32 bits.  hnswlib trusts its input; after these checks a
 * search cannot read outside what was allocated.
 *
 * The loader fills the library's structures itself (the library can read
 * only from a path and checks little), so it depends on the members of
 * hnswlib 0.6's HierarchicalNSW; another hnswlib changing them fails
 * to compile or fails the parameter checks, never silently.  hnswlib.h
 * defines functions that are not inline: no other file may include it.
 *
 * SCAN MODE.  A graph finds near vectors where the vectors have
 * neighbourhoods; uniformly random ones have none, and a graph of 100,000
 * of them at breadth 256 finds 55% of the true 10 best.  t4dx_index_tune
 * measures the recall of the graph on its own vectors and, below the
 * caller's minimum, keeps 8-bit codes of them (qcode.c): searches then
 * scan the codes and score exactly, with the graph's float vectors, every
 * vector the codes cannot rule out.  The mode is not in the file.
 *
 * ISOLATED NODES.  A walk moves towards nodes more like the query; it
 * cannot find a node unlike all others (a note on a subject no other
 * shares), whose neighbours are no more like the query than any node
 * is: its own text as a query missed it at breadth 256 on a segment of
 * 1,923 notes.  So tune also takes the score of a typical unrelated
 * pair (the 90th percentile of 4,096 pairs drawn at random: bg) and
 * keeps the nodes whose nearest linked neighbour scores below it; in
 * graph mode a search scores those exactly besides the walk, and reads
 * the whole graph's vectors when the walk found nothing above bg
 * (unless the caller's floor is above bg: what it needs is then far
 * from a typical pair, where the walk has a way in) nor clearly above
 * what this query's own background is.  The latter is the 90th
 * percentile of its scores against GUARD_PROBES nodes spread over the
 * graph (qbg); "clearly" is half the gap between a node's typical
 * nearest link and bg (the median of the nodes' best links, less bg).
 * So a query less alike the stored vectors than they are alike each
 * other (query and passage embeddings of one model: all share a common
 * direction, the queries less of it), whose every score is below bg,
 * is not read whole when its walk found a neighbourhood standing out
 * of its own background as neighbours stand out of bg; a query that
 * found nothing standing out as much (a lone pair of notes no walk
 * reaches: its best is a note sharing a word, a little above the rest)
 * still is.
 *
 * UNDER ADDRESSSANITIZER the library is built without its SSE code.
 * While inserting, hnswlib 0.6.2 computes a prefetch address from the
 * link after the last one of a list (searchBaseLayer), which for a full
 * list of a node's top level reads up to 3 bytes past that list's block
 * (allocated with 1 byte of slack, and within what malloc rounds up to,
 * so harmless in practice; the level-0 lists that searches walk are
 * followed by the vector).  Only the SSE code has that prefetch, and
 * without it the sanitizer checks everything else.  Loaded and searched
 * graphs never reach it: searches here walk upper levels without
 * prefetching.
 */
#if defined(__SANITIZE_ADDRESS__)
#define NO_MANUAL_VECTORIZATION
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_MANUAL_VECTORIZATION
#endif
#endif
#include <hnswlib/hnswlib.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <new>
#include <queue>
#include <shared_mutex>
#include <stdexcept>
#include <vector>

extern "C" {
#include "io.h"
}
#include "index.h"
#include "qcode.h"

/* t4dx.h is C only (stdatomic.h); its codes, as test_index checks. */
#define T4DX_ECORRUPT   (-2)
#define T4DX_EFORMAT    (-4)

typedef hnswlib::HierarchicalNSW<float> graph_t;
typedef hnswlib::tableint node_t;

/*
 * LEVELS.  hnswlib 0.6.2 draws the random level of a new node from one
 * generator per graph (level_generator_) without a lock, and the two
 * threads of a segment's build (seg_index.c) add nodes at once: a data
 * race (ThreadSanitizer), whose draws could repeat, so that the levels,
 * the upper lists' bytes and the file's size changed from one build of
 * the same vectors to the next.  The library's draw is a plain member
 * function of the class template: this explicit specialization for our
 * graph type, seen before any use of it, replaces it with the same draw
 * under a lock (a few nanoseconds a node, next to the node's insert).
 * The levels are then the generator's first draws, whichever thread
 * takes which; only the graph's links vary with the interleaving.  One
 * race of the library is left, which no specialization short of a copy
 * of addPoint can close: an insert reads enterpoint_node_ after it let
 * go of the lock (global) under which an insert of a node of a new top
 * level writes it.  That read gets the old entry point or the new one,
 * each a node in place with its lists under their own locks (a 4-byte
 * aligned word: never torn on the machines this runs on), so a walk
 * starts from one or the other; ThreadSanitizer reports it, at most once
 * a build that makes a new top level (test_index's two-thread builds).
 */
static std::mutex level_mu;

namespace hnswlib {
template <>
int HierarchicalNSW<float>::getRandomLevel(double reverse_size)
{
	std::uniform_real_distribution<double> unit(0.0, 1.0);
	double u;
	{
		std::lock_guard<std::mutex> hold(level_mu);
		u = unit(level_generator_);
	}
	return (int)(-std::log(u) * reverse_size);
}
}

static const char MAGIC[8] = { 'T', '4', 'D', 'X', 'H', 'N', 'S', 'W' };
enum { FORMAT_VERSION = 1, HDR_LEN = 64, PARAMS_LEN = 96 };

/* The distance of the graph, 1 - <a, b>.  hnswlib chooses its SIMD code
 * when it is compiled: SSE for a build that must run on any x86-64, AVX
 * only under -mavx.  A search spends most of its time there (58% of a
 * daemon answering search/@ID at 100,000 items, perf), so this space
 * chooses at run time: AVX-512 or AVX2 with FMA where the CPU has them,
 * else hnswlib's own.  Only the rounding of the sum differs. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx512f")))
static float ip_dist_avx512(const void *a, const void *b, const void *p)
{
	size_t n = *(const size_t *)p, i = 0;
	const float *x = (const float *)a, *y = (const float *)b;
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();

	for (; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i),
				     _mm512_loadu_ps(y + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16),
				     _mm512_loadu_ps(y + i + 16), s1);
	}
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i),
				     _mm512_loadu_ps(y + i), s0);
	/* (GCC 12's _mm512_reduce_add_ps warns of an undefined value) */
	float t[16], r = 0;
	_mm512_storeu_ps(t, _mm512_add_ps(s0, s1));
	for (int j = 0; j < 16; j++)
		r += t[j];
	for (; i < n; i++)
		r += x[i] * y[i];
	return 1.0f - r;
}

__attribute__((target("avx2,fma")))
static float ip_dist_avx2(const void *a, const void *b, const void *p)
{
	size_t n = *(const size_t *)p, i = 0;
	const float *x = (const float *)a, *y = (const float *)b;
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();

	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i),
				     _mm256_loadu_ps(y + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8),
				     _mm256_loadu_ps(y + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i),
				     _mm256_loadu_ps(y + i), s0);
	__m256 s = _mm256_add_ps(s0, s1);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(s),
			      _mm256_extractf128_ps(s, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
	float r = _mm_cvtss_f32(h);
	for (; i < n; i++)
		r += x[i] * y[i];
	return 1.0f - r;
}
#endif

class ip_space : public hnswlib::SpaceInterface<float> {
public:
	explicit ip_space(size_t dim) : dim_(dim), lib_(dim)
	{
		dist_ = lib_.get_dist_func();
#if defined(__x86_64__) && defined(__GNUC__)
		if (__builtin_cpu_supports("avx512f"))
			dist_ = ip_dist_avx512;
		else if (__builtin_cpu_supports("avx2") &&
			 __builtin_cpu_supports("fma"))
			dist_ = ip_dist_avx2;
#endif
	}
	size_t get_data_size() override { return dim_ * sizeof(float); }
	hnswlib::DISTFUNC<float> get_dist_func() override { return dist_; }
	void *get_dist_func_param() override { return &dim_; }

private:
	size_t dim_;
	hnswlib::InnerProductSpace lib_;
	hnswlib::DISTFUNC<float> dist_;
};

struct t4dx_index {
	ip_space *space;                        /* outlives g, which uses it */
	graph_t *g;             /* NULL once dropped */
	uint32_t dim, m, efc;
	size_t count;
	size_t link_bytes;      /* of the upper levels' lists */
	uint64_t tag;           /* the file's (t4dx_index_set_tag) */
	/* Dropping the graph while searches walk it: a search holds use
	 * shared, t4dx_index_drop takes it exclusive to free the graph.
	 * gone is set first, so that searches arriving meanwhile answer
	 * at once instead of keeping the lock shared (glibc prefers
	 * readers: a steady stream of searches would hold off the drop). */
	mutable std::shared_mutex use;
	std::atomic<bool> gone;
	/* Scan mode (t4dx_index_tune): the 8-bit codes of the graph's
	 * vectors, by node, searched instead of the graph; NULL in graph
	 * mode.  Set before the index is shared, freed with the graph. */
	t4dx_qcodes *codes;
	float recall;           /* the graph's, measured by tune; NaN: not */
	/* Graph mode's guard (tune; see "ISOLATED NODES" above): the
	 * nodes scored exactly at every search, and the score of a
	 * typical unrelated pair, below which a walk has found nothing;
	 * NaN: no guard (not tuned). */
	std::vector<node_t> *iso;
	float bg;
	float gap;              /* median best link less bg; NaN with bg */
	/* searches that read every vector (the guard's fallback) */
	mutable std::atomic<uint64_t> full_reads;
};

/* ---- helpers ---------------------------------------------------------- */

static uint32_t host_layout(void)
{
	const uint16_t one = 1;
	unsigned char lo;

	memcpy(&lo, &one, 1);
	return (uint32_t)(sizeof(size_t) | sizeof(hnswlib::labeltype) << 8 |
			  sizeof(node_t) << 16) | (lo ? 0 : 1u << 31);
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const unsigned char *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* zlib's crc32 takes a uInt length. */
static uint32_t crc_update(uint32_t crc, const void *p, size_t len)
{
	const Bytef *b = (const Bytef *)p;

	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = (uint32_t)crc32(crc, b, n);
		b += n;
		len -= n;
	}
	return crc;
}

/* The error code of an exception from the library or the C++ runtime:
 * the library reports a failed malloc as a runtime_error about memory. */
static int exception_rc(void)
{
	try {
		throw;
	} catch (const std::bad_alloc &) {
		return ENOMEM;
	} catch (const std::exception &e) {
		return strstr(e.what(), "Not enough memory") ? ENOMEM : EIO;
	} catch (...) {
		return EIO;
	}
}

/* The index never changes after build or load: drop what only insertion
 * and updates use (one mutex a node, 65536 update mutexes, the map from
 * keys to nodes: about 3 MiB for 10,000 vectors). */
static void settle(struct t4dx_index *ix)
{
	graph_t *g = ix->g;

	std::vector<std::mutex>().swap(g->link_list_locks_);
	std::vector<std::mutex>().swap(g->link_list_update_locks_);
	std::unordered_map<hnswlib::labeltype, node_t>().swap(g->label_lookup_);
	ix->link_bytes = 0;
	for (size_t i = 0; i < g->cur_element_count; i++)
		ix->link_bytes += (size_t)g->element_levels_[i] *
				  g->size_links_per_element_;
	ix->count = g->cur_element_count;
}

/* A new index shell with its space and an empty graph sized for n. */
static int make_index(uint32_t dim, uint32_t m, uint32_t efc, size_t n,
		      struct t4dx_index **out)
{
	struct t4dx_index *ix = new (std::nothrow) t4dx_index();

	if (!ix)
		return ENOMEM;
	ix->dim = dim;
	ix->m = m;
	ix->efc = efc;
	ix->gone.store(false);
	ix->codes = NULL;
	ix->recall = NAN;
	ix->iso = NULL;
	ix->bg = NAN;
	ix->gap = NAN;
	ix->full_reads.store(0);
	try {
		ix->space = new ip_space(dim);
		ix->g = new graph_t(ix->space, std::max<size_t>(n, 1), m, efc);
	} catch (...) {
		int rc = exception_rc();
		t4dx_index_free(ix);
		return rc;
	}
	*out = ix;
	return 0;
}

static float dot(const float *a, const float *b, uint32_t dim)
{
	float s[8] = { 0 };
	uint32_t i, j;

	for (i = 0; i + 8 <= dim; i += 8)
		for (j = 0; j < 8; j++)
			s[j] += a[i + j] * b[i + j];
	for (j = 0; i < dim; i++, j++)
		s[j] += a[i] * b[i];
	return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static bool hit_before(const t4dx_index_hit &a, const t4dx_index_hit &b)
{
	return a.score > b.score || (a.score == b.score && a.key < b.key);
}

/* ---- build, search, free ------------------------------------------------ */

int t4dx_index_build(uint32_t dim, uint32_t m, uint32_t ef_construction,
		     const uint32_t *keys, const float *vecs, size_t n,
		     struct t4dx_index **out)
{
	struct t4dx_index *ix;
	int rc;

	if (dim < 1 || dim > T4DX_INDEX_DIM_MAX || m < 2 ||
	    m > T4DX_INDEX_M_MAX || ef_construction < 1 ||
	    ef_construction > T4DX_INDEX_EF_MAX || n >= UINT32_MAX ||
	    (n && (!keys || !vecs)))
		return EINVAL;
	for (size_t i = 0; i < n * dim; i++)
		if (!std::isfinite(vecs[i]))
			return EINVAL;
	rc = make_index(dim, m, ef_construction, n, &ix);
	if (rc)
		return rc;
	try {
		for (size_t i = 0; i < n; i++)
			ix->g->addPoint(vecs + i * dim, keys[i]);
	} catch (...) {
		rc = exception_rc();
	}
	/* a repeated key updates the first one's vector */
	if (!rc && ix->g->cur_element_count != n)
		rc = EINVAL;
	if (rc) {
		t4dx_index_free(ix);
		return rc;
	}
	settle(ix);
	*out = ix;
	return 0;
}

int t4dx_index_begin(uint32_t dim, uint32_t m, uint32_t ef_construction,
		     size_t n, struct t4dx_index **out)
{
	if (dim < 1 || dim > T4DX_INDEX_DIM_MAX || m < 2 ||
	    m > T4DX_INDEX_M_MAX || ef_construction < 1 ||
	    ef_construction > T4DX_INDEX_EF_MAX || n >= UINT32_MAX)
		return EINVAL;
	/* the graph takes the room of n vectors as address space: a page
	 * is touched only once a vector is added to it */
	return make_index(dim, m, ef_construction, n, out);
}

int t4dx_index_add(struct t4dx_index *ix, uint32_t key, const float *v)
{
	for (uint32_t d = 0; d < ix->dim; d++)
		if (!std::isfinite(v[d]))
			return EINVAL;
	graph_t *g = ix->g;
	try {
		/* a key already in holds its first vector: the library would
		 * replace it, which is not what a new key means */
		{
			std::unique_lock<std::mutex> l(g->cur_element_count_guard_);
			if (g->label_lookup_.count(key) ||
			    g->cur_element_count >= g->max_elements_)
				return EINVAL;
		}
		g->addPoint(v, key);
	} catch (...) {
		return exception_rc();
	}
	return 0;
}

void t4dx_index_end(struct t4dx_index *ix)
{
	settle(ix);
}

void t4dx_index_free(struct t4dx_index *ix)
{
	if (!ix)
		return;
	t4dx_qcodes_free(ix->codes);
	delete ix->iso;
	delete ix->g;
	delete ix->space;
	delete ix;
}

/* A node met by a search, and its distance to the query. */
struct near {
	float d;
	node_t id;
};

struct farther_first {
	bool operator()(const near &a, const near &b) const
	{
		return a.d < b.d;
	}
};

struct nearer_first {
	bool operator()(const near &a, const near &b) const
	{
		return a.d > b.d;
	}
};

/*
 * The bounded search of level 0 from node ep (the same walk as hnswlib's
 * searchBaseLayerST): the ef nearest nodes met, into best, farthest
 * first.  One condition more, for a caller that needs nothing farther
 * than far: the walk then stops once the nearest node left to expand is
 * past far and past the narrow nearest nodes met, that is, it is a
 * search of breadth narrow, widened to ef while it finds nodes within
 * far.  A node within far reached only through farther ones is lost
 * where the narrow search would lose it.  far = +inf: the plain search.
 */
static void level0_search(const graph_t *g, node_t ep, const float *q,
			  size_t ef, float far, size_t narrow,
			  std::vector<near> &best)
{
	hnswlib::VisitedList *vl = g->visited_list_pool_->getFreeVisitedList();
	hnswlib::vl_type *seen = vl->mass, tag = vl->curV;
	std::priority_queue<near, std::vector<near>, farther_first> top;
	std::priority_queue<near, std::vector<near>, nearer_first> todo;
	std::priority_queue<float> few;         /* the narrow nearest */
	near first = { g->fstdistfunc_(q, g->getDataByInternalId(ep),
				       g->dist_func_param_), ep };
	bool floored = far < INFINITY;

	seen[ep] = tag;
	top.push(first);
	todo.push(first);
	if (floored)
		few.push(first.d);
	while (!todo.empty()) {
		near c = todo.top();

		if (c.d > top.top().d)
			break;
		if (floored && c.d > far && few.size() >= narrow &&
		    c.d > few.top())
			break;
		todo.pop();
		hnswlib::linklistsizeint *ll = g->get_linklist0(c.id);
		size_t size = g->getListCount(ll);
		const node_t *links = (const node_t *)(ll + 1);
		for (size_t j = 0; j < size; j++) {
			node_t n = links[j];
			if (j + 1 < size)
				__builtin_prefetch(g->getDataByInternalId(
							   links[j + 1]));
			if (seen[n] == tag)
				continue;
			seen[n] = tag;
			near x = { g->fstdistfunc_(q, g->getDataByInternalId(n),
						   g->dist_func_param_), n };
			if (top.size() < ef || x.d < top.top().d) {
				todo.push(x);
				top.push(x);
				if (top.size() > ef)
					top.pop();
			}
			if (floored && (few.size() < narrow || x.d < few.top())) {
				few.push(x.d);
				if (few.size() > narrow)
					few.pop();
			}
		}
	}
	g->visited_list_pool_->releaseVisitedList(vl);
	best.clear();
	for (; !top.empty(); top.pop())
		best.push_back(top.top());
}

int t4dx_index_search(const struct t4dx_index *ix, const float *q,
		      uint32_t k, uint32_t ef, struct t4dx_index_hit *hits,
		      uint32_t *nhits)
{
	return t4dx_index_search_above(ix, q, k, ef, -INFINITY, hits, nhits);
}

/* The breadth of a search given a floor, for breadth ef: measured through
 * t4dx_search on 100,000 vectors of dim 256 in segments of 90,000 and
 * 10,000 (ef 256, recall of 11 results against exact search, load ~5):
 * clustered vectors keep recall 1.0 at 16, 32 and 64 and the search takes
 * 0.6x the time of one without a floor; uniformly random ones (0.716
 * without a floor) get 0.663, 0.679 and 0.692, as the small segment's
 * few true neighbours, far from everything, are missed by the narrower
 * walk. */
static size_t narrow_of(size_t ef)
{
	return std::max(ef / 8, (size_t)16);
}

/* The graph's answer (ix->use held shared, the graph there): hnswlib's
 * searchKnn with the breadth passed in rather than read from the graph,
 * so that searches do not share it: greedy descent through the upper
 * levels, then the bounded search of level 0.  May throw. */
static void graph_search(const struct t4dx_index *ix, const float *q,
			 uint32_t k, uint32_t ef, float floor,
			 struct t4dx_index_hit *hits, uint32_t *nhits)
{
	const graph_t *g = ix->g;
	node_t cur = g->enterpoint_node_;
	float curd = g->fstdistfunc_(q, g->getDataByInternalId(cur),
				     g->dist_func_param_);

	for (int level = g->maxlevel_; level > 0; level--) {
		bool changed = true;
		while (changed) {
			changed = false;
			hnswlib::linklistsizeint *ll = g->get_linklist(cur, level);
			unsigned short size = g->getListCount(ll);
			const node_t *links = (const node_t *)(ll + 1);
			for (unsigned short i = 0; i < size; i++) {
				float d = g->fstdistfunc_(q,
					g->getDataByInternalId(links[i]),
					g->dist_func_param_);
				if (d < curd) {
					curd = d;
					cur = links[i];
					changed = true;
				}
			}
		}
	}
	/* the graph's distance is 1 - score */
	std::vector<near> best;
	level0_search(g, cur, q, std::max(ef, k), 1.0f - floor,
		      narrow_of(std::max(ef, k)), best);
	/* best is farthest first: its last k */
	size_t from = best.size() > k ? best.size() - k : 0;
	uint32_t n = 0;
	for (size_t i = from; i < best.size(); i++) {
		node_t id = best[i].id;
		/* scored as exact search scores, for merging */
		t4dx_index_hit h = {
			(uint32_t)g->getExternalLabel(id),
			dot(q, (const float *)g->getDataByInternalId(id),
			    ix->dim),
		};
		hits[n++] = h;
	}
	std::sort(hits, hits + n, hit_before);
	*nhits = n;
}

/* h into hits[0..*have), a heap of at most k with the worst on top. */
static void keep_best(struct t4dx_index_hit *hits, uint32_t *have,
		      uint32_t k, const t4dx_index_hit &h)
{
	auto worse = [](const t4dx_index_hit &a, const t4dx_index_hit &b) {
		return hit_before(a, b);
	};
	if (*have < k) {
		hits[(*have)++] = h;
		std::push_heap(hits, hits + *have, worse);
	} else if (hit_before(h, hits[0])) {
		std::pop_heap(hits, hits + *have, worse);
		hits[*have - 1] = h;
		std::push_heap(hits, hits + *have, worse);
	}
}

/* Scan mode (ix->use held shared, the graph there): the candidates of
 * the codes, best bound first, scored exactly with the graph's vectors
 * until the next cannot beat the k-th held; so the hits are exactly the
 * k best of those that may reach floor, as exact search scores them. */
static int scan_search(const struct t4dx_index *ix, const t4dx_qcodes *codes,
		       const float *q, uint32_t k, float floor,
		       struct t4dx_index_hit *hits, uint32_t *nhits)
{
	const graph_t *g = ix->g;
	struct t4dx_qcand *c;
	size_t nc;
	uint32_t have = 0;
	int rc = t4dx_qcodes_scan(codes, q, k, floor, &c, &nc);

	if (rc)
		return rc;
	for (size_t i = 0; i < nc; i++) {
		if (have == k && c[i].hi < hits[0].score)
			break;
		node_t id = (node_t)c[i].i;
		t4dx_index_hit h = {
			(uint32_t)g->getExternalLabel(id),
			dot(q, (const float *)g->getDataByInternalId(id),
			    ix->dim),
		};
		keep_best(hits, &have, k, h);
	}
	free(c);
	std::sort(hits, hits + have, hit_before);
	*nhits = have;
	return 0;
}

#define GUARD_PROBES 64

/* The 90th percentile of q's scores against GUARD_PROBES nodes spread
 * evenly over the graph (the same ones every search). */
static float query_background(const struct t4dx_index *ix, const float *q)
{
	const graph_t *g = ix->g;
	size_t n = ix->count, p = std::min<size_t>(GUARD_PROBES, n);
	float s[GUARD_PROBES];

	for (size_t i = 0; i < p; i++)
		s[i] = 1.0f - g->fstdistfunc_(q, g->getDataByInternalId(
				(node_t)((2 * i + 1) * n / (2 * p))),
				g->dist_func_param_);
	std::nth_element(s, s + p * 9 / 10, s + p);
	return s[p * 9 / 10];
}

/* Graph mode (ix->use held shared, the graph there): the walk, then the
 * isolated nodes iso scored exactly, or every node when the walk found
 * nothing above bg nor clearly above the query's own background (see
 * "ISOLATED NODES") and the caller may need such nodes.  May throw. */
static void guarded_search(const struct t4dx_index *ix,
			   const std::vector<node_t> *iso, float bg,
			   float gap, const float *q, uint32_t k, uint32_t ef,
			   float floor, struct t4dx_index_hit *hits,
			   uint32_t *nhits)
{
	const graph_t *g = ix->g;
	auto worse = [](const t4dx_index_hit &a, const t4dx_index_hit &b) {
		return hit_before(a, b);
	};
	uint32_t have;

	graph_search(ix, q, k, ef, floor, hits, nhits);
	if (std::isnan(bg))
		return;
	/* bg is a score of two unit vectors; the walk's scores and floor
	 * scale with the query's length (search/@ID of a vector set by
	 * hand, a command embedder's answer) */
	double qq = 0;
	for (uint32_t d = 0; d < ix->dim; d++)
		qq += (double)q[d] * q[d];
	float bgq = (float)(bg * std::sqrt(qq));
	have = *nhits;
	bool lost = (!have || hits[0].score < bgq) && floor < bgq;
	/* the query's own background, scaled as bgq is (the space's
	 * distance is 1 - score) */
	if (lost && have && !std::isnan(gap))
		lost = hits[0].score < query_background(ix, q) +
				       0.5f * gap * (float)std::sqrt(qq);
	if (lost) {
		ix->full_reads.fetch_add(1, std::memory_order_relaxed);
		have = 0;
		for (size_t i = 0; i < ix->count; i++) {
			t4dx_index_hit h = {
				(uint32_t)g->getExternalLabel((node_t)i),
				dot(q, (const float *)
				    g->getDataByInternalId((node_t)i), ix->dim),
			};
			keep_best(hits, &have, k, h);
		}
	} else if (iso && !iso->empty()) {
		std::make_heap(hits, hits + have, worse);
		for (node_t id : *iso) {
			uint32_t key = (uint32_t)g->getExternalLabel(id);
			bool held = false;

			for (uint32_t j = 0; j < have && !held; j++)
				held = hits[j].key == key;
			if (held)
				continue;
			t4dx_index_hit h = {
				key, dot(q, (const float *)
					 g->getDataByInternalId(id), ix->dim),
			};
			keep_best(hits, &have, k, h);
		}
	} else {
		return;
	}
	std::sort(hits, hits + have, hit_before);
	*nhits = have;
}

/*
 * Graph mode for a query of any length.  The graph compares by distance,
 * 1 - score: a query shorter than about 1e-7 scores every node 1.0f
 * there, and the walk wanders (a vector set by hand, search/@ID of it, a
 * command embedder's answer).  So the walk and its guard take the query
 * scaled by a power of two to a length in [1, 2) (exact but for
 * subnormal values, which it makes exact), the floor with it; the hits'
 * scores are scaled back by the same power of two, which gives exactly
 * the query's own scores as exact search computes them, but where a
 * product underflows to a subnormal (a query shorter than about 1e-35,
 * where the last bits may differ).  May throw.
 */
static void any_length_search(const struct t4dx_index *ix, const float *q,
			      uint32_t k, uint32_t ef, float floor,
			      struct t4dx_index_hit *hits, uint32_t *nhits)
{
	double qq = 0;
	for (uint32_t d = 0; d < ix->dim; d++)
		qq += (double)q[d] * q[d];
	int e = qq > 0 ? -std::ilogb(std::sqrt(qq)) : 0;
	/* within a factor 16 of unit length: as is */
	if (e >= -4 && e <= 4) {
		guarded_search(ix, ix->iso, ix->bg, ix->gap, q, k, ef, floor,
			       hits, nhits);
		return;
	}
	std::vector<float> qs(ix->dim);
	for (uint32_t d = 0; d < ix->dim; d++)
		qs[d] = std::ldexp(q[d], e);
	guarded_search(ix, ix->iso, ix->bg, ix->gap, qs.data(), k, ef,
		       std::ldexp(floor, e), hits, nhits);
	for (uint32_t i = 0; i < *nhits; i++)
		hits[i].score = std::ldexp(hits[i].score, -e);
}

int t4dx_index_search_above(const struct t4dx_index *ix, const float *q,
			    uint32_t k, uint32_t ef, float floor,
			    struct t4dx_index_hit *hits, uint32_t *nhits)
{
	*nhits = 0;
	if (k > T4DX_INDEX_EF_MAX || ef > T4DX_INDEX_EF_MAX ||
	    std::isnan(floor))
		return EINVAL;
	if (!k || !ix->count)
		return 0;
	if (ix->gone.load())
		return ESTALE;
	try {
		std::shared_lock<std::shared_mutex> hold(ix->use);

		if (!ix->g)
			return ESTALE;
		if (ix->codes)
			return scan_search(ix, ix->codes, q, k, floor, hits,
					   nhits);
		any_length_search(ix, q, k, ef, floor, hits, nhits);
	} catch (...) {
		*nhits = 0;
		return exception_rc();
	}
	return 0;
}

/* ---- tune: graph or scan ---------------------------------------------- */

/* The codes of every vector of the graph (ix->use held). */
static int make_codes(const struct t4dx_index *ix, t4dx_qcodes **out)
{
	const graph_t *g = ix->g;
	int rc = t4dx_qcodes_new(ix->dim, ix->count, out);

	for (size_t i = 0; !rc && i < ix->count; i++)
		t4dx_qcodes_set(*out, i, (const float *)
				g->getDataByInternalId((node_t)i));
	return rc;
}

/* The guard of graph mode (ix->use held): bg, the 90th percentile of the
 * scores of ISO_PAIRS pairs of nodes drawn by a fixed generator (the same
 * graph gives the same guard), and the nodes whose best of their first
 * ISO_LINKS level-0 links scores below it (the first links are the
 * nearest chosen when the list was last pruned; one added later may be
 * nearer, which can only add a node to iso, never leave one out). */
#define ISO_PAIRS 4096
#define ISO_LINKS 16

static void find_isolated(const struct t4dx_index *ix,
			  std::vector<node_t> *iso, float *bg, float *gap)
{
	const graph_t *g = ix->g;
	size_t n = ix->count;
	std::vector<float> pair;
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	*bg = NAN;
	*gap = NAN;
	iso->clear();
	if (n < 2)
		return;
	for (int t = 0; t < ISO_PAIRS; t++) {
		size_t a, b;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		a = (size_t)(x % n);
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b = (size_t)(x % n);
		if (a != b)
			pair.push_back(dot((const float *)
				g->getDataByInternalId((node_t)a),
				(const float *)g->getDataByInternalId((node_t)b),
				ix->dim));
	}
	if (pair.empty())
		return;
	std::nth_element(pair.begin(), pair.begin() + pair.size() * 9 / 10,
			 pair.end());
	*bg = pair[pair.size() * 9 / 10];
	std::vector<float> nearest(n);
	for (size_t i = 0; i < n; i++) {
		hnswlib::linklistsizeint *ll = g->get_linklist0((node_t)i);
		unsigned size = std::min<unsigned>(g->getListCount(ll),
						   ISO_LINKS);
		const node_t *links = (const node_t *)(ll + 1);
		const float *v = (const float *)
				 g->getDataByInternalId((node_t)i);
		float best = -INFINITY;

		/* the space's SIMD distance (1 - score): the plain dot is
		 * several times slower, and this is size scores a node */
		for (unsigned j = 0; j < size; j++)
			best = std::max(best, 1.0f - g->fstdistfunc_(v,
				g->getDataByInternalId(links[j]),
				g->dist_func_param_));
		if (best < *bg)
			iso->push_back((node_t)i);
		nearest[i] = best;
	}
	std::nth_element(nearest.begin(), nearest.begin() + n / 2,
			 nearest.end());
	/* a node with no link (a graph of one, in effect) says nothing */
	if (std::isfinite(nearest[n / 2]))
		*gap = std::max(nearest[n / 2] - *bg, 0.0f);
}

/* How many of the true 10 best tr[0..nt) (self left out) the graph's
 * hits gh[0..ng) hold. */
#define TUNE_SAMPLES 32
#define TUNE_K 10

static unsigned found_of(const t4dx_index_hit *tr, uint32_t nt, uint32_t self,
			 const t4dx_index_hit *gh, uint32_t ng, unsigned *took)
{
	unsigned found = 0;

	*took = 0;
	for (uint32_t t = 0; t < nt && *took < TUNE_K; t++) {
		if (tr[t].key == self)
			continue;
		++*took;
		for (uint32_t j = 0; j < ng; j++)
			if (gh[j].key == tr[t].key) {
				found++;
				break;
			}
	}
	return found;
}

/* The graph's recall@10 at breadth ef on TUNE_SAMPLES of its own vectors,
 * spread evenly over the nodes: each asks for 11, its own key left out,
 * against the exact answer of the codes (ix->use held).  Measured twice,
 * the lower counting: as a plain search, and as a search of a segment
 * after others that already hold results as good as the true ones
 * (search.c's floor: the 11th true score), whose narrower walk misses
 * more (10,000 uniformly random vectors: 0.99 plain gave 0.96 through
 * the engine). */
static int measure(const struct t4dx_index *ix, const t4dx_qcodes *codes,
		   const std::vector<node_t> *iso, float bg, float gap,
		   uint32_t ef, float *recall)
{
	const graph_t *g = ix->g;
	size_t n = ix->count, samples = std::min<size_t>(TUNE_SAMPLES, n);
	t4dx_index_hit gh[TUNE_K + 1], tr[TUNE_K + 1];
	unsigned found = 0, ffound = 0, want = 0;

	for (size_t s = 0; s < samples; s++) {
		node_t id = (node_t)((2 * s + 1) * n / (2 * samples));
		const float *q = (const float *)g->getDataByInternalId(id);
		uint32_t self = (uint32_t)g->getExternalLabel(id), ng, nt;
		int rc = scan_search(ix, codes, q, TUNE_K + 1, -INFINITY, tr,
				     &nt);

		if (rc)
			return rc;
		unsigned took;
		guarded_search(ix, iso, bg, gap, q, TUNE_K + 1, ef, -INFINITY,
			       gh, &ng);
		found += found_of(tr, nt, self, gh, ng, &took);
		want += took;
		if (nt) {
			/* search.c's floor for a vector of unit length */
			guarded_search(ix, iso, bg, gap, q, TUNE_K + 1, ef,
				       tr[nt - 1].score - 1e-4f, gh, &ng);
			ffound += found_of(tr, nt, self, gh, ng, &took);
		}
	}
	*recall = want ? (float)std::min(found, ffound) / (float)want : 1.0f;
	return 0;
}

int t4dx_index_tune(struct t4dx_index *ix, uint32_t ef, float min_recall)
{
	t4dx_qcodes *codes = NULL;
	std::vector<node_t> *iso = NULL;
	float recall = NAN, bg = NAN, gap = NAN;
	int rc = 0;

	if (ef < 1 || ef > T4DX_INDEX_EF_MAX || std::isnan(min_recall))
		return EINVAL;
	try {
		iso = new std::vector<node_t>();
		{
			std::shared_lock<std::shared_mutex> hold(ix->use);

			if (!ix->g) {
				delete iso;
				return ESTALE;
			}
			find_isolated(ix, iso, &bg, &gap);
			if (min_recall > 0) {
				rc = make_codes(ix, &codes);
				if (!rc)
					rc = measure(ix, codes, iso, bg, gap,
						     ef, &recall);
			}
		}
		if (rc) {
			t4dx_qcodes_free(codes);
			delete iso;
			return rc;
		}
		if (!(recall < min_recall)) {   /* graph mode */
			t4dx_qcodes_free(codes);
			codes = NULL;
		}
		iso->shrink_to_fit();
		std::unique_lock<std::shared_mutex> hold(ix->use);
		if (!ix->g) {
			t4dx_qcodes_free(codes);
			delete iso;
			return ESTALE;
		}
		t4dx_qcodes_free(ix->codes);
		delete ix->iso;
		ix->codes = codes;
		ix->recall = recall;
		ix->iso = iso;
		ix->bg = bg;
		ix->gap = gap;
	} catch (...) {
		t4dx_qcodes_free(codes);
		delete iso;
		return exception_rc();
	}
	return 0;
}

int t4dx_index_mode(const struct t4dx_index *ix)
{
	try {
		std::shared_lock<std::shared_mutex> hold(ix->use);
		return ix->codes ? T4DX_INDEX_SCAN : T4DX_INDEX_GRAPH;
	} catch (...) {
		return T4DX_INDEX_GRAPH;
	}
}

float t4dx_index_recall(const struct t4dx_index *ix)
{
	return ix->recall;
}

uint64_t t4dx_index_full_reads(const struct t4dx_index *ix)
{
	return ix->full_reads.load(std::memory_order_relaxed);
}

size_t t4dx_index_code_bytes(const struct t4dx_index *ix)
{
	try {
		std::shared_lock<std::shared_mutex> hold(ix->use);
		return ix->codes ? t4dx_qcodes_bytes(ix->codes) : 0;
	} catch (...) {
		return 0;
	}
}

void t4dx_index_set_tag(struct t4dx_index *ix, uint64_t tag)
{
	ix->tag = tag;
}

uint64_t t4dx_index_tag(const struct t4dx_index *ix)
{
	return ix->tag;
}

uint32_t t4dx_index_dim(const struct t4dx_index *ix)
{
	return ix->dim;
}

size_t t4dx_index_count(const struct t4dx_index *ix)
{
	return ix->count;
}

size_t t4dx_index_bytes(const struct t4dx_index *ix)
{
	size_t n = sizeof(*ix) + sizeof(*ix->space);

	try {
		std::shared_lock<std::shared_mutex> hold(ix->use);
		const graph_t *g = ix->g;

		if (g)
			n += sizeof(*g) +
			     g->max_elements_ * (g->size_data_per_element_ +
						 sizeof(char *) + sizeof(int) +
						 sizeof(hnswlib::vl_type)) +
			     ix->link_bytes;
		if (ix->codes)
			n += t4dx_qcodes_bytes(ix->codes);
		if (ix->iso)
			n += ix->iso->capacity() * sizeof(node_t);
	} catch (...) {
	}
	return n;
}

/* ---- drop and adopt ------------------------------------------------------ */

void t4dx_index_drop(struct t4dx_index *ix)
{
	ix->gone.store(true);
	/* lock() fails only on a misuse of the lock (EDEADLK): then the
	 * graph stays, which only costs memory */
	try {
		std::unique_lock<std::shared_mutex> hold(ix->use);

		delete ix->g;
		ix->g = NULL;
		t4dx_qcodes_free(ix->codes);
		ix->codes = NULL;
		delete ix->iso;
		ix->iso = NULL;
		ix->bg = NAN;
		ix->gap = NAN;
	} catch (...) {
	}
}

bool t4dx_index_dropped(const struct t4dx_index *ix)
{
	return ix->gone.load();
}

int t4dx_index_adopt(struct t4dx_index *ix, struct t4dx_index *from)
{
	if (!from->g || from->dim != ix->dim || from->count != ix->count)
		return EINVAL;
	try {
		std::unique_lock<std::shared_mutex> hold(ix->use);

		if (ix->g)
			return EINVAL;
		/* the graph goes with its space, whose dim it points to */
		delete ix->space;
		ix->space = from->space;
		ix->g = from->g;
		ix->m = from->m;
		ix->efc = from->efc;
		ix->link_bytes = from->link_bytes;
		/* and its mode, tuned when it was loaded */
		t4dx_qcodes_free(ix->codes);
		ix->codes = from->codes;
		ix->recall = from->recall;
		delete ix->iso;
		ix->iso = from->iso;
		ix->bg = from->bg;
		ix->gap = from->gap;
		from->iso = NULL;
		from->g = NULL;
		from->space = NULL;
		from->codes = NULL;
		ix->gone.store(false);
	} catch (...) {
		return exception_rc();
	}
	t4dx_index_free(from);
	return 0;
}

/* ---- exact search ----------------------------------------------------- */

int t4dx_index_exact_search(const float *vecs, const uint32_t *keys,
			    size_t n, uint32_t dim, const float *q,
			    uint32_t k, struct t4dx_index_hit *hits,
			    uint32_t *nhits)
{
	*nhits = 0;
	if (dim < 1 || dim > T4DX_INDEX_DIM_MAX || k > T4DX_INDEX_EF_MAX ||
	    (n && !vecs))
		return EINVAL;
	if (!k)
		return 0;
	uint32_t have = 0;
	for (size_t i = 0; i < n; i++) {
		t4dx_index_hit h = { keys ? keys[i] : (uint32_t)i,
				     dot(q, vecs + i * dim, dim) };
		keep_best(hits, &have, k, h);
	}
	std::sort(hits, hits + have, hit_before);
	*nhits = have;
	return 0;
}

/* ---- save ---------------------------------------------------------------- */

/* Appends to fd through a buffer, with the CRC of what went through. */
struct writer {
	int fd;
	off_t off;
	uint32_t crc;
	std::vector<unsigned char> buf;
	int rc;
};

static void w_flush(struct writer *w)
{
	if (!w->rc && !w->buf.empty())
		w->rc = t4dx_io_pwrite_all(w->fd, w->buf.data(), w->buf.size(),
					   w->off);
	w->off += (off_t)w->buf.size();
	w->buf.clear();
}

static void w_put(struct writer *w, const void *p, size_t len)
{
	w->crc = crc_update(w->crc, p, len);
	if (len >= (1u << 20)) {
		w_flush(w);
		if (!w->rc)
			w->rc = t4dx_io_pwrite_all(w->fd, p, len, w->off);
		w->off += (off_t)len;
		return;
	}
	if (w->buf.size() + len > (1u << 20))
		w_flush(w);
	const unsigned char *b = (const unsigned char *)p;
	w->buf.insert(w->buf.end(), b, b + len);
}

template <typename T> static void w_pod(struct writer *w, const T &v)
{
	w_put(w, &v, sizeof(v));
}

int t4dx_index_save(const struct t4dx_index *ix, int fd)
{
	const graph_t *g = ix->g;
	struct writer w;
	unsigned char h[HDR_LEN];

	/* (a dropped index is its owner's alone: no search is saving it) */
	if (!g)
		return EINVAL;
	w.fd = fd;
	w.off = HDR_LEN;
	w.crc = 0;
	w.rc = 0;
	try {
		w.buf.reserve(1u << 20);
		w_pod(&w, g->offsetLevel0_);
		w_pod(&w, g->max_elements_);
		w_pod(&w, g->cur_element_count);
		w_pod(&w, g->size_data_per_element_);
		w_pod(&w, g->label_offset_);
		w_pod(&w, g->offsetData_);
		w_pod(&w, g->maxlevel_);
		w_pod(&w, g->enterpoint_node_);
		w_pod(&w, g->maxM_);
		w_pod(&w, g->maxM0_);
		w_pod(&w, g->M_);
		w_pod(&w, g->mult_);
		w_pod(&w, g->ef_construction_);
		w_put(&w, g->data_level0_memory_,
		      g->cur_element_count * g->size_data_per_element_);
		for (size_t i = 0; i < g->cur_element_count; i++) {
			uint32_t len = (uint32_t)(g->element_levels_[i] *
						  g->size_links_per_element_);
			w_pod(&w, len);
			if (len)
				w_put(&w, g->linkLists_[i], len);
		}
		w_flush(&w);
	} catch (...) {
		return exception_rc();
	}
	if (w.rc)
		return w.rc;

	memset(h, 0, sizeof(h));
	memcpy(h, MAGIC, 8);
	put_le32(h + 8, FORMAT_VERSION);
	put_le32(h + 12, HDR_LEN);
	put_le32(h + 16, ix->dim);
	put_le32(h + 20, ix->m);
	put_le32(h + 24, ix->efc);
	put_le32(h + 28, host_layout());
	put_le64(h + 32, ix->count);
	put_le64(h + 40, (uint64_t)(w.off - HDR_LEN));
	put_le32(h + 48, w.crc);
	put_le64(h + 52, ix->tag);
	put_le32(h + 60, crc_update(0, h, 60));
	int rc = t4dx_io_pwrite_all(fd, h, sizeof(h), 0);
	/* whatever the file held past the index goes */
	if (!rc && t4dx_io.ftruncate(fd, w.off))
		rc = errno ? errno : EIO;
	if (!rc && t4dx_io.fdatasync(fd))
		rc = errno ? errno : EIO;
	return rc;
}

/* ---- load ---------------------------------------------------------------- */

/* Reads the payload in order through a buffer, never past its end, with
 * the CRC of what went through. */
struct reader {
	int fd;
	off_t off, end;         /* file offsets of the buffer's end, payload's end */
	uint32_t crc;
	std::vector<unsigned char> buf;
	size_t pos;
};

static int r_get(struct reader *r, void *p, size_t len)
{
	unsigned char *d = (unsigned char *)p;

	while (len) {
		if (r->pos == r->buf.size()) {
			size_t n = (size_t)std::min<off_t>(r->end - r->off, 1 << 20);
			if (!n)
				return T4DX_ECORRUPT;
			r->buf.resize(n);
			int rc = t4dx_io_pread_all(r->fd, r->buf.data(), n, r->off);
			if (rc)
				return rc;
			r->crc = crc_update(r->crc, r->buf.data(), n);
			r->off += (off_t)n;
			r->pos = 0;
		}
		size_t n = std::min(len, r->buf.size() - r->pos);
		memcpy(d, r->buf.data() + r->pos, n);
		r->pos += n;
		d += n;
		len -= n;
	}
	return 0;
}

template <typename T> static int r_pod(struct reader *r, T *v)
{
	return r_get(r, v, sizeof(*v));
}

/* The header's fields, checked. */
struct header {
	uint32_t dim, m, efc;
	uint64_t count, payload_len;
	uint32_t payload_crc;
	uint64_t tag;
};

static int read_header(int fd, uint32_t want_dim, struct header *hd)
{
	unsigned char h[HDR_LEN];
	struct stat st;
	int rc = t4dx_io_pread_all(fd, h, sizeof(h), 0);

	if (rc)
		return rc;
	if (memcmp(h, MAGIC, 8))
		return T4DX_EFORMAT;
	if (get_le32(h + 60) != crc_update(0, h, 60))
		return T4DX_ECORRUPT;
	if (get_le32(h + 8) != FORMAT_VERSION || get_le32(h + 12) != HDR_LEN ||
	    get_le32(h + 28) != host_layout())
		return T4DX_EFORMAT;
	hd->dim = get_le32(h + 16);
	hd->m = get_le32(h + 20);
	hd->efc = get_le32(h + 24);
	hd->count = get_le64(h + 32);
	hd->payload_len = get_le64(h + 40);
	hd->payload_crc = get_le32(h + 48);
	hd->tag = get_le64(h + 52);
	if (hd->dim < 1 || hd->dim > T4DX_INDEX_DIM_MAX || hd->m < 2 ||
	    hd->m > T4DX_INDEX_M_MAX || hd->efc < 1 ||
	    hd->efc > T4DX_INDEX_EF_MAX || hd->count >= UINT32_MAX)
		return T4DX_ECORRUPT;
	if (want_dim && hd->dim != want_dim)
		return T4DX_EFORMAT;
	if (fstat(fd, &st))
		return errno;
	if ((uint64_t)st.st_size < HDR_LEN ||
	    (uint64_t)st.st_size - HDR_LEN != hd->payload_len)
		return T4DX_ECORRUPT;
	/* each vector takes at least its level-0 record and a length: so a
	 * small file cannot make the loader allocate much */
	uint64_t rec = (uint64_t)(2 * hd->m + 1) * 4 + (uint64_t)hd->dim * 4 +
		       sizeof(hnswlib::labeltype);
	if (hd->payload_len < PARAMS_LEN ||
	    (hd->payload_len - PARAMS_LEN) / (rec + 4) < hd->count)
		return T4DX_ECORRUPT;
	return 0;
}

/* The parameters of the payload against what the header's give. */
static int read_params(struct reader *r, const struct header *hd, graph_t *g)
{
	size_t off0, maxel, count, per, label_off, data_off, maxm, maxm0, m;
	size_t efc;
	int maxlevel, rc;
	node_t ep;
	double mult;

	if ((rc = r_pod(r, &off0)) || (rc = r_pod(r, &maxel)) ||
	    (rc = r_pod(r, &count)) || (rc = r_pod(r, &per)) ||
	    (rc = r_pod(r, &label_off)) || (rc = r_pod(r, &data_off)) ||
	    (rc = r_pod(r, &maxlevel)) || (rc = r_pod(r, &ep)) ||
	    (rc = r_pod(r, &maxm)) || (rc = r_pod(r, &maxm0)) ||
	    (rc = r_pod(r, &m)) || (rc = r_pod(r, &mult)) ||
	    (rc = r_pod(r, &efc)))
		return rc;
	if (off0 != g->offsetLevel0_ || count != hd->count || maxel < count ||
	    per != g->size_data_per_element_ || label_off != g->label_offset_ ||
	    data_off != g->offsetData_ || maxm != g->maxM_ ||
	    maxm0 != g->maxM0_ || m != g->M_ || efc != g->ef_construction_)
		return T4DX_ECORRUPT;
	if (count ? maxlevel < 0 || maxlevel > 64 || ep >= count
		  : maxlevel != -1 || ep != (node_t)-1)
		return T4DX_ECORRUPT;
	g->maxlevel_ = maxlevel;
	g->enterpoint_node_ = ep;
	return 0;
}

/* A list of links: at most cap, to existing nodes with at least level
 * lvl, flag bytes zero. */
static bool list_ok(const graph_t *g, const hnswlib::linklistsizeint *ll,
		    size_t cap, int lvl)
{
	const unsigned char *b = (const unsigned char *)ll;
	unsigned short size = g->getListCount(
		const_cast<hnswlib::linklistsizeint *>(ll));
	const node_t *links = (const node_t *)(ll + 1);

	if (size > cap || b[2] || b[3])
		return false;
	for (unsigned short i = 0; i < size; i++)
		if (links[i] >= g->cur_element_count ||
		    g->element_levels_[links[i]] < lvl)
			return false;
	return true;
}

static bool graph_ok(const struct t4dx_index *ix)
{
	const graph_t *g = ix->g;
	size_t n = g->cur_element_count;
	std::vector<uint32_t> keys(n);

	if (n && g->element_levels_[g->enterpoint_node_] != g->maxlevel_)
		return false;
	for (size_t i = 0; i < n; i++) {
		node_t id = (node_t)i;
		const float *v = (const float *)g->getDataByInternalId(id);
		hnswlib::labeltype key = g->getExternalLabel(id);

		if (key > UINT32_MAX)
			return false;
		keys[i] = (uint32_t)key;
		for (uint32_t d = 0; d < ix->dim; d++)
			if (!std::isfinite(v[d]))
				return false;
		if (!list_ok(g, g->get_linklist0(id), g->maxM0_, 0))
			return false;
		for (int l = 1; l <= g->element_levels_[i]; l++)
			if (!list_ok(g, g->get_linklist(id, l), g->maxM_, l))
				return false;
	}
	std::sort(keys.begin(), keys.end());
	return std::adjacent_find(keys.begin(), keys.end()) == keys.end();
}

/* The level-0 records and the upper lists, into g, which owns what it
 * holds at every step (its destructor frees the lists of the first
 * cur_element_count nodes). */
static int read_nodes(struct reader *r, graph_t *g, size_t count)
{
	int rc = r_get(r, g->data_level0_memory_,
		       count * g->size_data_per_element_);

	for (size_t i = 0; !rc && i < count; i++) {
		uint32_t len;

		if ((rc = r_pod(r, &len)))
			break;
		if (len % g->size_links_per_element_ ||
		    len / g->size_links_per_element_ > (size_t)g->maxlevel_)
			return T4DX_ECORRUPT;
		g->element_levels_[i] = (int)(len / g->size_links_per_element_);
		g->linkLists_[i] = NULL;
		if (len) {
			/* as the library allocates it, freed by it */
			g->linkLists_[i] = (char *)malloc(len + 1);
			if (!g->linkLists_[i]) {
				g->element_levels_[i] = 0;
				return ENOMEM;
			}
		}
		g->cur_element_count = i + 1;
		if (len)
			rc = r_get(r, g->linkLists_[i], len);
	}
	return rc;
}

int t4dx_index_verify(int fd, uint32_t dim, uint64_t *count, uint64_t *tag)
{
	struct header hd;
	int rc = read_header(fd, dim, &hd);

	if (rc)
		return rc;
	*count = hd.count;
	if (tag)
		*tag = hd.tag;
	try {
		std::vector<unsigned char> buf(1 << 20);
		uint32_t crc = 0;

		for (uint64_t off = 0; off < hd.payload_len;) {
			size_t n = (size_t)std::min<uint64_t>(
				hd.payload_len - off, buf.size());

			rc = t4dx_io_pread_all(fd, buf.data(), n,
					       (off_t)(HDR_LEN + off));
			if (rc)
				return rc;
			crc = crc_update(crc, buf.data(), n);
			off += n;
		}
		return crc == hd.payload_crc ? 0 : T4DX_ECORRUPT;
	} catch (...) {
		return exception_rc();
	}
}

int t4dx_index_load(int fd, uint32_t dim, struct t4dx_index **out)
{
	struct t4dx_index *ix = NULL;
	struct header hd;
	struct reader r;
	int rc = read_header(fd, dim, &hd);

	if (rc)
		return rc;
	rc = make_index(hd.dim, hd.m, hd.efc, (size_t)hd.count, &ix);
	if (rc)
		return rc;
	ix->tag = hd.tag;
	r.fd = fd;
	r.off = HDR_LEN;
	r.end = (off_t)(HDR_LEN + hd.payload_len);
	r.crc = 0;
	r.pos = 0;
	try {
		graph_t *g = ix->g;

		g->cur_element_count = 0;
		rc = read_params(&r, &hd, g);
		if (!rc)
			rc = read_nodes(&r, g, (size_t)hd.count);
		if (!rc && (r.off != r.end || r.pos != r.buf.size() ||
			    r.crc != hd.payload_crc))
			rc = T4DX_ECORRUPT;
		if (!rc && !graph_ok(ix))
			rc = T4DX_ECORRUPT;
		if (!rc)
			settle(ix);
	} catch (...) {
		rc = exception_rc();
	}
	if (rc) {
		t4dx_index_free(ix);
		return rc;
	}
	*out = ix;
	return 0;
}
