/* thread.h - threads with small stacks, monotonic deadlines, checked
 * pthread calls, and the reaper that joins threads as they finish.
 *
 * The relay runs a thread per connection and per subscriber, so stacks are
 * kept small; nothing in this project recurses or keeps big arrays on the
 * stack.
 *
 * Error convention: a pthread call that can only fail through a bug (an
 * invalid mutex, a double join) goes through must(), which aborts with a
 * message; one that can fail for lack of resources (pthread_create)
 * returns its error to the caller. */
#ifndef THREAD_H
#define THREAD_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "wake.h"

#define THREAD_STACK_SIZE (256 * 1024)

/* pthread_create with THREAD_STACK_SIZE; returns 0 or an errno value.
 * The thread starts with the asynchronous signals blocked, so that they
 * all reach the main thread (signals.h). */
int thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* Blocks the asynchronous signals in the calling thread, for threads a
 * library starts (they inherit the mask); then puts the old mask back. */
void thread_block_signals(sigset_t *old);
void thread_restore_signals(const sigset_t *old);

/* Runs the calling thread in the C locale.  Only the main thread needs
 * the user's (for readline and the input's character set); json-c copies
 * the thread's locale on every parse, which is cheap only for the C one. */
void thread_c_locale(void);

/* Aborts with "what: reason" unless rc is 0 (a pthread_* result). */
void must(int rc, const char *what);

/* The pthread calls every module uses, each checked with must(). */
void lock(pthread_mutex_t *m);
void unlock(pthread_mutex_t *m);
void mutex_init(pthread_mutex_t *m);
void mutex_destroy(pthread_mutex_t *m);
/* A condition variable whose timed waits use CLOCK_MONOTONIC, so a change
 * of the wall clock cannot stretch a deadline. */
void cond_init(pthread_cond_t *c);
void cond_destroy(pthread_cond_t *c);
void cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
/* Waits until the CLOCK_MONOTONIC deadline; false when it passed. */
bool cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *deadline);
void cond_signal(pthread_cond_t *c);
void cond_broadcast(pthread_cond_t *c);

/* Reference counts: whichever thread drops the last reference frees, so
 * the drop is acq_rel (it must see every other thread's last use). */
void ref_init(atomic_uint *r);
void ref_get(atomic_uint *r);
/* True when that was the last reference. */
bool ref_put(atomic_uint *r);

/* CLOCK_MONOTONIC now, and now + ms. */
struct timespec mono_now(void);
struct timespec mono_after(int64_t ms);
/* Milliseconds from now until deadline, clamped to [0, INT_MAX]. */
int mono_ms_until(const struct timespec *deadline);
int64_t mono_now_ms(void);

/* ---------------------------------------------------------------------
 * The reaper: threads that end on their own (a connection's reader, a
 * subscriber's sender) hand themselves over as their last act, and the
 * owner joins them when its poll loop sees reaper_fd() readable.  So
 * nothing piles up, and nothing is ever cancelled.
 * ------------------------------------------------------------------- */

/* Embedded in whatever the thread works for (as its first member, so the
 * owner can get from one to the other). */
struct reaped {
	pthread_t thread;
	struct reaped *prev, *next;	/* in the reaper's running or done list */
};

struct reaper {
	pthread_mutex_t lock;	/* guards the lists and counts */
	struct reaped *running;	/* started, not finished */
	struct reaped *done;	/* finished, not yet joined */
	size_t nrunning;
	size_t unjoined;	/* started, not yet joined */
	struct wake wake;	/* poked when one finishes */
};

/* 0, or -1 with errno set. */
int reaper_init(struct reaper *r);
/* Every thread must have been joined. */
void reaper_destroy(struct reaper *r);

/* Starts fn(arg) as one of r's threads; 0 or an errno value. */
int reaper_start(struct reaper *r, struct reaped *t, void *(*fn)(void *),
		 void *arg);
/* The thread's last call: t may be joined (and freed) from now on. */
void reaper_done(struct reaper *r, struct reaped *t);
/* Joins every finished thread, passing each to release (which may free
 * it); returns how many are not joined yet. */
size_t reaper_join(struct reaper *r, void (*release)(struct reaped *t));
/* Threads still running. */
size_t reaper_running(struct reaper *r);
/* Calls fn on every thread still running, under the reaper's lock: t
 * stays valid meanwhile; fn must not call back into the reaper. */
void reaper_each(struct reaper *r, void (*fn)(struct reaped *t, void *arg), void *arg);
/* Readable when a thread has finished. */
int reaper_fd(struct reaper *r);

#endif
