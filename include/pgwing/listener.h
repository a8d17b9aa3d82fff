/*
 * Listening sockets: TCP (v4/v6; SO_REUSEPORT only with so_reuseport) and
 * unix (with a lock file each), one set per port; the port decides a client's
 * target.
 */
#ifndef PGWING_LISTENER_H
#define PGWING_LISTENER_H

#include "pgwing/config.h"

struct event_base;

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
void listener_stop(void);

#endif
