/* thread.h - thread creation with small stacks, and monotonic deadlines.
 *
 * The relay runs a thread per connection and per subscriber, so stacks are
 * kept small; nothing in this project recurses or keeps big arrays on the
 * stack. */
#ifndef THREAD_H
#define THREAD_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define THREAD_STACK_SIZE (256 * 1024)

/* pthread_create with THREAD_STACK_SIZE; returns 0 or an errno value. */
int thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* CLOCK_MONOTONIC now, and now + ms. */
struct timespec mono_now(void);
struct timespec mono_after(int64_t ms);
/* Milliseconds from now until deadline, clamped to [0, INT32_MAX]. */
int mono_ms_until(const struct timespec *deadline);
int64_t mono_ms(const struct timespec *t);

/* pthread_mutex_lock/unlock that abort on failure (which can only be a
 * bug: an invalid or non-owned mutex). */
void lock(pthread_mutex_t *m);
void unlock(pthread_mutex_t *m);

#endif
