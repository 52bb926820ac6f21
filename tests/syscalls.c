/*
 * syscalls.c - check system-call semantics of a mounted t4dxfs.
 *
 * Usage: tests/syscalls MOUNTDIR
 *
 * Works in a fresh directory MOUNTDIR/items/syscalls.<pid> and checks, one
 * system call at a time, what shell tools cannot show precisely: exact errno
 * values, sizes seen through an open descriptor before close, pread/pwrite
 * at offsets, ftruncate, O_APPEND, O_EXCL, rename flags, and that an open
 * descriptor keeps the version of the file it opened.  In the manner of
 * libfuse's test/test_syscalls.c.
 *
 * Output is TAP: one "ok N - what" or "not ok N - what: why" line per
 * check and the plan "1..N" at the end.  Exit status 0 if every check
 * passed, 1 if one failed, 2 on a usage error.
 */
#ifndef _GNU_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* The item size limit of the default configuration (DESIGN.md section 8). */
#define MAX_ITEM_BYTES (16L * 1024 * 1024)

static char base[4096];         /* MOUNTDIR/items/syscalls.<pid> */
static int n_checks;
static int n_failed;

/* Print one TAP line.  ok false: the line is "not ok" and why (printf-like)
 * is appended. */
static void report(bool ok, const char *what, const char *why, ...)
	__attribute__((format(printf, 3, 4)));

static void report(bool ok, const char *what, const char *why, ...)
{
	n_checks++;
	if (ok) {
		printf("ok %d - %s\n", n_checks, what);
	} else {
		va_list ap;

		n_failed++;
		printf("not ok %d - %s: ", n_checks, what);
		va_start(ap, why);
		vprintf(why, ap);
		va_end(ap);
		printf("\n");
	}
	fflush(stdout);
}

/* Path of name inside the work directory (static buffer, rotating so that
 * two results can be used in one call). */
static const char *P(const char *name)
{
	static char bufs[4][8192];
	static int i;
	char *b = bufs[i++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", base, name);
	return b;
}

/* Check that a call returned rc >= 0. */
static bool expect_ok(long rc, const char *what)
{
	int e = errno;

	if (rc >= 0) {
		report(true, what, "%s", "");
		return true;
	}
	report(false, what, "failed with %s (errno %d)", strerror(e), e);
	return false;
}

/* Check that a call failed with errno want. */
static void expect_err(long rc, int want, const char *what)
{
	int e = errno;

	if (rc >= 0)
		report(false, what, "succeeded, expected %s", strerror(want));
	else if (e != want)
		report(false, what, "failed with %s (errno %d), expected %s",
		       strerror(e), e, strerror(want));
	else
		report(true, what, "%s", "");
}

static void expect_long(long got, long want, const char *what)
{
	if (got == want)
		report(true, what, "%s", "");
	else
		report(false, what, "got %ld, expected %ld", got, want);
}

/* Write a whole file (O_TRUNC) and check every step, including close. */
static bool put_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	bool ok = true;

	if (fd < 0) {
		fprintf(stderr, "# open %s: %s\n", path, strerror(errno));
		return false;
	}
	if (len && write(fd, data, len) != (ssize_t)len) {
		fprintf(stderr, "# write %s: %s\n", path, strerror(errno));
		ok = false;
	}
	if (close(fd) != 0) {
		fprintf(stderr, "# close %s: %s\n", path, strerror(errno));
		ok = false;
	}
	return ok;
}

/* Compare the whole content of path with data[0..len). */
static void expect_content(const char *path, const void *data, size_t len,
			   const char *what)
{
	char buf[256];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0) {
		report(false, what, "open: %s", strerror(errno));
		return;
	}
	n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n < 0)
		report(false, what, "pread: %s", strerror(errno));
	else if ((size_t)n != len || memcmp(buf, data, len) != 0)
		report(false, what, "read %zd bytes \"%.*s\", expected %zu \"%.*s\"",
		       n, (int)n, buf, len, (int)len, (const char *)data);
	else
		report(true, what, "%s", "");
}

/* Compare what fd reads at offset 0 with data[0..len). */
static void expect_fd_content(int fd, const void *data, size_t len,
			      const char *what)
{
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);

	if (n < 0)
		report(false, what, "pread: %s", strerror(errno));
	else if ((size_t)n != len || memcmp(buf, data, len) != 0)
		report(false, what, "read %zd bytes \"%.*s\", expected %zu \"%.*s\"",
		       n, (int)n, buf, len, (int)len, (const char *)data);
	else
		report(true, what, "%s", "");
}

static long fd_size(int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return -1;
	return (long)st.st_size;
}

static long path_size(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return -1;
	return (long)st.st_size;
}

/* ---- the checks -------------------------------------------------------- */

static void check_create_write_read(void)
{
	const char *f = P("file");
	struct stat st;
	char buf[64];
	int fd;

	fd = open(f, O_RDWR | O_CREAT | O_EXCL, 0644);
	if (!expect_ok(fd, "open(O_CREAT|O_EXCL) of a new name"))
		return;
	expect_err(open(f, O_RDWR | O_CREAT | O_EXCL, 0644), EEXIST,
		   "open(O_CREAT|O_EXCL) of an existing name -> EEXIST");

	if (expect_ok(fstat(fd, &st), "fstat of the new file")) {
		report(S_ISREG(st.st_mode), "new file is a regular file",
		       "mode %o", (unsigned)st.st_mode);
		expect_long((long)(st.st_mode & 07777), 0644,
			    "new file has the mode given to open (umask 022)");
		expect_long((long)st.st_nlink, 1, "new file has nlink 1");
		expect_long((long)st.st_size, 0, "new file has size 0");
		expect_long((long)st.st_uid, (long)geteuid(),
			    "new file is owned by the caller");
	}

	expect_long(write(fd, "hello world", 11), 11, "write 11 bytes");
	expect_long(fd_size(fd), 11, "fstat size is 11 after write, before close");
	expect_long(path_size(f), 11, "stat size is 11 after write, before close");

	expect_long(pwrite(fd, "XY", 2, 6), 2, "pwrite 2 bytes at offset 6");
	expect_fd_content(fd, "hello XYrld", 11, "pread sees the pwrite");
	memset(buf, 0, sizeof(buf));
	expect_long(pread(fd, buf, 3, 4), 3, "pread 3 bytes at offset 4");
	report(memcmp(buf, "o X", 3) == 0, "pread at offset 4 returns \"o X\"",
	       "got \"%.3s\"", buf);
	expect_long(pread(fd, buf, sizeof(buf), 11), 0, "pread at EOF returns 0");
	expect_long(pread(fd, buf, sizeof(buf), 1000), 0,
		    "pread past EOF returns 0");

	expect_long(pwrite(fd, "Z", 1, 20), 1, "pwrite 1 byte at offset 20 (past EOF)");
	expect_long(fd_size(fd), 21, "size is 21 after writing past EOF");
	expect_fd_content(fd, "hello XYrld\0\0\0\0\0\0\0\0\0Z", 21,
			  "the gap reads as zero bytes");

	expect_ok(ftruncate(fd, 5), "ftruncate shrink to 5");
	expect_long(fd_size(fd), 5, "fstat size is 5 after ftruncate");
	expect_fd_content(fd, "hello", 5, "content after shrinking");
	expect_ok(ftruncate(fd, 10), "ftruncate grow to 10");
	expect_long(fd_size(fd), 10, "fstat size is 10 after ftruncate");
	expect_fd_content(fd, "hello\0\0\0\0\0", 10, "growing adds zero bytes");
	expect_long(lseek(fd, 0, SEEK_END), 10, "lseek(SEEK_END) is the size");

	expect_ok(fsync(fd), "fsync returns 0");
	expect_ok(close(fd), "close returns 0");
	expect_long(path_size(f), 10, "stat size after close");
	expect_content(f, "hello\0\0\0\0\0", 10, "content after close");

	/* O_CREAT without O_EXCL opens the existing file and keeps it. */
	fd = open(f, O_RDWR | O_CREAT, 0600);
	if (expect_ok(fd, "open(O_CREAT) of an existing name")) {
		expect_long(fd_size(fd), 10, "O_CREAT keeps the existing content");
		expect_ok(close(fd), "close returns 0");
	}

	fd = open(f, O_WRONLY | O_APPEND);
	if (expect_ok(fd, "open(O_APPEND)")) {
		lseek(fd, 0, SEEK_SET);
		expect_long(write(fd, "abc", 3), 3, "write with O_APPEND");
		expect_long(fd_size(fd), 13, "O_APPEND write grows the file to 13");
		expect_ok(close(fd), "close returns 0");
		expect_content(f, "hello\0\0\0\0\0abc", 13,
			       "O_APPEND wrote at the end, not at offset 0");
	}

	fd = open(f, O_WRONLY | O_TRUNC);
	if (expect_ok(fd, "open(O_TRUNC)")) {
		expect_long(fd_size(fd), 0, "O_TRUNC empties the file at open");
		expect_long(write(fd, "new", 3), 3, "write after O_TRUNC");
		expect_ok(close(fd), "close returns 0");
		expect_content(f, "new", 3, "content after O_TRUNC and write");
	}

	fd = open(f, O_RDONLY);
	if (expect_ok(fd, "open(O_RDONLY)")) {
		expect_err(write(fd, "x", 1), EBADF, "write on O_RDONLY fd -> EBADF");
		expect_ok(close(fd), "close returns 0");
	}
}

static void check_missing(void)
{
	struct stat st;

	expect_err(open(P("missing"), O_RDONLY), ENOENT,
		   "open of a missing name -> ENOENT");
	expect_err(stat(P("missing"), &st), ENOENT,
		   "stat of a missing name -> ENOENT");
	expect_err(unlink(P("missing")), ENOENT,
		   "unlink of a missing name -> ENOENT");
	expect_err(rmdir(P("missing")), ENOENT,
		   "rmdir of a missing name -> ENOENT");
	expect_err(rename(P("missing"), P("missing2")), ENOENT,
		   "rename of a missing name -> ENOENT");
}

static void check_dirs(void)
{
	struct stat st;

	expect_ok(mkdir(P("d"), 0750), "mkdir");
	if (expect_ok(stat(P("d"), &st), "stat of the new directory")) {
		report(S_ISDIR(st.st_mode), "new directory is a directory",
		       "mode %o", (unsigned)st.st_mode);
		expect_long((long)(st.st_mode & 07777), 0750,
			    "new directory has the mode given to mkdir");
	}
	expect_err(mkdir(P("d"), 0755), EEXIST, "mkdir of an existing name -> EEXIST");
	expect_ok(put_file(P("d/x"), "x", 1) ? 0 : -1, "create a file in the directory");
	expect_err(rmdir(P("d")), ENOTEMPTY, "rmdir of a non-empty directory -> ENOTEMPTY");
	expect_err(unlink(P("d")), EISDIR, "unlink of a directory -> EISDIR");
	expect_err(rmdir(P("d/x")), ENOTDIR, "rmdir of a file -> ENOTDIR");
	expect_err(open(P("d/x/y"), O_RDWR | O_CREAT, 0644), ENOTDIR,
		   "create below a file -> ENOTDIR");
	expect_err(mkdir(P("nodir/sub"), 0755), ENOENT,
		   "mkdir in a missing directory -> ENOENT");
	expect_ok(unlink(P("d/x")), "unlink of a file");
	expect_err(stat(P("d/x"), &st), ENOENT, "stat after unlink -> ENOENT");
	expect_ok(rmdir(P("d")), "rmdir of the now empty directory");
	expect_err(stat(P("d"), &st), ENOENT, "stat after rmdir -> ENOENT");
}

static void check_rename(void)
{
	struct stat st, st2;
	ino_t ino_a = 0;

	if (!put_file(P("ra"), "content A", 9) || !put_file(P("rb"), "content B", 9)) {
		report(false, "set up rename sources", "could not create files");
		return;
	}
	if (stat(P("ra"), &st) == 0)
		ino_a = st.st_ino;

	expect_err(syscall(SYS_renameat2, AT_FDCWD, P("ra"), AT_FDCWD, P("rb"),
			   RENAME_NOREPLACE), EEXIST,
		   "renameat2(RENAME_NOREPLACE) over an existing name -> EEXIST");
	expect_content(P("ra"), "content A", 9, "failed NOREPLACE left the source");
	expect_content(P("rb"), "content B", 9, "failed NOREPLACE left the target");

	expect_ok(rename(P("ra"), P("rb")), "rename over an existing file");
	expect_content(P("rb"), "content A", 9, "target has the source's content");
	expect_err(stat(P("ra"), &st), ENOENT, "source name is gone after rename");
	if (stat(P("rb"), &st2) == 0)
		expect_long((long)st2.st_ino, (long)ino_a,
			    "renamed file keeps its inode number");

	expect_ok(syscall(SYS_renameat2, AT_FDCWD, P("rb"), AT_FDCWD, P("rc"),
			  RENAME_NOREPLACE),
		  "renameat2(RENAME_NOREPLACE) to a free name");
	expect_content(P("rc"), "content A", 9, "content after NOREPLACE rename");

	/* directories */
	mkdir(P("src"), 0755);
	mkdir(P("src/sub"), 0755);
	put_file(P("src/sub/deep"), "deep", 4);
	put_file(P("src/top"), "top", 3);
	mkdir(P("dst"), 0755);
	expect_ok(rename(P("src"), P("dst/moved")),
		  "rename a directory with contents into another directory");
	expect_content(P("dst/moved/sub/deep"), "deep", 4,
		       "nested file readable under the new directory name");
	expect_content(P("dst/moved/top"), "top", 3,
		       "file readable under the new directory name");
	expect_err(stat(P("src"), &st), ENOENT, "old directory name is gone");
	expect_err(stat(P("src/top"), &st), ENOENT, "old path below it is gone");

	expect_err(rename(P("dst/moved"), P("dst/moved/sub/into")), EINVAL,
		   "rename a directory into its own subdirectory -> EINVAL");

	mkdir(P("full"), 0755);
	put_file(P("full/f"), "f", 1);
	{
		int rc = rename(P("dst/moved"), P("full"));
		int e = errno;

		report(rc < 0 && (e == ENOTEMPTY || e == EEXIST),
		       "rename a directory over a non-empty directory -> ENOTEMPTY",
		       "%s", rc < 0 ? strerror(e) : "succeeded");
	}
	mkdir(P("empty"), 0755);
	expect_ok(rename(P("dst/moved"), P("empty")),
		  "rename a directory over an empty directory");
	expect_content(P("empty/top"), "top", 3, "content after replacing a directory");

	expect_err(rename(P("rc"), P("full")), EISDIR,
		   "rename a file over a directory -> EISDIR");
	expect_err(rename(P("full"), P("rc")), ENOTDIR,
		   "rename a directory over a file -> ENOTDIR");
}

/* An open descriptor keeps reading the version it opened. */
static void check_open_versions(void)
{
	int fd, fw;

	if (!put_file(P("ver"), "old content", 11) || !put_file(P("ver.new"), "new", 3)) {
		report(false, "set up version files", "could not create files");
		return;
	}
	fd = open(P("ver"), O_RDONLY);
	if (!expect_ok(fd, "open the old version for reading"))
		return;
	expect_ok(rename(P("ver.new"), P("ver")), "replace it by rename");
	expect_fd_content(fd, "old content", 11,
			  "open fd still reads the old content after the rename");
	expect_content(P("ver"), "new", 3, "a new open reads the new content");
	expect_ok(close(fd), "close returns 0");

	fd = open(P("ver"), O_RDONLY);
	if (!expect_ok(fd, "open for reading before unlink"))
		return;
	expect_ok(unlink(P("ver")), "unlink while open");
	expect_fd_content(fd, "new", 3, "open fd still reads after unlink");
	expect_ok(close(fd), "close of an unlinked file returns 0");

	/* a reader opened during an uncommitted write sees the committed version */
	if (!put_file(P("pending"), "committed", 9))
		return;
	fw = open(P("pending"), O_WRONLY | O_TRUNC);
	if (!expect_ok(fw, "open for writing (O_TRUNC)"))
		return;
	expect_long(write(fw, "uncommitted!", 12), 12, "write, not yet closed");
	fd = open(P("pending"), O_RDONLY);
	if (expect_ok(fd, "open a reader while the write is pending")) {
		expect_fd_content(fd, "committed", 9,
				  "the reader sees the last committed version");
		close(fd);
	}
	expect_ok(close(fw), "close (commit) returns 0");
	expect_content(P("pending"), "uncommitted!", 12,
		       "after close the new version is visible");
}

static void check_readdir(void)
{
	static const char *const names[] = { "zeta", "Alpha", "beta", "_under",
		"0digit", "beta2", "~tilde" };
	const size_t n = sizeof(names) / sizeof(names[0]);
	char *got[64];
	size_t ngot = 0, i;
	bool found[sizeof(names) / sizeof(names[0])] = { false };
	bool sorted = true;
	struct dirent *de;
	DIR *d;

	mkdir(P("ls"), 0755);
	for (i = 0; i < n; i++) {
		char rel[64];

		snprintf(rel, sizeof(rel), "ls/%s", names[i]);
		put_file(P(rel), names[i], strlen(names[i]));
	}
	d = opendir(P("ls"));
	if (!d) {
		report(false, "opendir", "%s", strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (ngot < 64)
			got[ngot++] = strdup(de->d_name);
		for (i = 0; i < n; i++)
			if (!strcmp(de->d_name, names[i]))
				found[i] = true;
	}
	closedir(d);
	for (i = 0; i < n; i++)
		report(found[i], "readdir lists a created name", "missing \"%s\"",
		       names[i]);
	expect_long((long)ngot, (long)n, "readdir lists exactly the created names");
	for (i = 1; i < ngot; i++)
		if (strcmp(got[i - 1], got[i]) >= 0)
			sorted = false;
	report(sorted, "readdir returns names sorted bytewise",
	       "got them out of order");
	for (i = 0; i < ngot; i++)
		free(got[i]);
}

static void check_limits(void)
{
	char name[300];
	int fd;

	memset(name, 'n', 255);
	name[255] = '\0';
	fd = open(P(name), O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (expect_ok(fd, "create a 255-byte name"))
		expect_ok(close(fd), "close returns 0");
	memset(name, 'm', 256);
	name[256] = '\0';
	expect_err(open(P(name), O_WRONLY | O_CREAT, 0644), ENAMETOOLONG,
		   "create a 256-byte name -> ENAMETOOLONG");
	expect_err(mkdir(P(name), 0755), ENAMETOOLONG,
		   "mkdir a 256-byte name -> ENAMETOOLONG");

	if (expect_ok(symlink("target", P("symlink")), "symlink")) {
		char t[16];
		ssize_t n = readlink(P("symlink"), t, sizeof(t));
		expect_ok(n == 6 && !memcmp(t, "target", 6) ? 0 : -1,
			  "readlink gives the target back");
		struct stat st;
		expect_ok(lstat(P("symlink"), &st) == 0 && S_ISLNK(st.st_mode) &&
			  st.st_size == 6 ? 0 : -1,
			  "lstat: a link of the target's length");
		expect_err(symlink("other", P("symlink")), EEXIST,
			   "symlink over a name -> EEXIST");
	}
	put_file(P("linksrc"), "l", 1);
	expect_err(link(P("linksrc"), P("hardlink")), EPERM, "link -> EPERM");
	expect_err(mknod(P("fifo"), S_IFIFO | 0644, 0), EPERM, "mknod(S_IFIFO) -> EPERM");

	/* over the item size limit: EFBIG from ftruncate (or at the latest from
	 * close), and the item keeps its previous content */
	if (!put_file(P("big"), "previous", 8))
		return;
	fd = open(P("big"), O_RDWR);
	if (expect_ok(fd, "open an item to grow it past the limit")) {
		int rc = ftruncate(fd, MAX_ITEM_BYTES + 1);
		int e = errno;
		int rc2 = close(fd);
		int e2 = errno;

		report((rc < 0 && e == EFBIG) || (rc == 0 && rc2 < 0 && e2 == EFBIG),
		       "growing an item past 16 MiB -> EFBIG (ftruncate or close)",
		       "ftruncate %s, close %s", rc < 0 ? strerror(e) : "ok",
		       rc2 < 0 ? strerror(e2) : "ok");
		expect_content(P("big"), "previous", 8,
			       "the item keeps its previous content after EFBIG");
	}
}

static void check_times_statfs(void)
{
	struct timespec ts[2] = { { 1000000000, 123456789 }, { 1234567890, 987654321 } };
	struct statvfs sv;
	struct stat st;

	put_file(P("times"), "t", 1);
	expect_ok(utimensat(AT_FDCWD, P("times"), ts, 0), "utimensat with nanoseconds");
	if (stat(P("times"), &st) == 0) {
		report(st.st_mtim.tv_sec == ts[1].tv_sec &&
		       st.st_mtim.tv_nsec == ts[1].tv_nsec,
		       "mtime is stored with nanoseconds", "got %lld.%09ld",
		       (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
		report(st.st_atim.tv_sec == ts[0].tv_sec &&
		       st.st_atim.tv_nsec == ts[0].tv_nsec,
		       "atime is stored with nanoseconds", "got %lld.%09ld",
		       (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec);
	}
	expect_ok(chmod(P("times"), 0604), "chmod");
	if (stat(P("times"), &st) == 0)
		expect_long((long)(st.st_mode & 07777), 0604, "chmod is stored");
	if (geteuid() == 0) {
		expect_ok(chown(P("times"), 1234, 5678), "chown");
		if (stat(P("times"), &st) == 0) {
			expect_long((long)st.st_uid, 1234, "owner is stored");
			expect_long((long)st.st_gid, 5678, "group is stored");
		}
	}

	if (expect_ok(statvfs(base, &sv), "statvfs")) {
		report(sv.f_bsize > 0 && sv.f_blocks > 0 && sv.f_bavail <= sv.f_blocks,
		       "statvfs reports plausible sizes", "bsize %lu blocks %lu bavail %lu",
		       (unsigned long)sv.f_bsize, (unsigned long)sv.f_blocks,
		       (unsigned long)sv.f_bavail);
		expect_long((long)sv.f_namemax, 255, "statvfs f_namemax is 255");
	}
}

/* Remove the work directory (best effort; the suites use private mounts). */
/* A descriptor of a file whose name went away (unlink, rename over it)
 * still works on the file, as on a local filesystem: fstat gives nlink 0
 * and its attributes, fchmod, fchown, futimens and ftruncate change them,
 * fgetxattr reads them; the name stays gone. */
static void check_unlinked_open(void)
{
	const char *a = P("orphan"), *b = P("orphan-over"), *c = P("other");
	struct stat st;
	char val[64];

	if (!put_file(a, "content", 7) || !put_file(c, "new", 3))
		return;
	int fd = open(a, O_RDWR);
	if (!expect_ok(fd, "open a file to unlink"))
		return;
	int rfd = open(a, O_RDONLY);
	expect_ok(unlink(a), "unlink it while open");
	expect_ok(fstat(fd, &st), "fstat after unlink");
	expect_long(st.st_nlink, 0, "nlink 0 after unlink");
	expect_long(st.st_size, 7, "size kept after unlink");
	expect_ok(fchmod(fd, 0600), "fchmod after unlink");
	expect_ok(fchown(fd, getuid(), getgid()), "fchown after unlink");
	struct timespec ts[2] = { { 1000, 0 }, { 2000, 0 } };
	expect_ok(futimens(fd, ts), "futimens after unlink");
	expect_ok(ftruncate(fd, 3), "ftruncate after unlink");
	expect_ok(fstat(fd, &st), "fstat after the changes");
	expect_long(st.st_mode & 07777, 0600, "mode changed after unlink");
	expect_long(st.st_mtim.tv_sec, 2000, "mtime changed after unlink");
	expect_long(st.st_size, 3, "size changed after unlink");
	expect_ok(fsetxattr(fd, "user.t4dx.importance", "0.25", 4, 0),
		  "fsetxattr after unlink");
	ssize_t vn = fgetxattr(rfd, "user.t4dx.importance", val,
			       sizeof(val) - 1);
	if (expect_ok(vn, "fgetxattr after unlink")) {
		val[vn] = 0;
		expect_long(strtod(val, NULL) == 0.25, 1,
			    "fgetxattr gives what fsetxattr set");
	}
	expect_ok(fstat(rfd, &st), "fstat of a read descriptor after unlink");
	expect_long(st.st_nlink, 0, "nlink 0 on the read descriptor");
	close(rfd);
	expect_ok(close(fd), "close after unlink");
	expect_err(stat(a, &st), ENOENT, "the name stays gone");

	/* renamed over */
	if (!put_file(b, "old", 3))
		return;
	fd = open(b, O_RDONLY);
	if (!expect_ok(fd, "open a file to rename over"))
		return;
	expect_ok(rename(c, b), "rename over the open file");
	expect_ok(fstat(fd, &st), "fstat after rename over");
	expect_long(st.st_nlink, 0, "nlink 0 after rename over");
	expect_long(st.st_size, 3, "its own size after rename over");
	close(fd);
	expect_ok(stat(b, &st), "the new file has the name");
	expect_long(st.st_nlink, 1, "the new file's nlink");
	unlink(b);
}

/* mknod(2) of a regular file makes an empty file (Python's os.mknod);
 * a FIFO or a device node is not stored. */
static void check_mknod(void)
{
	struct stat st;
	const char *f = P("made-by-mknod"), *p = P("fifo");

	expect_ok(mknod(f, S_IFREG | 0640, 0), "mknod S_IFREG");
	expect_ok(stat(f, &st), "stat of the mknod file");
	expect_long(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0640, 1,
		    "regular, mode 0640");
	expect_long(st.st_size, 0, "empty");
	expect_err(mknod(f, S_IFREG | 0640, 0), EEXIST, "mknod over a name");
	expect_err(mknod(p, S_IFIFO | 0640, 0), EPERM, "mknod S_IFIFO");
	unlink(f);
}

static void remove_tree(const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *d;

	if (lstat(path, &st) != 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	d = opendir(path);
	if (d) {
		while ((de = readdir(d)) != NULL) {
			char sub[8192];

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			remove_tree(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s MOUNTDIR\n", argv[0]);
		return 2;
	}
	umask(022);
	snprintf(base, sizeof(base), "%s/items/syscalls.%ld", argv[1], (long)getpid());
	if (mkdir(base, 0755) != 0) {
		printf("not ok 1 - mkdir %s: %s\n1..1\n", base, strerror(errno));
		return 1;
	}

	check_create_write_read();
	check_missing();
	check_dirs();
	check_rename();
	check_open_versions();
	check_readdir();
	check_limits();
	check_times_statfs();
	check_unlinked_open();
	check_mknod();

	remove_tree(base);
	printf("1..%d\n", n_checks);
	if (n_failed)
		fprintf(stderr, "%d of %d checks failed\n", n_failed, n_checks);
	return n_failed ? 1 : 0;
}
