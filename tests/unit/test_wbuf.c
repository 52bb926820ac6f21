/*
 * test_wbuf.c - the daemon's write buffers and their commit (fs/wbuf.c)
 * against a real store, without a mount: the budget all buffers share,
 * what a flush, an fsync and the last release commit, the sticky error
 * that keeps a refused file's old content, and that a commit that
 * returned 0 is on disk (the store is closed and opened again).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "faults.h"
#include "inode.h"
#include "t4dxfs.h"
#include "unit.h"

static char dir[4096];

static void fs_open(struct t4dxfs *fs, uint64_t budget)
{
	char msg[256];
	memset(fs, 0, sizeof(*fs));
	t4dx_config_defaults(&fs->cfg);
	fs->cfg.limits.write_buffer_bytes = budget;
	fs->max_item_bytes = fs->cfg.limits.max_item_bytes;
	pthread_mutex_init(&fs->ns_mu, NULL);
	struct t4dx_open_args oa = { .cfg = &fs->cfg };
	int rc = t4dx_open_args(dir, &oa, &fs->db, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
}

static void fs_close(struct t4dxfs *fs)
{
	ns_lock(fs);
	node_free_all(&fs->nodes);
	ns_unlock(fs);
	CHECK_EQ_INT(t4dx_close(fs->db), 0);
	pthread_mutex_destroy(&fs->ns_mu);
}

/* A file (T4DX_ROOT_INO, name) holding content, and its node with an
 * empty write buffer of one reference, as an open for writing makes. */
static struct node *open_file(struct t4dxfs *fs, const char *name,
			      const char *content)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, T4DX_ROOT_INO, name, strlen(name)) == 0);
	e.mode = S_IFREG | 0644;
	e.importance = 0.5;
	e.content = t4dx_blob_from(content, strlen(content));
	e.size = strlen(content);
	REQUIRE(t4dx_put(fs->db, &e, 0, NULL) == 0);
	t4dx_entry_clear(&e);
	ns_lock(fs);
	struct node *n = node_ref(&fs->nodes, e.ino, T4DX_ROOT_INO, name,
				  strlen(name), 1);
	REQUIRE(n);
	n->wb = wbuf_new();
	REQUIRE(n->wb);
	n->wb->refs = 1;
	n->opens = 1;
	ns_unlock(fs);
	return n;
}

/* Write len bytes at off, as op_write does.  0 or an errno. */
static int write_at(struct t4dxfs *fs, struct node *n, const char *buf,
		    size_t len, size_t off)
{
	struct wbuf *w = n->wb;
	pthread_mutex_lock(&w->mu);
	int rc = wbuf_reserve(fs, w, off + len);
	if (!rc) {
		if (off > w->len)
			memset(w->data + w->len, 0, off - w->len);
		memcpy(w->data + off, buf, len);
		if (off + len > w->len)
			wbuf_set_len(w, off + len);
		wbuf_written(fs, n, w);
	} else {
		w->err = rc;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* The committed content of name, as a NUL-terminated copy (free it). */
static char *stored(struct t4dxfs *fs, const char *name)
{
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	if (t4dx_get(fs->db, T4DX_ROOT_INO, name, strlen(name),
		     T4DX_GET_CONTENT, &e))
		return NULL;
	char *s = calloc(1, e.size + 1);
	REQUIRE(s);
	if (e.size)
		memcpy(s, e.content->data, e.size);
	t4dx_entry_clear(&e);
	return s;
}

static bool stored_is(struct t4dxfs *fs, const char *name, const char *want)
{
	char *s = stored(fs, name);
	bool ok = s && !strcmp(s, want);
	if (!ok)
		fprintf(stderr, "  %s holds \"%s\", not \"%s\"\n", name,
			s ? s : "(nothing)", want);
	free(s);
	return ok;
}

/* All buffers together stay within the budget; a reservation that does
 * not fit fails with ENOSPC and leaves the buffer as it was; freeing
 * every buffer gives the whole budget back.  The budget counts what the
 * writes asked for, not the room a doubling left unused (which is never
 * touched): that room never refuses another buffer's writes. */
static void test_budget(void)
{
	struct t4dxfs fs;
	fs_open(&fs, 100000);
	struct wbuf *a = wbuf_new(), *b = wbuf_new();
	REQUIRE(a && b);
	CHECK_EQ_INT(wbuf_reserve(&fs, a, 40000), 0);
	CHECK(a->cap >= 40000);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 40000);
	CHECK_EQ_INT(wbuf_reserve(&fs, b, 30000), 0);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 70000);
	size_t bcap = b->cap;
	CHECK_EQ_INT(wbuf_reserve(&fs, b, 90000), ENOSPC);
	CHECK_EQ_INT(b->cap, bcap);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 70000);
	/* a's room (65536) is not the budget's: b may have all the rest */
	CHECK_EQ_INT(wbuf_reserve(&fs, b, 60000), 0);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 100000);
	CHECK_EQ_INT(wbuf_reserve(&fs, a, 40001), ENOSPC);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 100000);
	wbuf_free(&fs, a);
	wbuf_free(&fs, b);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 0);
	fs_close(&fs);
}

/* A flush commits the writes; the record is on disk once it returns. */
static void test_flush_durable(void)
{
	struct t4dxfs fs;
	fs_open(&fs, 1 << 20);
	struct node *n = open_file(&fs, "a", "old");
	CHECK_EQ_INT(write_at(&fs, n, "new content", 11, 0), 0);
	CHECK(stored_is(&fs, "a", "old"));
	CHECK_EQ_INT(wbuf_commit(&fs, n, n->ino, n->wb, COMMIT_FLUSH), 0);
	CHECK(!n->wb->dirty);
	CHECK(stored_is(&fs, "a", "new content"));
	/* nothing new: a second flush commits nothing and answers 0 */
	uint64_t lsn = n->wb->queued_lsn;
	CHECK(lsn != 0);
	CHECK_EQ_INT(wbuf_commit(&fs, n, n->ino, n->wb, COMMIT_FLUSH), 0);
	CHECK_EQ_INT(n->wb->queued_lsn, lsn);
	wb_put(&fs, n, n->ino);
	CHECK(n->wb == NULL);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 0);
	fs_close(&fs);
	fs_open(&fs, 1 << 20);
	CHECK(stored_is(&fs, "a", "new content"));
	fs_close(&fs);
}

/* A buffer only an O_TRUNC open emptied waits for the release or an
 * fsync: a flush (the close of a duplicate) leaves the old content. */
static void test_trunc_deferred(void)
{
	struct t4dxfs fs;
	fs_open(&fs, 1 << 20);
	struct node *n = open_file(&fs, "t", "keep me");
	struct wbuf *w = n->wb;
	pthread_mutex_lock(&w->mu);
	wbuf_set_len(w, 0);
	w->dirty = true;
	w->defer = true;
	pthread_mutex_unlock(&w->mu);
	CHECK_EQ_INT(wbuf_commit(&fs, n, n->ino, w, COMMIT_FLUSH), 0);
	CHECK(stored_is(&fs, "t", "keep me"));
	CHECK(w->dirty);
	CHECK_EQ_INT(wbuf_commit(&fs, n, n->ino, w, COMMIT_SYNC), 0);
	CHECK(stored_is(&fs, "t", ""));
	wb_put(&fs, n, n->ino);
	fs_close(&fs);
}

/* The last release commits what is left and frees the buffer. */
static void test_release_commits(void)
{
	struct t4dxfs fs;
	fs_open(&fs, 1 << 20);
	struct node *n = open_file(&fs, "r", "");
	CHECK_EQ_INT(write_at(&fs, n, "xyz", 3, 2), 0);
	wb_put(&fs, n, n->ino);
	CHECK(n->wb == NULL);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 0);
	char *s = stored(&fs, "r");
	CHECK(s && !memcmp(s, "\0\0xyz", 5));
	free(s);
	fs_close(&fs);
}

/* A write refused (past max_item_bytes, or the budget) makes the whole
 * file refused: flush and fsync answer the error, the old content stays,
 * and the release drops the change. */
static void test_sticky_error(void)
{
	struct t4dxfs fs;
	fs_open(&fs, 8192);
	struct node *n = open_file(&fs, "e", "before");
	CHECK_EQ_INT(write_at(&fs, n, "part", 4, 0), 0);
	static char big[16384];
	CHECK_EQ_INT(write_at(&fs, n, big, sizeof(big), 4), ENOSPC);
	CHECK_EQ_INT(wbuf_commit(&fs, n, n->ino, n->wb, COMMIT_FLUSH), ENOSPC);
	CHECK_EQ_INT(wbuf_commit(&fs, n, n->ino, n->wb, COMMIT_SYNC), ENOSPC);
	CHECK(stored_is(&fs, "e", "before"));
	wb_put(&fs, n, n->ino);
	CHECK(stored_is(&fs, "e", "before"));
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 0);
	fs_close(&fs);
}

/* A big buffer is handed to the put without a copy and leaves the
 * budget; the next write copies it and takes the budget again. */
static void test_handover(void)
{
	struct t4dxfs fs;
	fs_open(&fs, 8 << 20);
	struct node *n = open_file(&fs, "big", "");
	size_t len = 2 << 20;
	char *buf = malloc(len);
	REQUIRE(buf);
	memset(buf, 'b', len);
	CHECK_EQ_INT(write_at(&fs, n, buf, len, 0), 0);
	CHECK(atomic_load(&fs.wb_bytes) >= len);
	CHECK_EQ_INT(wbuf_commit(&fs, n, n->ino, n->wb, COMMIT_FLUSH), 0);
	CHECK(n->wb->shared);
	CHECK_EQ_INT(n->wb->cap, 0);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 0);
	CHECK_EQ_INT(write_at(&fs, n, "c", 1, len), 0);
	CHECK(!n->wb->shared);
	CHECK(atomic_load(&fs.wb_bytes) == n->wb->charged);
	CHECK_EQ_INT(wbuf_commit(&fs, n, n->ino, n->wb, COMMIT_SYNC), 0);
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	CHECK_EQ_INT(t4dx_get(fs.db, T4DX_ROOT_INO, "big", 3, T4DX_GET_CONTENT,
			      &e), 0);
	CHECK_EQ_INT(e.size, len + 1);
	CHECK(e.content && e.content->data[len] == 'c' &&
	      e.content->data[0] == 'b');
	t4dx_entry_clear(&e);
	wb_put(&fs, n, n->ino);
	CHECK_EQ_INT(atomic_load(&fs.wb_bytes), 0);
	free(buf);
	fs_close(&fs);
}

/* A file that lost its name while open: its content goes with it. */
static void test_unlinked(void)
{
	struct t4dxfs fs;
	fs_open(&fs, 1 << 20);
	struct node *n = open_file(&fs, "u", "x");
	CHECK_EQ_INT(write_at(&fs, n, "changed", 7, 0), 0);
	ns_lock(&fs);
	n->unlinked = true;
	ns_unlock(&fs);
	CHECK_EQ_INT(wbuf_commit(&fs, n, n->ino, n->wb, COMMIT_FLUSH), 0);
	CHECK(!n->wb->dirty);
	CHECK(stored_is(&fs, "u", "x"));
	wb_put(&fs, n, n->ino);
	fs_close(&fs);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "%s", unit_tmpdir("wbuf"));
	RUN(test_budget);
	RUN(test_flush_durable);
	RUN(test_trunc_deferred);
	RUN(test_release_commits);
	RUN(test_sticky_error);
	RUN(test_handover);
	RUN(test_unlinked);
	unit_rm_rf(dir);
	UNIT_DONE();
}
