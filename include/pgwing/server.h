/*
 * The server side of a connection: connect to a backend, log in with the
 * client's credentials, then forward server messages to the client.
 */
#ifndef PGWING_SERVER_H
#define PGWING_SERVER_H

#include "pgwing/auth.h"
#include "pgwing/config.h"
#include "pgwing/conn.h"
#include "pgwing/proto.h"
#include "pgwing/topology.h"

#include <sys/queue.h>

struct bufferevent;
struct event;
struct evbuffer;
struct client;
struct pool;

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
	struct client *client;
	struct pool *pool;
	TAILQ_ENTRY(server) idle_link; /* in pool->idle while is_pooled */
	bool is_pooled;
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
	char tx_status;        /* from the last ReadyForQuery: 'I', 'T' or 'E' */
	bool saw_ready;        /* a ReadyForQuery went by in the current forwarding pass */
	bool is_holding;       /* the current forwarding pass holds an answer back (server.c) */
	uint32_t generation;   /* the pool's generation when this server connected */
	uint64_t routed_epoch; /* topology epoch at which the router last kept it where it is */
	int restore_pending;   /* ReadyForQuery messages still due while restoring */
	char last_fatal[256];  /* the message of a FATAL the server ended with */
	bool is_ending;        /* relayed a FATAL about the session itself: the client goes too */
	uint32_t msg_remaining;
	int64_t connect_time_ms;
	int64_t idle_since_ms; /* when it was pooled */
};

TAILQ_HEAD(server_list, server);

/* Start connecting to b for client cl; cl->server is set at once. */
struct server *server_connect(struct backend *b, struct client *cl);
/* Give a pooled server to cl: its session state is replayed, then the client is ready. */
void server_attach(struct server *sv, struct client *cl);
/* Its client is done with it: run server_reset_query, then pool it (pool_park_server). */
void server_reset(struct server *sv);
/* Start a non-blocking connect of bev (TCP by name or address, or a unix socket directory). */
int server_connect_socket(struct bufferevent *bev, const char *host, int port);
/* Follow the topology: servers on a backend a reload drops let go of it. */
void server_watch_topology(struct topology *topo);
/*
 * Forward whatever the server has buffered to its client. Returns false when
 * sv is gone (lost, failed, given back or closed with its client): a new
 * server may have taken its place, even at its address.
 */
bool server_forward(struct server *sv);
/* Close (sending Terminate when logged in); detaches from its client. */
void server_close(struct server *sv);
/*
 * Give up on a server whose backend must no longer serve its session (fenced,
 * demoted, down): it is closed now, which makes Postgres roll back what it has
 * open. The client of an active one is told as for a lost connection
 * (client_server_lost); one still connecting, logging in or replaying a moved
 * session tries again elsewhere (client_server_unreachable). why completes
 * "... backend NAME (HOST:PORT): ".
 */
void server_abandon(struct server *sv, const char *why);

#endif
