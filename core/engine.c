/*
 * engine.c - opening and closing a store, and the engine's stats.  An
 * open sets up the state (engine_int.h), takes DATA_DIR's lock, loads the
 * MANIFEST and its segments, replays the WAL and rescue files (recover.c)
 * and starts the flusher and health threads; a close stops them, drains
 * the WAL one last time and flushes, or saves what it cannot write in a
 * rescue file (fallback.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "engine_int.h"
#include "index.h"

struct t4dx_breaker *t4dx_get_breaker(struct t4dx *db)
{
	return db->breaker;
}

void t4dx_set_alert_sink(struct t4dx *db, t4dx_alert_fn fn, void *arg)
{
	t4dx_alerts_set_sink(db->alerts, fn, arg);
}

int t4dx_render_alerts(struct t4dx *db, struct t4dx_buf *out)
{
	return t4dx_alerts_render(db->alerts, out);
}

struct t4dx_hist *t4dx_fsync_hist(struct t4dx *db)
{
	return &db->fsync_hist;
}

struct t4dx_hist *t4dx_compact_hist(struct t4dx *db, int kind)
{
	return &db->compact_hist[kind];
}

static void breaker_changed(void *arg, int from, int to, const char *why)
{
	struct t4dx *db = arg;
	t4dx_alerts_add(db->alerts, to == T4DX_OPEN ? T4DX_ALERT_WARN
						    : T4DX_ALERT_INFO,
			"breaker %s -> %s: %s", t4dx_breaker_state_name(from),
			t4dx_breaker_state_name(to), why);
	if (db->wal)
		eng_note_level(db);
}

/* A store without a MANIFEST of the current format gets one now, before
 * anything is logged: an older t4dx, which would take a vector record or
 * a version 4 segment for damage and cut or quarantine it, then refuses
 * the store as a newer format instead (manifest.c).  The MANIFEST as it
 * is (the segment load may have saved one already), or a fresh one. */
static int upgrade_manifest(struct t4dx *db, char *msg, size_t msglen)
{
	struct t4dx_manifest m;
	memset(&m, 0, sizeof(m));
	int rc = t4dx_manifest_load(db->dir, &m);
	if (rc == T4DX_ENOTFOUND) {
		m.next_seg_id = db->next_seg_id;
		m.next_ino = db->next_ino;
		rc = 0;
	} else if (!rc && m.format == T4DX_MANIFEST_FORMAT) {
		t4dx_manifest_free(&m);
		return 0;
	}
	bool installed;
	if (!rc)
		rc = t4dx_manifest_save(db->dir, &m, &installed);
	if (rc)
		snprintf(msg, msglen, "cannot write %s/MANIFEST in format %d: "
			 "%s", db->dir, T4DX_MANIFEST_FORMAT,
			 t4dx_strerror(rc));
	t4dx_manifest_free(&m);
	return rc;
}

static int take_lock(struct t4dx *db, char *msg, size_t msglen)
{
	char path[PATH_MAX], pid[32] = "";
	snprintf(path, sizeof(path), "%s/LOCK", db->dir);
	db->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (db->lock_fd < 0) {
		int rc = errno;
		snprintf(msg, msglen, "cannot open %s: %s", path, strerror(rc));
		return rc;
	}
	/* a reader that changes nothing (t4dx verify, ls, dump) holds a
	 * shared lock for a while: wait up to 10 s for it, then say so.
	 * An exclusive holder may be a daemon on its way out: umount
	 * returns as soon as the kernel lets go of the mount, before the
	 * daemon has closed the store, so "umount; mount" would fail now
	 * and then; give it LOCK_EXIT_TRIES tries. */
	enum { LOCK_TRY_NS = 50000000, LOCK_READER_TRIES = 200,
	       LOCK_EXIT_TRIES = 60, LOCK_CLOSING_TRIES = 1200 };
	for (int tries = 0; flock(db->lock_fd, LOCK_EX | LOCK_NB); tries++) {
		int rc = errno;
		bool readers = false;
		if (rc == EWOULDBLOCK &&
		    flock(db->lock_fd, LOCK_SH | LOCK_NB) == 0) {
			flock(db->lock_fd, LOCK_UN);
			readers = true;
		}
		/* a daemon that has begun to close says so in LOCK (see
		 * t4dx_close): its last flush or merge may take a while,
		 * so it gets LOCK_CLOSING_TRIES */
		int most = readers ? LOCK_READER_TRIES : LOCK_EXIT_TRIES;
		if (rc == EWOULDBLOCK && !readers) {
			ssize_t n = pread(db->lock_fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			if (strstr(pid, " closing"))
				most = LOCK_CLOSING_TRIES;
		}
		if (rc == EWOULDBLOCK && tries < most) {
			struct timespec ts = { 0, LOCK_TRY_NS };
			nanosleep(&ts, NULL);
			continue;
		}
		if (readers) {
			snprintf(msg, msglen, "%s is being read by a t4dx tool "
				 "(verify, ls or dump): try again when it is "
				 "done", db->dir);
			return T4DX_ELOCKED;
		}
		if (rc == EWOULDBLOCK) {
			ssize_t n = pread(db->lock_fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			pid[strcspn(pid, " \n")] = 0;
			snprintf(msg, msglen, "%s is in use by process %s "
				 "(it holds %s)", db->dir,
				 *pid ? pid : "(unknown)", path);
			return T4DX_ELOCKED;
		}
		snprintf(msg, msglen, "cannot lock %s: %s", path, strerror(rc));
		return rc;
	}
	db->lock_held = true;
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(db->lock_fd, 0) || pwrite(db->lock_fd, pid, (size_t)n, 0) != n) {
		int rc = errno;
		snprintf(msg, msglen, "cannot write %s: %s", path, strerror(rc));
		return rc;
	}
	return 0;
}

int t4dx_open(const char *dir, const struct t4dx_config *cfg,
	      struct t4dx **out, char *msg, size_t msglen)
{
	struct t4dx_open_args a = { .cfg = cfg };
	return t4dx_open_args(dir, &a, out, msg, msglen);
}

static int open_once(const char *dir, const struct t4dx_open_args *a,
		     struct t4dx **out, char *msg, size_t msglen);

/* Did the MANIFEST change since it said flushed_lsn (a daemon's flush or
 * compaction while a NOLOCK reader opened)? */
static bool manifest_moved(const char *dir, uint64_t flushed_lsn,
			   uint64_t next_seg_id)
{
	struct t4dx_manifest m = { 0 };
	int rc = t4dx_manifest_load(dir, &m);
	bool moved = rc == 0 ? m.flushed_lsn != flushed_lsn ||
			       m.next_seg_id != next_seg_id
			     : rc != T4DX_ENOTFOUND || flushed_lsn != 0;
	t4dx_manifest_free(&m);
	return moved;
}

int t4dx_open_args(const char *dir, const struct t4dx_open_args *a,
		   struct t4dx **out, char *msg, size_t msglen)
{
	/* without the lock, a daemon may flush or compact while the store
	 * is read (segments unlinked, log files archived): read again until
	 * one reading saw a MANIFEST that did not move under it */
	bool racy = (a->flags & T4DX_OPEN_READONLY) &&
		    (a->flags & T4DX_OPEN_NOLOCK);
	for (int tries = 0;; tries++) {
		int rc = open_once(dir, a, out, msg, msglen);
		if (!racy || tries == 9)
			return rc;
		if (rc == EAGAIN)
			continue;
		if (rc)
			return rc;
		if (!manifest_moved(dir, (*out)->flushed_lsn,
				    (*out)->man_seg_id))
			return 0;
		t4dx_close(*out);
		*out = NULL;
	}
}

static int open_once(const char *dir, const struct t4dx_open_args *a,
		     struct t4dx **out, char *msg, size_t msglen)
{
	const struct t4dx_config *cfg = a->cfg;
	unsigned flags = a->flags;
	struct t4dx_manifest m = { 0 };
	struct t4dx_wal_report rep = { 0 };
	int rc;
	struct t4dx *db = calloc(1, sizeof(*db));
	if (!db)
		return ENOMEM;
	snprintf(msg, msglen, "%s", "");
	db->lock_fd = -1;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&db->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&db->flush_mu, NULL);
	pthread_mutex_init(&db->bg_mu, NULL);
	pthread_cond_init(&db->bg_cond, NULL);
	pthread_cond_init(&db->merge_cond, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->flush_done, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&db->ct_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->ct_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&db->health_mu, NULL);
	pthread_mutex_init(&db->vq_mu, NULL);
	pthread_cond_init(&db->health_cond, NULL);
	pthread_mutex_init(&db->compact_mu, NULL);
	pthread_mutex_init(&db->reject_mu, NULL);
	pthread_mutex_init(&db->cstats_mu, NULL);
	pthread_mutex_init(&db->idmap_mu, NULL);
	atomic_init(&db->running, -1);
	if (cfg)
		db->cfg = *cfg;
	else
		t4dx_config_defaults(&db->cfg);
	eng_busy_init(db);
	const char *pause = getenv("T4DX_TEST_COMPACT_PAUSE");
	if (pause)
		db->test_pause_s = strtod(pause, NULL);
	db->dir = strdup(dir);
	db->mem = t4dx_mem_new();
	db->alerts = t4dx_alerts_new();
	db->lru = t4dx_lru_new(db->cfg.fallback.max_items,
			       db->cfg.fallback.cache_bytes);
	struct t4dx_breaker_cfg bc = {
		.failure_threshold = db->cfg.breaker.failure_threshold,
		.success_threshold = db->cfg.breaker.success_threshold,
		.reset_timeout_s = db->cfg.breaker.reset_timeout_s,
	};
	db->breaker = t4dx_breaker_new(&bc, NULL, NULL, breaker_changed, db);
	if (!db->dir || !db->mem || !db->alerts || !db->breaker || !db->lru) {
		rc = ENOMEM;
		goto fail;
	}
	if (strlen(dir) > sizeof(db->seg_dir) - 16) {
		rc = ENAMETOOLONG;
		snprintf(msg, msglen, "data directory path is too long");
		goto fail;
	}
	snprintf(db->seg_dir, sizeof(db->seg_dir), "%s/seg", dir);
	snprintf(db->wal_dir, sizeof(db->wal_dir), "%s/wal", dir);
	snprintf(db->quarantine_dir, sizeof(db->quarantine_dir),
		 "%s/quarantine", dir);
	db->readonly = flags & T4DX_OPEN_READONLY;
	db->nolock = db->readonly && (flags & T4DX_OPEN_NOLOCK);
	db->rebuild_fn = a->rebuild;
	db->rebuild_arg = a->arg;
	if (db->readonly) {
		if ((rc = t4dx_io_check_store(dir, msg, msglen)))
			goto fail;
		if (!(flags & T4DX_OPEN_NOLOCK) &&
		    (rc = t4dx_io_lock_shared(dir, &db->lock_fd, msg,
					      msglen)))
			goto fail;
	} else if ((rc = t4dx_io_make_dir(dir, NULL))) {
		snprintf(msg, msglen, "cannot use data directory %s: %s", dir,
			 strerror(rc));
		goto fail;
	}
	if (!db->readonly && (rc = take_lock(db, msg, msglen)))
		goto fail;
	if (!db->readonly &&
	    ((rc = t4dx_io_make_dir(db->seg_dir, NULL)) ||
	     (rc = t4dx_io_make_dir(db->wal_dir, NULL)) ||
	     (rc = t4dx_io_make_dir(db->quarantine_dir, NULL)))) {
		snprintf(msg, msglen, "cannot create directories in %s: %s",
			 dir, strerror(rc));
		goto fail;
	}
	/* without it, rescue files can go to DATA_DIR only
	 * (eng_choose_rescue_dir says so) */
	if (!db->readonly)
		eng_store_id(db);

	rc = t4dx_manifest_load(dir, &m);
	if (rc == T4DX_ENOTFOUND) {
		m.next_seg_id = 1;
		m.next_ino = T4DX_ROOT_INO + 1;
		rc = 0;
	}
	if (rc) {
		snprintf(msg, msglen, "cannot read %s/MANIFEST: %s", dir,
			 t4dx_strerror(rc));
		goto fail;
	}
	db->next_seg_id = m.next_seg_id;
	db->man_seg_id = m.next_seg_id;
	db->flushed_lsn = m.flushed_lsn;
	db->next_ino = m.next_ino > T4DX_ROOT_INO ? m.next_ino
						  : T4DX_ROOT_INO + 1;
	db->items = m.items;
	db->seg_items = m.items;
	db->man_next_ino = db->next_ino;
	eng_report_strays(db);
	if ((rc = eng_load_segments(db, &m, msg, msglen)))
		goto fail;
	if (!db->readonly && (rc = upgrade_manifest(db, msg, msglen)))
		goto fail;
	if (db->readonly) {
		/* rescue files are not applied: t4dx verify checks them */
		if ((rc = eng_open_wal_readonly(db, msg, msglen)))
			goto fail;
		t4dx_manifest_free(&m);
		*out = db;
		return 0;
	}

	pthread_rwlock_wrlock(&db->lock);
	rc = t4dx_wal_open(db->wal_dir, db->quarantine_dir, m.flushed_lsn,
			   db->cfg.wal.max_file_bytes, eng_replay_one, db, &rep,
			   &db->wal);
	pthread_rwlock_unlock(&db->lock);
	if (rc) {
		snprintf(msg, msglen, "cannot recover the WAL in %s: %s",
			 db->wal_dir, t4dx_strerror(rc));
		goto fail;
	}
	db->recovery.records_replayed = rep.records;
	db->recovery.bytes_dropped = rep.bytes_dropped;
	db->recovery.wal_files = rep.files;
	db->recovery.wal_gap_from = rep.gap_from;
	db->recovery.wal_gap_to = rep.gap_to;
	db->recovery.wal_files_quarantined = rep.files_quarantined;
	db->recovery.wal_bytes_read = rep.bytes_read;
	db->recovery.wal_files_covered = rep.files_covered;
	eng_archive_covered(db, rep.files_covered);
	/* one alert per hole; the records after each were replayed */
	for (uint64_t i = 0; i < rep.gaps && i < T4DX_WAL_HOLES; i++)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"WAL records %llu to %llu are missing (a log "
				"file was removed from %s?): the changes they "
				"held are lost; the records after them are "
				"replayed", (unsigned long long)rep.hole[i].from,
				(unsigned long long)rep.hole[i].to, db->wal_dir);
	if (rep.gaps > T4DX_WAL_HOLES)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"WAL records %llu to %llu: %llu records are "
				"missing in %llu holes",
				(unsigned long long)rep.gap_from,
				(unsigned long long)rep.gap_to,
				(unsigned long long)rep.gap_records,
				(unsigned long long)rep.gaps);
	if (rep.files_quarantined)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"%llu WAL files after damage were moved to %s "
				"(records up to %llu): they are not replayed, "
				"and new records are numbered after them",
				(unsigned long long)rep.files_quarantined,
				db->quarantine_dir,
				(unsigned long long)rep.quarantined_lsn);
	t4dx_wal_set_sync_hist(db->wal, &db->fsync_hist);
	t4dx_wal_set_group_hook(db->wal, eng_group_done, db);
	t4dx_wal_set_batch(db->wal, db->cfg.fallback.drain_batch);
	eng_choose_rescue_dir(db);
	eng_replay_rescue_dir(db, db->dir, "rescue-");
	if (*db->rescue_tag) {
		char prefix[64];
		const char *dirs[1 + ENG_RESCUE_CANDIDATES];
		size_t nd = 0;
		snprintf(prefix, sizeof(prefix), "t4dx-rescue-%s-",
			 db->rescue_tag);
		if (*db->rescue_dir)
			dirs[nd++] = db->rescue_dir;
		/* where a rescue that its directory refused may have gone */
		if (db->cfg.fallback.rescue_fallback)
			nd += eng_rescue_candidates(db, dirs + nd);
		for (size_t i = 0; i < nd; i++)
			eng_replay_rescue_dir(db, dirs[i], prefix);
	}
	/* files of a version that did not tag them */
	if (*db->cfg.fallback.rescue_dir)
		eng_replay_rescue_dir(db, db->cfg.fallback.rescue_dir,
				      "t4dx-rescue-");
	if (*db->rescue_problem)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN, "rescue files: %s",
				db->rescue_problem);
	if (rep.bytes_dropped || db->recovery.segments_quarantined)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"recovery dropped %llu damaged WAL bytes and "
				"quarantined %llu segments",
				(unsigned long long)rep.bytes_dropped,
				(unsigned long long)
					db->recovery.segments_quarantined);

	/* a long log replayed (a crash after much writing): cut it soon, so
	 * that the next crash does not replay it all again.  Not here: the
	 * flusher's first task, so that the store serves right after the
	 * replay instead of after writing up to checkpoint_bytes of segment
	 * (the write stall bounds what writers add meanwhile).  The log
	 * stays until a durable MANIFEST names the segment, as for any
	 * flush; a failed one is in the compaction stats and an alert, and
	 * the next write or probe past the bound asks again. */
	pthread_rwlock_rdlock(&db->lock);
	bool due = eng_flush_due(db);
	pthread_rwlock_unlock(&db->lock);
	/* after a hole, or LSNs left to quarantined files, the log now
	 * jumps: cut it, so that the next start does not report the same
	 * loss again as a new hole (this start's alerts said it) */
	if (rep.gaps || rep.files_quarantined)
		due = true;
	db->recovery.flushed = due;
	db->bg_want = due;              /* no thread runs yet */

	if ((rc = pthread_create(&db->bg, NULL, eng_flusher, db))) {
		snprintf(msg, msglen, "cannot start the flush thread: %s",
			 strerror(rc));
		goto fail;
	}
	db->bg_started = true;
	if ((rc = pthread_create(&db->merger, NULL, eng_merger, db))) {
		snprintf(msg, msglen, "cannot start the merge thread: %s",
			 strerror(rc));
		goto fail;
	}
	db->merger_started = true;
	if ((rc = pthread_create(&db->ct_thr, NULL, eng_committer, db))) {
		snprintf(msg, msglen, "cannot start the commit timer: %s",
			 strerror(rc));
		goto fail;
	}
	db->ct_started = true;
	if ((rc = pthread_create(&db->health_thr, NULL, eng_health_main, db))) {
		snprintf(msg, msglen, "cannot start the health thread: %s",
			 strerror(rc));
		goto fail;
	}
	db->health_started = true;
	if ((rc = eng_embedder_start(db))) {
		snprintf(msg, msglen, "cannot start the embedder thread: %s",
			 strerror(rc));
		goto fail;
	}
	t4dx_manifest_free(&m);
	*out = db;
	return 0;
fail:
	t4dx_manifest_free(&m);
	if (!*msg)
		snprintf(msg, msglen, "%s", t4dx_strerror(rc));
	t4dx_close(db);
	return rc;
}

int t4dx_close(struct t4dx *db)
{
	int rc = 0;
	if (!db)
		return 0;
	if (db->lock_held) {
		/* a start that finds LOCK held waits longer for a holder on
		 * its way out (take_lock); nothing depends on this line
		 * being written */
		char line[48];
		int n = snprintf(line, sizeof(line), "%ld closing\n",
				 (long)getpid());
		ssize_t w = pwrite(db->lock_fd, line, (size_t)n, 0);
		(void)w;
	}
	eng_embedder_stop(db);  /* it reads and commits: first */
	if (db->health_started) {
		pthread_mutex_lock(&db->health_mu);
		db->health_stop = true;
		pthread_cond_signal(&db->health_cond);
		pthread_mutex_unlock(&db->health_mu);
		pthread_join(db->health_thr, NULL);
	}
	t4dx_seg_unref(db->verify_seg);
	if (db->ct_started) {   /* the last drain below commits its records */
		pthread_mutex_lock(&db->ct_mu);
		db->ct_stop = true;
		pthread_cond_signal(&db->ct_cond);
		pthread_mutex_unlock(&db->ct_mu);
		pthread_join(db->ct_thr, NULL);
	}
	if (db->bg_started) {
		pthread_mutex_lock(&db->bg_mu);
		db->bg_stop = true;
		pthread_cond_signal(&db->bg_cond);
		pthread_cond_signal(&db->merge_cond);
		pthread_cond_broadcast(&db->flush_done);
		pthread_mutex_unlock(&db->bg_mu);
		/* (a merge under way ends first: it takes flush_mu to
		 * install, which the flusher never holds while it waits) */
		if (db->merger_started)
			pthread_join(db->merger, NULL);
		pthread_join(db->bg, NULL);
	}
	if (db->wal) {
		/* a last drain; what still cannot be written is rescued */
		uint64_t last = t4dx_wal_last_lsn(db->wal);
		int src = t4dx_wal_sync(db->wal, last);
		/* also when nothing waits: what the removed log held, if no
		 * save took it yet, is in memory alone */
		bool lost = !atomic_load(&db->fatal) &&
			    (src == ESTALE || db->wal_save_failed ||
			     db->nunsaved || t4dx_wal_gone(db->wal));
		if (lost) {
			/* the log files were removed behind our back: what
			 * they held lives on in the memtable alone, so it goes
			 * to a segment, with what never reached the log */
			pthread_mutex_lock(&db->flush_mu);
			rc = eng_flush_cut(db, NULL, true);
			if (!rc && t4dx_mem_count(db->mem))
				rc = eng_flush_cut(db, NULL, true);
			if (!rc)        /* an earlier cut's MANIFEST */
				rc = eng_flush_cut(db, NULL, true);
			if (rc)
				t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
						"the log was removed and the "
						"changes it held could not be "
						"saved in a segment with a "
						"durable MANIFEST: %s",
						t4dx_strerror(rc));
			else
				t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
						"the log was removed while "
						"mounted; its changes were saved "
						"in a segment at unmount");
			if (rc)
				rc = eng_write_rescue(db, true);
			pthread_mutex_unlock(&db->flush_mu);
		} else if (src) {
			rc = eng_write_rescue(db, false);
		} else if (atomic_load(&db->fatal))
			rc = EIO;       /* the next start replays the WAL */
		else
			rc = t4dx_flush(db);
		/* (with the log lost, imm is in the segment or the rescue
		 * file by now) */
		if (!rc && db->imm && !lost)
			rc = t4dx_flush(db);
		t4dx_wal_close(db->wal);
	}
	for (size_t i = 0; i < db->nsegs; i++)
		t4dx_seg_unref(db->segs[i]);
	free(db->segs);
	eng_drop_unsaved(db);
	free(db->unsaved);
	t4dx_mem_free(db->mem);
	t4dx_mem_free(db->imm);
	if (db->lock_fd >= 0)
		close(db->lock_fd);     /* releases the flock */
	pthread_rwlock_destroy(&db->lock);
	pthread_mutex_destroy(&db->flush_mu);
	pthread_mutex_destroy(&db->bg_mu);
	pthread_cond_destroy(&db->bg_cond);
	pthread_cond_destroy(&db->merge_cond);
	pthread_cond_destroy(&db->flush_done);
	pthread_mutex_destroy(&db->ct_mu);
	pthread_cond_destroy(&db->ct_cond);
	pthread_mutex_destroy(&db->health_mu);
	eng_busy_destroy(db);
	pthread_mutex_destroy(&db->vq_mu);
	free(db->vq);
	pthread_cond_destroy(&db->health_cond);
	pthread_mutex_destroy(&db->compact_mu);
	pthread_mutex_destroy(&db->reject_mu);
	pthread_mutex_destroy(&db->cstats_mu);
	eng_idmap_free(db);
	pthread_mutex_destroy(&db->idmap_mu);
	t4dx_breaker_free(db->breaker);
	t4dx_alerts_free(db->alerts);
	t4dx_lru_free(db->lru);
	free(db->dir);
	free(db);
	return rc;
}

void t4dx_get_stats(struct t4dx *db, struct t4dx_stats *st)
{
	struct t4dx_wal_stats ws;
	memset(st, 0, sizeof(*st));
	pthread_rwlock_rdlock(&db->lock);
	st->items = db->items;
	st->memtable_items = t4dx_mem_count(db->mem);
	st->memtable_bytes = t4dx_mem_bytes(db->mem);
	if (db->imm) {
		st->memtable_items += t4dx_mem_count(db->imm);
		st->memtable_bytes += t4dx_mem_bytes(db->imm);
	}
	st->segments = db->nsegs;
	for (size_t i = 0; i < db->nsegs; i++)
		st->segment_bytes += t4dx_seg_file_bytes(db->segs[i]);
	pthread_rwlock_unlock(&db->lock);
	st->recovery = db->recovery;
	pthread_mutex_lock(&db->bg_mu);
	st->write_stalls = db->stalls;
	st->writers_stalled = db->stalled;
	pthread_mutex_unlock(&db->bg_mu);
	if (!db->wal) {                 /* read-only */
		st->wal_lsn = db->ro_last_lsn;
		return;
	}
	t4dx_wal_get_stats(db->wal, &ws);
	st->wal_lsn = t4dx_wal_last_lsn(db->wal);
	st->wal_bytes = ws.bytes;
	st->archive_bytes = ws.archive_bytes;
	st->wal_syncs = ws.syncs;
	st->wal_records = ws.records;
	st->wal_pending = ws.pending;
}

void t4dx_index_file_stats(struct t4dx *db,
			   struct t4dx_index_file_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&db->lock);
	size_t n = db->nsegs;
	uint64_t *ids = malloc((n ? n : 1) * sizeof(*ids));
	for (size_t i = 0; i < n; i++) {
		struct t4dx_index *ix;
		int st = t4dx_seg_index_get(db->segs[i], &ix);
		if (st == T4DX_SEG_IX_LOADED && !t4dx_index_dropped(ix)) {
			out->loaded++;
			out->loaded_bytes += t4dx_index_bytes(ix);
		} else if (st == T4DX_SEG_IX_BAD) {
			out->unusable++;
		}
		if (ids)
			ids[i] = t4dx_seg_id(db->segs[i]);
	}
	pthread_rwlock_unlock(&db->lock);
	/* the files outside the lock (a segment retired meanwhile has
	 * none any more, which is what there is) */
	for (size_t i = 0; ids && i < n; i++) {
		char path[PATH_MAX];
		struct stat st;
		eng_index_file(db, ids[i], path, sizeof(path), false);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			out->files++;
			out->bytes += (uint64_t)st.st_size;
		}
	}
	free(ids);
}

int t4dx_statfs(struct t4dx *db, struct statvfs *out)
{
	return statvfs(db->dir, out) ? errno : 0;
}
