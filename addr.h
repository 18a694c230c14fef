/* addr.h - parsing and printing "HOST:PORT" addresses.
 *
 * HOST is an IPv4 address, a host name, or a bracketed IPv6 address
 * ("[::1]:5002").  Nothing here touches the network or DNS. */
#ifndef ADDR_H
#define ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest "[v6addr%scope]:65535" plus NUL, rounded up. */
#define ADDR_STRLEN 80
/* Longest host part we accept (a DNS name is at most 253 bytes). */
#define ADDR_HOSTLEN 256

/* Parses a decimal port 0-65535 (1-65535 unless allow_zero).  Returns 0, or
 * -1 with *why set to a static reason. */
int addr_parse_port(const char *s, int allow_zero, uint16_t *port,
		    const char **why);

/* Splits "HOST:PORT" into host (brackets removed) and port.  An empty host
 * (":5001") is allowed and yields "".  Returns 0, or -1 with *why set. */
int addr_split(const char *hostport, char *host, size_t hostsz,
	       uint16_t *port, const char **why);
/* The same, with port 0 allowed when allow_zero (a port to listen on). */
int addr_split_ex(const char *hostport, char *host, size_t hostsz,
		  uint16_t *port, int allow_zero, const char **why);

/* Formats a socket address as "IP:PORT" or "[IPv6]:PORT"; an IPv4-mapped
 * IPv6 address is printed as plain IPv4.  Returns 0, or -1. */
int addr_format(const struct sockaddr *sa, char *buf, size_t bufsz);

/* Formats only the IP (IPv4-mapped printed as IPv4, IPv6 unbracketed). */
int addr_format_ip(const struct sockaddr *sa, char *buf, size_t bufsz);
/* The port of a socket address (0 if not IP). */
uint16_t addr_port(const struct sockaddr *sa);

/* A numeric IP in the form addr_format_ip prints ("::ffff:127.0.0.1" is
 * "127.0.0.1"); -1 when host is not a numeric address. */
int addr_canonical_ip(const char *host, char *buf, size_t bufsz);
/* Whether an IP in that form is a loopback address. */
bool addr_is_loopback(const char *ip);

/* Joins an IP and a port into "IP:PORT", bracketing IPv6. */
int addr_join(const char *ip, uint16_t port, char *buf, size_t bufsz);

#endif
