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

/*
 * Its clients are on one list per state (pool_set_client_state moves them),
 * its servers without a client on the idle list; the counters are written
 * here only.
 */
struct pool {
	char *database;
	char *user;
	enum target target;
	struct client_list waiting; /* CL_WAITING, in arrival order */
	int nwaiting;
	struct client_list active;       /* CL_LOGIN and CL_ACTIVE: with a server */
	struct client_list idle_clients; /* CL_IDLE: logged in, no server */
	struct server_list idle; /* without a client, resetting or SV_IDLE; most recent first */
	int nidle;
	int nservers; /* all its servers: logging in, serving, resetting, pooled */
	/*
	 * The startup parameters and ParameterStatus set of the last server login:
	 * a client sending the same startup parameters is welcomed without a server.
	 */
	struct startup_params welcome_startup;
	struct param_set *welcome; /* NULL until the first login */
	bool is_welcome_stale;     /* logins were retired since: the next client logs in */
	int nactive;               /* clients of this pool with a server or logging one in */
	int nclients;              /* all logged-in clients of this pool */
	uint32_t generation;       /* RECONNECT bumps it: older servers are released when idle */
	uint32_t login_epoch; /* pool_retire_logins bumps it: older servers serve no next session */
	int64_t hold_start_ms;   /* when clients started waiting here, for the log */
	int64_t unused_since_ms; /* when its last client or server left (see pool_collect) */
	/* Why the hold started, as it was then: its duration is counted under it. */
	enum hold_reason hold_reason;
	struct event
		*reserve_timer; /* when the first waiter will have waited reserve_pool_timeout */
	struct stats stats;
	struct pool *next;
};

/* What the pool asks of the link (link.c), which starts servers for clients. */
struct pool_ops {
	/* Serve p's waiting clients now (a server came free, a reserve opened, a resume). */
	void (*serve_waiters)(struct pool *p);
	/* A connect failed a while ago: try the waiters again, as after a topology change. */
	void (*retry)(void *arg);
};

void pool_set_ops(const struct pool_ops *ops);
struct pool *pool_first(void);
/*
 * Whether the client's server should go at this idle point (pause, reconnect,
 * re-route, or clients waiting for room in a full pool).
 */
bool pool_should_release(const struct client *cl);
/*
 * An idle session that can give its server back now: nothing in flight,
 * nothing it can't take to another server, not listening.
 */
bool pool_can_take_back(const struct client *cl);
/* The pool is full and clients wait: a session that can give its server back, or NULL. */
struct client *pool_reclaimable_session(const struct pool *p);
/*
 * PAUSE/RESUME for one database (NULL: all). Paused pools release servers as
 * clients go idle (link_release_idle) and hold clients that want one.
 */
void pool_pause(const char *database);
void pool_resume(const char *database);
/* Clients of the database's pools (NULL: all) inside a transaction (PAUSE completes at 0). */
int pool_count_busy(const char *database);
bool pool_is_paused(const struct pool *p);
/* RECONNECT: servers of these pools are replaced at their next idle point. */
void pool_reconnect(const char *database);
/*
 * A database's or role's login defaults changed (ALTER DATABASE/ROLE ... SET
 * seen through pgwing), or a statement needs the database free of sessions
 * (DROP DATABASE, ...): servers logged in before serve no next session, as
 * a direct client would get a fresh backend. Pooled ones of the pools of
 * database and role (NULL: any) close now, busy ones when given back, and
 * the next client is welcomed through a fresh login.
 */
void pool_retire_logins(const char *database, const char *role);

/*
 * Put an authenticated client into its pool (find or create it), CL_IDLE.
 * Returns the ParameterStatus set to welcome it with, when the pool knows one
 * for its startup parameters; NULL: it must log in through a server.
 */
struct param_set *pool_add_client(struct client *cl);
/*
 * The pool of p's database and user for target (found or made): where a
 * rw_split session of p takes its replica servers from.
 */
struct pool *pool_sibling(const struct pool *p, enum target target);
/*
 * The one writer of a pool client's state: moves it to the list of state and
 * keeps the counters. Leaving the queue ends its wait (for CL_LOGIN, a try
 * that may bring it back: the hold goes on).
 */
void pool_set_client_state(struct client *cl, enum client_state state);
/*
 * Queue the client. The hold is counted from when the client first needed a
 * server, so retries after failed connects don't extend it.
 */
void pool_wait(struct client *cl);
/* Its server could not be reached: wait (within the hold) and try again shortly. */
void pool_retry_later(struct client *cl);
/* The client got its server after waiting: the pool's hold may have ended (logged). */
void pool_note_served(struct client *cl);
/* The client leaves its pool (closed). */
void pool_forget_client(struct client *cl);
/* The servers pgwing holds on one backend, by what keeps them (SHOW BACKENDS' awake_for). */
struct pool_backend_use {
	int held;   /* a client's, which it gives back when idle for server_idle_timeout */
	int pinned; /* a client's whose session cannot move or listens: kept while it lasts */
	int pooled; /* without a client, closed once idle for server_idle_timeout */
};

struct pool_backend_use pool_backend_use(const struct backend *b);
/* The wake of b timed out: its waiting clients get 08006 saying so, and why (NULL: unknown). */
void pool_fail_wake_waiters(const struct backend *b, const char *why);
/*
 * A pooled server on b for a client with these startup parameters (they are
 * the session's defaults, which the reset returns to), out of the idle list;
 * or NULL.
 */
struct server *pool_take_idle(struct pool *p, const struct backend *b,
			      const struct startup_params *startup);
/*
 * Room for one more server for cl, making it by closing an idle server that
 * doesn't fit (another backend, other startup parameters). False: the pool is
 * full, cl must wait.
 */
bool pool_make_room(struct pool *p, const struct client *cl);
/* A new server of p's: counted until pool_forget_server. */
void pool_note_server(struct pool *p, struct server *sv);
/*
 * Close the servers that should not serve again, those idle for
 * server_idle_timeout (a backend nobody uses must be free to sleep), and the
 * oldest idle ones over a lowered default_pool_size.
 */
void pool_prune_idle(struct pool *p);
/* pool_prune_idle for every pool (the periodic sweep). */
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
/* A fresh server logged in with startup: the pool learns its welcome. */
void pool_note_welcome(struct pool *p, const struct startup_params *startup,
		       const struct server *sv);
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

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void pool_init(const struct runtime *runtime);

#endif
