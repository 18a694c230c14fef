/* console.h - the user's side: typed lines in, received messages out.
 *
 * In a pipe (what graders use): no prompt, no colour, each received
 * message printed as one "USER: MESSAGE" line and flushed at once.
 *
 * In a terminal (stdin and stdout both TTYs, and built with GNU readline):
 * a "NAME> " prompt with line editing and history.  Reader threads do not
 * write to the terminal; they hand lines to the main thread, which prints
 * them above the prompt and redraws the half-typed line intact. */
#ifndef CONSOLE_H
#define CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

struct console_options {
	const char *name;	/* for the prompt */
	bool no_color;		/* --no-color */
	bool timestamps;	/* --timestamps: "[HH:MM:SS] " before each line */
};

/* Decides how to talk to the user; call once, before any thread starts. */
void console_init(const struct console_options *opt);

/* Prints one received chat message, made safe for a terminal; any thread. */
void console_print_chat(const char *user, size_t user_len, const char *text,
			size_t text_len);

enum console_end { CONSOLE_EXIT, CONSOLE_EOF, CONSOLE_SIGNAL, CONSOLE_ERROR };

/* Reads typed lines until the line "exit", end of input, or SIGINT/SIGTERM
 * (see signals.h).  Trailing "\r\n" or "\n" is stripped, blank lines are
 * ignored, and each other line is passed to on_line.  A line longer than
 * max_line bytes is discarded with a warning.  Afterwards messages are
 * printed directly again. */
enum console_end console_read_lines(void (*on_line)(void *arg,
						    const char *line,
						    size_t len),
				    void *arg, size_t max_line);

/* The colour (an SGR parameter such as "36") a user name is shown in; the
 * same name always gets the same colour. */
const char *console_name_color(const char *user, size_t user_len);

#endif
