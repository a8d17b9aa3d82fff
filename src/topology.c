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

void topology_apply_config(struct topology *topo, const struct config *cfg)
{
	struct backend **old = topo->backends;
	int nold = topo->count;
	int nall = cfg->nbackends + topo->ndiscovered;

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
	for (int j = 0; j < nold; j++) {
		if (old[j] == NULL)
			continue;
		if (topo->on_remove != NULL)
			topo->on_remove(old[j]);
		backend_free(old[j]);
	}
	free(old);
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

	/*
	 * Probes of the primary and of a replica are taken at different moments,
	 * so a replica can look ahead of the primary: that is no lag, not a negative one.
	 */
	for (int i = 0; i < topo->count; i++) {
		struct backend *b = topo->backends[i];

		if (b->role != ROLE_REPLICA)
			b->lag_bytes = b->role == ROLE_PRIMARY ? 0 : -1;
		else if (primary == NULL || b->lsn == 0)
			b->lag_bytes = -1;
		else
			b->lag_bytes = primary->lsn > b->lsn ? (int64_t)(primary->lsn - b->lsn) : 0;
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
