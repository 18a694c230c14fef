/* console.c - typed lines in, received messages out.
 *
 * Two ways to run, chosen once by console_init:
 *  - plain (stdin or stdout is not a terminal): reader threads print under
 *    a lock, the main thread reads stdin with read(2);
 *  - interactive (both are terminals, GNU readline available): the main
 *    thread owns the terminal.  It drives readline's callback interface
 *    from poll(), and reader threads queue formatted lines for it, waking
 *    it through a pipe.  So nothing ever writes over the line being typed. */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
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

#include "log.h"
#include "proto.h"
#include "sanitize.h"
#include "signals.h"
#include "thread.h"

#define PENDING_MAX 256		/* lines waiting for the main thread */

static struct {
	bool color;
	bool timestamps;
	bool interactive;
	char prompt[PROTO_MAX_NAME + 8];
} con;

/* Lines for the main thread while it runs the interactive prompt. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t space;
	struct line {
		char *text;
		bool diag;	/* a log line, for stderr */
	} lines[PENDING_MAX];
	size_t head, n;
	bool active;		/* the main thread is taking lines */
	int wake[2];
} pending = { .lock = PTHREAD_MUTEX_INITIALIZER, .space = PTHREAD_COND_INITIALIZER,
	      .wake = { -1, -1 } };

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---------------------------------------------------------------------
 * Formatting a received message
 * ------------------------------------------------------------------- */

const char *console_name_color(const char *user, size_t user_len)
{
	/* Readable on dark and light backgrounds; red is left for errors. */
	static const char *const palette[] = {
		"32", "33", "34", "35", "36", "92", "93", "94", "95", "96",
	};
	uint32_t h = 2166136261u;	/* FNV-1a */
	size_t i;

	for (i = 0; i < user_len; i++)
		h = (h ^ (unsigned char)user[i]) * 16777619u;
	return palette[h % (sizeof palette / sizeof palette[0])];
}

/* "[12:34:56] USER: MESSAGE\n", safe, coloured if wanted; malloc'd. */
static char *format_chat(const char *user, size_t user_len, const char *text,
			 size_t text_len, size_t *len)
{
	size_t cap = SANITIZE_MAX(user_len) + SANITIZE_MAX(text_len) + 64;
	char *out = malloc(cap);
	size_t n = 0;

	if (!out)
		return NULL;
	if (con.timestamps) {
		time_t now = time(NULL);
		struct tm tm;

		if (localtime_r(&now, &tm))
			n += strftime(out, cap, "[%H:%M:%S] ", &tm);
	}
	if (con.color)
		n += (size_t)snprintf(out + n, cap - n, "\033[1;%sm",
				      console_name_color(user, user_len));
	n += sanitize_text(user, user_len, out + n, cap - n);
	if (con.color)
		n += (size_t)snprintf(out + n, cap - n, "\033[0m");
	out[n++] = ':';
	out[n++] = ' ';
	n += sanitize_text(text, text_len, out + n, cap - n - 1);
	out[n++] = '\n';
	out[n] = '\0';
	*len = n;
	return out;
}

static void print_now(const char *line, size_t len)
{
	lock(&print_lock);
	fwrite(line, 1, len, stdout);
	fflush(stdout);
	unlock(&print_lock);
}

/* Appends a line for the main thread; pending.lock is held. */
static void queue_line(char *text, bool diag)
{
	char b = 1;
	struct line *l = &pending.lines[(pending.head + pending.n++) % PENDING_MAX];

	l->text = text;
	l->diag = diag;
	if (write(pending.wake[1], &b, 1) < 0) {
		/* full pipe: the main thread is awake anyway */
	}
}

void console_print_chat(const char *user, size_t user_len, const char *text,
			size_t text_len)
{
	size_t len;
	char *line = format_chat(user, user_len, text, text_len, &len);
	bool queued = false;

	if (!line) {
		log_warn("out of memory: a message was not shown");
		return;
	}
	lock(&pending.lock);
	/* Wait for room rather than drop: the sender's TCP window then
	 * slows it down. */
	while (pending.active && pending.n == PENDING_MAX)
		pthread_cond_wait(&pending.space, &pending.lock);
	if (pending.active) {
		queue_line(line, false);
		queued = true;
	}
	unlock(&pending.lock);
	if (!queued) {
		print_now(line, len);
		free(line);
	}
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
		queue_line(copy, true);
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

	/* https://no-color.org: set and not empty means no colour. */
	con.color = isatty(STDOUT_FILENO) && !opt->no_color &&
		    !(no_color && *no_color);
	con.timestamps = opt->timestamps;
#ifdef HAVE_READLINE
	con.interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	if (con.interactive)
		log_set_sink(log_sink);
#endif
	snprintf(con.prompt, sizeof con.prompt, "%s> ", opt->name);
}

/* ---------------------------------------------------------------------
 * Reading lines: shared by both ways
 * ------------------------------------------------------------------- */

/* Handles one complete line (newline already removed; line has room for
 * a NUL); returns true when it was "exit". */
static bool take_line(char *line, size_t len,
		      void (*on_line)(void *, const char *, size_t), void *arg)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	if (len == 4 && memcmp(line, "exit", 4) == 0)
		return true;
	if (strspn(line, " \t") != len)
		on_line(arg, line, len);
	return false;
}

/* ---------------------------------------------------------------------
 * Plain: read(2) on stdin
 * ------------------------------------------------------------------- */

static enum console_end read_plain(void (*on_line)(void *, const char *, size_t),
				   void *arg, size_t max_line)
{
	struct pollfd pfd[2] = {
		{ .fd = STDIN_FILENO, .events = POLLIN },
		{ .fd = signals_fd(), .events = POLLIN },
	};
	char *buf = malloc(max_line + 2);
	size_t have = 0;
	bool discarding = false;	/* inside an over-long line */
	enum console_end end = CONSOLE_ERROR;

	if (!buf)
		return CONSOLE_ERROR;
	for (;;) {
		ssize_t n;
		char *nl;

		if (signals_caught()) {
			end = CONSOLE_SIGNAL;
			break;
		}
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents) {
			end = CONSOLE_SIGNAL;
			break;
		}
		if (!pfd[0].revents)
			continue;
		n = read(STDIN_FILENO, buf + have, max_line + 1 - have);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			log_warn("reading standard input: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			/* A last line without a newline still counts. */
			if (have > 0 && !discarding &&
			    take_line(buf, have, on_line, arg)) {
				end = CONSOLE_EXIT;
				break;
			}
			end = CONSOLE_EOF;
			break;
		}
		have += (size_t)n;
		while ((nl = memchr(buf, '\n', have)) != NULL) {
			size_t len = (size_t)(nl - buf);
			bool quit = false;

			if (discarding)
				discarding = false;
			else
				quit = take_line(buf, len, on_line, arg);
			memmove(buf, nl + 1, have - len - 1);
			have -= len + 1;
			if (quit) {
				free(buf);
				return CONSOLE_EXIT;
			}
		}
		if (have > max_line) {
			if (!discarding)
				log_warn("line longer than %zu bytes not sent", max_line);
			discarding = true;
			have = 0;
		}
	}
	free(buf);
	return end;
}

/* ---------------------------------------------------------------------
 * Interactive: readline's callback interface, driven from poll()
 * ------------------------------------------------------------------- */

#ifdef HAVE_READLINE

/* readline hands complete lines to a callback without a context pointer. */
static struct {
	void (*on_line)(void *, const char *, size_t);
	void *arg;
	size_t max_line;
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
	if (len > typed.max_line) {
		log_warn("line longer than %zu bytes not sent", typed.max_line);
	} else {
		if (strspn(line, " \t") != len)
			add_history(line);
		if (take_line(line, len, typed.on_line, typed.arg)) {
			typed.done = true;
			typed.end = CONSOLE_EXIT;
			/* Now, or readline draws a last prompt. */
			rl_callback_handler_remove();
		}
	}
	free(line);
}

/* Takes the queued lines (the caller frees them); returns how many. */
static size_t take_pending(struct line lines[PENDING_MAX])
{
	char buf[64];
	size_t n = 0;

	while (read(pending.wake[0], buf, sizeof buf) > 0) {
	}
	lock(&pending.lock);
	while (pending.n > 0) {
		lines[n++] = pending.lines[pending.head];
		pending.head = (pending.head + 1) % PENDING_MAX;
		pending.n--;
	}
	pthread_cond_broadcast(&pending.space);
	unlock(&pending.lock);
	return n;
}

static void put_lines(struct line lines[], size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fputs(lines[i].text, lines[i].diag ? stderr : stdout);
		fflush(lines[i].diag ? stderr : stdout);
		free(lines[i].text);
	}
}

/* Prints queued messages above the prompt, then redraws what was typed. */
static void show_pending(void)
{
	struct line lines[PENDING_MAX];
	size_t n = take_pending(lines);

	if (n == 0)
		return;
	rl_clear_visible_line();
	fflush(stdout);		/* before any stderr line goes out */
	put_lines(lines, n);
	rl_forced_update_display();
}

static void set_active(bool on)
{
	lock(&pending.lock);
	pending.active = on;
	pthread_cond_broadcast(&pending.space);
	unlock(&pending.lock);
}

static enum console_end read_interactive(void (*on_line)(void *, const char *, size_t),
					 void *arg, size_t max_line)
{
	int i;

	if (pipe(pending.wake) < 0)
		return read_plain(on_line, arg, max_line);
	for (i = 0; i < 2; i++) {
		fcntl(pending.wake[i], F_SETFL, O_NONBLOCK);
		fcntl(pending.wake[i], F_SETFD, FD_CLOEXEC);
	}
	typed.on_line = on_line;
	typed.arg = arg;
	typed.max_line = max_line;
	typed.done = false;
	typed.end = CONSOLE_ERROR;
	/* Our own handlers turn SIGINT/SIGTERM into an event. */
	rl_catch_signals = 0;
	rl_callback_handler_install(con.prompt, on_readline);
	set_active(true);

	while (!typed.done) {
		struct pollfd pfd[3] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = signals_fd(), .events = POLLIN },
			{ .fd = pending.wake[0], .events = POLLIN },
		};

		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents || signals_caught()) {
			typed.end = CONSOLE_SIGNAL;
			break;
		}
		if (pfd[2].revents)
			show_pending();
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
			rl_callback_read_char();
	}

	/* Leave the terminal as it was, then print directly again. */
	if (typed.end == CONSOLE_SIGNAL || typed.end == CONSOLE_ERROR) {
		rl_callback_handler_remove();
		fputc('\n', stdout);
	}
	set_active(false);
	{
		struct line lines[PENDING_MAX];

		put_lines(lines, take_pending(lines));
	}
	close(pending.wake[0]);
	close(pending.wake[1]);
	return typed.end;
}

#endif

enum console_end console_read_lines(void (*on_line)(void *arg,
						    const char *line,
						    size_t len),
				    void *arg, size_t max_line)
{
#ifdef HAVE_READLINE
	if (con.interactive)
		return read_interactive(on_line, arg, max_line);
#endif
	return read_plain(on_line, arg, max_line);
}
