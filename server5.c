/* server5.c - the chat relay (question 2 of the assignment).
 *
 *   server5 [options] [HOST:]PORT
 *
 * Threads: the listener thread accepts; each connection's reader thread
 * parses what the client sends and handles subscribe, unsubscribe and chat
 * messages.  A chat message is serialized once and a reference to it is
 * queued for every other subscriber (subs.c).  Each subscriber has a sender
 * thread that connects back to the subscriber's listening address and
 * writes what is queued for it.  The main thread waits for SIGINT/SIGTERM
 * and joins sender threads as they finish. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "addr.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "signals.h"
#include "subs.h"
#include "thread.h"

#define BATCH 256			/* messages per writev (below IOV_MAX) */
#define CONNECT_TRIES 3			/* connecting back to a subscriber */
#define CONNECT_TIMEOUT_MS 2000
#define RETRY_GAP_MS 100
#define PEER_CHECK_MS 50		/* how often a sender looks for EOF */
#define PARTIAL_TIMEOUT_MS 30000	/* a half-sent object may hold a reader */
#define EXIT_DRAIN_MS 5000		/* delivering queues at shutdown */
#define QUEUE_BYTES (16u << 20)

static const char usage_line[] =
	"usage: server5 [-hqv] [--version] [--bind ADDR] [--max-clients N]\n"
	"               [--max-per-ip N] [--max-conns N] [--queue-limit N]\n"
	"               [--partial-timeout SECONDS] [HOST:]PORT\n";

/* ---------------------------------------------------------------------
 * The server and its subscribers' sender threads
 * ------------------------------------------------------------------- */

struct server {
	struct subtable subs;
	size_t queue_msgs;
	int partial_timeout_ms;
	int done_pipe[2];		/* senders announce that they finished */
	pthread_mutex_t lock;		/* guards the two lists */
	struct sender *running, *finished;
	size_t nrunning;
};

/* The thread that delivers to one subscriber (struct sub's owner). */
struct sender {
	struct server *srv;
	struct sub *sub;		/* a reference */
	struct conn *origin;		/* the subscribing connection, until
					 * we know we do not need it */
	pthread_t thread;
	pthread_mutex_t lock;		/* guards fd, via and ending */
	int fd;				/* our connection to the subscriber */
	struct conn *via;		/* or: its subscribing connection */
	bool ending;			/* someone else ended it and said why */
	struct sender *next;
};

static void done_poke(struct server *srv)
{
	char b = 1;

	if (write(srv->done_pipe[1], &b, 1) < 0) {
		/* full: main wakes anyway */
	}
}

/* Stops a sender from outside, dropping its queue: wakes its blocked
 * write or wait.  The caller has logged why, and holds srv->lock, which
 * keeps the sender from being freed meanwhile. */
static void sender_abort(struct sender *s)
{
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

/* Ends the subscription from inside the sender, unless someone already did. */
static void sender_fail(struct sender *s, const char *why, const char *detail)
{
	bool quiet;

	lock(&s->lock);
	quiet = s->ending;
	s->ending = true;
	unlock(&s->lock);
	if (subs_remove(&s->srv->subs, s->sub) && !quiet)
		log_info("evicted %s: %s%s%s", s->sub->addr, why,
			 detail ? ": " : "", detail ? detail : "");
}

/* Connects back to the subscriber, or falls back to its subscribing
 * connection when nothing listens there.  Returns false to give up. */
static bool sender_connect(struct sender *s)
{
	char err[128];
	int i, fd = -1;
	bool refused = false;

	for (i = 0; i < CONNECT_TRIES && fd < 0; i++) {
		if (i > 0) {
			struct timespec gap = mono_after(RETRY_GAP_MS);

			/* Between tries: notice that we were ended. */
			if (msgq_closed(&s->sub->q))
				return false;
			while (mono_ms_until(&gap) > 0)
				poll(NULL, 0, mono_ms_until(&gap));
		}
		fd = net_connect(s->sub->ip, s->sub->port, CONNECT_TIMEOUT_MS, err, sizeof err);
		refused = fd < 0 && errno == ECONNREFUSED;
	}
	lock(&s->lock);
	if (fd >= 0 && !s->ending) {
		s->fd = fd;
		fd = -1;
	} else if (refused && !s->ending && !atomic_load(&s->origin->ended)) {
		s->via = conn_ref(s->origin);
	}
	unlock(&s->lock);
	if (fd >= 0)
		close(fd);
	if (s->fd >= 0) {
		log_debug("connected to subscriber %s", s->sub->addr);
		return true;
	}
	if (s->via) {
		log_info("%s refused the connection; delivering over its subscribing connection",
			 s->sub->addr);
		return true;
	}
	sender_fail(s, "cannot connect", err);
	return false;
}

/* Lets a reader finish waking every sender before any of them runs: on
 * Linux, SCHED_BATCH threads do not preempt the thread that woke them.
 * (The constant is Linux's; POSIX has no such policy.) */
static void yield_to_wakers(void)
{
#ifdef __linux__
	struct sched_param sp = { .sched_priority = 0 };

	pthread_setschedparam(pthread_self(), 3 /* SCHED_BATCH */, &sp);
#endif
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct msg *batch[BATCH];
	struct iovec iov[BATCH];
	bool ok;
	struct timespec now, checked = { 0 };
	int out;
	size_t n, i;

	yield_to_wakers();
	ok = sender_connect(s);
	/* The subscribing connection is only needed to deliver over it. */
	conn_unref(s->origin);
	s->origin = NULL;
	out = s->via ? s->via->fd : s->fd;
	while (ok) {
		n = msgq_pop(&s->sub->q, batch, BATCH, true, NULL);
		if (n == 0)
			break;		/* closed and drained */
		for (i = 0; i < n; i++) {
			iov[i].iov_base = batch[i]->data;
			iov[i].iov_len = batch[i]->len;
		}
		/* On our own connection the subscriber never talks; data
		 * or EOF there means it is gone or restarted.  Checked at
		 * most every PEER_CHECK_MS: a syscall per write would cost
		 * as much as the write. */
		now = mono_now();
		if (!s->via && mono_ms(&now) - mono_ms(&checked) >= PEER_CHECK_MS &&
		    (checked = now, net_peer_closed(out))) {
			sender_fail(s, "connection closed", NULL);
			ok = false;
		} else if (net_writev_all(out, iov, (int)n) < 0) {
			sender_fail(s, "write failed", strerror(errno));
			ok = false;
		}
		for (i = 0; i < n; i++)
			msg_unref(batch[i]);
	}

	lock(&s->lock);
	if (s->fd >= 0) {
		int fd = s->fd;

		s->fd = -1;
		unlock(&s->lock);
		net_close_gracefully(fd, ok ? 1000 : 0);
	} else {
		unlock(&s->lock);
	}
	/* Hand ourselves to the main thread to be joined. */
	lock(&s->srv->lock);
	{
		struct sender **pp;

		for (pp = &s->srv->running; *pp; pp = &(*pp)->next)
			if (*pp == s) {
				*pp = s->next;
				break;
			}
	}
	s->next = s->srv->finished;
	s->srv->finished = s;
	unlock(&s->srv->lock);
	done_poke(s->srv);
	return NULL;
}

/* Ends the subscription of a subscriber already taken out of the table. */
static void abort_sub(struct server *srv, struct sub *sub)
{
	lock(&srv->lock);
	if (sub->owner)
		sender_abort(sub->owner);
	unlock(&srv->lock);
}

static void sender_free(struct sender *s)
{
	if (s->via)
		conn_unref(s->via);
	lock(&s->srv->lock);
	s->sub->owner = NULL;
	unlock(&s->srv->lock);
	sub_unref(s->sub);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Joins the senders that have finished; returns how many still run. */
static size_t reap_senders(struct server *srv)
{
	struct sender *s, *next;
	size_t left;
	char buf[64];

	while (read(srv->done_pipe[0], buf, sizeof buf) > 0) {
	}
	lock(&srv->lock);
	s = srv->finished;
	srv->finished = NULL;
	unlock(&srv->lock);
	for (; s; s = next) {
		next = s->next;
		pthread_join(s->thread, NULL);
		lock(&srv->lock);
		srv->nrunning--;
		unlock(&srv->lock);
		sender_free(s);
	}
	lock(&srv->lock);
	left = srv->nrunning;
	unlock(&srv->lock);
	return left;
}

static int sender_start(struct server *srv, struct sub *sub, struct conn *origin)
{
	struct sender *s = calloc(1, sizeof *s);
	int rc;

	if (!s)
		return ENOMEM;
	s->srv = srv;
	s->sub = sub_ref(sub);
	s->origin = conn_ref(origin);
	s->fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	lock(&srv->lock);
	rc = thread_start(&s->thread, sender_main, s);
	if (rc == 0) {
		sub->owner = s;
		s->next = srv->running;
		srv->running = s;
		srv->nrunning++;
	}
	unlock(&srv->lock);
	if (rc != 0) {
		conn_unref(s->origin);
		s->origin = NULL;
		sender_free(s);
	}
	return rc;
}

/* ---------------------------------------------------------------------
 * What clients send
 * ------------------------------------------------------------------- */

struct client {
	struct server *srv;
	struct conn *c;
	unsigned complaints;
	struct sub_wakeups wakeups;	/* senders to wake after this batch */
};

/* The address to deliver to: the connection's own IP with the port the
 * client named.  Naming another host is logged and rewritten, so the relay
 * cannot be used to send traffic to third parties.  Returns 0 or -1. */
static int client_addr(struct client *cl, const struct proto_msg *m,
		       uint16_t *port, const char *op)
{
	char host[ADDR_HOSTLEN], named[ADDR_STRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *why;

	if (m->client_len != strlen(m->client) ||
	    addr_split(m->client, host, sizeof host, port, &why) < 0) {
		if (log_budget(&cl->complaints, cl->c->peer))
			log_info("%s: refused %s for '%s': %s", cl->c->peer, op,
				 m->client, m->client_len != strlen(m->client) ? "NUL in address" : why);
		return -1;
	}
	/* Compare in canonical form: "::ffff:127.0.0.1" is 127.0.0.1. */
	named[0] = '\0';
	if (inet_pton(AF_INET, host, bin) == 1)
		inet_ntop(AF_INET, bin, named, sizeof named);
	else if (inet_pton(AF_INET6, host, bin) == 1) {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };

		memcpy(&sin6.sin6_addr, bin, sizeof sin6.sin6_addr);
		addr_format_ip((struct sockaddr *)&sin6, named, sizeof named);
	}
	if (strcmp(named, cl->c->peer_ip) != 0)
		log_info("%s: %s names %s; using %s port %u instead", cl->c->peer,
			 op, m->client, cl->c->peer_ip, *port);
	return 0;
}

static void on_subscribe(struct client *cl, const struct proto_msg *m)
{
	struct server *srv = cl->srv;
	struct sub *sub, *old;
	const char *why;
	uint16_t port;
	int rc;

	if (client_addr(cl, m, &port, "subscribe") < 0)
		return;
	sub = sub_new(cl->c->peer_ip, port, cl->c->id, srv->queue_msgs, QUEUE_BYTES);
	if (!sub) {
		log_warn("%s: refused subscribe: out of memory", cl->c->peer);
		return;
	}
	if (subs_add(&srv->subs, sub, &old, &why) < 0) {
		log_info("%s: refused subscribe %s: %s", cl->c->peer, sub->addr, why);
		sub_unref(sub);
		return;
	}
	rc = sender_start(srv, sub, cl->c);
	if (rc != 0) {
		subs_remove(&srv->subs, sub);
		log_warn("%s: refused subscribe %s: cannot start a thread: %s",
			 cl->c->peer, sub->addr, strerror(rc));
	} else {
		log_info("subscribed %s (from %s)%s", sub->addr, cl->c->peer,
			 old ? ", replacing the old subscription" : "");
	}
	if (old) {
		/* A client that subscribes again has most likely restarted:
		 * the old connection is dead, drop what was queued for it. */
		abort_sub(srv, old);
		sub_unref(old);
	}
	sub_unref(sub);
}

static void on_unsubscribe(struct client *cl, const struct proto_msg *m)
{
	char addr[ADDR_STRLEN];
	struct sub *sub;
	uint16_t port;

	if (client_addr(cl, m, &port, "unsubscribe") < 0)
		return;
	addr_join(cl->c->peer_ip, port, addr, sizeof addr);
	sub = subs_remove_addr(&cl->srv->subs, addr);
	if (!sub) {
		log_info("%s: unsubscribe for %s, which is not subscribed", cl->c->peer, addr);
		return;
	}
	/* Its sender delivers what is queued, then closes. */
	msgq_close(&sub->q);
	log_info("unsubscribed %s", addr);
	sub_unref(sub);
}

static void on_chat(struct client *cl, const struct proto_msg *m)
{
	struct msg *out;
	struct sub *evicted, *next;
	size_t n;

	/* Serialized once; every subscriber's queue shares these bytes. */
	out = proto_encode_chat(m->seq, m->user, m->user_len, m->text, m->text_len);
	if (!out) {
		log_warn("%s: message not relayed: %s", cl->c->peer, strerror(errno));
		return;
	}
	evicted = subs_fanout(&cl->srv->subs, out, cl->c->id, &n, &cl->wakeups);
	msg_unref(out);
	log_debug("%s: seq %lld from %.*s relayed to %zu subscriber(s)", cl->c->peer,
		  (long long)m->seq, (int)m->user_len, m->user, n);
	for (; evicted; evicted = next) {
		next = evicted->next_evicted;
		log_info("evicted %s: queue full (not reading)", evicted->addr);
		abort_sub(cl->srv, evicted);
		sub_unref(evicted);
	}
}

static int on_value(void *arg, struct json_object *obj)
{
	struct client *cl = arg;
	struct proto_msg m;
	const char *why;

	if (proto_decode(obj, &m, &why) < 0) {
		if (log_budget(&cl->complaints, cl->c->peer))
			log_info("%s: skipped a message: %s", cl->c->peer, why);
		return 0;
	}
	switch (m.type) {
	case PROTO_SUBSCRIBE: on_subscribe(cl, &m); break;
	case PROTO_UNSUBSCRIBE: on_unsubscribe(cl, &m); break;
	case PROTO_CHAT: on_chat(cl, &m); break;
	}
	return 0;
}

/* After each chunk read: wake the senders that got messages from it. */
static void on_batch_end(void *arg)
{
	struct client *cl = arg;

	subs_wake(&cl->wakeups);
}

static void serve_client(struct conn *c, void *arg)
{
	struct client cl = { .srv = arg, .c = c };
	struct jstream_handler h = { .value = on_value, .batch_end = on_batch_end, .arg = &cl };

	log_debug("%s: connected", c->peer);
	conn_read_json(c, &h, cl.srv->partial_timeout_ms);
	subs_wakeups_free(&cl.wakeups);
}

/* ---------------------------------------------------------------------
 * Start-up and shutdown
 * ------------------------------------------------------------------- */

static void usage_error(const char *what, const char *why)
{
	log_warn("%s%s", what, why);
	fputs(usage_line, stderr);
	exit(2);
}

static void help(void)
{
	printf("%s"
	       "Relay chat messages between subscribed chat5 clients.\n\n"
	       "  [HOST:]PORT         where to listen (PORT 0: any free port;\n"
	       "                      no HOST: every address, IPv6 and IPv4)\n"
	       "  --bind ADDR         listen on this address only (same as ADDR:PORT)\n"
	       "  --max-clients N     subscribers at once (default 1024)\n"
	       "  --max-per-ip N      subscribers from one IP address (default 256)\n"
	       "  --max-conns N       client connections open at once (default 1024)\n"
	       "  --queue-limit N     messages queued for one subscriber before it is\n"
	       "                      evicted as not reading (default 1000)\n"
	       "  --partial-timeout S seconds a client may leave an object half-sent\n"
	       "                      before its connection is closed (default 30)\n"
	       "  -q, --quiet         only warnings on stderr\n"
	       "  -v, --verbose       also per-message detail\n"
	       "  -h, --help          this help\n"
	       "      --version       print the version\n",
	       usage_line);
	exit(0);
}

static size_t count_arg(const char *opt, const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v == 0 || v > 10000000)
		usage_error(opt, ": expected a number from 1 to 10000000");
	return (size_t)v;
}

/* Thread-per-connection needs descriptors: raise the soft limit as far as
 * allowed and say so when it is still short of what the limits need. */
static void raise_fd_limit(size_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warn("open-file limit %llu is below the %zu the limits may need; "
			 "raise it (ulimit -n) or lower --max-clients/--max-conns",
			 (unsigned long long)rl.rlim_cur, need);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "max-clients", required_argument, NULL, 'C' },
		{ "max-per-ip", required_argument, NULL, 'P' },
		{ "max-conns", required_argument, NULL, 'N' },
		{ "queue-limit", required_argument, NULL, 'Q' },
		{ "partial-timeout", required_argument, NULL, 'T' },
		{ "bind", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	static struct server srv;
	size_t max_clients = 1024, max_per_ip = 256, max_conns = 1024;
	char host[ADDR_HOSTLEN];
	struct listener *lis;
	struct timespec deadline;
	struct sub **all;
	const char *why, *bind_addr = NULL;
	char err[128];
	uint16_t port;
	size_t n, i;
	int opt, fd;

	log_init(argv[0]);
	opterr = 0;	/* our own message, prefixed like every other */
	srv.queue_msgs = 1000;
	srv.partial_timeout_ms = PARTIAL_TIMEOUT_MS;
	while ((opt = getopt_long(argc, argv, "hqv", opts, NULL)) != -1) {
		switch (opt) {
		case 'h': help(); break;
		case 'q': log_set_level(LOG_QUIET); break;
		case 'v': log_set_level(LOG_VERBOSE); break;
		case 'V': printf("server5 %s\n", VERSION); return 0;
		case 'C': max_clients = count_arg("--max-clients", optarg); break;
		case 'P': max_per_ip = count_arg("--max-per-ip", optarg); break;
		case 'N': max_conns = count_arg("--max-conns", optarg); break;
		case 'Q': srv.queue_msgs = count_arg("--queue-limit", optarg); break;
		case 'T': {
			size_t sec = count_arg("--partial-timeout", optarg);

			srv.partial_timeout_ms = sec > 86400 ? 86400000 : (int)sec * 1000;
			break;
		}
		case 'b': bind_addr = optarg; break;
		default: usage_error("bad option or missing value: ", argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		usage_error("", argc - optind == 0 ? "PORT is required" : "too many arguments");
	host[0] = '\0';
	if (strchr(argv[optind], ':')) {
		if (addr_split_ex(argv[optind], host, sizeof host, &port, 1, &why) < 0)
			usage_error("[HOST:]PORT: ", why);
	} else if (addr_parse_port(argv[optind], 1, &port, &why) < 0) {
		usage_error("PORT: ", why);
	}

	if (signals_init() < 0 || pipe(srv.done_pipe) < 0)
		log_die(1, "setup: %s", strerror(errno));
	for (i = 0; i < 2; i++) {
		fcntl(srv.done_pipe[i], F_SETFL, O_NONBLOCK);
		fcntl(srv.done_pipe[i], F_SETFD, FD_CLOEXEC);
	}
	pthread_mutex_init(&srv.lock, NULL);
	if (subs_init(&srv.subs, max_clients, max_per_ip) < 0)
		log_die(1, "setup: %s", strerror(errno));
	raise_fd_limit(max_conns + 2 * max_clients + 64);

	if (bind_addr)
		snprintf(host, sizeof host, "%s", bind_addr);
	fd = net_listen(*host ? host : NULL, port, err, sizeof err);
	if (fd < 0)
		log_die(1, "cannot listen on %s%sport %u: %s", host, *host ? " " : "", port, err);
	port = net_local_port(fd);
	lis = listener_start(&(struct listener_config){
		.fd = fd, .max_conns = max_conns, .handler = serve_client, .arg = &srv });
	if (!lis)
		log_die(1, "cannot start the listener: %s", strerror(errno));
	log_info("listening on port %u", port);

	/* Until a signal: join senders as they finish. */
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = signals_fd(), .events = POLLIN },
			{ .fd = srv.done_pipe[0], .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			log_die(1, "poll: %s", strerror(errno));
		if (p[1].revents)
			reap_senders(&srv);
		if (p[0].revents || signals_caught())
			break;
	}
	log_info("shutting down");

	/* No new input; then let every sender deliver its queue, for a
	 * bounded time. */
	listener_stop(lis);
	all = subs_take_all(&srv.subs, &n);
	for (i = 0; i < n; i++) {
		msgq_close(&all[i]->q);
		sub_unref(all[i]);
	}
	free(all);
	deadline = mono_after(EXIT_DRAIN_MS);
	while (reap_senders(&srv) > 0) {
		struct pollfd p = { .fd = srv.done_pipe[0], .events = POLLIN };
		int left = mono_ms_until(&deadline);

		if (left == 0) {
			struct sender *s;

			lock(&srv.lock);
			for (s = srv.running; s; s = s->next)
				sender_abort(s);
			unlock(&srv.lock);
			deadline = mono_after(60000);
		}
		poll(&p, 1, left > 0 ? left : 1000);
	}
	subs_destroy(&srv.subs);
	pthread_mutex_destroy(&srv.lock);
	close(srv.done_pipe[0]);
	close(srv.done_pipe[1]);
	return 0;
}
