/*
 * test_vecflush.c - the builtin embedder's vectors computed by a flush:
 * the files it writes that have no vector get theirs in the segment, with
 * no vector record in the log and no content read back by the embedder
 * thread; a hand-set vector or a mark is never replaced; a crash before
 * or after the flush leaves every file with its right vector.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embed.h"
#include "faults.h"
#include "io.h"
#include "t4dx.h"
#include "unit.h"
#include "vec.h"

#define R T4DX_ROOT_INO
#define DIM 256

static void idle(struct t4dx *db)
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

/* Writes never pause for the embedder thread (a minute), so that what
 * has a vector after a flush got it from the flush. */
static struct t4dx *open_held(const char *dir, const char *embedder)
{
	struct t4dx *db = NULL;
	char msg[256];
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	strcpy(c.vector.embedder, embedder);
	c.vector.dim = DIM;
	setenv("T4DX_TEST_EMBED_QUIET_MS", "60000", 1);
	setenv("T4DX_TEST_EMBED_DEFER_MS", "60000", 1);
	int rc = t4dx_open(dir, &c, &db, msg, sizeof(msg));
	unsetenv("T4DX_TEST_EMBED_QUIET_MS");
	unsetenv("T4DX_TEST_EMBED_DEFER_MS");
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
	/* the start's sweep done: it would queue a file it lists as a key
	 * that no writer held back */
	idle(db);
	return db;
}

static int put_bytes(struct t4dx *db, const char *name, const void *buf,
		     size_t len)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, R, name, strlen(name)) == 0);
	e.mode = S_IFREG | 0644;
	e.content = t4dx_blob_from(buf, len);
	e.size = len;
	int rc = t4dx_put(db, &e, 0, NULL);
	t4dx_entry_clear(&e);
	return rc;
}

static int put_text(struct t4dx *db, const char *name, const char *text)
{
	return put_bytes(db, name, text, strlen(text));
}

static int set_hand(struct t4dx *db, const char *name, struct t4dx_blob *v)
{
	struct t4dx_entry f;
	memset(&f, 0, sizeof(f));
	f.vec_src = T4DX_VEC_HAND;
	f.vec = v;
	return t4dx_update(db, R, name, strlen(name), &f, T4DX_F_VEC, 0, NULL);
}

/* The file's vector source, and whether its vector is want (NULL: none). */
static bool has_vec(struct t4dx *db, const char *name, int src,
		    const struct t4dx_blob *want)
{
	struct t4dx_entry e;
	if (t4dx_get(db, R, name, strlen(name), T4DX_GET_CONTENT, &e))
		return false;
	bool ok = e.vec_src == src && t4dx_vec_equal(e.vec, want);
	t4dx_entry_clear(&e);
	return ok;
}

/* The builtin vector of text, as the embedder thread would log it. */
static struct t4dx_blob *builtin_of(const char *text)
{
	float x[DIM];
	REQUIRE(t4dx_embed(text, strlen(text), DIM, x) == 0);
	struct t4dx_blob *v = t4dx_vec_new(x, DIM);
	REQUIRE(v);
	return v;
}

static struct t4dx_blob *hand_vec(void)
{
	float x[DIM];
	for (int i = 0; i < DIM; i++)
		x[i] = (float)((i * 7) % 13) - 6.0f;
	struct t4dx_blob *v = t4dx_vec_new(x, DIM);
	REQUIRE(v);
	return v;
}

/* Records in the log (live files and archive) that carry an embedder's
 * outcome: "vec_src":"embed" or "tried". */
static int embedder_records(const char *dir)
{
	const char *sub[] = { "wal", "wal/archive" };
	int n = 0;
	for (int s = 0; s < 2; s++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, sub[s]);
		DIR *d = opendir(path);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l < 6 || strcmp(de->d_name + l - 6, ".jsonl"))
				continue;
			char file[8192];
			snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
			FILE *f = fopen(file, "r");
			REQUIRE(f);
			char line[65536];
			while (fgets(line, sizeof(line), f))
				n += strstr(line, "\"vec_src\":\"embed\"") ||
				     strstr(line, "\"vec_src\":\"tried\"");
			fclose(f);
		}
		closedir(d);
	}
	return n;
}

static const char *TEA = "green tea with jasmine, brewed for two minutes";
static const char *COFFEE = "black coffee, no sugar";

/* A flush gives the files it writes their builtin vector (a binary one
 * the mark), in the segment: no record in the log, no content read back
 * by the thread; a hand-set vector stays. */
static void test_flush_embeds(void)
{
	const char *dir = unit_tmpdir("vfl");
	struct t4dx *db = open_held(dir, "builtin");
	struct t4dx_blob *tea = builtin_of(TEA), *hand = hand_vec();
	static const unsigned char bin[] = { 0, 1, 2, 3, 0xff, 0xfe, 7 };
	REQUIRE(put_text(db, "tea", TEA) == 0);
	REQUIRE(put_bytes(db, "bin", bin, sizeof(bin)) == 0);
	REQUIRE(put_text(db, "hand", COFFEE) == 0);
	REQUIRE(set_hand(db, "hand", hand) == 0);
	REQUIRE(put_text(db, "empty", "") == 0);
	/* the thread holds back: nothing before the flush */
	CHECK(has_vec(db, "tea", T4DX_VEC_NONE, NULL));
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(has_vec(db, "tea", T4DX_VEC_EMBED, tea));
	CHECK(has_vec(db, "bin", T4DX_VEC_TRIED, NULL));
	CHECK(has_vec(db, "hand", T4DX_VEC_HAND, hand));
	CHECK(has_vec(db, "empty", T4DX_VEC_NONE, NULL));
	struct t4dx_embed_stats st;
	t4dx_embed_stats(db, &st);
	CHECK_EQ_INT(st.embedded, 1);
	CHECK_EQ_INT(st.no_vector, 1);
	CHECK_EQ_INT(st.bytes_read, 0);
	CHECK_EQ_INT(embedder_records(dir), 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	/* in the segment: a start with the embedder off finds them */
	db = open_held(dir, "off");
	CHECK(has_vec(db, "tea", T4DX_VEC_EMBED, tea));
	CHECK(has_vec(db, "bin", T4DX_VEC_TRIED, NULL));
	CHECK(has_vec(db, "hand", T4DX_VEC_HAND, hand));
	CHECK_EQ_INT(t4dx_close(db), 0);
	CHECK_EQ_INT(embedder_records(dir), 0);
	t4dx_blob_unref(tea);
	t4dx_blob_unref(hand);
	unit_rm_rf(dir);
}

/* Only the builtin embedder's vectors come from a flush: with it off
 * (or a program's), a flush writes files as they are. */
static void test_flush_off(void)
{
	const char *dir = unit_tmpdir("vfloff");
	struct t4dx *db = open_held(dir, "off");
	REQUIRE(put_text(db, "tea", TEA) == 0);
	REQUIRE(t4dx_flush(db) == 0);
	CHECK(has_vec(db, "tea", T4DX_VEC_NONE, NULL));
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* SIGKILL after the flush: the vector is in the segment.  SIGKILL
 * before it: the file is in the log without one, and the next start
 * embeds it. */
static void test_flush_crash(void)
{
	const char *dir = unit_tmpdir("vflcrash");
	struct t4dx_blob *tea = builtin_of(TEA), *coffee = builtin_of(COFFEE);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx *db = open_held(dir, "builtin");
		if (put_text(db, "flushed", TEA) || t4dx_flush(db) ||
		    put_text(db, "logged", COFFEE))
			_exit(2);
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	int ws;
	REQUIRE(waitpid(pid, &ws, 0) == pid);
	REQUIRE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	struct t4dx *db = open_held(dir, "off");
	CHECK(has_vec(db, "flushed", T4DX_VEC_EMBED, tea));
	CHECK(has_vec(db, "logged", T4DX_VEC_NONE, NULL));
	CHECK_EQ_INT(t4dx_close(db), 0);
	/* the start's sweep, writes paused: the one left gets its vector */
	struct t4dx_config c;
	char msg[256];
	t4dx_config_defaults(&c);
	c.vector.dim = DIM;
	REQUIRE(t4dx_open(dir, &c, &db, msg, sizeof(msg)) == 0);
	idle(db);
	CHECK(has_vec(db, "flushed", T4DX_VEC_EMBED, tea));
	CHECK(has_vec(db, "logged", T4DX_VEC_EMBED, coffee));
	CHECK_EQ_INT(t4dx_close(db), 0);
	t4dx_blob_unref(tea);
	t4dx_blob_unref(coffee);
	unit_rm_rf(dir);
}

/* The start's flush of a long replayed log runs before the embedder
 * thread has marked EMBEDDER for a redo (its flusher starts first): the
 * flush must not write vectors of an embedder that EMBEDDER does not
 * name yet.  Here vector.dim goes from DIM to DIM/2 at a start whose log
 * is due a flush, and the daemon is killed as EMBEDDER's redo mark is
 * about to be renamed into place (a slow disk); then a start with DIM
 * again finds EMBEDDER naming DIM, redoes nothing, and the replayed
 * files must still get their vectors of DIM. */
static const char *const BEFORE_MARK_WORDS[] = {
	"apple", "river", "mountain", "lantern", "harbor", "violet", "pepper",
	"meadow",
};
#define BEFORE_MARK_FILES 48

static void before_mark_text(int i, char *buf, size_t len)
{
	size_t n = 0;
	for (int w = 0; n + 40 < len && w < 200; w++)
		n += (size_t)snprintf(buf + n, len - n, "%s%d ",
				      BEFORE_MARK_WORDS[(i + w) % 8], i);
}

static int (*real_rename)(const char *, const char *);
static int rename_embedder_dies(const char *from, const char *to)
{
	size_t l = strlen(to);
	if (l >= 9 && !strcmp(to + l - 9, "/EMBEDDER")) {
		sleep(3);       /* the flusher's flush meanwhile */
		kill(getpid(), SIGKILL);
	}
	return real_rename(from, to);
}

static void test_flush_before_redo_mark(void)
{
	const char *dir = unit_tmpdir("vflmark");
	char text[1600];
	/* a store of DIM, EMBEDDER naming it */
	struct t4dx *db = open_held(dir, "builtin");
	CHECK_EQ_INT(t4dx_close(db), 0);
	/* files in the log alone, more than a flush is due at */
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		db = open_held(dir, "builtin");
		for (int i = 0; i < BEFORE_MARK_FILES; i++) {
			char name[32];
			snprintf(name, sizeof(name), "f%d", i);
			before_mark_text(i, text, sizeof(text));
			if (put_text(db, name, text))
				_exit(2);
		}
		if (t4dx_sync(db, 0))
			_exit(2);
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	int ws;
	REQUIRE(waitpid(pid, &ws, 0) == pid);
	REQUIRE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	/* a start with vector.dim DIM/2 and a flush due at once: killed
	 * as the redo mark goes into place */
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx_config c;
		char msg[256];
		t4dx_config_defaults(&c);
		c.vector.dim = DIM / 2;
		c.wal.checkpoint_bytes = 65536;
		real_rename = t4dx_io.rename;
		t4dx_io.rename = rename_embedder_dies;
		setenv("T4DX_TEST_EMBED_QUIET_MS", "60000", 1);
		setenv("T4DX_TEST_EMBED_DEFER_MS", "60000", 1);
		t4dx_open(dir, &c, &db, msg, sizeof(msg));
		_exit(3);
	}
	REQUIRE(waitpid(pid, &ws, 0) == pid);
	REQUIRE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	/* back to DIM: every file with its vector of DIM */
	db = open_held(dir, "builtin");
	struct t4dx_config c;
	char msg[256];
	CHECK_EQ_INT(t4dx_close(db), 0);
	t4dx_config_defaults(&c);
	c.vector.dim = DIM;
	REQUIRE(t4dx_open(dir, &c, &db, msg, sizeof(msg)) == 0);
	idle(db);
	int right = 0, half = 0;
	for (int i = 0; i < BEFORE_MARK_FILES; i++) {
		char name[32];
		snprintf(name, sizeof(name), "f%d", i);
		before_mark_text(i, text, sizeof(text));
		struct t4dx_blob *v = builtin_of(text);
		right += has_vec(db, name, T4DX_VEC_EMBED, v);
		t4dx_blob_unref(v);
		struct t4dx_entry e;
		if (!t4dx_get(db, R, name, strlen(name), T4DX_GET_CONTENT,
			       &e)) {
			half += e.vec && t4dx_vec_dim(e.vec) == DIM / 2;
			t4dx_entry_clear(&e);
		}
	}
	/* (with the flush first: every one of DIM/2, for good) */
	CHECK_EQ_INT(half, 0);
	CHECK_EQ_INT(right, BEFORE_MARK_FILES);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* A flush that fails (ENOSPC as its segment goes into place) is tried
 * again, and computes the vectors again: .ctl/stats counts each file
 * once, as the vectors the store holds. */
static void test_flush_fails_counts_once(void)
{
	const char *dir = unit_tmpdir("vflfail");
	struct t4dx *db = open_held(dir, "builtin");
	static const unsigned char bin[] = { 0, 1, 2, 3, 0xff, 0xfe, 7 };
	REQUIRE(put_text(db, "tea", TEA) == 0);
	REQUIRE(put_bytes(db, "bin", bin, sizeof(bin)) == 0);
	faults_arm(FAULT_RENAME, 1, ENOSPC, 0);
	int rc = t4dx_flush(db);
	unsigned renames = faults_calls(FAULT_RENAME);
	faults_reset();
	CHECK(rc != 0);
	CHECK(renames >= 1);
	REQUIRE(t4dx_flush(db) == 0);
	struct t4dx_embed_stats st;
	t4dx_embed_stats(db, &st);
	CHECK_EQ_INT(st.embedded, 1);
	CHECK_EQ_INT(st.no_vector, 1);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

/* Once writes pause, the thread comes to the keys the puts queued: the
 * files the flush gave a vector are skipped, with no record logged and
 * nothing counted twice.  (Whether it looked at the vector before reading
 * the content is not seen here: a thread that read first would skip them
 * too, after the read, and count no bytes.) */
static void test_thread_skips_flushed(void)
{
	const char *dir = unit_tmpdir("vflskip");
	struct t4dx *db = NULL;
	char msg[256];
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	c.vector.dim = DIM;
	setenv("T4DX_TEST_EMBED_QUIET_MS", "3000", 1);
	setenv("T4DX_TEST_EMBED_DEFER_MS", "60000", 1);
	REQUIRE(t4dx_open(dir, &c, &db, msg, sizeof(msg)) == 0);
	unsetenv("T4DX_TEST_EMBED_QUIET_MS");
	unsetenv("T4DX_TEST_EMBED_DEFER_MS");
	idle(db);
	char name[32], text[128];
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		snprintf(text, sizeof(text), "note %d about %s", i,
			 BEFORE_MARK_WORDS[i % 8]);
		REQUIRE(put_text(db, name, text) == 0);
	}
	REQUIRE(t4dx_flush(db) == 0);
	struct t4dx_embed_stats st;
	t4dx_embed_stats(db, &st);
	CHECK_EQ_INT(st.embedded, 20);
	/* the thread's turn: writes paused past the quiet time */
	sleep(4);
	idle(db);
	t4dx_embed_stats(db, &st);
	CHECK_EQ_INT(st.bytes_read, 0);
	CHECK_EQ_INT(st.embedded, 20);
	CHECK_EQ_INT(embedder_records(dir), 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

int main(void)
{
	/* the CPU never counts as busy here (a loaded machine would hold
	 * vectors back for vector.defer_s): test_busy tests that */
	setenv("T4DX_TEST_BUSY_SPARE_PCT", "100", 1);
	RUN(test_flush_embeds);
	RUN(test_flush_off);
	RUN(test_flush_crash);
	RUN(test_flush_before_redo_mark);
	RUN(test_flush_fails_counts_once);
	RUN(test_thread_skips_flushed);
	UNIT_DONE();
}
