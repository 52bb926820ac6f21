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
 * Content that gets no vector (binary, no word) is marked as tried
 * (vec_src TRIED, a record like a vector's), so that no later start reads
 * it again; new content drops the mark as it drops a vector.
 *
 * DATA_DIR/EMBEDDER names the embedder that made the store's vectors and
 * marks: one line, {"embedder":"builtin","version":V,"dim":D}, V being
 * T4DX_EMBED_VERSION.  When it is missing or names another (a new
 * version, another vector.dim), the start's sweep also queues every file
 * with a vector or mark of the embedder, which is computed again (a
 * record only where the outcome changed); once all of them are done and
 * durable, the file is replaced (write-temp, fsync, rename, fsync of the
 * directory).  A crash or a failure before that leaves the old file, and
 * the next start does it all again.  Vectors set by hand are never
 * touched: one of another dim than vector.dim stays, and search, which
 * only compares vectors of the query's dim, leaves its file out.
 *
 * Writers first.  While files are being written (a key queued by a put
 * less than BUSY_QUIET_MS ago, busy.c) the thread leaves the queue alone: reading
 * a content back, computing its vector and logging it take CPU, the
 * engine lock and log bytes that the writers would otherwise have.  It
 * takes a key once writes pause, or once that key has waited
 * EMB_DEFER_MS, so that under writes that never pause vectors still come,
 * EMB_DEFER_MS late; unless the CPU is busy (busy.c: less than half of
 * its time spare), when the key waits on, for vector.defer_s at most, and
 * only while the queue is less than three quarters full (a full queue
 * drops keys, whose files no search would wait for).
 * On a busy machine any CPU the thread takes comes out of the writers'
 * throughput, whatever its nice value.  For the same reason, a batch's durability is left
 * to the writers' own group commits while they come; the thread syncs
 * itself only when the log is quiet.  The vectors themselves are computed
 * on a second thread at nice EMB_NICE (compute_main), which takes no
 * lock a writer takes: the thread that reads contents back and logs
 * vectors keeps the daemon's priority, so that a writer never waits for
 * a lock held by a thread the scheduler holds back.  While a search
 * waits, that thread computes them itself, at the daemon's priority,
 * and does not wait for the computing thread to finish one it was at
 * when the search came, nor for a flush to give a file its vector.
 *
 * With the builtin embedder, a flush computes the vectors of the files
 * it writes that have none (flush.c): under writes that never pause,
 * most files get theirs there, from the content the flush holds, with
 * no record and no second flush.  So this thread looks at a file's
 * vector before it reads its content, and a file whose version without a
 * vector is being flushed waits for that flush to end (wait_flush_of).
 *
 * The queue holds each key once, in order of arrival, at most
 * EMB_QUEUE_MAX keys; past that a key is dropped and the next sweep
 * finds its file.  A sweep stops at a full queue and the next runs once
 * the queue is empty: sweeping again before the queued files are done
 * would fill the queue with the same files for ever (a store of more
 * files without a vector than the queue holds got none).  The files of a redo are queued in key
 * order, REDO_BATCH at a time (the next batch once the queue is empty),
 * so that a redo of more files than the queue holds gets through them
 * all, each once.
 *
 * A search sees the files closed before it (t4dx_embed_wait).  Each key a
 * put queues gets a ticket (seq, in order of puts) and joins the list of
 * tickets, which it leaves once it is dealt with: embedded, marked,
 * given up, or gone.  A key that failed once (the program's back-off, a
 * degraded store) or that a search gave up on at its bound moves to the
 * late list: no search waits for it again, each counts it as pending
 * until it is dealt with; a new put of it gives it a new ticket.  A
 * search waits, bounded, until no ticket up to the last one given
 * before it is left.  While one waits, the thread does not hold back for
 * writers and takes the newest ticket it waits for first (searched_key),
 * ahead of a sweep's keys: a reader waiting outranks throughput.  Sweep and redo keys get no
 * ticket: a search does not wait for them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <uthash.h>
#include <utlist.h>

#include "alert.h"
#include "embed.h"
#include "embed_cmd.h"
#include "engine_int.h"
#include "io.h"
#include "vec.h"

#define EMB_QUEUE_MAX 100000
#define EMB_NICE 19       /* the computing thread's nice value */
#define EMB_STATE "EMBEDDER"
/* half the queue (m->max, which tests make small: a batch larger than
 * the queue dropped the rest of the redo's files, left with the old
 * embedder's vectors) */
#define REDO_BATCH(m) ((m)->max > 1 ? (m)->max / 2 : 1)
#define EMB_DEFER_MS 1000 /* a key waits for a pause at most this long */
#define EMB_FILE_FAILS 3  /* the program failed on a content: give up */
#define EMB_SEARCH_WAIT_MS 2000 /* a search waits for vectors this long */
#define MS 1000000LL

struct ekey {
	char key[8 + T4DX_NAME_MAX];    /* parent, then the name */
	size_t keylen;
	int64_t at;                     /* when it was queued (monotonic ns) */
	unsigned fails;                 /* the program failed on its content */
	uint64_t answers_at;            /* m->answers at the last such failure */
	uint64_t seq;                   /* its ticket, 0 if none (mu) */
	bool late;                      /* in the late list, not tickets */
	bool held;                      /* held back for a busy CPU */
	struct ekey *prev, *next;
	struct ekey *sprev, *snext;     /* in the tickets' list, if seq */
	UT_hash_handle hh;
};

/* A search waiting for the tickets up to target (t4dx_embed_wait): each
 * has its own condition, signalled only when its wait is over, so that
 * many searches waiting are not all woken at every key done. */
struct ewaiter {
	uint64_t target;
	bool served;                    /* its newest ticket was taken */
	pthread_cond_t cond;
	struct ewaiter *next;
};

struct eng_embedder {
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct ekey *table, *fifo;      /* guarded by mu */
	size_t n;                       /* guarded by mu */
	size_t max;                     /* EMB_QUEUE_MAX; set at start */
	bool stop, sweep;               /* guarded by mu */
	bool working;                   /* a file or a sweep in hand; mu */
	int64_t defer;                  /* EMB_DEFER_MS in ns (when writes
					 * last came: db->busy) */
	int64_t cap;                    /* vector.defer_s in ns */
	struct ekey *held_last;         /* the gate's last key marked held,
					 * NULL: start from the head (mu) */
	/* searches waiting for vectors (see the top): the keys with a
	 * ticket, oldest first (queued, or the one in hand), and the late
	 * ones; the last ticket given; the searches waiting; and until
	 * when the thread waits for a back-off or a degraded store (no
	 * search waits meanwhile); all guarded by mu */
	struct ekey *tickets, *late;
	size_t nlate;
	/* files written whose keys a full queue dropped, which no search
	 * waits for but each counts as pending: since the last sweep began
	 * (ndropped), and those that sweep is to find (ncovered, until the
	 * queue is empty after it) */
	uint64_t ndropped, ncovered;
	/* the program's answers when health last heard of one (mu) */
	uint64_t noted_answers;
	uint64_t seq;
	unsigned waiters;
	struct ewaiter *wlist;
	int64_t hold_until;
	int64_t search_wait;            /* EMB_SEARCH_WAIT_MS in ns */
	/* the last vector record not yet known durable, 0 if none, and
	 * since when there is one; mu */
	uint64_t logged;
	int64_t logged_at;
	struct t4dx_embed_stats st;     /* guarded by mu */
	/* the requests (a file's or a text query's) the program of
	 * "command" has answered with a vector since the start: a content's
	 * failure counts against it only when the program answered another
	 * request since that content's last failure (see embed_one); mu */
	uint64_t answers;
	/* EMBEDDER named another embedder: the embedder's vectors and marks
	 * are computed again (see the top); redo_failed: something of that
	 * went wrong, the file stays as it is until the next start */
	bool redo, redo_failed;         /* guarded by mu */
	/* the next batch of the redo is to be queued, from the key
	 * redo_parent, redo_name (the thread's own) */
	bool redo_sweep, redo_more;     /* guarded by mu */
	uint64_t redo_parent;
	char redo_name[T4DX_NAME_MAX + 1];
	size_t redo_len;
	char state[4096 + 128];         /* the line EMBEDDER is to hold */
	size_t state_len;
	/* vector.embedder "command": the program, asked by the computing
	 * thread and by text queries (t4dx_embed_text), one at a time
	 * (run_mu) */
	struct t4dx_embed_cmd *cmd;
	pthread_mutex_t run_mu;
	/* the program's starts and when it may start again, as the
	 * embedder's last request left them (read under run_mu: a text
	 * query may start or stop the program meanwhile); written by
	 * compute_here, read by the reading thread once it is done */
	uint64_t run_starts;
	int64_t run_ready;
	uint64_t run_answers;   /* t4dx_embed_cmd_answers, likewise */
	/* the computing thread and the one request it is given: content c
	 * (a reference the thread drops) into cx, its own buffer, then rc
	 * and why, and done (all guarded by cmu); abandoned: the reading
	 * thread computes it itself, for a search that came meanwhile */
	pthread_t cthr;
	bool cthr_up;
	pthread_mutex_t cmu;
	pthread_cond_t ccond;
	struct t4dx_blob *c;
	float *cx;
	int rc;
	char why[256];
	bool asked, done, cstop, abandoned;
};

/* Does DATA_DIR/EMBEDDER hold m->state?  Anything else (missing,
 * unreadable, another line) is no. */
static bool state_same(struct t4dx *db, const struct eng_embedder *m)
{
	char path[PATH_MAX], buf[sizeof(m->state) + 1];
	snprintf(path, sizeof(path), "%s/%s", db->dir, EMB_STATE);
	int fd = t4dx_io.open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return false;
	ssize_t n = t4dx_io.pread(fd, buf, sizeof(buf), 0);
	t4dx_io.close(fd);
	return n == (ssize_t)m->state_len && !memcmp(buf, m->state, m->state_len);
}

/* The redo pass is over: record the embedder, if all went well. */
static void state_write(struct t4dx *db, struct eng_embedder *m)
{
	int rc = t4dx_io_write_durably(db->dir, EMB_STATE, m->state,
				       m->state_len, NULL);
	if (rc)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"cannot write %s/%s: %s (the next start "
				"computes the vectors again)", db->dir,
				EMB_STATE, strerror(rc));
}

/* A redo begins: before it logs a vector, EMBEDDER must name no embedder
 * at all, or a redo cut short (a crash, an unmount) and a start with the
 * old embedder again would find the old line, redo nothing, and keep the
 * vectors the new one had logged.  The line says which embedder is
 * under way ({"redo":true,...}); it matches none, so whatever embedder
 * starts next does it all again. */
static void state_mark_redo(struct t4dx *db, struct eng_embedder *m)
{
	char line[sizeof(m->state) + 16];
	int n = snprintf(line, sizeof(line), "{\"redo\":true,%s",
			 m->state + 1);
	int rc = t4dx_io_write_durably(db->dir, EMB_STATE, line, (size_t)n,
				       NULL);
	if (rc)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"cannot write %s/%s: %s (a restart with "
				"another embedder before this one is done "
				"may keep some of its vectors)", db->dir,
				EMB_STATE, strerror(rc));
}

static size_t make_key(char *k, uint64_t parent, const char *name,
		       size_t len)
{
	memcpy(k, &parent, 8);
	memcpy(k + 8, name, len);
	return 8 + len;
}

/* Wake the searches whose wait is over: every one with all, else those
 * whose tickets are all dealt with (mu held). */
static void wake_waiters(struct eng_embedder *m, bool all)
{
	uint64_t head = m->tickets ? m->tickets->seq : UINT64_MAX;
	for (struct ewaiter *w = m->wlist; w; w = w->next)
		if (all || w->target < head)
			pthread_cond_signal(&w->cond);
}

/* The newest ticket given up to target, NULL if none (mu held). */
static struct ekey *newest_upto(struct eng_embedder *m, uint64_t target)
{
	/* the tail first (a DL list's head->prev) */
	struct ekey *k = m->tickets->sprev;
	while (k != m->tickets && k->seq > target)
		k = k->sprev;
	return k->seq <= target ? k : NULL;
}

/* The key a search waiting wants first: the newest ticket given before
 * it began.  The note closed just before a search is what it most likely
 * looks for, and a backlog of files held back for a busy CPU (busy.c)
 * can be more than a search's bound computes: the search that runs out
 * of time then has that note, with the older ones pending.  With several
 * searches, each has its own newest first, the one that began first
 * (whose bound runs out first) before the others; then the rest, newest
 * first, of the latest one (mu held; tickets not empty, a search
 * waiting). */
static struct ekey *searched_key(struct eng_embedder *m)
{
	struct ekey *k;
	uint64_t target = 0;
	for (;;) {
		struct ewaiter *first = NULL;
		for (struct ewaiter *w = m->wlist; w; w = w->next) {
			if (w->target > target)
				target = w->target;
			if (!w->served)
				first = w;      /* wlist: the latest first */
		}
		if (!first)
			break;
		first->served = true;
		if ((k = newest_upto(m, first->target)))
			return k;
	}
	k = newest_upto(m, target);
	return k ? k : m->tickets;
}

/* Key k is dealt with (or freed): no search waits for it, or counts it
 * (mu held). */
static void ticket_done(struct eng_embedder *m, struct ekey *k)
{
	if (!k->seq)
		return;
	if (k->late) {
		DL_DELETE2(m->late, k, sprev, snext);
		m->nlate--;
	} else {
		bool head = m->tickets == k;
		DL_DELETE2(m->tickets, k, sprev, snext);
		if (head && m->wlist)
			wake_waiters(m, false);
	}
	k->seq = 0;
	k->late = false;
}

/* Key k failed once: no search waits for it any more, but they count it
 * as pending until it is dealt with (mu held). */
static void ticket_late(struct eng_embedder *m, struct ekey *k)
{
	if (!k->seq || k->late)
		return;
	bool head = m->tickets == k;
	DL_DELETE2(m->tickets, k, sprev, snext);
	DL_APPEND2(m->late, k, sprev, snext);
	k->late = true;
	m->nlate++;
	if (head && m->wlist)
		wake_waiters(m, false);
}

/* Queue a key; put: a writer's (see "Writers first"), not a sweep's. */
static void queue_key(struct eng_embedder *m, uint64_t parent,
		      const char *name, size_t len, bool put)
{
	char k[8 + T4DX_NAME_MAX];
	size_t kl = make_key(k, parent, name, len);
	int64_t now = eng_mono_ns();
	pthread_mutex_lock(&m->mu);
	struct ekey *e;
	HASH_FIND(hh, m->table, k, kl, e);
	if (e && put) {
		e->fails = 0;           /* new content: a new chance */
		e->answers_at = 0;
		/* a sweep's, failed once, or given up on by a search: new
		 * content gets a new ticket */
		ticket_done(m, e);
		e->seq = ++m->seq;
		DL_APPEND2(m->tickets, e, sprev, snext);
	}
	if (!e && m->n >= m->max) {
		m->st.dropped++;
		m->sweep = true;        /* the next sweep finds it */
		if (put)
			m->ndropped++;
	} else if (!e && (e = malloc(sizeof(*e)))) {
		memcpy(e->key, k, kl);
		e->keylen = kl;
		e->at = now;
		e->fails = 0;
		e->answers_at = 0;
		e->seq = put ? ++m->seq : 0;
		e->late = false;
		e->held = false;
		if (e->seq)
			DL_APPEND2(m->tickets, e, sprev, snext);
		HASH_ADD(hh, m->table, key[0], kl, e);
		DL_APPEND(m->fifo, e);
		/* a thread that waits for writes to pause wakes up by
		 * itself: a signal for every put would only wake it for
		 * nothing */
		if (!m->n++)
			pthread_cond_signal(&m->cond);
	}
	pthread_mutex_unlock(&m->mu);
}

void eng_embed_queue(struct t4dx *db, uint64_t parent, const char *name,
		     size_t len)
{
	eng_busy_put(db, eng_mono_ns());
	if (db->emb)
		queue_key(db->emb, parent, name, len, true);
}

void eng_embed_count_flush(struct t4dx *db, uint64_t made, uint64_t tried,
			   uint64_t left)
{
	atomic_fetch_add(&db->flush_left, left);
	atomic_fetch_add(&db->flush_embedded, made);
	atomic_fetch_add(&db->flush_tried, tried);
}

static void count(struct eng_embedder *m, uint64_t *field)
{
	pthread_mutex_lock(&m->mu);
	(*field)++;
	pthread_mutex_unlock(&m->mu);
}

static size_t queue_len(struct eng_embedder *m)
{
	pthread_mutex_lock(&m->mu);
	size_t n = m->n;
	pthread_mutex_unlock(&m->mu);
	return n;
}

/* Queue every live file without a vector or mark (a listing: no content
 * read); with redo, the next batch of files with the embedder's vector
 * or mark instead: *more tells whether some are left after it. */
static int sweep(struct t4dx *db, bool redo, bool *more)
{
	struct eng_embedder *m = db->emb;
	struct merge mg;
	*more = false;
	pthread_rwlock_rdlock(&db->lock);
	int rc = redo ? eng_merge_open(&mg, db->mem, db->imm, db->segs,
				       db->nsegs, m->redo_parent, m->redo_name,
				       m->redo_len, false)
		      : eng_merge_open(&mg, db->mem, db->imm, db->segs,
				       db->nsegs, 0, "", 0, false);
	if (rc) {
		pthread_rwlock_unlock(&db->lock);
		return rc;
	}
	const struct t4dx_entry *e;
	while ((rc = eng_merge_next(&mg, &e)) == 0) {
		if (e->tombstone || !S_ISREG(e->mode) || !e->size)
			continue;
		if (!redo && e->vec_src != T4DX_VEC_NONE)
			continue;
		if (!redo && queue_len(m) >= m->max) {
			/* the rest once these are done */
			pthread_mutex_lock(&m->mu);
			m->sweep = true;
			pthread_mutex_unlock(&m->mu);
			break;
		}
		if (redo && (e->vec_src == T4DX_VEC_NONE ||
			     e->vec_src == T4DX_VEC_HAND))
			continue;
		if (redo && queue_len(m) >= REDO_BATCH(m)) {
			/* the rest with the next batch, from this key on */
			m->redo_parent = e->parent;
			memcpy(m->redo_name, e->name, e->name_len);
			m->redo_len = e->name_len;
			*more = true;
			break;
		}
		queue_key(m, e->parent, e->name, e->name_len, false);
	}
	eng_merge_close(&mg);
	pthread_rwlock_unlock(&db->lock);
	return rc == T4DX_ENOTFOUND || *more ? 0 : rc;
}

/* What the program's answer rc (why: how it failed) says of it, for
 * health (mu held): an answer, vector or null, says it works (answers:
 * how many it gave so far, t4dx_embed_cmd_answers; an ENODATA without a
 * new one is a content or query it was never asked about, binary, empty
 * or not UTF-8, and says nothing); a back-off or a stop says nothing
 * new. */
static void note_program(struct eng_embedder *m, int rc, const char *why,
			 uint64_t answers)
{
	bool answered = answers > m->noted_answers;
	if (answered)
		m->noted_answers = answers;
	if (!rc || (rc == ENODATA && answered)) {
		m->st.program_failing = false;
		m->st.program_error[0] = 0;
	} else if (rc != ENODATA && rc != EAGAIN && rc != ECANCELED) {
		m->st.program_failing = true;
		snprintf(m->st.program_error, sizeof(m->st.program_error),
			 "%s", why);
	}
}

/* The vector of content c in x: 0, ENODATA (none for this content),
 * or, from the program of "command": EAGAIN (not to be started again
 * yet), ECANCELED (closing), another code (it failed, why says how).
 * On the computing thread. */
static int compute_here(struct eng_embedder *m, uint32_t dim,
			const struct t4dx_blob *c, float *x, char *why,
			size_t whylen)
{
	if (!m->cmd)
		return t4dx_embed(c->data, c->len, dim, x);
	if (t4dx_embed_is_binary(c->data, c->len))
		return ENODATA;
	pthread_mutex_lock(&m->run_mu);
	int rc = t4dx_embed_cmd_run(m->cmd, c->data, c->len, x, why, whylen);
	m->run_starts = t4dx_embed_cmd_starts(m->cmd);
	m->run_ready = t4dx_embed_cmd_ready_ns(m->cmd);
	m->run_answers = t4dx_embed_cmd_answers(m->cmd);
	pthread_mutex_unlock(&m->run_mu);
	return rc;
}

/* The computing thread, at nice EMB_NICE with the builtin embedder: it
 * takes CPU only when writers leave some, and it takes no lock that a
 * writer takes (the engine's, the log's, m->mu), so that a writer never
 * waits for a thread the scheduler holds back.  The thread that reads
 * contents and logs vectors runs at the daemon's priority and waits for
 * this one without using CPU.
 *
 * With "command" it keeps the daemon's priority: it only waits for the
 * program, whose own CPU is the program's to set (a program started
 * from here would inherit nice 19, and an unprivileged daemon could not
 * take that back when a search waits for it: beside any loop at nice 0
 * it would get next to no CPU, and every search would wait out its
 * bound). */
static void *compute_main(void *arg)
{
	struct t4dx *db = arg;
	struct eng_embedder *m = db->emb;
	if (!m->cmd && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
				   EMB_NICE) != 0)
		errno = 0;
	pthread_mutex_lock(&m->cmu);
	while (!m->cstop) {
		if (!m->asked) {
			pthread_cond_wait(&m->ccond, &m->cmu);
			continue;
		}
		m->asked = false;
		struct t4dx_blob *c = m->c;
		m->c = NULL;
		char why[sizeof(m->why)] = "";
		pthread_mutex_unlock(&m->cmu);
		int rc = compute_here(m, db->cfg.vector.dim, c, m->cx, why,
				      sizeof(why));
		t4dx_blob_unref(c);
		pthread_mutex_lock(&m->cmu);
		if (!m->abandoned) {
			m->rc = rc;
			memcpy(m->why, why, sizeof(why));
		}
		m->abandoned = false;
		m->done = true;
		pthread_cond_broadcast(&m->ccond);
	}
	pthread_mutex_unlock(&m->cmu);
	return NULL;
}

#define SEARCH_POLL_MS 20

/* Wait until the computing thread is done (cmu held): false if a search
 * came meanwhile, and the builtin embedder's request is better computed
 * on this thread than waited for at nice EMB_NICE (with "command" the
 * program is asked one request at a time anyway).  A search does not
 * signal ccond: it is looked for every SEARCH_POLL_MS. */
static bool computed(struct eng_embedder *m)
{
	while (!m->done) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += SEARCH_POLL_MS * MS;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&m->ccond, &m->cmu, &ts);
		if (m->done || m->cmd)
			continue;
		pthread_mutex_unlock(&m->cmu);
		pthread_mutex_lock(&m->mu);
		bool search = m->waiters > 0;
		pthread_mutex_unlock(&m->mu);
		pthread_mutex_lock(&m->cmu);
		if (search && !m->done)
			return false;
	}
	return true;
}

/* compute_here() on the computing thread, or on this one when a search
 * waits (urgent: at nice EMB_NICE, beside a loop at nice 0, a large
 * content's vector would take seconds, past the search's bound), when
 * one comes while the computing thread is at it (which finishes it for
 * nothing), or when that thread could not be started; alerts and counts
 * here. */
static int compute(struct t4dx *db, struct eng_embedder *m,
		   const struct t4dx_blob *c, float *x, bool urgent)
{
	int rc = 0;
	bool here = urgent || !m->cthr_up;
	if (!here) {
		pthread_mutex_lock(&m->cmu);
		/* a request given up on may still be under way */
		here = !computed(m);
		if (!here) {
			m->c = t4dx_blob_ref((struct t4dx_blob *)c);
			m->asked = true;
			m->done = false;
			pthread_cond_broadcast(&m->ccond);
			here = !computed(m);
			if (here)
				m->abandoned = true;
			else
				memcpy(x, m->cx, sizeof(*x) *
				       db->cfg.vector.dim);
			rc = m->rc;
		}
		pthread_mutex_unlock(&m->cmu);
	}
	if (here)
		rc = compute_here(m, db->cfg.vector.dim, c, x, m->why,
				  sizeof(m->why));
	if (!m->cmd)
		return rc;
	pthread_mutex_lock(&m->mu);
	if (m->run_starts > m->st.starts)       /* a query's start may */
		m->st.starts = m->run_starts;   /* be counted already */
	if (!rc)
		m->answers++;
	note_program(m, rc, m->why, m->run_answers);
	pthread_mutex_unlock(&m->mu);
	if (rc && rc != ENODATA && rc != EAGAIN && rc != ECANCELED)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"the embedder program (vector.command) %s; "
				"it is started again, and the file tried "
				"again, after a back-off", m->why);
	return rc;
}

/* A flush is writing out the memtable that holds the file's newest
 * version, which has no vector or mark: with the builtin embedder, the
 * flush computes it (flush.c).  Wait for that flush to end (or a stop),
 * so that the file is found with its vector in the segment instead of
 * read, embedded, logged and flushed a second time.  Not while a search
 * waits (checked again every 100 ms): the flush's vectors and index are
 * built at nice 19, and on a machine busy with other programs it may
 * take longer than the search's bound; the vector is computed here, its
 * record applies to the version the flush writes, and the segment's
 * vector, computed from the same bytes, is the same. */
static void wait_flush_of(struct t4dx *db, struct eng_embedder *m,
			  bool urgent, uint64_t parent, const char *name,
			  size_t len)
{
	if (m->cmd || urgent)
		return;
	uint64_t gen;
	if (!eng_flush_under_way(db, &gen))
		return;
	pthread_rwlock_rdlock(&db->lock);
	const struct t4dx_entry *e = NULL;
	if (db->imm && !t4dx_mem_get(db->mem, parent, name, len))
		e = t4dx_mem_get(db->imm, parent, name, len);
	bool flush_takes = e && eng_flush_embeds(e);
	pthread_rwlock_unlock(&db->lock);
	if (!flush_takes)
		return;
	for (;;) {
		/* a stop or a search signals m->cond, not flush_done: look
		 * again now and then (one lock at a time) */
		pthread_mutex_lock(&m->mu);
		bool stop = m->stop || m->waiters;
		pthread_mutex_unlock(&m->mu);
		if (stop)
			return;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100 * MS;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&db->bg_mu);
		if (db->flush_gen == gen && !db->bg_stop)
			pthread_cond_timedwait(&db->flush_done, &db->bg_mu,
					       &ts);
		bool ended = db->flush_gen != gen || db->bg_stop;
		pthread_mutex_unlock(&db->bg_mu);
		if (ended)
			return;
	}
}

/* Embed one file, if it still needs it (with redo: also when it has the
 * embedder's vector or mark): EAGAIN when the store is degraded (the key
 * is to be tried again later), EINPROGRESS when the program of "command"
 * failed or may not be started yet (the key goes to the back of the
 * queue, and k->fails counts a failure), else 0; *failed when it could
 * not be done.
 *
 * A content the program fails on EMB_FILE_FAILS times (crashes, hangs,
 * garbage: each time after a back-off) gets the "tried" mark, as if the
 * program had answered null, so that it is not sent again and again for
 * as long as it is there (new content, or a redo for another program,
 * drops the mark).  A failure counts against a content only when the
 * program answered another request with a vector since that content
 * last failed: a program that fails on everything (missing, broken, a
 * model server down for a while, even after it once worked) marks
 * nothing, and every file gets its vector once it is mended; a content
 * alone in the queue that the program always fails on is tried again
 * after each back-off (at most 60 s) rather than given up. */
static int embed_one(struct t4dx *db, struct eng_embedder *m,
		     struct ekey *k, float *x, bool redo, bool urgent,
		     uint64_t *lsn, bool *failed)
{
	uint64_t parent;
	memcpy(&parent, k->key, 8);
	const char *name = k->key + 8;
	size_t len = k->keylen - 8;
	struct t4dx_entry e;
	*failed = false;
	wait_flush_of(db, m, urgent, parent, name, len);
	if (!urgent) {  /* a search that came meanwhile */
		pthread_mutex_lock(&m->mu);
		urgent = m->waiters > 0;
		pthread_mutex_unlock(&m->mu);
	}
	/* the vector first, without the content: a flush gives most files
	 * written while writes go on theirs (flush.c) before this thread
	 * comes to them, and reading their contents back from segments
	 * would be for nothing */
	int rc = t4dx_get(db, parent, name, len, 0, &e);
	if (!rc && (!S_ISREG(e.mode) || e.vec_src == T4DX_VEC_HAND ||
		    (e.vec_src != T4DX_VEC_NONE && !redo))) {
		t4dx_entry_clear(&e);
		return 0;
	}
	if (!rc) {
		t4dx_entry_clear(&e);
		rc = t4dx_get(db, parent, name, len, T4DX_GET_CONTENT, &e);
	}
	if (rc) {
		/* gone; or unreadable for now: the next start tries again */
		*failed = rc != T4DX_ENOTFOUND;
		return 0;
	}
	if (!S_ISREG(e.mode) || !e.content || e.vec_src == T4DX_VEC_HAND ||
	    (e.vec_src != T4DX_VEC_NONE && !redo)) {
		t4dx_entry_clear(&e);
		return 0;
	}
	pthread_mutex_lock(&m->mu);
	m->st.bytes_read += e.content->len;
	pthread_mutex_unlock(&m->mu);
	int src = T4DX_VEC_EMBED;
	rc = compute(db, m, e.content, x, urgent);
	struct t4dx_blob *v = NULL;
	bool give_up = false;
	if (m->cmd && rc && rc != ENODATA) {
		if (rc != EAGAIN && rc != ECANCELED) {
			count(m, &m->st.failed);
			*failed = true;
			pthread_mutex_lock(&m->mu);
			/* the program works (it answered something else
			 * since this content last failed): this content's
			 * doing; else an outage, which counts against none */
			if (m->answers != k->answers_at) {
				k->fails++;
				k->answers_at = m->answers;
			}
			give_up = k->fails >= EMB_FILE_FAILS;
			if (give_up) {
				/* the program works (as just said): for
				 * health, this failure was the content's, which
				 * is marked and alerted */
				m->st.program_failing = false;
				m->st.program_error[0] = 0;
			}
			pthread_mutex_unlock(&m->mu);
		}
		if (!give_up) {
			t4dx_entry_clear(&e);
			return EINPROGRESS;
		}
		/* named by its path under items/, as search results name
		 * it (this thread is off the write path); else by its name
		 * and its directory's inode */
		char *path = NULL;
		if (eng_path_of(db, parent, name, len, &path) == 0)
			t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
					"the embedder program (vector.command) "
					"failed %u times on the content of "
					"\"%s\" (%zu bytes), which gets no "
					"vector until it changes", k->fails,
					path, e.content->len);
		else
			t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
					"the embedder program (vector.command) "
					"failed %u times on the content of "
					"\"%.*s\" in directory inode %llu (%zu "
					"bytes), which gets no vector until it "
					"changes", k->fails, (int)len, name,
					(unsigned long long)parent,
					e.content->len);
		free(path);
		*failed = false;        /* done: marked */
		rc = ENODATA;
	}
	if (rc == ENODATA) {
		src = T4DX_VEC_TRIED;   /* binary, or no word */
		rc = 0;
	} else if (!rc && !(v = t4dx_vec_new(x, db->cfg.vector.dim))) {
		rc = errno;
	}
	/* a redo that finds what the file holds already logs (and counts)
	 * nothing */
	bool same = !rc && e.vec_src == src && t4dx_vec_equal(e.vec, v);
	if (!rc && !same)
		rc = eng_set_embedded(db, parent, name, len, e.content, e.lsn,
				      src, v, lsn);
	t4dx_blob_unref(v);
	t4dx_entry_clear(&e);
	if (rc == 0 && same)
		return 0;
	if (rc == 0)
		count(m, src == T4DX_VEC_EMBED ? &m->st.embedded
					       : &m->st.no_vector);
	else if (rc == EAGAIN)
		return EAGAIN;
	else if (rc != ESTALE) {
		count(m, &m->st.failed);
		*failed = true;
	}
	return 0;
}

/* Wait on m->cond (on the monotonic clock: a wall clock set back would
 * stretch the wait by as much) until the monotonic time until (mu
 * held). */
static void wait_until(struct eng_embedder *m, int64_t until)
{
	if (until <= eng_mono_ns() || m->stop)
		return;
	struct timespec ts = { until / 1000000000, until % 1000000000 };
	pthread_cond_timedwait(&m->cond, &m->mu, &ts);
}

#define GATE_POLL_MS 100

/* The gate holds the queue: every key past its hold-back (not only the
 * head) waits for it, and counts once as deferred.  The walk goes on
 * from the last key it marked, the queue being in the order of at (mu
 * held). */
static void mark_held(struct eng_embedder *m, int64_t now)
{
	struct ekey *k = m->held_last ? m->held_last->next : m->fifo;
	for (; k && k->at + m->defer <= now; k = k->next) {
		if (!k->held) {
			k->held = true;
			m->st.deferred++;
		}
		m->held_last = k;
	}
}

/* Writes have not paused yet and what waits since at (the queue's head,
 * records to sync) has not waited its longest: *until gets when to look
 * again (mu held).  Its longest is m->defer, or, for a key (gate) while
 * the CPU is busy (busy.c) and the queue is less than three quarters
 * full, vector.defer_s, looked at again every GATE_POLL_MS. */
static bool writers_first(struct t4dx *db, struct eng_embedder *m,
			  int64_t at, struct ekey *gate, int64_t *until)
{
	int64_t now = eng_mono_ns();
	int64_t quiet = atomic_load(&db->busy.last_put) + db->busy.quiet;
	if (m->waiters)
		return false;
	int64_t due = at + m->defer;
	if (now < quiet && now < due) {
		*until = quiet < due ? quiet : due;
		return true;
	}
	/* writes paused, or the key has waited its longest: it goes,
	 * unless files are still being written on a busy CPU (busy.c; a
	 * busy CPU stretches a writer's own gaps past the quiet time, so a put
	 * less than its window ago counts).  Held keys fill the queue at
	 * the writers' pace, and a full one drops keys no search waits
	 * for: no holding once it is three quarters full */
	int64_t cap = at + m->cap;
	if (!gate || now >= cap || m->n >= m->max - m->max / 4 ||
	    !eng_busy_writing(db, now))
		return false;
	/* the CPU's sample reads /proc/stat, which takes a while on a
	 * machine of many CPUs: not under mu, which every put takes (gate
	 * stays queued: only this thread takes keys out; a search that
	 * came meanwhile is seen below) */
	pthread_mutex_unlock(&m->mu);
	bool busy = eng_busy_cpu(db, now);
	pthread_mutex_lock(&m->mu);
	if (!busy || m->waiters)
		return false;
	due = now + GATE_POLL_MS * MS;
	*until = due < cap ? due : cap;
	mark_held(m, now);
	return true;
}

static void *embedder_main(void *arg)
{
	struct t4dx *db = arg;
	struct eng_embedder *m = db->emb;
	/* vectors can wait, writers cannot: on a busy machine the
	 * computing thread takes what CPU the writers leave (Linux threads
	 * have a nice value of their own; if it cannot be set, nothing else
	 * changes) */
	m->cx = malloc(sizeof(*m->cx) * db->cfg.vector.dim);
	m->cthr_up = m->cx &&
		     pthread_create(&m->cthr, NULL, compute_main, db) == 0;
	float *x = malloc(sizeof(*x) * db->cfg.vector.dim);
	int64_t until;
	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		if ((m->sweep && !m->n) || m->redo_sweep) {
			bool redo = !(m->sweep && !m->n), more;
			if (redo) {
				m->redo_sweep = false;
			} else {
				m->sweep = false;
				m->ncovered += m->ndropped;
				m->ndropped = 0;
			}
			m->working = true;
			pthread_mutex_unlock(&m->mu);
			int rc = sweep(db, redo, &more);
			pthread_mutex_lock(&m->mu);
			m->working = false;
			if (rc) {
				m->st.failed++;
				m->redo_failed = true;
			}
			if (redo)
				m->redo_more = more;
			continue;
		}
		/* a search waits: its newest key first */
		struct ekey *k = m->wlist && m->tickets ? searched_key(m)
						       : m->fifo;
		/* nothing left: the sweep since found what was dropped
		 * (unless it stopped at a full queue), whatever comes next
		 * (the vectors' fsync, a redo's next batch) */
		if (!k && !m->sweep)
			m->ncovered = 0;
		if (m->logged &&
		    t4dx_wal_durable_lsn(db->wal) >= m->logged)
			m->logged = 0;  /* a writer's group commit took them */
		if (k && x && writers_first(db, m, k->at, k, &until)) {
			wait_until(m, until);
			continue;
		}
		if (!k && m->logged &&
		    writers_first(db, m, m->logged_at, NULL, &until)) {
			/* the next group commit of the writers may take them */
			wait_until(m, until);
			continue;
		}
		if (!k && m->logged) {
			/* caught up: the batch's vectors to the disk (a
			 * failure is the breaker's to count; a vector lost in
			 * a crash is computed again at the next start) */
			uint64_t lsn = m->logged;
			m->logged = 0;
			m->working = true;
			pthread_mutex_unlock(&m->mu);
			/* also in durability mode fsync: idle means
			 * durable, and a redo's end is recorded after it */
			int rc = eng_wait_always(db, lsn);
			pthread_mutex_lock(&m->mu);
			m->working = false;
			if (rc)
				m->redo_failed = true;
			continue;
		}
		if (!k && m->redo && m->redo_more) {
			m->redo_sweep = true;   /* the next batch */
			continue;
		}
		if (!k && m->redo) {
			/* every file of the old embedder done, and durable */
			bool ok = !m->redo_failed;
			m->redo = m->redo_failed = false;
			m->working = true;
			pthread_mutex_unlock(&m->mu);
			if (ok)
				state_write(db, m);
			pthread_mutex_lock(&m->mu);
			m->working = false;
			continue;
		}
		if (!k || !x) {
			pthread_cond_wait(&m->cond, &m->mu);
			continue;
		}
		if (k == m->held_last)
			m->held_last = NULL;
		DL_DELETE(m->fifo, k);
		HASH_DEL(m->table, k);
		m->n--;
		m->working = true;
		/* a search waits (for this key, or for it to be done
		 * with): at the daemon's priority */
		bool redo = m->redo, failed, urgent = m->waiters > 0;
		pthread_mutex_unlock(&m->mu);
		uint64_t lsn = 0;
		int rc = embed_one(db, m, k, x, redo, urgent, &lsn, &failed);
		pthread_mutex_lock(&m->mu);
		if (lsn && !m->logged)
			m->logged_at = eng_mono_ns();
		if (lsn)
			m->logged = lsn;
		m->working = false;
		/* a program's failure sends the key back to the queue
		 * (EINPROGRESS): the redo is not over until it is done,
		 * with a vector or given up and marked */
		if (failed && rc != EINPROGRESS)
			m->redo_failed = true;
		if (rc == EAGAIN || rc == EINPROGRESS) {
			/* no search waits meanwhile */
			m->hold_until = rc == EINPROGRESS
						? m->run_ready
						: eng_mono_ns() + 1000000000;
			wake_waiters(m, true);
			/* degraded: the key goes back, and the thread waits
			 * a second (or a stop) before it tries again; the
			 * program failed: to the back of the queue, and a
			 * wait for its back-off */
			struct ekey *dup;
			HASH_FIND(hh, m->table, k->key, k->keylen, dup);
			if (dup) {
				ticket_done(m, k);
			} else {
				ticket_late(m, k);
				HASH_ADD(hh, m->table, key[0], k->keylen, k);
				if (rc == EAGAIN)
					DL_PREPEND(m->fifo, k);
				else
					DL_APPEND(m->fifo, k);
				m->n++;
				k = NULL;
			}
			wait_until(m, m->hold_until);
		}
		if (k)
			ticket_done(m, k);
		free(k);
	}
	pthread_mutex_unlock(&m->mu);
	if (m->cthr_up) {
		pthread_mutex_lock(&m->cmu);
		m->cstop = true;
		pthread_cond_broadcast(&m->ccond);
		pthread_mutex_unlock(&m->cmu);
		pthread_join(m->cthr, NULL);
		/* a request given up on before the thread took it */
		t4dx_blob_unref(m->c);
		m->c = NULL;
	}
	free(m->cx);
	m->cx = NULL;
	free(x);
	return NULL;
}

int eng_embedder_start(struct t4dx *db)
{
	const struct t4dx_config *cfg = &db->cfg;
	bool cmd = !strcmp(cfg->vector.embedder, "command");
	if (strcmp(cfg->vector.embedder, "builtin") && !cmd)
		return 0;
	struct eng_embedder *m = calloc(1, sizeof(*m));
	if (!m)
		return ENOMEM;
	if (cmd) {
		int rc = t4dx_embed_cmd_new(cfg->vector.command,
					    cfg->vector.dim,
					    cfg->vector.timeout_s, &m->cmd);
		if (rc) {
			free(m);
			return rc;
		}
		t4dx_embed_cmd_set_start_timeout(m->cmd,
						 cfg->vector.start_timeout_s);
	}
	pthread_mutex_init(&m->mu, NULL);
	/* wait_until and computed() wait on them for a time: a wall
	 * clock set back must not stretch that */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_mutex_init(&m->cmu, NULL);
	pthread_cond_init(&m->ccond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&m->run_mu, NULL);
	m->done = true;         /* the computing thread is idle */
	m->sweep = true;
	m->max = EMB_QUEUE_MAX;
	/* tests: a small queue, to have more files than it holds */
	const char *qmax = getenv("T4DX_TEST_EMBED_QUEUE_MAX");
	if (qmax && atoi(qmax) > 0)
		m->max = (size_t)atoi(qmax);
	/* tests: how long writes hold the thread back */
	m->cap = (int64_t)(cfg->vector.defer_s * 1e9);
	const char *ms = getenv("T4DX_TEST_EMBED_DEFER_MS");
	m->defer = (ms ? atoi(ms) : EMB_DEFER_MS) * MS;
	/* a search waits for vectors at most this long, and never longer
	 * than one request to the program may take */
	m->search_wait = EMB_SEARCH_WAIT_MS * MS;
	if (cmd && cfg->vector.timeout_s * 1e9 < (double)m->search_wait)
		m->search_wait = (int64_t)(cfg->vector.timeout_s * 1e9);
	/* the builtin embedder by its version, a program by its argv */
	int n = cmd ? snprintf(m->state, sizeof(m->state),
			       "{\"embedder\":\"command\",\"command\":%s,"
			       "\"dim\":%u}\n", cfg->vector.command,
			       cfg->vector.dim)
		    : snprintf(m->state, sizeof(m->state),
			       "{\"embedder\":\"builtin\",\"version\":%d,"
			       "\"dim\":%u}\n", T4DX_EMBED_VERSION,
			       cfg->vector.dim);
	m->state_len = (size_t)n;
	m->redo = m->redo_sweep = !state_same(db, m);
	if (m->redo)
		state_mark_redo(db, m);
	atomic_store(&db->emb_named, true);     /* flushes may embed */
	db->emb = m;
	int rc = pthread_create(&m->thr, NULL, embedder_main, db);
	if (rc) {
		db->emb = NULL;
		t4dx_embed_cmd_free(m->cmd);
		pthread_mutex_destroy(&m->run_mu);
		pthread_cond_destroy(&m->ccond);
		pthread_mutex_destroy(&m->cmu);
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
	wake_waiters(m, true);
	pthread_mutex_unlock(&m->mu);
	if (m->cmd)
		t4dx_embed_cmd_cancel(m->cmd);  /* a request under way */
	pthread_join(m->thr, NULL);
	t4dx_embed_cmd_free(m->cmd);
	db->emb = NULL;
	struct ekey *k, *t;
	DL_FOREACH_SAFE(m->fifo, k, t) {
		DL_DELETE(m->fifo, k);
		HASH_DEL(m->table, k);
		free(k);
	}
	pthread_mutex_destroy(&m->run_mu);
	pthread_cond_destroy(&m->ccond);
	pthread_mutex_destroy(&m->cmu);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

int t4dx_embed_text(struct t4dx *db, const void *text, size_t len,
		    float *out, char *why, size_t whylen)
{
	struct eng_embedder *m = db->emb;
	uint32_t dim = db->cfg.vector.dim;
	if (whylen)
		why[0] = 0;
	if (!strcmp(db->cfg.vector.embedder, "builtin"))
		return t4dx_embed(text, len, dim, out);
	if (!m || !m->cmd) {
		snprintf(why, whylen, "%s",
			 strcmp(db->cfg.vector.embedder, "command")
				 ? "the store's vectors come from no embedder"
				 : "the embedder program is not running (a "
				   "read-only store)");
		return ENOTSUP;
	}
	if (t4dx_embed_is_binary(text, len))
		return ENODATA;
	/* wait for the request under way (a file's, or another query's)
	 * within vector.timeout_s, not for every query queued before this
	 * one: several shells asking at once would each wait for all */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	double t = db->cfg.vector.timeout_s;
	until.tv_sec += (time_t)t;
	until.tv_nsec += (long)((t - (double)(time_t)t) * 1e9);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	int lrc = pthread_mutex_timedlock(&m->run_mu, &until);
	if (lrc) {
		snprintf(why, whylen, "the embedder program is busy with "
			 "other requests (more than vector.timeout_s)");
		return lrc == ETIMEDOUT ? EAGAIN : lrc;
	}
	/* not held back by a back-off that a file's failures made: a
	 * content the program always fails on would take text search
	 * away for as long as it is there */
	int rc = t4dx_embed_cmd_run_now(m->cmd, text, len, out, why, whylen);
	uint64_t starts = t4dx_embed_cmd_starts(m->cmd);
	uint64_t answers = t4dx_embed_cmd_answers(m->cmd);
	pthread_mutex_unlock(&m->run_mu);
	pthread_mutex_lock(&m->mu);
	if (starts > m->st.starts)
		m->st.starts = starts;
	if (!rc)
		m->answers++;           /* see embed_one */
	if (rc && rc != ENODATA && rc != EAGAIN && rc != ECANCELED)
		m->st.failed++;
	note_program(m, rc, whylen ? why : "", answers);
	pthread_mutex_unlock(&m->mu);
	if (rc == EAGAIN)
		snprintf(why, whylen, "the embedder program failed lately "
			 "and is started again after a back-off");
	else if (rc && rc != ENODATA && rc != ECANCELED)
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"the embedder program (vector.command) %s; "
				"it is started again after a back-off", why);
	return rc;
}

void t4dx_embed_cancel(struct t4dx *db)
{
	struct eng_embedder *m = db->emb;
	if (m && m->cmd)
		t4dx_embed_cmd_cancel(m->cmd);
}

void t4dx_embed_stats(struct t4dx *db, struct t4dx_embed_stats *out)
{
	struct eng_embedder *m = db->emb;
	memset(out, 0, sizeof(*out));
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	*out = m->st;
	out->embedded += atomic_load(&db->flush_embedded);
	out->no_vector += atomic_load(&db->flush_tried);
	out->flush_left = atomic_load(&db->flush_left);
	out->queued = m->n;
	out->waiting = m->waiters;
	out->busy = m->n || m->sweep || m->working || m->redo ||
		    m->redo_sweep || m->logged;
	pthread_mutex_unlock(&m->mu);
}

int t4dx_embed_wait(struct t4dx *db, uint64_t *pending)
{
	struct eng_embedder *m = db->emb;
	*pending = 0;
	if (!m)
		return 0;
	struct ewaiter w = { .next = NULL };
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca))
		return ENOMEM;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&w.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		return rc;
	pthread_mutex_lock(&m->mu);
	w.target = m->seq;
	int64_t now = eng_mono_ns(), until = now + m->search_wait;
	bool wait = !m->stop && m->hold_until <= now && m->tickets &&
		    m->tickets->seq <= w.target;
	if (wait) {
		w.next = m->wlist;
		m->wlist = &w;
		if (!m->waiters++)
			pthread_cond_signal(&m->cond);  /* no holding back */
	}
	while (wait && !m->stop && m->hold_until <= now && m->tickets &&
	       m->tickets->seq <= w.target && now < until) {
		struct timespec ts = { until / 1000000000, until % 1000000000 };
		pthread_cond_timedwait(&w.cond, &m->mu, &ts);
		now = eng_mono_ns();
	}
	if (wait) {
		struct ewaiter **p = &m->wlist;
		while (*p != &w)
			p = &(*p)->next;
		*p = w.next;
		m->waiters--;
	}
	/* what is not in yet: the keys an earlier search gave up on, and
	 * this one's, which no later search waits for (a query's ls -l
	 * looks its answer up once per link) */
	uint64_t n = m->nlate + m->ndropped + m->ncovered;
	struct ekey *k;
	bool moved = false;
	if (m->hold_until > now) {
		/* a back-off or a degraded store, not a bound: counted, but
		 * the searches after it wait for them */
		for (k = m->tickets; k && k->seq <= w.target; k = k->snext)
			n++;
	}
	while (m->hold_until <= now && (k = m->tickets) &&
	       k->seq <= w.target) {
		DL_DELETE2(m->tickets, k, sprev, snext);
		DL_APPEND2(m->late, k, sprev, snext);
		k->late = true;
		m->nlate++;
		n++;
		moved = true;
	}
	/* the head moved: a search that began later, waiting for no more
	 * than these, is done too */
	if (moved && m->wlist)
		wake_waiters(m, false);
	pthread_mutex_unlock(&m->mu);
	pthread_cond_destroy(&w.cond);
	*pending = n;
	return 0;
}
