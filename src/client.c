/*
 * Client connections. The startup phase is parsed here (pgwing answers
 * SSLRequest, authenticates the client itself, hands cancel requests over),
 * and the console's messages are framed for admin.c; a client logged in to a
 * database belongs to the link (link.c) from then on, which its ops tell of
 * what the client sends and when it goes.
 */
#include "pgwing/client.h"

#include "pgwing/auth_query.h"
#include "pgwing/cancel.h"
#include "pgwing/config.h"
#include "pgwing/log.h"
#include "pgwing/runtime.h"
#include "pgwing/session.h"
#include "pgwing/tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The process state, given by the runtime at start (client_init): read, never written. */
static const struct runtime *rt;

void client_init(const struct runtime *runtime)
{
	rt = runtime;
}

/* Auth messages are small; a client sending more during login is misbehaving. */
#define AUTH_MESSAGE_MAX 8192

static struct client_list all_clients = TAILQ_HEAD_INITIALIZER(all_clients);
static int nclients;
static uint64_t next_client_id = 1;

static const struct client_ops *ops;

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);

void client_set_ops(const struct client_ops *client_ops)
{
	ops = client_ops;
}

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
	xact_free(&cl->xact);
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
	ops->detach(cl);
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

	ops->detach(cl);
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

void client_error(struct client *cl, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	proto_put_error_v(conn_output(&cl->conn), "ERROR", sqlstate, fmt, ap);
	va_end(ap);
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
	return cl->state == CL_ACTIVE && xact_is_idle(&cl->xact) && cl->xact_start_us == 0 &&
	       evbuffer_get_length(conn_input(&cl->conn)) == 0;
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
		if (cl->server != NULL && cl->xact.pending_syncs > 0)
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

/* A client on socket fd from addr, in the list of all; NULL when out of memory (fd closed). */
static struct client *client_open(int fd, enum target target, const struct sockaddr *addr)
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
		return NULL;
	}
	TAILQ_INSERT_TAIL(&all_clients, cl, all_link);
	nclients++;
	cl->timer = CHECK_ALLOC(evtimer_new(rt->base, client_login_timeout_cb, cl));
	return cl;
}

void client_accept(int fd, enum target target, const struct sockaddr *addr, int addrlen UNUSED)
{
	struct client *cl = client_open(fd, target, addr);

	if (cl == NULL)
		return;
	cl->is_over_limit = nclients > rt->cfg->max_client_conn;
	timer_add_ms(cl->timer, rt->cfg->client_login_timeout_ms);
	conn_read_on(&cl->conn);
	log_debug("client %" PRIu64 " connected from %s:%d to %s", cl->id, cl->addr, cl->port,
		  target_name(target));
}

bool client_adopt(int fd, struct client_handover *h, const void *owed, size_t owed_len)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct client *cl;

	if (getpeername(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		log_info("a client handed over is gone already: %s", strerror(errno));
		close(fd);
		return false;
	}
	cl = client_open(fd, h->target, (struct sockaddr *)&ss);
	if (cl == NULL)
		return false;
	cl->params = h->params;
	cl->cred = h->cred;
	cl->reported = h->reported;
	cl->session = h->session;
	cl->cancel_pid = h->cancel_pid;
	cl->cancel_key = h->cancel_key;
	memset(h, 0, sizeof(*h));
	/* Its cancel key goes on working: CancelRequests now come here. */
	cancel_register(cl);
	evbuffer_add(conn_output(&cl->conn), owed, owed_len);
	cl->query_start_us = now_us();
	log_info("client %" PRIu64 " from %s:%d (user=%s database=%s) taken over", cl->id, cl->addr,
		 cl->port, cl->params.user, cl->params.database);
	conn_read_on(&cl->conn);
	ops->adopted(cl);
	return true;
}

void client_finish_welcome(struct client *cl)
{
	struct evbuffer *out = conn_output(&cl->conn);

	cancel_register(cl);
	proto_put_backend_key(out, cl->cancel_pid, cl->cancel_key);
	proto_put_ready(out, PROTO_TX_IDLE);
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
 * other database goes to the link, which finds it a server or a welcome.
 */
static void client_login_done(struct client *cl)
{
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
	if (client_check_draining(cl))
		ops->logged_in(cl);
}

/* Ask the client for its password, checked against stored (NULL: an unknown user). */
static void client_start_auth(struct client *cl, const char *stored,
			      const struct scram_secret *derived)
{
	struct evbuffer *out = conn_output(&cl->conn);
	bool is_console = strcmp(cl->params.database, ADMIN_DATABASE) == 0;

	cl->auth = auth_client_new(auth_client_type(rt->cfg, is_console, !cl->is_unix),
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
	event_assign(cl->timer, rt->base, -1, 0, client_login_timeout_cb, cl);
	timer_add_ms(cl->timer, rt->cfg->client_login_timeout_ms);
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
	const char *stored = auth_file_lookup(rt->auth, cl->params.user);
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
	if (stored != NULL || is_console || !auth_query_is_enabled(rt->cfg) ||
	    auth_client_type(rt->cfg, is_console, !cl->is_unix) == AUTH_TRUST) {
		client_start_auth(cl, stored, auth_file_derived_secret(rt->auth, cl->params.user));
		return;
	}
	if (auth_query_lookup(cl->params.user, client_on_lookup, cl, &cl->lookup, &stored)) {
		client_start_auth(cl, stored, NULL);
		return;
	}
	cl->hold_since_ms = now_ms();
	event_del(cl->timer);
	event_assign(cl->timer, rt->base, -1, 0, client_lookup_timeout_cb, cl);
	timer_add_ms(cl->timer, rt->cfg->hold_timeout_ms);
}

/*
 * Protocol 3.x with x > 0 or "_pq_." options: tell the client what we speak
 * (3.0, no options) instead of failing, as Postgres itself does.
 */
static void negotiate_protocol_version(struct client *cl, uint32_t version)
{
	const char **options = xmalloc((cl->params.count + 1) * sizeof(*options));
	size_t count = 0;

	for (size_t i = 0; i < cl->params.count; i++)
		if (strncmp(cl->params.items[i].name, "_pq_.", 5) == 0)
			options[count++] = cl->params.items[i].name;
	if ((version & 0xffff) != 0 || count > 0)
		proto_put_negotiate_protocol_version(conn_output(&cl->conn), 0, options, count);
	free(options);
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
		proto_put_encryption_answer(conn_output(&cl->conn), false);
		return true;
	}
	/* The 'S' is queued on the socket before the filter's first record: it goes first. */
	proto_put_encryption_answer(conn_output(&cl->conn), true);
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
	enum tls_mode mode = rt->cfg->client_tls_sslmode;
	SSL *ssl = tls_of(cl->conn.bev);

	if (cl->is_unix || mode < TLS_REQUIRE)
		return true;
	if (ssl == NULL) {
		log_info("client %" PRIu64 " from %s: refused plaintext login (client_tls_sslmode "
			 "requires TLS)",
			 cl->id, cl->addr);
		client_fail(cl, SQLSTATE_INVALID_AUTHORIZATION_SPECIFICATION,
			    "pgwing requires TLS: connect with sslmode=require or stronger");
		return false;
	}
	if (mode == TLS_VERIFY_FULL && !tls_client_cert_matches(ssl, cl->params.user)) {
		client_fail(cl, SQLSTATE_INVALID_AUTHORIZATION_SPECIFICATION,
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
		proto_put_encryption_answer(out, false);
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
	if (type != PqMsg_PasswordMessage) {
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
		if (auth_query_is_enabled(rt->cfg))
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

/* The client's output drained: its server, or the console, may send again. */
static void client_write_cb(struct bufferevent *bev UNUSED, void *arg)
{
	struct client *cl = arg;

	if (cl->state == CL_ADMIN)
		admin_drained(cl);
	else if (cl->state == CL_ACTIVE)
		ops->drained(cl);
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
	msg = client_next_message(cl, (uint32_t)rt->cfg->max_packet_size, "invalid message length",
				  &type, &len);
	if (msg == NULL)
		return false;
	if (type == PqMsg_Terminate) {
		client_close(cl);
		return false;
	}
	admin_handle_message(cl, type, msg + PROTO_HEADER_LEN, len - 4);
	evbuffer_drain(in, 1 + len);
	return cl->state == CL_ADMIN;
}

void client_hold_input(struct client *cl)
{
	if (evbuffer_get_length(conn_input(&cl->conn)) >= (size_t)rt->cfg->forward_buffer_size)
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
		case CL_IDLE:
		case CL_WAITING:
		case CL_LOGIN:
		case CL_ACTIVE:
			ops->readable(cl);
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
