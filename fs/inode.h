/*
 * inode.h - the daemon's inode table: which (parent, name) each inode the
 * kernel knows stands for.  See the essay at the top of inode.c.
 * Every function here must be called with fs->ns_mu held; the table is
 * fs->nodes.
 *
 * Lock order: a wbuf's mu before fs->ns_mu, never the reverse.
 */
#ifndef T4DXFS_INODE_H
#define T4DXFS_INODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Content being written through open file handles of one inode. */
struct wbuf {
	pthread_mutex_t mu;             /* guards what follows unless its
	                                   note says otherwise; taken before
	                                   ns_mu, never after it */
	/* the bytes, data = buf->data: cap of them owned by this buffer,
	 * or, when shared, a committed version the memtable holds too
	 * (read-only: the next change copies it, cap 0), or bytes handed
	 * to a put that has not taken them yet (shared, and still counted:
	 * cap = charged = len).  charged: the bytes of fs->wb_bytes this
	 * buffer holds, the most its writes have asked for (not its cap:
	 * the room a doubling leaves unused is never touched, and must not
	 * refuse another file's writes) */
	struct t4dx_blob *buf;
	bool shared;
	unsigned char *data;
	size_t len, cap, charged;
	atomic_size_t shown_len;        /* len, readable without mu (getattr
	                                   holds ns_mu, which comes after mu) */
	bool dirty;                     /* differs from the committed content */
	bool defer;                     /* dirty only by an O_TRUNC open: a
	                                   close commits it only at release */
	atomic_bool emptied;            /* an O_TRUNC open emptied it, and no
	                                   put of it is queued since: readers
	                                   see an empty file (set under mu,
	                                   cleared under mu and ns_mu) */
	int err;                        /* sticky error (EFBIG): never commit */
	bool fresh;                     /* created provisionally, never
	                                   committed (T4DX_PROVISIONAL) */
	uint64_t queued_lsn;            /* the last put queued from it: a
	                                   commit that finds nothing to do
	                                   waits for it, as it may still be
	                                   on its way to the disk */
	bool mtime_set;                 /* mtime_ns is the file's mtime: the
	                                   last write's or truncate's time,
	                                   or a futimens after them (else the
	                                   commit's time) */
	int64_t mtime_ns;
	unsigned refs;                  /* write handles; ns_mu */
};

/* A node fills one cache line of its own (inode.c), the fields that a
 * readdirplus reply touches first. */
struct node {
	uint64_t ino;
	uint64_t nlookup;               /* kernel references */
	struct wbuf *wb;                /* shared by write handles, or NULL */
	bool unlinked;                  /* deleted or replaced: no key */
	uint16_t name_len;
	unsigned opens;                 /* open file handles */
	uint64_t parent;                /* key in the engine */
	char *name;                     /* NUL-terminated, owned */
	/* Commits of the content through this node (guarded by ns_mu).
	 * A read handle remembers the count it last read at; once it
	 * differs, its next read fetches the committed version again, so
	 * that every read through the kernel's shared page cache serves one
	 * version, the newest, and the cache the daemon drops at each
	 * commit is refilled with nothing older. */
	uint32_t content_gen;
	/* The LSN of the last record that changed this inode (ns_mu): for a
	 * file its content, attributes, name (rename, unlink); for a
	 * directory also its entries (create, unlink, rename, mkdir, rmdir
	 * in it).  fsync waits for it.  See "What fsync waits for" in
	 * inode.c. */
	uint64_t sync_lsn;
};

/* The table: all zero is an empty one.  Guarded by the caller's
 * namespace lock (fs->ns_mu), as the nodes are. */
struct node_table {
	struct slot *slots;             /* open addressing, linear probing */
	size_t nslots;                  /* a power of two, or 0 */
	size_t nused;
	unsigned hash_shift;            /* 64 - log2(nslots) */
	uint64_t lsn_floor;             /* see the essay in inode.c */
	struct block *room;             /* node blocks with a free cell */
};

/* Find ino, or NULL. */
struct node *node_find(struct node_table *t, uint64_t ino);
/* node_prefetch hops: 0 loads ino's slot of the table, 1 (some lookups
 * later, once the slot is in cache) the node it points to. */
#define NODE_PREFETCH_HOPS 2
/* Start loading what node_find(ino) reads, so that a run of lookups (a
 * readdirplus reply) overlaps its cache misses.  Only a hint: it changes
 * nothing.  ns_mu held. */
void node_prefetch(struct node_table *t, uint64_t ino, unsigned hop);
/* Find or add ino with the given key, adding lookups to nlookup.  An
 * existing node keeps its key unless it was unlinked.  NULL on ENOMEM. */
struct node *node_ref(struct node_table *t, uint64_t ino, uint64_t parent,
		      const char *name, size_t name_len, uint64_t lookups);
/* Drop n kernel references; frees the node when nothing refers to it. */
void node_forget(struct node_table *t, struct node *n, uint64_t count);
/* Drop an open handle's reference; frees like node_forget. */
void node_close(struct node_table *t, struct node *n);
/* Move the node to a new key (after a rename). */
void node_move(struct node *n, uint64_t parent, const char *name,
	       size_t name_len);
/* What an fsync of ino waits for: its node's sync_lsn, or, for an inode
 * without a node, the highest sync_lsn a freed node had (the floor). */
uint64_t node_sync_lsn(struct node_table *t, uint64_t ino);
/* The record lsn (0: none) changed ino: raise its sync_lsn, or the floor
 * if ino has no node. */
void node_note_lsn(struct node_table *t, uint64_t ino, uint64_t lsn);
/* Raise the floor to lsn (at mount: the last record the log held), so
 * that no inode counts as changed by nothing. */
void node_lsn_floor(struct node_table *t, uint64_t lsn);
/* Free the whole table (at unmount). */
void node_free_all(struct node_table *t);

#endif
