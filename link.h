/* link.h - an outgoing connection with its own sender thread.
 *
 * chat keeps one link per peer, chat5 one to the server.  Messages are
 * queued (bounded; the oldest are dropped when full) and written in order.
 * A lazy link connects only when its first message is queued.  When the
 * target cannot be reached or the connection breaks, the link says so once,
 * keeps the messages, and retries with a backoff (and at once on each new
 * message); when it reconnects it sends the greeting, then what waited.
 * Before each write it checks that the other side has not closed, so a
 * restarted peer does not swallow a message on the dead connection. */
#ifndef LINK_H
#define LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

#include "msg.h"

struct link_config {
	const char *label;		/* for log lines: "peer 127.0.0.1:5002" */
	const char *host;
	uint16_t port;
	bool lazy;
	size_t max_msgs, max_bytes;	/* queue bounds */
	/* Sent first on every new connection (chat5's subscribe); may be
	 * NULL, or return NULL to send nothing. */
	struct msg *(*greeting)(int fd, void *arg);
	/* Sent last when the link is closed, if connected (chat5's
	 * unsubscribe). */
	struct msg *(*farewell)(int fd, void *arg);
	/* JSON values the other side writes on this connection; NULL means
	 * discard them. */
	int (*on_value)(void *arg, struct json_object *obj);
	void *arg;
};

struct link;

/* Starts the link's thread.  fd: an already connected socket to use first
 * (chat5 connects before starting), or -1.  NULL with errno on failure. */
struct link *link_start(const struct link_config *cfg, int fd);

/* Queues m (the link takes its own reference). */
void link_send(struct link *l, struct msg *m);

/* Asks the link to deliver what is queued by deadline, send the farewell,
 * close and end.  A link that is not connected tries once more; one that
 * cannot reach its target gives up at once.  Does not wait. */
void link_close(struct link *l, const struct timespec *deadline);

/* Waits for the link's thread (forcing it to stop at the deadline given to
 * link_close), frees the link, and returns how many messages were never
 * delivered. */
uint64_t link_join(struct link *l);

#endif
