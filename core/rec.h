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

/* A content too large to be copied into the log's queue: the record's
 * line is the bytes before at, the content's encoding (enc_len bytes,
 * made again by t4dx_rec_ext_put when the line is written), and the bytes
 * from at on.  Holds a reference to the blob. */
struct t4dx_rec_ext {
	struct t4dx_blob *blob;
	uint64_t enc_len;
	size_t at;              /* in the buffer the line was encoded into */
	bool b64;
};

/* t4dx_rec_encode, except that a put whose content is at least min_ext
 * bytes long is encoded by reference: out gets the line without the
 * content's encoding, *ext says where it goes, and true is returned in
 * *split (the CRC, computed over the whole line, is already in place).
 * Otherwise *split is false and out gets the whole line. */
int t4dx_rec_encode_split(const struct t4dx_rec *r, struct t4dx_buf *out,
			  size_t min_ext, struct t4dx_rec_ext *ext,
			  bool *split);
/* The encoding of bytes [from, from + n) of the content (from a multiple
 * of 3 when b64), written to out, which has room for
 * T4DX_REC_EXT_ROOM(n) bytes; returns how many were written.  The pieces
 * of consecutive ranges put together are the content's encoding. */
#define T4DX_REC_EXT_ROOM(n) (6 * (size_t)(n) + 4)
size_t t4dx_rec_ext_put(const struct t4dx_rec_ext *ext, size_t from,
			size_t n, char *out);

/* Parse one line (without its '\n').  Returns 0, or T4DX_ECORRUPT if the
 * line is not valid JSON, lacks a field, or fails its CRC, or ENOMEM
 * (which says nothing about the line).  On success the caller owns
 * r->e.content and must t4dx_entry_clear(&r->e). */
int t4dx_rec_decode(const char *line, size_t len, struct t4dx_rec *r);

#endif
