/* msg.c - immutable, reference-counted byte buffers, and their pool. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "thread.h"

struct msg *msg_alloc(size_t len)
{
	struct msg *m = malloc(sizeof *m + len);

	if (!m)
		return NULL;
	ref_init(&m->refs);
	m->pool = NULL;
	m->len = len;
	return m;
}

struct msg *msg_new(const void *data, size_t len)
{
	struct msg *m = msg_alloc(len);

	if (m)
		memcpy(m->data, data, len);
	return m;
}

struct msg *msg_ref(struct msg *m)
{
	ref_get(&m->refs);
	return m;
}

static void credit(struct msgpool *p, size_t len)
{
	lock(&p->lock);
	p->bytes -= len;
	if (p->waiting)
		cond_broadcast(&p->room);
	unlock(&p->lock);
}

void msg_unref(struct msg *m)
{
	if (m && ref_put(&m->refs)) {
		if (m->pool)
			credit(m->pool, m->len);
		free(m);
	}
}

void msgpool_init(struct msgpool *p, size_t max_bytes)
{
	mutex_init(&p->lock);
	cond_init(&p->room);
	p->bytes = 0;
	p->max_bytes = max_bytes;
	p->waiting = 0;
	p->closed = false;
}

void msgpool_destroy(struct msgpool *p)
{
	cond_destroy(&p->room);
	mutex_destroy(&p->lock);
}

bool msgpool_charge(struct msgpool *p, struct msg *m)
{
	bool ok;

	lock(&p->lock);
	/* Below the bound, any message fits: one may pass it by its size. */
	while (p->bytes >= p->max_bytes && !p->closed) {
		p->waiting++;
		cond_wait(&p->room, &p->lock);
		p->waiting--;
	}
	ok = !p->closed;
	if (ok) {
		p->bytes += m->len;
		m->pool = p;
	}
	unlock(&p->lock);
	return ok;
}

void msgpool_close(struct msgpool *p)
{
	lock(&p->lock);
	p->closed = true;
	cond_broadcast(&p->room);
	unlock(&p->lock);
}
