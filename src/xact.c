/*
 * The request tracker of a session (xact.h). Only a simple Query's text is
 * classified, and only when cheap checks say it must be: for session state,
 * or to rule a retry out early; every Query passes here.
 */
#include "pgwing/xact.h"

#include "pgwing/classify.h"
#include "pgwing/common.h"
#include "pgwing/proto.h"

#include <event2/buffer.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Queries are classified up to this many statements; one with more is never
 * retried, and one that sets session state makes the session unmovable.
 */
#define XACT_MAX_STMTS 32

/*
 * The copy of a retryable Query is kept in a buffer that serves the next one
 * too, so that small queries cost no allocation. A buffer grown past this is
 * freed after its request, and a session that gives its server back keeps
 * none (xact_reset): idle clients hold no retry memory.
 */
#define RETRY_KEEP_MAX 2048

/*
 * An extended request is kept for a retry up to this size (a Query always is,
 * being the client's own buffer's size at most): its answer is held back
 * until complete anyway, to RETRY_HOLD_MAX (link.c).
 */
#define RETRY_EXTENDED_MAX (64 * 1024)

/* Forget the kept Query; its buffer stays for the next one unless it is large or is_final. */
static void retry_forget(struct xact *x, bool is_final)
{
	x->retry_len = 0;
	if (is_final || x->retry_cap > RETRY_KEEP_MAX) {
		free(x->retry);
		x->retry = NULL;
		x->retry_cap = 0;
	}
}

static void session_sql_forget(struct xact *x)
{
	free(x->pending_session_sql);
	x->pending_session_sql = NULL;
	x->pending_session_len = 0;
	x->is_session_sql_over = false;
	x->is_partly_rolled_back = false;
}

void xact_free(struct xact *x)
{
	retry_forget(x, true);
	session_sql_forget(x);
}

bool xact_begin_request(struct xact *x)
{
	bool is_first = x->pending_syncs++ == 0;

	if (is_first) {
		x->is_response_started = false;
		x->has_request_failed = false;
	}
	x->is_mid_request = false;
	x->is_keeping = false; /* a Query in the middle of an extended request ends the copy */
	return is_first;
}

/* Room for need bytes in the retry buffer (what it holds is not kept). */
static void retry_reserve(struct xact *x, size_t need)
{
	if (need > x->retry_cap) {
		free(x->retry); /* nothing in it to keep */
		x->retry = xmalloc(need);
		x->retry_cap = need;
	}
}

/* Keep the Query as the client sent it: header, text, NUL. */
static void retry_keep(struct xact *x, const char *sql, size_t len)
{
	size_t need = PROTO_HEADER_LEN + len + 1;

	retry_reserve(x, need);
	proto_encode_header(x->retry, PqMsg_Query, len + 1);
	memcpy(x->retry + PROTO_HEADER_LEN, sql, len + 1);
	x->retry_len = need;
}

/* Append a message (header, then body) to the kept request; false past the bound. */
static bool retry_append(struct xact *x, char type, const uint8_t *body, size_t len)
{
	size_t need = x->retry_len + PROTO_HEADER_LEN + len;

	if (need > RETRY_EXTENDED_MAX)
		return false;
	if (need > x->retry_cap) {
		x->retry_cap = need > 2 * x->retry_cap ? need : 2 * x->retry_cap;
		x->retry = xrealloc(x->retry, x->retry_cap);
	}
	proto_encode_header(x->retry + x->retry_len, type, len);
	if (len > 0)
		memcpy(x->retry + x->retry_len + PROTO_HEADER_LEN, body, len);
	x->retry_len = need;
	return true;
}

void xact_stop_keeping(struct xact *x)
{
	x->is_keeping = false;
	retry_forget(x, false);
}

void xact_note_extended(struct xact *x, char type, const uint8_t *body, size_t len, char tx_status)
{
	/* The first message of a request: whatever was kept is for another. */
	if (!x->is_mid_request) {
		retry_forget(x, false);
		x->is_keeping = x->pending_syncs == 0 && tx_status == PROTO_TX_IDLE;
	}
	x->is_mid_request = true;
	if (x->is_keeping && (type == PqMsg_Close || !retry_append(x, type, body, len)))
		xact_stop_keeping(x);
}

bool xact_note_sync(struct xact *x)
{
	/* Not keeping this request: a Query's copy kept before is not this request's. */
	if (!x->is_keeping || !retry_append(x, PqMsg_Sync, NULL, 0))
		retry_forget(x, false);
	return xact_begin_request(x);
}

/*
 * Classify a simple Query's statements: whether all are READ (and there are
 * some, no more than can be checked) and whether any sets up session state.
 */
static void query_classify(const char *sql, size_t len, bool *is_read, bool *is_stateful)
{
	struct stmt_info info[XACT_MAX_STMTS];
	size_t n = classify_query(sql, len, info, XACT_MAX_STMTS);

	*is_read = n > 0 && n <= XACT_MAX_STMTS;
	*is_stateful = false;
	for (size_t i = 0; i < n && i < XACT_MAX_STMTS; i++) {
		*is_read = *is_read && info[i].cls == STMT_READ;
		*is_stateful = *is_stateful || info[i].cls == STMT_SESSION ||
			       info[i].cls == STMT_UNMOVABLE;
	}
}

/*
 * Session statements of the request in flight, kept until it ends: each
 * query's text (up to its first NUL: Postgres reads no further) followed by a
 * NUL, so each query is classified on its own (a comment ending one can't
 * swallow the next) and a PREPARE keeps its query's text, as Postgres does.
 * Inside a transaction block several requests add up, to max bytes: past it
 * nothing more is kept (the text stays, empty if need be, so that the end of
 * the transaction is still watched), and a commit pins the session instead.
 */
static void session_sql_keep(struct xact *x, const char *sql, size_t len, size_t max)
{
	size_t have = x->pending_session_len;

	if (x->is_session_sql_over)
		return;
	len = strnlen(sql, len);
	if (have + len + 1 > max) {
		x->is_session_sql_over = true;
		if (x->pending_session_sql == NULL)
			x->pending_session_sql = xstrdup("");
		return;
	}
	x->pending_session_sql = xrealloc(x->pending_session_sql, have + len + 1);
	memcpy(x->pending_session_sql + have, sql, len);
	x->pending_session_sql[have + len] = '\0';
	x->pending_session_len = have + len + 1;
}

/*
 * Whether a kept copy is provably read-only is settled only if its server
 * dies unanswered (xact_retry_is_read).
 */
void xact_note_query(struct xact *x, const char *sql, size_t len, char tx_status,
		     size_t max_session_sql)
{
	x->is_unnamed_parsed = false; /* a simple Query drops the unnamed statement */
	bool may_retry =
		x->pending_syncs == 1 && tx_status == PROTO_TX_IDLE && classify_may_read(sql, len);
	bool is_read = true, is_stateful = false;

	if (classify_may_keep_state(sql, len))
		query_classify(sql, len, &is_read, &is_stateful);
	if (may_retry && is_read)
		retry_keep(x, sql, len);
	else
		retry_forget(x, false);
	if (is_stateful)
		session_sql_keep(x, sql, len, max_session_sql);
}

static struct session_state *session_of(struct session_state **session)
{
	if (*session == NULL)
		*session = session_state_new();
	return *session;
}

/*
 * Session state set through the extended protocol (a SET, a temp table, a
 * lock, a LISTEN in a Parse) is not tracked as the simple protocol's is: the
 * session keeps its server instead of moving without it. A setting Postgres
 * lists (not a custom, dotted one, nor the role) is seen by the check before
 * a move, which takes its value (capture.h): that pin is lifted then.
 */
static void note_parsed_query(struct session_state **session, const char *sql)
{
	struct stmt_info info[XACT_MAX_STMTS];
	size_t len = strlen(sql), n;

	if (!classify_may_keep_state(sql, len))
		return;
	n = classify_query(sql, len, info, XACT_MAX_STMTS);
	for (size_t i = 0; i < n && i < XACT_MAX_STMTS; i++) {
		if (info[i].cls == STMT_UNMOVABLE)
			session_state_apply(session_of(session), &info[i], sql, n == 1);
		else if (info[i].cls == STMT_SESSION && info[i].op == SESSION_SET &&
			 classify_setting_is_listed(info[i].key))
			session_state_mark_pinned_while_seen(session_of(session),
							     "a setting made through the "
							     "extended protocol");
		else if (info[i].cls == STMT_SESSION)
			session_state_mark_unmovable(session_of(session),
						     "session state set through the extended "
						     "protocol");
	}
}

void xact_note_statement(struct xact *x, struct session_state **session, char type,
			 const uint8_t *body, size_t len)
{
	struct proto_reader r;
	const char *name, *sql;

	x->is_mid_request = true;
	proto_reader_init(&r, body, len);
	if (type == PqMsg_Close && proto_read_byte(&r) != PROTO_TARGET_STATEMENT)
		return;
	name = proto_read_cstring(&r);
	if (name == NULL)
		return;
	if (type == PqMsg_Parse && (sql = proto_read_cstring(&r)) != NULL)
		note_parsed_query(session, sql);
	if (name[0] == '\0') {
		/* Not recorded: a session keeps its server until it has executed it. */
		x->is_unnamed_parsed = type == PqMsg_Parse;
		return;
	}
	if (type == PqMsg_Close) {
		session_state_note_close(session_of(session), name);
	} else {
		struct evbuffer *msg = CHECK_ALLOC(evbuffer_new());

		proto_put_message(msg, PqMsg_Parse, body, len);
		session_state_note_parse(session_of(session), name, evbuffer_pullup(msg, -1),
					 evbuffer_get_length(msg));
		evbuffer_free(msg);
	}
}

void xact_note_untracked_statement(struct xact *x, struct session_state *session)
{
	x->is_mid_request = true;
	if (session != NULL)
		session_state_mark_unmovable(session, "a prepared statement too large to track");
}

/* One kept query's statements (of a request that failed: only what outlives it). */
static void session_sql_apply(struct session_state *st, const char *sql, bool is_kept)
{
	struct stmt_info info[XACT_MAX_STMTS];
	size_t n = classify_query(sql, strlen(sql), info, XACT_MAX_STMTS);

	if (is_kept && n > XACT_MAX_STMTS)
		session_state_mark_unmovable(st, "too many statements to track");
	for (size_t i = 0; i < n && i < XACT_MAX_STMTS; i++)
		if (is_kept || info[i].cls == STMT_UNMOVABLE)
			session_state_apply(st, &info[i], sql, n == 1);
}

/*
 * A failed request, a failed transaction or a ROLLBACK leaves no setting
 * behind, as on the server; but what can't move may have outlived it (a
 * session advisory lock stays through a rollback), so that still pins. A
 * ROLLBACK TO SAVEPOINT, or an error the block went on after, undoes some of
 * what the transaction set and not the rest, which the statements alone can't
 * tell apart: that pins too.
 */
static void session_sql_settle(struct xact *x, char tx_status, struct session_state **session)
{
	struct session_state *st;
	bool is_kept = !x->has_request_failed;

	if (x->pending_session_sql == NULL)
		return;
	if (tx_status != PROTO_TX_IDLE) {
		if (x->has_request_failed)
			x->is_partly_rolled_back = true;
		return;
	}
	st = session_of(session);
	if (is_kept && x->is_session_sql_over)
		session_state_mark_unmovable(st, "more session statements in one "
						 "transaction than max_session_sql_size");
	else if (is_kept && x->is_partly_rolled_back)
		session_state_mark_unmovable(st, "session state set in a transaction that rolled "
						 "back to a savepoint");
	for (size_t at = 0; at < x->pending_session_len;
	     at += strlen(x->pending_session_sql + at) + 1)
		session_sql_apply(st, x->pending_session_sql + at, is_kept);
	session_sql_forget(x);
}

void xact_note_ready(struct xact *x, char status, struct session_state **session)
{
	if (x->pending_syncs > 0)
		x->pending_syncs--;
	x->is_copying_in = false;
	session_sql_settle(x, status, session);
	if (x->pending_syncs == 0)
		retry_forget(x, false);
}

void xact_note_command(struct xact *x, const char *tag)
{
	if (strcmp(tag, "ROLLBACK") == 0)
		x->has_request_failed = true; /* what the transaction set up is undone */
}

void xact_note_error(struct xact *x)
{
	x->has_request_failed = true;
}

static bool is_read_query(const char *sql)
{
	return sql != NULL && classify_query_class(sql, strlen(sql)) == STMT_READ;
}

/*
 * A kept extended request runs again only as Parse of the unnamed statement,
 * Bind (of it, or of a named statement prepared earlier), Describe, Execute
 * and Sync, every statement read-only. A named Parse would fail on the new
 * server, which the moved session's replay gave that statement already; with
 * may_prepare, a named Parse (of any text: it runs nothing) and a Close are
 * allowed too, for a request that leaves no state but the statements the
 * session records.
 */
static bool extended_is_read(const uint8_t *msgs, size_t msgs_len,
			     const struct session_state *session, bool may_prepare)
{
	bool is_unnamed_read = false;
	size_t pos = 0;

	while (pos + PROTO_HEADER_LEN <= msgs_len) {
		const uint8_t *msg = msgs + pos;
		uint32_t len = proto_decode_length(msg);
		struct proto_reader r;
		const char *name;

		if (len < 4 || len > msgs_len - pos - 1)
			return false; /* not whole: what it says it holds is not all there */
		proto_reader_init(&r, msg + PROTO_HEADER_LEN, len - 4);
		switch (msg[0]) {
		case PqMsg_Parse:
			name = proto_read_cstring(&r);
			if (name == NULL || (name[0] != '\0' && !may_prepare))
				return false;
			if (name[0] == '\0')
				is_unnamed_read = is_read_query(proto_read_cstring(&r));
			break;
		case PqMsg_Close:
			if (!may_prepare)
				return false;
			break;
		case PqMsg_Bind:
			if (proto_read_cstring(&r) == NULL ||
			    (name = proto_read_cstring(&r)) == NULL)
				return false;
			if (name[0] == '\0' ? !is_unnamed_read
					    : session == NULL ||
						      !is_read_query(session_state_statement_text(
							      session, name)))
				return false;
			break;
		case PqMsg_Describe:
		case PqMsg_Execute:
			break;
		case PqMsg_Sync:
			return pos + 1 + len == msgs_len; /* the request ends with its Sync */
		default:
			return false;
		}
		pos += 1 + len;
	}
	return false; /* cut before its Sync */
}

bool xact_query_is_read(const char *sql, size_t len)
{
	bool is_read, is_stateful;

	query_classify(sql, len, &is_read, &is_stateful);
	return is_read;
}

bool xact_query_only_sets(const char *sql, size_t len)
{
	struct stmt_info info[XACT_MAX_STMTS];
	size_t n = classify_query(sql, len, info, XACT_MAX_STMTS);

	if (n == 0 || n > XACT_MAX_STMTS)
		return false;
	for (size_t i = 0; i < n; i++)
		if (info[i].cls != STMT_SESSION ||
		    (info[i].op != SESSION_SET && info[i].op != SESSION_RESET &&
		     info[i].op != SESSION_RESET_ALL))
			return false;
	return true;
}

bool xact_request_is_read(const uint8_t *msgs, size_t len, const struct session_state *session)
{
	if (len <= PROTO_HEADER_LEN)
		return false;
	if (msgs[0] != PqMsg_Query)
		return extended_is_read(msgs, len, session, false);
	if (msgs[len - 1] != '\0' || 1 + proto_decode_length(msgs) != len)
		return false;
	return xact_query_is_read((const char *)msgs + PROTO_HEADER_LEN,
				  len - PROTO_HEADER_LEN - 1);
}

bool xact_request_may_write(const uint8_t *msgs, size_t len)
{
	struct stmt_info info[XACT_MAX_STMTS];
	size_t n, pos = 0;

	if (len <= PROTO_HEADER_LEN)
		return true;
	if (msgs[0] != PqMsg_Query) {
		/* Parse, Describe, Close and Sync run nothing: only Bind and Execute can. */
		while (pos + PROTO_HEADER_LEN <= len) {
			if (msgs[pos] == PqMsg_Bind || msgs[pos] == PqMsg_Execute ||
			    proto_decode_length(msgs + pos) < 4)
				return true;
			pos += 1 + proto_decode_length(msgs + pos);
		}
		return pos != len;
	}
	if (msgs[len - 1] != '\0' || 1 + proto_decode_length(msgs) != len)
		return true;
	n = classify_query((const char *)msgs + PROTO_HEADER_LEN, len - PROTO_HEADER_LEN - 1, info,
			   XACT_MAX_STMTS);
	if (n == 0 || n > XACT_MAX_STMTS)
		return true;
	for (size_t i = 0; i < n; i++)
		if (info[i].cls != STMT_READ && info[i].cls != STMT_SESSION)
			return true;
	return false;
}

bool xact_request_commits_alone(const uint8_t *msgs, size_t len)
{
	const char *sql = (const char *)msgs + PROTO_HEADER_LEN;
	struct stmt_info info[2];

	/*
	 * Not a COPY: COPY FROM STDIN waits for the client's data, and a query
	 * sent behind it would break the copy.
	 */
	return len > PROTO_HEADER_LEN && msgs[0] == PqMsg_Query && msgs[len - 1] == '\0' &&
	       1 + proto_decode_length(msgs) == len &&
	       classify_query(sql, len - PROTO_HEADER_LEN - 1, info, 2) == 1 &&
	       info[0].cls != STMT_TX &&
	       !(info[0].len >= 4 && strncasecmp(sql + info[0].start, "copy", 4) == 0);
}

bool xact_retry_is_read(const struct xact *x, const struct session_state *session)
{
	return xact_request_is_read(x->retry, x->retry_len, session);
}

bool xact_retry_leaves_statements_only(const struct xact *x, const struct session_state *session)
{
	if (x->retry_len > PROTO_HEADER_LEN && x->retry[0] != PqMsg_Query)
		return extended_is_read(x->retry, x->retry_len, session, true);
	return xact_retry_is_read(x, session);
}

void xact_reset(struct xact *x)
{
	x->pending_syncs = 0;
	x->is_mid_request = false;
	x->is_response_started = false;
	session_sql_forget(x);
	retry_forget(x, true);
}
