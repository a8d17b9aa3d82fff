/*
 * The registry of backends. Nothing here decides a role: roles, states, LSNs
 * and RTTs come only from health probes. What topology adds is the view across
 * backends: which primary wins when two claim the role, and how far each
 * replica is behind it.
 */
#include "pgwing/topology.h"
#include "pgwing/log.h"

#include <stdlib.h>
#include <string.h>

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
 */
static void replica_update_lag(struct topology *topo, struct backend *b, int64_t now)
{
	const struct lsn_mark *seen = NULL; /* the newest mark at or before b's probe */
	const struct lsn_mark *newest;
	int64_t lag_ms;

	if (b->lsn == 0 || topo->history_count == 0) {
		b->lag_bytes = -1;
		b->lag_ms = b->replay_lag_ms;
		return;
	}
	for (int i = 0; i < topo->history_count; i++) {
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
	b->lag_bytes = newest->lsn > b->lsn ? (int64_t)(newest->lsn - b->lsn) : 0;
	if (seen != NULL && b->lsn >= seen->lsn)
		lag_ms = 0;
	else if (b->caught_up_ms > 0)
		lag_ms = now > b->caught_up_ms ? now - b->caught_up_ms : 0;
	else
		lag_ms = -1;
	b->lag_ms = lag_ms < 0 || lag_ms >= b->replay_lag_ms ? lag_ms : b->replay_lag_ms;
}

struct backend_list topology_apply_config(struct topology *topo, const struct config *cfg)
{
	struct backend **old = topo->backends;
	int nold = topo->count;
	int nall = cfg->nbackends + topo->ndiscovered;
	struct backend_list removed = {.items = NULL, .count = 0};

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

struct backend *topology_primary(const struct topology *topo)
{
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
	return live_primary(topo, &nlive);
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

void topology_notify(struct topology *topo)
{
	topo->epoch++;
	if (topo->on_change != NULL)
		topo->on_change(topo->on_change_arg);
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
