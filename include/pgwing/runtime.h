/*
 * The process-wide state every module reads: the loop, the live config, the
 * auth file and the topology. Owned and swapped (on reload) by main.c.
 */
#ifndef PGWING_RUNTIME_H
#define PGWING_RUNTIME_H

#include "pgwing/common.h"

struct event_base;
struct config;
struct auth_file;
struct topology;
struct evdns_base;

struct runtime {
	struct event_base *base;
	struct config *cfg;
	struct auth_file *auth;
	struct topology *topo;
	struct evdns_base *dns;
	bool is_shutting_down;
};

extern struct runtime rt;

/* Re-read the config and auth file; on any error the running config stays. */
void runtime_reload(void);
/* Stop accepting; then stop at once, or once the last client has left. */
void runtime_shutdown(bool wait_for_clients);

#endif
