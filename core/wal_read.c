/*
 * wal_read.c - reading the log: records, holes and damage in a file, and
 * t4dx_wal_read_all and its variants, which read a whole log (archive
 * included) without changing it.  What is valid is described in wal.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wal_int.h"

static int read_more(int fd, unsigned char *p, size_t len, uint64_t off,
		     size_t *got)
{
	for (;;) {
		ssize_t n = t4dx_io.pread(fd, p, len, (off_t)off);
		if (n >= 0) {
			*got = (size_t)n;
			return 0;
		}
		if (errno != EINTR)
			return errno ? errno : EIO;
	}
}

/* Records from..to are missing (a file was removed); reading goes on. */
static void note_hole(struct replay *rp, uint64_t from, uint64_t to)
{
	struct t4dx_wal_report *rep = &rp->rep;
	if (rep->gaps < T4DX_WAL_HOLES) {
		rep->hole[rep->gaps].from = from;
		rep->hole[rep->gaps].to = to;
	}
	if (!rep->gaps)
		rep->gap_from = from;
	rep->gap_to = to;
	rep->gap_records += to - from + 1;
	rep->gaps++;
}

/* One decoded line: check the sequence and hand it on.  Returns 0, STOP
 * if the file ends here (damage), or an error. */
static int take_record(struct replay *rp, struct file_result *fr,
		       uint64_t name, struct t4dx_rec *r)
{
	if (rp->scan) {
		if (r->lsn > rp->last)
			rp->last = r->lsn;
		return 0;
	}
	if (fr->nrec == 0 ? r->lsn != name : r->lsn != fr->last + 1) {
		if (fr->nrec == 0)
			fr->foreign = true;
		fr->why = fr->nrec == 0 ? "the first record's LSN is not the "
					  "file's name"
					: "a record breaks the LSN sequence";
		return STOP;
	}
	fr->nrec++;
	fr->last = r->lsn;
	if (r->lsn <= rp->last)
		return 0;       /* a copy left in an abandoned file: seen */
	/* the log should go on where the segments end, and each file
	 * where the one before it ends: a hole is a removed file */
	uint64_t prev = rp->last > rp->floor ? rp->last : rp->floor;
	if ((rp->last || rp->lead_gap) && rp->floor < UINT64_MAX &&
	    r->lsn > prev + 1)
		note_hole(rp, prev + 1, r->lsn - 1);
	rp->last = r->lsn;
	rp->expect = r->lsn + 1;
	if (r->lsn <= rp->from) {
		rp->rep.skipped++;
		return 0;
	}
	int rc = rp->fn ? rp->fn(rp->arg, r) : 0;
	if (rc)
		return rc == STOP ? EIO : rc;
	rp->rep.records++;
	return 0;
}

/* Padding runs to tens of MiB after a crash in the middle of a large
 * group (pad_ahead pads the whole group first): it is compared a block
 * at a time, not a byte at a time. */
static const unsigned char newlines[4096] = {
	[0 ... 4095] = '\n'
};

/* The offset of the first byte of p[0, n) that is not '\n', n if none. */
static size_t first_data(const unsigned char *p, size_t n)
{
	size_t i = 0;
	while (n - i >= sizeof(newlines) &&
	       !memcmp(p + i, newlines, sizeof(newlines)))
		i += sizeof(newlines);
	while (i < n && p[i] == '\n')
		i++;
	return i;
}

/* One past the last byte of p[0, n) that is not '\n', 0 if none. */
static size_t end_of_data(const unsigned char *p, size_t n)
{
	while (n >= sizeof(newlines) &&
	       !memcmp(p + n - sizeof(newlines), newlines, sizeof(newlines)))
		n -= sizeof(newlines);
	while (n > 0 && p[n - 1] == '\n')
		n--;
	return n;
}

/* Where, in [from, to), the file's data (bytes other than '\n') begins
 * and ends: *end is after its last such byte and the '\n' that follows
 * it, both are from if there is none (padding only).  Uses the read
 * buffer. */
static int data_span(int fd, uint64_t from, uint64_t to, struct replay *rp,
		     uint64_t *begin, uint64_t *end)
{
	uint64_t start = from;
	*begin = *end = from;
	bool any = false;
	while (from < to) {
		size_t want = rp->cap;
		if (want > to - from)
			want = (size_t)(to - from);
		size_t got;
		int rc = read_more(fd, rp->p, want, from, &got);
		if (rc)
			return rc;
		rp->rep.bytes_read += got;
		if (got == 0)
			break;          /* shorter than fstat said: nothing */
		size_t last = end_of_data(rp->p, got);
		if (last) {             /* data in this piece */
			if (!any)
				*begin = from + first_data(rp->p, got);
			any = true;
			*end = from + last;
		}
		from += got;
	}
	/* with the '\n' that ends the last line of data */
	if (*end > start && *end < to)
		(*end)++;
	return 0;
}

int wal_read_file(struct replay *rp, int fd, uint64_t name,
		  struct file_result *fr)
{
	memset(fr, 0, sizeof(*fr));
	struct stat st;
	if (fstat(fd, &st))
		return errno;
	fr->size = (uint64_t)st.st_size;
	uint64_t base = 0;              /* file offset of rp->p[0] */
	size_t start = 0, scan = 0, have = 0;
	bool eof = false;
	int rc = 0;
	for (;;) {
		unsigned char *nl = have > scan ?
				    memchr(rp->p + scan, '\n', have - scan) :
				    NULL;
		if (!nl) {
			if (eof || have - start >= (size_t)INT_MAX) {
				/* a torn line (or one too long to be a
				 * record), if have > start */
				fr->why = "a line without its end (torn write)";
				break;
			}
			if (start) {
				memmove(rp->p, rp->p + start, have - start);
				base += start;
				have -= start;
				start = 0;
			}
			if (have == rp->cap) {
				size_t cap = rp->cap ? rp->cap * 2 : READ_CHUNK;
				unsigned char *p = realloc(rp->p, cap);
				if (!p)
					return ENOMEM;
				rp->p = p;
				rp->cap = cap;
			}
			size_t got;
			rc = read_more(fd, rp->p + have, rp->cap - have,
				       base + have, &got);
			if (rc)
				return rc;
			scan = have;
			have += got;
			rp->rep.bytes_read += got;
			eof = got == 0;
			if (rp->progress && got)
				rp->progress(rp->arg, got);
			continue;
		}
		size_t len = (size_t)(nl - (rp->p + start));
		struct t4dx_rec r;
		rc = t4dx_rec_decode((const char *)rp->p + start, len, &r);
		if (rc == ENOMEM)
			return rc;
		if (rc) {
			fr->why = rc == T4DX_ECORRUPT ? "a record fails its CRC "
				  "or does not parse" : t4dx_strerror(rc);
			break;
		}
		rc = take_record(rp, fr, name, &r);
		t4dx_entry_clear(&r.e);
		if (rc == STOP)
			break;
		if (rc)
			return rc;
		fr->valid_end = base + start + len + 1;
		start = scan = (size_t)(nl - rp->p) + 1;
	}
	fr->data_begin = fr->data_end = fr->valid_end;
	if (fr->valid_end < fr->size &&
	    (rc = data_span(fd, fr->valid_end, fr->size, rp, &fr->data_begin,
			    &fr->data_end)))
		return rc;
	fr->padded = fr->valid_end < fr->size &&
		     fr->data_end == fr->valid_end;
	fr->damaged = fr->data_end > fr->valid_end;
	return 0;
}

/* Does a file named n continue the log read so far? */
bool wal_continues(const struct replay *rp, uint64_t n)
{
	return rp->expect == 0 || n <= rp->expect ||
	       (rp->floor < UINT64_MAX && n <= rp->floor + 1);
}

/* After a file with no valid record: the next one must start at its
 * name at the earliest. */
void wal_note_empty(struct replay *rp, uint64_t n)
{
	if (n > rp->expect)
		rp->expect = n;
}

/* ---- t4dx_wal_read_all ----------------------------------------------- */

/* Does [from, to) of the file hold a line after its first that is a
 * valid record?  Then what stopped the reading is damage in the middle,
 * not the torn end of a write.  The first line is skipped a piece at a
 * time (a crash in the middle of a large content's record leaves a torn
 * line of up to 1.5 GiB); what follows it, if too large to read, is
 * assumed to. */
static bool any_record(int fd, uint64_t from, uint64_t to)
{
	if (to <= from)
		return false;
	if (to - from > (64u << 20)) {
		/* no line after the first: a torn line alone */
		enum { PIECE = 1 << 20 };
		char *piece = malloc(PIECE);
		if (!piece)
			return true;
		uint64_t at = from;
		bool nl = false;
		while (at < to && !nl) {
			size_t n = to - at < PIECE ? (size_t)(to - at) : PIECE;
			if (t4dx_io_pread_all(fd, piece, n, (off_t)at))
				break;
			char *e = memchr(piece, '\n', n);
			nl = e != NULL;
			at += e ? (size_t)(e - piece) : n;
		}
		free(piece);
		if (at < to && !nl)
			return true;    /* could not read it */
		if (!nl || at + 1 >= to)
			return false;
		/* the line ends at at: what follows as before, with a
		 * '\n' in front of it for the loop below */
		from = at;
		if (to - from > (64u << 20))
			return true;
	}
	size_t len = (size_t)(to - from);
	char *p = malloc(len);
	if (!p || t4dx_io_pread_all(fd, p, len, (off_t)from)) {
		free(p);
		return true;
	}
	bool found = false;
	char *nl = memchr(p, '\n', len);
	while (nl && !found) {
		char *line = nl + 1, *end = memchr(line, '\n',
						   len - (size_t)(line - p));
		size_t n = end ? (size_t)(end - line) : len - (size_t)(line - p);
		struct t4dx_rec r;
		if (n && t4dx_rec_decode(line, n, &r) == 0) {
			t4dx_entry_clear(&r.e);
			found = true;
		}
		nl = end;
	}
	free(p);
	return found;
}

uint64_t t4dx_wal_files_bytes(const char *dir, bool with_archive)
{
	char sub[PATH_MAX], path[PATH_MAX];
	uint64_t total = 0;
	if (strlen(dir) > DIR_MAX)
		return 0;
	for (int k = 0; k < (with_archive ? 2 : 1); k++) {
		uint64_t *names;
		size_t n;
		snprintf(sub, sizeof(sub), k ? "%s/archive" : "%s", dir);
		if (wal_list_dir(sub, &names, &n))
			continue;
		for (size_t i = 0; i < n; i++) {
			struct stat st;
			wal_file_path(path, sizeof(path), sub, names[i]);
			if (stat(path, &st) == 0)
				total += (uint64_t)st.st_size;
		}
		free(names);
	}
	return total;
}

int t4dx_wal_read_all(const char *dir, bool with_archive,
		      t4dx_wal_replay_fn fn, void *arg)
{
	return t4dx_wal_read_all_damage(dir, with_archive, fn, arg, NULL);
}

int t4dx_wal_read_all_damage(const char *dir, bool with_archive,
			     t4dx_wal_replay_fn fn, void *arg,
			     struct t4dx_wal_damage *dmg)
{
	return t4dx_wal_read_all_progress(dir, with_archive, 0, fn, NULL,
					  arg, dmg);
}

/* t4dx_wal_dump's reader: each record encoded again into line. */
struct wal_dump {
	t4dx_wal_line_fn fn;
	void *arg;
	struct t4dx_buf line;
};

static int wal_dump_one(void *arg, struct t4dx_rec *r)
{
	struct wal_dump *d = arg;
	d->line.len = 0;
	int rc = t4dx_rec_encode(r, &d->line);
	return rc ? rc : d->fn(d->arg, (const char *)d->line.p, d->line.len);
}

int t4dx_wal_dump(const char *wal_dir, bool with_archive,
		  t4dx_wal_line_fn fn, void *arg, struct t4dx_wal_damage *dmg)
{
	struct wal_dump d = { .fn = fn, .arg = arg };
	int rc = t4dx_wal_read_all_damage(wal_dir, with_archive, wal_dump_one,
					  &d, dmg);
	t4dx_buf_free(&d.line);
	return rc;
}

int t4dx_wal_read_all_progress(const char *dir, bool with_archive,
			       uint64_t floor, t4dx_wal_replay_fn fn,
			       void (*progress)(void *arg, uint64_t bytes),
			       void *arg, struct t4dx_wal_damage *dmg)
{
	char arch[PATH_MAX], path[PATH_MAX];
	if (dmg)
		memset(dmg, 0, sizeof(*dmg));
	uint64_t *live = NULL, *old = NULL;
	size_t nlive = 0, nold = 0;
	struct replay rp = { .floor = floor, .fn = fn, .arg = arg,
			     .progress = progress };
	if (strlen(dir) > DIR_MAX)
		return ENAMETOOLONG;
	snprintf(arch, sizeof(arch), "%s/archive", dir);
	int rc = wal_list_dir(dir, &live, &nlive);
	if (!rc && with_archive)
		rc = wal_list_dir(arch, &old, &nold);
	if (rc)
		goto out;
	/* Merge both sorted lists; a name in both is read once (live). */
	size_t i = 0, j = 0;
	while (i < nlive || j < nold) {
		const char *from;
		uint64_t n;
		if (j < nold && (i == nlive || old[j] < live[i])) {
			n = old[j++];
			from = arch;
		} else {
			n = live[i++];
			from = dir;
			if (j < nold && old[j] == n)
				j++;
		}
		wal_file_path(path, sizeof(path), from, n);
		if (!wal_continues(&rp, n) && rp.broken) {
			if (dmg && !*dmg->path) {
				snprintf(dmg->path, sizeof(dmg->path), "%s",
					 path);
				snprintf(dmg->what, sizeof(dmg->what),
					 "the file does not continue the log: "
					 "records %llu to %llu are missing",
					 (unsigned long long)rp.expect,
					 (unsigned long long)(n - 1));
				struct stat st;
				dmg->bytes = stat(path, &st) ? 0
					     : (uint64_t)st.st_size;
			}
			break;
		}
		int fd = t4dx_io.open(path, O_RDONLY, 0);
		if (fd < 0) {
			rc = errno;
			goto out;
		}
		struct file_result fr;
		rc = wal_read_file(&rp, fd, n, &fr);
		/* damage at the end of the last file, with no record after
		 * it, is what a crash in the middle of a group write leaves */
		bool torn = !rc && fr.damaged && i == nlive && j == nold &&
			    !any_record(fd, fr.data_begin, fr.data_end);
		t4dx_io.close(fd);
		if (rc)
			goto out;
		if (fr.foreign) {
			if (dmg && !*dmg->path) {
				snprintf(dmg->path, sizeof(dmg->path), "%s",
					 path);
				snprintf(dmg->what, sizeof(dmg->what), "%s",
					 fr.why);
				dmg->bytes = fr.size;
			}
			break;
		}
		if (fr.damaged && dmg && !*dmg->path) {
			snprintf(dmg->path, sizeof(dmg->path), "%s", path);
			snprintf(dmg->what, sizeof(dmg->what), "%s",
				 fr.why ? fr.why : "damaged");
			dmg->offset = fr.data_begin;
			dmg->bytes = fr.data_end - fr.data_begin;
			dmg->torn = torn;
		}
		if (fr.nrec == 0)
			wal_note_empty(&rp, n);
		rp.broken = fr.damaged;
	}
	if (dmg) {
		dmg->gap_from = rp.rep.gap_from;
		dmg->gap_to = rp.rep.gap_to;
		dmg->gap_records = rp.rep.gap_records;
	}
	/* the files after the one that stopped the reading */
	if (dmg && *dmg->path)
		while (i < nlive || j < nold) {
			if (j < nold && (i == nlive || old[j] < live[i])) {
				j++;
			} else {
				if (j < nold && old[j] == live[i])
					j++;
				i++;
			}
			dmg->files_skipped++;
		}
out:
	free(live);
	free(old);
	free(rp.p);
	return rc;
}
