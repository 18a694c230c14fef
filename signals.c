/* signals.c - signals turned into a readable pipe. */
#include "signals.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "wake.h"

static struct wake wake = { { -1, -1 } };
static volatile sig_atomic_t caught;
static volatile sig_atomic_t resized;
static volatile sig_atomic_t count;

/* Async-signal-safe: records the signal and pokes the pipe. */
static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		resized = 1;
	else {
		if (!caught)
			caught = sig;
		count++;
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
	return caught;
}

unsigned signals_count(void)
{
	return (unsigned)count;
}

void signals_watch_resize(void)
{
	catch(SIGWINCH, false);
}

bool signals_take_resize(void)
{
	if (!resized)
		return false;
	resized = 0;
	return true;
}
