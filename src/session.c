/*
 * Replayable session state. SQL-level state is kept as the statements that
 * made it, newest last, so replaying them in order rebuilds what the client
 * saw; protocol-level prepared statements are kept as their Parse messages.
 * Both lists are small (a few entries for a typical app), so plain arrays
 * with linear search beat anything cleverer.
 */
#include "pgwing/session.h"

#include "pgwing/proto.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Past these, replaying would cost the new server more than a reconnect costs
 * the client, and an app that piles up thousands of PREPAREs is leaking them:
 * the session stops being movable instead of growing without bound.
 */
#define REPLAY_MAX_BYTES   (1024 * 1024)
#define REPLAY_MAX_ENTRIES 1000

/* The kinds of recorded SQL; the key is unique within a kind. */
enum entry_kind {
	ENTRY_SET,
	ENTRY_LISTEN,
	ENTRY_PREPARE,
};

struct sql_entry {
	enum entry_kind kind;
	char key[STMT_KEY_MAX];
	char *text;
	size_t len;
};

struct parse_entry {
	char *name;
	uint8_t *msg;
	size_t len;
	bool runs_code; /* its text calls code (classify_query_runs_code) */
};

struct session_state {
	struct sql_entry *sql; /* in replay order */
	size_t nsql, sql_cap;
	struct parse_entry *parse;
	size_t nparse, parse_cap;
	size_t bytes; /* SQL text and Parse messages held */
	const char *unmovable;
	bool is_pin_checkable; /* every pin so far is of what a check sees while it lasts */
	uint64_t version; /* counts changes: a server that saw the same one holds the same state */
};

struct session_state *session_state_new(void)
{
	return xcalloc(1, sizeof(struct session_state));
}

static void drop_sql(struct session_state *st, size_t i)
{
	st->bytes -= st->sql[i].len;
	free(st->sql[i].text);
	memmove(&st->sql[i], &st->sql[i + 1], (st->nsql - i - 1) * sizeof(st->sql[0]));
	st->nsql--;
}

static void drop_parse(struct session_state *st, size_t i)
{
	st->bytes -= st->parse[i].len;
	free(st->parse[i].name);
	free(st->parse[i].msg);
	memmove(&st->parse[i], &st->parse[i + 1], (st->nparse - i - 1) * sizeof(st->parse[0]));
	st->nparse--;
}

/* Drops the SQL entries for which match(entry, key) holds. */
static void drop_sql_where(struct session_state *st, enum entry_kind kind, const char *key,
			   bool (*match)(const struct sql_entry *e, const char *key))
{
	size_t i = 0;

	while (i < st->nsql) {
		if (st->sql[i].kind == kind && match(&st->sql[i], key))
			drop_sql(st, i);
		else
			i++;
	}
}

static bool has_key_or_any(const struct sql_entry *e, const char *key)
{
	return key == NULL || strcmp(e->key, key) == 0;
}

/* Drops the SQL entries of a kind with a key, or all of that kind when key is NULL. */
static void drop_sql_matching(struct session_state *st, enum entry_kind kind, const char *key)
{
	drop_sql_where(st, kind, key, has_key_or_any);
}

/* Drops the Parse of a name, or all of them when name is NULL. */
static void drop_parse_matching(struct session_state *st, const char *name)
{
	size_t i = 0;

	while (i < st->nparse) {
		if (name == NULL || strcmp(st->parse[i].name, name) == 0)
			drop_parse(st, i);
		else
			i++;
	}
}

/*
 * RESET ALL leaves the identity the session runs as alone (GUC_NO_RESET_ALL
 * in Postgres). Dropping it from the replay would hand a moved session back
 * the login role's privileges.
 */
static bool is_reset_by_reset_all(const struct sql_entry *e, const char *unused)
{
	(void)unused;
	return !classify_setting_is_identity(e->key);
}

/*
 * SET and RESET SESSION AUTHORIZATION end any SET ROLE (Postgres makes the
 * current user the session user): replaying an earlier SET ROLE after them
 * would run the session as a role it no longer has.
 */
static void drop_roles_ended_by(struct session_state *st, const char *key)
{
	if (strcmp(key, "session_authorization") == 0)
		drop_sql_matching(st, ENTRY_SET, "role");
}

static bool find_sql(const struct session_state *st, enum entry_kind kind, const char *key)
{
	for (size_t i = 0; i < st->nsql; i++)
		if (st->sql[i].kind == kind && strcmp(st->sql[i].key, key) == 0)
			return true;
	return false;
}

/* Whether len more bytes in one more entry fit; if not, the session can't move any more. */
static bool reserve(struct session_state *st, size_t len)
{
	if (st->nsql + st->nparse < REPLAY_MAX_ENTRIES && len <= REPLAY_MAX_BYTES - st->bytes)
		return true;
	session_state_mark_unmovable(st, "too much session state to replay");
	return false;
}

/* An entry whose replay is text[0..len), a Query of its own; key: a string shorter than
 * STMT_KEY_MAX. */
static void add_sql(struct session_state *st, enum entry_kind kind, const char *key,
		    const char *text, size_t len)
{
	struct sql_entry *e;

	if (!reserve(st, len))
		return;
	if (st->nsql == st->sql_cap) {
		st->sql_cap = st->sql_cap ? st->sql_cap * 2 : 8;
		st->sql = xrealloc(st->sql, st->sql_cap * sizeof(st->sql[0]));
	}
	e = &st->sql[st->nsql++];
	e->kind = kind;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->text = xmalloc(len + 1); /* with its NUL: the Query's body */
	memcpy(e->text, text, len);
	e->text[len] = '\0';
	e->len = len;
	st->bytes += len;
}

/* An entry replayed as the statement info locates in sql. */
static void add_statement(struct session_state *st, enum entry_kind kind,
			  const struct stmt_info *info, const char *sql)
{
	add_sql(st, kind, info->key, sql + info->start, info->len);
}

/* RESET "key" (the key's quotes doubled): what keeps a custom name defined, empty. */
static void add_placeholder(struct session_state *st, const char *key)
{
	char text[2 * STMT_KEY_MAX + 16];
	size_t n = (size_t)snprintf(text, sizeof(text), "RESET \"");

	for (const char *c = key; *c != '\0'; c++) {
		if (*c == '"')
			text[n++] = '"';
		text[n++] = *c;
	}
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\"");
	add_sql(st, ENTRY_SET, key, text, n);
}

/*
 * RESET ALL: every setting back to its default but the session's identity.
 * A custom name stays defined, as an empty placeholder, as after its own
 * RESET: it replays as one.
 */
static void reset_all(struct session_state *st)
{
	char(*custom)[STMT_KEY_MAX] = xcalloc(st->nsql + 1, sizeof(*custom));
	size_t ncustom = 0;

	for (size_t i = 0; i < st->nsql; i++)
		if (st->sql[i].kind == ENTRY_SET && classify_setting_is_custom(st->sql[i].key))
			memcpy(custom[ncustom++], st->sql[i].key, STMT_KEY_MAX);
	drop_sql_where(st, ENTRY_SET, NULL, is_reset_by_reset_all);
	for (size_t i = 0; i < ncustom; i++)
		add_placeholder(st, custom[i]);
	free(custom);
}

static void clear(struct session_state *st)
{
	while (st->nsql > 0)
		drop_sql(st, st->nsql - 1);
	while (st->nparse > 0)
		drop_parse(st, st->nparse - 1);
}

void session_state_free(struct session_state *st)
{
	if (st == NULL)
		return;
	clear(st);
	free(st->sql);
	free(st->parse);
	free(st);
}

/* The session can't move (first reason wins); is_checkable: a check sees it go. */
static void pin(struct session_state *st, const char *reason, bool is_checkable)
{
	st->version++;
	st->is_pin_checkable = (st->unmovable == NULL || st->is_pin_checkable) && is_checkable;
	if (st->unmovable == NULL)
		st->unmovable = reason;
}

void session_state_apply(struct session_state *st, const struct stmt_info *info, const char *sql,
			 bool is_alone)
{
	st->version++;
	if (info->cls == STMT_UNMOVABLE) {
		pin(st, info->reason, info->is_seen_by_check);
		return;
	}
	if (info->cls != STMT_SESSION)
		return;
	switch (info->op) {
	case SESSION_NONE:
		break;
	case SESSION_SET:
		/*
		 * The newest value wins, and replays after whatever came before it;
		 * except DateStyle, whose SET keeps the half it does not name
		 * (SET datestyle TO postgres; SET datestyle TO dmy gives Postgres,
		 * DMY): all of them replay, in order.
		 */
		if (strcmp(info->key, "datestyle") != 0)
			drop_sql_matching(st, ENTRY_SET, info->key);
		drop_roles_ended_by(st, info->key);
		add_statement(st, ENTRY_SET, info, sql);
		break;
	case SESSION_RESET:
		drop_sql_matching(st, ENTRY_SET, info->key);
		drop_roles_ended_by(st, info->key);
		/*
		 * A custom (dotted) name stays defined after its RESET, as an empty
		 * placeholder, where a new server would not know it: SHOW would fail.
		 * Replaying the RESET defines it again.
		 */
		if (classify_setting_is_custom(info->key))
			add_statement(st, ENTRY_SET, info, sql);
		break;
	case SESSION_RESET_ALL:
		reset_all(st);
		break;
	case SESSION_LISTEN:
		/* LISTEN twice is still one listener. */
		if (!find_sql(st, ENTRY_LISTEN, info->key))
			add_statement(st, ENTRY_LISTEN, info, sql);
		break;
	case SESSION_UNLISTEN:
		drop_sql_matching(st, ENTRY_LISTEN, info->key);
		break;
	case SESSION_UNLISTEN_ALL:
		drop_sql_matching(st, ENTRY_LISTEN, NULL);
		break;
	case SESSION_PREPARE:
		/*
		 * Postgres keeps the text of the whole query a PREPARE came in
		 * (pg_prepared_statements.statement): replayed alone, that text
		 * gives the same. A PREPARE among other statements replays its own
		 * (the others must not run again).
		 */
		drop_sql_matching(st, ENTRY_PREPARE, info->key);
		if (is_alone)
			add_sql(st, ENTRY_PREPARE, info->key, sql, strlen(sql));
		else
			add_statement(st, ENTRY_PREPARE, info, sql);
		break;
	case SESSION_DEALLOCATE:
		/* SQL and protocol prepared statements share one namespace in Postgres. */
		drop_sql_matching(st, ENTRY_PREPARE, info->key);
		drop_parse_matching(st, info->key);
		break;
	case SESSION_DEALLOCATE_ALL:
		drop_sql_matching(st, ENTRY_PREPARE, NULL);
		drop_parse_matching(st, NULL);
		break;
	case SESSION_DISCARD_ALL:
		/*
		 * DISCARD ALL also drops temporary tables, closes WITH HOLD cursors
		 * and releases advisory locks: nothing keeps the session in place.
		 */
		clear(st);
		st->unmovable = NULL;
		break;
	}
}

/* A Parse message of a name st does not hold yet. */
/* The query text of a whole Parse message: after its name, each with its NUL. */
static const char *parse_text(const uint8_t *msg, size_t len)
{
	struct proto_reader r;

	proto_reader_init(&r, msg + PROTO_HEADER_LEN, len - PROTO_HEADER_LEN);
	proto_read_cstring(&r);
	return proto_read_cstring(&r);
}

static void add_parse(struct session_state *st, const char *name, const uint8_t *msg, size_t len)
{
	struct parse_entry *e;
	const char *text;

	if (!reserve(st, len))
		return;
	if (st->nparse == st->parse_cap) {
		st->parse_cap = st->parse_cap ? st->parse_cap * 2 : 8;
		st->parse = xrealloc(st->parse, st->parse_cap * sizeof(st->parse[0]));
	}
	e = &st->parse[st->nparse++];
	e->name = xstrdup(name);
	e->msg = xmalloc(len);
	memcpy(e->msg, msg, len);
	e->len = len;
	text = parse_text(e->msg, e->len);
	e->runs_code = text != NULL && classify_query_runs_code(text, strlen(text));
	st->bytes += len;
}

void session_state_note_parse(struct session_state *st, const char *name, const uint8_t *msg,
			      size_t len)
{
	st->version++;
	drop_parse_matching(st, name);
	add_parse(st, name, msg, len);
}

uint64_t session_state_version(const struct session_state *st)
{
	return st != NULL ? st->version : 0;
}

const char *session_state_set_text(const struct session_state *st, const char *name)
{
	for (size_t i = 0; st != NULL && i < st->nsql; i++)
		if (st->sql[i].kind == ENTRY_SET && strcmp(st->sql[i].key, name) == 0)
			return st->sql[i].text;
	return NULL;
}

const char *session_state_statement_text(const struct session_state *st, const char *name)
{
	for (size_t i = 0; i < st->nparse; i++)
		if (strcmp(st->parse[i].name, name) == 0)
			return parse_text(st->parse[i].msg, st->parse[i].len);
	return NULL;
}

bool session_state_runs_code(const struct session_state *st)
{
	for (size_t i = 0; st != NULL && i < st->nparse; i++)
		if (st->parse[i].runs_code)
			return true;
	return false;
}

void session_state_note_close(struct session_state *st, const char *name)
{
	st->version++;
	/* Close works on SQL-prepared statements too: one namespace. */
	drop_parse_matching(st, name);
	drop_sql_matching(st, ENTRY_PREPARE, name);
}

void session_state_mark_unmovable(struct session_state *st, const char *reason)
{
	pin(st, reason, false);
}

void session_state_mark_pinned_while_seen(struct session_state *st, const char *reason)
{
	pin(st, reason, true);
}

bool session_state_pin_is_checkable(const struct session_state *st)
{
	return st->unmovable != NULL && st->is_pin_checkable;
}

void session_state_unpin(struct session_state *st)
{
	if (st->is_pin_checkable)
		st->unmovable = NULL;
}

/* The three settings SET SESSION CHARACTERISTICS sets, recorded as one statement. */
#define CHARACTERISTICS_KEY "session characteristics"

static bool is_characteristic(const char *key)
{
	return strcmp(key, "default_transaction_isolation") == 0 ||
	       strcmp(key, "default_transaction_read_only") == 0 ||
	       strcmp(key, "default_transaction_deferrable") == 0;
}

/* The last SET entry of key (Postgres's names are case-insensitive); st->nsql if none. */
static size_t last_set_of(const struct session_state *st, const char *key)
{
	size_t at = st->nsql;

	for (size_t i = 0; i < st->nsql; i++)
		if (st->sql[i].kind == ENTRY_SET && strcasecmp(st->sql[i].key, key) == 0)
			at = i;
	return at;
}

/* The record's key for a setting the server lists: its own, or the characteristics'; NULL. */
static const char *record_key_of(const struct session_state *st, const char *key)
{
	if (last_set_of(st, key) < st->nsql)
		return key;
	if (is_characteristic(key) && last_set_of(st, CHARACTERISTICS_KEY) < st->nsql)
		return CHARACTERISTICS_KEY;
	return NULL;
}

static bool lists(const struct session_setting *settings, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(settings[i].key, key) == 0 ||
		    (strcmp(key, CHARACTERISTICS_KEY) == 0 && is_characteristic(settings[i].key)))
			return true;
	return false;
}

/* Why the record can't take settings exactly (session_state_take_settings); NULL if it can. */
static const char *why_not_take(const struct session_state *st,
				const struct session_setting *settings, size_t n)
{
	bool has_identity = last_set_of(st, "role") < st->nsql ||
			    last_set_of(st, "session_authorization") < st->nsql;

	for (size_t i = 0; i < n; i++)
		if (record_key_of(st, settings[i].key) == NULL &&
		    (has_identity || !settings[i].is_exact))
			return "a setting made where pgwing could not see it (in a function, a DO "
			       "block), under a role it set or with a value the server shows "
			       "rounded";
	for (size_t i = 0; i < st->nsql; i++) {
		const struct sql_entry *e = &st->sql[i];

		if (e->kind == ENTRY_SET && classify_setting_is_listed(e->key) &&
		    !lists(settings, n, e->key))
			return "a setting reset where pgwing could not see it (in a function), or "
			       "one its role may not see";
	}
	return NULL;
}

/* Entry i's statement becomes text (key: the setting it sets). */
static void replace_sql(struct session_state *st, size_t i, const char *key, const char *text)
{
	struct sql_entry *e = &st->sql[i];
	size_t len = strlen(text);

	st->bytes -= e->len;
	if (!reserve(st, len)) {
		st->bytes += e->len;
		return;
	}
	free(e->text);
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->text = xstrdup(text);
	e->len = len;
	st->bytes += len;
}

const char *session_state_take_settings(struct session_state *st,
					const struct session_setting *settings, size_t n)
{
	const char *why = why_not_take(st, settings, n);

	if (why != NULL)
		return why;
	st->version++;
	for (size_t i = 0; i < n; i++) {
		const struct session_setting *set = &settings[i];
		const char *key = record_key_of(st, set->key);
		size_t at;

		if (!set->is_exact)
			continue; /* its statements stay, the record has them (why_not_take) */
		if (key == NULL) {
			add_sql(st, ENTRY_SET, set->key, set->sql, strlen(set->sql));
			continue;
		}
		/* Every statement of it but the last goes; the last says its value now. */
		while ((at = last_set_of(st, key)) < st->nsql) {
			size_t first = 0;

			while (st->sql[first].kind != ENTRY_SET ||
			       strcasecmp(st->sql[first].key, key) != 0)
				first++;
			if (first == at)
				break;
			drop_sql(st, first);
		}
		replace_sql(st, at, set->key, set->sql);
	}
	return NULL;
}

void session_state_count(const struct session_state *st, struct session_counts *out)
{
	*out = (struct session_counts){0, 0, (uint32_t)st->nparse};
	for (size_t i = 0; i < st->nsql; i++) {
		if (st->sql[i].kind == ENTRY_LISTEN)
			out->listens++;
		else if (st->sql[i].kind == ENTRY_PREPARE)
			out->sql_prepares++;
	}
}

const char *session_state_unmovable(const struct session_state *st)
{
	return st->unmovable;
}

bool session_state_is_listening(const struct session_state *st)
{
	for (size_t i = 0; i < st->nsql; i++)
		if (st->sql[i].kind == ENTRY_LISTEN)
			return true;
	return false;
}

bool session_state_is_empty(const struct session_state *st)
{
	return st->nsql == 0 && st->nparse == 0 && st->unmovable == NULL;
}

bool session_state_is_exact(const struct session_state *st)
{
	for (size_t i = 0; i < st->nsql; i++)
		if (st->sql[i].kind != ENTRY_SET)
			return false;
	return st->unmovable == NULL;
}

bool session_state_has_statements(const struct session_state *st)
{
	return st->nparse > 0;
}

struct session_state *session_state_copy(const struct session_state *st)
{
	struct session_state *copy;

	if (session_state_is_empty(st))
		return NULL;
	copy = session_state_new();
	for (size_t i = 0; i < st->nsql; i++)
		add_sql(copy, st->sql[i].kind, st->sql[i].key, st->sql[i].text, st->sql[i].len);
	for (size_t i = 0; i < st->nparse; i++)
		add_parse(copy, st->parse[i].name, st->parse[i].msg, st->parse[i].len);
	copy->unmovable = st->unmovable;
	copy->is_pin_checkable = st->is_pin_checkable;
	return copy;
}

/* The SQL entries of a and b (NULL: none) are the same statements in the same order. */
static bool same_sql(const struct session_state *a, const struct session_state *b)
{
	size_t na = a != NULL ? a->nsql : 0, nb = b != NULL ? b->nsql : 0;

	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a->sql[i].kind != b->sql[i].kind || a->sql[i].len != b->sql[i].len ||
		    memcmp(a->sql[i].text, b->sql[i].text, a->sql[i].len) != 0)
			return false;
	return true;
}

/*
 * What resets the settings a server holds for its last session, as
 * server_reset_query's DISCARD ALL would, and leaves its prepared statements:
 * RESET ALL keeps the session's identity (SET ROLE, SET SESSION
 * AUTHORIZATION), whose own RESET ends both.
 */
static const char reset_settings[] = "RESET SESSION AUTHORIZATION; RESET ALL";

static const struct parse_entry *find_parse(const struct session_state *st, const char *name)
{
	for (size_t i = 0; st != NULL && i < st->nparse; i++)
		if (strcmp(st->parse[i].name, name) == 0)
			return &st->parse[i];
	return NULL;
}

/* st holds e as it is: a statement of that name, made by the same Parse message. */
static bool holds_as_is(const struct session_state *st, const struct parse_entry *e)
{
	const struct parse_entry *own = find_parse(st, e->name);

	return own != NULL && own->len == e->len && memcmp(own->msg, e->msg, e->len) == 0;
}

/* Whether held holds a statement st does not hold as it is (closed first by a replay). */
static bool has_stale(const struct session_state *st, const struct session_state *held)
{
	for (size_t i = 0; held != NULL && i < held->nparse; i++)
		if (!holds_as_is(st, &held->parse[i]))
			return true;
	return false;
}

int session_state_replay(const struct session_state *st, const struct session_state *held,
			 struct session_replay *plan, struct evbuffer *out)
{
	struct session_replay sent = {
		.replays_sql = !same_sql(st, held),
		.closes = has_stale(st, held),
	};
	int n = 0;

	sent.resets_settings = sent.replays_sql && held != NULL && held->nsql > 0;
	if (plan != NULL)
		*plan = sent;
	if (sent.resets_settings) {
		proto_put_query(out, reset_settings);
		n++;
	}
	/*
	 * What the server holds and the session does not goes first, in one
	 * request: a name it reuses for another statement is free again, and the
	 * session sees only its own statements (pg_prepared_statements, 42P05).
	 */
	if (sent.closes) {
		for (size_t i = 0; i < held->nparse; i++)
			if (!holds_as_is(st, &held->parse[i]))
				proto_put_close_statement(out, held->parse[i].name);
		proto_put_sync(out);
		n++;
	}
	if (st == NULL)
		return n;
	/*
	 * Then one request per entry, each answered by its own ReadyForQuery: a
	 * PREPARE made again shows its own text, and a failure is known by the
	 * entry that failed (session_state_forget_unreplayable).
	 */
	for (size_t i = 0; i < st->nsql && sent.replays_sql; i++, n++)
		proto_put_message(out, PqMsg_Query, st->sql[i].text, st->sql[i].len + 1);
	for (size_t i = 0; i < st->nparse; i++) {
		if (holds_as_is(held, &st->parse[i]))
			continue;
		evbuffer_add(out, st->parse[i].msg, st->parse[i].len);
		proto_put_sync(out);
		n++;
	}
	return n;
}

bool session_state_forget_unreplayable(struct session_state *st, const struct session_state *held,
				       const struct session_replay *plan, size_t i)
{
	if (st == NULL)
		return false;
	st->version++;
	/* The replay's requests, counted as session_state_replay sent them. */
	if (plan->resets_settings && i-- == 0)
		return false;
	if (plan->closes && i-- == 0)
		return false;
	/*
	 * A statement that can't be prepared again (its table was dropped since)
	 * fails only when it is executed, in Postgres: the session goes on
	 * without it. Anything else missing would make it a different session.
	 */
	if (!plan->replays_sql)
		i += st->nsql; /* not sent */
	if (i < st->nsql) {
		if (st->sql[i].kind != ENTRY_PREPARE)
			return false;
		drop_sql(st, i);
		return true;
	}
	i -= st->nsql;
	for (size_t k = 0; k < st->nparse; k++) {
		if (holds_as_is(held, &st->parse[k]))
			continue;
		if (i-- == 0) {
			drop_parse(st, k);
			return true;
		}
	}
	return false;
}

/*
 * The serialized form: the SQL entries (count, then kind, key, length and
 * text each), then the Parse messages (count, then name, length and message
 * each), all big-endian. Lengths come before bytes so a reader checks each
 * against what is left.
 */
bool session_state_serialize(const struct session_state *st, struct evbuffer *out)
{
	if (st->unmovable != NULL)
		return false;
	proto_put_int32(out, (uint32_t)st->nsql);
	for (size_t i = 0; i < st->nsql; i++) {
		evbuffer_add(out, &(uint8_t){(uint8_t)st->sql[i].kind}, 1);
		proto_put_cstring(out, st->sql[i].key);
		proto_put_int32(out, (uint32_t)st->sql[i].len);
		evbuffer_add(out, st->sql[i].text, st->sql[i].len);
	}
	proto_put_int32(out, (uint32_t)st->nparse);
	for (size_t i = 0; i < st->nparse; i++) {
		proto_put_cstring(out, st->parse[i].name);
		proto_put_int32(out, (uint32_t)st->parse[i].len);
		evbuffer_add(out, st->parse[i].msg, st->parse[i].len);
	}
	return true;
}

/* A Parse message of statement name, whole: its type, its length and its first field. */
static bool is_parse_of(const uint8_t *msg, size_t len, const char *name)
{
	struct proto_reader r;
	const char *embedded;

	proto_reader_init(&r, msg, len);
	if (proto_read_byte(&r) != PqMsg_Parse || proto_read_int32(&r) != len - 1)
		return false;
	embedded = proto_read_cstring(&r);
	return embedded != NULL && strcmp(embedded, name) == 0;
}

struct session_state *session_state_deserialize(const void *data, size_t len)
{
	struct session_state *st = session_state_new();
	struct proto_reader r;
	uint32_t n;

	proto_reader_init(&r, data, len);
	n = proto_read_int32(&r);
	for (uint32_t i = 0; i < n && !r.has_failed && st->unmovable == NULL; i++) {
		uint8_t kind = proto_read_byte(&r);
		const char *key = proto_read_cstring(&r);
		uint32_t text_len = proto_read_int32(&r);
		const uint8_t *text = proto_read_bytes(&r, text_len);

		if (text == NULL || kind > ENTRY_PREPARE || strlen(key) >= STMT_KEY_MAX)
			r.has_failed = true;
		else
			add_sql(st, (enum entry_kind)kind, key, (const char *)text, text_len);
	}
	n = proto_read_int32(&r);
	for (uint32_t i = 0; i < n && !r.has_failed && st->unmovable == NULL; i++) {
		const char *name = proto_read_cstring(&r);
		uint32_t msg_len = proto_read_int32(&r);
		const uint8_t *msg = proto_read_bytes(&r, msg_len);

		if (msg == NULL || !is_parse_of(msg, msg_len, name))
			r.has_failed = true;
		else
			session_state_note_parse(st, name, msg, msg_len);
	}
	/* Past the caps it could not have been written: as malformed as a bad length. */
	if (r.has_failed || st->unmovable != NULL || proto_reader_remaining(&r) != 0) {
		session_state_free(st);
		return NULL;
	}
	return st;
}
