/*
 * Server connections: connect to a backend, log in as the client's user with
 * the credentials pgwing holds, collect the welcome (ParameterStatus,
 * BackendKeyData, ReadyForQuery), rebuild a moved session's state; while
 * active, its owner (link.c) pumps its messages. A server its client gave
 * back is reset here and then kept by its pool (pool.c). Everything that
 * happens is reported through the owner's ops (server.h).
 */
#include "pgwing/server.h"

#include "pgwing/listener.h"
#include "pgwing/log.h"
#include "pgwing/proto.h"
#include "pgwing/runtime.h"
#include "pgwing/session.h"
#include "pgwing/tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* The process state, given by the runtime at start (server_init): read, never written. */
static const struct runtime *rt;

void server_init(const struct runtime *runtime)
{
	rt = runtime;
}

static uint64_t next_server_id = 1;

/* Unanswered keepalive probes, sent every third of server_tcp_keepalive, before giving up. */
#define SERVER_KEEPALIVE_PROBES 3

static void server_read_cb(struct bufferevent *bev, void *arg);
static void server_write_cb(struct bufferevent *bev, void *arg);
static void server_event_cb(struct bufferevent *bev, short what, void *arg);

int server_connect_socket(struct bufferevent *bev, const char *host, int port)
{
	if (host[0] == '/') {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", host,
				     port) >= sizeof(sun.sun_path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		return bufferevent_socket_connect(bev, (struct sockaddr *)&sun, sizeof(sun));
	}
	return bufferevent_socket_connect_hostname(bev, rt->dns, AF_UNSPEC, host, port);
}

/* The memory of a closed server, once no callback chain can hold it (free_later). */
static void server_release(void *arg)
{
	struct server *sv = arg;

	if (sv->login != NULL)
		auth_login_free(sv->login);
	if (sv->welcome != NULL)
		evbuffer_free(sv->welcome);
	startup_params_free(&sv->startup);
	startup_params_free(&sv->reported);
	session_state_free(sv->held);
	capture_clear(&sv->check);
	free(sv->backend_name);
	free(sv->backend_host);
	free(sv);
}

/*
 * The server is gone: unlinked from its client, pool and backend and its
 * socket closed now, its state SV_CLOSING for any caller up the chain (a
 * restore loop that readied the client, which then closed), its memory freed
 * later.
 */
static void server_free(struct server *sv)
{
	sv->ops->gone(sv);
	sv->owner = NULL;
	if (sv->backend != NULL)
		topology_note_server_closed(sv->backend);
	sv->backend = NULL;
	sv->state = SV_CLOSING;
	if (sv->timer != NULL)
		event_free(sv->timer);
	sv->timer = NULL;
	conn_close(&sv->conn);
	free_later(server_release, sv);
}

void server_close(struct server *sv)
{
	if (sv->state == SV_ACTIVE || sv->state == SV_RESET || sv->state == SV_IDLE) {
		struct evbuffer *out = conn_output(&sv->conn);

		/*
		 * A polite goodbye keeps "unexpected EOF" out of the server's log. One
		 * non-blocking write attempt: if the socket is full, the close says enough.
		 */
		proto_put_terminate(out);
	}
	server_free(sv);
}

static void describe(const struct server *sv, const char *what, const char *detail, char *buf,
		     size_t buflen)
{
	snprintf(buf, buflen, "%s backend %s (%s:%d): %s", what, sv->backend_name, sv->backend_host,
		 sv->backend_port, detail);
}

/*
 * Tell the client why its server is gone, and close it. Every message names the
 * backend, so the user knows which one failed: "<what> backend pg1 (host:port): detail".
 */
void server_fail(struct server *sv, const char *what, const char *detail)
{
	char text[512];

	describe(sv, what, detail, text, sizeof(text));
	log_info("server %" PRIu64 ": %s", sv->id, text);
	if (sv->owner != NULL)
		sv->ops->failed(sv, text); /* closes sv with its client */
	else
		server_free(sv);
}

void server_lost(struct server *sv, const char *what, const char *reason)
{
	char text[512];

	describe(sv, what, reason, text, sizeof(text));
	log_info("server %" PRIu64 ": %s", sv->id, text);
	sv->ops->lost(sv, text); /* closes sv */
}

/* Out of descriptors: new clients would only take the ones the waiting clients' servers need. */
static void note_connect_errno(int err)
{
	if (err == EMFILE || err == ENFILE)
		listener_note_fd_shortage(err);
}

/* Connecting or logging in failed in a way that may pass: the client waits and tries again. */
static void server_unreachable(struct server *sv, const char *detail)
{
	char text[512];

	describe(sv, "could not connect to", detail, text, sizeof(text));
	log_debug("server %" PRIu64 ": %s", sv->id, text); /* retried: the pool logs the hold */
	sv->ops->unreachable(sv, text);                    /* closes sv */
}

void server_abandon(struct server *sv, const char *why)
{
	/*
	 * Not serving yet (connecting, logging in, replaying a moved session):
	 * nothing was sent for the client, which tries again elsewhere.
	 */
	if (sv->state != SV_ACTIVE) {
		server_unreachable(sv, why);
		return;
	}
	server_lost(sv, "gave up on", why);
}

static void server_timeout_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct server *sv = arg;
	char detail[64];

	if (sv->state == SV_RESET) {
		log_info("server %" PRIu64 ": server_reset_query not answered within %" PRId64
			 " ms, closing",
			 sv->id, rt->cfg->server_connect_timeout_ms);
		server_close(sv);
		return;
	}
	snprintf(detail, sizeof(detail), "timeout after %" PRId64 " ms",
		 rt->cfg->server_connect_timeout_ms);
	server_unreachable(sv, detail);
}

struct server *server_connect(struct backend *b, const struct server_login *login,
			      const struct server_ops *ops, void *owner)
{
	struct server *sv = xcalloc(1, sizeof(*sv));

	sv->id = next_server_id++;
	sv->backend = b;
	sv->backend_name = xstrdup(b->name);
	sv->backend_host = xstrdup(b->host);
	sv->backend_port = b->port;
	sv->ops = ops;
	sv->owner = owner;
	sv->cred = login->cred;
	sv->is_read_only = login->is_read_only;
	startup_params_copy(&sv->startup, login->params);
	sv->state = SV_CONNECTING;
	sv->tls_mode = tls_server_mode(b);
	sv->connect_time_ms = now_ms();
	sv->welcome = CHECK_ALLOC(evbuffer_new());
	sv->timer = CHECK_ALLOC(evtimer_new(rt->base, server_timeout_cb, sv));
	if (!conn_open(&sv->conn, -1, server_read_cb, server_write_cb, server_event_cb, sv)) {
		log_error("cannot create server connection: out of memory");
		abort();
	}
	topology_note_server_opened(b);
	return sv;
}

void server_start(struct server *sv)
{
	timer_add_ms(sv->timer, rt->cfg->server_connect_timeout_ms);
	log_debug("server %" PRIu64 ": connecting to %s (%s:%d)", sv->id, sv->backend_name,
		  sv->backend_host, sv->backend_port);
	if (server_connect_socket(sv->conn.bev, sv->backend_host, sv->backend_port) < 0) {
		/* The event callback reports most failures; this is the synchronous rest. */
		int err = errno;

		note_connect_errno(err);
		server_unreachable(sv, strerror(err));
	}
}

/*
 * The client's startup parameters, plus default_transaction_read_only = on for
 * a read-only pool: the ro port must be read-only whichever server serves it,
 * a replica or the primary it falls back to (or a replica promoted under a
 * pooled server). As a startup parameter it is the session's default, so
 * RESET ALL and DISCARD ALL keep it, and it wins over the client's own value
 * and over -c in options (PostgreSQL applies options first).
 */
static void server_put_startup(struct server *sv)
{
	struct startup_params params = {0};

	if (!sv->is_read_only) {
		proto_put_startup(conn_output(&sv->conn), &sv->startup);
		return;
	}
	startup_params_copy(&params, &sv->startup);
	startup_params_set(&params, "default_transaction_read_only", "on");
	proto_put_startup(conn_output(&sv->conn), &params);
	startup_params_free(&params);
}

static void server_send_startup(struct server *sv)
{
	struct auth_server_policy policy = auth_server_policy_of(rt->cfg);

	sv->state = SV_LOGIN;
	sv->login = auth_login_new(sv->cred, &policy);
	server_put_startup(sv);
	conn_read_on(&sv->conn);
}

/*
 * A backend cut off by a silent partition (or a machine gone without a reset)
 * sends nothing, and a session waiting for its answer would wait for good:
 * probes mark the backend down, but the data path must not depend on them.
 * Keepalives end an idle connection to it, the user timeout one with
 * unacknowledged data; the socket then fails with ETIMEDOUT, as a lost server.
 * A hung Postgres on a live machine is not caught this way (its kernel still
 * acknowledges): that is the probes' part (link_end_on_lost_backends).
 */
static void server_set_tcp_timeouts(int fd)
{
	int64_t idle_ms = rt->cfg->server_tcp_keepalive_ms;
	int user_timeout = (int)rt->cfg->server_tcp_user_timeout_ms;

	if (idle_ms > 0) {
		int on = 1;
		int idle = (int)((idle_ms + 999) / 1000);
		int interval =
			idle / SERVER_KEEPALIVE_PROBES > 0 ? idle / SERVER_KEEPALIVE_PROBES : 1;
		int count = SERVER_KEEPALIVE_PROBES;

		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
	}
	if (user_timeout > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

/*
 * The socket is connected: ask for TLS first unless the mode says plaintext
 * (allow connects in plaintext; pgwing does not retry with TLS).
 */
static void server_connected(struct server *sv)
{
	int one = 1;

	conn_connected(&sv->conn);
	if (sv->backend_host[0] != '/') {
		setsockopt(sv->conn.plain_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		server_set_tcp_timeouts(sv->conn.plain_fd);
	}
	if (sv->tls_mode <= TLS_ALLOW) {
		server_send_startup(sv);
		return;
	}
	proto_put_ssl_request(conn_output(&sv->conn));
	sv->is_awaiting_ssl_reply = true;
	conn_read_on(&sv->conn);
}

/* Wrap the connection in TLS; the handshake's end (BEV_EVENT_CONNECTED) sends the startup. */
static void server_start_tls(struct server *sv)
{
	SSL *ssl = tls_server_ssl_new(sv->backend_host, sv->tls_mode);

	if (ssl == NULL) {
		server_fail(sv, "cannot use TLS with", "could not set up the TLS connection");
		return;
	}
	if (!conn_start_tls(&sv->conn, ssl, false)) {
		log_error("cannot create TLS buffer for server: out of memory");
		abort();
	}
	conn_read_on(&sv->conn);
}

/* The one-byte answer to SSLRequest. */
static void server_handle_ssl_reply(struct server *sv)
{
	struct evbuffer *in = conn_input(&sv->conn);
	char reply;

	if (evbuffer_remove(in, &reply, 1) != 1)
		return;
	sv->is_awaiting_ssl_reply = false;
	if (reply == PROTO_ENCRYPTION_YES && evbuffer_get_length(in) > 0) {
		/* Bytes before the handshake could be injected by a MITM (CVE-2021-23222). */
		server_fail(sv, "cannot use TLS with", "received unencrypted data after 'S'");
	} else if (reply == PROTO_ENCRYPTION_YES) {
		server_start_tls(sv);
	} else if (reply == PROTO_ENCRYPTION_NO && sv->tls_mode == TLS_PREFER) {
		server_send_startup(sv);
	} else if (reply == PROTO_ENCRYPTION_NO) {
		server_fail(sv, "cannot use TLS with",
			    "the server does not support TLS, and sslmode requires it");
	} else {
		server_fail(sv, "cannot use TLS with", "unexpected answer to SSLRequest");
	}
}

void server_note_parameter(struct server *sv, const uint8_t *body, size_t len)
{
	const char *name, *value;

	if (proto_parse_parameter_status(body, len, &name, &value))
		startup_params_set(&sv->reported, name, value);
}

static void server_ready(struct server *sv)
{
	event_del(sv->timer);
	sv->state = SV_ACTIVE;
	sv->ops->ready(sv);
}

/* The restore is over: from now on the session's own record says what the server holds. */
static void server_forget_held(struct server *sv)
{
	session_state_free(sv->held);
	sv->held = NULL;
}

void server_keep_state(struct server *sv, const struct session_state *st)
{
	server_forget_held(sv);
	sv->held = session_state_copy(st);
}

void server_restore(struct server *sv, struct session_state *st)
{
	/* State the session records exactly isn't state the server must be reset of. */
	if (st != NULL && !session_state_is_exact(st))
		server_mark_dirty(sv);
	sv->restore_pending =
		session_state_replay(st, sv->held, &sv->restore_plan, conn_output(&sv->conn));
	if (sv->restore_pending == 0) {
		server_forget_held(sv);
		server_ready(sv);
		return;
	}
	sv->restoring = st;
	sv->restore_at = 0;
	sv->is_restore_failed = false;
	sv->restore_error[0] = '\0';
	sv->state = SV_RESTORE;
	log_debug("server %" PRIu64 ": restoring the session state of its client", sv->id);
}

/*
 * The next whole message of the login or restore phase, or NULL: not all
 * buffered yet, or a bad length, for which the client has been told (sv is freed).
 */
static uint8_t *server_next_message(struct server *sv, char *type, uint32_t *len)
{
	uint8_t *msg = NULL;

	switch (proto_next_message(conn_input(&sv->conn), (uint32_t)rt->cfg->max_packet_size, type,
				   len, &msg)) {
	case PROTO_FRAME_NEED_MORE:
		return NULL;
	case PROTO_FRAME_BAD_LENGTH:
	case PROTO_FRAME_TOO_LARGE:
		server_fail(sv, "invalid message from", "bad message length");
		return NULL;
	case PROTO_FRAME_OK:
		break;
	}
	return msg;
}

/*
 * A request of the replay is answered (ReadyForQuery). A failed one the
 * session can do without is forgotten; the first other failure is kept to
 * tell the client once the replay is over.
 */
static void server_note_replayed(struct server *sv)
{
	if (sv->is_restore_failed)
		return;
	if (sv->restore_error[0] == '\0') {
		sv->restore_at++;
	} else if (session_state_forget_unreplayable(sv->restoring, sv->held, &sv->restore_plan,
						     sv->restore_at)) {
		log_info("server %" PRIu64 ": a prepared statement could not be prepared again on "
			 "%s, the session goes on without it: %s",
			 sv->id, sv->backend_name, sv->restore_error);
		sv->restore_error[0] = '\0';
	} else {
		sv->is_restore_failed = true;
	}
}

/* The replay is over: the client goes on, or is told why its session could not be carried. */
static void server_end_restore(struct server *sv)
{
	char text[512];

	sv->restoring = NULL;
	server_forget_held(sv);
	if (!sv->is_restore_failed) {
		server_ready(sv);
		return;
	}
	snprintf(text, sizeof(text), "session state could not be carried to the new server: %s",
		 sv->restore_error);
	log_info("server %" PRIu64 ": on backend %s: %s", sv->id, sv->backend_name, text);
	sv->ops->failed(sv, text); /* closes sv with its client */
}

static void server_handle_restore(struct server *sv)
{
	struct evbuffer *in = conn_input(&sv->conn);

	while (sv->state == SV_RESTORE) {
		struct proto_error_fields ef;
		uint8_t *msg;
		uint32_t len;
		char type;

		msg = server_next_message(sv, &type, &len);
		if (msg == NULL)
			return;
		switch (type) {
		case PqMsg_ErrorResponse:
			if (!proto_parse_error(msg + PROTO_HEADER_LEN, len - 4, &ef) ||
			    ef.message == NULL)
				ef.message = "unknown error";
			/*
			 * A FATAL is the server going (shut down, terminated), not the
			 * session's state failing to replay: the session tries another.
			 */
			if (ef.severity != NULL && (strcmp(ef.severity, "FATAL") == 0 ||
						    strcmp(ef.severity, "PANIC") == 0)) {
				server_unreachable(sv, ef.message);
				return;
			}
			if (!sv->is_restore_failed)
				snprintf(sv->restore_error, sizeof(sv->restore_error), "%s",
					 ef.message);
			evbuffer_drain(in, 1 + len);
			break;
		case PqMsg_ParameterStatus:
			/* A replayed SET may report a parameter: the client hears of it if it
			 * changed. */
			server_note_parameter(sv, msg + PROTO_HEADER_LEN, len - 4);
			evbuffer_remove_buffer(in, sv->welcome, 1 + len);
			break;
		case PqMsg_ReadyForQuery:
			sv->tx_status = len >= 5 ? (char)msg[5] : PROTO_TX_IDLE;
			evbuffer_drain(in, 1 + len);
			server_note_replayed(sv);
			if (--sv->restore_pending == 0)
				server_end_restore(sv);
			break;
		default:
			evbuffer_drain(in, 1 + len);
			break;
		}
	}
}

/* pgwing could not answer the server's authentication request for this user. */
static void server_login_failed(struct server *sv, const char *err)
{
	char detail[300];

	snprintf(detail, sizeof(detail), "as user \"%s\": %s", sv->startup.user,
		 err != NULL ? err : "authentication failed");
	server_fail(sv, "cannot log in to", detail);
}

/*
 * Login: the whole message is buffered (they are small), then handled. Errors
 * from the server (no such database, its own auth failure) go to the client
 * verbatim, so it sees exactly what Postgres said.
 */
static void server_handle_login(struct server *sv)
{
	struct evbuffer *in = conn_input(&sv->conn);

	while (sv->state == SV_LOGIN) {
		const char *err = NULL;
		uint8_t *msg;
		uint32_t len;
		char type;

		msg = server_next_message(sv, &type, &len);
		if (msg == NULL)
			return;
		switch (type) {
		case PqMsg_AuthenticationRequest:
			switch (auth_login_step(sv->login, msg + PROTO_HEADER_LEN, len - 4,
						conn_output(&sv->conn), &err)) {
			case AUTH_STEP_CONTINUE:
			case AUTH_STEP_OK:
				evbuffer_drain(in, 1 + len);
				break;
			case AUTH_STEP_FAILED:
				evbuffer_drain(in, 1 + len);
				server_login_failed(sv, err);
				return;
			}
			break;
		case PqMsg_ParameterStatus:
			server_note_parameter(sv, msg + PROTO_HEADER_LEN, len - 4);
			evbuffer_remove_buffer(in, sv->welcome, 1 + len);
			break;
		case PqMsg_NoticeResponse:
			evbuffer_remove_buffer(in, sv->welcome, 1 + len);
			break;
		case PqMsg_BackendKeyData: {
			struct proto_reader r;

			proto_reader_init(&r, msg + PROTO_HEADER_LEN, len - 4);
			sv->backend_pid = proto_read_int32(&r);
			sv->backend_key = proto_read_int32(&r);
			evbuffer_drain(in, 1 + len);
			break;
		}
		case PqMsg_NegotiateProtocolVersion: /* we asked for plain 3.0 anyway */
			evbuffer_drain(in, 1 + len);
			break;
		case PqMsg_ReadyForQuery:
			sv->tx_status = len >= 5 ? (char)msg[5] : PROTO_TX_IDLE;
			evbuffer_drain(in, 1 + len);
			auth_login_free(sv->login);
			sv->login = NULL;
			log_debug("server %" PRIu64 ": logged in to %s, backend pid %u", sv->id,
				  sv->backend_name, sv->backend_pid);
			sv->ops->logged_in(sv);
			return;
		case PqMsg_ErrorResponse: {
			struct proto_error_fields ef;

			if (!proto_parse_error(msg + PROTO_HEADER_LEN, len - 4, &ef))
				memset(&ef, 0, sizeof(ef));
			if (ef.sqlstate != NULL &&
			    (strcmp(ef.sqlstate, SQLSTATE_CANNOT_CONNECT_NOW) == 0 ||
			     strcmp(ef.sqlstate, SQLSTATE_ADMIN_SHUTDOWN) == 0)) {
				/* Starting up or shutting down: later, or elsewhere, will do. */
				char reason[256];

				snprintf(reason, sizeof(reason), "%s",
					 ef.message != NULL ? ef.message : ef.sqlstate);
				evbuffer_drain(in, 1 + len); /* ef points into what this frees */
				server_unreachable(sv, reason);
				return;
			}
			log_info("server %" PRIu64 ": login to %s refused: %s %s", sv->id,
				 sv->backend_name, ef.sqlstate ? ef.sqlstate : "",
				 ef.message ? ef.message : "");
			sv->ops->refused(sv, in, 1 + len); /* closes sv */
			return;
		}
		default:
			server_fail(sv, "unexpected message during login from",
				    "protocol violation");
			return;
		}
	}
}

void server_attach(struct server *sv, const struct server_ops *ops, void *owner)
{
	log_debug("server %" PRIu64 ": reused (backend pid %u)", sv->id, sv->backend_pid);
	sv->ops = ops;
	sv->owner = owner;
	/* The client compares what it was told with this server's values. */
	evbuffer_drain(sv->welcome, evbuffer_get_length(sv->welcome));
	proto_put_parameter_statuses(sv->welcome, &sv->reported);
}

void server_detach(struct server *sv)
{
	sv->owner = NULL;
}

void server_forget_backend(struct server *sv)
{
	sv->backend = NULL;
}

/* Reset: the server is idle; its owner pools it, or closes it (false). */
static bool server_finish_reset(struct server *sv)
{
	sv->state = SV_IDLE;
	sv->is_dirty = false;
	sv->has_changed_since_check = sv->may_hold_unseen = false; /* nothing is left to find */
	sv->clean_requests = 0;
	return sv->ops->reset_done(sv);
}

/*
 * Whenever it is dirty, as PgBouncer in session mode: the client's recorded
 * session state (session.c) covers what can be replayed, not all a session
 * can change (set_config(), temp tables made by functions, advisory locks,
 * portals). A server that ran only provably read-only requests since its
 * login or last reset holds nothing to take away: skipping the round trip
 * makes a hand-over between sessions free.
 */
void server_reset(struct server *sv)
{
	const char *query = rt->cfg->server_reset_query;

	/* Whatever backpressure its last client put on it is gone with the client. */
	bufferevent_setwatermark(sv->conn.bev, EV_WRITE, 0, 0);
	conn_read_on(&sv->conn);
	sv->restore_pending = 0;
	sv->state = SV_RESET;
	if (query[0] == '\0' || (!sv->is_dirty && !rt->cfg->server_reset_always)) {
		server_finish_reset(sv);
		return;
	}
	server_forget_held(sv); /* DISCARD ALL (the default) deallocates them */
	proto_put_query(conn_output(&sv->conn), query);
	timer_add_ms(sv->timer, rt->cfg->server_connect_timeout_ms);
}

/*
 * Messages of a server without a client: the answer to the reset query, or
 * what an idle server may say (a parameter report, a notice, or a FATAL
 * before it goes). Anything else, or a failed reset, closes it.
 */
static void server_handle_unattached(struct server *sv)
{
	struct evbuffer *in = conn_input(&sv->conn);

	while (sv->state == SV_RESET || sv->state == SV_IDLE) {
		bool is_reset_answer;
		uint8_t *msg;
		uint32_t len;
		char type;

		msg = server_next_message(sv, &type, &len);
		if (msg == NULL)
			return;
		/* The reset's own answer: CommandComplete, rows if it is a SELECT, ReadyForQuery.
		 */
		is_reset_answer =
			sv->state == SV_RESET && type != PqMsg_ErrorResponse &&
			(type != PqMsg_ReadyForQuery || (len == 5 && msg[5] == PROTO_TX_IDLE));
		if (!is_reset_answer && type != PqMsg_ParameterStatus &&
		    type != PqMsg_NoticeResponse && type != PqMsg_NotificationResponse) {
			struct proto_error_fields ef;

			if (type != PqMsg_ErrorResponse ||
			    !proto_parse_error(msg + PROTO_HEADER_LEN, len - 4, &ef))
				memset(&ef, 0, sizeof(ef));
			log_info("server %" PRIu64 ": closing %s server on %s: %s", sv->id,
				 sv->state == SV_RESET ? "a resetting" : "a pooled",
				 sv->backend_name,
				 ef.message != NULL ? ef.message : "unexpected message");
			server_close(sv);
			return;
		}
		if (type == PqMsg_ParameterStatus)
			server_note_parameter(sv, msg + PROTO_HEADER_LEN, len - 4);
		evbuffer_drain(in, 1 + len);
		if (type == PqMsg_ReadyForQuery && sv->state == SV_RESET) {
			event_del(sv->timer);
			if (!server_finish_reset(sv))
				return; /* closed */
		}
	}
}
static void server_read_cb(struct bufferevent *bev UNUSED, void *arg)
{
	struct server *sv = arg;

	switch (sv->state) {
	case SV_LOGIN:
		server_handle_login(sv);
		break;
	case SV_RESTORE:
		server_handle_restore(sv);
		break;
	case SV_ACTIVE:
		sv->ops->readable(sv);
		break;
	case SV_CONNECTING:
		if (sv->is_awaiting_ssl_reply)
			server_handle_ssl_reply(sv);
		break;
	case SV_RESET:
	case SV_IDLE:
		server_handle_unattached(sv);
		break;
	case SV_CLOSING:
		break;
	}
}

/* The server's output drained: the client may send again. */
static void server_write_cb(struct bufferevent *bev UNUSED, void *arg)
{
	struct server *sv = arg;

	if (sv->owner != NULL && sv->state == SV_ACTIVE)
		sv->ops->drained(sv);
}

static void server_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct server *sv = arg;
	const char *reason;
	int dns_err;

	if (what & BEV_EVENT_CONNECTED) {
		/* The socket connected, or (on a TLS filter) the handshake finished. */
		if (tls_of(bev) != NULL)
			server_send_startup(sv);
		else
			server_connected(sv);
		return;
	}
	if (sv->state == SV_RESET || sv->state == SV_IDLE) {
		log_debug("server %" PRIu64 ": pooled server on %s closed", sv->id,
			  sv->backend_name);
		server_free(sv);
		return;
	}
	if (sv->state == SV_CONNECTING && tls_of(bev) != NULL) {
		char detail[300];

		/* A certificate that fails verification won't pass on a retry: tell the client. */
		tls_describe_error(bev, detail, sizeof(detail));
		server_fail(sv, "TLS handshake failed with", detail);
		return;
	}
	dns_err = bufferevent_socket_get_dns_error(bev);
	if (dns_err != 0)
		reason = evutil_gai_strerror(dns_err);
	else if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();

		reason = evutil_socket_error_to_string(err);
		note_connect_errno(err);
	} else
		reason = "server closed the connection";
	if (sv->state == SV_ACTIVE) {
		/*
		 * What the server sent before it went reaches the client first. If
		 * that already ended sv (a FATAL), the session may have a new server.
		 */
		sv->ops->readable(sv);
		if (sv->state == SV_ACTIVE && sv->owner != NULL)
			server_lost(sv, "lost connection to", reason);
	} else {
		/*
		 * Connecting, logging in or replaying a moved session's state: nothing
		 * of the client's ran on it yet, so the client tries again elsewhere.
		 */
		server_unreachable(sv, reason);
	}
}
