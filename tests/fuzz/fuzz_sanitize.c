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
 *   as \xNN, the invisible and direction-changing characters (U+200B-
 *   U+200F, U+202A-U+202E, U+2066-U+2069, U+FEFF, U+2028, U+2029, U+061C)
 *   as \uXXXX, except a U+200D between two pictographic characters;
 * - any output is NUL-terminated, shorter than outsz, valid UTF-8, without
 *   a C0 / DEL / C1 control nor an invisible character (but a ZWJ between
 *   two pictographs);
 * - sanitize_needed agrees for valid UTF-8 (whether anything is escaped),
 *   and utf8_decode agrees with the reference at every offset;
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
size_t fuzz_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp);
bool fuzz_is_invisible(uint32_t cp);
bool fuzz_is_pictographic(uint32_t cp);
void fuzz_check_safe_text(const char *out, size_t n, size_t outsz);
void fuzz_check_sanitize_full(const char *in, size_t len);

#define CHECK(c) ((c) ? (void)0 : fuzz_fail(#c, __FILE__, __LINE__))

/* Table 3-7 (fuzz_common.c). */
static size_t ref_seq(const unsigned char *s, size_t len)
{
	uint32_t cp;

	return fuzz_utf8_seq(s, len, &cp);
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
	uint32_t cp = 0, prev = 0, next;

	while (i < len) {
		n = fuzz_utf8_seq(s + i, len - i, &cp);
		if (n == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
			size_t take = n ? n : 1, k;

			for (k = 0; k < take; k++)
				o += ref_escape(s[i + k], out + o);
			i += take;
			prev = n ? cp : 0;
			continue;
		}
		if (fuzz_is_invisible(cp) &&
		    !(cp == 0x200d && fuzz_is_pictographic(prev) &&
		      fuzz_utf8_seq(s + i + n, len - i - n, &next) > 0 &&
		      fuzz_is_pictographic(next))) {
			snprintf(out + o, 7, "\\u%04x", (unsigned)cp);
			o += 6;
		} else {
			memcpy(out + o, s + i, n);
			o += n;
		}
		i += n;
		prev = cp;
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
	for (size_t i = 0; i < len; i++) {
		uint32_t a = 0, b = 0;
		size_t na = utf8_decode(in + i, len - i, &a);
		size_t nb = fuzz_utf8_seq((const unsigned char *)in + i, len - i, &b);

		CHECK(na == nb);
		CHECK(na == 0 || a == b);
	}

	ref = malloc(full);
	whole = malloc(full);
	CHECK(ref != NULL && whole != NULL);
	nref = ref_sanitize((const unsigned char *)in, len, ref);
	nfull = sanitize_text(in, len, whole, full);
	fuzz_check_safe_text(whole, nfull, full);
	CHECK(nfull == nref && memcmp(whole, ref, nref) == 0);
	if (utf8_valid(in, len))
		CHECK(sanitize_needed(in, len) == (nfull != len || memcmp(whole, in, len) != 0));
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
