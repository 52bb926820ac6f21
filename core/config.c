/*
 * config.c - the JSON configuration file (see config.h, DESIGN.md
 * section 8).
 *
 * json-c parses and decodes the text, but its "strict" mode still lets
 * through single-quoted strings, raw control characters in strings, "1.",
 * NaN and Infinity, and it keeps the last of duplicate keys without a
 * word.  So once json-c has accepted the text, a small walker checks it
 * against the JSON grammar (RFC 8259) and looks for duplicate sections and
 * keys; only then are the values checked against the table below, into a
 * copy of the caller's struct that replaces it only if all is well.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "index.h"

#define MAX_FILE (1 << 20)
#define MAX_DEPTH 16            /* the file is two levels deep */

static const char *const sections[] = {
	"breaker", "wal", "memtable", "fallback", "health", "compaction",
	"limits", "vector",
};
#define NSECTIONS (sizeof(sections) / sizeof(*sections))

enum kind { K_INT, K_NUM, K_BOOL, K_POLICY, K_PATH, K_EMBEDDER, K_ARGV };

struct key {
	unsigned sec;                   /* index in sections[] */
	const char *name;
	enum kind kind;
	size_t off, size;               /* of the field in struct t4dx_config */
	uint64_t imin, imax;            /* K_INT */
	double dmin, dmax;              /* K_NUM */
	bool open_min;                  /* K_NUM: dmin itself is excluded */
};

#define FIELD(s, k) offsetof(struct t4dx_config, s.k), \
	sizeof(((struct t4dx_config *)0)->s.k)
#define INT(i, s, k, lo, hi) { i, #k, K_INT, FIELD(s, k), lo, hi, 0, 0, false }
#define NUM(i, s, k, lo, hi, open) \
	{ i, #k, K_NUM, FIELD(s, k), 0, 0, lo, hi, open }
#define STR(i, s, k, kind) { i, #k, kind, FIELD(s, k), 0, 0, 0, 0, false }
#define BOOL(i, s, k) { i, #k, K_BOOL, FIELD(s, k), 0, 0, 0, 0, false }

/* In the order of the file; render writes them in this order too. */
static const struct key keys[] = {
	INT(0, breaker, failure_threshold, 1, 1000000),
	INT(0, breaker, success_threshold, 1, 1000000),
	NUM(0, breaker, reset_timeout_s, 0, 86400, true),
	INT(1, wal, max_file_bytes, 4096, UINT64_C(1) << 40),
	INT(1, wal, archive_max_bytes, 0, UINT64_C(1) << 50),
	INT(1, wal, checkpoint_bytes, 65536, UINT64_C(1) << 50),
	INT(1, wal, commit_interval_ms, 0, 60000),
	INT(2, memtable, max_bytes, 4096, UINT64_C(1) << 40),
	INT(2, memtable, max_items, 1, 100000000),
	INT(3, fallback, max_items, 1, 10000000),
	INT(3, fallback, cache_bytes, 0, UINT64_C(1) << 40),
	INT(3, fallback, max_queue, 1, 10000000),
	INT(3, fallback, max_queue_bytes, 65536, UINT64_C(1) << 40),
	INT(3, fallback, drain_batch, 1, 100000),
	STR(3, fallback, policy, K_POLICY),
	STR(3, fallback, rescue_dir, K_PATH),
	BOOL(3, fallback, rescue_fallback),
	NUM(4, health, interval_s, 0, 86400, true),
	NUM(4, health, timeout_s, 0, 3600, true),
	INT(4, health, alert_threshold, 1, 1000000),
	INT(4, health, verify_bytes, 4096, UINT64_C(1) << 40),
	BOOL(4, health, verify_at_start),
	NUM(5, compaction, nrem_kappa_boost, 0, 1, false),
	NUM(5, compaction, prune_min_kappa, 0, 1, false),
	NUM(5, compaction, prune_max_importance, 0, 1, false),
	NUM(5, compaction, prune_max_age_s, 0, 1e12, false),
	INT(6, limits, max_item_bytes, 1, T4DX_ITEM_BYTES_MAX),
	INT(6, limits, write_buffer_bytes, 4096, UINT64_C(1) << 44),
	INT(7, vector, dim, 1, T4DX_VEC_DIM_MAX),
	STR(7, vector, embedder, K_EMBEDDER),
	STR(7, vector, command, K_ARGV),
	NUM(7, vector, timeout_s, 0, 3600, true),
	NUM(7, vector, start_timeout_s, 0, 3600, true),
	NUM(7, vector, defer_s, 0, 3600, false),
	INT(7, vector, index_m, 2, T4DX_INDEX_M_MAX),
	INT(7, vector, ef_construction, 1, T4DX_INDEX_EF_MAX),
	INT(7, vector, ef_search, 1, T4DX_INDEX_EF_MAX),
	INT(7, vector, index_min_items, 1, UINT32_MAX),
	NUM(7, vector, min_recall, 0, 1.01, false),
};
#define NKEYS (sizeof(keys) / sizeof(*keys))
_Static_assert(NKEYS <= 64, "struct walk keeps a bit per key");

static int fail(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t msglen, const char *fmt, ...)
{
	if (msg && msglen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return T4DX_ECONFIG;
}

static unsigned line_at(const char *s, size_t off)
{
	unsigned line = 1;
	for (size_t i = 0; i < off; i++)
		line += s[i] == '\n';
	return line;
}

/* A name from the file, fit to quote in a one-line message. */
static const char *clean(char out[72], const char *s)
{
	size_t i = 0;
	for (; s[i] && i < 64; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = c < 0x20 || c == 0x7f ? '?' : s[i];
	}
	strcpy(out + i, s[i] ? "..." : "");
	return out;
}

/* Parsing and rendering run in the "C" locale, whatever the process's:
 * a decimal comma would break the JSON we write, and json-c's own locale
 * juggling leaks memory on every parse when LC_NUMERIC is not "C". */
struct c_locale { locale_t c, old; };

static void c_locale_enter(struct c_locale *l)
{
	l->c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	l->old = l->c ? uselocale(l->c) : (locale_t)0;
}

static void c_locale_leave(struct c_locale *l)
{
	if (l->c) {
		uselocale(l->old);
		freelocale(l->c);
	}
}

/* Whole numbers as such ("60", not "6e+01"), others as the shortest
 * "%.*g" that reads back as exactly v.  Caller is in the C locale. */
static void fmt_double(char out[32], double v)
{
	if (!isfinite(v))
		strcpy(out, "null");
	else if (v == (double)(int64_t)v && v > -1e15 && v < 1e15)
		snprintf(out, 32, "%.0f", v);
	else
		t4dx_fmt_double(out, 32, v);
}

/* ---- the grammar walker ---------------------------------------------- */

struct walk {
	const char *s;
	size_t n, i;
	const char *err;                /* what is wrong at i */
	char dup[160];                  /* or the duplicate's name */
	uint32_t seen_sec;              /* bit per sections[] */
	uint64_t seen_key;              /* bit per keys[] */
};

static int w_value(struct walk *w, int depth, int sec);

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void w_ws(struct walk *w)
{
	while (w->i < w->n && is_ws(w->s[w->i]))
		w->i++;
}

static bool w_peek(struct walk *w, char c)
{
	return w->i < w->n && w->s[w->i] == c;
}

static bool w_digits(struct walk *w)
{
	size_t start = w->i;
	while (w->i < w->n && w->s[w->i] >= '0' && w->s[w->i] <= '9')
		w->i++;
	return w->i > start;
}

static int w_err(struct walk *w, const char *err)
{
	w->err = err;
	return -1;
}

/* A string at w->i; *nul is set if it holds an escaped NUL. */
static int w_string(struct walk *w, bool *nul)
{
	w->i++;
	while (w->i < w->n) {
		unsigned char c = (unsigned char)w->s[w->i++];
		if (c == '"')
			return 0;
		if (c < 0x20)
			return w->i--, w_err(w, "control character in a "
					     "string");
		if (c != '\\')
			continue;
		if (w->i >= w->n)
			break;
		c = (unsigned char)w->s[w->i++];
		if (c == 'u') {
			if (w->n - w->i < 4)
				break;
			for (int k = 0; k < 4; k++)
				if (!isxdigit((unsigned char)w->s[w->i + k]))
					return w_err(w, "bad \\u escape");
			if (nul && !strncmp(w->s + w->i, "0000", 4))
				*nul = true;
			w->i += 4;
		} else if (!strchr("\"\\/bfnrt", c) || !c) {
			return w->i--, w_err(w, "bad escape in a string");
		}
	}
	return w_err(w, "unterminated string");
}

/* Is the key in s[a..b) (quotes included) the name given?  Escapes are
 * left to json-c to decode. */
static bool w_key_is(const char *s, size_t a, size_t b, const char *name)
{
	size_t len = b - a - 2;
	if (!memchr(s + a, '\\', b - a))
		return len == strlen(name) && !memcmp(s + a + 1, name, len);
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = NULL;
	if (tok)
		o = json_tokener_parse_ex(tok, s + a, (int)(b - a));
	bool same = o && !strcmp(json_object_get_string(o), name);
	json_object_put(o);
	if (tok)
		json_tokener_free(tok);
	return same;
}

/* An object; sec is -1 at the top level, the index of the section whose
 * value this is, or -2 anywhere else (no duplicate check there: any
 * object that deep is a type error anyway). */
static int w_object(struct walk *w, int depth, int sec)
{
	w->i++;
	w_ws(w);
	if (w_peek(w, '}'))
		return w->i++, 0;
	for (;;) {
		w_ws(w);
		if (!w_peek(w, '"'))
			return w_err(w, "expected a key in double quotes");
		size_t a = w->i;
		bool nul = false;
		if (w_string(w, &nul))
			return -1;
		if (nul)
			return w->i = a, w_err(w, "NUL character in a key");
		int child = -2;
		if (sec == -1) {
			for (unsigned k = 0; k < NSECTIONS; k++)
				if (w_key_is(w->s, a, w->i, sections[k]))
					child = (int)k;
			if (child >= 0 && (w->seen_sec >> child & 1)) {
				snprintf(w->dup, sizeof(w->dup), "section %s",
					 sections[child]);
				return w->i = a, -1;
			}
			if (child >= 0)
				w->seen_sec |= 1u << child;
		} else if (sec >= 0) {
			for (unsigned k = 0; k < NKEYS; k++) {
				if (keys[k].sec != (unsigned)sec ||
				    !w_key_is(w->s, a, w->i, keys[k].name))
					continue;
				if (w->seen_key >> k & 1) {
					snprintf(w->dup, sizeof(w->dup),
						 "key %s.%s", sections[sec],
						 keys[k].name);
					return w->i = a, -1;
				}
				w->seen_key |= UINT64_C(1) << k;
			}
		}
		w_ws(w);
		if (!w_peek(w, ':'))
			return w_err(w, "expected ':'");
		w->i++;
		if (w_value(w, depth + 1, child))
			return -1;
		w_ws(w);
		if (w_peek(w, '}'))
			return w->i++, 0;
		if (!w_peek(w, ','))
			return w_err(w, "expected ',' or '}'");
		w->i++;
	}
}

static int w_value(struct walk *w, int depth, int sec)
{
	if (depth > MAX_DEPTH)
		return w_err(w, "nested too deep");
	w_ws(w);
	if (w->i >= w->n)
		return w_err(w, "unexpected end of input");
	char c = w->s[w->i];
	if (c == '{')
		return w_object(w, depth, sec);
	if (c == '"')
		return w_string(w, NULL);
	if (c == '[') {
		w->i++;
		w_ws(w);
		if (w_peek(w, ']'))
			return w->i++, 0;
		for (;;) {
			if (w_value(w, depth + 1, -2))
				return -1;
			w_ws(w);
			if (w_peek(w, ']'))
				return w->i++, 0;
			if (!w_peek(w, ','))
				return w_err(w, "expected ',' or ']'");
			w->i++;
		}
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		if (c == '-')
			w->i++;
		if (w_peek(w, '0'))
			w->i++;
		else if (!w_digits(w))
			return w_err(w, "bad number");
		if (w_peek(w, '.') && (w->i++, !w_digits(w)))
			return w_err(w, "bad number");
		if ((w_peek(w, 'e') || w_peek(w, 'E')) &&
		    (w->i++, (w_peek(w, '+') || w_peek(w, '-')) && w->i++,
		     !w_digits(w)))
			return w_err(w, "bad number");
		return 0;
	}
	static const char *const lit[] = { "true", "false", "null" };
	for (int k = 0; k < 3; k++) {
		size_t len = strlen(lit[k]);
		if (w->n - w->i >= len && !memcmp(w->s + w->i, lit[k], len)) {
			w->i += len;
			return 0;
		}
	}
	return w_err(w, "unexpected character");
}

/* ---- values ---------------------------------------------------------- */

static const char *describe(struct json_object *v, char out[48])
{
	switch (json_object_get_type(v)) {
	case json_type_null: return "null";
	case json_type_boolean:
		return json_object_get_boolean(v) ? "true" : "false";
	case json_type_string: return "a string";
	case json_type_array: return "an array";
	case json_type_object: return "an object";
	case json_type_int:
		/* json-c saturates what does not fit in 64 bits */
		if (json_object_get_int64(v) == INT64_MIN)
			return "a huge negative integer";
		if (json_object_get_uint64(v) == UINT64_MAX)
			return "a huge integer";
		break;
	case json_type_double:
		break;
	}
	snprintf(out, 48, "%s", json_object_to_json_string(v));
	return out;
}

/* A program and its arguments: a JSON array of at most ARGV_MAX strings,
 * none with a NUL, the first not empty (or no string at all: no
 * program).  Kept as the array's JSON text, which fits the field. */
#define ARGV_MAX 256
static int set_argv(const struct key *k, struct json_object *v, char *dst,
		    char *msg, size_t msglen)
{
	const char *sec = sections[k->sec];
	char got[48];
	if (!json_object_is_type(v, json_type_array))
		return fail(msg, msglen, "%s.%s: must be an array of strings "
			    "(the program, then its arguments), got %s", sec,
			    k->name, describe(v, got));
	size_t n = json_object_array_length(v);
	if (n > ARGV_MAX)
		return fail(msg, msglen, "%s.%s: must have at most %d strings",
			    sec, k->name, ARGV_MAX);
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(v, i);
		if (!json_object_is_type(a, json_type_string))
			return fail(msg, msglen, "%s.%s: must be an array of "
				    "strings, got %s at %zu", sec, k->name,
				    describe(a, got), i);
		size_t len = (size_t)json_object_get_string_len(a);
		if (strlen(json_object_get_string(a)) != len)
			return fail(msg, msglen, "%s.%s: must not contain a NUL "
				    "character", sec, k->name);
		if (i == 0 && len == 0)
			return fail(msg, msglen, "%s.%s: the program's name must "
				    "not be empty", sec, k->name);
	}
	const char *s = json_object_to_json_string_ext(
		v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s)
		return ENOMEM;
	if (strlen(s) >= k->size)
		return fail(msg, msglen, "%s.%s: must be shorter than %zu "
			    "bytes as JSON", sec, k->name, k->size);
	memset(dst, 0, k->size);
	memcpy(dst, s, strlen(s));
	return 0;
}

/* Check v and store it into c, or say what is wrong. */
static int set(const struct key *k, struct json_object *v,
	       struct t4dx_config *c, char *msg, size_t msglen)
{
	char *dst = (char *)c + k->off, got[48], lo[32], hi[32];
	const char *sec = sections[k->sec];
	enum json_type t = json_object_get_type(v);
	switch (k->kind) {
	case K_INT: {
		int64_t i = t == json_type_int ? json_object_get_int64(v) : -1;
		uint64_t u = i < 0 ? 0 : json_object_get_uint64(v);
		if (i < 0 || u < k->imin || u > k->imax)
			return fail(msg, msglen, "%s.%s: must be an integer "
				    "from %" PRIu64 " to %" PRIu64 ", got %s",
				    sec, k->name, k->imin, k->imax,
				    describe(v, got));
		if (k->size == sizeof(unsigned)) {
			unsigned x = (unsigned)u;
			memcpy(dst, &x, sizeof(x));
		} else {
			memcpy(dst, &u, sizeof(u));
		}
		return 0;
	}
	case K_NUM: {
		bool num = t == json_type_int || t == json_type_double;
		double d = num ? json_object_get_double(v) : NAN;
		bool low = k->open_min ? d <= k->dmin : d < k->dmin;
		if (!isfinite(d) || low || d > k->dmax) {
			fmt_double(lo, k->dmin);
			fmt_double(hi, k->dmax);
			return fail(msg, msglen, k->open_min ?
				    "%s.%s: must be a number greater than %s "
				    "and at most %s, got %s" :
				    "%s.%s: must be a number from %s to %s, "
				    "got %s", sec, k->name, lo, hi,
				    describe(v, got));
		}
		if (d == 0)
			d = 0;          /* -0 would not survive a round trip */
		memcpy(dst, &d, sizeof(d));
		return 0;
	}
	case K_BOOL: {
		if (t != json_type_boolean)
			return fail(msg, msglen, "%s.%s: must be true or false, "
				    "got %s", sec, k->name, describe(v, got));
		bool b = json_object_get_boolean(v);
		memcpy(dst, &b, sizeof(b));
		return 0;
	}
	case K_ARGV:
		return set_argv(k, v, dst, msg, msglen);
	case K_POLICY:
	case K_PATH:
	case K_EMBEDDER:
		break;
	}
	if (t != json_type_string)
		return fail(msg, msglen, "%s.%s: must be a string, got %s", sec,
			    k->name, describe(v, got));
	const char *s = json_object_get_string(v);
	size_t len = (size_t)json_object_get_string_len(v);
	if (strlen(s) != len)
		return fail(msg, msglen, "%s.%s: must not contain a NUL "
			    "character", sec, k->name);
	if (k->kind == K_POLICY && strcmp(s, "queue") && strcmp(s, "reject")) {
		char q[72];
		return fail(msg, msglen, "%s.%s: must be \"queue\" or "
			    "\"reject\", got \"%s\"", sec, k->name,
			    clean(q, s));
	}
	if (k->kind == K_EMBEDDER && strcmp(s, "builtin") && strcmp(s, "off") &&
	    strcmp(s, "command")) {
		char q[72];
		return fail(msg, msglen, "%s.%s: must be \"builtin\", "
			    "\"command\" or \"off\", got \"%s\"", sec, k->name,
			    clean(q, s));
	}
	if (k->kind == K_PATH && len && s[0] != '/')
		return fail(msg, msglen, "%s.%s: must be \"\" or an absolute "
			    "path", sec, k->name);
	if (len >= k->size)
		return fail(msg, msglen, "%s.%s: must be shorter than %zu "
			    "bytes", sec, k->name, k->size);
	/* zero the tail too, so that equal configs compare equal bytewise */
	memset(dst, 0, k->size);
	memcpy(dst, s, len);
	return 0;
}

static int apply(struct json_object *top, struct t4dx_config *c, char *msg,
		 size_t msglen)
{
	char q[72], got[48];
	json_object_object_foreach(top, sname, sval) {
		unsigned si = 0;
		while (si < NSECTIONS && strcmp(sname, sections[si]))
			si++;
		if (si == NSECTIONS)
			return fail(msg, msglen, "unknown section %s",
				    clean(q, sname));
		if (!json_object_is_type(sval, json_type_object))
			return fail(msg, msglen, "%s: must be an object, "
				    "got %s", sname, describe(sval, got));
		json_object_object_foreach(sval, kname, kval) {
			const struct key *k = NULL;
			for (size_t i = 0; i < NKEYS && !k; i++)
				if (keys[i].sec == si &&
				    !strcmp(kname, keys[i].name))
					k = &keys[i];
			if (!k)
				return fail(msg, msglen, "unknown key %s.%s",
					    sname, clean(q, kname));
			int rc = set(k, kval, c, msg, msglen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int t4dx_config_parse(const char *text, size_t len, struct t4dx_config *cfg,
		      char *msg, size_t msglen)
{
	if (msg && msglen)
		msg[0] = '\0';
	if (len >= INT_MAX)     /* json-c takes an int */
		return fail(msg, msglen, "configuration text too large");
	const char *nul = memchr(text, '\0', len);
	if (nul)
		return fail(msg, msglen, "not valid JSON: NUL byte at line %u",
			    line_at(text, (size_t)(nul - text)));

	struct json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
	if (!tok)
		return ENOMEM;
	struct c_locale loc;
	c_locale_enter(&loc);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
			       JSON_TOKENER_VALIDATE_UTF8 |
			       JSON_TOKENER_ALLOW_TRAILING_CHARS);
	struct json_object *top = json_tokener_parse_ex(tok, text, (int)len);
	size_t end = json_tokener_get_parse_end(tok);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		/* a NUL tells json-c the input is over */
		top = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);

	int rc = 0;
	char got[48];
	size_t i = end;
	while (i < len && is_ws(text[i]))
		i++;
	if (jerr != json_tokener_success) {
		rc = fail(msg, msglen, "not valid JSON: %s at line %u",
			  json_tokener_error_desc(jerr), line_at(text, end));
	} else if (i < len) {
		rc = fail(msg, msglen, "not valid JSON: trailing characters "
			  "after the object at line %u", line_at(text, i));
	} else if (!json_object_is_type(top, json_type_object)) {
		rc = fail(msg, msglen, "the top level must be a JSON object, "
			  "got %s", describe(top, got));
	} else {
		struct walk w = { .s = text, .n = end };
		if (w_value(&w, 0, -1) == 0) {
			struct t4dx_config copy;
			memcpy(&copy, cfg, sizeof(copy));
			rc = apply(top, &copy, msg, msglen);
			if (!rc && copy.limits.write_buffer_bytes <
					   copy.limits.max_item_bytes)
				rc = fail(msg, msglen, "limits.write_buffer_bytes "
					  "(%llu) must be at least "
					  "limits.max_item_bytes (%llu): one "
					  "file of the largest size must fit",
					  (unsigned long long)
					  copy.limits.write_buffer_bytes,
					  (unsigned long long)
					  copy.limits.max_item_bytes);
			if (!rc && !strcmp(copy.vector.embedder, "command") &&
			    !strcmp(copy.vector.command, "[]"))
				rc = fail(msg, msglen, "vector.command: must name "
					  "a program when vector.embedder is "
					  "\"command\"");
			if (!rc)
				memcpy(cfg, &copy, sizeof(copy));
		} else if (w.err) {
			rc = fail(msg, msglen, "not valid JSON: %s at line %u",
				  w.err, line_at(text, w.i));
		} else {
			rc = fail(msg, msglen, "duplicate %s at line %u", w.dup,
				  line_at(text, w.i));
		}
	}
	json_object_put(top);
	c_locale_leave(&loc);
	return rc;
}

int t4dx_config_load(const char *path, struct t4dx_config *cfg, char *msg,
		     size_t msglen)
{
	char *text = NULL, why[512];
	size_t len = 0;
	int rc = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno;
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st)) {
		rc = errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = EISDIR;
		goto out;
	}
	/* Read one byte past the limit instead of trusting st_size: the
	 * file may grow, or be a pipe. */
	text = malloc(MAX_FILE + 1);
	if (!text) {
		rc = ENOMEM;
		goto out;
	}
	while (len <= MAX_FILE) {
		ssize_t n = read(fd, text + len, MAX_FILE + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > MAX_FILE)
		rc = fail(why, sizeof(why), "larger than %d bytes", MAX_FILE);
	else if (len == 0)
		rc = fail(why, sizeof(why), "empty file");
	else
		rc = t4dx_config_parse(text, len, cfg, why, sizeof(why));
out:
	if (rc > 0) {
		char e[128];
		snprintf(why, sizeof(why), "%s", strerror_r(rc, e, sizeof(e)));
	}
	if (rc && msg && msglen)
		snprintf(msg, msglen, "%s: %s", path, why);
	if (fd >= 0)
		close(fd);
	free(text);
	return rc;
}

/* The JSON value of key k of cfg, or NULL if out of memory. */
static struct json_object *render_value(const struct key *k,
					const struct t4dx_config *cfg)
{
	const char *src = (const char *)cfg + k->off;
	switch (k->kind) {
	case K_INT: {
		uint64_t x;
		if (k->size == sizeof(unsigned)) {
			unsigned u;
			memcpy(&u, src, sizeof(u));
			x = u;
		} else {
			memcpy(&x, src, sizeof(x));
		}
		return json_object_new_uint64(x);
	}
	case K_NUM: {
		double x;
		char v[32];
		memcpy(&x, src, sizeof(x));
		fmt_double(v, x);       /* "null" if not finite */
		return json_object_new_double_s(x, v);
	}
	case K_BOOL: {
		bool x;
		memcpy(&x, src, sizeof(x));
		return json_object_new_boolean(x);
	}
	case K_ARGV:
		return json_tokener_parse(src);
	case K_POLICY:
	case K_PATH:
	case K_EMBEDDER:
		break;
	}
	return json_object_new_string_len(src, (int)strnlen(src, k->size));
}

int t4dx_config_render(const struct t4dx_config *cfg, struct t4dx_buf *out)
{
	struct c_locale loc;
	struct json_object *top = json_object_new_object(), *sec = NULL;
	int rc = top ? 0 : ENOMEM;
	c_locale_enter(&loc);
	/* json-c keeps the keys in the order they are added */
	for (size_t i = 0; i < NKEYS && !rc; i++) {
		const struct key *k = &keys[i];
		if (i == 0 || keys[i - 1].sec != k->sec) {
			sec = json_object_new_object();
			if (!sec || json_object_object_add(top, sections[k->sec],
							   sec)) {
				json_object_put(sec);
				rc = ENOMEM;
				break;
			}
		}
		struct json_object *v = render_value(k, cfg);
		if (!v || json_object_object_add(sec, k->name, v)) {
			json_object_put(v);
			rc = ENOMEM;
		}
	}
	const char *s = rc ? NULL : json_object_to_json_string_ext(
		top, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!rc)
		rc = s ? t4dx_buf_add(out, s, strlen(s)) : ENOMEM;
	if (!rc)
		rc = t4dx_buf_add(out, "\n", 1);
	json_object_put(top);
	c_locale_leave(&loc);
	return rc;
}
