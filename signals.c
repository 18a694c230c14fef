/* signals.c - signals turned into a readable pipe. */
#include "signals.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "wake.h"

static struct wake wake = { { -1, -1 } };
/* Lock-free atomics: safe in a handler, and seen by the main thread. */
static atomic_int caught;
static atomic_bool resized;
static atomic_uint count;

/* Async-signal-safe: records the signal and pokes the pipe. */
static void on_signal(int sig)
{
	int none = 0;

	if (sig == SIGWINCH) {
		atomic_store(&resized, true);
	} else {
		atomic_compare_exchange_strong(&caught, &none, sig);
		atomic_fetch_add(&count, 1);
	}
	wake_poke(&wake);
}

static int catch(int sig, bool unless_ignored)
{
	struct sigaction sa, old;

	if (unless_ignored && sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
		return 0;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	return sigaction(sig, &sa, NULL);
}

int signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	/* Writes to a closed peer must fail with EPIPE, not kill us. */
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -1;
	if (wake_init(&wake) < 0)
		return -1;
	if (catch(SIGTERM, false) < 0 || catch(SIGINT, true) < 0 || catch(SIGHUP, true) < 0)
		return -1;
	return 0;
}

int signals_fd(void)
{
	return wake_fd(&wake);
}

void signals_drain(void)
{
	wake_drain(&wake);
}

int signals_caught(void)
{
	return atomic_load(&caught);
}

unsigned signals_count(void)
{
	return atomic_load(&count);
}

void signals_watch_resize(void)
{
	catch(SIGWINCH, false);
}

bool signals_take_resize(void)
{
	return atomic_exchange(&resized, false);
}
