/*
 * flusher.c - the background threads: the flusher flushes when the write
 * path says one is due and saves the log's records when its files were
 * removed; the merger runs the automatic compaction while tier.c finds
 * segments to merge.  Two threads, so that a long merge never keeps a
 * flush waiting (the live log would grow meanwhile).  They sit above
 * flush.c and compact.c, which never call them.
 */
#include <pthread.h>

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
