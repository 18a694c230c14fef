/* sender.h - the thread that delivers to one subscriber.
 *
 * Each subscriber has one: it connects back to the subscriber's listening
 * address (or, when nothing listens there, writes on the connection it
 * subscribed over), then writes what is queued for it, in order, many
 * messages per write.  It owns that connection.
 *
 * It ends when the subscriber unsubscribes (after delivering what was
 * queued), or is evicted: its connect-back failed, its connection broke,
 * or it stalled: it accepted no byte for the stall timeout while messages
 * waited.  An evicted subscriber is told on the connection it subscribed
 * over ({"operation": "dropped", ...}), which is then closed, so that its
 * chat5 subscribes again. */
#ifndef SENDER_H
#define SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "subs.h"
#include "thread.h"

struct senders;

/* All the senders of one relay.  changed, if not NULL, is poked when a
 * connect-back attempt has finished (see senders_connecting). */
struct senders *senders_new(struct subtable *subs, int stall_ms);
/* Every sender must have ended (senders_reap returned 0). */
void senders_free(struct senders *all);

/* Starts sub's sender; 0 or an errno value. */
int sender_start(struct senders *all, struct sub *sub);
/* sub subscribed again: the sender looks at its connection again, and
 * connects anew if the old one is dead.  A sender still connecting is
 * left alone. */
void sender_recheck(struct sub *sub, struct senders *all);

/* Joins the senders that have ended; returns how many still run. */
size_t senders_reap(struct senders *all);
int senders_reap_fd(struct senders *all);
/* How many senders have not finished connecting back yet. */
size_t senders_connecting(struct senders *all);
/* Stops every sender now (shutdown): their queues are dropped. */
void senders_abort(struct senders *all);

/* Whether an accepted connection is one of our own connections back to a
 * subscriber (its peer is the local end of one, and it came to the address
 * that one connected to): the relay talking to itself. */
bool senders_own_connection(struct senders *all, const struct conn *c);

#endif
