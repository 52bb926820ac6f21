/*
 * t4dxfs.h - state shared by the parts of the FUSE daemon.
 */
#ifndef T4DXFS_H
#define T4DXFS_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "t4dx.h"

/* Inode numbers outside the engine's range (below T4DX_ROOT_INO). */
#define INO_MOUNT_ROOT  FUSE_ROOT_ID    /* 1: MOUNT/ */
#define INO_CTL_DIR     2               /* MOUNT/.ctl */
#define INO_CTL_FIRST   3               /* control files: 3 .. 15 */
#define INO_ITEMS       T4DX_ROOT_INO   /* MOUNT/items, stored at (0, "items") */

/* FUSE operations, for the metrics. */
enum fs_op {
	OP_LOOKUP, OP_GETATTR, OP_SETATTR, OP_MKDIR, OP_UNLINK, OP_RMDIR,
	OP_RENAME, OP_OPEN, OP_CREATE, OP_READ, OP_WRITE, OP_FLUSH, OP_FSYNC,
	OP_RELEASE, OP_OPENDIR, OP_READDIR, OP_READDIRPLUS, OP_STATFS,
	OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_SYMLINK,
	OP_LINK, OP_MKNOD, OP_NOPS
};
#define FS_ERRNO_MAX 134

struct fs_metrics {
	atomic_uint_least64_t ops[OP_NOPS];
	atomic_uint_least64_t errs[OP_NOPS][FS_ERRNO_MAX];
	/* xattr requests for names t4dx does not have (ENOTSUP, ENODATA):
	 * expected answers, not errors (ls -l asks every file) */
	atomic_uint_least64_t xattr_absent[OP_NOPS];
	struct t4dx_hist write_lat, read_lat;
};

struct t4dxfs;
extern struct t4dxfs fs;

struct t4dxfs {
	struct t4dx *db;
	struct fuse_session *se;
	int64_t start_ns;
	uid_t uid;
	gid_t gid;
	double entry_timeout, attr_timeout;
	uint64_t max_item_bytes;
	/* ns_mu orders every change of the namespace (create, mkdir, unlink,
	 * rmdir, rename, commits of content) with the inode table: the engine
	 * change and the table update happen together under it.  Waiting for
	 * durability happens after it is released. */
	pthread_mutex_t ns_mu;
	uint64_t ns_gen;                /* bumped by every rename/unlink/rmdir;
	                                   guarded by ns_mu */
	struct t4dx_config cfg;         /* effective configuration */
	struct fs_metrics metrics;
	atomic_uint_least64_t alerts_seen;
	atomic_uint_least64_t attr_gen; /* bumped when the daemon tells the
	                                   kernel that attributes changed */
	atomic_uint_least64_t wb_bytes; /* held by all write buffers, at most
	                                   cfg.limits.write_buffer_bytes */
	bool foreground;
};

static inline void ns_lock(void)
{
	pthread_mutex_lock(&fs.ns_mu);
}

static inline void ns_unlock(void)
{
	pthread_mutex_unlock(&fs.ns_mu);
}

#endif
