/* sanitize.c - terminal-safe rendering of untrusted text. */
#include "sanitize.h"

#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at s[0..len), or 0 if the bytes
 * there are not one (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
	size_t n, i;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1fu;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0fu;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07u;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3fu);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

bool utf8_valid(const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, n;
	uint32_t cp;

	while (i < len) {
		n = utf8_seq(s + i, len - i, &cp);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* Writes the escape for one byte ("\n" or "\xNN") into esc; returns its
 * length. */
static size_t escape_byte(unsigned char b, char esc[4])
{
	static const char hex[] = "0123456789abcdef";

	esc[0] = '\\';
	switch (b) {
	case '\n': esc[1] = 'n'; return 2;
	case '\t': esc[1] = 't'; return 2;
	case '\r': esc[1] = 'r'; return 2;
	default:
		esc[1] = 'x';
		esc[2] = hex[b >> 4];
		esc[3] = hex[b & 0xf];
		return 4;
	}
}

size_t sanitize_text(const char *in, size_t len, char *out, size_t outsz)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0, n, k;
	uint32_t cp;
	char esc[8];

	if (outsz == 0)
		return 0;
	while (i < len) {
		n = utf8_seq(s + i, len - i, &cp);
		if (n == 0 || cp < 0x20 || cp == 0x7f ||
		    (cp >= 0x80 && cp <= 0x9f)) {
			/* Escape the raw bytes: one for a control or a
			 * bad byte, two for a C1 control. */
			size_t take = n ? n : 1, e = 0;

			for (k = 0; k < take; k++)
				e += escape_byte(s[i + k], esc + e);
			if (o + e >= outsz)
				break;
			for (k = 0; k < e; k++)
				out[o++] = esc[k];
			i += take;
		} else {
			if (o + n >= outsz)
				break;
			for (k = 0; k < n; k++)
				out[o++] = (char)s[i + k];
			i += n;
		}
	}
	out[o] = '\0';
	return o;
}
