/* fuzz_common.c - checks shared by the libFuzzer targets.
 *
 * Linked into every target.  A failed check prints what broke and aborts,
 * which libFuzzer reports as a crash and saves the input. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "jstream.h"
#include "msg.h"
#include "proto.h"
#include "sanitize.h"

/* The targets repeat these prototypes (the fuzz directory has no header). */
_Noreturn void fuzz_fail(const char *what, const char *file, int line);
void fuzz_check_safe_text(const char *out, size_t n, size_t outsz);
void fuzz_check_sanitize_full(const char *in, size_t len);
void fuzz_check_chat_roundtrip(const struct proto_msg *pm);
void fuzz_check_control_roundtrip(const struct proto_msg *pm);

#define CHECK(c) ((c) ? (void)0 : fuzz_fail(#c, __FILE__, __LINE__))

_Noreturn void fuzz_fail(const char *what, const char *file, int line)
{
	fprintf(stderr, "\n*** fuzz check failed: %s (%s:%d)\n", what, file, line);
	abort();
}

/* out[0..n] is what sanitize_text wrote into an outsz-byte buffer: it must
 * be NUL-terminated, fit, and hold nothing a terminal would act on. */
void fuzz_check_safe_text(const char *out, size_t n, size_t outsz)
{
	size_t i;

	CHECK(n < outsz);
	CHECK(out[n] == '\0');
	CHECK(strlen(out) == n);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		CHECK(c >= 0x20 && c != 0x7f);
		/* C1 controls U+0080-U+009F are c2 80 - c2 9f. */
		if (c == 0xc2 && i + 1 < n)
			CHECK((unsigned char)out[i + 1] < 0x80 ||
			      (unsigned char)out[i + 1] > 0x9f);
	}
	CHECK(utf8_valid(out, n));
}

/* Whether in[0..len) is valid UTF-8 with no C0, DEL or C1 control: the
 * text sanitize_text must pass through unchanged. */
static bool plain_text(const char *in, size_t len)
{
	size_t i;

	if (!utf8_valid(in, len))
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == 0xc2 && i + 1 < len &&
		    (unsigned char)in[i + 1] >= 0x80 &&
		    (unsigned char)in[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

/* Sanitizes in[0..len) into a buffer of the documented worst-case size:
 * the result is safe, and equals the input exactly when the input is plain
 * text (every escape makes the output longer, so any escape shows). */
void fuzz_check_sanitize_full(const char *in, size_t len)
{
	size_t outsz = SANITIZE_MAX(len), n;
	char *out = malloc(outsz);

	CHECK(out != NULL);
	n = sanitize_text(in, len, out, outsz);
	fuzz_check_safe_text(out, n, outsz);
	if (plain_text(in, len))
		CHECK(n == len && memcmp(out, in, len) == 0);
	else
		CHECK(n > len);
	free(out);
}

/* Collects the values a jstream delivers. */
struct collect {
	int nvalues;
	int nskips;
	struct proto_msg pm;
	int decode_rc;
	struct json_object *obj;	/* our reference to the first value */
};

static int collect_value(void *arg, struct json_object *obj)
{
	struct collect *c = arg;
	const char *why;

	if (c->nvalues++ == 0) {
		c->obj = json_object_get(obj);
		c->decode_rc = proto_decode(c->obj, &c->pm, &why);
	}
	return 0;
}

static void collect_skipped(void *arg, const char *why, size_t nbytes)
{
	struct collect *c = arg;

	(void)why;
	(void)nbytes;
	c->nskips++;
}

/* An encoded message m must be one line, and what a receiver's jstream (the
 * real limits) makes of it must decode to a message: returns the decoder's
 * view in *c (caller puts c->obj). */
static void receive(const struct msg *m, struct collect *c)
{
	struct jstream_handler h = { collect_value, collect_skipped, c, NULL };
	struct jstream *js = jstream_new(PROTO_MAX_OBJECT, PROTO_MAX_DEPTH);
	const char *why = NULL;
	size_t i;

	CHECK(m->len >= 3);
	CHECK(m->len - 1 <= PROTO_MAX_OBJECT);
	CHECK(m->data[0] == '{');
	CHECK(m->data[m->len - 2] == '}');
	CHECK(m->data[m->len - 1] == '\n');
	/* JSON escapes every C0 control, so the only raw one is the end. */
	for (i = 0; i + 1 < m->len; i++)
		CHECK((unsigned char)m->data[i] >= 0x20);

	memset(c, 0, sizeof *c);
	CHECK(js != NULL);
	CHECK(jstream_feed(js, m->data, m->len, &h, &why) == 0);
	CHECK(!jstream_partial(js));
	CHECK(c->nvalues == 1);
	CHECK(c->nskips == 0);
	CHECK(c->decode_rc == 0);
	jstream_free(js);
}

/* A decoded chat message re-encodes (unless too large), and the encoding
 * received again gives the same fields, byte for byte. */
void fuzz_check_chat_roundtrip(const struct proto_msg *pm)
{
	struct msg *m;
	struct collect c;
	char head[48];
	int hn;

	CHECK(pm->type == PROTO_CHAT);
	CHECK(pm->seq >= 0);
	CHECK(pm->user != NULL && pm->text != NULL);
	CHECK(utf8_valid(pm->user, pm->user_len));
	CHECK(utf8_valid(pm->text, pm->text_len));
	fuzz_check_sanitize_full(pm->user, pm->user_len);
	fuzz_check_sanitize_full(pm->text, pm->text_len);

	errno = 0;
	m = proto_encode_chat(pm->seq, pm->user, pm->user_len,
			      pm->text, pm->text_len);
	if (!m) {
		/* Only refused for size: each byte escapes to at most 6
		 * ("\u001f"), the rest of the object is under 70 bytes. */
		CHECK(errno == EMSGSIZE);
		CHECK(6 * (pm->user_len + pm->text_len) + 70 > PROTO_MAX_OBJECT);
		return;
	}
	hn = snprintf(head, sizeof head, "{\"seq\": %lld, \"user\": \"",
		      (long long)pm->seq);
	CHECK(hn > 0 && (size_t)hn < sizeof head);
	CHECK(m->len > (size_t)hn && memcmp(m->data, head, (size_t)hn) == 0);

	receive(m, &c);
	CHECK(c.pm.type == PROTO_CHAT);
	CHECK(c.pm.seq == pm->seq);
	CHECK(c.pm.user_len == pm->user_len);
	CHECK(memcmp(c.pm.user, pm->user, pm->user_len) == 0);
	CHECK(c.pm.text_len == pm->text_len);
	CHECK(memcmp(c.pm.text, pm->text, pm->text_len) == 0);
	json_object_put(c.obj);
	msg_unref(m);
}

/* A decoded control message re-encodes, and receiving that gives the same
 * operation and client (up to the first NUL: the encoder takes a C
 * string). */
void fuzz_check_control_roundtrip(const struct proto_msg *pm)
{
	struct msg *m;
	struct collect c;
	size_t clen;

	CHECK(pm->type == PROTO_SUBSCRIBE || pm->type == PROTO_UNSUBSCRIBE);
	CHECK(pm->client != NULL);
	CHECK(utf8_valid(pm->client, pm->client_len));
	clen = strlen(pm->client);
	CHECK(clen <= pm->client_len);

	errno = 0;
	m = proto_encode_control(pm->type, pm->client);
	if (!m) {
		CHECK(errno == EMSGSIZE);
		CHECK(6 * clen + 70 > PROTO_MAX_OBJECT);
		return;
	}
	receive(m, &c);
	CHECK(c.pm.type == pm->type);
	CHECK(c.pm.client_len == clen);
	CHECK(memcmp(c.pm.client, pm->client, clen) == 0);
	json_object_put(c.obj);
	msg_unref(m);
}
