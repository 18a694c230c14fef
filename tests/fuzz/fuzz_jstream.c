/* fuzz_jstream.c - libFuzzer target: the streaming JSON reader (jstream.c)
 * fed arbitrary bytes in an arbitrary chunking, with every delivered value
 * run through the protocol decoder, the encoder and the sanitiser.
 *
 * Input layout (shorter inputs are padded with zero bytes):
 *   byte 0     configuration
 *                bits 0-1  value size limit: 65536, 4096, 256, 64
 *                bits 2-3  depth limit: 8, 8, 1, 3
 *                bit  4    no "skipped" callback
 *                bits 5-7  the handler stops the stream at value N (0: never)
 *   bytes 1-4  chunk lengths, used in turn: 0 = all the rest,
 *              1-191 = that many bytes, 192-255 = (b - 191) KiB
 *   bytes 5-   the byte stream
 *
 * Checks, besides the sanitizers:
 * - every delivered value is nested no deeper than the limit (an empty
 *   innermost [] or {} counts as a level too);
 * - a skip reports 1..chunk-length bytes, a stream end one of the documented
 *   reasons (and "stopped by handler" only when the handler stopped it);
 * - chat and control messages re-encode and decode back to the same fields
 *   (see fuzz_common.c), and the sanitised user and message are safe;
 * - chunking does not matter for clean input: the stream is also fed in
 *   one piece, and if either run reads it to the end without skipping a
 *   byte, so must the other, with the same values and the same partial
 *   state at the end; if neither run skipped anything, both deliver the
 *   same values and end the same way (a size or depth limit may show as
 *   either reason: the size is only checked between the pieces json-c is
 *   given).  Skipping itself is chunk-dependent by design (with no newline
 *   in what has arrived, all of it is dropped; a value past the size limit
 *   may end the stream before its bad byte is seen), so runs with skips
 *   are not compared further. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "jstream.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* From fuzz_common.c. */
_Noreturn void fuzz_fail(const char *what, const char *file, int line);
void fuzz_check_chat_roundtrip(const struct proto_msg *pm);
void fuzz_check_control_roundtrip(const struct proto_msg *pm);

#define CHECK(c) ((c) ? (void)0 : fuzz_fail(#c, __FILE__, __LINE__))

#define HEADER 5

static const size_t max_values[4] = { PROTO_MAX_OBJECT, 4096, 256, 64 };
static const int max_depths[4] = { PROTO_MAX_DEPTH, PROTO_MAX_DEPTH, 1, 3 };

struct run {
	bool check;		/* decode and round-trip the values */
	int max_depth;
	unsigned stop_at;	/* 1-based value the handler stops at, or 0 */
	unsigned nvalues;
	unsigned nskips;
	size_t chunk;		/* length of the chunk being fed */
	bool stopped;		/* the handler returned -1 */
	char *log;		/* the values, serialised, one per line */
	size_t loglen, logcap;
};

static void log_append(struct run *r, const char *s, size_t len)
{
	if (r->loglen + len + 1 > r->logcap) {
		size_t cap = r->logcap ? r->logcap : 256;

		while (r->loglen + len + 1 > cap)
			cap *= 2;
		r->log = realloc(r->log, cap);
		CHECK(r->log != NULL);
		r->logcap = cap;
	}
	memcpy(r->log + r->loglen, s, len);
	r->loglen += len;
	r->log[r->loglen++] = '\n';
}

/* How deeply o nests, as the limit counts it: a scalar 0, [] or {} (empty
 * or not) 1 more than the deepest thing inside. */
static int depth_of(struct json_object *o)
{
	int d = 0, sub;
	size_t i, n;

	if (json_object_is_type(o, json_type_array)) {
		n = json_object_array_length(o);
		for (i = 0; i < n; i++) {
			sub = depth_of(json_object_array_get_idx(o, i));
			if (sub > d)
				d = sub;
		}
		return d + 1;
	}
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, key, val) {
			(void)key;
			sub = depth_of(val);
			if (sub > d)
				d = sub;
		}
		return d + 1;
	}
	return 0;
}

static void check_message(struct json_object *obj)
{
	struct proto_msg pm;
	const char *why = NULL;

	if (proto_decode(obj, &pm, &why) < 0) {
		CHECK(why != NULL && why[0] != '\0');
		return;
	}
	if (pm.type == PROTO_CHAT)
		fuzz_check_chat_roundtrip(&pm);
	else
		fuzz_check_control_roundtrip(&pm);
}

static int on_value(void *arg, struct json_object *obj)
{
	struct run *r = arg;
	size_t len = 0;
	const char *s;

	CHECK(!r->stopped);
	CHECK(depth_of(obj) <= r->max_depth);
	s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
	CHECK(s != NULL);
	log_append(r, s, len);
	if (r->check)
		check_message(obj);
	r->nvalues++;
	if (r->stop_at && r->nvalues >= r->stop_at) {
		r->stopped = true;
		return -1;
	}
	return 0;
}

static void on_skipped(void *arg, const char *why, size_t nbytes)
{
	struct run *r = arg;

	CHECK(why != NULL && why[0] != '\0');
	CHECK(nbytes >= 1 && nbytes <= r->chunk);
	r->nskips++;
}

enum end { END_NONE, END_LIMIT, END_STOPPED };

/* Classifies the reason a feed returned -1. */
static enum end end_reason(const struct run *r, const char *why, size_t max_value)
{
	char large[64];

	CHECK(why != NULL);
	snprintf(large, sizeof large, "object larger than %zu bytes", max_value);
	if (strcmp(why, "stopped by handler") == 0) {
		CHECK(r->stopped);
		return END_STOPPED;
	}
	CHECK(!r->stopped);
	CHECK(strcmp(why, large) == 0 ||
	      strcmp(why, "object nested too deeply") == 0);
	return END_LIMIT;
}

/* Feeds payload[0..len) in chunks cut by pattern (NULL: one chunk). */
static enum end feed(struct run *r, const uint8_t *payload, size_t len,
		     const uint8_t pattern[4], size_t max_value, bool skipped,
		     bool *partial)
{
	struct jstream *js = jstream_new(max_value, r->max_depth);
	struct jstream_handler h = { on_value, skipped ? on_skipped : NULL, r, NULL };
	enum end end = END_NONE;
	size_t off = 0, k = 0;

	CHECK(js != NULL);
	while (off < len) {
		size_t n = len - off;
		const char *why = NULL;

		if (pattern) {
			uint8_t p = pattern[k++ % 4];

			if (p != 0)
				n = p < 192 ? p : (size_t)(p - 191) * 1024;
			if (n > len - off)
				n = len - off;
		}
		r->chunk = n;
		if (jstream_feed(js, (const char *)payload + off, n, &h, &why) < 0) {
			end = end_reason(r, why, max_value);
			break;
		}
		CHECK(!r->stopped);
		off += n;
	}
	*partial = jstream_partial(js);
	jstream_free(js);
	return end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[HEADER] = { 0 };
	const uint8_t *payload = data + (size < HEADER ? size : HEADER);
	size_t len = size < HEADER ? 0 : size - HEADER;
	struct run split = { 0 }, whole = { 0 };
	size_t max_value;
	bool skipped, partial_split, partial_whole;
	enum end end_split, end_whole;

	memcpy(hdr, data, size < HEADER ? size : HEADER);
	max_value = max_values[hdr[0] & 3];
	split.max_depth = whole.max_depth = max_depths[(hdr[0] >> 2) & 3];
	skipped = !(hdr[0] & 0x10);
	split.stop_at = whole.stop_at = (unsigned)(hdr[0] >> 5);
	split.check = true;

	end_split = feed(&split, payload, len, hdr + 1, max_value, skipped,
			 &partial_split);
	if (skipped) {
		bool clean_split = split.nskips == 0 && end_split == END_NONE;
		bool clean_whole;

		end_whole = feed(&whole, payload, len, NULL, max_value, true,
				 &partial_whole);
		clean_whole = whole.nskips == 0 && end_whole == END_NONE;
		/* A stream read to the end without a skip is clean JSON: read
		 * in any other pieces it is clean too. */
		if (clean_split || clean_whole) {
			CHECK(clean_split && clean_whole);
			CHECK(partial_split == partial_whole);
		}
		if (split.nskips == 0 && whole.nskips == 0) {
			CHECK(end_split == end_whole);
			CHECK(split.nvalues == whole.nvalues);
			CHECK(split.loglen == whole.loglen);
			CHECK(split.loglen == 0 ||
			      memcmp(split.log, whole.log, split.loglen) == 0);
		}
	}
	free(split.log);
	free(whole.log);
	return 0;
}
