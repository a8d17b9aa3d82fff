/*
 * The server side of a connection: connect to a backend, log in with the
 * client's credentials, rebuild a moved session's state, reset a server given
 * back. It knows nothing of clients: it reports to its owner (link.c) through
 * an ops table, and the owner pumps its messages while it is active.
 */
#ifndef PGWING_SERVER_H
#define PGWING_SERVER_H

#include "pgwing/auth.h"
#include "pgwing/capture.h"
#include "pgwing/config.h"
#include "pgwing/conn.h"
#include "pgwing/proto.h"
#include "pgwing/session.h"
#include "pgwing/topology.h"

#include <sys/queue.h>

struct bufferevent;
struct event;
struct evbuffer;
struct pool;
struct server;

/*
 * What a server tells its owner. Each call may end the server (and its
 * owner); text names the backend and why: "<what> backend pg1 (host:port): detail".
 */
struct server_ops {
	/* Logged in (its ParameterStatus messages in sv->welcome): restore, then ready. */
	void (*logged_in)(struct server *sv);
	/* A moved session's state is rebuilt (or there was none): forwarding may start. */
	void (*ready)(struct server *sv);
	/* Active: the server sent something, or its output drained. */
	void (*readable)(struct server *sv);
	void (*drained)(struct server *sv);
	/* An active server's connection is gone: the owner decides whether the session moves. */
	void (*lost)(struct server *sv, const char *text);
	/* Connecting or logging in failed in a way another try may fix. */
	void (*unreachable)(struct server *sv, const char *text);
	/* It failed for good: the client must be told text and closed. */
	void (*failed)(struct server *sv, const char *text);
	/* Postgres refused the login: its ErrorResponse is the first len bytes of in. */
	void (*refused)(struct server *sv, struct evbuffer *in, size_t len);
	/* A server given back was reset: true when it is kept (pooled), false when closed. */
	bool (*reset_done)(struct server *sv);
	/* sv is going (its memory later): whoever holds it lets go now. */
	void (*gone)(struct server *sv);
};

/* Who a server logs in as. */
struct server_login {
	const struct startup_params *params;
	const struct server_credentials *cred; /* must outlive the login (the owner's) */
	bool is_read_only;                     /* for the ro port: default_transaction_read_only */
};

enum server_state {
	SV_CONNECTING,
	SV_LOGIN,
	SV_RESTORE, /* replaying a moved session's state; answers are not the client's */
	SV_ACTIVE,
	SV_RESET, /* given back by its client: server_reset_query runs before it is pooled */
	SV_IDLE,  /* in its pool's idle list, logged in, waiting for the next client */
	SV_CLOSING,
};

struct server {
	uint64_t id;
	struct conn conn;
	struct backend *backend; /* NULL once a reload dropped it: the session moves when idle */
	char *backend_name;      /* copied, as are host and port, to outlive the backend */
	char *backend_host;
	int backend_port;
	const struct server_ops *ops;
	void *owner; /* the client it serves (link.c), NULL while pooled */
	const struct server_credentials *cred;
	bool is_read_only;
	/* Membership of its pool, written by pool.c. */
	struct pool *pool;
	TAILQ_ENTRY(server) idle_link; /* in pool->idle while is_pooled */
	bool is_pooled;
	uint32_t generation;   /* the pool's generation when this server connected */
	uint32_t login_epoch;  /* the pool's login_epoch then */
	uint64_t routed_epoch; /* topology epoch at which the router last kept it where it is */
	int64_t idle_since_ms; /* when it was pooled */
	/* The startup parameters it logged in with: only a client sending the same may reuse it. */
	struct startup_params startup;
	/* Its ParameterStatus values as of its login and its last reset. */
	struct startup_params reported;
	enum server_state state;
	enum tls_mode tls_mode;     /* the effective sslmode towards this backend */
	bool is_awaiting_ssl_reply; /* SSLRequest sent, 'S' or 'N' not yet read */
	struct auth_login *login;
	struct evbuffer *welcome; /* ParameterStatus messages seen during login, for the client */
	struct event *timer;      /* server_connect_timeout during connect and login */
	uint32_t backend_pid;
	uint32_t backend_key;
	/* While restoring: the session being rebuilt (its client's), and how far. */
	struct session_state *restoring;
	int restore_pending;                /* ReadyForQuery messages still due */
	size_t restore_at;                  /* the replay's request being answered */
	struct session_replay restore_plan; /* which requests the replay sent */
	bool is_restore_failed;             /* a request the session can't do without failed */
	char restore_error[256]; /* the server's error for it, or for the request being answered */
	int64_t connect_time_ms;
	/* The pump's (link.c) while active. */
	char tx_status;       /* from the last ReadyForQuery: 'I', 'T' or 'E' */
	bool saw_ready;       /* a ReadyForQuery went by in the current forwarding pass */
	bool is_holding;      /* the current forwarding pass holds an answer back */
	char last_fatal[256]; /* the message of a FATAL the server ended with */
	bool is_ending;       /* relayed a FATAL about the session itself: the client goes too */
	bool is_awaiting_verdict; /* ended with 57P01: a kill or a shutdown? (not read meanwhile) */
	uint32_t msg_remaining;
	/*
	 * Since its login or last reset it ran something that may have left
	 * session state behind (anything not provably read-only, a replay, a
	 * cancel): given back, it is reset before the next client has it. Set by
	 * the pump (server_mark_dirty), cleared by server.c's reset.
	 */
	bool is_dirty;
	uint32_t clean_requests; /* requests the pump found read-only since the reset */
	bool is_setting; /* the request in flight only sets settings (link.c's, until its answer) */
	/*
	 * link.c's check of what its session holds (capture.h), asked before a
	 * server that ran more than reads is given back: in flight (its answer
	 * is read before anything else), the answer as it comes, and what ran
	 * since the last check (or reset): more than reads (server_mark_dirty
	 * sets it), code of the database's own (a function, DO, ...).
	 */
	bool is_checking;
	struct capture check; /* its answer so far */
	bool is_check_failed; /* an error, or a row that is not the answer */
	int64_t check_start_us;
	bool has_changed_since_check;
	bool may_hold_unseen;
	bool has_temp_schema; /* a check found one: closed, not pooled, when given back */
	/*
	 * Pooled without a reset: the settings and protocol-level prepared
	 * statements its last session left (NULL: none). The next session's
	 * restore resets the settings only if its own differ, closes the
	 * statements it lacks and prepares only what it has that these are not.
	 */
	struct session_state *held;
};

TAILQ_HEAD(server_list, server);

/*
 * A server to log in to b as login says, for owner. server_start() connects:
 * between the two the owner (and its pool) take note of it.
 */
struct server *server_connect(struct backend *b, const struct server_login *login,
			      const struct server_ops *ops, void *owner);
/* Start the non-blocking connect; a failure is reported (ops->unreachable), even at once. */
void server_start(struct server *sv);
/* A pooled server serves owner now: what it reports goes there (server_restore next). */
void server_attach(struct server *sv, const struct server_ops *ops, void *owner);
/* Its owner lets go of it (then gives it to its pool, or closes it). */
void server_detach(struct server *sv);
/*
 * Rebuild a moved session's state (NULL: none) before the client's next
 * request, dropping the answers (on a server pooled with statements, only the
 * difference: session_state_replay); ops->ready once done, at once when there
 * is nothing to replay. A prepared statement that can't be made again is
 * dropped from st; any other failure is ops->failed ("session state could
 * not be carried to the new server: ...").
 */
void server_restore(struct server *sv, struct session_state *st);
/*
 * Its session, given back, left settings and prepared statements on it and
 * nothing else (the owner checked: not dirty, st is exact and records all it
 * did): the server is pooled with them instead of being reset, and the next
 * restore applies only the difference.
 */
void server_keep_state(struct server *sv, const struct session_state *st);
/*
 * A ParameterStatus body: the server's value of a reported parameter changed
 * (the owner's pump passes on those it forwards). What the server reported
 * is what its next client is welcomed with.
 */
void server_note_parameter(struct server *sv, const uint8_t *body, size_t len);
/*
 * Its client is done with it: run server_reset_query if it is dirty (at once
 * without it), then ops->reset_done.
 */
void server_reset(struct server *sv);

/* What it was sent or told may have left state behind (struct server's is_dirty). */
static inline void server_mark_dirty(struct server *sv)
{
	sv->is_dirty = true;
	sv->has_changed_since_check = true;
}
/* Start a non-blocking connect of bev (TCP by name or address, or a unix socket directory). */
int server_connect_socket(struct bufferevent *bev, const char *host, int port);
/* A reload dropped its backend: it lets go of it (the session moves when idle). */
void server_forget_backend(struct server *sv);
/* Close (sending Terminate when logged in). */
void server_close(struct server *sv);
/*
 * The connection of an active server is gone (what: "lost connection to", ...;
 * reason: why): reported to its owner (ops->lost).
 */
void server_lost(struct server *sv, const char *what, const char *reason);
/* It failed for good (ops->failed, or closed if it has no owner). */
void server_fail(struct server *sv, const char *what, const char *detail);
/*
 * Give up on a server whose backend must no longer serve its session (fenced,
 * demoted, down): it is closed now, which makes Postgres roll back what it has
 * open. An active one is reported lost; one still connecting, logging in or
 * replaying a moved session unreachable (its client tries again elsewhere).
 * why completes "... backend NAME (HOST:PORT): ".
 */
void server_abandon(struct server *sv, const char *why);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void server_init(const struct runtime *runtime);

#endif
