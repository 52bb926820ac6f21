/*
 * busy.c - is the machine busy with writes?  Vector work waits if so.
 *
 * Vectors are work the writers do not wait for, yet on a machine whose
 * CPU the writers keep busy, any of it done meanwhile comes out of their
 * throughput, whatever its priority: 16 writers that never pause on two
 * cores left 26% of the time idle (waits for fdatasync and for FUSE),
 * and the builtin embedder's threads at nice 19 filling that time cost
 * them 16% of their files per second.  So while files are being written
 * (a put queued a key less than BUSY_WINDOW_MS ago: a busy CPU stretches
 * a lone writer's gaps between closes past the embedder's 20 ms) and less
 * than BUSY_SPARE_PCT of the CPU time was spare over the last sample
 * (BUSY_SAMPLE_MS or more), the embedder thread leaves its queue alone
 * and a flush leaves the vectors of its files to it (flush.c), each file
 * for at most vector.defer_s (0: never for a busy CPU).  A search does
 * not wait for the gate: it has the vectors it needs computed at once
 * (embedder.c, t4dx_embed_wait).
 *
 * Spare time is what /proc/stat counts as idle, iowait and nice: time
 * nobody wanted, time spent waiting for the disk, and time given to work
 * that asked to come last (the daemon's own vector threads run at nice
 * 19, so that the gate, once open, does not close on their account).
 * steal counts as busy: the machine had less than it seemed.  A machine
 * whose /proc/stat cannot be read is never busy (the gate is open, as it
 * was before there was one).  T4DX_TEST_BUSY_SPARE_PCT sets the spare
 * share instead, T4DX_TEST_PROC_STAT the file read (tests).
 *
 * Nobody waits for a sample: a flush's threads at nice 19 take one too,
 * and a busy CPU can hold such a thread back for long in the middle of
 * it, while the embedder thread looks at the gate holding the lock every
 * put takes.  So the one who finds the sample old takes it if no one
 * else is (a try-lock), and the others go by the last one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

#define BUSY_SPARE_PCT 50       /* below this share spare: busy */
#define BUSY_SAMPLE_MS 100      /* /proc/stat read at most this often */
#define BUSY_QUIET_MS 20        /* writes paused this long: paused */
#define BUSY_WINDOW_MS 500      /* on a busy CPU: still being written */
#define MS 1000000LL

static int spare_pct(struct eng_busy *b, int64_t now);

void eng_busy_init(struct t4dx *db)
{
	struct eng_busy *b = &db->busy;
	pthread_mutex_init(&b->mu, NULL);
	atomic_init(&b->last_put, INT64_MIN / 2);
	atomic_init(&b->at, 0);
	atomic_init(&b->pct, -1);
	b->have = false;
	const char *pct = getenv("T4DX_TEST_BUSY_SPARE_PCT");
	b->fixed = pct ? atoi(pct) : -1;
	const char *path = getenv("T4DX_TEST_PROC_STAT");
	b->path = path ? strdup(path) : NULL;   /* NULL: /proc/stat */
	/* tests: how long writes must pause to count as paused */
	const char *ms = getenv("T4DX_TEST_EMBED_QUIET_MS");
	b->quiet = (ms ? atoi(ms) : BUSY_QUIET_MS) * MS;
	/* the first sample, so that the first look at the gate has a
	 * share to go by (else the gate would be open for BUSY_SAMPLE_MS) */
	spare_pct(b, eng_mono_ns());
}

void eng_busy_destroy(struct t4dx *db)
{
	pthread_mutex_destroy(&db->busy.mu);
	free(db->busy.path);
	db->busy.path = NULL;
}

void eng_busy_put(struct t4dx *db, int64_t now)
{
	atomic_store(&db->busy.last_put, now);
}

int eng_cpu_fields(const char *line, uint64_t v[BUSY_FIELDS])
{
	/* "cpu  user nice system idle iowait irq softirq steal ..." */
	if (strncmp(line, "cpu ", 4))
		return EINVAL;
	const char *p = line + 4;
	int n = 0;
	memset(v, 0, sizeof(*v) * BUSY_FIELDS);
	for (; n < BUSY_FIELDS; n++) {
		char *end;
		while (*p == ' ')
			p++;
		if (*p < '0' || *p > '9')
			break;
		errno = 0;
		unsigned long long x = strtoull(p, &end, 10);
		if (errno || end == p)
			return EINVAL;
		v[n] = x;
		p = end;
	}
	if (n < 4)      /* user nice system idle, at least */
		return EINVAL;
	return 0;
}

int eng_cpu_counters(const char *line, uint64_t *spare, uint64_t *total)
{
	uint64_t v[BUSY_FIELDS];
	int rc = eng_cpu_fields(line, v);
	if (rc)
		return rc;
	*spare = v[1] + v[3] + v[4];
	*total = 0;
	for (int i = 0; i < BUSY_FIELDS; i++)
		*total += v[i];
	return 0;
}

/* The spare share between two readings, each counter on its own: one
 * that went back counts as no time (iowait may go back, proc(5); a
 * sample that said nothing for it would open the gate on a busy CPU). */
static int spare_pct_of(const uint64_t *v0, const uint64_t *v1)
{
	uint64_t spare = 0, total = 0;
	for (int i = 0; i < BUSY_FIELDS; i++) {
		uint64_t d = v1[i] > v0[i] ? v1[i] - v0[i] : 0;
		total += d;
		if (i == 1 || i == 3 || i == 4)
			spare += d;
	}
	return eng_cpu_spare_pct(0, 0, spare, total);
}

int eng_cpu_spare_pct(uint64_t spare0, uint64_t total0, uint64_t spare1,
		       uint64_t total1)
{
	/* counters that went back (a wrapped or reset counter, a CPU
	 * taken away) say nothing */
	if (total1 <= total0 || spare1 < spare0 ||
	    spare1 - spare0 > total1 - total0)
		return -1;
	return (int)((spare1 - spare0) * 100 / (total1 - total0));
}

/* The share of CPU time spare over the last sample, -1 if unknown; a
 * new sample if the last is BUSY_SAMPLE_MS old (mu held). */
static int spare_pct(struct eng_busy *b, int64_t now)
{
	int64_t at = atomic_load(&b->at);
	if (at && now - at < BUSY_SAMPLE_MS * MS)
		return atomic_load(&b->pct);
	char line[256];
	uint64_t v[BUSY_FIELDS];
	FILE *f = fopen(b->path ? b->path : "/proc/stat", "re");
	bool ok = f && fgets(line, sizeof(line), f) &&
		  eng_cpu_fields(line, v) == 0;
	if (f)
		fclose(f);
	int pct = -1;
	if (ok && b->have)      /* against the last reading that worked */
		pct = spare_pct_of(b->v, v);
	if (ok) {
		memcpy(b->v, v, sizeof(v));
		b->have = true;
	}
	atomic_store(&b->pct, pct);
	atomic_store(&b->at, now);
	return pct;
}

bool eng_busy_writing(struct t4dx *db, int64_t now)
{
	/* a busy CPU stretches a writer's own gaps between closes past
	 * the quiet time (a python loop beside a loop a core: 37 gaps of
	 * more than 20 ms in 4 s, the longest 109 ms) */
	int64_t window = db->busy.quiet > BUSY_WINDOW_MS * MS
				 ? db->busy.quiet : BUSY_WINDOW_MS * MS;
	return now - atomic_load(&db->busy.last_put) < window;
}

bool eng_busy_cpu(struct t4dx *db, int64_t now)
{
	struct eng_busy *b = &db->busy;
	if (db->cfg.vector.defer_s <= 0)
		return false;
	if (b->fixed >= 0)
		return b->fixed < BUSY_SPARE_PCT;
	int pct;
	if (pthread_mutex_trylock(&b->mu) == 0) {
		pct = spare_pct(b, now);
		pthread_mutex_unlock(&b->mu);
	} else {
		pct = atomic_load(&b->pct);     /* another takes it */
	}
	return pct >= 0 && pct < BUSY_SPARE_PCT;
}

bool eng_busy(struct t4dx *db)
{
	int64_t now = eng_mono_ns();
	return eng_busy_writing(db, now) && eng_busy_cpu(db, now);
}
