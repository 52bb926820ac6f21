/* test_memtable.c - the memtable's order, replacement and accounting. */
#include <string.h>

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

int main(void)
{
	RUN(test_order);
	RUN(test_replace);
	UNIT_DONE();
}
