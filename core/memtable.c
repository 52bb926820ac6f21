/*
 * memtable.c - a red-black tree (libbsd's sys/tree.h) of entries.
 */
#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifndef __unused
#define __unused __attribute__((__unused__))
#endif
#include <bsd/sys/tree.h>

#include "memtable.h"

struct node {
	RB_ENTRY(node) link;
	struct t4dx_entry e;
};

static int node_cmp(const struct node *a, const struct node *b)
{
	return t4dx_key_cmp(a->e.parent, a->e.name, a->e.name_len,
			    b->e.parent, b->e.name, b->e.name_len);
}

RB_HEAD(tree, node);
RB_GENERATE_STATIC(tree, node, link, node_cmp)

struct t4dx_mem {
	struct tree root;
	size_t count, bytes;
	uint64_t version;               /* of the last put, or 0 */
};

/* Versions are drawn from one counter for all memtables, so that two
 * memtables (or one before and after a put) never show the same. */
static atomic_uint_least64_t versions;

struct t4dx_mem *t4dx_mem_new(void)
{
	struct t4dx_mem *m = calloc(1, sizeof(*m));
	if (m)
		RB_INIT(&m->root);
	return m;
}

static size_t footprint(const struct t4dx_entry *e)
{
	return sizeof(struct node) + (e->content ? e->content->len : 0) +
	       (e->vec ? e->vec->len : 0);
}

void t4dx_mem_free(struct t4dx_mem *m)
{
	if (!m)
		return;
	struct node *n, *next;
	RB_FOREACH_SAFE(n, tree, &m->root, next) {
		RB_REMOVE(tree, &m->root, n);
		t4dx_entry_clear(&n->e);
		free(n);
	}
	free(m);
}

static struct node *find(struct t4dx_mem *m, uint64_t parent,
			 const char *name, size_t len, int nfind)
{
	struct node key;
	key.e.parent = parent;
	key.e.name_len = (uint16_t)len;
	memcpy(key.e.name, name, len);
	return nfind ? RB_NFIND(tree, &m->root, &key)
		     : RB_FIND(tree, &m->root, &key);
}

int t4dx_mem_put(struct t4dx_mem *m, const struct t4dx_entry *e)
{
	m->version = atomic_fetch_add(&versions, 1) + 1;
	struct node *n = find(m, e->parent, e->name, e->name_len, 0);
	if (n) {
		m->bytes -= footprint(&n->e);
		t4dx_entry_clear(&n->e);
		t4dx_entry_copy(&n->e, e);
		m->bytes += footprint(&n->e);
		return 0;
	}
	n = malloc(sizeof(*n));
	if (!n)
		return ENOMEM;
	t4dx_entry_copy(&n->e, e);
	RB_INSERT(tree, &m->root, n);
	m->count++;
	m->bytes += footprint(&n->e);
	return 0;
}

uint64_t t4dx_mem_version(const struct t4dx_mem *m)
{
	return m ? m->version : 0;
}

const struct t4dx_entry *t4dx_mem_get(struct t4dx_mem *m, uint64_t parent,
				      const char *name, size_t name_len)
{
	struct node *n = find(m, parent, name, name_len, 0);
	return n ? &n->e : NULL;
}

const struct t4dx_entry *t4dx_mem_seek(struct t4dx_mem *m, uint64_t parent,
				       const char *name, size_t name_len)
{
	struct node *n = find(m, parent, name, name_len, 1);
	return n ? &n->e : NULL;
}

const struct t4dx_entry *t4dx_mem_next(struct t4dx_mem *m,
				       const struct t4dx_entry *e)
{
	struct node *n = (struct node *)((char *)e - offsetof(struct node, e));
	n = RB_NEXT(tree, &m->root, n);
	return n ? &n->e : NULL;
}

size_t t4dx_mem_count(const struct t4dx_mem *m)
{
	return m->count;
}

size_t t4dx_mem_bytes(const struct t4dx_mem *m)
{
	return m->bytes;
}
