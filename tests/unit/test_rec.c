/* test_rec.c - WAL record encoding (core/rec.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memmem */
#endif
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "rec.h"
#include "unit.h"

static void set_name(struct t4dx_entry *e, uint64_t parent, const char *name,
		     size_t len)
{
	REQUIRE(t4dx_entry_set_key(e, parent, name, len) == 0);
}

/* A file entry with every field set to something distinctive. */
static void full_entry(struct t4dx_entry *e, const char *name, size_t nlen,
		       const void *content, size_t clen)
{
	memset(e, 0, sizeof(*e));
	set_name(e, 1234567, name, nlen);
	e->ino = 987654321;
	e->mode = 0100644;
	e->uid = 1000;
	e->gid = 100;
	e->atime_ns = 1700000000123456789LL;
	e->mtime_ns = -5;       /* before the epoch */
	e->ctime_ns = 1;
	for (int i = 0; i < 16; i++)
		e->id[i] = (uint8_t)(0x10 * i + 15 - i);
	e->kappa = 0.1;
	e->importance = 1.0 / 3.0;
	e->type = T4DX_PROCEDURAL;
	e->event_time_ns = 42;
	e->access_count = 7;
	e->content = content ? t4dx_blob_from(content, clen) : NULL;
	e->size = content ? clen : 0;
}

static bool same_content(const struct t4dx_entry *a, const struct t4dx_entry *b)
{
	size_t la = a->content ? a->content->len : 0;
	size_t lb = b->content ? b->content->len : 0;
	return la == lb && a->size == la && b->size == lb &&
	       (la == 0 || !memcmp(a->content->data, b->content->data, la));
}

static void check_fields(const struct t4dx_entry *a, const struct t4dx_entry *b,
			 uint32_t mask)
{
	if (mask & T4DX_F_MODE)
		CHECK_EQ_INT(a->mode, b->mode);
	if (mask & T4DX_F_UID)
		CHECK_EQ_INT(a->uid, b->uid);
	if (mask & T4DX_F_GID)
		CHECK_EQ_INT(a->gid, b->gid);
	if (mask & T4DX_F_ATIME)
		CHECK(a->atime_ns == b->atime_ns);
	if (mask & T4DX_F_MTIME)
		CHECK(a->mtime_ns == b->mtime_ns);
	if (mask & T4DX_F_CTIME)
		CHECK(a->ctime_ns == b->ctime_ns);
	if (mask & T4DX_F_KAPPA)
		CHECK(a->kappa == b->kappa);
	if (mask & T4DX_F_IMPORTANCE)
		CHECK(a->importance == b->importance);
	if (mask & T4DX_F_TYPE)
		CHECK_EQ_INT(a->type, b->type);
	if (mask & T4DX_F_EVENT_TIME)
		CHECK(a->event_time_ns == b->event_time_ns);
	if (mask & T4DX_F_ACCESS)
		CHECK(a->access_count == b->access_count);
}

static bool same_key(const struct t4dx_entry *a, const struct t4dx_entry *b)
{
	return a->parent == b->parent && a->name_len == b->name_len &&
	       !memcmp(a->name, b->name, a->name_len) &&
	       b->name[b->name_len] == 0;
}

/* Encode r into a fresh buffer (a single line) and decode it into out. */
static void round_trip(const struct t4dx_rec *r, struct t4dx_buf *line,
		       struct t4dx_rec *out)
{
	line->len = 0;
	REQUIRE(t4dx_rec_encode(r, line) == 0);
	REQUIRE(line->len > 1);
	CHECK(line->p[line->len - 1] == '\n');
	CHECK(memchr(line->p, '\n', line->len - 1) == NULL);
	REQUIRE(t4dx_rec_decode((char *)line->p, line->len - 1, out) == 0);
	CHECK(out->lsn == r->lsn);
	CHECK_EQ_INT(out->op, r->op);
	CHECK(out->e.lsn == r->lsn);
}

/* Does the line contain "key": (exactly this key)? */
static bool has_key(const struct t4dx_buf *line, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\":", key);
	return memmem(line->p, line->len, k, strlen(k)) != NULL;
}

static void test_put_round_trip(void)
{
	struct t4dx_buf line = { 0 };
	struct {
		const char *name;
		size_t nlen;
		const char *content;
		size_t clen;
		bool name_b64, content_b64;
	} cases[] = {
		{ "alice-cafe", 10, "met Alice at the cafe\n", 22, false, false },
		{ "caf\xc3\xa9 \xf0\x9f\x98\x80", 10, "\xe2\x82\xac 5 \"q\" \\ / \t\x01\x7f",
		  16, false, false },
		{ "\xff\xfe-bin", 6, "\x00\x01\x02\xff", 4, true, true },
		{ "nul", 3, "a\0b", 3, false, true },          /* NUL: base64 */
		{ "bad-utf8", 8, "\xc3\x28 over\xc0\xaf", 9, false, true },
		{ "empty", 5, "", 0, false, false },
		{ "\x80", 1, "x", 1, true, false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct t4dx_rec r = { .lsn = 100 + i, .op = T4DX_OP_PUT }, d;
		full_entry(&r.e, cases[i].name, cases[i].nlen,
			   cases[i].content, cases[i].clen);
		round_trip(&r, &line, &d);
		CHECK(same_key(&r.e, &d.e));
		CHECK(d.e.ino == r.e.ino);
		CHECK(!memcmp(d.e.id, r.e.id, 16));
		check_fields(&r.e, &d.e, T4DX_F_ALL);
		CHECK(same_content(&r.e, &d.e));
		CHECK(d.e.content != NULL);
		CHECK(has_key(&line, "name_b64") == cases[i].name_b64);
		CHECK(has_key(&line, "name") == !cases[i].name_b64);
		CHECK(has_key(&line, "content_b64") == cases[i].content_b64);
		CHECK(has_key(&line, "content") == !cases[i].content_b64);
		t4dx_entry_clear(&r.e);
		t4dx_entry_clear(&d.e);
	}

	/* NULL content is written as empty content. */
	struct t4dx_rec r = { .lsn = 1, .op = T4DX_OP_PUT }, d;
	full_entry(&r.e, "n", 1, NULL, 0);
	round_trip(&r, &line, &d);
	CHECK(d.e.content && d.e.content->len == 0 && d.e.size == 0);
	t4dx_entry_clear(&d.e);

	/* Extreme values of every numeric field. */
	full_entry(&r.e, "x", 1, "y", 1);
	r.lsn = UINT64_MAX;
	r.e.parent = UINT64_MAX;
	r.e.ino = UINT64_MAX - 1;
	r.e.mode = r.e.uid = r.e.gid = UINT32_MAX;
	r.e.atime_ns = INT64_MIN;
	r.e.mtime_ns = INT64_MAX;
	r.e.event_time_ns = INT64_MIN + 1;
	r.e.access_count = UINT64_MAX;
	r.e.kappa = 0.0;
	r.e.importance = 5e-324;        /* smallest denormal */
	r.e.type = T4DX_SEMANTIC;
	round_trip(&r, &line, &d);
	CHECK(d.e.parent == UINT64_MAX && d.e.ino == UINT64_MAX - 1);
	check_fields(&r.e, &d.e, T4DX_F_ALL);
	t4dx_entry_clear(&d.e);
	r.e.kappa = 1.0;
	r.e.importance = 0.7;
	round_trip(&r, &line, &d);
	check_fields(&r.e, &d.e, T4DX_F_ALL);
	/* doubles are short, and still doubles */
	CHECK(memmem(line.p, line.len, "\"kappa\":1.0,", 12) != NULL);
	CHECK(memmem(line.p, line.len, "\"importance\":0.7,", 17) != NULL);
	t4dx_entry_clear(&d.e);
	t4dx_entry_clear(&r.e);

	/* A name of 255 bytes, as text and as base64. */
	char big[T4DX_NAME_MAX];
	memset(big, 'n', sizeof(big));
	full_entry(&r.e, big, sizeof(big), "", 0);
	round_trip(&r, &line, &d);
	CHECK(same_key(&r.e, &d.e));
	t4dx_entry_clear(&d.e);
	t4dx_entry_clear(&r.e);
	memset(big, 0xfe, sizeof(big));
	full_entry(&r.e, big, sizeof(big), "", 0);
	round_trip(&r, &line, &d);
	CHECK(same_key(&r.e, &d.e));
	CHECK(has_key(&line, "name_b64"));
	t4dx_entry_clear(&d.e);
	t4dx_entry_clear(&r.e);
	t4dx_buf_free(&line);
}

static void test_other_ops(void)
{
	struct t4dx_buf line = { 0 };
	struct t4dx_rec r, d;

	/* mkdir: inode fields only; no memory attributes, no content */
	memset(&r, 0, sizeof(r));
	r.lsn = 5;
	r.op = T4DX_OP_MKDIR;
	full_entry(&r.e, "dir\xe2\x80\x94x", 7, NULL, 0);
	r.e.mode = 040755;
	round_trip(&r, &line, &d);
	CHECK(same_key(&r.e, &d.e));
	CHECK(d.e.ino == r.e.ino);
	check_fields(&r.e, &d.e, T4DX_F_MODE | T4DX_F_UID | T4DX_F_GID |
		     T4DX_F_ATIME | T4DX_F_MTIME | T4DX_F_CTIME);
	CHECK(d.e.content == NULL && d.e.size == 0);
	CHECK(!has_key(&line, "kappa") && !has_key(&line, "content") &&
	      !has_key(&line, "id"));
	t4dx_entry_clear(&r.e);

	/* delete and rmdir: the key only */
	enum t4dx_op dels[] = { T4DX_OP_DELETE, T4DX_OP_RMDIR };
	for (int i = 0; i < 2; i++) {
		memset(&r, 0, sizeof(r));
		r.lsn = 6 + i;
		r.op = dels[i];
		set_name(&r.e, 77, i ? "\xc3" : "gone", i ? 1 : 4);
		r.e.mode = 1;   /* not written */
		round_trip(&r, &line, &d);
		CHECK(same_key(&r.e, &d.e));
		CHECK(d.e.mode == 0 && d.e.content == NULL);
		CHECK(d.e.tombstone);
		CHECK(!has_key(&line, "mode") && !has_key(&line, "ino"));
		CHECK(has_key(&line, i ? "name_b64" : "name"));
	}

	/* rename, with every combination of text and binary names */
	for (int i = 0; i < 4; i++) {
		memset(&r, 0, sizeof(r));
		r.lsn = 10 + i;
		r.op = T4DX_OP_RENAME;
		set_name(&r.e, 16, (i & 1) ? "\xf5old" : "old", (i & 1) ? 4 : 3);
		r.new_parent = UINT64_MAX;
		const char *nn = (i & 2) ? "n\xe9w" : "n\xc3\xa9w";
		r.new_name_len = (uint16_t)strlen(nn);
		memcpy(r.new_name, nn, r.new_name_len);
		round_trip(&r, &line, &d);
		CHECK(same_key(&r.e, &d.e));
		CHECK(d.new_parent == UINT64_MAX);
		CHECK(d.new_name_len == r.new_name_len &&
		      !memcmp(d.new_name, r.new_name, r.new_name_len) &&
		      d.new_name[d.new_name_len] == 0);
		CHECK(has_key(&line, "new_name_b64") == !!(i & 2));
	}

	/* update_fields: every single field, all, and none */
	struct t4dx_entry f;
	full_entry(&f, "u", 1, NULL, 0);
	uint32_t masks[16];
	size_t nm = 0;
	for (uint32_t bit = 1; bit <= T4DX_F_ALL; bit <<= 1)
		masks[nm++] = bit;
	masks[nm++] = T4DX_F_ALL;
	masks[nm++] = 0;
	for (size_t k = 0; k < nm; k++) {
		uint32_t m = masks[k];
		memset(&r, 0, sizeof(r));
		r.lsn = 20;
		r.op = T4DX_OP_UPDATE;
		r.e = f;
		r.mask = m;
		round_trip(&r, &line, &d);
		CHECK(same_key(&r.e, &d.e));
		CHECK_EQ_INT(d.mask, m);
		check_fields(&r.e, &d.e, m);
		CHECK(d.e.content == NULL);
	}
	/* fields outside the mask are not written */
	memset(&r, 0, sizeof(r));
	r.lsn = 21;
	r.op = T4DX_OP_UPDATE;
	r.e = f;
	r.mask = T4DX_F_KAPPA | T4DX_F_TYPE;
	round_trip(&r, &line, &d);
	CHECK(has_key(&line, "kappa") && has_key(&line, "type"));
	CHECK(!has_key(&line, "mode") && !has_key(&line, "importance") &&
	      !has_key(&line, "access_count"));
	CHECK(d.e.mode == 0 && d.e.importance == 0);

	/* probe */
	memset(&r, 0, sizeof(r));
	r.lsn = 99;
	r.op = T4DX_OP_PROBE;
	round_trip(&r, &line, &d);
	const char *body = "{\"lsn\":99,\"op\":\"probe\"";
	char want[64];
	snprintf(want, sizeof(want), "%s,\"crc\":%lu}\n", body,
		 crc32(0, (const unsigned char *)body, (uInt)strlen(body)));
	CHECK(line.len == strlen(want) && !memcmp(line.p, want, line.len));

	/* op names */
	CHECK(!strcmp(t4dx_op_name(T4DX_OP_UPDATE), "update_fields"));
	CHECK(!strcmp(t4dx_op_name(T4DX_OP_PUT), "put"));
	t4dx_buf_free(&line);
}

/* The documented layout: key order, no whitespace, the CRC rule. */
static void test_layout(void)
{
	struct t4dx_buf line = { 0 };
	struct t4dx_rec r = { .lsn = 8, .op = T4DX_OP_PUT };
	full_entry(&r.e, "k", 1, "v/w", 3);
	REQUIRE(t4dx_rec_encode(&r, &line) == 0);
	const char *keys[] = { "lsn", "op", "parent", "name", "ino", "mode",
			       "uid", "gid", "atime", "mtime", "ctime", "id",
			       "kappa", "importance", "type", "event_time",
			       "access_count", "content", "crc" };
	const unsigned char *at = line.p;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char k[32];
		snprintf(k, sizeof(k), "\"%s\":", keys[i]);
		const unsigned char *p = memmem(at, line.len - (size_t)(at - line.p),
						k, strlen(k));
		CHECK(p != NULL);
		if (p)
			at = p;
	}
	CHECK(!memcmp(line.p, "{\"lsn\":8,\"op\":\"put\",\"parent\":1234567,"
		      "\"name\":\"k\",", 37));
	CHECK(memmem(line.p, line.len, "\"content\":\"v/w\"", 15) != NULL);
	CHECK(memmem(line.p, line.len, " ", 1) == NULL);
	CHECK(memmem(line.p, line.len, "\"type\":\"procedural\"", 19) != NULL);
	CHECK(memmem(line.p, line.len,
		     "\"id\":\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\"", 39) != NULL);
	/* crc: zlib CRC-32 of the bytes before ,"crc" */
	const char *c = (const char *)memmem(line.p, line.len, ",\"crc\":", 7);
	REQUIRE(c);
	size_t plen = (size_t)(c - (const char *)line.p);
	unsigned long want = crc32(0, line.p, (uInt)plen);
	char tail[40];
	snprintf(tail, sizeof(tail), ",\"crc\":%lu}\n", want);
	CHECK(line.len - plen == strlen(tail) && !memcmp(c, tail, strlen(tail)));

	/* encode appends: two records in one buffer */
	size_t first = line.len;
	r.lsn = 9;
	REQUIRE(t4dx_rec_encode(&r, &line) == 0);
	struct t4dx_rec d;
	CHECK(t4dx_rec_decode((char *)line.p, first - 1, &d) == 0 && d.lsn == 8);
	t4dx_entry_clear(&d.e);
	CHECK(t4dx_rec_decode((char *)line.p + first, line.len - first - 1,
			      &d) == 0 && d.lsn == 9);
	t4dx_entry_clear(&d.e);
	t4dx_entry_clear(&r.e);
	t4dx_buf_free(&line);
}

/* Every single-byte change anywhere in a line, and every truncation, is
 * refused. */
static void test_damage(void)
{
	struct t4dx_buf line = { 0 };
	struct t4dx_rec recs[4];
	memset(recs, 0, sizeof(recs));
	recs[0].op = T4DX_OP_PUT;
	full_entry(&recs[0].e, "caf\xc3\xa9", 5, "hello \xe2\x82\xac", 9);
	recs[1].op = T4DX_OP_PUT;
	full_entry(&recs[1].e, "\xff", 1, "\x00\xff\x10", 3);
	recs[2].op = T4DX_OP_RENAME;
	set_name(&recs[2].e, 3, "a", 1);
	recs[2].new_parent = 4;
	recs[2].new_name_len = 1;
	recs[2].new_name[0] = 'b';
	recs[3].op = T4DX_OP_UPDATE;
	recs[3].e = recs[0].e;
	recs[3].e.content = NULL;
	recs[3].mask = T4DX_F_ALL;
	static const unsigned char masks[] = { 0x01, 0x02, 0x04, 0x08, 0x10,
					       0x20, 0x40, 0x80, 0xff, 0x33 };
	long tried = 0, refused = 0, cuts = 0, cut_refused = 0;
	for (int i = 0; i < 4; i++) {
		recs[i].lsn = 1000 + (uint64_t)i;
		line.len = 0;
		REQUIRE(t4dx_rec_encode(&recs[i], &line) == 0);
		size_t len = line.len - 1;
		char *copy = malloc(len + 1);
		for (size_t o = 0; o < len; o++) {
			for (size_t m = 0; m < sizeof(masks); m++) {
				memcpy(copy, line.p, len);
				copy[o] = (char)(copy[o] ^ masks[m]);
				struct t4dx_rec d;
				tried++;
				int rc = t4dx_rec_decode(copy, len, &d);
				if (rc == T4DX_ECORRUPT)
					refused++;
				else
					t4dx_entry_clear(&d.e);
			}
		}
		for (size_t c = 0; c < len; c++) {
			struct t4dx_rec d;
			cuts++;
			if (t4dx_rec_decode((char *)line.p, c, &d) ==
			    T4DX_ECORRUPT)
				cut_refused++;
			else
				t4dx_entry_clear(&d.e);
		}
		/* an extra byte at either end */
		memcpy(copy, line.p, len);
		struct t4dx_rec d;
		copy[len] = ' ';
		CHECK(t4dx_rec_decode(copy, len + 1, &d) == T4DX_ECORRUPT);
		free(copy);
	}
	CHECK_EQ_INT(refused, tried);
	CHECK_EQ_INT(cut_refused, cuts);
	fprintf(stderr, "   %ld flipped lines and %ld cuts refused\n", refused,
		cut_refused);
	t4dx_entry_clear(&recs[0].e);
	t4dx_entry_clear(&recs[1].e);
	t4dx_buf_free(&line);
}

/* A body with a correct CRC appended, so that only the field checks can
 * refuse it. */
static int decode_sealed(const char *body, struct t4dx_rec *d)
{
	char line[4096];
	size_t n = strlen(body);
	REQUIRE(n + 32 < sizeof(line) && body[0] == '{');
	unsigned long crc = crc32(0, (const unsigned char *)body, (uInt)n);
	snprintf(line, sizeof(line), "%s,\"crc\":%lu}", body, crc);
	int rc = t4dx_rec_decode(line, strlen(line), d);
	if (rc == 0)
		t4dx_entry_clear(&d->e);
	return rc;
}

#define PUT_HEAD "{\"lsn\":3,\"op\":\"put\",\"parent\":16,\"name\":\"a\",\"ino\":17," \
	"\"mode\":33188,\"uid\":0,\"gid\":0,\"atime\":0,\"mtime\":0,\"ctime\":0,"
#define PUT_MEM "\"id\":\"00112233445566778899aabbccddeeff\",\"kappa\":0.5," \
	"\"importance\":0,\"type\":\"episodic\",\"event_time\":0,\"access_count\":0,"

static void test_field_checks(void)
{
	struct t4dx_rec d;
	/* sanity: the template itself is valid, ints accepted for kappa */
	CHECK_EQ_INT(decode_sealed(PUT_HEAD PUT_MEM "\"content\":\"x\"", &d), 0);
	CHECK_EQ_INT(decode_sealed(PUT_HEAD PUT_MEM "\"content_b64\":\"AP8=\"",
				   &d), 0);
	CHECK_EQ_INT(decode_sealed(PUT_HEAD PUT_MEM "\"content\":\"x\","
				   "\"future_key\":[1,2]", &d), 0);
	CHECK_EQ_INT(decode_sealed("{\"lsn\":1,\"op\":\"probe\"", &d), 0);

	const char *bad[] = {
		/* missing or doubled content */
		PUT_HEAD PUT_MEM "\"x\":1",
		PUT_HEAD PUT_MEM "\"content\":\"x\",\"content_b64\":\"eA==\"",
		/* bad base64, bad hex */
		PUT_HEAD PUT_MEM "\"content_b64\":\"AP8\"",
		PUT_HEAD PUT_MEM "\"content_b64\":\"A*8=\"",
		PUT_HEAD "\"id\":\"00112233445566778899aabbccddeefg\",\"kappa\":0.5,"
		"\"importance\":0,\"type\":\"episodic\",\"event_time\":0,"
		"\"access_count\":0,\"content\":\"x\"",
		PUT_HEAD "\"id\":\"0011\",\"kappa\":0.5,"
		"\"importance\":0,\"type\":\"episodic\",\"event_time\":0,"
		"\"access_count\":0,\"content\":\"x\"",
		/* out of range or mistyped */
		PUT_HEAD "\"id\":\"00112233445566778899aabbccddeeff\",\"kappa\":1.5,"
		"\"importance\":0,\"type\":\"episodic\",\"event_time\":0,"
		"\"access_count\":0,\"content\":\"x\"",
		PUT_HEAD "\"id\":\"00112233445566778899aabbccddeeff\",\"kappa\":-0.1,"
		"\"importance\":0,\"type\":\"episodic\",\"event_time\":0,"
		"\"access_count\":0,\"content\":\"x\"",
		PUT_HEAD "\"id\":\"00112233445566778899aabbccddeeff\",\"kappa\":NaN,"
		"\"importance\":0,\"type\":\"episodic\",\"event_time\":0,"
		"\"access_count\":0,\"content\":\"x\"",
		PUT_HEAD "\"id\":\"00112233445566778899aabbccddeeff\",\"kappa\":\"0.5\","
		"\"importance\":0,\"type\":\"episodic\",\"event_time\":0,"
		"\"access_count\":0,\"content\":\"x\"",
		PUT_HEAD "\"id\":\"00112233445566778899aabbccddeeff\",\"kappa\":0.5,"
		"\"importance\":0,\"type\":\"dreamy\",\"event_time\":0,"
		"\"access_count\":0,\"content\":\"x\"",
		PUT_HEAD "\"id\":\"00112233445566778899aabbccddeeff\",\"kappa\":0.5,"
		"\"importance\":0,\"type\":\"episodic\",\"event_time\":0.5,"
		"\"access_count\":0,\"content\":\"x\"",
		PUT_HEAD "\"id\":\"00112233445566778899aabbccddeeff\",\"kappa\":0.5,"
		"\"importance\":0,\"type\":\"episodic\",\"event_time\":0,"
		"\"access_count\":-1,\"content\":\"x\"",
		PUT_HEAD "\"id\":\"00112233445566778899aabbccddeeff\",\"kappa\":0.5,"
		"\"importance\":0,\"type\":\"episodic\",\"event_time\":0,"
		"\"access_count\":0,\"content\":5",
		"{\"lsn\":3,\"op\":\"put\",\"parent\":16,\"name\":\"a\",\"ino\":17,"
		"\"mode\":4294967296,\"uid\":0,\"gid\":0,\"atime\":0,\"mtime\":0,"
		"\"ctime\":0," PUT_MEM "\"content\":\"x\"",
		"{\"lsn\":3,\"op\":\"put\",\"parent\":16,\"name\":\"a\",\"ino\":-17,"
		"\"mode\":1,\"uid\":0,\"gid\":0,\"atime\":0,\"mtime\":0,"
		"\"ctime\":0," PUT_MEM "\"content\":\"x\"",
		"{\"lsn\":3,\"op\":\"put\",\"parent\":16,\"name\":\"a\",\"ino\":1,"
		"\"mode\":1,\"uid\":0,\"gid\":0,\"atime\":9223372036854775808,"
		"\"mtime\":0,\"ctime\":0," PUT_MEM "\"content\":\"x\"",
		/* a field missing */
		"{\"lsn\":3,\"op\":\"put\",\"parent\":16,\"name\":\"a\",\"ino\":1,"
		"\"mode\":1,\"uid\":0,\"gid\":0,\"atime\":0,"
		"\"ctime\":0," PUT_MEM "\"content\":\"x\"",
		"{\"lsn\":3,\"op\":\"mkdir\",\"parent\":16,\"name\":\"a\","
		"\"mode\":1,\"uid\":0,\"gid\":0,\"atime\":0,\"mtime\":0,\"ctime\":0",
		"{\"lsn\":3,\"op\":\"delete\",\"name\":\"a\"",
		"{\"lsn\":3,\"op\":\"delete\",\"parent\":1}",
		"{\"op\":\"probe\"",
		"{\"lsn\":3,\"op\":\"rename\",\"parent\":1,\"name\":\"a\","
		"\"new_name\":\"b\"",
		/* names */
		"{\"lsn\":3,\"op\":\"delete\",\"parent\":1,\"name\":\"a/b\"",
		"{\"lsn\":3,\"op\":\"delete\",\"parent\":1,\"name\":\"\"",
		"{\"lsn\":3,\"op\":\"delete\",\"parent\":1,\"name\":\"a\\u0000\"",
		"{\"lsn\":3,\"op\":\"delete\",\"parent\":1,\"name_b64\":\"YS9i\"",
		"{\"lsn\":3,\"op\":\"delete\",\"parent\":1,\"name_b64\":\"\"",
		"{\"lsn\":3,\"op\":\"delete\",\"parent\":1,\"name\":\"a\","
		"\"name_b64\":\"YQ==\"",
		"{\"lsn\":3,\"op\":\"delete\",\"parent\":1,\"name\":7",
		/* lsn, op, JSON shape */
		"{\"lsn\":0,\"op\":\"probe\"",
		"{\"lsn\":-1,\"op\":\"probe\"",
		"{\"lsn\":1.0,\"op\":\"probe\"",
		"{\"lsn\":\"1\",\"op\":\"probe\"",
		"{\"lsn\":1,\"op\":\"truncate\"",
		"{\"lsn\":1,\"op\":\"probe\\u0000x\"",
		"{\"lsn\":1,\"op\":\"probe\",}",
		"{\"lsn\":1,\"op\":'probe'",          /* not JSON */
		"{\"lsn\":1,\"op\":\"probe\",\"x\":[1,]",
		"{\"lsn\":1,\"op\":\"probe\"}{\"a\":1",
		"{\"lsn\":1,\"op\":\"probe\",\"x\":[1,2",
		"{\"lsn\":1,\"op\":\"update_fields\",\"parent\":1,\"name\":\"a\","
		"\"mode\":true",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = decode_sealed(bad[i], &d);
		if (rc != T4DX_ECORRUPT)
			fprintf(stderr, "   accepted bad line %zu: %s\n", i,
				bad[i]);
		CHECK_EQ_INT(rc, T4DX_ECORRUPT);
	}
	/* 256-byte names are too long, as text or base64 */
	char body[2048];
	char nm[257];
	memset(nm, 'q', 256);
	nm[256] = 0;
	snprintf(body, sizeof(body), "{\"lsn\":3,\"op\":\"delete\",\"parent\":1,"
		 "\"name\":\"%s\"", nm);
	CHECK_EQ_INT(decode_sealed(body, &d), T4DX_ECORRUPT);
	nm[255] = 0;
	snprintf(body, sizeof(body), "{\"lsn\":3,\"op\":\"delete\",\"parent\":1,"
		 "\"name\":\"%s\"", nm);
	CHECK_EQ_INT(decode_sealed(body, &d), 0);
	struct t4dx_buf b64 = { 0 };
	unsigned char raw[256];
	memset(raw, 0xfe, sizeof(raw));
	REQUIRE(t4dx_base64_encode(&b64, raw, 256) == 0);
	snprintf(body, sizeof(body), "{\"lsn\":3,\"op\":\"delete\",\"parent\":1,"
		 "\"name_b64\":\"%.*s\"", (int)b64.len, (char *)b64.p);
	CHECK_EQ_INT(decode_sealed(body, &d), T4DX_ECORRUPT);
	t4dx_buf_free(&b64);

	/* a good CRC value written differently is not the same line */
	CHECK_EQ_INT(t4dx_rec_decode("{\"lsn\":1,\"op\":\"probe\",\"crc\":x}", 29,
				     &d), T4DX_ECORRUPT);
	CHECK_EQ_INT(t4dx_rec_decode("", 0, &d), T4DX_ECORRUPT);
	CHECK_EQ_INT(t4dx_rec_decode("{}", 2, &d), T4DX_ECORRUPT);
}

static void test_encode_refuses(void)
{
	struct t4dx_buf line = { 0 };
	struct t4dx_rec r = { .lsn = 1, .op = T4DX_OP_PUT };
	full_entry(&r.e, "a", 1, "b", 1);
	r.e.kappa = NAN;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	r.e.kappa = 1.0000001;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	r.e.kappa = 0.5;
	r.e.importance = -0.0001;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	r.e.importance = 0.5;
	r.e.type = 3;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	r.e.type = 0;
	r.lsn = 0;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	r.lsn = 1;
	r.e.name[0] = '/';
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	r.e.name[0] = 'a';
	r.e.name_len = 0;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	r.e.name_len = 1;
	r.op = T4DX_OP_UPDATE;
	r.mask = T4DX_F_ALL + 1;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	r.op = T4DX_OP_RENAME;
	r.new_name_len = 0;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	r.op = (enum t4dx_op)42;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), EINVAL);
	CHECK_EQ_INT(line.len, 0);      /* nothing appended on refusal */
	/* but a refused update ignores fields outside its mask */
	r.op = T4DX_OP_UPDATE;
	r.mask = T4DX_F_MODE;
	r.e.kappa = 7;
	CHECK_EQ_INT(t4dx_rec_encode(&r, &line), 0);
	t4dx_entry_clear(&r.e);
	t4dx_buf_free(&line);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The largest item, as text with escapes and as binary. */
static void test_large(void)
{
	size_t n = 16u << 20;
	unsigned char *p = malloc(n);
	REQUIRE(p);
	for (int kind = 0; kind < 2; kind++) {
		for (size_t i = 0; i < n; i++)
			p[i] = kind ? (unsigned char)(i * 7 + (i >> 9)) :
			       (unsigned char)("ab\"\n\\/c\x01"[i % 8]);
		struct t4dx_rec r = { .lsn = 1, .op = T4DX_OP_PUT }, d;
		full_entry(&r.e, "big", 3, p, n);
		struct t4dx_buf line = { 0 };
		double t0 = now_s();
		REQUIRE(t4dx_rec_encode(&r, &line) == 0);
		double t1 = now_s();
		REQUIRE(t4dx_rec_decode((char *)line.p, line.len - 1, &d) == 0);
		double t2 = now_s();
		CHECK(same_content(&r.e, &d.e));
		CHECK(has_key(&line, kind ? "content_b64" : "content"));
		fprintf(stderr, "   16 MiB %s: line %zu bytes, encode %.3f s, "
			"decode %.3f s\n", kind ? "binary" : "text", line.len,
			t1 - t0, t2 - t1);
		t4dx_entry_clear(&r.e);
		t4dx_entry_clear(&d.e);
		t4dx_buf_free(&line);
	}
	free(p);
}

int main(void)
{
	RUN(test_put_round_trip);
	RUN(test_other_ops);
	RUN(test_layout);
	RUN(test_damage);
	RUN(test_field_checks);
	RUN(test_encode_refuses);
	RUN(test_large);
	UNIT_DONE();
}
