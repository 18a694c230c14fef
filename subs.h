/* subs.h - the relay's subscriber table.
 *
 * One mutex guards the table.  Fan-out happens under it, but does no I/O:
 * it only appends a reference to the already serialized message to each
 * subscriber's bounded queue.  A subscriber whose queue is full is taken
 * out of the table and handed back to the caller to evict. */
#ifndef SUBS_H
#define SUBS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "msgq.h"

struct conn;

struct sub {
	char addr[ADDR_STRLEN];		/* "IP:PORT" deliveries go to: the key */
	char ip[ADDR_STRLEN];
	uint16_t port;
	uint64_t origin;		/* id of the connection it subscribed over */
	struct msgq q;
	atomic_uint refs;
	/* Set while in the table; guarded by the table's lock. */
	bool listed;
	/* Links subscribers that subs_fanout evicted. */
	struct sub *next_evicted;
	/* The rest belongs to whoever runs the subscriber (server5.c). */
	void *owner;
};

/* A new subscriber with one reference and an empty queue. */
struct sub *sub_new(const char *ip, uint16_t port, uint64_t origin,
		    size_t max_msgs, size_t max_bytes);
struct sub *sub_ref(struct sub *s);
/* At the last reference, drops its queue and frees it. */
void sub_unref(struct sub *s);

struct subtable {
	pthread_mutex_t lock;
	struct sub **v;
	size_t n, cap;
	size_t max_total, max_per_ip;
};

int subs_init(struct subtable *t, size_t max_total, size_t max_per_ip);
/* The table must be empty (see subs_take_all). */
void subs_destroy(struct subtable *t);

/* Adds s; the table takes its own reference.  A subscriber with the same
 * address is taken out and returned in *replaced (the caller's reference)
 * and does not count against the limits.  Returns 0, or -1 with *why when
 * the total or per-IP limit is reached. */
int subs_add(struct subtable *t, struct sub *s, struct sub **replaced,
	     const char **why);

/* Takes the subscriber with this address out; returns it (the caller's
 * reference) or NULL. */
struct sub *subs_remove_addr(struct subtable *t, const char *addr);

/* Takes s out if it is still listed and drops the table's reference (the
 * caller's own stays); true if it was listed. */
bool subs_remove(struct subtable *t, struct sub *s);

/* Subscribers owed a wake-up: their sender threads sleep and messages
 * were queued for them.  Waking them once after a whole batch of messages
 * (and outside the table's lock) lets each write the batch at once,
 * instead of one context switch per message per subscriber. */
struct sub_wakeups {
	struct sub **v;		/* references */
	size_t n, cap;
};

/* Queues m to every subscriber except those that subscribed over the
 * connection `except` (0: none).  Subscribers whose queue was full are
 * taken out and returned as a list through next_evicted (the caller's
 * references).  *delivered (may be NULL) gets the number of queues m went
 * to.  With wakeups NULL, sleeping senders are woken at once; otherwise
 * they are added to it for subs_wake. */
struct sub *subs_fanout(struct subtable *t, struct msg *m, uint64_t except,
			size_t *delivered, struct sub_wakeups *wakeups);

/* Wakes and forgets the subscribers collected by subs_fanout. */
void subs_wake(struct sub_wakeups *w);
void subs_wakeups_free(struct sub_wakeups *w);

size_t subs_count(struct subtable *t);

/* Empties the table into a new array (the caller's references, free() the
 * array); *n gets its length. */
struct sub **subs_take_all(struct subtable *t, size_t *n);

#endif
