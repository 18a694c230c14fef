/* inbox.h - the receiving side of chat and chat5.
 *
 * Reads JSON from each accepted connection and prints every chat message
 * on it, a whole batch at once; anything else is skipped with a log line
 * (within the connection's log budget). */
#ifndef INBOX_H
#define INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "console.h"
#include "listener.h"
#include "log.h"

/* A half-sent object may hold a reader this long (milliseconds). */
#define INBOX_PARTIAL_TIMEOUT_MS 30000

/* Listens on bind_addr (NULL: every address) and *port, and starts a
 * listener whose connections print the chat messages they carry.  A
 * connection must complete its first object within first_ms (0: may stay
 * silent, as a relay's delivery connection does).  *port gets the port
 * used.  On failure, says why and exits 1. */
struct listener *inbox_listen(const char *bind_addr, uint16_t *port,
			      size_t max_conns, int first_ms);

/* Waits (at most timeout_ms) until every connection that delivered a
 * message has ended: chat5, dropped by its server, prints what the old
 * delivery connection still holds before it subscribes again, so that
 * nothing comes out of order.  True when they all ended. */
bool inbox_wait_drained(int timeout_ms);

/* Adds v to the batch if it is a chat message (true), else logs why it
 * was skipped against the budget. */
bool inbox_take(struct console_batch *batch, struct log_budget *budget,
		struct json_object *v);

#endif
