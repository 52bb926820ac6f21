/*
 * search.c - MOUNT/search/: memories found by meaning, through the mount.
 *
 * The tree.  search/ lists nothing: a query is a name looked up in it,
 * "TEXT[?OPTIONS]" or "@ID[?OPTIONS]".  Such a name is a directory that
 * holds, for the best matches, symbolic links "RANK-NAME" (RANK from 1,
 * zero-padded to the width of k; NAME the item's name, cut at a
 * character boundary so that the link's name fits 255 bytes) pointing at
 * ../../items/PATH, and results.json (render_json).  Everything under
 * search/ is read-only: a change answers EACCES, as the .ctl files do and
 * as the kernel's own check of the 0555 / 0444 modes does for users
 * other than root.
 *
 * Inodes.  search/ is the fixed inode INO_SEARCH_DIR.  A query directory
 * and what it holds have inodes with INO_SEARCH_BIT set: the query's
 * number (qid) above SLOT_BITS, and below them the slot: 0 the directory,
 * 1 results.json, 2 + r the link of rank r + 1.  A query name gets its qid
 * at its first lookup and keeps it while the kernel holds the directory
 * (lookups add, FORGET subtracts); then the query is dropped, and the
 * same name looked up later gets a new qid.  qids only grow, so an inode
 * number is never reused for something else.  The links and results.json
 * keep no state of their own: the kernel holds a query directory while
 * it holds anything in it.
 *
 * When results are computed.  Never cached by the kernel (entry and
 * attribute timeouts 0 for everything under search/), and computed again
 * by the daemon at each lookup of a link, each opendir of a query and
 * each open of results.json.  The last answer of a few queries is kept
 * (the cache below) only to answer readlink and getattr of a link, which
 * always follow the lookup that computed it; one missing from the cache
 * is computed again.
 *
 * Options, '&'-separated after the first '?', values %XX-decoded (so that
 * under= can name a nested directory: under=a%2Fb): k (1..1000, default
 * 10), under (a directory below items/; ENOENT if there is none),
 * type (episodic | semantic | procedural), min_kappa and max_kappa
 * (0..1), since and until (event time: integer nanoseconds, or ISO 8601
 * UTC, 2026-12-02T10:00:00Z with an optional fraction).  An unknown or
 * repeated option, or a bad value, fails the lookup with EINVAL and the
 * reason goes to the daemon's log (stderr in the foreground, else
 * syslog; at most LOG_BURST lines a minute).  Text is embedded by the
 * builtin embedder, like content; text without a word finds nothing.
 * @ID (32 hex digits) uses that item's vector and leaves the item itself
 * out; an item without a vector finds nothing, an unknown ID is ENOENT.
 *
 * Degradation: at level 2 the store searches what it can read, and
 * results.json says "partial": true; if nothing can be read the answer is
 * empty and partial rather than an error.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <json-c/json.h>

#include "t4dxfs.h"
#include "embed.h"
#include "vec.h"

#define SLOT_BITS 11
#define SLOT_DIR 0
#define SLOT_JSON 1
#define SLOT_RANK0 2
#define QID_OF(ino) (((ino) & ~INO_SEARCH_BIT) >> SLOT_BITS)
#define SLOT_OF(ino) ((ino) & ((UINT64_C(1) << SLOT_BITS) - 1))
#define INO_OF(qid, slot) (INO_SEARCH_BIT | (qid) << SLOT_BITS | (slot))
#define JSON_NAME "results.json"
#define LOG_BURST 20

/* A query directory the kernel holds.  Guarded by fs->search.mu. */
struct query {
	uint64_t qid;
	uint64_t nlookup;
	char name[T4DX_NAME_MAX + 1];
	UT_hash_handle by_id, by_name;
};

/* One computed answer (the hits own their paths). */
struct answer {
	struct t4dx_hit *hits;
	size_t n;
	uint32_t k;
	bool partial;
};

/* ---- the log ------------------------------------------------------------ */

static void search_log(struct t4dxfs *fs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void search_log(struct t4dxfs *fs, const char *fmt, ...)
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
		if (!n)
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
	tm.tm_sec = se;
	time_t t = timegm(&tm);
	if (tm.tm_mday != d)            /* February 30th */
		return EINVAL;
	*out = (int64_t)t * 1000000000 + frac;
	return 0;
}

static int parse_kappa(const char *v, double *out)
{
	char *end;
	errno = 0;
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
	const char *p = mark ? mark + 1 : NULL;
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

/* A breadth-first walk of the tree for the file with an id. */
struct id_walk {
	const uint8_t *id;
	uint64_t *dirs;
	size_t n, cap;
	struct t4dx_entry found;
};

static int id_visit(void *arg, const struct t4dx_entry *e)
{
	struct id_walk *w = arg;
	if (S_ISREG(e->mode) && !memcmp(e->id, w->id, sizeof(e->id))) {
		w->found = *e;
		w->found.content = w->found.vec = NULL;
		return 1;
	}
	if (!S_ISDIR(e->mode))
		return 0;
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		uint64_t *v = realloc(w->dirs, cap * sizeof(*v));
		if (!v)
			return ENOMEM;
		w->dirs = v;
		w->cap = cap;
	}
	w->dirs[w->n++] = e->ino;
	return 0;
}

/* The vector of the item with id into q (dim values): 0, ENODATA (it has
 * none), ENOENT, or an error.  *ino: the item's inode. */
static int id_vector(struct t4dxfs *fs, const uint8_t *id, float *q,
		     uint32_t dim, uint64_t *ino)
{
	struct id_walk w = { .id = id };
	int rc = id_visit(&w, &(struct t4dx_entry){ .ino = T4DX_ROOT_INO,
						    .mode = S_IFDIR });
	for (size_t i = 0; !rc && i < w.n; i++)
		rc = t4dx_scan(fs->db, w.dirs[i], id_visit, &w);
	free(w.dirs);
	if (rc != 1)
		return rc ? rc : ENOENT;
	struct t4dx_entry e = { 0 };
	rc = t4dx_get(fs->db, w.found.parent, w.found.name, w.found.name_len,
		      T4DX_GET_CONTENT, &e);
	if (rc == T4DX_ENOTFOUND)
		rc = ENOENT;            /* gone since the walk */
	if (!rc && (e.vec_src == T4DX_VEC_NONE || t4dx_vec_dim(e.vec) != dim))
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
static int run_query(struct t4dxfs *fs, const char *name, struct answer *a)
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
	uint64_t self = 0;
	if (q.by_id)
		rc = id_vector(fs, q.id, v, dim, &self);
	else
		rc = t4dx_embed(q.text, q.text_len, dim, v);
	if (rc == ENOENT)
		search_log(fs, "'%s': no item has this id", name);
	if (rc == ENODATA) {
		free(v);
		return 0;               /* nothing to be near: no result */
	}
	struct t4dx_health h;
	t4dx_get_health(fs->db, &h);
	a->partial = h.level >= 2;
	if (!rc) {
		/* one more, for the item itself */
		if (self && q.o.k < T4DX_SEARCH_K_MAX)
			q.o.k++;
		rc = t4dx_search(fs->db, v, dim, &q.o, &a->hits, &a->n);
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

static void answer_free(struct answer *a)
{
	t4dx_hits_free(a->hits, a->n);
	memset(a, 0, sizeof(*a));
}

/* ---- names and targets of the links ------------------------------------- */

static unsigned width_of(uint32_t k)
{
	unsigned w = 1;
	while (k >= 10) {
		k /= 10;
		w++;
	}
	return w;
}

/* The link name of hit r (0-based) into out (T4DX_NAME_MAX + 1): the
 * rank and the item's name, cut at a UTF-8 character boundary to fit. */
static size_t link_name(const struct answer *a, size_t r, char *out)
{
	const struct t4dx_entry *e = &a->hits[r].e;
	int n = snprintf(out, T4DX_NAME_MAX + 1, "%0*zu-",
			 (int)width_of(a->k), r + 1);
	size_t room = T4DX_NAME_MAX - (size_t)n, len = e->name_len;
	if (len > room) {
		len = room;
		while (len && ((unsigned char)e->name[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(out + n, e->name, len);
	out[n + len] = 0;
	return (size_t)n + len;
}

#define TARGET_PREFIX "../../items/"

/* ---- the query table and the answer cache -------------------------------
 * All under fs->search.mu. */

static struct query *query_by_qid(struct search_state *s, uint64_t qid)
{
	struct query *q = NULL;
	HASH_FIND(by_id, s->by_id, &qid, sizeof(qid), q);
	return q;
}

/* Keep a (taken over) as the last answer of qid. */
static void cache_put(struct search_state *s, uint64_t qid, struct answer *a)
{
	struct search_cached *c = NULL, *old = &s->cache[0];
	for (size_t i = 0; i < SEARCH_CACHE; i++) {
		if (s->cache[i].qid == qid)
			c = &s->cache[i];
		if (s->cache[i].use < old->use)
			old = &s->cache[i];
	}
	if (!c)
		c = old;
	t4dx_hits_free(c->hits, c->n);
	c->qid = qid;
	c->use = ++s->use_clock;
	c->hits = a->hits;
	c->n = a->n;
	c->k = a->k;
	c->partial = a->partial;
	memset(a, 0, sizeof(*a));
}

static void cache_drop(struct search_state *s, uint64_t qid)
{
	for (size_t i = 0; i < SEARCH_CACHE; i++)
		if (s->cache[i].qid == qid) {
			t4dx_hits_free(s->cache[i].hits, s->cache[i].n);
			memset(&s->cache[i], 0, sizeof(s->cache[i]));
		}
}

/* The name of query qid into name: 0 or ENOENT. */
static int query_name(struct t4dxfs *fs, uint64_t qid, char *name)
{
	pthread_mutex_lock(&fs->search.mu);
	struct query *q = query_by_qid(&fs->search, qid);
	if (q)
		memcpy(name, q->name, sizeof(q->name));
	pthread_mutex_unlock(&fs->search.mu);
	return q ? 0 : ENOENT;
}

/* Compute query qid now (not cached: see the callers). */
static int compute(struct t4dxfs *fs, uint64_t qid, struct answer *a)
{
	char name[T4DX_NAME_MAX + 1];
	int rc = query_name(fs, qid, name);
	if (!rc)
		rc = run_query(fs, name, a);
	return rc;
}

/* What a link shows: its name, target and item attributes, from the
 * cached answer of qid, or a new one.  0, ENOENT (no such rank now). */
struct link_info {
	char name[T4DX_NAME_MAX + 1];
	char *target;                   /* malloc'd */
	struct t4dx_entry e;            /* attributes only */
};

static int link_of_answer(const struct answer *a, size_t r,
			  struct link_info *li)
{
	if (r >= a->n)
		return ENOENT;
	link_name(a, r, li->name);
	const struct t4dx_hit *h = &a->hits[r];
	size_t len = strlen(TARGET_PREFIX) + strlen(h->path) + 1;
	if (len > PATH_MAX)
		return ENAMETOOLONG;
	li->target = malloc(len);
	if (!li->target)
		return ENOMEM;
	snprintf(li->target, len, "%s%s", TARGET_PREFIX, h->path);
	li->e = h->e;
	return 0;
}

static int link_info(struct t4dxfs *fs, uint64_t qid, size_t r,
		     struct link_info *li)
{
	struct search_state *s = &fs->search;
	int rc = ENOENT;
	bool hit = false;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < SEARCH_CACHE; i++)
		if (s->cache[i].qid == qid) {
			struct answer a = { s->cache[i].hits, s->cache[i].n,
					    s->cache[i].k, s->cache[i].partial };
			s->cache[i].use = ++s->use_clock;
			rc = link_of_answer(&a, r, li);
			hit = true;
		}
	pthread_mutex_unlock(&s->mu);
	if (hit)
		return rc;
	struct answer a;
	rc = compute(fs, qid, &a);
	if (!rc)
		rc = link_of_answer(&a, r, li);
	pthread_mutex_lock(&s->mu);
	if (query_by_qid(s, qid))
		cache_put(s, qid, &a);
	pthread_mutex_unlock(&s->mu);
	answer_free(&a);
	return rc;
}

/* ---- attributes --------------------------------------------------------- */

static void base_stat(struct t4dxfs *fs, fuse_ino_t ino, mode_t mode,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = ts_of(fs->start_ns);
}

static void link_stat(struct t4dxfs *fs, fuse_ino_t ino,
		      const struct link_info *li, struct stat *st)
{
	base_stat(fs, ino, S_IFLNK | 0777, st);
	st->st_size = (off_t)strlen(li->target);
	st->st_mtim = ts_of(li->e.mtime_ns);
	st->st_ctim = ts_of(li->e.ctime_ns);
}

int search_getattr(struct t4dxfs *fs, fuse_ino_t ino, struct stat *st)
{
	if (ino == INO_SEARCH_DIR) {
		base_stat(fs, ino, S_IFDIR | 0555, st);
		return 0;
	}
	uint64_t qid = QID_OF(ino), slot = SLOT_OF(ino);
	char name[T4DX_NAME_MAX + 1];
	int rc = query_name(fs, qid, name);
	if (rc)
		return rc;
	if (slot == SLOT_DIR) {
		base_stat(fs, ino, S_IFDIR | 0555, st);
	} else if (slot == SLOT_JSON) {
		base_stat(fs, ino, S_IFREG | 0444, st);
	} else {
		struct link_info li = { 0 };
		rc = link_info(fs, qid, slot - SLOT_RANK0, &li);
		if (!rc)
			link_stat(fs, ino, &li, st);
		free(li.target);
	}
	return rc;
}

/* ---- lookup, forget ----------------------------------------------------- */

static void entry_param(struct fuse_entry_param *ep, const struct stat *st)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = st->st_ino;
	ep->generation = INO_GENERATION;
	ep->attr = *st;
	ep->entry_timeout = ep->attr_timeout = 0;
}

/* A query directory: find or add the query name, one more lookup. */
static int lookup_query(struct t4dxfs *fs, const char *name,
			struct fuse_entry_param *ep)
{
	struct parsed p;
	int rc = parse_query(fs, name, &p);
	if (!rc && p.by_id) {
		/* an unknown id is ENOENT now, not at the listing */
		float *v = malloc(sizeof(*v) * fs->cfg.vector.dim);
		uint64_t self;
		rc = v ? id_vector(fs, p.id, v, fs->cfg.vector.dim, &self)
		       : ENOMEM;
		free(v);
		if (rc == ENOENT)
			search_log(fs, "'%s': no item has this id", name);
		if (rc == ENODATA)
			rc = 0;
	}
	if (rc)
		return rc;
	struct search_state *s = &fs->search;
	size_t len = strlen(name);
	pthread_mutex_lock(&s->mu);
	struct query *q = NULL;
	HASH_FIND(by_name, s->by_name, name, len, q);
	if (!q && (q = calloc(1, sizeof(*q)))) {
		q->qid = ++s->next_qid;
		memcpy(q->name, name, len + 1);
		HASH_ADD(by_id, s->by_id, qid, sizeof(q->qid), q);
		HASH_ADD_KEYPTR(by_name, s->by_name, q->name, len, q);
	}
	uint64_t qid = 0;
	if (q) {
		q->nlookup++;
		qid = q->qid;
	}
	pthread_mutex_unlock(&s->mu);
	if (!q)
		return ENOMEM;
	struct stat st;
	base_stat(fs, INO_OF(qid, SLOT_DIR), S_IFDIR | 0555, &st);
	entry_param(ep, &st);
	return 0;
}

/* A link or results.json in query directory parent. */
static int lookup_child(struct t4dxfs *fs, uint64_t qid, const char *name,
			struct fuse_entry_param *ep)
{
	struct stat st;
	if (!strcmp(name, JSON_NAME)) {
		int rc = search_getattr(fs, INO_OF(qid, SLOT_JSON), &st);
		if (!rc)
			entry_param(ep, &st);
		return rc;
	}
	size_t nd = strspn(name, "0123456789");
	if (!nd || name[nd] != '-')
		return ENOENT;
	struct answer a;
	int rc = compute(fs, qid, &a);
	if (rc)
		return rc;
	unsigned long r = strtoul(name, NULL, 10);
	struct link_info li = { 0 };
	rc = ENOENT;
	if (r >= 1 && nd == width_of(a.k) && !link_of_answer(&a, r - 1, &li) &&
	    !strcmp(li.name, name)) {
		link_stat(fs, INO_OF(qid, SLOT_RANK0 + r - 1), &li, &st);
		entry_param(ep, &st);
		rc = 0;
	}
	free(li.target);
	pthread_mutex_lock(&fs->search.mu);
	if (query_by_qid(&fs->search, qid))
		cache_put(&fs->search, qid, &a);
	pthread_mutex_unlock(&fs->search.mu);
	answer_free(&a);
	return rc;
}

int search_lookup(struct t4dxfs *fs, fuse_ino_t parent, const char *name,
		  struct fuse_entry_param *ep)
{
	int rc = check_name(name);
	if (rc)
		return rc;
	if (parent == INO_SEARCH_DIR)
		return lookup_query(fs, name, ep);
	if (SLOT_OF(parent) != SLOT_DIR)
		return ENOTDIR;
	return lookup_child(fs, QID_OF(parent), name, ep);
}

void search_forget(struct t4dxfs *fs, fuse_ino_t ino, uint64_t n)
{
	if (ino == INO_SEARCH_DIR || SLOT_OF(ino) != SLOT_DIR)
		return;
	struct search_state *s = &fs->search;
	pthread_mutex_lock(&s->mu);
	struct query *q = query_by_qid(s, QID_OF(ino));
	if (q) {
		q->nlookup = n > q->nlookup ? 0 : q->nlookup - n;
		if (!q->nlookup) {
			cache_drop(s, q->qid);
			HASH_DELETE(by_id, s->by_id, q);
			HASH_DELETE(by_name, s->by_name, q);
			free(q);
		}
	}
	pthread_mutex_unlock(&s->mu);
}

/* ---- listing ------------------------------------------------------------ */

int search_list(struct t4dxfs *fs, fuse_ino_t ino, search_add_fn add,
		void *arg)
{
	if (ino == INO_SEARCH_DIR)
		return 0;               /* queries are looked up, not listed */
	if (SLOT_OF(ino) != SLOT_DIR)
		return ENOTDIR;
	uint64_t qid = QID_OF(ino);
	struct answer a;
	int rc = compute(fs, qid, &a);
	if (rc)
		return rc;
	struct stat st;
	for (size_t r = 0; !rc && r < a.n; r++) {
		struct link_info li = { 0 };
		rc = link_of_answer(&a, r, &li);
		if (!rc) {
			link_stat(fs, INO_OF(qid, SLOT_RANK0 + r), &li, &st);
			rc = add(arg, li.name, strlen(li.name), &st);
		}
		free(li.target);
	}
	if (!rc) {
		base_stat(fs, INO_OF(qid, SLOT_JSON), S_IFREG | 0444, &st);
		rc = add(arg, JSON_NAME, strlen(JSON_NAME), &st);
	}
	pthread_mutex_lock(&fs->search.mu);
	if (query_by_qid(&fs->search, qid))
		cache_put(&fs->search, qid, &a);
	pthread_mutex_unlock(&fs->search.mu);
	answer_free(&a);
	return rc;
}

/* ---- readlink ----------------------------------------------------------- */

void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_READLINK);
	if (!is_search(ino) || ino == INO_SEARCH_DIR ||
	    SLOT_OF(ino) < SLOT_RANK0) {
		reply_err(req, EINVAL);         /* not a link */
		return;
	}
	struct link_info li = { 0 };
	int rc = link_info(fs, QID_OF(ino), SLOT_OF(ino) - SLOT_RANK0, &li);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_readlink(req, li.target);
	free(li.target);
}

/* ---- results.json ------------------------------------------------------- */

/* {"partial": bool, "results": [{rank, path, id, score, kappa,
 * importance, type}, ...]}, best first, one line. */
static int render_json(const struct answer *a, struct t4dx_buf *out)
{
	struct json_object *o = json_object_new_object();
	struct json_object *v = json_object_new_array();
	bool ok = o && v &&
		  !json_object_object_add(o, "partial",
				json_object_new_boolean(a->partial)) &&
		  !json_object_object_add(o, "results", v);
	if (!ok)
		json_object_put(v);
	for (size_t r = 0; ok && r < a->n; r++) {
		const struct t4dx_hit *h = &a->hits[r];
		char id[33], num[32];
		t4dx_hex_encode(id, h->e.id, sizeof(h->e.id));
		struct json_object *x = json_object_new_object();
		ok = x && !json_object_array_add(v, x);
		if (!ok) {
			json_object_put(x);
			break;
		}
		snprintf(num, sizeof(num), "%.6f", (double)h->score);
		ok = !json_object_object_add(x, "rank",
				json_object_new_uint64(r + 1)) &&
		     !json_object_object_add(x, "path",
				json_object_new_string(h->path)) &&
		     !json_object_object_add(x, "id",
				json_object_new_string(id)) &&
		     !json_object_object_add(x, "score",
				json_object_new_double_s(h->score, num));
		snprintf(num, sizeof(num), "%.6g", h->e.kappa);
		ok = ok && !json_object_object_add(x, "kappa",
				json_object_new_double_s(h->e.kappa, num));
		snprintf(num, sizeof(num), "%.6g", h->e.importance);
		ok = ok && !json_object_object_add(x, "importance",
				json_object_new_double_s(h->e.importance, num)) &&
		     !json_object_object_add(x, "type",
				json_object_new_string(
					t4dx_type_name(h->e.type)));
	}
	const char *s = ok ? json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN |
			   JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
	int rc = s ? t4dx_buf_add(out, s, strlen(s)) : ENOMEM;
	if (!rc)
		rc = t4dx_buf_add(out, "\n", 1);
	json_object_put(o);
	return rc;
}

int search_show(struct t4dxfs *fs, fuse_ino_t ino, struct t4dx_buf *out)
{
	if (ino == INO_SEARCH_DIR || SLOT_OF(ino) == SLOT_DIR)
		return EISDIR;
	if (SLOT_OF(ino) != SLOT_JSON)
		return ELOOP;
	struct answer a;
	int rc = compute(fs, QID_OF(ino), &a);
	if (!rc)
		rc = render_json(&a, out);
	answer_free(&a);
	return rc;
}

void search_free_all(struct t4dxfs *fs)
{
	struct search_state *s = &fs->search;
	struct query *q, *t;
	for (size_t i = 0; i < SEARCH_CACHE; i++)
		t4dx_hits_free(s->cache[i].hits, s->cache[i].n);
	memset(s->cache, 0, sizeof(s->cache));
	HASH_ITER(by_id, s->by_id, q, t) {
		HASH_DELETE(by_id, s->by_id, q);
		HASH_DELETE(by_name, s->by_name, q);
		free(q);
	}
}
