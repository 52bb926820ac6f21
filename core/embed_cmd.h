/*
 * embed_cmd.h - the command embedder: vectors from a long-running program
 * that the engine starts and talks to (vector.embedder "command"); the
 * protocol is described at the top of embed_cmd.c and in the README.
 */
#ifndef T4DX_EMBED_CMD_H
#define T4DX_EMBED_CMD_H

#include <stddef.h>
#include <stdint.h>

struct t4dx_embed_cmd;

/* A client of the program argv_json (a JSON array: the program, then its
 * arguments) for vectors of dim values, each answer within timeout_s.
 * Nothing starts before the first request.  0, EINVAL or ENOMEM. */
int t4dx_embed_cmd_new(const char *argv_json, uint32_t dim, double timeout_s,
		       struct t4dx_embed_cmd **out);
/* The first answer after each start of the program may take s seconds
 * (> 0) when that is longer than the timeout: what it loads first. */
void t4dx_embed_cmd_set_start_timeout(struct t4dx_embed_cmd *c, double s);
/* Stop the program (its process group: SIGKILL) and free c. */
void t4dx_embed_cmd_free(struct t4dx_embed_cmd *c);

/* The vector of the text buf (len bytes) in out[0..dim-1]: 0.  ENODATA
 * when the program says the text gets none, or the text is not UTF-8.
 * EAGAIN when the program failed lately and may not be started again
 * yet (t4dx_embed_cmd_ready_ns says when).  Any other code: the program
 * crashed, hung past the timeout, or answered something else than dim
 * finite numbers; it is killed, why[] says what happened, and it is
 * started again, after a back-off that doubles at each failure in a row
 * (1 s up to 60 s).  ECANCELED after t4dx_embed_cmd_cancel.  One caller
 * at a time. */
int t4dx_embed_cmd_run(struct t4dx_embed_cmd *c, const void *buf, size_t len,
		       float *out, char *why, size_t whylen);
/* The same, but a program in its back-off is started at once: for a
 * search query, which a file the program keeps failing on must not keep
 * waiting (a failure of this request still doubles the back-off). */
int t4dx_embed_cmd_run_now(struct t4dx_embed_cmd *c, const void *buf,
			   size_t len, float *out, char *why, size_t whylen);
/* Monotonic time (ns) before which run answers EAGAIN; 0 if none. */
int64_t t4dx_embed_cmd_ready_ns(const struct t4dx_embed_cmd *c);
/* Make a run under way (or the next) return ECANCELED at once; any
 * thread, async-signal-safe. */
void t4dx_embed_cmd_cancel(struct t4dx_embed_cmd *c);
/* How many times the program was started. */
uint64_t t4dx_embed_cmd_starts(const struct t4dx_embed_cmd *c);
/* How many requests it answered, with a vector or null (not the
 * requests that got ENODATA without being sent: empty text, not UTF-8). */
uint64_t t4dx_embed_cmd_answers(const struct t4dx_embed_cmd *c);

#endif
