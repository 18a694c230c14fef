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
size_t fuzz_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp);
bool fuzz_is_invisible(uint32_t cp);
bool fuzz_is_pictographic(uint32_t cp);
void fuzz_check_safe_text(const char *out, size_t n, size_t outsz);
void fuzz_check_sanitize_full(const char *in, size_t len);
void fuzz_check_chat_roundtrip(const struct proto_msg *pm);
void fuzz_check_chat_relayable(const struct proto_msg *pm);
void fuzz_check_control_roundtrip(const struct proto_msg *pm);

#define CHECK(c) ((c) ? (void)0 : fuzz_fail(#c, __FILE__, __LINE__))

_Noreturn void fuzz_fail(const char *what, const char *file, int line)
{
	fprintf(stderr, "\n*** fuzz check failed: %s (%s:%d)\n", what, file, line);
	abort();
}

/* Length of the well-formed UTF-8 sequence at s[0..len) per the Unicode
 * standard's table 3-7 (its code point in *cp), or 0. */
size_t fuzz_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;
	uint32_t c;

	if (len == 0)
		return 0;
	if (s[0] <= 0x7f) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, c = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, c = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, c = s[0] & 0x07u;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 1; i < n; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
		c = (c << 6) | (s[i] & 0x3fu);
	}
	*cp = c;
	return n;
}

/* The characters sanitize.h lists as invisible or direction-changing. */
bool fuzz_is_invisible(uint32_t cp)
{
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
	       (cp >= 0x200b && cp <= 0x200f) || cp == 0xfeff || cp == 0x2028 ||
	       cp == 0x2029 || cp == 0x061c;
}

/* What sanitize.c counts as pictographic (sanitize.h says only "two
 * pictographic characters"; the ranges are the implementation's choice,
 * roughly Unicode's Extended_Pictographic, and the emoji selector). */
bool fuzz_is_pictographic(uint32_t cp)
{
	return (cp >= 0x1f000 && cp <= 0x1faff) || (cp >= 0x2600 && cp <= 0x27bf) ||
	       (cp >= 0x2300 && cp <= 0x23ff) || (cp >= 0x2b00 && cp <= 0x2bff) ||
	       cp == 0xfe0f || cp == 0x00a9 || cp == 0x00ae;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
}

/* Whether valid UTF-8 text s[0..len) holds nothing a terminal would act
 * on or hide: no C0, DEL or C1 control, no invisible character but a ZWJ
 * between two pictographs. */
static bool harmless(const unsigned char *s, size_t len)
{
	size_t i = 0, n;
	uint32_t cp, prev = 0, next;

	while (i < len) {
		n = fuzz_utf8_seq(s + i, len - i, &cp);
		if (n == 0 || is_control(cp))
			return false;
		if (fuzz_is_invisible(cp)) {
			if (cp != 0x200d || !fuzz_is_pictographic(prev) ||
			    fuzz_utf8_seq(s + i + n, len - i - n, &next) == 0 ||
			    !fuzz_is_pictographic(next))
				return false;
		}
		prev = cp;
		i += n;
	}
	return true;
}

/* out[0..n] is what sanitize_text wrote into an outsz-byte buffer: it must
 * be NUL-terminated, fit, and hold nothing a terminal would act on, nor
 * an invisible character (but a ZWJ between pictographs). */
void fuzz_check_safe_text(const char *out, size_t n, size_t outsz)
{
	CHECK(n < outsz);
	CHECK(out[n] == '\0');
	CHECK(strlen(out) == n);
	CHECK(utf8_valid(out, n));
	CHECK(harmless((const unsigned char *)out, n));
}

/* Sanitizes in[0..len) into a buffer of the documented worst-case size:
 * the result is safe, and equals the input exactly when the input is
 * harmless valid UTF-8 (every escape makes the output longer, so any
 * escape shows); sanitize_needed says the same. */
void fuzz_check_sanitize_full(const char *in, size_t len)
{
	size_t outsz = SANITIZE_MAX(len), n;
	char *out = malloc(outsz);
	bool plain = harmless((const unsigned char *)in, len);

	CHECK(out != NULL);
	n = sanitize_text(in, len, out, outsz);
	fuzz_check_safe_text(out, n, outsz);
	if (plain)
		CHECK(n == len && memcmp(out, in, len) == 0);
	else
		CHECK(n > len);
	if (utf8_valid(in, len))
		CHECK(sanitize_needed(in, len) == !plain);
	free(out);
}

/* The decoder's view of the one value a receiver's jstream makes of m. */
struct collect {
	struct proto_msg pm;
	struct json_object *obj;	/* the caller puts it */
};

/* An encoded message m must be one line, and what a receiver's jstream (the
 * real limits) makes of it must be one value that decodes. */
static void receive(const struct msg *m, struct collect *c)
{
	struct jstream *js = jstream_new(PROTO_MAX_OBJECT, PROTO_MAX_DEPTH);
	struct json_object *v;
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
	jstream_feed(js, m->data, m->len);
	CHECK(jstream_next(js, &v, &why));
	CHECK(v != NULL);
	c->obj = v;
	CHECK(!jstream_next(js, &v, &why));
	CHECK(jstream_error(js) == NULL);
	CHECK(!jstream_partial(js));
	CHECK(proto_decode(c->obj, &c->pm, &why) == 0);
	jstream_free(js);
}

/* m must be in one of the two layouts proto.h documents: spaced, or
 * compact when the spaced one would pass PROTO_MAX_OBJECT. */
static void check_layout(const struct msg *m, int64_t seq)
{
	char head[48], chead[48];
	int hn = snprintf(head, sizeof head, "{\"seq\": %lld, \"user\": \"", (long long)seq);
	int cn = snprintf(chead, sizeof chead, "{\"seq\":%lld,\"user\":\"", (long long)seq);

	CHECK(hn > 0 && (size_t)hn < sizeof head && cn > 0 && (size_t)cn < sizeof chead);
	if (m->len > (size_t)hn && memcmp(m->data, head, (size_t)hn) == 0)
		return;
	CHECK(m->len > (size_t)cn && memcmp(m->data, chead, (size_t)cn) == 0);
	/* Compact only when spaced (5 bytes more) would not fit. */
	CHECK(m->len - 1 + 5 > PROTO_MAX_OBJECT);
}

static void chat_roundtrip(const struct proto_msg *pm, bool must_fit)
{
	struct msg *m;
	struct collect c;

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
		CHECK(!must_fit);
		CHECK(6 * (pm->user_len + pm->text_len) + 70 > PROTO_MAX_OBJECT);
		return;
	}
	check_layout(m, pm->seq);
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

/* A decoded chat message re-encodes (unless too large), and the encoding
 * received again gives the same fields, byte for byte. */
void fuzz_check_chat_roundtrip(const struct proto_msg *pm)
{
	chat_roundtrip(pm, false);
}

/* The same for a message that came as strict JSON of at most
 * PROTO_MAX_OBJECT bytes (what the relay accepts): it must re-encode,
 * never EMSGSIZE (proto.h: whatever the relay accepted, it can relay). */
void fuzz_check_chat_relayable(const struct proto_msg *pm)
{
	chat_roundtrip(pm, true);
}

/* A decoded control message re-encodes, and receiving that gives the same
 * operation and client (up to the first NUL: the encoder takes a C
 * string), and for "dropped" the same reason. */
void fuzz_check_control_roundtrip(const struct proto_msg *pm)
{
	struct msg *m;
	struct collect c;
	size_t clen;

	CHECK(pm->type == PROTO_SUBSCRIBE || pm->type == PROTO_UNSUBSCRIBE ||
	      pm->type == PROTO_DROPPED);
	CHECK(pm->client != NULL);
	CHECK(utf8_valid(pm->client, pm->client_len));
	clen = strlen(pm->client);
	CHECK(clen <= pm->client_len);
	CHECK(pm->reason != NULL);
	CHECK(pm->type == PROTO_DROPPED || pm->reason[0] == '\0');

	errno = 0;
	m = pm->type == PROTO_DROPPED ? proto_encode_dropped(pm->client, pm->reason)
				       : proto_encode_control(pm->type, pm->client);
	if (!m) {
		CHECK(errno == EMSGSIZE);
		CHECK(6 * (clen + strlen(pm->reason)) + 80 > PROTO_MAX_OBJECT);
		return;
	}
	receive(m, &c);
	CHECK(c.pm.type == pm->type);
	CHECK(c.pm.client_len == clen);
	CHECK(memcmp(c.pm.client, pm->client, clen) == 0);
	if (pm->type == PROTO_DROPPED)
		CHECK(strcmp(c.pm.reason, pm->reason) == 0);
	json_object_put(c.obj);
	msg_unref(m);
}
