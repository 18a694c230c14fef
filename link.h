/* link.h - an outgoing connection with its own sender thread.
 *
 * chat keeps one link per peer, chat5 one to the server.  A link is the
 * end of the flow control chain on the sending side:
 *
 *  - while its peer is connected (or being connected to), its queue is
 *    bounded and link_offer says "full": the caller waits for room, so
 *    stdin is read no faster than the peer takes messages;
 *  - while its peer is down (refused, unreachable, broken, or stalled: it
 *    accepted nothing for the stall timeout), the queue keeps the newest
 *    messages and drops the oldest, and nobody waits for it.
 *
 * A lazy link connects only when its first message is queued.  When the
 * target cannot be reached or the connection breaks, the link says so
 * once, keeps the messages, and retries with a backoff (and at once on
 * each new message), trying the next target of its list first; when it
 * reconnects it sends the greeting, then what waited. */
#ifndef LINK_H
#define LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "addr.h"
#include "msg.h"
#include "wake.h"

struct link_target {
	char host[ADDR_HOSTLEN];
	uint16_t port;
	char name[ADDR_HOSTLEN + 8];	/* as given: "127.0.0.1:5002" */
	char label[ADDR_HOSTLEN + 16];	/* for log lines: "peer 127.0.0.1:5002" */
};

/* What the other side's values mean for the connection. */
enum link_verdict { LINK_GO_ON, LINK_RECONNECT };

struct link_config {
	const struct link_target *targets;	/* copied */
	size_t ntargets;
	bool lazy;
	size_t max_msgs, max_bytes;	/* queue bounds */
	int stall_ms;			/* no byte accepted this long: down */
	/* Poked when a full link gets room or goes down, and when it ends:
	 * the waiting main thread polls it.  Shared by all links. */
	struct wake *room;
	/* Sent first on every new connection to target t (chat5's
	 * subscribe); may be NULL, or return NULL to send nothing. */
	struct msg *(*greeting)(int fd, const struct link_target *t, void *arg);
	/* Sent last when the link is closed, if connected (chat5's
	 * unsubscribe). */
	struct msg *(*farewell)(int fd, const struct link_target *t, void *arg);
	/* JSON values the other side writes on this connection; NULL means
	 * discard them.  LINK_RECONNECT: it dropped us, and said so; connect
	 * again at once, quietly. */
	enum link_verdict (*on_value)(void *arg, struct json_object *obj);
	void *arg;
};

/* What became of the messages offered, reported at the end. */
struct link_report {
	uint64_t never_sent;	/* dropped while down, or still queued */
	uint64_t maybe_lost;	/* written into connections that broke */
};

struct link;

/* Starts the link's thread.  fd: an already connected socket to use first,
 * to targets[target] (chat5 connects before starting), or -1.  NULL with
 * errno on failure. */
struct link *link_start(const struct link_config *cfg, int fd, size_t target);

/* Queues m (the link takes its own reference).  1: queued (perhaps
 * dropping the oldest, while down); 0: full while connected, offer again
 * once cfg->room is poked; -1: the link is closed.  One producer only.
 * The link's thread is not woken at once: link_flush does it, once per
 * batch of lines, so that it writes them together. */
int link_offer(struct link *l, struct msg *m);
void link_flush(struct link *l);

/* Asks the link to deliver what is queued, send the farewell, close and
 * end: it goes on while the peer takes bytes, gives up on one that stalls
 * for the stall timeout, and tries a peer that is down once more.  With
 * now, it ends at once.  Does not wait. */
void link_close(struct link *l, bool now);
/* Whether its thread has ended (after link_close). */
bool link_ended(struct link *l);

/* Waits for the link's thread, frees the link, and fills *r. */
void link_join(struct link *l, struct link_report *r);

#endif
