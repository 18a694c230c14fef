/* test_sanitize.c - unit tests for sanitize.c (terminal-safe text). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "sanitize.h"

#define CANARY 'Z'

/* Sanitizes in[0..len) into a generous buffer and compares with want; also
 * checks the return value and that nothing is written past the NUL. */
static void expect_len(const char *in, size_t len, const char *want)
{
	char out[SANITIZE_MAX(256) + 64];
	size_t n;

	assert_true(len <= 256);
	memset(out, CANARY, sizeof out);
	n = sanitize_text(in, len, out, sizeof out);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
	assert_true(n < SANITIZE_MAX(len));
	for (size_t i = n + 1; i < sizeof out; i++)
		if (out[i] != CANARY)
			fail_msg("byte %zu past the NUL was written", i);
}

static void expect(const char *in, const char *want)
{
	expect_len(in, strlen(in), want);
}

static void unchanged(const char *in)
{
	expect(in, in);
	assert_true(utf8_valid(in, strlen(in)));
}

static void test_plain_ascii(void **state)
{
	(void)state;
	unchanged("");
	unchanged("hello");
	unchanged("hello, world! 1+1=2 ~`@#$%^&*()_-{}[]|;:',.<>?/");
	unchanged(" leading and trailing spaces ");
}

static void test_utf8_unchanged(void **state)
{
	(void)state;
	unchanged("caf\xc3\xa9 na\xc3\xafve \xc3\xbc\xc3\x9f");	/* café naïve üß */
	unchanged("\xe2\x82\xac 100");				/* € */
	unchanged("\xf0\x9f\x98\x80 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd");	/* emoji */
	unchanged("\xe4\xb8\xad\xe6\x96\x87");			/* 中文 */
	unchanged("\xc2\xa0nbsp");				/* U+00A0 is not C1 */
	unchanged("\xf4\x8f\xbf\xbf");				/* U+10FFFF */
	/* Next to the invisible ranges, but visible: kept. */
	unchanged("\xe2\x80\x8a hair space");			/* U+200A */
	unchanged("\xe2\x80\x90 hyphen");				/* U+2010 */
	unchanged("\xe2\x80\xa7 \xe2\x80\xaf");			/* U+2027 U+202F */
	unchanged("\xe2\x81\xa5 \xe2\x81\xaa");			/* U+2065 U+206A */
	unchanged("\xef\xbb\xbe \xef\xbc\x80");			/* U+FEFE U+FF00 */
	unchanged("\xd8\x9b \xd8\x9d");				/* U+061B U+061D */
	unchanged("\xe2\x80\xa6 ellipsis");			/* U+2026 */
}

static void test_quotes_backslashes_unchanged(void **state)
{
	(void)state;
	unchanged("say \"hi\" and 'bye'");
	unchanged("C:\\path\\to\\file \\n is not a newline \\x1b");
	unchanged("{\"seq\": 0, \"user\": \"octav\"}");
}

static void test_escape_esc(void **state)
{
	(void)state;
	expect("\x1b", "\\x1b");
	expect("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m");
	expect("\x1b]0;title\x07", "\\x1b]0;title\\x07");
}

static void test_escape_newline_tab_cr(void **state)
{
	(void)state;
	expect("a\nb", "a\\nb");
	expect("a\tb", "a\\tb");
	expect("a\rb", "a\\rb");
	expect("\r\n", "\\r\\n");
	expect("\n\n\n", "\\n\\n\\n");
}

static void test_escape_other_c0_and_del(void **state)
{
	(void)state;
	expect("\x7f", "\\x7f");
	expect("a\x7f" "b", "a\\x7fb");
	expect("\x01\x02\x08\x0b\x0c\x1f", "\\x01\\x02\\x08\\x0b\\x0c\\x1f");
	expect("bell\x07", "bell\\x07");
	/* An embedded NUL is a control character too. */
	expect_len("a\0b", 3, "a\\x00b");
	/* Every C0 control: never passed through raw. */
	for (unsigned c = 0; c < 0x20; c++) {
		char in[1] = { (char)c };
		char want[8];

		if (c == '\n')
			strcpy(want, "\\n");
		else if (c == '\t')
			strcpy(want, "\\t");
		else if (c == '\r')
			strcpy(want, "\\r");
		else
			snprintf(want, sizeof want, "\\x%02x", c);
		expect_len(in, 1, want);
	}
}

static void test_escape_c1(void **state)
{
	(void)state;
	expect("\xc2\x9b", "\\xc2\\x9b");		/* CSI */
	expect("\xc2\x9b" "31m", "\\xc2\\x9b31m");
	expect("\xc2\x80", "\\xc2\\x80");
	expect("\xc2\x9f", "\\xc2\\x9f");
	expect("x\xc2\x85y", "x\\xc2\\x85y");		/* NEL */
	assert_true(utf8_valid("\xc2\x9b", 2));	/* valid, just escaped */
}

static void test_invalid_bytes(void **state)
{
	(void)state;
	expect("\xff", "\\xff");
	expect("a\xff" "b", "a\\xffb");
	expect("\xfe\xff", "\\xfe\\xff");
	expect("\x80", "\\x80");			/* lone continuation */
	expect("\xbf" "abc", "\\xbfabc");
	expect("\xe2\x82", "\\xe2\\x82");		/* truncated 3-byte, at end */
	expect("\xe2\x82" "A", "\\xe2\\x82A");	/* truncated, then ASCII */
	expect("\xe2\x82\xe2\x82\xac", "\\xe2\\x82\xe2\x82\xac");
	expect("\xc3", "\\xc3");			/* truncated 2-byte */
	expect("\xf0\x9f\x98", "\\xf0\\x9f\\x98");	/* truncated 4-byte */
	expect("\xc0\xaf", "\\xc0\\xaf");		/* overlong '/' */
	expect("\xc1\xbf", "\\xc1\\xbf");		/* overlong */
	expect("\xe0\x80\xaf", "\\xe0\\x80\\xaf");	/* overlong 3-byte */
	expect("\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf");	/* overlong 4-byte */
	expect("\xed\xa0\x80", "\\xed\\xa0\\x80");	/* surrogate U+D800 */
	expect("\xed\xbf\xbf", "\\xed\\xbf\\xbf");	/* surrogate U+DFFF */
	expect("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");	/* > U+10FFFF */
	expect("\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80");
	expect("\xf8\x88\x80\x80\x80", "\\xf8\\x88\\x80\\x80\\x80");
	/* Invalid bytes around valid characters keep the valid ones. */
	expect("\xff\xc3\xa9\xff", "\\xff\xc3\xa9\\xff");
	expect("\xed\x9f\xbf", "\xed\x9f\xbf");		/* U+D7FF is fine */
}

static void test_mixed(void **state)
{
	(void)state;
	expect("\xe2\x9c\x93 done\n\x1b[2J\xff\"q\"\\",
	       "\xe2\x9c\x93 done\\n\\x1b[2J\\xff\"q\"\\");
}

/* Output never contains a raw control byte or line break, whatever the
 * input, and fits SANITIZE_MAX. */
static void test_all_bytes_safe(void **state)
{
	(void)state;
	char in[256];
	char out[SANITIZE_MAX(256)];
	size_t n;

	for (int i = 0; i < 256; i++)
		in[i] = (char)i;
	n = sanitize_text(in, sizeof in, out, sizeof out);
	assert_int_equal(n, strlen(out));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c < 0x20 || c == 0x7f)
			fail_msg("raw control byte 0x%02x at %zu", c, i);
		if (c >= 0x80)	/* every byte >= 0x80 here is alone: invalid */
			fail_msg("raw byte 0x%02x at %zu", c, i);
	}
}

/* Worst case: every byte becomes \xNN, and SANITIZE_MAX is enough. */
static void test_worst_case_fits(void **state)
{
	(void)state;
	char in[200];
	char out[SANITIZE_MAX(200)];
	size_t n;

	memset(in, '\xff', sizeof in);
	n = sanitize_text(in, sizeof in, out, sizeof out);
	assert_int_equal(n, 4 * sizeof in);
	assert_int_equal(strlen(out), 4 * sizeof in);
	for (size_t i = 0; i < sizeof in; i++)
		assert_memory_equal(out + 4 * i, "\\xff", 4);
}

/* ---- invisible characters ------------------------------------------- */

/* The code points sanitize.h lists as invisible or direction-changing, as
 * UTF-8, with the escape each must become. */
static const struct {
	uint32_t cp;
	const char *utf8;
	const char *esc;
} invisible[] = {
	{ 0x200b, "\xe2\x80\x8b", "\\u200b" },	/* zero width space */
	{ 0x200c, "\xe2\x80\x8c", "\\u200c" },	/* ZWNJ */
	{ 0x200d, "\xe2\x80\x8d", "\\u200d" },	/* ZWJ (between letters) */
	{ 0x200e, "\xe2\x80\x8e", "\\u200e" },	/* LRM */
	{ 0x200f, "\xe2\x80\x8f", "\\u200f" },	/* RLM */
	{ 0x202a, "\xe2\x80\xaa", "\\u202a" },	/* LRE */
	{ 0x202b, "\xe2\x80\xab", "\\u202b" },	/* RLE */
	{ 0x202c, "\xe2\x80\xac", "\\u202c" },	/* PDF */
	{ 0x202d, "\xe2\x80\xad", "\\u202d" },	/* LRO */
	{ 0x202e, "\xe2\x80\xae", "\\u202e" },	/* RLO */
	{ 0x2066, "\xe2\x81\xa6", "\\u2066" },	/* LRI */
	{ 0x2067, "\xe2\x81\xa7", "\\u2067" },	/* RLI */
	{ 0x2068, "\xe2\x81\xa8", "\\u2068" },	/* FSI */
	{ 0x2069, "\xe2\x81\xa9", "\\u2069" },	/* PDI */
	{ 0xfeff, "\xef\xbb\xbf", "\\ufeff" },	/* BOM / ZWNBSP */
	{ 0x2028, "\xe2\x80\xa8", "\\u2028" },	/* line separator */
	{ 0x2029, "\xe2\x80\xa9", "\\u2029" },	/* paragraph separator */
	{ 0x061c, "\xd8\x9c", "\\u061c" },		/* Arabic letter mark */
};
#define NINVISIBLE (sizeof invisible / sizeof invisible[0])

static void test_escape_invisible(void **state)
{
	(void)state;
	for (size_t i = 0; i < NINVISIBLE; i++) {
		char in[32], want[64];
		uint32_t cp = 0;

		/* Alone, between letters, at both ends. */
		expect(invisible[i].utf8, invisible[i].esc);
		snprintf(in, sizeof in, "bo%sb", invisible[i].utf8);
		snprintf(want, sizeof want, "bo%sb", invisible[i].esc);
		expect(in, want);
		snprintf(in, sizeof in, "%sx%s", invisible[i].utf8, invisible[i].utf8);
		snprintf(want, sizeof want, "%sx%s", invisible[i].esc, invisible[i].esc);
		expect(in, want);
		/* Valid UTF-8 all the same, and needs sanitizing. */
		assert_true(utf8_valid(invisible[i].utf8, strlen(invisible[i].utf8)));
		assert_true(sanitize_needed(invisible[i].utf8, strlen(invisible[i].utf8)));
		assert_int_equal(utf8_decode(invisible[i].utf8, strlen(invisible[i].utf8), &cp),
				 strlen(invisible[i].utf8));
		assert_int_equal(cp, invisible[i].cp);
	}
	/* The "Trojan Source" trick: the escape shows what the bytes do. */
	expect("if (admin\xe2\x80\xae } \xe2\x81\xa6) {",
	       "if (admin\\u202e } \\u2066) {");
}

/* Every code point of U+2000-U+206F and U+FE00-U+FEFF: escaped exactly
 * when listed. */
static void test_invisible_ranges_exact(void **state)
{
	(void)state;
	static const uint32_t blocks[][2] = { { 0x2000, 0x206f }, { 0xfe00, 0xfeff },
					      { 0x0600, 0x06ff } };

	for (size_t b = 0; b < 3; b++) {
		for (uint32_t cp = blocks[b][0]; cp <= blocks[b][1]; cp++) {
			char in[4], out[32];
			size_t len, n;
			bool listed = false;

			if (cp < 0x800) {
				in[0] = (char)(0xc0 | (cp >> 6));
				in[1] = (char)(0x80 | (cp & 0x3f));
				len = 2;
			} else {
				in[0] = (char)(0xe0 | (cp >> 12));
				in[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
				in[2] = (char)(0x80 | (cp & 0x3f));
				len = 3;
			}
			for (size_t i = 0; i < NINVISIBLE; i++)
				listed |= invisible[i].cp == cp;
			n = sanitize_text(in, len, out, sizeof out);
			if (listed) {
				char want[8];

				snprintf(want, sizeof want, "\\u%04x", (unsigned)cp);
				if (n != 6 || strcmp(out, want) != 0)
					fail_msg("U+%04X: \"%s\", want \"%s\"",
						 (unsigned)cp, out, want);
			} else if (n != len || memcmp(out, in, len) != 0) {
				fail_msg("U+%04X changed to \"%s\"", (unsigned)cp, out);
			}
			assert_int_equal(sanitize_needed(in, len), listed);
		}
	}
}

#define MAN "\xf0\x9f\x91\xa8"	/* U+1F468 */
#define WOMAN "\xf0\x9f\x91\xa9"	/* U+1F469 */
#define GIRL "\xf0\x9f\x91\xa7"	/* U+1F467 */
#define HEART "\xe2\x9d\xa4"		/* U+2764 */
#define VS16 "\xef\xb8\x8f"		/* U+FE0F */
#define FIRE "\xf0\x9f\x94\xa5"	/* U+1F525 */
#define ZWJ "\xe2\x80\x8d"
#define ZWJ_ESC "\\u200d"

/* U+200D between two pictographs is part of an emoji sequence and stays;
 * anywhere else it is escaped. */
static void test_zwj(void **state)
{
	(void)state;
	/* Emoji ZWJ sequences: unchanged. */
	unchanged(MAN ZWJ WOMAN);
	unchanged(MAN ZWJ WOMAN ZWJ GIRL);
	unchanged(HEART VS16 ZWJ FIRE);			/* heart on fire */
	unchanged("family: " MAN ZWJ WOMAN ZWJ GIRL "!");
	assert_false(sanitize_needed(MAN ZWJ WOMAN ZWJ GIRL,
				     strlen(MAN ZWJ WOMAN ZWJ GIRL)));
	/* Not between two pictographs: escaped. */
	expect("a" ZWJ "b", "a" ZWJ_ESC "b");
	expect(ZWJ, ZWJ_ESC);
	expect(ZWJ MAN, ZWJ_ESC MAN);
	expect(MAN ZWJ, MAN ZWJ_ESC);
	expect(MAN ZWJ "a", MAN ZWJ_ESC "a");
	expect("a" ZWJ MAN, "a" ZWJ_ESC MAN);
	expect(MAN ZWJ ZWJ WOMAN, MAN ZWJ_ESC ZWJ_ESC WOMAN);
	expect(MAN ZWJ "\n" WOMAN, MAN ZWJ_ESC "\\n" WOMAN);
	expect(MAN ZWJ "\xff" WOMAN, MAN ZWJ_ESC "\\xff" WOMAN);
	/* Another invisible character between pictographs is still escaped. */
	expect(MAN "\xe2\x80\x8b" WOMAN, MAN "\\u200b" WOMAN);
	expect(MAN "\xe2\x80\x8c" WOMAN, MAN "\\u200c" WOMAN);
	assert_true(sanitize_needed("a" ZWJ "b", strlen("a" ZWJ "b")));
	/* Only len bytes count: a pictograph past len does not join. */
	assert_true(sanitize_needed(MAN ZWJ WOMAN, strlen(MAN ZWJ)));
	expect_len(MAN ZWJ WOMAN, strlen(MAN ZWJ), MAN ZWJ_ESC);
}

static void test_sanitize_needed(void **state)
{
	(void)state;
	static const char *plain[] = {
		"", "hello", "caf\xc3\xa9", "\xf0\x9f\x98\x80", "\xc2\xa0",
		"say \"hi\" \\", "\xe2\x80\x8a", MAN ZWJ WOMAN,
	};
	static const char *needs[] = {
		"\n", "a\tb", "\x1b[31m", "\x7f", "\xc2\x9b", "\xff", "\xc3",
		"\xed\xa0\x80", "\xe2\x80\xae", "\xef\xbb\xbf", "\xd8\x9c",
		"ok\xe2\x80\x8b",
	};

	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
		if (sanitize_needed(plain[i], strlen(plain[i])))
			fail_msg("sanitize_needed(plain %zu) is true", i);
	for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++)
		if (!sanitize_needed(needs[i], strlen(needs[i])))
			fail_msg("sanitize_needed(needs %zu) is false", i);
	assert_true(sanitize_needed("a\0b", 3));
	assert_false(sanitize_needed("ab\n", 2));	/* only len bytes */
	assert_false(sanitize_needed("\n", 0));
}

/* ---- utf8_decode ---------------------------------------------------- */

static void test_utf8_decode(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t len;
		size_t want;
		uint32_t cp;
	} v[] = {
		{ "A", 1, 1, 0x41 },
		{ "\x00", 1, 1, 0 },
		{ "\x7f", 1, 1, 0x7f },
		{ "\xc2\x80", 2, 2, 0x80 },
		{ "\xc3\xa9", 2, 2, 0xe9 },
		{ "\xdf\xbf", 2, 2, 0x7ff },
		{ "\xe0\xa0\x80", 3, 3, 0x800 },
		{ "\xe2\x82\xac", 3, 3, 0x20ac },
		{ "\xed\x9f\xbf", 3, 3, 0xd7ff },
		{ "\xee\x80\x80", 3, 3, 0xe000 },
		{ "\xef\xbf\xbf", 3, 3, 0xffff },
		{ "\xf0\x90\x80\x80", 4, 4, 0x10000 },
		{ "\xf0\x9f\x98\x80", 4, 4, 0x1f600 },
		{ "\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff },
		/* Only the first character counts. */
		{ "ab", 2, 1, 0x61 },
		{ "\xc3\xa9z", 3, 2, 0xe9 },
		/* Not a well-formed sequence: 0. */
		{ "\x80", 1, 0, 0 },
		{ "\xbf", 1, 0, 0 },
		{ "\xc0\x80", 2, 0, 0 },
		{ "\xc1\xbf", 2, 0, 0 },
		{ "\xc3", 1, 0, 0 },
		{ "\xc3" "a", 2, 0, 0 },
		{ "\xe0\x9f\xbf", 3, 0, 0 },
		{ "\xed\xa0\x80", 3, 0, 0 },
		{ "\xed\xbf\xbf", 3, 0, 0 },
		{ "\xf0\x8f\xbf\xbf", 4, 0, 0 },
		{ "\xf4\x90\x80\x80", 4, 0, 0 },
		{ "\xf5\x80\x80\x80", 4, 0, 0 },
		{ "\xff", 1, 0, 0 },
		/* Cut short by len. */
		{ "\xc3\xa9", 1, 0, 0 },
		{ "\xe2\x82\xac", 2, 0, 0 },
		{ "\xf0\x9f\x98\x80", 3, 0, 0 },
	};

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		uint32_t cp = 0xdeadbeef;
		size_t n = utf8_decode(v[i].s, v[i].len, &cp);

		if (n != v[i].want)
			fail_msg("utf8_decode vector %zu: %zu, want %zu", i, n, v[i].want);
		if (n != 0 && cp != v[i].cp)
			fail_msg("utf8_decode vector %zu: U+%04X, want U+%04X", i,
				 (unsigned)cp, (unsigned)v[i].cp);
	}
}

/* PRODUCTION BUG (see the report): utf8_decode(s, 0, ...) reads s[0] and
 * returns 1 for an ASCII byte there, although s[0..0) holds no sequence. */
static void test_utf8_decode_empty(void **state)
{
	(void)state;
	uint32_t cp = 0;

	assert_int_equal(utf8_decode("A", 0, &cp), 0);
	assert_int_equal(utf8_decode("\xc3\xa9", 0, &cp), 0);
}

/* Every 1-, 2- and 3-byte code point decodes back to itself, and
 * utf8_valid agrees with utf8_decode. */
static void test_utf8_decode_all_bmp(void **state)
{
	(void)state;
	for (uint32_t cp = 0; cp < 0x10000; cp++) {
		char s[3];
		size_t len, n;
		uint32_t got = 0;

		if (cp < 0x80) {
			s[0] = (char)cp;
			len = 1;
		} else if (cp < 0x800) {
			s[0] = (char)(0xc0 | (cp >> 6));
			s[1] = (char)(0x80 | (cp & 0x3f));
			len = 2;
		} else {
			s[0] = (char)(0xe0 | (cp >> 12));
			s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
			s[2] = (char)(0x80 | (cp & 0x3f));
			len = 3;
		}
		n = utf8_decode(s, len, &got);
		if (cp >= 0xd800 && cp <= 0xdfff) {
			if (n != 0)
				fail_msg("surrogate U+%04X decoded", (unsigned)cp);
		} else if (n != len || got != cp) {
			fail_msg("U+%04X: %zu bytes, U+%04X", (unsigned)cp, n, (unsigned)got);
		}
		assert_int_equal(utf8_valid(s, len), n == len);
	}
}

/* The other kinds of escape stay within SANITIZE_MAX too: a C1 control
 * (2 bytes -> 8), U+061C (2 -> 6), U+202E (3 -> 6). */
static void test_worst_case_other_escapes(void **state)
{
	(void)state;
	static const struct {
		const char *unit, *esc;
	} kinds[] = {
		{ "\xc2\x9b", "\\xc2\\x9b" },
		{ "\xd8\x9c", "\\u061c" },
		{ "\xe2\x80\xae", "\\u202e" },
		{ "\x01", "\\x01" },
	};

	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		char in[240], out[SANITIZE_MAX(240)];
		size_t ul = strlen(kinds[k].unit), el = strlen(kinds[k].esc), reps, n;

		reps = sizeof in / ul;
		for (size_t i = 0; i < reps; i++)
			memcpy(in + i * ul, kinds[k].unit, ul);
		memset(out, CANARY, sizeof out);
		n = sanitize_text(in, reps * ul, out, SANITIZE_MAX(reps * ul));
		assert_int_equal(n, reps * el);
		assert_true(n < SANITIZE_MAX(reps * ul));
		for (size_t i = 0; i < reps; i++)
			assert_memory_equal(out + i * el, kinds[k].esc, el);
	}
}

/* An escape of an invisible character is never cut. */
static void test_truncation_invisible(void **state)
{
	(void)state;
	char out[32];

	/* "ab" + "\u202e" = 8 bytes. */
	for (size_t outsz = 1; outsz <= 12; outsz++) {
		size_t n;

		memset(out, CANARY, sizeof out);
		n = sanitize_text("ab\xe2\x80\xae" "c", 6, out, outsz);
		if (outsz - 1 < 2)
			assert_int_equal(n, outsz - 1);
		else if (outsz - 1 < 8)
			assert_int_equal(n, 2);
		else if (outsz - 1 < 9)
			assert_int_equal(n, 8);
		else
			assert_int_equal(n, 9);
		assert_int_equal(out[n], '\0');
		for (size_t i = outsz; i < sizeof out; i++)
			assert_int_equal(out[i], CANARY);
	}
}

/* PRODUCTION BUG (see the report; found by fuzz_sanitize): a ZWJ is kept
 * raw because a pictograph follows it, but when that pictograph does not
 * fit the output is cut after the ZWJ, which is then left dangling: an
 * invisible joiner between a pictograph and whatever is printed next.
 * The cut must come before the ZWJ (or the ZWJ must be escaped). */
static void test_truncation_keeps_zwj_joined(void **state)
{
	(void)state;
	static const char *const seqs[] = { MAN ZWJ WOMAN, HEART VS16 ZWJ FIRE,
					    "a" MAN ZWJ WOMAN ZWJ GIRL };

	for (size_t k = 0; k < sizeof seqs / sizeof seqs[0]; k++) {
		size_t len = strlen(seqs[k]);

		for (size_t outsz = 1; outsz <= len + 2; outsz++) {
			char out[64];
			size_t n = sanitize_text(seqs[k], len, out, outsz);

			if (n >= 3 && memcmp(out + n - 3, ZWJ, 3) == 0)
				fail_msg("sequence %zu, outsz %zu: the output (%zu bytes) ends "
					 "with a raw ZWJ", k, outsz, n);
		}
	}
}

/* ---- truncation ----------------------------------------------------- */

/* An input built from pieces, with the sanitized form of each piece. */
struct piece {
	const char *in;
	size_t inlen;
	const char *out;
};

static const struct piece pieces[] = {
	{ "a", 1, "a" },
	{ "\x1b", 1, "\\x1b" },
	{ "b", 1, "b" },
	{ "\xc3\xa9", 2, "\xc3\xa9" },
	{ "\n", 1, "\\n" },
	{ "\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80" },
	{ "\xff", 1, "\\xff" },
	{ "c", 1, "c" },
	{ "\xc2\x9b", 2, "\\xc2\\x9b" },
	{ "\xe2\x82\xac", 3, "\xe2\x82\xac" },
	{ "\t", 1, "\\t" },
	{ "\"", 1, "\"" },
	{ "\\", 1, "\\" },
	{ "\x7f", 1, "\\x7f" },
	{ "d", 1, "d" },
};
#define NPIECES (sizeof pieces / sizeof pieces[0])

/* For every outsz the output is the longest whole-piece prefix of the full
 * output that fits in outsz - 1 bytes, NUL-terminated, with nothing
 * written past outsz. */
static void test_truncation_every_size(void **state)
{
	(void)state;
	char in[64], full[256];
	size_t inlen = 0, fulllen = 0;
	size_t bounds[NPIECES + 1];
	char out[300];

	/* The C1 piece must stay two bytes; the \\xc2\\x9b escape is split
	 * per byte so its boundary is in the middle as well (see below). */
	bounds[0] = 0;
	for (size_t i = 0; i < NPIECES; i++) {
		memcpy(in + inlen, pieces[i].in, pieces[i].inlen);
		inlen += pieces[i].inlen;
		memcpy(full + fulllen, pieces[i].out, strlen(pieces[i].out));
		fulllen += strlen(pieces[i].out);
		bounds[i + 1] = fulllen;
	}
	full[fulllen] = '\0';
	expect_len(in, inlen, full);

	for (size_t outsz = 1; outsz <= fulllen + 2; outsz++) {
		size_t n, want = 0;

		for (size_t i = 0; i <= NPIECES; i++)
			if (bounds[i] <= outsz - 1)
				want = bounds[i];
		memset(out, CANARY, sizeof out);
		n = sanitize_text(in, inlen, out, outsz);
		if (n > outsz - 1)
			fail_msg("outsz %zu: returned %zu", outsz, n);
		if (out[n] != '\0')
			fail_msg("outsz %zu: not NUL-terminated at %zu", outsz, n);
		assert_int_equal(strlen(out), n);
		for (size_t i = outsz; i < sizeof out; i++)
			if (out[i] != CANARY)
				fail_msg("outsz %zu: byte %zu written", outsz, i);
		if (memcmp(out, full, n) != 0)
			fail_msg("outsz %zu: output is not a prefix: \"%s\"",
				 outsz, out);
		/* The C1 control "\xc2\x9b" may also be cut between its two
		 * \xNN escapes (each escape is whole); accept that cut. */
		if (n != want) {
			size_t c1 = bounds[8] + 4;

			if (!(n == c1 && want == bounds[8] && outsz - 1 >= c1))
				fail_msg("outsz %zu: got %zu bytes \"%s\", want "
					 "%zu (cut must be at a character "
					 "boundary, as late as fits)",
					 outsz, n, out, want);
		}
	}
}

static void test_truncation_simple(void **state)
{
	(void)state;
	char out[32];

	memset(out, CANARY, sizeof out);
	assert_int_equal(sanitize_text("abcdef", 6, out, 4), 3);
	assert_string_equal(out, "abc");

	/* An escape is never split. */
	assert_int_equal(sanitize_text("ab\x1b", 3, out, 5), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(sanitize_text("ab\x1b", 3, out, 7), 6);
	assert_string_equal(out, "ab\\x1b");
	assert_int_equal(sanitize_text("a\n", 2, out, 3), 1);
	assert_string_equal(out, "a");
	assert_int_equal(sanitize_text("a\n", 2, out, 4), 3);
	assert_string_equal(out, "a\\n");

	/* A UTF-8 character is never split. */
	assert_int_equal(sanitize_text("\xc3\xa9", 2, out, 2), 0);
	assert_string_equal(out, "");
	assert_int_equal(sanitize_text("a\xf0\x9f\x98\x80", 5, out, 5), 1);
	assert_string_equal(out, "a");
	assert_int_equal(sanitize_text("a\xf0\x9f\x98\x80", 5, out, 6), 5);
	assert_string_equal(out, "a\xf0\x9f\x98\x80");

	/* outsz 1: just the NUL. */
	out[0] = 'x';
	assert_int_equal(sanitize_text("abc", 3, out, 1), 0);
	assert_int_equal(out[0], '\0');
}

/* ---- utf8_valid ----------------------------------------------------- */

struct vec {
	const char *s;
	size_t len;
	bool valid;
};

#define V(lit, ok) { lit, sizeof(lit) - 1, ok }

static const struct vec vecs[] = {
	V("", true),
	V("hello", true),
	V("caf\xc3\xa9", true),
	V("\xf0\x9f\x98\x80", true),
	V("\xe2\x82\xac", true),
	V("\xc2\x80", true),
	V("\xc2\x9b", true),
	V("\xdf\xbf", true),
	V("\xe0\xa0\x80", true),		/* U+0800, smallest 3-byte */
	V("\xed\x9f\xbf", true),		/* U+D7FF */
	V("\xee\x80\x80", true),		/* U+E000 */
	V("\xef\xbf\xbf", true),		/* U+FFFF */
	V("\xf0\x90\x80\x80", true),		/* U+10000 */
	V("\xf4\x8f\xbf\xbf", true),		/* U+10FFFF */
	V("\x7f\x1b\n", true),			/* controls are valid UTF-8 */
	V("a\0b", true),			/* so is U+0000 */
	V("\xff", false),
	V("\xfe", false),
	V("\x80", false),
	V("\xbf", false),
	V("a\x80", false),
	V("\xc3", false),
	V("\xc3" "a", false),
	V("\xe2\x82", false),
	V("\xe2\x82" "A", false),
	V("\xf0\x9f\x98", false),
	V("\xc0\xaf", false),
	V("\xc0\x80", false),
	V("\xc1\xbf", false),
	V("\xe0\x80\xaf", false),
	V("\xe0\x9f\xbf", false),		/* overlong U+07FF */
	V("\xf0\x80\x80\xaf", false),
	V("\xf0\x8f\xbf\xbf", false),		/* overlong U+FFFF */
	V("\xed\xa0\x80", false),		/* U+D800 */
	V("\xed\xbf\xbf", false),		/* U+DFFF */
	V("\xed\xa0\x80\xed\xb0\x80", false),	/* CESU-8 pair */
	V("\xf4\x90\x80\x80", false),		/* U+110000 */
	V("\xf5\x80\x80\x80", false),
	V("\xf8\x88\x80\x80\x80", false),
	V("\xfc\x84\x80\x80\x80\x80", false),
	V("\xc3\xa9\xa9", false),		/* extra continuation */
};

static void test_utf8_valid_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
		bool got = utf8_valid(vecs[i].s, vecs[i].len);

		if (got != vecs[i].valid)
			fail_msg("utf8_valid vector %zu (len %zu): got %d, "
				 "want %d", i, vecs[i].len, got, vecs[i].valid);
	}
}

/* utf8_valid only looks at len bytes. */
static void test_utf8_valid_uses_len(void **state)
{
	(void)state;
	assert_true(utf8_valid("abc\xff", 3));
	assert_false(utf8_valid("\xc3\xa9", 1));
	assert_true(utf8_valid("\xc3\xa9", 2));
	assert_true(utf8_valid("\xff", 0));
}

/* Reference decoder (RFC 3629 table). */
static bool ref_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0;
			if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90;
			if (c == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if (len - i <= n)	/* needs n more bytes */
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		i += n + 1;
	}
	return true;
}

/* Random strings from an alphabet with no ASCII controls and no C1 lead
 * byte: sanitize leaves them unchanged exactly when utf8_valid says they
 * are valid and sanitize_needed says nothing needs escaping (the alphabet
 * can make U+200F and U+202C), and utf8_valid agrees with a reference
 * decoder. */
static void test_valid_agrees_with_sanitize(void **state)
{
	(void)state;
	static const unsigned char alpha[] = {
		'a', ' ', 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80,
		0xff, 0xed, 0xa0, 0xc0, 0xf4, 0x90, 0x8f, 0xbf, 0xe0,
	};
	uint32_t rng = 12345;
	char in[24], out[SANITIZE_MAX(24)];

	for (int iter = 0; iter < 200000; iter++) {
		size_t len, n;
		bool v, r;

		rng = rng * 1103515245u + 12345u;
		len = (rng >> 16) % (sizeof in + 1);
		for (size_t i = 0; i < len; i++) {
			rng = rng * 1103515245u + 12345u;
			in[i] = (char)alpha[(rng >> 16) % sizeof alpha];
		}
		v = utf8_valid(in, len);
		r = ref_valid((const unsigned char *)in, len);
		n = sanitize_text(in, len, out, sizeof out);
		if (v != r)
			fail_msg("iteration %d: utf8_valid %d, reference %d",
				 iter, v, r);
		if ((v && !sanitize_needed(in, len)) !=
		    (n == len && memcmp(in, out, len) == 0))
			fail_msg("iteration %d: utf8_valid %d, sanitize_needed %d, "
				 "but sanitize %s", iter, v, sanitize_needed(in, len),
				 n == len ? "left it as is" : "changed it");
		if (!v && !sanitize_needed(in, len))
			fail_msg("iteration %d: invalid but sanitize_needed false", iter);
		if (!v && strstr(out, "\\x") == NULL)
			fail_msg("iteration %d: invalid input without \\x", iter);
	}
}

/* Random sequences of whole characters, against the rules of sanitize.h
 * applied character by character. */
static void test_tokens_against_rules(void **state)
{
	(void)state;
	enum kind { PLAIN, PICT, ZWJK, ESCAPED };
	static const struct {
		const char *in, *out;
		enum kind kind;
	} tok[] = {
		{ "a", "a", PLAIN },
		{ "\xc3\xa9", "\xc3\xa9", PLAIN },
		{ "\xe4\xb8\xad", "\xe4\xb8\xad", PLAIN },
		{ " ", " ", PLAIN },
		{ MAN, MAN, PICT },
		{ "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", PICT },
		{ HEART, HEART, PICT },
		{ VS16, VS16, PICT },
		{ ZWJ, ZWJ, ZWJK },
		{ "\xe2\x80\xae", "\\u202e", ESCAPED },
		{ "\xe2\x80\x8b", "\\u200b", ESCAPED },
		{ "\xef\xbb\xbf", "\\ufeff", ESCAPED },
		{ "\n", "\\n", ESCAPED },
		{ "\x01", "\\x01", ESCAPED },
		{ "\xc2\x85", "\\xc2\\x85", ESCAPED },
		{ "\xff", "\\xff", ESCAPED },
	};
	enum { NTOK = sizeof tok / sizeof tok[0], MAXT = 12 };
	uint32_t rng = 777;

	for (int iter = 0; iter < 100000; iter++) {
		size_t pick[MAXT], nt, len = 0, wlen = 0, n;
		char in[MAXT * 4 + 1], want[MAXT * 12 + 1], out[SANITIZE_MAX(MAXT * 4)];

		rng = rng * 1103515245u + 12345u;
		nt = (rng >> 16) % (MAXT + 1);
		for (size_t i = 0; i < nt; i++) {
			rng = rng * 1103515245u + 12345u;
			pick[i] = (rng >> 16) % NTOK;
		}
		for (size_t i = 0; i < nt; i++) {
			const char *o = tok[pick[i]].out;

			if (tok[pick[i]].kind == ZWJK &&
			    !(i > 0 && tok[pick[i - 1]].kind == PICT && i + 1 < nt &&
			      tok[pick[i + 1]].kind == PICT))
				o = ZWJ_ESC;
			memcpy(in + len, tok[pick[i]].in, strlen(tok[pick[i]].in));
			len += strlen(tok[pick[i]].in);
			memcpy(want + wlen, o, strlen(o));
			wlen += strlen(o);
		}
		want[wlen] = '\0';
		n = sanitize_text(in, len, out, sizeof out);
		if (n != wlen || strcmp(out, want) != 0)
			fail_msg("iteration %d: \"%s\", want \"%s\"", iter, out, want);
		assert_int_equal(sanitize_needed(in, len), n != len || memcmp(in, out, len) != 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_ascii),
		cmocka_unit_test(test_utf8_unchanged),
		cmocka_unit_test(test_quotes_backslashes_unchanged),
		cmocka_unit_test(test_escape_esc),
		cmocka_unit_test(test_escape_newline_tab_cr),
		cmocka_unit_test(test_escape_other_c0_and_del),
		cmocka_unit_test(test_escape_c1),
		cmocka_unit_test(test_invalid_bytes),
		cmocka_unit_test(test_mixed),
		cmocka_unit_test(test_all_bytes_safe),
		cmocka_unit_test(test_worst_case_fits),
		cmocka_unit_test(test_worst_case_other_escapes),
		cmocka_unit_test(test_escape_invisible),
		cmocka_unit_test(test_invisible_ranges_exact),
		cmocka_unit_test(test_zwj),
		cmocka_unit_test(test_sanitize_needed),
		cmocka_unit_test(test_utf8_decode),
		cmocka_unit_test(test_utf8_decode_empty),
		cmocka_unit_test(test_utf8_decode_all_bmp),
		cmocka_unit_test(test_truncation_invisible),
		cmocka_unit_test(test_truncation_keeps_zwj_joined),
		cmocka_unit_test(test_truncation_every_size),
		cmocka_unit_test(test_truncation_simple),
		cmocka_unit_test(test_utf8_valid_vectors),
		cmocka_unit_test(test_utf8_valid_uses_len),
		cmocka_unit_test(test_valid_agrees_with_sanitize),
		cmocka_unit_test(test_tokens_against_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
