/*
 * The registry of backends and their state machine. Nothing here observes a
 * backend: roles, LSNs and RTTs come only from health probes, wakes from
 * wake.c, idleness from the idle sweep. What topology adds is the rules: when a
 * backend is up, down, asleep or waking (the only place that changes it, and
 * logs it), and the view across backends: which primary wins when two claim
 * the role, and how far each replica is behind it.
 */
#include "pgwing/topology.h"
#include "pgwing/log.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Weight of the newest RTT sample: smooths jitter, still follows a real change within ~5 probes. */
#define RTT_ALPHA 0.3

static bool str_equal_or_both_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static struct backend *backend_new(const struct backend_config *bc)
{
	struct backend *b = xcalloc(1, sizeof(*b));

	b->name = xstrdup(bc->name);
	b->host = xstrdup(bc->host);
	b->port = bc->port;
	b->region = xstrdup(bc->region);
	b->sslmode = bc->sslmode != NULL ? xstrdup(bc->sslmode) : NULL;
	b->role = ROLE_UNKNOWN;
	b->state = BACKEND_UNKNOWN;
	b->replay_lag_ms = -1;
	b->lag_bytes = -1;
	b->lag_ms = -1;
	b->rtt_ms = -1;
	b->last_change_ms = now_ms();
	b->last_wake_ms = -1;
	b->unused_since_ms = now_ms();
	return b;
}

static void backend_free(struct backend *b)
{
	free(b->name);
	free(b->host);
	free(b->region);
	free(b->sslmode);
	free(b);
}

/* Whether b is still the server bc describes: same name, host, port and sslmode. */
static bool backend_matches_config(const struct backend *b, const struct backend_config *bc)
{
	return strcmp(b->name, bc->name) == 0 && strcmp(b->host, bc->host) == 0 &&
	       b->port == bc->port && str_equal_or_both_null(b->sslmode, bc->sslmode);
}

struct topology *topology_new(const struct config *cfg)
{
	struct topology *topo = xcalloc(1, sizeof(*topo));

	topo->epoch = 1;

	/* A new topology has nothing to drop. */
	topology_apply_config(topo, cfg);
	return topo;
}

void topology_set_discovered(struct topology *topo, struct backend_config *list, int n)
{
	for (int i = 0; i < topo->ndiscovered; i++)
		config_clear_backend(&topo->discovered[i]);
	free(topo->discovered);
	topo->discovered = list;
	topo->ndiscovered = n;
}

static bool is_config_backend(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nbackends; i++)
		if (strcmp(cfg->backends[i].name, name) == 0)
			return true;
	return false;
}

/* Forget the primary's LSN history: it now belongs to primary (NULL: to nobody yet). */
static void topology_reset_history(struct topology *topo, const struct backend *primary)
{
	topo->history_of = primary;
	topo->history_count = 0;
	topo->history_first = 0;
}

static struct lsn_mark *history_at(struct topology *topo, int i)
{
	return &topo->history[(topo->history_first + i) % LSN_HISTORY];
}

/*
 * Record the primary's latest probe. An unchanged LSN only moves its mark's
 * time forward (the primary still had made no more commits then), so the ring
 * holds distinct positions and covers longer when writes are rare.
 */
static void topology_note_primary_lsn(struct topology *topo, const struct backend *primary)
{
	struct lsn_mark *newest;

	if (primary == NULL || primary->lsn == 0)
		return;
	newest = topo->history_count > 0 ? history_at(topo, topo->history_count - 1) : NULL;
	/* A new primary, or one whose WAL went back (restored, rewound): old marks mean nothing. */
	if (primary != topo->history_of || (newest != NULL && primary->lsn < newest->lsn)) {
		topology_reset_history(topo, primary);
		newest = NULL;
	}
	if (newest != NULL && newest->lsn == primary->lsn) {
		if (primary->probed_ms > newest->at_ms)
			newest->at_ms = primary->probed_ms;
		return;
	}
	if (topo->history_count == LSN_HISTORY) {
		topo->history_first = (topo->history_first + 1) % LSN_HISTORY;
		topo->history_count--;
	}
	newest = history_at(topo, topo->history_count);
	newest->lsn = primary->lsn;
	newest->at_ms = primary->probed_ms;
	topo->history_count++;
}

/*
 * b's lag against the primary's history. A replica whose replay covers the
 * newest mark taken before its own probe is caught up (0). Otherwise it has
 * been behind since the newest mark it covers: it may lack any commit made
 * since, so now - caught_up_ms bounds how stale its reads are. A replica that
 * covers no mark and never did is unknown (-1). Its own replay delay (from its
 * probe) counts too: a lag is the worse of what either shows.
 *
 * A replica streaming on an older timeline than the newest follows a primary
 * that was demoted or left running after a promotion: its LSNs are on another
 * history, and may pass the new primary's without holding any of its commits.
 * It covers no mark: it falls behind from its last catch-up.
 *
 * Covering a mark proves freshness only while the primary answers and the
 * mark was taken since it last did (heard_since_ms): one that is down or
 * failing its probes may have committed since its last mark what no replica
 * received, so then even a replica that covers every mark is behind since that
 * mark's time, and still is when the primary is back, until it covers a new one.
 */
static void replica_update_lag(struct topology *topo, struct backend *b, int64_t now)
{
	const struct lsn_mark *seen = NULL; /* the newest mark at or before b's probe */
	const struct lsn_mark *newest;
	bool is_diverged = b->timeline != 0 && b->timeline < topo->max_timeline;
	int64_t lag_ms;

	if (b->lsn == 0 || topo->history_count == 0) {
		b->lag_bytes = -1;
		b->lag_ms = b->replay_lag_ms;
		return;
	}
	for (int i = 0; i < topo->history_count && !is_diverged; i++) {
		const struct lsn_mark *m = history_at(topo, i);

		if (m->lsn <= b->lsn && m->at_ms > b->caught_up_ms)
			b->caught_up_ms = m->at_ms;
		if (m->at_ms <= b->probed_ms)
			seen = m;
	}
	newest = history_at(topo, topo->history_count - 1);
	/*
	 * Probes of the primary and of a replica are taken at different moments,
	 * so a replica can look ahead of the primary: that is no lag, not a negative one.
	 */
	if (is_diverged)
		b->lag_bytes = -1;
	else
		b->lag_bytes = newest->lsn > b->lsn ? (int64_t)(newest->lsn - b->lsn) : 0;
	if (seen != NULL && b->lsn >= seen->lsn && topo->heard_since_ms != 0 &&
	    seen->at_ms >= topo->heard_since_ms)
		lag_ms = 0;
	else if (b->caught_up_ms > 0)
		lag_ms = now > b->caught_up_ms ? now - b->caught_up_ms : 0;
	else
		lag_ms = -1;
	b->lag_ms = lag_ms < 0 || lag_ms >= b->replay_lag_ms ? lag_ms : b->replay_lag_ms;
}

/*
 * Whether the primary the LSN history belongs to still answers as the one
 * live primary: not down, not failing its probes, not demoted, not one of
 * several. An asleep or waking one counts as heard: it was stopped (a clean
 * stop sends its WAL to its streaming replicas first), or pgwing stopped
 * probing it because no client needs it; holding reads back then would wake
 * a primary that scale to zero put to sleep for read-only traffic.
 */
static bool is_primary_heard(const struct topology *topo, const struct backend *primary)
{
	const struct backend *b = topo->history_of;

	if (b != NULL && (b->state == BACKEND_ASLEEP || b->state == BACKEND_WAKING))
		return true;
	return b != NULL && b == primary && !backend_is_suspect(b);
}

/* Start or end the stretch of time the history's primary answers in (heard_since_ms). */
static void topology_note_heard(struct topology *topo, const struct backend *primary)
{
	if (!is_primary_heard(topo, primary))
		topo->heard_since_ms = 0;
	else if (topo->heard_since_ms == 0)
		topo->heard_since_ms = topo->history_of->probed_ms;
}

struct backend_list topology_apply_config(struct topology *topo, const struct config *cfg)
{
	struct backend **old = topo->backends;
	int nold = topo->count;
	int nall = cfg->nbackends + topo->ndiscovered;
	struct backend_list removed = {.items = NULL, .count = 0};

	topo->rise_count = cfg->health_rise_count;
	topo->fail_count = cfg->health_fail_count;
	/* The new array follows the file's order: the router breaks ties by position. */
	topo->backends = xcalloc(nall > 0 ? nall : 1, sizeof(struct backend *));
	topo->count = 0;
	for (int i = 0; i < nall; i++) {
		const struct backend_config *bc = i < cfg->nbackends
							  ? &cfg->backends[i]
							  : &topo->discovered[i - cfg->nbackends];
		struct backend *b = NULL;

		if (i >= cfg->nbackends && is_config_backend(cfg, bc->name))
			continue;

		for (int j = 0; j < nold && b == NULL; j++) {
			if (old[j] != NULL && backend_matches_config(old[j], bc)) {
				b = old[j];
				old[j] = NULL; /* kept: not freed below */
			}
		}
		if (b == NULL) {
			b = backend_new(bc);
		} else if (strcmp(b->region, bc->region) != 0) {
			free(b->region);
			b->region = xstrdup(bc->region);
		}
		b->can_wake = bc->wake != NULL;
		topo->backends[topo->count++] = b;
	}
	/* What is left of old was dropped: handed back in its order, for the caller to release. */
	for (int j = 0; j < nold; j++) {
		if (old[j] == NULL)
			continue;
		if (old[j] == topo->history_of)
			topology_reset_history(topo, NULL);
		old[removed.count++] = old[j];
	}
	if (removed.count > 0)
		removed.items = old;
	else
		free(old);
	return removed;
}

void topology_free_removed(struct backend_list *removed)
{
	for (int i = 0; i < removed->count; i++)
		backend_free(removed->items[i]);
	free(removed->items);
	removed->items = NULL;
	removed->count = 0;
}

void topology_free(struct topology *topo)
{
	if (topo == NULL)
		return;
	for (int i = 0; i < topo->count; i++)
		backend_free(topo->backends[i]);
	free(topo->backends);
	topology_set_discovered(topo, NULL, 0);
	free(topo);
}

struct backend *topology_find(const struct topology *topo, const char *name)
{
	for (int i = 0; i < topo->count; i++)
		if (strcmp(topo->backends[i]->name, name) == 0)
			return topo->backends[i];
	return NULL;
}

bool backend_is_unheard(const struct backend *b)
{
	return b->state == BACKEND_UNKNOWN && b->consecutive_successes == 0 &&
	       b->consecutive_failures == 0;
}

bool backend_is_suspect(const struct backend *b)
{
	return b->state == BACKEND_UP && b->consecutive_failures > 0;
}

static bool is_live_primary(const struct backend *b)
{
	return b->state == BACKEND_UP && b->role == ROLE_PRIMARY && !b->is_fenced;
}

/* The one live primary, or NULL when there are none or several (*nlive says how many). */
static struct backend *live_primary(const struct topology *topo, int *nlive)
{
	struct backend *primary = NULL;

	*nlive = 0;
	for (int i = 0; i < topo->count; i++) {
		if (is_live_primary(topo->backends[i])) {
			primary = topo->backends[i];
			(*nlive)++;
		}
	}
	return *nlive == 1 ? primary : NULL;
}

/*
 * A primary back from down may be an old primary restarted while a replica
 * was promoted: it gets writes only once every other reachable backend has
 * answered a probe sent after it came back, which shows a newer timeline if
 * there is one (and fences it). The probes run at once (a return is a
 * suspect change).
 */
static bool is_confirmed(const struct topology *topo, const struct backend *primary)
{
	for (int i = 0; i < topo->count; i++) {
		const struct backend *b = topo->backends[i];

		if (b != primary && b->state == BACKEND_UP && b->asked_us <= primary->returned_us)
			return false;
	}
	return true;
}

struct backend *topology_primary(const struct topology *topo)
{
	struct backend *primary;
	int nlive;

	/*
	 * A backend not heard from yet (at startup, or just added) may be the
	 * primary on a newer timeline that would fence the one we see: writing
	 * now could land on a demoted node. Its first probe, good or failed,
	 * settles it within health_timeout.
	 */
	for (int i = 0; i < topo->count; i++)
		if (backend_is_unheard(topo->backends[i]))
			return NULL;
	/*
	 * Several live primaries means reconcile could not fence all but one
	 * (equal timelines, or it has not run): writing to either could lose the
	 * other's writes.
	 */
	primary = live_primary(topo, &nlive);
	if (primary != NULL && primary->returned_us != 0 && !is_confirmed(topo, primary))
		return NULL;
	return primary;
}

/* Fence or unfence b; logs every transition, as an error: it means a split brain was averted. */
static bool backend_set_fenced(struct backend *b, bool is_fenced, uint32_t max_timeline)
{
	if (b->is_fenced == is_fenced)
		return false;
	b->is_fenced = is_fenced;
	b->last_change_ms = now_ms();
	if (is_fenced)
		log_error("backend %s: FENCED: claims primary on timeline %u, "
			  "but timeline %u exists; it gets no traffic",
			  b->name, b->timeline, max_timeline);
	else
		log_error("backend %s: unfenced (%s, timeline %u)", b->name,
			  backend_role_name(b->role), b->timeline);
	return true;
}

bool topology_reconcile(struct topology *topo)
{
	bool is_changed = false;
	bool is_ambiguous;
	struct backend *primary;
	int nlive;

	topo->epoch++; /* the probes that led here changed lags and maybe more */
	for (int i = 0; i < topo->count; i++)
		if (topo->backends[i]->timeline > topo->max_timeline)
			topo->max_timeline = topo->backends[i]->timeline;

	/*
	 * Fencing ignores state: a down primary on an old timeline must still be
	 * fenced the moment it comes back up, before any write reaches it.
	 */
	for (int i = 0; i < topo->count; i++) {
		struct backend *b = topo->backends[i];
		bool is_fenced = b->role == ROLE_PRIMARY && b->timeline < topo->max_timeline;

		is_changed |= backend_set_fenced(b, is_fenced, topo->max_timeline);
	}

	primary = live_primary(topo, &nlive);
	is_ambiguous = nlive > 1;
	if (is_ambiguous != topo->is_primary_ambiguous) {
		topo->is_primary_ambiguous = is_ambiguous;
		is_changed = true;
		if (is_ambiguous)
			log_error("several backends claim primary on timeline %u: "
				  "no writes go anywhere until only one does",
				  topo->max_timeline);
		else
			log_error("only one primary on timeline %u again: writes resume",
				  topo->max_timeline);
	}

	topology_note_primary_lsn(topo, primary);
	topology_note_heard(topo, primary);
	for (int i = 0; i < topo->count; i++) {
		struct backend *b = topo->backends[i];

		if (b->role == ROLE_REPLICA) {
			replica_update_lag(topo, b, now_ms());
		} else {
			b->lag_bytes = b->role == ROLE_PRIMARY ? 0 : -1;
			b->lag_ms = b->role == ROLE_PRIMARY ? 0 : -1;
		}
	}
	return is_changed;
}

/* Bump the epoch and tell the subscriber, with what change says besides. */
static void topology_announce(struct topology *topo, const struct topology_change *change)
{
	topo->epoch++;
	if (topo->on_change != NULL)
		topo->on_change(change);
}

void topology_notify(struct topology *topo)
{
	static const struct topology_change nothing_more;

	topology_announce(topo, &nothing_more);
}

/* Every change of state goes through here: when it happened is what SHOW BACKENDS tells. */
static void backend_set_state(struct backend *b, enum backend_state state)
{
	b->state = state;
	b->last_change_ms = now_ms();
}

/*
 * A waking backend answered: the wake is over. Its idle time starts now, not
 * before it slept, or the next sweep would put it back to sleep before an
 * auth_query lookup (which retries, unlike pool waiters, who are told at
 * once) gets to it.
 */
static void backend_note_woken(struct backend *b)
{
	b->last_wake_ms = now_ms() - b->wake_started_ms;
	b->unused_since_ms = 0;
	log_info("backend %s: woke up in %" PRId64 " ms", b->name, b->last_wake_ms);
}

void topology_note_probe_ok(struct topology *topo, struct backend *b,
			    const struct backend_observation *obs)
{
	/* A first answer can unblock writes (see topology_primary) or fence a primary. */
	bool is_changed = backend_is_unheard(b);
	bool was_suspect = backend_is_suspect(b);
	bool was_writable = topology_primary(topo) != NULL;
	bool is_suspect =
		(b->timeline != 0 && obs->timeline != b->timeline) || b->state == BACKEND_DOWN;

	if (was_suspect)
		log_info("backend %s: answers again after %d failed probe%s", b->name,
			 b->consecutive_failures, b->consecutive_failures == 1 ? "" : "s");
	b->consecutive_failures = 0;
	if (b->consecutive_successes < INT_MAX)
		b->consecutive_successes++;
	b->rtt_ms =
		b->rtt_ms < 0 ? obs->rtt_ms : RTT_ALPHA * obs->rtt_ms + (1 - RTT_ALPHA) * b->rtt_ms;
	stats_observe(&b->rtt_hist, (int64_t)(obs->rtt_ms * 1000));
	b->rtt_sum_us += (uint64_t)(obs->rtt_ms * 1000);
	b->lsn = obs->lsn;
	b->probed_ms = now_ms();
	b->asked_us = now_us() - (int64_t)(obs->rtt_ms * 1000);
	b->replay_lag_ms = obs->lag_ms;
	b->timeline = obs->timeline;

	if (b->role != obs->role) {
		/* Routing ignores backends not up: their first role is told when they come up. */
		if (b->state == BACKEND_UP) {
			log_warn("backend %s: %s -> %s (timeline %" PRIu32 ")", b->name,
				 backend_role_name(b->role), backend_role_name(obs->role),
				 obs->timeline);
			is_changed = true;
			is_suspect = true;
		}
		b->role = obs->role;
		b->last_change_ms = now_ms();
	}
	/*
	 * A waking backend that accepts a login is up at once: rise counting
	 * guards against flapping, and clients are waiting for this very answer.
	 */
	if (b->state == BACKEND_WAKING)
		backend_note_woken(b);
	if (b->state != BACKEND_UP &&
	    (b->state == BACKEND_WAKING || b->consecutive_successes >= topo->rise_count)) {
		log_info("backend %s: %s -> up (%s, timeline %" PRIu32 ")", b->name,
			 backend_state_name(b->state), backend_role_name(b->role), b->timeline);
		if (b->state == BACKEND_DOWN)
			b->returned_us = now_us();
		backend_set_state(b, BACKEND_UP);
		b->last_error[0] = '\0';
		is_changed = true;
	}
	/*
	 * Clients may wait for this very answer: the verdict on a suspect backend
	 * (router_pick), or the last probe a returned primary waited for.
	 */
	if (was_suspect || (!was_writable && topology_primary(topo) != NULL))
		is_changed = true;
	if (topology_reconcile(topo) || is_changed || is_suspect) {
		const struct topology_change change = {.is_suspect = is_suspect};

		topology_announce(topo, &change);
	}
}

void topology_note_probe_failed(struct topology *topo, struct backend *b, const char *why,
				bool is_unreachable)
{
	/* A first answer, even a failure, can unblock writes (see topology_primary). */
	bool was_unheard = backend_is_unheard(b);
	/* A backend we can start is asleep when nothing listens, not down. */
	enum backend_state failed = b->can_wake && is_unreachable ? BACKEND_ASLEEP : BACKEND_DOWN;
	const struct topology_change change = {
		.is_suspect = b->role == ROLE_PRIMARY && b->state == BACKEND_UP &&
			      b->consecutive_failures == 0,
	};

	snprintf(b->last_error, sizeof(b->last_error), "%s", why);
	b->consecutive_successes = 0;
	if (b->consecutive_failures < INT_MAX)
		b->consecutive_failures++;
	if (b->state == BACKEND_WAKING) {
		/* Expected until it is started; wake_timeout decides when to give up. */
		log_debug("backend %s: not awake yet: %s", b->name, b->last_error);
		return;
	}
	if (b->state == failed)
		return; /* already said; last_error keeps the latest reason */
	/* From down to asleep or back, the failures were already counted. */
	if (b->state != BACKEND_DOWN && b->state != BACKEND_ASLEEP &&
	    b->consecutive_failures < topo->fail_count) {
		log_warn("backend %s: probe failed (%d of %d): %s", b->name,
			 b->consecutive_failures, topo->fail_count, b->last_error);
		if (was_unheard || change.is_suspect)
			topology_announce(topo, &change);
		return;
	}
	log_warn("backend %s: %s -> %s: %s", b->name, backend_state_name(b->state),
		 backend_state_name(failed), b->last_error);
	backend_set_state(b, failed);
	/* A backend that comes back may be somewhere else on the network: measure afresh. */
	b->rtt_ms = -1;
	topology_reconcile(topo);
	topology_announce(topo, &change);
}

bool topology_note_wake_started(struct topology *topo UNUSED, struct backend *b)
{
	if (b->state != BACKEND_ASLEEP)
		return false;
	log_info("backend %s: asleep -> waking", b->name);
	backend_set_state(b, BACKEND_WAKING);
	b->wake_started_ms = b->last_change_ms;
	return true;
}

void topology_note_wake_timed_out(struct topology *topo, struct backend *b, int64_t waited_ms,
				  const char *why)
{
	const struct topology_change change = {.wake_failed = b, .wake_error = why};

	log_warn("backend %s: did not wake within %" PRId64 " ms: asleep again", b->name,
		 waited_ms);
	backend_set_state(b, BACKEND_ASLEEP);
	topology_announce(topo, &change);
}

void topology_note_asleep(struct topology *topo, struct backend *b, const char *why)
{
	log_info("backend %s: %s -> asleep: %s", b->name, backend_state_name(b->state), why);
	backend_set_state(b, BACKEND_ASLEEP);
	topology_notify(topo);
}

void topology_note_server_opened(struct backend *b)
{
	b->nclients++;
}

void topology_note_server_closed(struct backend *b)
{
	b->nclients--;
}

int64_t topology_note_unused(struct backend *b, int64_t now)
{
	if (b->nclients > 0) {
		b->unused_since_ms = 0;
		return -1;
	}
	if (b->unused_since_ms == 0)
		b->unused_since_ms = now;
	return now - b->unused_since_ms;
}

const char *backend_role_name(enum backend_role role)
{
	switch (role) {
	case ROLE_PRIMARY:
		return "primary";
	case ROLE_REPLICA:
		return "replica";
	case ROLE_UNKNOWN:
		break;
	}
	return "unknown";
}

const char *backend_state_name(enum backend_state state)
{
	switch (state) {
	case BACKEND_UP:
		return "up";
	case BACKEND_DOWN:
		return "down";
	case BACKEND_ASLEEP:
		return "asleep";
	case BACKEND_WAKING:
		return "waking";
	case BACKEND_UNKNOWN:
		break;
	}
	return "unknown";
}
