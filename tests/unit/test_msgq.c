/* test_msgq.c - unit tests for msgq.c (bounded FIFO of message
 * references). */
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
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "msgq.h"
#include "thread.h"

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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec deadline_in(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
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

/* ---- FIFO and references -------------------------------------------- */

static void test_fifo_order(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[5], *out[8];

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	assert_int_equal(msgq_count(&q), 0);
	assert_false(msgq_closed(&q));
	for (int i = 0; i < 5; i++) {
		char s[8];

		snprintf(s, sizeof s, "m%d", i);
		m[i] = mk(s);
		assert_int_equal(msgq_push(&q, m[i], MSGQ_REJECT), 0);
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

/* Wraps around the ring many times. */
static void test_fifo_wraparound(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[7], *out[4];
	int next_push = 0, next_pop = 0;

	for (int i = 0; i < 7; i++) {
		char s[8];

		snprintf(s, sizeof s, "w%d", i);
		m[i] = mk(s);
	}
	assert_int_equal(msgq_init(&q, 4, 1000, -1), 0);
	for (int round = 0; round < 100; round++) {
		while (msgq_count(&q) < 3) {
			assert_int_equal(msgq_push(&q, m[next_push % 7],
						   MSGQ_REJECT), 0);
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

	assert_int_equal(msgq_init(&q1, 10, 1000, -1), 0);
	assert_int_equal(msgq_init(&q2, 10, 1000, -1), 0);
	/* Each push takes its own reference; the caller keeps its own. */
	assert_int_equal(msgq_push(&q1, m, MSGQ_REJECT), 0);
	assert_int_equal(refs(m), 2);
	assert_int_equal(msgq_push(&q2, m, MSGQ_REJECT), 0);
	assert_int_equal(refs(m), 3);
	assert_int_equal(msgq_push(&q1, m, MSGQ_REJECT), 0);
	assert_int_equal(refs(m), 4);
	/* Popping hands the queue's reference over: no change. */
	assert_int_equal(msgq_pop(&q1, out, 1, false, NULL), 1);
	assert_ptr_equal(out[0], m);
	assert_int_equal(refs(m), 4);
	msg_unref(out[0]);
	assert_int_equal(refs(m), 3);
	/* clear drops the queue's references. */
	assert_int_equal(msgq_clear(&q1), 1);
	assert_int_equal(refs(m), 2);
	assert_int_equal(msgq_count(&q1), 0);
	/* destroy drops what is still queued. */
	msgq_destroy(&q2);
	assert_int_equal(refs(m), 1);
	msgq_destroy(&q1);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
}

/* ---- limits and policies -------------------------------------------- */

static void test_count_limit_reject(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[4];

	for (int i = 0; i < 4; i++)
		m[i] = mk("x");
	assert_int_equal(msgq_init(&q, 3, 1000, -1), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(msgq_push(&q, m[i], MSGQ_REJECT), 0);
	assert_int_equal(msgq_push(&q, m[3], MSGQ_REJECT), -1);
	assert_int_equal(refs(m[3]), 1);	/* no reference taken */
	assert_int_equal(msgq_count(&q), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(refs(m[i]), 2);
	expect_contents(&q, m, 3);		/* unchanged, in order */
	/* Room again. */
	assert_int_equal(msgq_push(&q, m[3], MSGQ_REJECT), 0);
	expect_contents(&q, m + 3, 1);
	msgq_destroy(&q);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

static void test_byte_limit_reject(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *a = mk_len(6), *b = mk_len(5), *c = mk_len(4), *d = mk_len(1);
	struct msg *want[2] = { a, c };

	assert_int_equal(msgq_init(&q, 100, 10, -1), 0);
	assert_int_equal(msgq_push(&q, a, MSGQ_REJECT), 0);
	assert_int_equal(msgq_push(&q, b, MSGQ_REJECT), -1);	/* 11 > 10 */
	assert_int_equal(refs(b), 1);
	assert_int_equal(msgq_count(&q), 1);
	assert_int_equal(msgq_push(&q, c, MSGQ_REJECT), 0);	/* 10: fits */
	assert_int_equal(msgq_push(&q, d, MSGQ_REJECT), -1);
	assert_int_equal(msgq_count(&q), 2);
	expect_contents(&q, want, 2);
	/* Bytes are given back when popped. */
	assert_int_equal(msgq_push(&q, b, MSGQ_REJECT), 0);
	assert_int_equal(msgq_push(&q, c, MSGQ_REJECT), 0);
	assert_int_equal(msgq_push(&q, d, MSGQ_REJECT), 0);
	assert_int_equal(msgq_count(&q), 3);
	assert_int_equal(msgq_clear(&q), 3);
	msgq_destroy(&q);
	assert_int_equal(refs(a), 1);
	assert_int_equal(refs(b), 1);
	assert_int_equal(refs(c), 1);
	assert_int_equal(refs(d), 1);
	msg_unref(a);
	msg_unref(b);
	msg_unref(c);
	msg_unref(d);
}

static void test_count_limit_drop_oldest(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m[6];

	for (int i = 0; i < 6; i++)
		m[i] = mk("y");
	assert_int_equal(msgq_init(&q, 3, 1000, -1), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(msgq_push(&q, m[i], MSGQ_DROP_OLDEST), 0);
	assert_int_equal(msgq_push(&q, m[3], MSGQ_DROP_OLDEST), 1);
	assert_int_equal(refs(m[0]), 1);	/* dropped: reference gone */
	assert_int_equal(msgq_count(&q), 3);
	assert_int_equal(msgq_push(&q, m[4], MSGQ_DROP_OLDEST), 1);
	assert_int_equal(msgq_push(&q, m[5], MSGQ_DROP_OLDEST), 1);
	assert_int_equal(refs(m[1]), 1);
	assert_int_equal(refs(m[2]), 1);
	expect_contents(&q, m + 3, 3);		/* the newest three */
	msgq_destroy(&q);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

static void test_byte_limit_drop_oldest(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *a = mk_len(4), *b = mk_len(4), *c = mk_len(9), *d = mk_len(1);
	struct msg *want[2] = { c, d };

	assert_int_equal(msgq_init(&q, 100, 10, -1), 0);
	assert_int_equal(msgq_push(&q, a, MSGQ_DROP_OLDEST), 0);
	assert_int_equal(msgq_push(&q, b, MSGQ_DROP_OLDEST), 0);
	/* 9 more bytes: both 4-byte messages must go. */
	assert_int_equal(msgq_push(&q, c, MSGQ_DROP_OLDEST), 2);
	assert_int_equal(refs(a), 1);
	assert_int_equal(refs(b), 1);
	assert_int_equal(msgq_count(&q), 1);
	assert_int_equal(msgq_push(&q, d, MSGQ_DROP_OLDEST), 0);	/* 10 */
	expect_contents(&q, want, 2);
	msgq_destroy(&q);
	msg_unref(a);
	msg_unref(b);
	msg_unref(c);
	msg_unref(d);
}

/* ---- close, wake, deadline ------------------------------------------ */

static void test_closed_push_fails(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *m = mk("z"), *out[4];

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	assert_int_equal(msgq_push(&q, m, MSGQ_REJECT), 0);
	assert_int_equal(msgq_push(&q, m, MSGQ_REJECT), 0);
	msgq_close(&q);
	assert_true(msgq_closed(&q));
	assert_int_equal(msgq_push(&q, m, MSGQ_REJECT), -1);
	assert_int_equal(msgq_push(&q, m, MSGQ_DROP_OLDEST), -1);
	assert_int_equal(refs(m), 3);
	/* Drains what is left, then 0 at once even with wait. */
	assert_int_equal(msgq_pop(&q, out, 1, true, NULL), 1);
	msg_unref(out[0]);
	assert_int_equal(msgq_pop(&q, out, 4, true, NULL), 1);
	msg_unref(out[0]);
	{
		int64_t t0 = now_ms();
		struct timespec dl = deadline_in(5000);

		assert_int_equal(msgq_pop(&q, out, 4, true, &dl), 0);
		assert_true(now_ms() - t0 < 1000);
	}
	assert_int_equal(refs(m), 1);
	msgq_destroy(&q);
	msg_unref(m);
}

struct popper {
	struct msgq *q;
	size_t max;
	int64_t wait_ms;	/* deadline from the start; <0: none */
	size_t got;
	struct msg *out[16];
	int64_t started, elapsed;
	atomic_bool running;
};

static void *pop_thread(void *arg)
{
	struct popper *p = arg;
	struct timespec dl;

	p->started = now_ms();
	if (p->wait_ms >= 0)
		dl = deadline_in(p->wait_ms);
	atomic_store(&p->running, true);
	p->got = msgq_pop(p->q, p->out, p->max, true,
			  p->wait_ms >= 0 ? &dl : NULL);
	p->elapsed = now_ms() - p->started;
	return NULL;
}

static bool consumer_waiting(struct msgq *q)
{
	bool w;

	pthread_mutex_lock(&q->lock);
	w = q->waiting;
	pthread_mutex_unlock(&q->lock);
	return w;
}

static void start_popper(pthread_t *t, struct popper *p, struct msgq *q,
			 int64_t wait_ms)
{
	memset(p, 0, sizeof *p);
	p->q = q;
	p->max = 16;
	p->wait_ms = wait_ms;
	atomic_init(&p->running, false);
	assert_int_equal(pthread_create(t, NULL, pop_thread, p), 0);
	while (!atomic_load(&p->running))
		sched_yield();
	/* Until it sleeps in msgq_pop (bounded: 5 s). */
	for (int i = 0; i < 5000 && !consumer_waiting(q); i++)
		sleep_ms(1);
}

static void test_close_wakes_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct popper p;
	pthread_t t;

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	start_popper(&t, &p, &q, 5000);
	msgq_close(&q);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.got, 0);
	if (p.elapsed >= 2000)
		fail_msg("consumer woke only after %lld ms (deadline 5000 ms)",
			 (long long)p.elapsed);
	msgq_destroy(&q);
}

/* With no deadline at all, close still wakes the consumer. */
static void test_close_wakes_consumer_no_deadline(void **state)
{
	(void)state;
	struct msgq q;
	struct popper p;
	pthread_t t;

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	start_popper(&t, &p, &q, -1);
	msgq_close(&q);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.got, 0);
	msgq_destroy(&q);
}

static void test_push_wakes_consumer(void **state)
{
	(void)state;
	struct msgq q;
	struct popper p;
	pthread_t t;
	struct msg *m = mk("wake");

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	start_popper(&t, &p, &q, 5000);
	assert_int_equal(msgq_push(&q, m, MSGQ_REJECT), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.got, 1);
	assert_ptr_equal(p.out[0], m);
	assert_true(p.elapsed < 2000);
	msg_unref(p.out[0]);
	msgq_destroy(&q);
	assert_int_equal(refs(m), 1);
	msg_unref(m);
}

/* A deferred push owes exactly one wake-up to a sleeping consumer, and
 * the consumer then gets every message pushed meanwhile in one pop. */
static void test_deferred_push_wakes_once(void **state)
{
	(void)state;
	struct msgq q;
	struct popper p;
	pthread_t t;
	struct msg *a = mk("a"), *b = mk("b");
	bool wake;

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	/* Nobody waits yet: nothing is owed. */
	assert_int_equal(msgq_push_deferred(&q, a, &wake), 0);
	assert_false(wake);
	assert_int_equal(msgq_pop(&q, p.out, 16, false, NULL), 1);
	msg_unref(p.out[0]);

	start_popper(&t, &p, &q, 5000);
	while (!consumer_waiting(&q))
		sched_yield();
	assert_int_equal(msgq_push_deferred(&q, a, &wake), 0);
	assert_true(wake);
	assert_int_equal(msgq_push_deferred(&q, b, &wake), 0);
	assert_false(wake);	/* already owed */
	msgq_wake_consumer(&q);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.got, 2);
	assert_ptr_equal(p.out[0], a);
	assert_ptr_equal(p.out[1], b);
	assert_true(p.elapsed < 2000);
	msg_unref(p.out[0]);
	msg_unref(p.out[1]);
	/* A full or closed queue refuses, as MSGQ_REJECT. */
	msgq_close(&q);
	assert_int_equal(msgq_push_deferred(&q, a, &wake), -1);
	msgq_destroy(&q);
	assert_int_equal(refs(a), 1);
	msg_unref(a);
	msg_unref(b);
}

static void test_deadline_timeout(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *out[4];
	struct timespec dl;
	int64_t t0, el;

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	t0 = now_ms();
	dl = deadline_in(300);
	assert_int_equal(msgq_pop(&q, out, 4, true, &dl), 0);
	el = now_ms() - t0;
	if (el < 250 || el > 1500)
		fail_msg("300 ms deadline returned after %lld ms", (long long)el);

	/* A deadline already past returns at once. */
	t0 = now_ms();
	dl = deadline_in(0);
	dl.tv_sec -= 1;
	assert_int_equal(msgq_pop(&q, out, 4, true, &dl), 0);
	assert_true(now_ms() - t0 < 200);
	msgq_destroy(&q);
}

/* thread.h's mono_after builds the same kind of deadline. */
static void test_deadline_mono_after(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *out[4];
	struct timespec dl;
	int64_t t0, el;

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	t0 = now_ms();
	dl = mono_after(200);
	assert_int_equal(msgq_pop(&q, out, 4, true, &dl), 0);
	el = now_ms() - t0;
	if (el < 150 || el > 1500)
		fail_msg("200 ms deadline returned after %lld ms", (long long)el);
	msgq_destroy(&q);
}

static void test_wake_once(void **state)
{
	(void)state;
	struct msgq q;
	struct popper p;
	pthread_t t;
	struct msg *out[4];
	struct timespec dl;
	int64_t t0, el;

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	start_popper(&t, &p, &q, 5000);
	msgq_wake(&q);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.got, 0);
	if (p.elapsed >= 2000)
		fail_msg("msgq_wake: consumer woke only after %lld ms",
			 (long long)p.elapsed);
	assert_false(msgq_closed(&q));

	/* Once: the next wait runs to its deadline. */
	t0 = now_ms();
	dl = deadline_in(300);
	assert_int_equal(msgq_pop(&q, out, 4, true, &dl), 0);
	el = now_ms() - t0;
	if (el < 250)
		fail_msg("second wait after one msgq_wake returned after %lld ms",
			 (long long)el);

	/* Not closed: pushes still work. */
	{
		struct msg *m = mk("after wake");

		assert_int_equal(msgq_push(&q, m, MSGQ_REJECT), 0);
		assert_int_equal(msgq_pop(&q, out, 4, true, NULL), 1);
		msg_unref(out[0]);
		msg_unref(m);
	}
	msgq_destroy(&q);
}

/* A wake that comes just before the consumer starts waiting is not lost
 * (the queue keeps a woken flag). */
static void test_wake_before_wait(void **state)
{
	(void)state;
	struct msgq q;
	struct msg *out[4];
	struct timespec dl;
	int64_t t0, el;

	assert_int_equal(msgq_init(&q, 10, 1000, -1), 0);
	msgq_wake(&q);
	t0 = now_ms();
	dl = deadline_in(3000);
	assert_int_equal(msgq_pop(&q, out, 4, true, &dl), 0);
	el = now_ms() - t0;
	if (el >= 1000)
		fail_msg("a wake before the wait was lost (%lld ms)",
			 (long long)el);
	/* ... and consumed. */
	t0 = now_ms();
	dl = deadline_in(200);
	assert_int_equal(msgq_pop(&q, out, 4, true, &dl), 0);
	assert_true(now_ms() - t0 >= 150);
	msgq_destroy(&q);
}

/* ---- wake_fd -------------------------------------------------------- */

static bool readable(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 1 && (pfd.revents & POLLIN);
}

static size_t drain(int fd)
{
	char buf[4096];
	size_t total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof buf)) > 0)
		total += (size_t)n;
	return total;
}

static void test_wake_fd(void **state)
{
	(void)state;
	int p[2];
	struct msgq q;
	struct msg *m = mk("fd"), *out[4];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(msgq_init(&q, 100000, 1u << 30, p[1]), 0);
	assert_false(readable(p[0], 0));

	for (int i = 0; i < 3; i++) {
		assert_int_equal(msgq_push(&q, m, MSGQ_REJECT), 0);
		if (!readable(p[0], 1000))
			fail_msg("no byte on the wake pipe after push %d", i);
		assert_true(drain(p[0]) >= 1);
		assert_false(readable(p[0], 0));
	}
	assert_int_equal(msgq_pop(&q, out, 4, false, NULL), 3);
	for (int i = 0; i < 3; i++)
		msg_unref(out[i]);

	/* A full pipe never blocks a producer. */
	for (int i = 0; i < 70000; i++)
		assert_int_equal(msgq_push(&q, m, MSGQ_REJECT), 0);
	assert_int_equal(msgq_count(&q), 70000);
	assert_true(readable(p[0], 0));
	drain(p[0]);
	assert_int_equal(msgq_clear(&q), 70000);
	assert_int_equal(refs(m), 1);

	/* A push after draining pokes again. */
	assert_int_equal(msgq_push(&q, m, MSGQ_REJECT), 0);
	assert_true(readable(p[0], 1000));
	drain(p[0]);
	msgq_destroy(&q);
	close(p[0]);
	close(p[1]);
	msg_unref(m);
}

/* ---- concurrency ---------------------------------------------------- */

#define NPROD 4
#define PER_PROD 10000

struct producer {
	struct msgq *q;
	int id;
	long rejected;
	int failed;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < PER_PROD; i++) {
		char s[32];
		int n = snprintf(s, sizeof s, "%d:%d", p->id, i);
		struct msg *m = msg_new(s, (size_t)n);
		long rc;

		if (m == NULL) {
			p->failed = 1;
			return NULL;
		}
		/* Never blocks: a full queue refuses, so retry. */
		while ((rc = msgq_push(p->q, m, MSGQ_REJECT)) == -1) {
			if (msgq_closed(p->q)) {
				p->failed = 1;
				msg_unref(m);
				return NULL;
			}
			p->rejected++;
			sched_yield();
		}
		if (rc != 0)
			p->failed = 1;
		msg_unref(m);
	}
	return NULL;
}

static void test_concurrent_producers(void **state)
{
	(void)state;
	struct msgq q;
	pthread_t t[NPROD];
	struct producer prod[NPROD];
	int next[NPROD] = { 0 };
	size_t total = 0;
	int64_t t0 = now_ms();
	int bad = 0;

	assert_int_equal(msgq_init(&q, 256, 1u << 20, -1), 0);
	for (int i = 0; i < NPROD; i++) {
		prod[i] = (struct producer){ .q = &q, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, produce, &prod[i]), 0);
	}
	while (total < NPROD * PER_PROD && now_ms() - t0 < 60000) {
		struct msg *out[64];
		struct timespec dl = deadline_in(200);
		size_t n = msgq_pop(&q, out, 64, true, &dl);

		for (size_t k = 0; k < n; k++) {
			int id = -1, seq = -1;
			char s[32];

			assert_true(out[k]->len < sizeof s);
			memcpy(s, out[k]->data, out[k]->len);
			s[out[k]->len] = '\0';
			if (sscanf(s, "%d:%d", &id, &seq) != 2 || id < 0 ||
			    id >= NPROD || seq != next[id]) {
				if (!bad)
					print_error("out of order: got %s, "
						    "expected seq %d\n", s,
						    id >= 0 && id < NPROD ?
						    next[id] : -1);
				bad = 1;
			} else {
				next[id]++;
			}
			msg_unref(out[k]);
		}
		total += n;
	}
	for (int i = 0; i < NPROD; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_false(bad);
	assert_int_equal(total, NPROD * PER_PROD);
	for (int i = 0; i < NPROD; i++) {
		assert_int_equal(prod[i].failed, 0);
		assert_int_equal(next[i], PER_PROD);
	}
	assert_int_equal(msgq_count(&q), 0);
	msgq_destroy(&q);
}

/* Producers racing a close: every push either lands (and is popped) or is
 * refused; none is lost or counted twice. */
struct racer {
	struct msgq *q;
	struct msg *m;
	long pushed;
};

static void *push_until_closed(void *arg)
{
	struct racer *r = arg;

	for (;;) {
		long rc = msgq_push(r->q, r->m, MSGQ_REJECT);

		if (rc == 0)
			r->pushed++;
		else if (msgq_closed(r->q))
			break;
		else
			sched_yield();
	}
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

	assert_int_equal(msgq_init(&q, 64, 1u << 20, -1), 0);
	for (int i = 0; i < 3; i++) {
		r[i] = (struct racer){ .q = &q, .m = m };
		assert_int_equal(pthread_create(&t[i], NULL, push_until_closed,
						&r[i]), 0);
	}
	for (int i = 0; i < 2000; i++) {
		struct timespec dl = deadline_in(100);

		n = msgq_pop(&q, out, 64, true, &dl);
		for (size_t k = 0; k < n; k++)
			msg_unref(out[k]);
		popped += (long)n;
	}
	msgq_close(&q);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
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
		cmocka_unit_test(test_fifo_wraparound),
		cmocka_unit_test(test_refs),
		cmocka_unit_test(test_count_limit_reject),
		cmocka_unit_test(test_byte_limit_reject),
		cmocka_unit_test(test_count_limit_drop_oldest),
		cmocka_unit_test(test_byte_limit_drop_oldest),
		cmocka_unit_test(test_closed_push_fails),
		cmocka_unit_test(test_close_wakes_consumer),
		cmocka_unit_test(test_close_wakes_consumer_no_deadline),
		cmocka_unit_test(test_push_wakes_consumer),
		cmocka_unit_test(test_deferred_push_wakes_once),
		cmocka_unit_test(test_deadline_timeout),
		cmocka_unit_test(test_deadline_mono_after),
		cmocka_unit_test(test_wake_once),
		cmocka_unit_test(test_wake_before_wait),
		cmocka_unit_test(test_wake_fd),
		cmocka_unit_test(test_concurrent_producers),
		cmocka_unit_test(test_close_race),
	};

	alarm(300);	/* a consumer that is never woken fails, not hangs */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
