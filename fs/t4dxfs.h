/*
 * t4dxfs.h - state shared by the parts of the FUSE daemon.
 */
#ifndef T4DXFS_H
#define T4DXFS_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "t4dx.h"

/* Inode numbers outside the engine's range (below T4DX_ROOT_INO). */
#define INO_MOUNT_ROOT  FUSE_ROOT_ID    /* 1: MOUNT/ */
#define INO_CTL_DIR     2               /* MOUNT/.ctl */
#define INO_CTL_FIRST   3               /* control files: 3 .. 15 */
#define INO_ITEMS       T4DX_ROOT_INO   /* MOUNT/items, stored at (0, "items") */

struct t4dxfs {
	struct t4dx *db;
	struct fuse_session *se;
	const char *data_dir, *mountpoint;
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
	struct node *nodes;             /* inode table (uthash), ns_mu */
};

extern struct t4dxfs fs;

#endif
