/*
 * t4dxfs.h - the daemon's state and what its files call of each other.
 *
 * The daemon is split along the FUSE operation families:
 *   reply.c      replies, metrics counting, stat helpers, keys of inodes
 *   wbuf.c       write buffers and their commit (the durability path)
 *   namespace.c  lookup, forget, create, mkdir, unlink, rmdir, rename;
 *                the kept attributes of name-less open files, the
 *                subdirectory counts
 *   attr.c       getattr, setattr (truncate), set-user-ID clearing
 *   file.c       open, create's handle, read, write, flush, fsync,
 *                release
 *   dir.c        opendir, readdir(plus), releasedir, statfs
 *   xattr.c      the user.t4dx.* extended attributes
 *   ctl.c        the control files of MOUNT/.ctl/
 *   search.c     MOUNT/search/: queries, their links and results.json
 *   query.c      a query name of search/: options, running the search
 *   inode.c      the inode table (see the essay at its top)
 *   cmdline.c    the command line (fuse_opt_parse), -o lists checked
 *   main.c       start-up checks, start, the operation table, the loop
 */
#ifndef T4DXFS_H
#define T4DXFS_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <uthash.h>

/* fs/ uses the engine through its public header t4dx.h, and three of
 * core's internal headers on purpose, since they hold no engine state and
 * wrapping them in t4dx.h would copy them without hiding anything:
 * buf.h (the growable buffer the .ctl files are rendered into),
 * metrics.h (the histograms of fs/'s own latencies and the Prometheus
 * text writer of .ctl/metrics), in xattr.c, fields.h (the one table
 * of an item's fields, which names the extended attributes) and, in
 * query.c, embed.h (a query's text is embedded as contents are) and
 * vec.h (an item's vector as the query of @ID). */
#include "buf.h"
#include "inode.h"
#include "metrics.h"
#include "t4dx.h"

struct dircount;
struct dirh;
struct fh;
struct node;
struct wbuf;

/* Inode numbers outside the engine's range (below T4DX_ROOT_INO). */
#define INO_MOUNT_ROOT  FUSE_ROOT_ID    /* 1: MOUNT/ */
#define INO_CTL_DIR     2               /* MOUNT/.ctl */
#define INO_CTL_FIRST   3               /* control files: 3 .. 14 */
#define INO_SEARCH_DIR  15              /* MOUNT/search */
/* The modes of search/ and its query directories, and of results.json:
 * the mounting user's alone.  A search answers from every item whatever
 * its mode, so a user the kernel (default_permissions) keeps out of a
 * directory of items/ must not reach search/ either (allow_other). */
#define SEARCH_DIR_MODE  0500
#define SEARCH_FILE_MODE 0400
#define INO_ITEMS       T4DX_ROOT_INO   /* MOUNT/items, stored at (0, "items") */
/* The inodes of query directories and what they hold (search.c): far
 * above any number the engine hands out. */
#define INO_SEARCH_BIT  (UINT64_C(1) << 63)

static inline bool is_search(uint64_t ino)
{
	return ino == INO_SEARCH_DIR || (ino & INO_SEARCH_BIT);
}

/* The generation of every inode: numbers are never reused (the engine's
 * next_ino only grows).  Every reply that gives the kernel an inode must
 * carry the same one: the kernel takes a different generation for a
 * reused number and marks its inode bad, so open files on it fail EIO. */
#define INO_GENERATION 1

/* The attribute timeout of a readdirplus entry from a listing older than
 * the last change of content or attributes. */
#define LISTING_ATTR_TIMEOUT 1.0

/* FUSE operations, for the metrics. */
enum fs_op {
	OP_LOOKUP, OP_GETATTR, OP_SETATTR, OP_MKDIR, OP_UNLINK, OP_RMDIR,
	OP_RENAME, OP_OPEN, OP_CREATE, OP_READ, OP_WRITE, OP_FLUSH, OP_FSYNC,
	OP_RELEASE, OP_OPENDIR, OP_READDIR, OP_READDIRPLUS, OP_STATFS,
	OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_SYMLINK,
	OP_LINK, OP_MKNOD, OP_READLINK, OP_NOPS
};
#define FS_ERRNO_MAX 134

/* Counters only: atomic, no lock. */
struct fs_metrics {
	atomic_uint_least64_t ops[OP_NOPS];
	atomic_uint_least64_t errs[OP_NOPS][FS_ERRNO_MAX];
	/* xattr requests for names t4dx does not have (ENOTSUP, ENODATA):
	 * expected answers, not errors (ls -l asks every file) */
	atomic_uint_least64_t xattr_absent[OP_NOPS];
	struct t4dx_hist write_lat, read_lat;
};

/* The state of search/ (search.c), guarded by its mu. */
#define SEARCH_CACHE 16
struct search_cached {
	uint64_t qid;                   /* 0: free */
	uint64_t use;                   /* use_clock at the last use */
	struct t4dx_hit *hits;
	size_t n;
	uint32_t k;
	bool partial;
	uint64_t pending;
	struct t4dx_search_stamp stamp; /* the store as it was computed on */
};
struct query;
struct search_state {
	pthread_mutex_t mu;             /* a leaf: no other lock is taken
	                                   while it is held */
	struct query *by_id, *by_name;  /* the query directories held */
	uint64_t next_qid;
	uint64_t use_clock;
	struct search_cached cache[SEARCH_CACHE];
	uint64_t runs, reused;          /* answers computed, and served
	                                   again from cache (same stamp) */
	int64_t log_minute;             /* lines logged in that minute */
	unsigned log_lines;
};

/* The daemon's state: the session's userdata (fuse_req_userdata), and
 * the argument of every function of the daemon that needs it.  Each field
 * says what guards it; "set at start" means set in main.c before the
 * session runs and only read after. */
struct t4dxfs {
	struct t4dx *db;                /* set at start; thread-safe itself */
	struct fuse_session *se;        /* set at start */
	int64_t start_ns;               /* set at start */
	uid_t uid;                      /* set at start */
	gid_t gid;                      /* set at start */
	double entry_timeout, attr_timeout;     /* set at start */
	uint64_t max_item_bytes;        /* set at start */
	/* ns_mu orders every change of the namespace (create, mkdir, unlink,
	 * rmdir, rename, commits of content) with the inode table: the engine
	 * change and the table update happen together under it.  Waiting for
	 * durability happens after it is released. */
	pthread_mutex_t ns_mu;
	uint64_t ns_gen;                /* bumped by every rename/unlink/rmdir;
	                                   guarded by ns_mu */
	struct t4dx_config cfg;         /* effective configuration; set at
	                                   start */
	struct fs_metrics metrics;      /* atomic counters */
	atomic_uint_least64_t alerts_seen;      /* atomic */
	atomic_uint_least64_t attr_gen; /* atomic; bumped when the daemon
	                                   tells the kernel that attributes
	                                   changed */
	atomic_uint_least64_t wb_bytes; /* atomic; held by all write
	                                   buffers, at most
	                                   cfg.limits.write_buffer_bytes */
	/* T4DX_TEST_RELEASE_PAUSE_MS: a test hook that widens the window
	 * between the last release of a write buffer and its commit, where a
	 * concurrent truncate or utimens used to free the buffer under the
	 * commit; set at start */
	unsigned test_release_pause_ms;
	bool foreground;                /* set at start */
	/* the inode table (inode.c); guarded by ns_mu */
	struct node_table nodes;
	/* the attributes of open files without a name (namespace.c);
	 * guarded by ns_mu */
	struct orphan *orphans;
	/* subdirectory counts of directories (namespace.c); ns_mu */
	struct dircount *dircounts;
	/* every open file handle (file.c) and listing (dir.c), so that those
	 * the kernel never released are freed at exit; guarded by ns_mu */
	LIST_HEAD(, fh) open_fhs;
	LIST_HEAD(, dirh) open_dirs;
	struct search_state search;     /* search.c; its own lock */
};

static inline void ns_lock(struct t4dxfs *fs)
{
	pthread_mutex_lock(&fs->ns_mu);
}

static inline void ns_unlock(struct t4dxfs *fs)
{
	pthread_mutex_unlock(&fs->ns_mu);
}

/* ---- reply.c: replies, stat helpers, keys ------------------------------ */

/* Count an operation of this thread for the metrics. */
void count_op(struct t4dxfs *fs, int op);
/* Reply rc (0 or an errno or a t4dx code): the one place where engine
 * codes become the errno of a reply. */
void reply_err(fuse_req_t req, int rc);
/* Reply for an extended attribute request: a name t4dx does not have is
 * counted apart from errors. */
void reply_xattr(fuse_req_t req, int rc);
uint64_t mono_ns(void);
struct timespec ts_of(int64_t ns);
int64_t ns_of(struct timespec t);

/* The stat of an item from its stored fields (an entry's, or a listed
 * one's: struct dent in dir.c).  SET_STAT leaves the other fields of st
 * as they are: zero, if st was cleared once for a run of entries. */
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

void entry_stat(const struct t4dx_entry *e, struct stat *st);
/* The stat of MOUNT/, .ctl/ or a control file. */
void fixed_stat(struct t4dxfs *fs, fuse_ino_t ino, struct stat *st);
/* Is ino one of the daemon's own (MOUNT/, .ctl/, control files,
 * search/ and everything below it)? */
bool is_fixed(fuse_ino_t ino);
/* The answer to a change in a directory of the daemon's own: EACCES in
 * .ctl/ and under search/ (read-only), EPERM elsewhere. */
int refuse_in(fuse_ino_t dir);
/* The entry of an engine inode through the table; ENOENT for an unknown
 * or unlinked inode, *np its node.  ns_mu held. */
int node_entry(struct t4dxfs *fs, fuse_ino_t ino, unsigned flags,
	       struct t4dx_entry *e, struct node **np);
/* The key of an inode (name: T4DX_NAME_MAX + 1 bytes).  ns_mu held. */
int key_of(struct t4dxfs *fs, fuse_ino_t ino, uint64_t *parent, char *name,
	   size_t *len);
/* The record lsn changed ino: an fsync of ino waits for it.  ns_mu. */
void note_lsn(struct t4dxfs *fs, fuse_ino_t ino, uint64_t lsn);
/* An inode's current entry (attributes only; an open file that lost its
 * name gives its kept attributes).  ns_mu held. */
int ino_entry(struct t4dxfs *fs, fuse_ino_t ino, unsigned flags,
	      struct t4dx_entry *e);
/* Change the fields of mask of an inode's entry (one update record,
 * NOWAIT; *lsn, if lsn is not NULL, is what to wait for).  ns_mu held. */
int update_ino(struct t4dxfs *fs, fuse_ino_t ino, const struct t4dx_entry *f,
	       uint32_t mask, uint64_t *lsn);
/* Size of an inode as readers of the kernel should see it: a write
 * buffer being filled counts.  ns_mu held. */
void node_wbuf_size(const struct node *n, struct stat *st);
void apply_wbuf_size(struct t4dxfs *fs, fuse_ino_t ino, struct stat *st);
void fill_param(struct t4dxfs *fs, struct fuse_entry_param *ep,
		const struct t4dx_entry *e);
/* 0, or ENAMETOOLONG, or EINVAL for an empty name. */
int check_name(const char *name);
/* Tell the kernel to drop its cached attributes and pages of ino: its
 * content changed in the daemon. */
void invalidate(struct t4dxfs *fs, fuse_ino_t ino);

/* ---- wbuf.c: write buffers and commit ---------------------------------- */

/* How a commit treats a buffer that only an O_TRUNC open changed. */
enum commit_how {
	COMMIT_FLUSH,           /* a close: wait for the last one */
	COMMIT_SYNC,            /* fsync: commit whatever the buffer holds */
	COMMIT_RELEASE,         /* the last reference is going */
};

/* A new empty buffer, or NULL. */
struct wbuf *wbuf_new(void);
/* Free w and give its bytes back to the budget. */
void wbuf_free(struct t4dxfs *fs, struct wbuf *w);
/* Share the committed content c (a new reference) as w's bytes until the
 * first change copies them.  w->mu held, or w not yet seen. */
void wbuf_share(struct t4dxfs *fs, struct wbuf *w, struct t4dx_blob *c);
/* Room for len bytes keeping the first keep; ENOSPC past the budget of
 * all write buffers.  w->mu held. */
int wbuf_reserve_keep(struct t4dxfs *fs, struct wbuf *w, size_t len,
		      size_t keep);
int wbuf_reserve(struct t4dxfs *fs, struct wbuf *w, size_t len);
/* Set the length (shrinking, or after the bytes are in place).  w->mu. */
void wbuf_set_len(struct wbuf *w, size_t len);
/* n's buffer w took bytes a writer gave it.  w->mu held. */
void wbuf_written(struct t4dxfs *fs, struct node *n, struct wbuf *w);
/* Commit w, the write buffer of node n (inode ino), if it holds a
 * change, as one put; the commit's error once the record is durable.
 * The caller holds a reference to w. */
int wbuf_commit(struct t4dxfs *fs, struct node *n, fuse_ino_t ino,
		struct wbuf *w, enum commit_how how);
/* Take a reference to n's buffer, if any.  ns_mu held. */
struct wbuf *wb_pin(struct node *n);
/* Drop a reference to n's buffer; the last one commits and frees it. */
void wb_put(struct t4dxfs *fs, struct node *n, fuse_ino_t ino);

/* ---- namespace.c ------------------------------------------------------- */

/* The attributes of an open file without a name (namespace.c). */
struct orphan {
	uint64_t ino;
	struct t4dx_entry e;            /* no content */
	UT_hash_handle hh;
};
/* The kept attributes of an open file without a name, or NULL.  ns_mu. */
struct orphan *orphan_find(struct t4dxfs *fs, uint64_t ino);
/* n's name is gone: e is its entry at that moment.  ns_mu held. */
void orphan_node(struct t4dxfs *fs, struct node *n, const struct t4dx_entry *e);
/* The last descriptor of n is being closed.  ns_mu held. */
void orphan_drop(struct t4dxfs *fs, struct node *n);
/* st_nlink of directory ino (counting its subdirectories once).  ns_mu. */
void dir_nlink(struct t4dxfs *fs, uint64_t ino, struct stat *st);
/* The subdirectory count of ino if it was ever made, else -1.  ns_mu. */
int64_t dircount_get(struct t4dxfs *fs, uint64_t ino);
/* Drop a kernel reference taken by a reply the kernel did not take. */
void forget_one(struct t4dxfs *fs, fuse_ino_t ino, uint64_t n);
/* Create (parent, name) with mode, durable unless nowait (then *lsn is
 * what to wait for), and take a kernel reference. */
int make_entry(struct t4dxfs *fs, fuse_req_t req, fuse_ino_t parent,
	       const char *name, mode_t mode, bool nowait, uint64_t *lsn,
	       struct fuse_entry_param *ep);
/* Free the orphans and counts (at exit).  ns_mu held. */
void namespace_free_all(struct t4dxfs *fs);
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void op_forget_multi(fuse_req_t req, size_t count,
		     struct fuse_forget_data *forgets);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode);
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags);
void op_readlink(fuse_req_t req, fuse_ino_t ino);
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		const char *name);
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	     const char *newname);
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
	      mode_t mode, dev_t rdev);

/* ---- attr.c ------------------------------------------------------------ */

/* The attributes of ino as the kernel should see them. */
int do_getattr(struct t4dxfs *fs, fuse_ino_t ino, struct stat *st);
/* The set-user-ID bits a write by an unprivileged caller clears. */
mode_t priv_bits(mode_t mode);
/* Clear ino's privilege bits.  No lock held. */
void kill_priv(struct t4dxfs *fs, fuse_ino_t ino);
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		int to_set, struct fuse_file_info *fi);

/* ---- file.c ------------------------------------------------------------ */

/* A setattr through a write descriptor (an ftruncate). */
bool fh_is_writer(const struct fuse_file_info *fi);
/* Free every handle the kernel never released (at exit).  ns_mu held. */
void fh_free_all(struct t4dxfs *fs);
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode, struct fuse_file_info *fi);
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi);
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	      off_t off, struct fuse_file_info *fi);
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	      struct fuse_file_info *fi);
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi);
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- dir.c ------------------------------------------------------------- */

/* Free every listing the kernel never released (at exit).  ns_mu held. */
void dir_free_all(struct t4dxfs *fs);
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_statfs(fuse_req_t req, fuse_ino_t ino);

/* ---- xattr.c ----------------------------------------------------------- */

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags);
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 size_t size);
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ---- search.c ---------------------------------------------------------- */

/* Lookup of name in search/ or in a query directory. */
int search_lookup(struct t4dxfs *fs, fuse_ino_t parent, const char *name,
		  struct fuse_entry_param *ep);
/* The kernel dropped n references to ino (a search inode). */
void search_forget(struct t4dxfs *fs, fuse_ino_t ino, uint64_t n);
int search_getattr(struct t4dxfs *fs, fuse_ino_t ino, struct stat *st);
/* The entries of search/ or of a query directory (computed now), each
 * given to add, which returns 0 or an errno. */
typedef int (*search_add_fn)(void *arg, const char *name, size_t len,
			     const struct stat *st);
int search_list(struct t4dxfs *fs, fuse_ino_t ino, search_add_fn add,
		void *arg);
/* The content of results.json (ino), computed now. */
int search_show(struct t4dxfs *fs, fuse_ino_t ino, struct t4dx_buf *out);
/* readlink of an inode under search/ (op_readlink hands them over). */
void search_readlink(fuse_req_t req, fuse_ino_t ino);
/* Free the queries and answers (at exit). */
void search_free_all(struct t4dxfs *fs);

#endif
