/*
 * slowsync.c - a shared object that tests preload into t4dxfs
 * (LD_PRELOAD) to hold fdatasync() open for a while: while the file
 * named by $T4DX_SLOWSYNC exists, each fdatasync first creates
 * "$T4DX_SLOWSYNC.started", waits T4DX_SLOWSYNC_MS milliseconds (default
 * 1000), syncs, and then creates "$T4DX_SLOWSYNC.ended".  A test can so
 * check what a caller is told while a group commit is under way.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd);

static void mark(const char *flag, const char *suffix)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s.%s", flag, suffix) >=
	    (int)sizeof(path))
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	const char *flag = getenv("T4DX_SLOWSYNC");
	bool slow = flag && access(flag, F_OK) == 0;
	if (slow) {
		const char *ms = getenv("T4DX_SLOWSYNC_MS");
		long n = ms ? strtol(ms, NULL, 10) : 1000;
		struct timespec ts = { n / 1000, (n % 1000) * 1000000L };
		mark(flag, "started");
		while (nanosleep(&ts, &ts))
			;
	}
	int rc = real(fd);
	if (slow)
		mark(flag, "ended");
	return rc;
}
