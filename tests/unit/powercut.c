/* powercut.c - see powercut.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "powercut.h"

#define MAXF 256

struct tracked {
	char path[PATH_MAX];
	int fd;                         /* -1 once closed */
	off_t cur, synced;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct tracked files[MAXF];
static int nfiles;
static int dead;

static struct tracked *by_fd(int fd)
{
	for (int i = nfiles; i-- > 0;)
		if (files[i].fd == fd)
			return &files[i];
	return NULL;
}

static int p_open(const char *path, int flags, mode_t mode)
{
	pthread_mutex_lock(&mu);
	int fd = -1;
	if (dead) {
		errno = EIO;
	} else if ((fd = open(path, flags | O_CLOEXEC, mode)) >= 0 &&
		   (flags & O_ACCMODE) != O_RDONLY && nfiles < MAXF) {
		struct stat st;
		struct tracked *t = &files[nfiles++];
		snprintf(t->path, sizeof(t->path), "%s", path);
		t->fd = fd;
		t->cur = t->synced = fstat(fd, &st) ? 0 : st.st_size;
	}
	pthread_mutex_unlock(&mu);
	return fd;
}

static ssize_t p_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	pthread_mutex_lock(&mu);
	ssize_t n = -1;
	if (dead) {
		errno = EIO;
	} else if ((n = pwrite(fd, buf, len, off)) > 0) {
		struct tracked *t = by_fd(fd);
		if (t && off + n > t->cur)
			t->cur = off + n;
	}
	pthread_mutex_unlock(&mu);
	return n;
}

static int sync_common(int fd, int (*fn)(int))
{
	/* a slow disk: the cut is likely to fall between a write and its
	 * sync, where the bytes it drops make the test meaningful */
	usleep(2000);
	pthread_mutex_lock(&mu);
	int rc = -1;
	if (dead) {
		errno = EIO;
	} else if ((rc = fn(fd)) == 0) {
		struct tracked *t = by_fd(fd);
		if (t)
			t->synced = t->cur;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

static int p_fsync(int fd)
{
	return sync_common(fd, fsync);
}

static int p_fdatasync(int fd)
{
	return sync_common(fd, fdatasync);
}

static int p_ftruncate(int fd, off_t len)
{
	pthread_mutex_lock(&mu);
	int rc = -1;
	if (dead) {
		errno = EIO;
	} else if ((rc = ftruncate(fd, len)) == 0) {
		struct tracked *t = by_fd(fd);
		if (t) {
			t->cur = len;
			if (t->synced > len)
				t->synced = len;
		}
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

static int p_close(int fd)
{
	pthread_mutex_lock(&mu);
	struct tracked *t = by_fd(fd);
	if (t)
		t->fd = -1;
	pthread_mutex_unlock(&mu);
	return close(fd);
}

void powercut_install(void)
{
	t4dx_io.open = p_open;
	t4dx_io.pwrite = p_pwrite;
	t4dx_io.fsync = p_fsync;
	t4dx_io.fdatasync = p_fdatasync;
	t4dx_io.ftruncate = p_ftruncate;
	t4dx_io.close = p_close;
}

long powercut_now(void)
{
	long dropped = 0;
	pthread_mutex_lock(&mu);
	dead = 1;
	for (int i = 0; i < nfiles; i++) {
		struct tracked *t = &files[i];
		struct stat st;
		if (stat(t->path, &st) || st.st_size <= t->synced)
			continue;
		if (truncate(t->path, t->synced) == 0)
			dropped += (long)(st.st_size - t->synced);
	}
	pthread_mutex_unlock(&mu);
	return dropped;
}
