/* chat.c - peer-to-peer terminal chat (question 1 of the assignment).
 *
 *   chat NAME PORT [HOST:PORT ...]
 *
 * Threads: the main thread reads typed lines and queues each message to
 * every peer's link; each link's thread connects (on the first message)
 * and writes; the listener thread accepts, and each accepted connection's
 * reader thread prints the messages that arrive on it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define MAX_CONNS 256			/* incoming connections at once */
#define PEER_QUEUE_MSGS 1000		/* messages waiting for one peer */
#define PEER_QUEUE_BYTES (8u << 20)
#define EXIT_DRAIN_MS 5000		/* time to deliver what is queued at exit */

static const char usage_line[] =
	"usage: chat [-hqv] [--version] [--bind ADDR] [--no-color] [--timestamps]\n"
	"            NAME PORT [HOST:PORT ...]\n";

static void usage_error(const char *what, const char *why)
{
	log_warn("%s%s", what, why);
	fputs(usage_line, stderr);
	exit(2);
}

static void help(void)
{
	printf("%s"
	       "Chat with peers: every line typed is sent to every HOST:PORT;\n"
	       "messages from peers are printed as USER: MESSAGE.\n\n"
	       "  NAME          your user name (1-64 bytes)\n"
	       "  PORT          port to listen on (0: any free port)\n"
	       "  HOST:PORT     a peer: 127.0.0.1:5002, localhost:5002, [::1]:5002\n"
	       "  --bind ADDR   listen on this address only (e.g. 127.0.0.1)\n"
	       "  --no-color    no colours (also when NO_COLOR is set)\n"
	       "  --timestamps  show the time each message arrived\n"
	       "  -q, --quiet   only warnings on stderr\n"
	       "  -v, --verbose also per-message detail on stderr\n"
	       "  -h, --help    this help\n"
	       "      --version print the version\n\n"
	       "In a terminal: a prompt with line editing and history (GNU readline).\n"
	       "Type exit (or end the input) to quit.\n",
	       usage_line);
	exit(0);
}

struct chat {
	const char *name;
	int64_t seq;
	struct link **links;
	size_t nlinks;
};

/* One typed line: one message, the same seq to every peer. */
static void send_line(void *arg, const char *line, size_t len)
{
	struct chat *c = arg;
	struct msg *m = proto_encode_chat(c->seq, c->name, strlen(c->name), line, len);
	size_t i;

	if (!m) {
		log_warn("message not sent: %s",
			 errno == EMSGSIZE ? "too long" : strerror(errno));
		return;
	}
	for (i = 0; i < c->nlinks; i++)
		link_send(c->links[i], m);
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
	struct chat c = { 0 };
	struct console_options copt = { 0 };
	struct listener *lis;
	struct timespec deadline;
	const char *why, *bind_addr = NULL;
	uint16_t port;
	size_t i;
	int opt;

	log_init(argv[0]);
	opterr = 0;	/* our own message, prefixed like every other */
	while ((opt = getopt_long(argc, argv, "hqv", opts, NULL)) != -1) {
		switch (opt) {
		case 'h': help(); break;
		case 'q': log_set_level(LOG_QUIET); break;
		case 'v': log_set_level(LOG_VERBOSE); break;
		case 'V': printf("chat %s\n", VERSION); return 0;
		case 'b': bind_addr = optarg; break;
		case 'C': copt.no_color = true; break;
		case 'T': copt.timestamps = true; break;
		default: usage_error("bad option or missing value: ", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		usage_error("", argc == 0 ? "NAME and PORT are required" : "PORT is required");
	if (!proto_name_valid(argv[0], &why))
		usage_error("", why);
	c.name = argv[0];
	copt.name = c.name;
	if (addr_parse_port(argv[1], 1, &port, &why) < 0)
		usage_error("PORT: ", why);

	/* Check every peer before starting anything. */
	c.nlinks = (size_t)argc - 2;
	for (i = 0; i < c.nlinks; i++) {
		char host[ADDR_HOSTLEN], what[ADDR_HOSTLEN + 32];
		uint16_t peer_port;

		snprintf(what, sizeof what, "bad peer '%.*s': ", ADDR_HOSTLEN, argv[2 + i]);
		if (addr_split(argv[2 + i], host, sizeof host, &peer_port, &why) < 0)
			usage_error(what, why);
		if (!*host)
			usage_error(what, "empty host");
	}

	console_init(&copt);
	if (signals_init() < 0)
		log_die(1, "signals: %s", strerror(errno));
	lis = inbox_listen(bind_addr, &port, MAX_CONNS);

	c.links = calloc(c.nlinks ? c.nlinks : 1, sizeof *c.links);
	if (!c.links)
		log_die(1, "out of memory");
	for (i = 0; i < c.nlinks; i++) {
		char host[ADDR_HOSTLEN], label[ADDR_HOSTLEN + 16];
		struct link_config lc = {
			.label = label,
			.host = host,
			.lazy = true,	/* peers may not be up yet */
			.max_msgs = PEER_QUEUE_MSGS,
			.max_bytes = PEER_QUEUE_BYTES,
		};

		addr_split(argv[2 + i], host, sizeof host, &lc.port, &why);
		snprintf(label, sizeof label, "peer %s", argv[2 + i]);
		c.links[i] = link_start(&lc, -1);
		if (!c.links[i])
			log_die(1, "cannot start a thread: %s", strerror(errno));
	}
	log_info("%s listening on port %u", c.name, port);

	console_read_lines(send_line, &c, PROTO_MAX_OBJECT);

	/* Deliver what was typed, then close everything. */
	deadline = mono_after(EXIT_DRAIN_MS);
	for (i = 0; i < c.nlinks; i++)
		link_close(c.links[i], &deadline);
	for (i = 0; i < c.nlinks; i++) {
		uint64_t lost = link_join(c.links[i]);

		if (lost > 0)
			log_warn("peer %s: %llu message(s) never delivered",
				 argv[2 + i], (unsigned long long)lost);
	}
	free(c.links);
	listener_stop(lis);
	return 0;
}
