/* lru.c - see lru.h.  A uthash table for lookup and a doubly linked list
 * for recency, both under one mutex. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "lru.h"

struct lnode {
	UT_hash_handle hh;
	unsigned char key[8 + T4DX_NAME_MAX];
	unsigned keylen;
	struct lnode *prev, *next;      /* prev: more recent */
	struct t4dx_entry e;
};

struct t4dx_lru {
	pthread_mutex_t mu;             /* guards everything below */
	struct lnode *table;
	struct lnode *head, *tail;      /* most / least recently used */
	size_t count, cap;
	uint64_t bytes, max_bytes;      /* of the contents held */
};

static uint64_t content_bytes(const struct t4dx_entry *e)
{
	return e->content ? e->content->len : 0;
}

static unsigned make_key(unsigned char *k, uint64_t parent, const char *name,
			 size_t len)
{
	memcpy(k, &parent, 8);
	memcpy(k + 8, name, len);
	return (unsigned)(8 + len);
}

static void unlink_node(struct t4dx_lru *l, struct lnode *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

static void push_front(struct t4dx_lru *l, struct lnode *n)
{
	n->next = l->head;
	n->prev = NULL;
	if (l->head)
		l->head->prev = n;
	l->head = n;
	if (!l->tail)
		l->tail = n;
}

static void drop(struct t4dx_lru *l, struct lnode *n)
{
	unlink_node(l, n);
	HASH_DEL(l->table, n);
	l->bytes -= content_bytes(&n->e);
	t4dx_entry_clear(&n->e);
	free(n);
	l->count--;
}

static struct lnode *find(struct t4dx_lru *l, uint64_t parent,
			  const char *name, size_t len)
{
	unsigned char k[8 + T4DX_NAME_MAX];
	unsigned kl = make_key(k, parent, name, len);
	struct lnode *n;
	HASH_FIND(hh, l->table, k, kl, n);
	return n;
}

struct t4dx_lru *t4dx_lru_new(size_t capacity, uint64_t max_bytes)
{
	struct t4dx_lru *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	pthread_mutex_init(&l->mu, NULL);
	l->cap = capacity ? capacity : 1;
	l->max_bytes = max_bytes;
	return l;
}

void t4dx_lru_free(struct t4dx_lru *l)
{
	if (!l)
		return;
	while (l->head)
		drop(l, l->head);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

void t4dx_lru_put(struct t4dx_lru *l, const struct t4dx_entry *e)
{
	pthread_mutex_lock(&l->mu);
	struct lnode *n = find(l, e->parent, e->name, e->name_len);
	if (n)
		drop(l, n);
	if (!e->tombstone && content_bytes(e) <= l->max_bytes &&
	    (n = malloc(sizeof(*n)))) {
		n->keylen = make_key(n->key, e->parent, e->name, e->name_len);
		t4dx_entry_copy(&n->e, e);
		HASH_ADD(hh, l->table, key[0], n->keylen, n);
		push_front(l, n);
		l->count++;
		l->bytes += content_bytes(e);
		while (l->count > l->cap || l->bytes > l->max_bytes)
			drop(l, l->tail);
	}
	pthread_mutex_unlock(&l->mu);
}

void t4dx_lru_del(struct t4dx_lru *l, uint64_t parent, const char *name,
		  size_t len)
{
	pthread_mutex_lock(&l->mu);
	struct lnode *n = find(l, parent, name, len);
	if (n)
		drop(l, n);
	pthread_mutex_unlock(&l->mu);
}

void t4dx_lru_usage(struct t4dx_lru *l, size_t *count, uint64_t *bytes)
{
	pthread_mutex_lock(&l->mu);
	*count = l->count;
	*bytes = l->bytes;
	pthread_mutex_unlock(&l->mu);
}

int t4dx_lru_get(struct t4dx_lru *l, uint64_t parent, const char *name,
		 size_t len, bool with_content, struct t4dx_entry *out)
{
	int rc = T4DX_ENOTFOUND;
	pthread_mutex_lock(&l->mu);
	struct lnode *n = find(l, parent, name, len);
	if (n) {
		unlink_node(l, n);
		push_front(l, n);
		*out = n->e;
		out->content = with_content ? t4dx_blob_ref(n->e.content)
					    : NULL;
		out->vec = with_content ? t4dx_blob_ref(n->e.vec) : NULL;
		rc = 0;
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}
