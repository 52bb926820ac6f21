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
 * What the daemon's .ctl/breaker uses (the state, a snapshot, force open,
 * reset) is in t4dx.h; this header is the engine's side.
 *
 * Thread-safe.  The clock is injected (monotonic nanoseconds) so that tests
 * drive time; every transition calls the notify callback (outside the
 * breaker's lock).
 */
#ifndef T4DX_BREAKER_H
#define T4DX_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "t4dx.h"

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
/* The same when the engine itself has repaired the cause (why is the
 * transition's reason), unless the operator forced it open. */
void t4dx_breaker_close_because(struct t4dx_breaker *b, const char *why);

#endif
