/*
 * tier.c - the size-tiered policy of the automatic compaction: which
 * adjacent segments, if any, should merge next.  A pure function of the
 * live segment list; flush.c asks it after a flush, compact.c and the
 * flusher before a run.
 */


#include "engine_int.h"

/* The automatic compaction (see eng_auto_pick) */
#define AUTO_RUN_SEGMENTS 8     /* more adjacent segments of a size: merge */

#define AUTO_RUN_RATIO 4        /* of a size: biggest <= 4 x smallest */

#define AUTO_PILE_SEGMENTS 24   /* more live segments: merge the cheapest */

/* The automatic compaction is size-tiered.  Flushes add small segments
 * at the new end of the list; merging every segment each time a few have
 * gathered would rewrite the big old ones again and again, so that a
 * long run of small flushes costs as many rewrites of the whole store.
 * Instead, more than AUTO_RUN_SEGMENTS adjacent segments whose sizes are
 * within AUTO_RUN_RATIO of each other merge into one, which takes their
 * place in age order.  That one is about as big as all of them, so it
 * joins a tier of bigger segments, which merges in its turn once enough
 * of them have gathered: every byte is rewritten about once per tier, a
 * logarithmic number of times, and a segment far bigger than the new
 * ones stays as it is until they have grown to its size.  The newest
 * qualifying run is taken (new segments are the small ones), as long as
 * its sizes allow (a run never mixes sizes further apart than the
 * ratio).  Should sizes alternate so that no such run forms, more than
 * AUTO_PILE_SEGMENTS live segments are a pile: then the adjacent
 * AUTO_RUN_SEGMENTS + 1 with the fewest bytes in all merge, whatever
 * their sizes.
 *
 * With segs[lo..hi) from eng_auto_pick, true if something should merge.
 * Lock held. */
bool eng_auto_pick(struct t4dx *db, size_t *lo, size_t *hi)
{
	size_t n = db->nsegs, want = AUTO_RUN_SEGMENTS + 1;
	if (n < want)
		return false;
	for (size_t j = n; j-- > 0;) {
		/* the longest run of similar sizes ending at j */
		uint64_t least = t4dx_seg_file_bytes(db->segs[j]), most = least;
		size_t i = j;
		while (i > 0) {
			uint64_t b = t4dx_seg_file_bytes(db->segs[i - 1]);
			uint64_t l = b < least ? b : least;
			uint64_t m = b > most ? b : most;
			if (m / AUTO_RUN_RATIO > l)
				break;
			least = l;
			most = m;
			i--;
		}
		if (j + 1 - i >= want) {
			if (lo) {
				*lo = i;
				*hi = j + 1;
			}
			return true;
		}
	}
	if (n <= AUTO_PILE_SEGMENTS)
		return false;
	size_t best = 0;
	uint64_t best_bytes = UINT64_MAX;
	for (size_t i = 0; i + want <= n; i++) {
		uint64_t sum = 0;
		for (size_t k = i; k < i + want; k++)
			sum += t4dx_seg_file_bytes(db->segs[k]);
		if (sum < best_bytes) {
			best_bytes = sum;
			best = i;
		}
	}
	if (lo) {
		*lo = best;
		*hi = best + want;
	}
	return true;
}
