/* signals.h - signals as readable events; SIGPIPE ignored.
 *
 * SIGINT, SIGTERM and SIGHUP end the program the way "exit" does: what
 * was typed is delivered, what was not is reported.  The handler only
 * records the signal and pokes a pipe, so the main thread waits for a
 * signal with poll() next to its other descriptors, whichever thread the
 * signal was delivered to.  A SIGINT or SIGHUP that was ignored when the
 * program started (nohup, a background job of a script) stays ignored. */
#ifndef SIGNALS_H
#define SIGNALS_H

#include <stdbool.h>

/* Returns 0, or -1 with errno set. */
int signals_init(void);
/* Readable once a signal has arrived; signals_drain() empties it. */
int signals_fd(void);
void signals_drain(void);
/* The first terminating signal caught, or 0. */
int signals_caught(void);
/* How many terminating signals arrived so far (a second Ctrl-C means
 * "stop waiting"). */
unsigned signals_count(void);

/* Also report SIGWINCH (the terminal's size changed). */
void signals_watch_resize(void);
/* Whether the size changed since the last call. */
bool signals_take_resize(void);

#endif
