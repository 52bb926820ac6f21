/*
 * cmdline.h - the command line of t4dxfs (cmdline.c).
 */
#ifndef T4DXFS_CMDLINE_H
#define T4DXFS_CMDLINE_H

#include <stdbool.h>
#include <fuse_lowlevel.h>

#include "buf.h"

struct cmdline {
	int foreground;                 /* -f */
	const char *data, *mnt;
	char *config;                   /* -o config=FILE, or NULL */
	int create;                     /* -o create */
	char *durability;               /* -o durability=close|fsync, or
	                                   NULL (close) */
	/* the mount options for FUSE: argv[0] and a -o group of the
	 * options that are not ours (escaped by fuse_opt) */
	struct fuse_args fuse_args;
	/* the same options as given, comma-separated and NUL-terminated,
	 * for the message that refuses them */
	struct t4dx_buf fuse_opts;
	bool bad;                       /* an error was printed */
};

/* Parse argv into c (zeroed first); a message on stderr and EINVAL (or
 * ENOMEM) if it is wrong.  -h and -V print and exit.  cmdline_free(c)
 * afterwards in every case. */
int parse_cmdline(int argc, char **argv, struct cmdline *c);
void cmdline_free(struct cmdline *c);
/* The byte of the escape \ooo at s (a backslash and three octal digits,
 * as fuse_opt and /proc/self/mountinfo write them), or -1 if s is not
 * one. */
int octal_escape(const char *s);

#endif
