/*
 * The console's tokenizer and parser. Hand-written and small: a command is a
 * keyword and at most a few words, and every error names what was expected.
 */
#include "pgwing/admin_parse.h"

#include "pgwing/quote.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum token_kind {
	TOK_END,
	TOK_WORD,   /* bare: keyword, name, number or unquoted value */
	TOK_IDENT,  /* "double quoted": a name that keeps its case */
	TOK_STRING, /* 'single quoted': a value */
	TOK_EQUALS,
	TOK_SEMICOLON,
	TOK_ERROR, /* the lexer wrote the reason */
};

struct token {
	enum token_kind kind;
	char text[ADMIN_VALUE_MAX];
};

struct parser {
	const char *pos;
	char *err;
	size_t errlen;
};

static bool fail(struct parser *p, const char *fmt, ...) PRINTF_LIKE(2, 3);

static bool fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return false;
}

/*
 * Characters of a bare word. Beyond identifier characters this admits what
 * values are written with (5s, 64MB, 10.0.0.1, /var/run, host:port) so that
 * SET needs quotes only for blanks and the like.
 */
static bool is_word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' || c == ':' ||
	       c == '/';
}

/* Blanks and comments, which separate tokens; false on an unterminated comment. */
static bool skip_blanks(struct parser *p)
{
	for (;;) {
		p->pos += strspn(p->pos, " \t\r\n\f\v");
		if (p->pos[0] == '-' && p->pos[1] == '-') {
			p->pos += strcspn(p->pos, "\n");
		} else if (p->pos[0] == '/' && p->pos[1] == '*') {
			const char *end = strstr(p->pos + 2, "*/");

			if (end == NULL)
				return fail(p, "unterminated /* comment");
			p->pos = end + 2;
		} else {
			return true;
		}
	}
}

/* A quoted token; a doubled quote character stands for itself, as in SQL. */
static void read_quoted(struct parser *p, struct token *t)
{
	char quote = *p->pos;

	switch (quote_sql_read(&p->pos, t->text, sizeof(t->text))) {
	case QUOTE_READ_OK:
		t->kind = quote == '"' ? TOK_IDENT : TOK_STRING;
		return;
	case QUOTE_READ_UNTERMINATED:
		fail(p, "unterminated quoted %s", quote == '"' ? "identifier" : "string");
		break;
	case QUOTE_READ_TOO_LONG:
		fail(p, "quoted text is too long (at most %zu bytes)", sizeof(t->text) - 1);
		break;
	}
	t->kind = TOK_ERROR;
}

static void next_token(struct parser *p, struct token *t)
{
	size_t len;

	t->text[0] = '\0';
	if (!skip_blanks(p)) {
		t->kind = TOK_ERROR;
		return;
	}
	switch (*p->pos) {
	case '\0':
		t->kind = TOK_END;
		return;
	case '=':
	case ';':
		t->kind = *p->pos == '=' ? TOK_EQUALS : TOK_SEMICOLON;
		t->text[0] = *p->pos++;
		t->text[1] = '\0';
		return;
	case '"':
	case '\'':
		read_quoted(p, t);
		return;
	default:
		break;
	}
	for (len = 0; is_word_char(p->pos[len]); len++)
		;
	if (len == 0) {
		fail(p, "syntax error at \"%c\"", *p->pos);
		t->kind = TOK_ERROR;
		return;
	}
	if (len >= sizeof(t->text)) {
		fail(p, "word is too long (at most %zu bytes)", sizeof(t->text) - 1);
		t->kind = TOK_ERROR;
		return;
	}
	memcpy(t->text, p->pos, len);
	t->text[len] = '\0';
	t->kind = TOK_WORD;
	p->pos += len;
}

static bool is_keyword(const struct token *t, const char *keyword)
{
	return t->kind == TOK_WORD && strcasecmp(t->text, keyword) == 0;
}

/*
 * A name: bare words fold to lower case, "quoted" ones are taken as written.
 * Returns false (with the reason) on a token that is not a name.
 */
static bool take_name(struct parser *p, const struct token *t, const char *what, char *out)
{
	size_t len = strlen(t->text);

	if (t->kind != TOK_WORD && t->kind != TOK_IDENT)
		return fail(p, "expected %s, found \"%s\"", what, t->text);
	if (len == 0)
		return fail(p, "%s must not be empty", what);
	if (len >= ADMIN_NAME_MAX)
		return fail(p, "%s is too long (at most %d bytes)", what, ADMIN_NAME_MAX - 1);
	for (size_t i = 0; i <= len; i++)
		out[i] =
			t->kind == TOK_WORD ? (char)tolower((unsigned char)t->text[i]) : t->text[i];
	return true;
}

static const struct {
	const char *keyword;
	enum admin_verb verb;
} verbs[] = {
	{"SHOW", ADMIN_SHOW},         {"PAUSE", ADMIN_PAUSE},
	{"RESUME", ADMIN_RESUME},     {"RELOAD", ADMIN_RELOAD},
	{"SET", ADMIN_SET},           {"RECONNECT", ADMIN_RECONNECT},
	{"KILL", ADMIN_KILL},         {"KILL_CLIENT", ADMIN_KILL_CLIENT},
	{"SHUTDOWN", ADMIN_SHUTDOWN},
};

static const struct {
	const char *keyword;
	enum admin_show show;
} show_items[] = {
	{"HELP", ADMIN_SHOW_HELP},       {"VERSION", ADMIN_SHOW_VERSION},
	{"CONFIG", ADMIN_SHOW_CONFIG},   {"BACKENDS", ADMIN_SHOW_BACKENDS},
	{"POOLS", ADMIN_SHOW_POOLS},     {"CLIENTS", ADMIN_SHOW_CLIENTS},
	{"SERVERS", ADMIN_SHOW_SERVERS}, {"STATS", ADMIN_SHOW_STATS},
	{"LISTS", ADMIN_SHOW_LISTS},     {"STATE", ADMIN_SHOW_STATE},
};

static const struct admin_help help[] = {
	{"SHOW HELP", "this list"},
	{"SHOW VERSION", "pgwing's version"},
	{"SHOW CONFIG", "settings: value, default, and whether SET can change them"},
	{"SHOW BACKENDS", "backends with role, state, LSN, lag and RTT from the latest probes"},
	{"SHOW POOLS", "clients and servers per database, user and target; who waits and why"},
	{"SHOW CLIENTS", "client connections"},
	{"SHOW SERVERS", "server connections"},
	{"SHOW STATS", "totals and per-second averages per database and target"},
	{"SHOW LISTS", "how many databases, users, pools, clients, servers and backends"},
	{"SHOW STATE", "paused, shutting down, and the current primary"},
	{"PAUSE [db]", "wait for transactions to end, then hold clients that want a server"},
	{"RESUME [db]", "end a PAUSE: held clients get their servers"},
	{"RELOAD", "re-read the config file and the auth file"},
	{"SET name = value", "change a changeable setting until the next RELOAD"},
	{"RECONNECT [db]", "replace server connections at their next idle point"},
	{"KILL [db]", "close the clients of a database (of all databases without one)"},
	{"KILL_CLIENT id", "close one client (ids from SHOW CLIENTS)"},
	{"SHUTDOWN", "close every connection and stop"},
	{"SHUTDOWN WAIT_FOR_CLIENTS", "stop accepting clients; stop when the last one has left"},
};

const struct admin_help *admin_help_entries(size_t *count)
{
	*count = ARRAY_SIZE(help);
	return help;
}

static bool unknown_command(struct parser *p, const struct token *t)
{
	char list[256];
	size_t len = 0;

	if (t->kind == TOK_ERROR)
		return false; /* the lexer said why */
	list[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i > 0 ? ", " : "",
					verbs[i].keyword);
	return fail(p, "unknown command \"%s\"; the commands are %s (SHOW HELP describes them)",
		    t->text, list);
}

static bool parse_show(struct parser *p, struct admin_command *cmd)
{
	struct token t;
	char list[160];
	size_t len = 0;

	next_token(p, &t);
	if (t.kind == TOK_ERROR)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(show_items); i++) {
		if (is_keyword(&t, show_items[i].keyword)) {
			cmd->show = show_items[i].show;
			return true;
		}
	}
	list[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(show_items); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i > 0 ? ", " : "",
					show_items[i].keyword);
	if (t.kind == TOK_END || t.kind == TOK_SEMICOLON)
		return fail(p, "SHOW needs one of %s", list);
	return fail(p, "unknown SHOW item \"%s\"; expected one of %s", t.text, list);
}

/* An optional database name; leaves the token after it in *t. */
static bool parse_optional_db(struct parser *p, struct admin_command *cmd, struct token *t)
{
	next_token(p, t);
	if (t->kind != TOK_WORD && t->kind != TOK_IDENT)
		return t->kind != TOK_ERROR;
	if (!take_name(p, t, "a database name", cmd->database))
		return false;
	next_token(p, t);
	return t->kind != TOK_ERROR;
}

static bool parse_client_id(struct parser *p, struct admin_command *cmd)
{
	struct token t;
	uint64_t id = 0;

	next_token(p, &t);
	if (t.kind == TOK_ERROR)
		return false;
	if (t.kind != TOK_WORD || strspn(t.text, "0123456789") != strlen(t.text))
		return fail(p, "KILL_CLIENT needs a client id (a number from SHOW CLIENTS)");
	for (const char *c = t.text; *c != '\0'; c++) {
		uint64_t digit = (uint64_t)(*c - '0');

		if (id > (UINT64_MAX - digit) / 10)
			return fail(p, "client id %s is out of range", t.text);
		id = id * 10 + digit;
	}
	cmd->client_id = id;
	return true;
}

/* SET name = value, or SET name TO value. */
static bool parse_set(struct parser *p, struct admin_command *cmd)
{
	struct token t;

	next_token(p, &t);
	if (t.kind == TOK_ERROR)
		return false;
	if (t.kind == TOK_END || t.kind == TOK_SEMICOLON)
		return fail(p, "SET needs a setting: SET name = value");
	if (!take_name(p, &t, "a setting name", cmd->name))
		return false;
	next_token(p, &t);
	if (t.kind == TOK_ERROR)
		return false;
	if (t.kind != TOK_EQUALS && !is_keyword(&t, "TO"))
		return fail(p, "expected \"=\" after SET %s", cmd->name);
	next_token(p, &t);
	if (t.kind == TOK_ERROR)
		return false;
	if (t.kind != TOK_WORD && t.kind != TOK_IDENT && t.kind != TOK_STRING)
		return fail(p, "SET %s needs a value (quote it if it has blanks: '...')",
			    cmd->name);
	/* Values keep their case: units (64MB) and paths are case-sensitive. */
	snprintf(cmd->value, sizeof(cmd->value), "%s", t.text);
	return true;
}

/* After a command: nothing, or one ';' and nothing. */
static bool expect_end(struct parser *p, const struct token *t, const char *command)
{
	struct token rest;

	if (t->kind == TOK_ERROR)
		return false;
	if (t->kind == TOK_END)
		return true;
	if (t->kind != TOK_SEMICOLON)
		return fail(p, "unexpected \"%s\" after %s", t->text, command);
	next_token(p, &rest);
	if (rest.kind == TOK_ERROR)
		return false;
	if (rest.kind != TOK_END)
		return fail(p, "one command per query, please: found \"%s\" after \";\"",
			    rest.text);
	return true;
}

bool admin_parse(const char *query, struct admin_command *cmd, char *err, size_t errlen)
{
	struct parser p = {.pos = query, .err = err, .errlen = errlen};
	struct token t;
	size_t i;

	*cmd = (struct admin_command){.verb = ADMIN_EMPTY};
	err[0] = '\0';
	next_token(&p, &t);
	if (t.kind == TOK_END || t.kind == TOK_SEMICOLON)
		return expect_end(&p, &t, "nothing");
	for (i = 0; i < ARRAY_SIZE(verbs); i++)
		if (is_keyword(&t, verbs[i].keyword))
			break;
	if (i == ARRAY_SIZE(verbs))
		return unknown_command(&p, &t);
	cmd->verb = verbs[i].verb;

	switch (cmd->verb) {
	case ADMIN_SHOW:
		if (!parse_show(&p, cmd))
			return false;
		next_token(&p, &t);
		break;
	case ADMIN_PAUSE:
	case ADMIN_RESUME:
	case ADMIN_RECONNECT:
	case ADMIN_KILL:
		if (!parse_optional_db(&p, cmd, &t))
			return false;
		break;
	case ADMIN_KILL_CLIENT:
		if (!parse_client_id(&p, cmd))
			return false;
		next_token(&p, &t);
		break;
	case ADMIN_SET:
		if (!parse_set(&p, cmd))
			return false;
		next_token(&p, &t);
		break;
	case ADMIN_SHUTDOWN:
		next_token(&p, &t);
		if (is_keyword(&t, "WAIT_FOR_CLIENTS")) {
			cmd->wait_for_clients = true;
			next_token(&p, &t);
		}
		break;
	case ADMIN_RELOAD:
	case ADMIN_EMPTY:
		next_token(&p, &t);
		break;
	}
	return expect_end(&p, &t, verbs[i].keyword);
}
