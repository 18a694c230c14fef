/* test_proto.c - unit tests for proto.c (the JSON wire format). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "msg.h"
#include "proto.h"

/* ---- helpers -------------------------------------------------------- */

/* Checks m holds exactly want (length included) and frees it. */
static void expect_bytes(struct msg *m, const char *want)
{
	if (m == NULL)
		fail_msg("encode returned NULL (errno %d), wanted %s", errno,
			 want);
	assert_int_equal(atomic_load(&m->refs), 1);
	if (m->len != strlen(want) || memcmp(m->data, want, m->len) != 0)
		fail_msg("encoded %zu bytes \"%.*s\", wanted %zu bytes \"%s\"",
			 m->len, (int)m->len, m->data, strlen(want), want);
	msg_unref(m);
}

/* Parses the bytes of an encoded message (exactly one object, then one
 * '\n' and nothing else). */
static struct json_object *parse_msg(const struct msg *m)
{
	struct json_tokener *tok;
	struct json_object *obj;

	assert_non_null(m);
	assert_true(m->len >= 2);
	assert_int_equal(m->data[m->len - 1], '\n');
	assert_null(memchr(m->data, '\n', m->len - 1));
	tok = json_tokener_new();
	assert_non_null(tok);
	obj = json_tokener_parse_ex(tok, m->data, (int)(m->len - 1));
	if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success)
		fail_msg("encoded bytes do not parse: %.*s", (int)m->len,
			 m->data);
	/* the whole object was consumed */
	assert_int_equal(json_tokener_get_parse_end(tok), m->len - 1);
	json_tokener_free(tok);
	return obj;
}

static struct json_object *parse(const char *text)
{
	struct json_object *obj = json_tokener_parse(text);

	if (obj == NULL)
		fail_msg("test JSON does not parse: %s", text);
	return obj;
}

static void decode_ok(struct json_object *obj, struct proto_msg *pm)
{
	const char *why = NULL;

	memset(pm, 0, sizeof *pm);
	if (proto_decode(obj, pm, &why) != 0)
		fail_msg("proto_decode(%s) failed: %s",
			 json_object_to_json_string(obj), why ? why : "(no why)");
}

static void decode_bad_obj(struct json_object *obj)
{
	struct proto_msg pm;
	const char *why = NULL;

	memset(&pm, 0, sizeof pm);
	if (proto_decode(obj, &pm, &why) != -1)
		fail_msg("proto_decode accepted %s",
			 json_object_to_json_string(obj));
	if (why == NULL || why[0] == '\0')
		fail_msg("proto_decode rejected %s without a reason",
			 json_object_to_json_string(obj));
}

static void decode_bad(const char *text)
{
	struct json_object *obj = parse(text);

	decode_bad_obj(obj);
	json_object_put(obj);
}

/* ---- proto_encode_chat ---------------------------------------------- */

static void test_encode_chat_exact(void **state)
{
	(void)state;
	expect_bytes(proto_encode_chat(0, "octav", 5, "hello", 5),
		     "{\"seq\": 0, \"user\": \"octav\", \"message\": \"hello\"}\n");
	expect_bytes(proto_encode_chat(41, "user1", 5, "hi there", 8),
		     "{\"seq\": 41, \"user\": \"user1\", \"message\": \"hi there\"}\n");
	expect_bytes(proto_encode_chat(3, "u", 1, "", 0),
		     "{\"seq\": 3, \"user\": \"u\", \"message\": \"\"}\n");
	expect_bytes(proto_encode_chat(INT64_MAX, "u", 1, "x", 1),
		     "{\"seq\": 9223372036854775807, \"user\": \"u\", "
		     "\"message\": \"x\"}\n");
}

/* Only len bytes are used: the strings need not be NUL-terminated. */
static void test_encode_chat_uses_lengths(void **state)
{
	(void)state;
	expect_bytes(proto_encode_chat(1, "octavXXX", 5, "helloYYY", 5),
		     "{\"seq\": 1, \"user\": \"octav\", \"message\": \"hello\"}\n");
}

static void test_encode_chat_utf8_raw_slash(void **state)
{
	(void)state;
	const char *user = "andr\xc3\xa9";
	const char *text = "na\xc3\xafve \xf0\x9f\x98\x80 a/b </script> \xe2\x82\xac";

	expect_bytes(proto_encode_chat(7, user, strlen(user), text, strlen(text)),
		     "{\"seq\": 7, \"user\": \"andr\xc3\xa9\", \"message\": "
		     "\"na\xc3\xafve \xf0\x9f\x98\x80 a/b </script> \xe2\x82\xac\"}\n");
}

static void test_encode_chat_escapes(void **state)
{
	(void)state;
	const char *text = "say \"hi\" \\ back\nnext\ttab\rcr";

	expect_bytes(proto_encode_chat(2, "o", 1, text, strlen(text)),
		     "{\"seq\": 2, \"user\": \"o\", \"message\": "
		     "\"say \\\"hi\\\" \\\\ back\\nnext\\ttab\\rcr\"}\n");
	expect_bytes(proto_encode_chat(2, "a\"b", 3, "x", 1),
		     "{\"seq\": 2, \"user\": \"a\\\"b\", \"message\": \"x\"}\n");
}

/* Other control characters are escaped (any JSON form), never raw, and
 * come back unchanged. */
static void test_encode_chat_controls(void **state)
{
	(void)state;
	char text[40];
	size_t n = 0;
	struct msg *m;
	struct json_object *obj, *f;

	for (int c = 0; c < 0x20; c++)
		text[n++] = (char)c;
	text[n++] = 'Z';
	m = proto_encode_chat(5, "ctl", 3, text, n);
	assert_non_null(m);
	for (size_t i = 0; i < m->len - 1; i++)
		if ((unsigned char)m->data[i] < 0x20)
			fail_msg("raw control 0x%02x in encoded object at %zu",
				 (unsigned char)m->data[i], i);
	obj = parse_msg(m);
	assert_true(json_object_object_get_ex(obj, "message", &f));
	assert_int_equal(json_object_get_string_len(f), n);
	assert_memory_equal(json_object_get_string(f), text, n);
	json_object_put(obj);
	msg_unref(m);
}

/* Key order and spacing are fixed: seq, user, message. */
static void test_encode_chat_parses(void **state)
{
	(void)state;
	struct msg *m = proto_encode_chat(123, "bob", 3, "yo", 2);
	struct json_object *obj, *f;

	obj = parse_msg(m);
	assert_true(json_object_is_type(obj, json_type_object));
	assert_int_equal(json_object_object_length(obj), 3);
	assert_true(json_object_object_get_ex(obj, "seq", &f));
	assert_true(json_object_is_type(f, json_type_int));
	assert_int_equal(json_object_get_int64(f), 123);
	assert_true(json_object_object_get_ex(obj, "user", &f));
	assert_string_equal(json_object_get_string(f), "bob");
	assert_true(json_object_object_get_ex(obj, "message", &f));
	assert_string_equal(json_object_get_string(f), "yo");
	json_object_put(obj);
	msg_unref(m);
}

/* ---- size limit ----------------------------------------------------- */

/* Bytes of {"seq": 0, "user": "u", "message": ""} (no '\n'). */
#define OVERHEAD (sizeof "{\"seq\": 0, \"user\": \"u\", \"message\": \"\"}" - 1)

static void test_encode_limit_exact(void **state)
{
	(void)state;
	size_t tlen = PROTO_MAX_OBJECT - OVERHEAD;
	char *text = malloc(tlen + 2);
	struct msg *m;

	assert_non_null(text);
	memset(text, 'a', tlen + 1);
	m = proto_encode_chat(0, "u", 1, text, tlen);
	if (m == NULL)
		fail_msg("an object of exactly PROTO_MAX_OBJECT (%d) bytes was "
			 "refused (errno %d)", PROTO_MAX_OBJECT, errno);
	assert_int_equal(m->len, (size_t)PROTO_MAX_OBJECT + 1);
	assert_int_equal(m->data[m->len - 1], '\n');
	msg_unref(m);
	free(text);
}

/* Bytes of {"seq":0,"user":"u","message":""}: the compact layout is 5
 * bytes shorter (three spaces after colons, two after commas). */
#define COMPACT_OVERHEAD (sizeof "{\"seq\":0,\"user\":\"u\",\"message\":\"\"}" - 1)

/* Past PROTO_MAX_OBJECT in the spaced layout but not in the compact one:
 * the compact layout, exactly. */
static void test_encode_compact_fallback(void **state)
{
	(void)state;
	size_t base = PROTO_MAX_OBJECT - OVERHEAD;
	char *text = malloc(base + 8), *want = malloc(PROTO_MAX_OBJECT + 16);

	assert_non_null(text);
	assert_non_null(want);
	assert_int_equal(OVERHEAD - COMPACT_OVERHEAD, 5);
	memset(text, 'a', base + 8);
	for (size_t extra = 1; extra <= 5; extra++) {
		struct msg *m = proto_encode_chat(0, "u", 1, text, base + extra);
		int n;

		if (m == NULL)
			fail_msg("spaced layout %zu over the limit: refused (errno %d), "
				 "but the compact one fits", extra, errno);
		n = snprintf(want, PROTO_MAX_OBJECT + 16,
			     "{\"seq\":0,\"user\":\"u\",\"message\":\"%.*s\"}\n",
			     (int)(base + extra), text);
		assert_true(n > 0);
		assert_int_equal(m->len, (size_t)n);
		assert_int_equal(m->len, PROTO_MAX_OBJECT + extra - 5 + 1);
		assert_memory_equal(m->data, want, m->len);
		msg_unref(m);
	}
	/* Six over: the compact one is one over, so refused. */
	errno = 0;
	assert_null(proto_encode_chat(0, "u", 1, text, base + 6));
	assert_int_equal(errno, EMSGSIZE);
	free(text);
	free(want);
}

/* The compact layout holds the same fields: it decodes to what went in,
 * whatever the seq. */
static void test_encode_compact_roundtrip(void **state)
{
	(void)state;
	static const int64_t seqs[] = { 0, 7, 123456789, INT64_MAX };
	size_t tlen = PROTO_MAX_OBJECT;
	char *text = malloc(tlen);

	assert_non_null(text);
	for (size_t i = 0; i < tlen; i++)
		text[i] = (char)('a' + i % 26);
	for (size_t k = 0; k < sizeof seqs / sizeof seqs[0]; k++) {
		struct msg *m;
		struct json_object *obj;
		struct proto_msg pm;
		char head[64];
		int hn;

		/* Exactly PROTO_MAX_OBJECT bytes compact, so 5 too many spaced. */
		hn = snprintf(head, sizeof head, "{\"seq\":%lld,\"user\":\"bob\",\"message\":\"",
			      (long long)seqs[k]);
		assert_true(hn > 0);
		tlen = PROTO_MAX_OBJECT - (size_t)hn - 2;
		m = proto_encode_chat(seqs[k], "bob", 3, text, tlen);
		assert_non_null(m);
		assert_int_equal(m->len - 1, PROTO_MAX_OBJECT);
		assert_memory_equal(m->data, head, (size_t)hn);
		obj = parse_msg(m);
		decode_ok(obj, &pm);
		assert_int_equal(pm.seq, seqs[k]);
		assert_int_equal(pm.text_len, tlen);
		assert_memory_equal(pm.text, text, tlen);
		json_object_put(obj);
		msg_unref(m);
	}
	free(text);
}

static void test_encode_limit_far_over(void **state)
{
	(void)state;
	size_t tlen = 1024 * 1024;
	char *text = malloc(tlen);
	struct msg *m;

	assert_non_null(text);
	memset(text, 'x', tlen);
	errno = 0;
	m = proto_encode_chat(0, "u", 1, text, tlen);
	assert_null(m);
	assert_int_equal(errno, EMSGSIZE);

	/* Escaping counts: 40000 quotes become 80000 bytes. */
	memset(text, '"', 40000);
	errno = 0;
	m = proto_encode_chat(0, "u", 1, text, 40000);
	assert_null(m);
	assert_int_equal(errno, EMSGSIZE);

	/* Well under the limit: fine. */
	m = proto_encode_chat(0, "u", 1, text, 30000);
	assert_non_null(m);
	assert_true(m->len <= PROTO_MAX_OBJECT + 1);
	msg_unref(m);
	free(text);
}

/* ---- whatever was accepted can be relayed ----------------------------- */

/* A growing string. */
struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* Decodes a JSON text the way the relay does (strict, one object at most
 * PROTO_MAX_OBJECT bytes), re-encodes it and checks the encoding fits
 * (in the compact layout, it is no longer than the input) and decodes to
 * the same fields. */
static void check_relayable(const char *json, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(PROTO_MAX_DEPTH + 2);
	struct json_object *obj, *again;
	struct proto_msg pm, pm2;
	const char *why = NULL;
	struct msg *m;

	assert_true(len <= PROTO_MAX_OBJECT);
	assert_non_null(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, json, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success)
		fail_msg("generated input (%zu bytes) is not JSON: %s", len,
			 json_tokener_error_desc(json_tokener_get_error(tok)));
	json_tokener_free(tok);
	if (proto_decode(obj, &pm, &why) != 0)
		fail_msg("generated input (%zu bytes) refused: %s", len, why);
	assert_int_equal(pm.type, PROTO_CHAT);
	errno = 0;
	m = proto_encode_chat(pm.seq, pm.user, pm.user_len, pm.text, pm.text_len);
	if (m == NULL)
		fail_msg("accepted a %zu-byte object but cannot re-encode it "
			 "(errno %d): user %zu bytes, message %zu bytes", len, errno,
			 pm.user_len, pm.text_len);
	if (m->len - 1 > PROTO_MAX_OBJECT)
		fail_msg("re-encoding of a %zu-byte object is %zu bytes", len, m->len - 1);
	if (memcmp(m->data, "{\"seq\": ", 8) != 0 && m->len - 1 > len)
		fail_msg("compact re-encoding of a %zu-byte object is %zu bytes", len,
			 m->len - 1);
	again = parse_msg(m);
	decode_ok(again, &pm2);
	assert_int_equal(pm2.seq, pm.seq);
	assert_int_equal(pm2.user_len, pm.user_len);
	assert_memory_equal(pm2.user, pm.user, pm.user_len);
	assert_int_equal(pm2.text_len, pm.text_len);
	assert_memory_equal(pm2.text, pm.text, pm.text_len);
	json_object_put(again);
	json_object_put(obj);
	msg_unref(m);
}

/* The escapes a peer may use, each as it is written in JSON. */
static const char *const escapes[] = {
	"\\n", "\\t", "\\r", "\\b", "\\f", "\\\"", "\\\\", "\\/",
	"\\u0001", "\\u001f", "\\u0000", "\\u007f", "\\u00e9", "\\u20ac",
	"\\ud83d\\ude00", "\\u0022", "\\u005c", "\\u002f", "\\u000a",
	"\xc3\xa9", "\xf0\x9f\x98\x80", "/", "a",
};
#define NESCAPES (sizeof escapes / sizeof escapes[0])

/* {"seq":S,"user":"U","message":"...."} with the message made of unit
 * repeated to fill the object to exactly target bytes (padded with 'a');
 * compact or spaced, other fields first or not. */
static void build(struct buf *b, const char *user, const char *unit, size_t target,
		  bool spaced, const char *extra)
{
	const char *head = spaced ? "{\"seq\": 123, \"user\": \"" : "{\"seq\":123,\"user\":\"";
	const char *mid = spaced ? "\", \"message\": \"" : "\",\"message\":\"";
	size_t tail = 2 + (extra ? strlen(extra) : 0);	/* '"', extra, '}' */

	b->len = 0;
	puts_(b, head);
	puts_(b, user);
	puts_(b, mid);
	assert_true(b->len + tail <= target);
	while (b->len + strlen(unit) + tail <= target)
		puts_(b, unit);
	while (b->len + tail < target)
		puts_(b, "a");
	puts_(b, "\"");
	if (extra)
		puts_(b, extra);
	puts_(b, "}");
	assert_int_equal(b->len, target);
}

/* Worst cases: an object of exactly PROTO_MAX_OBJECT bytes (and a little
 * less) full of each kind of escape, compact and spaced, in the user or
 * the message. */
static void test_accepted_is_relayable_worst_cases(void **state)
{
	(void)state;
	struct buf b = { 0 };
	static const size_t sizes[] = { PROTO_MAX_OBJECT, PROTO_MAX_OBJECT - 1,
					PROTO_MAX_OBJECT - 3, PROTO_MAX_OBJECT - 5, 1000 };

	for (size_t e = 0; e < NESCAPES; e++) {
		for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
			for (int spaced = 0; spaced < 2; spaced++) {
				build(&b, "u", escapes[e], sizes[z], spaced, NULL);
				check_relayable(b.p, b.len);
				/* Extra fields are dropped on the way. */
				build(&b, "u", escapes[e], sizes[z], spaced,
				      ", \"time\": 1.5, \"to\": [\"all\"]");
				check_relayable(b.p, b.len);
			}
		}
	}
	/* The user field full of escapes too (the relay does not limit its
	 * length; proto_name_valid is for our own users). */
	for (size_t e = 0; e < NESCAPES; e++) {
		struct buf u = { 0 };

		for (int i = 0; i < 4000; i++)
			puts_(&u, escapes[e]);
		build(&b, u.p, escapes[(e + 3) % NESCAPES], PROTO_MAX_OBJECT, false, NULL);
		check_relayable(b.p, b.len);
		free(u.p);
	}
	free(b.p);
}

/* Random mixtures of escapes and raw text, of random sizes up to the
 * limit, with keys in any order. */
static void test_accepted_is_relayable_random(void **state)
{
	(void)state;
	struct buf b = { 0 }, u = { 0 }, t = { 0 };
	uint32_t rng = 4242;

	for (int iter = 0; iter < 300; iter++) {
		size_t target, ulen;
		int order;
		char seq[32];

		rng = rng * 1103515245u + 12345u;
		target = PROTO_MAX_OBJECT - (rng >> 16) % 64;
		if (iter % 3 == 0)
			target = 64 + (rng >> 8) % PROTO_MAX_OBJECT;
		rng = rng * 1103515245u + 12345u;
		ulen = (rng >> 16) % 2000;
		order = (int)((rng >> 8) % 3);
		snprintf(seq, sizeof seq, "%u", (unsigned)(rng % 100000));
		u.len = t.len = 0;
		puts_(&u, "");
		puts_(&t, "");
		while (u.len < ulen) {
			rng = rng * 1103515245u + 12345u;
			puts_(&u, escapes[(rng >> 16) % NESCAPES]);
		}
		/* Fill the message until the object is target bytes. */
		for (;;) {
			size_t fixed = strlen("{\"seq\":,\"user\":\"\",\"message\":\"\"}") +
				       strlen(seq) + u.len;
			const char *e;

			if (fixed > target)
				break;
			rng = rng * 1103515245u + 12345u;
			e = escapes[(rng >> 16) % NESCAPES];
			if (fixed + t.len + strlen(e) > target) {
				if (fixed + t.len < target)
					puts_(&t, "a");
				else
					break;
				continue;
			}
			puts_(&t, e);
		}
		b.len = 0;
		switch (order) {
		case 0:
			puts_(&b, "{\"seq\":");
			puts_(&b, seq);
			puts_(&b, ",\"user\":\"");
			put(&b, u.p, u.len);
			puts_(&b, "\",\"message\":\"");
			put(&b, t.p, t.len);
			puts_(&b, "\"}");
			break;
		case 1:
			puts_(&b, "{\"message\":\"");
			put(&b, t.p, t.len);
			puts_(&b, "\",\"user\":\"");
			put(&b, u.p, u.len);
			puts_(&b, "\",\"seq\":");
			puts_(&b, seq);
			puts_(&b, "}");
			break;
		default:
			puts_(&b, "{\"user\":\"");
			put(&b, u.p, u.len);
			puts_(&b, "\",\"seq\":");
			puts_(&b, seq);
			puts_(&b, ",\"message\":\"");
			put(&b, t.p, t.len);
			puts_(&b, "\"}");
			break;
		}
		if (b.len > PROTO_MAX_OBJECT)
			continue;
		check_relayable(b.p, b.len);
	}
	free(b.p);
	free(u.p);
	free(t.p);
}

/* \u00e9 in the input is 6 bytes, raw in the output 2: a message near
 * the limit written with escapes shrinks, and is sent spaced again. */
static void test_shrinking_escapes_spaced_again(void **state)
{
	(void)state;
	struct buf b = { 0 };
	struct json_object *obj;
	struct proto_msg pm;
	struct msg *m;

	build(&b, "u", "\\u00e9", PROTO_MAX_OBJECT, false, NULL);
	obj = parse(b.p);
	decode_ok(obj, &pm);
	m = proto_encode_chat(pm.seq, pm.user, pm.user_len, pm.text, pm.text_len);
	assert_non_null(m);
	assert_true(m->len < PROTO_MAX_OBJECT / 2);
	assert_memory_equal(m->data, "{\"seq\": 123, \"user\": \"u\", \"message\": \"",
			    strlen("{\"seq\": 123, \"user\": \"u\", \"message\": \""));
	msg_unref(m);
	json_object_put(obj);
	free(b.p);
}

/* ---- proto_encode_control ------------------------------------------- */

static void test_encode_control_exact(void **state)
{
	(void)state;
	expect_bytes(proto_encode_control(PROTO_SUBSCRIBE, "127.0.0.1:5001"),
		     "{\"operation\": \"subscribe\", \"client\": \"127.0.0.1:5001\"}\n");
	expect_bytes(proto_encode_control(PROTO_UNSUBSCRIBE, "127.0.0.1:5001"),
		     "{\"operation\": \"unsubscribe\", \"client\": \"127.0.0.1:5001\"}\n");
	expect_bytes(proto_encode_control(PROTO_SUBSCRIBE, "[::1]:5002"),
		     "{\"operation\": \"subscribe\", \"client\": \"[::1]:5002\"}\n");
}

/* ---- proto_encode_dropped / PROTO_DROPPED ---------------------------- */

static void test_encode_dropped_exact(void **state)
{
	(void)state;
	expect_bytes(proto_encode_dropped("127.0.0.1:5001", "stalled"),
		     "{\"operation\": \"dropped\", \"client\": \"127.0.0.1:5001\", "
		     "\"reason\": \"stalled\"}\n");
	expect_bytes(proto_encode_dropped("[::1]:5002", ""),
		     "{\"operation\": \"dropped\", \"client\": \"[::1]:5002\", "
		     "\"reason\": \"\"}\n");
	/* The reason is escaped like any string. */
	expect_bytes(proto_encode_dropped("1.2.3.4:5", "said \"bye\"\n"),
		     "{\"operation\": \"dropped\", \"client\": \"1.2.3.4:5\", "
		     "\"reason\": \"said \\\"bye\\\"\\n\"}\n");
}

static void test_roundtrip_dropped(void **state)
{
	(void)state;
	static const char *reasons[] = { "stalled", "", "server shutting down",
					 "caf\xc3\xa9 \xf0\x9f\x98\x80" };

	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
		struct msg *m = proto_encode_dropped("10.0.0.7:5001", reasons[i]);
		struct json_object *obj = parse_msg(m);
		struct proto_msg pm;

		decode_ok(obj, &pm);
		assert_int_equal(pm.type, PROTO_DROPPED);
		assert_string_equal(pm.client, "10.0.0.7:5001");
		assert_int_equal(pm.client_len, strlen("10.0.0.7:5001"));
		assert_non_null(pm.reason);
		assert_string_equal(pm.reason, reasons[i]);
		json_object_put(obj);
		msg_unref(m);
	}
}

static void test_decode_dropped(void **state)
{
	(void)state;
	struct json_object *obj;
	struct proto_msg pm;

	/* A reason is optional: missing, or not a usable string, it is "". */
	obj = parse("{\"operation\": \"dropped\", \"client\": \"1.2.3.4:5\"}");
	decode_ok(obj, &pm);
	assert_int_equal(pm.type, PROTO_DROPPED);
	assert_string_equal(pm.client, "1.2.3.4:5");
	assert_non_null(pm.reason);
	assert_string_equal(pm.reason, "");
	json_object_put(obj);

	obj = parse("{\"operation\": \"dropped\", \"client\": \"1.2.3.4:5\", \"reason\": 7}");
	decode_ok(obj, &pm);
	assert_int_equal(pm.type, PROTO_DROPPED);
	assert_string_equal(pm.reason, "");
	json_object_put(obj);

	obj = parse("{\"operation\": \"dropped\", \"client\": \"1.2.3.4:5\", \"reason\": null}");
	decode_ok(obj, &pm);
	assert_string_equal(pm.reason, "");
	json_object_put(obj);

	obj = json_object_new_object();
	json_object_object_add(obj, "operation", json_object_new_string("dropped"));
	json_object_object_add(obj, "client", json_object_new_string("1.2.3.4:5"));
	json_object_object_add(obj, "reason", json_object_new_string_len("\xff", 1));
	decode_ok(obj, &pm);
	assert_string_equal(pm.reason, "");		/* not UTF-8: dropped */
	json_object_put(obj);

	/* Other messages have no reason to give. */
	obj = parse("{\"operation\": \"subscribe\", \"client\": \"1.2.3.4:5\", \"reason\": \"x\"}");
	decode_ok(obj, &pm);
	assert_int_equal(pm.type, PROTO_SUBSCRIBE);
	assert_true(pm.reason == NULL || pm.reason[0] == '\0');
	json_object_put(obj);

	/* The client is required, as for the other operations. */
	decode_bad("{\"operation\": \"dropped\"}");
	decode_bad("{\"operation\": \"dropped\", \"reason\": \"stalled\"}");
	decode_bad("{\"operation\": \"dropped\", \"client\": 5}");
	decode_bad("{\"operation\": \"Dropped\", \"client\": \"1.2.3.4:5\"}");
	decode_bad("{\"operation\": \"dropped \", \"client\": \"1.2.3.4:5\"}");
}

/* ---- proto_decode: round trips -------------------------------------- */

static void roundtrip_chat(int64_t seq, const char *user, size_t ulen,
			   const char *text, size_t tlen)
{
	struct msg *m = proto_encode_chat(seq, user, ulen, text, tlen);
	struct json_object *obj = parse_msg(m);
	struct proto_msg pm;

	decode_ok(obj, &pm);
	assert_int_equal(pm.type, PROTO_CHAT);
	assert_int_equal(pm.seq, seq);
	assert_int_equal(pm.user_len, ulen);
	assert_memory_equal(pm.user, user, ulen);
	assert_int_equal(pm.user[ulen], '\0');
	assert_int_equal(pm.text_len, tlen);
	if (tlen)
		assert_memory_equal(pm.text, text, tlen);
	assert_int_equal(pm.text[tlen], '\0');
	json_object_put(obj);
	msg_unref(m);
}

static void test_roundtrip_chat(void **state)
{
	(void)state;
	roundtrip_chat(0, "octav", 5, "hello", 5);
	roundtrip_chat(1, "andr\xc3\xa9", 6, "\xf0\x9f\x98\x80 caf\xc3\xa9", 10);
	roundtrip_chat(2, "o", 1, "q\"b\\n\nt\t/\x1b[31m",
		       strlen("q\"b\\n\nt\t/\x1b[31m"));
	roundtrip_chat(3, "o", 1, "", 0);
	roundtrip_chat(INT64_MAX, "o", 1, "big", 3);
	roundtrip_chat(4, "a\0b", 3, "x\0y\0", 4);	/* embedded NULs */
}

static void test_roundtrip_control(void **state)
{
	(void)state;
	static const enum proto_type types[] = { PROTO_SUBSCRIBE,
						  PROTO_UNSUBSCRIBE };

	for (size_t i = 0; i < 2; i++) {
		struct msg *m = proto_encode_control(types[i], "10.0.0.7:5001");
		struct json_object *obj = parse_msg(m);
		struct proto_msg pm;

		decode_ok(obj, &pm);
		assert_int_equal(pm.type, types[i]);
		assert_int_equal(pm.client_len, strlen("10.0.0.7:5001"));
		assert_string_equal(pm.client, "10.0.0.7:5001");
		json_object_put(obj);
		msg_unref(m);
	}
}

/* Input as a Python peer sends it: other key order, no spaces, \u escapes,
 * extra fields. */
static void test_decode_python_forms(void **state)
{
	(void)state;
	struct json_object *obj;
	struct proto_msg pm;

	obj = parse("{\"message\":\"caf\\u00e9 \\ud83d\\ude00\",\"user\":\"bob\",\"seq\":9}");
	decode_ok(obj, &pm);
	assert_int_equal(pm.type, PROTO_CHAT);
	assert_int_equal(pm.seq, 9);
	assert_int_equal(pm.user_len, 3);
	assert_string_equal(pm.user, "bob");
	assert_int_equal(pm.text_len, strlen("caf\xc3\xa9 \xf0\x9f\x98\x80"));
	assert_string_equal(pm.text, "caf\xc3\xa9 \xf0\x9f\x98\x80");
	json_object_put(obj);

	obj = parse("{\"seq\": 1, \"user\": \"a\", \"message\": \"x\\u0000y\"}");
	decode_ok(obj, &pm);
	assert_int_equal(pm.text_len, 3);
	assert_memory_equal(pm.text, "x\0y", 3);
	json_object_put(obj);
}

static void test_decode_extra_fields_ignored(void **state)
{
	(void)state;
	struct json_object *obj;
	struct proto_msg pm;

	obj = parse("{\"seq\": 5, \"user\": \"a\", \"message\": \"m\", "
		    "\"time\": 3.5, \"extra\": [1, {\"x\": null}], \"to\": \"all\"}");
	decode_ok(obj, &pm);
	assert_int_equal(pm.type, PROTO_CHAT);
	assert_int_equal(pm.seq, 5);
	assert_string_equal(pm.user, "a");
	assert_string_equal(pm.text, "m");
	json_object_put(obj);

	obj = parse("{\"operation\": \"unsubscribe\", \"client\": \"1.2.3.4:5\", "
		    "\"reason\": \"bye\", \"n\": 1}");
	decode_ok(obj, &pm);
	assert_int_equal(pm.type, PROTO_UNSUBSCRIBE);
	assert_string_equal(pm.client, "1.2.3.4:5");
	json_object_put(obj);
}

/* An object with an "operation" field is a control message, even if it
 * also has chat fields. */
static void test_decode_operation_wins(void **state)
{
	(void)state;
	struct json_object *obj;
	struct proto_msg pm;

	obj = parse("{\"seq\": 0, \"user\": \"a\", \"message\": \"b\", "
		    "\"operation\": \"subscribe\", \"client\": \"1.2.3.4:5\"}");
	decode_ok(obj, &pm);
	assert_int_equal(pm.type, PROTO_SUBSCRIBE);
	assert_string_equal(pm.client, "1.2.3.4:5");
	json_object_put(obj);

	decode_bad("{\"seq\": 0, \"user\": \"a\", \"message\": \"b\", "
		   "\"operation\": \"chat\"}");
}

static void test_decode_seq_zero_and_large(void **state)
{
	(void)state;
	struct json_object *obj;
	struct proto_msg pm;

	obj = parse("{\"seq\": 0, \"user\": \"\", \"message\": \"\"}");
	decode_ok(obj, &pm);
	assert_int_equal(pm.seq, 0);
	assert_int_equal(pm.user_len, 0);
	assert_int_equal(pm.text_len, 0);
	json_object_put(obj);

	obj = parse("{\"seq\": 4294967296, \"user\": \"u\", \"message\": \"m\"}");
	decode_ok(obj, &pm);
	assert_true(pm.seq == INT64_C(4294967296));
	json_object_put(obj);
}

/* ---- proto_decode: rejections --------------------------------------- */

static void test_decode_not_object(void **state)
{
	(void)state;
	decode_bad("[1, 2]");
	decode_bad("[{\"seq\": 0, \"user\": \"a\", \"message\": \"b\"}]");
	decode_bad("\"hello\"");
	decode_bad("42");
	decode_bad("3.5");
	decode_bad("true");
	decode_bad("{}");
}

/* A JSON null is a NULL json_object: refused, not a crash. */
static void test_decode_null(void **state)
{
	(void)state;
	struct json_object *obj = json_tokener_parse("null");

	assert_null(obj);
	decode_bad_obj(NULL);
}

static void test_decode_missing_fields(void **state)
{
	(void)state;
	decode_bad("{\"user\": \"a\", \"message\": \"b\"}");
	decode_bad("{\"seq\": 0, \"message\": \"b\"}");
	decode_bad("{\"seq\": 0, \"user\": \"a\"}");
	decode_bad("{\"seq\": 0}");
	decode_bad("{\"msg\": \"b\", \"seq\": 0, \"user\": \"a\"}");
}

static void test_decode_bad_seq(void **state)
{
	(void)state;
	decode_bad("{\"seq\": \"0\", \"user\": \"a\", \"message\": \"b\"}");
	decode_bad("{\"seq\": 1.5, \"user\": \"a\", \"message\": \"b\"}");
	decode_bad("{\"seq\": -1, \"user\": \"a\", \"message\": \"b\"}");
	decode_bad("{\"seq\": -9223372036854775807, \"user\": \"a\", \"message\": \"b\"}");
	decode_bad("{\"seq\": true, \"user\": \"a\", \"message\": \"b\"}");
	decode_bad("{\"seq\": null, \"user\": \"a\", \"message\": \"b\"}");
	decode_bad("{\"seq\": [0], \"user\": \"a\", \"message\": \"b\"}");
	decode_bad("{\"seq\": {}, \"user\": \"a\", \"message\": \"b\"}");
}

static void test_decode_bad_user_message_types(void **state)
{
	(void)state;
	decode_bad("{\"seq\": 0, \"user\": 123, \"message\": \"b\"}");
	decode_bad("{\"seq\": 0, \"user\": null, \"message\": \"b\"}");
	decode_bad("{\"seq\": 0, \"user\": [\"a\"], \"message\": \"b\"}");
	decode_bad("{\"seq\": 0, \"user\": true, \"message\": \"b\"}");
	decode_bad("{\"seq\": 0, \"user\": \"a\", \"message\": 5}");
	decode_bad("{\"seq\": 0, \"user\": \"a\", \"message\": null}");
	decode_bad("{\"seq\": 0, \"user\": \"a\", \"message\": {\"t\": \"b\"}}");
	decode_bad("{\"seq\": 0, \"user\": \"a\", \"message\": false}");
}

static struct json_object *chat_obj(const char *user, size_t ulen,
				    const char *text, size_t tlen)
{
	struct json_object *obj = json_object_new_object();

	assert_non_null(obj);
	json_object_object_add(obj, "seq", json_object_new_int64(1));
	json_object_object_add(obj, "user", json_object_new_string_len(user, (int)ulen));
	json_object_object_add(obj, "message", json_object_new_string_len(text, (int)tlen));
	return obj;
}

static void test_decode_invalid_utf8(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t len;
	} bad[] = {
		{ "\xff", 1 }, { "a\xc3", 2 }, { "\xc0\xaf", 2 },
		{ "\xed\xa0\x80", 3 }, { "\xf4\x90\x80\x80", 4 },
		{ "ok\xe2\x82", 4 },
	};
	struct json_object *obj;
	struct proto_msg pm;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		obj = chat_obj(bad[i].s, bad[i].len, "fine", 4);
		decode_bad_obj(obj);
		json_object_put(obj);
		obj = chat_obj("fine", 4, bad[i].s, bad[i].len);
		decode_bad_obj(obj);
		json_object_put(obj);
	}
	/* Control characters are valid UTF-8: decoding keeps them (they are
	 * escaped when shown, not here). */
	obj = chat_obj("fine", 4, "\x1b[2J\xc2\x9b", 6);
	decode_ok(obj, &pm);
	assert_int_equal(pm.text_len, 6);
	json_object_put(obj);
}

static void test_decode_bad_control(void **state)
{
	(void)state;
	decode_bad("{\"operation\": 1, \"client\": \"1.2.3.4:5\"}");
	decode_bad("{\"operation\": null, \"client\": \"1.2.3.4:5\"}");
	decode_bad("{\"operation\": [\"subscribe\"], \"client\": \"1.2.3.4:5\"}");
	decode_bad("{\"operation\": \"publish\", \"client\": \"1.2.3.4:5\"}");
	decode_bad("{\"operation\": \"\", \"client\": \"1.2.3.4:5\"}");
	decode_bad("{\"operation\": \"subscribe\"}");
	decode_bad("{\"operation\": \"unsubscribe\"}");
	decode_bad("{\"operation\": \"subscribe\", \"client\": 5001}");
	decode_bad("{\"operation\": \"subscribe\", \"client\": null}");
	decode_bad("{\"operation\": \"subscribe\", \"client\": [\"1.2.3.4\", 5]}");
	decode_bad("{\"operation\": \"unsubscribe\", \"client\": {}}");
}

/* ---- proto_name_valid ----------------------------------------------- */

static void name_ok(const char *name)
{
	const char *why = NULL;

	if (!proto_name_valid(name, &why))
		fail_msg("name \"%s\" (%zu bytes) refused: %s", name,
			 strlen(name), why ? why : "(no why)");
}

static void name_bad_why(const char *name, const char *want)
{
	const char *why = NULL;

	if (proto_name_valid(name, &why))
		fail_msg("name \"%s\" (%zu bytes) accepted", name, strlen(name));
	assert_non_null(why);
	assert_true(why[0] != '\0');
	/* The caller puts "NAME " (or the option) in front. */
	if (strncmp(why, "NAME", 4) == 0 || strncmp(why, "name", 4) == 0)
		fail_msg("reason \"%s\" starts with the name of the field", why);
	if (want && strcmp(why, want) != 0)
		fail_msg("name \"%s\": reason \"%s\", want \"%s\"", name, why, want);
}

static void name_bad(const char *name)
{
	name_bad_why(name, NULL);
}

#define WHY_EMPTY "must not be empty"
#define WHY_LONG "must be at most 64 bytes"
#define WHY_UTF8 "must be valid UTF-8"
#define WHY_INVISIBLE "must not contain control or invisible characters"
#define WHY_COLON "must not contain ': ' (it would look like the start of another line)"

/* Names that would fake another line or hide characters. */
static void test_name_reasons(void **state)
{
	(void)state;
	char name[100];

	name_bad_why("", WHY_EMPTY);
	memset(name, 'a', 65);
	name[65] = '\0';
	name_bad_why(name, WHY_LONG);
	name_bad_why("\xff", WHY_UTF8);
	name_bad_why("a\xc3", WHY_UTF8);
	name_bad_why("a\tb", WHY_INVISIBLE);
	name_bad_why("\x1b[31m", WHY_INVISIBLE);
	name_bad_why("c1\xc2\x9b", WHY_INVISIBLE);
	/* ": " would let a name fake "alice: hi" on the next line. */
	name_bad_why("alice: hi", WHY_COLON);
	name_bad_why("a: ", WHY_COLON);
	name_bad_why(": ", WHY_COLON);
	name_ok("a:b");
	name_ok(":");
	name_ok("a :b");
	name_ok("a:");
	name_ok("12:30");
	/* Invisible and direction-changing characters. */
	name_bad_why("bo\xe2\x80\x8b" "b", WHY_INVISIBLE);	/* U+200B */
	name_bad_why("\xe2\x80\xae" "evil", WHY_INVISIBLE);	/* U+202E */
	name_bad_why("a\xe2\x81\xa6" "b", WHY_INVISIBLE);	/* U+2066 */
	name_bad_why("\xef\xbb\xbf" "bob", WHY_INVISIBLE);	/* U+FEFF */
	name_bad_why("a\xe2\x80\xa8" "b", WHY_INVISIBLE);	/* U+2028 */
	name_bad_why("a\xd8\x9c" "b", WHY_INVISIBLE);		/* U+061C */
	name_bad_why("a\xe2\x80\x8d" "b", WHY_INVISIBLE);	/* ZWJ between letters */
	name_bad_why("a\xe2\x80\x8e", WHY_INVISIBLE);		/* LRM */
	/* An emoji ZWJ sequence is a visible name. */
	name_ok("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9");
	name_ok("bob \xe2\x9d\xa4\xef\xb8\x8f\xe2\x80\x8d\xf0\x9f\x94\xa5");
	/* The invisible check comes after the UTF-8 one. */
	name_bad_why("\xe2\x80\xae\xff", WHY_UTF8);
}

static void test_name_valid(void **state)
{
	(void)state;
	char name[200];

	name_ok("octav");
	name_ok("a");
	name_ok("user1");
	name_ok("andr\xc3\xa9");
	name_ok("\xf0\x9f\x98\x80");
	name_ok("Jos\xc3\xa9 Mar\xc3\xad" "a");

	memset(name, 'a', 64);
	name[64] = '\0';
	name_ok(name);			/* exactly 64 bytes */
	memset(name, 'a', 65);
	name[65] = '\0';
	name_bad(name);			/* 65 bytes */

	/* 16 four-byte characters = 64 bytes: ok; one more 'a': 65. */
	name[0] = '\0';
	for (int i = 0; i < 16; i++)
		strcat(name, "\xf0\x9f\x98\x80");
	name_ok(name);
	strcat(name, "a");
	name_bad(name);
	/* 33 two-byte characters = 66 bytes. */
	name[0] = '\0';
	for (int i = 0; i < 33; i++)
		strcat(name, "\xc3\xa9");
	name_bad(name);
}

static void test_name_invalid(void **state)
{
	(void)state;
	name_bad("");
	name_bad("a\tb");
	name_bad("a\nb");
	name_bad("a\rb");
	name_bad("\x1b[31mred");
	name_bad("bell\x07");
	name_bad("del\x7f");
	name_bad("c1\xc2\x9b");
	name_bad("\xff");
	name_bad("a\xc3");
	name_bad("\xc0\xaf");
	name_bad("\xed\xa0\x80");
	name_bad("\xf4\x90\x80\x80");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_chat_exact),
		cmocka_unit_test(test_encode_chat_uses_lengths),
		cmocka_unit_test(test_encode_chat_utf8_raw_slash),
		cmocka_unit_test(test_encode_chat_escapes),
		cmocka_unit_test(test_encode_chat_controls),
		cmocka_unit_test(test_encode_chat_parses),
		cmocka_unit_test(test_encode_limit_exact),
		cmocka_unit_test(test_encode_compact_fallback),
		cmocka_unit_test(test_encode_compact_roundtrip),
		cmocka_unit_test(test_encode_limit_far_over),
		cmocka_unit_test(test_accepted_is_relayable_worst_cases),
		cmocka_unit_test(test_accepted_is_relayable_random),
		cmocka_unit_test(test_shrinking_escapes_spaced_again),
		cmocka_unit_test(test_encode_control_exact),
		cmocka_unit_test(test_encode_dropped_exact),
		cmocka_unit_test(test_roundtrip_dropped),
		cmocka_unit_test(test_decode_dropped),
		cmocka_unit_test(test_roundtrip_chat),
		cmocka_unit_test(test_roundtrip_control),
		cmocka_unit_test(test_decode_python_forms),
		cmocka_unit_test(test_decode_extra_fields_ignored),
		cmocka_unit_test(test_decode_operation_wins),
		cmocka_unit_test(test_decode_seq_zero_and_large),
		cmocka_unit_test(test_decode_not_object),
		cmocka_unit_test(test_decode_null),
		cmocka_unit_test(test_decode_missing_fields),
		cmocka_unit_test(test_decode_bad_seq),
		cmocka_unit_test(test_decode_bad_user_message_types),
		cmocka_unit_test(test_decode_invalid_utf8),
		cmocka_unit_test(test_decode_bad_control),
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_name_invalid),
		cmocka_unit_test(test_name_reasons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
