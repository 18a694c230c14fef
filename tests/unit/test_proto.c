/* test_proto.c - unit tests for proto.c (the JSON wire format). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
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

static void test_encode_limit_one_over(void **state)
{
	(void)state;
	size_t tlen = PROTO_MAX_OBJECT - OVERHEAD + 1;
	char *text = malloc(tlen);
	struct msg *m;

	assert_non_null(text);
	memset(text, 'a', tlen);
	errno = 0;
	m = proto_encode_chat(0, "u", 1, text, tlen);
	if (m != NULL)
		fail_msg("an object of PROTO_MAX_OBJECT + 1 bytes was encoded "
			 "(%zu bytes with the newline)", m->len);
	assert_int_equal(errno, EMSGSIZE);
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

static void name_bad(const char *name)
{
	const char *why = NULL;

	if (proto_name_valid(name, &why))
		fail_msg("name \"%s\" (%zu bytes) accepted", name, strlen(name));
	assert_non_null(why);
	assert_true(why[0] != '\0');
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
		cmocka_unit_test(test_encode_limit_one_over),
		cmocka_unit_test(test_encode_limit_far_over),
		cmocka_unit_test(test_encode_control_exact),
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
