/* thread.c - small-stack threads, monotonic deadlines, checked locking. */
#include "thread.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int rc = pthread_attr_init(&attr);

	if (rc != 0)
		return rc;
	rc = pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
	if (rc == 0)
		rc = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return rc;
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

int64_t mono_ms(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
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

/* A failing lock or unlock means memory corruption or a logic error; going
 * on would only hide it. */
void lock(pthread_mutex_t *m)
{
	int rc = pthread_mutex_lock(m);

	if (rc != 0) {
		fprintf(stderr, "pthread_mutex_lock: %s\n", strerror(rc));
		abort();
	}
}

void unlock(pthread_mutex_t *m)
{
	int rc = pthread_mutex_unlock(m);

	if (rc != 0) {
		fprintf(stderr, "pthread_mutex_unlock: %s\n", strerror(rc));
		abort();
	}
}
