/*
 * Scale to zero: starting a stopped backend when a client needs it (the
 * backend's wake= command or HTTP request), and telling when it did not wake.
 * Whether it is up is health's and topology's call; wake only starts it,
 * keeps time and reports (topology_note_wake_started, _timed_out).
 */
#ifndef PGWING_WAKE_H
#define PGWING_WAKE_H

#include "pgwing/topology.h"

struct event_base;

/* Reap wake commands (SIGCHLD) from now on. */
int wake_start(struct event_base *base, struct topology *topo);
/* Give up wakes under way; commands still running are left to run, unreaped. */
void wake_stop(void);
/*
 * A client needs b: an asleep backend goes waking, its wake runs once, and
 * health probes it quickly. Anything else (already waking, up, down) is left
 * alone, which is what makes concurrent clients share one wake.
 */
void wake_backend(struct backend *b);
/* The topology changed: a wake whose backend is no longer waking (it came up) is over. */
void wake_note_topology_change(void);
/* b leaves the topology (reload): its wake, if any, goes with it. */
void wake_drop_backend(const struct backend *b);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void wake_init(const struct runtime *runtime);

#endif
