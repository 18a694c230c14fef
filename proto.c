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

/* A string in its JSON form, quotes included; its bytes live as long as
 * the json_object returned (NULL on ENOMEM or EMSGSIZE).  Slashes stay
 * unescaped and non-ASCII stays raw UTF-8. */
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
	struct msg *m;
	size_t total = 0, i, off = 0;

	for (i = 0; i < nparts; i++)
		total += lens[i];
	if (total > PROTO_MAX_OBJECT) {
		errno = EMSGSIZE;
		return NULL;
	}
	m = msg_alloc(total + 1);
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < nparts; i++) {
		memcpy(m->data + off, parts[i], lens[i]);
		off += lens[i];
	}
	m->data[off] = '\n';
	return m;
}

struct msg *proto_encode_chat(int64_t seq, const char *user, size_t user_len,
			      const char *text, size_t text_len)
{
	struct json_object *u, *t = NULL;
	const char *us, *ts;
	size_t ulen, tlen;
	char head[40], chead[40];
	int n, cn;
	struct msg *m = NULL;

	n = snprintf(head, sizeof head, "{\"seq\": %" PRId64 ", \"user\": ", seq);
	if (n < 0 || (size_t)n >= sizeof head)
		return NULL;
	u = json_str(user, user_len, &us, &ulen);
	if (u)
		t = json_str(text, text_len, &ts, &tlen);
	if (t) {
		const char *parts[] = { head, us, ", \"message\": ", ts, "}" };
		const size_t lens[] = { (size_t)n, ulen, 13, tlen, 1 };

		m = assemble(parts, lens, 5);
		if (!m && errno == EMSGSIZE &&
		    (cn = snprintf(chead, sizeof chead, "{\"seq\":%" PRId64 ",\"user\":", seq)) > 0) {
			const char *cparts[] = { chead, us, ",\"message\":", ts, "}" };
			const size_t clens[] = { (size_t)cn, ulen, 11, tlen, 1 };

			m = assemble(cparts, clens, 5);
		}
		json_object_put(t);
	}
	json_object_put(u);
	return m;
}

static struct msg *encode_operation(const char *op, const char *client,
				    const char *reason)
{
	struct json_object *c, *r = NULL;
	const char *cs, *rs = NULL;
	size_t clen, rlen = 0;
	struct msg *m = NULL;

	c = json_str(client, strlen(client), &cs, &clen);
	if (c && reason)
		r = json_str(reason, strlen(reason), &rs, &rlen);
	if (c && (!reason || r)) {
		const char *parts[] = { "{\"operation\": \"", op, "\", \"client\": ", cs,
					reason ? ", \"reason\": " : "", rs ? rs : "", "}" };
		size_t lens[7], i;

		for (i = 0; i < 7; i++)
			lens[i] = i == 3 ? clen : i == 5 ? rlen : strlen(parts[i]);
		m = assemble(parts, lens, 7);
	}
	json_object_put(r);
	json_object_put(c);
	return m;
}

struct msg *proto_encode_control(enum proto_type type, const char *client)
{
	return encode_operation(type == PROTO_SUBSCRIBE ? "subscribe" : "unsubscribe",
				client, NULL);
}

struct msg *proto_encode_dropped(const char *client, const char *reason)
{
	return encode_operation("dropped", client, reason);
}

/* ---------------------------------------------------------------------
 * Decoding: every field's presence and type is checked; nothing from the
 * network is trusted.
 * ------------------------------------------------------------------- */

/* The fields this protocol knows, gathered in one pass over the object
 * (cheaper than a hash lookup each).  A field set to null counts as
 * missing. */
struct fields {
	struct json_object *operation, *seq, *user, *message, *client, *reason;
	bool has_operation;
};

static void gather(struct json_object *obj, struct fields *f)
{
	memset(f, 0, sizeof *f);
	json_object_object_foreach(obj, key, val) {
		if (strcmp(key, "seq") == 0)
			f->seq = val;
		else if (strcmp(key, "user") == 0)
			f->user = val;
		else if (strcmp(key, "message") == 0)
			f->message = val;
		else if (strcmp(key, "operation") == 0) {
			f->operation = val;
			f->has_operation = val != NULL;
		}
		else if (strcmp(key, "client") == 0)
			f->client = val;
		else if (strcmp(key, "reason") == 0)
			f->reason = val;
	}
}

/* A string field; -1 with *why when missing, not a string, or not valid
 * UTF-8. */
static int get_string(struct json_object *v, const char **s, size_t *len,
		      const char **why, const char *missing, const char *wrong)
{
	int n;

	if (!v) {
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

static int decode_control(const struct fields *f, struct proto_msg *out, const char **why)
{
	static const struct {
		const char *name;
		enum proto_type type;
	} ops[] = {
		{ "subscribe", PROTO_SUBSCRIBE },
		{ "unsubscribe", PROTO_UNSUBSCRIBE },
		{ "dropped", PROTO_DROPPED },
	};
	const char *name;
	size_t len, i, reason_len;

	if (!json_object_is_type(f->operation, json_type_string)) {
		*why = "\"operation\" is not a string";
		return -1;
	}
	name = json_object_get_string(f->operation);
	len = (size_t)json_object_get_string_len(f->operation);
	for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (strlen(ops[i].name) == len && memcmp(name, ops[i].name, len) == 0)
			break;
	if (i == sizeof ops / sizeof ops[0]) {
		*why = "unknown operation";
		return -1;
	}
	out->type = ops[i].type;
	if (get_string(f->client, &out->client, &out->client_len, why,
		       "\"client\" is missing", "\"client\" is not a string") < 0)
		return -1;
	out->reason = "";
	if (out->type == PROTO_DROPPED &&
	    get_string(f->reason, &out->reason, &reason_len, why, "", "") < 0)
		out->reason = "";
	return 0;
}

static int decode_seq(struct json_object *v, struct proto_msg *out, const char **why)
{
	if (!v) {
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
	return 0;
}

int proto_decode(struct json_object *obj, struct proto_msg *out,
		 const char **why)
{
	struct fields f;

	memset(out, 0, sizeof *out);
	if (!obj || !json_object_is_type(obj, json_type_object)) {
		*why = "not a JSON object";
		return -1;
	}
	gather(obj, &f);
	if (f.has_operation)
		return decode_control(&f, out, why);
	out->type = PROTO_CHAT;
	if (decode_seq(f.seq, out, why) < 0 ||
	    get_string(f.user, &out->user, &out->user_len, why,
		       "\"user\" is missing", "\"user\" is not a string") < 0)
		return -1;
	return get_string(f.message, &out->text, &out->text_len, why,
			  "\"message\" is missing", "\"message\" is not a string");
}

bool proto_name_valid(const char *name, const char **why)
{
	size_t len = strlen(name);

	if (len == 0) {
		*why = "must not be empty";
		return false;
	}
	if (len > PROTO_MAX_NAME) {
		*why = "must be at most 64 bytes";
		return false;
	}
	if (!utf8_valid(name, len)) {
		*why = "must be valid UTF-8";
		return false;
	}
	if (sanitize_needed(name, len)) {
		*why = "must not contain control or invisible characters";
		return false;
	}
	if (strstr(name, ": ")) {
		*why = "must not contain ': ' (it would look like the start of another line)";
		return false;
	}
	return true;
}
