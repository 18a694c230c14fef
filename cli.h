/* cli.h - the command line, shared by the three programs.
 *
 * The options every program takes (-h/--help, -q/--quiet, -v/--verbose,
 * --version, --bind ADDR, --stall-timeout SECONDS), and usage errors that
 * quote the value that was wrong:
 *
 *	chat: bad port 'abc': expected a number from 0 to 65535
 *
 * followed by the usage line, and exit status 2. */
#ifndef CLI_H
#define CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

/* The common options' getopt_long entries: put them in each table, and
 * the terminal ones in chat's and chat5's.  A program's own options use
 * values from CLI_OWN up. */
enum { CLI_VERSION = 1000, CLI_BIND, CLI_STALL, CLI_NO_COLOR, CLI_TIMESTAMPS, CLI_OWN };
#define CLI_COMMON_OPTIONS                                        \
	{ "help", no_argument, NULL, 'h' },                       \
	{ "quiet", no_argument, NULL, 'q' },                      \
	{ "verbose", no_argument, NULL, 'v' },                    \
	{ "version", no_argument, NULL, CLI_VERSION },            \
	{ "bind", required_argument, NULL, CLI_BIND },            \
	{ "stall-timeout", required_argument, NULL, CLI_STALL }
#define CLI_TERMINAL_OPTIONS                                      \
	{ "no-color", no_argument, NULL, CLI_NO_COLOR },          \
	{ "timestamps", no_argument, NULL, CLI_TIMESTAMPS }
#define CLI_SHORT_OPTIONS ":hqv"

#define CLI_DEFAULT_STALL_S 10

struct cli {
	const char *usage;	/* "usage: chat [-hqv] ...\n" */
	/* --help prints the usage, help (what the program does, its
	 * operands and own options), the common options, then notes. */
	const char *help;
	const char *notes;
	bool terminal;		/* takes CLI_TERMINAL_OPTIONS */
	const char *bind;	/* --bind, or NULL */
	int stall_ms;		/* --stall-timeout */
	bool no_color;		/* --no-color */
	bool timestamps;	/* --timestamps */
};

/* Runs getopt_long over argv; the common options are handled here, the
 * program's own passed to own(opt, optarg, arg) (own may be NULL when it
 * has none).  Returns optind. */
int cli_parse(struct cli *c, int argc, char **argv, const struct option *opts,
	      void (*own)(int opt, const char *value, void *arg), void *arg);

/* "PROG: fmt..." then the usage line; exit 2. */
noreturn void cli_usage_error(const struct cli *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Checked values: each dies with cli_usage_error("bad WHAT 'VALUE': why"). */
uint16_t cli_port(const struct cli *c, const char *what, const char *value,
		  bool allow_zero);
long cli_number(const struct cli *c, const char *what, const char *value,
		long min, long max);
void cli_host_port(const struct cli *c, const char *what, const char *value,
		   char *host, size_t hostsz, uint16_t *port, bool allow_zero);
const char *cli_name(const struct cli *c, const char *value);

#endif
