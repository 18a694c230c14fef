/* trivial_relay.c - the least a relay speaking server5's protocol can do,
 * to measure chatbench's own ceiling.
 *
 *   trivial_relay [PORT]      (PORT 0 or none: any free port)
 *
 * One thread, one epoll loop, loopback IPv4.  No JSON parsing, no checks,
 * no limits beyond a 64 MiB output buffer per subscriber:
 *   - a line containing "operation": "subscribe" connects back to the
 *     connection's own IP at the port after the last ':' in the line;
 *   - a line containing "operation": "unsubscribe" closes that subscriber
 *     once what is queued for it is written;
 *   - any other non-empty line is copied, unchanged plus "\n", to every
 *     subscriber except those subscribed over the same connection.
 * Output is appended to per-subscriber buffers and written once per epoll
 * batch, so one write carries many messages when the load is high.
 * Prints "trivial_relay: listening on port P" on stderr when ready. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LINE 70000
#define MAX_OUT (64u << 20)
#define READ_BUF (256u << 10)

enum kind { LISTENER, CLIENT, SUB };

struct conn {
	int fd;
	enum kind kind;
	uint64_t id;			/* CLIENT: its id; SUB: origin's id */
	struct in_addr ip;		/* CLIENT: the peer; SUB: where to */
	uint16_t port;			/* SUB */
	bool dead, connecting, want_out, dirty, closing;
	char *part;
	size_t partlen;
	char *out;
	size_t outoff, outlen, outcap;
};

static int ep;
static struct conn **subs, **dirty;
static size_t nsubs, capsubs, ndirty, capdirty;
static uint64_t next_id = 1;
static char rbuf[READ_BUF + MAX_LINE];

static void fail(const char *what)
{
	fprintf(stderr, "trivial_relay: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "trivial_relay: out of memory\n");
		exit(1);
	}
	return p;
}

static void watch(struct conn *c, int op, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(ep, op, c->fd, &ev) < 0 && op != EPOLL_CTL_DEL)
		fail("epoll_ctl");
}

/* Dead connections are never freed: an event for one may still be in the
 * current batch.  (This is a benchmark tool; the leak is bounded by the
 * number of connections in a run.) */
static void conn_close(struct conn *c)
{
	size_t i;

	if (c->dead)
		return;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->dead = true;
	free(c->out);
	free(c->part);
	c->out = c->part = NULL;
	c->outoff = c->outlen = c->outcap = c->partlen = 0;
	if (c->kind == SUB)
		for (i = 0; i < nsubs; i++)
			if (subs[i] == c) {
				subs[i] = subs[--nsubs];
				break;
			}
}

static void flush(struct conn *c)
{
	while (!c->dead && !c->connecting && c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->want_out) {
					c->want_out = true;
					watch(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
				}
				return;
			}
			conn_close(c);
			return;
		}
		c->outoff += (size_t)n;
	}
	if (c->dead || c->connecting)
		return;
	c->outoff = c->outlen = 0;
	if (c->want_out) {
		c->want_out = false;
		watch(c, EPOLL_CTL_MOD, EPOLLIN);
	}
	if (c->closing)
		conn_close(c);
}

static void queue(struct conn *c, const char *data, size_t len)
{
	if (c->outlen + len > c->outcap) {
		if (c->outoff > 0) {
			memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
			c->outlen -= c->outoff;
			c->outoff = 0;
		}
		if (c->outlen + len > MAX_OUT) {
			fprintf(stderr, "trivial_relay: subscriber port %u not reading; dropped\n",
				(unsigned)c->port);
			conn_close(c);
			return;
		}
		while (c->outlen + len > c->outcap)
			c->outcap = c->outcap ? c->outcap * 2 : 16384;
		c->out = xrealloc(c->out, c->outcap);
	}
	memcpy(c->out + c->outlen, data, len);
	c->outlen += len;
	if (!c->dirty) {
		c->dirty = true;
		if (ndirty == capdirty) {
			capdirty = capdirty ? capdirty * 2 : 64;
			dirty = xrealloc(dirty, capdirty * sizeof *dirty);
		}
		dirty[ndirty++] = c;
	}
}

static struct conn *conn_new(int fd, enum kind kind, uint32_t events)
{
	struct conn *c = calloc(1, sizeof *c);

	if (!c) {
		fprintf(stderr, "trivial_relay: out of memory\n");
		exit(1);
	}
	c->fd = fd;
	c->kind = kind;
	watch(c, EPOLL_CTL_ADD, events);
	return c;
}

static void subscribe(struct conn *cl, const char *line, size_t len)
{
	struct sockaddr_in sin;
	const char *colon = NULL, *p;
	unsigned long port = 0;
	struct conn *s;
	int fd, one = 1;

	for (p = line; p < line + len; p++)
		if (*p == ':')
			colon = p;
	if (!colon)
		return;
	for (p = colon + 1; p < line + len && *p >= '0' && *p <= '9'; p++)
		port = port * 10 + (unsigned long)(*p - '0');
	if (port == 0 || port > 65535)
		return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr = cl->ip;
	sin.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0 && errno != EINPROGRESS) {
		close(fd);
		return;
	}
	s = conn_new(fd, SUB, EPOLLIN | EPOLLOUT);
	s->connecting = true;
	s->want_out = true;
	s->id = cl->id;
	s->ip = cl->ip;
	s->port = (uint16_t)port;
	if (nsubs == capsubs) {
		capsubs = capsubs ? capsubs * 2 : 64;
		subs = xrealloc(subs, capsubs * sizeof *subs);
	}
	subs[nsubs++] = s;
}

static void unsubscribe(struct conn *cl, const char *line, size_t len)
{
	const char *colon = NULL, *p;
	unsigned long port = 0;
	size_t i;

	for (p = line; p < line + len; p++)
		if (*p == ':')
			colon = p;
	if (!colon)
		return;
	for (p = colon + 1; p < line + len && *p >= '0' && *p <= '9'; p++)
		port = port * 10 + (unsigned long)(*p - '0');
	for (i = 0; i < nsubs; i++)
		if (subs[i]->port == port && subs[i]->ip.s_addr == cl->ip.s_addr) {
			subs[i]->closing = true;
			if (subs[i]->outlen == subs[i]->outoff && !subs[i]->connecting)
				conn_close(subs[i]);
			return;
		}
}

static void on_line(struct conn *cl, char *line, size_t len)
{
	size_t i;

	if (len == 0)
		return;
	if (memmem(line, len, "\"operation\": \"subscribe\"", 24)) {
		subscribe(cl, line, len);
		return;
	}
	if (memmem(line, len, "\"operation\": \"unsubscribe\"", 26)) {
		unsubscribe(cl, line, len);
		return;
	}
	line[len] = '\n';	/* the byte was the '\n' that ended it */
	for (i = 0; i < nsubs; i++)
		if (subs[i]->id != cl->id && !subs[i]->closing)
			queue(subs[i], line, len + 1);
}

static void on_client(struct conn *c)
{
	int round;

	for (round = 0; round < 16 && !c->dead; round++) {
		size_t have = c->partlen;
		ssize_t n;
		char *p, *e, *nl;

		if (have)
			memcpy(rbuf, c->part, have);
		n = recv(c->fd, rbuf + have, READ_BUF, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		p = rbuf;
		e = rbuf + have + (size_t)n;
		while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
			on_line(c, p, (size_t)(nl - p));
			p = nl + 1;
		}
		c->partlen = (size_t)(e - p);
		if (c->partlen > MAX_LINE)
			c->partlen = 0;
		if (c->partlen) {
			if (!c->part)
				c->part = xrealloc(NULL, MAX_LINE);
			memcpy(c->part, p, c->partlen);
		}
		if ((size_t)n < READ_BUF)
			return;
	}
}

static void on_sub(struct conn *s, uint32_t ev)
{
	char buf[512];

	if (s->connecting && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t len = sizeof err;

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			conn_close(s);
			return;
		}
		s->connecting = false;
		flush(s);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			conn_close(s);
			return;
		}
	}
	if (ev & EPOLLOUT)
		flush(s);
}

static void on_accept(struct conn *l)
{
	int round;

	for (round = 0; round < 64; round++) {
		struct sockaddr_in sin;
		socklen_t len = sizeof sin;
		int fd = accept4(l->fd, (struct sockaddr *)&sin, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0)
			return;
		c = conn_new(fd, CLIENT, EPOLLIN);
		c->id = next_id++;
		c->ip = sin.sin_addr;
	}
}

int main(int argc, char **argv)
{
	struct epoll_event ev[512];
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	struct rlimit rl;
	unsigned long port = 0;
	int fd, one = 1;

	if (argc > 2 || (argc == 2 && (argv[1][0] < '0' || argv[1][0] > '9'))) {
		fprintf(stderr, "usage: trivial_relay [PORT]\n");
		return 2;
	}
	if (argc == 2)
		port = strtoul(argv[1], NULL, 10);
	if (port > 65535) {
		fprintf(stderr, "usage: trivial_relay [PORT]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		fail("epoll_create1");
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, SOMAXCONN) < 0)
		fail("listen");
	if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		fail("getsockname");
	conn_new(fd, LISTENER, EPOLLIN);
	fprintf(stderr, "trivial_relay: listening on port %u\n", (unsigned)ntohs(sin.sin_port));

	for (;;) {
		int n = epoll_wait(ep, ev, 512, -1), i;
		size_t k;

		if (n < 0 && errno != EINTR)
			fail("epoll_wait");
		for (i = 0; i < n; i++) {
			struct conn *c = ev[i].data.ptr;

			if (c->dead)
				continue;
			switch (c->kind) {
			case LISTENER: on_accept(c); break;
			case CLIENT: on_client(c); break;
			case SUB: on_sub(c, ev[i].events); break;
			}
		}
		/* One write per subscriber per batch. */
		for (k = 0; k < ndirty; k++) {
			dirty[k]->dirty = false;
			flush(dirty[k]);
		}
		ndirty = 0;
	}
}
