/* fuzz_sanitize.c - libFuzzer target: the terminal-safe text renderer
 * (sanitize.c).
 *
 * Input layout: bytes 0-1 (little-endian) pick the output buffer size,
 * outsz = value % (SANITIZE_MAX(len) + 2), so from 0 to one past the
 * documented worst case; the rest is the text.  Checks, besides the
 * sanitizers (the output buffer is malloc'ed to exactly outsz bytes):
 * - utf8_valid agrees with an independent validator (Unicode table 3-7);
 * - with the worst-case buffer the output is exactly what the documented
 *   rules give (an independent implementation below): valid UTF-8 as is,
 *   \n \t \r, other C0 / DEL / C1 bytes and bytes that are not valid UTF-8
 *   as \xNN;
 * - any output is NUL-terminated, shorter than outsz, without a raw control
 *   byte (< 0x20, 0x7f) or a C1 control (c2 80 - c2 9f), valid UTF-8;
 * - a truncated output is a prefix of the full one, cut where a character
 *   or escape starts (the same text with outsz = length + 1 gives the same
 *   length) and only when the next one (at most 8 bytes) does not fit;
 * - valid UTF-8 without controls comes out unchanged, anything else longer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* From fuzz_common.c. */
_Noreturn void fuzz_fail(const char *what, const char *file, int line);
void fuzz_check_safe_text(const char *out, size_t n, size_t outsz);
void fuzz_check_sanitize_full(const char *in, size_t len);

#define CHECK(c) ((c) ? (void)0 : fuzz_fail(#c, __FILE__, __LINE__))

/* Length of the well-formed sequence at s[0..len) per the Unicode
 * standard's table 3-7, or 0. */
static size_t ref_seq(const unsigned char *s, size_t len)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (s[0] <= 0x7f)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
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
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

static bool ref_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		n = ref_seq(s + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static size_t ref_escape(unsigned char b, char *out)
{
	switch (b) {
	case '\n': memcpy(out, "\\n", 2); return 2;
	case '\t': memcpy(out, "\\t", 2); return 2;
	case '\r': memcpy(out, "\\r", 2); return 2;
	default:
		snprintf(out, 5, "\\x%02x", b);
		return 4;
	}
}

/* The documented rendering of s[0..len) into out (room for 4 * len). */
static size_t ref_sanitize(const unsigned char *s, size_t len, char *out)
{
	size_t i = 0, o = 0, n;

	while (i < len) {
		n = ref_seq(s + i, len - i);
		if (n == 0 || s[i] < 0x20 || s[i] == 0x7f ||
		    (n == 2 && s[i] == 0xc2 && s[i + 1] <= 0x9f)) {
			size_t take = n ? n : 1, k;

			for (k = 0; k < take; k++)
				o += ref_escape(s[i + k], out + o);
			i += take;
		} else {
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		}
	}
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + (size < 2 ? size : 2);
	size_t len = size < 2 ? 0 : size - 2;
	size_t full = SANITIZE_MAX(len), outsz, n, nfull, nref;
	unsigned sel = size < 2 ? 0 : (unsigned)(data[0] | data[1] << 8);
	char *ref, *whole, *out;

	CHECK(utf8_valid(in, len) == ref_valid((const unsigned char *)in, len));

	ref = malloc(full);
	whole = malloc(full);
	CHECK(ref != NULL && whole != NULL);
	nref = ref_sanitize((const unsigned char *)in, len, ref);
	nfull = sanitize_text(in, len, whole, full);
	fuzz_check_safe_text(whole, nfull, full);
	CHECK(nfull == nref && memcmp(whole, ref, nref) == 0);
	fuzz_check_sanitize_full(in, len);

	outsz = sel % (full + 2);
	out = malloc(outsz);	/* ASan flags any byte written at outsz 0 */
	CHECK(out != NULL || outsz == 0);
	n = sanitize_text(in, len, out, outsz);
	if (outsz == 0) {
		CHECK(n == 0);
	} else {
		fuzz_check_safe_text(out, n, outsz);
		CHECK(n <= nfull && memcmp(out, whole, n) == 0);
		if (n < nfull) {
			char *again = malloc(n + 1);

			CHECK(outsz - n <= 8);
			CHECK(again != NULL);
			CHECK(sanitize_text(in, len, again, n + 1) == n);
			CHECK(memcmp(again, whole, n) == 0);
			free(again);
		}
	}
	free(out);
	free(ref);
	free(whole);
	return 0;
}
