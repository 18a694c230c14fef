/* msg.h - an immutable, reference-counted byte buffer.
 *
 * A message is serialized once and the same bytes are queued for every
 * peer or subscriber; the count is atomic because the last reference is
 * dropped by whichever sender thread finishes with it last.
 *
 * A message may be charged to a pool: the relay's bound on the bytes of
 * all the messages it holds at once.  The pool is credited back when the
 * last reference goes, and whoever waits for room in it is woken. */
#ifndef MSG_H
#define MSG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct msgpool;

struct msg {
	atomic_uint refs;
	struct msgpool *pool;	/* NULL: not charged */
	size_t len;
	char data[];
};

/* A new message holding a copy of data, with one reference; NULL on ENOMEM. */
struct msg *msg_new(const void *data, size_t len);
/* The same with len bytes for the caller to fill in before sharing it. */
struct msg *msg_alloc(size_t len);
struct msg *msg_ref(struct msg *m);
void msg_unref(struct msg *m);

struct msgpool {
	pthread_mutex_t lock;
	pthread_cond_t room;
	size_t bytes, max_bytes;
	unsigned waiting;
	bool closed;
};

void msgpool_init(struct msgpool *p, size_t max_bytes);
void msgpool_destroy(struct msgpool *p);
/* Waits until the pool holds less than max_bytes (a message that arrives
 * when it does not is held back, not dropped), then charges m to it and
 * returns true; false, without waiting, once the pool is closed. */
bool msgpool_charge(struct msgpool *p, struct msg *m);
/* Shutting down: wakes and refuses whoever waits. */
void msgpool_close(struct msgpool *p);

#endif
