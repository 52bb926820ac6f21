/* test_memtable.c - the memtable's order, replacement and accounting;
 * the fallback cache's bounds. */
#include <string.h>

#include "lru.h"
#include "memtable.h"
#include "unit.h"

static void mk(struct t4dx_entry *e, uint64_t parent, const char *name,
	       const char *content)
{
	memset(e, 0, sizeof(*e));
	REQUIRE(t4dx_entry_set_key(e, parent, name, strlen(name)) == 0);
	e->ino = parent * 1000 + strlen(name);
	if (content) {
		e->content = t4dx_blob_from(content, strlen(content));
		e->size = strlen(content);
	}
}

static void test_order(void)
{
	struct t4dx_mem *m = t4dx_mem_new();
	const char *names[] = { "b", "a", "ab", "\xff", "B", "aa", "a b" };
	struct t4dx_entry e;
	for (int p = 3; p >= 1; p--)
		for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
			mk(&e, (uint64_t)p, names[i], "x");
			REQUIRE(t4dx_mem_put(m, &e) == 0);
			t4dx_entry_clear(&e);
		}
	CHECK_EQ_INT(t4dx_mem_count(m), 21);
	/* byte-wise order within a parent, parents ascending */
	const char *want[] = { "B", "a", "a b", "aa", "ab", "b", "\xff" };
	size_t k = 0;
	for (const struct t4dx_entry *x = t4dx_mem_seek(m, 0, "", 0); x;
	     x = t4dx_mem_next(m, x), k++) {
		CHECK_EQ_INT(x->parent, 1 + k / 7);
		CHECK(strcmp(x->name, want[k % 7]) == 0);
	}
	CHECK_EQ_INT(k, 21);
	/* seek lands on the first key >= the probe */
	const struct t4dx_entry *x = t4dx_mem_seek(m, 2, "a c", 3);
	REQUIRE(x);
	CHECK(x->parent == 2 && !strcmp(x->name, "aa"));
	x = t4dx_mem_seek(m, 3, "\xff\xff", 2);
	CHECK(x == NULL);
	CHECK(t4dx_mem_get(m, 2, "ab", 2) != NULL);
	CHECK(t4dx_mem_get(m, 4, "ab", 2) == NULL);
	CHECK(t4dx_mem_get(m, 2, "abc", 3) == NULL);
	t4dx_mem_free(m);
}

static void test_replace(void)
{
	struct t4dx_mem *m = t4dx_mem_new();
	struct t4dx_entry e;
	mk(&e, 5, "k", "first");
	struct t4dx_blob *first = t4dx_blob_ref(e.content);
	REQUIRE(t4dx_mem_put(m, &e) == 0);
	t4dx_entry_clear(&e);
	CHECK_EQ_INT(atomic_load(&first->refs), 2);     /* ours + memtable */
	size_t bytes1 = t4dx_mem_bytes(m);

	mk(&e, 5, "k", "second, longer");
	REQUIRE(t4dx_mem_put(m, &e) == 0);
	t4dx_entry_clear(&e);
	CHECK_EQ_INT(t4dx_mem_count(m), 1);
	CHECK_EQ_INT(atomic_load(&first->refs), 1);     /* released */
	CHECK(t4dx_mem_bytes(m) > bytes1);
	const struct t4dx_entry *x = t4dx_mem_get(m, 5, "k", 1);
	REQUIRE(x && x->content);
	CHECK(x->size == 14 && !memcmp(x->content->data, "second, longer", 14));

	/* a tombstone replaces the entry and keeps the key */
	memset(&e, 0, sizeof(e));
	t4dx_entry_set_key(&e, 5, "k", 1);
	e.tombstone = true;
	REQUIRE(t4dx_mem_put(m, &e) == 0);
	x = t4dx_mem_get(m, 5, "k", 1);
	CHECK(x && x->tombstone && x->content == NULL);
	CHECK_EQ_INT(t4dx_mem_count(m), 1);
	t4dx_blob_unref(first);
	t4dx_mem_free(m);
}

/* The fallback cache holds at most max_items entries and max_bytes of
 * contents: the least recently used go first, and an item larger than
 * the byte bound is not kept at all (nor is its older version). */
static void test_lru_bounds(void)
{
	char c40[41], c101[102];
	memset(c40, 'x', 40);
	c40[40] = 0;
	memset(c101, 'y', 101);
	c101[101] = 0;
	struct t4dx_lru *l = t4dx_lru_new(10, 100);
	REQUIRE(l);
	struct t4dx_entry e, out;
	const char *names[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++) {
		mk(&e, 1, names[i], c40);
		t4dx_lru_put(l, &e);
		t4dx_entry_clear(&e);
	}
	size_t n;
	uint64_t bytes;
	t4dx_lru_usage(l, &n, &bytes);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(bytes, 80);
	CHECK_EQ_INT(t4dx_lru_get(l, 1, "a", 1, true, &out), T4DX_ENOTFOUND);
	CHECK_EQ_INT(t4dx_lru_get(l, 1, "b", 1, true, &out), 0);
	CHECK(out.content && out.content->len == 40);
	t4dx_entry_clear(&out);
	mk(&e, 1, "b", c101);           /* too big: b is dropped, not kept */
	t4dx_lru_put(l, &e);
	t4dx_entry_clear(&e);
	CHECK_EQ_INT(t4dx_lru_get(l, 1, "b", 1, true, &out), T4DX_ENOTFOUND);
	t4dx_lru_usage(l, &n, &bytes);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(bytes, 40);
	t4dx_lru_free(l);

	l = t4dx_lru_new(2, 1000);      /* the count bound */
	REQUIRE(l);
	for (int i = 0; i < 3; i++) {
		mk(&e, 2, names[i], "z");
		t4dx_lru_put(l, &e);
		t4dx_entry_clear(&e);
	}
	t4dx_lru_usage(l, &n, &bytes);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(bytes, 2);
	t4dx_lru_free(l);
}

int main(void)
{
	RUN(test_order);
	RUN(test_lru_bounds);
	RUN(test_replace);
	UNIT_DONE();
}
