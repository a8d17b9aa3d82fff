/*
 * Client connections. The startup phase is parsed here (pgwing answers
 * SSLRequest, authenticates the client itself, hands cancel requests over);
 * after that the data path only frames messages and moves evbuffer chains to
 * the server, never copying a body.
 */
#include "pgwing/client.h"

#include "pgwing/auth_query.h"
#include "pgwing/cancel.h"
#include "pgwing/classify.h"
#include "pgwing/config.h"
#include "pgwing/health.h"
#include "pgwing/log.h"
#include "pgwing/pool.h"
#include "pgwing/router.h"
#include "pgwing/runtime.h"
#include "pgwing/server.h"
#include "pgwing/session.h"
#include "pgwing/tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Auth messages are small; a client sending more during login is misbehaving. */
#define AUTH_MESSAGE_MAX 8192

/*
 * Queries up to this size are classified (retry safety, session state); larger
 * ones pass unexamined, which only means they are never retried or replayed.
 */
#define CLASSIFY_MAX_SQL   (64 * 1024)
#define CLASSIFY_MAX_STMTS 32

/*
 * The copy of a retryable Query is kept in a buffer that serves the next one
 * too, so that small queries cost no allocation. A buffer grown past this is
 * freed after its request, and a client that gives its server back keeps none:
 * idle clients hold no retry memory.
 */
#define RETRY_KEEP_MAX 2048

static struct client_list all_clients = TAILQ_HEAD_INITIALIZER(all_clients);
static int nclients;
static uint64_t next_client_id = 1;

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_wake_from_idle(struct client *cl);
static void client_give_back_server(struct client *cl);
static void client_settle_idle(struct client *cl);
static void client_hold_input(struct client *cl);

int client_count(void)
{
	return nclients;
}

/* The memory of a closed client, once no callback chain can hold it (free_later). */
static void client_release(void *arg)
{
	struct client *cl = arg;

	if (cl->auth != NULL)
		auth_client_free(cl->auth);
	server_credentials_free(&cl->cred);
	startup_params_free(&cl->params);
	param_set_unref(cl->reported);
	if (cl->session != NULL)
		session_state_free(cl->session);
	free(cl->retry);
	free(cl->pending_session_sql);
	free(cl);
}

/*
 * The client is gone: unlinked from everything and its socket closed now,
 * its state CL_CLOSING for any caller up the chain, its memory freed later.
 */
static void client_free(struct client *cl)
{
	admin_client_gone(cl);
	auth_query_cancel(cl->lookup);
	cl->lookup = NULL;
	if (cl->server != NULL)
		client_give_back_server(cl);
	pool_forget_client(cl);
	cancel_unregister(cl);
	TAILQ_REMOVE(&all_clients, cl, all_link);
	nclients--;
	cl->state = CL_CLOSING;
	if (cl->timer != NULL)
		event_free(cl->timer);
	cl->timer = NULL;
	conn_close(&cl->conn);
	free_later(client_release, cl);
}

static void closing_write_cb(struct bufferevent *bev UNUSED, void *arg)
{
	struct client *cl = arg;

	if (evbuffer_get_length(conn_output(&cl->conn)) == 0)
		client_free(cl);
}

static void closing_event_cb(struct bufferevent *bev UNUSED, short what UNUSED, void *arg)
{
	client_free(arg);
}

/* Stop reading, let the output drain, then free: the client sees our last message. */
void client_close(struct client *cl)
{
	struct evbuffer *out = conn_output(&cl->conn);

	if (cl->server != NULL)
		client_give_back_server(cl);
	pool_forget_client(cl);
	/* Its lookup's answer must not restart the login of a client on its way out. */
	auth_query_cancel(cl->lookup);
	cl->lookup = NULL;
	cl->state = CL_CLOSING;
	if (cl->timer != NULL)
		event_del(cl->timer);
	conn_read_off(&cl->conn);
	if (evbuffer_get_length(out) == 0) {
		client_free(cl);
		return;
	}
	bufferevent_setwatermark(cl->conn.bev, EV_WRITE, 0, 0);
	conn_set_callbacks(&cl->conn, NULL, closing_write_cb, closing_event_cb, cl);
	/* A peer that never reads must not hold the connection forever. */
	{
		struct timeval tv = {5, 0};

		bufferevent_set_timeouts(cl->conn.bev, NULL, &tv);
	}
	bufferevent_enable(cl->conn.bev, EV_WRITE);
}

void client_fail(struct client *cl, const char *sqlstate, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	if (cl->state == CL_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_debug("client %" PRIu64 " %s: %s", cl->id, sqlstate, text);
	proto_put_error(conn_output(&cl->conn), "FATAL", sqlstate, "%s", text);
	client_close(cl);
}

void client_close_all(const char *reason)
{
	struct client *cl, *next;

	for (cl = TAILQ_FIRST(&all_clients); cl != NULL; cl = next) {
		next = TAILQ_NEXT(cl, all_link);
		client_fail(cl, SQLSTATE_ADMIN_SHUTDOWN, "%s", reason);
	}
}

/* Logged in to a pool, with no request or transaction under way: PostgreSQL's "idle". */
static bool client_is_between_transactions(struct client *cl)
{
	if (cl->state == CL_IDLE)
		return true;
	return cl->state == CL_ACTIVE && cl->pending_syncs == 0 && cl->xact_start_us == 0 &&
	       !cl->is_mid_request && evbuffer_get_length(conn_input(&cl->conn)) == 0;
}

int client_close_idle(const char *reason)
{
	struct client *cl, *next;
	int left = 0;

	for (cl = TAILQ_FIRST(&all_clients); cl != NULL; cl = next) {
		next = TAILQ_NEXT(cl, all_link);
		if (cl->state == CL_ADMIN || cl->state == CL_CLOSING)
			continue;
		if (client_is_between_transactions(cl))
			client_fail(cl, SQLSTATE_ADMIN_SHUTDOWN, "%s", reason);
		else
			left++;
	}
	return left;
}

void client_cancel_all(void)
{
	const struct client *cl;

	TAILQ_FOREACH (cl, &all_clients, all_link)
		if (cl->server != NULL && cl->pending_syncs > 0)
			cancel_forward(cl->cancel_pid, cl->cancel_key);
}

static void client_login_timeout_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct client *cl = arg;

	log_info("client %" PRIu64 " from %s: login timed out", cl->id, cl->addr);
	client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION,
		    "client_login_timeout: login not finished in time");
}

static void describe_peer(struct client *cl, const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, cl->addr, sizeof(cl->addr));
		cl->port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, cl->addr, sizeof(cl->addr));
		cl->port = ntohs(in6->sin6_port);
	} else {
		snprintf(cl->addr, sizeof(cl->addr), "unix");
		cl->is_unix = true;
	}
}

void client_accept(int fd, enum target target, const struct sockaddr *addr, int addrlen UNUSED)
{
	struct client *cl = xcalloc(1, sizeof(*cl));
	int one = 1;

	cl->id = next_client_id++;
	cl->target = target;
	cl->state = CL_STARTUP;
	cl->connect_time_ms = now_ms();
	describe_peer(cl, addr);
	if (!cl->is_unix) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	} else {
		struct ucred cred;
		socklen_t credlen = sizeof(cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == 0) {
			cl->has_peer_uid = true;
			cl->peer_uid = cred.uid;
		}
	}
	evutil_make_socket_nonblocking(fd);
	if (!conn_open(&cl->conn, fd, client_read_cb, client_write_cb, client_event_cb, cl)) {
		log_error("cannot create buffer for client: out of memory");
		free(cl);
		return;
	}
	TAILQ_INSERT_TAIL(&all_clients, cl, all_link);
	nclients++;
	cl->is_over_limit = nclients > rt.cfg->max_client_conn;

	cl->timer = CHECK_ALLOC(evtimer_new(rt.base, client_login_timeout_cb, cl));
	timer_add_ms(cl->timer, rt.cfg->client_login_timeout_ms);

	conn_read_on(&cl->conn);
	log_debug("client %" PRIu64 " connected from %s:%d to %s", cl->id, cl->addr, cl->port,
		  target_name(target));
}

/* The end of a first welcome: the cancel key pgwing gave the client, and it may speak. */
static void client_finish_welcome(struct client *cl)
{
	struct evbuffer *out = conn_output(&cl->conn);

	cancel_register(cl);
	proto_put_backend_key(out, cl->cancel_pid, cl->cancel_key);
	proto_put_ready(out, 'I');
}

/*
 * After a drain's grace only the console takes new clients; the others are
 * refused as PostgreSQL refuses them during its shutdown. Asked at the startup
 * packet (no authentication spent on them) and again at the end of a login
 * that began before the grace ended.
 */
static bool client_check_draining(struct client *cl)
{
	if (strcmp(cl->params.database, ADMIN_DATABASE) == 0 || runtime_is_accepting_clients())
		return true;
	client_fail(cl, SQLSTATE_CANNOT_CONNECT_NOW, "the database system is shutting down");
	return false;
}

/*
 * Logged in (as far as pgwing is concerned): the console answers itself, any
 * other database gets a server from its pool, or, when the pool knows the
 * welcome for these startup parameters, is welcomed with it and gets a server
 * only when it first speaks: an idle client holds no Postgres backend.
 */
static void client_login_done(struct client *cl)
{
	struct param_set *welcome;

	proto_put_auth(conn_output(&cl->conn), AUTH_REQ_OK, NULL, 0);
	event_del(cl->timer);
	/* The last activity, until its first request: idle timeouts count from the login. */
	cl->query_start_us = now_us();
	if (strcmp(cl->params.database, ADMIN_DATABASE) == 0) {
		if (cl->admin_role == ADMIN_ROLE_NONE) {
			client_fail(cl, SQLSTATE_INSUFFICIENT_PRIVILEGE,
				    "user \"%s\" may not use the admin console", cl->params.user);
			return;
		}
		cl->state = CL_ADMIN;
		admin_welcome(cl);
		return;
	}
	if (!client_check_draining(cl))
		return;
	welcome = pool_add_client(cl);
	if (welcome != NULL)
		client_welcome(cl, welcome);
	else
		pool_request_server(cl);
}

void client_welcome(struct client *cl, struct param_set *welcome)
{
	cl->reported = param_set_ref(welcome);
	proto_put_parameter_statuses(conn_output(&cl->conn), &welcome->params);
	client_finish_welcome(cl);
	cl->state = CL_IDLE;
	cl->hold_since_ms = 0;
	log_debug("client %" PRIu64 ": welcomed without a server", cl->id);
	client_settle_idle(cl);
}

/* Ask the client for its password, checked against stored (NULL: an unknown user). */
static void client_start_auth(struct client *cl, const char *stored,
			      const struct scram_secret *derived)
{
	struct evbuffer *out = conn_output(&cl->conn);
	bool is_console = strcmp(cl->params.database, ADMIN_DATABASE) == 0;

	cl->auth = auth_client_new(auth_client_type(rt.cfg, is_console, !cl->is_unix),
				   cl->params.user, stored, derived);
	if (tls_of(cl->conn.bev) != NULL) {
		uint8_t cbind[SCRAM_CBIND_MAX];
		size_t cbind_len;

		/* SCRAM-SHA-256-PLUS binds the login to this TLS connection (RFC 5929). */
		if (tls_server_end_point(tls_of(cl->conn.bev), cbind, &cbind_len))
			auth_client_set_channel_binding(cl->auth, cbind, cbind_len);
	}
	switch (auth_client_begin(cl->auth, out)) {
	case AUTH_STEP_CONTINUE:
		break;
	case AUTH_STEP_OK:
		auth_client_credentials(cl->auth, &cl->cred);
		auth_client_free(cl->auth);
		cl->auth = NULL;
		client_login_done(cl);
		break;
	case AUTH_STEP_FAILED:
		client_fail(cl, SQLSTATE_INTERNAL_ERROR, "could not start authentication");
		break;
	}
}

/* The lookup did not answer within hold_timeout: the database stayed away. */
static void client_lookup_timeout_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct client *cl = arg;
	int64_t held_s = (now_ms() - cl->hold_since_ms + 500) / 1000;

	auth_query_cancel(cl->lookup);
	cl->lookup = NULL;
	log_info("client %" PRIu64 " from %s: gave up looking up user \"%s\" after %" PRId64 " s",
		 cl->id, cl->addr, cl->params.user, held_s);
	client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
		    "could not look up the password of user \"%s\" after %" PRId64 " s (%s)",
		    cl->params.user, held_s, auth_query_last_error());
}

/* auth_query answered: the login goes on, with client_login_timeout again for the rest. */
static void client_on_lookup(void *arg, const char *stored)
{
	struct client *cl = arg;

	cl->lookup = NULL;
	cl->hold_since_ms = 0;
	event_del(cl->timer);
	event_assign(cl->timer, rt.base, -1, 0, client_login_timeout_cb, cl);
	timer_add_ms(cl->timer, rt.cfg->client_login_timeout_ms);
	client_start_auth(cl, stored, NULL);
	/* It may have stopped reading while it waited (client_hold_input). */
	if (cl->state == CL_AUTH)
		conn_read_on(&cl->conn);
}

/*
 * The auth file first; a user it lacks is looked up with auth_query (not for
 * the console: its users are pgwing's, not the database's). A lookup that
 * must wait holds the login like a client waiting for a server, up to
 * hold_timeout, since the database may be down or waking.
 */
static void client_begin_auth(struct client *cl)
{
	const char *stored = auth_file_lookup(rt.auth, cl->params.user);
	bool is_console = strcmp(cl->params.database, ADMIN_DATABASE) == 0;

	cl->admin_role = admin_role_of(cl->params.user);
	cl->state = CL_AUTH;
	/* Like PgBouncer: pgwing's own user on the unix socket needs no password for the console.
	 */
	if (is_console && cl->has_peer_uid && cl->peer_uid == geteuid()) {
		cl->admin_role = ADMIN_ROLE_ADMIN;
		client_login_done(cl);
		return;
	}
	if (stored != NULL || is_console || !auth_query_is_enabled(rt.cfg) ||
	    auth_client_type(rt.cfg, is_console, !cl->is_unix) == AUTH_TRUST) {
		client_start_auth(cl, stored, auth_file_derived_secret(rt.auth, cl->params.user));
		return;
	}
	if (auth_query_lookup(cl->params.user, client_on_lookup, cl, &cl->lookup, &stored)) {
		client_start_auth(cl, stored, NULL);
		return;
	}
	cl->hold_since_ms = now_ms();
	event_del(cl->timer);
	event_assign(cl->timer, rt.base, -1, 0, client_lookup_timeout_cb, cl);
	timer_add_ms(cl->timer, rt.cfg->hold_timeout_ms);
}

/*
 * Protocol 3.x with x > 0 or "_pq_." options: tell the client what we speak
 * (3.0, no options) instead of failing, as Postgres itself does.
 */
static void negotiate_protocol_version(struct client *cl, uint32_t version)
{
	struct evbuffer *body = CHECK_ALLOC(evbuffer_new());
	struct evbuffer *out = conn_output(&cl->conn);
	uint32_t n, minor = htonl(0), count = 0;
	char type = 'v';
	size_t i;

	for (i = 0; i < cl->params.count; i++)
		if (strncmp(cl->params.items[i].name, "_pq_.", 5) == 0)
			count++;
	if ((version & 0xffff) == 0 && count == 0) {
		evbuffer_free(body);
		return;
	}
	evbuffer_add(body, &minor, 4);
	n = htonl(count);
	evbuffer_add(body, &n, 4);
	for (i = 0; i < cl->params.count; i++)
		if (strncmp(cl->params.items[i].name, "_pq_.", 5) == 0)
			evbuffer_add(body, cl->params.items[i].name,
				     strlen(cl->params.items[i].name) + 1);
	n = htonl((uint32_t)evbuffer_get_length(body) + 4);
	evbuffer_add(out, &type, 1);
	evbuffer_add(out, &n, 4);
	evbuffer_add_buffer(out, body);
	evbuffer_free(body);
}

/* Drop "_pq_." protocol options: the server must not see what we declined. */
static void strip_protocol_options(struct startup_params *p)
{
	size_t kept = 0;

	for (size_t i = 0; i < p->count; i++) {
		if (strncmp(p->items[i].name, "_pq_.", 5) == 0) {
			free(p->items[i].name);
			free(p->items[i].value);
			continue;
		}
		p->items[kept++] = p->items[i];
	}
	p->count = kept;
	p->user = startup_params_get(p, "user");
	p->database = startup_params_get(p, "database");
	if (p->database == NULL || p->database[0] == '\0')
		p->database = p->user;
}

/*
 * Wrap the connection in TLS. The filter replaces cl->conn.bev, so everything
 * after reads and writes plaintext as before; it owns (and frees) the
 * socket's bufferevent.
 */
static void client_start_tls(struct client *cl, bool is_direct)
{
	SSL *ssl = tls_client_ssl_new();

	if (ssl == NULL || !conn_start_tls(&cl->conn, ssl, true)) {
		log_error("cannot create TLS buffer for client: out of memory");
		abort();
	}
	cl->is_direct_tls = is_direct;
	/* Last: a direct ClientHello, already read, is handshaken here and may end cl. */
	conn_read_on(&cl->conn);
}

/* The handshake finished: a direct TLS client must have said it speaks Postgres. */
static void client_tls_established(struct client *cl)
{
	SSL *ssl = tls_of(cl->conn.bev);

	log_debug("client %" PRIu64 ": TLS established (%s, %s)", cl->id, SSL_get_version(ssl),
		  SSL_get_cipher_name(ssl));
	if (cl->is_direct_tls && !tls_has_postgresql_alpn(ssl))
		client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION,
			    "direct TLS connection without ALPN protocol \"postgresql\"");
}

/* SSLRequest: 'S' and a handshake when clients may use TLS, else 'N'. */
static bool client_answer_ssl_request(struct client *cl)
{
	if (tls_of(cl->conn.bev) != NULL) {
		client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION, "SSLRequest on a TLS connection");
		return false;
	}
	/* As PostgreSQL: no TLS on a unix socket, which no one else can read. */
	if (!tls_client_is_enabled() || cl->is_unix) {
		evbuffer_add(conn_output(&cl->conn), "N", 1);
		return true;
	}
	/* The 'S' is queued on the socket before the filter's first record: it goes first. */
	evbuffer_add(conn_output(&cl->conn), "S", 1);
	/* What follows arrives through the TLS filter, which calls back; cl may be gone. */
	client_start_tls(cl, false);
	return false;
}

/*
 * After the StartupMessage, before any password: a client that must use TLS
 * and doesn't, or whose certificate names another user, goes no further.
 */
static bool client_check_tls(struct client *cl)
{
	enum tls_mode mode = rt.cfg->client_tls_sslmode;
	SSL *ssl = tls_of(cl->conn.bev);

	if (cl->is_unix || mode < TLS_REQUIRE)
		return true;
	if (ssl == NULL) {
		log_info("client %" PRIu64 " from %s: refused plaintext login (client_tls_sslmode "
			 "requires TLS)",
			 cl->id, cl->addr);
		client_fail(cl, SQLSTATE_INVALID_AUTH,
			    "pgwing requires TLS: connect with sslmode=require or stronger");
		return false;
	}
	if (mode == TLS_VERIFY_FULL && !tls_client_cert_matches(ssl, cl->params.user)) {
		client_fail(cl, SQLSTATE_INVALID_AUTH,
			    "certificate authentication failed for user \"%s\": the certificate's "
			    "common name is not the user name",
			    cl->params.user);
		return false;
	}
	return true;
}

/* Returns false when the client was closed or must wait for more bytes. */
static bool client_handle_startup(struct client *cl)
{
	struct evbuffer *in = conn_input(&cl->conn);
	struct evbuffer *out = conn_output(&cl->conn);
	uint32_t len, code;
	uint8_t *packet;
	const char *err = NULL;
	uint8_t first;

	/* A TLS record (handshake type 22) where a startup packet's length would be: direct TLS. */
	if (tls_of(cl->conn.bev) == NULL && evbuffer_copyout(in, &first, 1) == 1 &&
	    first == TLS_HANDSHAKE_RECORD) {
		if (!tls_client_is_enabled() || cl->is_unix) {
			log_info("client %" PRIu64 " from %s: direct TLS while TLS is off, closing",
				 cl->id, cl->addr);
			client_close(cl);
			return false;
		}
		client_start_tls(cl, true);
		return false;
	}

	switch (proto_peek_startup(in, PROTO_STARTUP_MAX_LEN, &len, &code)) {
	case PROTO_FRAME_NEED_MORE:
		return false;
	case PROTO_FRAME_BAD_LENGTH:
	case PROTO_FRAME_TOO_LARGE:
		/*
		 * As Postgres: logged, and closed without a word. A client that
		 * connects and says Terminate at once sends such a "length".
		 */
		log_info("client %" PRIu64 " from %s: invalid length of startup packet, closing",
			 cl->id, cl->addr);
		client_close(cl);
		return false;
	case PROTO_FRAME_OK:
		break;
	}
	if (evbuffer_get_length(in) < len)
		return false;
	packet = evbuffer_pullup(in, len);

	switch (code) {
	case PROTO_SSL_CODE:
	case PROTO_GSSENC_CODE:
		evbuffer_drain(in, len);
		if (evbuffer_get_length(in) > 0) {
			/* Bytes sent before our answer could be injected by a MITM: refuse. */
			client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION,
				    "received unencrypted data after SSL request");
			return false;
		}
		if (code == PROTO_SSL_CODE)
			return client_answer_ssl_request(cl);
		evbuffer_add(out, "N", 1);
		return true;
	case PROTO_CANCEL_CODE:
		if (len == 16) {
			uint32_t pid, key;

			memcpy(&pid, packet + 8, 4);
			memcpy(&key, packet + 12, 4);
			cancel_forward(ntohl(pid), ntohl(key));
		}
		evbuffer_drain(in, len);
		/* A cancel connection gets no answer, whatever happened. */
		client_close(cl);
		return false;
	default:
		break;
	}
	if (code >> 16 != 3) {
		evbuffer_drain(in, len);
		client_fail(cl, SQLSTATE_FEATURE_NOT_SUPPORTED,
			    "unsupported frontend protocol %u.%u: server supports 3.0", code >> 16,
			    code & 0xffff);
		return false;
	}
	if (!proto_parse_startup(packet + 8, len - 8, &cl->params, &err)) {
		evbuffer_drain(in, len);
		client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION, "%s", err);
		return false;
	}
	evbuffer_drain(in, len);
	negotiate_protocol_version(cl, code);
	strip_protocol_options(&cl->params);
	if (cl->is_over_limit) {
		client_fail(cl, SQLSTATE_TOO_MANY_CONNECTIONS,
			    "no more connections allowed (max_client_conn)");
		return false;
	}
	if (!client_check_draining(cl))
		return false;
	if (!client_check_tls(cl))
		return false;
	log_debug("client %" PRIu64 " login: user=%s database=%s", cl->id, cl->params.user,
		  cl->params.database);
	client_begin_auth(cl);
	return cl->state == CL_AUTH || cl->state == CL_ADMIN;
}

/*
 * The next whole message from a client pgwing answers itself (login, console),
 * or NULL: not all buffered yet, or a bad length, for which it was closed.
 */
static uint8_t *client_next_message(struct client *cl, uint32_t max_len, const char *bad_length,
				    char *type, uint32_t *len)
{
	uint8_t *msg = NULL;

	switch (proto_next_message(conn_input(&cl->conn), max_len, type, len, &msg)) {
	case PROTO_FRAME_NEED_MORE:
		return NULL;
	case PROTO_FRAME_BAD_LENGTH:
	case PROTO_FRAME_TOO_LARGE:
		client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION, "%s", bad_length);
		return NULL;
	case PROTO_FRAME_OK:
		break;
	}
	return msg;
}

static bool client_handle_auth(struct client *cl)
{
	struct evbuffer *in = conn_input(&cl->conn);
	struct evbuffer *out = conn_output(&cl->conn);
	enum auth_step step;
	const char *err = NULL;
	uint32_t len;
	char type;
	uint8_t *msg;

	/* Still looking the user up: nothing was asked of the client yet. */
	if (cl->auth == NULL) {
		client_hold_input(cl);
		return false;
	}
	msg = client_next_message(cl, AUTH_MESSAGE_MAX, "invalid message length during login",
				  &type, &len);
	if (msg == NULL)
		return false;
	if (type != 'p') {
		client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION,
			    "expected password response, got message type %d", type);
		return false;
	}
	step = auth_client_step(cl->auth, msg + PROTO_HEADER_LEN, len - 4, out, &err);
	evbuffer_drain(in, 1 + len);
	switch (step) {
	case AUTH_STEP_CONTINUE:
		return true;
	case AUTH_STEP_FAILED:
		log_info("client %" PRIu64 " from %s: authentication failed for user \"%s\": %s",
			 cl->id, cl->addr, cl->params.user, err != NULL ? err : "");
		if (auth_query_is_enabled(rt.cfg))
			auth_query_forget_user(cl->params.user);
		client_fail(cl, SQLSTATE_INVALID_PASSWORD,
			    "password authentication failed for user \"%s\"", cl->params.user);
		return false;
	case AUTH_STEP_OK:
		break;
	}
	auth_client_credentials(cl->auth, &cl->cred);
	auth_client_free(cl->auth);
	cl->auth = NULL;
	client_login_done(cl);
	return cl->state == CL_ADMIN;
}

/* A request (Query, Sync, FunctionCall) goes to the server: one ReadyForQuery will answer it. */
static void request_begin(struct client *cl)
{
	if (cl->pending_syncs++ == 0) {
		cl->query_start_us = now_us();
		if (cl->server->tx_status == 'I')
			cl->xact_start_us = cl->query_start_us;
		cl->is_response_started = false;
		cl->has_request_failed = false;
	}
	cl->is_mid_request = false;
}

/* Forget the kept Query; its buffer stays for the next one unless it is large or is_final. */
static void retry_forget(struct client *cl, bool is_final)
{
	cl->retry_len = 0;
	if (is_final || cl->retry_cap > RETRY_KEEP_MAX) {
		free(cl->retry);
		cl->retry = NULL;
		cl->retry_cap = 0;
	}
}

/* Keep the Query as the client sent it: header, text, NUL. */
static void retry_keep(struct client *cl, const char *sql, size_t len)
{
	size_t need = PROTO_HEADER_LEN + len + 1;
	uint32_t msg_len = htonl((uint32_t)(4 + len + 1));

	if (need > cl->retry_cap) {
		free(cl->retry); /* nothing in it to keep */
		cl->retry = xmalloc(need);
		cl->retry_cap = need;
	}
	cl->retry[0] = 'Q';
	memcpy(cl->retry + 1, &msg_len, 4);
	memcpy(cl->retry + PROTO_HEADER_LEN, sql, len + 1);
	cl->retry_len = need;
}

/*
 * Classify a simple Query's statements: whether all are READ (and there are
 * some, no more than can be checked) and whether any sets up session state.
 */
static void query_classify(const char *sql, size_t len, bool *is_read, bool *is_stateful)
{
	struct stmt_info info[CLASSIFY_MAX_STMTS];
	size_t n = classify_query(sql, len, info, CLASSIFY_MAX_STMTS);

	*is_read = n > 0 && n <= CLASSIFY_MAX_STMTS;
	*is_stateful = false;
	for (size_t i = 0; i < n && i < CLASSIFY_MAX_STMTS; i++) {
		*is_read = *is_read && info[i].cls == STMT_READ;
		*is_stateful = *is_stateful || info[i].cls == STMT_SESSION ||
			       info[i].cls == STMT_UNMOVABLE;
	}
}

/*
 * Session statements of the request in flight, kept until it ends. Inside a
 * transaction block several requests add up, to max_session_sql_size: past it
 * nothing more is kept (the text stays, empty if need be, so that the end of
 * the transaction is still watched), and a commit pins the session instead.
 */
static void request_keep_session_sql(struct client *cl, const char *sql, size_t len)
{
	size_t have = cl->pending_session_len;

	if (cl->is_session_sql_over)
		return;
	if (have + len + 2 > (size_t)rt.cfg->max_session_sql_size) {
		cl->is_session_sql_over = true;
		if (cl->pending_session_sql == NULL)
			cl->pending_session_sql = xstrdup("");
		return;
	}
	cl->pending_session_sql = xrealloc(cl->pending_session_sql, have + len + 2);
	if (have > 0)
		cl->pending_session_sql[have++] = ';';
	memcpy(cl->pending_session_sql + have, sql, len);
	cl->pending_session_len = have + len;
	cl->pending_session_sql[cl->pending_session_len] = '\0';
}

/*
 * A simple Query: keep a copy if it may be run again after a failover
 * (outside a transaction, the only request in flight, and read-only), and
 * note the session state it sets up, to be recorded once it succeeds. Every
 * Query passes here, so the full classifier runs only when cheap checks say
 * it must: for session state, or to rule a retry out early. Whether a kept
 * copy is provably read-only is settled only if its server dies unanswered
 * (retry_is_read).
 */
static void request_classify(struct client *cl, const char *sql, size_t len)
{
	bool may_retry = cl->pending_syncs == 1 && cl->server->tx_status == 'I' &&
			 classify_may_read(sql, len);
	bool is_read = true, is_stateful = false;

	if (classify_may_keep_state(sql, len))
		query_classify(sql, len, &is_read, &is_stateful);
	if (may_retry && is_read)
		retry_keep(cl, sql, len);
	else
		retry_forget(cl, false);
	if (is_stateful)
		request_keep_session_sql(cl, sql, len);
}

/*
 * A request was answered. Session state it set up counts once it is sure to
 * stay: at the end of an autocommit request or of a committed transaction. A
 * failed request, a failed transaction or a ROLLBACK leaves no trace, as on
 * the server.
 */
static void request_forget_session_sql(struct client *cl)
{
	free(cl->pending_session_sql);
	cl->pending_session_sql = NULL;
	cl->pending_session_len = 0;
	cl->is_session_sql_over = false;
}

static void request_settle_session(struct client *cl, char tx_status)
{
	struct stmt_info info[CLASSIFY_MAX_STMTS];
	size_t n;

	if (cl->pending_session_sql == NULL || tx_status == 'T')
		return;
	if (tx_status == 'I' && !cl->has_request_failed) {
		if (cl->session == NULL)
			cl->session = session_state_new();
		n = cl->is_session_sql_over
			    ? 0
			    : classify_query(cl->pending_session_sql, cl->pending_session_len, info,
					     CLASSIFY_MAX_STMTS);
		if (cl->is_session_sql_over)
			session_state_mark_unmovable(cl->session,
						     "more session statements in one transaction "
						     "than max_session_sql_size");
		else if (n > CLASSIFY_MAX_STMTS)
			session_state_mark_unmovable(cl->session, "too many statements to track");
		for (size_t i = 0; i < n && i < CLASSIFY_MAX_STMTS; i++)
			session_state_apply(cl->session, &info[i], cl->pending_session_sql);
	}
	request_forget_session_sql(cl);
}

/* Parse and Close of named statements, so they can be re-created on another server. */
static void request_note_statement(struct client *cl, char type, const uint8_t *body, size_t len)
{
	struct proto_reader r;
	const char *name;

	proto_reader_init(&r, body, len);
	if (type == 'C' && proto_read_byte(&r) != 'S')
		return;
	name = proto_read_cstring(&r);
	if (name == NULL || name[0] == '\0')
		return; /* the unnamed statement doesn't outlive its request */
	if (cl->session == NULL)
		cl->session = session_state_new();
	if (type == 'C') {
		session_state_note_close(cl->session, name);
	} else {
		struct evbuffer *msg = CHECK_ALLOC(evbuffer_new());
		uint32_t n = htonl((uint32_t)len + 4);

		evbuffer_add(msg, "P", 1);
		evbuffer_add(msg, &n, 4);
		evbuffer_add(msg, body, len);
		session_state_note_parse(cl->session, name, evbuffer_pullup(msg, -1),
					 evbuffer_get_length(msg));
		evbuffer_free(msg);
	}
}

static enum proto_inspect client_inspect(void *arg, struct evbuffer *in,
					 const struct proto_msg *msg)
{
	static uint8_t scratch[CLASSIFY_MAX_SQL];
	struct client *cl = arg;
	const uint8_t *body;
	size_t n = msg->len - 4;

	switch (msg->type) {
	case 'X':
		/* Terminate ends the session here; the server gets its own on close. */
		return PROTO_INSPECT_STOP;
	case 'S':
	case 'F':
		request_begin(cl);
		return PROTO_INSPECT_FORWARD;
	case 'c':
	case 'f':
		cl->is_copying_in = false; /* CopyDone, CopyFail */
		return PROTO_INSPECT_FORWARD;
	case 'Q':
	case 'P':
	case 'C':
		if (n > sizeof(scratch)) {
			if (msg->type == 'Q')
				request_begin(cl);
			else
				cl->is_mid_request = true;
			if (msg->type != 'Q' && cl->session != NULL)
				session_state_mark_unmovable(
					cl->session, "a prepared statement too large to track");
			return PROTO_INSPECT_FORWARD;
		}
		body = proto_msg_body(in, msg, scratch);
		if (body == NULL)
			return PROTO_INSPECT_WAIT;
		if (msg->type == 'Q') {
			request_begin(cl);
			if (n > 0 && body[n - 1] == '\0')
				request_classify(cl, (const char *)body, n - 1);
		} else {
			cl->is_mid_request = true;
			request_note_statement(cl, msg->type, body, n);
		}
		return PROTO_INSPECT_FORWARD;
	case 'B':
	case 'D':
	case 'E':
		cl->is_mid_request = true;
		return PROTO_INSPECT_FORWARD;
	default:
		return PROTO_INSPECT_FORWARD;
	}
}

void client_forward(struct client *cl)
{
	enum proto_scan scan;
	size_t movable;

	if (cl->server == NULL || cl->state != CL_ACTIVE)
		return;
	scan = conn_scan(&cl->conn, (uint32_t)rt.cfg->max_packet_size, &cl->msg_remaining, &movable,
			 client_inspect, cl);
	if (movable > 0) {
		conn_move(&cl->conn, &cl->server->conn, movable);
		cl->pool->stats.bytes_in += movable;
	}
	switch (scan) {
	case PROTO_SCAN_DONE:
		break;
	case PROTO_SCAN_STOPPED:
		log_debug("client %" PRIu64 " terminated", cl->id);
		/*
		 * As Postgres does, the requests before Terminate are answered first;
		 * except inside COPY FROM STDIN, where the server waits for data, not
		 * for a goodbye (Postgres answers that one with an error and ends too).
		 */
		if (cl->pending_syncs > 0 && !cl->is_copying_in) {
			cl->is_leaving = true;
			conn_read_off(&cl->conn);
			return;
		}
		client_close(cl);
		return;
	case PROTO_SCAN_BAD_LENGTH:
		log_info("client %" PRIu64 " from %s: invalid message length, closing", cl->id,
			 cl->addr);
		client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION,
			    "invalid message length (max_packet_size is %" PRId64 " bytes)",
			    rt.cfg->max_packet_size);
		return;
	}
	conn_throttle(&cl->conn, &cl->server->conn);
}

/* The client's output drained: the server may send again. */
static void client_write_cb(struct bufferevent *bev UNUSED, void *arg)
{
	struct client *cl = arg;

	if (cl->server != NULL && cl->state == CL_ACTIVE) {
		conn_drained(&cl->server->conn, &cl->conn);
		/* Data may have arrived while reading was off. */
		server_forward(cl->server);
	} else if (cl->state == CL_ADMIN) {
		admin_drained(cl);
	}
}

/* A console client: whole messages, answered by admin.c. */
static bool client_handle_admin(struct client *cl)
{
	struct evbuffer *in = conn_input(&cl->conn);
	uint32_t len;
	char type;
	uint8_t *msg;

	if (!admin_is_ready(cl))
		return false;
	msg = client_next_message(cl, (uint32_t)rt.cfg->max_packet_size, "invalid message length",
				  &type, &len);
	if (msg == NULL)
		return false;
	if (type == 'X') {
		client_close(cl);
		return false;
	}
	admin_handle_message(cl, type, msg + PROTO_HEADER_LEN, len - 4);
	evbuffer_drain(in, 1 + len);
	return cl->state == CL_ADMIN;
}

static enum proto_inspect skip_inspect(void *arg UNUSED, struct evbuffer *in UNUSED,
				       const struct proto_msg *msg)
{
	return msg->type == 'S' ? PROTO_INSPECT_STOP : PROTO_INSPECT_FORWARD;
}

/*
 * After an error mid-request, Postgres ignores messages until Sync and answers
 * that with ReadyForQuery; so does pgwing when the server died mid-request.
 */
static bool client_skip_to_sync(struct client *cl)
{
	struct evbuffer *in = conn_input(&cl->conn);
	size_t skip;

	switch (proto_scan_messages(in, (uint32_t)rt.cfg->max_packet_size, &cl->msg_remaining,
				    &skip, skip_inspect, NULL)) {
	case PROTO_SCAN_DONE:
		evbuffer_drain(in, skip);
		return false;
	case PROTO_SCAN_STOPPED:
		evbuffer_drain(in, skip + PROTO_HEADER_LEN);
		proto_put_ready(conn_output(&cl->conn), 'I');
		cl->is_skipping_to_sync = false;
		return true;
	case PROTO_SCAN_BAD_LENGTH:
		client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION, "invalid message length");
		return false;
	}
	return false;
}

/* An idle client spoke: it needs a server again, unless it is saying goodbye. */
static void client_wake_from_idle(struct client *cl)
{
	struct evbuffer *in = conn_input(&cl->conn);
	uint8_t type;

	if (cl->is_skipping_to_sync && !client_skip_to_sync(cl))
		return;
	if (evbuffer_copyout(in, &type, 1) != 1)
		return;
	if (type == 'X') {
		client_close(cl);
		return;
	}
	pool_request_server(cl);
}

/*
 * A client without a server yet (waiting in its pool, or its server logging
 * in) is read up to forward_buffer_size, then not until it has one: what it
 * sends waits for the server, bounded as on the data path.
 */
static void client_hold_input(struct client *cl)
{
	if (evbuffer_get_length(conn_input(&cl->conn)) >= (size_t)rt.cfg->forward_buffer_size)
		conn_read_off(&cl->conn);
}

static void client_read_cb(struct bufferevent *bev UNUSED, void *arg)
{
	struct client *cl = arg;

	for (;;) {
		switch (cl->state) {
		case CL_STARTUP:
			if (!client_handle_startup(cl))
				return;
			break;
		case CL_AUTH:
			if (!client_handle_auth(cl))
				return;
			break;
		case CL_ADMIN:
			if (!client_handle_admin(cl))
				return;
			break;
		case CL_ACTIVE:
			client_forward(cl);
			return;
		case CL_IDLE:
			client_wake_from_idle(cl);
			if (cl->state == CL_WAITING || cl->state == CL_LOGIN)
				client_hold_input(cl);
			return;
		case CL_WAITING:
		case CL_LOGIN:
			/*
			 * A client waits for ReadyForQuery before it speaks; if it speaks
			 * anyway, the bytes wait in the buffer until a server is ready.
			 */
			client_hold_input(cl);
			return;
		case CL_CLOSING:
			return;
		}
	}
}

void client_read_buffered(struct client *cl)
{
	client_read_cb(cl->conn.bev, cl);
}

static void client_event_cb(struct bufferevent *bev UNUSED, short what, void *arg)
{
	struct client *cl = arg;

	if (what & BEV_EVENT_CONNECTED) {
		client_tls_established(cl);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && tls_of(cl->conn.bev) != NULL) {
		char reason[300];

		tls_describe_error(cl->conn.bev, reason, sizeof(reason));
		log_info("client %" PRIu64 " from %s: %s", cl->id, cl->addr, reason);
	} else if (what & BEV_EVENT_ERROR)
		log_debug("client %" PRIu64 " connection error: %s", cl->id,
			  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		log_debug("client %" PRIu64 " closed the connection", cl->id);
	client_free(cl);
}

/* Record a ParameterStatus body; returns true when the value is new to the client. */
static bool remember_parameter(struct client *cl, const uint8_t *body, size_t len)
{
	const char *name, *value;

	if (!proto_parse_parameter_status(body, len, &name, &value))
		return true;
	return param_set_update(&cl->reported, name, value);
}

void client_note_ready(struct client *cl, char status)
{
	struct stats *st = &cl->pool->stats;
	int64_t now = now_us();

	if (cl->pending_syncs > 0)
		cl->pending_syncs--;
	cl->is_copying_in = false;
	st->query_count++;
	st->query_time_us += (uint64_t)(now - cl->query_start_us);
	stats_observe(&st->query_hist, now - cl->query_start_us);
	cl->query_start_us = now;
	if (status == 'I' && cl->xact_start_us != 0) {
		st->xact_count++;
		st->xact_time_us += (uint64_t)(now - cl->xact_start_us);
		stats_observe(&st->xact_hist, now - cl->xact_start_us);
		cl->xact_start_us = 0;
	}
	request_settle_session(cl, status);
	if (cl->pending_syncs == 0)
		retry_forget(cl, false);
}

/* The kept Query (header, text, NUL) is provably read-only: safe to run on another server. */
static bool retry_is_read(struct client *cl)
{
	bool is_read, is_stateful;

	query_classify((const char *)cl->retry + PROTO_HEADER_LEN,
		       cl->retry_len - PROTO_HEADER_LEN - 1, &is_read, &is_stateful);
	return is_read;
}

bool client_can_retry(const struct client *cl)
{
	return cl->retry_len > 0 && cl->pending_syncs == 1 && !cl->is_mid_request;
}

void client_note_command(struct client *cl, const char *tag)
{
	if (strcmp(tag, "ROLLBACK") == 0)
		cl->has_request_failed = true; /* what the transaction set up is undone */
}

void client_note_error(struct client *cl, const uint8_t *body, size_t len)
{
	struct proto_error_fields ef;

	cl->has_request_failed = true;
	if (cl->target != TARGET_RW || cl->server == NULL || !proto_parse_error(body, len, &ef) ||
	    ef.sqlstate == NULL || strcmp(ef.sqlstate, SQLSTATE_READ_ONLY_TRANSACTION) != 0)
		return;
	/*
	 * A write refused as read-only by what we took for the primary: it was
	 * demoted. Ask health to look now rather than at the next interval.
	 */
	log_warn("backend %s refused a write (25006): probing its role now",
		 cl->server->backend_name);
	if (cl->server->backend != NULL)
		health_probe_now(cl->server->backend);
}

/* Forget the request in flight: it is answered (by us) or will be sent again. */
static void request_reset(struct client *cl)
{
	cl->pending_syncs = 0;
	cl->is_mid_request = false;
	cl->is_response_started = false;
	cl->xact_start_us = 0;
	request_forget_session_sql(cl);
	retry_forget(cl, true);
}

/*
 * The client lets go of its server. One left clean (idle, nothing half sent
 * either way) goes back to the pool for the next client; any other is closed.
 */
static void client_give_back_server(struct client *cl)
{
	struct server *sv = cl->server;
	bool is_clean = sv->state == SV_ACTIVE && sv->tx_status == 'I' && !sv->is_ending &&
			sv->msg_remaining == 0 && cl->msg_remaining == 0 &&
			cl->pending_syncs == 0 && !cl->is_mid_request;
	int64_t last_active_ms = cl->query_start_us / 1000;

	sv->client = NULL;
	cl->server = NULL;
	if (!is_clean) {
		server_close(sv);
		return;
	}
	if (last_active_ms < sv->connect_time_ms)
		last_active_ms = sv->connect_time_ms;
	pool_put_server(sv, last_active_ms);
}

/*
 * Leave the server behind (to the pool if it can serve again, closed if it is
 * lost): the client is logged in and server-less, as between transactions.
 */
static void client_drop_server(struct client *cl, bool is_lost)
{
	if (is_lost)
		server_close(cl->server);
	else
		client_give_back_server(cl);
	cl->state = CL_IDLE;
	cl->msg_remaining = 0;
	cl->pool->nactive--;
	conn_read_on(&cl->conn);
}

/*
 * An idle client without a server gets one when it speaks, except a listener:
 * notifications only reach a session that has a server, so it gets one now.
 */
static void client_settle_idle(struct client *cl)
{
	if (evbuffer_get_length(conn_input(&cl->conn)) > 0)
		client_wake_from_idle(cl);
	else if (cl->session != NULL && session_state_is_listening(cl->session))
		pool_request_server(cl);
}

void client_server_lost(struct client *cl, const char *what)
{
	struct evbuffer *out = conn_output(&cl->conn);
	const char *unmovable = cl->session != NULL ? session_state_unmovable(cl->session) : NULL;
	char tx_status = cl->server->tx_status;
	bool is_cut = cl->msg_remaining > 0 || cl->server->msg_remaining > 0;
	bool is_idle = cl->pending_syncs == 0 && !cl->is_mid_request;

	client_drop_server(cl, true);
	if (is_cut) {
		/* Half a message went one way or the other: the stream can't be mended. */
		client_fail(cl, SQLSTATE_CONNECTION_FAILURE, "%s in the middle of a message", what);
		return;
	}
	if (unmovable != NULL && !is_idle) {
		client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
			    "%s; the session can't move to another server: it has %s", what,
			    unmovable);
		return;
	}
	/*
	 * Inside a transaction block the session ends, request in flight or not:
	 * answering with an error and ReadyForQuery 'I' would let the client go on
	 * in autocommit on another server, and its COMMIT succeed there with the
	 * first part of its transaction lost.
	 */
	if (tx_status != 'I') {
		client_fail(
			cl, SQLSTATE_CONNECTION_FAILURE,
			is_idle ? "%s while a transaction was open; the transaction was rolled "
				  "back"
				: "%s while a transaction was open; it was rolled back unless the "
				  "request in flight committed it",
			what);
		return;
	}
	if (is_idle) {
		if (unmovable != NULL) {
			client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
				    "%s; the session can't move to another server: it has %s", what,
				    unmovable);
			return;
		}
		log_info("client %" PRIu64 ": %s while idle; it will get a new server", cl->id,
			 what);
		client_settle_idle(cl);
		return;
	}
	if (client_can_retry(cl) && !cl->is_response_started && retry_is_read(cl)) {
		struct evbuffer *in = conn_input(&cl->conn);

		/* Never answered, provably read-only, autocommit: run it again elsewhere. */
		log_info("client %" PRIu64 ": %s; retrying its read-only query", cl->id, what);
		evbuffer_prepend(in, cl->retry, cl->retry_len);
		request_reset(cl);
		pool_request_server(cl);
		return;
	}
	log_info("client %" PRIu64 ": %s with a request in flight", cl->id, what);
	proto_put_error(out, "ERROR", SQLSTATE_CONNECTION_FAILURE,
			"%s; the outcome of the transaction is unknown", what);
	for (int i = 0; i < cl->pending_syncs; i++)
		proto_put_ready(out, 'I');
	/* Messages of an unfinished extended request are dropped up to their Sync, as Postgres does
	 * after an error. */
	cl->is_skipping_to_sync = cl->is_mid_request;
	request_reset(cl);
	client_settle_idle(cl);
}

void client_server_unreachable(struct client *cl, const char *what)
{
	/* The pool logs the hold once; each retry is detail. */
	log_debug("client %" PRIu64 ": %s; waiting to try again", cl->id, what);
	snprintf(cl->last_connect_error, sizeof(cl->last_connect_error), "%s", what);
	if (cl->server->backend != NULL)
		health_probe_now(cl->server->backend);
	server_close(cl->server);
	pool_retry_later(cl);
}

void client_note_parameter(struct client *cl, const uint8_t *body, size_t len)
{
	remember_parameter(cl, body, len);
}

void client_server_ready(struct client *cl, struct evbuffer *welcome)
{
	struct evbuffer *out = conn_output(&cl->conn);
	bool is_first = cl->cancel_pid == 0;
	uint8_t *msg;
	uint32_t len;
	char type;

	/*
	 * The first login relays the welcome as it is; after a move the client only
	 * hears of parameters whose values differ on the new server (in_hot_standby,
	 * say), so what it knows stays true.
	 */
	while (proto_next_message(welcome, UINT32_MAX, &type, &len, &msg) == PROTO_FRAME_OK) {
		bool is_news = type == 'S' ? remember_parameter(cl, msg + PROTO_HEADER_LEN, len - 4)
					   : is_first;

		if (is_news)
			evbuffer_remove_buffer(welcome, out, 1 + len);
		else
			evbuffer_drain(welcome, 1 + len);
	}
	cl->state = CL_ACTIVE;
	cl->hold_since_ms = 0;
	pool_note_served(cl);
	if (is_first)
		client_finish_welcome(cl);
	if (!cl->is_leaving)
		conn_read_on(&cl->conn); /* client_hold_input may have stopped it */
	client_forward(cl);
}

bool client_server_idle(struct client *cl)
{
	const char *unmovable;

	if (evbuffer_get_length(conn_input(&cl->conn)) > 0 || !pool_should_release(cl))
		return true;
	unmovable = cl->session != NULL ? session_state_unmovable(cl->session) : NULL;
	if (unmovable == NULL) {
		client_release_server(cl);
		return false;
	}
	/*
	 * A session that can't move keeps its server through a pause or a
	 * reconnect; if the backend no longer serves it (demoted, gone), it ends
	 * with the reason rather than moving without its state.
	 */
	if (!router_should_move(rt.topo, rt.cfg, cl->target, cl->server->backend))
		return true;
	client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
		    "backend %s no longer serves this session, and the session can't move "
		    "to another server: it has %s",
		    cl->server->backend_name, unmovable);
	return false;
}

void client_release_server(struct client *cl)
{
	log_debug("client %" PRIu64 ": releasing server %" PRIu64 " at an idle point", cl->id,
		  cl->server->id);
	client_drop_server(cl, false);
	request_reset(cl);
	client_settle_idle(cl);
}

struct client_list *client_all(void)
{
	return &all_clients;
}

struct client *client_find(uint64_t id)
{
	struct client *cl;

	TAILQ_FOREACH (cl, &all_clients, all_link)
		if (cl->id == id)
			return cl;
	return NULL;
}
