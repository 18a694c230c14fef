/* msg.h - an immutable, reference-counted byte buffer.
 *
 * A message is serialized once and the same bytes are queued for every
 * peer or subscriber; the count is atomic because the last reference is
 * dropped by whichever sender thread finishes with it last. */
#ifndef MSG_H
#define MSG_H

#include <stdatomic.h>
#include <stddef.h>

struct msg {
	atomic_uint refs;
	size_t len;
	char data[];
};

/* A new message holding a copy of data, with one reference; NULL on ENOMEM. */
struct msg *msg_new(const void *data, size_t len);
struct msg *msg_ref(struct msg *m);
void msg_unref(struct msg *m);

#endif
