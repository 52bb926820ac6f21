/*
 * attr.c - getattr and setattr: attributes, truncate, and the clearing of
 * the set-user-ID bits by unprivileged writes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "t4dxfs.h"
#include "inode.h"

int do_getattr(struct t4dxfs *fs, fuse_ino_t ino, struct stat *st)
{
	if (is_search(ino))
		return search_getattr(fs, ino, st);
	if (is_fixed(ino)) {
		fixed_stat(fs, ino, st);
		return 0;
	}
	struct t4dx_entry e = { 0 };
	ns_lock(fs);
	int rc = ino_entry(fs, ino, 0, &e);
	if (!rc) {
		entry_stat(&e, st);
		apply_wbuf_size(fs, ino, st);
		if (S_ISDIR(e.mode))
			dir_nlink(fs, ino, st);
		else if (orphan_find(fs, ino))
			st->st_nlink = 0;
	}
	ns_unlock(fs);
	return rc;
}

void op_getattr(fuse_req_t req, fuse_ino_t ino,
		struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_GETATTR);
	struct stat st;
	int rc = do_getattr(fs, ino, &st);
	if (rc)
		reply_err(req, rc);
	else    /* search/ is never cached (search.c) */
		fuse_reply_attr(req, &st,
				is_search(ino) ? 0 : fs->attr_timeout);
}

/* ---- set-user-ID and set-group-ID bits --------------------------------
 * As local filesystems do, a write or truncate by a process without
 * CAP_FSETID (here: any user but root) clears the set-user-ID bit, and
 * the set-group-ID bit of a group-executable file, so that nobody can
 * change a privileged program and keep its privilege. */

mode_t priv_bits(mode_t mode)
{
	mode_t bits = mode & S_ISUID;
	if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		bits |= S_ISGID;
	return bits;
}

/* Clear ino's privilege bits, durable with the next commit.  The caller
 * holds no lock. */
void kill_priv(struct t4dxfs *fs, fuse_ino_t ino)
{
	struct t4dx_entry e = { 0 };
	bool changed = false;
	ns_lock(fs);
	if (!ino_entry(fs, ino, 0, &e) && priv_bits(e.mode)) {
		struct t4dx_entry f;
		memset(&f, 0, sizeof(f));
		f.mode = e.mode & ~priv_bits(e.mode);
		f.ctime_ns = t4dx_now_ns();
		changed = !update_ino(fs, ino, &f, T4DX_F_MODE | T4DX_F_CTIME,
				      NULL);
	}
	ns_unlock(fs);
	if (changed)
		invalidate(fs, ino);
}

/* ---- setattr ---------------------------------------------------------- */

/* Set the size of ino.  With a write buffer attached, the buffer takes
 * the new length.  An ftruncate through one of its write descriptors
 * (by_writer) then leaves it to the writer's next commit, like its
 * writes.  A truncate from anywhere else commits the buffer now: the
 * buffer may outlive every writer's close (the kernel releases a file
 * after close returns), and readers and a crash must not see the old
 * size after truncate(2) has returned the new one. */
static int truncate_item(struct t4dxfs *fs, fuse_ino_t ino, uint64_t size,
			 bool by_writer)
{
	struct node *n = NULL;
	struct t4dx_entry e = { 0 };
	uint64_t lsn = 0;
	int rc;

	if (size > fs->max_item_bytes)
		return EFBIG;
	ns_lock(fs);
	n = node_find(&fs->nodes, ino);
	struct wbuf *w = wb_pin(n);
	if (w) {
		ns_unlock(fs);
		pthread_mutex_lock(&w->mu);
		if (w->err && !by_writer) {
			/* its writes failed (EFBIG): the buffer will never be
			 * committed, so the truncate goes to the stored file */
			pthread_mutex_unlock(&w->mu);
			wb_put(fs, n, ino);
			ns_lock(fs);
			goto stored;
		}
		rc = wbuf_reserve_keep(fs, w, size,
				       size < w->len ? size : w->len);
		if (!rc) {
			if (size > w->len)
				memset(w->data + w->len, 0, size - w->len);
			wbuf_set_len(w, size);
			wbuf_written(fs, n, w);
			w->mtime_set = true;         /* changed now */
			w->mtime_ns = t4dx_now_ns();
		}
		pthread_mutex_unlock(&w->mu);
		if (!rc && !by_writer)
			rc = wbuf_commit(fs, n, ino, w, COMMIT_SYNC);
		wb_put(fs, n, ino);
		return rc;
	}
stored:;
	struct orphan *o = orphan_find(fs, ino);
	if (o) {
		/* a name-less file keeps no content: only its size */
		o->e.size = size;
		o->e.mtime_ns = o->e.ctime_ns = t4dx_now_ns();
		ns_unlock(fs);
		return 0;
	}
	rc = node_entry(fs, ino, T4DX_GET_CONTENT, &e, NULL);
	if (rc == T4DX_ENOTFOUND)
		rc = ENOENT;
	if (!rc && S_ISDIR(e.mode))
		rc = EISDIR;
	if (!rc && size != e.size) {
		struct t4dx_blob *b = t4dx_blob_new(size);
		if (!b) {
			rc = ENOMEM;
		} else {
			size_t keep = size < e.size ? size : e.size;
			if (keep)
				memcpy(b->data, e.content->data, keep);
			memset(b->data + keep, 0, size - keep);
			t4dx_blob_unref(e.content);
			e.content = b;
			e.size = size;
			e.mtime_ns = e.ctime_ns = t4dx_now_ns();
			rc = t4dx_put(fs->db, &e, T4DX_NOWAIT, &lsn);
			if (!rc)
				note_lsn(fs, ino, lsn);
			if (!rc && n)
				n->content_gen++;
		}
	}
	t4dx_entry_clear(&e);
	ns_unlock(fs);
	if (!rc && lsn) {
		rc = t4dx_wait(fs->db, lsn);
		invalidate(fs, ino);
	}
	return rc;
}

static int do_setattr(struct t4dxfs *fs, fuse_ino_t ino, struct stat *attr,
		      int to_set, uid_t caller, bool by_writer,
		      struct stat *out)
{
	struct t4dx_entry f;
	uint32_t mask = 0;
	uint64_t lsn = 0;
	int rc = 0;
	int64_t now = t4dx_now_ns();

	if (is_fixed(ino))
		return is_search(ino) ? EACCES : EPERM;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		rc = truncate_item(fs, ino, (uint64_t)attr->st_size, by_writer);
		if (rc)
			return rc;
		if (caller != 0 && !(to_set & FUSE_SET_ATTR_MODE))
			kill_priv(fs, ino);
	}
	memset(&f, 0, sizeof(f));
	if (to_set & FUSE_SET_ATTR_MODE) {
		f.mode = attr->st_mode;
		mask |= T4DX_F_MODE;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		f.uid = attr->st_uid;
		mask |= T4DX_F_UID;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		f.gid = attr->st_gid;
		mask |= T4DX_F_GID;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		f.atime_ns = to_set & FUSE_SET_ATTR_ATIME_NOW
				     ? now : ns_of(attr->st_atim);
		mask |= T4DX_F_ATIME;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		f.mtime_ns = to_set & FUSE_SET_ATTR_MTIME_NOW
				     ? now : ns_of(attr->st_mtim);
		mask |= T4DX_F_MTIME;
	}
	if (mask) {
		f.ctime_ns = (to_set & FUSE_SET_ATTR_CTIME)
				     ? ns_of(attr->st_ctim) : now;
		mask |= T4DX_F_CTIME;
		/* no wait for the record: chmod, chown and utimens are
		 * durable with the next commit of anything, at the latest
		 * wal.commit_interval_ms later, and an fsync of the file or
		 * of its directory waits for them (both sync_lsn raised) */
		ns_lock(fs);
		struct orphan *o = orphan_find(fs, ino);
		if (o)  /* kept in memory only: the file has no key */
			t4dx_entry_apply(&o->e, &f, mask);
		else
			rc = update_ino(fs, ino, &f, mask, &lsn);
		struct node *n = node_find(&fs->nodes, ino);
		if (!rc && lsn && n && !n->unlinked)
			note_lsn(fs, n->parent, lsn);
		struct wbuf *w = wb_pin(n);
		ns_unlock(fs);
		if (!rc && w && (mask & T4DX_F_MTIME)) {
			/* futimens while writing: the commit keeps it */
			pthread_mutex_lock(&w->mu);
			w->mtime_set = true;
			w->mtime_ns = f.mtime_ns;
			pthread_mutex_unlock(&w->mu);
		}
		if (w)
			wb_put(fs, n, ino);
		if (rc)
			return rc == T4DX_ENOTFOUND ? ENOENT : rc;
	}
	return do_getattr(fs, ino, out);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		int to_set, struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_SETATTR);
	struct stat st;
	int rc = do_setattr(fs, ino, attr, to_set, fuse_req_ctx(req)->uid,
			    fh_is_writer(fi), &st);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, fs->attr_timeout);
}
