/*
 * t4dx - the t4dx command-line tool: look at a mounted store, check and
 * read a data directory offline, run compactions.  Links libt4dx (no
 * FUSE).  `t4dx help` lists the commands; each takes --help; tool.h says
 * what the exit codes mean.
 *
 * This file: the command table, option parsing, output helpers and
 * wal-dump.  status, compact and search (through a mount): online.c; verify, ls
 * and dump (a data directory, no daemon): offline.c.
 */
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "t4dx.h"
#include "tool.h"


static const struct command commands[];

static void print_usage(FILE *f);

static void command_help(const struct command *c, FILE *f)
{
	fprintf(f, "usage: t4dx %s %s\n\n%s", c->name, c->synopsis, c->help);
}

int usage_error(const struct command *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "t4dx: %s: ", c->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: t4dx %s %s\n(t4dx %s --help for more)\n",
		c->name, c->synopsis, c->name);
	return EXIT_CANNOT;
}

/* The message is one line with nothing a terminal would obey: it may
 * echo a path or a name from the command line or the store. */
int fail(const struct command *c, int code, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	fprintf(stderr, "t4dx: %s: ", c->name);
	print_escaped(stderr, msg, (size_t)n, false);
	fputc('\n', stderr);
	return code;
}

static bool allowed_opt(const char *allowed, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = allowed; *p;) {
		size_t k = strcspn(p, ",");
		if (k == n && !strncmp(p, name, n))
			return true;
		p += k;
		p += *p == ',';
	}
	return false;
}

int parse_opts(const struct command *c, const char *allowed, int *argc,
	       char **argv, struct opts *o)
{
	int n = 0;
	bool ended = false;
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < *argc; i++) {
		const char *a = argv[i];
		if (ended || a[0] != '-' || !a[1]) {
			argv[n++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--")) {
			ended = true;
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			command_help(c, stdout);
			exit(fflush(stdout) ? EXIT_CANNOT : 0);
		}
		const char *name = a[1] == '-' ? a + 2 : a + 1;
		if (a[1] != '-' && strlen(name) != 1)
			return usage_error(c, "unknown option '%s'", a);
		if (!allowed_opt(allowed, name) &&
		    !((!strcmp(name, "no-progress")) &&
		      allowed_opt(allowed, "progress")))
			return usage_error(c, "unknown option '%s'", a);
		if (!strcmp(name, "json"))
			o->json = true;
		else if (!strcmp(name, "force-readonly"))
			o->force_readonly = true;
		else if (!strcmp(name, "l"))
			o->long_list = true;
		else if (!strcmp(name, "archive"))
			o->archive = true;
		else if (!strcmp(name, "progress"))
			o->progress = 1;
		else if (!strcmp(name, "no-progress"))
			o->progress = -1;
	}
	*argc = n;
	return 0;
}

int slurp(const char *path, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *p = malloc(cap);
	if (!p)
		return ENOMEM;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(p);
		return e;
	}
	for (;;) {
		if (n + 1 >= cap) {
			char *q = realloc(p, cap * 2);
			if (!q) {
				free(p);
				close(fd);
				return ENOMEM;
			}
			p = q;
			cap *= 2;
		}
		ssize_t got = read(fd, p + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;
			free(p);
			close(fd);
			return e;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	p[n] = 0;
	*out = p;
	if (len)
		*len = n;
	return 0;
}

int print_json(struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o,
		JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
		JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s || puts(s) == EOF)
		return EXIT_CANNOT;
	return 0;
}

const char *human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

const char *human_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	if (!localtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "?");
	return buf;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_line(const char *what, uint64_t done, uint64_t total,
		   bool bytes, bool final)
{
	static double start, last;
	double now = mono_s();
	if (start == 0)
		start = now;
	if (final) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		return;
	}
	if (now - last < 0.1)
		return;
	last = now;
	int pct = total ? (int)(done * 100 / total) : 0;
	char bar[21], a[32], b[32], rate[32] = "", eta[32] = "";
	for (int i = 0; i < 20; i++)
		bar[i] = i < pct / 5 ? '#' : '.';
	bar[20] = 0;
	double el = now - start, r = el > 0 ? (double)done / el : 0;
	if (bytes) {
		human_bytes(done, a, sizeof(a));
		human_bytes(total, b, sizeof(b));
		if (r > 0) {
			human_bytes((uint64_t)r, rate, sizeof(rate));
			strcat(rate, "/s");
		}
	} else {
		snprintf(a, sizeof(a), "%llu", (unsigned long long)done);
		snprintf(b, sizeof(b), "%llu", (unsigned long long)total);
		if (r > 0)
			snprintf(rate, sizeof(rate), "%.0f/s", r);
	}
	if (r > 0 && total > done) {
		unsigned s = (unsigned)((double)(total - done) / r);
		snprintf(eta, sizeof(eta), "ETA %u:%02u", s / 60, s % 60);
	}
	fprintf(stderr, "\r\033[K%s [%s] %3d%% %s / %s %s %s", what, bar, pct,
		a, b, rate, eta);
	fflush(stderr);
}

/* The length of the UTF-8 sequence at s (n bytes left) if it is a valid
 * one of a printable character, else 0: a stray or overlong byte, a
 * surrogate, a C1 control (U+0080..U+009F, which terminals obey), or a
 * bidirectional control (U+061C, U+200E/F, U+202A..U+202E, U+2066..U+2069),
 * which makes a terminal show the text around it in another order: a
 * name could then pass for another one. */
static size_t utf8_printable(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	if (s[0] == 0xc2 && s[1] <= 0x9f)
		return 0;
	if ((s[0] == 0xd8 && s[1] == 0x9c) ||
	    (s[0] == 0xe2 && s[1] == 0x80 &&
	     (s[2] == 0x8e || s[2] == 0x8f || (s[2] >= 0xaa && s[2] <= 0xae))) ||
	    (s[0] == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9))
		return 0;
	return len;
}

void print_escaped(FILE *f, const char *s, size_t len, bool exact)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		unsigned char b = p[i];
		size_t n = b >= 0x80 ? utf8_printable(p + i, len - i) : 1;
		if (b == '\\' && exact)
			fputs("\\\\", f);
		else if (b == '\n')
			fputs("\\n", f);
		else if (b == '\t')
			fputs("\\t", f);
		else if (b < 0x20 || b == 0x7f || n == 0)
			fprintf(f, "\\x%02x", b);
		else
			fwrite(p + i, 1, n, f);
		i += n ? n : 1;
	}
}

bool want_progress(const struct opts *o)
{
	return o->progress > 0 || (o->progress == 0 && isatty(2));
}

/* Print the record as the line the WAL holds. */
static int dump_one(void *arg, const char *line, size_t len)
{
	if (fwrite(line, 1, len, stdout) != len)
		return errno ? errno : EIO;
	return 0;
}

static int cmd_wal_dump(const struct command *c, int argc, char **argv)
{
	struct opts o;
	int rc = parse_opts(c, "archive", &argc, argv, &o);
	if (rc)
		return rc;
	if (argc != 1)
		return usage_error(c, "expected DATA_DIR");
	const char *dir = argv[0];
	struct stat st;
	if (stat(dir, &st))
		return fail(c, EXIT_CANNOT, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(c, EXIT_CANNOT, "%s: not a directory", dir);
	char wal[PATH_MAX];
	if (snprintf(wal, sizeof(wal), "%s/wal", dir) >= (int)sizeof(wal))
		return fail(c, EXIT_CANNOT, "%s: path too long", dir);
	if (stat(wal, &st) || !S_ISDIR(st.st_mode))
		return fail(c, EXIT_CANNOT, "%s is not a t4dx data directory "
			    "(it has no wal/)", dir);
	bool archive = o.archive;
	struct t4dx_wal_damage dmg;
	rc = t4dx_wal_dump(wal, archive, dump_one, NULL, &dmg);
	if (fflush(stdout) && !rc)
		rc = errno ? errno : EIO;
	if (rc)
		return fail(c, EXIT_PROBLEMS, "%s: %s", dir, t4dx_strerror(rc));
	/* a hole between files: the records after it were printed, as a
	 * start replays them, but the log lost the ones in it */
	int gap = dmg.gap_to ? EXIT_PROBLEMS : 0;
	if (gap)
		fprintf(stderr, "t4dx: wal-dump: records %llu to %llu are "
			"missing (%llu records; a log file was removed?)\n",
			(unsigned long long)dmg.gap_from,
			(unsigned long long)dmg.gap_to,
			(unsigned long long)dmg.gap_records);
	if (*dmg.path && dmg.torn) {
		fprintf(stderr, "t4dx: wal-dump: note: %s: the last %llu bytes "
			"are the torn end of a write a crash cut short; a start "
			"cuts them\n", dmg.path, (unsigned long long)dmg.bytes);
		return gap;
	}
	if (*dmg.path) {
		/* what a start would cut or set aside: the log is damaged */
		char more[64] = "";
		if (dmg.files_skipped)
			snprintf(more, sizeof(more), "; %u later file(s) not "
				 "read", dmg.files_skipped);
		return fail(c, EXIT_PROBLEMS, "%s: damaged at byte %llu: %s "
			    "(%llu bytes not read%s)", dmg.path,
			    (unsigned long long)dmg.offset, dmg.what,
			    (unsigned long long)dmg.bytes, more);
	}
	return gap;
}

static int cmd_help(const struct command *c, int argc, char **argv)
{
	print_usage(stdout);
	return fflush(stdout) ? EXIT_CANNOT : 0;
}

static int cmd_version(const struct command *c, int argc, char **argv)
{
	puts("t4dx " PACKAGE_VERSION);
	return fflush(stdout) ? EXIT_CANNOT : 0;
}

static const struct command commands[] = {
	{ "status", "[--json] MOUNT",
	  "Show the state of the t4dx store mounted at MOUNT on one screen:\n"
	  "health, degradation level, breaker, queue, items, segments, WAL,\n"
	  "the last compaction of each kind and the recent alerts (read from\n"
	  "MOUNT/.ctl/).\n\n"
	  "  --json   one JSON object with the control files' contents\n\n"
	  "Exit status: 0 healthy, 1 degraded or failing, 2 not a t4dx mount.\n",
	  cmd_status },
	{ "verify", "[--json] [--force-readonly] [--progress|--no-progress] "
		    "DATA_DIR",
	  "Check everything in DATA_DIR without changing it: the MANIFEST,\n"
	  "every block of every segment, every WAL record (CRC and LSN order,\n"
	  "archive too), and this store's rescue files.  Each problem is one\n"
	  "line: FILE: offset N: what is wrong; a damaged vector index file is\n"
	  "a note (the daemon rebuilds it).  A progress bar goes to stderr\n"
	  "when it is a terminal.\n\n"
	  "  --json            one JSON object with the findings\n"
	  "  --force-readonly  check even while a daemon holds DATA_DIR\n"
	  "                    (its work in progress may show as damage)\n"
	  "  --progress        show the progress bar even without a terminal\n"
	  "  --no-progress     never show it\n\n"
	  "Exit status: 0 no damage, 1 damage found, 2 cannot check (no such\n"
	  "directory, not a t4dx data directory, held by a daemon).\n",
	  cmd_verify },
	{ "compact", "[--json] [--progress|--no-progress] MOUNT "
		     "flush|nrem|prune|rem",
	  "Run a compaction of the store mounted at MOUNT (through\n"
	  "MOUNT/.ctl/compact) and show its progress until it ends:\n"
	  "  flush  write the memtable to a new segment\n"
	  "  nrem   merge all segments into one, raising kappa\n"
	  "  prune  merge, dropping weak old memories\n"
	  "  rem    prototypes (needs vectors: not available yet)\n\n"
	  "  --json         print the run's result as JSON\n"
	  "  --progress     the progress line even when stderr is not a\n"
	  "                 terminal\n"
	  "  --no-progress  no progress line on stderr\n\n"
	  "Exit status: 0 the run succeeded, 1 it failed (or another run is\n"
	  "under way), 2 usage error or not a t4dx mount.\n",
	  cmd_compact },
	{ "sync", "MOUNT",
	  "Wait until every change made so far in the store mounted at MOUNT\n"
	  "is durable (an fsync of MOUNT/items/).  `sync` and `sync -f` do not\n"
	  "reach t4dx: the kernel sends FUSE mounts no syncfs.  Needed after a\n"
	  "load in durability mode fsync, and for chmod, chown, touch and\n"
	  "setfattr, which do not wait.\n\n"
	  "Exit status: 0 durable, 1 a commit failed (the changes wait in\n"
	  "memory: see t4dx status), 2 usage error or not a t4dx mount.\n",
	  cmd_sync },
	{ "search", "[--json] [-k N] MOUNT TEXT",
	  "Find the memories of the store mounted at MOUNT nearest TEXT in\n"
	  "meaning (through MOUNT/search/, which embeds TEXT as it embeds\n"
	  "contents), best first: rank, score (cosine similarity), path\n"
	  "under items/ and the first line of the item.  TEXT @ID (an item's\n"
	  "32-hex id) finds the items most like that item.\n\n"
	  "  -k N    at most N results (1..1000, default 10)\n"
	  "  --json  the query's results.json: {\"partial\": bool, \"results\":\n"
	  "          [{rank, path, id, score, kappa, importance, type}]}\n"
	  "  --      the end of the options: a TEXT that starts with '-' follows\n\n"
	  "Exit status: 0 searched (even with no result), 1 the search failed\n"
	  "(no item has that id, the store cannot be read), 2 usage error or\n"
	  "not a t4dx mount.\n",
	  cmd_search },
	{ "ls", "[--json] [-l] [--force-readonly] DATA_DIR [DIR]",
	  "List DIR (a path under items/, default its top) of the store in\n"
	  "DATA_DIR without mounting it, one name a line, directories with a\n"
	  "trailing '/'.  Nothing in DATA_DIR changes; WAL records not yet in\n"
	  "a segment are included.\n\n"
	  "  -l                mode, size, modification time and name\n"
	  "  --json            a JSON array of the entries\n"
	  "  --force-readonly  read even while a daemon holds DATA_DIR\n\n"
	  "Exit status: 0 listed, 1 DIR does not exist, 2 cannot read\n"
	  "DATA_DIR (not a store, held by a daemon...).\n",
	  cmd_ls },
	{ "dump", "[--json] [--force-readonly] DATA_DIR PATH",
	  "Write the content of the item PATH (a path under items/) of the\n"
	  "store in DATA_DIR to stdout, without mounting it.  Nothing in\n"
	  "DATA_DIR changes.\n\n"
	  "  --json            one JSON object: the item's attributes and its\n"
	  "                    content (\"content\" when it is UTF-8 text, else\n"
	  "                    \"content_base64\")\n"
	  "  --force-readonly  read even while a daemon holds DATA_DIR\n\n"
	  "Exit status: 0 written, 1 PATH does not exist or is a directory,\n"
	  "2 cannot read DATA_DIR.\n",
	  cmd_dump },
	{ "wal-dump", "[--archive] DATA_DIR",
	  "Print every valid WAL record of DATA_DIR as the JSON line it is, in\n"
	  "LSN order; with --archive, the archived files too.  Damage (what a\n"
	  "start would cut) is named on stderr.\n\n"
	  "Exit status: 0 no damage, 1 damage or a read error, 2 usage error\n"
	  "or not a t4dx data directory.\n",
	  cmd_wal_dump },
	{ "help", "", "Show the list of commands.\n", cmd_help },
	{ "version", "", "Show the version (also --version).\n", cmd_version },
	{ NULL, NULL, NULL, NULL },
};

static void print_usage(FILE *f)
{
	fputs("usage: t4dx COMMAND [OPTIONS] ARGS\n\ncommands:\n", f);
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %-9s %s\n", c->name, c->synopsis);
	fputs("\nt4dx COMMAND --help describes a command.  Exit status: 0 fine,"
	      "\n1 problems found, 2 usage error or cannot run.\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_usage(stderr);
		return EXIT_CANNOT;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V"))
		cmd = "version";
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
		cmd = "help";
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(cmd, c->name)) {
			int rc = c->run(c, argc - 2, argv + 2);
			/* output that did not get out: the command could
			 * not do its work (2), whatever it found */
			if (fflush(stdout) || ferror(stdout))
				rc = fail(c, EXIT_CANNOT, "write error: %s",
					  strerror(errno ? errno : EIO));
			return rc;
		}
	fprintf(stderr, "t4dx: unknown command '%s'\n", cmd);
	print_usage(stderr);
	return EXIT_CANNOT;
}
