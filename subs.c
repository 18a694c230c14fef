/* subs.c - the relay's subscriber table. */
#include "subs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "thread.h"

struct sub *sub_new(const char *ip, uint16_t port, uint64_t origin,
		    size_t max_msgs, size_t max_bytes)
{
	struct sub *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	if (addr_join(ip, port, s->addr, sizeof s->addr) < 0 ||
	    msgq_init(&s->q, max_msgs, max_bytes, -1) < 0) {
		free(s);
		return NULL;
	}
	snprintf(s->ip, sizeof s->ip, "%s", ip);
	s->port = port;
	s->origin = origin;
	atomic_init(&s->refs, 1);
	return s;
}

struct sub *sub_ref(struct sub *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void sub_unref(struct sub *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
		msgq_destroy(&s->q);
		free(s);
	}
}

int subs_init(struct subtable *t, size_t max_total, size_t max_per_ip)
{
	memset(t, 0, sizeof *t);
	t->max_total = max_total;
	t->max_per_ip = max_per_ip;
	return pthread_mutex_init(&t->lock, NULL) == 0 ? 0 : -1;
}

void subs_destroy(struct subtable *t)
{
	free(t->v);
	t->v = NULL;
	pthread_mutex_destroy(&t->lock);
}

/* Takes entry i out (order is not kept); the table's lock is held.
 * Returns the table's reference. */
static struct sub *take(struct subtable *t, size_t i)
{
	struct sub *s = t->v[i];

	t->v[i] = t->v[--t->n];
	t->v[t->n] = NULL;
	s->listed = false;
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

int subs_add(struct subtable *t, struct sub *s, struct sub **replaced,
	     const char **why)
{
	size_t i, same_ip = 0, old;

	*replaced = NULL;
	lock(&t->lock);
	old = find(t, s->addr);
	for (i = 0; i < t->n; i++)
		if (i != old && strcmp(t->v[i]->ip, s->ip) == 0)
			same_ip++;
	if (old == (size_t)-1 && t->n >= t->max_total) {
		*why = "too many subscribers";
		goto refuse;
	}
	if (same_ip >= t->max_per_ip) {
		*why = "too many subscribers from this address";
		goto refuse;
	}
	if (old != (size_t)-1) {
		*replaced = take(t, old);
	} else if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct sub **v = realloc(t->v, cap * sizeof *v);

		if (!v) {
			*why = "out of memory";
			goto refuse;
		}
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = sub_ref(s);
	s->listed = true;
	unlock(&t->lock);
	return 0;
refuse:
	unlock(&t->lock);
	return -1;
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

/* Remembers that s's sender needs waking; wakes it now when out of room. */
static void owe_wakeup(struct sub_wakeups *w, struct sub *s)
{
	if (w && w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct sub **v = realloc(w->v, cap * sizeof *v);

		if (v) {
			w->v = v;
			w->cap = cap;
		}
	}
	if (w && w->n < w->cap)
		w->v[w->n++] = sub_ref(s);
	else
		msgq_wake_consumer(&s->q);
}

void subs_wake(struct sub_wakeups *w)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		msgq_wake_consumer(&w->v[i]->q);
		sub_unref(w->v[i]);
	}
	w->n = 0;
}

void subs_wakeups_free(struct sub_wakeups *w)
{
	subs_wake(w);
	free(w->v);
	w->v = NULL;
	w->cap = 0;
}

struct sub *subs_fanout(struct subtable *t, struct msg *m, uint64_t except,
			size_t *delivered, struct sub_wakeups *wakeups)
{
	struct sub *evicted = NULL;
	size_t i = 0, n = 0;
	bool wake;

	lock(&t->lock);
	while (i < t->n) {
		struct sub *s = t->v[i];

		if (except != 0 && s->origin == except) {
			i++;
			continue;
		}
		if (msgq_push_deferred(&s->q, m, &wake) < 0) {
			/* take() moves the last entry into slot i: look at
			 * slot i again. */
			take(t, i);
			s->next_evicted = evicted;
			evicted = s;
			continue;
		}
		if (wake)
			owe_wakeup(wakeups, s);
		n++;
		i++;
	}
	unlock(&t->lock);
	if (delivered)
		*delivered = n;
	return evicted;
}

size_t subs_count(struct subtable *t)
{
	size_t n;

	lock(&t->lock);
	n = t->n;
	unlock(&t->lock);
	return n;
}

struct sub **subs_take_all(struct subtable *t, size_t *n)
{
	struct sub **v;

	lock(&t->lock);
	v = malloc((t->n ? t->n : 1) * sizeof *v);
	if (v) {
		if (t->n)
			memcpy(v, t->v, t->n * sizeof *v);
		*n = t->n;
		while (t->n > 0)
			take(t, t->n - 1);
	} else {
		*n = 0;
	}
	unlock(&t->lock);
	return v;
}
