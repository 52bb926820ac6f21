/*
 * nullfs.c - a no-I/O, in-memory FUSE file system: the ceiling that any
 * FUSE design has on this machine, for the benchmark (tools/bench).
 *
 *     nullfs [-f] [-o opt[,opt...]] MOUNTPOINT
 *
 * It mounts like t4dxfs (without -f it returns once the mount is ready;
 * fusermount3 -u, SIGTERM and SIGINT end it) and shows the same shape:
 * MOUNT/items/ holds files, directories and symbolic links, kept in RAM
 * and never written anywhere; rename moves any of them (so that rsync and
 * tar of a real tree work).  Nothing is durable; close returns as soon as the request is
 * answered.  MOUNT/.ops (read-only) counts the requests received, by
 * operation, in the Prometheus text format of t4dx's .ctl/metrics, so that
 * the benchmark can show how many round trips an operation costs.
 *
 * Kernel caching is what a well-tuned FUSE file system through which every
 * change passes would choose: long entry and attribute timeouts (negative
 * entries too), keep_cache on every open, noflush on read-only opens,
 * readdirplus (auto), atomic O_TRUNC, no writeback cache (every write
 * reaches the daemon, as t4dx's durable-on-close contract needs).
 * Options of our own:
 *   nocache        zero timeouts and no keep_cache: every operation is a
 *                  round trip (the "uncached" ceiling)
 *   cache_readdir  let the kernel cache directory listings as well
 *   xattr          answer getxattr with ENODATA and listxattr with an empty
 *                  list, as a file system with extended attributes must
 *                  (by default they answer ENOSYS, and the kernel stops
 *                  asking)
 *   timeout=SECS   entry and attribute timeout (default 86400)
 *   noopen         answer OPEN with ENOSYS: the kernel then stops sending
 *                  OPEN and RELEASE for the whole connection (its no-open
 *                  mode), opens files with keep_cache and fh 0 and serves
 *                  reads from its page cache.  Reads and writes need no
 *                  handle here (create still opens one); O_TRUNC reaches us
 *                  as a SETATTR, since atomic_o_trunc is off in this mode
 *                  (an O_TRUNC carried by an OPEN that is never sent would
 *                  be lost).  The floor of a hot cat for any FUSE design.
 *   noflush        answer FLUSH with ENOSYS: the kernel stops sending FLUSH
 *                  (with noopen, a hot cat then costs no round trip)
 * Every other option goes to libfuse.
 *
 * .ops without open.  With noopen no open reaches us, so .ops has no
 * handle holding its text and the kernel caches its pages like any file's.
 * There .ops is served from a snapshot instead: every GETATTR (or lookup)
 * of .ops takes a new one into the node's data, reports its size, a new
 * mtime and an attribute timeout of 0; since auto_inval_data is on, the
 * kernel asks for the attributes before every read, sees the new mtime,
 * drops its pages and reads the snapshot.  The GETATTRs and READs of .ops
 * itself are not counted in this mode, so that two snapshots taken by one
 * reader have the same text and length.
 *
 * Nodes.  The FUSE node id of an entry is the address of its struct node
 * (the root, node id 1, is the static root_node); st_ino is a counter.  A
 * node lives while it is linked in the tree or the kernel holds a lookup
 * reference or an open handle on it: unlink takes it out of the name table
 * and its directory, and the last forget or release frees it.  The name
 * table (parent, name) -> node, every directory's child array and every
 * lookup count are guarded by tree_lock (write-locked to change the tree
 * and for forget, read-locked otherwise; lookup counts are atomics so that
 * lookup and readdirplus can add under the read lock).  A file's content and
 * times are guarded by its own mutex.  A directory lists its children in
 * creation order; a readdir offset is an index into its child array (an
 * unlinked child leaves a NULL hole, so offsets stay valid).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#define NAME_MAX_LEN 255
#define OPS_NAME ".ops"

struct node {
	uint64_t st_ino;
	struct node *parent;            /* NULL once unlinked */
	char *name;
	size_t name_len;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	atomic_uint_least64_t nlookup;  /* kernel references */
	uint64_t opens;                 /* guarded by tree_lock (write) */
	struct node *hnext;             /* name table chain */
	size_t slot;                    /* index in parent->kids */
	/* directories, guarded by tree_lock */
	struct node **kids;
	size_t nkids, kcap;
	size_t live;                    /* non-NULL kids */
	/* files, guarded by mu */
	pthread_mutex_t mu;
	char *data;
	size_t size, cap;
	struct timespec mtime, ctime;
};

enum {
	OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_MKDIR, OP_UNLINK,
	OP_RMDIR, OP_OPEN, OP_CREATE, OP_READ, OP_WRITE, OP_FLUSH, OP_FSYNC,
	OP_RELEASE, OP_OPENDIR, OP_READDIR, OP_READDIRPLUS, OP_RELEASEDIR,
	OP_GETXATTR, OP_LISTXATTR, OP_SYMLINK, OP_READLINK, OP_RENAME, OP_NOPS
};

static const char *const op_names[OP_NOPS] = {
	"lookup", "forget", "getattr", "setattr", "mkdir", "unlink", "rmdir",
	"open", "create", "read", "write", "flush", "fsync", "release",
	"opendir", "readdir", "readdirplus", "releasedir", "getxattr",
	"listxattr", "symlink", "readlink", "rename",
};

static struct nf_state {
	double timeout;
	/* options of our own (fuse_opt sets ints) */
	int nocache, cache_readdir, xattr, noopen, noflush;
	/* the rest of the command line */
	bool foreground, help;
	const char *mnt;
	struct fuse_session *se;
	atomic_uint_least64_t ops[OP_NOPS];
	atomic_uint_least64_t next_ino;
} nf = { .timeout = 86400.0, .next_ino = 3 };

static pthread_rwlock_t tree_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct node root_node;   /* MOUNT/, node id 1 */
static struct node *items_node; /* MOUNT/items */
static struct node ops_node;    /* MOUNT/.ops */

/* The name table, guarded by tree_lock. */
static struct node **htab;
static size_t hsize, hcount;

static void count_op(int op)
{
	atomic_fetch_add_explicit(&nf.ops[op], 1, memory_order_relaxed);
}

static struct node *node_of(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &root_node : (struct node *)(uintptr_t)ino;
}

static fuse_ino_t ino_of(struct node *n)
{
	return n == &root_node ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

static double entry_timeout(void)
{
	return nf.nocache ? 0.0 : nf.timeout;
}

/* The attribute timeout of n (0 for a .ops without open handles). */
static double attr_timeout(const struct node *n)
{
	return n == &ops_node && nf.noopen ? 0.0 : entry_timeout();
}

/* A request on n counts unless it is one on a .ops without handles. */
static void count_op_on(int op, const struct node *n)
{
	if (!(n == &ops_node && nf.noopen))
		count_op(op);
}

static int ops_show(char **out, size_t *len);

/* ---- the name table ----------------------------------------------------- */

static size_t hash_key(const struct node *parent, const char *name,
		       size_t len)
{
	uint64_t h = 1469598103934665603ULL ^ (uintptr_t)parent;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 1099511628211ULL;
	}
	return (size_t)(h ^ (h >> 29));
}

/* tree_lock held. */
static struct node *name_find(struct node *parent, const char *name)
{
	size_t len = strlen(name);
	if (!hsize)
		return NULL;
	for (struct node *n = htab[hash_key(parent, name, len) & (hsize - 1)];
	     n; n = n->hnext)
		if (n->parent == parent && n->name_len == len &&
		    !memcmp(n->name, name, len))
			return n;
	return NULL;
}

/* tree_lock held for writing. */
static int name_grow(void)
{
	size_t nsize = hsize ? hsize * 2 : 1024;
	struct node **nt = calloc(nsize, sizeof(*nt));
	if (!nt)
		return ENOMEM;
	for (size_t i = 0; i < hsize; i++) {
		struct node *n = htab[i], *next;
		for (; n; n = next) {
			next = n->hnext;
			size_t b = hash_key(n->parent, n->name, n->name_len) &
				   (nsize - 1);
			n->hnext = nt[b];
			nt[b] = n;
		}
	}
	free(htab);
	htab = nt;
	hsize = nsize;
	return 0;
}

/* Room for one more child in parent->kids (tree_lock held for writing). */
static int kids_reserve(struct node *parent)
{
	if (parent->nkids == parent->kcap) {
		size_t ncap = parent->kcap ? parent->kcap * 2 : 16;
		struct node **nk = realloc(parent->kids, ncap * sizeof(*nk));
		if (!nk)
			return ENOMEM;
		parent->kids = nk;
		parent->kcap = ncap;
	}
	return 0;
}

/* Link n under parent (tree_lock held for writing). */
static int name_insert(struct node *parent, struct node *n)
{
	if (hcount + 1 > hsize && name_grow())
		return ENOMEM;
	if (kids_reserve(parent))
		return ENOMEM;
	n->parent = parent;
	n->slot = parent->nkids;
	parent->kids[parent->nkids++] = n;
	parent->live++;
	size_t b = hash_key(parent, n->name, n->name_len) & (hsize - 1);
	n->hnext = htab[b];
	htab[b] = n;
	hcount++;
	return 0;
}

/* Unlink n from the tree (tree_lock held for writing). */
static void name_remove(struct node *n)
{
	struct node *parent = n->parent;
	struct node **pp = &htab[hash_key(parent, n->name, n->name_len) &
				 (hsize - 1)];
	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	hcount--;
	parent->kids[n->slot] = NULL;
	parent->live--;
	n->parent = NULL;
}

/* ---- nodes ---------------------------------------------------------------- */

static struct node *node_new(const char *name, mode_t mode,
			     const struct fuse_ctx *ctx)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name_len = strlen(name);
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->st_ino = atomic_fetch_add(&nf.next_ino, 1);
	n->mode = mode;
	n->uid = ctx ? ctx->uid : getuid();
	n->gid = ctx ? ctx->gid : getgid();
	pthread_mutex_init(&n->mu, NULL);
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	n->ctime = n->mtime;
	return n;
}

static void node_free(struct node *n)
{
	pthread_mutex_destroy(&n->mu);
	free(n->kids);
	free(n->data);
	free(n->name);
	free(n);
}

/* Free n if nothing refers to it any more (tree_lock held for writing). */
static void node_maybe_free(struct node *n)
{
	if (n == &root_node || n == &ops_node || n == items_node)
		return;
	if (!n->parent && !n->opens && atomic_load(&n->nlookup) == 0)
		node_free(n);
}

/* Take a new snapshot of .ops into its node, with a new mtime (noopen). */
static void ops_snapshot(void)
{
	char *text;
	size_t len;
	struct timespec now;
	if (ops_show(&text, &len))
		return;  /* the previous snapshot stays */
	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&ops_node.mu);
	free(ops_node.data);
	ops_node.data = text;
	ops_node.size = ops_node.cap = len;
	/* strictly later than the last one, so the kernel drops its pages */
	if (now.tv_sec < ops_node.mtime.tv_sec ||
	    (now.tv_sec == ops_node.mtime.tv_sec &&
	     now.tv_nsec <= ops_node.mtime.tv_nsec)) {
		now = ops_node.mtime;
		if (++now.tv_nsec == 1000000000L) {
			now.tv_sec++;
			now.tv_nsec = 0;
		}
	}
	ops_node.mtime = ops_node.ctime = now;
	pthread_mutex_unlock(&ops_node.mu);
}

static void node_stat(struct node *n, struct stat *st)
{
	if (n == &ops_node && nf.noopen)
		ops_snapshot();
	memset(st, 0, sizeof(*st));
	st->st_ino = n->st_ino;
	st->st_mode = n->mode;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_blksize = 4096;
	if (S_ISDIR(n->mode)) {
		st->st_nlink = 2;
		st->st_size = 4096;
	} else {
		st->st_nlink = 1;
	}
	pthread_mutex_lock(&n->mu);
	if (!S_ISDIR(n->mode))
		st->st_size = (off_t)n->size;
	st->st_mtim = n->mtime;
	st->st_ctim = n->ctime;
	st->st_atim = n->mtime;
	pthread_mutex_unlock(&n->mu);
	st->st_blocks = (st->st_size + 511) / 512;
}

/* Fill ep for n and take a kernel reference (tree_lock held). */
static void node_entry(struct node *n, struct fuse_entry_param *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = ino_of(n);
	ep->generation = 1;
	ep->entry_timeout = entry_timeout();
	ep->attr_timeout = attr_timeout(n);
	node_stat(n, &ep->attr);
	atomic_fetch_add(&n->nlookup, 1);
}

/* The generated content of .ops (caller frees *out). */
static int ops_show(char **out, size_t *len)
{
	size_t cap = 4096, pos = 0;
	char *b = malloc(cap);
	if (!b)
		return ENOMEM;
	pos += (size_t)snprintf(b + pos, cap - pos,
		"# HELP nullfs_ops_total FUSE requests received, by operation.\n"
		"# TYPE nullfs_ops_total counter\n");
	for (int i = 0; i < OP_NOPS; i++)
		pos += (size_t)snprintf(b + pos, cap - pos,
			"nullfs_ops_total{op=\"%s\"} %llu\n", op_names[i],
			(unsigned long long)atomic_load(&nf.ops[i]));
	*out = b;
	*len = pos;
	return 0;
}

/* ---- lookup, forget, getattr, setattr ------------------------------------ */

static int do_lookup(fuse_ino_t parent, const char *name,
		     struct fuse_entry_param *ep)
{
	struct node *p = node_of(parent);
	int rc = 0;
	if (strlen(name) > NAME_MAX_LEN)
		return ENAMETOOLONG;
	pthread_rwlock_rdlock(&tree_lock);
	struct node *n = name_find(p, name);
	if (n) {
		node_entry(n, ep);
	} else {
		/* a negative entry the kernel may cache */
		memset(ep, 0, sizeof(*ep));
		ep->entry_timeout = entry_timeout();
	}
	pthread_rwlock_unlock(&tree_lock);
	return rc;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count_op(OP_LOOKUP);
	struct fuse_entry_param ep;
	int rc = do_lookup(parent, name, &ep);
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

/* tree_lock held for writing. */
static void forget_one(fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n = node_of(ino);
	atomic_fetch_sub(&n->nlookup, nlookup);
	node_maybe_free(n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	count_op(OP_FORGET);
	pthread_rwlock_wrlock(&tree_lock);
	forget_one(ino, nlookup);
	pthread_rwlock_unlock(&tree_lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	count_op(OP_FORGET);
	pthread_rwlock_wrlock(&tree_lock);
	for (size_t i = 0; i < count; i++)
		forget_one(forgets[i].ino, forgets[i].nlookup);
	pthread_rwlock_unlock(&tree_lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct node *n = node_of(ino);
	count_op_on(OP_GETATTR, n);
	struct stat st;
	node_stat(n, &st);
	fuse_reply_attr(req, &st, attr_timeout(n));
}

static int do_setattr(struct node *n, struct stat *attr, int to_set)
{
	struct timespec now;
	int rc = 0;
	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&n->mu);
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (S_ISDIR(n->mode)) {
			rc = EISDIR;
			goto out;
		}
		size_t len = (size_t)attr->st_size;
		if (len > n->cap) {
			char *d = realloc(n->data, len);
			if (!d) {
				rc = ENOMEM;
				goto out;
			}
			n->data = d;
			n->cap = len;
		}
		if (len > n->size)
			memset(n->data + n->size, 0, len - n->size);
		n->size = len;
		n->mtime = now;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		n->mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		n->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		n->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_MTIME)
		n->mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		n->mtime = now;
	n->ctime = now;
out:
	pthread_mutex_unlock(&n->mu);
	return rc;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	count_op(OP_SETATTR);
	struct node *n = node_of(ino);
	int rc = do_setattr(n, attr, to_set);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	struct stat st;
	node_stat(n, &st);
	fuse_reply_attr(req, &st, entry_timeout());
}

/* ---- creating and removing ------------------------------------------------ */

/* Make a new entry under parent (a symlink's target is link); on success
 * ep holds it (one kernel reference) and *out the node. */
static int make_node(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, const char *link, bool excl_ok,
		     struct fuse_entry_param *ep, struct node **out)
{
	struct node *p = node_of(parent);
	int rc = 0;
	if (strlen(name) > NAME_MAX_LEN)
		return ENAMETOOLONG;
	if (!S_ISDIR(p->mode))
		return ENOTDIR;
	if (p == &root_node)
		return EPERM;
	struct node *n = node_new(name, mode, fuse_req_ctx(req));
	if (!n)
		return ENOMEM;
	if (link) {
		n->data = strdup(link);
		if (!n->data) {
			node_free(n);
			return ENOMEM;
		}
		n->size = n->cap = strlen(link);
	}
	pthread_rwlock_wrlock(&tree_lock);
	struct node *old = name_find(p, name);
	if (old && excl_ok && S_ISREG(old->mode)) {
		/* create of an existing file: open it, emptied */
		node_free(n);
		n = old;
		pthread_mutex_lock(&n->mu);
		n->size = 0;
		clock_gettime(CLOCK_REALTIME, &n->mtime);
		n->ctime = n->mtime;
		pthread_mutex_unlock(&n->mu);
	} else if (old) {
		node_free(n);
		rc = EEXIST;
		goto out;
	} else if ((rc = name_insert(p, n))) {
		node_free(n);
		goto out;
	}
	node_entry(n, ep);
	*out = n;
out:
	pthread_rwlock_unlock(&tree_lock);
	return rc;
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	count_op(OP_MKDIR);
	struct fuse_entry_param ep;
	struct node *n;
	int rc = make_node(req, parent, name, S_IFDIR | (mode & 07777), NULL,
			   false, &ep, &n);
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

static int do_remove(fuse_ino_t parent, const char *name, bool dir)
{
	int rc = 0;
	pthread_rwlock_wrlock(&tree_lock);
	struct node *n = name_find(node_of(parent), name);
	if (!n)
		rc = ENOENT;
	else if (n == items_node || n == &ops_node)
		rc = EPERM;
	else if (dir && !S_ISDIR(n->mode))
		rc = ENOTDIR;
	else if (!dir && S_ISDIR(n->mode))
		rc = EISDIR;
	else if (dir && n->live)
		rc = ENOTEMPTY;
	if (!rc) {
		name_remove(n);
		node_maybe_free(n);
	}
	pthread_rwlock_unlock(&tree_lock);
	return rc;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count_op(OP_UNLINK);
	fuse_reply_err(req, do_remove(parent, name, false));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	count_op(OP_RMDIR);
	fuse_reply_err(req, do_remove(parent, name, true));
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	count_op(OP_SYMLINK);
	struct fuse_entry_param ep;
	struct node *n;
	int rc = make_node(req, parent, name, S_IFLNK | 0777, link, false,
			   &ep, &n);
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_entry(req, &ep);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	count_op(OP_READLINK);
	struct node *n = node_of(ino);
	if (!S_ISLNK(n->mode)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* a symlink's data is its target and never changes */
	fuse_reply_readlink(req, n->data);
}

/* Move the entry (parent, name) to (np, newname), over an entry there of
 * the same kind (an empty directory for a directory). */
static int do_rename(fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags)
{
	struct node *p = node_of(parent), *np = node_of(newparent), *n, *old;
	int rc = 0;
	if (strlen(newname) > NAME_MAX_LEN)
		return ENAMETOOLONG;
	if (flags & ~(unsigned int)RENAME_NOREPLACE)
		return EINVAL;  /* no RENAME_EXCHANGE, no whiteouts */
	char *nn = strdup(newname);
	if (!nn)
		return ENOMEM;
	pthread_rwlock_wrlock(&tree_lock);
	n = name_find(p, name);
	old = name_find(np, newname);
	if (!n)
		rc = ENOENT;
	else if (n == items_node || n == &ops_node || np == &root_node)
		rc = EPERM;
	else if (!S_ISDIR(np->mode))
		rc = ENOTDIR;
	else if (old == n)
		goto out;       /* a rename onto itself changes nothing */
	for (struct node *q = np; !rc && q; q = q->parent)
		if (q == n)
			rc = EINVAL;    /* a directory into itself */
	if (!rc && old) {
		if (flags & RENAME_NOREPLACE)
			rc = EEXIST;
		else if (S_ISDIR(n->mode) && !S_ISDIR(old->mode))
			rc = ENOTDIR;
		else if (!S_ISDIR(n->mode) && S_ISDIR(old->mode))
			rc = EISDIR;
		else if (S_ISDIR(old->mode) && old->live)
			rc = ENOTEMPTY;
	}
	/* nothing may fail once n is out of its directory: the name table
	 * has room (n leaves it first), np->kids gets it now */
	if (!rc)
		rc = kids_reserve(np);
	if (rc)
		goto out;
	if (old) {
		name_remove(old);
		node_maybe_free(old);
	}
	name_remove(n);
	free(n->name);
	n->name = nn;
	n->name_len = strlen(nn);
	nn = NULL;
	name_insert(np, n);
	pthread_mutex_lock(&n->mu);
	clock_gettime(CLOCK_REALTIME, &n->ctime);
	pthread_mutex_unlock(&n->mu);
out:
	pthread_rwlock_unlock(&tree_lock);
	free(nn);
	return rc;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	count_op(OP_RENAME);
	fuse_reply_err(req, do_rename(parent, name, newparent, newname, flags));
}

/* ---- files -------------------------------------------------------------- */

/* A handle of .ops holds its generated text; a file handle holds nothing
 * (fh is 0) and reads the node. */
struct ops_fh {
	char *text;
	size_t len;
};

static void set_caching(struct fuse_file_info *fi)
{
	fi->keep_cache = !nf.nocache;
	if ((fi->flags & O_ACCMODE) == O_RDONLY)
		fi->noflush = 1;
}

static int do_open(struct node *n, struct fuse_file_info *fi)
{
	if (S_ISDIR(n->mode))
		return EISDIR;
	if (n == &ops_node) {
		if ((fi->flags & O_ACCMODE) != O_RDONLY)
			return EACCES;
		struct ops_fh *h = calloc(1, sizeof(*h));
		if (!h)
			return ENOMEM;
		int rc = ops_show(&h->text, &h->len);
		if (rc) {
			free(h);
			return rc;
		}
		fi->fh = (uintptr_t)h;
		fi->direct_io = 1;
		return 0;
	}
	if (fi->flags & O_TRUNC) {
		pthread_mutex_lock(&n->mu);
		n->size = 0;
		clock_gettime(CLOCK_REALTIME, &n->mtime);
		n->ctime = n->mtime;
		pthread_mutex_unlock(&n->mu);
	}
	pthread_rwlock_wrlock(&tree_lock);
	n->opens++;
	pthread_rwlock_unlock(&tree_lock);
	set_caching(fi);
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count_op(OP_OPEN);
	if (nf.noopen) {
		/* the kernel's no-open mode: it opens without us from now on
		 * (an O_TRUNC arrives as a SETATTR, atomic_o_trunc being off) */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	int rc = do_open(node_of(ino), fi);
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_open(req, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	count_op(OP_CREATE);
	struct fuse_entry_param ep;
	struct node *n;
	int rc = make_node(req, parent, name, S_IFREG | (mode & 07777), NULL,
			   true, &ep, &n);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	pthread_rwlock_wrlock(&tree_lock);
	n->opens++;
	pthread_rwlock_unlock(&tree_lock);
	set_caching(fi);
	fuse_reply_create(req, &ep, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct node *n = node_of(ino);
	count_op_on(OP_READ, n);
	if (n == &ops_node && fi->fh) {
		struct ops_fh *h = (struct ops_fh *)(uintptr_t)fi->fh;
		size_t len = (size_t)off < h->len ? h->len - (size_t)off : 0;
		fuse_reply_buf(req, h->text + off, len < size ? len : size);
		return;
	}
	/* a file, or the snapshot of a .ops opened without us (noopen) */
	pthread_mutex_lock(&n->mu);
	size_t len = (size_t)off < n->size ? n->size - (size_t)off : 0;
	fuse_reply_buf(req, len ? n->data + off : NULL, len < size ? len : size);
	pthread_mutex_unlock(&n->mu);
}

static int do_write(struct node *n, const char *buf, size_t size, off_t off)
{
	int rc = 0;
	size_t end = (size_t)off + size;
	pthread_mutex_lock(&n->mu);
	if (end > n->cap) {
		size_t ncap = n->cap ? n->cap : 1024;
		while (ncap < end)
			ncap *= 2;
		char *d = realloc(n->data, ncap);
		if (!d) {
			rc = ENOMEM;
			goto out;
		}
		n->data = d;
		n->cap = ncap;
	}
	if ((size_t)off > n->size)
		memset(n->data + n->size, 0, (size_t)off - n->size);
	memcpy(n->data + off, buf, size);
	if (end > n->size)
		n->size = end;
	clock_gettime(CLOCK_REALTIME, &n->mtime);
	n->ctime = n->mtime;
out:
	pthread_mutex_unlock(&n->mu);
	return rc;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	count_op(OP_WRITE);
	struct node *n = node_of(ino);
	int rc = n == &ops_node ? EACCES : do_write(n, buf, size, off);
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	count_op(OP_FLUSH);
	/* with noflush, the kernel stops sending FLUSH once it sees ENOSYS */
	fuse_reply_err(req, nf.noflush ? ENOSYS : 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	count_op(OP_FSYNC);
	fuse_reply_err(req, 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	count_op(OP_RELEASE);
	struct node *n = node_of(ino);
	if (n == &ops_node) {
		struct ops_fh *h = (struct ops_fh *)(uintptr_t)fi->fh;
		if (h)
			free(h->text);
		free(h);
	} else {
		pthread_rwlock_wrlock(&tree_lock);
		n->opens--;
		node_maybe_free(n);
		pthread_rwlock_unlock(&tree_lock);
	}
	fuse_reply_err(req, 0);
}

/* ---- directories ---------------------------------------------------------- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	count_op(OP_OPENDIR);
	if (!S_ISDIR(node_of(ino)->mode)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->keep_cache = nf.cache_readdir;
	fi->cache_readdir = nf.cache_readdir;
	fuse_reply_open(req, fi);
}

/* Offsets: 1 is ".", 2 is "..", 3 + i is kids[i]. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
{
	struct node *d = node_of(ino);
	char *buf = malloc(size);
	size_t pos = 0;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_rwlock_rdlock(&tree_lock);
	for (size_t i = (size_t)off;; i++) {
		struct node *n;
		const char *name;
		if (i == 0 || i == 1) {
			n = i == 0 ? d : d->parent ? d->parent : d;
			name = i == 0 ? "." : "..";
		} else if (i - 2 < d->nkids) {
			n = d->kids[i - 2];
			if (!n)
				continue;
			name = n->name;
		} else {
			break;
		}
		size_t len;
		if (plus) {
			struct fuse_entry_param ep;
			memset(&ep, 0, sizeof(ep));
			if (i >= 2) {
				node_entry(n, &ep);
			} else {
				/* the kernel ignores "." and ".." here */
				ep.attr.st_ino = n->st_ino;
				ep.attr.st_mode = n->mode;
			}
			len = fuse_add_direntry_plus(req, buf + pos, size - pos,
						     name, &ep, (off_t)i + 1);
			if (len > size - pos) {
				if (i >= 2)  /* not sent: give it back */
					atomic_fetch_sub(&n->nlookup, 1);
				break;
			}
		} else {
			struct stat st = { .st_ino = n->st_ino,
					   .st_mode = n->mode };
			len = fuse_add_direntry(req, buf + pos, size - pos,
						name, &st, (off_t)i + 1);
			if (len > size - pos)
				break;
		}
		pos += len;
	}
	pthread_rwlock_unlock(&tree_lock);
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	count_op(OP_READDIR);
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	count_op(OP_READDIRPLUS);
	do_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	count_op(OP_RELEASEDIR);
	fuse_reply_err(req, 0);
}

/* ---- extended attributes (only with -o xattr) ------------------------------ */

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	count_op(OP_GETXATTR);
	fuse_reply_err(req, nf.xattr ? ENODATA : ENOSYS);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	count_op(OP_LISTXATTR);
	if (!nf.xattr)
		fuse_reply_err(req, ENOSYS);
	else if (size)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_xattr(req, 0);
}

/* ---- session -------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (nf.noopen) {
		/* no OPEN carries an O_TRUNC: let the kernel send SETATTR */
		conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
		/* .ops: the kernel checks the attributes before every read */
		if (!(conn->capable & FUSE_CAP_AUTO_INVAL_DATA))
			fprintf(stderr, "nullfs: no auto_inval_data: .ops "
				"may read stale with noopen\n");
		conn->want |= conn->capable & FUSE_CAP_AUTO_INVAL_DATA;
	} else if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) {
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	}
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* every write must reach the daemon, as in t4dxfs */
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
	.symlink = op_symlink,
	.readlink = op_readlink,
	.rename = op_rename,
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
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
};

static int build_tree(void)
{
	root_node.st_ino = 1;
	root_node.mode = S_IFDIR | 0755;
	root_node.uid = getuid();
	root_node.gid = getgid();
	pthread_mutex_init(&root_node.mu, NULL);
	clock_gettime(CLOCK_REALTIME, &root_node.mtime);
	root_node.ctime = root_node.mtime;
	root_node.name = "";

	ops_node = root_node;
	pthread_mutex_init(&ops_node.mu, NULL);
	ops_node.st_ino = 2;
	ops_node.mode = S_IFREG | 0444;
	ops_node.name = OPS_NAME;
	ops_node.name_len = strlen(OPS_NAME);

	items_node = node_new("items", S_IFDIR | 0755, NULL);
	if (!items_node || name_insert(&root_node, items_node) ||
	    name_insert(&root_node, &ops_node))
		return ENOMEM;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nullfs [-f] [-o opt[,opt...]] MOUNTPOINT\n"
		"  a no-I/O in-memory FUSE file system (benchmark ceiling)\n"
		"  options: nocache, cache_readdir, xattr, timeout=SECS,\n"
		"           noopen, noflush, and any libfuse mount option\n");
}

enum { KEY_FOREGROUND, KEY_HELP };

#define NF_OPT(t, field, value) { t, offsetof(struct nf_state, field), value }

/* Our options; fuse_opt_parse keeps the others for libfuse. */
static const struct fuse_opt nf_opts[] = {
	NF_OPT("nocache", nocache, 1),
	NF_OPT("cache_readdir", cache_readdir, 1),
	NF_OPT("xattr", xattr, 1),
	NF_OPT("noopen", noopen, 1),
	NF_OPT("noflush", noflush, 1),
	NF_OPT("timeout=%lf", timeout, 0),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_END
};

/* What nf_opts does not take: the mountpoint, -f, -h, mount options
 * for libfuse (kept: 1), anything else (an error: -1). */
static int nf_arg(void *data, const char *arg, int key,
		  struct fuse_args *outargs)
{
	struct nf_state *a = data;
	switch (key) {
	case KEY_FOREGROUND:
		a->foreground = true;
		return 0;
	case KEY_HELP:
		a->help = true;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (a->mnt)
			return -1;
		a->mnt = arg;
		return 0;
	case FUSE_OPT_KEY_OPT:
		return arg[0] == '-' ? -1 : 1;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	int rc = 1;

	if (fuse_opt_parse(&args, &nf, nf_opts, nf_arg) || nf.timeout < 0 ||
	    (!nf.mnt && !nf.help)) {
		usage(stderr);
		fuse_opt_free_args(&args);
		return 2;
	}
	if (nf.help) {
		usage(stdout);
		fuse_opt_free_args(&args);
		return 0;
	}
	const char *mnt = nf.mnt;
	bool foreground = nf.foreground;
	if (build_tree()) {
		fprintf(stderr, "nullfs: out of memory\n");
		return 1;
	}

	if (fuse_opt_insert_arg(&args, 1, "-o") ||
	    fuse_opt_insert_arg(&args, 2, "fsname=nullfs,subtype=nullfs,"
				"default_permissions")) {
		fprintf(stderr, "nullfs: out of memory\n");
		fuse_opt_free_args(&args);
		return 1;
	}
	nf.se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	fuse_opt_free_args(&args);
	if (!nf.se) {
		fprintf(stderr, "nullfs: bad mount options\n");
		return 1;
	}
	if (fuse_set_signal_handlers(nf.se))
		goto out_destroy;
	if (fuse_session_mount(nf.se, mnt)) {
		fprintf(stderr, "nullfs: cannot mount at %s\n", mnt);
		goto out_signals;
	}
	/* returns in the parent once the mount is ready */
	if (fuse_daemonize(foreground))
		goto out_unmount;

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(lc, 64);
	fuse_loop_cfg_set_idle_threads(lc, 16);
	rc = fuse_session_loop_mt(nf.se, lc);
	fuse_loop_cfg_destroy(lc);
	/* a positive value is the signal that ended the loop */
	rc = rc < 0 ? 1 : 0;
out_unmount:
	fuse_session_unmount(nf.se);
out_signals:
	fuse_remove_signal_handlers(nf.se);
out_destroy:
	fuse_session_destroy(nf.se);
	return rc;
}
