/* server5.c - the chat relay (question 2 of the assignment).
 *
 *   server5 [options] [HOST:]PORT
 *
 * Threads: the listener thread accepts; each client connection's reader
 * thread reads what the client sends and handles subscribe, unsubscribe
 * and chat messages.  A chat message is serialized once and a reference to
 * it is queued for every other subscriber (subs.c), waiting for room when
 * a queue is full, so a fast sender is slowed to what its readers take.
 * Each subscriber has a sender thread (sender.c) that connects back to
 * the subscriber's listening address and writes what is queued for it.
 * The main thread waits for signals, joins senders as they finish and
 * keeps the --state file. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "addr.h"
#include "cli.h"
#include "cluster.h"
#include "listener.h"
#include "log.h"
#include "proto.h"
#include "reader.h"
#include "sender.h"
#include "signals.h"
#include "state.h"
#include "subs.h"
#include "thread.h"

#define QUEUE_BYTES (16u << 20)		/* per subscriber */
#define POOL_BYTES (256u << 20)		/* every message held, in total */
#define PER_CONN_SUBS 4			/* a chat5 needs one */
#define SENDER_MARGIN 16		/* senders still ending, past the limit */
#define EXIT_DRAIN_MS 5000		/* delivering queues at shutdown */
#define RESTORE_WAIT_MS 10000		/* connecting back to the saved table */
#define ABORT_WAIT_MS 60000		/* senders stopped by force */
#define TICK_MS 1000			/* periodic summaries */
#define PARTIAL_TIMEOUT_MS 30000	/* --partial-timeout */

static struct cli cli = {
	.usage = "usage: server5 [-hqv] [--version] [--bind ADDR] [--max-clients N]\n"
		 "               [--max-per-ip N] [--max-conns N] [--queue-limit N]\n"
		 "               [--partial-timeout SECONDS] [--stall-timeout SECONDS]\n"
		 "               [--state FILE] [--nats URL[,URL...]] [--room NAME]\n"
		 "               [HOST:]PORT\n",
	.help = "Relay chat messages between subscribed chat5 clients.\n\n"
		"  [HOST:]PORT         where to listen (PORT 0: any free port;\n"
		"                      no HOST: every address, IPv6 and IPv4)\n"
		"  --max-clients N     subscribers at once (default 1024)\n"
		"  --max-per-ip N      subscribers from one IP address (default 256)\n"
		"  --max-conns N       client connections open at once (default 1024)\n"
		"  --queue-limit N     messages queued for one subscriber before the\n"
		"                      senders wait for it (default 1000)\n"
		"  --partial-timeout S seconds a client may take to finish an object\n"
		"                      (its first, or one it began) (default 30)\n"
		"  --stall-timeout S   a subscriber that accepts nothing for S seconds\n"
		"                      while messages wait for it is evicted (default 10)\n"
		"  --state FILE        keep the subscribers in FILE across restarts\n"
		"  --nats URL[,URL...] join the other server5 of a NATS cluster\n"
		"  --room NAME         the room on the cluster (default main)\n",
	.notes = "Nothing is dropped for a subscriber that reads: memory is bounded by\n"
		"waiting, at most --queue-limit messages and 16 MiB per subscriber and\n"
		"256 MiB of messages in all (with --nats, plus at most 76 MiB held for\n"
		"and from the cluster).\n",
};

enum {
	OPT_MAX_CLIENTS = CLI_OWN, OPT_MAX_PER_IP, OPT_MAX_CONNS, OPT_QUEUE_LIMIT,
	OPT_PARTIAL, OPT_STATE, OPT_NATS, OPT_ROOM
};

struct server {
	struct subs_limits lim;
	size_t max_conns;
	int partial_ms;
	const char *state_path, *nats_urls, *room;
	char host[ADDR_HOSTLEN];	/* where we listen ("": everywhere) */
	char host_ip[ADDR_STRLEN];	/* the same, canonical, if numeric */
	uint16_t port;

	struct subtable subs;
	struct senders *senders;
	struct msgpool pool;
	struct wake changed;		/* the table changed */
	struct listener *lis;
	struct cluster *cluster;
	pthread_mutex_t tally_lock;	/* guards refusals */
	struct log_tally refusals;
	uint64_t saved_gen;
};

/* ---------------------------------------------------------------------
 * What clients send
 * ------------------------------------------------------------------- */

struct client {
	struct server *srv;
	struct conn *c;
	struct fanout fan;
};

/* The address to deliver to: the connection's own IP with the port the
 * client named.  Naming another host is logged and rewritten, so the relay
 * cannot be used to send traffic to third parties.  Returns 0 or -1. */
static int client_addr(struct client *cl, const struct proto_msg *m,
		       uint16_t *port, const char *op)
{
	char host[ADDR_HOSTLEN], named[ADDR_STRLEN] = "";
	const char *why;

	if (m->client_len != strlen(m->client) ||
	    addr_split(m->client, host, sizeof host, port, &why) < 0) {
		log_peer_info(&cl->c->budget, "%s: refused %s for '%s': %s", cl->c->peer, op,
			      m->client, m->client_len != strlen(m->client) ? "NUL in address" : why);
		return -1;
	}
	/* Compare in canonical form: "::ffff:127.0.0.1" is 127.0.0.1. */
	if (addr_canonical_ip(host, named, sizeof named) < 0 || strcmp(named, cl->c->peer_ip) != 0)
		log_peer_info(&cl->c->budget, "%s: %s names %s; using %s port %u instead",
			      cl->c->peer, op, m->client, cl->c->peer_ip, *port);
	return 0;
}

/* Whether the relay would be connecting to its own listening socket. */
static bool is_self(struct server *srv, struct conn *c, uint16_t port)
{
	if (port != srv->port)
		return false;
	/* Bound to one address: only that one is us (0.0.0.0 and :: are
	 * every address). */
	if (*srv->host_ip && strcmp(srv->host_ip, "0.0.0.0") != 0 && strcmp(srv->host_ip, "::") != 0)
		return strcmp(c->peer_ip, srv->host_ip) == 0;
	return addr_is_loopback(c->peer_ip) || strcmp(c->peer_ip, c->local_ip) == 0;
}

/* A refused subscription: over a limit, counted into one line a second;
 * naming the relay itself, a line each time (within the connection's
 * budget).  The client is told, so that its chat5 says why and tries
 * again later. */
static void refuse(struct client *cl, const char *addr, const char *why, bool each)
{
	struct msg *m = proto_encode_dropped(addr, why);

	if (each) {
		log_peer_warn(&cl->c->budget, "%s: refused subscribe %s: %s", cl->c->peer, addr, why);
	} else {
		lock(&cl->srv->tally_lock);
		log_tally(&cl->srv->refusals, "%s: refused subscribe %s: %s", cl->c->peer, addr, why);
		unlock(&cl->srv->tally_lock);
	}
	if (m && send(cl->c->fd, m->data, m->len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* the client's business: it may not read at all */
	}
	msg_unref(m);
}

static void on_subscribe(struct client *cl, const struct proto_msg *m)
{
	struct server *srv = cl->srv;
	char addr[ADDR_STRLEN];
	const char *why;
	struct sub *sub;
	uint16_t port;
	bool again;
	int rc;

	if (client_addr(cl, m, &port, "subscribe") < 0)
		return;
	addr_join(cl->c->peer_ip, port, addr, sizeof addr);
	if (is_self(srv, cl->c, port)) {
		refuse(cl, addr, "that is this server's own address", true);
		return;
	}
	sub = subs_subscribe(&srv->subs, cl->c->peer_ip, port, cl->c->id, &again, &why);
	if (!sub) {
		refuse(cl, addr, why, false);
		return;
	}
	subs_set_control(&srv->subs, sub, cl->c);
	if (again) {
		sender_recheck(sub, srv->senders);
		log_peer_info(&cl->c->budget, "subscribed %s (from %s) again", addr, cl->c->peer);
	} else if ((rc = sender_start(srv->senders, sub)) != 0) {
		subs_remove(&srv->subs, sub);
		log_warn("%s: refused subscribe %s: cannot start a thread: %s", cl->c->peer,
			 addr, strerror(rc));
	} else {
		log_peer_info(&cl->c->budget, "subscribed %s (from %s)", addr, cl->c->peer);
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
		log_peer_info(&cl->c->budget, "%s: unsubscribe for %s, which is not subscribed",
			      cl->c->peer, addr);
		return;
	}
	/* Its sender delivers what is queued, then closes. */
	msgq_close(&sub->q);
	log_peer_info(&cl->c->budget, "unsubscribed %s", addr);
	sub_unref(sub);
}

/* Queues m for every subscriber but origin's, and tells the cluster. */
static void relay(struct server *srv, struct fanout *fan, struct msg *m, uint64_t origin,
		  bool publish)
{
	size_t n;

	if (!msgpool_charge(&srv->pool, m))
		return;		/* shutting down */
	/* The other servers first: a slow subscriber here must not hold
	 * them up.  One reader publishes in order, so order holds. */
	if (publish && srv->cluster)
		cluster_publish(srv->cluster, m);
	n = subs_fanout(&srv->subs, fan, m, origin);
	log_debug("relayed %zu bytes to %zu subscriber(s)", m->len, n);
}

static void on_chat(struct client *cl, const struct proto_msg *m)
{
	/* Serialized once; every subscriber's queue shares these bytes.  It
	 * always fits: the relay never writes more than it accepted. */
	struct msg *out = proto_encode_chat(m->seq, m->user, m->user_len, m->text, m->text_len);

	if (!out) {
		log_warn("%s: message not relayed: %s", cl->c->peer, strerror(errno));
		return;
	}
	relay(cl->srv, &cl->fan, out, cl->c->id, true);
	msg_unref(out);
}

static void on_value(struct client *cl, struct json_object *obj)
{
	struct proto_msg m;
	const char *why;

	if (proto_decode(obj, &m, &why) < 0) {
		log_peer_info(&cl->c->budget, "%s: skipped a message: %s", cl->c->peer, why);
		return;
	}
	conn_heard(cl->c);
	switch (m.type) {
	case PROTO_SUBSCRIBE: on_subscribe(cl, &m); break;
	case PROTO_UNSUBSCRIBE: on_unsubscribe(cl, &m); break;
	case PROTO_CHAT: on_chat(cl, &m); break;
	case PROTO_DROPPED: break;	/* for clients; ignored here */
	}
}

static void serve_client(struct conn *c, void *arg)
{
	struct client cl = { .srv = arg, .c = c };
	struct json_object *v;
	enum reader_event ev;
	struct reader r;

	if (senders_own_connection(cl.srv->senders, c)) {
		log_warn("%s: closed: it is one of this server's own connections to a subscriber",
			 c->peer);
		return;
	}
	log_debug("%s: connected", c->peer);
	if (reader_init(&r, c, cl.srv->partial_ms, cl.srv->partial_ms) < 0)
		return;
	while ((ev = reader_next(&r, &v)) != READER_END) {
		if (ev == READER_IDLE) {
			/* A batch is queued: wake its senders once. */
			fanout_wake(&cl.fan);
			continue;
		}
		on_value(&cl, v);
		json_object_put(v);
	}
	fanout_free(&cl.fan);
	reader_free(&r);
}

/* Messages from the other servers of the cluster, a batch at a time, on
 * its thread: each sender is woken once per batch. */
static void from_cluster(void *arg, struct msg **msgs, size_t n)
{
	static struct fanout fan;	/* the cluster's one thread */
	struct server *srv = arg;
	size_t i;

	if (n == 0) {
		fanout_free(&fan);
		return;
	}
	for (i = 0; i < n; i++)
		relay(srv, &fan, msgs[i], 0, false);
	fanout_wake(&fan);
}

/* ---------------------------------------------------------------------
 * Start-up
 * ------------------------------------------------------------------- */

static void own_option(int opt, const char *value, void *arg)
{
	struct server *srv = arg;

	switch (opt) {
	case OPT_MAX_CLIENTS:
		srv->lim.total = (size_t)cli_number(&cli, "--max-clients", value, 1, 10000000);
		break;
	case OPT_MAX_PER_IP:
		srv->lim.per_ip = (size_t)cli_number(&cli, "--max-per-ip", value, 1, 10000000);
		break;
	case OPT_MAX_CONNS:
		srv->max_conns = (size_t)cli_number(&cli, "--max-conns", value, 1, 10000000);
		break;
	case OPT_QUEUE_LIMIT:
		srv->lim.queue_msgs = (size_t)cli_number(&cli, "--queue-limit", value, 1, 10000000);
		break;
	case OPT_PARTIAL:
		srv->partial_ms = (int)cli_number(&cli, "--partial-timeout", value, 1, 86400) * 1000;
		break;
	case OPT_STATE: srv->state_path = value; break;
	case OPT_NATS: srv->nats_urls = value; break;
	case OPT_ROOM: srv->room = value; break;
	}
}

static void parse_args(struct server *srv, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "max-per-ip", required_argument, NULL, OPT_MAX_PER_IP },
		{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
		{ "queue-limit", required_argument, NULL, OPT_QUEUE_LIMIT },
		{ "partial-timeout", required_argument, NULL, OPT_PARTIAL },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "nats", required_argument, NULL, OPT_NATS },
		{ "room", required_argument, NULL, OPT_ROOM },
		{ NULL, 0, NULL, 0 },
	};
	int first;

	srv->lim = (struct subs_limits){ .total = 1024, .per_ip = 256, .per_conn = PER_CONN_SUBS,
					 .margin = SENDER_MARGIN, .queue_msgs = 1000,
					 .queue_bytes = QUEUE_BYTES };
	srv->max_conns = 1024;
	srv->partial_ms = PARTIAL_TIMEOUT_MS;
	srv->room = CLUSTER_DEFAULT_ROOM;
	first = cli_parse(&cli, argc, argv, opts, own_option, srv);
	if (argc - first != 1)
		cli_usage_error(&cli, argc - first == 0 ? "PORT is missing" : "too many arguments");
	if (strchr(argv[first], ':'))
		cli_host_port(&cli, "address", argv[first], srv->host, sizeof srv->host, &srv->port, true);
	else
		srv->port = cli_port(&cli, "port", argv[first], true);
	if (cli.bind)
		snprintf(srv->host, sizeof srv->host, "%s", cli.bind);
	if (addr_canonical_ip(srv->host, srv->host_ip, sizeof srv->host_ip) < 0)
		srv->host_ip[0] = '\0';
	if (srv->nats_urls) {
		char why[512] = "";

		if (!cluster_check(srv->nats_urls, srv->room, why, sizeof why))
			cli_usage_error(&cli, "%s", why);
	}
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

static void start(struct server *srv)
{
	if (signals_init() < 0 || wake_init(&srv->changed) < 0)
		log_die(1, "setup: %s", strerror(errno));
	mutex_init(&srv->tally_lock);
	msgpool_init(&srv->pool, POOL_BYTES);
	subs_init(&srv->subs, &srv->lim, &srv->changed);
	srv->senders = senders_new(&srv->subs, cli.stall_ms);
	if (!srv->senders)
		log_die(1, "setup: %s", strerror(errno));
	raise_fd_limit(srv->max_conns + 2 * srv->lim.total + 64);
}

/* Writes the table to the state file when it changed since the last time. */
static void save_state(struct server *srv)
{
	uint64_t gen = atomic_load(&srv->subs.gen);
	char *list;

	if (!srv->state_path || gen == srv->saved_gen)
		return;
	list = subs_list(&srv->subs);
	if (list && state_save(srv->state_path, list) == 0)
		srv->saved_gen = gen;
	else
		log_warn("cannot write %s: %s", srv->state_path, strerror(errno));
	free(list);
}

/* Subscribes one saved address again; false for a bad line. */
static bool restore_one(struct server *srv, const char *line)
{
	char host[ADDR_HOSTLEN], ip[ADDR_STRLEN];
	const char *why;
	struct sub *sub;
	uint16_t port;
	bool again;

	if (addr_split(line, host, sizeof host, &port, &why) < 0 ||
	    addr_canonical_ip(host, ip, sizeof ip) < 0)
		return false;
	sub = subs_subscribe(&srv->subs, ip, port, 0, &again, &why);
	if (!sub) {
		log_warn("%s: not restored: %s", line, why);
		return true;
	}
	if (!again && sender_start(srv->senders, sub) != 0)
		subs_remove(&srv->subs, sub);
	sub_unref(sub);
	return true;
}

/* With an existing state file: connects back to every subscriber in it
 * before any message is taken, so lines typed while we were down reach
 * all of them. */
static void restore(struct server *srv)
{
	struct timespec deadline = mono_after(RESTORE_WAIT_MS);
	char *text, *line, *save = NULL;
	size_t bad = 0;

	if (!srv->state_path)
		return;
	text = state_load(srv->state_path);
	if (!text) {
		if (errno != ENOENT)
			log_die(1, "cannot read %s: %s", srv->state_path, strerror(errno));
		return;
	}
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		bad += !restore_one(srv, line);
	free(text);
	if (bad)
		log_warn("%s: %zu line(s) that are not IP:PORT skipped", srv->state_path, bad);
	while (senders_connecting(srv->senders) > 0 && mono_ms_until(&deadline) > 0) {
		struct pollfd p = { .fd = wake_fd(&srv->changed), .events = POLLIN };

		poll(&p, 1, mono_ms_until(&deadline));
		wake_drain(&srv->changed);
	}
	log_info("restored %zu subscriber(s) from %s", subs_count(&srv->subs), srv->state_path);
	save_state(srv);
}

/* ---------------------------------------------------------------------
 * Serving, and shutting down
 * ------------------------------------------------------------------- */

/* Until a signal: joins senders as they finish, keeps the state file,
 * prints the summaries due. */
static void serve(struct server *srv)
{
	int64_t next_tick = mono_now_ms() + TICK_MS;

	while (!signals_caught()) {
		struct pollfd p[3] = {
			{ .fd = signals_fd(), .events = POLLIN },
			{ .fd = senders_reap_fd(srv->senders), .events = POLLIN },
			{ .fd = wake_fd(&srv->changed), .events = POLLIN },
		};
		int64_t left = next_tick - mono_now_ms();

		if (poll(p, 3, left > 0 ? (int)left : 0) < 0 && errno != EINTR)
			log_die(1, "poll: %s", strerror(errno));
		if (p[1].revents)
			senders_reap(srv->senders);
		if (p[2].revents) {
			wake_drain(&srv->changed);
			save_state(srv);
		}
		if (mono_now_ms() >= next_tick) {
			lock(&srv->tally_lock);
			log_tally_flush(&srv->refusals, "refused subscriptions", false);
			unlock(&srv->tally_lock);
			if (srv->cluster)
				cluster_tick(srv->cluster);
			next_tick = mono_now_ms() + TICK_MS;
		}
	}
}

/* Waits until every sender has ended or the deadline passed; the number
 * still running. */
static size_t wait_senders(struct server *srv, int ms)
{
	struct timespec deadline = mono_after(ms);
	size_t left;

	while ((left = senders_reap(srv->senders)) > 0 && mono_ms_until(&deadline) > 0) {
		struct pollfd p = { .fd = senders_reap_fd(srv->senders), .events = POLLIN };

		poll(&p, 1, mono_ms_until(&deadline));
	}
	return left;
}

/* No new input; every queue closed, so waiting fan-outs give up and each
 * sender delivers what it holds, for a bounded time; then force. */
static void shut_down(struct server *srv)
{
	struct sub **all;
	size_t n, i;

	log_info("shutting down");
	all = subs_take_all(&srv->subs, &n);
	for (i = 0; i < n; i++) {
		msgq_close(&all[i]->q);
		sub_unref(all[i]);
	}
	free(all);
	msgpool_close(&srv->pool);
	if (srv->cluster)
		cluster_quiesce(srv->cluster);
	listener_stop(srv->lis);
	if (srv->cluster)
		cluster_stop(srv->cluster);
	if (wait_senders(srv, EXIT_DRAIN_MS) > 0) {
		senders_abort(srv->senders);
		if (wait_senders(srv, ABORT_WAIT_MS) > 0)
			log_die(1, "senders did not stop");
	}
	senders_free(srv->senders);
	subs_destroy(&srv->subs);
	msgpool_destroy(&srv->pool);
	wake_close(&srv->changed);
	mutex_destroy(&srv->tally_lock);
}

int main(int argc, char **argv)
{
	static struct server srv;

	parse_args(&srv, argc, argv);
	start(&srv);
	restore(&srv);
	if (srv.nats_urls)
		srv.cluster = cluster_start(srv.nats_urls, srv.room, from_cluster, &srv);
	srv.lis = listener_open(*srv.host ? srv.host : NULL, &srv.port,
				&(struct listener_config){ .max_conns = srv.max_conns,
							   .serve = serve_client, .arg = &srv });
	log_info("listening on port %u", srv.port);
	serve(&srv);
	shut_down(&srv);
	return 0;
}
