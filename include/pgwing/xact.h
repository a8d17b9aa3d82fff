/*
 * The request tracker of one session: what the client asked that its server
 * has not answered yet, whether that may run again elsewhere if the server
 * dies before answering, and the session statements it ran, recorded into the
 * session state once they are sure to stay. Pure: it sees the messages the
 * pump looks into (client.c's and server.c's callers pass them on), never a
 * connection.
 */
#ifndef PGWING_XACT_H
#define PGWING_XACT_H

#include "pgwing/session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xact {
	int pending_syncs;        /* Query/Sync/FunctionCall sent, ReadyForQuery not yet back */
	bool is_response_started; /* the server has sent something for the request in flight */
	bool has_request_failed;  /* an ErrorResponse came for the request in flight */
	bool is_mid_request;      /* extended-protocol messages sent since the last Sync */
	bool is_skipping_to_sync; /* its server died mid-request: drop messages up to Sync */
	bool is_copying_in;       /* in COPY FROM STDIN: the server waits for its data */
	bool is_keeping;          /* copying an extended-protocol request for a retry */
	/*
	 * The request in flight as the client sent it (a Query, or Parse, Bind,
	 * Describe, Execute up to its Sync) when it may be safe to run again:
	 * retry_len bytes of a buffer of retry_cap, kept from one request to the
	 * next (xact.c says how long).
	 */
	uint8_t *retry;
	size_t retry_len;
	size_t retry_cap;
	/* Session statements of the request in flight, recorded once it succeeds. */
	char *pending_session_sql;
	size_t pending_session_len;
	bool is_session_sql_over;   /* the request in flight set more than max_session_sql_size */
	bool is_partly_rolled_back; /* its transaction went on after an error or ROLLBACK TO */
	/*
	 * The unnamed statement was parsed and not executed yet (psql's \gdesc
	 * parses, then describes in a request of its own): it lives on this
	 * server until the next Parse of it or simple Query, so the session must
	 * not move before it is executed.
	 */
	bool is_unnamed_parsed;
};

/* Frees what x holds (x itself is embedded in its client). */
void xact_free(struct xact *x);

/*
 * A request (Query, Sync, FunctionCall) goes to the server: one ReadyForQuery
 * will answer it. Returns true when it is the first one in flight.
 */
bool xact_begin_request(struct xact *x);
/*
 * A simple Query's text (without its NUL), sent while the server's
 * transaction status was tx_status: kept for a retry when it may run again
 * (outside a transaction, the only request in flight, read-only), and its
 * session statements noted, up to max_session_sql bytes in one transaction.
 */
void xact_note_query(struct xact *x, const char *sql, size_t len, char tx_status,
		     size_t max_session_sql);
/*
 * An extended-protocol message (Parse, Bind, Describe, Execute, Close; body
 * without header) sent while the server's transaction status was
 * tx_status. A request that starts with nothing else in flight, outside a
 * transaction block, is copied up to its Sync, to run again elsewhere if its
 * server dies before answering (a Close, or one too large, is not).
 */
void xact_note_extended(struct xact *x, char type, const uint8_t *body, size_t len, char tx_status);
/* Sync: the end of an extended request, and one more ReadyForQuery owed (as xact_begin_request). */
bool xact_note_sync(struct xact *x);
/*
 * Flush or FunctionCall: answers may reach the client before any Sync, so
 * the request can't run again unseen.
 */
void xact_stop_keeping(struct xact *x);
/*
 * A Parse ('P') or Close ('C') body: named statements are recorded in
 * *session (created when needed) so they can be made again on another server.
 */
void xact_note_statement(struct xact *x, struct session_state **session, char type,
			 const uint8_t *body, size_t len);
/* A Parse or Close too large to look into: the session can't be rebuilt without it. */
void xact_note_untracked_statement(struct xact *x, struct session_state *session);
/*
 * ReadyForQuery with status: one request answered. Session statements count
 * once they are sure to stay (an autocommit request or a committed
 * transaction), and are recorded in *session (created when needed).
 */
void xact_note_ready(struct xact *x, char status, struct session_state **session);
/* A CommandComplete tag, looked at only while xact_wants_command_tags(). */
void xact_note_command(struct xact *x, const char *tag);
/* An ErrorResponse for the request in flight. */
void xact_note_error(struct xact *x);

/*
 * The kept request is provably read-only: safe to run on another server.
 * Named statements it binds are looked up in session (which a moved
 * session's new server prepares before the request runs again).
 */
bool xact_retry_is_read(const struct xact *x, const struct session_state *session);
/*
 * The kept request is provably read-only but for named statements it
 * prepares or closes (which session records): it leaves no other state on
 * the server.
 */
bool xact_retry_leaves_statements_only(const struct xact *x, const struct session_state *session);
/*
 * The same question of any whole request (a Query, or extended-protocol
 * messages up to and with their Sync), len bytes framed as the client sent
 * them: rw_split asks it before the request goes anywhere.
 */
bool xact_request_is_read(const uint8_t *msgs, size_t len, const struct session_state *session);
/*
 * Whether a whole request (as for xact_request_is_read) may write: false only
 * when it provably cannot (a Query of read-only and session statements --
 * SET, PREPARE, ... -- or extended messages that bind and execute nothing).
 * rw_split asks for the WAL position after a commit only when it may.
 */
bool xact_request_may_write(const uint8_t *msgs, size_t len);
/*
 * A Query of one statement that is no transaction control: sent outside a
 * transaction block it commits by itself, so what is sent right behind it
 * runs after its commit.
 */
bool xact_request_commits_alone(const uint8_t *msgs, size_t len);
/* A simple Query's text (without its NUL): every statement provably read-only. */
bool xact_query_is_read(const char *sql, size_t len);
/*
 * A simple Query's text whose statements all set settings (SET, RESET, RESET
 * ALL: what the session records exactly): it leaves the server no state but
 * what its session's record says, and the parameters it reports
 * (ParameterStatus) are those settings'. A read among them could call a
 * function that sets what no record holds: not this.
 */
bool xact_query_only_sets(const char *sql, size_t len);
/* Forget the request in flight: answered (by pgwing) or to be sent again. */
void xact_reset(struct xact *x);

/*
 * The questions the pump asks of every server message are inline: a call
 * into another object file for each costs more than the answer.
 */

/* Whether xact_note_extended needs the body of the next extended message. */
static inline bool xact_is_keeping(const struct xact *x, char tx_status)
{
	return x->is_mid_request ? x->is_keeping : x->pending_syncs == 0 && tx_status == 'I';
}

/* Session statements wait for their request's end: its CommandComplete tags matter. */
static inline bool xact_wants_command_tags(const struct xact *x)
{
	return x->pending_session_sql != NULL;
}

/*
 * The request in flight is an autocommit query that may run again elsewhere
 * if its server dies before answering.
 */
static inline bool xact_can_retry(const struct xact *x)
{
	return x->retry_len > 0 && x->pending_syncs == 1 && !x->is_mid_request;
}

/* Nothing in flight either way: the session is at an idle point. */
static inline bool xact_is_idle(const struct xact *x)
{
	return x->pending_syncs == 0 && !x->is_mid_request;
}

/* An Execute: the unnamed statement, if parsed, has served (see is_unnamed_parsed). */
static inline void xact_note_execute(struct xact *x)
{
	x->is_unnamed_parsed = false;
}

/* At an idle point, and nothing the session still needs lives only on its server. */
static inline bool xact_may_move(const struct xact *x)
{
	return xact_is_idle(x) && !x->is_unnamed_parsed;
}

#endif
