/*
 * health.c - the health thread: a WAL probe record and a slice of segment
 * verification per tick (and the vector index file of each segment read
 * back whole), their results and alerts, and the health report.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "engine_int.h"

static void check_done(struct t4dx *db, struct t4dx_check *c, const char *what,
		       int rc, double dur)
{
	pthread_mutex_lock(&db->health_mu);
	c->runs++;
	c->last_run_ns = t4dx_now_ns();
	c->duration_s = dur;
	c->ok = rc == 0;
	c->last_error = rc;
	unsigned n = rc ? ++c->consecutive_failures : 0;
	bool recovered = !rc && c->consecutive_failures >=
					db->cfg.health.alert_threshold;
	if (!rc)
		c->consecutive_failures = 0;
	pthread_mutex_unlock(&db->health_mu);
	if (rc && n == db->cfg.health.alert_threshold)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"health check %s failed %u times in a row: %s",
				what, n, t4dx_strerror(rc));
	else if (recovered)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_INFO,
				"health check %s passes again", what);
}

static double mono_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Append and fdatasync a probe record.  It goes through the breaker: a
 * pass while OPEN lets the breaker try HALF_OPEN. */
static void check_wal(struct t4dx *db)
{
	struct t4dx_rec r;
	memset(&r, 0, sizeof(r));
	r.op = T4DX_OP_PROBE;
	struct t4dx_breaker_info bi;
	/* forced OPEN: an operator said not to touch the disk */
	t4dx_breaker_get(db->breaker, &bi);
	if (bi.forced)
		return;
	double t0 = mono_s();
	struct t4dx_wal_stats ws;
	int rc = 0, add_rc = 0;
	bool rejecting = !eng_queueing(db);
	if (rejecting)
		pthread_mutex_lock(&db->reject_mu);
	t4dx_wal_get_stats(db->wal, &ws);
	pthread_rwlock_wrlock(&db->lock);
	/* with records waiting, writing them is the probe (a new probe
	 * record would only lengthen the replay queue) */
	if (ws.pending)
		r.lsn = t4dx_wal_last_lsn(db->wal);
	else
		rc = add_rc = t4dx_wal_add(db->wal, &r);
	pthread_rwlock_unlock(&db->lock);
	if (!rc)
		rc = t4dx_wal_sync(db->wal, r.lsn);
	if (rc && rejecting) {
		uint64_t from, to;
		pthread_rwlock_wrlock(&db->lock);
		t4dx_wal_discard_pending(db->wal, &from, &to);
		pthread_rwlock_unlock(&db->lock);
	}
	if (rejecting)
		pthread_mutex_unlock(&db->reject_mu);
	if (!rc) {
		/* probes alone grow the log too: the checkpoint covers them */
		pthread_rwlock_rdlock(&db->lock);
		eng_maybe_wake_flusher(db);
		pthread_rwlock_unlock(&db->lock);
	}
	double dur = mono_s() - t0;
	bool slow = !rc && dur > db->cfg.health.timeout_s;
	if (slow)
		rc = ETIMEDOUT;
	t4dx_breaker_get(db->breaker, &bi);
	if (!rc && bi.state == T4DX_OPEN) {
		t4dx_breaker_probe_ok(db->breaker);
		/* and the probe is the first trial that passed (its group
		 * commit, counted while still OPEN, was not): an idle store
		 * whose disk works again closes at the next probe */
		t4dx_breaker_record(db->breaker, 0);
	}
	/* the group commit's own result was counted by eng_group_done; a slow
	 * one, or a probe that could not even be queued, counts here */
	t4dx_breaker_get(db->breaker, &bi);
	if ((slow || add_rc) && bi.state != T4DX_OPEN)
		t4dx_breaker_record(db->breaker, rc);
	check_done(db, &db->health.wal, "wal", rc, dur);
}

/* Verify one segment per tick, in turn, so that every segment is read
 * over time without a tick ever reading the whole store. */
static void check_segments(struct t4dx *db)
{
	struct t4dx_seg *s = db->verify_seg;
	pthread_rwlock_rdlock(&db->lock);
	if (s) {
		/* a segment that compaction retired meanwhile is not read on */
		bool live = false;
		for (size_t i = 0; i < db->nsegs && !live; i++)
			live = db->segs[i] == s;
		if (!live) {
			t4dx_seg_unref(s);
			s = NULL;
		}
	}
	if (!s && db->nsegs) {
		s = t4dx_seg_ref(db->segs[db->verify_next++ % db->nsegs]);
		db->verify_block = 0;
	}
	pthread_rwlock_unlock(&db->lock);
	double t0 = mono_s();
	/* a slice per tick, timed by itself: a big healthy segment is no
	 * timeout */
	int rc = s ? t4dx_seg_verify_some(s, &db->verify_block,
					  db->cfg.health.verify_bytes) : 0;
	bool whole = !s || db->verify_block >= t4dx_seg_blocks(s);
	double dur = mono_s() - t0;
	if (!rc && dur > db->cfg.health.timeout_s)
		rc = ETIMEDOUT;
	if (rc && rc != ETIMEDOUT) {
		/* the start read only its footer, index and Bloom filter:
		 * the marker makes the next one read it whole, quarantine
		 * and rebuild it (ENOMEM says nothing about the disk) */
		if (rc == ENOMEM)
			t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
					"segment %s could not be verified: %s",
					t4dx_seg_path(s), t4dx_strerror(rc));
		else
			eng_mark_damaged(db, s, rc);
		atomic_store(&db->seg_failed, true);
	}
	pthread_rwlock_rdlock(&db->lock);
	size_t nsegs = db->nsegs;
	pthread_rwlock_unlock(&db->lock);
	pthread_mutex_lock(&db->health_mu);
	/* whole segments read back without an error since the last one */
	if (rc)
		db->verify_ok_run = 0;
	else if (whole)
		db->verify_ok_run++;
	bool clean = db->verify_ok_run > nsegs;
	pthread_mutex_unlock(&db->health_mu);
	/* every segment read back whole since the last failure */
	if (clean && atomic_load(&db->seg_failed)) {
		atomic_store(&db->seg_failed, false);
		t4dx_alerts_add(db->alerts, T4DX_ALERT_INFO,
				"segments read back whole again");
	}
	/* a segment read back whole: its vector index file now, rebuilt
	 * if missing or damaged (outside the timed check: a rebuild takes
	 * seconds for 10,000 vectors) */
	bool check_index = s && whole && !rc;
	if (whole || rc) {
		/* the next tick starts on the next segment */
		if (!check_index)
			t4dx_seg_unref(s);
		db->verify_seg = NULL;
	} else {
		db->verify_seg = s;
	}
	check_done(db, &db->health.segments, "segments", rc, dur);
	if (check_index) {
		eng_index_check(db, s);
		t4dx_seg_unref(s);
	}
}

void *eng_health_main(void *arg)
{
	struct t4dx *db = arg;
	pthread_mutex_lock(&db->health_mu);
	while (!db->health_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		double when = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 +
			      db->cfg.health.interval_s;
		ts.tv_sec = (time_t)when;
		ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
		while (!db->health_stop &&
		       pthread_cond_timedwait(&db->health_cond, &db->health_mu,
					      &ts) != ETIMEDOUT)
			;
		if (db->health_stop)
			break;
		pthread_mutex_unlock(&db->health_mu);
		check_wal(db);
		check_segments(db);
		eng_note_level(db);
		pthread_mutex_lock(&db->health_mu);
	}
	pthread_mutex_unlock(&db->health_mu);
	return NULL;
}

void t4dx_get_health(struct t4dx *db, struct t4dx_health *out)
{
	struct t4dx_wal_stats ws;
	if (!db->wal) {                 /* read-only: nothing runs */
		memset(out, 0, sizeof(*out));
		return;
	}
	eng_note_level(db);
	pthread_mutex_lock(&db->health_mu);
	*out = db->health;
	pthread_mutex_unlock(&db->health_mu);
	out->unpersisted = eng_unpersisted(db);
	t4dx_wal_get_stats(db->wal, &ws);
	uint64_t vn, vbytes;
	eng_vq_count(db, &ws, &vn, &vbytes);
	out->queue_depth = ws.pending - vn;
	out->queue_vectors = vn;
	out->rescued = db->rescued;
	out->fatal = atomic_load(&db->fatal);
}
