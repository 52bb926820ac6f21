/*
 * tool.h - what the parts of the t4dx command-line tool share.
 *
 * Every command answers --help, writes one line to stderr for an error
 * ("t4dx: COMMAND: what is wrong") and exits with
 *   0  fine
 *   1  problems found (damage, a failed run, an unhealthy store, a
 *      missing item)
 *   2  usage error, or the command cannot run (no such directory, not a
 *      t4dx data directory or mount, a daemon holds the store)
 */
#ifndef T4DX_TOOL_H
#define T4DX_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EXIT_PROBLEMS 1
#define EXIT_CANNOT 2

struct json_object;

/* One command: name, the line of usage, the text of --help, the code. */
struct command {
	const char *name;
	const char *synopsis;
	const char *help;
	int (*run)(const struct command *c, int argc, char **argv);
};

/* The options a command takes, filled by parse_opts; the operands are
 * left in argv[0..*argc). */
struct opts {
	bool json, force_readonly, long_list, archive;
	int progress;                   /* -1 no, 0 if stderr is a tty, 1 yes */
};
/* Parse argv (after the command name) for the options named in allowed
 * ("json,force-readonly,l,progress,archive"); --help prints the
 * command's help and exits 0.  Returns 0, or 2 after a usage message. */
int parse_opts(const struct command *c, const char *allowed, int *argc,
	       char **argv, struct opts *o);
/* Print the usage of c to stderr and return 2. */
int usage_error(const struct command *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "t4dx: CMD: message" on stderr; returns code. */
int fail(const struct command *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Whole file into a NUL-terminated buffer: 0 or errno. */
int slurp(const char *path, char **out, size_t *len);
/* Print o on stdout, pretty, with a newline; 0 or 1 on a write error. */
int print_json(struct json_object *o);
/* "1.5 MiB" */
const char *human_bytes(uint64_t n, char *buf, size_t len);
/* Local time of a wall-clock time in ns, "2026-12-02 07:41:03". */
const char *human_time(int64_t ns, char *buf, size_t len);
/* A progress line on stderr ("\r..."), at most every 100 ms unless
 * final; done == total with final clears it. */
void progress_line(const char *what, uint64_t done, uint64_t total,
		   bool bytes, bool final);
/* Write s (len bytes) to f so that a terminal shows it and obeys none of
 * it: valid UTF-8 as it is; a newline as \n, a tab as \t, other control
 * bytes, C1 controls and bytes that are not UTF-8 as \xHH.  exact: a
 * backslash as \\ too, so that the text can be told back (names). */
void print_escaped(FILE *f, const char *s, size_t len, bool exact);
/* Should a progress line be shown for o? */
bool want_progress(const struct opts *o);

int cmd_status(const struct command *c, int argc, char **argv);
int cmd_compact(const struct command *c, int argc, char **argv);
int cmd_sync(const struct command *c, int argc, char **argv);
int cmd_search(const struct command *c, int argc, char **argv);
int cmd_verify(const struct command *c, int argc, char **argv);
int cmd_ls(const struct command *c, int argc, char **argv);
int cmd_dump(const struct command *c, int argc, char **argv);

#endif
