/* addr.c - "HOST:PORT" parsing and printing. */
#include "addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

int addr_parse_port(const char *s, int allow_zero, uint16_t *port,
		    const char **why)
{
	unsigned long v = 0;
	size_t i;

	/* strtoul would accept signs, spaces and hex; a port is digits. */
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5) {
			*why = "expected a number from 0 to 65535";
			return -1;
		}
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || v > 65535) {
		*why = "expected a number from 0 to 65535";
		return -1;
	}
	if (v == 0 && !allow_zero) {
		*why = "port 0 cannot be connected to; expected 1 to 65535";
		return -1;
	}
	*port = (uint16_t)v;
	return 0;
}

int addr_split(const char *hostport, char *host, size_t hostsz,
	       uint16_t *port, const char **why)
{
	return addr_split_ex(hostport, host, hostsz, port, 0, why);
}

int addr_split_ex(const char *hostport, char *host, size_t hostsz,
		  uint16_t *port, int allow_zero, const char **why)
{
	const char *h = hostport, *colon;
	size_t hlen;

	if (*hostport == '[') {
		const char *close = strchr(hostport, ']');

		if (!close || close[1] != ':') {
			*why = "expected [IPv6]:PORT";
			return -1;
		}
		h = hostport + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
		if (hlen == 0) {
			*why = "empty IPv6 address";
			return -1;
		}
	} else {
		colon = strrchr(hostport, ':');
		if (!colon) {
			*why = "expected HOST:PORT";
			return -1;
		}
		hlen = (size_t)(colon - h);
		if (memchr(h, ':', hlen)) {
			*why = "an IPv6 address needs brackets: [ADDR]:PORT";
			return -1;
		}
	}
	if (hlen >= hostsz || hlen >= ADDR_HOSTLEN) {
		*why = "host name too long";
		return -1;
	}
	if (addr_parse_port(colon + 1, allow_zero, port, why) < 0)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	return 0;
}

/* The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d),
 * which is how a dual-stack socket sees IPv4 peers. */
static int unmap(const struct sockaddr_in6 *sin6, struct in_addr *v4)
{
	if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		return 0;
	memcpy(v4, sin6->sin6_addr.s6_addr + 12, sizeof *v4);
	return 1;
}

/* Writes the IP into buf and the port into *port. */
static int format_ip(const struct sockaddr *sa, char *buf, size_t bufsz,
		     uint16_t *port)
{
	struct in_addr v4;
	const void *src;
	int family;

	if (bufsz > (size_t)INET6_ADDRSTRLEN + 1)
		bufsz = (size_t)INET6_ADDRSTRLEN + 1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		family = AF_INET;
		src = &sin->sin_addr;
		*port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		*port = ntohs(sin6->sin6_port);
		if (unmap(sin6, &v4)) {
			family = AF_INET;
			src = &v4;
		} else {
			family = AF_INET6;
			src = &sin6->sin6_addr;
		}
	} else {
		return -1;
	}
	return inet_ntop(family, src, buf, (socklen_t)bufsz) ? 0 : -1;
}

int addr_format_ip(const struct sockaddr *sa, char *buf, size_t bufsz)
{
	uint16_t port;

	return format_ip(sa, buf, bufsz, &port);
}

uint16_t addr_port(const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN + 1];
	uint16_t port = 0;

	return format_ip(sa, ip, sizeof ip, &port) < 0 ? 0 : port;
}

int addr_format(const struct sockaddr *sa, char *buf, size_t bufsz)
{
	char ip[INET6_ADDRSTRLEN + 1];
	uint16_t port;

	if (format_ip(sa, ip, sizeof ip, &port) < 0)
		return -1;
	return addr_join(ip, port, buf, bufsz);
}

int addr_canonical_ip(const char *host, char *buf, size_t bufsz)
{
	unsigned char bin[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, host, bin) == 1)
		return inet_ntop(AF_INET, bin, buf, (socklen_t)bufsz) ? 0 : -1;
	if (inet_pton(AF_INET6, host, bin) == 1) {
		struct sockaddr_in6 sin6;

		memset(&sin6, 0, sizeof sin6);
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, bin, sizeof sin6.sin6_addr);
		return addr_format_ip((struct sockaddr *)&sin6, buf, bufsz);
	}
	return -1;
}

bool addr_is_loopback(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

int addr_join(const char *ip, uint16_t port, char *buf, size_t bufsz)
{
	int n = strchr(ip, ':') ? snprintf(buf, bufsz, "[%s]:%u", ip, port)
				: snprintf(buf, bufsz, "%s:%u", ip, port);

	return n < 0 || (size_t)n >= bufsz ? -1 : 0;
}
