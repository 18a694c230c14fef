/* fuzz_proto.c - libFuzzer target: the subscribe/chat-message validator
 * and the encoders (proto.c).
 *
 * The input is parsed as one JSON value (json-c, with the depth limit the
 * programs use) and given to proto_decode.  Checks, besides the
 * sanitizers:
 * - anything but an object is refused, with a reason;
 * - an accepted chat message has seq >= 0, string user and message of
 *   valid UTF-8, and no "operation" field; it re-encodes with
 *   proto_encode_chat unless that would pass PROTO_MAX_OBJECT (EMSGSIZE,
 *   and only when the escaped fields could be that large), into exactly
 *   one line: '{' ... '}' '\n' with no other raw newline or control byte,
 *   in the documented layout; a receiver's jstream reads that line back as
 *   one value that decodes to the same seq, user and message, byte for byte;
 * - the sanitised user and message are safe for a terminal, and are the
 *   text itself when it has no control or invisible characters; a user
 *   that passes proto_name_valid has none, is 1-64 bytes, and holds no
 *   ": ";
 * - an accepted control message has a string "operation" of exactly
 *   "subscribe", "unsubscribe" or "dropped"; proto_encode_control's (or
 *   proto_encode_dropped's) output reads back to the same operation,
 *   client and reason;
 * - whatever the relay accepts can be relayed: the input, read as the
 *   relay reads it (jstream: strict RFC 8259, PROTO_MAX_OBJECT and
 *   PROTO_MAX_DEPTH) when it is at most PROTO_MAX_OBJECT bytes, gives
 *   values each of which, if proto_decode takes it as a chat message,
 *   re-encodes with proto_encode_chat (never EMSGSIZE: the compact layout
 *   is never longer than the JSON it came as), in the documented layout,
 *   and reads back identical. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "jstream.h"
#include "proto.h"
#include "sanitize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* From fuzz_common.c. */
_Noreturn void fuzz_fail(const char *what, const char *file, int line);
void fuzz_check_chat_roundtrip(const struct proto_msg *pm);
void fuzz_check_chat_relayable(const struct proto_msg *pm);
void fuzz_check_control_roundtrip(const struct proto_msg *pm);

#define CHECK(c) ((c) ? (void)0 : fuzz_fail(#c, __FILE__, __LINE__))

static void check_name(const struct proto_msg *pm)
{
	const char *why = NULL;
	size_t n = strlen(pm->user), i;

	if (!proto_name_valid(pm->user, &why)) {
		CHECK(why != NULL && why[0] != '\0');
		/* The caller names the field: the reason does not. */
		CHECK(strncmp(why, "NAME", 4) != 0);
		return;
	}
	CHECK(n >= 1 && n <= PROTO_MAX_NAME);
	/* It cannot fake the start of another line ("bob: hi"). */
	CHECK(strstr(pm->user, ": ") == NULL);
	CHECK(utf8_valid(pm->user, n));
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)pm->user[i];

		CHECK(c >= 0x20 && c != 0x7f);
		if (c == 0xc2 && i + 1 < n)
			CHECK((unsigned char)pm->user[i + 1] < 0x80 ||
			      (unsigned char)pm->user[i + 1] > 0x9f);
	}
	/* What a valid name sanitises to is the name itself. */
	{
		char out[SANITIZE_MAX(PROTO_MAX_NAME)];

		CHECK(sanitize_text(pm->user, n, out, sizeof out) == n);
		CHECK(memcmp(out, pm->user, n) == 0);
	}
}

static void check_decoded(struct json_object *obj)
{
	struct proto_msg pm;
	const char *why = NULL;
	struct json_object *v;
	int rc = proto_decode(obj, &pm, &why);

	if (!json_object_is_type(obj, json_type_object))
		CHECK(rc == -1);
	if (rc < 0) {
		CHECK(why != NULL && why[0] != '\0');
		return;
	}
	if (pm.type == PROTO_CHAT) {
		CHECK(!json_object_object_get_ex(obj, "operation", &v) || !v);
		CHECK(json_object_object_get_ex(obj, "seq", &v) &&
		      json_object_is_type(v, json_type_int));
		check_name(&pm);
		fuzz_check_chat_roundtrip(&pm);
	} else {
		const char *op;

		CHECK(pm.type == PROTO_SUBSCRIBE || pm.type == PROTO_UNSUBSCRIBE ||
		      pm.type == PROTO_DROPPED);
		CHECK(json_object_object_get_ex(obj, "operation", &v) &&
		      json_object_is_type(v, json_type_string));
		op = json_object_get_string(v);
		CHECK((size_t)json_object_get_string_len(v) == strlen(op));
		CHECK(strcmp(op, pm.type == PROTO_SUBSCRIBE ? "subscribe" :
				 pm.type == PROTO_UNSUBSCRIBE ? "unsubscribe" : "dropped") == 0);
		fuzz_check_control_roundtrip(&pm);
	}
}

/* The input as the relay reads it: every chat message it yields must be
 * relayable. */
static void check_relayable(const uint8_t *data, size_t size)
{
	struct jstream *js = jstream_new(PROTO_MAX_OBJECT, PROTO_MAX_DEPTH);
	struct json_object *v;
	const char *why;

	CHECK(js != NULL);
	jstream_feed(js, (const char *)data, size);
	while (jstream_next(js, &v, &why)) {
		struct proto_msg pm;

		if (v && proto_decode(v, &pm, &why) == 0 && pm.type == PROTO_CHAT)
			fuzz_check_chat_relayable(&pm);
		json_object_put(v);
	}
	/* At most PROTO_MAX_OBJECT bytes: never too large. */
	CHECK(jstream_error(js) == NULL ||
	      strcmp(jstream_error(js), "object nested too deeply") == 0);
	jstream_free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	struct json_object *obj;

	if (size > INT32_MAX)
		return 0;
	if (size <= PROTO_MAX_OBJECT)
		check_relayable(data, size);
	tok = json_tokener_new_ex(PROTO_MAX_DEPTH + 1);
	CHECK(tok != NULL);
	obj = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	if (json_tokener_get_error(tok) == json_tokener_success)
		check_decoded(obj);
	json_object_put(obj);
	json_tokener_free(tok);
	return 0;
}
