/*
 * Async libpq on the event loop, the parts its users share: waiting for a
 * connection's socket with libevent, and libpq's multi-line messages made one
 * line. Health probes and auth_query lookups drive their connections with it.
 */
#ifndef PGWING_PQ_H
#define PGWING_PQ_H

#include "pgwing/common.h"

#include <event2/event.h>
#include <libpq-fe.h>

/* One-shot event on PQsocket(); re-created when the socket or the wanted events change. */
struct pq_watch {
	struct event *io;
	evutil_socket_t fd;
	short what; /* EV_READ and/or EV_WRITE, as last armed */
};

void pq_watch_init(struct pq_watch *w);
/* Wait for what on conn's current socket; cb(fd, what, arg) runs once it is ready. */
bool pq_watch_arm(struct pq_watch *w, struct event_base *base, PGconn *conn, short what,
		  event_callback_fn cb, void *arg);
void pq_watch_clear(struct pq_watch *w);
/*
 * Whether libpq can connect to host without a name lookup (a blocking
 * getaddrinfo()): a socket directory or an address.
 */
bool pq_is_literal_host(const char *host);
/* src (a libpq message: lines, tabs) as one line, blanks collapsed, cut to dstlen. */
void pq_copy_one_line(char *dst, size_t dstlen, const char *src);

#endif
