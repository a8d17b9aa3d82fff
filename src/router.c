/*
 * The routing decision, pure over the topology and the config: no I/O, no
 * clock, so every rule is unit-tested with hand-built topologies.
 */
#include "pgwing/router.h"

#include <string.h>

/*
 * Two smoothed RTTs within this much of each other count as equal, so that
 * replicas at the same distance share clients instead of the one that measured
 * a few microseconds faster taking them all. Probe jitter inside a datacenter
 * is a few tenths of a millisecond; across regions it is a few percent of the
 * RTT, hence an absolute and a relative part.
 */
#define RTT_TIE_ABS_MS 0.5
#define RTT_TIE_REL    0.10

/* Whether lag is within max; an unknown lag (< 0) is no proof of being close. 0 disables. */
static bool is_within_lag(int64_t lag, int64_t max)
{
	return max == 0 || (lag >= 0 && lag <= max);
}

static bool is_ro_candidate(const struct backend *b, const struct config *cfg)
{
	if (b->state != BACKEND_UP || b->role != ROLE_REPLICA || b->is_fenced)
		return false;
	return is_within_lag(b->lag_ms, cfg->max_replica_lag_ms) &&
	       is_within_lag(b->lag_bytes, cfg->max_replica_lag_bytes);
}

/* Whether b runs in region; no backend runs in the empty region (the setting is not set). */
static bool is_in_region(const struct backend *b, const char *region)
{
	return region[0] != '\0' && strcmp(b->region, region) == 0;
}

/* <0 when a is nearer than b, >0 when farther, 0 when they tie. An unknown RTT (< 0) is farthest.
 */
static int compare_rtt(double a, double b)
{
	double lower, diff;

	if (a < 0 || b < 0)
		return (a < 0) - (b < 0);
	lower = a < b ? a : b;
	diff = a > b ? a - b : b - a;
	if (diff <= RTT_TIE_ABS_MS || diff <= RTT_TIE_REL * lower)
		return 0;
	return a < b ? -1 : 1;
}

/* Whether candidate should serve a new read-only client rather than best. */
static bool is_better_replica(const struct backend *candidate, const struct backend *best,
			      const struct config *cfg)
{
	bool is_candidate_local = is_in_region(candidate, cfg->region);
	bool is_candidate_home = is_in_region(candidate, cfg->primary_region);
	int rtt;

	if (is_candidate_local != is_in_region(best, cfg->region))
		return is_candidate_local;
	rtt = compare_rtt(candidate->rtt_ms, best->rtt_ms);
	if (rtt != 0)
		return rtt < 0;
	/*
	 * The same cost: a replica where the primary is meant to run (primary_region)
	 * replays nearest to its WAL, so its reads are the least stale.
	 */
	if (is_candidate_home != is_in_region(best, cfg->primary_region))
		return is_candidate_home;
	/* A strict comparison keeps the earlier backend on a full tie: position decides last. */
	return candidate->nclients < best->nclients;
}

/* The best replica for reads; is_wary: not a suspect one. */
static struct backend *pick_replica(const struct topology *topo, const struct config *cfg,
				    bool is_wary)
{
	struct backend *best = NULL;

	for (int i = 0; i < topo->count; i++) {
		struct backend *b = topo->backends[i];

		if (is_ro_candidate(b, cfg) && !(is_wary && backend_is_suspect(b)) &&
		    (best == NULL || is_better_replica(b, best, cfg)))
			best = b;
	}
	return best;
}

static bool meets_floor(const struct backend *b, const struct read_floor *floor)
{
	return b->lsn >= floor->min_lsn &&
	       (floor->max_staleness_ms == 0 ||
		(b->caught_up_ms > 0 &&
		 floor->now_ms - b->caught_up_ms <= floor->max_staleness_ms));
}

struct backend *router_pick_caught_up(const struct topology *topo, const struct config *cfg,
				      const struct read_floor *floor, const struct backend *current,
				      bool *is_behind)
{
	struct backend *best = NULL;

	*is_behind = false;
	for (int i = 0; i < topo->count; i++) {
		struct backend *b = topo->backends[i];

		if (!is_ro_candidate(b, cfg) || backend_is_suspect(b))
			continue;
		if (!meets_floor(b, floor)) {
			*is_behind = true;
			continue;
		}
		if (b == current) {
			*is_behind = false;
			return b;
		}
		if (best == NULL || is_better_replica(b, best, cfg))
			best = b;
	}
	if (best != NULL)
		*is_behind = false;
	return best;
}

/* The primary, unless is_wary and it is suspect. */
static struct backend *pick_primary(const struct topology *topo, bool is_wary)
{
	struct backend *primary = topology_primary(topo);

	return primary != NULL && is_wary && backend_is_suspect(primary) ? NULL : primary;
}

/*
 * is_wary for a client about to be given a server: a suspect backend may be
 * hung, and a request sent there would hang with it (and a write's outcome be
 * unknown when it is marked down), so the client waits for the verdict
 * instead. Not for one already there (router_should_move): a single failed
 * probe must not move every session away, nor end those that cannot move.
 */
static struct backend *pick(const struct topology *topo, const struct config *cfg,
			    enum target target, bool is_wary)
{
	struct backend *replica;

	if (target == TARGET_RW)
		return pick_primary(topo, is_wary);
	replica = pick_replica(topo, cfg, is_wary);
	if (replica != NULL)
		return replica;
	return cfg->ro_fallback == RO_FALLBACK_PRIMARY ? pick_primary(topo, is_wary) : NULL;
}

struct backend *router_pick(const struct topology *topo, const struct config *cfg,
			    enum target target)
{
	return pick(topo, cfg, target, true);
}

static bool is_sleeping(const struct backend *b)
{
	return (b->state == BACKEND_ASLEEP || b->state == BACKEND_WAKING) && !b->is_fenced;
}

/*
 * The sleeping backend of role to wake: one that last probed as role first,
 * else one never seen up (its role is unknown until it answers). Among those,
 * a replica in our region first, then file order.
 */
static struct backend *pick_sleeping(const struct topology *topo, const struct config *cfg,
				     enum backend_role role)
{
	struct backend *best = NULL;

	for (int i = 0; i < topo->count; i++) {
		struct backend *b = topo->backends[i];

		if (!is_sleeping(b) || (b->role != role && b->role != ROLE_UNKNOWN))
			continue;
		if (best == NULL || (b->role == role && best->role != role) ||
		    (b->role == best->role && role == ROLE_REPLICA &&
		     is_in_region(b, cfg->region) && !is_in_region(best, cfg->region)))
			best = b;
	}
	return best;
}

struct backend *router_pick_wakeable(const struct topology *topo, const struct config *cfg,
				     enum target target)
{
	struct backend *replica;

	if (target == TARGET_RW)
		return topology_primary(topo) == NULL ? pick_sleeping(topo, cfg, ROLE_PRIMARY)
						      : NULL;
	if (cfg->wake_for_reads == WAKE_FOR_READS_NEVER ||
	    (cfg->wake_for_reads == WAKE_FOR_READS_NEAREST &&
	     pick_replica(topo, cfg, false) != NULL))
		return NULL;
	replica = pick_sleeping(topo, cfg, ROLE_REPLICA);
	if (replica != NULL)
		return replica;
	/* No replica to wake: reads need the primary they fall back to. */
	return cfg->ro_fallback == RO_FALLBACK_PRIMARY ? router_pick_wakeable(topo, cfg, TARGET_RW)
						       : NULL;
}

bool router_should_move(const struct topology *topo, const struct config *cfg, enum target target,
			const struct backend *b)
{
	/*
	 * A client on a replica that still qualifies stays, even if a nearer one
	 * appeared: a move costs a new server connection, and chasing RTT noise
	 * would move clients back and forth. Anywhere else (the primary for writes, or the primary
	 * as the read fallback) b is right only while it is what a new client would get: a demoted
	 * or fenced primary, or a fallback after a replica came back, is not.
	 */
	if (b == NULL)
		return true; /* its backend was removed by a reload (link_on_backend_removed) */
	if (target == TARGET_RO && is_ro_candidate(b, cfg))
		return false;
	return pick(topo, cfg, target, false) != b;
}
