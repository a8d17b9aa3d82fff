/*
 * The link between clients and servers (link.h). The data path is a pump:
 * whatever one side has buffered is framed (only the 5-byte headers and the
 * few messages below are looked into) and moved on as evbuffer chains,
 * never copying a body, with backpressure between the two.
 */
#include "pgwing/link.h"

#include "pgwing/capture.h"
#include "pgwing/client.h"
#include "pgwing/health.h"
#include "pgwing/log.h"
#include "pgwing/lsn.h"
#include "pgwing/pool.h"
#include "pgwing/router.h"
#include "pgwing/runtime.h"
#include "pgwing/server.h"
#include "pgwing/session.h"
#include "pgwing/split.h"
#include "pgwing/wake.h"
#include "pgwing/xact.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The process state, given by the runtime at start (link_init): read, never written. */
static const struct runtime *rt;

/*
 * Queries up to this size are classified (retry safety, session state); larger
 * ones pass unexamined, which only means they are never retried or replayed.
 */
#define CLASSIFY_MAX_SQL (64 * 1024)

/* Errors longer than this are rare and still count as errors; only their SQLSTATE goes unread. */
#define ERROR_PEEK_MAX 4096

/*
 * The answer to a query that may be retried (xact_can_retry) is held back
 * until its ReadyForQuery is buffered too (or it outgrows this): if the server
 * dies mid-answer, the client has seen nothing and a read runs again
 * elsewhere. Small answers arrive in one read, so holding them costs no time.
 */
#define RETRY_HOLD_MAX (64 * 1024)

/*
 * rw_split: how often a read waiting for a replica to replay the session's
 * writes looks again. Each look asks for a probe (one at a time per backend,
 * shared by every waiting session), which takes about a round trip.
 */
#define CATCH_UP_POLL_MS 2

/* What pgwing asks the primary after a session's write commits: a WAL position at or past it. */
static const char COMMIT_LSN_QUERY[] = "SELECT pg_catalog.pg_current_wal_insert_lsn()";

/*
 * Where, in the server's input as scanned, the ReadyForQuery that ended a
 * write stands: the scan stopped there, maybe with an answer held before it
 * (a query that looked retryable), which must go first. Set by the inspector,
 * read by the pump right after its scan.
 */
static size_t commit_ready_at;

static const struct server_ops link_server_ops;

/*
 * A server that served this many provably read-only requests since its reset
 * is taken as dirty without looking at the next ones: the reset that then
 * costs at its hand-over (a round trip) is small next to that many requests,
 * while classifying every request of a long session is not.
 */
#define CLEAN_REQUESTS_MAX 16

/* While a takeover hands clients over (link_set_handover); NULL otherwise. */
static bool (*handover)(struct client *cl);

static void link_request_server(struct client *cl);
static void link_settle_idle(struct client *cl);
static void link_release_server(struct client *cl);
static void link_pump_client(struct client *cl);
static bool link_pump_server(struct server *sv);
static void link_judge_fatal(struct server *sv);
static void link_lose_server(struct server *sv, const char *what);
static bool link_place_request(struct client *cl);
static bool link_meets_floor(struct client *cl);
static bool link_splits(const struct client *cl);
static struct server *link_unlink(struct client *cl);
static enum target link_server_target(const struct client *cl);
static void link_drop_parked(struct client *cl);
static bool link_release_if_movable(struct client *cl);

/* rw_split: where a session's next request runs. */
enum split_route {
	ROUTE_ANY, /* not routed by its content: where its port's clients go */
	ROUTE_PRIMARY,
	ROUTE_REPLICA,
	ROUTE_WAIT, /* a replica will do once it replays the session's floor */
};
static void link_request_routed(struct client *cl, enum split_route route, struct backend *replica);
static void link_wake_from_idle(struct client *cl);

/*
 * Whether sv, a server of cl's, serves its reads under rw_split: a replica's
 * server is taken from the read-only pool of the session's database and user.
 */
static bool link_is_read_side(const struct client *cl, const struct server *sv)
{
	return sv->pool != cl->pool;
}

/* A request began (is_first: nothing else in flight): timed, for the pool's statistics. */
static void link_time_request(struct client *cl, bool is_first)
{
	if (is_first) {
		cl->query_start_us = now_us();
		if (cl->server->tx_status == PROTO_TX_IDLE)
			cl->xact_start_us = cl->query_start_us;
	}
}

static void link_begin_request(struct client *cl)
{
	link_time_request(cl, xact_begin_request(&cl->xact));
}

/* ReadyForQuery from the server: a request is answered. */
static void link_note_ready(struct client *cl, char status)
{
	struct stats *st = &cl->pool->stats;
	int64_t now = now_us();

	st->query_count++;
	st->query_time_us += (uint64_t)(now - cl->query_start_us);
	stats_observe(&st->query_hist, now - cl->query_start_us);
	cl->query_start_us = now;
	if (status == PROTO_TX_IDLE && cl->xact_start_us != 0) {
		st->xact_count++;
		st->xact_time_us += (uint64_t)(now - cl->xact_start_us);
		stats_observe(&st->xact_hist, now - cl->xact_start_us);
		cl->xact_start_us = 0;
	}
	xact_note_ready(&cl->xact, status, &cl->session);
}

/* Forget the request in flight: it is answered (by us) or will be sent again. */
static void link_reset_request(struct client *cl)
{
	xact_reset(&cl->xact);
	cl->xact_start_us = 0;
}

static void link_retire_logins(void *arg UNUSED, const char *database, const char *role)
{
	pool_retire_logins(database, role);
}

/*
 * cl sends a query (text, n bytes with its NUL): a statement in it that
 * changes what a login gets (ALTER DATABASE/ROLE ... SET), or wants its
 * database free of sessions (DROP DATABASE, ...), retires pgwing's logins of
 * that database or role first, so the next session gets what a fresh
 * backend gets, and pgwing's own idle servers are not in the statement's way.
 */
static void link_note_login_changes(const uint8_t *text, size_t n)
{
	if (n > 0 && text[n - 1] == '\0')
		classify_login_changes((const char *)text, n - 1, link_retire_logins, NULL);
}

static void link_note_code(struct client *cl, const uint8_t *query, size_t n);

/*
 * A Parse body (n bytes): its query may run code (link_note_code), wherever
 * it is executed, or change logins (link_note_login_changes).
 */
static void link_note_parse(struct client *cl, const uint8_t *body, size_t n)
{
	struct proto_reader r;
	const char *text;
	size_t text_n;

	proto_reader_init(&r, body, n);
	proto_read_cstring(&r); /* the statement's name */
	text = proto_read_cstring(&r);
	text_n = text != NULL ? strlen(text) + 1 : 0; /* with its NUL, as a Query's */
	link_note_code(cl, (const uint8_t *)text, text_n);
	if (text != NULL)
		link_note_login_changes((const uint8_t *)text, text_n);
}

/*
 * Parse, Bind, Describe, Execute, Close: kept for a retry while the request
 * may run again, and Parse and Close of statements noted for the session.
 * Only those need their bodies read.
 */
static enum proto_inspect link_inspect_extended(struct client *cl, struct evbuffer *in,
						const struct proto_msg *msg, uint8_t *scratch,
						size_t scratch_len)
{
	size_t n = msg->len - 4;
	bool is_statement = msg->type == PqMsg_Parse || msg->type == PqMsg_Close;
	const uint8_t *body;

	if (msg->type == PqMsg_Execute)
		xact_note_execute(&cl->xact);
	if (!is_statement && !xact_is_keeping(&cl->xact, cl->server->tx_status)) {
		cl->xact.is_mid_request = true;
		return PROTO_INSPECT_FORWARD;
	}
	if (n > scratch_len) {
		xact_stop_keeping(&cl->xact);
		if (msg->type == PqMsg_Parse)
			link_note_code(cl, NULL, 0);
		if (is_statement)
			xact_note_untracked_statement(&cl->xact, cl->session);
		cl->xact.is_mid_request = true;
		return PROTO_INSPECT_FORWARD;
	}
	body = proto_msg_body(in, msg, scratch);
	if (body == NULL)
		return PROTO_INSPECT_WAIT;
	xact_note_extended(&cl->xact, msg->type, body, n, cl->server->tx_status);
	if (msg->type == PqMsg_Parse)
		link_note_parse(cl, body, n);
	if (is_statement)
		xact_note_statement(&cl->xact, &cl->session, msg->type, body, n);
	return PROTO_INSPECT_FORWARD;
}

/*
 * A request goes to sv: whether it must be looked at, to keep sv clean (a
 * hand-over without a reset). Not once sv is dirty, or past CLEAN_REQUESTS_MAX.
 */
static bool link_checks_request(struct server *sv)
{
	if (sv->is_dirty) {
		sv->has_changed_since_check = true;
		return false;
	}
	if (++sv->clean_requests > CLEAN_REQUESTS_MAX) {
		server_mark_dirty(sv);
		return false;
	}
	return true;
}

/*
 * A Query of cl going to its server (not dirty yet): a read leaves nothing;
 * one that only sets settings, alone in flight, leaves what the session's
 * record says (and the parameters reported until its ReadyForQuery are its
 * own); anything else may leave what no record holds.
 */
static void link_check_query(struct client *cl, const uint8_t *body, size_t n)
{
	struct server *sv = cl->server;
	const char *sql = (const char *)body;
	bool is_text = n > 0 && body[n - 1] == '\0';

	/* Reads first: they are most requests, and one classification answers them. */
	if (is_text && xact_query_is_read(sql, n - 1))
		return;
	if (is_text && xact_query_only_sets(sql, n - 1) && cl->xact.pending_syncs == 0)
		sv->is_setting = true;
	else
		server_mark_dirty(sv);
}

/* The first message of a request (what a Sync or a Query ends). */
static bool is_request_start(char type)
{
	return type == PqMsg_Query || type == PqMsg_Parse || type == PqMsg_Bind ||
	       type == PqMsg_Describe || type == PqMsg_Execute || type == PqMsg_Close ||
	       type == PqMsg_FunctionCall;
}

static enum proto_inspect client_inspect(void *arg, struct evbuffer *in,
					 const struct proto_msg *msg)
{
	static uint8_t scratch[CLASSIFY_MAX_SQL];
	struct client *cl = arg;
	const uint8_t *body;
	size_t n = msg->len - 4;

	/*
	 * A split session's next request waits for the answer to the one in
	 * flight: it may have to run on the other server, and must not overtake
	 * it (link_pump_server pumps it at the idle point).
	 */
	if (cl->is_splitting && cl->xact.pending_syncs > 0 && !cl->xact.is_mid_request &&
	    is_request_start(msg->type))
		return PROTO_INSPECT_WAIT;
	switch (msg->type) {
	case PqMsg_Terminate:
		/* Terminate ends the session here; the server gets its own on close. */
		return PROTO_INSPECT_STOP;
	case PqMsg_Sync:
		link_time_request(cl, xact_note_sync(&cl->xact));
		/* An extended request is known only as kept whole (for a retry). */
		if (link_checks_request(cl->server) &&
		    !xact_retry_leaves_statements_only(&cl->xact, cl->session))
			server_mark_dirty(cl->server);
		return PROTO_INSPECT_FORWARD;
	case PqMsg_FunctionCall:
		server_mark_dirty(cl->server);
		link_note_code(cl, NULL, 0);
		xact_stop_keeping(&cl->xact);
		link_begin_request(cl);
		return PROTO_INSPECT_FORWARD;
	case PqMsg_Flush:
		xact_stop_keeping(&cl->xact);
		return PROTO_INSPECT_FORWARD;
	case PqMsg_CopyDone:
	case PqMsg_CopyFail:
		cl->xact.is_copying_in = false; /* CopyDone, CopyFail */
		return PROTO_INSPECT_FORWARD;
	case PqMsg_Query:
		if (n > sizeof(scratch)) {
			server_mark_dirty(cl->server);
			link_note_code(cl, NULL, 0);
			link_begin_request(cl);
			return PROTO_INSPECT_FORWARD;
		}
		body = proto_msg_body(in, msg, scratch);
		if (body == NULL)
			return PROTO_INSPECT_WAIT;
		if (link_checks_request(cl->server))
			link_check_query(cl, body, n);
		link_note_login_changes(body, n);
		/* A read calls nothing but built-in read-only functions: only the rest is looked
		 * into. */
		if (cl->server->is_dirty)
			link_note_code(cl, body, n);
		link_begin_request(cl);
		if (n > 0 && body[n - 1] == '\0')
			xact_note_query(&cl->xact, (const char *)body, n - 1, cl->server->tx_status,
					(size_t)rt->cfg->max_session_sql_size);
		return PROTO_INSPECT_FORWARD;
	case PqMsg_Parse:
	case PqMsg_Close:
	case PqMsg_Bind:
	case PqMsg_Describe:
	case PqMsg_Execute:
		return link_inspect_extended(cl, in, msg, scratch, sizeof(scratch));
	default:
		return PROTO_INSPECT_FORWARD;
	}
}

/* Forward whatever the client has buffered to its server. */
static void link_pump_client(struct client *cl)
{
	enum proto_scan scan;
	size_t movable;

	if (cl->server == NULL || cl->state != CL_ACTIVE || cl->server->is_awaiting_verdict ||
	    cl->server->is_checking)
		return;
	/*
	 * Where the next request runs is a question only for a session that may
	 * split or set a floor: rw_split on, or a session with state (SET
	 * pgwing.split, pgwing.min_lsn). Every other request goes straight on.
	 */
	if (cl->is_request_placed) {
		cl->is_request_placed = false;
	} else if (cl->session == NULL && (!rt->cfg->rw_split || cl->target != TARGET_RW)) {
		cl->is_splitting = false;
	} else if (cl->msg_remaining == 0 && xact_is_idle(&cl->xact) &&
		   cl->server->tx_status == PROTO_TX_IDLE && conn_input_length(&cl->conn) > 0) {
		cl->is_splitting = link_splits(cl);
		/* A statement parsed here and not executed yet keeps the request here too. */
		if (cl->xact.is_unnamed_parsed)
			cl->is_writing = cl->is_writing ||
					 (cl->is_splitting && !link_is_read_side(cl, cl->server));
		else if (cl->is_splitting ? !link_place_request(cl) : !link_meets_floor(cl))
			return;
	}
	scan = conn_scan(&cl->conn, (uint32_t)rt->cfg->max_packet_size, &cl->msg_remaining,
			 &movable, client_inspect, cl);
	if (movable > 0) {
		conn_move(&cl->conn, &cl->server->conn, movable);
		cl->pool->stats.bytes_in += movable;
	}
	/* A split session's write that commits alone: the LSN question right behind it. */
	if (cl->is_lsn_to_pipeline && cl->msg_remaining == 0 && cl->xact.pending_syncs > 0) {
		cl->is_lsn_to_pipeline = false;
		cl->is_lsn_pipelined = true;
		proto_put_query(conn_output(&cl->server->conn), COMMIT_LSN_QUERY);
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
		if (cl->xact.pending_syncs > 0 && !cl->xact.is_copying_in) {
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
			    rt->cfg->max_packet_size);
		return;
	}
	conn_throttle(&cl->conn, &cl->server->conn);
}

/*
 * The server reported an error for the request in flight. A write refused as
 * read-only (25006) by what we took for the primary: it was demoted; health
 * is asked to look now rather than at the next interval.
 */
static void link_note_error(struct server *sv, const uint8_t *body, size_t len)
{
	struct client *cl = sv->owner;
	struct proto_error_fields ef;

	/*
	 * A Parse is recorded as it is sent: after an error (the Parse's own, or
	 * one that skipped it to the Sync) the record may name a statement the
	 * server does not have. The server is reset, not kept with them.
	 */
	if (cl->session != NULL && session_state_has_statements(cl->session))
		server_mark_dirty(sv);
	xact_note_error(&cl->xact);
	if (!sv->is_holding && cl->xact.pending_syncs > 0)
		cl->xact.is_response_started = true;
	if (cl->target != TARGET_RW || link_is_read_side(cl, sv) || body == NULL ||
	    !proto_parse_error(body, len, &ef) || ef.sqlstate == NULL ||
	    strcmp(ef.sqlstate, SQLSTATE_READ_ONLY_SQL_TRANSACTION) != 0)
		return;
	log_warn("backend %s refused a write (25006): probing its role now", sv->backend_name);
	if (sv->backend != NULL)
		health_probe_now(sv->backend);
}

/*
 * rw_split: a replica refused a read with 25006 (a function that writes,
 * which no reading of the text sees). It had no effect there: an autocommit
 * request the client has seen nothing of runs again on the primary.
 */
static bool link_is_replica_refusal(struct client *cl, const uint8_t *body, size_t len)
{
	struct proto_error_fields ef;

	if (cl->server == NULL || !link_is_read_side(cl, cl->server) ||
	    !xact_can_retry(&cl->xact) || cl->xact.is_response_started ||
	    !proto_parse_error(body, len, &ef) || ef.sqlstate == NULL ||
	    strcmp(ef.sqlstate, SQLSTATE_READ_ONLY_SQL_TRANSACTION) != 0)
		return false;
	cl->is_split_fallback = true;
	return true;
}

/*
 * The request in flight, never answered and kept whole, goes back in front
 * of the client's input and runs again on the server it is given next.
 */
static void link_run_again(struct client *cl)
{
	evbuffer_prepend(conn_input(&cl->conn), cl->xact.retry, cl->xact.retry_len);
	link_reset_request(cl);
	link_request_server(cl);
}

/* After link_is_replica_refusal: the read runs again, on the primary. */
static void link_rerun_on_primary(struct server *sv)
{
	struct client *cl = sv->owner;

	log_debug("client %" PRIu64 ": backend %s refused a read as a write (25006): running it "
		  "on the primary",
		  cl->id, sv->backend_name);
	cl->pool->stats.replica_refusals++;
	server_close(link_unlink(cl));
	cl->msg_remaining = 0;
	link_run_again(cl);
}

/*
 * rw_split: a write committed on the primary (sv): its ReadyForQuery, first
 * in sv's input, is held while pgwing asks sv for the WAL position, which is
 * at or past the commit (asked after it, on the server that made it). The
 * client hears it as pgwing.commit_lsn just before that ReadyForQuery, and
 * its reads need a replica that replayed that far. A write that commits
 * alone had the question sent right behind it (link_pump_client): its answer
 * is on its way, in the same round trip. Any other costs one more.
 */
static void link_ask_commit_lsn(struct client *cl, struct server *sv, size_t held)
{
	if (held > 0) {
		conn_move(&sv->conn, &cl->conn, held);
		cl->pool->stats.bytes_out += held;
	}
	evbuffer_drain(conn_input(&sv->conn), PROTO_HEADER_LEN + 1);
	cl->is_writing = false;
	cl->is_asking_lsn = true;
	if (!cl->is_lsn_pipelined)
		proto_put_query(conn_output(&sv->conn), COMMIT_LSN_QUERY);
	cl->is_lsn_pipelined = false;
}

/*
 * The answer to COMMIT_LSN_QUERY, as it arrives. False until its
 * ReadyForQuery (or when the server failed); then the client gets
 * pgwing.commit_lsn and its own ReadyForQuery (with the status sv gave it),
 * and the pump goes on. A question sent behind a request that left a
 * transaction open (it did not commit alone after all) is only swallowed.
 */
static bool link_read_commit_lsn(struct client *cl, struct server *sv)
{
	struct evbuffer *in = conn_input(&sv->conn);
	struct evbuffer *out = conn_output(&cl->conn);
	char type, text[LSN_TEXT_MAX];
	uint32_t len;
	uint8_t *msg;
	enum proto_frame frame;

	while ((frame = proto_next_message(in, (uint32_t)rt->cfg->max_packet_size, &type, &len,
					   &msg)) == PROTO_FRAME_OK) {
		struct proto_reader r;

		proto_reader_init(&r, msg + PROTO_HEADER_LEN, len - 4);
		if (type == PqMsg_DataRow && proto_read_int16(&r) == 1 &&
		    sv->tx_status == PROTO_TX_IDLE) {
			uint32_t n = proto_read_int32(&r);
			const uint8_t *value = n < sizeof(text) ? proto_read_bytes(&r, n) : NULL;
			uint64_t lsn;

			memcpy(text, value != NULL ? (const char *)value : "",
			       value != NULL ? n : 0);
			text[value != NULL ? n : 0] = '\0';
			cl->is_lsn_unknown = !lsn_parse(text, &lsn);
			if (!cl->is_lsn_unknown && lsn > cl->causal_lsn)
				cl->causal_lsn = lsn;
		} else if (type == PqMsg_ErrorResponse && sv->tx_status == PROTO_TX_IDLE) {
			cl->is_lsn_unknown = true;
		}
		evbuffer_drain(in, 1 + len);
		if (type != PqMsg_ReadyForQuery)
			continue;
		cl->is_asking_lsn = false;
		cl->is_writing = sv->tx_status != PROTO_TX_IDLE;
		if (!cl->is_writing && !cl->is_lsn_unknown) {
			lsn_format(cl->causal_lsn, text);
			proto_put_parameter_status(out, "pgwing.commit_lsn", text);
		}
		proto_put_ready(out, sv->tx_status);
		sv->saw_ready = true;
		link_note_ready(cl, sv->tx_status);
		return true;
	}
	if (frame != PROTO_FRAME_NEED_MORE)
		server_fail(sv, "invalid message from", "bad message length");
	return false;
}

/* Record a ParameterStatus body; returns true when the value is new to the client. */
static bool remember_parameter(struct client *cl, const uint8_t *body, size_t len)
{
	const char *name, *value;

	if (!proto_parse_parameter_status(body, len, &name, &value))
		return true;
	return param_set_update(&cl->reported, name, value);
}

/*
 * Only a few messages are looked into: ReadyForQuery (its status tells when the
 * session is idle), ParameterStatus (so a moved session can be told what
 * changed), ErrorResponse (a failed request records no session state; 25006
 * on the primary means it was demoted), NoticeResponse (a server's warning
 * that it is being shut down) and, while session state waits to be
 * recorded, CommandComplete (a ROLLBACK undoes it). The rest passes by its
 * header. An error is an answer, except inside a held one: that goes on whole
 * at its ReadyForQuery, and until then the request can still run again
 * elsewhere.
 */
static enum proto_inspect server_inspect(void *arg, struct evbuffer *in,
					 const struct proto_msg *msg)
{
	static uint8_t scratch[ERROR_PEEK_MAX];
	struct server *sv = arg;
	struct client *cl = sv->owner;
	struct proto_error_fields ef;
	enum proto_inspect verdict = PROTO_INSPECT_FORWARD;
	const uint8_t *body;
	size_t n = msg->len - 4;
	char type = msg->type;

	/*
	 * Notices, notifications and parameter reports may come at any time, and
	 * errors are seen to below; anything else is an answer, after which the
	 * request can't be run again elsewhere. The scan holds it until its
	 * ReadyForQuery, which releases it, in the same walk.
	 */
	if (type != PqMsg_NoticeResponse && type != PqMsg_NotificationResponse &&
	    type != PqMsg_ParameterStatus && type != PqMsg_ErrorResponse &&
	    cl->xact.pending_syncs > 0 && !cl->xact.is_response_started) {
		if (type != PqMsg_ReadyForQuery && xact_can_retry(&cl->xact) &&
		    msg->offset + 1 + (size_t)msg->len <= RETRY_HOLD_MAX) {
			sv->is_holding = true;
			return PROTO_INSPECT_HOLD;
		}
		cl->xact.is_response_started = true;
		verdict = PROTO_INSPECT_RELEASE;
	}
	/*
	 * The session's own NOTIFY comes back with its backend's pid: the client
	 * was given another (BackendKeyData), by which it tells its own
	 * notifications from others'.
	 */
	if (type == PqMsg_NotificationResponse)
		return proto_msg_replace_int32(in, msg, 0, sv->backend_pid, cl->cancel_pid)
			       ? verdict
			       : PROTO_INSPECT_WAIT;
	/* CopyInResponse: the server waits for the client's data. */
	if (type == PqMsg_CopyInResponse)
		cl->xact.is_copying_in = true;
	if (type != PqMsg_ReadyForQuery && type != PqMsg_ParameterStatus &&
	    type != PqMsg_ErrorResponse && type != PqMsg_NoticeResponse &&
	    (type != PqMsg_CommandComplete || !xact_wants_command_tags(&cl->xact)))
		return verdict;
	if (n > sizeof(scratch) || (type == PqMsg_ReadyForQuery && n != 1)) {
		if (type == PqMsg_ErrorResponse)
			link_note_error(sv, NULL, 0);
		return verdict;
	}
	body = proto_msg_body(in, msg, scratch);
	if (body == NULL)
		return PROTO_INSPECT_WAIT;
	switch (type) {
	case PqMsg_ReadyForQuery:
		sv->tx_status = (char)body[0];
		sv->is_setting = false;
		/* rw_split: a write committed; the client hears of it once its LSN is known. */
		if ((cl->is_writing && sv->tx_status == PROTO_TX_IDLE) || cl->is_lsn_pipelined) {
			commit_ready_at = msg->offset;
			return PROTO_INSPECT_STOP;
		}
		sv->saw_ready = true;
		link_note_ready(cl, sv->tx_status);
		return PROTO_INSPECT_RELEASE;
	case PqMsg_ParameterStatus:
		/*
		 * A reported setting changed: by a SET the session records, or under
		 * a request that looked read-only (a function a view calls), which
		 * the next session must not inherit.
		 */
		if (!sv->is_setting)
			server_mark_dirty(sv);
		remember_parameter(cl, body, n);
		server_note_parameter(sv, body, n);
		break;
	case PqMsg_CommandComplete:
		if (n > 0 && body[n - 1] == '\0')
			xact_note_command(&cl->xact, (const char *)body);
		break;
	case PqMsg_NoticeResponse:
		/*
		 * Postgres warns each server before an immediate shutdown or after a
		 * crash of another backend (class 57), then closes it: the server's
		 * death, not the session's. The session moves on and must hear none of
		 * it, so the warning is taken as the lost connection it announces (or
		 * held with an answer held, which goes with the server).
		 */
		if (!proto_parse_error(body, n, &ef) || ef.sqlstate == NULL ||
		    strncmp(ef.sqlstate, "57", 2) != 0)
			break;
		if (sv->is_holding)
			return PROTO_INSPECT_HOLD;
		snprintf(sv->last_fatal, sizeof(sv->last_fatal), "%s",
			 ef.message != NULL ? ef.message : ef.severity);
		return PROTO_INSPECT_STOP;
	default:
		if (link_is_replica_refusal(cl, body, n))
			return PROTO_INSPECT_STOP;
		if (proto_parse_error(body, n, &ef) && ef.severity != NULL &&
		    (strcmp(ef.severity, "FATAL") == 0 || strcmp(ef.severity, "PANIC") == 0)) {
			bool is_operator =
				ef.sqlstate != NULL && strncmp(ef.sqlstate, "57", 2) == 0;

			/*
			 * 57P01 is an administrator's kill of this session or its Postgres
			 * shutting down: link_judge_fatal tells which, the answer held so far
			 * waiting with it.
			 */
			if (is_operator && strcmp(ef.sqlstate, SQLSTATE_ADMIN_SHUTDOWN) == 0)
				sv->is_awaiting_verdict = true;
			/*
			 * Otherwise the server goes, and its answer stays held: the client has
			 * seen none of it, and the read runs again elsewhere once the
			 * connection is lost.
			 */
			else if (sv->is_holding)
				return PROTO_INSPECT_HOLD;
			/*
			 * Operator intervention (class 57: shutdown, crash, pg_terminate_backend)
			 * is judged, or ends the server, not the session: handled like the lost
			 * connection it announces, so the session can move. Any other FATAL is
			 * about this session (a protocol violation, a timeout): the client hears
			 * it and goes.
			 */
			if (is_operator) {
				snprintf(sv->last_fatal, sizeof(sv->last_fatal), "%s",
					 ef.message != NULL ? ef.message : ef.severity);
				return PROTO_INSPECT_STOP;
			}
			sv->is_ending = true;
		}
		link_note_error(sv, body, n);
		break;
	}
	return verdict;
}

/*
 * An idle point (ReadyForQuery 'I', nothing pending either way): whether the
 * client keeps its server. False when it was given back, or the client failed
 * (then the client may be freed too).
 */
static bool link_keeps_server(struct client *cl)
{
	if (evbuffer_get_length(conn_input(&cl->conn)) > 0 || cl->xact.is_unnamed_parsed ||
	    (!pool_should_release(cl) && handover == NULL))
		return true;
	return !link_release_if_movable(cl);
}

/*
 * Before a server that ran what pgwing could not see into is given back, it
 * is asked what its session holds (capture.h): state made out of the
 * record's sight (a temp table or a lock taken in a function, a setting made
 * in a DO block) keeps the session on its server, where a move would
 * silently lose it, and settings move with the values it shows; a pin whose
 * cause is gone (the temp table dropped, the lock released) is lifted. What
 * pgwing could not see into is code of the database's own (move_check =
 * functions: a function call, DO, CALL, EXECUTE, a prepared statement that
 * calls one) or anything but reads (writes: triggers too), since the last
 * check; a pinned session is asked after anything but reads, and only if a
 * check can see its pin go (not a setting made with set_config).
 */
static bool link_needs_check(const struct client *cl)
{
	const struct server *sv = cl->server;
	const struct session_state *st = cl->session;

	if (!sv->has_changed_since_check)
		return false;
	if (st != NULL && session_state_unmovable(st) != NULL)
		return session_state_pin_is_checkable(st);
	return rt->cfg->move_check == MOVE_CHECK_WRITES || sv->may_hold_unseen ||
	       session_state_runs_code(st);
}

/* cl's request runs code of the database's own (query: a Query's text, n bytes). */
static void link_note_code(struct client *cl, const uint8_t *query, size_t n)
{
	struct server *sv = cl->server;

	if (!sv->may_hold_unseen && (query == NULL || n == 0 || query[n - 1] != '\0' ||
				     classify_query_runs_code((const char *)query, n - 1)))
		sv->may_hold_unseen = true;
}

/* The check goes out; the client's next request waits behind its answer (link_read_check). */
static void link_send_check(struct client *cl)
{
	struct server *sv = cl->server;

	log_debug("client %" PRIu64 ": checking the session state of server %" PRIu64
		  " before giving it back",
		  cl->id, sv->id);
	sv->is_checking = true;
	sv->is_check_failed = false;
	sv->check_start_us = now_us();
	proto_put_query(conn_output(&sv->conn), CAPTURE_QUERY);
}

/*
 * At an idle point, cl is to give its server back (a pause, a reconnect, a
 * full pool, its idle timeout, a replica behind its floor): true when it did
 * (or failed: then it may be freed), false when it keeps it, for now (a
 * check is asked first) or because its session can't move.
 */
static bool link_release_if_movable(struct client *cl)
{
	const char *unmovable;

	if (link_needs_check(cl)) {
		link_send_check(cl);
		return false;
	}
	unmovable = cl->session != NULL ? session_state_unmovable(cl->session) : NULL;
	if (unmovable == NULL) {
		link_release_server(cl);
		return true;
	}
	/*
	 * A session that can't move keeps its server through a pause or a
	 * reconnect; if the backend no longer serves it (demoted, gone), it ends
	 * with the reason rather than moving without its state.
	 */
	if (!router_should_move(rt->topo, rt->cfg, link_server_target(cl), cl->server->backend))
		return false;
	client_fail(cl, SQLSTATE_CONNECTION_FAILURE,
		    "backend %s no longer serves this session, and the session can't move "
		    "to another server: it has %s",
		    cl->server->backend_name, unmovable);
	return true;
}

/*
 * The check's answer, whole, judged against the session's record (which
 * takes the server's values of its settings): the session is pinned (or
 * pinned still) by what the server holds, or may move.
 */
static void link_judge_check(struct client *cl, struct server *sv, struct capture_verdict *v)
{
	struct session_state *st = cl->session != NULL ? cl->session : session_state_new();

	if (sv->is_check_failed || !sv->check.has_summary)
		*v = (struct capture_verdict){
			.pin = "state its server would not show (pgwing's check of it failed)"};
	else
		capture_settle(&sv->check, st, sv->pool->user, v);
	capture_clear(&sv->check);
	/* A session that had no record keeps one only if the check gave it something. */
	if (cl->session == NULL && v->pin == NULL && session_state_is_empty(st))
		session_state_free(st);
	else
		cl->session = st;
}

/*
 * What waited for the check goes on: the release it was asked for (decided
 * again: the reason may be gone), or the next request. A pool whose waiters
 * a pinned session could not serve looks for another idle session.
 */
static void link_check_answered(struct client *cl, struct server *sv)
{
	struct stats *st = &cl->pool->stats;
	struct capture_verdict v;

	link_judge_check(cl, sv, &v);
	st->state_checks++;
	st->state_check_time_us += (uint64_t)(now_us() - sv->check_start_us);
	sv->is_checking = false;
	sv->has_changed_since_check = sv->may_hold_unseen = false;
	sv->has_temp_schema = sv->has_temp_schema || v.has_temp_schema;
	if (v.pin != NULL) {
		log_debug("client %" PRIu64 ": keeps server %" PRIu64 ": its session has %s",
			  cl->id, sv->id, v.pin);
		if (v.is_pin_seen)
			session_state_mark_pinned_while_seen(cl->session, v.pin);
		else
			session_state_mark_unmovable(cl->session, v.pin);
		st->state_check_pins++;
	} else if (cl->session != NULL) {
		session_state_unpin(cl->session);
	}
	/*
	 * A release others wait for goes first, even with the session's next
	 * request in: that request queues behind them, as it would have without
	 * the check (first come, first served).
	 */
	if (v.pin == NULL && !cl->xact.is_unnamed_parsed &&
	    (pool_should_release(cl) || handover != NULL)) {
		link_release_if_movable(cl);
		return;
	}
	if (conn_input_length(&cl->conn) > 0) {
		link_pump_client(cl);
		return;
	}
	if (!link_keeps_server(cl) || cl->server != sv)
		return;
	if (cl->pool->nwaiting > 0 && v.pin != NULL) {
		struct client *victim = pool_reclaimable_session(cl->pool);

		if (victim != NULL)
			link_release_if_movable(victim);
	}
}

/*
 * The check's answer, as it arrives; true once its ReadyForQuery is read. A
 * notification for the session that comes meanwhile is passed on (with the
 * pid the client knows, as server_inspect does); the rest is pgwing's own.
 */
static bool link_read_check(struct client *cl, struct server *sv)
{
	struct evbuffer *in = conn_input(&sv->conn);
	char type;
	uint32_t len;
	uint8_t *msg;
	enum proto_frame frame;

	while ((frame = proto_next_message(in, (uint32_t)rt->cfg->max_packet_size, &type, &len,
					   &msg)) == PROTO_FRAME_OK) {
		const uint8_t *body = msg + PROTO_HEADER_LEN;

		if (type == PqMsg_NotificationResponse) {
			struct proto_msg whole = {type, len, 0, body};

			proto_msg_replace_int32(NULL, &whole, 0, sv->backend_pid, cl->cancel_pid);
			evbuffer_remove_buffer(in, conn_output(&cl->conn), 1 + len);
			continue;
		}
		if (type == PqMsg_DataRow) {
			if (!sv->is_check_failed && !capture_read_row(&sv->check, body, len - 4))
				sv->is_check_failed = true;
		} else if (type == PqMsg_ErrorResponse) {
			sv->is_check_failed = true;
		} else if (type == PqMsg_ReadyForQuery && len == 5) {
			sv->tx_status = (char)body[0];
		}
		evbuffer_drain(in, 1 + len);
		if (type == PqMsg_ReadyForQuery)
			return true;
	}
	if (frame != PROTO_FRAME_NEED_MORE)
		server_fail(sv, "invalid message from", "bad message length");
	return false;
}

/*
 * Forward whatever the server has buffered to its client. Returns false when
 * sv is gone from the client (lost, failed, given back or closed with it): a
 * new server may have taken its place, even at its address.
 */
static bool link_pump_server(struct server *sv)
{
	struct client *cl = sv->owner;
	enum proto_scan scan;
	size_t movable;

	if (cl == NULL || sv->state != SV_ACTIVE || sv->is_awaiting_verdict)
		return true;
	/* A parked server that speaks is going, or has news for nobody: let it go. */
	if (sv != cl->server) {
		link_drop_parked(cl);
		return false;
	}
	if (cl->is_asking_lsn && !link_read_commit_lsn(cl, sv))
		return cl->server == sv;
	if (sv->is_checking) {
		if (link_read_check(cl, sv))
			link_check_answered(cl, sv);
		return cl->server == sv;
	}
	sv->is_holding = false;
	scan = conn_scan(&sv->conn, (uint32_t)rt->cfg->max_packet_size, &sv->msg_remaining,
			 &movable, server_inspect, sv);
	if (movable > 0) {
		conn_move(&sv->conn, &cl->conn, movable);
		cl->pool->stats.bytes_out += movable;
	}
	if (scan == PROTO_SCAN_BAD_LENGTH) {
		server_fail(sv, "invalid message from", "bad message length");
		return false;
	}
	if (scan == PROTO_SCAN_STOPPED &&
	    ((cl->is_writing && sv->tx_status == PROTO_TX_IDLE) || cl->is_lsn_pipelined)) {
		link_ask_commit_lsn(cl, sv, commit_ready_at - movable);
		return link_pump_server(sv); /* a question sent earlier may be answered already */
	}
	if (scan == PROTO_SCAN_STOPPED && cl->is_split_fallback && link_is_read_side(cl, sv)) {
		link_rerun_on_primary(sv);
		return false;
	}
	if (scan == PROTO_SCAN_STOPPED) {
		if (sv->is_awaiting_verdict)
			link_judge_fatal(sv);
		else
			server_lost(sv, "lost connection to", sv->last_fatal);
		return false;
	}
	if (sv->is_ending) {
		client_close(cl); /* after the FATAL it was just given; frees sv */
		return false;
	}
	if (sv->saw_ready) {
		sv->saw_ready = false;
		cl->is_split_fallback = false;
		if (cl->is_leaving && cl->xact.pending_syncs == 0) {
			client_close(cl); /* its Terminate waited for this answer; frees sv */
			return false;
		}
		if (sv->tx_status == PROTO_TX_IDLE && xact_is_idle(&cl->xact) &&
		    sv->msg_remaining == 0 && evbuffer_get_length(conn_input(&sv->conn)) == 0 &&
		    !link_keeps_server(cl))
			return false; /* released and freed */
		/* A split session's next request waited for this answer (client_inspect). */
		if (cl->is_splitting && xact_is_idle(&cl->xact) &&
		    conn_input_length(&cl->conn) > 0) {
			conn_throttle(&sv->conn, &cl->conn);
			link_pump_client(cl);
			return false;
		}
	}
	conn_throttle(&sv->conn, &cl->conn);
	return true;
}

/* cl and its server let go of each other; the server is the caller's to pool or close. */
static struct server *link_unlink(struct client *cl)
{
	struct server *sv = cl->server;

	server_detach(sv);
	cl->server = NULL;
	return sv;
}

/*
 * The client lets go of its server. One left clean (idle, nothing half sent
 * either way) goes back to the pool for the next client; any other is closed.
 * So is one whose session made what pins a session (temp objects, a LOAD):
 * the reset does not take all of it away (the temp namespace stays the
 * backend's, a library stays loaded), and the next client must get what a
 * fresh backend gives. The pool resets one that may hold its session's state
 * (server_reset): what it ran was not all provably read-only, or it holds an
 * older state of the session (version: the session's as of the server's last
 * request; a parked server), or the session has state at all, which it
 * either made or had replayed there, except settings and prepared statements
 * alone: a server that ran nothing else (not dirty) keeps them, so the next
 * session with the same ones (every connection of an app sets and prepares
 * the same) needs no reset and no replay, and one with others only the
 * difference (session_state_replay).
 */
static void link_return_server(const struct client *cl, struct server *sv, bool is_clean,
			       uint64_t version)
{
	int64_t last_active_ms = cl->query_start_us / 1000;

	if (!is_clean || sv->state != SV_ACTIVE || sv->tx_status != PROTO_TX_IDLE ||
	    sv->is_ending || sv->is_awaiting_verdict || sv->msg_remaining != 0 || sv->is_checking ||
	    sv->has_temp_schema) {
		server_close(sv);
		return;
	}
	if (version != session_state_version(cl->session))
		server_mark_dirty(sv); /* a parked server: the session changed since it served */
	else if (cl->session != NULL && !sv->is_dirty && session_state_is_exact(cl->session))
		server_keep_state(sv, cl->session);
	else if (cl->session != NULL && !session_state_is_empty(cl->session))
		server_mark_dirty(sv);
	if (last_active_ms < sv->connect_time_ms)
		last_active_ms = sv->connect_time_ms;
	pool_put_server(sv, last_active_ms);
}

static void link_give_back_server(struct client *cl)
{
	bool is_clean = cl->msg_remaining == 0 && xact_is_idle(&cl->xact) &&
			(cl->session == NULL || session_state_unmovable(cl->session) == NULL);

	link_return_server(cl, link_unlink(cl), is_clean, session_state_version(cl->session));
}

/*
 * rw_split: sv, no longer cl's current or parked server, goes back to its
 * pool if it is as clean as when it last served (nothing arrived since), with
 * the session's state as of version.
 */
static void link_let_go(struct client *cl, struct server *sv, uint64_t version)
{
	server_detach(sv);
	link_return_server(cl, sv, evbuffer_get_length(conn_input(&sv->conn)) == 0, version);
}

static void link_drop_parked(struct client *cl)
{
	struct server *sv = cl->parked;

	cl->parked = NULL;
	link_let_go(cl, sv, cl->parked_version);
}

/*
 * Leave the server behind (to the pool if it can serve again, closed if it is
 * lost): the client is logged in and server-less, as between transactions.
 */
static void link_drop_server(struct client *cl, bool is_lost)
{
	if (cl->parked != NULL)
		link_drop_parked(cl);
	if (is_lost)
		server_close(link_unlink(cl));
	else
		link_give_back_server(cl);
	pool_set_client_state(cl, CL_IDLE);
	cl->msg_remaining = 0;
	conn_read_on(&cl->conn);
}

static void link_release_server(struct client *cl)
{
	log_debug("client %" PRIu64 ": releasing server %" PRIu64 " at an idle point", cl->id,
		  cl->server->id);
	link_drop_server(cl, false);
	link_reset_request(cl);
	link_settle_idle(cl);
}

static enum proto_inspect skip_inspect(void *arg UNUSED, struct evbuffer *in UNUSED,
				       const struct proto_msg *msg)
{
	return msg->type == PqMsg_Sync ? PROTO_INSPECT_STOP : PROTO_INSPECT_FORWARD;
}

/*
 * After an error mid-request, Postgres ignores messages until Sync and answers
 * that with ReadyForQuery; so does pgwing when the server died mid-request.
 */
static bool link_skip_to_sync(struct client *cl)
{
	struct evbuffer *in = conn_input(&cl->conn);
	size_t skip;

	switch (proto_scan_messages(in, (uint32_t)rt->cfg->max_packet_size, &cl->msg_remaining,
				    &skip, skip_inspect, NULL)) {
	case PROTO_SCAN_DONE:
		evbuffer_drain(in, skip);
		return false;
	case PROTO_SCAN_STOPPED:
		evbuffer_drain(in, skip + PROTO_HEADER_LEN);
		proto_put_ready(conn_output(&cl->conn), PROTO_TX_IDLE);
		cl->xact.is_skipping_to_sync = false;
		return true;
	case PROTO_SCAN_BAD_LENGTH:
		client_fail(cl, SQLSTATE_PROTOCOL_VIOLATION, "invalid message length");
		return false;
	}
	return false;
}

/* An idle client spoke: it needs a server again, unless it is saying goodbye. */
static void link_wake_from_idle(struct client *cl)
{
	struct evbuffer *in = conn_input(&cl->conn);
	uint8_t type;

	if (cl->xact.is_skipping_to_sync && !link_skip_to_sync(cl))
		return;
	if (evbuffer_copyout(in, &type, 1) != 1)
		return;
	if (type == PqMsg_Terminate) {
		client_close(cl);
		return;
	}
	link_request_server(cl);
}

/*
 * An idle client without a server gets one when it speaks, except a listener:
 * notifications only reach a session that has a server, so it gets one now.
 */
static void link_settle_idle(struct client *cl)
{
	if (handover != NULL && handover(cl))
		return;
	if (evbuffer_get_length(conn_input(&cl->conn)) > 0)
		link_wake_from_idle(cl);
	else if (cl->session != NULL && session_state_is_listening(cl->session))
		link_request_server(cl);
}

/*
 * Welcome a client logging in with its pool's ParameterStatus set (and its
 * cancel key) without a server: it gets one when it first speaks.
 */
static void link_welcome(struct client *cl, struct param_set *welcome)
{
	cl->reported = param_set_ref(welcome);
	proto_put_parameter_statuses(conn_output(&cl->conn), &welcome->params);
	client_finish_welcome(cl);
	pool_set_client_state(cl, CL_IDLE);
	cl->hold_since_ms = 0;
	log_debug("client %" PRIu64 ": welcomed without a server", cl->id);
	link_settle_idle(cl);
}

/*
 * The server is ready for the client: on a first login the client gets the
 * welcome; after a move only the parameters whose values changed (in_hot_standby,
 * say), so what it knows stays true. Then forwarding starts.
 */
static void link_server_ready(struct server *sv)
{
	struct client *cl = sv->owner;
	struct evbuffer *out = conn_output(&cl->conn);
	struct evbuffer *welcome = sv->welcome;
	bool is_first = cl->cancel_pid == 0;
	uint8_t *msg;
	uint32_t len;
	char type;

	while (proto_next_message(welcome, UINT32_MAX, &type, &len, &msg) == PROTO_FRAME_OK) {
		/*
		 * A replica serving a rw_split session's reads reports what it is
		 * (in_hot_standby, read-only): the session was told the primary's,
		 * which stay true for it.
		 */
		bool is_news = link_is_read_side(cl, sv) ? false
			       : type == PqMsg_ParameterStatus
				       ? remember_parameter(cl, msg + PROTO_HEADER_LEN, len - 4)
				       : is_first;

		if (is_news)
			evbuffer_remove_buffer(welcome, out, 1 + len);
		else
			evbuffer_drain(welcome, 1 + len);
	}
	pool_set_client_state(cl, CL_ACTIVE);
	cl->hold_since_ms = 0;
	pool_note_served(cl);
	if (is_first)
		client_finish_welcome(cl);
	if (!cl->is_leaving)
		conn_read_on(&cl->conn); /* client_hold_input may have stopped it */
	link_pump_client(cl);
}

/*
 * A session that moves brings its state: SETs, LISTENs, prepared statements
 * are replayed before the client's next request, and their answers dropped.
 * A first login has none.
 */
static void link_restore_or_ready(struct server *sv)
{
	struct client *cl = sv->owner;
	struct session_state *st = cl->cancel_pid != 0 ? cl->session : NULL;

	server_restore(sv, st);
}

/* Give a pooled server to cl: its session state is replayed, then the client is ready. */
static void link_attach(struct client *cl, struct server *sv)
{
	cl->server = sv;
	server_attach(sv, &link_server_ops, cl);
	link_restore_or_ready(sv);
}

/* A new server on b for cl, counted in p (cl's pool, or for rw_split reads its read-only one). */
static void link_connect(struct client *cl, struct pool *p, struct backend *b)
{
	struct server_login login = {
		.params = &cl->params,
		.cred = &cl->cred,
		.is_read_only = p->target == TARGET_RO,
	};

	cl->server = server_connect(b, &login, &link_server_ops, cl);
	pool_note_server(p, cl->server);
	server_start(cl->server);
}

/*
 * Give cl a server on b: a pooled one that fits, else a new one if the pool
 * has room. False: the pool is full, cl must wait.
 */
static bool link_start_server(struct client *cl, struct backend *b)
{
	struct server *sv = pool_take_idle(cl->pool, b, &cl->params);

	if (sv == NULL && !pool_make_room(cl->pool, cl))
		return false;
	pool_set_client_state(cl, CL_LOGIN);
	if (sv != NULL)
		link_attach(cl, sv);
	else
		link_connect(cl, cl->pool, b);
	return true;
}

/* Wake what clients of target need asleep (router_pick_wakeable decides). */
static void link_wake_for(enum target target)
{
	struct backend *w = router_pick_wakeable(rt->topo, rt->cfg, target);

	if (w != NULL)
		wake_backend(w);
}

/*
 * rw_split. A session of the read-write port may hold two servers: the
 * primary's, and a replica's for its reads. The one not serving the current
 * request is parked: idle, with the session's state as of parked_version. At
 * each idle point the next request, whole in the client's input, decides
 * where it runs; a parked server serves again only if the session's state
 * has not changed since it was parked (else it goes back to its pool and a
 * fresh one gets the state replayed).
 */

/* The target the client's current server serves it as: its reads' replica is read-only. */
static enum target link_server_target(const struct client *cl)
{
	return cl->server != NULL && link_is_read_side(cl, cl->server) ? TARGET_RO : cl->target;
}

/* A pgwing.* value the session SET, parsed; false when it set none (or none plainly). */
static bool link_session_value(const struct client *cl, const char *name, char *buf, size_t buflen)
{
	const char *set = session_state_set_text(cl->session, name);

	return set != NULL && split_set_value(set, buf, buflen);
}

/*
 * Whether cl's requests are split: the read-write port, rw_split or the
 * session's own SET pgwing.split, a session a replica can serve (nothing
 * that lives on one server: temp objects, locks, a LISTEN), and past its
 * login (which the primary's welcome answers).
 */
static bool link_splits(const struct client *cl)
{
	bool is_on = rt->cfg->rw_split;
	char value[8];

	if (cl->target != TARGET_RW || cl->cancel_pid == 0)
		return false;
	if (cl->session == NULL)
		return is_on;
	if (session_state_unmovable(cl->session) != NULL || session_state_is_listening(cl->session))
		return false;
	if (link_session_value(cl, "pgwing.split", value, sizeof(value)))
		config_parse_bool(value, &is_on);
	return is_on;
}

/*
 * How fresh cl's reads must be: at or past its own writes and the
 * pgwing.min_lsn it asked for, within the pgwing.max_staleness it set.
 * False when nothing binds them (any replica will do).
 */
static bool link_read_floor(const struct client *cl, struct read_floor *floor)
{
	char value[LSN_TEXT_MAX + 16];
	uint64_t asked;

	floor->min_lsn = cl->causal_lsn;
	floor->max_staleness_ms = 0;
	floor->now_ms = now_ms();
	if (cl->session == NULL)
		return floor->min_lsn > 0;
	if (link_session_value(cl, "pgwing.min_lsn", value, sizeof(value)) &&
	    lsn_parse(value, &asked) && asked > floor->min_lsn)
		floor->min_lsn = asked;
	if (link_session_value(cl, "pgwing.max_staleness", value, sizeof(value)))
		config_parse_duration(value, &floor->max_staleness_ms);
	return floor->min_lsn > 0 || floor->max_staleness_ms > 0;
}

/*
 * The request at the head of cl's input, whole and contiguous (a Query, or
 * extended-protocol messages up to their Sync), or NULL: not all there yet,
 * larger than is looked into, or of another kind. Such a request runs on the
 * primary, which is always right.
 */
static const uint8_t *link_peek_request(struct client *cl, size_t *len)
{
	struct evbuffer *in = conn_input(&cl->conn);
	size_t have = evbuffer_get_length(in), pos = 0;

	while (pos + PROTO_HEADER_LEN <= have) {
		uint8_t head[PROTO_HEADER_LEN];
		struct evbuffer_ptr at;
		size_t end;

		if (evbuffer_ptr_set(in, &at, pos, EVBUFFER_PTR_SET) != 0 ||
		    evbuffer_copyout_from(in, &at, head, sizeof(head)) != sizeof(head))
			return NULL;
		end = pos + 1 + proto_decode_length(head);
		if (proto_decode_length(head) < 4 || end > have || end > CLASSIFY_MAX_SQL)
			return NULL;
		if ((head[0] == PqMsg_Query && pos == 0) || head[0] == PqMsg_Sync) {
			*len = end;
			return evbuffer_pullup(in, (ev_ssize_t)end);
		}
		if (head[0] != PqMsg_Parse && head[0] != PqMsg_Bind && head[0] != PqMsg_Describe &&
		    head[0] != PqMsg_Execute)
			return NULL;
		pos = end;
	}
	return NULL;
}

/*
 * The request at the head of cl's input is a read a replica may serve
 * (provably read-only, or a BEGIN READ ONLY), or not; *may_write: if not,
 * whether it may write (else it changes only the session: SET, PREPARE).
 */
static bool link_request_is_read(struct client *cl, bool *may_write)
{
	size_t len;
	const uint8_t *req = link_peek_request(cl, &len);

	*may_write = req == NULL || xact_request_may_write(req, len);
	cl->is_lsn_to_pipeline = *may_write && req != NULL && xact_request_commits_alone(req, len);
	if (req == NULL || split_asks_server_role(req, len))
		return false;
	return xact_request_is_read(req, len, cl->session) ||
	       (req[0] == PqMsg_Query && req[len - 1] == '\0' &&
		split_begins_read_only((const char *)req + PROTO_HEADER_LEN,
				       len - PROTO_HEADER_LEN - 1));
}

static void link_on_catch_up_timer(evutil_socket_t fd UNUSED, short what UNUSED, void *arg)
{
	struct client *cl = arg;

	if (cl->state == CL_ACTIVE)
		link_pump_client(cl);
	else if (cl->state == CL_IDLE)
		link_wake_from_idle(cl);
}

/* A read waits for a replica to replay its floor: look again shortly, after a fresh probe. */
static void link_wait_catch_up(struct client *cl)
{
	struct backend *nearest = router_pick(rt->topo, rt->cfg, TARGET_RO);

	if (cl->catch_up_since_ms == 0) {
		cl->catch_up_since_ms = now_ms();
		cl->pool->stats.catch_up_count++;
	}
	if (nearest != NULL && nearest->role == ROLE_REPLICA)
		health_probe_now(nearest);
	if (cl->catch_up_timer == NULL)
		cl->catch_up_timer = CHECK_ALLOC(evtimer_new(rt->base, link_on_catch_up_timer, cl));
	timer_add_ms(cl->catch_up_timer, CATCH_UP_POLL_MS);
}

/* The wait for a replica is over (served, or given up on): counted. */
static void link_end_catch_up(struct client *cl, bool is_given_up)
{
	if (cl->catch_up_since_ms == 0)
		return;
	cl->pool->stats.catch_up_time_us += (uint64_t)(now_ms() - cl->catch_up_since_ms) * 1000;
	cl->pool->stats.catch_up_fallbacks += is_given_up;
	cl->catch_up_since_ms = 0;
}

/*
 * Where the request at the head of cl's input runs (*replica: which one). A
 * request not known to read marks the session writing: its commit's LSN is
 * asked for before the client hears ReadyForQuery.
 */
static enum split_route link_route_request(struct client *cl, struct backend **replica)
{
	const struct server *mine =
		cl->server != NULL && link_is_read_side(cl, cl->server)   ? cl->server
		: cl->parked != NULL && link_is_read_side(cl, cl->parked) ? cl->parked
		: cl->target == TARGET_RO                                 ? cl->server
									  : NULL;
	struct read_floor floor;
	bool is_behind, may_write;

	*replica = NULL;
	/* The read-only port reads whatever it runs. */
	if (cl->target == TARGET_RW && !link_request_is_read(cl, &may_write)) {
		link_end_catch_up(cl, false);
		cl->is_writing = cl->is_writing || may_write;
		return ROUTE_PRIMARY;
	}
	if (cl->is_split_fallback || cl->is_lsn_unknown) {
		cl->pool->stats.primary_reads++;
		return ROUTE_PRIMARY;
	}
	link_read_floor(cl, &floor);
	*replica = router_pick_caught_up(rt->topo, rt->cfg, &floor,
					 mine != NULL ? mine->backend : NULL, &is_behind);
	if (*replica != NULL) {
		link_end_catch_up(cl, false);
		cl->pool->stats.replica_reads++;
		return ROUTE_REPLICA;
	}
	if (is_behind && (cl->catch_up_since_ms == 0 ||
			  now_ms() - cl->catch_up_since_ms < rt->cfg->read_your_writes_timeout_ms))
		return ROUTE_WAIT;
	link_end_catch_up(cl, is_behind);
	cl->pool->stats.primary_reads++;
	return ROUTE_PRIMARY;
}

/* Whether sv (parked as of version) can serve on backend b (NULL: the primary) as it is. */
static bool link_fits(const struct client *cl, const struct server *sv, uint64_t version,
		      const struct backend *b)
{
	if (b == NULL)
		b = router_pick(rt->topo, rt->cfg, TARGET_RW);
	return b != NULL && sv->backend == b && sv->state == SV_ACTIVE &&
	       version == session_state_version(cl->session);
}

/*
 * cl has no current server: its parked one serves on b (NULL: the primary)
 * if it fits; one of that side that doesn't goes. True when it serves.
 */
static bool link_take_parked(struct client *cl, const struct backend *b)
{
	struct server *sv = cl->parked;

	if (sv == NULL)
		return false;
	if (!link_fits(cl, sv, cl->parked_version, b)) {
		if (link_is_read_side(cl, sv) == (b != NULL))
			link_drop_parked(cl);
		return false;
	}
	cl->parked = NULL;
	cl->server = sv;
	pool_set_client_state(cl, CL_ACTIVE);
	cl->hold_since_ms = 0;
	conn_read_on(&cl->conn);
	link_pump_client(cl);
	return true;
}

/* A replica's server for cl's reads, from its read-only pool. False: that pool is full. */
static bool link_start_replica(struct client *cl, struct backend *replica)
{
	struct pool *p = pool_sibling(cl->pool, TARGET_RO);
	struct server *sv = pool_take_idle(p, replica, &cl->params);

	if (sv == NULL && !pool_make_room(p, cl))
		return false;
	pool_set_client_state(cl, CL_LOGIN);
	if (sv != NULL)
		link_attach(cl, sv);
	else
		link_connect(cl, p, replica);
	return true;
}

/*
 * The read-only port at an idle point: a session that set a floor
 * (pgwing.min_lsn, pgwing.max_staleness) reads only from a replica that meets
 * it, or from the primary. False: its server was given back, and its next
 * request waits for another (link_request_server routes it).
 */
static bool link_meets_floor(struct client *cl)
{
	const struct backend *b = cl->server->backend;
	struct read_floor floor;
	bool is_behind;

	if (cl->target != TARGET_RO || !link_read_floor(cl, &floor) || b == NULL ||
	    b->role == ROLE_PRIMARY ||
	    router_pick_caught_up(rt->topo, rt->cfg, &floor, b, &is_behind) == b ||
	    (cl->session != NULL && session_state_unmovable(cl->session) != NULL))
		return true;
	link_release_if_movable(cl);
	return false;
}

/*
 * An idle point of a split session with its next request buffered: the
 * server it should run on is put in place. True when it is and the pump may
 * go on; false when the request waits (it resumes by itself).
 */
static bool link_place_request(struct client *cl)
{
	struct backend *replica;
	enum split_route route = link_route_request(cl, &replica);
	bool is_on_replica = link_is_read_side(cl, cl->server);
	struct server *other = cl->parked;

	if (route == ROUTE_WAIT) {
		link_wait_catch_up(cl);
		return false;
	}
	if (route == ROUTE_REPLICA ? is_on_replica && cl->server->backend == replica
				   : !is_on_replica)
		return true;
	if (is_on_replica == (route == ROUTE_REPLICA)) {
		/* Another replica serves the reads now: this one goes back. */
		link_let_go(cl, cl->server, session_state_version(cl->session));
		cl->server = NULL;
	} else {
		/* The current server parks; the parked one serves if it fits, else goes. */
		uint64_t other_version = cl->parked_version;
		bool is_fit = other != NULL && link_fits(cl, other, other_version, replica);

		cl->parked = cl->server;
		cl->parked_version = session_state_version(cl->session);
		cl->server = NULL;
		if (is_fit) {
			cl->server = other;
			return true;
		}
		if (other != NULL)
			link_let_go(cl, other, other_version);
	}
	cl->is_request_placed = true;
	link_request_routed(cl, route, replica);
	return false;
}

/*
 * The client needs a server (a split session's request, routed: on replica,
 * or the primary when NULL): the parked one, a pooled or new one, or a wait
 * in the queue.
 */
static void link_request_routed(struct client *cl, enum split_route route, struct backend *replica)
{
	struct backend *b = NULL;
	struct client *victim;

	if (route == ROUTE_WAIT) {
		link_wait_catch_up(cl);
		return;
	}
	if (cl->hold_since_ms == 0) {
		cl->hold_since_ms = now_ms();
		cl->last_connect_error[0] = '\0';
	}
	if (!pool_is_paused(cl->pool)) {
		if (cl->target == TARGET_RW && replica != NULL &&
		    (link_take_parked(cl, replica) || link_start_replica(cl, replica)))
			return;
		if (link_take_parked(cl, NULL))
			return;
		link_wake_for(cl->target);
		/* The read-only port with a floor: a replica that meets it, else the primary. */
		b = cl->target == TARGET_RW || route == ROUTE_ANY
			    ? router_pick(rt->topo, rt->cfg, cl->target)
		    : replica != NULL ? replica
				      : router_pick(rt->topo, rt->cfg, TARGET_RW);
		if (b == NULL)
			health_note_client_held();
	}
	/*
	 * First come, first served: while others wait, cl queues behind them. A
	 * server given back for the waiters is pooled, then handed out from the
	 * loop (pool.c serves its queue soon); the session that gave it back, its
	 * next request read in between, must not take it back, or the waiters it
	 * was given back for never get it.
	 */
	if (b != NULL && cl->pool->nwaiting == 0 && link_start_server(cl, b))
		return;
	pool_wait(cl);
	/* The pool is full: an idle session gives its server back, as at any idle point. */
	if (b != NULL && (victim = pool_reclaimable_session(cl->pool)) != NULL) {
		log_debug("client %" PRIu64 ": giving its server back, the pool is full",
			  victim->id);
		link_release_if_movable(victim);
	}
}

/* The client needs a server: start one, or wait in the queue. */
static void link_request_server(struct client *cl)
{
	struct backend *replica = NULL;
	enum split_route route = ROUTE_ANY;
	struct read_floor floor;

	if (!pool_is_paused(cl->pool) &&
	    (link_splits(cl) || (cl->target == TARGET_RO && link_read_floor(cl, &floor))) &&
	    conn_input_length(&cl->conn) > 0) {
		route = link_route_request(cl, &replica);
		cl->is_request_placed = route != ROUTE_WAIT;
	}
	link_request_routed(cl, route, replica);
}

/*
 * Serve whoever waits, in arrival order, while the router has somewhere to
 * send them. Only those waiting when the pass began: a connect that fails at
 * once puts its client back at the tail, and must wait for the next pass.
 * Clients waiting to log in are welcomed first if the pool has learned the
 * welcome for their startup parameters meanwhile.
 */
static void link_serve_waiters(struct pool *p)
{
	struct client *cl, *next;

	for (cl = TAILQ_FIRST(&p->waiting); cl != NULL && p->welcome != NULL; cl = next) {
		next = TAILQ_NEXT(cl, pool_link);
		if (cl->cancel_pid == 0 && startup_params_equal(&p->welcome_startup, &cl->params))
			link_welcome(cl, p->welcome);
	}
	for (int n = p->nwaiting; n > 0 && !pool_is_paused(p); n--) {
		struct backend *b;

		cl = TAILQ_FIRST(&p->waiting);
		b = router_pick(rt->topo, rt->cfg, p->target);
		if (cl == NULL || b == NULL || !link_start_server(cl, b))
			break;
	}
}

/*
 * The client's server died. An idle client just loses it (and gets a new one when
 * it speaks); a provably read-only request in flight is run again elsewhere;
 * a session inside a transaction block ends (FATAL 08006: the transaction is
 * gone); anything else in flight gets an error saying its outcome is unknown.
 * what names the backend and the reason.
 */
static void link_lose_server(struct server *sv, const char *what)
{
	struct client *cl = sv->owner;
	struct evbuffer *out = conn_output(&cl->conn);
	const char *unmovable;
	char tx_status;
	bool is_cut, is_idle;

	/*
	 * Lost while asking for a committed write's LSN: the write was answered
	 * but for its ReadyForQuery, which the client gets now; reads go to the
	 * primary until a later write's LSN is known.
	 */
	if (cl->is_asking_lsn) {
		cl->is_asking_lsn = false;
		cl->is_lsn_unknown = true;
		link_note_ready(cl, sv->tx_status);
		proto_put_ready(out, sv->tx_status);
	}
	cl->is_writing = cl->is_lsn_to_pipeline = cl->is_lsn_pipelined = false;
	unmovable = cl->session != NULL ? session_state_unmovable(cl->session) : NULL;
	tx_status = sv->tx_status;
	is_cut = cl->msg_remaining > 0 || sv->msg_remaining > 0;
	is_idle = xact_is_idle(&cl->xact);

	link_drop_server(cl, true);
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
	if (tx_status != PROTO_TX_IDLE) {
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
		link_settle_idle(cl);
		return;
	}
	if (xact_can_retry(&cl->xact) && !cl->xact.is_response_started &&
	    xact_retry_is_read(&cl->xact, cl->session)) {
		/* Never answered, provably read-only, autocommit: run it again elsewhere. */
		log_info("client %" PRIu64 ": %s; retrying its read-only query", cl->id, what);
		link_run_again(cl);
		return;
	}
	log_info("client %" PRIu64 ": %s with a request in flight", cl->id, what);
	client_error(cl, SQLSTATE_CONNECTION_FAILURE,
		     "%s; the outcome of the transaction is unknown", what);
	for (int i = 0; i < cl->xact.pending_syncs; i++)
		proto_put_ready(out, PROTO_TX_IDLE);
	/*
	 * Messages of an unfinished extended request are dropped up to their
	 * Sync, as Postgres does after an error.
	 */
	cl->xact.is_skipping_to_sync = cl->xact.is_mid_request;
	link_reset_request(cl);
	link_settle_idle(cl);
}

static void link_server_lost(struct server *sv, const char *what)
{
	struct client *cl = sv->owner;

	if (sv == cl->parked)
		link_drop_parked(cl); /* an idle session's other server: nothing was lost */
	/* The connection's end changes nothing while its FATAL is judged (link_fatal_judged). */
	else if (!sv->is_awaiting_verdict)
		link_lose_server(sv, what);
}

/*
 * Health answered whether the backend of a server that ended with 57P01
 * still serves. It does: an administrator ended this session
 * (pg_terminate_backend), and the client hears it as Postgres said it, after
 * whatever answer came before, and goes, as it would directly; nothing runs
 * again. It does not (shutting down, gone, another role): the server is lost
 * with its Postgres, and the session moves as for any lost server.
 */
static void link_fatal_judged(void *arg, bool is_serving)
{
	struct server *sv = arg;
	struct client *cl = sv->owner;

	sv->is_awaiting_verdict = false;
	if (!is_serving) {
		server_lost(sv, "lost connection to", sv->last_fatal);
		return;
	}
	log_info("client %" PRIu64 ": its session on backend %s was ended by an administrator: %s",
		 cl->id, sv->backend_name, sv->last_fatal);
	evbuffer_add_buffer(conn_output(&cl->conn), conn_input(&sv->conn));
	sv->is_ending = true; /* its connection is gone: closed, never pooled */
	client_close(cl);
}

/*
 * The server ended with 57P01 (its FATAL, and any answer held before it,
 * still in its input): pg_terminate_backend and a shutdown say the same.
 * Until health tells which (within health_timeout), neither side is read.
 */
static void link_judge_fatal(struct server *sv)
{
	conn_read_off(&sv->conn);
	if (sv->backend != NULL && health_ask_serving(sv->backend, link_fatal_judged, sv)) {
		log_debug("server %" PRIu64 ": %s; asking whether backend %s still serves", sv->id,
			  sv->last_fatal, sv->backend_name);
		return;
	}
	sv->is_awaiting_verdict = false;
	server_lost(sv, "lost connection to", sv->last_fatal);
}

/* Connecting or logging in to a server failed in a way another try may fix: wait and retry. */
static void link_server_unreachable(struct server *sv, const char *what)
{
	struct client *cl = sv->owner;
	bool is_read_side = link_is_read_side(cl, sv);

	/* The pool logs the hold once; each retry is detail. */
	log_debug("client %" PRIu64 ": %s; waiting to try again", cl->id, what);
	snprintf(cl->last_connect_error, sizeof(cl->last_connect_error), "%s", what);
	if (sv->backend != NULL)
		health_probe_now(sv->backend);
	server_close(link_unlink(cl));
	if (is_read_side) {
		/* rw_split: the read runs on the primary rather than wait for this replica. */
		cl->is_split_fallback = true;
		link_request_server(cl);
		return;
	}
	pool_retry_later(cl);
}

/* Logged in: the pool learns the welcome, then the session's state is rebuilt. */
static void link_server_logged_in(struct server *sv)
{
	struct client *cl = sv->owner;

	pool_note_welcome(sv->pool, &cl->params, sv);
	link_restore_or_ready(sv);
}

static void link_server_readable(struct server *sv)
{
	link_pump_server(sv);
}

/* The server's output drained: the client may send again. */
static void link_server_drained(struct server *sv)
{
	struct client *cl = sv->owner;

	if (sv != cl->server)
		return;
	conn_drained(&cl->conn, &sv->conn);
	link_pump_client(cl);
}

/* The server failed for good: the client is told why and closed (its server with it). */
static void link_server_failed(struct server *sv, const char *text)
{
	client_fail(sv->owner, SQLSTATE_CONNECTION_FAILURE, "%s", text);
}

/* Postgres refused the login: its error says it all, verbatim. */
static void link_server_refused(struct server *sv, struct evbuffer *in, size_t len)
{
	struct client *cl = sv->owner;

	evbuffer_remove_buffer(in, conn_output(&cl->conn), len);
	client_close(cl);
}

/* sv is going: its client (if any) no longer has it, nor does its pool. */
static void link_server_gone(struct server *sv)
{
	struct client *cl = sv->owner;

	if (sv->is_awaiting_verdict)
		health_forget_questions(sv);

	if (cl != NULL && cl->parked == sv) {
		server_detach(sv);
		cl->parked = NULL;
	} else if (cl != NULL) {
		link_unlink(cl);
	}
	pool_forget_server(sv);
}

static const struct server_ops link_server_ops = {
	.logged_in = link_server_logged_in,
	.ready = link_server_ready,
	.readable = link_server_readable,
	.drained = link_server_drained,
	.lost = link_server_lost,
	.unreachable = link_server_unreachable,
	.failed = link_server_failed,
	.refused = link_server_refused,
	.reset_done = pool_park_server,
	.gone = link_server_gone,
};

/*
 * Logged in (as far as pgwing is concerned): a client whose pool knows the
 * welcome for its startup parameters is welcomed with it and gets a server
 * only when it first speaks: an idle client holds no Postgres backend.
 */
static void link_client_logged_in(struct client *cl)
{
	struct param_set *welcome = pool_add_client(cl);

	if (welcome != NULL)
		link_welcome(cl, welcome);
	else
		link_request_server(cl);
}

static void link_client_readable(struct client *cl)
{
	switch (cl->state) {
	case CL_ACTIVE:
		link_pump_client(cl);
		break;
	case CL_IDLE:
		link_wake_from_idle(cl);
		if (cl->state == CL_WAITING || cl->state == CL_LOGIN)
			client_hold_input(cl);
		break;
	default:
		/*
		 * A client waits for ReadyForQuery before it speaks; if it speaks
		 * anyway, the bytes wait in the buffer until a server is ready.
		 */
		client_hold_input(cl);
		break;
	}
}

/* The client's output drained: the server may send again. */
static void link_client_drained(struct client *cl)
{
	struct server *sv = cl->server;

	if (sv == NULL || cl->state != CL_ACTIVE)
		return;
	conn_drained(&sv->conn, &cl->conn);
	/* Data may have arrived while reading was off. */
	link_pump_server(sv);
}

/* The client is closing: its server goes back (or is closed), and it leaves its pool. */
static void link_client_detach(struct client *cl)
{
	if (cl->parked != NULL)
		link_drop_parked(cl);
	if (cl->server != NULL)
		link_give_back_server(cl);
	if (cl->catch_up_timer != NULL) {
		event_free(cl->catch_up_timer);
		cl->catch_up_timer = NULL;
	}
	pool_forget_client(cl);
}

/* Handed over by the process before us: idle in its pool, like a session between servers. */
static void link_client_adopted(struct client *cl)
{
	/* Its last write's LSN stayed with the process before us: its reads go to the primary until
	 * its next write. */
	cl->is_lsn_unknown = true;
	pool_add_client(cl);
	link_settle_idle(cl);
}

static const struct client_ops link_client_ops = {
	.logged_in = link_client_logged_in,
	.readable = link_client_readable,
	.drained = link_client_drained,
	.detach = link_client_detach,
	.adopted = link_client_adopted,
};

void link_set_handover(bool (*take)(struct client *cl))
{
	handover = take;
}

static const struct pool_ops link_pool_ops = {
	.serve_waiters = link_serve_waiters,
	.retry = link_on_topology_change,
};

void link_init(const struct runtime *runtime)
{
	rt = runtime;
	client_set_ops(&link_client_ops);
	pool_set_ops(&link_pool_ops);
}

/*
 * The active sessions (with a server or logging one in) of database's pools
 * (NULL: all) for which keep holds, in an array to free: handling one may
 * release or start others' servers, moving them between the pools' lists.
 * Closed ones stay in memory until the loop reaps them (free_later), so the
 * array holds no dangling pointer while its caller runs.
 */
static size_t link_collect(const char *database, bool (*keep)(const struct client *cl),
			   struct client ***out)
{
	struct client **found = NULL;
	size_t n = 0, cap = 0;

	for (struct pool *p = pool_first(); p != NULL; p = p->next) {
		struct client *cl;

		if (database != NULL && strcmp(p->database, database) != 0)
			continue;
		TAILQ_FOREACH (cl, &p->active, pool_link) {
			if (!keep(cl))
				continue;
			if (n == cap) {
				cap = cap == 0 ? 16 : cap * 2;
				found = xrealloc(found, cap * sizeof(*found));
			}
			found[n++] = cl;
		}
	}
	*out = found;
	return n;
}

/*
 * At an idle point with its server: in no transaction, nothing in flight, not
 * even the first messages of an extended-protocol request (a Parse whose Bind
 * is still to come, an Execute followed by Flush instead of Sync): moving
 * then would lose the unnamed statement, or the query running.
 */
static bool link_is_idle_with_server(const struct client *cl)
{
	return cl->state == CL_ACTIVE && cl->server->tx_status == PROTO_TX_IDLE &&
	       !cl->server->is_awaiting_verdict && !cl->server->is_checking &&
	       xact_may_move(&cl->xact);
}

void link_release_idle(const char *database)
{
	struct client **idle;
	size_t n = link_collect(database, link_is_idle_with_server, &idle);

	for (size_t i = 0; i < n; i++)
		if (link_is_idle_with_server(idle[i]))
			link_keeps_server(idle[i]);
	free(idle);
}

/*
 * query_start_us moves at every request and every answer: the last activity.
 * A session that can't move (temp tables, ...) would lose its state, unless
 * a check finds that gone (link_needs_check: asked once), and one that
 * listens would get a server back at once.
 */
static bool link_is_timed_out(const struct client *cl)
{
	const struct session_state *st = cl->session;
	bool may_unpin = st != NULL && session_state_unmovable(st) != NULL &&
			 !session_state_is_listening(st) && link_is_idle_with_server(cl) &&
			 cl->server->state == SV_ACTIVE && link_needs_check(cl);

	return (pool_can_take_back(cl) || may_unpin) &&
	       cl->query_start_us < now_us() - rt->cfg->server_idle_timeout_ms * 1000;
}

void link_release_timed_out(void)
{
	struct client **idle;
	size_t n;

	if (rt->cfg->server_idle_timeout_ms == 0)
		return;
	n = link_collect(NULL, link_is_timed_out, &idle);
	for (size_t i = 0; i < n; i++) {
		if (!link_is_timed_out(idle[i]))
			continue;
		log_debug("client %" PRIu64 ": releasing its server, idle for %" PRId64 " ms",
			  idle[i]->id, (now_us() - idle[i]->query_start_us) / 1000);
		link_release_if_movable(idle[i]);
	}
	free(idle);
}

/*
 * Why b must no longer serve a session of a pool of target, even one in the
 * middle of a transaction; NULL while it may finish what it started there.
 * A fenced or demoted primary has lost its writes' future: a COMMIT there
 * would be acknowledged and then lost. A down backend has stopped answering:
 * waiting on it would hang its sessions until it comes back, if ever.
 */
static const char *link_why_abandon(enum target target, const struct backend *b)
{
	/* Removed by a reload is not known to be wrong: its sessions end as they go. */
	if (b == NULL)
		return NULL;
	if (b->state == BACKEND_DOWN || b->state == BACKEND_ASLEEP)
		return "it is unreachable (its health probes failed)";
	if (b->is_fenced)
		return "it was fenced (a primary on a newer timeline exists)";
	if (target == TARGET_RW && b->role == ROLE_REPLICA)
		return "it was demoted (it is a replica now)";
	return NULL;
}

/*
 * Why cl's server must be given up now, or NULL: cl has something under way
 * (a transaction, a request, a login) on a backend that must no longer serve
 * it. A login counts: one that finished on a fenced primary would let a
 * transaction start there after the change that fenced it. An idle session
 * just moves: that is link_release_idle's part.
 */
static const char *link_why_abandon_server(const struct client *cl)
{
	const struct server *sv = cl->server;

	if (sv == NULL || (cl->state != CL_ACTIVE && cl->state != CL_LOGIN) ||
	    (sv->state == SV_ACTIVE && sv->tx_status == PROTO_TX_IDLE && xact_is_idle(&cl->xact)))
		return NULL;
	return link_why_abandon(link_server_target(cl), sv->backend);
}

static bool link_must_abandon(const struct client *cl)
{
	return link_why_abandon_server(cl) != NULL;
}

/*
 * End at once what sessions have under way on backends that must no longer
 * serve them. Closing a server makes Postgres roll back its open transaction,
 * and the client hears of it as of a lost server (a read in flight runs again
 * elsewhere, a transaction ends with 08006).
 */
static void link_end_on_lost_backends(void)
{
	struct client **doomed;
	size_t n = link_collect(NULL, link_must_abandon, &doomed);

	for (size_t i = 0; i < n; i++) {
		/* Asked again: handling an earlier one may have ended or moved this one. */
		const char *why = link_why_abandon_server(doomed[i]);

		if (why == NULL)
			continue;
		log_info("client %" PRIu64 ": ending what it has under way on backend %s: %s",
			 doomed[i]->id, doomed[i]->server->backend_name, why);
		server_abandon(doomed[i]->server, why);
	}
	free(doomed);
}

void link_on_topology_change(void *arg UNUSED)
{
	link_end_on_lost_backends();
	for (struct pool *p = pool_first(); p != NULL; p = p->next) {
		pool_prune_idle(p);
		link_serve_waiters(p);
	}
	link_release_idle(NULL);
}

void link_on_backend_removed(struct backend *b)
{
	for (struct pool *p = pool_first(); p != NULL; p = p->next) {
		struct client *cl;

		TAILQ_FOREACH (cl, &p->active, pool_link) {
			if (cl->server != NULL && cl->server->backend == b)
				server_forget_backend(cl->server);
			if (cl->parked != NULL && cl->parked->backend == b)
				server_forget_backend(cl->parked);
		}
	}
	pool_on_backend_removed(b);
}
