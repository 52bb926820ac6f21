/*
 * ctl.h - the control files in MOUNT/.ctl/.  Each has a fixed inode; its
 * content is generated when it is opened (a snapshot read by that handle)
 * and a write, if the file takes writes, is one command.
 */
#ifndef T4DXFS_CTL_H
#define T4DXFS_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

struct t4dxfs;

/* Each callback gets the daemon's state. */
struct ctl_file {
	const char *name;
	unsigned long ino;
	/* Append the content to out.  0 or an errno. */
	int (*show)(struct t4dxfs *fs, struct t4dx_buf *out);
	/* Run the command in buf[0..len).  NULL: read-only.  0 or errno. */
	int (*store)(struct t4dxfs *fs, const char *buf, size_t len);
	/* May it be opened for writing now?  NULL: yes.  0 or errno.  (The
	 * kernel serializes writes to one inode, so a command that must
	 * answer EBUSY while another runs says so at open.) */
	int (*may_write)(struct t4dxfs *fs);
	/* Readable by the mounting user only (0400): what it shows may name
	 * items in directories other users of an allow_other mount may not
	 * enter. */
	bool owner_only;
};

/* Largest write a control file takes; longer ones answer EINVAL. */
#define CTL_MAX_WRITE 256

const struct ctl_file *ctl_by_ino(unsigned long ino);
const struct ctl_file *ctl_by_name(const char *name);
/* The i-th control file (for readdir), NULL past the end. */
const struct ctl_file *ctl_at(size_t i);

struct json_object;
/* Append o as one line of JSON to out and release it; ENOMEM if building
 * it ran out of memory (!ok) or writing it does.  (search.c's
 * results.json is written the same way.) */
int jemit(struct t4dx_buf *out, struct json_object *o, bool ok);

#endif
