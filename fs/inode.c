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

static struct slot *slots;              /* ns_mu */
static size_t nslots;                   /* a power of two, or 0 */
static size_t nused;
static unsigned hash_shift;             /* 64 - log2(nslots) */
static uint64_t lsn_floor;              /* ns_mu; see the essay */

#define MIN_SLOTS 1024
#define HUGE_BYTES ((size_t)2 << 20)

static size_t home_of(uint64_t ino)
{
	return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> hash_shift);
}

/* The slot of ino, or the empty slot where it would go.  nslots > 0. */
static size_t slot_of(uint64_t ino)
{
	size_t mask = nslots - 1;
	size_t i = home_of(ino);
	while (slots[i].n && slots[i].ino != ino)
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

static struct block *room;              /* blocks with room; ns_mu */

static void room_add(struct block *b)
{
	b->prev = NULL;
	b->next = room;
	if (room)
		room->prev = b;
	room = b;
	b->listed = true;
}

static void room_del(struct block *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		room = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->listed = false;
}

/* A zeroed node, or NULL. */
static struct node *node_alloc(void)
{
	struct block *b = room;
	if (!b) {
		b = huge_alloc(HUGE_BYTES);
		if (!b)
			return NULL;
		b->carved = CELL0;
		room_add(b);
	}
	union cell *c = b->free;
	if (c)
		b->free = c->next;
	else
		c = (union cell *)b + b->carved++;
	b->used++;
	if (!b->free && b->carved == NCELLS)
		room_del(b);
	memset(c, 0, sizeof(*c));
	return &c->n;
}

static void node_dealloc(struct node *n)
{
	union cell *c = (union cell *)n;
	struct block *b = (struct block *)((uintptr_t)c & ~(HUGE_BYTES - 1));
	c->next = b->free;
	b->free = c;
	b->used--;
	if (!b->listed)
		room_add(b);
	if (!b->used && (b->prev || b->next)) {
		room_del(b);
		munmap(b, HUGE_BYTES);
	}
}

/* 0, or ENOMEM with the table unchanged. */
static int table_resize(size_t want)
{
	struct slot *v = slots_alloc(want);
	if (!v)
		return ENOMEM;
	struct slot *old = slots;
	size_t nold = nslots;
	slots = v;
	nslots = want;
	hash_shift = 64;
	for (size_t w = want; w > 1; w >>= 1)
		hash_shift--;
	for (size_t i = 0; i < nold; i++)
		if (old[i].n)
			slots[slot_of(old[i].ino)] = old[i];
	slots_free(old, nold);
	return 0;
}

/* Room for one more node: 0, or ENOMEM if the table is full enough that
 * probes could run long and it cannot grow. */
static int table_reserve(void)
{
	if (!nslots)
		return table_resize(MIN_SLOTS);
	if ((nused + 1) * 2 <= nslots)
		return 0;
	if (!table_resize(nslots * 2))
		return 0;
	return (nused + 1) * 8 <= nslots * 7 ? 0 : ENOMEM;
}

static void table_remove(uint64_t ino)
{
	size_t mask = nslots - 1;
	size_t hole = slot_of(ino);
	if (!slots[hole].n)
		return;
	/* move back every later member of the run that may sit in the hole:
	 * one whose home is not cyclically between the hole and itself */
	for (size_t j = (hole + 1) & mask; slots[j].n; j = (j + 1) & mask) {
		size_t home = home_of(slots[j].ino);
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			slots[hole] = slots[j];
			hole = j;
		}
	}
	slots[hole].n = NULL;
	slots[hole].ino = 0;
	nused--;
}

struct node *node_find(uint64_t ino)
{
	if (!nslots)
		return NULL;
	return slots[slot_of(ino)].n;
}

void node_prefetch(uint64_t ino, unsigned hop)
{
	if (!nslots)
		return;
	if (hop == 0) {
		__builtin_prefetch(&slots[home_of(ino)]);
	} else if (hop == 1) {
		const struct node *n = slots[slot_of(ino)].n;
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

struct node *node_ref(uint64_t ino, uint64_t parent, const char *name,
		      size_t name_len, uint64_t lookups)
{
	struct node *n = node_find(ino);
	if (!n) {
		if (table_reserve())
			return NULL;
		n = node_alloc();
		if (!n)
			return NULL;
		n->ino = ino;
		n->sync_lsn = lsn_floor;
		if (set_key(n, parent, name, name_len)) {
			node_dealloc(n);
			return NULL;
		}
		struct slot *sl = &slots[slot_of(ino)];
		sl->ino = ino;
		sl->n = n;
		nused++;
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
	node_lsn_floor(n->sync_lsn);
	table_remove(n->ino);
	free(n->name);
	node_dealloc(n);
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

uint64_t node_sync_lsn(uint64_t ino)
{
	struct node *n = node_find(ino);
	return n ? n->sync_lsn : lsn_floor;
}

void node_note_lsn(uint64_t ino, uint64_t lsn)
{
	struct node *n = node_find(ino);
	if (!n)
		node_lsn_floor(lsn);
	else if (lsn > n->sync_lsn)
		n->sync_lsn = lsn;
}

void node_lsn_floor(uint64_t lsn)
{
	if (lsn > lsn_floor)
		lsn_floor = lsn;
}

void node_free_all(void)
{
	for (size_t i = 0; i < nslots; i++) {
		struct node *n = slots[i].n;
		if (n) {
			free(n->name);
			node_dealloc(n);
		}
	}
	while (room) {
		struct block *b = room;
		room_del(b);
		munmap(b, HUGE_BYTES);
	}
	slots_free(slots, nslots);
	slots = NULL;
	nslots = nused = 0;
	lsn_floor = 0;
}
