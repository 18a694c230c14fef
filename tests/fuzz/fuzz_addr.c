/* fuzz_addr.c - libFuzzer target: the HOST:PORT parser (addr.c).
 *
 * The input, cut at its first NUL, goes to addr_parse_port, addr_split and
 * addr_split_ex.  Checks, besides the sanitizers:
 * - a port is accepted exactly when it is 1-5 decimal digits of value at
 *   most 65535 (and not 0 unless allowed), and is that value;
 * - an accepted address is exactly HOST ":" PORT or "[" HOST "]:" PORT,
 *   with no ':' in an unbracketed host and no ']' in a bracketed one, and
 *   the host fits the buffer exactly: hostsz = strlen(host) + 1 is enough,
 *   one byte less is refused (the buffers are malloc'ed to size, so ASan
 *   sees any write past them);
 * - addr_join(host, port) splits back to the same host and port whenever
 *   that is possible at all (the host does not start with '[' and does not
 *   hold both ':' and ']'), and always for an IP literal, whose join fits
 *   ADDR_STRLEN;
 * - the input's first 19 bytes, taken as an IPv4 or IPv6 socket address,
 *   format (addr_format, addr_format_ip) to text that splits and parses back
 *   to the same address and port. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* From fuzz_common.c. */
_Noreturn void fuzz_fail(const char *what, const char *file, int line);

#define CHECK(c) ((c) ? (void)0 : fuzz_fail(#c, __FILE__, __LINE__))

/* What addr_parse_port must do with s: 0 and the value, or -1. */
static int expect_port(const char *s, int allow_zero, unsigned long *v)
{
	size_t i, n = strlen(s);

	if (n < 1 || n > 5)
		return -1;
	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (unsigned long)(s[i] - '0');
	}
	if (*v > 65535 || (*v == 0 && !allow_zero))
		return -1;
	return 0;
}

static void check_port(const char *s, int allow_zero)
{
	uint16_t port = 0;
	const char *why = NULL;
	unsigned long v = 0;
	int want = expect_port(s, allow_zero, &v);

	if (addr_parse_port(s, allow_zero, &port, &why) == 0) {
		CHECK(want == 0);
		CHECK(port == v);
	} else {
		CHECK(want == -1);
		CHECK(why != NULL && why[0] != '\0');
	}
}

/* Whether ip is an IPv4 or IPv6 literal; its bytes go to addr. */
static int ip_literal(const char *ip, unsigned char addr[16])
{
	if (inet_pton(AF_INET, ip, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, ip, addr) == 1)
		return AF_INET6;
	return 0;
}

static void check_join(const char *host, uint16_t port)
{
	char buf[ADDR_HOSTLEN + 16], back[ADDR_HOSTLEN];
	unsigned char addr[16];
	uint16_t port2 = 0;
	const char *why = NULL;
	bool colon = strchr(host, ':') != NULL;
	int family = ip_literal(host, addr);

	if (family) {
		char small[ADDR_STRLEN];

		CHECK(addr_join(host, port, small, sizeof small) == 0);
	}
	if (host[0] == '[' || (colon && strchr(host, ']'))) {
		CHECK(!family);
		return;
	}
	CHECK(addr_join(host, port, buf, sizeof buf) == 0);
	CHECK(addr_split_ex(buf, back, sizeof back, &port2, 1, &why) == 0);
	CHECK(strcmp(back, host) == 0);
	CHECK(port2 == port);
	/* Too small a buffer is refused, never overrun. */
	{
		size_t need = strlen(buf) + 1;
		char *tight = malloc(need - 1);

		CHECK(tight != NULL);
		CHECK(addr_join(host, port, tight, need - 1) == -1);
		free(tight);
	}
}

static void check_split(const char *s, int allow_zero, bool ex)
{
	char host[ADDR_HOSTLEN];
	uint16_t port = 0;
	const char *why = NULL, *p;
	size_t hlen, slen = strlen(s);
	int rc = ex ? addr_split_ex(s, host, sizeof host, &port, allow_zero, &why)
		    : addr_split(s, host, sizeof host, &port, &why);
	unsigned long v = 0;

	if (rc < 0) {
		CHECK(why != NULL && why[0] != '\0');
		return;
	}
	hlen = strlen(host);
	CHECK(hlen < ADDR_HOSTLEN);
	if (s[0] == '[') {
		CHECK(strchr(host, ']') == NULL);
		CHECK(hlen > 0);
		CHECK(slen > hlen + 3);
		CHECK(memcmp(s + 1, host, hlen) == 0);
		CHECK(s[hlen + 1] == ']' && s[hlen + 2] == ':');
		p = s + hlen + 3;
	} else {
		CHECK(strchr(host, ':') == NULL);
		CHECK(slen > hlen + 1);
		CHECK(memcmp(s, host, hlen) == 0);
		CHECK(s[hlen] == ':');
		p = s + hlen + 1;
	}
	CHECK(expect_port(p, allow_zero, &v) == 0);
	CHECK(port == v);

	/* The host buffer: exactly enough works, one byte less does not. */
	{
		char *exact = malloc(hlen + 1);
		uint16_t port2 = 0;

		CHECK(exact != NULL);
		CHECK(addr_split_ex(s, exact, hlen + 1, &port2, allow_zero, &why) == 0);
		CHECK(strcmp(exact, host) == 0 && port2 == port);
		free(exact);
		if (hlen > 0) {
			exact = malloc(hlen);
			CHECK(exact != NULL);
			CHECK(addr_split_ex(s, exact, hlen, &port2, allow_zero, &why) == -1);
			free(exact);
		}
	}
	check_join(host, port);
}

/* Formats a socket address made of the input bytes and parses it back. */
static void check_format(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss;
	char buf[ADDR_STRLEN], ip[ADDR_STRLEN], host[ADDR_HOSTLEN];
	unsigned char want[16], got[16];
	size_t wantlen;
	uint16_t port, port2 = 0;
	const char *why = NULL;
	int family;

	if (size < 19)
		return;
	memset(&ss, 0, sizeof ss);
	port = (uint16_t)(data[17] << 8 | data[18]);
	if (data[0] & 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, data + 1, 16);
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			family = AF_INET;
			memcpy(want, data + 13, 4);
			wantlen = 4;
		} else {
			family = AF_INET6;
			memcpy(want, data + 1, 16);
			wantlen = 16;
		}
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, data + 1, 4);
		family = AF_INET;
		memcpy(want, data + 1, 4);
		wantlen = 4;
	}
	CHECK(addr_format((struct sockaddr *)&ss, buf, sizeof buf) == 0);
	CHECK(addr_format_ip((struct sockaddr *)&ss, ip, sizeof ip) == 0);
	CHECK(addr_split_ex(buf, host, sizeof host, &port2, 1, &why) == 0);
	CHECK(port2 == port);
	CHECK(strcmp(host, ip) == 0);
	CHECK(inet_pton(family, host, got) == 1);
	CHECK(memcmp(got, want, wantlen) == 0);
	/* A buffer one byte short is refused. */
	{
		size_t need = strlen(buf) + 1;
		char *tight = malloc(need - 1);

		CHECK(tight != NULL);
		CHECK(addr_format((struct sockaddr *)&ss, tight, need - 1) == -1);
		free(tight);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	CHECK(s != NULL);
	memcpy(s, data, size);
	s[size] = '\0';

	check_port(s, 0);
	check_port(s, 1);
	check_split(s, 0, false);
	check_split(s, 0, true);
	check_split(s, 1, true);
	check_format(data, size);
	free(s);
	return 0;
}
