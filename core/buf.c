/* buf.c - growable buffer and small encoding helpers (see buf.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

int t4dx_buf_reserve(struct t4dx_buf *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	size_t need = b->len + extra;
	if (need < b->len)
		return ENOMEM;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap * 2 > cap ? cap * 2 : need;
	unsigned char *p = realloc(b->p, cap);
	if (!p)
		return ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int t4dx_buf_add(struct t4dx_buf *b, const void *data, size_t len)
{
	if (t4dx_buf_reserve(b, len))
		return ENOMEM;
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

int t4dx_buf_addf(struct t4dx_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || t4dx_buf_reserve(b, (size_t)n + 1))
		return ENOMEM;
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int t4dx_buf_add_u8(struct t4dx_buf *b, uint8_t v)
{
	return t4dx_buf_add(b, &v, 1);
}

int t4dx_buf_add_u16(struct t4dx_buf *b, uint16_t v)
{
	unsigned char p[2] = { (unsigned char)v, (unsigned char)(v >> 8) };
	return t4dx_buf_add(b, p, 2);
}

int t4dx_buf_add_u32(struct t4dx_buf *b, uint32_t v)
{
	unsigned char p[4];
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return t4dx_buf_add(b, p, 4);
}

int t4dx_buf_add_u64(struct t4dx_buf *b, uint64_t v)
{
	unsigned char p[8];
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return t4dx_buf_add(b, p, 8);
}

void t4dx_buf_free(struct t4dx_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

bool t4dx_utf8_valid(const unsigned char *s, size_t len)
{
	const uint64_t ones = 0x0101010101010101ULL;
	size_t i = 0;
	while (i < len) {
		/* Eight bytes at once while all are in 1..0x7f: a NUL byte
		 * sets its top bit in v - ones (as the lowest one cannot
		 * be reached by a borrow), a byte >= 0x80 in v. */
		if (len - i >= 8) {
			uint64_t v;
			memcpy(&v, s + i, 8);
			if (!(((v - ones) | v) & ones << 7)) {
				i += 8;
				continue;
			}
		}
		unsigned char c = s[i];
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* overlong, surrogates, beyond U+10FFFF */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t t4dx_base64_put(char *out, const unsigned char *s, size_t len)
{
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)s[i + 1] << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	return (size_t)(o - out);
}

int t4dx_base64_encode(struct t4dx_buf *out, const unsigned char *s, size_t len)
{
	if (t4dx_buf_reserve(out, (len + 2) / 3 * 4))
		return ENOMEM;
	out->len += t4dx_base64_put((char *)out->p + out->len, s, len);
	return 0;
}

/* The value of each base64 character; 255 for every other byte (the
 * upper half of the table, bytes >= 0x80, is all 255). */
static const unsigned char b64val[256] = {
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 62, 255, 255, 255, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 255, 255, 255, 255, 255, 255,
	255, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 255, 255, 255, 255, 255,
	255, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 255, 255, 255, 255, 255,
	[128 ... 255] = 255,
};

/* A content of 16 MiB is 21 MiB of base64 in its record, decoded at
 * every replay of it: one table lookup per character and one check per
 * group, with the rules for '=' only in the last group. */
int t4dx_base64_decode(const char *s, size_t len, unsigned char *out,
		       size_t *outlen)
{
	const unsigned char *u = (const unsigned char *)s;
	if (len % 4)
		return EINVAL;
	size_t o = 0, i = 0;
	for (; i + 4 < len; i += 4) {
		uint32_t a = b64val[u[i]], b = b64val[u[i + 1]],
			 c = b64val[u[i + 2]], d = b64val[u[i + 3]];
		if ((a | b | c | d) > 63)
			return EINVAL;
		uint32_t x = a << 18 | b << 12 | c << 6 | d;
		out[o] = (unsigned char)(x >> 16);
		out[o + 1] = (unsigned char)(x >> 8);
		out[o + 2] = (unsigned char)x;
		o += 3;
	}
	if (i < len) {          /* the last group: "xx==", "xxx=" or "xxxx" */
		uint32_t v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			if (u[i + k] == '=' && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			v[k] = b64val[u[i + k]];
			if (pad || v[k] > 63)
				return EINVAL;
		}
		uint32_t x = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
		out[o++] = (unsigned char)(x >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(x >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)x;
	}
	*outlen = o;
	return 0;
}

void t4dx_hex_encode(char *out, const unsigned char *s, size_t len)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hx[s[i] >> 4];
		out[2 * i + 1] = hx[s[i] & 15];
	}
	out[2 * len] = 0;
}

int t4dx_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int t4dx_hex_decode(const char *s, size_t slen, unsigned char *out, size_t len)
{
	if (slen != 2 * len)
		return EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = t4dx_hexval(s[2 * i]), lo = t4dx_hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return EINVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* %.15g already gives the shortest text whenever that has at most 15
 * digits: decimals of 15 significant digits lie further apart than two
 * doubles do, so the one nearest v is the short text padded with zeros,
 * which %g strips.  Past 15 digits %.16g, then %.17g (always enough). */
int t4dx_fmt_double(char *out, size_t len, double v)
{
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(out, len, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
	return n;
}

int64_t t4dx_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* FNV-1a over the name, mixed with the parent and finished with a
 * 64-bit avalanche so that both Bloom probes are well spread. */
uint64_t t4dx_key_hash(uint64_t parent, const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (parent * 0x9e3779b97f4a7c15ULL);
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}
