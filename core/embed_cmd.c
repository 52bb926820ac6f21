/*
 * embed_cmd.c - the command embedder: a long-running program, named by
 * vector.command, that turns texts into vectors (a wrapper of a real
 * embedding model, say).
 *
 * The program is started on the first content to embed, in a process
 * group of its own, with one end of a Unix stream socket as both its
 * stdin and its stdout; its stderr is the daemon's.  The protocol is one
 * line each way per content, each a JSON text ended by '\n':
 *
 *   request   {"id":N,"text":"..."}
 *             N counts 1, 2, ... from each start of the program; text is
 *             the content (its first T4DX_EMBED_MAX_BYTES bytes, cut at a
 *             character boundary), which is valid UTF-8: content that is
 *             not (binary) is never sent and gets no vector.
 *   answer    {"id":N,"vector":[x1,x2,...,xD]}
 *                               exactly vector.dim (D) finite numbers
 *             {"id":N,"vector":null}
 *                               this text gets no vector
 *             N is the request's: a line that answers another request
 *             (an extra line, a late one) cannot give its vector to the
 *             wrong file, and neither can bytes the program wrote before
 *             it was asked anything.
 *
 * One request is outstanding at a time: the program answers each in
 * order before it gets the next.  An answer must come within
 * vector.timeout_s of its request.  Anything else (the program exits or
 * closes its stdout, the timeout passes, a line that is not JSON, another
 * id, an array of another length, a value that is not a finite number or
 * does not fit a float, a line longer than the longest answer could be,
 * bytes waiting before a request is sent) is a failure: the program and its process group are killed with SIGKILL,
 * the file stays without a vector, and the program is started again for
 * the next request, but no sooner than a back-off after the failure (1 s,
 * doubled at each failure in a row up to 60 s, back to 1 s after an
 * answer).  A failure never touches a write: this runs in the embedder's
 * thread only.  At close the program is killed the same way.  A program
 * that ends between requests (it exits, or closes its output with
 * nothing unread) has failed no request: the next one starts it again
 * at once.
 *
 * Orphans.  A descendant of the program that left its process group
 * (setsid or setpgid: a model server that daemonizes) would outlive the
 * kill of the group.  So the daemon is a child subreaper: such a process,
 * once its parents are gone, becomes a child of the daemon, and each
 * stop kills and reaps every child of the daemon outside the daemon's own
 * process group (where libfuse's helpers run), but libfuse's fusermount
 * (-o auto_unmount keeps it, in a session of its own).  A daemon killed with
 * SIGKILL cannot do this: a program should exit, with what it started,
 * when its stdin ends.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "embed.h"
#include "embed_cmd.h"
#include "vec.h"

#define BACKOFF_MIN_NS  1000000000LL
#define BACKOFF_MAX_NS  60000000000LL

extern char **environ;

struct t4dx_embed_cmd {
	char **argv;                    /* NULL-terminated, owned */
	char *cwd;                      /* the directory it runs in, or NULL */
	uint32_t dim;
	int64_t timeout_ns;
	int64_t start_timeout_ns;       /* the first answer's, if longer */
	pid_t pid;                      /* 0: not running */
	int fd;                         /* our end of the socket, or -1 */
	int cancel[2];                  /* a pipe: a byte in it cancels */
	atomic_bool cancelled;
	uint64_t next_id;
	struct t4dx_buf in;             /* read, not yet a whole line */
	int64_t ready_ns;               /* no start before (monotonic) */
	int64_t backoff_ns;
	uint64_t starts;
	uint64_t answers;               /* answer lines, vector or null */
};

static int64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

void t4dx_embed_cmd_set_start_timeout(struct t4dx_embed_cmd *c, double s)
{
	c->start_timeout_ns = s > 0 ? (int64_t)(s * 1e9) : 0;
}

int t4dx_embed_cmd_new(const char *argv_json, uint32_t dim, double timeout_s,
		       struct t4dx_embed_cmd **out)
{
	*out = NULL;
	struct json_object *a = json_tokener_parse(argv_json);
	size_t n = a && json_object_is_type(a, json_type_array)
			   ? json_object_array_length(a) : 0;
	if (!n || !dim || !(timeout_s > 0)) {
		json_object_put(a);
		return EINVAL;
	}
	struct t4dx_embed_cmd *c = calloc(1, sizeof(*c));
	if (!c || !(c->argv = calloc(n + 1, sizeof(*c->argv)))) {
		free(c);
		json_object_put(a);
		return ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(a, i);
		c->argv[i] = strdup(json_object_get_string(s));
		if (!c->argv[i]) {
			json_object_put(a);
			t4dx_embed_cmd_free(c);
			return ENOMEM;
		}
	}
	json_object_put(a);
	/* the directory the daemon started in, before it went to /: a
	 * relative program or argument means the same with or without -f */
	c->cwd = getcwd(NULL, 0);
	c->dim = dim;
	c->timeout_ns = (int64_t)(timeout_s * 1e9);
	c->fd = -1;
	c->backoff_ns = BACKOFF_MIN_NS;
	if (pipe2(c->cancel, O_CLOEXEC | O_NONBLOCK)) {
		int rc = errno;
		c->cancel[0] = c->cancel[1] = -1;
		t4dx_embed_cmd_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* The children of this process (of all its threads) into pids, at most
 * max of them: how many. */
static size_t children(pid_t *pids, size_t max)
{
	size_t n = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	while (d && n < max && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/task/%.20s/children",
			 de->d_name);
		FILE *f = fopen(path, "re");
		long pid;
		while (f && n < max && fscanf(f, "%ld", &pid) == 1)
			pids[n++] = (pid_t)pid;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

/* Is pid libfuse's fusermount helper (which, for -o auto_unmount, stays
 * the daemon's child in a session of its own, to unmount when the daemon
 * dies)? */
static bool is_fusermount(pid_t pid)
{
	char path[64], comm[32] = "";
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	FILE *f = fopen(path, "re");
	if (f) {
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
	}
	return !strncmp(comm, "fusermount", 10);
}

/* Kill and reap the program's descendants that left its process group
 * and came to the daemon (see Orphans): each that dies may hand the
 * daemon children of its own, so until none is left (bounded). */
static void reap_orphans(void)
{
	pid_t own = getpgrp();
	for (int round = 0; round < 64; round++) {
		pid_t pids[256];
		size_t n = children(pids, 256), killed = 0;
		for (size_t i = 0; i < n; i++) {
			pid_t pg = getpgid(pids[i]);
			if (pg < 0 || pg == own || is_fusermount(pids[i]))
				continue;
			kill(pids[i], SIGKILL);
			while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
				;
			killed++;
		}
		if (!killed)
			break;
	}
}

/* Reap the orphans that ended by themselves (they would stay zombies of
 * the daemon, the subreaper, until the next stop: a program that leaves
 * a short-lived process behind at each request would fill the process
 * table), but not keep (the running program, reaped by its own stop). */
static void reap_ended(pid_t keep)
{
	pid_t own = getpgrp(), pids[256];
	size_t n = children(pids, 256);
	for (size_t i = 0; i < n; i++) {
		pid_t pg = pids[i] == keep ? -1 : getpgid(pids[i]);
		if (pg < 0 || pg == own || is_fusermount(pids[i]))
			continue;
		(void)waitpid(pids[i], NULL, WNOHANG);
	}
}

/* Kill the program's process group and reap it; why (if not NULL) gets
 * how it ended when it had ended by itself.  With linger (it closed its
 * output: it is likely exiting), first give it 200 ms to end by itself. */
static void stop(struct t4dx_embed_cmd *c, bool linger, char *why,
		 size_t whylen)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->in.len = 0;
	if (c->pid <= 0)
		return;
	int st;
	pid_t r = waitpid(c->pid, &st, WNOHANG);
	for (int i = 0; linger && r == 0 && i < 40; i++) {
		struct timespec t = { 0, 5000000 };
		nanosleep(&t, NULL);
		r = waitpid(c->pid, &st, WNOHANG);
	}
	if (r == c->pid && why) {
		if (WIFEXITED(st))
			snprintf(why, whylen, "exited with status %d",
				 WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			snprintf(why, whylen, "killed by signal %d",
				 WTERMSIG(st));
	}
	/* the group too: what the program started dies with it */
	kill(-c->pid, SIGKILL);
	if (r != c->pid) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	c->pid = 0;
	reap_orphans();
}

void t4dx_embed_cmd_free(struct t4dx_embed_cmd *c)
{
	if (!c)
		return;
	stop(c, false, NULL, 0);
	for (size_t i = 0; c->argv && c->argv[i]; i++)
		free(c->argv[i]);
	free(c->argv);
	free(c->cwd);
	if (c->cancel[0] >= 0) {
		close(c->cancel[0]);
		close(c->cancel[1]);
	}
	t4dx_buf_free(&c->in);
	free(c);
}

void t4dx_embed_cmd_cancel(struct t4dx_embed_cmd *c)
{
	atomic_store(&c->cancelled, true);
	ssize_t n = write(c->cancel[1], "x", 1);
	(void)n;                        /* full: it is cancelled already */
}

int64_t t4dx_embed_cmd_ready_ns(const struct t4dx_embed_cmd *c)
{
	/* cancelled (a stop under way): never; a second, which the
	 * stop's wake-up cuts short, rather than a loop trying at once */
	if (atomic_load(&c->cancelled))
		return mono_ns() + 1000000000LL;
	return c->pid ? 0 : c->ready_ns;
}

uint64_t t4dx_embed_cmd_starts(const struct t4dx_embed_cmd *c)
{
	return c->starts;
}

uint64_t t4dx_embed_cmd_answers(const struct t4dx_embed_cmd *c)
{
	return c->answers;
}

/* Start the program: 0, or an errno with why. */
static int start(struct t4dx_embed_cmd *c, char *why, size_t whylen)
{
	/* its descendants come to the daemon when orphaned (see Orphans);
	 * if this fails they go to init as before */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		int rc = errno;
		snprintf(why, whylen, "cannot make its socket: %s",
			 strerror(rc));
		return rc;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
	/* no descriptor of the daemon (/dev/fuse, the WAL) beyond 0-2 */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (c->cwd)
		posix_spawn_file_actions_addchdir_np(&fa, c->cwd);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
				 POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	pid_t pid;
	int rc = posix_spawnp(&pid, c->argv[0], &fa, &at, c->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(sv[1]);
	if (rc) {
		close(sv[0]);
		snprintf(why, whylen, "cannot start: %s", strerror(rc));
		return rc;
	}
	c->pid = pid;
	c->fd = sv[0];
	c->next_id = 1;
	c->in.len = 0;
	c->starts++;
	return 0;
}

/* Wait until fd is ready for ev, or the deadline, or a cancel: 0,
 * ETIMEDOUT, ECANCELED or an errno. */
static int wait_fd(struct t4dx_embed_cmd *c, short ev, int64_t deadline)
{
	for (;;) {
		if (atomic_load(&c->cancelled))
			return ECANCELED;
		int64_t left = deadline - mono_ns();
		if (left <= 0)
			return ETIMEDOUT;
		struct pollfd p[2] = {
			{ .fd = c->fd, .events = ev },
			{ .fd = c->cancel[0], .events = POLLIN },
		};
		int ms = (int)((left + 999999) / 1000000);
		int n = poll(p, 2, ms);
		if (n < 0 && errno != EINTR)
			return errno;
		if (n > 0 && p[1].revents)
			return ECANCELED;
		if (n > 0 && p[0].revents)
			return 0;
	}
}

/* Send the whole of p[0..len). */
static int send_all(struct t4dx_embed_cmd *c, const char *p, size_t len,
		    int64_t deadline)
{
	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return errno;
		int rc = wait_fd(c, POLLOUT, deadline);
		if (rc)
			return rc;
	}
	return 0;
}

/* Read one line (without its '\n') into c->in: its length in *len.  The
 * bytes after it stay for the next (there are none in this protocol: a
 * program that sends more has failed, as the next answer shows). */
static int read_line(struct t4dx_embed_cmd *c, size_t max, int64_t deadline,
		     size_t *len)
{
	for (;;) {
		unsigned char *nl = c->in.len ? memchr(c->in.p, '\n', c->in.len)
					      : NULL;
		if (nl) {
			*len = (size_t)(nl - c->in.p);
			return 0;
		}
		if (c->in.len > max)
			return E2BIG;
		int rc = t4dx_buf_reserve(&c->in, 65536);
		if (rc)
			return rc;
		ssize_t n = recv(c->fd, c->in.p + c->in.len, 65536,
				 MSG_DONTWAIT);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		if (n == 0)
			return EPIPE;           /* its stdout closed */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return errno;
		if ((rc = wait_fd(c, POLLIN, deadline)))
			return rc;
	}
}

/* The running program ended while it had nothing to do (it exited, or
 * closed its output with nothing in it: it is exiting): forget it, so
 * that the next request starts it again.  That is no failure of a
 * request: no back-off. */
static void drop_if_ended(struct t4dx_embed_cmd *c)
{
	int st;
	char b;
	if (c->pid <= 0 || c->in.len)
		return;                 /* it said something: the request says */
	if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
		kill(-c->pid, SIGKILL); /* what it started goes with it, */
		c->pid = 0;
		close(c->fd);
		c->fd = -1;
		reap_orphans();         /* also out of its group */
	} else if (recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
		stop(c, true, NULL, 0);
	}
}

/* Whether the program has written bytes that were not read yet. */
static bool pending(struct t4dx_embed_cmd *c)
{
	/* (an end of output is no such bytes: the request that follows
	 * finds it and says so) */
	char b;
	return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* The answer line p[0..len) to request id as dim floats in out: 0,
 * ENODATA for a null vector, EPROTO with why. */
static int parse_answer(struct t4dx_embed_cmd *c, uint64_t id, const char *p,
			size_t len, float *out, char *why, size_t whylen)
{
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *a = json_tokener_parse_ex(tok, p, (int)len);
	bool whole = a && json_tokener_get_parse_end(tok) == len;
	if (a && !whole) {
		/* only blanks (a '\r') may follow */
		size_t e = json_tokener_get_parse_end(tok);
		whole = strspn(p + e, " \t\r") == len - e;
	}
	json_tokener_free(tok);
	int rc = 0;
	struct json_object *jid = NULL, *vec = NULL;
	bool has_vec = whole && json_object_is_type(a, json_type_object) &&
		       json_object_object_get_ex(a, "vector", &vec);
	if (!has_vec || !json_object_object_get_ex(a, "id", &jid) ||
	    !json_object_is_type(jid, json_type_int)) {
		snprintf(why, whylen, "answered something else than "
			 "{\"id\":%llu,\"vector\":[%u numbers]}",
			 (unsigned long long)id, c->dim);
		rc = EPROTO;
	} else if ((uint64_t)json_object_get_uint64(jid) != id ||
		   json_object_get_int64(jid) < 0) {
		snprintf(why, whylen, "answered request %lld, not %llu (a "
			 "line too many, or one it was not asked for)",
			 (long long)json_object_get_int64(jid),
			 (unsigned long long)id);
		rc = EPROTO;
	} else if (!vec) {
		rc = ENODATA;                   /* json-c gives NULL for null */
	} else if (!json_object_is_type(vec, json_type_array)) {
		snprintf(why, whylen, "answered a vector that is not a JSON "
			 "array of %u numbers", c->dim);
		rc = EPROTO;
	} else if (json_object_array_length(vec) != c->dim) {
		snprintf(why, whylen, "answered %zu numbers, not %u",
			 json_object_array_length(vec), c->dim);
		rc = EPROTO;
	} else {
		for (uint32_t i = 0; i < c->dim && !rc; i++) {
			struct json_object *v = json_object_array_get_idx(vec, i);
			double d = t4dx_json_number(v);
			if (!isfinite(d) || !isfinite((float)d)) {
				snprintf(why, whylen, "answered a value that is "
					 "not a finite float at %u", i);
				rc = EPROTO;
			}
			out[i] = (float)d;
		}
	}
	json_object_put(a);
	return rc;
}

/* The request line for text p[0..len) (UTF-8). */
static int request(struct t4dx_embed_cmd *c, const char *p, size_t len,
		   struct t4dx_buf *out)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return ENOMEM;
	int rc = json_object_object_add(o, "id",
					json_object_new_uint64(c->next_id++));
	if (!rc)
		rc = json_object_object_add(o, "text",
			json_object_new_string_len(p, (int)len));
	const char *s = rc ? NULL : json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	rc = s ? t4dx_buf_add(out, s, strlen(s)) : ENOMEM;
	if (!rc)
		rc = t4dx_buf_add(out, "\n", 1);
	json_object_put(o);
	return rc;
}

static int run(struct t4dx_embed_cmd *c, const void *buf, size_t len,
	       float *out, char *why, size_t whylen, bool now)
{
	const char *p = buf;
	snprintf(why, whylen, "failed");
	if (len > T4DX_EMBED_MAX_BYTES) {
		/* cut before a continuation byte: whole characters only */
		len = T4DX_EMBED_MAX_BYTES;
		while (len && ((unsigned char)p[len] & 0xc0) == 0x80)
			len--;
	}
	if (!len || !t4dx_utf8_valid((const unsigned char *)p, len))
		return ENODATA;
	if (atomic_load(&c->cancelled))
		return ECANCELED;
	if (!now && !c->pid && mono_ns() < c->ready_ns)
		return EAGAIN;
	drop_if_ended(c);
	reap_ended(c->pid);
	int rc = c->pid ? 0 : start(c, why, whylen);
	struct t4dx_buf req = { 0 };
	size_t n = 0;
	uint64_t id = c->next_id;
	/* the first request of a start waits for what the program loads */
	bool first = id == 1 && c->start_timeout_ns > c->timeout_ns;
	int64_t deadline = mono_ns() + (first ? c->start_timeout_ns
					      : c->timeout_ns);
	if (!rc && (c->in.len || pending(c))) {
		/* it said something it was not asked */
		snprintf(why, whylen, "wrote output nobody asked for (a line "
			 "too many after an answer, or a banner)");
		rc = EPROTO;
	}
	if (!rc)
		rc = request(c, p, len, &req);
	if (!rc && (rc = send_all(c, (const char *)req.p, req.len, deadline)))
		snprintf(why, whylen, "%s%s", rc == ETIMEDOUT ?
			 first ? "did not read its request within "
				 "vector.start_timeout_s"
			       : "did not read its request within vector.timeout_s" :
			 "cannot be written to: ",
			 rc == ETIMEDOUT ? "" : strerror(rc));
	/* the longest answer: dim values of 40 characters or less */
	if (!rc && (rc = read_line(c, 64 + 40 * (size_t)c->dim, deadline,
				   &n)))
		snprintf(why, whylen, "%s%s", rc == ETIMEDOUT ?
			 /* a user's program: say what it most likely is */
			 (c->in.len ? "did not answer within vector.timeout_s "
				      "(part of a line came, no newline)"
			  : first ? "did not answer within "
				    "vector.start_timeout_s (nothing since it "
				    "started: it must flush each answer line, "
				    "and answer in that time, a model's load "
				    "included)"
			  : id == 1 ? "did not answer within vector.timeout_s "
				      "(nothing since it started: it must "
				      "flush each answer line, and answer in "
				      "that time, a model's load included)"
			  : "did not answer within vector.timeout_s "
			    "(nothing came: is each answer line flushed?)") :
			 rc == E2BIG ? "answered a line longer than any answer" :
			 rc == EPIPE ? "closed its output" : "cannot be read: ",
			 rc == ETIMEDOUT || rc == E2BIG || rc == EPIPE ? ""
								: strerror(rc));
	if (!rc) {
		rc = parse_answer(c, id, (const char *)c->in.p, n, out, why,
				  whylen);
		if (rc == 0 || rc == ENODATA)
			c->answers++;
		/* the line is used up */
		memmove(c->in.p, c->in.p + n + 1, c->in.len - n - 1);
		c->in.len -= n + 1;
	}
	t4dx_buf_free(&req);
	if (rc == 0 || rc == ENODATA) {
		c->backoff_ns = BACKOFF_MIN_NS;
		return rc;
	}
	if (rc == ECANCELED) {
		stop(c, false, NULL, 0);
		return rc;
	}
	/* a failure: kill it (saying how it ended, if it did by itself),
	 * and no new start before the back-off */
	char how[64] = "";
	stop(c, rc == EPIPE || rc == ECONNRESET, how, sizeof(how));
	if (*how) {
		size_t w = strlen(why);
		snprintf(why + w, whylen - w, " (%s)", how);
	}
	c->ready_ns = mono_ns() + c->backoff_ns;
	c->backoff_ns = c->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS
							   : c->backoff_ns * 2;
	return rc;
}

int t4dx_embed_cmd_run(struct t4dx_embed_cmd *c, const void *buf, size_t len,
		       float *out, char *why, size_t whylen)
{
	return run(c, buf, len, out, why, whylen, false);
}

int t4dx_embed_cmd_run_now(struct t4dx_embed_cmd *c, const void *buf,
			   size_t len, float *out, char *why, size_t whylen)
{
	return run(c, buf, len, out, why, whylen, true);
}
