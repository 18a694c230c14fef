/* outbox.h - a typed line's way out, to every link, with flow control.
 *
 * Shared by chat (a link per peer) and chat5 (one link to the server).
 * Each typed line becomes one message with the next seq, the same bytes
 * offered to every link.  When a connected link is full the message waits
 * in the outbox, outbox_busy says so, and the console stops reading input
 * until outbox_room is poked and the message got everywhere. */
#ifndef OUTBOX_H
#define OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "link.h"
#include "msg.h"
#include "wake.h"

struct outbox {
	const char *name;		/* the user's, in every message */
	int64_t seq;
	struct link **links;
	char (*labels)[ADDR_HOSTLEN + 16];
	uint64_t *given_up;		/* per link: never offered at the end */
	size_t nlinks;
	struct msg *waiting;		/* offered to links[next..] still */
	size_t next;
	struct wake room;		/* the links poke it (link_config.room) */
};

/* For nlinks links; dies on ENOMEM. */
void outbox_init(struct outbox *o, const char *name, size_t nlinks);
/* Sets link i, labelled for the final report ("peer 127.0.0.1:5002"). */
void outbox_set(struct outbox *o, size_t i, struct link *l, const char *label);

/* Reads typed lines (console.h) into the links until "exit", the end of
 * the input or a signal; then delivers what waits, closes every link
 * (each delivers what is queued first), and reports on stderr what never
 * arrived.  A signal while it waits (a second Ctrl-C) stops the waiting.
 * Returns true when every message may have arrived: the exit status. */
bool outbox_run(struct outbox *o);

#endif
