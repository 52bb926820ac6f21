/*
 * namespace.c - the operations on names: lookup, forget, mkdir, mknod,
 * symlink, readlink, unlink, rmdir, rename (create's entry too:
 * make_entry); and what the daemon keeps of the namespace beside the
 * inode table: the attributes of open files without a name and the
 * subdirectory counts of directories.
 *
 * The mount: inode 1 is MOUNT/, holding items/ (the engine's root
 * directory, inode T4DX_ROOT_INO) and .ctl/ (inode 2) with the control
 * files (ctl.c).  Below items/ every entry is the engine's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "t4dxfs.h"
#include "ctl.h"
#include "inode.h"

/* ---- open files without a name ----------------------------------------
 * An open file whose name goes away (unlink, rename over it) lives on for
 * its descriptors, as on any local filesystem: fstat gives its attributes
 * with nlink 0, fchmod, fchown, futimens and ftruncate change them, and
 * fgetxattr reads its memory attributes.  The engine has forgotten the
 * key, so the attributes as they were at the unlink are kept here, in
 * memory only, until the last descriptor is closed.  Guarded by ns_mu. */

struct orphan *orphan_find(struct t4dxfs *fs, uint64_t ino)
{
	struct orphan *o = NULL;
	HASH_FIND(hh, fs->orphans, &ino, sizeof(ino), o);
	return o;
}

/* n's name is gone: e is its entry at that moment.  ns_mu held. */
void orphan_node(struct t4dxfs *fs, struct node *n, const struct t4dx_entry *e)
{
	n->unlinked = true;
	if (!n->opens || orphan_find(fs, n->ino))
		return;
	struct orphan *o = calloc(1, sizeof(*o));
	if (!o)
		return;         /* then fstat answers ENOENT, as before */
	o->ino = n->ino;
	o->e = *e;
	o->e.content = NULL;
	o->e.vec = NULL;        /* borrowed, like the content */
	o->e.ctime_ns = t4dx_now_ns();
	HASH_ADD(hh, fs->orphans, ino, sizeof(o->ino), o);
}

/* The last descriptor of n is being closed.  ns_mu held. */
void orphan_drop(struct t4dxfs *fs, struct node *n)
{
	struct orphan *o = n->unlinked ? orphan_find(fs, n->ino) : NULL;
	if (o) {
		HASH_DEL(fs->orphans, o);
		free(o);
	}
}

/* The link count of a directory is 2 + its subdirectories, as on local
 * filesystems (find and du take it as a hint).  The engine keeps no
 * count: the first time a directory's attributes are asked for, its
 * children are counted by a scan, and from then on mkdir, rmdir and
 * rename here keep the count (every change of the namespace passes
 * through this process; compaction removes no directory).  Guarded by
 * ns_mu. */
struct dircount {
	uint64_t ino;
	uint32_t subdirs;
	UT_hash_handle hh;
};

static struct dircount *dircount_find(struct t4dxfs *fs, uint64_t ino)
{
	struct dircount *c = NULL;
	HASH_FIND(hh, fs->dircounts, &ino, sizeof(ino), c);
	return c;
}

static struct dircount *dircount_add(struct t4dxfs *fs, uint64_t ino,
				     uint32_t subdirs)
{
	struct dircount *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ino = ino;
	c->subdirs = subdirs;
	HASH_ADD(hh, fs->dircounts, ino, sizeof(c->ino), c);
	return c;
}

static int count_subdir(void *arg, const struct t4dx_entry *e)
{
	if (S_ISDIR(e->mode))
		(*(uint32_t *)arg)++;
	return 0;
}

/* Set st_nlink of directory ino, counting its subdirectories if that
 * was never done.  A count that cannot be made gives 1, which programs
 * read as "not counted" (as on btrfs).  ns_mu held. */
void dir_nlink(struct t4dxfs *fs, uint64_t ino, struct stat *st)
{
	struct dircount *c = dircount_find(fs, ino);
	if (!c) {
		uint32_t n = 0;
		if (t4dx_scan(fs->db, ino, count_subdir, &n) ||
		    !(c = dircount_add(fs, ino, n))) {
			st->st_nlink = 1;
			return;
		}
	}
	st->st_nlink = 2 + (nlink_t)c->subdirs;
}

int64_t dircount_get(struct t4dxfs *fs, uint64_t ino)
{
	struct dircount *c = dircount_find(fs, ino);
	return c ? (int64_t)c->subdirs : -1;
}

/* Directory dir gained (delta 1) or lost (-1) a subdirectory.  ns_mu. */
static void dircount_move(struct t4dxfs *fs, uint64_t dir, int delta)
{
	struct dircount *c = dircount_find(fs, dir);
	if (c)
		c->subdirs = (uint32_t)((int64_t)c->subdirs + delta);
}

/* Directory ino is gone.  ns_mu held. */
static void dircount_drop(struct t4dxfs *fs, uint64_t ino)
{
	struct dircount *c = dircount_find(fs, ino);
	if (c) {
		HASH_DEL(fs->dircounts, c);
		free(c);
	}
}

/* ---- lookup, forget, getattr ------------------------------------------ */

static int do_lookup(struct t4dxfs *fs, fuse_ino_t parent, const char *name,
		     struct fuse_entry_param *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->generation = INO_GENERATION;
	ep->entry_timeout = fs->entry_timeout;
	ep->attr_timeout = fs->attr_timeout;
	if (is_search(parent))
		return search_lookup(fs, parent, name, ep);
	if (parent == INO_MOUNT_ROOT || parent == INO_CTL_DIR) {
		fuse_ino_t ino = 0;
		if (parent == INO_MOUNT_ROOT && !strcmp(name, "items"))
			ino = INO_ITEMS;
		else if (parent == INO_MOUNT_ROOT && !strcmp(name, ".ctl"))
			ino = INO_CTL_DIR;
		else if (parent == INO_MOUNT_ROOT && !strcmp(name, "search"))
			ino = INO_SEARCH_DIR;
		else if (parent == INO_CTL_DIR && ctl_by_name(name))
			ino = ctl_by_name(name)->ino;
		if (!ino)
			return ENOENT;
		ep->ino = ino;
		if (ino == INO_ITEMS) {
			struct t4dx_entry e = { 0 };
			int rc = t4dx_get(fs->db, 0, "items", 5, 0, &e);
			if (rc)
				return rc;
			fill_param(fs, ep, &e);
			ns_lock(fs);
			dir_nlink(fs, INO_ITEMS, &ep->attr);
			ns_unlock(fs);
		} else {
			fixed_stat(fs, ino, &ep->attr);
		}
		return 0;
	}
	int rc = check_name(name);
	if (rc)
		return rc;
	size_t len = strlen(name);
	struct t4dx_entry e = { 0 };
	ns_lock(fs);
	/* under ns_mu, so that no rename moves the name between the engine
	 * lookup and the table update */
	rc = t4dx_get(fs->db, parent, name, len, 0, &e);
	if (!rc && !node_ref(&fs->nodes, e.ino, parent, name, len, 1))
		rc = ENOMEM;
	if (!rc) {
		fill_param(fs, ep, &e);
		if (S_ISDIR(e.mode))
			dir_nlink(fs, e.ino, &ep->attr);
		else
			apply_wbuf_size(fs, e.ino, &ep->attr);
	}
	ns_unlock(fs);
	if (rc == T4DX_ENOTFOUND) {
		/* a negative entry the kernel may cache */
		ep->ino = 0;
		return 0;
	}
	return rc;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_LOOKUP);
	struct fuse_entry_param ep;
	int rc = do_lookup(fs, parent, name, &ep);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

void forget_one(struct t4dxfs *fs, fuse_ino_t ino, uint64_t n)
{
	if (is_search(ino))
		search_forget(fs, ino, n);
	if (is_fixed(ino) || ino == INO_ITEMS)
		return;
	ns_lock(fs);
	struct node *nd = node_find(&fs->nodes, ino);
	if (nd)
		node_forget(&fs->nodes, nd, n);
	ns_unlock(fs);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	forget_one(fs, ino, nlookup);
	fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count,
		     struct fuse_forget_data *forgets)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* ---- creating and removing -------------------------------------------- */

static void new_entry(struct t4dx_entry *e, fuse_req_t req, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int64_t now = t4dx_now_ns();
	memset(e, 0, sizeof(*e));
	e->mode = mode;
	e->uid = ctx->uid;
	e->gid = ctx->gid;
	e->atime_ns = e->mtime_ns = e->ctime_ns = now;
	if (S_ISREG(mode)) {
		if (getrandom(e->id, sizeof(e->id), 0) != sizeof(e->id))
			for (size_t i = 0; i < sizeof(e->id); i++)
				e->id[i] = (uint8_t)rand();
		e->kappa = 0;
		e->importance = 0.5;
		e->type = T4DX_EPISODIC;
		e->event_time_ns = now;
	}
}

/* A new entry in directory dir takes its group from a set-group-ID
 * directory, and a new directory there is set-group-ID too (as on local
 * filesystems).  ns_mu held. */
static int inherit_from_dir(struct t4dxfs *fs, fuse_ino_t dir,
			    struct t4dx_entry *e)
{
	struct t4dx_entry d = { 0 };
	int rc = ino_entry(fs, dir, 0, &d);
	if (rc)
		return rc;
	if (!S_ISDIR(d.mode))
		return ENOTDIR;
	if (d.mode & S_ISGID) {
		e->gid = d.gid;
		if (S_ISDIR(e->mode))
			e->mode |= S_ISGID;
	}
	return 0;
}

/* An entry of directory dir was created, removed or renamed at time now
 * by the record *wait: the directory's mtime and ctime move (POSIX),
 * through an update record queued after the change's own; *wait becomes
 * that record's LSN, so that whoever waits for the change waits for it
 * too.  If it cannot be queued the change itself stands; only the time is
 * stale.  An fsync of dir waits for both.  ns_mu held. */
static void touch_dir(struct t4dxfs *fs, fuse_ino_t dir, int64_t now,
		      uint64_t *wait)
{
	struct t4dx_entry f;
	uint64_t lsn = 0;
	note_lsn(fs, dir, *wait);
	memset(&f, 0, sizeof(f));
	f.mtime_ns = f.ctime_ns = now;
	if (!update_ino(fs, dir, &f, T4DX_F_MTIME | T4DX_F_CTIME, &lsn) &&
	    lsn > *wait)
		*wait = lsn;
}

/* Create (parent, name) with mode, durable unless nowait (then *lsn is
 * what to wait for), and take a kernel reference. */
/* make_entry, with content (a symbolic link's target; NULL: none). */
static int make_entry_with(struct t4dxfs *fs, fuse_req_t req,
			   fuse_ino_t parent, const char *name, mode_t mode,
			   struct t4dx_blob *content, bool nowait,
			   uint64_t *lsn, struct fuse_entry_param *ep)
{
	struct t4dx_entry e = { 0 };
	uint64_t l = 0;
	if (is_fixed(parent))
		return refuse_in(parent);
	int rc = check_name(name);
	if (rc)
		return rc;
	new_entry(&e, req, mode);
	rc = t4dx_entry_set_key(&e, parent, name, strlen(name));
	if (rc)
		return rc;
	uint64_t dl = 0;
	ns_lock(fs);
	rc = inherit_from_dir(fs, parent, &e);
	if (!rc) {
		e.content = content;    /* the caller's reference */
		e.size = content ? content->len : 0;
		rc = t4dx_put(fs->db, &e, T4DX_EXCL | T4DX_NOWAIT |
			      (nowait ? T4DX_PROVISIONAL : 0), &l);
		e.content = NULL;
	}
	if (!rc) {
		dl = l;
		touch_dir(fs, parent, e.ctime_ns, &dl);
		if (S_ISDIR(mode)) {
			dircount_move(fs, parent, 1);
			dircount_add(fs, e.ino, 0);
		}
	}
	if (!rc && !node_ref(&fs->nodes, e.ino, parent, name, e.name_len, 1))
		rc = ENOMEM;
	if (!rc)
		note_lsn(fs, e.ino, l);
	ns_unlock(fs);
	if (rc)
		return rc;
	fill_param(fs, ep, &e);
	if (S_ISDIR(mode))
		ep->attr.st_nlink = 2;
	if (nowait) {
		/* a provisional file (l == 0) is committed at its first
		 * close by a record after the directory's */
		*lsn = l;
		return 0;
	}
	rc = t4dx_wait(fs->db, dl);
	if (rc)
		forget_one(fs, e.ino, 1);
	return rc;
}

int make_entry(struct t4dxfs *fs, fuse_req_t req, fuse_ino_t parent,
	       const char *name, mode_t mode, bool nowait, uint64_t *lsn,
	       struct fuse_entry_param *ep)
{
	return make_entry_with(fs, req, parent, name, mode, NULL, nowait,
			       lsn, ep);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_MKDIR);
	struct fuse_entry_param ep;
	int rc = make_entry(fs, req, parent, name, S_IFDIR | (mode & 07777),
			    false, NULL, &ep);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

static int do_remove(struct t4dxfs *fs, fuse_ino_t parent, const char *name,
		     bool dir)
{
	struct t4dx_entry e = { 0 };
	uint64_t lsn = 0;
	if (is_fixed(parent))
		return refuse_in(parent);
	int rc = check_name(name);
	if (rc)
		return rc;
	size_t len = strlen(name);
	ns_lock(fs);
	rc = t4dx_get(fs->db, parent, name, len, 0, &e);
	if (!rc)
		rc = t4dx_delete(fs->db, parent, name, len, dir, T4DX_NOWAIT,
				 &lsn);
	if (!rc) {
		struct node *n = node_find(&fs->nodes, e.ino);
		if (n) {
			orphan_node(fs, n, &e);
			note_lsn(fs, e.ino, lsn);
		}
		if (dir) {
			dircount_move(fs, parent, -1);
			dircount_drop(fs, e.ino);
		}
		fs->ns_gen++;
		touch_dir(fs, parent, t4dx_now_ns(), &lsn);
	}
	ns_unlock(fs);
	if (rc == T4DX_ENOTFOUND)
		return ENOENT;
	if (!rc)
		rc = t4dx_wait(fs->db, lsn);
	return rc;
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_UNLINK);
	reply_err(req, do_remove(fs, parent, name, false));
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_RMDIR);
	reply_err(req, do_remove(fs, parent, name, true));
}

static int do_rename(struct t4dxfs *fs, fuse_ino_t parent, const char *name,
		     fuse_ino_t np, const char *newname, unsigned int flags)
{
	struct t4dx_entry src, dst;
	uint64_t lsn = 0;
	int rc;
	if (flags & ~RENAME_NOREPLACE)
		return EINVAL;          /* RENAME_EXCHANGE, RENAME_WHITEOUT */
	if (is_fixed(parent) || is_fixed(np))
		return is_search(parent) || is_search(np) ? EACCES : EPERM;
	if ((rc = check_name(name)) || (rc = check_name(newname)))
		return rc;
	size_t len = strlen(name), nlen = strlen(newname);
	ns_lock(fs);
	rc = t4dx_get(fs->db, parent, name, len, 0, &src);
	bool had_dst = false;
	if (!rc) {
		had_dst = t4dx_get(fs->db, np, newname, nlen, 0, &dst) == 0;
		rc = t4dx_rename(fs->db, parent, name, len, np, newname, nlen,
				 ((flags & RENAME_NOREPLACE) ? T4DX_NOREPLACE
				  : 0) | T4DX_NOWAIT, &lsn);
	}
	if (!rc && lsn) {
		note_lsn(fs, src.ino, lsn);
		if (had_dst && dst.ino != src.ino) {
			struct node *d = node_find(&fs->nodes, dst.ino);
			if (d) {
				orphan_node(fs, d, &dst);
				note_lsn(fs, dst.ino, lsn);
			}
			if (S_ISDIR(dst.mode)) {
				dircount_move(fs, np, -1);
				dircount_drop(fs, dst.ino);
			}
		}
		if (S_ISDIR(src.mode) && np != parent) {
			dircount_move(fs, parent, -1);
			dircount_move(fs, np, 1);
		}
		struct node *n = node_find(&fs->nodes, src.ino);
		if (n)
			node_move(n, np, newname, nlen);
		fs->ns_gen++;
		int64_t now = t4dx_now_ns();
		touch_dir(fs, parent, now, &lsn);
		if (np != parent)
			touch_dir(fs, np, now, &lsn);
	}
	ns_unlock(fs);
	if (rc == T4DX_ENOTFOUND)
		return ENOENT;
	if (!rc && lsn)
		rc = t4dx_wait(fs->db, lsn);
	return rc;
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname,
	       unsigned int flags)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_RENAME);
	reply_err(req, do_rename(fs, parent, name, newparent, newname, flags));
}

static void op_eperm(fuse_req_t req)
{
	reply_err(req, EPERM);
}

/* A symbolic link is an entry of mode S_IFLNK whose content is its
 * target, created durably like a directory (the reply waits for its
 * record); no id, no vector, no t4dx attributes: not a memory, so the
 * embedder, search and prune pass it by.  Its target is what the kernel
 * accepts (below PATH_MAX, no NUL) and is given back as it was. */
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		const char *name)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_SYMLINK);
	size_t len = strlen(link);
	if (!len || len >= PATH_MAX) {
		reply_err(req, len ? ENAMETOOLONG : ENOENT);
		return;
	}
	struct t4dx_blob *target = t4dx_blob_from(link, len);
	if (!target) {
		reply_err(req, ENOMEM);
		return;
	}
	struct fuse_entry_param ep;
	int rc = make_entry_with(fs, req, parent, name, S_IFLNK | 0777,
				 target, false, NULL, &ep);
	t4dx_blob_unref(target);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_READLINK);
	if (is_search(ino)) {
		search_readlink(req, ino);
		return;
	}
	struct t4dx_entry e = { 0 };
	char *target = NULL;
	ns_lock(fs);
	int rc = is_fixed(ino) ? EINVAL : ino_entry(fs, ino, T4DX_GET_CONTENT,
						     &e);
	ns_unlock(fs);
	if (!rc && !S_ISLNK(e.mode))
		rc = EINVAL;
	if (!rc) {
		size_t len = e.content ? e.content->len : 0;
		target = malloc(len + 1);
		if (!target)
			rc = ENOMEM;
		else {
			if (len)
				memcpy(target, e.content->data, len);
			target[len] = 0;
		}
	}
	t4dx_entry_clear(&e);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_readlink(req, target);
	free(target);
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	     const char *newname)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_LINK);
	reply_err(req, refuse_in(newparent));
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode, dev_t rdev)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_MKNOD);
	/* a regular file (Python's os.mknod, mknod(2) with S_IFREG) is a
	 * memory like any other; device nodes, FIFOs and sockets are not
	 * stored */
	if (!S_ISREG(mode)) {
		op_eperm(req);
		return;
	}
	struct fuse_entry_param ep;
	int rc = make_entry(fs, req, parent, name, S_IFREG | (mode & 07777),
			    false, NULL, &ep);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

void namespace_free_all(struct t4dxfs *fs)
{
	struct orphan *o, *tmp;
	HASH_ITER(hh, fs->orphans, o, tmp) {
		HASH_DEL(fs->orphans, o);
		free(o);
	}
	struct dircount *dc, *dctmp;
	HASH_ITER(hh, fs->dircounts, dc, dctmp) {
		HASH_DEL(fs->dircounts, dc);
		free(dc);
	}
}
