/*
 * Statement classification: what pgwing needs to know about SQL text to move
 * a session safely. Pure code over strings, no allocation in the classifier.
 */
#ifndef PGWING_CLASSIFY_H
#define PGWING_CLASSIFY_H

#include "pgwing/common.h"

enum stmt_class {
	STMT_OTHER,     /* may write, or can't be proven read-only: never retried */
	STMT_READ,      /* provably read-only: safe to retry outside a transaction */
	STMT_TX,        /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ... */
	STMT_SESSION,   /* session state that can be replayed on another server */
	STMT_UNMOVABLE, /* session state that can't move (temp table, WITH HOLD cursor, session
			   lock) */
};

/* What a STMT_SESSION statement does to the session's replayable state. */
enum session_op {
	SESSION_NONE,
	SESSION_SET,            /* SET [SESSION] name ... (key: name, lowercased) */
	SESSION_RESET,          /* RESET name (key) */
	SESSION_RESET_ALL,      /* RESET ALL */
	SESSION_LISTEN,         /* LISTEN channel (key: channel as the server sees it) */
	SESSION_UNLISTEN,       /* UNLISTEN channel (key) */
	SESSION_UNLISTEN_ALL,   /* UNLISTEN * */
	SESSION_PREPARE,        /* PREPARE name ... (key) */
	SESSION_DEALLOCATE,     /* DEALLOCATE [PREPARE] name (key) */
	SESSION_DEALLOCATE_ALL, /* DEALLOCATE ALL */
	SESSION_DISCARD_ALL,    /* DISCARD ALL: clears everything */
};

#define STMT_KEY_MAX 64 /* NAMEDATALEN */

struct stmt_info {
	enum stmt_class cls;
	enum session_op op;
	char key[STMT_KEY_MAX]; /* name or channel, normalized as Postgres would (unquoted:
				   lowercased) */
	size_t start;           /* the statement's text within the query string */
	size_t len;
	const char *reason; /* STMT_UNMOVABLE: e.g. "a temporary table" (static string) */
	/*
	 * STMT_UNMOVABLE: what it leaves is seen on the server while it lasts (a
	 * temporary object, a session advisory lock, a WITH HOLD cursor, a
	 * setting pg_settings lists made with set_config), so a check there
	 * (capture.h) tells when it is gone or takes its value; a custom setting
	 * or a loaded library is not.
	 */
	bool is_seen_by_check;
	/*
	 * It calls code of the database's own (a function that is not one of
	 * Postgres's built-in read-only ones, DO, CALL, EXECUTE), which may make
	 * session state no statement shows.
	 */
	bool runs_code;
};

/*
 * Split a simple-query string into statements (on ';' outside quotes, dollar
 * quotes and comments) and classify each. Fills up to max entries and returns
 * how many statements there are (may exceed max). Empty statements are skipped.
 */
size_t classify_query(const char *sql, size_t len, struct stmt_info *out, size_t max);

/* The class of a whole query string: READ only if every statement is READ. */
enum stmt_class classify_query_class(const char *sql, size_t len);

/*
 * Cheap questions for the data path, which sees every Query but seldom needs
 * the full answer. Each false is certain; true means "classify to know".
 * classify_may_read: the first statement starts like a query that may be READ
 * (and there is one). classify_may_keep_state: a word some STMT_SESSION or
 * STMT_UNMOVABLE statement needs appears in the text, in any case.
 */
bool classify_may_read(const char *sql, size_t len);
bool classify_may_keep_state(const char *sql, size_t len);

/*
 * Postgres's settings by name (the key as stmt_info holds it, lowercase):
 * custom ones have a dot ("myapp.user"); role and session_authorization are
 * the session's identity, which RESET ALL keeps; the settings pg_settings
 * lists (where a check of the server reads them, capture.h) are the others.
 */
bool classify_setting_is_custom(const char *key);
bool classify_setting_is_identity(const char *key);
bool classify_setting_is_listed(const char *key);

/* Some statement of the query string runs code (stmt_info's runs_code). */
bool classify_query_runs_code(const char *sql, size_t len);

/*
 * Statements after which a login made before serves the next session wrong,
 * or is in the statement's way: ALTER DATABASE d SET/RESET and ALTER
 * ROLE/USER r [IN DATABASE d] SET/RESET change the defaults a login gets
 * (r or d NULL: any; ALL and CURRENT_USER count as any role), and DROP
 * DATABASE d, ALTER DATABASE d RENAME, CREATE DATABASE ... TEMPLATE d fail
 * while any session is connected to d. For each in the query string,
 * found(arg, d, r); names as Postgres folds them.
 */
void classify_login_changes(const char *sql, size_t len,
			    void (*found)(void *arg, const char *database, const char *role),
			    void *arg);

#endif
