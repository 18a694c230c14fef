/* sender.c - one thread per subscriber, delivering its queue. */
#include "sender.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "tcpout.h"

#define CONNECT_TIMEOUT_MS 2000		/* connecting back to a subscriber */
#define PEER_CHECK_MS 50		/* how often a sender looks for EOF */
#define CLOSE_LINGER_MS 1000		/* after the last delivery */
/* How often a sender asks the kernel what was acknowledged after writes:
 * a relay runs a thousand senders, and the stall check asks for real
 * before it evicts anyone. */
#define SETTLE_EVERY_MS 1000

struct sender {
	struct reaped reaped;		/* first: the reaper hands it back */
	struct senders *all;
	struct sub *sub;		/* a reference */
	pthread_mutex_t lock;		/* guards fd, via, ending and recheck */
	int fd;				/* our connection to the subscriber */
	struct conn *via;		/* or: its subscribing connection */
	bool ending;			/* evicted or aborted: said why already */
	bool recheck;			/* it subscribed again */
	/* The thread's own. */
	struct tcpout out;
	int64_t checked_ms;		/* when we last looked for its EOF */
	_Atomic uint16_t local_port;	/* our end of fd, while registered */
};

struct senders {
	struct subtable *subs;
	int stall_ms;
	struct reaper reaper;		/* its running list: the live senders */
	atomic_size_t connecting;
};

struct senders *senders_new(struct subtable *subs, int stall_ms)
{
	struct senders *all = calloc(1, sizeof *all);

	if (!all || reaper_init(&all->reaper) < 0) {
		free(all);
		return NULL;
	}
	all->subs = subs;
	all->stall_ms = stall_ms;
	atomic_init(&all->connecting, 0);
	return all;
}

void senders_free(struct senders *all)
{
	reaper_destroy(&all->reaper);
	free(all);
}

/* ---------------------------------------------------------------------
 * Ending a subscription
 * ------------------------------------------------------------------- */

/* Tells the subscriber, on the connection it subscribed over, that it was
 * dropped, and (hang_up) closes that connection: its chat5 then subscribes
 * again.  A subscription that never got going leaves the connection be:
 * it may carry others. */
static void tell_dropped(struct sender *s, const char *reason, bool hang_up)
{
	struct conn *c = subs_control(s->all->subs, s->sub);
	struct msg *m;

	if (!c)
		return;
	if (!atomic_load(&c->ended) && (m = proto_encode_dropped(s->sub->addr, reason))) {
		if (send(c->fd, m->data, m->len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			/* no room or gone: the close below says it anyway */
		}
		msg_unref(m);
	}
	if (hang_up)
		conn_shutdown(c);
	conn_unref(c);
}

/* One line, charged to the connection it subscribed over (so that one
 * client cannot flood the log through subscriptions that fail). */
static void log_evicted(struct sender *s, const char *why, uint64_t lost)
{
	struct conn *c = subs_control(s->all->subs, s->sub);
	char n[64] = "";

	if (lost > 0)
		snprintf(n, sizeof n, "; %llu message(s) may not have reached it",
			 (unsigned long long)lost);
	if (c)
		log_peer_info(&c->budget, "evicted %s: %s%s", s->sub->addr, why, n);
	else
		log_info("evicted %s: %s%s", s->sub->addr, why, n);
	conn_unref(c);
}

/* Ends the subscription from inside, unless someone else already did:
 * out of the table, its queue dropped, one log line. */
static void evict(struct sender *s, const char *why, const char *reason, bool reset,
		  bool hang_up)
{
	uint64_t lost;
	bool quiet;
	int fd;

	lock(&s->lock);
	quiet = s->ending;
	s->ending = true;
	fd = s->fd >= 0 ? s->fd : s->via ? s->via->fd : -1;
	unlock(&s->lock);
	msgq_close(&s->sub->q);
	lost = tcpout_broken(&s->out, fd, reset) + tcpout_drop(&s->out) + msgq_clear(&s->sub->q);
	if (!subs_remove(s->all->subs, s->sub) || quiet)
		return;
	log_evicted(s, why, lost);
	tell_dropped(s, reason, hang_up);
}

/* ---------------------------------------------------------------------
 * Connecting back
 * ------------------------------------------------------------------- */

/* Remembers the port of our end of fd, bound but not yet connected: an
 * accepted connection from there to the subscriber's address is us.  It
 * must be known before the connection can be accepted. */
static void register_local(int fd, void *arg)
{
	struct sender *s = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		atomic_store(&s->local_port, addr_port((struct sockaddr *)&ss));
}

static void unregister_local(struct sender *s)
{
	atomic_store(&s->local_port, 0);
}

/* Nothing listens at the subscriber's address: deliveries go over the
 * connection it subscribed on, if that is still open and carries no other
 * subscriber's. */
static bool use_subscribing_connection(struct sender *s)
{
	struct conn *c = subs_control(s->all->subs, s->sub);
	bool no = false;

	if (!c)
		return false;
	if (atomic_load(&c->ended) || !atomic_compare_exchange_strong(&c->delivers, &no, true)) {
		conn_unref(c);
		return false;
	}
	lock(&s->lock);
	s->via = c;
	unlock(&s->lock);
	log_info("%s refused the connection; delivering over its subscribing connection",
		 s->sub->addr);
	return true;
}

/* Connects back to the subscriber; false when it was evicted. */
static bool connect_back(struct sender *s)
{
	char err[128];
	int fd = net_connect_bound(s->sub->ip, s->sub->port, CONNECT_TIMEOUT_MS, err,
				   sizeof err, register_local, s);
	bool refused = fd < 0 && errno == ECONNREFUSED;

	if (fd < 0)
		unregister_local(s);
	if (fd >= 0) {
		lock(&s->lock);
		if (!s->ending) {
			s->fd = fd;
			fd = -1;
		}
		unlock(&s->lock);
		if (fd >= 0) {
			unregister_local(s);
			close(fd);
			return false;
		}
		tcpout_delivered(&s->out);
		log_debug("connected to subscriber %s", s->sub->addr);
		return true;
	}
	if (refused && use_subscribing_connection(s))
		return true;
	evict(s, "cannot connect back", err, false, false);
	return false;
}

static void connect_done(struct sender *s)
{
	atomic_fetch_sub(&s->all->connecting, 1);
	if (s->all->subs->changed)
		wake_poke(s->all->subs->changed);
}

/* It subscribed again: keep a live connection, replace a dead one.
 * False when it was evicted. */
static bool recheck(struct sender *s)
{
	enum net_peer st;
	uint64_t lost;

	lock(&s->lock);
	if (!s->recheck || s->fd < 0) {
		s->recheck = false;
		unlock(&s->lock);
		return true;
	}
	s->recheck = false;
	unlock(&s->lock);
	st = net_peer_state(s->fd);
	if (st == NET_PEER_OPEN)
		return true;
	lost = tcpout_broken(&s->out, s->fd, st == NET_PEER_RESET);
	if (lost > 0)
		log_info("%s subscribed again over a new listener; %llu message(s) may not "
			 "have reached the old one", s->sub->addr, (unsigned long long)lost);
	unregister_local(s);
	lock(&s->lock);
	close(s->fd);
	s->fd = -1;
	unlock(&s->lock);
	return connect_back(s);
}

/* ---------------------------------------------------------------------
 * Delivering
 * ------------------------------------------------------------------- */

/* On our own connection the subscriber never talks; data or EOF there
 * means it is gone or restarted.  Looked at every PEER_CHECK_MS at most:
 * a syscall per write would cost as much as the write. */
static bool still_there(struct sender *s, bool now)
{
	int64_t t = mono_now_ms();
	enum net_peer st;

	if (s->fd < 0 || (!now && t - s->checked_ms < PEER_CHECK_MS))
		return true;
	s->checked_ms = t;
	st = net_peer_state(s->fd);
	if (st == NET_PEER_OPEN)
		return true;
	evict(s, st == NET_PEER_RESET ? "connection reset" : "connection closed",
	      "connection closed", st == NET_PEER_RESET, true);
	return false;
}

/* Whether the subscriber has acknowledged nothing new for the stall
 * timeout while it owes us bytes; if so, evicts it. */
static bool stalled(struct sender *s, int fd)
{
	char why[64];

	tcpout_settle(&s->out, fd);
	if (tcpout_stall_left(&s->out, s->all->stall_ms) != 0)
		return false;
	snprintf(why, sizeof why, "stalled: accepted nothing for %d s", s->all->stall_ms / 1000);
	evict(s, why, "stalled", false, true);
	return true;
}

/* Waits until fd takes more or the subscriber counts as stalled; false
 * when it was evicted. */
static bool wait_writable(struct sender *s, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT | (s->fd >= 0 ? POLLIN : 0) };
	int rc;

	if (stalled(s, fd))
		return false;
	rc = poll(&p, 1, tcpout_stall_left(&s->out, s->all->stall_ms));
	if (rc <= 0)
		return true;	/* the next round looks at the clock */
	return !(p.revents & POLLIN) || still_there(s, true);
}

/* Writes what tcpout holds; false when the subscriber was evicted. */
static bool write_out(struct sender *s)
{
	int fd = s->fd >= 0 ? s->fd : s->via->fd;

	if (!still_there(s, false))
		return false;
	while (tcpout_pending(&s->out) > 0) {
		ssize_t w = tcpout_write(&s->out, fd);

		if (w < 0) {
			char why[96];

			snprintf(why, sizeof why, "write failed: %s", strerror(errno));
			evict(s, why, "connection closed", net_is_reset(errno), true);
			return false;
		}
		if (tcpout_pending(&s->out) > 0 && !wait_writable(s, fd))
			return false;
	}
	tcpout_settle_lazily(&s->out, fd, SETTLE_EVERY_MS);
	return true;
}

static int out_fd(struct sender *s)
{
	return s->fd >= 0 ? s->fd : s->via ? s->via->fd : -1;
}

/* One batch; false when the sender is done.  While the subscriber owes
 * us bytes, the wait for more messages has the stall clock's deadline. */
static bool deliver(struct sender *s)
{
	struct msg *batch[TCPOUT_BATCH];
	int left = tcpout_stall_left(&s->out, s->all->stall_ms);
	struct timespec deadline = mono_after(left);
	size_t n = msgq_pop(&s->sub->q, batch, TCPOUT_BATCH, true, left >= 0 ? &deadline : NULL);

	tcpout_add(&s->out, batch, n);
	if (!recheck(s))
		return false;
	if (n > 0)
		return write_out(s);
	if (msgq_closed(&s->sub->q))
		return false;		/* unsubscribed: hang_up ends it cleanly */
	return !stalled(s, out_fd(s));
}

/* Lets a reader finish waking every sender before any of them runs: on
 * Linux, SCHED_BATCH threads do not preempt the thread that woke them.
 * (The constant is Linux's; POSIX has no such policy.) */
static void yield_to_wakers(void)
{
#ifdef __linux__
	struct sched_param sp = { .sched_priority = 0 };

	/* Best effort: without it senders only preempt a little sooner. */
	(void)pthread_setschedparam(pthread_self(), 3 /* SCHED_BATCH */, &sp);
#endif
}

/* Unsubscribed and delivered: a graceful close.  Otherwise just close. */
static void hang_up(struct sender *s)
{
	bool ending;

	lock(&s->lock);
	ending = s->ending;
	unlock(&s->lock);
	if (s->fd >= 0) {
		int fd = s->fd;

		unregister_local(s);
		/* Out of abort's sight before the number can be reused. */
		lock(&s->lock);
		s->fd = -1;
		unlock(&s->lock);
		if (ending)
			close(fd);
		else
			net_close_gracefully(fd, CLOSE_LINGER_MS);
	}
	if (s->via)
		atomic_store(&s->via->delivers, false);
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct senders *all = s->all;
	bool ok;

	yield_to_wakers();
	ok = connect_back(s);
	connect_done(s);
	while (ok)
		ok = deliver(s);
	hang_up(s);
	reaper_done(&all->reaper, &s->reaped);
	return NULL;
}

static void release(struct reaped *r)
{
	struct sender *s = (struct sender *)r;

	subs_set_sender(s->all->subs, s->sub, NULL);
	subs_release(s->all->subs);
	tcpout_free(&s->out);
	conn_unref(s->via);
	sub_unref(s->sub);
	mutex_destroy(&s->lock);
	free(s);
}

int sender_start(struct senders *all, struct sub *sub)
{
	struct sender *s = calloc(1, sizeof *s);
	int rc;

	if (!s) {
		subs_release(all->subs);
		return ENOMEM;
	}
	s->all = all;
	s->sub = sub_ref(sub);
	s->fd = -1;
	mutex_init(&s->lock);
	tcpout_init(&s->out);
	subs_set_sender(all->subs, sub, s);
	atomic_fetch_add(&all->connecting, 1);
	rc = reaper_start(&all->reaper, &s->reaped, sender_main, s);
	if (rc != 0) {
		atomic_fetch_sub(&all->connecting, 1);
		release(&s->reaped);
	}
	return rc;
}

static void mark_recheck(struct sender *s, void *arg)
{
	(void)arg;
	lock(&s->lock);
	s->recheck = true;
	unlock(&s->lock);
}

void sender_recheck(struct sub *sub, struct senders *all)
{
	subs_with_sender(all->subs, sub, mark_recheck, NULL);
	msgq_kick(&sub->q);
}

size_t senders_reap(struct senders *all)
{
	return reaper_join(&all->reaper, release);
}

int senders_reap_fd(struct senders *all)
{
	return reaper_fd(&all->reaper);
}

size_t senders_connecting(struct senders *all)
{
	return atomic_load(&all->connecting);
}

static void abort_one(struct reaped *t, void *arg)
{
	struct sender *s = (struct sender *)t;

	(void)arg;
	lock(&s->lock);
	s->ending = true;
	if (s->fd >= 0)
		shutdown(s->fd, SHUT_RDWR);
	if (s->via)
		conn_shutdown(s->via);
	unlock(&s->lock);
	msgq_close(&s->sub->q);
	msgq_clear(&s->sub->q);
}

void senders_abort(struct senders *all)
{
	reaper_each(&all->reaper, abort_one, NULL);
}

struct own {
	const struct conn *c;
	bool found;
};

static void is_own(struct reaped *t, void *arg)
{
	struct sender *s = (struct sender *)t;
	struct own *o = arg;

	o->found = o->found || (atomic_load(&s->local_port) == o->c->peer_port &&
				s->sub->port == o->c->local_port &&
				strcmp(s->sub->ip, o->c->local_ip) == 0);
}

bool senders_own_connection(struct senders *all, const struct conn *c)
{
	struct own o = { .c = c, .found = false };

	reaper_each(&all->reaper, is_own, &o);
	return o.found;
}
