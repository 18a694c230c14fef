/* chatbench.c - load generator for the server5 chat relay, and the same
 * workload against an IRC server, for a side-by-side comparison.
 *
 *   chatbench [options] --port PORT
 *
 * N receivers and S senders on loopback.
 *
 *   server5 (--proto server5, the default): each receiver listens on its own
 *   port, opens a control connection to the server and subscribes with
 *   {"operation": "subscribe", "client": "IP:PORT"}; the server connects
 *   back and writes every relayed message there.  Senders are separate
 *   connections that never subscribe, so every message goes to all N
 *   receivers.  At the end each receiver unsubscribes and waits for the
 *   server to close its delivery connection.  With --rx-port P1,P2,... the
 *   receivers subscribe to several servers in turn (server5 joined through
 *   NATS: the cluster points), the senders still to --port.
 *
 *   IRC (--proto irc): receivers register (NICK/USER) and JOIN one channel;
 *   receiver 0 joins first and clears channel mode +n so that senders can
 *   PRIVMSG the channel without being members (IRC does not echo a message
 *   to its sender, and senders outside the channel receive nothing, the
 *   same workload as server5's).  Senders register, OPER up and set user
 *   mode +F (relaxed flood protection) unless --oper none.
 *
 * Every message text is "SID:SEQ:T:PAD:CHECK": sender id, the sender's
 * sequence number (also server5's "seq" field), the CLOCK_MONOTONIC send
 * time in ns, a padding pattern that depends on SEQ (to --size bytes in
 * all) and a 64-bit hash of SID, SEQ and T in hex.  A delivery that does
 * not parse, or whose fields disagree, is counted as corrupt; one whose SEQ
 * is lower than one already seen from that sender by that receiver is
 * out of order; a SEQ that skips ahead counts the skipped ones as gaps.
 *
 * Load: --rate R sends R msgs/s per sender (open loop; latency is measured
 * from the scheduled send time, so a server that makes the generator wait
 * is charged for it).  Without --rate it is a closed loop: a sender keeps
 * at most --window W messages outstanding.  With --ack all (default) a
 * message is outstanding until every receiver got it; with --ack first,
 * until receiver 0 got it.
 *
 * Threads: with --threads 2 (default) one thread drives the senders and
 * another reads the receivers; --threads 1 runs both in one epoll loop.
 * Everything is non-blocking; every wait has a deadline.
 *
 * The last line of output is key=value pairs (see report()). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000ull
#define MAX_SIZE 4000			/* message text bytes (server5) */
#define MAX_SIZE_IRC 400		/* an IRC line is at most 512 bytes */
#define SENDER_OUT (1u << 20)		/* a sender's output buffer */
#define SENDER_HIGH (64u << 10)		/* closed loop: generate below this */
#define RX_BUF (256u << 10)
#define TX_BUF (64u << 10)
#define MAX_EVENTS 512
#define MAX_PORTS 16			/* --rx-port */
#define MAX_WATCH 16			/* --server-pid */
#define HSUB 32				/* histogram sub-buckets per octave */
#define HBUCKETS (64 * HSUB)

enum proto { P_S5, P_IRC };
enum kind { K_LISTEN, K_CTRL, K_DELIV, K_SEND, K_TIMER, K_WAKE };
enum phase { PH_SETUP, PH_RUN, PH_TEARDOWN };
enum rstate { R_IDLE, R_CONNECTING, R_WAIT, R_MODE, R_READY };
enum sstate { S_IDLE, S_CONNECTING, S_REG, S_READY };

struct conn {
	int fd;
	int ep;				/* the epoll it is registered with */
	enum kind kind;
	int idx;			/* receiver or sender index */
	bool connecting, want_out, dead;
	size_t partlen;
	char *part;			/* an incomplete line, G.maxline bytes */
	char *out;
	size_t outoff, outlen, outcap;
};

struct receiver {
	struct conn *lis, *ctrl, *deliv;
	uint16_t port;
	enum rstate state;
};

struct sender {
	struct conn *c;
	enum sstate state;
	uint64_t next_q;		/* messages generated so far */
	uint64_t due;			/* rate mode: next scheduled send (ns) */
	uint64_t last_ack, last_ack_change;
	bool has_F, stall_reported;
	char nick[32];
};

struct hist {
	uint64_t n[HBUCKETS];
	uint64_t count, max, sum;
};

struct pstat {
	bool ok;
	long threads, rss_kb, hwm_kb, fds;
	double cpu_s;
	long long ctxsw;		/* all threads' context switches, or -1 */
};

/* Options. */
static struct {
	enum proto proto;
	const char *host, *listen_ip, *channel, *nick_prefix, *label;
	char oper_name[64], oper_pass[64];
	bool oper;
	int port;
	int nrecv, nsend, window, threads, parallel, nice;
	bool ack_all;
	double rate, duration, drain, settle, setup_timeout, idle;
	size_t size;
	pid_t server_pid;
	int rx_ports[MAX_PORTS];		/* --rx-port: receivers' servers */
	int nrx_ports;
	pid_t watch[MAX_WATCH];			/* --server-pid: [0] is server_pid */
	int nwatch;
} O;

/* State.  Fields marked [rx] belong to the receiving thread during the run,
 * [tx] to the sending thread; the rest is set up before the threads start
 * or is atomic. */
static struct {
	struct receiver *r;
	struct sender *s;
	int rx_ep, tx_ep;
	struct conn *timer, *wake;
	enum phase phase;
	size_t maxline;
	uint64_t start_ns;		/* program start */
	uint64_t t0, t_stop;		/* measurement window */
	uint64_t interval;		/* rate mode: ns between a sender's msgs */

	/* setup */
	int r_started, r_ready, s_started, s_ready;
	const char *setup_error;
	char setup_error_buf[512];
	bool oper_warned;

	/* [rx] */
	uint64_t delivered, delivered_window, corrupt, ooo, gaps, late;
	uint64_t last_delivery;
	uint64_t *next;			/* [r * nsend + s]: next expected seq */
	uint32_t *got;			/* [s * window + q % window] */
	uint64_t *acked_local;
	bool *ack_dirty;
	int rx_disc, ctrl_closed;
	struct hist h;
	char corrupt_sample[3][160];
	double rx_cpu;

	/* the machine over the measured window (main thread) */
	double busy0, busy1, steal0, steal1, self0, self1;
	struct pstat wwin0[MAX_WATCH], wwin1[MAX_WATCH], wend[MAX_WATCH];	/* --server-pid */

	/* [tx] */
	uint64_t tx_late_max;
	int tx_disc;
	bool stalled;
	double tx_cpu;

	/* shared */
	_Atomic uint64_t *acked;	/* per sender: completed messages */
	atomic_int tx_waiting;
	atomic_int tx_done;		/* senders stopped; sent counts final */
	atomic_int run_over;
	uint64_t *sent_final;		/* written before tx_done */
	int deliv_open;			/* teardown: delivery conns still open */
} G;

static char pattern[MAX_SIZE + 64];

/* ------------------------------------------------------------------ */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, "chatbench: ", 11) < 0 || write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* nowhere to report it */
	}
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	say("%s", buf);
	printf("error=%s\n", "fatal");
	exit(1);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static double thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ms_until(uint64_t deadline, int cap)
{
	uint64_t now = mono_ns();
	uint64_t ms;

	if (deadline <= now)
		return 0;
	ms = (deadline - now + 999999) / 1000000;
	return ms > (uint64_t)cap ? cap : (int)ms;
}

static uint64_t secs_ns(double s)
{
	return s <= 0 ? 0 : (uint64_t)(s * 1e9);
}

static void set_setup_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_setup_error(const char *fmt, ...)
{
	va_list ap;

	if (G.setup_error)
		return;
	va_start(ap, fmt);
	vsnprintf(G.setup_error_buf, sizeof G.setup_error_buf, fmt, ap);
	va_end(ap);
	G.setup_error = G.setup_error_buf;
}

/* ------------------------------------------------------------------ */
/* Numbers and the message text                                        */

static size_t u64dec(char *p, uint64_t v)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* Parses decimal digits at *p (at most 20); advances *p.  -1 if none. */
static int parse_u64(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;
	int n = 0;

	while (s < end && *s >= '0' && *s <= '9' && n < 20) {
		x = x * 10 + (uint64_t)(*s - '0');
		s++;
		n++;
	}
	if (n == 0)
		return -1;
	*p = s;
	*v = x;
	return 0;
}

static uint64_t mix(uint64_t sid, uint64_t q, uint64_t t)
{
	uint64_t z = sid * 0x9e3779b97f4a7c15ull ^ q * 0xc2b2ae3d27d4eb4full ^ t;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const char hexdig[] = "0123456789abcdef";

static size_t pad_len(size_t hdr)
{
	return O.size > hdr + 17 ? O.size - hdr - 17 : 0;
}

/* "SID:SEQ:T:PAD:CHECK"; returns its length. */
static size_t build_payload(char *p, unsigned sid, uint64_t q, uint64_t t)
{
	char *s = p;
	size_t hdr, pad;
	uint64_t h;
	int i;

	s += u64dec(s, sid);
	*s++ = ':';
	s += u64dec(s, q);
	*s++ = ':';
	s += u64dec(s, t);
	*s++ = ':';
	hdr = (size_t)(s - p);
	pad = pad_len(hdr);
	memcpy(s, pattern + q % 26, pad);
	s += pad;
	*s++ = ':';
	h = mix(sid, q, t);
	for (i = 15; i >= 0; i--) {
		s[i] = hexdig[h & 15];
		h >>= 4;
	}
	s += 16;
	return (size_t)(s - p);
}

/* Checks a payload; fills sid, q, t.  -1 if corrupt. */
static int check_payload(const char *p, size_t len, uint64_t *sid, uint64_t *q, uint64_t *t)
{
	const char *s = p, *end = p + len;
	size_t hdr, pad;
	uint64_t h;
	int i;

	if (parse_u64(&s, end, sid) < 0 || s >= end || *s++ != ':' ||
	    parse_u64(&s, end, q) < 0 || s >= end || *s++ != ':' ||
	    parse_u64(&s, end, t) < 0 || s >= end || *s++ != ':')
		return -1;
	hdr = (size_t)(s - p);
	pad = pad_len(hdr);
	if (len != hdr + pad + 17 || *sid >= (uint64_t)O.nsend)
		return -1;
	if (memcmp(s, pattern + *q % 26, pad) != 0 || s[pad] != ':')
		return -1;
	s += pad + 1;
	h = mix(*sid, *q, *t);
	for (i = 15; i >= 0; i--) {
		if (s[i] != hexdig[h & 15])
			return -1;
		h >>= 4;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Latency histogram: 32 sub-buckets per power of two (~3% resolution)  */

static unsigned hidx(uint64_t v)
{
	int msb;

	if (v < HSUB)
		return (unsigned)v;
	msb = 63 - __builtin_clzll(v);
	return (unsigned)(msb - 4) * HSUB + (unsigned)((v >> (msb - 5)) & (HSUB - 1));
}

static uint64_t hval(unsigned i)
{
	unsigned g = i / HSUB, sub = i % HSUB, shift;

	if (g == 0)
		return i;
	shift = g - 1;
	return (((uint64_t)HSUB + sub) << shift) + ((1ull << shift) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->n[hidx(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

static uint64_t hist_pct(const struct hist *h, double p)
{
	uint64_t want, acc = 0;
	unsigned i;

	if (h->count == 0)
		return 0;
	want = (uint64_t)(p * (double)h->count);
	if (want == 0)
		want = 1;
	if (want > h->count)
		want = h->count;
	for (i = 0; i < HBUCKETS; i++) {
		acc += h->n[i];
		if (acc >= want) {
			uint64_t v = hval(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* ------------------------------------------------------------------ */
/* The server's /proc                                                   */

static void sleep_until(uint64_t t)
{
	uint64_t now;

	while ((now = mono_ns()) < t) {
		struct timespec ts = { (time_t)((t - now) / NS), (long)((t - now) % NS) };

		nanosleep(&ts, NULL);
	}
}

static struct pstat proc_sample(pid_t pid)
{
	struct pstat ps = { 0 };
	char path[64], buf[4096], *p;
	FILE *f;
	DIR *d;
	struct dirent *de;
	unsigned long utime = 0, stime = 0;
	int field;

	if (pid <= 0)
		return ps;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return ps;
	while (fgets(buf, sizeof buf, f)) {
		if (strncmp(buf, "Threads:", 8) == 0)
			ps.threads = strtol(buf + 8, NULL, 10);
		else if (strncmp(buf, "VmRSS:", 6) == 0)
			ps.rss_kb = strtol(buf + 6, NULL, 10);
		else if (strncmp(buf, "VmHWM:", 6) == 0)
			ps.hwm_kb = strtol(buf + 6, NULL, 10);
	}
	fclose(f);
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return ps;
	if (!fgets(buf, sizeof buf, f)) {
		fclose(f);
		return ps;
	}
	fclose(f);
	/* Fields after the command name, which may hold spaces: state is
	 * field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p)
		return ps;
	p++;
	for (field = 3; field <= 15 && *p; field++) {
		char *end;
		unsigned long v;

		while (*p == ' ')
			p++;
		v = strtoul(p, &end, 10);
		if (field == 14)
			utime = v;
		else if (field == 15)
			stime = v;
		while (*p && *p != ' ')
			p++;
		(void)end;
	}
	ps.cpu_s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (d) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				ps.fds++;
		closedir(d);
	} else {
		ps.fds = -1;
	}
	ps.ok = true;
	return ps;
}

/* The whole machine's busy CPU seconds (all CPUs, /proc/stat) and steal. */
static void machine_cpu(double *busy, double *steal)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	double hz = (double)sysconf(_SC_CLK_TCK);

	*busy = *steal = -1;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		/* user nice system idle iowait irq softirq steal */
		*busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
		*steal = (double)v[7] / hz;
	}
	fclose(f);
}

static double self_cpu(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Context switches of every thread of pid (voluntary and not), or -1. */
static long long proc_ctxsw(pid_t pid)
{
	char path[64], buf[256];
	long long sum = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char file[320];
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(file, sizeof file, "/proc/%d/task/%s/status", (int)pid, de->d_name);
		f = fopen(file, "r");
		if (!f)
			continue;
		while (fgets(buf, sizeof buf, f)) {
			if (strncmp(buf, "voluntary_ctxt_switches:", 24) == 0)
				sum += strtoll(buf + 24, NULL, 10);
			else if (strncmp(buf, "nonvoluntary_ctxt_switches:", 27) == 0)
				sum += strtoll(buf + 27, NULL, 10);
		}
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* Waits (bounded) until the server's thread count has not changed for
 * 500 ms, then samples it. */
static struct pstat proc_settled(pid_t pid, double max_s)
{
	uint64_t end = mono_ns() + secs_ns(max_s), stable_since = mono_ns();
	struct pstat ps = proc_sample(pid), cur;

	if (!ps.ok)
		return ps;
	while (mono_ns() < end) {
		struct timespec ts = { 0, 100000000L };

		nanosleep(&ts, NULL);
		cur = proc_sample(pid);
		if (!cur.ok)
			return cur;
		if (cur.threads != ps.threads || cur.fds != ps.fds)
			stable_since = mono_ns();
		ps = cur;
		if (mono_ns() - stable_since >= 500000000ull)
			break;
	}
	return ps;
}

/* ------------------------------------------------------------------ */
/* Connections                                                          */

static struct conn *conn_new(int fd, enum kind kind, int idx, int ep, uint32_t events)
{
	struct conn *c = calloc(1, sizeof *c);
	struct epoll_event ev;

	if (!c)
		die("out of memory");
	c->fd = fd;
	c->kind = kind;
	c->idx = idx;
	c->ep = ep;
	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	return c;
}

static void conn_events(struct conn *c, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = events;
	ev.data.ptr = c;
	epoll_ctl(c->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Closed connections stay allocated: an event already fetched for one in
 * the same epoll batch must still find it (marked dead). */
static void conn_close(struct conn *c)
{
	if (c->dead)
		return;
	epoll_ctl(c->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	free(c->out);
	c->out = NULL;
	c->outoff = c->outlen = c->outcap = 0;
	free(c->part);
	c->part = NULL;
	c->partlen = 0;
}

static size_t conn_pending(const struct conn *c)
{
	return c->outlen - c->outoff;
}

/* Writes what is buffered; arms EPOLLOUT when the socket is full.
 * Returns -1 (and closes nothing) on a hard error. */
static int conn_flush(struct conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (!c->want_out) {
					c->want_out = true;
					conn_events(c, EPOLLIN | EPOLLOUT);
				}
				return 0;
			}
			return -1;
		}
		c->outoff += (size_t)n;
	}
	c->outoff = c->outlen = 0;
	if (c->want_out) {
		c->want_out = false;
		conn_events(c, EPOLLIN);
	}
	return 0;
}

/* Room for n more output bytes (compacting or growing the buffer). */
static char *conn_reserve(struct conn *c, size_t n)
{
	if (c->outlen + n <= c->outcap)
		return c->out + c->outlen;
	if (c->outoff > 0) {
		memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
		c->outlen -= c->outoff;
		c->outoff = 0;
	}
	if (c->outlen + n > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;
		char *p;

		while (cap < c->outlen + n)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p)
			die("out of memory");
		c->out = p;
		c->outcap = cap;
	}
	return c->out + c->outlen;
}

static int conn_write(struct conn *c, const char *data, size_t len)
{
	if (c->dead)
		return -1;
	memcpy(conn_reserve(c, len), data, len);
	c->outlen += len;
	return c->connecting ? 0 : conn_flush(c);
}

static int conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int conn_printf(struct conn *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof buf)
		return -1;
	return conn_write(c, buf, (size_t)n);
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* A non-blocking connect to the server at port. */
static struct conn *connect_server(enum kind kind, int idx, int ep, int port)
{
	struct sockaddr_in sin;
	struct conn *c;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket: %s", strerror(errno));
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, O.host, &sin.sin_addr) != 1)
		die("--host must be an IPv4 address: %s", O.host);
	set_nodelay(fd);
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0 && errno != EINPROGRESS)
		die("connect to %s:%d: %s", O.host, port, strerror(errno));
	c = conn_new(fd, kind, idx, ep, EPOLLIN | EPOLLOUT);
	c->connecting = true;
	c->want_out = true;
	return c;
}

/* Finishes a non-blocking connect; -1 with errno on failure. */
static int connect_done(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -1;
	if (err) {
		errno = err;
		return -1;
	}
	c->connecting = false;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Deliveries                                                           */

static void note_corrupt(const char *line, size_t len)
{
	uint64_t k = G.corrupt++;
	size_t n, i;

	if (k >= 3)
		return;
	n = len < sizeof G.corrupt_sample[k] - 1 ? len : sizeof G.corrupt_sample[k] - 1;
	for (i = 0; i < n; i++)
		G.corrupt_sample[k][i] = (line[i] >= 32 && line[i] < 127) ? line[i] : '?';
	G.corrupt_sample[k][n] = '\0';
}

/* One valid delivery of (sid, q, t) to receiver r at time now. */
static void delivered(int r, uint64_t sid, uint64_t q, uint64_t t, uint64_t now)
{
	uint64_t *nx;
	size_t s = (size_t)sid;

	if (G.phase != PH_RUN) {
		G.late++;
		return;
	}
	hist_add(&G.h, now > t ? now - t : 0);
	G.delivered++;
	if (now <= G.t_stop)
		G.delivered_window++;
	G.last_delivery = now;
	nx = &G.next[(size_t)r * (size_t)O.nsend + s];
	if (q == *nx) {
		(*nx)++;
	} else if (q > *nx) {
		G.gaps += q - *nx;
		*nx = q + 1;
	} else {
		G.ooo++;
	}
	if (O.rate > 0)
		return;
	/* Closed loop: what completes a message for its sender. */
	if (!O.ack_all) {
		if (r == 0 && q + 1 > G.acked_local[s]) {
			G.acked_local[s] = q + 1;
			G.ack_dirty[s] = true;
		}
		return;
	}
	if (q >= G.acked_local[s] && q < G.acked_local[s] + (uint64_t)O.window) {
		uint32_t *ring = G.got + s * (size_t)O.window;
		uint64_t a = G.acked_local[s];

		ring[q % (uint64_t)O.window]++;
		while (ring[a % (uint64_t)O.window] >= (uint32_t)O.nrecv) {
			ring[a % (uint64_t)O.window] = 0;
			a++;
		}
		if (a != G.acked_local[s]) {
			G.acked_local[s] = a;
			G.ack_dirty[s] = true;
		}
	}
}

/* {"seq": N, "user": "sID", "message": "PAYLOAD"} */
static void s5_line(struct conn *c, const char *line, size_t len, uint64_t now)
{
	static const char p1[] = "{\"seq\": ", p2[] = ", \"user\": \"s",
			  p3[] = "\", \"message\": \"";
	const char *s = line, *end = line + len, *msg, *q;
	uint64_t jseq, juser, sid, seq, t;

	while (end > s && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end)
		return;
	if ((size_t)(end - s) < sizeof p1 - 1 || memcmp(s, p1, sizeof p1 - 1) != 0)
		goto bad;
	s += sizeof p1 - 1;
	if (parse_u64(&s, end, &jseq) < 0)
		goto bad;
	if ((size_t)(end - s) < sizeof p2 - 1 || memcmp(s, p2, sizeof p2 - 1) != 0)
		goto bad;
	s += sizeof p2 - 1;
	if (parse_u64(&s, end, &juser) < 0)
		goto bad;
	if ((size_t)(end - s) < sizeof p3 - 1 || memcmp(s, p3, sizeof p3 - 1) != 0)
		goto bad;
	s += sizeof p3 - 1;
	msg = s;
	q = memchr(msg, '"', (size_t)(end - msg));
	if (!q || end - q != 2 || q[1] != '}')
		goto bad;
	if (check_payload(msg, (size_t)(q - msg), &sid, &seq, &t) < 0 ||
	    sid != juser || seq != jseq)
		goto bad;
	delivered(c->idx, sid, seq, t, now);
	return;
bad:
	if (G.phase == PH_RUN)
		note_corrupt(line, len);
}

/* ------------------------------------------------------------------ */
/* IRC                                                                  */

static bool tok_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* Splits ":prefix CMD rest" into cmd and rest. */
static void irc_split(const char *line, size_t len, const char **cmd, size_t *cmdlen,
		      const char **rest, size_t *restlen)
{
	const char *s = line, *end = line + len, *sp;

	if (s < end && *s == ':') {
		sp = memchr(s, ' ', (size_t)(end - s));
		s = sp ? sp + 1 : end;
	}
	while (s < end && *s == ' ')
		s++;
	sp = memchr(s, ' ', (size_t)(end - s));
	*cmd = s;
	*cmdlen = sp ? (size_t)(sp - s) : (size_t)(end - s);
	*rest = sp ? sp + 1 : end;
	*restlen = (size_t)(end - *rest);
}

/* The trailing parameter (after " :"), or the last word. */
static const char *irc_trailing(const char *rest, size_t restlen, size_t *n)
{
	const char *end = rest + restlen, *p;

	if (restlen > 0 && rest[0] == ':') {
		*n = restlen - 1;
		return rest + 1;
	}
	for (p = rest; p + 1 < end; p++)
		if (p[0] == ' ' && p[1] == ':') {
			*n = (size_t)(end - p - 2);
			return p + 2;
		}
	p = end;
	while (p > rest && p[-1] != ' ')
		p--;
	*n = (size_t)(end - p);
	return p;
}

/* The n-th (0-based) space-separated parameter of rest. */
static const char *irc_param(const char *rest, size_t restlen, int k, size_t *n)
{
	const char *s = rest, *end = rest + restlen, *sp;

	for (;;) {
		while (s < end && *s == ' ')
			s++;
		if (s >= end || *s == ':')
			return NULL;
		sp = memchr(s, ' ', (size_t)(end - s));
		if (k == 0) {
			*n = sp ? (size_t)(sp - s) : (size_t)(end - s);
			return s;
		}
		if (!sp)
			return NULL;
		s = sp + 1;
		k--;
	}
}

static void irc_pong(struct conn *c, const char *rest, size_t restlen)
{
	char buf[600];
	int n = snprintf(buf, sizeof buf, "PONG %.*s\r\n", (int)(restlen < 500 ? restlen : 500), rest);

	if (n > 0)
		conn_write(c, buf, (size_t)n);
}

static void printable(char *dst, size_t dstsz, const char *s, size_t n)
{
	size_t i;

	if (n > dstsz - 1)
		n = dstsz - 1;
	for (i = 0; i < n; i++)
		dst[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
	dst[n] = '\0';
}

/* A line from the IRC server to a receiver (rx) or a sender (tx). */
static void irc_line(struct conn *c, const char *line, size_t len, uint64_t now)
{
	const char *cmd, *rest, *txt;
	size_t cmdlen, restlen, n;
	char show[400];
	bool is_sender = c->kind == K_SEND;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	irc_split(line, len, &cmd, &cmdlen, &rest, &restlen);

	if (tok_is(cmd, cmdlen, "PRIVMSG") && !is_sender) {
		uint64_t sid, q, t;

		txt = irc_trailing(rest, restlen, &n);
		if (check_payload(txt, n, &sid, &q, &t) < 0) {
			if (G.phase == PH_RUN)
				note_corrupt(line, len);
			return;
		}
		delivered(c->idx, sid, q, t, now);
		return;
	}
	if (tok_is(cmd, cmdlen, "PING")) {
		irc_pong(c, rest, restlen);
		return;
	}
	if (tok_is(cmd, cmdlen, "ERROR")) {
		printable(show, sizeof show, line, len);
		say("%s %d: server says: %s", is_sender ? "sender" : "receiver", c->idx, show);
		return;
	}
	if (cmdlen != 3 || cmd[0] < '0' || cmd[0] > '9')
		return;		/* JOIN, MODE, NOTICE...: nothing to do */

	if (is_sender) {
		struct sender *s = &G.s[c->idx];

		if (tok_is(cmd, 3, "221")) {		/* RPL_UMODEIS */
			const char *m = irc_param(rest, restlen, 1, &n);

			if (!m)
				m = irc_trailing(rest, restlen, &n);
			s->has_F = m && memchr(m, 'F', n) != NULL;
			if (O.oper && !s->has_F && !G.oper_warned) {
				G.oper_warned = true;
				say("warning: sender %d has no user mode +F (flood limits apply)", c->idx);
			}
			if (s->state == S_REG) {
				s->state = S_READY;
				G.s_ready++;
			}
		} else if (tok_is(cmd, 3, "381")) {	/* RPL_YOUREOPER */
		} else if (cmd[0] == '4' || cmd[0] == '5') {
			printable(show, sizeof show, line, len);
			if (tok_is(cmd, 3, "464") || tok_is(cmd, 3, "491") || tok_is(cmd, 3, "481") ||
			    tok_is(cmd, 3, "501")) {
				if (!G.oper_warned)
					say("warning: sender %d: %s (flood limits apply)", c->idx, show);
				G.oper_warned = true;
			} else if (G.phase == PH_SETUP) {
				set_setup_error("sender %d: %s", c->idx, show);
			} else {
				say("sender %d: %s", c->idx, show);
			}
		}
		return;
	}

	{
		struct receiver *r = &G.r[c->idx];

		if (tok_is(cmd, 3, "366") && r->state == R_WAIT) {	/* end of NAMES */
			if (c->idx == 0) {
				/* First in: channel operator.  Let non-members send. */
				conn_printf(c, "MODE %s -n\r\nMODE %s\r\n", O.channel, O.channel);
				r->state = R_MODE;
			} else {
				r->state = R_READY;
				G.r_ready++;
			}
		} else if (tok_is(cmd, 3, "324") && r->state == R_MODE) {	/* RPL_CHANNELMODEIS */
			const char *m = irc_param(rest, restlen, 2, &n);

			if (!m)
				m = irc_trailing(rest, restlen, &n);
			if (m && memchr(m, 'n', n)) {
				printable(show, sizeof show, line, len);
				set_setup_error("cannot clear channel mode +n: %s", show);
			}
			r->state = R_READY;
			G.r_ready++;
		} else if (cmd[0] == '4' || cmd[0] == '5') {
			printable(show, sizeof show, line, len);
			if (G.phase == PH_SETUP)
				set_setup_error("receiver %d: %s", c->idx, show);
			else
				say("receiver %d: %s", c->idx, show);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Reading                                                              */

typedef void line_fn(struct conn *c, const char *line, size_t len, uint64_t now);

static void rx_line(struct conn *c, const char *line, size_t len, uint64_t now)
{
	if (O.proto == P_S5)
		s5_line(c, line, len, now);
	else
		irc_line(c, line, len, now);
}

static void tx_line(struct conn *c, const char *line, size_t len, uint64_t now)
{
	if (O.proto == P_IRC)
		irc_line(c, line, len, now);
	/* server5 sends nothing to a connection that never subscribed */
}

static void on_eof(struct conn *c, int err)
{
	if (c->kind == K_SEND) {
		if (G.phase != PH_TEARDOWN) {
			say("sender %d: server closed the connection%s%s", c->idx,
			    err ? ": " : "", err ? strerror(err) : "");
			G.tx_disc++;
			if (G.phase == PH_SETUP)
				set_setup_error("sender %d lost its connection", c->idx);
		}
	} else if (c->kind == K_DELIV) {
		if (G.phase == PH_TEARDOWN)
			G.deliv_open--;
		else {
			G.rx_disc++;
			if (G.rx_disc <= 5)
				say("receiver %d: server closed the delivery connection%s%s", c->idx,
				    err ? ": " : "", err ? strerror(err) : "");
		}
	} else if (c->kind == K_CTRL) {
		if (G.phase != PH_TEARDOWN) {
			if (O.proto == P_IRC)
				G.rx_disc++;
			if (++G.ctrl_closed <= 5)
				say("receiver %d: server closed the %sconnection%s%s", c->idx,
				    O.proto == P_S5 ? "control " : "", err ? ": " : "",
				    err ? strerror(err) : "");
			if (G.phase == PH_SETUP)
				set_setup_error("receiver %d lost its connection", c->idx);
		}
	}
	conn_close(c);
}

static void read_lines(struct conn *c, char *buf, size_t bufsz, line_fn *fn)
{
	int round;

	for (round = 0; round < 8 && !c->dead; round++) {
		size_t have = c->partlen, end;
		ssize_t n;
		char *p, *e, *nl;
		uint64_t now;

		if (have)
			memcpy(buf, c->part, have);
		n = recv(c->fd, buf + have, bufsz - have, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				on_eof(c, errno);
			return;
		}
		if (n == 0) {
			on_eof(c, 0);
			return;
		}
		now = mono_ns();
		end = have + (size_t)n;
		p = buf;
		e = buf + end;
		while ((nl = memchr(p, '\n', (size_t)(e - p))) != NULL) {
			fn(c, p, (size_t)(nl - p), now);
			if (c->dead)
				return;
			p = nl + 1;
		}
		c->partlen = (size_t)(e - p);
		if (c->partlen > G.maxline) {
			if (G.phase == PH_RUN)
				note_corrupt(p, c->partlen);
			c->partlen = 0;
		}
		if (c->partlen) {
			if (!c->part) {
				c->part = malloc(G.maxline + 1);
				if (!c->part)
					die("out of memory");
			}
			memcpy(c->part, p, c->partlen);
		}
		if ((size_t)n < bufsz - have)
			return;		/* drained */
	}
}

/* ------------------------------------------------------------------ */
/* Events                                                               */

static char rx_buf[RX_BUF], tx_buf[TX_BUF];

static void subscribe_line(struct receiver *r, const char *op)
{
	conn_printf(r->ctrl, "{\"operation\": \"%s\", \"client\": \"%s:%u\"}\n",
		    op, O.listen_ip, (unsigned)r->port);
}

static void on_ctrl_connected(struct conn *c)
{
	struct receiver *r = &G.r[c->idx];

	if (O.proto == P_S5) {
		subscribe_line(r, "subscribe");
	} else {
		conn_printf(c, "NICK %sr%d\r\nUSER %sr%d 0 * :chatbench\r\nJOIN %s\r\n",
			    O.nick_prefix, c->idx, O.nick_prefix, c->idx, O.channel);
	}
	r->state = R_WAIT;
}

static void on_sender_connected(struct conn *c)
{
	struct sender *s = &G.s[c->idx];

	if (O.proto == P_S5) {
		s->state = S_READY;
		G.s_ready++;
		return;
	}
	conn_printf(c, "NICK %s\r\nUSER %s 0 * :chatbench\r\n", s->nick, s->nick);
	if (O.oper)
		conn_printf(c, "OPER %s %s\r\nMODE %s +F\r\n", O.oper_name, O.oper_pass, s->nick);
	conn_printf(c, "MODE %s\r\n", s->nick);
	s->state = S_REG;
}

static void on_accept(struct conn *lc)
{
	struct receiver *r = &G.r[lc->idx];
	int round;

	for (round = 0; round < 4; round++) {
		int fd = accept4(lc->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				say("receiver %d: accept: %s", lc->idx, strerror(errno));
			return;
		}
		c = conn_new(fd, K_DELIV, lc->idx, G.rx_ep, EPOLLIN);
		if (r->deliv && !r->deliv->dead && G.phase == PH_RUN)
			say("receiver %d: the server connected again", lc->idx);
		r->deliv = c;
		if (r->state == R_WAIT) {
			r->state = R_READY;
			G.r_ready++;
		}
	}
}

static void dispatch(struct conn *c, uint32_t ev)
{
	if (c->dead)
		return;
	switch (c->kind) {
	case K_LISTEN:
		on_accept(c);
		return;
	case K_TIMER:
	case K_WAKE: {
		uint64_t v;

		if (read(c->fd, &v, sizeof v) < 0) {
			/* EAGAIN: someone else read it */
		}
		return;
	}
	case K_CTRL:
	case K_DELIV:
	case K_SEND:
		break;
	}
	if (c->connecting && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		if (connect_done(c) < 0) {
			if (G.phase == PH_SETUP)
				set_setup_error("cannot connect to %s (%s %d): %s", O.host,
						c->kind == K_SEND ? "sender" : "receiver", c->idx,
						strerror(errno));
			on_eof(c, errno);
			return;
		}
		if (c->kind == K_CTRL)
			on_ctrl_connected(c);
		else
			on_sender_connected(c);
		if (conn_flush(c) < 0) {
			on_eof(c, errno);
			return;
		}
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
		if (c->kind == K_SEND)
			read_lines(c, tx_buf, sizeof tx_buf, tx_line);
		else
			read_lines(c, rx_buf, sizeof rx_buf, rx_line);
	}
	if (!c->dead && !c->connecting && (ev & EPOLLOUT) && conn_flush(c) < 0)
		on_eof(c, errno);
}

static void pump(int ep, int timeout_ms)
{
	struct epoll_event ev[MAX_EVENTS];
	int n, i;

	n = epoll_wait(ep, ev, MAX_EVENTS, timeout_ms);
	for (i = 0; i < n; i++)
		dispatch(ev[i].data.ptr, ev[i].events);
}

/* ------------------------------------------------------------------ */
/* Setup                                                                */

static void start_receiver(int i)
{
	struct receiver *r = &G.r[i];

	if (O.proto == P_S5) {
		struct sockaddr_in sin;
		socklen_t len = sizeof sin;
		int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0)
			die("socket: %s", strerror(errno));
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		if (inet_pton(AF_INET, O.listen_ip, &sin.sin_addr) != 1)
			die("--listen-ip must be an IPv4 address: %s", O.listen_ip);
		if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 16) < 0 ||
		    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
			die("receiver %d: cannot listen: %s", i, strerror(errno));
		r->port = ntohs(sin.sin_port);
		r->lis = conn_new(fd, K_LISTEN, i, G.rx_ep, EPOLLIN);
	}
	r->ctrl = connect_server(K_CTRL, i, G.rx_ep, O.rx_ports[i % O.nrx_ports]);
	r->state = R_CONNECTING;
	G.r_started++;
}

static bool setup_receivers(uint64_t deadline)
{
	/* IRC: receiver 0 creates the channel (and so is its operator)
	 * before anyone else joins. */
	if (O.proto == P_IRC) {
		start_receiver(0);
		while (G.r_ready < 1 && !G.setup_error && mono_ns() < deadline)
			pump(G.rx_ep, ms_until(deadline, 100));
	}
	while (G.r_ready < O.nrecv && !G.setup_error && mono_ns() < deadline) {
		while (G.r_started < O.nrecv && G.r_started - G.r_ready < O.parallel) {
			start_receiver(G.r_started);
		}
		pump(G.rx_ep, ms_until(deadline, 100));
	}
	return G.r_ready == O.nrecv && !G.setup_error;
}

static bool setup_senders(uint64_t deadline)
{
	int i;

	for (i = 0; i < O.nsend; i++) {
		struct sender *s = &G.s[i];

		snprintf(s->nick, sizeof s->nick, "%ss%d", O.nick_prefix, i);
		s->c = connect_server(K_SEND, i, G.tx_ep, O.port);
		s->state = S_CONNECTING;
		G.s_started++;
	}
	while (G.s_ready < O.nsend && !G.setup_error && mono_ns() < deadline)
		pump(G.tx_ep, ms_until(deadline, 100));
	return G.s_ready == O.nsend && !G.setup_error;
}

/* ------------------------------------------------------------------ */
/* The run                                                              */

static void wake_tx(void)
{
	uint64_t one = 1;

	if (write(G.wake->fd, &one, sizeof one) < 0) {
		/* the counter is already non-zero */
	}
}

/* After each batch of receiver events: publish progress to the senders. */
static void rx_publish(void)
{
	bool any = false;
	int s;

	if (O.rate > 0)
		return;
	for (s = 0; s < O.nsend; s++) {
		if (G.ack_dirty[s]) {
			G.ack_dirty[s] = false;
			atomic_store(&G.acked[s], G.acked_local[s]);
			any = true;
		}
	}
	if (any && atomic_exchange(&G.tx_waiting, 0))
		wake_tx();
}

/* Appends one chat message for sender s, stamped t. */
static void emit(struct sender *s, int sid, uint64_t t)
{
	struct conn *c = s->c;
	char *p = conn_reserve(c, G.maxline), *start = p;
	uint64_t q = s->next_q++;

	if (O.proto == P_S5) {
		memcpy(p, "{\"seq\": ", 8);
		p += 8;
		p += u64dec(p, q);
		memcpy(p, ", \"user\": \"s", 12);
		p += 12;
		p += u64dec(p, (uint64_t)sid);
		memcpy(p, "\", \"message\": \"", 15);
		p += 15;
		p += build_payload(p, (unsigned)sid, q, t);
		memcpy(p, "\"}\n", 3);
		p += 3;
	} else {
		size_t cl = strlen(O.channel);

		memcpy(p, "PRIVMSG ", 8);
		p += 8;
		memcpy(p, O.channel, cl);
		p += cl;
		memcpy(p, " :", 2);
		p += 2;
		p += build_payload(p, (unsigned)sid, q, t);
		memcpy(p, "\r\n", 2);
		p += 2;
	}
	c->outlen += (size_t)(p - start);
}

/* Generates what the senders may send now and writes it.  Returns true
 * when a sender stopped only because of the per-call cap, i.e. there is
 * more to do at once; false when every sender waits for its window, for
 * its socket, or for the clock. */
static bool tx_generate(uint64_t now)
{
	bool more = false;
	int i;

	for (i = 0; i < O.nsend; i++) {
		struct sender *s = &G.s[i];
		struct conn *c = s->c;
		int n = 0;

		if (c->dead)
			continue;
		if (O.rate > 0) {
			while (s->due <= now && n < 10000 && conn_pending(c) < SENDER_OUT) {
				if (now - s->due > G.tx_late_max)
					G.tx_late_max = now - s->due;
				emit(s, i, s->due);
				s->due += G.interval;
				n++;
			}
		} else {
			uint64_t ack = atomic_load(&G.acked[i]);

			if (ack != s->last_ack) {
				s->last_ack = ack;
				s->last_ack_change = now;
			}
			while (s->next_q - ack < (uint64_t)O.window &&
			       conn_pending(c) < SENDER_HIGH && n < 4096) {
				emit(s, i, now);
				n++;
			}
			if (n == 4096)
				more = true;
			if (s->next_q - ack >= (uint64_t)O.window &&
			    now - s->last_ack_change > 2 * NS && !s->stall_reported) {
				s->stall_reported = true;
				G.stalled = true;
				say("sender %d: stalled: %" PRIu64 " messages outstanding, "
				    "none completed for 2 s (lowest outstanding seq %" PRIu64 ")",
				    i, s->next_q - ack, ack);
			}
		}
		if (conn_pending(c) && conn_flush(c) < 0)
			on_eof(c, errno);
	}
	return more;
}

static void arm_timer(uint64_t at)
{
	struct itimerspec its;

	memset(&its, 0, sizeof its);
	if (at) {
		its.it_value.tv_sec = (time_t)(at / NS);
		its.it_value.tv_nsec = (long)(at % NS);
	}
	timerfd_settime(G.timer->fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* One round of sending; returns true when there is more to do at once. */
static bool tx_step(uint64_t now)
{
	int i;

	if (atomic_load(&G.tx_done))
		return false;
	if (now >= G.t_stop) {
		/* Stop: the counts are final once they are published.  What
		 * is still buffered is written as the socket takes it. */
		for (i = 0; i < O.nsend; i++) {
			G.sent_final[i] = G.s[i].next_q;
			if (!G.s[i].c->dead && conn_pending(G.s[i].c))
				conn_flush(G.s[i].c);
		}
		if (O.rate > 0)
			arm_timer(0);
		atomic_store(&G.tx_done, 1);
		return false;
	}
	if (O.rate > 0) {
		uint64_t next = G.t_stop;

		tx_generate(now);
		for (i = 0; i < O.nsend; i++)
			if (!G.s[i].c->dead && G.s[i].due < next)
				next = G.s[i].due;
		arm_timer(next);
		return false;
	}
	if (tx_generate(now))
		return true;
	if (O.threads == 2) {
		/* Nothing to do until a completion (or a writable socket):
		 * ask the receiving thread for a wake-up, then look once more
		 * so that a completion published meanwhile is not missed. */
		atomic_store(&G.tx_waiting, 1);
		for (i = 0; i < O.nsend; i++)
			if (atomic_load(&G.acked[i]) != G.s[i].last_ack) {
				atomic_store(&G.tx_waiting, 0);
				return true;
			}
	}
	return false;
}

static uint64_t expected_total(void)
{
	uint64_t sum = 0;
	int i;

	for (i = 0; i < O.nsend; i++)
		sum += G.sent_final[i];
	return sum * (uint64_t)O.nrecv;
}

/* Whether the receiving side is finished: every message delivered, or the
 * drain time is up, or nothing arrived for --idle seconds. */
static bool rx_finished(uint64_t now)
{
	uint64_t quiet;

	if (now < G.t_stop || !atomic_load(&G.tx_done))
		return false;
	if (G.delivered >= expected_total())
		return true;
	if (now >= G.t_stop + secs_ns(O.drain))
		return true;
	quiet = G.last_delivery > G.t_stop ? G.last_delivery : G.t_stop;
	return now - quiet >= secs_ns(O.idle);
}

struct worker {
	int ep;
	bool tx, rx;
	pthread_t thread;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event ev[MAX_EVENTS];
	double cpu0 = thread_cpu();

	if (w->tx) {
		/* Start on time, whatever the other thread is doing. */
		while (mono_ns() < G.t0) {
			uint64_t left = G.t0 - mono_ns();
			struct timespec ts = { (time_t)(left / NS), (long)(left % NS) };

			if (left > NS * 10)
				break;
			nanosleep(&ts, NULL);
		}
	}
	for (;;) {
		uint64_t now = mono_ns();
		int timeout = 50, n, i;

		if (w->tx && !atomic_load(&G.tx_done)) {
			if (tx_step(now))
				timeout = 0;
			if (now < G.t_stop) {
				int left = ms_until(G.t_stop, 50);

				if (left < timeout)
					timeout = left;
			}
		}
		if (w->rx && now >= G.t_stop) {
			if (rx_finished(now)) {
				atomic_store(&G.run_over, 1);
				if (!w->tx)
					wake_tx();
				break;
			}
		}
		if (!w->rx && atomic_load(&G.run_over))
			break;
		n = epoll_wait(w->ep, ev, MAX_EVENTS, timeout);
		for (i = 0; i < n; i++)
			dispatch(ev[i].data.ptr, ev[i].events);
		if (w->rx)
			rx_publish();
	}
	if (w->tx)
		G.tx_cpu = thread_cpu() - cpu0;
	if (w->rx)
		G.rx_cpu = thread_cpu() - cpu0;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Teardown                                                             */

static void teardown(void)
{
	uint64_t deadline;
	int i;

	G.phase = PH_TEARDOWN;
	if (O.proto != P_S5)
		return;
	/* Unsubscribe everyone; the server then delivers what is queued and
	 * closes each delivery connection. */
	G.deliv_open = 0;
	for (i = 0; i < O.nrecv; i++) {
		struct receiver *r = &G.r[i];

		if (r->deliv && !r->deliv->dead)
			G.deliv_open++;
		if (r->ctrl && !r->ctrl->dead)
			subscribe_line(r, "unsubscribe");
	}
	deadline = mono_ns() + 30 * NS;
	while (G.deliv_open > 0 && mono_ns() < deadline) {
		pump(G.rx_ep, ms_until(deadline, 100));
		for (i = 0; i < O.nrecv; i++)
			if (G.r[i].ctrl && !G.r[i].ctrl->dead && conn_pending(G.r[i].ctrl))
				conn_flush(G.r[i].ctrl);
	}
	if (G.deliv_open > 0)
		say("teardown: %d delivery connection(s) still open 30 s after unsubscribing",
		    G.deliv_open);
}

static void close_all(void)
{
	int i;

	for (i = 0; i < O.nsend; i++)
		if (G.s[i].c) {
			if (O.proto == P_IRC && !G.s[i].c->dead)
				conn_printf(G.s[i].c, "QUIT :done\r\n");
			conn_close(G.s[i].c);
		}
	for (i = 0; i < O.nrecv; i++) {
		struct receiver *r = &G.r[i];

		if (r->ctrl) {
			if (O.proto == P_IRC && !r->ctrl->dead)
				conn_printf(r->ctrl, "QUIT :done\r\n");
			conn_close(r->ctrl);
		}
		if (r->deliv)
			conn_close(r->deliv);
		if (r->lis)
			conn_close(r->lis);
	}
}

/* ------------------------------------------------------------------ */
/* Report                                                               */

static void kv_pstat(FILE *f, const char *tag, const struct pstat *p)
{
	if (!p->ok)
		return;
	fprintf(f, " srv_threads_%s=%ld srv_rss_kb_%s=%ld srv_fds_%s=%ld", tag, p->threads, tag,
		p->rss_kb, tag, p->fds);
}

static void print_pstat(const char *what, const struct pstat *p)
{
	if (p->ok)
		printf("  %-26s threads %6ld   rss %8.1f MiB   fds %6ld\n", what, p->threads,
		       (double)p->rss_kb / 1024.0, p->fds);
}

static void report(const char *error, double setup_s, const struct pstat *base,
		   const struct pstat *ready, const struct pstat *win0,
		   const struct pstat *win1, const struct pstat *end,
		   const struct pstat *unsub, const struct pstat *closed)
{
	double dur = (double)(G.t_stop - G.t0) / 1e9;
	uint64_t sent = 0, expected = expected_total();
	double ratio, srv_cpu = 0, cs_per_delivery = -1, other = -1, steal = -1, gen = -1;
	int i;

	for (i = 0; i < O.nsend; i++)
		sent += G.sent_final[i];
	ratio = expected ? (double)G.delivered / (double)expected : 0;
	if (win0->ok && win1->ok)
		srv_cpu = win1->cpu_s - win0->cpu_s;
	if (G.busy0 >= 0 && G.busy1 > 0 && dur > 0) {
		/* What neither the server nor the generator used: other
		 * programs on the machine, in % of one CPU. */
		double watched = srv_cpu;

		for (i = 1; i < O.nwatch; i++)
			if (G.wwin0[i].ok && G.wwin1[i].ok)
				watched += G.wwin1[i].cpu_s - G.wwin0[i].cpu_s;
		gen = G.self1 - G.self0;
		other = 100 * ((G.busy1 - G.busy0) - gen - watched) / dur;
		if (other < 0)
			other = 0;
		steal = 100 * (G.steal1 - G.steal0) / dur;
	}
	if (win0->ok && win1->ok && win0->ctxsw >= 0 && win1->ctxsw >= 0 && G.delivered_window)
		cs_per_delivery = (double)(win1->ctxsw - win0->ctxsw) / (double)G.delivered_window;

	printf("chatbench %s: %d receivers, %d sender(s), %s, %zu-byte messages, %.1f s\n",
	       O.proto == P_S5 ? "server5" : "irc", O.nrecv, O.nsend,
	       O.rate > 0 ? "fixed rate" : (O.ack_all ? "closed loop (ack: all receivers)"
						     : "closed loop (ack: receiver 0)"),
	       O.size, dur);
	if (O.rate > 0)
		printf("  rate                       %.1f msg/s per sender\n", O.rate);
	else
		printf("  window                     %d messages per sender\n", O.window);
	printf("  sent                       %" PRIu64 " messages, %.0f msg/s\n", sent,
	       dur > 0 ? (double)sent / dur : 0);
	printf("  delivered                  %" PRIu64 " of %" PRIu64 " (ratio %.6f), "
	       "%.0f deliveries/s in the window\n", G.delivered, expected, ratio,
	       dur > 0 ? (double)G.delivered_window / dur : 0);
	if (G.late)
		printf("  late                       %" PRIu64 " more arrived after the drain "
		       "(while unsubscribing)\n", G.late);
	printf("  out of order / gaps        %" PRIu64 " / %" PRIu64 "\n", G.ooo, G.gaps);
	printf("  corrupt                    %" PRIu64 "\n", G.corrupt);
	for (i = 0; i < 3 && (uint64_t)i < G.corrupt; i++)
		printf("    e.g. %s\n", G.corrupt_sample[i]);
	printf("  disconnects                receivers %d, senders %d%s\n", G.rx_disc, G.tx_disc,
	       G.stalled ? "; a sender STALLED" : "");
	printf("  latency                    p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
	       (double)hist_pct(&G.h, 0.50) / 1e6, (double)hist_pct(&G.h, 0.99) / 1e6,
	       (double)hist_pct(&G.h, 0.999) / 1e6, (double)G.h.max / 1e6);
	if (O.rate > 0)
		printf("  sender lateness max        %.3f ms\n", (double)G.tx_late_max / 1e6);
	printf("  generator cpu              tx %.2f s, rx %.2f s (setup %.1f s)\n", G.tx_cpu,
	       G.rx_cpu, setup_s);
	if (other >= 0)
		printf("  machine in the window      generator %.0f%%, other programs %.0f%%, "
		       "steal %.0f%% (of one CPU)\n", 100 * gen / dur, other, steal);
	if (base->ok && !end->ok)
		printf("  server pid %d exited during the run\n", (int)O.server_pid);
	if (base->ok && end->ok) {
		printf("  server pid %-8d         cpu %.2f s in the window (%.0f%% of one core), "
		       "peak rss %.1f MiB\n", (int)O.server_pid, srv_cpu,
		       dur > 0 ? 100 * srv_cpu / dur : 0, (double)end->hwm_kb / 1024.0);
		if (cs_per_delivery >= 0)
			printf("  server context switches    %.3f per delivery in the window "
			       "(all threads)\n", cs_per_delivery);
		print_pstat("before connecting", base);
		print_pstat("all subscribed/joined", ready);
		print_pstat("end of run", end);
		print_pstat("after unsubscribing", unsub);
		print_pstat("after closing", closed);
	}
	for (i = 1; i < O.nwatch; i++)
		if (G.wwin0[i].ok && G.wwin1[i].ok)
			printf("  also pid %-8d           cpu %.2f s in the window (%.0f%% of one core), "
			       "peak rss %.1f MiB\n", (int)O.watch[i],
			       G.wwin1[i].cpu_s - G.wwin0[i].cpu_s,
			       dur > 0 ? 100 * (G.wwin1[i].cpu_s - G.wwin0[i].cpu_s) / dur : 0,
			       (double)G.wend[i].hwm_kb / 1024.0);
	if (error)
		printf("  ERROR: %s\n", error);
	fflush(stdout);

	printf("proto=%s receivers=%d senders=%d mode=%s window=%d rate=%g ack=%s size=%zu "
	       "duration=%.3f threads=%d nice=%d",
	       O.proto == P_S5 ? "server5" : "irc", O.nrecv, O.nsend,
	       O.rate > 0 ? "rate" : "closed", O.window, O.rate, O.ack_all ? "all" : "first",
	       O.size, dur, O.threads, O.nice);
	if (O.label)
		printf(" label=%s", O.label);
	printf(" sent=%" PRIu64 " sent_per_s=%.1f expected=%" PRIu64 " delivered=%" PRIu64
	       " deliveries_per_s=%.1f delivered_ratio=%.6f missing=%" PRIu64
	       " out_of_order=%" PRIu64 " gaps=%" PRIu64 " corrupt=%" PRIu64
	       " rx_disconnects=%d tx_disconnects=%d stalled=%d late=%" PRIu64,
	       sent, dur > 0 ? (double)sent / dur : 0, expected, G.delivered,
	       dur > 0 ? (double)G.delivered_window / dur : 0, ratio,
	       expected > G.delivered ? expected - G.delivered : 0, G.ooo, G.gaps, G.corrupt,
	       G.rx_disc, G.tx_disc, G.stalled ? 1 : 0, G.late);
	printf(" lat_p50_us=%.1f lat_p90_us=%.1f lat_p99_us=%.1f lat_p999_us=%.1f "
	       "lat_max_us=%.1f lat_mean_us=%.1f",
	       (double)hist_pct(&G.h, 0.50) / 1e3, (double)hist_pct(&G.h, 0.90) / 1e3,
	       (double)hist_pct(&G.h, 0.99) / 1e3, (double)hist_pct(&G.h, 0.999) / 1e3,
	       (double)G.h.max / 1e3,
	       G.h.count ? (double)G.h.sum / (double)G.h.count / 1e3 : 0);
	printf(" tx_late_max_us=%.1f gen_cpu_tx_s=%.3f gen_cpu_rx_s=%.3f setup_s=%.2f",
	       (double)G.tx_late_max / 1e3, G.tx_cpu, G.rx_cpu, setup_s);
	printf(" gen_cpu_pct=%.1f other_cpu_pct=%.1f steal_pct=%.1f",
	       gen >= 0 && dur > 0 ? 100 * gen / dur : -1, other, steal);
	if (base->ok) {
		printf(" srv_pid=%d srv_cpu_s=%.3f srv_cpu_pct=%.1f srv_hwm_kb=%ld"
		       " srv_ctxsw_per_delivery=%.4f", (int)O.server_pid,
		       srv_cpu, dur > 0 ? 100 * srv_cpu / dur : 0, end->hwm_kb, cs_per_delivery);
		printf(" srv_exited=%d", end->ok ? 0 : 1);
		kv_pstat(stdout, "base", base);
		kv_pstat(stdout, "ready", ready);
		kv_pstat(stdout, "end", end);
		kv_pstat(stdout, "unsub", unsub);
		kv_pstat(stdout, "closed", closed);
	}
	if (O.nwatch > 1) {
		/* Every --server-pid, the first again: CPU in the window, peak RSS. */
		G.wwin0[0] = *win0;
		G.wwin1[0] = *win1;
		G.wend[0] = *end;
		for (i = 0; i < O.nwatch; i++)
			printf("%s%d", i ? "," : " watch_pids=", (int)O.watch[i]);
		for (i = 0; i < O.nwatch; i++)
			printf("%s%.1f", i ? "," : " watch_cpu_pct=",
			       G.wwin0[i].ok && G.wwin1[i].ok && dur > 0
			       ? 100 * (G.wwin1[i].cpu_s - G.wwin0[i].cpu_s) / dur : -1.0);
		for (i = 0; i < O.nwatch; i++)
			printf("%s%ld", i ? "," : " watch_hwm_kb=", G.wend[i].ok ? G.wend[i].hwm_kb : -1L);
		/* context switches of all its threads over the window */
		for (i = 0; i < O.nwatch; i++)
			printf("%s%lld", i ? "," : " watch_ctxsw=",
			       G.wwin0[i].ok && G.wwin1[i].ok && G.wwin0[i].ctxsw >= 0 &&
			       G.wwin1[i].ctxsw >= 0 ? G.wwin1[i].ctxsw - G.wwin0[i].ctxsw : -1LL);
		for (i = 0; i < O.nwatch; i++)
			printf("%s%ld", i ? "," : " watch_threads=", G.wend[i].ok ? G.wend[i].threads : -1L);
	}
	printf(" error=%s\n", error ? "1" : "0");
	fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* Options                                                              */

static const char usage_text[] =
	"usage: chatbench [options] --port PORT\n"
	"  --proto server5|irc     protocol of the server (default server5)\n"
	"  --host IP               server address (default 127.0.0.1)\n"
	"  --port PORT             server port (required)\n"
	"  -r, --receivers N       receivers (default 10)\n"
	"  -s, --senders S         senders (default 1)\n"
	"  --rate R                msgs/s per sender (open loop); without it: closed loop\n"
	"  -w, --window W          closed loop: messages outstanding per sender (default 1000)\n"
	"  --ack all|first         closed loop: a message completes when every receiver\n"
	"                          got it (all, default) or when receiver 0 got it\n"
	"  --size B                message text bytes (default 100)\n"
	"  -d, --duration SEC      measured sending time (default 10)\n"
	"  --drain SEC             max wait for outstanding deliveries after (default 10)\n"
	"  --idle SEC              stop draining after SEC without a delivery (default 3)\n"
	"  --settle SEC            pause between setup and sending (default 0.5)\n"
	"  --setup-timeout SEC     (default 120)\n"
	"  --connect-parallel N    receivers being set up at once (default 100; irc 10)\n"
	"  --threads 1|2           one epoll loop, or senders and receivers apart (default 2)\n"
	"  --server-pid PID[,PID]  report the server's threads, RSS, fds, CPU and context\n"
	"                          switches from /proc; more PIDs (other servers of a\n"
	"                          cluster): their CPU in the window and peak RSS too\n"
	"  --rx-port PORT[,PORT]   receivers connect to these servers, in turn (default:\n"
	"                          --port, where the senders connect)\n"
	"  --listen-ip IP          receivers listen here (server5; default 127.0.0.1)\n"
	"  --channel NAME          irc: channel (default #chatbench)\n"
	"  --nick-prefix P         irc: nicks are Pr0.. and Ps0.. (default cb)\n"
	"  --oper NAME:PASS|none   irc: senders OPER and set +F (default bench:bench)\n"
	"  --label TEXT            echoed as label= in the last line\n"
	"  --nice N                run the generator at this nice value (e.g. -10, needs\n"
	"                          privilege; the matrix does not: docs/PERFORMANCE.md)\n"
	"  -h, --help\n";

static void usage(const char *why)
{
	if (why)
		fprintf(stderr, "chatbench: %s\n", why);
	fputs(usage_text, why ? stderr : stdout);
	exit(why ? 2 : 0);
}

static double num_arg(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || v < lo || v > hi) {
		fprintf(stderr, "chatbench: %s: expected a number from %g to %g\n", opt, lo, hi);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "proto", required_argument, NULL, 'P' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "receivers", required_argument, NULL, 'r' },
		{ "senders", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'R' },
		{ "window", required_argument, NULL, 'w' },
		{ "ack", required_argument, NULL, 'A' },
		{ "size", required_argument, NULL, 'B' },
		{ "duration", required_argument, NULL, 'd' },
		{ "drain", required_argument, NULL, 'D' },
		{ "idle", required_argument, NULL, 'I' },
		{ "settle", required_argument, NULL, 'S' },
		{ "setup-timeout", required_argument, NULL, 'T' },
		{ "connect-parallel", required_argument, NULL, 'C' },
		{ "threads", required_argument, NULL, 't' },
		{ "server-pid", required_argument, NULL, 'X' },
		{ "rx-port", required_argument, NULL, 'x' },
		{ "listen-ip", required_argument, NULL, 'L' },
		{ "channel", required_argument, NULL, 'c' },
		{ "nick-prefix", required_argument, NULL, 'N' },
		{ "oper", required_argument, NULL, 'O' },
		{ "label", required_argument, NULL, 'l' },
		{ "nice", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *oper = "bench:bench";
	int opt;

	O.proto = P_S5;
	O.host = "127.0.0.1";
	O.listen_ip = "127.0.0.1";
	O.channel = "#chatbench";
	O.nick_prefix = "cb";
	O.nrecv = 10;
	O.nsend = 1;
	O.window = 1000;
	O.ack_all = true;
	O.size = 100;
	O.duration = 10;
	O.drain = 10;
	O.idle = 3;
	O.settle = 0.5;
	O.setup_timeout = 120;
	O.threads = 2;
	O.parallel = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "hr:s:w:d:", opts, NULL)) != -1) {
		switch (opt) {
		case 'P':
			if (strcmp(optarg, "server5") == 0)
				O.proto = P_S5;
			else if (strcmp(optarg, "irc") == 0)
				O.proto = P_IRC;
			else
				usage("--proto: server5 or irc");
			break;
		case 'H': O.host = optarg; break;
		case 'p': O.port = (int)num_arg("--port", optarg, 1, 65535); break;
		case 'r': O.nrecv = (int)num_arg("--receivers", optarg, 1, 100000); break;
		case 's': O.nsend = (int)num_arg("--senders", optarg, 1, 1000); break;
		case 'R': O.rate = num_arg("--rate", optarg, 0, 10000000); break;
		case 'w': O.window = (int)num_arg("--window", optarg, 1, 1000000); break;
		case 'A':
			if (strcmp(optarg, "all") == 0)
				O.ack_all = true;
			else if (strcmp(optarg, "first") == 0)
				O.ack_all = false;
			else
				usage("--ack: all or first");
			break;
		case 'B': O.size = (size_t)num_arg("--size", optarg, 0, MAX_SIZE); break;
		case 'd': O.duration = num_arg("--duration", optarg, 0.1, 86400); break;
		case 'D': O.drain = num_arg("--drain", optarg, 0, 3600); break;
		case 'I': O.idle = num_arg("--idle", optarg, 0.1, 3600); break;
		case 'S': O.settle = num_arg("--settle", optarg, 0, 3600); break;
		case 'T': O.setup_timeout = num_arg("--setup-timeout", optarg, 1, 3600); break;
		case 'C': O.parallel = (int)num_arg("--connect-parallel", optarg, 1, 100000); break;
		case 't': O.threads = (int)num_arg("--threads", optarg, 1, 2); break;
		case 'X': {
			char *list = strdup(optarg), *tok, *save = NULL;

			if (!list)
				die("out of memory");
			O.nwatch = 0;
			for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (O.nwatch == MAX_WATCH)
					usage("--server-pid: at most 16 PIDs");
				O.watch[O.nwatch++] = (pid_t)num_arg("--server-pid", tok, 1, 1 << 30);
			}
			free(list);
			if (O.nwatch == 0)
				usage("--server-pid: a PID");
			O.server_pid = O.watch[0];
			break;
		}
		case 'x': {
			char *list = strdup(optarg), *tok, *save = NULL;

			if (!list)
				die("out of memory");
			O.nrx_ports = 0;
			for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (O.nrx_ports == MAX_PORTS)
					usage("--rx-port: at most 16 ports");
				O.rx_ports[O.nrx_ports++] = (int)num_arg("--rx-port", tok, 1, 65535);
			}
			free(list);
			break;
		}
		case 'L': O.listen_ip = optarg; break;
		case 'c': O.channel = optarg; break;
		case 'N': O.nick_prefix = optarg; break;
		case 'O': oper = optarg; break;
		case 'l': O.label = optarg; break;
		case 'n': O.nice = (int)num_arg("--nice", optarg, -20, 19); break;
		case 'h': usage(NULL); break;
		default: usage("unknown option or missing value");
		}
	}
	if (optind != argc)
		usage("unexpected argument");
	if (O.port == 0)
		usage("--port is required");
	if (O.nrx_ports == 0) {
		O.rx_ports[0] = O.port;
		O.nrx_ports = 1;
	}
	if (O.proto == P_IRC && O.size > MAX_SIZE_IRC)
		usage("--size: at most 400 with --proto irc (an IRC line is 512 bytes)");
	if (O.parallel == 0)
		O.parallel = O.proto == P_IRC ? 10 : 100;
	if (strcmp(oper, "none") == 0) {
		O.oper = false;
	} else {
		const char *colon = strchr(oper, ':');

		if (!colon || colon == oper || (size_t)(colon - oper) >= sizeof O.oper_name ||
		    strlen(colon + 1) >= sizeof O.oper_pass || !colon[1])
			usage("--oper: NAME:PASS or none");
		memcpy(O.oper_name, oper, (size_t)(colon - oper));
		snprintf(O.oper_pass, sizeof O.oper_pass, "%s", colon + 1);
		O.oper = true;
	}
	if (strlen(O.channel) > 50 || strlen(O.nick_prefix) > 8 || strchr(O.channel, ' '))
		usage("--channel or --nick-prefix too long");
}

/* Raises the open-file limit as far as the hard limit allows. */
static void raise_nofile(size_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		die("open-file limit %llu is below the %zu descriptors this run needs "
		    "(hard limit %llu): raise it with ulimit -Hn, or use fewer receivers",
		    (unsigned long long)rl.rlim_cur, need, (unsigned long long)rl.rlim_max);
}

int main(int argc, char **argv)
{
	struct pstat base = { 0 }, ready = { 0 }, end = { 0 }, unsub = { 0 }, closed = { 0 };
	struct pstat win0 = { 0 }, win1 = { 0 };
	struct worker wk[2];
	const char *error = NULL;
	uint64_t deadline, t_setup;
	double setup_s;
	size_t i;
	int nw, k;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	/* Linux: per thread, inherited by the threads created later. */
	if (O.nice && setpriority(PRIO_PROCESS, 0, O.nice) < 0) {
		say("warning: cannot set nice %d: %s; running at nice 0", O.nice, strerror(errno));
		O.nice = 0;
	}
	raise_nofile((size_t)O.nrecv * (O.proto == P_S5 ? 3 : 1) + (size_t)O.nsend + 64);
	for (i = 0; i < sizeof pattern; i++)
		pattern[i] = (char)('a' + i % 26);
	G.maxline = O.size + 256 > 1024 ? O.size + 256 : 1024;
	G.start_ns = mono_ns();
	G.r = calloc((size_t)O.nrecv, sizeof *G.r);
	G.s = calloc((size_t)O.nsend, sizeof *G.s);
	G.next = calloc((size_t)O.nrecv * (size_t)O.nsend, sizeof *G.next);
	G.got = calloc((size_t)O.nsend * (size_t)O.window, sizeof *G.got);
	G.acked_local = calloc((size_t)O.nsend, sizeof *G.acked_local);
	G.ack_dirty = calloc((size_t)O.nsend, sizeof *G.ack_dirty);
	G.acked = calloc((size_t)O.nsend, sizeof *G.acked);
	G.sent_final = calloc((size_t)O.nsend, sizeof *G.sent_final);
	if (!G.r || !G.s || !G.next || !G.got || !G.acked_local || !G.ack_dirty || !G.acked ||
	    !G.sent_final)
		die("out of memory");
	G.rx_ep = epoll_create1(EPOLL_CLOEXEC);
	G.tx_ep = O.threads == 2 ? epoll_create1(EPOLL_CLOEXEC) : G.rx_ep;
	if (G.rx_ep < 0 || G.tx_ep < 0)
		die("epoll_create1: %s", strerror(errno));
	{
		int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		if (tfd < 0 || efd < 0)
			die("timerfd/eventfd: %s", strerror(errno));
		G.timer = conn_new(tfd, K_TIMER, 0, G.tx_ep, EPOLLIN);
		G.wake = conn_new(efd, K_WAKE, 0, G.tx_ep, EPOLLIN);
	}

	base = proc_sample(O.server_pid);
	if (O.server_pid && !base.ok)
		die("--server-pid %d: cannot read /proc/%d", (int)O.server_pid, (int)O.server_pid);

	/* Setup: receivers first (they must be listening/joined before the
	 * first message), then senders. */
	G.phase = PH_SETUP;
	t_setup = mono_ns();
	deadline = t_setup + secs_ns(O.setup_timeout);
	if (!setup_receivers(deadline)) {
		error = G.setup_error ? G.setup_error : "setup timed out";
		say("setup failed: %s (%d of %d receivers ready)", error, G.r_ready, O.nrecv);
	} else if (!setup_senders(deadline)) {
		error = G.setup_error ? G.setup_error : "setup timed out";
		say("setup failed: %s (%d of %d senders ready)", error, G.s_ready, O.nsend);
	}
	setup_s = (double)(mono_ns() - t_setup) / 1e9;
	if (error) {
		G.t0 = G.t_stop = mono_ns();
		report(error, setup_s, &base, &ready, &win0, &win1, &end, &unsub, &closed);
		return 1;
	}
	say("setup: %d receivers and %d sender(s) ready in %.2f s", O.nrecv, O.nsend, setup_s);
	ready = proc_sample(O.server_pid);

	/* The run. */
	G.t0 = mono_ns() + secs_ns(O.settle);
	G.t_stop = G.t0 + secs_ns(O.duration);
	if (O.rate > 0) {
		G.interval = (uint64_t)(1e9 / O.rate);
		if (G.interval == 0)
			G.interval = 1;
		for (k = 0; k < O.nsend; k++)	/* spread the senders out */
			G.s[k].due = G.t0 + G.interval * (uint64_t)k / (uint64_t)O.nsend;
		arm_timer(G.t0);
	}
	for (k = 0; k < O.nsend; k++)
		G.s[k].last_ack_change = G.t0;
	G.phase = PH_RUN;
	if (O.threads == 2) {
		wk[0] = (struct worker){ .ep = G.rx_ep, .rx = true };
		wk[1] = (struct worker){ .ep = G.tx_ep, .tx = true };
		nw = 2;
	} else {
		wk[0] = (struct worker){ .ep = G.rx_ep, .rx = true, .tx = true };
		nw = 1;
	}
	for (k = 0; k < nw; k++)
		if (pthread_create(&wk[k].thread, NULL, worker_main, &wk[k]) != 0)
			die("pthread_create failed");
	/* The main thread only samples the server at both ends of the
	 * measured window (its CPU time in between is the server's cost). */
	sleep_until(G.t0);
	machine_cpu(&G.busy0, &G.steal0);
	G.self0 = self_cpu();
	win0 = proc_sample(O.server_pid);
	win0.ctxsw = O.server_pid ? proc_ctxsw(O.server_pid) : -1;
	for (k = 1; k < O.nwatch; k++) {
		G.wwin0[k] = proc_sample(O.watch[k]);
		G.wwin0[k].ctxsw = proc_ctxsw(O.watch[k]);
	}
	sleep_until(G.t_stop);
	win1 = proc_sample(O.server_pid);
	win1.ctxsw = O.server_pid ? proc_ctxsw(O.server_pid) : -1;
	for (k = 1; k < O.nwatch; k++) {
		G.wwin1[k] = proc_sample(O.watch[k]);
		G.wwin1[k].ctxsw = proc_ctxsw(O.watch[k]);
	}
	machine_cpu(&G.busy1, &G.steal1);
	G.self1 = self_cpu();
	for (k = 0; k < nw; k++)
		pthread_join(wk[k].thread, NULL);
	end = proc_sample(O.server_pid);
	for (k = 1; k < O.nwatch; k++)
		G.wend[k] = proc_sample(O.watch[k]);

	teardown();
	if (O.proto == P_S5 && O.server_pid)
		unsub = proc_settled(O.server_pid, 5);
	close_all();
	if (O.server_pid)
		closed = proc_settled(O.server_pid, 5);
	report(NULL, setup_s, &base, &ready, &win0, &win1, &end, &unsub, &closed);
	return 0;
}
