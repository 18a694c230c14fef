/* msgq.h - a bounded FIFO of message references, for one consumer thread.
 *
 * Bounded both in messages and in bytes.  What happens when it is full
 * depends on its mode, which the consumer sets:
 *
 *   MSGQ_WAIT         the other end is live: producers wait for room
 *                     (back-pressure), nothing is dropped;
 *   MSGQ_DROP_OLDEST  the other end is down: the oldest messages make room,
 *                     so a peer that is away costs bounded memory and
 *                     nobody waits for it.
 *
 * A producer or consumer that sleeps in poll() rather than on the queue
 * gives the queue a wake (wake.h) to poke; the others wait on condition
 * variables.  Producers and consumer never hold each other's locks. */
#ifndef MSGQ_H
#define MSGQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "msg.h"
#include "wake.h"

enum msgq_mode { MSGQ_WAIT, MSGQ_DROP_OLDEST };

struct msgq {
	pthread_mutex_t lock;
	pthread_cond_t nonempty;	/* the consumer sleeps in msgq_pop */
	pthread_cond_t room;		/* producers sleep in msgq_push */
	struct msg **ring;		/* grows on demand up to max_msgs */
	size_t size, max_msgs, head, count;
	size_t bytes, max_bytes;
	enum msgq_mode mode;
	atomic_bool closed;		/* written under lock, read anywhere */
	bool kicked;			/* msgq_kick: wake without a message */
	bool consumer_idle;		/* it sleeps, or asked for a poke */
	bool wake_owed;			/* a deferred push promised it one */
	bool room_wanted;		/* a poll-loop producer asked for a poke */
	unsigned producers_waiting;
	struct wake *consumer_wake;	/* or NULL: wait in msgq_pop */
	struct wake *room_wake;		/* or NULL: no poll-loop producer */
};

/* Returns 0, or -1 on ENOMEM.  The mode starts as MSGQ_WAIT. */
int msgq_init(struct msgq *q, size_t max_msgs, size_t max_bytes);
/* Drops whatever is still queued. */
void msgq_destroy(struct msgq *q);
/* For poll loops: consumer_wake is poked when a message arrives for an idle
 * consumer, room_wake when a full queue gets room or stops waiting.  Set
 * before the queue is shared. */
void msgq_set_wakes(struct msgq *q, struct wake *consumer_wake,
		    struct wake *room_wake);

void msgq_set_mode(struct msgq *q, enum msgq_mode mode);

/* Appends a reference to m without waiting.  Returns 1 when queued (in
 * MSGQ_DROP_OLDEST mode *dropped, if not NULL, tells how many old messages
 * went to make room), 0 when the queue is full in MSGQ_WAIT mode (then
 * room_wake will be poked when that may have changed), -1 when closed.
 * wake_owed: as for msgq_push. */
int msgq_offer(struct msgq *q, struct msg *m, size_t *dropped, bool *wake_owed);

/* Appends a reference to m, waiting while the queue is full in MSGQ_WAIT
 * mode (dropping the oldest in MSGQ_DROP_OLDEST mode).  With wake_owed
 * non-NULL an idle consumer is not woken at once: *wake_owed is set and
 * the caller calls msgq_wake_consumer later, once per batch of messages
 * and outside its own locks.  Returns 0, or -1 when the queue is (or gets)
 * closed. */
int msgq_push(struct msgq *q, struct msg *m, bool *wake_owed);
void msgq_wake_consumer(struct msgq *q);

/* Moves up to max messages from the head to out (the caller owns those
 * references).  With wait, sleeps until there is a message, the queue is
 * closed or kicked, or the CLOCK_MONOTONIC deadline passes (NULL: none).
 * Without, an empty queue marks the consumer idle, so that the next push
 * pokes its wake.  Returns how many were taken. */
size_t msgq_pop(struct msgq *q, struct msg **out, size_t max, bool wait,
		const struct timespec *deadline);

/* Wakes the consumer once, without a message. */
void msgq_kick(struct msgq *q);
/* No more pushes; waiting producers give up, the consumer drains the rest. */
void msgq_close(struct msgq *q);
bool msgq_closed(struct msgq *q);
/* Drops everything queued; returns how many. */
size_t msgq_clear(struct msgq *q);
size_t msgq_count(struct msgq *q);

#endif
