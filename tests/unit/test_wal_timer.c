/* test_wal_timer.c - the commit timer (records nobody waits for are
 * written within wal.commit_interval_ms), the durability modes (close:
 * a change waits for its record; fsync: only t4dx_sync waits), and the
 * updates nobody waits for of a file not stored yet, which its put
 * carries (no record of their own). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "faults.h"
#include "t4dx.h"
#include "unit.h"

static const uint64_t R = T4DX_ROOT_INO;

/* Without the embedder: its own records would be committed by the timer
 * too and blur the counts. */
static struct t4dx *open_db(const char *dir, unsigned interval_ms,
			    const char *policy)
{
	struct t4dx *db = NULL;
	char msg[256];
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	strcpy(c.vector.embedder, "off");
	c.wal.commit_interval_ms = interval_ms;
	if (policy)
		strcpy(c.fallback.policy, policy);
	int rc = t4dx_open(dir, &c, &db, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
	return db;
}

static int put(struct t4dx *db, const char *name, const char *content,
	       unsigned flags, uint64_t *lsn)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, R, name, strlen(name)) == 0);
	e.mode = S_IFREG | 0644;
	e.content = t4dx_blob_from(content, strlen(content));
	e.size = strlen(content);
	int rc = t4dx_put(db, &e, flags, lsn);
	t4dx_entry_clear(&e);
	return rc;
}

static bool has(struct t4dx *db, const char *name, const char *content)
{
	struct t4dx_entry e;
	if (t4dx_get(db, R, name, strlen(name), T4DX_GET_CONTENT, &e))
		return false;
	bool ok = e.content && e.content->len == strlen(content) &&
		  !memcmp(e.content->data, content, e.content->len);
	t4dx_entry_clear(&e);
	return ok;
}

static uint64_t durable_records(struct t4dx *db)
{
	struct t4dx_stats st;
	t4dx_get_stats(db, &st);
	return st.wal_records;
}

/* Wait (up to 10 s) until the log made at least want records durable. */
static bool wait_records(struct t4dx *db, uint64_t want)
{
	for (int i = 0; i < 10000; i++) {
		if (durable_records(db) >= want)
			return true;
		usleep(1000);
	}
	return false;
}

/* A change nobody waits for is written by the timer, and survives a
 * crash that comes after it, with no close to drain the queue. */
static void test_timer_commits(void)
{
	const char *dir = unit_tmpdir("timer");
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx *db = open_db(dir, 10, NULL);
		uint64_t before = durable_records(db), lsn = 0;
		if (put(db, "a", "one", T4DX_NOWAIT, &lsn) || !lsn)
			_exit(2);
		if (!wait_records(db, before + 1))
			_exit(3);
		_exit(0);       /* a crash: no close, no last drain */
	}
	int st;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	struct t4dx *db = open_db(dir, 10, NULL);
	CHECK(has(db, "a", "one"));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* The interval is what the timer waits: with a long one, the record
 * stays queued until someone syncs, and close writes it. */
static void test_timer_interval(void)
{
	const char *dir = unit_tmpdir("interval");
	struct t4dx *db = open_db(dir, 60000, NULL);
	uint64_t before = durable_records(db);
	CHECK_EQ_INT(put(db, "a", "one", T4DX_NOWAIT, NULL), 0);
	usleep(200 * 1000);
	CHECK_EQ_INT(durable_records(db), before);
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_db(dir, 60000, NULL);
	CHECK(has(db, "a", "one"));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A failed timer group is a storage failure for the breaker, and its
 * records, acknowledged to nobody as durable, count as unpersisted and
 * stay queued: the next commit writes them. */
static void test_timer_failure(void)
{
	const char *dir = unit_tmpdir("tfail");
	struct t4dx *db = open_db(dir, 5, NULL);
	faults_arm(FAULT_FDATASYNC, 1, EIO, 0);
	CHECK_EQ_INT(put(db, "a", "one", T4DX_NOWAIT, NULL), 0);
	struct t4dx_health h = { 0 };
	for (int i = 0; i < 10000 && !h.unpersisted; i++) {
		usleep(1000);
		t4dx_get_health(db, &h);
	}
	CHECK(h.unpersisted >= 1);
	struct t4dx_breaker_info bi;
	t4dx_breaker_get(t4dx_get_breaker(db), &bi);
	CHECK(bi.failures >= 1);
	faults_reset();
	CHECK_EQ_INT(t4dx_sync(db, 0), 0);
	t4dx_get_health(db, &h);
	CHECK_EQ_INT(h.unpersisted, 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	db = open_db(dir, 5, NULL);
	CHECK(has(db, "a", "one"));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* While the breaker is OPEN the timer tries nothing and counts nothing
 * as unpersisted (the embedder's vectors would turn the level
 * read-only); once the breaker is reset it writes what waited. */
static void test_timer_breaker_open(void)
{
	const char *dir = unit_tmpdir("topen");
	struct t4dx *db = open_db(dir, 5, NULL);
	struct t4dx_breaker *b = t4dx_get_breaker(db);
	uint64_t before = durable_records(db);
	t4dx_breaker_force_open(b);
	CHECK_EQ_INT(put(db, "a", "one", T4DX_NOWAIT, NULL), 0);
	usleep(200 * 1000);
	CHECK_EQ_INT(durable_records(db), before);
	struct t4dx_health h;
	t4dx_get_health(db, &h);
	CHECK_EQ_INT(h.unpersisted, 0);
	t4dx_breaker_reset(b);
	CHECK(wait_records(db, before + 1));
	t4dx_get_health(db, &h);
	CHECK_EQ_INT(h.level, 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Mode fsync: a change that would wait returns at once (the long
 * interval keeps the timer out of it), t4dx_sync waits for everything,
 * and the switch back to close makes everything durable first. */
static void test_mode_fsync(void)
{
	const char *dir = unit_tmpdir("mode");
	struct t4dx *db = open_db(dir, 60000, NULL);
	CHECK_EQ_INT(t4dx_durability(db), T4DX_DURABLE_CLOSE);
	CHECK_EQ_INT(t4dx_set_durability(db, 7), EINVAL);
	uint64_t before = durable_records(db);
	CHECK_EQ_INT(put(db, "c", "closed", 0, NULL), 0);
	CHECK_EQ_INT(durable_records(db), before + 1);

	CHECK_EQ_INT(t4dx_set_durability(db, T4DX_DURABLE_FSYNC), 0);
	CHECK_EQ_INT(t4dx_durability(db), T4DX_DURABLE_FSYNC);
	CHECK_EQ_INT(put(db, "f1", "one", 0, NULL), 0);
	CHECK_EQ_INT(put(db, "f2", "two", 0, NULL), 0);
	CHECK_EQ_INT(durable_records(db), before + 1);
	CHECK_EQ_INT(t4dx_sync(db, 0), 0);
	CHECK_EQ_INT(durable_records(db), before + 3);

	CHECK_EQ_INT(put(db, "f3", "three", 0, NULL), 0);
	CHECK_EQ_INT(durable_records(db), before + 3);
	CHECK_EQ_INT(t4dx_set_durability(db, T4DX_DURABLE_CLOSE), 0);
	CHECK_EQ_INT(durable_records(db), before + 4);
	CHECK_EQ_INT(t4dx_durability(db), T4DX_DURABLE_CLOSE);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Policy reject applies a change only once durable: fsync mode cannot
 * skip that wait, and a failed commit is still the caller's error. */
static void test_mode_fsync_reject(void)
{
	const char *dir = unit_tmpdir("modereject");
	struct t4dx *db = open_db(dir, 60000, "reject");
	CHECK_EQ_INT(t4dx_set_durability(db, T4DX_DURABLE_FSYNC), 0);
	uint64_t before = durable_records(db);
	CHECK_EQ_INT(put(db, "a", "one", 0, NULL), 0);
	CHECK_EQ_INT(durable_records(db), before + 1);
	faults_arm(FAULT_FDATASYNC, 1, EIO, 0);
	CHECK_EQ_INT(put(db, "b", "two", 0, NULL), EIO);
	faults_reset();
	CHECK(!has(db, "b", "two"));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A new file's metadata set before its first close (tar -x) costs no
 * record: the put that stores the file carries it. */
static void test_provisional_update(void)
{
	const char *dir = unit_tmpdir("provupd");
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx *db = open_db(dir, 60000, NULL);
		struct t4dx_entry e, f;
		struct t4dx_stats st0, st;
		uint64_t lsn = 1;
		memset(&e, 0, sizeof(e));
		REQUIRE(t4dx_entry_set_key(&e, R, "p", 1) == 0);
		e.mode = S_IFREG | 0644;
		t4dx_get_stats(db, &st0);
		if (t4dx_put(db, &e, T4DX_EXCL | T4DX_NOWAIT |
			     T4DX_PROVISIONAL, &lsn) || lsn)
			_exit(2);
		memset(&f, 0, sizeof(f));
		f.mode = 0600;
		f.uid = 1234;
		f.mtime_ns = 1000;
		lsn = 1;
		if (t4dx_update(db, R, "p", 1, &f, T4DX_F_MODE | T4DX_F_UID |
				T4DX_F_MTIME, T4DX_NOWAIT, &lsn) || lsn)
			_exit(3);
		t4dx_get_stats(db, &st);
		if (st.wal_lsn != st0.wal_lsn)
			_exit(4);       /* no record */
		/* the close: the current entry with its content */
		if (t4dx_get(db, R, "p", 1, 0, &e) || e.mode != (S_IFREG | 0600))
			_exit(5);
		e.content = t4dx_blob_from("data", 4);
		e.size = 4;
		if (t4dx_put(db, &e, 0, NULL))
			_exit(6);
		t4dx_entry_clear(&e);
		t4dx_get_stats(db, &st);
		if (st.wal_lsn != st0.wal_lsn + 1)
			_exit(7);
		_exit(0);       /* a crash */
	}
	int ws;
	REQUIRE(waitpid(pid, &ws, 0) == pid);
	REQUIRE(WIFEXITED(ws));
	CHECK_EQ_INT(WEXITSTATUS(ws), 0);
	struct t4dx *db = open_db(dir, 10, NULL);
	struct t4dx_entry e;
	REQUIRE(t4dx_get(db, R, "p", 1, 0, &e) == 0);
	CHECK_EQ_INT(e.mode, S_IFREG | 0600);
	CHECK_EQ_INT(e.uid, 1234);
	CHECK_EQ_INT(e.mtime_ns, 1000);
	t4dx_entry_clear(&e);
	CHECK(has(db, "p", "data"));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

int main(void)
{
	RUN(test_timer_commits);
	RUN(test_timer_interval);
	RUN(test_timer_failure);
	RUN(test_timer_breaker_open);
	RUN(test_mode_fsync);
	RUN(test_mode_fsync_reject);
	RUN(test_provisional_update);
	UNIT_DONE();
}
