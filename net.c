/* net.c - socket setup (getaddrinfo, dual-stack) and byte-level I/O. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "thread.h"

static int set_nonblocking(int fd, int on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -1;
	flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, flags);
}

/* close() without losing the errno that explains an earlier failure. */
static void close_keep_errno(int fd)
{
	int saved = errno;

	close(fd);
	errno = saved;
}

/* Binds and listens on one address; -1 with errno and *what on failure. */
static int listen_on(int family, const struct sockaddr *sa, socklen_t salen,
		     int v6only, const char **what)
{
	int one = 1;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		*what = "socket";
		return -1;
	}
	/* A restarted server must get its port back at once. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
		*what = "setsockopt SO_REUSEADDR";
		goto fail;
	}
	if (family == AF_INET6 && v6only >= 0 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
		*what = "setsockopt IPV6_V6ONLY";
		goto fail;
	}
	if (bind(fd, sa, salen) < 0) {
		*what = "bind";
		goto fail;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		*what = "listen";
		goto fail;
	}
	return fd;
fail:
	close_keep_errno(fd);
	return -1;
}

static int listen_any(const char *host, uint16_t port, const char **what)
{
	struct addrinfo hints, *res, *ai;
	char portstr[8];
	int fd = -1, rc;

	if (!host) {
		/* Dual-stack first: one IPv6 socket that also takes IPv4. */
		struct sockaddr_in6 sin6;
		struct sockaddr_in sin;

		memset(&sin6, 0, sizeof sin6);
		sin6.sin6_family = AF_INET6;
		sin6.sin6_addr = in6addr_any;
		sin6.sin6_port = htons(port);
		fd = listen_on(AF_INET6, (struct sockaddr *)&sin6, sizeof sin6, 0, what);
		if (fd >= 0 || (errno != EAFNOSUPPORT && errno != EPROTONOSUPPORT &&
				errno != EADDRNOTAVAIL))
			return fd;
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_ANY);
		sin.sin_port = htons(port);
		return listen_on(AF_INET, (struct sockaddr *)&sin, sizeof sin, -1, what);
	}

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		*what = gai_strerror(rc);
		errno = 0;
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		/* An explicit IPv6 address means IPv6 only. */
		fd = listen_on(ai->ai_family, ai->ai_addr, ai->ai_addrlen, 1, what);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

int net_listen(const char *host, uint16_t port, char *err, size_t errsz)
{
	const char *what = "listen";
	int fd = listen_any(host, port, &what);

	if (fd < 0)
		snprintf(err, errsz, "%s", errno ? strerror(errno) : what);
	return fd;
}

uint16_t net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* Non-blocking connect bounded by timeout_ms; the socket stays
 * non-blocking.  0, or -1 with errno. */
static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len,
			   int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	struct timespec deadline = mono_after(timeout_ms);
	socklen_t errlen = sizeof(int);
	int err = 0, rc;

	if (set_nonblocking(fd, 1) < 0)
		return -1;
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS && errno != EINTR)
			return -1;
		do {
			rc = poll(&p, 1, mono_ms_until(&deadline));
		} while (rc < 0 && errno == EINTR);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
			return -1;
		if (err != 0) {
			errno = err;
			return -1;
		}
	}
	return 0;
}

/* Binds fd to an ephemeral port of the address family. */
static int bind_any(int fd, int family)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(&ss, 0, sizeof ss);
	ss.ss_family = (sa_family_t)family;
	len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	return bind(fd, (struct sockaddr *)&ss, len);
}

int net_connect(const char *host, uint16_t port, int timeout_ms, char *err,
		size_t errsz)
{
	return net_connect_bound(host, port, timeout_ms, err, errsz, NULL, NULL);
}

int net_connect_bound(const char *host, uint16_t port, int timeout_ms, char *err,
		      size_t errsz, void (*bound)(int fd, void *arg), void *arg)
{
	struct addrinfo hints, *res, *ai;
	char portstr[8];
	int fd = -1, rc, one = 1, saved = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(portstr, sizeof portstr, "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, errsz, "%s", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		errno = EHOSTUNREACH;
		return -1;
	}
	snprintf(err, errsz, "no usable address");
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0 || (bound && bind_any(fd, ai->ai_family) < 0)) {
			saved = errno;
			snprintf(err, errsz, "%s", strerror(errno));
			if (fd >= 0)
				close(fd);
			fd = -1;
			continue;
		}
		if (bound)
			bound(fd, arg);
		if (connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms) == 0)
			break;
		saved = errno;
		snprintf(err, errsz, "%s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	errno = saved;
	/* Chat lines are small and interactive: send them at once. */
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

enum net_peer net_peer_state(int fd)
{
	char buf[512];
	int rounds;

	/* Bounded: a peer that keeps talking cannot keep us here. */
	for (rounds = 0; rounds < 64; rounds++) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n > 0)
			continue;
		if (n == 0)
			return NET_PEER_CLOSED;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return NET_PEER_OPEN;
		return net_is_reset(errno) ? NET_PEER_RESET : NET_PEER_CLOSED;
	}
	return NET_PEER_OPEN;
}

bool net_is_reset(int err)
{
	return err == ECONNRESET || err == EPIPE;
}

enum net_peer net_finish(int fd, int timeout_ms)
{
	struct timespec deadline = mono_after(timeout_ms);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[512];

	if (shutdown(fd, SHUT_WR) < 0)
		return net_is_reset(errno) ? NET_PEER_RESET : NET_PEER_OPEN;
	while (poll(&p, 1, mono_ms_until(&deadline)) > 0) {
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n == 0)
			return NET_PEER_CLOSED;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return net_is_reset(errno) ? NET_PEER_RESET : NET_PEER_OPEN;
	}
	return NET_PEER_OPEN;
}

bool net_close_gracefully(int fd, int timeout_ms)
{
	bool clean = net_finish(fd, timeout_ms) == NET_PEER_CLOSED;

	close(fd);
	return clean;
}
