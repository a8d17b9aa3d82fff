/*
 * Health probes. Each backend has one probe: a libpq connection kept open
 * between probes and driven entirely by libevent on the main loop. libpq is
 * only ever called in its non-blocking forms (PQconnectStartParams and
 * PQconnectPoll, PQsendQuery, PQflush, PQconsumeInput, and PQgetResult once
 * PQisBusy says it will not wait), and never with a host name to look up
 * (evdns does that first): one blocking call would stall every client.
 *
 * A probe starts every health_interval (start to start; a slow probe delays
 * the next, they never overlap) and must finish within health_timeout. Its
 * outcome is reported to topology, which runs the backend's state machine
 * (topology_note_probe_ok, topology_note_probe_failed): health never changes
 * a backend itself.
 */
#include "pgwing/health.h"
#include "pgwing/auth.h"
#include "pgwing/log.h"
#include "pgwing/lsn.h"
#include "pgwing/proto.h"
#include "pgwing/pq.h"
#include "pgwing/runtime.h"
#include "pgwing/tls.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The process state, given by the runtime at start (health_init): read, never written. */
static const struct runtime *rt;

void health_init(const struct runtime *runtime)
{
	rt = runtime;
}

/* Addresses of one backend name handed to libpq, which tries them in turn as it would its own. */
#define MAX_ADDRESSES 8

/*
 * A waking backend is probed at this pace (or health_interval if shorter)
 * from the wake on: a client is waiting, and a probe of a server that is still
 * starting costs both sides little (a refused connect, or Postgres's
 * immediate "starting up" FATAL), so it is seen up at most this late. A pace
 * that grew by half each time was, at a one-second start, 300 ms late.
 */
#define WAKING_PROBE_INTERVAL_MS 100

/*
 * The most a probe looks at before libpq reads it while authenticating: a
 * real server's requests are a few hundred bytes, and one that does not fit
 * cannot be vetted, so it is refused.
 */
#define AUTH_PEEK_MAX 4096

/*
 * One round trip answers everything. recovery is evaluated once (in the CTE)
 * so that a promotion in the middle of the query cannot mix the branches.
 * Columns, all text: in_recovery, lsn, lag_seconds, timeline (8 hex digits).
 * - lsn: the WAL written on a primary, the WAL replayed on a replica.
 * - lag_seconds: the replica's own replay delay: 0 when it has replayed all it
 *   received (after a restart the receiver starts at a segment boundary,
 *   behind the replay position: hence <=, not =); otherwise the age of the
 *   last replayed transaction (NULL before the first one: unknown). It cannot
 *   see WAL it never received: topology measures the lag against the
 *   primary's LSN too (topology_reconcile).
 * - timeline: a primary's from its current WAL file name, a replica's from
 *   its WAL receiver (NULL while not streaming).
 */
static const char PROBE_QUERY[] =
	"WITH r AS (SELECT pg_is_in_recovery() AS recovery) "
	"SELECT recovery, "
	"CASE WHEN recovery THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, "
	"CASE WHEN NOT recovery THEN 0 "
	"WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 "
	"ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END, "
	"CASE WHEN recovery THEN (SELECT lpad(to_hex(received_tli), 8, '0') "
	"FROM pg_stat_wal_receiver) "
	"ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END "
	"FROM r";

enum probe_phase {
	PROBE_IDLE,      /* between probes; the connection, if any, is watched for input */
	PROBE_RESOLVING, /* libpq would resolve the host name with a blocking getaddrinfo() */
	PROBE_CONNECTING,
	PROBE_QUERYING,
};

/*
 * A question whether a backend still serves (health_ask_serving), answered by
 * the first probe begun after it was asked, on a new connection.
 */
struct health_question {
	struct health_question *next;
	uint64_t asked_after;   /* the number of probes begun when it was asked */
	enum backend_role role; /* the backend's role then */
	health_answer_fn answer;
	void *arg;
};

struct health_probe {
	struct backend *b;
	struct health_probe *next; /* in health.probes */
	struct evdns_getaddrinfo_request *dns_req;
	PGconn *conn;
	enum probe_phase phase;
	struct pq_watch io;
	struct event *next_timer; /* starts the next probe */
	struct event *deadline;   /* fails a probe still running after health_timeout */
	int64_t started_ms;
	int64_t early_probe_ms; /* the last probe started by input on the idle connection */
	int64_t query_sent_us;
	bool has_sample;
	struct backend_observation sample;
	bool is_conn_stale;     /* reloaded mid-probe: reconnect with the new settings after it */
	bool is_auth_requested; /* this login answered a request: AuthenticationOk is no "none" */
	uint64_t nbegun;        /* probes begun */
	struct health_question *questions;
};

/* One loop, one set of probes per process. */
static struct {
	struct event_base *base;
	struct topology *topo;
	const struct config *cfg;
	const struct auth_file *af;
	bool is_password_note_logged;
	struct health_probe *probes; /* one per backend of topo */
	int64_t held_until_ms;       /* clients may be held until then (health_note_client_held) */
} health;

static void probe_begin(struct health_probe *p);
static void probe_schedule_now(struct health_probe *p);
static void probe_on_io(evutil_socket_t fd, short what, void *arg);
static void probe_failf(struct health_probe *p, const char *fmt, ...) PRINTF_LIKE(2, 3);

/*
 * Whether the error says nothing listens at the backend's address: a stopped
 * server (connection refused, or a unix socket that is gone) or a stopped
 * machine (no route). libpq gives no errno, only its message with strerror()'s
 * text in it.
 */
static bool is_unreachable(const char *error)
{
	static const char *const causes[] = {"Connection refused", "No route to host",
					     "No such file or directory"};

	for (size_t i = 0; i < ARRAY_SIZE(causes); i++)
		if (strstr(error, causes[i]) != NULL)
			return true;
	return false;
}

static struct health_probe *probe_of(const struct backend *b)
{
	for (struct health_probe *p = health.probes; p != NULL; p = p->next)
		if (p->b == b)
			return p;
	return NULL;
}

/* Wait for what (EV_READ and/or EV_WRITE) on the connection's current socket. */
static bool probe_wait(struct health_probe *p, short what)
{
	return pq_watch_arm(&p->io, health.base, p->conn, what, probe_on_io, p);
}

static void probe_close(struct health_probe *p)
{
	if (p->dns_req != NULL) {
		evdns_getaddrinfo_cancel(p->dns_req);
		p->dns_req = NULL;
	}
	pq_watch_clear(&p->io);
	if (p->conn != NULL) {
		PQfinish(p->conn);
		p->conn = NULL;
	}
	p->is_conn_stale = false;
}

/*
 * Clients held with no primary known: when the primary died before a replica
 * was promoted, no probe hints at the promotion (the replica was probed when
 * the primary failed, still a replica), and they would wait for its next
 * probe at health_interval.
 */
static bool is_hurried(void)
{
	return health.held_until_ms > now_ms() && topology_primary(health.topo) == NULL &&
	       health.cfg->health_interval_holding_ms < health.cfg->health_interval_ms;
}

/* The probe is over, whatever its outcome: keep watching the connection, schedule the next. */
static void probe_end(struct health_probe *p)
{
	int64_t interval = is_hurried() ? health.cfg->health_interval_holding_ms
					: health.cfg->health_interval_ms;
	int64_t delay;

	if (p->b->state == BACKEND_WAKING && WAKING_PROBE_INTERVAL_MS < interval)
		interval = WAKING_PROBE_INTERVAL_MS;
	delay = p->started_ms + interval - now_ms();
	evtimer_del(p->deadline);
	p->phase = PROBE_IDLE;
	p->has_sample = false;
	if (p->is_conn_stale)
		probe_close(p);
	/*
	 * An idle probe connection becomes readable when the server shuts down,
	 * drops it, or reports in_hot_standby off after a promotion: all reasons
	 * to look again now rather than at the next tick.
	 */
	if (p->conn != NULL && !probe_wait(p, EV_READ))
		probe_close(p);
	/* A probe would wake it, or keep it from stopping: the next one waits for wake_backend. */
	if (p->b->state == BACKEND_ASLEEP && !health.cfg->probe_sleeping) {
		probe_close(p);
		return;
	}
	timer_add_ms(p->next_timer, delay > 0 ? delay : 0);
}

/* A probe on a new connection, now rather than at its next tick. */
static void probe_afresh(struct health_probe *p)
{
	probe_close(p);
	evtimer_del(p->next_timer);
	probe_schedule_now(p);
}

/*
 * The latest probe ended (is_ok: b answered, as role): the questions asked
 * before it began are answered, each to its own asker, after all are taken
 * off the list (an answer may close what asked another). Questions asked
 * while it ran get a probe of their own, now.
 */
static void probe_answer(struct health_probe *p, bool is_ok, enum backend_role role)
{
	struct health_question **link = &p->questions, *due = NULL, *q;

	while ((q = *link) != NULL) {
		if (q->asked_after < p->nbegun) {
			*link = q->next;
			q->next = due;
			due = q;
		} else {
			link = &q->next;
		}
	}
	if (p->questions != NULL && p->phase == PROBE_IDLE)
		probe_afresh(p);
	while ((q = due) != NULL) {
		due = q->next;
		q->answer(q->arg, is_ok && role == q->role);
		free(q);
	}
}

static void probe_failf(struct health_probe *p, const char *fmt, ...)
{
	char reason[sizeof(p->b->last_error)];
	char line[sizeof(p->b->last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	pq_copy_one_line(line, sizeof(line), reason);
	probe_close(p);
	topology_note_probe_failed(health.topo, p->b, line, is_unreachable(line));
	probe_end(p);
	probe_answer(p, false, ROLE_UNKNOWN);
}

static void probe_succeed(struct health_probe *p)
{
	enum backend_role role = p->sample.role;

	topology_note_probe_ok(health.topo, p->b, &p->sample);
	probe_end(p);
	probe_answer(p, true, role);
}

/* Fill p->sample from the probe query's row; false when the row is not what the query returns. */
static bool probe_parse_row(struct health_probe *p, const PGresult *res)
{
	struct backend_observation *s = &p->sample;
	const char *recovery;
	char *end;

	if (PQntuples(res) != 1 || PQnfields(res) != 4 || PQgetisnull(res, 0, 0))
		return false;
	recovery = PQgetvalue(res, 0, 0);
	s->role = recovery[0] == 't' ? ROLE_REPLICA : ROLE_PRIMARY;

	s->lsn = 0;
	if (!PQgetisnull(res, 0, 1) && !lsn_parse(PQgetvalue(res, 0, 1), &s->lsn))
		return false;

	s->lag_ms = -1;
	if (!PQgetisnull(res, 0, 2)) {
		double seconds = strtod(PQgetvalue(res, 0, 2), &end);

		if (*end != '\0')
			return false;
		/* A replica's clock a little ahead of the primary's is no negative lag. */
		s->lag_ms = seconds > 0 ? (int64_t)(seconds * 1000 + 0.5) : 0;
	}

	s->timeline = 0;
	if (!PQgetisnull(res, 0, 3)) {
		unsigned long tli = strtoul(PQgetvalue(res, 0, 3), &end, 16);

		if (*end != '\0' || tli > UINT32_MAX)
			return false;
		s->timeline = (uint32_t)tli;
	}
	return true;
}

/* Take what results are complete; the probe ends when libpq returns the final NULL. */
static void probe_read_results(struct health_probe *p)
{
	PGresult *res;

	while (!PQisBusy(p->conn)) {
		res = PQgetResult(p->conn);
		if (res == NULL) {
			if (!p->has_sample)
				probe_failf(p, "probe query returned no rows");
			else
				probe_succeed(p);
			return;
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			/* Includes 57P03 (starting up, or a standby not yet consistent): not up
			 * yet. */
			const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			probe_failf(p, "%s (SQLSTATE %s)", PQresultErrorMessage(res),
				    sqlstate != NULL ? sqlstate : "none");
			PQclear(res);
			return;
		}
		p->sample.rtt_ms = (double)(now_us() - p->query_sent_us) / 1000.0;
		p->has_sample = probe_parse_row(p, res);
		PQclear(res);
		if (!p->has_sample) {
			probe_failf(p, "unexpected probe result");
			return;
		}
	}
	if (!probe_wait(p, EV_READ))
		probe_failf(p, "cannot watch the probe connection");
}

static void probe_send_query(struct health_probe *p)
{
	int flushed;

	p->phase = PROBE_QUERYING;
	p->has_sample = false;
	p->query_sent_us = now_us();
	if (!PQsendQuery(p->conn, PROBE_QUERY)) {
		probe_failf(p, "%s", PQerrorMessage(p->conn));
		return;
	}
	/* The query is small, so the first flush nearly always sends all of it. */
	flushed = PQflush(p->conn);
	if (flushed < 0)
		probe_failf(p, "%s", PQerrorMessage(p->conn));
	else if (!probe_wait(p, flushed == 0 ? EV_READ : EV_READ | EV_WRITE))
		probe_failf(p, "cannot watch the probe connection");
}

static void probe_on_query_io(struct health_probe *p, short what)
{
	int flushed = 0;

	/* Read before flushing: the server may need us to consume its output before it reads ours.
	 */
	if ((what & EV_READ) && !PQconsumeInput(p->conn)) {
		probe_failf(p, "%s", PQerrorMessage(p->conn));
		return;
	}
	if (p->io.what & EV_WRITE) {
		flushed = PQflush(p->conn);
		if (flushed < 0) {
			probe_failf(p, "%s", PQerrorMessage(p->conn));
			return;
		}
	}
	if (flushed > 0) {
		if (!probe_wait(p, EV_READ | EV_WRITE))
			probe_failf(p, "cannot watch the probe connection");
		return;
	}
	probe_read_results(p);
}

/* What the vetting of a probe's login says to do with the server's input. */
enum auth_verdict {
	AUTH_LET_LIBPQ_READ,
	AUTH_WAIT_FOR_MORE, /* a message is not all there: libpq would read its head unvetted */
	AUTH_REFUSE,
};

/*
 * Up to len bytes the server sent, left for libpq to read: through TLS when
 * it is on. 0: nothing yet (a TLS session that wants to write waits too, and
 * times out rather than let libpq read what was not seen); -1: an error or
 * the end, which libpq meets and reports in turn.
 */
static ssize_t probe_peek(struct health_probe *p, uint8_t *buf, size_t len)
{
	SSL *ssl = PQsslStruct(p->conn, "OpenSSL");
	ssize_t n;

	if (ssl != NULL) {
		/* SSL_get_error() reads the queue: only this call's errors may be on it. */
		ERR_clear_error();
		n = SSL_peek(ssl, buf, (int)len);
		if (n > 0)
			return n;
		switch (SSL_get_error(ssl, (int)n)) {
		case SSL_ERROR_ZERO_RETURN:
		case SSL_ERROR_SYSCALL:
		case SSL_ERROR_SSL:
			return -1;
		default:
			return 0;
		}
	}
	n = recv(PQsocket(p->conn), buf, len, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	return n > 0 ? n : -1;
}

/*
 * libpq 15 has no require_auth and no cap on SCRAM iterations, and derives
 * the key inside PQconnectPoll, on the loop: a hostile server asking for
 * millions of iterations would stall every client, and one asking for the
 * password in clear would get it. So while the probe authenticates, every
 * request the server sent is put, before libpq reads it, through the check
 * pgwing's own logins make. All of it, as libpq reads all there is and
 * answers each request in turn.
 */
static enum auth_verdict probe_vet_auth(struct health_probe *p, char *err, size_t errlen)
{
	struct auth_server_policy policy = auth_server_policy_of(health.cfg);
	uint8_t buf[AUTH_PEEK_MAX];
	ssize_t n = probe_peek(p, buf, sizeof(buf));
	size_t pos = 0;

	if (n <= 0)
		return n == 0 ? AUTH_WAIT_FOR_MORE : AUTH_LET_LIBPQ_READ;
	while (pos < (size_t)n) {
		struct proto_reader r;
		const uint8_t *body;
		uint8_t type;
		uint32_t len;

		proto_reader_init(&r, buf + pos, (size_t)n - pos);
		type = proto_read_byte(&r);
		len = proto_read_int32(&r);
		if (r.has_failed)
			break;
		/* libpq ends this attempt with the server's error: what follows is not read. */
		if (type == PqMsg_ErrorResponse)
			return AUTH_LET_LIBPQ_READ;
		if (type != PqMsg_AuthenticationRequest) {
			snprintf(err, errlen,
				 "server sent message type 0x%02x while authenticating", type);
			return AUTH_REFUSE;
		}
		if (len < 4 || len > sizeof(buf) - 1) {
			snprintf(err, errlen,
				 "server sent an authentication request of %" PRIu32 " bytes", len);
			return AUTH_REFUSE;
		}
		if (proto_reader_remaining(&r) < len - 4)
			break;
		body = r.pos;
		if (!auth_login_allows(&policy, body, len - 4, p->is_auth_requested, true, err,
				       errlen))
			return AUTH_REFUSE;
		/* After AuthenticationOk libpq's own checks are enough. */
		proto_reader_init(&r, body, len - 4);
		if (proto_read_int32(&r) == AUTH_REQ_OK)
			return AUTH_LET_LIBPQ_READ;
		p->is_auth_requested = true;
		pos += 1 + len;
	}
	if (pos == (size_t)n)
		return AUTH_LET_LIBPQ_READ;
	/* A request cut short, unless the buffer is full: then it can never be seen whole. */
	if ((size_t)n == sizeof(buf)) {
		snprintf(err, errlen, "server sent more than %d bytes while authenticating",
			 AUTH_PEEK_MAX);
		return AUTH_REFUSE;
	}
	return AUTH_WAIT_FOR_MORE;
}

static void probe_poll_connect(struct health_probe *p, short what)
{
	char err[200];

	if (PQstatus(p->conn) != CONNECTION_AWAITING_RESPONSE) {
		/* A new attempt (the next address, or TLS after all) starts its login afresh. */
		p->is_auth_requested = false;
	} else if (what & EV_READ) {
		switch (probe_vet_auth(p, err, sizeof(err))) {
		case AUTH_LET_LIBPQ_READ:
			break;
		case AUTH_WAIT_FOR_MORE:
			if (!probe_wait(p, EV_READ))
				probe_failf(p, "cannot watch the probe connection");
			return;
		case AUTH_REFUSE:
			/* Logged as any failure is, once: a hostile server is probed on. */
			probe_failf(p, "refused the server's login: %s", err);
			return;
		}
	}
	switch (PQconnectPoll(p->conn)) {
	case PGRES_POLLING_READING:
		if (!probe_wait(p, EV_READ))
			probe_failf(p, "%s", PQerrorMessage(p->conn));
		return;
	case PGRES_POLLING_WRITING:
		if (!probe_wait(p, EV_WRITE))
			probe_failf(p, "%s", PQerrorMessage(p->conn));
		return;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(p->conn, 1) != 0) {
			probe_failf(p, "%s", PQerrorMessage(p->conn));
			return;
		}
		probe_send_query(p);
		return;
	case PGRES_POLLING_FAILED:
	case PGRES_POLLING_ACTIVE: /* unused since libpq 7.4; treat as the failure it would be */
		break;
	}
	probe_failf(p, "%s", PQerrorMessage(p->conn));
}

/*
 * Input between probes (see probe_end). Whatever it was, the next probe runs
 * on a fresh connection: a server that dropped this one may be fine, and must
 * not be charged a failure for a connection that was already dead. It runs
 * now, unless an early probe already ran this interval: a server that keeps
 * dropping new connections (idle_session_timeout) must not make us reconnect
 * in a loop.
 */
static void probe_on_idle_input(struct health_probe *p)
{
	int64_t now = now_ms();

	probe_close(p);
	if (now - p->early_probe_ms < health.cfg->health_interval_ms)
		return;
	log_debug("backend %s: input on the idle probe connection, probing now", p->b->name);
	p->early_probe_ms = now;
	evtimer_del(p->next_timer);
	probe_begin(p);
}

static void probe_on_io(evutil_socket_t fd UNUSED, short what, void *arg)
{
	struct health_probe *p = arg;

	switch (p->phase) {
	case PROBE_CONNECTING:
		probe_poll_connect(p, what);
		break;
	case PROBE_QUERYING:
		probe_on_query_io(p, what);
		break;
	case PROBE_IDLE:
		probe_on_idle_input(p);
		break;
	case PROBE_RESOLVING: /* no socket yet, so no event */
		break;
	}
}

/* health_user, or the first of admin_users when it is empty. */
static void health_user(char *buf, size_t buflen)
{
	const char *src = health.cfg->health_user;
	size_t n;

	if (src[0] == '\0')
		src = health.cfg->admin_users;
	src += strspn(src, " \t");
	n = strcspn(src, ", \t");
	if (n >= buflen)
		n = buflen - 1;
	memcpy(buf, src, n);
	buf[n] = '\0';
}

/*
 * libpq can only send a plaintext password; with a hash in the auth file the
 * probe relies on trust or a .pgpass entry.
 */
static const char *health_password(const char *user)
{
	const char *stored;

	if (health.af == NULL || user[0] == '\0')
		return NULL;
	stored = auth_file_lookup(health.af, user);
	if (stored == NULL || password_kind(stored) == PASSWORD_PLAIN)
		return stored;
	if (!health.is_password_note_logged) {
		log_info("health_user %s has a hashed password in the auth file; probes log in "
			 "without it (trust or .pgpass)",
			 user);
		health.is_password_note_logged = true;
	}
	return NULL;
}

/*
 * hosts/hostaddrs: NULL to let libpq use b->host as it is (a socket directory
 * or an address), or the comma lists from probe_on_resolved.
 */
static void probe_connect(struct health_probe *p, const char *hosts, const char *hostaddrs)
{
	const struct backend *b = p->b;
	const char *keys[11], *values[11];
	char port[16], user[128];
	const char *password;
	int n = 0;

	health_user(user, sizeof(user));
	password = health_password(user);
	snprintf(port, sizeof(port), "%d", b->port);
	keys[n] = "host", values[n++] = hosts != NULL ? hosts : b->host;
	if (hostaddrs != NULL)
		keys[n] = "hostaddr", values[n++] = hostaddrs;
	keys[n] = "port", values[n++] = port;
	keys[n] = "dbname", values[n++] = health.cfg->health_dbname;
	keys[n] = "application_name", values[n++] = "pgwing-health";
	if (user[0] != '\0')
		keys[n] = "user", values[n++] = user;
	if (password != NULL)
		keys[n] = "password", values[n++] = password;
	/* The probe sees the backend as pgwing's servers do. */
	keys[n] = "sslmode", values[n++] = config_tls_mode_name(tls_server_mode(b));
	if (health.cfg->server_tls_ca_file[0] != '\0')
		keys[n] = "sslrootcert", values[n++] = health.cfg->server_tls_ca_file;
	/* pgwing's servers never use it, and probe_vet_auth could not read through it. */
	keys[n] = "gssencmode", values[n++] = "disable";
	keys[n] = NULL, values[n] = NULL;

	p->phase = PROBE_CONNECTING;
	p->conn = PQconnectStartParams(keys, values, 0);
	if (p->conn == NULL) {
		probe_failf(p, "out of memory starting a probe connection");
		return;
	}
	/* libpq's contract: after PQconnectStart, wait as if PQconnectPoll had said WRITING. */
	if (PQstatus(p->conn) == CONNECTION_BAD || !probe_wait(p, EV_WRITE))
		probe_failf(p, "%s", PQerrorMessage(p->conn));
}

/* Append the address of ai to list, comma-separated; false if it is not IPv4 or IPv6. */
static bool append_address(char *list, size_t listlen, const struct evutil_addrinfo *ai)
{
	char addr[INET6_ADDRSTRLEN];
	const void *src;
	size_t used = strlen(list);

	if (ai->ai_family == AF_INET)
		src = &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
	else if (ai->ai_family == AF_INET6)
		src = &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr;
	else
		return false;
	if (evutil_inet_ntop(ai->ai_family, src, addr, sizeof(addr)) == NULL)
		return false;
	snprintf(list + used, listlen - used, "%s%s", used > 0 ? "," : "", addr);
	return true;
}

static void probe_on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
	struct health_probe *p = arg;
	const char *host = p->b->host;
	char hostaddrs[MAX_ADDRESSES * (INET6_ADDRSTRLEN + 1)] = "";
	char *hosts;
	size_t hostlen = strlen(host);
	int naddr = 0;

	if (err == EVUTIL_EAI_CANCEL)
		return; /* probe_close cancelled the lookup, and owns what comes next */
	p->dns_req = NULL;
	if (err != 0) {
		probe_failf(p, "could not resolve host %s: %s", host, evutil_gai_strerror(err));
		return;
	}
	for (const struct evutil_addrinfo *ai = res; ai != NULL && naddr < MAX_ADDRESSES;
	     ai = ai->ai_next)
		naddr += append_address(hostaddrs, sizeof(hostaddrs), ai);
	evutil_freeaddrinfo(res);
	if (naddr == 0) {
		probe_failf(p, "could not resolve host %s: no IPv4 or IPv6 address", host);
		return;
	}
	/* libpq pairs host and hostaddr lists item by item: the name stays for TLS and .pgpass. */
	hosts = xmalloc(naddr * (hostlen + 1));
	for (int i = 0; i < naddr; i++) {
		memcpy(hosts + i * (hostlen + 1), host, hostlen);
		hosts[i * (hostlen + 1) + hostlen] = i + 1 < naddr ? ',' : '\0';
	}
	probe_connect(p, hosts, hostaddrs);
	free(hosts);
}

static void probe_resolve(struct health_probe *p)
{
	struct evutil_addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_protocol = IPPROTO_TCP,
	};
	struct evdns_getaddrinfo_request *req;

	if (rt->dns == NULL) {
		probe_failf(p, "cannot resolve host %s: no DNS resolver", p->b->host);
		return;
	}
	p->phase = PROBE_RESOLVING;
	req = evdns_getaddrinfo(rt->dns, p->b->host, NULL, &hints, probe_on_resolved, p);
	/* NULL when the answer was at hand (/etc/hosts, an error): the callback already ran. */
	if (req != NULL)
		p->dns_req = req;
}

static void probe_begin(struct health_probe *p)
{
	p->nbegun++;
	p->started_ms = now_ms();
	timer_add_ms(p->deadline, health.cfg->health_timeout_ms);
	if (p->conn != NULL)
		probe_send_query(p);
	else if (pq_is_literal_host(p->b->host))
		probe_connect(p, NULL, NULL);
	else
		probe_resolve(p);
}

static void probe_on_next_timer(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	probe_begin(arg);
}

static void probe_on_deadline(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct health_probe *p = arg;

	probe_failf(p, "probe timed out after %" PRId64 " ms", health.cfg->health_timeout_ms);
}

static void probe_schedule_now(struct health_probe *p)
{
	timer_add_ms(p->next_timer, 0);
}

static struct health_probe *probe_new(struct backend *b)
{
	struct health_probe *p = xcalloc(1, sizeof(*p));

	p->b = b;
	p->next = health.probes;
	health.probes = p;
	p->phase = PROBE_IDLE;
	pq_watch_init(&p->io);
	p->next_timer = evtimer_new(health.base, probe_on_next_timer, p);
	p->deadline = evtimer_new(health.base, probe_on_deadline, p);
	if (p->next_timer == NULL || p->deadline == NULL) {
		log_error("backend %s: cannot create probe timers", b->name);
		abort();
	}
	probe_schedule_now(p);
	return p;
}

/* is_answering: whoever asked about p's backend hears "no longer serving" (else: nothing). */
static void probe_free(struct health_probe *p, bool is_answering)
{
	struct health_probe **link = &health.probes;

	if (p == NULL)
		return;
	while (*link != p)
		link = &(*link)->next;
	*link = p->next;
	while (p->questions != NULL) {
		struct health_question *q = p->questions;

		p->questions = q->next;
		if (is_answering)
			q->answer(q->arg, false);
		free(q);
	}
	probe_close(p);
	event_free(p->next_timer);
	event_free(p->deadline);
	free(p);
}

void health_drop_backend(const struct backend *b)
{
	probe_free(probe_of(b), true);
}

int health_start(struct event_base *base, struct topology *topo, const struct config *cfg,
		 const struct auth_file *af)
{
	health.base = base;
	health.topo = topo;
	health.cfg = cfg;
	health.af = af;
	health.is_password_note_logged = false;
	for (int i = 0; i < topo->count; i++)
		probe_new(topo->backends[i]);
	return 0;
}

void health_reconfigure(const struct config *cfg, const struct auth_file *af)
{
	if (health.base == NULL)
		return;
	health.cfg = cfg;
	health.af = af;
	health.is_password_note_logged = false;
	for (int i = 0; i < health.topo->count; i++) {
		struct backend *b = health.topo->backends[i];
		struct health_probe *p = probe_of(b);

		if (p == NULL) {
			probe_new(b);
		} else if (p->phase == PROBE_IDLE) {
			/* health_user, health_dbname or the password may have changed. */
			probe_close(p);
			/*
			 * Asleep, it went unprobed: no longer so if wake= went or
			 * probe_sleeping came on.
			 */
			if (b->state == BACKEND_ASLEEP && (!b->can_wake || cfg->probe_sleeping) &&
			    !evtimer_pending(p->next_timer, NULL))
				probe_schedule_now(p);
		} else {
			p->is_conn_stale = true;
		}
	}
}

void health_probe_now(const struct backend *b)
{
	struct health_probe *p = probe_of(b);

	/* Later on the loop, not here: the caller is in the middle of its own state change. */
	if (p != NULL && p->phase == PROBE_IDLE)
		probe_schedule_now(p);
}

bool health_ask_serving(const struct backend *b, health_answer_fn answer, void *arg)
{
	struct health_probe *p = probe_of(b);
	struct health_question *q;

	if (p == NULL)
		return false;
	q = xcalloc(1, sizeof(*q));
	q->asked_after = p->nbegun;
	q->role = b->role;
	q->answer = answer;
	q->arg = arg;
	q->next = p->questions;
	p->questions = q;
	/*
	 * A new connection: the kept one predates what happened, and Postgres
	 * refuses new ones as soon as it starts shutting down. A probe under way
	 * began before the question: the next one is due when it ends.
	 */
	if (p->phase == PROBE_IDLE)
		probe_afresh(p);
	return true;
}

void health_forget_questions(const void *arg)
{
	for (struct health_probe *p = health.probes; p != NULL; p = p->next) {
		struct health_question **link = &p->questions, *q;

		while ((q = *link) != NULL) {
			if (q->arg == arg) {
				*link = q->next;
				free(q);
			} else {
				link = &q->next;
			}
		}
	}
}

void health_probe_all_now(void)
{
	for (struct health_probe *p = health.probes; p != NULL; p = p->next)
		if (p->phase == PROBE_IDLE && p->b->state != BACKEND_ASLEEP &&
		    p->b->state != BACKEND_WAKING)
			probe_schedule_now(p);
}

void health_note_client_held(void)
{
	bool was_hurried = is_hurried();

	health.held_until_ms = now_ms() + health.cfg->hold_timeout_ms;
	if (was_hurried || !is_hurried())
		return;
	/* Probes scheduled at health_interval come sooner; the waking keep their own pace. */
	for (struct health_probe *p = health.probes; p != NULL; p = p->next) {
		int64_t delay = p->started_ms + health.cfg->health_interval_holding_ms - now_ms();

		if (p->phase != PROBE_IDLE || p->b->state == BACKEND_WAKING ||
		    !evtimer_pending(p->next_timer, NULL))
			continue;
		timer_add_ms(p->next_timer, delay > 0 ? delay : 0);
	}
}

void health_probe_waking(const struct backend *b)
{
	struct health_probe *p = probe_of(b);

	if (p == NULL)
		return;
	/* A probe under way ends in probe_end, which schedules the next one at the waking pace. */
	if (p->phase == PROBE_IDLE) {
		evtimer_del(p->next_timer);
		probe_schedule_now(p);
	}
}

bool health_stop_probing(const struct backend *b)
{
	struct health_probe *p = probe_of(b);

	/* Mid-probe: the next sweep tries again. */
	if (p == NULL || p->phase != PROBE_IDLE)
		return false;
	probe_close(p);
	evtimer_del(p->next_timer);
	return true;
}

bool health_is_connected(const struct backend *b)
{
	const struct health_probe *p = probe_of(b);

	return p != NULL && p->conn != NULL;
}

void health_stop(void)
{
	while (health.probes != NULL)
		probe_free(health.probes, false);
	health.base = NULL;
}
