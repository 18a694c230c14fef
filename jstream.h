/* jstream.h - a stream of JSON values arriving over a byte stream.
 *
 * Wraps one json-c tokener per connection.  Values may be separated by any
 * whitespace or by nothing at all, several may come in one chunk and one
 * may be split across many.  Bytes that are not JSON are skipped up to the
 * next newline (or, if none has arrived, to the end of the chunk) and the
 * stream goes on.  A value over the size or depth limit ends the stream:
 * the caller must close the connection. */
#ifndef JSTREAM_H
#define JSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

struct jstream_handler {
	/* One complete top-level value, borrowed for the call.  Return 0 to
	 * go on, -1 to stop (jstream_feed then returns -1). */
	int (*value)(void *arg, struct json_object *obj);
	/* nbytes of input that are not JSON were dropped (may be NULL). */
	void (*skipped)(void *arg, const char *why, size_t nbytes);
	void *arg;
	/* Called when a jstream_feed call has handed over all its values
	 * (may be NULL): the place to act once per batch of values. */
	void (*batch_end)(void *arg);
};

struct jstream;

/* NULL on ENOMEM. */
struct jstream *jstream_new(size_t max_value, int max_depth);
void jstream_free(struct jstream *js);

/* Feeds len bytes.  Returns 0, or -1 when the stream must end, with *why
 * set ("object larger than 65536 bytes", "object nested too deeply", or
 * "stopped by handler"); the text lives as long as js. */
int jstream_feed(struct jstream *js, const char *buf, size_t len,
		 const struct jstream_handler *h, const char **why);

/* Whether part of a value has arrived and the rest has not. */
bool jstream_partial(const struct jstream *js);

#endif
