/* outbox.c - typed lines to every link, waiting for room when needed. */
#include "outbox.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "console.h"
#include "log.h"
#include "proto.h"
#include "signals.h"

void outbox_init(struct outbox *o, const char *name, size_t nlinks)
{
	memset(o, 0, sizeof *o);
	o->name = name;
	o->nlinks = nlinks;
	o->links = calloc(nlinks ? nlinks : 1, sizeof *o->links);
	o->labels = calloc(nlinks ? nlinks : 1, sizeof *o->labels);
	o->given_up = calloc(nlinks ? nlinks : 1, sizeof *o->given_up);
	if (!o->links || !o->labels || !o->given_up || wake_init(&o->room) < 0)
		log_die(1, "setup: %s", strerror(errno ? errno : ENOMEM));
}

void outbox_set(struct outbox *o, size_t i, struct link *l, const char *label)
{
	o->links[i] = l;
	snprintf(o->labels[i], sizeof o->labels[i], "%s", label);
}

/* Offers the waiting message to the links it has not reached; true when
 * every link has it (or is closed). */
static bool offer(struct outbox *o)
{
	while (o->next < o->nlinks) {
		if (link_offer(o->links[o->next], o->waiting) == 0)
			return false;
		o->next++;
	}
	msg_unref(o->waiting);
	o->waiting = NULL;
	return true;
}

static void outbox_flush(void *arg)
{
	struct outbox *o = arg;
	size_t i;

	for (i = 0; i < o->nlinks; i++)
		link_flush(o->links[i]);
}

static bool outbox_busy(void *arg)
{
	struct outbox *o = arg;

	wake_drain(&o->room);
	return o->waiting && !offer(o);
}

static void outbox_line(void *arg, const char *line, size_t len)
{
	struct outbox *o = arg;
	const char *text = charset_to_utf8(line, len, &len);
	struct msg *m = proto_encode_chat(o->seq, o->name, strlen(o->name), text, len);

	if (!m) {
		if (errno == EMSGSIZE)
			log_warn("line not sent: as a message it would be over %d bytes "
				 "(the protocol's limit)", PROTO_MAX_OBJECT);
		else
			log_warn("line not sent: %s", strerror(errno));
		return;
	}
	o->seq++;
	o->waiting = m;
	o->next = 0;
	offer(o);
}

/* Waits on the links' wake and on signals; false when a signal came
 * after `signals_before`: the user does not want to wait any longer. */
static bool wait_links(struct outbox *o, unsigned signals_before)
{
	struct pollfd p[2] = {
		{ .fd = wake_fd(&o->room), .events = POLLIN },
		{ .fd = signals_fd(), .events = POLLIN },
	};

	outbox_flush(o);
	if (poll(p, 2, -1) < 0 && errno != EINTR)
		return false;
	if (p[1].revents)
		signals_drain();
	return signals_count() == signals_before;
}

static bool all_ended(struct outbox *o)
{
	size_t i;

	for (i = 0; i < o->nlinks; i++)
		if (!link_ended(o->links[i]))
			return false;
	return true;
}

static bool report(struct outbox *o)
{
	bool all = true;
	size_t i;

	for (i = 0; i < o->nlinks; i++) {
		struct link_report r;

		link_join(o->links[i], &r);
		r.never_sent += o->given_up[i];
		if (r.never_sent > 0)
			log_warn("%s: %llu message(s) never delivered", o->labels[i],
				 (unsigned long long)r.never_sent);
		if (r.maybe_lost > 0)
			log_warn("%s: %llu message(s) may not have arrived (written into a "
				 "connection that broke)", o->labels[i],
				 (unsigned long long)r.maybe_lost);
		all = all && r.never_sent == 0 && r.maybe_lost == 0;
	}
	return all;
}

static bool outbox_close(struct outbox *o)
{
	unsigned before = signals_count();
	bool patient = true, all;
	size_t i;

	outbox_flush(o);
	while (patient && outbox_busy(o))
		patient = wait_links(o, before);
	if (o->waiting) {
		/* Given up on: the links it did not reach never had it. */
		for (i = o->next; i < o->nlinks; i++)
			o->given_up[i]++;
		msg_unref(o->waiting);
		o->waiting = NULL;
	}
	for (i = 0; i < o->nlinks; i++)
		link_close(o->links[i], !patient);
	while (!all_ended(o)) {
		if (patient && !wait_links(o, before)) {
			patient = false;
			for (i = 0; i < o->nlinks; i++)
				link_close(o->links[i], true);
		} else if (!patient) {
			wait_links(o, signals_count());
		}
	}
	all = report(o);
	wake_close(&o->room);
	free(o->links);
	free(o->labels);
	free(o->given_up);
	return all;
}

bool outbox_run(struct outbox *o)
{
	console_read_lines(&(struct console_input){
		.on_line = outbox_line, .flush = outbox_flush, .busy = outbox_busy,
		.busy_fd = wake_fd(&o->room), .arg = o, .max_line = PROTO_MAX_OBJECT });
	return outbox_close(o);
}
