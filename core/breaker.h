/*
 * breaker.h - the circuit breaker around the engine's commits.
 *
 * CLOSED: calls go through; failure_threshold consecutive storage failures
 * open it.  OPEN: calls are refused until reset_timeout_s has passed (or a
 * passing health probe), then HALF_OPEN: calls go through as trials;
 * success_threshold successes close it, any failure opens it again.  A
 * success in CLOSED zeroes the failure count.  Storage failures are EIO,
 * ENOSPC, EDQUOT, EROFS, ETIMEDOUT and the like; user errors (EINVAL,
 * ENOENT, EEXIST, EFBIG, ENAMETOOLONG, EPERM, ENOTDIR, EISDIR, ENOTEMPTY,
 * EACCES) count as neither.  "open" forces OPEN until "reset", which
 * returns to CLOSED with zeroed counters.
 *
 * Thread-safe.  The clock is injected (monotonic nanoseconds) so that tests
 * drive time; every transition calls the notify callback (outside the
 * breaker's lock).
 */
#ifndef T4DX_BREAKER_H
#define T4DX_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum t4dx_breaker_state { T4DX_CLOSED = 0, T4DX_OPEN = 1, T4DX_HALF_OPEN = 2 };

struct t4dx_breaker_cfg {
	unsigned failure_threshold;     /* >= 1 */
	unsigned success_threshold;     /* >= 1 */
	double reset_timeout_s;         /* > 0 */
};

typedef int64_t (*t4dx_clock_fn)(void *arg);   /* monotonic ns */
typedef void (*t4dx_breaker_notify_fn)(void *arg, int from, int to,
				       const char *why);

struct t4dx_breaker;

/* clock NULL: CLOCK_MONOTONIC.  notify may be NULL; it is called once per
 * change of state, after the breaker's lock is released (so it may call
 * t4dx_breaker_get), with a short reason that lives only for the call.
 * NULL with errno EINVAL if a threshold is 0 or the timeout is not in
 * (0, 1e9] seconds, ENOMEM if out of memory. */
struct t4dx_breaker *t4dx_breaker_new(const struct t4dx_breaker_cfg *cfg,
				      t4dx_clock_fn clock, void *clock_arg,
				      t4dx_breaker_notify_fn notify,
				      void *notify_arg);
void t4dx_breaker_free(struct t4dx_breaker *b);

/* May a call go through now?  In OPEN, once the reset timeout has passed
 * (and the breaker is not forced open) this moves to HALF_OPEN and says
 * yes; otherwise it counts a rejection and says no.  In HALF_OPEN at most
 * success_threshold calls are let through at once: each one that was
 * let through (true) must end with t4dx_breaker_done(). */
bool t4dx_breaker_allow(struct t4dx_breaker *b);
/* A call let through by t4dx_breaker_allow() has ended, whatever its
 * result: its place among HALF_OPEN's trial calls is free. */
void t4dx_breaker_done(struct t4dx_breaker *b);
/* Report the result of an attempt on the disk (one group commit, however
 * many calls wait for it): 0 for success, else the errno (or negative
 * T4DX_E code) it failed with; user errors are ignored.  A failure
 * reported while OPEN (a call let through before it opened) is counted
 * but does not restart the timeout. */
void t4dx_breaker_record(struct t4dx_breaker *b, int err);
/* True for errors that count as storage failures: every non-zero code
 * but the user errors listed above and T4DX_ENOTFOUND. */
bool t4dx_breaker_is_failure(int err);
/* A health probe succeeded: an OPEN breaker (not forced) may try
 * HALF_OPEN now, without waiting for the timeout. */
void t4dx_breaker_probe_ok(struct t4dx_breaker *b);
/* OPEN and pinned there: no timeout or probe moves it until reset. */
void t4dx_breaker_force_open(struct t4dx_breaker *b);
/* CLOSED, unpinned, consecutive counts zeroed.  The running totals
 * (calls, failures, rejections, transitions) are Prometheus counters and
 * never go back. */
void t4dx_breaker_reset(struct t4dx_breaker *b);
/* The same when the engine itself has repaired the cause (why is the
 * transition's reason), unless the operator forced it open. */
void t4dx_breaker_close_because(struct t4dx_breaker *b, const char *why);

struct t4dx_breaker_info {
	enum t4dx_breaker_state state;
	bool forced;
	unsigned consecutive_failures, consecutive_successes;
	struct t4dx_breaker_cfg cfg;
	int64_t last_transition_ns;     /* wall clock, 0 if never */
	double next_half_open_s;        /* seconds until HALF_OPEN may be
	                                   tried; 0 unless OPEN; -1 if forced */
	uint64_t calls, failures, rejections, transitions;   /* totals */
};
/* A consistent snapshot; does not move the state (allow() does). */
void t4dx_breaker_get(struct t4dx_breaker *b, struct t4dx_breaker_info *out);
/* "CLOSED", "OPEN", "HALF_OPEN" (DESIGN.md's spelling), else "unknown". */
const char *t4dx_breaker_state_name(int state);

#endif
