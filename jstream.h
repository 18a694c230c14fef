/* jstream.h - a stream of JSON values arriving over a byte stream.
 *
 * A pull parser around one json-c tokener per connection:
 *
 *	jstream_feed(js, buf, n);
 *	while (jstream_next(js, &value, &why)) {
 *		if (value) ... use it, then json_object_put(value);
 *		else ... log why: bytes that were skipped
 *	}
 *	if (jstream_error(js)) ... close the connection
 *
 * Values may be separated by any whitespace or by nothing at all, several
 * may come in one chunk and one may be split across many.  The input must
 * be strict JSON (RFC 8259): no comments, single quotes, leading zeros,
 * trailing commas, NaN or raw control characters in strings.  Bytes that
 * are not are skipped up to the next newline (or, if none has arrived, to
 * the end of the chunk) and the stream goes on.  A value over the size or
 * depth limit ends the stream. */
#ifndef JSTREAM_H
#define JSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

struct jstream;

/* NULL on ENOMEM. */
struct jstream *jstream_new(size_t max_value, int max_depth);
void jstream_free(struct jstream *js);

/* Hands over len more bytes; buf must stay valid and unchanged until
 * jstream_next has returned false. */
void jstream_feed(struct jstream *js, const char *buf, size_t len);

/* The next thing in what was fed: true with *value set (a reference the
 * caller owns), or true with *value NULL and *why describing bytes that
 * were skipped ("12 bytes that are not JSON (unexpected character)");
 * false when the bytes fed are used up or the stream must end. */
bool jstream_next(struct jstream *js, struct json_object **value,
		  const char **why);

/* Why the stream must end ("object larger than 65536 bytes", "object
 * nested too deeply"), or NULL while it may go on. */
const char *jstream_error(const struct jstream *js);

/* Forgets a value in progress and an error: a fresh stream (for one that
 * carries separate messages, such as the cluster's). */
void jstream_reset(struct jstream *js);

/* Whether part of a value has arrived and the rest has not. */
bool jstream_partial(const struct jstream *js);

#endif
