/* log.c - diagnostics on stderr, one write(2) per line. */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sanitize.h"
#include "thread.h"

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

void log_set_level(enum log_level l)
{
	level = l;
}

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
	} else if (write(STDERR_FILENO, line, len) < 0) {
		/* One write keeps lines whole; a failed diagnostic has
		 * nowhere left to be reported. */
	}
	errno = saved;
}

void log_at(enum log_level at, const char *fmt, ...)
{
	va_list ap;

	if (level < at)
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

/* ---------------------------------------------------------------------
 * Budgets
 * ------------------------------------------------------------------- */

#define SUMMARY_MS 1000

void log_budget_init(struct log_budget *b, const char *who)
{
	b->who = who;
	atomic_init(&b->used, 0);
	atomic_init(&b->suppressed, 0);
	atomic_init(&b->last_summary_ms, 0);
}

void log_budget_flush(struct log_budget *b)
{
	uint64_t n = atomic_exchange(&b->suppressed, 0);

	atomic_store(&b->last_summary_ms, mono_now_ms());
	if (n > 0)
		log_warn("%" PRIu64 " more line(s) from %s suppressed", n, b->who);
}

/* Whether a line may go out now; counts it when not. */
static bool charge(struct log_budget *b, bool wanted)
{
	int64_t last;

	unsigned used;

	if (!wanted)
		return false;
	if (atomic_load(&b->used) <= LOG_BUDGET &&
	    (used = atomic_fetch_add(&b->used, 1)) <= LOG_BUDGET) {
		if (used < LOG_BUDGET)
			return true;
		/* The first one over: the summaries' clock starts. */
		atomic_store(&b->last_summary_ms, mono_now_ms());
	}
	atomic_fetch_add(&b->suppressed, 1);
	last = atomic_load(&b->last_summary_ms);
	/* One thread wins the second's summary. */
	if (mono_now_ms() - last >= SUMMARY_MS &&
	    atomic_compare_exchange_strong(&b->last_summary_ms, &last, mono_now_ms()))
		log_budget_flush(b);
	return false;
}

void log_peer(struct log_budget *b, enum log_level at, const char *fmt, ...)
{
	va_list ap;

	if (!charge(b, level >= at))
		return;
	va_start(ap, fmt);
	emit(fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------------
 * Tallies
 * ------------------------------------------------------------------- */

bool log_tally(struct log_tally *t, const char *fmt, ...)
{
	int64_t now = mono_now_ms();
	va_list ap;

	if (t->last_ms != 0 && now - t->last_ms < SUMMARY_MS) {
		t->count++;
		return false;
	}
	t->last_ms = now;
	va_start(ap, fmt);
	emit(fmt, ap);
	va_end(ap);
	return true;
}

bool log_tally_flush(struct log_tally *t, const char *what, bool force)
{
	int64_t now = mono_now_ms();

	if (t->count == 0 || (!force && now - t->last_ms < SUMMARY_MS))
		return false;
	log_warn("%s: %" PRIu64 " more in the last %" PRId64 " ms", what, t->count,
		 now - t->last_ms);
	t->count = 0;
	t->last_ms = now;
	return true;
}

int log_budget_due_ms(struct log_budget *b)
{
	int64_t left;

	if (atomic_load(&b->suppressed) == 0)
		return -1;
	left = atomic_load(&b->last_summary_ms) + SUMMARY_MS - mono_now_ms();
	return left < 0 ? 0 : (int)left;
}

int log_tally_due_ms(const struct log_tally *t)
{
	int64_t left;

	if (t->count == 0)
		return -1;
	left = t->last_ms + SUMMARY_MS - mono_now_ms();
	return left < 0 ? 0 : (int)left;
}
