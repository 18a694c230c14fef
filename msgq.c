/* msgq.c - bounded FIFO of message references (ring buffer). */
#include "msgq.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "thread.h"

int msgq_init(struct msgq *q, size_t max_msgs, size_t max_bytes, int wake_fd)
{
	pthread_condattr_t attr;

	if (max_msgs == 0)
		max_msgs = 1;
	/* Small at first: a relay may hold thousands of mostly idle queues. */
	q->size = max_msgs < 16 ? max_msgs : 16;
	q->ring = calloc(q->size, sizeof *q->ring);
	if (!q->ring)
		return -1;
	q->max_msgs = max_msgs;
	q->head = q->count = q->bytes = 0;
	q->max_bytes = max_bytes;
	q->closed = q->woken = q->waiting = q->wake_due = false;
	q->wake_fd = wake_fd;
	if (pthread_mutex_init(&q->lock, NULL) != 0)
		goto fail;
	if (pthread_condattr_init(&attr) != 0)
		goto fail_mutex;
	/* Deadlines are monotonic so a clock change cannot stretch them. */
	if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&q->nonempty, &attr) != 0) {
		pthread_condattr_destroy(&attr);
		goto fail_mutex;
	}
	pthread_condattr_destroy(&attr);
	return 0;
fail_mutex:
	pthread_mutex_destroy(&q->lock);
fail:
	free(q->ring);
	errno = ENOMEM;
	return -1;
}

void msgq_destroy(struct msgq *q)
{
	msgq_clear(q);
	pthread_cond_destroy(&q->nonempty);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	q->ring = NULL;
}

/* Removes and returns the head; the queue's lock is held. */
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

/* Makes room for one more message; the lock is held.  -1 on ENOMEM. */
static int grow(struct msgq *q)
{
	size_t size, i;
	struct msg **ring;

	if (q->count < q->size)
		return 0;
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

static void poke(struct msgq *q)
{
	char b = 1;

	pthread_cond_signal(&q->nonempty);
	/* A full pipe already means "wake up"; EAGAIN is fine. */
	if (q->wake_fd >= 0 && write(q->wake_fd, &b, 1) < 0) {
		/* ignored */
	}
}

long msgq_push(struct msgq *q, struct msg *m, enum msgq_policy policy)
{
	long dropped = 0;

	lock(&q->lock);
	if (q->closed || m->len > q->max_bytes ||
	    (!fits(q, m) && policy == MSGQ_REJECT)) {
		unlock(&q->lock);
		return -1;
	}
	/* Dropping only frees memory, which is cheap enough under the lock. */
	while (!fits(q, m)) {
		msg_unref(take_head(q));
		dropped++;
	}
	if (grow(q) < 0) {
		unlock(&q->lock);
		return -1;
	}
	q->ring[(q->head + q->count) % q->size] = msg_ref(m);
	q->count++;
	q->bytes += m->len;
	poke(q);
	unlock(&q->lock);
	return dropped;
}

int msgq_push_deferred(struct msgq *q, struct msg *m, bool *wake)
{
	*wake = false;
	lock(&q->lock);
	if (q->closed || !fits(q, m) || grow(q) < 0) {
		unlock(&q->lock);
		return -1;
	}
	q->ring[(q->head + q->count) % q->size] = msg_ref(m);
	q->count++;
	q->bytes += m->len;
	/* Only a sleeping consumer needs waking, and only once. */
	if (q->waiting && !q->wake_due) {
		q->wake_due = true;
		*wake = true;
	}
	unlock(&q->lock);
	return 0;
}

void msgq_wake_consumer(struct msgq *q)
{
	/* Signalling without the lock is safe: the push that made the
	 * queue non-empty happened under it. */
	pthread_cond_signal(&q->nonempty);
}

size_t msgq_pop(struct msgq *q, struct msg **out, size_t max, bool wait,
		const struct timespec *deadline)
{
	size_t n = 0;

	lock(&q->lock);
	while (wait && q->count == 0 && !q->closed && !q->woken) {
		int rc;

		q->waiting = true;
		rc = deadline ? pthread_cond_timedwait(&q->nonempty, &q->lock, deadline)
			      : pthread_cond_wait(&q->nonempty, &q->lock);
		q->waiting = false;
		if (rc == ETIMEDOUT)
			break;
	}
	q->woken = false;
	q->wake_due = false;
	while (n < max && q->count > 0)
		out[n++] = take_head(q);
	unlock(&q->lock);
	return n;
}

void msgq_close(struct msgq *q)
{
	lock(&q->lock);
	q->closed = true;
	poke(q);
	unlock(&q->lock);
}

void msgq_wake(struct msgq *q)
{
	lock(&q->lock);
	q->woken = true;
	poke(q);
	unlock(&q->lock);
}

size_t msgq_clear(struct msgq *q)
{
	struct msg *m;
	size_t n = 0;

	for (;;) {
		lock(&q->lock);
		if (q->count == 0) {
			unlock(&q->lock);
			return n;
		}
		m = take_head(q);
		unlock(&q->lock);
		msg_unref(m);
		n++;
	}
}

size_t msgq_count(struct msgq *q)
{
	size_t n;

	lock(&q->lock);
	n = q->count;
	unlock(&q->lock);
	return n;
}

bool msgq_closed(struct msgq *q)
{
	bool c;

	lock(&q->lock);
	c = q->closed;
	unlock(&q->lock);
	return c;
}
