/* bench/jsonfloor.c - what json-c alone costs a reader per chat message.
 *
 *   jsonfloor LINES_FILE USER [PASSES]
 *
 * Builds, for every line of LINES_FILE, the object chat5 sends for it
 * ({"seq": K, "user": USER, "message": LINE}), then parses them all as a
 * reader's stream parser does (a json-c tokener in strict mode, the C
 * locale), looks up the three fields and frees the object.  Prints the
 * median over PASSES (default 5) in nanoseconds of the thread's CPU time
 * per object, so that other programs' load counts less.  That is a floor
 * under every reader of the pipe points: no reader can decode a message
 * for less, whatever else it does. */
#define _POSIX_C_SOURCE 200809L
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct objects {
	char *text;		/* every object, each followed by '\n' */
	size_t len, count;
};

static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Plain ASCII lines, as bench/pipe.py writes them: nothing to escape. */
static int build(const char *path, const char *user, struct objects *o)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	size_t cap = 1 << 20;

	if (!f)
		return -1;
	o->text = malloc(cap);
	o->len = o->count = 0;
	while (o->text && fgets(line, sizeof line, f)) {
		size_t n;

		line[strcspn(line, "\n")] = '\0';
		if (cap - o->len < sizeof line + 256) {
			char *t = realloc(o->text, cap * 2);

			if (!t)
				break;
			o->text = t;
			cap *= 2;
		}
		n = (size_t)snprintf(o->text + o->len, cap - o->len,
				     "{\"seq\": %zu, \"user\": \"%s\", \"message\": \"%s\"}\n",
				     o->count, user, line);
		o->len += n;
		o->count++;
	}
	fclose(f);
	return o->text && o->count > 0 ? 0 : -1;
}

/* One pass; returns nanoseconds per object, or a negative on a bad parse. */
static double parse_all(const struct objects *o)
{
	struct json_tokener *tok = json_tokener_new_ex(34);
	const char *p = o->text, *end = o->text + o->len;
	double t0;
	size_t n = 0;

	if (!tok)
		return -1;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	t0 = cpu_ns();
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		struct json_object *v, *field;

		json_tokener_reset(tok);
		v = json_tokener_parse_ex(tok, p, (int)(nl - p));
		if (!v || !json_object_object_get_ex(v, "seq", &field) ||
		    !json_object_object_get_ex(v, "user", &field) ||
		    !json_object_object_get_ex(v, "message", &field) ||
		    json_object_get_string_len(field) <= 0) {
			json_object_put(v);
			json_tokener_free(tok);
			return -1;
		}
		json_object_put(v);
		p = nl + 1;
		n++;
	}
	t0 = (cpu_ns() - t0) / (double)n;
	json_tokener_free(tok);
	return t0;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	struct objects o;
	double runs[64];
	int passes = argc > 3 ? atoi(argv[3]) : 5, i;

	if (argc < 3 || argc > 4 || passes < 1 || passes > 64) {
		fprintf(stderr, "usage: jsonfloor LINES_FILE USER [PASSES (1-64)]\n");
		return 2;
	}
	if (build(argv[1], argv[2], &o) < 0) {
		fprintf(stderr, "jsonfloor: cannot read lines from '%s'\n", argv[1]);
		return 1;
	}
	for (i = 0; i < passes; i++) {
		runs[i] = parse_all(&o);
		if (runs[i] < 0) {
			fprintf(stderr, "jsonfloor: json-c did not parse an object\n");
			return 1;
		}
	}
	qsort(runs, (size_t)passes, sizeof *runs, by_value);
	printf("%zu objects, %.0f ns of CPU per object (median of %d passes, %.0f-%.0f)\n",
	       o.count, runs[passes / 2], passes, runs[0], runs[passes - 1]);
	free(o.text);
	return 0;
}
