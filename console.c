/* console.c - typed lines in, received messages out.
 *
 * Two ways to run, chosen once by console_init:
 *  - plain (stdin or stdout is not a terminal): reader threads write their
 *    batches to stdout under a lock, the main thread reads stdin with
 *    read(2);
 *  - interactive (both are terminals, GNU readline available): the main
 *    thread owns the terminal.  It drives readline's callback interface
 *    from poll(), and reader threads queue their lines for it, waking it
 *    through a pipe.  So nothing ever writes over the line being typed.
 *
 * Either way the main thread may stop reading input while the line before
 * waits for room (flow control), and goes on printing meanwhile: the path
 * that drains incoming messages never waits for the path that sends. */
#include "console.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "charset.h"
#include "log.h"
#include "proto.h"
#include "sanitize.h"
#include "signals.h"
#include "thread.h"
#include "wake.h"

#define PENDING_MAX 256		/* batches waiting for the main thread */

static struct {
	bool color;
	bool timestamps;
	bool interactive;
	char prompt[PROTO_MAX_NAME + 8];
} con;

/* Text for the main thread while it runs the interactive prompt. */
struct pending_text {
	char *text;
	bool diag;		/* a log line, for stderr */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t space;
	struct pending_text items[PENDING_MAX];
	size_t head, n;
	bool active;		/* the main thread is taking them */
	struct wake wake;
} pending = { .lock = PTHREAD_MUTEX_INITIALIZER, .space = PTHREAD_COND_INITIALIZER,
	      .wake = { { -1, -1 } } };

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---------------------------------------------------------------------
 * Formatting received messages
 * ------------------------------------------------------------------- */

/* The colour (an SGR parameter) a user name is shown in: the same name
 * always gets the same one; readable on dark and light backgrounds, red
 * left for errors. */
static const char *name_color(const char *user, size_t user_len)
{
	static const char *const palette[] = {
		"32", "33", "34", "35", "36", "92", "93", "94", "95", "96",
	};
	uint32_t h = 2166136261u;	/* FNV-1a */
	size_t i;

	for (i = 0; i < user_len; i++)
		h = (h ^ (unsigned char)user[i]) * 16777619u;
	return palette[h % (sizeof palette / sizeof palette[0])];
}

static bool reserve(struct console_batch *b, size_t more)
{
	size_t cap;
	char *buf;

	if (b->len + more <= b->cap)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	buf = realloc(b->buf, cap);
	if (!buf)
		return false;
	b->buf = buf;
	b->cap = cap;
	return true;
}

/* A user name that holds ": " is quoted, so that "a: fake" cannot pass
 * for a line from "a". */
static bool has_colon_space(const char *s, size_t len)
{
	const char *p = len > 1 ? memchr(s, ':', len - 1) : NULL;

	for (; p; p = memchr(p + 1, ':', (size_t)(s + len - 1 - (p + 1))))
		if (p[1] == ' ')
			return true;
	return false;
}

static size_t put_user(char *out, size_t cap, const char *user, size_t user_len)
{
	char *safe = out + cap / 2;	/* the back half as scratch */
	size_t n, o = 0, i;

	/* Escapes never make ": ", so the raw name tells. */
	if (!has_colon_space(user, user_len))
		return sanitize_text(user, user_len, out, cap);
	n = sanitize_text(user, user_len, safe, cap / 2);
	out[o++] = '"';
	for (i = 0; i < n && o + 3 < cap / 2; i++) {
		if (safe[i] == '"' || safe[i] == '\\')
			out[o++] = '\\';
		out[o++] = safe[i];
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}

void console_batch_add(struct console_batch *b, const char *user, size_t user_len,
		       const char *text, size_t text_len)
{
	/* Quoting doubles a sanitized name at worst; the name is done in a
	 * scratch area twice its size. */
	size_t need = 4 * SANITIZE_MAX(user_len) + SANITIZE_MAX(text_len) + 64, n;
	char *out;

	if (!reserve(b, need)) {
		log_warn("out of memory: a message was not shown");
		return;
	}
	out = b->buf + b->len;
	n = 0;
	if (con.timestamps) {
		time_t now = time(NULL);
		struct tm tm;

		if (localtime_r(&now, &tm))
			n += strftime(out, need, "[%H:%M:%S] ", &tm);
	}
	if (con.color)
		n += (size_t)snprintf(out + n, need - n, "\033[1;%sm", name_color(user, user_len));
	n += put_user(out + n, 4 * SANITIZE_MAX(user_len), user, user_len);
	if (con.color)
		n += (size_t)snprintf(out + n, need - n, "\033[0m");
	out[n++] = ':';
	out[n++] = ' ';
	n += sanitize_text(text, text_len, out + n, need - n - 1);
	out[n++] = '\n';
	b->len += n;
}

void console_batch_free(struct console_batch *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = b->cap = 0;
}

/* ---------------------------------------------------------------------
 * Printing
 * ------------------------------------------------------------------- */

static void write_all(int fd, const char *p, size_t len)
{
	static bool failed;	/* under print_lock */

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!failed)
				log_warn("cannot write to standard output: %s; "
					 "messages are no longer shown", strerror(errno));
			failed = true;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

/* Appends text for the main thread; pending.lock is held. */
static void queue_text(char *text, bool diag)
{
	struct pending_text *t = &pending.items[(pending.head + pending.n++) % PENDING_MAX];

	t->text = text;
	t->diag = diag;
	wake_poke(&pending.wake);
}

void console_batch_flush(struct console_batch *b)
{
	char *copy = NULL;
	bool queued = false;

	if (b->len == 0)
		return;
	lock(&pending.lock);
	/* Wait for room rather than drop: the sender's TCP window then
	 * slows it down. */
	while (pending.active && pending.n == PENDING_MAX)
		cond_wait(&pending.space, &pending.lock);
	if (pending.active && (copy = malloc(b->len + 1)) != NULL) {
		memcpy(copy, b->buf, b->len);
		copy[b->len] = '\0';
		queue_text(copy, false);
		queued = true;
	}
	unlock(&pending.lock);
	if (!queued) {
		lock(&print_lock);
		write_all(STDOUT_FILENO, b->buf, b->len);
		unlock(&print_lock);
	}
	b->len = 0;
}

/* log.c's sink: diagnostics go above the prompt too.  Never waits (the
 * main thread logs as well): with no room, the line is written directly. */
static void log_sink(const char *line, size_t len)
{
	char *copy = NULL;

	lock(&pending.lock);
	if (pending.active && pending.n < PENDING_MAX && (copy = malloc(len + 1))) {
		memcpy(copy, line, len);
		copy[len] = '\0';
		queue_text(copy, true);
	}
	unlock(&pending.lock);
	if (!copy && write(STDERR_FILENO, line, len) < 0) {
		/* nowhere left to report it */
	}
}

/* ---------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------- */

void console_init(const struct console_options *opt)
{
	const char *no_color = getenv("NO_COLOR");

	charset_init();
	if (signals_init() < 0)
		log_die(1, "signals: %s", strerror(errno));
	/* https://no-color.org: set and not empty means no colour. */
	con.color = isatty(STDOUT_FILENO) && !opt->no_color &&
		    !(no_color && *no_color);
	con.timestamps = opt->timestamps;
#ifdef HAVE_READLINE
	con.interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	if (con.interactive) {
		log_set_sink(log_sink);
		signals_watch_resize();
	}
#endif
	snprintf(con.prompt, sizeof con.prompt, "%s> ", opt->name);
}

void console_done(void)
{
	charset_free();
}

/* ---------------------------------------------------------------------
 * Reading lines: shared by both ways
 * ------------------------------------------------------------------- */

/* Handles one complete line (newline already removed; line has room for
 * a NUL); returns true when it was "exit". */
static bool take_line(const struct console_input *in, char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	if (len == 4 && memcmp(line, "exit", 4) == 0)
		return true;
	if (strspn(line, " \t") != len)
		in->on_line(in->arg, line, len);
	return false;
}

/* ---------------------------------------------------------------------
 * Plain: read(2) on stdin
 * ------------------------------------------------------------------- */

struct plain {
	const struct console_input *in;
	char *buf;
	size_t start, have;	/* unread bytes: buf[start..have) */
	bool discarding;	/* inside an over-long line */
	bool eof;
};

/* Passes on the complete lines in the buffer while there is room for
 * them; true when one was "exit". */
static bool plain_lines(struct plain *p)
{
	char *nl;

	while (!p->in->busy(p->in->arg) &&
	       (nl = memchr(p->buf + p->start, '\n', p->have - p->start)) != NULL) {
		size_t len = (size_t)(nl - (p->buf + p->start));
		bool quit = false;

		if (p->discarding)
			p->discarding = false;
		else
			quit = take_line(p->in, p->buf + p->start, len);
		p->start += len + 1;
		if (quit)
			return true;
	}
	return false;
}

/* Reads what stdin has, after moving the unread bytes to the front; false
 * on an error. */
static bool plain_read(struct plain *p)
{
	ssize_t n;

	memmove(p->buf, p->buf + p->start, p->have - p->start);
	p->have -= p->start;
	p->start = 0;
	if (p->have > p->in->max_line) {
		if (!p->discarding)
			log_warn("line longer than %zu bytes not sent", p->in->max_line);
		p->discarding = true;
		p->have = 0;
	}
	n = read(STDIN_FILENO, p->buf + p->have, p->in->max_line + 1 - p->have);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n < 0) {
		log_warn("reading standard input: %s", strerror(errno));
		return false;
	}
	if (n == 0)
		p->eof = true;
	p->have += (size_t)n;
	return true;
}

static enum console_end read_plain(const struct console_input *in)
{
	/* Room for a whole line of max_line bytes, its newline, and a read
	 * of the same size behind it. */
	struct plain p = { .in = in, .buf = malloc(2 * in->max_line + 4) };
	enum console_end end = CONSOLE_ERROR;

	while (p.buf) {
		bool busy = in->busy(in->arg),
		     complete = memchr(p.buf + p.start, '\n', p.have - p.start) != NULL;
		struct pollfd pfd[2] = {
			{ .fd = signals_fd(), .events = POLLIN },
			{ .fd = busy ? in->busy_fd : STDIN_FILENO, .events = POLLIN },
		};

		if (!busy && complete) {
			if (plain_lines(&p)) {
				end = CONSOLE_EXIT;
				break;
			}
			continue;
		}
		if (!busy && p.eof) {
			/* A last line without a newline still counts. */
			end = p.have > p.start && !p.discarding &&
					      take_line(in, p.buf + p.start, p.have - p.start)
				      ? CONSOLE_EXIT : CONSOLE_EOF;
			break;
		}
		if (signals_caught()) {
			end = CONSOLE_SIGNAL;
			break;
		}
		in->flush(in->arg);
		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			log_warn("poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents)
			signals_drain();
		if (!busy && pfd[1].revents && !plain_read(&p))
			break;
	}
	free(p.buf);
	return end;
}

/* ---------------------------------------------------------------------
 * Interactive: readline's callback interface, driven from poll()
 * ------------------------------------------------------------------- */

#ifdef HAVE_READLINE

/* readline hands complete lines to a callback without a context pointer. */
static struct {
	const struct console_input *in;
	bool done;
	enum console_end end;
} typed;

static void on_readline(char *line)
{
	size_t len;

	if (!line) {		/* Ctrl-D */
		typed.done = true;
		typed.end = CONSOLE_EOF;
		rl_callback_handler_remove();
		fputc('\n', stdout);
		return;
	}
	len = strlen(line);
	if (len > typed.in->max_line) {
		log_warn("line longer than %zu bytes not sent", typed.in->max_line);
	} else {
		if (strspn(line, " \t") != len)
			add_history(line);
		if (take_line(typed.in, line, len)) {
			typed.done = true;
			typed.end = CONSOLE_EXIT;
			/* Now, or readline draws a last prompt. */
			rl_callback_handler_remove();
		}
	}
	free(line);
}

/* Takes the queued texts (the caller frees them); returns how many. */
static size_t take_pending(struct pending_text items[PENDING_MAX])
{
	size_t n = 0;

	wake_drain(&pending.wake);
	lock(&pending.lock);
	while (pending.n > 0) {
		items[n++] = pending.items[pending.head];
		pending.head = (pending.head + 1) % PENDING_MAX;
		pending.n--;
	}
	cond_broadcast(&pending.space);
	unlock(&pending.lock);
	return n;
}

static void put_pending(struct pending_text items[], size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fputs(items[i].text, items[i].diag ? stderr : stdout);
		fflush(items[i].diag ? stderr : stdout);
		free(items[i].text);
	}
}

/* Prints queued messages above the prompt, then redraws what was typed. */
static void show_pending(void)
{
	struct pending_text items[PENDING_MAX];
	size_t n = take_pending(items);

	if (n == 0)
		return;
	rl_clear_visible_line();
	fflush(stdout);		/* before any stderr line goes out */
	put_pending(items, n);
	rl_forced_update_display();
}

static void set_active(bool on)
{
	lock(&pending.lock);
	pending.active = on;
	cond_broadcast(&pending.space);
	unlock(&pending.lock);
}

/* One round of the loop: waits, then handles what woke it. */
static void interactive_round(const struct console_input *in)
{
	bool busy = in->busy(in->arg);
	struct pollfd pfd[3] = {
		{ .fd = signals_fd(), .events = POLLIN },
		{ .fd = wake_fd(&pending.wake), .events = POLLIN },
		{ .fd = busy ? in->busy_fd : STDIN_FILENO, .events = POLLIN },
	};

	in->flush(in->arg);
	if (poll(pfd, 3, -1) < 0) {
		if (errno != EINTR) {
			log_warn("poll: %s", strerror(errno));
			typed.done = true;
		}
		return;
	}
	if (signals_caught()) {
		typed.end = CONSOLE_SIGNAL;
		typed.done = true;
		return;
	}
	if (pfd[0].revents)
		signals_drain();
	/* The window changed: readline wraps at the new width. */
	if (signals_take_resize())
		rl_resize_terminal();
	if (pfd[1].revents)
		show_pending();
	if (!busy && (pfd[2].revents & (POLLIN | POLLHUP | POLLERR)))
		rl_callback_read_char();
}

static enum console_end read_interactive(const struct console_input *in)
{
	if (wake_init(&pending.wake) < 0)
		return read_plain(in);
	typed.in = in;
	typed.done = false;
	typed.end = CONSOLE_ERROR;
	/* Our own handlers turn signals into events; readline must not
	 * install its own, nor its SIGWINCH one. */
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	rl_callback_handler_install(con.prompt, on_readline);
	set_active(true);
	while (!typed.done)
		interactive_round(in);

	/* Leave the terminal as it was, then print directly again. */
	if (typed.end == CONSOLE_SIGNAL || typed.end == CONSOLE_ERROR) {
		rl_callback_handler_remove();
		fputc('\n', stdout);
	}
	set_active(false);
	{
		struct pending_text items[PENDING_MAX];

		put_pending(items, take_pending(items));
	}
	wake_close(&pending.wake);
	return typed.end;
}

#endif

enum console_end console_read_lines(const struct console_input *in)
{
#ifdef HAVE_READLINE
	if (con.interactive)
		return read_interactive(in);
#endif
	return read_plain(in);
}
