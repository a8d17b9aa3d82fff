/*
 * Listening sockets: TCP (v4/v6; SO_REUSEPORT only with so_reuseport) and
 * unix (with a lock file each), one set per port; the port decides a client's
 * target.
 */
#ifndef PGWING_LISTENER_H
#define PGWING_LISTENER_H

#include "pgwing/config.h"

struct event_base;

/*
 * After running out of file descriptors, accepting is retried this much later,
 * and while descriptors stay scarce one client is accepted per retry: each
 * retry costs one accept() call, and a client waits at most this long in the
 * backlog after a descriptor frees up.
 */
#define LISTENER_RETRY_MS 100

/* Fails (and logs why) when a port or a unix socket is held by another process. */
int listener_start(struct event_base *base, const struct config *cfg);
/* After daemonizing: the unix sockets' lock files name the new pid, not the parent's that exited.
 */
void listener_relock(void);
/* Stop accepting (shutdown, or running out of fds) and start again. */
void listener_pause(void);
void listener_resume(void);
/*
 * A server connect failed with EMFILE/ENFILE: accepting waits, then takes one
 * client at a time for a while, so descriptors that free up go to servers first.
 */
void listener_note_fd_shortage(int err);
/*
 * An accept() failed (the error in EVUTIL_SOCKET_ERROR()), on any listening
 * socket of the process, pgwing's own or another module's. True when the
 * caller must stop accepting and try again LISTENER_RETRY_MS later: the
 * pending connection keeps the socket readable, so accepting on would spin.
 * Running out of descriptors is one warning per episode, whoever sees it.
 */
bool listener_note_accept_error(void);
void listener_stop(void);

#endif
