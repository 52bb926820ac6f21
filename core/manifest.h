/*
 * manifest.h - DATA_DIR/MANIFEST, the durable list of live segments.
 * Format and update protocol are described at the top of manifest.c.
 */
#ifndef T4DX_MANIFEST_H
#define T4DX_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct t4dx_manifest_seg {
	uint64_t id, min_lsn, max_lsn, items;
};

/* The format a MANIFEST is written in (manifest.c says what it means). */
#define T4DX_MANIFEST_FORMAT 2

struct t4dx_manifest {
	uint32_t format;        /* as read (1 or 2); written: the current */
	uint64_t next_seg_id;   /* ids below this are used (or were) */
	uint64_t flushed_lsn;   /* every record <= this is in a segment */
	uint64_t next_ino;      /* inode numbers below this were handed out */
	uint64_t items;         /* live entries as of flushed_lsn */
	size_t nsegs;
	struct t4dx_manifest_seg *segs;  /* oldest first; owned */
};

/* Read dir/MANIFEST.  T4DX_ENOTFOUND if there is none, T4DX_ECORRUPT if
 * it does not parse or fails a check, errno on I/O error.  On success the
 * caller owns m->segs (t4dx_manifest_free). */
int t4dx_manifest_load(const char *dir, struct t4dx_manifest *m);

/* Durably replace dir/MANIFEST: write MANIFEST.tmp, fsync, rename over
 * MANIFEST, fsync dir.  0 or positive errno.  *installed tells whether
 * the rename happened: if so and the directory fsync then failed, either
 * MANIFEST may be the one found after a crash, so the files both name must
 * be kept. */
int t4dx_manifest_save(const char *dir, const struct t4dx_manifest *m,
		       bool *installed);

void t4dx_manifest_free(struct t4dx_manifest *m);

#endif
