/* log.h - diagnostics on stderr, prefixed with the program's name.
 *
 * Every line is formatted first and written with one write(2), so lines
 * from different threads never interleave.  Control characters in the
 * formatted text (which may come from the network) are escaped, so a log
 * line can never drive the terminal. */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdnoreturn.h>

enum log_level { LOG_QUIET = 0, LOG_NORMAL = 1, LOG_VERBOSE = 2 };

void log_init(const char *progname);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
const char *log_progname(void);

/* Always printed: warnings and errors the user must see. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed unless -q: events (subscribed, connected, ...). */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only with -v: per-message detail. */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn, then exit(status). */
noreturn void log_die(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Where finished lines go instead of write(2) on stderr (the interactive
 * console, which must print them above its prompt).  Set once, before any
 * thread starts. */
void log_set_sink(void (*sink)(const char *line, size_t len));

/* Rate limit for complaints about one bad peer: returns true while *count
 * is below a small budget; the call that exhausts it logs once that
 * further problems from `who` are not logged. */
bool log_budget(unsigned *count, const char *who);

#endif
