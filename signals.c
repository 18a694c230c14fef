/* signals.c - SIGINT/SIGTERM turned into a readable pipe. */
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int pipefd[2] = { -1, -1 };
static volatile sig_atomic_t caught;

/* Async-signal-safe: records the signal and pokes the pipe. */
static void on_signal(int sig)
{
	int saved = errno;
	char b = 1;

	if (!caught)
		caught = sig;
	if (write(pipefd[1], &b, 1) < 0) {
		/* pipe full: it is readable already */
	}
	errno = saved;
}

int signals_init(void)
{
	struct sigaction sa;
	int i;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	/* Writes to a closed peer must fail with EPIPE, not kill us. */
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -1;
	if (pipe(pipefd) < 0)
		return -1;
	for (i = 0; i < 2; i++) {
		if (fcntl(pipefd[i], F_SETFL, O_NONBLOCK) < 0 ||
		    fcntl(pipefd[i], F_SETFD, FD_CLOEXEC) < 0)
			return -1;
	}
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return -1;
	return 0;
}

int signals_fd(void)
{
	return pipefd[0];
}

int signals_caught(void)
{
	return caught;
}
