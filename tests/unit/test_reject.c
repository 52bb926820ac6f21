/*
 * test_reject.c - policy "reject" applies a change only once its record
 * is durable, and waits for that fdatasync without the engine's lock:
 * what a change checked before (a name is free, a vector was made of the
 * content the item holds) must still hold when it is applied.  Two
 * threads race on the same name; the loser must see the winner.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embed.h"
#include "faults.h"
#include "t4dx.h"
#include "unit.h"
#include "vec.h"

#define R T4DX_ROOT_INO
#define ROUNDS 150

static struct t4dx *open_policy(const char *dir, const char *policy,
				const char *embedder)
{
	struct t4dx *db = NULL;
	char msg[256];
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	strcpy(c.fallback.policy, policy);
	strcpy(c.vector.embedder, embedder);
	int rc = t4dx_open(dir, &c, &db, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
	return db;
}

struct racer {
	struct t4dx *db;
	pthread_barrier_t *bar;
	char name[32];
	int rc;
};

static void *create_excl(void *arg)
{
	struct racer *r = arg;
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	REQUIRE(t4dx_entry_set_key(&e, R, r->name, strlen(r->name)) == 0);
	e.mode = S_IFREG | 0644;
	pthread_barrier_wait(r->bar);
	r->rc = t4dx_put(r->db, &e, T4DX_EXCL, NULL);
	return NULL;
}

/* Two exclusive creates of one name: exactly one succeeds, the other
 * answers EEXIST (both succeeded most rounds before the fix). */
static void test_excl_race(void)
{
	const char *dir = unit_tmpdir("rexcl");
	struct t4dx *db = open_policy(dir, "reject", "off");
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, 2);
	int both = 0, neither = 0;
	for (int i = 0; i < ROUNDS; i++) {
		struct racer r[2];
		pthread_t t[2];
		for (int k = 0; k < 2; k++) {
			r[k].db = db;
			r[k].bar = &bar;
			snprintf(r[k].name, sizeof(r[k].name), "x%d", i);
			REQUIRE(pthread_create(&t[k], NULL, create_excl,
					       &r[k]) == 0);
		}
		for (int k = 0; k < 2; k++)
			pthread_join(t[k], NULL);
		if (!r[0].rc && !r[1].rc)
			both++;
		else if (r[0].rc && r[1].rc)
			neither++;
		else
			CHECK_EQ_INT(r[0].rc | r[1].rc, EEXIST);
	}
	CHECK_EQ_INT(both, 0);
	CHECK_EQ_INT(neither, 0);
	pthread_barrier_destroy(&bar);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

static int write_file(struct t4dx *db, const char *name, const char *text)
{
	struct t4dx_entry e;
	int rc = t4dx_get(db, R, name, strlen(name), 0, &e);
	if (rc == T4DX_ENOTFOUND) {
		memset(&e, 0, sizeof(e));
		REQUIRE(t4dx_entry_set_key(&e, R, name, strlen(name)) == 0);
		e.mode = S_IFREG | 0644;
	} else if (rc) {
		return rc;
	}
	e.content = t4dx_blob_from(text, strlen(text));
	e.size = strlen(text);
	rc = t4dx_put(db, &e, 0, NULL);
	t4dx_entry_clear(&e);
	return rc;
}

/* Each item's vector is the embedder's vector of the content it holds:
 * never one of content it held before.  Returns how many are stale. */
static int stale_vectors(struct t4dx *db, int n)
{
	int stale = 0;
	float x[256];
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "f%d", i);
		struct t4dx_entry e;
		REQUIRE(t4dx_get(db, R, name, strlen(name), T4DX_GET_CONTENT,
				 &e) == 0);
		CHECK(e.content != NULL);
		if (e.vec && e.content) {
			REQUIRE(t4dx_embed(e.content->data, e.content->len,
					   256, x) == 0);
			struct t4dx_blob *w = t4dx_vec_new(x, 256);
			REQUIRE(w);
			if (!t4dx_vec_equal(w, e.vec))
				stale++;
			t4dx_blob_unref(w);
		}
		t4dx_entry_clear(&e);
	}
	return stale;
}

static void embedder_idle(struct t4dx *db)
{
	struct t4dx_embed_stats st;
	for (int i = 0; i < 120000; i++) {
		t4dx_embed_stats(db, &st);
		if (!st.busy)
			return;
		usleep(1000);
	}
	REQUIRE(!"the embedder never went idle");
}

/* A file written twice in a row while the embedder works on its first
 * content: the embedder's vector of the first content must not land on
 * the second (under reject its check passed while the second put waited
 * for its fdatasync; the stale vector then stayed for good). */
static void test_embed_race(void)
{
	const char *dir = unit_tmpdir("rembed");
	struct t4dx *db = open_policy(dir, "reject", "builtin");
	for (int i = 0; i < ROUNDS; i++) {
		char name[32], t1[64], t2[64];
		snprintf(name, sizeof(name), "f%d", i);
		snprintf(t1, sizeof(t1), "apple banana cherry %d", i);
		snprintf(t2, sizeof(t2), "volcano glacier tundra %d", i);
		REQUIRE(write_file(db, name, t1) == 0);
		REQUIRE(write_file(db, name, t2) == 0);
	}
	embedder_idle(db);
	CHECK_EQ_INT(stale_vectors(db, ROUNDS), 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	/* and after a restart, from the log */
	db = open_policy(dir, "reject", "off");
	CHECK_EQ_INT(stale_vectors(db, ROUNDS), 0);
	CHECK_EQ_INT(t4dx_close(db), 0);
	unit_rm_rf(dir);
}

int main(void)
{
	RUN(test_excl_race);
	RUN(test_embed_race);
	UNIT_DONE();
}
