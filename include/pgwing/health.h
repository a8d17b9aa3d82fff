/*
 * Health probes: async libpq on the event loop, one persistent probe connection
 * per backend, publishing role, LSN, lag, timeline and RTT into the topology.
 */
#ifndef PGWING_HEALTH_H
#define PGWING_HEALTH_H

#include "pgwing/config.h"
#include "pgwing/topology.h"

struct event_base;
struct auth_file;

int health_start(struct event_base *base, struct topology *topo, const struct config *cfg,
		 const struct auth_file *af);
/* After a reload or a topology change: (re)start probes for new backends, stop removed ones. */
void health_reconfigure(struct topology *topo, const struct config *cfg,
			const struct auth_file *af);
/* Probe one backend now (e.g. after a server said 25006 on a "primary"). */
void health_probe_now(struct backend *b);
void health_stop(struct topology *topo);

#endif
