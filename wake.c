/* wake.c - the self-pipe. */
#define _GNU_SOURCE		/* pipe2(): both flags set atomically */
#include "wake.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int wake_init(struct wake *w)
{
	w->fd[0] = w->fd[1] = -1;
	return pipe2(w->fd, O_NONBLOCK | O_CLOEXEC);
}

void wake_close(struct wake *w)
{
	if (w->fd[0] >= 0)
		close(w->fd[0]);
	if (w->fd[1] >= 0)
		close(w->fd[1]);
	w->fd[0] = w->fd[1] = -1;
}

void wake_poke(struct wake *w)
{
	int saved = errno;	/* a signal handler must not change it */
	char b = 1;

	if (write(w->fd[1], &b, 1) < 0) {
		/* EAGAIN: the pipe is full, so the reader wakes anyway */
	}
	errno = saved;
}

void wake_drain(struct wake *w)
{
	char buf[256];

	while (read(w->fd[0], buf, sizeof buf) > 0) {
	}
}

int wake_fd(const struct wake *w)
{
	return w->fd[0];
}
