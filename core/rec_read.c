/*
 * rec_read.c - WAL records read back: a line's CRC checked before
 * anything is parsed, then the JSON object and every field its op needs
 * (see the format and its VALIDITY rule at the top of rec.c).
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

/* ---- decoding -------------------------------------------------------- */

#define BAD T4DX_ECORRUPT

/* Check the trailing ,"crc":N} against the bytes before it; *body: where
 * that ',' is. */
static int check_crc(const char *line, size_t len, size_t *body)
{
	static const char tag[] = ",\"crc\":";
	const size_t tlen = sizeof(tag) - 1;
	if (len < tlen + 3 || line[0] != '{' || line[len - 1] != '}')
		return BAD;
	size_t d = len - 1;     /* one past the last digit */
	size_t i = d;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
		i--;
	if (i == d || d - i > 10 || i < tlen + 1)
		return BAD;
	uint64_t v = 0;
	for (size_t k = i; k < d; k++)
		v = v * 10 + (uint64_t)(line[k] - '0');
	if (v > UINT32_MAX || memcmp(line + i - tlen, tag, tlen))
		return BAD;
	*body = i - tlen;
	return rec_crc_of(line, i - tlen) == (uint32_t)v ? 0 : BAD;
}

static struct json_object *field(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;
	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int get_u64(struct json_object *o, const char *key, uint64_t *out)
{
	struct json_object *v = field(o, key);
	if (!v || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return BAD;
	*out = json_object_get_uint64(v);
	return 0;
}

static int get_u32(struct json_object *o, const char *key, uint32_t *out)
{
	uint64_t v;
	if (get_u64(o, key, &v) || v > UINT32_MAX)
		return BAD;
	*out = (uint32_t)v;
	return 0;
}

static int get_i64(struct json_object *o, const char *key, int64_t *out)
{
	struct json_object *v = field(o, key);
	if (!v || !json_object_is_type(v, json_type_int))
		return BAD;
	int64_t x = json_object_get_int64(v);
	if (x == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX)
		return BAD;     /* an unsigned value beyond INT64_MAX */
	*out = x;
	return 0;
}

static int get_unit(struct json_object *o, const char *key, double *out)
{
	struct json_object *v = field(o, key);
	if (!v || !(json_object_is_type(v, json_type_double) ||
		    json_object_is_type(v, json_type_int)))
		return BAD;
	double d = json_object_get_double(v);
	if (!rec_unit_ok(d))
		return BAD;
	*out = d;
	return 0;
}

static int get_type(struct json_object *o, const char *key, uint8_t *out)
{
	struct json_object *v = field(o, key);
	if (!v || !json_object_is_type(v, json_type_string))
		return BAD;
	int t = t4dx_type_parse(json_object_get_string(v),
				(size_t)json_object_get_string_len(v));
	if (t < 0)
		return BAD;
	*out = (uint8_t)t;
	return 0;
}

/* Exactly one of "key" (a string) or "key_b64".  Returns the JSON string
 * in *s, *slen and whether it is base64 in *b64. */
static int get_bytes_field(struct json_object *o, const char *key,
			   const char **s, size_t *slen, bool *b64)
{
	char k[32];
	snprintf(k, sizeof(k), "%s_b64", key);
	struct json_object *plain = field(o, key), *enc = field(o, k);
	if (!plain == !enc)     /* neither, or both */
		return BAD;
	struct json_object *v = plain ? plain : enc;
	if (!json_object_is_type(v, json_type_string))
		return BAD;
	*s = json_object_get_string(v);
	*slen = (size_t)json_object_get_string_len(v);
	*b64 = v == enc;
	return 0;
}

static int get_name(struct json_object *o, const char *key, char *name,
		    uint16_t *name_len)
{
	const char *s;
	size_t slen, n;
	bool b64;
	if (get_bytes_field(o, key, &s, &slen, &b64))
		return BAD;
	if (b64) {
		unsigned char tmp[3 * ((T4DX_NAME_MAX + 2) / 3) + 3];
		if (slen > 4 * ((T4DX_NAME_MAX + 2) / 3) ||
		    t4dx_base64_decode(s, slen, tmp, &n))
			return BAD;
		s = (const char *)tmp;
		if (!rec_name_ok(s, n))
			return BAD;
		memcpy(name, s, n);
	} else {
		n = slen;
		if (!rec_name_ok(s, n))
			return BAD;
		memcpy(name, s, n);
	}
	name[n] = 0;
	*name_len = (uint16_t)n;
	return 0;
}

/* CONTENT; with have (decode_split), e->content already holds it. */
static int get_content(struct json_object *o, struct t4dx_entry *e,
		       bool have)
{
	const char *s;
	size_t slen, n;
	bool b64;
	if (have)
		return 0;
	if (get_bytes_field(o, "content", &s, &slen, &b64))
		return BAD;
	struct t4dx_blob *b;
	if (b64) {
		if (slen % 4)
			return BAD;
		b = t4dx_blob_new(3 * (slen / 4));
		if (!b)
			return ENOMEM;
		if (t4dx_base64_decode(s, slen, b->data, &n)) {
			t4dx_blob_unref(b);
			return BAD;
		}
		b->len = n;
		b->data[n] = 0;
	} else {
		b = t4dx_blob_from(s, slen);
		if (!b)
			return ENOMEM;
	}
	e->content = b;
	e->size = b->len;
	return 0;
}

/* VECTOR, when "vec_src" is there (a put never says "none" or
 * "tried"). */
static int get_vec(struct json_object *o, struct t4dx_entry *e, bool put)
{
	struct json_object *v = field(o, "vec_src");
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return BAD;
	int src = t4dx_vec_src_parse(json_object_get_string(v),
				     (size_t)json_object_get_string_len(v));
	if (src < 0 || (put && !t4dx_vec_src_has(src)))
		return BAD;
	e->vec_src = (uint8_t)src;
	v = field(o, "vec_b64");
	if (!t4dx_vec_src_has(src))
		return v ? BAD : 0;
	if (!v || !json_object_is_type(v, json_type_string))
		return BAD;
	return t4dx_vec_from_b64(json_object_get_string(v),
				 (size_t)json_object_get_string_len(v),
				 &e->vec);
}

/* Read the fields in mask; each must be present. */
static int get_fields(struct json_object *o, struct t4dx_entry *e,
		      uint32_t mask)
{
	int rc = 0;
	for (size_t i = 0; !rc && i < T4DX_NFIELDS; i++) {
		const struct t4dx_field *f = &t4dx_fields[i];
		char *p = (char *)e + f->off;
		if (!(mask & f->bit))
			continue;
		switch (f->kind) {
		case T4DX_FIELD_MODE:
		case T4DX_FIELD_U32:
			rc = get_u32(o, f->key, (uint32_t *)p);
			break;
		case T4DX_FIELD_I64:
			rc = get_i64(o, f->key, (int64_t *)p);
			break;
		case T4DX_FIELD_U64:
			rc = get_u64(o, f->key, (uint64_t *)p);
			break;
		case T4DX_FIELD_UNIT:
			rc = get_unit(o, f->key, (double *)p);
			break;
		case T4DX_FIELD_TYPE:
			rc = get_type(o, f->key, (uint8_t *)p);
			break;
		}
	}
	return rc;
}

static int parse(struct json_object *o, struct t4dx_rec *r, bool have)
{
	struct t4dx_entry *e = &r->e;
	if (get_u64(o, "lsn", &r->lsn) || r->lsn == 0)
		return BAD;
	struct json_object *v = field(o, "op");
	if (!v || !json_object_is_type(v, json_type_string))
		return BAD;
	int op = rec_op_parse(json_object_get_string(v),
			  (size_t)json_object_get_string_len(v));
	if (op < 0)
		return BAD;
	r->op = (enum t4dx_op)op;
	e->lsn = r->lsn;
	if (r->op == T4DX_OP_PROBE)
		return 0;
	if (get_u64(o, "parent", &e->parent) ||
	    get_name(o, "name", e->name, &e->name_len))
		return BAD;
	switch (r->op) {
	case T4DX_OP_PUT:
	case T4DX_OP_MKDIR: {
		if (get_u64(o, "ino", &e->ino) ||
		    get_fields(o, e, T4DX_F_INODE))
			return BAD;
		if (r->op == T4DX_OP_MKDIR)
			return 0;
		v = field(o, "id");
		if (!v || !json_object_is_type(v, json_type_string) ||
		    t4dx_hex_decode(json_object_get_string(v),
				    (size_t)json_object_get_string_len(v),
				    e->id, sizeof(e->id)) ||
		    get_fields(o, e, T4DX_F_MEMORY) || get_vec(o, e, true))
			return BAD;
		return get_content(o, e, have);
	}
	case T4DX_OP_RENAME:
		if (get_u64(o, "new_parent", &r->new_parent) ||
		    get_name(o, "new_name", r->new_name, &r->new_name_len))
			return BAD;
		return 0;
	case T4DX_OP_UPDATE:
		r->mask = 0;
		for (size_t i = 0; i < T4DX_NFIELDS; i++)
			if (field(o, t4dx_fields[i].key))
				r->mask |= t4dx_fields[i].bit;
		if (field(o, "vec_src"))
			r->mask |= T4DX_F_VEC;
		return get_fields(o, e, r->mask) ? BAD : get_vec(o, e, false);
	default:        /* delete, rmdir */
		e->tombstone = true;
		return 0;
	}
}

/* A put of a large content ends in ,"content_b64":"...","crc":N} or
 * ,"content":"...","crc":N}, and most of its line is that value: 21 MiB
 * for a 16 MiB binary content, which json-c would copy into a string of
 * its own before it is decoded (a quarter of a replay's time; for text,
 * json-c's string, its copy and the content held the memory of a 1 GiB
 * item four times over).  Such a line is read in two parts: the value
 * decoded where it lies, and the JSON before it given to json-c with the
 * '}' that closes it.  Base64 holds no '"' or '\\', so its value is the
 * bytes between the last two quotes before ,"crc".  A text value runs
 * from the first ,"content":" (a '"' not escaped is in no JSON string,
 * so in a valid line that is the key) to the last quote.  This is only a
 * shortcut: unless the value holds nothing but what the encoder writes
 * (unescape) and the shortened object parses and is a valid put that
 * names no content of its own, the whole line is decoded as any other
 * (which then accepts or refuses it), so both ways agree on every line.
 * 0, ENOMEM, or AGAIN: decode the whole line. */
#define SPLIT_MIN (64u << 10)   /* shorter values: not worth it */
#define AGAIN (-1)

/* The JSON text s[0..n) (between its quotes) decoded into b->data (room
 * for n bytes), if it holds only what the encoder writes: bytes >= 0x20
 * other than '"' and '\\', the escapes \" \\ \b \t \n \f \r and \u00XX
 * below 0x20, and valid UTF-8 once decoded.  Anything else is left to
 * json-c: AGAIN. */
static int unescape(const char *s, size_t n, struct t4dx_blob *b)
{
	static const char letter[128] = {
		['"'] = '"', ['\\'] = '\\', ['b'] = '\b', ['t'] = '\t',
		['n'] = '\n', ['f'] = '\f', ['r'] = '\r',
	};
	unsigned char *o = b->data;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = c;
			continue;
		}
		if (c != '\\' || i + 1 == n)
			return AGAIN;
		c = (unsigned char)s[++i];
		if (c < 128 && letter[c]) {
			*o++ = (unsigned char)letter[c];
			continue;
		}
		int hi, lo;
		if (c != 'u' || n - i < 5 || s[i + 1] != '0' ||
		    s[i + 2] != '0' || (hi = t4dx_hexval(s[i + 3])) < 0 ||
		    hi > 1 || (lo = t4dx_hexval(s[i + 4])) < 0)
			return AGAIN;
		*o++ = (unsigned char)(hi << 4 | lo);
		i += 4;
	}
	b->len = (size_t)(o - b->data);
	b->data[b->len] = 0;
	return t4dx_utf8_valid(b->data, b->len) ? 0 : AGAIN;
}

/* The content value of a line that ends in one: decoded into a new blob
 * in *out, its key's offset in *cut.  0, ENOMEM or AGAIN. */
static int split_value(const char *line, size_t body, size_t *cut,
		       struct t4dx_blob **out)
{
	static const char bkey[] = ",\"content_b64\":\"";
	static const char tkey[] = ",\"content\":\"";
	const size_t blen = sizeof(bkey) - 1, tlen = sizeof(tkey) - 1;
	const char *end = line + body - 1;      /* the closing quote */
	const char *q = memrchr(line, '"', body - 1);
	if (!q)
		return AGAIN;
	if ((size_t)(q + 1 - line) >= blen &&
	    !memcmp(q + 1 - blen, bkey, blen)) {
		size_t slen = (size_t)(end - q - 1), n;
		if (slen < SPLIT_MIN || slen % 4)
			return AGAIN;
		struct t4dx_blob *b = t4dx_blob_new(3 * (slen / 4));
		if (!b)
			return ENOMEM;
		if (t4dx_base64_decode(q + 1, slen, b->data, &n)) {
			t4dx_blob_unref(b);
			return AGAIN;
		}
		b->len = n;
		b->data[n] = 0;
		*cut = (size_t)(q + 1 - blen - line);
		*out = b;
		return 0;
	}
	const char *k = memmem(line, body, tkey, tlen);
	if (!k || (size_t)(end - (k + tlen)) < SPLIT_MIN)
		return AGAIN;
	size_t slen = (size_t)(end - (k + tlen));
	struct t4dx_blob *b = t4dx_blob_new(slen);
	if (!b)
		return ENOMEM;
	int rc = unescape(k + tlen, slen, b);
	if (rc) {
		t4dx_blob_unref(b);
		return rc;
	}
	*cut = (size_t)(k - line);
	*out = b;
	return 0;
}

static int decode_split(const char *line, size_t body, struct t4dx_rec *r)
{
	if (body < SPLIT_MIN || line[body - 1] != '"')
		return AGAIN;
	size_t cut;
	struct t4dx_blob *b;
	int rc = split_value(line, body, &cut, &b);
	if (rc)
		return rc;
	r->e.content = b;
	r->e.size = b->len;
	rc = AGAIN;
	struct json_tokener *tok = json_tokener_new();
	if (!tok) {
		rc = ENOMEM;
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)cut);
	if (o || json_tokener_get_error(tok) != json_tokener_continue) {
		json_object_put(o);
		goto out;
	}
	o = json_tokener_parse_ex(tok, "}", 1);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != 1 ||
	    !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		goto out;
	}
	struct json_object *op = field(o, "op");
	if (op && json_object_is_type(op, json_type_string) &&
	    !strcmp(json_object_get_string(op), "put") &&
	    !field(o, "content") && !field(o, "content_b64") &&
	    parse(o, r, true) == 0)
		rc = 0;
	json_object_put(o);
out:
	json_tokener_free(tok);
	if (rc) {
		t4dx_entry_clear(&r->e);
		memset(r, 0, sizeof(*r));
	}
	return rc;
}

int t4dx_rec_decode(const char *line, size_t len, struct t4dx_rec *r)
{
	size_t body;
	memset(r, 0, sizeof(*r));
	if (len > INT_MAX || check_crc(line, len, &body))
		return BAD;
	int rc = decode_split(line, body, r);
	if (rc != AGAIN)
		return rc;
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	rc = BAD;
	if (o && json_tokener_get_error(tok) == json_tokener_success &&
	    json_tokener_get_parse_end(tok) == len &&
	    json_object_is_type(o, json_type_object))
		rc = parse(o, r, false);
	json_object_put(o);
	json_tokener_free(tok);
	if (rc) {
		t4dx_entry_clear(&r->e);
		memset(r, 0, sizeof(*r));
	}
	return rc;
}
