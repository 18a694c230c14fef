/* reader.c - reading JSON values from an accepted connection. */
#include "reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "thread.h"

#define CHUNK 65536

int reader_init(struct reader *r, struct conn *c, int partial_ms, int first_ms)
{
	memset(r, 0, sizeof *r);
	r->c = c;
	r->partial_ms = partial_ms;
	r->first_ms = first_ms;
	r->started_ms = mono_now_ms();
	r->js = jstream_new(PROTO_MAX_OBJECT, PROTO_MAX_DEPTH);
	r->buf = malloc(CHUNK);
	if (!r->js || !r->buf) {
		log_warn("%s: out of memory; closing the connection", c->peer);
		reader_free(r);
		return -1;
	}
	return 0;
}

void reader_free(struct reader *r)
{
	/* What this connection's reader made us suppress is told now; the
	 * connection may live on in a subscription. */
	log_budget_flush(&r->c->budget);
	jstream_free(r->js);
	free(r->buf);
	r->js = NULL;
	r->buf = NULL;
}

/* How long the next recv may wait: the current object's deadline, the
 * first object's, or none (-1). */
static int wait_ms(struct reader *r)
{
	int64_t now = mono_now_ms(), left;

	if (r->partial_ms > 0 && jstream_partial(r->js)) {
		if (r->partial_since_ms == 0)
			r->partial_since_ms = now;
		left = r->partial_since_ms + r->partial_ms - now;
	} else if (r->first_ms > 0 && !r->got_value) {
		r->partial_since_ms = 0;
		left = r->started_ms + r->first_ms - now;
	} else {
		r->partial_since_ms = 0;
		return -1;
	}
	return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Reads the next chunk into the stream; false when the connection ends.
 * While log lines are being suppressed, wakes to sum them up once a
 * second even when the peer says nothing more. */
static bool fill(struct reader *r)
{
	int limit = wait_ms(r), summary = log_budget_due_ms(&r->c->budget);
	bool for_summary = summary >= 0 && (limit < 0 || summary < limit);
	ssize_t n = conn_recv(r->c, r->buf, CHUNK, for_summary ? summary : limit);

	if (n == -2 && for_summary) {
		log_budget_flush(&r->c->budget);
		return true;
	}
	if (n == -2) {
		if (jstream_partial(r->js))
			log_peer_warn(&r->c->budget, "%s: object left incomplete for %d s; closing the connection",
				      r->c->peer, r->partial_ms / 1000);
		else
			log_peer_warn(&r->c->budget, "%s: no complete object within %d s; closing the connection",
				      r->c->peer, r->first_ms / 1000);
		return false;
	}
	if (n < 0) {
		log_debug("%s: %s", r->c->peer, strerror(errno));
		return false;
	}
	if (n == 0) {
		log_debug("%s: closed the connection", r->c->peer);
		return false;
	}
	jstream_feed(r->js, r->buf, (size_t)n);
	r->idle_told = false;
	return true;
}

enum reader_event reader_next(struct reader *r, struct json_object **value)
{
	const char *why;

	for (;;) {
		while (jstream_next(r->js, value, &why)) {
			if (*value) {
				r->got_value = true;
				return READER_VALUE;
			}
			log_peer_warn(&r->c->budget, "%s: skipped %s", r->c->peer, why);
		}
		if (jstream_error(r->js)) {
			log_peer_warn(&r->c->budget, "%s: %s; closing the connection", r->c->peer,
				      jstream_error(r->js));
			return READER_END;
		}
		if (!r->idle_told) {
			r->idle_told = true;
			return READER_IDLE;
		}
		if (!fill(r))
			return READER_END;
	}
}
