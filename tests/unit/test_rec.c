/* test_rec.c - WAL record encoding (core/rec.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memmem */
#endif
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <malloc.h>
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
#include "vec.h"

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

/* A put carries its vector (embed or hand) bit for bit; an update sets
 * or removes one; "vec_src" stands for the vector in an update's mask. */
static void test_vectors(void)
{
	struct t4dx_buf line = { 0 };
	struct t4dx_rec r, d;
	float x[4] = { 0.5f, -0.25f, 1e-30f, 3.0f };
	struct t4dx_blob *v = t4dx_vec_new(x, 4);
	REQUIRE(v);

	memset(&r, 0, sizeof(r));
	r.lsn = 5;
	r.op = T4DX_OP_PUT;
	full_entry(&r.e, "v", 1, "tea", 3);
	for (int src = T4DX_VEC_EMBED; src <= T4DX_VEC_HAND; src++) {
		r.e.vec_src = (uint8_t)src;
		r.e.vec = v;
		round_trip(&r, &line, &d);
		CHECK(has_key(&line, "vec_src") && has_key(&line, "vec_b64"));
		CHECK_EQ_INT(d.e.vec_src, src);
		CHECK(t4dx_vec_equal(d.e.vec, v));
		CHECK(same_content(&r.e, &d.e));
		t4dx_entry_clear(&d.e);
	}
	/* no vector: no key, and none read back */
	r.e.vec_src = T4DX_VEC_NONE;
	r.e.vec = NULL;
	round_trip(&r, &line, &d);
	CHECK(!has_key(&line, "vec_src") && !d.e.vec &&
	      d.e.vec_src == T4DX_VEC_NONE);
	t4dx_entry_clear(&d.e);
	/* what the decoder would refuse, the encoder refuses */
	r.e.vec_src = T4DX_VEC_HAND;            /* a source without bytes */
	line.len = 0;
	CHECK(t4dx_rec_encode(&r, &line) == EINVAL);
	r.e.vec_src = T4DX_VEC_NONE;            /* bytes without a source */
	r.e.vec = v;
	CHECK(t4dx_rec_encode(&r, &line) == EINVAL);
	t4dx_blob_unref(r.e.content);

	/* an update that sets, then one that removes, the vector */
	memset(&r, 0, sizeof(r));
	r.lsn = 6;
	r.op = T4DX_OP_UPDATE;
	set_name(&r.e, 16, "v", 1);
	r.mask = T4DX_F_VEC | T4DX_F_KAPPA;
	r.e.kappa = 0.75;
	r.e.vec_src = T4DX_VEC_HAND;
	r.e.vec = v;
	round_trip(&r, &line, &d);
	CHECK_EQ_INT(d.mask, T4DX_F_VEC | T4DX_F_KAPPA);
	CHECK(d.e.vec_src == T4DX_VEC_HAND && t4dx_vec_equal(d.e.vec, v));
	t4dx_entry_clear(&d.e);
	r.e.vec_src = T4DX_VEC_NONE;
	r.e.vec = NULL;
	r.mask = T4DX_F_VEC;
	round_trip(&r, &line, &d);
	CHECK(has_key(&line, "vec_src") && !has_key(&line, "vec_b64"));
	CHECK(d.mask == T4DX_F_VEC && d.e.vec_src == T4DX_VEC_NONE && !d.e.vec);
	t4dx_entry_clear(&d.e);
	/* the embedder's mark: no bytes either */
	r.e.vec_src = T4DX_VEC_TRIED;
	round_trip(&r, &line, &d);
	CHECK(has_key(&line, "vec_src") && !has_key(&line, "vec_b64"));
	CHECK(d.mask == T4DX_F_VEC && d.e.vec_src == T4DX_VEC_TRIED && !d.e.vec);
	t4dx_entry_clear(&d.e);
	r.e.vec = v;                    /* a mark with bytes */
	line.len = 0;
	CHECK(t4dx_rec_encode(&r, &line) == EINVAL);
	r.e.vec = NULL;
	r.mask = 0;                     /* no vector key without the bit */
	round_trip(&r, &line, &d);
	CHECK(!has_key(&line, "vec_src") && d.mask == 0);

	/* damaged vectors are not records */
	CHECK_EQ_INT(decode_sealed(PUT_HEAD PUT_MEM "\"vec_src\":\"hand\","
				   "\"vec_b64\":\"AACAPw==\",\"content\":\"x\"",
				   &d), 0);
	const char *bad[] = {
		PUT_HEAD PUT_MEM "\"vec_src\":\"none\",\"content\":\"x\"",
		PUT_HEAD PUT_MEM "\"vec_src\":\"tried\",\"content\":\"x\"",
		PUT_HEAD PUT_MEM "\"vec_src\":\"tried\",\"vec_b64\":\"AACAPw==\","
		"\"content\":\"x\"",
		PUT_HEAD PUT_MEM "\"vec_src\":\"mine\",\"vec_b64\":\"AACAPw==\","
		"\"content\":\"x\"",
		PUT_HEAD PUT_MEM "\"vec_src\":\"hand\",\"content\":\"x\"",
		PUT_HEAD PUT_MEM "\"vec_src\":1,\"vec_b64\":\"AACAPw==\","
		"\"content\":\"x\"",
		/* 3 bytes, a NaN, an infinity */
		PUT_HEAD PUT_MEM "\"vec_src\":\"hand\",\"vec_b64\":\"AACA\","
		"\"content\":\"x\"",
		PUT_HEAD PUT_MEM "\"vec_src\":\"hand\",\"vec_b64\":\"AADAfw==\","
		"\"content\":\"x\"",
		PUT_HEAD PUT_MEM "\"vec_src\":\"hand\",\"vec_b64\":\"AACAfw==\","
		"\"content\":\"x\"",
		"{\"lsn\":4,\"op\":\"update_fields\",\"parent\":16,\"name\":\"a\","
		"\"vec_src\":\"none\",\"vec_b64\":\"AACAPw==\"",
		"{\"lsn\":4,\"op\":\"update_fields\",\"parent\":16,\"name\":\"a\","
		"\"vec_src\":\"embed\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = decode_sealed(bad[i], &d);
		if (rc != T4DX_ECORRUPT)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK_EQ_INT(rc, T4DX_ECORRUPT);
	}
	t4dx_blob_unref(v);
	t4dx_buf_free(&line);
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
	r.mask = (T4DX_F_ALL | T4DX_F_VEC) + 1;
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

/* ---- byte identity against json-c ------------------------------------ */

/*
 * The encoder writes its lines by hand.  Here the same lines are built the
 * way the format was first written: a json-c object with the keys in the
 * documented order, serialised with JSON_C_TO_STRING_PLAIN |
 * JSON_C_TO_STRING_NOSLASHESCAPE, its closing brace replaced by
 * ,"crc":N}\n.  Every random record must come out byte for byte the same.
 */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t below(uint64_t n)
{
	return rnd() % n;
}

/* The shortest of %.15g, %.16g, %.17g that reads back as d, with ".0"
 * added when it has neither a point nor an exponent. */
static void unit_text(char *s, size_t size, double d)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(s, size, "%.*g", prec, d);
		if (strtod(s, NULL) == d)
			break;
	}
	if (!strchr(s, '.') && !strchr(s, 'e') && !strchr(s, 'E'))
		strcat(s, ".0");
}

static char *base64_of(const unsigned char *p, size_t len)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	char *s = malloc(4 * (len / 3 + 1) + 1), *o = s;
	REQUIRE(s);
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		*o++ = abc[v >> 18];
		*o++ = abc[(v >> 12) & 63];
		*o++ = i + 1 < len ? abc[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? abc[v & 63] : '=';
	}
	*o = 0;
	return s;
}

static void j_add(struct json_object *o, const char *key,
		  struct json_object *v)
{
	REQUIRE(v && json_object_object_add(o, key, v) == 0);
}

static void j_unit(struct json_object *o, const char *key, double d)
{
	char s[40];
	unit_text(s, sizeof(s), d);
	j_add(o, key, json_object_new_double_s(d, s));
}

/* Well-formed UTF-8 without NUL, by the table in the Unicode standard
 * (3.9, table 3-7), where the range of a second byte depends on the
 * first; written apart from t4dx_utf8_valid() to check it. */
static bool utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i], lo = 0x80, hi = 0xbf;
		size_t n;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			lo = c == 0xe0 ? 0xa0 : lo;
			hi = c == 0xed ? 0x9f : hi;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			lo = c == 0xf0 ? 0x90 : lo;
			hi = c == 0xf4 ? 0x8f : hi;
		} else {
			return false;
		}
		if (len - i - 1 < n || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += n + 1;
	}
	return true;
}

static void j_bytes(struct json_object *o, const char *key, const void *p,
		    size_t len)
{
	if (utf8_ok(p, len)) {
		j_add(o, key, json_object_new_string_len(p, (int)len));
		return;
	}
	char k[32], *s = base64_of(p, len);
	snprintf(k, sizeof(k), "%s_b64", key);
	j_add(o, k, json_object_new_string(s));
	free(s);
}

static void j_fields(struct json_object *o, const struct t4dx_entry *e,
		     uint32_t mask)
{
	static const char *const types[] = { "episodic", "semantic",
					     "procedural" };
	if (mask & T4DX_F_MODE)
		j_add(o, "mode", json_object_new_uint64(e->mode));
	if (mask & T4DX_F_UID)
		j_add(o, "uid", json_object_new_uint64(e->uid));
	if (mask & T4DX_F_GID)
		j_add(o, "gid", json_object_new_uint64(e->gid));
	if (mask & T4DX_F_ATIME)
		j_add(o, "atime", json_object_new_int64(e->atime_ns));
	if (mask & T4DX_F_MTIME)
		j_add(o, "mtime", json_object_new_int64(e->mtime_ns));
	if (mask & T4DX_F_CTIME)
		j_add(o, "ctime", json_object_new_int64(e->ctime_ns));
	if (mask & T4DX_F_KAPPA)
		j_unit(o, "kappa", e->kappa);
	if (mask & T4DX_F_IMPORTANCE)
		j_unit(o, "importance", e->importance);
	if (mask & T4DX_F_TYPE)
		j_add(o, "type", json_object_new_string(types[e->type]));
	if (mask & T4DX_F_EVENT_TIME)
		j_add(o, "event_time", json_object_new_int64(e->event_time_ns));
	if (mask & T4DX_F_ACCESS)
		j_add(o, "access_count",
		      json_object_new_uint64(e->access_count));
}

#define F_INODE (T4DX_F_MODE | T4DX_F_UID | T4DX_F_GID | T4DX_F_ATIME | \
		 T4DX_F_MTIME | T4DX_F_CTIME)
#define F_MEMORY (T4DX_F_KAPPA | T4DX_F_IMPORTANCE | T4DX_F_TYPE | \
		  T4DX_F_EVENT_TIME | T4DX_F_ACCESS)

/* The line the format prescribes for r (which must be encodable). */
static void json_c_line(const struct t4dx_rec *r, struct t4dx_buf *want)
{
	static const char *const ops[] = {
		[T4DX_OP_PUT] = "put", [T4DX_OP_DELETE] = "delete",
		[T4DX_OP_RENAME] = "rename", [T4DX_OP_MKDIR] = "mkdir",
		[T4DX_OP_RMDIR] = "rmdir", [T4DX_OP_UPDATE] = "update_fields",
		[T4DX_OP_PROBE] = "probe",
	};
	const struct t4dx_entry *e = &r->e;
	struct json_object *o = json_object_new_object();
	REQUIRE(o);
	j_add(o, "lsn", json_object_new_uint64(r->lsn));
	j_add(o, "op", json_object_new_string(ops[r->op]));
	if (r->op != T4DX_OP_PROBE) {
		j_add(o, "parent", json_object_new_uint64(e->parent));
		j_bytes(o, "name", e->name, e->name_len);
	}
	if (r->op == T4DX_OP_PUT || r->op == T4DX_OP_MKDIR) {
		j_add(o, "ino", json_object_new_uint64(e->ino));
		j_fields(o, e, F_INODE);
	}
	if (r->op == T4DX_OP_PUT) {
		char hex[33];
		for (int i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", e->id[i]);
		j_add(o, "id", json_object_new_string(hex));
		j_fields(o, e, F_MEMORY);
		if (e->content)
			j_bytes(o, "content", e->content->data,
				e->content->len);
		else
			j_bytes(o, "content", "", 0);
	}
	if (r->op == T4DX_OP_RENAME) {
		j_add(o, "new_parent", json_object_new_uint64(r->new_parent));
		j_bytes(o, "new_name", r->new_name, r->new_name_len);
	}
	if (r->op == T4DX_OP_UPDATE)
		j_fields(o, e, r->mask);
	size_t len = 0;
	const char *s = json_object_to_json_string_length(o,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
			&len);
	REQUIRE(s && len >= 2 && s[len - 1] == '}');
	want->len = 0;
	REQUIRE(t4dx_buf_add(want, s, len - 1) == 0);
	REQUIRE(t4dx_buf_addf(want, ",\"crc\":%lu}\n",
			      crc32(0, (const unsigned char *)s,
				    (uInt)(len - 1))) == 0);
	json_object_put(o);
}

static uint64_t any_u64(void)
{
	switch (below(6)) {
	case 0: return 0;
	case 1: return UINT64_MAX;
	case 2: return below(1000);
	default: return rnd() >> below(64);
	}
}

static uint32_t any_u32(void)
{
	switch (below(4)) {
	case 0: return 0;
	case 1: return UINT32_MAX;
	default: return (uint32_t)(rnd() >> below(64));
	}
}

static int64_t any_i64(void)
{
	switch (below(7)) {
	case 0: return 0;
	case 1: return INT64_MIN;
	case 2: return INT64_MAX;
	case 3: return -1 - (int64_t)below(1000);
	case 4: return INT64_MIN + 1;
	default: return (int64_t)(rnd() >> below(64)) * (below(2) ? 1 : -1);
	}
}

static double any_unit(void)
{
	static const double edges[] = {
		0.0, -0.0, 1.0, 0.1, 1.0 / 3.0, 5e-324, 0.5, 0.7, 0.25,
		2.2250738585072014e-308, 1e-5, 0.0001, 0.00012345,
		0.99999999999999989, 2.0 / 3.0, 0.3, 1e-300, 0.123456789012345,
	};
	size_t n = sizeof(edges) / sizeof(edges[0]);
	uint64_t k = below(n + 3);
	if (k < n)
		return edges[k];
	if (k == n)
		return (double)below(1001) / 1000.0;
	return (double)(rnd() >> 11) / 9007199254740992.0;      /* [0, 1) */
}

/* Append one UTF-8 sequence for a random code point of n bytes. */
static size_t utf8_seq(unsigned char *p, int n)
{
	uint32_t cp;
	if (n == 2)
		cp = 0x80 + (uint32_t)below(0x800 - 0x80);
	else if (n == 3)
		do
			cp = 0x800 + (uint32_t)below(0x10000 - 0x800);
		while (cp >= 0xd800 && cp <= 0xdfff);
	else
		cp = 0x10000 + (uint32_t)below(0x110000 - 0x10000);
	if (n == 2) {
		p[0] = (unsigned char)(0xc0 | cp >> 6);
	} else if (n == 3) {
		p[0] = (unsigned char)(0xe0 | cp >> 12);
		p[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	} else {
		p[0] = (unsigned char)(0xf0 | cp >> 18);
		p[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		p[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	}
	p[n - 1] = (unsigned char)(0x80 | (cp & 0x3f));
	return (size_t)n;
}

/* Fill p with len bytes mixing what matters to the escaping: control
 * bytes, '"', '\\', '/', DEL, plain ASCII and multi-byte UTF-8; with
 * binary, also bytes that make it invalid UTF-8 (and NUL when nul). */
static void any_bytes(unsigned char *p, size_t len, bool slash, bool binary,
		      bool nul)
{
	size_t i = 0;
	while (i < len) {
		uint64_t k = below(binary ? 12 : 10);
		if (k == 0) {
			p[i++] = (unsigned char)(1 + below(0x1f));
		} else if (k == 1) {
			p[i++] = below(2) ? '"' : '\\';
		} else if (k == 2) {
			p[i++] = slash && below(2) ? '/' : 0x7f;
		} else if (k == 3 && len - i >= 4) {
			i += utf8_seq(p + i, 2 + (int)below(3));
		} else if (k >= 10) {
			p[i++] = nul && !below(8) ? 0 :
				 (unsigned char)(0x80 + below(0x80));
		} else {
			unsigned char c;
			do
				c = (unsigned char)(0x20 + below(0x5f));
			while (c == '/' && !slash);
			p[i++] = c;
		}
	}
}

/* 0..max, mostly short. */
static size_t any_len(size_t max)
{
	size_t cap[] = { 1, 15, 255, max };
	size_t c = cap[below(4)];
	return below((c < max ? c : max) + 1);
}

/* A random name of 1..255 bytes, now and then with a '/' in it. */
static uint16_t any_name(char *name)
{
	size_t n = 1 + any_len(T4DX_NAME_MAX - 1);
	any_bytes((unsigned char *)name, n, false, !below(4), false);
	if (!below(60))
		name[below(n)] = '/';
	name[n] = 0;
	return (uint16_t)n;
}

/* A random record of any op; put content goes through tmp. */
static void any_rec(struct t4dx_rec *r, unsigned char *tmp, size_t tmp_size)
{
	memset(r, 0, sizeof(*r));
	r->lsn = below(4) ? 1 + below(1u << 20) : UINT64_MAX - below(2);
	r->op = (enum t4dx_op)(T4DX_OP_PUT + (int)below(T4DX_OP_PROBE));
	struct t4dx_entry *e = &r->e;
	e->parent = any_u64();
	e->name_len = any_name(e->name);
	e->ino = any_u64();
	e->mode = any_u32();
	e->uid = any_u32();
	e->gid = any_u32();
	e->atime_ns = any_i64();
	e->mtime_ns = any_i64();
	e->ctime_ns = any_i64();
	for (int i = 0; i < 16; i++)
		e->id[i] = (uint8_t)rnd();
	e->kappa = any_unit();
	e->importance = any_unit();
	e->type = (uint8_t)below(3);
	e->event_time_ns = any_i64();
	e->access_count = any_u64();
	r->new_parent = any_u64();
	r->new_name_len = any_name(r->new_name);
	r->mask = (uint32_t)below(T4DX_F_ALL + 1);
	if (r->op == T4DX_OP_PUT && below(8)) {
		size_t n = any_len(below(16) ? 4096 : tmp_size);
		any_bytes(tmp, n, true, !below(4), true);
		e->content = t4dx_blob_from(tmp, n);
		REQUIRE(e->content);
		e->size = n;
	}
}

static bool has(const struct t4dx_buf *b, const char *s)
{
	return memmem(b->p, b->len, s, strlen(s)) != NULL;
}

/* Is what the encoder appended to got after its first pre bytes the
 * line json_c_line() builds?  Says where they part, the first few times. */
static bool same_as_json_c(const struct t4dx_rec *r,
			   const struct t4dx_buf *got, size_t pre,
			   struct t4dx_buf *want)
{
	static int told;
	json_c_line(r, want);
	size_t n = got->len - pre;
	if (n == want->len && !memcmp(got->p + pre, want->p, n))
		return true;
	if (++told <= 3) {
		size_t at = 0;
		while (at < n && at < want->len &&
		       got->p[pre + at] == want->p[at])
			at++;
		fprintf(stderr, "   lines part at byte %zu:\n   got  %.*s\n"
			"   want %.*s\n", at, (int)(n < 400 ? n : 400),
			(const char *)got->p + pre,
			(int)(want->len < 400 ? want->len : 400),
			(const char *)want->p);
	}
	return false;
}

static void test_json_c_identity(void)
{
	enum { N = 20000, CONTENT_MAX = 70000 };
	static const char *const seen_what[] = {
		"\"name_b64\":", "\"new_name_b64\":", "\"content_b64\":",
		"\\u00", "\\u001f", "\\b", "\\t", "\\n", "\\f", "\\r",
		"\\\"", "\\\\", "\x7f", "/", "\xf0", "\"content\":\"\"",
		"-9223372036854775808", "18446744073709551615", "e-",
		":-0.0,", ":1.0,", ":0.0,",
	};
	long seen[sizeof(seen_what) / sizeof(seen_what[0])] = { 0 };
	unsigned char *tmp = malloc(CONTENT_MAX);
	REQUIRE(tmp);
	struct t4dx_buf got = { 0 }, want = { 0 };
	long same = 0, refused = 0, differ = 0;
	for (int i = 0; i < N; i++) {
		struct t4dx_rec r;
		any_rec(&r, tmp, CONTENT_MAX);
		bool bad = r.op != T4DX_OP_PROBE &&
			   (memchr(r.e.name, '/', r.e.name_len) ||
			    (r.op == T4DX_OP_RENAME &&
			     memchr(r.new_name, '/', r.new_name_len)));
		/* the encoder appends to what the buffer holds */
		size_t pre = below(3) ? 0 : below(100);
		got.len = 0;
		for (size_t k = 0; k < pre; k++)
			REQUIRE(t4dx_buf_add_u8(&got, 'p') == 0);
		int rc = t4dx_rec_encode(&r, &got);
		CHECK(got.len >= pre && (pre == 0 || (got.p[0] == 'p' &&
						      got.p[pre - 1] == 'p')));
		if (bad) {
			CHECK_EQ_INT(rc, EINVAL);
			CHECK_EQ_INT(got.len, pre);
			refused++;
		} else {
			CHECK_EQ_INT(rc, 0);
			if (!rc && same_as_json_c(&r, &got, pre, &want))
				same++;
			else
				differ++;
			for (size_t k = 0; k < sizeof(seen) / sizeof(seen[0]);
			     k++)
				seen[k] += has(&want, seen_what[k]);
		}
		t4dx_entry_clear(&r.e);
	}
	CHECK_EQ_INT(differ, 0);
	CHECK(same > N * 9 / 10 && refused > 0);
	/* the records did cover every case */
	for (size_t k = 0; k < sizeof(seen) / sizeof(seen[0]); k++) {
		if (!seen[k])
			fprintf(stderr, "   no line had %s\n", seen_what[k]);
		CHECK(seen[k] > 0);
	}
	fprintf(stderr, "   %ld lines identical to json-c's, %ld refused\n",
		same, refused);
	t4dx_buf_free(&got);
	t4dx_buf_free(&want);
	free(tmp);
}

/* The next double up (dir 1) or down (dir -1) from a positive d. */
static double next_double(double d, int dir)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	u += dir > 0 ? 1 : (uint64_t)-1;
	memcpy(&d, &u, sizeof(d));
	return d;
}

/* What random records may miss: every byte value at every place in
 * texts of 1..20 bytes (around the eight-byte steps of a scan), and every
 * whole number of thousandths, with its neighbours, as kappa and
 * importance. */
static void test_json_c_edges(void)
{
	struct t4dx_buf got = { 0 }, want = { 0 };
	struct t4dx_rec r = { .lsn = 1, .op = T4DX_OP_PUT };
	full_entry(&r.e, "e", 1, NULL, 0);
	long lines = 0, differ = 0;
	unsigned char s[20];
	for (size_t len = 1; len <= sizeof(s); len++) {
		for (size_t at = 0; at < len; at++) {
			for (int c = 1; c < 256; c++) {
				memset(s, 'a', len);
				s[at] = (unsigned char)c;
				r.e.content = t4dx_blob_from(s, len);
				REQUIRE(r.e.content);
				r.e.size = len;
				got.len = 0;
				REQUIRE(t4dx_rec_encode(&r, &got) == 0);
				differ += !same_as_json_c(&r, &got, 0, &want);
				lines++;
				t4dx_entry_clear(&r.e);
			}
		}
	}
	r.e.size = 0;
	for (int k = 0; k <= 1000; k++) {
		double d = k / 1000.0;
		double near[] = { d, k ? next_double(d, -1) : -0.0,
				  k < 1000 ? next_double(d, 1) : 0.999 };
		for (int i = 0; i < 3; i++) {
			r.e.kappa = near[i];
			r.e.importance = near[2 - i];
			got.len = 0;
			REQUIRE(t4dx_rec_encode(&r, &got) == 0);
			differ += !same_as_json_c(&r, &got, 0, &want);
			lines++;
		}
	}
	CHECK_EQ_INT(differ, 0);
	fprintf(stderr, "   %ld lines compared\n", lines);
	t4dx_buf_free(&got);
	t4dx_buf_free(&want);
}

/* t4dx_utf8_valid() decides between "name" and "name_b64".  Each case at
 * every offset in ASCII, so that it falls at every place of the
 * eight-byte steps, then random bytes, mostly ASCII. */
static void test_utf8(void)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "\x01", true }, { "\x7f", true }, { "\0", false },
		{ "\xc2\x80", true }, { "\xdf\xbf", true }, { "\xc0\xaf", false },
		{ "\xc1\xbf", false }, { "\xc3", false }, { "\xc3\x28", false },
		{ "\xe0\xa0\x80", true }, { "\xe0\x9f\xbf", false },
		{ "\xed\x9f\xbf", true }, { "\xed\xa0\x80", false },
		{ "\xef\xbf\xbf", true }, { "\xe2\x82", false },
		{ "\xf0\x90\x80\x80", true }, { "\xf0\x8f\xbf\xbf", false },
		{ "\xf4\x8f\xbf\xbf", true }, { "\xf4\x90\x80\x80", false },
		{ "\xf5\x80\x80\x80", false }, { "\xf0\x9f\x98", false },
		{ "\x80", false }, { "\xbf", false }, { "\xfe", false },
		{ "\xff", false },
	};
	unsigned char s[40];
	long wrong = 0;
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t n = cases[k].s[0] ? strlen(cases[k].s) : 1;
		for (size_t at = 0; at + n <= 24; at++) {
			for (size_t len = at + n; len <= 24; len += 1 + len / 4) {
				memset(s, 'a', len);
				memcpy(s + at, cases[k].s, n);
				bool want = cases[k].ok;
				wrong += t4dx_utf8_valid(s, len) != want;
				wrong += utf8_ok(s, len) != want;
				/* the case cut short by its last byte */
				wrong += t4dx_utf8_valid(s, at + n - 1) !=
					 utf8_ok(s, at + n - 1);
			}
		}
	}
	for (int i = 0; i < 200000; i++) {
		size_t len = below(sizeof(s) + 1), k = 0;
		while (k < len) {
			uint64_t pick = below(16);
			if (pick == 0)
				s[k++] = (unsigned char)rnd();
			else if (pick == 1 && len - k >= 4)
				k += utf8_seq(s + k, 2 + (int)below(3));
			else
				s[k++] = (unsigned char)(1 + below(0x7f));
		}
		wrong += t4dx_utf8_valid(s, len) != utf8_ok(s, len);
	}
	CHECK_EQ_INT(wrong, 0);
}

/* One line written out in full, so that a shared mistake in the encoder
 * and in json_c_line() above cannot go unseen. */
static void test_escapes(void)
{
	struct t4dx_buf line = { 0 };
	struct t4dx_rec r = { .lsn = 3, .op = T4DX_OP_UPDATE };
	set_name(&r.e, UINT64_MAX,
		 "q\"\\\x01\x1f\b\t\n\f\r\x7f\xc3\xa9", 13);
	r.mask = T4DX_F_ATIME | T4DX_F_KAPPA | T4DX_F_IMPORTANCE |
		 T4DX_F_ACCESS;
	r.e.atime_ns = INT64_MIN;
	r.e.kappa = -0.0;
	r.e.importance = 5e-324;
	r.e.access_count = UINT64_MAX;
	REQUIRE(t4dx_rec_encode(&r, &line) == 0);
	const char *body = "{\"lsn\":3,\"op\":\"update_fields\","
		"\"parent\":18446744073709551615,"
		"\"name\":\"q\\\"\\\\\\u0001\\u001f\\b\\t\\n\\f\\r\x7f\xc3\xa9\","
		"\"atime\":-9223372036854775808,\"kappa\":-0.0,"
		"\"importance\":4.94065645841247e-324,"
		"\"access_count\":18446744073709551615";
	char want[512];
	snprintf(want, sizeof(want), "%s,\"crc\":%lu}\n", body,
		 crc32(0, (const unsigned char *)body, (uInt)strlen(body)));
	CHECK(line.len == strlen(want) && !memcmp(line.p, want, line.len));
	if (line.len != strlen(want) || memcmp(line.p, want, line.len))
		fprintf(stderr, "   got  %.*s   want %s", (int)line.len,
			(const char *)line.p, want);

	/* '/' in content stays as it is; the other doubles */
	struct t4dx_rec p = { .lsn = 4, .op = T4DX_OP_PUT };
	full_entry(&p.e, "f", 1, "a/b\x01", 4);
	p.e.kappa = 1e-5;
	p.e.importance = 2.2250738585072014e-308;      /* needs %.17g */
	line.len = 0;
	REQUIRE(t4dx_rec_encode(&p, &line) == 0);
	CHECK(has(&line, ",\"content\":\"a/b\\u0001\","));
	CHECK(has(&line, ",\"kappa\":1e-05,"));
	CHECK(has(&line, ",\"importance\":2.2250738585072014e-308,"));
	t4dx_entry_clear(&p.e);
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

/* A content of valid UTF-8 whose escapes would make its line longer than
 * the decoder takes (1.5 GiB of text) goes in base64: 360 MiB of control
 * bytes, 2.1 GiB escaped, as 480 MiB of base64, encoded by reference as
 * the log does, put together and read back. */
static void test_escape_heavy(void)
{
	size_t n = 360u << 20;
	struct t4dx_rec r = { .lsn = 9, .op = T4DX_OP_PUT }, d;
	full_entry(&r.e, "ctl", 3, NULL, 0);
	r.e.content = t4dx_blob_new(n);
	REQUIRE(r.e.content);
	memset(r.e.content->data, 1, n);
	r.e.size = n;
	struct t4dx_buf head = { 0 }, line = { 0 };
	struct t4dx_rec_ext x;
	bool split;
	REQUIRE(t4dx_rec_encode_split(&r, &head, 1, &x, &split) == 0);
	REQUIRE(split);
	CHECK(x.b64);
	CHECK(x.enc_len == (n + 2) / 3 * 4);
	/* the line as the log writes it */
	REQUIRE(t4dx_buf_reserve(&line, head.len + x.enc_len) == 0);
	memcpy(line.p, head.p, x.at);
	line.len = x.at;
	enum { PIECE = 3 << 16 };
	for (size_t from = 0; from < n; from += PIECE) {
		size_t k = n - from < PIECE ? n - from : PIECE;
		REQUIRE(t4dx_buf_reserve(&line, T4DX_REC_EXT_ROOM(k)) == 0);
		line.len += t4dx_rec_ext_put(&x, from, k,
					     (char *)line.p + line.len);
	}
	REQUIRE(t4dx_buf_add(&line, (const char *)head.p + x.at,
			     head.len - x.at) == 0);
	t4dx_blob_unref(x.blob);
	REQUIRE(t4dx_rec_decode((char *)line.p, line.len - 1, &d) == 0);
	CHECK(same_content(&r.e, &d.e));
	CHECK(has_key(&line, "content_b64"));
	t4dx_entry_clear(&r.e);
	t4dx_entry_clear(&d.e);
	t4dx_buf_free(&head);
	t4dx_buf_free(&line);
}

/* Encode r whole (split: with its content by reference, as the log
 * writes a large one) into line, ready for t4dx_rec_decode. */
static void encode_line(const struct t4dx_rec *r, bool split,
			struct t4dx_buf *line)
{
	struct t4dx_buf head = { 0 };
	struct t4dx_rec_ext x;
	bool was_split;
	line->len = 0;
	REQUIRE(t4dx_rec_encode_split(r, &head, split ? 1 : SIZE_MAX, &x,
				      &was_split) == 0);
	if (!was_split) {
		REQUIRE(t4dx_buf_add(line, (const char *)head.p, head.len) == 0);
		t4dx_buf_free(&head);
		return;
	}
	size_t n = r->e.content->len;
	REQUIRE(t4dx_buf_add(line, (const char *)head.p, x.at) == 0);
	enum { PIECE = 3 << 12 };
	for (size_t from = 0; from < n; from += PIECE) {
		size_t k = n - from < PIECE ? n - from : PIECE;
		REQUIRE(t4dx_buf_reserve(line, T4DX_REC_EXT_ROOM(k)) == 0);
		line->len += t4dx_rec_ext_put(&x, from, k,
					      (char *)line->p + line->len);
	}
	REQUIRE(t4dx_buf_add(line, (const char *)head.p + x.at,
			     head.len - x.at) == 0);
	t4dx_blob_unref(x.blob);
	t4dx_buf_free(&head);
}

/* A long text is checked, measured and summed a piece at a time
 * (rec.c text_scan): UTF-8 sequences and escapes across the pieces'
 * edges, and invalid sequences there, give the same line (its CRC
 * checked by the decoder) and the same text-or-base64 choice as the
 * whole at once. */
static void test_long_text_pieces(void)
{
	static const char *const seqs[] = {
		"\xf0\x9f\x98\x80", "\xe2\x82\xac", "\xc3\xa9", "\n", "\"",
		"\x01", "\\",
	};
	static const char *const bad[] = {
		"\x80", "\xf0\x9f\x98", "\xe2\x82", "\xc3", "\xed\xa0\x80",
		"\xc0\xaf", "\x80\x80\x80\x80", "",
	};
	const size_t sizes[] = { 16385, 100000, 300001 };
	struct t4dx_buf line = { 0 };
	unsigned checked = 0;
	for (size_t si = 0; si < 3; si++)
		for (size_t b = 0; b < 8; b++)
			for (int shift = -3; shift <= 1; shift++) {
				size_t n = sizes[si];
				struct t4dx_rec r = { .lsn = 7, .op = T4DX_OP_PUT };
				struct t4dx_rec d;
				full_entry(&r.e, "t", 1, NULL, 0);
				r.e.content = t4dx_blob_new(n);
				REQUIRE(r.e.content);
				r.e.size = n;
				unsigned char *c = r.e.content->data;
				for (size_t i = 0; i < n; i++)
					c[i] = (unsigned char)('a' + i % 26);
				/* a sequence at every piece edge, moved by
				 * shift, and at the end */
				for (size_t at = 4096, k = 0; at + 8 < n;
				     at += 4096, k++) {
					const char *q = seqs[k % 7];
					memcpy(c + at + shift, q, strlen(q));
				}
				const char *q = seqs[si % 7];
				memcpy(c + n - strlen(q), q, strlen(q));
				/* one bad sequence at an edge (b 7: none) */
				size_t bl = strlen(bad[b]);
				if (bl) {
					memcpy(c + 8192 + shift, bad[b], bl);
					c[8192 + shift + bl] = 'z';
				}
				bool text = t4dx_utf8_valid(c, n);
				CHECK(text == !bad[b][0]);
				for (int split = 0; split < 2; split++) {
					encode_line(&r, split, &line);
					REQUIRE(t4dx_rec_decode((char *)line.p,
								line.len - 1,
								&d) == 0);
					CHECK(same_content(&r.e, &d.e));
					CHECK(has_key(&line, "content") == text);
					CHECK(has_key(&line, "content_b64") ==
					      !text);
					t4dx_entry_clear(&d.e);
					checked++;
				}
				t4dx_entry_clear(&r.e);
			}
	CHECK_EQ_INT(checked, 3 * 8 * 5 * 2);
	t4dx_buf_free(&line);
}

/* The decoder as the format defines it, one character at a time: the
 * fast one in buf.c must agree with it on every input. */
static int ref_val(unsigned char c)
{
	const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789+/";
	const char *p = c ? strchr(al, c) : NULL;
	return p ? (int)(p - al) : -1;
}

static int ref_decode(const unsigned char *s, size_t len, unsigned char *out,
		      size_t *outlen)
{
	size_t o = 0;
	if (len % 4)
		return EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			bool last = i + 4 == len;
			if (last && k >= 2 && s[i + k] == '=') {
				v[k] = 0;
				pad++;
			} else if (pad || (v[k] = ref_val(s[i + k])) < 0) {
				return EINVAL;
			}
		}
		unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 |
			     (unsigned)v[2] << 6 | (unsigned)v[3];
		out[o++] = (unsigned char)(x >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(x >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)x;
	}
	*outlen = o;
	return 0;
}

/* Contents in base64 are decoded with a table (replay speed): round trips
 * of every length, then every byte value at every place of strings of
 * one to three groups, padding included, against ref_decode. */
static void test_base64_decode(void)
{
	unsigned char raw[300], got[300], want[300];
	struct t4dx_buf b = { 0 };
	srand(7);
	for (size_t len = 0; len < sizeof(raw); len++) {
		for (size_t i = 0; i < len; i++)
			raw[i] = (unsigned char)rand();
		b.len = 0;
		REQUIRE(t4dx_base64_encode(&b, raw, len) == 0);
		size_t n = 1000;
		CHECK_EQ_INT(t4dx_base64_decode((const char *)b.p, b.len, got,
						&n), 0);
		CHECK(n == len && memcmp(got, raw, len) == 0);
	}
	const char *seeds[] = { "QUJD", "QUI=", "QQ==", "QUJDREVG", "QUJDRA==",
				"QUJDREU=", "QUJDREVGR0hJ", "QUJDREVGRw==" };
	int bad = 0;
	for (size_t k = 0; k < sizeof(seeds) / sizeof(*seeds); k++) {
		unsigned char s[16];
		size_t len = strlen(seeds[k]);
		for (size_t at = 0; at < len; at++)
			for (int c = 0; c < 256; c++) {
				memcpy(s, seeds[k], len);
				s[at] = (unsigned char)c;
				size_t n1 = 0, n2 = 0;
				int r1 = t4dx_base64_decode((const char *)s,
							    len, got, &n1);
				int r2 = ref_decode(s, len, want, &n2);
				CHECK_EQ_INT(r1, r2);
				if (!r1 && !r2)
					CHECK(n1 == n2 &&
					      !memcmp(got, want, n1));
				bad += r2 != 0;
			}
	}
	CHECK(bad > 0);
	size_t n;
	CHECK_EQ_INT(t4dx_base64_decode("QUJ", 3, got, &n), EINVAL);
	CHECK_EQ_INT(t4dx_base64_decode("Q===", 4, got, &n), EINVAL);
	CHECK_EQ_INT(t4dx_base64_decode("QQ==QUJD", 8, got, &n), EINVAL);
	t4dx_buf_free(&b);
}

/* line = body + ,"crc":N} with the CRC of body. */
static void seal(struct t4dx_buf *line, const char *body, size_t n)
{
	char tail[32];
	unsigned long crc = crc32(0, (const unsigned char *)body, (uInt)n);
	int k = snprintf(tail, sizeof(tail), ",\"crc\":%lu}", crc);
	line->len = 0;
	REQUIRE(t4dx_buf_add(line, body, n) == 0 &&
		t4dx_buf_add(line, tail, (size_t)k) == 0);
}

/* Decode body sealed as it is, then with an unknown key after its last
 * field (the same JSON to a reader, but not the ending the shortcut for
 * large base64 contents looks for): both must agree.  Returns whether
 * they accepted it. */
static bool both_ways(const char *body, size_t n, struct t4dx_buf *a,
		      struct t4dx_buf *b)
{
	struct t4dx_rec x, y;
	seal(a, body, n);
	char *with = malloc(n + 8);
	REQUIRE(with);
	memcpy(with, body, n);
	memcpy(with + n, ",\"zz\":0", 7);
	seal(b, with, n + 7);
	free(with);
	int r1 = t4dx_rec_decode((const char *)a->p, a->len, &x);
	int r2 = t4dx_rec_decode((const char *)b->p, b->len, &y);
	CHECK_EQ_INT(r1, r2);
	if (r1 || r2) {
		if (!r1)
			t4dx_entry_clear(&x.e);
		if (!r2)
			t4dx_entry_clear(&y.e);
		return false;
	}
	CHECK(x.lsn == y.lsn);
	CHECK_EQ_INT(x.op, y.op);
	CHECK(same_key(&x.e, &y.e));
	CHECK(same_content(&x.e, &y.e));
	check_fields(&x.e, &y.e, T4DX_F_ALL);
	CHECK(x.e.ino == y.e.ino && !memcmp(x.e.id, y.e.id, 16));
	CHECK_EQ_INT(x.e.vec_src, y.e.vec_src);
	t4dx_entry_clear(&x.e);
	t4dx_entry_clear(&y.e);
	return true;
}

/* A put whose content is large is decoded in two parts (the base64 or
 * the text where it lies, the JSON before it by json-c): it must accept
 * and refuse exactly what decoding the whole line does, whatever is
 * changed in it (the CRC made right each time, so the parsing decides). */
static void split_decode(bool text)
{
	size_t clen = 66000;     /* past the shortcut's 64 KiB */
	unsigned char *content = malloc(clen);
	REQUIRE(content);
	/* text: every escape the encoder writes, and UTF-8 of 2 to 4 bytes */
	static const char pat[] = "ab\"\n\\/c\x01\x1f\b\t\f\r\x7f "
				  "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	for (size_t i = 0; i < clen; i++)
		content[i] = text ? (unsigned char)pat[i % (sizeof(pat) - 1)]
				  : (unsigned char)(i * 131 + (i >> 9));
	if (text)
		clen -= clen % (sizeof(pat) - 1);       /* whole characters */
	struct t4dx_rec r = { .lsn = 5, .op = T4DX_OP_PUT };
	full_entry(&r.e, "big", 3, content, clen);
	struct t4dx_buf line = { 0 }, a = { 0 }, b = { 0 };
	struct t4dx_rec out;
	round_trip(&r, &line, &out);
	CHECK(same_content(&r.e, &out.e));
	check_fields(&r.e, &out.e, T4DX_F_ALL);
	t4dx_entry_clear(&out.e);
	/* the body: the line without ,"crc":N}\n */
	char *body = malloc(line.len);
	REQUIRE(body);
	const char *crc = memmem(line.p, line.len, ",\"crc\":", 7);
	REQUIRE(crc);
	size_t n = (size_t)(crc - (const char *)line.p);
	memcpy(body, line.p, n);
	const char *key = text ? memmem(body, n, ",\"content\":\"", 12)
			       : memmem(body, n, ",\"content_b64\":\"", 16);
	REQUIRE(key);
	size_t cut = (size_t)(key - body);
	CHECK(both_ways(body, n, &a, &b));

	/* every byte of the JSON before the content, and bytes of the
	 * value (its first and last ones all), changed to characters that
	 * matter to JSON, escapes and UTF-8 */
	static const char subst[] = "\"\\{}[],: 0Az=-.\x01\x80ubnu1\x7f\xff\xc3";
	int accepted = 0, refused = 0;
	char *m = malloc(n);
	REQUIRE(m);
	for (size_t at = 0; at < n;
	     at += at < cut + 80 || at + 80 > n ? 1 : 997) {
		for (size_t k = 0; k < sizeof(subst) - 1; k++) {
			memcpy(m, body, n);
			m[at] = subst[k];
			if (both_ways(m, n, &a, &b))
				accepted++;
			else
				refused++;
		}
	}
	/* whole fields added before the content, or the content renamed */
	static const char *const extra[] = {
		"\"content\":\"x\",", "\"content_b64\":\"QUJD\",",
		"\"content_b64\":7,", "\"op\":\"delete\",",
		"\"op\":\"mkdir\",", "\"lsn\":0,", "\"vec_src\":\"none\",",
	};
	for (size_t k = 0; k < sizeof(extra) / sizeof(*extra); k++) {
		size_t el = strlen(extra[k]);
		char *w = malloc(n + el);
		REQUIRE(w);
		memcpy(w, body, cut + 1);       /* up to the ',' */
		memcpy(w + cut + 1, extra[k], el);
		memcpy(w + cut + 1 + el, body + cut + 1, n - cut - 1);
		if (both_ways(w, n + el, &a, &b))
			accepted++;
		else
			refused++;
		/* or right after the '{' */
		memcpy(w, body, 1);
		memcpy(w + 1, extra[k], el);
		memcpy(w + 1 + el, body + 1, n - 1);
		if (both_ways(w, n + el, &a, &b))
			accepted++;
		else
			refused++;
		free(w);
	}
	/* the JSON before the content cut short */
	for (size_t len = 1; len < cut; len++) {
		memcpy(m, body, len);
		memcpy(m + len, body + cut, n - cut);
		if (both_ways(m, len + n - cut, &a, &b))
			accepted++;
		else
			refused++;
	}
	CHECK(accepted > 0 && refused > 0);
	printf("   %d changed lines accepted, %d refused, both ways alike\n",
	       accepted, refused);
	free(m);
	free(body);
	free(content);
	t4dx_entry_clear(&r.e);
	t4dx_buf_free(&line);
	t4dx_buf_free(&a);
	t4dx_buf_free(&b);
}

static void test_split_decode(void)
{
	split_decode(false);
	split_decode(true);
}

/* Random values for a large text content, made of the pieces that matter
 * to a JSON string (every escape, \u with surrogates and bad hex, \/,
 * raw controls, quotes, lone backslashes, UTF-8 valid and not), sealed
 * with a right CRC: the in-place decoder and json-c must agree on
 * each, and on its bytes. */
static void test_split_fuzz(void)
{
	static const char *const piece[] = {
		"a", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t",
		"\\u0000", "\\u0001", "\\u001f", "\\u001F", "\\u0020",
		"\\u007f", "\\u00e9", "\\u00E9", "\\u0100", "\\ud83d\\ude00",
		"\\uD83D\\uDE00", "\\ud83d", "\\ude00", "\\ud83dx", "\\u12",
		"\\u00g0", "\\u0g00", "\\x", "\\a", "\\'", "\\U0041", "\\",
		"\"", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
		"\xf0\x9f\x98\x80", "\xc3", "\x80", "\xed\xa0\x80", "\xc0\xaf",
		"\xf4\x90\x80\x80", "\xff", " ", "}", ",\"crc\":1}", "\\u00",
	};
	const size_t np = sizeof(piece) / sizeof(*piece);
	/* the rest of a put's fields, from a real line */
	struct t4dx_rec r = { .lsn = 9, .op = T4DX_OP_PUT };
	full_entry(&r.e, "f", 1, "x", 1);
	struct t4dx_buf line = { 0 }, a = { 0 }, b = { 0 };
	struct t4dx_rec out;
	round_trip(&r, &line, &out);
	t4dx_entry_clear(&out.e);
	const char *key = memmem(line.p, line.len, ",\"content\":\"", 12);
	REQUIRE(key);
	size_t pre = (size_t)(key - (const char *)line.p);
	size_t cap = pre + 12 + 66000 + 64 * 40;
	char *body = malloc(cap);
	REQUIRE(body);
	memcpy(body, line.p, pre);
	memcpy(body + pre, ",\"content\":\"", 12);
	int accepted = 0, refused = 0;
	for (int round = 0; round < 3000; round++) {
		size_t n = pre + 12;
		/* mostly plain text past the shortcut's 64 KiB, then pieces */
		size_t plain = 65536 + below(300);
		size_t at = below(plain);
		memset(body + n, 'p', plain);
		n += plain;
		int k = 1 + (int)below(round % 4 ? 3 : 40);
		char *mid = malloc(64 * 40);
		REQUIRE(mid);
		size_t ml = 0;
		for (int i = 0; i < k; i++) {
			const char *s = piece[below(np)];
			memcpy(mid + ml, s, strlen(s));
			ml += strlen(s);
		}
		/* the pieces at the start, the end, or inside the text */
		size_t where = round % 3 == 0 ? pre + 12 :
			       round % 3 == 1 ? n : pre + 12 + at;
		memmove(body + where + ml, body + where, n - where);
		memcpy(body + where, mid, ml);
		n += ml;
		free(mid);
		body[n++] = '"';
		if (both_ways(body, n, &a, &b))
			accepted++;
		else
			refused++;
	}
	CHECK(accepted > 0 && refused > 0);
	printf("   %d random values accepted, %d refused, both ways alike\n",
	       accepted, refused);
	free(body);
	t4dx_entry_clear(&r.e);
	t4dx_buf_free(&line);
	t4dx_buf_free(&a);
	t4dx_buf_free(&b);
}

/* The shortcut is taken at all: a large text content is decoded where it
 * lies, into a blob with room for its escaped text (json-c's way copies
 * the decoded string into a blob of its own size).  Without this check
 * every test above passes with a shortcut that always gives up, and the
 * replay of a 1 GiB text item takes twice the memory again. */
static void test_split_taken(void)
{
	size_t n = 1u << 20;
	unsigned char *p = malloc(n);
	REQUIRE(p);
	for (size_t i = 0; i < n; i++)
		p[i] = i % 2 ? '\n' : 'a';       /* escaped: 1.5 MiB */
	struct t4dx_rec r = { .lsn = 3, .op = T4DX_OP_PUT }, d;
	full_entry(&r.e, "t", 1, p, n);
	struct t4dx_buf line = { 0 };
	REQUIRE(t4dx_rec_encode(&r, &line) == 0);
	CHECK(has_key(&line, "content"));
	REQUIRE(t4dx_rec_decode((char *)line.p, line.len - 1, &d) == 0);
	CHECK(same_content(&r.e, &d.e));
	CHECK(malloc_usable_size(d.e.content) >= n + n / 2);
	t4dx_entry_clear(&d.e);
	/* the same line with a key after the content: json-c decodes it */
	struct t4dx_buf a = { 0 }, b = { 0 };
	const char *crc = memmem(line.p, line.len, ",\"crc\":", 7);
	REQUIRE(crc);
	CHECK(both_ways((const char *)line.p,
			(size_t)(crc - (const char *)line.p), &a, &b));
	REQUIRE(t4dx_rec_decode((char *)b.p, b.len, &d) == 0);
	CHECK(malloc_usable_size(d.e.content) < n + n / 2);
	t4dx_entry_clear(&d.e);
	t4dx_entry_clear(&r.e);
	t4dx_buf_free(&line);
	t4dx_buf_free(&a);
	t4dx_buf_free(&b);
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
	RUN(test_vectors);
	RUN(test_utf8);
	RUN(test_escapes);
	RUN(test_json_c_identity);
	RUN(test_json_c_edges);
	RUN(test_large);
	RUN(test_escape_heavy);
	RUN(test_long_text_pieces);
	RUN(test_base64_decode);
	RUN(test_split_decode);
	RUN(test_split_fuzz);
	RUN(test_split_taken);
	UNIT_DONE();
}
