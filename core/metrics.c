/*
 * metrics.c - latency histograms and the Prometheus text format (see
 * metrics.h).
 *
 * Values must parse in Prometheus whatever the process's locale, so
 * doubles are printed under the "C" locale (uselocale is per thread), and
 * seconds derived from nanosecond integers (bucket bounds, _sum) are
 * printed as exact decimals instead of going through a double.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"

/* 50 us .. 10 s: memtable reads sit in the first buckets, fdatasync in the
 * millisecond ones, and 5 s is the health check's limit. */
#define BOUNDS_NS \
	X(50000) X(100000) X(250000) X(500000) \
	X(1000000) X(2500000) X(5000000) X(10000000) \
	X(25000000) X(50000000) X(100000000) X(250000000) \
	X(500000000) X(1000000000) X(5000000000) X(10000000000)

#define X(ns) (ns##ULL),
static const uint64_t bound_ns[T4DX_HIST_BUCKETS] = { BOUNDS_NS };
#undef X
#define X(ns) (ns##ULL) / 1e9,
const double t4dx_hist_bounds[T4DX_HIST_BUCKETS] = { BOUNDS_NS };
#undef X

void t4dx_hist_observe_ns(struct t4dx_hist *h, uint64_t ns)
{
	int i = 0;
	while (i < T4DX_HIST_BUCKETS && ns > bound_ns[i])   /* le: inclusive */
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

/* ns as seconds, exactly: "0.00005", "21.000100001", "10". */
static void fmt_ns(char out[32], uint64_t ns)
{
	uint64_t frac = ns % 1000000000;
	int n = snprintf(out, 32, "%" PRIu64, ns / 1000000000);
	if (!frac)
		return;
	snprintf(out + n, (size_t)(32 - n), ".%09" PRIu64, frac);
	char *end = out + strlen(out);
	while (end[-1] == '0')
		*--end = '\0';
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
	c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static void fmt_double(char out[40], double v)
{
	if (v != v) {
		strcpy(out, "NaN");
	} else if (v > DBL_MAX || v < -DBL_MAX) {
		strcpy(out, v > 0 ? "+Inf" : "-Inf");
	} else if (v >= -9007199254740992.0 && v <= 9007199254740992.0 &&
		   v == (double)(int64_t)v) {
		/* integral and exact: no exponent, no ".0" */
		snprintf(out, 40, "%" PRId64, (int64_t)v);
	} else {
		pthread_once(&c_locale_once, c_locale_init);
		locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
		snprintf(out, 40, "%.9g", v);
		if (c_locale)
			uselocale(old);
	}
}

int t4dx_metric_header(struct t4dx_buf *out, const char *name,
		       const char *help, const char *type)
{
	if (t4dx_buf_addf(out, "# HELP %s ", name))
		return ENOMEM;
	/* HELP text escapes only backslash and newline */
	for (const char *s = help; *s; s++) {
		const char *e = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : NULL;
		if (e ? t4dx_buf_add(out, e, 2) : t4dx_buf_add(out, s, 1))
			return ENOMEM;
	}
	return t4dx_buf_addf(out, "\n# TYPE %s %s\n", name, type);
}

static int line(struct t4dx_buf *out, const char *name, const char *suffix,
		const char *labels, const char *value)
{
	if (labels && *labels)
		return t4dx_buf_addf(out, "%s%s{%s} %s\n", name, suffix, labels,
				     value);
	return t4dx_buf_addf(out, "%s%s %s\n", name, suffix, value);
}

int t4dx_metric_sample(struct t4dx_buf *out, const char *name,
		       const char *labels, double value)
{
	char v[40];
	fmt_double(v, value);
	return line(out, name, "", labels, v);
}

int t4dx_metric_sample_u64(struct t4dx_buf *out, const char *name,
			   const char *labels, uint64_t value)
{
	char v[24];
	snprintf(v, sizeof(v), "%" PRIu64, value);
	return line(out, name, "", labels, v);
}

int t4dx_metric_hist(struct t4dx_buf *out, const char *name,
		     const char *labels, const struct t4dx_hist *h)
{
	/* Buckets are read one by one while writers go on, so _sum may be a
	 * little ahead of or behind the counts; the +Inf bucket and _count
	 * come from the same reads and always agree, as Prometheus expects. */
	const char *l = labels ? labels : "", *comma = *l ? "," : "";
	char v[32];
	uint64_t cum = 0;
	for (int i = 0; i <= T4DX_HIST_BUCKETS; i++) {
		cum += atomic_load_explicit(&h->counts[i],
					    memory_order_relaxed);
		if (i < T4DX_HIST_BUCKETS)
			fmt_ns(v, bound_ns[i]);
		else
			strcpy(v, "+Inf");
		if (t4dx_buf_addf(out, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n",
				  name, l, comma, v, cum))
			return ENOMEM;
	}
	fmt_ns(v, atomic_load_explicit(&h->sum_ns, memory_order_relaxed));
	if (line(out, name, "_sum", l, v))
		return ENOMEM;
	snprintf(v, sizeof(v), "%" PRIu64, cum);
	return line(out, name, "_count", l, v);
}

int t4dx_metric_label_escape(struct t4dx_buf *out, const char *s)
{
	for (; *s; s++) {
		const char *e = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" :
				*s == '\n' ? "\\n" : NULL;
		if (e ? t4dx_buf_add(out, e, 2) : t4dx_buf_add(out, s, 1))
			return ENOMEM;
	}
	return 0;
}
