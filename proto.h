/* proto.h - the wire format: JSON chat, subscribe and unsubscribe objects.
 *
 * See docs/PROTOCOL.md.  Objects are built and parsed with json-c; a sender
 * ends each object with '\n' and writes it with a single call. */
#ifndef PROTO_H
#define PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "msg.h"

/* Largest JSON object accepted or sent, in bytes (the '\n' not counted). */
#define PROTO_MAX_OBJECT (64 * 1024)
/* Deepest nesting accepted; a chat message needs 1. */
#define PROTO_MAX_DEPTH 8
/* Longest user name our programs send, in bytes. */
#define PROTO_MAX_NAME 64

enum proto_type {
	PROTO_CHAT = 1,
	PROTO_SUBSCRIBE,
	PROTO_UNSUBSCRIBE,
	PROTO_DROPPED,		/* server to client: your subscription ended */
};

/* A decoded object.  The strings point into the json_object it came from
 * and live as long as that object; they are json-c strings, so they are
 * NUL-terminated and may contain NULs. */
struct proto_msg {
	enum proto_type type;
	int64_t seq;		/* PROTO_CHAT */
	const char *user;	/* PROTO_CHAT */
	size_t user_len;
	const char *text;	/* PROTO_CHAT: the "message" field */
	size_t text_len;
	const char *client;	/* the others: "IP:PORT" */
	size_t client_len;
	const char *reason;	/* PROTO_DROPPED: why, or "" */
};

/* Classifies and checks a parsed value.  An object with an "operation"
 * field is a control message; any other object must be a chat message
 * with an integer seq >= 0 and string user and message, all valid UTF-8.
 * Other fields are ignored.  Returns 0, or -1 with *why set to a static
 * reason. */
int proto_decode(struct json_object *obj, struct proto_msg *out,
		 const char **why);

/* {"seq": N, "user": "...", "message": "..."}\n, keys in that order.  When
 * that would pass PROTO_MAX_OBJECT, the same without spaces, which is
 * never longer than any JSON text that decodes to the same three fields:
 * so whatever the relay accepted, it can relay.  NULL with errno EMSGSIZE
 * when even that is too long, or ENOMEM. */
struct msg *proto_encode_chat(int64_t seq, const char *user, size_t user_len,
			      const char *text, size_t text_len);

/* {"operation": "subscribe", "client": "IP:PORT"}\n (or "unsubscribe"). */
struct msg *proto_encode_control(enum proto_type type, const char *client);

/* {"operation": "dropped", "client": "IP:PORT", "reason": "stalled"}\n */
struct msg *proto_encode_dropped(const char *client, const char *reason);

/* Whether NAME is usable as a user name: 1-64 bytes of valid UTF-8, with
 * no control or invisible characters and no ": " (which would let it fake
 * the start of another line).  Returns true, or false with *why set. */
bool proto_name_valid(const char *name, const char **why);

#endif
