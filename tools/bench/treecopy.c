/*
 * treecopy.c - copy a tree the way `tar -x` lays it down, optionally
 * with an fdatasync per file: the "ext4 with fdatasync per file" baseline
 * of the bulk part of the benchmark (tools/bench/bulk.sh).  GNU tar has
 * no --fsync, and the point of that column is what a program that makes
 * every file durable before the next one pays on a local disk.
 *
 *     treecopy [-s] [-l LABEL] SRC DST
 *
 * The entries under SRC are made under DST (which must exist), depth
 * first in readdir order: directories (mkdir, then, once their content
 * is done, owner, mode and times), regular files (open O_CREAT|O_EXCL,
 * write in 128 KiB pieces, fchown, fchmod, futimens, with -s fdatasync,
 * close) and symbolic links (symlink, lchown, times with
 * AT_SYMLINK_NOFOLLOW).  Owners are set only when running as root (as
 * tar does).  Anything else (device nodes, FIFOs, sockets) is skipped and
 * counted.  One line on stdout at the end:
 *
 *     workload=treecopy label=L files=N symlinks=N dirs=N skipped=N
 *       bytes=N syncs=N errors=N seconds=S
 *
 * The exit status is 0 when the copy ran (errors, if any, counted and
 * told on stderr), 2 for a usage error, 1 when SRC or DST cannot be
 * opened.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define COPY_BUF (128 * 1024)

struct tc {
	bool sync;              /* fdatasync every regular file */
	bool root;              /* set owners */
	char *buf;
	uint64_t files, symlinks, dirs, skipped, bytes, syncs, errors;
};

/* One error: say where, count it, go on with the next entry. */
static void tc_err(struct tc *tc, const char *what, const char *path, int err)
{
	fprintf(stderr, "treecopy: %s %s: %s\n", what, path, strerror(err));
	tc->errors++;
}

/* The owner, mode and times of st onto the new entry name in dfd.  A
 * symlink has no mode of its own. */
static int set_meta(struct tc *tc, int dfd, const char *name,
		    const struct stat *st, const char *path)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	bool lnk = S_ISLNK(st->st_mode);

	if (tc->root && fchownat(dfd, name, st->st_uid, st->st_gid,
				 AT_SYMLINK_NOFOLLOW)) {
		tc_err(tc, "chown", path, errno);
		return -1;
	}
	if (!lnk && fchmodat(dfd, name, st->st_mode & 07777, 0)) {
		tc_err(tc, "chmod", path, errno);
		return -1;
	}
	if (utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW)) {
		tc_err(tc, "utimens", path, errno);
		return -1;
	}
	return 0;
}

/* A regular file: its content, then owner, mode and times on the open
 * descriptor, then (with -s) fdatasync before close, as a careful
 * extractor would. */
static void copy_file(struct tc *tc, int sfd, int dfd, const char *name,
		      const struct stat *st, const char *path)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	int in, out, err = 0;
	const char *what = "write";

	in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0) {
		tc_err(tc, "open", path, errno);
		return;
	}
	out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		     0600);
	if (out < 0) {
		tc_err(tc, "create", path, errno);
		close(in);
		return;
	}
	for (;;) {
		ssize_t n = read(in, tc->buf, COPY_BUF), off = 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			what = "read";
			break;
		}
		if (n == 0)
			break;
		while (off < n) {
			ssize_t w = write(out, tc->buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				err = errno;
				break;
			}
			off += w;
		}
		if (err)
			break;
		tc->bytes += (uint64_t)n;
	}
	if (!err && tc->root && fchown(out, st->st_uid, st->st_gid)) {
		err = errno;
		what = "chown";
	}
	if (!err && fchmod(out, st->st_mode & 07777)) {
		err = errno;
		what = "chmod";
	}
	if (!err && futimens(out, ts)) {
		err = errno;
		what = "utimens";
	}
	if (!err && tc->sync) {
		if (fdatasync(out)) {
			err = errno;
			what = "fdatasync";
		} else {
			tc->syncs++;
		}
	}
	/* close reports what a FUSE file system that commits at close
	 * could not commit */
	if (close(out) && !err) {
		err = errno;
		what = "close";
	}
	close(in);
	if (err)
		tc_err(tc, what, path, err);
	else
		tc->files++;
}

static void copy_link(struct tc *tc, int sfd, int dfd, const char *name,
		      const struct stat *st, const char *path)
{
	char target[PATH_MAX + 1];
	ssize_t n = readlinkat(sfd, name, target, sizeof(target) - 1);

	if (n < 0) {
		tc_err(tc, "readlink", path, errno);
		return;
	}
	target[n] = '\0';
	if (symlinkat(target, dfd, name)) {
		tc_err(tc, "symlink", path, errno);
		return;
	}
	if (set_meta(tc, dfd, name, st, path))
		return;
	tc->symlinks++;
	tc->bytes += (uint64_t)n;
}

static void copy_dir(struct tc *tc, int sfd, int dfd, const char *path);

/* A subdirectory: made, filled, and only then given its mode (it may
 * deny us writing into it) and times (filling it changes them). */
static void copy_subdir(struct tc *tc, int sfd, int dfd, const char *name,
			const struct stat *st, const char *path)
{
	int s, d;

	if (mkdirat(dfd, name, 0700)) {
		tc_err(tc, "mkdir", path, errno);
		return;
	}
	s = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s < 0) {
		tc_err(tc, "open", path, errno);
		return;
	}
	d = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0) {
		tc_err(tc, "open", path, errno);
		close(s);
		return;
	}
	copy_dir(tc, s, d, path);
	close(d);       /* copy_dir closed s with its DIR */
	if (!set_meta(tc, dfd, name, st, path))
		tc->dirs++;
}

/* Copy the entries of sfd into dfd; takes sfd over (closes it). */
static void copy_dir(struct tc *tc, int sfd, int dfd, const char *path)
{
	DIR *dir = fdopendir(sfd);
	struct dirent *de;

	if (!dir) {
		tc_err(tc, "opendir", path, errno);
		close(sfd);
		return;
	}
	for (;;) {
		struct stat st;
		char *sub;

		errno = 0;
		de = readdir(dir);
		if (!de) {
			if (errno)
				tc_err(tc, "readdir", path, errno);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (asprintf(&sub, "%s/%s", path, de->d_name) < 0) {
			tc_err(tc, "copy", path, ENOMEM);
			break;
		}
		if (fstatat(sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			tc_err(tc, "stat", sub, errno);
		else if (S_ISDIR(st.st_mode))
			copy_subdir(tc, sfd, dfd, de->d_name, &st, sub);
		else if (S_ISREG(st.st_mode))
			copy_file(tc, sfd, dfd, de->d_name, &st, sub);
		else if (S_ISLNK(st.st_mode))
			copy_link(tc, sfd, dfd, de->d_name, &st, sub);
		else
			tc->skipped++;
		free(sub);
	}
	closedir(dir);
}

static int usage(void)
{
	fprintf(stderr, "usage: treecopy [-s] [-l LABEL] SRC DST\n"
		"  copy the tree under SRC into the directory DST as tar -x "
		"would;\n  -s: fdatasync each regular file before its close\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct tc tc = { .root = geteuid() == 0 };
	const char *label = "-";
	struct timespec t0, t1;
	int c, sfd, dfd;

	while ((c = getopt(argc, argv, "sl:h")) != -1) {
		switch (c) {
		case 's':
			tc.sync = true;
			break;
		case 'l':
			label = optarg;
			break;
		default:
			return usage();
		}
	}
	if (argc - optind != 2)
		return usage();
	tc.buf = malloc(COPY_BUF);
	if (!tc.buf) {
		fprintf(stderr, "treecopy: out of memory\n");
		return 1;
	}
	sfd = open(argv[optind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		fprintf(stderr, "treecopy: %s: %s\n", argv[optind],
			strerror(errno));
		free(tc.buf);
		return 1;
	}
	dfd = open(argv[optind + 1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		fprintf(stderr, "treecopy: %s: %s\n", argv[optind + 1],
			strerror(errno));
		close(sfd);
		free(tc.buf);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	copy_dir(&tc, sfd, dfd, argv[optind]);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(dfd);
	free(tc.buf);
	printf("workload=treecopy label=%s files=%llu symlinks=%llu dirs=%llu "
	       "skipped=%llu bytes=%llu syncs=%llu errors=%llu seconds=%.6f\n",
	       label, (unsigned long long)tc.files,
	       (unsigned long long)tc.symlinks, (unsigned long long)tc.dirs,
	       (unsigned long long)tc.skipped, (unsigned long long)tc.bytes,
	       (unsigned long long)tc.syncs, (unsigned long long)tc.errors,
	       (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
