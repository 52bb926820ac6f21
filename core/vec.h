/*
 * vec.h - an item's vector: what it is made of, where it came from, and
 * its spellings in a WAL record ("vec_b64"), in a segment (raw bytes) and
 * in the extended attribute user.t4dx.vector (a JSON array).
 *
 * A vector is a blob of 4 * dim bytes: dim IEEE 754 binary32 values,
 * each little-endian, whatever the host.  Records and segments copy those
 * bytes as they are, so a vector reads back bit for bit on every machine.
 * dim is 1..T4DX_VEC_DIM_MAX and every value is finite.
 */
#ifndef T4DX_VEC_H
#define T4DX_VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "t4dx.h"

/* The vector's dimension: its length in values. */
static inline uint32_t t4dx_vec_dim(const struct t4dx_blob *v)
{
	return v ? (uint32_t)(v->len / 4) : 0;
}

/* A vector blob of dim host floats, or NULL with errno EINVAL (dim out of
 * range, a value not finite) or ENOMEM. */
struct t4dx_blob *t4dx_vec_new(const float *x, uint32_t dim);
/* Check a blob's bytes as a vector: 0, or EINVAL. */
int t4dx_vec_check(const unsigned char *p, size_t len);
/* The values of v as host floats, into x (dim of them). */
void t4dx_vec_get(const struct t4dx_blob *v, float *x);
/* True when a and b hold the same bytes (both NULL included). */
bool t4dx_vec_equal(const struct t4dx_blob *a, const struct t4dx_blob *b);

/* Whether an entry of source src has a vector (the bytes come with its
 * content). */
static inline bool t4dx_vec_src_has(int src)
{
	return src == T4DX_VEC_EMBED || src == T4DX_VEC_HAND;
}

/* The name of a source ("none", "embed", "hand", "tried") and back
 * (-1). */
const char *t4dx_vec_src_name(int src);
int t4dx_vec_src_parse(const char *s, size_t len);

/* Base64 of the bytes, as a record holds it: its length, and the
 * decoder (T4DX_ECORRUPT for anything that is not a vector). */
size_t t4dx_vec_b64_len(const struct t4dx_blob *v);
int t4dx_vec_from_b64(const char *s, size_t len, struct t4dx_blob **out);

/* The value of a JSON number as json-c read it (an int or a double), or
 * NAN for anything else, and for the two integers json-c gives, without
 * an error, for digits beyond 64 bits (INT64_MIN, UINT64_MAX): 1e41
 * spelt out is then no number rather than 1.8e19.  (Those two spelt
 * exactly are refused too; no embedder answers them.) */
struct json_object;
double t4dx_json_number(struct json_object *e);

/* The JSON array of user.t4dx.vector: each value as the shortest decimal
 * that reads back to the same float, comma-separated, no spaces. */
int t4dx_vec_to_json(const struct t4dx_blob *v, struct t4dx_buf *out);
/* Parse such an array (any JSON spelling of numbers, whitespace allowed)
 * of exactly dim finite values that fit a float: 0 and *out, or EINVAL. */
int t4dx_vec_from_json(const char *s, size_t len, uint32_t dim,
		       struct t4dx_blob **out);

#endif
