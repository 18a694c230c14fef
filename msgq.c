/* msgq.c - bounded FIFO of message references (ring buffer). */
#include "msgq.h"

#include <errno.h>
#include <stdlib.h>

#include "thread.h"

/* Small at first: a relay may hold thousands of mostly idle queues. */
#define INITIAL_SLOTS 16

int msgq_init(struct msgq *q, size_t max_msgs, size_t max_bytes)
{
	if (max_msgs == 0)
		max_msgs = 1;
	q->size = max_msgs < INITIAL_SLOTS ? max_msgs : INITIAL_SLOTS;
	q->ring = calloc(q->size, sizeof *q->ring);
	if (!q->ring) {
		errno = ENOMEM;
		return -1;
	}
	q->max_msgs = max_msgs;
	q->head = q->count = q->bytes = 0;
	q->max_bytes = max_bytes;
	q->mode = MSGQ_WAIT;
	atomic_init(&q->closed, false);
	q->kicked = false;
	q->consumer_idle = true;	/* it has not looked yet */
	q->wake_owed = q->room_wanted = false;
	q->producers_waiting = 0;
	q->consumer_wake = q->room_wake = NULL;
	mutex_init(&q->lock);
	cond_init(&q->nonempty);
	cond_init(&q->room);
	return 0;
}

void msgq_destroy(struct msgq *q)
{
	msgq_clear(q);
	cond_destroy(&q->nonempty);
	cond_destroy(&q->room);
	mutex_destroy(&q->lock);
	free(q->ring);
	q->ring = NULL;
}

void msgq_set_wakes(struct msgq *q, struct wake *consumer_wake,
		    struct wake *room_wake)
{
	q->consumer_wake = consumer_wake;
	q->room_wake = room_wake;
}

/* The helpers below run with q->lock held. */

static struct msg *take_head(struct msgq *q)
{
	struct msg *m = q->ring[q->head];

	q->ring[q->head] = NULL;
	q->head = (q->head + 1) % q->size;
	q->count--;
	q->bytes -= m->len;
	return m;
}

static bool fits(const struct msgq *q, const struct msg *m)
{
	return q->count < q->max_msgs && q->bytes + m->len <= q->max_bytes;
}

/* Makes room in the ring for one more message; -1 on ENOMEM. */
static int grow(struct msgq *q)
{
	size_t size, i;
	struct msg **ring;

	if (q->count < q->size || q->size >= q->max_msgs)
		return 0;	/* room, or full: fits() decides */
	size = q->size * 2 < q->max_msgs ? q->size * 2 : q->max_msgs;
	ring = malloc(size * sizeof *ring);
	if (!ring)
		return -1;
	for (i = 0; i < q->count; i++)
		ring[i] = q->ring[(q->head + i) % q->size];
	free(q->ring);
	q->ring = ring;
	q->size = size;
	q->head = 0;
	return 0;
}

/* Wakes the consumer.  Callers on the hot path claim the wake under the
 * lock and signal after unlocking: a consumer woken while the lock is
 * still held would only block on it again (a second futex wake per
 * message).  The push it is told of happened under the lock, so the
 * signal cannot be missed. */
static void claim_wake(struct msgq *q)
{
	q->consumer_idle = false;
	q->wake_owed = false;
}

static void signal_consumer(struct msgq *q)
{
	if (q->consumer_wake)
		wake_poke(q->consumer_wake);
	else
		cond_signal(&q->nonempty);
}

static void wake_consumer_locked(struct msgq *q)
{
	claim_wake(q);
	signal_consumer(q);
}

/* Somebody waiting for room may go on now.  Returns whether the
 * poll-loop producer must be poked: done by the caller once it has
 * unlocked (room_poke), as for the consumer's wake. */
static bool room_made(struct msgq *q)
{
	if (q->producers_waiting)
		cond_broadcast(&q->room);
	if (q->room_wanted && q->room_wake) {
		q->room_wanted = false;
		return true;
	}
	return false;
}

static void room_poke(struct msgq *q, bool poke)
{
	if (poke)
		wake_poke(q->room_wake);
}

/* Appends m (which fits, or the mode drops); returns how many were
 * dropped.  An idle consumer's wake is either owed (*wake_owed, for the
 * caller to deliver later with msgq_wake_consumer) or claimed (*wake_now,
 * to signal once the lock is released). */
static size_t append(struct msgq *q, struct msg *m, bool *wake_owed, bool *wake_now)
{
	size_t dropped = 0;

	while (!fits(q, m) && q->count > 0) {
		msg_unref(take_head(q));
		dropped++;
	}
	q->ring[(q->head + q->count) % q->size] = msg_ref(m);
	q->count++;
	q->bytes += m->len;
	if (q->consumer_idle) {
		if (!wake_owed) {
			claim_wake(q);
			*wake_now = true;
		} else if (!q->wake_owed)
			q->wake_owed = *wake_owed = true;
	}
	return dropped;
}

void msgq_set_mode(struct msgq *q, enum msgq_mode mode)
{
	bool poke = false;

	lock(&q->lock);
	q->mode = mode;
	if (mode == MSGQ_DROP_OLDEST)
		poke = room_made(q);
	unlock(&q->lock);
	room_poke(q, poke);
}

int msgq_offer(struct msgq *q, struct msg *m, size_t *dropped, bool *wake_owed)
{
	size_t gone = 0;
	bool wake_now = false;
	int rc = 1;

	if (wake_owed)
		*wake_owed = false;
	lock(&q->lock);
	if (q->closed || m->len > q->max_bytes || grow(q) < 0) {
		rc = -1;
	} else if (!fits(q, m) && q->mode == MSGQ_WAIT) {
		q->room_wanted = true;
		/* A full queue's consumer has work: make sure it knows. */
		if (q->consumer_idle)
			wake_consumer_locked(q);
		rc = 0;
	} else {
		gone = append(q, m, wake_owed, &wake_now);
	}
	unlock(&q->lock);
	if (wake_now)
		signal_consumer(q);
	if (dropped)
		*dropped = gone;
	return rc;
}

int msgq_push(struct msgq *q, struct msg *m, bool *wake_owed)
{
	bool wake_now = false;
	int rc = 0;

	if (wake_owed)
		*wake_owed = false;
	lock(&q->lock);
	while (!q->closed && m->len <= q->max_bytes && !fits(q, m) && q->mode == MSGQ_WAIT) {
		/* A full queue's consumer has work: make sure it knows. */
		if (q->consumer_idle)
			wake_consumer_locked(q);
		q->producers_waiting++;
		cond_wait(&q->room, &q->lock);
		q->producers_waiting--;
	}
	if (q->closed || m->len > q->max_bytes || grow(q) < 0)
		rc = -1;
	else
		append(q, m, wake_owed, &wake_now);
	unlock(&q->lock);
	if (wake_now)
		signal_consumer(q);
	return rc;
}

void msgq_wake_consumer(struct msgq *q)
{
	bool owed;

	lock(&q->lock);
	owed = q->wake_owed;
	if (owed)
		claim_wake(q);
	unlock(&q->lock);
	if (owed)
		signal_consumer(q);
}

size_t msgq_pop(struct msgq *q, struct msg **out, size_t max, bool wait,
		const struct timespec *deadline)
{
	size_t n = 0;
	bool poke;

	lock(&q->lock);
	while (wait && q->count == 0 && !q->closed && !q->kicked) {
		q->consumer_idle = true;
		if (!deadline)
			cond_wait(&q->nonempty, &q->lock);
		else if (!cond_wait_until(&q->nonempty, &q->lock, deadline))
			break;
	}
	q->kicked = false;
	while (n < max && q->count > 0)
		out[n++] = take_head(q);
	/* Nothing left: the next push must wake us (a wake owed by a
	 * deferred push is still delivered, and then harmless). */
	q->consumer_idle = q->count == 0;
	poke = n > 0 && room_made(q);
	unlock(&q->lock);
	room_poke(q, poke);
	return n;
}

void msgq_kick(struct msgq *q)
{
	lock(&q->lock);
	q->kicked = true;
	wake_consumer_locked(q);
	unlock(&q->lock);
}

void msgq_close(struct msgq *q)
{
	lock(&q->lock);
	q->closed = true;
	wake_consumer_locked(q);
	cond_broadcast(&q->room);
	if (q->room_wake)
		wake_poke(q->room_wake);
	unlock(&q->lock);
}

bool msgq_closed(struct msgq *q)
{
	return atomic_load(&q->closed);
}

size_t msgq_clear(struct msgq *q)
{
	struct msg **all;
	size_t n, i;
	bool poke;

	/* Freed outside the lock: a last unref may wake a pool's waiters. */
	lock(&q->lock);
	n = q->count;
	all = n ? malloc(n * sizeof *all) : NULL;
	if (!all) {
		while (q->count > 0)
			msg_unref(take_head(q));
		poke = room_made(q);
		unlock(&q->lock);
		room_poke(q, poke);
		return n;
	}
	for (i = 0; i < n; i++)
		all[i] = take_head(q);
	poke = room_made(q);
	unlock(&q->lock);
	room_poke(q, poke);
	for (i = 0; i < n; i++)
		msg_unref(all[i]);
	free(all);
	return n;
}

size_t msgq_count(struct msgq *q)
{
	size_t n;

	lock(&q->lock);
	n = q->count;
	unlock(&q->lock);
	return n;
}
