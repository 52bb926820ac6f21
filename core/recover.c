/*
 * recover.c - what an open does to bring the store back: replaying the
 * WAL into the memtable (also read-only), opening and verifying the
 * MANIFEST's segments, quarantining a damaged one and rebuilding it from
 * the WAL archive, reporting unknown files, and replaying rescue files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"

/* ---- replay and quarantine --------------------------------------------- */

int eng_replay_one(void *arg, struct t4dx_rec *r)
{
	struct t4dx *db = arg;
	int rc = eng_apply(db, r);
	t4dx_entry_clear(&r->e);
	return rc;
}

static void quarantine(struct t4dx *db, const char *path)
{
	char to[2 * PATH_MAX];
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	/* never over an earlier casualty */
	int rc = t4dx_io_quarantine(path, db->quarantine_dir, base, to,
				    sizeof(to));
	if (rc) {
		/* no longer live all the same: the MANIFEST names its
		 * rebuilt segment instead */
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"segment %s is damaged and no longer live, "
				"but it could not be moved to %s: %s", path,
				db->quarantine_dir, strerror(rc));
		return;
	}
	t4dx_io_fsync_dir(db->quarantine_dir);
	db->recovery.segments_quarantined++;
	size_t used = strlen(db->recovery.quarantined);
	snprintf(db->recovery.quarantined + used,
		 sizeof(db->recovery.quarantined) - used, "%s%s",
		 used ? " " : "", base);
	t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
			"segment %s is damaged: moved to %s", path, to);
}

/* ---- rebuilding a damaged segment --------------------------------------
 * The live segments together hold every key's newest version as of the
 * MANIFEST's flushed LSN; each segment holds the keys whose newest record
 * up to then lies in its LSN range (a flush: the memtable's; an nrem:
 * everything up to its end), tombstones too.  Replaying the WAL, archive
 * included, from its first record up to the flushed LSN into an empty
 * scratch state therefore gives back exactly the damaged segment's keys:
 * those whose version there has an LSN in its range.  They become a new
 * segment in the damaged one's place.  Records after the flushed LSN are
 * left to the ordinary replay that follows, which finds the rebuilt keys
 * to update, rename or delete (prune's logged deletions among them).
 * Replaying further here would be wrong: a key updated or renamed after
 * the flush would have its newest LSN outside the range and be dropped,
 * and the later record would then find nothing to apply to.  What
 * compaction did to the keys (kappa raised by nrem) is not in the WAL and
 * is lost; if the archive no longer reaches back to LSN 1, what only older
 * records described is lost too, and health says so.  Both only for the
 * keys of blocks that no longer read back: the damaged segment's whole
 * blocks are salvaged as they are (rebuild_segment). */

struct rebuild {
	struct t4dx *scratch;
	uint64_t upto, first;
	struct t4dx *db;                /* for the progress */
	uint64_t seg_id, done, total;
};

static void rebuild_progress(void *arg, uint64_t bytes)
{
	struct rebuild *rb = arg;
	rb->done += bytes;
	if (rb->done > rb->total)
		rb->done = rb->total;
	if (rb->db->rebuild_fn)
		rb->db->rebuild_fn(rb->db->rebuild_arg, rb->seg_id, rb->done,
				   rb->total);
}

static int rebuild_one(void *arg, struct t4dx_rec *r)
{
	struct rebuild *rb = arg;
	if (!rb->first)
		rb->first = r->lsn;
	if (r->lsn <= rb->upto)
		eng_apply(rb->scratch, r);
	return 0;
}

static int salvage_one(void *arg, struct t4dx_entry *e)
{
	int rc = t4dx_mem_put(arg, e);
	t4dx_entry_clear(e);
	return rc;
}

static bool in_range(const struct t4dx_manifest_seg *ms,
		     const struct t4dx_entry *e)
{
	return e->lsn >= ms->min_lsn && e->lsn <= ms->max_lsn;
}

/* Does one of the segments from db->segs[from] on (newer than the one
 * rebuilt) hold e's key, a tombstone included?  An error counts as yes:
 * the older version is not put above what cannot be read. */
static bool held_newer(struct t4dx *db, size_t from,
		       const struct t4dx_entry *e)
{
	for (size_t j = from; j < db->nsegs; j++) {
		struct t4dx_entry x;
		int rc = t4dx_seg_get(db->segs[j], e->parent, e->name,
				      e->name_len, false, &x);
		if (rc == T4DX_ENOTFOUND)
			continue;
		if (!rc)
			t4dx_entry_clear(&x);
		return true;
	}
	return false;
}

/* A salvaged entry whose block lost its vector part (read without
 * vectors, vec_src NONE) and the archive's entry of the same version
 * (the same LSN: every change of an item, a vector's too, gives it the
 * record's LSN) that has one: the archive's vector is the item's, so a
 * vector set by hand survives the rebuild whenever the archive reaches
 * back to the record that set it.  Entries of different versions are
 * left as they are. */
static void take_vector(struct t4dx_entry *g, const struct t4dx_entry *a)
{
	if (g->vec_src != T4DX_VEC_NONE || a->vec_src == T4DX_VEC_NONE ||
	    a->lsn != g->lsn)
		return;
	t4dx_blob_unref(g->vec);
	g->vec = a->vec ? t4dx_blob_ref(a->vec) : NULL;
	g->vec_src = a->vec_src;
}

/* Rebuild the segment ms names.  damaged: the segment itself, if it
 * could be opened (its footer and index are whole), else NULL.  Its
 * blocks that still read back whole are exact: their entries are kept as
 * they are (kappa and all); the archive replay gives the keys of the
 * blocks that do not, as far back as it reaches.  Without the salvage
 * one bad block would lose every key older than the archive. */
static int rebuild_segment(struct t4dx *db, const struct t4dx_manifest_seg *ms,
			   struct t4dx_seg *damaged, size_t newer_from,
			   struct t4dx_seg **out)
{
	struct t4dx scratch;
	struct rebuild rb = { .scratch = &scratch, .upto = db->flushed_lsn,
			      .db = db, .seg_id = ms->id };
	struct t4dx_entry **v = NULL;
	struct t4dx_mem *good = t4dx_mem_new();
	size_t n = 0, kept = 0, lost = 0;
	int rc;

	memset(&scratch, 0, sizeof(scratch));
	scratch.mem = t4dx_mem_new();
	if (!scratch.mem || !good) {
		rc = ENOMEM;
		goto out;
	}
	if (damaged &&
	    (rc = t4dx_seg_salvage(damaged, salvage_one, good, &lost)))
		goto out;
	if (damaged && t4dx_seg_vec_lost(damaged))
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"segment %s: a damaged vector part cost its "
				"block's vectors (content and attributes "
				"kept): the embedder computes them again, "
				"vectors set by hand come back only from "
				"the WAL archive",
				t4dx_seg_path(damaged));
	rb.total = t4dx_wal_files_bytes(db->wal_dir, true);
	if (db->rebuild_fn)
		db->rebuild_fn(db->rebuild_arg, ms->id, 0, rb.total);
	rc = t4dx_wal_read_all_progress(db->wal_dir, true, db->flushed_lsn,
					rebuild_one,
					rebuild_progress, &rb, NULL);
	if (db->rebuild_fn)
		db->rebuild_fn(db->rebuild_arg, ms->id, rb.total, rb.total);
	if (rc)
		goto out;
	/* nothing read: the archive holds nothing up to the flushed LSN */
	if (!rb.first)
		rb.first = db->flushed_lsn + 1;
	/* only what lost blocks held can be missing */
	if (rb.first > 1 && (!damaged || lost) &&
	    (!db->recovery.rebuild_missing_before ||
	     rb.first > db->recovery.rebuild_missing_before))
		db->recovery.rebuild_missing_before = rb.first;
	/* the union, in key order: a salvaged entry wins over the replay's */
	size_t cap = t4dx_mem_count(good) + t4dx_mem_count(scratch.mem);
	v = calloc(cap ? cap : 1, sizeof(*v));
	if (!v) {
		rc = ENOMEM;
		goto out;
	}
	const struct t4dx_entry *g = t4dx_mem_seek(good, 0, "", 0);
	const struct t4dx_entry *a = t4dx_mem_seek(scratch.mem, 0, "", 0);
	while (g || a) {
		if (a && !in_range(ms, a)) {
			a = t4dx_mem_next(scratch.mem, a);
			continue;
		}
		int c = !a ? -1 : !g ? 1 :
			t4dx_key_cmp(g->parent, g->name, g->name_len,
				     a->parent, a->name, a->name_len);
		if (c <= 0) {
			if (c == 0)
				take_vector((struct t4dx_entry *)g, a);
			v[n++] = (struct t4dx_entry *)g;
			kept++;
			g = t4dx_mem_next(good, g);
			if (c == 0)
				a = t4dx_mem_next(scratch.mem, a);
		} else {
			v[n++] = (struct t4dx_entry *)a;
			a = t4dx_mem_next(scratch.mem, a);
		}
	}
	if (n == 0)
		goto out;               /* nothing to put back */
	if (db->readonly) {
		/* the memtable is above every segment: only what no newer
		 * segment (db->segs[newer_from] on, all open by now) holds of
		 * the key goes there; the replay's entries are the newest as
		 * of flushed_lsn anyway, a salvaged one may be older */
		size_t put = 0;
		for (size_t i = 0; i < n && !rc; i++) {
			if (held_newer(db, newer_from, v[i]))
				continue;
			rc = t4dx_mem_put(db->mem, v[i]);
			put++;
		}
		if (!rc)
			db->recovery.items_rebuilt += put;
		goto out;
	}
	/* under a new id: the damaged file's name stays its own */
	uint64_t id = db->next_seg_id++;
	if ((rc = eng_make_segment(db, id, v, n, out)))
		goto out;
	db->recovery.items_rebuilt += n;
	t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
			"segment %llu rebuilt as segment %llu: %zu entries, "
			"%zu from its %zu blocks that read back whole (%zu "
			"did not), %zu from the WAL archive",
			(unsigned long long)ms->id, (unsigned long long)id, n,
			kept, damaged ? t4dx_seg_blocks(damaged) - lost : 0,
			lost, n - kept);
out:
	free(v);
	t4dx_mem_free(scratch.mem);
	t4dx_mem_free(good);
	return rc;
}

/* Files in DATA_DIR that the engine does not know are reported and left
 * alone: they may be an operator's, and nothing here deletes them. */
static bool known_name(const char *dir, const char *name)
{
	static const char *const top[] = { ".", "..", "LOCK", "MANIFEST",
		"MANIFEST.tmp", "ID", "EMBEDDER", "EMBEDDER.tmp", "wal", "seg",
		"quarantine", NULL };
	size_t n = strlen(name);
	if (!strcmp(dir, "seg"))
		return !strcmp(name, ".") || !strcmp(name, "..") ||
		       (n == 24 && strspn(name, "0123456789") == 20 &&
			!strcmp(name + 20, ".t4s")) ||
		       (n == 32 && strspn(name, "0123456789") == 20 &&
			!strcmp(name + 20, ".t4s.damaged")) ||
		       eng_index_name(name, NULL);
	for (int i = 0; top[i]; i++)
		if (!strcmp(name, top[i]))
			return true;
	return !strncmp(name, "rescue-", 7);
}

void eng_report_strays(struct t4dx *db)
{
	const char *subs[] = { "", "seg" };
	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", db->dir, subs[i]);
		DIR *d = opendir(path);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d)))
			if (!known_name(subs[i], de->d_name))
				t4dx_alerts_add(db->alerts, T4DX_ALERT_INFO,
						"ignoring unknown file %s/%s",
						path, de->d_name);
		closedir(d);
	}
}

/* The live items the segments hold (tombstones and the versions they
 * hide left out). */
static int count_seg_items(struct t4dx *db, uint64_t *out)
{
	struct merge m;
	const struct t4dx_entry *e;
	uint64_t n = 0;
	/* read-only, the rebuilt entries are in the memtable */
	int rc = eng_merge_open(&m, db->readonly ? db->mem : NULL, NULL, db->segs,
			    db->nsegs, 0, "", 0, false);
	if (rc)
		return rc;
	while ((rc = eng_merge_next(&m, &e)) == 0)
		n += !e->tombstone;
	eng_merge_close(&m);
	*out = n;
	return rc == T4DX_ENOTFOUND ? 0 : rc;
}

/* What the load leaves behind in seg/, removed in one pass: the damage
 * markers (eng_mark_damaged), each acted on once the load is done (its
 * segment read whole and kept or rebuilt, or no longer live), and the
 * index files no live segment owns (of segments quarantined, or written
 * and then named by no MANIFEST: a crash before it). */
static bool left_over(struct t4dx *db, const char *name, void *arg)
{
	(void)arg;
	return (strlen(name) == 32 && !strcmp(name + 20, ".t4s.damaged")) ||
	       eng_index_orphan(db, name);
}

/* Read every block of the segment at start?  With health.verify_at_start,
 * or a marker that the health thread or a read found it damaged; and
 * read-only (the tools): nothing runs there to find damage later.
 * Otherwise t4dx_seg_open's checks of footer, index and Bloom filter
 * are all a start pays: O(segments), not O(data). */
static bool verify_whole(struct t4dx *db, uint64_t id, bool *marked)
{
	char path[PATH_MAX];
	eng_seg_marker(db, id, path, sizeof(path));
	*marked = access(path, F_OK) == 0;
	return db->cfg.health.verify_at_start || db->readonly || *marked;
}

/* Open the MANIFEST's segments (verify_whole: checking every block, or
 * their footer, index and Bloom filter).  A damaged one is quarantined
 * and rebuilt in its place from its blocks that read back whole and the
 * WAL archive (rebuild_segment). */
int eng_load_segments(struct t4dx *db, struct t4dx_manifest *m, char *msg,
		      size_t msglen)
{
	bool rebuilt = false;
	int rc;
	/* the damaged files, moved to quarantine/ only once a MANIFEST that
	 * names their rebuilt segments instead is saved: a rebuild that
	 * fails (a full disk) or a crash before that leaves them where the
	 * next start salvages them again */
	uint64_t *damaged_ids = calloc(m->nsegs ? m->nsegs : 1,
				       sizeof(*damaged_ids));
	size_t ndamaged = 0;
	/* read-only, a rebuild goes to the memtable, above every segment:
	 * it waits until the newer segments are open (held_newer) */
	struct ro_rebuild { size_t i, from; struct t4dx_seg *damaged; } *later =
		calloc(m->nsegs ? m->nsegs : 1, sizeof(*later));
	size_t nlater = 0;
	db->segs = calloc(m->nsegs ? m->nsegs : 1, sizeof(*db->segs));
	if (!db->segs || !damaged_ids || !later) {
		free(damaged_ids);
		free(later);
		return ENOMEM;
	}
	for (size_t i = 0; i < m->nsegs; i++) {
		char path[PATH_MAX];
		struct t4dx_seg *s = NULL;
		eng_seg_file(db, m->segs[i].id, path, sizeof(path), false);
		struct t4dx_seg *damaged = NULL;
		bool marked;
		rc = t4dx_seg_open(path, m->segs[i].id, &s);
		if (!rc && verify_whole(db, m->segs[i].id, &marked)) {
			rc = t4dx_seg_verify(s);
			if (!rc && marked)
				t4dx_alerts_add(db->alerts, T4DX_ALERT_INFO,
						"segment %s was marked damaged "
						"but reads back whole now: "
						"kept", path);
			if (rc == T4DX_ECORRUPT || rc == T4DX_EFORMAT)
				damaged = s;    /* salvaged below */
			else if (rc)
				t4dx_seg_unref(s);
			if (rc)
				s = NULL;
		}
		if (rc == ENOENT && db->nolock) {
			/* a daemon's compaction: read again */
			snprintf(msg, msglen, "a daemon keeps changing %s while "
				 "it is read; try again", db->dir);
			rc = EAGAIN;
			goto out;
		}
		if (rc == T4DX_ECORRUPT || rc == T4DX_EFORMAT ||
		    (rc == ENOENT && m->segs[i].items)) {
			db->recovery.segments_damaged++;
			if (rc != ENOENT && !db->readonly)
				damaged_ids[ndamaged++] = m->segs[i].id;
			else if (rc != ENOENT)
				t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
						"segment %s is damaged: its "
						"items are read from its "
						"whole blocks and the WAL "
						"archive", path);
			rebuilt = true;
			if (db->readonly) {
				later[nlater].i = i;
				later[nlater].from = db->nsegs;
				later[nlater++].damaged = damaged;
				continue;
			}
			rc = rebuild_segment(db, &m->segs[i], damaged,
					     db->nsegs, &s);
			t4dx_seg_unref(damaged);
			damaged = NULL;
			if (rc) {
				snprintf(msg, msglen, "cannot rebuild segment "
					 "%s: %s", path, t4dx_strerror(rc));
				goto out;
			}
			if (!s)
				continue;
		}
		if (rc) {
			snprintf(msg, msglen, "cannot open segment %s: %s",
				 path, t4dx_strerror(rc));
			goto out;
		}
		db->segs[db->nsegs++] = s;
	}
	for (size_t k = 0; k < nlater; k++) {
		struct t4dx_seg *s = NULL;
		char path[PATH_MAX];
		eng_seg_file(db, m->segs[later[k].i].id, path, sizeof(path),
			 false);
		rc = rebuild_segment(db, &m->segs[later[k].i],
				     later[k].damaged, later[k].from, &s);
		t4dx_seg_unref(s);      /* none made read-only */
		if (rc) {
			snprintf(msg, msglen, "cannot rebuild segment %s: %s",
				 path, t4dx_strerror(rc));
			goto out;
		}
	}
	if (rebuilt) {
		/* what unreadable blocks held is gone: count again */
		rc = count_seg_items(db, &db->seg_items);
		if (rc) {
			snprintf(msg, msglen, "cannot count the items after a "
				 "rebuild: %s", t4dx_strerror(rc));
			goto out;
		}
		db->items = db->seg_items;
	}
	if (rebuilt && !db->readonly) {
		/* the MANIFEST names the rebuilt segments instead of the
		 * damaged ones (one that came back empty drops out) */
		rc = eng_save_manifest(db, db->segs, db->nsegs, db->flushed_lsn,
				   db->man_next_ino, db->seg_items);
		if (rc) {
			snprintf(msg, msglen, "cannot write the MANIFEST: %s",
				 t4dx_strerror(rc));
			goto out;
		}
	}
	for (size_t i = 0; i < ndamaged; i++) {
		char path[PATH_MAX];
		eng_seg_file(db, damaged_ids[i], path, sizeof(path), false);
		quarantine(db, path);
	}
	if (!db->readonly)
		eng_seg_dir_remove(db, left_over, NULL);
	if (db->recovery.rebuild_missing_before)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"rebuild incomplete: the WAL archive starts at "
				"LSN %llu; items of unreadable segment blocks "
				"that only older records described are lost", (unsigned long long)
				db->recovery.rebuild_missing_before);
	rc = 0;
out:
	for (size_t k = 0; k < nlater; k++)
		t4dx_seg_unref(later[k].damaged);
	free(later);
	free(damaged_ids);
	return rc;
}

/* Read-only replay: records after the MANIFEST's flushed LSN go to the
 * memtable; the damage that a start would cut is only counted. */
static int replay_ro(void *arg, struct t4dx_rec *r)
{
	struct t4dx *db = arg;
	db->ro_last_lsn = r->lsn;
	if (r->lsn <= db->flushed_lsn)
		return 0;
	if (!db->recovery.records_replayed && r->lsn > db->flushed_lsn + 1) {
		/* as a start would find (t4dx_wal_report.gap_from) */
		db->recovery.wal_gap_from = db->flushed_lsn + 1;
		db->recovery.wal_gap_to = r->lsn - 1;
	}
	db->recovery.records_replayed++;
	return eng_replay_one(db, r);
}

int eng_open_wal_readonly(struct t4dx *db, char *msg, size_t msglen)
{
	struct t4dx_wal_damage dmg;
	db->ro_last_lsn = db->flushed_lsn;
	int rc = t4dx_wal_read_all_progress(db->wal_dir, false,
					    db->flushed_lsn, replay_ro, NULL,
					    db, &dmg);
	if (rc) {
		snprintf(msg, msglen, "cannot read the WAL in %s: %s",
			 db->wal_dir, t4dx_strerror(rc));
		return rc;
	}
	if (dmg.gap_to) {
		/* holes between files: a start replays on after them */
		if (!db->recovery.wal_gap_to)
			db->recovery.wal_gap_from = dmg.gap_from;
		db->recovery.wal_gap_to = dmg.gap_to;
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"WAL records %llu to %llu: %llu are missing "
				"(a log file was removed?)",
				(unsigned long long)dmg.gap_from,
				(unsigned long long)dmg.gap_to,
				(unsigned long long)dmg.gap_records);
	}
	if (*dmg.path && !dmg.torn) {
		db->recovery.bytes_dropped = dmg.bytes;
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"%s is damaged at byte %llu: the records from "
				"there on are not read", dmg.path,
				(unsigned long long)dmg.offset);
	}
	return 0;
}

/* The log files that the MANIFEST's flushed LSN covers whole are not
 * read by the WAL's open (t4dx_wal_open, rep.files_covered): a daemon
 * killed between a MANIFEST and the archiving of the files it covers
 * leaves them in wal/.  They go to the archive now, as that checkpoint
 * would have moved them, and the archive is trimmed to its budget: the
 * segments are open by now and a rebuild from the archive
 * (eng_load_segments) is done, so nothing it needs is trimmed away that
 * a checkpoint would have kept.  The MANIFEST was read from disk, but the
 * daemon that wrote it may have died before its directory was fsynced:
 * the directory is fsynced first, so that a power cut cannot bring back
 * an older MANIFEST whose records then sit in the archive, which no start
 * replays.  Failing that, the files stay live (read again by no start:
 * they are still covered) and the next checkpoint moves them. */
void eng_archive_covered(struct t4dx *db, uint64_t files)
{
	if (!files)
		return;
	int rc = t4dx_io_fsync_dir(db->dir);
	if (!rc)
		rc = t4dx_wal_archive(db->wal, db->flushed_lsn,
				      db->cfg.wal.archive_max_bytes);
	if (rc)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"%llu WAL files already in segments could not "
				"be moved to the archive: %s (the next flush "
				"tries again)", (unsigned long long)files,
				t4dx_strerror(rc));
}

/* ---- rescue files ------------------------------------------------------
 * Written at close by fallback.c; replayed here, at open. */

/* Replay one rescue file: records beyond the WAL's end are applied and
 * queued.  Returns how many; *bad is set if the file ends in damage. */
static uint64_t replay_rescue_file(struct t4dx *db, const char *path)
{
	struct t4dx_buf b = { 0 };
	uint64_t n = 0;
	int fd = t4dx_io.open(path, O_RDONLY, 0);
	if (fd < 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_size > 0 &&
	    !t4dx_buf_reserve(&b, (size_t)st.st_size) &&
	    !t4dx_io_pread_all(fd, b.p, (size_t)st.st_size, 0))
		b.len = (size_t)st.st_size;
	t4dx_io.close(fd);
	size_t off = 0;
	while (off < b.len) {
		unsigned char *nl = memchr(b.p + off, '\n', b.len - off);
		if (!nl)
			break;
		struct t4dx_rec r;
		if (t4dx_rec_decode((const char *)b.p + off,
				    (size_t)(nl - b.p) - off, &r))
			break;
		off = (size_t)(nl - b.p) + 1;
		pthread_rwlock_wrlock(&db->lock);
		if (r.lsn > t4dx_wal_last_lsn(db->wal) &&
		    !t4dx_wal_add(db->wal, &r)) {
			int rc = eng_apply(db, &r);
			if (rc)
				eng_fatal(db, rc);
			else
				n++;
		}
		pthread_rwlock_unlock(&db->lock);
		t4dx_entry_clear(&r.e);
	}
	t4dx_buf_free(&b);
	return n;
}

/* prefix, then the first LSN's digits, then .jsonl: nothing else (a
 * shared rescue directory holds other stores' files too) */
static int rescue_name(const struct dirent *d, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(d->d_name, prefix, pl))
		return 0;
	size_t digits = strspn(d->d_name + pl, "0123456789");
	return digits > 0 && !strcmp(d->d_name + pl + digits, ".jsonl");
}

void eng_replay_rescue_dir(struct t4dx *db, const char *dir, const char *prefix)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		char path[2 * PATH_MAX], done[2 * PATH_MAX + 16];
		snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		struct stat st;
		if (!rescue_name(list[i], prefix)) {
			/* not a rescue file of this store */
		} else if (lstat(path, &st) || !S_ISREG(st.st_mode) ||
			   st.st_uid != geteuid() || (st.st_mode & 022)) {
			/* only a regular file of ours that nobody else may
			 * have written: rescue directories may be shared */
			t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
					"rescue file %s is not a regular file "
					"of this user, closed to others: not "
					"replayed", path);
		} else {
			uint64_t k = replay_rescue_file(db, path);
			uint64_t last = t4dx_wal_last_lsn(db->wal);
			int rc = t4dx_wal_sync(db->wal, last);
			db->rescued += k;
			if (rc) {
				/* kept as it is: replayed again next time */
				eng_mark_unpersisted(db, last);
				t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
						"rescue file %s: %llu records "
						"queued, not yet durable: %s",
						path, (unsigned long long)k,
						strerror(rc));
			} else {
				snprintf(done, sizeof(done), "%s.replayed",
					 path);
				if (!t4dx_io.rename(path, done))
					t4dx_io_fsync_dir(dir);
				t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
						"rescue file %s: %llu records "
						"replayed", path,
						(unsigned long long)k);
			}
		}
		free(list[i]);
	}
	if (n > 0)
		free(list);
}
