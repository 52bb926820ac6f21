/* test_breaker.c - every transition of the circuit breaker, driven by a fake
 * clock, its counters and notifications, and a multi-threaded smoke test. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "breaker.h"
#include "buf.h"
#include "t4dx.h"
#include "unit.h"

#define SEC 1000000000LL

static atomic_llong fake_now;

static int64_t fake_clock(void *arg)
{
	(void)arg;
	return atomic_load(&fake_now);
}

/* Notifications seen; each one also reads the breaker back, which would
 * deadlock (and trip the alarm) if notify ran under the breaker's lock. */
struct seen {
	struct t4dx_breaker *b;
	int n, from[16], to[16], state_then[16];
	char why[16][128];
};

static void on_notify(void *arg, int from, int to, const char *why)
{
	struct seen *s = arg;
	if (s->n < 16) {
		struct t4dx_breaker_info in;
		t4dx_breaker_get(s->b, &in);
		s->from[s->n] = from;
		s->to[s->n] = to;
		s->state_then[s->n] = (int)in.state;
		snprintf(s->why[s->n], sizeof(s->why[0]), "%s", why ? why : "");
	}
	s->n++;
}

static struct t4dx_breaker *mk(struct seen *s, unsigned fail, unsigned succ,
			       double timeout)
{
	struct t4dx_breaker_cfg cfg = { fail, succ, timeout };
	memset(s, 0, sizeof(*s));
	atomic_store(&fake_now, 1000 * SEC);
	s->b = t4dx_breaker_new(&cfg, fake_clock, NULL, on_notify, s);
	REQUIRE(s->b);
	return s->b;
}

static struct t4dx_breaker_info info(struct t4dx_breaker *b)
{
	struct t4dx_breaker_info in;
	t4dx_breaker_get(b, &in);
	return in;
}

/* The last notification was from -> to, the state was already "to" when
 * it came, and it says why. */
static void check_note(const struct seen *s, int n, int from, int to)
{
	CHECK_EQ_INT(s->n, n);
	if (s->n != n || n == 0)
		return;
	CHECK_EQ_INT(s->from[n - 1], from);
	CHECK_EQ_INT(s->to[n - 1], to);
	CHECK_EQ_INT(s->state_then[n - 1], to);
	CHECK(s->why[n - 1][0] != '\0');
}

static void fail_n(struct t4dx_breaker *b, int n, int err)
{
	for (int i = 0; i < n; i++) {
		CHECK(t4dx_breaker_allow(b));
		t4dx_breaker_record(b, err);
		t4dx_breaker_done(b);
	}
}

static void test_new(void)
{
	struct t4dx_breaker_cfg bad[] = { { 0, 1, 1 }, { 1, 0, 1 }, { 1, 1, 0 },
					  { 1, 1, -1 } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		errno = 0;
		CHECK(!t4dx_breaker_new(&bad[i], NULL, NULL, NULL, NULL));
		CHECK_EQ_INT(errno, EINVAL);
	}
	/* the real monotonic clock, no notify */
	struct t4dx_breaker_cfg cfg = { 1, 1, 3600 };
	struct t4dx_breaker *b = t4dx_breaker_new(&cfg, NULL, NULL, NULL, NULL);
	REQUIRE(b);
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.state, T4DX_CLOSED);
	CHECK_EQ_INT(in.last_transition_ns, 0);
	CHECK(in.next_half_open_s == 0);
	CHECK(in.cfg.failure_threshold == 1 && in.cfg.reset_timeout_s == 3600);
	t4dx_breaker_record(b, EIO);
	in = info(b);
	CHECK_EQ_INT(in.state, T4DX_OPEN);
	CHECK(in.next_half_open_s > 3590 && in.next_half_open_s <= 3600);
	CHECK(!t4dx_breaker_allow(b));
	t4dx_breaker_free(b);
	t4dx_breaker_free(NULL);
}

static void test_opens_at_threshold(void)
{
	struct seen s;
	struct t4dx_breaker *b = mk(&s, 3, 2, 10);
	fail_n(b, 2, EIO);
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.state, T4DX_CLOSED);
	CHECK_EQ_INT(in.consecutive_failures, 2);
	CHECK_EQ_INT(s.n, 0);
	int64_t before = t4dx_now_ns();
	fail_n(b, 1, ENOSPC);
	int64_t after = t4dx_now_ns();
	in = info(b);
	CHECK_EQ_INT(in.state, T4DX_OPEN);
	CHECK(!in.forced);
	check_note(&s, 1, T4DX_CLOSED, T4DX_OPEN);
	CHECK(strstr(s.why[0], "3 consecutive") != NULL);
	CHECK(in.last_transition_ns >= before);
	CHECK(in.last_transition_ns <= after);
	CHECK(in.next_half_open_s == 10);
	CHECK_EQ_INT(in.calls, 3);
	CHECK_EQ_INT(in.failures, 3);
	CHECK_EQ_INT(in.transitions, 1);
	t4dx_breaker_free(b);
}

static void test_success_resets_count(void)
{
	struct seen s;
	struct t4dx_breaker *b = mk(&s, 3, 2, 10);
	fail_n(b, 2, EIO);
	fail_n(b, 1, 0);
	CHECK_EQ_INT(info(b).consecutive_failures, 0);
	fail_n(b, 2, EROFS);
	CHECK_EQ_INT(info(b).state, T4DX_CLOSED);
	fail_n(b, 1, EDQUOT);
	CHECK_EQ_INT(info(b).state, T4DX_OPEN);
	CHECK_EQ_INT(info(b).failures, 5);
	check_note(&s, 1, T4DX_CLOSED, T4DX_OPEN);
	t4dx_breaker_free(b);
}

static void test_timeout(void)
{
	struct seen s;
	struct t4dx_breaker *b = mk(&s, 1, 2, 0.5);
	int64_t t0 = atomic_load(&fake_now);
	fail_n(b, 1, EIO);
	CHECK(!t4dx_breaker_allow(b));
	atomic_store(&fake_now, t0 + SEC / 5);
	CHECK(info(b).next_half_open_s == 0.3);
	atomic_store(&fake_now, t0 + SEC / 2 - 1);
	CHECK(!t4dx_breaker_allow(b));
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.state, T4DX_OPEN);
	CHECK(in.next_half_open_s == 1e-9);
	CHECK_EQ_INT(in.rejections, 2);
	CHECK_EQ_INT(in.calls, 1);
	/* get alone does not move the state, even past the timeout */
	atomic_store(&fake_now, t0 + SEC / 2);
	in = info(b);
	CHECK_EQ_INT(in.state, T4DX_OPEN);
	CHECK(in.next_half_open_s == 0);
	CHECK(t4dx_breaker_allow(b));
	in = info(b);
	CHECK_EQ_INT(in.state, T4DX_HALF_OPEN);
	CHECK(in.next_half_open_s == 0);
	CHECK_EQ_INT(in.calls, 2);
	CHECK_EQ_INT(in.rejections, 2);
	check_note(&s, 2, T4DX_OPEN, T4DX_HALF_OPEN);
	/* HALF_OPEN lets through as many trials as it needs successes (2):
	 * the call that moved it, and one more */
	CHECK(t4dx_breaker_allow(b));
	CHECK(!t4dx_breaker_allow(b));
	CHECK_EQ_INT(info(b).calls, 3);
	CHECK_EQ_INT(s.n, 2);
	t4dx_breaker_free(b);
}

static void to_half_open(struct seen *s, struct t4dx_breaker *b)
{
	fail_n(b, (int)info(b).cfg.failure_threshold, EIO);
	REQUIRE(info(b).state == T4DX_OPEN);
	atomic_fetch_add(&fake_now, 10 * SEC);
	REQUIRE(t4dx_breaker_allow(b));
	REQUIRE(info(b).state == T4DX_HALF_OPEN);
	(void)s;
}

static void test_half_open_closes(void)
{
	struct seen s;
	struct t4dx_breaker *b = mk(&s, 2, 3, 10);
	to_half_open(&s, b);
	t4dx_breaker_record(b, 0);
	t4dx_breaker_done(b);
	fail_n(b, 1, 0);
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.state, T4DX_HALF_OPEN);
	CHECK_EQ_INT(in.consecutive_successes, 2);
	CHECK_EQ_INT(s.n, 2);
	fail_n(b, 1, 0);
	in = info(b);
	CHECK_EQ_INT(in.state, T4DX_CLOSED);
	CHECK_EQ_INT(in.consecutive_successes, 0);
	CHECK_EQ_INT(in.consecutive_failures, 0);
	CHECK(in.next_half_open_s == 0);
	check_note(&s, 3, T4DX_HALF_OPEN, T4DX_CLOSED);
	CHECK_EQ_INT(in.transitions, 3);
	/* closed again: the full threshold is needed to reopen */
	fail_n(b, 1, EIO);
	CHECK_EQ_INT(info(b).state, T4DX_CLOSED);
	fail_n(b, 1, EIO);
	CHECK_EQ_INT(info(b).state, T4DX_OPEN);
	t4dx_breaker_free(b);
}

/* HALF_OPEN admits only as many trial calls as it needs successes. */
static void test_half_open_limits_trials(void)
{
	struct seen s;
	struct t4dx_breaker *b = mk(&s, 2, 3, 10);
	to_half_open(&s, b);            /* its allow() was trial 1 */
	CHECK(t4dx_breaker_allow(b));   /* 2 */
	CHECK(t4dx_breaker_allow(b));   /* 3 */
	uint64_t rej = info(b).rejections;
	CHECK(!t4dx_breaker_allow(b));
	CHECK_EQ_INT(info(b).rejections, rej + 1);
	CHECK_EQ_INT(info(b).state, T4DX_HALF_OPEN);
	/* a call that ends frees its place, whatever its result (a user
	 * error is no success) */
	t4dx_breaker_record(b, ENOENT);
	CHECK(!t4dx_breaker_allow(b));
	t4dx_breaker_done(b);
	CHECK(t4dx_breaker_allow(b));
	CHECK(!t4dx_breaker_allow(b));
	/* a report frees no place: one group commit reports once for all
	 * the calls that wait for it */
	t4dx_breaker_record(b, 0);
	CHECK(!t4dx_breaker_allow(b));
	/* their successes close it; then calls go through freely */
	for (int i = 0; i < 2; i++)
		t4dx_breaker_record(b, 0);
	CHECK_EQ_INT(info(b).state, T4DX_CLOSED);
	for (int i = 0; i < 10; i++)
		CHECK(t4dx_breaker_allow(b));
	t4dx_breaker_free(b);
}

static void test_half_open_reopens(void)
{
	struct seen s;
	struct t4dx_breaker *b = mk(&s, 2, 2, 10);
	to_half_open(&s, b);
	fail_n(b, 1, 0);
	int64_t t1 = atomic_load(&fake_now);
	fail_n(b, 1, ETIMEDOUT);
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.state, T4DX_OPEN);
	CHECK_EQ_INT(in.consecutive_successes, 0);
	CHECK(in.next_half_open_s == 10);
	check_note(&s, 3, T4DX_HALF_OPEN, T4DX_OPEN);
	/* the timeout restarted at the failure, not at the first opening */
	atomic_store(&fake_now, t1 + 10 * SEC - 1);
	CHECK(!t4dx_breaker_allow(b));
	/* a straggler's failure in OPEN is counted but restarts nothing */
	t4dx_breaker_record(b, EIO);
	CHECK_EQ_INT(info(b).state, T4DX_OPEN);
	CHECK_EQ_INT(s.n, 3);
	atomic_store(&fake_now, t1 + 10 * SEC);
	CHECK(t4dx_breaker_allow(b));
	check_note(&s, 4, T4DX_OPEN, T4DX_HALF_OPEN);
	in = info(b);
	CHECK_EQ_INT(in.failures, 4);
	CHECK_EQ_INT(in.transitions, 4);
	t4dx_breaker_free(b);
}

static void test_user_errors(void)
{
	static const int user[] = { EINVAL, ENOENT, EEXIST, EFBIG,
				    ENAMETOOLONG, EPERM, ENOTDIR, EISDIR,
				    ENOTEMPTY, EACCES, T4DX_ENOTFOUND };
	static const int storage[] = { EIO, ENOSPC, EDQUOT, EROFS, ETIMEDOUT,
				       T4DX_ECORRUPT };
	CHECK(!t4dx_breaker_is_failure(0));
	for (size_t i = 0; i < sizeof(user) / sizeof(*user); i++)
		CHECK(!t4dx_breaker_is_failure(user[i]));
	for (size_t i = 0; i < sizeof(storage) / sizeof(*storage); i++)
		CHECK(t4dx_breaker_is_failure(storage[i]));

	struct seen s;
	struct t4dx_breaker *b = mk(&s, 2, 2, 10);
	/* CLOSED, one failure short of opening: user errors neither open it
	 * nor, as a success would, clear the count */
	fail_n(b, 1, EIO);
	for (size_t i = 0; i < sizeof(user) / sizeof(*user); i++)
		fail_n(b, 1, user[i]);
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.state, T4DX_CLOSED);
	CHECK_EQ_INT(in.consecutive_failures, 1);
	CHECK_EQ_INT(in.failures, 1);
	fail_n(b, 1, EIO);
	CHECK_EQ_INT(info(b).state, T4DX_OPEN);
	/* HALF_OPEN, one success short of closing */
	atomic_fetch_add(&fake_now, 10 * SEC);
	fail_n(b, 1, 0);
	for (size_t i = 0; i < sizeof(user) / sizeof(*user); i++)
		fail_n(b, 1, user[i]);
	in = info(b);
	CHECK_EQ_INT(in.state, T4DX_HALF_OPEN);
	CHECK_EQ_INT(in.consecutive_successes, 1);
	CHECK_EQ_INT(in.failures, 2);
	CHECK_EQ_INT(s.n, 2);
	t4dx_breaker_free(b);
}

static void test_force_open(void)
{
	struct seen s;
	struct t4dx_breaker *b = mk(&s, 3, 2, 10);
	t4dx_breaker_force_open(b);
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.state, T4DX_OPEN);
	CHECK(in.forced);
	CHECK(in.next_half_open_s == -1);
	check_note(&s, 1, T4DX_CLOSED, T4DX_OPEN);
	atomic_fetch_add(&fake_now, 1000000 * SEC);
	CHECK(!t4dx_breaker_allow(b));
	t4dx_breaker_probe_ok(b);
	CHECK(!t4dx_breaker_allow(b));
	t4dx_breaker_record(b, 0);
	in = info(b);
	CHECK_EQ_INT(in.state, T4DX_OPEN);
	CHECK_EQ_INT(in.rejections, 2);
	CHECK_EQ_INT(s.n, 1);
	t4dx_breaker_reset(b);
	in = info(b);
	CHECK_EQ_INT(in.state, T4DX_CLOSED);
	CHECK(!in.forced);
	CHECK(in.next_half_open_s == 0);
	check_note(&s, 2, T4DX_OPEN, T4DX_CLOSED);
	CHECK(t4dx_breaker_allow(b));

	/* forcing an already OPEN breaker is no transition, but pins it */
	fail_n(b, 3, EIO);
	check_note(&s, 3, T4DX_CLOSED, T4DX_OPEN);
	t4dx_breaker_force_open(b);
	CHECK_EQ_INT(s.n, 3);
	CHECK(info(b).forced);
	atomic_fetch_add(&fake_now, 11 * SEC);
	CHECK(!t4dx_breaker_allow(b));
	CHECK_EQ_INT(info(b).state, T4DX_OPEN);

	/* and from HALF_OPEN */
	t4dx_breaker_reset(b);
	to_half_open(&s, b);
	int n = s.n;
	t4dx_breaker_force_open(b);
	check_note(&s, n + 1, T4DX_HALF_OPEN, T4DX_OPEN);
	CHECK(!t4dx_breaker_allow(b));
	t4dx_breaker_free(b);
}

static void test_reset(void)
{
	struct seen s;
	struct t4dx_breaker *b = mk(&s, 3, 3, 10);
	fail_n(b, 2, EIO);
	t4dx_breaker_reset(b);
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.state, T4DX_CLOSED);
	CHECK_EQ_INT(in.consecutive_failures, 0);
	CHECK_EQ_INT(s.n, 0);   /* CLOSED -> CLOSED is no transition */
	fail_n(b, 2, EIO);
	CHECK_EQ_INT(info(b).state, T4DX_CLOSED);
	fail_n(b, 1, EIO);
	CHECK_EQ_INT(info(b).state, T4DX_OPEN);

	/* from HALF_OPEN with a trial success: counters restart too */
	atomic_fetch_add(&fake_now, 10 * SEC);
	fail_n(b, 1, 0);
	CHECK_EQ_INT(info(b).consecutive_successes, 1);
	t4dx_breaker_reset(b);
	in = info(b);
	CHECK_EQ_INT(in.state, T4DX_CLOSED);
	CHECK_EQ_INT(in.consecutive_successes, 0);
	CHECK_EQ_INT(in.consecutive_failures, 0);
	check_note(&s, 3, T4DX_HALF_OPEN, T4DX_CLOSED);
	/* the running totals are Prometheus counters: they never go back */
	CHECK_EQ_INT(in.failures, 5);
	CHECK_EQ_INT(in.calls, 6);
	CHECK_EQ_INT(in.transitions, 3);
	t4dx_breaker_free(b);
}

static void test_probe_ok(void)
{
	struct seen s;
	struct t4dx_breaker *b = mk(&s, 1, 1, 60);
	t4dx_breaker_probe_ok(b);      /* CLOSED: nothing */
	CHECK_EQ_INT(s.n, 0);
	fail_n(b, 1, EIO);
	CHECK(!t4dx_breaker_allow(b));
	t4dx_breaker_probe_ok(b);
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.state, T4DX_HALF_OPEN);
	check_note(&s, 2, T4DX_OPEN, T4DX_HALF_OPEN);
	CHECK(strstr(s.why[1], "probe") != NULL);
	t4dx_breaker_probe_ok(b);      /* HALF_OPEN: nothing */
	CHECK_EQ_INT(s.n, 2);
	CHECK(t4dx_breaker_allow(b));
	t4dx_breaker_record(b, 0);
	t4dx_breaker_done(b);
	CHECK_EQ_INT(info(b).state, T4DX_CLOSED);
	check_note(&s, 3, T4DX_HALF_OPEN, T4DX_CLOSED);
	t4dx_breaker_free(b);
}

static void test_names(void)
{
	CHECK(!strcmp(t4dx_breaker_state_name(T4DX_CLOSED), "CLOSED"));
	CHECK(!strcmp(t4dx_breaker_state_name(T4DX_OPEN), "OPEN"));
	CHECK(!strcmp(t4dx_breaker_state_name(T4DX_HALF_OPEN), "HALF_OPEN"));
	CHECK(!strcmp(t4dx_breaker_state_name(7), "unknown"));
}

/* ---- threads --------------------------------------------------------- */

#define NTHREADS 4
#define ITERS 20000

static atomic_int notes;

static void count_notify(void *arg, int from, int to, const char *why)
{
	(void)arg; (void)why;
	if (from != to)
		atomic_fetch_add(&notes, 1);
}

struct worker {
	struct t4dx_breaker *b;
	unsigned seed;
	uint64_t allowed, rejected, failed;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < ITERS; i++) {
		w->seed = w->seed * 1103515245 + 12345;
		unsigned r = (w->seed >> 16) % 100;
		atomic_fetch_add(&fake_now, SEC / 1000);
		if (r == 0) {
			t4dx_breaker_probe_ok(w->b);
			continue;
		}
		if (!t4dx_breaker_allow(w->b)) {
			w->rejected++;
			continue;
		}
		w->allowed++;
		int err = r < 40 ? EIO : r < 45 ? ENOENT : 0;
		if (err == EIO)
			w->failed++;
		t4dx_breaker_record(w->b, err);
		t4dx_breaker_done(w->b);
	}
	return NULL;
}

static void test_threads(void)
{
	struct t4dx_breaker_cfg cfg = { 3, 2, 0.05 };
	atomic_store(&fake_now, 0);
	atomic_store(&notes, 0);
	struct t4dx_breaker *b = t4dx_breaker_new(&cfg, fake_clock, NULL,
						  count_notify, NULL);
	REQUIRE(b);
	pthread_t t[NTHREADS];
	struct worker w[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .b = b, .seed = (unsigned)i + 1 };
		REQUIRE(pthread_create(&t[i], NULL, work, &w[i]) == 0);
	}
	uint64_t allowed = 0, rejected = 0, failed = 0;
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		allowed += w[i].allowed;
		rejected += w[i].rejected;
		failed += w[i].failed;
	}
	struct t4dx_breaker_info in = info(b);
	CHECK_EQ_INT(in.calls, allowed);
	CHECK_EQ_INT(in.rejections, rejected);
	CHECK_EQ_INT(in.failures, failed);
	CHECK_EQ_INT(in.transitions, atomic_load(&notes));
	CHECK(in.transitions > 10);
	CHECK(rejected > 0);
	t4dx_breaker_free(b);
}

int main(void)
{
	alarm(20);      /* a notify under the lock deadlocks: fail, not hang */
	RUN(test_new);
	RUN(test_opens_at_threshold);
	RUN(test_success_resets_count);
	RUN(test_timeout);
	RUN(test_half_open_closes);
	RUN(test_half_open_reopens);
	RUN(test_half_open_limits_trials);
	RUN(test_user_errors);
	RUN(test_force_open);
	RUN(test_reset);
	RUN(test_probe_ok);
	RUN(test_names);
	RUN(test_threads);
	UNIT_DONE();
}
