/*
 * fields.h - the one list of an item's settable fields.  Each row names
 * a field of struct t4dx_entry once: its key in a WAL record, its bit in
 * an update mask (T4DX_F_*), how it is stored, and the extended attribute
 * that shows it on the mount (the name after T4DX_XATTR_PREFIX), if any.
 * The record codec (rec.c: the fields of put, mkdir and update lines, and
 * which an update holds) and the update mask (t4dx_entry_apply) walk this
 * table, and so do the extended attributes of fs/xattr.c (with the
 * read-only user.t4dx.id, which is no field of an update).  The order is the
 * order of the fields in a record line: changing it changes the format.
 */
#ifndef T4DX_FIELDS_H
#define T4DX_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "t4dx.h"

#define T4DX_XATTR_PREFIX "user.t4dx."

enum t4dx_field_kind {
	T4DX_FIELD_MODE,        /* uint32_t; an update sets only the
	                           permission bits, never the file type */
	T4DX_FIELD_U32,         /* uint32_t */
	T4DX_FIELD_I64,         /* int64_t */
	T4DX_FIELD_U64,         /* uint64_t */
	T4DX_FIELD_UNIT,        /* double in [0, 1] */
	T4DX_FIELD_TYPE,        /* uint8_t, a memory type, by its name */
};

struct t4dx_field {
	const char *key;        /* in a record line */
	uint32_t bit;           /* T4DX_F_* */
	enum t4dx_field_kind kind;
	size_t off;             /* offsetof(struct t4dx_entry, ...) */
	const char *xattr;      /* after T4DX_XATTR_PREFIX, or NULL */
	bool xattr_ro;          /* that attribute is read-only (the engine
	                           keeps the field itself): EPERM on set */
};

#define T4DX_NFIELDS 11
extern const struct t4dx_field t4dx_fields[T4DX_NFIELDS];

/* The inode's fields (put and mkdir) and the memory's (put only). */
#define T4DX_F_INODE (T4DX_F_MODE | T4DX_F_UID | T4DX_F_GID | \
		      T4DX_F_ATIME | T4DX_F_MTIME | T4DX_F_CTIME)
#define T4DX_F_MEMORY (T4DX_F_KAPPA | T4DX_F_IMPORTANCE | T4DX_F_TYPE | \
		       T4DX_F_EVENT_TIME | T4DX_F_ACCESS)

#endif
