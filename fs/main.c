/*
 * main.c - the FUSE daemon t4dxfs: checks of DATA_DIR and the
 * mountpoint, start (open the store, mount, detach), the table of
 * operations and the session loop, and the end.  The command line is
 * cmdline.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "t4dxfs.h"
#include "cmdline.h"
#include "inode.h"

/* ---- session ---------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* every write must reach the daemon: no writeback caching (it
	 * would also show readers the page cache's uncommitted bytes; and
	 * it was no faster for dd of large files: README Large files) */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Large files need nothing here: libfuse 3.14 offers max_write up
	 * to its request buffer, 256 pages (1 MiB, the kernel's default
	 * fs.fuse.max_pages_limit), and asks for max_pages to match, so a
	 * write(2) of 1 MiB is one WRITE (large.bats checks it).  Neither
	 * can go higher from here, and max_readahead can only lower the
	 * kernel's offer (the mount's read_ahead_kb, 128 KiB). */
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
	.readlink = op_readlink,
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
	struct t4dxfs *fs = arg;
	atomic_fetch_add(&fs->alerts_seen, 1);
	if (fs->foreground) {
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
static int ensure_root(struct t4dxfs *fs)
{
	struct t4dx_entry e = { 0 };
	int rc = t4dx_get(fs->db, 0, "items", 5, 0, &e);
	if (rc != T4DX_ENOTFOUND)
		return rc;
	int64_t now = t4dx_now_ns();
	memset(&e, 0, sizeof(e));
	t4dx_entry_set_key(&e, 0, "items", 5);
	e.ino = T4DX_ROOT_INO;
	e.mode = S_IFDIR | 0755;
	e.uid = fs->uid;
	e.gid = fs->gid;
	e.atime_ns = e.mtime_ns = e.ctime_ns = now;
	return t4dx_put(fs->db, &e, 0, NULL);
}

/* Undo the octal escapes (\ooo) of a field of /proc/self/mountinfo. */
static void mountinfo_unescape(char *s)
{
	char *d = s;
	for (; *s; s++) {
		int o = octal_escape(s);
		*d++ = o >= 0 ? (char)o : *s;
		if (o >= 0)
			s += 3;
	}
	*d = '\0';
}

/* Is the directory mnt (a real path) the mountpoint of a live t4dx mount?
 * The mount on top there is the last line of /proc/self/mountinfo that
 * names it; a t4dxfs mount has the type fuse.t4dxfs (t4dxfs refuses
 * another subtype=) and the source t4dx:DATA_DIR, copied to src. */
static bool t4dx_mounted_at(const char *mnt, char *src, size_t srclen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool ours = false;
	while (f && getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] -
		 * TYPE SOURCE SUPER_OPTIONS */
		char *save = NULL, *mp = NULL, *type = NULL, *source = NULL;
		char *tok = strtok_r(line, " \n", &save);
		for (int i = 0; tok; i++, tok = strtok_r(NULL, " \n", &save)) {
			if (i == 4)
				mp = tok;
			if (i > 5 && !strcmp(tok, "-")) {
				type = strtok_r(NULL, " \n", &save);
				source = type ? strtok_r(NULL, " \n", &save)
					      : NULL;
				break;
			}
		}
		if (!mp || !type || !source)
			continue;
		mountinfo_unescape(mp);
		if (strcmp(mp, mnt))
			continue;
		ours = !strcmp(type, "fuse.t4dxfs");
		mountinfo_unescape(source);
		snprintf(src, srclen, "%s", strncmp(source, "t4dx:", 5)
					    ? source : source + 5);
	}
	free(line);
	if (f)
		fclose(f);
	return ours;
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
		/* one more t4dx mount on top of a live one would hide it,
		 * and its store, from everyone who uses the path */
		char real[PATH_MAX], src[PATH_MAX];
		if (realpath(mnt, real) &&
		    t4dx_mounted_at(real, src, sizeof(src))) {
			fprintf(stderr, "t4dxfs: %s is already a t4dx mount (of "
				"%s); unmount it first (fusermount3 -u %s)\n",
				mnt, src, mnt);
			return EBUSY;
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

/* A stop by signal also cancels the request to the embedder program
 * under way: libfuse joins its workers before t4dx_close (whose
 * eng_embedder_stop cancels the files' requests), and a text query in
 * search/ waits in one for the program's answer, up to vector.timeout_s.
 * Then libfuse's own handler ends the loop. */
static struct t4dx *stop_db;
static const int stop_sigs[] = { SIGHUP, SIGINT, SIGTERM };
static struct sigaction fuse_sa[sizeof(stop_sigs) / sizeof(stop_sigs[0])];

static void stop_handler(int sig)
{
	int saved = errno;
	if (stop_db)
		t4dx_embed_cancel(stop_db);
	for (size_t i = 0; i < sizeof(stop_sigs) / sizeof(stop_sigs[0]); i++)
		if (stop_sigs[i] == sig &&
		    !(fuse_sa[i].sa_flags & SA_SIGINFO) &&
		    fuse_sa[i].sa_handler != SIG_DFL &&
		    fuse_sa[i].sa_handler != SIG_IGN)
			fuse_sa[i].sa_handler(sig);
	errno = saved;
}

/* After fuse_set_signal_handlers: stop_handler first, then libfuse's. */
static int chain_stop_handlers(struct t4dx *db)
{
	stop_db = db;
	for (size_t i = 0; i < sizeof(stop_sigs) / sizeof(stop_sigs[0]); i++) {
		struct sigaction sa;
		if (sigaction(stop_sigs[i], NULL, &fuse_sa[i]))
			return errno;
		if (fuse_sa[i].sa_handler == SIG_IGN)
			continue;       /* ignored before us: left so */
		sa = fuse_sa[i];
		sa.sa_flags &= ~SA_SIGINFO;
		sa.sa_handler = stop_handler;
		if (sigaction(stop_sigs[i], &sa, NULL))
			return errno;
	}
	return 0;
}

static void unchain_stop_handlers(void)
{
	for (size_t i = 0; i < sizeof(stop_sigs) / sizeof(stop_sigs[0]); i++)
		if (fuse_sa[i].sa_handler != SIG_IGN)
			sigaction(stop_sigs[i], &fuse_sa[i], NULL);
	stop_db = NULL;
}


/* Everything after the command line; returns the exit status. */
static int run(struct t4dxfs *fs, struct cmdline *cl)
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
	/* the daemon goes to / when it detaches: its unmount at a stop by
	 * signal (fuse_session_unmount) needs the mountpoint's full path */
	char mnt[PATH_MAX];
	if (realpath(c.mnt, mnt))
		c.mnt = mnt;
	if (!c.foreground && daemonize_start(&notify_fd))
		return 1;

	t4dx_config_defaults(&cfg);
	if (c.config &&
	    t4dx_config_load(c.config, &cfg, msg, sizeof(msg))) {
		fprintf(stderr, "t4dxfs: %s\n", msg);
		return 1;
	}
	fs->cfg = cfg;
	fs->foreground = c.foreground;
	fs->start_ns = t4dx_now_ns();
	fs->uid = getuid();
	fs->gid = getgid();
	/* every change passes through the daemon, which tells the kernel
	 * when it changes something on its own (commit, prune): the kernel
	 * may cache names and attributes for long */
	fs->entry_timeout = 3600;
	fs->attr_timeout = 3600;
	fs->max_item_bytes = cfg.limits.max_item_bytes;
	/* one malloc arena per FUSE thread keeps what listings and commits
	 * freed in many pools; a few arenas bound the daemon's footprint */
	mallopt(M_ARENA_MAX, 2);
	/* big contents (write buffers, blobs, segment parts) in mappings of
	 * their own, given back to the system when freed: glibc would raise
	 * this threshold after the first such free and keep later ones in the
	 * heap, where an idle daemon held hundreds of MiB after a burst of
	 * big writes (from hostile use) */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	pthread_mutex_init(&fs->ns_mu, NULL);
	pthread_mutex_init(&fs->search.mu, NULL);
	const char *pause = getenv("T4DX_TEST_RELEASE_PAUSE_MS");
	if (pause)
		fs->test_release_pause_ms = (unsigned)strtoul(pause, NULL, 10);

	/* the mount options first: a bad one is reported before the store
	 * is opened (a replay, a flush) */
	/* ours before the user's: fsname names DATA_DIR, escaped as fuse_opt
	 * unescapes a -o list, so that a comma or a backslash in the path is
	 * part of the name and cannot add an option */
	char *ours = NULL, *fsname = NULL;
	struct fuse_args args = c.fuse_args;
	c.fuse_args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	cl->fuse_args = c.fuse_args;
	if (asprintf(&fsname, "fsname=t4dx:%s", data) < 0)
		fsname = NULL;
	if (!fsname || fuse_opt_add_opt_escaped(&ours, fsname) ||
	    fuse_opt_add_opt(&ours, "subtype=t4dxfs,default_permissions") ||
	    fuse_opt_insert_arg(&args, 1, "-o") ||
	    fuse_opt_insert_arg(&args, 2, ours)) {
		fprintf(stderr, "t4dxfs: out of memory\n");
		free(fsname);
		free(ours);
		fuse_opt_free_args(&args);
		return 1;
	}
	free(fsname);
	free(ours);
	fs->se = fuse_session_new(&args, &ops, sizeof(ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		fprintf(stderr, "t4dxfs: bad mount options: %s\n",
			(char *)c.fuse_opts.p);
		return 1;
	}
	if (missing == ENOENT && mkdir(data, 0700) && errno != EEXIST) {
		fprintf(stderr, "t4dxfs: cannot create %s: %s\n", c.data,
			strerror(errno));
		fuse_session_destroy(fs->se);
		return 1;
	}
	struct t4dx_open_args oa = { .cfg = &cfg,
				     .rebuild = rebuild_progress };
	/* a second open when items/ itself reads back damaged: a start
	 * reads only footers and indexes (health.verify_at_start off), and
	 * the failed read left the marker that makes the next open read
	 * that segment whole and rebuild it */
	bool again = true;
reopen:
	rc = t4dx_open_args(data, &oa, &fs->db, msg, sizeof(msg));
	if (rc) {
		fprintf(stderr, "t4dxfs: %s\n", msg);
		fuse_session_destroy(fs->se);
		return 1;
	}
	t4dx_set_alert_sink(fs->db, alert_sink, fs);
	if (!c.foreground) {
		t4dx_set_dump_sink(fs->db, dump_sink, NULL);
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
	t4dx_get_stats(fs->db, &st);
	fprintf(stderr, "t4dxfs: opened %s: %llu WAL records replayed, "
		"%llu damaged bytes dropped, %llu segments quarantined%s\n",
		data, (unsigned long long)st.recovery.records_replayed,
		(unsigned long long)st.recovery.bytes_dropped,
		(unsigned long long)st.recovery.segments_quarantined,
		st.recovery.flushed ? ", being flushed to a segment" : "");
	if ((rc = ensure_root(fs)) == EIO && again) {
		fprintf(stderr, "t4dxfs: items/ cannot be read: opening %s "
			"again\n", data);
		t4dx_close(fs->db);
		fs->db = NULL;
		again = false;
		goto reopen;
	}
	if (rc) {
		fprintf(stderr, "t4dxfs: cannot create items/: %s\n",
			t4dx_strerror(rc));
		fuse_session_destroy(fs->se);
		t4dx_close(fs->db);
		return 1;
	}
	/* what the log holds now (replayed, rescued, items/ itself) is
	 * older than any inode's own records: every fsync waits for it */
	t4dx_get_stats(fs->db, &st);
	ns_lock(fs);
	node_lsn_floor(&fs->nodes, st.wal_lsn);
	ns_unlock(fs);
	if (c.durability && !strcmp(c.durability, "fsync") &&
	    (rc = t4dx_set_durability(fs->db, T4DX_DURABLE_FSYNC))) {
		fprintf(stderr, "t4dxfs: -o durability=fsync: %s\n",
			t4dx_strerror(rc));
		fuse_session_destroy(fs->se);
		t4dx_close(fs->db);
		return 1;
	}

	if (fuse_set_signal_handlers(fs->se) || chain_stop_handlers(fs->db) ||
	    fuse_session_mount(fs->se, c.mnt)) {
		fprintf(stderr, "t4dxfs: cannot mount at %s\n", c.mnt);
		unchain_stop_handlers();        /* before the store goes */
		fuse_session_destroy(fs->se);
		t4dx_close(fs->db);
		return 1;
	}
	if (!c.foreground) {
		openlog("t4dxfs", LOG_PID, LOG_DAEMON);
		daemonize_done(notify_fd);
	}

	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(lc, 64);
	fuse_loop_cfg_set_idle_threads(lc, 16);
	rc = fuse_session_loop_mt(fs->se, lc);
	fuse_loop_cfg_destroy(lc);
	/* a positive value is the signal (SIGTERM, SIGINT) that ended it */
	if (rc > 0)
		rc = 0;

	fuse_session_unmount(fs->se);
	unchain_stop_handlers();
	fuse_remove_signal_handlers(fs->se);
	fuse_session_destroy(fs->se);
	int crc = t4dx_close(fs->db);
	if (crc) {
		/* changes acknowledged as unpersisted may be lost: say so
		 * with the exit status too */
		fprintf(stderr, "t4dxfs: closing the store: %s\n",
			t4dx_strerror(crc));
	}
	ns_lock(fs);
	/* handles never released: their uncommitted writes were never
	 * acknowledged and go with them */
	fh_free_all(fs);
	dir_free_all(fs);
	namespace_free_all(fs);
	node_free_all(&fs->nodes);
	search_free_all(fs);
	ns_unlock(fs);
	return rc || crc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct cmdline c;
	if (parse_cmdline(argc, argv, &c)) {
		cmdline_free(&c);
		return 2;
	}
	/* the daemon's state, the session's userdata: zero is empty lists
	 * and tables */
	struct t4dxfs *fs = calloc(1, sizeof(*fs));
	if (!fs) {
		perror("t4dxfs");
		cmdline_free(&c);
		return 1;
	}
	int status = run(fs, &c);
	cmdline_free(&c);
	free(fs);
	return status;
}
