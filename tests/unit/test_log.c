/* test_log.c - unit tests for log.c (diagnostic lines, per-peer budgets,
 * tallies of repeated events).
 *
 * Lines are captured with log_set_sink.  The once-a-second behaviour is
 * tested against the monotonic clock: the tests wait for the second to
 * pass where that is what they test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "thread.h"

/* ---- capture -------------------------------------------------------- */

#define MAXLINES 256

static char *lines[MAXLINES];
static size_t nlines;
static size_t lens[MAXLINES];

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

static void sink(const char *line, size_t len)
{
	pthread_mutex_lock(&sink_lock);
	if (nlines < MAXLINES) {
		lines[nlines] = malloc(len + 1);
		assert_non_null(lines[nlines]);
		memcpy(lines[nlines], line, len);
		lines[nlines][len] = '\0';
		lens[nlines] = len;
	}
	nlines++;
	pthread_mutex_unlock(&sink_lock);
}

static void reset(void)
{
	for (size_t i = 0; i < nlines && i < MAXLINES; i++)
		free(lines[i]);
	nlines = 0;
}

static int setup(void **state)
{
	(void)state;
	log_init("/usr/bin/testprog");
	log_set_level(LOG_NORMAL);
	log_set_sink(sink);
	reset();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	reset();
	log_set_level(LOG_NORMAL);
	return 0;
}

static void expect_line(size_t i, const char *want)
{
	if (i >= nlines)
		fail_msg("line %zu missing (%zu lines)", i, nlines);
	if (strcmp(lines[i], want) != 0)
		fail_msg("line %zu is \"%s\", want \"%s\"", i, lines[i], want);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* ---- lines ---------------------------------------------------------- */

static void test_line_format(void **state)
{
	(void)state;
	log_warn("hello %d", 42);
	assert_int_equal(nlines, 1);
	/* The program's base name, one line ending in '\n', one call. */
	expect_line(0, "testprog: hello 42\n");
	assert_int_equal(lens[0], strlen("testprog: hello 42\n"));
	log_init("chat5");
	log_warn("x");
	expect_line(1, "chat5: x\n");
}

/* Text from the network cannot drive the terminal: controls and
 * invisible characters in what is formatted are escaped; the line's own
 * newline is the only one. */
static void test_line_sanitized(void **state)
{
	(void)state;
	log_warn("peer said: %s", "\x1b[2Jgotcha\nfake: line\r\xff");
	expect_line(0, "testprog: peer said: \\x1b[2Jgotcha\\nfake: line\\r\\xff\n");
	log_warn("%s", "evil\xe2\x80\xae" "txt");
	expect_line(1, "testprog: evil\\u202etxt\n");
	log_warn("caf\xc3\xa9 \xf0\x9f\x98\x80");
	expect_line(2, "testprog: caf\xc3\xa9 \xf0\x9f\x98\x80\n");
}

/* A very long line is cut, still one line with its newline, at most
 * what a write can take whole. */
static void test_long_line(void **state)
{
	(void)state;
	char *big = malloc(10000);

	assert_non_null(big);
	memset(big, 'a', 9999);
	big[9999] = '\0';
	log_warn("%s", big);
	assert_int_equal(nlines, 1);
	assert_true(lens[0] > 500);
	assert_true(lens[0] <= 4096);
	assert_int_equal(lines[0][lens[0] - 1], '\n');
	assert_null(memchr(lines[0], '\n', lens[0] - 1));
	reset();
	/* Escapes make it longer, not broken. */
	memset(big, '\x01', 9999);
	log_warn("%s", big);
	assert_int_equal(nlines, 1);
	assert_true(lens[0] <= 4096);
	assert_int_equal(lines[0][lens[0] - 1], '\n');
	assert_null(memchr(lines[0], '\x01', lens[0]));
	free(big);
}

static void test_levels(void **state)
{
	(void)state;
	log_info("info");
	log_debug("debug");
	assert_int_equal(nlines, 1);
	expect_line(0, "testprog: info\n");
	log_set_level(LOG_VERBOSE);
	log_debug("debug %s", "now");
	log_info("info2");
	expect_line(1, "testprog: debug now\n");
	expect_line(2, "testprog: info2\n");
	log_set_level(LOG_QUIET);
	log_info("hidden");
	log_debug("hidden");
	log_warn("shown");
	assert_int_equal(nlines, 4);
	expect_line(3, "testprog: shown\n");
}

/* log_warn keeps errno for the caller. */
static void test_errno_kept(void **state)
{
	(void)state;
	errno = EAGAIN;
	log_warn("x");
	assert_int_equal(errno, EAGAIN);
	errno = ECONNRESET;
	log_info("y");
	assert_int_equal(errno, ECONNRESET);
}

/* log_die logs, then exits with the status. */
static void test_die(void **state)
{
	(void)state;
	int fds[2], status = 0;
	pid_t pid;
	char buf[128];
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Without a sink: the line goes to stderr with one write. */
		log_set_sink(NULL);
		dup2(fds[1], STDERR_FILENO);
		log_die(3, "fatal: %s", "bye");
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof buf - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "testprog: fatal: bye\n");
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
	close(fds[0]);
}

/* ---- budgets -------------------------------------------------------- */

static size_t count_prefix(const char *prefix)
{
	size_t n = 0;

	for (size_t i = 0; i < nlines && i < MAXLINES; i++)
		n += strncmp(lines[i], prefix, strlen(prefix)) == 0;
	return n;
}

/* Sums the N of every "N more line(s) from WHO suppressed" line. */
static unsigned long suppressed_total(const char *who, size_t *nsummaries)
{
	unsigned long total = 0;

	*nsummaries = 0;
	for (size_t i = 0; i < nlines && i < MAXLINES; i++) {
		unsigned long n;
		char tail[128];

		if (sscanf(lines[i], "testprog: %lu more line(s) from %127[^\n]", &n, tail) == 2) {
			char want[128];

			snprintf(want, sizeof want, "%s suppressed", who);
			if (strcmp(tail, want) != 0)
				continue;	/* another peer's */
			total += n;
			++*nsummaries;
		}
	}
	return total;
}

/* The first LOG_BUDGET lines go out; the rest are counted, and the count
 * comes out in a summary at most once a second and at the end; nothing
 * is lost from the count. */
static void test_budget(void **state)
{
	(void)state;
	struct log_budget b;
	size_t summaries;
	int64_t t0 = mono_now_ms();

	log_budget_init(&b, "10.0.0.1:5000");
	for (int i = 0; i < LOG_BUDGET; i++)
		log_peer_warn(&b, "bad line %d", i);
	assert_int_equal(nlines, LOG_BUDGET);
	expect_line(0, "testprog: bad line 0\n");
	expect_line(LOG_BUDGET - 1, "testprog: bad line 49\n");
	/* Over budget: counted.  The first summary may come at once. */
	for (int i = 0; i < 200; i++)
		log_peer_warn(&b, "bad line %d", LOG_BUDGET + i);
	assert_int_equal(count_prefix("testprog: bad line"), LOG_BUDGET);
	suppressed_total("10.0.0.1:5000", &summaries);
	if (mono_now_ms() - t0 < 1000)
		assert_true(summaries <= 1);
	log_budget_flush(&b);
	assert_int_equal(suppressed_total("10.0.0.1:5000", &summaries), 200);
	assert_true(summaries >= 1);
	/* Flushed: nothing more to say. */
	{
		size_t before = nlines;

		log_budget_flush(&b);
		assert_int_equal(nlines, before);
	}
	/* The budget stays spent: later lines are counted too. */
	log_peer_warn(&b, "later");
	log_peer_info(&b, "later info");
	log_budget_flush(&b);
	assert_int_equal(count_prefix("testprog: later"), 0);
	assert_int_equal(suppressed_total("10.0.0.1:5000", &summaries), 202);
}

/* The summary comes again once a second has passed since the last. */
static void test_budget_once_a_second(void **state)
{
	(void)state;
	struct log_budget b;
	size_t s1, s2, s3;

	log_budget_init(&b, "peer");
	for (int i = 0; i < LOG_BUDGET + 1; i++)
		log_peer_warn(&b, "x");
	log_budget_flush(&b);			/* a summary: now */
	suppressed_total("peer", &s1);
	assert_int_equal(s1, 1);
	for (int i = 0; i < 100; i++)
		log_peer_warn(&b, "x");		/* within the second: counted */
	suppressed_total("peer", &s2);
	assert_int_equal(s2, s1);
	sleep_ms(1100);				/* the second is what is tested */
	log_peer_warn(&b, "x");			/* due: summed up now */
	suppressed_total("peer", &s3);
	assert_int_equal(s3, s1 + 1);
	assert_int_equal(suppressed_total("peer", &s3), 102);
	log_budget_flush(&b);
	assert_int_equal(suppressed_total("peer", &s3), 102);
}

/* log_budget_due_ms: -1 while nothing is suppressed, then when the
 * summary is due (at most a second away); a poll loop waits that long and
 * flushes. */
static void test_budget_due(void **state)
{
	(void)state;
	struct log_budget b;
	size_t s;
	int due;
	int64_t t0;

	log_budget_init(&b, "due");
	assert_int_equal(log_budget_due_ms(&b), -1);
	for (int i = 0; i < LOG_BUDGET; i++)
		log_peer_warn(&b, "x");
	assert_int_equal(log_budget_due_ms(&b), -1);	/* within budget */
	log_peer_warn(&b, "over");
	t0 = mono_now_ms();
	due = log_budget_due_ms(&b);
	if (suppressed_total("due", &s) == 0) {
		/* Not summed up at once: due within the second. */
		assert_true(due >= 0 && due <= 1000);
		while ((due = log_budget_due_ms(&b)) > 0) {
			assert_true(mono_now_ms() - t0 < 5000);
			sleep_ms(due);
		}
		assert_int_equal(due, 0);
		log_budget_flush(&b);
	}
	assert_int_equal(suppressed_total("due", &s), 1);
	assert_int_equal(log_budget_due_ms(&b), -1);	/* said */
	log_peer_warn(&b, "again");
	due = log_budget_due_ms(&b);
	assert_true(due > 0 && due <= 1000);		/* a summary just went out */
	log_budget_flush(&b);
	assert_int_equal(suppressed_total("due", &s), 2);
	assert_int_equal(log_budget_due_ms(&b), -1);
}

/* Info lines that the level hides cost nothing from the budget; warnings
 * are always charged. */
static void test_budget_levels(void **state)
{
	(void)state;
	struct log_budget b;
	size_t s;

	log_budget_init(&b, "q");
	log_set_level(LOG_QUIET);
	for (int i = 0; i < 3 * LOG_BUDGET; i++)
		log_peer_info(&b, "info");
	assert_int_equal(nlines, 0);
	log_budget_flush(&b);
	assert_int_equal(nlines, 0);		/* nothing was suppressed */
	for (int i = 0; i < LOG_BUDGET; i++)
		log_peer_warn(&b, "warn");
	assert_int_equal(nlines, LOG_BUDGET);	/* the whole budget was left */
	log_set_level(LOG_NORMAL);
	log_peer_info(&b, "info now");		/* over budget: counted */
	log_budget_flush(&b);
	assert_int_equal(count_prefix("testprog: info"), 0);
	assert_int_equal(suppressed_total("q", &s), 1);
}

/* Each peer has its own budget. */
static void test_budget_per_peer(void **state)
{
	(void)state;
	struct log_budget a, b;
	size_t s;

	log_budget_init(&a, "A");
	log_budget_init(&b, "B");
	for (int i = 0; i < LOG_BUDGET + 5; i++)
		log_peer_warn(&a, "from a");
	for (int i = 0; i < 10; i++)
		log_peer_info(&b, "from b");
	assert_int_equal(count_prefix("testprog: from a"), LOG_BUDGET);
	assert_int_equal(count_prefix("testprog: from b"), 10);
	log_budget_flush(&a);
	log_budget_flush(&b);
	assert_int_equal(suppressed_total("A", &s), 5);
	assert_int_equal(suppressed_total("B", &s), 0);
	assert_int_equal(s, 0);
}

/* A budget is shared by the threads that log for one connection (its
 * reader, its subscribers' senders): exactly LOG_BUDGET lines go out,
 * and every other one is in some summary, none twice. */
#define NCHARGERS 4
#define PER_CHARGER 2000

static void *charger(void *arg)
{
	struct log_budget *b = arg;

	for (int i = 0; i < PER_CHARGER; i++) {
		if (i % 2)
			log_peer_warn(b, "line");
		else
			log_peer_info(b, "line");
	}
	return NULL;
}

static void test_budget_threads(void **state)
{
	(void)state;
	struct log_budget b;
	pthread_t t[NCHARGERS];
	size_t summaries;

	log_budget_init(&b, "shared");
	for (int i = 0; i < NCHARGERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, charger, &b), 0);
	for (int i = 0; i < NCHARGERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	log_budget_flush(&b);
	assert_true(nlines < MAXLINES);
	assert_int_equal(count_prefix("testprog: line"), LOG_BUDGET);
	assert_int_equal(suppressed_total("shared", &summaries),
			 NCHARGERS * PER_CHARGER - LOG_BUDGET);
	/* At most once a second, plus the final flush. */
	assert_true(summaries >= 1 && summaries <= 1 + 1 + 30);
}

/* ---- tallies -------------------------------------------------------- */

static void test_tally(void **state)
{
	(void)state;
	struct log_tally t = { 0 };
	unsigned long n, ms;

	assert_int_equal(log_tally_due_ms(&t), -1);	/* nothing counted */
	assert_false(log_tally_flush(&t, "refused", true));
	assert_true(log_tally(&t, "refused %s", "1.2.3.4:5"));
	expect_line(0, "testprog: refused 1.2.3.4:5\n");
	assert_int_equal(log_tally_due_ms(&t), -1);
	/* Within the second: counted, not logged. */
	for (int i = 0; i < 9; i++)
		assert_false(log_tally(&t, "refused %d", i));
	assert_int_equal(nlines, 1);
	{
		int due = log_tally_due_ms(&t);

		assert_true(due >= 0 && due <= 1000);
	}
	/* Not due yet: nothing, unless forced. */
	assert_false(log_tally_flush(&t, "refused connections", false));
	assert_int_equal(nlines, 1);
	assert_true(log_tally_flush(&t, "refused connections", true));
	assert_int_equal(nlines, 2);
	assert_int_equal(sscanf(lines[1], "testprog: refused connections: %lu more in the last %lu",
				&n, &ms), 2);
	assert_int_equal(n, 9);
	assert_int_equal(log_tally_due_ms(&t), -1);
	assert_false(log_tally_flush(&t, "refused connections", true));
}

static void test_tally_due(void **state)
{
	(void)state;
	struct log_tally t = { 0 };
	unsigned long n, ms;
	int64_t t0;

	assert_true(log_tally(&t, "event"));
	t0 = mono_now_ms();
	assert_false(log_tally(&t, "event"));
	assert_false(log_tally(&t, "event"));
	/* Wait until it says it is due, then it flushes by itself. */
	for (;;) {
		int due = log_tally_due_ms(&t);

		assert_true(due >= 0);
		if (due == 0)
			break;
		sleep_ms(due);
		assert_true(mono_now_ms() - t0 < 5000);
	}
	assert_true(mono_now_ms() - t0 >= 900);
	assert_true(log_tally_flush(&t, "events", false));
	assert_int_equal(sscanf(lines[1], "testprog: events: %lu more in the last %lu", &n, &ms), 2);
	assert_int_equal(n, 2);
	assert_true(ms >= 900);
	/* The line just printed starts a new second: the next event is
	 * counted, not logged. */
	assert_false(log_tally(&t, "event"));
	assert_int_equal(nlines, 2);
	/* After a quiet second, an event is logged at once again. */
	sleep_ms(1100);
	assert_true(log_tally_flush(&t, "events", false));
	sleep_ms(1100);
	assert_true(log_tally(&t, "event %d", 7));
	expect_line(nlines - 1, "testprog: event 7\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_sanitized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errno_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_die, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_once_a_second, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_per_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tally, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tally_due, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
