/* inbox.c - printing the chat messages that arrive on a connection. */
#include "inbox.h"

#include <errno.h>
#include <string.h>

#include "console.h"
#include "log.h"
#include "net.h"
#include "proto.h"

/* A half-sent object may hold a reader this long (milliseconds). */
#define PARTIAL_TIMEOUT_MS 30000

int inbox_value(const char *from, unsigned *complaints,
		struct json_object *obj)
{
	struct proto_msg m;
	const char *why;

	if (proto_decode(obj, &m, &why) < 0) {
		if (log_budget(complaints, from))
			log_warn("%s: skipped a message: %s", from, why);
		return 0;
	}
	if (m.type != PROTO_CHAT) {
		if (log_budget(complaints, from))
			log_warn("%s: skipped a message: not a chat message", from);
		return 0;
	}
	log_debug("%s: seq %lld from %.*s", from, (long long)m.seq,
		  (int)m.user_len, m.user);
	console_print_chat(m.user, m.user_len, m.text, m.text_len);
	return 0;
}

struct inbox {
	struct conn *c;
	unsigned complaints;
};

static int on_value(void *arg, struct json_object *obj)
{
	struct inbox *in = arg;

	return inbox_value(in->c->peer, &in->complaints, obj);
}

void inbox_serve(struct conn *c, void *arg)
{
	struct inbox in = { .c = c };
	struct jstream_handler h = { .value = on_value, .arg = &in };

	(void)arg;
	log_debug("%s: connected", c->peer);
	conn_read_json(c, &h, PARTIAL_TIMEOUT_MS);
}

struct listener *inbox_listen(const char *bind_addr, uint16_t *port,
			      size_t max_conns)
{
	struct listener *lis;
	char err[128];
	int fd = net_listen(bind_addr, *port, err, sizeof err);

	if (fd < 0)
		log_die(1, "cannot listen on %s%sport %u: %s", bind_addr ? bind_addr : "",
			bind_addr ? " " : "", *port, err);
	*port = net_local_port(fd);
	lis = listener_start(&(struct listener_config){
		.fd = fd, .max_conns = max_conns, .handler = inbox_serve });
	if (!lis)
		log_die(1, "cannot start the listener: %s", strerror(errno));
	return lis;
}
