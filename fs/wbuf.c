/*
 * wbuf.c - write buffers and their commit, the durability path of a
 * file's content.
 *
 * Open for writing gives the inode a shared write buffer (the committed
 * content, or empty with O_TRUNC); writes, truncates and appends change
 * the buffer; flush (every close) and fsync commit it as one engine put
 * and return only once that record is durable, with its error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t4dxfs.h"
#include "inode.h"

/* ---- write buffers and commits ---------------------------------------- */

struct wbuf *wbuf_new(void)
{
	struct wbuf *w = calloc(1, sizeof(*w));
	if (w)
		pthread_mutex_init(&w->mu, NULL);
	return w;
}

void wbuf_free(struct t4dxfs *fs, struct wbuf *w)
{
	atomic_fetch_sub(&fs->wb_bytes, w->charged);
	pthread_mutex_destroy(&w->mu);
	t4dx_blob_unref(w->buf);
	free(w);
}

/* Share the committed content c (a new reference) as the buffer's bytes,
 * until the first change copies them.  w->mu held, or w not yet seen. */
void wbuf_share(struct t4dxfs *fs, struct wbuf *w, struct t4dx_blob *c)
{
	atomic_fetch_sub(&fs->wb_bytes, w->charged);
	t4dx_blob_unref(w->buf);
	w->buf = t4dx_blob_ref(c);
	w->data = c ? c->data : NULL;
	w->cap = w->charged = 0;
	w->shared = c != NULL;
}

/* Take grow bytes of the budget all write buffers share; false if they
 * do not fit. */
static bool wb_budget_take(struct t4dxfs *fs, size_t grow)
{
	uint64_t limit = fs->cfg.limits.write_buffer_bytes;
	uint64_t cur = atomic_load(&fs->wb_bytes);
	do {
		if (cur + grow > limit)
			return false;
	} while (!atomic_compare_exchange_weak(&fs->wb_bytes, &cur,
					       cur + grow));
	return true;
}

/* Make room for len bytes.  wb->mu held.  The uncommitted writes of all
 * open files together stay within limits.write_buffer_bytes: past it a
 * write fails with ENOSPC and changes nothing (any user allowed on the
 * mount could otherwise run the daemon out of memory). */
int wbuf_reserve_keep(struct t4dxfs *fs, struct wbuf *w, size_t len,
		      size_t keep)
{
	/* the budget counts what the writes ask for, the room grows by
	 * doubling (up to the item limit, past which no write goes) */
	size_t want = len > keep ? len : keep;
	size_t grow = want > w->charged ? want - w->charged : 0;
	if (!w->shared && len <= w->cap) {
		if (grow && !wb_budget_take(fs, grow))
			return ENOSPC;
		w->charged += grow;
		return 0;
	}
	/* shared: a copy of the first keep bytes, of its own */
	size_t cap = w->cap ? w->cap : 4096;
	while (cap < want)
		cap *= 2;
	if (cap > want && cap > fs->max_item_bytes)
		cap = want > fs->max_item_bytes ? want
						 : (size_t)fs->max_item_bytes;
	if (grow && !wb_budget_take(fs, grow))
		return ENOSPC;
	struct t4dx_blob *b;
	if (w->shared) {
		b = t4dx_blob_new(cap);
		if (b && keep)
			memcpy(b->data, w->data, keep);
	} else {
		b = w->buf ? t4dx_blob_resize(w->buf, cap)
			   : t4dx_blob_new(cap);
	}
	if (!b) {
		atomic_fetch_sub(&fs->wb_bytes, grow);
		return ENOMEM;
	}
	if (w->shared)
		t4dx_blob_unref(w->buf);
	w->buf = b;
	w->data = b->data;
	w->cap = cap;
	w->charged += grow;
	w->shared = false;
	return 0;
}

int wbuf_reserve(struct t4dxfs *fs, struct wbuf *w, size_t len)
{
	return wbuf_reserve_keep(fs, w, len, w->len);
}

/* The buffer's bytes as a blob for a put, without a copy where it can:
 * a buffer of its own becomes the committed content (cut to its length)
 * and is shared from then on; a shared one is already committed bytes.
 * A buffer handed over this way stays counted in the write buffers'
 * budget (for its length) until wbuf_put_done() hears that the put took
 * it: a put that fails leaves the bytes held by this buffer alone, and
 * the next write, which copies them, must not take the budget twice over
 * for bytes that nothing counts.  NULL when out of memory.  w->mu held. */
static struct t4dx_blob *wbuf_blob(struct t4dxfs *fs, struct wbuf *w)
{
	if (w->shared && w->buf->len == w->len)
		return t4dx_blob_ref(w->buf);
	if (w->shared || !w->buf)
		return t4dx_blob_from(w->data, w->len);
	/* small buffers keep their room for the writes that may follow */
	if (w->len < (1u << 20))
		return t4dx_blob_from(w->data, w->len);
	struct t4dx_blob *b = t4dx_blob_resize(w->buf, w->len);
	if (!b)
		return NULL;
	atomic_fetch_sub(&fs->wb_bytes, w->charged - w->len);
	w->buf = b;
	w->data = b->data;
	w->cap = w->charged = w->len;
	w->shared = true;
	return t4dx_blob_ref(b);
}

/* The put of the buffer's bytes succeeded: bytes it shares with the
 * engine are the committed content now, no longer a write buffer's
 * (wbuf_blob).  w->mu held. */
static void wbuf_put_done(struct t4dxfs *fs, struct wbuf *w)
{
	if (!w->shared)
		return;
	atomic_fetch_sub(&fs->wb_bytes, w->charged);
	w->cap = w->charged = 0;
}

/* Set the buffer's length (shrinking, or after the bytes are in place).
 * wb->mu held. */
void wbuf_set_len(struct wbuf *w, size_t len)
{
	w->len = len;
	atomic_store(&w->shown_len, len);
}

/* The buffer of n takes bytes a writer gave it (w->mu held): a file an
 * O_TRUNC open emptied reads as its committed version again, as it does
 * while any writer is at work (readers never see uncommitted bytes). */
void wbuf_written(struct t4dxfs *fs, struct node *n, struct wbuf *w)
{
	w->dirty = true;
	w->defer = false;
	if (atomic_load(&w->emptied)) {
		atomic_store(&w->emptied, false);
		ns_lock(fs);
		n->content_gen++;
		ns_unlock(fs);
	}
}

/* Commit w, the write buffer of node n (inode ino), if it holds a
 * change, as one put, and return the commit's error once the record is
 * durable.  The caller holds a reference to w (a write handle's, a pin,
 * or wb_put's last one), so w outlives the call whatever other threads
 * release meanwhile.
 *
 * Every close() of a file descriptor sends a flush, also the close of a
 * duplicate (a shell's `>` opens, dup2()s and closes the original before
 * the command writes a byte).  A buffer changed only by the O_TRUNC of its
 * open is therefore not committed by a flush but at release (the last
 * close) or by an fsync: committing the empty file early would destroy
 * the previous content even when the writes that follow then fail
 * (EFBIG). */
int wbuf_commit(struct t4dxfs *fs, struct node *n, fuse_ino_t ino,
		struct wbuf *w, enum commit_how how)
{
	bool at_release = how == COMMIT_RELEASE;
	uint64_t lsn = 0, prev = 0, t0 = mono_ns();
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	if (w->err) {
		rc = at_release ? 0 : w->err;
		if (!at_release || !w->fresh)
			goto out;
		/* a new file whose writes failed stays, empty, as created */
		wbuf_set_len(w, 0);
	}
	/* a new file is committed at its first close even if an O_TRUNC
	 * open made its buffer wait: there is no old content to protect */
	if (!w->dirty || (w->defer && how == COMMIT_FLUSH && !w->fresh)) {
		/* nothing of its own, but what another descriptor's commit
		 * queued may not be durable yet: a close or fsync that
		 * returns 0 promises it is */
		if (!at_release)
			prev = w->queued_lsn;
		goto out;
	}
	struct t4dx_blob *blob = wbuf_blob(fs, w);
	if (!blob) {
		rc = ENOMEM;
		goto out;
	}
	struct t4dx_entry e = { 0 };
	ns_lock(fs);
	if (n->unlinked) {
		/* the file lost its name while open: its content goes too */
		ns_unlock(fs);
		t4dx_blob_unref(blob);
		w->dirty = false;
		goto out;
	}
	rc = t4dx_get(fs->db, n->parent, n->name, n->name_len, 0, &e);
	if (!rc) {
		int64_t now = t4dx_now_ns();
		e.content = blob;
		e.size = blob->len;
		e.mtime_ns = w->mtime_set ? w->mtime_ns : now;
		e.ctime_ns = now;
		rc = t4dx_put(fs->db, &e, T4DX_NOWAIT, &lsn);
		e.content = NULL;
		if (!rc) {
			/* a new file's first record creates its entry too */
			note_lsn(fs, ino, lsn);
			if (w->fresh)
				note_lsn(fs, n->parent, lsn);
			n->content_gen++;
			atomic_store(&w->emptied, false);
			wbuf_put_done(fs, w);
		}
	}
	ns_unlock(fs);
	t4dx_blob_unref(blob);
	if (rc)
		goto out;
	/* once queued, the record is written by some commit even if this
	 * one fails: the buffer is no longer dirty */
	w->dirty = false;
	w->defer = false;
	w->fresh = false;
	if (lsn)
		w->queued_lsn = lsn;
out:
	pthread_mutex_unlock(&w->mu);
	if (!rc && lsn) {
		rc = t4dx_wait(fs->db, lsn);
		invalidate(fs, ino);
		t4dx_hist_observe_ns(&fs->metrics.write_lat, mono_ns() - t0);
	} else if (!rc && prev) {
		rc = t4dx_wait(fs->db, prev);
	}
	return rc;
}

/* Take a reference to the node's write buffer, if it has one, so that it
 * outlives a concurrent release.  ns_mu held. */
struct wbuf *wb_pin(struct node *n)
{
	struct wbuf *w = n ? n->wb : NULL;
	if (w)
		w->refs++;
	return w;
}

/* Drop a reference to n's write buffer (a handle's or a pin).  The last
 * one commits what is left (a deferred O_TRUNC, a truncate by path made
 * while the file was open) while it still holds its reference, and then
 * frees the buffer, unless someone took a reference meanwhile: their own
 * last put commits and frees it. */
void wb_put(struct t4dxfs *fs, struct node *n, fuse_ino_t ino)
{
	ns_lock(fs);
	struct wbuf *w = n->wb;
	bool last = w && w->refs == 1;
	if (w && !last)
		w->refs--;
	ns_unlock(fs);
	if (!last)
		return;
	if (fs->test_release_pause_ms)
		usleep(fs->test_release_pause_ms * 1000u);
	for (;;) {
		int rc = wbuf_commit(fs, n, ino, w, COMMIT_RELEASE);
		pthread_mutex_lock(&w->mu);
		ns_lock(fs);
		if (w->refs > 1) {
			w->refs--;
			ns_unlock(fs);
			pthread_mutex_unlock(&w->mu);
			return;
		}
		/* a writer that came and went during the commit may have
		 * left a change (its release found our reference): commit
		 * that too.  A failed commit at release has nobody to tell;
		 * the change is dropped, as a write whose close failed. */
		bool again = !rc && w->dirty && !w->err;
		if (!again) {
			w->refs = 0;
			if (n->wb == w)
				n->wb = NULL;
			/* an O_TRUNC never committed (its writes failed):
			 * readers that saw the file empty read it again */
			if (atomic_load(&w->emptied))
				n->content_gen++;
		}
		ns_unlock(fs);
		pthread_mutex_unlock(&w->mu);
		if (!again) {
			wbuf_free(fs, w);
			return;
		}
	}
}
