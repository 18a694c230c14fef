/* signals.h - SIGINT/SIGTERM as readable events, SIGPIPE ignored.
 *
 * The handler only records the signal and writes a byte to a pipe, so the
 * main thread can wait for a signal with poll() next to its other
 * descriptors, whichever thread the signal was delivered to. */
#ifndef SIGNALS_H
#define SIGNALS_H

/* Returns 0, or -1 with errno set. */
int signals_init(void);
/* Readable once SIGINT or SIGTERM has arrived. */
int signals_fd(void);
/* The first signal caught, or 0. */
int signals_caught(void);

#endif
