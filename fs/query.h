/*
 * query.h - what search.c asks of query.c: a query name checked and run.
 */
#ifndef T4DXFS_QUERY_H
#define T4DXFS_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct t4dxfs;
struct t4dx_hit;

/* One computed answer (the hits own their paths). */
struct answer {
	struct t4dx_hit *hits;
	size_t n;
	uint32_t k;
	bool partial;
	uint64_t pending;               /* files closed before the search
	                                   whose vectors were not in yet */
};

/* Log a line about a query (stderr in the foreground, else syslog), at
 * most LOG_BURST a minute. */
void search_log(struct t4dxfs *fs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Is name a query that can be run?  0 or an errno, the reason logged. */
int query_check(struct t4dxfs *fs, const char *name);
/* Run the query name into *a (answer_free): 0 or an errno (the reason
 * of a bad name logged).  A query with nothing to be near (text without
 * a word, an item without a vector) is an empty answer. */
int query_run(struct t4dxfs *fs, const char *name, struct answer *a);
void answer_free(struct answer *a);

#endif
