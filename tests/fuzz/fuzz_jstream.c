/* fuzz_jstream.c - libFuzzer target: the streaming JSON pull parser
 * (jstream.c) fed arbitrary bytes in an arbitrary chunking, checked
 * against an independent strict RFC 8259 validator, with every value run
 * through the protocol decoder, the encoder and the sanitiser.
 *
 * Input layout (shorter inputs are padded with zero bytes):
 *   byte 0     configuration
 *                bits 0-1  value size limit: 65536, 4096, 256, 64
 *                bits 2-3  depth limit: 8, 8, 1, 3
 *                bits 4-7  unused
 *   bytes 1-4  chunk lengths, used in turn: 0 = all the rest,
 *              1-191 = that many bytes, 192-255 = (b - 191) KiB
 *   bytes 5-   the byte stream
 *
 * Checks, besides the sanitizers:
 * - the oracle: the stream in one chunk must give exactly the values the
 *   validator below finds (same kinds, same order), one skip for each bad
 *   line (resuming after the newline at or after the first bad byte), and
 *   end as it says: with jstream_error set when a value passes the size
 *   limit or nests too deeply, without while only bad lines were skipped
 *   (when a bad value is already past the size limit, either may happen,
 *   and the comparison stops there).  And as jstream_next's contract
 *   asks: the stream with every '\n' replaced by a space and one '\n'
 *   appended gives as many values as the validator finds before the
 *   first bad byte;
 * - jstream never yields after jstream_next said false, nor after an
 *   error, even when fed more; a skip's why reads "N bytes that are not
 *   JSON (...)" with N at least 1 and at most what was fed; a value with
 *   no json_object (a top-level null) comes with a why;
 * - every value is nested no deeper than the limit (an empty innermost []
 *   or {} counts as a level too);
 * - chat and control messages re-encode and decode back to the same fields
 *   (see fuzz_common.c), and the sanitised user and message are safe;
 * - chunking does not matter for clean input: if the chunked run or the
 *   one-chunk run reads it to the end without skipping a byte, so must the
 *   other, with the same values and the same partial state at the end.
 *
 * A top-level null has no json_object: jstream may pass over it, or
 * report it (*value NULL) with a why other than a skip's "N bytes ...".
 *
 * Known bugs, reported and not yet fixed, hide everything behind them; to
 * look past them, set FUZZ_JSTREAM_KNOWN to a comma-separated list of
 *   null     a top-level null gives *value NULL without a why;
 *   scalar   a complete top-level number or literal directly before a byte
 *            jstream's scanner refuses there (one JSON never has outside
 *            strings; after a literal also '.' or '+') is dropped with the
 *            bad line;
 *   newline  a number cut short by the end of its line ("1.\n") makes the
 *            skip take the next line too;
 *   bracket  a bracket where none may be ("{{", "[1 [") that would be one
 *            level too deep ends the stream as "nested too deeply". */
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

static bool known_null, known_scalar, known_newline, known_bracket;

/* ---------------------------------------------------------------------
 * A growing array of event codes:
 *   'o' object, 'a' array, 's' string, 'n' number, 't' true, 'f' false,
 *   'z' null, 'S' a skipped bad line (jstream: *value NULL with a why).
 * ------------------------------------------------------------------- */

struct events {
	char *ev;
	bool *opt;		/* oracle: this value may be missing (known bug) */
	size_t n, cap;
};

static void ev_add(struct events *e, char c, bool opt)
{
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->ev = realloc(e->ev, e->cap);
		e->opt = realloc(e->opt, e->cap * sizeof *e->opt);
		CHECK(e->ev != NULL && e->opt != NULL);
	}
	e->opt[e->n] = opt;
	e->ev[e->n++] = c;
}

static void ev_free(struct events *e)
{
	free(e->ev);
	free(e->opt);
}

/* ---------------------------------------------------------------------
 * The oracle: RFC 8259 values, one after another, as a stream.
 *
 * Values need no separator, except that a number must not be followed
 * by a byte that could go on with it (a digit, '.', 'e', 'E', '+', '-'):
 * "01", "1.5.3" and "1-2" are bad, as they are inside arrays.  A bad byte
 * makes its line bad: the stream goes on after the first newline at or
 * after it.  A top-level number or literal is complete only once a byte
 * follows it (the stream cannot know it ended before).  A value larger
 * than the size limit (from its first byte to
 * its last, or to where the input ends) or one bracket deeper than the
 * depth limit ends the stream.
 * ------------------------------------------------------------------- */

enum res { R_OK, R_BAD, R_DEEP, R_INCOMPLETE };

struct oparse {
	const unsigned char *s;
	size_t len, pos;
	int max_depth;
	bool bad_in_number;	/* the bad byte was found by the number rule */
	int open;		/* containers open at pos */
};

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The bytes JSON has outside strings. */
static bool json_outside(unsigned char c)
{
	return is_ws(c) || (c != '\0' && strchr("{}[],:\"-+.0123456789eEtrufalsn", c) != NULL);
}

static void skip_ws(struct oparse *p)
{
	while (p->pos < p->len && is_ws(p->s[p->pos]))
		p->pos++;
}

static enum res o_value(struct oparse *p, int depth, char *kind);

static enum res o_string(struct oparse *p)
{
	p->pos++;			/* the '"' */
	for (;;) {
		unsigned char c;

		if (p->pos >= p->len)
			return R_INCOMPLETE;
		c = p->s[p->pos];
		if (c < 0x20)
			return R_BAD;
		if (c == '"') {
			p->pos++;
			return R_OK;
		}
		if (c == '\\') {
			if (++p->pos >= p->len)
				return R_INCOMPLETE;
			c = p->s[p->pos];
			if (c == 'u') {
				for (int i = 0; i < 4; i++) {
					if (++p->pos >= p->len)
						return R_INCOMPLETE;
					if (!is_hex(p->s[p->pos]))
						return R_BAD;
				}
			} else if (c == '\0' || !strchr("\"\\/bfnrt", c)) {
				return R_BAD;
			}
		}
		p->pos++;
	}
}

static enum res o_digits(struct oparse *p)
{
	if (p->pos >= p->len)
		return R_INCOMPLETE;
	if (!is_digit(p->s[p->pos])) {
		p->bad_in_number = true;
		return R_BAD;
	}
	while (p->pos < p->len && is_digit(p->s[p->pos]))
		p->pos++;
	return R_OK;
}

static enum res o_number(struct oparse *p)
{
	enum res r;

	if (p->s[p->pos] == '-')
		p->pos++;
	if (p->pos >= p->len)
		return R_INCOMPLETE;
	if (p->s[p->pos] == '0')
		p->pos++;
	else if ((r = o_digits(p)) != R_OK)
		return r;
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		if ((r = o_digits(p)) != R_OK)
			return r;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if ((r = o_digits(p)) != R_OK)
			return r;
	}
	/* The end of the input might have been more digits. */
	if (p->pos >= p->len)
		return R_INCOMPLETE;
	if (strchr("0123456789.eE+-", p->s[p->pos]) != NULL && p->s[p->pos] != '\0') {
		p->bad_in_number = true;
		return R_BAD;
	}
	return R_OK;
}

static enum res o_word(struct oparse *p, const char *w)
{
	for (; *w; w++, p->pos++) {
		if (p->pos >= p->len)
			return R_INCOMPLETE;
		if (p->s[p->pos] != (unsigned char)*w)
			return R_BAD;
	}
	return R_OK;
}

static enum res o_container(struct oparse *p, int depth, bool object)
{
	char close = object ? '}' : ']', kind;
	enum res r;

	if (depth + 1 > p->max_depth)
		return R_DEEP;
	p->open++;
	p->pos++;
	skip_ws(p);
	if (p->pos >= p->len)
		return R_INCOMPLETE;
	if (p->s[p->pos] == (unsigned char)close) {
		p->pos++;
		p->open--;
		return R_OK;
	}
	for (;;) {
		if (object) {
			if (p->pos >= p->len)
				return R_INCOMPLETE;
			if (p->s[p->pos] != '"')
				return R_BAD;
			if ((r = o_string(p)) != R_OK)
				return r;
			skip_ws(p);
			if (p->pos >= p->len)
				return R_INCOMPLETE;
			if (p->s[p->pos] != ':')
				return R_BAD;
			p->pos++;
			skip_ws(p);
		}
		if ((r = o_value(p, depth + 1, &kind)) != R_OK)
			return r;
		skip_ws(p);
		if (p->pos >= p->len)
			return R_INCOMPLETE;
		if (p->s[p->pos] == (unsigned char)close) {
			p->pos++;
			p->open--;
			return R_OK;
		}
		if (p->s[p->pos] != ',')
			return R_BAD;
		p->pos++;
		skip_ws(p);
	}
}

/* A value at p->pos (no whitespace before it); *kind its event code. */
static enum res o_value(struct oparse *p, int depth, char *kind)
{
	if (p->pos >= p->len)
		return R_INCOMPLETE;
	switch (p->s[p->pos]) {
	case '{':
		*kind = 'o';
		return o_container(p, depth, true);
	case '[':
		*kind = 'a';
		return o_container(p, depth, false);
	case '"':
		*kind = 's';
		return o_string(p);
	case 't':
		*kind = 't';
		return o_word(p, "true");
	case 'f':
		*kind = 'f';
		return o_word(p, "false");
	case 'n':
		*kind = 'z';
		return o_word(p, "null");
	default:
		*kind = 'n';
		if (p->s[p->pos] == '-' || is_digit(p->s[p->pos]))
			return o_number(p);
		return R_BAD;
	}
}

enum end { END_CLEAN, END_ERROR, END_EITHER };

/* The events the whole of s[0..len) must give, and how it must end. */
static enum end oracle(const unsigned char *s, size_t len, size_t max_value,
		       int max_depth, struct events *out)
{
	struct oparse p = { s, len, 0, max_depth, false, 0 };

	for (;;) {
		size_t start;
		char kind = '?';
		enum res r;

		skip_ws(&p);
		if (p.pos >= len)
			return END_CLEAN;
		start = p.pos;
		p.bad_in_number = false;
		p.open = 0;
		r = o_value(&p, 0, &kind);
		/* A top-level literal at the very end may still be followed by
		 * anything: like a number, it waits for the next byte. */
		if (r == R_OK && strchr("tfz", kind) && p.pos == len)
			r = R_INCOMPLETE;
		if (r == R_OK) {
			/* A scalar right before a byte JSON never has
			 * outside strings: see "scalar" above. */
			bool opt = known_scalar && strchr("ntfz", kind) && p.pos < len &&
				   (!json_outside(s[p.pos]) ||
				    (kind != 'n' && (s[p.pos] == '.' || s[p.pos] == '+')));

			if (p.pos - start > max_value)
				return END_ERROR;
			ev_add(out, kind, opt);
			continue;
		}
		if (r == R_INCOMPLETE)
			return p.pos - start > max_value ? END_ERROR : END_CLEAN;
		if (r == R_DEEP)
			return END_ERROR;
		/* R_BAD at p.pos */
		if (p.pos - start > max_value)
			return END_EITHER;
		if (known_bracket && (s[p.pos] == '[' || s[p.pos] == '{') &&
		    p.open + 1 > max_depth)
			return END_EITHER;
		ev_add(out, 'S', false);
		{
			const unsigned char *nl = memchr(s + p.pos, '\n', len - p.pos);

			if (nl && known_newline && p.bad_in_number && *nl == '\n' &&
			    nl == s + p.pos)
				nl = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - s));
			if (!nl)
				return END_CLEAN;
			p.pos = (size_t)(nl - s) + 1;
		}
	}
}

/* ---------------------------------------------------------------------
 * Running jstream
 * ------------------------------------------------------------------- */

struct run {
	bool check;		/* decode and round-trip the values */
	int max_depth;
	size_t fed;		/* bytes fed so far */
	unsigned nvalues;
	unsigned nskips;
	struct events ev;
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

static char kind_of(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_object:
		return 'o';
	case json_type_array:
		return 'a';
	case json_type_string:
		return 's';
	case json_type_int:
	case json_type_double:
		return 'n';
	case json_type_boolean:
		return json_object_get_boolean(v) ? 't' : 'f';
	default:
		return '?';
	}
}

static void on_value(struct run *r, struct json_object *obj)
{
	size_t len = 0;
	const char *s;

	CHECK(depth_of(obj) <= r->max_depth);
	s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
	CHECK(s != NULL);
	log_append(r, s, len);
	ev_add(&r->ev, kind_of(obj), false);
	if (r->check)
		check_message(obj);
	r->nvalues++;
}

static void on_skipped(struct run *r, const char *why)
{
	size_t n = 0;

	if (why == NULL) {
		/* A top-level null, with *why left as it was. */
		CHECK(known_null);
		ev_add(&r->ev, 'Z', false);
		return;
	}
	CHECK(why[0] != '\0');
	if (sscanf(why, "%zu bytes that are not JSON (", &n) != 1) {
		/* Not bytes skipped: the account of a value json-c has no
		 * object for (a null). */
		ev_add(&r->ev, 'Z', false);
		return;
	}
	CHECK(n >= 1 && n <= r->fed);
	CHECK(why[strlen(why) - 1] == ')');
	ev_add(&r->ev, 'S', false);
	r->nskips++;
}

/* Feeds payload[0..len) in chunks cut by pattern (NULL: one chunk);
 * returns whether the stream ended with an error. */
static bool feed(struct run *r, const uint8_t *payload, size_t len,
		 const uint8_t pattern[4], size_t max_value, bool *partial)
{
	struct jstream *js = jstream_new(max_value, r->max_depth);
	struct json_object *v;
	const char *why;
	size_t off = 0, k = 0;
	bool ended = false;

	CHECK(js != NULL);
	CHECK(!jstream_next(js, &v, &why));		/* nothing fed yet */
	while (off < len) {
		size_t n = len - off;

		if (pattern) {
			uint8_t p = pattern[k++ % 4];

			if (p != 0)
				n = p < 192 ? p : (size_t)(p - 191) * 1024;
			if (n > len - off)
				n = len - off;
		}
		jstream_feed(js, (const char *)payload + off, n);
		r->fed += n;
		for (;;) {
			why = NULL;
			v = (struct json_object *)&v;	/* must be set */
			if (!jstream_next(js, &v, &why)) {
				CHECK(v == NULL);
				break;
			}
			if (v)
				on_value(r, v);
			else
				on_skipped(r, why);
			json_object_put(v);
		}
		/* Used up: nothing more until the next feed. */
		CHECK(!jstream_next(js, &v, &why));
		off += n;
		if (jstream_error(js)) {
			const char *e = jstream_error(js);
			char large[64];

			snprintf(large, sizeof large, "object larger than %zu bytes", max_value);
			CHECK(strcmp(e, large) == 0 || strcmp(e, "object nested too deeply") == 0);
			/* Ended for good: more input gives nothing. */
			jstream_feed(js, "{\"a\":1}\n", 8);
			CHECK(!jstream_next(js, &v, &why));
			CHECK(jstream_error(js) != NULL);
			ended = true;
			break;
		}
	}
	*partial = jstream_partial(js);
	jstream_free(js);
	return ended;
}

static void dump(const char *what, const struct events *e)
{
	fprintf(stderr, "%s (%zu): %.*s%s\n", what, e->n, e->n > 200 ? 200 : (int)e->n,
		e->ev ? e->ev : "", e->n > 200 ? "..." : "");
}

/* jstream's events against the oracle's: 'S' a skip, 'Z' a null told
 * with a why that is not a skip's; a null may also be passed over.
 * On a mismatch both are printed: o object, a array, s string, n number,
 * t true, f false, z null, S skipped line. */
static void compare(const struct events *got, bool ended, const struct events *want,
		    enum end end)
{
	static const char *const ends[] = { "clean", "error", "either" };
	size_t i = 0, k;
	bool ok = true;

	for (k = 0; k < got->n && ok; k++) {
		char g = got->ev[k] == 'Z' ? 'z' : got->ev[k];

		/* Nulls passed over in silence, values a known bug drops. */
		while (i < want->n && want->ev[i] != g && (want->ev[i] == 'z' || want->opt[i]))
			i++;
		if (i == want->n && end == END_EITHER)
			return;		/* past where the oracle can tell */
		ok = i < want->n && want->ev[i] == g;
		i++;
	}
	for (; ok && i < want->n; i++)
		ok = want->ev[i] == 'z' || want->opt[i];
	if (ok && end == END_ERROR)
		ok = ended;
	else if (ok && end == END_CLEAN)
		ok = !ended;
	if (!ok) {
		dump("jstream", got);
		fprintf(stderr, "jstream ended %s\n", ended ? "with an error" : "without");
		dump("oracle ", want);
		fprintf(stderr, "oracle ends %s\n", ends[end]);
	}
	CHECK(ok);
}

static void parse_known(void)
{
	static bool done;
	const char *k;

	if (done)
		return;
	done = true;
	k = getenv("FUZZ_JSTREAM_KNOWN");
	if (!k)
		return;
	known_null = strstr(k, "null") != NULL;
	known_scalar = strstr(k, "scalar") != NULL;
	known_newline = strstr(k, "newline") != NULL;
	known_bracket = strstr(k, "bracket") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[HEADER] = { 0 };
	const uint8_t *payload = data + (size < HEADER ? size : HEADER);
	size_t len = size < HEADER ? 0 : size - HEADER;
	struct run split = { 0 }, whole = { 0 }, line = { 0 };
	struct events want = { 0 }, want_line = { 0 };
	size_t max_value;
	bool partial_split, partial_whole, partial_line;
	bool end_split, end_whole, end_line;
	enum end end;
	uint8_t *one;

	parse_known();
	memcpy(hdr, data, size < HEADER ? size : HEADER);
	max_value = max_values[hdr[0] & 3];
	split.max_depth = whole.max_depth = line.max_depth = max_depths[(hdr[0] >> 2) & 3];
	split.check = true;

	end_split = feed(&split, payload, len, hdr + 1, max_value, &partial_split);
	end_whole = feed(&whole, payload, len, NULL, max_value, &partial_whole);

	/* The stream in one chunk, against the oracle. */
	end = oracle(payload, len, max_value, whole.max_depth, &want);
	compare(&whole.ev, end_whole, &want, end);

	/* One line: every '\n' a space, then one '\n'.  As many values as
	 * the oracle finds before the first bad byte (or limit). */
	one = malloc(len + 1);
	CHECK(one != NULL);
	for (size_t i = 0; i < len; i++)
		one[i] = payload[i] == '\n' ? ' ' : payload[i];
	one[len] = '\n';
	end_line = feed(&line, one, len + 1, NULL, max_value, &partial_line);
	end = oracle(one, len + 1, max_value, line.max_depth, &want_line);
	compare(&line.ev, end_line, &want_line, end);
	{
		size_t lo = 0, hi = 0, got = 0, i;

		for (i = 0; i < want_line.n && want_line.ev[i] != 'S'; i++) {
			if (want_line.ev[i] == 'z')
				continue;	/* json-c has no object for null */
			hi++;
			lo += !want_line.opt[i];
		}
		for (i = 0; i < line.ev.n; i++)
			got += line.ev.ev[i] != 'S' && line.ev.ev[i] != 'Z';
		if (end != END_EITHER)
			CHECK(got >= lo && got <= hi);
	}
	free(one);

	/* A stream read to the end without a skip is clean JSON: read in
	 * any other pieces it is clean too. */
	{
		bool clean_split = split.nskips == 0 && !end_split;
		bool clean_whole = whole.nskips == 0 && !end_whole;

		if (clean_split || clean_whole) {
			CHECK(clean_split && clean_whole);
			CHECK(partial_split == partial_whole);
		}
		if (split.nskips == 0 && whole.nskips == 0 && !end_split && !end_whole) {
			CHECK(split.nvalues == whole.nvalues);
			CHECK(split.loglen == whole.loglen);
			CHECK(split.loglen == 0 || memcmp(split.log, whole.log, split.loglen) == 0);
		}
	}
	free(split.log);
	free(whole.log);
	free(line.log);
	ev_free(&split.ev);
	ev_free(&whole.ev);
	ev_free(&line.ev);
	ev_free(&want);
	ev_free(&want_line);
	return 0;
}
