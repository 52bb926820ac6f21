/*
 * cmdline.c - the command line of t4dxfs: DATA_DIR, MOUNTPOINT, -f, -h,
 * -V and the -o lists, parsed with libfuse's fuse_opt_parse; the options
 * that are not t4dxfs's own are kept, escaped, for FUSE.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: t4dxfs [-f] [-o opt[,opt...]] DATA_DIR MOUNTPOINT\n"
		"\n"
		"Mount the t4dx store in DATA_DIR at MOUNTPOINT.\n"
		"  -f            stay in the foreground (log to stderr)\n"
		"  -o config=FILE  configuration (JSON, see README)\n"
		"  -o create     make DATA_DIR (mode 0700) if it does not exist\n"
		"  -o durability=close|fsync  when changes are durable: at\n"
		"                close (default), or at fsync and within\n"
		"                wal.commit_interval_ms (README Durability)\n"
		"  -o opt,...    FUSE mount options (allow_other, ...)\n"
		"  -h, --help    this text\n"
		"  -V, --version print the version\n"
		"Without -f, t4dxfs returns once the mount is ready.\n"
		"Unmount with: fusermount3 -u MOUNTPOINT\n");
}


enum { KEY_FOREGROUND, KEY_HELP, KEY_VERSION, KEY_NAME, KEY_MAX_READ };

#define CMDLINE_OPT(t, field, value) \
	{ t, offsetof(struct cmdline, field), value }

static const struct fuse_opt cmdline_opts[] = {
	/* given twice, the last counts (fuse_opt frees the earlier one) */
	CMDLINE_OPT("config=%s", config, 0),
	CMDLINE_OPT("create", create, 1),
	CMDLINE_OPT("durability=%s", durability, 0),
	/* the mount's name and type are t4dxfs's: fsname=t4dx:DATA_DIR
	 * tells which store is mounted, subtype=t4dxfs that it is one */
	FUSE_OPT_KEY("fsname=", KEY_NAME),
	FUSE_OPT_KEY("subtype=", KEY_NAME),
	/* libfuse 3.14 then wants init() to ask for the same limit, or it
	 * ends the session after the mount is made: refused before it */
	FUSE_OPT_KEY("max_read=", KEY_MAX_READ),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

/* fuse_opt_parse's callback: what is not in cmdline_opts.  Returns 1 to
 * keep arg for FUSE (a mount option), 0 to drop it, -1 to stop. */
static int cmdline_arg(void *data, const char *arg, int key,
		       struct fuse_args *outargs)
{
	struct cmdline *c = data;
	switch (key) {
	case KEY_FOREGROUND:
		c->foreground = 1;
		return 0;
	case KEY_HELP:
		usage(stdout);
		exit(0);
	case KEY_VERSION:
		printf("t4dxfs %s\n", PACKAGE_VERSION);
		exit(0);
	case KEY_NAME:
		fprintf(stderr, "t4dxfs: -o %.*s is not yours to set: t4dxfs "
			"names its mounts fsname=t4dx:DATA_DIR, subtype=t4dxfs "
			"(mount tables and t4dxfs itself tell t4dx mounts by "
			"them)\n", (int)strcspn(arg, "="), arg);
		c->bad = true;
		return -1;
	case KEY_MAX_READ:
		fprintf(stderr, "t4dxfs: -o max_read is not supported: reads "
			"are sized by the kernel and t4dxfs\n");
		c->bad = true;
		return -1;
	case FUSE_OPT_KEY_OPT:
		if (arg[0] == '-' && arg[1]) {
			fprintf(stderr, "t4dxfs: unknown option %s\n", arg);
			c->bad = true;
			return -1;
		}
		if (arg[0] != '-') {
			/* one option of a -o list: FUSE's */
			if ((c->fuse_opts.len &&
			     t4dx_buf_add(&c->fuse_opts, ",", 1)) ||
			    t4dx_buf_add(&c->fuse_opts, arg, strlen(arg)))
				return -1;
			return 1;
		}
		/* "-" alone names a file */
		/* fall through */
	case FUSE_OPT_KEY_NONOPT:
		if (!c->data) {
			c->data = arg;
		} else if (!c->mnt) {
			c->mnt = arg;
		} else {
			fprintf(stderr, "t4dxfs: unexpected argument %s\n",
				arg);
			c->bad = true;
			return -1;
		}
		return 0;
	}
	return 1;
}

/* See cmdline.h. */
int octal_escape(const char *s)
{
	if (s[0] != '\\' || s[1] < '0' || s[1] > '3' || s[2] < '0' ||
	    s[2] > '7' || s[3] < '0' || s[3] > '7')
		return -1;
	return (s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0');
}

/* The first character of the -o element at s as fuse_opt reads it: a
 * backslash escapes the next character, or starts three octal digits. */
static char opt_first(const char *s)
{
	int o = octal_escape(s);
	if (o >= 0)
		return (char)o;
	return s[0] == '\\' && s[1] ? s[1] : s[0];
}

/* One -o list: fuse_opt_parse matches each of its elements against every
 * template, so "-o ro,-f" would act as -f (an fstab line holding -f would
 * keep mount(8) waiting for a daemon that never detaches), and an empty
 * element ("ro,,x") would reach FUSE as a bad option without a name.
 * Refuse both, naming them.  Elements are split as fuse_opt splits them. */
static int check_opt_list(const char *list)
{
	const char *p = list;
	for (;;) {
		const char *start = p;
		while (*p && *p != ',')
			p += p[0] == '\\' && p[1] ? 2 : 1;
		if (p == start) {
			fprintf(stderr, "t4dxfs: -o '%s': an empty option (two "
				"commas in a row, or one at an end)\n", list);
			return EINVAL;
		}
		if (opt_first(start) == '-') {
			fprintf(stderr, "t4dxfs: -o '%s': %.*s is not a mount "
				"option; give -f, -h or -V on their own, outside "
				"-o\n", list, (int)(p - start), start);
			return EINVAL;
		}
		if (!*p)
			return 0;
		p++;
	}
}

/* Every -o list of the command line (-o LIST and -oLIST, up to "--"). */
static int check_opt_lists(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *list;
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-o")) {
			if (i + 1 == argc) {
				fprintf(stderr, "t4dxfs: -o needs an argument\n");
				return EINVAL;
			}
			list = argv[++i];
		} else if (!strncmp(argv[i], "-o", 2)) {
			list = argv[i] + 2;
		} else {
			continue;
		}
		if (check_opt_list(list))
			return EINVAL;
	}
	return 0;
}

int parse_cmdline(int argc, char **argv, struct cmdline *c)
{
	memset(c, 0, sizeof(*c));
	if (check_opt_lists(argc, argv))
		return EINVAL;
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	int rc = fuse_opt_parse(&args, c, cmdline_opts, cmdline_arg);
	/* args now holds argv[0] and FUSE's -o list, if any */
	c->fuse_args = args;
	if (rc) {
		if (!c->bad)
			fprintf(stderr, "t4dxfs: cannot read the command line\n");
		return EINVAL;
	}
	if (c->config && (!*c->config || strlen(c->config) >= PATH_MAX)) {
		fprintf(stderr, *c->config ? "t4dxfs: config path too long\n"
			: "t4dxfs: -o config= needs a file name\n");
		return EINVAL;
	}
	if (c->durability && strcmp(c->durability, "close") &&
	    strcmp(c->durability, "fsync")) {
		fprintf(stderr, "t4dxfs: -o durability=%s: give close or "
			"fsync\n", c->durability);
		return EINVAL;
	}
	if (!c->data || !c->mnt) {
		usage(stderr);
		return EINVAL;
	}
	return t4dx_buf_add(&c->fuse_opts, "", 1);
}

void cmdline_free(struct cmdline *c)
{
	fuse_opt_free_args(&c->fuse_args);
	t4dx_buf_free(&c->fuse_opts);
	free(c->config);
	free(c->durability);
}
