/* alert.c - see alert.h. */
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert.h"

struct alert {
	int64_t time_ns;
	int level;
	char text[400];
};

struct t4dx_alerts {
	pthread_mutex_t mu;             /* guards everything below */
	struct alert ring[T4DX_ALERTS_KEPT];
	uint64_t total;                 /* next slot is total % KEPT */
	t4dx_alert_fn sink;
	void *sink_arg;
};

const char *t4dx_alert_level_name(int level)
{
	switch (level) {
	case T4DX_ALERT_INFO: return "INFO";
	case T4DX_ALERT_WARN: return "WARN";
	default: return "CRIT";
	}
}

struct t4dx_alerts *t4dx_alerts_new(void)
{
	struct t4dx_alerts *a = calloc(1, sizeof(*a));
	if (a)
		pthread_mutex_init(&a->mu, NULL);
	return a;
}

void t4dx_alerts_free(struct t4dx_alerts *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void t4dx_alerts_set_sink(struct t4dx_alerts *a, t4dx_alert_fn fn, void *arg)
{
	pthread_mutex_lock(&a->mu);
	a->sink = fn;
	a->sink_arg = arg;
	/* what was raised before there was a sink (while the store opened)
	 * goes to it first */
	uint64_t first = a->total > T4DX_ALERTS_KEPT
				 ? a->total - T4DX_ALERTS_KEPT : 0;
	for (uint64_t i = first; fn && i < a->total; i++) {
		const struct alert *al = &a->ring[i % T4DX_ALERTS_KEPT];
		fn(arg, al->level, al->text);
	}
	pthread_mutex_unlock(&a->mu);
}

void t4dx_alerts_add(struct t4dx_alerts *a, int level, const char *fmt, ...)
{
	struct alert al = { .time_ns = t4dx_now_ns(), .level = level };
	char raw[sizeof(al.text)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* one line of UTF-8, and nothing a terminal would obey: a path
	 * from the configuration or a file name may hold any byte.  The C1
	 * controls (U+0080..U+009F, 0xc2 0x80..0x9f in UTF-8: CSI among
	 * them) are escaped byte by byte like the C0 ones, and so is every
	 * byte that is not part of a valid UTF-8 character (.ctl/alerts is
	 * text, and `t4dx status --json` puts its lines in JSON strings);
	 * a character is copied whole or not at all. */
	size_t n = 0;
	bool c1 = false;        /* the byte after a 0xc2 that starts one */
	for (const char *p = raw; *p;) {
		unsigned char c = (unsigned char)*p;
		unsigned char next = (unsigned char)p[1];
		size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2
			     : c >= 0xe0 && c <= 0xef ? 3
			     : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		if (len > 1 && (strnlen(p, len) < len ||
				!t4dx_utf8_valid((const unsigned char *)p, len)))
			len = 0;
		bool starts_c1 = c == 0xc2 && next >= 0x80 && next <= 0x9f;
		bool esc = (c < 0x20 && c != '\n' && c != '\r') || c == 0x7f ||
			   starts_c1 || c1 || !len;
		c1 = starts_c1;
		if (esc)
			len = 1;
		if (n + (esc ? 4 : len) >= sizeof(al.text))
			break;
		if (esc)
			n += (size_t)snprintf(al.text + n, 5, "\\x%02x", c);
		else if (len == 1)
			al.text[n++] = c == '\n' || c == '\r' ? ' ' : (char)c;
		else
			memcpy(al.text + n, p, len), n += len;
		p += len;
	}
	al.text[n] = '\0';
	pthread_mutex_lock(&a->mu);
	a->ring[a->total % T4DX_ALERTS_KEPT] = al;
	a->total++;
	t4dx_alert_fn sink = a->sink;
	void *arg = a->sink_arg;
	pthread_mutex_unlock(&a->mu);
	if (sink)
		sink(arg, level, al.text);
}

int t4dx_alerts_render(struct t4dx_alerts *a, struct t4dx_buf *out)
{
	int rc = 0;
	pthread_mutex_lock(&a->mu);
	uint64_t first = a->total > T4DX_ALERTS_KEPT
				 ? a->total - T4DX_ALERTS_KEPT : 0;
	for (uint64_t i = first; !rc && i < a->total; i++) {
		const struct alert *al = &a->ring[i % T4DX_ALERTS_KEPT];
		time_t sec = (time_t)(al->time_ns / 1000000000);
		struct tm tm;
		char ts[32];
		gmtime_r(&sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		rc = t4dx_buf_addf(out, "%s.%03dZ %s %s\n", ts,
				   (int)(al->time_ns / 1000000 % 1000),
				   t4dx_alert_level_name(al->level), al->text);
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}
