/*
 * Pools: one per database x user x target. A client that needs a server and
 * can't have one now waits in its pool's queue; that one mechanism serves a
 * full pool, a failover and a wake-up. In session mode each client gets its
 * own server connection, closed when the client leaves.
 */
#ifndef PGWING_POOL_H
#define PGWING_POOL_H

#include "pgwing/client.h"

struct pool {
	char *database;
	char *user;
	enum target target;
	struct client_list waiting;
	int nwaiting;
	int nactive;
	struct pool *next;
};

/* Find or create the pool for an authenticated client and ask it for a server. */
void pool_request_server(struct client *cl);
/* The client leaves its pool (closed, or served). */
void pool_forget_client(struct client *cl);
/* Topology changed: serve whoever waits and can be served now. */
void pool_on_topology_change(void *arg);
void pool_free_all(void);

#endif
