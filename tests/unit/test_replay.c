/* test_replay.c - the replay at open: log files the segments already
 * cover are not read (issue 10: a restart after a kill between a MANIFEST
 * and the archiving of its files read and parsed them all), damage in
 * them loses nothing, a file that straddles the flushed LSN is read, and
 * the archive keeps what a rebuild of a segment needs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lz4.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"
#include "rec.h"
#include "seg.h"
#include "t4dx.h"
#include "unit.h"
#include "vec.h"
#include "wal.h"
#include <zlib.h>

#define R T4DX_ROOT_INO
#define ITEM 8192               /* bytes of content per item */
#define NA 40                   /* items flushed to a segment */
#define NB 5                    /* items only the log holds */
#define MAXF 64                 /* log files a test looks at */

static void config(struct t4dx_config *c)
{
	t4dx_config_defaults(c);
	strcpy(c->vector.embedder, "off");      /* no records of its own */
	c->wal.max_file_bytes = 16384;          /* two items a file */
	c->wal.checkpoint_bytes = 1 << 30;      /* flushes only when asked */
}

static struct t4dx *open_db(const char *dir, const struct t4dx_config *cfg)
{
	struct t4dx *db = NULL;
	char msg[256];
	int rc = t4dx_open(dir, cfg, &db, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open %s: %s\n", dir, msg);
	REQUIRE(rc == 0);
	return db;
}

/* The content of item name: ITEM bytes that depend on the name. */
static void content_for(const char *name, char *out)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < ITEM; i++)
		out[i] = i % 64 < n ? name[i % 64] : (char)('a' + i % 23);
}

static int put_item(struct t4dx *db, const char *name)
{
	static char buf[ITEM];
	struct t4dx_entry e;
	memset(&e, 0, sizeof(e));
	content_for(name, buf);
	REQUIRE(t4dx_entry_set_key(&e, R, name, strlen(name)) == 0);
	e.mode = S_IFREG | 0644;
	e.importance = 0.5;
	e.content = t4dx_blob_from(buf, ITEM);
	e.size = ITEM;
	int rc = t4dx_put(db, &e, 0, NULL);
	t4dx_entry_clear(&e);
	return rc;
}

/* Does the store hold item name with its content? */
static bool has_item(struct t4dx *db, const char *name)
{
	static char want[ITEM];
	struct t4dx_entry e;
	if (t4dx_get(db, R, name, strlen(name), T4DX_GET_CONTENT, &e))
		return false;
	content_for(name, want);
	bool ok = e.size == ITEM && e.content &&
		  memcmp(e.content->data, want, ITEM) == 0;
	t4dx_entry_clear(&e);
	return ok;
}

/* How many of a0..a(NA-1) and b0..b(NB-1) the store holds whole. */
static int count_items(struct t4dx *db)
{
	char name[16];
	int n = 0;
	for (int i = 0; i < NA + NB; i++) {
		if (i < NA)
			snprintf(name, sizeof(name), "a%d", i);
		else
			snprintf(name, sizeof(name), "b%d", i - NA);
		n += has_item(db, name);
	}
	return n;
}

/* The first LSNs of the log files in dir, sorted (at most MAXF). */
static size_t list_logs(const char *dir, uint64_t *out)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	REQUIRE(d);
	struct dirent *de;
	while ((de = readdir(d)) && n < MAXF) {
		size_t len = strlen(de->d_name);
		if (len == 26 && !strcmp(de->d_name + 20, ".jsonl"))
			out[n++] = strtoull(de->d_name, NULL, 10);
	}
	closedir(d);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
			uint64_t t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static void log_path(char *out, size_t n, const char *dir, uint64_t first)
{
	snprintf(out, n, "%s/%020" PRIu64 ".jsonl", dir, first);
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) ? -1 : (long long)st.st_size;
}

/* Append the bytes of file from to file to. */
static void append_file(const char *to, const char *from)
{
	char buf[65536];
	FILE *in = fopen(from, "rb"), *out = fopen(to, "ab");
	REQUIRE(in && out);
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		REQUIRE(fwrite(buf, 1, n, out) == n);
	fclose(in);
	REQUIRE(fclose(out) == 0);
}

static uint64_t flushed_lsn(const char *dir)
{
	char path[PATH_MAX], buf[4096];
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	FILE *f = fopen(path, "r");
	REQUIRE(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strstr(buf, "\"flushed_lsn\":");
	REQUIRE(p);
	return strtoull(p + 14, NULL, 10);
}

/* A store as a daemon killed between a flush's MANIFEST and the archiving
 * of the log files it covers leaves it: a0.. flushed to a segment, their
 * log files back in wal/ (where the archive took them from), b0.. in the
 * log only, and no clean close.  Returns the flushed LSN; *covered and
 * *covered_bytes: the files put back and their bytes. */
static uint64_t make_store(const char *dir, size_t *covered,
			   long long *covered_bytes)
{
	struct t4dx_config cfg;
	config(&cfg);
	char name[16];
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct t4dx *db = open_db(dir, &cfg);
		for (int i = 0; i < NA; i++) {
			snprintf(name, sizeof(name), "a%d", i);
			if (put_item(db, name))
				_exit(2);
		}
		if (t4dx_flush(db))
			_exit(3);
		for (int i = 0; i < NB; i++) {
			snprintf(name, sizeof(name), "b%d", i);
			if (put_item(db, name))
				_exit(4);
		}
		_exit(0);       /* a crash: no close */
	}
	int ws;
	waitpid(pid, &ws, 0);
	REQUIRE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);

	char wal[PATH_MAX], arch[PATH_MAX], from[PATH_MAX + 32],
	     to[PATH_MAX + 32];
	uint64_t names[MAXF];
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	snprintf(arch, sizeof(arch), "%s/wal/archive", dir);
	size_t n = list_logs(arch, names);
	REQUIRE(n >= 4);
	*covered_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		log_path(from, sizeof(from), arch, names[i]);
		log_path(to, sizeof(to), wal, names[i]);
		*covered_bytes += file_size(from);
		REQUIRE(rename(from, to) == 0);
	}
	*covered = n;
	return flushed_lsn(dir);
}

/* The bytes of the live log files named after lsn. */
static long long live_bytes_after(const char *dir, uint64_t lsn)
{
	char wal[PATH_MAX], path[PATH_MAX + 32];
	uint64_t names[MAXF];
	long long total = 0;
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	size_t n = list_logs(wal, names);
	for (size_t i = 0; i < n; i++)
		if (names[i] > lsn) {
			log_path(path, sizeof(path), wal, names[i]);
			total += file_size(path);
		}
	return total;
}

/* The covered files are not read (the bytes read are those of the files
 * after the flushed LSN, which hold b0..; reading is the whole file and
 * its padding once more at most), the records after them are replayed,
 * and the files go to the archive. */
static void test_covered_not_read(void)
{
	const char *dir = unit_tmpdir("replay-covered");
	size_t covered;
	long long cbytes;
	uint64_t flushed = make_store(dir, &covered, &cbytes);
	long long after = live_bytes_after(dir, flushed);
	REQUIRE(after > 0 && cbytes > 2 * after);

	struct t4dx_config cfg;
	config(&cfg);
	struct t4dx *db = open_db(dir, &cfg);
	struct t4dx_stats st;
	t4dx_get_stats(db, &st);
	CHECK_EQ_INT(st.recovery.wal_files_covered, covered);
	CHECK(st.recovery.wal_bytes_read <= (uint64_t)(2 * after));
	CHECK(st.recovery.wal_bytes_read > 0);
	CHECK_EQ_INT(st.recovery.records_replayed, NB);
	CHECK_EQ_INT(st.recovery.bytes_dropped, 0);
	CHECK_EQ_INT(count_items(db), NA + NB);
	/* archived as the flush would have done */
	char wal[PATH_MAX], arch[PATH_MAX];
	uint64_t names[MAXF];
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	snprintf(arch, sizeof(arch), "%s/wal/archive", dir);
	CHECK_EQ_INT(list_logs(arch, names), covered);
	size_t n = list_logs(wal, names);
	for (size_t i = 0; i < n; i++)
		CHECK(names[i] > flushed);
	REQUIRE(t4dx_close(db) == 0);

	/* and again after a clean close */
	db = open_db(dir, &cfg);
	CHECK_EQ_INT(count_items(db), NA + NB);
	REQUIRE(t4dx_close(db) == 0);
	unit_rm_rf(dir);
}

struct found {
	int damage;
	char file[PATH_MAX];
};

static void on_finding(void *arg, bool damage, const char *file,
		       int64_t offset, const char *what)
{
	struct found *f = arg;
	(void)offset;
	(void)what;
	if (damage && !f->damage++)
		snprintf(f->file, sizeof(f->file), "%s", file);
}

/* Damage in covered files (a record whose bytes changed, a torn last
 * line, a file removed from the middle) costs nothing: the open neither
 * reads nor cuts them, reports no loss, and serves every item; the
 * damaged file goes to the archive as it is, where t4dx verify still
 * finds the damage. */
static void test_covered_damaged(void)
{
	const char *dir = unit_tmpdir("replay-damaged");
	size_t covered;
	long long cbytes;
	(void)make_store(dir, &covered, &cbytes);
	char wal[PATH_MAX], arch[PATH_MAX], path[PATH_MAX + 32];
	uint64_t names[MAXF];
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	snprintf(arch, sizeof(arch), "%s/wal/archive", dir);
	REQUIRE(list_logs(wal, names) == covered + 3 && covered >= 4);
	/* the second file: a byte of its first record's content */
	log_path(path, sizeof(path), wal, names[1]);
	long long size1 = file_size(path);
	int fd = open(path, O_WRONLY);
	REQUIRE(fd >= 0);
	REQUIRE(pwrite(fd, "#", 1, 600) == 1);
	close(fd);
	uint64_t damaged = names[1];
	/* the third: its last line torn */
	log_path(path, sizeof(path), wal, names[2]);
	REQUIRE(truncate(path, file_size(path) - 100) == 0);
	/* the fourth: gone */
	log_path(path, sizeof(path), wal, names[3]);
	REQUIRE(unlink(path) == 0);

	struct t4dx_config cfg;
	config(&cfg);
	struct t4dx *db = open_db(dir, &cfg);
	struct t4dx_stats st;
	t4dx_get_stats(db, &st);
	CHECK_EQ_INT(st.recovery.wal_files_covered, covered - 1);
	CHECK_EQ_INT(st.recovery.bytes_dropped, 0);
	CHECK_EQ_INT(st.recovery.wal_gap_from, 0);
	CHECK_EQ_INT(st.recovery.wal_files_quarantined, 0);
	CHECK_EQ_INT(st.recovery.records_replayed, NB);
	CHECK_EQ_INT(count_items(db), NA + NB);
	REQUIRE(t4dx_close(db) == 0);
	log_path(path, sizeof(path), arch, damaged);
	CHECK_EQ_INT(file_size(path), size1);

	struct t4dx_verify_report rep;
	struct found f = { 0 };
	char msg[256];
	CHECK_EQ_INT(t4dx_verify(dir, 0, on_finding, NULL, &f, &rep, msg,
				 sizeof(msg)), 0);
	CHECK(f.damage > 0);
	CHECK(strstr(f.file, "archive") != NULL);
	unit_rm_rf(dir);
}

/* A file whose records run past the flushed LSN is read, its records up
 * to it skipped and the others replayed: here the last covered file and
 * the first one after it made one (as a log without a rotation at the
 * flush would have). */
static void test_straddling_file(void)
{
	const char *dir = unit_tmpdir("replay-straddle");
	size_t covered;
	long long cbytes;
	uint64_t flushed = make_store(dir, &covered, &cbytes);
	char wal[PATH_MAX], path[PATH_MAX + 32], next[PATH_MAX + 32];
	uint64_t names[MAXF];
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	size_t n = list_logs(wal, names);
	REQUIRE(n >= covered + 2 && names[covered] == flushed + 1);
	log_path(path, sizeof(path), wal, names[covered - 1]);
	log_path(next, sizeof(next), wal, names[covered]);
	append_file(path, next);
	REQUIRE(unlink(next) == 0);

	struct t4dx_config cfg;
	config(&cfg);
	struct t4dx *db = open_db(dir, &cfg);
	struct t4dx_stats st;
	t4dx_get_stats(db, &st);
	CHECK_EQ_INT(st.recovery.wal_files_covered, covered - 1);
	CHECK_EQ_INT(st.recovery.records_replayed, NB);
	CHECK_EQ_INT(st.recovery.wal_gap_from, 0);
	CHECK_EQ_INT(count_items(db), NA + NB);
	REQUIRE(t4dx_close(db) == 0);
	unit_rm_rf(dir);
}

/* The covered files go to the archive, not away: a segment found damaged
 * at a later start is rebuilt from them. */
static void test_rebuild_after_archive(void)
{
	const char *dir = unit_tmpdir("replay-rebuild");
	size_t covered;
	long long cbytes;
	(void)make_store(dir, &covered, &cbytes);
	struct t4dx_config cfg;
	config(&cfg);
	struct t4dx *db = open_db(dir, &cfg);
	struct t4dx_stats st;
	t4dx_get_stats(db, &st);
	CHECK_EQ_INT(st.recovery.wal_files_covered, covered);
	REQUIRE(t4dx_close(db) == 0);

	/* the oldest segment holds a0..: a byte of its first block */
	char seg[PATH_MAX], path[PATH_MAX + 32];
	snprintf(seg, sizeof(seg), "%s/seg", dir);
	DIR *d = opendir(seg);
	REQUIRE(d);
	struct dirent *de;
	char first[64] = "";
	while ((de = readdir(d)))
		if (strlen(de->d_name) == 24 &&
		    !strcmp(de->d_name + 20, ".t4s") &&
		    (!*first || strcmp(de->d_name, first) < 0))
			snprintf(first, sizeof(first), "%s", de->d_name);
	closedir(d);
	REQUIRE(*first);
	snprintf(path, sizeof(path), "%s/%s", seg, first);
	int fd = open(path, O_RDWR);
	REQUIRE(fd >= 0);
	unsigned char c;
	REQUIRE(pread(fd, &c, 1, 200) == 1);
	c ^= 0x5a;
	REQUIRE(pwrite(fd, &c, 1, 200) == 1);
	close(fd);

	cfg.health.verify_at_start = true;
	db = open_db(dir, &cfg);
	t4dx_get_stats(db, &st);
	CHECK_EQ_INT(st.recovery.segments_quarantined, 1);
	CHECK_EQ_INT(st.recovery.rebuild_missing_before, 0);
	CHECK(st.recovery.items_rebuilt > 0);
	CHECK_EQ_INT(count_items(db), NA + NB);
	REQUIRE(t4dx_close(db) == 0);
	unit_rm_rf(dir);
}

/* Damage between megabytes of padding (a crash in the middle of a large
 * group leaves the padding written ahead of it): the bytes dropped run
 * from the first byte that is not '\n' to the '\n' after the last such
 * byte, however many reads of the file that spans. */
static void test_padding_span(void)
{
	const char *base = unit_tmpdir("replay-padding");
	char wal[PATH_MAX], q[PATH_MAX], path[PATH_MAX + 32];
	snprintf(wal, sizeof(wal), "%s/wal", base);
	snprintf(q, sizeof(q), "%s/quarantine", base);
	REQUIRE(mkdir(wal, 0700) == 0);
	const size_t pad1 = (3u << 20) + 7, pad2 = (5u << 20) + 3, pad3 = 999;
	struct t4dx_buf b = { 0 };
	struct t4dx_rec r = { .lsn = 1, .op = T4DX_OP_PROBE };
	REQUIRE(t4dx_rec_encode(&r, &b) == 0);
	size_t rec_len = b.len;
	const char *junk1 = "junk\n", *junk2 = "more junk\n";
	for (int part = 0; part < 5; part++) {
		const char *s = part == 1 ? junk1 : part == 3 ? junk2 : NULL;
		size_t n = part == 0 ? pad1 : part == 2 ? pad2 : pad3;
		if (s)
			REQUIRE(t4dx_buf_add(&b, s, strlen(s)) == 0);
		else
			for (size_t i = 0; i < n; i++)
				REQUIRE(t4dx_buf_add(&b, "\n", 1) == 0);
	}
	log_path(path, sizeof(path), wal, 1);
	FILE *f = fopen(path, "wb");
	REQUIRE(f && fwrite(b.p, 1, b.len, f) == b.len && fclose(f) == 0);

	struct t4dx_wal *w;
	struct t4dx_wal_report rep;
	REQUIRE(t4dx_wal_open(wal, q, 0, 1 << 26, NULL, NULL, &rep, &w) == 0);
	CHECK_EQ_INT(rep.bytes_dropped,
		     strlen(junk1) + pad2 + strlen(junk2));
	CHECK_EQ_INT(rep.last_lsn, 1);
	t4dx_wal_close(w);
	CHECK_EQ_INT(file_size(path), rec_len);
	t4dx_buf_free(&b);
	unit_rm_rf(base);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static int count_entry(void *arg, struct t4dx_entry *e)
{
	(*(int *)arg)++;
	t4dx_entry_clear(e);
	return 0;
}

/* A segment block whose CRCs all pass but whose record does not decode
 * (a vector value that is not finite, which no writer puts there: made
 * here by hand, the vector part decompressed, changed, compressed again,
 * its CRC and the index's and footer's CRCs made right) counts as a lost
 * block when the segment is salvaged, next to a block whose CRC fails;
 * it used to fail the salvage, and with it the open that rebuilds the
 * segment. */
static void test_salvage_undecodable(void)
{
	enum { N = 6, DIM = 64, CONTENT = 10000, NAN_BLOCK = 2, BAD_BLOCK = 4 };
	const char *base = unit_tmpdir("replay-salvage");
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/seg.t4s", base);
	struct t4dx_entry ents[N], *v[N];
	static char content[CONTENT];
	float x[DIM];
	memset(content, 'c', sizeof(content));
	for (int i = 0; i < N; i++) {
		char name[8];
		struct t4dx_entry *e = &ents[i];
		memset(e, 0, sizeof(*e));
		snprintf(name, sizeof(name), "e%d", i);
		REQUIRE(t4dx_entry_set_key(e, R, name, strlen(name)) == 0);
		e->mode = S_IFREG | 0644;
		e->lsn = (uint64_t)i + 1;
		e->ino = (uint64_t)i + 100;
		e->content = t4dx_blob_from(content, CONTENT);
		e->size = CONTENT;
		for (int j = 0; j < DIM; j++)
			x[j] = (float)sin(i * 7.0 + j * 1.3);
		e->vec_src = T4DX_VEC_HAND;
		e->vec = t4dx_vec_new(x, DIM);
		REQUIRE(e->vec);
		v[i] = e;
	}
	REQUIRE(t4dx_seg_write(path, v, N, 1, N) == 0);
	for (int i = 0; i < N; i++)
		t4dx_entry_clear(&ents[i]);

	size_t len;
	FILE *f = fopen(path, "rb");
	REQUIRE(f && fseek(f, 0, SEEK_END) == 0);
	len = (size_t)ftell(f);
	unsigned char *p = malloc(len);
	REQUIRE(p && fseek(f, 0, SEEK_SET) == 0 && fread(p, 1, len, f) == len);
	fclose(f);
	unsigned char *foot = p + len - 88;
	uint64_t ioff = get64(foot), ilen = get64(foot + 8);
	REQUIRE(get32(foot + 56) == N && get32(foot + 72) == 4);
	/* the index entries: 68 bytes and the two key names */
	unsigned char *ie[N], *q = p + ioff;
	for (int i = 0; i < N; i++) {
		ie[i] = q;
		uint16_t n1 = (uint16_t)(q[56] | q[57] << 8);
		uint16_t n2 = (uint16_t)(q[66 + n1] | q[67 + n1] << 8);
		q += 68 + n1 + n2;
	}
	REQUIRE(q == p + ioff + ilen);

	/* one vector value of block NAN_BLOCK becomes a NaN */
	unsigned char *b = ie[NAN_BLOCK];
	uint64_t off = get64(b);
	uint32_t clen = get32(b + 8), cclen = get32(b + 24);
	uint32_t vclen = get32(b + 36), vraw = get32(b + 40);
	REQUIRE(vclen > 0 && vraw == 4 * DIM);
	unsigned char *vp = p + off + clen + cclen;
	REQUIRE(get32(b + 44) == (uint32_t)crc32(0, vp, vclen));
	char raw[4 * DIM], comp[LZ4_COMPRESSBOUND(4 * DIM)];
	REQUIRE(LZ4_decompress_safe((const char *)vp, raw, (int)vclen,
				    (int)vraw) == (int)vraw);
	memcpy(raw + 8, "\x00\x00\xc0\x7f", 4);   /* a quiet NaN */
	int k = LZ4_compress_default(raw, comp, (int)vraw, (int)sizeof(comp));
	REQUIRE(k == (int)vclen);       /* incompressible: as long */
	memcpy(vp, comp, vclen);
	put32(b + 44, (uint32_t)crc32(0, vp, vclen));
	/* and block BAD_BLOCK's meta part is damaged (its CRC fails) */
	p[get64(ie[BAD_BLOCK]) + 3] ^= 0x40;
	put32(foot + 60, (uint32_t)crc32(0, p + ioff, (uInt)ilen));
	put32(foot + 76, (uint32_t)crc32(0, foot, 76));
	f = fopen(path, "wb");
	REQUIRE(f && fwrite(p, 1, len, f) == len && fclose(f) == 0);
	free(p);

	struct t4dx_seg *s;
	REQUIRE(t4dx_seg_open(path, 1, &s) == 0);
	CHECK(t4dx_seg_verify(s) != 0);         /* the bad block */
	int got = 0;
	size_t lost = 99;
	CHECK_EQ_INT(t4dx_seg_salvage(s, count_entry, &got, &lost), 0);
	CHECK_EQ_INT(lost, 2);
	CHECK_EQ_INT(got, N - 2);
	t4dx_seg_unref(s);
	unit_rm_rf(base);
}

int main(void)
{
	RUN(test_covered_not_read);
	RUN(test_covered_damaged);
	RUN(test_straddling_file);
	RUN(test_rebuild_after_archive);
	RUN(test_padding_span);
	RUN(test_salvage_undecodable);
	UNIT_DONE();
}
