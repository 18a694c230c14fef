/* listener.h - accepting connections, one reader thread each.
 *
 * A listener thread accepts; every accepted connection gets its own thread
 * running the caller's handler.  Finished threads are joined by the
 * listener thread as they end, so nothing piles up.  listener_stop() stops
 * accepting, shuts down every open connection (which wakes its reader) and
 * joins every thread. */
#ifndef LISTENER_H
#define LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "jstream.h"

/* An accepted connection.  Reference-counted because a relay subscriber
 * may keep writing to the connection it subscribed over; the descriptor is
 * closed when the last reference goes. */
struct conn {
	int fd;
	uint64_t id;			/* unique for the process's life */
	char peer[ADDR_STRLEN];		/* "IP:PORT" of the remote end */
	char peer_ip[ADDR_STRLEN];	/* the IP alone */
	atomic_uint refs;
	atomic_bool ended;		/* its reader has finished */
	void *data;			/* for the handler */
};

struct conn *conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* Shuts the connection down (both ways) so a thread blocked on it wakes. */
void conn_shutdown(struct conn *c);

/* Reads JSON values from c and hands them to h until end of stream, an
 * error, a limit (then logs why), or h stops.  A value left half-sent for
 * more than partial_timeout_ms (0: no limit) also ends it. */
void conn_read_json(struct conn *c, const struct jstream_handler *h,
		    int partial_timeout_ms);

typedef void (*conn_handler)(struct conn *c, void *arg);

struct listener_config {
	int fd;			/* a listening socket; the listener owns it */
	size_t max_conns;	/* accepted connections open at once */
	conn_handler handler;	/* runs on the connection's own thread */
	void *arg;
};

struct listener;

/* NULL with errno set on failure. */
struct listener *listener_start(const struct listener_config *cfg);
void listener_stop(struct listener *l);
size_t listener_open_conns(struct listener *l);

#endif
