/*
 * A check of what a server's session holds, read from the server itself
 * (its catalogs and settings) before the session moves. A move rebuilds only
 * what the session's record holds (session.c, from the statements pgwing
 * saw); state made where pgwing could not see it (in a function, a DO block,
 * a trigger, an extended-protocol request) would be silently left behind,
 * and state the record still pins the session for may be gone. One query,
 * one row, answered at an idle point; pure code over its answer.
 */
#ifndef PGWING_CAPTURE_H
#define PGWING_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session_state;

/* The query: a simple Query of one statement, answered with one row (CAPTURE_COLUMNS). */
extern const char CAPTURE_QUERY[];

/* Room for the names of the settings the session set, comma-separated. */
#define CAPTURE_SETTINGS_MAX 4096
#define CAPTURE_NAME_MAX     64 /* NAMEDATALEN */

struct capture {
	bool has_temp_schema;  /* the backend has a temp schema (a reset does not take it away) */
	bool has_temp_objects; /* any object in it: a table, a view, a function, a type, ... */
	uint32_t advisory_locks;
	uint32_t cursors; /* open at an idle point: WITH HOLD */
	uint32_t listens;
	uint32_t sql_prepares;      /* PREPARE */
	uint32_t protocol_prepares; /* named Parse */
	bool has_role;              /* SET ROLE (current_setting('role') is not none) */
	char session_user[CAPTURE_NAME_MAX];
	/* Lowercased names of the settings whose source is the session, comma-separated. */
	char settings[CAPTURE_SETTINGS_MAX];
};

/*
 * A DataRow body answering CAPTURE_QUERY, into cap. False if it is not one
 * (columns, NULLs, numbers, lengths): the server's state is then unknown.
 */
bool capture_read_row(struct capture *cap, const uint8_t *body, size_t len);

/* What a check's answer means for the session. */
struct capture_verdict {
	/*
	 * Why the session can't move: what the server holds that the record
	 * does not (or pins), completing "it has ..." (a static string); NULL
	 * when the record holds all of it and nothing pins.
	 */
	const char *pin;
	bool is_pin_seen;     /* pin is of state a later check sees go (a temp object, a lock) */
	bool has_temp_schema; /* the server must not serve another session (cap's) */
};

/*
 * Judge cap against st (NULL: nothing recorded). login_user: who the server
 * logged in as (its session user unless it SET SESSION AUTHORIZATION).
 */
void capture_judge(const struct capture *cap, const struct session_state *st,
		   const char *login_user, struct capture_verdict *out);

#endif
