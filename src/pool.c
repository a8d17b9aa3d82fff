/*
 * Pools and their wait queue. A client that can't be given a server now (no
 * primary, nothing to read from) waits here until the topology changes or
 * hold_timeout passes: the same queue later serves failover and wake-ups.
 */
#include "pgwing/pool.h"

#include "pgwing/log.h"
#include "pgwing/router.h"
#include "pgwing/runtime.h"
#include "pgwing/server.h"

#include <event2/bufferevent.h>
#include <event2/event.h>

#include <stdlib.h>
#include <string.h>

static struct pool *pools;

static struct pool *pool_get(const char *database, const char *user, enum target target)
{
	struct pool *p;

	for (p = pools; p != NULL; p = p->next)
		if (p->target == target && strcmp(p->database, database) == 0 &&
		    strcmp(p->user, user) == 0)
			return p;
	p = xcalloc(1, sizeof(*p));
	p->database = xstrdup(database);
	p->user = xstrdup(user);
	p->target = target;
	TAILQ_INIT(&p->waiting);
	p->next = pools;
	pools = p;
	return p;
}

static void pool_dequeue(struct client *cl)
{
	if (cl->wait_start_ms == 0)
		return;
	TAILQ_REMOVE(&cl->pool->waiting, cl, wait_link);
	cl->pool->nwaiting--;
	cl->wait_start_ms = 0;
	event_del(cl->timer);
}

static void pool_start_server(struct client *cl, struct backend *b)
{
	cl->state = CL_LOGIN;
	cl->pool->nactive++;
	server_connect(b, cl);
}

static void hold_timeout_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct client *cl = arg;
	int64_t waited = now_ms() - cl->wait_start_ms;

	pool_dequeue(cl);
	log_info("client %" PRIu64 ": gave up waiting for a %s server after %" PRId64 " ms", cl->id,
		 target_name(cl->target), waited);
	if (cl->target == TARGET_RW)
		client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
			    "no primary available after %" PRId64 " s", waited / 1000);
	else
		client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
			    "no server available for reads after %" PRId64 " s", waited / 1000);
}

void pool_request_server(struct client *cl)
{
	struct backend *b;
	struct timeval tv;

	cl->pool = pool_get(cl->params.database, cl->params.user, cl->target);
	b = router_pick(rt.topo, rt.cfg, cl->target);
	if (b != NULL) {
		pool_start_server(cl, b);
		return;
	}
	log_info("client %" PRIu64 ": no %s server available, waiting up to %" PRId64 " ms", cl->id,
		 target_name(cl->target), rt.cfg->hold_timeout_ms);
	cl->wait_start_ms = now_ms();
	TAILQ_INSERT_TAIL(&cl->pool->waiting, cl, wait_link);
	cl->pool->nwaiting++;
	/* The login timer is done by now; the same event becomes the hold timer. */
	event_del(cl->timer);
	event_assign(cl->timer, rt.base, -1, 0, hold_timeout_cb, cl);
	tv.tv_sec = rt.cfg->hold_timeout_ms / 1000;
	tv.tv_usec = (rt.cfg->hold_timeout_ms % 1000) * 1000;
	evtimer_add(cl->timer, &tv);
}

void pool_forget_client(struct client *cl)
{
	if (cl->pool == NULL)
		return;
	if (cl->wait_start_ms != 0)
		pool_dequeue(cl);
	else
		cl->pool->nactive--;
	cl->pool = NULL;
}

void pool_on_topology_change(void *arg UNUSED)
{
	for (struct pool *p = pools; p != NULL; p = p->next) {
		struct client *cl;

		/* In arrival order: whoever waited longest is served first. */
		while ((cl = TAILQ_FIRST(&p->waiting)) != NULL) {
			struct backend *b = router_pick(rt.topo, rt.cfg, p->target);

			if (b == NULL)
				break;
			log_info("client %" PRIu64 ": released after waiting %" PRId64 " ms",
				 cl->id, now_ms() - cl->wait_start_ms);
			pool_dequeue(cl);
			pool_start_server(cl, b);
		}
	}
}

void pool_free_all(void)
{
	while (pools != NULL) {
		struct pool *p = pools;

		pools = p->next;
		free(p->database);
		free(p->user);
		free(p);
	}
}
