/* jstream.c - JSON values from a byte stream, with json-c's tokener.
 *
 * The tokener keeps its own state across calls but has no size limit, so
 * the bytes of the value in progress are counted here.  Whitespace between
 * values is skipped here rather than fed to the tokener, so that it never
 * counts toward a value's size.
 *
 * json-c is also more lenient than JSON: it takes comments, NUL bytes and
 * raw newlines inside strings, and some of those paths misbehave (a NUL in
 * a comment leaks memory; a comment after a value is read as part of it; a
 * line cut off inside a string swallows the next line's message).  So a
 * small scanner runs ahead of the tokener and stops it before any byte JSON
 * forbids there: NUL anywhere, '/' or '\'' outside a string, a newline
 * inside a string.  The scanner also counts nesting, so the depth limit is exact. */
#include "jstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Why the scanner stopped. */
enum stop { STOP_END, STOP_BAD_BYTE, STOP_NEWLINE_IN_STRING, STOP_TOO_DEEP };

/* Lexical state at a position of the stream. */
struct lex {
	bool in_string;
	bool escaped;		/* in a string, right after a backslash */
	int depth;
	char prev;		/* the byte before, outside strings */
};

struct jstream {
	struct json_tokener *tok;
	size_t max_value;
	int max_depth;
	size_t used;		/* bytes of the value in progress */
	bool partial;
	struct lex at;		/* the state where the next byte goes */
	char why[64];
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

static void restart(struct jstream *js)
{
	json_tokener_reset(js->tok);
	js->used = 0;
	js->partial = false;
	memset(&js->at, 0, sizeof js->at);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Runs the scanner over buf[from..len) from state *lx; returns where it
 * stopped (len at the end) with *lx the state there and *why the reason. */
static size_t scan(struct lex *lx, const char *buf, size_t from, size_t len,
		   int max_depth, enum stop *why)
{
	size_t i;

	for (i = from; i < len; i++) {
		char c = buf[i];

		if (c == '\0') {
			*why = STOP_BAD_BYTE;
			return i;
		}
		if (lx->in_string) {
			if (lx->escaped)
				lx->escaped = false;
			else if (c == '\\')
				lx->escaped = true;
			else if (c == '"')
				lx->in_string = false;
			else if (c == '\n') {
				*why = STOP_NEWLINE_IN_STRING;
				return i;
			}
		} else if ((c == '-' && ((lx->prev >= '0' && lx->prev <= '9') || lx->prev == '.')) ||
			   (c == '+' && lx->prev != 'e' && lx->prev != 'E')) {
			/* json-c resumes a number cut between two reads as if at
			 * its start, and takes "1" then "-0" for 1: a sign is
			 * only valid first or right after the exponent's e. */
			*why = STOP_BAD_BYTE;
			return i;
		} else if (c == '"') {
			lx->in_string = true;
		} else if (c == '/' || c == '\'') {
			/* A comment, or json-c's single-quoted string: not
			 * JSON, and the second would hide brackets and
			 * newlines from this scanner. */
			*why = STOP_BAD_BYTE;
			return i;
		} else if (c == '[' || c == '{') {
			if (++lx->depth > max_depth) {
				*why = STOP_TOO_DEEP;
				return i;
			}
		} else if ((c == ']' || c == '}') && lx->depth > 0) {
			lx->depth--;
		}
		lx->prev = c;
	}
	*why = STOP_END;
	return len;
}

static const char *too_large(struct jstream *js)
{
	snprintf(js->why, sizeof js->why, "object larger than %zu bytes", js->max_value);
	return js->why;
}

/* The value's size without the whitespace json-c reads past its end. */
static size_t trimmed(const char *buf, size_t len)
{
	while (len > 0 && is_space(buf[len - 1]))
		len--;
	return len;
}

/* Drops a bad line: from `from` to just past the next newline, or to the
 * end of what has arrived.  Returns the new offset. */
static size_t skip_line(struct jstream *js, const char *buf, size_t start,
			size_t from, size_t len, const char *what,
			const struct jstream_handler *h)
{
	const char *nl = from < len ? memchr(buf + from, '\n', len - from) : NULL;
	size_t end = nl ? (size_t)(nl - buf) + 1 : len;

	restart(js);
	if (h->skipped)
		h->skipped(h->arg, what, end - start);
	return end;
}

static int feed(struct jstream *js, const char *buf, size_t len,
		const struct jstream_handler *h, const char **why);

int jstream_feed(struct jstream *js, const char *buf, size_t len,
		 const struct jstream_handler *h, const char **why)
{
	int rc = feed(js, buf, len, h, why);

	if (h->batch_end)
		h->batch_end(h->arg);
	return rc;
}

static int feed(struct jstream *js, const char *buf, size_t len,
		const struct jstream_handler *h, const char **why)
{
	size_t off = 0, stop = 0;
	struct lex at_stop = { 0 };
	enum stop stop_why = STOP_END;
	bool scanned = false;	/* stop, at_stop and stop_why are current */

	while (off < len) {
		struct json_object *obj;
		enum json_tokener_error err;
		size_t avail, used;
		int rc;

		if (!js->partial) {
			while (off < len && is_space(buf[off]))
				off++;
			if (off == len)
				break;
		}
		/* One scan serves every value in the chunk: a value ends
		 * outside any string at depth 0, where a restart puts us. */
		if (!scanned || stop < off) {
			at_stop = js->at;
			stop = scan(&at_stop, buf, off, len, js->max_depth, &stop_why);
			scanned = true;
		}
		if (stop == off) {
			if (stop_why == STOP_TOO_DEEP) {
				restart(js);
				*why = "object nested too deeply";
				return -1;
			}
			off = skip_line(js, buf, off,
					stop_why == STOP_NEWLINE_IN_STRING ? off : off + 1, len,
					stop_why == STOP_NEWLINE_IN_STRING ? "line ends inside a string"
									   : "not JSON",
					h);
			scanned = false;
			continue;
		}

		avail = stop - off;
		/* json-c takes an int length; reading in chunks keeps
		 * avail far below that. */
		if (avail > (size_t)INT32_MAX)
			avail = (size_t)INT32_MAX;
		obj = json_tokener_parse_ex(js->tok, buf + off, (int)avail);
		err = json_tokener_get_error(js->tok);
		used = json_tokener_get_parse_end(js->tok);
		if (used > avail)
			used = avail;

		if (err == json_tokener_continue) {
			js->partial = true;
			js->used += used;
			off += used;
			if (off == stop)
				js->at = at_stop;
			if (js->used > js->max_value) {
				restart(js);
				*why = too_large(js);
				return -1;
			}
			continue;
		}
		if (err == json_tokener_success) {
			bool too_big = js->used + trimmed(buf + off, used) > js->max_value;

			off += used;
			restart(js);
			if (too_big) {
				json_object_put(obj);
				*why = too_large(js);
				return -1;
			}
			rc = h->value(h->arg, obj);
			json_object_put(obj);
			if (rc < 0) {
				*why = "stopped by handler";
				return -1;
			}
			continue;
		}
		if (err == json_tokener_error_depth) {
			restart(js);
			*why = "object nested too deeply";
			return -1;
		}
		/* Not JSON: resynchronise after the next newline, or drop
		 * the rest of what has arrived when there is none. */
		off = skip_line(js, buf, off, off + used, len, json_tokener_error_desc(err), h);
		scanned = false;
	}
	return 0;
}
