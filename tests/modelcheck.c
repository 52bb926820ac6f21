/*
 * modelcheck.c - random use of a mounted t4dxfs by several processes,
 * checked against a model, across SIGKILLs of the daemon.
 *
 * usage: modelcheck run MOUNTDIR STATEDIR ROUND SEED WORKERS OPS
 *        modelcheck verify MOUNTDIR STATEDIR ROUND
 *
 * run: WORKERS processes, each in a directory of its own
 * (MOUNTDIR/items/mc/rROUND-wN), do OPS random operations: write a whole
 * file, append, truncate, pwrite + fsync, rename (also into and out of
 * subdirectories), unlink, mkdir, rmdir, setxattr, chmod, utimens (these
 * three each followed by an fsync of the file, which they need); each
 * holds up to three read descriptors open across later operations.  Every
 * read is compared with the model: a descriptor reads what its file holds
 * now (as on a local filesystem), or, once the file was unlinked or
 * replaced by a rename, what it held then.  Each
 * worker logs every operation to STATEDIR/rROUND-wN.log before it starts
 * ("I") and once it was acknowledged ("A").  A worker stops at the first
 * error of the mount (the daemon was killed): that operation stays
 * unacknowledged.  Exit 0, or 1 if a read disagreed with the model.
 *
 * verify (after the daemon was restarted): for each worker, the files and
 * directories of its directory must be what its acknowledged operations
 * imply, or that plus its one unacknowledged operation (which may or may
 * not have happened).  Content, mode, kappa and mtime are compared.
 * Exit 0 if all match, 1 (with the differences) if not.
 *
 * Each worker owns its directory, so its model is exact whatever the
 * others do; the daemon sees them all at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define MAXF 32
#define MAXC 600

struct file {
	char path[32];          /* relative to the worker's directory */
	bool dir;
	char data[MAXC];
	size_t len;
	unsigned mode;
	int kappa;              /* in hundredths */
	long mtime;             /* seconds, or 0: not set by us */
	unsigned id;            /* the file (inode): kept by writes and
	                           renames, new at a create */
};

struct model {
	struct file f[MAXF];
	int n;
	unsigned next_id;
};

static struct file *find(struct model *m, const char *p)
{
	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->f[i].path, p))
			return &m->f[i];
	return NULL;
}

static void drop(struct model *m, struct file *f)
{
	*f = m->f[--m->n];
}

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The deterministic bytes of operation seq: len printable bytes. */
static void gen(uint64_t key, char *out, size_t len)
{
	for (size_t i = 0; i < len; i++)
		out[i] = (char)('a' + mix(key + i) % 26);
}

/* One operation, as logged: "op seq path path2 num". */
struct op {
	char op[12];
	unsigned long seq;
	char path[32], path2[32];
	long num;
};

/* Apply op to m as the filesystem must; false if it is not valid. */
static bool apply(struct model *m, const struct op *o, uint64_t key)
{
	struct file *f = find(m, o->path);
	char parent[32];
	snprintf(parent, sizeof(parent), "%s", o->path);
	char *sl = strrchr(parent, '/');
	bool pok = !sl || (*sl = 0, find(m, parent) && find(m, parent)->dir);
	if (!strcmp(o->op, "write") || !strcmp(o->op, "append") ||
	    !strcmp(o->op, "pwrite")) {
		if (!pok || (f && f->dir) || (!f && strcmp(o->op, "write")))
			return false;
		if (!f) {
			if (m->n >= MAXF)
				return false;
			f = &m->f[m->n++];
			memset(f, 0, sizeof(*f));
			snprintf(f->path, sizeof(f->path), "%s", o->path);
			f->mode = 0644;
			f->kappa = 0;
			f->id = ++m->next_id;
		}
		size_t len = (size_t)o->num, off = 0;
		if (!strcmp(o->op, "append"))
			off = f->len;
		else if (!strcmp(o->op, "pwrite"))
			off = f->len / 2;
		if (off + len >= MAXC)
			return false;
		if (!strcmp(o->op, "write"))
			f->len = 0;
		gen(key, f->data + off, len);
		if (off + len > f->len)
			f->len = off + len;
		f->mtime = 0;
		return true;
	}
	if (!strcmp(o->op, "truncate")) {
		if (!f || f->dir || (size_t)o->num >= MAXC)
			return false;
		if ((size_t)o->num > f->len)
			memset(f->data + f->len, 0, (size_t)o->num - f->len);
		f->len = (size_t)o->num;
		f->mtime = 0;
		return true;
	}
	if (!strcmp(o->op, "unlink")) {
		if (!f || f->dir)
			return false;
		drop(m, f);
		return true;
	}
	if (!strcmp(o->op, "mkdir")) {
		if (!pok || f || m->n >= MAXF || strchr(o->path, '/'))
			return false;
		f = &m->f[m->n++];
		memset(f, 0, sizeof(*f));
		snprintf(f->path, sizeof(f->path), "%s", o->path);
		f->dir = true;
		return true;
	}
	if (!strcmp(o->op, "rmdir")) {
		if (!f || !f->dir)
			return false;
		size_t n = strlen(o->path);
		for (int i = 0; i < m->n; i++)
			if (!strncmp(m->f[i].path, o->path, n) &&
			    m->f[i].path[n] == '/')
				return false;
		drop(m, f);
		return true;
	}
	if (!strcmp(o->op, "rename")) {
		struct file *d = find(m, o->path2);
		char p2[32];
		snprintf(p2, sizeof(p2), "%s", o->path2);
		char *s2 = strrchr(p2, '/');
		bool ok2 = !s2 || (*s2 = 0, find(m, p2) && find(m, p2)->dir);
		if (!f || f->dir || !ok2 || (d && d->dir) ||
		    !strcmp(o->path, o->path2))
			return false;
		if (d)
			drop(m, d);
		f = find(m, o->path);
		snprintf(f->path, sizeof(f->path), "%s", o->path2);
		return true;
	}
	if (!strcmp(o->op, "chmod")) {
		if (!f || f->dir)
			return false;
		f->mode = (unsigned)o->num;
		return true;
	}
	if (!strcmp(o->op, "kappa")) {
		if (!f || f->dir)
			return false;
		f->kappa = (int)o->num;
		return true;
	}
	if (!strcmp(o->op, "utimens")) {
		if (!f || f->dir)
			return false;
		f->mtime = o->num;
		return true;
	}
	return false;
}

static uint64_t op_key(uint64_t seed, int worker, unsigned long seq)
{
	return mix(seed ^ ((uint64_t)worker << 40) ^ seq);
}

/* ---- the worker ----------------------------------------------------------- */

static char wdir[4096];

static const char *P(const char *rel)
{
	static char b[2][4200];
	static int i;
	char *o = b[i++ % 2];
	snprintf(o, sizeof(b[0]), "%s/%s", wdir, rel);
	return o;
}

static int write_all(int fd, const char *p, size_t n, off_t off)
{
	while (n) {
		ssize_t k = off >= 0 ? pwrite(fd, p, n, off) : write(fd, p, n);
		if (k < 0)
			return -1;
		p += k;
		n -= (size_t)k;
		if (off >= 0)
			off += k;
	}
	return 0;
}

/* chmod, setxattr and utimens return before their record is durable
 * (README Durability): a program that relies on one fsyncs the file, as
 * this does; the fsync acknowledges it.  0, or -1 with errno. */
static int sync_path(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int save = errno;
	close(fd);
	errno = save;
	return rc;
}

/* Do op; 0, or -1 with errno. */
static int perform(const struct op *o, uint64_t key, struct model *m)
{
	char buf[MAXC];
	int fd, rc = 0;
	gen(key, buf, (size_t)o->num < MAXC ? (size_t)o->num : 0);
	if (!strcmp(o->op, "write") || !strcmp(o->op, "append")) {
		fd = open(P(o->path), O_WRONLY | O_CREAT |
			  (!strcmp(o->op, "write") ? O_TRUNC : O_APPEND), 0644);
		if (fd < 0)
			return -1;
		rc = write_all(fd, buf, (size_t)o->num, -1);
		if (close(fd))
			rc = -1;
		return rc;
	}
	if (!strcmp(o->op, "pwrite")) {
		struct file *f = find(m, o->path);
		fd = open(P(o->path), O_WRONLY);
		if (fd < 0)
			return -1;
		rc = write_all(fd, buf, (size_t)o->num, (off_t)(f->len / 2));
		if (!rc)
			rc = fsync(fd);
		/* acknowledged by the fsync: close may not change that */
		int save = errno;
		close(fd);
		errno = save;
		return rc;
	}
	if (!strcmp(o->op, "truncate"))
		return truncate(P(o->path), o->num);
	if (!strcmp(o->op, "unlink"))
		return unlink(P(o->path));
	if (!strcmp(o->op, "mkdir"))
		return mkdir(P(o->path), 0755);
	if (!strcmp(o->op, "rmdir"))
		return rmdir(P(o->path));
	if (!strcmp(o->op, "rename"))
		return rename(P(o->path), P(o->path2));
	if (!strcmp(o->op, "chmod"))
		return chmod(P(o->path), (mode_t)o->num) ? -1
		       : sync_path(P(o->path));
	if (!strcmp(o->op, "kappa")) {
		char v[16];
		snprintf(v, sizeof(v), "0.%02ld", o->num);
		return setxattr(P(o->path), "user.t4dx.kappa", v, strlen(v), 0)
		       ? -1 : sync_path(P(o->path));
	}
	if (!strcmp(o->op, "utimens")) {
		struct timespec ts[2] = { { o->num, 0 }, { o->num, 0 } };
		return utimensat(AT_FDCWD, P(o->path), ts, 0) ? -1
		       : sync_path(P(o->path));
	}
	errno = EINVAL;
	return -1;
}

static void random_op(uint64_t *r, struct model *m, struct op *o)
{
	static const char *const kinds[] = { "write", "write", "write",
		"append", "append", "truncate", "pwrite", "rename", "rename",
		"unlink", "mkdir", "rmdir", "chmod", "kappa", "utimens" };
	memset(o, 0, sizeof(*o));
	*r = mix(*r);
	snprintf(o->op, sizeof(o->op), "%s", kinds[*r % 15]);
	static const char *const names[] = { "a", "b", "c", "d", "e", "s",
		"s/a", "s/b", "t", "t/c" };
	*r = mix(*r);
	if (m->n && *r % 3)
		snprintf(o->path, sizeof(o->path), "%s",
			 m->f[(*r >> 8) % (uint64_t)m->n].path);
	else
		snprintf(o->path, sizeof(o->path), "%s", names[*r % 10]);
	*r = mix(*r);
	snprintf(o->path2, sizeof(o->path2), "%s", names[*r % 10]);
	*r = mix(*r);
	static const unsigned modes[] = { 0600, 0640, 0644, 0755 };
	if (!strcmp(o->op, "chmod"))
		o->num = modes[*r % 4];
	else if (!strcmp(o->op, "kappa"))
		o->num = (long)(*r % 100);
	else if (!strcmp(o->op, "utimens"))
		o->num = 1000000 + (long)(*r % 1000000);
	else
		o->num = (long)(1 + *r % 200);
}

struct reader {
	int fd;
	unsigned id;            /* its file */
	char data[MAXC];        /* what a read must return */
	size_t len;
};

/* After an operation: a reader of a file that still has a name reads its
 * content now; one whose file lost its name keeps what it had. */
static void follow(struct reader *x, struct model *m)
{
	for (int i = 0; i < m->n; i++)
		if (!m->f[i].dir && m->f[i].id == x->id) {
			memcpy(x->data, m->f[i].data, m->f[i].len);
			x->len = m->f[i].len;
		}
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "modelcheck: %s: ", wdir);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* Read the whole file at path into buf; its length, or -1. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = 0, k;
	while ((size_t)n < cap && (k = read(fd, buf + n, cap - (size_t)n)) > 0)
		n += k;
	close(fd);
	return k < 0 ? -1 : n;
}

/* Is the daemon still serving mnt?  (After a SIGKILL calls fail with
 * ENOTCONN, and once the dead mount is gone, with ENOENT.) */
static bool alive(const char *mnt)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/.ctl/breaker", mnt);
	return access(p, R_OK) == 0;
}

static int worker(const char *mnt, const char *state, int round, int w,
		  uint64_t seed, unsigned long nops)
{
	char logp[4200];
	snprintf(wdir, sizeof(wdir), "%s/items/mc/r%d-w%d", mnt, round, w);
	snprintf(logp, sizeof(logp), "%s/r%d-w%d.log", state, round, w);
	FILE *log = fopen(logp, "w");
	if (!log || mkdir(wdir, 0755))
		return bad("cannot start: %s", strerror(errno));
	setvbuf(log, NULL, _IOLBF, 0);
	struct model m = { .n = 0 };
	struct reader rd[3];
	int nrd = 0, errors = 0;
	uint64_t r = seed ^ (uint64_t)w;
	for (unsigned long seq = 1; seq <= nops && !errors; seq++) {
		struct op o;
		struct model next;
		uint64_t key = op_key(seed, w, seq);
		int tries = 0;
		do {
			next = m;
			random_op(&r, &next, &o);
			o.seq = seq;
		} while (!apply(&next, &o, key) && ++tries < 100);
		if (tries == 100)
			continue;
		fprintf(log, "I %s %lu %s %s %ld\n", o.op, seq, o.path,
			o.path2[0] ? o.path2 : "-", o.num);
		if (perform(&o, key, &m)) {
			if (!alive(mnt))
				break;  /* the daemon was killed */
			errors += bad("%s %s: %s", o.op, o.path,
				      strerror(errno));
			break;
		}
		fprintf(log, "A %lu\n", seq);
		m = next;
		for (int i = 0; i < nrd; i++)
			follow(&rd[i], &m);
		/* a reader of this version, kept across later commits */
		struct file *f = find(&m, !strcmp(o.op, "rename") ? o.path2
								   : o.path);
		if (f && !f->dir && nrd < 3 && seq % 4 == 0) {
			int fd = open(P(f->path), O_RDONLY);
			if (fd >= 0) {
				rd[nrd].fd = fd;
				rd[nrd].id = f->id;
				memcpy(rd[nrd].data, f->data, f->len);
				rd[nrd++].len = f->len;
			}
		}
		/* an old descriptor reads: exactly what its file holds */
		if (nrd && seq % 3 == 0) {
			struct reader *x = &rd[--nrd];
			char buf[MAXC];
			ssize_t n = pread(x->fd, buf, sizeof(buf), 0);
			close(x->fd);
			if (n < 0 && alive(mnt))
				errors += bad("old reader: %s",
					      strerror(errno));
			else if (n >= 0 && ((size_t)n != x->len ||
					    memcmp(buf, x->data, (size_t)n)))
				errors += bad("an old descriptor read %zd "
					      "bytes, its file has %zu", n,
					      x->len);
		}
		/* a fresh read of the file: exactly the model */
		if (f && !f->dir) {
			char buf[MAXC + 1];
			ssize_t n = slurp(P(f->path), buf, sizeof(buf));
			if (n < 0 && !alive(mnt))
				break;
			if (n != (ssize_t)f->len || memcmp(buf, f->data, f->len))
				errors += bad("%s after %s: read %zd bytes, "
					      "the model has %zu", f->path,
					      o.op, n, f->len);
		}
	}
	while (nrd)
		close(rd[--nrd].fd);
	fclose(log);
	return errors ? 1 : 0;
}

/* ---- verify --------------------------------------------------------------- */

static int compare(struct model *m, const char *dir, char *why, size_t len)
{
	/* every model entry is there, as the model says */
	for (int i = 0; i < m->n; i++) {
		struct file *f = &m->f[i];
		char p[4200];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", dir, f->path);
		if (lstat(p, &st)) {
			snprintf(why, len, "%s is missing", f->path);
			return 1;
		}
		if (f->dir) {
			if (!S_ISDIR(st.st_mode)) {
				snprintf(why, len, "%s is not a directory",
					 f->path);
				return 1;
			}
			continue;
		}
		char buf[MAXC + 1], v[32] = "";
		ssize_t n = slurp(p, buf, sizeof(buf));
		if (n != (ssize_t)f->len || memcmp(buf, f->data, f->len)) {
			snprintf(why, len, "%s: %zd bytes, the model has %zu",
				 f->path, n, f->len);
			return 1;
		}
		if ((st.st_mode & 07777) != f->mode) {
			snprintf(why, len, "%s: mode %o, the model has %o",
				 f->path, st.st_mode & 07777, f->mode);
			return 1;
		}
		if (f->mtime && st.st_mtime != f->mtime) {
			snprintf(why, len, "%s: mtime %ld, the model has %ld",
				 f->path, (long)st.st_mtime, f->mtime);
			return 1;
		}
		ssize_t vl = getxattr(p, "user.t4dx.kappa", v, sizeof(v) - 1);
		double k = vl > 0 ? (v[vl] = 0, strtod(v, NULL)) : -1;
		if (k < f->kappa / 100.0 - 1e-9 || k > f->kappa / 100.0 + 1e-9) {
			snprintf(why, len, "%s: kappa %s, the model has %d/100",
				 f->path, v, f->kappa);
			return 1;
		}
	}
	/* and nothing else */
	const char *subs[] = { "", "s", "t" };
	for (int s = 0; s < 3; s++) {
		char p[4200];
		snprintf(p, sizeof(p), "%s/%s", dir, subs[s]);
		DIR *d = opendir(p);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			char rel[64];
			if (de->d_name[0] == '.')
				continue;
			snprintf(rel, sizeof(rel), "%s%s%.20s", subs[s],
				 *subs[s] ? "/" : "", de->d_name);
			if (!find(m, rel)) {
				snprintf(why, len, "%s is there, not in the "
					 "model", rel);
				closedir(d);
				return 1;
			}
		}
		closedir(d);
	}
	return 0;
}

static int verify_one(const char *mnt, const char *logp, const char *name,
		      uint64_t seed, int w)
{
	FILE *log = fopen(logp, "r");
	if (!log)
		return 0;
	struct model m = { .n = 0 }, inflight;
	struct op o, pending;
	bool have_pending = false;
	char line[256];
	unsigned long acked = 0;
	while (fgets(line, sizeof(line), log)) {
		if (line[0] == 'I') {
			memset(&pending, 0, sizeof(pending));
			if (sscanf(line, "I %11s %lu %31s %31s %ld",
				   pending.op, &pending.seq, pending.path,
				   pending.path2, &pending.num) != 5)
				break;
			if (!strcmp(pending.path2, "-"))
				pending.path2[0] = 0;
			have_pending = true;
		} else if (line[0] == 'A' && have_pending) {
			o = pending;
			apply(&m, &o, op_key(seed, w, o.seq));
			have_pending = false;
			acked++;
		}
	}
	fclose(log);
	char dir[4200], why[512], why2[512] = "";
	snprintf(dir, sizeof(dir), "%s/items/mc/%s", mnt, name);
	if (!compare(&m, dir, why, sizeof(why)))
		return 0;
	if (have_pending) {
		inflight = m;
		if (apply(&inflight, &pending, op_key(seed, w, pending.seq)) &&
		    !compare(&inflight, dir, why2, sizeof(why2)))
			return 0;
	}
	fprintf(stderr, "modelcheck: %s after %lu acknowledged operations: "
		"%s%s%s\n", name, acked, why, have_pending ? "; or, with the "
		"unacknowledged one: " : "", why2);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 8 && !strcmp(argv[1], "run")) {
		const char *mnt = argv[2], *state = argv[3];
		int round = atoi(argv[4]), nw = atoi(argv[6]);
		uint64_t seed = strtoull(argv[5], NULL, 10);
		unsigned long nops = strtoul(argv[7], NULL, 10);
		char p[4200];
		snprintf(p, sizeof(p), "%s/items/mc", mnt);
		mkdir(p, 0755);
		snprintf(p, sizeof(p), "%s/r%d.seed", state, round);
		FILE *sf = fopen(p, "w");
		if (!sf)
			return 2;
		fprintf(sf, "%llu\n", (unsigned long long)seed);
		fclose(sf);
		for (int w = 0; w < nw; w++) {
			pid_t pid = fork();
			if (pid == 0)
				_exit(worker(mnt, state, round, w, seed, nops));
		}
		int status = 0, ws;
		while (wait(&ws) > 0)
			if (!WIFEXITED(ws) || WEXITSTATUS(ws))
				status = 1;
		return status;
	}
	if (argc == 5 && !strcmp(argv[1], "verify")) {
		const char *mnt = argv[2], *state = argv[3];
		int round = atoi(argv[4]), bads = 0, n = 0;
		char p[4200];
		snprintf(p, sizeof(p), "%s/r%d.seed", state, round);
		FILE *sf = fopen(p, "r");
		unsigned long long seed = 0;
		if (!sf || fscanf(sf, "%llu", &seed) != 1)
			return 2;
		fclose(sf);
		for (int w = 0; w < 64; w++) {
			char name[32];
			snprintf(name, sizeof(name), "r%d-w%d", round, w);
			snprintf(p, sizeof(p), "%s/%s.log", state, name);
			if (access(p, F_OK))
				continue;
			n++;
			bads += verify_one(mnt, p, name, seed, w);
		}
		printf("modelcheck: round %d: %d workers checked, %d differ\n",
		       round, n, bads);
		return bads ? 1 : n ? 0 : 2;
	}
	fprintf(stderr, "usage: %s run MOUNTDIR STATEDIR ROUND SEED WORKERS "
		"OPS\n       %s verify MOUNTDIR STATEDIR ROUND\n", argv[0],
		argv[0]);
	return 2;
}
