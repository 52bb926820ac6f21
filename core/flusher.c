/*
 * flusher.c - the background threads: the flusher flushes when the write
 * path says one is due and saves the log's records when its files were
 * removed; the merger runs the automatic compaction while tier.c finds
 * segments to merge.  Two threads, so that a long merge never keeps a
 * flush waiting (the live log would grow meanwhile).  They sit above
 * flush.c and compact.c, which never call them.  A third, the commit
 * timer, writes the records nobody waits for.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "engine_int.h"

void *eng_flusher(void *arg)
{
	struct t4dx *db = arg;
	pthread_mutex_lock(&db->bg_mu);
	for (;;) {
		while (!db->bg_want && !db->bg_wal_gone && !db->bg_stop)
			pthread_cond_wait(&db->bg_cond, &db->bg_mu);
		if (db->bg_stop)
			break;
		bool flush = db->bg_want, gone = db->bg_wal_gone;
		db->bg_want = db->bg_wal_gone = false;
		pthread_mutex_unlock(&db->bg_mu);
		if (gone)
			eng_save_lost_wal(db);
		/* a failed run is in the compaction stats and an alert */
		if (flush)
			eng_compact(db, T4DX_COMPACT_FLUSH, NULL, NULL, true,
				    false);
		pthread_mutex_lock(&db->bg_mu);
	}
	pthread_mutex_unlock(&db->bg_mu);
	return NULL;
}

void *eng_merger(void *arg)
{
	struct t4dx *db = arg;
	pthread_mutex_lock(&db->bg_mu);
	for (;;) {
		while (!db->bg_compact && !db->bg_stop)
			pthread_cond_wait(&db->merge_cond, &db->bg_mu);
		if (db->bg_stop)
			break;
		db->bg_compact = false;
		pthread_mutex_unlock(&db->bg_mu);
		/* a merge may make a run of the next size, which merges in
		 * turn (each merge takes at least one segment away; a failed
		 * one waits for the next flush) */
		for (bool more = true; more;) {
			pthread_mutex_lock(&db->bg_mu);
			bool stop = db->bg_stop;
			pthread_mutex_unlock(&db->bg_mu);
			pthread_rwlock_rdlock(&db->lock);
			more = !stop && eng_auto_pick(db, NULL, NULL);
			pthread_rwlock_unlock(&db->lock);
			if (more)
				more = eng_compact(db, T4DX_COMPACT_NREM, NULL,
						   NULL, true, true) == 0;
		}
		pthread_mutex_lock(&db->bg_mu);
	}
	pthread_mutex_unlock(&db->bg_mu);
	return NULL;
}

/* The commit timer.  Records queued with T4DX_NOWAIT (metadata changes,
 * everything in durability mode fsync, the embedder's vectors) are taken
 * by the next group commit of anyone; when nobody commits, this thread
 * does, commit_interval_ms after the first of them was queued, so that
 * none stays in memory longer than that.  Its own thread rather than
 * the flusher's: a flush writes a whole segment (seconds on a slow
 * disk), and the interval is a promise.  Its group goes through the
 * breaker and the fallback as a waiter's would (eng_commit_queued):
 * a failure is counted once, and with policy queue what it could not
 * write stays queued and counts as unpersisted; nobody is answered, so
 * nothing acknowledged as durable is lost.  While the breaker is OPEN it
 * tries nothing and looks again later. */
/* While the breaker is OPEN the timer looks again this often (or at
 * its interval, if longer), so that what it could not write goes out
 * soon after the breaker lets writes through again. */
#define CT_OPEN_POLL_MS 100

void *eng_committer(void *arg)
{
	struct t4dx *db = arg;
	uint64_t every = db->cfg.wal.commit_interval_ms, ms = every;
	pthread_mutex_lock(&db->ct_mu);
	for (;;) {
		while (!atomic_load(&db->ct_armed) && !db->ct_stop)
			pthread_cond_wait(&db->ct_cond, &db->ct_mu);
		if (db->ct_stop)
			break;
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += (time_t)(ms / 1000);
		until.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (ms && !db->ct_stop &&
		       pthread_cond_timedwait(&db->ct_cond, &db->ct_mu,
					      &until) != ETIMEDOUT)
			;
		if (db->ct_stop)
			break;  /* t4dx_close commits what is queued */
		/* disarmed first: a record queued during the commit arms a
		 * new window */
		atomic_store(&db->ct_armed, false);
		pthread_mutex_unlock(&db->ct_mu);
		bool later = eng_commit_queued(db) == EAGAIN;
		pthread_mutex_lock(&db->ct_mu);
		if (later)
			atomic_store(&db->ct_armed, true);
		ms = later && every < CT_OPEN_POLL_MS ? CT_OPEN_POLL_MS : every;
	}
	pthread_mutex_unlock(&db->ct_mu);
	return NULL;
}
