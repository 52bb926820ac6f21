/*
 * test_embed_wait.c - t4dx_embed_wait, the call a search makes first: it
 * returns once the files put before it have their embedder's outcome,
 * whatever holds the embedder back for writers, within its bound, at
 * once with embedder "off" or for a start's sweep, and it sends each
 * search back with how many files it did not wait for.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine_int.h"
#include "faults.h"
#include "vec.h"
#include "t4dx.h"
#include "unit.h"

#define R T4DX_ROOT_INO

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* vector.timeout_s of the next open_with */
static double open_timeout = 1;

/* Open dir with embedder (and the program argv for "command", dim 4 and
 * timeout_s open_timeout); hold: writes hold the embedder back for a
 * minute. */
static struct t4dx *open_with(const char *dir, const char *embedder,
			      const char *mode, bool hold)
{
	struct t4dx *db = NULL;
	char msg[256];
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	strcpy(c.vector.embedder, embedder);
	if (mode) {
		const char *src = getenv("T4DX_SRCDIR");
		c.vector.dim = 4;
		c.vector.timeout_s = open_timeout;
		snprintf(c.vector.command, sizeof(c.vector.command),
			 "[\"bash\",\"%s/tests/embed-cmd.sh\",%s]",
			 src ? src : ".", mode);
	}
	if (hold) {
		setenv("T4DX_TEST_EMBED_QUIET_MS", "60000", 1);
		setenv("T4DX_TEST_EMBED_DEFER_MS", "60000", 1);
	}
	int rc = t4dx_open(dir, &c, &db, msg, sizeof(msg));
	unsetenv("T4DX_TEST_EMBED_QUIET_MS");
	unsetenv("T4DX_TEST_EMBED_DEFER_MS");
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
	return db;
}

static int write_file(struct t4dx *db, const char *name, const char *text)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, R, name, strlen(name)) == 0);
	e.mode = S_IFREG | 0644;
	e.content = t4dx_blob_from(text, strlen(text));
	e.size = strlen(text);
	int rc = t4dx_put(db, &e, 0, NULL);
	t4dx_entry_clear(&e);
	return rc;
}

static int src_of(struct t4dx *db, const char *name)
{
	struct t4dx_entry e;
	if (t4dx_get(db, R, name, strlen(name), 0, &e))
		return -1;
	int src = e.vec_src;
	t4dx_entry_clear(&e);
	return src;
}

static void embedder_idle(struct t4dx *db)
{
	struct t4dx_embed_stats st;
	for (int i = 0; i < 60000; i++) {
		t4dx_embed_stats(db, &st);
		if (!st.busy)
			return;
		usleep(1000);
	}
	REQUIRE(!"the embedder never went idle");
}

/* Writes hold the embedder back for a minute: a search does not wait
 * that long, the embedder takes the file at once for it. */
static void test_wait_outranks_writers(void)
{
	const char *dir = unit_tmpdir("ewait");
	struct t4dx *db = open_with(dir, "builtin", NULL, true);
	embedder_idle(db);
	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%d", i);
		REQUIRE(write_file(db, name, "green tea with jasmine") == 0);
		CHECK_EQ_INT(src_of(db, name), T4DX_VEC_NONE);
		uint64_t pending = 99;
		int64_t t0 = now_ms();
		CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
		CHECK(now_ms() - t0 < 1900);
		CHECK_EQ_INT((int)pending, 0);
		CHECK_EQ_INT(src_of(db, name), T4DX_VEC_EMBED);
	}
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Nothing to wait for with embedder "off", nor for the files a start's
 * sweep queues (a store written without vectors). */
static void test_wait_off_and_sweep(void)
{
	const char *dir = unit_tmpdir("ewaitoff");
	struct t4dx *db = open_with(dir, "off", NULL, false);
	char name[16];
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		REQUIRE(write_file(db, name, "a cup of oolong") == 0);
	}
	uint64_t pending = 99;
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK_EQ_INT((int)pending, 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_with(dir, "builtin", NULL, false);
	int64_t t0 = now_ms();
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK(now_ms() - t0 < 500);
	CHECK_EQ_INT((int)pending, 0);
	embedder_idle(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A start's sweep queued 20 files for a program that takes 0.3 s an
 * answer (6 s of work): a search waits only for the file put before it,
 * which the embedder takes ahead of the sweep's. */
static void test_wait_ahead_of_sweep(void)
{
	const char *dir = unit_tmpdir("ewaitsweep");
	struct t4dx *db = open_with(dir, "off", NULL, false);
	char name[16];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		REQUIRE(write_file(db, name, "an old note") == 0);
	}
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_with(dir, "command", "\"slow\",\"0.3\",\"4\"", false);
	struct t4dx_embed_stats st;
	for (int i = 0; i < 10000; i++) {
		t4dx_embed_stats(db, &st);
		if (st.queued >= 15)
			break;
		usleep(1000);
	}
	REQUIRE(st.queued >= 15);
	REQUIRE(write_file(db, "new", "a new note") == 0);
	uint64_t pending = 99;
	int64_t t0 = now_ms();
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK(now_ms() - t0 < 1500);
	CHECK_EQ_INT((int)pending, 0);
	CHECK_EQ_INT(src_of(db, "new"), T4DX_VEC_EMBED);
	t4dx_embed_stats(db, &st);
	CHECK(st.queued >= 5);
	t4dx_embed_cancel(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A program that takes 5 s an answer: the wait ends at its bound
 * (vector.timeout_s, 1 s here) with the file pending, and the next one
 * does not wait for that file again but still counts it. */
static void test_wait_bound(void)
{
	const char *dir = unit_tmpdir("ewaitslow");
	struct t4dx *db = open_with(dir, "command", "\"slow\",\"5\",\"4\"",
				    false);
	REQUIRE(write_file(db, "a", "green tea") == 0);
	uint64_t pending = 0;
	int64_t t0 = now_ms();
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	int64_t took = now_ms() - t0;
	CHECK(took >= 900 && took < 2500);
	CHECK_EQ_INT((int)pending, 1);
	t0 = now_ms();
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK(now_ms() - t0 < 500);
	CHECK_EQ_INT((int)pending, 1);
	t4dx_embed_cancel(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

struct waiter {
	struct t4dx *db;
	int bad, slow;
};

struct timed_wait {
	struct t4dx *db;
	int64_t took;
	uint64_t pending;
};

static void *timed_wait_main(void *arg)
{
	struct timed_wait *t = arg;
	int64_t t0 = now_ms();
	if (t4dx_embed_wait(t->db, &t->pending))
		t->pending = 999;
	t->took = now_ms() - t0;
	return NULL;
}

/* Two searches wait for the same file, which a program takes 10 s to
 * embed (its first answer: vector.start_timeout_s, not timeout_s, bounds
 * it); the bound is 2 s.  The first gives up at its bound and leaves the
 * file to the late list: the second, which began 1 s later, has nothing
 * left to wait for and returns then, not at its own bound 1 s later. */
static void test_wait_giveup_wakes_others(void)
{
	const char *dir = unit_tmpdir("ewaitgive");
	open_timeout = 2;
	struct t4dx *db = open_with(dir, "command", "\"slow\",\"10\",\"4\"",
				    false);
	open_timeout = 1;
	REQUIRE(write_file(db, "a", "green tea") == 0);
	struct timed_wait a = { db, 0, 0 }, c = { db, 0, 0 };
	pthread_t ta, tc;
	REQUIRE(pthread_create(&ta, NULL, timed_wait_main, &a) == 0);
	usleep(1000 * 1000);
	REQUIRE(pthread_create(&tc, NULL, timed_wait_main, &c) == 0);
	pthread_join(ta, NULL);
	pthread_join(tc, NULL);
	CHECK(a.took >= 1900 && a.took < 2600);
	CHECK_EQ_INT((int)a.pending, 1);
	CHECK_EQ_INT((int)c.pending, 1);
	if (c.took >= 1600)
		fprintf(stderr, "the second search waited %lld ms\n",
			(long long)c.took);
	CHECK(c.took < 1600);
	t4dx_embed_cancel(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	for (int i = 0; i < 50; i++) {
		uint64_t pending = 99;
		int64_t t0 = now_ms();
		if (t4dx_embed_wait(w->db, &pending) || pending)
			w->bad++;
		/* done well within the bound: each was woken when its
		 * files were, not left to wait out its 2 s */
		if (now_ms() - t0 >= 1500)
			w->slow++;
	}
	return NULL;
}

/* Many searches waiting at once while a writer never pauses: each
 * returns with its files done. */
static void test_wait_concurrent(void)
{
	const char *dir = unit_tmpdir("ewaitmany");
	struct t4dx *db = open_with(dir, "builtin", NULL, true);
	embedder_idle(db);
	struct waiter w[6];
	pthread_t thr[6];
	char name[16], text[64];
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "w%d", i % 50);
		snprintf(text, sizeof(text), "note %d about the garden", i);
		REQUIRE(write_file(db, name, text) == 0);
		if (i == 20)
			for (int j = 0; j < 6; j++) {
				w[j].db = db;
				w[j].bad = w[j].slow = 0;
				REQUIRE(pthread_create(&thr[j], NULL,
						       waiter_main,
						       &w[j]) == 0);
			}
	}
	for (int j = 0; j < 6; j++) {
		pthread_join(thr[j], NULL);
		CHECK_EQ_INT(w[j].bad, 0);
		CHECK_EQ_INT(w[j].slow, 0);
	}
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Six searches wait at once for the same 3 files, which a program takes
 * 0.2 s each to embed (0.6 s in all; the bound is 2 s): every one of
 * them is woken when the files are in, not only one of them. */
static void test_wait_many_woken(void)
{
	const char *dir = unit_tmpdir("ewaitwoken");
	open_timeout = 2;
	struct t4dx *db = open_with(dir, "command", "\"slow\",\"0.2\",\"4\"",
				    false);
	open_timeout = 1;
	embedder_idle(db);
	REQUIRE(write_file(db, "a", "first note") == 0);
	REQUIRE(write_file(db, "b", "second note") == 0);
	REQUIRE(write_file(db, "c", "third note") == 0);
	struct timed_wait t[6];
	pthread_t thr[6];
	for (int i = 0; i < 6; i++) {
		t[i] = (struct timed_wait){ db, 0, 0 };
		REQUIRE(pthread_create(&thr[i], NULL, timed_wait_main,
				       &t[i]) == 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(thr[i], NULL);
		CHECK_EQ_INT((int)t[i].pending, 0);
		if (t[i].took >= 1500)
			fprintf(stderr, "search %d waited %lld ms\n", i,
				(long long)t[i].took);
		CHECK(t[i].took < 1500);
	}
	CHECK_EQ_INT(src_of(db, "c"), T4DX_VEC_EMBED);
	t4dx_embed_cancel(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A search has the note closed just before it computed first, even when
 * a later search waits too: here the program takes 0.4 s a file and a
 * search waits 2 s at most.  Search A waits for a1..a4, search B, begun
 * just after, for b1..b6 too, while the thread is busy with z for a
 * third search.  Newest of the latest search first gave B its six, 2.4 s
 * in all after z, and A, whose bound ran out first, none of its own. */
static void test_wait_two_searches_newest(void)
{
	const char *dir = unit_tmpdir("ewaittwo");
	open_timeout = 2;
	struct t4dx *db = open_with(dir, "command", "\"slow\",\"0.4\",\"4\"",
				    true);
	open_timeout = 1;
	embedder_idle(db);
	REQUIRE(write_file(db, "z", "a note in hand") == 0);
	struct timed_wait z = { db, 0, 0 }, a = { db, 0, 0 }, b = { db, 0, 0 };
	pthread_t tz, ta, tb;
	REQUIRE(pthread_create(&tz, NULL, timed_wait_main, &z) == 0);
	/* z in hand: the program has it */
	struct t4dx_embed_stats st;
	for (int i = 0; i < 5000; i++) {
		t4dx_embed_stats(db, &st);
		if (!st.queued && st.waiting)
			break;
		usleep(1000);
	}
	REQUIRE(!st.queued && st.waiting);
	char name[16];
	for (int i = 1; i <= 4; i++) {
		snprintf(name, sizeof(name), "a%d", i);
		REQUIRE(write_file(db, name, "a note of the first") == 0);
	}
	REQUIRE(pthread_create(&ta, NULL, timed_wait_main, &a) == 0);
	/* A waits beside z's search before B's files come */
	for (int i = 0; i < 1000; i++) {
		t4dx_embed_stats(db, &st);
		if (st.waiting >= 2)
			break;
		usleep(1000);
	}
	REQUIRE(st.waiting >= 2);
	for (int i = 1; i <= 6; i++) {
		snprintf(name, sizeof(name), "b%d", i);
		REQUIRE(write_file(db, name, "a note of the second") == 0);
	}
	REQUIRE(pthread_create(&tb, NULL, timed_wait_main, &b) == 0);
	pthread_join(ta, NULL);
	int a4 = src_of(db, "a4");
	pthread_join(tb, NULL);
	int b6 = src_of(db, "b6");
	pthread_join(tz, NULL);
	CHECK_EQ_INT(a4, T4DX_VEC_EMBED);
	CHECK_EQ_INT(b6, T4DX_VEC_EMBED);
	t4dx_embed_cancel(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Write file "a" and wait (10 s at most) until the program failed on
 * something: whether it did. */
static bool write_until_failed(struct t4dx *db)
{
	struct t4dx_embed_stats st;
	REQUIRE(write_file(db, "a", "first note") == 0);
	for (int i = 0; i < 10000; i++) {
		t4dx_embed_stats(db, &st);
		if (st.failed >= 1)
			return true;
		usleep(1000);
	}
	return false;
}

/* The program fails once (an outage): for its back-off (1 s) no search
 * waits.  A file closed meanwhile is not waited for by a search then,
 * but the searches after the back-off, with the program up again, wait
 * for it as for any other: the one that did not wait did not give up on
 * it for them. */
static void test_wait_after_backoff(void)
{
	const char *dir = unit_tmpdir("ewaitback");
	char flag[512], mode[1024];
	snprintf(flag, sizeof(flag), "%s.down", dir);
	snprintf(mode, sizeof(mode), "\"slow-down-if\",\"%s\",\"0.5\",\"4\"",
		 flag);
	FILE *f = fopen(flag, "w");
	REQUIRE(f);
	fclose(f);
	open_timeout = 2;
	struct t4dx *db = open_with(dir, "command", mode, false);
	open_timeout = 1;
	embedder_idle(db);
	REQUIRE(write_until_failed(db));
	int64_t failed_at = now_ms();
	unlink(flag);
	/* in the back-off: no wait */
	REQUIRE(write_file(db, "b", "second note") == 0);
	uint64_t pending = 0;
	int64_t t0 = now_ms();
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK(now_ms() - t0 < 300);
	CHECK_EQ_INT((int)pending, 2);
	/* past it: the program answers again, in 0.5 s; this search waits
	 * for b, which the embedder takes ahead of a */
	int64_t wait_ms = failed_at + 1200 - now_ms();
	if (wait_ms > 0)
		usleep((useconds_t)wait_ms * 1000);
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK_EQ_INT(src_of(db, "b"), T4DX_VEC_EMBED);
	t4dx_embed_cancel(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* The wall clock as the library reads it, seconds ahead of the kernel's
 * (test_backoff_wall_clock): as if it were set back by that much just
 * after each deadline taken from it. */
static atomic_long wall_ahead_s;

int clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = (int)syscall(SYS_clock_gettime, id, ts);
	if (!rc && id == CLOCK_REALTIME)
		ts->tv_sec += atomic_load(&wall_ahead_s);
	return rc;
}

/* The program fails once, then answers: the embedder tries the file
 * again after its back-off, by itself (no write, no search wakes it),
 * whatever the wall clock does meanwhile (from review: the embedder's
 * timed waits took their deadline from the wall clock, so one set back
 * by an hour held the retry back for that hour). */
static void test_backoff_wall_clock(void)
{
	const char *dir = unit_tmpdir("ewaitclock");
	char flag[512], mode[1024];
	snprintf(flag, sizeof(flag), "%s.down", dir);
	snprintf(mode, sizeof(mode), "\"down-if\",\"%s\",\"4\"", flag);
	FILE *f = fopen(flag, "w");
	REQUIRE(f);
	fclose(f);
	struct t4dx *db = open_with(dir, "command", mode, false);
	embedder_idle(db);
	atomic_store(&wall_ahead_s, 3600);
	CHECK(write_until_failed(db));
	unlink(flag);
	int src = -1;
	for (int i = 0; i < 1000 && src != T4DX_VEC_EMBED; i++) {
		usleep(10000);
		src = src_of(db, "a");
	}
	CHECK_EQ_INT(src, T4DX_VEC_EMBED);
	atomic_store(&wall_ahead_s, 0);
	t4dx_embed_cancel(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unlink(flag);
	unit_rm_rf(dir);
}

/* per loops at nice 0 a core, which die with this process (a
 * REQUIRE's exit too); hogs_stop kills and reaps them. */
static pid_t hog_pid[64];
static int hog_n;

static void hogs_start_n(int per)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN) * per;
	hog_n = n < 1 ? 1 : n > 64 ? 64 : (int)n;
	for (int i = 0; i < hog_n; i++) {
		pid_t p = fork();
		REQUIRE(p >= 0);
		if (p == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() == 1)
				_exit(0);
			for (volatile unsigned long x = 0;; x++)
				;
		}
		hog_pid[i] = p;
	}
}

static void hogs_start(void)
{
	hogs_start_n(1);
}

static void hogs_stop(void)
{
	for (int i = 0; i < hog_n; i++) {
		kill(hog_pid[i], SIGKILL);
		waitpid(hog_pid[i], NULL, 0);
	}
	hog_n = 0;
}

/* About len bytes of words, which the builtin embedder takes a while
 * over (the caller frees it). */
static char *words(size_t len)
{
	char *text = malloc(len + 64);
	size_t n = 0;
	REQUIRE(text);
	for (unsigned i = 0; n < len; i++)
		n += (size_t)sprintf(text + n, "word%u tea%u ",
				     i * 2654435761u % 100003, i % 977);
	return text;
}

/* A search waits for the files put before it: none left pending at its
 * bound, name's vector the embedder's.  (How long it took is only told:
 * a sanitizer build beside the loops and a parallel make check can come
 * near the bound, and a search that gave up leaves files pending.) */
static void search_in_time(struct t4dx *db, const char *what,
			   const char *name)
{
	uint64_t pending = 99;
	int64_t t0 = now_ms();
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	int64_t took = now_ms() - t0;
	if (took >= 1000 || pending)
		fprintf(stderr, "%s: the search waited %lld ms\n", what,
			(long long)took);
	CHECK_EQ_INT((int)pending, 0);
	CHECK_EQ_INT(src_of(db, name), T4DX_VEC_EMBED);
}

/* A content whose vector takes about 30 ms of CPU (60 under the
 * sanitizers): seconds at nice 19 beside two loops at nice 0 a core
 * (about 0.7% of a core), a fraction of a second at nice 0 beside them
 * and the other tests of a parallel make check. */
#define LARGE_TEXT (256 * 1024)

/* A machine whose every core runs loops at nice 0: a search still has
 * its files computed within its bound.  The builtin embedder's
 * computing thread runs at nice 19, where a large content's vector
 * would take seconds beside the loops, and a program started from it
 * would inherit nice 19 and get next to no CPU: a search has them
 * computed at the daemon's priority. */
static void test_wait_busy_cpu(void)
{
	char *text = words(LARGE_TEXT);
	const char *dir = unit_tmpdir("ewaitcpu");
	struct t4dx *db = open_with(dir, "builtin", NULL, true);
	embedder_idle(db);
	hogs_start_n(2);
	REQUIRE(write_file(db, "big", text) == 0);
	search_in_time(db, "builtin", "big");
	hogs_stop();
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
	free(text);

	dir = unit_tmpdir("ewaitcpucmd");
	open_timeout = 2;
	db = open_with(dir, "command", "\"slow\",\"0.2\",\"4\"", false);
	open_timeout = 1;
	/* the program started by the computing thread, for a file no
	 * search waits for: the one the searches then ask */
	REQUIRE(write_file(db, "old", "an older note") == 0);
	embedder_idle(db);
	CHECK_EQ_INT(src_of(db, "old"), T4DX_VEC_EMBED);
	hogs_start();
	REQUIRE(write_file(db, "a", "first note") == 0);
	REQUIRE(write_file(db, "b", "second note") == 0);
	search_in_time(db, "command", "b");
	hogs_stop();
	t4dx_embed_cancel(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Beside two loops at nice 0 on every core, the computing thread
 * (nice 19: about 0.7% of a core) is at a large file nobody waits for
 * when a search comes for another: the search does not wait for it
 * there (seconds), the large file's vector is computed at the daemon's
 * priority, then the search's own. */
static void test_wait_while_computing(void)
{
	size_t big = LARGE_TEXT;
	char *text = words(big);
	const char *dir = unit_tmpdir("ewaitcomp");
	struct t4dx *db = open_with(dir, "builtin", NULL, false);
	embedder_idle(db);
	hogs_start_n(2);
	REQUIRE(write_file(db, "big", text) == 0);
	/* until its content is read back: then it is being computed */
	struct t4dx_embed_stats st;
	bool reading = false;
	for (int i = 0; i < 20000 && !reading; i++) {
		t4dx_embed_stats(db, &st);
		reading = st.bytes_read >= big;
		if (!reading)
			usleep(1000);
	}
	REQUIRE(reading);
	REQUIRE(write_file(db, "tea", "green tea with mint") == 0);
	search_in_time(db, "while computing", "tea");
	CHECK_EQ_INT(src_of(db, "big"), T4DX_VEC_EMBED);
	hogs_stop();
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
	free(text);
}

static void *flush_main(void *arg)
{
	return (void *)(intptr_t)t4dx_flush(arg);
}

/* n files with vectors set by hand, which a flush's index takes a
 * while over at nice 19. */
static void put_hand(struct t4dx *db, int n)
{
	uint32_t dim = 256;
	float *x = malloc(sizeof(*x) * dim);
	REQUIRE(x);
	srand(7);
	for (int i = 0; i < n; i++) {
		char name[32];
		struct t4dx_entry e;
		memset(&e, 0, sizeof(e));
		snprintf(name, sizeof(name), "hand%04d", i);
		REQUIRE(t4dx_entry_set_key(&e, R, name, strlen(name)) == 0);
		e.mode = S_IFREG | 0644;
		e.content = t4dx_blob_from("x", 1);
		e.size = 1;
		for (uint32_t d = 0; d < dim; d++)
			x[d] = (float)rand() / RAND_MAX - 0.5f;
		e.vec = t4dx_vec_new(x, dim);
		e.vec_src = T4DX_VEC_HAND;
		REQUIRE(t4dx_put(db, &e, T4DX_NOWAIT, NULL) == 0);
		t4dx_entry_clear(&e);
	}
	free(x);
}

/* Until the memtable holding name is the one a flush under way writes. */
static void until_cut(struct t4dx *db, const char *name)
{
	bool cut = false;
	for (int i = 0; i < 10000 && !cut; i++) {
		pthread_rwlock_rdlock(&db->lock);
		cut = db->imm && !t4dx_mem_get(db->mem, R, name, strlen(name));
		pthread_rwlock_unlock(&db->lock);
		if (!cut)
			usleep(1000);
	}
	REQUIRE(cut);
}

/* A search whose file is in a flush under way, on a machine whose every
 * core runs a loop at nice 0: the flush builds the segment's index at
 * nice 19 (3,000 hand-set vectors here), which takes far longer than the
 * search's bound beside the loops.  The search does not wait for the
 * flush to give its file a vector: it is computed at once. */
static void test_wait_behind_flush(void)
{
	const char *dir = unit_tmpdir("ewaitflush");
	struct t4dx *db = open_with(dir, "builtin", NULL, true);
	put_hand(db, 3000);
	embedder_idle(db);
	hogs_start();
	REQUIRE(write_file(db, "tea", "green tea with mint") == 0);
	pthread_t thr;
	REQUIRE(pthread_create(&thr, NULL, flush_main, db) == 0);
	until_cut(db, "tea");
	search_in_time(db, "behind a flush", "tea");
	hogs_stop();
	void *frc;
	pthread_join(thr, &frc);
	CHECK_EQ_INT((int)(intptr_t)frc, 0);
	CHECK_EQ_INT(src_of(db, "tea"), T4DX_VEC_EMBED);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* As test_wait_behind_flush, but the thread already waits for the flush
 * to give "tea" its vector when the search comes (the key was let go
 * after T4DX_TEST_EMBED_DEFER_MS, no search waiting): it looks for a
 * search every 100 ms, and computes the vector at once. */
static void test_wait_while_flush_waited(void)
{
	const char *dir = unit_tmpdir("ewaitflush2");
	setenv("T4DX_TEST_BUSY_SPARE_PCT", "100", 1);   /* no gate */
	setenv("T4DX_TEST_EMBED_QUIET_MS", "60000", 1);
	setenv("T4DX_TEST_EMBED_DEFER_MS", "300", 1);
	struct t4dx *db = open_with(dir, "builtin", NULL, false);
	put_hand(db, 3000);
	embedder_idle(db);
	hogs_start();
	REQUIRE(write_file(db, "tea", "green tea with mint") == 0);
	int64_t put = now_ms();
	pthread_t thr;
	REQUIRE(pthread_create(&thr, NULL, flush_main, db) == 0);
	until_cut(db, "tea");
	/* the thread takes "tea" 300 ms after its put and finds it in the
	 * flush, whose index takes seconds beside the loops */
	while (now_ms() < put + 800)
		usleep(10000);
	struct t4dx_embed_stats st;
	t4dx_embed_stats(db, &st);
	CHECK_EQ_INT((int)st.queued, 0);
	search_in_time(db, "while a flush was waited for", "tea");
	hogs_stop();
	void *frc;
	pthread_join(thr, &frc);
	CHECK_EQ_INT((int)(intptr_t)frc, 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unsetenv("T4DX_TEST_BUSY_SPARE_PCT");
	unit_rm_rf(dir);
}

/* A queue of 2 (T4DX_TEST_EMBED_QUEUE_MAX) and a program that takes 5 s
 * an answer: of 5 files closed before the search, the first is in hand,
 * 2 are queued and 2 dropped (a later sweep finds them).  The search
 * gives up at its bound (1 s) and all 5 lack their vectors: "pending"
 * says 5 (the dropped ones have no ticket: it said 3, and the search
 * neither waited for them nor told of them). */
static void test_wait_counts_dropped(void)
{
	const char *dir = unit_tmpdir("ewaitdrop");
	setenv("T4DX_TEST_EMBED_QUEUE_MAX", "2", 1);
	struct t4dx *db = open_with(dir, "command", "\"slow\",\"5\",\"4\"",
				    false);
	unsetenv("T4DX_TEST_EMBED_QUEUE_MAX");
	embedder_idle(db);
	struct t4dx_embed_stats st;
	REQUIRE(write_file(db, "a", "first note") == 0);
	for (int i = 0; i < 5000; i++) {
		t4dx_embed_stats(db, &st);
		if (!st.queued)
			break;          /* the thread has it in hand */
		usleep(1000);
	}
	const char *names[] = { "b", "c", "d", "e" };
	for (int i = 0; i < 4; i++)
		REQUIRE(write_file(db, names[i], "another note") == 0);
	t4dx_embed_stats(db, &st);
	CHECK(st.dropped >= 1);
	uint64_t pending = 0;
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK_EQ_INT((int)pending, 5);
	t4dx_embed_cancel(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Files dropped from a full queue count as pending only until the sweep
 * after them has found them and the queue is empty: then a search says
 * 0, and every file has its vector. */
static void test_wait_dropped_then_swept(void)
{
	const char *dir = unit_tmpdir("ewaitswept");
	setenv("T4DX_TEST_EMBED_QUEUE_MAX", "2", 1);
	struct t4dx *db = open_with(dir, "builtin", NULL, false);
	unsetenv("T4DX_TEST_EMBED_QUEUE_MAX");
	embedder_idle(db);
	const char *names[] = { "a", "b", "c", "d", "e", "f" };
	for (int i = 0; i < 6; i++)
		REQUIRE(write_file(db, names[i], "a note on tea") == 0);
	struct t4dx_embed_stats st;
	t4dx_embed_stats(db, &st);
	CHECK(st.dropped >= 1);
	embedder_idle(db);
	uint64_t pending = 99;
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK_EQ_INT((int)pending, 0);
	for (int i = 0; i < 6; i++)
		CHECK_EQ_INT(src_of(db, names[i]), T4DX_VEC_EMBED);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

static uint32_t dim_of(struct t4dx *db, const char *name)
{
	struct t4dx_entry e;
	if (t4dx_get(db, R, name, strlen(name), T4DX_GET_CONTENT, &e))
		return 0;
	uint32_t d = e.vec ? t4dx_vec_dim(e.vec) : 0;
	t4dx_entry_clear(&e);
	return d;
}

/* Files dropped from a full queue while a redo (another embedder) is
 * under way: once the sweep after them has found them and they have
 * their vectors, a search says 0 pending, though the redo goes on (it
 * said so until the redo's last batch was done). */
static void test_wait_dropped_during_redo(void)
{
	const char *dir = unit_tmpdir("ewaitredo");
	char name[16];
	struct t4dx *db = open_with(dir, "builtin", NULL, false);
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "old%d", i);
		REQUIRE(write_file(db, name, "a pot of sencha") == 0);
	}
	embedder_idle(db);
	CHECK_EQ_INT(t4dx_close(db), 0);
	/* a redo of 12 files at 0.3 s each, 2 at a time */
	setenv("T4DX_TEST_EMBED_QUEUE_MAX", "4", 1);
	double t = open_timeout;
	open_timeout = 10;
	db = open_with(dir, "command", "\"slow\",\"0.3\",\"4\"", false);
	open_timeout = t;
	unsetenv("T4DX_TEST_EMBED_QUEUE_MAX");
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "new%d", i);
		REQUIRE(write_file(db, name, "a note on tea") == 0);
	}
	struct t4dx_embed_stats st;
	t4dx_embed_stats(db, &st);
	CHECK(st.dropped >= 1);
	bool all = false;
	for (int i = 0; i < 3000 && !all; i++) {
		all = true;
		for (int j = 0; j < 6 && all; j++) {
			snprintf(name, sizeof(name), "new%d", j);
			all = dim_of(db, name) == 4;
		}
		if (!all)
			usleep(10000);
	}
	REQUIRE(all);
	/* the redo is not over: some old file has the builtin's vector */
	bool redo_on = false;
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "old%d", i);
		redo_on |= dim_of(db, name) != 4;
	}
	CHECK(redo_on);
	uint64_t pending = 99;
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK_EQ_INT((int)pending, 0);
	embedder_idle(db);
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "old%d", i);
		CHECK_EQ_INT((int)dim_of(db, name), 4);
	}
	CHECK_EQ_INT(t4dx_embed_wait(db, &pending), 0);
	CHECK_EQ_INT((int)pending, 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

int main(void)
{
	RUN(test_wait_outranks_writers);
	RUN(test_wait_off_and_sweep);
	RUN(test_wait_ahead_of_sweep);
	RUN(test_wait_bound);
	RUN(test_wait_concurrent);
	RUN(test_wait_giveup_wakes_others);
	RUN(test_wait_many_woken);
	RUN(test_wait_two_searches_newest);
	RUN(test_wait_after_backoff);
	RUN(test_backoff_wall_clock);
	RUN(test_wait_busy_cpu);
	RUN(test_wait_behind_flush);
	RUN(test_wait_while_flush_waited);
	RUN(test_wait_while_computing);
	RUN(test_wait_counts_dropped);
	RUN(test_wait_dropped_then_swept);
	RUN(test_wait_dropped_during_redo);
	UNIT_DONE();
}
