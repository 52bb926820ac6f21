/*
 * vecbench.c - the search part of the t4dx benchmark (tools/bench): the
 * vector index in-process, a store of items with vectors set by hand,
 * and queries through a mount's search/ directory.  One machine-readable
 * line per run, as bench.c prints them:
 *
 *     workload=index set=clustered n=10000 dim=256 m=16 ... recall10=0.98
 *
 *   vecbench index -n N -S SET [-c CONFIG] [-q QUERIES] [-k K] [-T DIR]
 *       N vectors of SET (below) indexed as core does it (t4dx_index_build
 *       with the M and ef_construction of the configuration), then
 *       QUERIES (default 200) queries drawn like the data: recall@K
 *       (default 10) of t4dx_index_search at ef_search (and at 2x and 4x
 *       that) against t4dx_index_exact_search, the latency of both, the
 *       latency of the queries the mount's search/@ID asks (an item's own
 *       vector, K + 1 results, the item itself left out), the index's
 *       memory and file bytes (saved in DIR, default /var/tmp), and the
 *       process's peak RSS (the data vectors are in it too: data_bytes)
 *   vecbench store DATA_DIR -n N -S SET [-c CONFIG] [-q QUERIES]
 *               [--ids FILE] [--novec] [--reopen]
 *       a store of the same N vectors, item vNNNNNNN under items/ with its
 *       vector set by hand (id: a fixed tag and the item's number), put
 *       with T4DX_NOWAIT, then closed (flushed) and opened again; then
 *       t4dx_search of the QUERIES items' vectors (those the index run
 *       asks, K + 1 results) timed in-process, and their recall against
 *       the engine's exact search (search_recall); --ids writes those
 *       items' ids, one a line, for "query"; --novec puts the same items
 *       without vectors (the baseline of compaction); --reopen puts
 *       nothing and searches the store DATA_DIR holds (made by an
 *       earlier run with the same N, SET and seed)
 *   vecbench query MOUNT --ids FILE [--text] [-k K] [-m MAX_SECONDS]
 *       for each id: opendir, readdir to the end and closedir of
 *       MOUNT/search/@ID?k=K, which is what ls does; prints
 *       available=0 if MOUNT has no search/ directory; --text: the
 *       lines of FILE are text queries, MOUNT/search/LINE?k=K
 *
 * SET: "uniform", vectors uniformly random on the unit sphere (normal
 * values, normalised), or "clustered": CLUSTERS (1,000) centres drawn
 * that way, each point a centre plus normal noise of norm about NOISE
 * (0.5) times the centre's, normalised.  Everything comes from --seed
 * (default 1): the index run and the store run see the same vectors and
 * the same query items.  Exit status 0 when the workload ran, 2 for a
 * usage error, 1 when it could not run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "buf.h"
#include "index.h"
#include "t4dx.h"
#include "vec.h"

#define CLUSTERS 1000
#define NOISE 0.5
/* what core uses until the configuration names its own */
#define DEF_M 16
#define DEF_EF_CONSTRUCTION 100
#define DEF_EF_SEARCH 64

struct opts {
	long n;
	uint32_t dim;
	const char *set;
	const char *config;
	const char *ids;
	const char *tmpdir;
	long queries;
	uint32_t k;
	uint64_t seed;
	bool novec;
	bool reopen;
	bool text;
	double max_seconds;
};

/* ---- numbers ---------------------------------------------------------- */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long peak_rss_kib(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) ? -1 : ru.ru_maxrss;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The p-quantile of v[0..n), sorting v. */
static double pct(double *v, size_t n, double p)
{
	if (!n)
		return 0.0;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

/* splitmix64: one stream from the seed, the same on every machine. */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double rnd_unit(uint64_t *s)
{
	return ((double)(rnd_next(s) >> 11) + 1.0) / 9007199254740992.0;
}

/* Standard normal (Box-Muller, one value of the pair). */
static double rnd_normal(uint64_t *s)
{
	double u = rnd_unit(s), v = rnd_unit(s);
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static void normalise(float *x, uint32_t dim)
{
	double sum = 0;
	for (uint32_t i = 0; i < dim; i++)
		sum += (double)x[i] * x[i];
	double inv = sum > 0 ? 1.0 / sqrt(sum) : 0.0;
	for (uint32_t i = 0; i < dim; i++)
		x[i] = (float)(x[i] * inv);
}

/* The generator of one set: the data come from seed, the queries from a
 * stream of their own so that their count changes no data vector. */
struct gen {
	bool clustered;
	uint32_t dim;
	float *centres;                 /* CLUSTERS x dim, clustered only */
};

static int gen_init(struct gen *g, const char *set, uint32_t dim,
		    uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	g->dim = dim;
	if (!strcmp(set, "uniform"))
		return 0;
	if (strcmp(set, "clustered"))
		return EINVAL;
	g->clustered = true;
	g->centres = malloc((size_t)CLUSTERS * dim * sizeof(float));
	if (!g->centres)
		return ENOMEM;
	uint64_t s = seed ^ 0xc3a5c85c97cb3127ULL;
	for (size_t c = 0; c < CLUSTERS; c++) {
		for (uint32_t i = 0; i < dim; i++)
			g->centres[c * dim + i] = (float)rnd_normal(&s);
		normalise(g->centres + c * dim, dim);
	}
	return 0;
}

/* One vector of the set into x, from the stream s. */
static void gen_one(const struct gen *g, uint64_t *s, float *x)
{
	if (!g->clustered) {
		for (uint32_t i = 0; i < g->dim; i++)
			x[i] = (float)rnd_normal(s);
	} else {
		const float *c = g->centres +
				 (rnd_next(s) % CLUSTERS) * g->dim;
		double sigma = NOISE / sqrt((double)g->dim);
		for (uint32_t i = 0; i < g->dim; i++)
			x[i] = c[i] + (float)(sigma * rnd_normal(s));
	}
	normalise(x, g->dim);
}

/* n data vectors (NULL if out of memory). */
static float *gen_data(const struct gen *g, long n, uint64_t seed)
{
	float *v = malloc((size_t)n * g->dim * sizeof(float));
	if (!v)
		return NULL;
	uint64_t s = seed;
	for (long i = 0; i < n; i++)
		gen_one(g, &s, v + (size_t)i * g->dim);
	return v;
}

/* The items whose own vectors are the queries of search/@ID. */
static long *pick_items(long n, long count, uint64_t seed)
{
	long *p = malloc((size_t)count * sizeof(*p));
	uint64_t s = seed ^ 0x5bd1e9955bd1e995ULL;
	for (long i = 0; p && i < count; i++)
		p[i] = (long)(rnd_next(&s) % (uint64_t)n);
	return p;
}

/* ---- the configuration ---------------------------------------------------- */

struct params {
	struct t4dx_config cfg;
	unsigned m, ef_construction, ef_search;
	bool from_core;                 /* else the defaults above */
};

/* The defaults, or CONFIG over them; the index parameters from the
 * configuration's own rendering, so that this builds against a core that
 * has them as keys and against one that does not yet. */
static int load_params(const char *path, struct params *p)
{
	char msg[512];
	struct t4dx_buf b = { 0 };
	t4dx_config_defaults(&p->cfg);
	if (path && t4dx_config_load(path, &p->cfg, msg, sizeof(msg))) {
		fprintf(stderr, "vecbench: %s\n", msg);
		return 1;
	}
	p->m = DEF_M;
	p->ef_construction = DEF_EF_CONSTRUCTION;
	p->ef_search = DEF_EF_SEARCH;
	p->from_core = false;
	if (t4dx_config_render(&p->cfg, &b) || t4dx_buf_add(&b, "", 1)) {
		t4dx_buf_free(&b);
		return 1;
	}
	struct json_object *o = json_tokener_parse((const char *)b.p), *v, *x;
	t4dx_buf_free(&b);
	if (o && json_object_object_get_ex(o, "vector", &v)) {
		int got = 0;
		if (json_object_object_get_ex(v, "index_m", &x))
			p->m = (unsigned)json_object_get_int(x), got++;
		if (json_object_object_get_ex(v, "ef_construction", &x))
			p->ef_construction = (unsigned)json_object_get_int(x),
			got++;
		if (json_object_object_get_ex(v, "ef_search", &x))
			p->ef_search = (unsigned)json_object_get_int(x), got++;
		p->from_core = got == 3;
	}
	json_object_put(o);
	return 0;
}

/* ---- index ---------------------------------------------------------------- */

/* Recall of hits against the exact top k of one query. */
static unsigned overlap(const struct t4dx_index_hit *a, uint32_t na,
			const struct t4dx_index_hit *b, uint32_t nb)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < na; i++)
		for (uint32_t j = 0; j < nb; j++)
			if (a[i].key == b[j].key) {
				n++;
				break;
			}
	return n;
}

static long file_bytes_of(const struct t4dx_index *ix, const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/vecbench-index.XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	struct stat st;
	long bytes = -1;
	if (!t4dx_index_save(ix, fd) && !fstat(fd, &st))
		bytes = (long)st.st_size;
	close(fd);
	return bytes;
}

static int cmd_index(const struct opts *o)
{
	struct params p;
	struct gen g;
	int rc = 1;
	if (load_params(o->config, &p))
		return 1;
	if (gen_init(&g, o->set, o->dim, o->seed))
		return 2;
	uint32_t dim = o->dim, k = o->k;
	long nq = o->queries;
	float *data = gen_data(&g, o->n, o->seed);
	float *qs = malloc((size_t)nq * dim * sizeof(float));
	uint32_t *keys = malloc((size_t)o->n * sizeof(*keys));
	long *self = pick_items(o->n, nq, o->seed);
	struct t4dx_index_hit *ex = malloc((size_t)nq * (k + 1) * sizeof(*ex));
	struct t4dx_index_hit *h = malloc((size_t)(k + 1) * sizeof(*h));
	double *lat = malloc((size_t)nq * sizeof(*lat));
	uint32_t *nex = malloc((size_t)nq * sizeof(*nex));
	struct t4dx_index *ix = NULL;
	if (!data || !qs || !keys || !self || !ex || !h || !lat || !nex) {
		fprintf(stderr, "vecbench: out of memory\n");
		goto out;
	}
	uint64_t s = o->seed ^ 0x9ae16a3b2f90404fULL;
	for (long i = 0; i < nq; i++)
		gen_one(&g, &s, qs + (size_t)i * dim);
	for (long i = 0; i < o->n; i++)
		keys[i] = (uint32_t)i;

	/* what a flush builds (memtable.max_items is 10,000 by default),
	 * then what a compaction of all of them builds */
	double t0 = now_s(), build10k = 0;
	int e = 0;
	if (o->n > 10000) {
		e = t4dx_index_build(dim, p.m, p.ef_construction, keys, data,
				     10000, &ix);
		build10k = now_s() - t0;
		t4dx_index_free(ix);
		ix = NULL;
		t0 = now_s();
	}
	if (!e)
		e = t4dx_index_build(dim, p.m, p.ef_construction, keys, data,
				     (size_t)o->n, &ix);
	double build = now_s() - t0;
	if (o->n == 10000)
		build10k = build;
	if (e) {
		fprintf(stderr, "vecbench: index build: %s\n",
			t4dx_strerror(e));
		goto out;
	}

	/* the exact answers, timed */
	for (long i = 0; i < nq; i++) {
		t0 = now_s();
		e = t4dx_index_exact_search(data, NULL, (size_t)o->n, dim,
					    qs + (size_t)i * dim, k,
					    ex + (size_t)i * k, &nex[i]);
		lat[i] = (now_s() - t0) * 1e6;
		if (e)
			goto out;
	}
	double ex50 = pct(lat, (size_t)nq, 0.50);
	double ex99 = pct(lat, (size_t)nq, 0.99);

	/* the index at ef_search, 2x and 4x */
	double recall[3] = { 0 }, q50 = 0, q99 = 0;
	for (int r = 0; r < 3; r++) {
		uint32_t ef = p.ef_search << r;
		unsigned hit = 0, want = 0;
		for (long i = 0; i < nq; i++) {
			uint32_t nh;
			t0 = now_s();
			e = t4dx_index_search(ix, qs + (size_t)i * dim, k, ef,
					      h, &nh);
			lat[i] = (now_s() - t0) * 1e6;
			if (e)
				goto out;
			hit += overlap(h, nh, ex + (size_t)i * k, nex[i]);
			want += nex[i];
		}
		recall[r] = want ? (double)hit / want : 0;
		if (r == 0) {
			q50 = pct(lat, (size_t)nq, 0.50);
			q99 = pct(lat, (size_t)nq, 0.99);
		}
	}

	/* what search/@ID asks: an item's vector, k + 1, itself left out */
	for (long i = 0; i < nq; i++) {
		uint32_t nh;
		t0 = now_s();
		e = t4dx_index_search(ix, data + (size_t)self[i] * dim, k + 1,
				      p.ef_search, h, &nh);
		lat[i] = (now_s() - t0) * 1e6;
		if (e)
			goto out;
	}
	double s50 = pct(lat, (size_t)nq, 0.50);
	double s99 = pct(lat, (size_t)nq, 0.99);

	/* tuned as core tunes a loaded index (vector.min_recall): its
	 * time, the recall it measured and the mode it chose; then the
	 * scan mode forced, its recall and latency as above */
	t0 = now_s();
	e = t4dx_index_tune(ix, p.ef_search, (float)p.cfg.vector.min_recall);
	double tune_s = now_s() - t0;
	float tuned_recall = t4dx_index_recall(ix);
	int mode = t4dx_index_mode(ix);
	if (!e)
		e = t4dx_index_tune(ix, p.ef_search, 1.01f);
	if (e) {
		fprintf(stderr, "vecbench: tune: %s\n", t4dx_strerror(e));
		goto out;
	}
	unsigned shit = 0, swant = 0;
	for (long i = 0; i < nq; i++) {
		uint32_t nh;
		t0 = now_s();
		e = t4dx_index_search(ix, qs + (size_t)i * dim, k,
				      p.ef_search, h, &nh);
		lat[i] = (now_s() - t0) * 1e6;
		if (e)
			goto out;
		shit += overlap(h, nh, ex + (size_t)i * k, nex[i]);
		swant += nex[i];
	}
	double scan_recall = swant ? (double)shit / swant : 0;
	double sc50 = pct(lat, (size_t)nq, 0.50);
	double sc99 = pct(lat, (size_t)nq, 0.99);
	for (long i = 0; i < nq; i++) {
		uint32_t nh;
		t0 = now_s();
		e = t4dx_index_search(ix, data + (size_t)self[i] * dim, k + 1,
				      p.ef_search, h, &nh);
		lat[i] = (now_s() - t0) * 1e6;
		if (e)
			goto out;
	}
	double ss50 = pct(lat, (size_t)nq, 0.50);
	double ss99 = pct(lat, (size_t)nq, 0.99);

	/* a 10,000-item build only where there were 10,000 items */
	char b10k[48] = "";
	if (o->n >= 10000)
		snprintf(b10k, sizeof(b10k), " build10k_s=%.3f", build10k);
	printf("workload=index set=%s n=%ld dim=%u m=%u ef_construction=%u "
	       "ef_search=%u params=%s queries=%ld k=%u build_s=%.3f "
	       "build_per_10k_s=%.3f%s recall10=%.4f recall10_ef2x=%.4f "
	       "recall10_ef4x=%.4f q_p50_us=%.1f q_p99_us=%.1f "
	       "exact_p50_us=%.1f exact_p99_us=%.1f self_p50_us=%.1f "
	       "self_p99_us=%.1f index_bytes=%zu file_bytes=%ld "
	       "data_bytes=%zu tune_s=%.3f tuned_recall=%.4f mode=%s "
	       "min_recall=%g scan_recall10=%.4f scan_p50_us=%.1f "
	       "scan_p99_us=%.1f scan_self_p50_us=%.1f "
	       "scan_self_p99_us=%.1f code_bytes=%zu rss_kib=%ld\n",
	       o->set, o->n, dim, p.m, p.ef_construction, p.ef_search,
	       p.from_core ? "config" : "default", nq, k, build,
	       build * 10000.0 / (double)o->n, b10k, recall[0],
	       recall[1], recall[2], q50, q99, ex50, ex99, s50, s99,
	       t4dx_index_bytes(ix) - t4dx_index_code_bytes(ix),
	       file_bytes_of(ix, o->tmpdir),
	       (size_t)o->n * dim * sizeof(float), tune_s,
	       (double)tuned_recall,
	       mode == T4DX_INDEX_SCAN ? "scan" : "graph",
	       p.cfg.vector.min_recall, scan_recall, sc50, sc99, ss50, ss99,
	       t4dx_index_code_bytes(ix), peak_rss_kib());
	rc = 0;
out:
	t4dx_index_free(ix);
	free(data);
	free(qs);
	free(keys);
	free(self);
	free(ex);
	free(h);
	free(lat);
	free(nex);
	free(g.centres);
	return rc;
}

/* ---- store ---------------------------------------------------------------- */

/* The id of item i: a fixed tag, then i big-endian. */
static void item_id(long i, uint8_t id[16])
{
	static const uint8_t tag[8] = { 0x74, 0x34, 0x64, 0x78,
					0x76, 0x65, 0x63, 0x00 };
	memcpy(id, tag, 8);
	for (int b = 0; b < 8; b++)
		id[15 - b] = (uint8_t)((uint64_t)i >> (8 * b));
}

static int put_item(struct t4dx *db, long i, const float *x, uint32_t dim,
		    uint64_t *lsn)
{
	struct t4dx_entry e;
	char name[32], text[64];
	int n = snprintf(name, sizeof(name), "v%07ld", i);
	int len = snprintf(text, sizeof(text), "vector item %ld\n", i);
	memset(&e, 0, sizeof(e));
	int rc = t4dx_entry_set_key(&e, T4DX_ROOT_INO, name, (size_t)n);
	if (rc)
		return rc;
	int64_t now = (int64_t)time(NULL) * 1000000000;
	e.mode = S_IFREG | 0644;
	e.uid = getuid();
	e.gid = getgid();
	e.atime_ns = e.mtime_ns = e.ctime_ns = e.event_time_ns = now;
	item_id(i, e.id);
	e.importance = 0.5;
	e.type = T4DX_EPISODIC;
	e.content = t4dx_blob_from(text, (size_t)len);
	e.size = (uint64_t)len;
	if (x) {
		e.vec_src = T4DX_VEC_HAND;
		e.vec = t4dx_vec_new(x, dim);
	}
	if (!e.content || (x && !e.vec))
		rc = ENOMEM;
	else
		rc = t4dx_put(db, &e, T4DX_NOWAIT, lsn);
	t4dx_entry_clear(&e);
	return rc;
}

static int open_store(const char *dir, const struct params *p,
		      struct t4dx **db)
{
	char msg[512];
	int rc = t4dx_open(dir, &p->cfg, db, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "vecbench: open %s: %s\n", dir, msg);
	return rc;
}

static int write_ids(const char *path, const long *self, long nq)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "vecbench: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (long i = 0; i < nq; i++) {
		uint8_t id[16];
		item_id(self[i], id);
		for (int b = 0; b < 16; b++)
			fprintf(f, "%02x", id[b]);
		fputc('\n', f);
	}
	return fclose(f) ? 1 : 0;
}

static int cmd_store(const struct opts *o, const char *dir)
{
	struct params p;
	struct gen g;
	struct t4dx *db = NULL;
	int rc = 1, e = 0;
	if (load_params(o->config, &p))
		return 1;
	/* only the vectors set here, whatever CONFIG says */
	strcpy(p.cfg.vector.embedder, "off");
	if (gen_init(&g, o->set, o->dim, o->seed))
		return 2;
	if (p.cfg.vector.dim != o->dim) {
		fprintf(stderr, "vecbench: the store's vector.dim is %u, not "
			"%u\n", p.cfg.vector.dim, o->dim);
		free(g.centres);
		return 2;
	}
	uint32_t dim = o->dim, k = o->k;
	long nq = o->queries;
	float *data = gen_data(&g, o->n, o->seed);
	long *self = pick_items(o->n, nq, o->seed);
	double *lat = malloc((size_t)nq * sizeof(*lat));
	if (!data || !self || !lat) {
		fprintf(stderr, "vecbench: out of memory\n");
		goto out;
	}
	if (o->ids && write_ids(o->ids, self, nq))
		goto out;
	if (open_store(dir, &p, &db))
		goto out;
	double t0 = now_s();
	uint64_t lsn = 0;
	for (long i = 0; i < o->n && !e && !o->reopen; i++)
		e = put_item(db, i, o->novec ? NULL : data + (size_t)i * dim,
			     dim, &lsn);
	if (!e && lsn)
		e = t4dx_wait(db, lsn);
	double put_s = now_s() - t0;
	if (e) {
		fprintf(stderr, "vecbench: put: %s\n", t4dx_strerror(e));
		goto out;
	}
	t0 = now_s();
	e = o->reopen ? 0 : t4dx_close(db);
	if (!o->reopen)
		db = NULL;
	double close_s = now_s() - t0;
	if (e) {
		fprintf(stderr, "vecbench: close: %s\n", t4dx_strerror(e));
		goto out;
	}
	t0 = now_s();
	if (!db && open_store(dir, &p, &db))
		goto out;
	double open_s = now_s() - t0;

	/* in-process, the engine's search of what search/@ID asks */
	/* and its recall against the engine's exact search of the same
	 * store (every segment read whole, untimed) */
	size_t found = 0, same = 0, truth = 0;
	struct t4dx_search_opts so, xo;
	t4dx_search_defaults(&so);
	so.k = k + 1;
	xo = so;
	xo.exact = true;
	for (long i = 0; i < nq && !o->novec; i++) {
		struct t4dx_hit *hits = NULL, *xh = NULL;
		size_t nh = 0, nx = 0;
		const float *q = data + (size_t)self[i] * dim;
		t0 = now_s();
		e = t4dx_search(db, q, dim, &so, &hits, &nh);
		lat[i] = (now_s() - t0) * 1e6;
		if (!e)
			e = t4dx_search(db, q, dim, &xo, &xh, &nx);
		for (size_t a = 0; !e && a < nx; a++)
			for (size_t b = 0; b < nh; b++)
				if (!memcmp(xh[a].e.id, hits[b].e.id, 16)) {
					same++;
					break;
				}
		truth += nx;
		t4dx_hits_free(hits, nh);
		t4dx_hits_free(xh, nx);
		if (e) {
			fprintf(stderr, "vecbench: search: %s\n",
				t4dx_strerror(e));
			goto out;
		}
		found += nh;
	}
	size_t ns = o->novec ? 0 : (size_t)nq;
	double s50 = pct(lat, ns, 0.50), s99 = pct(lat, ns, 0.99);
	printf("workload=store set=%s n=%ld dim=%u vectors=%d put_s=%.3f "
	       "close_s=%.3f open_s=%.3f search_p50_us=%.1f "
	       "search_p99_us=%.1f search_results=%.2f search_recall=%.4f "
	       "rss_kib=%ld\n",
	       o->set, o->n, dim, !o->novec, put_s, close_s, open_s, s50,
	       s99, ns ? (double)found / (double)ns : 0.0,
	       truth ? (double)same / (double)truth : 0.0, peak_rss_kib());
	rc = 0;
out:
	if (db && t4dx_close(db) && !rc) {
		fprintf(stderr, "vecbench: close failed\n");
		rc = 1;
	}
	free(data);
	free(self);
	free(lat);
	free(g.centres);
	return rc;
}

/* ---- query through the mount ------------------------------------------------ */

/* List one query directory as ls does; the count of results, or -errno. */
static long list_query(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	long n = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "results.json"))
			n++;
	int err = errno;
	closedir(d);
	return err ? -err : n;
}

static int cmd_query(const struct opts *o, const char *mnt)
{
	char path[4096], line[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/search", mnt);
	if (stat(path, &st) || !S_ISDIR(st.st_mode)) {
		printf("workload=query available=0\n");
		return 0;
	}
	FILE *f = o->ids ? fopen(o->ids, "r") : NULL;
	if (!f) {
		fprintf(stderr, "vecbench: no ids file\n");
		return 2;
	}
	size_t cap = 256, n = 0;
	long errors = 0, results = 0;
	double *lat = malloc(cap * sizeof(*lat)), start = now_s();
	while (lat && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!*line)
			continue;
		if (o->max_seconds > 0 && now_s() - start > o->max_seconds)
			break;
		snprintf(path, sizeof(path), "%s/search/%s%s?k=%u", mnt,
			 o->text ? "" : "@", line, o->k);
		double t0 = now_s();
		long r = list_query(path);
		double us = (now_s() - t0) * 1e6;
		if (r < 0) {
			if (errors++ < 3)
				fprintf(stderr, "vecbench: ls %s: %s\n", path,
					strerror((int)-r));
			continue;
		}
		results += r;
		if (n == cap) {
			double *nl = realloc(lat, 2 * cap * sizeof(*lat));
			if (!nl)
				break;
			lat = nl;
			cap *= 2;
		}
		lat[n++] = us;
	}
	fclose(f);
	if (!lat) {
		fprintf(stderr, "vecbench: out of memory\n");
		return 1;
	}
	double p50 = pct(lat, n, 0.50), p99 = pct(lat, n, 0.99);
	printf("workload=query available=1 k=%u ops=%zu errors=%ld "
	       "p50_us=%.1f p99_us=%.1f max_us=%.1f results=%.2f\n",
	       o->k, n, errors, p50, p99, n ? lat[n - 1] : 0.0,
	       n ? (double)results / (double)n : 0.0);
	free(lat);
	return 0;
}

/* ---- main ------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vecbench index -n N -S uniform|clustered [-c CONFIG] "
		"[-q QUERIES] [-k K] [-T DIR]\n"
		"       vecbench store DATA_DIR -n N -S SET [-c CONFIG] "
		"[-q QUERIES] [--ids FILE] [--novec] [--reopen]\n"
		"       vecbench query MOUNT --ids FILE [--text] [-k K] "
		"[-m MAX_SECONDS]\n"
		"common: -d DIM (256), --seed S (1)\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "ids", required_argument, NULL, 'i' },
		{ "novec", no_argument, NULL, 'V' },
		{ "reopen", no_argument, NULL, 'R' },
		{ "text", no_argument, NULL, 'x' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = {
		.n = 10000, .dim = 256, .set = "clustered", .queries = 200,
		.k = 10, .seed = 1, .tmpdir = "/var/tmp",
	};
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	optind = 2;
	int c;
	while ((c = getopt_long(argc, argv, "n:d:S:c:q:k:T:m:h", lopts,
				NULL)) != -1) {
		switch (c) {
		case 'n': o.n = atol(optarg); break;
		case 'd': o.dim = (uint32_t)atol(optarg); break;
		case 'S': o.set = optarg; break;
		case 'c': o.config = optarg; break;
		case 'q': o.queries = atol(optarg); break;
		case 'k': o.k = (uint32_t)atol(optarg); break;
		case 'T': o.tmpdir = optarg; break;
		case 'm': o.max_seconds = atof(optarg); break;
		case 'i': o.ids = optarg; break;
		case 'V': o.novec = true; break;
		case 'R': o.reopen = true; break;
		case 'x': o.text = true; break;
		case 's': o.seed = strtoull(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (o.n < 1 || o.n > UINT32_MAX || o.dim < 1 ||
	    o.dim > T4DX_INDEX_DIM_MAX || o.queries < 1 || o.k < 1 ||
	    o.k >= T4DX_SEARCH_K_MAX ||
	    (strcmp(o.set, "uniform") && strcmp(o.set, "clustered"))) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "index") && optind == argc)
		return cmd_index(&o);
	if (!strcmp(cmd, "store") && optind == argc - 1)
		return cmd_store(&o, argv[optind]);
	if (!strcmp(cmd, "query") && optind == argc - 1)
		return cmd_query(&o, argv[optind]);
	usage(stderr);
	return 2;
}
