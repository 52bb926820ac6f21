/*
 * lru.h - the fallback cache: the most recently written or read entries,
 * with their content, bounded by a count (fallback.max_items) and by the
 * bytes of their contents (fallback.cache_bytes).  When
 * segments cannot be read (degradation level 2) lookups fall back to it.
 * Thread-safe.
 */
#ifndef T4DX_LRU_H
#define T4DX_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "t4dx.h"

struct t4dx_lru;

/* NULL on ENOMEM.  An entry whose content alone is over max_bytes is
 * not kept (its key is dropped). */
struct t4dx_lru *t4dx_lru_new(size_t capacity, uint64_t max_bytes);
void t4dx_lru_free(struct t4dx_lru *l);
/* Keep a copy of e (a new content reference), evicting the least recently
 * used entries while over either bound.  A tombstone removes the key. */
void t4dx_lru_put(struct t4dx_lru *l, const struct t4dx_entry *e);
void t4dx_lru_del(struct t4dx_lru *l, uint64_t parent, const char *name,
		  size_t len);
/* 0 with *out filled (content only if with_content), or
 * T4DX_ENOTFOUND. */
int t4dx_lru_get(struct t4dx_lru *l, uint64_t parent, const char *name,
		 size_t len, bool with_content, struct t4dx_entry *out);
/* Entries and content bytes held. */
void t4dx_lru_usage(struct t4dx_lru *l, size_t *count, uint64_t *bytes);

#endif
