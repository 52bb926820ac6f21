/*
 * embedder.c - the thread that gives files their vectors.
 *
 * Embedding never sits on the write path: a put of new content (a close)
 * only queues the file's key.  The thread reads the content back,
 * computes its vector (embed.c) without any engine lock, and logs it as
 * an update of the vector, without waiting for it to be durable, and only
 * if the file still holds the content it embedded and no vector yet (a
 * newer close queued the key again; a vector set by hand wins).  A
 * vector lost in a crash is computed again: at every start the thread
 * first queues every file that has none (the sweep), which also embeds
 * the files of stores written before vectors existed.  Once the queue is
 * empty the thread waits for its records to be durable: one fdatasync
 * for a batch of vectors, shared with any writer's group commit.
 *
 * The queue holds each key once, in order of arrival, at most
 * EMB_QUEUE_MAX keys; past that a key is dropped and the next sweep
 * (queued then) finds its file.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <uthash.h>
#include <utlist.h>

#include "embed.h"
#include "engine_int.h"
#include "vec.h"

#define EMB_QUEUE_MAX 100000

struct ekey {
	char key[8 + T4DX_NAME_MAX];    /* parent, then the name */
	size_t keylen;
	struct ekey *prev, *next;
	UT_hash_handle hh;
};

struct eng_embedder {
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct ekey *table, *fifo;      /* guarded by mu */
	size_t n;                       /* guarded by mu */
	bool stop, sweep;               /* guarded by mu */
	bool working;                   /* a file or a sweep in hand; mu */
	struct t4dx_embed_stats st;     /* guarded by mu */
};

static size_t make_key(char *k, uint64_t parent, const char *name,
		       size_t len)
{
	memcpy(k, &parent, 8);
	memcpy(k + 8, name, len);
	return 8 + len;
}

void eng_embed_queue(struct t4dx *db, uint64_t parent, const char *name,
		     size_t len)
{
	struct eng_embedder *m = db->emb;
	if (!m)
		return;
	char k[8 + T4DX_NAME_MAX];
	size_t kl = make_key(k, parent, name, len);
	pthread_mutex_lock(&m->mu);
	struct ekey *e;
	HASH_FIND(hh, m->table, k, kl, e);
	if (!e && m->n >= EMB_QUEUE_MAX) {
		m->st.dropped++;
		m->sweep = true;        /* the next sweep finds it */
	} else if (!e && (e = malloc(sizeof(*e)))) {
		memcpy(e->key, k, kl);
		e->keylen = kl;
		HASH_ADD(hh, m->table, key[0], kl, e);
		DL_APPEND(m->fifo, e);
		m->n++;
		pthread_cond_signal(&m->cond);
	}
	pthread_mutex_unlock(&m->mu);
}

static void count(struct eng_embedder *m, uint64_t *field)
{
	pthread_mutex_lock(&m->mu);
	(*field)++;
	pthread_mutex_unlock(&m->mu);
}

/* Queue every live file without a vector (a listing: no content read). */
static int sweep(struct t4dx *db)
{
	struct merge mg;
	pthread_rwlock_rdlock(&db->lock);
	int rc = eng_merge_open(&mg, db->mem, db->imm, db->segs, db->nsegs, 0,
				"", 0, false);
	if (rc) {
		pthread_rwlock_unlock(&db->lock);
		return rc;
	}
	const struct t4dx_entry *e;
	while ((rc = eng_merge_next(&mg, &e)) == 0)
		if (!e->tombstone && S_ISREG(e->mode) && e->size &&
		    e->vec_src == T4DX_VEC_NONE)
			eng_embed_queue(db, e->parent, e->name, e->name_len);
	eng_merge_close(&mg);
	pthread_rwlock_unlock(&db->lock);
	return rc == T4DX_ENOTFOUND ? 0 : rc;
}

/* Embed one file, if it still needs it: EAGAIN when the store is
 * degraded (the key is to be tried again later), else 0. */
static int embed_one(struct t4dx *db, struct eng_embedder *m,
		     const struct ekey *k, float *x, uint64_t *lsn)
{
	uint64_t parent;
	memcpy(&parent, k->key, 8);
	const char *name = k->key + 8;
	size_t len = k->keylen - 8;
	struct t4dx_entry e;
	if (t4dx_get(db, parent, name, len, T4DX_GET_CONTENT, &e))
		return 0;               /* gone, or unreadable for now */
	if (!S_ISREG(e.mode) || e.vec_src != T4DX_VEC_NONE || !e.content) {
		t4dx_entry_clear(&e);
		return 0;
	}
	int rc = t4dx_embed(e.content->data, e.content->len, db->cfg.vector.dim,
			    x);
	struct t4dx_blob *v = NULL;
	if (!rc && !(v = t4dx_vec_new(x, db->cfg.vector.dim)))
		rc = errno;
	if (!rc)
		rc = eng_set_embedded(db, parent, name, len, e.content, v,
				      lsn);
	t4dx_blob_unref(v);
	t4dx_entry_clear(&e);
	if (rc == 0)
		count(m, &m->st.embedded);
	else if (rc == ENODATA)
		count(m, &m->st.no_vector);     /* binary, or no word */
	else if (rc == EAGAIN)
		return EAGAIN;
	else if (rc != ESTALE)
		count(m, &m->st.failed);
	return 0;
}

static void *embedder_main(void *arg)
{
	struct t4dx *db = arg;
	struct eng_embedder *m = db->emb;
	float *x = malloc(sizeof(*x) * db->cfg.vector.dim);
	uint64_t logged = 0;    /* the last vector record not yet waited for */
	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		if (m->sweep) {
			m->sweep = false;
			m->working = true;
			pthread_mutex_unlock(&m->mu);
			int rc = sweep(db);
			pthread_mutex_lock(&m->mu);
			m->working = false;
			if (rc)
				m->st.failed++;
			continue;
		}
		struct ekey *k = m->fifo;
		if (!k && logged) {
			/* caught up: the batch's vectors to the disk (a
			 * failure is the breaker's to count; a vector lost in
			 * a crash is computed again at the next start) */
			uint64_t lsn = logged;
			logged = 0;
			m->working = true;
			pthread_mutex_unlock(&m->mu);
			t4dx_wait(db, lsn);
			pthread_mutex_lock(&m->mu);
			m->working = false;
			continue;
		}
		if (!k || !x) {
			pthread_cond_wait(&m->cond, &m->mu);
			continue;
		}
		DL_DELETE(m->fifo, k);
		HASH_DEL(m->table, k);
		m->n--;
		m->working = true;
		pthread_mutex_unlock(&m->mu);
		uint64_t lsn = 0;
		int rc = embed_one(db, m, k, x, &lsn);
		if (lsn)
			logged = lsn;
		pthread_mutex_lock(&m->mu);
		m->working = false;
		if (rc == EAGAIN) {
			/* degraded: the key goes back, and the thread waits
			 * a second (or a stop) before it tries again */
			struct ekey *dup;
			HASH_FIND(hh, m->table, k->key, k->keylen, dup);
			if (!dup) {
				HASH_ADD(hh, m->table, key[0], k->keylen, k);
				DL_PREPEND(m->fifo, k);
				m->n++;
				k = NULL;
			}
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&m->cond, &m->mu, &ts);
		}
		free(k);
	}
	pthread_mutex_unlock(&m->mu);
	free(x);
	return NULL;
}

int eng_embedder_start(struct t4dx *db)
{
	if (strcmp(db->cfg.vector.embedder, "builtin"))
		return 0;
	struct eng_embedder *m = calloc(1, sizeof(*m));
	if (!m)
		return ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->sweep = true;
	db->emb = m;
	int rc = pthread_create(&m->thr, NULL, embedder_main, db);
	if (rc) {
		db->emb = NULL;
		pthread_cond_destroy(&m->cond);
		pthread_mutex_destroy(&m->mu);
		free(m);
	}
	return rc;
}

void eng_embedder_stop(struct t4dx *db)
{
	struct eng_embedder *m = db->emb;
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->mu);
	pthread_join(m->thr, NULL);
	db->emb = NULL;
	struct ekey *k, *t;
	DL_FOREACH_SAFE(m->fifo, k, t) {
		DL_DELETE(m->fifo, k);
		HASH_DEL(m->table, k);
		free(k);
	}
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

void t4dx_embed_stats(struct t4dx *db, struct t4dx_embed_stats *out)
{
	struct eng_embedder *m = db->emb;
	memset(out, 0, sizeof(*out));
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	*out = m->st;
	out->queued = m->n;
	out->busy = m->n || m->sweep || m->working;
	pthread_mutex_unlock(&m->mu);
}
