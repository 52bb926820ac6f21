/*
 * test_vectors.c - an item's vector through the engine: set by hand or
 * by the embedder, kept or dropped by the changes that follow, and
 * carried by the WAL, flushes, compaction, restarts and crashes.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "embed.h"
#include "embed_cmd.h"
#include "engine_int.h"
#include "faults.h"
#include "t4dx.h"
#include "unit.h"
#include "vec.h"

#define R T4DX_ROOT_INO

static struct t4dx *open_emb(const char *dir, const char *embedder)
{
	struct t4dx *db = NULL;
	char msg[256];
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	strcpy(c.vector.embedder, embedder);
	int rc = t4dx_open(dir, &c, &db, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
	return db;
}

/* The tests of vectors set by hand: no embedder. */
static struct t4dx *open_db(const char *dir)
{
	return open_emb(dir, "off");
}

static struct t4dx_blob *vec_of(uint32_t dim, float seed)
{
	float x[64];
	REQUIRE(dim <= 64);
	for (uint32_t i = 0; i < dim; i++)
		x[i] = seed + (float)i / 8;
	struct t4dx_blob *v = t4dx_vec_new(x, dim);
	REQUIRE(v);
	return v;
}

/* A file written as fs/ writes one: its attributes as they are (vector
 * source included, its bytes not read), and new content. */
static int write_file(struct t4dx *db, const char *name, const char *text)
{
	struct t4dx_entry e;
	int rc = t4dx_get(db, R, name, strlen(name), 0, &e);
	if (rc == T4DX_ENOTFOUND) {
		memset(&e, 0, sizeof(e));
		REQUIRE(t4dx_entry_set_key(&e, R, name, strlen(name)) == 0);
		e.mode = S_IFREG | 0644;
	} else if (rc) {
		return rc;
	}
	CHECK(e.vec == NULL);
	e.content = t4dx_blob_from(text, strlen(text));
	e.size = strlen(text);
	rc = t4dx_put(db, &e, 0, NULL);
	t4dx_entry_clear(&e);
	return rc;
}

static int set_vec(struct t4dx *db, const char *name, int src,
		   struct t4dx_blob *v)
{
	struct t4dx_entry f;
	memset(&f, 0, sizeof(f));
	f.vec_src = (uint8_t)src;
	f.vec = v;
	return t4dx_update(db, R, name, strlen(name), &f, T4DX_F_VEC, 0, NULL);
}

/* The vector's source, and whether its bytes are v's (v NULL: none). */
static bool has_vec(struct t4dx *db, const char *name, int src,
		    const struct t4dx_blob *v)
{
	struct t4dx_entry e;
	if (t4dx_get(db, R, name, strlen(name), T4DX_GET_CONTENT, &e))
		return false;
	bool ok = e.vec_src == src && t4dx_vec_equal(e.vec, v);
	t4dx_entry_clear(&e);
	/* without content: the source, never the bytes */
	if (t4dx_get(db, R, name, strlen(name), 0, &e))
		return false;
	return ok && e.vec_src == src && !e.vec;
}

static void test_hand_vector_kept(void)
{
	const char *dir = unit_tmpdir("vhand");
	struct t4dx *db = open_db(dir);
	struct t4dx_blob *v = vec_of(8, 0.5f), *w = vec_of(8, -2.0f);
	REQUIRE(write_file(db, "tea", "green tea") == 0);
	CHECK(has_vec(db, "tea", T4DX_VEC_NONE, NULL));
	CHECK_EQ_INT(set_vec(db, "tea", T4DX_VEC_HAND, v), 0);
	CHECK(has_vec(db, "tea", T4DX_VEC_HAND, v));
	/* new content keeps a hand-set vector: from the memtable ... */
	REQUIRE(write_file(db, "tea", "black tea") == 0);
	CHECK(has_vec(db, "tea", T4DX_VEC_HAND, v));
	/* ... and from a segment */
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(has_vec(db, "tea", T4DX_VEC_HAND, v));
	REQUIRE(write_file(db, "tea", "white tea") == 0);
	CHECK(has_vec(db, "tea", T4DX_VEC_HAND, v));
	/* other fields leave it alone */
	struct t4dx_entry f;
	memset(&f, 0, sizeof(f));
	f.kappa = 0.25;
	CHECK_EQ_INT(t4dx_update(db, R, "tea", 3, &f, T4DX_F_KAPPA, 0, NULL),
		     0);
	CHECK(has_vec(db, "tea", T4DX_VEC_HAND, v));
	/* a rename carries it; compaction keeps it */
	CHECK_EQ_INT(t4dx_rename(db, R, "tea", 3, R, "cha", 3, 0, NULL), 0);
	CHECK(has_vec(db, "cha", T4DX_VEC_HAND, v));
	REQUIRE(t4dx_flush(db) == 0);
	CHECK_EQ_INT(t4dx_compact(db, T4DX_COMPACT_NREM, NULL, NULL), 0);
	CHECK(has_vec(db, "cha", T4DX_VEC_HAND, v));
	/* replaced, then removed: back to none */
	CHECK_EQ_INT(set_vec(db, "cha", T4DX_VEC_HAND, w), 0);
	CHECK(has_vec(db, "cha", T4DX_VEC_HAND, w));
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_db(dir);
	CHECK(has_vec(db, "cha", T4DX_VEC_HAND, w));
	CHECK_EQ_INT(set_vec(db, "cha", T4DX_VEC_NONE, NULL), 0);
	CHECK(has_vec(db, "cha", T4DX_VEC_NONE, NULL));
	REQUIRE(write_file(db, "cha", "oolong") == 0);
	CHECK(has_vec(db, "cha", T4DX_VEC_NONE, NULL));
	CHECK_EQ_INT(t4dx_close(db), 0);
	t4dx_blob_unref(v);
	t4dx_blob_unref(w);
	unit_rm_rf(dir);
}

/* The embedder's vector belongs to the content it was computed from. */
static void test_embed_vector_dropped(void)
{
	const char *dir = unit_tmpdir("vembed");
	struct t4dx *db = open_db(dir);
	struct t4dx_blob *v = vec_of(16, 1.0f);
	REQUIRE(write_file(db, "a", "one") == 0);
	CHECK_EQ_INT(set_vec(db, "a", T4DX_VEC_EMBED, v), 0);
	CHECK(has_vec(db, "a", T4DX_VEC_EMBED, v));
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(has_vec(db, "a", T4DX_VEC_EMBED, v));
	REQUIRE(write_file(db, "a", "two") == 0);
	CHECK(has_vec(db, "a", T4DX_VEC_NONE, NULL));
	/* a put that brings the old bytes along drops them too */
	CHECK_EQ_INT(set_vec(db, "a", T4DX_VEC_EMBED, v), 0);
	struct t4dx_entry e;
	REQUIRE(t4dx_get(db, R, "a", 1, T4DX_GET_CONTENT, &e) == 0);
	REQUIRE(e.vec);
	CHECK_EQ_INT(t4dx_put(db, &e, 0, NULL), 0);
	t4dx_entry_clear(&e);
	CHECK(has_vec(db, "a", T4DX_VEC_NONE, NULL));
	CHECK_EQ_INT(t4dx_close(db), 0);
	t4dx_blob_unref(v);
	unit_rm_rf(dir);
}

static void test_bad_vectors(void)
{
	const char *dir = unit_tmpdir("vbad");
	struct t4dx *db = open_db(dir);
	REQUIRE(write_file(db, "a", "one") == 0);
	struct t4dx_blob *v = vec_of(4, 0.0f);
	CHECK_EQ_INT(set_vec(db, "a", T4DX_VEC_NONE, v), EINVAL);
	CHECK_EQ_INT(set_vec(db, "a", T4DX_VEC_HAND, NULL), EINVAL);
	CHECK_EQ_INT(set_vec(db, "a", T4DX_VEC_HAND + 1, v), EINVAL);
	struct t4dx_blob *nan = t4dx_blob_new(4);
	REQUIRE(nan);
	memcpy(nan->data, "\x00\x00\xc0\x7f", 4);
	CHECK_EQ_INT(set_vec(db, "a", T4DX_VEC_HAND, nan), EINVAL);
	CHECK_EQ_INT(set_vec(db, "nothing", T4DX_VEC_HAND, v), ENOENT);
	CHECK(has_vec(db, "a", T4DX_VEC_NONE, NULL));
	/* directories and links have no vector */
	struct t4dx_entry d;
	memset(&d, 0, sizeof(d));
	REQUIRE(t4dx_entry_set_key(&d, R, "dir", 3) == 0);
	d.mode = S_IFDIR | 0755;
	REQUIRE(t4dx_put(db, &d, 0, NULL) == 0);
	memset(&d, 0, sizeof(d));
	REQUIRE(t4dx_entry_set_key(&d, R, "link", 4) == 0);
	d.mode = S_IFLNK | 0777;
	d.content = t4dx_blob_from("a", 1);
	d.size = 1;
	REQUIRE(t4dx_put(db, &d, 0, NULL) == 0);
	t4dx_entry_clear(&d);
	CHECK_EQ_INT(set_vec(db, "dir", T4DX_VEC_HAND, v), EINVAL);
	CHECK_EQ_INT(set_vec(db, "link", T4DX_VEC_HAND, v), EINVAL);
	CHECK_EQ_INT(set_vec(db, "link", T4DX_VEC_EMBED, v), EINVAL);
	CHECK(has_vec(db, "link", T4DX_VEC_NONE, NULL));
	/* a put of bytes without a source, or of a NaN */
	struct t4dx_entry e;
	REQUIRE(t4dx_get(db, R, "a", 1, T4DX_GET_CONTENT, &e) == 0);
	e.vec = v;
	CHECK_EQ_INT(t4dx_put(db, &e, 0, NULL), EINVAL);
	e.vec_src = T4DX_VEC_HAND;
	e.vec = nan;
	CHECK_EQ_INT(t4dx_put(db, &e, 0, NULL), EINVAL);
	e.vec = NULL;
	t4dx_entry_clear(&e);
	CHECK(has_vec(db, "a", T4DX_VEC_NONE, NULL));
	t4dx_blob_unref(nan);
	t4dx_blob_unref(v);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Vectors logged and not yet flushed come back from the WAL after a
 * crash, flushed ones from their segment. */
static void test_vector_crash(void)
{
	const char *dir = unit_tmpdir("vcrash");
	struct t4dx_blob *v = vec_of(32, 3.0f), *w = vec_of(32, -1.0f);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx *db = open_db(dir);
		if (write_file(db, "flushed", "f") ||
		    set_vec(db, "flushed", T4DX_VEC_HAND, v) ||
		    t4dx_flush(db) || write_file(db, "logged", "l") ||
		    set_vec(db, "logged", T4DX_VEC_EMBED, w) ||
		    write_file(db, "flushed", "f2"))
			_exit(2);
		_exit(0);       /* no close: a crash */
	}
	int ws;
	waitpid(pid, &ws, 0);
	REQUIRE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	struct t4dx *db = open_db(dir);
	CHECK(has_vec(db, "flushed", T4DX_VEC_HAND, v));
	CHECK(has_vec(db, "logged", T4DX_VEC_EMBED, w));
	CHECK_EQ_INT(t4dx_close(db), 0);
	t4dx_blob_unref(v);
	t4dx_blob_unref(w);
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

/* An item at (parent, name) whose hand-set vector is (1, angle, 0, 0):
 * the smaller angle, the nearer (1, 0, 0, 0). */
static void put_at(struct t4dx *db, uint64_t parent, const char *name,
		   float angle, int type, double kappa)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, parent, name, strlen(name)) == 0);
	e.mode = S_IFREG | 0644;
	e.type = (uint8_t)type;
	e.kappa = kappa;
	e.event_time_ns = (int64_t)(angle * 1000);
	e.content = t4dx_blob_from(name, strlen(name));
	e.size = strlen(name);
	float x[4] = { 1, angle, 0, 0 };
	e.vec_src = T4DX_VEC_HAND;
	e.vec = t4dx_vec_new(x, 4);
	REQUIRE(e.vec && t4dx_put(db, &e, 0, NULL) == 0);
	t4dx_entry_clear(&e);
}

/* The result paths, space-separated. */
static const char *search_paths(struct t4dx *db,
				const struct t4dx_search_opts *o)
{
	static char out[1024];
	const float q[4] = { 2, 0, 0, 0 };
	struct t4dx_hit *h;
	size_t n;
	out[0] = 0;
	int rc = t4dx_search(db, q, 4, o, &h, &n);
	if (rc) {
		snprintf(out, sizeof(out), "error %d", rc);
		return out;
	}
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, " ");
		strncat(out, h[i].path, sizeof(out) - strlen(out) - 2);
		CHECK(i == 0 || h[i - 1].score >= h[i].score);
		CHECK(h[i].score <= 1.0001f && h[i].score > 0);
	}
	t4dx_hits_free(h, n);
	return out;
}

static void test_search_exact(void)
{
	const char *dir = unit_tmpdir("vsearch");
	struct t4dx *db = open_db(dir);
	uint64_t a = mkdir_in(db, R, "agent-7");
	uint64_t n = mkdir_in(db, a, "notes");
	put_at(db, R, "far", 3.0f, T4DX_EPISODIC, 0.5);
	put_at(db, a, "tea", 0.1f, T4DX_SEMANTIC, 0.9);
	put_at(db, n, "cafe", 0.5f, T4DX_EPISODIC, 0.2);
	put_at(db, n, "gone", 0.0f, T4DX_EPISODIC, 0.5);
	REQUIRE(write_file(db, "plain", "no vector") == 0);
	struct t4dx_search_opts o;
	t4dx_search_defaults(&o);
	CHECK(!strcmp(search_paths(db, &o),
		      "agent-7/notes/gone agent-7/tea agent-7/notes/cafe far"));
	/* deleted, in a segment, then overwritten and re-ranked: the
	 * merged view decides */
	REQUIRE(t4dx_flush(db) == 0);
	CHECK_EQ_INT(t4dx_delete(db, n, "gone", 4, false, 0, NULL), 0);
	put_at(db, R, "far", 0.01f, T4DX_EPISODIC, 0.5);
	CHECK(!strcmp(search_paths(db, &o),
		      "far agent-7/tea agent-7/notes/cafe"));
	o.k = 2;
	CHECK(!strcmp(search_paths(db, &o), "far agent-7/tea"));
	t4dx_search_defaults(&o);
	o.under = a;
	CHECK(!strcmp(search_paths(db, &o), "agent-7/tea agent-7/notes/cafe"));
	o.under = n;
	CHECK(!strcmp(search_paths(db, &o), "agent-7/notes/cafe"));
	t4dx_search_defaults(&o);
	o.type = T4DX_SEMANTIC;
	CHECK(!strcmp(search_paths(db, &o), "agent-7/tea"));
	t4dx_search_defaults(&o);
	o.min_kappa = 0.3;
	o.max_kappa = 0.6;
	CHECK(!strcmp(search_paths(db, &o), "far"));
	t4dx_search_defaults(&o);
	o.since_ns = 50;        /* event_time: 1000 * the angle */
	o.until_ns = 500;
	CHECK(!strcmp(search_paths(db, &o), "agent-7/tea agent-7/notes/cafe"));
	/* a renamed directory moves its items' paths */
	REQUIRE(t4dx_rename(db, a, "notes", 5, R, "moved", 5, 0, NULL) == 0);
	t4dx_search_defaults(&o);
	CHECK(!strcmp(search_paths(db, &o), "far agent-7/tea moved/cafe"));
	/* bad queries */
	struct t4dx_hit *h;
	size_t cnt;
	const float zero[4] = { 0 }, q[4] = { 1, 0, 0, 0 };
	CHECK_EQ_INT(t4dx_search(db, zero, 4, &o, &h, &cnt), EINVAL);
	CHECK_EQ_INT(t4dx_search(db, q, 0, &o, &h, &cnt), EINVAL);
	o.k = 0;
	CHECK_EQ_INT(t4dx_search(db, q, 4, &o, &h, &cnt), EINVAL);
	o.k = T4DX_SEARCH_K_MAX + 1;
	CHECK_EQ_INT(t4dx_search(db, q, 4, &o, &h, &cnt), EINVAL);
	/* another dimension finds nothing */
	o.k = 10;
	CHECK_EQ_INT(t4dx_search(db, q, 3, &o, &h, &cnt), 0);
	CHECK_EQ_INT(cnt, 0);
	t4dx_hits_free(h, cnt);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Wait until the embedder has nothing left to do (bounded). */
static void embedder_idle(struct t4dx *db, struct t4dx_embed_stats *st)
{
	for (int i = 0; i < 60000; i++) {
		t4dx_embed_stats(db, st);
		if (!st->busy)
			return;
		usleep(1000);
	}
	REQUIRE(!"the embedder never went idle");
}

static int src_of(struct t4dx *db, const char *name)
{
	struct t4dx_entry e;
	if (t4dx_get(db, R, name, strlen(name), 0, &e))
		return -1;
	return e.vec_src;
}

/* The builtin embedder gives each new content its vector in the
 * background, leaves binary content and hand-set vectors alone, and at
 * start embeds what has none (a store written with it off). */
static void test_embedder(void)
{
	const char *dir = unit_tmpdir("vemb");
	struct t4dx *db = open_db(dir);         /* off */
	REQUIRE(write_file(db, "old", "written before the embedder ran") == 0);
	REQUIRE(t4dx_flush(db) == 0);
	CHECK_EQ_INT(t4dx_close(db), 0);

	db = open_emb(dir, "builtin");
	struct t4dx_embed_stats st;
	embedder_idle(db, &st);
	CHECK_EQ_INT(src_of(db, "old"), T4DX_VEC_EMBED);
	REQUIRE(write_file(db, "tea", "green tea with jasmine") == 0);
	REQUIRE(write_file(db, "stocks", "the stock market fell sharply") == 0);
	REQUIRE(write_file(db, "bin", "a\0b") == 0);    /* "a" only */
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, R, "raw", 3) == 0);
	e.mode = S_IFREG | 0644;
	e.content = t4dx_blob_from("\x00\xff\x00", 3);
	e.size = 3;
	REQUIRE(t4dx_put(db, &e, 0, NULL) == 0);
	t4dx_entry_clear(&e);
	struct t4dx_blob *v = vec_of(64, 0.0f);
	embedder_idle(db, &st);
	CHECK_EQ_INT(src_of(db, "tea"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(src_of(db, "stocks"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(src_of(db, "raw"), T4DX_VEC_TRIED);
	CHECK(st.embedded >= 4 && st.no_vector >= 1 && st.failed == 0);
	/* a search by the embedder's vector of a text finds it first */
	float q[256];
	REQUIRE(t4dx_embed("green tea", 9, 256, q) == 0);
	struct t4dx_search_opts o;
	t4dx_search_defaults(&o);
	struct t4dx_hit *h;
	size_t n;
	REQUIRE(t4dx_search(db, q, 256, &o, &h, &n) == 0);
	CHECK(n >= 2 && !strcmp(h[0].path, "tea"));
	t4dx_hits_free(h, n);
	/* new content: a new vector; a hand-set one is left alone */
	CHECK_EQ_INT(set_vec(db, "stocks", T4DX_VEC_HAND, v), 0);
	REQUIRE(write_file(db, "stocks", "bonds and shares") == 0);
	REQUIRE(write_file(db, "tea", "black coffee") == 0);
	embedder_idle(db, &st);
	CHECK(has_vec(db, "stocks", T4DX_VEC_HAND, v));
	CHECK_EQ_INT(src_of(db, "tea"), T4DX_VEC_EMBED);
	REQUIRE(t4dx_embed("black coffee", 12, 256, q) == 0);
	REQUIRE(t4dx_search(db, q, 256, &o, &h, &n) == 0);
	CHECK(n >= 1 && !strcmp(h[0].path, "tea") && h[0].score > 0.999f);
	t4dx_hits_free(h, n);
	CHECK_EQ_INT(t4dx_close(db), 0);
	t4dx_blob_unref(v);
	unit_rm_rf(dir);
}

static struct t4dx *open_dim(const char *dir, const char *embedder,
			     unsigned dim)
{
	struct t4dx *db = NULL;
	char msg[256];
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	strcpy(c.vector.embedder, embedder);
	c.vector.dim = dim;
	int rc = t4dx_open(dir, &c, &db, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
	return db;
}

/* Open with the builtin embedder of dim values and wait until it has
 * nothing left to do: its figures of this start in *st. */
static struct t4dx *open_idle(const char *dir, unsigned dim,
			      struct t4dx_embed_stats *st)
{
	struct t4dx *db = open_dim(dir, "builtin", dim);
	embedder_idle(db, st);
	return db;
}

/* The text of DATA_DIR/EMBEDDER, "" if there is none. */
static const char *state_of(const char *dir)
{
	static char buf[256];
	char path[4096];
	snprintf(path, sizeof(path), "%s/EMBEDDER", dir);
	buf[0] = 0;
	FILE *f = fopen(path, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = 0;
		fclose(f);
	}
	return buf;
}

static uint32_t dim_of(struct t4dx *db, const char *name)
{
	struct t4dx_entry e;
	if (t4dx_get(db, R, name, strlen(name), T4DX_GET_CONTENT, &e))
		return 0;
	uint32_t d = t4dx_vec_dim(e.vec);
	t4dx_entry_clear(&e);
	return d;
}

static int write_bin(struct t4dx *db, const char *name, size_t len,
		     unsigned seed)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, R, name, strlen(name)) == 0);
	e.mode = S_IFREG | 0644;
	e.content = t4dx_blob_new(len);
	REQUIRE(e.content);
	for (size_t i = 0; i < len; i++)
		e.content->data[i] = (unsigned char)((i * 131 + seed) % 251);
	e.content->data[0] = 0;         /* binary by the first byte */
	e.size = len;
	int rc = t4dx_put(db, &e, 0, NULL);
	t4dx_entry_clear(&e);
	return rc;
}

/* What the embedder found is durable: a start reads no content it has
 * seen (a vector, or a mark that the content gets none), through a
 * flush, compaction and a crash; new content drops the mark. */
static void test_embedder_remembers(void)
{
	const char *dir = unit_tmpdir("vremember");
	struct t4dx_embed_stats st;
	struct t4dx *db = open_idle(dir, 256, &st);
	CHECK(!strcmp(state_of(dir),
		      "{\"embedder\":\"builtin\",\"version\":1,\"dim\":256}\n"));
	REQUIRE(write_file(db, "tea", "green tea with jasmine") == 0);
	REQUIRE(write_bin(db, "bin", 65536, 1) == 0);
	REQUIRE(write_file(db, "dots", "... --- ...") == 0);
	embedder_idle(db, &st);
	CHECK_EQ_INT(src_of(db, "tea"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(src_of(db, "bin"), T4DX_VEC_TRIED);
	CHECK_EQ_INT(src_of(db, "dots"), T4DX_VEC_TRIED);
	CHECK(has_vec(db, "bin", T4DX_VEC_TRIED, NULL));
	CHECK_EQ_INT(st.embedded, 1);
	CHECK_EQ_INT(st.no_vector, 2);
	CHECK_EQ_INT(st.bytes_read, 22 + 65536 + 11);
	CHECK_EQ_INT(t4dx_close(db), 0);

	/* a restart reads nothing: from the WAL ... */
	db = open_idle(dir, 256, &st);
	CHECK_EQ_INT(st.bytes_read, 0);
	CHECK_EQ_INT(st.embedded + st.no_vector, 0);
	CHECK_EQ_INT(src_of(db, "bin"), T4DX_VEC_TRIED);
	/* ... from a segment, and after compaction */
	REQUIRE(t4dx_flush(db) == 0);
	REQUIRE(t4dx_compact(db, T4DX_COMPACT_NREM, NULL, NULL) == 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_idle(dir, 256, &st);
	CHECK_EQ_INT(st.bytes_read, 0);
	CHECK_EQ_INT(src_of(db, "bin"), T4DX_VEC_TRIED);
	CHECK_EQ_INT(src_of(db, "tea"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(t4dx_close(db), 0);

	/* new content drops the mark (no embedder: nothing marks it
	 * again), and the next start reads that content only */
	db = open_dim(dir, "off", 256);
	REQUIRE(write_bin(db, "bin", 4096, 2) == 0);
	CHECK_EQ_INT(src_of(db, "bin"), T4DX_VEC_NONE);
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_idle(dir, 256, &st);
	CHECK_EQ_INT(st.bytes_read, 4096);
	CHECK_EQ_INT(st.no_vector, 1);
	CHECK_EQ_INT(src_of(db, "bin"), T4DX_VEC_TRIED);
	CHECK_EQ_INT(t4dx_close(db), 0);

	/* a crash: the marks and vectors logged without a wait were made
	 * durable once the queue ran dry */
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx_embed_stats cs;
		struct t4dx *c = open_dim(dir, "builtin", 256);
		if (write_bin(c, "bin2", 8192, 3) ||
		    write_file(c, "coffee", "black coffee"))
			_exit(2);
		embedder_idle(c, &cs);
		_exit(cs.embedded == 1 && cs.no_vector == 1 ? 0 : 3);
	}
	int ws;
	waitpid(pid, &ws, 0);
	REQUIRE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	db = open_idle(dir, 256, &st);
	CHECK_EQ_INT(st.bytes_read, 0);
	CHECK_EQ_INT(src_of(db, "bin2"), T4DX_VEC_TRIED);
	CHECK_EQ_INT(src_of(db, "coffee"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Another embedder (here another vector.dim; a new T4DX_EMBED_VERSION
 * is the same case) computes the embedder's vectors and marks again,
 * once, and leaves hand vectors alone; search uses only vectors of the
 * query's dim. */
static void test_embedder_changed(void)
{
	const char *dir = unit_tmpdir("vchanged");
	struct t4dx_embed_stats st;
	struct t4dx *db = open_idle(dir, 256, &st);
	REQUIRE(write_file(db, "tea", "green tea with jasmine") == 0);
	REQUIRE(write_file(db, "coffee", "black coffee") == 0);
	REQUIRE(write_file(db, "hand", "set by hand") == 0);
	REQUIRE(write_bin(db, "bin", 1000, 1) == 0);
	embedder_idle(db, &st);
	struct t4dx_blob *h = vec_of(64, 1.0f);
	/* a hand vector of vector.dim 64, set while the store has 256 */
	CHECK_EQ_INT(set_vec(db, "hand", T4DX_VEC_HAND, h), 0);
	REQUIRE(t4dx_flush(db) == 0);
	CHECK_EQ_INT(dim_of(db, "tea"), 256);
	CHECK_EQ_INT(t4dx_close(db), 0);

	db = open_idle(dir, 64, &st);
	CHECK(!strcmp(state_of(dir),
		      "{\"embedder\":\"builtin\",\"version\":1,\"dim\":64}\n"));
	CHECK_EQ_INT(st.embedded, 2);
	CHECK_EQ_INT(st.no_vector, 0);  /* tried again, the same: no record */
	CHECK_EQ_INT(st.bytes_read, 22 + 12 + 1000);    /* not "hand" */
	CHECK_EQ_INT(st.failed, 0);
	CHECK_EQ_INT(dim_of(db, "tea"), 64);
	CHECK_EQ_INT(dim_of(db, "coffee"), 64);
	CHECK(has_vec(db, "hand", T4DX_VEC_HAND, h));
	CHECK_EQ_INT(src_of(db, "bin"), T4DX_VEC_TRIED);
	/* the vectors are the new embedder's */
	float q[64];
	REQUIRE(t4dx_embed("black coffee", 12, 64, q) == 0);
	struct t4dx_search_opts o;
	t4dx_search_defaults(&o);
	struct t4dx_hit *hits;
	size_t n;
	REQUIRE(t4dx_search(db, q, 64, &o, &hits, &n) == 0);
	CHECK(n == 3 && !strcmp(hits[0].path, "coffee") &&
	      hits[0].score > 0.999f);
	t4dx_hits_free(hits, n);
	CHECK_EQ_INT(t4dx_close(db), 0);

	/* once done, a start reads nothing again */
	db = open_idle(dir, 64, &st);
	CHECK_EQ_INT(st.bytes_read, 0);
	CHECK_EQ_INT(t4dx_close(db), 0);

	/* back to 256: the hand vector of 64 stays, and a search of 256
	 * leaves it out */
	db = open_idle(dir, 256, &st);
	CHECK_EQ_INT(st.embedded, 2);
	CHECK(has_vec(db, "hand", T4DX_VEC_HAND, h));
	float q2[256];
	REQUIRE(t4dx_embed("set by hand", 11, 256, q2) == 0);
	REQUIRE(t4dx_search(db, q2, 256, &o, &hits, &n) == 0);
	CHECK_EQ_INT(n, 2);
	for (size_t i = 0; i < n; i++)
		CHECK(strcmp(hits[i].path, "hand"));
	t4dx_hits_free(hits, n);
	CHECK_EQ_INT(t4dx_close(db), 0);

	/* a damaged or foreign EMBEDDER is another embedder: all again */
	char path[4096];
	snprintf(path, sizeof(path), "%s/EMBEDDER", dir);
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fputs("{\"embedder\":\"builtin\",\"version\":0,\"dim\":256}\n", f);
	fclose(f);
	db = open_idle(dir, 256, &st);
	/* every content read again, but nothing changed: nothing logged */
	CHECK_EQ_INT(st.bytes_read, 22 + 12 + 1000);
	CHECK_EQ_INT(st.embedded + st.no_vector, 0);
	CHECK(!strcmp(state_of(dir),
		      "{\"embedder\":\"builtin\",\"version\":1,\"dim\":256}\n"));
	CHECK_EQ_INT(t4dx_close(db), 0);
	t4dx_blob_unref(h);
	unit_rm_rf(dir);
}

/* A client of tests/embed-cmd.sh MODE ARG (dim 4, timeout in s). */
static struct t4dx_embed_cmd *cmd_of(const char *mode, const char *arg,
				     double timeout_s)
{
	const char *src = getenv("T4DX_SRCDIR");
	char argv[4096];
	snprintf(argv, sizeof(argv),
		 "[\"bash\",\"%s/tests/embed-cmd.sh\",\"%s\",\"%s\"]",
		 src ? src : ".", mode, arg);
	struct t4dx_embed_cmd *c;
	REQUIRE(t4dx_embed_cmd_new(argv, 4, timeout_s, &c) == 0);
	return c;
}

static int64_t now_mono(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The protocol of the command embedder, answer by answer. */
static void test_embed_cmd(void)
{
	float x[4];
	char why[256];
	struct t4dx_embed_cmd *c = cmd_of("answer", "4", 10);
	CHECK_EQ_INT(t4dx_embed_cmd_starts(c), 0);      /* lazily */
	CHECK_EQ_INT(t4dx_embed_cmd_run(c, "tea\n", 4, x, why, sizeof(why)), 0);
	CHECK(x[0] == 1 && x[1] == 4 && x[2] == 0 && x[3] == 0);
	/* quotes, backslashes, control characters and UTF-8 go through */
	const char *t = "a\"b\\c\t\x01\xc3\xa9";
	CHECK_EQ_INT(t4dx_embed_cmd_run(c, t, strlen(t), x, why, sizeof(why)),
		     0);
	CHECK(x[1] == 8);
	CHECK_EQ_INT(t4dx_embed_cmd_run(c, "nothing", 7, x, why, sizeof(why)),
		     ENODATA);
	/* never sent: not UTF-8, empty */
	CHECK_EQ_INT(t4dx_embed_cmd_run(c, "a\xff", 2, x, why, sizeof(why)),
		     ENODATA);
	CHECK_EQ_INT(t4dx_embed_cmd_run(c, "", 0, x, why, sizeof(why)),
		     ENODATA);
	/* a text past the limit is cut between characters */
	size_t big = T4DX_EMBED_MAX_BYTES + 1;
	char *b = malloc(big);
	REQUIRE(b);
	memset(b, 'a', big);
	memcpy(b + T4DX_EMBED_MAX_BYTES - 1, "\xc3\xa9", 2);
	CHECK_EQ_INT(t4dx_embed_cmd_run(c, b, big, x, why, sizeof(why)), 0);
	CHECK(x[1] == T4DX_EMBED_MAX_BYTES - 1);
	free(b);
	CHECK_EQ_INT(t4dx_embed_cmd_starts(c), 1);
	t4dx_embed_cmd_free(c);

	/* failures: said, killed, and no new start before the back-off */
	/* (why2: another way the same failure may be seen first) */
	static const struct { const char *mode, *why, *why2; } bad[] = {
		{ "crash", "closed its output (exited with status 3)", NULL },
		{ "garbage", "answered something else than {\"id\":1,", NULL },
		{ "bare", "answered something else than {\"id\":1,", NULL },
		{ "twice", "answered request 1, not 2", "nobody asked for" },
		{ "wrongdim", "answered 3 numbers, not 4", NULL },
		{ "nan", "not a finite float at 0", NULL },
		{ "hang", "did not answer within vector.timeout_s", NULL },
	};
	const char *dir = unit_tmpdir("vcmd");
	char pidfile[4096];
	snprintf(pidfile, sizeof(pidfile), "%s/hang.pid", dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool hang = !strcmp(bad[i].mode, "hang");
		bool twice = !strcmp(bad[i].mode, "twice");
		c = cmd_of(bad[i].mode, hang ? pidfile : "4", twice ? 3 : 0.3);
		if (twice)      /* its first answer is right, and doubled */
			CHECK_EQ_INT(t4dx_embed_cmd_run(c, "say it twice", 12,
							x, why, sizeof(why)),
				     0);
		int rc = t4dx_embed_cmd_run(c, "tea", 3, x, why, sizeof(why));
		CHECK(rc != 0 && rc != ENODATA && rc != EAGAIN);
		bool said = strstr(why, bad[i].why) ||
			    (bad[i].why2 && strstr(why, bad[i].why2));
		if (!said)
			fprintf(stderr, "%s: \"%s\"\n", bad[i].mode, why);
		CHECK(said);
		int64_t ready = t4dx_embed_cmd_ready_ns(c);
		CHECK(ready > now_mono() + 500000000LL);        /* about 1 s */
		CHECK_EQ_INT(t4dx_embed_cmd_run(c, "tea", 3, x, why,
						sizeof(why)), EAGAIN);
		CHECK_EQ_INT(t4dx_embed_cmd_starts(c), 1);
		t4dx_embed_cmd_free(c);
	}
	/* the hung program and its child were killed */
	FILE *f = fopen(pidfile, "r");
	REQUIRE(f);
	long pid;
	while (fscanf(f, "%ld", &pid) == 1) {
		int dead = 0;
		for (int k = 0; k < 1000 && !dead; k++) {
			char st[64];
			snprintf(st, sizeof(st), "/proc/%ld/stat", pid);
			FILE *p = fopen(st, "r");
			char buf[512] = "";
			if (p) {
				if (!fgets(buf, sizeof(buf), p))
					buf[0] = 0;
				fclose(p);
			}
			char *e = strrchr(buf, ')');
			dead = !p || (e && e[2] == 'Z');
			if (!dead)
				usleep(10000);
		}
		CHECK(dead);
	}
	fclose(f);

	/* a program that cannot start */
	REQUIRE(t4dx_embed_cmd_new("[\"/nonexistent/embedder\"]", 4, 1, &c) ==
		0);
	CHECK_EQ_INT(t4dx_embed_cmd_run(c, "tea", 3, x, why, sizeof(why)),
		     ENOENT);
	CHECK(strstr(why, "cannot start") != NULL);
	t4dx_embed_cmd_free(c);

	/* a cancel ends a wait at once */
	c = cmd_of("hang", pidfile, 3600);
	t4dx_embed_cmd_cancel(c);
	CHECK_EQ_INT(t4dx_embed_cmd_run(c, "tea", 3, x, why, sizeof(why)),
		     ECANCELED);
	t4dx_embed_cmd_free(c);
	unit_rm_rf(dir);
}

/* More files without a vector than the embedder's queue holds: all get
 * one (from review: the sweep, run again at each overflow before the
 * queued files, filled the queue with the same files for ever). */
static void test_embedder_big_sweep(void)
{
	const char *dir = unit_tmpdir("vbig");
	struct t4dx *db = open_db(dir);         /* off */
	char name[16], text[64];
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "n%02d", i);
		snprintf(text, sizeof(text), "note number %d about tea", i);
		REQUIRE(write_file(db, name, text) == 0);
	}
	CHECK_EQ_INT(t4dx_close(db), 0);
	setenv("T4DX_TEST_EMBED_QUEUE_MAX", "10", 1);
	db = open_emb(dir, "builtin");
	unsetenv("T4DX_TEST_EMBED_QUEUE_MAX");
	struct t4dx_embed_stats st;
	embedder_idle(db, &st);
	int with = 0;
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "n%02d", i);
		with += src_of(db, name) == T4DX_VEC_EMBED;
	}
	CHECK_EQ_INT(with, 25);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Open with the embedder's hold-back for writers set to quiet_ms (writes
 * paused this long) and defer_ms (the longest a file waits). */
static struct t4dx *open_held(const char *dir, const char *quiet_ms,
			      const char *defer_ms)
{
	setenv("T4DX_TEST_EMBED_QUIET_MS", quiet_ms, 1);
	setenv("T4DX_TEST_EMBED_DEFER_MS", defer_ms, 1);
	struct t4dx *db = open_emb(dir, "builtin");
	unsetenv("T4DX_TEST_EMBED_QUIET_MS");
	unsetenv("T4DX_TEST_EMBED_DEFER_MS");
	return db;
}

/* Writers first: a file written while writes go on is embedded once
 * they pause, or once it has waited its longest, not before; and its
 * vector is durable once the embedder says it is idle. */
static void test_embedder_holds_back(void)
{
	const char *dir = unit_tmpdir("vhold");
	struct t4dx_embed_stats st;
	/* writes never pause (a minute): the file waits 300 ms, and no
	 * less, then gets its vector */
	struct t4dx *db = open_held(dir, "60000", "300");
	embedder_idle(db, &st);
	int64_t t0 = now_ms();
	REQUIRE(write_file(db, "a", "green tea with jasmine") == 0);
	embedder_idle(db, &st);
	CHECK(now_ms() - t0 >= 300);
	CHECK_EQ_INT(src_of(db, "a"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(t4dx_close(db), 0);
	/* a file may wait a minute, but writes pause after 300 ms: no
	 * sooner than that pause */
	db = open_held(dir, "300", "60000");
	embedder_idle(db, &st);
	t0 = now_ms();
	REQUIRE(write_file(db, "b", "black coffee") == 0);
	embedder_idle(db, &st);
	CHECK(now_ms() - t0 >= 300);
	CHECK_EQ_INT(src_of(db, "b"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(t4dx_close(db), 0);
	/* idle means durable, also when writes that never pause leave the
	 * sync to the embedder after its longest wait: a crash then keeps
	 * the vector */
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx_embed_stats cs;
		struct t4dx *c = open_held(dir, "60000", "300");
		embedder_idle(c, &cs);
		if (write_file(c, "c", "a cup of oolong"))
			_exit(2);
		embedder_idle(c, &cs);
		_exit(cs.embedded == 1 ? 0 : 3);        /* no close */
	}
	int ws;
	REQUIRE(waitpid(pid, &ws, 0) == pid);
	REQUIRE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	db = open_emb(dir, "off");
	CHECK_EQ_INT(src_of(db, "c"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* In durability mode fsync too, idle means durable: the embedder's own
 * wait for its batch must not be the one that mode skips (the commit
 * timer, a minute away here, would take the vectors only later), or a
 * crash after "idle" loses them, and a redo records the new embedder in
 * EMBEDDER with the old vectors still on disk. */
static void test_embedder_fsync_mode(void)
{
	const char *dir = unit_tmpdir("vfsyncmode");
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx *db = NULL;
		struct t4dx_embed_stats st;
		char msg[256];
		struct t4dx_config c;
		t4dx_config_defaults(&c);
		strcpy(c.vector.embedder, "builtin");
		c.wal.commit_interval_ms = 60000;
		c.health.interval_s = 3600;
		if (t4dx_open(dir, &c, &db, msg, sizeof(msg)))
			_exit(2);
		if (t4dx_set_durability(db, T4DX_DURABLE_FSYNC))
			_exit(3);
		embedder_idle(db, &st);
		if (write_file(db, "f", "a pot of genmaicha") ||
		    t4dx_sync(db, 0))
			_exit(4);       /* the file durable, as an fsync */
		embedder_idle(db, &st);
		_exit(st.embedded == 1 ? 0 : 5);        /* a crash */
	}
	int ws;
	REQUIRE(waitpid(pid, &ws, 0) == pid);
	REQUIRE(WIFEXITED(ws));
	CHECK_EQ_INT(WEXITSTATUS(ws), 0);
	struct t4dx *db = open_emb(dir, "off");
	CHECK_EQ_INT(src_of(db, "f"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Vectors the embedder logged just before the disk failed wait in the
 * replay queue with the users' changes, but take none of the room that
 * fallback.max_queue keeps for those, and the embedder logs nothing
 * more until commits work again.  (A full-disk test found users'
 * writes refused with ENOSPC while the queue held only vectors.) */
static void test_embedder_queue_room(void)
{
	const char *dir = unit_tmpdir("vqroom");
	struct t4dx *db = NULL;
	struct t4dx_embed_stats st;
	struct t4dx_health h;
	char msg[256], name[32], text[64];
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	strcpy(c.vector.embedder, "builtin");
	c.fallback.max_queue = 12;
	c.wal.commit_interval_ms = 60000;       /* the embedder's own wait */
	c.health.interval_s = 3600;
	REQUIRE(t4dx_open(dir, &c, &db, msg, sizeof(msg)) == 0);
	embedder_idle(db, &st);
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(text, sizeof(text), "leaf number %d of sencha", i);
		REQUIRE(write_file(db, name, text) == 0);
	}
	/* the files durable, then every fdatasync fails: the embedder's
	 * wait for its ten vectors fails, and they stay queued */
	faults_arm(FAULT_FDATASYNC, 1, EIO, 1);
	embedder_idle(db, &st);
	t4dx_get_health(db, &h);
	CHECK_EQ_INT(h.queue_vectors, 10);
	CHECK_EQ_INT(h.queue_depth, 0);
	CHECK_EQ_INT(h.unpersisted, 0);         /* nobody's change */
	/* the users' room is whole: twelve changes acknowledged, the
	 * next refused */
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		CHECK_EQ_INT(write_file(db, name, "a cup of hojicha"), 0);
	}
	CHECK_EQ_INT(write_file(db, "u12", "a cup of hojicha"), ENOSPC);
	/* (the embedder stays busy with u0..u11, trying again each second) */
	t4dx_get_health(db, &h);
	CHECK_EQ_INT(h.queue_depth, 12);
	CHECK_EQ_INT(h.queue_vectors, 10);     /* none for u0..u11 */
	CHECK_EQ_INT(h.unpersisted, 12);
	CHECK_EQ_INT(src_of(db, "u0"), T4DX_VEC_NONE);
	/* the disk works again: the queue drains, then the embedder gives
	 * u0..u11 their vectors */
	faults_reset();
	t4dx_breaker_reset(t4dx_get_breaker(db));
	CHECK_EQ_INT(t4dx_sync(db, 0), 0);
	t4dx_get_health(db, &h);
	CHECK_EQ_INT(h.queue_depth + h.queue_vectors, 0);
	embedder_idle(db, &st);
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_emb(dir, "off");
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		CHECK_EQ_INT(src_of(db, name), T4DX_VEC_EMBED);
	}
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		CHECK_EQ_INT(src_of(db, name), T4DX_VEC_EMBED);
	}
	CHECK_EQ_INT(src_of(db, "u12"), -1);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Open dir with vector.embedder "command": tests/embed-cmd.sh with the
 * JSON strings args (dim 4, vector.timeout_s 10). */
static struct t4dx *open_program(const char *dir, const char *args)
{
	const char *src = getenv("T4DX_SRCDIR");
	struct t4dx *db = NULL;
	struct t4dx_config c;
	char msg[256];
	t4dx_config_defaults(&c);
	strcpy(c.vector.embedder, "command");
	c.vector.dim = 4;
	c.vector.timeout_s = 10;
	REQUIRE((size_t)snprintf(c.vector.command, sizeof(c.vector.command),
				 "[\"bash\",\"%.1000s/tests/embed-cmd.sh\",%s]",
				 src ? src : ".", args) <
		sizeof(c.vector.command));
	int rc = t4dx_open(dir, &c, &db, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
	return db;
}

/* Text queries (t4dx_embed_text) share the program of "command" with
 * the embedder, which embeds files meanwhile: each gets the answer to
 * its own request, and the files get theirs. */
struct texter {
	struct t4dx *db;
	int ok, wrong, other;
};

static void *texter_main(void *arg)
{
	struct texter *t = arg;
	for (int i = 0; i < 200; i++) {
		char text[64], why[256];
		float x[4];
		int n = snprintf(text, sizeof(text), "query %*d", i % 40, i);
		int rc = t4dx_embed_text(t->db, text, (size_t)n, x, why,
					 sizeof(why));
		if (rc == 0 && x[0] == 1 && x[1] == n)
			t->ok++;
		else if (rc == 0)
			t->wrong++;
		else
			t->other++;
	}
	return NULL;
}

static void test_embed_text_shared(void)
{
	const char *dir = unit_tmpdir("vtext");
	struct t4dx_embed_stats st;
	char name[32], text[64];
	struct t4dx *db = open_program(dir, "\"answer\",\"4\"");
	struct texter t[3];
	pthread_t thr[3];
	for (int i = 0; i < 3; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].db = db;
		REQUIRE(pthread_create(&thr[i], NULL, texter_main, &t[i]) == 0);
	}
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(text, sizeof(text), "file %*d", i % 30, i);
		REQUIRE(write_file(db, name, text) == 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(thr[i], NULL);
		CHECK_EQ_INT(t[i].ok, 200);
		CHECK_EQ_INT(t[i].wrong + t[i].other, 0);
	}
	embedder_idle(db, &st);
	CHECK_EQ_INT(st.embedded, 100);
	CHECK_EQ_INT(st.failed, 0);
	CHECK_EQ_INT(st.starts, 1);
	for (int i = 0; i < 100; i++) {
		struct t4dx_entry e;
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(text, sizeof(text), "file %*d", i % 30, i);
		REQUIRE(t4dx_get(db, R, name, strlen(name), T4DX_GET_CONTENT,
				 &e) == 0);
		float v[4] = { 0 };
		CHECK(e.vec && t4dx_vec_dim(e.vec) == 4);
		if (e.vec && t4dx_vec_dim(e.vec) == 4)
			t4dx_vec_get(e.vec, v);
		CHECK(v[0] == 1 && v[1] == (float)strlen(text));
		t4dx_entry_clear(&e);
	}
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* The notes of the embedder's records (what the replay queue's bound
 * leaves out) go once durable even while nobody else writes: a sweep of
 * a store written without an embedder kept one per file for good. */
static void test_embedder_queue_notes(void)
{
	const char *dir = unit_tmpdir("vqnotes");
	struct t4dx *db = open_emb(dir, "off");
	struct t4dx_embed_stats st;
	char msg[256], name[32], text[2100];
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		int n = snprintf(text, sizeof(text), "leaf %d", i);
		for (; n < 2000; n += 5)
			memcpy(text + n, " tea ", 6);
		REQUIRE(write_file(db, name, text) == 0);
	}
	CHECK_EQ_INT(t4dx_close(db), 0);
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	strcpy(c.vector.embedder, "builtin");
	c.health.interval_s = 3600;
	REQUIRE(t4dx_open(dir, &c, &db, msg, sizeof(msg)) == 0);
	embedder_idle(db, &st);
	CHECK_EQ_INT(st.embedded, 2000);
	CHECK_EQ_INT(t4dx_sync(db, 0), 0);
	/* every one durable now: the next note (of a record not yet
	 * durable, as the embedder pushes them) is the only one kept */
	pthread_rwlock_wrlock(&db->lock);
	CHECK_EQ_INT(eng_vq_push(db, t4dx_wal_durable_lsn(db->wal) + 1, 100),
		     0);
	pthread_rwlock_unlock(&db->lock);
	pthread_mutex_lock(&db->vq_mu);
	size_t notes = db->vq_n;
	pthread_mutex_unlock(&db->vq_mu);
	if (notes != 1)
		fprintf(stderr, "%zu notes kept\n", notes);
	CHECK_EQ_INT(notes, 1);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* eng_set_embedded trusts the LSN of the version the embedder read (no
 * content compared under the lock): a newer version is compared by
 * content, and takes the vector only if it holds the same bytes (a
 * rename, a kappa set since); new content is ESTALE. */
static void test_set_embedded_version(void)
{
	const char *dir = unit_tmpdir("vversion");
	struct t4dx *db = open_db(dir);
	struct t4dx_entry e;
	uint64_t lsn;
	REQUIRE(write_file(db, "a", "old words") == 0);
	REQUIRE(t4dx_get(db, R, "a", 1, T4DX_GET_CONTENT, &e) == 0);
	REQUIRE(write_file(db, "a", "new words") == 0);
	float x[T4DX_EMBED_DIM_MAX] = { 1 };
	struct t4dx_blob *v = t4dx_vec_new(x, db->cfg.vector.dim);
	REQUIRE(v);
	/* the version read is gone and the bytes differ */
	CHECK_EQ_INT(eng_set_embedded(db, R, "a", 1, e.content, e.lsn,
				      T4DX_VEC_EMBED, v, &lsn), ESTALE);
	t4dx_entry_clear(&e);
	/* the version read is still there */
	REQUIRE(t4dx_get(db, R, "a", 1, T4DX_GET_CONTENT, &e) == 0);
	CHECK_EQ_INT(eng_set_embedded(db, R, "a", 1, e.content, e.lsn,
				      T4DX_VEC_EMBED, v, &lsn), 0);
	t4dx_entry_clear(&e);
	/* renamed and kappa set since it was read: same bytes, it takes it */
	REQUIRE(write_file(db, "b", "other words") == 0);
	REQUIRE(t4dx_get(db, R, "b", 1, T4DX_GET_CONTENT, &e) == 0);
	REQUIRE(t4dx_rename(db, R, "b", 1, R, "c", 1, 0, NULL) == 0);
	struct t4dx_entry f = { .kappa = 0.5 };
	REQUIRE(t4dx_update(db, R, "c", 1, &f, T4DX_F_KAPPA, 0, NULL) == 0);
	CHECK_EQ_INT(eng_set_embedded(db, R, "c", 1, e.content, e.lsn,
				      T4DX_VEC_EMBED, v, &lsn), 0);
	t4dx_entry_clear(&e);
	REQUIRE(t4dx_get(db, R, "c", 1, 0, &e) == 0);
	CHECK_EQ_INT(e.vec_src, T4DX_VEC_EMBED);
	t4dx_entry_clear(&e);
	t4dx_blob_unref(v);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Health's "program failing" (t4dx_embed_stats) says what the program
 * answered last: a content it is never asked about (binary), or a text
 * query it is never given (empty), says nothing of it. */
static bool failing_now(struct t4dx *db)
{
	struct t4dx_embed_stats st;
	t4dx_embed_stats(db, &st);
	return st.program_failing;
}

static void test_program_failing_kept(void)
{
	const char *dir = unit_tmpdir("vfailing");
	char flag[1024], args[1200], why[256];
	struct t4dx_embed_stats st;
	float x[4];
	snprintf(flag, sizeof(flag), "%s/down", dir);
	FILE *f = fopen(flag, "w");
	REQUIRE(f && fclose(f) == 0);
	snprintf(args, sizeof(args), "\"down-if\",\"%.1000s\",\"4\"", flag);
	struct t4dx *db = open_program(dir, args);
	REQUIRE(write_file(db, "f1", "black coffee") == 0);
	for (int i = 0; i < 30000 && !failing_now(db); i++)
		usleep(1000);
	REQUIRE(failing_now(db));
	/* an empty query: ENODATA, the program not asked */
	CHECK_EQ_INT(t4dx_embed_text(db, "", 0, x, why, sizeof(why)), ENODATA);
	CHECK(failing_now(db));
	/* a binary file: marked without a vector, the program not asked
	 * (looked at as soon as it is counted: f1 is tried again, and
	 * fails, only after a back-off of a second or more) */
	REQUIRE(write_file(db, "bin", "\x01\x02\xff") == 0);
	bool seen = false;
	for (int i = 0; i < 30000 && !seen; i++) {
		t4dx_embed_stats(db, &st);
		if (st.no_vector >= 1)
			seen = true;
		else
			usleep(200);
	}
	REQUIRE(seen);
	CHECK(st.program_failing);
	CHECK(failing_now(db));
	/* and an answer clears it */
	REQUIRE(unlink(flag) == 0);
	REQUIRE(write_file(db, "f2", "green tea") == 0);
	for (int i = 0; i < 60000 && failing_now(db); i++)
		usleep(1000);
	t4dx_embed_stats(db, &st);
	CHECK(!st.program_failing);
	CHECK(st.program_error[0] == 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A content the program always fails on, given up once it has answered
 * others between its failures (embed_one): the program works, and
 * health says so once that file is marked, whether or not another file
 * comes after it. */
static void test_program_given_up_ok(void)
{
	const char *dir = unit_tmpdir("vgivenup");
	char name[32];
	struct t4dx_embed_stats st;
	struct t4dx *db = open_program(dir, "\"poison\",\"4\"");
	REQUIRE(write_file(db, "ok0", "fine words") == 0);
	embedder_idle(db, &st);
	REQUIRE(write_file(db, "bad", "poison words") == 0);
	/* one answer for another file, then one more failure on "bad",
	 * and again, until "bad" is given up: no file comes after it */
	bool marked = false;
	for (int i = 1; i < 8 && !marked; i++) {
		t4dx_embed_stats(db, &st);
		uint64_t emb = st.embedded, failed = st.failed;
		snprintf(name, sizeof(name), "ok%d", i);
		REQUIRE(write_file(db, name, "fine words") == 0);
		for (int j = 0; j < 60000; j++) {
			t4dx_embed_stats(db, &st);
			if (st.embedded > emb && st.failed > failed)
				break;
			usleep(1000);
		}
		REQUIRE(st.embedded > emb && st.failed > failed);
		for (int j = 0; j < 2000 && !marked; j++) {
			marked = src_of(db, "bad") == T4DX_VEC_TRIED;
			if (!marked)
				usleep(1000);
		}
	}
	REQUIRE(marked);
	embedder_idle(db, &st);
	CHECK(!st.program_failing);
	CHECK(st.program_error[0] == 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

int main(void)
{
	/* the CPU never counts as busy here (a loaded machine would hold
	 * vectors back for vector.defer_s): test_busy tests that */
	setenv("T4DX_TEST_BUSY_SPARE_PCT", "100", 1);
	RUN(test_hand_vector_kept);
	RUN(test_embed_vector_dropped);
	RUN(test_bad_vectors);
	RUN(test_vector_crash);
	RUN(test_search_exact);
	RUN(test_embedder);
	RUN(test_embedder_big_sweep);
	RUN(test_embedder_holds_back);
	RUN(test_embedder_fsync_mode);
	RUN(test_embedder_queue_room);
	RUN(test_embedder_queue_notes);
	RUN(test_embedder_remembers);
	RUN(test_embedder_changed);
	RUN(test_embed_cmd);
	RUN(test_embed_text_shared);
	RUN(test_set_embedded_version);
	RUN(test_program_failing_kept);
	RUN(test_program_given_up_ok);
	UNIT_DONE();
}
