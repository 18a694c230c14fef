/* cluster.c - the bridge between one server5 and a NATS cluster. */
#include "cluster.h"

#include <stdlib.h>

#include "log.h"

#ifndef HAVE_NATS

bool cluster_available(void)
{
	return false;
}

struct cluster *cluster_start(const char *urls, const char *room,
			      void (*deliver)(void *arg, struct msg *m), void *arg)
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

#endif
