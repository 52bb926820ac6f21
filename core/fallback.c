/*
 * fallback.c - what keeps changes when the disk fails: the degradation
 * levels, the bound on the replay queue (the WAL's own queue), and the
 * rescue files written at close for records that never became durable,
 * with the store's ID and the choice of the rescue directory.  Replaying
 * rescue files at open is recovery (recover.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "engine_int.h"

/* ---- the fallback ------------------------------------------------------
 * The replay queue is the WAL's own queue: a change is applied to the
 * memtable (readers see it at once) and its record waits in the WAL until
 * a group commit makes it durable.  When that commit fails with a storage
 * error, or the breaker is OPEN so that no commit is even tried, the
 * record simply stays queued and the change is acknowledged as
 * unpersisted (policy "queue"); the next commit that succeeds (the health
 * probe's, once the disk works again) writes the whole queue, in order,
 * drain_batch records per group.  Because the memtable is the WAL applied
 * in LSN order, what readers see and what the WAL will hold never
 * disagree, and a later change of a name always wins.  The queue is
 * bounded: a change that would make more than max_queue records wait is
 * refused with ENOSPC before it is applied.  With policy "reject" an OPEN
 * breaker fails changes fast with EIO instead. */

bool eng_queueing(struct t4dx *db)
{
	return strcmp(db->cfg.fallback.policy, "reject") != 0;
}

/* The embedder's records among the LSNs (lo, hi] (see eng_vq_push). */
static uint64_t vq_between(struct t4dx *db, uint64_t lo, uint64_t hi)
{
	uint64_t n = 0;
	pthread_mutex_lock(&db->vq_mu);
	for (size_t i = 0; i < db->vq_n; i++) {
		uint64_t lsn = db->vq[(db->vq_head + i) % db->vq_cap].lsn;
		if (lsn > hi)
			break;
		n += lsn > lo;
	}
	pthread_mutex_unlock(&db->vq_mu);
	return n;
}

/* Users' changes acknowledged before they were durable and still not
 * (the embedder's records among them are nobody's acknowledged change) */
uint64_t eng_unpersisted(struct t4dx *db)
{
	uint64_t hi = atomic_load(&db->unpersisted_hi);
	uint64_t durable = t4dx_wal_durable_lsn(db->wal);
	if (hi <= durable)
		return 0;
	uint64_t v = vq_between(db, durable, hi);
	return hi - durable > v ? hi - durable - v : 0;
}

int eng_current_level(struct t4dx *db)
{
	struct t4dx_breaker_info bi;
	if (atomic_load(&db->seg_failed))
		return 2;
	t4dx_breaker_get(db->breaker, &bi);
	return bi.state != T4DX_CLOSED || eng_unpersisted(db) ? 1 : 0;
}

/* Recompute the degradation level; a change is an alert. */
void eng_note_level(struct t4dx *db)
{
	int now = eng_current_level(db);
	pthread_mutex_lock(&db->health_mu);
	int was = db->health.level;
	db->health.level = now;
	pthread_mutex_unlock(&db->health_mu);
	if (now != was)
		t4dx_alerts_add(db->alerts, now > was ? T4DX_ALERT_WARN
						      : T4DX_ALERT_INFO,
				"degradation level %d (%s) -> %d (%s)", was,
				t4dx_level_name(was), now,
				t4dx_level_name(now));
}

void eng_mark_unpersisted(struct t4dx *db, uint64_t lsn)
{
	uint64_t hi = atomic_load(&db->unpersisted_hi);
	while (hi < lsn &&
	       !atomic_compare_exchange_weak(&db->unpersisted_hi, &hi, lsn))
		;
	eng_note_level(db);
}

/* ---- the embedder's records in the queue -------------------------------
 * A vector is derived data: a commit that fails keeps the embedder's
 * records queued like any other (they sit between users' records, and
 * the log takes no gap), but they must not take the room that
 * fallback.max_queue keeps for users' changes.  So the engine notes the
 * LSN and size of each (a ring, in LSN order: one thread logs them) and
 * the bound counts the others.  The embedder logs nothing more once a
 * commit failed (eng_gate_embedder), so what it holds is what it logged
 * since the last commit that worked. */

/* The notes of records now durable leave (vq_mu held). */
static void vq_drop_durable(struct t4dx *db, uint64_t durable)
{
	while (db->vq_n && db->vq[db->vq_head].lsn <= durable) {
		db->vq_bytes -= db->vq[db->vq_head].bytes;
		db->vq_head = (db->vq_head + 1) % db->vq_cap;
		db->vq_n--;
	}
}

int eng_vq_push(struct t4dx *db, uint64_t lsn, uint64_t bytes)
{
	/* here too, not only when counted: the embedder alone (a sweep of
	 * a big store, nobody writing) would grow the ring by a note per
	 * vector for good */
	uint64_t durable = t4dx_wal_durable_lsn(db->wal);
	pthread_mutex_lock(&db->vq_mu);
	vq_drop_durable(db, durable);
	if (db->vq_n == db->vq_cap) {
		size_t cap = db->vq_cap ? 2 * db->vq_cap : 64;
		struct eng_vq *v = malloc(cap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&db->vq_mu);
			return ENOMEM;
		}
		for (size_t i = 0; i < db->vq_n; i++)
			v[i] = db->vq[(db->vq_head + i) % db->vq_cap];
		free(db->vq);
		db->vq = v;
		db->vq_cap = cap;
		db->vq_head = 0;
	}
	db->vq[(db->vq_head + db->vq_n) % db->vq_cap] =
		(struct eng_vq){ .lsn = lsn, .bytes = bytes };
	db->vq_n++;
	db->vq_bytes += bytes;
	pthread_mutex_unlock(&db->vq_mu);
	return 0;
}

void eng_vq_count(struct t4dx *db, const struct t4dx_wal_stats *ws,
		  uint64_t *n, uint64_t *bytes)
{
	pthread_mutex_lock(&db->vq_mu);
	/* durable ones leave.  (No record is ever dropped from the queue
	 * with a note here: only policy reject drops records, and under it
	 * the embedder's are written before they are applied, unnoted.) */
	vq_drop_durable(db, ws->durable);
	*n = db->vq_n < ws->pending ? db->vq_n : ws->pending;
	*bytes = db->vq_bytes < ws->pending_bytes ? db->vq_bytes
						   : ws->pending_bytes;
	pthread_mutex_unlock(&db->vq_mu);
}

/* Is the replay queue full, by records or by bytes (a record larger
 * than the byte limit still goes into an empty queue)?  Users' changes
 * only, or (all) every record. */
static bool queue_full(struct t4dx *db, const struct t4dx_wal_stats *ws,
		       bool all)
{
	uint64_t n = 0, bytes = 0;
	if (!all)
		eng_vq_count(db, ws, &n, &bytes);
	uint64_t pending = ws->pending - n;
	uint64_t pending_bytes = ws->pending_bytes - bytes;
	return pending >= db->cfg.fallback.max_queue ||
	       (pending_bytes &&
		pending_bytes >= db->cfg.fallback.max_queue_bytes);
}

/* Is the queue full (users' records, or all of them)?  If so and the
 * disk may be tried, drain it first. */
static bool full_after_drain(struct t4dx *db, bool all)
{
	struct t4dx_wal_stats ws;
	t4dx_wal_get_stats(db->wal, &ws);
	if (!queue_full(db, &ws, all))
		return false;
	if (t4dx_breaker_allow(db->breaker)) {
		t4dx_wal_sync(db->wal, t4dx_wal_last_lsn(db->wal));
		t4dx_breaker_done(db->breaker);
		t4dx_wal_get_stats(db->wal, &ws);
	}
	return queue_full(db, &ws, all);
}

int t4dx_write_room(struct t4dx *db)
{
	if (db->readonly || !eng_queueing(db) || eng_current_level(db) < 1)
		return 0;
	/* drained first if the breaker lets a try through, as for a
	 * change (eng_gate): refused writes must not keep a disk that
	 * works again from taking the queue */
	return full_after_drain(db, false) ? ENOSPC : 0;
}

/* May the embedder log a record now?  Only while nothing fails: the
 * breaker CLOSED with no failure counted, nothing unpersisted, and room
 * in the queue (all of it, drained if need be); else EAGAIN, and it
 * tries again later. */
int eng_gate_embedder(struct t4dx *db)
{
	struct t4dx_breaker_info bi;
	if (db->readonly)
		return EROFS;
	if (atomic_load(&db->fatal))
		return EIO;
	if (eng_current_level(db))
		return EAGAIN;
	t4dx_breaker_get(db->breaker, &bi);
	if (bi.state != T4DX_CLOSED || bi.consecutive_failures)
		return EAGAIN;
	return full_after_drain(db, true) ? EAGAIN : 0;
}

/* May a change be applied now?  ENOSPC when the replay queue is full,
 * EIO when the breaker is OPEN and the policy is reject. */
int eng_gate(struct t4dx *db)
{
	if (db->readonly)
		return EROFS;
	if (atomic_load(&db->fatal))
		return EIO;
	if (!eng_queueing(db)) {
		/* reject: the commit that follows is one at a time
		 * (reject_mu), so the place is not kept for it */
		if (!t4dx_breaker_allow(db->breaker))
			return EIO;
		t4dx_breaker_done(db->breaker);
	}
	return full_after_drain(db, false) ? ENOSPC : 0;
}

const char *t4dx_level_name(int level)
{
	switch (level) {
	case 0: return "normal";
	case 1: return "read-only";
	default: return "in-memory";
	}
}

/* ---- rescue files ------------------------------------------------------
 * At close, records that still could not be made durable are written, as
 * the WAL lines they are, to a rescue file: DATA_DIR/rescue-<lsn>.jsonl,
 * or, when DATA_DIR cannot take it (it is full, most likely), to the
 * rescue directory as t4dx-rescue-<tag>-<lsn>.jsonl, where the tag names
 * the store (several stores may share the directory) (write temp,
 * fdatasync, rename, fsync dir).  The rescue directory is
 * fallback.rescue_dir, or else the first of $TMPDIR, /var/tmp, /tmp and
 * /dev/shm that is writable and not on DATA_DIR's filesystem
 * (eng_choose_rescue_dir).
 * If no file can be written, the records go to the log (the dump sink),
 * so that nothing acknowledged disappears without a copy.  The next open
 * replays the records the WAL does not already hold, makes them durable,
 * and only then renames the file to *.replayed.  Nothing is ever
 * deleted. */

/* The directories a rescue file may go to besides DATA_DIR, in order of
 * preference: $TMPDIR (if absolute), /var/tmp, /tmp, /dev/shm, each once
 * and none that is the chosen rescue directory (the caller tries that
 * first).  Nothing is checked: a directory that cannot take the file
 * fails when it is tried.  Returns how many were put in out. */
size_t eng_rescue_candidates(const struct t4dx *db,
			     const char *out[ENG_RESCUE_CANDIDATES])
{
	const char *tmp = getenv("TMPDIR");
	const char *const all[ENG_RESCUE_CANDIDATES] = {
		tmp && *tmp == '/' ? tmp : "/var/tmp", "/var/tmp", "/tmp",
		"/dev/shm" };
	size_t n = 0;
	for (size_t i = 0; i < ENG_RESCUE_CANDIDATES; i++) {
		bool seen = !strcmp(all[i], db->rescue_dir);
		for (size_t j = 0; !seen && j < n; j++)
			seen = !strcmp(all[i], out[j]);
		if (!seen)
			out[n++] = all[i];
	}
	return n;
}

/* The entries of m as records (put, mkdir, delete) numbered from *lsn
 * on, appended to out.  0 or ENOMEM. */
static int mem_records(struct t4dx_mem *m, uint64_t *lsn,
		       struct t4dx_buf *out)
{
	if (!m)
		return 0;
	for (const struct t4dx_entry *e = t4dx_mem_seek(m, 0, "", 0); e;
	     e = t4dx_mem_next(m, e)) {
		struct t4dx_rec r;
		memset(&r, 0, sizeof(r));
		r.e = *e;       /* borrowed: not cleared */
		r.e.provisional = false;
		r.op = e->tombstone ? T4DX_OP_DELETE :
		       S_ISDIR(e->mode) ? T4DX_OP_MKDIR : T4DX_OP_PUT;
		r.lsn = (*lsn)++;
		int rc = t4dx_rec_encode(&r, out);
		if (rc)
			return rc;
	}
	return 0;
}

/* Save the records the WAL could not write in a rescue file: 0, or the
 * error that left them unsaved.  With wal_lost (the log was removed and
 * no segment took its records), the records that were durable in the
 * removed log exist only in memory too: the file then holds the whole
 * state since the flushed LSN instead, as records numbered after the
 * last LSN given out (so that a start applies them all, after whatever
 * log it finds): the memtables kept for it, imm and the memtable, oldest
 * first, each entry as a put, mkdir or delete.  The queued records are
 * part of that state (every change applied is in the memtable). */
int eng_write_rescue(struct t4dx *db, bool wal_lost)
{
	struct t4dx_buf b = { 0 };
	uint64_t first = 0;
	char name[128];
	int rc;
	if (wal_lost) {
		uint64_t lsn = first = t4dx_wal_last_lsn(db->wal) + 1;
		pthread_rwlock_rdlock(&db->lock);
		rc = 0;
		for (size_t i = 0; !rc && i < db->nunsaved; i++)
			rc = mem_records(db->unsaved[i], &lsn, &b);
		if (!rc)
			rc = mem_records(db->imm, &lsn, &b);
		if (!rc)
			rc = mem_records(db->mem, &lsn, &b);
		pthread_rwlock_unlock(&db->lock);
	} else {
		rc = t4dx_wal_pending(db->wal, &b, &first);
	}
	if (rc || !b.len) {
		t4dx_buf_free(&b);
		return rc;
	}
	uint64_t n = 0;
	for (size_t i = 0; i < b.len; i++)
		n += b.p[i] == '\n';
	snprintf(name, sizeof(name), "rescue-%020llu.jsonl",
		 (unsigned long long)first);
	const char *where = db->dir;
	rc = t4dx_io_write_durably(db->dir, name, b.p, b.len, NULL);
	if (rc && *db->rescue_tag) {
		/* the chosen rescue directory, then (rescue_fallback) the
		 * other candidates whatever their filesystem: a file in
		 * memory or on the full disk's neighbour beats the log */
		const char *dirs[1 + ENG_RESCUE_CANDIDATES];
		size_t nd = 0;
		if (*db->rescue_dir)
			dirs[nd++] = db->rescue_dir;
		if (db->cfg.fallback.rescue_fallback)
			nd += eng_rescue_candidates(db, dirs + nd);
		snprintf(name, sizeof(name), "t4dx-rescue-%s-%020llu.jsonl",
			 db->rescue_tag, (unsigned long long)first);
		for (size_t i = 0; rc && i < nd; i++) {
			where = dirs[i];
			int e = t4dx_io_write_durably(where, name, b.p, b.len,
						      NULL);
			if (e)
				t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
						"rescue file %s/%s: %s", where,
						name, strerror(e));
			rc = e;
		}
	}
	const char *what = wal_lost ? "changes held in memory only (the "
				      "log was removed)"
				    : "unpersisted records";
	if (rc) {
		t4dx_alerts_add(db->alerts, T4DX_ALERT_CRIT,
				"%llu %s (from LSN %llu) could not be saved in "
				"a rescue file: %s; they follow in the log, one "
				"JSON line each", (unsigned long long)n, what,
				(unsigned long long)first, strerror(rc));
		/* the last copy: the records themselves, in the log */
		for (size_t off = 0; off < b.len;) {
			const unsigned char *nl = memchr(b.p + off, '\n',
							 b.len - off);
			size_t len = nl ? (size_t)(nl - b.p) - off
					: b.len - off;
			if (db->dump)
				db->dump(db->dump_arg, (const char *)b.p + off,
					 len);
			else
				fprintf(stderr, "%.*s\n", (int)len,
					(const char *)b.p + off);
			off += len + 1;
		}
	} else
		t4dx_alerts_add(db->alerts, T4DX_ALERT_WARN,
				"%llu %s saved in %s/%s; the next start replays "
				"them", (unsigned long long)n, what, where,
				name);
	t4dx_buf_free(&b);
	return rc;
}

/* The store's identity, DATA_DIR/ID: 32 random hex digits made at the
 * first open (also of a store made by a version without it), which name
 * this store's rescue files in a directory other stores share.  Only an
 * ID that does not exist is made: one that cannot be read (EACCES, EIO)
 * or is damaged is left as it is and the open goes on, with rescue files
 * to DATA_DIR only (rescue_problem says why).  A new ID would orphan the
 * rescue files named by the old one, which the next start that reads the
 * ID again replays; refusing the open would keep the whole store away for
 * the sake of a fallback. */
int eng_store_id(struct t4dx *db)
{
	char path[PATH_MAX], id[40] = "";
	snprintf(path, sizeof(path), "%s/ID", db->dir);
	int fd = t4dx_io.open(path, O_RDONLY, 0);
	int rc = fd < 0 ? errno : 0;
	if (fd >= 0) {
		ssize_t n = t4dx_io.pread(fd, id, 33, 0);
		rc = n < 0 ? errno : 0;
		t4dx_io.close(fd);
		if (n == 33 && id[32] == '\n' &&
		    strspn(id, "0123456789abcdef") == 32) {
			id[32] = 0;
			snprintf(db->rescue_tag, sizeof(db->rescue_tag), "%s",
				 id);
			return 0;
		}
		if (!rc) {
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "%s is damaged (not 32 hex digits and a "
				 "newline), so rescue files go to DATA_DIR "
				 "only; restore it, or remove it to make a new "
				 "one (rescue files named by the old one are "
				 "then replayed by hand)", path);
			return EINVAL;
		}
	}
	if (rc != ENOENT) {
		snprintf(db->rescue_problem, sizeof(db->rescue_problem),
			 "cannot read %s: %s, so rescue files go to DATA_DIR "
			 "only (until it can be read: a new ID would leave "
			 "the rescue files named by this one behind)", path,
			 strerror(rc ? rc : EIO));
		return rc ? rc : EIO;
	}
	unsigned char r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return errno ? errno : EIO;
	for (int i = 0; i < 16; i++)
		snprintf(id + 2 * i, 3, "%02x", r[i]);
	id[32] = '\n';
	struct t4dx_buf b = { (unsigned char *)id, 33, 33 };
	rc = t4dx_io_write_durably(db->dir, "ID", b.p, b.len, NULL);
	if (!rc) {
		id[32] = 0;
		snprintf(db->rescue_tag, sizeof(db->rescue_tag), "%s", id);
	}
	return rc;
}

/* Is path on a filesystem held in memory (tmpfs, ramfs), which a reboot
 * empties?  Rescue files are written at unmount, most often at a
 * shutdown, and replayed at the next start. */
static bool in_memory_fs(const char *path)
{
	struct statfs sf;
	if (statfs(path, &sf))
		return false;
	return sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
}

/* Where rescue files go when DATA_DIR cannot take them: a directory
 * that exists, is writable, is not on DATA_DIR's filesystem (which is
 * full when they are needed most) and, by preference, outlives a reboot.
 * One in memory is still better than none, but said to be poor.
 * rescue_problem says what is wrong with the choice, for the start's
 * warning and health. */
void eng_choose_rescue_dir(struct t4dx *db)
{
	struct stat ds, st;
	if (!*db->rescue_tag) {
		if (!*db->rescue_problem)
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "%s/ID could not be made, so rescue files can "
				 "go to DATA_DIR only", db->dir);
		return;
	}
	if (stat(db->dir, &ds)) {
		snprintf(db->rescue_problem, sizeof(db->rescue_problem),
			 "cannot stat %s: %s", db->dir, strerror(errno));
		return;
	}
	const char *set = db->cfg.fallback.rescue_dir;
	if (*set) {
		snprintf(db->rescue_dir, sizeof(db->rescue_dir), "%s", set);
		if (stat(set, &st) || !S_ISDIR(st.st_mode))
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "fallback.rescue_dir %s is not a directory",
				 set);
		else if (access(set, W_OK | X_OK))
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "fallback.rescue_dir %s is not writable: %s",
				 set, strerror(errno));
		else if (st.st_dev == ds.st_dev)
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "fallback.rescue_dir %s is on DATA_DIR's "
				 "filesystem, which a full disk fills too", set);
		else if (in_memory_fs(set))
			snprintf(db->rescue_problem,
				 sizeof(db->rescue_problem),
				 "fallback.rescue_dir %s is in memory (tmpfs, "
				 "ramfs), which a reboot empties: rescue files "
				 "written at a shutdown would be lost", set);
		return;
	}
	const char *dirs[ENG_RESCUE_CANDIDATES];
	size_t nd = eng_rescue_candidates(db, dirs);   /* rescue_dir is "" */
	const char *ram = NULL;
	for (size_t i = 0; i < nd; i++) {
		if (stat(dirs[i], &st) || !S_ISDIR(st.st_mode) ||
		    st.st_dev == ds.st_dev || access(dirs[i], W_OK | X_OK))
			continue;
		if (!in_memory_fs(dirs[i])) {
			snprintf(db->rescue_dir, sizeof(db->rescue_dir), "%s",
				 dirs[i]);
			return;
		}
		if (!ram)
			ram = dirs[i];
	}
	if (ram) {
		snprintf(db->rescue_dir, sizeof(db->rescue_dir), "%s", ram);
		snprintf(db->rescue_problem, sizeof(db->rescue_problem),
			 "%s is in memory (tmpfs, ramfs), which a reboot "
			 "empties: rescue files written at a shutdown would be "
			 "lost; "
			 "set fallback.rescue_dir to a directory on a disk "
			 "other than DATA_DIR's", ram);
		return;
	}
	snprintf(db->rescue_problem, sizeof(db->rescue_problem),
		 "no writable directory outside DATA_DIR's filesystem "
		 "($TMPDIR, /var/tmp, /tmp, /dev/shm): set "
		 "fallback.rescue_dir");
}

void t4dx_set_dump_sink(struct t4dx *db, t4dx_dump_fn fn, void *arg)
{
	db->dump = fn;
	db->dump_arg = arg;
}

void t4dx_get_rescue(struct t4dx *db, const char **dir, const char **problem)
{
	*dir = db->rescue_dir;
	*problem = db->rescue_problem;
}
