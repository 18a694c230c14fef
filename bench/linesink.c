/* linesink.c - the reading end of the benchmark's pipe points.
 *
 *   linesink --expect FILE [--prefix TEXT] [--label TEXT] < output-of-a-reader
 *
 * Reads stdin in large blocks (no per-line system call) and checks it
 * against FILE, line by line: received line k must be TEXT followed by
 * line k of FILE.  Every line of FILE begins with its decimal line number
 * (0, 1, 2, ...), so a line that does not match tells what went wrong: a
 * number lower than expected is out of order, one seen before is repeated,
 * a higher one skips lines (gaps), anything else is corrupt.
 *
 * The moment the last line of FILE has arrived, complete and in order, it
 * prints one line on stdout:
 *
 *   done label=L t_ns=CLOCK_MONOTONIC-NANOSECONDS
 *
 * (the same clock as Python's time.monotonic_ns() on Linux, so the harness
 * can measure from the sender's start to this moment).  It then reads on
 * until EOF, and prints the summary as key=value pairs:
 *
 *   eof label=L lines=N bytes=B ok=N gaps=G out_of_order=O repeated=R
 *       corrupt=C extra=E missing=M complete=0|1 t_first_ns=T t_done_ns=T
 *
 * (ok: lines that arrived in sequence or after a gap; missing: lines of
 * FILE that never arrived at all)
 *
 * complete=1 when every line arrived exactly once, in order, byte for byte,
 * and nothing else arrived.  The first bad line is shown on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUF (1u << 20)
#define MAXLINE (64u << 10)

static const char *label = "-";
static const char *prefix = "";
static size_t plen;
static const char *file;		/* the expected lines */
static size_t *off;			/* off[k]: where line k starts; off[n] = size */
static size_t nlines;

static uint64_t next;			/* the line number expected next */
static uint64_t lines, bytes, ok, gaps, ooo, dups, corrupt, extra, distinct;
static unsigned char *seen;		/* seen[k]: line k arrived */
static uint64_t t_first, t_done;
static bool shown;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void show(const char *why, const char *line, size_t len)
{
	char buf[200];
	size_t i, n = len < sizeof buf - 1 ? len : sizeof buf - 1;

	if (shown)
		return;
	shown = true;
	for (i = 0; i < n; i++)
		buf[i] = (line[i] >= 32 && line[i] < 127) ? line[i] : '?';
	buf[n] = '\0';
	fprintf(stderr, "linesink %s: line %" PRIu64 " received: %s (expected line %" PRIu64
		"): %s\n", label, lines, why, next, buf);
}

/* One received line, without its newline. */
static void one_line(const char *s, size_t len)
{
	const char *p = s + plen, *end = s + len;
	uint64_t k = 0;
	int digits = 0;

	lines++;
	if (len < plen || memcmp(s, prefix, plen) != 0) {
		corrupt++;
		show("wrong prefix", s, len);
		return;
	}
	while (p < end && *p >= '0' && *p <= '9' && digits < 19) {
		k = k * 10 + (uint64_t)(*p - '0');
		p++;
		digits++;
	}
	if (digits == 0 || k >= nlines) {
		if (next >= nlines) {
			extra++;
			show("extra line", s, len);
		} else {
			corrupt++;
			show("no line number", s, len);
		}
		return;
	}
	if (len - plen != off[k + 1] - off[k] - 1 ||
	    memcmp(s + plen, file + off[k], len - plen) != 0) {
		corrupt++;
		show("corrupt", s, len);
		return;
	}
	if (seen[k]) {
		dups++;
		show("repeated", s, len);
		return;
	}
	seen[k] = 1;
	distinct++;
	if (k == next) {
		ok++;
		next++;
		if (next == nlines && gaps == 0 && ooo == 0 && dups == 0 && corrupt == 0) {
			t_done = mono_ns();
			printf("done label=%s t_ns=%" PRIu64 "\n", label, t_done);
			fflush(stdout);
		}
	} else if (k > next) {
		gaps += k - next;
		show("lines skipped", s, len);
		next = k + 1;
		ok++;
	} else {
		ooo++;
		show("out of order", s, len);
	}
}

static void load(const char *path)
{
	struct stat st;
	size_t i, n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "linesink: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	if (st.st_size == 0) {
		fprintf(stderr, "linesink: %s is empty\n", path);
		exit(2);
	}
	file = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (file == MAP_FAILED) {
		fprintf(stderr, "linesink: mmap %s: %s\n", path, strerror(errno));
		exit(2);
	}
	if (file[st.st_size - 1] != '\n') {
		fprintf(stderr, "linesink: %s does not end with a newline\n", path);
		exit(2);
	}
	for (i = 0; i < (size_t)st.st_size; i++)
		if (file[i] == '\n')
			n++;
	off = malloc((n + 1) * sizeof *off);
	seen = calloc(n + 1, 1);
	if (!off || !seen) {
		fprintf(stderr, "linesink: out of memory\n");
		exit(2);
	}
	off[0] = 0;
	nlines = 0;
	for (i = 0; i < (size_t)st.st_size; i++)
		if (file[i] == '\n')
			off[++nlines] = i + 1;
}

int main(int argc, char **argv)
{
	static char buf[BUF + MAXLINE];
	const char *expect = NULL;
	size_t have = 0;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc)
			expect = argv[++i];
		else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
			prefix = argv[++i];
		else if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
			label = argv[++i];
		else {
			fprintf(stderr, "usage: linesink --expect FILE [--prefix TEXT] "
				"[--label TEXT] < INPUT\n");
			return 2;
		}
	}
	if (!expect) {
		fprintf(stderr, "linesink: --expect FILE is required\n");
		return 2;
	}
	plen = strlen(prefix);
	load(expect);

	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf + have, BUF);
		char *p, *e, *nl;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "linesink %s: read: %s\n", label, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (!t_first)
			t_first = mono_ns();
		bytes += (uint64_t)n;
		p = buf;
		e = buf + have + (size_t)n;
		while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
			one_line(p, (size_t)(nl - p));
			p = nl + 1;
		}
		have = (size_t)(e - p);
		if (have >= MAXLINE) {	/* a line longer than any expected */
			one_line(p, have);
			have = 0;
		} else if (have) {
			memmove(buf, p, have);
		}
	}
	if (have)
		one_line(buf, have);	/* no newline at the end: counted, and bad */
	printf("eof label=%s lines=%" PRIu64 " bytes=%" PRIu64 " ok=%" PRIu64 " gaps=%" PRIu64
	       " out_of_order=%" PRIu64 " repeated=%" PRIu64 " corrupt=%" PRIu64 " extra=%" PRIu64
	       " missing=%" PRIu64
	       " complete=%d t_first_ns=%" PRIu64 " t_done_ns=%" PRIu64 "\n",
	       label, lines, bytes, ok, gaps, ooo, dups, corrupt, extra,
	       (uint64_t)nlines - distinct,
	       (t_done && ok == nlines && !gaps && !ooo && !dups && !corrupt && !extra) ? 1 : 0,
	       t_first, t_done);
	fflush(stdout);
	return 0;
}
