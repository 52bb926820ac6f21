/*
 * segments.c - the live segment list on disk: segment file names,
 * writing a segment into place (temporary file, rename, directory sync),
 * the MANIFEST that names the list, and collecting the files an older
 * MANIFEST named.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_int.h"

void eng_seg_file(struct t4dx *db, uint64_t id, char *path, size_t len,
		  bool tmp)
{
	snprintf(path, len, "%s/%020llu.t4s%s", db->seg_dir,
		 (unsigned long long)id, tmp ? ".tmp" : "");
}

void eng_seg_unlink(struct t4dx *db, uint64_t id)
{
	char path[PATH_MAX];
	eng_seg_file(db, id, path, sizeof(path), false);
	t4dx_io.unlink(path);
	eng_index_file(db, id, path, sizeof(path), false);
	t4dx_io.unlink(path);
}

/* The damage marker.  A start reads only the footer, index and Bloom
 * filter of each segment (health.verify_at_start off); its blocks are read
 * back by the health thread's slices and by reads.  Whoever finds a block
 * damaged leaves seg/<id>.t4s.damaged (empty, durable), and the next start
 * reads that segment whole and, finding it damaged, quarantines and
 * rebuilds it as a start-time check does (recover.c).  A marker whose
 * segment is no longer live goes with the next MANIFEST or start. */
void eng_seg_marker(struct t4dx *db, uint64_t id, char *path, size_t len)
{
	snprintf(path, len, "%s/%020llu.t4s.damaged", db->seg_dir,
		 (unsigned long long)id);
}

int eng_mark_damaged(struct t4dx *db, struct t4dx_seg *s, int why)
{
	char path[PATH_MAX], name[64];
	if (db->readonly)
		return 0;
	eng_seg_marker(db, t4dx_seg_id(s), path, sizeof(path));
	if (access(path, F_OK) == 0)
		return 0;               /* said once is enough */
	snprintf(name, sizeof(name), "%020llu.t4s.damaged",
		 (unsigned long long)t4dx_seg_id(s));
	int rc = t4dx_io_write_durably(db->seg_dir, name, "", 0, NULL);
	if (rc)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"segment %s is damaged (%s) and its marker %s "
				"cannot be written: %s; run t4dx verify, or "
				"start with health.verify_at_start", t4dx_seg_path(s),
				t4dx_strerror(why), path, strerror(rc));
	else
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"segment %s is damaged (%s): marked, it is "
				"quarantined and rebuilt at the next start",
				t4dx_seg_path(s), t4dx_strerror(why));
	return rc;
}

void eng_seg_dir_remove(struct t4dx *db,
			bool (*doomed)(struct t4dx *db, const char *name,
				       void *arg),
			void *arg)
{
	DIR *d = opendir(db->seg_dir);
	if (!d)
		return;
	struct dirent *de;
	bool removed = false;
	while ((de = readdir(d))) {
		if (!doomed(db, de->d_name, arg))
			continue;
		char path[2 * PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", db->seg_dir, de->d_name);
		removed |= t4dx_io.unlink(path) == 0;
	}
	closedir(d);
	if (removed)
		t4dx_io_fsync_dir(db->seg_dir);
}

/* The segment files of seg/ that the MANIFEST m just made durable does
 * not list: inputs of a compaction kept while an older MANIFEST naming
 * them might have come back, their index files, and the damage markers
 * of segments no longer live.  The caller holds flush_mu, so no segment
 * is being written (the health thread writes only the index of a live
 * one).  A segment id at or past next_seg_id is not ours to judge. */
static bool unlisted(struct t4dx *db, const char *name, void *arg)
{
	const struct t4dx_manifest *m = arg;
	unsigned long long id;
	char tail[16];
	size_t nl = strlen(name);
	if ((nl != 24 && nl != 25 && nl != 32) ||
	    sscanf(name, "%20llu%15s", &id, tail) != 2 ||
	    strcmp(tail, nl == 24 ? ".t4s" : nl == 25 ? ".hnsw" :
			 ".t4s.damaged") ||
	    id >= m->next_seg_id)
		return false;
	/* (an automatic merge's output, written, not yet named) */
	if (id == db->merge_out_id)
		return false;
	for (size_t i = 0; i < m->nsegs; i++)
		if (m->segs[i].id == id)
			return false;
	return true;
}

/* Write the live segment list with the given flushed LSN. Lock held. */
int eng_save_manifest(struct t4dx *db, struct t4dx_seg **segs, size_t n,
		      uint64_t flushed_lsn, uint64_t next_ino, uint64_t items)
{
	struct t4dx_manifest m = {
		.next_seg_id = db->next_seg_id,
		.flushed_lsn = flushed_lsn,
		.next_ino = next_ino,
		.items = items,
		.nsegs = n,
	};
	m.segs = calloc(n ? n : 1, sizeof(*m.segs));
	if (!m.segs)
		return ENOMEM;
	for (size_t i = 0; i < n; i++) {
		m.segs[i].id = t4dx_seg_id(segs[i]);
		m.segs[i].min_lsn = t4dx_seg_min_lsn(segs[i]);
		m.segs[i].max_lsn = t4dx_seg_max_lsn(segs[i]);
		m.segs[i].items = t4dx_seg_count(segs[i]);
	}
	bool installed, was_unsynced = db->manifest_unsynced;
	int rc = t4dx_manifest_save(db->dir, &m, &installed);
	if (rc && installed) {
		/* in place but maybe not durable: the old MANIFEST may come
		 * back after a crash, so nothing it names may go */
		db->manifest_unsynced = true;
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"MANIFEST replaced but its directory could not "
				"be synced (%s): old files are kept",
				strerror(rc));
		free(m.segs);
		return 0;
	}
	if (!rc) {
		db->manifest_unsynced = false;
		if (was_unsynced)
			eng_seg_dir_remove(db, unlisted, &m);
	}
	free(m.segs);
	return rc;
}

/* Rename segment id's written temporary file into place, sync the
 * directory and open it; on failure nothing is left behind. */
static int place_segment(struct t4dx *db, uint64_t id, struct t4dx_seg **out)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	eng_seg_file(db, id, tmp, sizeof(tmp), true);
	eng_seg_file(db, id, path, sizeof(path), false);
	int rc;
	if (t4dx_io.rename(tmp, path)) {
		rc = errno;
		t4dx_io.unlink(tmp);
		return rc;
	}
	if ((rc = t4dx_io_fsync_dir(db->seg_dir)) ||
	    (rc = t4dx_seg_open(path, id, out))) {
		t4dx_io.unlink(path);
		return rc;
	}
	/* before any MANIFEST can name the segment (seg_index.c) */
	if ((rc = eng_index_place(db, *out))) {
		t4dx_seg_unref(*out);
		*out = NULL;
		t4dx_io.unlink(path);
	}
	return rc;
}

/* Write entries v[0..n) (sorted) as segment id: a temporary file made
 * durable, renamed into place, the directory synced, then opened.  Not
 * live until a MANIFEST names it; nothing is left behind on failure. */
int eng_make_segment(struct t4dx *db, uint64_t id, struct t4dx_entry **v,
		     size_t n, struct t4dx_seg **out)
{
	char tmp[PATH_MAX];
	uint64_t min_lsn = UINT64_MAX, max_lsn = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i]->lsn < min_lsn)
			min_lsn = v[i]->lsn;
		if (v[i]->lsn > max_lsn)
			max_lsn = v[i]->lsn;
	}
	eng_seg_file(db, id, tmp, sizeof(tmp), true);
	int rc = t4dx_seg_write(tmp, v, n, min_lsn, max_lsn);
	if (rc)
		return rc;
	return place_segment(db, id, out);
}

/* eng_make_segment one entry at a time: begin creates segment id's temporary
 * file (n_hint: at most that many entries), t4dx_seg_writer_add adds,
 * end finishes the file and places it as eng_make_segment does.  end with
 * no entry added, like any failure, leaves nothing behind. */
int eng_begin_segment(struct t4dx *db, uint64_t id, uint64_t n_hint,
		      struct t4dx_seg_writer **w)
{
	char tmp[PATH_MAX];
	eng_seg_file(db, id, tmp, sizeof(tmp), true);
	return t4dx_seg_writer_open(tmp, n_hint, w);
}

int eng_end_segment(struct t4dx *db, uint64_t id, struct t4dx_seg_writer *w,
		    struct t4dx_seg **out)
{
	int rc = t4dx_seg_writer_finish(w, NULL);
	if (rc)
		return rc;
	return place_segment(db, id, out);
}

/* Install segs[0..n) as the live list in the MANIFEST and in memory.
 * Lock held for writing.  On success the old list's references are
 * dropped (the array is reused). */
int eng_install_segments(struct t4dx *db, struct t4dx_seg **segs, size_t n,
			 uint64_t flushed_lsn, uint64_t next_ino,
			 uint64_t seg_items)
{
	int rc = eng_save_manifest(db, segs, n, flushed_lsn, next_ino,
				   seg_items);
	if (rc)
		return rc;
	db->flushed_lsn = flushed_lsn;
	db->man_next_ino = next_ino;
	db->seg_items = seg_items;
	return 0;
}
