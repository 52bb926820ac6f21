/*
 * query.c - a query name of MOUNT/search/ (see the essay at the top of
 * search.c): its options parsed and checked, and the search it asks for
 * run; the reasons a name is refused go to the daemon's log.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "t4dxfs.h"
#include "embed.h"
#include "query.h"
#include "vec.h"

#define LOG_BURST 20            /* log lines a minute, at most */

/* ---- the log ------------------------------------------------------------ */

void search_log(struct t4dxfs *fs, const char *fmt, ...)
{
	struct search_state *s = &fs->search;
	int64_t now = t4dx_now_ns() / 1000000000 / 60;
	pthread_mutex_lock(&s->mu);
	if (now != s->log_minute) {
		s->log_minute = now;
		s->log_lines = 0;
	}
	bool say = s->log_lines++ < LOG_BURST;
	pthread_mutex_unlock(&s->mu);
	if (!say)
		return;
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* the name may hold any byte: control bytes are shown as '?' */
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (fs->foreground)
		fprintf(stderr, "t4dxfs: search: %s\n", text);
	else
		syslog(LOG_NOTICE, "search: %s", text);
}

/* ---- parsing a query ---------------------------------------------------- */

struct parsed {
	const char *text;               /* in the name, not NUL-terminated */
	size_t text_len;
	bool by_id;
	uint8_t id[16];
	struct t4dx_search_opts o;
};

/* Decode %XX escapes of s[0..len) into out (NUL-terminated, at most
 * T4DX_NAME_MAX bytes): 0 or EINVAL. */
static int unescape(const char *s, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			if (len - i < 3)
				return EINVAL;
			if (t4dx_hex_decode(s + i + 1, 2, &c, 1))
				return EINVAL;
			i += 2;
		}
		if (!c)
			return EINVAL;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return 0;
}

/* A whole decimal number (optional '-') in v: 0 or EINVAL. */
static int parse_i64(const char *v, int64_t *out)
{
	const char *p = v + (*v == '-');
	if (!*p || strspn(p, "0123456789") != strlen(p))
		return EINVAL;
	errno = 0;
	long long x = strtoll(v, NULL, 10);
	if (errno)
		return EINVAL;
	*out = x;
	return 0;
}

/* n digits of s as a number, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* An event time: integer nanoseconds, or YYYY-MM-DDTHH:MM:SS[.F]Z. */
static int parse_time(const char *v, int64_t *out)
{
	if (!parse_i64(v, out))
		return 0;
	if (strlen(v) < 20 || v[4] != '-' || v[7] != '-' || v[10] != 'T' ||
	    v[13] != ':' || v[16] != ':')
		return EINVAL;
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int y = digits(v, 4), mo = digits(v + 5, 2), d = digits(v + 8, 2);
	int h = digits(v + 11, 2), mi = digits(v + 14, 2);
	int se = digits(v + 17, 2);
	if (y < 1678 || y > 2261 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60)
		return EINVAL;
	const char *p = v + 19;
	int64_t frac = 0;
	if (*p == '.') {
		int n = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 9)
				frac = frac * 10 + (*p - '0');
		if (!n || n > 9)        /* past a nanosecond: not kept */
			return EINVAL;
		for (; n < 9; n++)
			frac *= 10;
	}
	if (strcmp(p, "Z"))
		return EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	time_t t = timegm(&tm);         /* the minute; :60 (a leap
					 * second) is its 60th second, the
					 * next minute's first, also at the
					 * end of a day or a month */
	if (tm.tm_mday != d)            /* February 30th */
		return EINVAL;
	*out = ((int64_t)t + se) * 1000000000 + frac;
	return 0;
}

static int parse_kappa(const char *v, double *out)
{
	char *end;
	errno = 0;
	/* a decimal number: strtod alone would also take leading white
	 * space, a hex float or a '+', which k and the times refuse */
	if (strspn(v, "0123456789.eE-") != strlen(v))
		return EINVAL;
	double x = strtod(v, &end);
	if (!*v || *end || errno || !isfinite(x) || x < 0 || x > 1)
		return EINVAL;
	*out = x;
	return 0;
}

/* The directory at path (below items/, '/'-separated) in *ino: 0,
 * ENOENT, ENOTDIR or EINVAL (an empty, "." or ".." part). */
static int resolve_under(struct t4dxfs *fs, const char *path, uint64_t *ino)
{
	uint64_t at = T4DX_ROOT_INO;
	while (*path == '/')
		path++;
	while (*path) {
		size_t n = strcspn(path, "/");
		if ((n == 1 && path[0] == '.') ||
		    (n == 2 && !memcmp(path, "..", 2)))
			return EINVAL;
		struct t4dx_entry e = { 0 };
		int rc = t4dx_get(fs->db, at, path, n, 0, &e);
		if (rc == T4DX_ENOTFOUND)
			return ENOENT;
		if (rc)
			return rc;
		if (!S_ISDIR(e.mode))
			return ENOTDIR;
		at = e.ino;
		path += n;
		while (*path == '/')
			path++;
	}
	*ino = at;
	return 0;
}

static const char *const opt_names[] = {
	"k", "under", "type", "min_kappa", "max_kappa", "since", "until",
};
#define NOPTS (sizeof(opt_names) / sizeof(opt_names[0]))

/* One option key=value (value decoded).  0 or an errno; *why says what
 * is wrong. */
static int parse_opt(struct t4dxfs *fs, int which, const char *v,
		     struct t4dx_search_opts *o, const char **why)
{
	int64_t x;
	int rc = EINVAL;
	switch (which) {
	case 0:
		if (!parse_i64(v, &x) && x >= 1 && x <= T4DX_SEARCH_K_MAX) {
			o->k = (uint32_t)x;
			rc = 0;
		}
		*why = "k must be a whole number from 1 to 1000";
		break;
	case 1:
		rc = resolve_under(fs, v, &o->under);
		*why = rc == ENOENT ? "no such directory below items/"
		       : rc == ENOTDIR ? "not a directory below items/"
		       : "a path below items/, without . or .. parts";
		break;
	case 2:
		o->type = t4dx_type_parse(v, strlen(v));
		rc = o->type < 0 ? EINVAL : 0;
		*why = "type is episodic, semantic or procedural";
		break;
	case 3:
	case 4:
		rc = parse_kappa(v, which == 3 ? &o->min_kappa : &o->max_kappa);
		*why = "kappa bounds are numbers from 0 to 1";
		break;
	case 5:
	case 6:
		rc = parse_time(v, which == 5 ? &o->since_ns : &o->until_ns);
		*why = "a time is integer nanoseconds or ISO 8601 UTC "
		       "(2026-12-02T10:00:00Z)";
		break;
	}
	return rc;
}

/* Parse a query name.  0, or an errno whose reason is logged. */
static int parse_query(struct t4dxfs *fs, const char *name, struct parsed *q)
{
	memset(q, 0, sizeof(*q));
	t4dx_search_defaults(&q->o);
	const char *mark = strchr(name, '?');
	q->text = name;
	q->text_len = mark ? (size_t)(mark - name) : strlen(name);
	if (q->text_len && name[0] == '@') {
		if (t4dx_hex_decode(name + 1, q->text_len - 1, q->id,
				    sizeof(q->id))) {
			search_log(fs, "'%s': after @ comes an item's id, 32 "
				   "hex digits", name);
			return EINVAL;
		}
		q->by_id = true;
	}
	unsigned seen = 0;
	/* a '?' that ends the name ends a question: no options */
	const char *p = mark && mark[1] ? mark + 1 : NULL;
	while (p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		char key[32], val[T4DX_NAME_MAX + 1];
		size_t klen = eq ? (size_t)(eq - p) : len;
		int which = -1;
		for (size_t i = 0; i < NOPTS; i++)
			if (strlen(opt_names[i]) == klen &&
			    !memcmp(opt_names[i], p, klen))
				which = (int)i;
		snprintf(key, sizeof(key), "%.*s", (int)(klen < 24 ? klen : 24),
			 p);
		if (which < 0 || !eq) {
			search_log(fs, "'%s': %s '%s' (options: k, under, type, "
				   "min_kappa, max_kappa, since, until; each "
				   "key=value)", name, which < 0 ?
				   "unknown option" : "no value for", key);
			return EINVAL;
		}
		if (seen & 1u << which) {
			search_log(fs, "'%s': option %s given twice", name, key);
			return EINVAL;
		}
		seen |= 1u << which;
		const char *why = "bad %-escape (%XX, not %00)";
		int rc = unescape(eq + 1, len - klen - 1, val);
		if (!rc)
			rc = parse_opt(fs, which, val, &q->o, &why);
		if (rc) {
			search_log(fs, "'%s': bad %s: %s", name, key, why);
			return rc;
		}
		p = amp ? amp + 1 : NULL;
	}
	if (q->o.min_kappa > q->o.max_kappa || q->o.since_ns > q->o.until_ns) {
		search_log(fs, "'%s': an empty range (min above max)", name);
		return EINVAL;
	}
	return 0;
}

/* ---- running a query ---------------------------------------------------- */

/* The vector of the item with id into q (dim values): 0, ENODATA (it has
 * none), ENOENT, or an error.  *ino: the item's inode. */
static int id_vector(struct t4dxfs *fs, const uint8_t *id, float *q,
		     uint32_t dim, uint64_t *ino)
{
	struct t4dx_entry e = { 0 };
	/* its vector, without its content (a search reads none) */
	int rc = t4dx_get_by_id(fs->db, id, T4DX_GET_VECTOR, &e);
	if (rc == T4DX_ENOTFOUND)
		return ENOENT;
	if (rc)
		return rc;
	if (e.vec_src == T4DX_VEC_NONE || t4dx_vec_dim(e.vec) != dim)
		rc = ENODATA;
	if (!rc) {
		t4dx_vec_get(e.vec, q);
		*ino = e.ino;
	}
	t4dx_entry_clear(&e);
	return rc;
}

/* Answer the query name into *a.  0 or an errno (logged if the name is
 * bad). */
int query_run(struct t4dxfs *fs, const char *name, struct answer *a)
{
	struct parsed q;
	memset(a, 0, sizeof(*a));
	int rc = parse_query(fs, name, &q);
	if (rc)
		return rc;
	a->k = q.o.k;
	uint32_t dim = fs->cfg.vector.dim;
	float *v = malloc(sizeof(*v) * dim);
	if (!v)
		return ENOMEM;
	struct t4dx_health h;
	t4dx_get_health(fs->db, &h);
	a->partial = h.level >= 2;
	uint64_t self = 0;
	if (q.by_id) {
		rc = id_vector(fs, q.id, v, dim, &self);
	} else {
		/* the text's vector by the embedder of the store's vectors */
		char why[256];
		rc = t4dx_embed_text(fs->db, q.text, q.text_len, v, why,
				     sizeof(why));
		if (rc == ENOTSUP) {
			search_log(fs, "'%s': a text query needs an embedder "
				   "(vector.embedder \"builtin\" or "
				   "\"command\"): %s; search by an item's id "
				   "(search/@ID)", name, why);
			rc = EINVAL;
		} else if (rc && rc != ENODATA) {
			search_log(fs, "'%s': the text's vector: %s%s%s", name,
				   t4dx_strerror(rc), why[0] ? ": " : "", why);
			rc = rc == EAGAIN ? EAGAIN : EIO;
		}
	}
	/* a vector of zeros (set by hand, or the program's answer for the
	 * text) is near nothing */
	bool zero = true;
	for (uint32_t i = 0; !rc && zero && i < dim; i++)
		zero = v[i] == 0.0f;
	if (!rc && zero)
		rc = ENODATA;
	if (rc == ENOENT)
		search_log(fs, "'%s': no item has this id", name);
	if (rc == ENODATA) {
		free(v);
		return 0;               /* nothing to be near: no result */
	}
	if (!rc) {
		/* the item itself is left out by the search, so that k
		 * others come (k 1000 included) */
		q.o.skip_ino = self;
		/* at level 2, what can still be read */
		q.o.best_effort = a->partial;
		rc = t4dx_search(fs->db, v, dim, &q.o, &a->hits, &a->n);
		if (rc && rc != ENOENT && rc != ENOMEM && !a->partial) {
			/* this search may be the read that found a segment
			 * damaged, which took the store to level 2: then
			 * answer as at level 2, not with the read error */
			t4dx_get_health(fs->db, &h);
			if (h.level >= 2) {
				a->partial = true;
				q.o.best_effort = true;
				rc = t4dx_search(fs->db, v, dim, &q.o,
						 &a->hits, &a->n);
			}
		}
	}
	free(v);
	if (rc && rc != ENOENT && rc != ENOMEM && a->partial) {
		/* nothing could be read: say so rather than fail */
		search_log(fs, "'%s': the store cannot be read (%s): an empty, "
			   "partial answer", name, t4dx_strerror(rc));
		return 0;
	}
	if (rc)
		return rc;
	size_t out = 0;
	for (size_t i = 0; i < a->n; i++) {
		if (a->hits[i].e.ino == self || out == a->k) {
			free(a->hits[i].path);
			continue;
		}
		a->hits[out++] = a->hits[i];
	}
	a->n = out;
	return 0;
}

void answer_free(struct answer *a)
{
	t4dx_hits_free(a->hits, a->n);
	memset(a, 0, sizeof(*a));
}

/* Is name a query that can be run?  0, EINVAL (a bad option), ENOENT
 * (no such id or under= directory)... with the reason logged. */
int query_check(struct t4dxfs *fs, const char *name)
{
	struct parsed p;
	int rc = parse_query(fs, name, &p);
	if (!rc && p.by_id) {
		/* an unknown id is ENOENT at the lookup, not at the listing
		 * (its vector is read then: not here) */
		struct t4dx_entry e = { 0 };
		rc = t4dx_get_by_id(fs->db, p.id, 0, &e);
		t4dx_entry_clear(&e);
		if (rc == T4DX_ENOTFOUND) {
			search_log(fs, "'%s': no item has this id", name);
			rc = ENOENT;
		}
	}
	return rc;
}
