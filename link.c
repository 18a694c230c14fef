/* link.c - an outgoing connection owned by one sender thread.
 *
 * The thread owns the socket (non-blocking) and waits in poll() on it and
 * on a wake pipe that link_send and link_close poke.  It reads whatever
 * the other side sends (to notice its EOF, and for chat5, deliveries) and
 * writes queued messages in order.  Messages taken off the queue stay "in
 * flight" until completely written, so a broken connection loses none:
 * they are written again, from their first byte, on the next connection. */
#include "link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "addr.h"
#include "jstream.h"
#include "log.h"
#include "msgq.h"
#include "net.h"
#include "proto.h"
#include "thread.h"

#define BATCH 64			/* messages written per writev */
#define CONNECT_TIMEOUT_MS 3000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CLOSE_LINGER_MS 1000		/* waiting for the peer's EOF at the end */

struct link {
	struct link_config cfg;
	char label[ADDR_STRLEN + 16];
	char host[ADDR_HOSTLEN];
	struct msgq q;
	int wake[2];
	pthread_t thread;

	pthread_mutex_t lock;		/* guards closing and deadline */
	bool closing;
	struct timespec deadline;

	/* Owned by the link's thread. */
	int fd;
	struct msg *front;		/* greeting or farewell, before the rest */
	struct msg *inflight[BATCH];
	size_t ninflight;
	size_t sent;			/* bytes of the first pending message written */
	struct jstream *js;
	unsigned complaints;
	bool warned;			/* said "cannot reach" for this outage */
	bool farewell_sent;
	bool tried_at_close;
	int backoff_ms;
	struct timespec next_try;
	uint64_t dropped;
	uint64_t undelivered;
};

static void poke(struct link *l)
{
	char b = 1;

	if (write(l->wake[1], &b, 1) < 0) {
		/* full: the thread will wake anyway */
	}
}

static void backoff(struct link *l)
{
	l->next_try = mono_after(l->backoff_ms);
	l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							  : l->backoff_ms * 2;
}

static bool pending(struct link *l)
{
	return l->front || l->ninflight > 0 || msgq_count(&l->q) > 0;
}

/* Ends the current connection; in-flight messages will be written again. */
static void disconnect(struct link *l, const char *why)
{
	if (l->fd < 0)
		return;
	/* An idle lazy link whose peer simply left is news, not trouble. */
	if (l->cfg.lazy && !pending(l) && strcmp(why, "closed by the other side") == 0)
		log_info("%s closed the connection", l->label);
	else
		log_warn("lost connection to %s: %s", l->label, why);
	close(l->fd);
	l->fd = -1;
	l->sent = 0;
	if (l->front) {
		/* A new greeting comes with the next connection. */
		msg_unref(l->front);
		l->front = NULL;
	}
	if (l->js) {
		jstream_free(l->js);
		l->js = NULL;
	}
	/* Back off even when connecting works, in case the other side
	 * accepts and hangs up at once; a delivered message resets it. */
	backoff(l);
}

/* Starts using a connected socket: greeting first. */
static void use_connection(struct link *l, int fd, bool greet)
{
	l->fd = fd;
	l->sent = 0;
	net_set_nonblocking(fd, 1);
	if (l->cfg.on_value)
		l->js = jstream_new(PROTO_MAX_OBJECT, PROTO_MAX_DEPTH);
	if (greet && l->cfg.greeting)
		l->front = l->cfg.greeting(fd, l->cfg.arg);
}

/* One connection attempt; on failure, schedules the next one. */
static void try_connect(struct link *l, int timeout_ms)
{
	char err[128];
	int fd = net_connect(l->host, l->cfg.port, timeout_ms, err, sizeof err);

	if (fd >= 0) {
		if (l->warned)
			log_warn("connected to %s", l->label);
		else
			log_debug("connected to %s", l->label);
		l->warned = false;
		use_connection(l, fd, true);
		return;
	}
	if (!l->warned)
		log_warn("cannot reach %s: %s; will retry", l->label, err);
	l->warned = true;
	backoff(l);
}

/* Reads what the other side sent; false when the connection ended. */
static bool read_side(struct link *l)
{
	char buf[16384];
	const char *why;
	int rounds;

	for (rounds = 0; rounds < 16; rounds++) {
		ssize_t n = recv(l->fd, buf, sizeof buf, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0) {
			disconnect(l, strerror(errno));
			return false;
		}
		if (n == 0) {
			disconnect(l, "closed by the other side");
			return false;
		}
		if (l->js) {
			struct jstream_handler h = { l->cfg.on_value, NULL, l->cfg.arg, NULL };

			if (jstream_feed(l->js, buf, (size_t)n, &h, &why) < 0) {
				disconnect(l, why);
				return false;
			}
		}
	}
	return true;
}

static void drop_written(struct link *l, size_t nbytes)
{
	if (l->front) {
		size_t left = l->front->len - l->sent;

		if (nbytes < left) {
			l->sent += nbytes;
			return;
		}
		nbytes -= left;
		l->sent = 0;
		msg_unref(l->front);
		l->front = NULL;
	}
	while (l->ninflight > 0) {
		size_t left = l->inflight[0]->len - l->sent;

		if (nbytes < left) {
			l->sent += nbytes;
			return;
		}
		nbytes -= left;
		l->sent = 0;
		l->backoff_ms = BACKOFF_MIN_MS;
		msg_unref(l->inflight[0]);
		memmove(l->inflight, l->inflight + 1, (l->ninflight - 1) * sizeof l->inflight[0]);
		l->ninflight--;
	}
}

/* Writes as much as the socket takes without blocking. */
static void write_side(struct link *l)
{
	struct iovec iov[BATCH + 1];
	struct msghdr mh;
	size_t skip = l->sent, i;
	int n = 0;
	ssize_t w;

	if (!l->front && l->ninflight == 0)
		l->ninflight = msgq_pop(&l->q, l->inflight, BATCH, false, NULL);
	if (l->front) {
		iov[n].iov_base = l->front->data + skip;
		iov[n++].iov_len = l->front->len - skip;
		skip = 0;
	}
	for (i = 0; i < l->ninflight; i++) {
		iov[n].iov_base = l->inflight[i]->data + skip;
		iov[n++].iov_len = l->inflight[i]->len - skip;
		skip = 0;
	}
	if (n == 0)
		return;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = iov;
	mh.msg_iovlen = (size_t)n;
	w = sendmsg(l->fd, &mh, MSG_NOSIGNAL);
	if (w < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			disconnect(l, strerror(errno));
		return;
	}
	drop_written(l, (size_t)w);
}

static void *link_main(void *arg)
{
	struct link *l = arg;
	char drainbuf[64];

	for (;;) {
		struct pollfd p[2];
		struct timespec deadline;
		bool closing, want;
		int timeout = -1, np = 1;

		lock(&l->lock);
		closing = l->closing;
		deadline = l->deadline;
		unlock(&l->lock);

		if (closing && mono_ms_until(&deadline) == 0)
			break;
		/* Closing with everything written: farewell, then done. */
		if (closing && !pending(l)) {
			if (l->fd < 0)
				break;
			if (l->farewell_sent) {
				net_close_gracefully(l->fd, CLOSE_LINGER_MS);
				l->fd = -1;
				break;
			}
			l->farewell_sent = true;
			if (l->cfg.farewell)
				l->front = l->cfg.farewell(l->fd, l->cfg.arg);
			continue;
		}

		want = l->cfg.lazy ? pending(l) : true;
		if (l->fd < 0 && want) {
			if (closing) {
				int left = mono_ms_until(&deadline);

				/* One last try; an unreachable target is
				 * given up at once. */
				if (l->tried_at_close)
					break;
				l->tried_at_close = true;
				try_connect(l, left < CONNECT_TIMEOUT_MS ? left : CONNECT_TIMEOUT_MS);
				if (l->fd < 0)
					break;
				continue;
			}
			if (mono_ms_until(&l->next_try) == 0) {
				try_connect(l, CONNECT_TIMEOUT_MS);
				if (l->fd >= 0)
					continue;
			}
			timeout = mono_ms_until(&l->next_try);
		}

		p[0].fd = l->wake[0];
		p[0].events = POLLIN;
		if (l->fd >= 0) {
			p[1].fd = l->fd;
			p[1].events = POLLIN;
			if (pending(l))
				p[1].events |= POLLOUT;
			np = 2;
		}
		if (closing) {
			int left = mono_ms_until(&deadline);

			timeout = timeout < 0 || left < timeout ? left : timeout;
		}
		if (poll(p, (nfds_t)np, timeout) < 0 && errno != EINTR) {
			log_warn("poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents)
			while (read(l->wake[0], drainbuf, sizeof drainbuf) > 0) {
			}
		/* Read first: a peer that closed is noticed before we write
		 * a message into the dead connection. */
		if (np == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !read_side(l))
			continue;
		if (np == 2 && l->fd >= 0 && (p[1].revents & POLLOUT))
			write_side(l);
	}

	if (l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
	if (l->front) {
		msg_unref(l->front);
		l->front = NULL;
	}
	l->undelivered = l->ninflight + msgq_clear(&l->q);
	while (l->ninflight > 0)
		msg_unref(l->inflight[--l->ninflight]);
	return NULL;
}

struct link *link_start(const struct link_config *cfg, int fd)
{
	struct link *l = calloc(1, sizeof *l);
	int i, rc;

	if (!l)
		return NULL;
	l->cfg = *cfg;
	snprintf(l->label, sizeof l->label, "%s", cfg->label);
	snprintf(l->host, sizeof l->host, "%s", cfg->host);
	l->cfg.label = l->label;
	l->cfg.host = l->host;
	l->fd = -1;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->next_try = mono_now();
	if (pipe(l->wake) < 0)
		goto fail;
	for (i = 0; i < 2; i++) {
		fcntl(l->wake[i], F_SETFL, O_NONBLOCK);
		fcntl(l->wake[i], F_SETFD, FD_CLOEXEC);
	}
	if (msgq_init(&l->q, cfg->max_msgs, cfg->max_bytes, l->wake[1]) < 0)
		goto fail_pipe;
	pthread_mutex_init(&l->lock, NULL);
	/* The caller has already greeted on a socket it hands us. */
	if (fd >= 0)
		use_connection(l, fd, false);
	rc = thread_start(&l->thread, link_main, l);
	if (rc != 0) {
		if (l->js)
			jstream_free(l->js);
		msgq_destroy(&l->q);
		pthread_mutex_destroy(&l->lock);
		errno = rc;
		goto fail_pipe;
	}
	return l;
fail_pipe:
	close(l->wake[0]);
	close(l->wake[1]);
fail:
	free(l);
	return NULL;
}

/* Called by one producer thread only: it alone touches l->dropped until
 * link_join. */
void link_send(struct link *l, struct msg *m)
{
	long dropped = msgq_push(&l->q, m, MSGQ_DROP_OLDEST);

	if (dropped > 0) {
		uint64_t before = l->dropped;

		l->dropped += (uint64_t)dropped;
		/* Say it when dropping starts, then every 1000. */
		if (before == 0 || l->dropped / 1000 != before / 1000)
			log_warn("%s: queue full; %llu oldest message(s) dropped so far",
				 l->label, (unsigned long long)l->dropped);
	} else if (dropped < 0) {
		l->dropped++;
	}
}

void link_close(struct link *l, const struct timespec *deadline)
{
	lock(&l->lock);
	l->closing = true;
	l->deadline = *deadline;
	unlock(&l->lock);
	poke(l);
}

uint64_t link_join(struct link *l)
{
	uint64_t lost;

	pthread_join(l->thread, NULL);
	lost = l->undelivered + l->dropped;
	if (l->js)
		jstream_free(l->js);
	msgq_destroy(&l->q);
	pthread_mutex_destroy(&l->lock);
	close(l->wake[0]);
	close(l->wake[1]);
	free(l);
	return lost;
}
