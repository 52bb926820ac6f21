/*
 * ctl.c - the control files of MOUNT/.ctl/.
 *
 * A file's content is generated when it is opened and read from that
 * snapshot; a write to a file that takes commands is one command (a
 * trailing newline, as echo adds, is ignored).  Anything else answers
 * EINVAL and changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "t4dxfs.h"
#include "ctl.h"
#include "inode.h"
#include "metrics.h"

/* ---- helpers ------------------------------------------------------------ */

/* The command in buf without one trailing newline; NULL if it holds a
 * byte that no command has (NUL, control characters, non-ASCII). */
static const char *command(const char *buf, size_t len, size_t *clen)
{
	if (len && buf[len - 1] == '\n')
		len--;
	for (size_t i = 0; i < len; i++)
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return NULL;
	*clen = len;
	return buf;
}

static bool is_cmd(const char *c, size_t len, const char *want)
{
	return c && strlen(want) == len && !memcmp(c, want, len);
}

/* Live items: items/ itself is an entry of the engine, not an item. */
static uint64_t item_count(const struct t4dx_stats *st)
{
	return st->items ? st->items - 1 : 0;
}

/* ---- JSON --------------------------------------------------------------
 * The JSON files are built with json-c, which escapes every string, and
 * written compact on one line, as before: doubles keep the precision each
 * field always had (json_object_new_double_s). */

/* Add v as o[key]; a NULL v (out of memory) or a failed add clears *ok. */
static void jset(struct json_object *o, const char *key,
		 struct json_object *v, bool *ok)
{
	if (!v || json_object_object_add(o, key, v)) {
		json_object_put(v);
		*ok = false;
	}
}

/* o[key] = null. */
static void jnull(struct json_object *o, const char *key, bool *ok)
{
	if (json_object_object_add(o, key, NULL))
		*ok = false;
}

static struct json_object *ju64(uint64_t v)
{
	return json_object_new_uint64(v);
}

static struct json_object *ji64(int64_t v)
{
	return json_object_new_int64(v);
}

/* v written with %.{prec}g or, fixed, %.{prec}f. */
static struct json_object *jdouble(double v, int prec, bool fixed)
{
	char s[64];
	if (fixed)
		snprintf(s, sizeof(s), "%.*f", prec, v);
	else
		snprintf(s, sizeof(s), "%.*g", prec, v);
	return json_object_new_double_s(v, s);
}

int jemit(struct t4dx_buf *out, struct json_object *o, bool ok)
{
	const char *s = ok && o ? json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN |
			   JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
	int rc = s ? t4dx_buf_add(out, s, strlen(s)) : ENOMEM;
	if (!rc)
		rc = t4dx_buf_add(out, "\n", 1);
	json_object_put(o);
	return rc;
}

/* ---- breaker ------------------------------------------------------------ */

static int show_breaker(struct t4dxfs *fs, struct t4dx_buf *out)
{
	struct t4dx_breaker_info bi;
	t4dx_breaker_get(t4dx_get_breaker(fs->db), &bi);
	struct json_object *o = json_object_new_object();
	bool ok = o != NULL;
	if (!ok)
		return ENOMEM;
	jset(o, "state", json_object_new_string(
		     t4dx_breaker_state_name(bi.state)), &ok);
	jset(o, "forced", json_object_new_boolean(bi.forced), &ok);
	jset(o, "consecutive_failures", ju64(bi.consecutive_failures), &ok);
	jset(o, "consecutive_successes", ju64(bi.consecutive_successes), &ok);
	jset(o, "failure_threshold", ju64(bi.cfg.failure_threshold), &ok);
	jset(o, "success_threshold", ju64(bi.cfg.success_threshold), &ok);
	jset(o, "reset_timeout_s", jdouble(bi.cfg.reset_timeout_s, 9, false),
	     &ok);
	jset(o, "last_transition_ns", ji64(bi.last_transition_ns), &ok);
	jset(o, "next_half_open_s", jdouble(bi.next_half_open_s, 3, true),
	     &ok);
	jset(o, "calls", ju64(bi.calls), &ok);
	jset(o, "failures", ju64(bi.failures), &ok);
	jset(o, "rejections", ju64(bi.rejections), &ok);
	jset(o, "transitions", ju64(bi.transitions), &ok);
	return jemit(out, o, ok);
}

static int store_breaker(struct t4dxfs *fs, const char *buf, size_t len)
{
	size_t n;
	const char *c = command(buf, len, &n);
	struct t4dx_breaker *b = t4dx_get_breaker(fs->db);
	if (is_cmd(c, n, "open"))
		t4dx_breaker_force_open(b);
	else if (is_cmd(c, n, "reset"))
		t4dx_breaker_reset(b);
	else
		return EINVAL;
	return 0;
}

/* ---- health ------------------------------------------------------------- */

static struct json_object *show_check(const struct t4dx_check *c, bool *ok)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	jset(o, "ok", json_object_new_boolean(c->runs == 0 || c->ok), ok);
	jset(o, "last_run_ns", ji64(c->last_run_ns), ok);
	jset(o, "duration_s", jdouble(c->duration_s, 6, true), ok);
	jset(o, "consecutive_failures", ju64(c->consecutive_failures), ok);
	jset(o, "runs", ju64(c->runs), ok);
	jset(o, "error", json_object_new_string(
		     c->last_error ? t4dx_strerror(c->last_error) : ""), ok);
	return o;
}

static int show_health(struct t4dxfs *fs, struct t4dx_buf *out)
{
	struct t4dx_health h;
	struct t4dx_stats st;
	struct t4dx_breaker_info bi;
	t4dx_get_health(fs->db, &h);
	t4dx_get_stats(fs->db, &st);
	t4dx_breaker_get(t4dx_get_breaker(fs->db), &bi);
	unsigned threshold = fs->cfg.health.alert_threshold;
	const char *status = "ok";
	if (h.wal.consecutive_failures >= threshold ||
	    h.segments.consecutive_failures >= threshold || h.level >= 2 ||
	    h.fatal)
		status = "failing";
	else if (h.wal.consecutive_failures || h.segments.consecutive_failures ||
		 bi.state != T4DX_CLOSED || h.level || h.unpersisted ||
		 st.recovery.wal_gap_to || st.recovery.wal_files_quarantined ||
		 st.recovery.rebuild_missing_before)
		status = "degraded";     /* a gap, log files dropped after
					    damage, a rebuild that could not
					    find everything: acknowledged
					    changes lost, until a restart */
	/* search still answers, but not as well: files without vectors
	 * while the program fails, segments read whole for want of their
	 * index */
	struct t4dx_embed_stats es;
	struct t4dx_index_file_stats is;
	t4dx_embed_stats(fs->db, &es);
	t4dx_index_file_stats(fs->db, &is);
	bool vec_ok = !es.program_failing && !is.unusable;
	if (!vec_ok && !strcmp(status, "ok"))
		status = "degraded";
	struct json_object *o = json_object_new_object();
	if (!o)
		return ENOMEM;
	bool ok = true;
	jset(o, "status", json_object_new_string(status), &ok);
	jset(o, "level", ji64(h.level), &ok);
	jset(o, "mode", json_object_new_string(t4dx_level_name(h.level)), &ok);
	jset(o, "breaker", json_object_new_string(
		     t4dx_breaker_state_name(bi.state)), &ok);
	jset(o, "fatal", json_object_new_boolean(h.fatal), &ok);
	struct json_object *checks = json_object_new_object();
	if (checks) {
		jset(checks, "wal", show_check(&h.wal, &ok), &ok);
		jset(checks, "segments", show_check(&h.segments, &ok), &ok);
	}
	jset(o, "checks", checks, &ok);
	struct json_object *v = json_object_new_object();
	if (v) {
		bool cmd = !strcmp(fs->cfg.vector.embedder, "command");
		jset(v, "ok", json_object_new_boolean(vec_ok), &ok);
		jset(v, "embedder",
		     json_object_new_string(fs->cfg.vector.embedder), &ok);
		jset(v, "program", json_object_new_string(
			     !cmd ? "none" : es.program_failing ? "failing"
								: "ok"), &ok);
		jset(v, "error", json_object_new_string(es.program_error),
		     &ok);
		jset(v, "index_files_unusable", ju64(is.unusable), &ok);
	}
	jset(o, "vectors", v, &ok);
	jset(o, "unpersisted", ju64(h.unpersisted), &ok);
	jset(o, "queue_depth", ju64(h.queue_depth), &ok);
	jset(o, "queue_vectors", ju64(h.queue_vectors), &ok);
	struct json_object *r = json_object_new_object();
	if (r) {
		jset(r, "records_replayed",
		     ju64(st.recovery.records_replayed), &ok);
		jset(r, "records_rescued", ju64(h.rescued), &ok);
		jset(r, "bytes_dropped", ju64(st.recovery.bytes_dropped), &ok);
		jset(r, "wal_files", ju64(st.recovery.wal_files), &ok);
		jset(r, "segments_quarantined",
		     ju64(st.recovery.segments_quarantined), &ok);
		jset(r, "items_rebuilt", ju64(st.recovery.items_rebuilt), &ok);
		jset(r, "rebuild_missing_before",
		     ju64(st.recovery.rebuild_missing_before), &ok);
		jset(r, "wal_files_quarantined",
		     ju64(st.recovery.wal_files_quarantined), &ok);
		jset(r, "wal_files_covered",
		     ju64(st.recovery.wal_files_covered), &ok);
		jset(r, "wal_bytes_read", ju64(st.recovery.wal_bytes_read),
		     &ok);
		struct json_object *gap = json_object_new_array();
		if (gap && (json_object_array_add(gap,
				ju64(st.recovery.wal_gap_from)) ||
			    json_object_array_add(gap,
				ju64(st.recovery.wal_gap_to))))
			ok = false;
		jset(r, "wal_gap", gap, &ok);
		/* the names of the quarantined files, space-separated */
		struct json_object *qa = json_object_new_array();
		const char *q = st.recovery.quarantined;
		while (qa && *q) {
			size_t n = strcspn(q, " ");
			if (json_object_array_add(qa,
				json_object_new_string_len(q, (int)n)))
				ok = false;
			q += n;
			q += *q == ' ';
		}
		jset(r, "quarantined", qa, &ok);
	}
	jset(o, "recovery", r, &ok);
	/* where a rescue goes when DATA_DIR cannot take it */
	const char *rdir, *rproblem;
	t4dx_get_rescue(fs->db, &rdir, &rproblem);
	struct json_object *rs = json_object_new_object();
	if (rs) {
		jset(rs, "ok", json_object_new_boolean(!*rproblem), &ok);
		jset(rs, "dir", json_object_new_string(rdir), &ok);
		jset(rs, "problem", json_object_new_string(rproblem), &ok);
	}
	jset(o, "rescue", rs, &ok);
	return jemit(out, o, ok);
}

/* ---- compact ------------------------------------------------------------ */

static int show_compact(struct t4dxfs *fs, struct t4dx_buf *out)
{
	uint64_t done, total;
	int running = t4dx_compact_progress(fs->db, &done, &total);
	struct json_object *o = json_object_new_object();
	if (!o)
		return ENOMEM;
	bool ok = true;
	if (running >= 0) {
		jset(o, "running", json_object_new_string(
			     t4dx_compact_name(running)), &ok);
		struct json_object *p = json_object_new_object();
		if (p) {
			jset(p, "done", ju64(done), &ok);
			jset(p, "total", ju64(total), &ok);
		}
		jset(o, "progress", p, &ok);
	} else {
		jnull(o, "running", &ok);
		jnull(o, "progress", &ok);
	}
	for (int k = 0; k < T4DX_COMPACT_KINDS; k++) {
		struct t4dx_compact_stats cs;
		t4dx_get_compact_stats(fs->db, k, &cs);
		struct json_object *c = json_object_new_object();
		if (!c) {
			ok = false;
			break;
		}
		jset(c, "runs", ju64(cs.runs), &ok);
		jset(c, "bytes_written", ju64(cs.bytes_written), &ok);
		if (!cs.has_last) {
			jnull(c, "last", &ok);
		} else {
			const struct t4dx_compact_run *r = &cs.last;
			char result[160];
			snprintf(result, sizeof(result), "%s%s",
				 r->result ? "error: " : "ok",
				 r->result ? t4dx_strerror(r->result) : "");
			struct json_object *l = json_object_new_object();
			if (l) {
				jset(l, "start_ns", ji64(r->start_ns), &ok);
				jset(l, "duration_s",
				     jdouble(r->duration_s, 6, true), &ok);
				jset(l, "result",
				     json_object_new_string(result), &ok);
				jset(l, "items_in", ju64(r->items_in), &ok);
				jset(l, "items_out", ju64(r->items_out), &ok);
				jset(l, "bytes_in", ju64(r->bytes_in), &ok);
				jset(l, "bytes_out", ju64(r->bytes_out), &ok);
			}
			jset(c, "last", l, &ok);
		}
		jset(o, t4dx_compact_name(k), c, &ok);
	}
	return jemit(out, o, ok);
}

/* A compaction removed an item: the kernel may still cache its name. */
static void forget_removed(void *arg, uint64_t parent, const char *name,
			   size_t len, uint64_t ino)
{
	struct t4dxfs *fs = arg;
	ns_lock(fs);
	struct node *n = node_find(&fs->nodes, ino);
	if (n)
		n->unlinked = true;
	fs->ns_gen++;
	ns_unlock(fs);
	fuse_lowlevel_notify_inval_entry(fs->se, parent, name, len);
}

static int compact_may_write(struct t4dxfs *fs)
{
	return t4dx_compact_running(fs->db) >= 0 ? EBUSY : 0;
}

static int store_compact(struct t4dxfs *fs, const char *buf, size_t len)
{
	size_t n;
	const char *c = command(buf, len, &n);
	int kind = c ? t4dx_compact_parse(c, n) : -1;
	if (kind < 0)
		return EINVAL;
	int rc = t4dx_compact(fs->db, kind, forget_removed, fs);
	/* a failed run is reported as such, not as a bad command */
	return rc == EINVAL ? EIO : rc;
}

/* ---- metrics ------------------------------------------------------------ */

static const char *const op_names[OP_NOPS] = {
	"lookup", "getattr", "setattr", "mkdir", "unlink", "rmdir", "rename",
	"open", "create", "read", "write", "flush", "fsync", "release",
	"opendir", "readdir", "readdirplus", "statfs", "setxattr", "getxattr",
	"listxattr", "removexattr", "symlink", "link", "mknod", "readlink",
};

static int gauge(struct t4dx_buf *out, const char *name, const char *help,
		 double v)
{
	int rc = t4dx_metric_header(out, name, help, "gauge");
	return rc ? rc : t4dx_metric_sample(out, name, NULL, v);
}

static int counter(struct t4dx_buf *out, const char *name, const char *help,
		   uint64_t v)
{
	int rc = t4dx_metric_header(out, name, help, "counter");
	return rc ? rc : t4dx_metric_sample_u64(out, name, NULL, v);
}

static int hist(struct t4dx_buf *out, const char *name, const char *help,
		const struct t4dx_hist *h)
{
	int rc = t4dx_metric_header(out, name, help, "histogram");
	return rc ? rc : t4dx_metric_hist(out, name, NULL, h);
}

/* The embedder's counters and queue (0 when vector.embedder is off),
 * and the segments' index files. */
static int embed_metrics(struct t4dxfs *fs, struct t4dx_buf *out)
{
	struct t4dx_embed_stats es;
	t4dx_embed_stats(fs->db, &es);
	int rc = counter(out, "t4dx_embed_vectors_total",
			 "Vectors the embedder computed from content and "
			 "logged.",
			 es.embedded);
	if (!rc)
		rc = counter(out, "t4dx_embed_no_vector_total",
			     "Files marked as getting no vector from their "
			     "content (binary, no word).", es.no_vector);
	if (!rc)
		rc = counter(out, "t4dx_embed_failures_total",
			     "Files the embedder could not give a vector (an "
			     "error; tried again at the next start).",
			     es.failed);
	if (!rc)
		rc = counter(out, "t4dx_embed_dropped_total",
			     "Files left out of a full embedder queue (the "
			     "next sweep finds them).", es.dropped);
	if (!rc)
		rc = counter(out, "t4dx_embed_program_starts_total",
			     "Starts of the embedder program (vector.command): "
			     "the first, and one after each failure.",
			     es.starts);
	if (!rc)
		rc = counter(out, "t4dx_embed_read_bytes_total",
			     "Bytes of content the embedder read.",
			     es.bytes_read);
	if (!rc)
		rc = counter(out, "t4dx_embed_deferred_total",
			     "Files whose vector waited for writes on a busy "
			     "CPU to pause (vector.defer_s).", es.deferred);
	if (!rc)
		rc = counter(out, "t4dx_embed_flush_left_total",
			     "Files whose vectors a flush left to the embedder "
			     "for writes on a busy CPU.", es.flush_left);
	if (!rc)
		rc = gauge(out, "t4dx_embed_queue_length",
			   "Files waiting for the embedder.",
			   (double)es.queued);
	struct t4dx_index_file_stats is;
	t4dx_index_file_stats(fs->db, &is);
	if (!rc)
		rc = gauge(out, "t4dx_index_files",
			   "Vector index files of the live segments.",
			   (double)is.files);
	if (!rc)
		rc = gauge(out, "t4dx_index_file_bytes",
			   "Bytes of those index files on disk.",
			   (double)is.bytes);
	if (!rc)
		rc = gauge(out, "t4dx_index_files_loaded",
			   "Index graphs in memory.", (double)is.loaded);
	if (!rc)
		rc = gauge(out, "t4dx_index_files_loaded_bytes",
			   "Memory of the index graphs loaded.",
			   (double)is.loaded_bytes);
	if (!rc)
		rc = gauge(out, "t4dx_index_files_unusable",
			   "Segments whose index file was missing or damaged "
			   "(searched whole until rebuilt).",
			   (double)is.unusable);
	return rc;
}

static int show_metrics(struct t4dxfs *fs, struct t4dx_buf *out)
{
	struct t4dx_stats st;
	struct t4dx_health h;
	struct t4dx_breaker_info bi;
	char labels[128];
	int rc;
	t4dx_get_stats(fs->db, &st);
	t4dx_get_health(fs->db, &h);
	t4dx_breaker_get(t4dx_get_breaker(fs->db), &bi);

	rc = t4dx_metric_header(out, "t4dx_ops_total",
				"FUSE operations handled, by operation.",
				"counter");
	for (int i = 0; !rc && i < OP_NOPS; i++) {
		snprintf(labels, sizeof(labels), "op=\"%s\"", op_names[i]);
		rc = t4dx_metric_sample_u64(out, "t4dx_ops_total", labels,
					    atomic_load(&fs->metrics.ops[i]));
	}
	if (!rc)
		rc = t4dx_metric_header(out, "t4dx_errors_total",
			"FUSE operations answered with an error, by operation "
			"and errno.", "counter");
	for (int i = 0; !rc && i < OP_NOPS; i++)
		for (int e = 1; !rc && e < FS_ERRNO_MAX; e++) {
			uint64_t v = atomic_load(&fs->metrics.errs[i][e]);
			const char *en = strerrorname_np(e);
			if (!v || !en)
				continue;
			snprintf(labels, sizeof(labels),
				 "op=\"%s\",errno=\"%s\"", op_names[i], en);
			rc = t4dx_metric_sample_u64(out, "t4dx_errors_total",
						    labels, v);
		}
	if (!rc)
		rc = t4dx_metric_header(out, "t4dx_xattr_absent_total",
			"Extended attribute requests for names t4dx does not "
			"have, answered ENOTSUP or ENODATA as designed (not "
			"errors: ls -l asks every file), by operation.",
			"counter");
	for (int i = 0; !rc && i < OP_NOPS; i++) {
		uint64_t v = atomic_load(&fs->metrics.xattr_absent[i]);
		if (!v)
			continue;
		snprintf(labels, sizeof(labels), "op=\"%s\"", op_names[i]);
		rc = t4dx_metric_sample_u64(out, "t4dx_xattr_absent_total",
					    labels, v);
	}
	pthread_mutex_lock(&fs->search.mu);
	uint64_t runs = fs->search.runs, reused = fs->search.reused;
	pthread_mutex_unlock(&fs->search.mu);
	if (!rc)
		rc = counter(out, "t4dx_search_runs_total",
			     "Answers of search/ queries computed.", runs);
	if (!rc)
		rc = counter(out, "t4dx_search_reused_total",
			     "Answers of search/ queries served again, the "
			     "store unchanged since they were computed.",
			     reused);
	if (!rc)
		rc = gauge(out, "t4dx_breaker_state",
			   "Circuit breaker: 0 closed, 1 open, 2 half-open.",
			   bi.state);
	if (!rc)
		rc = counter(out, "t4dx_breaker_transitions_total",
			     "Circuit breaker state changes.", bi.transitions);
	if (!rc)
		rc = counter(out, "t4dx_breaker_rejections_total",
			     "Changes refused by an open breaker.",
			     bi.rejections);
	if (!rc)
		rc = gauge(out, "t4dx_degradation_level",
			   "0 normal, 1 read-only, 2 in-memory.", h.level);
	if (!rc)
		rc = gauge(out, "t4dx_queue_depth",
			   "Users' records waiting in the replay queue (not "
			   "yet durable).", (double)h.queue_depth);
	if (!rc)
		rc = gauge(out, "t4dx_queue_vectors",
			   "The embedder's records waiting in the replay "
			   "queue.", (double)h.queue_vectors);
	if (!rc)
		rc = gauge(out, "t4dx_unpersisted_writes",
			   "Changes applied but not yet durable.",
			   (double)h.unpersisted);
	if (!rc)
		rc = gauge(out, "t4dx_items", "Live files and directories.",
			   (double)item_count(&st));
	if (!rc)
		rc = gauge(out, "t4dx_memtable_items",
			   "Entries in the memtable.", (double)st.memtable_items);
	if (!rc)
		rc = gauge(out, "t4dx_memtable_bytes",
			   "Approximate bytes held by the memtable.",
			   (double)st.memtable_bytes);
	if (!rc)
		rc = gauge(out, "t4dx_segments", "Live segment files.",
			   (double)st.segments);
	if (!rc)
		rc = gauge(out, "t4dx_segment_bytes",
			   "Bytes in live segment files.",
			   (double)st.segment_bytes);
	if (!rc)
		rc = gauge(out, "t4dx_wal_bytes",
			   "Bytes in live write-ahead log files.",
			   (double)st.wal_bytes);
	if (!rc)
		rc = gauge(out, "t4dx_wal_archive_bytes",
			   "Bytes in archived write-ahead log files.",
			   (double)st.archive_bytes);
	if (!rc)
		rc = counter(out, "t4dx_wal_syncs_total",
			     "Successful WAL fdatasync calls (group commits).",
			     st.wal_syncs);
	if (!rc)
		rc = counter(out, "t4dx_wal_records_total",
			     "WAL records made durable.", st.wal_records);
	if (!rc)
		rc = counter(out, "t4dx_write_stalls_total",
			     "Writers that waited for a flush because the log "
			     "passed wal.checkpoint_bytes meanwhile.",
			     st.write_stalls);
	if (!rc)
		rc = counter(out, "t4dx_alerts_total", "Alerts raised.",
			     fs->alerts_seen);
	if (!rc)
		rc = embed_metrics(fs, out);
	if (!rc)
		rc = hist(out, "t4dx_write_latency_seconds",
			  "Time to commit a file's content durably (close, "
			  "fsync).", &fs->metrics.write_lat);
	if (!rc)
		rc = hist(out, "t4dx_read_latency_seconds",
			  "Time to read an item from the engine (open for "
			  "reading).", &fs->metrics.read_lat);
	if (!rc)
		rc = hist(out, "t4dx_wal_fsync_latency_seconds",
			  "Time of each WAL fdatasync.", t4dx_fsync_hist(fs->db));
	if (!rc)
		rc = t4dx_metric_header(out, "t4dx_compaction_duration_seconds",
					"Duration of compaction runs, by kind.",
					"histogram");
	for (int k = 0; !rc && k < T4DX_COMPACT_KINDS; k++) {
		if (k == T4DX_COMPACT_REM)
			continue;
		snprintf(labels, sizeof(labels), "kind=\"%s\"",
			 t4dx_compact_name(k));
		rc = t4dx_metric_hist(out, "t4dx_compaction_duration_seconds",
				      labels, t4dx_compact_hist(fs->db, k));
	}
	return rc;
}

/* ---- stats, config, alerts ---------------------------------------------- */

static int show_stats(struct t4dxfs *fs, struct t4dx_buf *out)
{
	struct t4dx_stats st;
	t4dx_get_stats(fs->db, &st);
	int64_t up = (t4dx_now_ns() - fs->start_ns) / 1000000000;
	struct json_object *o = json_object_new_object();
	if (!o)
		return ENOMEM;
	bool ok = true;
	jset(o, "items", ju64(item_count(&st)), &ok);
	jset(o, "memtable_items", ju64(st.memtable_items), &ok);
	jset(o, "memtable_bytes", ju64(st.memtable_bytes), &ok);
	jset(o, "segments", ju64(st.segments), &ok);
	jset(o, "segment_bytes", ju64(st.segment_bytes), &ok);
	jset(o, "wal_lsn", ju64(st.wal_lsn), &ok);
	jset(o, "wal_bytes", ju64(st.wal_bytes), &ok);
	jset(o, "archive_bytes", ju64(st.archive_bytes), &ok);
	jset(o, "wal_syncs", ju64(st.wal_syncs), &ok);
	jset(o, "wal_records", ju64(st.wal_records), &ok);
	jset(o, "wal_pending", ju64(st.wal_pending), &ok);
	jset(o, "write_buffer_bytes", ju64(atomic_load(&fs->wb_bytes)), &ok);
	jset(o, "write_stalls", ju64(st.write_stalls), &ok);
	jset(o, "writers_stalled", ju64(st.writers_stalled), &ok);
	jset(o, "uptime_s", ji64(up), &ok);
	struct json_object *r = json_object_new_object();
	if (r) {
		jset(r, "records_replayed",
		     ju64(st.recovery.records_replayed), &ok);
		jset(r, "bytes_dropped", ju64(st.recovery.bytes_dropped), &ok);
		jset(r, "wal_files", ju64(st.recovery.wal_files), &ok);
		jset(r, "segments_quarantined",
		     ju64(st.recovery.segments_quarantined), &ok);
	}
	jset(o, "recovery", r, &ok);
	/* the embedder thread (all 0 when vector.embedder is "off") */
	struct t4dx_embed_stats es;
	t4dx_embed_stats(fs->db, &es);
	struct json_object *em = json_object_new_object();
	if (em) {
		jset(em, "embedder", json_object_new_string(
			     fs->cfg.vector.embedder), &ok);
		jset(em, "embedded", ju64(es.embedded), &ok);
		jset(em, "no_vector", ju64(es.no_vector), &ok);
		jset(em, "failed", ju64(es.failed), &ok);
		jset(em, "dropped", ju64(es.dropped), &ok);
		jset(em, "bytes_read", ju64(es.bytes_read), &ok);
		jset(em, "program_starts", ju64(es.starts), &ok);
		jset(em, "queued", ju64(es.queued), &ok);
		jset(em, "searches_waiting", ju64(es.waiting), &ok);
		jset(em, "deferred", ju64(es.deferred), &ok);
		jset(em, "flush_left", ju64(es.flush_left), &ok);
		jset(em, "busy", json_object_new_boolean(es.busy), &ok);
	}
	jset(o, "vectors", em, &ok);
	/* the segments' vector indexes in memory, by how they answer */
	struct t4dx_index_modes im;
	t4dx_index_modes(fs->db, &im);
	struct json_object *ixo = json_object_new_object();
	if (ixo) {
		jset(ixo, "graph", ju64(im.graph), &ok);
		jset(ixo, "scan", ju64(im.scan), &ok);
		jset(ixo, "scan_bytes", ju64(im.scan_bytes), &ok);
	}
	jset(o, "indexes", ixo, &ok);
	/* the segments' vector index files */
	struct t4dx_index_file_stats is;
	t4dx_index_file_stats(fs->db, &is);
	struct json_object *ixf = json_object_new_object();
	if (ixf) {
		jset(ixf, "files", ju64(is.files), &ok);
		jset(ixf, "bytes", ju64(is.bytes), &ok);
		jset(ixf, "loaded", ju64(is.loaded), &ok);
		jset(ixf, "loaded_bytes", ju64(is.loaded_bytes), &ok);
		jset(ixf, "unusable", ju64(is.unusable), &ok);
	}
	jset(o, "index_files", ixf, &ok);
	return jemit(out, o, ok);
}

/* When changes are durable (README Durability): "close" or "fsync".
 * Writing the other switches the mount; "close" first makes everything
 * queued durable, and answers that commit's error if it fails (the mode
 * is close from then on either way). */
static const char *const durability_names[] = { "close", "fsync" };

static int show_durability(struct t4dxfs *fs, struct t4dx_buf *out)
{
	const char *m = durability_names[t4dx_durability(fs->db) ==
					 T4DX_DURABLE_FSYNC];
	if (t4dx_buf_add(out, m, strlen(m)) || t4dx_buf_add(out, "\n", 1))
		return ENOMEM;
	return 0;
}

static int store_durability(struct t4dxfs *fs, const char *buf, size_t len)
{
	size_t clen;
	const char *c = command(buf, len, &clen);
	if (is_cmd(c, clen, "close"))
		return t4dx_set_durability(fs->db, T4DX_DURABLE_CLOSE);
	if (is_cmd(c, clen, "fsync"))
		return t4dx_set_durability(fs->db, T4DX_DURABLE_FSYNC);
	return EINVAL;
}

static int show_config(struct t4dxfs *fs, struct t4dx_buf *out)
{
	return t4dx_config_render(&fs->cfg, out);
}

static int show_alerts(struct t4dxfs *fs, struct t4dx_buf *out)
{
	return t4dx_render_alerts(fs->db, out);
}

/* ---- the table ---------------------------------------------------------- */

static const struct ctl_file files[] = {
	{ "alerts", INO_CTL_FIRST + 0, show_alerts, NULL, NULL, true },
	{ "breaker", INO_CTL_FIRST + 1, show_breaker, store_breaker, NULL,
	  false },
	{ "compact", INO_CTL_FIRST + 2, show_compact, store_compact,
	  compact_may_write, false },
	{ "config", INO_CTL_FIRST + 3, show_config, NULL, NULL, false },
	{ "health", INO_CTL_FIRST + 4, show_health, NULL, NULL, false },
	{ "metrics", INO_CTL_FIRST + 5, show_metrics, NULL, NULL, false },
	{ "stats", INO_CTL_FIRST + 6, show_stats, NULL, NULL, false },
	/* after the others: their inode numbers stay what they were */
	{ "durability", INO_CTL_FIRST + 7, show_durability,
	  store_durability, NULL, false },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

const struct ctl_file *ctl_by_ino(unsigned long ino)
{
	for (size_t i = 0; i < NFILES; i++)
		if (files[i].ino == ino)
			return &files[i];
	return NULL;
}

const struct ctl_file *ctl_by_name(const char *name)
{
	for (size_t i = 0; i < NFILES; i++)
		if (!strcmp(files[i].name, name))
			return &files[i];
	return NULL;
}

const struct ctl_file *ctl_at(size_t i)
{
	return i < NFILES ? &files[i] : NULL;
}
