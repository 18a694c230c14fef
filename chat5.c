/* chat5.c - the relay's client (question 2 of the assignment).
 *
 *   chat5 NAME PORT SERVER_HOST:PORT[,SERVER_HOST:PORT...]
 *
 * Threads: the main thread reads typed lines and offers them to the link
 * to the server, reading no faster than the server takes them; the link's
 * thread writes them (subscribing first, again after every reconnection,
 * to the next server of the list when one goes away) and prints messages
 * the server writes back on that connection; the listener thread accepts
 * the server's connections to PORT, and each one's reader thread prints
 * the messages relayed on it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli.h"
#include "console.h"
#include "inbox.h"
#include "link.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "outbox.h"
#include "proto.h"

#define MAX_CONNS 64			/* incoming connections at once */
#define QUEUE_MSGS 1000			/* typed while the server is away */
#define QUEUE_BYTES (8u << 20)
#define CONNECT_TIMEOUT_MS 5000
#define MAX_SERVERS 16
#define DRAIN_WAIT_MS 3000		/* for the old deliveries, when dropped */

static struct cli cli = {
	.usage = "usage: chat5 [-hqv] [--version] [--bind ADDR] [--no-color] [--timestamps]\n"
		 "             [--stall-timeout SECONDS] NAME PORT SERVER_HOST:PORT[,...]\n",
	.help = "Chat through a server5 relay: subscribes, sends every typed line to\n"
		"the server, prints what the server delivers as USER: MESSAGE.\n\n"
		"  NAME                your user name (1-64 bytes, no ': ')\n"
		"  PORT                port to listen on for deliveries (0: any free port)\n"
		"  SERVER_HOST:PORT    the relay: 127.0.0.1:9000, [::1]:9000; several,\n"
		"                      comma-separated, to fail over from one to the next\n"
		"  --stall-timeout S   a server that takes nothing for S seconds counts\n"
		"                      as down (default 10)\n",
	.notes = "Input is read no faster than the server takes it; up to 1000 messages\n"
		 "(8 MiB) wait while it is away, the oldest dropped.\n"
		 "In a terminal: a prompt with line editing and history (GNU readline).\n"
		 "Type exit (or end the input) to unsubscribe and quit.  Exit status 1\n"
		 "when a message may not have reached the server.\n",
	.terminal = true,
};

struct chat5 {
	const char *name;
	uint16_t port;			/* where we listen */
	bool subscribed;		/* once: later ones say "again" */
	struct log_budget budget;	/* what the server writes back */
};

/* "host1:9000,host2:9000" as link targets; returns how many. */
static size_t parse_servers(const char *list, struct link_target *t)
{
	char copy[MAX_SERVERS * (ADDR_HOSTLEN + 8)], *item, *save = NULL;
	size_t n = 0;

	if (strlen(list) >= sizeof copy)
		cli_usage_error(&cli, "bad server list '%.40s...': too long", list);
	snprintf(copy, sizeof copy, "%s", list);
	if (!*list || list[strlen(list) - 1] == ',' || *list == ',' || strstr(list, ",,"))
		cli_usage_error(&cli, "bad server address '%s': expected HOST:PORT[,HOST:PORT...]", list);
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (n == MAX_SERVERS)
			cli_usage_error(&cli, "bad server list '%s': at most %d servers", list,
					MAX_SERVERS);
		cli_host_port(&cli, "server address", item, t[n].host, sizeof t[n].host,
			      &t[n].port, false);
		snprintf(t[n].name, sizeof t[n].name, "%s", item);
		snprintf(t[n].label, sizeof t[n].label, "server %s", item);
		n++;
	}
	return n;
}

/* Our address as the server should see it: the local IP of the server
 * connection and the port we listen on. */
static void own_address(struct chat5 *c, int fd, char *buf, size_t bufsz)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[ADDR_STRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    addr_format_ip((struct sockaddr *)&ss, ip, sizeof ip) < 0)
		snprintf(ip, sizeof ip, "127.0.0.1");
	addr_join(ip, c->port, buf, bufsz);
}

static struct msg *subscribe(int fd, const struct link_target *t, void *arg)
{
	struct chat5 *c = arg;
	char me[ADDR_STRLEN];

	own_address(c, fd, me, sizeof me);
	log_info("%s subscribed %sto %s as %s", c->name, c->subscribed ? "again " : "",
		 t->name, me);
	c->subscribed = true;
	return proto_encode_control(PROTO_SUBSCRIBE, me);
}

static struct msg *unsubscribe(int fd, const struct link_target *t, void *arg)
{
	struct chat5 *c = arg;
	char me[ADDR_STRLEN];

	(void)t;
	own_address(c, fd, me, sizeof me);
	return proto_encode_control(PROTO_UNSUBSCRIBE, me);
}

/* What a server writes back on our own connection: deliveries (when it
 * cannot connect to us), or word that it dropped us. */
static enum link_verdict from_server(void *arg, struct json_object *obj)
{
	struct chat5 *c = arg;
	struct console_batch batch = { 0 };
	struct proto_msg m;
	const char *why;

	if (proto_decode(obj, &m, &why) == 0 && m.type == PROTO_DROPPED) {
		log_warn("server5 dropped us (%s); subscribing again",
			 *m.reason ? m.reason : "no reason given");
		/* What the old delivery connection still holds comes first. */
		inbox_wait_drained(DRAIN_WAIT_MS);
		return LINK_RECONNECT;
	}
	if (inbox_take(&batch, &c->budget, obj))
		console_batch_flush(&batch);
	console_batch_free(&batch);
	return LINK_GO_ON;
}

/* The link to the server: subscribes on every new connection, fails over
 * along the list, unsubscribes at the end. */
static struct link *start_link(struct chat5 *c, const struct link_target *servers,
			       size_t nservers, int fd, size_t which, struct outbox *out)
{
	struct link *link = link_start(&(struct link_config){
		.targets = servers,
		.ntargets = nservers,
		.lazy = false,		/* stay subscribed: reconnect at once */
		.max_msgs = QUEUE_MSGS,
		.max_bytes = QUEUE_BYTES,
		.stall_ms = cli.stall_ms,
		.room = &out->room,
		.greeting = subscribe,
		.farewell = unsubscribe,
		.on_value = from_server,
		.arg = c,
	}, fd, which);

	if (!link)
		log_die(1, "cannot start a thread: %s", strerror(errno));
	return link;
}

/* The first server of the list that answers; dies when none does. */
static int first_server(const struct link_target *t, size_t n, size_t *which)
{
	char err[128], all[1024] = "";
	size_t i, len = 0;
	bool nobody = false;	/* a host answered, but not server5 */
	int fd;

	for (i = 0; i < n; i++) {
		fd = net_connect(t[i].host, t[i].port, CONNECT_TIMEOUT_MS, err, sizeof err);
		if (fd >= 0) {
			*which = i;
			return fd;
		}
		nobody = nobody || errno == ECONNREFUSED || errno == ETIMEDOUT;
		len += (size_t)snprintf(all + len, sizeof all - len, "%s%s: %s",
					i ? "; " : "", t[i].name, err);
		if (len >= sizeof all)
			len = sizeof all - 1;
	}
	log_die(1, "cannot reach server %s%s", all, nobody ? " (is server5 running there?)" : "");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		CLI_TERMINAL_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	static struct link_target servers[MAX_SERVERS];
	struct chat5 c = { 0 };
	struct listener *lis;
	struct outbox out;
	struct link *link;
	size_t nservers, which = 0;
	int first = cli_parse(&cli, argc, argv, opts, NULL, NULL), fd;
	bool delivered;

	if (argc - first != 3)
		cli_usage_error(&cli, argc - first < 3 ? "NAME, PORT and SERVER_HOST:PORT are missing"
						      : "too many arguments");
	c.name = cli_name(&cli, argv[first]);
	c.port = cli_port(&cli, "port", argv[first + 1], true);
	nservers = parse_servers(argv[first + 2], servers);
	log_budget_init(&c.budget, "the server");

	console_init(&(struct console_options){ .name = c.name, .no_color = cli.no_color,
						 .timestamps = cli.timestamps });
	/* Listen first, so the server can connect back at once. */
	lis = inbox_listen(cli.bind, &c.port, MAX_CONNS, 0);
	log_info("%s listening on port %u", c.name, c.port);
	fd = first_server(servers, nservers, &which);

	outbox_init(&out, c.name, 1);
	link = start_link(&c, servers, nservers, fd, which, &out);
	outbox_set(&out, 0, link, nservers > 1 ? "the servers" : servers[0].label);

	/* Typed lines to the server until exit; then the unsubscribe. */
	delivered = outbox_run(&out);
	listener_stop(lis);
	log_budget_flush(&c.budget);
	console_done();
	return delivered ? 0 : 1;
}
