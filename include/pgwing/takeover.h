/*
 * Upgrades without dropping clients: `pgwing --takeover CONFIG` starts a new
 * process that takes the listening sockets and the idle plaintext clients
 * from the running one, over a unix control socket (takeover_socket), the
 * sockets passed with SCM_RIGHTS and each client with its login and session
 * state. Both sides live here.
 *
 * The running (old) process listens on the control socket from its start;
 * only a process of its own user may connect. The new one asks for the
 * listening sockets, listens on them, starts, then says so: only then does
 * the old one stop accepting, hand over every idle client (busy ones at their
 * next idle point, through the link) and drain the rest (TLS clients, pinned
 * sessions, the console) as on SIGTERM, then exit. Until that word, a failure
 * on either side leaves the old process as it was.
 */
#ifndef PGWING_TAKEOVER_H
#define PGWING_TAKEOVER_H

#include "pgwing/common.h"

/*
 * New process: connect to the running one and listen on its sockets in place
 * of listener_start(). -1 (logged) when it fails: the running one goes on.
 */
int takeover_receive_listeners(void);
/*
 * After the start (is_new: we took the sockets over): tell the old process to
 * hand its clients over; then listen for the next takeover ourselves.
 * -1 (logged) when the control socket can't be set up.
 */
int takeover_start(bool is_new);
/* Whether this process gave its sockets to a newer one: the pidfile is that one's now. */
bool takeover_is_handed_over(void);
void takeover_stop(void);

/* The process state this module reads (the loop, the config). */
struct runtime;
void takeover_init(const struct runtime *runtime);

#endif
