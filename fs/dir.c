/*
 * dir.c - directories: opendir takes a listing, readdir and readdirplus
 * serve it, releasedir frees it; and statfs.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/statvfs.h>

#include "t4dxfs.h"
#include "ctl.h"
#include "inode.h"

/* ---- directories ------------------------------------------------------ */

/* A listing is taken whole at opendir, so that readdir sees one consistent
 * directory however the kernel splits it.  It keeps per entry only what a
 * readdir(plus) reply needs, and the names in one array, so that a big
 * directory costs three allocations rather than one per name. */
struct dent {
	uint64_t ino, size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t mode, uid, gid;
	uint16_t name_len;
	size_t name_off;                /* in dirh.names, NUL-terminated */
};

struct dirh {
	struct dent *v;
	size_t n, cap;
	char *names;
	size_t names_len, names_cap;
	uint64_t gen;                   /* fs->ns_gen when listed */
	uint64_t attr_gen;              /* fs->attr_gen when listed */
	fuse_ino_t ino;
	LIST_ENTRY(dirh) link;          /* open_dirs, guarded by ns_mu */
};


/* Append a slot for a name of len bytes; NULL on ENOMEM. */
static struct dent *dir_push(struct dirh *d, const char *name, size_t len)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dent *v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		d->v = v;
		d->cap = cap;
	}
	if (d->names_cap - d->names_len < len + 1) {
		size_t cap = d->names_cap ? d->names_cap * 2 : 1024;
		while (cap - d->names_len < len + 1)
			cap *= 2;
		char *p = realloc(d->names, cap);
		if (!p)
			return NULL;
		d->names = p;
		d->names_cap = cap;
	}
	struct dent *de = &d->v[d->n++];
	de->name_off = d->names_len;
	de->name_len = (uint16_t)len;
	memcpy(d->names + d->names_len, name, len);
	d->names[d->names_len + len] = 0;
	d->names_len += len + 1;
	return de;
}

static int dir_add(struct dirh *d, const char *name, size_t len,
		   const struct stat *st)
{
	struct dent *de = dir_push(d, name, len);
	if (!de)
		return ENOMEM;
	de->ino = st->st_ino;
	de->size = (uint64_t)st->st_size;
	de->atime_ns = ns_of(st->st_atim);
	de->mtime_ns = ns_of(st->st_mtim);
	de->ctime_ns = ns_of(st->st_ctim);
	de->mode = st->st_mode;
	de->uid = st->st_uid;
	de->gid = st->st_gid;
	return 0;
}

static int search_add(void *arg, const char *name, size_t len,
		      const struct stat *st)
{
	return dir_add(arg, name, len, st);
}

static int list_one(void *arg, const struct t4dx_entry *e)
{
	struct dent *de = dir_push(arg, e->name, e->name_len);
	if (!de)
		return ENOMEM;
	de->ino = e->ino;
	de->size = e->size;
	de->atime_ns = e->atime_ns;
	de->mtime_ns = e->mtime_ns;
	de->ctime_ns = e->ctime_ns;
	de->mode = e->mode;
	de->uid = e->uid;
	de->gid = e->gid;
	return 0;
}

static void dir_free(struct dirh *d)
{
	free(d->v);
	free(d->names);
	free(d);
}

static int do_opendir(struct t4dxfs *fs, fuse_ino_t ino,
		      struct fuse_file_info *fi)
{
	struct stat st;
	int rc = do_getattr(fs, ino, &st);
	if (rc)
		return rc;
	if (!S_ISDIR(st.st_mode))
		return ENOTDIR;
	struct dirh *d = calloc(1, sizeof(*d));
	if (!d)
		return ENOMEM;
	d->ino = ino;
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR;
	st.st_ino = ino;
	rc = dir_add(d, ".", 1, &st);
	if (!rc)
		rc = dir_add(d, "..", 2, &st);
	if (rc)
		goto out;
	if (ino == INO_MOUNT_ROOT) {
		fixed_stat(fs, INO_CTL_DIR, &st);
		rc = dir_add(d, ".ctl", 4, &st);
		if (!rc && !(rc = do_getattr(fs, INO_ITEMS, &st)))
			rc = dir_add(d, "items", 5, &st);
		if (!rc) {
			fixed_stat(fs, INO_SEARCH_DIR, &st);
			rc = dir_add(d, "search", 6, &st);
		}
	} else if (is_search(ino)) {
		rc = search_list(fs, ino, search_add, d);
	} else if (ino == INO_CTL_DIR) {
		const struct ctl_file *c;
		for (size_t i = 0; !rc && (c = ctl_at(i)); i++) {
			fixed_stat(fs, c->ino, &st);
			rc = dir_add(d, c->name, strlen(c->name), &st);
		}
	} else {
		ns_lock(fs);
		d->gen = fs->ns_gen;
		ns_unlock(fs);
		d->attr_gen = atomic_load(&fs->attr_gen);
		rc = t4dx_scan(fs->db, ino, list_one, d);
	}
out:
	if (rc) {
		dir_free(d);
		return rc;
	}
	ns_lock(fs);
	LIST_INSERT_HEAD(&fs->open_dirs, d, link);
	ns_unlock(fs);
	fi->fh = (uintptr_t)d;
	return 0;
}

void op_opendir(fuse_req_t req, fuse_ino_t ino,
		struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_OPENDIR);
	int rc = do_opendir(fs, ino, fi);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_open(req, fi);
}

/* Take a kernel reference for a readdirplus entry and give st the size
 * of a write buffer being filled.  If the namespace changed since the
 * listing was taken, the entry is checked again.  false: gone since the
 * listing.  ns_mu held. */
static bool plus_ref(struct t4dxfs *fs, struct dirh *d, const struct dent *de,
		     struct stat *st)
{
	const char *name = d->names + de->name_off;
	if (fs->ns_gen != d->gen) {
		struct t4dx_entry e = { 0 };
		if (t4dx_get(fs->db, d->ino, name, de->name_len, 0, &e) ||
		    e.ino != de->ino)
			return false;
	}
	struct node *n = node_ref(&fs->nodes, de->ino, d->ino, name,
				  de->name_len, 1);
	if (!n)
		return false;
	node_wbuf_size(n, st);
	return true;
}

/* Readdirplus asks for the inode table's slots and nodes ahead of use:
 * the slot NODE_PREFETCH_HOPS * AHEAD entries ahead, the node AHEAD
 * entries ahead (node_prefetch). */
#define AHEAD 6

static void do_readdir(struct t4dxfs *fs, fuse_req_t req, size_t size,
		       off_t off, struct fuse_file_info *fi, bool plus)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t pos = 0;
	if (!buf) {
		reply_err(req, ENOMEM);
		return;
	}
	struct stat st;
	struct fuse_entry_param ep;
	memset(&st, 0, sizeof(st));
	memset(&ep, 0, sizeof(ep));
	/* a listing may be older than the request that returns it, and the
	 * kernel would then take its attributes over newer ones: long only
	 * if no content or attribute changed since the listing (setattr
	 * replies carry their own attributes) */
	double attr_timeout = atomic_load(&fs->attr_gen) == d->attr_gen
				      ? fs->attr_timeout
				      : LISTING_ATTR_TIMEOUT;
	if (plus) {
		ns_lock(fs);
		/* what the loop would have asked for before off */
		for (unsigned hop = 0; hop < NODE_PREFETCH_HOPS; hop++) {
			size_t from = (size_t)off +
				      (NODE_PREFETCH_HOPS - hop) * AHEAD;
			for (size_t i = (size_t)off; i < from && i < d->n; i++)
				node_prefetch(&fs->nodes, d->v[i].ino, hop);
		}
	}
	for (size_t i = (size_t)off; i < d->n; i++) {
		const struct dent *de = &d->v[i];
		const char *name = d->names + de->name_off;
		size_t len;
		if (plus) {
			/* each node is a cache miss or more: ask for the ones
			 * ahead while this one is done */
			for (unsigned hop = 0; hop < NODE_PREFETCH_HOPS; hop++) {
				size_t j = i +
					   (NODE_PREFETCH_HOPS - hop) * AHEAD;
				if (j < d->n)
					node_prefetch(&fs->nodes, d->v[j].ino,
						      hop);
			}
			/* the size first, so that no reference is taken for
			 * an entry that does not fit */
			len = fuse_add_direntry_plus(req, NULL, 0, name, NULL,
						     0);
			if (len > size - pos)
				break;
			/* ep was cleared before the loop: every entry sets
			 * the same fields of it (the attributes, as
			 * entry_stat() gives them) */
			SET_STAT(&ep.attr, de);
			bool engine = i >= 2 && !is_fixed(de->ino) &&
				      de->ino != INO_ITEMS;
			if (i >= 2 &&
			    (!engine || plus_ref(fs, d, de, &ep.attr))) {
				ep.ino = de->ino;
				ep.generation = INO_GENERATION;
				ep.entry_timeout = fs->entry_timeout;
				ep.attr_timeout = attr_timeout;
				/* search/ is never cached (search.c) */
				if (is_search(de->ino))
					ep.entry_timeout = ep.attr_timeout = 0;
				/* a directory never counted: not now (that is a
				 * scan of it), but at its first stat */
				if (engine && S_ISDIR(de->mode)) {
					int64_t sub = dircount_get(fs, de->ino);
					if (sub >= 0)
						ep.attr.st_nlink =
							2 + (nlink_t)sub;
					else
						ep.attr_timeout = 0;
				}
			} else {
				/* '.' and '..', or gone since the listing: a
				 * plain entry, no reference */
				ep.ino = 0;
				ep.generation = 0;
				ep.entry_timeout = ep.attr_timeout = 0;
			}
			fuse_add_direntry_plus(req, buf + pos, size - pos,
					       name, &ep, (off_t)i + 1);
		} else {
			st.st_ino = de->ino;
			st.st_mode = de->mode;
			len = fuse_add_direntry(req, buf + pos, size - pos,
						name, &st, (off_t)i + 1);
			if (len > size - pos)
				break;
		}
		pos += len;
	}
	if (plus)
		ns_unlock(fs);
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_READDIR);
	do_readdir(fs, req, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
		    off_t off, struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_READDIRPLUS);
	do_readdir(fs, req, size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino,
		   struct fuse_file_info *fi)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	ns_lock(fs);
	LIST_REMOVE(d, link);
	ns_unlock(fs);
	bool big = d->n > 4096;
	dir_free(d);
	fuse_reply_err(req, 0);
	/* a big listing is many small blocks: give the memory back */
	if (big)
		malloc_trim(0);
}

void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct t4dxfs *fs = fuse_req_userdata(req);
	count_op(fs, OP_STATFS);
	struct statvfs sv;
	int rc = t4dx_statfs(fs->db, &sv);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	sv.f_namemax = T4DX_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

void dir_free_all(struct t4dxfs *fs)
{
	struct dirh *d;
	while ((d = LIST_FIRST(&fs->open_dirs))) {
		LIST_REMOVE(d, link);
		dir_free(d);
	}
}
