/*
 * t4dxfs.c - the FUSE daemon: command line, mount, and the low-level FUSE
 * operations.
 *
 * Every handler does its work in a helper that returns 0 or an errno (or
 * a t4dx code) and replies exactly once, through reply_err() for errors,
 * which is the one place where engine codes become errno values.
 *
 * The mount: inode 1 is MOUNT/, holding items/ (the engine's root
 * directory, inode T4DX_ROOT_INO) and .ctl/ (inode 2) with the control
 * files (ctl.c).  Below items/ every entry is the engine's.
 *
 * Writing a file: open for writing gives the inode a shared write buffer
 * (the committed content, or empty with O_TRUNC); writes, truncates and
 * appends change the buffer; flush (every close) and fsync commit it as one
 * engine put and return only once that record is durable, with its error.
 * Read-only opens read a snapshot of the committed content taken at open.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#include "t4dxfs.h"
#include "config.h"
#include "ctl.h"
#include "inode.h"

struct t4dxfs fs;

#define LISTING_ATTR_TIMEOUT 1.0

/* ---- helpers ---------------------------------------------------------- */

/* The operation this thread is handling, for the error metrics. */
static __thread int cur_op = -1;

static void count_op(int op)
{
	cur_op = op;
	atomic_fetch_add_explicit(&fs.metrics.ops[op], 1,
				  memory_order_relaxed);
}

/* The one place where engine codes become the errno of a reply. */
static void reply_err(fuse_req_t req, int rc)
{
	int err = t4dx_errno(rc);
	if (err && cur_op >= 0 && err < FS_ERRNO_MAX)
		atomic_fetch_add_explicit(&fs.metrics.errs[cur_op][err], 1,
					  memory_order_relaxed);
	fuse_reply_err(req, err);
}

/* The answer for an extended attribute t4dx does not have: counted
 * apart from errors, so that an error rate means something. */
static void reply_xattr(fuse_req_t req, int rc)
{
	int err = t4dx_errno(rc);
	if ((err == ENOTSUP || err == ENODATA) && cur_op >= 0) {
		atomic_fetch_add_explicit(&fs.metrics.xattr_absent[cur_op], 1,
					  memory_order_relaxed);
		fuse_reply_err(req, err);
		return;
	}
	reply_err(req, rc);
}

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static struct timespec ts_of(int64_t ns)
{
	struct timespec t = { .tv_sec = ns / 1000000000,
			      .tv_nsec = ns % 1000000000 };
	if (t.tv_nsec < 0) {
		t.tv_sec--;
		t.tv_nsec += 1000000000;
	}
	return t;
}

static int64_t ns_of(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The stat of an item from its stored fields (an entry's, or a listed
 * one's: struct dent below).  SET_STAT leaves the other fields of st as
 * they are: zero, if st was cleared once for a run of entries. */
#define SET_STAT(st, e) do {                                             \
		(st)->st_ino = (e)->ino;                                  \
		(st)->st_mode = (e)->mode;                                \
		(st)->st_nlink = 1; /* directories: dir_nlink() */         \
		(st)->st_uid = (e)->uid;                                  \
		(st)->st_gid = (e)->gid;                                  \
		(st)->st_size = (off_t)(e)->size;                         \
		(st)->st_blksize = 4096;                                  \
		(st)->st_blocks = (blkcnt_t)(((e)->size + 511) / 512);    \
		(st)->st_atim = ts_of((e)->atime_ns);                     \
		(st)->st_mtim = ts_of((e)->mtime_ns);                     \
		(st)->st_ctim = ts_of((e)->ctime_ns);                     \
	} while (0)
#define FILL_STAT(st, e) do {                                            \
		memset((st), 0, sizeof(*(st)));                           \
		SET_STAT(st, e);                                          \
	} while (0)

static void entry_stat(const struct t4dx_entry *e, struct stat *st)
{
	FILL_STAT(st, e);
}

static void fixed_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = 1;
	st->st_uid = fs.uid;
	st->st_gid = fs.gid;
	st->st_atim = st->st_mtim = st->st_ctim = ts_of(fs.start_ns);
	const struct ctl_file *c = ctl_by_ino(ino);
	if (c) {
		st->st_mode = S_IFREG | (c->store ? 0644 : 0444);
	} else {
		st->st_mode = S_IFDIR | 0755;
		/* the mount's root holds items/ and .ctl/ */
		st->st_nlink = ino == INO_MOUNT_ROOT ? 4 : 2;
	}
}

static bool is_fixed(fuse_ino_t ino)
{
	return ino < T4DX_ROOT_INO;
}

/* ---- open files without a name ----------------------------------------
 * An open file whose name goes away (unlink, rename over it) lives on for
 * its descriptors, as on any local filesystem: fstat gives its attributes
 * with nlink 0, fchmod, fchown, futimens and ftruncate change them, and
 * fgetxattr reads its memory attributes.  The engine has forgotten the
 * key, so the attributes as they were at the unlink are kept here, in
 * memory only, until the last descriptor is closed.  Guarded by ns_mu. */
struct orphan {
	uint64_t ino;
	struct t4dx_entry e;            /* no content */
	UT_hash_handle hh;
};
static struct orphan *orphans;

static struct orphan *orphan_find(uint64_t ino)
{
	struct orphan *o = NULL;
	HASH_FIND(hh, orphans, &ino, sizeof(ino), o);
	return o;
}

/* n's name is gone: e is its entry at that moment.  ns_mu held. */
static void orphan_node(struct node *n, const struct t4dx_entry *e)
{
	n->unlinked = true;
	if (!n->opens || orphan_find(n->ino))
		return;
	struct orphan *o = calloc(1, sizeof(*o));
	if (!o)
		return;         /* then fstat answers ENOENT, as before */
	o->ino = n->ino;
	o->e = *e;
	o->e.content = NULL;
	o->e.ctime_ns = t4dx_now_ns();
	HASH_ADD(hh, orphans, ino, sizeof(o->ino), o);
}

/* The last descriptor of n is being closed.  ns_mu held. */
static void orphan_drop(struct node *n)
{
	struct orphan *o = n->unlinked ? orphan_find(n->ino) : NULL;
	if (o) {
		HASH_DEL(orphans, o);
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
static struct dircount *dircounts;

static struct dircount *dircount_find(uint64_t ino)
{
	struct dircount *c = NULL;
	HASH_FIND(hh, dircounts, &ino, sizeof(ino), c);
	return c;
}

static struct dircount *dircount_add(uint64_t ino, uint32_t subdirs)
{
	struct dircount *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ino = ino;
	c->subdirs = subdirs;
	HASH_ADD(hh, dircounts, ino, sizeof(c->ino), c);
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
static void dir_nlink(uint64_t ino, struct stat *st)
{
	struct dircount *c = dircount_find(ino);
	if (!c) {
		uint32_t n = 0;
		if (t4dx_scan(fs.db, ino, count_subdir, &n) ||
		    !(c = dircount_add(ino, n))) {
			st->st_nlink = 1;
			return;
		}
	}
	st->st_nlink = 2 + (nlink_t)c->subdirs;
}

/* Directory dir gained (delta 1) or lost (-1) a subdirectory.  ns_mu. */
static void dircount_move(uint64_t dir, int delta)
{
	struct dircount *c = dircount_find(dir);
	if (c)
		c->subdirs = (uint32_t)((int64_t)c->subdirs + delta);
}

/* Directory ino is gone.  ns_mu held. */
static void dircount_drop(uint64_t ino)
{
	struct dircount *c = dircount_find(ino);
	if (c) {
		HASH_DEL(dircounts, c);
		free(c);
	}
}

/* Look up the entry of an engine inode through the table.  Called with
 * ns_mu held.  ENOENT for an unknown or unlinked inode. */
static int node_entry(fuse_ino_t ino, unsigned flags, struct t4dx_entry *e,
		      struct node **np)
{
	struct node *n = node_find(ino);
	if (!n || n->unlinked)
		return ENOENT;
	if (np)
		*np = n;
	return t4dx_get(fs.db, n->parent, n->name, n->name_len, flags, e);
}

/* The key of an inode: items/ is (0, "items"), the rest from the table.
 * ns_mu held. */
static int key_of(fuse_ino_t ino, uint64_t *parent, char *name, size_t *len)
{
	if (ino == INO_ITEMS) {
		*parent = 0;
		memcpy(name, "items", 6);
		*len = 5;
		return 0;
	}
	struct node *n = node_find(ino);
	if (!n || n->unlinked)
		return ENOENT;
	*parent = n->parent;
	memcpy(name, n->name, n->name_len + 1);
	*len = n->name_len;
	return 0;
}

/* items/ has no node: the LSN of the last record that changed it, as a
 * node's sync_lsn (see "What fsync waits for" in inode.c).  ns_mu. */
static uint64_t items_sync_lsn;

/* The record lsn changed ino, so an fsync of ino waits for it.  ns_mu
 * held. */
static void note_lsn(fuse_ino_t ino, uint64_t lsn)
{
	if (ino == INO_ITEMS) {
		if (lsn > items_sync_lsn)
			items_sync_lsn = lsn;
	} else if (!is_fixed(ino)) {
		node_note_lsn(ino, lsn);
	}
}

/* Get an inode's current entry (attributes only; an open file that lost
 * its name gives its kept attributes).  ns_mu held. */
static int ino_entry(fuse_ino_t ino, unsigned flags, struct t4dx_entry *e)
{
	uint64_t parent;
	char name[T4DX_NAME_MAX + 1];
	size_t len;
	int rc = key_of(ino, &parent, name, &len);
	if (rc == ENOENT && !(flags & T4DX_GET_CONTENT)) {
		struct orphan *o = orphan_find(ino);
		if (o) {
			*e = o->e;
			return 0;
		}
	}
	if (rc)
		return rc;
	rc = t4dx_get(fs.db, parent, name, len, flags, e);
	return rc == T4DX_ENOTFOUND ? ENOENT : rc;
}

/* Change the fields of mask of an inode's entry (one update record,
 * NOWAIT; *lsn, if lsn is not NULL, is what to wait for).  ns_mu held. */
static int update_ino(fuse_ino_t ino, const struct t4dx_entry *f,
		      uint32_t mask, uint64_t *lsn)
{
	uint64_t parent, l = 0;
	char name[T4DX_NAME_MAX + 1];
	size_t len;
	int rc = key_of(ino, &parent, name, &len);
	if (!rc)
		rc = t4dx_update(fs.db, parent, name, len, f, mask,
				 T4DX_NOWAIT, &l);
	if (!rc)
		note_lsn(ino, l);
	if (lsn)
		*lsn = l;
	return rc;
}

/* Size of an inode as readers of the kernel should see it: a write
 * buffer being filled counts.  ns_mu held. */
static void node_wbuf_size(const struct node *n, struct stat *st)
{
	if (n && n->wb) {
		size_t len = atomic_load(&n->wb->shown_len);
		st->st_size = (off_t)len;
		st->st_blocks = (blkcnt_t)((len + 511) / 512);
	}
}

static void apply_wbuf_size(fuse_ino_t ino, struct stat *st)
{
	node_wbuf_size(node_find(ino), st);
}

/* The generation of every inode: numbers are never reused (the engine's
 * next_ino only grows).  Every reply that gives the kernel an inode must
 * carry the same one: the kernel takes a different generation for a
 * reused number and marks its inode bad, so open files on it fail EIO. */
#define INO_GENERATION 1

static void fill_param(struct fuse_entry_param *ep, const struct t4dx_entry *e)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = e->ino;
	ep->generation = INO_GENERATION;
	ep->entry_timeout = fs.entry_timeout;
	ep->attr_timeout = fs.attr_timeout;
	entry_stat(e, &ep->attr);
}

static int check_name(const char *name)
{
	size_t len = strlen(name);
	if (len > T4DX_NAME_MAX)
		return ENAMETOOLONG;
	return len ? 0 : EINVAL;
}

/* ---- lookup, forget, getattr ------------------------------------------ */

static int do_lookup(fuse_ino_t parent, const char *name,
		     struct fuse_entry_param *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->generation = INO_GENERATION;
	ep->entry_timeout = fs.entry_timeout;
	ep->attr_timeout = fs.attr_timeout;
	if (parent == INO_MOUNT_ROOT || parent == INO_CTL_DIR) {
		fuse_ino_t ino = 0;
		if (parent == INO_MOUNT_ROOT && !strcmp(name, "items"))
			ino = INO_ITEMS;
		else if (parent == INO_MOUNT_ROOT && !strcmp(name, ".ctl"))
			ino = INO_CTL_DIR;
		else if (parent == INO_CTL_DIR && ctl_by_name(name))
			ino = ctl_by_name(name)->ino;
		if (!ino)
			return ENOENT;
		ep->ino = ino;
		if (ino == INO_ITEMS) {
			struct t4dx_entry e = { 0 };
			int rc = t4dx_get(fs.db, 0, "items", 5, 0, &e);
			if (rc)
				return rc;
			fill_param(ep, &e);
			ns_lock();
			dir_nlink(INO_ITEMS, &ep->attr);
			ns_unlock();
		} else {
			fixed_stat(ino, &ep->attr);
		}
		return 0;
	}
	int rc = check_name(name);
	if (rc)
		return rc;
	size_t len = strlen(name);
	struct t4dx_entry e = { 0 };
	ns_lock();
	/* under ns_mu, so that no rename moves the name between the engine
	 * lookup and the table update */
	rc = t4dx_get(fs.db, parent, name, len, 0, &e);
	if (!rc && !node_ref(e.ino, parent, name, len, 1))
		rc = ENOMEM;
	if (!rc) {
		fill_param(ep, &e);
		if (S_ISDIR(e.mode))
			dir_nlink(e.ino, &ep->attr);
		else
			apply_wbuf_size(e.ino, &ep->attr);
	}
	ns_unlock();
	if (rc == T4DX_ENOTFOUND) {
		/* a negative entry the kernel may cache */
		ep->ino = 0;
		return 0;
	}
	return rc;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count_op(OP_LOOKUP);
	struct fuse_entry_param ep;
	int rc = do_lookup(parent, name, &ep);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

static void forget_one(fuse_ino_t ino, uint64_t n)
{
	if (is_fixed(ino) || ino == INO_ITEMS)
		return;
	ns_lock();
	struct node *nd = node_find(ino);
	if (nd)
		node_forget(nd, n);
	ns_unlock();
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_one(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static int do_getattr(fuse_ino_t ino, struct stat *st)
{
	if (is_fixed(ino)) {
		fixed_stat(ino, st);
		return 0;
	}
	struct t4dx_entry e = { 0 };
	ns_lock();
	int rc = ino_entry(ino, 0, &e);
	if (!rc) {
		entry_stat(&e, st);
		apply_wbuf_size(ino, st);
		if (S_ISDIR(e.mode))
			dir_nlink(ino, st);
		else if (orphan_find(ino))
			st->st_nlink = 0;
	}
	ns_unlock();
	return rc;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	count_op(OP_GETATTR);
	struct stat st;
	int rc = do_getattr(ino, &st);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, fs.attr_timeout);
}

/* ---- write buffers and commits ---------------------------------------- */

static uint64_t fs_max_item(void)
{
	return fs.max_item_bytes;
}

static struct wbuf *wbuf_new(void)
{
	struct wbuf *w = calloc(1, sizeof(*w));
	if (w)
		pthread_mutex_init(&w->mu, NULL);
	return w;
}

static void wbuf_free(struct wbuf *w)
{
	atomic_fetch_sub(&fs.wb_bytes, w->cap);
	pthread_mutex_destroy(&w->mu);
	t4dx_blob_unref(w->buf);
	free(w);
}

/* Share the committed content c (a new reference) as the buffer's bytes,
 * until the first change copies them.  w->mu held, or w not yet seen. */
static void wbuf_share(struct wbuf *w, struct t4dx_blob *c)
{
	atomic_fetch_sub(&fs.wb_bytes, w->cap);
	t4dx_blob_unref(w->buf);
	w->buf = t4dx_blob_ref(c);
	w->data = c ? c->data : NULL;
	w->cap = 0;
	w->shared = c != NULL;
}

/* Take grow bytes of the budget all write buffers share; false if they
 * do not fit. */
static bool wb_budget_take(size_t grow)
{
	uint64_t limit = fs.cfg.limits.write_buffer_bytes;
	uint64_t cur = atomic_load(&fs.wb_bytes);
	do {
		if (cur + grow > limit)
			return false;
	} while (!atomic_compare_exchange_weak(&fs.wb_bytes, &cur,
					       cur + grow));
	return true;
}

/* Make room for len bytes.  wb->mu held.  The uncommitted writes of all
 * open files together stay within limits.write_buffer_bytes: past it a
 * write fails with ENOSPC and changes nothing (any user allowed on the
 * mount could otherwise run the daemon out of memory). */
static int wbuf_reserve_keep(struct wbuf *w, size_t len, size_t keep)
{
	if (!w->shared && len <= w->cap)
		return 0;
	/* shared: a copy of the first keep bytes, of its own */
	size_t want = len > keep ? len : keep;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap < want)
		cap *= 2;
	if (!wb_budget_take(cap - w->cap)) {
		/* not the doubling, but maybe what is asked for */
		cap = want;
		if (!wb_budget_take(cap - w->cap))
			return ENOSPC;
	}
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
		atomic_fetch_sub(&fs.wb_bytes, cap - w->cap);
		return ENOMEM;
	}
	if (w->shared)
		t4dx_blob_unref(w->buf);
	w->buf = b;
	w->data = b->data;
	w->cap = cap;
	w->shared = false;
	return 0;
}

static int wbuf_reserve(struct wbuf *w, size_t len)
{
	return wbuf_reserve_keep(w, len, w->len);
}

/* The buffer's bytes as a blob for a put, without a copy where it can:
 * a buffer of its own becomes the committed content (cut to its length)
 * and is shared from then on; a shared one is already committed bytes.
 * A buffer handed over this way stays counted in the write buffers'
 * budget (for its length) until wbuf_put_done() hears that the put took
 * it: a put that fails leaves the bytes held by this buffer alone, and
 * the next write, which copies them, must not take the budget twice over
 * for bytes that nothing counts.  NULL when out of memory.  w->mu held. */
static struct t4dx_blob *wbuf_blob(struct wbuf *w)
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
	atomic_fetch_sub(&fs.wb_bytes, w->cap - w->len);
	w->buf = b;
	w->data = b->data;
	w->cap = w->len;
	w->shared = true;
	return t4dx_blob_ref(b);
}

/* The put of the buffer's bytes succeeded: bytes it shares with the
 * engine are the committed content now, no longer a write buffer's
 * (wbuf_blob).  w->mu held. */
static void wbuf_put_done(struct wbuf *w)
{
	if (!w->shared)
		return;
	atomic_fetch_sub(&fs.wb_bytes, w->cap);
	w->cap = 0;
}

/* Set the buffer's length (shrinking, or after the bytes are in place).
 * wb->mu held. */
static void wbuf_set_len(struct wbuf *w, size_t len)
{
	w->len = len;
	atomic_store(&w->shown_len, len);
}

/* The buffer of n takes bytes a writer gave it (w->mu held): a file an
 * O_TRUNC open emptied reads as its committed version again, as it does
 * while any writer is at work (readers never see uncommitted bytes). */
static void wbuf_written(struct node *n, struct wbuf *w)
{
	w->dirty = true;
	w->defer = false;
	if (atomic_load(&w->emptied)) {
		atomic_store(&w->emptied, false);
		ns_lock();
		n->content_gen++;
		ns_unlock();
	}
}

/* Tell the kernel to drop its cached attributes and pages of ino: its
 * content changed in the daemon. */
static void invalidate(fuse_ino_t ino)
{
	atomic_fetch_add(&fs.attr_gen, 1);
	if (fs.se)
		fuse_lowlevel_notify_inval_inode(fs.se, ino, 0, 0);
}

/* How a commit treats a buffer that only an O_TRUNC open changed. */
enum commit_how {
	COMMIT_FLUSH,           /* a close: wait for the last one (below) */
	COMMIT_SYNC,            /* fsync: commit whatever the buffer holds */
	COMMIT_RELEASE,         /* the last reference is going */
};

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
static int commit(struct node *n, fuse_ino_t ino, struct wbuf *w,
		  enum commit_how how)
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
	struct t4dx_blob *blob = wbuf_blob(w);
	if (!blob) {
		rc = ENOMEM;
		goto out;
	}
	struct t4dx_entry e = { 0 };
	ns_lock();
	if (n->unlinked) {
		/* the file lost its name while open: its content goes too */
		ns_unlock();
		t4dx_blob_unref(blob);
		w->dirty = false;
		goto out;
	}
	rc = t4dx_get(fs.db, n->parent, n->name, n->name_len, 0, &e);
	if (!rc) {
		int64_t now = t4dx_now_ns();
		e.content = blob;
		e.size = blob->len;
		e.mtime_ns = w->mtime_set ? w->mtime_ns : now;
		e.ctime_ns = now;
		rc = t4dx_put(fs.db, &e, T4DX_NOWAIT, &lsn);
		e.content = NULL;
		if (!rc) {
			/* a new file's first record creates its entry too */
			note_lsn(ino, lsn);
			if (w->fresh)
				note_lsn(n->parent, lsn);
			n->content_gen++;
			atomic_store(&w->emptied, false);
			wbuf_put_done(w);
		}
	}
	ns_unlock();
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
		rc = t4dx_wait(fs.db, lsn);
		invalidate(ino);
		t4dx_hist_observe_ns(&fs.metrics.write_lat, mono_ns() - t0);
	} else if (!rc && prev) {
		rc = t4dx_wait(fs.db, prev);
	}
	return rc;
}

/* Take a reference to the node's write buffer, if it has one, so that it
 * outlives a concurrent release.  ns_mu held. */
static struct wbuf *wb_pin(struct node *n)
{
	struct wbuf *w = n ? n->wb : NULL;
	if (w)
		w->refs++;
	return w;
}

/* T4DX_TEST_RELEASE_PAUSE_MS: a test hook that widens the window between
 * the last release of a write buffer and its commit, where a concurrent
 * truncate or utimens used to free the buffer under the commit. */
static unsigned test_release_pause_ms;

/* Drop a reference to n's write buffer (a handle's or a pin).  The last
 * one commits what is left (a deferred O_TRUNC, a truncate by path made
 * while the file was open) while it still holds its reference, and then
 * frees the buffer, unless someone took a reference meanwhile: their own
 * last put commits and frees it. */
static void wb_put(struct node *n, fuse_ino_t ino)
{
	ns_lock();
	struct wbuf *w = n->wb;
	bool last = w && w->refs == 1;
	if (w && !last)
		w->refs--;
	ns_unlock();
	if (!last)
		return;
	if (test_release_pause_ms)
		usleep(test_release_pause_ms * 1000u);
	for (;;) {
		int rc = commit(n, ino, w, COMMIT_RELEASE);
		pthread_mutex_lock(&w->mu);
		ns_lock();
		if (w->refs > 1) {
			w->refs--;
			ns_unlock();
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
		ns_unlock();
		pthread_mutex_unlock(&w->mu);
		if (!again) {
			wbuf_free(w);
			return;
		}
	}
}

/* ---- set-user-ID and set-group-ID bits --------------------------------
 * As local filesystems do, a write or truncate by a process without
 * CAP_FSETID (here: any user but root) clears the set-user-ID bit, and
 * the set-group-ID bit of a group-executable file, so that nobody can
 * change a privileged program and keep its privilege. */

static mode_t priv_bits(mode_t mode)
{
	mode_t bits = mode & S_ISUID;
	if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		bits |= S_ISGID;
	return bits;
}

/* Clear ino's privilege bits, durable with the next commit.  The caller
 * holds no lock. */
static void kill_priv(fuse_ino_t ino)
{
	struct t4dx_entry e = { 0 };
	bool changed = false;
	ns_lock();
	if (!ino_entry(ino, 0, &e) && priv_bits(e.mode)) {
		struct t4dx_entry f;
		memset(&f, 0, sizeof(f));
		f.mode = e.mode & ~priv_bits(e.mode);
		f.ctime_ns = t4dx_now_ns();
		changed = !update_ino(ino, &f, T4DX_F_MODE | T4DX_F_CTIME,
				      NULL);
	}
	ns_unlock();
	if (changed)
		invalidate(ino);
}

/* ---- setattr ---------------------------------------------------------- */

/* Set the size of ino.  With a write buffer attached, the buffer takes
 * the new length.  An ftruncate through one of its write descriptors
 * (by_writer) then leaves it to the writer's next commit, like its
 * writes.  A truncate from anywhere else commits the buffer now: the
 * buffer may outlive every writer's close (the kernel releases a file
 * after close returns), and readers and a crash must not see the old
 * size after truncate(2) has returned the new one. */
static bool fh_is_writer(const struct fuse_file_info *fi);

static int truncate_item(fuse_ino_t ino, uint64_t size, bool by_writer)
{
	struct node *n = NULL;
	struct t4dx_entry e = { 0 };
	uint64_t lsn = 0;
	int rc;

	if (size > fs_max_item())
		return EFBIG;
	ns_lock();
	n = node_find(ino);
	struct wbuf *w = wb_pin(n);
	if (w) {
		ns_unlock();
		pthread_mutex_lock(&w->mu);
		if (w->err && !by_writer) {
			/* its writes failed (EFBIG): the buffer will never be
			 * committed, so the truncate goes to the stored file */
			pthread_mutex_unlock(&w->mu);
			wb_put(n, ino);
			ns_lock();
			goto stored;
		}
		rc = wbuf_reserve_keep(w, size, size < w->len ? size : w->len);
		if (!rc) {
			if (size > w->len)
				memset(w->data + w->len, 0, size - w->len);
			wbuf_set_len(w, size);
			wbuf_written(n, w);
			w->mtime_set = true;         /* changed now */
			w->mtime_ns = t4dx_now_ns();
		}
		pthread_mutex_unlock(&w->mu);
		if (!rc && !by_writer)
			rc = commit(n, ino, w, COMMIT_SYNC);
		wb_put(n, ino);
		return rc;
	}
stored:;
	struct orphan *o = orphan_find(ino);
	if (o) {
		/* a name-less file keeps no content: only its size */
		o->e.size = size;
		o->e.mtime_ns = o->e.ctime_ns = t4dx_now_ns();
		ns_unlock();
		return 0;
	}
	rc = node_entry(ino, T4DX_GET_CONTENT, &e, NULL);
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
			rc = t4dx_put(fs.db, &e, T4DX_NOWAIT, &lsn);
			if (!rc)
				note_lsn(ino, lsn);
			if (!rc && n)
				n->content_gen++;
		}
	}
	t4dx_entry_clear(&e);
	ns_unlock();
	if (!rc && lsn) {
		rc = t4dx_wait(fs.db, lsn);
		invalidate(ino);
	}
	return rc;
}

static int do_setattr(fuse_ino_t ino, struct stat *attr, int to_set,
		      uid_t caller, bool by_writer, struct stat *out)
{
	struct t4dx_entry f;
	uint32_t mask = 0;
	uint64_t lsn = 0;
	int rc = 0;
	int64_t now = t4dx_now_ns();

	if (is_fixed(ino))
		return EPERM;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		rc = truncate_item(ino, (uint64_t)attr->st_size, by_writer);
		if (rc)
			return rc;
		if (caller != 0 && !(to_set & FUSE_SET_ATTR_MODE))
			kill_priv(ino);
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
		ns_lock();
		struct orphan *o = orphan_find(ino);
		if (o)  /* kept in memory only: the file has no key */
			t4dx_entry_apply(&o->e, &f, mask);
		else
			rc = update_ino(ino, &f, mask, &lsn);
		struct node *n = node_find(ino);
		struct wbuf *w = wb_pin(n);
		ns_unlock();
		if (!rc && w && (mask & T4DX_F_MTIME)) {
			/* futimens while writing: the commit keeps it */
			pthread_mutex_lock(&w->mu);
			w->mtime_set = true;
			w->mtime_ns = f.mtime_ns;
			pthread_mutex_unlock(&w->mu);
		}
		if (w)
			wb_put(n, ino);
		if (!rc)
			rc = t4dx_wait(fs.db, lsn);
		if (rc)
			return rc == T4DX_ENOTFOUND ? ENOENT : rc;
	}
	return do_getattr(ino, out);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	count_op(OP_SETATTR);
	struct stat st;
	int rc = do_setattr(ino, attr, to_set, fuse_req_ctx(req)->uid,
			    fh_is_writer(fi), &st);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, fs.attr_timeout);
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
static int inherit_from_dir(fuse_ino_t dir, struct t4dx_entry *e)
{
	struct t4dx_entry d = { 0 };
	int rc = ino_entry(dir, 0, &d);
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
static void touch_dir(fuse_ino_t dir, int64_t now, uint64_t *wait)
{
	struct t4dx_entry f;
	uint64_t lsn = 0;
	note_lsn(dir, *wait);
	memset(&f, 0, sizeof(f));
	f.mtime_ns = f.ctime_ns = now;
	if (!update_ino(dir, &f, T4DX_F_MTIME | T4DX_F_CTIME, &lsn) &&
	    lsn > *wait)
		*wait = lsn;
}

/* Create (parent, name) with mode, durable unless nowait (then *lsn is
 * what to wait for), and take a kernel reference. */
static int make_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, bool nowait, uint64_t *lsn,
		      struct fuse_entry_param *ep)
{
	struct t4dx_entry e = { 0 };
	uint64_t l = 0;
	if (is_fixed(parent))
		return parent == INO_CTL_DIR ? EACCES : EPERM;
	int rc = check_name(name);
	if (rc)
		return rc;
	new_entry(&e, req, mode);
	rc = t4dx_entry_set_key(&e, parent, name, strlen(name));
	if (rc)
		return rc;
	uint64_t dl = 0;
	ns_lock();
	rc = inherit_from_dir(parent, &e);
	if (!rc)
		rc = t4dx_put(fs.db, &e, T4DX_EXCL | T4DX_NOWAIT |
			      (nowait ? T4DX_PROVISIONAL : 0), &l);
	if (!rc) {
		dl = l;
		touch_dir(parent, e.ctime_ns, &dl);
		if (S_ISDIR(mode)) {
			dircount_move(parent, 1);
			dircount_add(e.ino, 0);
		}
	}
	if (!rc && !node_ref(e.ino, parent, name, e.name_len, 1))
		rc = ENOMEM;
	if (!rc)
		note_lsn(e.ino, l);
	ns_unlock();
	if (rc)
		return rc;
	fill_param(ep, &e);
	if (S_ISDIR(mode))
		ep->attr.st_nlink = 2;
	if (nowait) {
		/* a provisional file (l == 0) is committed at its first
		 * close by a record after the directory's */
		*lsn = l;
		return 0;
	}
	rc = t4dx_wait(fs.db, dl);
	if (rc)
		forget_one(e.ino, 1);
	return rc;
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	count_op(OP_MKDIR);
	struct fuse_entry_param ep;
	int rc = make_entry(req, parent, name, S_IFDIR | (mode & 07777), false,
			    NULL, &ep);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

static int do_remove(fuse_ino_t parent, const char *name, bool dir)
{
	struct t4dx_entry e = { 0 };
	uint64_t lsn = 0;
	if (is_fixed(parent))
		return parent == INO_CTL_DIR ? EACCES : EPERM;
	int rc = check_name(name);
	if (rc)
		return rc;
	size_t len = strlen(name);
	ns_lock();
	rc = t4dx_get(fs.db, parent, name, len, 0, &e);
	if (!rc)
		rc = t4dx_delete(fs.db, parent, name, len, dir, T4DX_NOWAIT,
				 &lsn);
	if (!rc) {
		struct node *n = node_find(e.ino);
		if (n) {
			orphan_node(n, &e);
			note_lsn(e.ino, lsn);
		}
		if (dir) {
			dircount_move(parent, -1);
			dircount_drop(e.ino);
		}
		fs.ns_gen++;
		touch_dir(parent, t4dx_now_ns(), &lsn);
	}
	ns_unlock();
	if (rc == T4DX_ENOTFOUND)
		return ENOENT;
	if (!rc)
		rc = t4dx_wait(fs.db, lsn);
	return rc;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count_op(OP_UNLINK);
	reply_err(req, do_remove(parent, name, false));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count_op(OP_RMDIR);
	reply_err(req, do_remove(parent, name, true));
}

static int do_rename(fuse_ino_t parent, const char *name, fuse_ino_t np,
		     const char *newname, unsigned int flags)
{
	struct t4dx_entry src, dst;
	uint64_t lsn = 0;
	int rc;
	if (flags & ~RENAME_NOREPLACE)
		return EINVAL;          /* RENAME_EXCHANGE, RENAME_WHITEOUT */
	if (is_fixed(parent) || is_fixed(np))
		return EPERM;
	if ((rc = check_name(name)) || (rc = check_name(newname)))
		return rc;
	size_t len = strlen(name), nlen = strlen(newname);
	ns_lock();
	rc = t4dx_get(fs.db, parent, name, len, 0, &src);
	bool had_dst = false;
	if (!rc) {
		had_dst = t4dx_get(fs.db, np, newname, nlen, 0, &dst) == 0;
		rc = t4dx_rename(fs.db, parent, name, len, np, newname, nlen,
				 ((flags & RENAME_NOREPLACE) ? T4DX_NOREPLACE
				  : 0) | T4DX_NOWAIT, &lsn);
	}
	if (!rc && lsn) {
		note_lsn(src.ino, lsn);
		if (had_dst && dst.ino != src.ino) {
			struct node *d = node_find(dst.ino);
			if (d) {
				orphan_node(d, &dst);
				note_lsn(dst.ino, lsn);
			}
			if (S_ISDIR(dst.mode)) {
				dircount_move(np, -1);
				dircount_drop(dst.ino);
			}
		}
		if (S_ISDIR(src.mode) && np != parent) {
			dircount_move(parent, -1);
			dircount_move(np, 1);
		}
		struct node *n = node_find(src.ino);
		if (n)
			node_move(n, np, newname, nlen);
		fs.ns_gen++;
		int64_t now = t4dx_now_ns();
		touch_dir(parent, now, &lsn);
		if (np != parent)
			touch_dir(np, now, &lsn);
	}
	ns_unlock();
	if (rc == T4DX_ENOTFOUND)
		return ENOENT;
	if (!rc && lsn)
		rc = t4dx_wait(fs.db, lsn);
	return rc;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	count_op(OP_RENAME);
	reply_err(req, do_rename(parent, name, newparent, newname, flags));
}

static void op_eperm(fuse_req_t req)
{
	reply_err(req, EPERM);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	count_op(OP_SYMLINK);
	op_eperm(req);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	count_op(OP_LINK);
	op_eperm(req);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	count_op(OP_MKNOD);
	/* a regular file (Python's os.mknod, mknod(2) with S_IFREG) is a
	 * memory like any other; device nodes, FIFOs and sockets are not
	 * stored */
	if (!S_ISREG(mode)) {
		op_eperm(req);
		return;
	}
	struct fuse_entry_param ep;
	int rc = make_entry(req, parent, name, S_IFREG | (mode & 07777),
			    false, NULL, &ep);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

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
static LIST_HEAD(, fh) open_fhs = LIST_HEAD_INITIALIZER(open_fhs);

/* A setattr through a write descriptor (an ftruncate): the kernel passes
 * the file of the call only then. */
static bool fh_is_writer(const struct fuse_file_info *fi)
{
	const struct fh *h = fi ? (const struct fh *)(uintptr_t)fi->fh : NULL;
	return h && h->kind == FH_WRITE;
}

/* Hand h to the kernel. */
static void fh_publish(struct fh *h, struct fuse_file_info *fi)
{
	ns_lock();
	LIST_INSERT_HEAD(&open_fhs, h, link);
	ns_unlock();
	fi->fh = (uintptr_t)h;
}

static int open_ctl(fuse_ino_t ino, struct fuse_file_info *fi)
{
	const struct ctl_file *c = ctl_by_ino(ino);
	if (!c)
		return EISDIR;
	int acc = fi->flags & O_ACCMODE;
	if (acc != O_RDONLY && !c->store)
		return EACCES;
	if (acc != O_RDONLY && c->may_write) {
		int rc = c->may_write();
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
		int rc = c->show(&b);
		if (!rc && !(h->snap = t4dx_blob_from(b.p, b.len)))
			rc = ENOMEM;
		t4dx_buf_free(&b);
		if (rc) {
			free(h);
			return rc;
		}
	}
	fh_publish(h, fi);
	fi->direct_io = 1;
	fi->nonseekable = 0;
	return 0;
}

/* Attach a write handle to the node, creating its buffer from the
 * committed content (or empty when truncating).  ns_mu held. */
static int attach_writer(struct node *n, bool trunc, bool fresh)
{
	struct t4dx_entry e = { 0 };
	if (!n->wb) {
		struct wbuf *w = wbuf_new();
		if (!w)
			return ENOMEM;
		if (!trunc && !fresh) {
			int rc = t4dx_get(fs.db, n->parent, n->name,
					  n->name_len, T4DX_GET_CONTENT, &e);
			if (rc) {
				wbuf_free(w);
				return rc == T4DX_ENOTFOUND ? ENOENT : rc;
			}
			/* the committed bytes, shared until changed */
			if (e.size)
				wbuf_share(w, e.content);
			wbuf_set_len(w, e.size);
			t4dx_entry_clear(&e);
			if (rc) {
				wbuf_free(w);
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
static void truncate_writer(struct node *n, struct wbuf *w)
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
	ns_lock();
	n->content_gen++;
	ns_unlock();
	pthread_mutex_unlock(&w->mu);
}

static int do_open(fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_fixed(ino))
		return ino == INO_MOUNT_ROOT || ino == INO_CTL_DIR
			       ? EISDIR : open_ctl(ino, fi);
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
	ns_lock();
	int rc = node_entry(ino, acc == O_RDONLY ? T4DX_GET_CONTENT : 0, &e, &n);
	if (acc == O_RDONLY)
		t4dx_hist_observe_ns(&fs.metrics.read_lat, mono_ns() - t0);
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
		rc = attach_writer(n, fi->flags & O_TRUNC, false);
	}
	if (!rc)
		h->node = n;
	struct wbuf *w = !rc && h->kind == FH_WRITE ? n->wb : NULL;
	ns_unlock();
	t4dx_entry_clear(&e);
	if (rc) {
		free(h);
		return rc;
	}
	if (w && (fi->flags & O_TRUNC))
		truncate_writer(n, w);
	/* written bytes live in the write buffer until the commit, never in
	 * the page cache that readers of the committed version share */
	if (w)
		fi->direct_io = 1;
	fh_publish(h, fi);
	return 0;
}

static void fh_release(struct fh *h);

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count_op(OP_OPEN);
	int rc = do_open(ino, fi);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (h->kind == FH_WRITE && h->killpriv && (fi->flags & O_TRUNC) &&
	    fuse_req_ctx(req)->uid != 0) {
		h->killpriv = false;
		kill_priv(ino);
	}
	if (fuse_reply_open(req, fi) == -ENOENT)
		fh_release(h);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	count_op(OP_CREATE);
	struct fuse_entry_param ep;
	uint64_t lsn = 0;
	struct fh *h = calloc(1, sizeof(*h));
	if (!h) {
		reply_err(req, ENOMEM);
		return;
	}
	int rc = make_entry(req, parent, name, S_IFREG | (mode & 07777), true,
			    &lsn, &ep);
	if (!rc) {
		ns_lock();
		struct node *n = node_find(ep.ino);
		rc = n ? attach_writer(n, true, true) : ENOENT;
		if (!rc) {
			h->kind = FH_WRITE;
			h->ino = ep.ino;
			h->node = n;
			h->create_lsn = lsn;
			h->append = fi->flags & O_APPEND;
		}
		ns_unlock();
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
	fh_publish(h, fi);
	fi->direct_io = 1;
	if (fuse_reply_create(req, &ep, fi) == -ENOENT) {
		/* nor the entry's reference */
		fh_release(h);
		forget_one(ep.ino, 1);
	}
}

/* A read handle whose file was committed since its last read takes the
 * new version (as on a local filesystem, a descriptor reads what the file
 * holds now; a file replaced by a rename or unlinked keeps its own).
 * ns_mu held. */
static void refresh_snap(struct fh *h)
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
	if (!t4dx_get(fs.db, n->parent, n->name, n->name_len,
		      T4DX_GET_CONTENT, &e)) {
		t4dx_blob_unref(h->snap);
		h->snap = e.content;
		e.content = NULL;
		h->gen = n->content_gen;
	}
	t4dx_entry_clear(&e);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	count_op(OP_READ);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (h->kind != FH_WRITE) {
		/* the kernel may release the handle while the reply is still
		 * being written: hold the content until it is sent */
		struct t4dx_blob *b;
		if (h->kind == FH_READ) {
			ns_lock();
			refresh_snap(h);
			b = t4dx_blob_ref(h->snap);
			ns_unlock();
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

static int ctl_write(struct fh *h, const char *buf, size_t size, off_t off)
{
	const struct ctl_file *c = ctl_by_ino(h->ino);
	if (!c || !c->store)
		return EACCES;
	if (off != 0 || size > CTL_MAX_WRITE)
		return EINVAL;
	return c->store(buf, size);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	count_op(OP_WRITE);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	int rc = 0;
	if (h->kind == FH_CTL) {
		rc = ctl_write(h, buf, size, off);
	} else if (h->kind != FH_WRITE) {
		rc = EBADF;
	} else if (off < 0) {
		rc = EINVAL;
	} else {
		struct wbuf *w = h->node->wb;
		pthread_mutex_lock(&w->mu);
		/* the end of the buffer, not the kernel's idea of the size,
		 * which a concurrent reader or writer may have moved */
		if (h->append)
			off = (off_t)w->len;
		uint64_t end = (uint64_t)off + size;
		if (end > fs_max_item()) {
			/* the whole file is refused: the item keeps its
			 * previous content, whatever the next close does */
			w->err = EFBIG;
			rc = EFBIG;
		} else if (!(rc = wbuf_reserve(w, end))) {
			if ((uint64_t)off > w->len)
				memset(w->data + w->len, 0, (size_t)off - w->len);
			memcpy(w->data + off, buf, size);
			if (end > w->len)
				wbuf_set_len(w, end);
			wbuf_written(h->node, w);
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
			kill_priv(ino);
		}
	}
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_write(req, size);
}

static int do_flush(struct fh *h, enum commit_how how)
{
	if (h->kind != FH_WRITE)
		return 0;
	/* the handle's reference keeps node->wb */
	int rc = commit(h->node, h->ino, h->node->wb, how);
	if (!rc && h->create_lsn) {
		rc = t4dx_wait(fs.db, h->create_lsn);
		if (!rc)
			h->create_lsn = 0;
	}
	return rc;
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count_op(OP_FLUSH);
	reply_err(req, do_flush((struct fh *)(uintptr_t)fi->fh, COMMIT_FLUSH));
}

/* fsync of ino: wait until every record that changed it is durable (see
 * "What fsync waits for" in inode.c), not the records of other inodes.
 * Never 0 for what is not on disk, whatever the policy: a change that
 * was acknowledged as unpersisted answers the error (EIO, ENOSPC). */
static int sync_ino(fuse_ino_t ino)
{
	ns_lock();
	uint64_t lsn = ino == INO_ITEMS ? items_sync_lsn : node_sync_lsn(ino);
	ns_unlock();
	/* 0: no record changed it since a mount that found the log empty */
	return lsn ? t4dx_sync(fs.db, lsn) : 0;
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	count_op(OP_FSYNC);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (h->kind == FH_CTL) {
		reply_err(req, 0);
		return;
	}
	if (h->kind == FH_WRITE) {
		int rc = do_flush(h, COMMIT_SYNC);
		/* a commit acknowledged as unpersisted is not enough */
		reply_err(req, rc ? rc : sync_ino(h->ino));
		return;
	}
	/* fsync makes the file durable, whichever descriptor asks: what
	 * writers of the inode have in their buffer is committed too */
	ns_lock();
	struct wbuf *w = wb_pin(h->node);
	ns_unlock();
	int rc = w ? commit(h->node, h->ino, w, COMMIT_SYNC) : 0;
	if (w)
		wb_put(h->node, h->ino);
	reply_err(req, rc ? rc : sync_ino(h->ino));
}

/* fsync of a directory: its entries' changes (and its own attributes)
 * were durable when their calls returned, unless acknowledged as
 * unpersisted; this says which. */
static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	count_op(OP_FSYNC);
	reply_err(req, is_fixed(ino) ? 0 : sync_ino(ino));
}

/* The end of a handle: its last close, or an open whose reply the kernel
 * did not take (the call was interrupted), so no release will come. */
static void fh_release(struct fh *h)
{
	if (h->kind != FH_CTL) {
		if (h->kind == FH_WRITE)
			wb_put(h->node, h->ino);
		ns_lock();
		if (h->node->opens == 1)
			orphan_drop(h->node);
		node_close(h->node);
		ns_unlock();
	}
	ns_lock();
	LIST_REMOVE(h, link);
	ns_unlock();
	t4dx_blob_unref(h->snap);
	free(h);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	count_op(OP_RELEASE);
	fh_release((struct fh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- directories ------------------------------------------------------ */

/* A listing is taken whole at opendir, so that readdir sees one consistent
 * directory however the kernel splits it.  It keeps per entry only what a
 * readdir(plus) reply needs, and the names in one array, so that a big
 * directory costs three allocations rather than one per name. */
struct dent {
	uint64_t ino, size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t mode, uid, gid;
	uint16_t name_len;
	size_t name_off;                /* in dirh.names, NUL-terminated */
};

struct dirh {
	struct dent *v;
	size_t n, cap;
	char *names;
	size_t names_len, names_cap;
	uint64_t gen;                   /* fs.ns_gen when listed */
	uint64_t attr_gen;              /* fs.attr_gen when listed */
	fuse_ino_t ino;
	LIST_ENTRY(dirh) link;          /* open_dirs, guarded by ns_mu */
};

static LIST_HEAD(, dirh) open_dirs = LIST_HEAD_INITIALIZER(open_dirs);

/* Append a slot for a name of len bytes; NULL on ENOMEM. */
static struct dent *dir_push(struct dirh *d, const char *name, size_t len)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dent *v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		d->v = v;
		d->cap = cap;
	}
	if (d->names_cap - d->names_len < len + 1) {
		size_t cap = d->names_cap ? d->names_cap * 2 : 1024;
		while (cap - d->names_len < len + 1)
			cap *= 2;
		char *p = realloc(d->names, cap);
		if (!p)
			return NULL;
		d->names = p;
		d->names_cap = cap;
	}
	struct dent *de = &d->v[d->n++];
	de->name_off = d->names_len;
	de->name_len = (uint16_t)len;
	memcpy(d->names + d->names_len, name, len);
	d->names[d->names_len + len] = 0;
	d->names_len += len + 1;
	return de;
}

static int dir_add(struct dirh *d, const char *name, size_t len,
		   const struct stat *st)
{
	struct dent *de = dir_push(d, name, len);
	if (!de)
		return ENOMEM;
	de->ino = st->st_ino;
	de->size = (uint64_t)st->st_size;
	de->atime_ns = ns_of(st->st_atim);
	de->mtime_ns = ns_of(st->st_mtim);
	de->ctime_ns = ns_of(st->st_ctim);
	de->mode = st->st_mode;
	de->uid = st->st_uid;
	de->gid = st->st_gid;
	return 0;
}

static int list_one(void *arg, const struct t4dx_entry *e)
{
	struct dent *de = dir_push(arg, e->name, e->name_len);
	if (!de)
		return ENOMEM;
	de->ino = e->ino;
	de->size = e->size;
	de->atime_ns = e->atime_ns;
	de->mtime_ns = e->mtime_ns;
	de->ctime_ns = e->ctime_ns;
	de->mode = e->mode;
	de->uid = e->uid;
	de->gid = e->gid;
	return 0;
}

static void dir_free(struct dirh *d)
{
	free(d->v);
	free(d->names);
	free(d);
}

static int do_opendir(fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int rc = do_getattr(ino, &st);
	if (rc)
		return rc;
	if (!S_ISDIR(st.st_mode))
		return ENOTDIR;
	struct dirh *d = calloc(1, sizeof(*d));
	if (!d)
		return ENOMEM;
	d->ino = ino;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR;
	st.st_ino = ino;
	rc = dir_add(d, ".", 1, &st);
	if (!rc)
		rc = dir_add(d, "..", 2, &st);
	if (rc)
		goto out;
	if (ino == INO_MOUNT_ROOT) {
		fixed_stat(INO_CTL_DIR, &st);
		rc = dir_add(d, ".ctl", 4, &st);
		if (!rc && !(rc = do_getattr(INO_ITEMS, &st)))
			rc = dir_add(d, "items", 5, &st);
	} else if (ino == INO_CTL_DIR) {
		const struct ctl_file *c;
		for (size_t i = 0; !rc && (c = ctl_at(i)); i++) {
			fixed_stat(c->ino, &st);
			rc = dir_add(d, c->name, strlen(c->name), &st);
		}
	} else {
		ns_lock();
		d->gen = fs.ns_gen;
		ns_unlock();
		d->attr_gen = atomic_load(&fs.attr_gen);
		rc = t4dx_scan(fs.db, ino, list_one, d);
	}
out:
	if (rc) {
		dir_free(d);
		return rc;
	}
	ns_lock();
	LIST_INSERT_HEAD(&open_dirs, d, link);
	ns_unlock();
	fi->fh = (uintptr_t)d;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	count_op(OP_OPENDIR);
	int rc = do_opendir(ino, fi);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_open(req, fi);
}

/* Take a kernel reference for a readdirplus entry and give st the size
 * of a write buffer being filled.  If the namespace changed since the
 * listing was taken, the entry is checked again.  false: gone since the
 * listing.  ns_mu held. */
static bool plus_ref(struct dirh *d, const struct dent *de, struct stat *st)
{
	const char *name = d->names + de->name_off;
	if (fs.ns_gen != d->gen) {
		struct t4dx_entry e = { 0 };
		if (t4dx_get(fs.db, d->ino, name, de->name_len, 0, &e) ||
		    e.ino != de->ino)
			return false;
	}
	struct node *n = node_ref(de->ino, d->ino, name, de->name_len, 1);
	if (!n)
		return false;
	node_wbuf_size(n, st);
	return true;
}

/* Readdirplus asks for the inode table's slots and nodes ahead of use:
 * the slot NODE_PREFETCH_HOPS * AHEAD entries ahead, the node AHEAD
 * entries ahead (node_prefetch). */
#define AHEAD 6

static void do_readdir(fuse_req_t req, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t pos = 0;
	if (!buf) {
		reply_err(req, ENOMEM);
		return;
	}
	struct stat st;
	struct fuse_entry_param ep;
	memset(&st, 0, sizeof(st));
	memset(&ep, 0, sizeof(ep));
	/* a listing may be older than the request that returns it, and the
	 * kernel would then take its attributes over newer ones: long only
	 * if no content or attribute changed since the listing (setattr
	 * replies carry their own attributes) */
	double attr_timeout = atomic_load(&fs.attr_gen) == d->attr_gen
				      ? fs.attr_timeout
				      : LISTING_ATTR_TIMEOUT;
	if (plus) {
		ns_lock();
		/* what the loop would have asked for before off */
		for (unsigned hop = 0; hop < NODE_PREFETCH_HOPS; hop++) {
			size_t from = (size_t)off +
				      (NODE_PREFETCH_HOPS - hop) * AHEAD;
			for (size_t i = (size_t)off; i < from && i < d->n; i++)
				node_prefetch(d->v[i].ino, hop);
		}
	}
	for (size_t i = (size_t)off; i < d->n; i++) {
		const struct dent *de = &d->v[i];
		const char *name = d->names + de->name_off;
		size_t len;
		if (plus) {
			/* each node is a cache miss or more: ask for the ones
			 * ahead while this one is done */
			for (unsigned hop = 0; hop < NODE_PREFETCH_HOPS; hop++) {
				size_t j = i +
					   (NODE_PREFETCH_HOPS - hop) * AHEAD;
				if (j < d->n)
					node_prefetch(d->v[j].ino, hop);
			}
			/* the size first, so that no reference is taken for
			 * an entry that does not fit */
			len = fuse_add_direntry_plus(req, NULL, 0, name, NULL,
						     0);
			if (len > size - pos)
				break;
			/* ep was cleared before the loop: every entry sets
			 * the same fields of it (the attributes, as
			 * entry_stat() gives them) */
			SET_STAT(&ep.attr, de);
			bool engine = i >= 2 && !is_fixed(de->ino) &&
				      de->ino != INO_ITEMS;
			if (i >= 2 && (!engine || plus_ref(d, de, &ep.attr))) {
				ep.ino = de->ino;
				ep.generation = INO_GENERATION;
				ep.entry_timeout = fs.entry_timeout;
				ep.attr_timeout = attr_timeout;
				/* a directory never counted: not now (that is a
				 * scan of it), but at its first stat */
				if (engine && S_ISDIR(de->mode)) {
					struct dircount *c =
						dircount_find(de->ino);
					if (c)
						ep.attr.st_nlink =
							2 + (nlink_t)c->subdirs;
					else
						ep.attr_timeout = 0;
				}
			} else {
				/* '.' and '..', or gone since the listing: a
				 * plain entry, no reference */
				ep.ino = 0;
				ep.generation = 0;
				ep.entry_timeout = ep.attr_timeout = 0;
			}
			fuse_add_direntry_plus(req, buf + pos, size - pos,
					       name, &ep, (off_t)i + 1);
		} else {
			st.st_ino = de->ino;
			st.st_mode = de->mode;
			len = fuse_add_direntry(req, buf + pos, size - pos,
						name, &st, (off_t)i + 1);
			if (len > size - pos)
				break;
		}
		pos += len;
	}
	if (plus)
		ns_unlock();
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	count_op(OP_READDIR);
	do_readdir(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	count_op(OP_READDIRPLUS);
	do_readdir(req, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	ns_lock();
	LIST_REMOVE(d, link);
	ns_unlock();
	bool big = d->n > 4096;
	dir_free(d);
	fuse_reply_err(req, 0);
	/* a big listing is many small blocks: give the memory back */
	if (big)
		malloc_trim(0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	count_op(OP_STATFS);
	struct statvfs sv;
	int rc = t4dx_statfs(fs.db, &sv);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	sv.f_namemax = T4DX_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes ---------------------------------------------- */

#define XA_PREFIX "user.t4dx."

static const char *const xa_names[] = {
	"id", "kappa", "importance", "type", "access_count", "event_time",
};
#define NXA (sizeof(xa_names) / sizeof(xa_names[0]))

static int xa_index(const char *name)
{
	if (strncmp(name, XA_PREFIX, strlen(XA_PREFIX)))
		return -1;
	name += strlen(XA_PREFIX);
	for (size_t i = 0; i < NXA; i++)
		if (!strcmp(name, xa_names[i]))
			return (int)i;
	return -1;
}

/* Shortest decimal text that reads back as the same double. */
static void fmt_double(char *out, size_t len, double v)
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(out, len, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* Only the user namespace holds attributes here.  Names in the others
 * (security., system. for ACLs, trusted.) are ENOTSUP, not ENODATA: that
 * tells a reader such as ls -l that the whole file system has none, so it
 * stops asking for every file. */
static bool xa_user(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

static int xa_get(fuse_ino_t ino, const char *name, char *out, size_t len,
		  size_t *vlen)
{
	struct t4dx_entry e = { 0 };
	int i = xa_index(name);
	if (!xa_user(name))
		return ENOTSUP;
	if (is_fixed(ino) || ino == INO_ITEMS)
		return ENODATA;
	ns_lock();
	int rc = ino_entry(ino, 0, &e);
	ns_unlock();
	if (rc)
		return rc;
	if (i < 0 || S_ISDIR(e.mode))
		return ENODATA;
	switch (i) {
	case 0: t4dx_hex_encode(out, e.id, sizeof(e.id)); break;
	case 1: fmt_double(out, len, e.kappa); break;
	case 2: fmt_double(out, len, e.importance); break;
	case 3: snprintf(out, len, "%s", t4dx_type_name(e.type)); break;
	case 4: snprintf(out, len, "%llu", (unsigned long long)e.access_count); break;
	case 5: snprintf(out, len, "%lld", (long long)e.event_time_ns); break;
	}
	*vlen = strlen(out);
	return 0;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	count_op(OP_GETXATTR);
	char val[64];
	size_t vlen;
	int rc = xa_get(ino, name, val, sizeof(val), &vlen);
	if (rc)
		reply_xattr(req, rc);
	else if (size == 0)
		fuse_reply_xattr(req, vlen);
	else if (size < vlen)
		reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, vlen);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	count_op(OP_LISTXATTR);
	char list[256];
	size_t len = 0;
	struct stat st;
	int rc = do_getattr(ino, &st);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	if (S_ISREG(st.st_mode) && !is_fixed(ino))
		for (size_t i = 0; i < NXA; i++)
			len += (size_t)snprintf(list + len, sizeof(list) - len,
						"%s%s", XA_PREFIX,
						xa_names[i]) + 1;
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, len);
}

/* Plain decimal text: optional '-', digits with at most one '.', an
 * optional exponent; no spaces, hex, "nan" or "inf" (which strtod would
 * take). */
static bool plain_decimal(const char *s, bool integer)
{
	bool digit = false, dot = false;
	if (*s == '-')
		s++;
	for (; *s && *s != 'e' && *s != 'E'; s++) {
		if (*s >= '0' && *s <= '9')
			digit = true;
		else if (*s == '.' && !dot && !integer)
			dot = true;
		else
			return false;
	}
	if (!digit)
		return false;
	if (!*s)
		return true;
	if (integer)
		return false;
	s++;
	if (*s == '+' || *s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Parse a number in [0, 1] with nothing else around it. */
static int parse_unit(const char *s, double *out)
{
	char *end;
	if (!plain_decimal(s, false))
		return EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1)
		return EINVAL;
	*out = v;
	return 0;
}

static int do_setxattr(fuse_ino_t ino, const char *name, const char *value,
		       size_t size, int flags)
{
	struct t4dx_entry f, e;
	char v[64];
	uint32_t mask;
	uint64_t parent, lsn = 0;
	char key[T4DX_NAME_MAX + 1];
	size_t klen;
	int rc, i = xa_index(name);

	if (i < 0)
		return ENOTSUP;
	if (is_fixed(ino) || ino == INO_ITEMS)
		return ENOTSUP;
	if (i == 0 || i == 4)
		return EPERM;                   /* id, access_count */
	if (flags & XATTR_CREATE)
		return EEXIST;                  /* they always exist */
	if (size >= sizeof(v) || memchr(value, 0, size))
		return EINVAL;
	memcpy(v, value, size);
	v[size] = 0;
	memset(&f, 0, sizeof(f));
	switch (i) {
	case 1:
		mask = T4DX_F_KAPPA;
		rc = parse_unit(v, &f.kappa);
		break;
	case 2:
		mask = T4DX_F_IMPORTANCE;
		rc = parse_unit(v, &f.importance);
		break;
	case 3: {
		mask = T4DX_F_TYPE;
		int t = t4dx_type_parse(v, size);
		rc = t < 0 ? EINVAL : 0;
		f.type = (uint8_t)(t < 0 ? 0 : t);
		break;
	}
	default: {
		mask = T4DX_F_EVENT_TIME;
		char *end;
		errno = 0;
		long long t = strtoll(v, &end, 10);
		rc = (errno || end == v || *end || !plain_decimal(v, true))
			     ? EINVAL : 0;
		f.event_time_ns = t;
		break;
	}
	}
	if (rc)
		return rc;
	f.ctime_ns = t4dx_now_ns();
	mask |= T4DX_F_CTIME;
	ns_lock();
	struct orphan *o = orphan_find(ino);
	if (o) {
		/* an open file without a name: kept in memory only */
		t4dx_entry_apply(&o->e, &f, mask);
		ns_unlock();
		return 0;
	}
	rc = key_of(ino, &parent, key, &klen);
	if (!rc)
		rc = t4dx_get(fs.db, parent, key, klen, 0, &e);
	if (!rc && S_ISDIR(e.mode))
		rc = ENOTSUP;
	if (!rc)
		rc = t4dx_update(fs.db, parent, key, klen, &f, mask,
				 T4DX_NOWAIT, &lsn);
	if (!rc)
		note_lsn(ino, lsn);
	ns_unlock();
	if (rc == T4DX_ENOTFOUND)
		return ENOENT;
	if (!rc)
		rc = t4dx_wait(fs.db, lsn);
	/* ctime moved: the kernel's cached attributes (not pages) are old */
	if (!rc && fs.se) {
		atomic_fetch_add(&fs.attr_gen, 1);
		fuse_lowlevel_notify_inval_inode(fs.se, ino, -1, 0);
	}
	return rc;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	count_op(OP_SETXATTR);
	reply_xattr(req, do_setxattr(ino, name, value, size, flags));
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	count_op(OP_REMOVEXATTR);
	reply_xattr(req, !xa_user(name) ? ENOTSUP :
		       xa_index(name) >= 0 ? EPERM : ENODATA);
}

/* ---- session ---------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* every write must reach the daemon: no writeback caching */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.symlink = op_symlink,
	.link = op_link,
	.mknod = op_mknod,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};

/* Alerts also go to stderr in the foreground, to syslog as a daemon. */
static void alert_sink(void *arg, int level, const char *text)
{
	atomic_fetch_add(&fs.alerts_seen, 1);
	if (fs.foreground) {
		fprintf(stderr, "t4dxfs: %s %s\n", t4dx_alert_level_name(level),
			text);
		return;
	}
	int prio = level == T4DX_ALERT_INFO ? LOG_INFO
		 : level == T4DX_ALERT_WARN ? LOG_WARNING : LOG_CRIT;
	syslog(prio, "%s %s", t4dx_alert_level_name(level), text);
}

/* The rebuild of a damaged segment at start reads the whole WAL archive,
 * which may take a while: say how far it is, on stderr (the terminal of
 * whoever mounts, even without -f, since the daemon detaches only once
 * mounted).  On a terminal one line is redrawn; else a line every 10%. */
static void rebuild_progress(void *arg, uint64_t seg, uint64_t done,
			     uint64_t total)
{
	static int last_pct = -1;
	static int64_t last_ns;
	bool tty = isatty(2);
	int pct = total ? (int)(done * 100 / total) : 100;
	int64_t now = t4dx_now_ns();
	bool end = done >= total;
	if (done == 0)
		last_pct = -1;
	if (pct == last_pct)
		return;
	if (tty ? !end && done && now - last_ns < 100000000
		: !end && done && pct / 10 == last_pct / 10)
		return;
	last_pct = pct;
	last_ns = now;
	fprintf(stderr, "%st4dxfs: rebuilding segment %llu from the WAL: "
		"%3d%% (%llu of %llu bytes read)%s", tty ? "\r\033[K" : "",
		(unsigned long long)seg, pct, (unsigned long long)done,
		(unsigned long long)total, tty && !end ? "" : "\n");
	fflush(stderr);
}

/* The records of a rescue no file could take, as a daemon: to syslog,
 * in pieces a syslog line can hold (in the foreground the engine writes
 * them to stderr whole). */
static void dump_sink(void *arg, const char *line, size_t len)
{
	const size_t piece = 3000;
	size_t n = (len + piece - 1) / piece;
	for (size_t i = 0; i < n; i++) {
		size_t k = len - i * piece < piece ? len - i * piece : piece;
		syslog(LOG_CRIT, "unsaved record, part %zu of %zu: %.*s",
		       i + 1, n, (int)k, line + i * piece);
	}
}

/* Create items/ itself, the engine entry (0, "items"), on first mount. */
static int ensure_root(void)
{
	struct t4dx_entry e = { 0 };
	int rc = t4dx_get(fs.db, 0, "items", 5, 0, &e);
	if (rc != T4DX_ENOTFOUND)
		return rc;
	int64_t now = t4dx_now_ns();
	memset(&e, 0, sizeof(e));
	t4dx_entry_set_key(&e, 0, "items", 5);
	e.ino = T4DX_ROOT_INO;
	e.mode = S_IFDIR | 0755;
	e.uid = fs.uid;
	e.gid = fs.gid;
	e.atime_ns = e.mtime_ns = e.ctime_ns = now;
	return t4dx_put(fs.db, &e, 0, NULL);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: t4dxfs [-f] [-o opt[,opt...]] DATA_DIR MOUNTPOINT\n"
		"\n"
		"Mount the t4dx store in DATA_DIR at MOUNTPOINT.\n"
		"  -f            stay in the foreground (log to stderr)\n"
		"  -o config=FILE  configuration (JSON, see README)\n"
		"  -o create     make DATA_DIR (mode 0700) if it does not exist\n"
		"  -o opt,...    FUSE mount options (allow_other, ...)\n"
		"  -h, --help    this text\n"
		"  -V, --version print the version\n"
		"Without -f, t4dxfs returns once the mount is ready.\n"
		"Unmount with: fusermount3 -u MOUNTPOINT\n");
}

struct cmdline {
	bool foreground;
	const char *data, *mnt;
	char config[PATH_MAX];          /* -o config=FILE, or "" */
	bool create;                    /* -o create */
	struct t4dx_buf fuse_opts;      /* comma-separated, NUL-terminated */
};

/* Take our own options out of a -o list; pass the rest to FUSE. */
static int add_fuse_opt(struct cmdline *c, const char *opts)
{
	const char *p = opts;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n > 7 && !strncmp(p, "config=", 7)) {
			if (n - 7 >= sizeof(c->config)) {
				fprintf(stderr, "t4dxfs: config path too long\n");
				return EINVAL;
			}
			memcpy(c->config, p + 7, n - 7);
			c->config[n - 7] = 0;
		} else if (n == 6 && !strncmp(p, "create", 6)) {
			c->create = true;
		} else if (n) {
			if ((c->fuse_opts.len &&
			     t4dx_buf_add(&c->fuse_opts, ",", 1)) ||
			    t4dx_buf_add(&c->fuse_opts, p, n))
				return ENOMEM;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int parse_cmdline(int argc, char **argv, struct cmdline *c)
{
	memset(c, 0, sizeof(*c));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-f")) {
			c->foreground = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("t4dxfs %s\n", PACKAGE_VERSION);
			exit(0);
		} else if (!strncmp(a, "-o", 2)) {
			const char *o = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!o) {
				fprintf(stderr, "t4dxfs: -o needs an argument\n");
				return EINVAL;
			}
			if (add_fuse_opt(c, o))
				return EINVAL;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "t4dxfs: unknown option %s\n", a);
			return EINVAL;
		} else if (!c->data) {
			c->data = a;
		} else if (!c->mnt) {
			c->mnt = a;
		} else {
			fprintf(stderr, "t4dxfs: unexpected argument %s\n", a);
			return EINVAL;
		}
	}
	if (!c->data || !c->mnt) {
		usage(stderr);
		return EINVAL;
	}
	return t4dx_buf_add(&c->fuse_opts, "", 1);
}

static int check_mountpoint(const char *mnt)
{
	struct stat st;
	struct statvfs sv;
	/* statfs is never answered from a cache: a dead FUSE mount fails it
	 * with ENOTCONN even while its root's attributes are still cached */
	if (statvfs(mnt, &sv) == 0 && stat(mnt, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			fprintf(stderr, "t4dxfs: mountpoint %s is not a "
				"directory\n", mnt);
			return ENOTDIR;
		}
		/* FUSE mounts over a non-empty directory (its old nonempty
		 * option is gone), hiding what is there: say so */
		DIR *d = opendir(mnt);
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				fprintf(stderr, "t4dxfs: warning: mountpoint %s "
					"is not empty; what it holds is hidden "
					"while t4dx is mounted there\n", mnt);
				break;
			}
		if (d)
			closedir(d);
		return 0;
	}
	int rc = errno;
	if (rc == ENOTCONN)
		fprintf(stderr, "t4dxfs: %s is a stale mount (Transport "
			"endpoint is not connected): its daemon died.\n"
			"Clear it with:  fusermount3 -u %s  (or umount -l %s),"
			" then mount again.\n", mnt, mnt, mnt);
	else
		fprintf(stderr, "t4dxfs: cannot use mountpoint %s: %s\n", mnt,
			strerror(rc));
	return rc;
}

/* Without -f: fork; the parent waits for the child to say the mount is
 * ready (one byte 0 on the pipe) and exits with 0, or with 1 if the child
 * failed (the child has printed why). */
static int daemonize_start(int *notify_fd)
{
	int p[2];
	if (pipe(p)) {
		perror("t4dxfs: pipe");
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("t4dxfs: fork");
		return -1;
	}
	if (pid > 0) {
		char st = 1;
		close(p[1]);
		ssize_t n;
		do {
			n = read(p[0], &st, 1);
		} while (n < 0 && errno == EINTR);
		if (n != 1)
			st = 1;
		if (st) {
			int ws;
			waitpid(pid, &ws, 0);
		}
		_exit(st ? 1 : 0);
	}
	close(p[0]);
	setsid();
	*notify_fd = p[1];
	return 0;
}

static void daemonize_done(int notify_fd)
{
	char ok = 0;
	if (write(notify_fd, &ok, 1) != 1)
		perror("t4dxfs: notify");
	close(notify_fd);
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (chdir("/"))
		return;
}

/* Is path (a real path) dir itself or under it? */
static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 1)             /* "/" */
		return true;
	return !strncmp(path, dir, n) && (path[n] == 0 || path[n] == '/');
}

/* DATA_DIR (real path data) against the mountpoint, and whether it is a
 * store: the store may not be inside its own mount (every write would
 * go through the daemon to itself) nor the mount inside the store, and
 * a directory that holds other things and none of a store's is not made
 * a store unless -o create says so (a typo such as /var/lib for
 * /var/lib/t4dx).  0, or 1 with a message. */
static int check_store_paths(const char *data, const char *mnt, bool create)
{
	char m[PATH_MAX];
	if (realpath(mnt, m) &&
	    (path_within(data, m) || path_within(m, data))) {
		fprintf(stderr, "t4dxfs: %s and the mountpoint %s may not "
			"be one inside the other\n", data, m);
		return 1;
	}
	static const char *const marks[] = { "ID", "MANIFEST", "LOCK", "wal",
					     "seg" };
	DIR *d = opendir(data);
	if (!d)
		return 0;       /* the open of the store says why */
	bool other = false, store = false;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		bool mark = false;
		for (size_t i = 0; i < sizeof(marks) / sizeof(*marks); i++)
			mark |= !strcmp(de->d_name, marks[i]);
		store |= mark;
		other |= !mark;
	}
	closedir(d);
	if (other && !store && !create) {
		fprintf(stderr, "t4dxfs: %s is not a t4dx store (it holds "
			"other files and no MANIFEST, wal/ or seg/); -o create "
			"makes a new store in it\n", data);
		return 1;
	}
	return 0;
}

/* The absolute path, without symbolic links, that path will have once
 * made: its parent's real path and its last name.  path does not exist.
 * Returns 0, or -1 with errno set. */
static int missing_realpath(const char *path, char out[PATH_MAX])
{
	char tmp[PATH_MAX], parent[PATH_MAX];
	size_t n = strlen(path);
	if (n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, n + 1);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	char *slash = strrchr(tmp, '/');
	const char *name = slash ? slash + 1 : tmp;
	const char *dir = !slash ? "." : slash == tmp ? "/" : tmp;
	if (slash)
		*slash = '\0';
	if (!strcmp(name, ".") || !strcmp(name, "..")) {
		errno = EINVAL;
		return -1;
	}
	if (!realpath(dir, parent))
		return -1;
	if (snprintf(out, PATH_MAX, "%s/%s", strcmp(parent, "/") ? parent : "",
		     name) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Everything after the command line; returns the exit status. */
static int run(struct cmdline *cl, char *argv0)
{
	struct cmdline c = *cl;
	struct t4dx_config cfg;
	char msg[512], data[PATH_MAX];
	int notify_fd = -1, rc;

	/* a typo in DATA_DIR must not give an empty filesystem */
	struct stat dst;
	int missing = stat(c.data, &dst) ? errno : 0;
	if (missing == ENOENT) {
		if (!c.create) {
			fprintf(stderr, "t4dxfs: %s does not exist (-o create "
				"makes a new store there)\n", c.data);
			return 1;
		}
	} else if (!missing && S_ISDIR(dst.st_mode) && (dst.st_mode & 077)) {
		fprintf(stderr, "t4dxfs: warning: %s is open to group or "
			"others (mode %03o): any local user may read the "
			"stored content; chmod 700 it\n", c.data,
			(unsigned)(dst.st_mode & 0777));
	}
	/* -o create makes DATA_DIR only once every option was accepted
	 * (below): until then its would-be path names it */
	if (missing == ENOENT ? missing_realpath(c.data, data)
			      : !realpath(c.data, data)) {
		fprintf(stderr, "t4dxfs: %s: %s\n", c.data, strerror(errno));
		return 1;
	}
	if (check_mountpoint(c.mnt) ||
	    check_store_paths(data, c.mnt, c.create))
		return 1;
	if (!c.foreground && daemonize_start(&notify_fd))
		return 1;

	t4dx_config_defaults(&cfg);
	if (*c.config &&
	    t4dx_config_load(c.config, &cfg, msg, sizeof(msg))) {
		fprintf(stderr, "t4dxfs: %s\n", msg);
		return 1;
	}
	fs.cfg = cfg;
	fs.foreground = c.foreground;
	fs.start_ns = t4dx_now_ns();
	fs.uid = getuid();
	fs.gid = getgid();
	/* every change passes through the daemon, which tells the kernel
	 * when it changes something on its own (commit, prune): the kernel
	 * may cache names and attributes for long */
	fs.entry_timeout = 3600;
	fs.attr_timeout = 3600;
	fs.max_item_bytes = cfg.limits.max_item_bytes;
	/* one malloc arena per FUSE thread keeps what listings and commits
	 * freed in many pools; a few arenas bound the daemon's footprint */
	mallopt(M_ARENA_MAX, 2);
	pthread_mutex_init(&fs.ns_mu, NULL);
	const char *pause = getenv("T4DX_TEST_RELEASE_PAUSE_MS");
	if (pause)
		test_release_pause_ms = (unsigned)strtoul(pause, NULL, 10);

	/* the mount options first: a bad one is reported before the store
	 * is opened (a replay, a flush) */
	char fsname[PATH_MAX + 64];
	snprintf(fsname, sizeof(fsname), "-ofsname=t4dx:%s,subtype=t4dxfs,"
		 "default_permissions", data);
	char *fargv[4] = { argv0, fsname, NULL, NULL };
	int fargc = 2;
	char uopts[8192];
	if (c.fuse_opts.len > 1) {
		snprintf(uopts, sizeof(uopts), "-o%s", (char *)c.fuse_opts.p);
		fargv[fargc++] = uopts;
	}
	struct fuse_args args = FUSE_ARGS_INIT(fargc, fargv);
	fs.se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	fuse_opt_free_args(&args);
	if (!fs.se) {
		fprintf(stderr, "t4dxfs: bad mount options: %s\n",
			(char *)c.fuse_opts.p);
		return 1;
	}
	if (missing == ENOENT && mkdir(data, 0700) && errno != EEXIST) {
		fprintf(stderr, "t4dxfs: cannot create %s: %s\n", c.data,
			strerror(errno));
		fuse_session_destroy(fs.se);
		return 1;
	}
	struct t4dx_open_args oa = { .cfg = &cfg,
				     .rebuild = rebuild_progress };
	rc = t4dx_open_args(data, &oa, &fs.db, msg, sizeof(msg));
	if (rc) {
		fprintf(stderr, "t4dxfs: %s\n", msg);
		fuse_session_destroy(fs.se);
		return 1;
	}
	t4dx_set_alert_sink(fs.db, alert_sink, NULL);
	if (!c.foreground) {
		t4dx_set_dump_sink(fs.db, dump_sink, NULL);
		/* the log is the last copy of records no rescue file can
		 * take: without a syslog socket it goes nowhere */
		struct stat ls;
		if (stat("/dev/log", &ls) || !S_ISSOCK(ls.st_mode))
			fprintf(stderr, "t4dxfs: warning: no syslog socket "
				"(/dev/log): records that no rescue file could "
				"take would be lost; run a syslog daemon, or "
				"t4dxfs -f with its stderr kept\n");
	}
	struct t4dx_stats st;
	t4dx_get_stats(fs.db, &st);
	fprintf(stderr, "t4dxfs: opened %s: %llu WAL records replayed, "
		"%llu damaged bytes dropped, %llu segments quarantined%s\n",
		data, (unsigned long long)st.recovery.records_replayed,
		(unsigned long long)st.recovery.bytes_dropped,
		(unsigned long long)st.recovery.segments_quarantined,
		st.recovery.flushed ? ", flushed to a segment" : "");
	if ((rc = ensure_root())) {
		fprintf(stderr, "t4dxfs: cannot create items/: %s\n",
			t4dx_strerror(rc));
		fuse_session_destroy(fs.se);
		t4dx_close(fs.db);
		return 1;
	}
	/* what the log holds now (replayed, rescued, items/ itself) is
	 * older than any inode's own records: every fsync waits for it */
	t4dx_get_stats(fs.db, &st);
	ns_lock();
	node_lsn_floor(st.wal_lsn);
	items_sync_lsn = st.wal_lsn;
	ns_unlock();

	if (fuse_set_signal_handlers(fs.se) ||
	    fuse_session_mount(fs.se, c.mnt)) {
		fprintf(stderr, "t4dxfs: cannot mount at %s\n", c.mnt);
		fuse_session_destroy(fs.se);
		t4dx_close(fs.db);
		return 1;
	}
	if (!c.foreground) {
		openlog("t4dxfs", LOG_PID, LOG_DAEMON);
		daemonize_done(notify_fd);
	}

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(lc, 64);
	fuse_loop_cfg_set_idle_threads(lc, 16);
	rc = fuse_session_loop_mt(fs.se, lc);
	fuse_loop_cfg_destroy(lc);
	/* a positive value is the signal (SIGTERM, SIGINT) that ended it */
	if (rc > 0)
		rc = 0;

	fuse_session_unmount(fs.se);
	fuse_remove_signal_handlers(fs.se);
	fuse_session_destroy(fs.se);
	int crc = t4dx_close(fs.db);
	if (crc) {
		/* changes acknowledged as unpersisted may be lost: say so
		 * with the exit status too */
		fprintf(stderr, "t4dxfs: closing the store: %s\n",
			t4dx_strerror(crc));
	}
	ns_lock();
	/* handles never released: their uncommitted writes were never
	 * acknowledged and go with them */
	struct fh *h;
	while ((h = LIST_FIRST(&open_fhs))) {
		LIST_REMOVE(h, link);
		if (h->kind == FH_WRITE && h->node->wb &&
		    --h->node->wb->refs == 0) {
			wbuf_free(h->node->wb);
			h->node->wb = NULL;
		}
		t4dx_blob_unref(h->snap);
		free(h);
	}
	struct dirh *d;
	while ((d = LIST_FIRST(&open_dirs))) {
		LIST_REMOVE(d, link);
		dir_free(d);
	}
	struct orphan *o, *tmp;
	HASH_ITER(hh, orphans, o, tmp) {
		HASH_DEL(orphans, o);
		free(o);
	}
	struct dircount *dc, *dctmp;
	HASH_ITER(hh, dircounts, dc, dctmp) {
		HASH_DEL(dircounts, dc);
		free(dc);
	}
	node_free_all();
	ns_unlock();
	return rc || crc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct cmdline c;
	if (parse_cmdline(argc, argv, &c)) {
		t4dx_buf_free(&c.fuse_opts);
		return 2;
	}
	int status = run(&c, argv[0]);
	t4dx_buf_free(&c.fuse_opts);
	return status;
}
