/* test_metrics.c - histogram buckets and the Prometheus text format: exact
 * text of a small histogram, value formatting, escaping, and a checker of
 * the exposition grammar run over every rendered line. */
#include <locale.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "unit.h"

/* NUL-terminated view of a buffer (buf_add does not terminate). */
static const char *str(struct t4dx_buf *b)
{
	REQUIRE(t4dx_buf_add(b, "", 1) == 0);
	b->len--;
	return (const char *)b->p;
}

/* ---- a checker of the text exposition format 0.0.4 ------------------- */

static bool name_ok(const char **pp, bool colon)
{
	const char *p = *pp;
	if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	      *p == '_' || (colon && *p == ':')))
		return false;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	       (*p >= '0' && *p <= '9') || *p == '_' || (colon && *p == ':'))
		p++;
	*pp = p;
	return true;
}

static bool value_ok(const char *p)
{
	if (!strcmp(p, "NaN") || !strcmp(p, "+Inf") || !strcmp(p, "-Inf"))
		return true;
	if (!*p || strchr(p, ' ') || strchr(p, ','))
		return false;
	for (const char *q = p; *q; q++)        /* no "inf", "nan", hex */
		if (!strchr("0123456789+-.eE", *q))
			return false;
	char *end;
	strtod(p, &end);
	return *end == '\0';
}

/* The metric name declared by the last # TYPE, and its type. */
struct family { char name[128], type[16]; };

/* One line (without '\n'); returns false and says why if it is not valid. */
static bool line_ok(const char *l, struct family *f, const char **why)
{
	const char *p = l;
	if (*p == '#') {
		bool help = !strncmp(p, "# HELP ", 7);
		bool type = !strncmp(p, "# TYPE ", 7);
		if (!help && !type)
			return *why = "comment", false;
		p += 7;
		const char *n = p;
		if (!name_ok(&p, true) || *p != ' ')
			return *why = "comment name", false;
		if (help) {
			for (p++; *p; p++)
				if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
					return *why = "help escape", false;
				else if (*p == '\\')
					p++;
			return true;
		}
		const char *t = p + 1;
		if (strcmp(t, "counter") && strcmp(t, "gauge") &&
		    strcmp(t, "histogram") && strcmp(t, "summary") &&
		    strcmp(t, "untyped"))
			return *why = "type", false;
		snprintf(f->name, sizeof(f->name), "%.*s", (int)(p - n), n);
		snprintf(f->type, sizeof(f->type), "%s", t);
		return true;
	}
	const char *n = p;
	if (!name_ok(&p, true))
		return *why = "metric name", false;
	size_t nl = (size_t)(p - n), fl = strlen(f->name);
	bool same = nl == fl && !strncmp(n, f->name, fl);
	if (!same && !strcmp(f->type, "histogram") &&
	    !strncmp(n, f->name, fl)) {
		const char *suf = n + fl;
		same = (nl == fl + 7 && !strncmp(suf, "_bucket", 7)) ||
		       (nl == fl + 4 && !strncmp(suf, "_sum", 4)) ||
		       (nl == fl + 6 && !strncmp(suf, "_count", 6));
	}
	if (!same)
		return *why = "sample of an undeclared family", false;
	if (*p == '{') {
		p++;
		while (*p != '}') {
			if (!name_ok(&p, false) || p[0] != '=' || p[1] != '"')
				return *why = "label name", false;
			for (p += 2; *p != '"'; p++) {
				if (!*p || *p == '\n')
					return *why = "label value", false;
				if (*p == '\\' && !strchr("\\\"n", *++p))
					return *why = "label escape", false;
			}
			p++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				return *why = "label separator", false;
		}
		p++;
	}
	if (*p != ' ')
		return *why = "space before value", false;
	if (!value_ok(p + 1))
		return *why = "value", false;
	return true;
}

/* Every line of text is valid; the text ends in '\n'. */
static bool text_ok(const char *text, bool quiet)
{
	struct family f = { "", "" };
	char l[1024];
	if (!*text || text[strlen(text) - 1] != '\n')
		return false;
	for (const char *p = text; *p; ) {
		const char *e = strchr(p, '\n');
		snprintf(l, sizeof(l), "%.*s", (int)(e - p), p);
		const char *why = NULL;
		if (!line_ok(l, &f, &why)) {
			if (!quiet)
				fprintf(stderr, "bad line (%s): %s\n", why, l);
			return false;
		}
		p = e + 1;
	}
	return true;
}

static void test_checker(void)
{
	/* the checker itself must reject what Prometheus would */
	CHECK(text_ok("# HELP a_b:c x \\\\ \\n y\n# TYPE a_b:c gauge\n"
		      "a_b:c{x=\"1\",y_2=\"a\\\"b\\\\\\n\"} -1.5e-07\n"
		      "a_b:c NaN\n", false));
	static const char *bad[] = {
		"# TYPE 1a gauge\n", "# TYPE a bogus\n", "# HELP a x\\q\n",
		"#comment\n", "# TYPE a gauge\nb 1\n", "# TYPE a gauge\na 1",
		"# TYPE a gauge\na{x=\"1} 1\n",
		"# TYPE a gauge\na{1x=\"1\"} 1\n",
		"# TYPE a gauge\na{x=1} 1\n",
		"# TYPE a gauge\na{x=\"\\t\"} 1\n",
		"# TYPE a gauge\na 1 2\n", "# TYPE a gauge\na 1,5\n",
		"# TYPE a gauge\na inf\n", "# TYPE a gauge\na  1\n",
		"# TYPE a gauge\na{a:b=\"1\"} 1\n", "# TYPE a gauge\na_sum 1\n",
		"# TYPE a histogram\na_bucket{le=\"1\"}\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (text_ok(bad[i], true)) {
			fprintf(stderr, "checker accepted: %s", bad[i]);
			unit_failures++;
		}
}

/* ---- the module ------------------------------------------------------ */

static void test_bounds(void)
{
	CHECK(t4dx_hist_bounds[0] == 0.00005);
	CHECK(t4dx_hist_bounds[T4DX_HIST_BUCKETS - 1] == 10);
	for (int i = 1; i < T4DX_HIST_BUCKETS; i++)
		CHECK(t4dx_hist_bounds[i] > t4dx_hist_bounds[i - 1]);
}

static void test_observe(void)
{
	struct t4dx_hist h = { 0 };
	for (int i = 0; i < T4DX_HIST_BUCKETS; i++) {
		uint64_t ns = (uint64_t)(t4dx_hist_bounds[i] * 1e9 + 0.5);
		t4dx_hist_observe_ns(&h, ns);           /* le is inclusive */
		t4dx_hist_observe_ns(&h, ns + 1);       /* the next bucket */
	}
	t4dx_hist_observe_ns(&h, 0);
	CHECK_EQ_INT(h.counts[0], 2);
	for (int i = 1; i < T4DX_HIST_BUCKETS; i++)
		CHECK_EQ_INT(h.counts[i], 2);
	CHECK_EQ_INT(h.counts[T4DX_HIST_BUCKETS], 1);
	t4dx_hist_observe_ns(&h, UINT64_C(1) << 62);
	CHECK_EQ_INT(h.counts[T4DX_HIST_BUCKETS], 2);
}

static void test_hist_text(void)
{
	struct t4dx_hist h = { 0 };
	t4dx_hist_observe_ns(&h, 0);
	t4dx_hist_observe_ns(&h, 50000);
	t4dx_hist_observe_ns(&h, 50001);
	t4dx_hist_observe_ns(&h, 1000000000);
	t4dx_hist_observe_ns(&h, 20000000000);
	struct t4dx_buf b = { 0 };
	REQUIRE(t4dx_metric_hist(&b, "t4dx_op_seconds", "op=\"write\"",
				 &h) == 0);
	static const char *le[] = { "0.00005", "0.0001", "0.00025", "0.0005",
		"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
		"0.25", "0.5", "1", "5", "10", "+Inf" };
	static const int cum[] = { 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4,
				   4, 5 };
	struct t4dx_buf want = { 0 };
	for (int i = 0; i <= T4DX_HIST_BUCKETS; i++)
		t4dx_buf_addf(&want, "t4dx_op_seconds_bucket{op=\"write\","
			      "le=\"%s\"} %d\n", le[i], cum[i]);
	t4dx_buf_addf(&want, "t4dx_op_seconds_sum{op=\"write\"} 21.000100001\n"
		      "t4dx_op_seconds_count{op=\"write\"} 5\n");
	CHECK(!strcmp(str(&b), str(&want)));
	if (strcmp(str(&b), str(&want)))
		fprintf(stderr, "got:\n%swant:\n%s", str(&b), str(&want));
	/* every le matches the bound it stands for */
	for (int i = 0; i < T4DX_HIST_BUCKETS; i++)
		CHECK(strtod(le[i], NULL) == t4dx_hist_bounds[i]);

	/* no labels: no braces on _sum and _count, le alone in the bucket */
	t4dx_buf_free(&b);
	struct t4dx_hist e = { 0 };
	REQUIRE(t4dx_metric_hist(&b, "x", NULL, &e) == 0);
	const char *s = str(&b);
	CHECK(!strncmp(s, "x_bucket{le=\"0.00005\"} 0\n", 25));
	CHECK(strstr(s, "\nx_bucket{le=\"+Inf\"} 0\nx_sum 0\nx_count 0\n"));
	t4dx_buf_free(&b);
	REQUIRE(t4dx_metric_hist(&b, "x", "", &h) == 0);
	CHECK(strstr(str(&b), "\nx_sum 21.000100001\nx_count 5\n") != NULL);
	t4dx_buf_free(&b);
	t4dx_buf_free(&want);
}

static void test_header(void)
{
	struct t4dx_buf b = { 0 };
	REQUIRE(t4dx_metric_header(&b, "t4dx_ops_total", "Operations.",
				   "counter") == 0);
	CHECK(!strcmp(str(&b), "# HELP t4dx_ops_total Operations.\n"
		      "# TYPE t4dx_ops_total counter\n"));
	b.len = 0;
	REQUIRE(t4dx_metric_header(&b, "g", "a\\b\nc \"q\"", "gauge") == 0);
	CHECK(!strcmp(str(&b), "# HELP g a\\\\b\\nc \"q\"\n# TYPE g gauge\n"));
	t4dx_buf_free(&b);
}

static void check_value(double v, const char *want)
{
	struct t4dx_buf b = { 0 };
	REQUIRE(t4dx_metric_sample(&b, "m", NULL, v) == 0);
	char line[64];
	snprintf(line, sizeof(line), "m %s\n", want);
	if (strcmp(str(&b), line)) {
		fprintf(stderr, "value %.17g: got %s", v, str(&b));
		unit_failures++;
	}
	t4dx_buf_free(&b);
}

static void test_values(void)
{
	check_value(0, "0");
	check_value(-0.0, "0");
	check_value(42, "42");
	check_value(-3, "-3");
	check_value(1234567890123, "1234567890123");
	check_value(9007199254740992.0, "9007199254740992");
	check_value(1e20, "1e+20");
	check_value(0.25, "0.25");
	check_value(0.1, "0.1");
	check_value(1.0 / 3, "0.333333333");
	check_value(-2.5e-7, "-2.5e-07");
	check_value(0.0 / 0.0, "NaN");
	check_value(1.0 / 0.0, "+Inf");
	check_value(-1.0 / 0.0, "-Inf");

	struct t4dx_buf b = { 0 };
	REQUIRE(t4dx_metric_sample_u64(&b, "c_total", "errno=\"EIO\"",
				       UINT64_MAX) == 0);
	CHECK(!strcmp(str(&b),
		      "c_total{errno=\"EIO\"} 18446744073709551615\n"));
	b.len = 0;
	REQUIRE(t4dx_metric_sample_u64(&b, "c_total", "", 7) == 0);
	CHECK(!strcmp(str(&b), "c_total 7\n"));
	t4dx_buf_free(&b);

	/* A locale with a decimal comma must not leak into the output. */
	static const char *comma[] = { "de_DE.UTF-8", "de_DE.utf8",
				       "fr_FR.UTF-8", "fr_FR.utf8" };
	for (size_t i = 0; i < sizeof(comma) / sizeof(*comma); i++) {
		if (!setlocale(LC_NUMERIC, comma[i]))
			continue;
		check_value(0.25, "0.25");
		check_value(-1e-9, "-1e-09");
		/* and the caller's locale is back in force */
		CHECK(!strcmp(localeconv()->decimal_point, ","));
		setlocale(LC_NUMERIC, "C");
		return;
	}
	fprintf(stderr, "  (no decimal-comma locale installed: not checked)\n");
}

static void test_label_escape(void)
{
	struct t4dx_buf b = { 0 };
	REQUIRE(t4dx_metric_label_escape(&b, "a\"b\\c\nd\te") == 0);
	CHECK(!strcmp(str(&b), "a\\\"b\\\\c\\nd\te"));
	b.len = 0;
	REQUIRE(t4dx_metric_label_escape(&b, "") == 0);
	CHECK_EQ_INT(b.len, 0);
	t4dx_buf_free(&b);
}

/* A page as .ctl/metrics would build it, every line checked. */
static void test_grammar(void)
{
	struct t4dx_buf b = { 0 }, l = { 0 };
	struct t4dx_hist h = { 0 };
	for (uint64_t ns = 1; ns < UINT64_C(30000000000); ns *= 3)
		t4dx_hist_observe_ns(&h, ns);
	REQUIRE(t4dx_metric_header(&b, "t4dx_errors_total", "Errors by errno.\n"
				   "See \\errno.", "counter") == 0);
	REQUIRE(t4dx_buf_add(&l, "errno=\"", 7) == 0);
	REQUIRE(t4dx_metric_label_escape(&l, "weird \"name\"\\\n") == 0);
	REQUIRE(t4dx_buf_add(&l, "\",op=\"write\"", 12) == 0);
	REQUIRE(t4dx_metric_sample_u64(&b, "t4dx_errors_total", str(&l),
				       3) == 0);
	REQUIRE(t4dx_metric_sample_u64(&b, "t4dx_errors_total", NULL, 0) == 0);
	REQUIRE(t4dx_metric_header(&b, "t4dx_level", "Degradation level.",
				   "gauge") == 0);
	double vals[] = { 0, -1, 1e300, 1e-300, 0.1, 0.0 / 0.0, 1.0 / 0.0,
			  -1.0 / 0.0 };
	for (size_t i = 0; i < sizeof(vals) / sizeof(*vals); i++)
		REQUIRE(t4dx_metric_sample(&b, "t4dx_level", "", vals[i]) == 0);
	REQUIRE(t4dx_metric_header(&b, "t4dx_write_seconds", "Write latency.",
				   "histogram") == 0);
	REQUIRE(t4dx_metric_hist(&b, "t4dx_write_seconds", str(&l), &h) == 0);
	REQUIRE(t4dx_metric_hist(&b, "t4dx_write_seconds", NULL, &h) == 0);
	CHECK(text_ok(str(&b), false));
	t4dx_buf_free(&b);
	t4dx_buf_free(&l);
}

#define NTHREADS 4
#define PER 170000

static struct t4dx_hist shared;

/* Every thread hits every bucket, so lost updates would show. */
static uint64_t nth(uint64_t i)
{
	unsigned k = (unsigned)(i % (T4DX_HIST_BUCKETS + 1));
	return k < T4DX_HIST_BUCKETS ?
	       (uint64_t)(t4dx_hist_bounds[k] * 1e9 + 0.5) : UINT64_C(1) << 40;
}

static void *hammer(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < PER; i++)
		t4dx_hist_observe_ns(&shared, nth(i));
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		REQUIRE(pthread_create(&t[i], NULL, hammer, NULL) == 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	uint64_t sum = 0;
	for (uint64_t i = 0; i < PER; i++)
		sum += NTHREADS * nth(i);
	for (int i = 0; i <= T4DX_HIST_BUCKETS; i++)
		CHECK_EQ_INT(atomic_load(&shared.counts[i]),
			     NTHREADS * PER / (T4DX_HIST_BUCKETS + 1));
	CHECK(atomic_load(&shared.sum_ns) == sum);
}

int main(void)
{
	RUN(test_checker);
	RUN(test_bounds);
	RUN(test_observe);
	RUN(test_hist_text);
	RUN(test_header);
	RUN(test_values);
	RUN(test_label_escape);
	RUN(test_grammar);
	RUN(test_threads);
	UNIT_DONE();
}
