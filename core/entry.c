/* entry.c - values of the public interface: blobs, entries, error codes,
 * configuration defaults. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fields.h"
#include "t4dx.h"

#define ROW(key, bit, kind, member, xattr, ro) \
	{ key, bit, T4DX_FIELD_##kind, offsetof(struct t4dx_entry, member), \
	  xattr, ro }
const struct t4dx_field t4dx_fields[T4DX_NFIELDS] = {
	ROW("mode", T4DX_F_MODE, MODE, mode, NULL, false),
	ROW("uid", T4DX_F_UID, U32, uid, NULL, false),
	ROW("gid", T4DX_F_GID, U32, gid, NULL, false),
	ROW("atime", T4DX_F_ATIME, I64, atime_ns, NULL, false),
	ROW("mtime", T4DX_F_MTIME, I64, mtime_ns, NULL, false),
	ROW("ctime", T4DX_F_CTIME, I64, ctime_ns, NULL, false),
	ROW("kappa", T4DX_F_KAPPA, UNIT, kappa, "kappa", false),
	ROW("importance", T4DX_F_IMPORTANCE, UNIT, importance, "importance",
	    false),
	ROW("type", T4DX_F_TYPE, TYPE, type, "type", false),
	ROW("event_time", T4DX_F_EVENT_TIME, I64, event_time_ns,
	    "event_time", false),
	/* counted by the engine, never set by hand */
	ROW("access_count", T4DX_F_ACCESS, U64, access_count, "access_count",
	    true),
};
#undef ROW
_Static_assert((T4DX_F_INODE | T4DX_F_MEMORY) == T4DX_F_ALL,
	       "every update bit has a row in t4dx_fields");

struct t4dx_blob *t4dx_blob_new(size_t len)
{
	struct t4dx_blob *b = malloc(sizeof(*b) + len + 1);
	if (!b)
		return NULL;
	atomic_init(&b->refs, 1);
	b->len = len;
	b->slot = NULL;
	b->data[len] = 0;
	return b;
}

struct t4dx_blob *t4dx_blob_resize(struct t4dx_blob *b, size_t len)
{
	/* a large block shrinks or grows in place (mremap): no copy */
	struct t4dx_blob *n = realloc(b, sizeof(*b) + len + 1);
	if (!n)
		return NULL;
	n->len = len;
	n->data[len] = 0;
	return n;
}

struct t4dx_blob *t4dx_blob_from(const void *data, size_t len)
{
	struct t4dx_blob *b = t4dx_blob_new(len);
	if (b && len)
		memcpy(b->data, data, len);
	return b;
}

struct t4dx_blob *t4dx_blob_ref(struct t4dx_blob *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

/* A weak holder of one blob at a time: it finds the blob while someone
 * else holds a reference, and lets it go with the last one.  The slot
 * lives while its owner or a blob it saw refers to it.  A blob whose count
 * reached 0 is never revived: until its free clears the slot (under mu),
 * a get sees the 0 and answers NULL. */
struct t4dx_blob_slot {
	pthread_mutex_t mu;
	atomic_uint refs;
	struct t4dx_blob *b;    /* guarded by mu */
};

struct t4dx_blob_slot *t4dx_blob_slot_new(void)
{
	struct t4dx_blob_slot *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	pthread_mutex_init(&w->mu, NULL);
	atomic_init(&w->refs, 1);
	return w;
}

void t4dx_blob_slot_unref(struct t4dx_blob_slot *w)
{
	if (w && atomic_fetch_sub_explicit(&w->refs, 1,
					   memory_order_acq_rel) == 1) {
		pthread_mutex_destroy(&w->mu);
		free(w);
	}
}

struct t4dx_blob *t4dx_blob_slot_get(struct t4dx_blob_slot *w)
{
	pthread_mutex_lock(&w->mu);
	struct t4dx_blob *b = w->b;
	if (b) {
		unsigned r = atomic_load_explicit(&b->refs,
						  memory_order_relaxed);
		while (r && !atomic_compare_exchange_weak_explicit(
				&b->refs, &r, r + 1, memory_order_acq_rel,
				memory_order_relaxed))
			;
		if (!r)
			b = NULL;
	}
	pthread_mutex_unlock(&w->mu);
	return b;
}

void t4dx_blob_slot_set(struct t4dx_blob_slot *w, struct t4dx_blob *b)
{
	atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
	b->slot = w;
	pthread_mutex_lock(&w->mu);
	w->b = b;
	pthread_mutex_unlock(&w->mu);
}

void t4dx_blob_unref(struct t4dx_blob *b)
{
	if (!b || atomic_fetch_sub_explicit(&b->refs, 1,
					    memory_order_acq_rel) != 1)
		return;
	struct t4dx_blob_slot *w = b->slot;
	if (w) {
		pthread_mutex_lock(&w->mu);
		if (w->b == b)
			w->b = NULL;
		pthread_mutex_unlock(&w->mu);
		t4dx_blob_slot_unref(w);
	}
	free(b);
}

static const char *const type_names[] = { "episodic", "semantic",
					  "procedural" };

const char *t4dx_type_name(int type)
{
	if (type < 0 || type > 2)
		return "episodic";
	return type_names[type];
}

int t4dx_type_parse(const char *s, size_t len)
{
	for (int i = 0; i < 3; i++)
		if (strlen(type_names[i]) == len && !memcmp(s, type_names[i], len))
			return i;
	return -1;
}

void t4dx_entry_copy(struct t4dx_entry *dst, const struct t4dx_entry *src)
{
	if (dst == src)
		return;
	*dst = *src;
	t4dx_blob_ref(dst->content);
	t4dx_blob_ref(dst->vec);
}

void t4dx_entry_clear(struct t4dx_entry *e)
{
	t4dx_blob_unref(e->content);
	e->content = NULL;
	t4dx_blob_unref(e->vec);
	e->vec = NULL;
}

int t4dx_entry_set_key(struct t4dx_entry *e, uint64_t parent,
		       const char *name, size_t name_len)
{
	if (name_len == 0 || memchr(name, '/', name_len) ||
	    memchr(name, 0, name_len))
		return EINVAL;
	if (name_len > T4DX_NAME_MAX)
		return ENAMETOOLONG;
	e->parent = parent;
	e->name_len = (uint16_t)name_len;
	memcpy(e->name, name, name_len);
	e->name[name_len] = 0;
	return 0;
}

int t4dx_key_cmp(uint64_t pa, const char *na, size_t la,
		 uint64_t pb, const char *nb, size_t lb)
{
	if (pa != pb)
		return pa < pb ? -1 : 1;
	int c = memcmp(na, nb, la < lb ? la : lb);
	if (c)
		return c < 0 ? -1 : 1;
	return la < lb ? -1 : la > lb;
}

const char *t4dx_strerror(int rc)
{
	switch (rc) {
	case 0: return "success";
	case T4DX_ENOTFOUND: return "not found";
	case T4DX_ECORRUPT: return "data is damaged (checksum or format check failed)";
	case T4DX_ELOCKED: return "data directory is locked by another process";
	case T4DX_EFORMAT: return "unknown or malformed file format";
	case T4DX_ECONFIG: return "invalid configuration";
	default:
		return rc > 0 ? strerror(rc) : "unknown error";
	}
}

int t4dx_errno(int rc)
{
	switch (rc) {
	case 0: return 0;
	case T4DX_ENOTFOUND: return ENOENT;
	case T4DX_ELOCKED: return EBUSY;
	case T4DX_ECONFIG: return EINVAL;
	case T4DX_ECORRUPT:
	case T4DX_EFORMAT: return EIO;
	default: return rc > 0 ? rc : EIO;
	}
}

void t4dx_config_defaults(struct t4dx_config *c)
{
	memset(c, 0, sizeof(*c));
	c->breaker.failure_threshold = 5;
	c->breaker.success_threshold = 2;
	c->breaker.reset_timeout_s = 60;
	c->wal.max_file_bytes = 64ULL << 20;
	c->wal.archive_max_bytes = 256ULL << 20;
	/* a flush once this much log is not covered by segments: bounds
	 * the live log, and so the replay at a restart after a crash */
	c->wal.checkpoint_bytes = 64ULL << 20;
	/* what nobody waits for is on disk this soon (ext4 commits every
	 * 5 s; a memory store can afford much less) */
	c->wal.commit_interval_ms = 10;
	c->memtable.max_bytes = 64ULL << 20;
	c->memtable.max_items = 10000;
	c->fallback.max_items = 1000;
	/* the fallback cache's contents stay alive after a flush */
	c->fallback.cache_bytes = 64ULL << 20;
	c->fallback.max_queue = 10000;
	/* the records waiting for a disk that fails live in memory */
	c->fallback.max_queue_bytes = 64ULL << 20;
	c->fallback.drain_batch = 100;
	strcpy(c->fallback.policy, "queue");
	c->fallback.rescue_fallback = true;
	c->health.interval_s = 30;
	c->health.timeout_s = 5;
	c->health.alert_threshold = 3;
	/* a slice of a segment per tick: a big segment is read over several
	 * ticks, and no tick takes long on healthy data */
	c->health.verify_bytes = 8ULL << 20;
	c->health.verify_at_start = false;
	c->compaction.nrem_kappa_boost = 0.05;
	c->compaction.prune_min_kappa = 0.05;
	c->compaction.prune_max_importance = 0.1;
	c->compaction.prune_max_age_s = 0;
	c->limits.max_item_bytes = 16ULL << 20;
	/* all open files' uncommitted writes together */
	c->limits.write_buffer_bytes = 256ULL << 20;
	c->vector.dim = 256;
	strcpy(c->vector.embedder, "builtin");
	strcpy(c->vector.command, "[]");
	c->vector.timeout_s = 10;
	c->vector.start_timeout_s = 60;
	/* 16 writers that never pause fill two cores for longer than
	 * that only with 180,000 files or more */
	c->vector.defer_s = 30;
	/* HNSW, measured on 10,000 vectors of dim 256 a segment: recall@10
	 * 1.0 on clustered vectors and 0.96 on uniformly random ones (the
	 * hard case; 0.45 with m 16 and ef_search 64), about 5 s of one
	 * core to build, 12.5 MiB, 1 to 3 ms a search */
	c->vector.index_m = 32;
	c->vector.ef_construction = 100;
	c->vector.ef_search = 256;
	/* below this, reading a segment's vectors is cheaper than
	 * building, keeping and loading a graph of them */
	c->vector.index_min_items = 1000;
	/* a margin over the 0.95 issue 13 asks of search, for a measure
	 * of 320 answers (hnsw.cc); a graph near it would answer a small
	 * segment more slowly than its scan does (10,000 uniformly random
	 * vectors of dim 256 beside 90,000 scanned: mount p50 2.3 ms
	 * walked, 1.8 ms scanned) */
	c->vector.min_recall = 0.99;
}

void t4dx_entry_apply(struct t4dx_entry *e, const struct t4dx_entry *f,
		      uint32_t mask)
{
	static const size_t size[] = {
		[T4DX_FIELD_U32] = sizeof(uint32_t),
		[T4DX_FIELD_I64] = sizeof(int64_t),
		[T4DX_FIELD_U64] = sizeof(uint64_t),
		[T4DX_FIELD_UNIT] = sizeof(double),
		[T4DX_FIELD_TYPE] = sizeof(uint8_t),
	};
	for (size_t i = 0; i < T4DX_NFIELDS; i++) {
		const struct t4dx_field *fl = &t4dx_fields[i];
		if (!(mask & fl->bit))
			continue;
		if (fl->kind == T4DX_FIELD_MODE)
			e->mode = (e->mode & S_IFMT) | (f->mode & 07777);
		else
			memcpy((char *)e + fl->off, (const char *)f + fl->off,
			       size[fl->kind]);
	}
	if (mask & T4DX_F_VEC) {
		t4dx_blob_unref(e->vec);
		e->vec = t4dx_blob_ref(f->vec);
		e->vec_src = f->vec_src;
	}
}
