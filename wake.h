/* wake.h - a self-pipe: one thread (or a signal handler) pokes, another
 * thread waiting in poll() wakes up.
 *
 * The one mechanism every poll loop here uses to be woken: the signal
 * handler, the console's queue of lines to print, a link's queue, the
 * listener's and the server's "a thread has finished".  Both ends are
 * non-blocking and close-on-exec; a full pipe already means "wake up". */
#ifndef WAKE_H
#define WAKE_H

struct wake {
	int fd[2];
};

/* 0, or -1 with errno set. */
int wake_init(struct wake *w);
void wake_close(struct wake *w);

/* Async-signal-safe; never blocks. */
void wake_poke(struct wake *w);

/* Empties the pipe, so the next poll() waits for the next poke. */
void wake_drain(struct wake *w);

/* The end to poll() for POLLIN. */
int wake_fd(const struct wake *w);

#endif
