/*
 * Discovery: the backends of the discover= lines of [backends], looked up in
 * DNS on the loop (evdns for addresses, one UDP query for Fly's TXT machine
 * lists) every discovery_interval and at once when a backend goes down. What
 * it finds goes to topology_set_discovered and is applied as a reload applies
 * [backends]; a failed lookup keeps the last set it found.
 */
#ifndef PGWING_DISCOVERY_H
#define PGWING_DISCOVERY_H

#include "pgwing/config.h"
#include "pgwing/topology.h"

struct event_base;
struct evdns_base;

/* The resolver every module uses: dns_nameserver when set, else the system's. NULL: none. */
struct evdns_base *discovery_new_resolver(struct event_base *base, const struct config *cfg);

/*
 * Start looking up cfg's discover= lines (nothing to do without any).
 * apply() is called after the discovered backends of topo changed, to apply
 * them as a reload does. cfg is used until the next discovery_reconfigure.
 */
void discovery_start(struct event_base *base, struct evdns_base *dns, struct topology *topo,
		     const struct config *cfg, void (*apply)(void));
/* After a reload: the discover= lines may have changed; look them up again now. */
void discovery_reconfigure(const struct config *cfg);
/* The topology changed: when another backend went down, look again at once. */
void discovery_note_topology_change(void);
void discovery_stop(void);

#endif
