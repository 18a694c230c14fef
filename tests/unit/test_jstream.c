/* test_jstream.c - unit tests for jstream.c (JSON values over a byte
 * stream). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "jstream.h"

#define MAXV 65536
#define MAXD 8
#define MAXREC 256

/* What the handler saw. */
struct rec {
	int nvalues;
	struct json_object *values[MAXREC];	/* our own references */
	int nskips;
	size_t skipped;
	char events[MAXREC + 1];		/* 'V' value, 'S' skipped */
	int nevents;
	int stop_at;				/* return -1 at this value (1-based) */
};

static int on_value(void *arg, struct json_object *obj)
{
	struct rec *r = arg;

	if (r->nvalues < MAXREC)
		r->values[r->nvalues] = json_object_get(obj);
	r->nvalues++;
	if (r->nevents < MAXREC)
		r->events[r->nevents++] = 'V';
	if (r->stop_at && r->nvalues >= r->stop_at)
		return -1;
	return 0;
}

static void on_skipped(void *arg, const char *why, size_t nbytes)
{
	struct rec *r = arg;

	(void)why;
	r->nskips++;
	r->skipped += nbytes;
	if (r->nevents < MAXREC)
		r->events[r->nevents++] = 'S';
}

static void rec_init(struct rec *r, struct jstream_handler *h)
{
	memset(r, 0, sizeof *r);
	h->value = on_value;
	h->skipped = on_skipped;
	h->arg = r;
	h->batch_end = NULL;
}

static void rec_free(struct rec *r)
{
	for (int i = 0; i < r->nvalues && i < MAXREC; i++)
		json_object_put(r->values[i]);
	r->nvalues = 0;
}

static struct jstream *js_new(size_t max_value, int max_depth)
{
	struct jstream *js = jstream_new(max_value, max_depth);

	assert_non_null(js);
	return js;
}

/* Feeds and expects success. */
static void feed_ok(struct jstream *js, const char *buf, size_t len,
		    const struct jstream_handler *h)
{
	const char *why = NULL;

	if (jstream_feed(js, buf, len, h, &why) != 0)
		fail_msg("jstream_feed(%zu bytes) failed: %s", len,
			 why ? why : "(no why)");
}

static void feed_str(struct jstream *js, const char *s,
		     const struct jstream_handler *h)
{
	feed_ok(js, s, strlen(s), h);
}

/* Checks value i serializes (plain) to want. */
static void check_value(const struct rec *r, int i, const char *want)
{
	const char *got;

	assert_true(i < r->nvalues);
	got = json_object_to_json_string_ext(r->values[i], JSON_C_TO_STRING_PLAIN);
	if (strcmp(got, want) != 0)
		fail_msg("value %d is %s, want %s", i, got, want);
}

#define CHAT "{\"seq\": 0, \"user\": \"octav\", \"message\": \"hello\"}\n"
#define CHAT_PLAIN "{\"seq\":0,\"user\":\"octav\",\"message\":\"hello\"}"

/* ---- basic framing -------------------------------------------------- */

static void test_one_object(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	assert_false(jstream_partial(js));
	feed_str(js, CHAT, &h);
	assert_int_equal(r.nvalues, 1);
	assert_int_equal(r.nskips, 0);
	check_value(&r, 0, CHAT_PLAIN);
	assert_false(jstream_partial(js));
	rec_free(&r);
	jstream_free(js);
}

static void test_two_objects_no_separator(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "{\"seq\": 0, \"user\": \"a\", \"message\": \"x\"}"
		     "{\"seq\": 1, \"user\": \"a\", \"message\": \"y\"}", &h);
	assert_int_equal(r.nvalues, 2);
	assert_int_equal(r.nskips, 0);
	check_value(&r, 0, "{\"seq\":0,\"user\":\"a\",\"message\":\"x\"}");
	check_value(&r, 1, "{\"seq\":1,\"user\":\"a\",\"message\":\"y\"}");
	assert_false(jstream_partial(js));
	rec_free(&r);
	jstream_free(js);
}

static void test_separated_by_whitespace(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "  {\"a\":1}  \n\n {\"b\":2}\r\n\t{\"c\":3}\n \n", &h);
	assert_int_equal(r.nvalues, 3);
	assert_int_equal(r.nskips, 0);
	check_value(&r, 0, "{\"a\":1}");
	check_value(&r, 1, "{\"b\":2}");
	check_value(&r, 2, "{\"c\":3}");
	assert_false(jstream_partial(js));
	rec_free(&r);
	jstream_free(js);
}

static void test_many_in_one_chunk(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;
	char buf[8192];
	size_t n = 0;

	rec_init(&r, &h);
	for (int i = 0; i < 100; i++) {
		int k = snprintf(buf + n, sizeof buf - n,
				 "{\"seq\": %d, \"user\": \"u\", \"message\": \"m%d\"}%s",
				 i, i, i % 3 == 0 ? "\n" : i % 3 == 1 ? " " : "");
		assert_true(k > 0);
		n += (size_t)k;
	}
	feed_ok(js, buf, n, &h);
	assert_int_equal(r.nvalues, 100);
	for (int i = 0; i < 100; i++) {
		struct json_object *f;

		assert_true(json_object_object_get_ex(r.values[i], "seq", &f));
		assert_int_equal(json_object_get_int(f), i);
	}
	rec_free(&r);
	jstream_free(js);
}

/* ---- splits --------------------------------------------------------- */

static void split_check(const char *buf, size_t len, const char **want,
			int nwant)
{
	/* Two parts, split at every byte boundary. */
	for (size_t i = 0; i <= len; i++) {
		struct jstream *js = js_new(MAXV, MAXD);
		struct jstream_handler h;
		struct rec r;

		rec_init(&r, &h);
		feed_ok(js, buf, i, &h);
		feed_ok(js, buf + i, len - i, &h);
		if (r.nvalues != nwant || r.nskips != 0)
			fail_msg("split at %zu: %d values, %d skips", i,
				 r.nvalues, r.nskips);
		for (int k = 0; k < nwant; k++)
			check_value(&r, k, want[k]);
		assert_false(jstream_partial(js));
		rec_free(&r);
		jstream_free(js);
	}
	/* One byte at a time. */
	{
		struct jstream *js = js_new(MAXV, MAXD);
		struct jstream_handler h;
		struct rec r;

		rec_init(&r, &h);
		for (size_t i = 0; i < len; i++)
			feed_ok(js, buf + i, 1, &h);
		assert_int_equal(r.nvalues, nwant);
		assert_int_equal(r.nskips, 0);
		for (int k = 0; k < nwant; k++)
			check_value(&r, k, want[k]);
		assert_false(jstream_partial(js));
		rec_free(&r);
		jstream_free(js);
	}
}

static void test_split_every_boundary(void **state)
{
	(void)state;
	const char *want[] = { CHAT_PLAIN };

	split_check(CHAT, strlen(CHAT), want, 1);
}

/* The object is mid-way until its last byte: partial, no value yet. */
static void test_split_partial_state(void **state)
{
	(void)state;
	const char *buf = CHAT;
	size_t len = strlen(buf) - 1;	/* without the '\n' */

	for (size_t i = 1; i < len; i++) {
		struct jstream *js = js_new(MAXV, MAXD);
		struct jstream_handler h;
		struct rec r;

		rec_init(&r, &h);
		feed_ok(js, buf, i, &h);
		assert_int_equal(r.nvalues, 0);
		if (!jstream_partial(js))
			fail_msg("after %zu of %zu bytes: not partial", i, len);
		feed_ok(js, buf + i, len - i, &h);
		assert_int_equal(r.nvalues, 1);
		assert_false(jstream_partial(js));
		rec_free(&r);
		jstream_free(js);
	}
}

/* UTF-8 and escapes split in the middle. */
static void test_split_utf8_escapes(void **state)
{
	(void)state;
	const char *buf = "{\"seq\": 12, \"user\": \"andr\xc3\xa9\", \"message\": "
			  "\"\xf0\x9f\x98\x80 \\\"q\\\" \\\\ \\u00e9 \\ud83d\\ude00\"}";
	const char *want[] = { "{\"seq\":12,\"user\":\"andr\xc3\xa9\",\"message\":"
			       "\"\xf0\x9f\x98\x80 \\\"q\\\" \\\\ \xc3\xa9 \xf0\x9f\x98\x80\"}" };

	split_check(buf, strlen(buf), want, 1);
}

/* Two objects with no separator, cut into three parts every way. */
static void test_split_two_objects_three_parts(void **state)
{
	(void)state;
	const char *buf = "{\"a\":[1,\"x y\"]}{\"b\":-2.5e3,\"c\":null}";
	size_t len = strlen(buf);

	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			struct jstream *js = js_new(MAXV, MAXD);
			struct jstream_handler h;
			struct rec r;

			rec_init(&r, &h);
			feed_ok(js, buf, i, &h);
			feed_ok(js, buf + i, j - i, &h);
			feed_ok(js, buf + j, len - j, &h);
			if (r.nvalues != 2 || r.nskips != 0)
				fail_msg("cut at %zu,%zu: %d values, %d skips",
					 i, j, r.nvalues, r.nskips);
			check_value(&r, 0, "{\"a\":[1,\"x y\"]}");
			assert_true(json_object_is_type(r.values[1],
							json_type_object));
			assert_int_equal(json_object_object_length(r.values[1]), 2);
			rec_free(&r);
			jstream_free(js);
		}
	}
}

/* A big (but allowed) object in 1000-byte chunks. */
static void test_big_object_in_chunks(void **state)
{
	(void)state;
	size_t tlen = 60000;
	char *buf = malloc(tlen + 100);
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;
	struct json_object *f;
	size_t len, off;

	assert_non_null(buf);
	strcpy(buf, "{\"seq\": 1, \"user\": \"u\", \"message\": \"");
	len = strlen(buf);
	memset(buf + len, 'm', tlen);
	len += tlen;
	memcpy(buf + len, "\"}\n", 3);
	len += 3;
	rec_init(&r, &h);
	for (off = 0; off < len; off += 1000)
		feed_ok(js, buf + off, len - off < 1000 ? len - off : 1000, &h);
	assert_int_equal(r.nvalues, 1);
	assert_true(json_object_object_get_ex(r.values[0], "message", &f));
	assert_int_equal(json_object_get_string_len(f), tlen);
	rec_free(&r);
	jstream_free(js);
	free(buf);
}

/* ---- garbage -------------------------------------------------------- */

static void test_garbage_line_then_object(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "this is not json\n{\"a\":1}\n", &h);
	assert_true(r.nskips >= 1);
	assert_true(r.skipped > 0);
	assert_int_equal(r.nvalues, 1);
	check_value(&r, 0, "{\"a\":1}");
	assert_int_equal(r.events[0], 'S');
	assert_int_equal(r.events[r.nevents - 1], 'V');
	assert_false(jstream_partial(js));
	rec_free(&r);
	jstream_free(js);
}

/* The count handed to skipped is the garbage line (with or without its
 * newline). */
static void test_garbage_skip_count(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "this is not json\n{\"a\":1}\n", &h);
	if (r.skipped < 16 || r.skipped > 17)
		fail_msg("skipped %zu bytes for a 16-byte garbage line",
			 r.skipped);
	rec_free(&r);
	jstream_free(js);
}

static void test_garbage_variants(void **state)
{
	(void)state;
	static const char *inputs[] = {
		"{\"a\":1,,}\n{\"b\":2}\n",		/* invalid object */
		"{\"m\": \"bad \\q escape\"}\n{\"b\":2}\n",	/* bad escape */
		"]]]\n{\"b\":2}",
		"bad1\nbad2\n\n{\"b\":2}\n",
		"\x01\x02\xff\xfe\n{\"b\":2}",
		"{\"a\" 1}\r\n{\"b\":2}\r\n",
	};

	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		struct jstream *js = js_new(MAXV, MAXD);
		struct jstream_handler h;
		struct rec r;

		rec_init(&r, &h);
		feed_str(js, inputs[i], &h);
		if (r.nvalues != 1 || r.nskips < 1)
			fail_msg("input %zu: %d values, %d skips", i,
				 r.nvalues, r.nskips);
		check_value(&r, 0, "{\"b\":2}");
		assert_int_equal(r.events[0], 'S');
		rec_free(&r);
		jstream_free(js);
	}
}

/* A valid object, garbage on the same line, then the next line. */
static void test_object_then_garbage_same_line(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "{\"a\":1} junk junk\n{\"b\":2}\n", &h);
	assert_int_equal(r.nvalues, 2);
	check_value(&r, 0, "{\"a\":1}");
	check_value(&r, 1, "{\"b\":2}");
	assert_true(r.nskips >= 1);
	assert_int_equal(r.events[0], 'V');
	assert_int_equal(r.events[r.nevents - 1], 'V');
	rec_free(&r);
	jstream_free(js);
}

/* Garbage with no newline: the rest of the chunk is dropped; the next
 * chunk's object is parsed. */
static void test_garbage_no_newline(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "garbage garbage", &h);
	assert_int_equal(r.nvalues, 0);
	assert_true(r.nskips >= 1);
	assert_false(jstream_partial(js));
	feed_str(js, "{\"a\":1}", &h);
	assert_int_equal(r.nvalues, 1);
	check_value(&r, 0, "{\"a\":1}");
	rec_free(&r);

	/* Everything after the garbage in that chunk goes, even JSON. */
	rec_init(&r, &h);
	feed_str(js, "xx{\"dropped\":1}", &h);
	assert_int_equal(r.nvalues, 0);
	assert_true(r.nskips >= 1);
	assert_int_equal(r.skipped, strlen("xx{\"dropped\":1}"));
	feed_str(js, "{\"b\":2}", &h);
	assert_int_equal(r.nvalues, 1);
	check_value(&r, 0, "{\"b\":2}");
	rec_free(&r);
	jstream_free(js);
}

/* A half object followed by garbage in the next chunk: resynchronise at
 * the newline. */
static void test_partial_then_garbage(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "{\"a\":", &h);
	assert_true(jstream_partial(js));
	feed_str(js, "oops\n{\"b\":2}\n", &h);
	assert_int_equal(r.nvalues, 1);
	check_value(&r, 0, "{\"b\":2}");
	assert_true(r.nskips >= 1);
	assert_false(jstream_partial(js));
	rec_free(&r);
	jstream_free(js);
}

static void test_garbage_skipped_null(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	h.skipped = NULL;
	feed_str(js, "garbage\n{\"a\":1}\n", &h);
	feed_str(js, "more garbage", &h);
	feed_str(js, "{\"b\":2}", &h);
	assert_int_equal(r.nvalues, 2);
	rec_free(&r);
	jstream_free(js);
}

/* ---- limits --------------------------------------------------------- */

static void feed_fails(struct jstream *js, const char *buf, size_t len,
		       size_t chunk, const struct jstream_handler *h,
		       const char *why_has)
{
	const char *why = NULL;
	int rc = 0;

	for (size_t off = 0; off < len && rc == 0; off += chunk)
		rc = jstream_feed(js, buf + off,
				  len - off < chunk ? len - off : chunk, h, &why);
	if (rc != -1)
		fail_msg("%zu bytes in %zu-byte chunks: not refused", len, chunk);
	assert_non_null(why);
	if (why_has && strstr(why, why_has) == NULL)
		fail_msg("why is \"%s\", expected it to mention \"%s\"", why,
			 why_has);
}

/* {"a":"xxx..."} of exactly n bytes. */
static char *object_of(size_t n)
{
	char *buf = malloc(n + 1);

	assert_non_null(buf);
	assert_true(n >= 8);
	memcpy(buf, "{\"a\":\"", 6);
	memset(buf + 6, 'x', n - 8);
	memcpy(buf + n - 2, "\"}", 3);
	return buf;
}

static void test_too_large(void **state)
{
	(void)state;
	static const size_t chunks[] = { 1u << 20, 4096, 1000, 7 };

	for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
		char *buf = object_of(70000);
		struct jstream *js = js_new(MAXV, MAXD);
		struct jstream_handler h;
		struct rec r;

		rec_init(&r, &h);
		feed_fails(js, buf, 70000, chunks[c], &h, NULL);
		assert_int_equal(r.nvalues, 0);
		rec_free(&r);
		jstream_free(js);
		free(buf);
	}
}

/* A 1 MiB line that never ends. */
static void test_too_large_unterminated(void **state)
{
	(void)state;
	size_t len = 1u << 20;
	char *buf = malloc(len);
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	assert_non_null(buf);
	memset(buf, 'a', len);
	memcpy(buf, "{\"m\": \"", 7);
	rec_init(&r, &h);
	feed_fails(js, buf, len, 4096, &h, NULL);
	assert_int_equal(r.nvalues, 0);
	rec_free(&r);
	jstream_free(js);
	free(buf);
}

/* max_value bytes is allowed, one more is not. */
static void test_size_boundary(void **state)
{
	(void)state;
	static const size_t chunks[] = { 1000, 1 };

	for (size_t c = 0; c < 2; c++) {
		char *buf = object_of(100);
		struct jstream *js = js_new(100, MAXD);
		struct jstream_handler h;
		struct rec r;

		rec_init(&r, &h);
		for (size_t off = 0; off < 100; off += chunks[c])
			feed_ok(js, buf + off,
				100 - off < chunks[c] ? 100 - off : chunks[c], &h);
		if (r.nvalues != 1)
			fail_msg("object of exactly max_value bytes (chunk %zu):"
				 " %d values", chunks[c], r.nvalues);
		rec_free(&r);
		jstream_free(js);
		free(buf);

		buf = object_of(101);
		js = js_new(100, MAXD);
		rec_init(&r, &h);
		feed_fails(js, buf, 101, chunks[c], &h, NULL);
		assert_int_equal(r.nvalues, 0);
		rec_free(&r);
		jstream_free(js);
		free(buf);
	}
}

/* Whitespace inside a value counts: it is part of the object. */
static void test_inner_whitespace_counts(void **state)
{
	(void)state;
	char buf[300];
	struct jstream *js = js_new(100, MAXD);
	struct jstream_handler h;
	struct rec r;

	memcpy(buf, "{\"a\":", 5);
	memset(buf + 5, ' ', 200);
	memcpy(buf + 205, "1}", 2);
	rec_init(&r, &h);
	feed_fails(js, buf, 207, 1000, &h, NULL);
	assert_int_equal(r.nvalues, 0);
	rec_free(&r);
	jstream_free(js);
}

/* Whitespace between values does not count toward the limit. */
static void test_whitespace_between_not_counted(void **state)
{
	(void)state;
	static char buf[200000];
	size_t n = 0;
	struct jstream_handler h;
	struct rec r;
	struct jstream *js;

	/* One chunk: 500 bytes of whitespace around small objects. */
	for (int i = 0; i < 500; i++)
		buf[n++] = " \n\r\t"[i % 4];
	memcpy(buf + n, "{\"a\":1}", 7);
	n += 7;
	for (int i = 0; i < 500; i++)
		buf[n++] = i % 2 ? '\n' : ' ';
	memcpy(buf + n, "{\"b\":2}", 7);
	n += 7;
	for (int i = 0; i < 500; i++)
		buf[n++] = '\n';

	for (size_t chunk = 7; chunk <= n; chunk = chunk == 7 ? n : n + 1) {
		js = js_new(100, MAXD);
		rec_init(&r, &h);
		for (size_t off = 0; off < n; off += chunk)
			feed_ok(js, buf + off, n - off < chunk ? n - off : chunk, &h);
		assert_int_equal(r.nvalues, 2);
		assert_int_equal(r.nskips, 0);
		check_value(&r, 0, "{\"a\":1}");
		check_value(&r, 1, "{\"b\":2}");
		assert_false(jstream_partial(js));
		rec_free(&r);
		jstream_free(js);
	}

	/* 150000 newlines in 4 KiB chunks, then an object. */
	memset(buf, '\n', 150000);
	js = js_new(100, MAXD);
	rec_init(&r, &h);
	for (size_t off = 0; off < 150000; off += 4096)
		feed_ok(js, buf + off, 150000 - off < 4096 ? 150000 - off : 4096, &h);
	feed_str(js, "{\"c\":3}\n", &h);
	assert_int_equal(r.nvalues, 1);
	rec_free(&r);
	jstream_free(js);
}

/* The realistic case: a big object, then a run of blank lines, all in
 * one read. */
static void test_big_object_then_whitespace(void **state)
{
	(void)state;
	size_t olen = 65000, len = olen + 2000;
	char *buf = object_of(olen);
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;
	const char *why = NULL;

	buf = realloc(buf, len + 8);
	assert_non_null(buf);
	memset(buf + olen, '\n', len - olen);
	memcpy(buf + len, "{\"b\":2}", 7);
	rec_init(&r, &h);
	if (jstream_feed(js, buf, len + 7, &h, &why) != 0)
		fail_msg("65000-byte object + 2000 newlines + small object in "
			 "one chunk refused: %s", why ? why : "(no why)");
	assert_int_equal(r.nvalues, 2);
	rec_free(&r);
	jstream_free(js);
	free(buf);
}

/* The reasons are the ones jstream.h documents. */
static void test_why_texts(void **state)
{
	(void)state;
	char *buf = object_of(70000);
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;
	const char *why = NULL;

	rec_init(&r, &h);
	assert_int_equal(jstream_feed(js, buf, 70000, &h, &why), -1);
	assert_non_null(why);
	if (strstr(why, "larger than 65536") == NULL)
		fail_msg("why is \"%s\", jstream.h documents \"object larger "
			 "than 65536 bytes\"", why);
	jstream_free(js);
	free(buf);

	js = js_new(MAXV, MAXD);
	why = NULL;
	assert_int_equal(jstream_feed(js, "[[[[[[[[[[[[[[[[[[[[", 20, &h, &why), -1);
	assert_non_null(why);
	if (strstr(why, "nested too deeply") == NULL)
		fail_msg("why is \"%s\", jstream.h documents \"nested too "
			 "deeply\"", why);
	rec_free(&r);
	jstream_free(js);
}

/* A garbage line with an unterminated string: JSON strings cannot hold a
 * raw newline, so the line ends there and the next object is kept. */
static void test_garbage_open_string_then_object(void **state)
{
	(void)state;
	static const char *inputs[] = {
		"\"hello\n{\"b\":2}\n",
		"{\"seq\": 1, \"user\": \"a\", \"message\": \"cut\n{\"b\":2}\n",
	};

	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		struct jstream *js = js_new(MAXV, MAXD);
		struct jstream_handler h;
		struct rec r;

		rec_init(&r, &h);
		feed_str(js, inputs[i], &h);
		if (r.nvalues != 1 || r.nskips < 1) {
			const char *first = r.nvalues > 0 ?
				json_object_to_json_string(r.values[0]) : "-";

			fail_msg("input %zu: %d values (first %s), %d skips; "
				 "want the skip then {\"b\":2}", i, r.nvalues,
				 first, r.nskips);
		}
		check_value(&r, 0, "{\"b\":2}");
		rec_free(&r);
		jstream_free(js);
	}
}

static char *nested(int depth, bool objects)
{
	size_t cap = (size_t)depth * 6 + 8;
	char *buf = malloc(cap);
	size_t n = 0;

	assert_non_null(buf);
	for (int i = 0; i < depth; i++) {
		if (objects) {
			memcpy(buf + n, "{\"a\":", 5);
			n += 5;
		} else {
			buf[n++] = '[';
		}
	}
	buf[n++] = '1';
	for (int i = 0; i < depth; i++)
		buf[n++] = objects ? '}' : ']';
	buf[n++] = '\n';
	buf[n] = '\0';
	return buf;
}

/* Nesting max_depth deep is accepted, one deeper is refused. */
static void test_depth_limit(void **state)
{
	(void)state;
	for (int objects = 0; objects < 2; objects++) {
		struct jstream_handler h;
		struct rec r;
		struct jstream *js;
		char *buf;

		buf = nested(MAXD, objects);
		js = js_new(MAXV, MAXD);
		rec_init(&r, &h);
		{
			const char *why = NULL;

			if (jstream_feed(js, buf, strlen(buf), &h, &why) != 0 ||
			    r.nvalues != 1)
				fail_msg("%s nested %d deep (= max_depth) refused:"
					 " %s", objects ? "objects" : "arrays",
					 MAXD, why ? why : "(no why)");
		}
		rec_free(&r);
		jstream_free(js);
		free(buf);

		buf = nested(MAXD + 1, objects);
		js = js_new(MAXV, MAXD);
		rec_init(&r, &h);
		feed_fails(js, buf, strlen(buf), 1u << 20, &h, "deep");
		assert_int_equal(r.nvalues, 0);
		rec_free(&r);
		jstream_free(js);
		free(buf);
	}
}

static void test_depth_one(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, 1);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, CHAT, &h);
	assert_int_equal(r.nvalues, 1);
	feed_fails(js, "{\"a\":[1]}", 9, 100, &h, "deep");
	assert_int_equal(r.nvalues, 1);
	rec_free(&r);
	jstream_free(js);
}

static void test_depth_huge(void **state)
{
	(void)state;
	size_t n = 100000;
	char *buf = malloc(n);
	struct jstream *js = js_new(1u << 20, MAXD);
	struct jstream_handler h;
	struct rec r;

	assert_non_null(buf);
	memset(buf, '[', n);
	rec_init(&r, &h);
	feed_fails(js, buf, n, 1000, &h, "deep");
	assert_int_equal(r.nvalues, 0);
	rec_free(&r);
	jstream_free(js);
	free(buf);
}

/* ---- handler stop, partial, non-objects ------------------------------ */

static void test_handler_stop(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;
	const char *why = NULL;

	rec_init(&r, &h);
	r.stop_at = 1;
	assert_int_equal(jstream_feed(js, "{\"a\":1}{\"b\":2}\n{\"c\":3}", 22,
				      &h, &why), -1);
	assert_int_equal(r.nvalues, 1);
	check_value(&r, 0, "{\"a\":1}");
	assert_non_null(why);
	rec_free(&r);
	jstream_free(js);

	/* Stopping at the second value: the first was delivered. */
	js = js_new(MAXV, MAXD);
	rec_init(&r, &h);
	r.stop_at = 2;
	why = NULL;
	assert_int_equal(jstream_feed(js, "{\"a\":1} {\"b\":2} {\"c\":3}", 23,
				      &h, &why), -1);
	assert_int_equal(r.nvalues, 2);
	assert_non_null(why);
	rec_free(&r);
	jstream_free(js);
}

static void count_batch(void *arg)
{
	struct rec *r = arg;

	if (r->nevents < MAXREC)
		r->events[r->nevents++] = 'B';
}

/* batch_end comes once per feed, after that feed's values and skips. */
static void test_batch_end_once_per_feed(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;
	const char *why = NULL;
	static const char two[] = "{\"a\":1}\n{\"b\":2}\nnope\n{\"c\":";

	rec_init(&r, &h);
	h.batch_end = count_batch;
	assert_int_equal(jstream_feed(js, two, strlen(two), &h, &why), 0);
	assert_int_equal(jstream_feed(js, "3}", 2, &h, &why), 0);
	assert_int_equal(jstream_feed(js, "", 0, &h, &why), 0);
	r.events[r.nevents] = '\0';
	assert_string_equal(r.events, "VVSBVBB");
	rec_free(&r);
	jstream_free(js);
}

static void test_partial(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	assert_false(jstream_partial(js));
	feed_str(js, "   \n", &h);
	assert_false(jstream_partial(js));
	feed_str(js, "{\"a\":", &h);
	assert_true(jstream_partial(js));
	feed_str(js, " \"b", &h);
	assert_true(jstream_partial(js));
	feed_str(js, "c\"}", &h);
	assert_false(jstream_partial(js));
	assert_int_equal(r.nvalues, 1);
	feed_str(js, "\n", &h);
	assert_false(jstream_partial(js));
	feed_str(js, "{", &h);
	assert_true(jstream_partial(js));
	feed_str(js, "}\n", &h);
	assert_false(jstream_partial(js));
	assert_int_equal(r.nvalues, 2);
	rec_free(&r);
	jstream_free(js);
}

static void test_non_objects_delivered(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "42 ", &h);
	assert_int_equal(r.nvalues, 1);
	assert_true(json_object_is_type(r.values[0], json_type_int));
	assert_int_equal(json_object_get_int(r.values[0]), 42);

	feed_str(js, "\"str\"", &h);
	assert_int_equal(r.nvalues, 2);
	assert_true(json_object_is_type(r.values[1], json_type_string));
	assert_string_equal(json_object_get_string(r.values[1]), "str");

	feed_str(js, "[1,2]", &h);
	assert_int_equal(r.nvalues, 3);
	assert_true(json_object_is_type(r.values[2], json_type_array));
	assert_int_equal(json_object_array_length(r.values[2]), 2);

	feed_str(js, "{\"a\":1} 7 \"s\" [1] true\n", &h);
	assert_int_equal(r.nvalues, 8);
	assert_true(json_object_is_type(r.values[3], json_type_object));
	assert_true(json_object_is_type(r.values[4], json_type_int));
	assert_true(json_object_is_type(r.values[5], json_type_string));
	assert_true(json_object_is_type(r.values[6], json_type_array));
	assert_true(json_object_is_type(r.values[7], json_type_boolean));
	assert_int_equal(r.nskips, 0);
	rec_free(&r);
	jstream_free(js);
}

/* A top-level null (a NULL json_object in json-c) does not upset the
 * stream: the objects around it still arrive. */
static void test_null_value(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "{\"a\":1} null\n{\"b\":2}\n", &h);
	assert_true(r.nvalues >= 2);
	check_value(&r, 0, "{\"a\":1}");
	check_value(&r, r.nvalues - 1, "{\"b\":2}");
	for (int i = 1; i < r.nvalues - 1; i++)
		assert_null(r.values[i]);
	assert_false(jstream_partial(js));
	rec_free(&r);
	jstream_free(js);
}

/* A number at the end of a chunk may continue in the next one. */
static void test_number_across_chunks(void **state)
{
	(void)state;
	struct jstream *js = js_new(MAXV, MAXD);
	struct jstream_handler h;
	struct rec r;

	rec_init(&r, &h);
	feed_str(js, "12", &h);
	feed_str(js, "34\n", &h);
	assert_int_equal(r.nvalues, 1);
	assert_int_equal(json_object_get_int(r.values[0]), 1234);
	rec_free(&r);
	jstream_free(js);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_object),
		cmocka_unit_test(test_two_objects_no_separator),
		cmocka_unit_test(test_separated_by_whitespace),
		cmocka_unit_test(test_many_in_one_chunk),
		cmocka_unit_test(test_split_every_boundary),
		cmocka_unit_test(test_split_partial_state),
		cmocka_unit_test(test_split_utf8_escapes),
		cmocka_unit_test(test_split_two_objects_three_parts),
		cmocka_unit_test(test_big_object_in_chunks),
		cmocka_unit_test(test_garbage_line_then_object),
		cmocka_unit_test(test_garbage_skip_count),
		cmocka_unit_test(test_garbage_variants),
		cmocka_unit_test(test_object_then_garbage_same_line),
		cmocka_unit_test(test_garbage_no_newline),
		cmocka_unit_test(test_partial_then_garbage),
		cmocka_unit_test(test_garbage_skipped_null),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_too_large_unterminated),
		cmocka_unit_test(test_size_boundary),
		cmocka_unit_test(test_inner_whitespace_counts),
		cmocka_unit_test(test_whitespace_between_not_counted),
		cmocka_unit_test(test_big_object_then_whitespace),
		cmocka_unit_test(test_why_texts),
		cmocka_unit_test(test_garbage_open_string_then_object),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_depth_one),
		cmocka_unit_test(test_depth_huge),
		cmocka_unit_test(test_handler_stop),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_batch_end_once_per_feed),
		cmocka_unit_test(test_non_objects_delivered),
		cmocka_unit_test(test_null_value),
		cmocka_unit_test(test_number_across_chunks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
