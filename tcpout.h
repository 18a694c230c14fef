/* tcpout.h - writing messages to a TCP connection, and knowing which of
 * them may not have arrived.
 *
 * Used by every sender: chat's and chat5's links, and server5's senders.
 * Messages are written in order, several per sendmsg(); one cut short by a
 * broken connection is written again, from its first byte, on the next.
 *
 * A message that was written completely is not yet known to have arrived.
 * When the connection breaks, the ones the peer's TCP had not acknowledged
 * are counted as possibly lost.  A reset says more: the peer closed or died
 * with data it had not read (that is when TCP resets), which TCP had
 * acknowledged already; so on a reset, everything written in the last
 * TCPOUT_SETTLE_MS is counted too.  Both counts are "may not have
 * arrived": the protocol has no receipts, so this is the honest bound. */
#ifndef TCPOUT_H
#define TCPOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "msg.h"

#define TCPOUT_BATCH 256	/* messages per sendmsg (below IOV_MAX) */
#define TCPOUT_SETTLE_MS 1000	/* acknowledged this long ago: read */

/* Messages written on the connection, newest last, in batches. */
struct tcpout_written {
	uint64_t end;		/* stream offset just past the batch */
	int64_t at_ms;		/* when it was written */
	uint64_t count;		/* messages in it */
};

struct tcpout {
	struct msg *msgs[TCPOUT_BATCH];	/* being written, in order */
	size_t n;
	size_t sent;			/* bytes of msgs[0] written already */
	struct msg *control;		/* the greeting or farewell among them:
					 * not a message anyone typed */
	uint64_t offset;		/* bytes written on this connection */
	uint64_t acked;			/* of which the peer acknowledged */
	struct tcpout_written *ring;	/* not yet settled */
	size_t head, count, cap;
	/* When the peer last acknowledged new bytes, or began to owe some:
	 * the stall clock.  Bytes our own kernel takes are no progress: it
	 * may buffer megabytes for a peer that reads nothing. */
	int64_t progress_ms;
	int64_t settled_ms;		/* when tcpout_settle last asked */
};

void tcpout_init(struct tcpout *o);
/* Drops every message still held. */
void tcpout_free(struct tcpout *o);

/* How many more messages tcpout_add takes now. */
size_t tcpout_room(const struct tcpout *o);
/* Appends messages to write (takes the references). */
void tcpout_add(struct tcpout *o, struct msg *const *msgs, size_t n);
/* Puts m before everything else (a greeting on a new connection); it
 * does not count as a message in what tcpout reports.  There must be a
 * free slot (the caller keeps one), and m must not also be queued as a
 * message: it is recognised by its address. */
void tcpout_add_first(struct tcpout *o, struct msg *m);
/* Messages not yet written completely. */
size_t tcpout_pending(const struct tcpout *o);

/* Writes as much as fd takes without blocking.  Returns the bytes
 * written (0 when it took none), or -1 with errno when the connection
 * failed. */
ssize_t tcpout_write(struct tcpout *o, int fd);

/* Learns what the peer has acknowledged (the stall clock), and forgets
 * what it acknowledged long enough ago; call after writes and before
 * looking at the stall clock.  Cheap: one ioctl. */
void tcpout_settle(struct tcpout *o, int fd);

/* tcpout_settle, but at most every every_ms: after each write, where an
 * ioctl per write would cost as much as the write. */
void tcpout_settle_lazily(struct tcpout *o, int fd, int every_ms);

/* Whether the peer owes us something: messages to write, or bytes
 * written that it has not acknowledged. */
bool tcpout_waiting(const struct tcpout *o);
/* Milliseconds until the peer counts as stalled (0: it does), or -1
 * while it owes nothing. */
int tcpout_stall_left(const struct tcpout *o, int stall_ms);

/* The connection on fd is over (reset: it ended with a reset).  Returns
 * how many written messages may not have arrived, and makes ready for a
 * new connection: a message cut short will be written whole. */
uint64_t tcpout_broken(struct tcpout *o, int fd, bool reset);
/* The peer closed cleanly after reading everything: all arrived. */
void tcpout_delivered(struct tcpout *o);

/* Drops the messages never written; returns how many (not counting a
 * greeting or farewell). */
uint64_t tcpout_drop(struct tcpout *o);

#endif
