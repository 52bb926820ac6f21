/*
 * file.c - open files: open, create's handle, read, write, flush, fsync,
 * release.  Read-only opens read a snapshot of the committed content taken
 * at open (refreshed after a commit); write handles share the inode's
 * write buffer (wbuf.c).  Control files are opened here too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "t4dxfs.h"
#include "ctl.h"
#include "inode.h"

/* ---- open files ------------------------------------------------------- */

enum fh_kind { FH_READ, FH_WRITE, FH_CTL };

struct fh {
	enum fh_kind kind;
	fuse_ino_t ino;
	struct node *node;              /* FH_READ, FH_WRITE */
	struct t4dx_blob *snap;         /* FH_READ: content at open;
	                                   FH_CTL: generated content */
	uint64_t create_lsn;            /* FH_WRITE from create: wait on flush */
	uint32_t gen;                   /* FH_READ: node->content_gen of snap;
	                                   guarded by ns_mu */
	bool append;                    /* FH_WRITE opened with O_APPEND */
	bool killpriv;                  /* FH_WRITE: the file was set-user-
	                                   or set-group-ID at open */
	LIST_ENTRY(fh) link;            /* open_fhs, guarded by ns_mu */
};

/* Every open handle, so that those the kernel never released (an unmount
 * by signal drops pending RELEASEs) are freed at exit. */

/* A setattr through a write descriptor (an ftruncate): the kernel passes
 * the file of the call only then. */
bool fh_is_writer(const struct fuse_file_info *fi)
{
	const struct fh *h = fi ? (const struct fh *)(uintptr_t)fi->fh : NULL;
	return h && h->kind == FH_WRITE;
}

/* Hand h to the kernel. */
static void fh_publish(struct t4dxfs *fs, struct fh *h,
		       struct fuse_file_info *fi)
{
	ns_lock(fs);
	LIST_INSERT_HEAD(&fs->open_fhs, h, link);
	ns_unlock(fs);
	fi->fh = (uintptr_t)h;
}

static int open_ctl(struct t4dxfs *fs, fuse_ino_t ino,
		    struct fuse_file_info *fi)
{
	const struct ctl_file *c = ctl_by_ino(ino);
	bool search = is_search(ino);
	if (!c && !search)
		return EISDIR;
	int acc = fi->flags & O_ACCMODE;
	if (acc != O_RDONLY && (search || !c->store))
		return EACCES;
	if (acc != O_RDONLY && c->may_write) {
		int rc = c->may_write(fs);
		if (rc)
			return rc;
	}
	struct fh *h = calloc(1, sizeof(*h));
	if (!h)
		return ENOMEM;
	h->kind = FH_CTL;
	h->ino = ino;
	if (acc != O_WRONLY) {
		struct t4dx_buf b = { 0 };
		int rc = search ? search_show(fs, ino, &b) : c->show(fs, &b);
		if (!rc && !(h->snap = t4dx_blob_from(b.p, b.len)))
			rc = ENOMEM;
		t4dx_buf_free(&b);
		if (rc) {
			free(h);
			return rc;
		}
	}
	fh_publish(fs, h, fi);
	fi->direct_io = 1;
	fi->nonseekable = 0;
	return 0;
}

/* Attach a write handle to the node, creating its buffer from the
 * committed content (or empty when truncating).  ns_mu held. */
static int attach_writer(struct t4dxfs *fs, struct node *n, bool trunc,
			 bool fresh)
{
	struct t4dx_entry e = { 0 };
	if (!n->wb) {
		struct wbuf *w = wbuf_new();
		if (!w)
			return ENOMEM;
		if (!trunc && !fresh) {
			int rc = t4dx_get(fs->db, n->parent, n->name,
					  n->name_len, T4DX_GET_CONTENT, &e);
			if (rc) {
				wbuf_free(fs, w);
				return rc == T4DX_ENOTFOUND ? ENOENT : rc;
			}
			/* the committed bytes, shared until changed */
			if (e.size)
				wbuf_share(fs, w, e.content);
			wbuf_set_len(w, e.size);
			t4dx_entry_clear(&e);
			if (rc) {
				wbuf_free(fs, w);
				return rc;
			}
		}
		n->wb = w;
	}
	n->wb->refs++;
	n->opens++;
	return 0;
}

/* O_TRUNC on an open of an existing file: empty the shared buffer.  Not
 * under ns_mu (lock order: w->mu, then ns_mu). */
static void truncate_writer(struct t4dxfs *fs, struct node *n, struct wbuf *w)
{
	pthread_mutex_lock(&w->mu);
	wbuf_set_len(w, 0);
	w->dirty = true;
	w->defer = true;
	w->err = 0;
	w->mtime_set = true;         /* changed now */
	w->mtime_ns = t4dx_now_ns();
	/* as on a local filesystem, the file reads as empty from now on
	 * (the kernel emptied its page cache already): the next read of
	 * every open read descriptor looks again (refresh_snap) */
	atomic_store(&w->emptied, true);
	ns_lock(fs);
	n->content_gen++;
	ns_unlock(fs);
	pthread_mutex_unlock(&w->mu);
}

static int do_open(struct t4dxfs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_fixed(ino))
		return ino == INO_MOUNT_ROOT || ino == INO_CTL_DIR
			       ? EISDIR : open_ctl(fs, ino, fi);
	if (ino == INO_ITEMS)
		return EISDIR;
	struct fh *h = calloc(1, sizeof(*h));
	if (!h)
		return ENOMEM;
	h->ino = ino;
	struct node *n = NULL;
	struct t4dx_entry e = { 0 };
	int acc = fi->flags & O_ACCMODE;
	uint64_t t0 = mono_ns();
	ns_lock(fs);
	int rc = node_entry(fs, ino, acc == O_RDONLY ? T4DX_GET_CONTENT : 0,
			    &e, &n);
	if (acc == O_RDONLY)
		t4dx_hist_observe_ns(&fs->metrics.read_lat, mono_ns() - t0);
	if (rc == T4DX_ENOTFOUND)
		rc = ENOENT;
	if (!rc && S_ISDIR(e.mode))
		rc = EISDIR;
	if (!rc && acc == O_RDONLY) {
		h->kind = FH_READ;
		h->snap = e.content;
		e.content = NULL;
		if (n->wb && atomic_load(&n->wb->emptied)) {
			/* emptied by an O_TRUNC open, not committed yet */
			t4dx_blob_unref(h->snap);
			h->snap = NULL;
		}
		n->opens++;
		h->gen = n->content_gen;
		/* A reader shares the page cache, kept across opens: every
		 * change of the content passes through the daemon, which
		 * drops the kernel's copy (commit, truncate), and every read
		 * serves the newest committed version.  While a writer is
		 * active the reader bypasses the cache: the kernel sizes the
		 * inode by the writer's uncommitted writes. */
		fi->direct_io = n->wb != NULL;
		fi->keep_cache = !fi->direct_io;
		/* closing a read-only file has nothing to commit */
		fi->noflush = 1;
	} else if (!rc) {
		h->kind = FH_WRITE;
		h->killpriv = priv_bits(e.mode) != 0;
		h->append = fi->flags & O_APPEND;
		rc = attach_writer(fs, n, fi->flags & O_TRUNC, false);
	}
	if (!rc)
		h->node = n;
	struct wbuf *w = !rc && h->kind == FH_WRITE ? n->wb : NULL;
	ns_unlock(fs);
	t4dx_entry_clear(&e);
	if (rc) {
		free(h);
		return rc;
	}
	if (w && (fi->flags & O_TRUNC))
		truncate_writer(fs, n, w);
	/* written bytes live in the write buffer until the commit, never in
	 * the page cache that readers of the committed version share */
	if (w)
		fi->direct_io = 1;
	fh_publish(fs, h, fi);
	return 0;
}

static void fh_release(struct t4dxfs *fs, struct fh *h);

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_OPEN);
	int rc = do_open(fs, ino, fi);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (h->kind == FH_WRITE && h->killpriv && (fi->flags & O_TRUNC) &&
	    fuse_req_ctx(req)->uid != 0) {
		h->killpriv = false;
		kill_priv(fs, ino);
	}
	if (fuse_reply_open(req, fi) == -ENOENT)
		fh_release(fs, h);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode, struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_CREATE);
	struct fuse_entry_param ep;
	uint64_t lsn = 0;
	struct fh *h = calloc(1, sizeof(*h));
	if (!h) {
		reply_err(req, ENOMEM);
		return;
	}
	int rc = make_entry(fs, req, parent, name, S_IFREG | (mode & 07777),
			    true, &lsn, &ep);
	if (!rc) {
		ns_lock(fs);
		struct node *n = node_find(&fs->nodes, ep.ino);
		rc = n ? attach_writer(fs, n, true, true) : ENOENT;
		if (!rc) {
			h->kind = FH_WRITE;
			h->ino = ep.ino;
			h->node = n;
			h->create_lsn = lsn;
			h->append = fi->flags & O_APPEND;
		}
		ns_unlock(fs);
	}
	if (rc) {
		free(h);
		reply_err(req, rc);
		return;
	}
	if (!lsn) {
		/* provisional: the file's first record is the put of its
		 * content at the first flush, even if nothing was written */
		struct wbuf *w = h->node->wb;
		pthread_mutex_lock(&w->mu);
		w->dirty = true;
		w->fresh = true;
		pthread_mutex_unlock(&w->mu);
	}
	fh_publish(fs, h, fi);
	fi->direct_io = 1;
	if (fuse_reply_create(req, &ep, fi) == -ENOENT) {
		/* nor the entry's reference */
		fh_release(fs, h);
		forget_one(fs, ep.ino, 1);
	}
}

/* A read handle whose file was committed since its last read takes the
 * new version (as on a local filesystem, a descriptor reads what the file
 * holds now; a file replaced by a rename or unlinked keeps its own).
 * ns_mu held. */
static void refresh_snap(struct t4dxfs *fs, struct fh *h)
{
	struct node *n = h->node;
	if (h->gen == n->content_gen || n->unlinked)
		return;
	if (n->wb && atomic_load(&n->wb->emptied)) {
		/* emptied by an O_TRUNC open, not committed yet */
		t4dx_blob_unref(h->snap);
		h->snap = NULL;
		h->gen = n->content_gen;
		return;
	}
	struct t4dx_entry e = { 0 };
	if (!t4dx_get(fs->db, n->parent, n->name, n->name_len,
		      T4DX_GET_CONTENT, &e)) {
		t4dx_blob_unref(h->snap);
		h->snap = e.content;
		e.content = NULL;
		h->gen = n->content_gen;
	}
	t4dx_entry_clear(&e);
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_READ);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (h->kind != FH_WRITE) {
		/* the kernel may release the handle while the reply is still
		 * being written: hold the content until it is sent */
		struct t4dx_blob *b;
		if (h->kind == FH_READ) {
			ns_lock(fs);
			refresh_snap(fs, h);
			b = t4dx_blob_ref(h->snap);
			ns_unlock(fs);
		} else {
			b = t4dx_blob_ref(h->snap);
		}
		size_t len = b ? b->len : 0;
		size_t n = (uint64_t)off < len ? len - (size_t)off : 0;
		if (n > size)
			n = size;
		fuse_reply_buf(req, n ? (const char *)b->data + off : NULL, n);
		t4dx_blob_unref(b);
	} else {
		/* copy out under the lock: once the reply is sent, a release
		 * on another thread may free the buffer */
		struct wbuf *w = h->node->wb;
		pthread_mutex_lock(&w->mu);
		size_t n = (uint64_t)off < w->len ? w->len - (size_t)off : 0;
		if (n > size)
			n = size;
		char *copy = n ? malloc(n) : NULL;
		if (copy)
			memcpy(copy, w->data + off, n);
		pthread_mutex_unlock(&w->mu);
		if (n && !copy)
			reply_err(req, ENOMEM);
		else
			fuse_reply_buf(req, copy, n);
		free(copy);
	}
}

static int ctl_write(struct t4dxfs *fs, struct fh *h, const char *buf,
		     size_t size, off_t off)
{
	const struct ctl_file *c = ctl_by_ino(h->ino);
	if (!c || !c->store)
		return EACCES;
	if (off != 0 || size > CTL_MAX_WRITE)
		return EINVAL;
	return c->store(fs, buf, size);
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
	      size_t size, off_t off, struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_WRITE);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	int rc = 0;
	if (h->kind == FH_CTL) {
		rc = ctl_write(fs, h, buf, size, off);
	} else if (h->kind != FH_WRITE) {
		rc = EBADF;
	} else if (off < 0) {
		rc = EINVAL;
	} else {
		struct wbuf *w = h->node->wb;
		/* before the file's lock: it may try the disk */
		int room = t4dx_write_room(fs->db);
		pthread_mutex_lock(&w->mu);
		/* the end of the buffer, not the kernel's idea of the size,
		 * which a concurrent reader or writer may have moved */
		if (h->append)
			off = (off_t)w->len;
		uint64_t end = (uint64_t)off + size;
		if (end > fs->max_item_bytes) {
			/* the whole file is refused: the item keeps its
			 * previous content, whatever the next close does */
			w->err = EFBIG;
			rc = EFBIG;
		} else if (w->len > fs->max_item_bytes) {
			/* a file already past the limit (lowered since it
			 * was written) and unchanged, since nothing but a
			 * truncate below the limit changes it: this write
			 * alone is refused, the file is not */
			rc = EFBIG;
		} else if ((rc = room)) {
			/* degraded with the queue full: the close would
			 * refuse the file, which a shell's redirection never
			 * sees; the whole file is refused now, as for EFBIG */
			w->err = rc;
		} else if (!(rc = wbuf_reserve(fs, w, end))) {
			if ((uint64_t)off > w->len)
				memset(w->data + w->len, 0,
				       (size_t)off - w->len);
			memcpy(w->data + off, buf, size);
			if (end > w->len)
				wbuf_set_len(w, end);
			wbuf_written(fs, h->node, w);
			w->mtime_set = true;         /* changed now */
			w->mtime_ns = t4dx_now_ns();
		} else {
			/* no room (the write buffer budget) or no memory:
			 * as for EFBIG, the whole file is refused rather
			 * than a close committing it without this write */
			w->err = rc;
		}
		pthread_mutex_unlock(&w->mu);
		if (!rc && h->killpriv && fuse_req_ctx(req)->uid != 0) {
			h->killpriv = false;
			kill_priv(fs, ino);
		}
	}
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_write(req, size);
}

static int do_flush(struct t4dxfs *fs, struct fh *h, enum commit_how how)
{
	if (h->kind != FH_WRITE)
		return 0;
	/* the handle's reference keeps node->wb */
	int rc = wbuf_commit(fs, h->node, h->ino, h->node->wb, how);
	if (!rc && h->create_lsn) {
		rc = t4dx_wait(fs->db, h->create_lsn);
		if (!rc)
			h->create_lsn = 0;
	}
	return rc;
}

void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_FLUSH);
	reply_err(req,
		  do_flush(fs, (struct fh *)(uintptr_t)fi->fh, COMMIT_FLUSH));
}

/* fsync of ino: wait until every record that changed it is durable (see
 * "What fsync waits for" in inode.c), not the records of other inodes.
 * Never 0 for what is not on disk, whatever the policy: a change that
 * was acknowledged as unpersisted answers the error (EIO, ENOSPC).
 * Two waits cover everything queued so far instead: an fsync of items/,
 * the root of the whole tree, which is what `t4dx sync MOUNT` and a
 * user's syncfs stand-in do (the kernel sends no FUSE_SYNCFS to a
 * /dev/fuse mount, see README Durability), and any fsync in durability
 * mode fsync, where nothing else waits (ext4's data=ordered commit). */
static int sync_ino(struct t4dxfs *fs, fuse_ino_t ino)
{
	if (ino == INO_ITEMS ||
	    t4dx_durability(fs->db) == T4DX_DURABLE_FSYNC)
		return t4dx_sync(fs->db, 0);
	ns_lock(fs);
	uint64_t lsn = node_sync_lsn(&fs->nodes, ino);
	ns_unlock(fs);
	/* 0: no record changed it since a mount that found the log empty */
	return lsn ? t4dx_sync(fs->db, lsn) : 0;
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	      struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_FSYNC);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (h->kind == FH_CTL) {
		/* mode fsync: any fsync waits for everything */
		reply_err(req, t4dx_durability(fs->db) == T4DX_DURABLE_FSYNC
				       ? t4dx_sync(fs->db, 0) : 0);
		return;
	}
	if (h->kind == FH_WRITE) {
		int rc = do_flush(fs, h, COMMIT_SYNC);
		/* a commit acknowledged as unpersisted is not enough */
		reply_err(req, rc ? rc : sync_ino(fs, h->ino));
		return;
	}
	/* fsync makes the file durable, whichever descriptor asks: what
	 * writers of the inode have in their buffer is committed too */
	ns_lock(fs);
	struct wbuf *w = wb_pin(h->node);
	ns_unlock(fs);
	int rc = w ? wbuf_commit(fs, h->node, h->ino, w, COMMIT_SYNC) : 0;
	if (w)
		wb_put(fs, h->node, h->ino);
	reply_err(req, rc ? rc : sync_ino(fs, h->ino));
}

/* Commit the files created in directory dir that are still open and
 * were never committed: their create is provisional (no record until the
 * first close, see make_entry), so without this an fsync of the
 * directory would say 0 for an entry that is on no disk.  Each gets what
 * its writers have written so far, as an fsync of it would.  0 or the
 * first error. */
static int commit_new_files(struct t4dxfs *fs, fuse_ino_t dir)
{
	struct pinned { struct node *n; fuse_ino_t ino; struct wbuf *w; };
	struct pinned *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct fh *h;
	ns_lock(fs);
	LIST_FOREACH(h, &fs->open_fhs, link) {
		if (h->kind != FH_WRITE || h->node->unlinked ||
		    h->node->parent != dir || !h->node->wb)
			continue;
		bool seen = false;
		for (size_t i = 0; i < n && !seen; i++)
			seen = v[i].n == h->node;
		if (seen)
			continue;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 8;
			struct pinned *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				rc = ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[n].n = h->node;
		v[n].ino = h->ino;
		v[n++].w = wb_pin(h->node);
	}
	ns_unlock(fs);
	/* w->mu comes before ns_mu: fresh is read with the pins taken */
	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&v[i].w->mu);
		bool fresh = v[i].w->fresh;
		pthread_mutex_unlock(&v[i].w->mu);
		int e = fresh ? wbuf_commit(fs, v[i].n, v[i].ino, v[i].w,
					     COMMIT_SYNC) : 0;
		if (!rc)
			rc = e;
		wb_put(fs, v[i].n, v[i].ino);
	}
	free(v);
	return rc;
}

/* fsync of a directory: waits for its entries' changes, its children's
 * metadata (chmod, chown, utimens and xattrs, which do not wait) and
 * its own attributes, once its new files still open have a record
 * (commit_new_files).  Creates, removes and renames were durable when
 * their calls returned in mode close, unless acknowledged as
 * unpersisted; this says which. */
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_FSYNC);
	if (is_fixed(ino)) {
		/* MOUNT/ is the root of items/ too: `sync MOUNT` waits as
		 * one of items/ does; in mode fsync so does any directory */
		reply_err(req, ino == INO_MOUNT_ROOT ||
				       t4dx_durability(fs->db) ==
					       T4DX_DURABLE_FSYNC
			       ? t4dx_sync(fs->db, 0) : 0);
		return;
	}
	int rc = commit_new_files(fs, ino);
	reply_err(req, rc ? rc : sync_ino(fs, ino));
}

/* The end of a handle: its last close, or an open whose reply the kernel
 * did not take (the call was interrupted), so no release will come. */
static void fh_release(struct t4dxfs *fs, struct fh *h)
{
	if (h->kind != FH_CTL) {
		if (h->kind == FH_WRITE)
			wb_put(fs, h->node, h->ino);
		ns_lock(fs);
		if (h->node->opens == 1)
			orphan_drop(fs, h->node);
		node_close(&fs->nodes, h->node);
		ns_unlock(fs);
	}
	ns_lock(fs);
	LIST_REMOVE(h, link);
	ns_unlock(fs);
	t4dx_blob_unref(h->snap);
	free(h);
}

void op_release(fuse_req_t req, fuse_ino_t ino,
		struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_RELEASE);
	fh_release(fs, (struct fh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

void fh_free_all(struct t4dxfs *fs)
{
	struct fh *h;
	while ((h = LIST_FIRST(&fs->open_fhs))) {
		LIST_REMOVE(h, link);
		if (h->kind == FH_WRITE && h->node->wb &&
		    --h->node->wb->refs == 0) {
			wbuf_free(fs, h->node->wb);
			h->node->wb = NULL;
		}
		t4dx_blob_unref(h->snap);
		free(h);
	}
}
