/* test_subs.c - unit tests for subs.c (the relay's subscriber table and
 * its fan-out).
 *
 * Threads synchronise on events with bounded waits; "blocked in the
 * fan-out" is observed through the subscriber queue's own counter of
 * waiting producers (msgq.h) under its lock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "listener.h"
#include "msg.h"
#include "msgq.h"
#include "subs.h"
#include "thread.h"
#include "wake.h"

#define WAIT_MS 10000

/* ---- helpers -------------------------------------------------------- */

static unsigned srefs(struct sub *s)
{
	return atomic_load(&s->refs);
}

static unsigned mrefs(struct msg *m)
{
	return atomic_load(&m->refs);
}

static unsigned crefs(struct conn *c)
{
	return atomic_load(&c->refs);
}

static struct msg *mkmsg(const char *s)
{
	struct msg *m = msg_new(s, strlen(s));

	assert_non_null(m);
	return m;
}

/* Generous limits unless a test says otherwise. */
static struct subs_limits lim(size_t total, size_t per_ip, size_t per_conn,
			      size_t margin, size_t queue_msgs)
{
	struct subs_limits l = {
		.total = total, .per_ip = per_ip, .per_conn = per_conn,
		.margin = margin, .queue_msgs = queue_msgs, .queue_bytes = 1u << 20,
	};

	return l;
}

static struct subs_limits wide(void)
{
	return lim(100, 100, 100, 100, 100);
}

/* A new subscriber (again must be false); the caller's reference. */
static struct sub *sub_ok(struct subtable *t, const char *ip, uint16_t port,
			  uint64_t origin)
{
	bool again = true;
	const char *why = NULL;
	struct sub *s = subs_subscribe(t, ip, port, origin, &again, &why);

	if (!s)
		fail_msg("subs_subscribe(%s, %u) refused: %s", ip, port,
			 why ? why : "(no why)");
	assert_false(again);
	assert_true(s->listed);
	assert_int_equal(atomic_load(&s->origin), origin);
	return s;
}

static void sub_refused(struct subtable *t, const char *ip, uint16_t port,
			uint64_t origin, const char *want_why)
{
	bool again = true;
	const char *why = NULL;
	size_t n = subs_count(t);
	struct sub *s = subs_subscribe(t, ip, port, origin, &again, &why);

	if (s)
		fail_msg("subs_subscribe(%s, %u) accepted over a limit", ip, port);
	assert_false(again);
	assert_non_null(why);
	if (want_why && strcmp(why, want_why) != 0)
		fail_msg("subs_subscribe(%s, %u): why \"%s\", want \"%s\"", ip, port,
			 why, want_why);
	assert_int_equal(subs_count(t), n);
}

/* Empties the table, dropping its references; returns how many. */
static size_t drop_all(struct subtable *t)
{
	size_t n = 0;
	struct sub **all = subs_take_all(t, &n);

	assert_non_null(all);
	for (size_t i = 0; i < n; i++) {
		assert_false(all[i]->listed);
		sub_unref(all[i]);
	}
	free(all);
	assert_int_equal(subs_count(t), 0);
	return n;
}

/* A connection as listener.c makes them, over one end of a socketpair;
 * *peer gets the other end. */
static struct conn *mkconn(uint64_t id, int *peer)
{
	struct conn *c = calloc(1, sizeof *c);
	int sv[2];

	assert_non_null(c);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c->fd = sv[0];
	*peer = sv[1];
	c->id = id;
	snprintf(c->peer, sizeof c->peer, "127.0.0.1:%u", (unsigned)(40000 + id));
	snprintf(c->peer_ip, sizeof c->peer_ip, "127.0.0.1");
	atomic_init(&c->refs, 1);
	atomic_init(&c->ended, false);
	atomic_init(&c->useful, false);
	atomic_init(&c->closing, false);
	atomic_init(&c->delivers, false);
	atomic_init(&c->heard_ms, 0);
	log_budget_init(&c->budget, c->peer);
	return c;
}

/* Whether the connection's descriptor was closed: its peer sees EOF. */
static bool peer_sees_eof(int peer)
{
	struct pollfd p = { .fd = peer, .events = POLLIN };
	char b;

	return poll(&p, 1, 0) == 1 && read(peer, &b, 1) == 0;
}

static bool readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1 && (pfd.revents & POLLIN);
}

static bool poked(struct wake *w)
{
	bool r = readable(wake_fd(w), 0);

	wake_drain(w);
	return r;
}

/* A one-shot event, waited for with a bound. */
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

/* Waits (bounded) until a producer waits for room in q. */
static bool producer_waits(struct msgq *q)
{
	int64_t end = mono_now_ms() + WAIT_MS;

	for (;;) {
		unsigned n;
		struct timespec ts = { 0, 200000 };

		lock(&q->lock);
		n = q->producers_waiting;
		unlock(&q->lock);
		if (n > 0)
			return true;
		if (mono_now_ms() >= end)
			return false;
		nanosleep(&ts, NULL);
	}
}

/* A fan-out running on its own thread. */
struct fanner1 {
	struct subtable *t;
	struct fanout f;
	struct msg *m;
	uint64_t except;
	size_t n;
	struct event done;
	pthread_t th;
};

static void *fan_main(void *arg)
{
	struct fanner1 *a = arg;

	a->n = subs_fanout(a->t, &a->f, a->m, a->except);
	event_set(&a->done);
	return NULL;
}

static void fan_start(struct fanner1 *a, struct subtable *t, struct msg *m)
{
	memset(a, 0, sizeof *a);
	a->t = t;
	a->m = m;
	event_init(&a->done);
	assert_int_equal(pthread_create(&a->th, NULL, fan_main, a), 0);
}

static void fan_finish(struct fanner1 *a)
{
	if (!event_wait(&a->done, WAIT_MS))
		fail_msg("the fan-out did not return within %d ms", WAIT_MS);
	assert_int_equal(pthread_join(a->th, NULL), 0);
	event_destroy(&a->done);
	fanout_free(&a->f);
}

/* ---- sub_new / refs ------------------------------------------------- */

static void test_sub_new(void **state)
{
	(void)state;
	struct sub *s = sub_new("127.0.0.1", 5001, 7, 10, 1000);

	assert_non_null(s);
	assert_string_equal(s->addr, "127.0.0.1:5001");
	assert_string_equal(s->ip, "127.0.0.1");
	assert_int_equal(s->port, 5001);
	assert_int_equal(atomic_load(&s->origin), 7);
	assert_int_equal(srefs(s), 1);
	assert_false(s->listed);
	assert_null(s->control);
	assert_null(s->sender);
	assert_int_equal(msgq_count(&s->q), 0);
	assert_false(msgq_closed(&s->q));
	assert_ptr_equal(sub_ref(s), s);
	assert_int_equal(srefs(s), 2);
	sub_unref(s);
	assert_int_equal(srefs(s), 1);
	sub_unref(s);
	sub_unref(NULL);
}

static void test_sub_new_ipv6(void **state)
{
	(void)state;
	struct sub *s = sub_new("::1", 5001, 1, 10, 1000);

	assert_non_null(s);
	assert_string_equal(s->addr, "[::1]:5001");
	assert_string_equal(s->ip, "::1");
	assert_int_equal(s->port, 5001);
	sub_unref(s);
	/* An address that does not fit ADDR_STRLEN: refused. */
	{
		char ip[200];

		memset(ip, 'a', sizeof ip - 1);
		ip[sizeof ip - 1] = '\0';
		assert_null(sub_new(ip, 1, 1, 10, 1000));
	}
}

/* The queue is bounded by sub_new's limits (and waits when full) and is
 * dropped with the last reference. */
static void test_sub_queue(void **state)
{
	(void)state;
	struct sub *s = sub_new("127.0.0.1", 5001, 7, 2, 1000);
	struct msg *m = mkmsg("queued");

	assert_int_equal(msgq_offer(&s->q, m, NULL, NULL), 1);
	assert_int_equal(msgq_offer(&s->q, m, NULL, NULL), 1);
	assert_int_equal(msgq_offer(&s->q, m, NULL, NULL), 0);	/* MSGQ_WAIT */
	assert_int_equal(mrefs(m), 3);
	sub_ref(s);
	sub_unref(s);
	assert_int_equal(mrefs(m), 3);
	sub_unref(s);
	assert_int_equal(mrefs(m), 1);
	msg_unref(m);
}

/* ---- subscribe / remove --------------------------------------------- */

static void test_subscribe_new_and_again(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct sub *s, *s2, *got;
	bool again = false;
	const char *why = NULL;

	subs_init(&t, &l, NULL);
	assert_int_equal(subs_count(&t), 0);
	s = sub_ok(&t, "127.0.0.1", 5001, 1);
	assert_int_equal(subs_count(&t), 1);
	assert_int_equal(srefs(s), 2);		/* the table's and ours */
	assert_string_equal(s->addr, "127.0.0.1:5001");
	/* The queue takes the table's bounds. */
	assert_int_equal(s->q.max_msgs, l.queue_msgs);
	assert_int_equal(s->q.max_bytes, l.queue_bytes);

	/* Again, over another connection: the same subscriber, now its. */
	s2 = subs_subscribe(&t, "127.0.0.1", 5001, 9, &again, &why);
	assert_ptr_equal(s2, s);
	assert_true(again);
	assert_int_equal(atomic_load(&s->origin), 9);
	assert_int_equal(subs_count(&t), 1);
	assert_int_equal(srefs(s), 3);
	sub_unref(s2);
	/* And restored from the state file (origin 0). */
	s2 = subs_subscribe(&t, "127.0.0.1", 5001, 0, &again, &why);
	assert_ptr_equal(s2, s);
	assert_true(again);
	assert_int_equal(atomic_load(&s->origin), 0);
	sub_unref(s2);

	/* Another port is another subscriber. */
	s2 = sub_ok(&t, "127.0.0.1", 5002, 1);
	assert_ptr_not_equal(s2, s);
	assert_int_equal(subs_count(&t), 2);

	got = subs_remove_addr(&t, "127.0.0.1:5001");
	assert_ptr_equal(got, s);
	sub_unref(got);
	assert_int_equal(drop_all(&t), 1);
	sub_unref(s);
	sub_unref(s2);
	subs_destroy(&t);
}

static void test_subscribe_bad_address(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	char ip[200];

	subs_init(&t, &l, NULL);
	memset(ip, '1', sizeof ip - 1);
	ip[sizeof ip - 1] = '\0';
	sub_refused(&t, ip, 5001, 1, "bad address");
	subs_destroy(&t);
}

static void test_remove_addr(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct sub *s, *got;

	subs_init(&t, &l, NULL);
	s = sub_ok(&t, "127.0.0.1", 5001, 1);
	assert_null(subs_remove_addr(&t, "127.0.0.1:5002"));
	assert_null(subs_remove_addr(&t, "127.0.0.2:5001"));
	assert_null(subs_remove_addr(&t, "127.0.0.1"));
	assert_null(subs_remove_addr(&t, ""));
	assert_int_equal(subs_count(&t), 1);

	got = subs_remove_addr(&t, "127.0.0.1:5001");
	assert_ptr_equal(got, s);
	assert_false(s->listed);
	assert_int_equal(subs_count(&t), 0);
	assert_int_equal(srefs(s), 2);		/* the table's is now ours */
	assert_null(subs_remove_addr(&t, "127.0.0.1:5001"));
	assert_false(subs_remove(&t, s));	/* gone already */
	assert_int_equal(srefs(s), 2);
	sub_unref(got);
	sub_unref(s);

	/* IPv6: the bracketed form is the key. */
	s = sub_ok(&t, "::1", 7, 1);
	assert_null(subs_remove_addr(&t, "::1:7"));
	got = subs_remove_addr(&t, "[::1]:7");
	assert_ptr_equal(got, s);
	sub_unref(got);
	sub_unref(s);
	subs_destroy(&t);
}

/* Several subscribers taken out in another order than they came. */
static void test_subscribe_several(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct sub *s[5];
	char addr[ADDR_STRLEN];

	subs_init(&t, &l, NULL);
	for (int i = 0; i < 5; i++)
		s[i] = sub_ok(&t, i % 2 ? "10.0.0.1" : "::1", (uint16_t)(5000 + i),
			      (uint64_t)i + 1);
	assert_int_equal(subs_count(&t), 5);
	for (int k = 0; k < 5; k++) {
		int i = (k * 3) % 5;
		struct sub *got;

		snprintf(addr, sizeof addr, i % 2 ? "10.0.0.1:%d" : "[::1]:%d", 5000 + i);
		got = subs_remove_addr(&t, addr);
		if (got != s[i])
			fail_msg("subs_remove_addr(%s) did not return it", addr);
		assert_int_equal(subs_count(&t), (size_t)(4 - k));
		sub_unref(got);
		sub_unref(s[i]);
	}
	subs_destroy(&t);
}

/* subs_remove takes a listed subscriber out and drops the table's
 * reference; only once. */
static void test_remove(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct sub *s, *never = sub_new("127.0.0.1", 5009, 1, 10, 1000), *again;

	subs_init(&t, &l, NULL);
	s = sub_ok(&t, "127.0.0.1", 5001, 1);
	assert_int_equal(srefs(s), 2);
	assert_true(subs_remove(&t, s));
	assert_false(s->listed);
	assert_int_equal(subs_count(&t), 0);
	assert_int_equal(srefs(s), 1);
	assert_false(subs_remove(&t, s));
	assert_int_equal(srefs(s), 1);

	assert_false(subs_remove(&t, never));	/* never in the table */
	assert_int_equal(srefs(never), 1);
	sub_unref(never);

	/* The address can subscribe again: a new subscriber. */
	again = sub_ok(&t, "127.0.0.1", 5001, 2);
	assert_ptr_not_equal(again, s);
	assert_false(subs_remove(&t, s));	/* the old one cannot take it out */
	assert_int_equal(subs_count(&t), 1);
	assert_true(again->listed);
	assert_true(subs_remove(&t, again));
	sub_unref(again);
	sub_unref(s);
	subs_destroy(&t);
}

/* ---- limits --------------------------------------------------------- */

static void test_limit_total(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = lim(3, 10, 10, 10, 10);
	struct sub *s[3], *x;
	bool again;
	const char *why;

	subs_init(&t, &l, NULL);
	for (int i = 0; i < 3; i++)
		s[i] = sub_ok(&t, "127.0.0.1", (uint16_t)(1 + i), 1);
	sub_refused(&t, "10.0.0.1", 1, 2, "too many subscribers");
	/* Subscribing again is not a new subscriber: fine at the limit. */
	x = subs_subscribe(&t, "127.0.0.1", 2, 5, &again, &why);
	assert_ptr_equal(x, s[1]);
	assert_true(again);
	sub_unref(x);
	/* Room after a removal (the margin covers the ending sender). */
	assert_true(subs_remove(&t, s[0]));
	x = sub_ok(&t, "10.0.0.1", 1, 2);
	sub_refused(&t, "10.0.0.2", 1, 3, "too many subscribers");
	sub_unref(x);
	for (int i = 0; i < 3; i++)
		sub_unref(s[i]);
	drop_all(&t);
	subs_destroy(&t);
}

static void test_limit_per_ip(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = lim(10, 2, 10, 10, 10);
	struct sub *a1, *a2, *b1, *v6, *v6b;

	subs_init(&t, &l, NULL);
	a1 = sub_ok(&t, "127.0.0.1", 1, 1);
	a2 = sub_ok(&t, "127.0.0.1", 2, 2);
	sub_refused(&t, "127.0.0.1", 3, 3, "too many subscribers from this address");
	b1 = sub_ok(&t, "127.0.0.2", 1, 1);	/* another address */
	v6 = sub_ok(&t, "::1", 1, 1);
	v6b = sub_ok(&t, "::1", 2, 1);
	sub_refused(&t, "::1", 3, 1, "too many subscribers from this address");
	assert_true(subs_remove(&t, a1));
	sub_unref(sub_ok(&t, "127.0.0.1", 3, 3));
	sub_unref(a1);
	sub_unref(a2);
	sub_unref(b1);
	sub_unref(v6);
	sub_unref(v6b);
	assert_int_equal(drop_all(&t), 5);
	subs_destroy(&t);
}

static void test_limit_per_conn(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = lim(10, 10, 2, 10, 10);
	struct sub *a, *b, *c, *r[3], *x;
	bool again;
	const char *why;

	subs_init(&t, &l, NULL);
	a = sub_ok(&t, "127.0.0.1", 1, 5);
	b = sub_ok(&t, "127.0.0.2", 1, 5);
	sub_refused(&t, "127.0.0.3", 1, 5, "too many subscriptions on one connection");
	c = sub_ok(&t, "127.0.0.3", 1, 6);	/* another connection */
	/* Restored ones (origin 0) belong to no connection: no limit. */
	for (int i = 0; i < 3; i++)
		r[i] = sub_ok(&t, "10.0.0.9", (uint16_t)(100 + i), 0);
	/* A subscriber that subscribes again over another connection now
	 * counts for that one. */
	x = subs_subscribe(&t, "127.0.0.1", 1, 6, &again, &why);
	assert_ptr_equal(x, a);
	assert_true(again);
	sub_unref(x);
	sub_unref(sub_ok(&t, "127.0.0.4", 1, 5));	/* 5 has one left */
	sub_refused(&t, "127.0.0.5", 1, 6, "too many subscriptions on one connection");
	sub_unref(a);
	sub_unref(b);
	sub_unref(c);
	for (int i = 0; i < 3; i++)
		sub_unref(r[i]);
	assert_int_equal(drop_all(&t), 7);
	subs_destroy(&t);
}

/* A new subscriber holds a slot until subs_release says its sender
 * ended; past total + margin held slots, a new one is refused even when
 * the table has room. */
static void test_held_slots_and_margin(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = lim(2, 10, 10, 1, 10);
	struct sub *a, *b, *c, *d;

	subs_init(&t, &l, NULL);
	a = sub_ok(&t, "10.0.0.1", 1, 1);
	b = sub_ok(&t, "10.0.0.1", 2, 1);
	/* a's sender is still ending: it holds its slot (the margin). */
	assert_true(subs_remove(&t, a));
	c = sub_ok(&t, "10.0.0.1", 3, 1);
	/* Two listed, three held: no room, then no margin. */
	sub_refused(&t, "10.0.0.1", 4, 1, "too many subscribers");
	assert_true(subs_remove(&t, c));
	sub_refused(&t, "10.0.0.1", 4, 1, "too many subscribers still closing");
	/* Subscribing again still works: it takes no new slot. */
	{
		bool again;
		const char *why;
		struct sub *x = subs_subscribe(&t, "10.0.0.1", 2, 3, &again, &why);

		assert_ptr_equal(x, b);
		assert_true(again);
		sub_unref(x);
	}
	/* One sender ends: a slot is free again. */
	subs_release(&t);
	d = sub_ok(&t, "10.0.0.1", 4, 1);
	assert_int_equal(subs_count(&t), 2);
	/* Released slots do not make the table bigger. */
	subs_release(&t);
	subs_release(&t);
	sub_refused(&t, "10.0.0.1", 5, 1, "too many subscribers");
	sub_unref(a);
	sub_unref(b);
	sub_unref(c);
	sub_unref(d);
	assert_int_equal(drop_all(&t), 2);
	subs_destroy(&t);
}

/* ---- generation and the changed wake -------------------------------- */

static void test_changed(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct wake w;
	struct sub *s, *x;
	uint64_t g0, g1, g2;
	bool again;
	const char *why;

	assert_int_equal(wake_init(&w), 0);
	subs_init(&t, &l, &w);
	g0 = atomic_load(&t.gen);
	assert_false(poked(&w));
	s = sub_ok(&t, "127.0.0.1", 1, 1);
	g1 = atomic_load(&t.gen);
	assert_true(g1 != g0);
	assert_true(poked(&w));
	/* Subscribing again changes nothing in the table. */
	x = subs_subscribe(&t, "127.0.0.1", 1, 2, &again, &why);
	sub_unref(x);
	assert_int_equal(atomic_load(&t.gen), g1);
	assert_false(poked(&w));
	/* A refusal neither. */
	assert_null(subs_subscribe(&t, "1111111111111111111111111111111111111111111111111111"
				   "11111111111111111111111111111111", 1, 1, &again, &why));
	assert_int_equal(atomic_load(&t.gen), g1);
	assert_true(subs_remove(&t, s));
	g2 = atomic_load(&t.gen);
	assert_true(g2 != g1 && g2 != g0);
	assert_true(poked(&w));
	assert_false(subs_remove(&t, s));
	assert_int_equal(atomic_load(&t.gen), g2);
	assert_false(poked(&w));
	sub_unref(s);
	s = sub_ok(&t, "127.0.0.1", 2, 1);
	assert_true(poked(&w));
	sub_unref(s);
	drop_all(&t);
	assert_true(poked(&w));
	subs_destroy(&t);
	wake_close(&w);
}

/* ---- fan-out -------------------------------------------------------- */

static void test_fanout_except(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct fanout f = { 0 };
	struct sub *s1, *s2, *s3;
	struct msg *m = mkmsg("hello");

	subs_init(&t, &l, NULL);
	/* Empty table. */
	assert_int_equal(subs_fanout(&t, &f, m, 0), 0);
	assert_int_equal(mrefs(m), 1);

	s1 = sub_ok(&t, "127.0.0.1", 1, 1);
	s2 = sub_ok(&t, "127.0.0.1", 2, 2);
	s3 = sub_ok(&t, "127.0.0.2", 3, 1);

	/* Not to those that subscribed over connection 1. */
	assert_int_equal(subs_fanout(&t, &f, m, 1), 1);
	assert_int_equal(msgq_count(&s1->q), 0);
	assert_int_equal(msgq_count(&s2->q), 1);
	assert_int_equal(msgq_count(&s3->q), 0);
	assert_int_equal(mrefs(m), 2);

	/* except 0: everyone. */
	assert_int_equal(subs_fanout(&t, &f, m, 0), 3);
	assert_int_equal(mrefs(m), 5);

	/* A connection nobody subscribed over: everyone. */
	assert_int_equal(subs_fanout(&t, &f, m, 42), 3);
	assert_int_equal(mrefs(m), 8);
	assert_int_equal(msgq_count(&s1->q), 2);
	assert_int_equal(msgq_count(&s2->q), 3);
	assert_int_equal(msgq_count(&s3->q), 2);

	/* The origin is read at each fan-out: s1 moves to connection 2. */
	{
		bool again;
		const char *why;
		struct sub *x = subs_subscribe(&t, "127.0.0.1", 1, 2, &again, &why);

		sub_unref(x);
	}
	assert_int_equal(subs_fanout(&t, &f, m, 2), 1);	/* only s3 */
	assert_int_equal(msgq_count(&s3->q), 3);

	/* Same message object, in order. */
	{
		struct msg *out[8];
		size_t n = msgq_pop(&s2->q, out, 8, false, NULL);

		assert_int_equal(n, 3);
		for (size_t i = 0; i < n; i++) {
			assert_ptr_equal(out[i], m);
			msg_unref(out[i]);
		}
	}
	fanout_free(&f);
	drop_all(&t);
	sub_unref(s1);
	sub_unref(s2);
	sub_unref(s3);
	assert_int_equal(mrefs(m), 1);
	msg_unref(m);
	subs_destroy(&t);
}

/* Messages from one reader keep their order in every queue. */
static void test_fanout_order(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct fanout f = { 0 };
	struct sub *s1, *s2;
	struct msg *m[20], *out[32];

	subs_init(&t, &l, NULL);
	s1 = sub_ok(&t, "127.0.0.1", 1, 1);
	s2 = sub_ok(&t, "127.0.0.1", 2, 2);
	for (int i = 0; i < 20; i++) {
		char buf[8];

		snprintf(buf, sizeof buf, "%d", i);
		m[i] = mkmsg(buf);
		assert_int_equal(subs_fanout(&t, &f, m[i], 0), 2);
	}
	fanout_wake(&f);
	for (int k = 0; k < 2; k++) {
		struct sub *s = k ? s2 : s1;

		assert_int_equal(msgq_pop(&s->q, out, 32, false, NULL), 20);
		for (int i = 0; i < 20; i++) {
			assert_ptr_equal(out[i], m[i]);
			msg_unref(out[i]);
		}
	}
	fanout_free(&f);
	drop_all(&t);
	sub_unref(s1);
	sub_unref(s2);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(mrefs(m[i]), 1);
		msg_unref(m[i]);
	}
	subs_destroy(&t);
}

/* The snapshot is taken again when the table changes: a new subscriber
 * gets the next message, a removed one does not; and the snapshot's
 * references keep a removed subscriber alive until then. */
static void test_fanout_snapshot(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct fanout f = { 0 }, g = { 0 };
	struct sub *a, *b, *c;
	struct msg *m = mkmsg("m");

	subs_init(&t, &l, NULL);
	a = sub_ok(&t, "127.0.0.1", 1, 1);
	b = sub_ok(&t, "127.0.0.1", 2, 1);
	assert_int_equal(subs_fanout(&t, &f, m, 0), 2);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.gen, atomic_load(&t.gen));
	assert_int_equal(srefs(a), 4);		/* table, ours, snapshot, owed */
	fanout_wake(&f);			/* the end of the batch */
	assert_int_equal(srefs(a), 3);

	c = sub_ok(&t, "127.0.0.1", 3, 1);
	assert_int_equal(subs_fanout(&t, &f, m, 0), 3);
	assert_int_equal(msgq_count(&c->q), 1);

	fanout_wake(&f);
	assert_true(subs_remove(&t, a));
	assert_int_equal(srefs(a), 2);		/* ours and the snapshot's */
	assert_int_equal(subs_fanout(&t, &f, m, 0), 2);
	fanout_wake(&f);
	assert_int_equal(msgq_count(&a->q), 2);	/* did not get the third */
	assert_int_equal(msgq_count(&b->q), 3);
	assert_int_equal(srefs(a), 1);		/* the new snapshot let go */

	/* Unchanged table: the same snapshot is used. */
	{
		uint64_t gen = f.gen;

		assert_int_equal(subs_fanout(&t, &f, m, 0), 2);
		assert_int_equal(f.gen, gen);
	}
	/* Two readers, two snapshots. */
	assert_int_equal(subs_fanout(&t, &g, m, 0), 2);
	fanout_wake(&g);
	assert_int_equal(srefs(b), 4);		/* table, ours, f, g */
	fanout_free(&g);
	assert_int_equal(srefs(b), 3);
	fanout_free(&f);
	assert_int_equal(srefs(b), 2);
	/* A freed fanout can be used again. */
	assert_int_equal(subs_fanout(&t, &f, m, 0), 2);
	fanout_free(&f);
	fanout_free(&f);			/* twice: harmless */

	drop_all(&t);
	sub_unref(a);
	sub_unref(b);
	sub_unref(c);
	assert_int_equal(mrefs(m), 1);
	msg_unref(m);
	subs_destroy(&t);
}

/* A full queue makes the fan-out wait, not drop: it goes on once the
 * subscriber's sender takes a message. */
static void test_fanout_waits_on_full_queue(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = lim(10, 10, 10, 10, 1);
	struct fanout f = { 0 };
	struct fanner1 a;
	struct sub *s, *other;
	struct msg *m1 = mkmsg("one"), *m2 = mkmsg("two"), *out[4];

	subs_init(&t, &l, NULL);
	s = sub_ok(&t, "127.0.0.1", 1, 1);
	other = sub_ok(&t, "127.0.0.1", 2, 2);
	assert_int_equal(subs_fanout(&t, &f, m1, 0), 2);
	fanout_free(&f);
	/* Both queues are full: the fan-out of m2 waits on the first. */
	fan_start(&a, &t, m2);
	/* The snapshot is in table order: s first. */
	if (!producer_waits(&s->q))
		fail_msg("the fan-out did not wait on a full queue");
	assert_false(event_wait(&a.done, 0));
	/* Each sender takes its message: the fan-out goes on to the end. */
	assert_int_equal(msgq_pop(&s->q, out, 4, false, NULL), 1);
	assert_ptr_equal(out[0], m1);
	msg_unref(out[0]);
	assert_int_equal(msgq_pop(&other->q, out, 4, false, NULL), 1);
	msg_unref(out[0]);
	fan_finish(&a);
	assert_int_equal(a.n, 2);
	/* Nothing was dropped: m2 is in both queues. */
	assert_int_equal(msgq_pop(&s->q, out, 4, false, NULL), 1);
	assert_ptr_equal(out[0], m2);
	msg_unref(out[0]);
	assert_int_equal(msgq_pop(&other->q, out, 4, false, NULL), 1);
	assert_ptr_equal(out[0], m2);
	msg_unref(out[0]);
	drop_all(&t);
	sub_unref(s);
	sub_unref(other);
	assert_int_equal(mrefs(m1), 1);
	assert_int_equal(mrefs(m2), 1);
	msg_unref(m1);
	msg_unref(m2);
	subs_destroy(&t);
}

/* A closed queue (an evicted subscriber) is skipped, at once or while the
 * fan-out waits on it; the others still get the message. */
static void test_fanout_closed_queue(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = lim(10, 10, 10, 10, 1);
	struct fanout f = { 0 };
	struct fanner1 a;
	struct sub *s[3];
	struct msg *m1 = mkmsg("one"), *m2 = mkmsg("two"), *out[4];

	subs_init(&t, &l, NULL);
	for (int i = 0; i < 3; i++)
		s[i] = sub_ok(&t, "127.0.0.1", (uint16_t)(1 + i), 1);
	/* Closed before: skipped, not counted. */
	msgq_close(&s[1]->q);
	assert_int_equal(subs_fanout(&t, &f, m1, 0), 2);
	assert_int_equal(msgq_count(&s[1]->q), 0);
	fanout_free(&f);
	/* s[0] and s[2] are full now; s[2] gets room, s[0] is closed while
	 * the fan-out waits on it. */
	assert_int_equal(msgq_pop(&s[2]->q, out, 4, false, NULL), 1);
	msg_unref(out[0]);
	fan_start(&a, &t, m2);
	if (!producer_waits(&s[0]->q))
		fail_msg("the fan-out did not wait on the full queue");
	msgq_close(&s[0]->q);
	fan_finish(&a);
	assert_int_equal(a.n, 1);		/* s[2] only */
	assert_int_equal(msgq_pop(&s[2]->q, out, 4, false, NULL), 1);
	assert_ptr_equal(out[0], m2);
	msg_unref(out[0]);
	/* s[0] still holds m1 only. */
	assert_int_equal(msgq_pop(&s[0]->q, out, 4, false, NULL), 1);
	assert_ptr_equal(out[0], m1);
	msg_unref(out[0]);
	drop_all(&t);
	for (int i = 0; i < 3; i++)
		sub_unref(s[i]);
	assert_int_equal(mrefs(m1), 1);
	assert_int_equal(mrefs(m2), 1);
	msg_unref(m1);
	msg_unref(m2);
	subs_destroy(&t);
}

/* Senders sleeping in poll() are woken once per batch, by fanout_wake,
 * not once per message. */
static void test_fanout_wake(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct fanout f = { 0 };
	struct sub *s[3];
	struct wake w[3];
	struct msg *m = mkmsg("m"), *out[8];

	subs_init(&t, &l, NULL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(wake_init(&w[i]), 0);
		s[i] = sub_ok(&t, "127.0.0.1", (uint16_t)(1 + i), 1);
		msgq_set_wakes(&s[i]->q, &w[i], NULL);
	}
	for (int k = 0; k < 5; k++)
		assert_int_equal(subs_fanout(&t, &f, m, 0), 3);
	for (int i = 0; i < 3; i++)
		assert_false(poked(&w[i]));	/* not yet */
	assert_int_equal(f.nowed, 3);
	fanout_wake(&f);
	assert_int_equal(f.nowed, 0);
	for (int i = 0; i < 3; i++) {
		assert_true(poked(&w[i]));
		assert_int_equal(msgq_count(&s[i]->q), 5);
	}
	/* Woken and not yet looked: nothing owed for more messages. */
	assert_int_equal(subs_fanout(&t, &f, m, 0), 3);
	assert_int_equal(f.nowed, 0);
	fanout_wake(&f);
	for (int i = 0; i < 3; i++)
		assert_false(poked(&w[i]));
	/* They drain their queues and are idle again: one wake each. */
	for (int i = 0; i < 3; i++) {
		size_t n = msgq_pop(&s[i]->q, out, 8, false, NULL);

		for (size_t k = 0; k < n; k++)
			msg_unref(out[k]);
	}
	assert_int_equal(subs_fanout(&t, &f, m, 1 + 100), 3);
	/* fanout_free pays what is owed. */
	fanout_free(&f);
	for (int i = 0; i < 3; i++)
		assert_true(poked(&w[i]));
	drop_all(&t);
	for (int i = 0; i < 3; i++) {
		sub_unref(s[i]);
		wake_close(&w[i]);
	}
	assert_int_equal(mrefs(m), 1);
	msg_unref(m);
	subs_destroy(&t);
}

/* Before it waits on a full queue, the fan-out wakes the senders it owes
 * a wake-up, or they would sleep on their messages while it waits. */
static void test_fanout_wakes_before_waiting(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = lim(10, 10, 10, 10, 1);
	struct fanner1 a;
	struct sub *idle, *full;
	struct wake w;
	struct msg *m = mkmsg("m"), *out[4];

	assert_int_equal(wake_init(&w), 0);
	subs_init(&t, &l, NULL);
	/* The table is a swap-remove array: idle comes first. */
	idle = sub_ok(&t, "127.0.0.1", 1, 1);
	full = sub_ok(&t, "127.0.0.1", 2, 1);
	msgq_set_wakes(&idle->q, &w, NULL);
	assert_int_equal(msgq_offer(&full->q, m, NULL, NULL), 1);
	fan_start(&a, &t, m);
	if (!producer_waits(&full->q))
		fail_msg("the fan-out did not wait on the full queue");
	if (!readable(wake_fd(&w), WAIT_MS))
		fail_msg("the fan-out waits without waking the sender it owes");
	assert_int_equal(msgq_pop(&full->q, out, 4, false, NULL), 1);
	msg_unref(out[0]);
	fan_finish(&a);
	assert_int_equal(a.n, 2);
	assert_int_equal(msgq_pop(&idle->q, out, 4, false, NULL), 1);
	msg_unref(out[0]);
	drop_all(&t);
	sub_unref(idle);
	sub_unref(full);
	msg_unref(m);
	subs_destroy(&t);
	wake_close(&w);
}

/* ---- list, take_all ------------------------------------------------- */

static void test_list(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct sub *a, *b, *c;
	char *list;

	subs_init(&t, &l, NULL);
	list = subs_list(&t);
	assert_non_null(list);
	assert_string_equal(list, "");
	free(list);
	a = sub_ok(&t, "127.0.0.1", 5001, 1);
	b = sub_ok(&t, "::1", 5002, 1);
	c = sub_ok(&t, "10.0.0.1", 65535, 0);
	list = subs_list(&t);
	assert_non_null(list);
	assert_int_equal(strlen(list), strlen("127.0.0.1:5001\n[::1]:5002\n10.0.0.1:65535\n"));
	assert_non_null(strstr(list, "127.0.0.1:5001\n"));
	assert_non_null(strstr(list, "[::1]:5002\n"));
	assert_non_null(strstr(list, "10.0.0.1:65535\n"));
	free(list);
	assert_true(subs_remove(&t, b));
	list = subs_list(&t);
	assert_null(strstr(list, "[::1]"));
	assert_int_equal(strlen(list), strlen("127.0.0.1:5001\n10.0.0.1:65535\n"));
	free(list);
	/* The longest addresses fit. */
	sub_unref(sub_ok(&t, "1234:5678:9abc:def0:1234:5678:9abc:def0", 65535, 1));
	list = subs_list(&t);
	assert_non_null(strstr(list, "[1234:5678:9abc:def0:1234:5678:9abc:def0]:65535\n"));
	free(list);
	drop_all(&t);
	sub_unref(a);
	sub_unref(b);
	sub_unref(c);
	subs_destroy(&t);
}

static void test_take_all(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct sub *s[3];
	struct sub **all;
	size_t n = 99;

	subs_init(&t, &l, NULL);
	all = subs_take_all(&t, &n);
	assert_non_null(all);
	assert_int_equal(n, 0);
	free(all);

	for (int i = 0; i < 3; i++)
		s[i] = sub_ok(&t, "127.0.0.1", (uint16_t)(100 + i), 1);
	all = subs_take_all(&t, &n);
	assert_non_null(all);
	assert_int_equal(n, 3);
	assert_int_equal(subs_count(&t), 0);
	for (int i = 0; i < 3; i++) {
		int found = 0;

		for (size_t k = 0; k < n; k++)
			found += all[k] == s[i];
		assert_int_equal(found, 1);
		assert_false(s[i]->listed);
		assert_int_equal(srefs(s[i]), 2);	/* ours and the array's */
	}
	for (size_t k = 0; k < n; k++)
		sub_unref(all[k]);
	free(all);
	assert_null(subs_remove_addr(&t, "127.0.0.1:100"));
	for (int i = 0; i < 3; i++) {
		assert_false(subs_remove(&t, s[i]));
		assert_int_equal(srefs(s[i]), 1);
		sub_unref(s[i]);
	}
	/* Usable afterwards. */
	s[0] = sub_ok(&t, "127.0.0.1", 100, 1);
	assert_int_equal(drop_all(&t), 1);
	sub_unref(s[0]);
	subs_destroy(&t);
}

/* ---- control connection and sender ----------------------------------- */

static void test_control(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct sub *s;
	struct conn *c1, *c2, *got;
	int p1, p2;

	subs_init(&t, &l, NULL);
	s = sub_ok(&t, "127.0.0.1", 1, 1);
	c1 = mkconn(1, &p1);
	c2 = mkconn(2, &p2);
	assert_null(subs_control(&t, s));

	subs_set_control(&t, s, c1);
	assert_int_equal(crefs(c1), 2);		/* ours and the subscriber's */
	got = subs_control(&t, s);
	assert_ptr_equal(got, c1);
	assert_int_equal(crefs(c1), 3);
	conn_unref(got);

	/* Subscribed again over c2: c1 is let go. */
	subs_set_control(&t, s, c2);
	assert_int_equal(crefs(c1), 1);
	assert_int_equal(crefs(c2), 2);
	/* Setting the same one again keeps one reference. */
	subs_set_control(&t, s, c2);
	assert_int_equal(crefs(c2), 2);
	/* The last reference closes the descriptor. */
	conn_unref(c1);
	assert_true(peer_sees_eof(p1));

	/* Forgotten: NULL. */
	subs_set_control(&t, s, NULL);
	assert_int_equal(crefs(c2), 1);
	assert_null(subs_control(&t, s));
	subs_set_control(&t, s, c2);

	/* The subscriber's last reference drops its control reference. */
	conn_unref(c2);				/* ours */
	assert_false(peer_sees_eof(p2));	/* the subscriber holds it */
	assert_true(subs_remove(&t, s));
	sub_unref(s);
	assert_true(peer_sees_eof(p2));
	close(p1);
	close(p2);
	subs_destroy(&t);
}

static void note_sender(struct sender *sender, void *arg)
{
	struct sender **seen = arg;

	*seen = sender;
}

static void test_with_sender(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = wide();
	struct sub *s;
	int token;
	struct sender *fake = (struct sender *)(void *)&token, *seen = NULL;

	subs_init(&t, &l, NULL);
	s = sub_ok(&t, "127.0.0.1", 1, 1);
	subs_with_sender(&t, s, note_sender, &seen);
	assert_null(seen);			/* no sender: not called */
	subs_set_sender(&t, s, fake);
	subs_with_sender(&t, s, note_sender, &seen);
	assert_ptr_equal(seen, fake);
	subs_set_sender(&t, s, NULL);
	seen = NULL;
	subs_with_sender(&t, s, note_sender, &seen);
	assert_null(seen);
	sub_unref(s);
	drop_all(&t);
	subs_destroy(&t);
}

/* ---- concurrency: delivery ------------------------------------------ */

#define NREADERS 3
#define NSUBS 4
#define NPER 3000

/* A subscriber's sender: pops until its queue is closed and checks each
 * reader's messages come in order and all of them come. */
struct consumer {
	struct sub *s;
	int next[NREADERS];
	size_t total;
	bool bad;
	struct event done;
	pthread_t th;
};

static void *consume(void *arg)
{
	struct consumer *c = arg;
	struct msg *out[16];
	size_t n;

	while ((n = msgq_pop(&c->s->q, out, 16, true, NULL)) > 0 || !msgq_closed(&c->s->q)) {
		for (size_t k = 0; k < n; k++) {
			int r = -1, i = -1;
			char buf[32];

			memcpy(buf, out[k]->data, out[k]->len);
			buf[out[k]->len] = '\0';
			if (sscanf(buf, "%d:%d", &r, &i) != 2 || r < 0 || r >= NREADERS ||
			    i != c->next[r])
				c->bad = true;
			else
				c->next[r]++;
			msg_unref(out[k]);
		}
		c->total += n;
	}
	event_set(&c->done);
	return NULL;
}

struct reader {
	struct subtable *t;
	int id;
	size_t delivered;
	struct event done;
	pthread_t th;
};

static void *read_and_fan(void *arg)
{
	struct reader *r = arg;
	struct fanout f = { 0 };

	for (int i = 0; i < NPER; i++) {
		char buf[32];
		int len = snprintf(buf, sizeof buf, "%d:%d", r->id, i);
		struct msg *m = msg_new(buf, (size_t)len);

		r->delivered += subs_fanout(r->t, &f, m, 0);
		msg_unref(m);
		if (i % 7 == 6)
			fanout_wake(&f);	/* the end of a batch */
	}
	fanout_free(&f);
	event_set(&r->done);
	return NULL;
}

/* Several readers fan out to subscribers whose small queues fill up:
 * every subscriber gets every message of every reader, each reader's in
 * order (nothing is dropped for a subscriber that reads). */
static void test_concurrent_delivery(void **state)
{
	(void)state;
	struct subtable t;
	struct subs_limits l = lim(100, 100, 100, 100, 4);
	struct consumer c[NSUBS];
	struct reader r[NREADERS];

	subs_init(&t, &l, NULL);
	for (int i = 0; i < NSUBS; i++) {
		memset(&c[i], 0, sizeof c[i]);
		c[i].s = sub_ok(&t, "127.0.0.1", (uint16_t)(1 + i), 1);
		event_init(&c[i].done);
		assert_int_equal(pthread_create(&c[i].th, NULL, consume, &c[i]), 0);
	}
	for (int i = 0; i < NREADERS; i++) {
		memset(&r[i], 0, sizeof r[i]);
		r[i].t = &t;
		r[i].id = i;
		event_init(&r[i].done);
		assert_int_equal(pthread_create(&r[i].th, NULL, read_and_fan, &r[i]), 0);
	}
	for (int i = 0; i < NREADERS; i++) {
		if (!event_wait(&r[i].done, 120000))
			fail_msg("reader %d did not finish", i);
		assert_int_equal(pthread_join(r[i].th, NULL), 0);
		event_destroy(&r[i].done);
		assert_int_equal(r[i].delivered, (size_t)NSUBS * NPER);
	}
	for (int i = 0; i < NSUBS; i++) {
		msgq_close(&c[i].s->q);
		if (!event_wait(&c[i].done, WAIT_MS))
			fail_msg("consumer %d did not finish", i);
		assert_int_equal(pthread_join(c[i].th, NULL), 0);
		event_destroy(&c[i].done);
		assert_false(c[i].bad);
		assert_int_equal(c[i].total, (size_t)NREADERS * NPER);
		sub_unref(c[i].s);
	}
	drop_all(&t);
	subs_destroy(&t);
}

/* ---- concurrency: churn --------------------------------------------- */

#define NADDERS 2
#define NREMOVERS 2
#define NFANOUT 3
#define NMSGS 2000
#define RUN_MS 700

/* Every subscriber that leaves the table has its queue closed (as the
 * relay evicts), so a fan-out waiting on a full queue of one that left is
 * released; nobody reads the queues. */
struct shared {
	struct subtable t;
	atomic_long subscribed, again, refused, removed, delivered, fanouts;
	atomic_bool stop;
	struct msg *msgs[NFANOUT][NMSGS];
};

static uint32_t rnd(uint32_t *st)
{
	*st = *st * 1103515245u + 12345u;
	return *st >> 16;
}

static const char *ips[] = { "127.0.0.1", "127.0.0.2", "::1" };

static void leave(struct shared *sh, struct sub *s)
{
	msgq_close(&s->q);
	subs_release(&sh->t);	/* its "sender" ends at once */
	atomic_fetch_add(&sh->removed, 1);
}

static void *adder(void *arg)
{
	struct shared *sh = arg;
	uint32_t st = (uint32_t)(uintptr_t)&st;
	struct sub *keep = NULL;

	while (!atomic_load(&sh->stop)) {
		bool again = false;
		const char *why = NULL;
		struct sub *s = subs_subscribe(&sh->t, ips[rnd(&st) % 3],
					       (uint16_t)(1 + rnd(&st) % 6),
					       1 + rnd(&st) % 4, &again, &why);

		if (!s) {
			atomic_fetch_add(&sh->refused, 1);
			continue;
		}
		atomic_fetch_add(again ? &sh->again : &sh->subscribed, 1);
		/* Like a sender thread: later take out the one it holds. */
		if (keep) {
			if (subs_remove(&sh->t, keep))
				leave(sh, keep);
			sub_unref(keep);
			keep = NULL;
		}
		if (rnd(&st) % 4 == 0)
			keep = s;
		else
			sub_unref(s);
	}
	if (keep)
		sub_unref(keep);
	return NULL;
}

static void *remover(void *arg)
{
	struct shared *sh = arg;
	uint32_t st = (uint32_t)(uintptr_t)&st ^ 0x5555u;

	while (!atomic_load(&sh->stop)) {
		char addr[ADDR_STRLEN];
		const char *ip = ips[rnd(&st) % 3];
		struct sub *s;
		char *list;

		snprintf(addr, sizeof addr, ip[0] == ':' ? "[%s]:%u" : "%s:%u",
			 ip, 1 + rnd(&st) % 6);
		s = subs_remove_addr(&sh->t, addr);
		if (s) {
			leave(sh, s);
			sub_unref(s);
		}
		(void)subs_count(&sh->t);
		list = subs_list(&sh->t);
		free(list);
		{
			/* Pacing, so that the table is seldom empty and the
			 * fan-outs fill queues and wait on them. */
			struct timespec ts = { 0, 100000 };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

struct fanner {
	struct shared *sh;
	int id;
	struct event done;
};

static void *fanner(void *arg)
{
	struct fanner *fa = arg;
	struct shared *sh = fa->sh;
	struct fanout f = { 0 };
	uint32_t st = (uint32_t)fa->id * 7919u + 1;

	for (int i = 0; !atomic_load(&sh->stop); i++) {
		size_t n = subs_fanout(&sh->t, &f, sh->msgs[fa->id][i % NMSGS],
				       rnd(&st) % 6);

		atomic_fetch_add(&sh->fanouts, 1);
		atomic_fetch_add(&sh->delivered, (long)n);
		if (i % 3 == 0)
			fanout_wake(&f);
	}
	fanout_free(&f);
	event_set(&fa->done);
	return NULL;
}

static void test_concurrent_churn(void **state)
{
	(void)state;
	struct shared *sh = calloc(1, sizeof *sh);
	pthread_t ta[NADDERS], tr[NREMOVERS], tf[NFANOUT];
	struct fanner fa[NFANOUT];
	struct subs_limits l = lim(10, 4, 3, 100000, 8);
	struct sub **all;
	size_t n = 0;
	long listed;

	assert_non_null(sh);
	subs_init(&sh->t, &l, NULL);
	atomic_store(&sh->stop, false);
	for (int f = 0; f < NFANOUT; f++) {
		for (int i = 0; i < NMSGS; i++) {
			char buf[32];

			snprintf(buf, sizeof buf, "%d:%d", f, i);
			sh->msgs[f][i] = mkmsg(buf);
		}
	}
	for (int i = 0; i < NADDERS; i++)
		assert_int_equal(pthread_create(&ta[i], NULL, adder, sh), 0);
	for (int i = 0; i < NREMOVERS; i++)
		assert_int_equal(pthread_create(&tr[i], NULL, remover, sh), 0);
	for (int i = 0; i < NFANOUT; i++) {
		fa[i] = (struct fanner){ .sh = sh, .id = i };
		event_init(&fa[i].done);
		assert_int_equal(pthread_create(&tf[i], NULL, fanner, &fa[i]), 0);
	}
	{
		/* The run time, not a synchronisation. */
		struct timespec ts = { RUN_MS / 1000, (RUN_MS % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	atomic_store(&sh->stop, true);
	for (int i = 0; i < NADDERS; i++)
		assert_int_equal(pthread_join(ta[i], NULL), 0);
	for (int i = 0; i < NREMOVERS; i++)
		assert_int_equal(pthread_join(tr[i], NULL), 0);

	listed = atomic_load(&sh->subscribed) - atomic_load(&sh->removed);
	print_message("fanouts %ld subscribed %ld again %ld refused %ld removed %ld "
		      "delivered %ld listed %ld\n",
		      atomic_load(&sh->fanouts), atomic_load(&sh->subscribed),
		      atomic_load(&sh->again), atomic_load(&sh->refused),
		      atomic_load(&sh->removed), atomic_load(&sh->delivered), listed);
	assert_int_equal(subs_count(&sh->t), (size_t)listed);

	/* The rest leave too, which releases fan-outs waiting on them. */
	all = subs_take_all(&sh->t, &n);
	assert_non_null(all);
	assert_int_equal(n, (size_t)listed);
	assert_true(n <= 10);
	for (size_t i = 0; i < n; i++) {
		size_t same_ip = 0;

		assert_false(all[i]->listed);
		for (size_t k = 0; k < n; k++) {
			if (k != i && strcmp(all[i]->addr, all[k]->addr) == 0)
				fail_msg("%s listed twice", all[i]->addr);
			same_ip += strcmp(all[i]->ip, all[k]->ip) == 0;
		}
		if (same_ip > 4)
			fail_msg("%zu subscribers for %s (limit 4)", same_ip, all[i]->ip);
		msgq_close(&all[i]->q);
	}
	for (int i = 0; i < NFANOUT; i++) {
		if (!event_wait(&fa[i].done, WAIT_MS))
			fail_msg("fan-out %d still waits after every queue closed", i);
		assert_int_equal(pthread_join(tf[i], NULL), 0);
		event_destroy(&fa[i].done);
	}
	assert_true(atomic_load(&sh->subscribed) > 0);
	assert_true(atomic_load(&sh->fanouts) > 0);
	assert_true(atomic_load(&sh->refused) > 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(srefs(all[i]), 1);	/* nobody else */
		sub_unref(all[i]);
	}
	free(all);
	subs_destroy(&sh->t);

	/* Every subscriber is gone, so every queued reference is too. */
	for (int f = 0; f < NFANOUT; f++) {
		for (int i = 0; i < NMSGS; i++) {
			if (mrefs(sh->msgs[f][i]) != 1)
				fail_msg("message %d:%d has %u references left",
					 f, i, mrefs(sh->msgs[f][i]));
			msg_unref(sh->msgs[f][i]);
		}
	}
	free(sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sub_new),
		cmocka_unit_test(test_sub_new_ipv6),
		cmocka_unit_test(test_sub_queue),
		cmocka_unit_test(test_subscribe_new_and_again),
		cmocka_unit_test(test_subscribe_bad_address),
		cmocka_unit_test(test_remove_addr),
		cmocka_unit_test(test_subscribe_several),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_limit_total),
		cmocka_unit_test(test_limit_per_ip),
		cmocka_unit_test(test_limit_per_conn),
		cmocka_unit_test(test_held_slots_and_margin),
		cmocka_unit_test(test_changed),
		cmocka_unit_test(test_fanout_except),
		cmocka_unit_test(test_fanout_order),
		cmocka_unit_test(test_fanout_snapshot),
		cmocka_unit_test(test_fanout_waits_on_full_queue),
		cmocka_unit_test(test_fanout_closed_queue),
		cmocka_unit_test(test_fanout_wake),
		cmocka_unit_test(test_fanout_wakes_before_waiting),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_take_all),
		cmocka_unit_test(test_control),
		cmocka_unit_test(test_with_sender),
		cmocka_unit_test(test_concurrent_delivery),
		cmocka_unit_test(test_concurrent_churn),
	};

	alarm(600);	/* a deadlock fails the run instead of hanging it */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
