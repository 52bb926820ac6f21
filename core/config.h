/*
 * config.h - the configuration file (DESIGN.md section 8): one JSON object
 * with the sections breaker, wal, memtable, fallback, health, compaction
 * and limits.  Every key is optional (the built-in default stays); an
 * unknown section or key, a value of the wrong type, or a value out of its
 * range stops the load with a message that names the key.
 */
#ifndef T4DX_CONFIG_H
#define T4DX_CONFIG_H

#include <stddef.h>

#include "buf.h"
#include "t4dx.h"

/* Parse the JSON text (len bytes, no NUL needed) into cfg, which must hold
 * the defaults (or earlier values) on entry; only the keys present change.
 * Strict RFC 8259 JSON: no trailing characters after the object, no
 * duplicate section or key, integer keys take integer literals only (5.0
 * and 1e3 are refused), booleans are not numbers.  On error cfg is
 * unchanged, T4DX_ECONFIG is returned (ENOMEM if json-c cannot allocate)
 * and msg says which key and why, e.g.
 *   breaker.failure_threshold: must be an integer from 1 to 1000000, got 0
 *   unknown key breaker.foo
 *   not valid JSON: unexpected character at line 3 */
int t4dx_config_parse(const char *text, size_t len, struct t4dx_config *cfg,
		      char *msg, size_t msglen);
/* Read the file (at most 1 MiB, not empty) and parse it.  Every message
 * starts with "PATH: ".  A positive errno if it cannot be opened or read,
 * else as t4dx_config_parse. */
int t4dx_config_load(const char *path, struct t4dx_config *cfg, char *msg,
		     size_t msglen);
/* Append cfg as JSON, every section and key in the order of the file,
 * one line, ending in '\n'; doubles in the shortest form that reads back
 * exactly, so parsing the text gives the same struct.  0 or ENOMEM. */
int t4dx_config_render(const struct t4dx_config *cfg, struct t4dx_buf *out);

#endif
