/*
 * wal_queue.c - the queue of encoded records that wait for a group
 * commit (struct wal_queue in wal_int.h): its large contents held by
 * reference, moving records between queues, and the lines it holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wal_int.h"

/* Bytes of the queue's lines, contents included. */
uint64_t wal_queue_bytes(const struct wal_queue *q)
{
	return q->buf.len + q->ext_bytes;
}

/* Room for more entries in q->ext.  0 or ENOMEM. */
int wal_ext_reserve(struct wal_queue *q, size_t more)
{
	if (q->next + more <= q->ecap)
		return 0;
	size_t cap = q->ecap ? 2 * q->ecap : 4;
	while (cap < q->next + more)
		cap *= 2;
	struct t4dx_rec_ext *x = realloc(q->ext, cap * sizeof(*x));
	if (!x)
		return ENOMEM;
	q->ext = x;
	q->ecap = cap;
	return 0;
}

/* Drop the first k contents (their records are gone) and move the
 * others back by the shift bytes cut from the front of buf. */
void wal_ext_drop_front(struct wal_queue *q, size_t k, size_t shift)
{
	for (size_t i = 0; i < k; i++) {
		q->ext_bytes -= q->ext[i].enc_len;
		t4dx_blob_unref(q->ext[i].blob);
	}
	if (q->next > k)        /* ext may be NULL (none ever queued) */
		memmove(q->ext, q->ext + k, (q->next - k) * sizeof(*q->ext));
	q->next -= k;
	for (size_t i = 0; i < q->next; i++)
		q->ext[i].at -= shift;
}

/* How many contents go into the first len bytes of buf. */
size_t wal_ext_within(const struct wal_queue *q, size_t len)
{
	size_t k = 0;
	while (k < q->next && q->ext[k].at < len)
		k++;
	return k;
}

void wal_queue_clear(struct wal_queue *q)
{
	wal_ext_drop_front(q, q->next, 0);
	q->buf.len = 0;
	q->lo = q->hi = q->n = 0;
	if (q->buf.cap > (4u << 20))    /* do not keep a huge buffer around */
		t4dx_buf_free(&q->buf);
	if (q->ecap > 64) {
		free(q->ext);
		q->ext = NULL;
		q->ecap = 0;
	}
}

void wal_queue_free(struct wal_queue *q)
{
	wal_queue_clear(q);
	t4dx_buf_free(&q->buf);
	free(q->ext);
}

/* Move the records of src to the end of dst (which holds the records
 * just before them), leaving src empty.  0 or ENOMEM (nothing moved). */
int wal_queue_move(struct wal_queue *dst, struct wal_queue *src)
{
	size_t base = dst->buf.len;
	if (wal_ext_reserve(dst, src->next) ||
	    t4dx_buf_add(&dst->buf, src->buf.p, src->buf.len))
		return ENOMEM;
	for (size_t i = 0; i < src->next; i++) {
		dst->ext[dst->next] = src->ext[i];
		dst->ext[dst->next++].at += base;
	}
	dst->ext_bytes += src->ext_bytes;
	if (!dst->n)
		dst->lo = src->lo;
	dst->hi = src->hi;
	dst->n += src->n;
	src->next = 0;          /* the references moved with them */
	src->ext_bytes = 0;
	wal_queue_clear(src);
	return 0;
}

/* Append the lines of q, contents included, to out.  0 or ENOMEM. */
int wal_queue_lines(const struct wal_queue *q, struct t4dx_buf *out)
{
	size_t pos = 0;
	for (size_t i = 0; i <= q->next; i++) {
		size_t end = i < q->next ? q->ext[i].at : q->buf.len;
		if (t4dx_buf_add(out, q->buf.p + pos, end - pos))
			return ENOMEM;
		pos = end;
		if (i == q->next)
			break;
		const struct t4dx_rec_ext *x = &q->ext[i];
		if (t4dx_buf_reserve(out, x->enc_len))
			return ENOMEM;
		out->len += t4dx_rec_ext_put(x, 0, x->blob->len,
					     (char *)out->p + out->len);
	}
	return 0;
}

/* Drop the records of q up to upto (a prefix: q holds lo..hi in order). */
void wal_queue_drop_upto(struct wal_queue *q, uint64_t upto)
{
	if (!q->n || q->lo > upto)
		return;
	if (q->hi <= upto) {
		wal_queue_clear(q);
		return;
	}
	uint64_t k = upto - q->lo + 1;
	const unsigned char *p = q->buf.p;
	for (uint64_t i = 0; i < k; i++)
		p = (const unsigned char *)memchr(p, '\n', q->buf.len -
						  (size_t)(p - q->buf.p)) + 1;
	size_t len = (size_t)(p - q->buf.p);
	size_t ke = wal_ext_within(q, len);
	memmove(q->buf.p, q->buf.p + len, q->buf.len - len);
	q->buf.len -= len;
	wal_ext_drop_front(q, ke, len);
	q->lo += k;
	q->n -= k;
}
