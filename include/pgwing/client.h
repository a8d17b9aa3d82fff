/*
 * The client side of a connection: startup negotiation, pgwing's own
 * authentication of the client, waiting for a server, then forwarding.
 */
#ifndef PGWING_CLIENT_H
#define PGWING_CLIENT_H

#include "pgwing/admin.h"
#include "pgwing/auth.h"
#include "pgwing/conn.h"
#include "pgwing/proto.h"

#include <sys/queue.h>
#include <sys/types.h>

struct auth_query_wait;
struct event;
struct pool;
struct server;
struct sockaddr;

enum client_state {
	CL_STARTUP, /* reading SSLRequest / StartupMessage / CancelRequest */
	CL_AUTH,    /* pgwing authenticating the client */
	CL_IDLE,    /* logged in, no server: between transactions after a release */
	CL_WAITING, /* queued in its pool for a server */
	CL_LOGIN,   /* a server is logging in on its behalf */
	CL_ACTIVE,  /* linked to a server, forwarding */
	CL_ADMIN,   /* talking to the admin console */
	CL_CLOSING, /* flushing a final message, then freed */
};

struct client {
	uint64_t id;
	struct conn conn;
	enum target target;
	enum client_state state;
	char addr[64];
	int port;
	bool is_unix;
	bool is_direct_tls; /* TLS without SSLRequest (PostgreSQL 17): ALPN must say postgresql */
	bool is_over_limit; /* accepted past max_client_conn: told so after its startup packet */
	bool has_peer_uid;  /* unix socket: the peer's uid is known */
	uid_t peer_uid;
	enum admin_role admin_role;
	struct admin_state *admin_state; /* console clients: owned by admin.c */

	struct startup_params params;
	/* ParameterStatus values the client has been told, to resend only changes after a move. */
	struct param_set *reported; /* NULL until the first; often shared with the pool's welcome */
	/* What it SET, LISTENed to, PREPAREd: replayed when the session moves. */
	struct session_state *session;
	/* Session statements of the request in flight, recorded once it succeeds. */
	char *pending_session_sql;
	size_t pending_session_len;
	bool is_session_sql_over; /* the request in flight set more than max_session_sql_size */
	struct auth_client *auth;
	struct auth_query_wait *lookup; /* auth_query lookup it waits for, or NULL */
	struct server_credentials cred;

	struct pool *pool;
	struct server *server;
	TAILQ_ENTRY(client) wait_link; /* in pool->waiting */
	TAILQ_ENTRY(client) all_link;  /* in the list of all clients */

	uint32_t cancel_pid; /* the key pgwing gave the client */
	uint32_t cancel_key;

	struct event *timer;    /* login timeout while logging in, hold timeout while waiting */
	uint32_t msg_remaining; /* bytes of a partly forwarded message still to come */
	int pending_syncs;      /* Query/Sync/FunctionCall sent, ReadyForQuery not yet back */
	/*
	 * The in-flight Query (header, text, NUL) when it is provably safe to run
	 * again: retry_len bytes of a buffer of retry_cap, kept from one request
	 * to the next (client.c says how long).
	 */
	uint8_t *retry;
	size_t retry_len;
	size_t retry_cap;
	bool is_response_started; /* the server has sent something for the request in flight */
	bool has_request_failed;  /* an ErrorResponse came for the request in flight */
	bool is_mid_request;      /* extended-protocol messages sent since the last Sync */
	bool is_skipping_to_sync; /* its server died mid-request: drop messages up to Sync */
	bool is_leaving;    /* sent Terminate with answers still owed: closes after the last one */
	bool is_copying_in; /* in COPY FROM STDIN: the server waits for its data */
	int64_t hold_since_ms; /* waiting for a server since (0: not waiting), across retries */
	char last_connect_error[256]; /* why its last server connect failed, told at hold_timeout */
	int64_t query_start_us;
	int64_t xact_start_us;
	int64_t connect_time_ms;
	int64_t wait_start_ms;
};

TAILQ_HEAD(client_list, client);

/* Take over an accepted socket. */
void client_accept(int fd, enum target target, const struct sockaddr *addr, int addrlen);
/*
 * The server finished logging in: on a first login the client gets the welcome;
 * after a move only the parameters whose values changed. Then forwarding starts.
 */
void client_server_ready(struct client *cl, struct evbuffer *parameter_status);
/*
 * Welcome a client logging in with its pool's ParameterStatus set (and its
 * cancel key) without a server: it gets one when it first speaks.
 */
void client_welcome(struct client *cl, struct param_set *welcome);
/*
 * The client's server died. An idle client just loses it (and gets a new one when
 * it speaks); a provably read-only request in flight is run again elsewhere;
 * a session inside a transaction block ends (FATAL 08006: the transaction is
 * gone); anything else in flight gets an error saying its outcome is unknown.
 * what names the backend and the reason.
 */
void client_server_lost(struct client *cl, const char *what);
/* Connecting or logging in to a server failed in a way another try may fix: wait and retry. */
void client_server_unreachable(struct client *cl, const char *what);
/* ReadyForQuery from the server: a request is answered. */
void client_note_ready(struct client *cl, char status);
/*
 * The request in flight is an autocommit query that may run again elsewhere if
 * its server dies before answering: its answer is held back until complete.
 * (Whether it is provably read-only is settled only if that happens.)
 */
bool client_can_retry(const struct client *cl);
/* A CommandComplete tag, looked at only while session state waits to be recorded. */
void client_note_command(struct client *cl, const char *tag);
/* The server sent an ErrorResponse for the request in flight (body without header). */
void client_note_error(struct client *cl, const uint8_t *body, size_t len);
/* The server reported a parameter mid-session (already forwarded): remember it. */
void client_note_parameter(struct client *cl, const uint8_t *body, size_t len);
/*
 * The server answered everything the client asked (ReadyForQuery, nothing
 * pending). Returns whether the client keeps it: false when it was given
 * back, or the client failed (then the client may be freed too).
 */
bool client_server_idle(struct client *cl);
/* Release the client's server (it stays logged in, CL_IDLE, and gets one again when it speaks). */
void client_release_server(struct client *cl);
struct client_list *client_all(void);
struct client *client_find(uint64_t id);
/* Send an ErrorResponse (FATAL) and close once it is flushed. */
void client_fail(struct client *cl, const char *sqlstate, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* Close once what is queued for the client is flushed. */
void client_close(struct client *cl);
/* Take up the messages the client already sent, as a read would (its reading resumed). */
void client_read_buffered(struct client *cl);
/* Forward whatever the client has buffered to its server (after backpressure lifts). */
void client_forward(struct client *cl);
int client_count(void);
/* Close every client (fast shutdown). */
void client_close_all(const char *reason);
/*
 * Drain: close with 57P01 the pool clients between transactions; returns how
 * many pool clients remain (in a transaction, a request or still logging in).
 */
int client_close_idle(const char *reason);
/* Send a CancelRequest for every request still running on a server. */
void client_cancel_all(void);

#endif
