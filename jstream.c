/* jstream.c - JSON values from a byte stream, with json-c's tokener.
 *
 * The tokener keeps its own state across calls but has no size limit, so
 * the bytes of the value in progress are counted here.  Whitespace between
 * values is skipped here rather than fed to the tokener, so that it never
 * counts toward a value's size.
 *
 * json-c accepts a raw newline inside a string, which JSON forbids and no
 * correct sender writes.  Left alone, a line cut off inside a string would
 * swallow the next line's message; so the bytes fed are also watched for a
 * newline inside a string, which is treated as the end of a bad line. */
#include "jstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct jstream {
	struct json_tokener *tok;
	size_t max_value;
	size_t used;		/* bytes of the value in progress */
	bool partial;
	bool in_string;		/* the value in progress is inside a string */
	bool escaped;		/* ... right after a backslash */
	char why[64];
};

struct jstream *jstream_new(size_t max_value, int max_depth)
{
	struct jstream *js = calloc(1, sizeof *js);

	if (!js)
		return NULL;
	/* json-c's depth counts the top level too. */
	js->tok = json_tokener_new_ex(max_depth + 1);
	if (!js->tok) {
		free(js);
		return NULL;
	}
	js->max_value = max_value;
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
	js->in_string = false;
	js->escaped = false;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Follows strings through buf[0..len) (bytes the tokener consumed) and
 * returns the offset of the first newline inside a string, or len. */
static size_t newline_in_string(struct jstream *js, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		char c = buf[i];

		if (!js->in_string) {
			if (c == '"')
				js->in_string = true;
		} else if (js->escaped) {
			js->escaped = false;
		} else if (c == '\\') {
			js->escaped = true;
		} else if (c == '"') {
			js->in_string = false;
		} else if (c == '\n') {
			return i;
		}
	}
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

int jstream_feed(struct jstream *js, const char *buf, size_t len,
		 const struct jstream_handler *h, const char **why)
{
	size_t off = 0;

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
		avail = len - off;
		/* json-c takes an int length; reading in chunks keeps
		 * avail far below that. */
		if (avail > (size_t)INT32_MAX)
			avail = (size_t)INT32_MAX;
		obj = json_tokener_parse_ex(js->tok, buf + off, (int)avail);
		err = json_tokener_get_error(js->tok);
		used = json_tokener_get_parse_end(js->tok);
		if (used > avail)
			used = avail;
		{
			/* Also on an error: the line may have broken off
			 * inside a string before the bad byte. */
			size_t nl = newline_in_string(js, buf + off, used);

			if (nl < used) {
				/* A line that broke off inside a string: drop
				 * it, go on after the newline. */
				json_object_put(obj);
				restart(js);
				if (h->skipped)
					h->skipped(h->arg, "line ends inside a string", nl + 1);
				off += nl + 1;
				continue;
			}
		}

		if (err == json_tokener_continue) {
			js->partial = true;
			js->used += used;
			off += used;
			if (js->used > js->max_value) {
				restart(js);
				*why = too_large(js);
				return -1;
			}
			continue;
		}
		if (err == json_tokener_success) {
			bool too_big = js->used + trimmed(buf + off, used) > js->max_value;

			js->used = 0;
			js->partial = false;
			js->in_string = false;
			js->escaped = false;
			off += used;
			if (too_big) {
				json_object_put(obj);
				restart(js);
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
		restart(js);
		if (err == json_tokener_error_depth) {
			*why = "object nested too deeply";
			return -1;
		}
		/* Not JSON: resynchronise after the next newline, or drop
		 * the rest of what has arrived when there is none. */
		{
			const char *from = buf + off + used;
			const char *nl = memchr(from, '\n', len - off - used);
			size_t end = nl ? (size_t)(nl - buf) + 1 : len;

			if (h->skipped)
				h->skipped(h->arg, json_tokener_error_desc(err),
					   end - off);
			off = end;
		}
	}
	return 0;
}
