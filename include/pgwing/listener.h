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
/*
 * After daemonizing, or taking the sockets over: the unix sockets' lock files
 * name this process, not the one that held them before.
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

/* A listening socket as a takeover hands it to a new process. */
struct listener_socket {
	int fd;
	enum target target;
	char unix_path[108]; /* sizeof(sun_path); "" for TCP */
};

/* The listening sockets, to hand over (fds still ours); how many, or -1 if more than max. */
int listener_export(struct listener_socket *out, int max);
/*
 * Listen on the sockets the process before us handed over, instead of
 * binding (the fds are ours from now on, closed on failure). Their lock files
 * still name that process: listener_relock() once it has let go of them.
 */
int listener_adopt(struct event_base *base, const struct config *cfg,
		   const struct listener_socket *socks, int n);
/*
 * A new process listens on our sockets now: stop accepting and close our
 * copies, leaving the socket files and their lock files to it.
 */
void listener_release(void);

#endif
