/*
 * manifest.c - DATA_DIR/MANIFEST.
 *
 * The MANIFEST is one JSON object followed by a newline:
 *
 *   {"format":2,"next_seg_id":4,"flushed_lsn":20311,"next_ino":10042,
 *    "items":10025,
 *    "segments":[{"id":1,"min_lsn":1,"max_lsn":10017,"items":10010},
 *                {"id":3,"min_lsn":10018,"max_lsn":20311,"items":15}],
 *    "crc":123456789}
 *
 * format       2 (T4DX_MANIFEST_FORMAT): the store may hold what format 1
 *              readers cannot read, vectors (segments of version 4, WAL
 *              records with "vec_src", a "tried" mark), and they refuse
 *              it as an unknown format instead of taking it for damage.
 *              1 is read too; a read-write open rewrites it as 2 before
 *              it logs anything (eng_upgrade_manifest).  Anything else
 *              is refused (T4DX_EFORMAT).
 * segments     the live segments, oldest first; segment <id> is the file
 *              seg/<id>.t4s.  A file in seg/ not named here is not live
 *              (a flush or compaction that crashed before its MANIFEST was
 *              durable) and is ignored.
 * flushed_lsn  every WAL record with lsn <= flushed_lsn is reflected in the
 *              segments; recovery replays only the records after it.
 * next_ino     inode numbers below it have been handed out (the WAL records
 *              after flushed_lsn may raise it further).
 * items        live entries in the segments, as of flushed_lsn.
 * crc          CRC-32 (zlib) of the bytes before ,"crc" (as in the WAL).
 *
 * Update protocol (t4dx_io_write_durably): write MANIFEST.tmp, fsync it,
 * rename it over MANIFEST, fsync the directory.  A crash at any point
 * leaves either the old or the new MANIFEST, never a mix; a stale
 * MANIFEST.tmp is removed first.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <json-c/json.h>
#include <zlib.h>

#include "buf.h"
#include "io.h"
#include "manifest.h"
#include "t4dx.h"

#define MANIFEST_MAX (64u << 20)

void t4dx_manifest_free(struct t4dx_manifest *m)
{
	free(m->segs);
	m->segs = NULL;
	m->nsegs = 0;
}

static int get_u64(struct json_object *o, const char *key, uint64_t *out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return T4DX_ECORRUPT;
	int64_t x = json_object_get_int64(v);
	if (x < 0)
		return T4DX_ECORRUPT;
	*out = (uint64_t)x;
	return 0;
}

int t4dx_manifest_load(const char *dir, struct t4dx_manifest *m)
{
	char path[PATH_MAX];
	struct json_object *root = NULL;
	char *text = NULL;
	int rc = 0;
	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "%s/MANIFEST", dir);
	int fd = t4dx_io.open(path, O_RDONLY, 0);
	if (fd < 0)
		return errno == ENOENT ? T4DX_ENOTFOUND : errno;
	struct stat st;
	if (fstat(fd, &st)) {
		rc = errno;
		goto out;
	}
	if (st.st_size <= 0 || st.st_size > MANIFEST_MAX) {
		rc = T4DX_ECORRUPT;
		goto out;
	}
	size_t len = (size_t)st.st_size;
	text = malloc(len + 1);
	if (!text) {
		rc = ENOMEM;
		goto out;
	}
	rc = t4dx_io_pread_all(fd, text, len, 0);
	if (rc)
		goto out;
	text[len] = 0;
	while (len && text[len - 1] == '\n')
		text[--len] = 0;
	/* check the CRC over the bytes before ,"crc" */
	char *c = strstr(text, ",\"crc\":");
	if (!c) {
		rc = T4DX_ECORRUPT;
		goto out;
	}
	char *end;
	unsigned long want = strtoul(c + 7, &end, 10);
	uLong got = crc32(0L, (const Bytef *)text, (uInt)(c - text));
	if (strcmp(end, "}") || want != got) {
		rc = T4DX_ECORRUPT;
		goto out;
	}
	root = json_tokener_parse(text);
	if (!root || !json_object_is_type(root, json_type_object)) {
		rc = T4DX_ECORRUPT;
		goto out;
	}
	uint64_t format;
	if ((rc = get_u64(root, "format", &format)))
		goto out;
	if (format < 1 || format > T4DX_MANIFEST_FORMAT) {
		rc = T4DX_EFORMAT;
		goto out;
	}
	m->format = (uint32_t)format;
	if ((rc = get_u64(root, "next_seg_id", &m->next_seg_id)) ||
	    (rc = get_u64(root, "flushed_lsn", &m->flushed_lsn)) ||
	    (rc = get_u64(root, "next_ino", &m->next_ino)) ||
	    (rc = get_u64(root, "items", &m->items)))
		goto out;
	struct json_object *segs;
	if (!json_object_object_get_ex(root, "segments", &segs) ||
	    !json_object_is_type(segs, json_type_array)) {
		rc = T4DX_ECORRUPT;
		goto out;
	}
	size_t n = json_object_array_length(segs);
	m->segs = calloc(n ? n : 1, sizeof(*m->segs));
	if (!m->segs) {
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(segs, i);
		struct t4dx_manifest_seg *ms = &m->segs[i];
		if (!json_object_is_type(s, json_type_object) ||
		    (rc = get_u64(s, "id", &ms->id)) ||
		    (rc = get_u64(s, "min_lsn", &ms->min_lsn)) ||
		    (rc = get_u64(s, "max_lsn", &ms->max_lsn)) ||
		    (rc = get_u64(s, "items", &ms->items))) {
			rc = T4DX_ECORRUPT;
			goto out;
		}
		if (ms->id >= m->next_seg_id) {
			rc = T4DX_ECORRUPT;
			goto out;
		}
		m->nsegs++;
	}
out:
	if (rc)
		t4dx_manifest_free(m);
	json_object_put(root);
	free(text);
	t4dx_io.close(fd);
	return rc;
}

int t4dx_manifest_save(const char *dir, const struct t4dx_manifest *m,
		       bool *installed)
{
	*installed = false;
	struct t4dx_buf b = { 0 };
	int rc;

	rc = t4dx_buf_addf(&b, "{\"format\":%d,\"next_seg_id\":%llu,"
			   "\"flushed_lsn\":%llu,\"next_ino\":%llu,"
			   "\"items\":%llu,\"segments\":[",
			   T4DX_MANIFEST_FORMAT,
			   (unsigned long long)m->next_seg_id,
			   (unsigned long long)m->flushed_lsn,
			   (unsigned long long)m->next_ino,
			   (unsigned long long)m->items);
	for (size_t i = 0; !rc && i < m->nsegs; i++)
		rc = t4dx_buf_addf(&b, "%s{\"id\":%llu,\"min_lsn\":%llu,"
				   "\"max_lsn\":%llu,\"items\":%llu}",
				   i ? "," : "",
				   (unsigned long long)m->segs[i].id,
				   (unsigned long long)m->segs[i].min_lsn,
				   (unsigned long long)m->segs[i].max_lsn,
				   (unsigned long long)m->segs[i].items);
	if (!rc)
		rc = t4dx_buf_add(&b, "]", 1);
	if (!rc) {
		uLong crc = crc32(0L, b.p, (uInt)b.len);
		rc = t4dx_buf_addf(&b, ",\"crc\":%lu}\n", (unsigned long)crc);
	}
	if (!rc)
		rc = t4dx_io_write_durably(dir, "MANIFEST", b.p, b.len,
					   installed);
	t4dx_buf_free(&b);
	return rc;
}
