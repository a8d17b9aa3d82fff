/*
 * The routing decision: which backend serves a client of a given target.
 * Pure over a topology snapshot and the config, so it is unit-tested with
 * synthetic topologies.
 */
#ifndef PGWING_ROUTER_H
#define PGWING_ROUTER_H

#include "pgwing/config.h"
#include "pgwing/topology.h"

/*
 * TARGET_RW: the primary. TARGET_RO: among up, unfenced replicas within
 * max_replica_lag, same region as cfg->region first, then lowest RTT, ties to the
 * fewest clients; then the primary unless ro_fallback = error.
 * NULL when nothing can serve now (the caller waits or errors).
 */
struct backend *router_pick(const struct topology *topo, const struct config *cfg,
			    enum target target);

/*
 * Whether a client already on backend b should move off at its next idle
 * point. b == NULL (a server whose backend a reload removed) always moves.
 */
bool router_should_move(const struct topology *topo, const struct config *cfg, enum target target,
			const struct backend *b);

#endif
