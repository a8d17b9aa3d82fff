/*
 * The client side of a connection: startup negotiation, pgwing's own
 * authentication of the client, the console. It knows nothing of servers and
 * pools: once logged in to a database, what happens to the client is the
 * link's (link.c), which it tells through its ops.
 */
#ifndef PGWING_CLIENT_H
#define PGWING_CLIENT_H

#include "pgwing/admin.h"
#include "pgwing/auth.h"
#include "pgwing/conn.h"
#include "pgwing/proto.h"
#include "pgwing/xact.h"

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
	/* In a pool; only pool_set_client_state() moves a client between these. */
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
	struct auth_client *auth;
	struct auth_query_wait *lookup; /* auth_query lookup it waits for, or NULL */
	struct server_credentials cred;

	/* Its pool and its place there (pool.c), and its server (link.c). */
	struct pool *pool;
	TAILQ_ENTRY(client) pool_link; /* in its pool's list for its state */
	struct server *server;
	TAILQ_ENTRY(client) all_link; /* in the list of all clients */

	uint32_t cancel_pid; /* the key pgwing gave the client */
	uint32_t cancel_key;

	struct event *timer; /* login timeout while logging in, hold timeout while waiting */
	/* The pump's (link.c). */
	uint32_t msg_remaining; /* bytes of a partly forwarded message still to come */
	struct xact xact;       /* the request in flight */
	bool is_leaving; /* sent Terminate with answers still owed: closes after the last one */
	int64_t hold_since_ms; /* waiting for a server since (0: not waiting), across retries */
	char last_connect_error[256]; /* why its last server connect failed, told at hold_timeout */
	/*
	 * rw_split (link.c): the session's server on the other side (the primary
	 * while a replica serves, or the reverse), parked idle with the session's
	 * state as of parked_version; where the current one runs; and the read-
	 * your-writes floor.
	 */
	struct server *parked;
	uint64_t parked_version;
	bool is_request_placed;  /* the next request's server was chosen for it: no second look */
	bool is_splitting;       /* split at its last idle point: requests go one at a time */
	bool is_writing;         /* the primary ran a request not known to be read-only */
	bool is_asking_lsn;      /* asking the primary for the WAL position after a write */
	bool is_lsn_to_pipeline; /* the request is a write alone: ask right behind it */
	bool is_lsn_pipelined;   /* ... asked: its answer follows the request's */
	bool is_lsn_unknown;     /* that question failed: reads go to the primary until the next */
	bool is_split_fallback; /* a replica can't be had for this request: the primary serves it */
	uint64_t causal_lsn;    /* reads need a replica that replayed this far */
	int64_t catch_up_since_ms; /* waiting for a replica to replay causal_lsn since (0: not) */
	struct event *catch_up_timer;
	int64_t query_start_us;
	int64_t xact_start_us;
	int64_t connect_time_ms;
	int64_t wait_start_ms;
};

TAILQ_HEAD(client_list, client);

/* What a client logged in to a database tells its owner (link.c). */
struct client_ops {
	/* Authenticated for a pool's database (not the console). */
	void (*logged_in)(struct client *cl);
	/* It sent something (CL_IDLE, CL_WAITING, CL_LOGIN, CL_ACTIVE). */
	void (*readable)(struct client *cl);
	/* Its output drained. */
	void (*drained)(struct client *cl);
	/* It is closing: its server and its pool let go of it (called again is harmless). */
	void (*detach)(struct client *cl);
	/* Handed over by the process before us (client_adopt): logged in, between transactions. */
	void (*adopted)(struct client *cl);
};

/*
 * What a client handed over by another pgwing process (a takeover) brings:
 * how it logged in, what it was told, its session's state. client_adopt takes
 * it all (and zeroes h).
 */
struct client_handover {
	enum target target;
	struct startup_params params;
	struct server_credentials cred;
	struct param_set *reported;
	struct session_state *session; /* NULL: none recorded */
	uint32_t cancel_pid, cancel_key;
};

void client_set_ops(const struct client_ops *ops);
/* Take over an accepted socket. */
void client_accept(int fd, enum target target, const struct sockaddr *addr, int addrlen);
/*
 * Take over a logged-in, idle client from the process before us: its socket
 * fd (ours now, closed on failure), h (taken on success), and owed, what that
 * process still had to send it. It goes to its owner like a session between
 * servers, its state replayed on its next server. False: it was gone already.
 */
bool client_adopt(int fd, struct client_handover *h, const void *owed, size_t owed_len);
/* The end of a first welcome: the cancel key pgwing gave the client, and it may speak. */
void client_finish_welcome(struct client *cl);
/*
 * A client without a server yet is read up to forward_buffer_size, then not
 * until it has one: what it sends waits for the server, bounded as on the
 * data path.
 */
void client_hold_input(struct client *cl);
struct client_list *client_all(void);
struct client *client_find(uint64_t id);
/*
 * The two ways an error reaches a client: client_fail() sends an ErrorResponse
 * (FATAL) and closes once it is flushed; client_error() sends one (ERROR) that
 * ends only the request, and the session goes on.
 */
void client_fail(struct client *cl, const char *sqlstate, const char *fmt, ...) PRINTF_LIKE(3, 4);
void client_error(struct client *cl, const char *sqlstate, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* Close once what is queued for the client is flushed. */
void client_close(struct client *cl);
/* Take up the messages the client already sent, as a read would (its reading resumed). */
void client_read_buffered(struct client *cl);
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

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void client_init(const struct runtime *runtime);

#endif
