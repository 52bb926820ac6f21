/*
 * test_search.c - search through the segments' vector indexes: the index
 * file written with its segment and before the MANIFEST names it, a crash
 * between the two, the merge rules (deleted and overwritten items) after
 * flushes and nrem, recall against exact search, and a damaged or missing
 * index file (exact fallback, alert, rebuilt by the health thread).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "faults.h"
#include "index.h"
#include "io.h"
#include "t4dx.h"
#include "unit.h"
#include "vec.h"

#define R T4DX_ROOT_INO
#define DIM 16
#define MIN_ITEMS 50

/* The tests' configuration: no embedder, dim DIM, an index from
 * MIN_ITEMS items. */
static void test_config(struct t4dx_config *c)
{
	t4dx_config_defaults(c);
	strcpy(c->vector.embedder, "off");
	c->vector.dim = DIM;
	c->vector.index_min_items = MIN_ITEMS;
}

static struct t4dx *open_with(const char *dir, const struct t4dx_config *c)
{
	struct t4dx *db = NULL;
	char msg[256];
	int rc = t4dx_open(dir, c, &db, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
	return db;
}

static struct t4dx *open_db(const char *dir, double health_s)
{
	struct t4dx_config c;
	test_config(&c);
	if (health_s > 0)
		c.health.interval_s = health_s;
	return open_with(dir, &c);
}

/* Clustered vectors: item i lies near centre i % nclusters. */
static void vector_of(unsigned i, unsigned nclusters, float *x)
{
	unsigned c = i % nclusters, sc = 1000 + c, si = 7 + i * 31;
	for (unsigned d = 0; d < DIM; d++)
		x[d] = unit_rnd(&sc) + 0.15f * unit_rnd(&si);
}

static void put_vec_in(struct t4dx *db, uint64_t parent, const char *name,
		       const float *x, double kappa)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, parent, name, strlen(name)) == 0);
	e.mode = S_IFREG | 0644;
	e.kappa = kappa;
	e.content = t4dx_blob_from(name, strlen(name));
	e.size = strlen(name);
	e.vec_src = T4DX_VEC_HAND;
	e.vec = t4dx_vec_new(x, DIM);
	REQUIRE(e.vec && t4dx_put(db, &e, 0, NULL) == 0);
	t4dx_entry_clear(&e);
}

static void put_vec(struct t4dx *db, const char *name, const float *x,
		    double kappa)
{
	put_vec_in(db, R, name, x, kappa);
}

static void put_items(struct t4dx *db, unsigned from, unsigned to,
		      unsigned nclusters)
{
	for (unsigned i = from; i < to; i++) {
		char name[32];
		float x[DIM];
		snprintf(name, sizeof(name), "item-%05u", i);
		vector_of(i, nclusters, x);
		put_vec(db, name, x, 0.5);
	}
}

/* The result of a search with options o as "path score" lines. */
static char *search_text_opts(struct t4dx *db, const float *q,
			      const struct t4dx_search_opts *o)
{
	struct t4dx_hit *h;
	size_t n;
	REQUIRE(t4dx_search(db, q, DIM, o, &h, &n) == 0);
	struct t4dx_buf b = { 0 };
	for (size_t i = 0; i < n; i++) {
		char line[300];
		int len = snprintf(line, sizeof(line), "%s %.6f\n", h[i].path,
				   h[i].score);
		REQUIRE(t4dx_buf_add(&b, line, (size_t)len) == 0);
	}
	REQUIRE(t4dx_buf_add(&b, "", 1) == 0);
	t4dx_hits_free(h, n);
	return (char *)b.p;
}

/* The same with k and exact, the other options open. */
static char *search_text(struct t4dx *db, const float *q, uint32_t k,
			 bool exact)
{
	struct t4dx_search_opts o;
	t4dx_search_defaults(&o);
	o.k = k;
	o.exact = exact;
	return search_text_opts(db, q, &o);
}

/* Index and exact search agree on q. */
static bool same_as_exact(struct t4dx *db, const float *q, uint32_t k)
{
	char *a = search_text(db, q, k, false), *b = search_text(db, q, k, true);
	bool same = !strcmp(a, b);
	if (!same)
		fprintf(stderr, "index:\n%sexact:\n%s", a, b);
	free(a);
	free(b);
	return same;
}

static bool has_file(const char *dir, const char *suffix, unsigned *count)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seg", dir);
	DIR *d = opendir(path);
	REQUIRE(d);
	struct dirent *de;
	unsigned n = 0;
	size_t sl = strlen(suffix);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		n += l > sl && !strcmp(de->d_name + l - sl, suffix);
	}
	closedir(d);
	if (count)
		*count = n;
	return n > 0;
}

/* The ids of the segments the MANIFEST names, as text. */
static char *manifest_ids(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "jq -c '[.segments[].id]' %s/MANIFEST",
		 dir);
	FILE *p = popen(cmd, "r");
	REQUIRE(p);
	static char out[4096];
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	pclose(p);
	return out;
}

/* Every index file of seg/ belongs to a segment the MANIFEST names, and
 * every named segment with at least MIN_ITEMS entries has one. */
static bool indexes_match(const char *dir, bool say)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd),
		 "bash -c 'cd %s && for f in seg/*.hnsw; do [ -e \"$f\" ] || continue; "
		 "[ -e MANIFEST ] || exit 1; "
		 "id=$(basename \"$f\" .hnsw); id=$((10#$id)); "
		 "jq -e --argjson id $id \"any(.segments[]; .id == \\$id)\" "
		 "MANIFEST >/dev/null || exit 1; done; [ -e MANIFEST ] || exit 0; "
		 "for id in $(jq \".segments[] | select(.items >= %d) | .id\" "
		 "MANIFEST); do [ -e seg/$(printf %%020d $id).hnsw ] || "
		 "exit 2; done'", dir, MIN_ITEMS);
	int rc = system(cmd);
	if (rc && say)
		fprintf(stderr, "index files and MANIFEST differ (%d): %s\n",
			rc, manifest_ids(dir));
	return rc == 0;
}

static bool indexes_match_manifest(const char *dir)
{
	return indexes_match(dir, true);
}

/* An index file appears with its segment, before the MANIFEST names
 * it; small segments get none. */
static void test_index_written(void)
{
	const char *dir = unit_tmpdir("sidx");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 10, 4);
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(!has_file(dir, ".hnsw", NULL));   /* below MIN_ITEMS */
	put_items(db, 10, 200, 4);
	CHECK(!has_file(dir, ".hnsw", NULL));
	/* renames of a flush: segment, index, MANIFEST; the third fails,
	 * so the index is in place while no MANIFEST names its segment */
	faults_arm(FAULT_RENAME, 3, EIO, 0);
	CHECK(t4dx_flush(db) != 0);
	faults_reset();
	CHECK(has_file(dir, ".hnsw", NULL));
	CHECK(!indexes_match(dir, false));
	CHECK(strchr(manifest_ids(dir), ',') == NULL);  /* one segment */
	/* the next flush writes another segment and its index; the
	 * unlisted ones stay until the next start removes the index */
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(strchr(manifest_ids(dir), ',') != NULL);  /* two */
	float q[DIM];
	vector_of(3, 4, q);
	CHECK(same_as_exact(db, q, 10));
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_db(dir, 0);
	CHECK(indexes_match_manifest(dir));
	CHECK(same_as_exact(db, q, 10));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A crash between the index file and the MANIFEST: the next start
 * removes the index of the segment no MANIFEST names, and finds every
 * item from the log. */
static void test_crash_before_manifest(void)
{
	const char *dir = unit_tmpdir("scrash");
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx *db = open_db(dir, 0);
		put_items(db, 0, 120, 6);
		faults_arm(FAULT_RENAME, 3, EIO, 0);
		int rc = t4dx_flush(db);
		_exit(rc && has_file(dir, ".hnsw", NULL) ? 0 : 2); /* a crash */
	}
	int ws;
	waitpid(pid, &ws, 0);
	REQUIRE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	struct t4dx *db = open_db(dir, 0);
	CHECK(!has_file(dir, ".hnsw", NULL));
	CHECK(indexes_match_manifest(dir));
	float q[DIM];
	vector_of(5, 6, q);
	char *t = search_text(db, q, 200, false);
	unsigned lines = 0;
	for (char *p = t; *p; p++)
		lines += *p == '\n';
	CHECK_EQ_INT(lines, 120);
	free(t);
	/* the id is used again: its new index is this segment's */
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(indexes_match_manifest(dir));
	CHECK(same_as_exact(db, q, 10));
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_db(dir, 0);
	CHECK(same_as_exact(db, q, 10));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Does any result name item i? */
static bool found(const char *text, unsigned i)
{
	char name[32];
	snprintf(name, sizeof(name), "item-%05u ", i);
	return strstr(text, name) != NULL;
}

/* Deleted and overwritten items, in the memtable and in a newer segment,
 * hide what an indexed segment holds; after nrem too. */
static void test_merge_rules(void)
{
	const char *dir = unit_tmpdir("smerge");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 300, 5);
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(has_file(dir, ".hnsw", NULL));
	float q[DIM], far[DIM];
	vector_of(0, 5, q);             /* cluster 0: items 0, 5, 10, ... */
	for (unsigned d = 0; d < DIM; d++)
		far[d] = -q[d];
	char *t = search_text(db, q, 10, false);
	CHECK(found(t, 0) && found(t, 5));
	free(t);
	/* 0 deleted and 5 moved far away, in the memtable ... */
	CHECK_EQ_INT(t4dx_delete(db, R, "item-00000", 10, false, 0, NULL), 0);
	put_vec(db, "item-00005", far, 0.5);
	for (int round = 0; round < 3; round++) {
		t = search_text(db, q, 10, false);
		CHECK(!found(t, 0) && !found(t, 5));
		free(t);
		CHECK(same_as_exact(db, q, 10));
		CHECK(same_as_exact(db, q, 60));
		/* the moved one is found where it lies now, once */
		t = search_text(db, far, 3, false);
		CHECK(found(t, 5) && !found(t, 0));
		CHECK(strstr(t, "item-00005 ") == strstr(t, "item-0000"));
		free(t);
		CHECK(same_as_exact(db, far, 10));
		/* ... then in a newer segment, then merged by nrem */
		if (round == 0)
			REQUIRE(t4dx_flush(db) == 0);
		else if (round == 1)
			REQUIRE(t4dx_compact(db, T4DX_COMPACT_NREM, NULL,
					     NULL) == 0);
	}
	CHECK(indexes_match_manifest(dir));
	unsigned n;
	has_file(dir, ".hnsw", &n);
	CHECK_EQ_INT(n, 1);             /* the inputs' went with them */
	/* after a restart, from the index files */
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_db(dir, 0);
	t = search_text(db, q, 10, false);
	CHECK(!found(t, 0) && !found(t, 5));
	free(t);
	CHECK(same_as_exact(db, q, 10));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Filters that leave few candidates: the index is asked for more. */
static void test_filters(void)
{
	const char *dir = unit_tmpdir("sfilt");
	struct t4dx *db = open_db(dir, 0);
	for (unsigned i = 0; i < 400; i++) {
		char name[32];
		float x[DIM];
		snprintf(name, sizeof(name), "item-%05u", i);
		vector_of(i, 8, x);
		/* one item in 40 has kappa 0.9 */
		put_vec(db, name, x, i % 40 == 7 ? 0.9 : 0.2);
	}
	REQUIRE(t4dx_flush(db) == 0);
	float q[DIM];
	vector_of(1, 8, q);
	struct t4dx_search_opts o;
	t4dx_search_defaults(&o);
	o.min_kappa = 0.8;
	struct t4dx_hit *a, *b;
	size_t na, nb;
	REQUIRE(t4dx_search(db, q, DIM, &o, &a, &na) == 0);
	o.exact = true;
	REQUIRE(t4dx_search(db, q, DIM, &o, &b, &nb) == 0);
	CHECK_EQ_INT(na, 10);
	CHECK_EQ_INT(nb, 10);
	for (size_t i = 0; i < na && i < nb; i++)
		CHECK(!strcmp(a[i].path, b[i].path) && a[i].e.kappa == 0.9);
	t4dx_hits_free(a, na);
	t4dx_hits_free(b, nb);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

static uint64_t mkdir_in(struct t4dx *db, uint64_t parent, const char *name)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, parent, name, strlen(name)) == 0);
	e.mode = S_IFDIR | 0755;
	REQUIRE(t4dx_put(db, &e, 0, NULL) == 0);
	return e.ino;
}

/* A hit 300 directories down has its whole path (from review: past
 * 256 levels the search failed with ENOMEM), before and after a flush. */
static void test_deep_path(void)
{
	const char *dir = unit_tmpdir("sdeep");
	struct t4dx *db = open_db(dir, 0);
	uint64_t at = R;
	char want[300 * 2 + 16] = "";
	for (int i = 0; i < 300; i++) {
		at = mkdir_in(db, at, "d");
		strcat(want, "d/");
	}
	strcat(want, "deep");
	float x[DIM];
	vector_of(1, 1, x);
	put_vec_in(db, at, "deep", x, 0.5);
	for (int pass = 0; pass < 2; pass++) {
		struct t4dx_search_opts o;
		t4dx_search_defaults(&o);
		struct t4dx_hit *h = NULL;
		size_t n = 0;
		CHECK_EQ_INT(t4dx_search(db, x, DIM, &o, &h, &n), 0);
		CHECK(n == 1 && h && !strcmp(h[0].path, want));
		t4dx_hits_free(h, n);
		REQUIRE(t4dx_flush(db) == 0);
	}
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Every path of a search under dir starts with prefix, and the index
 * finds what exact search finds. */
static bool all_under(struct t4dx *db, uint64_t dir, const float *q,
		      const char *prefix)
{
	struct t4dx_search_opts o;
	t4dx_search_defaults(&o);
	o.under = dir;
	struct t4dx_hit *a, *b;
	size_t na, nb;
	REQUIRE(t4dx_search(db, q, DIM, &o, &a, &na) == 0);
	o.exact = true;
	REQUIRE(t4dx_search(db, q, DIM, &o, &b, &nb) == 0);
	bool ok = na == 10 && nb == 10;
	for (size_t i = 0; ok && i < na; i++)
		ok = !strncmp(a[i].path, prefix, strlen(prefix)) &&
		     !strcmp(a[i].path, b[i].path);
	if (!ok)
		fprintf(stderr, "under %s: %zu/%zu hits, first %s\n", prefix,
			na, nb, na ? a[0].path : "-");
	t4dx_hits_free(a, na);
	t4dx_hits_free(b, nb);
	return ok;
}

/* Directories of indexed segments: paths and the under filter, across a
 * rename of the directory, a flush and nrem. */
static void test_dirs(void)
{
	const char *dir = unit_tmpdir("sdirs");
	struct t4dx *db = open_db(dir, 0);
	uint64_t a = mkdir_in(db, R, "a"), b = mkdir_in(db, R, "b");
	uint64_t ab = mkdir_in(db, a, "deep");
	for (unsigned i = 0; i < 300; i++) {
		char name[32];
		float x[DIM];
		snprintf(name, sizeof(name), "item-%05u", i);
		vector_of(i, 3, x);
		put_vec_in(db, i % 3 == 0 ? a : i % 3 == 1 ? b : ab, name, x,
			   0.5);
	}
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(has_file(dir, ".hnsw", NULL));
	float q[DIM];
	vector_of(1, 3, q);             /* b's cluster */
	CHECK(all_under(db, a, q, "a/"));
	CHECK(all_under(db, b, q, "b/"));
	CHECK(all_under(db, ab, q, "a/deep/"));
	/* a renamed in the memtable, then flushed, then merged */
	REQUIRE(t4dx_rename(db, R, "a", 1, b, "c", 1, 0, NULL) == 0);
	for (int round = 0; round < 3; round++) {
		CHECK(all_under(db, a, q, "b/c/"));
		CHECK(all_under(db, ab, q, "b/c/deep/"));
		CHECK(same_as_exact(db, q, 50));
		if (round == 0)
			REQUIRE(t4dx_flush(db) == 0);
		else if (round == 1)
			REQUIRE(t4dx_compact(db, T4DX_COMPACT_NREM, NULL,
					     NULL) == 0);
	}
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

struct reader {
	struct t4dx *db;
	atomic_bool stop;
	atomic_uint searches, bad;
};

/* Search until told to stop; count results that hold a deleted item
 * ("gone-*"), are out of order, or failed. */
static void *reader_main(void *arg)
{
	struct reader *r = arg;
	float q[DIM];
	vector_of(0, 4, q);
	while (!atomic_load(&r->stop)) {
		struct t4dx_search_opts o;
		t4dx_search_defaults(&o);
		o.k = 50;
		struct t4dx_hit *h;
		size_t n;
		if (t4dx_search(r->db, q, DIM, &o, &h, &n)) {
			r->bad++;
			continue;
		}
		for (size_t i = 0; i < n; i++)
			if (!strncmp(h[i].path, "gone-", 5) ||
			    (i && h[i].score > h[i - 1].score))
				r->bad++;
		t4dx_hits_free(h, n);
		r->searches++;
	}
	return NULL;
}

/* Searches while flushes (building indexes), writes and nrem go on:
 * every search succeeds, in order, and never shows a deleted item. */
static void test_concurrent(void)
{
	const char *dir = unit_tmpdir("sconc");
	struct t4dx *db = open_db(dir, 0);
	/* deleted items lying right at the query, in an indexed segment */
	float q[DIM];
	vector_of(0, 4, q);
	for (unsigned i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "gone-%02u", i);
		put_vec(db, name, q, 0.5);
	}
	put_items(db, 0, 200, 4);
	REQUIRE(t4dx_flush(db) == 0);
	for (unsigned i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof(name), "gone-%02u", i);
		REQUIRE(t4dx_delete(db, R, name, strlen(name), false, 0,
				    NULL) == 0);
	}
	struct reader r = { .db = db };
	atomic_init(&r.stop, false);
	atomic_init(&r.searches, 0);
	atomic_init(&r.bad, 0);
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, reader_main, &r) == 0);
	for (unsigned round = 0; round < 4; round++) {
		put_items(db, 200 + round * 150, 350 + round * 150, 4);
		REQUIRE(t4dx_flush(db) == 0);
		if (round == 2)
			REQUIRE(t4dx_compact(db, T4DX_COMPACT_NREM, NULL,
					     NULL) == 0);
	}
	/* at least a few searches saw the changes */
	while (atomic_load(&r.searches) < 20)
		usleep(1000);
	atomic_store(&r.stop, true);
	pthread_join(t, NULL);
	CHECK_EQ_INT(atomic_load(&r.bad), 0);
	CHECK(same_as_exact(db, q, 50));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* On a clustered set, search through the indexes finds what exact
 * search finds. */
static void test_recall(void)
{
	const char *dir = unit_tmpdir("srecall");
	struct t4dx *db = open_db(dir, 0);
	/* two indexed segments and the memtable */
	put_items(db, 0, 1500, 30);
	REQUIRE(t4dx_flush(db) == 0);
	put_items(db, 1500, 3000, 30);
	REQUIRE(t4dx_flush(db) == 0);
	put_items(db, 3000, 3100, 30);
	unsigned n;
	has_file(dir, ".hnsw", &n);
	CHECK_EQ_INT(n, 2);
	unsigned same = 0, queries = 60;
	for (unsigned i = 0; i < queries; i++) {
		float q[DIM];
		vector_of(5000 + i * 7, 30, q);
		same += same_as_exact(db, q, 10);
	}
	fprintf(stderr, "recall: %u of %u queries as exact\n", same, queries);
	CHECK(same == queries);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* The largest segment is searched first and sets the floor of the next
 * graph search: a small indexed segment holding the only items of some
 * clusters still gives its best ones, and one holding nothing near the
 * query gives nothing that should not be there. */
static void test_small_segment_after_large(void)
{
	const char *dir = unit_tmpdir("ssmall");
	struct t4dx *db = open_db(dir, 0);
	/* clusters 0..39: items of clusters 0..29 in a segment of 1,800,
	 * then a segment of 80 holding clusters 30..39 (and a few of the
	 * others), then a memtable of 20 */
	for (unsigned i = 0; i < 1800; i++) {
		char name[32];
		float x[DIM];
		snprintf(name, sizeof(name), "big-%05u", i);
		vector_of(i / 30 * 40 + i % 30, 40, x);
		put_vec(db, name, x, 0.5);
	}
	REQUIRE(t4dx_flush(db) == 0);
	put_items(db, 10000, 10080, 40);
	REQUIRE(t4dx_flush(db) == 0);
	put_items(db, 20000, 20020, 40);
	unsigned n;
	has_file(dir, ".hnsw", &n);
	CHECK_EQ_INT(n, 2);
	unsigned same = 0, queries = 40;
	for (unsigned i = 0; i < queries; i++) {
		float q[DIM];
		vector_of(30000 + i, 40, q);    /* clusters 0..39 in turn */
		same += same_as_exact(db, q, 10);
	}
	CHECK_EQ_INT(same, queries);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* vector_of, of unit length (as an index holds them). */
static void unit_vector_of(unsigned i, unsigned nclusters, float *x)
{
	double n = 0;
	vector_of(i, nclusters, x);
	for (unsigned d = 0; d < DIM; d++)
		n += (double)x[d] * x[d];
	for (unsigned d = 0; d < DIM; d++)
		x[d] = (float)(x[d] / sqrt(n));
}

/* A graph search given a floor (the worst score the caller holds) stops
 * short of its breadth, and still finds what scores above the floor. */
static void test_index_floor(void)
{
	enum { N = 1000 };
	float *v = malloc(sizeof(*v) * N * DIM);
	uint32_t *keys = malloc(sizeof(*keys) * N);
	struct t4dx_index_hit *h = malloc(sizeof(*h) * N);
	struct t4dx_index_hit *x = malloc(sizeof(*x) * N);
	REQUIRE(v && keys && h && x);
	for (unsigned i = 0; i < N; i++) {
		unit_vector_of(i, 30, v + i * DIM);
		keys[i] = i;
	}
	/* a sparse graph (m 2: 4 links a node at level 0) whose walk
	 * counts: with breadth 400 the plain search returns 400 nodes, one
	 * above a floor no node reaches is a search of breadth
	 * max(400 / 8, 16), which meets fewer */
	struct t4dx_index *ix;
	REQUIRE(t4dx_index_build(DIM, 2, 50, keys, v, N, &ix) == 0);
	float q[DIM];
	unit_vector_of(N + 3, 30, q);
	uint32_t n;
	CHECK_EQ_INT(t4dx_index_search(ix, q, 400, 400, h, &n), 0);
	CHECK_EQ_INT(n, 400);
	CHECK_EQ_INT(t4dx_index_search_above(ix, q, 400, 400, -INFINITY, h,
					     &n), 0);
	CHECK_EQ_INT(n, 400);
	/* nothing can score 2 (unit vectors): it stops at once */
	CHECK_EQ_INT(t4dx_index_search_above(ix, q, 400, 400, 2.0f, h, &n),
		     0);
	CHECK(n > 0 && n < 400);
	CHECK_EQ_INT(t4dx_index_search_above(ix, q, 400, 400, NAN, h, &n),
		     EINVAL);
	t4dx_index_free(ix);

	/* a denser graph: with the floor at the exact 10th best score, the
	 * 10 best are those of exact search for queries near the data (far
	 * from every cluster, the narrow walk may stay in the wrong one) */
	REQUIRE(t4dx_index_build(DIM, 16, 100, keys, v, N, &ix) == 0);
	unsigned same = 0, queries = 40;
	for (unsigned i = 0; i < queries; i++) {
		unit_vector_of(N + i * 7, 30, q);
		uint32_t nx;
		REQUIRE(t4dx_index_exact_search(v, keys, N, DIM, q, 10, x,
						&nx) == 0);
		REQUIRE(nx == 10);
		REQUIRE(t4dx_index_search_above(ix, q, 40, 64,
						x[9].score - 1e-4f, h,
						&n) == 0);
		bool ok = n >= 10;
		for (unsigned j = 0; ok && j < 10; j++)
			ok = h[j].key == x[j].key;
		same += ok;
	}
	CHECK_EQ_INT(same, queries);
	t4dx_index_free(ix);
	free(v);
	free(keys);
	free(h);
	free(x);
}

/* Uniformly random vectors (no neighbourhoods) in graphs built and
 * searched narrowly (m 2, ef_construction 4, ef_search 1): with
 * vector.min_recall above 1 every index answers by its scan and the
 * engine as exact search does; with 0 the graphs answer, and miss some;
 * the default (0.99) measures them and takes the scan. */
static struct t4dx *open_tuned(const char *dir, double min_recall)
{
	struct t4dx_config c;
	test_config(&c);
	c.vector.index_m = 2;
	c.vector.ef_construction = 4;
	c.vector.ef_search = 1;
	c.vector.min_recall = min_recall;
	return open_with(dir, &c);
}

static void random_vector(unsigned i, float *x)
{
	unsigned st = 99 + i * 7919;
	for (unsigned d = 0; d < DIM; d++)
		x[d] = unit_rnd(&st);
}

/* Queries answered as exact search does, of 30; the indexes' modes. */
static unsigned exact_queries(struct t4dx *db, struct t4dx_index_modes *m)
{
	unsigned same = 0;
	for (unsigned i = 0; i < 30; i++) {
		float q[DIM];
		random_vector(100000 + i, q);
		same += same_as_exact(db, q, 10);
	}
	t4dx_index_modes(db, m);
	return same;
}

static void test_scan_mode(void)
{
	const char *dir = unit_tmpdir("sscan");
	struct t4dx *db = open_tuned(dir, 1.01);
	struct t4dx_index_modes m;
	for (unsigned i = 0; i < 2440; i++) {
		char name[32];
		float x[DIM];
		snprintf(name, sizeof(name), "r-%05u", i);
		random_vector(i, x);
		put_vec(db, name, x, 0.5);
		if (i == 1199 || i == 2399)
			REQUIRE(t4dx_flush(db) == 0);
	}
	CHECK_EQ_INT(exact_queries(db, &m), 30);
	CHECK_EQ_INT(m.scan, 2);
	CHECK_EQ_INT(m.graph, 0);
	CHECK(m.scan_bytes >= 2400 * DIM);
	CHECK_EQ_INT(t4dx_close(db), 0);

	db = open_tuned(dir, 0);
	unsigned same = exact_queries(db, &m);
	fprintf(stderr, "graphs alone: %u of 30 queries as exact\n", same);
	CHECK(same < 30);               /* the scan above is what answered */
	CHECK_EQ_INT(m.graph, 2);
	CHECK_EQ_INT(m.scan, 0);
	CHECK_EQ_INT(m.scan_bytes, 0);
	CHECK_EQ_INT(t4dx_close(db), 0);

	db = open_tuned(dir, 0.99);
	CHECK_EQ_INT(exact_queries(db, &m), 30);
	CHECK_EQ_INT(m.scan, 2);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

static bool alerted(struct t4dx *db, const char *what)
{
	struct t4dx_buf b = { 0 };
	REQUIRE(t4dx_render_alerts(db, &b) == 0);
	REQUIRE(t4dx_buf_add(&b, "", 1) == 0);
	bool yes = strstr((const char *)b.p, what) != NULL;
	t4dx_buf_free(&b);
	return yes;
}

/* The one index file of dir's seg/. */
static void index_path(const char *dir, char *path, size_t len)
{
	char seg[2048];
	snprintf(seg, sizeof(seg), "%s/seg", dir);
	DIR *d = opendir(seg);
	REQUIRE(d);
	struct dirent *de;
	path[0] = 0;
	while ((de = readdir(d)))
		if (strlen(de->d_name) > 5 &&
		    !strcmp(de->d_name + strlen(de->d_name) - 5, ".hnsw"))
			snprintf(path, len, "%s/%s", seg, de->d_name);
	closedir(d);
	REQUIRE(path[0]);
}

/* Wait (bounded) for the health thread to say it rebuilt an index. */
static bool wait_rebuilt(struct t4dx *db)
{
	for (int i = 0; i < 3000; i++) {
		if (alerted(db, "rebuilt"))
			return true;
		usleep(10000);
	}
	return false;
}

/* A damaged, then a missing index file: the same results (the segment
 * read whole), a warning, and the health thread writes it again. */
static void test_damaged_index(void)
{
	const char *dir = unit_tmpdir("sdamage");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 400, 10);
	REQUIRE(t4dx_flush(db) == 0);
	float q[DIM];
	vector_of(2, 10, q);
	char *want = search_text(db, q, 10, true);
	CHECK_EQ_INT(t4dx_close(db), 0);
	char path[4096];
	index_path(dir, path, sizeof(path));
	struct stat st;
	REQUIRE(stat(path, &st) == 0);

	for (int round = 0; round < 2; round++) {
		if (round == 0) {
			/* a flipped byte in the middle of the graph */
			int fd = open(path, O_RDWR);
			REQUIRE(fd >= 0);
			unsigned char c;
			REQUIRE(pread(fd, &c, 1, st.st_size / 2) == 1);
			c ^= 0x40;
			REQUIRE(pwrite(fd, &c, 1, st.st_size / 2) == 1);
			close(fd);
		} else {
			REQUIRE(unlink(path) == 0);
		}
		/* a long health interval: the search sees the file first */
		db = open_db(dir, 0);
		char *got = search_text(db, q, 10, false);
		CHECK(!strcmp(got, want));
		free(got);
		CHECK(alerted(db, round ? "is missing" : "is unusable"));
		CHECK(!alerted(db, "rebuilt"));
		CHECK_EQ_INT(t4dx_close(db), 0);

		/* the health thread reads the segment whole, then rebuilds */
		db = open_db(dir, 0.02);
		CHECK(wait_rebuilt(db));
		got = search_text(db, q, 10, false);
		CHECK(!strcmp(got, want));
		free(got);
		CHECK_EQ_INT(t4dx_close(db), 0);
		/* a new file in place of the damaged one (renamed over it,
		 * so another inode); not of the same size as the first: the
		 * two threads of a build interleave their inserts as they
		 * run, and a graph's links, so its file, vary with that */
		struct stat now;
		CHECK(stat(path, &now) == 0 && now.st_size > 0);
		if (round == 0)
			CHECK(now.st_ino != st.st_ino);
		/* the rebuilt file is checked whole, used without a
		 * warning, and answers as before */
		db = open_db(dir, 0);
		got = search_text(db, q, 10, false);
		CHECK(!strcmp(got, want));
		free(got);
		CHECK(!alerted(db, "vector index"));
		CHECK_EQ_INT(t4dx_close(db), 0);
	}
	free(want);
	unit_rm_rf(dir);
}

/* The MANIFEST's next segment id. */
static unsigned long long next_seg_id(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "jq .next_seg_id %s/MANIFEST", dir);
	FILE *p = popen(cmd, "r");
	REQUIRE(p);
	unsigned long long id = 0;
	REQUIRE(fscanf(p, "%llu", &id) == 1);
	pclose(p);
	return id;
}

/* An index file left under the id of the next segment (by a segment
 * whose MANIFEST never came) is removed when that segment is written,
 * even if its own index cannot be: it never serves the new segment. */
static void test_stale_index(void)
{
	const char *dir = unit_tmpdir("sstale");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 60, 3);
	REQUIRE(t4dx_flush(db) == 0);
	char old[2048], stale[2048], tmp[2100];
	index_path(dir, old, sizeof(old));
	unsigned long long id = next_seg_id(dir);
	snprintf(stale, sizeof(stale), "%s/seg/%020llu.hnsw", dir, id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", stale);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "cp %s %s", old, stale);
	REQUIRE(system(cmd) == 0);
	/* the new segment's index cannot be written */
	REQUIRE(mkdir(tmp, 0700) == 0);
	/* 150 new items; the query matches those past the 60th in key
	 * order, which the stale graph's keys (0..59) cannot reach */
	float q[DIM];
	vector_of(999, 1000, q);
	for (unsigned i = 0; i < 150; i++) {
		char name[32];
		float x[DIM];
		snprintf(name, sizeof(name), "new-%03u", i);
		vector_of(i + 7, 1000, x);
		if (i >= 100)
			for (unsigned d = 0; d < DIM; d++)
				x[d] = q[d] + 0.01f * (float)(i - 100) *
					      (float)(d % 3);
		put_vec(db, name, x, 0.5);
	}
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(alerted(db, "could not be written"));
	CHECK(access(stale, F_OK) != 0);
	CHECK(same_as_exact(db, q, 10));
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_db(dir, 0);
	CHECK(same_as_exact(db, q, 10));
	char *t = search_text(db, q, 10, false);
	CHECK(!strncmp(t, "new-1", 5));
	free(t);
	CHECK(alerted(db, "is missing"));
	CHECK_EQ_INT(t4dx_close(db), 0);
	REQUIRE(rmdir(tmp) == 0);
	unit_rm_rf(dir);
}

/* An item with an id, at (parent, name). */
static void put_id(struct t4dx *db, uint64_t parent, const char *name,
		   unsigned id)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, parent, name, strlen(name)) == 0);
	e.mode = S_IFREG | 0644;
	memcpy(e.id, &id, sizeof(id));
	e.id[15] = 0xa5;
	e.content = t4dx_blob_from(name, strlen(name));
	e.size = strlen(name);
	REQUIRE(t4dx_put(db, &e, T4DX_NOWAIT, NULL) == 0);
	t4dx_entry_clear(&e);
}

/* The name of the item with id, or "" (T4DX_ENOTFOUND). */
static const char *name_by_id(struct t4dx *db, unsigned id, uint64_t *parent)
{
	static char name[T4DX_NAME_MAX + 1];
	uint8_t b[16] = { 0 };
	memcpy(b, &id, sizeof(id));
	b[15] = 0xa5;
	struct t4dx_entry e = { 0 };
	int rc = t4dx_get_by_id(db, b, T4DX_GET_CONTENT, &e);
	REQUIRE(rc == 0 || rc == T4DX_ENOTFOUND);
	name[0] = 0;
	if (!rc) {
		REQUIRE(!memcmp(e.id, b, sizeof(b)) && e.content);
		memcpy(name, e.name, e.name_len + 1);
		if (parent)
			*parent = e.parent;
	}
	t4dx_entry_clear(&e);
	return name;
}

/* t4dx_get_by_id: the item wherever it is now (segments, memtable,
 * renamed, overwritten, deleted), and the whole store walked only for an
 * id not seen since the last walk and not in the memtable. */
static void test_by_id(void)
{
	const char *dir = unit_tmpdir("sbyid");
	struct t4dx *db = open_db(dir, 0);
	uint64_t sub = mkdir_in(db, R, "sub"), parent = 0;
	for (unsigned i = 0; i < 300; i++) {
		char name[32];
		snprintf(name, sizeof(name), "f%04u", i);
		put_id(db, i % 2 ? sub : R, name, 1000 + i);
	}
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(t4dx_id_walks(db) == 0);          /* none until asked */
	CHECK(!strcmp(name_by_id(db, 1007, &parent), "f0007") && parent == sub);
	CHECK(t4dx_id_walks(db) == 1);
	CHECK(!strcmp(name_by_id(db, 1200, &parent), "f0200") && parent == R);
	CHECK(t4dx_id_walks(db) == 1);          /* from the map */

	/* new since the walk: in the memtable */
	put_id(db, sub, "new", 5000);
	CHECK(!strcmp(name_by_id(db, 5000, &parent), "new") && parent == sub);
	/* renamed: the map's key is checked, then the memtable */
	REQUIRE(t4dx_rename(db, R, "f0200", 5, sub, "moved", 5, 0, NULL) == 0);
	CHECK(!strcmp(name_by_id(db, 1200, &parent), "moved") && parent == sub);
	CHECK(t4dx_id_walks(db) == 1);
	/* flushed: known by the map */
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(!strcmp(name_by_id(db, 5000, NULL), "new"));
	CHECK(!strcmp(name_by_id(db, 1200, NULL), "moved"));
	CHECK(t4dx_id_walks(db) == 1);

	/* overwritten by another item, deleted, never there */
	put_id(db, R, "f0010", 6000);
	CHECK(!strcmp(name_by_id(db, 6000, NULL), "f0010"));
	CHECK(!strcmp(name_by_id(db, 1010, NULL), ""));
	REQUIRE(t4dx_delete(db, sub, "f0011", 5, false, 0, NULL) == 0);
	CHECK(!strcmp(name_by_id(db, 1011, NULL), ""));
	CHECK(!strcmp(name_by_id(db, 99, NULL), ""));
	uint64_t w = t4dx_id_walks(db);
	CHECK(w >= 2);                          /* an unknown id walks */

	/* flushed and merged into one segment: found without a walk
	 * (the keys did not change); one flushed before it was ever
	 * asked for needs one */
	put_id(db, R, "late", 7000);
	REQUIRE(t4dx_flush(db) == 0);
	REQUIRE(t4dx_compact(db, T4DX_COMPACT_NREM, NULL, NULL) == 0);
	CHECK(!strcmp(name_by_id(db, 1201, NULL), "f0201"));
	CHECK(!strcmp(name_by_id(db, 1200, NULL), "moved"));
	CHECK(t4dx_id_walks(db) == w);
	CHECK(!strcmp(name_by_id(db, 7000, NULL), "late"));
	CHECK(t4dx_id_walks(db) == w + 1);
	CHECK(!strcmp(name_by_id(db, 1011, NULL), ""));

	/* a walk of more keys than it takes at a time (4,096): every one
	 * is found by the one walk, none twice or lost at the seams */
	for (unsigned i = 0; i < 9000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "g%05u", i);
		put_id(db, i % 3 ? sub : R, name, 20000 + i);
	}
	REQUIRE(t4dx_flush(db) == 0);
	w = t4dx_id_walks(db);
	CHECK(!strcmp(name_by_id(db, 20000, NULL), "g00000"));
	unsigned lost = 0;
	for (unsigned i = 0; i < 9000; i++) {
		char name[32];
		snprintf(name, sizeof(name), "g%05u", i);
		lost += !!strcmp(name_by_id(db, 20000 + i, NULL), name);
	}
	CHECK_EQ_INT(lost, 0);
	CHECK(t4dx_id_walks(db) == w + 1);
	REQUIRE(t4dx_close(db) == 0);

	/* after a restart */
	db = open_db(dir, 0);
	CHECK(!strcmp(name_by_id(db, 1200, NULL), "moved"));
	CHECK(!strcmp(name_by_id(db, 6000, NULL), "f0010"));
	CHECK(!strcmp(name_by_id(db, 1299, &parent), "f0299") && parent == sub);
	REQUIRE(t4dx_close(db) == 0);
}

/* s12: a search that took a segment which a merge then retired (its
 * index file removed with it) warned "vector index ... is missing" when
 * it came to load that index.  The open of the index is where the merge
 * is run here, so that it falls between the search's snapshot and the
 * load. */
static struct t4dx *retire_db;
static int (*real_open)(const char *, int, mode_t);

static int open_after_merge(const char *path, int flags, mode_t mode)
{
	size_t n = strlen(path);
	if (retire_db && n > 5 && !strcmp(path + n - 5, ".hnsw") &&
	    (flags & O_ACCMODE) == O_RDONLY) {
		struct t4dx *db = retire_db;
		retire_db = NULL;
		REQUIRE(t4dx_compact(db, T4DX_COMPACT_NREM, NULL, NULL) == 0);
	}
	return real_open(path, flags, mode);
}

static void test_retired_index(void)
{
	const char *dir = unit_tmpdir("sretired");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 200, 10);
	REQUIRE(t4dx_flush(db) == 0);
	put_items(db, 200, 400, 10);
	REQUIRE(t4dx_flush(db) == 0);
	float q[DIM];
	vector_of(2, 10, q);
	char *want = search_text(db, q, 10, true);
	/* a fresh start: no index loaded yet */
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_db(dir, 0);
	real_open = t4dx_io.open;
	t4dx_io.open = open_after_merge;
	retire_db = db;
	char *got = search_text(db, q, 10, false);
	t4dx_io.open = real_open;
	CHECK(retire_db == NULL);               /* the merge ran */
	CHECK(!strcmp(got, want));
	CHECK(!alerted(db, "vector index"));
	free(got);
	free(want);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Found by review: at level 2 a search leaves out a segment that cannot be
 * read (best_effort).  An item deleted, or moved far away, in that
 * newer segment must not come back from an older one: a partial answer
 * lacks results, it does not show ones that are gone. */
static const char *fail_seg;            /* reads of this file fail */
static int fail_fd = -1;
static atomic_bool fail_now;
static int (*saved_open)(const char *, int, mode_t);
static ssize_t (*saved_pread)(int, void *, size_t, off_t);

static int open_note(const char *path, int flags, mode_t mode)
{
	int fd = saved_open(path, flags, mode);
	size_t n = strlen(path), m = strlen(fail_seg);
	if (fd >= 0 && n >= m && !strcmp(path + n - m, fail_seg))
		fail_fd = fd;
	return fd;
}

static ssize_t pread_failing(int fd, void *buf, size_t len, off_t off)
{
	if (atomic_load(&fail_now) && fd == fail_fd) {
		errno = EIO;
		return -1;
	}
	return saved_pread(fd, buf, len, off);
}

static void test_best_effort_hides(void)
{
	const char *dir = unit_tmpdir("sbest");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 300, 5);
	float q[DIM], far[DIM];
	vector_of(0, 5, q);             /* cluster 0: items 0, 5, 10, ... */
	/* the best matches, in a directory renamed in the newer segment */
	uint64_t old = mkdir_in(db, R, "old");
	for (unsigned i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof(name), "in-%u", i);
		put_vec_in(db, old, name, q, 0.5);
	}
	REQUIRE(t4dx_flush(db) == 0);
	for (unsigned d = 0; d < DIM; d++)
		far[d] = -q[d];
	CHECK_EQ_INT(t4dx_delete(db, R, "item-00000", 10, false, 0, NULL), 0);
	put_vec(db, "item-00005", far, 0.5);
	REQUIRE(t4dx_rename(db, R, "old", 3, R, "new", 3, 0, NULL) == 0);
	REQUIRE(t4dx_flush(db) == 0);
	/* the newer segment: the highest id */
	char seg[64], newest[64] = "";
	char path[4096];
	snprintf(path, sizeof(path), "%s/seg", dir);
	DIR *d = opendir(path);
	REQUIRE(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 4 && !strcmp(de->d_name + l - 4, ".t4s") &&
		    strcmp(de->d_name, newest) > 0)
			snprintf(newest, sizeof(newest), "%s", de->d_name);
	}
	closedir(d);
	REQUIRE(newest[0]);
	snprintf(seg, sizeof(seg), "/%s", newest);
	CHECK_EQ_INT(t4dx_close(db), 0);

	fail_seg = seg;
	saved_open = t4dx_io.open;
	saved_pread = t4dx_io.pread;
	t4dx_io.open = open_note;
	t4dx_io.pread = pread_failing;
	db = open_db(dir, 0);
	REQUIRE(fail_fd >= 0);
	atomic_store(&fail_now, true);
	struct t4dx_search_opts o;
	t4dx_search_defaults(&o);
	o.k = 10;
	o.best_effort = true;
	struct t4dx_hit *h;
	size_t n;
	CHECK_EQ_INT(t4dx_search(db, q, DIM, &o, &h, &n), 0);
	bool gone = false, moved = false, renamed = false;
	for (size_t i = 0; i < n; i++) {
		gone |= !strcmp(h[i].path, "item-00000");
		moved |= !strcmp(h[i].path, "item-00005");
		renamed |= !strncmp(h[i].path, "old/", 4);
	}
	CHECK(!gone);                   /* deleted in the unread segment */
	CHECK(!moved);                  /* moved far in it */
	/* their directory renamed in it: not under a name it left (the
	 * new one is in the unread segment: not given either) */
	CHECK(!renamed);
	CHECK(n > 0);                   /* the rest of cluster 0 */
	t4dx_hits_free(h, n);
	atomic_store(&fail_now, false);
	t4dx_io.open = saved_open;
	t4dx_io.pread = saved_pread;
	fail_fd = -1;
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A query of tiny length (a vector set by hand, search/@ID of it, a
 * command embedder's answer) searched through a graph-mode index answers
 * as exact search does.  Found by review: below about 1e-7 the graph's
 * distance (1 - score) was the same for every node, and the walk
 * wandered. */
static void test_tiny_query(void)
{
	const char *dir = unit_tmpdir("stiny");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 400, 10);
	REQUIRE(t4dx_flush(db) == 0);
	static const float len[] = { 1, 1e-10f, 1e-25f };
	unsigned same = 0;
	for (unsigned i = 0; i < 10; i++) {
		float q[DIM];
		vector_of(i * 3 + 1, 10, q);
		double n = 0;
		for (unsigned d = 0; d < DIM; d++)
			n += (double)q[d] * q[d];
		for (unsigned d = 0; d < DIM; d++)
			q[d] = (float)(q[d] / sqrt(n));
		char *want = search_text(db, q, 10, true);
		for (unsigned s = 0; s < 3; s++) {
			float qq[DIM];
			for (unsigned d = 0; d < DIM; d++)
				qq[d] = q[d] * len[s];
			char *got = search_text(db, qq, 10, false);
			if (strcmp(got, want))
				fprintf(stderr, "length %g:\n%sexact:\n%s",
					len[s], got, want);
			same += !strcmp(got, want);
			free(got);
		}
		free(want);
	}
	CHECK_EQ_INT(same, 30);
	struct t4dx_index_modes m;
	t4dx_index_modes(db, &m);
	CHECK_EQ_INT(m.graph, 1);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* The first searches of a segment load its index once: those arriving
 * while the first one loads and tunes it (seconds at 100,000 vectors)
 * wait for it rather than load and tune a copy of their own (about
 * 150 MB each).  Here the open of the index file is slowed, as a large
 * load and tune are, and 4 searches start together: the file is opened
 * once, and all 4 answer from the one graph.  (Found by review: each loaded
 * its own.) */
static atomic_int index_opens;
static int (*plain_open)(const char *, int, mode_t);

static int slow_index_open(const char *path, int flags, mode_t mode)
{
	size_t n = strlen(path);
	if (n > 5 && !strcmp(path + n - 5, ".hnsw") &&
	    (flags & O_ACCMODE) == O_RDONLY) {
		atomic_fetch_add(&index_opens, 1);
		usleep(300 * 1000);
	}
	return plain_open(path, flags, mode);
}

static void *first_search(void *arg)
{
	float q[DIM];
	vector_of(3, 10, q);
	return search_text(arg, q, 10, false);
}

static void test_first_load_once(void)
{
	const char *dir = unit_tmpdir("sfirst");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 200, 10);
	REQUIRE(t4dx_flush(db) == 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_db(dir, 0);
	float q[DIM];
	vector_of(3, 10, q);
	char *want = search_text(db, q, 10, true);      /* no index read */
	atomic_init(&index_opens, 0);
	plain_open = t4dx_io.open;
	t4dx_io.open = slow_index_open;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, first_search, db) == 0);
	for (int i = 0; i < 4; i++) {
		void *got;
		pthread_join(t[i], &got);
		CHECK(!strcmp(got, want));
		free(got);
	}
	t4dx_io.open = plain_open;
	CHECK_EQ_INT(atomic_load(&index_opens), 1);
	free(want);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A filtered search under a floor in scan mode: a segment whose first
 * hits the filter mostly rejects is asked for more (its scan gave all
 * that was asked, so more may reach the floor), and the answer is
 * exact search's.  Found by review: every other test passed with search.c
 * treating a segment as done after one answer under any floor, not
 * only after fewer hits than asked. */
static char *filtered_text(struct t4dx *db, const float *q, bool exact)
{
	struct t4dx_search_opts o;
	t4dx_search_defaults(&o);
	o.k = 10;
	o.min_kappa = 0.9;
	o.exact = exact;
	return search_text_opts(db, q, &o);
}

static void test_scan_filter_floor(void)
{
	const char *dir = unit_tmpdir("sscanfl");
	struct t4dx *db = open_tuned(dir, 1.01);
	for (unsigned i = 0; i < 2400; i++) {
		char name[32];
		float x[DIM];
		snprintf(name, sizeof(name), "f-%05u", i);
		random_vector(i, x);
		put_vec(db, name, x, i % 20 ? 0.5 : 0.95);
		if (i == 1199 || i == 2399)
			REQUIRE(t4dx_flush(db) == 0);
	}
	unsigned same = 0;
	for (unsigned i = 0; i < 20; i++) {
		float q[DIM];
		random_vector(200000 + i, q);
		char *a = filtered_text(db, q, false);
		char *b = filtered_text(db, q, true);
		same += !strcmp(a, b);
		free(a);
		free(b);
	}
	CHECK_EQ_INT(same, 20);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Indexed and exact search agree on a store of several indexed
 * segments with items deleted and overwritten across them, under
 * every filter, for k from 1 to past the count of matches. */
static void differential(double min_recall, bool rnd)
{
	const char *dir = unit_tmpdir("sdiff");
	struct t4dx *db = min_recall < 0 ? open_db(dir, 0) :
			  open_tuned(dir, min_recall);
	uint64_t d1 = mkdir_in(db, R, "d1"), d2 = mkdir_in(db, d1, "d2");
	uint64_t dirs[3] = { R, d1, d2 };
	unsigned st = 4242;
	for (unsigned round = 0; round < 4; round++) {
		for (unsigned j = 0; j < 300; j++) {
			unsigned i = round < 2 ? round * 300 + j :
				     (unsigned)((unit_rnd(&st) + 1) * 300) % 600;
			char name[32];
			float x[DIM];
			snprintf(name, sizeof(name), "item-%05u", i);
			uint64_t at = dirs[i % 3];
			if (round >= 2 && j % 3 == 0) {
				t4dx_delete(db, at, name, strlen(name), false,
					    0, NULL);
				continue;
			}
			if (rnd)
				random_vector(i * 7 + round, x);
			else
				vector_of(i * 7 + round, 6, x);
			struct t4dx_entry e;
			memset(&e, 0, sizeof(e));
			REQUIRE(t4dx_entry_set_key(&e, at, name,
						   strlen(name)) == 0);
			e.mode = S_IFREG | 0644;
			e.kappa = (double)(i % 10) / 10;
			e.type = (uint8_t)(i % 3);
			e.event_time_ns = (int64_t)i * 1000;
			e.vec_src = T4DX_VEC_HAND;
			e.vec = t4dx_vec_new(x, DIM);
			REQUIRE(e.vec && t4dx_put(db, &e, 0, NULL) == 0);
			t4dx_entry_clear(&e);
		}
		if (round < 3)
			REQUIRE(t4dx_flush(db) == 0);
	}
	CHECK(has_file(dir, ".hnsw", NULL));
	unsigned bad = 0;
	for (unsigned qi = 0; qi < 60; qi++) {
		float q[DIM];
		if (rnd)
			random_vector(qi * 13 + 500000, q);
		else
			vector_of(qi * 13 + 5, 6, q);
		struct t4dx_search_opts o;
		t4dx_search_defaults(&o);
		static const uint32_t ks[] = { 1, 3, 10, 50, 200, 1000 };
		o.k = ks[qi % 6];
		switch (qi / 6 % 6) {
		case 1: o.under = d1; break;
		case 2: o.type = 1; break;
		case 3: o.min_kappa = 0.65; break;
		case 4: o.since_ns = 100000; o.until_ns = 200000; break;
		case 5: o.under = d2; o.max_kappa = 0.35; break;
		}
		o.exact = false;
		char *a = search_text_opts(db, q, &o);
		o.exact = true;
		char *b = search_text_opts(db, q, &o);
		if (strcmp(a, b)) {
			bad++;
			fprintf(stderr, "query %u (k %u, case %u) differs:\n"
				"index:\n%sexact:\n%s", qi, o.k, qi / 6 % 6,
				a, b);
		}
		free(a);
		free(b);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A hand vector may have any finite values, tiny ones too: scaled to
 * unit length for the graph, it must not overflow (from review: values
 * of 1e-40, below the smallest normal float, made the scale 1/|x| an
 * infinity, the index refused the product and the whole segment was
 * left without one, its rebuild failing the same way at every check). */
static void test_tiny_hand_vector(void)
{
	const char *dir = unit_tmpdir("stiny");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 200, 4);
	float tiny[DIM];
	for (unsigned d = 0; d < DIM; d++)
		tiny[d] = d % 2 ? 1e-40f : -1e-40f;
	put_vec(db, "tiny", tiny, 0.5);
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(has_file(dir, ".hnsw", NULL));
	CHECK(indexes_match_manifest(dir));
	/* and it is found in its direction, by the index as exactly */
	char *t = search_text(db, tiny, 1, false);
	CHECK(!strncmp(t, "tiny ", 5));
	free(t);
	CHECK(same_as_exact(db, tiny, 10));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A query of any finite length, huge or tiny (an @ID of a hand vector,
 * a command embedder's answer: neither is scaled), is answered as exact
 * search answers it (from review: |q| past FLT_MAX made the graph's
 * scores and the floor infinite). */
static void test_query_length(void)
{
	const char *dir = unit_tmpdir("sqlen");
	struct t4dx *db = open_db(dir, 0);
	put_items(db, 0, 300, 5);
	REQUIRE(t4dx_flush(db) == 0);
	put_items(db, 300, 320, 5);     /* some in the memtable */
	static const float scales[] = { 3e38f, 1e30f, 1e-30f, 1e-40f };
	for (unsigned si = 0; si < 4; si++)
		for (unsigned c = 0; c < 5; c++) {
			float q[DIM];
			vector_of(c, 5, q);
			float m = 0;
			for (unsigned d = 0; d < DIM; d++)
				m = fabsf(q[d]) > m ? fabsf(q[d]) : m;
			for (unsigned d = 0; d < DIM; d++)
				q[d] = q[d] / m * scales[si];
			char *t = search_text(db, q, 10, false);
			char *u = search_text(db, q, 10, true);
			if (strcmp(t, u))
				fprintf(stderr, "scale %g:\nindex:\n%s"
					"exact:\n%s", scales[si], t, u);
			CHECK(!strcmp(t, u));
			free(t);
			free(u);
		}
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

static void test_differential(void)
{
	differential(-1, false);        /* clustered, graphs measured */
	differential(1.01, true);       /* random, every index scanned */
	differential(-1, true);         /* random, measured */
}

/* Bytes the engine read from its files (t4dx_io.pread) while counting. */
static atomic_ullong pread_bytes;
static ssize_t (*plain_pread)(int, void *, size_t, off_t);

static ssize_t pread_counting(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = plain_pread(fd, buf, len, off);
	if (n > 0)
		atomic_fetch_add(&pread_bytes, (unsigned long long)n);
	return n;
}

/* n files of len bytes of random letters (which LZ4 hardly shrinks),
 * each with the hand vector of item i, flushed to one segment. */
static void put_large(struct t4dx *db, unsigned n, size_t len)
{
	char *text = malloc(len);
	REQUIRE(text);
	unsigned seed = 99;
	for (unsigned i = 0; i < n; i++) {
		for (size_t j = 0; j < len; j++) {
			seed = seed * 1103515245u + 12345u;
			text[j] = (char)('a' + (seed >> 16) % 26);
		}
		char name[32];
		float x[DIM];
		snprintf(name, sizeof(name), "large-%03u", i);
		vector_of(i, 7, x);
		struct t4dx_entry e;
		memset(&e, 0, sizeof(e));
		REQUIRE(t4dx_entry_set_key(&e, R, name, strlen(name)) == 0);
		e.mode = S_IFREG | 0644;
		e.content = t4dx_blob_from(text, len);
		e.size = len;
		e.vec_src = T4DX_VEC_HAND;
		e.vec = t4dx_vec_new(x, DIM);
		REQUIRE(e.vec && t4dx_put(db, &e, T4DX_NOWAIT, NULL) == 0);
		t4dx_entry_clear(&e);
	}
	free(text);
	REQUIRE(t4dx_flush(db) == 0);
}

/* Bytes read by a search for item i's vector, which must come first. */
static unsigned long long search_reads(struct t4dx *db, unsigned i)
{
	float q[DIM];
	vector_of(i, 7, q);
	char want[32];
	snprintf(want, sizeof(want), "large-%03u ", i);
	atomic_store(&pread_bytes, 0);
	plain_pread = t4dx_io.pread;
	t4dx_io.pread = pread_counting;
	char *got = search_text(db, q, 3, false);
	t4dx_io.pread = plain_pread;
	CHECK(strncmp(got, want, strlen(want)) == 0);
	free(got);
	return atomic_load(&pread_bytes);
}

/* A search scores vectors: it reads the segments' vector parts, never
 * their files' contents, with or without an index (it used to read and
 * decompress every content of a segment without one, seconds per search
 * for large files). */
static void test_large_contents_not_read(void)
{
	const char *dir = unit_tmpdir("searchlarge");
	struct t4dx *db = open_db(dir, 0);
	/* fewer than MIN_ITEMS: no index, every vector read */
	put_large(db, 20, 256 * 1024);
	unsigned long long read = search_reads(db, 3);
	if (read >= 256 * 1024)
		fprintf(stderr, "no index: %llu bytes read\n", read);
	CHECK(read < 256 * 1024);       /* of 5 MiB of contents */
	/* an item's vector without its content (search/@ID), by name and
	 * by id */
	struct t4dx_entry e;
	REQUIRE(t4dx_get(db, R, "large-004", 9, 0, &e) == 0);
	uint8_t id[16];
	memcpy(id, e.id, sizeof(id));
	t4dx_entry_clear(&e);
	atomic_store(&pread_bytes, 0);
	plain_pread = t4dx_io.pread;
	t4dx_io.pread = pread_counting;
	int rc = t4dx_get(db, R, "large-004", 9, T4DX_GET_VECTOR, &e);
	t4dx_io.pread = plain_pread;
	CHECK_EQ_INT(rc, 0);
	CHECK(!rc && e.vec && !e.content && e.vec_src == T4DX_VEC_HAND);
	float x[DIM], y[DIM];
	vector_of(4, 7, x);
	if (!rc && e.vec) {
		t4dx_vec_get(e.vec, y);
		CHECK(memcmp(x, y, sizeof(x)) == 0);
	}
	t4dx_entry_clear(&e);
	read = atomic_load(&pread_bytes);
	CHECK(read < 64 * 1024);        /* of a 256 KiB content */
	atomic_store(&pread_bytes, 0);
	t4dx_io.pread = pread_counting;
	rc = t4dx_get_by_id(db, id, T4DX_GET_VECTOR, &e);
	t4dx_io.pread = plain_pread;
	CHECK_EQ_INT(rc, 0);
	CHECK(!rc && e.vec && !e.content);
	t4dx_entry_clear(&e);
	read = atomic_load(&pread_bytes);
	if (read >= 64 * 1024)
		fprintf(stderr, "by id: %llu bytes read\n", read);
	CHECK(read < 64 * 1024);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);

	/* through an index: its candidates' vectors */
	dir = unit_tmpdir("searchlargeix");
	db = open_db(dir, 0);
	put_large(db, MIN_ITEMS + 10, 64 * 1024);
	(void)search_reads(db, 5);      /* loads the index */
	read = search_reads(db, 5);
	if (read >= 64 * 1024)
		fprintf(stderr, "index: %llu bytes read\n", read);
	CHECK(read < 64 * 1024);        /* of 3.75 MiB of contents */
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

int main(void)
{
	RUN(test_index_written);
	RUN(test_crash_before_manifest);
	RUN(test_merge_rules);
	RUN(test_filters);
	RUN(test_dirs);
	RUN(test_deep_path);
	RUN(test_concurrent);
	RUN(test_recall);
	RUN(test_index_floor);
	RUN(test_small_segment_after_large);
	RUN(test_scan_mode);
	RUN(test_scan_filter_floor);
	RUN(test_damaged_index);
	RUN(test_stale_index);
	RUN(test_by_id);
	RUN(test_retired_index);
	RUN(test_best_effort_hides);
	RUN(test_first_load_once);
	RUN(test_differential);
	RUN(test_tiny_hand_vector);
	RUN(test_query_length);
	RUN(test_tiny_query);
	RUN(test_large_contents_not_read);
	UNIT_DONE();
}
