/* chat5.c - the relay's client (question 2 of the assignment).
 *
 *   chat5 NAME PORT SERVER_HOST:PORT
 *
 * Threads: the main thread reads typed lines and queues them on the link
 * to the server; the link's thread writes them (subscribing first, again
 * after every reconnection) and prints messages the server writes back on
 * that connection; the listener thread accepts the server's connections to
 * PORT, and each one's reader thread prints the messages relayed on it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"
#include "console.h"
#include "inbox.h"
#include "link.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "signals.h"
#include "thread.h"

#define MAX_CONNS 64			/* incoming connections at once */
#define QUEUE_MSGS 1000			/* typed while the server is away */
#define QUEUE_BYTES (8u << 20)
#define CONNECT_TIMEOUT_MS 5000
#define EXIT_DRAIN_MS 5000

static const char usage_line[] =
	"usage: chat5 [-hqv] [--version] [--bind ADDR] [--no-color] [--timestamps]\n"
	"             NAME PORT SERVER_HOST:PORT\n";

struct chat5 {
	const char *name;
	const char *server;		/* as given: for log lines */
	uint16_t port;			/* where we listen */
	int64_t seq;
	struct link *link;
	unsigned complaints;		/* link thread only */
};

static void usage_error(const char *what, const char *why)
{
	log_warn("%s%s", what, why);
	fputs(usage_line, stderr);
	exit(2);
}

static void help(void)
{
	printf("%s"
	       "Chat through a server5 relay: subscribes, sends every typed line to\n"
	       "the server, prints what the server delivers as USER: MESSAGE.\n\n"
	       "  NAME              your user name (1-64 bytes)\n"
	       "  PORT              port to listen on for deliveries (0: any free port)\n"
	       "  SERVER_HOST:PORT  the relay: 127.0.0.1:9000, [::1]:9000\n"
	       "  --bind ADDR       listen on this address only (e.g. 127.0.0.1)\n"
	       "  --no-color        no colours (also when NO_COLOR is set)\n"
	       "  --timestamps      show the time each message arrived\n"
	       "  -q, --quiet       only warnings on stderr\n"
	       "  -v, --verbose     also per-message detail on stderr\n"
	       "  -h, --help        this help\n"
	       "      --version     print the version\n\n"
	       "In a terminal: a prompt with line editing and history (GNU readline).\n"
	       "Type exit (or end the input) to unsubscribe and quit.\n",
	       usage_line);
	exit(0);
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

static struct msg *subscribe_again(int fd, void *arg)
{
	struct chat5 *c = arg;
	char me[ADDR_STRLEN];

	own_address(c, fd, me, sizeof me);
	log_info("%s subscribed again to %s as %s", c->name, c->server, me);
	return proto_encode_control(PROTO_SUBSCRIBE, me);
}

static struct msg *unsubscribe(int fd, void *arg)
{
	struct chat5 *c = arg;
	char me[ADDR_STRLEN];

	own_address(c, fd, me, sizeof me);
	return proto_encode_control(PROTO_UNSUBSCRIBE, me);
}

/* Messages a server writes back on our own connection. */
static int from_server(void *arg, struct json_object *obj)
{
	struct chat5 *c = arg;

	return inbox_value(c->server, &c->complaints, obj);
}

static void send_line(void *arg, const char *line, size_t len)
{
	struct chat5 *c = arg;
	struct msg *m = proto_encode_chat(c->seq, c->name, strlen(c->name), line, len);

	if (!m) {
		log_warn("message not sent: %s",
			 errno == EMSGSIZE ? "too long" : strerror(errno));
		return;
	}
	link_send(c->link, m);
	msg_unref(m);
	c->seq++;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "bind", required_argument, NULL, 'b' },
		{ "no-color", no_argument, NULL, 'C' },
		{ "timestamps", no_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	struct chat5 c = { 0 };
	struct console_options copt = { 0 };
	char host[ADDR_HOSTLEN], label[ADDR_HOSTLEN + 16], me[ADDR_STRLEN], err[128];
	struct listener *lis;
	struct timespec deadline;
	struct msg *sub;
	const char *why, *bind_addr = NULL;
	uint16_t port, server_port;
	uint64_t lost;
	int opt, sfd;

	log_init(argv[0]);
	opterr = 0;	/* our own message, prefixed like every other */
	while ((opt = getopt_long(argc, argv, "hqv", opts, NULL)) != -1) {
		switch (opt) {
		case 'h': help(); break;
		case 'q': log_set_level(LOG_QUIET); break;
		case 'v': log_set_level(LOG_VERBOSE); break;
		case 'V': printf("chat5 %s\n", VERSION); return 0;
		case 'b': bind_addr = optarg; break;
		case 'C': copt.no_color = true; break;
		case 'T': copt.timestamps = true; break;
		default: usage_error("bad option or missing value: ", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 3)
		usage_error("", argc < 3 ? "NAME, PORT and SERVER_HOST:PORT are required"
					 : "too many arguments");
	if (!proto_name_valid(argv[0], &why))
		usage_error("", why);
	c.name = argv[0];
	copt.name = c.name;
	if (addr_parse_port(argv[1], 1, &port, &why) < 0)
		usage_error("PORT: ", why);
	if (addr_split(argv[2], host, sizeof host, &server_port, &why) < 0)
		usage_error("SERVER_HOST:PORT: ", why);
	if (!*host)
		usage_error("SERVER_HOST:PORT: ", "empty host");
	c.server = argv[2];

	console_init(&copt);
	if (signals_init() < 0)
		log_die(1, "signals: %s", strerror(errno));
	/* Listen first, so the server can connect back at once. */
	c.port = port;
	lis = inbox_listen(bind_addr, &c.port, MAX_CONNS);
	log_info("%s listening on port %u", c.name, c.port);

	sfd = net_connect(host, server_port, CONNECT_TIMEOUT_MS, err, sizeof err);
	if (sfd < 0)
		log_die(1, "cannot reach server %s: %s", c.server, err);
	own_address(&c, sfd, me, sizeof me);
	sub = proto_encode_control(PROTO_SUBSCRIBE, me);
	if (!sub || net_write_all(sfd, sub->data, sub->len) < 0)
		log_die(1, "cannot subscribe to %s: %s", c.server, strerror(errno));
	msg_unref(sub);
	log_info("%s subscribed to %s as %s", c.name, c.server, me);

	snprintf(label, sizeof label, "server %s", c.server);
	c.link = link_start(&(struct link_config){
		.label = label,
		.host = host,
		.port = server_port,
		.lazy = false,		/* stay subscribed: reconnect at once */
		.max_msgs = QUEUE_MSGS,
		.max_bytes = QUEUE_BYTES,
		.greeting = subscribe_again,
		.farewell = unsubscribe,
		.on_value = from_server,
		.arg = &c,
	}, sfd);
	if (!c.link)
		log_die(1, "cannot start a thread: %s", strerror(errno));

	console_read_lines(send_line, &c, PROTO_MAX_OBJECT);

	/* What was typed, then the unsubscribe, then close. */
	deadline = mono_after(EXIT_DRAIN_MS);
	link_close(c.link, &deadline);
	lost = link_join(c.link);
	if (lost > 0)
		log_warn("%llu message(s) never reached the server",
			 (unsigned long long)lost);
	listener_stop(lis);
	return 0;
}
