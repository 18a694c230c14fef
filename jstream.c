/* jstream.c - JSON values from a byte stream, with json-c's tokener.
 *
 * The tokener keeps its own state across calls but has no size limit, so
 * the bytes of the value in progress are counted here.  Whitespace between
 * values is skipped here rather than fed to the tokener, so that it never
 * counts toward a value's size.
 *
 * json-c, even in its strict mode, takes more than JSON: NUL bytes, raw
 * control characters and newlines inside strings, NaN and Infinity, "1.",
 * and, outside strict mode, comments (a NUL inside one leaks memory) and
 * single quotes.  So a small scanner runs ahead of the tokener and stops it
 * before any byte RFC 8259 forbids there.  It also counts nesting, so the
 * depth limit is exact, and follows numbers, because json-c resumes a
 * number cut between two reads as if at its start. */
#include "jstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Why the scanner stopped. */
enum stop { STOP_END, STOP_BAD_BYTE, STOP_CONTROL_IN_STRING, STOP_TOO_DEEP };

/* Where a number is: after its sign, its integer part (which began with
 * 0, or not), its '.', its fraction, its 'e', the exponent's sign or its
 * digits. */
enum num {
	NUM_NONE, NUM_SIGN, NUM_ZERO, NUM_INT, NUM_DOT, NUM_FRAC,
	NUM_E, NUM_ESIGN, NUM_EXP
};

/* Lexical state at a position of the stream. */
struct lex {
	bool in_string;
	bool escaped;		/* in a string, right after a backslash */
	enum num num;
	int depth;
};

struct jstream {
	struct json_tokener *tok;
	size_t max_value;
	int max_depth;
	size_t used;		/* bytes of the value in progress */
	bool partial;
	struct lex at;		/* the state where the next byte goes */
	/* What was fed, and how far it is used. */
	const char *buf;
	size_t len, off;
	/* One scan serves every value in the chunk. */
	bool scanned;
	size_t stop;
	struct lex at_stop;
	enum stop stop_why;
	const char *error;
	char why[128];
};

struct jstream *jstream_new(size_t max_value, int max_depth)
{
	struct jstream *js = calloc(1, sizeof *js);

	if (!js)
		return NULL;
	/* The scanner enforces max_depth; json-c's own limit (which counts
	 * the top level, and empty containers differently) is a backstop. */
	js->tok = json_tokener_new_ex(max_depth + 2);
	if (!js->tok) {
		free(js);
		return NULL;
	}
	json_tokener_set_flags(js->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	js->max_value = max_value;
	js->max_depth = max_depth;
	return js;
}

void jstream_free(struct jstream *js)
{
	if (!js)
		return;
	json_tokener_free(js->tok);
	free(js);
}

bool jstream_partial(const struct jstream *js)
{
	return js->partial;
}

const char *jstream_error(const struct jstream *js)
{
	return js->error;
}

void jstream_feed(struct jstream *js, const char *buf, size_t len)
{
	js->buf = buf;
	js->len = len;
	js->off = 0;
	js->scanned = false;
}

static void restart(struct jstream *js)
{
	json_tokener_reset(js->tok);
	js->used = 0;
	js->partial = false;
	memset(&js->at, 0, sizeof js->at);
}

void jstream_reset(struct jstream *js)
{
	restart(js);
	js->error = NULL;
	js->len = js->off = 0;
	js->scanned = false;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Follows one byte through a number; false when JSON forbids it there.
 * A byte that ends the number is then looked at as any other. */
static bool number_step(struct lex *lx, char c)
{
	static const enum num after_digit[] = {
		[NUM_NONE] = NUM_INT, [NUM_SIGN] = NUM_INT, [NUM_INT] = NUM_INT,
		[NUM_DOT] = NUM_FRAC, [NUM_FRAC] = NUM_FRAC, [NUM_E] = NUM_EXP,
		[NUM_ESIGN] = NUM_EXP, [NUM_EXP] = NUM_EXP,
	};

	if (is_digit(c)) {
		if (lx->num == NUM_ZERO)
			return false;		/* a leading zero */
		lx->num = c == '0' && (lx->num == NUM_NONE || lx->num == NUM_SIGN)
				  ? NUM_ZERO : after_digit[lx->num];
		return true;
	}
	switch (c) {
	case '-':
		if (lx->num != NUM_NONE && lx->num != NUM_E)
			return false;
		lx->num = lx->num == NUM_E ? NUM_ESIGN : NUM_SIGN;
		return true;
	case '+':
		if (lx->num != NUM_E)
			return false;
		lx->num = NUM_ESIGN;
		return true;
	case '.':
		if (lx->num != NUM_INT && lx->num != NUM_ZERO)
			return false;
		lx->num = NUM_DOT;
		return true;
	case 'e':
	case 'E':
		if (lx->num == NUM_NONE)
			return true;		/* in true or false */
		if (lx->num != NUM_INT && lx->num != NUM_ZERO && lx->num != NUM_FRAC)
			return false;
		lx->num = NUM_E;
		return true;
	default:
		/* Anything else ends a number, which must be complete. */
		if (lx->num == NUM_SIGN || lx->num == NUM_DOT || lx->num == NUM_E ||
		    lx->num == NUM_ESIGN)
			return false;
		lx->num = NUM_NONE;
		return true;
	}
}

/* Outside strings JSON has structure, numbers, true, false and null. */
static const bool outside[256] = {
	[' '] = true, ['\t'] = true, ['\r'] = true, ['\n'] = true,
	['{'] = true, ['}'] = true, ['['] = true, [']'] = true, [','] = true, [':'] = true,
	['-'] = true, ['+'] = true, ['.'] = true, ['"'] = true,
	['0'] = true, ['1'] = true, ['2'] = true, ['3'] = true, ['4'] = true,
	['5'] = true, ['6'] = true, ['7'] = true, ['8'] = true, ['9'] = true,
	['e'] = true, ['E'] = true, ['t'] = true, ['r'] = true, ['u'] = true,
	['f'] = true, ['a'] = true, ['l'] = true, ['s'] = true, ['n'] = true,
};

/* One byte of a string; false to stop with *why. */
static bool string_step(struct lex *lx, char c, enum stop *why)
{
	if ((unsigned char)c < 0x20) {
		*why = STOP_CONTROL_IN_STRING;
		return false;
	}
	if (lx->escaped)
		lx->escaped = false;
	else if (c == '\\')
		lx->escaped = true;
	else if (c == '"')
		lx->in_string = false;
	return true;
}

/* Runs the scanner over buf[from..len) from state *lx; returns where it
 * stopped (len at the end) with *lx the state there and *why the reason. */
static size_t scan(struct lex *lx, const char *buf, size_t from, size_t len,
		   int max_depth, enum stop *why)
{
	size_t i;

	for (i = from; i < len; i++) {
		char c = buf[i];

		if (lx->in_string) {
			/* Most of a message is plain text: step over it fast. */
			while (!lx->escaped && i < len && (unsigned char)buf[i] >= 0x20 &&
			       buf[i] != '"' && buf[i] != '\\')
				i++;
			if (i == len)
				break;
			if (!string_step(lx, buf[i], why))
				return i;
			continue;
		}
		if (!outside[(unsigned char)c] || !number_step(lx, c)) {
			*why = STOP_BAD_BYTE;
			return i;
		}
		if (c == '"') {
			lx->in_string = true;
		} else if (c == '[' || c == '{') {
			if (++lx->depth > max_depth) {
				*why = STOP_TOO_DEEP;
				return i;
			}
		} else if ((c == ']' || c == '}') && lx->depth > 0) {
			lx->depth--;
		}
	}
	*why = STOP_END;
	return len;
}

/* The value's size without the whitespace json-c reads past its end. */
static size_t trimmed(const char *buf, size_t len)
{
	while (len > 0 && is_space(buf[len - 1]))
		len--;
	return len;
}

/* Drops a bad line: from `from` to just past the next newline, or to the
 * end of what has arrived; `start` is where the bad value began.  Sets
 * *why and returns true (what jstream_next then returns). */
static bool skip_line(struct jstream *js, size_t start, size_t from,
		      const char *what, const char **why)
{
	const char *nl = from < js->len ? memchr(js->buf + from, '\n', js->len - from) : NULL;
	size_t end = nl ? (size_t)(nl - js->buf) + 1 : js->len;

	snprintf(js->why, sizeof js->why, "%zu bytes that are not JSON (%s)",
		 js->used + end - start, what);
	restart(js);
	js->off = end;
	js->scanned = false;
	*why = js->why;
	return true;
}

static bool fail(struct jstream *js, const char *error)
{
	restart(js);
	if (strcmp(error, "too large") == 0) {
		snprintf(js->why, sizeof js->why, "object larger than %zu bytes", js->max_value);
		error = js->why;
	}
	js->error = error;
	js->off = js->len;
	return false;
}

/* Where the scanner stopped before js->off, or at it. */
static void scan_ahead(struct jstream *js)
{
	if (!js->scanned || js->stop < js->off) {
		js->at_stop = js->at;
		js->stop = scan(&js->at_stop, js->buf, js->off, js->len, js->max_depth,
				&js->stop_why);
		js->scanned = true;
	}
}

/* The scanner stopped right here: a bad byte, or too deep. */
static bool stopped(struct jstream *js, const char **why)
{
	switch (js->stop_why) {
	case STOP_TOO_DEEP:
		/* Deeper only if the bracket is where a value may start
		 * ("{{", "[1 [" are bad lines, not deep ones): json-c knows. */
		json_tokener_parse_ex(js->tok, js->buf + js->off, 1);
		if (json_tokener_get_error(js->tok) != json_tokener_continue)
			return skip_line(js, js->off, js->off + 1, "not JSON", why);
		return fail(js, "object nested too deeply");
	case STOP_CONTROL_IN_STRING:
		/* A newline starts the next line: resynchronise on it. */
		return skip_line(js, js->off, js->off, js->buf[js->off] == '\n'
				 ? "line ends inside a string" : "control character in a string", why);
	default:
		/* A newline that ends a number cut short ("1.") ends the bad
		 * line itself: the next line is not part of it. */
		return skip_line(js, js->off, js->buf[js->off] == '\n' ? js->off : js->off + 1,
				 "not JSON", why);
	}
}

/* A top-level null is a NULL object in json-c: reported as skipped. */
static bool null_value(struct jstream *js, const char **why)
{
	snprintf(js->why, sizeof js->why, "a null, which is not an object");
	*why = js->why;
	return true;
}

/* The scanner stopped at a bad byte right after a complete top-level
 * number or literal that json-c holds back until it sees a delimiter:
 * give it one, and deliver the value before the skip. */
static bool finish_scalar(struct jstream *js, struct json_object **value,
			  const char **why)
{
	unsigned char c = (unsigned char)js->buf[js->off];
	enum num n = js->at_stop.num;
	struct json_object *obj;

	if (!js->partial || js->stop_why != STOP_BAD_BYTE || js->at_stop.depth != 0 ||
	    js->at_stop.in_string || n == NUM_SIGN || n == NUM_DOT || n == NUM_E ||
	    n == NUM_ESIGN)
		return false;
	/* After a number, a byte that could go on with it makes it bad
	 * ("007", "1.5.3"); a literal ("true.") json-c finishes or not. */
	if (n != NUM_NONE && c != '\0' && strchr("0123456789.eE+-", c))
		return false;
	obj = json_tokener_parse_ex(js->tok, " ", 1);
	if (json_tokener_get_error(js->tok) != json_tokener_success)
		return false;
	restart(js);
	if (!obj)
		return null_value(js, why);
	*value = obj;
	return true;
}

/* json-c finished a value in the next used bytes. */
static bool complete(struct jstream *js, struct json_object *obj, size_t used,
		     struct json_object **value, const char **why)
{
	bool too_big = js->used + trimmed(js->buf + js->off, used) > js->max_value;

	js->off += used;
	restart(js);
	if (too_big) {
		json_object_put(obj);
		return fail(js, "too large");
	}
	if (!obj)
		return null_value(js, why);
	*value = obj;
	return true;
}

/* Skips the whitespace between values; false when none is left. */
static bool skip_space(struct jstream *js)
{
	while (!js->partial && js->off < js->len && is_space(js->buf[js->off]))
		js->off++;
	return js->off < js->len;
}

bool jstream_next(struct jstream *js, struct json_object **value, const char **why)
{
	*value = NULL;
	while (!js->error && skip_space(js)) {
		size_t avail, used, start = js->off;
		enum json_tokener_error err;
		struct json_object *obj;

		scan_ahead(js);
		if (js->stop == js->off)
			return finish_scalar(js, value, why) || stopped(js, why);
		/* json-c takes an int length; callers feed small chunks. */
		avail = js->stop - js->off < (size_t)INT32_MAX ? js->stop - js->off : (size_t)INT32_MAX;
		obj = json_tokener_parse_ex(js->tok, js->buf + js->off, (int)avail);
		err = json_tokener_get_error(js->tok);
		used = json_tokener_get_parse_end(js->tok);
		if (used > avail)
			used = avail;
		if (err == json_tokener_success)
			return complete(js, obj, used, value, why);
		if (err == json_tokener_error_depth)
			return fail(js, "object nested too deeply");
		if (err != json_tokener_continue)
			/* Not JSON: resynchronise after the next newline, or
			 * drop the rest of what has arrived when there is none. */
			return skip_line(js, start, js->off + used, json_tokener_error_desc(err), why);
		js->partial = true;
		js->used += used;
		js->off += used;
		if (js->off == js->stop)
			js->at = js->at_stop;
		if (js->used > js->max_value)
			return fail(js, "too large");
	}
	return false;
}
