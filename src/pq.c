/*
 * Async libpq on the event loop: see pq.h. libpq is only ever called here in
 * its non-blocking forms; what a connection waits for is its caller's state.
 */
#include "pgwing/pq.h"

#include <netinet/in.h>

void pq_watch_init(struct pq_watch *w)
{
	w->io = NULL;
	w->fd = -1;
	w->what = 0;
}

bool pq_watch_arm(struct pq_watch *w, struct event_base *base, PGconn *conn, short what,
		  event_callback_fn cb, void *arg)
{
	evutil_socket_t fd = PQsocket(conn);

	if (fd < 0)
		return false;
	/* libpq opens a new socket when it tries the next address or retries without TLS. */
	if (w->io != NULL && (w->fd != fd || w->what != what))
		pq_watch_clear(w);
	if (w->io == NULL) {
		w->io = event_new(base, fd, what, cb, arg);
		if (w->io == NULL)
			return false;
		w->fd = fd;
		w->what = what;
	}
	return event_add(w->io, NULL) == 0;
}

void pq_watch_clear(struct pq_watch *w)
{
	if (w->io != NULL)
		event_free(w->io);
	pq_watch_init(w);
}

void pq_copy_one_line(char *dst, size_t dstlen, const char *src)
{
	size_t n = 0;
	bool is_space_pending = false;

	for (; *src != '\0' && n + 1 < dstlen; src++) {
		if (*src == ' ' || *src == '\n' || *src == '\t' || *src == '\r') {
			is_space_pending = n > 0;
			continue;
		}
		/* No room for the blank and a character after it: end at the word before. */
		if (is_space_pending) {
			if (n + 2 >= dstlen)
				break;
			dst[n++] = ' ';
		}
		is_space_pending = false;
		dst[n++] = *src;
	}
	dst[n] = '\0';
}

bool pq_is_literal_host(const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return host[0] == '/' || host[0] == '@' || evutil_inet_pton(AF_INET, host, addr) == 1 ||
	       evutil_inet_pton(AF_INET6, host, addr) == 1;
}
