/*
 * metrics.h - counters and latency histograms, lock-free to update, and
 * their rendering in the Prometheus text exposition format (version
 * 0.0.4): "# HELP", "# TYPE", then samples; histograms as cumulative
 * _bucket{le="..."} lines ending with le="+Inf", then _sum and _count.
 */
#ifndef T4DX_METRICS_H
#define T4DX_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

/* Upper bounds of the latency buckets, in seconds (shared by all), from
 * 50 us to 10 s; a bucket holds values <= its bound, as "le" says. */
#define T4DX_HIST_BUCKETS 16
extern const double t4dx_hist_bounds[T4DX_HIST_BUCKETS];

/* Zero-initialise; observe from any thread (relaxed atomics). */
struct t4dx_hist {
	atomic_uint_least64_t counts[T4DX_HIST_BUCKETS + 1];   /* last: +Inf */
	atomic_uint_least64_t sum_ns;
};

void t4dx_hist_observe_ns(struct t4dx_hist *h, uint64_t ns);

/* Append "# HELP name help\n# TYPE name TYPE\n" to out.  0 or ENOMEM. */
int t4dx_metric_header(struct t4dx_buf *out, const char *name,
		       const char *help, const char *type);
/* Append one sample line: name{labels} value.  labels may be NULL or ""
 * (no braces); it is inserted as given, e.g. "op=\"write\"".  Whole values
 * print as integers, others with "%.9g", and NaN, +Inf, -Inf as the format
 * spells them, whatever the locale. */
int t4dx_metric_sample(struct t4dx_buf *out, const char *name,
		       const char *labels, double value);
int t4dx_metric_sample_u64(struct t4dx_buf *out, const char *name,
			   const char *labels, uint64_t value);
/* Append the _bucket, _sum and _count lines of h (no header); le and the
 * sum are exact decimal seconds ("0.00005", "21.000100001"). */
int t4dx_metric_hist(struct t4dx_buf *out, const char *name,
		     const char *labels, const struct t4dx_hist *h);
/* Escape a label value (backslash, double quote, newline) into out. */
int t4dx_metric_label_escape(struct t4dx_buf *out, const char *s);

#endif
