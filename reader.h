/* reader.h - the JSON values a connection sends, read on its own thread.
 *
 * The loop every serve function runs:
 *
 *	while ((ev = reader_next(&r, &value)) != READER_END)
 *		if (ev == READER_VALUE) ... handle value, json_object_put(value)
 *		else ... READER_IDLE: what arrived is handled; about to wait
 *
 * It reads, feeds the connection's JSON stream (jstream.h), and logs what
 * is skipped against the connection's log budget (c->budget).  Time limits, so that a
 * peer cannot pin the thread: an object begun must be finished within
 * partial_ms, and the first one within first_ms of connecting (0: none). */
#ifndef READER_H
#define READER_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "jstream.h"
#include "listener.h"
#include "log.h"

enum reader_event { READER_VALUE, READER_IDLE, READER_END };

struct reader {
	struct conn *c;
	struct jstream *js;
	char *buf;
	int partial_ms, first_ms;
	int64_t started_ms, partial_since_ms;
	bool got_value;
	bool idle_told;		/* READER_IDLE returned for what was read */
};

/* 0, or -1 on ENOMEM (logged). */
int reader_init(struct reader *r, struct conn *c, int partial_ms, int first_ms);
void reader_free(struct reader *r);

enum reader_event reader_next(struct reader *r, struct json_object **value);

#endif
