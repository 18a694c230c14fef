/* msgq.h - a bounded FIFO of message references, for one consumer thread.
 *
 * Bounded both in messages and in bytes.  Producers never block: a full
 * queue either drops its oldest messages (a chat peer that is away) or
 * refuses the new one (a relay subscriber that stopped reading, which the
 * caller then evicts). */
#ifndef MSGQ_H
#define MSGQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "msg.h"

enum msgq_policy { MSGQ_DROP_OLDEST, MSGQ_REJECT };

struct msgq {
	pthread_mutex_t lock;
	pthread_cond_t nonempty;	/* CLOCK_MONOTONIC */
	struct msg **ring;		/* grows on demand up to max_msgs */
	size_t size, max_msgs, head, count;
	size_t bytes, max_bytes;
	bool closed;
	bool woken;
	bool waiting;			/* the consumer sleeps in msgq_pop */
	bool wake_due;			/* a deferred push owes it a wake-up */
	int wake_fd;			/* written to on push when >= 0 */
};

/* wake_fd: a non-blocking pipe's write end to poke on every push (for a
 * consumer that waits in poll), or -1.  Returns 0, or -1 on ENOMEM. */
int msgq_init(struct msgq *q, size_t max_msgs, size_t max_bytes, int wake_fd);
/* Drops whatever is still queued. */
void msgq_destroy(struct msgq *q);

/* Appends a new reference to m.  When full, MSGQ_DROP_OLDEST drops from
 * the head until m fits and returns the number dropped; MSGQ_REJECT
 * returns -1 and changes nothing.  A closed queue returns -1. */
long msgq_push(struct msgq *q, struct msg *m, enum msgq_policy policy);

/* Like msgq_push with MSGQ_REJECT, but does not wake the consumer: when
 * *wake is set, the caller must call msgq_wake_consumer later (after
 * releasing its own locks), once per message batch.  0, or -1 when full or
 * closed. */
int msgq_push_deferred(struct msgq *q, struct msg *m, bool *wake);
/* The wake-up owed after msgq_push_deferred set *wake. */
void msgq_wake_consumer(struct msgq *q);

/* Moves up to max messages from the head to out (the caller owns those
 * references).  With wait, blocks until a message arrives, the queue is
 * closed or woken, or the CLOCK_MONOTONIC deadline passes (NULL: none).
 * Returns how many were taken (0 when none). */
size_t msgq_pop(struct msgq *q, struct msg **out, size_t max, bool wait,
		const struct timespec *deadline);

/* No more pushes; a waiting consumer wakes and drains what is left. */
void msgq_close(struct msgq *q);
/* Wakes a waiting consumer once without closing. */
void msgq_wake(struct msgq *q);
/* Drops everything queued; returns how many. */
size_t msgq_clear(struct msgq *q);
size_t msgq_count(struct msgq *q);
bool msgq_closed(struct msgq *q);

#endif
