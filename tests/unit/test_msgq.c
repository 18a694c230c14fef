/* test_msgq.c - unit tests for msgq.c (the bounded FIFO of message
 * references, in MSGQ_WAIT and MSGQ_DROP_OLDEST modes, with wake-ups for
 * threads and for poll loops).
 *
 * Threads synchronise on events with bounded waits: a helper thread sets
 * a flag under a mutex and signals; the test waits for it at most a few
 * seconds.  "It is blocked" is observed through the queue's own counters
 * (producers_waiting, consumer_idle) under its lock; "it did not return"
 * is checked after the thread is known to be blocked. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "msgq.h"
#include "thread.h"
#include "wake.h"

/* Generous: a loaded machine, sanitizers. */
#define WAIT_MS 10000

/* ---- helpers -------------------------------------------------------- */

static unsigned refs(struct msg *m)
{
	return atomic_load(&m->refs);
}

static struct msg *mk(const char *s)
{
	struct msg *m = msg_new(s, strlen(s));

	assert_non_null(m);
	assert_int_equal(refs(m), 1);
	return m;
}

static struct msg *mk_len(size_t len)
{
	char buf[256];
	struct msg *m;

	assert_true(len <= sizeof buf);
	memset(buf, 'b', len);
	m = msg_new(buf, len);
	assert_non_null(m);
	return m;
}

/* Pops everything without waiting and checks it is exactly want[0..n),
 * then drops the popped references. */
static void expect_contents(struct msgq *q, struct msg **want, size_t n)
{
	struct msg *out[64];
	size_t got;

	assert_true(n < 64);
	got = msgq_pop(q, out, 64, false, NULL);
	assert_int_equal(got, n);
	for (size_t i = 0; i < got; i++) {
		assert_ptr_equal(out[i], want[i]);
		msg_unref(out[i]);
	}
}

/* A one-shot event: set once by a thread, waited for with a bound. */
struct event {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool set;
};

static void event_init(struct event *e)
{
	mutex_init(&e->lock);
	cond_init(&e->cond);
	e->set = false;
}

static void event_destroy(struct event *e)
{
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
}

static void event_set(struct event *e)
{
	lock(&e->lock);
	e->set = true;
	pthread_cond_broadcast(&e->cond);
	unlock(&e->lock);
}

static bool event_is_set(struct event *e)
{
	bool s;

	lock(&e->lock);
	s = e->set;
	unlock(&e->lock);
	return s;
}

/* Waits at most ms for the event; whether it came. */
static bool event_wait(struct event *e, int64_t ms)
{
	struct timespec dl = mono_after(ms);
	bool s;

	lock(&e->lock);
	while (!e->set) {
		int rc = pthread_cond_timedwait(&e->cond, &e->lock, &dl);

		if (rc == ETIMEDOUT)
			break;
		must(rc, "pthread_cond_timedwait");
	}
	s = e->set;
	unlock(&e->lock);
	return s;
}

/* Waits (bounded) until pred(q) holds under q's lock. */
static bool until_locked(struct msgq *q, bool (*pred)(struct msgq *q), int64_t ms)
{
	int64_t end = mono_now_ms() + ms;

	for (;;) {
		bool ok;

		lock(&q->lock);
		ok = pred(q);
		unlock(&q->lock);
		if (ok)
			return true;
		if (mono_now_ms() >= end)
			return false;
		sched_yield();
		{
			struct timespec ts = { 0, 200000 };	/* poll the state */

			nanosleep(&ts, NULL);
		}
	}
}

static bool a_producer_waits(struct msgq *q)
{
	return q->producers_waiting > 0;
}

static bool two_producers_wait(struct msgq *q)
{
	return q->producers_waiting >= 2;
}

/* msgq_pop marks the consumer idle right before it sleeps on the
 * condition variable, and only the wait lets go of the lock: so once the
 * test has cleared the flag itself, seeing it set again under the lock
 * means the consumer sleeps in msgq_pop.  (A test-only use of msgq.h's
 * fields: nothing else says where a thread is.) */
static bool consumer_sleeps(struct msgq *q)
{
	return q->consumer_idle;
}

static void clear_idle(struct msgq *q)
{
	lock(&q->lock);
	q->consumer_idle = false;
	unlock(&q->lock);
}

static bool readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1 && (pfd.revents & POLLIN);
}

static struct wake mkwake(void)
{
	struct wake w;

	assert_int_equal(wake_init(&w), 0);
	return w;
}

/* Whether w was poked since the last drain (then drains it). */
static bool poked(struct wake *w)
{
	bool r = readable(wake_fd(w), 0);

	wake_drain(w);
	return r;
}

/* ---- a producer or consumer thread ---------------------------------- */

struct actor {
	struct msgq *q;
	struct msg *m;		/* producer: what it pushes */
	bool defer;		/* producer: with a wake_owed */
	int rc;			/* producer: msgq_push's result */
	bool owed;
	size_t max;		/* consumer: msgq_pop's max */
	int64_t deadline_ms;	/* consumer: 0, or a deadline this far away */
	struct timespec deadline;
	size_t got;		/* consumer: how many */
	struct msg *out[16];
	struct event started, done;
	pthread_t t;
};

static void *push_main(void *arg)
{
	struct actor *a = arg;

	event_set(&a->started);
	a->rc = msgq_push(a->q, a->m, a->defer ? &a->owed : NULL);
	event_set(&a->done);
	return NULL;
}

static void *pop_main(void *arg)
{
	struct actor *a = arg;

	event_set(&a->started);
	a->got = msgq_pop(a->q, a->out, a->max, true, a->deadline_ms ? &a->deadline : NULL);
	event_set(&a->done);
	return NULL;
}

static void start(struct actor *a, struct msgq *q, struct msg *m,
		  void *(*fn)(void *))
{
	memset(a, 0, sizeof *a);
	a->q = q;
	a->m = m;
	a->max = 16;
	a->rc = 99;
	event_init(&a->started);
	event_init(&a->done);
	assert_int_equal(pthread_create(&a->t, NULL, fn, a), 0);
	assert_true(event_wait(&a->started, WAIT_MS));
}

/* A producer, once it is known to wait in msgq_push. */
static void start_blocked_producer(struct actor *a, struct msgq *q, struct msg *m)
{
	start(a, q, m, push_main);
	if (!until_locked(q, a_producer_waits, WAIT_MS))
		fail_msg("the producer did not wait for room");
	assert_false(event_is_set(&a->done));
}

/* A consumer, once it is known to sleep in msgq_pop. */
static void start_sleeping_consumer(struct actor *a, struct msgq *q)
{
	assert_int_equal(msgq_count(q), 0);
	clear_idle(q);
	start(a, q, NULL, pop_main);
	if (!until_locked(q, consumer_sleeps, WAIT_MS))
		fail_msg("the consumer did not go to sleep");
}

static void finish(struct actor *a)
{
	if (!event_wait(&a->done, WAIT_MS))
		fail_msg("the thread did not return within %d ms", WAIT_MS);
	assert_int_equal(pthread_join(a->t, NULL), 0);
	event_destroy(&a->started);
	event_destroy(&a->done);
}

/* ---- FIFO and references -------------------------------------------- */

static void test_fifo_order(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[5], *out[8];

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	assert_int_equal(msgq_count(&q), 0);
	assert_false(msgq_closed(&q));
	for (int i = 0; i < 5; i++) {
		char s[8];

		snprintf(s, sizeof s, "m%d", i);
		m[i] = mk(s);
		if (i % 2)
			assert_int_equal(msgq_push(&q, m[i], NULL), 0);
		else
			assert_int_equal(msgq_offer(&q, m[i], NULL, NULL), 1);
		assert_int_equal(msgq_count(&q), (size_t)i + 1);
	}
	/* max limits how many are taken. */
	assert_int_equal(msgq_pop(&q, out, 2, false, NULL), 2);
	assert_ptr_equal(out[0], m[0]);
	assert_ptr_equal(out[1], m[1]);
	assert_int_equal(msgq_count(&q), 3);
	assert_int_equal(msgq_pop(&q, out + 2, 8, false, NULL), 3);
	for (int i = 0; i < 5; i++) {
		assert_ptr_equal(out[i], m[i]);
		msg_unref(out[i]);
		msg_unref(m[i]);
	}
	assert_int_equal(msgq_count(&q), 0);
	/* Empty, no wait: returns at once with nothing. */
	assert_int_equal(msgq_pop(&q, out, 8, false, NULL), 0);
	msgq_destroy(&q);
}

/* Wraps around the ring many times, and grows while wrapped. */
static void test_fifo_wraparound_and_growth(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[7], *out[64];
	int next_push = 0, next_pop = 0;

	for (int i = 0; i < 7; i++) {
		char s[8];

		snprintf(s, sizeof s, "w%d", i);
		m[i] = mk(s);
	}
	assert_int_equal(msgq_init(&q, 4, 1000), 0);
	for (int round = 0; round < 100; round++) {
		while (msgq_count(&q) < 3) {
			assert_int_equal(msgq_offer(&q, m[next_push % 7], NULL, NULL), 1);
			next_push++;
		}
		assert_int_equal(msgq_pop(&q, out, 2, false, NULL), 2);
		for (int k = 0; k < 2; k++) {
			assert_ptr_equal(out[k], m[next_pop % 7]);
			msg_unref(out[k]);
			next_pop++;
		}
	}
	msgq_destroy(&q);

	/* Starts small (16 slots) and grows to the bound while the head is
	 * in the middle of the ring. */
	assert_int_equal(msgq_init(&q, 50, 100000), 0);
	next_push = next_pop = 0;
	for (int round = 0; round < 20; round++) {
		size_t n;

		while (msgq_count(&q) < 50) {
			assert_int_equal(msgq_offer(&q, m[next_push % 7], NULL, NULL), 1);
			next_push++;
		}
		assert_int_equal(msgq_offer(&q, m[0], NULL, NULL), 0);	/* full */
		n = msgq_pop(&q, out, (size_t)(round % 40) + 1, false, NULL);
		for (size_t k = 0; k < n; k++) {
			assert_ptr_equal(out[k], m[next_pop % 7]);
			msg_unref(out[k]);
			next_pop++;
		}
	}
	while (msgq_count(&q) > 0) {
		size_t n = msgq_pop(&q, out, 64, false, NULL);

		for (size_t k = 0; k < n; k++) {
			assert_ptr_equal(out[k], m[next_pop % 7]);
			msg_unref(out[k]);
			next_pop++;
		}
	}
	assert_int_equal(next_pop, next_push);
	msgq_destroy(&q);
	for (int i = 0; i < 7; i++) {
		assert_int_equal(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

static void test_refs(void **state)
{
	(void)state;
	struct msgq q1, q2;
	struct msg *m = mk("shared"), *out[2];

	assert_int_equal(msgq_init(&q1, 10, 1000), 0);
	assert_int_equal(msgq_init(&q2, 10, 1000), 0);
	/* Each push takes its own reference; the caller keeps its own. */
	assert_int_equal(msgq_push(&q1, m, NULL), 0);
	assert_int_equal(refs(m), 2);
	assert_int_equal(msgq_offer(&q2, m, NULL, NULL), 1);
	assert_int_equal(refs(m), 3);
	assert_int_equal(msgq_push(&q1, m, NULL), 0);
	assert_int_equal(refs(m), 4);
	/* Popping hands the queue's reference over: no change. */
	assert_int_equal(msgq_pop(&q1, out, 1, false, NULL), 1);
	assert_ptr_equal(out[0], m);
	assert_int_equal(refs(m), 4);
	msg_unref(out[0]);
	assert_int_equal(refs(m), 3);
	/* clear drops the queue's references and says how many. */
	assert_int_equal(msgq_clear(&q1), 1);
	assert_int_equal(refs(m), 2);
	assert_int_equal(msgq_count(&q1), 0);
	assert_int_equal(msgq_clear(&q1), 0);
	/* destroy drops what is still queued. */
	msgq_destroy(&q2);
	assert_int_equal(refs(m), 1);
	msgq_destroy(&q1);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
}

/* ---- bounds in MSGQ_WAIT mode ---------------------------------------- */

static void test_count_bound_wait(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[4];
	size_t dropped = 99;

	for (int i = 0; i < 4; i++)
		m[i] = mk("x");
	assert_int_equal(msgq_init(&q, 3, 1000), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(msgq_offer(&q, m[i], &dropped, NULL), 1);
	assert_int_equal(dropped, 0);
	/* Full: refused without waiting, nothing dropped. */
	assert_int_equal(msgq_offer(&q, m[3], &dropped, NULL), 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(refs(m[3]), 1);	/* no reference taken */
	assert_int_equal(msgq_count(&q), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(refs(m[i]), 2);
	expect_contents(&q, m, 3);		/* unchanged, in order */
	/* Room again. */
	assert_int_equal(msgq_offer(&q, m[3], NULL, NULL), 1);
	expect_contents(&q, m + 3, 1);
	msgq_destroy(&q);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

static void test_byte_bound_wait(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *a = mk_len(6), *b = mk_len(5), *c = mk_len(4), *d = mk_len(1);
	struct msg *z = mk_len(0);
	struct msg *want[2] = { a, c };

	assert_int_equal(msgq_init(&q, 100, 10), 0);
	assert_int_equal(msgq_offer(&q, a, NULL, NULL), 1);
	assert_int_equal(msgq_offer(&q, b, NULL, NULL), 0);	/* 11 > 10 */
	assert_int_equal(refs(b), 1);
	assert_int_equal(msgq_count(&q), 1);
	assert_int_equal(msgq_offer(&q, c, NULL, NULL), 1);	/* 10: fits */
	assert_int_equal(msgq_offer(&q, d, NULL, NULL), 0);
	assert_int_equal(msgq_offer(&q, z, NULL, NULL), 1);	/* 0 bytes fit */
	assert_int_equal(msgq_count(&q), 3);
	assert_int_equal(msgq_pop(&q, (struct msg *[1]){ NULL }, 0, false, NULL), 0);
	{
		struct msg *out[4];

		assert_int_equal(msgq_pop(&q, out, 4, false, NULL), 3);
		assert_ptr_equal(out[0], want[0]);
		assert_ptr_equal(out[1], want[1]);
		assert_ptr_equal(out[2], z);
		for (int i = 0; i < 3; i++)
			msg_unref(out[i]);
	}
	/* Bytes are given back when popped. */
	assert_int_equal(msgq_offer(&q, b, NULL, NULL), 1);
	assert_int_equal(msgq_offer(&q, c, NULL, NULL), 1);
	assert_int_equal(msgq_offer(&q, d, NULL, NULL), 1);
	assert_int_equal(msgq_count(&q), 3);
	assert_int_equal(msgq_clear(&q), 3);
	/* And when cleared. */
	assert_int_equal(msgq_offer(&q, a, NULL, NULL), 1);
	assert_int_equal(msgq_offer(&q, c, NULL, NULL), 1);
	assert_int_equal(msgq_clear(&q), 2);
	msgq_destroy(&q);
	assert_int_equal(refs(a), 1);
	assert_int_equal(refs(b), 1);
	assert_int_equal(refs(c), 1);
	assert_int_equal(refs(d), 1);
	msg_unref(a);
	msg_unref(b);
	msg_unref(c);
	msg_unref(d);
	msg_unref(z);
}

/* A bound of 0 messages still holds one. */
static void test_zero_bound(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m = mk("m");

	assert_int_equal(msgq_init(&q, 0, 100), 0);
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 1);
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 0);
	assert_int_equal(msgq_clear(&q), 1);
	msgq_destroy(&q);
	msg_unref(m);
}

/* A message larger than the byte bound can never fit: refused at once,
 * in either mode, never waited for. */
static void test_oversized_offer(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *big = mk_len(11), *small = mk_len(3);
	size_t dropped = 99;

	assert_int_equal(msgq_init(&q, 10, 10), 0);
	assert_int_equal(msgq_offer(&q, small, NULL, NULL), 1);
	assert_int_equal(msgq_offer(&q, big, &dropped, NULL), -1);
	msgq_set_mode(&q, MSGQ_DROP_OLDEST);
	assert_int_equal(msgq_offer(&q, big, &dropped, NULL), -1);
	assert_int_equal(dropped, 0);
	assert_int_equal(msgq_push(&q, big, NULL), -1);
	/* Nothing was dropped for it. */
	assert_int_equal(msgq_count(&q), 1);
	assert_int_equal(refs(big), 1);
	msgq_destroy(&q);
	msg_unref(big);
	msg_unref(small);
}

/* PRODUCTION BUG (see the report): msgq_push of a message larger than the
 * byte bound, in MSGQ_WAIT mode, waits for room that can never come
 * (msgq_offer refuses it at once). */
static void test_oversized_push_wait_mode(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *big = mk_len(11);
	struct actor a;
	bool returned;

	assert_int_equal(msgq_init(&q, 10, 10), 0);
	start(&a, &q, big, push_main);
	returned = event_wait(&a.done, 2000);
	if (!returned)
		msgq_close(&q);		/* let it go, then fail */
	finish(&a);
	if (!returned)
		fail_msg("msgq_push of an 11-byte message into a 10-byte queue "
			 "waited (released by msgq_close after 2 s)");
	assert_int_equal(a.rc, -1);
	assert_int_equal(msgq_count(&q), 0);
	msgq_destroy(&q);
	msg_unref(big);
}

/* ---- MSGQ_DROP_OLDEST ----------------------------------------------- */

static void test_count_bound_drop_oldest(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[6];
	size_t dropped = 99;

	for (int i = 0; i < 6; i++)
		m[i] = mk("y");
	assert_int_equal(msgq_init(&q, 3, 1000), 0);
	msgq_set_mode(&q, MSGQ_DROP_OLDEST);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(msgq_offer(&q, m[i], &dropped, NULL), 1);
		assert_int_equal(dropped, 0);
	}
	assert_int_equal(msgq_offer(&q, m[3], &dropped, NULL), 1);
	assert_int_equal(dropped, 1);
	assert_int_equal(refs(m[0]), 1);	/* dropped: reference gone */
	assert_int_equal(msgq_count(&q), 3);
	/* msgq_push drops too, without waiting. */
	assert_int_equal(msgq_push(&q, m[4], NULL), 0);
	assert_int_equal(msgq_offer(&q, m[5], NULL, NULL), 1);	/* NULL dropped */
	assert_int_equal(refs(m[1]), 1);
	assert_int_equal(refs(m[2]), 1);
	expect_contents(&q, m + 3, 3);		/* the newest three */
	msgq_destroy(&q);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

static void test_byte_bound_drop_oldest(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *a = mk_len(4), *b = mk_len(4), *c = mk_len(9), *d = mk_len(1);
	struct msg *want[2] = { c, d };
	size_t dropped = 0;

	assert_int_equal(msgq_init(&q, 100, 10), 0);
	msgq_set_mode(&q, MSGQ_DROP_OLDEST);
	assert_int_equal(msgq_offer(&q, a, &dropped, NULL), 1);
	assert_int_equal(msgq_offer(&q, b, &dropped, NULL), 1);
	assert_int_equal(dropped, 0);
	/* 9 more bytes: both 4-byte messages must go. */
	assert_int_equal(msgq_offer(&q, c, &dropped, NULL), 1);
	assert_int_equal(dropped, 2);
	assert_int_equal(refs(a), 1);
	assert_int_equal(refs(b), 1);
	assert_int_equal(msgq_count(&q), 1);
	assert_int_equal(msgq_offer(&q, d, &dropped, NULL), 1);	/* 10 */
	assert_int_equal(dropped, 0);
	expect_contents(&q, want, 2);
	msgq_destroy(&q);
	msg_unref(a);
	msg_unref(b);
	msg_unref(c);
	msg_unref(d);
}

/* Back to MSGQ_WAIT: full refuses again, nothing more is dropped. */
static void test_mode_back_to_wait(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m = mk("m");
	size_t dropped = 0;

	assert_int_equal(msgq_init(&q, 2, 1000), 0);
	msgq_set_mode(&q, MSGQ_DROP_OLDEST);
	for (int i = 0; i < 5; i++)
		assert_int_equal(msgq_offer(&q, m, &dropped, NULL), 1);
	msgq_set_mode(&q, MSGQ_WAIT);
	assert_int_equal(msgq_offer(&q, m, &dropped, NULL), 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(msgq_count(&q), 2);
	msgq_destroy(&q);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
}

/* ---- blocking push --------------------------------------------------- */

/* A push into a full queue waits, and goes on once the consumer pops:
 * its message then comes after the others. */
static void test_push_waits_for_room(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[3] = { mk("a"), mk("b"), mk("c") }, *out[4];
	struct actor a;

	assert_int_equal(msgq_init(&q, 2, 1000), 0);
	assert_int_equal(msgq_push(&q, m[0], NULL), 0);
	assert_int_equal(msgq_push(&q, m[1], NULL), 0);
	start_blocked_producer(&a, &q, m[2]);
	/* Blocked: nothing changed. */
	assert_int_equal(msgq_count(&q), 2);
	assert_int_equal(refs(m[2]), 1);
	assert_false(event_is_set(&a.done));
	/* Room for one: it goes on. */
	assert_int_equal(msgq_pop(&q, out, 1, false, NULL), 1);
	assert_ptr_equal(out[0], m[0]);
	msg_unref(out[0]);
	finish(&a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(msgq_count(&q), 2);
	expect_contents(&q, m + 1, 2);
	msgq_destroy(&q);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

/* The same with the byte bound: one pop that frees too few bytes is not
 * enough, the second is. */
static void test_push_waits_for_bytes(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *small = mk_len(2), *mid = mk_len(5), *big = mk_len(6), *out[4];
	struct actor a;

	assert_int_equal(msgq_init(&q, 100, 10), 0);
	assert_int_equal(msgq_push(&q, small, NULL), 0);	/* 2 */
	assert_int_equal(msgq_push(&q, mid, NULL), 0);		/* 7 */
	start_blocked_producer(&a, &q, big);			/* 13 > 10 */
	assert_int_equal(msgq_pop(&q, out, 1, false, NULL), 1);	/* 5 + 6 > 10 */
	msg_unref(out[0]);
	/* Still waiting: it is woken, finds no room, and waits again. */
	if (!until_locked(&q, a_producer_waits, WAIT_MS))
		fail_msg("the producer stopped waiting without room");
	assert_false(event_is_set(&a.done));
	assert_int_equal(msgq_count(&q), 1);
	assert_int_equal(msgq_pop(&q, out, 1, false, NULL), 1);	/* 0 + 6 */
	msg_unref(out[0]);
	finish(&a);
	assert_int_equal(a.rc, 0);
	expect_contents(&q, &big, 1);
	msgq_destroy(&q);
	msg_unref(small);
	msg_unref(mid);
	msg_unref(big);
}

/* A producer that waits for room wakes an idle consumer first, or each
 * would wait for the other. */
static void test_blocked_push_wakes_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct wake cw = mkwake();
	struct msg *m = mk("m");
	bool owed = true;
	struct actor a;

	assert_int_equal(msgq_init(&q, 1, 1000), 0);
	msgq_set_wakes(&q, &cw, NULL);
	/* A deferred push owes the wake-up but does not give it yet. */
	assert_int_equal(msgq_push(&q, m, &owed), 0);
	assert_true(owed);
	assert_false(poked(&cw));
	/* The next push finds the queue full: it must wake the consumer. */
	start_blocked_producer(&a, &q, m);
	assert_true(readable(wake_fd(&cw), WAIT_MS));
	wake_drain(&cw);
	assert_int_equal(msgq_clear(&q), 1);	/* the consumer makes room */
	finish(&a);
	assert_int_equal(a.rc, 0);
	msgq_destroy(&q);
	wake_close(&cw);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
}

/* A refused msgq_offer wakes an idle consumer too: the queue is full, so
 * it has work, and a producer that only offers never waits in msgq_push
 * to wake it. */
static void test_refused_offer_wakes_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct wake cw = mkwake(), rw = mkwake();
	struct msg *m = mk("m"), *out[2];
	bool owed = false;

	assert_int_equal(msgq_init(&q, 1, 1000), 0);
	msgq_set_wakes(&q, &cw, &rw);
	assert_int_equal(msgq_offer(&q, m, NULL, &owed), 1);
	assert_true(owed);			/* deferred, not yet paid */
	assert_false(poked(&cw));
	assert_int_equal(msgq_offer(&q, m, NULL, &owed), 0);
	assert_false(owed);
	assert_true(poked(&cw));		/* woken by the refusal */
	/* It pops: room, and the refused producer hears of it. */
	assert_int_equal(msgq_pop(&q, out, 2, false, NULL), 1);
	msg_unref(out[0]);
	assert_true(poked(&rw));
	msgq_destroy(&q);
	wake_close(&cw);
	wake_close(&rw);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
}

/* Switching to MSGQ_DROP_OLDEST releases a waiting producer: the oldest
 * message makes room for its one. */
static void test_mode_switch_releases_producer(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[3] = { mk("a"), mk("b"), mk("c") };
	struct actor a;

	assert_int_equal(msgq_init(&q, 2, 1000), 0);
	assert_int_equal(msgq_push(&q, m[0], NULL), 0);
	assert_int_equal(msgq_push(&q, m[1], NULL), 0);
	start_blocked_producer(&a, &q, m[2]);
	msgq_set_mode(&q, MSGQ_DROP_OLDEST);
	finish(&a);
	assert_int_equal(a.rc, 0);
	assert_int_equal(refs(m[0]), 1);	/* dropped */
	expect_contents(&q, m + 1, 2);
	msgq_destroy(&q);
	for (int i = 0; i < 3; i++)
		msg_unref(m[i]);
}

/* ---- close ----------------------------------------------------------- */

static void test_close_wakes_waiting_producers(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m = mk("m"), *x = mk("x"), *y = mk("y");
	struct actor a, b;

	assert_int_equal(msgq_init(&q, 1, 1000), 0);
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	start_blocked_producer(&a, &q, x);
	start(&b, &q, y, push_main);
	if (!until_locked(&q, two_producers_wait, WAIT_MS))
		fail_msg("the second producer did not wait");
	msgq_close(&q);
	finish(&a);
	finish(&b);
	/* They gave up: nothing of theirs was queued. */
	assert_int_equal(a.rc, -1);
	assert_int_equal(b.rc, -1);
	assert_int_equal(refs(x), 1);
	assert_int_equal(refs(y), 1);
	assert_int_equal(msgq_count(&q), 1);
	msgq_destroy(&q);
	msg_unref(m);
	msg_unref(x);
	msg_unref(y);
}

static void test_close_wakes_waiting_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct actor c;

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	start_sleeping_consumer(&c, &q);
	assert_false(event_is_set(&c.done));
	msgq_close(&q);
	finish(&c);
	assert_int_equal(c.got, 0);
	msgq_destroy(&q);
}

/* After close: no more pushes; the consumer drains the rest, then gets 0
 * at once even when it asks to wait. */
static void test_close_then_drain(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m = mk("z"), *out[4];
	size_t dropped = 7;
	int64_t t0;

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	msgq_close(&q);
	assert_true(msgq_closed(&q));
	assert_int_equal(msgq_push(&q, m, NULL), -1);
	assert_int_equal(msgq_offer(&q, m, &dropped, NULL), -1);
	assert_int_equal(dropped, 0);
	msgq_set_mode(&q, MSGQ_DROP_OLDEST);
	assert_int_equal(msgq_push(&q, m, NULL), -1);
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), -1);
	assert_int_equal(refs(m), 3);
	assert_int_equal(msgq_pop(&q, out, 1, true, NULL), 1);
	msg_unref(out[0]);
	assert_int_equal(msgq_pop(&q, out, 4, true, NULL), 1);
	msg_unref(out[0]);
	t0 = mono_now_ms();
	assert_int_equal(msgq_pop(&q, out, 4, true, NULL), 0);
	assert_true(mono_now_ms() - t0 < WAIT_MS);
	assert_int_equal(refs(m), 1);
	msgq_destroy(&q);
	msg_unref(m);
}

/* close pokes a poll-loop producer's room wake and consumer's wake. */
static void test_close_pokes_wakes(void **state)
{
	(void)state;
	struct msgq q;
	struct wake cw = mkwake(), rw = mkwake();
	struct msg *m = mk("m");

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	msgq_set_wakes(&q, &cw, &rw);
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 1);
	assert_true(poked(&cw));
	assert_false(poked(&rw));
	msgq_close(&q);
	assert_true(poked(&rw));
	assert_true(poked(&cw));
	msgq_destroy(&q);
	wake_close(&cw);
	wake_close(&rw);
	msg_unref(m);
}

/* ---- waking the consumer --------------------------------------------- */

static void test_push_wakes_sleeping_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct actor c;
	struct msg *m = mk("wake");

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	start_sleeping_consumer(&c, &q);
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	finish(&c);
	assert_int_equal(c.got, 1);
	assert_ptr_equal(c.out[0], m);
	msg_unref(c.out[0]);
	msgq_destroy(&q);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
}

static void test_offer_wakes_sleeping_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct actor c;
	struct msg *m = mk("wake");

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	start_sleeping_consumer(&c, &q);
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 1);
	finish(&c);
	assert_int_equal(c.got, 1);
	msg_unref(c.out[0]);
	msgq_destroy(&q);
	msg_unref(m);
}

/* ---- deadlines ------------------------------------------------------- */

/* A wait with a deadline returns 0 once it passes, no sooner. */
static void test_deadline_timeout(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *out[4];
	struct timespec dl;
	int64_t t0, el;

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	t0 = mono_now_ms();
	dl = mono_after(300);
	assert_int_equal(msgq_pop(&q, out, 4, true, &dl), 0);
	el = mono_now_ms() - t0;
	if (el < 290 || el > 300 + WAIT_MS)
		fail_msg("300 ms deadline returned after %lld ms", (long long)el);
	/* A deadline already past returns at once. */
	dl = mono_now();
	dl.tv_sec -= 1;
	t0 = mono_now_ms();
	assert_int_equal(msgq_pop(&q, out, 4, true, &dl), 0);
	assert_true(mono_now_ms() - t0 < WAIT_MS);
	/* Without wait the deadline does not matter. */
	assert_int_equal(msgq_pop(&q, out, 4, false, &dl), 0);
	msgq_destroy(&q);
}

/* Before its deadline, a waiting consumer is woken by a message, a kick
 * or a close as without one. */
static void test_deadline_woken_before(void **state)
{
	(void)state;
	struct msgq q;
	struct actor c;
	struct msg *m = mk("m");

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	for (int how = 0; how < 3; how++) {
		int64_t t0;

		assert_int_equal(msgq_count(&q), 0);
		clear_idle(&q);
		memset(&c, 0, sizeof c);
		c.q = &q;
		c.max = 16;
		c.deadline_ms = 60000;
		c.deadline = mono_after(60000);
		event_init(&c.started);
		event_init(&c.done);
		t0 = mono_now_ms();
		assert_int_equal(pthread_create(&c.t, NULL, pop_main, &c), 0);
		assert_true(event_wait(&c.started, WAIT_MS));
		if (!until_locked(&q, consumer_sleeps, WAIT_MS))
			fail_msg("the consumer did not go to sleep");
		if (how == 0)
			assert_int_equal(msgq_push(&q, m, NULL), 0);
		else if (how == 1)
			msgq_kick(&q);
		else
			msgq_close(&q);
		finish(&c);
		assert_true(mono_now_ms() - t0 < 60000);
		assert_int_equal(c.got, how == 0 ? 1 : 0);
		if (c.got)
			msg_unref(c.out[0]);
	}
	msgq_destroy(&q);
	msg_unref(m);
}

/* msgq_kick wakes the consumer once without a message, and is not lost
 * when it comes before the consumer waits. */
static void test_kick(void **state)
{
	(void)state;
	struct msgq q;
	struct actor c;
	struct msg *m = mk("after"), *out[4];

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	start_sleeping_consumer(&c, &q);
	msgq_kick(&q);
	finish(&c);
	assert_int_equal(c.got, 0);
	assert_false(msgq_closed(&q));

	/* Before the wait: the next wait returns at once, once. */
	msgq_kick(&q);
	assert_int_equal(msgq_pop(&q, out, 4, true, NULL), 0);
	/* Consumed: the next wait sleeps until a message comes. */
	start_sleeping_consumer(&c, &q);
	assert_false(event_is_set(&c.done));
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	finish(&c);
	assert_int_equal(c.got, 1);
	msg_unref(c.out[0]);

	/* A kick with messages queued: they come with it. */
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	msgq_kick(&q);
	assert_int_equal(msgq_pop(&q, out, 4, true, NULL), 1);
	msg_unref(out[0]);
	msgq_destroy(&q);
	msg_unref(m);
}

/* A kick pokes a poll-loop consumer's wake. */
static void test_kick_pokes(void **state)
{
	(void)state;
	struct msgq q;
	struct wake cw = mkwake();
	struct msg *out[1];

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	msgq_set_wakes(&q, &cw, NULL);
	msgq_kick(&q);
	assert_true(poked(&cw));
	assert_int_equal(msgq_pop(&q, out, 1, false, NULL), 0);
	msgq_destroy(&q);
	wake_close(&cw);
}

/* A poll-loop consumer is poked when a message arrives while it is idle
 * (it found the queue empty), not for every message. */
static void test_consumer_wake(void **state)
{
	(void)state;
	struct msgq q;
	struct wake cw = mkwake();
	struct msg *m = mk("m"), *out[8];

	assert_int_equal(msgq_init(&q, 100, 100000), 0);
	msgq_set_wakes(&q, &cw, NULL);
	assert_false(poked(&cw));
	/* It has not looked yet: idle. */
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 1);
	assert_true(poked(&cw));
	/* Woken, not yet looked: no more pokes. */
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 1);
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	assert_false(poked(&cw));
	/* It takes some, not all: still busy. */
	assert_int_equal(msgq_pop(&q, out, 2, false, NULL), 2);
	msg_unref(out[0]);
	msg_unref(out[1]);
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	assert_false(poked(&cw));
	/* It takes all: idle, the next push pokes. */
	assert_int_equal(msgq_pop(&q, out, 8, false, NULL), 2);
	msg_unref(out[0]);
	msg_unref(out[1]);
	assert_false(poked(&cw));
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	assert_true(poked(&cw));
	assert_int_equal(msgq_pop(&q, out, 8, false, NULL), 1);
	msg_unref(out[0]);
	/* It found the queue empty: idle too. */
	assert_int_equal(msgq_pop(&q, out, 8, false, NULL), 0);
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 1);
	assert_true(poked(&cw));
	msgq_destroy(&q);
	wake_close(&cw);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
}

/* ---- deferred wake-ups ----------------------------------------------- */

/* With wake_owed, an idle consumer is not woken at once: the first push
 * of a batch owes the wake-up, later ones do not, msgq_wake_consumer
 * delivers it once. */
static void test_deferred_wake_poll_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct wake cw = mkwake();
	struct msg *m = mk("m"), *out[8];
	bool owed = false;

	assert_int_equal(msgq_init(&q, 100, 100000), 0);
	msgq_set_wakes(&q, &cw, NULL);
	assert_int_equal(msgq_push(&q, m, &owed), 0);
	assert_true(owed);
	assert_false(poked(&cw));
	assert_int_equal(msgq_push(&q, m, &owed), 0);
	assert_false(owed);			/* already owed */
	assert_int_equal(msgq_offer(&q, m, NULL, &owed), 1);
	assert_false(owed);
	assert_false(poked(&cw));
	msgq_wake_consumer(&q);
	assert_true(poked(&cw));
	msgq_wake_consumer(&q);			/* paid: nothing more */
	assert_false(poked(&cw));
	assert_int_equal(msgq_pop(&q, out, 8, false, NULL), 3);
	for (int i = 0; i < 3; i++)
		msg_unref(out[i]);

	/* Idle again: msgq_offer defers the same way. */
	assert_int_equal(msgq_offer(&q, m, NULL, &owed), 1);
	assert_true(owed);
	assert_false(poked(&cw));
	/* An immediate push in between pays the debt itself. */
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	assert_true(poked(&cw));
	msgq_wake_consumer(&q);
	assert_false(poked(&cw));
	assert_int_equal(msgq_pop(&q, out, 8, false, NULL), 2);
	msg_unref(out[0]);
	msg_unref(out[1]);

	/* Busy consumer: nothing is owed. */
	assert_int_equal(msgq_push(&q, m, NULL), 0);
	assert_true(poked(&cw));
	assert_int_equal(msgq_push(&q, m, &owed), 0);
	assert_false(owed);
	/* A refused offer owes nothing. */
	msgq_close(&q);
	owed = true;
	assert_int_equal(msgq_offer(&q, m, NULL, &owed), -1);
	assert_false(owed);
	owed = true;
	assert_int_equal(msgq_push(&q, m, &owed), -1);
	assert_false(owed);
	msgq_destroy(&q);
	wake_close(&cw);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
}

/* The same for a consumer sleeping in msgq_pop: it sleeps on through the
 * deferred pushes and gets the whole batch in one pop. */
static void test_deferred_wake_sleeping_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct actor c;
	struct msg *a = mk("a"), *b = mk("b");
	bool owed = false;

	assert_int_equal(msgq_init(&q, 10, 1000), 0);
	start_sleeping_consumer(&c, &q);
	assert_int_equal(msgq_push(&q, a, &owed), 0);
	assert_true(owed);
	assert_int_equal(msgq_push(&q, b, &owed), 0);
	assert_false(owed);
	/* Not woken: still asleep, both messages queued. */
	assert_false(event_is_set(&c.done));
	assert_int_equal(msgq_count(&q), 2);
	msgq_wake_consumer(&q);
	finish(&c);
	assert_int_equal(c.got, 2);
	assert_ptr_equal(c.out[0], a);
	assert_ptr_equal(c.out[1], b);
	msg_unref(c.out[0]);
	msg_unref(c.out[1]);
	msgq_destroy(&q);
	assert_int_equal(refs(a), 1);
	msg_unref(a);
	msg_unref(b);
}

/* ---- room wake-ups for poll-loop producers ---------------------------- */

/* A 0 from msgq_offer arms a poke of room_wake for when the queue gets
 * room: by a pop, or a clear. */
static void test_room_wake_on_room(void **state)
{
	(void)state;
	struct msgq q;
	struct wake rw = mkwake();
	struct msg *m = mk("m"), *out[4];

	assert_int_equal(msgq_init(&q, 2, 1000), 0);
	msgq_set_wakes(&q, NULL, &rw);
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 1);
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 1);
	assert_false(poked(&rw));
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 0);
	assert_false(poked(&rw));		/* no room yet */
	assert_int_equal(msgq_pop(&q, out, 1, false, NULL), 1);
	msg_unref(out[0]);
	assert_true(poked(&rw));
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 1);

	/* Armed again, and a clear makes room. */
	assert_int_equal(msgq_offer(&q, m, NULL, NULL), 0);
	assert_int_equal(msgq_clear(&q), 2);
	assert_true(poked(&rw));

	/* Full by bytes arms it the same way. */
	{
		struct msgq qb;
		struct msg *big = mk_len(200);

		assert_int_equal(msgq_init(&qb, 100, 300), 0);
		msgq_set_wakes(&qb, NULL, &rw);
		assert_int_equal(msgq_offer(&qb, big, NULL, NULL), 1);
		assert_int_equal(msgq_offer(&qb, big, NULL, NULL), 0);
		assert_false(poked(&rw));
		assert_int_equal(msgq_pop(&qb, out, 1, false, NULL), 1);
		msg_unref(out[0]);
		assert_true(poked(&rw));
		msgq_destroy(&qb);
		msg_unref(big);
	}
	msgq_destroy(&q);
	wake_close(&rw);
	msg_unref(m);
}

/* A full MSGQ_WAIT queue that switches to MSGQ_DROP_OLDEST stops making
 * anyone wait: the producer that was refused is poked, and is taken now. */
static void test_room_wake_on_mode_switch(void **state)
{
	(void)state;
	struct msgq q;
	struct wake rw = mkwake();
	struct msg *m[3] = { mk("a"), mk("b"), mk("c") };
	size_t dropped = 0;

	assert_int_equal(msgq_init(&q, 2, 1000), 0);
	msgq_set_wakes(&q, NULL, &rw);
	assert_int_equal(msgq_offer(&q, m[0], NULL, NULL), 1);
	assert_int_equal(msgq_offer(&q, m[1], NULL, NULL), 1);
	assert_int_equal(msgq_offer(&q, m[2], NULL, NULL), 0);
	assert_false(poked(&rw));
	msgq_set_mode(&q, MSGQ_DROP_OLDEST);
	assert_true(poked(&rw));
	assert_int_equal(msgq_offer(&q, m[2], &dropped, NULL), 1);
	assert_int_equal(dropped, 1);
	expect_contents(&q, m + 1, 2);
	msgq_destroy(&q);
	wake_close(&rw);
	for (int i = 0; i < 3; i++)
		msg_unref(m[i]);
}

/* ---- concurrency ---------------------------------------------------- */

#define NPROD 4
#define PER_PROD 10000

struct producer {
	struct msgq *q;
	int id;
	int failed;
	struct event done;
};

static struct msg *numbered(int id, int i)
{
	char s[32];
	int n = snprintf(s, sizeof s, "%d:%d", id, i);

	return msg_new(s, (size_t)n);
}

/* Checks each producer's messages come in order; counts them. */
struct checker {
	int next[NPROD];
	size_t total;
	bool bad;
};

static void check_batch(struct checker *c, struct msg **out, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		int id = -1, seq = -1;
		char s[32];

		assert_true(out[k]->len < sizeof s);
		memcpy(s, out[k]->data, out[k]->len);
		s[out[k]->len] = '\0';
		if (sscanf(s, "%d:%d", &id, &seq) != 2 || id < 0 || id >= NPROD ||
		    seq != c->next[id]) {
			if (!c->bad)
				print_error("out of order: got %s, expected seq %d\n", s,
					    id >= 0 && id < NPROD ? c->next[id] : -1);
			c->bad = true;
		} else {
			c->next[id]++;
		}
		msg_unref(out[k]);
	}
	c->total += n;
}

/* Blocking producers: msgq_push waits for room. */
static void *push_producer(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < PER_PROD; i++) {
		struct msg *m = numbered(p->id, i);

		if (m == NULL || msgq_push(p->q, m, NULL) != 0)
			p->failed = 1;
		msg_unref(m);
		if (p->failed)
			break;
	}
	msgq_kick(p->q);	/* the consumer checks whether all is in */
	event_set(&p->done);
	return NULL;
}

/* Several blocking producers, one consumer sleeping in msgq_pop, a small
 * queue: nothing lost, nothing reordered per producer. */
static void test_concurrent_blocking_producers(void **state)
{
	(void)state;
	struct msgq q;
	pthread_t t[NPROD];
	struct producer prod[NPROD];
	struct checker c = { { 0 }, 0, false };
	int64_t end = mono_now_ms() + 120000;

	assert_int_equal(msgq_init(&q, 8, 64), 0);	/* both bounds bite */
	for (int i = 0; i < NPROD; i++) {
		prod[i] = (struct producer){ .q = &q, .id = i };
		event_init(&prod[i].done);
		assert_int_equal(pthread_create(&t[i], NULL, push_producer, &prod[i]), 0);
	}
	while (c.total < NPROD * PER_PROD && mono_now_ms() < end) {
		struct msg *out[64];

		check_batch(&c, out, msgq_pop(&q, out, 64, true, NULL));
	}
	for (int i = 0; i < NPROD; i++) {
		if (!event_wait(&prod[i].done, WAIT_MS))
			fail_msg("producer %d never finished", i);
		assert_int_equal(pthread_join(t[i], NULL), 0);
		event_destroy(&prod[i].done);
	}
	assert_false(c.bad);
	assert_int_equal(c.total, NPROD * PER_PROD);
	for (int i = 0; i < NPROD; i++) {
		assert_int_equal(prod[i].failed, 0);
		assert_int_equal(c.next[i], PER_PROD);
	}
	assert_int_equal(msgq_count(&q), 0);
	msgq_destroy(&q);
}

/* Producers pushing with deferred wake-ups, and a poll-loop consumer
 * that only ever waits for its wake: a wake-up owed and never paid, or
 * lost, shows as a poll that times out. */
struct poll_consumer {
	struct msgq *q;
	struct wake *w;
	struct checker c;
	int timeouts;
};

static void *deferred_producer(void *arg)
{
	struct producer *p = arg;

	bool debt = false;

	for (int i = 0; i < PER_PROD; i++) {
		struct msg *m = numbered(p->id, i);
		bool owed = false;

		/* When the queue is full, msgq_push itself must wake the
		 * consumer this producer still owes a wake-up. */
		if (m == NULL || msgq_push(p->q, m, &owed) != 0)
			p->failed = 1;
		msg_unref(m);
		debt |= owed;
		/* A batch of a few messages, then the wake-up it owes. */
		if (debt && i % 5 == 4) {
			msgq_wake_consumer(p->q);
			debt = false;
		}
		if (p->failed)
			break;
	}
	msgq_wake_consumer(p->q);
	event_set(&p->done);
	return NULL;
}

static void test_concurrent_poll_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct wake cw = mkwake();
	pthread_t t[NPROD];
	struct producer prod[NPROD];
	struct poll_consumer pc = { .q = &q, .w = &cw };
	int64_t end = mono_now_ms() + 120000;

	assert_int_equal(msgq_init(&q, 16, 1u << 20), 0);
	msgq_set_wakes(&q, &cw, NULL);
	for (int i = 0; i < NPROD; i++) {
		prod[i] = (struct producer){ .q = &q, .id = i };
		event_init(&prod[i].done);
		assert_int_equal(pthread_create(&t[i], NULL, deferred_producer, &prod[i]), 0);
	}
	while (pc.c.total < NPROD * PER_PROD && mono_now_ms() < end) {
		struct msg *out[64];
		size_t n;

		wake_drain(&cw);
		while ((n = msgq_pop(&q, out, 64, false, NULL)) > 0)
			check_batch(&pc.c, out, n);
		if (pc.c.total == NPROD * PER_PROD)
			break;
		if (!readable(wake_fd(&cw), 5000)) {
			pc.timeouts++;
			break;
		}
	}
	for (int i = 0; i < NPROD; i++) {
		if (!event_wait(&prod[i].done, WAIT_MS)) {
			msgq_close(&q);		/* release them to fail cleanly */
			event_wait(&prod[i].done, WAIT_MS);
		}
		assert_int_equal(pthread_join(t[i], NULL), 0);
		event_destroy(&prod[i].done);
	}
	if (pc.timeouts)
		fail_msg("the consumer waited 5 s for a wake-up that never came "
			 "(%zu of %d messages)", pc.c.total, NPROD * PER_PROD);
	assert_false(pc.c.bad);
	assert_int_equal(pc.c.total, NPROD * PER_PROD);
	msgq_destroy(&q);
	wake_close(&cw);
}

/* A poll-loop producer that offers and, when refused, waits for its room
 * wake: a lost poke shows as a poll that times out. */
struct offerer {
	struct msgq *q;
	struct wake *room;
	int timeouts;
	int refused;
	struct event done;
};

static void *offer_producer(void *arg)
{
	struct offerer *o = arg;

	for (int i = 0; i < PER_PROD; i++) {
		struct msg *m = numbered(0, i);
		int rc;

		while ((rc = msgq_offer(o->q, m, NULL, NULL)) == 0) {
			o->refused++;
			if (!readable(wake_fd(o->room), 5000)) {
				o->timeouts++;
				break;
			}
			wake_drain(o->room);
		}
		msg_unref(m);
		if (rc != 1)
			break;
	}
	msgq_kick(o->q);	/* the consumer checks whether all is in */
	event_set(&o->done);
	return NULL;
}

static void test_concurrent_offer_producer(void **state)
{
	(void)state;
	struct msgq q;
	struct wake rw = mkwake();
	struct offerer o = { .q = &q, .room = &rw };
	struct checker c = { { 0 }, 0, false };
	pthread_t t;
	int64_t end = mono_now_ms() + 120000;

	assert_int_equal(msgq_init(&q, 4, 1u << 20), 0);
	msgq_set_wakes(&q, NULL, &rw);
	event_init(&o.done);
	assert_int_equal(pthread_create(&t, NULL, offer_producer, &o), 0);
	while (c.total < PER_PROD && mono_now_ms() < end && !event_is_set(&o.done)) {
		struct msg *out[3];

		/* Small pops: the queue is often full. */
		check_batch(&c, out, msgq_pop(&q, out, 3, true, NULL));
	}
	for (;;) {
		struct msg *out[3];
		size_t n = msgq_pop(&q, out, 3, false, NULL);

		if (n == 0)
			break;
		check_batch(&c, out, n);
	}
	assert_true(event_wait(&o.done, WAIT_MS));
	assert_int_equal(pthread_join(t, NULL), 0);
	event_destroy(&o.done);
	if (o.timeouts)
		fail_msg("the producer waited 5 s for room that was made");
	assert_false(c.bad);
	assert_int_equal(c.total, PER_PROD);
	print_message("offers refused (then poked): %d\n", o.refused);
	msgq_destroy(&q);
	wake_close(&rw);
}

/* Blocking producers racing a close: every push either lands (and is
 * popped) or is refused; none is lost or counted twice, and none is left
 * waiting. */
struct racer {
	struct msgq *q;
	struct msg *m;
	long pushed;
	struct event done;
};

static void *push_until_closed(void *arg)
{
	struct racer *r = arg;

	while (msgq_push(r->q, r->m, NULL) == 0)
		r->pushed++;
	event_set(&r->done);
	return NULL;
}

static void test_close_race(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m = mk("race");
	pthread_t t[3];
	struct racer r[3];
	long popped = 0, pushed = 0;
	struct msg *out[64];
	size_t n;

	assert_int_equal(msgq_init(&q, 4, 1u << 20), 0);
	for (int i = 0; i < 3; i++) {
		r[i] = (struct racer){ .q = &q, .m = m };
		event_init(&r[i].done);
		assert_int_equal(pthread_create(&t[i], NULL, push_until_closed, &r[i]), 0);
	}
	while (popped < 20000) {
		n = msgq_pop(&q, out, 64, true, NULL);
		for (size_t k = 0; k < n; k++)
			msg_unref(out[k]);
		popped += (long)n;
	}
	msgq_close(&q);
	for (int i = 0; i < 3; i++) {
		if (!event_wait(&r[i].done, WAIT_MS))
			fail_msg("producer %d still waits after close", i);
		assert_int_equal(pthread_join(t[i], NULL), 0);
		event_destroy(&r[i].done);
		pushed += r[i].pushed;
	}
	while ((n = msgq_pop(&q, out, 64, true, NULL)) > 0) {
		for (size_t k = 0; k < n; k++)
			msg_unref(out[k]);
		popped += (long)n;
	}
	assert_int_equal(popped, pushed);
	assert_int_equal(refs(m), 1);
	msgq_destroy(&q);
	msg_unref(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_order),
		cmocka_unit_test(test_fifo_wraparound_and_growth),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_count_bound_wait),
		cmocka_unit_test(test_byte_bound_wait),
		cmocka_unit_test(test_zero_bound),
		cmocka_unit_test(test_oversized_offer),
		cmocka_unit_test(test_oversized_push_wait_mode),
		cmocka_unit_test(test_count_bound_drop_oldest),
		cmocka_unit_test(test_byte_bound_drop_oldest),
		cmocka_unit_test(test_mode_back_to_wait),
		cmocka_unit_test(test_push_waits_for_room),
		cmocka_unit_test(test_push_waits_for_bytes),
		cmocka_unit_test(test_blocked_push_wakes_consumer),
		cmocka_unit_test(test_refused_offer_wakes_consumer),
		cmocka_unit_test(test_mode_switch_releases_producer),
		cmocka_unit_test(test_close_wakes_waiting_producers),
		cmocka_unit_test(test_close_wakes_waiting_consumer),
		cmocka_unit_test(test_close_then_drain),
		cmocka_unit_test(test_close_pokes_wakes),
		cmocka_unit_test(test_push_wakes_sleeping_consumer),
		cmocka_unit_test(test_offer_wakes_sleeping_consumer),
		cmocka_unit_test(test_deadline_timeout),
		cmocka_unit_test(test_deadline_woken_before),
		cmocka_unit_test(test_kick),
		cmocka_unit_test(test_kick_pokes),
		cmocka_unit_test(test_consumer_wake),
		cmocka_unit_test(test_deferred_wake_poll_consumer),
		cmocka_unit_test(test_deferred_wake_sleeping_consumer),
		cmocka_unit_test(test_room_wake_on_room),
		cmocka_unit_test(test_room_wake_on_mode_switch),
		cmocka_unit_test(test_concurrent_blocking_producers),
		cmocka_unit_test(test_concurrent_poll_consumer),
		cmocka_unit_test(test_concurrent_offer_producer),
		cmocka_unit_test(test_close_race),
	};

	alarm(600);	/* a thread that is never woken fails, not hangs */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
