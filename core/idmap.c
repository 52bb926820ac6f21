/*
 * idmap.c - finding an item by its id (user.t4dx.id, search/@ID).
 *
 * Keys are (parent inode, name); nothing on disk is ordered by id, so an
 * item known only by its id would be a walk of the whole store.  The
 * engine keeps a map id -> key, filled by one such walk and by what the
 * lookups find, and never trusted: an answer is always the entry read
 * back at that key (t4dx_get), checked to be a regular file with that id.
 * So the map is allowed to be stale or incomplete, and no write path
 * keeps it up to date (renames, deletes, prune and merges need not know
 * it):
 *
 *   1. the map's key, if it still holds the item;
 *   2. else the memtables (a new or renamed item is there until its
 *      flush): one pass over their entries;
 *   3. else a walk of every live key, which rebuilds the map whole, then
 *      the map's key again;
 *   4. else the memtables again (an item renamed during the walk, from a
 *      key not yet walked to one already walked, is in the memtable).
 *
 * A lookup that finds its item at step 1 costs one t4dx_get; only an id
 * not seen since the last walk and no longer in the memtables costs a
 * walk (an unknown id always does).  The walk takes the read lock one
 * chunk of keys at a time, so writers wait for a chunk, not for the
 * store.  The map costs about 100 bytes per item, once an item was
 * searched for by id; a store never searched by id has none.  A key
 * found stale is dropped; the next walk replaces the map whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <uthash.h>

#include "engine_int.h"

#define WALK_CHUNK 4096         /* keys walked per hold of the read lock */

struct idkey {
	uint8_t id[16];
	uint64_t parent;
	uint16_t len;
	UT_hash_handle hh;
	char name[];                    /* len bytes, NUL-terminated */
};

struct key {
	uint64_t parent;
	uint16_t len;
	char name[T4DX_NAME_MAX + 1];
};

static void map_free(struct idkey **map)
{
	struct idkey *k, *t;
	HASH_ITER(hh, *map, k, t) {
		HASH_DEL(*map, k);
		free(k);
	}
}

/* Set id -> (parent, name) in *map: 0 or ENOMEM. */
static int map_set(struct idkey **map, const uint8_t *id, uint64_t parent,
		   const char *name, size_t len)
{
	struct idkey *k;
	HASH_FIND(hh, *map, id, sizeof(k->id), k);
	if (k && k->len == len) {
		k->parent = parent;
		memcpy(k->name, name, len);
		return 0;
	}
	if (k) {
		HASH_DEL(*map, k);
		free(k);
	}
	if (!(k = malloc(sizeof(*k) + len + 1)))
		return ENOMEM;
	memcpy(k->id, id, sizeof(k->id));
	k->parent = parent;
	k->len = (uint16_t)len;
	memcpy(k->name, name, len);
	k->name[len] = 0;
	HASH_ADD(hh, *map, id, sizeof(k->id), k);
	return 0;
}

static bool map_get(struct t4dx *db, const uint8_t *id, struct key *out)
{
	struct idkey *k;
	pthread_mutex_lock(&db->idmap_mu);
	HASH_FIND(hh, db->idmap, id, sizeof(k->id), k);
	if (k) {
		out->parent = k->parent;
		out->len = k->len;
		memcpy(out->name, k->name, k->len + 1);
	}
	pthread_mutex_unlock(&db->idmap_mu);
	return k != NULL;
}

/* Remember where id was found (nothing lost if memory is short). */
static void map_note(struct t4dx *db, const uint8_t *id, const struct key *k)
{
	pthread_mutex_lock(&db->idmap_mu);
	map_set(&db->idmap, id, k->parent, k->name, k->len);
	pthread_mutex_unlock(&db->idmap_mu);
}

/* Forget id, found no longer where the map said. */
static void map_forget(struct t4dx *db, const uint8_t *id)
{
	struct idkey *k;
	pthread_mutex_lock(&db->idmap_mu);
	HASH_FIND(hh, db->idmap, id, sizeof(k->id), k);
	if (k) {
		HASH_DEL(db->idmap, k);
		free(k);
	}
	pthread_mutex_unlock(&db->idmap_mu);
}

/* The live regular file at k, if it has id: 0, T4DX_ENOTFOUND, or a
 * read error. */
static int fetch(struct t4dx *db, const uint8_t *id, const struct key *k,
		 unsigned flags, struct t4dx_entry *out)
{
	int rc = t4dx_get(db, k->parent, k->name, k->len, flags, out);
	if (rc)
		return rc;
	if (S_ISREG(out->mode) && !memcmp(out->id, id, sizeof(out->id)))
		return 0;
	t4dx_entry_clear(out);
	return T4DX_ENOTFOUND;
}

/* A regular file with id in the memtables (mem first: the newer). */
static bool mem_find(struct t4dx *db, const uint8_t *id, struct key *out)
{
	bool found = false;
	pthread_rwlock_rdlock(&db->lock);
	struct t4dx_mem *mems[2] = { db->mem, db->imm };
	for (int i = 0; i < 2 && !found; i++) {
		if (!mems[i])
			continue;
		for (const struct t4dx_entry *e = t4dx_mem_seek(mems[i], 0,
								 "", 0);
		     e && !found; e = t4dx_mem_next(mems[i], e)) {
			if (e->tombstone || !S_ISREG(e->mode) ||
			    memcmp(e->id, id, sizeof(e->id)))
				continue;
			out->parent = e->parent;
			out->len = e->name_len;
			memcpy(out->name, e->name, e->name_len);
			out->name[e->name_len] = 0;
			found = true;
		}
	}
	pthread_rwlock_unlock(&db->lock);
	return found;
}

/* Walk every live key, a chunk at a time, into a new map that replaces
 * the engine's.  0 or an error (the old map is then kept). */
static int walk(struct t4dx *db)
{
	struct idkey *map = NULL;
	struct key at = { 0 };
	bool started = false, more = true;
	int rc = 0;
	while (more && !rc) {
		struct merge m;
		const struct t4dx_entry *e;
		size_t n = 0;
		pthread_rwlock_rdlock(&db->lock);
		rc = eng_merge_open(&m, db->mem, db->imm, db->segs, db->nsegs,
				    at.parent, at.name, at.len, false);
		if (rc) {
			pthread_rwlock_unlock(&db->lock);
			break;
		}
		more = false;
		while ((rc = eng_merge_next(&m, &e)) == 0) {
			/* the chunk starts at the last key of the one before */
			if (started && e->parent == at.parent &&
			    e->name_len == at.len &&
			    !memcmp(e->name, at.name, at.len))
				continue;
			started = true;
			if (!e->tombstone && S_ISREG(e->mode) &&
			    (rc = map_set(&map, e->id, e->parent, e->name,
					  e->name_len)))
				break;
			if (++n == WALK_CHUNK) {
				at.parent = e->parent;
				at.len = e->name_len;
				memcpy(at.name, e->name, e->name_len);
				at.name[e->name_len] = 0;
				more = true;
				break;
			}
		}
		eng_merge_close(&m);
		pthread_rwlock_unlock(&db->lock);
		if (rc == T4DX_ENOTFOUND)
			rc = 0;
	}
	if (rc) {
		map_free(&map);
		return rc;
	}
	pthread_mutex_lock(&db->idmap_mu);
	struct idkey *old = db->idmap;
	db->idmap = map;
	db->idmap_walks++;
	pthread_mutex_unlock(&db->idmap_mu);
	map_free(&old);
	return 0;
}

int t4dx_get_by_id(struct t4dx *db, const uint8_t id[16], unsigned flags,
		   struct t4dx_entry *out)
{
	struct key k;
	int rc = T4DX_ENOTFOUND;
	if (map_get(db, id, &k)) {
		rc = fetch(db, id, &k, flags, out);
		if (rc == T4DX_ENOTFOUND)
			map_forget(db, id);     /* moved or gone */
	}
	if (rc != T4DX_ENOTFOUND)
		return rc;
	for (int pass = 0; pass < 2; pass++) {
		if (mem_find(db, id, &k) &&
		    (rc = fetch(db, id, &k, flags, out)) != T4DX_ENOTFOUND) {
			if (!rc)
				map_note(db, id, &k);
			return rc;
		}
		if (pass)
			break;
		if ((rc = walk(db)))
			return rc;
		if (map_get(db, id, &k) &&
		    (rc = fetch(db, id, &k, flags, out)) != T4DX_ENOTFOUND)
			return rc;
	}
	return T4DX_ENOTFOUND;
}

uint64_t t4dx_id_walks(struct t4dx *db)
{
	pthread_mutex_lock(&db->idmap_mu);
	uint64_t n = db->idmap_walks;
	pthread_mutex_unlock(&db->idmap_mu);
	return n;
}

void eng_idmap_free(struct t4dx *db)
{
	map_free(&db->idmap);
}
