/* cluster.h - several server5, one room: the bridge to a NATS cluster.
 *
 * With --nats, every chat message a local client sends is also published,
 * as the same serialized bytes, on the room's subject; every message
 * another server5 published there is handed to deliver(), which runs the
 * same waiting fan-out as local messages, on a thread of our own: NATS's
 * delivery thread only hands messages over, and waits only while that
 * bounded hand-over is full (the fan-out behind it waiting for a slow
 * subscriber, at most the stall timeout); meanwhile the subscription's
 * pending limits bound what NATS holds, and what passes them is counted.
 * Built when pkg-config finds libnats; otherwise --nats is refused. */
#ifndef CLUSTER_H
#define CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "msg.h"

#define CLUSTER_DEFAULT_ROOM "main"

struct cluster;

/* Whether --nats urls and --room room can be used; if not, false with a
 * one-line reason ("bad --room 'a.b': use letters, digits, '-' and '_'",
 * or that NATS support is missing) in why. */
bool cluster_check(const char *urls, const char *room, char *why, size_t whysz);

/* Connects to urls ("nats://a:4222,nats://b:4222"; it retries forever and
 * fails over between them) and subscribes to the room.  deliver(arg, msgs,
 * n) gets the messages of the other servers, in order, a batch at a time,
 * on the cluster's own thread; it may wait.  Its last call, as the thread
 * ends, has n == 0.  Dies with a message on a usage error. */
struct cluster *cluster_start(const char *urls, const char *room,
			      void (*deliver)(void *arg, struct msg **msgs, size_t n),
			      void *arg);

/* Publishes m to the other servers (buffered while disconnected). */
void cluster_publish(struct cluster *c, const struct msg *m);

/* Once a second from the main loop: reports messages NATS dropped. */
void cluster_tick(struct cluster *c);

/* Stops taking messages: wakes a deliver() waiting on a closed relay. */
void cluster_quiesce(struct cluster *c);
/* Drains and closes the connection, joins every thread (NATS's too). */
void cluster_stop(struct cluster *c);

#endif
