/*
 * verify.c - t4dx_verify(): an offline check of everything a data
 * directory holds, which changes nothing.
 *
 * What is read, and what counts as damage:
 *  - MANIFEST: it must parse and pass its CRC (a store that never
 *    flushed has none, which is fine).
 *  - every segment the MANIFEST names: it must exist and every block,
 *    both parts, must pass its CRC and decode.  A segment file that the
 *    MANIFEST does not name is noted (a flush or compaction that did not
 *    finish left it; a start ignores it), not counted as damage.
 *  - the vector index of each such segment, seg/<id>.hnsw, if it has
 *    one: its header, length and checksum must pass and it may hold no
 *    more vectors than the segment has entries.  A damaged one is a
 *    note, not damage: it loses nothing (the vectors are in the
 *    segment), searches read the segment whole, and a daemon's health
 *    check writes it again; one of another segment is damage.
 *    A missing one, for a segment with vector parts and at least the
 *    default vector.index_min_items entries, is noted (the daemon's
 *    configuration may ask for none).  An index file without its
 *    segment is noted (a start removes it).
 *  - the WAL, live files and archive, in LSN order: every record must
 *    pass its CRC and follow the one before it, each file must continue
 *    the log, and the live log must reach back to the MANIFEST's flushed
 *    LSN (else records nobody can replay are gone).  Reading stops at the
 *    first damage, as recovery does; the files after it are counted.
 *  - rescue files of this store: DATA_DIR/rescue-*.jsonl and
 *    t4dx-rescue-<ID>-*.jsonl in the places a daemon puts them
 *    ($TMPDIR, /var/tmp, /tmp, /dev/shm): every line must be a record.
 *  - quarantine/: what earlier recoveries set aside is noted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "index.h"
#include "io.h"
#include "manifest.h"
#include "rec.h"
#include "seg.h"
#include "t4dx.h"
#include "wal.h"

struct verify {
	const char *dir;
	t4dx_verify_fn fn;
	t4dx_progress_fn progress;
	void *arg;
	struct t4dx_verify_report *rep;
	uint64_t flushed_lsn;
	uint64_t first_lsn;             /* first WAL record, 0 if none */
	uint64_t first_after;           /* first WAL LSN > flushed_lsn */
	uint64_t last_lsn;
	int denied;                     /* EACCES/EPERM: cannot check */
	char denied_path[PATH_MAX + 64];
};

static void say(struct verify *v, bool damage, const char *file,
		int64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void say(struct verify *v, bool damage, const char *file,
		int64_t offset, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (damage)
		v->rep->problems++;
	else
		v->rep->notes++;
	if (v->fn)
		v->fn(v->arg, damage, file, offset, what);
}

static void advance(struct verify *v, uint64_t bytes)
{
	v->rep->bytes_done += bytes;
	if (v->rep->bytes_done > v->rep->bytes_total)
		v->rep->bytes_done = v->rep->bytes_total;
	if (v->progress)
		v->progress(v->arg, v->rep->bytes_done, v->rep->bytes_total);
}

static uint64_t file_bytes(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode)
	       ? (uint64_t)st.st_size : 0;
}

/* Call fn for each regular file of dir whose name passes keep. */
static void each_file(const char *dir, bool (*keep)(const char *, void *),
		      void *karg, void (*fn)(const char *path, void *),
		      void *arg)
{
	struct dirent **list = NULL;
	int n = scandir(dir, &list, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX + 256];
		if (keep(list[i]->d_name, karg)) {
			snprintf(path, sizeof(path), "%s/%s", dir,
				 list[i]->d_name);
			fn(path, arg);
		}
		free(list[i]);
	}
	free(list);
}

static bool is_wal_name(const char *name, void *arg)
{
	return strlen(name) == 26 && strspn(name, "0123456789") == 20 &&
	       !strcmp(name + 20, ".jsonl");
}

static bool is_seg_name(const char *name, void *arg)
{
	return strlen(name) == 24 && strspn(name, "0123456789") == 20 &&
	       !strcmp(name + 20, ".t4s");
}

static bool is_index_name(const char *name, void *arg)
{
	return strlen(name) == 25 && strspn(name, "0123456789") == 20 &&
	       !strcmp(name + 20, ".hnsw");
}

/* rescue files: prefix, digits, .jsonl */
static bool is_rescue_name(const char *name, void *arg)
{
	const char *prefix = arg;
	size_t pl = strlen(prefix), n = strlen(name);
	return n > pl + 6 && !strncmp(name, prefix, pl) &&
	       strspn(name + pl, "0123456789") == n - pl - 6 &&
	       !strcmp(name + n - 6, ".jsonl");
}

static bool any_name(const char *name, void *arg)
{
	return strcmp(name, ".") && strcmp(name, "..");
}

static void add_size(const char *path, void *arg)
{
	*(uint64_t *)arg += file_bytes(path);
}

static void count_file(const char *path, void *arg)
{
	(*(uint64_t *)arg)++;
}

/* ---- MANIFEST and segments --------------------------------------------- */

/* A read this process is not allowed: the check cannot be made (exit 2
 * in the tool), which is not damage. */
static bool denied(struct verify *v, int rc, const char *path)
{
	if (rc != EACCES && rc != EPERM)
		return false;
	if (!v->denied)
		v->denied = rc;
	snprintf(v->denied_path, sizeof(v->denied_path), "%s", path);
	return true;
}

#define BLOCKS_NAMED 10         /* damaged blocks named one by one */
#define INDEX_MIN_ITEMS 1000    /* vector.index_min_items by default */

/* The index file of segment s (id), beside seg_path, if there is one. */
static void verify_index(struct verify *v, const char *seg_path,
			 uint64_t id, struct t4dx_seg *s)
{
	char path[PATH_MAX + 64];
	uint64_t count = 0;
	snprintf(path, sizeof(path), "%.*s/%020llu.hnsw",
		 (int)(strrchr(seg_path, '/') - seg_path), seg_path,
		 (unsigned long long)id);
	uint64_t bytes = file_bytes(path);
	int fd = t4dx_io.open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		int rc = errno;
		if (denied(v, rc, path))
			return;
		if (rc != ENOENT)
			say(v, true, path, -1, "cannot be opened: %s",
			    strerror(rc));
		else if (t4dx_seg_has_vectors(s) &&
			 t4dx_seg_count(s) >= INDEX_MIN_ITEMS)
			say(v, false, path, -1, "missing: search reads this "
			    "segment of %llu entries whole, until a daemon "
			    "builds its index (unless vector.index_min_items "
			    "is set above that)",
			    (unsigned long long)t4dx_seg_count(s));
		return;
	}
	/* the dim is the daemon's configuration: any, as written */
	uint64_t tag;
	int rc = t4dx_index_verify(fd, 0, &count, &tag);
	t4dx_io.close(fd);
	advance(v, bytes);
	if (rc && denied(v, rc, path))
		return;
	if (!rc && count > t4dx_seg_count(s))
		say(v, true, path, -1, "holds %llu vectors, more than its "
		    "segment's %llu entries: it is another segment's",
		    (unsigned long long)count,
		    (unsigned long long)t4dx_seg_count(s));
	else if (!rc && tag && tag != id)
		say(v, true, path, -1, "is the index of segment %llu, not of "
		    "this one",
		    (unsigned long long)tag);
	else if (rc)
		say(v, false, path, -1, "vector index is damaged: %s (nothing "
		    "is lost: search reads the segment whole, and a daemon "
		    "builds the index again)",
		    rc == T4DX_ECORRUPT ? "fails its checksum or length check"
		    : rc == T4DX_EFORMAT ? "is not an index file of this "
					   "version" : t4dx_strerror(rc));
	else
		v->rep->index_files++;
}

/* Every block of the segment file at path; items < 0: not named by a
 * MANIFEST (checked when there is no MANIFEST to trust). */
static void verify_seg_file(struct verify *v, const char *path, uint64_t id,
			    int64_t items)
{
	struct t4dx_seg *s = NULL;
	uint64_t bytes = file_bytes(path);
	int rc = t4dx_seg_open(path, id, &s);
	if (rc) {
		if (denied(v, rc, path))
			;
		else if (rc == ENOENT && items >= 0)
			say(v, true, path, -1, "missing: the MANIFEST names it "
			    "(%lld items)", (long long)items);
		else
			say(v, true, path, -1, "cannot be opened: %s",
			    rc == T4DX_ECORRUPT || rc == T4DX_EFORMAT
			    ? "its header or index is damaged"
			    : t4dx_strerror(rc));
		advance(v, bytes);
		return;
	}
	v->rep->segments++;
	v->rep->items += t4dx_seg_count(s);
	size_t next = 0, nblk = t4dx_seg_blocks(s), bad = 0;
	uint64_t prev = 0;
	while (next < nblk) {
		size_t i = next;
		/* one block a call: a failure names its block; the others
		 * are read all the same */
		rc = t4dx_seg_verify_some(s, &next, 1);
		uint64_t at = next < nblk ? t4dx_seg_block_offset(s, next)
					  : bytes;
		if (at > prev)
			advance(v, at - prev), prev = at;
		if (rc && denied(v, rc, path))
			break;
		if (!rc) {
			v->rep->segment_blocks++;
			continue;
		}
		if (++bad <= BLOCKS_NAMED)
			say(v, true, path, (int64_t)t4dx_seg_block_offset(s, i),
			    "block %zu of %zu: %s", i, nblk,
			    rc == T4DX_ECORRUPT ? "fails its CRC or does not "
						  "decode" : t4dx_strerror(rc));
	}
	if (bad > BLOCKS_NAMED)
		say(v, true, path, -1, "%zu more damaged blocks (%zu of %zu in "
		    "all)", bad - BLOCKS_NAMED, bad, nblk);
	if (bytes > prev)
		advance(v, bytes - prev);
	verify_index(v, path, id, s);
	t4dx_seg_unref(s);
}

static void verify_segment(struct verify *v, const struct t4dx_manifest_seg *ms)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/seg/%020llu.t4s", v->dir,
		 (unsigned long long)ms->id);
	verify_seg_file(v, path, ms->id, (int64_t)ms->items);
}

struct named {
	const struct t4dx_manifest *m;
	struct verify *v;
	bool check;             /* no MANIFEST to trust: read them too */
};

static void note_unnamed(const char *path, void *arg)
{
	struct named *nm = arg;
	const char *base = strrchr(path, '/') + 1;
	uint64_t id = strtoull(base, NULL, 10);
	for (size_t i = 0; i < nm->m->nsegs; i++)
		if (nm->m->segs[i].id == id)
			return;
	if (nm->check) {
		verify_seg_file(nm->v, path, id, -1);
		return;
	}
	say(nm->v, false, path, -1, "not named by the MANIFEST (left by a "
	    "flush or compaction that did not finish; a start ignores it)");
}

/* An index file whose segment file is gone. */
static void note_orphan_index(const char *path, void *arg)
{
	char seg[PATH_MAX + 64];
	snprintf(seg, sizeof(seg), "%.*s.t4s", (int)(strlen(path) - 5), path);
	if (access(seg, F_OK) && errno == ENOENT)
		say(arg, false, path, -1, "an index without its segment (left "
		    "by a crash; a start removes it)");
}

/* ---- WAL ------------------------------------------------------------- */

static int wal_record(void *arg, struct t4dx_rec *r)
{
	struct verify *v = arg;
	v->rep->wal_records++;
	if (!v->first_lsn)
		v->first_lsn = r->lsn;
	if (r->lsn > v->flushed_lsn && !v->first_after)
		v->first_after = r->lsn;
	/* the reader goes on over a hole up to the segments' last record,
	 * as a start does: those records are in segments, but a rebuild
	 * of a damaged segment would miss them */
	if (v->last_lsn && r->lsn > v->last_lsn + 1 &&
	    r->lsn <= v->flushed_lsn + 1) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/wal", v->dir);
		say(v, false, path, -1, "records %llu to %llu are not in the "
		    "archive (its files were removed?): they are in segments, "
		    "but a damaged segment could not be rebuilt from them",
		    (unsigned long long)v->last_lsn + 1,
		    (unsigned long long)r->lsn - 1);
	}
	v->last_lsn = r->lsn;
	return 0;
}

static void wal_progress(void *arg, uint64_t bytes)
{
	advance(arg, bytes);
}

static void verify_wal(struct verify *v)
{
	char wal[PATH_MAX];
	struct t4dx_wal_damage dmg;
	snprintf(wal, sizeof(wal), "%s/wal", v->dir);
	int rc = t4dx_wal_read_all_progress(wal, true, v->flushed_lsn,
					    wal_record, wal_progress, v, &dmg);
	if (rc && denied(v, rc, wal))
		return;
	if (rc) {
		say(v, true, wal, -1, "cannot be read: %s", t4dx_strerror(rc));
		return;
	}
	if (*dmg.path && dmg.torn)
		say(v, false, dmg.path, (int64_t)dmg.offset, "the last %llu "
		    "bytes are the torn end of a write a crash cut short (%s); "
		    "it was never acknowledged, and a start cuts it",
		    (unsigned long long)dmg.bytes, dmg.what);
	else if (*dmg.path)
		say(v, true, dmg.path, (int64_t)dmg.offset, "%s (%llu bytes "
		    "not read%s)", dmg.what, (unsigned long long)dmg.bytes,
		    dmg.files_skipped ? ", and the files after it" : "");
	/* holes between files, past the segments: a start reports them
	 * lost and replays the records after them */
	if (dmg.gap_to)
		say(v, true, wal, -1, "records %llu to %llu are missing "
		    "(%llu records; a log file was removed?): a start "
		    "reports them lost and replays the records after them",
		    (unsigned long long)dmg.gap_from,
		    (unsigned long long)dmg.gap_to,
		    (unsigned long long)dmg.gap_records);
	/* the live log must pick up where the segments end */
	if (v->first_after > v->flushed_lsn + 1)
		say(v, true, wal, -1, "records %llu to %llu are missing: the "
		    "MANIFEST has everything up to %llu in segments, the log "
		    "goes on at %llu", (unsigned long long)v->flushed_lsn + 1,
		    (unsigned long long)v->first_after - 1,
		    (unsigned long long)v->flushed_lsn,
		    (unsigned long long)v->first_after);
	else if (!*dmg.path && v->last_lsn && v->last_lsn < v->flushed_lsn)
		say(v, true, wal, -1, "the log ends at record %llu, before "
		    "the MANIFEST's flushed record %llu",
		    (unsigned long long)v->last_lsn,
		    (unsigned long long)v->flushed_lsn);
}

/* ---- rescue files ---------------------------------------------------- */

static void verify_rescue(const char *path, void *arg)
{
	struct verify *v = arg;
	struct t4dx_buf b = { 0 };
	uint64_t size = file_bytes(path);
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno == EACCES || errno == EPERM)
			say(v, false, path, -1, "not readable by this user: not "
			    "checked");
		else
			say(v, true, path, -1, "cannot be opened: %s",
			    strerror(errno));
		return;
	}
	/* what a start replays: regular files of this user that others
	 * cannot write (a shared directory holds anybody's files) */
	const char *why = NULL;
	if (fstat(fd, &st))
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_uid != geteuid())
		why = "not this user's file";
	else if (st.st_mode & 022)
		why = "writable by others";
	if (why) {
		say(v, false, path, -1, "%s: a start does not replay it", why);
		close(fd);
		return;
	}
	size = (uint64_t)st.st_size;
	int rc = t4dx_buf_reserve(&b, size ? size : 1);
	if (!rc && size)
		rc = t4dx_io_pread_all(fd, b.p, size, 0);
	close(fd);
	if (rc) {
		say(v, true, path, -1, "cannot be read: %s", t4dx_strerror(rc));
		t4dx_buf_free(&b);
		return;
	}
	v->rep->rescue_files++;
	for (size_t off = 0; off < size;) {
		unsigned char *nl = memchr(b.p + off, '\n', size - off);
		struct t4dx_rec r;
		if (!nl) {
			say(v, true, path, (int64_t)off, "a line without its end "
			    "(torn write)");
			break;
		}
		if (t4dx_rec_decode((const char *)b.p + off,
				    (size_t)(nl - b.p) - off, &r)) {
			say(v, true, path, (int64_t)off, "a record fails its "
			    "CRC or does not parse");
			break;
		}
		t4dx_entry_clear(&r.e);
		v->rep->rescue_records++;
		off = (size_t)(nl - b.p) + 1;
	}
	t4dx_buf_free(&b);
	advance(v, size);
}

/* The directories a daemon of this store may have put rescue files in,
 * with the prefix of their names there. */
static int rescue_places(const char *dir, char places[5][PATH_MAX],
			 char prefixes[5][80])
{
	int n = 0;
	snprintf(places[n], PATH_MAX, "%s", dir);
	snprintf(prefixes[n++], 80, "rescue-");
	char path[PATH_MAX], id[40] = "";
	snprintf(path, sizeof(path), "%s/ID", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t got = pread(fd, id, 33, 0);
		close(fd);
		if (got != 33 || id[32] != '\n')
			*id = 0;
		id[32] = 0;
	}
	if (!*id)
		return n;
	const char *tmp = getenv("TMPDIR");
	const char *const dirs[] = { tmp && *tmp == '/' ? tmp : NULL,
				     "/var/tmp", "/tmp", "/dev/shm" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++) {
		char real[PATH_MAX];
		if (!dirs[i] || !realpath(dirs[i], real))
			continue;
		bool seen = false;
		for (int k = 1; k < n; k++)
			seen |= !strcmp(places[k], real);
		if (seen)
			continue;
		snprintf(places[n], PATH_MAX, "%s", real);
		snprintf(prefixes[n++], 80, "t4dx-rescue-%s-", id);
	}
	return n;
}

/* ---- t4dx_verify ------------------------------------------------------- */

int t4dx_verify(const char *dir, unsigned flags, t4dx_verify_fn fn,
		t4dx_progress_fn progress, void *arg,
		struct t4dx_verify_report *rep, char *msg, size_t msglen)
{
	struct verify v = { .dir = dir, .fn = fn, .progress = progress,
			    .arg = arg, .rep = rep };
	struct t4dx_manifest m = { 0 };
	char path[PATH_MAX + 64], places[5][PATH_MAX], prefixes[5][80];
	int lock_fd = -1, rc;

	memset(rep, 0, sizeof(*rep));
	snprintf(msg, msglen, "%s", "");
	if (strlen(dir) > PATH_MAX - 64) {
		snprintf(msg, msglen, "%s: path too long", dir);
		return ENAMETOOLONG;
	}
	if ((rc = t4dx_io_check_store(dir, msg, msglen)))
		return rc;
	if (!(flags & T4DX_OPEN_NOLOCK) &&
	    (rc = t4dx_io_lock_shared(dir, &lock_fd, msg, msglen)))
		return rc;

	/* what there is to read, for the progress */
	int nplaces = rescue_places(dir, places, prefixes);
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	rep->bytes_total += file_bytes(path);
	rc = t4dx_manifest_load(dir, &m);
	if (rc == 0)
		for (size_t i = 0; i < m.nsegs; i++) {
			snprintf(path, sizeof(path), "%s/seg/%020llu.t4s", dir,
				 (unsigned long long)m.segs[i].id);
			rep->bytes_total += file_bytes(path);
			snprintf(path, sizeof(path), "%s/seg/%020llu.hnsw", dir,
				 (unsigned long long)m.segs[i].id);
			rep->bytes_total += file_bytes(path);
		}
	snprintf(path, sizeof(path), "%s/wal", dir);
	each_file(path, is_wal_name, NULL, add_size, &rep->bytes_total);
	snprintf(path, sizeof(path), "%s/wal/archive", dir);
	each_file(path, is_wal_name, NULL, add_size, &rep->bytes_total);
	for (int i = 0; i < nplaces; i++)
		each_file(places[i], is_rescue_name, prefixes[i], add_size,
			  &rep->bytes_total);
	if (progress)
		progress(arg, 0, rep->bytes_total);

	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	bool no_manifest = rc == T4DX_ENOTFOUND;
	if (no_manifest) {
		/* judged below, by what else there is */
	} else if (rc && denied(&v, rc, path)) {
		/* reported below */
	} else if (rc) {
		say(&v, true, path, -1, "%s", rc == T4DX_ECORRUPT
		    ? "fails its CRC or does not parse" : t4dx_strerror(rc));
	} else {
		rep->manifest_ok = true;
		advance(&v, file_bytes(path));
		v.flushed_lsn = m.flushed_lsn;
		for (size_t i = 0; i < m.nsegs; i++)
			verify_segment(&v, &m.segs[i]);
	}
	struct named nm = { &m, &v, rc != 0 };
	snprintf(path, sizeof(path), "%s/seg", dir);
	each_file(path, is_seg_name, NULL, note_unnamed, &nm);
	each_file(path, is_index_name, NULL, note_orphan_index, &v);
	verify_wal(&v);
	if (no_manifest) {
		/* fine for a store that never flushed: its log begins at
		 * record 1 and there is no segment; else it was lost */
		uint64_t segs = 0, arch = 0;
		snprintf(path, sizeof(path), "%s/seg", dir);
		each_file(path, is_seg_name, NULL, count_file, &segs);
		snprintf(path, sizeof(path), "%s/wal/archive", dir);
		each_file(path, is_wal_name, NULL, count_file, &arch);
		snprintf(path, sizeof(path), "%s/MANIFEST", dir);
		if (segs || arch || v.first_lsn > 1)
			say(&v, true, path, -1, "missing, but seg/ holds %llu "
			    "segment file(s), the archive %llu log file(s) and "
			    "the log begins at record %llu: a start would see "
			    "only what the log holds", (unsigned long long)segs,
			    (unsigned long long)arch,
			    (unsigned long long)v.first_lsn);
		else
			say(&v, false, path, -1, "none: no segment was "
			    "written yet");
	}
	for (int i = 0; i < nplaces; i++)
		each_file(places[i], is_rescue_name, prefixes[i],
			  verify_rescue, &v);
	if (rep->rescue_files)
		say(&v, false, dir, -1, "%llu rescue file(s) with %llu records: "
		    "the next start replays them",
		    (unsigned long long)rep->rescue_files,
		    (unsigned long long)rep->rescue_records);
	uint64_t q = 0, nq = 0;
	snprintf(path, sizeof(path), "%s/quarantine", dir);
	each_file(path, any_name, NULL, add_size, &q);
	each_file(path, any_name, NULL, count_file, &nq);
	if (nq)
		say(&v, false, path, -1, "%llu file(s), %llu bytes, set aside by "
		    "earlier recoveries", (unsigned long long)nq,
		    (unsigned long long)q);
	if (v.denied) {
		snprintf(msg, msglen, "cannot read %s: %s", v.denied_path,
			 strerror(v.denied));
		rc = v.denied;
		goto out;
	}
	rc = 0;
	rep->wal_last_lsn = v.last_lsn;
	rep->flushed_lsn = v.flushed_lsn;
	rep->bytes_done = rep->bytes_total;
	if (progress)
		progress(arg, rep->bytes_total, rep->bytes_total);
out:
	t4dx_manifest_free(&m);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}
