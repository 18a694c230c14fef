/* proto.c - encoding and checking the JSON objects on the wire. */
#include "proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"

/* ---------------------------------------------------------------------
 * Encoding.  json-c escapes each string; we lay the object out ourselves
 * so that it reads exactly like the assignment's example (and like
 * Python's json.dumps), keys in order: {"seq": 0, "user": "octav", ...}.
 * ------------------------------------------------------------------- */

/* The JSON form of a string, quotes included, or NULL on ENOMEM.  Slashes
 * stay unescaped and non-ASCII stays raw UTF-8. */
static struct json_object *json_str(const char *s, size_t len,
				    const char **out, size_t *outlen)
{
	struct json_object *o;

	if (len > INT32_MAX) {
		errno = EMSGSIZE;
		return NULL;
	}
	o = json_object_new_string_len(s, (int)len);
	if (!o) {
		errno = ENOMEM;
		return NULL;
	}
	*out = json_object_to_json_string_length(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, outlen);
	if (!*out) {
		json_object_put(o);
		errno = ENOMEM;
		return NULL;
	}
	return o;
}

/* Concatenates the parts into a message ending in '\n', if the object
 * (without the '\n') fits PROTO_MAX_OBJECT. */
static struct msg *assemble(const char *const parts[], const size_t lens[],
			    size_t nparts)
{
	char *buf;
	size_t total = 0, i, off = 0;
	struct msg *m;

	for (i = 0; i < nparts; i++)
		total += lens[i];
	if (total > PROTO_MAX_OBJECT) {
		errno = EMSGSIZE;
		return NULL;
	}
	buf = malloc(total + 1);
	if (!buf) {
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < nparts; i++) {
		memcpy(buf + off, parts[i], lens[i]);
		off += lens[i];
	}
	buf[off++] = '\n';
	m = msg_new(buf, off);
	free(buf);
	if (!m)
		errno = ENOMEM;
	return m;
}

struct msg *proto_encode_chat(int64_t seq, const char *user, size_t user_len,
			      const char *text, size_t text_len)
{
	struct json_object *u, *t;
	const char *us, *ts;
	size_t ulen, tlen;
	char head[48];
	int n;
	struct msg *m = NULL;

	n = snprintf(head, sizeof head, "{\"seq\": %" PRId64 ", \"user\": ", seq);
	if (n < 0 || (size_t)n >= sizeof head)
		return NULL;
	u = json_str(user, user_len, &us, &ulen);
	if (!u)
		return NULL;
	t = json_str(text, text_len, &ts, &tlen);
	if (t) {
		const char *parts[] = { head, us, ", \"message\": ", ts, "}" };
		const size_t lens[] = { (size_t)n, ulen, 13, tlen, 1 };

		m = assemble(parts, lens, 5);
		json_object_put(t);
	}
	json_object_put(u);
	return m;
}

struct msg *proto_encode_control(enum proto_type type, const char *client)
{
	const char *head = type == PROTO_SUBSCRIBE
				   ? "{\"operation\": \"subscribe\", \"client\": "
				   : "{\"operation\": \"unsubscribe\", \"client\": ";
	struct json_object *c;
	const char *cs;
	size_t clen;
	struct msg *m;

	c = json_str(client, strlen(client), &cs, &clen);
	if (!c)
		return NULL;
	{
		const char *parts[] = { head, cs, "}" };
		const size_t lens[] = { strlen(head), clen, 1 };

		m = assemble(parts, lens, 3);
	}
	json_object_put(c);
	return m;
}

/* ---------------------------------------------------------------------
 * Decoding: every field's presence and type is checked; nothing from the
 * network is trusted.
 * ------------------------------------------------------------------- */

/* Fetches a string field; -1 with *why when missing, not a string, or not
 * valid UTF-8. */
static int get_string(struct json_object *obj, const char *key,
		      const char **s, size_t *len, const char **why,
		      const char *missing, const char *wrong)
{
	struct json_object *v;
	int n;

	if (!json_object_object_get_ex(obj, key, &v) || !v) {
		*why = missing;
		return -1;
	}
	if (!json_object_is_type(v, json_type_string)) {
		*why = wrong;
		return -1;
	}
	n = json_object_get_string_len(v);
	*s = json_object_get_string(v);
	*len = n > 0 ? (size_t)n : 0;
	if (!utf8_valid(*s, *len)) {
		*why = "text is not valid UTF-8";
		return -1;
	}
	return 0;
}

static int decode_control(struct json_object *obj, struct json_object *op,
			  struct proto_msg *out, const char **why)
{
	const char *name;
	int len;

	if (!json_object_is_type(op, json_type_string)) {
		*why = "\"operation\" is not a string";
		return -1;
	}
	name = json_object_get_string(op);
	len = json_object_get_string_len(op);
	if (len == 9 && memcmp(name, "subscribe", 9) == 0) {
		out->type = PROTO_SUBSCRIBE;
	} else if (len == 11 && memcmp(name, "unsubscribe", 11) == 0) {
		out->type = PROTO_UNSUBSCRIBE;
	} else {
		*why = "unknown operation";
		return -1;
	}
	return get_string(obj, "client", &out->client, &out->client_len, why,
			  "\"client\" is missing", "\"client\" is not a string");
}

int proto_decode(struct json_object *obj, struct proto_msg *out,
		 const char **why)
{
	struct json_object *v;

	memset(out, 0, sizeof *out);
	if (!obj || !json_object_is_type(obj, json_type_object)) {
		*why = "not a JSON object";
		return -1;
	}
	if (json_object_object_get_ex(obj, "operation", &v) && v)
		return decode_control(obj, v, out, why);

	out->type = PROTO_CHAT;
	if (!json_object_object_get_ex(obj, "seq", &v) || !v) {
		*why = "\"seq\" is missing";
		return -1;
	}
	if (!json_object_is_type(v, json_type_int)) {
		*why = "\"seq\" is not an integer";
		return -1;
	}
	out->seq = json_object_get_int64(v);
	if (out->seq < 0) {
		*why = "\"seq\" is negative";
		return -1;
	}
	/* json-c clamps what does not fit in 64 bits; relaying a clamped
	 * number would change the message. */
	if (out->seq == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX) {
		*why = "\"seq\" is out of range";
		return -1;
	}
	if (get_string(obj, "user", &out->user, &out->user_len, why,
		       "\"user\" is missing", "\"user\" is not a string") < 0)
		return -1;
	return get_string(obj, "message", &out->text, &out->text_len, why,
			  "\"message\" is missing", "\"message\" is not a string");
}

bool proto_name_valid(const char *name, const char **why)
{
	size_t len = strlen(name), i;

	if (len == 0) {
		*why = "NAME must not be empty";
		return false;
	}
	if (len > PROTO_MAX_NAME) {
		*why = "NAME must be at most 64 bytes";
		return false;
	}
	if (!utf8_valid(name, len)) {
		*why = "NAME must be valid UTF-8";
		return false;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		/* C1 controls are U+0080-U+009F, encoded c2 80 - c2 9f. */
		if (c < 0x20 || c == 0x7f ||
		    (c == 0xc2 && i + 1 < len &&
		     (unsigned char)name[i + 1] >= 0x80 &&
		     (unsigned char)name[i + 1] <= 0x9f)) {
			*why = "NAME must not contain control characters";
			return false;
		}
	}
	return true;
}
