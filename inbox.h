/* inbox.h - the receiving side of chat and chat5.
 *
 * Reads JSON from a connection and prints every chat message on it;
 * anything else is skipped with a log line. */
#ifndef INBOX_H
#define INBOX_H

#include <json-c/json.h>

#include <stdint.h>

#include "listener.h"

/* Listens on bind_addr (NULL: every address) and *port, and starts a
 * listener whose connections print the chat messages they carry.  *port
 * gets the port actually used.  On failure, says why and exits 1. */
struct listener *inbox_listen(const char *bind_addr, uint16_t *port,
			      size_t max_conns);

/* A listener handler: prints the chat messages arriving on c. */
void inbox_serve(struct conn *c, void *arg);

/* Prints obj if it is a chat message, else logs it; `from` names the
 * sender for the log, and complaints counts its bad messages
 * (log_budget).  Always returns 0 (the connection stays). */
int inbox_value(const char *from, unsigned *complaints,
		struct json_object *obj);

#endif
