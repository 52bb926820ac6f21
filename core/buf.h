/*
 * buf.h - a growable byte buffer, and small encoding helpers shared by the
 * on-disk formats (little-endian integers, hex, base64, UTF-8 check).
 */
#ifndef T4DX_BUF_H
#define T4DX_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "t4dx.h"

struct t4dx_buf {
	unsigned char *p;
	size_t len, cap;
};

/* All return 0 or ENOMEM. */
int t4dx_buf_reserve(struct t4dx_buf *b, size_t extra);
int t4dx_buf_add(struct t4dx_buf *b, const void *data, size_t len);
int t4dx_buf_addf(struct t4dx_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int t4dx_buf_add_u8(struct t4dx_buf *b, uint8_t v);
int t4dx_buf_add_u16(struct t4dx_buf *b, uint16_t v);
int t4dx_buf_add_u32(struct t4dx_buf *b, uint32_t v);
int t4dx_buf_add_u64(struct t4dx_buf *b, uint64_t v);
void t4dx_buf_free(struct t4dx_buf *b);

static inline uint16_t t4dx_get_u16(const unsigned char *p)
{ return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t t4dx_get_u32(const unsigned char *p)
{ return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	 (uint32_t)p[3] << 24; }
static inline uint64_t t4dx_get_u64(const unsigned char *p)
{ return (uint64_t)t4dx_get_u32(p) | (uint64_t)t4dx_get_u32(p + 4) << 32; }

static inline void t4dx_put_u32(unsigned char *p, uint32_t v)
{ p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24); }

/* t4dx_utf8_valid, t4dx_base64_put and t4dx_base64_decode are in
 * t4dx.h.  Base64: encode appends what t4dx_base64_put writes to a
 * buffer. */
int t4dx_base64_encode(struct t4dx_buf *out, const unsigned char *s, size_t len);
void t4dx_hex_encode(char *out, const unsigned char *s, size_t len); /* out: 2*len+1 */
int t4dx_hex_decode(const char *s, size_t slen, unsigned char *out, size_t len);
/* The value of one hex digit (either case), or -1. */
int t4dx_hexval(char c);

/* The shortest text of a finite v in "%.*g" form that reads back (strtod)
 * as exactly v, NUL-terminated in out (32 bytes are always enough);
 * returns its length.  In the C locale, as the engine always is.  The
 * one formatter of doubles that must survive a round trip (records,
 * configuration); callers add their own spelling of whole numbers and of
 * what is not finite. */
int t4dx_fmt_double(char *out, size_t len, double v);

/* Wall clock in nanoseconds. */
int64_t t4dx_now_ns(void);
/* 64-bit hash of a key, for Bloom filters. */
uint64_t t4dx_key_hash(uint64_t parent, const char *name, size_t len);

#endif
