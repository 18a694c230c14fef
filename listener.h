/* listener.h - accepting connections, one reader thread each.
 *
 * A listener thread accepts; every accepted connection gets its own thread
 * running the caller's serve function.  Finished threads are joined as
 * they end (thread.h's reaper), so nothing piles up.
 *
 * Silence cannot hold the slots: at the limit, a new connection takes the
 * place of the longest-silent one that never sent anything useful (see
 * conn_heard), so a crowd of idle connections cannot lock real peers out.
 * listener_stop() stops accepting, shuts down every open connection (which
 * wakes its reader) and joins every thread. */
#ifndef LISTENER_H
#define LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"
#include "log.h"

/* An accepted connection.  Reference-counted because a relay subscriber
 * may keep writing to the connection it subscribed over; the descriptor is
 * closed when the last reference goes. */
struct conn {
	int fd;
	uint64_t id;			/* unique for the process's life */
	char peer[ADDR_STRLEN];		/* "IP:PORT" of the remote end */
	char peer_ip[ADDR_STRLEN];	/* the IP alone */
	uint16_t peer_port;
	char local_ip[ADDR_STRLEN];	/* our address it came to */
	uint16_t local_port;
	atomic_uint refs;
	atomic_bool ended;		/* its reader has finished */
	atomic_bool useful;		/* it sent a valid message */
	atomic_bool closing;		/* shut down to make room */
	atomic_bool delivers;		/* a relay subscriber's deliveries go
					 * over it (it does not listen) */
	_Atomic int64_t heard_ms;	/* when it last sent a byte */
	/* Every line this connection causes is charged here, whichever
	 * thread logs it. */
	struct log_budget budget;
};

struct conn *conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* Shuts the connection down (both ways) so a thread blocked on it wakes. */
void conn_shutdown(struct conn *c);

/* The connection sent something valid: it keeps its slot. */
void conn_heard(struct conn *c);

/* recv() that waits at most timeout_ms (-1: no limit).  Returns the bytes
 * read, 0 at end of stream, -1 with errno on an error, or -2 when the time
 * ran out. */
ssize_t conn_recv(struct conn *c, void *buf, size_t len, int timeout_ms);

struct listener_config {
	size_t max_conns;	/* accepted connections open at once */
	/* Runs on the connection's own thread. */
	void (*serve)(struct conn *c, void *arg);
	void *arg;
};

struct listener;

/* Listens on host (NULL: every address) and *port with SO_REUSEADDR and
 * starts accepting; *port gets the port actually used.  On failure, says
 * why ("cannot listen on port 5001: Address already in use") and exits 1. */
struct listener *listener_open(const char *host, uint16_t *port,
			       const struct listener_config *cfg);
void listener_stop(struct listener *l);

#endif
