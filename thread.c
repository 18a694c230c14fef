/* thread.c - small-stack threads, deadlines, checked locking, the reaper. */
#include "thread.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void thread_block_signals(sigset_t *old)
{
	sigset_t set;

	/* Faults stay deliverable to the thread that causes them. */
	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGILL);
	must(pthread_sigmask(SIG_BLOCK, &set, old), "pthread_sigmask");
}

void thread_restore_signals(const sigset_t *old)
{
	must(pthread_sigmask(SIG_SETMASK, old, NULL), "pthread_sigmask");
}

int thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	sigset_t old;
	int rc = pthread_attr_init(&attr);

	if (rc != 0)
		return rc;
	rc = pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	if (rc == 0) {
		thread_block_signals(&old);
		rc = pthread_create(t, &attr, fn, arg);
		thread_restore_signals(&old);
	}
	pthread_attr_destroy(&attr);
	return rc;
}

void thread_c_locale(void)
{
	/* glibc returns its static C locale object: nothing to free. */
	locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);

	if (c != (locale_t)0)
		uselocale(c);
}

/* Going on after a failed lock or join would only hide the bug. */
void must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", what, strerror(rc));
		abort();
	}
}

void lock(pthread_mutex_t *m)
{
	must(pthread_mutex_lock(m), "pthread_mutex_lock");
}

void unlock(pthread_mutex_t *m)
{
	must(pthread_mutex_unlock(m), "pthread_mutex_unlock");
}

void mutex_init(pthread_mutex_t *m)
{
	must(pthread_mutex_init(m, NULL), "pthread_mutex_init");
}

void mutex_destroy(pthread_mutex_t *m)
{
	must(pthread_mutex_destroy(m), "pthread_mutex_destroy");
}

void cond_init(pthread_cond_t *c)
{
	pthread_condattr_t attr;

	must(pthread_condattr_init(&attr), "pthread_condattr_init");
	must(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC), "pthread_condattr_setclock");
	must(pthread_cond_init(c, &attr), "pthread_cond_init");
	must(pthread_condattr_destroy(&attr), "pthread_condattr_destroy");
}

void cond_destroy(pthread_cond_t *c)
{
	must(pthread_cond_destroy(c), "pthread_cond_destroy");
}

void cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
	must(pthread_cond_wait(c, m), "pthread_cond_wait");
}

bool cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *deadline)
{
	int rc = pthread_cond_timedwait(c, m, deadline);

	if (rc == ETIMEDOUT)
		return false;
	must(rc, "pthread_cond_timedwait");
	return true;
}

void cond_signal(pthread_cond_t *c)
{
	must(pthread_cond_signal(c), "pthread_cond_signal");
}

void cond_broadcast(pthread_cond_t *c)
{
	must(pthread_cond_broadcast(c), "pthread_cond_broadcast");
}

void ref_init(atomic_uint *r)
{
	atomic_init(r, 1);
}

void ref_get(atomic_uint *r)
{
	atomic_fetch_add_explicit(r, 1, memory_order_relaxed);
}

bool ref_put(atomic_uint *r)
{
	return atomic_fetch_sub_explicit(r, 1, memory_order_acq_rel) == 1;
}

struct timespec mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

struct timespec mono_after(int64_t ms)
{
	struct timespec ts = mono_now();

	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static int64_t mono_ms(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

int64_t mono_now_ms(void)
{
	struct timespec now = mono_now();

	return mono_ms(&now);
}

int mono_ms_until(const struct timespec *deadline)
{
	struct timespec now = mono_now();
	int64_t ms = ((int64_t)deadline->tv_sec - now.tv_sec) * 1000 +
		     (deadline->tv_nsec - now.tv_nsec + 999999) / 1000000;

	if (ms < 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ---------------------------------------------------------------------
 * The reaper
 * ------------------------------------------------------------------- */

int reaper_init(struct reaper *r)
{
	r->running = r->done = NULL;
	r->nrunning = r->unjoined = 0;
	mutex_init(&r->lock);
	if (wake_init(&r->wake) < 0) {
		mutex_destroy(&r->lock);
		return -1;
	}
	return 0;
}

void reaper_destroy(struct reaper *r)
{
	wake_close(&r->wake);
	mutex_destroy(&r->lock);
}

/* The lists below are changed with r->lock held. */

static void push(struct reaped **list, struct reaped *t)
{
	t->prev = NULL;
	t->next = *list;
	if (*list)
		(*list)->prev = t;
	*list = t;
}

static void unlink_from(struct reaped **list, struct reaped *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		*list = t->next;
	if (t->next)
		t->next->prev = t->prev;
}

int reaper_start(struct reaper *r, struct reaped *t, void *(*fn)(void *),
		 void *arg)
{
	int rc;

	/* Listed before it runs, so that its reaper_done cannot come first. */
	lock(&r->lock);
	push(&r->running, t);
	r->nrunning++;
	r->unjoined++;
	unlock(&r->lock);
	rc = thread_start(&t->thread, fn, arg);
	if (rc != 0) {
		lock(&r->lock);
		unlink_from(&r->running, t);
		r->nrunning--;
		r->unjoined--;
		unlock(&r->lock);
	}
	return rc;
}

void reaper_done(struct reaper *r, struct reaped *t)
{
	lock(&r->lock);
	unlink_from(&r->running, t);
	r->nrunning--;
	push(&r->done, t);
	unlock(&r->lock);
	wake_poke(&r->wake);
}

size_t reaper_join(struct reaper *r, void (*release)(struct reaped *t))
{
	struct reaped *t, *next;
	size_t n = 0, left;

	wake_drain(&r->wake);
	lock(&r->lock);
	t = r->done;
	r->done = NULL;
	unlock(&r->lock);
	for (; t; t = next) {
		next = t->next;
		must(pthread_join(t->thread, NULL), "pthread_join");
		release(t);
		n++;
	}
	lock(&r->lock);
	r->unjoined -= n;
	left = r->unjoined;
	unlock(&r->lock);
	return left;
}

size_t reaper_running(struct reaper *r)
{
	size_t n;

	lock(&r->lock);
	n = r->nrunning;
	unlock(&r->lock);
	return n;
}

void reaper_each(struct reaper *r, void (*fn)(struct reaped *t, void *arg), void *arg)
{
	struct reaped *t;

	lock(&r->lock);
	for (t = r->running; t; t = t->next)
		fn(t, arg);
	unlock(&r->lock);
}

int reaper_fd(struct reaper *r)
{
	return wake_fd(&r->wake);
}
