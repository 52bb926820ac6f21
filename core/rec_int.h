/*
 * rec_int.h - what the record writer (rec.c) and reader (rec_read.c)
 * share: the op names, the CRC rule and the checks both apply, so that a
 * record that was written can always be read back.
 */
#ifndef T4DX_REC_INT_H
#define T4DX_REC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The op of a name ("put"...), or -1. */
int rec_op_parse(const char *s, size_t len);
/* zlib's CRC-32 of p[0..len), any length. */
uint32_t rec_crc_of(const void *p, size_t len);
/* 1..255 bytes without '/' or NUL. */
bool rec_name_ok(const char *name, size_t len);
/* A finite number in [0, 1]. */
bool rec_unit_ok(double d);

#endif
