/*
 * rec.c - WAL records: one engine operation as one line of JSON; the
 * format, and the writer (the reader is rec_read.c).
 *
 * FORMAT
 *
 * A record is one JSON object (RFC 8259, UTF-8 for everything we write)
 * on one line, ended by a single '\n'.  The object is written without any
 * whitespace and its keys always come in this order:
 *
 *   "lsn"      unsigned integer >= 1, the log sequence number
 *   "op"       "put" | "delete" | "rename" | "mkdir" | "rmdir" |
 *              "update_fields" | "probe"
 *   ...        the fields of the operation (below)
 *   "crc"      unsigned integer < 2^32, always the last key
 *
 * Fields by operation:
 *
 *   put            parent, NAME, ino, mode, uid, gid, atime, mtime, ctime,
 *                  id, kappa, importance, type, event_time, access_count,
 *                  VECTOR (only when the item has one), CONTENT
 *   mkdir          parent, NAME, ino, mode, uid, gid, atime, mtime, ctime
 *   delete, rmdir  parent, NAME
 *   rename         parent, NAME, new_parent, NEW_NAME
 *   update_fields  parent, NAME, then only the changed fields, in the
 *                  order mode, uid, gid, atime, mtime, ctime, kappa,
 *                  importance, type, event_time, access_count, VECTOR
 *                  (the set of keys present is the update mask; it may
 *                  be empty; "vec_src" stands for VECTOR)
 *   probe          nothing (a health probe; no effect on the data)
 *
 *   parent, new_parent, ino, access_count   unsigned 64-bit integers
 *   mode, uid, gid                          unsigned 32-bit integers
 *   atime, mtime, ctime, event_time         signed 64-bit integers,
 *                                           nanoseconds since the epoch
 *   id             32 hexadecimal digits (16 bytes; written lower case)
 *   kappa, importance   numbers in [0, 1], written as C's %.15g, or
 *                  %.16g or %.17g where fewer digits do not read back
 *                  to the same double, with ".0" appended when that has
 *                  neither a '.' nor an exponent (so 1 is written 1.0,
 *                  1/3 0.3333333333333333, 5e-324 4.94065645841247e-324)
 *   type           "episodic" | "semantic" | "procedural"
 *   NAME           "name": a JSON string, when the name's bytes are valid
 *                  UTF-8 (t4dx_utf8_valid), else "name_b64": standard
 *                  base64 with padding of the raw bytes.  Exactly one of
 *                  the two.  Decoded, a name is 1..255 bytes without '/'
 *                  or NUL.
 *   NEW_NAME       likewise "new_name" or "new_name_b64"
 *   CONTENT        "content": a JSON string, when the bytes are valid
 *                  UTF-8 without NUL and their escaped text is at most
 *                  1.5 GiB (TEXT_ESC_MAX), else "content_b64" (base64
 *                  as above).  Exactly one of the two; may be empty.  The
 *                  decoded content becomes a new blob, and the entry's
 *                  size is its length.
 *   VECTOR         "vec_src": "embed" | "hand" | "none" (an update that
 *                  removes the vector) | "tried" (an update of the
 *                  embedder: the content gets no vector, see t4dx.h),
 *                  then, unless "none" or "tried", "vec_b64":
 *                  base64 (as above) of the vector's bytes, dim IEEE 754
 *                  binary32 values, each little-endian; dim 1..4096, every
 *                  value finite (vec.h).  A put without "vec_src" has no
 *                  vector; a put never says "none".
 *
 * Integers are written in decimal without leading zeros, negative ones
 * with a '-'.  Inside strings, '"' and '\\' are written \" and \\, the
 * bytes 0x08, 0x09, 0x0a, 0x0c and 0x0d as \b \t \n \f \r, the other
 * bytes below 0x20 as \u00xx with lower-case hex digits, and every other
 * byte, '/' and 0x7f included, as it is.  (These are json-c's escapes
 * with JSON_C_TO_STRING_NOSLASHESCAPE: the first encoder had json-c
 * write its lines, and lines are still the same bytes.)
 *
 * CRC RULE.  "crc" is the zlib CRC-32 (crc32(0, ...)) of the line's bytes
 * from the opening '{' up to, not including, the ',' that precedes
 * "crc".  The writer writes the line up to that ',', computes the CRC of
 * it and appends ,"crc":N}\n with N in decimal.  The reader checks the
 * CRC before it parses anything: the line must end in ,"crc":DIGITS} and
 * the CRC of the bytes before that comma must equal DIGITS.
 *
 * VALIDITY.  A line is a valid record when its CRC matches, it parses as
 * one JSON object with nothing after it, and every field its op needs is
 * present with the right type and in range (names, hex, base64, [0, 1],
 * 32/64-bit limits, lsn >= 1).  Anything else is T4DX_ECORRUPT; keys a
 * reader does not know are ignored.  The encoder refuses (EINVAL) any
 * record that the decoder would refuse, so that a record that was
 * written can always be read back.
 *
 * EXAMPLES (each is one line in the file; wrapped here)
 *
 *   {"lsn":7,"op":"mkdir","parent":16,"name":"notes","ino":17,
 *    "mode":16877,"uid":1000,"gid":1000,"atime":1700000000000000000,
 *    "mtime":1700000000000000000,"ctime":1700000000000000000,
 *    "crc":1081140574}
 *   {"lsn":8,"op":"put","parent":17,"name":"alice-cafe","ino":18,
 *    "mode":33188,...,"id":"00112233445566778899aabbccddeeff",
 *    "kappa":0.5,"importance":0.25,"type":"episodic",
 *    "event_time":0,"access_count":0,"content":"met Alice at the cafe\n",
 *    "crc":...}
 *   {"lsn":9,"op":"delete","parent":17,"name_b64":"/w==","crc":3047750439}
 *   {"lsn":10,"op":"update_fields","parent":17,"name":"alice-cafe",
 *    "kappa":0.75,"type":"semantic","crc":4082534311}
 *   {"lsn":11,"op":"probe","crc":2961855136}
 *
 * The CRC of the last one is crc32 of the 22 bytes {"lsn":11,"op":"probe"
 * (check: printf '%s' '{"lsn":11,"op":"probe"' | gzip -c | tail -c8 |
 * od -An -tu4 -N4 prints 2961855136).
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fields.h"
#include "rec.h"
#include "rec_int.h"
#include "vec.h"

static const char *const op_names[] = {
	[T4DX_OP_PUT] = "put",
	[T4DX_OP_DELETE] = "delete",
	[T4DX_OP_RENAME] = "rename",
	[T4DX_OP_MKDIR] = "mkdir",
	[T4DX_OP_RMDIR] = "rmdir",
	[T4DX_OP_UPDATE] = "update_fields",
	[T4DX_OP_PROBE] = "probe",
};
#define OP_MAX T4DX_OP_PROBE

const char *t4dx_op_name(enum t4dx_op op)
{
	if ((int)op < T4DX_OP_PUT || op > OP_MAX)
		return "unknown";
	return op_names[op];
}

int rec_op_parse(const char *s, size_t len)
{
	for (int i = T4DX_OP_PUT; i <= OP_MAX; i++)
		if (strlen(op_names[i]) == len && !memcmp(s, op_names[i], len))
			return i;
	return -1;
}

/* zlib's crc32 takes a uInt length; feed it in pieces so any size works. */
uint32_t rec_crc_of(const void *p, size_t len)
{
	const unsigned char *s = p;
	uLong crc = crc32(0L, Z_NULL, 0);
	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		crc = crc32(crc, s, n);
		s += n;
		len -= n;
	}
	return (uint32_t)crc;
}

bool rec_name_ok(const char *name, size_t len)
{
	return len >= 1 && len <= T4DX_NAME_MAX && !memchr(name, '/', len) &&
	       !memchr(name, 0, len);
}

bool rec_unit_ok(double d)
{
	return isfinite(d) && d >= 0.0 && d <= 1.0;
}

/* ---- encoding -------------------------------------------------------- */

/*
 * The encoder measures the line's strings, reserves room for the whole
 * line once and fills it through a plain pointer.  Its lines are byte for
 * byte those of the first encoder, which serialised a json-c object.
 */

/* Room for everything in a line except the bytes between the quotes of
 * its name, new name and content.  A put, the longest, has 19 keys (at
 * most 16 bytes each with quotes, colon and comma), 12 integers of at
 * most 20 characters, two doubles of at most 24, the op, type and id
 * strings and the quotes of name and content (at most 65 bytes), "{" and
 * "}\n": under 700 bytes. */
#define LINE_FIXED_MAX 1024

/* Copy a string; for a literal the strlen folds away. */
static inline char *put_str(char *o, const char *s)
{
	size_t n = strlen(s);
	memcpy(o, s, n);
	return o + n;
}

static char *put_u64(char *o, uint64_t v)
{
	char d[20];
	size_t n = 0;
	do {
		d[sizeof(d) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	memcpy(o, d + sizeof(d) - n, n);
	return o + n;
}

/* key is the punctuated key, such as ,"mode": */
static char *put_u(char *o, const char *key, uint64_t v)
{
	return put_u64(put_str(o, key), v);
}

static char *put_i(char *o, const char *key, int64_t v)
{
	o = put_str(o, key);
	if (v >= 0)
		return put_u64(o, (uint64_t)v);
	*o++ = '-';
	return put_u64(o, 0 - (uint64_t)v);
}

/* A number in [0, 1] as the format writes it: the first of %.15g, %.16g
 * and %.17g that reads back to d (t4dx_fmt_double), with ".0" added when
 * it has neither a '.' nor an exponent.  A whole number of thousandths (the common
 * values: 0, 0.5, 0.25, 0.1) reads back from its shortest decimal, and
 * %.15g prints exactly that, so those skip printf and strtod. */
static char *put_unit(char *o, const char *key, double d)
{
	o = put_str(o, key);
	unsigned k = (unsigned)(d * 1000.0 + 0.5);
	if ((double)k / 1000.0 == d && !signbit(d)) {
		if (k == 0 || k == 1000)
			return put_str(o, k ? "1.0" : "0.0");
		*o++ = '0';
		*o++ = '.';
		for (unsigned div = 100; k; div /= 10) {
			*o++ = (char)('0' + k / div);
			k %= div;
		}
		return o;
	}
	char s[40];
	int n = t4dx_fmt_double(s, sizeof(s), d);
	memcpy(o, s, (size_t)n);
	o += n;
	if (!memchr(s, '.', (size_t)n) && !memchr(s, 'e', (size_t)n))
		o = put_str(o, ".0");
	return o;
}

/*
 * json-c's escapes (with JSON_C_TO_STRING_NOSLASHESCAPE): '"' and '\\'
 * get a backslash, \b \t \n \f \r their letter, the other bytes below
 * 0x20 become \u00xx in lower case; everything else is copied.
 */
static const char esc_letter[0x20] = {
	['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
};

static inline bool esc_plain(unsigned char c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

/* The first byte at or after i that needs an escape, or len.  Eight
 * bytes at a time first: with ones = 0x0101..01, a byte below 0x20 sets
 * its top bit in v - 0x20 * ones, a '"' in (v ^ '"' * ones) - ones, a
 * '\\' likewise.  A borrow from one byte into the next starts only at
 * such a byte, so the lowest one is always seen and none is seen where
 * there is none; & ~v leaves out bytes >= 0x80, which are copied. */
static size_t esc_next(const unsigned char *s, size_t i, size_t len)
{
	const uint64_t ones = 0x0101010101010101ULL, tops = ones << 7;
	for (; len - i >= 8; i += 8) {
		uint64_t v;
		memcpy(&v, s + i, 8);
		uint64_t hit = (v - ones * 0x20) | ((v ^ ones * '"') - ones) |
			       ((v ^ ones * '\\') - ones);
		if (hit & ~v & tops)
			break;
	}
	while (i < len && esc_plain(s[i]))
		i++;
	return i;
}

static size_t escaped_len(const unsigned char *s, size_t len)
{
	size_t n = len;
	for (size_t i = esc_next(s, 0, len); i < len;
	     i = esc_next(s, i + 1, len))
		n += s[i] < 0x20 && !esc_letter[s[i]] ? 5 : 1;
	return n;
}

static char *put_escaped(char *o, const unsigned char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t from = 0;
	for (size_t i = esc_next(s, 0, len); i < len;
	     i = esc_next(s, from, len)) {
		unsigned char c = s[i];
		memcpy(o, s + from, i - from);
		o += i - from;
		from = i + 1;
		*o++ = '\\';
		if (c >= 0x20) {
			*o++ = (char)c;
		} else if (esc_letter[c]) {
			*o++ = esc_letter[c];
		} else {
			o = put_str(o, "u00");
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	memcpy(o, s + from, len - from);
	return o + (len - from);
}

/* A name or content as its line holds it: JSON text if the bytes are
 * valid UTF-8 without NUL, else base64.  For a long content written by
 * reference, the CRC-32 of its escape too (has_crc, text_scan). */
struct text {
	const unsigned char *p;
	size_t len;
	bool b64;
	bool has_crc;
	uLong crc;              /* crc32 from 0 of the escape, no quotes */
};

/* Texts up to this long get room for the worst case, six bytes out for
 * each byte in, which is cheaper than a pass to count the escapes. */
#define TEXT_COUNT_MIN 16384
/* A content whose escaped text would be longer goes in base64 (4/3 of
 * its bytes, whatever they are), so that the line of any content up to
 * T4DX_ITEM_BYTES_MAX stays within the decoder's int lengths.  Escaped
 * text of up to 268435455 bytes (the largest item before 1 GiB items)
 * is at most 6 times that, just below: those lines are as they were. */
#define TEXT_ESC_MAX ((size_t)3 << 29)

/* How many of the n bytes at s (of the avail there) a piece takes so
 * that it does not end inside a UTF-8 sequence: it ends before a byte
 * that is no continuation byte (or after three, past which the sequence
 * is invalid in any case). */
static size_t utf8_cut(const unsigned char *s, size_t n, size_t avail)
{
	for (int k = 0; k < 3 && n < avail && (s[n] & 0xc0) == 0x80; k++)
		n--;
	return n;
}

/* One pass over a long text, a piece at a time: each piece is read from
 * memory once and then from the cache, to check it as UTF-8, escape it
 * into a buffer on the stack (measuring the escape) and take the CRC of
 * the escape.  A close of a large file read its content three times
 * before (the check, the count, the CRC).  false: not valid UTF-8 without
 * NUL (t goes in base64). */
static bool text_scan(struct text *t, size_t *esc_len)
{
	enum { PIECE = 4096 };
	char o[6 * PIECE];
	uLong crc = crc32(0L, Z_NULL, 0);
	size_t n = 0;
	for (size_t from = 0; from < t->len;) {
		size_t k = t->len - from < PIECE ? t->len - from : PIECE;
		k = utf8_cut(t->p + from, k, t->len - from);
		if (!t4dx_utf8_valid(t->p + from, k))
			return false;
		size_t e = (size_t)(put_escaped(o, t->p + from, k) - o);
		crc = crc32(crc, (const Bytef *)o, (uInt)e);
		n += e;
		from += k;
	}
	t->crc = crc;
	t->has_crc = true;
	*esc_len = n;
	return true;
}

/* Set t up for p, len and return the most bytes it takes between its
 * quotes.  with_crc: a long content whose line is written by reference
 * (larger than the caches; the others are checked and counted as they
 * were, which is faster for contents that the caches hold). */
static size_t text_measure(struct text *t, const void *p, size_t len,
			   bool with_crc)
{
	size_t n;
	t->p = p;
	t->len = len;
	t->has_crc = false;
	if (with_crc && len > TEXT_COUNT_MIN) {
		t->b64 = !text_scan(t, &n);
	} else {
		t->b64 = !t4dx_utf8_valid(t->p, len);
		if (t->b64)
			return (len + 2) / 3 * 4;
		if (len <= TEXT_COUNT_MIN)
			return 6 * len;
		n = escaped_len(t->p, len);
	}
	if (t->b64 || n > TEXT_ESC_MAX) {
		t->b64 = true;
		t->has_crc = false;
		return (len + 2) / 3 * 4;
	}
	return n;
}

/* ,"key":"text" or ,"key_b64":"base64" */
static char *put_text(char *o, const char *key, const struct text *t)
{
	o = put_str(put_str(o, ",\""), key);
	o = put_str(o, t->b64 ? "_b64\":\"" : "\":\"");
	if (t->b64)
		o += t4dx_base64_put(o, t->p, t->len);
	else
		o = put_escaped(o, t->p, t->len);
	*o++ = '"';
	return o;
}

/* The fields in mask (t4dx_fields, in its order): put and mkdir write
 * theirs, an update those it changes. */
static char *put_fields(char *o, const struct t4dx_entry *e, uint32_t mask)
{
	for (size_t i = 0; i < T4DX_NFIELDS; i++) {
		const struct t4dx_field *f = &t4dx_fields[i];
		if (!(mask & f->bit))
			continue;
		const char *p = (const char *)e + f->off;
		o = put_str(o, ",\"");
		o = put_str(o, f->key);
		o = put_str(o, "\":");
		switch (f->kind) {
		case T4DX_FIELD_MODE:
		case T4DX_FIELD_U32:
			o = put_u(o, "", *(const uint32_t *)p);
			break;
		case T4DX_FIELD_I64:
			o = put_i(o, "", *(const int64_t *)p);
			break;
		case T4DX_FIELD_U64:
			o = put_u(o, "", *(const uint64_t *)p);
			break;
		case T4DX_FIELD_UNIT:
			o = put_unit(o, "", *(const double *)p);
			break;
		case T4DX_FIELD_TYPE:
			*o++ = '"';
			o = put_str(o, t4dx_type_name(*(const uint8_t *)p));
			*o++ = '"';
			break;
		}
	}
	return o;
}

/* No vector, or a source with a vector. */
static bool vec_encodable(const struct t4dx_entry *e)
{
	if (!t4dx_vec_src_has(e->vec_src))
		return e->vec_src <= T4DX_VEC_TRIED && !e->vec;
	return e->vec && !t4dx_vec_check(e->vec->data, e->vec->len);
}

/* ,"vec_src":"hand","vec_b64":"..." or ,"vec_src":"none" (or "tried") */
static char *put_vec(char *o, const struct t4dx_entry *e)
{
	o = put_str(o, ",\"vec_src\":\"");
	o = put_str(o, t4dx_vec_src_name(e->vec_src));
	if (!e->vec)
		return put_str(o, "\"");
	o = put_str(o, "\",\"vec_b64\":\"");
	o += t4dx_base64_put(o, e->vec->data, e->vec->len);
	*o++ = '"';
	return o;
}

/* Refuse what the decoder would refuse. */
static int check_encodable(const struct t4dx_rec *r)
{
	const struct t4dx_entry *e = &r->e;
	if (r->lsn == 0 || (int)r->op < T4DX_OP_PUT || r->op > OP_MAX)
		return EINVAL;
	if (r->op == T4DX_OP_PROBE)
		return 0;
	if (!rec_name_ok(e->name, e->name_len))
		return EINVAL;
	if (r->op == T4DX_OP_RENAME &&
	    !rec_name_ok(r->new_name, r->new_name_len))
		return EINVAL;
	uint32_t mask = r->op == T4DX_OP_PUT ? T4DX_F_ALL :
			r->op == T4DX_OP_UPDATE ? r->mask : 0;
	if (r->op == T4DX_OP_UPDATE &&
	    (mask & ~(uint32_t)(T4DX_F_ALL | T4DX_F_VEC)))
		return EINVAL;
	if ((r->op == T4DX_OP_PUT || (mask & T4DX_F_VEC)) &&
	    !vec_encodable(&r->e))
		return EINVAL;
	for (size_t i = 0; i < T4DX_NFIELDS; i++) {
		const struct t4dx_field *f = &t4dx_fields[i];
		const char *p = (const char *)e + f->off;
		if (!(mask & f->bit))
			continue;
		if (f->kind == T4DX_FIELD_UNIT && !rec_unit_ok(*(const double *)p))
			return EINVAL;
		if (f->kind == T4DX_FIELD_TYPE &&
		    *(const uint8_t *)p > T4DX_PROCEDURAL)
			return EINVAL;
	}
	if (r->op == T4DX_OP_PUT && !e->content && e->size)
		return EINVAL;
	if (e->content && e->content->len > T4DX_ITEM_BYTES_MAX)
		return EINVAL;
	return 0;
}

/* A content is escaped text of at most TEXT_ESC_MAX bytes or base64 of
 * 4/3 of its bytes: with the rest of the line (a name escaped, a vector)
 * the line of the largest content stays within the decoder's int
 * lengths. */
_Static_assert(TEXT_ESC_MAX + (1u << 20) <= INT_MAX - 32 &&
	       (T4DX_ITEM_BYTES_MAX + 2ull) / 3 * 4 + (1u << 20) <=
		       INT_MAX - 32,
	       "the decoder's json-c lengths are int");

/* Continue crc over the encoding of t's bytes, a piece at a time. */
static uLong crc_encoded(uLong crc, const struct text *t)
{
	enum { PIECE = 3 * 1024 };      /* whole base64 groups */
	char o[T4DX_REC_EXT_ROOM(PIECE)];
	for (size_t from = 0; from < t->len; from += PIECE) {
		size_t n = t->len - from < PIECE ? t->len - from : PIECE;
		size_t k = t->b64 ? t4dx_base64_put(o, t->p + from, n)
				  : (size_t)(put_escaped(o, t->p + from, n) - o);
		crc = crc32(crc, (const Bytef *)o, (uInt)k);
	}
	return crc;
}

size_t t4dx_rec_ext_put(const struct t4dx_rec_ext *ext, size_t from,
			size_t n, char *out)
{
	const unsigned char *p = ext->blob->data + from;
	if (ext->b64)
		return t4dx_base64_put(out, p, n);
	return (size_t)(put_escaped(out, p, n) - out);
}

int t4dx_rec_encode(const struct t4dx_rec *r, struct t4dx_buf *out)
{
	bool split;
	return t4dx_rec_encode_split(r, out, SIZE_MAX, NULL, &split);
}

int t4dx_rec_encode_split(const struct t4dx_rec *r, struct t4dx_buf *out,
			  size_t min_ext, struct t4dx_rec_ext *ext,
			  bool *split)
{
	*split = false;
	int rc = check_encodable(r);
	if (rc)
		return rc;
	const struct t4dx_entry *e = &r->e;
	struct text name, new_name, content;
	size_t need = LINE_FIXED_MAX;
	if (r->op != T4DX_OP_PROBE)
		need += text_measure(&name, e->name, e->name_len, false);
	if (r->op == T4DX_OP_RENAME)
		need += text_measure(&new_name, r->new_name, r->new_name_len,
				     false);
	if (e->vec && (r->op == T4DX_OP_PUT ||
		       (r->op == T4DX_OP_UPDATE && (r->mask & T4DX_F_VEC))))
		need += t4dx_vec_b64_len(e->vec);
	bool by_ref = false;
	uint64_t enc_len = 0;
	if (r->op == T4DX_OP_PUT) {
		static const unsigned char none[1];
		const struct t4dx_blob *b = e->content;
		by_ref = ext && b && b->len >= min_ext &&
			 b->len > TEXT_COUNT_MIN;
		size_t n = text_measure(&content, b ? b->data : none,
					b ? b->len : 0, by_ref);
		if (by_ref)     /* exact for such lengths (> TEXT_COUNT_MIN) */
			enc_len = n;
		else
			need += n;
	}
	if (t4dx_buf_reserve(out, need))
		return ENOMEM;

	char *start = (char *)out->p + out->len, *o = start;
	o = put_u(o, "{\"lsn\":", r->lsn);
	o = put_str(put_str(o, ",\"op\":\""), op_names[r->op]);
	*o++ = '"';
	if (r->op != T4DX_OP_PROBE) {
		o = put_u(o, ",\"parent\":", e->parent);
		o = put_text(o, "name", &name);
	}
	switch (r->op) {
	case T4DX_OP_PUT:
	case T4DX_OP_MKDIR:
		o = put_u(o, ",\"ino\":", e->ino);
		o = put_fields(o, e, T4DX_F_INODE);
		if (r->op == T4DX_OP_MKDIR)
			break;
		o = put_str(o, ",\"id\":\"");
		t4dx_hex_encode(o, e->id, sizeof(e->id));
		o += 2 * sizeof(e->id);
		*o++ = '"';
		o = put_fields(o, e, T4DX_F_MEMORY);
		if (t4dx_vec_src_has(e->vec_src))
			o = put_vec(o, e);
		if (!by_ref) {
			o = put_text(o, "content", &content);
			break;
		}
		/* the line up to the content, whose encoding is made
		 * again when the line is written: only its CRC now */
		o = put_str(o, content.b64 ? ",\"content_b64\":\""
					   : ",\"content\":\"");
		ext->at = out->len + (size_t)(o - start);
		ext->enc_len = enc_len;
		ext->b64 = content.b64;
		break;
	case T4DX_OP_RENAME:
		o = put_u(o, ",\"new_parent\":", r->new_parent);
		o = put_text(o, "new_name", &new_name);
		break;
	case T4DX_OP_UPDATE:
		o = put_fields(o, e, r->mask);
		if (r->mask & T4DX_F_VEC)
			o = put_vec(o, e);
		break;
	default:        /* delete, rmdir, probe */
		break;
	}
	size_t len = (size_t)(o - start);
	uint32_t crc;
	if (by_ref) {
		if (len + enc_len + 1 > INT_MAX - 32)
			return EINVAL;
		*o++ = '"';
		uLong c = rec_crc_of(start, len);
		c = content.has_crc ? crc32_combine(c, content.crc,
						    (z_off_t)enc_len)
				    : crc_encoded(c, &content);
		crc = (uint32_t)crc32(c, (const Bytef *)"\"", 1);
	} else {
		if (len + 1 > INT_MAX - 32)     /* the decoder's limit */
			return EINVAL;
		crc = rec_crc_of(start, len);
	}
	o = put_u(o, ",\"crc\":", crc);
	o = put_str(o, "}\n");
	out->len += (size_t)(o - start);
	if (by_ref) {
		ext->blob = t4dx_blob_ref(e->content);
		*split = true;
	}
	return 0;
}
