/*
 * t4dx - the t4dx command-line tool.  Links libt4dx only (no FUSE).
 *
 *   t4dx --version                       print the version
 *   t4dx help                            print the usage
 *   t4dx wal-dump DATA_DIR [--archive]   print every valid WAL record, one
 *                                        JSON line each, in LSN order
 *
 * Exit status: 0 success, 1 failure (for wal-dump also: the log is
 * damaged; the valid records before the damage are printed, the damage
 * is named on stderr), 2 usage error.
 */
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "rec.h"
#include "wal.h"

static void usage(FILE *f)
{
	fputs("usage: t4dx COMMAND [ARGS]\n"
	      "\n"
	      "commands:\n"
	      "  wal-dump DATA_DIR [--archive]  print every valid WAL record as one\n"
	      "                                 JSON line, in LSN order (with\n"
	      "                                 --archive, archived files too)\n"
	      "  help                           show this help\n"
	      "  --version                      show the version\n", f);
}

struct dump {
	struct t4dx_buf line;
	uint64_t records;
};

/* Print the record as the line the WAL holds (encoding is
 * deterministic, so re-encoding gives back the stored line). */
static int dump_one(void *arg, struct t4dx_rec *r)
{
	struct dump *d = arg;
	d->line.len = 0;
	int rc = t4dx_rec_encode(r, &d->line);
	if (rc)
		return rc;
	if (fwrite(d->line.p, 1, d->line.len, stdout) != d->line.len)
		return errno ? errno : EIO;
	d->records++;
	return 0;
}

static int cmd_wal_dump(int argc, char **argv)
{
	const char *dir = NULL;
	bool archive = false;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--archive"))
			archive = true;
		else if (!dir && argv[i][0] != '-')
			dir = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!dir) {
		usage(stderr);
		return 2;
	}
	struct stat st;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "t4dx: %s: %s\n", dir,
			errno ? strerror(errno) : "not a directory");
		return 1;
	}
	char wal[PATH_MAX];
	if (snprintf(wal, sizeof(wal), "%s/wal", dir) >= (int)sizeof(wal)) {
		fprintf(stderr, "t4dx: %s: path too long\n", dir);
		return 1;
	}
	struct dump d = { { 0 }, 0 };
	struct t4dx_wal_damage dmg;
	int rc = t4dx_wal_read_all_damage(wal, archive, dump_one, &d, &dmg);
	t4dx_buf_free(&d.line);
	if (fflush(stdout) && !rc)
		rc = errno ? errno : EIO;
	if (rc) {
		fprintf(stderr, "t4dx: wal-dump %s: %s\n", dir,
			t4dx_strerror(rc));
		return 1;
	}
	if (*dmg.path) {
		/* what a start would cut or set aside: the log is damaged */
		fprintf(stderr, "t4dx: wal-dump: %s: damaged at byte %llu "
			"(%llu bytes not read)", dmg.path,
			(unsigned long long)dmg.offset,
			(unsigned long long)dmg.bytes);
		if (dmg.files_skipped)
			fprintf(stderr, "; %u later file(s) not read",
				dmg.files_skipped);
		fprintf(stderr, "\n");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		puts("t4dx " PACKAGE_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "wal-dump"))
		return cmd_wal_dump(argc - 2, argv + 2);
	fprintf(stderr, "t4dx: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
