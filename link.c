/* link.c - an outgoing connection owned by one sender thread.
 *
 * The thread owns the socket (non-blocking) and waits in poll() on it and
 * on a wake that the queue and link_close poke.  It reads whatever the
 * other side sends (to notice its EOF, and for chat5, deliveries) and
 * writes queued messages in order through tcpout, which keeps a message
 * cut short by a broken connection to write again, whole. */
#include "link.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jstream.h"
#include "log.h"
#include "msgq.h"
#include "net.h"
#include "proto.h"
#include "tcpout.h"
#include "thread.h"

#define CONNECT_TIMEOUT_MS 3000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CLOSE_LINGER_MS 1000		/* waiting for the peer's EOF at the end */
#define READ_ROUNDS 16			/* reads per wake-up, so writes get a turn */
#define READ_CHUNK 16384
/* How often to ask the kernel what the peer acknowledged after writes:
 * often, since a link on probation goes live again only once it knows. */
#define SETTLE_EVERY_MS 50

/* How a connection ended. */
enum ending { END_CLEAN, END_RESET, END_ERROR, END_QUIET };

struct link {
	struct link_config cfg;
	struct link_target *targets;
	struct msgq q;
	struct wake wake;
	pthread_t thread;

	pthread_mutex_t lock;		/* guards closing and now */
	bool closing, now;
	atomic_bool ended;

	/* Owned by the link's thread (target also read by the producer). */
	atomic_size_t target;		/* the one connected or tried next */
	size_t failed_round;		/* targets failed in a row */
	int fd;
	struct tcpout out;
	struct jstream *js;
	char *readbuf;
	bool warned;			/* said "cannot reach" for this outage */
	bool probation;			/* it stalled: nobody waits for it until
					 * it has caught up again */
	bool farewell_sent;
	bool tried_at_close;
	int backoff_ms;
	int drop_backoff_ms;		/* after the other side dropped us */
	int64_t next_try_ms;
	int64_t tried_ms;		/* the last connection attempt */
	int64_t connected_ms;
	uint64_t maybe_lost;

	/* Owned by the producer. */
	uint64_t dropped;
};

static const char *label(struct link *l)
{
	return l->targets[l->target].label;
}

static bool pending(struct link *l)
{
	return tcpout_pending(&l->out) > 0 || msgq_count(&l->q) > 0;
}

static void backoff(struct link *l)
{
	l->next_try_ms = mono_now_ms() + l->backoff_ms;
	l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
}

/* The next target, and a backoff once every one of them has failed. */
static void next_target(struct link *l)
{
	l->target = (l->target + 1) % l->cfg.ntargets;
	if (++l->failed_round >= l->cfg.ntargets) {
		l->failed_round = 0;
		backoff(l);
	} else {
		l->next_try_ms = mono_now_ms();
	}
}

static void log_lost(struct link *l, const char *why, uint64_t maybe)
{
	if (maybe > 0)
		log_warn("lost connection to %s: %s; %llu message(s) written on it may not have arrived",
			 label(l), why, (unsigned long long)maybe);
	else
		log_warn("lost connection to %s: %s", label(l), why);
}

/* Ends the current connection; what was cut short will be written again. */
static void disconnect(struct link *l, const char *why, enum ending how)
{
	uint64_t maybe;

	if (l->fd < 0)
		return;
	maybe = tcpout_broken(&l->out, l->fd, how == END_RESET);
	l->maybe_lost += maybe;
	/* An idle lazy link whose peer simply left is news, not trouble. */
	if (how == END_QUIET)
		;
	else if (how == END_CLEAN && l->cfg.lazy && !pending(l) && maybe == 0)
		log_info("%s closed the connection", label(l));
	else
		log_lost(l, why, maybe);
	close(l->fd);
	l->fd = -1;
	jstream_free(l->js);
	l->js = NULL;
	/* Down: drop the oldest rather than make anyone wait. */
	msgq_set_mode(&l->q, MSGQ_DROP_OLDEST);
	if (how == END_QUIET) {
		/* Subscribe again soon, but not in a tight loop with a server
		 * that keeps dropping us at once. */
		if (mono_now_ms() - l->connected_ms >= BACKOFF_MAX_MS)
			l->drop_backoff_ms = BACKOFF_MIN_MS;
		l->next_try_ms = mono_now_ms() + l->drop_backoff_ms;
		l->drop_backoff_ms = l->drop_backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
									   : l->drop_backoff_ms * 2;
	} else {
		/* Back off even when connecting works, in case the other
		 * side accepts and hangs up at once; progress resets it. */
		backoff(l);
		if (l->cfg.ntargets > 1)
			next_target(l);
	}
}

/* Starts using a connected socket: greeting first. */
static void use_connection(struct link *l, int fd)
{
	struct msg *hello;

	l->fd = fd;
	l->failed_round = 0;
	l->connected_ms = mono_now_ms();
	tcpout_delivered(&l->out);
	if (l->cfg.on_value)
		l->js = jstream_new(PROTO_MAX_OBJECT, PROTO_MAX_DEPTH);
	if (l->cfg.greeting && (hello = l->cfg.greeting(fd, &l->targets[l->target], l->cfg.arg)) != NULL)
		tcpout_add_first(&l->out, hello);
	msgq_set_mode(&l->q, l->probation ? MSGQ_DROP_OLDEST : MSGQ_WAIT);
}

/* One connection attempt to the current target; false on failure (then
 * the next one is scheduled). */
static bool try_connect(struct link *l, int timeout_ms)
{
	char err[128];
	int fd;

	l->tried_ms = mono_now_ms();
	fd = net_connect(l->targets[l->target].host, l->targets[l->target].port,
			     timeout_ms, err, sizeof err);

	if (fd >= 0) {
		if (l->warned)
			log_warn("connected to %s", label(l));
		else
			log_debug("connected to %s", label(l));
		l->warned = false;
		use_connection(l, fd);
		return true;
	}
	if (!l->warned)
		log_warn("cannot reach %s: %s; will retry", label(l), err);
	l->warned = true;
	msgq_set_mode(&l->q, MSGQ_DROP_OLDEST);
	if (l->cfg.ntargets > 1)
		next_target(l);
	else
		backoff(l);
	return false;
}

/* Hands what the other side wrote to on_value; false when it ended. */
static bool take_values(struct link *l)
{
	struct json_object *v;
	const char *why;

	while (jstream_next(l->js, &v, &why)) {
		enum link_verdict verdict;

		if (!v)
			continue;	/* junk from our own peer: ignore */
		verdict = l->cfg.on_value(l->cfg.arg, v);
		json_object_put(v);
		if (verdict == LINK_RECONNECT) {
			disconnect(l, "dropped us", END_QUIET);
			return false;
		}
	}
	if (jstream_error(l->js)) {
		disconnect(l, jstream_error(l->js), END_ERROR);
		return false;
	}
	return true;
}

/* Reads what the other side sent; false when the connection ended. */
static bool read_side(struct link *l)
{
	int rounds;

	for (rounds = 0; rounds < READ_ROUNDS; rounds++) {
		ssize_t n = recv(l->fd, l->readbuf, READ_CHUNK, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n < 0) {
			disconnect(l, strerror(errno), net_is_reset(errno) ? END_RESET : END_ERROR);
			return false;
		}
		if (n == 0) {
			disconnect(l, "closed by the other side", END_CLEAN);
			return false;
		}
		if (l->js) {
			jstream_feed(l->js, l->readbuf, (size_t)n);
			if (!take_values(l))
				return false;
		}
	}
	return true;
}

/* Takes queued messages into the writer; one slot stays free for a
 * greeting or farewell. */
static void fill(struct link *l)
{
	struct msg *batch[TCPOUT_BATCH];
	size_t room = tcpout_room(&l->out), n;

	if (room <= 1)
		return;
	n = msgq_pop(&l->q, batch, room - 1, false, NULL);
	tcpout_add(&l->out, batch, n);
}

static void write_side(struct link *l)
{
	ssize_t w = tcpout_write(&l->out, l->fd);

	if (w < 0) {
		disconnect(l, strerror(errno), net_is_reset(errno) ? END_RESET : END_ERROR);
		return;
	}
	if (w == 0)
		return;
	tcpout_settle_lazily(&l->out, l->fd, SETTLE_EVERY_MS);
	if (!l->probation) {
		l->backoff_ms = BACKOFF_MIN_MS;
	} else if (!pending(l) && !tcpout_waiting(&l->out)) {
		/* It took everything: live again, worth waiting for. */
		l->probation = false;
		l->backoff_ms = BACKOFF_MIN_MS;
		msgq_set_mode(&l->q, MSGQ_WAIT);
	}
}

/* Milliseconds until the peer counts as stalled (it acknowledged nothing
 * new for the stall timeout while it owes us bytes), or -1. */
static int stall_left(struct link *l)
{
	int left;

	if (l->fd < 0 || l->cfg.stall_ms <= 0)
		return -1;
	tcpout_settle_lazily(&l->out, l->fd, SETTLE_EVERY_MS);
	left = tcpout_stall_left(&l->out, l->cfg.stall_ms);
	if (left == 0) {
		/* Ask for real before calling it a stall. */
		tcpout_settle(&l->out, l->fd);
		left = tcpout_stall_left(&l->out, l->cfg.stall_ms);
	}
	return left;
}

/* Closing with everything written: the farewell, then a graceful close.
 * Returns true when the link is finished. */
static bool finish(struct link *l)
{
	enum net_peer end;
	struct msg *bye;

	if (l->fd < 0)
		return true;
	if (!l->farewell_sent) {
		l->farewell_sent = true;
		if (l->cfg.farewell && (bye = l->cfg.farewell(l->fd, &l->targets[l->target], l->cfg.arg)) != NULL) {
			tcpout_add_first(&l->out, bye);
			return false;
		}
	}
	/* A peer that closes after us read everything; one that keeps its
	 * end open has at least acknowledged what tcpout does not count. */
	end = net_finish(l->fd, CLOSE_LINGER_MS);
	if (end == NET_PEER_CLOSED)
		tcpout_delivered(&l->out);
	else
		l->maybe_lost += tcpout_broken(&l->out, l->fd, end == NET_PEER_RESET);
	close(l->fd);
	l->fd = -1;
	return true;
}

/* Not connected and a connection is wanted: connects, or says how long
 * until the next try (-1 to give up: closing, and the last try failed). */
static int reconnect(struct link *l, bool closing)
{
	int64_t wait;

	if (closing) {
		/* One last try; an unreachable target is given up at once. */
		if (l->tried_at_close)
			return -1;
		l->tried_at_close = true;
		try_connect(l, CONNECT_TIMEOUT_MS);
		return 0;
	}
	wait = l->next_try_ms - mono_now_ms();
	if (wait <= 0) {
		try_connect(l, CONNECT_TIMEOUT_MS);
		return 0;
	}
	return (int)wait;
}

/* One round: decide, wait, act.  Returns false when the link is done. */
static bool round_once(struct link *l)
{
	struct pollfd p[2];
	bool closing, now;
	int timeout = -1, np = 1, left;

	lock(&l->lock);
	closing = l->closing;
	now = l->now;
	unlock(&l->lock);
	if (now)
		return false;
	if (closing && !pending(l))
		return !finish(l);
	if (l->fd < 0 && (l->cfg.lazy ? pending(l) : true)) {
		timeout = reconnect(l, closing);
		if (timeout < 0)
			return false;
		if (timeout == 0)
			return true;
	}
	if (l->fd >= 0)
		fill(l);
	left = stall_left(l);
	if (left == 0) {
		char why[64];

		snprintf(why, sizeof why, "it accepted nothing for %d s", l->cfg.stall_ms / 1000);
		l->probation = true;
		disconnect(l, why, END_ERROR);
		/* A stalled peer is given up at the end, not retried. */
		return !closing;
	}
	if (left > 0 && (timeout < 0 || left < timeout))
		timeout = left;
	p[0] = (struct pollfd){ .fd = wake_fd(&l->wake), .events = POLLIN };
	if (l->fd >= 0) {
		p[1] = (struct pollfd){ .fd = l->fd, .events = POLLIN };
		if (tcpout_pending(&l->out) > 0)
			p[1].events |= POLLOUT;
		np = 2;
	}
	if (poll(p, (nfds_t)np, timeout) < 0 && errno != EINTR) {
		log_warn("poll: %s", strerror(errno));
		return false;
	}
	if (p[0].revents) {
		wake_drain(&l->wake);
		/* A new message while down: try again now, not at the end of
		 * the backoff (but not more often than the shortest wait). */
		if (l->fd < 0 && !l->probation && mono_now_ms() - l->tried_ms >= BACKOFF_MIN_MS)
			l->next_try_ms = mono_now_ms();
	}
	/* Read first: a peer that closed is noticed before we write a
	 * message into the dead connection. */
	if (np == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !read_side(l))
		return true;
	if (np == 2 && l->fd >= 0 && (p[1].revents & POLLOUT))
		write_side(l);
	return true;
}

static void *link_main(void *arg)
{
	struct link *l = arg;

	thread_c_locale();
	while (round_once(l)) {
	}
	if (l->fd >= 0) {
		l->maybe_lost += tcpout_broken(&l->out, l->fd, false);
		close(l->fd);
		l->fd = -1;
	}
	/* No more offers: msgq_offer says "closed" from now on. */
	msgq_close(&l->q);
	atomic_store(&l->ended, true);
	wake_poke(l->cfg.room);
	return NULL;
}

struct link *link_start(const struct link_config *cfg, int fd, size_t target)
{
	struct link *l = calloc(1, sizeof *l);
	int rc;

	if (!l)
		return NULL;
	l->cfg = *cfg;
	l->targets = calloc(cfg->ntargets, sizeof *l->targets);
	l->readbuf = malloc(READ_CHUNK);
	if (!l->targets || !l->readbuf || wake_init(&l->wake) < 0)
		goto fail;
	memcpy(l->targets, cfg->targets, cfg->ntargets * sizeof *l->targets);
	if (msgq_init(&l->q, cfg->max_msgs, cfg->max_bytes) < 0)
		goto fail_wake;
	msgq_set_wakes(&l->q, &l->wake, cfg->room);
	mutex_init(&l->lock);
	tcpout_init(&l->out);
	l->fd = -1;
	l->target = target;
	l->backoff_ms = l->drop_backoff_ms = BACKOFF_MIN_MS;
	l->next_try_ms = mono_now_ms();
	if (fd >= 0)
		use_connection(l, fd);
	rc = thread_start(&l->thread, link_main, l);
	if (rc == 0)
		return l;
	errno = rc;
	jstream_free(l->js);
	tcpout_free(&l->out);
	msgq_destroy(&l->q);
	mutex_destroy(&l->lock);
fail_wake:
	wake_close(&l->wake);
fail:
	free(l->targets);
	free(l->readbuf);
	free(l);
	return NULL;
}

static int digits(uint64_t n)
{
	int d = 1;

	while (n >= 10) {
		n /= 10;
		d++;
	}
	return d;
}

int link_offer(struct link *l, struct msg *m)
{
	size_t dropped = 0;
	bool owed;	/* the queue remembers it for link_flush */
	int rc = msgq_offer(&l->q, m, &dropped, &owed);

	if (dropped > 0) {
		uint64_t before = l->dropped;

		l->dropped += dropped;
		/* Say it when dropping starts, then at every power of ten. */
		if (before == 0 || digits(l->dropped) != digits(before))
			log_warn("%s is down and its queue is full: %llu oldest message(s) dropped so far",
				 l->targets[atomic_load(&l->target)].label, (unsigned long long)l->dropped);
	}
	return rc;
}

void link_flush(struct link *l)
{
	msgq_wake_consumer(&l->q);
}

void link_close(struct link *l, bool now)
{
	lock(&l->lock);
	l->closing = true;
	l->now = l->now || now;
	unlock(&l->lock);
	wake_poke(&l->wake);
}

bool link_ended(struct link *l)
{
	return atomic_load(&l->ended);
}

void link_join(struct link *l, struct link_report *r)
{
	must(pthread_join(l->thread, NULL), "pthread_join");
	r->maybe_lost = l->maybe_lost;
	r->never_sent = l->dropped + tcpout_drop(&l->out) + msgq_clear(&l->q);
	jstream_free(l->js);
	tcpout_free(&l->out);
	msgq_destroy(&l->q);
	mutex_destroy(&l->lock);
	wake_close(&l->wake);
	free(l->targets);
	free(l->readbuf);
	free(l);
}
