/* cli.c - option parsing and usage errors for the three programs. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "log.h"
#include "proto.h"

/* The program's name, as log.c prints it (set by log_init). */
static const char *prog = "chat";

void cli_usage_error(const struct cli *c, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	log_warn("%s", text);
	fputs(c->usage, stderr);
	exit(2);
}

static noreturn void help(const struct cli *c)
{
	printf("%s%s", c->usage, c->help);
	if (c->terminal)
		fputs("  --no-color          no colours (also when NO_COLOR is set)\n"
		      "  --timestamps        show the time each message arrived\n", stdout);
	printf("  --bind ADDR         listen on this address only (e.g. 127.0.0.1)\n"
	       "  -q, --quiet         only warnings on stderr\n"
	       "  -v, --verbose       also per-message detail on stderr\n"
	       "  -h, --help          this help\n"
	       "      --version       print the version\n\n%s", c->notes);
	exit(0);
}

int cli_parse(struct cli *c, int argc, char **argv, const struct option *opts,
	      void (*own)(int opt, const char *value, void *arg), void *arg)
{
	const char *slash = strrchr(argv[0], '/');
	int opt;

	prog = slash ? slash + 1 : argv[0];
	log_init(argv[0]);
	c->stall_ms = CLI_DEFAULT_STALL_S * 1000;
	opterr = 0;	/* our own messages, prefixed like every other */
	while ((opt = getopt_long(argc, argv, CLI_SHORT_OPTIONS, opts, NULL)) != -1) {
		switch (opt) {
		case 'h': help(c);
		case 'q': log_set_level(LOG_QUIET); break;
		case 'v': log_set_level(LOG_VERBOSE); break;
		case CLI_VERSION: printf("%s %s\n", prog, VERSION); exit(0);
		case CLI_BIND: c->bind = optarg; break;
		case CLI_NO_COLOR: c->no_color = true; break;
		case CLI_TIMESTAMPS: c->timestamps = true; break;
		case CLI_STALL:
			c->stall_ms = (int)cli_number(c, "--stall-timeout", optarg, 1, 86400) * 1000;
			break;
		case ':':
			cli_usage_error(c, "option '%s' needs a value", argv[optind - 1]);
		case '?':
			if (optopt && optopt < CLI_VERSION)
				cli_usage_error(c, "unknown option '-%c'", optopt);
			cli_usage_error(c, "unknown option '%s'", argv[optind - 1]);
		default:
			if (own)
				own(opt, optarg, arg);
		}
	}
	return optind;
}

uint16_t cli_port(const struct cli *c, const char *what, const char *value,
		  bool allow_zero)
{
	const char *why;
	uint16_t port;

	if (addr_parse_port(value, allow_zero, &port, &why) < 0)
		cli_usage_error(c, "bad %s '%s': %s", what, value, why);
	return port;
}

long cli_number(const struct cli *c, const char *what, const char *value,
		long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (*value < '0' || *value > '9' || *end || errno || v < min || v > max)
		cli_usage_error(c, "bad %s '%s': expected a number from %ld to %ld", what,
				value, min, max);
	return v;
}

void cli_host_port(const struct cli *c, const char *what, const char *value,
		   char *host, size_t hostsz, uint16_t *port, bool allow_zero)
{
	const char *why;

	if (addr_split_ex(value, host, hostsz, port, allow_zero, &why) < 0)
		cli_usage_error(c, "bad %s '%s': %s", what, value, why);
	if (!*host && !allow_zero)
		cli_usage_error(c, "bad %s '%s': the host is missing", what, value);
}

const char *cli_name(const struct cli *c, const char *value)
{
	const char *why;

	if (!proto_name_valid(value, &why))
		cli_usage_error(c, "bad name '%s': %s", value, why);
	return value;
}
