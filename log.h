/* log.h - diagnostics on stderr, prefixed with the program's name.
 *
 * Every line is formatted first and written with one write(2), so lines
 * from different threads never interleave.  Control characters in the
 * formatted text (which may come from the network) are escaped, so a log
 * line can never drive the terminal. */
#ifndef LOG_H
#define LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

enum log_level { LOG_QUIET = 0, LOG_NORMAL = 1, LOG_VERBOSE = 2 };

void log_init(const char *progname);
void log_set_level(enum log_level level);

/* Prints when the level set allows: LOG_QUIET lines always. */
void log_at(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Always printed: warnings and errors the user must see. */
#define log_warn(...) log_at(LOG_QUIET, __VA_ARGS__)
/* Printed unless -q: events (subscribed, connected, ...). */
#define log_info(...) log_at(LOG_NORMAL, __VA_ARGS__)
/* Printed only with -v: per-message detail. */
#define log_debug(...) log_at(LOG_VERBOSE, __VA_ARGS__)
/* log_warn, then exit(status). */
noreturn void log_die(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Where finished lines go instead of write(2) on stderr (the interactive
 * console, which must print them above its prompt).  Set once, before any
 * thread starts. */
void log_set_sink(void (*sink)(const char *line, size_t len));

/* ---------------------------------------------------------------------
 * Budgets: what one peer can make us log.  Every line a connection causes
 * goes through its budget: the first LOG_BUDGET are printed, later ones
 * are counted and summed up at most once a second ("N more lines from
 * WHO suppressed") and when the connection ends.
 * ------------------------------------------------------------------- */

#define LOG_BUDGET 50

/* Thread-safe: a relay's reader and a subscriber's sender may both
 * charge the connection that caused a line. */
struct log_budget {
	const char *who;	/* "127.0.0.1:5000": lives as long as the budget */
	_Atomic unsigned used;
	_Atomic uint64_t suppressed;	/* since the last summary */
	_Atomic int64_t last_summary_ms;
};

void log_budget_init(struct log_budget *b, const char *who);
/* Like log_at, charged to b; and log_warn / log_info, charged to b. */
void log_peer(struct log_budget *b, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define log_peer_warn(b, ...) log_peer((b), LOG_QUIET, __VA_ARGS__)
#define log_peer_info(b, ...) log_peer((b), LOG_NORMAL, __VA_ARGS__)
/* Prints the summary of what is still suppressed (when it is due, and at
 * the end). */
void log_budget_flush(struct log_budget *b);
/* Milliseconds until a summary is due (0: now), or -1 when nothing is
 * suppressed. */
int log_budget_due_ms(struct log_budget *b);

/* ---------------------------------------------------------------------
 * Counted events: many events of one kind (refused connections, refused
 * subscriptions) become one line a second.  Not thread-safe by itself:
 * one thread, or the caller's lock.
 * ------------------------------------------------------------------- */

struct log_tally {
	uint64_t count;		/* since the last line */
	int64_t last_ms;	/* when the last line was printed */
};

/* Logs "fmt" at once when no line of this kind went out in the last
 * second, else counts it; returns true when it logged. */
bool log_tally(struct log_tally *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* When events were counted and their second is over (or force), logs
 * "<what>: N more in the last M ms" and returns true. */
bool log_tally_flush(struct log_tally *t, const char *what, bool force);
/* Milliseconds until log_tally_flush has something due, or -1. */
int log_tally_due_ms(const struct log_tally *t);

#endif
