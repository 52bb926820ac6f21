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
 * as the kernel's own check of the 0500 / 0400 modes does for users
 * other than root.  Those modes also keep every user but the one who
 * mounted (and root) out of search/ (t4dxfs.h, SEARCH_DIR_MODE): an
 * answer comes from all items, whatever their modes.
 *
 * Inodes.  search/ is the fixed inode INO_SEARCH_DIR.  A query directory
 * and what it holds have inodes with INO_SEARCH_BIT set: the query's
 * number (qid) above SLOT_BITS, and below them the slot: 0 the directory,
 * 1 results.json, 2 + i a link to the i-th item the query has shown.  A
 * link's inode names its item, not its rank: a process that holds a
 * link (between its lookup and the readlink that follows, or with a
 * descriptor) while another's search moves the ranks still reads that
 * item's target, never the one that took its rank.  A query name gets its qid
 * at its first lookup and keeps it while the kernel holds the directory
 * (lookups add, FORGET subtracts); then the query is dropped, and the
 * same name looked up later gets a new qid.  qids only grow, so an inode
 * number is never reused for something else.  The links and results.json
 * keep no state of their own: the kernel holds a query directory while
 * it holds anything in it.
 *
 * When results are computed.  Never cached by the kernel (entry and
 * attribute timeouts 0 for everything under search/).  The daemon keeps
 * the last answer of a few queries (the cache below) with the store's
 * stamp as it was computed on (t4dx_search_stamp: the memtables'
 * versions, the segments, the level): each lookup of a link, opendir of
 * a query and open or stat of results.json takes that answer while the
 * stamp is the same, and computes it again once anything changed.  So
 * one ls -l, tar or rsync of a query runs one search, not one per link,
 * and an answer is never served past a change of the store.  readlink
 * and getattr of a link take the last answer whatever the stamp, as they
 * always follow the lookup that named the link; one missing from the
 * cache is computed again.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "t4dxfs.h"
#include "ctl.h"
#include "query.h"

#define SLOT_BITS 20
#define SLOT_DIR 0
#define SLOT_JSON 1
#define SLOT_RANK0 2
#define QID_OF(ino) (((ino) & ~INO_SEARCH_BIT) >> SLOT_BITS)
#define SLOT_OF(ino) ((ino) & ((UINT64_C(1) << SLOT_BITS) - 1))
#define INO_OF(qid, slot) (INO_SEARCH_BIT | (qid) << SLOT_BITS | (slot))
#define JSON_NAME "results.json"

#define SLOTS_MAX ((UINT64_C(1) << SLOT_BITS) - SLOT_RANK0)

/* A query directory the kernel holds.  Guarded by fs->search.mu. */
struct query {
	uint64_t qid;
	uint64_t nlookup;
	char name[T4DX_NAME_MAX + 1];
	uint64_t *items;                /* the item (entry ino) of each link
	                                   slot given out, in order */
	size_t nitems, cap;
	UT_hash_handle by_id, by_name;
};

static void query_free(struct query *q)
{
	free(q->items);
	free(q);
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

/* A copy of the n hits h into *out: 0 or ENOMEM. */
static int hits_copy(const struct t4dx_hit *h, size_t n,
		     struct t4dx_hit **out)
{
	*out = NULL;
	if (!n)
		return 0;
	struct t4dx_hit *c = calloc(n, sizeof(*c));
	if (!c)
		return ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c[i] = h[i];
		if (!(c[i].path = strdup(h[i].path))) {
			t4dx_hits_free(c, i);
			return ENOMEM;
		}
	}
	*out = c;
	return 0;
}

static bool same_stamp(const struct t4dx_search_stamp *a,
		       const struct t4dx_search_stamp *b)
{
	return a->mem == b->mem && a->imm == b->imm &&
	       a->next_seg_id == b->next_seg_id && a->nsegs == b->nsegs &&
	       a->level == b->level;
}

/* Keep a copy of a as the last answer of qid, computed as of stamp
 * (nothing kept for want of memory). */
static void cache_put(struct search_state *s, uint64_t qid,
		      const struct answer *a,
		      const struct t4dx_search_stamp *stamp)
{
	struct t4dx_hit *hits;
	if (hits_copy(a->hits, a->n, &hits))
		return;
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
	c->hits = hits;
	c->n = a->n;
	c->k = a->k;
	c->partial = a->partial;
	c->pending = a->pending;
	c->stamp = *stamp;
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

/* The answer of query qid as of now: its last one if the store has not
 * changed since it was computed (the stamp), else computed now and kept. */
static int compute(struct t4dxfs *fs, uint64_t qid, struct answer *a)
{
	struct search_state *s = &fs->search;
	struct t4dx_search_stamp stamp;
	char name[T4DX_NAME_MAX + 1];
	int rc = ENOENT;
	bool hit = false;
	memset(a, 0, sizeof(*a));
	/* the files closed before the search are found by it: first wait
	 * (bounded) for their vectors; then the stamp, before the search: a
	 * change made while it runs makes the next one compute again */
	uint64_t pending = 0;
	rc = t4dx_embed_wait(fs->db, &pending);
	if (rc)
		return rc;
	rc = ENOENT;
	t4dx_search_stamp(fs->db, &stamp);
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < SEARCH_CACHE && !hit; i++) {
		struct search_cached *c = &s->cache[i];
		if (c->qid != qid || !same_stamp(&c->stamp, &stamp))
			continue;
		hit = true;
		c->use = ++s->use_clock;
		rc = hits_copy(c->hits, c->n, &a->hits);
		a->n = rc ? 0 : c->n;
		a->k = c->k;
		a->partial = c->partial;
		a->pending = c->pending;
		s->reused++;
	}
	pthread_mutex_unlock(&s->mu);
	if (hit)
		return rc;
	rc = query_name(fs, qid, name);
	if (!rc)
		rc = query_run(fs, name, a);
	if (!rc)
		a->pending = pending;
	pthread_mutex_lock(&s->mu);
	s->runs++;
	if (!rc && query_by_qid(s, qid))
		cache_put(s, qid, a, &stamp);
	pthread_mutex_unlock(&s->mu);
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

/* The link slot of the item item in query qid, given out now if it has
 * none: 0 with *slot, ENOENT (the query is gone), ENOMEM, or EOVERFLOW
 * once a query has shown SLOTS_MAX items (the kernel holding it all
 * that time). */
static int slot_of(struct t4dxfs *fs, uint64_t qid, uint64_t item,
		   uint64_t *slot)
{
	struct search_state *s = &fs->search;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	struct query *q = query_by_qid(s, qid);
	size_t i = 0;
	if (!q) {
		rc = ENOENT;
		goto out;
	}
	while (i < q->nitems && q->items[i] != item)
		i++;
	if (i < q->nitems)
		goto out;
	if (q->nitems == SLOTS_MAX) {
		rc = EOVERFLOW;
		goto out;
	}
	if (q->nitems == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 16;
		uint64_t *n = realloc(q->items, cap * sizeof(*n));
		if (!n) {
			rc = ENOMEM;
			goto out;
		}
		q->items = n;
		q->cap = cap;
	}
	q->items[q->nitems++] = item;
out:
	pthread_mutex_unlock(&s->mu);
	*slot = SLOT_RANK0 + i;
	return rc;
}

/* The rank (0-based) of item in a, or a->n. */
static size_t rank_of(const struct answer *a, uint64_t item)
{
	size_t r = 0;
	while (r < a->n && a->hits[r].e.ino != item)
		r++;
	return r;
}

/* What the link of slot slot of query qid shows: its item as the cached
 * answer has it, or a new answer.  0, ENOENT (no such slot, or its item
 * is not among the results now). */
static int link_info(struct t4dxfs *fs, uint64_t qid, uint64_t slot,
		     struct link_info *li)
{
	struct search_state *s = &fs->search;
	int rc = ENOENT;
	bool hit = false;
	uint64_t item = 0;
	pthread_mutex_lock(&s->mu);
	struct query *q = query_by_qid(s, qid);
	bool known = q && slot >= SLOT_RANK0 && slot - SLOT_RANK0 < q->nitems;
	if (known)
		item = q->items[slot - SLOT_RANK0];
	for (size_t i = 0; known && i < SEARCH_CACHE; i++)
		if (s->cache[i].qid == qid) {
			struct answer a = { s->cache[i].hits, s->cache[i].n,
					    s->cache[i].k, s->cache[i].partial,
					    s->cache[i].pending };
			s->cache[i].use = ++s->use_clock;
			rc = link_of_answer(&a, rank_of(&a, item), li);
			hit = true;
		}
	pthread_mutex_unlock(&s->mu);
	if (!known || hit)
		return rc;
	struct answer a;
	rc = compute(fs, qid, &a);
	if (!rc)
		rc = link_of_answer(&a, rank_of(&a, item), li);
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
		base_stat(fs, ino, S_IFDIR | SEARCH_DIR_MODE, st);
		return 0;
	}
	uint64_t qid = QID_OF(ino), slot = SLOT_OF(ino);
	char name[T4DX_NAME_MAX + 1];
	int rc = query_name(fs, qid, name);
	if (rc)
		return rc;
	if (slot == SLOT_DIR) {
		base_stat(fs, ino, S_IFDIR | SEARCH_DIR_MODE, st);
	} else if (slot == SLOT_JSON) {
		/* its size as it would read now: a copier (tar, rsync, cp)
		 * reads as many bytes as stat says */
		base_stat(fs, ino, S_IFREG | SEARCH_FILE_MODE, st);
		struct t4dx_buf b = { 0 };
		rc = search_show(fs, ino, &b);
		st->st_size = (off_t)b.len;
		st->st_blocks = (blkcnt_t)((b.len + 511) / 512);
		t4dx_buf_free(&b);
	} else {
		struct link_info li = { 0 };
		rc = link_info(fs, qid, slot, &li);
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
	struct search_state *s = &fs->search;
	size_t len = strlen(name);
	struct query *q = NULL;
	int rc = query_check(fs, name);
	if (rc)
		return rc;
	pthread_mutex_lock(&s->mu);
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
	base_stat(fs, INO_OF(qid, SLOT_DIR), S_IFDIR | SEARCH_DIR_MODE, &st);
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
	size_t found = a.n;
	if (r >= 1 && nd == width_of(a.k) && !link_of_answer(&a, r - 1, &li) &&
	    !strcmp(li.name, name))
		found = r - 1;
	/* Ranks move as items change between a listing and the lookups
	 * that follow it (ls -l, tar, rsync): a name listed as rank r that
	 * is now at another rank is found there, rather than vanishing
	 * (its inode is its item's whatever the rank). */
	for (size_t i = 0; found == a.n && nd == width_of(a.k) && i < a.n;
	     i++) {
		free(li.target);
		memset(&li, 0, sizeof(li));
		if (!link_of_answer(&a, i, &li) &&
		    !strcmp(li.name + nd, name + nd))
			found = i;
	}
	uint64_t slot;
	if (found < a.n &&
	    !(rc = slot_of(fs, qid, a.hits[found].e.ino, &slot))) {
		link_stat(fs, INO_OF(qid, slot), &li, &st);
		entry_param(ep, &st);
	}
	free(li.target);
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
			query_free(q);
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
		uint64_t slot;
		rc = link_of_answer(&a, r, &li);
		if (!rc)
			rc = slot_of(fs, qid, a.hits[r].e.ino, &slot);
		if (!rc) {
			link_stat(fs, INO_OF(qid, slot), &li, &st);
			rc = add(arg, li.name, strlen(li.name), &st);
		}
		free(li.target);
	}
	if (!rc) {
		base_stat(fs, INO_OF(qid, SLOT_JSON), S_IFREG | SEARCH_FILE_MODE, &st);
		rc = add(arg, JSON_NAME, strlen(JSON_NAME), &st);
	}
	answer_free(&a);
	return rc;
}

/* ---- readlink ----------------------------------------------------------- */

void search_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	if (!is_search(ino) || ino == INO_SEARCH_DIR ||
	    SLOT_OF(ino) < SLOT_RANK0) {
		reply_err(req, EINVAL);         /* not a link */
		return;
	}
	struct link_info li = { 0 };
	int rc = link_info(fs, QID_OF(ino), SLOT_OF(ino), &li);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_readlink(req, li.target);
	free(li.target);
}

/* ---- results.json ------------------------------------------------------- */

/* "path": the item's path under items/ when it is valid UTF-8, else
 * "path_b64", its bytes in standard base64 (as the WAL's "name_b64"): a
 * JSON text is UTF-8, and a strict parser refuses any other byte. */
static bool add_path(struct json_object *x, const char *path)
{
	size_t len = strlen(path);
	if (t4dx_utf8_valid((const unsigned char *)path, len))
		return !json_object_object_add(x, "path",
				json_object_new_string(path));
	char *b = malloc((len + 2) / 3 * 4 + 1);
	if (!b)
		return false;
	b[t4dx_base64_put(b, (const unsigned char *)path, len)] = 0;
	bool ok = !json_object_object_add(x, "path_b64",
					  json_object_new_string(b));
	free(b);
	return ok;
}

/* {"partial": bool, ["pending": N,] "results": [{rank, path, id, score,
 * kappa, importance, type}, ...]}, best first, one line; "pending" only
 * when some files closed before the search had no vector yet. */
static int render_json(const struct answer *a, struct t4dx_buf *out)
{
	struct json_object *o = json_object_new_object();
	struct json_object *v = json_object_new_array();
	bool ok = o && v &&
		  !json_object_object_add(o, "partial",
				json_object_new_boolean(a->partial)) &&
		  (!a->pending ||
		   !json_object_object_add(o, "pending",
				json_object_new_uint64(a->pending))) &&
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
		     add_path(x, h->path) &&
		     !json_object_object_add(x, "id",
				json_object_new_string(id)) &&
		     !json_object_object_add(x, "score",
				json_object_new_double_s(h->score, num));
		/* kappa and importance as getfattr shows them, the values
		 * min_kappa and max_kappa compare (not rounded to 6 digits,
		 * which 0.1 + 0.05 + 0.05 of three nrem boosts is not) */
		t4dx_fmt_double(num, sizeof(num), h->e.kappa);
		ok = ok && !json_object_object_add(x, "kappa",
				json_object_new_double_s(h->e.kappa, num));
		t4dx_fmt_double(num, sizeof(num), h->e.importance);
		ok = ok && !json_object_object_add(x, "importance",
				json_object_new_double_s(h->e.importance, num)) &&
		     !json_object_object_add(x, "type",
				json_object_new_string(
					t4dx_type_name(h->e.type)));
	}
	return jemit(out, o, ok);
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
		query_free(q);
	}
}
