/* cluster.c - the bridge between one server5 and a NATS cluster.
 *
 * Threads: NATS's own (its read loop, flusher, reconnect, callbacks, and
 * the subscription's delivery thread), and one of ours.  The delivery
 * thread only copies each message into a bounded queue; ours takes them
 * in order and calls deliver(), which may wait in the relay's fan-out.
 * When our queue is full the delivery thread waits for room, so NATS's
 * pending list for the subscription grows instead: it is bounded by the
 * pending limits, and what passes them NATS drops and counts (a slow
 * consumer), which cluster_tick reports.
 *
 * A message is published on SUBJECT_PREFIX.<room>.<origin>, origin being
 * this process's random id, and the room is subscribed to as
 * SUBJECT_PREFIX.<room>.*: the last token says where a message started,
 * so one never comes back there even without NATS's no-echo.  The origin
 * is in the subject rather than a header because nats.c 3.4 refuses
 * headers (NATS_NO_SERVER_SUPPORT) until a first server has said it takes
 * them, while plain publishes wait in the reconnect buffer; it also costs
 * no message object per publish. */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"

#ifndef HAVE_NATS

bool cluster_check(const char *urls, const char *room, char *why, size_t whysz)
{
	(void)room;
	snprintf(why, whysz, "server5 was built without NATS support (--nats '%s')", urls);
	return false;
}

struct cluster *cluster_start(const char *urls, const char *room,
			      void (*deliver)(void *arg, struct msg **msgs, size_t n),
			      void *arg)
{
	(void)urls;
	(void)room;
	(void)deliver;
	(void)arg;
	log_die(2, "server5 was built without NATS support");
}

void cluster_publish(struct cluster *c, const struct msg *m)
{
	(void)c;
	(void)m;
}

void cluster_tick(struct cluster *c)
{
	(void)c;
}

void cluster_quiesce(struct cluster *c)
{
	(void)c;
}

void cluster_stop(struct cluster *c)
{
	(void)c;
}

#else /* HAVE_NATS */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <nats/nats.h>

#include "jstream.h"
#include "msgq.h"
#include "proto.h"
#include "thread.h"

#define SUBJECT_PREFIX "chat.room."
#define MAX_ROOM 64			/* bytes of --room */
#define MAX_URLS 32
#define URL_SHOWN 256			/* a server's URL as logged */
#define RECONNECT_WAIT_MS 250		/* before trying the same server again */
#define RECONNECT_BUF (8 << 20)		/* publishes held while disconnected */
#define PING_MS 5000			/* a silent server is lost after 2 pings */
#define PINGS_OUT 2
#define FLUSH_MS 2000			/* the subscription reaching the server */
#define DRAIN_MS 5000			/* shutdown: what is in flight, both ways */
#define CLOSE_WAIT_MS 5000		/* NATS's threads ending */
/* Waiting for our thread: a burst from the other servers waits in NATS's
 * pending list, whose limits are NATS's defaults, stated. */
#define PENDING_MSGS 65536
#define PENDING_BYTES (64 << 20)
/* Between the delivery thread and ours: just enough to decouple them. */
#define QUEUE_MSGS 256
#define QUEUE_BYTES (4u << 20)
#define BATCH 64

struct cluster {
	natsOptions *opts;
	natsConnection *nc;
	natsSubscription *sub;
	char origin[17];		/* 64 random bits in hex */
	char subject[sizeof SUBJECT_PREFIX + MAX_ROOM + 1 + 16];
	char wildcard[sizeof SUBJECT_PREFIX + MAX_ROOM + 2];
	void (*deliver)(void *arg, struct msg **msgs, size_t n);
	void *arg;

	struct msgq q;			/* delivery thread -> our thread */
	pthread_t thread;
	atomic_bool quiesced;

	/* Owned by our thread. */
	struct jstream *js;

	/* Owned by the main thread (cluster_tick). */
	int64_t dropped;		/* slow-consumer drops reported so far */

	pthread_mutex_t lock;		/* guards what follows */
	pthread_cond_t closed_cond;
	bool closed;			/* NATS's closed callback ran */
	bool stopping;			/* disconnects are ours from now on */
	char url[URL_SHOWN];		/* the server we are or were last on */
	struct log_tally unpublished, skipped;
};

/* NATS's words for what went wrong in this thread's last call, without
 * the "(file.c:42): " it puts first. */
static const char *why(natsStatus s)
{
	const char *text = nats_GetLastError(NULL), *end;

	if (!text || !*text)
		return natsStatus_GetText(s);
	if (*text == '(' && (end = strstr(text, "): ")) != NULL)
		return end + 3;
	return text;
}

/* ---------------------------------------------------------------------
 * Start-up: names, addresses, options
 * ------------------------------------------------------------------- */

/* A room becomes one subject token: no '.', '*', '>' or space in it.
 * NULL, or why not. */
static const char *room_problem(const char *room)
{
	const char *p;

	if (!*room)
		return "expected a name";
	if (strlen(room) > MAX_ROOM)
		return "at most 64 bytes";
	for (p = room; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return "use letters, digits, '-' and '_'";
	return NULL;
}

/* Splits "a, b,c" in place into list; -1 with *why on an empty entry or
 * too many. */
static int split_urls(char *copy, char **list, const char **why)
{
	char *p = copy, *comma, *end;
	int n = 0;

	for (;;) {
		if ((comma = strchr(p, ',')) != NULL)
			*comma = '\0';
		while (*p == ' ')
			p++;
		for (end = p + strlen(p); end > p && end[-1] == ' '; end--)
			end[-1] = '\0';
		if (!*p) {
			*why = "an empty URL in the list";
			return -1;
		}
		if (n == MAX_URLS) {
			*why = "more than 32 URLs";
			return -1;
		}
		list[n++] = p;
		if (!comma)
			return n;
		p = comma + 1;
	}
}

/* A URL as logged: without "user:password@", which is nobody's business. */
static void shown_url(const char *url, char *out, size_t size)
{
	const char *host = strstr(url, "://"), *at;

	host = host ? host + 3 : url;
	at = strchr(host, '@');
	if (at && (!strchr(host, '/') || at < strchr(host, '/')))
		snprintf(out, size, "%.*s%s", (int)(host - url), url, at + 1);
	else
		snprintf(out, size, "%s", url);
}

/* The --nats list as logged: every URL without its password. */
static void shown_list(const char *urls, char *out, size_t size)
{
	const char *p = urls, *comma;
	size_t len = 0;

	out[0] = '\0';
	for (; len + 1 < size; p = comma + 1) {
		char one[URL_SHOWN], item[URL_SHOWN];

		comma = strchr(p, ',');
		snprintf(item, sizeof item, "%.*s", (int)(comma ? (size_t)(comma - p) : strlen(p)), p);
		shown_url(item, one, sizeof one);
		len += (size_t)snprintf(out + len, size - len, "%s%s", len ? "," : "", one);
		if (!comma || len >= size)
			break;
	}
}

/* 64 bits from the kernel; a clock-and-pid mix if it has none to give,
 * which is still unique enough among a room's few servers. */
static void make_origin(char out[17])
{
	uint64_t id = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	bool ok = false;

	if (fd >= 0) {
		ok = read(fd, &id, sizeof id) == (ssize_t)sizeof id;
		close(fd);
	}
	if (!ok) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		id = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
		     ((uint64_t)getpid() << 16);
	}
	snprintf(out, 17, "%016" PRIx64, id);
}

/* ---------------------------------------------------------------------
 * NATS's callbacks (on its threads)
 * ------------------------------------------------------------------- */

static void remember_url(struct cluster *c, natsConnection *nc)
{
	char url[URL_SHOWN];

	if (natsConnection_GetConnectedUrl(nc, url, sizeof url) != NATS_OK || !*url)
		return;
	lock(&c->lock);
	shown_url(url, c->url, sizeof c->url);
	unlock(&c->lock);
}

/* Logs "NATS: <what> <the server's URL><then>". */
static void log_event(struct cluster *c, bool warn, const char *what, const char *then)
{
	char url[URL_SHOWN];

	lock(&c->lock);
	snprintf(url, sizeof url, "%s", *c->url ? c->url : "a NATS server");
	if (c->stopping)
		warn = false;
	unlock(&c->lock);
	if (warn)
		log_warn("NATS: %s %s%s", what, url, then);
	else
		log_info("NATS: %s %s%s", what, url, then);
}

/* The first connection, when cluster_start found no server up. */
static void on_connected(natsConnection *nc, void *arg)
{
	struct cluster *c = arg;

	remember_url(c, nc);
	log_event(c, true, "connected to", "");
}

static void on_disconnected(natsConnection *nc, void *arg)
{
	struct cluster *c = arg;
	bool stopping;

	(void)nc;
	lock(&c->lock);
	stopping = c->stopping;
	unlock(&c->lock);
	if (stopping)
		log_event(c, false, "disconnected from", "");
	else
		log_event(c, true, "lost", "; reconnecting, publishes held meanwhile");
}

static void on_reconnected(natsConnection *nc, void *arg)
{
	struct cluster *c = arg;

	remember_url(c, nc);
	log_event(c, true, "reconnected to", "");
}

static void on_closed(natsConnection *nc, void *arg)
{
	struct cluster *c = arg;

	(void)nc;
	lock(&c->lock);
	c->closed = true;
	cond_broadcast(&c->closed_cond);
	unlock(&c->lock);
	log_info("NATS: connection closed");
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
	(void)nc;
	(void)sub;
	(void)arg;
	/* Slow-consumer drops are counted and reported by cluster_tick. */
	if (err != NATS_SLOW_CONSUMER)
		log_warn("NATS: %s", natsStatus_GetText(err));
}

/* The delivery thread: hands the message over, never delivers it. */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *nm, void *arg)
{
	struct cluster *c = arg;
	const char *subj = natsMsg_GetSubject(nm), *dot = strrchr(subj, '.');
	int len = natsMsg_GetDataLength(nm);
	struct msg *m = NULL;

	(void)nc;
	(void)sub;
	if (!(dot && strcmp(dot + 1, c->origin) == 0) && len >= 0)
		m = msg_new(natsMsg_GetData(nm), (size_t)len);
	natsMsg_Destroy(nm);
	if (!m)
		return;		/* ours, or no memory: NATS's data is gone anyway */
	/* Waits while our thread is behind; fails at once after quiesce. */
	msgq_push(&c->q, m, NULL);
	msg_unref(m);
}

/* ---------------------------------------------------------------------
 * Our thread: checks and delivers
 * ------------------------------------------------------------------- */

/* What crosses the cluster is checked like what a client sends, by the
 * same stream reader: exactly one chat object and its '\n'.  NULL when it
 * is, else why not. */
static const char *check(struct jstream *js, const struct msg *m)
{
	struct json_object *obj = NULL, *more = NULL;
	struct proto_msg pm;
	const char *bad = NULL, *why;

	if (m->len < 2 || m->data[m->len - 1] != '\n')
		return "not one line";
	jstream_reset(js);
	jstream_feed(js, m->data, m->len);
	if (!jstream_next(js, &obj, &why) || !obj)
		bad = jstream_error(js) ? jstream_error(js) : "not one JSON object";
	else if (jstream_next(js, &more, &why) || jstream_partial(js))
		bad = "more than one JSON value";
	else if (proto_decode(obj, &pm, &bad) == 0 && pm.type != PROTO_CHAT)
		bad = "not a chat message";
	json_object_put(obj);
	json_object_put(more);
	return bad;
}

/* Keeps the good messages of a batch (in order), dropping the others
 * with a line a second; returns how many are left. */
static size_t check_batch(struct cluster *c, struct msg **batch, size_t n)
{
	size_t i, good = 0;

	for (i = 0; i < n; i++) {
		const char *bad = check(c->js, batch[i]);

		if (!bad) {
			batch[good++] = batch[i];
			continue;
		}
		lock(&c->lock);
		log_tally(&c->skipped, "NATS: skipped a message from another server: %s", bad);
		unlock(&c->lock);
		msg_unref(batch[i]);
	}
	return good;
}

static void *run(void *arg)
{
	struct cluster *c = arg;
	struct msg *batch[BATCH];
	size_t n, i;

	while ((n = msgq_pop(&c->q, batch, BATCH, true, NULL)) > 0 || !msgq_closed(&c->q)) {
		n = check_batch(c, batch, n);
		/* After quiesce the relay is closing: dropped.  A batch goes
		 * together, so the relay wakes each sender once for it. */
		if (n > 0 && !atomic_load(&c->quiesced))
			c->deliver(c->arg, batch, n);
		for (i = 0; i < n; i++)
			msg_unref(batch[i]);
	}
	c->deliver(c->arg, NULL, 0);
	return NULL;
}

/* ---------------------------------------------------------------------
 * The interface
 * ------------------------------------------------------------------- */

bool cluster_check(const char *urls, const char *room, char *why, size_t whysz)
{
	char *copy = strdup(urls), *list[MAX_URLS];
	const char *bad = room_problem(room);

	why[0] = '\0';
	if (bad)
		snprintf(why, whysz, "bad --room '%s': %s", room, bad);
	else if (!copy || split_urls(copy, list, &bad) < 0) {
		char shown[1024];

		shown_list(urls, shown, sizeof shown);
		snprintf(why, whysz, "bad --nats '%s': %s", shown, bad ? bad : strerror(ENOMEM));
	}
	free(copy);
	return why[0] == '\0';
}

static natsStatus set_options(struct cluster *c, const char **urls, int n)
{
	char name[32];
	natsStatus s;

	snprintf(name, sizeof name, "server5 %s", c->origin);
	s = natsOptions_Create(&c->opts);
	if (s == NATS_OK)
		s = natsOptions_SetServers(c->opts, urls, n);
	/* In the order given, as chat5 takes its servers. */
	if (s == NATS_OK)
		s = natsOptions_SetNoRandomize(c->opts, true);
	if (s == NATS_OK)
		s = natsOptions_SetName(c->opts, name);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(c->opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(c->opts, RECONNECT_WAIT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(c->opts, RECONNECT_BUF);
	/* With a callback, Connect returns at once when no server is up yet
	 * (without one it would wait for a server, forever). */
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(c->opts, true, on_connected, c);
	if (s == NATS_OK)
		s = natsOptions_SetNoEcho(c->opts, true);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(c->opts, PING_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(c->opts, PINGS_OUT);
	/* A delivery thread of its own: waiting in on_msg holds back nobody else. */
	if (s == NATS_OK)
		s = natsOptions_UseGlobalMessageDelivery(c->opts, false);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(c->opts, on_disconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(c->opts, on_reconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(c->opts, on_closed, c);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(c->opts, on_error, c);
	return s;
}

/* The cluster's state, before any connection. */
static struct cluster *cluster_new(const char *room,
				   void (*deliver)(void *arg, struct msg **msgs, size_t n),
				   void *arg)
{
	struct cluster *c = calloc(1, sizeof *c);

	if (!c)
		log_die(1, "NATS: %s", strerror(ENOMEM));
	make_origin(c->origin);
	snprintf(c->subject, sizeof c->subject, SUBJECT_PREFIX "%s.%s", room, c->origin);
	snprintf(c->wildcard, sizeof c->wildcard, SUBJECT_PREFIX "%s.*", room);
	c->deliver = deliver;
	c->arg = arg;
	atomic_init(&c->quiesced, false);
	mutex_init(&c->lock);
	cond_init(&c->closed_cond);
	c->js = jstream_new(PROTO_MAX_OBJECT, PROTO_MAX_DEPTH);
	if (!c->js || msgq_init(&c->q, QUEUE_MSGS, QUEUE_BYTES) < 0)
		log_die(1, "NATS: %s", strerror(ENOMEM));
	return c;
}

/* Connects (or goes on trying in the background) and subscribes. */
static void join(struct cluster *c, const char *list)
{
	natsStatus s = natsConnection_Connect(&c->nc, c->opts);
	char urls[1024];

	shown_list(list, urls, sizeof urls);
	if (s == NATS_NOT_YET_CONNECTED)
		log_warn("NATS: no server of '%s' answers yet; trying again every %d ms",
			 urls, RECONNECT_WAIT_MS);
	else if (s == NATS_INVALID_ARG)
		log_die(2, "bad --nats '%s': %s", urls, why(s));
	else if (s != NATS_OK)
		log_die(1, "NATS: cannot connect to '%s': %s", urls, why(s));
	s = natsConnection_Subscribe(&c->sub, c->nc, c->wildcard, on_msg, c);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(c->sub, PENDING_MSGS, PENDING_BYTES);
	if (s != NATS_OK)
		log_die(1, "NATS: cannot subscribe to %s: %s", c->wildcard, why(s));
	if (natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED) {
		/* The server knows the room before we say we listen. */
		if ((s = natsConnection_FlushTimeout(c->nc, FLUSH_MS)) != NATS_OK)
			log_warn("NATS: subscribing to %s: %s", c->wildcard, why(s));
		remember_url(c, c->nc);
		log_event(c, false, "connected to", "");
	}
}

struct cluster *cluster_start(const char *urls, const char *room,
			      void (*deliver)(void *arg, struct msg **msgs, size_t n),
			      void *arg)
{
	char *copy = strdup(urls), *list[MAX_URLS];
	const char *bad = NULL;
	struct cluster *c;
	sigset_t mask;
	natsStatus s;
	int n, rc;

	/* server5 checked them with cluster_check already. */
	if (!copy || room_problem(room) || (n = split_urls(copy, list, &bad)) < 0)
		log_die(2, "bad --nats or --room '%s'", room);
	c = cluster_new(room, deliver, arg);
	/* NATS's threads inherit the mask: signals stay the main thread's. */
	thread_block_signals(&mask);
	s = set_options(c, (const char **)list, n);
	free(copy);
	if (s != NATS_OK)
		log_die(1, "NATS: cannot set up the connection: %s", why(s));
	if ((rc = thread_start(&c->thread, run, c)) != 0)
		log_die(1, "NATS: cannot start a thread: %s", strerror(rc));
	join(c, urls);
	thread_restore_signals(&mask);
	log_info("NATS: room %s (subject %s), this server's origin %s", room, c->wildcard,
		 c->origin);
	return c;
}

void cluster_publish(struct cluster *c, const struct msg *m)
{
	natsStatus s = NATS_MAX_PAYLOAD;

	/* Only buffers: the flusher thread writes, the reconnect buffer holds. */
	if (m->len <= INT_MAX)
		s = natsConnection_Publish(c->nc, c->subject, m->data, (int)m->len);
	if (s != NATS_OK) {
		const char *text = natsStatus_GetText(s);

		lock(&c->lock);
		log_tally(&c->unpublished, "NATS: a message was not published: %s", text);
		unlock(&c->lock);
	}
}

void cluster_tick(struct cluster *c)
{
	int64_t dropped;

	if (natsSubscription_GetDropped(c->sub, &dropped) == NATS_OK && dropped > c->dropped) {
		log_warn("NATS: %" PRId64 " message(s) from other servers dropped: this server "
			 "fell behind them (slow consumer)", dropped - c->dropped);
		c->dropped = dropped;
	}
	lock(&c->lock);
	log_tally_flush(&c->unpublished, "NATS: messages not published", false);
	log_tally_flush(&c->skipped, "NATS: messages skipped", false);
	unlock(&c->lock);
}

void cluster_quiesce(struct cluster *c)
{
	atomic_store(&c->quiesced, true);
	msgq_close(&c->q);
	msgq_clear(&c->q);
}

/* Until NATS's closed callback ran or ms passed; whether it ran. */
static bool wait_closed(struct cluster *c, int ms)
{
	struct timespec deadline = mono_after(ms);
	bool closed;

	lock(&c->lock);
	while (!c->closed && cond_wait_until(&c->closed_cond, &c->lock, &deadline)) {
	}
	closed = c->closed;
	unlock(&c->lock);
	return closed;
}

void cluster_stop(struct cluster *c)
{
	natsStatus s;
	sigset_t mask;

	cluster_quiesce(c);
	lock(&c->lock);
	c->stopping = true;
	unlock(&c->lock);
	/* Drain: no new messages, those in flight through on_msg (which drops
	 * them now), our publishes flushed to the server, then closed. */
	/* NATS's threads inherit the mask: signals stay the main thread's. */
	thread_block_signals(&mask);	/* the drain has a thread of its own */
	s = natsConnection_DrainTimeout(c->nc, DRAIN_MS);
	thread_restore_signals(&mask);
	if (s != NATS_OK) {
		/* Not connected, so nothing can be flushed. */
		log_warn("NATS: not connected at shutdown: messages held for the other servers, "
			 "if any, are lost");
		natsConnection_Close(c->nc);
	}
	if (!wait_closed(c, DRAIN_MS + FLUSH_MS)) {
		natsConnection_Close(c->nc);
		wait_closed(c, FLUSH_MS);
	}
	must(pthread_join(c->thread, NULL), "pthread_join");
	/* Closed first: 3.4.1 may crash on a message for a subscription being
	 * destroyed. */
	natsSubscription_Destroy(c->sub);
	natsConnection_Destroy(c->nc);
	natsOptions_Destroy(c->opts);
	if ((s = nats_CloseAndWait(CLOSE_WAIT_MS)) != NATS_OK) {
		/* A NATS thread may still call us: c must outlive it. */
		log_warn("NATS: its threads did not end: %s", natsStatus_GetText(s));
		return;
	}
	lock(&c->lock);
	log_tally_flush(&c->unpublished, "NATS: messages not published", true);
	log_tally_flush(&c->skipped, "NATS: messages skipped", true);
	unlock(&c->lock);
	jstream_free(c->js);
	msgq_destroy(&c->q);
	cond_destroy(&c->closed_cond);
	mutex_destroy(&c->lock);
	free(c);
}

#endif /* HAVE_NATS */
