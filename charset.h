/* charset.h - typed text as the UTF-8 the protocol carries.
 *
 * A line that is valid UTF-8 is sent as it is.  Otherwise, in a locale
 * whose character set is not UTF-8 (a Latin-1 terminal), it is converted
 * from that set with iconv; failing that, each invalid byte becomes
 * U+FFFD, and the user is told once.  Main thread only. */
#ifndef CHARSET_H
#define CHARSET_H

#include <stddef.h>

/* Takes the character set from the environment's locale (LC_CTYPE). */
void charset_init(void);
void charset_free(void);

/* The line as UTF-8: line itself, or a converted copy in *scratch (freed
 * by the next call or charset_free).  *outlen gets its length. */
const char *charset_to_utf8(const char *line, size_t len, size_t *outlen);

#endif
