/* inbox.c - printing the chat messages that arrive on a connection. */
#include "inbox.h"

#include <stdlib.h>

#include "proto.h"
#include "reader.h"
#include "thread.h"

/* A batch is printed at least this often (bytes), even mid-read. */
#define BATCH_FLUSH_BYTES (256 * 1024)

/* Connections that delivered a message and are still open. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t ended;
	unsigned open;
} delivering = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void count_delivering(int delta)
{
	lock(&delivering.lock);
	delivering.open = (unsigned)((int)delivering.open + delta);
	cond_broadcast(&delivering.ended);
	unlock(&delivering.lock);
}

bool inbox_wait_drained(int timeout_ms)
{
	struct timespec deadline = mono_after(timeout_ms);
	bool drained;

	lock(&delivering.lock);
	while (delivering.open > 0 &&
	       cond_wait_until(&delivering.ended, &delivering.lock, &deadline)) {
	}
	drained = delivering.open == 0;
	unlock(&delivering.lock);
	return drained;
}

bool inbox_take(struct console_batch *batch, struct log_budget *budget,
		struct json_object *v)
{
	struct proto_msg m;
	const char *why;

	if (proto_decode(v, &m, &why) < 0) {
		log_peer_warn(budget, "%s: skipped a message: %s", budget->who, why);
		return false;
	}
	if (m.type != PROTO_CHAT) {
		log_peer_warn(budget, "%s: skipped a message: not a chat message", budget->who);
		return false;
	}
	log_debug("%s: seq %lld from %.*s", budget->who, (long long)m.seq,
		  (int)m.user_len, m.user);
	console_batch_add(batch, m.user, m.user_len, m.text, m.text_len);
	return true;
}

static void serve(struct conn *c, void *arg)
{
	const int *first_ms = arg;
	struct console_batch batch = { 0 };
	struct json_object *v;
	enum reader_event ev;
	struct reader r;
	bool delivered = false;

	log_debug("%s: connected", c->peer);
	if (reader_init(&r, c, INBOX_PARTIAL_TIMEOUT_MS, *first_ms) < 0)
		return;
	while ((ev = reader_next(&r, &v)) != READER_END) {
		if (ev == READER_VALUE) {
			if (inbox_take(&batch, &c->budget, v) && !delivered) {
				conn_heard(c);
				count_delivering(1);
				delivered = true;
			}
			json_object_put(v);
		}
		/* All that arrived is in: print it before waiting for more. */
		if (ev == READER_IDLE || batch.len >= BATCH_FLUSH_BYTES)
			console_batch_flush(&batch);
	}
	console_batch_flush(&batch);
	console_batch_free(&batch);
	reader_free(&r);
	if (delivered)
		count_delivering(-1);
}

struct listener *inbox_listen(const char *bind_addr, uint16_t *port,
			      size_t max_conns, int first_ms)
{
	static int first;	/* the one listener of the process */

	first = first_ms;
	cond_init(&delivering.ended);
	return listener_open(bind_addr, port, &(struct listener_config){
		.max_conns = max_conns, .serve = serve, .arg = &first });
}
