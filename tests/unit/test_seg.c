/* test_seg.c - segment files: round trip, lookups, iteration, Bloom filter,
 * damage detection and write faults (core/seg.c). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "faults.h"
#include "io.h"
#include "seg.h"
#include "t4dx.h"
#include "buf.h"
#include "unit.h"
#include "vec.h"

/* The layout documented at the top of seg.c, so that the damage tests can
 * hit one part of the file and not another. */
#define HDR_SIZE 16
#define FTR_SIZE 88
#define IX_BEFORE_KEYS 48       /* index entry bytes before the keys */
#define PART_TARGET (16 * 1024) /* the writer's raw limit for each part */

static const char *dir;
static char seg_path[4096];
static struct t4dx_entry **ents;
static size_t nents;

/* ---- helpers --------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static char *path_in(const char *name)
{
	static char p[4096];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	REQUIRE(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *p = malloc(*len ? *len : 1);
	REQUIRE(p && fread(p, 1, *len, f) == *len);
	fclose(f);
	return p;
}

static void spill(const char *path, const unsigned char *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	REQUIRE(f && fwrite(p, 1, len, f) == len);
	fclose(f);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static int cmp_ent(const void *a, const void *b)
{
	const struct t4dx_entry *x = *(struct t4dx_entry *const *)a;
	const struct t4dx_entry *y = *(struct t4dx_entry *const *)b;
	return t4dx_key_cmp(x->parent, x->name, x->name_len, y->parent,
			    y->name, y->name_len);
}

/* Index of the first entry with key >= (parent, name), as the segment's
 * iterator should find it. */
static size_t lower_bound(uint64_t parent, const char *name, size_t len)
{
	size_t lo = 0, hi = nents;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t4dx_key_cmp(ents[mid]->parent, ents[mid]->name,
				 ents[mid]->name_len, parent, name, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool entry_eq(const struct t4dx_entry *a, const struct t4dx_entry *b,
		     bool with_content)
{
	if (a->parent != b->parent || a->name_len != b->name_len ||
	    memcmp(a->name, b->name, a->name_len) || b->name[b->name_len] ||
	    a->tombstone != b->tombstone || a->lsn != b->lsn ||
	    a->ino != b->ino || a->mode != b->mode || a->uid != b->uid ||
	    a->gid != b->gid || a->atime_ns != b->atime_ns ||
	    a->mtime_ns != b->mtime_ns || a->ctime_ns != b->ctime_ns ||
	    memcmp(a->id, b->id, 16) ||
	    memcmp(&a->kappa, &b->kappa, sizeof(double)) ||
	    memcmp(&a->importance, &b->importance, sizeof(double)) ||
	    a->type != b->type || a->event_time_ns != b->event_time_ns ||
	    a->access_count != b->access_count || a->size != b->size ||
	    a->vec_src != b->vec_src)
		return false;
	if (!with_content)
		return b->content == NULL && b->vec == NULL;
	if (!t4dx_vec_equal(a->vec, b->vec))
		return false;
	if (!a->content || !b->content)
		return a->content == b->content;
	return a->content->len == b->content->len &&
	       !memcmp(a->content->data, b->content->data, a->content->len);
}

/* b read with T4DX_SEG_VEC: a's record and vector, no content. */
static bool vec_eq(const struct t4dx_entry *a, const struct t4dx_entry *b)
{
	struct t4dx_entry m = *b;
	m.vec = NULL;
	return !b->content && t4dx_vec_equal(a->vec, b->vec) &&
	       entry_eq(a, &m, false);
}

enum kind { K_DIR, TEXT, BINARY, EMPTY, TOMB };

/* Most files get a vector, of the embedder or set by hand, of one of a
 * few dimensions (4096: one vector fills a vector part); its values come
 * from i, not from rnd(), so the contents stay what they were before
 * segments had vectors. */
static void add_vector(struct t4dx_entry *e, size_t i)
{
	static const uint32_t dims[] = { 256, 3, 256, 4096, 1, 256, 64 };
	if (i % 4 == 3)
		return;
	uint32_t dim = dims[i % 7];
	float *x = malloc(sizeof(*x) * dim);
	REQUIRE(x);
	for (uint32_t j = 0; j < dim; j++)
		x[j] = (float)((int32_t)((i * 2654435761u + j * 40503u) %
					 20001) - 10000) / 7919.0f;
	e->vec_src = i % 4 == 1 ? T4DX_VEC_HAND : T4DX_VEC_EMBED;
	e->vec = t4dx_vec_new(x, dim);
	REQUIRE(e->vec);
	free(x);
}

static void add(uint64_t parent, const char *name, size_t len, enum kind k,
		size_t content_len)
{
	struct t4dx_entry *e = calloc(1, sizeof(*e));
	REQUIRE(e && t4dx_entry_set_key(e, parent, name, len) == 0);
	e->lsn = rnd();
	e->ino = rnd();
	e->mode = k == K_DIR ? 040755 : 0100644;
	e->uid = (uint32_t)rnd();
	e->gid = (uint32_t)rnd();
	e->atime_ns = (int64_t)rnd();
	e->mtime_ns = (int64_t)rnd();
	e->ctime_ns = -(int64_t)(rnd() >> 1);
	for (int i = 0; i < 16; i++)
		e->id[i] = (uint8_t)rnd();
	e->kappa = (double)(rnd() % 1001) / 1000;
	e->importance = nents % 5 ? (double)rnd() / 3 : -0.0;
	e->type = (uint8_t)(rnd() % 3);
	e->event_time_ns = (int64_t)rnd();
	e->access_count = rnd();
	e->tombstone = k == TOMB;
	if (k == TEXT || k == BINARY || k == EMPTY) {
		e->content = t4dx_blob_new(k == EMPTY ? 0 : content_len);
		REQUIRE(e->content);
		for (size_t i = 0; i < e->content->len; i++)
			e->content->data[i] = k == TEXT ?
				(unsigned char)("met Alice at the cafe "[i % 22]) :
				(unsigned char)rnd();
		e->size = e->content->len;
		add_vector(e, nents);
	}
	struct t4dx_entry **more = realloc(ents, (nents + 1) * sizeof(*ents));
	REQUIRE(more);
	ents = more;
	ents[nents++] = e;
}

/* A few thousand entries of every kind, sorted by key. */
static void make_entries(void)
{
	char name[T4DX_NAME_MAX + 1];
	for (unsigned i = 0; i < 1500; i++) {
		int len = snprintf(name, sizeof(name), "item-%05u", i);
		enum kind k = i % 7 == 0 ? TOMB : i % 11 == 0 ? K_DIR :
			      i % 13 == 0 ? BINARY : i % 17 == 0 ? EMPTY : TEXT;
		add(16, name, (size_t)len, k, rnd() % 300);
	}
	/* every byte value but '/' and NUL as a one-byte name */
	for (int c = 1; c < 256; c++) {
		if (c == '/')
			continue;
		name[0] = (char)c;
		add(17, name, 1, c % 3 ? BINARY : K_DIR, rnd() % 40);
	}
	size_t n = 0;
	for (int c = 1; c < 256; c++)
		if (c != '/')
			name[n++] = (char)c;
	add(18, name, n, BINARY, 64);           /* all of them in one name */
	memset(name, 0xff, T4DX_NAME_MAX);
	add(18, name, T4DX_NAME_MAX, TEXT, 10);
	add(18, "a", 1, TEXT, 1);
	add(18, "aa", 2, EMPTY, 0);
	add(18, "ab", 2, TOMB, 0);
	add(18, "b", 1, K_DIR, 0);
	add(19, "big", 3, BINARY, 1 << 20);     /* one 1 MiB item */
	/* content parts in chunks: 3 (random), 4 (the last of 1 byte) */
	add(19, "huge", 4, BINARY, (5u << 20) / 2);
	add(19, "huge-text", 9, TEXT, (3u << 20) + 1);
	add(19, "small-after-big", 15, TEXT, 5);
	for (unsigned d = 0; d < 50; d++)
		for (unsigned i = 0; i < 20; i++) {
			int len = snprintf(name, sizeof(name), "d%u-%u", d, i);
			add(1000 + d, name, (size_t)len, i % 2 ? TEXT : K_DIR,
			    rnd() % 100);
		}
	add(0, "zero", 4, TEXT, 3);
	add(UINT64_MAX, "last", 4, TOMB, 0);
	qsort(ents, nents, sizeof(*ents), cmp_ent);
	for (size_t i = 1; i < nents; i++)
		REQUIRE(cmp_ent(&ents[i - 1], &ents[i]) < 0);
}

static struct t4dx_seg *open_ok(const char *path)
{
	struct t4dx_seg *s = NULL;
	int rc = t4dx_seg_open(path, 7, &s);
	CHECK_EQ_INT(rc, 0);
	REQUIRE(s);
	return s;
}

static int open_rc(const char *path)
{
	struct t4dx_seg *s = NULL;
	int rc = t4dx_seg_open(path, 7, &s);
	t4dx_seg_unref(s);
	return rc;
}

/* pread counting, to see which lookups touch the disk */
static unsigned preads;
static ssize_t counting_pread(int fd, void *buf, size_t len, off_t off)
{
	preads++;
	return pread(fd, buf, len, off);
}

static size_t pread_bytes;
static ssize_t summing_pread(int fd, void *buf, size_t len, off_t off)
{
	pread_bytes += len;
	return pread(fd, buf, len, off);
}

static ssize_t failing_pread(int fd, void *buf, size_t len, off_t off)
{
	errno = EIO;
	return -1;
}

/* The test's own reading of the footer and block index (version 4). */
struct tblk {
	uint64_t off;
	uint32_t clen, rlen, nrec;      /* the meta part */
	uint32_t cclen, crlen;          /* the content part, at off + clen */
	uint32_t vclen, vrlen;          /* the vector part, after it */
	size_t ixpos;           /* where its entry starts in the file */
	uint64_t fp, lp;        /* first and last key */
	const char *fn, *ln;
	uint16_t fl, ll;
};

static size_t parse_blocks(const unsigned char *f, size_t len,
			   struct tblk **out)
{
	const unsigned char *ft = f + len - FTR_SIZE;
	size_t n = t4dx_get_u32(ft + 56), pos = t4dx_get_u64(ft);
	struct tblk *b = calloc(n, sizeof(*b));
	REQUIRE(b);
	for (size_t i = 0; i < n; i++) {
		b[i].ixpos = pos;
		b[i].off = t4dx_get_u64(f + pos);
		b[i].clen = t4dx_get_u32(f + pos + 8);
		b[i].rlen = t4dx_get_u32(f + pos + 12);
		b[i].nrec = t4dx_get_u32(f + pos + 20);
		b[i].cclen = t4dx_get_u32(f + pos + 24);
		b[i].crlen = t4dx_get_u32(f + pos + 28);
		b[i].vclen = t4dx_get_u32(f + pos + 36);
		b[i].vrlen = t4dx_get_u32(f + pos + 40);
		pos += IX_BEFORE_KEYS;
		b[i].fp = t4dx_get_u64(f + pos);
		b[i].fl = t4dx_get_u16(f + pos + 8);
		b[i].fn = (const char *)f + pos + 10;
		pos += 10 + b[i].fl;
		b[i].lp = t4dx_get_u64(f + pos);
		b[i].ll = t4dx_get_u16(f + pos + 8);
		b[i].ln = (const char *)f + pos + 10;
		pos += 10 + b[i].ll;
	}
	REQUIRE(pos == t4dx_get_u64(ft) + t4dx_get_u64(ft + 8));
	*out = b;
	return n;
}

/* Recompute every CRC so that a deliberate change gets past them. */
static void refresh_crcs(unsigned char *f, size_t len)
{
	struct tblk *b;
	size_t n = parse_blocks(f, len, &b);
	unsigned char *ft = f + len - FTR_SIZE;
	for (size_t i = 0; i < n; i++) {
		put32(f + b[i].ixpos + 16,
		      (uint32_t)crc32(0, f + b[i].off, b[i].clen));
		if (b[i].cclen)
			put32(f + b[i].ixpos + 32,
			      (uint32_t)crc32(0, f + b[i].off + b[i].clen,
					      b[i].cclen));
		if (b[i].vclen)
			put32(f + b[i].ixpos + 44,
			      (uint32_t)crc32(0, f + b[i].off + b[i].clen +
					      b[i].cclen, b[i].vclen));
	}
	put32(ft + 60, (uint32_t)crc32(0, f + t4dx_get_u64(ft),
				       (uInt)t4dx_get_u64(ft + 8)));
	put32(ft + 64, (uint32_t)crc32(0, f + t4dx_get_u64(ft + 16),
				       (uInt)t4dx_get_u64(ft + 24)));
	put32(ft + 76, (uint32_t)crc32(0, ft, 76));
	free(b);
}

static bool in_block(const struct tblk *b, const struct t4dx_entry *e)
{
	return t4dx_key_cmp(b->fp, b->fn, b->fl, e->parent, e->name,
			    e->name_len) <= 0 &&
	       t4dx_key_cmp(e->parent, e->name, e->name_len, b->lp, b->ln,
			    b->ll) <= 0;
}

/* ---- the version 1 fixture --------------------------------------------
 * tests/unit/seg-v1.t4s was written by the version 1 writer (t4dx before
 * format version 2), seg-v2.t4s by the version 2 writer (before version
 * 3), seg-v3.t4s by the version 3 writer (before vectors, version 4), all
 * from exactly the entries fixture_entry() describes; the reader must go
 * on reading them. */
struct fixture_key {
	uint64_t parent;
	const char *name;
	size_t name_len;
	enum kind kind;
	size_t content_len;
};

static const struct fixture_key fixture_keys[] = {
	{ 1, "docs", 4, K_DIR, 0 },
	{ 1, "notes.txt", 9, TEXT, 300 },
	{ 1, "old", 3, TOMB, 0 },
	{ 2, "\x01\x02\x03", 3, BINARY, 77 },
	{ 2, "a", 1, TEXT, 1 },
	{ 2, "big.bin", 7, BINARY, 20000 },
	{ 2, "empty", 5, EMPTY, 0 },
	{ 2, "gone", 4, TOMB, 0 },
	{ 2, "h\xc3\xa9llo", 6, TEXT, 12 },
	{ 2, "z\x7f\x80\xfe\xff", 5, BINARY, 1000 },
	{ 3, "after-big", 9, TEXT, 5000 },
};
#define FIXTURE_NT (sizeof(fixture_keys) / sizeof(fixture_keys[0]))

/* Entry i of the fixture, in key order: the table above, 36 entries
 * "f00".."f35" in parents 1000..1002, and a tombstone in the last parent.
 * Every other field follows from i. */
#define FIXTURE_N (FIXTURE_NT + 37)

static void fixture_entry(size_t i, struct t4dx_entry *e)
{
	char name[32];
	struct fixture_key k;
	if (i < FIXTURE_NT) {
		k = fixture_keys[i];
	} else if (i < FIXTURE_NT + 36) {
		static const enum kind kinds[] = { TEXT, K_DIR, BINARY, TOMB,
						   EMPTY, TEXT };
		size_t j = i - FIXTURE_NT;
		k.parent = 1000 + j / 12;
		k.name_len = (size_t)snprintf(name, sizeof(name), "f%02zu", j);
		k.name = name;
		k.kind = kinds[j % 6];
		k.content_len = k.kind == TEXT || k.kind == BINARY ?
				j * 97 % 1500 : 0;
	} else {
		k = (struct fixture_key){ UINT64_MAX, "\xff", 1, TOMB, 0 };
	}
	memset(e, 0, sizeof(*e));
	REQUIRE(t4dx_entry_set_key(e, k.parent, k.name, k.name_len) == 0);
	e->tombstone = k.kind == TOMB;
	e->lsn = 100 + i;
	e->ino = 5000 + i * 3;
	e->mode = k.kind == K_DIR ? 040755 : 0100600 | (unsigned)(i % 8) << 3;
	e->uid = 1000 + (uint32_t)i;
	e->gid = 100 - (uint32_t)i;
	e->atime_ns = 1700000000000000000LL + (int64_t)i * 1000000007LL;
	e->mtime_ns = e->atime_ns - 17;
	e->ctime_ns = -(int64_t)i * 123456789LL;
	for (int j = 0; j < 16; j++)
		e->id[j] = (uint8_t)(i * 16 + (size_t)j);
	e->kappa = (double)i / 8;
	e->importance = i % 4 ? -(double)i / 3 : -0.0;
	e->type = (uint8_t)(i % 3);
	e->event_time_ns = -(int64_t)i * 1000000000LL;
	e->access_count = (uint64_t)i * i * 1000003u;
	if (k.kind == TEXT || k.kind == BINARY || k.kind == EMPTY) {
		e->content = t4dx_blob_new(k.content_len);
		REQUIRE(e->content);
		for (size_t j = 0; j < k.content_len; j++)
			e->content->data[j] = k.kind == TEXT ?
				(unsigned char)"the quick brown fox\n"[j % 20] :
				(unsigned char)(i * 7 + j * 13 + (j >> 8));
		e->size = k.content_len;
	}
}

static const char *srcdir(void)
{
	const char *d = getenv("T4DX_SRCDIR");
	return d ? d : ".";
}

/* Open a fixture written by an earlier writer (seg-v1.t4s to seg-v3.t4s),
 * verify it, list it without and with content, and look up every
 * entry. */
static void check_fixture(const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/unit/%s", srcdir(), name);
	struct t4dx_entry want[FIXTURE_N];
	for (size_t i = 0; i < FIXTURE_N; i++)
		fixture_entry(i, &want[i]);

	struct t4dx_seg *s = open_ok(path);
	CHECK_EQ_INT(t4dx_seg_count(s), FIXTURE_N);
	CHECK_EQ_INT(t4dx_seg_min_lsn(s), 100);
	CHECK_EQ_INT(t4dx_seg_max_lsn(s), 100 + FIXTURE_N - 1);
	CHECK_EQ_INT(t4dx_seg_verify(s), 0);

	unsigned bad = 0;
	for (int wc = 0; wc < 2; wc++) {
		struct t4dx_seg_iter *it;
		REQUIRE(t4dx_seg_iter_open(s, 0, "", 0, &it) == 0);
		size_t n = 0;
		struct t4dx_entry out;
		int rc;
		while ((rc = t4dx_seg_iter_next(it, wc, &out)) == 0) {
			bad += n >= FIXTURE_N || !entry_eq(&want[n], &out, wc);
			t4dx_entry_clear(&out);
			n++;
		}
		CHECK_EQ_INT(rc, T4DX_ENOTFOUND);
		CHECK_EQ_INT(n, FIXTURE_N);
		t4dx_seg_iter_close(it);
	}
	for (size_t i = 0; i < FIXTURE_N; i++) {
		for (int wc = 0; wc < 2; wc++) {
			struct t4dx_entry out;
			int rc = t4dx_seg_get(s, want[i].parent, want[i].name,
					      want[i].name_len, wc, &out);
			bad += rc || !entry_eq(&want[i], &out, wc);
			if (!rc)
				t4dx_entry_clear(&out);
		}
	}
	CHECK_EQ_INT(bad, 0);
	struct t4dx_entry out;
	CHECK_EQ_INT(t4dx_seg_get(s, 2, "b", 1, true, &out), T4DX_ENOTFOUND);
	/* by ordinal (the keys of a vector index), across its blocks */
	for (size_t i = 0; i < FIXTURE_N; i++) {
		for (int wc = 0; wc < 2; wc++) {
			int rc = t4dx_seg_get_nth(s, i, wc, &out);
			bad += rc || !entry_eq(&want[i], &out, wc);
			if (!rc)
				t4dx_entry_clear(&out);
		}
	}
	CHECK_EQ_INT(bad, 0);
	/* its vectors alone: none, and no content */
	struct t4dx_seg_iter *it;
	REQUIRE(t4dx_seg_iter_open(s, 0, "", 0, &it) == 0);
	size_t n = 0;
	int rc;
	while ((rc = t4dx_seg_iter_next(it, T4DX_SEG_VEC, &out)) == 0) {
		bad += n >= FIXTURE_N || !vec_eq(&want[n], &out) ||
		       out.vec_src != T4DX_VEC_NONE;
		t4dx_entry_clear(&out);
		n++;
	}
	t4dx_seg_iter_close(it);
	CHECK_EQ_INT(rc, T4DX_ENOTFOUND);
	CHECK_EQ_INT(n, FIXTURE_N);
	for (size_t i = 0; i < FIXTURE_N; i++) {
		rc = t4dx_seg_get_nth(s, i, T4DX_SEG_VEC, &out);
		bad += rc || !vec_eq(&want[i], &out);
		if (!rc)
			t4dx_entry_clear(&out);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(t4dx_seg_blocks(s) > 1);
	CHECK_EQ_INT(t4dx_seg_get_nth(s, FIXTURE_N, false, &out),
		     T4DX_ENOTFOUND);
	/* written before vectors: no index is built for it */
	CHECK(!t4dx_seg_has_vectors(s));
	t4dx_seg_unref(s);

	/* damage in an older block is still found */
	size_t len;
	unsigned char *f = slurp(path, &len);
	f[HDR_SIZE + 20] ^= 0x08;
	char *p = path_in("old-damaged.t4s");
	spill(p, f, len);
	free(f);
	s = open_ok(p);
	CHECK_EQ_INT(t4dx_seg_verify(s), T4DX_ECORRUPT);
	t4dx_seg_unref(s);
	for (size_t i = 0; i < FIXTURE_N; i++)
		t4dx_entry_clear(&want[i]);
}

static void test_old_fixtures(void)
{
	check_fixture("seg-v1.t4s");
	check_fixture("seg-v2.t4s");
	check_fixture("seg-v3.t4s");
}

/* ---- tests ----------------------------------------------------------- */

static void test_write_rejects(void)
{
	char *p = path_in("bad.t4s");
	CHECK_EQ_INT(t4dx_seg_write(p, ents, 0, 1, 2), EINVAL);
	CHECK_EQ_INT(t4dx_seg_write(p, ents, 3, 5, 4), EINVAL);

	struct t4dx_entry *two[3] = { ents[1], ents[0], ents[2] };
	CHECK_EQ_INT(t4dx_seg_write(p, two, 3, 1, 2), EINVAL);   /* unsorted */
	two[0] = two[1] = ents[0];
	CHECK_EQ_INT(t4dx_seg_write(p, two, 2, 1, 2), EINVAL);   /* duplicate */

	struct t4dx_entry e;
	t4dx_entry_copy(&e, ents[0]);
	struct t4dx_entry *one[1] = { &e };
	e.name[0] = '/';
	CHECK_EQ_INT(t4dx_seg_write(p, one, 1, 1, 2), EINVAL);
	e.name[0] = 'x';
	e.size = e.content ? e.content->len + 1 : 1;
	CHECK_EQ_INT(t4dx_seg_write(p, one, 1, 1, 2), EINVAL);
	e.size = e.content ? e.content->len : 0;
	/* a vector source without the vector would lose it, and bytes
	 * without a source are no vector */
	struct t4dx_blob *v = e.vec;
	e.vec = NULL;
	e.vec_src = T4DX_VEC_HAND;
	CHECK_EQ_INT(t4dx_seg_write(p, one, 1, 1, 2), EINVAL);
	float x = 1.0f;
	e.vec = t4dx_vec_new(&x, 1);
	e.vec_src = T4DX_VEC_NONE;
	CHECK_EQ_INT(t4dx_seg_write(p, one, 1, 1, 2), EINVAL);
	e.vec_src = T4DX_VEC_HAND + 1;
	CHECK_EQ_INT(t4dx_seg_write(p, one, 1, 1, 2), EINVAL);
	e.vec_src = T4DX_VEC_EMBED;
	t4dx_blob_unref(v);
	t4dx_entry_clear(&e);
	CHECK(!exists(p));
}

static void test_roundtrip(void)
{
	REQUIRE(t4dx_seg_write(seg_path, ents, nents, 3, 99) == 0);
	struct t4dx_seg *s = open_ok(seg_path);
	struct stat st;
	REQUIRE(stat(seg_path, &st) == 0);
	CHECK_EQ_INT(t4dx_seg_id(s), 7);
	CHECK_EQ_INT(t4dx_seg_count(s), nents);
	CHECK_EQ_INT(t4dx_seg_min_lsn(s), 3);
	CHECK_EQ_INT(t4dx_seg_max_lsn(s), 99);
	CHECK_EQ_INT(t4dx_seg_file_bytes(s), st.st_size);
	CHECK(!strcmp(t4dx_seg_path(s), seg_path));
	CHECK(t4dx_seg_has_vectors(s));
	/* 1 MiB of random bytes does not compress */
	CHECK(st.st_size > 1 << 20);

	unsigned bad = 0;
	for (size_t i = 0; i < nents; i++) {
		const struct t4dx_entry *e = ents[i];
		for (int wc = 0; wc < 2; wc++) {
			struct t4dx_entry out;
			int rc = t4dx_seg_get(s, e->parent, e->name,
					      e->name_len, wc, &out);
			if (rc || !entry_eq(e, &out, wc))
				bad++;
			if (!rc)
				t4dx_entry_clear(&out);
		}
	}
	CHECK_EQ_INT(bad, 0);
	for (size_t i = 0; i < nents; i++) {
		struct t4dx_entry out;
		int rc = t4dx_seg_get_nth(s, i, true, &out);
		if (rc || !entry_eq(ents[i], &out, true))
			bad++;
		if (!rc)
			t4dx_entry_clear(&out);
	}
	CHECK_EQ_INT(bad, 0);

	/* absent: after each name, other parents, before and after all */
	for (size_t i = 0; i < nents; i++) {
		const struct t4dx_entry *e = ents[i];
		char name[T4DX_NAME_MAX + 1];
		if (e->name_len == T4DX_NAME_MAX)
			continue;
		memcpy(name, e->name, e->name_len);
		name[e->name_len] = 1;
		struct t4dx_entry out;
		if (t4dx_seg_get(s, e->parent, name, e->name_len + 1u, true,
				 &out) != T4DX_ENOTFOUND)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	struct t4dx_entry out;
	CHECK_EQ_INT(t4dx_seg_get(s, 5, "item-00001", 10, true, &out),
		     T4DX_ENOTFOUND);
	CHECK_EQ_INT(t4dx_seg_get(s, 0, "a", 1, true, &out), T4DX_ENOTFOUND);
	CHECK_EQ_INT(t4dx_seg_get(s, UINT64_MAX, "z", 1, true, &out),
		     T4DX_ENOTFOUND);
	CHECK_EQ_INT(t4dx_seg_verify(s), 0);

	CHECK(t4dx_seg_ref(s) == s);
	t4dx_seg_unref(s);
	t4dx_seg_unref(s);
	t4dx_seg_unref(NULL);
}

static const struct t4dx_entry *find(uint64_t parent, const char *name)
{
	size_t i = lower_bound(parent, name, strlen(name));
	REQUIRE(i < nents && ents[i]->parent == parent);
	return ents[i];
}

/* A lookup reads one block and nothing else; reads can fail cleanly. */
static void test_one_block_read(void)
{
	struct t4dx_seg *s = open_ok(seg_path);
	t4dx_io.pread = counting_pread;
	const struct t4dx_entry *keys[] = {
		find(16, "item-00001"), find(19, "big"), find(1049, "d49-9"),
		find(16, "item-01499"),
	};
	for (size_t i = 0; i < 4; i++) {
		preads = 0;
		struct t4dx_entry out;
		CHECK_EQ_INT(t4dx_seg_get(s, keys[i]->parent, keys[i]->name,
					  keys[i]->name_len, true, &out), 0);
		CHECK(entry_eq(keys[i], &out, true));
		t4dx_entry_clear(&out);
		CHECK_EQ_INT(preads, 1);
	}
	t4dx_io.pread = failing_pread;
	struct t4dx_entry out;
	const struct t4dx_entry *e = find(1000, "d0-0");
	CHECK_EQ_INT(t4dx_seg_get(s, e->parent, e->name, e->name_len, false,
				  &out), EIO);
	CHECK_EQ_INT(t4dx_seg_verify(s), EIO);
	t4dx_io_reset();
	t4dx_seg_unref(s);
}

/* The health check reads a segment a slice at a time: every block once,
 * about max_bytes a call, and damage in the last block is found by the
 * last slice (issue 10: one big segment per tick took longer than the
 * check's timeout). */
static void test_verify_slices(void)
{
	size_t len;
	unsigned char *f = slurp(seg_path, &len);
	struct tblk *b;
	size_t n = parse_blocks(f, len, &b);
	REQUIRE(n > 4);
	struct t4dx_seg *s = open_ok(seg_path);
	CHECK_EQ_INT(t4dx_seg_blocks(s), n);
	t4dx_io.pread = counting_pread;
	size_t next = 0, calls = 0;
	preads = 0;
	while (next < n && calls <= n) {
		size_t before = next;
		CHECK_EQ_INT(t4dx_seg_verify_some(s, &next, 1), 0);
		CHECK_EQ_INT(next, before + 1);  /* at least one block */
		calls++;
	}
	CHECK_EQ_INT(calls, n);
	/* one read a block, two a chunk (its length, its bytes), and one
	 * the vector part after chunks */
	size_t want = n;
	for (size_t i = 0; i < n; i++)
		if (b[i].crlen > 1u << 20)
			want += 2 * ((b[i].crlen + (1u << 20) - 1) >> 20) +
				(b[i].vclen > 0);
	CHECK(want > n);
	CHECK_EQ_INT(preads, want);
	next = 0;
	CHECK_EQ_INT(t4dx_seg_verify_some(s, &next, UINT64_MAX), 0);
	CHECK_EQ_INT(next, n);
	t4dx_io_reset();
	t4dx_seg_unref(s);

	/* a byte of the last block's meta part flipped */
	const char *bad = path_in("slices.t4s");
	f[b[n - 1].off + b[n - 1].clen / 2] ^= 0x40;
	spill(bad, f, len);
	s = open_ok(bad);
	next = 0;
	int rc = 0;
	while (!rc && next < n)
		rc = t4dx_seg_verify_some(s, &next, 1);
	CHECK_EQ_INT(rc, T4DX_ECORRUPT);
	CHECK_EQ_INT(next, n);
	t4dx_seg_unref(s);
	unlink(bad);
	free(b);
	free(f);
}

/* Absent keys that fall inside blocks' key ranges are mostly turned away by
 * the Bloom filter without a read.  Random order, so the one-block cache
 * cannot stand in for the filter. */
static void test_bloom(void)
{
	struct t4dx_seg *s = open_ok(seg_path);
	enum { N = 6000 };
	t4dx_io.pread = counting_pread;
	preads = 0;
	unsigned found = 0;
	for (unsigned q = 0; q < N; q++) {
		char name[32];
		int len = snprintf(name, sizeof(name), "item-%05u~",
				   (unsigned)(rnd() % 1499));
		struct t4dx_entry out;
		if (t4dx_seg_get(s, 16, name, (size_t)len, false, &out) !=
		    T4DX_ENOTFOUND)
			found++;
	}
	t4dx_io_reset();
	CHECK_EQ_INT(found, 0);
	fprintf(stderr, "   %u block reads for %d absent keys\n", preads, N);
	CHECK(preads < N / 20);
	t4dx_seg_unref(s);
}

/* Walk from start and compare the first `want` results with the array. */
static unsigned walk(struct t4dx_seg *s, uint64_t parent, const char *name,
		     size_t len, size_t want, bool wc)
{
	unsigned bad = 0;
	size_t i = lower_bound(parent, name, len);
	struct t4dx_seg_iter *it;
	REQUIRE(t4dx_seg_iter_open(s, parent, name, len, &it) == 0);
	for (size_t k = 0; k < want; k++, i++) {
		struct t4dx_entry out;
		int rc = t4dx_seg_iter_next(it, wc, &out);
		if (i == nents) {
			bad += rc != T4DX_ENOTFOUND;
			break;
		}
		if (rc || !entry_eq(ents[i], &out, wc))
			bad++;
		if (!rc)
			t4dx_entry_clear(&out);
	}
	t4dx_seg_iter_close(it);
	return bad;
}

static void test_iter(void)
{
	struct t4dx_seg *s = open_ok(seg_path);
	CHECK_EQ_INT(walk(s, 0, "", 0, nents + 1, true), 0);
	CHECK_EQ_INT(walk(s, 0, "", 0, nents + 1, false), 0);

	/* a parent range: exactly its children, then the next parent */
	struct t4dx_seg_iter *it;
	REQUIRE(t4dx_seg_iter_open(s, 1020, "", 0, &it) == 0);
	struct t4dx_entry out;
	unsigned n = 0;
	while (t4dx_seg_iter_next(it, false, &out) == 0 && out.parent == 1020)
		n++;
	CHECK_EQ_INT(n, 20);
	CHECK_EQ_INT(out.parent, 1021);
	t4dx_seg_iter_close(it);

	/* from present keys, their successors, prefixes, and random keys */
	unsigned bad = 0;
	for (unsigned q = 0; q < 400; q++) {
		const struct t4dx_entry *e = ents[rnd() % nents];
		char name[T4DX_NAME_MAX + 1];
		size_t len = e->name_len;
		memcpy(name, e->name, len);
		switch (q % 4) {
		case 1: if (len < T4DX_NAME_MAX) name[len++] = 1; break;
		case 2: len = len / 2; break;
		case 3: name[0] = (char)(rnd() % 255 + 1); break;
		}
		bad += walk(s, e->parent, name, len, 3, q % 2);
	}
	CHECK_EQ_INT(bad, 0);

	char high[T4DX_NAME_MAX];
	memset(high, 0xff, sizeof(high));
	REQUIRE(t4dx_seg_iter_open(s, UINT64_MAX, high, sizeof(high), &it) == 0);
	CHECK_EQ_INT(t4dx_seg_iter_next(it, true, &out), T4DX_ENOTFOUND);
	t4dx_seg_iter_close(it);

	/* an iterator keeps its segment alive */
	REQUIRE(t4dx_seg_iter_open(s, 19, "", 0, &it) == 0);
	t4dx_seg_unref(s);
	CHECK_EQ_INT(t4dx_seg_iter_next(it, true, &out), 0);
	CHECK(entry_eq(find(19, "big"), &out, true));
	t4dx_entry_clear(&out);
	t4dx_seg_iter_close(it);
}

static void *reader(void *arg)
{
	struct t4dx_seg *s = arg;
	uintptr_t bad = 0;
	for (size_t i = 0; i < nents; i++) {
		const struct t4dx_entry *e = ents[(i * 7919) % nents];
		struct t4dx_entry out;
		int rc = t4dx_seg_get(s, e->parent, e->name, e->name_len,
				      true, &out);
		if (rc || !entry_eq(e, &out, true))
			bad++;
		if (!rc)
			t4dx_entry_clear(&out);
	}
	return (void *)bad;
}

static void test_threads(void)
{
	struct t4dx_seg *s = open_ok(seg_path);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, reader, s) == 0);
	uintptr_t bad = 0;
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad += (uintptr_t)r;
	}
	CHECK_EQ_INT(bad, 0);
	t4dx_seg_unref(s);
}

/* Readers of a large item share one decoded copy while any of them holds
 * it: a second get or an iterator reads no content bytes and hands out
 * the same blob; once all let go it is freed, and a later read decodes
 * it again.  The copy outlives the segment it came from. */
static void large_reader_threads(struct t4dx_seg *s);
static void test_shared_large(void)
{
	struct t4dx_seg *s = open_ok(seg_path);
	const struct t4dx_entry *e = find(19, "huge");
	struct t4dx_entry a, b, c;
	REQUIRE(t4dx_seg_get(s, 19, "huge", 4, true, &a) == 0);
	CHECK(entry_eq(e, &a, true));
	t4dx_io.pread = summing_pread;
	pread_bytes = 0;
	REQUIRE(t4dx_seg_get(s, 19, "huge", 4, true, &b) == 0);
	CHECK(entry_eq(e, &b, true));
	CHECK(a.content == b.content);
	CHECK(pread_bytes < e->size / 2);
	t4dx_io_reset();

	struct t4dx_seg_iter *it;
	REQUIRE(t4dx_seg_iter_open(s, 19, "huge", 4, &it) == 0);
	REQUIRE(t4dx_seg_iter_next(it, true, &c) == 0);
	CHECK(c.content == a.content);
	t4dx_entry_clear(&c);
	/* read without content, then the content of that entry */
	t4dx_seg_iter_close(it);
	REQUIRE(t4dx_seg_iter_open(s, 19, "huge", 4, &it) == 0);
	REQUIRE(t4dx_seg_iter_next(it, false, &c) == 0);
	CHECK(c.content == NULL);
	REQUIRE(t4dx_seg_iter_content(it, &c) == 0);
	CHECK(entry_eq(e, &c, true));
	CHECK(c.content == a.content);
	t4dx_entry_clear(&c);
	t4dx_seg_iter_close(it);
	t4dx_entry_clear(&a);
	t4dx_entry_clear(&b);

	/* all let go: the next read decodes it again, from disk */
	t4dx_io.pread = summing_pread;
	pread_bytes = 0;
	REQUIRE(t4dx_seg_get(s, 19, "huge", 4, true, &a) == 0);
	CHECK(pread_bytes > e->size / 2);
	t4dx_io_reset();
	CHECK(entry_eq(e, &a, true));
	t4dx_seg_unref(s);
	CHECK(entry_eq(e, &a, true));   /* still whole without s */
	t4dx_entry_clear(&a);

	/* gets racing with the last reference's drop */
	s = open_ok(seg_path);
	large_reader_threads(s);
	t4dx_seg_unref(s);
}

static void *large_reader(void *arg)
{
	struct t4dx_seg *s = arg;
	static const char *const names[] = { "huge", "big", "huge-text" };
	uintptr_t bad = 0;
	for (unsigned i = 0; i < 60; i++) {
		const char *n = names[i % 3];
		const struct t4dx_entry *e = find(19, n);
		struct t4dx_entry out;
		int rc = t4dx_seg_get(s, 19, n, strlen(n), true, &out);
		if (rc || !entry_eq(e, &out, true))
			bad++;
		if (!rc)
			t4dx_entry_clear(&out);
	}
	return (void *)bad;
}

static void large_reader_threads(struct t4dx_seg *s)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, large_reader, s) == 0);
	uintptr_t bad = 0;
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad += (uintptr_t)r;
	}
	CHECK_EQ_INT(bad, 0);
}

/* A damaged block of a copy: its meta part (meta), so that every read of
 * its keys answers ECORRUPT, or its content part, so that only reads with
 * content do.  Verify fails either way; other blocks are unaffected, and
 * iteration gives what precedes the block, then the error. */
static int count_salvaged(void *arg, struct t4dx_entry *e)
{
	(*(size_t *)arg)++;
	t4dx_entry_clear(e);
	return 0;
}

static void check_damaged(const char *path, const struct tblk *b, bool meta)
{
	struct t4dx_seg *s = open_ok(path);
	unsigned bad = 0, corrupt = 0;
	for (size_t i = 0; i < nents; i++) {
		const struct t4dx_entry *e = ents[i];
		for (int wc = 0; wc < 2; wc++) {
			struct t4dx_entry out;
			int rc = t4dx_seg_get(s, e->parent, e->name,
					      e->name_len, wc, &out);
			if ((meta || wc) && in_block(b, e)) {
				corrupt++;
				bad += rc != T4DX_ECORRUPT;
			} else {
				bad += rc || !entry_eq(e, &out, wc);
			}
			if (!rc)
				t4dx_entry_clear(&out);
		}
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(corrupt, (meta ? 2 : 1) * b->nrec);
	CHECK_EQ_INT(t4dx_seg_verify(s), T4DX_ECORRUPT);
	if (!meta)      /* a listing reads no content */
		CHECK_EQ_INT(walk(s, 0, "", 0, nents + 1, false), 0);

	size_t first = lower_bound(b->fp, b->fn, b->fl);
	struct t4dx_seg_iter *it;
	REQUIRE(t4dx_seg_iter_open(s, 0, "", 0, &it) == 0);
	size_t n = 0;
	struct t4dx_entry out;
	int rc;
	while ((rc = t4dx_seg_iter_next(it, !meta, &out)) == 0) {
		t4dx_entry_clear(&out);
		n++;
	}
	CHECK_EQ_INT(rc, T4DX_ECORRUPT);
	CHECK_EQ_INT(n, first);
	t4dx_seg_iter_close(it);
	t4dx_seg_unref(s);
}

static void test_block_damage(void)
{
	size_t len;
	unsigned char *orig = slurp(seg_path, &len), *f = malloc(len);
	REQUIRE(f);
	struct tblk *b;
	size_t nb = parse_blocks(orig, len, &b);
	REQUIRE(nb > 10);
	const struct tblk *m = &b[nb / 2];
	char *p = path_in("damaged.t4s");

	/* a flipped byte: the CRC catches it */
	memcpy(f, orig, len);
	f[m->off + m->clen / 2] ^= 0x40;
	spill(p, f, len);
	check_damaged(p, m, true);

	/* CRC made right, but the bytes are not LZ4 */
	memcpy(f, orig, len);
	memset(f + m->off, 0xff, m->clen);
	refresh_crcs(f, len);
	spill(p, f, len);
	check_damaged(p, m, true);

	/* CRC right and LZ4 sound, but the records disagree with the index:
	 * the block's first raw byte (its first parent) is always a literal,
	 * just after the token and any literal-length bytes. */
	memcpy(f, orig, len);
	size_t lit = m->off + 1;
	if (f[m->off] >> 4 == 15)
		while (f[lit++] == 255)
			;
	f[lit] ^= 0x01;
	refresh_crcs(f, len);
	spill(p, f, len);
	check_damaged(p, m, true);

	/* the undamaged file still verifies after refresh_crcs */
	memcpy(f, orig, len);
	refresh_crcs(f, len);
	CHECK(!memcmp(f, orig, len));
	free(b);
	free(f);
	free(orig);
}

/* The chunks of the content part of block b of file f: their count, -1
 * if their lengths do not add up to the part's. */
static int count_chunks(const unsigned char *f, const struct tblk *b)
{
	uint64_t at = b->off + b->clen, end = at + b->cclen;
	int n = 0;
	while (at + 4 <= end) {
		at += 4 + t4dx_get_u32(f + at);
		n++;
	}
	return at == end ? n : -1;
}

/* The writer's block rule (each part within its target unless one record
 * is bigger), a big content in a block of its own, in chunks, and the
 * vector part after the content part. */
static void test_v4_layout(void)
{
	size_t len;
	unsigned char *f = slurp(seg_path, &len);
	CHECK_EQ_INT(t4dx_get_u32(f + 8), 4);
	CHECK_EQ_INT(t4dx_get_u32(f + len - FTR_SIZE + 72), 4);
	struct tblk *b;
	size_t nb = parse_blocks(f, len, &b);
	uint64_t content = 0, want = 0, vecs = 0, want_vecs = 0;
	unsigned bad = 0, alone = 0, empty = 0, chunked = 0, vchunked = 0;
	for (size_t i = 0; i < nb; i++) {
		bad += b[i].nrec > 1 && (b[i].rlen > PART_TARGET ||
					 b[i].crlen > PART_TARGET ||
					 b[i].vrlen > PART_TARGET);
		bad += !b[i].cclen != !b[i].crlen;
		bad += !b[i].vclen != !b[i].vrlen;
		vecs += b[i].vrlen;
		vchunked += b[i].crlen > 1 << 20 && b[i].vrlen;
		alone += b[i].nrec == 1 && b[i].crlen == 1 << 20;
		/* over 1 MiB: alone, in chunks of 1 MiB */
		if (b[i].crlen > 1 << 20) {
			int want_chunks = (int)((b[i].crlen + (1u << 20) - 1) >> 20);
			bad += b[i].nrec != 1;
			bad += count_chunks(f, &b[i]) != want_chunks;
			chunked++;
		}
		empty += b[i].crlen == 0;
		content += b[i].crlen;
		bad += i + 1 < nb &&
		       b[i + 1].off != b[i].off + b[i].clen + b[i].cclen +
				       b[i].vclen;
	}
	for (size_t i = 0; i < nents; i++) {
		want += ents[i]->size;
		want_vecs += ents[i]->vec ? ents[i]->vec->len : 0;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(alone, 1);
	CHECK_EQ_INT(content, want);
	CHECK_EQ_INT(vecs, want_vecs);
	CHECK(vchunked > 0);    /* a chunked content with a vector after it */
	fprintf(stderr, "   %zu blocks, %u without content\n", nb, empty);
	free(b);
	free(f);
}

/* A listing reads the meta parts and nothing else; with content, all. */
static void test_listing_reads(void)
{
	size_t len;
	unsigned char *f = slurp(seg_path, &len);
	struct tblk *b;
	size_t nb = parse_blocks(f, len, &b);
	uint64_t meta = 0, content = 0;
	for (size_t i = 0; i < nb; i++) {
		meta += b[i].clen;
		content += b[i].cclen + b[i].vclen;
	}
	for (int wc = 0; wc < 2; wc++) {
		struct t4dx_seg *s = open_ok(seg_path);
		t4dx_io.pread = summing_pread;
		pread_bytes = 0;
		CHECK_EQ_INT(walk(s, 0, "", 0, nents + 1, wc), 0);
		t4dx_io_reset();
		CHECK_EQ_INT(pread_bytes, wc ? meta + content : meta);
		t4dx_seg_unref(s);
	}
	/* content asked for after a listing of the same block */
	struct t4dx_seg *s = open_ok(seg_path);
	const struct t4dx_entry *e = find(16, "item-00001");
	struct t4dx_entry out;
	REQUIRE(t4dx_seg_get(s, e->parent, e->name, e->name_len, false,
			     &out) == 0);
	CHECK(entry_eq(e, &out, false));
	REQUIRE(t4dx_seg_get(s, e->parent, e->name, e->name_len, true,
			     &out) == 0);
	CHECK(entry_eq(e, &out, true));
	t4dx_entry_clear(&out);
	t4dx_seg_unref(s);
	free(b);
	free(f);
}

static void test_content_damage(void)
{
	size_t len;
	unsigned char *orig = slurp(seg_path, &len), *f = malloc(len);
	REQUIRE(f);
	struct tblk *b;
	size_t nb = parse_blocks(orig, len, &b);
	size_t m = nb / 2;
	while (m < nb && (b[m].cclen < 64 || b[m].nrec < 2))
		m++;
	REQUIRE(m < nb);
	char *p = path_in("cdamaged.t4s");

	/* a flipped byte in the content part: its CRC catches it */
	memcpy(f, orig, len);
	f[b[m].off + b[m].clen + b[m].cclen / 2] ^= 0x40;
	spill(p, f, len);
	check_damaged(p, &b[m], false);

	/* CRC made right, but the bytes are not LZ4 */
	memcpy(f, orig, len);
	memset(f + b[m].off + b[m].clen, 0xff, b[m].cclen);
	refresh_crcs(f, len);
	spill(p, f, len);
	check_damaged(p, &b[m], false);

	/* the meta part's sizes disagree with the content's raw length:
	 * that is damage of the meta part, found by a listing too */
	memcpy(f, orig, len);
	put32(f + b[m].ixpos + 28, b[m].crlen + 1);
	refresh_crcs(f, len);
	spill(p, f, len);
	struct t4dx_seg *s = open_ok(p);
	CHECK_EQ_INT(t4dx_seg_verify(s), T4DX_ECORRUPT);
	struct t4dx_entry out;
	CHECK_EQ_INT(t4dx_seg_get(s, b[m].fp, b[m].fn, b[m].fl, false, &out),
		     T4DX_ECORRUPT);
	t4dx_seg_unref(s);
	free(b);
	free(f);
	free(orig);
}

/* A block whose vector part alone fails its checks: reads with content
 * give its entries whole but without vectors (the segment says so), other
 * blocks are untouched, a scan with content goes through, verify finds
 * the damage, and salvage keeps every entry (no block lost). */
static void check_vectors_lost(const char *path, const struct tblk *b)
{
	/* a search's reads (the vector parts alone) lose the same
	 * vectors, and say so */
	struct t4dx_seg *s = open_ok(path);
	struct t4dx_seg_iter *it;
	struct t4dx_entry vout;
	unsigned vbad = 0;
	size_t vn = 0;
	REQUIRE(t4dx_seg_iter_open(s, 0, "", 0, &it) == 0);
	while (t4dx_seg_iter_next(it, T4DX_SEG_VEC, &vout) == 0) {
		struct t4dx_entry want = *ents[vn];
		if (in_block(b, ents[vn])) {
			want.vec_src = T4DX_VEC_NONE;
			want.vec = NULL;
		}
		vbad += !vec_eq(&want, &vout);
		t4dx_entry_clear(&vout);
		vn++;
	}
	t4dx_seg_iter_close(it);
	CHECK_EQ_INT(vn, nents);
	CHECK_EQ_INT(vbad, 0);
	CHECK(t4dx_seg_vec_lost(s));
	t4dx_seg_unref(s);

	s = open_ok(path);
	CHECK(!t4dx_seg_vec_lost(s));
	unsigned bad = 0, inblock = 0;
	for (size_t i = 0; i < nents; i++) {
		const struct t4dx_entry *e = ents[i];
		struct t4dx_entry want = *e, out;
		if (in_block(b, e) && e->vec_src != T4DX_VEC_NONE) {
			inblock++;
			want.vec_src = T4DX_VEC_NONE;
			want.vec = NULL;
		}
		int rc = t4dx_seg_get(s, e->parent, e->name, e->name_len, true,
				      &out);
		bad += rc || !entry_eq(&want, &out, true);
		if (!rc)
			t4dx_entry_clear(&out);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK(inblock > 0);
	CHECK(t4dx_seg_vec_lost(s));
	/* a scan with content goes through; only those vectors differ */
	CHECK_EQ_INT(walk(s, 0, "", 0, nents + 1, true), inblock);
	CHECK_EQ_INT(t4dx_seg_verify(s), T4DX_ECORRUPT);
	size_t lost = 99, n = 0;
	CHECK_EQ_INT(t4dx_seg_salvage(s, count_salvaged, &n, &lost), 0);
	CHECK_EQ_INT(lost, 0);
	CHECK_EQ_INT(n, nents);
	t4dx_seg_unref(s);
}

/* Damage in a vector part costs the block's vectors, not its content
 * (check_vectors_lost); lengths of the records' vectors that disagree
 * with the part's are damage of the meta part. */
static void test_vector_damage(void)
{
	size_t len;
	unsigned char *orig = slurp(seg_path, &len), *f = malloc(len);
	REQUIRE(f);
	struct tblk *b;
	size_t nb = parse_blocks(orig, len, &b);
	size_t m = nb / 3;
	while (m < nb && (b[m].vclen < 64 || b[m].nrec < 2 ||
			  b[m].crlen > 1u << 20))
		m++;
	REQUIRE(m < nb);
	char *p = path_in("vdamaged.t4s");
	size_t vat = b[m].off + b[m].clen + b[m].cclen;

	memcpy(f, orig, len);
	f[vat + b[m].vclen / 2] ^= 0x10;
	spill(p, f, len);
	check_vectors_lost(p, &b[m]);

	memcpy(f, orig, len);           /* CRC right, not LZ4 */
	memset(f + vat, 0xff, b[m].vclen);
	refresh_crcs(f, len);
	spill(p, f, len);
	check_vectors_lost(p, &b[m]);

	memcpy(f, orig, len);           /* the part 4 bytes longer raw */
	put32(f + b[m].ixpos + 40, b[m].vrlen + 4);
	refresh_crcs(f, len);
	spill(p, f, len);
	struct t4dx_seg *s = open_ok(p);
	CHECK_EQ_INT(t4dx_seg_verify(s), T4DX_ECORRUPT);
	struct t4dx_entry out;
	CHECK_EQ_INT(t4dx_seg_get(s, b[m].fp, b[m].fn, b[m].fl, false, &out),
		     T4DX_ECORRUPT);
	t4dx_seg_unref(s);

	memcpy(f, orig, len);           /* a length no LZ4 block can have */
	put32(f + b[m].ixpos + 36, 0);
	refresh_crcs(f, len);
	spill(p, f, len);
	CHECK_EQ_INT(open_rc(p), T4DX_ECORRUPT);
	free(b);
	free(f);
	free(orig);
}

/* Damage in a content part kept in chunks: a flipped byte in a chunk, a
 * chunk length that runs past the part or is 0, a chunk that is not LZ4
 * (CRCs made right): the block's contents are refused, listings go on,
 * and verify (which reads such a part a chunk at a time) finds it. */
static void test_chunk_damage(void)
{
	size_t len;
	unsigned char *orig = slurp(seg_path, &len), *f = malloc(len);
	REQUIRE(f);
	struct tblk *b;
	size_t nb = parse_blocks(orig, len, &b);
	size_t m = 0;
	while (m < nb && b[m].crlen <= 1u << 20)
		m++;
	REQUIRE(m < nb);
	uint64_t part = b[m].off + b[m].clen;
	uint32_t k0 = t4dx_get_u32(orig + part);
	char *p = path_in("chunk-damaged.t4s");

	memcpy(f, orig, len);   /* a byte of the second chunk */
	f[part + 4 + k0 + 4 + 100] ^= 0x20;
	spill(p, f, len);
	check_damaged(p, &b[m], false);

	memcpy(f, orig, len);   /* the first chunk one byte longer */
	put32(f + part, k0 + 1);
	refresh_crcs(f, len);
	spill(p, f, len);
	check_damaged(p, &b[m], false);

	memcpy(f, orig, len);   /* a chunk of length 0 */
	put32(f + part, 0);
	refresh_crcs(f, len);
	spill(p, f, len);
	check_damaged(p, &b[m], false);

	memcpy(f, orig, len);   /* the second chunk not LZ4 */
	memset(f + part + 4 + k0 + 4, 0xff, t4dx_get_u32(orig + part + 4 + k0));
	refresh_crcs(f, len);
	spill(p, f, len);
	check_damaged(p, &b[m], false);

	memcpy(f, orig, len);   /* sound again: every content reads back */
	spill(p, f, len);
	struct t4dx_seg *s = open_ok(p);
	CHECK_EQ_INT(t4dx_seg_verify(s), 0);
	CHECK_EQ_INT(walk(s, 0, "", 0, nents + 1, true), 0);
	t4dx_seg_unref(s);
	free(b);
	free(f);
	free(orig);
}

static int damaged_open(const unsigned char *orig, size_t len, size_t at,
			unsigned char xor)
{
	unsigned char *f = malloc(len);
	REQUIRE(f);
	memcpy(f, orig, len);
	f[at] ^= xor;
	char *p = path_in("meta.t4s");
	spill(p, f, len);
	free(f);
	return open_rc(p);
}

static void test_meta_damage(void)
{
	size_t len;
	unsigned char *orig = slurp(seg_path, &len);
	const unsigned char *ft = orig + len - FTR_SIZE;
	uint64_t ix = t4dx_get_u64(ft), ixlen = t4dx_get_u64(ft + 8);
	uint64_t bl = t4dx_get_u64(ft + 16), bllen = t4dx_get_u64(ft + 24);
	size_t foot = len - FTR_SIZE;

	CHECK_EQ_INT(damaged_open(orig, len, ix + ixlen / 2, 0x10),
		     T4DX_ECORRUPT);
	CHECK_EQ_INT(damaged_open(orig, len, ix, 0x01), T4DX_ECORRUPT);
	/* a block's CRC in the index: only the index CRC can tell */
	CHECK_EQ_INT(damaged_open(orig, len, ix + 16, 0x01), T4DX_ECORRUPT);
	CHECK_EQ_INT(damaged_open(orig, len, ix + 32, 0x01), T4DX_ECORRUPT);
	CHECK_EQ_INT(damaged_open(orig, len, bl + bllen / 2, 0x01),
		     T4DX_ECORRUPT);
	CHECK_EQ_INT(damaged_open(orig, len, bl + bllen - 1, 0x80),
		     T4DX_ECORRUPT);
	/* every footer field, the magic included (the header still has it) */
	for (size_t at = 0; at < FTR_SIZE; at += 4)
		if (damaged_open(orig, len, foot + at, 0x04) != T4DX_ECORRUPT) {
			fprintf(stderr, "footer byte %zu\n", at);
			unit_failures++;
		}
	CHECK_EQ_INT(damaged_open(orig, len, 0, 0x01), T4DX_ECORRUPT);
	CHECK_EQ_INT(damaged_open(orig, len, 8, 0x01), T4DX_ECORRUPT);

	/* a sound file of another version, or not a segment at all */
	unsigned char *f = malloc(len);
	REQUIRE(f);
	memcpy(f, orig, len);
	put32(f + 8, 5);
	put32(f + foot + 72, 5);
	refresh_crcs(f, len);
	char *p = path_in("meta.t4s");
	spill(p, f, len);
	CHECK_EQ_INT(open_rc(p), T4DX_EFORMAT);
	memset(f, 'x', len);
	spill(p, f, len);
	CHECK_EQ_INT(open_rc(p), T4DX_EFORMAT);
	spill(p, f, 0);
	CHECK_EQ_INT(open_rc(p), T4DX_EFORMAT);
	CHECK_EQ_INT(open_rc(path_in("missing.t4s")), ENOENT);

	/* CRCs right but the index disagrees with the footer's count */
	memcpy(f, orig, len);
	put32(f + ix + 20, t4dx_get_u32(f + ix + 20) + 1);
	refresh_crcs(f, len);
	spill(p, f, len);
	CHECK_EQ_INT(open_rc(p), T4DX_ECORRUPT);
	free(f);
	free(orig);
}

static void test_truncated(void)
{
	size_t len;
	unsigned char *orig = slurp(seg_path, &len);
	char *p = path_in("short.t4s");
	const size_t cut[] = { 1, 4, FTR_SIZE, FTR_SIZE + 1, len / 2,
			       len - HDR_SIZE - FTR_SIZE + 1, len - HDR_SIZE };
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		spill(p, orig, len - cut[i]);
		CHECK_EQ_INT(open_rc(p), T4DX_ECORRUPT);
	}
	spill(p, orig, 8);
	CHECK_EQ_INT(open_rc(p), T4DX_EFORMAT);
	free(orig);
}

/* Write ents[] with the streaming writer, each entry from a scratch copy
 * scribbled over after its add, as the merge iterator reuses its entry. */
static int stream_write(const char *path, uint64_t n_hint, uint64_t *count)
{
	struct t4dx_seg_writer *w;
	int rc = t4dx_seg_writer_open(path, n_hint, &w);
	if (rc)
		return rc;
	struct t4dx_entry c;
	for (size_t i = 0; i < nents && !rc; i++) {
		t4dx_entry_copy(&c, ents[i]);
		rc = t4dx_seg_writer_add(w, &c);
		t4dx_entry_clear(&c);
		memset(&c, 0x5a, sizeof(c));
	}
	if (rc) {
		t4dx_seg_writer_abort(w);
		return rc;
	}
	return t4dx_seg_writer_finish(w, count);
}

/* Both segments hold the same entries, contents included. */
static void check_same(struct t4dx_seg *a, struct t4dx_seg *b)
{
	CHECK_EQ_INT(t4dx_seg_count(a), t4dx_seg_count(b));
	struct t4dx_seg_iter *ia, *ib;
	REQUIRE(t4dx_seg_iter_open(a, 0, "", 0, &ia) == 0);
	REQUIRE(t4dx_seg_iter_open(b, 0, "", 0, &ib) == 0);
	struct t4dx_entry ea, eb;
	size_t n = 0;
	unsigned bad = 0;
	int ra, rb;
	while ((ra = t4dx_seg_iter_next(ia, true, &ea)) == 0) {
		rb = t4dx_seg_iter_next(ib, true, &eb);
		CHECK_EQ_INT(rb, 0);
		if (rb) {
			t4dx_entry_clear(&ea);
			break;
		}
		if (n >= nents || !entry_eq(&ea, &eb, true) ||
		    !entry_eq(ents[n], &ea, true))
			bad++;
		n++;
		t4dx_entry_clear(&ea);
		t4dx_entry_clear(&eb);
	}
	CHECK_EQ_INT(ra, T4DX_ENOTFOUND);
	CHECK_EQ_INT(t4dx_seg_iter_next(ib, true, &eb), T4DX_ENOTFOUND);
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(n, nents);
	t4dx_seg_iter_close(ia);
	t4dx_seg_iter_close(ib);
}

static void test_stream_writer(void)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < nents; i++) {
		if (ents[i]->lsn < lo)
			lo = ents[i]->lsn;
		if (ents[i]->lsn > hi)
			hi = ents[i]->lsn;
	}
	char pa[4096], ps[4096], pb[4096];  /* path_in's buffer is reused */
	snprintf(pa, sizeof(pa), "%s", path_in("array.t4s"));
	snprintf(ps, sizeof(ps), "%s", path_in("stream.t4s"));
	snprintf(pb, sizeof(pb), "%s", path_in("stream-bad.t4s"));
	REQUIRE(t4dx_seg_write(pa, ents, nents, lo, hi) == 0);
	uint64_t count = 0;
	REQUIRE(stream_write(ps, nents, &count) == 0);
	CHECK_EQ_INT(count, nents);

	/* with the exact hint the files are the same, byte for byte */
	size_t la, ls;
	unsigned char *fa = slurp(pa, &la), *fs = slurp(ps, &ls);
	CHECK(la == ls && !memcmp(fa, fs, la));
	free(fa);
	free(fs);

	struct t4dx_seg *a = open_ok(pa), *s = open_ok(ps);
	CHECK_EQ_INT(t4dx_seg_min_lsn(s), lo);
	CHECK_EQ_INT(t4dx_seg_max_lsn(s), hi);
	check_same(a, s);
	CHECK_EQ_INT(t4dx_seg_verify(s), 0);
	t4dx_seg_unref(s);

	/* a hint far above the count: a larger Bloom filter, same entries */
	REQUIRE(stream_write(ps, 10 * nents + 12345, &count) == 0);
	CHECK_EQ_INT(count, nents);
	s = open_ok(ps);
	CHECK_EQ_INT(t4dx_seg_count(s), nents);
	CHECK_EQ_INT(t4dx_seg_min_lsn(s), lo);
	CHECK_EQ_INT(t4dx_seg_max_lsn(s), hi);
	check_same(a, s);
	unsigned missing = 0;
	for (size_t i = 0; i < nents; i++) {
		struct t4dx_entry out;
		int rc = t4dx_seg_get(s, ents[i]->parent, ents[i]->name,
				      ents[i]->name_len, false, &out);
		if (rc)
			missing++;
		else
			t4dx_entry_clear(&out);
	}
	CHECK_EQ_INT(missing, 0);
	CHECK_EQ_INT(t4dx_seg_verify(s), 0);
	t4dx_seg_unref(s);
	t4dx_seg_unref(a);

	/* out of order: EINVAL, which sticks; finish fails, no file */
	struct t4dx_seg_writer *w;
	REQUIRE(t4dx_seg_writer_open(pb, 3, &w) == 0);
	CHECK_EQ_INT(t4dx_seg_writer_add(w, ents[1]), 0);
	CHECK_EQ_INT(t4dx_seg_writer_add(w, ents[0]), EINVAL);
	CHECK_EQ_INT(t4dx_seg_writer_add(w, ents[2]), EINVAL);
	CHECK_EQ_INT(t4dx_seg_writer_finish(w, &count), EINVAL);
	CHECK(!exists(pb));

	/* a duplicate key, and a content whose size disagrees */
	REQUIRE(t4dx_seg_writer_open(pb, 3, &w) == 0);
	CHECK_EQ_INT(t4dx_seg_writer_add(w, ents[0]), 0);
	CHECK_EQ_INT(t4dx_seg_writer_add(w, ents[0]), EINVAL);
	t4dx_seg_writer_abort(w);
	CHECK(!exists(pb));
	struct t4dx_entry e;
	t4dx_entry_copy(&e, ents[0]);
	e.size = e.content ? e.content->len + 1 : 1;
	REQUIRE(t4dx_seg_writer_open(pb, 3, &w) == 0);
	CHECK_EQ_INT(t4dx_seg_writer_add(w, &e), EINVAL);
	t4dx_seg_writer_abort(w);
	t4dx_entry_clear(&e);
	CHECK(!exists(pb));

	/* nothing added: EINVAL and no file */
	REQUIRE(t4dx_seg_writer_open(pb, 100, &w) == 0);
	CHECK(exists(pb));
	CHECK_EQ_INT(t4dx_seg_writer_finish(w, NULL), EINVAL);
	CHECK(!exists(pb));
	t4dx_seg_writer_abort(NULL);
}

static void test_write_faults(void)
{
	char *p = path_in("faulty.t4s");
	faults_arm(FAULT_PWRITE, UINT32_MAX, 0, 0);     /* count only */
	REQUIRE(t4dx_seg_write(p, ents, nents, 1, 2) == 0);
	unsigned writes = faults_calls(FAULT_PWRITE);
	faults_reset();
	REQUIRE(writes > 10);
	REQUIRE(unlink(p) == 0);

	const unsigned nth[] = { 1, 2, writes / 2, writes - 1, writes };
	for (size_t i = 0; i < 5; i++) {
		faults_arm(FAULT_PWRITE, nth[i], i % 2 ? ENOSPC : EIO, 0);
		CHECK_EQ_INT(t4dx_seg_write(p, ents, nents, 1, 2),
			     i % 2 ? ENOSPC : EIO);
		faults_reset();
		CHECK(!exists(p));
	}
	/* a short write whose retry fails: the error, and no partial file */
	faults_arm_short_write(writes / 2, 100, ENOSPC);
	CHECK_EQ_INT(t4dx_seg_write(p, ents, nents, 1, 2), ENOSPC);
	faults_reset();
	CHECK(!exists(p));

	faults_arm(FAULT_FSYNC, 1, EIO, 0);
	CHECK_EQ_INT(t4dx_seg_write(p, ents, nents, 1, 2), EIO);
	faults_reset();
	CHECK(!exists(p));

	faults_arm(FAULT_OPEN, 1, EACCES, 0);
	CHECK_EQ_INT(t4dx_seg_write(p, ents, nents, 1, 2), EACCES);
	faults_reset();
	CHECK(!exists(p));

	/* a write over a leftover temp file replaces it */
	spill(p, (const unsigned char *)"junk", 4);
	CHECK_EQ_INT(t4dx_seg_write(p, ents, nents, 1, 2), 0);
	struct t4dx_seg *s = open_ok(p);
	CHECK_EQ_INT(t4dx_seg_verify(s), 0);
	t4dx_seg_unref(s);
}

/* Reads of the vectors alone (T4DX_SEG_VEC, a search's): the meta and
 * vector parts, never a content part (chunked ones included, whose
 * vector part follows the chunks), each entry with its vector and no
 * content; VEC, META, ALL and iter_content mixed on one iterator, and
 * through the one-block cache in either order, each get what they ask
 * for. */
static void test_vec_reads(void)
{
	size_t len;
	unsigned char *f = slurp(seg_path, &len);
	struct tblk *b;
	size_t nb = parse_blocks(f, len, &b);
	uint64_t meta = 0, vec = 0;
	for (size_t i = 0; i < nb; i++) {
		meta += b[i].clen;
		vec += b[i].vclen;
	}
	free(b);
	free(f);
	struct t4dx_seg *s = open_ok(seg_path);
	struct t4dx_seg_iter *it;
	struct t4dx_entry out;
	unsigned bad = 0;
	size_t n = 0;
	int rc;
	t4dx_io.pread = summing_pread;
	pread_bytes = 0;
	REQUIRE(t4dx_seg_iter_open(s, 0, "", 0, &it) == 0);
	while ((rc = t4dx_seg_iter_next(it, T4DX_SEG_VEC, &out)) == 0) {
		bad += n >= nents || !vec_eq(ents[n], &out);
		t4dx_entry_clear(&out);
		n++;
	}
	t4dx_seg_iter_close(it);
	t4dx_io_reset();
	CHECK_EQ_INT(rc, T4DX_ENOTFOUND);
	CHECK_EQ_INT(n, nents);
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(pread_bytes, meta + vec);
	CHECK(!t4dx_seg_vec_lost(s));
	t4dx_seg_unref(s);

	/* by ordinal; then, record by record, VEC and ALL in turns (the
	 * payload ALL caches serves VEC; VEC's is never cached) */
	s = open_ok(seg_path);
	for (size_t i = 0; i < nents; i++) {
		rc = t4dx_seg_get_nth(s, i, T4DX_SEG_VEC, &out);
		bad += rc || !vec_eq(ents[i], &out);
		if (!rc)
			t4dx_entry_clear(&out);
	}
	CHECK_EQ_INT(bad, 0);
	for (size_t i = 0; i < nents; i++) {
		const struct t4dx_entry *e = ents[i];
		for (int k = 0; k < 4; k++) {
			bool all = (k + (int)(i % 2)) % 2;
			rc = all ? t4dx_seg_get(s, e->parent, e->name,
						e->name_len, true, &out)
				 : t4dx_seg_get_nth(s, i, T4DX_SEG_VEC, &out);
			bad += rc || !(all ? entry_eq(e, &out, true)
					   : vec_eq(e, &out));
			if (!rc)
				t4dx_entry_clear(&out);
		}
	}
	CHECK_EQ_INT(bad, 0);
	t4dx_seg_unref(s);

	/* one iterator, the kinds of read in turns (4: VEC, then the
	 * content of that entry, as a merge asks for it) */
	for (unsigned phase = 0; phase < 4; phase++) {
		s = open_ok(seg_path);
		REQUIRE(t4dx_seg_iter_open(s, 0, "", 0, &it) == 0);
		for (n = 0; n < nents; n++) {
			unsigned kind = (unsigned)(n + phase) % 4;
			static const unsigned what[] = {
				T4DX_SEG_VEC, T4DX_SEG_ALL, T4DX_SEG_META,
				T4DX_SEG_VEC };
			rc = t4dx_seg_iter_next(it, what[kind], &out);
			if (rc) {
				bad++;
				break;
			}
			if (kind == 3 && t4dx_seg_iter_content(it, &out))
				bad++;
			bad += kind == 0 ? !vec_eq(ents[n], &out)
					 : !entry_eq(ents[n], &out, kind != 2);
			t4dx_entry_clear(&out);
		}
		CHECK_EQ_INT(t4dx_seg_iter_next(it, T4DX_SEG_VEC, &out),
			     T4DX_ENOTFOUND);
		t4dx_seg_iter_close(it);
		t4dx_seg_unref(s);
	}
	CHECK_EQ_INT(bad, 0);
}

int main(void)
{
	/* T4DX_WRITE_FIXTURE=PATH: write the fixture's entries with this
	 * build's writer to PATH and stop (how seg-v2.t4s and seg-v3.t4s
	 * were made) */
	const char *fx = getenv("T4DX_WRITE_FIXTURE");
	if (fx) {
		struct t4dx_entry e[FIXTURE_N], *ep[FIXTURE_N];
		for (size_t i = 0; i < FIXTURE_N; i++) {
			fixture_entry(i, &e[i]);
			ep[i] = &e[i];
		}
		int rc = t4dx_seg_write(fx, ep, FIXTURE_N, 100,
					100 + FIXTURE_N - 1);
		for (size_t i = 0; i < FIXTURE_N; i++)
			t4dx_entry_clear(&e[i]);
		return rc ? 1 : 0;
	}
	dir = unit_tmpdir("seg");
	snprintf(seg_path, sizeof(seg_path), "%s/1.t4s", dir);
	make_entries();
	fprintf(stderr, "%zu entries\n", nents);

	RUN(test_write_rejects);
	RUN(test_roundtrip);
	RUN(test_one_block_read);
	RUN(test_verify_slices);
	RUN(test_bloom);
	RUN(test_iter);
	RUN(test_threads);
	RUN(test_shared_large);
	RUN(test_v4_layout);
	RUN(test_chunk_damage);
	RUN(test_listing_reads);
	RUN(test_vec_reads);
	RUN(test_block_damage);
	RUN(test_content_damage);
	RUN(test_vector_damage);
	RUN(test_meta_damage);
	RUN(test_truncated);
	RUN(test_write_faults);
	RUN(test_stream_writer);
	RUN(test_old_fixtures);

	for (size_t i = 0; i < nents; i++) {
		t4dx_entry_clear(ents[i]);
		free(ents[i]);
	}
	free(ents);
	unit_rm_rf(dir);
	/* UNIT_DONE() itself, spelt out: as written in unit.h it trips
	 * -Wmisleading-indentation under -Werror. */
	if (unit_failures)
		fprintf(stderr, "%d check(s) failed\n", unit_failures);
	return unit_failures ? 1 : 0;
}
