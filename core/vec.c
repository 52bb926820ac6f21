/*
 * vec.c - an item's vector: checks, sources and the three spellings
 * (little-endian bytes, base64 in a record, a JSON array in an xattr).
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

static const char *const src_names[] = {
	[T4DX_VEC_NONE] = "none",
	[T4DX_VEC_EMBED] = "embed",
	[T4DX_VEC_HAND] = "hand",
	[T4DX_VEC_TRIED] = "tried",
};

const char *t4dx_vec_src_name(int src)
{
	return src >= T4DX_VEC_NONE && src <= T4DX_VEC_TRIED ? src_names[src]
							     : "?";
}

int t4dx_vec_src_parse(const char *s, size_t len)
{
	for (int i = T4DX_VEC_NONE; i <= T4DX_VEC_TRIED; i++)
		if (strlen(src_names[i]) == len && !memcmp(s, src_names[i], len))
			return i;
	return -1;
}

static inline uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

static inline float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

int t4dx_vec_check(const unsigned char *p, size_t len)
{
	if (len == 0 || len % 4 || len / 4 > T4DX_VEC_DIM_MAX)
		return EINVAL;
	for (size_t i = 0; i < len; i += 4)
		if (!isfinite(u2f(t4dx_get_u32(p + i))))
			return EINVAL;
	return 0;
}

struct t4dx_blob *t4dx_vec_new(const float *x, uint32_t dim)
{
	if (dim == 0 || dim > T4DX_VEC_DIM_MAX) {
		errno = EINVAL;
		return NULL;
	}
	for (uint32_t i = 0; i < dim; i++)
		if (!isfinite(x[i])) {
			errno = EINVAL;
			return NULL;
		}
	struct t4dx_blob *v = t4dx_blob_new(4 * (size_t)dim);
	if (!v) {
		errno = ENOMEM;
		return NULL;
	}
	for (uint32_t i = 0; i < dim; i++)
		t4dx_put_u32(v->data + 4 * (size_t)i, f2u(x[i]));
	return v;
}

void t4dx_vec_get(const struct t4dx_blob *v, float *x)
{
	uint32_t dim = t4dx_vec_dim(v);
	for (uint32_t i = 0; i < dim; i++)
		x[i] = u2f(t4dx_get_u32(v->data + 4 * (size_t)i));
}

bool t4dx_vec_equal(const struct t4dx_blob *a, const struct t4dx_blob *b)
{
	if (!a || !b)
		return a == b;
	return a->len == b->len && !memcmp(a->data, b->data, a->len);
}

size_t t4dx_vec_b64_len(const struct t4dx_blob *v)
{
	return 4 * ((v->len + 2) / 3);
}

int t4dx_vec_from_b64(const char *s, size_t len, struct t4dx_blob **out)
{
	*out = NULL;
	if (len == 0 || len % 4 || len / 4 * 3 > 4 * (size_t)T4DX_VEC_DIM_MAX + 2)
		return T4DX_ECORRUPT;
	struct t4dx_blob *v = t4dx_blob_new(3 * (len / 4));
	if (!v)
		return ENOMEM;
	size_t n;
	if (t4dx_base64_decode(s, len, v->data, &n) ||
	    t4dx_vec_check(v->data, n)) {
		t4dx_blob_unref(v);
		return T4DX_ECORRUPT;
	}
	v->len = n;
	*out = v;
	return 0;
}

/* The shortest "%.*g" text of f that strtof reads back as f. */
static int fmt_float(char *s, size_t n, float f)
{
	int k = 0;
	for (int prec = 6; prec <= 9; prec++) {
		k = snprintf(s, n, "%.*g", prec, (double)f);
		if (strtof(s, NULL) == f)
			break;
	}
	return k;
}

int t4dx_vec_to_json(const struct t4dx_blob *v, struct t4dx_buf *out)
{
	uint32_t dim = t4dx_vec_dim(v);
	if (t4dx_buf_reserve(out, 2 + 17 * (size_t)dim))
		return ENOMEM;
	char *o = (char *)out->p + out->len;
	*o++ = '[';
	for (uint32_t i = 0; i < dim; i++) {
		if (i)
			*o++ = ',';
		o += fmt_float(o, 16, u2f(t4dx_get_u32(v->data + 4 * (size_t)i)));
	}
	*o++ = ']';
	out->len = (size_t)(o - (char *)out->p);
	return 0;
}

double t4dx_json_number(struct json_object *e)
{
	if (json_object_is_type(e, json_type_double))
		return json_object_get_double(e);
	if (!json_object_is_type(e, json_type_int) ||
	    json_object_get_int64(e) == INT64_MIN ||
	    json_object_get_uint64(e) == UINT64_MAX)
		return NAN;
	return json_object_get_double(e);
}

int t4dx_vec_from_json(const char *s, size_t len, uint32_t dim,
		       struct t4dx_blob **out)
{
	*out = NULL;
	if (dim == 0 || dim > T4DX_VEC_DIM_MAX || len > INT32_MAX)
		return EINVAL;
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *a = json_tokener_parse_ex(tok, s, (int)len);
	int rc = EINVAL;
	size_t end = json_tokener_get_parse_end(tok);
	while (end < len && strchr(" \t\r\n", s[end]))
		end++;          /* setfattr -v adds nothing; echo adds \n */
	if (!a || json_tokener_get_error(tok) != json_tokener_success ||
	    end != len || !json_object_is_type(a, json_type_array) ||
	    json_object_array_length(a) != dim)
		goto out;
	char *txt = NULL;
	float *x = malloc(sizeof(*x) * dim);
	if (!x) {
		rc = ENOMEM;
		goto out;
	}
	/* json-c checked the text (an array of dim JSON numbers); the
	 * values are read from the text itself, NUL-terminated: json-c
	 * clamps an integer past 64 bits (1e23 written as digits would be
	 * 1.8e19), and a JSON number reads the same through strtod (the
	 * engine never sets a locale with another decimal point) */
	txt = malloc(len + 1);
	if (!txt) {
		rc = ENOMEM;
		goto bad;
	}
	memcpy(txt, s, len);
	txt[len] = 0;
	/* a JSON number starts with '-' or a digit; what is between two
	 * (brackets, commas, white space) starts none */
	const char *p = txt;
	for (uint32_t i = 0; i < dim; i++) {
		struct json_object *e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_double) &&
		    !json_object_is_type(e, json_type_int))
			goto bad;
		p += strcspn(p, "-0123456789");
		char *num_end;
		double d = strtod(p, &num_end);
		if (num_end == p)
			goto bad;
		p = num_end;
		if (d == 0 && json_object_is_type(e, json_type_int))
			d = 0;          /* -0 as json-c reads it, 0 */
		/* what rounds to a finite float: below the midpoint between
		 * FLT_MAX and 2^128 */
		if (!isfinite(d) || fabs(d) >= 0x1.ffffffp+127)
			goto bad;
		x[i] = (float)d;
	}
	*out = t4dx_vec_new(x, dim);
	rc = *out ? 0 : errno;
bad:
	free(txt);
	free(x);
out:
	json_object_put(a);
	json_tokener_free(tok);
	return rc;
}
