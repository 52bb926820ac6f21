/*
 * test_inode.c - the daemon's inode table (fs/inode.c) against a plain
 * array of what it should hold: adds, lookups counted and forgotten, open
 * handles, growth, and removals from the middle of probe runs, with
 * inode numbers in sequence, in strides that share low bits, and random;
 * and the LSN that an fsync of each inode waits for.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "inode.h"
#include "unit.h"

#define MAXN 200000

struct want {
	uint64_t ino;
	uint64_t nlookup;
	struct node *n;
};

static struct node_table T;   /* the table under test */
static struct want w[MAXN];
static size_t nw;

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static struct node *ref(uint64_t ino, uint64_t lookups)
{
	char name[32];
	int len = snprintf(name, sizeof(name), "n%llu", (unsigned long long)ino);
	return node_ref(&T, ino, 7, name, (size_t)len, lookups);
}

/* Every wanted node is found with its key and count. */
static void check_all(void)
{
	size_t bad = 0;
	for (size_t i = 0; i < nw; i++) {
		struct node *n = node_find(&T, w[i].ino);
		char name[32];
		snprintf(name, sizeof(name), "n%llu", (unsigned long long)w[i].ino);
		if (n != w[i].n || !n || n->ino != w[i].ino ||
		    n->nlookup != w[i].nlookup || n->parent != 7 ||
		    strcmp(n->name, name) != 0)
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
}

/* Add count inodes first, first + step, ... */
static void add_run(uint64_t first, uint64_t step, size_t count)
{
	for (size_t i = 0; i < count && nw < MAXN; i++) {
		uint64_t ino = first + i * step;
		struct node *n = ref(ino, 1);
		REQUIRE(n);
		w[nw++] = (struct want){ ino, 1, n };
	}
}

/* Forget a random half; the forgotten ones must be gone. */
static void forget_half(void)
{
	size_t keep = 0, gone = 0;
	uint64_t *dropped = malloc(nw * sizeof(*dropped));
	REQUIRE(dropped);
	size_t nd = 0;
	for (size_t i = 0; i < nw; i++) {
		if (next_rand() & 1) {
			node_forget(&T, w[i].n, w[i].nlookup);
			dropped[nd++] = w[i].ino;
		} else {
			w[keep++] = w[i];
		}
	}
	nw = keep;
	for (size_t i = 0; i < nd; i++)
		if (node_find(&T, dropped[i]))
			gone++;
	CHECK_EQ_INT(gone, 0);
	free(dropped);
	check_all();
}

static void test_patterns(void)
{
	add_run(1000, 1, 50000);
	add_run(UINT64_C(1) << 20, UINT64_C(1) << 18, 20000);
	add_run(UINT64_C(1) << 40, 4096, 20000);
	for (size_t i = 0; i < 30000; i++) {
		uint64_t ino = (next_rand() >> 8) | (UINT64_C(1) << 60);
		struct node *n = ref(ino, 1);
		REQUIRE(n);
		w[nw++] = (struct want){ ino, 1, n };
	}
	check_all();
	forget_half();
	/* the table shrank nowhere: adding again after removals */
	add_run(5000000, 3, 40000);
	check_all();
	forget_half();
	forget_half();
	node_free_all(&T);
	nw = 0;
	CHECK(node_find(&T, 1000) == NULL);
}

static void test_counts(void)
{
	struct node *n = ref(42, 1);
	REQUIRE(n);
	CHECK(ref(42, 2) == n);
	CHECK_EQ_INT(n->nlookup, 3);
	node_forget(&T, n, 2);
	CHECK(node_find(&T, 42) == n);
	CHECK_EQ_INT(n->nlookup, 1);

	/* an open handle keeps the node past its last lookup */
	n->opens = 1;
	node_forget(&T, n, 5);
	CHECK(node_find(&T, 42) == n);
	node_close(&T, n);
	CHECK(node_find(&T, 42) == NULL);

	/* an unlinked node takes the key of its next reference */
	n = node_ref(&T, 43, 1, "a", 1, 1);
	REQUIRE(n);
	n->unlinked = true;
	CHECK(node_ref(&T, 43, 2, "bb", 2, 1) == n);
	CHECK(!n->unlinked && n->parent == 2 && strcmp(n->name, "bb") == 0);
	CHECK_EQ_INT(n->nlookup, 2);
	node_move(n, 3, "ccc", 3);
	CHECK(n->parent == 3 && strcmp(n->name, "ccc") == 0);
	node_forget(&T, n, 2);
	CHECK(node_find(&T, 43) == NULL);

	/* add and forget one node over and over */
	for (int i = 0; i < 10000; i++) {
		n = ref(44, 1);
		REQUIRE(n);
		node_forget(&T, n, 1);
	}
	CHECK(node_find(&T, 44) == NULL);
	node_free_all(&T);
}

/* What fsync waits for: each inode's own last record, never less, also
 * for an inode that was forgotten (the floor) or never had a node. */
static void test_sync_lsn(void)
{
	node_lsn_floor(&T, 5);
	struct node *a = ref(100, 1), *b = ref(101, 1);
	REQUIRE(a && b);
	CHECK_EQ_INT(a->sync_lsn, 5);
	CHECK_EQ_INT(node_sync_lsn(&T, 101), 5);
	CHECK_EQ_INT(node_sync_lsn(&T, 999), 5);            /* no node */

	/* each inode's own records, only ever raised */
	node_note_lsn(&T, 100, 9);
	node_note_lsn(&T, 101, 7);
	node_note_lsn(&T, 100, 8);
	CHECK_EQ_INT(node_sync_lsn(&T, 100), 9);
	CHECK_EQ_INT(node_sync_lsn(&T, 101), 7);
	node_note_lsn(&T, 100, 0);
	CHECK_EQ_INT(node_sync_lsn(&T, 100), 9);

	/* renamed or unlinked and referenced again: the node keeps it */
	node_move(a, 8, "moved", 5);
	CHECK_EQ_INT(node_sync_lsn(&T, 100), 9);
	a->unlinked = true;
	CHECK(ref(100, 1) == a);
	CHECK_EQ_INT(node_sync_lsn(&T, 100), 9);

	/* an open handle keeps the node, and its LSN, past a forget */
	a->opens++;
	node_forget(&T, a, 2);
	CHECK(node_find(&T, 100) == a);
	CHECK_EQ_INT(node_sync_lsn(&T, 999), 5);

	/* freed: its LSN becomes the floor of every inode without a node
	 * and of every new node, not of nodes that exist */
	node_close(&T, a);
	CHECK(node_find(&T, 100) == NULL);
	CHECK_EQ_INT(node_sync_lsn(&T, 100), 9);
	CHECK_EQ_INT(node_sync_lsn(&T, 999), 9);
	CHECK_EQ_INT(node_sync_lsn(&T, 101), 7);
	a = ref(100, 1);
	REQUIRE(a);
	CHECK_EQ_INT(a->sync_lsn, 9);

	/* a record of an inode without a node raises the floor */
	node_note_lsn(&T, 555, 12);
	CHECK_EQ_INT(node_sync_lsn(&T, 555), 12);
	CHECK_EQ_INT(node_sync_lsn(&T, 101), 7);
	struct node *c = ref(102, 1);
	REQUIRE(c);
	CHECK_EQ_INT(c->sync_lsn, 12);

	/* a smaller floor changes nothing */
	node_lsn_floor(&T, 3);
	CHECK_EQ_INT(node_sync_lsn(&T, 999), 12);
	node_free_all(&T);
	CHECK_EQ_INT(node_sync_lsn(&T, 999), 0);
}

int main(void)
{
	RUN(test_counts);
	RUN(test_patterns);
	RUN(test_sync_lsn);
	UNIT_DONE();
}
