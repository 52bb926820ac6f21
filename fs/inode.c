/*
 * inode.c - the inode table.
 *
 * Names and inodes.  The engine keys every entry by (parent inode, name)
 * and stores in it a stable inode number, handed out once and kept across
 * renames and restarts.  The kernel, on the other hand, talks to us in
 * inode numbers only: a lookup of (parent, name) returns an inode, and from
 * then on getattr, open, setxattr... name just that number.  So the daemon
 * needs the reverse map, inode -> (parent, name), and keeps it here, for
 * exactly the inodes the kernel holds.
 *
 * Lifetime.  Each reply that hands an inode to the kernel (lookup, create,
 * mkdir, readdirplus) adds one to its nlookup; FORGET subtracts what the
 * kernel says.  An open file handle also pins its node (opens), because a
 * file can be written and closed after its last name is gone.  A node is
 * freed when both counts are zero.  The fixed inodes of the mount root,
 * .ctl and items/ never enter the table.
 *
 * Keeping it true.  Every change of the namespace goes through the daemon,
 * under fs.ns_mu: rename moves the node to its new key (node_move), unlink,
 * rmdir and rename-over mark the node they remove as unlinked, so that a
 * commit through a still-open handle of a deleted file is dropped rather
 * than resurrecting the name.  The key stored here is therefore always the
 * entry's current key in the engine.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "t4dxfs.h"
#include "inode.h"

struct node *node_find(uint64_t ino)
{
	struct node *n;
	HASH_FIND(hh, fs.nodes, &ino, sizeof(ino), n);
	return n;
}

void node_prefetch(uint64_t ino, unsigned hop)
{
	if (!fs.nodes)
		return;
	UT_hash_table *tbl = fs.nodes->hh.tbl;
	unsigned hv, bkt;
	HASH_VALUE(&ino, sizeof(ino), hv);
	HASH_TO_BKT(hv, tbl->num_buckets, bkt);
	const UT_hash_bucket *b = &tbl->buckets[bkt];
	if (hop == 0) {
		__builtin_prefetch(b);
		return;
	}
	/* the chain up to the node, as HASH_FIND walks it */
	const UT_hash_handle *h = b->hh_head;
	for (unsigned i = 1; h && i < hop; i++) {
		const struct node *n = ELMT_FROM_HH(tbl, h);
		if (h->hashv == hv && n->ino == ino)
			return;
		h = h->hh_next;
	}
	if (h) {
		/* the key and the handle: both ends of the node */
		const char *n = (const char *)ELMT_FROM_HH(tbl, h);
		__builtin_prefetch(n);
		__builtin_prefetch(n + sizeof(struct node) - 1);
	}
}

/* 0, or ENOMEM with the node unchanged. */
static int set_key(struct node *n, uint64_t parent, const char *name,
		   size_t len)
{
	char *p = realloc(n->name, len + 1);
	if (!p)
		return ENOMEM;
	memcpy(p, name, len);
	p[len] = 0;
	n->name = p;
	n->parent = parent;
	n->name_len = (uint16_t)len;
	return 0;
}

struct node *node_ref(uint64_t ino, uint64_t parent, const char *name,
		      size_t name_len, uint64_t lookups)
{
	struct node *n = node_find(ino);
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n)
			return NULL;
		n->ino = ino;
		if (set_key(n, parent, name, name_len)) {
			free(n);
			return NULL;
		}
		HASH_ADD(hh, fs.nodes, ino, sizeof(n->ino), n);
	} else if (n->unlinked) {
		if (set_key(n, parent, name, name_len))
			return NULL;
		n->unlinked = false;
	}
	n->nlookup += lookups;
	return n;
}

static void maybe_free(struct node *n)
{
	if (n->nlookup || n->opens)
		return;
	HASH_DEL(fs.nodes, n);
	free(n->name);
	free(n);
}

void node_forget(struct node *n, uint64_t count)
{
	n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
	maybe_free(n);
}

void node_close(struct node *n)
{
	if (n->opens)
		n->opens--;
	maybe_free(n);
}

void node_move(struct node *n, uint64_t parent, const char *name,
	       size_t name_len)
{
	/* without memory for the new name the old key would be wrong:
	 * the kernel's inode then answers ENOENT until looked up again */
	if (set_key(n, parent, name, name_len))
		n->unlinked = true;
}

void node_free_all(void)
{
	struct node *n, *tmp;
	HASH_ITER(hh, fs.nodes, n, tmp) {
		HASH_DEL(fs.nodes, n);
		free(n->name);
		free(n);
	}
}
