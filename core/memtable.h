/*
 * memtable.h - the in-memory, ordered part of the LSM tree: entries and
 * tombstones keyed by (parent, name), newest version only.
 *
 * Not thread-safe: the engine guards each memtable with its own lock.
 * Entry pointers returned here stay valid until the next put or free.
 */
#ifndef T4DX_MEMTABLE_H
#define T4DX_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "t4dx.h"

struct t4dx_mem;

struct t4dx_mem *t4dx_mem_new(void);          /* NULL on ENOMEM */
void t4dx_mem_free(struct t4dx_mem *m);        /* NULL-safe */

/* Insert or replace the entry at its key with a copy of e (a new reference
 * to its content).  0 or ENOMEM. */
int t4dx_mem_put(struct t4dx_mem *m, const struct t4dx_entry *e);

/* The entry at key (maybe a tombstone), or NULL. */
const struct t4dx_entry *t4dx_mem_get(struct t4dx_mem *m, uint64_t parent,
				      const char *name, size_t name_len);
/* The first entry with key >= (parent, name), or NULL; then the next. */
const struct t4dx_entry *t4dx_mem_seek(struct t4dx_mem *m, uint64_t parent,
				       const char *name, size_t name_len);
const struct t4dx_entry *t4dx_mem_next(struct t4dx_mem *m,
				       const struct t4dx_entry *e);

size_t t4dx_mem_count(const struct t4dx_mem *m);   /* entries + tombstones */
/* Changes at each put, and differs from every other memtable's (0: no
 * put yet, or m NULL). */
uint64_t t4dx_mem_version(const struct t4dx_mem *m);
size_t t4dx_mem_bytes(const struct t4dx_mem *m);   /* approximate footprint */

#endif
