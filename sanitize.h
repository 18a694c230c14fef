/* sanitize.h - making text from the network safe to show on a terminal.
 *
 * Valid UTF-8 passes through unchanged (accents, emoji, quotes,
 * backslashes).  C0 controls, DEL and the C1 controls U+0080-U+009F are
 * shown as "\n", "\t", "\r" or "\xNN"; bytes that are not valid UTF-8 are
 * shown as "\xNN".  Characters that are invisible or turn text around
 * (bidi overrides and isolates, zero-width characters and direction marks,
 * U+FEFF, the line and paragraph separators) are shown as "\u202e", so
 * "bo\u200bb" cannot pass for "bob" nor a line run backwards.  The output
 * therefore never contains an escape sequence or a line break. */
#ifndef SANITIZE_H
#define SANITIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Worst case: every input byte becomes four output bytes (a 3-byte
 * invisible character becomes a 6-byte escape). */
#define SANITIZE_MAX(len) ((len) * 4 + 1)

/* Writes the safe form of in[0..len) to out (NUL-terminated, truncated to
 * outsz - 1 bytes at a character boundary).  Returns the length written. */
size_t sanitize_text(const char *in, size_t len, char *out, size_t outsz);

/* Whether in[0..len) is well-formed UTF-8 (no overlongs, surrogates or
 * code points past U+10FFFF). */
bool utf8_valid(const char *in, size_t len);

/* Whether valid UTF-8 text holds a character sanitize_text would escape
 * (a control or an invisible one). */
bool sanitize_needed(const char *in, size_t len);

/* Length of the well-formed UTF-8 sequence at s[0..len), with its code
 * point in *cp, or 0 when the bytes there are not one. */
size_t utf8_decode(const char *s, size_t len, uint32_t *cp);

#endif
