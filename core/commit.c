/*
 * commit.c - the write path: apply (one routine for live changes and WAL
 * replay), the commit of a record under either fallback policy, waiting
 * for durability, and the public changes put, delete, rename and update.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "engine_int.h"
#include "vec.h"

/* ---- applying records ------------------------------------------------- */

/* Apply r to the memtable; the same code serves live changes and WAL
 * replay, so both give the same state.  Keeps items up to date.  A record
 * whose key is absent changes nothing (replay of a change to what a later
 * record removed); any other failure (a segment that cannot be read, no
 * memory) is returned, and a caller whose record is already queued must
 * then go eng_fatal().  Lock held for writing. */
int eng_apply(struct t4dx *db, struct t4dx_rec *r)
{
	struct t4dx_entry old, ne;
	int rc, had;
	switch (r->op) {
	case T4DX_OP_PUT:
	case T4DX_OP_MKDIR:
		/* only to count items: a put needs no old version */
		had = eng_lookup(db, r->e.parent, r->e.name, r->e.name_len,
				 false, &old) == 0;
		r->e.lsn = r->lsn;
		r->e.tombstone = false;
		if ((rc = t4dx_mem_put(db->mem, &r->e)))
			return rc;
		if (db->lru)
			t4dx_lru_put(db->lru, &r->e);
		if (!had)
			db->items++;
		if (r->e.ino >= db->next_ino)
			db->next_ino = r->e.ino + 1;
		return 0;
	case T4DX_OP_DELETE:
	case T4DX_OP_RMDIR:
		rc = eng_lookup(db, r->e.parent, r->e.name, r->e.name_len,
				false, &old);
		if (rc)
			return rc == T4DX_ENOTFOUND ? 0 : rc;
		memset(&ne, 0, sizeof(ne));
		t4dx_entry_set_key(&ne, r->e.parent, r->e.name, r->e.name_len);
		ne.tombstone = true;
		ne.lsn = r->lsn;
		if ((rc = t4dx_mem_put(db->mem, &ne)))
			return rc;
		if (db->lru)
			t4dx_lru_put(db->lru, &ne);
		db->items--;
		return 0;
	case T4DX_OP_RENAME:
		rc = eng_lookup(db, r->e.parent, r->e.name, r->e.name_len, true,
				&old);
		if (rc)
			return rc == T4DX_ENOTFOUND ? 0 : rc;
		rc = eng_lookup(db, r->new_parent, r->new_name, r->new_name_len,
				false, &ne);
		if (rc && rc != T4DX_ENOTFOUND) {
			t4dx_entry_clear(&old);
			return rc;
		}
		had = rc == 0;
		memset(&ne, 0, sizeof(ne));
		t4dx_entry_set_key(&ne, r->e.parent, r->e.name, r->e.name_len);
		ne.tombstone = true;
		ne.lsn = r->lsn;
		t4dx_entry_set_key(&old, r->new_parent, r->new_name,
				   r->new_name_len);
		old.lsn = r->lsn;
		old.provisional = false;
		rc = t4dx_mem_put(db->mem, &ne);
		if (!rc)
			rc = t4dx_mem_put(db->mem, &old);
		if (!rc && db->lru) {
			t4dx_lru_put(db->lru, &ne);
			t4dx_lru_put(db->lru, &old);
		}
		t4dx_entry_clear(&old);
		if (!rc && had)
			db->items--;
		return rc;
	case T4DX_OP_UPDATE: {
		rc = eng_lookup(db, r->e.parent, r->e.name, r->e.name_len, true,
				&old);
		if (rc)
			return rc == T4DX_ENOTFOUND ? 0 : rc;
		t4dx_entry_apply(&old, &r->e, r->mask);
		old.lsn = r->lsn;
		old.provisional = false;
		rc = t4dx_mem_put(db->mem, &old);
		if (!rc && db->lru)
			t4dx_lru_put(db->lru, &old);
		t4dx_entry_clear(&old);
		return rc;
	}
	case T4DX_OP_PROBE:
		return 0;
	}
	return 0;
}

/* A record is in the WAL queue but not in the memtable (apply failed
 * with rc): refuse every later change until a restart, whose replay makes
 * the two agree again.  Returns EIO for the caller to report. */
int eng_fatal(struct t4dx *db, int rc)
{
	if (!atomic_exchange(&db->fatal, true))
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"a logged change could not be applied (%s): "
				"changes are refused until t4dx restarts",
				t4dx_strerror(rc));
	return EIO;
}

/* The breaker counts group commits, not their waiters: one failed
 * fdatasync shared by N committers is one storage failure. */
void eng_group_done(void *arg, int rc)
{
	struct t4dx *db = arg;
	t4dx_breaker_record(db->breaker, rc);
	if (rc == ESTALE) {
		/* the log files are gone: the flusher saves what they held */
		pthread_mutex_lock(&db->bg_mu);
		db->bg_wal_gone = true;
		pthread_cond_signal(&db->bg_cond);
		pthread_mutex_unlock(&db->bg_mu);
	}
}

/* The lock of a change, from its checks to its commit.  Under policy
 * reject a change is applied only once its record is durable, and the
 * fdatasync is waited for without db->lock (readers go on meanwhile):
 * changes then run one at a time, under reject_mu, taken before db->lock
 * and held from the checks on, so that what a change checked (a name is
 * free, a directory empty, a vector made of the content the item still
 * holds) still holds when its record is applied after the sync.  The
 * policy is fixed at open. */
static void change_lock(struct t4dx *db)
{
	if (!eng_queueing(db))
		pthread_mutex_lock(&db->reject_mu);
	pthread_rwlock_wrlock(&db->lock);
}

static void change_unlock(struct t4dx *db)
{
	pthread_rwlock_unlock(&db->lock);
	if (!eng_queueing(db))
		pthread_mutex_unlock(&db->reject_mu);
}

/* Policy "reject": a change that is not durable must leave no trace, so
 * commits run one at a time (reject_mu) and a change is applied only once
 * its record is durable; a failed record is dropped from the WAL, its LSN
 * given back.  change_lock() held on entry, released on return. */
static int commit_rejecting(struct t4dx *db, struct t4dx_rec *r,
			    uint64_t *lsn)
{
	int rc = t4dx_wal_add(db->wal, r);
	pthread_rwlock_unlock(&db->lock);
	if (!rc)
		/* eng_group_done counts */
		rc = t4dx_wal_sync(db->wal, r->lsn);
	pthread_rwlock_wrlock(&db->lock);
	if (!rc) {
		rc = eng_apply(db, r);
		if (rc)
			rc = eng_fatal(db, rc);
		else
			eng_maybe_wake_flusher(db);
	} else {
		uint64_t from, to;
		t4dx_wal_discard_pending(db->wal, &from, &to);
	}
	change_unlock(db);
	if (!rc && lsn)
		*lsn = r->lsn;
	/* a log file removed behind our back is an I/O error to the caller,
	 * as in wait_durable */
	return rc == ESTALE ? EIO : rc;
}

/* Queue r in the WAL and apply it; then wait for durability unless
 * T4DX_NOWAIT.  change_lock() held on entry, released on return. */
static int commit_locked(struct t4dx *db, struct t4dx_rec *r, unsigned flags,
			 uint64_t *lsn)
{
	if (!eng_queueing(db))
		return commit_rejecting(db, r, lsn);
	int rc = t4dx_wal_add(db->wal, r);
	if (!rc && (rc = eng_apply(db, r)))
		rc = eng_fatal(db, rc);
	if (!rc)
		eng_maybe_wake_flusher(db);
	/* (without memory for the note, the record counts as a user's:
	 * the bound is then only stricter) */
	if (!rc && (flags & ENG_DERIVED))
		(void)eng_vq_push(db, r->lsn,
				  t4dx_wal_last_add_bytes(db->wal));
	change_unlock(db);
	if (rc)
		return rc;
	if (lsn)
		*lsn = r->lsn;
	if (flags & T4DX_NOWAIT) {
		/* the caller may wait or not (metadata, mode fsync) */
		eng_commit_soon(db);
		return 0;
	}
	return t4dx_wait(db, r->lsn);
}

void eng_commit_soon(struct t4dx *db)
{
	if (atomic_exchange(&db->ct_armed, true) || !db->ct_started)
		return;
	pthread_mutex_lock(&db->ct_mu);
	pthread_cond_signal(&db->ct_cond);
	pthread_mutex_unlock(&db->ct_mu);
}

/* Make the records up to lsn durable: 0, or the error (EIO when the
 * breaker keeps the disk untried).  With policy queue, what could not be
 * written stays queued, applied, and counts as unpersisted. */
static int wait_durable(struct t4dx *db, uint64_t lsn)
{
	if (lsn <= t4dx_wal_durable_lsn(db->wal))
		return 0;
	int rc = EIO;                           /* OPEN: disk not tried */
	if (t4dx_breaker_allow(db->breaker)) {
		/* eng_group_done counts */
		rc = t4dx_wal_sync(db->wal, lsn);
		t4dx_breaker_done(db->breaker);
	}
	if (rc && eng_queueing(db))
		eng_mark_unpersisted(db, lsn);
	/* a log file removed behind our back is an I/O error to the caller */
	return rc == ESTALE ? EIO : rc;
}

/* The write stall.  A flush cuts the memtable at the log's end and
 * writes it out while writers go on into a new memtable; if they write
 * wal.checkpoint_bytes more before that flush ends (many writers of big
 * files, a slow disk), the live log would grow past its bound by as much
 * as they can write meanwhile.  Such a writer waits, once its change is
 * in (t4dx_wait), until the flush under way ends, saved or not
 * (flush_gen), or STALL_MAX_S passed (a disk that hangs must not hang
 * every writer for good; the log then grows, as it would without the
 * stall).  Not while segments cannot be written at all (level 2): no
 * flush would end it.  Counted in the stats (write_stalls). */
#define STALL_MAX_S 10
static void stall_behind_flush(struct t4dx *db)
{
	uint64_t gen;
	/* imm without a flush under way (one failed, and the next is not
	 * tried yet, or not at all while the breaker is not CLOSED): no end
	 * would come to wake the writer */
	if (!eng_flush_under_way(db, &gen))
		return;
	pthread_rwlock_rdlock(&db->lock);
	bool behind = db->imm && !atomic_load(&db->seg_failed) &&
		      t4dx_wal_bytes_after(db->wal, db->imm_lsn) >=
		      db->cfg.wal.checkpoint_bytes;
	pthread_rwlock_unlock(&db->lock);
	if (!behind)
		return;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += STALL_MAX_S;
	pthread_mutex_lock(&db->bg_mu);
	db->stalls++;
	db->stalled++;
	while (db->flush_gen == gen && !db->bg_stop &&
	       pthread_cond_timedwait(&db->flush_done, &db->bg_mu,
				      &until) != ETIMEDOUT)
		;
	db->stalled--;
	pthread_mutex_unlock(&db->bg_mu);
}

int eng_commit_queued(struct t4dx *db)
{
	uint64_t last = t4dx_wal_last_lsn(db->wal);
	if (last <= t4dx_wal_durable_lsn(db->wal))
		return 0;
	/* the disk is not tried while the breaker is OPEN: the records stay
	 * queued, as they would for a waiter, but are not counted as
	 * unpersisted for a commit nobody asked for (the embedder's vectors
	 * would otherwise turn the level read-only); a waiter, a probe or
	 * the timer once the breaker lets it writes them */
	struct t4dx_breaker_info bi;
	t4dx_breaker_get(db->breaker, &bi);
	if (bi.state == T4DX_OPEN)
		return EAGAIN;
	return wait_durable(db, last);
}

/* t4dx_wait; always: whatever the durability mode. */
static int wait_for(struct t4dx *db, uint64_t lsn, bool always)
{
	if (db->readonly)
		return EROFS;
	/* mode fsync: the change is durable with the timer's commit or
	 * the next fsync; the write stall below still applies */
	int rc = !always && atomic_load(&db->durability) ==
				    T4DX_DURABLE_FSYNC
		 ? 0 : wait_durable(db, lsn);
	/* here, once the change is in the log and outside the caller's
	 * locks (fs/ adds records under its namespace lock and waits after
	 * it): a stalled writer holds up only itself, and each writer adds
	 * at most one record past the bound */
	stall_behind_flush(db);
	/* policy queue: acknowledged as unpersisted */
	return rc && eng_queueing(db) ? 0 : rc;
}

int t4dx_wait(struct t4dx *db, uint64_t lsn)
{
	return wait_for(db, lsn, false);
}

int eng_wait_always(struct t4dx *db, uint64_t lsn)
{
	return wait_for(db, lsn, true);
}

int t4dx_sync(struct t4dx *db, uint64_t lsn)
{
	if (db->readonly)
		return EROFS;
	if (!lsn)
		lsn = t4dx_wal_last_lsn(db->wal);
	int rc = wait_durable(db, lsn);
	if (rc)
		return rc;
	/* Synced once is not enough if the log was removed since (rm -rf
	 * DATA/wal): records that only it held are durable again once the
	 * flusher has saved them in a segment, which this asks for.  The
	 * flushed LSN counts only once a durable MANIFEST names the segment:
	 * a power cut may bring back the one before (manifest_unsynced). */
	pthread_rwlock_rdlock(&db->lock);
	bool in_segments = lsn <= db->flushed_lsn && !db->manifest_unsynced;
	pthread_rwlock_unlock(&db->lock);
	if (in_segments || !t4dx_wal_gone(db->wal))
		return 0;
	eng_group_done(db, ESTALE);
	return EIO;
}

int t4dx_durability(struct t4dx *db)
{
	return atomic_load(&db->durability);
}

int t4dx_set_durability(struct t4dx *db, int mode)
{
	if (mode != T4DX_DURABLE_CLOSE && mode != T4DX_DURABLE_FSYNC)
		return EINVAL;
	if (db->readonly)
		return EROFS;
	int was = atomic_exchange(&db->durability, mode);
	if (was != T4DX_DURABLE_FSYNC || mode != T4DX_DURABLE_CLOSE)
		return 0;
	/* back to close: whatever was acknowledged without waiting while
	 * in fsync mode is made durable now.  The mode is set first, so a
	 * change that still saw fsync had queued its record before the
	 * switch, at or below the last LSN this reads. */
	return t4dx_sync(db, 0);
}

static int check_name(size_t len)
{
	if (len == 0)
		return EINVAL;
	return len > T4DX_NAME_MAX ? ENAMETOOLONG : 0;
}

/* A vector the record codec can write: none, or a source with a vector
 * whose bytes are one.  The entry of a put may name a source without
 * the bytes, as an attributes-only read leaves it: see put_vector. */
static bool vec_ok(const struct t4dx_entry *e, bool put)
{
	if (e->vec_src > T4DX_VEC_TRIED)
		return false;
	if (!e->vec)
		return !t4dx_vec_src_has(e->vec_src) || put;
	return t4dx_vec_src_has(e->vec_src) &&
	       !t4dx_vec_check(e->vec->data, e->vec->len);
}

/* The vector a put writes.  New content makes the embedder's vector
 * stale: it goes (the embedder computes the next).  A hand-set one stays:
 * the entry's own bytes, or, when only its attributes were read, the
 * item's current vector.  Sets r->e.vec and vec_src; *kept is a reference
 * the caller drops once the record is written.  Lock held. */
static int put_vector(struct t4dx *db, struct t4dx_rec *r,
		      const struct t4dx_entry *old, struct t4dx_blob **kept)
{
	*kept = NULL;
	if (r->op != T4DX_OP_PUT || r->e.vec_src != T4DX_VEC_HAND) {
		r->e.vec_src = T4DX_VEC_NONE;
		r->e.vec = NULL;
		return 0;
	}
	if (r->e.vec)
		return 0;
	if (old && old->vec_src == T4DX_VEC_HAND) {
		struct t4dx_entry full;
		int rc = eng_lookup(db, old->parent, old->name, old->name_len,
				    true, &full);
		if (rc)
			return rc == T4DX_ENOTFOUND ? 0 : rc;
		*kept = full.vec;
		full.vec = NULL;
		t4dx_entry_clear(&full);
	}
	r->e.vec = *kept;
	if (!*kept)
		r->e.vec_src = T4DX_VEC_NONE;
	return 0;
}

int t4dx_put(struct t4dx *db, struct t4dx_entry *e, unsigned flags,
	     uint64_t *lsn)
{
	struct t4dx_rec r;
	struct t4dx_entry old;
	int rc = check_name(e->name_len);
	if (rc)
		return rc;
	if ((e->content && e->content->len != e->size) || !vec_ok(e, true))
		return EINVAL;
	if (!S_ISDIR(e->mode) && e->size > db->cfg.limits.max_item_bytes)
		return EFBIG;
	if ((rc = eng_gate(db)))
		return rc;
	change_lock(db);
	rc = eng_lookup(db, e->parent, e->name, e->name_len, false, &old);
	bool had = rc == 0;
	if (rc == 0) {
		if (flags & T4DX_EXCL)
			rc = EEXIST;
		else if (S_ISDIR(old.mode) && !S_ISDIR(e->mode))
			rc = EISDIR;
		else if (S_ISDIR(e->mode))
			rc = EEXIST;
	} else if (rc == T4DX_ENOTFOUND) {
		rc = 0;
	}
	if (rc) {
		change_unlock(db);
		return rc;
	}
	if (!e->ino)
		e->ino = db->next_ino++;
	memset(&r, 0, sizeof(r));
	r.op = S_ISDIR(e->mode) ? T4DX_OP_MKDIR : T4DX_OP_PUT;
	r.e = *e;               /* borrows e->content while locked */
	r.e.provisional = false;
	struct t4dx_blob *kept;
	rc = put_vector(db, &r, had ? &old : NULL, &kept);
	if (rc) {
		change_unlock(db);
		return rc;
	}
	if ((flags & T4DX_PROVISIONAL) && r.op == T4DX_OP_PUT &&
	    eng_queueing(db)) {
		/* no record: the entry carries the last LSN so far, which
		 * keeps the memtable's LSN range that of its records */
		r.lsn = t4dx_wal_last_lsn(db->wal);
		r.e.provisional = true;
		rc = eng_apply(db, &r);
		if (!rc)
			eng_maybe_wake_flusher(db);
		change_unlock(db);
		t4dx_blob_unref(kept);
		if (lsn)
			*lsn = 0;
		e->lsn = 0;
		return rc;
	}
	rc = commit_locked(db, &r, flags, lsn);
	t4dx_blob_unref(kept);
	e->lsn = r.lsn;
	/* new content, no vector: the embedder computes it */
	if (!rc && r.op == T4DX_OP_PUT && r.e.vec_src == T4DX_VEC_NONE &&
	    e->size)
		eng_embed_queue(db, e->parent, e->name, e->name_len);
	return rc;
}

/* Before a record that acknowledges something about a provisional entry
 * (rename, update), write the put the entry never had, so that replay
 * finds it.  Lock held for writing. */
static int materialize(struct t4dx *db, const struct t4dx_entry *old)
{
	struct t4dx_rec r;
	if (!old->provisional)
		return 0;
	memset(&r, 0, sizeof(r));
	r.op = T4DX_OP_PUT;
	int rc = eng_lookup(db, old->parent, old->name, old->name_len, true,
			    &r.e);
	if (rc)
		return rc == T4DX_ENOTFOUND ? ENOENT : rc;
	r.e.provisional = false;
	rc = t4dx_wal_add(db->wal, &r);
	if (!rc && (rc = eng_apply(db, &r)))
		rc = eng_fatal(db, rc);
	t4dx_entry_clear(&r.e);
	return rc;
}

int t4dx_delete(struct t4dx *db, uint64_t parent, const char *name,
		size_t name_len, bool dir, unsigned flags, uint64_t *lsn)
{
	struct t4dx_rec r;
	struct t4dx_entry old;
	int rc = check_name(name_len);
	if (rc)
		return rc;
	if ((rc = eng_gate(db)))
		return rc;
	memset(&r, 0, sizeof(r));
	t4dx_entry_set_key(&r.e, parent, name, name_len);
	change_lock(db);
	rc = eng_lookup(db, parent, name, name_len, false, &old);
	if (rc == T4DX_ENOTFOUND)
		rc = ENOENT;
	else if (!rc && dir && !S_ISDIR(old.mode))
		rc = ENOTDIR;
	else if (!rc && !dir && S_ISDIR(old.mode))
		rc = EISDIR;
	else if (!rc && dir)
		rc = eng_check_empty(db, old.ino);
	if (rc) {
		change_unlock(db);
		return rc;
	}
	r.op = dir ? T4DX_OP_RMDIR : T4DX_OP_DELETE;
	return commit_locked(db, &r, flags, lsn);
}

int t4dx_rename(struct t4dx *db, uint64_t parent, const char *name,
		size_t name_len, uint64_t new_parent, const char *new_name,
		size_t new_name_len, unsigned flags, uint64_t *lsn)
{
	struct t4dx_rec r;
	struct t4dx_entry src, dst;
	int rc = check_name(name_len);
	if (!rc)
		rc = check_name(new_name_len);
	if (!rc)
		rc = eng_gate(db);
	if (rc)
		return rc;
	memset(&r, 0, sizeof(r));
	t4dx_entry_set_key(&r.e, parent, name, name_len);
	r.new_parent = new_parent;
	r.new_name_len = (uint16_t)new_name_len;
	memcpy(r.new_name, new_name, new_name_len);
	r.new_name[new_name_len] = 0;

	change_lock(db);
	/* with the content, as eng_apply() will read it: a part that cannot be
	 * read fails the rename here, before its record is queued */
	rc = eng_lookup(db, parent, name, name_len, true, &src);
	if (!rc)
		t4dx_entry_clear(&src);
	if (rc == T4DX_ENOTFOUND)
		rc = ENOENT;
	if (rc)
		goto fail;
	rc = eng_lookup(db, new_parent, new_name, new_name_len, false, &dst);
	if (rc == T4DX_ENOTFOUND) {
		rc = 0;
	} else if (rc == 0) {
		if (src.ino == dst.ino) {       /* same entry: nothing to do */
			change_unlock(db);
			if (lsn)
				*lsn = 0;
			return 0;
		}
		if (flags & T4DX_NOREPLACE)
			rc = EEXIST;
		else if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode))
			rc = ENOTDIR;
		else if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode))
			rc = EISDIR;
		else if (S_ISDIR(dst.mode))
			rc = eng_check_empty(db, dst.ino);
	}
	if (!rc)
		rc = materialize(db, &src);
	if (rc)
		goto fail;
	r.op = T4DX_OP_RENAME;
	rc = commit_locked(db, &r, flags, lsn);
	/* a file still waiting for its vector waits under its new name */
	if (!rc && S_ISREG(src.mode) && src.size &&
	    src.vec_src == T4DX_VEC_NONE)
		eng_embed_queue(db, new_parent, new_name, new_name_len);
	return rc;
fail:
	change_unlock(db);
	return rc;
}

/* A change of fields nobody waits for, of a provisional entry (a new
 * file not yet stored, see t4dx_put): applied to the entry alone, with no
 * record.  The put that stores the file (its first close or fsync, or the
 * one a rename or a waiting update writes first) carries every field of
 * the entry, these included, so their own records would only repeat it:
 * tar -x sets mode, owner and times of each file before it closes it, and
 * the file then costs one record instead of five.  The entry keeps the
 * last LSN so far, as the provisional put did.  change_lock() held. */
static int update_provisional(struct t4dx *db, struct t4dx_rec *r)
{
	struct t4dx_entry e;
	int rc = eng_lookup(db, r->e.parent, r->e.name, r->e.name_len, true,
			    &e);
	if (rc)
		return rc == T4DX_ENOTFOUND ? ENOENT : rc;
	t4dx_entry_apply(&e, &r->e, r->mask);
	e.lsn = t4dx_wal_last_lsn(db->wal);
	e.provisional = true;
	rc = t4dx_mem_put(db->mem, &e);
	if (!rc && db->lru)
		t4dx_lru_put(db->lru, &e);
	t4dx_entry_clear(&e);
	return rc;
}

int t4dx_update(struct t4dx *db, uint64_t parent, const char *name,
		size_t name_len, const struct t4dx_entry *f, uint32_t mask,
		unsigned flags, uint64_t *lsn)
{
	struct t4dx_rec r;
	struct t4dx_entry old;
	int rc = check_name(name_len);
	if (rc)
		return rc;
	if ((mask & ~(uint32_t)(T4DX_F_ALL | T4DX_F_VEC)) ||
	    ((mask & T4DX_F_VEC) && !vec_ok(f, false)))
		return EINVAL;
	if ((rc = eng_gate(db)))
		return rc;
	memset(&r, 0, sizeof(r));
	r.e = *f;               /* borrows f->vec while locked */
	r.e.content = NULL;
	if (!(mask & T4DX_F_VEC)) {
		r.e.vec = NULL;
		r.e.vec_src = T4DX_VEC_NONE;
	}
	t4dx_entry_set_key(&r.e, parent, name, name_len);
	r.op = T4DX_OP_UPDATE;
	r.mask = mask;
	change_lock(db);
	/* with the content, as eng_apply() will read it (see t4dx_rename) */
	rc = eng_lookup(db, parent, name, name_len, true, &old);
	if (!rc)
		t4dx_entry_clear(&old);
	if (rc == T4DX_ENOTFOUND)
		rc = ENOENT;
	/* a vector is a memory's: a regular file's (directories and links
	 * have none).  Its dim is the caller's to check (fs/ asks for
	 * vector.dim; one of an earlier dim stays, unused by search) */
	if (!rc && (mask & T4DX_F_VEC) && r.e.vec_src != T4DX_VEC_NONE &&
	    !S_ISREG(old.mode))
		rc = EINVAL;
	if (!rc && old.provisional && (flags & T4DX_NOWAIT) &&
	    !(mask & T4DX_F_VEC) && eng_queueing(db)) {
		rc = update_provisional(db, &r);
		change_unlock(db);
		if (lsn)
			*lsn = 0;
		return rc;
	}
	if (!rc)
		rc = materialize(db, &old);
	if (rc) {
		change_unlock(db);
		return rc;
	}
	rc = commit_locked(db, &r, flags, lsn);
	/* a vector removed: the embedder computes the content's */
	if (!rc && (mask & T4DX_F_VEC) && r.e.vec_src == T4DX_VEC_NONE &&
	    S_ISREG(old.mode) && old.size)
		eng_embed_queue(db, parent, name, name_len);
	return rc;
}

int eng_set_embedded(struct t4dx *db, uint64_t parent, const char *name,
		     size_t name_len, const struct t4dx_blob *c,
		     uint64_t seen, int src, struct t4dx_blob *v,
		     uint64_t *lsn)
{
	struct t4dx_rec r;
	struct t4dx_entry old;
	/* only while nothing fails: a queue of vectors must not fill the
	 * fallback queue that keeps users' changes while the disk fails */
	if (src == T4DX_VEC_EMBED ? !v : src != T4DX_VEC_TRIED || v)
		return EINVAL;
	int rc = eng_gate_embedder(db);
	if (rc)
		return rc;
	memset(&r, 0, sizeof(r));
	t4dx_entry_set_key(&r.e, parent, name, name_len);
	r.op = T4DX_OP_UPDATE;
	r.mask = T4DX_F_VEC;
	r.e.vec_src = (uint8_t)src;
	r.e.vec = v;            /* borrowed while locked */
	change_lock(db);
	/* the version the embedder read is still there (the same LSN: the
	 * same content): no content read or compared under the lock, which
	 * every writer waits for; another version (a rename, a kappa set
	 * since) may still hold the same bytes */
	rc = eng_lookup(db, parent, name, name_len, false, &old);
	bool by_lsn = !rc && seen && old.lsn == seen;
	if (!rc && !by_lsn) {
		t4dx_entry_clear(&old);
		rc = eng_lookup(db, parent, name, name_len, true, &old);
	}
	if (rc) {
		change_unlock(db);
		return rc == T4DX_ENOTFOUND ? ESTALE : rc;
	}
	/* an embedder's outcome replaces none, or one of an earlier
	 * embedder (see embedder.c), never a hand vector */
	bool same = S_ISREG(old.mode) && !old.provisional &&
		    old.vec_src != T4DX_VEC_HAND &&
		    (by_lsn || (old.content &&
		     (old.content == c || (old.content->len == c->len &&
		      !memcmp(old.content->data, c->data, c->len)))));
	t4dx_entry_clear(&old);
	if (!same) {
		change_unlock(db);
		return ESTALE;
	}
	return commit_locked(db, &r, T4DX_NOWAIT | ENG_DERIVED, lsn);
}
