/*
 * rec.c - WAL records: one engine operation as one line of JSON.
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
 *                  CONTENT
 *   mkdir          parent, NAME, ino, mode, uid, gid, atime, mtime, ctime
 *   delete, rmdir  parent, NAME
 *   rename         parent, NAME, new_parent, NEW_NAME
 *   update_fields  parent, NAME, then only the changed fields, in the
 *                  order mode, uid, gid, atime, mtime, ctime, kappa,
 *                  importance, type, event_time, access_count (the set of
 *                  keys present is the update mask; it may be empty)
 *   probe          nothing (a health probe; no effect on the data)
 *
 *   parent, new_parent, ino, access_count   unsigned 64-bit integers
 *   mode, uid, gid                          unsigned 32-bit integers
 *   atime, mtime, ctime, event_time         signed 64-bit integers,
 *                                           nanoseconds since the epoch
 *   id             32 hexadecimal digits (16 bytes; written lower case)
 *   kappa, importance   numbers in [0, 1], written in the shortest form
 *                  that reads back to the same double, always with a '.'
 *                  or an exponent (so 1 is written 1.0)
 *   type           "episodic" | "semantic" | "procedural"
 *   NAME           "name": a JSON string, when the name's bytes are valid
 *                  UTF-8 (t4dx_utf8_valid), else "name_b64": standard
 *                  base64 with padding of the raw bytes.  Exactly one of
 *                  the two.  Decoded, a name is 1..255 bytes without '/'
 *                  or NUL.
 *   NEW_NAME       likewise "new_name" or "new_name_b64"
 *   CONTENT        "content": a JSON string, when the bytes are valid
 *                  UTF-8 without NUL, else "content_b64" (base64 as
 *                  above).  Exactly one of the two; may be empty.  The
 *                  decoded content becomes a new blob, and the entry's
 *                  size is its length.
 *
 * Strings are escaped as json-c does ('"', '\\' and control characters;
 * '/' is not escaped, other bytes are written as they are).
 *
 * CRC RULE.  "crc" is the zlib CRC-32 (crc32(0, ...)) of the line's bytes
 * from the opening '{' up to, not including, the ',' that precedes
 * "crc".  The writer serialises the object without the crc, drops its
 * closing '}', computes the CRC of what is left and appends
 * ,"crc":N}\n with N in decimal.  The reader checks the CRC before it
 * parses anything: the line must end in ,"crc":DIGITS} and the CRC of
 * the bytes before that comma must equal DIGITS.
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

#include "rec.h"

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

static int op_parse(const char *s, size_t len)
{
	for (int i = T4DX_OP_PUT; i <= OP_MAX; i++)
		if (strlen(op_names[i]) == len && !memcmp(s, op_names[i], len))
			return i;
	return -1;
}

/* zlib's crc32 takes a uInt length; feed it in pieces so any size works. */
static uint32_t crc_of(const void *p, size_t len)
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

static bool name_ok(const char *name, size_t len)
{
	return len >= 1 && len <= T4DX_NAME_MAX && !memchr(name, '/', len) &&
	       !memchr(name, 0, len);
}

static bool unit_ok(double d)
{
	return isfinite(d) && d >= 0.0 && d <= 1.0;
}

/* ---- encoding -------------------------------------------------------- */

/* Add to o; json-c takes ownership of v, even on failure. */
static int add(struct json_object *o, const char *key, struct json_object *v)
{
	if (!v)
		return ENOMEM;
	if (json_object_object_add(o, key, v)) {
		json_object_put(v);
		return ENOMEM;
	}
	return 0;
}

static int add_u64(struct json_object *o, const char *key, uint64_t v)
{
	return add(o, key, json_object_new_uint64(v));
}

static int add_i64(struct json_object *o, const char *key, int64_t v)
{
	return add(o, key, json_object_new_int64(v));
}

/* The shortest %g form that reads back to d, with a '.' or exponent so
 * that it parses as a double again. */
static int add_unit(struct json_object *o, const char *key, double d)
{
	char s[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, d);
		if (strtod(s, NULL) == d)
			break;
	}
	if (!strpbrk(s, ".eE"))
		strcat(s, ".0");
	return add(o, key, json_object_new_double_s(d, s));
}

/* "key" as a string if the bytes are valid UTF-8 without NUL, else
 * "key_b64".  scratch is reused between calls. */
static int add_bytes(struct json_object *o, const char *key,
		     const unsigned char *p, size_t len,
		     struct t4dx_buf *scratch)
{
	if (t4dx_utf8_valid(p, len))
		return add(o, key, json_object_new_string_len((const char *)p,
							      (int)len));
	char k[32];
	snprintf(k, sizeof(k), "%s_b64", key);
	scratch->len = 0;
	if (t4dx_base64_encode(scratch, p, len))
		return ENOMEM;
	return add(o, k, json_object_new_string_len((const char *)scratch->p,
						     (int)scratch->len));
}

/* Fields shared by put and mkdir, and by update_fields under a mask. */
static int add_fields(struct json_object *o, const struct t4dx_entry *e,
		      uint32_t mask)
{
	int rc = 0;
	if (!rc && (mask & T4DX_F_MODE))
		rc = add_u64(o, "mode", e->mode);
	if (!rc && (mask & T4DX_F_UID))
		rc = add_u64(o, "uid", e->uid);
	if (!rc && (mask & T4DX_F_GID))
		rc = add_u64(o, "gid", e->gid);
	if (!rc && (mask & T4DX_F_ATIME))
		rc = add_i64(o, "atime", e->atime_ns);
	if (!rc && (mask & T4DX_F_MTIME))
		rc = add_i64(o, "mtime", e->mtime_ns);
	if (!rc && (mask & T4DX_F_CTIME))
		rc = add_i64(o, "ctime", e->ctime_ns);
	if (!rc && (mask & T4DX_F_KAPPA))
		rc = add_unit(o, "kappa", e->kappa);
	if (!rc && (mask & T4DX_F_IMPORTANCE))
		rc = add_unit(o, "importance", e->importance);
	if (!rc && (mask & T4DX_F_TYPE))
		rc = add(o, "type", json_object_new_string(
				 t4dx_type_name(e->type)));
	if (!rc && (mask & T4DX_F_EVENT_TIME))
		rc = add_i64(o, "event_time", e->event_time_ns);
	if (!rc && (mask & T4DX_F_ACCESS))
		rc = add_u64(o, "access_count", e->access_count);
	return rc;
}

#define F_INODE (T4DX_F_MODE | T4DX_F_UID | T4DX_F_GID | T4DX_F_ATIME | \
		 T4DX_F_MTIME | T4DX_F_CTIME)
#define F_MEMORY (T4DX_F_KAPPA | T4DX_F_IMPORTANCE | T4DX_F_TYPE | \
		  T4DX_F_EVENT_TIME | T4DX_F_ACCESS)

/* Refuse what the decoder would refuse. */
static int check_encodable(const struct t4dx_rec *r)
{
	const struct t4dx_entry *e = &r->e;
	if (r->lsn == 0 || (int)r->op < T4DX_OP_PUT || r->op > OP_MAX)
		return EINVAL;
	if (r->op == T4DX_OP_PROBE)
		return 0;
	if (!name_ok(e->name, e->name_len))
		return EINVAL;
	if (r->op == T4DX_OP_RENAME &&
	    !name_ok(r->new_name, r->new_name_len))
		return EINVAL;
	uint32_t mask = r->op == T4DX_OP_PUT ? T4DX_F_ALL :
			r->op == T4DX_OP_UPDATE ? r->mask : 0;
	if (r->op == T4DX_OP_UPDATE && (mask & ~(uint32_t)T4DX_F_ALL))
		return EINVAL;
	if ((mask & T4DX_F_KAPPA) && !unit_ok(e->kappa))
		return EINVAL;
	if ((mask & T4DX_F_IMPORTANCE) && !unit_ok(e->importance))
		return EINVAL;
	if ((mask & T4DX_F_TYPE) && e->type > T4DX_PROCEDURAL)
		return EINVAL;
	if (r->op == T4DX_OP_PUT && !e->content && e->size)
		return EINVAL;
	if (e->content && e->content->len > INT_MAX / 8)
		return EINVAL;  /* json-c lengths are int */
	return 0;
}

static int build(const struct t4dx_rec *r, struct json_object *o,
		 struct t4dx_buf *scratch)
{
	const struct t4dx_entry *e = &r->e;
	int rc = add_u64(o, "lsn", r->lsn);
	if (!rc)
		rc = add(o, "op", json_object_new_string(t4dx_op_name(r->op)));
	if (rc || r->op == T4DX_OP_PROBE)
		return rc;
	rc = add_u64(o, "parent", e->parent);
	if (!rc)
		rc = add_bytes(o, "name", (const unsigned char *)e->name,
			       e->name_len, scratch);
	if (rc)
		return rc;
	switch (r->op) {
	case T4DX_OP_PUT:
	case T4DX_OP_MKDIR:
		rc = add_u64(o, "ino", e->ino);
		if (!rc)
			rc = add_fields(o, e, F_INODE);
		if (rc || r->op == T4DX_OP_MKDIR)
			return rc;
		char hex[33];
		t4dx_hex_encode(hex, e->id, sizeof(e->id));
		rc = add(o, "id", json_object_new_string(hex));
		if (!rc)
			rc = add_fields(o, e, F_MEMORY);
		if (!rc) {
			static const unsigned char none[1];
			const unsigned char *p = e->content ?
						 e->content->data : none;
			size_t len = e->content ? e->content->len : 0;
			rc = add_bytes(o, "content", p, len, scratch);
		}
		return rc;
	case T4DX_OP_RENAME:
		rc = add_u64(o, "new_parent", r->new_parent);
		if (!rc)
			rc = add_bytes(o, "new_name",
				       (const unsigned char *)r->new_name,
				       r->new_name_len, scratch);
		return rc;
	case T4DX_OP_UPDATE:
		return add_fields(o, e, r->mask);
	default:        /* delete, rmdir */
		return 0;
	}
}

int t4dx_rec_encode(const struct t4dx_rec *r, struct t4dx_buf *out)
{
	int rc = check_encodable(r);
	if (rc)
		return rc;
	struct t4dx_buf scratch = { 0 };
	struct json_object *o = json_object_new_object();
	if (!o)
		return ENOMEM;
	rc = build(r, o, &scratch);
	t4dx_buf_free(&scratch);
	if (rc)
		goto out;
	size_t len = 0;
	const char *s = json_object_to_json_string_length(o,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
			&len);
	if (!s || len < 2 || s[len - 1] != '}') {
		rc = ENOMEM;
		goto out;
	}
	if (len > INT_MAX - 32) {       /* the decoder's limit */
		rc = EINVAL;
		goto out;
	}
	len--;                  /* drop the closing brace */
	size_t start = out->len;
	rc = t4dx_buf_reserve(out, len + sizeof(",\"crc\":4294967295}\n"));
	if (rc)
		goto out;
	t4dx_buf_add(out, s, len);
	uint32_t crc = crc_of(out->p + start, len);
	rc = t4dx_buf_addf(out, ",\"crc\":%u}\n", (unsigned)crc);
out:
	json_object_put(o);
	return rc;
}

/* ---- decoding -------------------------------------------------------- */

#define BAD T4DX_ECORRUPT

/* Check the trailing ,"crc":N} against the bytes before it. */
static int check_crc(const char *line, size_t len)
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
	return crc_of(line, i - tlen) == (uint32_t)v ? 0 : BAD;
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
	if (!unit_ok(d))
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
		if (!name_ok(s, n))
			return BAD;
		memcpy(name, s, n);
	} else {
		n = slen;
		if (!name_ok(s, n))
			return BAD;
		memcpy(name, s, n);
	}
	name[n] = 0;
	*name_len = (uint16_t)n;
	return 0;
}

static int get_content(struct json_object *o, struct t4dx_entry *e)
{
	const char *s;
	size_t slen, n;
	bool b64;
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

static const struct {
	const char *key;
	uint32_t bit;
} field_keys[] = {
	{ "mode", T4DX_F_MODE }, { "uid", T4DX_F_UID }, { "gid", T4DX_F_GID },
	{ "atime", T4DX_F_ATIME }, { "mtime", T4DX_F_MTIME },
	{ "ctime", T4DX_F_CTIME }, { "kappa", T4DX_F_KAPPA },
	{ "importance", T4DX_F_IMPORTANCE }, { "type", T4DX_F_TYPE },
	{ "event_time", T4DX_F_EVENT_TIME },
	{ "access_count", T4DX_F_ACCESS },
};

/* Read the fields in mask; each must be present. */
static int get_fields(struct json_object *o, struct t4dx_entry *e,
		      uint32_t mask)
{
	int rc = 0;
	if (!rc && (mask & T4DX_F_MODE))
		rc = get_u32(o, "mode", &e->mode);
	if (!rc && (mask & T4DX_F_UID))
		rc = get_u32(o, "uid", &e->uid);
	if (!rc && (mask & T4DX_F_GID))
		rc = get_u32(o, "gid", &e->gid);
	if (!rc && (mask & T4DX_F_ATIME))
		rc = get_i64(o, "atime", &e->atime_ns);
	if (!rc && (mask & T4DX_F_MTIME))
		rc = get_i64(o, "mtime", &e->mtime_ns);
	if (!rc && (mask & T4DX_F_CTIME))
		rc = get_i64(o, "ctime", &e->ctime_ns);
	if (!rc && (mask & T4DX_F_KAPPA))
		rc = get_unit(o, "kappa", &e->kappa);
	if (!rc && (mask & T4DX_F_IMPORTANCE))
		rc = get_unit(o, "importance", &e->importance);
	if (!rc && (mask & T4DX_F_TYPE))
		rc = get_type(o, "type", &e->type);
	if (!rc && (mask & T4DX_F_EVENT_TIME))
		rc = get_i64(o, "event_time", &e->event_time_ns);
	if (!rc && (mask & T4DX_F_ACCESS))
		rc = get_u64(o, "access_count", &e->access_count);
	return rc;
}

static int parse(struct json_object *o, struct t4dx_rec *r)
{
	struct t4dx_entry *e = &r->e;
	if (get_u64(o, "lsn", &r->lsn) || r->lsn == 0)
		return BAD;
	struct json_object *v = field(o, "op");
	if (!v || !json_object_is_type(v, json_type_string))
		return BAD;
	int op = op_parse(json_object_get_string(v),
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
		if (get_u64(o, "ino", &e->ino) || get_fields(o, e, F_INODE))
			return BAD;
		if (r->op == T4DX_OP_MKDIR)
			return 0;
		v = field(o, "id");
		if (!v || !json_object_is_type(v, json_type_string) ||
		    t4dx_hex_decode(json_object_get_string(v),
				    (size_t)json_object_get_string_len(v),
				    e->id, sizeof(e->id)) ||
		    get_fields(o, e, F_MEMORY))
			return BAD;
		return get_content(o, e);
	}
	case T4DX_OP_RENAME:
		if (get_u64(o, "new_parent", &r->new_parent) ||
		    get_name(o, "new_name", r->new_name, &r->new_name_len))
			return BAD;
		return 0;
	case T4DX_OP_UPDATE:
		r->mask = 0;
		for (size_t i = 0; i < sizeof(field_keys) / sizeof(field_keys[0]);
		     i++)
			if (field(o, field_keys[i].key))
				r->mask |= field_keys[i].bit;
		return get_fields(o, e, r->mask);
	default:        /* delete, rmdir */
		e->tombstone = true;
		return 0;
	}
}

int t4dx_rec_decode(const char *line, size_t len, struct t4dx_rec *r)
{
	memset(r, 0, sizeof(*r));
	if (len > INT_MAX || check_crc(line, len))
		return BAD;
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	int rc = BAD;
	if (o && json_tokener_get_error(tok) == json_tokener_success &&
	    json_tokener_get_parse_end(tok) == len &&
	    json_object_is_type(o, json_type_object))
		rc = parse(o, r);
	json_object_put(o);
	json_tokener_free(tok);
	if (rc) {
		t4dx_entry_clear(&r->e);
		memset(r, 0, sizeof(*r));
	}
	return rc;
}
