/* test_addr.c - unit tests for addr.c (HOST:PORT parsing and printing). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"

/* ---- addr_parse_port ------------------------------------------------ */

static void port_ok(const char *s, int allow_zero, uint16_t want)
{
	uint16_t port = 12345;
	const char *why = NULL;

	if (addr_parse_port(s, allow_zero, &port, &why) != 0)
		fail_msg("addr_parse_port(\"%s\", %d) failed: %s", s, allow_zero,
			 why ? why : "(no why)");
	assert_int_equal(port, want);
}

/* The reasons addr.c gives (they reach the user's terminal). */
#define WHY_NUMBER "expected a number from 0 to 65535"
#define WHY_ZERO "port 0 cannot be connected to; expected 1 to 65535"

static void port_bad_why(const char *s, int allow_zero, const char *want_why)
{
	uint16_t port = 4321;
	const char *why = NULL;

	if (addr_parse_port(s, allow_zero, &port, &why) != -1)
		fail_msg("addr_parse_port(\"%s\", %d) accepted it as %u", s,
			 allow_zero, (unsigned)port);
	assert_non_null(why);
	assert_true(why[0] != '\0');
	if (want_why && strcmp(why, want_why) != 0)
		fail_msg("addr_parse_port(\"%s\", %d): why is \"%s\", want \"%s\"",
			 s, allow_zero, why, want_why);
	assert_int_equal(port, 4321);		/* untouched on failure */
}

static void test_port_valid(void **state)
{
	(void)state;
	port_ok("1", 0, 1);
	port_ok("80", 0, 80);
	port_ok("5002", 0, 5002);
	port_ok("65535", 0, 65535);
	port_ok("65535", 1, 65535);
	port_ok("1", 1, 1);
}

static void test_port_zero(void **state)
{
	(void)state;
	port_ok("0", 1, 0);
	port_ok("00000", 1, 0);		/* five digits, value 0 */
	port_ok("00080", 0, 80);
	port_bad_why("0", 0, WHY_ZERO);
	port_bad_why("000", 0, WHY_ZERO);
}

static void test_port_invalid(void **state)
{
	(void)state;
	const char *bad[] = {
		"65536", "-1", "abc", "", " 1", "1x", "1 ", "99999",
		"4294967297", "18446744073709551617", "5e3", "0x10", ":1",
		"1.0", "-0x1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		port_bad_why(bad[i], 0, WHY_NUMBER);
		port_bad_why(bad[i], 1, WHY_NUMBER);
	}
	/* More than five digits, even of value 0 or 80. */
	port_bad_why("000000", 1, WHY_NUMBER);
	port_bad_why("000080", 0, WHY_NUMBER);
	port_bad_why("65536", 1, WHY_NUMBER);
}

/* ---- addr_split ----------------------------------------------------- */

static void split_ok(const char *hp, const char *want_host, uint16_t want_port)
{
	char host[ADDR_HOSTLEN];
	uint16_t port = 0;
	const char *why = NULL;

	memset(host, 'Z', sizeof host);
	if (addr_split(hp, host, sizeof host, &port, &why) != 0)
		fail_msg("addr_split(\"%s\") failed: %s", hp,
			 why ? why : "(no why)");
	assert_string_equal(host, want_host);
	assert_int_equal(port, want_port);
}

static void split_bad(const char *hp)
{
	char host[ADDR_HOSTLEN];
	uint16_t port = 0;
	const char *why = NULL;

	if (addr_split(hp, host, sizeof host, &port, &why) != -1)
		fail_msg("addr_split(\"%s\") accepted it", hp);
	assert_non_null(why);
	assert_true(why[0] != '\0');
}

static void test_split_ipv4(void **state)
{
	(void)state;
	split_ok("127.0.0.1:5002", "127.0.0.1", 5002);
	split_ok("192.168.1.5:2000", "192.168.1.5", 2000);
	split_ok("0.0.0.0:65535", "0.0.0.0", 65535);
}

static void test_split_hostname(void **state)
{
	(void)state;
	split_ok("localhost:80", "localhost", 80);
	split_ok("example.com:5001", "example.com", 5001);
}

static void test_split_ipv6(void **state)
{
	(void)state;
	split_ok("[::1]:5002", "::1", 5002);
	split_ok("[fe80::1%eth0]:1", "fe80::1%eth0", 1);
	split_ok("[2001:db8::42]:65535", "2001:db8::42", 65535);
	split_ok("[::ffff:127.0.0.1]:9000", "::ffff:127.0.0.1", 9000);
}

static void test_split_empty_host(void **state)
{
	(void)state;
	split_ok(":5001", "", 5001);
}

static void test_split_rejects(void **state)
{
	(void)state;
	split_bad("127.0.0.1");		/* no port */
	split_bad("localhost");
	split_bad("");
	split_bad("[::1");		/* unterminated bracket */
	split_bad("[::1:5002");
	split_bad("[::1]");		/* bracketed, no port */
	split_bad("[::1]5002");		/* no colon after bracket */
	split_bad("[::1]:");
	split_bad("::1:5002");		/* unbracketed IPv6 */
	split_bad("fe80::1:80");
	split_bad("::1");
	split_bad("host:");		/* empty port */
	split_bad("host:abc");
	split_bad("host:65536");
	split_bad("host:-1");
	split_bad("host:1x");
	split_bad("host: 1");
}

/* A bad port in HOST:PORT gives the port parser's reason; the other
 * reasons say what is wrong with the address. */
static void split_why(const char *hp, int allow_zero, const char *want)
{
	char host[ADDR_HOSTLEN];
	uint16_t port = 0;
	const char *why = NULL;

	if (addr_split_ex(hp, host, sizeof host, &port, allow_zero, &why) != -1)
		fail_msg("addr_split_ex(\"%s\") accepted it", hp);
	assert_non_null(why);
	if (strcmp(why, want) != 0)
		fail_msg("addr_split_ex(\"%s\"): why is \"%s\", want \"%s\"",
			 hp, why, want);
}

static void test_split_reasons(void **state)
{
	(void)state;
	split_why("host:65536", 1, WHY_NUMBER);
	split_why("host:x", 0, WHY_NUMBER);
	split_why("host:", 0, WHY_NUMBER);
	split_why("[::1]:", 0, WHY_NUMBER);
	split_why("[::1]:99999", 0, WHY_NUMBER);
	split_why("host:0", 0, WHY_ZERO);
	split_why("[::1]:0", 0, WHY_ZERO);
	split_why("host", 0, "expected HOST:PORT");
	split_why("[::1", 0, "expected [IPv6]:PORT");
	split_why("[::1]5002", 0, "expected [IPv6]:PORT");
	split_why("[]:80", 0, "empty IPv6 address");
	split_why("::1:80", 0, "an IPv6 address needs brackets: [ADDR]:PORT");
}

static void test_split_long_host(void **state)
{
	(void)state;
	static char hp[1200];
	static char big[1024];
	char host[ADDR_HOSTLEN];
	uint16_t port = 0;
	const char *why = NULL;

	/* A 253-byte DNS name is the longest legal one: accepted. */
	memset(hp, 'a', 253);
	strcpy(hp + 253, ":80");
	memset(big, 0, sizeof big);
	assert_int_equal(addr_split(hp, host, sizeof host, &port, &why), 0);
	assert_int_equal(strlen(host), 253);
	assert_int_equal(port, 80);

	/* 300 bytes of host: rejected even with a big buffer. */
	memset(hp, 'a', 300);
	strcpy(hp + 300, ":80");
	why = NULL;
	assert_int_equal(addr_split(hp, big, sizeof big, &port, &why), -1);
	assert_non_null(why);

	/* 1000 bytes of host, bracketed: rejected. */
	hp[0] = '[';
	memset(hp + 1, 'a', 1000);
	strcpy(hp + 1001, "]:80");
	why = NULL;
	assert_int_equal(addr_split(hp, big, sizeof big, &port, &why), -1);
	assert_non_null(why);

	/* ADDR_HOSTLEN bytes of host cannot fit an ADDR_HOSTLEN buffer. */
	memset(hp, 'a', ADDR_HOSTLEN);
	strcpy(hp + ADDR_HOSTLEN, ":80");
	why = NULL;
	assert_int_equal(addr_split(hp, host, sizeof host, &port, &why), -1);
	assert_non_null(why);
}

/* A host that does not fit the caller's buffer is an error, not truncated,
 * and nothing is written past hostsz. */
static void test_split_small_buffer(void **state)
{
	(void)state;
	char host[16];
	uint16_t port = 0;
	const char *why = NULL;

	memset(host, 'Z', sizeof host);
	assert_int_equal(addr_split("localhost:80", host, 5, &port, &why), -1);
	assert_non_null(why);
	for (size_t i = 5; i < sizeof host; i++)
		assert_int_equal(host[i], 'Z');

	/* Exactly fits: "localhost" + NUL = 10. */
	assert_int_equal(addr_split("localhost:80", host, 10, &port, &why), 0);
	assert_string_equal(host, "localhost");
	assert_int_equal(port, 80);
}

/* addr_split refuses port 0 (nothing can be connected to it);
 * addr_split_ex allows it when asked (a port to listen on). */
static void test_split_port_zero(void **state)
{
	(void)state;
	char host[ADDR_HOSTLEN];
	uint16_t port = 7;
	const char *why = NULL;

	split_bad("127.0.0.1:0");
	split_bad(":0");
	split_bad("[::1]:0");

	assert_int_equal(addr_split_ex(":0", host, sizeof host, &port, 1, &why), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 0);
	port = 7;
	assert_int_equal(addr_split_ex("[::1]:0", host, sizeof host, &port, 1,
				       &why), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(addr_split_ex("localhost:5001", host, sizeof host,
				       &port, 1, &why), 0);
	assert_string_equal(host, "localhost");
	assert_int_equal(port, 5001);

	why = NULL;
	assert_int_equal(addr_split_ex("127.0.0.1:0", host, sizeof host, &port,
				       0, &why), -1);
	assert_non_null(why);
	why = NULL;
	assert_int_equal(addr_split_ex("::1:0", host, sizeof host, &port, 1,
				       &why), -1);
	assert_non_null(why);
	why = NULL;
	assert_int_equal(addr_split_ex("host:65536", host, sizeof host, &port,
				       1, &why), -1);
	assert_non_null(why);
}

/* ---- addr_format / addr_format_ip ----------------------------------- */

static struct sockaddr_in sin4(const char *ip, uint16_t port)
{
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
	return sa;
}

static struct sockaddr_in6 sin6(const char *ip, uint16_t port)
{
	struct sockaddr_in6 sa;

	memset(&sa, 0, sizeof sa);
	sa.sin6_family = AF_INET6;
	sa.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &sa.sin6_addr), 1);
	return sa;
}

static void test_format_ipv4(void **state)
{
	(void)state;
	char buf[ADDR_STRLEN];
	struct sockaddr_in sa = sin4("127.0.0.1", 5002);

	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "127.0.0.1:5002");
	assert_int_equal(addr_format_ip((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "127.0.0.1");

	sa = sin4("255.255.255.255", 65535);
	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "255.255.255.255:65535");

	sa = sin4("0.0.0.0", 0);
	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "0.0.0.0:0");
}

static void test_format_ipv6(void **state)
{
	(void)state;
	char buf[ADDR_STRLEN];
	struct sockaddr_in6 sa = sin6("::1", 5002);

	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "[::1]:5002");
	assert_int_equal(addr_format_ip((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "::1");

	sa = sin6("2001:db8::42", 80);
	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "[2001:db8::42]:80");

	/* The longest textual IPv6 address still fits ADDR_STRLEN. */
	sa = sin6("1234:5678:9abc:def0:1234:5678:9abc:def0", 65535);
	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "[1234:5678:9abc:def0:1234:5678:9abc:def0]:65535");
}

static void test_format_v4mapped(void **state)
{
	(void)state;
	char buf[ADDR_STRLEN];
	struct sockaddr_in6 sa = sin6("::ffff:127.0.0.1", 5001);

	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "127.0.0.1:5001");
	assert_int_equal(addr_format_ip((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "127.0.0.1");

	sa = sin6("::ffff:10.1.2.3", 80);
	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_string_equal(buf, "10.1.2.3:80");
}

static void test_format_bad(void **state)
{
	(void)state;
	char buf[ADDR_STRLEN];
	struct sockaddr_un un;

	memset(&un, 0, sizeof un);
	un.sun_family = AF_UNIX;
	assert_int_equal(addr_format((struct sockaddr *)&un, buf, sizeof buf), -1);
	assert_int_equal(addr_format_ip((struct sockaddr *)&un, buf, sizeof buf), -1);
}

/* A buffer too small is an error; nothing is written past bufsz. */
static void test_format_small_buffer(void **state)
{
	(void)state;
	char buf[ADDR_STRLEN];
	struct sockaddr_in sa = sin4("127.0.0.1", 5002);
	struct sockaddr_in6 sa6 = sin6("::1", 5002);

	memset(buf, 'Z', sizeof buf);
	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, 8), -1);
	for (size_t i = 8; i < sizeof buf; i++)
		assert_int_equal(buf[i], 'Z');
	memset(buf, 'Z', sizeof buf);
	assert_int_equal(addr_format((struct sockaddr *)&sa6, buf, 6), -1);
	for (size_t i = 6; i < sizeof buf; i++)
		assert_int_equal(buf[i], 'Z');

	/* Exactly enough: 14 chars + NUL. */
	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, 15), 0);
	assert_string_equal(buf, "127.0.0.1:5002");
}

/* ---- addr_join ------------------------------------------------------ */

static void join_ok(const char *ip, uint16_t port, const char *want)
{
	char buf[ADDR_STRLEN];

	assert_int_equal(addr_join(ip, port, buf, sizeof buf), 0);
	assert_string_equal(buf, want);
}

static void test_join(void **state)
{
	(void)state;
	join_ok("127.0.0.1", 5002, "127.0.0.1:5002");
	join_ok("::1", 5002, "[::1]:5002");
	join_ok("fe80::1%eth0", 1, "[fe80::1%eth0]:1");
	join_ok("2001:db8::1", 65535, "[2001:db8::1]:65535");
	join_ok("localhost", 80, "localhost:80");
	join_ok("10.0.0.1", 0, "10.0.0.1:0");
}

static void test_join_small_buffer(void **state)
{
	(void)state;
	char buf[32];

	memset(buf, 'Z', sizeof buf);
	assert_int_equal(addr_join("127.0.0.1", 5002, buf, 10), -1);
	for (size_t i = 10; i < sizeof buf; i++)
		assert_int_equal(buf[i], 'Z');
	assert_int_equal(addr_join("::1", 5002, buf, 11), 0);
	assert_string_equal(buf, "[::1]:5002");
}

/* join then split gives back what went in. */
static void test_join_split_roundtrip(void **state)
{
	(void)state;
	const char *ips[] = { "127.0.0.1", "::1", "fe80::1%lo", "2001:db8::7",
			      "::ffff:1.2.3.4", "192.168.1.5" };
	const uint16_t ports[] = { 1, 80, 5001, 65535 };

	for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
		for (size_t j = 0; j < sizeof ports / sizeof ports[0]; j++) {
			char buf[ADDR_STRLEN], host[ADDR_HOSTLEN];
			uint16_t port = 0;
			const char *why = NULL;

			assert_int_equal(addr_join(ips[i], ports[j], buf,
						   sizeof buf), 0);
			assert_int_equal(addr_split(buf, host, sizeof host,
						    &port, &why), 0);
			assert_string_equal(host, ips[i]);
			assert_int_equal(port, ports[j]);
		}
	}
}

/* format of a sockaddr, then split: the IP and port come back. */
static void test_format_split_roundtrip(void **state)
{
	(void)state;
	char buf[ADDR_STRLEN], host[ADDR_HOSTLEN];
	uint16_t port = 0;
	const char *why = NULL;
	struct sockaddr_in6 sa = sin6("2001:db8::9", 4242);

	assert_int_equal(addr_format((struct sockaddr *)&sa, buf, sizeof buf), 0);
	assert_int_equal(addr_split(buf, host, sizeof host, &port, &why), 0);
	assert_string_equal(host, "2001:db8::9");
	assert_int_equal(port, 4242);
}

/* ---- addr_port ------------------------------------------------------ */

static void test_port_of_sockaddr(void **state)
{
	(void)state;
	struct sockaddr_in a4 = sin4("10.1.2.3", 5001);
	struct sockaddr_in6 a6 = sin6("2001:db8::1", 65535);
	struct sockaddr_in6 m6 = sin6("::ffff:127.0.0.1", 1);
	struct sockaddr_in z4 = sin4("127.0.0.1", 0);
	struct sockaddr_un un;

	assert_int_equal(addr_port((struct sockaddr *)&a4), 5001);
	assert_int_equal(addr_port((struct sockaddr *)&a6), 65535);
	assert_int_equal(addr_port((struct sockaddr *)&m6), 1);
	assert_int_equal(addr_port((struct sockaddr *)&z4), 0);
	memset(&un, 0, sizeof un);
	un.sun_family = AF_UNIX;
	assert_int_equal(addr_port((struct sockaddr *)&un), 0);
}

/* ---- addr_canonical_ip / addr_is_loopback --------------------------- */

static void canon_ok(const char *host, const char *want)
{
	char buf[ADDR_STRLEN];

	memset(buf, 'Z', sizeof buf);
	if (addr_canonical_ip(host, buf, sizeof buf) != 0)
		fail_msg("addr_canonical_ip(\"%s\") refused it", host);
	if (strcmp(buf, want) != 0)
		fail_msg("addr_canonical_ip(\"%s\") is \"%s\", want \"%s\"", host,
			 buf, want);
}

static void canon_bad(const char *host)
{
	char buf[ADDR_STRLEN];

	if (addr_canonical_ip(host, buf, sizeof buf) != -1)
		fail_msg("addr_canonical_ip(\"%s\") accepted it as \"%s\"", host, buf);
}

static void test_canonical_ip(void **state)
{
	(void)state;
	canon_ok("127.0.0.1", "127.0.0.1");
	canon_ok("192.168.1.5", "192.168.1.5");
	canon_ok("::1", "::1");
	canon_ok("0:0:0:0:0:0:0:1", "::1");
	canon_ok("2001:DB8:0:0::42", "2001:db8::42");
	/* IPv4-mapped: as addr_format_ip prints a dual-stack peer. */
	canon_ok("::ffff:127.0.0.1", "127.0.0.1");
	canon_ok("::FFFF:10.1.2.3", "10.1.2.3");
	canon_ok("0:0:0:0:0:ffff:7f00:1", "127.0.0.1");
	/* Not numeric addresses. */
	canon_bad("localhost");
	canon_bad("example.com");
	canon_bad("");
	canon_bad("127.1");
	canon_bad("1.2.3.4.5");
	canon_bad("256.0.0.1");
	canon_bad(" 127.0.0.1");
	canon_bad("127.0.0.1 ");
	canon_bad("[::1]");
	canon_bad("::1:5002:");
}

/* The same form as addr_format_ip gives for a socket address. */
static void test_canonical_ip_matches_format(void **state)
{
	(void)state;
	static const char *ips[] = { "127.0.0.1", "::1", "2001:db8::42",
				     "::ffff:10.0.0.7", "fe80::1", "0.0.0.0", "::" };

	for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
		char a[ADDR_STRLEN], b[ADDR_STRLEN];
		struct sockaddr_storage ss;

		memset(&ss, 0, sizeof ss);
		if (strchr(ips[i], ':')) {
			struct sockaddr_in6 s6 = sin6(ips[i], 1);

			memcpy(&ss, &s6, sizeof s6);
		} else {
			struct sockaddr_in s4 = sin4(ips[i], 1);

			memcpy(&ss, &s4, sizeof s4);
		}
		assert_int_equal(addr_format_ip((struct sockaddr *)&ss, a, sizeof a), 0);
		assert_int_equal(addr_canonical_ip(ips[i], b, sizeof b), 0);
		assert_string_equal(a, b);
	}
}

static void test_canonical_ip_small_buffer(void **state)
{
	(void)state;
	char buf[32];

	memset(buf, 'Z', sizeof buf);
	assert_int_equal(addr_canonical_ip("127.0.0.1", buf, 9), -1);
	for (size_t i = 9; i < sizeof buf; i++)
		assert_int_equal(buf[i], 'Z');
	assert_int_equal(addr_canonical_ip("127.0.0.1", buf, 10), 0);
	assert_string_equal(buf, "127.0.0.1");
	assert_int_equal(addr_canonical_ip("::ffff:127.0.0.1", buf, 9), -1);
	assert_int_equal(addr_canonical_ip("::ffff:127.0.0.1", buf, 10), 0);
	assert_string_equal(buf, "127.0.0.1");
}

static void test_is_loopback(void **state)
{
	(void)state;
	char buf[ADDR_STRLEN];

	assert_true(addr_is_loopback("127.0.0.1"));
	assert_true(addr_is_loopback("127.255.255.254"));
	assert_true(addr_is_loopback("127.1.2.3"));
	assert_true(addr_is_loopback("::1"));
	assert_false(addr_is_loopback("128.0.0.1"));
	assert_false(addr_is_loopback("10.0.0.1"));
	assert_false(addr_is_loopback("1.127.0.0"));
	assert_false(addr_is_loopback("0.0.0.0"));
	assert_false(addr_is_loopback("::"));
	assert_false(addr_is_loopback("::2"));
	assert_false(addr_is_loopback("2001:db8::1"));
	assert_false(addr_is_loopback("localhost"));
	assert_false(addr_is_loopback(""));
	/* Through addr_canonical_ip, other spellings are recognised. */
	assert_int_equal(addr_canonical_ip("::ffff:127.0.0.1", buf, sizeof buf), 0);
	assert_true(addr_is_loopback(buf));
	assert_int_equal(addr_canonical_ip("0:0:0:0:0:0:0:1", buf, sizeof buf), 0);
	assert_true(addr_is_loopback(buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_port_valid),
		cmocka_unit_test(test_port_zero),
		cmocka_unit_test(test_port_invalid),
		cmocka_unit_test(test_split_ipv4),
		cmocka_unit_test(test_split_hostname),
		cmocka_unit_test(test_split_ipv6),
		cmocka_unit_test(test_split_empty_host),
		cmocka_unit_test(test_split_rejects),
		cmocka_unit_test(test_split_reasons),
		cmocka_unit_test(test_split_long_host),
		cmocka_unit_test(test_split_small_buffer),
		cmocka_unit_test(test_split_port_zero),
		cmocka_unit_test(test_format_ipv4),
		cmocka_unit_test(test_format_ipv6),
		cmocka_unit_test(test_format_v4mapped),
		cmocka_unit_test(test_format_bad),
		cmocka_unit_test(test_format_small_buffer),
		cmocka_unit_test(test_join),
		cmocka_unit_test(test_join_small_buffer),
		cmocka_unit_test(test_join_split_roundtrip),
		cmocka_unit_test(test_format_split_roundtrip),
		cmocka_unit_test(test_port_of_sockaddr),
		cmocka_unit_test(test_canonical_ip),
		cmocka_unit_test(test_canonical_ip_matches_format),
		cmocka_unit_test(test_canonical_ip_small_buffer),
		cmocka_unit_test(test_is_loopback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
