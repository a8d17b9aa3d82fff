/*
 * The console's command language: a hand-written tokenizer and parser. Pure
 * (no sockets, no globals), so it is unit-tested and fuzzed on its own.
 *
 * Keywords are case-insensitive; unquoted names fold to lower case and
 * "quoted" ones keep theirs, as in SQL. One command per query, with an
 * optional trailing ';'. SQL comments (-- and C-style) count as blanks.
 */
#ifndef PGWING_ADMIN_PARSE_H
#define PGWING_ADMIN_PARSE_H

#include "pgwing/common.h"

/* Postgres's NAMEDATALEN: no database or setting name is longer. */
#define ADMIN_NAME_MAX  64
#define ADMIN_VALUE_MAX 1024

enum admin_verb {
	ADMIN_EMPTY, /* only blanks, comments or ';' */
	ADMIN_SHOW,
	ADMIN_PAUSE,
	ADMIN_RESUME,
	ADMIN_RELOAD,
	ADMIN_SET,
	ADMIN_RECONNECT,
	ADMIN_KILL,
	ADMIN_KILL_CLIENT,
	ADMIN_SHUTDOWN,
};

enum admin_show {
	ADMIN_SHOW_HELP,
	ADMIN_SHOW_VERSION,
	ADMIN_SHOW_CONFIG,
	ADMIN_SHOW_BACKENDS,
	ADMIN_SHOW_POOLS,
	ADMIN_SHOW_CLIENTS,
	ADMIN_SHOW_SERVERS,
	ADMIN_SHOW_STATS,
	ADMIN_SHOW_LISTS,
	ADMIN_SHOW_STATE,
};

struct admin_command {
	enum admin_verb verb;
	enum admin_show show;
	/* PAUSE, RESUME, RECONNECT, KILL: the database, or "" for all of them. */
	char database[ADMIN_NAME_MAX];
	/* SET name = value */
	char name[ADMIN_NAME_MAX];
	char value[ADMIN_VALUE_MAX];
	uint64_t client_id;    /* KILL_CLIENT */
	bool wait_for_clients; /* SHUTDOWN WAIT_FOR_CLIENTS */
};

/*
 * Parse one query. On failure returns false with a message for the client in
 * err (the caller sends it as 42601).
 */
bool admin_parse(const char *query, struct admin_command *cmd, char *err, size_t errlen);

/* The commands, one per line ("SHOW POOLS", ...), for SHOW HELP and errors. */
struct admin_help {
	const char *command;
	const char *description;
};

const struct admin_help *admin_help_entries(size_t *count);

#endif
