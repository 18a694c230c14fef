/* console.h - the user's side: typed lines in, received messages out.
 *
 * stdout carries only received messages, one "USER: MESSAGE" line each,
 * made safe for a terminal and flushed at once (stdout is often a pipe). */
#ifndef CONSOLE_H
#define CONSOLE_H

#include <stddef.h>

/* Prints one received chat message. */
void console_print_chat(const char *user, size_t user_len, const char *text,
			size_t text_len);

enum console_end { CONSOLE_EXIT, CONSOLE_EOF, CONSOLE_SIGNAL, CONSOLE_ERROR };

/* Reads stdin line by line until the line "exit", end of input, or
 * SIGINT/SIGTERM (see signals.h).  Trailing "\r\n" or "\n" is stripped,
 * blank lines are ignored, and each other line is passed to on_line.  A
 * line longer than max_line bytes is discarded with a warning. */
enum console_end console_read_lines(void (*on_line)(void *arg,
						    const char *line,
						    size_t len),
				    void *arg, size_t max_line);

#endif
