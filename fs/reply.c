/*
 * reply.c - the replies of the FUSE daemon, its operation counters, the
 * stat of items and of the daemon's own inodes, and the key of an inode.
 *
 * Every handler does its work in a helper that returns 0 or an errno (or
 * a t4dx code) and replies exactly once, through reply_err() for errors,
 * which is the one place where engine codes become errno values.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "t4dxfs.h"
#include "ctl.h"
#include "inode.h"

/* The operation this thread is handling, for the error metrics. */
static __thread int cur_op = -1;

void count_op(struct t4dxfs *fs, int op)
{
	cur_op = op;
	atomic_fetch_add_explicit(&fs->metrics.ops[op], 1,
				  memory_order_relaxed);
}

/* The one place where engine codes become the errno of a reply. */
void reply_err(fuse_req_t req, int rc)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	int err = t4dx_errno(rc);
	if (err && cur_op >= 0 && err < FS_ERRNO_MAX)
		atomic_fetch_add_explicit(&fs->metrics.errs[cur_op][err], 1,
					  memory_order_relaxed);
	fuse_reply_err(req, err);
}

/* The answer for an extended attribute t4dx does not have: counted
 * apart from errors, so that an error rate means something. */
void reply_xattr(fuse_req_t req, int rc)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	int err = t4dx_errno(rc);
	if ((err == ENOTSUP || err == ENODATA) && cur_op >= 0) {
		atomic_fetch_add_explicit(&fs->metrics.xattr_absent[cur_op], 1,
					  memory_order_relaxed);
		fuse_reply_err(req, err);
		return;
	}
	reply_err(req, rc);
}

uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

struct timespec ts_of(int64_t ns)
{
	struct timespec t = { .tv_sec = ns / 1000000000,
			      .tv_nsec = ns % 1000000000 };
	if (t.tv_nsec < 0) {
		t.tv_sec--;
		t.tv_nsec += 1000000000;
	}
	return t;
}

/* Nanoseconds since the epoch, clamped to what an int64 holds
 * (1677-09-21 to 2262-04-11), as the kernel clamps a time to what a
 * filesystem can keep: touch -d 2300-01-01 must not wrap around to 1715
 * (nor overflow, which C leaves undefined). */
int64_t ns_of(struct timespec t)
{
	if (t.tv_sec > INT64_MAX / 1000000000 ||
	    (t.tv_sec == INT64_MAX / 1000000000 &&
	     t.tv_nsec > INT64_MAX % 1000000000))
		return INT64_MAX;
	if (t.tv_sec < INT64_MIN / 1000000000)
		return INT64_MIN;
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void entry_stat(const struct t4dx_entry *e, struct stat *st)
{
	FILL_STAT(st, e);
}

void fixed_stat(struct t4dxfs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_atim = st->st_mtim = st->st_ctim = ts_of(fs->start_ns);
	const struct ctl_file *c = ctl_by_ino(ino);
	if (c) {
		st->st_mode = S_IFREG | (c->store ? 0644 :
					 c->owner_only ? 0400 : 0444);
	} else {
		st->st_mode = S_IFDIR | (ino == INO_SEARCH_DIR ? SEARCH_DIR_MODE : 0755);
		/* the mount's root holds items/, .ctl/ and search/ */
		st->st_nlink = ino == INO_MOUNT_ROOT ? 5 : 2;
	}
}

bool is_fixed(fuse_ino_t ino)
{
	return ino < T4DX_ROOT_INO || (ino & INO_SEARCH_BIT);
}

int refuse_in(fuse_ino_t dir)
{
	return dir == INO_CTL_DIR || is_search(dir) ? EACCES : EPERM;
}

/* Look up the entry of an engine inode through the table.  Called with
 * ns_mu held.  ENOENT for an unknown or unlinked inode. */
int node_entry(struct t4dxfs *fs, fuse_ino_t ino, unsigned flags,
	       struct t4dx_entry *e, struct node **np)
{
	struct node *n = node_find(&fs->nodes, ino);
	if (!n || n->unlinked)
		return ENOENT;
	if (np)
		*np = n;
	return t4dx_get(fs->db, n->parent, n->name, n->name_len, flags, e);
}

/* The key of an inode: items/ is (0, "items"), the rest from the table.
 * ns_mu held. */
int key_of(struct t4dxfs *fs, fuse_ino_t ino, uint64_t *parent, char *name,
	   size_t *len)
{
	if (ino == INO_ITEMS) {
		*parent = 0;
		memcpy(name, "items", 6);
		*len = 5;
		return 0;
	}
	struct node *n = node_find(&fs->nodes, ino);
	if (!n || n->unlinked)
		return ENOENT;
	*parent = n->parent;
	memcpy(name, n->name, n->name_len + 1);
	*len = n->name_len;
	return 0;
}

/* The record lsn changed ino, so an fsync of ino waits for it.  items/
 * needs no note: its fsync waits for every record (sync_ino in file.c).
 * ns_mu held. */
void note_lsn(struct t4dxfs *fs, fuse_ino_t ino, uint64_t lsn)
{
	if (!is_fixed(ino))
		node_note_lsn(&fs->nodes, ino, lsn);
}

/* Get an inode's current entry (attributes only; an open file that lost
 * its name gives its kept attributes).  ns_mu held. */
int ino_entry(struct t4dxfs *fs, fuse_ino_t ino, unsigned flags,
	      struct t4dx_entry *e)
{
	uint64_t parent;
	char name[T4DX_NAME_MAX + 1];
	size_t len;
	int rc = key_of(fs, ino, &parent, name, &len);
	if (rc == ENOENT && !(flags & T4DX_GET_CONTENT)) {
		struct orphan *o = orphan_find(fs, ino);
		if (o) {
			*e = o->e;
			return 0;
		}
	}
	if (rc)
		return rc;
	rc = t4dx_get(fs->db, parent, name, len, flags, e);
	return rc == T4DX_ENOTFOUND ? ENOENT : rc;
}

/* Change the fields of mask of an inode's entry (one update record,
 * NOWAIT; *lsn, if lsn is not NULL, is what to wait for).  ns_mu held. */
int update_ino(struct t4dxfs *fs, fuse_ino_t ino, const struct t4dx_entry *f,
	       uint32_t mask, uint64_t *lsn)
{
	uint64_t parent, l = 0;
	char name[T4DX_NAME_MAX + 1];
	size_t len;
	int rc = key_of(fs, ino, &parent, name, &len);
	if (!rc)
		rc = t4dx_update(fs->db, parent, name, len, f, mask,
				 T4DX_NOWAIT, &l);
	if (!rc)
		note_lsn(fs, ino, l);
	if (lsn)
		*lsn = l;
	return rc;
}

/* Size of an inode as readers of the kernel should see it: a write
 * buffer being filled counts.  ns_mu held. */
void node_wbuf_size(const struct node *n, struct stat *st)
{
	if (n && n->wb) {
		size_t len = atomic_load(&n->wb->shown_len);
		st->st_size = (off_t)len;
		st->st_blocks = (blkcnt_t)((len + 511) / 512);
	}
}

void apply_wbuf_size(struct t4dxfs *fs, fuse_ino_t ino, struct stat *st)
{
	node_wbuf_size(node_find(&fs->nodes, ino), st);
}

void fill_param(struct t4dxfs *fs, struct fuse_entry_param *ep,
		const struct t4dx_entry *e)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = e->ino;
	ep->generation = INO_GENERATION;
	ep->entry_timeout = fs->entry_timeout;
	ep->attr_timeout = fs->attr_timeout;
	entry_stat(e, &ep->attr);
}

int check_name(const char *name)
{
	size_t len = strlen(name);
	if (len > T4DX_NAME_MAX)
		return ENAMETOOLONG;
	return len ? 0 : EINVAL;
}

/* Tell the kernel to drop its cached attributes and pages of ino: its
 * content changed in the daemon. */
void invalidate(struct t4dxfs *fs, fuse_ino_t ino)
{
	atomic_fetch_add(&fs->attr_gen, 1);
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
}
