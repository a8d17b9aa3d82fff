/*
 * Periodic maintenance, on timers of its own so that it never runs inside a
 * client's or server's callbacks: idle and old servers are closed, unused
 * pools collected, backends unused for server_idle_timeout put to sleep, and
 * free heap given back to the system.
 */
#ifndef PGWING_JANITOR_H
#define PGWING_JANITOR_H

#include "pgwing/config.h"
#include "pgwing/topology.h"

struct event_base;

/* Start the sweeps. cfg is used until the next janitor_reconfigure: it must outlive it. */
void janitor_start(struct event_base *base, struct topology *topo, const struct config *cfg);
/* After a reload: the next sweeps follow cfg (server_idle_timeout, probe_sleeping). */
void janitor_reconfigure(const struct config *cfg);
void janitor_stop(void);

#endif
