/* chat.c - peer-to-peer terminal chat (question 1 of the assignment).
 *
 *   chat NAME PORT [HOST:PORT ...]
 *
 * Threads: the main thread reads typed lines and offers each message to
 * every peer's link, reading no faster than the connected peers take
 * them; each link's thread connects (on the first message) and writes;
 * the listener thread accepts, and each accepted connection's reader
 * thread prints the messages that arrive on it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "console.h"
#include "inbox.h"
#include "link.h"
#include "listener.h"
#include "log.h"
#include "outbox.h"
#include "proto.h"

#define MAX_CONNS 256			/* incoming connections at once */
#define PEER_QUEUE_MSGS 1000		/* messages waiting for one peer */
#define PEER_QUEUE_BYTES (8u << 20)
/* A peer's connection must carry its first message this soon. */
#define FIRST_OBJECT_MS INBOX_PARTIAL_TIMEOUT_MS

static struct cli cli = {
	.usage = "usage: chat [-hqv] [--version] [--bind ADDR] [--no-color] [--timestamps]\n"
		 "            [--stall-timeout SECONDS] NAME PORT [HOST:PORT ...]\n",
	.help = "Chat with peers: every line typed is sent to every HOST:PORT;\n"
		"messages from peers are printed as USER: MESSAGE.\n\n"
		"  NAME                your user name (1-64 bytes, no ': ')\n"
		"  PORT                port to listen on (0: any free port)\n"
		"  HOST:PORT           a peer: 127.0.0.1:5002, localhost:5002, [::1]:5002\n"
		"  --stall-timeout S   a connected peer that takes nothing for S seconds\n"
		"                      counts as down (default 10)\n",
	.notes = "Input is read no faster than connected peers take it; up to 1000\n"
		 "messages (8 MiB) wait for each peer that is down, the oldest dropped.\n"
		 "In a terminal: a prompt with line editing and history (GNU readline).\n"
		 "Type exit (or end the input) to quit.  Exit status 1 when a message\n"
		 "may not have reached a peer.\n",
	.terminal = true,
};

/* Every peer is checked before anything starts. */
static struct link_target *parse_peers(int n, char **argv)
{
	struct link_target *t = calloc(n ? (size_t)n : 1, sizeof *t);
	int i;

	if (!t)
		log_die(1, "out of memory");
	for (i = 0; i < n; i++) {
		cli_host_port(&cli, "peer", argv[i], t[i].host, sizeof t[i].host, &t[i].port, false);
		snprintf(t[i].name, sizeof t[i].name, "%s", argv[i]);
		snprintf(t[i].label, sizeof t[i].label, "peer %s", argv[i]);
	}
	return t;
}

static void start_links(struct outbox *out, const struct link_target *peers, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct link *l = link_start(&(struct link_config){
			.targets = &peers[i],
			.ntargets = 1,
			.lazy = true,	/* peers may not be up yet */
			.max_msgs = PEER_QUEUE_MSGS,
			.max_bytes = PEER_QUEUE_BYTES,
			.stall_ms = cli.stall_ms,
			.room = &out->room,
		}, -1, 0);

		if (!l)
			log_die(1, "cannot start a thread: %s", strerror(errno));
		outbox_set(out, i, l, peers[i].label);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		CLI_TERMINAL_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct link_target *peers;
	const char *name;
	struct listener *lis;
	struct outbox out;
	uint16_t port;
	size_t npeers;
	int first = cli_parse(&cli, argc, argv, opts, NULL, NULL);
	bool delivered;

	if (argc - first < 2)
		cli_usage_error(&cli, argc - first == 0 ? "NAME and PORT are missing"
							 : "PORT is missing");
	name = cli_name(&cli, argv[first]);
	port = cli_port(&cli, "port", argv[first + 1], true);
	npeers = (size_t)(argc - first - 2);
	peers = parse_peers(argc - first - 2, argv + first + 2);

	console_init(&(struct console_options){ .name = name, .no_color = cli.no_color,
						 .timestamps = cli.timestamps });
	lis = inbox_listen(cli.bind, &port, MAX_CONNS, FIRST_OBJECT_MS);
	outbox_init(&out, name, npeers);
	start_links(&out, peers, npeers);
	log_info("%s listening on port %u", name, port);

	/* Typed lines to the peers until exit; then what waits is delivered,
	 * what never arrived reported, and everything closed. */
	delivered = outbox_run(&out);
	listener_stop(lis);
	free(peers);
	console_done();
	return delivered ? 0 : 1;
}
