/* net.h - socket setup and byte-level I/O shared by all three programs. */
#ifndef NET_H
#define NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum net_peer { NET_PEER_OPEN, NET_PEER_CLOSED, NET_PEER_RESET };

/* Opens a listening TCP socket on host:port with SO_REUSEADDR.  host NULL
 * means every address: an IPv6 dual-stack socket where the system has IPv6,
 * else IPv4.  Returns the descriptor, or -1 with the reason in err
 * ("Address already in use"). */
int net_listen(const char *host, uint16_t port, char *err, size_t errsz);

/* The port a bound socket actually got (for PORT 0). */
uint16_t net_local_port(int fd);

/* Connects to host:port, trying every address getaddrinfo returns, each
 * for at most timeout_ms.  Returns a non-blocking descriptor with TCP_NODELAY,
 * or -1 with a reason written to err and errno set (ECONNREFUSED when
 * nothing listens there). */
int net_connect(const char *host, uint16_t port, int timeout_ms,
		char *err, size_t errsz);
/* The same, but each socket is bound to a port of its own first and
 * handed to bound(fd, arg) before it connects: so the caller knows its
 * local port before the other side can see the connection. */
int net_connect_bound(const char *host, uint16_t port, int timeout_ms,
		      char *err, size_t errsz, void (*bound)(int fd, void *arg),
		      void *arg);

/* Whether the other side has closed a connection we only write to, and
 * how.  Data the peer sent us is discarded.  Used before writing, so that
 * a restarted peer's old connection is noticed instead of swallowing the
 * next message. */
enum net_peer net_peer_state(int fd);

/* Whether an errno from a socket means the peer reset the connection. */
bool net_is_reset(int err);

/* Sends our FIN, then waits up to timeout_ms for the peer's EOF, so our
 * last bytes are not destroyed by a reset.  NET_PEER_CLOSED: the peer
 * closed cleanly, having read everything; NET_PEER_RESET: it reset the
 * connection; NET_PEER_OPEN: it kept it open.  net_close_gracefully
 * also closes fd, and says whether the close was clean. */
enum net_peer net_finish(int fd, int timeout_ms);
bool net_close_gracefully(int fd, int timeout_ms);


#endif
