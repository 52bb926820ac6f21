/*
 * embed.h - the builtin embedder: a lexical vector of a memory's content,
 * the same for the same bytes on every machine (see embed.c for what it
 * captures and the rules that make it reproducible).
 */
#ifndef T4DX_EMBED_H
#define T4DX_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Changes whenever the vector of some content would change: the data
 * directory records it and re-embeds everything when it differs. */
#define T4DX_EMBED_VERSION      1

#define T4DX_EMBED_DIM_MAX      4096
/* Only the first MAX_BYTES of a content are embedded, which bounds the
 * cost (about 60 ms) and the transient memory (under 48 MiB; 24 MiB for
 * a mebibyte of random words, 2 MiB for 10 KiB of text). */
#define T4DX_EMBED_MAX_BYTES    (1024 * 1024)
/* A content with a NUL byte or invalid UTF-8 in its first PROBE_BYTES is
 * binary and gets no vector. */
#define T4DX_EMBED_PROBE_BYTES  8192

/* The vector of buf (len bytes) in out[0..dim-1], of unit L2 norm: 0.
 * ENODATA when the content gets no vector (empty, binary, or without a
 * single word), out untouched; EINVAL for a dim outside 1..DIM_MAX;
 * ENOMEM.  Thread-safe; allocates only for its call. */
int t4dx_embed(const void *buf, size_t len, uint32_t dim, float *out);

/* Whether buf (len bytes) is binary by the rule above. */
bool t4dx_embed_is_binary(const void *buf, size_t len);

#endif
