/* subs.c - the relay's subscriber table. */
#include "subs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "thread.h"

struct sub *sub_new(const char *ip, uint16_t port, uint64_t origin,
		    size_t max_msgs, size_t max_bytes)
{
	struct sub *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	if (addr_join(ip, port, s->addr, sizeof s->addr) < 0 ||
	    msgq_init(&s->q, max_msgs, max_bytes) < 0) {
		free(s);
		return NULL;
	}
	snprintf(s->ip, sizeof s->ip, "%s", ip);
	s->port = port;
	atomic_init(&s->origin, origin);
	ref_init(&s->refs);
	return s;
}

struct sub *sub_ref(struct sub *s)
{
	ref_get(&s->refs);
	return s;
}

void sub_unref(struct sub *s)
{
	if (s && ref_put(&s->refs)) {
		msgq_destroy(&s->q);
		conn_unref(s->control);
		free(s);
	}
}

void subs_init(struct subtable *t, const struct subs_limits *lim,
	       struct wake *changed)
{
	memset(t, 0, sizeof *t);
	t->lim = *lim;
	t->changed = changed;
	atomic_init(&t->gen, 1);
	mutex_init(&t->lock);
}

void subs_destroy(struct subtable *t)
{
	free(t->v);
	t->v = NULL;
	mutex_destroy(&t->lock);
}

/* The table's lock is held for the helpers below. */

static void changed(struct subtable *t)
{
	atomic_fetch_add(&t->gen, 1);
	if (t->changed)
		wake_poke(t->changed);
}

/* Takes entry i out (order is not kept); returns the table's reference. */
static struct sub *take(struct subtable *t, size_t i)
{
	struct sub *s = t->v[i];

	t->v[i] = t->v[--t->n];
	t->v[t->n] = NULL;
	s->listed = false;
	changed(t);
	return s;
}

static size_t find(struct subtable *t, const char *addr)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->v[i]->addr, addr) == 0)
			return i;
	return (size_t)-1;
}

/* Whether connection origin holds as many subscriptions as it may. */
static const char *over_conn_limit(struct subtable *t, uint64_t origin)
{
	size_t i, same_conn = 0;

	for (i = 0; origin != 0 && i < t->n; i++)
		same_conn += atomic_load(&t->v[i]->origin) == origin;
	return same_conn >= t->lim.per_conn ? "too many subscriptions on one connection" : NULL;
}

/* Which limit, if any, refuses one more subscriber from ip over origin. */
static const char *over_limit(struct subtable *t, const char *ip, uint64_t origin)
{
	size_t i, same_ip = 0;

	for (i = 0; i < t->n; i++)
		same_ip += strcmp(t->v[i]->ip, ip) == 0;
	if (t->n >= t->lim.total)
		return "too many subscribers";
	if (t->held >= t->lim.total + t->lim.margin)
		return "too many subscribers still closing";
	if (same_ip >= t->lim.per_ip)
		return "too many subscribers from this address";
	return over_conn_limit(t, origin);
}

static bool append(struct subtable *t, struct sub *s)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct sub **v = realloc(t->v, cap * sizeof *v);

		if (!v)
			return false;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = sub_ref(s);
	s->listed = true;
	changed(t);
	return true;
}

struct sub *subs_subscribe(struct subtable *t, const char *ip, uint16_t port,
			   uint64_t origin, bool *again, const char **why)
{
	char addr[ADDR_STRLEN];
	struct sub *s = NULL;
	size_t i;

	*again = false;
	if (addr_join(ip, port, addr, sizeof addr) < 0) {
		*why = "bad address";
		return NULL;
	}
	lock(&t->lock);
	i = find(t, addr);
	if (i != (size_t)-1 && (atomic_load(&t->v[i]->origin) == origin ||
				(*why = over_conn_limit(t, origin)) == NULL)) {
		/* Taking one over counts against the new connection's limit. */
		s = sub_ref(t->v[i]);
		atomic_store(&s->origin, origin);
		*again = true;
	} else if (i == (size_t)-1 && (*why = over_limit(t, ip, origin)) == NULL) {
		s = sub_new(ip, port, origin, t->lim.queue_msgs, t->lim.queue_bytes);
		if (!s || !append(t, s)) {
			sub_unref(s);
			s = NULL;
			*why = "out of memory";
		} else {
			t->held++;
		}
	}
	unlock(&t->lock);
	return s;
}

void subs_release(struct subtable *t)
{
	lock(&t->lock);
	t->held--;
	unlock(&t->lock);
}

void subs_set_control(struct subtable *t, struct sub *s, struct conn *c)
{
	struct conn *old;

	lock(&t->lock);
	old = s->control;
	s->control = c ? conn_ref(c) : NULL;
	unlock(&t->lock);
	conn_unref(old);
}

struct conn *subs_control(struct subtable *t, struct sub *s)
{
	struct conn *c;

	lock(&t->lock);
	c = s->control ? conn_ref(s->control) : NULL;
	unlock(&t->lock);
	return c;
}

void subs_set_sender(struct subtable *t, struct sub *s, struct sender *sender)
{
	lock(&t->lock);
	s->sender = sender;
	unlock(&t->lock);
}

void subs_with_sender(struct subtable *t, struct sub *s,
		      void (*fn)(struct sender *sender, void *arg), void *arg)
{
	lock(&t->lock);
	if (s->sender)
		fn(s->sender, arg);
	unlock(&t->lock);
}

struct sub *subs_remove_addr(struct subtable *t, const char *addr)
{
	struct sub *s = NULL;
	size_t i;

	lock(&t->lock);
	i = find(t, addr);
	if (i != (size_t)-1)
		s = take(t, i);
	unlock(&t->lock);
	return s;
}

bool subs_remove(struct subtable *t, struct sub *s)
{
	bool found = false;
	size_t i;

	lock(&t->lock);
	for (i = 0; s->listed && i < t->n; i++) {
		if (t->v[i] == s) {
			take(t, i);
			found = true;
			break;
		}
	}
	unlock(&t->lock);
	if (found)
		sub_unref(s);	/* the table's reference */
	return found;
}

/* ---------------------------------------------------------------------
 * Fan-out
 * ------------------------------------------------------------------- */

static void drop_snapshot(struct fanout *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		sub_unref(f->v[i]);
	f->n = 0;
}

/* Takes the table again when it changed since the last snapshot. */
static void snapshot(struct subtable *t, struct fanout *f)
{
	uint64_t gen = atomic_load(&t->gen);

	if (gen == f->gen)
		return;
	drop_snapshot(f);
	lock(&t->lock);
	if (f->cap < t->n) {
		struct sub **v = realloc(f->v, t->n * sizeof *v);

		if (v) {
			f->v = v;
			f->cap = t->n;
		}
	}
	for (f->n = 0; f->n < t->n && f->n < f->cap; f->n++)
		f->v[f->n] = sub_ref(t->v[f->n]);
	f->gen = atomic_load(&t->gen);
	unlock(&t->lock);
}

static void owe(struct fanout *f, struct sub *s)
{
	if (f->nowed == f->capowed) {
		size_t cap = f->capowed ? f->capowed * 2 : 64;
		struct sub **v = realloc(f->owed, cap * sizeof *v);

		if (!v) {
			msgq_wake_consumer(&s->q);	/* now, then */
			return;
		}
		f->owed = v;
		f->capowed = cap;
	}
	f->owed[f->nowed++] = sub_ref(s);
}

void fanout_wake(struct fanout *f)
{
	size_t i;

	for (i = 0; i < f->nowed; i++) {
		msgq_wake_consumer(&f->owed[i]->q);
		sub_unref(f->owed[i]);
	}
	f->nowed = 0;
}

void fanout_free(struct fanout *f)
{
	fanout_wake(f);
	drop_snapshot(f);
	free(f->v);
	free(f->owed);
	memset(f, 0, sizeof *f);
}

size_t subs_fanout(struct subtable *t, struct fanout *f, struct msg *m,
		   uint64_t except)
{
	size_t i, n = 0;
	bool owed;

	snapshot(t, f);
	for (i = 0; i < f->n; i++) {
		struct sub *s = f->v[i];
		int rc;

		if (except != 0 && atomic_load(&s->origin) == except)
			continue;
		rc = msgq_offer(&s->q, m, NULL, &owed);
		if (rc == 0) {
			/* Full: whoever we owe a wake-up gets it before we
			 * wait, or they would sleep on their messages. */
			fanout_wake(f);
			rc = msgq_push(&s->q, m, &owed) == 0 ? 1 : -1;
		}
		if (rc < 0)
			continue;	/* gone meanwhile */
		if (owed)
			owe(f, s);
		n++;
	}
	return n;
}

size_t subs_count(struct subtable *t)
{
	size_t n;

	lock(&t->lock);
	n = t->n;
	unlock(&t->lock);
	return n;
}

char *subs_list(struct subtable *t)
{
	size_t i, len = 0;
	char *out;

	lock(&t->lock);
	out = malloc(t->n * (ADDR_STRLEN + 1) + 1);
	if (out) {
		for (i = 0; i < t->n; i++)
			len += (size_t)sprintf(out + len, "%s\n", t->v[i]->addr);
		out[len] = '\0';
	}
	unlock(&t->lock);
	return out;
}

struct sub **subs_take_all(struct subtable *t, size_t *n)
{
	struct sub **v;

	lock(&t->lock);
	v = malloc((t->n ? t->n : 1) * sizeof *v);
	*n = 0;
	if (v) {
		while (t->n > 0)
			v[(*n)++] = take(t, t->n - 1);
	}
	unlock(&t->lock);
	return v;
}
