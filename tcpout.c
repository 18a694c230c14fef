/* tcpout.c - ordered writes of messages, and what may not have arrived. */
#include "tcpout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "thread.h"

/* When the ledger of written batches is this long, its two oldest are
 * merged: a bound on memory that only makes the count coarser. */
#define MAX_BATCHES 4096

void tcpout_init(struct tcpout *o)
{
	memset(o, 0, sizeof *o);
	o->progress_ms = mono_now_ms();
}

void tcpout_free(struct tcpout *o)
{
	tcpout_drop(o);
	free(o->ring);
	o->ring = NULL;
	o->cap = o->count = o->head = 0;
}

size_t tcpout_room(const struct tcpout *o)
{
	return TCPOUT_BATCH - o->n;
}

size_t tcpout_pending(const struct tcpout *o)
{
	return o->n;
}

/* The stall clock runs from when the peer begins to owe us something. */
static void started(struct tcpout *o)
{
	if (!tcpout_waiting(o))
		o->progress_ms = mono_now_ms();
}

bool tcpout_waiting(const struct tcpout *o)
{
	return o->n > 0 || o->acked < o->offset;
}

int tcpout_stall_left(const struct tcpout *o, int stall_ms)
{
	int64_t left;

	if (!tcpout_waiting(o))
		return -1;
	left = o->progress_ms + stall_ms - mono_now_ms();
	return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

void tcpout_add(struct tcpout *o, struct msg *const *msgs, size_t n)
{
	if (n == 0)
		return;
	started(o);
	memcpy(o->msgs + o->n, msgs, n * sizeof *msgs);
	o->n += n;
}

void tcpout_add_first(struct tcpout *o, struct msg *m)
{
	/* A message cut short stays first: its rest must come out whole. */
	size_t at = o->sent > 0 ? 1 : 0;

	started(o);
	o->control = msg_ref(m);
	memmove(o->msgs + at + 1, o->msgs + at, (o->n - at) * sizeof *o->msgs);
	o->msgs[at] = m;
	o->n++;
}

static struct tcpout_written *entry(struct tcpout *o, size_t i)
{
	return &o->ring[(o->head + i) % o->cap];
}

/* Records count messages written completely, ending at o->offset. */
static void remember(struct tcpout *o, uint64_t count)
{
	struct tcpout_written *e;

	if (o->count == o->cap) {
		if (o->cap >= MAX_BATCHES) {
			struct tcpout_written *first = entry(o, 0);

			entry(o, 1)->count += first->count;
			o->head = (o->head + 1) % o->cap;
			o->count--;
		} else {
			size_t cap = o->cap ? o->cap * 2 : 16, i;
			struct tcpout_written *ring = malloc(cap * sizeof *ring);

			if (!ring)
				return;		/* counted as arrived: rare */
			for (i = 0; i < o->count; i++)
				ring[i] = *entry(o, i);
			free(o->ring);
			o->ring = ring;
			o->cap = cap;
			o->head = 0;
		}
	}
	e = entry(o, o->count++);
	e->end = o->offset;
	e->at_ms = mono_now_ms();
	e->count = count;
}

/* Releases what nbytes completed, from the head. */
static void written(struct tcpout *o, size_t nbytes)
{
	uint64_t done = 0;
	size_t k = 0;

	o->offset += nbytes;
	while (k < o->n && nbytes >= o->msgs[k]->len - o->sent) {
		nbytes -= o->msgs[k]->len - o->sent;
		o->sent = 0;
		if (o->msgs[k] == o->control) {
			msg_unref(o->control);
			o->control = NULL;
		} else {
			done++;
		}
		msg_unref(o->msgs[k++]);
	}
	o->sent += nbytes;
	memmove(o->msgs, o->msgs + k, (o->n - k) * sizeof *o->msgs);
	o->n -= k;
	if (done > 0)
		remember(o, done);
}

ssize_t tcpout_write(struct tcpout *o, int fd)
{
	struct iovec iov[TCPOUT_BATCH];
	struct msghdr mh;
	size_t i, skip = o->sent;
	ssize_t w;

	if (o->n == 0)
		return 0;
	for (i = 0; i < o->n; i++) {
		iov[i].iov_base = o->msgs[i]->data + skip;
		iov[i].iov_len = o->msgs[i]->len - skip;
		skip = 0;
	}
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = iov;
	mh.msg_iovlen = o->n;
	w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	if (w > 0) {
#ifndef TIOCOUTQ
		o->progress_ms = mono_now_ms();	/* no way to see acknowledgements */
#endif
		written(o, (size_t)w);
	}
	return w;
}

/* Bytes written but not acknowledged by the peer (Linux: SIOCOUTQ, the
 * same number as TIOCOUTQ).  Where there is no way to ask, or asking
 * fails, none: then only a reset counts written messages as lost. */
static uint64_t unacked(int fd, const struct tcpout *o)
{
#ifdef TIOCOUTQ
	int n = 0;

	if (ioctl(fd, TIOCOUTQ, &n) == 0 && n >= 0)
		return (uint64_t)n;
#endif
	(void)fd;
	(void)o;
	return 0;
}

void tcpout_settle_lazily(struct tcpout *o, int fd, int every_ms)
{
	if (mono_now_ms() - o->settled_ms >= every_ms)
		tcpout_settle(o, fd);
}

void tcpout_settle(struct tcpout *o, int fd)
{
	int64_t now = mono_now_ms();
	uint64_t out = unacked(fd, o), acked = out <= o->offset ? o->offset - out : 0;

	if (acked > o->acked)
		o->progress_ms = now;
	o->acked = acked;
	o->settled_ms = now;
	while (o->count > 0) {
		struct tcpout_written *e = entry(o, 0);

		if (e->end > o->acked || now - e->at_ms < TCPOUT_SETTLE_MS)
			break;
		o->head = (o->head + 1) % o->cap;
		o->count--;
	}
}

/* A greeting belongs to its connection: one not written is forgotten. */
static void forget_control(struct tcpout *o)
{
	size_t i;

	if (!o->control)
		return;
	for (i = 0; i < o->n && o->msgs[i] != o->control; i++) {
	}
	if (i < o->n) {
		msg_unref(o->msgs[i]);
		memmove(o->msgs + i, o->msgs + i + 1, (o->n - i - 1) * sizeof *o->msgs);
		o->n--;
	}
	msg_unref(o->control);
	o->control = NULL;
}

uint64_t tcpout_broken(struct tcpout *o, int fd, bool reset)
{
	uint64_t lost = 0;
	size_t i;

	if (fd >= 0)
		tcpout_settle(o, fd);
	for (i = 0; i < o->count; i++)
		if (reset || entry(o, i)->end > o->acked)
			lost += entry(o, i)->count;
	tcpout_delivered(o);
	forget_control(o);
	return lost;
}

void tcpout_delivered(struct tcpout *o)
{
	o->count = o->head = 0;
	o->sent = 0;
	o->offset = o->acked = 0;
	o->progress_ms = mono_now_ms();
}

uint64_t tcpout_drop(struct tcpout *o)
{
	uint64_t n = 0;

	while (o->n > 0) {
		struct msg *m = o->msgs[--o->n];

		if (m != o->control)
			n++;
		msg_unref(m);
	}
	if (o->control)
		msg_unref(o->control);
	o->control = NULL;
	o->sent = 0;
	return n;
}
