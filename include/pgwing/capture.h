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

#include "pgwing/session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The query: a simple Query of two statements, answered with one row of the
 * state's summary, then a row per setting the session set.
 */
extern const char CAPTURE_QUERY[];

#define CAPTURE_NAME_MAX     64   /* NAMEDATALEN */
#define CAPTURE_SETTINGS_MAX 512  /* more than Postgres has: a row past it is no answer */
#define CAPTURE_VALUE_MAX    8192 /* the longest setting statement read (a long search_path) */
#define CAPTURE_BYTES_MAX    (256 * 1024) /* all of them: what one check may hold */

struct capture {
	bool has_summary;      /* the first row came */
	bool has_temp_schema;  /* the backend has a temp schema (a reset does not take it away) */
	bool has_temp_objects; /* any object in it: a table, a view, a function, a type, ... */
	uint32_t advisory_locks;
	uint32_t cursors; /* open at an idle point: WITH HOLD */
	uint32_t listens;
	uint32_t sql_prepares;      /* PREPARE */
	uint32_t protocol_prepares; /* named Parse */
	bool has_role;              /* SET ROLE (current_setting('role') is not none) */
	char session_user[CAPTURE_NAME_MAX];
	/* The settings whose source is the session, as statements that set them (pg_settings). */
	struct session_setting *settings;
	size_t nsettings;
	size_t bytes; /* of their statements */
};

/*
 * A DataRow body of CAPTURE_QUERY's answer, into cap (zeroed before the
 * first): the summary, then the settings. False if it is not the row
 * expected next (columns, NULLs, numbers, lengths): the server's state is
 * then unknown.
 */
bool capture_read_row(struct capture *cap, const uint8_t *body, size_t len);
/* Frees what cap holds and zeroes it, for the next answer. */
void capture_clear(struct capture *cap);

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
 * Judge a whole answer (has_summary) against st, the session's record; when
 * the session may move, the record takes the server's values of its
 * settings (session_state_take_settings), so what a move replays is what the
 * server had. login_user: who the server logged in as (its session user
 * unless it SET SESSION AUTHORIZATION).
 */
void capture_settle(const struct capture *cap, struct session_state *st, const char *login_user,
		    struct capture_verdict *out);

#endif
