/* test_wal.c - the write-ahead log (core/wal.c): group commit, recovery
 * from cuts and damage, write failures, rotation, archive, quarantine. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "faults.h"
#include "io.h"
#include "rec.h"
#include "unit.h"
#include "wal.h"

/* ---- helpers --------------------------------------------------------- */

struct env {
	char base[1024], wal[1100], q[1100];
};

static void env_new(struct env *e, const char *tag)
{
	snprintf(e->base, sizeof(e->base), "%s", unit_tmpdir(tag));
	snprintf(e->wal, sizeof(e->wal), "%s/wal", e->base);
	snprintf(e->q, sizeof(e->q), "%s/quarantine", e->base);
}

static void walfile(char *out, size_t n, const char *dir, uint64_t first)
{
	snprintf(out, n, "%s/%020" PRIu64 ".jsonl", dir, first);
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) ? -1 : (long long)st.st_size;
}

/* A log file's size without the padding the writer keeps ahead of its
 * records (a run of '\n' after the last line), -1 if it is missing. */
static long long log_size(const char *path)
{
	long long size = file_size(path);
	if (size <= 0)
		return size;
	FILE *f = fopen(path, "rb");
	REQUIRE(f);
	long long end = size;
	while (end > 0) {
		REQUIRE(fseek(f, (long)(end - 1), SEEK_SET) == 0);
		if (fgetc(f) != '\n')
			break;
		end--;
	}
	fclose(f);
	return end == 0 ? 0 : end < size ? end + 1 : end;
}

static unsigned char *read_whole(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	REQUIRE(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *p = malloc((size_t)n + 1);
	REQUIRE(p && fread(p, 1, (size_t)n, f) == (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

static void write_whole(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	REQUIRE(f);
	REQUIRE(len == 0 || fwrite(p, 1, len, f) == len);
	REQUIRE(fclose(f) == 0);
}

/* Number of *.jsonl files in dir. */
static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".jsonl"))
			n++;
	closedir(d);
	return n;
}

/* Content of the record with seed s: text, or binary with NUL bytes. */
static size_t gen_content(uint64_t s, unsigned char *out)
{
	size_t n = (size_t)((s * 37) % 300);
	for (size_t i = 0; i < n; i++)
		out[i] = s % 4 == 0 ? (unsigned char)(i * s) :
			 (unsigned char)('a' + (i + s) % 26);
	return n;
}

/* Fill r with an operation whose fields all derive from seed (which
 * the tests make equal to the LSN the record will get). */
static void mkrec(struct t4dx_rec *r, uint64_t seed)
{
	unsigned char c[300];
	char name[32];
	memset(r, 0, sizeof(*r));
	snprintf(name, sizeof(name), "k%" PRIu64, seed);
	REQUIRE(t4dx_entry_set_key(&r->e, 16, name, strlen(name)) == 0);
	switch (seed % 7) {
	case 3:
		r->op = T4DX_OP_DELETE;
		break;
	case 5:
		r->op = T4DX_OP_RENAME;
		r->new_parent = seed;
		r->new_name_len = 1;
		r->new_name[0] = 'z';
		break;
	case 6:
		r->op = T4DX_OP_UPDATE;
		r->mask = T4DX_F_KAPPA | T4DX_F_MTIME;
		r->e.kappa = 0.5;
		r->e.mtime_ns = (int64_t)seed;
		break;
	default: {
		r->op = T4DX_OP_PUT;
		r->e.ino = seed + 1000;
		r->e.mode = 0100644;
		r->e.kappa = 0.25;
		size_t n = gen_content(seed, c);
		r->e.content = t4dx_blob_from(c, n);
		r->e.size = n;
	}
	}
}

/* Records seen by a replay callback; each is checked against mkrec. */
struct seen {
	uint64_t *lsn;
	size_t n, cap;
	int bad;
};

static int collect(void *arg, struct t4dx_rec *r)
{
	struct seen *s = arg;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->lsn = realloc(s->lsn, s->cap * sizeof(*s->lsn));
		REQUIRE(s->lsn);
	}
	s->lsn[s->n++] = r->lsn;
	if (r->op == T4DX_OP_PROBE)
		return 0;
	uint64_t seed = strtoull(r->e.name + 1, NULL, 10);
	struct t4dx_rec want;
	mkrec(&want, seed);
	bool ok = seed == r->lsn && want.op == r->op &&
		  r->e.name_len == want.e.name_len;
	if (ok && r->op == T4DX_OP_PUT)
		ok = r->e.content && r->e.size == want.e.size &&
		     !memcmp(r->e.content->data, want.e.content->data,
			     want.e.size) && r->e.ino == want.e.ino;
	if (ok && r->op == T4DX_OP_UPDATE)
		ok = r->mask == want.mask && r->e.mtime_ns == want.e.mtime_ns;
	if (!ok) {
		fprintf(stderr, "   record lsn %" PRIu64 " does not match\n",
			r->lsn);
		s->bad++;
	}
	t4dx_entry_clear(&want.e);
	return 0;
}

static void seen_reset(struct seen *s)
{
	s->n = 0;
	s->bad = 0;
}

/* The records seen are exactly lo..hi in order. */
static bool seen_is(const struct seen *s, uint64_t lo, uint64_t hi)
{
	if (s->bad || s->n != (hi >= lo ? hi - lo + 1 : 0))
		return false;
	for (size_t i = 0; i < s->n; i++)
		if (s->lsn[i] != lo + i)
			return false;
	return true;
}

static struct t4dx_wal *open_wal(struct env *e, uint64_t from,
				 uint64_t max_bytes, struct seen *s,
				 struct t4dx_wal_report *rep)
{
	struct t4dx_wal *w = NULL;
	struct t4dx_wal_report r;
	if (s)
		seen_reset(s);
	int rc = t4dx_wal_open(e->wal, e->q, from, max_bytes, collect, s,
			       rep ? rep : &r, &w);
	if (rc)
		fprintf(stderr, "   t4dx_wal_open: %s\n", t4dx_strerror(rc));
	REQUIRE(rc == 0 && w);
	return w;
}

/* Add the record the next LSN will get; returns its LSN. */
static uint64_t add(struct t4dx_wal *w)
{
	struct t4dx_rec r;
	uint64_t lsn = t4dx_wal_last_lsn(w) + 1;
	mkrec(&r, lsn);
	REQUIRE(t4dx_wal_add(w, &r) == 0);
	CHECK(r.lsn == lsn);
	t4dx_entry_clear(&r.e);
	return lsn;
}

static void add_n(struct t4dx_wal *w, int n)
{
	for (int i = 0; i < n; i++)
		add(w);
}

/* A hand-made log file holding records lo..hi (as the writer would). */
static void craft_file(const char *dir, uint64_t name, uint64_t lo,
		       uint64_t hi)
{
	struct t4dx_buf b = { 0 };
	char path[PATH_MAX];
	for (uint64_t l = lo; l <= hi; l++) {
		struct t4dx_rec r;
		mkrec(&r, l);
		r.lsn = l;
		REQUIRE(t4dx_rec_encode(&r, &b) == 0);
		t4dx_entry_clear(&r.e);
	}
	walfile(path, sizeof(path), dir, name);
	write_whole(path, b.p, b.len);
	t4dx_buf_free(&b);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int linked_err;
static int fake_linked(int fd, const char *path)
{
	return linked_err;
}

/* A group commit fails only when its file is known to be gone (ESTALE):
 * a check that itself fails (EACCES) leaves the synced records durable,
 * as they are on disk (found by review: their LSNs were given back). */
static void test_linked_check(void)
{
	struct env e;
	struct seen s = { 0 };
	env_new(&e, "wal-linked");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, NULL);
	t4dx_io.linked = fake_linked;
	linked_err = EACCES;
	uint64_t a = add(w);
	CHECK_EQ_INT(t4dx_wal_sync(w, a), 0);
	CHECK_EQ_INT(t4dx_wal_durable_lsn(w), a);
	linked_err = ESTALE;
	uint64_t b = add(w);
	CHECK_EQ_INT(t4dx_wal_sync(w, b), ESTALE);
	CHECK_EQ_INT(t4dx_wal_durable_lsn(w), a);
	t4dx_io_reset();
	t4dx_wal_close(w);
	w = open_wal(&e, 0, 0, &s, NULL);
	CHECK(s.n >= 1 && s.lsn[0] == a);
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

/* ---- tests ----------------------------------------------------------- */

static void test_round_trip(void)
{
	struct env e;
	struct seen s = { 0 };
	struct t4dx_wal_report rep;
	env_new(&e, "wal-rt");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(rep.records == 0 && rep.files == 0 && rep.last_lsn == 0);
	CHECK(log_size(e.q) < 0);      /* nothing quarantined */
	add_n(w, 10);
	CHECK_EQ_INT(t4dx_wal_last_lsn(w), 10);
	CHECK_EQ_INT(t4dx_wal_durable_lsn(w), 0);
	struct t4dx_wal_stats st;
	t4dx_wal_get_stats(w, &st);
	CHECK_EQ_INT(st.pending, 10);
	CHECK_EQ_INT(st.bytes, 0);
	CHECK_EQ_INT(count_files(e.wal), 0);    /* nothing written yet */
	faults_count();
	CHECK_EQ_INT(t4dx_wal_sync(w, 10), 0);
	CHECK_EQ_INT(faults_calls(FAULT_PWRITE), 1);
	CHECK_EQ_INT(faults_calls(FAULT_FDATASYNC), 1);
	CHECK_EQ_INT(faults_calls(FAULT_FSYNC), 1);     /* the new file's dir */
	faults_reset();
	CHECK_EQ_INT(t4dx_wal_durable_lsn(w), 10);
	t4dx_wal_get_stats(w, &st);
	CHECK_EQ_INT(st.pending, 0);
	CHECK_EQ_INT(st.records, 10);
	CHECK_EQ_INT(st.syncs, 1);              /* one group */
	char path[PATH_MAX];
	walfile(path, sizeof(path), e.wal, 1);
	CHECK(st.bytes > 0 && (long long)st.bytes == log_size(path));
	CHECK_EQ_INT(t4dx_wal_sync(w, 3), 0);   /* already durable */
	CHECK_EQ_INT(t4dx_wal_sync(w, 1000), 0);/* beyond last: all */
	t4dx_wal_close(w);

	faults_count();
	w = open_wal(&e, 0, 0, &s, &rep);
	/* nothing damaged: recovery changes nothing */
	CHECK_EQ_INT(faults_calls(FAULT_FTRUNCATE) + faults_calls(FAULT_PWRITE) +
		     faults_calls(FAULT_RENAME) + faults_calls(FAULT_FSYNC), 0);
	faults_reset();
	CHECK(seen_is(&s, 1, 10));
	CHECK_EQ_INT(rep.records, 10);
	CHECK_EQ_INT(rep.files, 1);
	CHECK_EQ_INT(rep.bytes_dropped, 0);
	CHECK_EQ_INT(rep.last_lsn, 10);
	CHECK_EQ_INT(t4dx_wal_last_lsn(w), 10);
	/* appended to the same file, LSNs go on */
	CHECK_EQ_INT(add(w), 11);
	CHECK_EQ_INT(t4dx_wal_sync(w, 11), 0);
	t4dx_wal_close(w);      /* close also syncs what is queued */
	w = open_wal(&e, 0, 0, &s, NULL);
	add_n(w, 2);
	t4dx_wal_close(w);
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 13));
	CHECK_EQ_INT(count_files(e.wal), 1);
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

static void test_lsn_rises(void)
{
	struct env e;
	struct seen s = { 0 };
	struct t4dx_wal_report rep;
	env_new(&e, "wal-lsn");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, NULL);
	add_n(w, 10);
	t4dx_wal_close(w);
	/* records <= from_lsn are checked and skipped, the rest replayed */
	w = open_wal(&e, 5, 0, &s, &rep);
	CHECK_EQ_INT(rep.skipped, 5);
	CHECK(seen_is(&s, 6, 10));
	CHECK_EQ_INT(rep.last_lsn, 10);
	t4dx_wal_close(w);
	/* everything up to 100 is in segments: LSNs go on from 101 */
	w = open_wal(&e, 100, 0, &s, &rep);
	CHECK_EQ_INT(rep.skipped, 10);
	CHECK_EQ_INT(rep.records, 0);
	CHECK_EQ_INT(s.n, 0);
	CHECK_EQ_INT(rep.last_lsn, 100);
	CHECK_EQ_INT(add(w), 101);
	CHECK_EQ_INT(t4dx_wal_sync(w, 101), 0);
	char path[PATH_MAX];
	walfile(path, sizeof(path), e.wal, 101);    /* a new file */
	CHECK(log_size(path) > 0);
	t4dx_wal_close(w);
	/* file 1 is followed by 101: covered whole, listed but not read */
	w = open_wal(&e, 100, 0, &s, &rep);
	CHECK(seen_is(&s, 101, 101));
	CHECK_EQ_INT(rep.skipped, 0);
	CHECK_EQ_INT(rep.files, 1);
	CHECK_EQ_INT(rep.files_covered, 1);
	CHECK_EQ_INT(count_files(e.wal), 2);
	CHECK_EQ_INT(add(w), 102);       /* appended to 101 */
	t4dx_wal_close(w);
	w = open_wal(&e, 101, 0, &s, &rep);
	CHECK(seen_is(&s, 102, 102));
	CHECK_EQ_INT(rep.skipped, 1);
	CHECK_EQ_INT(rep.files_covered, 1);
	CHECK_EQ_INT(count_files(e.wal), 2);
	CHECK_EQ_INT(t4dx_wal_last_lsn(w), 102);
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

/* ---- group commit ---------------------------------------------------- */

struct gc {
	struct t4dx_wal *w;
	pthread_mutex_t addmu;
	int per_thread;
	atomic_int errors, late;
};

static void *committer(void *arg)
{
	struct gc *g = arg;
	for (int i = 0; i < g->per_thread; i++) {
		pthread_mutex_lock(&g->addmu);
		uint64_t lsn = add(g->w);
		pthread_mutex_unlock(&g->addmu);
		if (t4dx_wal_sync(g->w, lsn))
			atomic_fetch_add(&g->errors, 1);
		if (t4dx_wal_durable_lsn(g->w) < lsn)
			atomic_fetch_add(&g->late, 1);
	}
	return NULL;
}

static int (*inner_fdatasync)(int);
static int slow_fdatasync(int fd)
{
	struct timespec ts = { 0, 300 * 1000 };    /* a disk's flush */
	nanosleep(&ts, NULL);
	return inner_fdatasync(fd);
}

/* Returns fdatasyncs per record. */
static double run_group_commit(bool slow)
{
	enum { THREADS = 8, PER = 250 };
	struct env e;
	struct seen s = { 0 };
	env_new(&e, "wal-gc");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, NULL);
	faults_count();
	if (slow) {
		inner_fdatasync = t4dx_io.fdatasync;
		t4dx_io.fdatasync = slow_fdatasync;
	}
	struct gc g = { .w = w, .per_thread = PER };
	pthread_mutex_init(&g.addmu, NULL);
	pthread_t th[THREADS];
	double t0 = now_s();
	for (int i = 0; i < THREADS; i++)
		REQUIRE(pthread_create(&th[i], NULL, committer, &g) == 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	double dt = now_s() - t0;
	unsigned syncs = faults_calls(FAULT_FDATASYNC);
	faults_reset();
	const unsigned total = THREADS * PER;
	CHECK_EQ_INT(atomic_load(&g.errors), 0);
	CHECK_EQ_INT(atomic_load(&g.late), 0);
	CHECK_EQ_INT(t4dx_wal_durable_lsn(w), total);
	struct t4dx_wal_stats st;
	t4dx_wal_get_stats(w, &st);
	CHECK_EQ_INT(st.records, total);
	CHECK_EQ_INT(st.pending, 0);
	CHECK_EQ_INT(st.syncs, syncs);
	fprintf(stderr, "   %s fdatasync: %u records, %u fdatasyncs "
		"(%.3f per record), %.0f records/s\n",
		slow ? "slow (+300us)" : "real", total, syncs,
		(double)syncs / total, total / dt);
	if (slow)
		CHECK(syncs * 2 <= total);      /* well below one each */
	else
		CHECK(syncs < total);
	t4dx_wal_close(w);
	w = open_wal(&e, 0, 0, &s, NULL);
	CHECK(seen_is(&s, 1, total));
	t4dx_wal_close(w);
	pthread_mutex_destroy(&g.addmu);
	unit_rm_rf(e.base);
	free(s.lsn);
	return (double)syncs / total;
}

static void test_group_commit(void)
{
	run_group_commit(false);
	run_group_commit(true);
}

/* Threads waiting on groups that fail all get the errno; none hangs. */
static void *sync_one(void *arg)
{
	void **a = arg;
	intptr_t rc = t4dx_wal_sync(a[0], (uint64_t)(uintptr_t)a[1]);
	return (void *)rc;
}

static void test_waiters_get_error(void)
{
	struct env e;
	struct seen s = { 0 };
	env_new(&e, "wal-waiters");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, NULL);
	add_n(w, 3);
	CHECK_EQ_INT(t4dx_wal_sync(w, 3), 0);
	add_n(w, 6);                            /* 4..9 */
	faults_arm(FAULT_FDATASYNC, 1, EIO, 1); /* every fdatasync fails */
	pthread_t th[6];
	void *args[6][2];
	for (int i = 0; i < 6; i++) {
		args[i][0] = w;
		args[i][1] = (void *)(uintptr_t)(4 + i);
		REQUIRE(pthread_create(&th[i], NULL, sync_one, args[i]) == 0);
	}
	for (int i = 0; i < 6; i++) {
		void *rc;
		pthread_join(th[i], &rc);
		CHECK_EQ_INT((intptr_t)rc, EIO);
	}
	CHECK_EQ_INT(t4dx_wal_durable_lsn(w), 3);
	faults_reset();
	CHECK_EQ_INT(t4dx_wal_sync(w, 9), 0);
	t4dx_wal_close(w);
	w = open_wal(&e, 0, 0, &s, NULL);
	CHECK(seen_is(&s, 1, 9));
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

/* ---- cuts and damage ------------------------------------------------- */

/* A one-file log of 20 records of every kind; returns its bytes and the
 * offset where each record starts (bounds[20] = size). */
static unsigned char *small_log(struct env *e, size_t *size, size_t *bounds)
{
	struct t4dx_wal *w = open_wal(e, 0, 0, NULL, NULL);
	for (int i = 0; i < 20; i++) {
		struct t4dx_rec r;
		uint64_t lsn = t4dx_wal_last_lsn(w) + 1;
		mkrec(&r, lsn);
		if (lsn == 20)
			r.op = T4DX_OP_PROBE;
		REQUIRE(t4dx_wal_add(w, &r) == 0);
		t4dx_entry_clear(&r.e);
		if (i % 3 == 0)
			REQUIRE(t4dx_wal_sync(w, lsn) == 0);
	}
	t4dx_wal_close(w);
	char path[PATH_MAX];
	walfile(path, sizeof(path), e->wal, 1);
	unsigned char *p = read_whole(path, size);
	int k = 0;
	bounds[k++] = 0;
	for (size_t i = 0; i < *size; i++)
		if (p[i] == '\n')
			bounds[k++] = i + 1;
	REQUIRE(k == 21 && bounds[20] == *size);
	return p;
}

static int record_at(const size_t *bounds, size_t off)
{
	int k = 0;
	while (k < 20 && bounds[k + 1] <= off)
		k++;
	return k;
}

static void test_cut_every_offset(void)
{
	struct env e;
	struct seen s = { 0 };
	size_t size, bounds[21];
	env_new(&e, "wal-cut");
	unsigned char *log = small_log(&e, &size, bounds);
	char path[PATH_MAX];
	walfile(path, sizeof(path), e.wal, 1);
	int fails = 0;
	for (size_t c = 0; c <= size; c++) {
		write_whole(path, log, c);
		unit_rm_rf(e.q);
		int k = 0;              /* complete records before the cut */
		while (k < 20 && bounds[k + 1] <= c)
			k++;
		struct t4dx_wal_report rep;
		faults_count();
		struct t4dx_wal *w = open_wal(&e, 0, 0, &s, &rep);
		/* a repair is made durable: the cut bytes copied to the
		 * quarantine (fsync of the copy and of the directories),
		 * ftruncate, then fsync */
		bool repair = c != bounds[k];
		unsigned fs = faults_calls(FAULT_FSYNC);
		bool ok = faults_calls(FAULT_FTRUNCATE) == repair &&
			  (repair ? fs >= 2 : fs == 0);
		faults_reset();
		if (repair) {
			char q[PATH_MAX + 64];
			snprintf(q, sizeof(q), "%s/wal-%020d.jsonl.at-%zu",
				 e.q, 1, bounds[k]);
			size_t qlen;
			unsigned char *qb = read_whole(q, &qlen);
			ok = ok && qb && qlen == c - bounds[k] &&
			     !memcmp(qb, log + bounds[k], qlen);
			free(qb);
		}
		ok = ok && seen_is(&s, 1, (uint64_t)k) &&
			  rep.records == (uint64_t)k &&
			  rep.bytes_dropped == c - bounds[k] &&
			  log_size(path) == (long long)bounds[k] &&
			  t4dx_wal_last_lsn(w) == (uint64_t)k;
		/* the log goes on at the valid end */
		ok = ok && add(w) == (uint64_t)k + 1 &&
		     t4dx_wal_sync(w, (uint64_t)k + 1) == 0;
		t4dx_wal_close(w);
		w = open_wal(&e, 0, 0, &s, &rep);
		ok = ok && seen_is(&s, 1, (uint64_t)k + 1) &&
		     rep.bytes_dropped == 0 && count_files(e.wal) == 1;
		t4dx_wal_close(w);
		if (!ok && fails++ < 5)
			fprintf(stderr, "   cut at %zu (record %d) failed\n", c, k);
	}
	CHECK_EQ_INT(fails, 0);
	fprintf(stderr, "   %zu cuts of a %zu-byte log\n", size + 1, size);
	free(log);
	unit_rm_rf(e.base);
	free(s.lsn);
}

static void test_flip_every_offset(void)
{
	struct env e;
	struct seen s = { 0 };
	size_t size, bounds[21];
	env_new(&e, "wal-flip");
	unsigned char *log = small_log(&e, &size, bounds);
	unsigned char *copy = malloc(size);
	char path[PATH_MAX];
	walfile(path, sizeof(path), e.wal, 1);
	static const unsigned char masks[] = { 0x01, 0x20, 0x80, 0x5a };
	int fails = 0;
	for (size_t o = 0; o < size; o++) {
		memcpy(copy, log, size);
		copy[o] ^= masks[o % sizeof(masks)];
		write_whole(path, copy, size);
		int k = record_at(bounds, o);   /* the damaged record */
		struct t4dx_wal_report rep;
		struct t4dx_wal *w = open_wal(&e, 0, 0, &s, &rep);
		bool ok = seen_is(&s, 1, (uint64_t)k) &&
			  rep.bytes_dropped == size - bounds[k] &&
			  log_size(path) == (long long)bounds[k] &&
			  t4dx_wal_last_lsn(w) == (uint64_t)k;
		t4dx_wal_close(w);
		if (o % 7 == 0) {       /* a second open finds nothing to do */
			w = open_wal(&e, 0, 0, &s, &rep);
			ok = ok && seen_is(&s, 1, (uint64_t)k) &&
			     rep.bytes_dropped == 0;
			t4dx_wal_close(w);
		}
		if (!ok && fails++ < 5)
			fprintf(stderr, "   flip at %zu (record %d) failed: "
				"%zu replayed\n", o, k, s.n);
	}
	CHECK_EQ_INT(fails, 0);
	fprintf(stderr, "   %zu flipped offsets\n", size);
	free(copy);
	free(log);
	unit_rm_rf(e.base);
	free(s.lsn);
}

/* ---- write failures -------------------------------------------------- */

enum failure { F_PWRITE, F_SHORT, F_FDATASYNC, F_OPEN, F_DIRSYNC };

static void run_write_failure(enum failure how)
{
	struct env e;
	struct seen s = { 0 };
	env_new(&e, "wal-fail");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, NULL);
	add_n(w, 5);
	CHECK_EQ_INT(t4dx_wal_sync(w, 5), 0);
	char path[PATH_MAX];
	walfile(path, sizeof(path), e.wal, 1);
	long long good = log_size(path);
	if (how == F_OPEN || how == F_DIRSYNC)
		REQUIRE(t4dx_wal_rotate(w, NULL) == 0);  /* next: new file */
	add_n(w, 3);                            /* 6..8 */
	int err = how == F_SHORT ? ENOSPC : EIO;
	switch (how) {
	case F_PWRITE: faults_arm(FAULT_PWRITE, 1, EIO, 0); break;
	case F_SHORT: faults_arm_short_write(1, 50, ENOSPC); break;
	case F_FDATASYNC: faults_arm(FAULT_FDATASYNC, 1, EIO, 0); break;
	case F_OPEN: faults_arm(FAULT_OPEN, 1, EIO, 0); break;
	case F_DIRSYNC: faults_arm(FAULT_FSYNC, 1, EIO, 0); break;
	}
	CHECK_EQ_INT(t4dx_wal_sync(w, 7), err);
	if (how == F_SHORT)
		CHECK_EQ_INT(faults_calls(FAULT_PWRITE), 2);  /* 50 bytes, then
								 the error */
	faults_reset();
	if (how == F_DIRSYNC) {
		/* created but not known durable: nothing written into it */
		char p6[PATH_MAX];
		walfile(p6, sizeof(p6), e.wal, 6);
		CHECK_EQ_INT(log_size(p6), 0);
	}
	/* no torn record: the file is back where the group started */
	CHECK_EQ_INT(log_size(path), good);
	CHECK_EQ_INT(t4dx_wal_durable_lsn(w), 5);
	struct t4dx_wal_stats st;
	t4dx_wal_get_stats(w, &st);
	CHECK_EQ_INT(st.pending, 3);
	add_n(w, 2);                            /* 9, 10 join the retry */
	faults_count();
	CHECK_EQ_INT(t4dx_wal_sync(w, 6), 0);
	CHECK_EQ_INT(faults_calls(FAULT_PWRITE), 1);   /* one group */
	CHECK_EQ_INT(faults_calls(FAULT_FDATASYNC), 1);
	faults_reset();
	CHECK_EQ_INT(t4dx_wal_durable_lsn(w), 10);
	t4dx_wal_close(w);
	struct t4dx_wal_report rep;
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 10));
	CHECK_EQ_INT(rep.bytes_dropped, 0);
	CHECK_EQ_INT(rep.files, how == F_OPEN || how == F_DIRSYNC ? 2 : 1);
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

/* A content of at least 256 KiB is queued by reference and encoded a
 * piece at a time as its group is written.  Whatever the path - the
 * lines a rescue takes (t4dx_wal_pending), groups cut by the batch limit,
 * a group written again after a failed write - the log holds exactly
 * the lines of the whole encoding (t4dx_rec_encode), and a replay gives
 * back every content. */
static struct t4dx_blob *big_content(uint64_t seed)
{
	/* text with every kind of escape and multi-byte UTF-8 (odd
	 * seeds), or binary with NUL bytes, its length not a multiple of
	 * 3 (even seeds) */
	static const char unit[] = "green \"tea\" \\ \n\t\x01" "caf\xc3\xa9 ";
	size_t n = (300u << 10) + (size_t)seed * 7 + seed % 3;
	struct t4dx_blob *b = t4dx_blob_new(n);
	REQUIRE(b);
	for (size_t i = 0; i < n; i++)
		b->data[i] = seed % 2 ? (unsigned char)(n - i < sizeof(unit) ?
			'x' : unit[i % (sizeof(unit) - 1)]) :
			(unsigned char)(i * seed * 31 + (i >> 9));
	return b;
}

#define BIG_N 7
static bool is_big(uint64_t lsn)
{
	return lsn == 2 || lsn == 3 || lsn == 5 || lsn == 6;
}

static void mkrec_big(struct t4dx_rec *r, uint64_t lsn)
{
	mkrec(r, lsn);
	if (!is_big(lsn))
		return;
	t4dx_entry_clear(&r->e);
	memset(r, 0, sizeof(*r));
	char name[32];
	snprintf(name, sizeof(name), "big%" PRIu64, lsn);
	REQUIRE(t4dx_entry_set_key(&r->e, 16, name, strlen(name)) == 0);
	r->op = T4DX_OP_PUT;
	r->e.ino = lsn;
	r->e.mode = 0100600;
	r->e.content = big_content(lsn);
	r->e.size = r->e.content->len;
}

struct big_seen {
	uint64_t n;
	int bad;
};

static int collect_big(void *arg, struct t4dx_rec *r)
{
	struct big_seen *s = arg;
	struct t4dx_rec want;
	mkrec_big(&want, r->lsn);
	bool ok = r->lsn == ++s->n && r->op == want.op &&
		  r->e.name_len == want.e.name_len &&
		  !memcmp(r->e.name, want.e.name, want.e.name_len);
	if (ok && r->op == T4DX_OP_PUT)
		ok = r->e.content && r->e.size == want.e.size &&
		     !memcmp(r->e.content->data, want.e.content->data,
			     want.e.size);
	if (!ok) {
		fprintf(stderr, "   record lsn %" PRIu64 " does not match\n",
			r->lsn);
		s->bad++;
	}
	t4dx_entry_clear(&want.e);
	return 0;
}

static void run_large_contents(bool fail_once)
{
	struct env e;
	env_new(&e, "wal-big");
	struct big_seen s = { 0 };
	struct t4dx_wal_report rep;
	struct t4dx_wal *w = NULL;
	REQUIRE(t4dx_wal_open(e.wal, e.q, 0, 0, collect_big, &s, &rep,
			      &w) == 0);
	struct t4dx_buf want = { 0 };
	for (uint64_t lsn = 1; lsn <= BIG_N; lsn++) {
		struct t4dx_rec r;
		mkrec_big(&r, lsn);
		r.lsn = lsn;
		REQUIRE(t4dx_rec_encode(&r, &want) == 0);
		r.lsn = 0;
		REQUIRE(t4dx_wal_add(w, &r) == 0);
		CHECK_EQ_INT(r.lsn, lsn);
		t4dx_entry_clear(&r.e);
	}
	/* the records no longer hold the contents: the queue does */
	struct t4dx_wal_stats st;
	t4dx_wal_get_stats(w, &st);
	CHECK_EQ_INT(st.pending_bytes, want.len);
	struct t4dx_buf lines = { 0 };
	uint64_t first = 0;
	CHECK_EQ_INT(t4dx_wal_pending(w, &lines, &first), 0);
	CHECK_EQ_INT(first, 1);
	CHECK(lines.len == want.len && !memcmp(lines.p, want.p, want.len));
	t4dx_buf_free(&lines);

	t4dx_wal_set_batch(w, 2);
	if (fail_once) {
		/* the first group (1, 2) fails inside 2's content; it is
		 * cut back and written again whole */
		faults_arm_short_write(2, 1000, EIO);
		CHECK_EQ_INT(t4dx_wal_sync(w, 1), EIO);
		faults_reset();
		CHECK_EQ_INT(t4dx_wal_durable_lsn(w), 0);
	}
	CHECK_EQ_INT(t4dx_wal_sync(w, 3), 0);
	CHECK_EQ_INT(t4dx_wal_durable_lsn(w), 4);
	t4dx_wal_get_stats(w, &st);
	CHECK_EQ_INT(st.pending, BIG_N - 4);
	CHECK_EQ_INT(t4dx_wal_pending(w, &lines, &first), 0);
	CHECK_EQ_INT(first, 5);
	t4dx_buf_free(&lines);
	CHECK_EQ_INT(t4dx_wal_sync(w, BIG_N), 0);
	t4dx_wal_close(w);

	char path[PATH_MAX];
	walfile(path, sizeof(path), e.wal, 1);
	size_t len;
	unsigned char *file = read_whole(path, &len);
	CHECK_EQ_INT(log_size(path), want.len);
	CHECK(len >= want.len && !memcmp(file, want.p, want.len));
	free(file);
	w = NULL;
	REQUIRE(t4dx_wal_open(e.wal, e.q, 0, 0, collect_big, &s, &rep,
			      &w) == 0);
	CHECK_EQ_INT(s.n, BIG_N);
	CHECK_EQ_INT(s.bad, 0);
	CHECK_EQ_INT(rep.bytes_dropped, 0);
	t4dx_wal_close(w);
	t4dx_buf_free(&want);
	unit_rm_rf(e.base);
}

static void test_large_contents(void)
{
	run_large_contents(false);
	run_large_contents(true);
}

static void test_write_failures(void)
{
	run_write_failure(F_PWRITE);
	run_write_failure(F_SHORT);
	run_write_failure(F_FDATASYNC);
	run_write_failure(F_OPEN);
	run_write_failure(F_DIRSYNC);
}

/* The group fails and cannot be truncated away: the file is abandoned
 * and the next group starts a new file.
 *   torn:   a short write left part of the group (a torn line)
 *   copies: the whole group was written, fdatasync failed
 *   same:   the group was the abandoned file's first write (same name) */
enum abandon { A_TORN, A_COPIES, A_SAME };

static void run_abandon(enum abandon how)
{
	struct env e;
	struct seen s = { 0 };
	env_new(&e, "wal-abandon");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, NULL);
	add_n(w, 5);
	CHECK_EQ_INT(t4dx_wal_sync(w, 5), 0);
	if (how == A_SAME)
		REQUIRE(t4dx_wal_rotate(w, NULL) == 0);
	char p1[PATH_MAX], p6[PATH_MAX];
	walfile(p1, sizeof(p1), e.wal, 1);
	walfile(p6, sizeof(p6), e.wal, 6);
	long long good = log_size(p1);
	add_n(w, 3);                            /* 6..8 */
	if (how == A_COPIES)
		faults_arm(FAULT_FDATASYNC, 1, EIO, 0);
	else
		faults_arm_short_write(1, 40, EIO);
	faults_arm(FAULT_FTRUNCATE, 1, EROFS, 0);
	CHECK_EQ_INT(t4dx_wal_sync(w, 8), EIO);
	faults_reset();
	/* the 40 torn bytes landed on the writer's padding, so a '\n' of it
	 * ends them: a damaged line of 41 bytes */
	if (how == A_TORN)
		CHECK_EQ_INT(log_size(p1), good + 41);
	if (how == A_COPIES)
		CHECK(log_size(p1) > good);
	if (how == A_SAME)
		CHECK_EQ_INT(log_size(p6), 41);
	long long abandoned = how == A_SAME ? 41 : log_size(p1);
	CHECK_EQ_INT(t4dx_wal_sync(w, 8), 0);   /* into a new file */
	CHECK(log_size(p6) > 0);
	if (how != A_SAME)
		CHECK_EQ_INT(log_size(p1), abandoned);  /* never touched */
	add(w);
	t4dx_wal_close(w);
	CHECK_EQ_INT(count_files(e.wal), 2);
	if (how == A_SAME) {
		/* the abandoned 6 was set aside, not deleted */
		char qp[PATH_MAX];
		snprintf(qp, sizeof(qp), "%s/wal-%020d.jsonl", e.q, 6);
		CHECK_EQ_INT(log_size(qp), 41);
	}
	struct t4dx_wal_report rep;
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 9));
	CHECK_EQ_INT(rep.files, 2);
	CHECK_EQ_INT(rep.bytes_dropped, how == A_TORN ? 41 : 0);
	if (how == A_TORN)
		CHECK_EQ_INT(log_size(p1), good);
	/* appending goes on in the new file */
	CHECK_EQ_INT(add(w), 10);
	t4dx_wal_close(w);
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 10));
	CHECK_EQ_INT(rep.bytes_dropped, 0);
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

static void test_truncate_failure(void)
{
	run_abandon(A_TORN);
	run_abandon(A_COPIES);
	run_abandon(A_SAME);
}

/* ---- rotation, archive, quarantine ----------------------------------- */

/* Each log file's first record carries the file's name. */
static int check_names(const char *dir)
{
	DIR *d = opendir(dir);
	REQUIRE(d);
	int bad = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strstr(de->d_name, ".jsonl"))
			continue;
		char path[PATH_MAX * 2];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		size_t len;
		unsigned char *p = read_whole(path, &len);
		unsigned char *nl = memchr(p, '\n', len);
		struct t4dx_rec r;
		if (strlen(de->d_name) != 26 || !nl ||
		    t4dx_rec_decode((char *)p, (size_t)(nl - p), &r) ||
		    r.lsn != strtoull(de->d_name, NULL, 10))
			bad++;
		else
			t4dx_entry_clear(&r.e);
		free(p);
	}
	closedir(d);
	return bad;
}

static long long dir_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	REQUIRE(d);
	long long n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char path[PATH_MAX * 2];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (strstr(de->d_name, ".jsonl"))
			n += log_size(path);
	}
	closedir(d);
	return n;
}

static void test_rotate_archive(void)
{
	struct env e;
	struct seen s = { 0 };
	char arch[1200];
	env_new(&e, "wal-rot");
	snprintf(arch, sizeof(arch), "%s/archive", e.wal);
	struct t4dx_wal *w = open_wal(&e, 0, 2000, &s, NULL);
	for (int i = 0; i < 40; i++)
		CHECK_EQ_INT(t4dx_wal_sync(w, add(w)), 0);
	int nfiles = count_files(e.wal);
	CHECK(nfiles >= 4);
	CHECK_EQ_INT(check_names(e.wal), 0);
	struct t4dx_wal_stats st;
	t4dx_wal_get_stats(w, &st);
	CHECK_EQ_INT(st.bytes, dir_bytes(e.wal));
	uint64_t last = 0;
	CHECK_EQ_INT(t4dx_wal_rotate(w, &last), 0);
	CHECK_EQ_INT(last, 40);
	CHECK_EQ_INT(t4dx_wal_sync(w, add(w)), 0);
	char p41[PATH_MAX];
	walfile(p41, sizeof(p41), e.wal, 41);
	CHECK(log_size(p41) > 0);
	CHECK_EQ_INT(count_files(e.wal), nfiles + 1);

	/* archive up to the middle: only whole files move */
	CHECK_EQ_INT(t4dx_wal_archive(w, 20, 1 << 30), 0);
	int moved = count_files(arch);
	CHECK(moved >= 1 && moved < nfiles);
	struct seen a = { 0 };
	CHECK_EQ_INT(t4dx_wal_read_all(e.wal, true, collect, &a), 0);
	CHECK(seen_is(&a, 1, 41));
	seen_reset(&a);
	CHECK_EQ_INT(t4dx_wal_read_all(e.wal, false, collect, &a), 0);
	CHECK(!a.bad && a.n > 0 && a.lsn[0] > 1 && a.lsn[0] <= 21 &&
	      a.lsn[a.n - 1] == 41);
	CHECK_EQ_INT(t4dx_wal_archive(w, 40, 1 << 30), 0);
	/* everything up to 40; the open file 41 stays */
	CHECK_EQ_INT(count_files(e.wal), 1);
	CHECK(log_size(p41) > 0);
	CHECK_EQ_INT(count_files(arch), nfiles);
	t4dx_wal_get_stats(w, &st);
	CHECK_EQ_INT(st.archive_bytes, dir_bytes(arch));
	CHECK_EQ_INT(st.bytes, log_size(p41));
	seen_reset(&a);
	CHECK_EQ_INT(t4dx_wal_read_all(e.wal, true, collect, &a), 0);
	CHECK(seen_is(&a, 1, 41));
	seen_reset(&a);
	CHECK_EQ_INT(t4dx_wal_read_all(e.wal, false, collect, &a), 0);
	CHECK(seen_is(&a, 41, 41));

	/* budget: the oldest archived files go first */
	char newest[PATH_MAX];
	uint64_t newest_first = 0;
	{
		DIR *d = opendir(arch);
		struct dirent *de;
		while ((de = readdir(d))) {
			uint64_t f = strtoull(de->d_name, NULL, 10);
			if (strstr(de->d_name, ".jsonl") && f > newest_first)
				newest_first = f;
		}
		closedir(d);
	}
	walfile(newest, sizeof(newest), arch, newest_first);
	long long nb = log_size(newest);
	CHECK_EQ_INT(t4dx_wal_archive(w, 0, (uint64_t)nb), 0);
	CHECK_EQ_INT(count_files(arch), 1);
	CHECK_EQ_INT(log_size(newest), nb);
	t4dx_wal_get_stats(w, &st);
	CHECK_EQ_INT(st.archive_bytes, nb);
	CHECK_EQ_INT(t4dx_wal_archive(w, 0, 0), 0);
	CHECK_EQ_INT(count_files(arch), 0);
	t4dx_wal_close(w);

	/* reopen with the flushed LSN: only 41 is live */
	struct t4dx_wal_report rep;
	w = open_wal(&e, 40, 2000, &s, &rep);
	CHECK(seen_is(&s, 41, 41));
	CHECK_EQ_INT(rep.files, 1);
	CHECK_EQ_INT(t4dx_wal_sync(w, add(w)), 0);     /* 42, into 41 */
	/* the file open for appending is never archived */
	CHECK_EQ_INT(t4dx_wal_archive(w, 42, 1 << 30), 0);
	CHECK_EQ_INT(count_files(e.wal), 1);
	CHECK_EQ_INT(count_files(arch), 0);
	/* rotate then archive everything: the log dir empties, LSNs go on */
	CHECK_EQ_INT(t4dx_wal_rotate(w, &last), 0);
	CHECK_EQ_INT(last, 42);
	CHECK_EQ_INT(t4dx_wal_archive(w, 42, 1 << 30), 0);
	CHECK_EQ_INT(count_files(e.wal), 0);
	t4dx_wal_close(w);
	w = open_wal(&e, 42, 2000, &s, &rep);
	CHECK_EQ_INT(s.n, 0);
	CHECK_EQ_INT(add(w), 43);
	t4dx_wal_close(w);
	w = open_wal(&e, 42, 2000, &s, &rep);
	CHECK(seen_is(&s, 43, 43));
	t4dx_wal_close(w);
	free(a.lsn);
	unit_rm_rf(e.base);
	free(s.lsn);
}

static void test_quarantine(void)
{
	struct env e;
	struct seen s = { 0 };
	struct t4dx_wal_report rep;
	char p1[PATH_MAX], p100[PATH_MAX], p6[PATH_MAX], q[PATH_MAX * 2];
	size_t len;

	/* a later file whose first record is not its name is set aside
	 * whole, and its LSNs are never given out again */
	env_new(&e, "wal-q");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, NULL);
	add_n(w, 5);
	t4dx_wal_close(w);
	craft_file(e.wal, 100, 101, 103);
	walfile(p100, sizeof(p100), e.wal, 100);
	unsigned char *orig = read_whole(p100, &len);
	CHECK_EQ_INT(t4dx_wal_read_all(e.wal, false, collect, &s), 0);
	CHECK(seen_is(&s, 1, 5));
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 5));
	CHECK_EQ_INT(rep.files, 1);
	CHECK_EQ_INT(rep.files_quarantined, 1);
	CHECK_EQ_INT(rep.quarantined_lsn, 103);
	CHECK(log_size(p100) < 0);
	snprintf(q, sizeof(q), "%s/wal-%020d.jsonl", e.q, 100);
	size_t qlen;
	unsigned char *moved = read_whole(q, &qlen);
	CHECK(qlen == len && !memcmp(moved, orig, len));   /* kept whole */
	free(moved);
	CHECK_EQ_INT(t4dx_wal_last_lsn(w), 103);
	t4dx_wal_close(w);
	/* the same name again gets a new quarantine name */
	write_whole(p100, orig, len);
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 5));
	t4dx_wal_close(w);
	snprintf(q, sizeof(q), "%s/wal-%020d.jsonl.1", e.q, 100);
	CHECK_EQ_INT(log_size(q), (long long)len);
	free(orig);
	unit_rm_rf(e.base);

	/* damage in file 1: file 6 no longer continues it */
	env_new(&e, "wal-q2");
	REQUIRE(mkdir(e.wal, 0755) == 0);
	craft_file(e.wal, 1, 1, 5);
	craft_file(e.wal, 6, 6, 8);
	walfile(p1, sizeof(p1), e.wal, 1);
	walfile(p6, sizeof(p6), e.wal, 6);
	unsigned char *f1 = read_whole(p1, &len);
	unsigned char *r3 = f1;
	for (int i = 0; i < 2; i++)
		r3 = (unsigned char *)memchr(r3, '\n',
					     len - (size_t)(r3 - f1)) + 1;
	r3[10] ^= 1;                    /* record 3 */
	write_whole(p1, f1, len);
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 2));
	CHECK_EQ_INT(rep.bytes_dropped, len - (size_t)(r3 - f1));
	CHECK_EQ_INT(log_size(p1), r3 - f1);
	CHECK(log_size(p6) < 0);
	snprintf(q, sizeof(q), "%s/wal-%020d.jsonl", e.q, 6);
	CHECK(log_size(q) > 0);
	/* 6..8 are in the quarantine: not given out again */
	CHECK_EQ_INT(rep.gaps, 0);
	CHECK_EQ_INT(add(w), 9);
	t4dx_wal_close(w);
	free(f1);
	unit_rm_rf(e.base);

	/* a file whose first record is not its name is set aside whole */
	env_new(&e, "wal-q3");
	REQUIRE(mkdir(e.wal, 0755) == 0);
	craft_file(e.wal, 1, 1, 5);
	craft_file(e.wal, 6, 7, 9);
	walfile(p6, sizeof(p6), e.wal, 6);
	long long l6 = log_size(p6);
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 5));
	CHECK_EQ_INT(rep.bytes_dropped, 0);
	CHECK(log_size(p6) < 0);
	snprintf(q, sizeof(q), "%s/wal-%020d.jsonl", e.q, 6);
	CHECK_EQ_INT(log_size(q), l6);
	t4dx_wal_close(w);
	unit_rm_rf(e.base);

	/* an LSN that does not follow within a file ends the file there */
	env_new(&e, "wal-q5");
	REQUIRE(mkdir(e.wal, 0755) == 0);
	craft_file(e.wal, 1, 1, 3);
	craft_file(e.wal, 4, 5, 6);     /* 5, 6: valid lines, wrong place */
	walfile(p1, sizeof(p1), e.wal, 1);
	walfile(p6, sizeof(p6), e.wal, 4);
	{
		size_t l1, l2;
		unsigned char *a = read_whole(p1, &l1);
		unsigned char *b = read_whole(p6, &l2);
		a = realloc(a, l1 + l2);
		memcpy(a + l1, b, l2);
		write_whole(p1, a, l1 + l2);
		unlink(p6);
		w = open_wal(&e, 0, 0, &s, &rep);
		CHECK(seen_is(&s, 1, 3));
		CHECK_EQ_INT(rep.bytes_dropped, l2);
		CHECK_EQ_INT(log_size(p1), l1);
		CHECK_EQ_INT(add(w), 4);
		t4dx_wal_close(w);
		free(a);
		free(b);
	}
	unit_rm_rf(e.base);

	/* a gap that segments cover (from_lsn) is not a break */
	env_new(&e, "wal-q4");
	REQUIRE(mkdir(e.wal, 0755) == 0);
	craft_file(e.wal, 1, 1, 5);
	craft_file(e.wal, 8, 8, 9);
	w = open_wal(&e, 7, 0, &s, &rep);
	CHECK(seen_is(&s, 8, 9));
	CHECK_EQ_INT(rep.skipped, 0);   /* file 1: covered, not read */
	CHECK_EQ_INT(rep.files_covered, 1);
	CHECK_EQ_INT(count_files(e.wal), 2);
	CHECK_EQ_INT(add(w), 10);
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

/* A file missing in the middle of the live log (removed by hand): the
 * files after the hole are valid and were acknowledged, so they are
 * replayed, the hole is reported exactly, nothing is quarantined and new
 * LSNs follow the highest found.  read_all reads the same records and
 * names the same hole.  (Found by review: the later files were moved to
 * the quarantine without a word, and their LSNs given out again.) */
static void test_hole(void)
{
	struct env e;
	struct seen s = { 0 };
	struct t4dx_wal_report rep;
	struct t4dx_wal_damage dmg;
	char path[PATH_MAX];

	env_new(&e, "wal-hole");
	struct t4dx_wal *w = open_wal(&e, 0, 300, &s, NULL);
	for (int i = 0; i < 40; i++)
		REQUIRE(t4dx_wal_sync(w, add(w)) == 0);
	t4dx_wal_close(w);
	/* find a file in the middle and remove it */
	uint64_t names[64];
	int n = 0;
	for (uint64_t l = 1; l <= 40 && n < 64; l++) {
		walfile(path, sizeof(path), e.wal, l);
		if (file_size(path) >= 0)
			names[n++] = l;
	}
	REQUIRE(n >= 4);
	uint64_t lo = names[n / 2], hi = names[n / 2 + 1] - 1;
	walfile(path, sizeof(path), e.wal, lo);
	REQUIRE(unlink(path) == 0);

	seen_reset(&s);
	CHECK_EQ_INT(t4dx_wal_read_all_damage(e.wal, false, collect, &s,
					      &dmg), 0);
	CHECK_EQ_INT(s.n, 40 - (hi - lo + 1));
	CHECK(!*dmg.path);
	CHECK_EQ_INT(dmg.gap_from, lo);
	CHECK_EQ_INT(dmg.gap_to, hi);
	CHECK_EQ_INT(dmg.gap_records, hi - lo + 1);

	w = open_wal(&e, 0, 300, &s, &rep);
	CHECK(s.n == 40 - (hi - lo + 1) && !s.bad);
	CHECK(s.n && s.lsn[s.n - 1] == 40);
	CHECK_EQ_INT(rep.gaps, 1);
	CHECK_EQ_INT(rep.gap_from, lo);
	CHECK_EQ_INT(rep.gap_to, hi);
	CHECK_EQ_INT(rep.hole[0].from, lo);
	CHECK_EQ_INT(rep.hole[0].to, hi);
	CHECK_EQ_INT(rep.gap_records, hi - lo + 1);
	CHECK_EQ_INT(rep.files_quarantined, 0);
	CHECK_EQ_INT(rep.bytes_dropped, 0);
	CHECK_EQ_INT(count_files(e.q), 0);
	CHECK_EQ_INT(add(w), 41);
	REQUIRE(t4dx_wal_sync(w, 41) == 0);
	t4dx_wal_close(w);

	/* the next start finds the same hole and nothing else */
	w = open_wal(&e, 0, 300, &s, &rep);
	CHECK(s.n == 41 - (hi - lo + 1) && s.lsn[s.n - 1] == 41);
	CHECK_EQ_INT(rep.gaps, 1);
	CHECK_EQ_INT(rep.gap_from, lo);
	CHECK_EQ_INT(count_files(e.q), 0);
	t4dx_wal_close(w);

	/* a hole the segments cover (from_lsn) is none */
	w = open_wal(&e, hi, 300, &s, &rep);
	CHECK_EQ_INT(rep.gaps, 0);
	CHECK(seen_is(&s, hi + 1, 41));
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

static bool fake_gone;
static int moved_linked(int fd, const char *path)
{
	return fake_gone ? ESTALE : 0;
}

/* t4dx_wal_reset always begins a new file: if the file being appended
 * to is in the directory again (wal/ moved away and back between the
 * failed group and the reset), the records after upto must not follow
 * its last record, which is before upto.  (Found by review: they did, an
 * LSN break inside the file, and the next start cut them off.) */
static void test_reset_new_file(void)
{
	struct env e;
	struct seen s = { 0 };
	struct t4dx_wal_report rep;
	env_new(&e, "wal-reset");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, NULL);
	for (int i = 0; i < 3; i++)
		REQUIRE(t4dx_wal_sync(w, add(w)) == 0);
	t4dx_io.linked = moved_linked;
	fake_gone = true;               /* wal/ moved away */
	uint64_t a = add(w), b = add(w);
	CHECK_EQ_INT(t4dx_wal_sync(w, b), ESTALE);
	fake_gone = false;              /* and back */
	/* records up to b are saved elsewhere (a segment) */
	CHECK_EQ_INT(t4dx_wal_reset(w, b), 0);
	uint64_t c = add(w);
	CHECK_EQ_INT(c, b + 1);
	CHECK_EQ_INT(t4dx_wal_sync(w, c), 0);
	t4dx_io_reset();
	t4dx_wal_close(w);
	(void)a;
	w = open_wal(&e, b, 0, &s, &rep);
	CHECK(seen_is(&s, c, c));
	CHECK_EQ_INT(rep.bytes_dropped, 0);
	CHECK_EQ_INT(rep.files_quarantined, 0);
	CHECK_EQ_INT(rep.gaps, 0);
	CHECK_EQ_INT(count_files(e.q), 0);
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

static size_t max_pread;
static ssize_t (*inner_pread)(int, void *, size_t, off_t);
static ssize_t measuring_pread(int fd, void *p, size_t n, off_t off)
{
	if (n > max_pread)
		max_pread = n;
	return inner_pread(fd, p, n, off);
}

/* The damaged bytes are copied to the quarantine a piece at a time, not
 * read whole into memory (they may be most of a large file: found by
 * review, a start failed with ENOMEM). */
static void test_quarantine_large_tail(void)
{
	struct env e;
	struct seen s = { 0 };
	struct t4dx_wal_report rep;
	char path[PATH_MAX], q[PATH_MAX * 2];
	env_new(&e, "wal-qbig");
	REQUIRE(mkdir(e.wal, 0755) == 0);
	craft_file(e.wal, 1, 1, 3);
	walfile(path, sizeof(path), e.wal, 1);
	long long good = file_size(path);
	/* 24 MiB of lines that are not records */
	FILE *f = fopen(path, "ab");
	REQUIRE(f);
	static char junk[4096];
	memset(junk, 'x', sizeof(junk));
	junk[sizeof(junk) - 1] = '\n';
	for (int i = 0; i < 6144; i++)
		REQUIRE(fwrite(junk, 1, sizeof(junk), f) == sizeof(junk));
	REQUIRE(fclose(f) == 0);
	inner_pread = t4dx_io.pread;
	t4dx_io.pread = measuring_pread;
	max_pread = 0;
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, &rep);
	t4dx_io_reset();
	CHECK(seen_is(&s, 1, 3));
	CHECK_EQ_INT(rep.bytes_dropped, 6144 * 4096);
	CHECK_EQ_INT(log_size(path), good);
	snprintf(q, sizeof(q), "%s/wal-%020d.jsonl.at-%lld", e.q, 1, good);
	CHECK_EQ_INT(file_size(q), 6144 * 4096);
	CHECK(max_pread <= (4u << 20));
	t4dx_wal_close(w);
	unit_rm_rf(e.base);
	free(s.lsn);
}

/* read_all changes nothing and stops quietly at damage. */
static void test_read_all_damage(void)
{
	struct env e;
	struct seen s = { 0 };
	size_t size, bounds[21];
	env_new(&e, "wal-ra");
	unsigned char *log = small_log(&e, &size, bounds);
	char path[PATH_MAX];
	walfile(path, sizeof(path), e.wal, 1);
	log[bounds[12] + 3] ^= 0x10;
	write_whole(path, log, size - 5);
	CHECK_EQ_INT(t4dx_wal_read_all(e.wal, true, collect, &s), 0);
	CHECK(seen_is(&s, 1, 12));
	CHECK_EQ_INT(log_size(path), (long long)(size - 5));
	free(log);
	unit_rm_rf(e.base);
	free(s.lsn);
}

/* The file being appended to carries padding ('\n' bytes) ahead of its
 * records, so that a group overwrites instead of growing the file; close
 * cuts it off, recovery takes it for the end of the file, and damage
 * after it is still damage. */
static void test_padding(void)
{
	struct env e;
	struct seen s = { 0 };
	struct t4dx_wal_report rep;
	char path[PATH_MAX];
	env_new(&e, "wal-pad");
	struct t4dx_wal *w = open_wal(&e, 0, 0, &s, NULL);
	add_n(w, 5);
	CHECK_EQ_INT(t4dx_wal_sync(w, 5), 0);
	walfile(path, sizeof(path), e.wal, 1);
	long long logged = log_size(path);
	CHECK(logged > 0 && file_size(path) > logged);
	size_t len;
	unsigned char *p = read_whole(path, &len);
	size_t nonl = 0;
	for (size_t i = (size_t)logged; i < len; i++)
		nonl += p[i] != '\n';
	CHECK_EQ_INT(nonl, 0);
	free(p);
	t4dx_wal_close(w);
	CHECK_EQ_INT(file_size(path), logged);         /* cut at close */

	/* a crash leaves the padding: a clean end, appending goes on */
	p = read_whole(path, &len);
	unsigned char *padded = malloc(len + 5000);
	REQUIRE(padded);
	memcpy(padded, p, len);
	memset(padded + len, '\n', 5000);
	write_whole(path, padded, len + 5000);
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 5));
	CHECK_EQ_INT(rep.bytes_dropped, 0);
	CHECK_EQ_INT(file_size(path), (long long)len + 5000);  /* untouched */
	CHECK_EQ_INT(add(w), 6);
	CHECK_EQ_INT(t4dx_wal_sync(w, 6), 0);
	t4dx_wal_close(w);
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 6));
	CHECK_EQ_INT(rep.bytes_dropped, 0);
	t4dx_wal_close(w);

	/* bytes that are not padding after it are damage: cut, counted */
	memcpy(padded + len + 100, "XYZ", 3);
	write_whole(path, padded, len + 5000);
	w = open_wal(&e, 0, 0, &s, &rep);
	CHECK(seen_is(&s, 1, 5));
	CHECK_EQ_INT(rep.bytes_dropped, 4);     /* XYZ and its '\n' */
	CHECK_EQ_INT(file_size(path), (long long)len);
	t4dx_wal_close(w);
	free(padded);
	free(p);
	unit_rm_rf(e.base);
	free(s.lsn);
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_linked_check);
	RUN(test_padding);
	RUN(test_lsn_rises);
	RUN(test_group_commit);
	RUN(test_waiters_get_error);
	RUN(test_cut_every_offset);
	RUN(test_flip_every_offset);
	RUN(test_write_failures);
	RUN(test_large_contents);
	RUN(test_truncate_failure);
	RUN(test_rotate_archive);
	RUN(test_quarantine);
	RUN(test_read_all_damage);
	RUN(test_hole);
	RUN(test_reset_new_file);
	RUN(test_quarantine_large_tail);
	UNIT_DONE();
}
