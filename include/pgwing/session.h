/*
 * The replayable state of a client's session: what it SET, LISTENed to and
 * PREPAREd in SQL, and the named prepared statements it created with Parse.
 * Replayed on a new server when a session moves (failover, re-routing). Pure
 * code over buffers; the connection code decides when to record and replay.
 */
#ifndef PGWING_SESSION_H
#define PGWING_SESSION_H

#include "pgwing/classify.h"

struct evbuffer;
struct session_state;

struct session_state *session_state_new(void);
void session_state_free(struct session_state *st);

/*
 * Record one successfully executed statement (sql is the whole query string,
 * NUL-terminated, info locates the statement in it; is_alone: it is the
 * query's only statement). SET replaces an earlier SET of the same name,
 * RESET/UNLISTEN/DEALLOCATE remove, the *_ALL ops and DISCARD ALL clear. A
 * STMT_UNMOVABLE statement marks the session unmovable with its reason; other
 * classes change nothing. DISCARD ALL also clears the unmovable reason (it
 * drops temp tables, WITH HOLD cursors and advisory locks).
 */
void session_state_apply(struct session_state *st, const struct stmt_info *info, const char *sql,
			 bool is_alone);

/* A Parse message ('P', whole message with header) for a named statement; replaces one of the same
 * name. */
void session_state_note_parse(struct session_state *st, const char *name, const uint8_t *msg,
			      size_t len);
/* The query text of the named statement name, as its Parse gave it; NULL if none. */
const char *session_state_statement_text(const struct session_state *st, const char *name);
/* A named statement's text calls code (classify_query_runs_code); false for NULL. */
bool session_state_runs_code(const struct session_state *st);
/*
 * The number of changes st has seen (0 for NULL): two servers that ran the
 * session's statements up to the same version hold the same state.
 */
uint64_t session_state_version(const struct session_state *st);
/* The recorded SET of name (lowercased), as the client wrote it; NULL if none. */
const char *session_state_set_text(const struct session_state *st, const char *name);
/* A Close of a named statement. */
void session_state_note_close(struct session_state *st, const char *name);

/* A reason the session can't move (first one wins); NULL when it can. */
void session_state_mark_unmovable(struct session_state *st, const char *reason);
const char *session_state_unmovable(const struct session_state *st);
/*
 * The same, for state a check of the server (capture.h) sees while it lasts
 * (a temporary object, a session advisory lock, a WITH HOLD cursor): a check
 * that finds none of it lifts the pin (session_state_unpin).
 */
void session_state_mark_pinned_while_seen(struct session_state *st, const char *reason);
/* Every reason the session was pinned for is of that kind: a check can tell when it is gone. */
bool session_state_pin_is_checkable(const struct session_state *st);
/* A check found nothing that pins the session: it may move again. */
void session_state_unpin(struct session_state *st);

/*
 * A setting the session set, as its server shows it (capture.h). key: its
 * name, lowercased; sql: the statement that gives it that value
 * (SELECT pg_catalog.set_config(name, value, false)); is_exact: false for a
 * value the server shows rounded (a floating-point one, as %g).
 */
struct session_setting {
	char key[STMT_KEY_MAX];
	char *sql;
	bool is_exact;
};
/*
 * The settings the session set, all that its server lists (all but custom,
 * dotted names and the identity: role, session_authorization, which only
 * the record holds): the record takes their values, each in place of the
 * statements that set it, so a value changed out of sight (in a function, by
 * an extended-protocol SET, back by ROLLBACK TO SAVEPOINT) moves as it is,
 * and DateStyle's merged halves as one. A setting the record lacks is added
 * after the others. One whose value is not exact keeps its statements.
 * Returns NULL when done; else, changing nothing, why the record can't be
 * made exact: a setting made out of sight with an inexact value, or under a
 * role the session set (its privileges may not be the login role's), or one
 * the record sets that the server no longer lists (reset out of sight, or
 * not shown to the session's role).
 */
const char *session_state_take_settings(struct session_state *st,
					const struct session_setting *settings, size_t n);

/* What st records of the state a check counts on the server. */
struct session_counts {
	uint32_t listens;
	uint32_t sql_prepares;      /* PREPARE */
	uint32_t protocol_prepares; /* named Parse */
};
void session_state_count(const struct session_state *st, struct session_counts *out);

/* Nothing to replay and nothing that keeps the session in place. */
bool session_state_is_empty(const struct session_state *st);
/*
 * Its state is settings (SET, RESET) and protocol-level prepared statements
 * alone, nothing pinned (none at all counts): a server that ran nothing else
 * for it holds exactly what st records.
 */
bool session_state_is_exact(const struct session_state *st);
/* It records a protocol-level prepared statement. */
bool session_state_has_statements(const struct session_state *st);
/* A copy of st (NULL when st is empty): what a server given back without a reset holds. */
struct session_state *session_state_copy(const struct session_state *st);
/* A session that LISTENs needs a server even while idle, or notifications can't reach it. */
bool session_state_is_listening(const struct session_state *st);

/*
 * Append what rebuilds st (NULL: an empty session) on a server that holds
 * held (an exact state, session_state_is_exact; NULL: a fresh or reset
 * server). Settings: when held's differ from st's (not the same statements
 * in the same order), first one request resetting them (RESET SESSION
 * AUTHORIZATION; RESET ALL), and later st's again; when they are the same,
 * nothing. Prepared statements: one request closing those of held that st
 * does not hold as they are (same name, same Parse message). Then a simple
 * Query for each of st's SQL statements (unless the settings are the same),
 * in order, then each Parse message of st that held lacks, with a Sync of its
 * own. Returns the number of requests (and of ReadyForQuery messages the
 * server will answer with): 0 when the server holds st already. plan (if not
 * NULL) says which of the requests were sent, for
 * session_state_forget_unreplayable.
 */
struct session_replay {
	bool resets_settings; /* the first request resets held's settings */
	bool closes;          /* the next closes statements held has and st has not */
	bool replays_sql;     /* st's SQL statements are sent (the settings differed) */
};
int session_state_replay(const struct session_state *st, const struct session_state *held,
			 struct session_replay *plan, struct evbuffer *out);
/*
 * The replay's request i (as session_state_replay(st, held) counted them in
 * plan, over the requests still recorded) failed on the new server. A prepared
 * statement is forgotten (true): the session goes on without it, as a direct
 * one whose statement's table was dropped does until it runs the statement.
 * Anything else (false) leaves the session different from what it was: it
 * can't be carried.
 */
bool session_state_forget_unreplayable(struct session_state *st, const struct session_state *held,
				       const struct session_replay *plan, size_t i);

/*
 * The state in a form another pgwing process reads back (a takeover hands a
 * client over with it): the recorded statements and Parse messages, in order.
 * False, with nothing written, for a session that can't move.
 */
bool session_state_serialize(const struct session_state *st, struct evbuffer *out);
/*
 * What session_state_serialize wrote, checked as it is read (lengths, kinds,
 * each Parse message's framing and name, the replay caps); NULL if anything is
 * off. data comes from another process: no length in it is trusted.
 */
struct session_state *session_state_deserialize(const void *data, size_t len);

#endif
