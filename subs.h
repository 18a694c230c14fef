/* subs.h - the relay's subscriber table and its fan-out.
 *
 * One mutex guards the table; it is never held while waiting.  The
 * fan-out queues a reference to an already serialized message for every
 * subscriber.  When a subscriber's queue is full it waits for room (the
 * reader that runs the fan-out then stops reading its connection, and TCP
 * pushes back on the sender): nothing is dropped for a subscriber that
 * reads.  One that stops reading is its sender's business: it is evicted
 * after the stall timeout, which closes its queue and so ends the wait. */
#ifndef SUBS_H
#define SUBS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "msgq.h"
#include "wake.h"

struct conn;
struct sender;

struct sub {
	char addr[ADDR_STRLEN];		/* "IP:PORT" deliveries go to: the key */
	char ip[ADDR_STRLEN];
	uint16_t port;
	/* The connection it (last) subscribed over; 0 when restored. */
	_Atomic uint64_t origin;
	struct msgq q;
	atomic_uint refs;
	/* Guarded by the table's lock: */
	bool listed;			/* in the table */
	struct sender *sender;		/* its thread, while it runs */
	struct conn *control;		/* a reference: where it subscribed */
};

/* A new subscriber with one reference and an empty queue; NULL on ENOMEM. */
struct sub *sub_new(const char *ip, uint16_t port, uint64_t origin,
		    size_t max_msgs, size_t max_bytes);
struct sub *sub_ref(struct sub *s);
/* At the last reference, drops its queue and frees it. */
void sub_unref(struct sub *s);

struct subs_limits {
	size_t total;		/* subscribers at once */
	size_t per_ip;		/* from one IP address */
	size_t per_conn;	/* over one control connection */
	size_t margin;		/* senders still ending, past total */
	size_t queue_msgs, queue_bytes;
};

struct subtable {
	pthread_mutex_t lock;
	struct sub **v;
	size_t n, cap;
	size_t held;		/* subscribers whose sender has not ended */
	struct subs_limits lim;
	atomic_uint_fast64_t gen;	/* changes with every add and remove */
	struct wake *changed;	/* poked then too (may be NULL) */
};

void subs_init(struct subtable *t, const struct subs_limits *lim,
	       struct wake *changed);
/* The table must be empty (see subs_take_all). */
void subs_destroy(struct subtable *t);

/* Subscribes ip:port over connection `origin` (0: restored from the state
 * file).  Already subscribed: the subscriber now belongs to origin, and
 * comes back with *again set.  Otherwise a new one is added, unless a
 * limit refuses it (NULL, *why set).  Returns the caller's reference.  A
 * new subscriber holds a slot until subs_release() says its sender ended. */
struct sub *subs_subscribe(struct subtable *t, const char *ip, uint16_t port,
			   uint64_t origin, bool *again, const char **why);
/* Its sender has ended: the slot is free for another. */
void subs_release(struct subtable *t);

/* The connection s subscribed over: sets it (taking a reference; NULL to
 * forget it), or returns a new reference to it (NULL if none). */
void subs_set_control(struct subtable *t, struct sub *s, struct conn *c);
struct conn *subs_control(struct subtable *t, struct sub *s);
/* Sets s's sender (NULL when it ends).  Under the same lock, fn(sender,
 * arg) runs on s's sender if it still runs: the pointer stays valid. */
void subs_set_sender(struct subtable *t, struct sub *s, struct sender *sender);
void subs_with_sender(struct subtable *t, struct sub *s,
		      void (*fn)(struct sender *sender, void *arg), void *arg);

/* Takes the subscriber with this address out; returns it (the caller's
 * reference) or NULL. */
struct sub *subs_remove_addr(struct subtable *t, const char *addr);
/* Takes s out if it is still listed; true if it was. */
bool subs_remove(struct subtable *t, struct sub *s);

/* One reader's fan-out state: a snapshot of the table (taken again when
 * it changes), and the consumers it owes a wake-up.  Waking each one once
 * per batch of messages, outside every lock, lets a sender write the batch
 * at once, instead of a context switch per message per subscriber. */
struct fanout {
	struct sub **v;		/* references */
	size_t n, cap;
	uint64_t gen;
	struct sub **owed;	/* references */
	size_t nowed, capowed;
};

/* Queues m for every subscriber except those of connection `except` (0:
 * none), waiting while a queue is full.  Returns how many queues took it. */
size_t subs_fanout(struct subtable *t, struct fanout *f, struct msg *m,
		   uint64_t except);
/* Wakes the consumers owed a wake-up (at the end of a batch). */
void fanout_wake(struct fanout *f);
void fanout_free(struct fanout *f);

size_t subs_count(struct subtable *t);

/* The subscribers' addresses, one "IP:PORT\n" each, in a new string. */
char *subs_list(struct subtable *t);

/* Empties the table into a new array (the caller's references, free() the
 * array); *n gets its length. */
struct sub **subs_take_all(struct subtable *t, size_t *n);

#endif
