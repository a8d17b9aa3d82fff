/*
 * The process state: the loop, the live config, the auth file and the
 * topology. Owned and swapped (on reload) by the runtime; each module that
 * reads it is given a const pointer at start (its *_init), so the one writer
 * and every reader are explicit.
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
	int64_t drain_started_ms; /* now_ms() of the SIGTERM that started a drain; 0: none */
};

/*
 * Take cfg (owned from here, freed on failure too), load its auth file and set
 * up TLS; false with err set when either fails.
 */
bool runtime_prepare(struct config *cfg, char *err, size_t errlen);
/* Free what runtime_prepare set up, for a process that will not run. */
void runtime_release(void);
/*
 * Start every module, listen (or, for --takeover, take the running process's
 * sockets), write the pidfile and run the loop until a shutdown; then stop and
 * free everything. Returns the process's exit code.
 */
int runtime_run(bool is_daemon, bool is_takeover);
/* Re-read the config and auth file; on any error the running config stays. */
void runtime_reload(void);
/*
 * Apply rt.cfg's backends (and discovery's) to the topology: every module
 * lets go of each dropped backend, in a stated order, before it is freed;
 * probes follow the new settings; then the topology is reconciled and its
 * change announced.
 */
void runtime_apply_backends(void);
/* Stop accepting; then stop at once, or once the last client has left. */
void runtime_shutdown(bool wait_for_clients);
/*
 * SIGTERM: stop being ready, keep accepting clients for shutdown_grace, close
 * clients as their transactions end, and cancel what still runs at
 * shutdown_timeout. The console stays reachable until the process exits.
 */
void runtime_drain(void);
/* Whether a new client may use a pool: not after a drain's grace. */
bool runtime_is_accepting_clients(void);

#endif
