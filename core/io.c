/* io.c - the I/O table (see io.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <stdio.h>
#include <unistd.h>

#include "io.h"
#include "t4dx.h"

static int sys_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags | O_CLOEXEC, mode);
}

static int sys_linked(int fd, const char *path)
{
	struct stat a, b;
	if (fstat(fd, &a))
		return errno;
	if (a.st_nlink == 0)
		return ESTALE;
	if (stat(path, &b))
		return errno == ENOENT || errno == ENOTDIR ? ESTALE : errno;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino ? 0 : ESTALE;
}

static const struct t4dx_io io_defaults = {
	.open = sys_open,
	.close = close,
	.pread = pread,
	.pwrite = pwrite,
	.pad = pwrite,
	.fsync = fsync,
	.fdatasync = fdatasync,
	.ftruncate = ftruncate,
	.rename = rename,
	.unlink = unlink,
	.mkdir = mkdir,
	.linked = sys_linked,
};

struct t4dx_io t4dx_io = io_defaults;

void t4dx_io_reset(void)
{
	t4dx_io = io_defaults;
}

int t4dx_io_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t n = t4dx_io.pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno ? errno : EIO;
		}
		if (n == 0)
			return ENOSPC;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int t4dx_io_pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	while (len) {
		ssize_t n = t4dx_io.pread(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno ? errno : EIO;
		}
		if (n == 0)
			return T4DX_ECORRUPT;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int t4dx_io_fsync_dir(const char *path)
{
	int fd = t4dx_io.open(path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return errno;
	int rc = t4dx_io.fsync(fd) ? errno : 0;
	t4dx_io.close(fd);
	return rc;
}

int t4dx_io_write_durably(const char *dir, const char *name, const void *p,
			  size_t len, bool *installed)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	if (installed)
		*installed = false;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		return ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* a fresh file of our own, never one planted under the name in a
	 * shared directory (a link, or someone else's file) */
	t4dx_io.unlink(tmp);
	int fd = t4dx_io.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
			      0600);
	if (fd < 0)
		return errno;
	int rc = t4dx_io_pwrite_all(fd, p, len, 0);
	if (!rc && t4dx_io.fsync(fd))   /* a new file: its size too */
		rc = errno;
	t4dx_io.close(fd);
	if (!rc && t4dx_io.rename(tmp, path))
		rc = errno;
	if (!rc) {
		if (installed)
			*installed = true;
		return t4dx_io_fsync_dir(dir);
	}
	t4dx_io.unlink(tmp);
	return rc;
}

int t4dx_io_make_dir(const char *path, bool *made)
{
	if (made)
		*made = false;
	if (t4dx_io.mkdir(path, 0700) == 0) {
		if (made)
			*made = true;
		return 0;
	}
	if (errno != EEXIST)
		return errno;
	struct stat st;
	if (stat(path, &st))
		return errno;
	return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

void t4dx_io_quarantine_name(char *out, size_t n, const char *qdir,
			     const char *base, int k)
{
	if (k == 0)
		snprintf(out, n, "%s/%s", qdir, base);
	else
		snprintf(out, n, "%s/%s.%d", qdir, base, k);
}

int t4dx_io_quarantine(const char *path, const char *qdir, const char *base,
		       char *to, size_t tolen)
{
	for (int k = 0; k < 10000; k++) {
		t4dx_io_quarantine_name(to, tolen, qdir, base, k);
		struct stat st;
		if (lstat(to, &st) == 0)
			continue;
		if (errno != ENOENT)
			return errno;
		return t4dx_io.rename(path, to) ? errno : 0;
	}
	return EEXIST;
}

int t4dx_io_lock_shared(const char *dir, int *fd, char *msg, size_t msglen)
{
	char path[PATH_MAX], pid[32] = "";
	snprintf(path, sizeof(path), "%s/LOCK", dir);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return 0;       /* a copy without one, or not ours: the reads
				   that follow say what is wrong */
	if (flock(*fd, LOCK_SH | LOCK_NB) == 0)
		return 0;
	int rc = errno;
	if (rc != EWOULDBLOCK) {
		snprintf(msg, msglen, "cannot lock %s: %s", path, strerror(rc));
	} else {
		ssize_t n = pread(*fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, " \n")] = 0;    /* "PID" or "PID closing" */
		snprintf(msg, msglen, "%s is in use by process %s (it holds "
			 "%s)", dir, *pid ? pid : "(unknown)", path);
		rc = T4DX_ELOCKED;
	}
	close(*fd);
	*fd = -1;
	return rc;
}

int t4dx_io_check_store(const char *dir, char *msg, size_t msglen)
{
	struct stat st;
	int rc = stat(dir, &st) ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	if (!rc && access(dir, R_OK | X_OK))
		rc = errno;
	if (rc) {
		snprintf(msg, msglen, "%s: %s", dir, strerror(rc));
		return rc;
	}
	/* a part of it we may not read is not a missing part */
	static const char *const parts[] = { "wal", "seg", "MANIFEST" };
	for (int i = 0; i < 3; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, parts[i]);
		if (access(path, F_OK) == 0 &&
		    access(path, R_OK | (i < 2 ? X_OK : 0))) {
			rc = errno;
			snprintf(msg, msglen, "cannot read %s: %s", path,
				 strerror(rc));
			return rc;
		}
	}
	if (!t4dx_io_is_store(dir)) {
		snprintf(msg, msglen, "%s is not a t4dx data directory (it has "
			 "neither wal/ nor MANIFEST)", dir);
		return T4DX_EFORMAT;
	}
	return 0;
}

bool t4dx_io_is_store(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/wal", dir);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return true;
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
