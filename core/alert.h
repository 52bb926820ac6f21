/*
 * alert.h - the engine's alerts: a bounded ring of recent alerts (time,
 * level, text) and an optional sink that also receives each one (the
 * daemon sends them to syslog or stderr).  Thread-safe.
 */
#ifndef T4DX_ALERT_H
#define T4DX_ALERT_H

#include "buf.h"
#include "t4dx.h"

#define T4DX_ALERTS_KEPT 100

struct t4dx_alerts;

struct t4dx_alerts *t4dx_alerts_new(void);     /* NULL on ENOMEM */
void t4dx_alerts_free(struct t4dx_alerts *a);
/* Set the sink; the alerts kept so far are passed to it at once (called
 * under the ring's lock: fn must not raise alerts). */
void t4dx_alerts_set_sink(struct t4dx_alerts *a, t4dx_alert_fn fn, void *arg);
/* Record an alert (the text is cut at 400 bytes; newlines become spaces,
 * other control bytes \xHH) and pass it to the sink. */
void t4dx_alerts_add(struct t4dx_alerts *a, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Append the kept alerts, oldest first, one line each:
 * "2026-11-27T10:00:00.123Z WARN text".  0 or ENOMEM. */
int t4dx_alerts_render(struct t4dx_alerts *a, struct t4dx_buf *out);

#endif
