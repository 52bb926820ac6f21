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

#include "t4dxfs.h"
#include "breaker.h"
#include "config.h"
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

/* ---- breaker ------------------------------------------------------------ */

static int show_breaker(struct t4dxfs *fs, struct t4dx_buf *out)
{
	struct t4dx_breaker_info bi;
	t4dx_breaker_get(t4dx_get_breaker(fs->db), &bi);
	return t4dx_buf_addf(out,
		"{\"state\":\"%s\",\"forced\":%s,"
		"\"consecutive_failures\":%u,\"consecutive_successes\":%u,"
		"\"failure_threshold\":%u,\"success_threshold\":%u,"
		"\"reset_timeout_s\":%.9g,\"last_transition_ns\":%lld,"
		"\"next_half_open_s\":%.3f,\"calls\":%llu,\"failures\":%llu,"
		"\"rejections\":%llu,\"transitions\":%llu}\n",
		t4dx_breaker_state_name(bi.state), bi.forced ? "true" : "false",
		bi.consecutive_failures, bi.consecutive_successes,
		bi.cfg.failure_threshold, bi.cfg.success_threshold,
		bi.cfg.reset_timeout_s, (long long)bi.last_transition_ns,
		bi.next_half_open_s, (unsigned long long)bi.calls,
		(unsigned long long)bi.failures,
		(unsigned long long)bi.rejections,
		(unsigned long long)bi.transitions);
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

static int show_check(struct t4dx_buf *out, const char *name,
		      const struct t4dx_check *c)
{
	return t4dx_buf_addf(out,
		"\"%s\":{\"ok\":%s,\"last_run_ns\":%lld,\"duration_s\":%.6f,"
		"\"consecutive_failures\":%u,\"runs\":%llu,\"error\":\"%s\"}",
		name, c->runs == 0 || c->ok ? "true" : "false",
		(long long)c->last_run_ns, c->duration_s,
		c->consecutive_failures, (unsigned long long)c->runs,
		c->last_error ? t4dx_strerror(c->last_error) : "");
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
		 st.recovery.wal_gap_to)
		status = "degraded";     /* a gap: acknowledged changes lost,
					    until a restart */
	int rc = t4dx_buf_addf(out, "{\"status\":\"%s\",\"level\":%d,"
			       "\"mode\":\"%s\",\"breaker\":\"%s\","
			       "\"fatal\":%s,\"checks\":{", status, h.level,
			       t4dx_level_name(h.level),
			       t4dx_breaker_state_name(bi.state),
			       h.fatal ? "true" : "false");
	if (!rc)
		rc = show_check(out, "wal", &h.wal);
	if (!rc)
		rc = t4dx_buf_add(out, ",", 1);
	if (!rc)
		rc = show_check(out, "segments", &h.segments);
	if (!rc)
		rc = t4dx_buf_addf(out, "},\"unpersisted\":%llu,"
			"\"queue_depth\":%llu,"
			"\"recovery\":{\"records_replayed\":%llu,"
			"\"records_rescued\":%llu,"
			"\"bytes_dropped\":%llu,\"wal_files\":%llu,"
			"\"segments_quarantined\":%llu,"
			"\"items_rebuilt\":%llu,"
			"\"rebuild_missing_before\":%llu,"
			"\"wal_gap\":[%llu,%llu],\"quarantined\":[",
			(unsigned long long)h.unpersisted,
			(unsigned long long)h.queue_depth,
			(unsigned long long)st.recovery.records_replayed,
			(unsigned long long)h.rescued,
			(unsigned long long)st.recovery.bytes_dropped,
			(unsigned long long)st.recovery.wal_files,
			(unsigned long long)st.recovery.segments_quarantined,
			(unsigned long long)st.recovery.items_rebuilt,
			(unsigned long long)
				st.recovery.rebuild_missing_before,
			(unsigned long long)st.recovery.wal_gap_from,
			(unsigned long long)st.recovery.wal_gap_to);
	/* file names we made: digits, dots, letters; no JSON escaping */
	const char *q = st.recovery.quarantined;
	for (bool first = true; !rc && *q; first = false) {
		size_t n = strcspn(q, " ");
		rc = t4dx_buf_addf(out, "%s\"%.*s\"", first ? "" : ",",
				   (int)n, q);
		q += n;
		q += *q == ' ';
	}
	/* where a rescue goes when DATA_DIR cannot take it */
	const char *rdir, *rproblem;
	t4dx_get_rescue(fs->db, &rdir, &rproblem);
	if (!rc)
		rc = t4dx_buf_addf(out, "]},\"rescue\":{\"ok\":%s,\"dir\":",
				   *rproblem ? "false" : "true");
	if (!rc)
		rc = t4dx_buf_add_jstr(out, rdir, strlen(rdir));
	if (!rc)
		rc = t4dx_buf_add(out, ",\"problem\":", 11);
	if (!rc)
		rc = t4dx_buf_add_jstr(out, rproblem, strlen(rproblem));
	return rc ? rc : t4dx_buf_add(out, "}}\n", 3);
}

/* ---- compact ------------------------------------------------------------ */

static int show_compact(struct t4dxfs *fs, struct t4dx_buf *out)
{
	uint64_t done, total;
	int running = t4dx_compact_progress(fs->db, &done, &total);
	int rc;
	if (running >= 0)
		rc = t4dx_buf_addf(out, "{\"running\":\"%s\","
				   "\"progress\":{\"done\":%llu,\"total\":%llu}",
				   t4dx_compact_name(running),
				   (unsigned long long)done,
				   (unsigned long long)total);
	else
		rc = t4dx_buf_addf(out, "{\"running\":null,\"progress\":null");
	for (int k = 0; !rc && k < T4DX_COMPACT_KINDS; k++) {
		struct t4dx_compact_stats cs;
		t4dx_get_compact_stats(fs->db, k, &cs);
		rc = t4dx_buf_addf(out, ",\"%s\":{\"runs\":%llu,"
				   "\"bytes_written\":%llu,\"last\":",
				   t4dx_compact_name(k),
				   (unsigned long long)cs.runs,
				   (unsigned long long)cs.bytes_written);
		if (!rc && !cs.has_last) {
			rc = t4dx_buf_addf(out, "null}");
		} else if (!rc) {
			const struct t4dx_compact_run *r = &cs.last;
			rc = t4dx_buf_addf(out,
				"{\"start_ns\":%lld,\"duration_s\":%.6f,"
				"\"result\":\"%s%s\",\"items_in\":%llu,"
				"\"items_out\":%llu,\"bytes_in\":%llu,"
				"\"bytes_out\":%llu}}",
				(long long)r->start_ns, r->duration_s,
				r->result ? "error: " : "ok",
				r->result ? t4dx_strerror(r->result) : "",
				(unsigned long long)r->items_in,
				(unsigned long long)r->items_out,
				(unsigned long long)r->bytes_in,
				(unsigned long long)r->bytes_out);
		}
	}
	return rc ? rc : t4dx_buf_add(out, "}\n", 2);
}

/* A compaction removed an item: the kernel may still cache its name. */
static void forget_removed(void *arg, uint64_t parent, const char *name,
			   size_t len, uint64_t ino)
{
	struct t4dxfs *fs = arg;
	ns_lock(fs);
	struct node *n = node_find(ino);
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
	"listxattr", "removexattr", "symlink", "link", "mknod",
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
			   "Records waiting in the replay queue (not yet "
			   "durable).", (double)h.queue_depth);
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
		rc = counter(out, "t4dx_alerts_total", "Alerts raised.",
			     fs->alerts_seen);
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
	uint64_t items = item_count(&st);
	int64_t up = (t4dx_now_ns() - fs->start_ns) / 1000000000;
	return t4dx_buf_addf(out,
		"{\"items\":%llu,\"memtable_items\":%llu,"
		"\"memtable_bytes\":%llu,\"segments\":%llu,"
		"\"segment_bytes\":%llu,\"wal_lsn\":%llu,\"wal_bytes\":%llu,"
		"\"archive_bytes\":%llu,\"wal_syncs\":%llu,"
		"\"wal_records\":%llu,\"write_buffer_bytes\":%llu,"
		"\"uptime_s\":%lld,"
		"\"recovery\":{\"records_replayed\":%llu,"
		"\"bytes_dropped\":%llu,\"wal_files\":%llu,"
		"\"segments_quarantined\":%llu}}\n",
		(unsigned long long)items,
		(unsigned long long)st.memtable_items,
		(unsigned long long)st.memtable_bytes,
		(unsigned long long)st.segments,
		(unsigned long long)st.segment_bytes,
		(unsigned long long)st.wal_lsn,
		(unsigned long long)st.wal_bytes,
		(unsigned long long)st.archive_bytes,
		(unsigned long long)st.wal_syncs,
		(unsigned long long)st.wal_records,
		(unsigned long long)atomic_load(&fs->wb_bytes), (long long)up,
		(unsigned long long)st.recovery.records_replayed,
		(unsigned long long)st.recovery.bytes_dropped,
		(unsigned long long)st.recovery.wal_files,
		(unsigned long long)st.recovery.segments_quarantined);
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
	{ "alerts", INO_CTL_FIRST + 0, show_alerts, NULL, NULL },
	{ "breaker", INO_CTL_FIRST + 1, show_breaker, store_breaker, NULL },
	{ "compact", INO_CTL_FIRST + 2, show_compact, store_compact,
	  compact_may_write },
	{ "config", INO_CTL_FIRST + 3, show_config, NULL, NULL },
	{ "health", INO_CTL_FIRST + 4, show_health, NULL, NULL },
	{ "metrics", INO_CTL_FIRST + 5, show_metrics, NULL, NULL },
	{ "stats", INO_CTL_FIRST + 6, show_stats, NULL, NULL },
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
