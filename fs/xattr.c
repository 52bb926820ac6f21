/*
 * xattr.c - the extended attributes user.t4dx.* of an item: its id, the
 * memory fields that the table of fields (core/fields.h) names, and its
 * vector.
 *
 * user.t4dx.vector is the item's vector as a JSON array of vector.dim
 * numbers (core/vec.h).  Reading it gives whatever vector the item has,
 * the embedder's or one set by hand, and ENODATA while it has none.
 * Setting it (exactly vector.dim finite numbers, else EINVAL and nothing
 * changes) makes a hand vector, which new content keeps; removing it
 * drops the vector, and the embedder computes one from the content.
 * The list of names shows it only for a vector set by hand: that one is
 * data a copy should carry (cp -a, rsync -X, tar --xattrs), while an
 * embedder's vector follows from the content and would, copied, become a
 * hand vector that no later change of the copy's content replaces.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "t4dxfs.h"
#include "buf.h"
#include "fields.h"
#include "inode.h"
#include "vec.h"

/* ---- the names ---------------------------------------------------------
 * user.t4dx.id (the item's id: read-only, and no field of an update),
 * then one attribute for every row of t4dx_fields that names one, in the
 * table's order; the table also says which of them are read-only. */

#define XA_ID "id"
#define XA_VECTOR "vector"
/* The longest value the kernel passes (its XATTR_SIZE_MAX). */
#define XA_VALUE_MAX 65536

/* The row of t4dx_fields that stands for the vector, which is no field
 * of the table (its update bit is T4DX_F_VEC). */
static const struct t4dx_field xa_vector = {
	.key = "vec_src", .bit = T4DX_F_VEC, .xattr = XA_VECTOR,
};

/* Is name one of ours?  *f is its row of t4dx_fields (or xa_vector),
 * NULL for the id. */
static bool xa_find(const char *name, const struct t4dx_field **f)
{
	size_t n = strlen(T4DX_XATTR_PREFIX);
	*f = NULL;
	if (strncmp(name, T4DX_XATTR_PREFIX, n))
		return false;
	name += n;
	if (!strcmp(name, XA_ID))
		return true;
	if (!strcmp(name, XA_VECTOR)) {
		*f = &xa_vector;
		return true;
	}
	for (size_t i = 0; i < T4DX_NFIELDS; i++)
		if (t4dx_fields[i].xattr && !strcmp(name, t4dx_fields[i].xattr)) {
			*f = &t4dx_fields[i];
			return true;
		}
	return false;
}

/* Only the user namespace holds attributes here.  Names in the others
 * (security., system. for ACLs, trusted.) are ENOTSUP, not ENODATA: that
 * tells a reader such as ls -l that the whole file system has none, so it
 * stops asking for every file. */
static bool xa_user(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

/* The text of field f of e, NUL-terminated in out (len bytes). */
static void xa_show(const struct t4dx_field *f, const struct t4dx_entry *e,
		    char *out, size_t len)
{
	const char *p = (const char *)e + f->off;
	switch (f->kind) {
	case T4DX_FIELD_UNIT: {
		double v;
		memcpy(&v, p, sizeof(v));
		t4dx_fmt_double(out, len, v);
		break;
	}
	case T4DX_FIELD_TYPE: {
		uint8_t t;
		memcpy(&t, p, sizeof(t));
		snprintf(out, len, "%s", t4dx_type_name(t));
		break;
	}
	case T4DX_FIELD_I64: {
		int64_t v;
		memcpy(&v, p, sizeof(v));
		snprintf(out, len, "%lld", (long long)v);
		break;
	}
	case T4DX_FIELD_U64: {
		uint64_t v;
		memcpy(&v, p, sizeof(v));
		snprintf(out, len, "%llu", (unsigned long long)v);
		break;
	}
	case T4DX_FIELD_MODE:
	case T4DX_FIELD_U32: {
		uint32_t v;
		memcpy(&v, p, sizeof(v));
		snprintf(out, len, "%u", v);
		break;
	}
	}
}

/* The value of attribute name of ino, appended to out. */
static int xa_get(struct t4dxfs *fs, fuse_ino_t ino, const char *name,
		  struct t4dx_buf *out)
{
	struct t4dx_entry e = { 0 };
	const struct t4dx_field *f;
	bool ours = xa_find(name, &f);
	if (!xa_user(name))
		return ENOTSUP;
	if (is_fixed(ino) || ino == INO_ITEMS)
		return ENODATA;
	/* the vector comes only with the content */
	unsigned flags = f == &xa_vector ? T4DX_GET_CONTENT : 0;
	ns_lock(fs);
	int rc = ino_entry(fs, ino, flags, &e);
	ns_unlock(fs);
	if (rc == ENOENT && flags)
		rc = ENODATA;           /* an open file without a name */
	if (rc)
		return rc;
	char val[64];
	if (!ours || S_ISDIR(e.mode))
		rc = ENODATA;
	else if (f == &xa_vector)
		rc = e.vec ? t4dx_vec_to_json(e.vec, out) : ENODATA;
	else if (f)
		xa_show(f, &e, val, sizeof(val));
	else
		t4dx_hex_encode(val, e.id, sizeof(e.id));
	if (!rc && f != &xa_vector)
		rc = t4dx_buf_add(out, val, strlen(val));
	t4dx_entry_clear(&e);
	return rc;
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 size_t size)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_GETXATTR);
	struct t4dx_buf val = { 0 };
	int rc = xa_get(fs, ino, name, &val);
	if (rc)
		reply_xattr(req, rc);
	else if (val.len > XA_VALUE_MAX)
		reply_err(req, E2BIG);  /* a long vector of dim 4096 */
	else if (size == 0)
		fuse_reply_xattr(req, val.len);
	else if (size < val.len)
		reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, (const char *)val.p, val.len);
	t4dx_buf_free(&val);
}

/* Append the full name of attribute name, with its NUL, to list (size
 * bytes, *len used); the buffer holds them all. */
static void xa_list_add(char *list, size_t size, size_t *len,
			const char *name)
{
	int n = snprintf(list + *len, size - *len, "%s%s", T4DX_XATTR_PREFIX,
			 name);
	if (n >= 0 && (size_t)n < size - *len)
		*len += (size_t)n + 1;
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_LISTXATTR);
	char list[512];
	size_t len = 0;
	struct stat st;
	struct t4dx_entry e = { 0 };
	int rc = do_getattr(fs, ino, &st);
	if (!rc && S_ISREG(st.st_mode) && !is_fixed(ino)) {
		ns_lock(fs);
		rc = ino_entry(fs, ino, 0, &e);
		ns_unlock(fs);
	}
	if (rc) {
		reply_err(req, rc);
		return;
	}
	if (S_ISREG(st.st_mode) && !is_fixed(ino)) {
		xa_list_add(list, sizeof(list), &len, XA_ID);
		for (size_t i = 0; i < T4DX_NFIELDS; i++)
			if (t4dx_fields[i].xattr)
				xa_list_add(list, sizeof(list), &len,
					    t4dx_fields[i].xattr);
		/* only a hand vector: see the top of the file */
		if (e.vec_src == T4DX_VEC_HAND)
			xa_list_add(list, sizeof(list), &len, XA_VECTOR);
	}
	t4dx_entry_clear(&e);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, len);
}

/* Plain decimal text: optional '-', digits with at most one '.', an
 * optional exponent; no spaces, hex, "nan" or "inf" (which strtod would
 * take). */
static bool plain_decimal(const char *s, bool integer)
{
	bool digit = false, dot = false;
	if (*s == '-')
		s++;
	for (; *s && *s != 'e' && *s != 'E'; s++) {
		if (*s >= '0' && *s <= '9')
			digit = true;
		else if (*s == '.' && !dot && !integer)
			dot = true;
		else
			return false;
	}
	if (!digit)
		return false;
	if (!*s)
		return true;
	if (integer)
		return false;
	s++;
	if (*s == '+' || *s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Parse a number in [0, 1] with nothing else around it. */
static int parse_unit(const char *s, double *out)
{
	char *end;
	if (!plain_decimal(s, false))
		return EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1)
		return EINVAL;
	*out = v == 0 ? 0 : v;          /* "-0" is 0, not -0 */
	return 0;
}

/* Parse v (size bytes, NUL-terminated) as a value of field fl into e
 * and its bit into *mask; EINVAL if it is not one. */
static int xa_parse(const struct t4dx_field *fl, const char *v, size_t size,
		    struct t4dx_entry *e, uint32_t *mask)
{
	char *p = (char *)e + fl->off, *end;
	*mask |= fl->bit;
	switch (fl->kind) {
	case T4DX_FIELD_UNIT: {
		double d;
		if (parse_unit(v, &d))
			return EINVAL;
		memcpy(p, &d, sizeof(d));
		return 0;
	}
	case T4DX_FIELD_TYPE: {
		int t = t4dx_type_parse(v, size);
		if (t < 0)
			return EINVAL;
		uint8_t u = (uint8_t)t;
		memcpy(p, &u, sizeof(u));
		return 0;
	}
	case T4DX_FIELD_I64: {
		if (!plain_decimal(v, true))
			return EINVAL;
		errno = 0;
		long long t = strtoll(v, &end, 10);
		if (errno || end == v || *end)
			return EINVAL;
		int64_t i = t;
		memcpy(p, &i, sizeof(i));
		return 0;
	}
	case T4DX_FIELD_U64:
	case T4DX_FIELD_U32:
	case T4DX_FIELD_MODE:
		break;
	}
	if (!plain_decimal(v, true) || *v == '-')
		return EINVAL;
	errno = 0;
	unsigned long long u = strtoull(v, &end, 10);
	if (errno || end == v || *end)
		return EINVAL;
	if (fl->kind == T4DX_FIELD_U64) {
		uint64_t x = u;
		memcpy(p, &x, sizeof(x));
		return 0;
	}
	if (u > UINT32_MAX)
		return EINVAL;
	uint32_t x = (uint32_t)u;
	memcpy(p, &x, sizeof(x));
	return 0;
}

/* Write the change of mask (f's values) to ino's entry, or keep it with
 * an open file that lost its name.  As chmod, it does not wait for its
 * record: that is durable with the next commit (at the latest after
 * wal.commit_interval_ms), and an fsync of the file or of its directory
 * waits for it. */
static int xa_update(struct t4dxfs *fs, fuse_ino_t ino, struct t4dx_entry *f,
		     uint32_t mask)
{
	struct t4dx_entry e;
	uint64_t parent, lsn = 0;
	char key[T4DX_NAME_MAX + 1];
	size_t klen;
	int rc;

	f->ctime_ns = t4dx_now_ns();
	mask |= T4DX_F_CTIME;
	ns_lock(fs);
	struct orphan *o = orphan_find(fs, ino);
	if (o) {
		/* an open file without a name: kept in memory only (but no
		 * vector: it is no memory any more, nothing searches it) */
		if (!(mask & T4DX_F_VEC))
			t4dx_entry_apply(&o->e, f, mask);
		ns_unlock(fs);
		return mask & T4DX_F_VEC ? ENOENT : 0;
	}
	rc = key_of(fs, ino, &parent, key, &klen);
	if (!rc)
		rc = t4dx_get(fs->db, parent, key, klen, 0, &e);
	/* removing the vector: ENODATA when there is none to remove */
	if (!rc && (mask & T4DX_F_VEC) && f->vec_src == T4DX_VEC_NONE &&
	    (S_ISDIR(e.mode) || !t4dx_vec_src_has(e.vec_src)))
		rc = ENODATA;
	if (!rc && S_ISDIR(e.mode))
		rc = ENOTSUP;
	if (!rc)
		rc = t4dx_update(fs->db, parent, key, klen, f, mask,
				 T4DX_NOWAIT, &lsn);
	if (!rc) {
		note_lsn(fs, ino, lsn);
		note_lsn(fs, parent, lsn);
	}
	ns_unlock(fs);
	if (rc == T4DX_ENOTFOUND)
		return ENOENT;
	/* ctime moved: the kernel's cached attributes (not pages) are old */
	if (!rc && fs->se) {
		atomic_fetch_add(&fs->attr_gen, 1);
		fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	}
	return rc;
}

/* Set a hand vector: value must be a JSON array of exactly vector.dim
 * finite numbers (else EINVAL, nothing changed). */
static int set_vector(struct t4dxfs *fs, fuse_ino_t ino, const char *value,
		      size_t size)
{
	struct t4dx_entry f;
	memset(&f, 0, sizeof(f));
	if (memchr(value, 0, size) ||
	    t4dx_vec_from_json(value, size, fs->cfg.vector.dim, &f.vec))
		return EINVAL;
	f.vec_src = T4DX_VEC_HAND;
	int rc = xa_update(fs, ino, &f, T4DX_F_VEC);
	t4dx_blob_unref(f.vec);
	return rc;
}

static int do_setxattr(struct t4dxfs *fs, fuse_ino_t ino, const char *name,
		       const char *value, size_t size, int flags)
{
	struct t4dx_entry f;
	char v[64];
	uint32_t mask = 0;
	const struct t4dx_field *fl;
	int rc;

	if (!xa_find(name, &fl))
		return ENOTSUP;
	if (is_fixed(ino) || ino == INO_ITEMS)
		return ENOTSUP;
	if (!fl || fl->xattr_ro)
		return EPERM;                   /* the id, access_count */
	if (fl == &xa_vector) {
		/* it exists when the item has a vector; XATTR_CREATE and
		 * XATTR_REPLACE are not told apart (the check and the change
		 * would be two steps) */
		return set_vector(fs, ino, value, size);
	}
	if (flags & XATTR_CREATE)
		return EEXIST;                  /* they always exist */
	if (size >= sizeof(v) || memchr(value, 0, size))
		return EINVAL;
	memcpy(v, value, size);
	v[size] = 0;
	memset(&f, 0, sizeof(f));
	rc = xa_parse(fl, v, size, &f, &mask);
	if (rc)
		return rc;
	return xa_update(fs, ino, &f, mask);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_SETXATTR);
	if (is_search(ino)) {
		reply_err(req, EACCES);         /* search/ is read-only */
		return;
	}
	reply_xattr(req, do_setxattr(fs, ino, name, value, size, flags));
}

/* Drop the vector, if the item has one: the embedder computes it from
 * the content again (the engine queues the item). */
static int do_removexattr(struct t4dxfs *fs, fuse_ino_t ino, const char *name)
{
	const struct t4dx_field *f;
	if (!xa_user(name))
		return ENOTSUP;
	if (!xa_find(name, &f))
		return ENODATA;
	if (f != &xa_vector)
		return EPERM;
	if (is_fixed(ino) || ino == INO_ITEMS)
		return ENODATA;
	struct t4dx_entry none;
	memset(&none, 0, sizeof(none));
	none.vec_src = T4DX_VEC_NONE;
	return xa_update(fs, ino, &none, T4DX_F_VEC);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_REMOVEXATTR);
	if (is_search(ino)) {
		reply_err(req, EACCES);         /* search/ is read-only */
		return;
	}
	reply_xattr(req, do_removexattr(fs, ino, name));
}
