/* msg.c - immutable, reference-counted byte buffers. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

struct msg *msg_new(const void *data, size_t len)
{
	struct msg *m = malloc(sizeof *m + len);

	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->len = len;
	memcpy(m->data, data, len);
	return m;
}

struct msg *msg_ref(struct msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void msg_unref(struct msg *m)
{
	/* acq_rel: the thread that frees must see every other thread's
	 * last use of the buffer. */
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}
