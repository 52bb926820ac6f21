/*
 * xattr.c - the extended attributes user.t4dx.* of an item: its memory
 * fields (id, kappa, importance, type, access_count, event_time).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "t4dxfs.h"
#include "inode.h"

/* ---- extended attributes ---------------------------------------------- */

#define XA_PREFIX "user.t4dx."

static const char *const xa_names[] = {
	"id", "kappa", "importance", "type", "access_count", "event_time",
};
#define NXA (sizeof(xa_names) / sizeof(xa_names[0]))

static int xa_index(const char *name)
{
	if (strncmp(name, XA_PREFIX, strlen(XA_PREFIX)))
		return -1;
	name += strlen(XA_PREFIX);
	for (size_t i = 0; i < NXA; i++)
		if (!strcmp(name, xa_names[i]))
			return (int)i;
	return -1;
}

/* Only the user namespace holds attributes here.  Names in the others
 * (security., system. for ACLs, trusted.) are ENOTSUP, not ENODATA: that
 * tells a reader such as ls -l that the whole file system has none, so it
 * stops asking for every file. */
static bool xa_user(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

static int xa_get(struct t4dxfs *fs, fuse_ino_t ino, const char *name,
		  char *out, size_t len, size_t *vlen)
{
	struct t4dx_entry e = { 0 };
	int i = xa_index(name);
	if (!xa_user(name))
		return ENOTSUP;
	if (is_fixed(ino) || ino == INO_ITEMS)
		return ENODATA;
	ns_lock(fs);
	int rc = ino_entry(fs, ino, 0, &e);
	ns_unlock(fs);
	if (rc)
		return rc;
	if (i < 0 || S_ISDIR(e.mode))
		return ENODATA;
	switch (i) {
	case 0: t4dx_hex_encode(out, e.id, sizeof(e.id)); break;
	case 1: t4dx_fmt_double(out, len, e.kappa); break;
	case 2: t4dx_fmt_double(out, len, e.importance); break;
	case 3: snprintf(out, len, "%s", t4dx_type_name(e.type)); break;
	case 4: snprintf(out, len, "%llu", (unsigned long long)e.access_count); break;
	case 5: snprintf(out, len, "%lld", (long long)e.event_time_ns); break;
	}
	*vlen = strlen(out);
	return 0;
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 size_t size)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_GETXATTR);
	char val[64];
	size_t vlen;
	int rc = xa_get(fs, ino, name, val, sizeof(val), &vlen);
	if (rc)
		reply_xattr(req, rc);
	else if (size == 0)
		fuse_reply_xattr(req, vlen);
	else if (size < vlen)
		reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, vlen);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_LISTXATTR);
	char list[256];
	size_t len = 0;
	struct stat st;
	int rc = do_getattr(fs, ino, &st);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	if (S_ISREG(st.st_mode) && !is_fixed(ino))
		for (size_t i = 0; i < NXA; i++)
			len += (size_t)snprintf(list + len, sizeof(list) - len,
						"%s%s", XA_PREFIX,
						xa_names[i]) + 1;
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
	*out = v;
	return 0;
}

static int do_setxattr(struct t4dxfs *fs, fuse_ino_t ino, const char *name,
		       const char *value, size_t size, int flags)
{
	struct t4dx_entry f, e;
	char v[64];
	uint32_t mask;
	uint64_t parent, lsn = 0;
	char key[T4DX_NAME_MAX + 1];
	size_t klen;
	int rc, i = xa_index(name);

	if (i < 0)
		return ENOTSUP;
	if (is_fixed(ino) || ino == INO_ITEMS)
		return ENOTSUP;
	if (i == 0 || i == 4)
		return EPERM;                   /* id, access_count */
	if (flags & XATTR_CREATE)
		return EEXIST;                  /* they always exist */
	if (size >= sizeof(v) || memchr(value, 0, size))
		return EINVAL;
	memcpy(v, value, size);
	v[size] = 0;
	memset(&f, 0, sizeof(f));
	switch (i) {
	case 1:
		mask = T4DX_F_KAPPA;
		rc = parse_unit(v, &f.kappa);
		break;
	case 2:
		mask = T4DX_F_IMPORTANCE;
		rc = parse_unit(v, &f.importance);
		break;
	case 3: {
		mask = T4DX_F_TYPE;
		int t = t4dx_type_parse(v, size);
		rc = t < 0 ? EINVAL : 0;
		f.type = (uint8_t)(t < 0 ? 0 : t);
		break;
	}
	default: {
		mask = T4DX_F_EVENT_TIME;
		char *end;
		errno = 0;
		long long t = strtoll(v, &end, 10);
		rc = (errno || end == v || *end || !plain_decimal(v, true))
			     ? EINVAL : 0;
		f.event_time_ns = t;
		break;
	}
	}
	if (rc)
		return rc;
	f.ctime_ns = t4dx_now_ns();
	mask |= T4DX_F_CTIME;
	ns_lock(fs);
	struct orphan *o = orphan_find(fs, ino);
	if (o) {
		/* an open file without a name: kept in memory only */
		t4dx_entry_apply(&o->e, &f, mask);
		ns_unlock(fs);
		return 0;
	}
	rc = key_of(fs, ino, &parent, key, &klen);
	if (!rc)
		rc = t4dx_get(fs->db, parent, key, klen, 0, &e);
	if (!rc && S_ISDIR(e.mode))
		rc = ENOTSUP;
	if (!rc)
		rc = t4dx_update(fs->db, parent, key, klen, &f, mask,
				 T4DX_NOWAIT, &lsn);
	if (!rc)
		note_lsn(fs, ino, lsn);
	ns_unlock(fs);
	if (rc == T4DX_ENOTFOUND)
		return ENOENT;
	if (!rc)
		rc = t4dx_wait(fs->db, lsn);
	/* ctime moved: the kernel's cached attributes (not pages) are old */
	if (!rc && fs->se) {
		atomic_fetch_add(&fs->attr_gen, 1);
		fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	}
	return rc;
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_SETXATTR);
	reply_xattr(req, do_setxattr(fs, ino, name, value, size, flags));
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_REMOVEXATTR);
	reply_xattr(req, !xa_user(name) ? ENOTSUP :
		       xa_index(name) >= 0 ? EPERM : ENODATA);
}
