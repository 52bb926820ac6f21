/*
 * rec.h - WAL records: one engine operation, encoded as one JSON line.
 * The line format is described at the top of rec.c.
 */
#ifndef T4DX_REC_H
#define T4DX_REC_H

#include "buf.h"
#include "t4dx.h"

enum t4dx_op {
	T4DX_OP_PUT = 1,        /* e: the whole entry of a regular file */
	T4DX_OP_DELETE,         /* e.parent, e.name */
	T4DX_OP_RENAME,         /* e.parent, e.name -> new_parent, new_name */
	T4DX_OP_MKDIR,          /* e: the whole entry of a directory */
	T4DX_OP_RMDIR,          /* e.parent, e.name */
	T4DX_OP_UPDATE,         /* e.parent, e.name, and the fields in mask */
	T4DX_OP_PROBE,          /* health probe: no effect on the data */
};

struct t4dx_rec {
	uint64_t lsn;
	enum t4dx_op op;
	struct t4dx_entry e;
	uint64_t new_parent;
	uint16_t new_name_len;
	char new_name[T4DX_NAME_MAX + 1];
	uint32_t mask;          /* T4DX_F_* for T4DX_OP_UPDATE */
};

const char *t4dx_op_name(enum t4dx_op op);

/* Append the record as one line (ending in '\n') to out.  0, ENOMEM, or
 * EINVAL if the record could not be decoded again (lsn 0, a bad name, a
 * kappa or importance outside [0, 1], an unknown op, type or mask bit). */
int t4dx_rec_encode(const struct t4dx_rec *r, struct t4dx_buf *out);

/* Parse one line (without its '\n').  Returns 0, or T4DX_ECORRUPT if the
 * line is not valid JSON, lacks a field, or fails its CRC, or ENOMEM
 * (which says nothing about the line).  On success the caller owns
 * r->e.content and must t4dx_entry_clear(&r->e). */
int t4dx_rec_decode(const char *line, size_t len, struct t4dx_rec *r);

#endif
