/* log.c - diagnostics on stderr, one write(2) per line. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sanitize.h"

static const char *progname = "chat";
static enum log_level level = LOG_NORMAL;
static void (*sink)(const char *line, size_t len);

void log_set_sink(void (*fn)(const char *line, size_t len))
{
	sink = fn;
}

void log_init(const char *name)
{
	const char *slash = strrchr(name, '/');

	progname = slash ? slash + 1 : name;
}

void log_set_level(enum log_level l) { level = l; }
enum log_level log_get_level(void) { return level; }
const char *log_progname(void) { return progname; }

/* Formats "prog: text\n" with network-derived text made harmless, and
 * writes it at once.  errno is preserved for the caller. */
static void emit(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void emit(const char *fmt, va_list ap)
{
	char raw[1024], line[4096];
	int saved = errno;
	int n = vsnprintf(raw, sizeof raw, fmt, ap);
	size_t len;

	if (n < 0)
		return;
	len = (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1;
	n = snprintf(line, sizeof line, "%s: ", progname);
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	len = (size_t)n + sanitize_text(raw, len, line + n, sizeof line - (size_t)n - 1);
	line[len++] = '\n';
	if (sink) {
		sink(line, len);
		errno = saved;
		return;
	}
	/* One write keeps lines whole; a short write to stderr is not worth
	 * retrying for a diagnostic. */
	if (write(STDERR_FILENO, line, len) < 0) {
		/* nothing sensible left to report to */
	}
	errno = saved;
}

void log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	if (level < LOG_NORMAL)
		return;
	va_start(ap, fmt);
	emit(fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	if (level < LOG_VERBOSE)
		return;
	va_start(ap, fmt);
	emit(fmt, ap);
	va_end(ap);
}

void log_die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(fmt, ap);
	va_end(ap);
	exit(status);
}

#define LOG_BUDGET 50

bool log_budget(unsigned *count, const char *who)
{
	if (*count < LOG_BUDGET) {
		++*count;
		return true;
	}
	if (*count == LOG_BUDGET) {
		++*count;
		log_warn("%s: more problems; not logging them", who);
	}
	return false;
}
