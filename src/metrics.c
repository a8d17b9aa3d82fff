/*
 * The HTTP side: Prometheus metrics in the text exposition format, generated
 * at each scrape from the same counters the console shows, so the two always
 * agree; and the endpoints an orchestrator probes (/livez, /readyz, /status).
 */
#include "pgwing/metrics.h"

#include "pgwing/admin.h"
#include "pgwing/client.h"
#include "pgwing/listener.h"
#include "pgwing/log.h"
#include "pgwing/pool.h"
#include "pgwing/router.h"
#include "pgwing/server.h"
#include "pgwing/stats.h"
#include "pgwing/topology.h"
#include "pgwing/runtime.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The process state, given by the runtime at start (metrics_init): read, never written. */
static const struct runtime *rt;

void metrics_init(const struct runtime *runtime)
{
	rt = runtime;
}

static struct evhttp *http;
/* evhttp's listener: paused at metrics_max_conn and after an accept error. */
static struct evconnlistener *http_listener;
static struct evhttp_bound_socket *http_bound;
/* A listening socket handed over by the process before us (takeover), for metrics_start. */
static int adopted_fd = -1;
/* Accepting again LISTENER_RETRY_MS after an accept error (out of fds). */
static struct event *retry_timer;
/* Connections open, from their accept to their close. */
static int nconns;
/*
 * Connections accepted in this round of the loop, each with a reference on
 * its bufferevent: evhttp makes the connection only after making the
 * bufferevent, so adopt_event gives it its close callback a moment later.
 */
static struct bufferevent **unadopted;
static size_t nunadopted;
static struct event *adopt_event;

/* The states metrics report, in the order of their enums. */
static const enum client_state client_states[] = {
	CL_STARTUP, CL_AUTH, CL_IDLE, CL_WAITING, CL_LOGIN, CL_ACTIVE, CL_ADMIN, CL_CLOSING,
};
static const enum server_state server_states[] = {
	SV_CONNECTING, SV_LOGIN, SV_RESTORE, SV_ACTIVE, SV_RESET, SV_IDLE, SV_CLOSING,
};

/* A label value: backslash, double quote and newline are escaped. */
static void put_label(struct evbuffer *out, const char *value)
{
	for (const char *c = value; *c != '\0'; c++) {
		if (*c == '\\' || *c == '"')
			evbuffer_add_printf(out, "\\%c", *c);
		else if (*c == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, c, 1);
	}
}

static void put_header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * The samples of one histogram: labels are rendered already ("" for none),
 * the buckets are made cumulative here, and their total is the count.
 */
static void put_histogram(struct evbuffer *out, const char *name, const char *labels,
			  const struct stats_histogram *h, uint64_t sum_us)
{
	const char *sep = labels[0] != '\0' ? "," : "";
	uint64_t cumulative = 0;

	for (size_t i = 0; i < STATS_BUCKETS; i++) {
		cumulative += h->buckets[i];
		evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels,
				    sep, (double)stats_bucket_bounds_us[i] / 1e6, cumulative);
	}
	cumulative += h->buckets[STATS_BUCKETS];
	evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep,
			    cumulative);
	if (labels[0] != '\0') {
		evbuffer_add_printf(out, "%s_sum{%s} %.6f\n", name, labels, (double)sum_us / 1e6);
		evbuffer_add_printf(out, "%s_count{%s} %" PRIu64 "\n", name, labels, cumulative);
	} else {
		evbuffer_add_printf(out, "%s_sum %.6f\n", name, (double)sum_us / 1e6);
		evbuffer_add_printf(out, "%s_count %" PRIu64 "\n", name, cumulative);
	}
}

/* name="value" (value escaped), then more as it is, in buf (emptied first), as a string. */
static const char *format_labels(struct evbuffer *buf, const char *name, const char *value,
				 const char *more)
{
	evbuffer_drain(buf, evbuffer_get_length(buf));
	evbuffer_add_printf(buf, "%s=\"", name);
	put_label(buf, value);
	evbuffer_add_printf(buf, "\"%s", more);
	evbuffer_add(buf, "", 1);
	return (const char *)evbuffer_pullup(buf, -1);
}

static void put_clients(struct evbuffer *out)
{
	uint64_t counts[ARRAY_SIZE(client_states)] = {0};
	const struct client *cl;

	TAILQ_FOREACH (cl, client_all(), all_link)
		counts[cl->state]++;
	put_header(out, "pgwing_clients", "gauge", "Client connections by state.");
	for (size_t i = 0; i < ARRAY_SIZE(client_states); i++) {
		struct client probe = {.state = client_states[i]};

		evbuffer_add_printf(out, "pgwing_clients{state=\"%s\"} %" PRIu64 "\n",
				    admin_client_state_name(&probe), counts[i]);
	}
}

/* Servers by backend (as the topology lists them) and state: clients' and pooled ones. */
static void put_servers(struct evbuffer *out)
{
	put_header(out, "pgwing_servers", "gauge", "Server connections by backend and state.");
	for (int b = 0; b < rt->topo->count; b++) {
		const struct backend *be = rt->topo->backends[b];
		uint64_t counts[SV_CLOSING + 1] = {0}; /* by state */
		const struct client *cl;
		const struct server *sv;

		TAILQ_FOREACH (cl, client_all(), all_link)
			if (cl->server != NULL && cl->server->backend == be)
				counts[cl->server->state]++;
		for (const struct pool *p = pool_first(); p != NULL; p = p->next)
			TAILQ_FOREACH (sv, &p->idle, idle_link)
				if (sv->backend == be)
					counts[sv->state]++;
		for (size_t i = 0; i < ARRAY_SIZE(server_states); i++) {
			struct server probe = {.state = server_states[i]};

			evbuffer_add(out, "pgwing_servers{backend=\"", 24);
			put_label(out, be->name);
			evbuffer_add_printf(out, "\",state=\"%s\"} %" PRIu64 "\n",
					    admin_server_state_name(&probe),
					    counts[server_states[i]]);
		}
	}
}

/* Each successful probe's round trip, unsmoothed, per backend. */
static void put_probe_rtts(struct evbuffer *out)
{
	struct evbuffer *labels = CHECK_ALLOC(evbuffer_new());

	put_header(out, "pgwing_probe_rtt_seconds", "histogram",
		   "Round-trip time of each successful health probe query.");
	for (int i = 0; i < rt->topo->count && labels != NULL; i++) {
		const struct backend *b = rt->topo->backends[i];

		put_histogram(out, "pgwing_probe_rtt_seconds",
			      format_labels(labels, "backend", b->name, ""), &b->rtt_hist,
			      b->rtt_sum_us);
	}
	if (labels != NULL)
		evbuffer_free(labels);
}

static void put_backends(struct evbuffer *out)
{
	put_header(out, "pgwing_backend_up", "gauge",
		   "1 when the latest probes found the backend up (and not fenced).");
	for (int i = 0; i < rt->topo->count; i++) {
		const struct backend *b = rt->topo->backends[i];

		evbuffer_add(out, "pgwing_backend_up{backend=\"", 27);
		put_label(out, b->name);
		evbuffer_add(out, "\",region=\"", 10);
		put_label(out, b->region);
		evbuffer_add_printf(out, "\",role=\"%s\"} %d\n",
				    b->is_fenced ? "fenced" : backend_role_name(b->role),
				    b->state == BACKEND_UP && !b->is_fenced);
	}
	put_header(out, "pgwing_backend_state", "gauge",
		   "1 for the state the backend is in (as SHOW BACKENDS says), 0 for the others.");
	for (int i = 0; i < rt->topo->count; i++) {
		const struct backend *b = rt->topo->backends[i];

		for (int st = BACKEND_UNKNOWN; st <= BACKEND_WAKING; st++) {
			evbuffer_add(out, "pgwing_backend_state{backend=\"", 30);
			put_label(out, b->name);
			evbuffer_add_printf(out, "\",state=\"%s\"} %d\n",
					    backend_state_name((enum backend_state)st),
					    b->state == (enum backend_state)st);
		}
	}
	put_header(out, "pgwing_backend_lag_bytes", "gauge",
		   "How far a replica's replay is behind the primary, in bytes of WAL.");
	for (int i = 0; i < rt->topo->count; i++) {
		const struct backend *b = rt->topo->backends[i];

		if (b->lag_bytes < 0)
			continue;
		evbuffer_add(out, "pgwing_backend_lag_bytes{backend=\"", 34);
		put_label(out, b->name);
		evbuffer_add_printf(out, "\"} %" PRId64 "\n", b->lag_bytes);
	}
	put_header(out, "pgwing_backend_rtt_seconds", "gauge",
		   "Smoothed round-trip time of the health probe query.");
	for (int i = 0; i < rt->topo->count; i++) {
		const struct backend *b = rt->topo->backends[i];

		if (b->rtt_ms < 0)
			continue;
		evbuffer_add(out, "pgwing_backend_rtt_seconds{backend=\"", 36);
		put_label(out, b->name);
		evbuffer_add_printf(out, "\"} %.6f\n", b->rtt_ms / 1000);
	}
	put_probe_rtts(out);
}

/* name{database="...",target="..."[,direction="..."]} value */
static void put_pool_sample(struct evbuffer *out, const char *name, const struct stats_row *row,
			    const char *direction, uint64_t value)
{
	evbuffer_add_printf(out, "%s{database=\"", name);
	put_label(out, row->database);
	evbuffer_add_printf(out, "\",target=\"%s\"", target_name(row->target));
	if (direction != NULL)
		evbuffer_add_printf(out, ",direction=\"%s\"", direction);
	evbuffer_add_printf(out, "} %" PRIu64 "\n", value);
}

/*
 * One histogram per database and target, from the struct stats fields at
 * hist_at (a struct stats_histogram) and sum_at (its sum in microseconds).
 */
static void put_pool_histograms(struct evbuffer *out, const char *name, const char *help,
				const struct stats_row *rows, size_t n, size_t hist_at,
				size_t sum_at)
{
	struct evbuffer *labels = CHECK_ALLOC(evbuffer_new());

	put_header(out, name, "histogram", help);
	for (size_t i = 0; i < n && labels != NULL; i++) {
		const char *total = (const char *)&rows[i].total;
		char target[32];
		uint64_t sum_us;

		memcpy(&sum_us, total + sum_at, sizeof(sum_us));
		snprintf(target, sizeof(target), ",target=\"%s\"", target_name(rows[i].target));
		put_histogram(
			out, name, format_labels(labels, "database", rows[i].database, target),
			(const struct stats_histogram *)(const void *)(total + hist_at), sum_us);
	}
	if (labels != NULL)
		evbuffer_free(labels);
}

/* One counter per database and target from a struct stats field (at offset at). */
static void put_pool_counter(struct evbuffer *out, const char *name, const char *help,
			     const struct stats_row *rows, size_t n, size_t at)
{
	put_header(out, name, "counter", help);
	for (size_t i = 0; i < n; i++)
		put_pool_sample(
			out, name, &rows[i], NULL,
			*(const uint64_t *)(const void *)((const char *)&rows[i].total + at));
}

/* rw_split's counters (SHOW STATS' last columns). */
static void put_split(struct evbuffer *out, const struct stats_row *rows, size_t n)
{
	put_pool_counter(out, "pgwing_replica_reads_total",
			 "rw_split: reads of the read-write port served by a replica.", rows, n,
			 offsetof(struct stats, replica_reads));
	put_pool_counter(out, "pgwing_primary_reads_total",
			 "rw_split: reads the primary served (no replica caught up or usable).",
			 rows, n, offsetof(struct stats, primary_reads));
	put_pool_counter(out, "pgwing_replica_refusals_total",
			 "rw_split: reads a replica refused as writes (25006), run again on the "
			 "primary.",
			 rows, n, offsetof(struct stats, replica_refusals));
	put_pool_counter(
		out, "pgwing_catch_up_waits_total",
		"rw_split: reads that waited for a replica to replay the session's writes.", rows,
		n, offsetof(struct stats, catch_up_count));
	put_pool_counter(out, "pgwing_catch_up_wait_microseconds_total",
			 "rw_split: time reads waited for a replica to catch up.", rows, n,
			 offsetof(struct stats, catch_up_time_us));
	put_pool_counter(out, "pgwing_catch_up_fallbacks_total",
			 "rw_split: reads that waited read_your_writes_timeout, then ran on the "
			 "primary.",
			 rows, n, offsetof(struct stats, catch_up_fallbacks));
}

/* The checks of sessions' state before they gave their servers back (capture.h). */
static void put_state_checks(struct evbuffer *out, const struct stats_row *rows, size_t n)
{
	put_pool_counter(out, "pgwing_state_checks_total",
			 "Checks of what a session holds on its server before it gave it back.",
			 rows, n, offsetof(struct stats, state_checks));
	put_pool_counter(out, "pgwing_state_check_microseconds_total",
			 "Time those checks took, answer included.", rows, n,
			 offsetof(struct stats, state_check_time_us));
	put_pool_counter(out, "pgwing_state_check_pins_total",
			 "Checks that found what keeps the session on its server.", rows, n,
			 offsetof(struct stats, state_check_pins));
}

/* Per database and target, from the same sums as SHOW STATS. */
static void put_traffic(struct evbuffer *out)
{
	size_t n;
	struct stats_row *rows = stats_collect(&n);

	put_pool_histograms(out, "pgwing_query_duration_seconds",
			    "Requests (up to their ReadyForQuery) by how long the server took.",
			    rows, n, offsetof(struct stats, query_hist),
			    offsetof(struct stats, query_time_us));
	put_pool_histograms(out, "pgwing_transaction_duration_seconds",
			    "Transactions by how long they lasted, from their first request.", rows,
			    n, offsetof(struct stats, xact_hist),
			    offsetof(struct stats, xact_time_us));
	put_pool_histograms(out, "pgwing_wait_seconds", "How long clients waited for a server.",
			    rows, n, offsetof(struct stats, wait_hist),
			    offsetof(struct stats, wait_time_us));

	put_header(out, "pgwing_queries_total", "counter", "Requests answered by servers.");
	for (size_t i = 0; i < n; i++)
		put_pool_sample(out, "pgwing_queries_total", &rows[i], NULL,
				rows[i].total.query_count);
	put_header(out, "pgwing_transactions_total", "counter", "Transactions completed.");
	for (size_t i = 0; i < n; i++)
		put_pool_sample(out, "pgwing_transactions_total", &rows[i], NULL,
				rows[i].total.xact_count);
	put_header(out, "pgwing_bytes_total", "counter",
		   "Bytes forwarded: in from clients to servers, out from servers to clients.");
	for (size_t i = 0; i < n; i++) {
		put_pool_sample(out, "pgwing_bytes_total", &rows[i], "in", rows[i].total.bytes_in);
		put_pool_sample(out, "pgwing_bytes_total", &rows[i], "out",
				rows[i].total.bytes_out);
	}
	put_split(out, rows, n);
	put_state_checks(out, rows, n);
	free(rows);
}

static void put_events(struct evbuffer *out)
{
	const struct stats_events *ev = &stats_events;

	put_header(out, "pgwing_failovers_total", "counter", "Changes of the primary.");
	evbuffer_add_printf(out, "pgwing_failovers_total %" PRIu64 "\n", ev->failovers);
	put_header(out, "pgwing_wakes_total", "counter", "Backend wake-ups by result.");
	evbuffer_add_printf(out, "pgwing_wakes_total{result=\"ok\"} %" PRIu64 "\n", ev->wakes_ok);
	evbuffer_add_printf(out, "pgwing_wakes_total{result=\"failed\"} %" PRIu64 "\n",
			    ev->wakes_failed);
	put_header(out, "pgwing_holds_total", "counter",
		   "Clients that had to wait for a server, by reason.");
	for (int r = 0; r < HOLD_REASON_COUNT; r++)
		evbuffer_add_printf(out, "pgwing_holds_total{reason=\"%s\"} %" PRIu64 "\n",
				    hold_reason_name((enum hold_reason)r), ev->holds[r]);
	put_header(out, "pgwing_hold_seconds", "histogram",
		   "Holds of a pool (from the first client queued to the queue emptying), by "
		   "the reason they started with.");
	for (int r = 0; r < HOLD_REASON_COUNT; r++) {
		char labels[64];

		snprintf(labels, sizeof(labels), "reason=\"%s\"",
			 hold_reason_name((enum hold_reason)r));
		put_histogram(out, "pgwing_hold_seconds", labels, &ev->hold_hist[r],
			      ev->hold_time_us[r]);
	}
	put_header(out, "pgwing_wake_duration_seconds", "histogram",
		   "Successful wakes, from the wake to the backend answering.");
	put_histogram(out, "pgwing_wake_duration_seconds", "", &ev->wake_hist, ev->wake_time_us);
}

void metrics_render(struct evbuffer *out)
{
	put_clients(out);
	put_servers(out);
	put_backends(out);
	put_traffic(out);
	put_events(out);
}

static void metrics_cb(struct evhttp_request *req, void *arg UNUSED)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL) {
		evhttp_send_error(req, 503, "Out of memory");
		return;
	}
	metrics_render(body);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
}

void metrics_put_json_string(struct evbuffer *out, const char *text)
{
	evbuffer_add(out, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			evbuffer_add_printf(out, "\\%c", *c);
		else if (*c < 0x20)
			evbuffer_add_printf(out, "\\u%04x", *c);
		else
			evbuffer_add(out, c, 1);
	}
	evbuffer_add(out, "\"", 1);
}

/*
 * Whether the rw port can be served: now, or after a hold expected to end (a
 * wake, or a failover younger than hold_timeout). reason says why, for a human.
 * A suspect primary is up: the wait for its verdict is short.
 */
static bool is_ready(char *reason, size_t len)
{
	const struct backend *b = topology_primary(rt->topo);

	if (rt->is_shutting_down) {
		snprintf(reason, len, "draining: pgwing is shutting down");
		return false;
	}
	if (b != NULL) {
		snprintf(reason, len, "ready: primary %s is up", b->name);
		return true;
	}
	b = router_pick_wakeable(rt->topo, rt->cfg, TARGET_RW);
	if (b != NULL) {
		snprintf(reason, len, "ready: primary %s is %s; clients wait for it to wake",
			 b->name, backend_state_name(b->state));
		return true;
	}
	if (rt->topo->is_primary_ambiguous) {
		snprintf(reason, len, "not ready: two primaries on one timeline; writes refused");
		return false;
	}
	for (int i = 0; i < rt->topo->count; i++) {
		int64_t down_ms = now_ms() - rt->topo->backends[i]->last_change_ms;

		b = rt->topo->backends[i];
		if (b->role != ROLE_PRIMARY || b->is_fenced || b->state != BACKEND_DOWN)
			continue;
		if (down_ms < rt->cfg->hold_timeout_ms) {
			snprintf(reason, len,
				 "ready: holding clients: primary %s down for %" PRId64
				 " ms, waiting up to hold_timeout for a primary",
				 b->name, down_ms);
			return true;
		}
		snprintf(reason, len, "not ready: no primary: %s down for %" PRId64 " ms", b->name,
			 down_ms);
		return false;
	}
	snprintf(reason, len, "not ready: no primary among %d backends", rt->topo->count);
	return false;
}

static void reply_text(struct evhttp_request *req, int code, const char *text)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL) {
		evhttp_send_error(req, 503, "Out of memory");
		return;
	}
	evbuffer_add_printf(body, "%s\n", text);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; charset=utf-8");
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Service Unavailable", body);
	evbuffer_free(body);
}

/* Answered by the loop itself: if this comes back, the loop turns. */
static void livez_cb(struct evhttp_request *req, void *arg UNUSED)
{
	reply_text(req, 200, "ok");
}

static void readyz_cb(struct evhttp_request *req, void *arg UNUSED)
{
	char reason[512];
	bool is_ok = is_ready(reason, sizeof(reason));

	reply_text(req, is_ok ? 200 : 503, reason);
}

/* Readiness, then the rows of SHOW BACKENDS and SHOW POOLS (hold reasons included). */
static void status_cb(struct evhttp_request *req, void *arg UNUSED)
{
	struct evbuffer *body = evbuffer_new();
	char reason[512];
	bool is_ok = is_ready(reason, sizeof(reason));

	if (body == NULL) {
		evhttp_send_error(req, 503, "Out of memory");
		return;
	}
	evbuffer_add_printf(body,
			    "{\"ready\":%s,\"draining\":%s,\"reason\":", is_ok ? "true" : "false",
			    rt->is_shutting_down ? "true" : "false");
	metrics_put_json_string(body, reason);
	evbuffer_add_printf(body, ",\"clients\":%d,\"backends\":", client_count());
	admin_put_backends_json(body);
	evbuffer_add(body, ",\"pools\":", 9);
	admin_put_pools_json(body);
	evbuffer_add(body, "}\n", 2);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
}

static void not_found_cb(struct evhttp_request *req, void *arg UNUSED)
{
	evhttp_send_error(req, 404, "Not Found: try /metrics, /livez, /readyz or /status");
}

/* Accept while under metrics_max_conn and not backing off from an accept error. */
static void update_accepting(void)
{
	if (http_listener == NULL)
		return;
	if (nconns < rt->cfg->metrics_max_conn && !evtimer_pending(retry_timer, NULL))
		evconnlistener_enable(http_listener);
	else
		evconnlistener_disable(http_listener);
}

static void conn_closed_cb(struct evhttp_connection *evcon UNUSED, void *arg UNUSED)
{
	nconns--;
	update_accepting();
}

/*
 * Silent, oversized or too many scrapers must not take pgwing's fds, memory
 * or loop. evhttp copies these into a connection after asking for its
 * bufferevent, so setting them there applies a reload to new connections.
 */
static void apply_limits(void)
{
	struct timeval timeout = {
		.tv_sec = rt->cfg->metrics_timeout_ms / 1000,
		.tv_usec = (rt->cfg->metrics_timeout_ms % 1000) * 1000,
	};

	evhttp_set_timeout_tv(http, &timeout);
	/* The request line counts too: one that never ends is refused at this size. */
	evhttp_set_max_headers_size(http, rt->cfg->metrics_max_request_size);
	evhttp_set_max_body_size(http, rt->cfg->metrics_max_request_size);
}

/*
 * evhttp asks for a connection's bufferevent at accept: counting it here
 * stops the listener's accept loop as soon as the cap is reached. The
 * bufferevent closes its fd when freed (evhttp's own would leave that to
 * evhttp), so while adopt_cb holds its reference the fd stays open and its
 * number cannot be reused under the bufferevent's events.
 */
static struct bufferevent *conn_new_cb(struct event_base *base, void *arg UNUSED)
{
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);

	apply_limits();
	if (bev == NULL)
		return NULL;
	bufferevent_incref(bev);
	unadopted = xrealloc(unadopted, (nunadopted + 1) * sizeof(*unadopted));
	unadopted[nunadopted++] = bev;
	event_active(adopt_event, EV_TIMEOUT, 0);
	nconns++;
	update_accepting();
	return bev;
}

/*
 * The connections are made now: each gets the callback that counts its close.
 * evhttp clears a bufferevent's callbacks when it closes the connection, and
 * their argument is the connection otherwise.
 */
static void adopt_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	for (size_t i = 0; i < nunadopted; i++) {
		void *evcon;

		bufferevent_getcb(unadopted[i], NULL, NULL, NULL, &evcon);
		if (evcon != NULL)
			evhttp_connection_set_closecb(evcon, conn_closed_cb, NULL);
		else
			conn_closed_cb(NULL, NULL);
		bufferevent_decref(unadopted[i]);
	}
	nunadopted = 0;
}

/* Out of fds: the pending connection keeps the socket readable, so pause instead of spinning. */
static void accept_error_cb(struct evconnlistener *lev UNUSED, void *arg UNUSED)
{
	if (!listener_note_accept_error())
		return;
	timer_add_ms(retry_timer, LISTENER_RETRY_MS);
	update_accepting();
}

static void retry_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	update_accepting();
}

/* "host:port" or "[v6]:port" into host (brackets dropped) and port. */
static bool split_listen(const char *text, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon = strrchr(text, ':');
	const char *start = text, *end = colon;
	char *stop;
	long value;

	if (colon == NULL || colon == text)
		return false;
	if (text[0] == '[') {
		if (colon[-1] != ']')
			return false;
		start++;
		end--;
	}
	if ((size_t)(end - start) >= hostlen)
		return false;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	value = strtol(colon + 1, &stop, 10);
	if (colon[1] == '\0' || *stop != '\0' || value < 1 || value > 65535)
		return false;
	*port = (uint16_t)value;
	return true;
}

int metrics_start(struct event_base *base, const struct config *cfg)
{
	struct evhttp_bound_socket *bound;
	char host[256];
	uint16_t port;

	if (cfg->metrics_listen[0] == '\0') {
		if (adopted_fd >= 0)
			close(adopted_fd);
		adopted_fd = -1;
		return 0;
	}
	if (!split_listen(cfg->metrics_listen, host, sizeof(host), &port)) {
		log_error("metrics_listen: expected host:port, got \"%s\"", cfg->metrics_listen);
		return -1;
	}
	http = evhttp_new(base);
	if (http == NULL) {
		log_error("could not create the metrics HTTP server");
		return -1;
	}
	/* Anything else gets 405 from evhttp itself. */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_cb(http, "/metrics", metrics_cb, NULL);
	evhttp_set_cb(http, "/livez", livez_cb, NULL);
	evhttp_set_cb(http, "/readyz", readyz_cb, NULL);
	evhttp_set_cb(http, "/status", status_cb, NULL);
	evhttp_set_gencb(http, not_found_cb, NULL);
	retry_timer = evtimer_new(base, retry_cb, NULL);
	adopt_event = event_new(base, -1, 0, adopt_cb, NULL);
	evhttp_set_bevcb(http, conn_new_cb, NULL);
	if (retry_timer == NULL || adopt_event == NULL)
		bound = NULL;
	else if (adopted_fd >= 0)
		bound = evhttp_accept_socket_with_handle(http, adopted_fd);
	else
		bound = evhttp_bind_socket_with_handle(http, host, port);
	adopted_fd = -1;
	if (bound == NULL) {
		log_error("could not listen for metrics on %s", cfg->metrics_listen);
		metrics_stop();
		return -1;
	}
	http_bound = bound;
	http_listener = evhttp_bound_socket_get_listener(bound);
	evconnlistener_set_error_cb(http_listener, accept_error_cb);
	log_info("metrics on http://%s/metrics", cfg->metrics_listen);
	return 0;
}

void metrics_stop(void)
{
	/* evhttp_free() frees the listener, then closes the connections. */
	http_listener = NULL;
	http_bound = NULL;
	if (http != NULL)
		evhttp_free(http);
	http = NULL;
	adopt_cb(-1, 0, NULL);
	free(unadopted);
	unadopted = NULL;
	nconns = 0;
	if (retry_timer != NULL)
		event_free(retry_timer);
	retry_timer = NULL;
	if (adopt_event != NULL)
		event_free(adopt_event);
	adopt_event = NULL;
}

int metrics_socket(void)
{
	return http_listener != NULL ? evconnlistener_get_fd(http_listener) : -1;
}

void metrics_adopt_socket(int fd)
{
	adopted_fd = fd;
}

void metrics_release_socket(void)
{
	if (http_bound == NULL)
		return;
	evhttp_del_accept_socket(http, http_bound);
	http_bound = NULL;
	http_listener = NULL;
}
