/*
 * breaker.c - the circuit breaker (see breaker.h, DESIGN.md section 5).
 *
 * All state sits under b->mu.  A call changes the state at most once, so
 * each entry point notes the one transition it made (if any) in a struct
 * pending and calls notify after unlocking: the callback raises alerts and
 * may take other locks, and must be free to call t4dx_breaker_get().  Two
 * threads' notifications may therefore arrive in either order; each one
 * carries its own from/to.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "breaker.h"
#include "buf.h"
#include "t4dx.h"

struct t4dx_breaker {
	pthread_mutex_t mu;
	struct t4dx_breaker_cfg cfg;            /* fixed after new */
	int64_t timeout_ns;                     /* cfg.reset_timeout_s in ns */
	t4dx_clock_fn clock;
	void *clock_arg;
	t4dx_breaker_notify_fn notify;
	void *notify_arg;
	/* guarded by mu: */
	enum t4dx_breaker_state state;
	bool forced;
	unsigned fails, succs;                  /* consecutive */
	unsigned trials;                        /* trial calls let through
	                                           in HALF_OPEN and not yet
	                                           reported */
	int64_t opened_ns;                      /* monotonic, when OPEN began */
	int64_t last_transition_ns;             /* wall clock */
	uint64_t calls, failures, rejections, transitions;
};

struct pending {
	int from, to;                   /* from < 0: nothing to report */
	char why[128];
};

static int64_t mono_ns(void *arg)
{
	(void)arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void errtext(char *out, size_t len, int err)
{
	if (err > 0) {
		char tmp[64];
		snprintf(out, len, "%s", strerror_r(err, tmp, sizeof(tmp)));
	} else {
		snprintf(out, len, "%s", t4dx_strerror(err));
	}
}

/* Caller holds b->mu.  The trial count starts afresh in every state; the
 * failure count needs no reset on closing, as only a success (which zeroes
 * it) or reset() can close the breaker. */
static void move(struct t4dx_breaker *b, struct pending *p,
		 enum t4dx_breaker_state to, const char *why)
{
	p->from = (int)b->state;
	p->to = (int)to;
	snprintf(p->why, sizeof(p->why), "%s", why);
	b->state = to;
	b->succs = 0;
	b->trials = 0;
	if (to == T4DX_OPEN)
		b->opened_ns = b->clock(b->clock_arg);
	b->last_transition_ns = t4dx_now_ns();
	b->transitions++;
}

static void unlock_and_notify(struct t4dx_breaker *b, const struct pending *p)
{
	pthread_mutex_unlock(&b->mu);
	if (p->from >= 0 && b->notify)
		b->notify(b->notify_arg, p->from, p->to, p->why);
}

struct t4dx_breaker *t4dx_breaker_new(const struct t4dx_breaker_cfg *cfg,
				      t4dx_clock_fn clock, void *clock_arg,
				      t4dx_breaker_notify_fn notify,
				      void *notify_arg)
{
	/* The upper bound keeps timeout_ns in int64; config allows a day. */
	if (!cfg->failure_threshold || !cfg->success_threshold ||
	    !(cfg->reset_timeout_s > 0 && cfg->reset_timeout_s <= 1e9)) {
		errno = EINVAL;
		return NULL;
	}
	struct t4dx_breaker *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (pthread_mutex_init(&b->mu, NULL)) {
		free(b);
		errno = ENOMEM;
		return NULL;
	}
	b->cfg = *cfg;
	b->timeout_ns = (int64_t)(cfg->reset_timeout_s * 1e9 + 0.5);
	b->clock = clock ? clock : mono_ns;
	b->clock_arg = clock_arg;
	b->notify = notify;
	b->notify_arg = notify_arg;
	b->state = T4DX_CLOSED;
	return b;
}

void t4dx_breaker_free(struct t4dx_breaker *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->mu);
	free(b);
}

bool t4dx_breaker_allow(struct t4dx_breaker *b)
{
	struct pending p = { .from = -1 };
	bool ok = true;
	pthread_mutex_lock(&b->mu);
	if (b->state == T4DX_OPEN) {
		if (!b->forced &&
		    b->clock(b->clock_arg) - b->opened_ns >= b->timeout_ns) {
			char why[64];
			snprintf(why, sizeof(why),
				 "reset timeout of %gs passed",
				 b->cfg.reset_timeout_s);
			move(b, &p, T4DX_HALF_OPEN, why);
		} else {
			ok = false;
		}
	}
	/* HALF_OPEN lets through at most as many trial calls at once as it
	 * needs successes; the rest fail fast until those report.  (Should a
	 * trial never report, the health probe's results still move the
	 * state.) */
	if (ok && b->state == T4DX_HALF_OPEN) {
		if (b->trials >= b->cfg.success_threshold)
			ok = false;
		else
			b->trials++;
	}
	if (ok)
		b->calls++;
	else
		b->rejections++;
	unlock_and_notify(b, &p);
	return ok;
}

bool t4dx_breaker_is_failure(int err)
{
	/* Everything but success and the caller's own mistakes counts: an
	 * errno nobody foresaw on the commit path is more likely a sick disk
	 * than a bad request, and opening wrongly costs less than writing
	 * on. */
	switch (err) {
	case 0:
	case T4DX_ENOTFOUND:
	case EINVAL: case ENOENT: case EEXIST: case EFBIG: case ENAMETOOLONG:
	case EPERM: case ENOTDIR: case EISDIR: case ENOTEMPTY: case EACCES:
		return false;
	default:
		return true;
	}
}

void t4dx_breaker_record(struct t4dx_breaker *b, int err)
{
	struct pending p = { .from = -1 };
	char why[96], e[64];
	bool fail = t4dx_breaker_is_failure(err);
	if (err && !fail)
		return;         /* the caller's own mistake: nothing of the disk */
	pthread_mutex_lock(&b->mu);
	if (fail) {
		b->failures++;
		b->fails++;
		errtext(e, sizeof(e), err);
		if (b->state == T4DX_CLOSED &&
		    b->fails >= b->cfg.failure_threshold) {
			snprintf(why, sizeof(why),
				 "%u consecutive failures, last: %s", b->fails,
				 e);
			move(b, &p, T4DX_OPEN, why);
		} else if (b->state == T4DX_HALF_OPEN) {
			snprintf(why, sizeof(why), "trial call failed: %s", e);
			move(b, &p, T4DX_OPEN, why);
		}
		/* In OPEN this is a straggler allowed before the breaker
		 * opened: counted, but the timeout is not restarted. */
	} else {
		b->fails = 0;
		if (b->state == T4DX_HALF_OPEN &&
		    ++b->succs >= b->cfg.success_threshold) {
			snprintf(why, sizeof(why), "%u trial calls succeeded",
				 b->succs);
			move(b, &p, T4DX_CLOSED, why);
		}
	}
	unlock_and_notify(b, &p);
}

void t4dx_breaker_done(struct t4dx_breaker *b)
{
	pthread_mutex_lock(&b->mu);
	if (b->state == T4DX_HALF_OPEN && b->trials)
		b->trials--;
	pthread_mutex_unlock(&b->mu);
}

void t4dx_breaker_probe_ok(struct t4dx_breaker *b)
{
	struct pending p = { .from = -1 };
	pthread_mutex_lock(&b->mu);
	if (b->state == T4DX_OPEN && !b->forced)
		move(b, &p, T4DX_HALF_OPEN, "health probe passed");
	unlock_and_notify(b, &p);
}

void t4dx_breaker_force_open(struct t4dx_breaker *b)
{
	struct pending p = { .from = -1 };
	pthread_mutex_lock(&b->mu);
	b->forced = true;
	if (b->state != T4DX_OPEN)
		move(b, &p, T4DX_OPEN, "forced open by the operator");
	unlock_and_notify(b, &p);
}

static void close_now(struct t4dx_breaker *b, bool unforce, const char *why)
{
	struct pending p = { .from = -1 };
	pthread_mutex_lock(&b->mu);
	if (b->forced && !unforce) {
		pthread_mutex_unlock(&b->mu);
		return;
	}
	b->forced = false;
	b->fails = b->succs = 0;
	if (b->state != T4DX_CLOSED)
		move(b, &p, T4DX_CLOSED, why);
	unlock_and_notify(b, &p);
}

void t4dx_breaker_reset(struct t4dx_breaker *b)
{
	close_now(b, true, "reset by the operator");
}

void t4dx_breaker_close_because(struct t4dx_breaker *b, const char *why)
{
	close_now(b, false, why);
}

void t4dx_breaker_get(struct t4dx_breaker *b, struct t4dx_breaker_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&b->mu);
	out->state = b->state;
	out->forced = b->forced;
	out->consecutive_failures = b->fails;
	out->consecutive_successes = b->succs;
	out->cfg = b->cfg;
	out->last_transition_ns = b->last_transition_ns;
	if (b->state == T4DX_OPEN && b->forced) {
		out->next_half_open_s = -1;
	} else if (b->state == T4DX_OPEN) {
		int64_t left = b->opened_ns + b->timeout_ns -
			       b->clock(b->clock_arg);
		out->next_half_open_s = left > 0 ? (double)left / 1e9 : 0;
	}
	out->calls = b->calls;
	out->failures = b->failures;
	out->rejections = b->rejections;
	out->transitions = b->transitions;
	pthread_mutex_unlock(&b->mu);
}

const char *t4dx_breaker_state_name(int state)
{
	switch (state) {
	case T4DX_CLOSED: return "CLOSED";
	case T4DX_OPEN: return "OPEN";
	case T4DX_HALF_OPEN: return "HALF_OPEN";
	default: return "unknown";
	}
}
