/*
 * The single registry of backends and what the latest probes say about them.
 * Topology is the only writer of a backend's fields: health, wake, the idle sweep
 * and the servers report what they saw (topology_note_*), topology applies the
 * state machine, logs each transition, bumps its epoch and tells its one
 * subscriber (the runtime), which calls each module in turn. The router, the
 * pools and the admin console only read it.
 */
#ifndef PGWING_TOPOLOGY_H
#define PGWING_TOPOLOGY_H

#include "pgwing/common.h"
#include "pgwing/config.h"
#include "pgwing/stats.h"

enum backend_role {
	ROLE_UNKNOWN,
	ROLE_PRIMARY,
	ROLE_REPLICA,
};

enum backend_state {
	BACKEND_UNKNOWN, /* not probed yet */
	BACKEND_UP,
	BACKEND_DOWN,
	BACKEND_ASLEEP,
	BACKEND_WAKING,
};

struct backend {
	char *name;
	char *host;
	int port;
	char *region;
	char *sslmode; /* NULL: libpq's default */

	enum backend_role role;
	enum backend_state state;
	bool is_fenced; /* claims primary on an older timeline: never routed to */
	uint32_t timeline;
	uint64_t lsn;      /* current WAL on a primary, replay LSN on a replica */
	int64_t probed_ms; /* now_ms() of the latest successful probe: when lsn was read */
	/* now_us() when its latest successful probe was sent (the answer's time less the round
	 * trip) */
	int64_t asked_us;
	int64_t returned_us;   /* now_us() when it last came back up from down (0: never) */
	int64_t replay_lag_ms; /* replica: its own replay delay, as its probe says; -1 unknown */
	int64_t caught_up_ms;  /* replica: newest primary LSN sample its lsn covers; 0 none */
	int64_t lag_bytes;     /* replica: behind the primary's latest probed LSN; -1 unknown */
	int64_t lag_ms;        /* replica: staleness bound (topology_reconcile); -1 unknown */
	double rtt_ms;         /* smoothed probe round trip; < 0 unknown */
	int nclients;          /* server connections to it (router's tie-break) */
	int consecutive_failures;
	int consecutive_successes;
	char last_error[256];
	int64_t last_change_ms; /* now_ms() of the last role/state change */

	/* Scale to zero (wake.c). */
	bool can_wake;           /* has wake= configured: unreachable means asleep, not down */
	int64_t wake_started_ms; /* the wake in progress or last started; 0: never woken */
	int64_t last_wake_ms;    /* how long the last successful wake took; -1: none yet */
	int64_t unused_since_ms; /* no server connection to it since; 0: it has some */

	/* Every successful probe's round trip as it was, for the metrics. */
	struct stats_histogram rtt_hist;
	uint64_t rtt_sum_us;
};

/* What one successful probe saw (health's report to topology_note_probe_ok). */
struct backend_observation {
	enum backend_role role;
	uint64_t lsn;      /* current WAL on a primary, replay LSN on a replica; 0 unknown */
	int64_t lag_ms;    /* a replica's own replay delay; -1 unknown */
	uint32_t timeline; /* 0 unknown */
	double rtt_ms;     /* the probe query's round trip */
};

/*
 * What a notification carries besides "something changed": the subscriber
 * acts on it before the general change (a failed wake's waiters get its error
 * rather than another wait).
 */
struct topology_change {
	const struct backend *wake_failed; /* its wake timed out; NULL: none */
	const char *wake_error;            /* that wake's last failure; NULL: unknown */
	/*
	 * A role changed, a timeline moved, a backend came back from down, or the
	 * primary's probe failed: another backend may have changed too (a
	 * promotion, an old primary restarted), so every one is worth a probe now
	 * rather than at its next interval.
	 */
	bool is_suspect;
};

/* Backends a reload took out of the topology, still allocated (topology_free_removed). */
struct backend_list {
	struct backend **items;
	int count;
};

/*
 * The primary's WAL position at a moment: a replica that has replayed up to
 * lsn has every commit the primary had made by at_ms.
 */
struct lsn_mark {
	uint64_t lsn;
	int64_t at_ms;
};

/*
 * Enough marks to cover a replica a few seconds behind at any health_interval;
 * one that falls behind all of them keeps its own caught_up_ms.
 */
#define LSN_HISTORY 64

struct topology {
	struct backend **backends;
	int count;
	/*
	 * The recent distinct LSNs of the primary's probes, oldest first (a ring),
	 * against which replica lag is measured. Kept while that primary is down
	 * (its replicas are behind since its last mark, as it may have committed
	 * since); reset when another backend becomes primary or its LSN goes back.
	 */
	const struct backend *history_of;
	struct lsn_mark history[LSN_HISTORY];
	int history_count;
	int history_first;
	/*
	 * When history_of last began to answer as the one live primary (its
	 * probed_ms then); 0 while it does not. Only marks taken since prove a
	 * replica fresh: the primary may have committed unseen while silent.
	 */
	int64_t heard_since_ms;
	/*
	 * The highest timeline any probe has reported. A primary below it is a
	 * demoted node that came back standalone: it stays fenced even when the
	 * newer primary is down, so it can never take writes again.
	 */
	uint32_t max_timeline;
	bool is_primary_ambiguous; /* two unfenced primaries on one timeline: no writes */
	/*
	 * Counts the changes a routing decision may depend on (topology_reconcile
	 * after probes and reloads, topology_notify): a decision taken at one epoch
	 * holds until it moves. Never 0, so 0 can mean "never decided".
	 */
	uint64_t epoch;
	/*
	 * The one subscriber, called after any change of role or state: the
	 * runtime, which tells each module in an order it states (pools release
	 * or move clients, discovery looks again). Never a chain.
	 */
	void (*on_change)(const struct topology_change *change);
	/* health_rise_count and health_fail_count, as of the last topology_apply_config. */
	int rise_count;
	int fail_count;
	/* What discovery found, applied after the config's own backends (owned here). */
	struct backend_config *discovered;
	int ndiscovered;
};

struct topology *topology_new(const struct config *cfg);
/*
 * Reload: keeps the state of backends whose name and address are unchanged,
 * drops removed ones and treats a changed address as a new backend (its state
 * was about another server). Returns the dropped backends, out of the topology
 * but not freed: the caller has every module let go of each, then calls
 * topology_free_removed. Neither reconciles nor notifies.
 */
struct backend_list topology_apply_config(struct topology *topo, const struct config *cfg);
/* Free what topology_apply_config returned, once nothing points to those backends. */
void topology_free_removed(struct backend_list *removed);
/*
 * Replace the discovered backends (taking list, which must be malloc'ed, and
 * its strings) for the next topology_apply_config: they outlive reloads, and a
 * name the config also has is the config's.
 */
void topology_set_discovered(struct topology *topo, struct backend_config *list, int n);
void topology_free(struct topology *topo);
struct backend *topology_find(const struct topology *topo, const char *name);
/*
 * The backend writes go to, or NULL when there is none, when the choice is
 * ambiguous, or while some backend is unheard (it may be a newer primary).
 */
struct backend *topology_primary(const struct topology *topo);
/* Not probed yet: neither a success nor a failure since it joined the topology. */
bool backend_is_unheard(const struct backend *b);
/*
 * Up, but its latest probe failed: fewer than health_fail_count in a row so
 * far, so the next probes decide whether it is down or was only slow once.
 */
bool backend_is_suspect(const struct backend *b);
/*
 * After probes updated backends: fence primaries on an older timeline, record
 * the primary's LSN and recompute each replica's lag against it: bytes behind
 * the primary's latest probed LSN, and time since the replica last caught up
 * to an LSN the primary reported (0 while its replay covers the newest one
 * taken before its own probe and the primary still answers). Either way a
 * replica that stops receiving WAL while the primary advances is seen
 * lagging, and so is every replica once the primary has been silent that
 * long. Returns true when fencing or the ambiguity changed, which the pools
 * must hear about.
 */
bool topology_reconcile(struct topology *topo);
/* Bump the epoch and tell the subscriber something changed. */
void topology_notify(struct topology *topo);

/*
 * The state machine's inputs. Each applies the transition rules, logs the
 * transition, and notifies when routing may change.
 *
 * A probe succeeded: records what it saw; a backend comes up after
 * health_rise_count successes (a waking one at its first: clients wait for it).
 */
void topology_note_probe_ok(struct topology *topo, struct backend *b,
			    const struct backend_observation *obs);
/*
 * A probe failed for why: a backend goes down after health_fail_count in a
 * row, or asleep when is_unreachable (nothing listens) and it can be woken.
 * A waking one stays waking: its wake_timeout decides.
 */
void topology_note_probe_failed(struct topology *topo, struct backend *b, const char *why,
				bool is_unreachable);
/*
 * A wake starts: an asleep backend goes waking (true); any other is left as it
 * is (false), which is what makes concurrent clients share one wake. Not
 * notified: routing treats waking as asleep, and the caller is a pool in the
 * middle of its own change.
 */
bool topology_note_wake_started(struct topology *topo, struct backend *b);
/*
 * The wake of b did not end within waited_ms: asleep again; the subscriber
 * hears why (NULL: unknown) with the change.
 */
void topology_note_wake_timed_out(struct topology *topo, struct backend *b, int64_t waited_ms,
				  const char *why);
/* b stopped being probed (the idle sweep found it unused, see why): asleep. */
void topology_note_asleep(struct topology *topo, struct backend *b, const char *why);
/* A server connection to b opens or closes. */
void topology_note_server_opened(struct backend *b);
void topology_note_server_closed(struct backend *b);
/*
 * How long b has had no server connection as of now (0 from this first
 * sweep that sees it so); -1 while it has some.
 */
int64_t topology_note_unused(struct backend *b, int64_t now);

const char *backend_role_name(enum backend_role role);
const char *backend_state_name(enum backend_state state);

#endif
