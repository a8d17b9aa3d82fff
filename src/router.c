/* Minimal routing until health probes land: everything goes to the primary. */
#include "pgwing/router.h"

struct backend *router_pick(const struct topology *topo, const struct config *cfg UNUSED,
			    enum target target UNUSED)
{
	return topology_primary(topo);
}
