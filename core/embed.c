/*
 * embed.c - the builtin embedder: feature hashing of a content's words.
 *
 * WHAT IT CAPTURES.  Words (runs of ASCII letters and digits, lowercased,
 * and of non-ASCII code points other than the punctuation and symbol
 * blocks listed in word_cp()), each word alone, each pair of consecutive
 * words, and the character trigrams of each word padded with a start and
 * an end mark ("tea" gives ^te, tea, ea$).  So texts sharing words are
 * close, texts sharing word order closer, and texts sharing spellings (a
 * typo, an inflection, a word glued to another) still somewhat close.  It
 * does not know synonyms, translations or meaning ("car" and "automobile"
 * are unrelated), folds the case of ASCII letters only, and treats a run
 * of CJK text without spaces as one word (its trigrams then carry it).
 *
 * VECTOR.  Each distinct feature f with tf occurrences adds
 *     sign(f) * family_weight * log2(1 + tf)
 * to bucket(f), for bucket in 0..dim-1; family weights are 4 for words, 2
 * for word pairs, 1 for trigrams.  bucket and sign come from a 64-bit hash
 * of the feature (FNV-1a over the code points, three bytes each, lowest
 * first, then the splitmix64 finaliser).  The vector is then divided by
 * its L2 norm.  A content without any feature, or whose buckets all
 * cancel, gets no vector.
 *
 * REPRODUCIBILITY.  Same bytes, same vector, on every machine and with
 * every compiler: hashing is over values, never over the memory layout of
 * an integer (no endianness), nothing depends on the locale, log2 is
 * computed in fixed point with integers (a libm's log may differ in the
 * last bit between versions), and the sums are integers, so their order
 * does not matter.  Floating point enters only at the end, in operations
 * IEEE 754 rounds exactly (integer to double, sqrt, division, double to
 * float) on values chosen so that no sum of squares loses a bit; this
 * assumes FLT_EVAL_METHOD 0 (every x86-64, arm64 and riscv64 target).
 * The golden vectors of test_embed pin all of it: any change to them is
 * a new T4DX_EMBED_VERSION.
 *
 * BINARY AND LARGE CONTENT.  A NUL byte or invalid UTF-8 (a stray or
 * missing continuation byte, an overlong form, a surrogate, a code point
 * over U+10FFFF, a sequence cut by the end of the content) in the first
 * T4DX_EMBED_PROBE_BYTES makes a content binary: no vector, since a
 * histogram of bytes would only sit near other binaries and pollute text
 * queries.  Past the probe, invalid bytes only separate words.  Only the
 * first T4DX_EMBED_MAX_BYTES are read: about one feature per byte at
 * most, so the table of distinct features stays under 2^21 entries.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"

#define FNV_OFFSET      0xcbf29ce484222325ULL
#define FNV_PRIME       0x100000001b3ULL

/* Code points beyond Unicode: the padding of trigrams. */
#define PAD_START       0x110001u
#define PAD_END         0x110002u

enum family { FAM_WORD = 1, FAM_PAIR = 2, FAM_TRI = 3 };
static const int64_t family_weight[4] = { 0, 4, 2, 1 };

/* Largest magnitude a bucket keeps before its square is summed: 4096
 * squares below 2^40 add up below 2^52, exactly in a double. */
#define MAG_BITS        20

/* ---- UTF-8 ------------------------------------------------------------ */

/* The code point at p (p < end) in *cp and its length; 0 when the bytes
 * there are not UTF-8 (a stray continuation byte, a bad lead, a missing
 * continuation, an overlong form, a surrogate, above U+10FFFF); -1 when
 * end cuts a sequence that was valid so far. */
static int utf8_next(const unsigned char *p, const unsigned char *end,
		     uint32_t *cp)
{
	unsigned c = p[0], n, i;
	uint32_t v, min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c < 0xc2)
		return 0;
	if (c < 0xe0) {
		n = 2, v = c & 0x1f, min = 0x80;
	} else if (c < 0xf0) {
		n = 3, v = c & 0x0f, min = 0x800;
	} else if (c < 0xf5) {
		n = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if (p + i >= end)
			return -1;
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return (int)n;
}

bool t4dx_embed_is_binary(const void *buf, size_t len)
{
	const unsigned char *p = buf, *end = p + len;
	const unsigned char *probe = p + (len < T4DX_EMBED_PROBE_BYTES ?
					  len : T4DX_EMBED_PROBE_BYTES);
	uint32_t cp;

	while (p < probe) {
		/* decoded against the real end: a character that straddles
		 * the probe's edge is whole, one cut by the end is not */
		int n = utf8_next(p, end, &cp);
		if (n <= 0 || cp == 0)
			return true;
		p += n;
	}
	return false;
}

/* Non-ASCII code points that separate words rather than spell them: the
 * Latin-1 controls, punctuation and symbols (with x and the division
 * sign), the blocks of punctuation, symbols, arrows, shapes and
 * dingbats, CJK punctuation, the byte order mark, fullwidth punctuation,
 * and the symbol and emoji planes.  Letters of every script, digits of
 * other scripts and private-use code points spell words. */
static const uint32_t sep_ranges[][2] = {
	{ 0x0080, 0x00bf }, { 0x00d7, 0x00d7 }, { 0x00f7, 0x00f7 },
	{ 0x2000, 0x2bff }, { 0x2e00, 0x2e7f }, { 0x3000, 0x303f },
	{ 0xfe10, 0xfe1f }, { 0xfe30, 0xfe6f }, { 0xfeff, 0xfeff },
	{ 0xff00, 0xff0f }, { 0xff1a, 0xff20 }, { 0xff3b, 0xff40 },
	{ 0xff5b, 0xff65 }, { 0x1f000, 0x1faff },
};

static bool word_cp(uint32_t c)
{
	size_t i;

	if (c < 0x80)
		return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		       (c >= '0' && c <= '9');
	for (i = 0; i < sizeof(sep_ranges) / sizeof(sep_ranges[0]); i++)
		if (c >= sep_ranges[i][0] && c <= sep_ranges[i][1])
			return false;
	return true;
}

/* ---- hashing ------------------------------------------------------------ */

static uint64_t fnv_byte(uint64_t h, unsigned b)
{
	return (h ^ b) * FNV_PRIME;
}

/* A code point (at most 21 bits) as three bytes, lowest first. */
static uint64_t fnv_cp(uint64_t h, uint32_t cp)
{
	h = fnv_byte(h, cp & 0xff);
	h = fnv_byte(h, (cp >> 8) & 0xff);
	return fnv_byte(h, (cp >> 16) & 0xff);
}

/* The splitmix64 finaliser: every input bit reaches every output bit. */
static uint64_t mix64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* A table key: the mixed hash with its family in the low two bits (so
 * never 0, the empty slot).  Bit 2 is the sign, the high 32 bits pick
 * the bucket. */
static uint64_t feature_key(uint64_t h, enum family fam)
{
	return (mix64(h) & ~3ULL) | (uint64_t)fam;
}

/* ---- distinct features and their counts --------------------------------- */

struct tf_table {
	uint64_t *keys;
	uint32_t *counts;
	size_t cap, n;          /* cap: a power of two */
};

static int tf_grow(struct tf_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024, i, j;
	uint64_t *keys = calloc(cap, sizeof(*keys));
	uint32_t *counts = calloc(cap, sizeof(*counts));

	if (!keys || !counts) {
		free(keys);
		free(counts);
		return ENOMEM;
	}
	for (i = 0; i < t->cap; i++) {
		if (!t->keys[i])
			continue;
		for (j = (t->keys[i] >> 3) & (cap - 1); keys[j];
		     j = (j + 1) & (cap - 1))
			;
		keys[j] = t->keys[i];
		counts[j] = t->counts[i];
	}
	free(t->keys);
	free(t->counts);
	t->keys = keys;
	t->counts = counts;
	t->cap = cap;
	return 0;
}

static int tf_add(struct tf_table *t, uint64_t key)
{
	size_t j;

	if (2 * (t->n + 1) > t->cap) {
		int rc = tf_grow(t);
		if (rc)
			return rc;
	}
	for (j = (key >> 3) & (t->cap - 1); t->keys[j];
	     j = (j + 1) & (t->cap - 1)) {
		if (t->keys[j] == key) {
			t->counts[j]++;
			return 0;
		}
	}
	t->keys[j] = key;
	t->counts[j] = 1;
	t->n++;
	return 0;
}

/* ---- the walk over words ------------------------------------------------ */

struct walk {
	struct tf_table tf;
	bool in_word, have_prev;
	uint64_t word_h;        /* FNV state of the current word */
	uint64_t prev_h;        /* finished hash of the previous word */
	uint32_t c1, c2;        /* the last two code points, padding included */
	int rc;
};

static void add_feature(struct walk *w, uint64_t h, enum family fam)
{
	if (!w->rc)
		w->rc = tf_add(&w->tf, feature_key(h, fam));
}

static void add_trigram(struct walk *w, uint32_t a, uint32_t b, uint32_t c)
{
	uint64_t h = fnv_byte(FNV_OFFSET, 't');

	h = fnv_cp(fnv_cp(fnv_cp(h, a), b), c);
	add_feature(w, h, FAM_TRI);
}

static void word_char(struct walk *w, uint32_t cp)
{
	if (cp >= 'A' && cp <= 'Z')
		cp += 'a' - 'A';
	if (!w->in_word) {
		w->in_word = true;
		w->word_h = fnv_byte(FNV_OFFSET, 'w');
		w->c1 = 0;
		w->c2 = PAD_START;
	}
	w->word_h = fnv_cp(w->word_h, cp);
	if (w->c1)
		add_trigram(w, w->c1, w->c2, cp);
	w->c1 = w->c2;
	w->c2 = cp;
}

static void word_end(struct walk *w)
{
	uint64_t h;

	if (!w->in_word)
		return;
	w->in_word = false;
	add_trigram(w, w->c1, w->c2, PAD_END);
	h = mix64(w->word_h);
	add_feature(w, h, FAM_WORD);
	if (w->have_prev) {
		/* ordered: the rotation tells "a b" from "b a" */
		uint64_t pair = w->prev_h ^ (h << 29 | h >> 35) ^ 'p';
		add_feature(w, pair, FAM_PAIR);
	}
	w->prev_h = h;
	w->have_prev = true;
}

/* log2(x) for x >= 1 in fixed point with 16 fractional bits, truncated:
 * the bits of the fraction come one at a time from squaring the
 * mantissa. */
static uint32_t log2_q16(uint32_t x)
{
	int e = 31 - __builtin_clz(x), i;
	uint64_t m = ((uint64_t)x << 31) >> e;  /* in [2^31, 2^32) */
	uint32_t r = (uint32_t)e << 16;

	for (i = 15; i >= 0; i--) {
		m = (m * m) >> 31;
		if (m >= 1ULL << 32) {
			m >>= 1;
			r |= 1u << i;
		}
	}
	return r;
}

/* log2_q16(tf + 1) for the small counts nearly every feature has,
 * computed once by the same function (so the same values). */
#define LOG_TABLE 64
static uint32_t log_table[LOG_TABLE];
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void log_table_fill(void)
{
	for (uint32_t tf = 0; tf < LOG_TABLE; tf++)
		log_table[tf] = log2_q16(tf + 1);
}

static uint32_t log_tf(uint32_t tf)
{
	return tf < LOG_TABLE ? log_table[tf] : log2_q16(tf + 1);
}

int t4dx_embed(const void *buf, size_t len, uint32_t dim, float *out)
{
	const unsigned char *p = buf, *end;
	struct walk w;
	int64_t *acc = NULL;
	uint64_t maxabs = 0, sumsq = 0;
	double norm;
	unsigned shift = 0;
	size_t i;
	int rc = 0;

	if (dim < 1 || dim > T4DX_EMBED_DIM_MAX)
		return EINVAL;
	if (!len || t4dx_embed_is_binary(buf, len))
		return ENODATA;
	end = p + (len < T4DX_EMBED_MAX_BYTES ? len : T4DX_EMBED_MAX_BYTES);

	memset(&w, 0, sizeof(w));
	(void)pthread_once(&log_once, log_table_fill);
	/* room for every feature of a small content at once: about one
	 * trigram per byte, and a word and a pair per word, so that the
	 * table is not grown and rehashed on the way */
	while (!w.rc && 2 * (size_t)(end - p) > w.tf.cap &&
	       w.tf.cap < 8192)
		w.rc = tf_grow(&w.tf);
	while (p < end && !w.rc) {
		uint32_t cp;
		int n = utf8_next(p, end, &cp);

		if (n <= 0) {           /* past the probe: a separator */
			word_end(&w);
			p++;
			continue;
		}
		if (word_cp(cp))
			word_char(&w, cp);
		else
			word_end(&w);
		p += n;
	}
	word_end(&w);
	rc = w.rc;
	if (rc)
		goto out;

	acc = calloc(dim, sizeof(*acc));
	if (!acc) {
		rc = ENOMEM;
		goto out;
	}
	for (i = 0; i < w.tf.cap; i++) {
		uint64_t k = w.tf.keys[i];
		int64_t v;

		if (!k)
			continue;
		v = family_weight[k & 3] * log_tf(w.tf.counts[i]);
		acc[((k >> 32) * dim) >> 32] += (k & 4) ? -v : v;
	}

	for (i = 0; i < dim; i++) {
		uint64_t a = (uint64_t)(acc[i] < 0 ? -acc[i] : acc[i]);
		if (a > maxabs)
			maxabs = a;
	}
	while (maxabs >> shift >= 1ULL << MAG_BITS)
		shift++;
	for (i = 0; i < dim; i++) {
		int64_t a = acc[i] < 0 ? -(-acc[i] >> shift) : acc[i] >> shift;
		acc[i] = a;
		sumsq += (uint64_t)(a * a);
	}
	if (!sumsq) {
		rc = ENODATA;
		goto out;
	}
	norm = sqrt((double)sumsq);
	for (i = 0; i < dim; i++)
		out[i] = (float)((double)acc[i] / norm);
out:
	free(acc);
	free(w.tf.keys);
	free(w.tf.counts);
	return rc;
}
