/* listener.c - the accept loop and one reader thread per connection. */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "thread.h"

/* ---------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------- */

static atomic_uint_fast64_t next_conn_id = 1;

struct conn *conn_ref(struct conn *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void conn_unref(struct conn *c)
{
	if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
		close(c->fd);
		free(c);
	}
}

void conn_shutdown(struct conn *c)
{
	shutdown(c->fd, SHUT_RDWR);
}

/* Wraps the caller's handler to log junk with a per-connection budget. */
struct reading {
	const struct jstream_handler *inner;
	struct conn *c;
	unsigned complaints;
};

static int read_value(void *arg, struct json_object *obj)
{
	struct reading *r = arg;

	return r->inner->value(r->inner->arg, obj);
}

static void read_batch_end(void *arg)
{
	struct reading *r = arg;

	if (r->inner->batch_end)
		r->inner->batch_end(r->inner->arg);
}

static void read_skipped(void *arg, const char *why, size_t nbytes)
{
	struct reading *r = arg;

	if (log_budget(&r->complaints, r->c->peer))
		log_warn("%s: skipped %zu bytes that are not JSON (%s)",
			 r->c->peer, nbytes, why);
	if (r->inner->skipped)
		r->inner->skipped(r->inner->arg, why, nbytes);
}

void conn_read_json(struct conn *c, const struct jstream_handler *h,
		    int partial_timeout_ms)
{
	enum { CHUNK = 16384 };
	struct reading r = { .inner = h, .c = c };
	struct jstream_handler wrap = { read_value, read_skipped, &r, read_batch_end };
	struct jstream *js = jstream_new(PROTO_MAX_OBJECT, PROTO_MAX_DEPTH);
	char *buf = malloc(CHUNK);
	struct timespec deadline = { 0 };
	bool incomplete = false;	/* deadline runs */
	const char *why;

	if (!js || !buf) {
		log_warn("%s: out of memory; closing the connection", c->peer);
		goto out;
	}
	for (;;) {
		ssize_t n;

		/* A peer may not hold a half-sent object (and this thread)
		 * forever, however slowly it trickles: the clock starts when
		 * the object does. */
		if (partial_timeout_ms > 0 && jstream_partial(js)) {
			struct pollfd p = { .fd = c->fd, .events = POLLIN };
			int rc;

			if (!incomplete) {
				incomplete = true;
				deadline = mono_after(partial_timeout_ms);
			}
			rc = poll(&p, 1, mono_ms_until(&deadline));
			if (rc < 0 && errno == EINTR)
				continue;
			if (rc == 0) {
				log_warn("%s: object left incomplete for %d s; closing the connection",
					 c->peer, partial_timeout_ms / 1000);
				break;
			}
		} else {
			incomplete = false;
		}
		n = recv(c->fd, buf, CHUNK, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_debug("%s: %s", c->peer, strerror(errno));
			break;
		}
		if (n == 0) {
			log_debug("%s: closed the connection", c->peer);
			break;
		}
		if (jstream_feed(js, buf, (size_t)n, &wrap, &why) < 0) {
			log_warn("%s: %s; closing the connection", c->peer, why);
			break;
		}
	}
out:
	free(buf);
	jstream_free(js);
}

/* ---------------------------------------------------------------------
 * The listener
 * ------------------------------------------------------------------- */

struct worker {
	pthread_t thread;
	struct conn *conn;
	struct listener *l;
	struct worker *next;
};

struct listener {
	int fd;
	size_t max_conns;
	conn_handler handler;
	void *arg;
	pthread_t thread;
	int wake[2];
	int spare_fd;		/* given up to accept-and-close at EMFILE */
	pthread_mutex_t lock;	/* guards the lists and counters below */
	struct worker *live, *done;
	size_t nlive;
	bool stopping;
	/* Refusals are logged at most once a second, with a count. */
	struct timespec last_refusal_log;
	unsigned long refusals_unlogged;
};

/* Says how many refusals went unlogged, once their second is over. */
static void flush_refusals(struct listener *l)
{
	if (l->refusals_unlogged == 0)
		return;
	log_warn("refused %lu more connection(s) (logged at most once a second)",
		 l->refusals_unlogged);
	l->refusals_unlogged = 0;
	l->last_refusal_log = mono_now();
}

/* Milliseconds until unlogged refusals are due to be reported, or -1. */
static int refusal_timeout(struct listener *l)
{
	struct timespec due = l->last_refusal_log;

	if (l->refusals_unlogged == 0)
		return -1;
	due.tv_sec += 1;
	return mono_ms_until(&due);
}

/* Logs a refused connection, or counts it when one was logged within the
 * last second; only the listener thread calls this. */
static void log_refusal(struct listener *l, const char *peer, const char *why)
{
	struct timespec now = mono_now();

	if (l->last_refusal_log.tv_sec != 0 &&
	    mono_ms(&now) - mono_ms(&l->last_refusal_log) < 1000) {
		l->refusals_unlogged++;
		return;
	}
	flush_refusals(l);
	log_warn("%s: refused: %s", peer, why);
	l->last_refusal_log = now;
}

static void poke(struct listener *l)
{
	char b = 1;

	if (write(l->wake[1], &b, 1) < 0) {
		/* a full pipe already wakes the listener */
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct listener *l = w->l;
	struct worker **pp;

	l->handler(w->conn, l->arg);
	atomic_store(&w->conn->ended, true);
	/* Hand ourselves to the listener thread to be joined. */
	lock(&l->lock);
	for (pp = &l->live; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	w->next = l->done;
	l->done = w;
	unlock(&l->lock);
	poke(l);
	return NULL;
}

/* Joins the workers that have finished. */
static void reap(struct listener *l)
{
	struct worker *w, *next;

	lock(&l->lock);
	w = l->done;
	l->done = NULL;
	unlock(&l->lock);
	for (; w; w = next) {
		next = w->next;
		pthread_join(w->thread, NULL);
		conn_unref(w->conn);
		free(w);
		lock(&l->lock);
		l->nlive--;
		unlock(&l->lock);
	}
}

static struct conn *conn_new(int fd, const struct sockaddr *sa)
{
	struct conn *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->fd = fd;
	c->id = atomic_fetch_add(&next_conn_id, 1);
	atomic_init(&c->refs, 1);
	atomic_init(&c->ended, false);
	if (addr_format(sa, c->peer, sizeof c->peer) < 0)
		strcpy(c->peer, "?");
	if (addr_format_ip(sa, c->peer_ip, sizeof c->peer_ip) < 0)
		strcpy(c->peer_ip, "?");
	return c;
}

/* Accepts one connection and starts its thread, or refuses it. */
static void accept_one(struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct worker *w;
	struct conn *c;
	bool full;
	int fd, rc, one = 1;

	fd = accept(l->fd, (struct sockaddr *)&ss, &len);
	if (fd < 0) {
		if ((errno == EMFILE || errno == ENFILE) && l->spare_fd >= 0) {
			/* Out of descriptors: accept with the spare one and
			 * close at once, rather than spin on a ready socket. */
			close(l->spare_fd);
			fd = accept(l->fd, NULL, NULL);
			if (fd >= 0)
				close(fd);
			l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			log_refusal(l, "a connection", "out of file descriptors");
		} else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
			log_warn("accept: %s", strerror(errno));
		}
		return;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	/* The relay may answer on this connection: no Nagle delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c = conn_new(fd, (struct sockaddr *)&ss);
	if (!c) {
		close(fd);
		return;
	}
	lock(&l->lock);
	full = l->nlive >= l->max_conns;
	unlock(&l->lock);
	if (full) {
		char why[64];

		snprintf(why, sizeof why, "%zu connections open already", l->max_conns);
		log_refusal(l, c->peer, why);
		conn_unref(c);
		return;
	}
	w = calloc(1, sizeof *w);
	if (!w) {
		conn_unref(c);
		return;
	}
	w->conn = c;
	w->l = l;
	lock(&l->lock);
	w->next = l->live;
	l->live = w;
	l->nlive++;
	rc = thread_start(&w->thread, worker_main, w);
	if (rc != 0) {
		l->live = w->next;
		l->nlive--;
	}
	unlock(&l->lock);
	if (rc != 0) {
		char why[96];

		snprintf(why, sizeof why, "cannot start a thread: %s", strerror(rc));
		log_refusal(l, c->peer, why);
		conn_unref(c);
		free(w);
	}
}

static void drain(int fd)
{
	char buf[64];

	while (read(fd, buf, sizeof buf) > 0) {
	}
}

static void *listener_main(void *arg)
{
	struct listener *l = arg;
	struct pollfd p[2] = {
		{ .fd = l->fd, .events = POLLIN },
		{ .fd = l->wake[0], .events = POLLIN },
	};
	struct worker *w;
	bool stopping = false;

	while (!stopping) {
		int rc = poll(p, 2, refusal_timeout(l));

		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll: %s", strerror(errno));
			break;
		}
		if (refusal_timeout(l) == 0)
			flush_refusals(l);
		if (p[1].revents) {
			drain(l->wake[0]);
			reap(l);
			lock(&l->lock);
			stopping = l->stopping;
			unlock(&l->lock);
		}
		if (!stopping && p[0].revents)
			accept_one(l);
	}

	/* Stop: no new connections; wake every reader and wait for all. */
	close(l->fd);
	l->fd = -1;
	lock(&l->lock);
	for (w = l->live; w; w = w->next)
		conn_shutdown(w->conn);
	unlock(&l->lock);
	for (;;) {
		size_t left;

		reap(l);
		lock(&l->lock);
		left = l->nlive;
		unlock(&l->lock);
		if (left == 0)
			break;
		if (poll(&p[1], 1, -1) > 0)
			drain(l->wake[0]);
	}
	return NULL;
}

struct listener *listener_start(const struct listener_config *cfg)
{
	struct listener *l = calloc(1, sizeof *l);
	int i, rc;

	if (!l)
		return NULL;
	l->fd = cfg->fd;
	l->max_conns = cfg->max_conns;
	l->handler = cfg->handler;
	l->arg = cfg->arg;
	if (pipe(l->wake) < 0) {
		free(l);
		return NULL;
	}
	for (i = 0; i < 2; i++) {
		fcntl(l->wake[i], F_SETFL, O_NONBLOCK);
		fcntl(l->wake[i], F_SETFD, FD_CLOEXEC);
	}
	l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pthread_mutex_init(&l->lock, NULL);
	rc = thread_start(&l->thread, listener_main, l);
	if (rc != 0) {
		close(l->wake[0]);
		close(l->wake[1]);
		if (l->spare_fd >= 0)
			close(l->spare_fd);
		pthread_mutex_destroy(&l->lock);
		free(l);
		errno = rc;
		return NULL;
	}
	return l;
}

void listener_stop(struct listener *l)
{
	if (!l)
		return;
	lock(&l->lock);
	l->stopping = true;
	unlock(&l->lock);
	poke(l);
	pthread_join(l->thread, NULL);
	close(l->wake[0]);
	close(l->wake[1]);
	if (l->spare_fd >= 0)
		close(l->spare_fd);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

size_t listener_open_conns(struct listener *l)
{
	size_t n;

	lock(&l->lock);
	n = l->nlive;
	unlock(&l->lock);
	return n;
}
