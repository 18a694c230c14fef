/* listener.c - the accept loop and one reader thread per connection. */
#define _GNU_SOURCE		/* accept4(): close-on-exec atomically */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "thread.h"
#include "wake.h"

/* Connections shut down to make room may still be ending; past this many
 * a new one is refused instead, so threads stay bounded. */
#define CLOSING_MARGIN 32

/* ---------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------- */

static atomic_uint_fast64_t next_conn_id = 1;

struct conn *conn_ref(struct conn *c)
{
	ref_get(&c->refs);
	return c;
}

void conn_unref(struct conn *c)
{
	if (c && ref_put(&c->refs)) {
		log_budget_flush(&c->budget);
		close(c->fd);
		free(c);
	}
}

void conn_shutdown(struct conn *c)
{
	shutdown(c->fd, SHUT_RDWR);
}

void conn_heard(struct conn *c)
{
	atomic_store_explicit(&c->useful, true, memory_order_relaxed);
}

ssize_t conn_recv(struct conn *c, void *buf, size_t len, int timeout_ms)
{
	for (;;) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int rc = timeout_ms < 0 ? 1 : poll(&p, 1, timeout_ms);
		ssize_t n;

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -1;
		if (rc == 0)
			return -2;
		n = recv(c->fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0)
			atomic_store_explicit(&c->heard_ms, mono_now_ms(), memory_order_relaxed);
		return n;
	}
}

static struct conn *conn_new(int fd, const struct sockaddr *sa)
{
	struct conn *c = calloc(1, sizeof *c);
	struct sockaddr_storage local;
	socklen_t len = sizeof local;

	if (!c)
		return NULL;
	c->fd = fd;
	c->id = atomic_fetch_add(&next_conn_id, 1);
	ref_init(&c->refs);
	atomic_init(&c->ended, false);
	atomic_init(&c->useful, false);
	atomic_init(&c->closing, false);
	atomic_init(&c->delivers, false);
	atomic_init(&c->heard_ms, mono_now_ms());
	if (addr_format(sa, c->peer, sizeof c->peer) < 0)
		strcpy(c->peer, "?");
	if (addr_format_ip(sa, c->peer_ip, sizeof c->peer_ip) < 0)
		strcpy(c->peer_ip, "?");
	c->peer_port = addr_port(sa);
	log_budget_init(&c->budget, c->peer);
	if (getsockname(fd, (struct sockaddr *)&local, &len) < 0 ||
	    addr_format_ip((struct sockaddr *)&local, c->local_ip, sizeof c->local_ip) < 0)
		strcpy(c->local_ip, "?");
	else
		c->local_port = addr_port((struct sockaddr *)&local);
	return c;
}

/* ---------------------------------------------------------------------
 * The listener
 * ------------------------------------------------------------------- */

struct worker {
	struct reaped reaped;		/* first: the reaper hands it back */
	struct conn *conn;
	struct listener *l;
};

struct listener {
	int fd;
	struct listener_config cfg;
	pthread_t thread;
	struct wake stop_wake;
	struct reaper reaper;
	int spare_fd;		/* given up to accept-and-close at EMFILE */
	/* Listener thread only. */
	struct log_tally refused, made_room;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct listener *l = w->l;

	thread_c_locale();
	l->cfg.serve(w->conn, l->cfg.arg);
	atomic_store(&w->conn->ended, true);
	reaper_done(&l->reaper, &w->reaped);
	return NULL;
}

static void release_worker(struct reaped *r)
{
	struct worker *w = (struct worker *)r;

	conn_unref(w->conn);
	free(w);
}

/* Looking for the connection to close for a new one: the longest silent
 * of those that never sent anything useful.  (A worker's connection is
 * freed only by reaper_join, on the listener thread, which is the one
 * looking: so best stays valid.) */
struct room {
	struct conn *best;
	int64_t best_ms;
	size_t closing;		/* shut down to make room already */
};

static void consider(struct reaped *t, void *arg)
{
	struct conn *c = ((struct worker *)t)->conn;
	struct room *r = arg;
	int64_t heard = atomic_load_explicit(&c->heard_ms, memory_order_relaxed);

	if (atomic_load(&c->closing))
		r->closing++;
	else if (!atomic_load(&c->useful) && (!r->best || heard < r->best_ms)) {
		r->best = c;
		r->best_ms = heard;
	}
}

/* Whether c may have a thread: below the limit, or by closing a silent
 * connection.  Says why not. */
static bool admit(struct listener *l, struct conn *c)
{
	struct room r = { 0 };
	bool full = reaper_running(&l->reaper) >= l->cfg.max_conns;

	if (full)
		reaper_each(&l->reaper, consider, &r);
	if (r.best && r.closing < CLOSING_MARGIN) {
		atomic_store(&r.best->closing, true);
		conn_shutdown(r.best);
		log_tally(&l->made_room, "%s: closed to make room for %s: sent nothing useful, silent %lld ms",
			  r.best->peer, c->peer, (long long)(mono_now_ms() - r.best_ms));
		full = false;
	} else if (full) {
		log_tally(&l->refused, "%s: refused: %zu connections open already", c->peer,
			  l->cfg.max_conns);
	}
	return !full;
}

/* Starts c's thread; false (c released) on failure. */
static bool start_worker(struct listener *l, struct conn *c)
{
	struct worker *w = calloc(1, sizeof *w);
	int rc = ENOMEM;

	if (w) {
		w->conn = c;
		w->l = l;
		rc = reaper_start(&l->reaper, &w->reaped, worker_main, w);
	}
	if (rc != 0) {
		log_tally(&l->refused, "%s: refused: cannot start a thread: %s", c->peer, strerror(rc));
		conn_unref(c);
		free(w);
		return false;
	}
	return true;
}

/* Out of descriptors: accept with the spare one and close at once,
 * rather than spin on a ready socket. */
static void shed_one(struct listener *l)
{
	int fd;

	close(l->spare_fd);
	fd = accept(l->fd, NULL, NULL);
	if (fd >= 0)
		close(fd);
	l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	log_tally(&l->refused, "a connection: refused: out of file descriptors");
}

static void accept_one(struct listener *l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct conn *c;
	int fd, one = 1;

	fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0) {
		if ((errno == EMFILE || errno == ENFILE) && l->spare_fd >= 0)
			shed_one(l);
		else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			log_warn("accept: %s", strerror(errno));
		return;
	}
	/* The relay may answer on this connection: no Nagle delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c = conn_new(fd, (struct sockaddr *)&ss);
	if (!c) {
		close(fd);
		return;
	}
	if (!admit(l, c)) {
		conn_unref(c);
		return;
	}
	start_worker(l, c);
}

static int tally_timeout(struct listener *l)
{
	int a = log_tally_due_ms(&l->refused), b = log_tally_due_ms(&l->made_room);

	return a < 0 ? b : b < 0 || a < b ? a : b;
}

static void flush_tallies(struct listener *l, bool force)
{
	log_tally_flush(&l->refused, "refused connections", force);
	log_tally_flush(&l->made_room, "connections closed to make room", force);
}

static void shut(struct reaped *t, void *arg)
{
	(void)arg;
	conn_shutdown(((struct worker *)t)->conn);
}

/* Stop: no new connections; wake every reader and wait for all. */
static void close_all(struct listener *l)
{
	close(l->fd);
	l->fd = -1;
	reaper_each(&l->reaper, shut, NULL);
	while (reaper_join(&l->reaper, release_worker) > 0) {
		struct pollfd p = { .fd = reaper_fd(&l->reaper), .events = POLLIN };

		poll(&p, 1, -1);
	}
	flush_tallies(l, true);
}

static void *listener_main(void *arg)
{
	struct listener *l = arg;
	struct pollfd p[3] = {
		{ .fd = l->fd, .events = POLLIN },
		{ .fd = reaper_fd(&l->reaper), .events = POLLIN },
		{ .fd = wake_fd(&l->stop_wake), .events = POLLIN },
	};

	for (;;) {
		int rc = poll(p, 3, tally_timeout(l));

		if (rc < 0 && errno != EINTR) {
			log_warn("poll: %s", strerror(errno));
			break;
		}
		flush_tallies(l, false);
		if (p[1].revents)
			reaper_join(&l->reaper, release_worker);
		if (p[2].revents)
			break;
		if (p[0].revents)
			accept_one(l);
	}
	close_all(l);
	return NULL;
}

struct listener *listener_open(const char *host, uint16_t *port,
			       const struct listener_config *cfg)
{
	struct listener *l;
	char err[128];
	int rc, fd = net_listen(host, *port, err, sizeof err);

	/* Listen before anything is allocated: failing here is common. */
	if (fd < 0)
		log_die(1, "cannot listen on %s%sport %u: %s", host ? host : "",
			host ? " " : "", *port, err);
	l = calloc(1, sizeof *l);
	if (!l)
		log_die(1, "out of memory");
	l->fd = fd;
	*port = net_local_port(fd);
	l->cfg = *cfg;
	if (wake_init(&l->stop_wake) < 0 || reaper_init(&l->reaper) < 0)
		log_die(1, "cannot start the listener: %s", strerror(errno));
	l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	rc = thread_start(&l->thread, listener_main, l);
	if (rc != 0)
		log_die(1, "cannot start the listener: %s", strerror(rc));
	return l;
}

void listener_stop(struct listener *l)
{
	if (!l)
		return;
	wake_poke(&l->stop_wake);
	must(pthread_join(l->thread, NULL), "pthread_join");
	wake_close(&l->stop_wake);
	reaper_destroy(&l->reaper);
	if (l->spare_fd >= 0)
		close(l->spare_fd);
	free(l);
}
