/*
 * Pools and their wait queue. A client that can't be given a server now (no
 * primary, nothing to read from, a paused database) waits here until that
 * changes or hold_timeout passes: the same queue serves failover and wake-ups.
 * Servers are released at idle points (ReadyForQuery 'I', nothing pending)
 * when the pool is paused, reconnecting, or the backend should no longer
 * serve this client.
 */
#include "pgwing/pool.h"

#include "pgwing/log.h"
#include "pgwing/router.h"
#include "pgwing/runtime.h"
#include "pgwing/server.h"
#include "pgwing/session.h"
#include "pgwing/wake.h"

#include <event2/bufferevent.h>
#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct pool *pools;

/* PAUSE state lives by database name, so pools created while paused are paused too. */
static bool is_all_paused;
static char **paused_dbs;
static size_t npaused_dbs;

struct pool *pool_first(void)
{
	return pools;
}

static bool matches(const struct pool *p, const char *database)
{
	return database == NULL || strcmp(p->database, database) == 0;
}

bool pool_is_paused(const struct pool *p)
{
	if (is_all_paused)
		return true;
	for (size_t i = 0; i < npaused_dbs; i++)
		if (strcmp(paused_dbs[i], p->database) == 0)
			return true;
	return false;
}

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

/* Waiters are retried this often after a connect failed, besides on every topology change. */
#define POOL_RETRY_MS 250

static struct event *retry_timer;

/* See pool_wait. */
#define WAKE_SLACK_MS 1000

static void pool_dequeue(struct client *cl)
{
	struct pool *p = cl->pool;
	int64_t waited = now_ms() - cl->wait_start_ms;

	TAILQ_REMOVE(&p->waiting, cl, wait_link);
	p->nwaiting--;
	stats_note_wait(&p->stats, waited * 1000);
	cl->wait_start_ms = 0;
	event_del(cl->timer);
	if (p->nwaiting == 0 && p->hold_start_ms != 0) {
		log_info("pool %s/%s/%s: hold ended after %" PRId64 " ms", p->database, p->user,
			 target_name(p->target), now_ms() - p->hold_start_ms);
		p->hold_start_ms = 0;
	}
}

static void pool_start_server(struct client *cl, struct backend *b)
{
	cl->state = CL_LOGIN;
	cl->pool->nactive++;
	server_connect(b, cl);
}

/* Why nothing can serve this target: the backends' last errors, for the client's message. */
static void describe_unavailable(char *buf, size_t buflen)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < rt.topo->count && used < buflen; i++) {
		const struct backend *b = rt.topo->backends[i];

		used += (size_t)snprintf(buf + used, buflen - used,
					 "%sbackend %s (%s:%d) is %s%s%s", i == 0 ? "" : "; ",
					 b->name, b->host, b->port, backend_state_name(b->state),
					 b->last_error[0] ? ": " : "", b->last_error);
	}
}

static void hold_timeout_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct client *cl = arg;
	int64_t held = now_ms() - cl->hold_since_ms;
	char detail[512];

	pool_dequeue(cl);
	cl->state = CL_IDLE;
	log_info("client %" PRIu64 ": gave up waiting for a %s server after %" PRId64 " ms", cl->id,
		 target_name(cl->target), held);
	describe_unavailable(detail, sizeof(detail));
	/* A backend can look up to its probes and still fail this client's logins: say so. */
	client_fail(cl, SQLSTATE_CONNECTION_FAILURE, "no %s available after %" PRId64 " s (%s%s%s)",
		    cl->target == TARGET_RW ? "primary" : "server for reads", held / 1000,
		    cl->last_connect_error, cl->last_connect_error[0] ? "; " : "", detail);
}

void pool_fail_wake_waiters(const struct backend *b)
{
	for (struct pool *p = pools; p != NULL; p = p->next) {
		struct client *cl;

		if (p->nwaiting == 0 || router_pick_wakeable(rt.topo, rt.cfg, p->target) != b)
			continue;
		while ((cl = TAILQ_FIRST(&p->waiting)) != NULL) {
			pool_dequeue(cl);
			cl->state = CL_IDLE;
			client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
				    "backend %s did not wake within %.3g s", b->name,
				    (double)rt.cfg->wake_timeout_ms / 1000);
		}
	}
}

static void retry_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	pool_on_topology_change(NULL);
}

/*
 * Queue the client. The hold is counted from when the client first needed a
 * server, so retries after failed connects don't extend it.
 */
static void pool_wait(struct client *cl)
{
	struct pool *p = cl->pool;
	const struct backend *w = router_pick_wakeable(rt.topo, rt.cfg, p->target);
	int64_t deadline = cl->hold_since_ms + rt.cfg->hold_timeout_ms;
	int64_t left;
	struct timeval tv;

	/*
	 * A client waiting for a wake waits as long as the wake may take. The
	 * wake's own deadline comes first and fails it with the reason
	 * (pool_fail_wake_waiters); the slack only keeps the two timers from
	 * racing.
	 */
	if (w != NULL && w->state == BACKEND_WAKING &&
	    w->wake_started_ms + rt.cfg->wake_timeout_ms + WAKE_SLACK_MS > deadline)
		deadline = w->wake_started_ms + rt.cfg->wake_timeout_ms + WAKE_SLACK_MS;
	left = deadline - now_ms();
	if (left < 0)
		left = 0;
	if (p->nwaiting == 0) {
		p->hold_start_ms = now_ms();
		log_info("pool %s/%s/%s: holding clients: %s", p->database, p->user,
			 target_name(p->target),
			 pool_is_paused(p)        ? "paused"
			 : p->target == TARGET_RW ? "no primary available"
						  : "no server available for reads");
	}
	cl->state = CL_WAITING;
	cl->wait_start_ms = now_ms();
	TAILQ_INSERT_TAIL(&p->waiting, cl, wait_link);
	p->nwaiting++;
	stats_note_hold(p);
	/* The login timer is done by now; the same event becomes the hold timer. */
	event_del(cl->timer);
	event_assign(cl->timer, rt.base, -1, 0, hold_timeout_cb, cl);
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	evtimer_add(cl->timer, &tv);
}

void pool_add_client(struct client *cl)
{
	cl->pool = pool_get(cl->params.database, cl->params.user, cl->target);
	cl->pool->nclients++;
	cl->state = CL_IDLE;
}

/*
 * Wake what clients of target need asleep. Also when a replica or the primary
 * fallback serves them meanwhile: wake_for_reads decides (router_pick_wakeable).
 */
static void pool_wake_for(enum target target)
{
	struct backend *w = router_pick_wakeable(rt.topo, rt.cfg, target);

	if (w != NULL)
		wake_backend(w);
}

void pool_request_server(struct client *cl)
{
	struct backend *b = NULL;

	if (cl->hold_since_ms == 0) {
		cl->hold_since_ms = now_ms();
		cl->last_connect_error[0] = '\0';
	}
	if (!pool_is_paused(cl->pool)) {
		pool_wake_for(cl->target);
		b = router_pick(rt.topo, rt.cfg, cl->target);
	}
	if (b != NULL)
		pool_start_server(cl, b);
	else
		pool_wait(cl);
}

void pool_retry_later(struct client *cl)
{
	struct timeval tv = {0, POOL_RETRY_MS * 1000};

	cl->pool->nactive--;
	pool_wait(cl);
	if (retry_timer == NULL)
		retry_timer = evtimer_new(rt.base, retry_cb, NULL);
	if (!evtimer_pending(retry_timer, NULL))
		evtimer_add(retry_timer, &tv);
}

void pool_forget_client(struct client *cl)
{
	if (cl->pool == NULL)
		return;
	if (cl->state == CL_WAITING)
		pool_dequeue(cl);
	else if (cl->state == CL_LOGIN || cl->state == CL_ACTIVE)
		cl->pool->nactive--;
	cl->pool->nclients--;
	cl->pool = NULL;
}

bool pool_should_release(const struct client *cl)
{
	const struct server *sv = cl->server;

	return pool_is_paused(cl->pool) || sv->generation != cl->pool->generation ||
	       router_should_move(rt.topo, rt.cfg, cl->target, sv->backend);
}

/*
 * Serve whoever waits, in arrival order, while the router has somewhere to
 * send them. Only those waiting when the pass began: a connect that fails at
 * once puts its client back at the tail, and must wait for the next pass.
 */
static void pool_serve_waiters(struct pool *p)
{
	struct client *cl;

	for (int n = p->nwaiting; n > 0 && !pool_is_paused(p); n--) {
		struct backend *b;

		cl = TAILQ_FIRST(&p->waiting);
		b = router_pick(rt.topo, rt.cfg, p->target);
		if (cl == NULL || b == NULL)
			break;
		log_debug("client %" PRIu64 ": released after waiting %" PRId64 " ms", cl->id,
			  now_ms() - cl->wait_start_ms);
		pool_dequeue(cl);
		pool_start_server(cl, b);
	}
}

/* Release the servers of idle clients that should not keep them. */
static void pool_release_idle(const char *database)
{
	struct client *cl, *next;

	for (cl = TAILQ_FIRST(client_all()); cl != NULL; cl = next) {
		next = TAILQ_NEXT(cl, all_link);
		if (cl->state == CL_ACTIVE && cl->pool != NULL && matches(cl->pool, database) &&
		    cl->server->tx_status == 'I' && cl->pending_syncs == 0)
			client_server_idle(cl);
	}
}

void pool_close_idle_servers(void)
{
	int64_t oldest_us = now_us() - rt.cfg->server_idle_timeout_ms * 1000;
	struct client *cl, *next;

	if (rt.cfg->server_idle_timeout_ms == 0)
		return;
	for (cl = TAILQ_FIRST(client_all()); cl != NULL; cl = next) {
		next = TAILQ_NEXT(cl, all_link);
		/*
		 * query_start_us moves at every request and every answer: the last
		 * activity. A session that can't move (temp tables, ...) would lose
		 * its state, and one that listens would get a server back at once.
		 */
		if (cl->state == CL_ACTIVE && cl->server->tx_status == 'I' &&
		    cl->pending_syncs == 0 && cl->query_start_us < oldest_us &&
		    (cl->session == NULL || (session_state_unmovable(cl->session) == NULL &&
					     !session_state_is_listening(cl->session)))) {
			log_debug("client %" PRIu64 ": closing its server, idle for %" PRId64 " ms",
				  cl->id, (now_us() - cl->query_start_us) / 1000);
			client_release_server(cl);
		}
	}
}

void pool_on_topology_change(void *arg UNUSED)
{
	for (struct pool *p = pools; p != NULL; p = p->next)
		pool_serve_waiters(p);
	pool_release_idle(NULL);
}

int pool_count_busy(const char *database)
{
	int busy = 0;

	for (struct pool *p = pools; p != NULL; p = p->next)
		if (matches(p, database))
			busy += p->nactive;
	return busy;
}

int pool_pause(const char *database)
{
	if (database == NULL) {
		is_all_paused = true;
	} else {
		struct pool probe = {.database = (char *)database};

		if (!pool_is_paused(&probe)) {
			paused_dbs = xrealloc(paused_dbs, (npaused_dbs + 1) * sizeof(*paused_dbs));
			paused_dbs[npaused_dbs++] = xstrdup(database);
		}
	}
	pool_release_idle(database);
	return pool_count_busy(database);
}

void pool_resume(const char *database)
{
	size_t kept = 0;

	if (database == NULL)
		is_all_paused = false;
	for (size_t i = 0; i < npaused_dbs; i++) {
		if (database == NULL || strcmp(paused_dbs[i], database) == 0)
			free(paused_dbs[i]);
		else
			paused_dbs[kept++] = paused_dbs[i];
	}
	npaused_dbs = kept;
	for (struct pool *p = pools; p != NULL; p = p->next)
		if (matches(p, database))
			pool_serve_waiters(p);
}

void pool_reconnect(const char *database)
{
	for (struct pool *p = pools; p != NULL; p = p->next)
		if (matches(p, database))
			p->generation++;
	pool_release_idle(database);
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
	for (size_t i = 0; i < npaused_dbs; i++)
		free(paused_dbs[i]);
	free(paused_dbs);
	if (retry_timer != NULL) {
		event_free(retry_timer);
		retry_timer = NULL;
	}
	paused_dbs = NULL;
	npaused_dbs = 0;
}
