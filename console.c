/* console.c - typed lines in, received messages out. */
#include "console.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "sanitize.h"
#include "signals.h"
#include "thread.h"

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

void console_print_chat(const char *user, size_t user_len, const char *text,
			size_t text_len)
{
	/* Sized for the largest message a peer can send, escaped. */
	static char line[SANITIZE_MAX(PROTO_MAX_OBJECT) + 2];
	static char name[SANITIZE_MAX(256)];
	size_t n;

	/* One lock orders whole lines from concurrent reader threads and
	 * guards the static buffers. */
	lock(&print_lock);
	sanitize_text(user, user_len, name, sizeof name);
	n = sanitize_text(text, text_len, line, sizeof line - 1);
	line[n++] = '\n';
	fputs(name, stdout);
	fputs(": ", stdout);
	fwrite(line, 1, n, stdout);
	fflush(stdout);
	unlock(&print_lock);
}

/* Handles one complete line (newline already removed); returns true when
 * it was "exit". */
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

enum console_end console_read_lines(void (*on_line)(void *arg,
						    const char *line,
						    size_t len),
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
