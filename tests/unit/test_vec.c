/*
 * test_vec.c - an item's vector: checks, the little-endian bytes, the
 * base64 of a record and the JSON array of user.t4dx.vector.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "unit.h"
#include "vec.h"

static void test_new_and_bytes(void)
{
	float x[3] = { 1.0f, -0.5f, 3.25e-7f };
	struct t4dx_blob *v = t4dx_vec_new(x, 3);
	REQUIRE(v);
	CHECK_EQ_INT(t4dx_vec_dim(v), 3);
	/* 1.0f is 0x3f800000: little-endian whatever the host */
	static const unsigned char one[4] = { 0x00, 0x00, 0x80, 0x3f };
	CHECK(!memcmp(v->data, one, 4));
	float y[3];
	t4dx_vec_get(v, y);
	CHECK(!memcmp(x, y, sizeof(x)));
	CHECK(!t4dx_vec_check(v->data, v->len));
	CHECK(t4dx_vec_check(v->data, 11) == EINVAL);   /* not whole floats */
	CHECK(t4dx_vec_check(v->data, 0) == EINVAL);
	t4dx_blob_unref(v);

	float bad[2] = { 1.0f, NAN };
	errno = 0;
	CHECK(!t4dx_vec_new(bad, 2) && errno == EINVAL);
	bad[1] = INFINITY;
	CHECK(!t4dx_vec_new(bad, 2) && errno == EINVAL);
	CHECK(!t4dx_vec_new(x, 0) && errno == EINVAL);
	static float big[T4DX_VEC_DIM_MAX + 1];
	CHECK(!t4dx_vec_new(big, T4DX_VEC_DIM_MAX + 1) && errno == EINVAL);
	v = t4dx_vec_new(big, T4DX_VEC_DIM_MAX);
	CHECK(v && t4dx_vec_dim(v) == T4DX_VEC_DIM_MAX);
	t4dx_blob_unref(v);
}

static void test_src_names(void)
{
	for (int s = T4DX_VEC_NONE; s <= T4DX_VEC_HAND; s++) {
		const char *n = t4dx_vec_src_name(s);
		CHECK_EQ_INT(t4dx_vec_src_parse(n, strlen(n)), s);
	}
	CHECK_EQ_INT(t4dx_vec_src_parse("hands", 5), -1);
	CHECK_EQ_INT(t4dx_vec_src_parse("han", 3), -1);
}

static void test_b64(void)
{
	float x[5] = { 0.1f, -0.2f, 0.3f, 1e-38f, -3.4e38f };
	struct t4dx_blob *v = t4dx_vec_new(x, 5), *w = NULL;
	REQUIRE(v);
	char s[64];
	size_t n = t4dx_base64_put(s, v->data, v->len);
	CHECK_EQ_INT(n, t4dx_vec_b64_len(v));
	CHECK(!t4dx_vec_from_b64(s, n, &w));
	CHECK(t4dx_vec_equal(v, w));
	t4dx_blob_unref(w);
	/* a NaN's bytes, a length that is not whole floats, no bytes */
	float nan = NAN;
	n = t4dx_base64_put(s, (const unsigned char *)&nan, 4);
	CHECK(t4dx_vec_from_b64(s, n, &w) == T4DX_ECORRUPT && !w);
	n = t4dx_base64_put(s, v->data, 6);
	CHECK(t4dx_vec_from_b64(s, n, &w) == T4DX_ECORRUPT && !w);
	CHECK(t4dx_vec_from_b64("", 0, &w) == T4DX_ECORRUPT);
	CHECK(t4dx_vec_from_b64("AAAA*AAA", 8, &w) == T4DX_ECORRUPT);
	t4dx_blob_unref(v);
}

static void test_json(void)
{
	struct t4dx_blob *v = NULL, *w = NULL;
	static const char in[] = "[0.1, -0.2,3e-3 , 1, -0]\n";   /* -0: 0 */
	CHECK(!t4dx_vec_from_json(in, strlen(in), 5, &v));
	REQUIRE(v);
	float x[5];
	t4dx_vec_get(v, x);
	CHECK(x[0] == 0.1f && x[1] == -0.2f && x[2] == 3e-3f && x[3] == 1.0f);
	struct t4dx_buf b = { 0 };
	CHECK(!t4dx_vec_to_json(v, &b));
	/* the shortest spelling that reads back to the same float */
	CHECK(b.len == strlen("[0.1,-0.2,0.003,1,0]") &&
	      !memcmp(b.p, "[0.1,-0.2,0.003,1,0]", b.len));
	CHECK(!t4dx_vec_from_json((const char *)b.p, b.len, 5, &w));
	CHECK(t4dx_vec_equal(v, w));
	t4dx_blob_unref(w);
	t4dx_blob_unref(v);

	/* every float survives the round trip, the awkward ones too */
	float y[6] = { 1.0f / 3, 16777217.0f, 1.17549435e-38f, 1e-45f,
		       3.40282347e38f, -2.5f };
	v = t4dx_vec_new(y, 6);
	b.len = 0;
	CHECK(!t4dx_vec_to_json(v, &b));
	CHECK(!t4dx_vec_from_json((const char *)b.p, b.len, 6, &w));
	CHECK(t4dx_vec_equal(v, w));
	t4dx_blob_unref(w);
	t4dx_blob_unref(v);
	t4dx_buf_free(&b);

	static const char *const bad[] = {
		"[1,2]",                /* wrong dim */
		"[1,2,3,4]",
		"[1,2,\"3\"]",
		"[1,2,null]",
		"[1,2,1e39]",           /* beyond a float */
		"[1,2,3] x",
		"{\"a\":1}",
		"[1,2,[3]]",
		"",
		"[1,2,NaN]",
		"[1,2,Infinity]",
		/* digits beyond 64 bits: json-c reads them as the nearest
		 * end of its integers (UINT64_MAX, INT64_MIN) without an
		 * error; 1e41 spelt out is no more a float than 1e41 */
		"[1,2,100000000000000000000000000000000000000000]",
		"[1,2,-100000000000000000000000000000000000000000]",
	};
	/* large integers that do fit a float keep their value */
	static const char big[] = "[18446744073709551616,-9223372036854775809,"
				  "340282346638528859811704183484516925440]";
	v = NULL;
	CHECK(!t4dx_vec_from_json(big, strlen(big), 3, &v));
	REQUIRE(v);
	t4dx_vec_get(v, x);
	CHECK(x[0] == 0x1p64f && x[1] == -0x1p63f && x[2] == 0x1.fffffep127f);
	t4dx_blob_unref(v);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = NULL;
		int rc = t4dx_vec_from_json(bad[i], strlen(bad[i]), 3, &v);
		if (rc != EINVAL || v)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK(rc == EINVAL && !v);
	}
}

/* An integer past 64 bits is a JSON number like any other and fits a
 * float: it is kept as written, not as the integer parser's clamp (from
 * review: 1e23 written as digits read back as 1.8e19, its negative as
 * -9.2e18, silently). */
static void test_json_big_integers(void)
{
	static const char in[] =
		"[99999999999999999999999, -99999999999999999999999, "
		"18446744073709551616, 9223372036854775807]";
	struct t4dx_blob *v = NULL;
	CHECK(!t4dx_vec_from_json(in, strlen(in), 4, &v));
	REQUIRE(v);
	float x[4];
	t4dx_vec_get(v, x);
	CHECK(x[0] == 1e23f && x[1] == -1e23f);
	CHECK(x[2] == 18446744073709551616.0f);
	CHECK(x[3] == 9223372036854775807.0f);
	if (x[0] != 1e23f || x[1] != -1e23f)
		fprintf(stderr, "read %g %g\n", x[0], x[1]);
	t4dx_blob_unref(v);
}

int main(void)
{
	RUN(test_new_and_bytes);
	RUN(test_src_names);
	RUN(test_b64);
	RUN(test_json);
	RUN(test_json_big_integers);
	UNIT_DONE();
}
