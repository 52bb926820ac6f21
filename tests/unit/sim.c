/*
 * sim.c - deterministic simulation of the engine against a model.
 *
 * usage: test_sim [SEEDS [FIRST]]     (default: T4DX_SIM_SEEDS or 100, 1)
 *        test_sim -s SEED -v          one seed, telling each step
 *
 * A seed drives everything.  Each seed runs a few epochs; an epoch is a
 * child process that opens the store in a fresh tmpfs directory, runs a
 * random plan of puts, updates, renames, deletes, mkdirs, rmdirs,
 * flushes, nrems and prunes through the public API, and ends with a clean
 * close, a failed call, or a crash at a chosen I/O call.  Every I/O call
 * of the engine goes through the disk model below, which can fail one
 * call (EIO, ENOSPC, a short write) and which, at the crash, cuts the
 * power: file data not covered by a later fsync/fdatasync of its file,
 * and directory operations (creates, renames, unlinks) not covered by an
 * fsync of their directory, are each kept or dropped at random, in any
 * combination, and the directory is rewritten as the disk would hold it.
 * Between epochs the parent may also damage a segment file.
 *
 * The model is the tree of items each acknowledged call implies.  After
 * each epoch the parent opens the store and compares the whole tree with
 * the model states the epoch went through: it must equal one of them,
 * no older than what was durable (every acknowledged call with policy
 * reject; with policy queue, every call up to the last one acknowledged
 * with nothing unpersisted, or all of them after a clean close), no newer
 * than the last call started.  Seeds alternate the two fallback
 * policies.  A failure prints the seed; `test_sim -s SEED -v` replays it
 * exactly (the engine runs its I/O on the calling thread: the health
 * thread never ticks and the memtable never fills by itself here).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"
#include "io.h"
#include "t4dx.h"

static bool verbose;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* ---- randomness: splitmix64, one stream per purpose -------------------- */

struct rng { uint64_t s; };

static uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned rn(struct rng *r, unsigned n)
{
	return (unsigned)(rnd(r) % n);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (!p)
		abort();
	return p;
}

/* ---- the disk model (in the epoch's child) ------------------------------ */

struct wop {                    /* a change of a file's bytes */
	bool trunc;
	off_t off;              /* write offset, or the new length */
	size_t len;
	unsigned char *data;
	bool durable;           /* an fsync of the file came after it */
};

struct inode {
	ino_t ino;
	unsigned char *base;    /* the bytes before the epoch's first change */
	size_t blen;
	struct wop *ops;
	size_t nops;
};

enum dop_kind { D_CREATE, D_UNLINK, D_RENAME };
struct dop {                    /* a change of a directory */
	enum dop_kind kind;
	char dir[PATH_MAX], name[NAME_MAX + 1];
	char dir2[PATH_MAX], name2[NAME_MAX + 1];
	ino_t ino;
	bool durable;
};

struct dent {
	char dir[PATH_MAX], name[NAME_MAX + 1];
	ino_t ino;
};

struct fdinfo {
	int fd;
	ino_t ino;
	bool isdir;
	char path[PATH_MAX];
};

static struct disk {
	pthread_mutex_t mu;
	char root[PATH_MAX];
	struct inode *inodes;
	size_t ninodes;
	struct dop *dops;
	size_t ndops;
	struct dent *base;      /* every file at the epoch's start */
	size_t nbase;
	char (*dirs)[PATH_MAX];
	size_t ndirs;
	struct fdinfo *fds;
	size_t nfds;
	unsigned long calls, crash_at, fault_at;
	int fault_err;          /* errno of the fault; a pwrite is cut short */
	struct rng cut;         /* the power cut's choices */
} disk = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void split(const char *path, char *dir, char *name)
{
	const char *s = strrchr(path, '/');
	size_t n = (size_t)(s - path);
	memcpy(dir, path, n);
	dir[n] = 0;
	snprintf(name, NAME_MAX + 1, "%s", s + 1);
}

static void add_dir(const char *path)
{
	for (size_t i = 0; i < disk.ndirs; i++)
		if (!strcmp(disk.dirs[i], path))
			return;
	disk.dirs = xrealloc(disk.dirs, (disk.ndirs + 1) * sizeof(*disk.dirs));
	snprintf(disk.dirs[disk.ndirs++], PATH_MAX, "%s", path);
}

/* Every directory below root and every regular file in them. */
static void scan(const char *dir, struct dent **v, size_t *n, bool dirs)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	if (dirs)
		add_dir(dir);
	struct dirent *de;
	while ((de = readdir(d))) {
		char p[PATH_MAX];
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			scan(p, v, n, dirs);
		} else if (S_ISREG(st.st_mode)) {
			*v = xrealloc(*v, (*n + 1) * sizeof(**v));
			snprintf((*v)[*n].dir, PATH_MAX, "%s", dir);
			snprintf((*v)[*n].name, NAME_MAX + 1, "%s", de->d_name);
			(*v)[(*n)++].ino = st.st_ino;
		}
	}
	closedir(d);
}

static unsigned char *read_all(int fd, size_t *len)
{
	struct stat st;
	*len = 0;
	if (fstat(fd, &st))
		return NULL;
	unsigned char *b = xcalloc(1, (size_t)st.st_size + 1);
	ssize_t n = pread(fd, b, (size_t)st.st_size, 0);
	*len = n > 0 ? (size_t)n : 0;
	return b;
}

static struct inode *inode_of(ino_t ino)
{
	for (size_t i = 0; i < disk.ninodes; i++)
		if (disk.inodes[i].ino == ino)
			return &disk.inodes[i];
	return NULL;
}

/* Remember the bytes of the file open as fd (or at path) before its first
 * change in this epoch.  fresh: a file the epoch created (empty before). */
static struct inode *capture(ino_t ino, int fd, const char *path, bool fresh)
{
	struct inode *in = inode_of(ino);
	if (in)
		return in;
	disk.inodes = xrealloc(disk.inodes,
			       (disk.ninodes + 1) * sizeof(*disk.inodes));
	in = &disk.inodes[disk.ninodes++];
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	if (fresh)
		return in;
	int f = fd >= 0 ? fd : open(path, O_RDONLY | O_CLOEXEC);
	if (f >= 0) {
		in->base = read_all(f, &in->blen);
		if (fd < 0)
			close(f);
	}
	return in;
}

static void add_wop(struct inode *in, bool trunc, off_t off,
		    const void *data, size_t len)
{
	in->ops = xrealloc(in->ops, (in->nops + 1) * sizeof(*in->ops));
	struct wop *w = &in->ops[in->nops++];
	memset(w, 0, sizeof(*w));
	w->trunc = trunc;
	w->off = off;
	w->len = len;
	if (len) {
		w->data = xcalloc(1, len);
		memcpy(w->data, data, len);
	}
}

static struct dop *add_dop(enum dop_kind k, const char *path,
			   const char *path2, ino_t ino)
{
	disk.dops = xrealloc(disk.dops, (disk.ndops + 1) * sizeof(*disk.dops));
	struct dop *d = &disk.dops[disk.ndops++];
	memset(d, 0, sizeof(*d));
	d->kind = k;
	d->ino = ino;
	split(path, d->dir, d->name);
	if (path2)
		split(path2, d->dir2, d->name2);
	return d;
}

static struct fdinfo *fd_of(int fd)
{
	for (size_t i = 0; i < disk.nfds; i++)
		if (disk.fds[i].fd == fd)
			return &disk.fds[i];
	return NULL;
}

/* ---- the power cut ------------------------------------------------------ */

struct fstate {
	char dir[PATH_MAX], name[NAME_MAX + 1];
	ino_t ino;
	bool live;
};

static bool kept(bool durable)
{
	return durable || rn(&disk.cut, 2);
}

/* The bytes of ino after the cut: its bytes before the epoch, then each
 * change that is durable or, at random, made it to the disk anyway. */
static unsigned char *cut_bytes(ino_t ino, const struct dent *now,
				size_t nnow, size_t *len)
{
	struct inode *in = inode_of(ino);
	if (!in) {
		/* never changed in the epoch: as it is, under its name now */
		for (size_t i = 0; i < nnow; i++)
			if (now[i].ino == ino) {
				char p[PATH_MAX + NAME_MAX + 2];
				snprintf(p, sizeof(p), "%s/%s", now[i].dir,
					 now[i].name);
				int f = open(p, O_RDONLY | O_CLOEXEC);
				if (f < 0)
					break;
				unsigned char *b = read_all(f, len);
				close(f);
				return b;
			}
		*len = 0;
		return xcalloc(1, 1);
	}
	size_t n = in->blen;
	unsigned char *b = xcalloc(1, n + 1);
	if (n)
		memcpy(b, in->base, n);
	for (size_t i = 0; i < in->nops; i++) {
		struct wop *w = &in->ops[i];
		if (!kept(w->durable))
			continue;
		size_t end = w->trunc ? (size_t)w->off : (size_t)w->off + w->len;
		if (w->trunc || end > n) {
			b = xrealloc(b, end + 1);
			if (end > n)
				memset(b + n, 0, end - n);
			n = w->trunc ? end : (end > n ? end : n);
		}
		if (!w->trunc)
			memcpy(b + w->off, w->data, w->len);
	}
	*len = n;
	return b;
}

/* Cut the power now: rewrite every directory as the disk would hold it,
 * and end the process (status 42).  disk.mu held. */
static void power_cut(void)
{
	size_t nf = disk.nbase;
	struct fstate *f = xcalloc(disk.nbase + disk.ndops + 1, sizeof(*f));
	for (size_t i = 0; i < nf; i++) {
		snprintf(f[i].dir, PATH_MAX, "%s", disk.base[i].dir);
		snprintf(f[i].name, NAME_MAX + 1, "%s", disk.base[i].name);
		f[i].ino = disk.base[i].ino;
		f[i].live = true;
	}
	for (size_t k = 0; k < disk.ndops; k++) {
		struct dop *d = &disk.dops[k];
		if (!kept(d->durable))
			continue;
		struct fstate *at = NULL;
		for (size_t i = 0; i < nf; i++)
			if (f[i].live && !strcmp(f[i].dir, d->dir) &&
			    !strcmp(f[i].name, d->name))
				at = &f[i];
		if (d->kind == D_CREATE) {
			if (!at)
				at = &f[nf++];
			snprintf(at->dir, PATH_MAX, "%s", d->dir);
			snprintf(at->name, NAME_MAX + 1, "%s", d->name);
			at->ino = d->ino;
			at->live = true;
		} else if (at) {
			at->live = false;
			if (d->kind == D_RENAME) {
				ino_t ino = at->ino;
				for (size_t i = 0; i < nf; i++)
					if (f[i].live &&
					    !strcmp(f[i].dir, d->dir2) &&
					    !strcmp(f[i].name, d->name2))
						f[i].live = false;
				struct fstate *to = &f[nf++];
				snprintf(to->dir, PATH_MAX, "%s", d->dir2);
				snprintf(to->name, NAME_MAX + 1, "%s", d->name2);
				to->ino = ino;
				to->live = true;
			}
		}
	}
	/* the bytes first, while the files are still where they are */
	struct dent *now = NULL;
	size_t nnow = 0;
	scan(disk.root, &now, &nnow, false);
	unsigned char **bytes = xcalloc(nf, sizeof(*bytes));
	size_t *lens = xcalloc(nf, sizeof(*lens));
	for (size_t i = 0; i < nf; i++)
		if (f[i].live)
			bytes[i] = cut_bytes(f[i].ino, now, nnow, &lens[i]);
	for (size_t i = 0; i < nnow; i++) {
		char p[PATH_MAX + NAME_MAX + 2];
		snprintf(p, sizeof(p), "%s/%s", now[i].dir, now[i].name);
		unlink(p);
	}
	for (size_t i = 0; i < nf; i++) {
		if (!f[i].live)
			continue;
		char p[PATH_MAX + NAME_MAX + 2];
		snprintf(p, sizeof(p), "%s/%s", f[i].dir, f[i].name);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || (lens[i] && write(fd, bytes[i], lens[i]) !=
					     (ssize_t)lens[i]))
			_exit(3);
		close(fd);
		say("    cut: %s/%s %zu bytes\n", f[i].dir + strlen(disk.root),
		    f[i].name, lens[i]);
	}
	_exit(42);
}

/* Count a call; cut the power at the chosen one; fail the chosen one.
 * Returns the errno to fail with, or 0.  disk.mu held. */
static int tick(void)
{
	disk.calls++;
	if (disk.calls == disk.crash_at)
		power_cut();
	if (disk.calls == disk.fault_at) {
		say("    fault: call %lu fails with %s\n", disk.calls,
		    strerror(disk.fault_err));
		return disk.fault_err;
	}
	return 0;
}

static int d_open(const char *path, int flags, mode_t mode)
{
	pthread_mutex_lock(&disk.mu);
	int fd = -1, err = tick();
	struct stat st;
	bool existed = stat(path, &st) == 0;
	if (err) {
		errno = err;
		goto out;
	}
	if (existed && (flags & O_TRUNC) && S_ISREG(st.st_mode) && st.st_size)
		capture(st.st_ino, -1, path, false);
	fd = open(path, flags | O_CLOEXEC, mode);
	if (fd < 0 || fstat(fd, &st))
		goto out;
	disk.fds = xrealloc(disk.fds, (disk.nfds + 1) * sizeof(*disk.fds));
	struct fdinfo *fi = &disk.fds[disk.nfds++];
	fi->fd = fd;
	fi->ino = st.st_ino;
	fi->isdir = S_ISDIR(st.st_mode);
	snprintf(fi->path, PATH_MAX, "%s", path);
	if (!existed && (flags & O_CREAT)) {
		capture(st.st_ino, fd, path, true);
		add_dop(D_CREATE, path, NULL, st.st_ino);
	} else if (existed && (flags & O_TRUNC) && S_ISREG(st.st_mode)) {
		add_wop(capture(st.st_ino, fd, path, false), true, 0, NULL, 0);
	}
out:
	pthread_mutex_unlock(&disk.mu);
	return fd;
}

static int d_close(int fd)
{
	pthread_mutex_lock(&disk.mu);
	struct fdinfo *fi = fd_of(fd);
	if (fi)
		*fi = disk.fds[--disk.nfds];
	pthread_mutex_unlock(&disk.mu);
	return close(fd);
}

static ssize_t d_pread(int fd, void *buf, size_t len, off_t off)
{
	pthread_mutex_lock(&disk.mu);
	int err = tick();
	pthread_mutex_unlock(&disk.mu);
	if (err) {
		errno = err;
		return -1;
	}
	return pread(fd, buf, len, off);
}

static ssize_t write_common(int fd, const void *buf, size_t len, off_t off)
{
	pthread_mutex_lock(&disk.mu);
	int err = tick();
	struct fdinfo *fi = fd_of(fd);
	if (err && (err != ENOSPC || len < 2)) {
		pthread_mutex_unlock(&disk.mu);
		errno = err;
		return -1;
	}
	if (err)
		len /= 2;       /* a short write, as a disk that fills up */
	struct inode *in = fi ? capture(fi->ino, fd, NULL, false) : NULL;
	ssize_t n = pwrite(fd, buf, len, off);
	if (n > 0 && in)
		add_wop(in, false, off, buf, (size_t)n);
	pthread_mutex_unlock(&disk.mu);
	return n;
}

static int d_sync(int fd, int (*fn)(int))
{
	pthread_mutex_lock(&disk.mu);
	int err = tick();
	if (err) {
		pthread_mutex_unlock(&disk.mu);
		errno = err;
		return -1;
	}
	int rc = fn(fd);
	struct fdinfo *fi = fd_of(fd);
	if (!rc && fi && fi->isdir) {
		for (size_t i = 0; i < disk.ndops; i++)
			if (!strcmp(disk.dops[i].dir, fi->path) ||
			    (disk.dops[i].kind == D_RENAME &&
			     !strcmp(disk.dops[i].dir2, fi->path)))
				disk.dops[i].durable = true;
	} else if (!rc && fi) {
		struct inode *in = inode_of(fi->ino);
		for (size_t i = 0; in && i < in->nops; i++)
			in->ops[i].durable = true;
	}
	pthread_mutex_unlock(&disk.mu);
	return rc;
}

static int d_fsync(int fd)
{
	return d_sync(fd, fsync);
}

static int d_fdatasync(int fd)
{
	return d_sync(fd, fdatasync);
}

static int d_ftruncate(int fd, off_t len)
{
	pthread_mutex_lock(&disk.mu);
	int err = tick(), rc = -1;
	struct fdinfo *fi = fd_of(fd);
	if (err) {
		errno = err;
	} else {
		struct inode *in = fi ? capture(fi->ino, fd, NULL, false)
				      : NULL;
		if ((rc = ftruncate(fd, len)) == 0 && in)
			add_wop(in, true, len, NULL, 0);
	}
	pthread_mutex_unlock(&disk.mu);
	return rc;
}

static int d_rename(const char *from, const char *to)
{
	pthread_mutex_lock(&disk.mu);
	int err = tick(), rc = -1;
	struct stat st, st2;
	if (err) {
		errno = err;
	} else if (stat(from, &st) == 0) {
		if (stat(to, &st2) == 0 && S_ISREG(st2.st_mode))
			capture(st2.st_ino, -1, to, false);
		if ((rc = rename(from, to)) == 0 && S_ISREG(st.st_mode))
			add_dop(D_RENAME, from, to, st.st_ino);
	} else {
		rc = rename(from, to);
	}
	pthread_mutex_unlock(&disk.mu);
	return rc;
}

static int d_unlink(const char *path)
{
	pthread_mutex_lock(&disk.mu);
	int err = tick(), rc = -1;
	struct stat st;
	if (err) {
		errno = err;
	} else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		capture(st.st_ino, -1, path, false);
		if ((rc = unlink(path)) == 0)
			add_dop(D_UNLINK, path, NULL, st.st_ino);
	} else {
		rc = unlink(path);
	}
	pthread_mutex_unlock(&disk.mu);
	return rc;
}

static int d_mkdir(const char *path, mode_t mode)
{
	pthread_mutex_lock(&disk.mu);
	int err = tick(), rc = -1;
	if (err)
		errno = err;
	else if ((rc = mkdir(path, mode)) == 0)
		add_dir(path);          /* directories count as durable */
	pthread_mutex_unlock(&disk.mu);
	return rc;
}

static void disk_install(const char *root, uint64_t seed,
			 unsigned long crash_at, unsigned long fault_at,
			 int fault_err)
{
	snprintf(disk.root, sizeof(disk.root), "%s", root);
	disk.cut.s = seed ^ 0x5eedcafeULL;
	disk.crash_at = crash_at;
	disk.fault_at = fault_at;
	disk.fault_err = fault_err;
	scan(root, &disk.base, &disk.nbase, true);
	t4dx_io.open = d_open;
	t4dx_io.close = d_close;
	t4dx_io.pread = d_pread;
	t4dx_io.pwrite = write_common;
	t4dx_io.pad = write_common;
	t4dx_io.fsync = d_fsync;
	t4dx_io.fdatasync = d_fdatasync;
	t4dx_io.ftruncate = d_ftruncate;
	t4dx_io.rename = d_rename;
	t4dx_io.unlink = d_unlink;
	t4dx_io.mkdir = d_mkdir;
	/* linked: the real one (the model's files are real files) */
}

/* ---- the model ---------------------------------------------------------- */

#define MAXN 48
struct item {
	char path[64];          /* "a/b": names are one letter */
	bool dir;
	char content[40];
	double kappa, importance;
};
struct state {
	struct item v[MAXN];
	int n;
};

static struct item *find(struct state *s, const char *path)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].path, path))
			return &s->v[i];
	return NULL;
}

static void drop(struct state *s, struct item *it)
{
	*it = s->v[--s->n];
}

static bool has_children(struct state *s, const char *dir)
{
	size_t n = strlen(dir);
	for (int i = 0; i < s->n; i++)
		if (!strncmp(s->v[i].path, dir, n) && s->v[i].path[n] == '/')
			return true;
	return false;
}

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->path,
		      ((const struct item *)b)->path);
}

/* A state as text, sorted, to compare and to show. */
static void render(struct state *s, char *out, size_t len)
{
	struct state c = *s;
	qsort(c.v, (size_t)c.n, sizeof(c.v[0]), cmp_item);
	size_t used = 0;
	out[0] = 0;
	for (int i = 0; i < c.n && used < len; i++) {
		struct item *it = &c.v[i];
		int k = it->dir ? snprintf(out + used, len - used, "d %s\n",
					   it->path)
				: snprintf(out + used, len - used,
					   "f %s [%s] k=%.3f i=%.3f\n",
					   it->path, it->content, it->kappa,
					   it->importance);
		used += k > 0 ? (size_t)k : 0;
	}
}

enum op_kind { O_PUT, O_UPDATE, O_RENAME, O_DELETE, O_MKDIR, O_RMDIR,
	       O_FLUSH, O_NREM, O_PRUNE, O_KINDS };
static const char *const op_names[] = { "put", "update", "rename", "delete",
	"mkdir", "rmdir", "flush", "nrem", "prune" };

struct op {
	enum op_kind kind;
	char path[64], path2[64];
	char content[40];
	double kappa, importance;
};

static const double units[] = { 0, 0.05, 0.5, 0.75, 1 };

/* A random name under an existing directory (or the root). */
static void random_path(struct rng *r, struct state *s, char *out)
{
	char dirs[MAXN][64];
	int nd = 0;
	dirs[nd++][0] = 0;
	for (int i = 0; i < s->n; i++)
		if (s->v[i].dir && strlen(s->v[i].path) < 8)
			snprintf(dirs[nd++], 64, "%s", s->v[i].path);
	const char *d = dirs[rn(r, (unsigned)nd)];
	char leaf = (char)('a' + rn(r, 5));
	if (*d)
		snprintf(out, 64, "%s/%c", d, leaf);
	else
		snprintf(out, 64, "%c", leaf);
}

/* Apply op to s, as the store must.  false if op is not valid in s. */
static bool model_apply(struct state *s, const struct op *o, double min_k,
			double max_i)
{
	struct item *it = find(s, o->path);
	char parent[64];
	snprintf(parent, sizeof(parent), "%s", o->path);
	char *slash = strrchr(parent, '/');
	bool parent_ok = !slash || (*slash = 0, find(s, parent) &&
					     find(s, parent)->dir);
	switch (o->kind) {
	case O_PUT:
		if (!parent_ok || (it && it->dir) || (!it && s->n >= MAXN))
			return false;
		if (!it) {
			it = &s->v[s->n++];
			memset(it, 0, sizeof(*it));
			snprintf(it->path, sizeof(it->path), "%s", o->path);
			it->importance = 0.5;
		}
		snprintf(it->content, sizeof(it->content), "%s", o->content);
		return true;
	case O_UPDATE:
		if (!it || it->dir)
			return false;
		it->kappa = o->kappa;
		it->importance = o->importance;
		return true;
	case O_DELETE:
		if (!it || it->dir)
			return false;
		drop(s, it);
		return true;
	case O_MKDIR:
		if (!parent_ok || it || s->n >= MAXN)
			return false;
		it = &s->v[s->n++];
		memset(it, 0, sizeof(*it));
		snprintf(it->path, sizeof(it->path), "%s", o->path);
		it->dir = true;
		return true;
	case O_RMDIR:
		if (!it || !it->dir || has_children(s, o->path))
			return false;
		drop(s, it);
		return true;
	case O_RENAME: {
		struct op to = *o;
		snprintf(to.path, sizeof(to.path), "%s", o->path2);
		struct item *dst = find(s, o->path2);
		char p2[64];
		snprintf(p2, sizeof(p2), "%s", o->path2);
		char *sl = strrchr(p2, '/');
		bool ok2 = !sl || (*sl = 0, find(s, p2) && find(s, p2)->dir);
		if (!it || !ok2 || !strcmp(o->path, o->path2))
			return false;
		size_t n = strlen(o->path);
		if (!strncmp(o->path2, o->path, n) && o->path2[n] == '/')
			return false;   /* into itself */
		if (dst && (dst->dir != it->dir ||
			    (dst->dir && has_children(s, o->path2))))
			return false;
		if (dst)
			drop(s, dst);
		it = find(s, o->path);
		/* the item and, for a directory, everything below it */
		for (int i = 0; i < s->n; i++) {
			char *p = s->v[i].path;
			if (!strcmp(p, o->path) ||
			    (!strncmp(p, o->path, n) && p[n] == '/')) {
				char rest[64];
				snprintf(rest, sizeof(rest), "%s", p + n);
				snprintf(p, 64, "%s%s", o->path2, rest);
			}
		}
		return true;
	}
	case O_PRUNE:
		for (int i = 0; i < s->n;) {
			if (!s->v[i].dir && s->v[i].kappa <= min_k &&
			    s->v[i].importance < max_i)
				drop(s, &s->v[i]);
			else
				i++;
		}
		return true;
	case O_FLUSH:
	case O_NREM:
		return true;
	case O_KINDS:
		break;
	}
	return false;
}

static void random_op(struct rng *r, struct state *s, struct op *o)
{
	memset(o, 0, sizeof(*o));
	unsigned w = rn(r, 100);
	o->kind = w < 35 ? O_PUT : w < 50 ? O_UPDATE : w < 62 ? O_RENAME :
		  w < 72 ? O_DELETE : w < 80 ? O_MKDIR : w < 85 ? O_RMDIR :
		  w < 93 ? O_FLUSH : w < 97 ? O_NREM : O_PRUNE;
	if (s->n && rn(r, 3) && o->kind != O_PUT && o->kind != O_MKDIR)
		snprintf(o->path, sizeof(o->path), "%s",
			 s->v[rn(r, (unsigned)s->n)].path);
	else
		random_path(r, s, o->path);
	random_path(r, s, o->path2);
	snprintf(o->content, sizeof(o->content), "v%u-%0*u",
		 (unsigned)rn(r, 1000), (int)rn(r, 30), 7u);
	o->kappa = units[rn(r, 5)];
	o->importance = units[rn(r, 5)];
}

/* ---- running ops through the engine ------------------------------------- */

static const uint64_t R = T4DX_ROOT_INO;

/* The (parent inode, name) of path; ENOENT if a directory is missing. */
static int resolve(struct t4dx *db, const char *path, uint64_t *parent,
		   char *name)
{
	uint64_t p = R;
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", path);
	char *save = NULL, *c = strtok_r(buf, "/", &save), *next;
	while ((next = strtok_r(NULL, "/", &save))) {
		struct t4dx_entry e;
		int rc = t4dx_get(db, p, c, strlen(c), 0, &e);
		if (rc)
			return rc == T4DX_ENOTFOUND ? ENOENT : rc;
		p = e.ino;
		c = next;
	}
	*parent = p;
	snprintf(name, T4DX_NAME_MAX + 1, "%s", c);
	return 0;
}

static int run_op(struct t4dx *db, const struct op *o)
{
	uint64_t p, p2;
	char n[T4DX_NAME_MAX + 1], n2[T4DX_NAME_MAX + 1];
	struct t4dx_entry e, f;
	int rc = 0;
	if (o->kind <= O_RMDIR && (rc = resolve(db, o->path, &p, n)))
		return rc;
	switch (o->kind) {
	case O_PUT:
		rc = t4dx_get(db, p, n, strlen(n), 0, &e);
		if (rc == T4DX_ENOTFOUND) {
			memset(&e, 0, sizeof(e));
			e.mode = S_IFREG | 0644;
			e.importance = 0.5;
			rc = 0;
		}
		if (rc)
			return rc;
		t4dx_entry_set_key(&e, p, n, strlen(n));
		e.content = t4dx_blob_from(o->content, strlen(o->content));
		e.size = strlen(o->content);
		rc = t4dx_put(db, &e, 0, NULL);
		t4dx_entry_clear(&e);
		return rc;
	case O_UPDATE:
		memset(&f, 0, sizeof(f));
		f.kappa = o->kappa;
		f.importance = o->importance;
		return t4dx_update(db, p, n, strlen(n), &f,
				   T4DX_F_KAPPA | T4DX_F_IMPORTANCE, 0, NULL);
	case O_RENAME:
		if ((rc = resolve(db, o->path2, &p2, n2)))
			return rc;
		return t4dx_rename(db, p, n, strlen(n), p2, n2, strlen(n2), 0,
				   NULL);
	case O_DELETE:
	case O_RMDIR:
		return t4dx_delete(db, p, n, strlen(n), o->kind == O_RMDIR, 0,
				   NULL);
	case O_MKDIR:
		memset(&e, 0, sizeof(e));
		t4dx_entry_set_key(&e, p, n, strlen(n));
		e.mode = S_IFDIR | 0755;
		return t4dx_put(db, &e, T4DX_EXCL, NULL);
	case O_FLUSH:
		return t4dx_flush(db);
	case O_NREM:
		return t4dx_compact(db, T4DX_COMPACT_NREM, NULL, NULL);
	case O_PRUNE:
		return t4dx_compact(db, T4DX_COMPACT_PRUNE, NULL, NULL);
	case O_KINDS:
		break;
	}
	return EINVAL;
}

/* The whole tree of the store, as a state. */
struct dump { struct t4dx *db; struct state *s; char prefix[64]; int rc; };

static int dump_one(void *arg, const struct t4dx_entry *e)
{
	struct dump *d = arg;
	if (d->s->n >= MAXN) {
		d->rc = EOVERFLOW;
		return 1;
	}
	struct item *it = &d->s->v[d->s->n++];
	memset(it, 0, sizeof(*it));
	snprintf(it->path, sizeof(it->path), "%.50s%s%.8s", d->prefix,
		 *d->prefix ? "/" : "", e->name);
	it->dir = S_ISDIR(e->mode);
	if (it->dir) {
		struct dump sub = { d->db, d->s, "", 0 };
		snprintf(sub.prefix, sizeof(sub.prefix), "%s", it->path);
		int rc = t4dx_scan(d->db, e->ino, dump_one, &sub);
		if (rc || sub.rc) {
			d->rc = rc ? rc : sub.rc;
			return 1;
		}
		return 0;
	}
	struct t4dx_entry c;
	int rc = t4dx_get(d->db, e->parent, e->name, e->name_len,
			  T4DX_GET_CONTENT, &c);
	if (rc) {
		d->rc = rc;
		return 1;
	}
	size_t n = c.size < sizeof(it->content) - 1 ? c.size
						    : sizeof(it->content) - 1;
	memcpy(it->content, c.content ? (const char *)c.content->data : "", n);
	it->kappa = c.kappa;
	it->importance = c.importance;
	t4dx_entry_clear(&c);
	return 0;
}

static int dump(struct t4dx *db, struct state *s)
{
	s->n = 0;
	struct dump d = { db, s, "", 0 };
	int rc = t4dx_scan(db, R, dump_one, &d);
	return rc ? rc : d.rc;
}

/* ---- one seed ------------------------------------------------------------ */

#define MAXOPS 24

struct shared {                 /* written by the epoch's child */
	int started;            /* ops started */
	int done;               /* ops finished */
	int rc[MAXOPS];
	bool unpersisted[MAXOPS];
	int close_rc;
	bool closed;
};

static void config(struct t4dx_config *c, bool queue)
{
	t4dx_config_defaults(c);
	snprintf(c->fallback.policy, sizeof(c->fallback.policy), "%s",
		 queue ? "queue" : "reject");
	c->health.interval_s = 86400;   /* no tick: one thread does I/O */
	c->memtable.max_items = 100000;
	c->wal.max_file_bytes = 4096;   /* many files, many archive moves */
	c->compaction.nrem_kappa_boost = 0;     /* not logged: see README */
	c->breaker.failure_threshold = 1000000;
	/* the model knows no background vector updates */
	strcpy(c->vector.embedder, "off");
	/* the damage the parent makes between epochs is found by the open
	 * that follows (no health tick runs here to find it later) */
	c->health.verify_at_start = true;
}

static int open_quiet(const char *dir, struct t4dx_config *c,
		      struct t4dx **db, char *msg, size_t len)
{
	return t4dx_open(dir, c, db, msg, len);
}

/* Flip bytes inside a random segment file of dir, as a disk that rots:
 * the next open must quarantine it and rebuild it from the WAL (the
 * archive included), whatever the crash before left unflushed. */
static void damage_segment(struct rng *r, const char *dir)
{
	char sd[PATH_MAX + 8];
	snprintf(sd, sizeof(sd), "%s/seg", dir);
	struct dent *v = NULL;
	size_t n = 0;
	scan(sd, &v, &n, false);
	if (n) {
		size_t k = rn(r, (unsigned)n);
		char p[2 * PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", v[k].dir, v[k].name);
		FILE *fp = fopen(p, "r+");
		if (fp) {
			fseek(fp, 0, SEEK_END);
			long sz = ftell(fp);
			fseek(fp, sz / 3, SEEK_SET);
			fputs("\xde\xad\xbe\xef", fp);
			fclose(fp);
			say(" damaged %s\n", v[k].name);
		}
	}
	free(v);
}

/* Run one seed; 0 if the store always matched the model. */
static int run_seed(uint64_t seed, const char *tmp)
{
	struct rng r = { seed };
	char dir[PATH_MAX], msg[256], want[8192], got[8192];
	bool queue = seed & 1;
	struct t4dx_config cfg;
	config(&cfg, queue);
	snprintf(dir, sizeof(dir), "%s/sim-%llu", tmp, (unsigned long long)seed);
	unit_rm_rf(dir);
	if (mkdir(dir, 0700)) {
		fprintf(stderr, "sim: mkdir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	static struct state model, states[MAXOPS + 1], seen;
	memset(&model, 0, sizeof(model));
	int bad = 0, epochs = 3 + (int)rn(&r, 4);
	uint64_t segs = 0;      /* live segments at the last check */
	say("seed %llu: policy %s, %d epochs\n", (unsigned long long)seed,
	    cfg.fallback.policy, epochs);
	for (int ep = 0; ep < epochs && !bad; ep++) {
		/* the plan, and the model state after each op */
		struct op ops[MAXOPS];
		int nops = 0, flushes = 0;
		states[0] = model;
		int want_ops = 4 + (int)rn(&r, MAXOPS - 4);
		/* more than 8 segments (of a size) make the engine start a
		 * merge on its own thread, whose I/O would make the seed's calls differ
		 * from run to run: merge them here first, and flush at most
		 * three times an epoch */
		if (segs >= 4) {
			memset(&ops[0], 0, sizeof(ops[0]));
			ops[0].kind = O_NREM;
			states[++nops] = model;
		}
		for (int tries = 0; nops < want_ops && tries < 200; tries++) {
			struct state next = states[nops];
			random_op(&r, &next, &ops[nops]);
			if (ops[nops].kind == O_FLUSH && ++flushes > 3)
				continue;
			if (!model_apply(&next, &ops[nops],
					 cfg.compaction.prune_min_kappa,
					 cfg.compaction.prune_max_importance))
				continue;
			states[++nops] = next;
		}
		/* how it ends: 0 clean, 1 a crash, 2 a fault (then a clean
		 * close, or a crash later) */
		unsigned end = rn(&r, 3);
		unsigned long crash_at = 0, fault_at = 0;
		int fault_err = rn(&r, 2) ? EIO : ENOSPC;
		if (end == 1 || (end == 2 && rn(&r, 2)))
			crash_at = 1 + rn(&r, 40 + 12 * (unsigned)nops);
		if (end == 2)
			fault_at = 1 + rn(&r, 40 + 12 * (unsigned)nops);
		say(" epoch %d: %d ops, crash at call %lu, fault at %lu (%s)\n",
		    ep, nops, crash_at, fault_at, strerror(fault_err));
		memset(sh, 0, sizeof(*sh));
		fflush(stderr);
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			disk_install(dir, seed * 1000 + (uint64_t)ep, crash_at,
				     fault_at, fault_err);
			struct t4dx *db = NULL;
			if (open_quiet(dir, &cfg, &db, msg, sizeof(msg))) {
				say("    open failed: %s\n", msg);
				_exit(0);       /* counts as a crash at open */
			}
			for (int i = 0; i < nops; i++) {
				sh->started = i + 1;
				int rc = run_op(db, &ops[i]);
				struct t4dx_health h;
				t4dx_get_health(db, &h);
				sh->rc[i] = rc;
				sh->unpersisted[i] = h.unpersisted > 0;
				sh->done = i + 1;
				say("  %2d %-6s %-8s %-8s -> %d%s\n", i,
				    op_names[ops[i].kind], ops[i].path,
				    ops[i].kind == O_RENAME ? ops[i].path2 : "",
				    rc, h.unpersisted ? " (unpersisted)" : "");
				if (rc)
					break;
			}
			sh->close_rc = t4dx_close(db);
			sh->closed = true;
			_exit(0);
		}
		int ws;
		waitpid(pid, &ws, 0);
		if (!WIFEXITED(ws) || (WEXITSTATUS(ws) && WEXITSTATUS(ws) != 42)) {
			fprintf(stderr, "sim: seed %llu epoch %d: the child "
				"died (status %d)\n", (unsigned long long)seed,
				ep, ws);
			bad = 1;
			break;
		}
		/* what the store may hold now: states[lo..hi] */
		int done = sh->done, failed = done && sh->rc[done - 1];
		int acked = failed ? done - 1 : done;
		int hi = sh->started;
		int lo = 0;
		if (!queue) {
			lo = acked;
		} else {
			for (int i = 0; i < acked; i++)
				if (!sh->unpersisted[i])
					lo = i + 1;
			if (sh->closed && sh->close_rc == 0)
				lo = acked;
		}
		if (failed && ops[done - 1].kind >= O_FLUSH && !queue)
			lo = acked;     /* compaction: either way */
		if (rn(&r, 3) == 0)
			damage_segment(&r, dir);
		struct t4dx *db = NULL;
		if (open_quiet(dir, &cfg, &db, msg, sizeof(msg))) {
			fprintf(stderr, "sim: seed %llu epoch %d: the store "
				"does not open: %s\n",
				(unsigned long long)seed, ep, msg);
			bad = 1;
			break;
		}
		int rc = dump(db, &seen);
		int match = -1;
		render(&seen, got, sizeof(got));
		for (int j = hi; !rc && j >= lo && match < 0; j--) {
			render(&states[j], want, sizeof(want));
			if (!strcmp(want, got))
				match = j;
		}
		say(" epoch %d: %s; the store holds state %d of %d..%d\n", ep,
		    WEXITSTATUS(ws) == 42 ? "power cut" :
		    failed ? "failed call" : "closed", match, lo, hi);
		if (match < 0) {
			render(&states[lo], want, sizeof(want));
			fprintf(stderr, "sim: seed %llu epoch %d: the store "
				"matches none of the model states %d..%d "
				"(dump rc %d)\n--- model state %d:\n%s--- "
				"store:\n%s", (unsigned long long)seed, ep, lo,
				hi, rc, lo, want, got);
			bad = 1;
		} else {
			model = states[match];
		}
		struct t4dx_stats st;
		t4dx_get_stats(db, &st);
		segs = st.segments;
		if (t4dx_close(db)) {
			fprintf(stderr, "sim: seed %llu epoch %d: close "
				"failed\n", (unsigned long long)seed, ep);
			bad = 1;
		}
	}
	munmap(sh, sizeof(*sh));
	if (!bad)
		unit_rm_rf(dir);
	else
		fprintf(stderr, "sim: replay with: tests/unit/test_sim -s %llu "
			"-v (the store is kept in %s)\n",
			(unsigned long long)seed, dir);
	return bad;
}

int main(int argc, char **argv)
{
	unsigned long seeds = 100, first = 1;
	const char *env = getenv("T4DX_SIM_SEEDS");
	if (env)
		seeds = strtoul(env, NULL, 10);
	int opt;
	while ((opt = getopt(argc, argv, "s:v")) != -1) {
		if (opt == 's') {
			first = strtoul(optarg, NULL, 10);
			seeds = 1;
		} else if (opt == 'v') {
			verbose = true;
		} else {
			fprintf(stderr, "usage: %s [-s SEED] [-v] [SEEDS "
				"[FIRST]]\n", argv[0]);
			return 2;
		}
	}
	if (optind < argc)
		seeds = strtoul(argv[optind++], NULL, 10);
	if (optind < argc)
		first = strtoul(argv[optind], NULL, 10);
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm"
		: getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	unsigned long failed = 0;
	for (unsigned long s = first; s < first + seeds; s++)
		failed += run_seed(s, tmp) != 0;
	fprintf(stderr, "sim: %lu seeds from %lu, %lu failed\n", seeds, first,
		failed);
	return failed ? 1 : 0;
}
