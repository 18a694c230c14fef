/* peakrss.c - run a program and report its peak RSS and CPU time.
 *
 *   peakrss --out FILE -- PROGRAM [ARG...]
 *
 * Forks, runs PROGRAM (stdin, stdout and stderr inherited), forwards
 * SIGTERM, SIGINT, SIGHUP and SIGQUIT to it, collects it with wait4 and
 * writes one line to FILE:
 *
 *   status=S maxrss_kb=K utime_s=U stime_s=T
 *
 * (S: the exit code, or minus the signal that ended it, as Python has it).
 * Exits with the program's exit code (128 + signal when killed).
 *
 * Why not wait4 from the harness itself: a child forked (or vforked) from
 * a large process such as Python starts with that process's resident
 * pages, and Linux keeps that high-water mark in ru_maxrss across exec: a
 * 2 MiB program forked from a 16 MiB Python reports 16 MiB.  Forked from
 * this small program, the baseline is this program's own RSS (about 1 MiB).
 * If peakrss dies, the program is killed with it (PR_SET_PDEATHSIG). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t child;

static void forward(int sig)
{
	if (child > 0)
		kill((pid_t)child, sig);
}

int main(int argc, char **argv)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };
	const char *out = NULL;
	struct sigaction sa;
	struct rusage ru;
	sigset_t all, old;
	int i, st, code;
	pid_t pid, parent = getpid();
	FILE *f;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else
			break;
	}
	if (!out || i >= argc) {
		fprintf(stderr, "usage: peakrss --out FILE -- PROGRAM [ARG...]\n");
		return 2;
	}
	/* No signal between the fork and the handlers knowing the child. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid < 0) {
		perror("peakrss: fork");
		return 2;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[i], argv + i);
		fprintf(stderr, "peakrss: %s: %s\n", argv[i], strerror(errno));
		_exit(127);
	}
	child = pid;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = forward;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < (int)(sizeof sigs / sizeof sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_SETMASK, &old, NULL);
	while (wait4(pid, &st, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("peakrss: wait4");
			return 2;
		}
	}
	code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
	f = fopen(out, "w");
	if (f) {
		fprintf(f, "status=%d maxrss_kb=%ld utime_s=%.6f stime_s=%.6f\n", code, ru.ru_maxrss,
			(double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
			(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
		fclose(f);
	}
	return code >= 0 ? code : 128 - code;
}
