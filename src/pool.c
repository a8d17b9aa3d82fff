/*
 * Pools and their wait queue. A client that can't be given a server now (no
 * primary, nothing to read from, a paused database) waits here until that
 * changes or hold_timeout passes: the same queue serves failover and wake-ups.
 * Servers are released at idle points (ReadyForQuery 'I', nothing pending)
 * when the pool is paused, reconnecting, or the backend should no longer
 * serve this client.
 *
 * A server its client gives back clean (idle, nothing half sent) is reset and
 * kept in the pool's idle list; the next client of the pool that needs a
 * server on the same backend, with the same startup parameters, takes it
 * instead of paying for a connect, a login and a Postgres fork. A pooled
 * server goes when it would no longer be routed to (demotion, removal, pause,
 * RECONNECT), after server_idle_timeout (so the backend can sleep) and after
 * server_lifetime.
 */
#include "pgwing/pool.h"

#include "pgwing/log.h"
#include "pgwing/router.h"
#include "pgwing/runtime.h"
#include "pgwing/server.h"
#include "pgwing/session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The process state, given by the runtime at start (pool_init): read, never written. */
static const struct runtime *rt;

void pool_init(const struct runtime *runtime)
{
	rt = runtime;
}

static struct pool *pools;
static const struct pool_ops *ops;

static void pool_unlink_server(struct server *sv);

void pool_set_ops(const struct pool_ops *pool_ops)
{
	ops = pool_ops;
}

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
	TAILQ_INIT(&p->active);
	TAILQ_INIT(&p->idle_clients);
	TAILQ_INIT(&p->idle);
	p->next = pools;
	pools = p;
	return p;
}

/* Waiters are retried this often after a connect failed, besides on every topology change. */
#define POOL_RETRY_MS 250

static struct event *retry_timer;

/* See pool_wait. */
#define WAKE_SLACK_MS 1000

static void hold_timeout_cb(evutil_socket_t fd, short what, void *arg);

/*
 * A hold ends when nobody waits any more and it is not for a retry: a client
 * that leaves the queue to try a server and fails at once (a backend down,
 * no descriptors) comes back every POOL_RETRY_MS, and that is one hold, logged
 * once, not an end and a start four times a second.
 */
static void pool_end_hold(struct pool *p)
{
	if (p->nwaiting == 0 && p->hold_start_ms != 0) {
		log_info("pool %s/%s/%s: hold ended after %" PRId64 " ms", p->database, p->user,
			 target_name(p->target), now_ms() - p->hold_start_ms);
		stats_note_hold_end(p->hold_reason, (now_ms() - p->hold_start_ms) * 1000);
		p->hold_start_ms = 0;
	}
}

/* The list of the pool's clients in state. */
static struct client_list *pool_list_of(struct pool *p, enum client_state state)
{
	switch (state) {
	case CL_WAITING:
		return &p->waiting;
	case CL_LOGIN:
	case CL_ACTIVE:
		return &p->active;
	default:
		return &p->idle_clients;
	}
}

static void pool_count(struct pool *p, enum client_state state, int delta)
{
	if (state == CL_WAITING)
		p->nwaiting += delta;
	else if (state == CL_LOGIN || state == CL_ACTIVE)
		p->nactive += delta;
}

/* is_trying: cl leaves to try a server, and may come back; the hold goes on. */
static void pool_end_wait(struct client *cl, bool is_trying)
{
	struct pool *p = cl->pool;
	int64_t waited = now_ms() - cl->wait_start_ms;

	if (is_trying)
		log_debug("client %" PRIu64 ": released after waiting %" PRId64 " ms", cl->id,
			  waited);
	stats_note_wait(&p->stats, waited * 1000);
	cl->wait_start_ms = 0;
	event_del(cl->timer);
	if (!is_trying)
		pool_end_hold(p);
}

void pool_set_client_state(struct client *cl, enum client_state state)
{
	struct pool *p = cl->pool;
	enum client_state old = cl->state;

	TAILQ_REMOVE(pool_list_of(p, old), cl, pool_link);
	pool_count(p, old, -1);
	cl->state = state;
	TAILQ_INSERT_TAIL(pool_list_of(p, state), cl, pool_link);
	pool_count(p, state, 1);
	if (old == CL_WAITING)
		pool_end_wait(cl, state == CL_LOGIN);
}

void pool_note_served(struct client *cl)
{
	pool_end_hold(cl->pool);
}

/*
 * Whether the router would now take sv's clients elsewhere. Every
 * ReadyForQuery asks, and the answer changes only with the topology: it is
 * worked out again only after the topology's epoch moved.
 */
static bool pool_server_is_misrouted(const struct pool *p, struct server *sv)
{
	if (sv->routed_epoch == rt->topo->epoch)
		return false;
	if (router_should_move(rt->topo, rt->cfg, p->target, sv->backend))
		return true;
	sv->routed_epoch = rt->topo->epoch;
	return false;
}

/* Whether sv may serve this pool's next client: where it would be routed, and not too old. */
static bool pool_server_is_usable(const struct pool *p, struct server *sv)
{
	return !pool_is_paused(p) && sv->generation == p->generation &&
	       sv->login_epoch == p->login_epoch && !pool_server_is_misrouted(p, sv) &&
	       (rt->cfg->server_lifetime_ms == 0 ||
		now_ms() - sv->connect_time_ms < rt->cfg->server_lifetime_ms);
}

/*
 * The most recently pooled first, so the others stay idle and time out when
 * fewer are needed.
 */
struct server *pool_take_idle(struct pool *p, const struct backend *b,
			      const struct startup_params *startup)
{
	struct server *sv;

	TAILQ_FOREACH (sv, &p->idle, idle_link) {
		if (sv->state == SV_IDLE && sv->backend == b &&
		    startup_params_equal(&sv->startup, startup) && pool_server_is_usable(p, sv)) {
			pool_unlink_server(sv);
			return sv;
		}
	}
	return NULL;
}

/*
 * Once the first client in the queue has waited reserve_pool_timeout (since
 * it first asked), the pool may open reserve_pool_size servers beyond
 * default_pool_size: a burst, or a program waiting on itself (doc/config.md),
 * gets through instead of waiting out hold_timeout. Each client must have
 * waited that long itself; a server given back while no one has is closed.
 */
static bool pool_has_reserve(void)
{
	return rt->cfg->reserve_pool_size > 0 && rt->cfg->reserve_pool_timeout_ms > 0;
}

static bool pool_reserve_is_open(const struct pool *p)
{
	const struct client *first = TAILQ_FIRST(&p->waiting);

	return pool_has_reserve() && first != NULL &&
	       now_ms() - first->hold_since_ms >= rt->cfg->reserve_pool_timeout_ms;
}

static bool pool_is_full(const struct pool *p)
{
	int64_t limit = rt->cfg->default_pool_size;

	if (limit > 0 && pool_reserve_is_open(p))
		limit += rt->cfg->reserve_pool_size;
	return limit > 0 && p->nservers >= limit;
}

/*
 * default_pool_size was lowered under the servers the pool has open, or
 * reserve servers are no longer needed: nobody waits for them.
 */
static bool pool_is_over_limit(const struct pool *p)
{
	int64_t limit = rt->cfg->default_pool_size;

	if (limit > 0 && p->nwaiting > 0)
		limit += rt->cfg->reserve_pool_size;
	return limit > 0 && p->nservers > limit;
}

/* Clients wait because the pool is full, not because nothing can serve them. */
static bool pool_waits_for_room(const struct pool *p)
{
	return pool_is_full(p) && !pool_is_paused(p) &&
	       router_pick(rt->topo, rt->cfg, p->target) != NULL;
}

static struct event *serve_event;

static void serve_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	for (struct pool *p = pools; p != NULL; p = p->next)
		if (p->nwaiting > 0)
			ops->serve_waiters(p);
}

/*
 * A server came free (pooled or closed) or a welcome was learned: serve the
 * waiters from the loop, not from inside whatever freed it.
 */
static void pool_serve_soon(const struct pool *p)
{
	if (p->nwaiting == 0)
		return;
	if (serve_event == NULL)
		serve_event = CHECK_ALLOC(event_new(rt->base, -1, 0, serve_cb, NULL));
	event_active(serve_event, 0, 0);
}

/* Its session holds what no other server could be given, or listens: it keeps its server. */
static bool pool_is_pinned(const struct client *cl)
{
	return cl->session != NULL && (session_state_unmovable(cl->session) != NULL ||
				       session_state_is_listening(cl->session));
}

bool pool_can_take_back(const struct client *cl)
{
	return cl->state == CL_ACTIVE && cl->server->state == SV_ACTIVE &&
	       !cl->server->is_awaiting_verdict && !cl->server->is_checking &&
	       cl->server->tx_status == PROTO_TX_IDLE && xact_may_move(&cl->xact) &&
	       !pool_is_pinned(cl);
}

/* It gets a server again when it speaks, its state replayed. */
struct client *pool_reclaimable_session(const struct pool *p)
{
	struct client *cl;

	TAILQ_FOREACH (cl, &p->active, pool_link)
		if (pool_can_take_back(cl) && evbuffer_get_length(conn_input(&cl->conn)) == 0)
			return cl;
	return NULL;
}

/* The least recently pooled idle server: the one to close to make room. */
static struct server *pool_oldest_idle(const struct pool *p)
{
	struct server *sv;

	TAILQ_FOREACH_REVERSE (sv, &p->idle, server_list, idle_link)
		if (sv->state == SV_IDLE)
			return sv;
	return NULL;
}

bool pool_make_room(struct pool *p, const struct client *cl)
{
	if (pool_is_full(p)) {
		struct server *victim = pool_oldest_idle(p);

		if (victim == NULL)
			return false;
		log_debug("server %" PRIu64 ": closing a pooled server to make room", victim->id);
		server_close(victim);
	} else if (rt->cfg->default_pool_size > 0 && p->nservers >= rt->cfg->default_pool_size) {
		log_info("pool %s/%s/%s: client %" PRIu64 " waited %" PRId64
			 " ms: opening a reserve server (%d over default_pool_size, "
			 "reserve_pool_size %d)",
			 p->database, p->user, target_name(p->target), cl->id,
			 now_ms() - cl->hold_since_ms, p->nservers - rt->cfg->default_pool_size + 1,
			 rt->cfg->reserve_pool_size);
	}
	return true;
}

void pool_note_server(struct pool *p, struct server *sv)
{
	sv->pool = p;
	sv->generation = p->generation;
	sv->login_epoch = p->login_epoch;
	p->nservers++;
}

void pool_put_server(struct server *sv, int64_t last_active_ms)
{
	struct pool *p = sv->pool;

	/* Over a lowered limit, servers go as they are given back, down to it. */
	if (!pool_server_is_usable(p, sv) || pool_is_over_limit(p)) {
		server_close(sv);
		return;
	}
	sv->idle_since_ms = last_active_ms;
	TAILQ_INSERT_HEAD(&p->idle, sv, idle_link);
	sv->is_pooled = true;
	p->nidle++;
	server_reset(sv);
}

bool pool_park_server(struct server *sv)
{
	struct pool *p = sv->pool;

	/* The topology may have changed while the reset ran. */
	if (!pool_server_is_usable(p, sv)) {
		server_close(sv);
		return false;
	}
	log_debug("server %" PRIu64 ": pooled (%s/%s/%s, %d idle)", sv->id, p->database, p->user,
		  target_name(p->target), p->nidle);
	pool_serve_soon(p);
	return true;
}

static void pool_unlink_server(struct server *sv)
{
	TAILQ_REMOVE(&sv->pool->idle, sv, idle_link);
	sv->is_pooled = false;
	sv->pool->nidle--;
}

/* The pool's last client or server left: its idle time starts (pool_collect). */
static void pool_note_unused(struct pool *p)
{
	if (p->nclients == 0 && p->nservers == 0)
		p->unused_since_ms = now_ms();
}

void pool_forget_server(struct server *sv)
{
	if (sv->is_pooled)
		pool_unlink_server(sv);
	sv->pool->nservers--;
	pool_note_unused(sv->pool);
	pool_serve_soon(sv->pool);
}

void pool_prune_idle(struct pool *p)
{
	int64_t timeout_ms = rt->cfg->server_idle_timeout_ms;
	struct server *sv, *next;

	while (pool_is_over_limit(p) && (sv = pool_oldest_idle(p)) != NULL) {
		log_debug("server %" PRIu64 ": closing a pooled server over default_pool_size",
			  sv->id);
		server_close(sv);
	}

	for (sv = TAILQ_FIRST(&p->idle); sv != NULL; sv = next) {
		next = TAILQ_NEXT(sv, idle_link);
		if (pool_server_is_usable(p, sv) && (sv->state != SV_IDLE || timeout_ms == 0 ||
						     now_ms() - sv->idle_since_ms < timeout_ms))
			continue;
		log_debug("server %" PRIu64 ": closing pooled server (%s)", sv->id,
			  pool_server_is_usable(p, sv) ? "idle timeout" : "no longer usable");
		server_close(sv);
	}
}

void pool_note_welcome(struct pool *p, const struct startup_params *startup,
		       const struct server *sv)
{
	startup_params_free(&p->welcome_startup);
	param_set_unref(p->welcome);
	startup_params_copy(&p->welcome_startup, startup);
	p->welcome = param_set_new(&sv->reported);
	p->is_welcome_stale = false;
	pool_serve_soon(p);
}

void pool_on_backend_removed(const struct backend *b)
{
	for (struct pool *p = pools; p != NULL; p = p->next) {
		struct server *sv, *next;

		for (sv = TAILQ_FIRST(&p->idle); sv != NULL; sv = next) {
			next = TAILQ_NEXT(sv, idle_link);
			if (sv->backend == b)
				server_close(sv);
		}
	}
}

struct pool_backend_use pool_backend_use(const struct backend *b)
{
	struct pool_backend_use use = {0};

	for (const struct pool *p = pools; p != NULL; p = p->next) {
		const struct client *cl;
		const struct server *sv;

		TAILQ_FOREACH (cl, &p->active, pool_link)
			if (cl->server != NULL && cl->server->backend == b)
				*(pool_is_pinned(cl) ? &use.pinned : &use.held) += 1;
		TAILQ_FOREACH (sv, &p->idle, idle_link)
			use.pooled += sv->backend == b;
	}
	return use;
}

/* Why nothing can serve this target: the backends' last errors, for the client's message. */
static void describe_unavailable(char *buf, size_t buflen)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < rt->topo->count && used < buflen; i++) {
		const struct backend *b = rt->topo->backends[i];

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
	/*
	 * In whole seconds, rounded: the timer runs on the loop's cached clock and
	 * held is read off a coarse one, so a 3 s hold can measure 2 996 ms.
	 */
	int64_t held_s = (held + 500) / 1000;
	char detail[512], reserve[64] = "";

	pool_set_client_state(cl, CL_IDLE);
	log_info("client %" PRIu64 ": gave up waiting for a %s server after %" PRId64 " ms", cl->id,
		 target_name(cl->target), held);
	if (pool_waits_for_room(cl->pool)) {
		if (rt->cfg->reserve_pool_size > 0)
			snprintf(reserve, sizeof(reserve), ", reserve_pool_size %d",
				 rt->cfg->reserve_pool_size);
		client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
			    "no server free after %" PRId64 " s: the pool is full "
			    "(default_pool_size %d%s) and its sessions are busy",
			    held_s, rt->cfg->default_pool_size, reserve);
		return;
	}
	describe_unavailable(detail, sizeof(detail));
	/* A backend can look up to its probes and still fail this client's logins: say so. */
	client_fail(cl, SQLSTATE_CONNECTION_FAILURE, "no %s available after %" PRId64 " s (%s%s%s)",
		    cl->target == TARGET_RW ? "primary" : "server for reads", held_s,
		    cl->last_connect_error, cl->last_connect_error[0] ? "; " : "", detail);
}

void pool_fail_wake_waiters(const struct backend *b, const char *why)
{
	for (struct pool *p = pools; p != NULL; p = p->next) {
		struct client *cl;

		if (p->nwaiting == 0 || router_pick_wakeable(rt->topo, rt->cfg, p->target) != b)
			continue;
		while ((cl = TAILQ_FIRST(&p->waiting)) != NULL) {
			pool_set_client_state(cl, CL_IDLE);
			client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
				    "backend %s did not wake within %.3g s%s%s", b->name,
				    (double)rt->cfg->wake_timeout_ms / 1000,
				    why != NULL ? ": " : "", why != NULL ? why : "");
		}
	}
}

static void retry_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	ops->retry(NULL);
}

static void pool_arm_reserve(struct pool *p);

static void reserve_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct pool *p = arg;

	ops->serve_waiters(p);
	pool_arm_reserve(p);
}

/* Serve the queue again when its first client will have waited reserve_pool_timeout. */
static void pool_arm_reserve(struct pool *p)
{
	const struct client *first = TAILQ_FIRST(&p->waiting);
	int64_t left;

	if (first == NULL || !pool_has_reserve() || !pool_waits_for_room(p))
		return;
	if (p->reserve_timer == NULL)
		p->reserve_timer = CHECK_ALLOC(evtimer_new(rt->base, reserve_cb, p));
	if (evtimer_pending(p->reserve_timer, NULL))
		return;
	left = first->hold_since_ms + rt->cfg->reserve_pool_timeout_ms - now_ms();
	timer_add_ms(p->reserve_timer, left < 0 ? 0 : left);
}

void pool_wait(struct client *cl)
{
	struct pool *p = cl->pool;
	const struct backend *w = router_pick_wakeable(rt->topo, rt->cfg, p->target);
	int64_t deadline = cl->hold_since_ms + rt->cfg->hold_timeout_ms;
	int64_t left;

	/*
	 * A client waiting for a wake waits as long as the wake may take. The
	 * wake's own deadline comes first and fails it with the reason
	 * (pool_fail_wake_waiters); the slack only keeps the two timers from
	 * racing.
	 */
	if (w != NULL && w->state == BACKEND_WAKING &&
	    w->wake_started_ms + rt->cfg->wake_timeout_ms + WAKE_SLACK_MS > deadline)
		deadline = w->wake_started_ms + rt->cfg->wake_timeout_ms + WAKE_SLACK_MS;
	left = deadline - now_ms();
	if (left < 0)
		left = 0;
	if (p->nwaiting == 0 && p->hold_start_ms == 0) {
		p->hold_start_ms = now_ms();
		p->hold_reason = stats_hold_reason(p);
		log_info("pool %s/%s/%s: holding clients: %s", p->database, p->user,
			 target_name(p->target),
			 pool_is_paused(p)        ? "paused"
			 : pool_waits_for_room(p) ? "the pool is full (default_pool_size)"
			 : p->target == TARGET_RW ? "no primary available"
						  : "no server available for reads");
	}
	pool_set_client_state(cl, CL_WAITING);
	cl->wait_start_ms = now_ms();
	stats_note_hold(p);
	/* The login timer is done by now; the same event becomes the hold timer. */
	event_del(cl->timer);
	event_assign(cl->timer, rt->base, -1, 0, hold_timeout_cb, cl);
	timer_add_ms(cl->timer, left);
	pool_arm_reserve(p);
}

struct pool *pool_sibling(const struct pool *p, enum target target)
{
	return pool_get(p->database, p->user, target);
}

struct param_set *pool_add_client(struct client *cl)
{
	struct pool *p = pool_get(cl->params.database, cl->params.user, cl->target);

	cl->pool = p;
	p->nclients++;
	cl->state = CL_IDLE;
	TAILQ_INSERT_TAIL(&p->idle_clients, cl, pool_link);
	if (p->welcome != NULL && startup_params_equal(&p->welcome_startup, &cl->params))
		return p->welcome;
	return NULL;
}

void pool_retry_later(struct client *cl)
{
	pool_wait(cl);
	if (retry_timer == NULL)
		retry_timer = CHECK_ALLOC(evtimer_new(rt->base, retry_cb, NULL));
	if (!evtimer_pending(retry_timer, NULL))
		timer_add_ms(retry_timer, POOL_RETRY_MS);
}

void pool_forget_client(struct client *cl)
{
	struct pool *p = cl->pool;

	if (p == NULL)
		return;
	TAILQ_REMOVE(pool_list_of(p, cl->state), cl, pool_link);
	pool_count(p, cl->state, -1);
	if (cl->state == CL_WAITING)
		pool_end_wait(cl, false);
	pool_end_hold(p); /* it may have been the last one trying */
	p->nclients--;
	pool_note_unused(p);
	cl->pool = NULL;
}

bool pool_should_release(const struct client *cl)
{
	struct server *sv = cl->server;

	/* sv's own pool: a rw_split session's replica server is its read-only pool's. */
	return pool_is_paused(cl->pool) || sv->generation != sv->pool->generation ||
	       pool_server_is_misrouted(sv->pool, sv) ||
	       ((rt->cfg->server_release == SERVER_RELEASE_ALWAYS ||
		 (cl->pool->nwaiting > 0 && pool_waits_for_room(cl->pool))) &&
		pool_can_take_back(cl));
}

int pool_count_busy(const char *database)
{
	int busy = 0;

	for (struct pool *p = pools; p != NULL; p = p->next)
		if (matches(p, database))
			busy += p->nactive;
	return busy;
}

void pool_close_idle_servers(void)
{
	for (struct pool *p = pools; p != NULL; p = p->next)
		pool_prune_idle(p);
}

void pool_pause(const char *database)
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
	for (struct pool *p = pools; p != NULL; p = p->next)
		if (matches(p, database))
			pool_prune_idle(p);
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
			ops->serve_waiters(p);
}

void pool_reconnect(const char *database)
{
	for (struct pool *p = pools; p != NULL; p = p->next) {
		if (matches(p, database)) {
			p->generation++;
			pool_prune_idle(p);
		}
	}
}

void pool_retire_logins(const char *database, const char *role)
{
	for (struct pool *p = pools; p != NULL; p = p->next) {
		if (!matches(p, database) || (role != NULL && strcmp(p->user, role) != 0))
			continue;
		log_debug("pool %s/%s/%s: logins made before are retired", p->database, p->user,
			  target_name(p->target));
		p->login_epoch++;
		pool_prune_idle(p);
		/* What a login reports (TimeZone, DateStyle, ...) may have changed with it. */
		startup_params_free(&p->welcome_startup);
		param_set_unref(p->welcome);
		p->welcome = NULL;
	}
}

/* p is out of the list: its pooled servers close, and it goes. */
static void pool_free(struct pool *p)
{
	while (!TAILQ_EMPTY(&p->idle))
		server_close(TAILQ_FIRST(&p->idle));
	if (p->reserve_timer != NULL)
		event_free(p->reserve_timer);
	startup_params_free(&p->welcome_startup);
	param_set_unref(p->welcome);
	free(p->database);
	free(p->user);
	free(p);
}

/*
 * Every database name a client gives (one that does not exist too) makes a
 * pool; unless they are collected, a client naming thousands fills memory,
 * SHOW POOLS and the metrics. A pool without clients and servers is reached
 * by nothing but this list (clients and servers hold it through cl->pool and
 * sv->pool, counted in nclients and nservers), so it can go. One that never
 * logged a server in (the backend refused its database or user) holds nothing
 * worth keeping and goes at once; one that did keeps its welcome, which saves
 * the next client a server login, for pool_idle_timeout. Its counters go on in
 * SHOW STATS and the metrics (stats_retire_pool), so totals never go back.
 */
void pool_collect(void)
{
	int64_t timeout_ms = rt->cfg->pool_idle_timeout_ms;
	struct pool **link = &pools;
	struct pool *p;

	while ((p = *link) != NULL) {
		if (p->nclients > 0 || p->nservers > 0 ||
		    (p->welcome != NULL &&
		     (timeout_ms == 0 || now_ms() - p->unused_since_ms < timeout_ms))) {
			link = &p->next;
			continue;
		}
		log_debug("pool %s/%s/%s: unused for %" PRId64 " ms, freed", p->database, p->user,
			  target_name(p->target), now_ms() - p->unused_since_ms);
		*link = p->next;
		stats_retire_pool(p, p->welcome != NULL);
		pool_free(p);
	}
}

void pool_free_all(void)
{
	while (pools != NULL) {
		struct pool *p = pools;

		pools = p->next;
		pool_free(p);
	}
	for (size_t i = 0; i < npaused_dbs; i++)
		free(paused_dbs[i]);
	free(paused_dbs);
	if (retry_timer != NULL) {
		event_free(retry_timer);
		retry_timer = NULL;
	}
	if (serve_event != NULL) {
		event_free(serve_event);
		serve_event = NULL;
	}
	paused_dbs = NULL;
	npaused_dbs = 0;
}
