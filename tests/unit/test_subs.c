/* test_subs.c - unit tests for subs.c (the relay's subscriber table). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "msgq.h"
#include "subs.h"

/* ---- helpers -------------------------------------------------------- */

static unsigned srefs(struct sub *s)
{
	return atomic_load(&s->refs);
}

static unsigned mrefs(struct msg *m)
{
	return atomic_load(&m->refs);
}

static struct sub *mksub(const char *ip, uint16_t port, uint64_t origin,
			 size_t max_msgs)
{
	struct sub *s = sub_new(ip, port, origin, max_msgs, 1u << 20);

	assert_non_null(s);
	return s;
}

static struct msg *mkmsg(const char *s)
{
	struct msg *m = msg_new(s, strlen(s));

	assert_non_null(m);
	return m;
}

static void add_ok(struct subtable *t, struct sub *s)
{
	struct sub *replaced = NULL;
	const char *why = NULL;

	if (subs_add(t, s, &replaced, &why) != 0)
		fail_msg("subs_add(%s) refused: %s", s->addr,
			 why ? why : "(no why)");
	assert_null(replaced);
	assert_true(s->listed);
}

static void add_refused(struct subtable *t, struct sub *s)
{
	struct sub *replaced = NULL;
	const char *why = NULL;
	unsigned before = srefs(s);
	size_t n = subs_count(t);

	if (subs_add(t, s, &replaced, &why) != -1)
		fail_msg("subs_add(%s) accepted over the limit", s->addr);
	assert_non_null(why);
	assert_true(why[0] != '\0');
	assert_null(replaced);
	assert_false(s->listed);
	assert_int_equal(srefs(s), before);	/* no reference kept */
	assert_int_equal(subs_count(t), n);
}

/* Drops every queued message of s. */
static size_t qdrain(struct sub *s)
{
	return msgq_clear(&s->q);
}

/* Whether subs_remove hands the table's reference to the caller (true) or
 * drops it (false).  subs.h does not say; the tests adapt. */
static bool remove_transfers;

/* ---- sub_new / refs ------------------------------------------------- */

static void test_sub_new(void **state)
{
	(void)state;
	struct sub *s = sub_new("127.0.0.1", 5001, 7, 10, 1000);

	assert_non_null(s);
	assert_string_equal(s->addr, "127.0.0.1:5001");
	assert_string_equal(s->ip, "127.0.0.1");
	assert_int_equal(s->port, 5001);
	assert_int_equal(s->origin, 7);
	assert_int_equal(srefs(s), 1);
	assert_false(s->listed);
	assert_int_equal(msgq_count(&s->q), 0);
	assert_false(msgq_closed(&s->q));
	assert_ptr_equal(sub_ref(s), s);
	assert_int_equal(srefs(s), 2);
	sub_unref(s);
	assert_int_equal(srefs(s), 1);
	sub_unref(s);
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
}

/* The queue is bounded by sub_new's limits and dropped with the last
 * reference. */
static void test_sub_queue(void **state)
{
	(void)state;
	struct sub *s = sub_new("127.0.0.1", 5001, 7, 2, 1000);
	struct msg *m = mkmsg("queued");

	assert_int_equal(msgq_push(&s->q, m, MSGQ_REJECT), 0);
	assert_int_equal(msgq_push(&s->q, m, MSGQ_REJECT), 0);
	assert_int_equal(msgq_push(&s->q, m, MSGQ_REJECT), -1);
	assert_int_equal(mrefs(m), 3);
	sub_ref(s);
	sub_unref(s);
	assert_int_equal(mrefs(m), 3);
	sub_unref(s);
	assert_int_equal(mrefs(m), 1);
	msg_unref(m);
}

/* ---- add / remove / replace ----------------------------------------- */

static void test_add_and_remove_addr(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *s = mksub("127.0.0.1", 5001, 1, 10), *got;

	assert_int_equal(subs_init(&t, 10, 10), 0);
	assert_int_equal(subs_count(&t), 0);
	add_ok(&t, s);
	assert_int_equal(subs_count(&t), 1);
	assert_int_equal(srefs(s), 2);		/* the table's own */

	assert_null(subs_remove_addr(&t, "127.0.0.1:5002"));
	assert_null(subs_remove_addr(&t, "127.0.0.2:5001"));
	assert_null(subs_remove_addr(&t, "127.0.0.1"));
	assert_int_equal(subs_count(&t), 1);

	got = subs_remove_addr(&t, "127.0.0.1:5001");
	assert_ptr_equal(got, s);
	assert_false(s->listed);
	assert_int_equal(subs_count(&t), 0);
	assert_int_equal(srefs(s), 2);		/* now the caller's */
	assert_null(subs_remove_addr(&t, "127.0.0.1:5001"));
	sub_unref(got);
	sub_unref(s);
	subs_destroy(&t);
}

static void test_add_several_lookup(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *s[5];
	char addr[ADDR_STRLEN];

	assert_int_equal(subs_init(&t, 10, 10), 0);
	for (int i = 0; i < 5; i++) {
		s[i] = mksub(i % 2 ? "10.0.0.1" : "::1", (uint16_t)(5000 + i),
			     (uint64_t)i + 1, 10);
		add_ok(&t, s[i]);
	}
	assert_int_equal(subs_count(&t), 5);
	/* Take them out in another order. */
	for (int k = 0; k < 5; k++) {
		int i = (k * 3) % 5;
		struct sub *got;

		snprintf(addr, sizeof addr, i % 2 ? "10.0.0.1:%d" : "[::1]:%d",
			 5000 + i);
		got = subs_remove_addr(&t, addr);
		if (got != s[i])
			fail_msg("subs_remove_addr(%s) did not return it", addr);
		assert_int_equal(subs_count(&t), (size_t)(4 - k));
		sub_unref(got);
		sub_unref(s[i]);
	}
	subs_destroy(&t);
}

static void test_replace(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *s1 = mksub("127.0.0.1", 5001, 1, 10);
	struct sub *s2 = mksub("127.0.0.1", 5001, 2, 10);
	struct sub *other = mksub("127.0.0.1", 5002, 1, 10);
	struct sub *replaced = NULL, *got;
	const char *why = NULL;

	assert_int_equal(subs_init(&t, 10, 10), 0);
	add_ok(&t, s1);
	add_ok(&t, other);		/* another port: not a replacement */
	assert_int_equal(subs_count(&t), 2);

	assert_int_equal(subs_add(&t, s2, &replaced, &why), 0);
	assert_ptr_equal(replaced, s1);
	assert_false(s1->listed);
	assert_true(s2->listed);
	assert_int_equal(subs_count(&t), 2);
	assert_int_equal(srefs(s1), 2);		/* mine + the returned one */
	assert_int_equal(srefs(s2), 2);
	sub_unref(replaced);

	/* The stale one cannot take out its replacement. */
	assert_false(subs_remove(&t, s1));
	assert_int_equal(subs_count(&t), 2);
	assert_true(s2->listed);
	assert_int_equal(srefs(s1), 1);

	got = subs_remove_addr(&t, "127.0.0.1:5001");
	assert_ptr_equal(got, s2);
	sub_unref(got);
	got = subs_remove_addr(&t, "127.0.0.1:5002");
	assert_ptr_equal(got, other);
	sub_unref(got);
	assert_int_equal(subs_count(&t), 0);
	sub_unref(s1);
	sub_unref(s2);
	sub_unref(other);
	subs_destroy(&t);
}

static void test_remove(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *s = mksub("127.0.0.1", 5001, 1, 10);
	struct sub *never = mksub("127.0.0.1", 5009, 1, 10);
	unsigned after;

	assert_int_equal(subs_init(&t, 10, 10), 0);
	add_ok(&t, s);
	assert_int_equal(srefs(s), 2);
	assert_true(subs_remove(&t, s));
	assert_false(s->listed);
	assert_int_equal(subs_count(&t), 0);
	after = srefs(s);
	/* subs.h does not say who gets the table's reference. */
	if (after != 1 && after != 2)
		fail_msg("after subs_remove: %u references (1 or 2 expected)",
			 after);
	remove_transfers = after == 2;
	print_message("note: subs_remove %s the table's reference\n",
		      remove_transfers ? "hands the caller" : "drops");
	assert_false(subs_remove(&t, s));	/* twice: false */
	assert_int_equal(srefs(s), after);
	assert_int_equal(subs_count(&t), 0);

	assert_false(subs_remove(&t, never));	/* never added */
	assert_int_equal(srefs(never), 1);

	/* After a removal it can be added again. */
	add_ok(&t, never);
	assert_int_equal(subs_count(&t), 1);
	assert_ptr_equal(subs_remove_addr(&t, "127.0.0.1:5009"), never);
	sub_unref(never);
	sub_unref(never);
	while (after-- > 0)
		sub_unref(s);
	subs_destroy(&t);
}

/* ---- limits --------------------------------------------------------- */

static void test_limits(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *a1 = mksub("127.0.0.1", 1, 1, 10);
	struct sub *a2 = mksub("127.0.0.1", 2, 1, 10);
	struct sub *a3 = mksub("127.0.0.1", 3, 1, 10);
	struct sub *b1 = mksub("10.0.0.1", 1, 2, 10);
	struct sub *c1 = mksub("10.0.0.2", 1, 3, 10);
	struct sub *a1x = mksub("127.0.0.1", 1, 4, 10);
	struct sub *b1x = mksub("10.0.0.1", 1, 5, 10);
	struct sub *replaced = NULL, *got;
	const char *why = NULL;

	assert_int_equal(subs_init(&t, 3, 2), 0);
	add_ok(&t, a1);
	add_ok(&t, a2);
	add_refused(&t, a3);		/* third for 127.0.0.1: per-IP */
	add_ok(&t, b1);
	assert_int_equal(subs_count(&t), 3);
	add_refused(&t, c1);		/* fourth in all: total */

	/* Replacements do not count against either limit. */
	assert_int_equal(subs_add(&t, a1x, &replaced, &why), 0);
	assert_ptr_equal(replaced, a1);
	sub_unref(replaced);
	replaced = NULL;
	assert_int_equal(subs_add(&t, b1x, &replaced, &why), 0);
	assert_ptr_equal(replaced, b1);
	sub_unref(replaced);
	assert_int_equal(subs_count(&t), 3);

	/* Room again after a removal. */
	got = subs_remove_addr(&t, "127.0.0.1:2");
	assert_ptr_equal(got, a2);
	sub_unref(got);
	add_ok(&t, a3);
	add_refused(&t, c1);
	got = subs_remove_addr(&t, "10.0.0.1:1");
	assert_ptr_equal(got, b1x);
	sub_unref(got);
	add_ok(&t, c1);
	assert_int_equal(subs_count(&t), 3);

	{
		size_t n = 0;
		struct sub **all = subs_take_all(&t, &n);

		assert_int_equal(n, 3);
		for (size_t i = 0; i < n; i++)
			sub_unref(all[i]);
		free(all);
	}
	sub_unref(a1);
	sub_unref(a2);
	sub_unref(a3);
	sub_unref(b1);
	sub_unref(c1);
	sub_unref(a1x);
	sub_unref(b1x);
	subs_destroy(&t);
}

/* ---- fanout --------------------------------------------------------- */

static void test_fanout_except(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *s1 = mksub("127.0.0.1", 1, 1, 10);
	struct sub *s2 = mksub("127.0.0.1", 2, 2, 10);
	struct sub *s3 = mksub("127.0.0.2", 3, 1, 10);
	struct msg *m = mkmsg("hello");
	size_t delivered = 99;

	assert_int_equal(subs_init(&t, 10, 10), 0);

	/* Empty table. */
	assert_null(subs_fanout(&t, m, 0, &delivered, NULL));
	assert_int_equal(delivered, 0);
	assert_int_equal(mrefs(m), 1);

	add_ok(&t, s1);
	add_ok(&t, s2);
	add_ok(&t, s3);

	/* Not to those that subscribed over connection 1. */
	assert_null(subs_fanout(&t, m, 1, &delivered, NULL));
	assert_int_equal(delivered, 1);
	assert_int_equal(msgq_count(&s1->q), 0);
	assert_int_equal(msgq_count(&s2->q), 1);
	assert_int_equal(msgq_count(&s3->q), 0);
	assert_int_equal(mrefs(m), 2);

	/* except 0: everyone. */
	assert_null(subs_fanout(&t, m, 0, &delivered, NULL));
	assert_int_equal(delivered, 3);
	assert_int_equal(mrefs(m), 5);

	/* A connection nobody subscribed over: everyone; NULL delivered. */
	assert_null(subs_fanout(&t, m, 42, NULL, NULL));
	assert_int_equal(mrefs(m), 8);
	assert_int_equal(msgq_count(&s1->q), 2);
	assert_int_equal(msgq_count(&s2->q), 3);
	assert_int_equal(msgq_count(&s3->q), 2);

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
	{
		size_t n = 0;
		struct sub **all = subs_take_all(&t, &n);

		assert_int_equal(n, 3);
		for (size_t i = 0; i < n; i++)
			sub_unref(all[i]);
		free(all);
	}
	sub_unref(s1);
	sub_unref(s2);
	sub_unref(s3);
	assert_int_equal(mrefs(m), 1);
	msg_unref(m);
	subs_destroy(&t);
}

/* Messages from one sender keep their order in every queue. */
static void test_fanout_order(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *s1 = mksub("127.0.0.1", 1, 1, 100);
	struct sub *s2 = mksub("127.0.0.1", 2, 2, 100);
	struct msg *m[20], *out[32];

	assert_int_equal(subs_init(&t, 10, 10), 0);
	add_ok(&t, s1);
	add_ok(&t, s2);
	for (int i = 0; i < 20; i++) {
		char buf[8];

		snprintf(buf, sizeof buf, "%d", i);
		m[i] = mkmsg(buf);
		assert_null(subs_fanout(&t, m[i], 0, NULL, NULL));
	}
	for (int k = 0; k < 2; k++) {
		struct sub *s = k ? s2 : s1;

		assert_int_equal(msgq_pop(&s->q, out, 32, false, NULL), 20);
		for (int i = 0; i < 20; i++) {
			assert_ptr_equal(out[i], m[i]);
			msg_unref(out[i]);
		}
	}
	assert_ptr_equal(subs_remove_addr(&t, "127.0.0.1:1"), s1);
	assert_ptr_equal(subs_remove_addr(&t, "127.0.0.1:2"), s2);
	sub_unref(s1);
	sub_unref(s1);
	sub_unref(s2);
	sub_unref(s2);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(mrefs(m[i]), 1);
		msg_unref(m[i]);
	}
	subs_destroy(&t);
}

static void test_fanout_evicts_full(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *small = mksub("127.0.0.1", 1, 1, 1);
	struct sub *big = mksub("127.0.0.1", 2, 2, 10);
	struct msg *m1 = mkmsg("one"), *m2 = mkmsg("two"), *m3 = mkmsg("three");
	struct sub *ev;
	size_t delivered = 0;

	assert_int_equal(subs_init(&t, 10, 10), 0);
	add_ok(&t, small);
	add_ok(&t, big);

	assert_null(subs_fanout(&t, m1, 0, &delivered, NULL));
	assert_int_equal(delivered, 2);

	/* small is full: taken out and handed back. */
	ev = subs_fanout(&t, m2, 0, &delivered, NULL);
	assert_ptr_equal(ev, small);
	assert_null(ev->next_evicted);
	assert_false(small->listed);
	assert_int_equal(delivered, 1);
	assert_int_equal(subs_count(&t), 1);
	assert_int_equal(srefs(small), 2);	/* mine + the evicted one */
	assert_int_equal(mrefs(m2), 2);		/* only big took it */
	assert_int_equal(msgq_count(&big->q), 2);
	assert_null(subs_remove_addr(&t, "127.0.0.1:1"));

	/* No longer listed: later fan-outs skip it. */
	assert_null(subs_fanout(&t, m3, 0, &delivered, NULL));
	assert_int_equal(delivered, 1);
	assert_int_equal(mrefs(m3), 2);

	sub_unref(ev);
	sub_unref(small);			/* its queue goes with it */
	assert_int_equal(mrefs(m1), 2);		/* big still holds m1 */
	{
		size_t n = 0;
		struct sub **all = subs_take_all(&t, &n);

		assert_int_equal(n, 1);
		assert_ptr_equal(all[0], big);
		sub_unref(all[0]);
		free(all);
	}
	sub_unref(big);
	assert_int_equal(mrefs(m1), 1);
	assert_int_equal(mrefs(m2), 1);
	assert_int_equal(mrefs(m3), 1);
	msg_unref(m1);
	msg_unref(m2);
	msg_unref(m3);
	subs_destroy(&t);
}

/* Full by bytes; and several evicted at once come back as a list. */
static void test_fanout_evicts_several(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *a = sub_new("127.0.0.1", 1, 1, 100, 10);	/* 10 bytes */
	struct sub *b = mksub("127.0.0.1", 2, 2, 1);
	struct sub *c = mksub("127.0.0.2", 3, 3, 100);
	struct msg *m = mkmsg("8 bytes!");
	struct sub *ev, *seen[4];
	int nseen = 0;
	size_t delivered = 0;

	assert_non_null(a);
	assert_int_equal(subs_init(&t, 10, 10), 0);
	add_ok(&t, a);
	add_ok(&t, b);
	add_ok(&t, c);
	assert_null(subs_fanout(&t, m, 0, &delivered, NULL));
	assert_int_equal(delivered, 3);
	ev = subs_fanout(&t, m, 0, &delivered, NULL);
	assert_int_equal(delivered, 1);
	for (struct sub *s = ev; s != NULL; s = s->next_evicted) {
		assert_true(nseen < 3);
		seen[nseen++] = s;
		assert_false(s->listed);
	}
	assert_int_equal(nseen, 2);
	assert_true((seen[0] == a && seen[1] == b) ||
		    (seen[0] == b && seen[1] == a));
	assert_int_equal(subs_count(&t), 1);
	for (int i = 0; i < nseen; i++)
		sub_unref(seen[i]);
	assert_ptr_equal(subs_remove_addr(&t, "127.0.0.2:3"), c);
	sub_unref(c);
	sub_unref(a);
	sub_unref(b);
	sub_unref(c);
	assert_int_equal(mrefs(m), 1);
	msg_unref(m);
	subs_destroy(&t);
}

/* A full subscriber that is skipped (its own connection) is not evicted. */
static void test_fanout_except_full_not_evicted(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *s = mksub("127.0.0.1", 1, 5, 1);
	struct msg *m = mkmsg("x");
	size_t delivered = 9;

	assert_int_equal(subs_init(&t, 10, 10), 0);
	add_ok(&t, s);
	assert_null(subs_fanout(&t, m, 0, &delivered, NULL));
	assert_int_equal(delivered, 1);
	assert_null(subs_fanout(&t, m, 5, &delivered, NULL));
	assert_int_equal(delivered, 0);
	assert_true(s->listed);
	assert_int_equal(subs_count(&t), 1);
	/* Drained, it takes messages again. */
	assert_int_equal(qdrain(s), 1);
	assert_null(subs_fanout(&t, m, 0, &delivered, NULL));
	assert_int_equal(delivered, 1);
	assert_ptr_equal(subs_remove_addr(&t, "127.0.0.1:1"), s);
	sub_unref(s);
	sub_unref(s);
	assert_int_equal(mrefs(m), 1);
	msg_unref(m);
	subs_destroy(&t);
}

/* ---- take_all ------------------------------------------------------- */

static void test_take_all(void **state)
{
	(void)state;
	struct subtable t;
	struct sub *s[3];
	struct sub **all;
	size_t n = 99;

	assert_int_equal(subs_init(&t, 10, 10), 0);
	all = subs_take_all(&t, &n);
	assert_int_equal(n, 0);
	free(all);

	for (int i = 0; i < 3; i++) {
		s[i] = mksub("127.0.0.1", (uint16_t)(100 + i), 1, 10);
		add_ok(&t, s[i]);
	}
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
		assert_int_equal(srefs(s[i]), 2);
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
	s[0] = mksub("127.0.0.1", 100, 1, 10);
	add_ok(&t, s[0]);
	all = subs_take_all(&t, &n);
	assert_int_equal(n, 1);
	sub_unref(all[0]);
	free(all);
	sub_unref(s[0]);
	subs_destroy(&t);
}

/* ---- concurrency ---------------------------------------------------- */

#define NADDERS 2
#define NREMOVERS 2
#define NFANOUT 3
#define NMSGS 2000
#define RUN_MS 700

struct shared {
	struct subtable t;
	atomic_long adds, refused, replaced, removed, evicted, delivered;
	atomic_bool stop;		/* set by the main thread after RUN_MS */
	atomic_long fanouts;
	struct msg *msgs[NFANOUT][NMSGS];
};

static uint32_t rnd(uint32_t *st)
{
	*st = *st * 1103515245u + 12345u;
	return *st >> 16;
}

static const char *ips[] = { "127.0.0.1", "127.0.0.2", "::1" };

static void *adder(void *arg)
{
	struct shared *sh = arg;
	uint32_t st = (uint32_t)(uintptr_t)&st;
	struct sub *keep = NULL;

	while (!atomic_load(&sh->stop)) {
		struct sub *s = sub_new(ips[rnd(&st) % 3],
					(uint16_t)(1 + rnd(&st) % 6),
					1 + rnd(&st) % 4,
					rnd(&st) % 2 ? 4 : 1000, 1u << 20);
		struct sub *replaced = NULL;
		const char *why = NULL;

		if (s == NULL)
			continue;
		if (subs_add(&sh->t, s, &replaced, &why) == 0) {
			atomic_fetch_add(&sh->adds, 1);
			if (replaced) {
				atomic_fetch_add(&sh->replaced, 1);
				sub_unref(replaced);
			}
		} else {
			atomic_fetch_add(&sh->refused, 1);
		}
		/* Like a sender thread: later remove the one it holds. */
		if (keep) {
			if (subs_remove(&sh->t, keep)) {
				atomic_fetch_add(&sh->removed, 1);
				if (remove_transfers)
					sub_unref(keep);
			}
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

		snprintf(addr, sizeof addr, ip[0] == ':' ? "[%s]:%u" : "%s:%u",
			 ip, 1 + rnd(&st) % 6);
		s = subs_remove_addr(&sh->t, addr);
		if (s) {
			atomic_fetch_add(&sh->removed, 1);
			sub_unref(s);
		}
		(void)subs_count(&sh->t);
	}
	return NULL;
}

struct fanner {
	struct shared *sh;
	int id;
};

static void *fanner(void *arg)
{
	struct fanner *f = arg;
	struct shared *sh = f->sh;
	uint32_t st = (uint32_t)f->id * 7919u + 1;

	for (int i = 0; !atomic_load(&sh->stop); i++) {
		size_t delivered = 0;
		struct sub *ev = subs_fanout(&sh->t, sh->msgs[f->id][i % NMSGS],
					     rnd(&st) % 6, &delivered, NULL);

		atomic_fetch_add(&sh->fanouts, 1);

		atomic_fetch_add(&sh->delivered, (long)delivered);
		while (ev) {
			struct sub *next = ev->next_evicted;

			atomic_fetch_add(&sh->evicted, 1);
			sub_unref(ev);
			ev = next;
		}
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	(void)state;
	struct shared *sh = calloc(1, sizeof *sh);
	pthread_t ta[NADDERS], tr[NREMOVERS], tf[NFANOUT];
	struct fanner fa[NFANOUT];
	struct sub **all;
	size_t n = 0;
	long listed;

	assert_non_null(sh);
	assert_int_equal(subs_init(&sh->t, 10, 4), 0);
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
		assert_int_equal(pthread_create(&tf[i], NULL, fanner, &fa[i]), 0);
	}
	{
		struct timespec ts = { RUN_MS / 1000, (RUN_MS % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	atomic_store(&sh->stop, true);
	for (int i = 0; i < NADDERS; i++)
		assert_int_equal(pthread_join(ta[i], NULL), 0);
	for (int i = 0; i < NREMOVERS; i++)
		assert_int_equal(pthread_join(tr[i], NULL), 0);
	for (int i = 0; i < NFANOUT; i++)
		assert_int_equal(pthread_join(tf[i], NULL), 0);

	listed = atomic_load(&sh->adds) - atomic_load(&sh->replaced) -
		 atomic_load(&sh->removed) - atomic_load(&sh->evicted);
	print_message("fanouts %ld adds %ld refused %ld replaced %ld removed %ld "
		      "evicted %ld delivered %ld listed %ld\n",
		      atomic_load(&sh->fanouts), atomic_load(&sh->adds),
		      atomic_load(&sh->refused), atomic_load(&sh->replaced),
		      atomic_load(&sh->removed), atomic_load(&sh->evicted),
		      atomic_load(&sh->delivered), listed);
	assert_true(atomic_load(&sh->adds) > 0);
	assert_true(atomic_load(&sh->fanouts) > 0);
	assert_true(atomic_load(&sh->evicted) > 0);
	assert_int_equal(subs_count(&sh->t), (size_t)listed);

	all = subs_take_all(&sh->t, &n);
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
			fail_msg("%zu subscribers for %s (limit 4)", same_ip,
				 all[i]->ip);
		assert_int_equal(srefs(all[i]), 1);	/* nobody else */
	}
	for (size_t i = 0; i < n; i++)
		sub_unref(all[i]);
	free(all);
	assert_int_equal(subs_count(&sh->t), 0);
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
		cmocka_unit_test(test_add_and_remove_addr),
		cmocka_unit_test(test_add_several_lookup),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_fanout_except),
		cmocka_unit_test(test_fanout_order),
		cmocka_unit_test(test_fanout_evicts_full),
		cmocka_unit_test(test_fanout_evicts_several),
		cmocka_unit_test(test_fanout_except_full_not_evicted),
		cmocka_unit_test(test_take_all),
		cmocka_unit_test(test_concurrent),
	};

	alarm(300);	/* a deadlock fails the run instead of hanging it */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
