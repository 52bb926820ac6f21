/*
 * ctl.c - the control files of MOUNT/.ctl/.
 */
#include <errno.h>
#include <string.h>

#include "t4dxfs.h"
#include "ctl.h"

static int show_stats(struct t4dx_buf *out)
{
	struct t4dx_stats st;
	t4dx_get_stats(fs.db, &st);
	/* items/ itself is an entry of the engine; it is not an item */
	uint64_t items = st.items ? st.items - 1 : 0;
	int64_t up = (t4dx_now_ns() - fs.start_ns) / 1000000000;
	return t4dx_buf_addf(out,
		"{\"items\":%llu,\"memtable_items\":%llu,"
		"\"memtable_bytes\":%llu,\"segments\":%llu,"
		"\"segment_bytes\":%llu,\"wal_lsn\":%llu,\"wal_bytes\":%llu,"
		"\"archive_bytes\":%llu,\"wal_syncs\":%llu,"
		"\"wal_records\":%llu,\"uptime_s\":%lld,"
		"\"recovery\":{\"records_replayed\":%llu,"
		"\"bytes_dropped\":%llu,\"wal_files\":%llu,"
		"\"segments_quarantined\":%llu}}\n",
		(unsigned long long)items,
		(unsigned long long)st.memtable_items,
		(unsigned long long)st.memtable_bytes,
		(unsigned long long)st.segments,
		(unsigned long long)st.segment_bytes,
		(unsigned long long)st.wal_lsn,
		(unsigned long long)st.wal_bytes,
		(unsigned long long)st.archive_bytes,
		(unsigned long long)st.wal_syncs,
		(unsigned long long)st.wal_records, (long long)up,
		(unsigned long long)st.recovery.records_replayed,
		(unsigned long long)st.recovery.bytes_dropped,
		(unsigned long long)st.recovery.wal_files,
		(unsigned long long)st.recovery.segments_quarantined);
}

static const struct ctl_file files[] = {
	{ "stats", INO_CTL_FIRST, show_stats, NULL },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

const struct ctl_file *ctl_by_ino(unsigned long ino)
{
	for (size_t i = 0; i < NFILES; i++)
		if (files[i].ino == ino)
			return &files[i];
	return NULL;
}

const struct ctl_file *ctl_by_name(const char *name)
{
	for (size_t i = 0; i < NFILES; i++)
		if (!strcmp(files[i].name, name))
			return &files[i];
	return NULL;
}

const struct ctl_file *ctl_at(size_t i)
{
	return i < NFILES ? &files[i] : NULL;
}
