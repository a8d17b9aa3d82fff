/*
 * Health probes: async libpq on the event loop, one persistent probe connection
 * per backend, reporting role, LSN, lag, timeline and RTT to the topology
 * (topology_note_probe_ok, topology_note_probe_failed), which decides states.
 */
#ifndef PGWING_HEALTH_H
#define PGWING_HEALTH_H

#include "pgwing/config.h"
#include "pgwing/topology.h"

struct event_base;
struct auth_file;

/*
 * Start probing every backend of topo. cfg and af are used until the next
 * health_reconfigure: they must outlive it.
 */
int health_start(struct event_base *base, struct topology *topo, const struct config *cfg,
		 const struct auth_file *af);
/*
 * After the topology took a new config (topology_apply_config, and every
 * dropped backend went through health_drop_backend): starts probes for new
 * backends and reconnects the rest with the new settings. Call it before
 * freeing the old config or auth file.
 */
void health_reconfigure(const struct config *cfg, const struct auth_file *af);
/* b leaves the topology (reload): its probe goes with it. */
void health_drop_backend(const struct backend *b);
/* Probe one backend now (e.g. after a server said 25006 on a "primary"). */
void health_probe_now(const struct backend *b);
/*
 * Whether b still serves as it did: a probe now, on a new connection (within
 * health_timeout, or two if a probe was under way), answers answer(arg,
 * true) when b logs in and answers as the role it had when asked, false when
 * it does not (shutting down, gone, another role). It tells an
 * administrator's kill of one session (pg_terminate_backend: Postgres goes
 * on) from its Postgres going away. False: b has no probe (asked nothing).
 * The answer comes from the loop, never from within this call.
 */
typedef void (*health_answer_fn)(void *arg, bool is_serving);
bool health_ask_serving(const struct backend *b, health_answer_fn answer, void *arg);
/* Whoever asked with arg is gone: its questions are dropped unanswered. */
void health_forget_questions(const void *arg);
/* Probe every backend now (not those asleep or waking: nobody needs them yet). */
void health_probe_all_now(void);
/*
 * A client waits and nothing can serve it: while no primary is known, every
 * backend is probed at health_interval_holding, until hold_timeout after the
 * latest such call (the longest that client may wait).
 */
void health_note_client_held(void);
/*
 * A wake started, or its command finished: probe b now, then after 100 ms,
 * growing by half each time up to health_interval, until it is up.
 */
void health_probe_waking(const struct backend *b);
/*
 * b is unused and may stop (the idle sweep): close its probe and stop
 * probing until a wake. False when a probe is under way (try again later);
 * true: the caller reports b asleep (topology_note_asleep).
 */
bool health_stop_probing(const struct backend *b);
/* Whether b's probe holds a connection to it now (it keeps a sleeping database awake). */
bool health_is_connected(const struct backend *b);
void health_stop(void);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void health_init(const struct runtime *runtime);

#endif
