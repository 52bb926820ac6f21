/*
 * config.h - the configuration file (DESIGN.md section 8): one JSON object
 * with the sections breaker, wal, memtable, fallback, health, compaction
 * and limits.  Every key is optional (the built-in default stays); an
 * unknown section or key, a value of the wrong type, or a value out of its
 * range stops the load with a message that names the key.
 */
#ifndef T4DX_CONFIG_H
#define T4DX_CONFIG_H

#include "t4dx.h"

/* t4dx_config_parse, t4dx_config_load and t4dx_config_render are in
 * t4dx.h: the daemon loads the file and shows the result in .ctl/config. */

#endif
