/*
 * The link between a client and its server: the only module that knows both.
 * It attaches a server to a client that needs one (a pooled one, a new one,
 * or a wait in the pool's queue), pumps messages between them and tracks the
 * request in flight (xact.c), gives the server back at idle points (pause,
 * RECONNECT, re-routing, a full pool, server_idle_timeout), and decides what
 * a lost server means for its client: a retry, a move, or an error.
 *
 * client.c and server.c report to it through their ops tables and never call
 * each other; pool.c keeps the lists and limits, and asks the link to serve
 * its queue through its own ops.
 */
#ifndef PGWING_LINK_H
#define PGWING_LINK_H

#include <stdbool.h>

struct backend;

/*
 * Topology changed (or a retry is due): end what sessions have under way on
 * backends that must no longer serve them, close pooled servers that may not
 * serve again, serve whoever waits, and move idle sessions that should go.
 */
void link_on_topology_change(void *arg);
/* b leaves the topology: servers on it stop pointing at it, pooled ones close. */
void link_on_backend_removed(struct backend *b);
/* Idle sessions of database (NULL: all) that should not keep their servers give them back. */
void link_release_idle(const char *database);
/* Sessions idle for server_idle_timeout give their servers back (they get one when they speak). */
void link_release_timed_out(void);

/*
 * A takeover: sessions give their servers back at every idle point (as they
 * would to a pause), and every client left without a server between
 * transactions (after a release, a first welcome, a server lost while idle)
 * is offered to take, which returns true when it handed the client over (the
 * client is closed then). NULL ends it.
 */
struct client;
void link_set_handover(bool (*take)(struct client *cl));

/*
 * Register the link as the owner of clients' pool sessions and of the pools'
 * queues; runtime: the process state it reads.
 */
struct runtime;
void link_init(const struct runtime *runtime);

#endif
