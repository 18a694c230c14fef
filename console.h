/* console.h - the user's side: typed lines in, received messages out.
 *
 * In a pipe (what graders use): no prompt, no colour, each received
 * message printed as one "USER: MESSAGE" line, each batch of them written
 * at once and never held back.
 *
 * In a terminal (stdin and stdout both TTYs, and built with GNU readline):
 * a "NAME> " prompt with line editing and history that follows the
 * window's size.  Reader threads do not write to the terminal; they hand
 * lines to the main thread, which prints them above the prompt and redraws
 * the half-typed line intact. */
#ifndef CONSOLE_H
#define CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

struct console_options {
	const char *name;	/* for the prompt */
	bool no_color;		/* --no-color */
	bool timestamps;	/* --timestamps: "[HH:MM:SS] " before each line */
};

/* Sets up the user's side, once, before any thread starts: the input's
 * character set (charset.h), signals (signals.h), and how to talk to the
 * user.  Exits 1 when it cannot. */
void console_init(const struct console_options *opt);
/* Frees what console_init set up (at the very end). */
void console_done(void);

/* Received messages, formatted by a reader thread and printed together. */
struct console_batch {
	char *buf;
	size_t len, cap;
};

/* Appends "USER: MESSAGE", made safe for a terminal. */
void console_batch_add(struct console_batch *b, const char *user, size_t user_len,
		       const char *text, size_t text_len);
/* Prints what was added, at once; in a terminal, waits while the main
 * thread has too many lines to print already.  Any thread. */
void console_batch_flush(struct console_batch *b);
void console_batch_free(struct console_batch *b);

/* Where typed lines go.  on_line is called for each one; while busy()
 * returns true (the line before is still waiting for room), no more are
 * read, and busy() is asked again whenever busy_fd is readable.  Meanwhile
 * messages keep being printed and the prompt stays alive. */
struct console_input {
	void (*on_line)(void *arg, const char *line, size_t len);
	/* Called before waiting for more input: the lines handed over since
	 * the last call may go out together now. */
	void (*flush)(void *arg);
	bool (*busy)(void *arg);
	int busy_fd;
	void *arg;
	size_t max_line;	/* longer lines are refused with a warning */
};

enum console_end { CONSOLE_EXIT, CONSOLE_EOF, CONSOLE_SIGNAL, CONSOLE_ERROR };

/* Reads typed lines until the line "exit", end of input, or SIGINT,
 * SIGTERM or SIGHUP (see signals.h).  Trailing "\r\n" or "\n" is
 * stripped and blank lines are ignored.  Afterwards messages are printed
 * directly again. */
enum console_end console_read_lines(const struct console_input *in);

#endif
