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
 * under fs->ns_mu: rename moves the node to its new key (node_move), unlink,
 * rmdir and rename-over mark the node they remove as unlinked, so that a
 * commit through a still-open handle of a deleted file is dropped rather
 * than resurrecting the name.  The key stored here is therefore always the
 * entry's current key in the engine.
 *
 * The table.  It is looked up once per entry of a readdirplus reply, so
 * that a warm `ls -l` of a big directory spends much of its time here.
 * It is an open-addressing table of (ino, node) pairs with linear
 * probing: a lookup reads the slot array, mostly one cache line, and
 * then the one node it finds, where a chained table would read a node
 * per link.  Inode numbers are handed out in sequence, so they are
 * spread by a multiplicative hash before they pick a slot.  The table
 * is at most half full (7/8 if it cannot grow), so probes are short and
 * always end at an empty slot; a removal shifts the run after it back
 * (no tombstones).  All of it is guarded by fs->ns_mu.
 *
 * What fsync waits for.  fsync of a file or directory must not wait for
 * (nor fail because of) the records of other inodes, and must never say 0
 * while a record that changed this one is not on disk.  Each node keeps
 * sync_lsn, the LSN of the last record that changed it, raised under
 * ns_mu by whoever queues such a record (the namespace lock is held there
 * anyway); the log makes records durable in LSN order, so waiting for that
 * one covers the inode's earlier records too.  An LSN is noted only for a
 * change the engine accepted: with policy queue its record stays queued
 * until written (it is never dropped), and with policy reject it is
 * durable before the call returns, so LSNs that a failed change gives
 * back (t4dx_wal_discard_pending) are never noted, and a later record
 * that reuses one of them comes after a durable record it cannot make
 * less durable.  A node that is freed (the kernel forgot the inode) takes
 * its sync_lsn with it, so it raises a floor instead, and every new node
 * starts from that floor: an inode looked up again waits for at least
 * what it was known to need, maybe for more, never for less.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "inode.h"

struct slot {
	uint64_t ino;
	struct node *n;                 /* NULL: empty */
};


#define MIN_SLOTS 1024
#define HUGE_BYTES ((size_t)2 << 20)

static size_t home_of(struct node_table *t, uint64_t ino)
{
	return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> t->hash_shift);
}

/* The slot of ino, or the empty slot where it would go.  nslots > 0. */
static size_t slot_of(struct node_table *t, uint64_t ino)
{
	size_t mask = t->nslots - 1;
	size_t i = home_of(t, ino);
	while (t->slots[i].n && t->slots[i].ino != ino)
		i = (i + 1) & mask;
	return i;
}

/* Zeroed memory in whole huge pages (bytes a multiple of HUGE_BYTES),
 * or NULL.  Slots and nodes are read in hash order, each on another
 * page: with 4 KiB pages a lookup would miss the TLB as well as the
 * cache. */
static void *huge_alloc(size_t bytes)
{
	char *p = mmap(NULL, bytes + HUGE_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	size_t head = (HUGE_BYTES - (uintptr_t)p % HUGE_BYTES) % HUGE_BYTES;
	if (head)
		munmap(p, head);
	munmap(p + head + bytes, HUGE_BYTES - head);
	p += head;
	(void)madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

static struct slot *slots_alloc(size_t n)
{
	size_t bytes = n * sizeof(struct slot);
	if (bytes < HUGE_BYTES)
		return calloc(n, sizeof(struct slot));
	return huge_alloc(bytes);
}

static void slots_free(struct slot *v, size_t n)
{
	size_t bytes = n * sizeof(struct slot);
	if (bytes < HUGE_BYTES)
		free(v);
	else if (v)
		munmap(v, bytes);
}

/* Nodes come from blocks of HUGE_BYTES, aligned to their size so that a
 * node finds its block by its address.  A block hands out cells of one
 * cache line: first from its free list, then those never used.  Blocks
 * with a free cell are on a list; one that empties is returned to the
 * system unless it is the only one with room (so that a node added and
 * forgotten over and over does not map and unmap a block each time). */
union cell {
	struct node n;
	union cell *next;               /* on its block's free list */
	char line[64];
} __attribute__((aligned(64)));
_Static_assert(sizeof(union cell) == 64, "a node fills one cache line");

struct block {
	struct block *next, *prev;      /* blocks with room */
	union cell *free;
	size_t used, carved;            /* cells in use, ever handed out */
	bool listed;
};

#define CELL0 ((sizeof(struct block) + sizeof(union cell) - 1) / \
	       sizeof(union cell))
#define NCELLS (HUGE_BYTES / sizeof(union cell))

static void room_add(struct node_table *t, struct block *b)
{
	b->prev = NULL;
	b->next = t->room;
	if (t->room)
		t->room->prev = b;
	t->room = b;
	b->listed = true;
}

static void room_del(struct node_table *t, struct block *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		t->room = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->listed = false;
}

/* A zeroed node, or NULL. */
static struct node *node_alloc(struct node_table *t)
{
	struct block *b = t->room;
	if (!b) {
		b = huge_alloc(HUGE_BYTES);
		if (!b)
			return NULL;
		b->carved = CELL0;
		room_add(t, b);
	}
	union cell *c = b->free;
	if (c)
		b->free = c->next;
	else
		c = (union cell *)b + b->carved++;
	b->used++;
	if (!b->free && b->carved == NCELLS)
		room_del(t, b);
	memset(c, 0, sizeof(*c));
	return &c->n;
}

static void node_dealloc(struct node_table *t, struct node *n)
{
	union cell *c = (union cell *)n;
	struct block *b = (struct block *)((uintptr_t)c & ~(HUGE_BYTES - 1));
	c->next = b->free;
	b->free = c;
	b->used--;
	if (!b->listed)
		room_add(t, b);
	if (!b->used && (b->prev || b->next)) {
		room_del(t, b);
		munmap(b, HUGE_BYTES);
	}
}

/* 0, or ENOMEM with the table unchanged. */
static int table_resize(struct node_table *t, size_t want)
{
	struct slot *v = slots_alloc(want);
	if (!v)
		return ENOMEM;
	struct slot *old = t->slots;
	size_t nold = t->nslots;
	t->slots = v;
	t->nslots = want;
	t->hash_shift = 64;
	for (size_t w = want; w > 1; w >>= 1)
		t->hash_shift--;
	for (size_t i = 0; i < nold; i++)
		if (old[i].n)
			t->slots[slot_of(t, old[i].ino)] = old[i];
	slots_free(old, nold);
	return 0;
}

/* Room for one more node: 0, or ENOMEM if the table is full enough that
 * probes could run long and it cannot grow. */
static int table_reserve(struct node_table *t)
{
	if (!t->nslots)
		return table_resize(t, MIN_SLOTS);
	if ((t->nused + 1) * 2 <= t->nslots)
		return 0;
	if (!table_resize(t, t->nslots * 2))
		return 0;
	return (t->nused + 1) * 8 <= t->nslots * 7 ? 0 : ENOMEM;
}

static void table_remove(struct node_table *t, uint64_t ino)
{
	size_t mask = t->nslots - 1;
	size_t hole = slot_of(t, ino);
	if (!t->slots[hole].n)
		return;
	/* move back every later member of the run that may sit in the hole:
	 * one whose home is not cyclically between the hole and itself */
	for (size_t j = (hole + 1) & mask; t->slots[j].n; j = (j + 1) & mask) {
		size_t home = home_of(t, t->slots[j].ino);
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			t->slots[hole] = t->slots[j];
			hole = j;
		}
	}
	t->slots[hole].n = NULL;
	t->slots[hole].ino = 0;
	t->nused--;
}

struct node *node_find(struct node_table *t, uint64_t ino)
{
	if (!t->nslots)
		return NULL;
	return t->slots[slot_of(t, ino)].n;
}

void node_prefetch(struct node_table *t, uint64_t ino, unsigned hop)
{
	if (!t->nslots)
		return;
	if (hop == 0) {
		__builtin_prefetch(&t->slots[home_of(t, ino)]);
	} else if (hop == 1) {
		const struct node *n = t->slots[slot_of(t, ino)].n;
		if (n)
			__builtin_prefetch(n);
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

struct node *node_ref(struct node_table *t, uint64_t ino, uint64_t parent,
		      const char *name, size_t name_len, uint64_t lookups)
{
	struct node *n = node_find(t, ino);
	if (!n) {
		if (table_reserve(t))
			return NULL;
		n = node_alloc(t);
		if (!n)
			return NULL;
		n->ino = ino;
		n->sync_lsn = t->lsn_floor;
		if (set_key(n, parent, name, name_len)) {
			node_dealloc(t, n);
			return NULL;
		}
		struct slot *sl = &t->slots[slot_of(t, ino)];
		sl->ino = ino;
		sl->n = n;
		t->nused++;
	} else if (n->unlinked) {
		if (set_key(n, parent, name, name_len))
			return NULL;
		n->unlinked = false;
	}
	n->nlookup += lookups;
	return n;
}

static void maybe_free(struct node_table *t, struct node *n)
{
	if (n->nlookup || n->opens)
		return;
	node_lsn_floor(t, n->sync_lsn);
	table_remove(t, n->ino);
	free(n->name);
	node_dealloc(t, n);
}

void node_forget(struct node_table *t, struct node *n, uint64_t count)
{
	n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
	maybe_free(t, n);
}

void node_close(struct node_table *t, struct node *n)
{
	if (n->opens)
		n->opens--;
	maybe_free(t, n);
}

void node_move(struct node *n, uint64_t parent, const char *name,
	       size_t name_len)
{
	/* without memory for the new name the old key would be wrong:
	 * the kernel's inode then answers ENOENT until looked up again */
	if (set_key(n, parent, name, name_len))
		n->unlinked = true;
}

uint64_t node_sync_lsn(struct node_table *t, uint64_t ino)
{
	struct node *n = node_find(t, ino);
	return n ? n->sync_lsn : t->lsn_floor;
}

void node_note_lsn(struct node_table *t, uint64_t ino, uint64_t lsn)
{
	struct node *n = node_find(t, ino);
	if (!n)
		node_lsn_floor(t, lsn);
	else if (lsn > n->sync_lsn)
		n->sync_lsn = lsn;
}

void node_lsn_floor(struct node_table *t, uint64_t lsn)
{
	if (lsn > t->lsn_floor)
		t->lsn_floor = lsn;
}

void node_free_all(struct node_table *t)
{
	for (size_t i = 0; i < t->nslots; i++) {
		struct node *n = t->slots[i].n;
		if (n) {
			free(n->name);
			node_dealloc(t, n);
		}
	}
	while (t->room) {
		struct block *b = t->room;
		room_del(t, b);
		munmap(b, HUGE_BYTES);
	}
	slots_free(t->slots, t->nslots);
	t->slots = NULL;
	t->nslots = t->nused = 0;
	t->lsn_floor = 0;
}
