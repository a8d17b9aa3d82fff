/*
 * The admin console: the pseudo database "pgwing", answered by pgwing itself
 * with real result sets, so psql and any driver can read them. Commands are
 * parsed by admin_parse.c; this file runs them against the live state.
 */
#include "pgwing/admin.h"

#include "pgwing/admin_parse.h"
#include "pgwing/client.h"
#include "pgwing/config.h"
#include "pgwing/health.h"
#include "pgwing/link.h"
#include "pgwing/log.h"
#include "pgwing/metrics.h"
#include "pgwing/pool.h"
#include "pgwing/runtime.h"
#include "pgwing/server.h"
#include "pgwing/stats.h"
#include "pgwing/tls.h"
#include "pgwing/topology.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* The process state, given by the runtime at start (admin_init): read, never written. */
static const struct runtime *rt;

void admin_init(const struct runtime *runtime)
{
	rt = runtime;
}

/* How often a PAUSE looks whether the last transaction has ended. */
#define PAUSE_POLL_MS 50

/* Widest result set, and room for one formatted value (numbers, times). */
#define MAX_COLUMNS 25
#define FIELD_LEN   64

/* Per console client; created with the first message, freed by admin_client_gone(). */
struct admin_state {
	struct client *cl;
	bool is_skipping_to_sync; /* extended protocol refused: drop messages up to Sync */
	/*
	 * A PAUSE waiting for transactions to end; the client is not read
	 * meanwhile, and what it sent behind the PAUSE waits in its input.
	 */
	struct event *pause_timer;
	char pause_database[ADMIN_NAME_MAX]; /* "" for all */
};

/* One row of a result set being built: values point into text or elsewhere. */
struct row {
	const char *values[MAX_COLUMNS];
	char text[MAX_COLUMNS][FIELD_LEN];
};

struct result {
	struct evbuffer *out;
	size_t ncols;
	uint64_t nrows;
	/* A JSON array of objects (the HTTP /status) instead of a result set. */
	bool is_json;
	const struct proto_column *cols;
};

static void admin_run(struct client *cl, const char *query);

static const char *const client_state_names[] = {
	[CL_STARTUP] = "startup", [CL_AUTH] = "auth",       [CL_IDLE] = "idle",
	[CL_WAITING] = "waiting", [CL_LOGIN] = "login",     [CL_ACTIVE] = "active",
	[CL_ADMIN] = "admin",     [CL_CLOSING] = "closing",
};

static const char *const server_state_names[] = {
	[SV_CONNECTING] = "connecting", [SV_LOGIN] = "login", [SV_RESTORE] = "restore",
	[SV_ACTIVE] = "active",         [SV_RESET] = "reset", [SV_IDLE] = "idle",
	[SV_CLOSING] = "closing",
};

const char *admin_client_state_name(const struct client *cl)
{
	return client_state_names[cl->state];
}

const char *admin_server_state_name(const struct server *sv)
{
	return server_state_names[sv->state];
}

enum admin_role admin_role_of(const char *user)
{
	if (config_list_contains(rt->cfg->admin_users, user))
		return ADMIN_ROLE_ADMIN;
	if (config_list_contains(rt->cfg->stats_users, user))
		return ADMIN_ROLE_STATS;
	return ADMIN_ROLE_NONE;
}

void admin_welcome(struct client *cl)
{
	struct evbuffer *out = conn_output(&cl->conn);

	proto_put_parameter_status(out, "server_version", "15.0 (pgwing " PACKAGE_VERSION ")");
	proto_put_parameter_status(out, "client_encoding", "UTF8");
	proto_put_parameter_status(out, "server_encoding", "UTF8");
	proto_put_parameter_status(out, "DateStyle", "ISO, MDY");
	proto_put_parameter_status(out, "TimeZone", "UTC");
	proto_put_parameter_status(out, "standard_conforming_strings", "on");
	proto_put_parameter_status(out, "integer_datetimes", "on");
	proto_put_backend_key(out, 0, 0);
	proto_put_ready(out, PROTO_TX_IDLE);
}

static struct admin_state *state_of(struct client *cl)
{
	if (cl->admin_state == NULL) {
		struct admin_state *st = xcalloc(1, sizeof(*st));

		st->cl = cl;
		cl->admin_state = st;
	}
	return cl->admin_state;
}

/*
 * Not while a PAUSE waits (its answer comes first), nor while
 * forward_buffer_size of answers wait to be sent, as on the data path: a
 * client that pipelines SHOWs and never reads would otherwise have pgwing
 * buffer their answers without bound, and spend the loop making them.
 */
bool admin_is_ready(struct client *cl)
{
	const struct admin_state *st = cl->admin_state;

	if (st != NULL && st->pause_timer != NULL)
		return false;
	return !conn_throttle(&cl->conn, &cl->conn);
}

void admin_drained(struct client *cl)
{
	const struct admin_state *st = cl->admin_state;

	if (cl->conn.is_reading || (st != NULL && st->pause_timer != NULL))
		return;
	conn_drained(&cl->conn, &cl->conn);
	client_read_buffered(cl);
}

void admin_client_gone(struct client *cl)
{
	struct admin_state *st = cl->admin_state;

	if (st == NULL)
		return;
	if (st->pause_timer != NULL)
		event_free(st->pause_timer);
	free(st);
	cl->admin_state = NULL;
}

/* Result sets. */

/* r->out and r->is_json are set: start the rows. */
static void result_columns(struct result *r, const struct proto_column *cols, size_t ncols)
{
	r->cols = cols;
	r->ncols = ncols;
	r->nrows = 0;
	if (r->is_json)
		evbuffer_add(r->out, "[", 1);
	else
		proto_put_row_description(r->out, cols, ncols);
}

static void result_begin(struct result *r, struct client *cl, const struct proto_column *cols,
			 size_t ncols)
{
	r->out = conn_output(&cl->conn);
	r->is_json = false;
	result_columns(r, cols, ncols);
}

/* A row as a JSON object: numbers stay numbers, NULL is null, the rest strings. */
static void result_json_row(struct result *r, const struct row *row)
{
	evbuffer_add(r->out, r->nrows > 0 ? ",{" : "{", r->nrows > 0 ? 2 : 1);
	for (size_t i = 0; i < r->ncols; i++) {
		uint32_t oid = r->cols[i].type_oid;

		if (i > 0)
			evbuffer_add(r->out, ",", 1);
		metrics_put_json_string(r->out, r->cols[i].name);
		evbuffer_add(r->out, ":", 1);
		if (row->values[i] == NULL)
			evbuffer_add(r->out, "null", 4);
		else if (oid == PROTO_OID_INT4 || oid == PROTO_OID_INT8 || oid == PROTO_OID_FLOAT8)
			evbuffer_add(r->out, row->values[i], strlen(row->values[i]));
		else if (oid == PROTO_OID_BOOL)
			evbuffer_add_printf(r->out, "%s",
					    row->values[i][0] == 't' ? "true" : "false");
		else
			metrics_put_json_string(r->out, row->values[i]);
	}
	evbuffer_add(r->out, "}", 1);
}

static void result_row(struct result *r, const struct row *row)
{
	if (r->is_json)
		result_json_row(r, row);
	else
		proto_put_data_row(r->out, row->values, r->ncols);
	r->nrows++;
}

/* The tag carries the row count, as a SELECT's does, so drivers report it. */
static void result_end(struct result *r)
{
	char tag[32];

	if (r->is_json) {
		evbuffer_add(r->out, "]", 1);
		return;
	}
	snprintf(tag, sizeof(tag), "SELECT %" PRIu64, r->nrows);
	proto_put_command_complete(r->out, tag);
}

static void row_text(struct row *row, size_t i, const char *value)
{
	row->values[i] = value;
}

static void row_int(struct row *row, size_t i, int64_t value)
{
	snprintf(row->text[i], FIELD_LEN, "%" PRId64, value);
	row->values[i] = row->text[i];
}

static void row_float(struct row *row, size_t i, double value)
{
	snprintf(row->text[i], FIELD_LEN, "%.3f", value);
	row->values[i] = row->text[i];
}

static void row_bool(struct row *row, size_t i, bool value)
{
	row->values[i] = value ? "t" : "f";
}

/*
 * A moment on the monotonic clock (now_ms()), as a timestamptz in UTC; NULL for 0
 * (never). The wall clock is read once per call, so times in one result agree.
 */
static void row_time(struct row *row, size_t i, int64_t mono_ms)
{
	struct timespec wall;
	struct tm tm;
	int64_t ms;
	time_t secs;

	if (mono_ms == 0) {
		row->values[i] = NULL;
		return;
	}
	clock_gettime(CLOCK_REALTIME, &wall);
	ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 - (now_ms() - mono_ms);
	secs = (time_t)(ms / 1000);
	gmtime_r(&secs, &tm);
	snprintf(row->text[i], FIELD_LEN, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(ms % 1000));
	row->values[i] = row->text[i];
}

/* SHOW commands. */

static void show_help(struct client *cl)
{
	static const struct proto_column cols[] = {
		{"command", PROTO_OID_TEXT},
		{"description", PROTO_OID_TEXT},
	};
	struct result r;
	struct row row;
	size_t n;
	const struct admin_help *help = admin_help_entries(&n);

	result_begin(&r, cl, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < n; i++) {
		row_text(&row, 0, help[i].command);
		row_text(&row, 1, help[i].description);
		result_row(&r, &row);
	}
	result_end(&r);
}

static void show_version(struct client *cl)
{
	static const struct proto_column cols[] = {{"version", PROTO_OID_TEXT}};
	struct result r;
	struct row row;

	result_begin(&r, cl, cols, ARRAY_SIZE(cols));
	row_text(&row, 0, "pgwing " PACKAGE_VERSION);
	result_row(&r, &row);
	result_end(&r);
}

static void show_config(struct client *cl)
{
	static const struct proto_column cols[] = {
		{"key", PROTO_OID_TEXT},
		{"value", PROTO_OID_TEXT},
		{"default", PROTO_OID_TEXT},
		{"changeable", PROTO_OID_BOOL},
	};
	struct result r;
	struct row row;
	char value[1024];
	size_t n;
	const struct setting *settings = config_settings(&n);

	result_begin(&r, cl, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < n; i++) {
		config_format_value(rt->cfg, &settings[i], value, sizeof(value));
		row_text(&row, 0, settings[i].name);
		row_text(&row, 1, value);
		row_text(&row, 2, settings[i].default_value);
		row_bool(&row, 3, settings[i].is_reloadable);
		result_row(&r, &row);
	}
	result_end(&r);
}

/*
 * What of pgwing's keeps b from sleeping, as a list ("clients,probe"), or NULL
 * when it holds no connection there: clients' servers (that go when idle for
 * server_idle_timeout), sessions pinned to theirs, pooled servers, the probe.
 */
static void row_awake_for(struct row *row, size_t i, const struct backend *b)
{
	struct pool_backend_use use = pool_backend_use(b);
	const struct {
		bool is_holding;
		const char *word;
	} reasons[] = {
		{use.held > 0, "clients"},
		{use.pinned > 0, "pinned"},
		{use.pooled > 0, "pool"},
		{health_is_connected(b), "probe"},
	};
	size_t len = 0;

	for (size_t r = 0; r < ARRAY_SIZE(reasons); r++)
		if (reasons[r].is_holding)
			len += (size_t)snprintf(row->text[i] + len, FIELD_LEN - len, "%s%s",
						len > 0 ? "," : "", reasons[r].word);
	row_text(row, i, len > 0 ? row->text[i] : NULL);
}

/* SHOW BACKENDS, into a result whose out and is_json are set. */
static void put_backends(struct result *r)
{
	static const struct proto_column cols[] = {
		{"name", PROTO_OID_TEXT},
		{"host", PROTO_OID_TEXT},
		{"port", PROTO_OID_INT4},
		{"region", PROTO_OID_TEXT},
		{"role", PROTO_OID_TEXT},
		{"state", PROTO_OID_TEXT},
		{"lsn", PROTO_OID_TEXT},
		{"lag_bytes", PROTO_OID_INT8},
		{"lag_ms", PROTO_OID_INT8},
		{"rtt_ms", PROTO_OID_FLOAT8},
		{"clients", PROTO_OID_INT8},
		{"last_error", PROTO_OID_TEXT},
		{"last_change", PROTO_OID_TIMESTAMPTZ},
		{"last_wake", PROTO_OID_TIMESTAMPTZ},
		{"wake_ms", PROTO_OID_INT8},
		{"awake_for", PROTO_OID_TEXT},
	};

	result_columns(r, cols, ARRAY_SIZE(cols));
	for (int i = 0; i < rt->topo->count; i++) {
		const struct backend *b = rt->topo->backends[i];
		struct row row;

		row_text(&row, 0, b->name);
		row_text(&row, 1, b->host);
		row_int(&row, 2, b->port);
		row_text(&row, 3, b->region);
		/* A fenced primary must not read as one: nothing is routed to it. */
		row_text(&row, 4, b->is_fenced ? "fenced" : backend_role_name(b->role));
		row_text(&row, 5, backend_state_name(b->state));
		if (b->lsn != 0) {
			snprintf(row.text[6], FIELD_LEN, "%X/%X", (uint32_t)(b->lsn >> 32),
				 (uint32_t)b->lsn);
			row_text(&row, 6, row.text[6]);
		} else {
			row_text(&row, 6, NULL);
		}
		if (b->lag_bytes >= 0)
			row_int(&row, 7, b->lag_bytes);
		else
			row_text(&row, 7, NULL);
		if (b->lag_ms >= 0)
			row_int(&row, 8, b->lag_ms);
		else
			row_text(&row, 8, NULL);
		if (b->rtt_ms >= 0)
			row_float(&row, 9, b->rtt_ms);
		else
			row_text(&row, 9, NULL);
		row_int(&row, 10, b->nclients);
		row_text(&row, 11, b->last_error[0] != '\0' ? b->last_error : NULL);
		row_time(&row, 12, b->last_change_ms);
		/* The wake under way, or the last one; wake_ms only once it succeeded. */
		if (b->wake_started_ms != 0)
			row_time(&row, 13, b->wake_started_ms);
		else
			row_text(&row, 13, NULL);
		if (b->state != BACKEND_WAKING && b->last_wake_ms >= 0)
			row_int(&row, 14, b->last_wake_ms);
		else
			row_text(&row, 14, NULL);
		row_awake_for(&row, 15, b);
		result_row(r, &row);
	}
	result_end(r);
}

static void show_backends(struct client *cl)
{
	struct result r = {.out = conn_output(&cl->conn)};

	put_backends(&r);
}

/* What SHOW POOLS counts of one pool: its clients' servers and its pooled ones. */
struct pool_counts {
	int sv_active; /* in a transaction or a request, or being reset */
	int sv_idle;   /* logged in, between transactions, with or without a client */
	int sv_login;  /* connecting or logging in */
};

static struct pool_counts count_servers(const struct pool *p)
{
	struct pool_counts c = {0};
	const struct client *cl;
	const struct server *sv;

	TAILQ_FOREACH (cl, &p->active, pool_link) {
		sv = cl->server;
		if (sv == NULL)
			continue;
		if (sv->state == SV_CONNECTING || sv->state == SV_LOGIN)
			c.sv_login++;
		else if (sv->state == SV_ACTIVE && sv->tx_status == PROTO_TX_IDLE &&
			 cl->xact.pending_syncs == 0)
			c.sv_idle++;
		else
			c.sv_active++;
	}
	TAILQ_FOREACH (sv, &p->idle, idle_link) {
		if (sv->state == SV_IDLE)
			c.sv_idle++;
		else
			c.sv_active++;
	}
	return c;
}

/* SHOW POOLS, into a result whose out and is_json are set. */
static void put_pools(struct result *r)
{
	static const struct proto_column cols[] = {
		{"database", PROTO_OID_TEXT},   {"user", PROTO_OID_TEXT},
		{"target", PROTO_OID_TEXT},     {"cl_active", PROTO_OID_INT8},
		{"cl_waiting", PROTO_OID_INT8}, {"cl_held_for", PROTO_OID_TEXT},
		{"sv_active", PROTO_OID_INT8},  {"sv_idle", PROTO_OID_INT8},
		{"sv_login", PROTO_OID_INT8},   {"maxwait_ms", PROTO_OID_INT8},
		{"pool_mode", PROTO_OID_TEXT},
	};

	result_columns(r, cols, ARRAY_SIZE(cols));
	for (const struct pool *p = pool_first(); p != NULL; p = p->next) {
		struct pool_counts c = count_servers(p);
		const struct client *first = TAILQ_FIRST(&p->waiting);
		struct row row;

		row_text(&row, 0, p->database);
		row_text(&row, 1, p->user);
		row_text(&row, 2, target_name(p->target));
		row_int(&row, 3, p->nclients - p->nwaiting);
		row_int(&row, 4, p->nwaiting);
		row_text(&row, 5, first != NULL ? hold_reason_name(stats_hold_reason(p)) : NULL);
		row_int(&row, 6, c.sv_active);
		row_int(&row, 7, c.sv_idle);
		row_int(&row, 8, c.sv_login);
		row_int(&row, 9, first != NULL ? now_ms() - first->wait_start_ms : 0);
		row_text(&row, 10, "session");
		result_row(r, &row);
	}
	result_end(r);
}

static void show_pools(struct client *cl)
{
	struct result r = {.out = conn_output(&cl->conn)};

	put_pools(&r);
}

void admin_put_backends_json(struct evbuffer *out)
{
	struct result r = {.out = out, .is_json = true};

	put_backends(&r);
}

void admin_put_pools_json(struct evbuffer *out)
{
	struct result r = {.out = out, .is_json = true};

	put_pools(&r);
}

/* SHOW CLIENTS and SHOW SERVERS share their columns; link is the other side's id. */
static const struct proto_column connection_cols[] = {
	{"id", PROTO_OID_INT8},
	{"user", PROTO_OID_TEXT},
	{"database", PROTO_OID_TEXT},
	{"target", PROTO_OID_TEXT},
	{"state", PROTO_OID_TEXT},
	{"addr", PROTO_OID_TEXT},
	{"port", PROTO_OID_INT4},
	{"backend", PROTO_OID_TEXT},
	{"connect_time", PROTO_OID_TIMESTAMPTZ},
	{"request_time", PROTO_OID_TIMESTAMPTZ},
	{"wait_ms", PROTO_OID_INT8},
	{"tls", PROTO_OID_BOOL},
	{"application_name", PROTO_OID_TEXT},
	{"link", PROTO_OID_INT8},
};

/* The start of the request in flight (now_us() based), as now_ms() time; 0 if none. */
static int64_t request_time_ms(const struct client *cl)
{
	if (cl->xact.pending_syncs == 0 || cl->query_start_us == 0)
		return 0;
	return now_ms() - (now_us() - cl->query_start_us) / 1000;
}

/* The columns both views take from the client. */
static void connection_row_common(struct row *row, const struct client *cl)
{
	/* Before its startup packet a client has no user or database yet. */
	row_text(row, 1, cl->params.user);
	row_text(row, 2, cl->params.database);
	row_text(row, 3, target_name(cl->target));
	row_time(row, 9, request_time_ms(cl));
	row_text(row, 12, startup_params_get(&cl->params, "application_name"));
}

static void show_clients(struct client *cl)
{
	struct result r;
	const struct client *c;

	result_begin(&r, cl, connection_cols, ARRAY_SIZE(connection_cols));
	TAILQ_FOREACH (c, client_all(), all_link) {
		struct row row;

		connection_row_common(&row, c);
		row_int(&row, 0, (int64_t)c->id);
		row_text(&row, 4, admin_client_state_name(c));
		row_text(&row, 5, c->addr);
		row_int(&row, 6, c->port);
		row_text(&row, 7, c->server != NULL ? c->server->backend_name : NULL);
		row_time(&row, 8, c->connect_time_ms);
		row_int(&row, 10, c->state == CL_WAITING ? now_ms() - c->wait_start_ms : 0);
		row_bool(&row, 11, tls_of(c->conn.bev) != NULL);
		if (c->server != NULL)
			row_int(&row, 13, (int64_t)c->server->id);
		else
			row_text(&row, 13, NULL);
		result_row(&r, &row);
	}
	result_end(&r);
}

/* A server row; c is its client, NULL for a pooled server. */
static void server_row(struct result *r, const struct server *sv, const struct client *c)
{
	struct row row;

	if (c != NULL) {
		connection_row_common(&row, c);
		row_int(&row, 13, (int64_t)c->id);
	} else {
		row_text(&row, 1, sv->pool->user);
		row_text(&row, 2, sv->pool->database);
		row_text(&row, 3, target_name(sv->pool->target));
		row_time(&row, 9, 0);
		row_text(&row, 12, startup_params_get(&sv->startup, "application_name"));
		row_text(&row, 13, NULL);
	}
	row_int(&row, 0, (int64_t)sv->id);
	row_text(&row, 4, admin_server_state_name(sv));
	row_text(&row, 5, sv->backend_host);
	row_int(&row, 6, sv->backend_port);
	row_text(&row, 7, sv->backend_name);
	row_time(&row, 8, sv->connect_time_ms);
	row_int(&row, 10, 0);
	row_bool(&row, 11, tls_of(sv->conn.bev) != NULL);
	result_row(r, &row);
}

/* The clients' servers, then the pooled ones. */
static void show_servers(struct client *cl)
{
	struct result r;
	const struct client *c;
	const struct server *sv;

	result_begin(&r, cl, connection_cols, ARRAY_SIZE(connection_cols));
	TAILQ_FOREACH (c, client_all(), all_link)
		if (c->server != NULL)
			server_row(&r, c->server, c);
	for (const struct pool *p = pool_first(); p != NULL; p = p->next)
		TAILQ_FOREACH (sv, &p->idle, idle_link)
			server_row(&r, sv, NULL);
	result_end(&r);
}

static void show_stats(struct client *cl)
{
	static const struct proto_column cols[] = {
		{"database", PROTO_OID_TEXT},
		{"target", PROTO_OID_TEXT},
		{"total_xact_count", PROTO_OID_INT8},
		{"total_query_count", PROTO_OID_INT8},
		{"total_received", PROTO_OID_INT8},
		{"total_sent", PROTO_OID_INT8},
		{"total_xact_time", PROTO_OID_INT8},
		{"total_query_time", PROTO_OID_INT8},
		{"total_wait_time", PROTO_OID_INT8},
		{"avg_xact_count", PROTO_OID_FLOAT8},
		{"avg_query_count", PROTO_OID_FLOAT8},
		{"avg_recv", PROTO_OID_FLOAT8},
		{"avg_sent", PROTO_OID_FLOAT8},
		{"avg_xact_time", PROTO_OID_INT8},
		{"avg_query_time", PROTO_OID_INT8},
		{"avg_wait_time", PROTO_OID_INT8},
		/* rw_split: where reads ran, and their waits for a replica to catch up. */
		{"replica_reads", PROTO_OID_INT8},
		{"primary_reads", PROTO_OID_INT8},
		{"replica_refusals", PROTO_OID_INT8},
		{"catch_up_count", PROTO_OID_INT8},
		{"catch_up_time", PROTO_OID_INT8},
		{"catch_up_fallbacks", PROTO_OID_INT8},
		/* Checks of a session's state before it gave its server back, and the pins they
		   found. */
		{"state_checks", PROTO_OID_INT8},
		{"state_check_time", PROTO_OID_INT8},
		{"state_check_pins", PROTO_OID_INT8},
	};
	struct result r;
	size_t n;
	struct stats_row *rows = stats_collect(&n);

	result_begin(&r, cl, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < n; i++) {
		const struct stats *t = &rows[i].total;
		const struct stats_rates *a = &rows[i].rates;
		struct row row;

		row_text(&row, 0, rows[i].database);
		row_text(&row, 1, target_name(rows[i].target));
		row_int(&row, 2, (int64_t)t->xact_count);
		row_int(&row, 3, (int64_t)t->query_count);
		row_int(&row, 4, (int64_t)t->bytes_in);
		row_int(&row, 5, (int64_t)t->bytes_out);
		row_int(&row, 6, (int64_t)t->xact_time_us);
		row_int(&row, 7, (int64_t)t->query_time_us);
		row_int(&row, 8, (int64_t)t->wait_time_us);
		row_float(&row, 9, a->xacts_per_s);
		row_float(&row, 10, a->queries_per_s);
		row_float(&row, 11, a->bytes_in_per_s);
		row_float(&row, 12, a->bytes_out_per_s);
		row_int(&row, 13, (int64_t)a->avg_xact_time_us);
		row_int(&row, 14, (int64_t)a->avg_query_time_us);
		row_int(&row, 15, (int64_t)a->avg_wait_time_us);
		row_int(&row, 16, (int64_t)t->replica_reads);
		row_int(&row, 17, (int64_t)t->primary_reads);
		row_int(&row, 18, (int64_t)t->replica_refusals);
		row_int(&row, 19, (int64_t)t->catch_up_count);
		row_int(&row, 20, (int64_t)t->catch_up_time_us);
		row_int(&row, 21, (int64_t)t->catch_up_fallbacks);
		row_int(&row, 22, (int64_t)t->state_checks);
		row_int(&row, 23, (int64_t)t->state_check_time_us);
		row_int(&row, 24, (int64_t)t->state_check_pins);
		result_row(&r, &row);
	}
	result_end(&r);
	free(rows);
}

/* Whether name occurs among the first n pools' values of field. */
static bool seen_before(const struct pool *upto, const char *name, bool is_user)
{
	for (const struct pool *p = pool_first(); p != upto; p = p->next)
		if (strcmp(is_user ? p->user : p->database, name) == 0)
			return true;
	return false;
}

static void show_lists(struct client *cl)
{
	static const struct proto_column cols[] = {
		{"list", PROTO_OID_TEXT},
		{"items", PROTO_OID_INT8},
	};
	struct {
		const char *name;
		int64_t items;
	} lists[] = {
		{"databases", 0},     {"users", 0},
		{"pools", 0},         {"clients", 0},
		{"login_clients", 0}, {"waiting_clients", 0},
		{"admin_clients", 0}, {"servers", 0},
		{"login_servers", 0}, {"backends", rt->topo->count},
	};
	const struct client *c;
	struct result r;

	for (const struct pool *p = pool_first(); p != NULL; p = p->next) {
		lists[0].items += !seen_before(p, p->database, false);
		lists[1].items += !seen_before(p, p->user, true);
		lists[2].items++;
		lists[7].items += p->nidle;
	}
	TAILQ_FOREACH (c, client_all(), all_link) {
		lists[3].items++;
		lists[4].items += c->state == CL_STARTUP || c->state == CL_AUTH;
		lists[5].items += c->state == CL_WAITING;
		lists[6].items += c->state == CL_ADMIN;
		if (c->server != NULL) {
			lists[7].items++;
			lists[8].items += c->server->state != SV_ACTIVE;
		}
	}
	result_begin(&r, cl, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		struct row row;

		row_text(&row, 0, lists[i].name);
		row_int(&row, 1, lists[i].items);
		result_row(&r, &row);
	}
	result_end(&r);
}

/* "all", the paused databases that have pools, or "no". */
static void describe_paused(char *buf, size_t buflen)
{
	struct pool all = {.database = ""}; /* paused only by a PAUSE of every database */
	size_t len = 0;

	snprintf(buf, buflen, "%s", pool_is_paused(&all) ? "all" : "no");
	if (pool_is_paused(&all))
		return;
	for (const struct pool *p = pool_first(); p != NULL && len < buflen; p = p->next)
		if (pool_is_paused(p) && !seen_before(p, p->database, false))
			len += (size_t)snprintf(buf + len, buflen - len, "%s%s", len > 0 ? "," : "",
						p->database);
}

static void show_state(struct client *cl)
{
	static const struct proto_column cols[] = {
		{"key", PROTO_OID_TEXT},
		{"value", PROTO_OID_TEXT},
	};
	const struct backend *primary = topology_primary(rt->topo);
	char clients[FIELD_LEN], paused[512];
	const struct {
		const char *key;
		const char *value;
	} items[] = {
		{"paused", paused},
		{"shutting_down", rt->is_shutting_down ? "yes" : "no"},
		{"primary", primary != NULL ? primary->name : NULL},
		{"primary_ambiguous", rt->topo->is_primary_ambiguous ? "yes" : "no"},
		/* Where the primary is meant to be: read-only ties go to replicas there. */
		{"primary_region",
		 rt->cfg->primary_region[0] != '\0' ? rt->cfg->primary_region : NULL},
		{"clients", clients},
		{"config_file", rt->cfg->path},
	};
	struct result r;

	describe_paused(paused, sizeof(paused));
	snprintf(clients, sizeof(clients), "%d", client_count());
	result_begin(&r, cl, cols, ARRAY_SIZE(cols));
	for (size_t i = 0; i < ARRAY_SIZE(items); i++) {
		struct row row;

		row_text(&row, 0, items[i].key);
		row_text(&row, 1, items[i].value);
		result_row(&r, &row);
	}
	result_end(&r);
}

static void run_show(struct client *cl, enum admin_show show)
{
	switch (show) {
	case ADMIN_SHOW_HELP:
		show_help(cl);
		break;
	case ADMIN_SHOW_VERSION:
		show_version(cl);
		break;
	case ADMIN_SHOW_CONFIG:
		show_config(cl);
		break;
	case ADMIN_SHOW_BACKENDS:
		show_backends(cl);
		break;
	case ADMIN_SHOW_POOLS:
		show_pools(cl);
		break;
	case ADMIN_SHOW_CLIENTS:
		show_clients(cl);
		break;
	case ADMIN_SHOW_SERVERS:
		show_servers(cl);
		break;
	case ADMIN_SHOW_STATS:
		show_stats(cl);
		break;
	case ADMIN_SHOW_LISTS:
		show_lists(cl);
		break;
	case ADMIN_SHOW_STATE:
		show_state(cl);
		break;
	}
}

/* An error to a console client: it ends the command, and the console goes on. */
static void admin_error(struct client *cl, const char *sqlstate, const char *fmt, ...)
	PRINTF_LIKE(3, 4);

static void admin_error(struct client *cl, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	proto_put_error_v(conn_output(&cl->conn), "ERROR", sqlstate, fmt, ap);
	va_end(ap);
}

/* PAUSE: completes once no client of the database is inside a transaction. */

static const char *db_or_null(const char *database)
{
	return database[0] != '\0' ? database : NULL;
}

static void pause_finish(struct admin_state *st, bool is_done)
{
	struct client *cl = st->cl;
	struct evbuffer *out = conn_output(&cl->conn);

	event_free(st->pause_timer);
	st->pause_timer = NULL;
	if (is_done) {
		log_info("console client %" PRIu64 ": PAUSE %s done", cl->id,
			 st->pause_database[0] != '\0' ? st->pause_database : "(all)");
		proto_put_command_complete(out, "PAUSE");
	} else {
		admin_error(cl, SQLSTATE_QUERY_CANCELED,
			    "PAUSE canceled: the database was resumed before it was paused");
	}
	proto_put_ready(out, PROTO_TX_IDLE);
	admin_drained(cl); /* what the client sent behind the PAUSE, in order */
}

/* The client is not read while it waits, so look at the socket to notice it leaving. */
static bool is_peer_gone(const struct client *cl)
{
	char byte;
	ssize_t n = recv(bufferevent_getfd(cl->conn.bev), &byte, 1, MSG_PEEK | MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void pause_poll_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct admin_state *st = arg;
	struct pool probe = {.database = st->pause_database};

	if (st->cl->state != CL_ADMIN)
		return; /* closing: admin_client_gone() ends the wait */
	if (is_peer_gone(st->cl)) {
		log_info("console client %" PRIu64
			 " left while its PAUSE waited; pools stay paused",
			 st->cl->id);
		client_close(st->cl); /* frees st */
		return;
	}
	if (!pool_is_paused(&probe))
		pause_finish(st, false);
	else if (pool_count_busy(db_or_null(st->pause_database)) == 0)
		pause_finish(st, true);
}

static void run_pause(struct client *cl, const char *database)
{
	struct admin_state *st = state_of(cl);
	int busy;

	pool_pause(db_or_null(database));
	link_release_idle(db_or_null(database));
	busy = pool_count_busy(db_or_null(database));

	log_info("console client %" PRIu64 ": PAUSE %s, %d client(s) in a transaction", cl->id,
		 database[0] != '\0' ? database : "(all)", busy);
	if (busy == 0) {
		proto_put_command_complete(conn_output(&cl->conn), "PAUSE");
		return;
	}
	snprintf(st->pause_database, sizeof(st->pause_database), "%s", database);
	st->pause_timer = CHECK_ALLOC(event_new(rt->base, -1, EV_PERSIST, pause_poll_cb, st));
	timer_add_ms(st->pause_timer, PAUSE_POLL_MS);
	conn_read_off(&cl->conn);
}

/* The other commands. */

static void run_reload(struct client *cl)
{
	struct evbuffer *out = conn_output(&cl->conn);
	const struct config *before = rt->cfg;

	log_info("console client %" PRIu64 ": RELOAD", cl->id);
	runtime_reload();
	/* A successful reload always swaps in a new config; a failed one keeps the old. */
	if (rt->cfg == before)
		admin_error(cl, SQLSTATE_OBJECT_NOT_IN_PREREQUISITE_STATE,
			    "reload failed, the running configuration stays (the log says why)");
	else
		proto_put_command_complete(out, "RELOAD");
}

static void run_set(struct client *cl, const char *name, const char *value)
{
	struct evbuffer *out = conn_output(&cl->conn);
	char err[512];

	/* No file settings (logfile among them): config_set refuses those. */
	if (!config_set(rt->cfg, name, value, err, sizeof(err))) {
		admin_error(cl, SQLSTATE_INVALID_PARAMETER_VALUE, "%s", err);
		return;
	}
	log_info("console client %" PRIu64 ": SET %s = '%s'", cl->id, name, value);
	/* As after a reload: probes pick up their settings, pools re-route and serve waiters. */
	log_set_format(rt->cfg->log_format);
	runtime_apply_backends();
	link_on_topology_change(NULL);
	proto_put_command_complete(out, "SET");
}

/* RECONNECT: servers are replaced at their next idle point, which for idle sessions is now. */
static void reconnect(const char *database)
{
	pool_reconnect(database);
	link_release_idle(database);
}

static void run_kill(struct client *cl, const char *database)
{
	struct client *c, *next;
	int killed = 0;

	/* Their servers go too, pooled ones included, rather than back to the pool. */
	reconnect(database[0] != '\0' ? database : NULL);
	for (c = TAILQ_FIRST(client_all()); c != NULL; c = next) {
		next = TAILQ_NEXT(c, all_link);
		if (c->pool == NULL ||
		    (database[0] != '\0' && strcmp(c->pool->database, database) != 0))
			continue;
		client_fail(c, SQLSTATE_ADMIN_SHUTDOWN,
			    "terminating connection due to administrator command");
		killed++;
	}
	log_info("console client %" PRIu64 ": KILL %s closed %d client(s)", cl->id,
		 database[0] != '\0' ? database : "(all)", killed);
	proto_put_command_complete(conn_output(&cl->conn), "KILL");
}

static void run_kill_client(struct client *cl, uint64_t id)
{
	struct evbuffer *out = conn_output(&cl->conn);
	struct client *victim = client_find(id);

	if (victim == NULL || victim->state == CL_CLOSING) {
		admin_error(cl, SQLSTATE_UNDEFINED_OBJECT, "no client with id %" PRIu64, id);
		return;
	}
	if (victim == cl) {
		admin_error(cl, SQLSTATE_INVALID_PARAMETER_VALUE,
			    "KILL_CLIENT of your own connection: disconnect instead");
		return;
	}
	log_info("console client %" PRIu64 ": KILL_CLIENT %" PRIu64, cl->id, id);
	client_fail(victim, SQLSTATE_ADMIN_SHUTDOWN,
		    "terminating connection due to administrator command");
	proto_put_command_complete(out, "KILL_CLIENT");
}

/*
 * The answer goes out before the shutdown starts: a fast one closes this
 * client too, with its own goodbye after it.
 */
static void run_shutdown(struct client *cl, bool wait_for_clients)
{
	struct evbuffer *out = conn_output(&cl->conn);

	log_info("console client %" PRIu64 ": SHUTDOWN%s", cl->id,
		 wait_for_clients ? " WAIT_FOR_CLIENTS" : "");
	proto_put_command_complete(out, "SHUTDOWN");
	proto_put_ready(out, PROTO_TX_IDLE);
	runtime_shutdown(wait_for_clients);
}

/* One simple Query. Every path ends with ReadyForQuery, except a PAUSE that waits. */
static void admin_run(struct client *cl, const char *query)
{
	struct evbuffer *out = conn_output(&cl->conn);
	struct admin_command cmd;
	char err[1024];

	if (!admin_parse(query, &cmd, err, sizeof(err))) {
		admin_error(cl, SQLSTATE_SYNTAX_ERROR, "%s", err);
		proto_put_ready(out, PROTO_TX_IDLE);
		return;
	}
	if (cmd.verb != ADMIN_SHOW && cmd.verb != ADMIN_EMPTY &&
	    cl->admin_role != ADMIN_ROLE_ADMIN) {
		admin_error(cl, SQLSTATE_INSUFFICIENT_PRIVILEGE,
			    "user \"%s\" may only run SHOW commands (stats_users)",
			    cl->params.user);
		proto_put_ready(out, PROTO_TX_IDLE);
		return;
	}
	switch (cmd.verb) {
	case ADMIN_EMPTY:
		/* EmptyQueryResponse, as Postgres answers a query of only blanks. */
		proto_put_empty_query(out);
		break;
	case ADMIN_SHOW:
		run_show(cl, cmd.show);
		break;
	case ADMIN_PAUSE:
		run_pause(cl, cmd.database);
		if (state_of(cl)->pause_timer != NULL)
			return; /* ReadyForQuery once it completes */
		break;
	case ADMIN_RESUME:
		pool_resume(db_or_null(cmd.database));
		log_info("console client %" PRIu64 ": RESUME %s", cl->id,
			 cmd.database[0] != '\0' ? cmd.database : "(all)");
		proto_put_command_complete(out, "RESUME");
		break;
	case ADMIN_RECONNECT:
		reconnect(db_or_null(cmd.database));
		log_info("console client %" PRIu64 ": RECONNECT %s", cl->id,
			 cmd.database[0] != '\0' ? cmd.database : "(all)");
		proto_put_command_complete(out, "RECONNECT");
		break;
	case ADMIN_RELOAD:
		run_reload(cl);
		break;
	case ADMIN_SET:
		run_set(cl, cmd.name, cmd.value);
		break;
	case ADMIN_KILL:
		run_kill(cl, cmd.database);
		break;
	case ADMIN_KILL_CLIENT:
		run_kill_client(cl, cmd.client_id);
		break;
	case ADMIN_SHUTDOWN:
		run_shutdown(cl, cmd.wait_for_clients);
		return; /* answered before the shutdown began */
	}
	if (cl->state == CL_ADMIN)
		proto_put_ready(out, PROTO_TX_IDLE);
}

void admin_handle_message(struct client *cl, char type, const uint8_t *body, size_t len)
{
	struct evbuffer *out = conn_output(&cl->conn);
	struct admin_state *st = state_of(cl);
	const uint8_t *nul;

	switch (type) {
	case PqMsg_Query:
		nul = memchr(body, '\0', len);
		if (nul == NULL) {
			client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION, "unterminated query string");
			return;
		}
		admin_run(cl, (const char *)body);
		return;
	case PqMsg_Sync:
		/* The end of an extended-protocol batch: one ReadyForQuery for it. */
		st->is_skipping_to_sync = false;
		proto_put_ready(out, PROTO_TX_IDLE);
		return;
	case PqMsg_Parse:
	case PqMsg_Bind:
	case PqMsg_Describe:
	case PqMsg_Execute:
	case PqMsg_Close:
	case PqMsg_Flush:
		/* Like Postgres after an error: one ErrorResponse, then skip to Sync. */
		if (!st->is_skipping_to_sync)
			admin_error(cl, SQLSTATE_FEATURE_NOT_SUPPORTED,
				    "the pgwing console speaks only the simple query protocol");
		st->is_skipping_to_sync = true;
		return;
	default:
		client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION,
			    "unexpected message type \"%c\" on the console", type);
		return;
	}
}
