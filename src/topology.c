/* Minimal registry until health probes land: the first backend is the primary. */
#include "pgwing/topology.h"

#include <stdlib.h>
#include <string.h>

static struct backend *backend_new(const struct backend_config *bc)
{
	struct backend *b = xcalloc(1, sizeof(*b));

	b->name = xstrdup(bc->name);
	b->host = xstrdup(bc->host);
	b->port = bc->port;
	b->region = xstrdup(bc->region);
	b->rtt_ms = -1;
	b->lag_bytes = -1;
	b->lag_ms = -1;
	return b;
}

struct topology *topology_new(const struct config *cfg)
{
	struct topology *topo = xcalloc(1, sizeof(*topo));

	topo->backends = xcalloc(cfg->nbackends > 0 ? cfg->nbackends : 1, sizeof(struct backend *));
	for (int i = 0; i < cfg->nbackends; i++)
		topo->backends[topo->count++] = backend_new(&cfg->backends[i]);
	if (topo->count > 0) {
		topo->backends[0]->role = ROLE_PRIMARY;
		topo->backends[0]->state = BACKEND_UP;
	}
	return topo;
}

void topology_free(struct topology *topo)
{
	if (topo == NULL)
		return;
	for (int i = 0; i < topo->count; i++) {
		free(topo->backends[i]->name);
		free(topo->backends[i]->host);
		free(topo->backends[i]->region);
		free(topo->backends[i]);
	}
	free(topo->backends);
	free(topo);
}

struct backend *topology_primary(const struct topology *topo)
{
	for (int i = 0; i < topo->count; i++)
		if (topo->backends[i]->role == ROLE_PRIMARY &&
		    topo->backends[i]->state == BACKEND_UP)
			return topo->backends[i];
	return NULL;
}
