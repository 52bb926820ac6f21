/* faults.c - see faults.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faults.h"
#include "io.h"

struct fault {
	unsigned calls, nth;
	int err, sticky, armed;
	size_t short_bytes;
	int is_short;
};
static struct fault f[FAULT_NOPS];

static int hit(enum fault_op op)
{
	struct fault *x = &f[op];
	x->calls++;
	if (!x->armed)
		return 0;
	if (x->calls == x->nth || (x->sticky && x->calls > x->nth))
		return 1;
	return 0;
}

static ssize_t f_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (hit(FAULT_PWRITE)) {
		if (f[FAULT_PWRITE].is_short) {
			size_t n = f[FAULT_PWRITE].short_bytes;
			if (n > len)
				n = len;
			if (n && pwrite(fd, buf, n, off) < 0)
				return -1;
			/* The next call (the caller retrying the rest, as
			 * t4dx_io_pwrite_all does) fails with err. */
			f[FAULT_PWRITE].is_short = 0;
			f[FAULT_PWRITE].nth = f[FAULT_PWRITE].calls + 1;
			f[FAULT_PWRITE].sticky = 0;
			if (n)
				return (ssize_t)n;
			f[FAULT_PWRITE].armed = 0;
		}
		errno = f[FAULT_PWRITE].err;
		return -1;
	}
	return pwrite(fd, buf, len, off);
}

#define SIMPLE(name, op, call, proto, args) \
	static int name proto { if (hit(op)) { errno = f[op].err; return -1; } return call args; }
SIMPLE(f_fsync, FAULT_FSYNC, fsync, (int fd), (fd))
SIMPLE(f_fdatasync, FAULT_FDATASYNC, fdatasync, (int fd), (fd))
SIMPLE(f_ftruncate, FAULT_FTRUNCATE, ftruncate, (int fd, off_t l), (fd, l))
SIMPLE(f_rename, FAULT_RENAME, rename, (const char *a, const char *b), (a, b))

static int (*real_open)(const char *, int, mode_t);
static int f_open(const char *p, int fl, mode_t m)
{
	if (hit(FAULT_OPEN)) {
		errno = f[FAULT_OPEN].err;
		return -1;
	}
	return real_open(p, fl, m);
}

static void install(void)
{
	if (!real_open) {
		t4dx_io_reset();
		real_open = t4dx_io.open;
	}
	t4dx_io.pwrite = f_pwrite;
	t4dx_io.fsync = f_fsync;
	t4dx_io.fdatasync = f_fdatasync;
	t4dx_io.ftruncate = f_ftruncate;
	t4dx_io.rename = f_rename;
	t4dx_io.open = f_open;
}

void faults_arm(enum fault_op op, unsigned nth, int err, int sticky)
{
	install();
	f[op] = (struct fault){ .nth = nth, .err = err, .sticky = sticky,
				.armed = 1 };
}

void faults_arm_short_write(unsigned nth, size_t short_bytes, int err)
{
	install();
	f[FAULT_PWRITE] = (struct fault){ .nth = nth, .err = err, .armed = 1,
					  .is_short = 1,
					  .short_bytes = short_bytes };
}

void faults_count(void)
{
	install();
}

unsigned faults_calls(enum fault_op op)
{
	return f[op].calls;
}

void faults_reset(void)
{
	memset(f, 0, sizeof(f));
	t4dx_io_reset();
	real_open = NULL;
}

const char *unit_tmpdir(const char *tag)
{
	static char path[PATH_MAX];
	const char *base = getenv("TMPDIR");
	snprintf(path, sizeof(path), "%s/t4dx-%s-XXXXXX", base ? base : "/tmp",
		 tag);
	if (!mkdtemp(path)) {
		perror("mkdtemp");
		exit(1);
	}
	return path;
}

void unit_rm_rf(const char *path)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", path);
}
