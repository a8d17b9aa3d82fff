/*
 * auth_query: see auth_query.h. A user's entry in the cache is either
 * answered (stored, fetched_ms) or pending (in the queue of users to look up,
 * with the logins waiting for it). The connection takes the queue's head,
 * runs auth_query with the name as a parameter, answers the waiters, and goes
 * on with the next; a failure (no primary, connection refused, query error)
 * keeps the queue and tries again shortly, for as long as waiters hold on
 * (their own hold_timeout decides, as for a client waiting for a server).
 *
 * The connection never carries anything from a client (CVE-2025-12819: a
 * client's search_path reached PgBouncer's auth connection): its parameters
 * are pgwing's, with search_path fixed to pg_catalog, pg_temp so that even a
 * custom query with unqualified names sees the catalogs, not a look-alike.
 * Stored passwords are never logged.
 */
#include "pgwing/auth_query.h"
#include "pgwing/auth.h"
#include "pgwing/log.h"
#include "pgwing/pq.h"
#include "pgwing/router.h"
#include "pgwing/runtime.h"
#include "pgwing/tls.h"
#include "pgwing/wake.h"

#include <openssl/crypto.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/* The process state, given by the runtime at start (auth_query_init): read, never written. */
static const struct runtime *rt;

void auth_query_init(const struct runtime *runtime)
{
	rt = runtime;
}

/* A failed lookup tries again this soon: as the pool retries its waiters. */
#define RETRY_MS 250

/* Startup options of the lookup connection: see the top of the file. */
#define SEARCH_PATH_OPTION "-c search_path=pg_catalog,pg_temp"

struct auth_query_wait {
	TAILQ_ENTRY(auth_query_wait) link;
	struct cache_entry *entry;
	auth_query_done_fn done;
	void *arg;
};

TAILQ_HEAD(wait_list, auth_query_wait);

struct cache_entry {
	TAILQ_ENTRY(cache_entry) link;       /* in cache.entries: the oldest answer first */
	TAILQ_ENTRY(cache_entry) queue_link; /* in cache.queue while pending */
	char *user;
	char *stored;       /* NULL: no such user */
	int64_t fetched_ms; /* when answered */
	bool is_pending;
	struct wait_list waiters;
};

TAILQ_HEAD(entry_list, cache_entry);

enum lookup_phase {
	PHASE_IDLE, /* no connection */
	PHASE_CONNECTING,
	PHASE_QUERYING,
};

static struct {
	struct entry_list entries;
	int count;
	struct entry_list queue;
	PGconn *conn;
	struct pq_watch io;
	enum lookup_phase phase;
	struct event *deadline; /* the connect, or one query, took too long */
	struct event *retry;
	/* The answer being read: has_row, and stored (NULL: no row) */
	bool has_row;
	char *row_stored;
	bool is_failing; /* the last attempt failed: said once, until one succeeds */
	char last_error[256];
} cache = {
	.entries = TAILQ_HEAD_INITIALIZER(cache.entries),
	.queue = TAILQ_HEAD_INITIALIZER(cache.queue),
	.io = {NULL, -1, 0},
};

static void lookup_next(void);
static void lookup_on_io(evutil_socket_t fd, short what, void *arg);
static void lookup_on_deadline_cb(evutil_socket_t fd, short what, void *arg);
static void lookup_on_retry_cb(evutil_socket_t fd, short what, void *arg);

bool auth_query_is_enabled(const struct config *cfg)
{
	return cfg->auth_user[0] != '\0';
}

const char *auth_query_last_error(void)
{
	return cache.last_error;
}

static void free_secret(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static void entry_free(struct cache_entry *e)
{
	struct auth_query_wait *w;

	TAILQ_REMOVE(&cache.entries, e, link);
	cache.count--;
	if (e->is_pending)
		TAILQ_REMOVE(&cache.queue, e, queue_link);
	while ((w = TAILQ_FIRST(&e->waiters)) != NULL) {
		TAILQ_REMOVE(&e->waiters, w, link);
		free(w);
	}
	free(e->user);
	free_secret(e->stored);
	free(e);
}

static struct cache_entry *entry_find(const char *user)
{
	struct cache_entry *e;

	for (e = TAILQ_FIRST(&cache.entries); e != NULL; e = TAILQ_NEXT(e, link))
		if (strcmp(e->user, user) == 0)
			return e;
	return NULL;
}

/* Room for one more: the oldest answered entries go (pending ones have logins waiting). */
static void cache_make_room(void)
{
	struct cache_entry *e, *next;

	for (e = TAILQ_FIRST(&cache.entries); e != NULL && cache.count >= rt->cfg->auth_cache_size;
	     e = next) {
		next = TAILQ_NEXT(e, link);
		if (!e->is_pending)
			entry_free(e);
	}
}

static void timers_create(void)
{
	if (cache.deadline != NULL)
		return;
	cache.deadline = CHECK_ALLOC(evtimer_new(rt->base, lookup_on_deadline_cb, NULL));
	cache.retry = CHECK_ALLOC(evtimer_new(rt->base, lookup_on_retry_cb, NULL));
}

static void lookup_close(void)
{
	pq_watch_clear(&cache.io);
	if (cache.conn != NULL)
		PQfinish(cache.conn);
	cache.conn = NULL;
	cache.phase = PHASE_IDLE;
	free_secret(cache.row_stored);
	cache.row_stored = NULL;
	cache.has_row = false;
	if (cache.deadline != NULL)
		evtimer_del(cache.deadline);
}

/* The attempt failed: keep the queue, try again in RETRY_MS. */
static void lookup_failf(const char *fmt, ...) PRINTF_LIKE(1, 2);

static void lookup_failf(const char *fmt, ...)
{
	char reason[sizeof(cache.last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	pq_copy_one_line(cache.last_error, sizeof(cache.last_error), reason);
	/* Said once per outage: a database that is down for a minute is 240 attempts. */
	if (!cache.is_failing)
		log_warn("auth_query: lookup failed, retrying while logins wait: %s",
			 cache.last_error);
	else
		log_debug("auth_query: lookup failed again: %s", cache.last_error);
	cache.is_failing = true;
	lookup_close();
	timer_add_ms(cache.retry, RETRY_MS);
}

static bool lookup_wait(short what)
{
	return pq_watch_arm(&cache.io, rt->base, cache.conn, what, lookup_on_io, NULL);
}

/* The queue's head is answered: tell its logins, in the order they came. */
static void entry_answer(struct cache_entry *e, char *stored)
{
	struct auth_query_wait *w;

	TAILQ_REMOVE(&cache.queue, e, queue_link);
	e->is_pending = false;
	free_secret(e->stored);
	e->stored = stored;
	e->fetched_ms = now_ms();
	/* The newest answer is the last to be evicted. */
	TAILQ_REMOVE(&cache.entries, e, link);
	TAILQ_INSERT_TAIL(&cache.entries, e, link);
	log_debug("auth_query: user \"%s\" %s", e->user,
		  stored != NULL ? "found" : "not found (or has no password)");
	while ((w = TAILQ_FIRST(&e->waiters)) != NULL) {
		auth_query_done_fn done = w->done;
		void *arg = w->arg;

		/* Freed first: done() may close its client, which must not cancel it again. */
		TAILQ_REMOVE(&e->waiters, w, link);
		free(w);
		done(arg, e->stored);
	}
}

static void lookup_send(void)
{
	struct cache_entry *e = TAILQ_FIRST(&cache.queue);
	const char *params[1] = {e->user};
	int flushed;

	cache.phase = PHASE_QUERYING;
	cache.has_row = false;
	timer_add_ms(cache.deadline, rt->cfg->server_connect_timeout_ms);
	/* The name is a parameter, never part of the SQL text: nothing in it is ever code. */
	if (!PQsendQueryParams(cache.conn, rt->cfg->auth_query, 1, NULL, params, NULL, NULL, 0)) {
		lookup_failf("%s", PQerrorMessage(cache.conn));
		return;
	}
	flushed = PQflush(cache.conn);
	if (flushed < 0)
		lookup_failf("%s", PQerrorMessage(cache.conn));
	else if (!lookup_wait(flushed == 0 ? EV_READ : EV_READ | EV_WRITE))
		lookup_failf("cannot watch the auth_query connection");
}

/* One result of the query: no row (no such user) or one (name, password); else an error. */
static bool lookup_take_result(PGresult *res)
{
	const char *sqlstate;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		lookup_failf("%s (SQLSTATE %s)", PQresultErrorMessage(res),
			     sqlstate != NULL ? sqlstate : "none");
		return false;
	}
	if (cache.has_row || PQntuples(res) > 1 || PQnfields(res) != 2) {
		lookup_failf("auth_query must return at most one row of two columns (user name, "
			     "password), returned %d rows of %d",
			     PQntuples(res), PQnfields(res));
		return false;
	}
	if (PQntuples(res) == 1) {
		cache.has_row = true;
		/* A role without a password (NULL) can't log in with one: as an unknown user. */
		if (!PQgetisnull(res, 0, 1) && PQgetvalue(res, 0, 1)[0] != '\0')
			cache.row_stored = xstrdup(PQgetvalue(res, 0, 1));
	}
	return true;
}

static void lookup_read_results(void)
{
	PGresult *res;
	char *stored;
	bool ok;

	while (!PQisBusy(cache.conn)) {
		res = PQgetResult(cache.conn);
		if (res == NULL) {
			evtimer_del(cache.deadline);
			cache.is_failing = false;
			cache.last_error[0] = '\0';
			stored = cache.row_stored;
			cache.row_stored = NULL;
			entry_answer(TAILQ_FIRST(&cache.queue), stored);
			lookup_next();
			return;
		}
		ok = lookup_take_result(res);
		/* The secret was copied out: the result's copy goes as carefully. */
		if (PQntuples(res) == 1 && PQnfields(res) >= 2)
			OPENSSL_cleanse(PQgetvalue(res, 0, 1), strlen(PQgetvalue(res, 0, 1)));
		PQclear(res);
		if (!ok)
			return;
	}
	if (!lookup_wait(EV_READ))
		lookup_failf("cannot watch the auth_query connection");
}

static void lookup_on_query_io(short what)
{
	int flushed = 0;

	if ((what & EV_READ) && !PQconsumeInput(cache.conn)) {
		lookup_failf("%s", PQerrorMessage(cache.conn));
		return;
	}
	if (cache.io.what & EV_WRITE) {
		flushed = PQflush(cache.conn);
		if (flushed < 0) {
			lookup_failf("%s", PQerrorMessage(cache.conn));
			return;
		}
	}
	if (flushed > 0) {
		if (!lookup_wait(EV_READ | EV_WRITE))
			lookup_failf("cannot watch the auth_query connection");
		return;
	}
	lookup_read_results();
}

static void lookup_poll_connect(void)
{
	switch (PQconnectPoll(cache.conn)) {
	case PGRES_POLLING_READING:
		if (!lookup_wait(EV_READ))
			lookup_failf("%s", PQerrorMessage(cache.conn));
		return;
	case PGRES_POLLING_WRITING:
		if (!lookup_wait(EV_WRITE))
			lookup_failf("%s", PQerrorMessage(cache.conn));
		return;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(cache.conn, 1) != 0) {
			lookup_failf("%s", PQerrorMessage(cache.conn));
			return;
		}
		evtimer_del(cache.deadline);
		lookup_send();
		return;
	case PGRES_POLLING_FAILED:
	case PGRES_POLLING_ACTIVE: /* unused since libpq 7.4 */
		break;
	}
	lookup_failf("%s", PQerrorMessage(cache.conn));
}

static void lookup_on_io(evutil_socket_t fd UNUSED, short what, void *arg UNUSED)
{
	switch (cache.phase) {
	case PHASE_CONNECTING:
		lookup_poll_connect();
		break;
	case PHASE_QUERYING:
		lookup_on_query_io(what);
		break;
	case PHASE_IDLE:
		break;
	}
}

static void lookup_on_deadline_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	lookup_failf("auth_query: no answer within server_connect_timeout (%" PRId64 " ms)",
		     rt->cfg->server_connect_timeout_ms);
}

static void lookup_on_retry_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	lookup_next();
}

/* auth_user's password: only a plaintext one can be sent; else trust or .pgpass. */
static const char *auth_user_password(void)
{
	const char *stored = auth_file_lookup(rt->auth, rt->cfg->auth_user);

	return stored != NULL && password_kind(stored) == PASSWORD_PLAIN ? stored : NULL;
}

static void lookup_connect(const struct backend *b)
{
	const char *keys[11], *values[11];
	const char *password = auth_user_password();
	char port[16];
	int n = 0;

	snprintf(port, sizeof(port), "%d", b->port);
	keys[n] = "host", values[n++] = b->host;
	keys[n] = "port", values[n++] = port;
	keys[n] = "dbname", values[n++] = rt->cfg->auth_dbname;
	keys[n] = "user", values[n++] = rt->cfg->auth_user;
	if (password != NULL)
		keys[n] = "password", values[n++] = password;
	keys[n] = "application_name", values[n++] = "pgwing-auth";
	keys[n] = "options", values[n++] = SEARCH_PATH_OPTION;
	keys[n] = "sslmode", values[n++] = config_tls_mode_name(tls_server_mode(b));
	if (rt->cfg->server_tls_ca_file[0] != '\0')
		keys[n] = "sslrootcert", values[n++] = rt->cfg->server_tls_ca_file;
	keys[n] = NULL, values[n] = NULL;

	cache.phase = PHASE_CONNECTING;
	timer_add_ms(cache.deadline, rt->cfg->server_connect_timeout_ms);
	cache.conn = PQconnectStartParams(keys, values, 0);
	if (cache.conn == NULL) {
		lookup_failf("out of memory starting the auth_query connection");
		return;
	}
	/* libpq's contract: after PQconnectStart, wait as if PQconnectPoll had said WRITING. */
	if (PQstatus(cache.conn) == CONNECTION_BAD || !lookup_wait(EV_WRITE))
		lookup_failf("%s", PQerrorMessage(cache.conn));
}

/*
 * Look up the queue's head, on the open connection or a new one to the
 * primary; with none, wake it if it sleeps and try again shortly. An empty
 * queue closes the connection: an idle database must be free to stop.
 */
static void lookup_next(void)
{
	struct cache_entry *e, *next;
	struct backend *b, *w;

	/*
	 * Nobody waits for these any more (they gave up, or left): looking them up
	 * would retry, and wake the database, for no one.
	 */
	for (e = TAILQ_FIRST(&cache.queue); e != NULL; e = next) {
		next = TAILQ_NEXT(e, queue_link);
		if (TAILQ_EMPTY(&e->waiters))
			entry_free(e);
	}
	if (TAILQ_EMPTY(&cache.queue)) {
		lookup_close();
		return;
	}
	if (cache.phase == PHASE_QUERYING && cache.conn != NULL) {
		lookup_send();
		return;
	}
	b = router_pick(rt->topo, rt->cfg, TARGET_RW);
	if (b == NULL) {
		w = router_pick_wakeable(rt->topo, rt->cfg, TARGET_RW);
		if (w != NULL)
			wake_backend(w);
		lookup_failf("no primary available%s%s", w != NULL ? ": waking " : "",
			     w != NULL ? w->name : "");
		return;
	}
	/* Names are resolved by health probes with evdns; libpq here would block the loop. */
	if (!pq_is_literal_host(b->host)) {
		lookup_failf("backend %s: auth_query needs an address or a socket directory, not "
			     "the name %s",
			     b->name, b->host);
		return;
	}
	lookup_connect(b);
}

bool auth_query_lookup(const char *user, auth_query_done_fn done, void *arg,
		       struct auth_query_wait **wait, const char **stored)
{
	struct cache_entry *e = entry_find(user);
	struct auth_query_wait *w;

	if (e != NULL && !e->is_pending && now_ms() - e->fetched_ms < rt->cfg->auth_cache_ttl_ms) {
		*stored = e->stored;
		return true;
	}
	if (e == NULL) {
		cache_make_room();
		e = xcalloc(1, sizeof(*e));
		e->user = xstrdup(user);
		TAILQ_INIT(&e->waiters);
		TAILQ_INSERT_TAIL(&cache.entries, e, link);
		cache.count++;
	}
	if (!e->is_pending) {
		e->is_pending = true;
		TAILQ_INSERT_TAIL(&cache.queue, e, queue_link);
	}
	w = xcalloc(1, sizeof(*w));
	w->entry = e;
	w->done = done;
	w->arg = arg;
	TAILQ_INSERT_TAIL(&e->waiters, w, link);
	*wait = w;
	timers_create();
	/* Idle and not between retries: start now. Otherwise the queue is already moving. */
	if (cache.phase == PHASE_IDLE && !evtimer_pending(cache.retry, NULL))
		lookup_next();
	return false;
}

void auth_query_cancel(struct auth_query_wait *wait)
{
	if (wait == NULL)
		return;
	/* A lookup under way still finishes (its answer serves the next login); see lookup_next. */
	TAILQ_REMOVE(&wait->entry->waiters, wait, link);
	free(wait);
}

void auth_query_forget_user(const char *user)
{
	struct cache_entry *e = entry_find(user);

	if (e != NULL && !e->is_pending)
		entry_free(e);
}

void auth_query_forget(void)
{
	struct cache_entry *e, *next;

	for (e = TAILQ_FIRST(&cache.entries); e != NULL; e = next) {
		next = TAILQ_NEXT(e, link);
		if (!e->is_pending)
			entry_free(e);
	}
}

void auth_query_stop(void)
{
	lookup_close();
	while (!TAILQ_EMPTY(&cache.entries))
		entry_free(TAILQ_FIRST(&cache.entries));
	if (cache.deadline != NULL) {
		event_free(cache.deadline);
		event_free(cache.retry);
	}
	cache.deadline = cache.retry = NULL;
}
