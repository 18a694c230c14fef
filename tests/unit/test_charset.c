/* test_charset.c - unit tests for charset.c (typed text as UTF-8).
 *
 * charset.c keeps process-wide state (the locale's converter, "told the
 * user once"), so each locale is tried in a child process of its own,
 * which sets LC_ALL (and LOCPATH) before charset_init.  The child reports
 * each failed check on stderr and exits non-zero.
 *
 * The Latin-1 case needs an ISO-8859-1 locale: an installed one, or one
 * made here without root (localedef -i en_US -f ISO-8859-1 into a
 * scratch LOCPATH); when neither is possible the test is skipped. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <langinfo.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "charset.h"
#include "log.h"

#define FFFD "\xef\xbf\xbd"

/* ---- in the child --------------------------------------------------- */

static int failures;
static int warnings;
static char last_warning[512];

#define CHECK(c) ((c) ? (void)0 : (void)(fprintf(stderr, "%s:%d: check failed: %s\n", \
						    __FILE__, __LINE__, #c), failures++))

static void sink(const char *line, size_t len)
{
	warnings++;
	snprintf(last_warning, sizeof last_warning, "%.*s", (int)len, line);
}

/* charset_to_utf8(in) must be want; same: it must be the line itself. */
static void expect(const char *in, size_t len, const char *want, size_t wantlen,
		   bool same)
{
	size_t outlen = 12345;
	const char *out = charset_to_utf8(in, len, &outlen);

	if (outlen != wantlen || memcmp(out, want, wantlen) != 0) {
		fprintf(stderr, "charset_to_utf8(%zu bytes): %zu bytes \"%.*s\", want %zu \"%.*s\"\n",
			len, outlen, (int)outlen, out, wantlen, (int)wantlen, want);
		failures++;
	}
	if (same && out != in) {
		fprintf(stderr, "valid UTF-8 (%zu bytes) was copied\n", len);
		failures++;
	}
}

#define EXPECT(in, want, same) expect(in, sizeof(in) - 1, want, sizeof(want) - 1, same)

/* Valid UTF-8 is sent as it is, in any locale. */
static void valid_passes(void)
{
	EXPECT("", "", true);
	EXPECT("hello", "hello", true);
	EXPECT("caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac", "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac", true);
	EXPECT("tab\there", "tab\there", true);
	CHECK(warnings == 0);
}

static int child_utf8(void)
{
	size_t n;

	charset_init();
	CHECK(strcmp(nl_langinfo(CODESET), "UTF-8") == 0);
	valid_passes();
	/* Each invalid byte is U+FFFD; the user is told once. */
	EXPECT("caf\xe9", "caf" FFFD, false);
	CHECK(warnings == 1);
	CHECK(strstr(last_warning, "U+FFFD") != NULL);
	CHECK(strstr(last_warning, "(said once)") != NULL);
	EXPECT("\xff\xfe" "ok\x80", FFFD FFFD "ok" FFFD, false);
	EXPECT("\xe2\x82", FFFD FFFD, false);			/* cut short */
	EXPECT("\xc0\xaf", FFFD FFFD, false);			/* overlong */
	EXPECT("\xed\xa0\x80", FFFD FFFD FFFD, false);		/* surrogate */
	EXPECT("a\xc3\xa9\xff\xc3\xa9", "a\xc3\xa9" FFFD "\xc3\xa9", false);
	CHECK(warnings == 1);
	/* The result is UTF-8 and only len bytes were read. */
	charset_to_utf8("ab\xff", 2, &n);
	CHECK(n == 2);
	/* Still fine after charset_free. */
	charset_free();
	EXPECT("ok", "ok", true);
	EXPECT("x\xff", "x" FFFD, false);
	CHECK(warnings == 1);
	charset_free();
	return failures;
}

static int child_latin1(void)
{
	static char all[96], want[192];
	size_t n, w = 0;
	const char *out;

	charset_init();
	CHECK(strcmp(nl_langinfo(CODESET), "ISO-8859-1") == 0);
	valid_passes();
	/* Not UTF-8: converted from the locale's set, silently. */
	EXPECT("caf\xe9", "caf\xc3\xa9", false);
	EXPECT("\xc4rger \xfc" "ber \xdf", "\xc3\x84rger \xc3\xbc" "ber \xc3\x9f", false);
	/* Already UTF-8 bytes with one Latin-1 byte: the line is Latin-1. */
	EXPECT("\xc3\xa9\xe9", "\xc3\x83\xc2\xa9\xc3\xa9", false);
	/* Every byte 0xa0-0xff: U+00A0-U+00FF. */
	for (unsigned b = 0xa0; b <= 0xff; b++) {
		all[b - 0xa0] = (char)b;
		want[w++] = (char)(0xc0 | (b >> 6));
		want[w++] = (char)(0x80 | (b & 0x3f));
	}
	out = charset_to_utf8(all, 96, &n);
	CHECK(n == w && memcmp(out, want, w) == 0);
	CHECK(warnings == 0);
	charset_free();
	return failures;
}

/* The C locale's ASCII: no conversion can help; U+FFFD, told once, with
 * the locale's character set named. */
static int child_ascii(void)
{
	charset_init();
	valid_passes();
	EXPECT("caf\xe9", "caf" FFFD, false);
	CHECK(warnings == 1);
	CHECK(strstr(last_warning, "neither UTF-8 nor") != NULL);
	CHECK(strstr(last_warning, nl_langinfo(CODESET)) != NULL);
	EXPECT("\xff", FFFD, false);
	CHECK(warnings == 1);
	charset_free();
	return failures;
}

/* ---- in the parent -------------------------------------------------- */

static char locpath[64];

/* Runs fn in a child with LC_ALL (and LOCPATH) set; returns its status. */
static int in_child(const char *lc_all, const char *loc_path, int (*fn)(void))
{
	pid_t pid;
	int status = 0;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsetenv("LANG");
		unsetenv("LC_CTYPE");
		setenv("LC_ALL", lc_all, 1);
		if (loc_path)
			setenv("LOCPATH", loc_path, 1);
		log_init("test");
		log_set_sink(sink);
		_exit(fn() ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Whether the locale can be set (in a child, to leave ours alone). */
static int try_locale(void)
{
	return setlocale(LC_CTYPE, "") != NULL ? 0 : 1;
}

static void test_utf8_locale(void **state)
{
	(void)state;
	static const char *names[] = { "C.UTF-8", "C.utf8", "en_US.UTF-8" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (in_child(names[i], NULL, try_locale) == 0) {
			assert_int_equal(in_child(names[i], NULL, child_utf8), 0);
			return;
		}
	}
	skip();
}

static void test_latin1_locale(void **state)
{
	(void)state;
	char cmd[256];

	if (in_child("en_US.ISO-8859-1", NULL, try_locale) == 0) {
		assert_int_equal(in_child("en_US.ISO-8859-1", NULL, child_latin1), 0);
		return;
	}
	snprintf(locpath, sizeof locpath, "/tmp/test_charset.XXXXXX");
	if (!mkdtemp(locpath))
		skip();
	snprintf(cmd, sizeof cmd,
		 "localedef -i en_US -f ISO-8859-1 %s/en_US.ISO-8859-1 >/dev/null 2>&1",
		 locpath);
	if (system(cmd) != 0 || in_child("en_US.ISO-8859-1", locpath, try_locale) != 0) {
		print_message("no ISO-8859-1 locale, and localedef cannot make one\n");
		snprintf(cmd, sizeof cmd, "rm -rf %s", locpath);
		if (system(cmd) != 0) {
		}
		skip();
	}
	assert_int_equal(in_child("en_US.ISO-8859-1", locpath, child_latin1), 0);
	snprintf(cmd, sizeof cmd, "rm -rf %s", locpath);
	assert_int_equal(system(cmd), 0);
}

static void test_ascii_locale(void **state)
{
	(void)state;
	assert_int_equal(in_child("C", NULL, child_ascii), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_locale),
		cmocka_unit_test(test_latin1_locale),
		cmocka_unit_test(test_ascii_locale),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
