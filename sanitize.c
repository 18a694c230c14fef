/* sanitize.c - terminal-safe rendering of untrusted text. */
#include "sanitize.h"

#include <string.h>

size_t utf8_decode(const char *in, size_t len, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n, i;
	uint32_t c;

	if (len == 0)
		return 0;
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
	/* RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF. */
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* How many bytes from s on are ASCII, eight at a time. */
static size_t ascii_run(const char *s, size_t len)
{
	size_t i = 0;
	uint64_t w;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		if (w & 0x8080808080808080ull)
			break;
	}
	while (i < len && (unsigned char)s[i] < 0x80)
		i++;
	return i;
}

bool utf8_valid(const char *in, size_t len)
{
	size_t i = 0, n;
	uint32_t cp;

	while (i < len) {
		i += ascii_run(in + i, len - i);
		if (i == len)
			break;
		n = utf8_decode(in + i, len - i, &cp);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
}

/* Zero-width and direction-changing characters: the "Trojan Source" set,
 * the Arabic letter mark, the BOM and the Unicode line breaks. */
static bool is_invisible(uint32_t cp)
{
	return (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0xfeff || cp == 0x061c;
}

/* Roughly Unicode's Extended_Pictographic, and the emoji presentation
 * selector: what a zero-width joiner joins in an emoji sequence. */
static bool is_pictographic(uint32_t cp)
{
	return (cp >= 0x1f000 && cp <= 0x1faff) || (cp >= 0x2600 && cp <= 0x27bf) ||
	       (cp >= 0x2300 && cp <= 0x23ff) || (cp >= 0x2b00 && cp <= 0x2bff) ||
	       cp == 0xfe0f || cp == 0x00a9 || cp == 0x00ae;
}

/* A zero-width joiner inside an emoji sequence (the family in
 * U+1F468 U+200D U+1F469) is shown as itself; between letters it would
 * hide one word inside another. */
static bool joins_emoji(uint32_t prev, const char *next, size_t len)
{
	uint32_t cp;

	return is_pictographic(prev) && len > 0 && utf8_decode(next, len, &cp) > 0 &&
	       is_pictographic(cp);
}

/* Whether the character cp, after prev and before next[0..left), is
 * shown as itself. */
static bool shown_raw(uint32_t cp, uint32_t prev, const char *next, size_t left)
{
	if (is_control(cp))
		return false;
	return !is_invisible(cp) || (cp == 0x200d && joins_emoji(prev, next, left));
}

bool sanitize_needed(const char *in, size_t len)
{
	size_t i = 0, n;
	uint32_t cp, prev = 0;

	while (i < len) {
		n = utf8_decode(in + i, len - i, &cp);
		if (n == 0 || !shown_raw(cp, prev, in + i + n, len - i - n))
			return true;
		i += n;
		prev = cp;
	}
	return false;
}

static const char hex[] = "0123456789abcdef";

/* The escape for one raw byte ("\n" or "\xNN"); returns its length. */
static size_t escape_byte(unsigned char b, char *esc)
{
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

/* The escape for a character of the invisible set: "\u202e". */
static size_t escape_code_point(uint32_t cp, char *esc)
{
	esc[0] = '\\';
	esc[1] = 'u';
	esc[2] = hex[(cp >> 12) & 0xf];
	esc[3] = hex[(cp >> 8) & 0xf];
	esc[4] = hex[(cp >> 4) & 0xf];
	esc[5] = hex[cp & 0xf];
	return 6;
}

size_t sanitize_text(const char *in, size_t len, char *out, size_t outsz)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0, n, k, e, take;
	uint32_t cp = 0, prev = 0;
	char esc[16];

	if (outsz == 0)
		return 0;
	for (; i < len; prev = n ? cp : 0) {
		/* Printable ASCII, most of any text, is copied a run at a time. */
		if (s[i] >= 0x20 && s[i] < 0x7f) {
			size_t run = 1;

			while (i + run < len && s[i + run] >= 0x20 && s[i + run] < 0x7f)
				run++;
			if (o + run >= outsz)
				run = outsz - o - 1;
			if (run == 0)
				break;
			memcpy(out + o, in + i, run);
			o += run;
			i += run;
			cp = s[i - 1];
			n = 1;
			continue;
		}
		n = utf8_decode(in + i, len - i, &cp);
		if (n != 0 && shown_raw(cp, prev, in + i + n, len - i - n)) {
			uint32_t next;
			/* A joiner kept raw comes with the pictograph it joins,
			 * or not at all: never left dangling by the cut. */
			size_t need = n + (cp == 0x200d ? utf8_decode(in + i + n, len - i - n, &next) : 0);

			if (o + need >= outsz)
				break;
			for (k = 0; k < n; k++)
				out[o++] = (char)s[i + k];
			i += n;
			continue;
		}
		/* A control or a bad byte shows its raw bytes (two for a C1
		 * control); an invisible character its code point. */
		take = n ? n : 1;
		e = 0;
		if (n != 0 && is_invisible(cp))
			e = escape_code_point(cp, esc);
		else
			for (k = 0; k < take; k++)
				e += escape_byte(s[i + k], esc + e);
		if (o + e >= outsz)
			break;
		for (k = 0; k < e; k++)
			out[o++] = esc[k];
		i += take;
	}
	out[o] = '\0';
	return o;
}
