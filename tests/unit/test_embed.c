/* test_embed.c - the builtin embedder: the same bytes give the same
 * vector (and the vectors pinned below, on any machine), vectors have unit
 * norm, related texts are closer than unrelated ones, and what gets no
 * vector (empty, binary, no word) is refused without touching out. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "unit.h"

static float vec[T4DX_EMBED_DIM_MAX], vec2[T4DX_EMBED_DIM_MAX];

static int embed_str(const char *s, uint32_t dim, float *out)
{
	return t4dx_embed(s, strlen(s), dim, out);
}

static double dot(const float *a, const float *b, uint32_t dim)
{
	double s = 0;
	uint32_t i;

	for (i = 0; i < dim; i++)
		s += (double)a[i] * b[i];
	return s;
}

static bool unit_norm(const float *v, uint32_t dim)
{
	return fabs(dot(v, v, dim) - 1.0) < 1e-5;
}

static double cosine(const char *a, const char *b)
{
	REQUIRE(embed_str(a, 256, vec) == 0);
	REQUIRE(embed_str(b, 256, vec2) == 0);
	return dot(vec, vec2, 256);
}

static void test_deterministic(void)
{
	const char *s = "The quick brown fox jumps over the lazy dog, twice.";
	char *copy = malloc(strlen(s) + 2);
	int i;

	REQUIRE(copy);
	REQUIRE(embed_str(s, 256, vec) == 0);
	/* another address, another alignment: same vector, bit for bit */
	strcpy(copy + 1, s);
	for (i = 0; i < 3; i++) {
		REQUIRE(embed_str(copy + 1, 256, vec2) == 0);
		CHECK(!memcmp(vec, vec2, 256 * sizeof(float)));
	}
	free(copy);
}

/* Computed once by this embedder (version 1) and pinned: a change here
 * means every stored vector changes, so T4DX_EMBED_VERSION must too. */
struct golden {
	const char *text;
	unsigned repeat;        /* the text this many times over */
	uint32_t dim;
	unsigned nz;            /* components that are not 0 */
	struct { unsigned i; float v; } c[4];
};

static const struct golden goldens[] = {
	{ "green tea", 1, 256, 11, { { 29, -0x1.34bf64p-1f }, { 107, 0x1.34bf64p-2f }, { 128, 0x1.34bf64p-3f }, { 213, 0x1.34bf64p-3f } } },
	{ "The quick brown fox jumps over the lazy dog.", 1, 64, 28, { { 3, 0x1.1c8a58p-3f }, { 22, -0x1.1c8a58p-4f }, { 44, 0x1.1c8a58p-2f }, { 62, -0x1.1c8a58p-4f } } },
	{ "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 1, 1000, 10, { { 80, 0x1.38512cp-3f }, { 516, -0x1.38512cp-3f }, { 770, 0x1.38512cp-1f }, { 944, -0x1.38512cp-2f } } },
	{ "a\n", 1, 1, 1, { { 0, 0x1p+0f }, { 0, 0x1p+0f }, { 0, 0x1p+0f }, { 0, 0x1p+0f } } },
	{ "memories, found by meaning\n", 1, 4096, 28, { { 162, 0x1.9cae8p-2f }, { 1381, 0x1.9cae8p-4f }, { 2927, -0x1.9cae8p-2f }, { 3991, -0x1.9cae8p-4f } } },
	{ "green tea ", 40000, 16, 5, { { 1, -0x1.6a09e6p-2f }, { 4, 0x1.6a09e6p-3f }, { 9, -0x1.6a09e6p-3f }, { 13, 0x1.6a09e6p-3f } } },
};

static void test_golden(void)
{
	size_t g;

	for (g = 0; g < sizeof(goldens) / sizeof(goldens[0]); g++) {
		const struct golden *G = &goldens[g];
		size_t tl = strlen(G->text);
		char *t = malloc(tl * G->repeat);
		unsigned nz = 0, i;

		REQUIRE(t);
		for (i = 0; i < G->repeat; i++)
			memcpy(t + i * tl, G->text, tl);
		REQUIRE(t4dx_embed(t, tl * G->repeat, G->dim, vec) == 0);
		free(t);
		for (i = 0; i < G->dim; i++)
			nz += vec[i] != 0;
		CHECK_EQ_INT(nz, G->nz);
		for (i = 0; i < 4; i++) {
			if (vec[G->c[i].i] != G->c[i].v) {
				fprintf(stderr, "golden %zu: [%u] = %a, want %a\n",
					g, G->c[i].i, vec[G->c[i].i], G->c[i].v);
				unit_failures++;
			}
		}
	}
}

static void test_unit_norm(void)
{
	static const char *texts[] = {
		"a", "green tea", "Ünïcödé wörds, ǅemal and 日本語のテキスト",
		"one two three four five six seven eight nine ten",
	};
	size_t t;

	for (t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
		REQUIRE(embed_str(texts[t], 256, vec) == 0);
		CHECK(unit_norm(vec, 256));
	}
}

static void test_all_dims(void)
{
	const char *s = "memories are found by what they say";
	uint32_t dim;

	for (dim = 1; dim <= T4DX_EMBED_DIM_MAX; dim++) {
		int rc = embed_str(s, dim, vec);
		if (rc || !unit_norm(vec, dim)) {
			fprintf(stderr, "dim %u: rc %d\n", dim, rc);
			unit_failures++;
			break;
		}
	}
	CHECK_EQ_INT(embed_str(s, 0, vec), EINVAL);
	CHECK_EQ_INT(embed_str(s, T4DX_EMBED_DIM_MAX + 1, vec), EINVAL);
}

static void test_similar_closer(void)
{
	double same = cosine("green tea", "tea that is green");
	double other = cosine("green tea", "stock market crash");
	double typo = cosine("green tea", "gren tea");

	fprintf(stderr, "cos: reworded %.3f, typo %.3f, unrelated %.3f\n",
		same, typo, other);
	CHECK(same > other + 0.3);
	CHECK(typo > other + 0.3);
	CHECK(cosine("a cup of green tea in the morning",
		     "green tea every morning") >
	      cosine("a cup of green tea in the morning",
		     "the stock market crashed this morning"));
}

/* Case of ASCII letters, punctuation and spacing do not matter; the
 * order of words does (pairs), and so does the case of other letters. */
static void test_normalisation(void)
{
	REQUIRE(embed_str("green tea", 256, vec) == 0);
	REQUIRE(embed_str("  GREEN, Tea!\n", 256, vec2) == 0);
	CHECK(!memcmp(vec, vec2, sizeof(float) * 256));
	REQUIRE(embed_str("green\xe2\x80\x94tea\xc2\xa0", 256, vec2) == 0);
	CHECK(!memcmp(vec, vec2, sizeof(float) * 256));
	REQUIRE(embed_str("tea green", 256, vec2) == 0);
	CHECK(memcmp(vec, vec2, sizeof(float) * 256));
	REQUIRE(embed_str("caf\xc3\xa9", 256, vec) == 0);
	REQUIRE(embed_str("CAF\xc3\x89", 256, vec2) == 0);
	CHECK(memcmp(vec, vec2, sizeof(float) * 256));
}

/* out holds a sentinel that a refused call must leave alone. */
static void check_novec(const void *buf, size_t len)
{
	uint32_t i;
	int rc;

	for (i = 0; i < 64; i++)
		vec[i] = 42.0f;
	rc = t4dx_embed(buf, len, 64, vec);
	CHECK_EQ_INT(rc, ENODATA);
	for (i = 0; i < 64; i++)
		if (vec[i] != 42.0f) {
			fprintf(stderr, "out changed at %u\n", i);
			unit_failures++;
			break;
		}
}

static void test_no_vector(void)
{
	check_novec("", 0);
	check_novec("   \n\t ", 6);
	check_novec("... !!! ---", 11);
	check_novec("\xe2\x80\x94\xc2\xbf?", 6);      /* separators only */
	check_novec("text\0more", 9);                   /* NUL */
	check_novec("text \xff more", 11);              /* bad lead */
	check_novec("text \x80 more", 11);              /* stray continuation */
	check_novec("caf\xc3", 4);                      /* cut by the end */
	check_novec("\xc0\xaf", 2);                     /* overlong */
	check_novec("\xed\xa0\x80", 3);                 /* surrogate */
	check_novec("\xf4\x90\x80\x80", 4);             /* above U+10FFFF */
	CHECK(!t4dx_embed_is_binary("", 0));
	CHECK(!t4dx_embed_is_binary("caf\xc3\xa9", 5));
}

/* The probe covers 8 KiB: a bad byte after it separates words, a
 * character across its edge is whole. */
static void test_probe_edge(void)
{
	size_t n = T4DX_EMBED_PROBE_BYTES + 64;
	char *b = malloc(n);
	size_t i;

	REQUIRE(b);
	for (i = 0; i < n; i++)
		b[i] = "word "[i % 5];
	b[T4DX_EMBED_PROBE_BYTES - 1] = '\xc3';
	b[T4DX_EMBED_PROBE_BYTES] = '\xa9';
	CHECK(!t4dx_embed_is_binary(b, n));
	CHECK_EQ_INT(t4dx_embed(b, n, 64, vec), 0);
	b[T4DX_EMBED_PROBE_BYTES + 10] = '\xff';
	CHECK(!t4dx_embed_is_binary(b, n));
	CHECK_EQ_INT(t4dx_embed(b, n, 64, vec), 0);
	b[T4DX_EMBED_PROBE_BYTES - 10] = '\xff';
	CHECK(t4dx_embed_is_binary(b, n));
	CHECK_EQ_INT(t4dx_embed(b, n, 64, vec), ENODATA);
	free(b);
}

/* Past T4DX_EMBED_MAX_BYTES nothing counts; a text of distinct words up
 * to the limit (the most features it can hold) still embeds. */
static void test_large(void)
{
	size_t n = 3 * T4DX_EMBED_MAX_BYTES, i;
	char *b = malloc(n);
	uint64_t x = 1;

	REQUIRE(b);
	for (i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		b[i] = (x >> 60) < 3 ? ' ' : (char)('a' + (x >> 33) % 26);
	}
	REQUIRE(t4dx_embed(b, n, 256, vec) == 0);
	CHECK(unit_norm(vec, 256));
	REQUIRE(t4dx_embed(b, T4DX_EMBED_MAX_BYTES, 256, vec2) == 0);
	CHECK(!memcmp(vec, vec2, sizeof(float) * 256));
	memset(b + T4DX_EMBED_MAX_BYTES, 'z', n - T4DX_EMBED_MAX_BYTES);
	REQUIRE(t4dx_embed(b, n, 256, vec2) == 0);
	CHECK(!memcmp(vec, vec2, sizeof(float) * 256));
	free(b);
}

int main(void)
{
	RUN(test_deterministic);
	RUN(test_golden);
	RUN(test_unit_norm);
	RUN(test_all_dims);
	RUN(test_similar_closer);
	RUN(test_normalisation);
	RUN(test_no_vector);
	RUN(test_probe_edge);
	RUN(test_large);
	UNIT_DONE();
}
