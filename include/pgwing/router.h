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
 * max_replica_lag and max_replica_lag_bytes, same region as cfg->region first, then lowest RTT,
 * ties to cfg->primary_region's, then to the fewest clients; then the primary unless
 * ro_fallback = error. Never a suspect backend (backend_is_suspect): its clients wait for the
 * verdict. NULL when nothing can serve now (the caller waits or errors).
 */
struct backend *router_pick(const struct topology *topo, const struct config *cfg,
			    enum target target);

/*
 * How fresh a session's reads must be: a replica serving them must have
 * replayed min_lsn (its own last write, or the pgwing.min_lsn it asked for;
 * 0: any), and have caught up with the primary within max_staleness_ms of
 * now_ms (pgwing.max_staleness; 0: no bound).
 */
struct read_floor {
	uint64_t min_lsn;
	int64_t max_staleness_ms;
	int64_t now_ms;
};

/*
 * The replica a read of a session with this floor may run on: one that
 * router_pick would give a read-only client (never a suspect one) and whose
 * replay, as last probed, meets the floor. current, the replica serving the
 * session now, keeps it while it qualifies: moving costs more than a nearer
 * one saves. NULL when none does; *is_behind then says whether one would do
 * but for the floor, which is worth waiting for.
 */
struct backend *router_pick_caught_up(const struct topology *topo, const struct config *cfg,
				      const struct read_floor *floor, const struct backend *current,
				      bool *is_behind);

/*
 * The asleep or waking backend to wake for a client of target, or NULL:
 * TARGET_RW: the sleeping primary (or a sleeping backend of unknown role)
 * while there is no live primary. TARGET_RO per wake_for_reads: nearest wakes a
 * sleeping replica (our region first) only while no replica can serve, always
 * whenever one sleeps, never not at all; with no replica to wake, the sleeping
 * primary when reads fall back to it.
 */
struct backend *router_pick_wakeable(const struct topology *topo, const struct config *cfg,
				     enum target target);

/*
 * Whether a client already on backend b should move off at its next idle
 * point. b == NULL (a server whose backend a reload removed) always moves.
 */
bool router_should_move(const struct topology *topo, const struct config *cfg, enum target target,
			const struct backend *b);

#endif
