/*
 * Pools: one per database x user x target. A client that needs a server and
 * can't have one now waits in its pool's queue; that one mechanism serves a
 * full pool, a failover and a wake-up. In session mode a client has a server
 * to itself while it holds one; a server it gives back (it left, or was idle
 * when its server was released) is reset and kept in the pool's idle list for
 * the next client that needs one on the same backend. A pool holds at most
 * default_pool_size servers; at the limit, idle sessions give theirs back to
 * waiting clients.
 */
#ifndef PGWING_POOL_H
#define PGWING_POOL_H

#include "pgwing/client.h"
#include "pgwing/server.h"
#include "pgwing/stats.h"

struct event;

struct backend;

struct pool {
	char *database;
	char *user;
	enum target target;
	struct client_list waiting;
	int nwaiting;
	struct server_list idle; /* without a client, resetting or SV_IDLE; most recent first */
	int nidle;
	int nservers; /* all its servers: logging in, serving, resetting, pooled */
	/*
	 * The startup parameters and ParameterStatus set of the last server login:
	 * a client sending the same startup parameters is welcomed without a server.
	 */
	struct startup_params welcome_startup;
	struct param_set *welcome; /* NULL until the first login */
	int nactive;               /* clients of this pool with a server or logging one in */
	int nclients;              /* all logged-in clients of this pool */
	uint32_t generation;       /* RECONNECT bumps it: older servers are released when idle */
	int64_t hold_start_ms;     /* when clients started waiting here, for the log */
	int64_t unused_since_ms;   /* when its last client or server left (see pool_collect) */
	/* Why the hold started, as it was then: its duration is counted under it. */
	enum hold_reason hold_reason;
	struct event
		*reserve_timer; /* when the first waiter will have waited reserve_pool_timeout */
	struct stats stats;
	struct pool *next;
};

struct pool *pool_first(void);
/*
 * Whether the client's server should go at this idle point (pause, reconnect,
 * re-route, or clients waiting for room in a full pool).
 */
bool pool_should_release(const struct client *cl);
/*
 * PAUSE/RESUME for one database (NULL: all). Paused pools release servers as
 * clients go idle and hold clients that want one. Returns the number of clients
 * of those pools still inside a transaction (PAUSE completes at 0).
 */
int pool_pause(const char *database);
void pool_resume(const char *database);
int pool_count_busy(const char *database);
bool pool_is_paused(const struct pool *p);
/* RECONNECT: servers of these pools are replaced at their next idle point. */
void pool_reconnect(const char *database);

/*
 * Put an authenticated client into its pool (find or create it). Returns the
 * ParameterStatus set to welcome it with, when the pool knows one for its startup
 * parameters; NULL: it must log in through a server.
 */
struct param_set *pool_add_client(struct client *cl);
/* The client needs a server: start one, or wait in the queue. */
void pool_request_server(struct client *cl);
/* Its server could not be reached: wait (within the hold) and try again shortly. */
void pool_retry_later(struct client *cl);
/* The client got its server after waiting: the pool's hold may have ended (logged). */
void pool_note_served(struct client *cl);
/* The client leaves its pool (closed, or served). */
void pool_forget_client(struct client *cl);
/* Topology changed: serve whoever waits and can be served now. */
void pool_on_topology_change(void *arg);
/* The wake of b timed out: its waiting clients get 08006 saying so, and why (NULL: unknown). */
void pool_fail_wake_waiters(const struct backend *b, const char *why);
/*
 * Release servers idle for server_idle_timeout (their clients get new ones when
 * they speak); close pooled ones idle that long or older than server_lifetime.
 */
void pool_close_idle_servers(void);
/*
 * The client is done with sv (detached, clean): pool it after a reset, or close
 * it. last_active_ms: when it last served a request, to time its idleness.
 */
void pool_put_server(struct server *sv, int64_t last_active_ms);
/* sv was reset: it waits for the next client (true), or is closed if it may not serve. */
bool pool_park_server(struct server *sv);
/* sv is closing: out of its pool's count (and idle list); its room may serve a waiter. */
void pool_forget_server(struct server *sv);
/* A fresh server logged in for cl: the pool learns its welcome. */
void pool_note_welcome(struct pool *p, const struct client *cl, const struct server *sv);
/*
 * Free the pools nobody can reach: no client and no server. Those that never
 * logged a server in go at once, the others after pool_idle_timeout. Only
 * from a timer of its own (the sweep), never inside a client's or server's
 * callbacks.
 */
void pool_collect(void);
/* b leaves the topology: its pooled servers go. */
void pool_on_backend_removed(const struct backend *b);
void pool_free_all(void);

#endif
