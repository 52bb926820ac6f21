/*
 * t4dx.h - the public interface of libt4dx, the t4dx storage engine.
 *
 * The engine stores entries keyed by (parent inode, name): directories
 * (namespaces) and regular files (memories).  It knows nothing of FUSE or
 * the kernel; the inode numbers it hands out are its own stable ids.
 *
 * Conventions:
 *  - Functions return int: 0 on success, a positive errno value, or a
 *    negative T4DX_E* code (see t4dx_strerror()).
 *  - struct t4dx is opaque.  struct t4dx_entry and struct t4dx_blob are
 *    plain values; an entry owns one reference to its content blob.
 */
#ifndef T4DX_H
#define T4DX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#define T4DX_NAME_MAX 255
/* The largest content an item may have (1 GiB): the WAL record of such
 * an item, in base64 where its escapes would make it longer (rec.c),
 * still fits the decoder's int lengths.  limits.max_item_bytes may not
 * exceed it; what an item that large costs: README Large files. */
#define T4DX_ITEM_BYTES_MAX 1073741824u
/* The engine inode of the root of items/.  Inodes below it are free for the
 * embedding program (t4dxfs uses them for the mount root and .ctl/). */
#define T4DX_ROOT_INO 16

/* Negative error codes (positive values are errno). */
#define T4DX_ENOTFOUND  (-1)    /* no such key */
#define T4DX_ECORRUPT   (-2)    /* a checksum or format check failed */
#define T4DX_ELOCKED    (-3)    /* DATA_DIR is locked by another process */
#define T4DX_EFORMAT    (-4)    /* unknown format version or malformed file */
#define T4DX_ECONFIG    (-5)    /* invalid configuration */

const char *t4dx_strerror(int rc);
/* Map any return code to a positive errno suitable for a system call. */
int t4dx_errno(int rc);

/* ---- values ---------------------------------------------------------- */

struct t4dx_blob_slot;

/* Reference-counted immutable byte string (file content). */
struct t4dx_blob {
	atomic_uint refs;
	size_t len;
	struct t4dx_blob_slot *slot;    /* the engine's weak holder, told
	                                   when the blob is freed; or NULL */
	unsigned char data[];
};

/* Allocate a blob of len bytes (contents uninitialised), refs = 1.
 * Returns NULL on allocation failure. */
struct t4dx_blob *t4dx_blob_new(size_t len);
/* Resize a blob that only the caller holds (refs 1) to len bytes,
 * keeping its first bytes; NULL on failure (b is then unchanged). */
struct t4dx_blob *t4dx_blob_resize(struct t4dx_blob *b, size_t len);
/* New blob holding a copy of data[0..len). */
struct t4dx_blob *t4dx_blob_from(const void *data, size_t len);
struct t4dx_blob *t4dx_blob_ref(struct t4dx_blob *b);   /* NULL-safe */
void t4dx_blob_unref(struct t4dx_blob *b);              /* NULL-safe */
/* A weak holder of a blob (the engine's segments keep their large
 * decoded contents in one while readers hold them, so that readers share
 * a copy).  new: an empty slot, refs 1 (the caller's), NULL when out of
 * memory; get: a new reference to its blob, or NULL if it has none or
 * the blob's last reference is gone; set: hold b weakly until b is freed
 * (b has no slot yet and no other thread sees it). */
struct t4dx_blob_slot *t4dx_blob_slot_new(void);
void t4dx_blob_slot_unref(struct t4dx_blob_slot *w);    /* NULL-safe */
struct t4dx_blob *t4dx_blob_slot_get(struct t4dx_blob_slot *w);
void t4dx_blob_slot_set(struct t4dx_blob_slot *w, struct t4dx_blob *b);

enum t4dx_type { T4DX_EPISODIC = 0, T4DX_SEMANTIC = 1, T4DX_PROCEDURAL = 2 };
const char *t4dx_type_name(int type);
int t4dx_type_parse(const char *s, size_t len);  /* -1 if unknown */

/* Where an item's vector came from: none yet, the embedder (computed
 * from the content, dropped when the content changes) or a user's
 * setfattr (kept until removed).  TRIED is no vector either: the
 * embedder read the content and found it gets none (binary, no word);
 * like EMBED it goes with the content, so that a start does not read
 * that content again.  See vec.h. */
enum t4dx_vec_src { T4DX_VEC_NONE = 0, T4DX_VEC_EMBED = 1, T4DX_VEC_HAND = 2,
		    T4DX_VEC_TRIED = 3 };
#define T4DX_VEC_DIM_MAX 4096

/* One directory entry with its attributes.  For a directory, content is
 * NULL and size 0.  A tombstone marks a deleted key (only parent, name and
 * lsn are meaningful). */
struct t4dx_entry {
	uint64_t parent;
	uint16_t name_len;
	char name[T4DX_NAME_MAX + 1];   /* NUL-terminated; names never hold NUL */
	bool tombstone;
	uint64_t lsn;                   /* LSN of the record that wrote it */
	bool provisional;               /* in the memtable only, no record yet
	                                   (T4DX_PROVISIONAL) */
	uint64_t ino;
	uint32_t mode, uid, gid;
	int64_t atime_ns, mtime_ns, ctime_ns;
	/* memory attributes (regular files) */
	uint8_t id[16];
	double kappa, importance;
	uint8_t type;
	int64_t event_time_ns;
	uint64_t access_count;
	uint64_t size;                  /* content length */
	struct t4dx_blob *content;      /* owned reference, may be NULL when
	                                   only attributes were read */
	/* the vector (vec.h): vec_src says whether there is one; vec, an
	 * owned reference, comes with the content (NULL when only
	 * attributes were read, and always when vec_src is NONE) */
	uint8_t vec_src;                /* enum t4dx_vec_src */
	struct t4dx_blob *vec;
};

/* Copy src into dst, taking new references to the content and vector. */
void t4dx_entry_copy(struct t4dx_entry *dst, const struct t4dx_entry *src);
/* Drop the content and vector references; the entry may be reused. */
void t4dx_entry_clear(struct t4dx_entry *e);
/* Set parent and name; name_len must be 1..255 and the name free of '/'
 * and NUL, else EINVAL / ENAMETOOLONG. */
int t4dx_entry_set_key(struct t4dx_entry *e, uint64_t parent,
		       const char *name, size_t name_len);
/* Order of keys: parent, then name byte-wise, shorter first on a tie. */
int t4dx_key_cmp(uint64_t pa, const char *na, size_t la,
		 uint64_t pb, const char *nb, size_t lb);


/* ---- configuration --------------------------------------------------- */

struct t4dx_config {
	struct { unsigned failure_threshold, success_threshold;
		 double reset_timeout_s; } breaker;
	struct { uint64_t max_file_bytes, archive_max_bytes,
		 checkpoint_bytes;
		 /* records nobody waits for are committed within this */
		 unsigned commit_interval_ms; } wal;
	struct { uint64_t max_bytes, max_items; } memtable;
	struct { unsigned max_items, max_queue, drain_batch;
		 uint64_t max_queue_bytes, cache_bytes;
		 char policy[16]; char rescue_dir[4096];
		 /* when DATA_DIR and the rescue directory both fail, try
		  * $TMPDIR, /var/tmp, /tmp and /dev/shm, whatever their
		  * filesystem, before the log */
		 bool rescue_fallback; } fallback;
	struct {
		double interval_s, timeout_s;
		unsigned alert_threshold;
		uint64_t verify_bytes;  /* of segments read per tick */
		/* a start reads every block of every segment; else only
		 * their footers, indexes and Bloom filters (and every block
		 * of a segment the health thread or a read found damaged) */
		bool verify_at_start;
	} health;
	struct { double nrem_kappa_boost, prune_min_kappa,
		 prune_max_importance, prune_max_age_s; } compaction;
	struct { uint64_t max_item_bytes, write_buffer_bytes; } limits;
	/* every file's vector: its dimension, and what computes it from the
	 * content ("builtin", "command": the program of command, a JSON
	 * array of its argv, each answer within timeout_s; or "off": only
	 * vectors set by hand); each segment's HNSW index: neighbours a
	 * node, build and search breadth, and the fewest entries a segment
	 * needs to get one */
	struct { unsigned dim; char embedder[16]; char command[4096];
		 double timeout_s;
		 /* the first answer after each start of the program may
		  * take this long (what it loads first, a model) */
		 double start_timeout_s;
		 /* while files are being written on a busy CPU, a file's
		  * vector waits for them at most this long (busy.c) */
		 double defer_s;
		 unsigned index_m, ef_construction, ef_search;
		 uint32_t index_min_items;
		 /* below this measured recall@10 of a segment's graph,
		  * the segment is searched by a scan of 8-bit codes */
		 double min_recall; } vector;
};

/* Fill cfg with the built-in defaults (DESIGN.md section 8). */
void t4dx_config_defaults(struct t4dx_config *cfg);

struct t4dx_buf;

/* The configuration file: config.h describes it.  Parse the JSON text (len bytes, no NUL needed) into cfg, which must hold
 * the defaults (or earlier values) on entry; only the keys present change.
 * Strict RFC 8259 JSON: no trailing characters after the object, no
 * duplicate section or key, integer keys take integer literals only (5.0
 * and 1e3 are refused), booleans are not numbers.  On error cfg is
 * unchanged, T4DX_ECONFIG is returned (ENOMEM if json-c cannot allocate)
 * and msg says which key and why, e.g.
 *   breaker.failure_threshold: must be an integer from 1 to 1000000, got 0
 *   unknown key breaker.foo
 *   not valid JSON: unexpected character at line 3 */
int t4dx_config_parse(const char *text, size_t len, struct t4dx_config *cfg,
		      char *msg, size_t msglen);
/* Read the file (at most 1 MiB, not empty) and parse it.  Every message
 * starts with "PATH: ".  A positive errno if it cannot be opened or read,
 * else as t4dx_config_parse. */
int t4dx_config_load(const char *path, struct t4dx_config *cfg, char *msg,
		     size_t msglen);
/* Append cfg as JSON (built with json-c), every section and key in the
 * order of the file, one line, ending in '\n'; whole numbers as integers,
 * other doubles in the shortest form that reads back exactly, so parsing
 * the text gives the same struct.  0 or ENOMEM. */
int t4dx_config_render(const struct t4dx_config *cfg, struct t4dx_buf *out);

/* ---- the engine ------------------------------------------------------ */

struct t4dx;

/* What recovery found when the store was opened. */
struct t4dx_recovery {
	uint64_t records_replayed;
	uint64_t bytes_dropped;         /* torn or damaged WAL tail removed */
	uint64_t wal_files;             /* WAL files read */
	uint64_t wal_bytes_read;        /* bytes read from them */
	/* WAL files whose records the segments already held, not read and
	 * moved to the archive */
	uint64_t wal_files_covered;
	uint64_t segments_quarantined;
	uint64_t segments_damaged;      /* found damaged at open (read-only:
	                                   rebuilt in memory, not moved) */
	char quarantined[1024];         /* their file names, space-separated */
	uint64_t items_rebuilt;         /* entries rebuilt from the WAL */
	/* 0, or the first LSN the WAL (with its archive) still holds when a
	 * rebuild needed older records: what was written before it and
	 * lived only in the damaged segment is lost */
	uint64_t rebuild_missing_before;
	bool flushed;                   /* the replay passed a flush limit:
	                                   the flusher cuts it into a
	                                   segment as its first task */
	/* records the WAL should hold and does not: the log went on at
	 * wal_gap_to + 1 after the segments' last (a log file was removed);
	 * the changes they were are lost.  0 0 if none. */
	uint64_t wal_gap_from, wal_gap_to;
	/* whole WAL files after a damaged record, moved to quarantine/ and
	 * not replayed: the changes they held are lost (their records may
	 * be read there with t4dx wal-dump) */
	uint64_t wal_files_quarantined;
};

struct t4dx_stats {
	uint64_t items;                 /* live files and directories */
	uint64_t memtable_items, memtable_bytes;
	uint64_t segments, segment_bytes;
	uint64_t wal_lsn, wal_bytes, archive_bytes;
	uint64_t wal_syncs, wal_records;
	uint64_t wal_pending;           /* records queued, not yet durable */
	/* writers that waited for a flush to end because the log written
	 * since its cut passed wal.checkpoint_bytes; those waiting now */
	uint64_t write_stalls, writers_stalled;
	struct t4dx_recovery recovery;
};

/* The embedder thread: vectors computed and logged, files marked as
 * getting none (binary content, no word; a redo that finds the outcome
 * unchanged logs and counts nothing), failures, keys dropped from a full queue, bytes of
 * content read, keys waiting now, and whether it has work (queued, a
 * sweep of the store for files without a vector pending or running, one
 * file in hand, or the record of a new embedder in DATA_DIR/EMBEDDER to
 * write).  All 0 when vector.embedder is "off". */
struct t4dx_embed_stats {
	uint64_t embedded, no_vector, failed, dropped;
	uint64_t bytes_read;
	uint64_t starts;                /* of the program of "command" */
	uint64_t queued;
	uint64_t waiting;               /* searches waiting for vectors */
	/* files whose vector waited past the 1 s hold-back for writes on
	 * a busy CPU to pause (vector.defer_s), each counted once */
	uint64_t deferred;
	/* files whose vectors a flush left to the thread for the same
	 * reason (a file may count in both) */
	uint64_t flush_left;
	bool busy;
	/* the program of "command" failed on the last request it was given
	 * (a file's or a text query's): it could not be started, crashed,
	 * hung or answered garbage, as program_error says; the next answer
	 * clears it, and so does giving up a content it failed on while it
	 * answered others (a request never sent, for a binary or empty
	 * content or query, neither sets nor clears it) */
	bool program_failing;
	char program_error[256];
};
void t4dx_embed_stats(struct t4dx *db, struct t4dx_embed_stats *out);
/* The vector indexes of the live segments in memory now, by how they
 * answer (tuned at load against vector.min_recall): graph, or scan of
 * 8-bit codes, and the bytes of those codes. */
struct t4dx_index_modes {
	uint64_t graph, scan, scan_bytes;
};
void t4dx_index_modes(struct t4dx *db, struct t4dx_index_modes *out);
/* The vector index files of the live segments (seg/<id>.hnsw): how many
 * there are and their bytes on disk; how many are loaded (a graph in
 * memory; dropped ones for a full compaction under way not counted) and
 * the memory they hold; how many were found missing or unusable (search
 * reads those segments whole until the health check rebuilds them). */
struct t4dx_index_file_stats {
	uint64_t files, bytes;
	uint64_t loaded, loaded_bytes;
	uint64_t unusable;
};
void t4dx_index_file_stats(struct t4dx *db,
			   struct t4dx_index_file_stats *out);
/* The vector of a text (a search query) by the store's embedder, in
 * out[0..vector.dim-1]: 0, or ENODATA (the text gets none: no word,
 * binary, or the program says so).  The program of "command" is asked
 * as for a file (one request at a time with the embedder's own, within
 * vector.timeout_s, and started at once if it is in its back-off):
 * EAGAIN when its turn does not come within vector.timeout_s, another
 * code when it fails now (it is restarted as usual); ENOTSUP with
 * embedder "off", or no program running.  why[] says what, for a log. */
int t4dx_embed_text(struct t4dx *db, const void *text, size_t len,
		    float *out, char *why, size_t whylen);
/* Wait until the embedder has dealt with every file closed (put) before
 * the call (its vector or "tried" mark logged, given up), for a search
 * to find them: at most 2 s (and vector.timeout_s for "command"); not
 * for a file that failed once (the program's back-off, a degraded
 * store) or that an earlier call gave up on; not at all with embedder
 * "off", nor for the files a start's sweep or a redo queues.  *pending
 * gets how many files closed (put) before the call have no outcome yet,
 * those not waited for because they failed or an earlier call gave up
 * on them included; not the keys of a sweep or a redo, nor (a known
 * gap) the keys dropped from a full queue.  0, or ENOMEM. */
int t4dx_embed_wait(struct t4dx *db, uint64_t *pending);
/* Cancel, for good, the request to the program of "command" under way
 * and every later one (they fail with ECANCELED): for a stop, before
 * the threads that may wait for the program are joined.  Safe in a
 * signal handler. */
void t4dx_embed_cancel(struct t4dx *db);

/* Open (creating if needed) the store in dir, taking an exclusive flock on
 * dir/LOCK, and recover it.  cfg may be NULL for the defaults.  On failure
 * a human-readable reason is written to msg (msglen bytes); T4DX_ELOCKED
 * names the process that holds the lock. */
int t4dx_open(const char *dir, const struct t4dx_config *cfg,
	      struct t4dx **out, char *msg, size_t msglen);
/* Flags of t4dx_open_args(). */
#define T4DX_OPEN_READONLY 0x1  /* read the store as it is on disk and
                                   change nothing there: no directory,
                                   ID or WAL file is made, a torn WAL tail
                                   is not cut (the records before it are
                                   read), a damaged segment is not
                                   quarantined (its items are rebuilt in
                                   memory from the WAL archive), rescue
                                   files are not applied, no thread runs.
                                   Takes a shared lock: T4DX_ELOCKED while
                                   a daemon holds the store.  dir must be
                                   a store (T4DX_EFORMAT if it has neither
                                   wal/ nor MANIFEST).  Every change
                                   answers EROFS. */
#define T4DX_OPEN_NOLOCK   0x2  /* with READONLY: read even while another
                                   process holds the lock (what it is
                                   writing may be seen half done) */
/* Called while a damaged segment is rebuilt from the WAL at open: bytes
 * of the log read so far of total (first 0, last total). */
typedef void (*t4dx_rebuild_fn)(void *arg, uint64_t seg_id, uint64_t done,
				uint64_t total);
struct t4dx_open_args {
	const struct t4dx_config *cfg;  /* NULL: the defaults */
	unsigned flags;                 /* T4DX_OPEN_* */
	t4dx_rebuild_fn rebuild;        /* may be NULL */
	void *arg;
};
/* t4dx_open with flags and hooks. */
int t4dx_open_args(const char *dir, const struct t4dx_open_args *a,
		   struct t4dx **out, char *msg, size_t msglen);
/* Flush the memtable to a segment and close.  Returns the first error;
 * an error also when changes acknowledged as unpersisted could neither be
 * written to the WAL nor saved in a rescue file. */
int t4dx_close(struct t4dx *db);

#define T4DX_GET_CONTENT 0x1   /* also load the content blob (and the
                                  vector) */
#define T4DX_GET_VECTOR  0x2   /* also load the vector, not the content:
                                  a segment's content part is not read */

/* Look up (parent, name).  T4DX_ENOTFOUND if absent or deleted.  The
 * caller owns out and must t4dx_entry_clear() it. */
int t4dx_get(struct t4dx *db, uint64_t parent, const char *name,
	     size_t name_len, unsigned flags, struct t4dx_entry *out);

/* The live regular file whose id (user.t4dx.id) is id, as t4dx_get
 * gives it: 0, T4DX_ENOTFOUND, or a read error.  Fast once the engine
 * has seen the id (idmap.c); else a walk of the store.  The caller owns
 * out and must t4dx_entry_clear() it. */
int t4dx_get_by_id(struct t4dx *db, const uint8_t id[16], unsigned flags,
		   struct t4dx_entry *out);
/* How many times t4dx_get_by_id walked the whole store (for tests). */
uint64_t t4dx_id_walks(struct t4dx *db);

/* Flags of the calls that change the store. */
#define T4DX_EXCL        0x1   /* put: EEXIST if the key is live */
#define T4DX_NOWAIT      0x2   /* return once applied; the caller waits for
                                  durability with t4dx_wait(*lsn) */
#define T4DX_NOREPLACE   0x4   /* rename: EEXIST if the target is live */
#define T4DX_PROVISIONAL 0x8   /* put of a file: apply it without a record,
                                  see t4dx_put */

/* Every call below that changes the store writes one WAL record, applies
 * it to the memtable (readers see it from then on) and, unless
 * T4DX_NOWAIT, returns only once the record is durable (written and
 * fdatasync'ed), with the commit's error if that failed.  lsn (may be
 * NULL) receives the record's LSN.  The caller guarantees that parent is a
 * live directory: the engine keeps no inode -> key index. */

/* Write the entry at its key: a put, or a mkdir for S_IFDIR.  If e->ino
 * is 0 a new inode number is allocated and stored into e->ino, and
 * e->lsn is set.  Replacing a directory by a file answers EISDIR, a file
 * by a directory EEXIST.
 *
 * T4DX_PROVISIONAL (a new file that is being written, with policy
 * "queue"): the entry is applied to the memtable and visible, but no
 * record is written and *lsn is 0; the caller is expected to put the
 * file again, with a record, before it acknowledges anything about it.
 * Until then a crash may lose the entry, as it may lose any change nobody
 * waited for.  A rename or a waiting update of a provisional entry first
 * writes a put of it, in the same group commit, so that what they
 * acknowledge survives a crash; a delete needs nothing.  An update with
 * T4DX_NOWAIT of a provisional entry writes no record (*lsn 0): it
 * changes the entry, whose put carries it.  With policy "reject" the
 * flag is ignored (a change must be durable before it is applied). */
int t4dx_put(struct t4dx *db, struct t4dx_entry *e, unsigned flags,
	     uint64_t *lsn);

/* Remove a file (dir=false: EISDIR on a directory) or an empty directory
 * (dir=true: ENOTDIR, ENOTEMPTY).  ENOENT if absent. */
int t4dx_delete(struct t4dx *db, uint64_t parent, const char *name,
		size_t name_len, bool dir, unsigned flags, uint64_t *lsn);

/* Atomically move (parent,name) to (new_parent,new_name), replacing a file
 * or an empty directory there (POSIX rename rules: EISDIR, ENOTDIR,
 * ENOTEMPTY; EEXIST with T4DX_NOREPLACE).  The entry keeps its inode. */
int t4dx_rename(struct t4dx *db, uint64_t parent, const char *name,
		size_t name_len, uint64_t new_parent, const char *new_name,
		size_t new_name_len, unsigned flags, uint64_t *lsn);

/* Fields for t4dx_update(). */
#define T4DX_F_MODE        0x001
#define T4DX_F_UID         0x002
#define T4DX_F_GID         0x004
#define T4DX_F_ATIME       0x008
#define T4DX_F_MTIME       0x010
#define T4DX_F_CTIME       0x020
#define T4DX_F_KAPPA       0x040
#define T4DX_F_IMPORTANCE  0x080
#define T4DX_F_TYPE        0x100
#define T4DX_F_EVENT_TIME  0x200
#define T4DX_F_ACCESS      0x400
#define T4DX_F_ALL         0x7ff       /* the fields of fields.h */
#define T4DX_F_VEC         0x800       /* vec_src and vec, together */
/* Change the fields named in mask to their values in f (one update_fields
 * record).  Only the permission bits of mode change, never the type. */
int t4dx_update(struct t4dx *db, uint64_t parent, const char *name,
		size_t name_len, const struct t4dx_entry *f, uint32_t mask,
		unsigned flags, uint64_t *lsn);
/* Copy the fields named in mask from f into e, as t4dx_update does. */
void t4dx_entry_apply(struct t4dx_entry *e, const struct t4dx_entry *f,
		      uint32_t mask);

/* Wait until the record lsn (and all before it) is durable.  With the
 * fallback policy queue, a record the disk could not take is acknowledged
 * as unpersisted: 0. */
int t4dx_wait(struct t4dx *db, uint64_t lsn);
/* The same for fsync(), which may never say 0 for what is not on disk:
 * every record up to lsn (0: every record queued so far) is durable, or
 * an error (EIO, ENOSPC...) whatever the policy. */
int t4dx_sync(struct t4dx *db, uint64_t lsn);

/* When is a change durable?  T4DX_DURABLE_CLOSE (the default): t4dx_wait
 * waits for its record.  T4DX_DURABLE_FSYNC: t4dx_wait does not wait;
 * records become durable with the next group commit, at the latest
 * wal.commit_interval_ms after they were queued, and at any t4dx_sync
 * (which waits as in both modes).  Records nobody waits for are
 * committed within that interval in both modes. */
#define T4DX_DURABLE_CLOSE 0
#define T4DX_DURABLE_FSYNC 1
/* The mode now. */
int t4dx_durability(struct t4dx *db);
/* Switch the mode.  From fsync to close, every record queued so far is
 * made durable first: 0, or t4dx_sync's error (the mode is close from
 * then on either way).  EINVAL for another mode, EROFS read-only. */
int t4dx_set_durability(struct t4dx *db, int mode);

/* Call fn for every live child of parent in byte-wise name order, with
 * attributes but without content.  fn returns 0 to go on, anything else
 * stops the scan and is returned. */
typedef int (*t4dx_scan_fn)(void *arg, const struct t4dx_entry *e);
int t4dx_scan(struct t4dx *db, uint64_t parent, t4dx_scan_fn fn, void *arg);

/* Write the memtable to a new segment now. */
int t4dx_flush(struct t4dx *db);

void t4dx_get_stats(struct t4dx *db, struct t4dx_stats *st);

/* Bytes free / total in the data directory's file system. */
int t4dx_statfs(struct t4dx *db, struct statvfs *out);

/* ---- alerts ------------------------------------------------------------ */

enum { T4DX_ALERT_INFO = 0, T4DX_ALERT_WARN = 1, T4DX_ALERT_CRIT = 2 };
const char *t4dx_alert_level_name(int level);
typedef void (*t4dx_alert_fn)(void *arg, int level, const char *text);
/* Also pass every alert from now on to fn (e.g. to syslog). */
void t4dx_set_alert_sink(struct t4dx *db, t4dx_alert_fn fn, void *arg);
struct t4dx_buf;
/* Append the recent alerts, one line each ("TIME LEVEL text"). */
int t4dx_render_alerts(struct t4dx *db, struct t4dx_buf *out);
/* Where the records of a rescue that no file could take go, one JSON line
 * (without its newline) a call; without a sink, stderr.  Called from
 * t4dx_close. */
typedef void (*t4dx_dump_fn)(void *arg, const char *line, size_t len);
void t4dx_set_dump_sink(struct t4dx *db, t4dx_dump_fn fn, void *arg);
/* The directory rescue files go to when DATA_DIR cannot take them ("" if
 * none), and "" or what is wrong with it (health shows both). */
void t4dx_get_rescue(struct t4dx *db, const char **dir,
		     const char **problem);

/* ---- circuit breaker and health -------------------------------------- */

/* The breaker around the engine's commits (see breaker.h); owned by db. */
struct t4dx_breaker *t4dx_get_breaker(struct t4dx *db);

/* What an operator sees of the breaker and may do to it (.ctl/breaker);
 * the engine's side is in breaker.h. */
enum t4dx_breaker_state { T4DX_CLOSED = 0, T4DX_OPEN = 1, T4DX_HALF_OPEN = 2 };

struct t4dx_breaker_cfg {
	unsigned failure_threshold;     /* >= 1 */
	unsigned success_threshold;     /* >= 1 */
	double reset_timeout_s;         /* > 0 */
};

struct t4dx_breaker_info {
	enum t4dx_breaker_state state;
	bool forced;
	unsigned consecutive_failures, consecutive_successes;
	struct t4dx_breaker_cfg cfg;
	int64_t last_transition_ns;     /* wall clock, 0 if never */
	double next_half_open_s;        /* seconds until HALF_OPEN may be
	                                   tried; 0 unless OPEN; -1 if forced */
	uint64_t calls, failures, rejections, transitions;   /* totals */
};
/* A consistent snapshot; does not move the state (allow() does). */
void t4dx_breaker_get(struct t4dx_breaker *b, struct t4dx_breaker_info *out);
/* "CLOSED", "OPEN", "HALF_OPEN" (DESIGN.md's spelling), else "unknown". */
const char *t4dx_breaker_state_name(int state);

/* OPEN and pinned there: no timeout or probe moves it until reset. */
void t4dx_breaker_force_open(struct t4dx_breaker *b);
/* CLOSED, unpinned, consecutive counts zeroed.  The running totals
 * (calls, failures, rejections, transitions) are Prometheus counters and
 * never go back. */
void t4dx_breaker_reset(struct t4dx_breaker *b);

struct t4dx_check {
	bool ok;
	int64_t last_run_ns;            /* wall clock, 0 if never run */
	double duration_s;
	unsigned consecutive_failures;
	uint64_t runs;
	int last_error;                 /* 0 or the errno / T4DX code */
};

struct t4dx_health {
	struct t4dx_check wal, segments;
	int level;                      /* 0 normal, 1 read-only, 2 in-memory */
	uint64_t unpersisted;           /* changes acknowledged, not durable */
	uint64_t queue_depth;           /* users' records waiting in the WAL
	                                   queue (what fallback.max_queue
	                                   bounds) */
	uint64_t queue_vectors;         /* the embedder's records waiting
	                                   with them */
	uint64_t rescued;               /* records replayed from rescue files
	                                   at start */
	bool fatal;                     /* a logged change could not be
	                                   applied: changes answer EIO until
	                                   a restart */
};
void t4dx_get_health(struct t4dx *db, struct t4dx_health *out);
const char *t4dx_level_name(int level);    /* normal, read-only, in-memory */
/* ENOSPC when the store is degraded (level 1 or more, policy queue) and
 * the replay queue is full already: a write(2) to a file is refused then,
 * rather than taken and refused at its close, which a shell's
 * redirection does not check.  Else 0.  As for a change, a full queue
 * is first drained if the breaker lets a try through. */
int t4dx_write_room(struct t4dx *db);

/* ---- compaction ------------------------------------------------------- */

enum t4dx_compact_kind {
	T4DX_COMPACT_FLUSH = 0,         /* memtable -> new segment */
	T4DX_COMPACT_NREM,              /* merge all segments, kappa boost */
	T4DX_COMPACT_PRUNE,             /* drop weak memories */
	T4DX_COMPACT_REM,               /* prototypes: needs vectors, not yet */
	T4DX_COMPACT_KINDS
};
const char *t4dx_compact_name(int kind);
int t4dx_compact_parse(const char *s, size_t len);    /* -1 if unknown */

struct t4dx_compact_run {
	int64_t start_ns;               /* wall clock */
	double duration_s;
	int result;                     /* 0 or an error code */
	uint64_t items_in, items_out, bytes_in, bytes_out;
};
struct t4dx_compact_stats {
	uint64_t runs;
	uint64_t bytes_written;         /* bytes_out of every run so far */
	bool has_last;
	struct t4dx_compact_run last;
};

/* Called for each entry a compaction removed (prune), after the change is
 * durable, so that a cache of names (the kernel's) can forget it. */
typedef void (*t4dx_removed_fn)(void *arg, uint64_t parent, const char *name,
				size_t name_len, uint64_t ino);

/* Run one compaction now and return when it has ended: 0, EBUSY if one is
 * already running, EOPNOTSUPP for rem, or the run's error.  A crash at any
 * point leaves the store as before the run or as after it.  removed may
 * be NULL. */
int t4dx_compact(struct t4dx *db, int kind, t4dx_removed_fn removed,
		 void *arg);
void t4dx_get_compact_stats(struct t4dx *db, int kind,
			    struct t4dx_compact_stats *out);
/* The kind running now, or -1. */
int t4dx_compact_running(struct t4dx *db);
/* The same, with how far the run has come: keys merged so far and the
 * entries of its inputs (an upper bound; both 0 for a flush, which is
 * short, and while a run flushes before it merges). */
int t4dx_compact_progress(struct t4dx *db, uint64_t *done, uint64_t *total);

/* Latency histograms the engine keeps (see metrics.h); owned by db. */
struct t4dx_hist;
struct t4dx_hist *t4dx_fsync_hist(struct t4dx *db);
struct t4dx_hist *t4dx_compact_hist(struct t4dx *db, int kind);

/* ---- offline check ------------------------------------------------------ */

/* What t4dx_verify() read. */
struct t4dx_verify_report {
	unsigned problems, notes;       /* damage found; remarks */
	bool manifest_ok;
	uint64_t segments, segment_blocks, items;
	uint64_t index_files;           /* segments' vector indexes, sound */
	uint64_t wal_records, wal_last_lsn, flushed_lsn;
	uint64_t rescue_files, rescue_records;
	uint64_t bytes_total, bytes_done;
};
/* One finding: damage (else a note), the file, the byte offset in it (-1
 * if none) and what is wrong. */
typedef void (*t4dx_verify_fn)(void *arg, bool damage, const char *file,
			       int64_t offset, const char *what);
typedef void (*t4dx_progress_fn)(void *arg, uint64_t done, uint64_t total);
/* Check every file of the store in dir and change nothing (see the top
 * of verify.c for what is read).  fn and progress may be NULL.  Returns
 * 0 when the check ran (rep->problems counts the damage), else why it
 * could not run, with msg: T4DX_ELOCKED while a daemon holds the store
 * (unless flags has T4DX_OPEN_NOLOCK), T4DX_EFORMAT if dir is not a
 * store, an errno. */
int t4dx_verify(const char *dir, unsigned flags, t4dx_verify_fn fn,
		t4dx_progress_fn progress, void *arg,
		struct t4dx_verify_report *rep, char *msg, size_t msglen);

/* ---- the log as text ---------------------------------------------------- */

/* Where reading the log stopped early (t4dx_wal_dump, and the engine's
 * own readers): the first damaged line, or the first file after damage that does not
 * continue the log (offset 0).  path is "" when nothing was wrong. */
struct t4dx_wal_damage {
	char path[4096];
	uint64_t offset;                /* of the first byte not read */
	uint64_t bytes;                 /* how many of that file's bytes */
	unsigned files_skipped;         /* later files not read */
	char what[160];                 /* what is wrong there */
	bool torn;                      /* at the end of the last file, no
	                                   record after it: the torn write
	                                   of a group a crash cut short
	                                   (never acknowledged), not rot */
	/* Records missing between two files read (a file was removed), past
	 * floor + 1: reading went on after them, as a start replays the
	 * records after such a hole.  [gap_from, gap_to] spans the holes,
	 * gap_records counts the missing LSNs; 0 0 0 if none. */
	uint64_t gap_from, gap_to, gap_records;
};
/* One record of the log, as the line the log holds (with its '\n'),
 * valid during the call.  A non-zero return stops the reading with it. */
typedef int (*t4dx_wal_line_fn)(void *arg, const char *line, size_t len);
/* Call fn with every record of the log files in wal_dir (DATA_DIR/wal,
 * and wal_dir/archive if with_archive) in LSN order, without changing
 * anything; records are encoded again, which gives back the stored line.
 * Reading stops quietly at damage, which *dmg describes (may be NULL).
 * 0, an errno, or fn's code. */
int t4dx_wal_dump(const char *wal_dir, bool with_archive,
		  t4dx_wal_line_fn fn, void *arg, struct t4dx_wal_damage *dmg);

/* ---- text ---------------------------------------------------------------- */

/* True if s[0..len) is valid UTF-8 without NUL bytes. */
bool t4dx_utf8_valid(const unsigned char *s, size_t len);
/* Standard base64 with padding: writes the (len + 2) / 3 * 4 characters
 * (no NUL) of s to out and returns their count. */
size_t t4dx_base64_put(char *out, const unsigned char *s, size_t len);
/* Its inverse: 0 or EINVAL; out must hold 3 * (len / 4) bytes, *outlen
 * gets their count. */
int t4dx_base64_decode(const char *s, size_t len, unsigned char *out,
		       size_t *outlen);

/* ---- search ----------------------------------------------------------- */

#define T4DX_SEARCH_K_MAX 1000

/* What a search keeps: at most k results, of items below under (a
 * directory's inode; 0: anywhere), of a type (-1: any), with kappa and
 * event_time within the bounds (inclusive).  exact: read every vector
 * instead of asking the segments' indexes (slower; the reference the
 * indexes are measured against). */
struct t4dx_search_opts {
	uint32_t k;
	uint64_t under;
	int type;
	double min_kappa, max_kappa;
	int64_t since_ns, until_ns;
	bool exact;
	/* An item (by ino) never among the results, 0 for none: the item
	 * a search by its own vector is like (search/@ID), left out
	 * before the k best are taken, not after. */
	uint64_t skip_ino;
	/* A segment that cannot be read is left out (as if it were not
	 * there) instead of failing the search: for a store at level 2,
	 * whose answer is partial anyway. */
	bool best_effort;
};
/* k 10, everything else open, indexes used. */
void t4dx_search_defaults(struct t4dx_search_opts *o);

/* One result: the item's attributes (no content, no vector bytes), its
 * cosine similarity to the query, and its path below the root. */
struct t4dx_hit {
	struct t4dx_entry e;
	float score;
	char *path;
};

/* The live items with a vector of dim values nearest q (cosine), best
 * first (ties by key), at most o->k: *hits (t4dx_hits_free) and *n.
 * EINVAL for a bad dim, k, or a query that is zero or not finite. */
int t4dx_search(struct t4dx *db, const float *q, uint32_t dim,
		const struct t4dx_search_opts *o, struct t4dx_hit **hits,
		size_t *n);
void t4dx_hits_free(struct t4dx_hit *hits, size_t n);

/* What a search's answer depends on, as of now: equal stamps (taken
 * before two searches with the same query) mean equal answers.  Every
 * change of the memtables, every segment added or removed (flush,
 * merges, nrem, prune, a rebuild) and a change of level change it. */
struct t4dx_search_stamp {
	uint64_t mem, imm;              /* the memtables' versions */
	uint64_t next_seg_id, nsegs;
	int level;
};
void t4dx_search_stamp(struct t4dx *db, struct t4dx_search_stamp *st);

#endif /* T4DX_H */
