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

/*
 * Start probing every backend of topo. cfg and af are used until the next
 * health_reconfigure: they must outlive it.
 */
int health_start(struct event_base *base, struct topology *topo, const struct config *cfg,
		 const struct auth_file *af);
/*
 * After a reload: applies cfg to the topology (topology_apply_config, whose
 * on_remove hook stops the probes of dropped backends), starts probes for new
 * backends, reconnects the rest with the new settings, and notifies the
 * topology's subscriber. Call it before freeing the old config or auth file.
 */
void health_reconfigure(struct topology *topo, const struct config *cfg,
			const struct auth_file *af);
/* Probe one backend now (e.g. after a server said 25006 on a "primary"). */
void health_probe_now(struct backend *b);
/*
 * A wake started, or its command finished: probe b now, then after 100 ms,
 * growing by half each time up to health_interval, until it is up.
 */
void health_probe_waking(struct backend *b);
/*
 * b is unused and may stop (see wake.c): close its probe and stop probing
 * until a wake; b is asleep from now on.
 */
void health_put_to_sleep(struct backend *b);
void health_stop(struct topology *topo);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void health_init(const struct runtime *runtime);

#endif
