/*
 * Statement classification: a hand-written lexer that follows Postgres's own
 * scanner closely enough to split a simple Query where the server would, and
 * a few token rules on top of it.
 *
 * READ is a promise that retrying the statement on another server is
 * invisible, so it errs towards OTHER: a statement is READ only when it starts
 * like a query, calls no function outside a list of built-ins known not to
 * write, and has none of the words that make a query write or lock (INTO, FOR
 * UPDATE/SHARE, INSERT/UPDATE/DELETE/MERGE in a CTE). What lexing can't see --
 * a view or an operator over a volatile function -- is out of reach here.
 *
 * The common case (an autocommit SELECT on the data path) costs one pass over
 * the text plus re-lexing its first token; there is no allocation anywhere.
 */
#include "pgwing/classify.h"

#include "pgwing/quote.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

enum tok_kind {
	TOK_END,
	TOK_IDENT,   /* unquoted identifier or keyword */
	TOK_QIDENT,  /* "quoted identifier" */
	TOK_STRING,  /* '...', E'...', $tag$...$tag$ */
	TOK_NUMBER,  /* numeric literal */
	TOK_PARAM,   /* $1 */
	TOK_CAST,    /* :: */
	TOK_COMMENT, /* only an unterminated block comment is ever returned */
	TOK_PUNCT,   /* any other single character */
};

/* Words the classifier acts on; every other identifier is W_NONE. */
enum word {
	W_NONE,
	W_ABORT,
	W_ALL,
	W_ANALYZE,
	W_AS,
	W_AUTHORIZATION,
	W_BEGIN,
	W_CHARACTERISTICS,
	W_COMMIT,
	W_CONSTRAINTS,
	W_CREATE,
	W_DEALLOCATE,
	W_DECLARE,
	W_DELETE,
	W_DISCARD,
	W_END,
	W_EXISTS,
	W_EXPLAIN,
	W_FOR,
	W_GLOBAL,
	W_HOLD,
	W_IF,
	W_INSERT,
	W_INTO,
	W_KEY,
	W_LISTEN,
	W_LOAD,
	W_LOCAL,
	W_MERGE,
	W_NAMES,
	W_NO,
	W_NOT,
	W_OPTION,
	W_OR,
	W_PG_CATALOG,
	W_PG_TEMP,
	W_PREPARE,
	W_PREPARED,
	W_RECURSIVE,
	W_RELEASE,
	W_REPLACE,
	W_RESET,
	W_ROLE,
	W_ROLLBACK,
	W_SAVEPOINT,
	W_SCHEMA,
	W_SELECT,
	W_SEQUENCE,
	W_SESSION,
	W_SET,
	W_SHARE,
	W_SHOW,
	W_START,
	W_TABLE,
	W_TABLESAMPLE,
	W_TEMP,
	W_TEMPORARY,
	W_TIME,
	W_TRANSACTION,
	W_TRUE,
	W_UNLISTEN,
	W_UNLOGGED,
	W_UPDATE,
	W_VALUES,
	W_VERBOSE,
	W_VIEW,
	W_WITH,
	W_XML,
	W_ZONE,
};

/* What an identifier followed by '(' is. */
#define F_SYNTAX       0x1 /* a keyword, not a call: IN (...), EXISTS (...), OVER (...) */
#define F_PURE         0x2 /* a built-in function known not to write */
#define F_SESSION_LOCK 0x4 /* takes a session-level advisory lock */
#define F_SET_CONFIG   0x8 /* set_config(): session state unless its is_local is true */

struct word_entry {
	const char *name;
	enum word word;
	unsigned flags;
};

/*
 * In name order, for the reader. F_PURE functions may be volatile
 * (random, now, pg_sleep): what matters is that running them twice changes
 * nothing in the database.
 */
static const struct word_entry words[] = {
	{"abort", W_ABORT, 0},
	{"abs", W_NONE, F_PURE},
	{"age", W_NONE, F_PURE},
	{"all", W_ALL, F_SYNTAX},
	{"analyse", W_ANALYZE, 0},
	{"analyze", W_ANALYZE, 0},
	{"and", W_NONE, F_SYNTAX},
	{"any", W_NONE, F_SYNTAX},
	{"array", W_NONE, F_SYNTAX},
	{"array_agg", W_NONE, F_PURE},
	{"array_length", W_NONE, F_PURE},
	{"array_lower", W_NONE, F_PURE},
	{"array_position", W_NONE, F_PURE},
	{"array_to_string", W_NONE, F_PURE},
	{"array_upper", W_NONE, F_PURE},
	{"as", W_AS, F_SYNTAX},
	{"ascii", W_NONE, F_PURE},
	{"authorization", W_AUTHORIZATION, 0},
	{"avg", W_NONE, F_PURE},
	{"begin", W_BEGIN, 0},
	{"between", W_NONE, F_SYNTAX},
	{"bigint", W_NONE, F_PURE},
	{"bool", W_NONE, F_PURE},
	{"bool_and", W_NONE, F_PURE},
	{"bool_or", W_NONE, F_PURE},
	{"boolean", W_NONE, F_PURE},
	{"btrim", W_NONE, F_PURE},
	{"by", W_NONE, F_SYNTAX},
	{"cardinality", W_NONE, F_PURE},
	{"case", W_NONE, F_SYNTAX},
	{"cast", W_NONE, F_SYNTAX},
	{"ceil", W_NONE, F_PURE},
	{"ceiling", W_NONE, F_PURE},
	{"char_length", W_NONE, F_PURE},
	{"character_length", W_NONE, F_PURE},
	{"characteristics", W_CHARACTERISTICS, 0},
	{"chr", W_NONE, F_PURE},
	{"clock_timestamp", W_NONE, F_PURE},
	{"coalesce", W_NONE, F_PURE},
	{"commit", W_COMMIT, 0},
	{"concat", W_NONE, F_PURE},
	{"concat_ws", W_NONE, F_PURE},
	{"constraints", W_CONSTRAINTS, 0},
	{"count", W_NONE, F_PURE},
	{"create", W_CREATE, 0},
	{"cube", W_NONE, F_SYNTAX},
	{"current_database", W_NONE, F_PURE},
	{"current_schema", W_NONE, F_PURE},
	{"current_setting", W_NONE, F_PURE},
	{"current_time", W_NONE, F_PURE},
	{"current_timestamp", W_NONE, F_PURE},
	{"date", W_NONE, F_PURE},
	{"date_part", W_NONE, F_PURE},
	{"date_trunc", W_NONE, F_PURE},
	{"deallocate", W_DEALLOCATE, 0},
	{"declare", W_DECLARE, 0},
	{"delete", W_DELETE, 0},
	{"dense_rank", W_NONE, F_PURE},
	{"discard", W_DISCARD, 0},
	{"distinct", W_NONE, F_SYNTAX},
	{"else", W_NONE, F_SYNTAX},
	{"end", W_END, 0},
	{"every", W_NONE, F_PURE},
	{"except", W_NONE, F_SYNTAX},
	{"exists", W_EXISTS, F_SYNTAX},
	{"exp", W_NONE, F_PURE},
	{"explain", W_EXPLAIN, F_SYNTAX},
	{"extract", W_NONE, F_PURE},
	{"filter", W_NONE, F_SYNTAX},
	{"first", W_NONE, F_SYNTAX},
	{"first_value", W_NONE, F_PURE},
	{"float4", W_NONE, F_PURE},
	{"float8", W_NONE, F_PURE},
	{"floor", W_NONE, F_PURE},
	{"for", W_FOR, 0},
	{"format", W_NONE, F_PURE},
	{"from", W_NONE, F_SYNTAX},
	{"gen_random_uuid", W_NONE, F_PURE},
	{"generate_series", W_NONE, F_PURE},
	{"global", W_GLOBAL, 0},
	{"greatest", W_NONE, F_PURE},
	{"group", W_NONE, F_SYNTAX},
	{"grouping", W_NONE, F_PURE},
	{"having", W_NONE, F_SYNTAX},
	{"hold", W_HOLD, 0},
	{"if", W_IF, 0},
	{"ilike", W_NONE, F_SYNTAX},
	{"in", W_NONE, F_SYNTAX},
	{"inet_server_addr", W_NONE, F_PURE},
	{"inet_server_port", W_NONE, F_PURE},
	{"initcap", W_NONE, F_PURE},
	{"insert", W_INSERT, 0},
	{"int", W_NONE, F_PURE},
	{"int2", W_NONE, F_PURE},
	{"int4", W_NONE, F_PURE},
	{"int8", W_NONE, F_PURE},
	{"integer", W_NONE, F_PURE},
	{"intersect", W_NONE, F_SYNTAX},
	{"interval", W_NONE, F_PURE},
	{"into", W_INTO, 0},
	{"is", W_NONE, F_SYNTAX},
	{"join", W_NONE, F_SYNTAX},
	{"json", W_NONE, F_PURE},
	{"json_agg", W_NONE, F_PURE},
	{"json_array_length", W_NONE, F_PURE},
	{"json_build_array", W_NONE, F_PURE},
	{"json_build_object", W_NONE, F_PURE},
	{"json_extract_path", W_NONE, F_PURE},
	{"json_extract_path_text", W_NONE, F_PURE},
	{"json_object_agg", W_NONE, F_PURE},
	{"json_typeof", W_NONE, F_PURE},
	{"jsonb", W_NONE, F_PURE},
	{"jsonb_agg", W_NONE, F_PURE},
	{"jsonb_array_length", W_NONE, F_PURE},
	{"jsonb_build_array", W_NONE, F_PURE},
	{"jsonb_build_object", W_NONE, F_PURE},
	{"jsonb_extract_path", W_NONE, F_PURE},
	{"jsonb_extract_path_text", W_NONE, F_PURE},
	{"jsonb_object_agg", W_NONE, F_PURE},
	{"jsonb_set", W_NONE, F_PURE},
	{"jsonb_typeof", W_NONE, F_PURE},
	{"key", W_KEY, 0},
	{"lag", W_NONE, F_PURE},
	{"last_value", W_NONE, F_PURE},
	{"lateral", W_NONE, F_SYNTAX},
	{"lead", W_NONE, F_PURE},
	{"least", W_NONE, F_PURE},
	{"left", W_NONE, F_PURE},
	{"length", W_NONE, F_PURE},
	{"like", W_NONE, F_SYNTAX},
	{"limit", W_NONE, F_SYNTAX},
	{"listen", W_LISTEN, 0},
	{"ln", W_NONE, F_PURE},
	{"load", W_LOAD, 0},
	{"local", W_LOCAL, 0},
	{"localtime", W_NONE, F_PURE},
	{"localtimestamp", W_NONE, F_PURE},
	{"log", W_NONE, F_PURE},
	{"lower", W_NONE, F_PURE},
	{"lpad", W_NONE, F_PURE},
	{"ltrim", W_NONE, F_PURE},
	{"materialized", W_NONE, F_SYNTAX},
	{"max", W_NONE, F_PURE},
	{"md5", W_NONE, F_PURE},
	{"merge", W_MERGE, 0},
	{"min", W_NONE, F_PURE},
	{"mod", W_NONE, F_PURE},
	{"names", W_NAMES, 0},
	{"next", W_NONE, F_SYNTAX},
	{"no", W_NO, 0},
	{"not", W_NOT, F_SYNTAX},
	{"now", W_NONE, F_PURE},
	{"nullif", W_NONE, F_PURE},
	{"numeric", W_NONE, F_PURE},
	{"octet_length", W_NONE, F_PURE},
	{"offset", W_NONE, F_SYNTAX},
	{"on", W_NONE, F_SYNTAX},
	{"only", W_NONE, F_SYNTAX},
	{"option", W_OPTION, 0},
	{"or", W_OR, F_SYNTAX},
	{"over", W_NONE, F_SYNTAX},
	{"overlaps", W_NONE, F_SYNTAX},
	{"overlay", W_NONE, F_PURE},
	{"partition", W_NONE, F_SYNTAX},
	{"pg_advisory_lock", W_NONE, F_SESSION_LOCK},
	{"pg_advisory_lock_shared", W_NONE, F_SESSION_LOCK},
	{"pg_backend_pid", W_NONE, F_PURE},
	{"pg_catalog", W_PG_CATALOG, 0},
	{"pg_is_in_recovery", W_NONE, F_PURE},
	{"pg_sleep", W_NONE, F_PURE},
	{"pg_temp", W_PG_TEMP, 0},
	{"pg_try_advisory_lock", W_NONE, F_SESSION_LOCK},
	{"pg_try_advisory_lock_shared", W_NONE, F_SESSION_LOCK},
	{"position", W_NONE, F_PURE},
	{"power", W_NONE, F_PURE},
	{"prepare", W_PREPARE, 0},
	{"prepared", W_PREPARED, 0},
	{"random", W_NONE, F_PURE},
	{"rank", W_NONE, F_PURE},
	{"recursive", W_RECURSIVE, 0},
	{"regexp_match", W_NONE, F_PURE},
	{"regexp_matches", W_NONE, F_PURE},
	{"regexp_replace", W_NONE, F_PURE},
	{"release", W_RELEASE, 0},
	{"repeat", W_NONE, F_PURE},
	{"repeatable", W_NONE, F_SYNTAX},
	{"replace", W_REPLACE, F_PURE},
	{"reset", W_RESET, 0},
	{"reverse", W_NONE, F_PURE},
	{"right", W_NONE, F_PURE},
	{"role", W_ROLE, 0},
	{"rollback", W_ROLLBACK, 0},
	{"rollup", W_NONE, F_SYNTAX},
	{"round", W_NONE, F_PURE},
	{"row", W_NONE, F_SYNTAX},
	{"row_number", W_NONE, F_PURE},
	{"rpad", W_NONE, F_PURE},
	{"rtrim", W_NONE, F_PURE},
	{"savepoint", W_SAVEPOINT, 0},
	{"schema", W_SCHEMA, 0},
	{"select", W_SELECT, F_SYNTAX},
	{"sequence", W_SEQUENCE, 0},
	{"session", W_SESSION, 0},
	{"set", W_SET, 0},
	{"set_config", W_NONE, F_SET_CONFIG},
	{"sets", W_NONE, F_SYNTAX},
	{"share", W_SHARE, 0},
	{"show", W_SHOW, 0},
	{"sign", W_NONE, F_PURE},
	{"similar", W_NONE, F_SYNTAX},
	{"smallint", W_NONE, F_PURE},
	{"some", W_NONE, F_SYNTAX},
	{"split_part", W_NONE, F_PURE},
	{"sqrt", W_NONE, F_PURE},
	{"start", W_START, 0},
	{"statement_timestamp", W_NONE, F_PURE},
	{"string_agg", W_NONE, F_PURE},
	{"string_to_array", W_NONE, F_PURE},
	{"strpos", W_NONE, F_PURE},
	{"substr", W_NONE, F_PURE},
	{"substring", W_NONE, F_PURE},
	{"sum", W_NONE, F_PURE},
	{"table", W_TABLE, 0},
	{"tablesample", W_TABLESAMPLE, 0},
	{"temp", W_TEMP, 0},
	{"temporary", W_TEMPORARY, 0},
	{"text", W_NONE, F_PURE},
	{"then", W_NONE, F_SYNTAX},
	{"time", W_TIME, F_PURE},
	{"timeofday", W_NONE, F_PURE},
	{"timestamp", W_NONE, F_PURE},
	{"timestamptz", W_NONE, F_PURE},
	{"to_char", W_NONE, F_PURE},
	{"to_date", W_NONE, F_PURE},
	{"to_json", W_NONE, F_PURE},
	{"to_jsonb", W_NONE, F_PURE},
	{"to_number", W_NONE, F_PURE},
	{"to_timestamp", W_NONE, F_PURE},
	{"transaction", W_TRANSACTION, 0},
	{"transaction_timestamp", W_NONE, F_PURE},
	{"trim", W_NONE, F_PURE},
	{"true", W_TRUE, 0},
	{"trunc", W_NONE, F_PURE},
	{"union", W_NONE, F_SYNTAX},
	{"unlisten", W_UNLISTEN, 0},
	{"unlogged", W_UNLOGGED, 0},
	{"unnest", W_NONE, F_PURE},
	{"update", W_UPDATE, 0},
	{"upper", W_NONE, F_PURE},
	{"using", W_NONE, F_SYNTAX},
	{"uuid", W_NONE, F_PURE},
	{"values", W_VALUES, F_SYNTAX},
	{"varchar", W_NONE, F_PURE},
	{"varying", W_NONE, F_SYNTAX},
	{"verbose", W_VERBOSE, 0},
	{"version", W_NONE, F_PURE},
	{"view", W_VIEW, 0},
	{"when", W_NONE, F_SYNTAX},
	{"where", W_NONE, F_SYNTAX},
	{"window", W_NONE, F_SYNTAX},
	{"with", W_WITH, F_SYNTAX},
	{"within", W_NONE, F_SYNTAX},
	{"xml", W_XML, 0},
	{"zone", W_ZONE, F_SYNTAX},
};

/* The longest name in words[], so longer identifiers skip the lookup. */
#define WORD_MAX 32

struct token {
	enum tok_kind kind;
	bool is_unterminated; /* a quote or comment ran to the end of the text */
	size_t start, len;
	enum word word; /* TOK_IDENT only */
	unsigned flags; /* F_* of an identifier in words[] */
};

/*
 * words[] by hash of name, for the lookup every identifier of every Query
 * makes: one probe and one compare where a binary search took eight steps.
 * Open addressing; each slot holds an index into words[] plus one, 0 is empty.
 * Built on first use from the constant table, so it never changes after.
 */
#define WORD_SLOTS 1024 /* a power of two, over twice the words */

static uint16_t word_slots[WORD_SLOTS];

/* FNV-1a. */
#define NAME_HASH_INIT       2166136261u
#define NAME_HASH_STEP(h, c) (((h) ^ (unsigned char)(c)) * 16777619u)

static void word_slots_build(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		uint32_t h = NAME_HASH_INIT;

		for (const char *c = words[i].name; *c != '\0'; c++)
			h = NAME_HASH_STEP(h, *c);
		for (h &= WORD_SLOTS - 1; word_slots[h] != 0; h = (h + 1) & (WORD_SLOTS - 1))
			;
		word_slots[h] = (uint16_t)(i + 1);
	}
}

/* The entry for a name of n bytes with hash h, or NULL. */
static const struct word_entry *find_word(const char *name, size_t n, uint32_t h)
{
	static bool is_built;

	if (!is_built) {
		word_slots_build();
		is_built = true;
	}
	for (h &= WORD_SLOTS - 1; word_slots[h] != 0; h = (h + 1) & (WORD_SLOTS - 1)) {
		const struct word_entry *e = &words[word_slots[h] - 1];

		/* name may hold a NUL (a quoted identifier can): compare lengths first. */
		if (strnlen(e->name, n + 1) == n && memcmp(e->name, name, n) == 0)
			return e;
	}
	return NULL;
}

/*
 * Look an identifier up. Unquoted ones fold to lower case and may be keywords;
 * a quoted one is never a keyword but may still name a function, exactly as
 * written.
 */
static void token_lookup(const char *sql, struct token *t)
{
	char name[WORD_MAX];
	const char *s = sql + t->start;
	size_t n = t->len;
	uint32_t h = NAME_HASH_INIT;
	const struct word_entry *e;
	bool is_folded = t->kind == TOK_IDENT;

	if (!is_folded) {
		s++;
		n = n >= 2 ? n - 2 : 0;
	}
	if (n > WORD_MAX)
		return;
	for (size_t i = 0; i < n; i++) {
		char c = is_folded && s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];

		name[i] = c;
		h = NAME_HASH_STEP(h, c);
	}
	e = find_word(name, n, h);
	if (e == NULL)
		return;
	if (is_folded) {
		t->word = e->word;
		t->flags = e->flags;
	} else {
		t->flags = e->flags & (F_PURE | F_SESSION_LOCK);
	}
}

/*
 * The classes of a byte, by table: the lexer asks for every byte of every
 * Query. Identifiers start with a letter, '_' or any non-ASCII byte (Postgres's
 * ident_start) and go on with those, digits and '$'; a dollar-quote tag is an
 * identifier without '$'.
 */
#define C_SPACE  0x1
#define C_START  0x2
#define C_DIGIT  0x4
#define C_DOLLAR 0x8
#define C_LETTER 0x10 /* C_START but '_' */

#define S_ C_SPACE
#define L_ (C_START | C_LETTER)
#define U_ C_START
#define D_ C_DIGIT
#define X_ C_DOLLAR
/* clang-format off */
static const uint8_t char_class[256] = {
	0,  0,  0,  0,  0,  0,  0,  0,  0,  S_, S_, S_, S_, S_, 0,  0,	/* \t \n \v \f \r */
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	S_, 0,  0,  0,  X_, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,	/* ' ' '$' */
	D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, 0,  0,  0,  0,  0,  0,	/* 0-9 */
	0,  L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,	/* A-O */
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, 0,  0,  0,  0,  U_,	/* P-Z '_' */
	0,  L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,	/* a-o */
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, 0,  0,  0,  0,  0,	/* p-z */
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,	/* non-ASCII */
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,
	L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_, L_,
};
/* clang-format on */
#undef S_
#undef L_
#undef U_
#undef D_
#undef X_

static bool is_space(unsigned char c)
{
	return char_class[c] & C_SPACE;
}

static bool is_digit(unsigned char c)
{
	return char_class[c] & C_DIGIT;
}

static bool is_ident_start(unsigned char c)
{
	return char_class[c] & C_START;
}

static bool is_tag_char(unsigned char c)
{
	return char_class[c] & (C_START | C_DIGIT);
}

static bool is_ident_char(unsigned char c)
{
	return char_class[c] & (C_START | C_DIGIT | C_DOLLAR);
}

/* The end of a block comment opened at i; they nest in Postgres. */
static size_t scan_block_comment(const char *s, size_t len, size_t i, bool *is_unterminated)
{
	size_t depth = 0;

	while (i + 1 < len) {
		if (s[i] == '/' && s[i + 1] == '*') {
			depth++;
			i += 2;
		} else if (s[i] == '*' && s[i + 1] == '/') {
			i += 2;
			if (--depth == 0)
				return i;
		} else {
			i++;
		}
	}
	*is_unterminated = true;
	return len;
}

/*
 * A dollar quote opened at i ($tag$ or $$), or i itself when the '$' opens
 * none (a stray '$' is punctuation). The body ends at the same tag.
 */
static size_t scan_dollar_quote(const char *s, size_t len, size_t i, bool *is_unterminated)
{
	size_t j = i + 1, tag_len;

	if (j < len && is_ident_start((unsigned char)s[j]))
		while (j < len && is_tag_char((unsigned char)s[j]))
			j++;
	if (j >= len || s[j] != '$')
		return i;
	tag_len = j + 1 - i;
	for (j++; j + tag_len <= len; j++) {
		const char *d = memchr(s + j, '$', len - tag_len + 1 - j);

		if (d == NULL)
			break;
		j = (size_t)(d - s);
		if (memcmp(s + j, s + i, tag_len) == 0)
			return j + tag_len;
	}
	*is_unterminated = true;
	return len;
}

/* Lexes the token starting at s[i] (not a space or comment) and returns where it ends. */
static size_t lex_token(const char *s, size_t len, size_t i, struct token *t)
{
	unsigned char c = (unsigned char)s[i];
	size_t end;

	if ((c == 'e' || c == 'E') && i + 1 < len && s[i + 1] == '\'') {
		t->kind = TOK_STRING;
		return quote_sql_scan(s, len, i + 1, true, &t->is_unterminated);
	}
	if (is_ident_start(c)) {
		t->kind = TOK_IDENT;
		for (end = i + 1; end < len && is_ident_char((unsigned char)s[end]); end++)
			;
		return end;
	}
	if (c == '\'' || c == '"') {
		t->kind = c == '"' ? TOK_QIDENT : TOK_STRING;
		return quote_sql_scan(s, len, i, false, &t->is_unterminated);
	}
	if (c == '$' && i + 1 < len && is_digit((unsigned char)s[i + 1])) {
		t->kind = TOK_PARAM;
		for (end = i + 1; end < len && is_digit((unsigned char)s[end]); end++)
			;
		return end;
	}
	if (c == '$' && (end = scan_dollar_quote(s, len, i, &t->is_unterminated)) > i) {
		t->kind = TOK_STRING;
		return end;
	}
	if (is_digit(c) || (c == '.' && i + 1 < len && is_digit((unsigned char)s[i + 1]))) {
		/*
		 * Digits, '.', '_' separators and an exponent, but no letters: before
		 * Postgres 15, "1into t" is "1 INTO t", and INTO must be seen.
		 */
		t->kind = TOK_NUMBER;
		for (end = i + 1; end < len; end++) {
			c = (unsigned char)s[end];
			if ((c == 'e' || c == 'E') && end + 1 < len &&
			    (is_digit((unsigned char)s[end + 1]) ||
			     ((s[end + 1] == '+' || s[end + 1] == '-') && end + 2 < len &&
			      is_digit((unsigned char)s[end + 2]))))
				end++;
			else if (!is_digit(c) && c != '.' && c != '_')
				break;
		}
		return end;
	}
	if (c == ':' && i + 1 < len && s[i + 1] == ':') {
		t->kind = TOK_CAST;
		return i + 2;
	}
	t->kind = TOK_PUNCT;
	return i + 1;
}

/* The next token at or after *pos, skipping whitespace and comments; TOK_END at len. */
static void lex(const char *s, size_t len, size_t *pos, struct token *t)
{
	size_t i = *pos, end = len;

	t->is_unterminated = false;
	t->word = W_NONE;
	t->flags = 0;
	for (;;) {
		while (i < len && is_space((unsigned char)s[i]))
			i++;
		if (i + 1 < len && s[i] == '-' && s[i + 1] == '-') {
			while (i < len && s[i] != '\n' && s[i] != '\r')
				i++;
		} else if (i + 1 < len && s[i] == '/' && s[i + 1] == '*') {
			end = scan_block_comment(s, len, i, &t->is_unterminated);
			if (t->is_unterminated)
				break;
			i = end;
		} else {
			break;
		}
	}
	t->start = i;
	if (t->is_unterminated)
		t->kind = TOK_COMMENT;
	else if (i >= len)
		t->kind = TOK_END;
	else
		end = lex_token(s, len, i, t);
	t->len = end - i;
	*pos = end;
	if (t->kind == TOK_IDENT || t->kind == TOK_QIDENT)
		token_lookup(s, t);
}

static bool is_punct(const char *sql, const struct token *t, char c)
{
	return t->kind == TOK_PUNCT && sql[t->start] == c;
}

static bool is_name(const struct token *t)
{
	return t->kind == TOK_IDENT || t->kind == TOK_QIDENT;
}

/* ---- The pass over a whole statement ---- */

/* The few facts about the tokens before the current one that the rules need. */
struct recent {
	enum tok_kind kind;
	enum word word;
	unsigned flags;
	char punct;
};

struct stmt_scan {
	size_t depth;         /* parentheses */
	bool writes;          /* a word or call that can't be proven read-only */
	bool is_unterminated; /* ends inside a quote or comment: the server rejects it */
	const char *unmovable;
	struct recent prev[3]; /* prev[0] is the token just before */
	/* Inside set_config( at this depth (0: not), after this many commas. */
	size_t set_config_depth;
	int set_config_commas;
	bool is_set_config_local;  /* its third argument is the literal true */
	bool is_set_config_listed; /* its first is a literal naming a listed setting */
	bool calls;                /* a call of a function not known as built-in and pure */
	bool is_naming_table;      /* after INTO, in the (qualified) name of its table */
};

/* Compared by address (is_seen_by_check): one copy each. */
static const char SET_CONFIG_REASON[] = "a setting made with set_config(..., false)";
static const char SET_CONFIG_LISTED_REASON[] = "a setting made with set_config(..., false) "
					       "that no check has read yet";
static const char LOAD_REASON[] = "a library loaded with LOAD";

/*
 * A setting pg_settings does not list (a custom one, the role) and a loaded
 * library are the only pins a check of the server can't see go.
 */
static bool is_seen_by_check(const char *reason)
{
	return reason != SET_CONFIG_REASON && reason != LOAD_REASON;
}

/*
 * The pin a statement keeps of two reasons: the first, unless a check would
 * lift it and not the other (a custom setting beside a lock would be lost
 * once the lock is released).
 */
static const char *stronger_pin(const char *first, const char *other)
{
	if (first == NULL || (other != NULL && is_seen_by_check(first) && !is_seen_by_check(other)))
		return other;
	return first;
}

static void scan_pin(struct stmt_scan *sc, const char *reason)
{
	sc->unmovable = stronger_pin(sc->unmovable, reason);
}

/*
 * An identifier followed by '(' is a function call unless the grammar says
 * otherwise: a keyword (IN (...)), a type modifier (x::numeric(10,2), AS
 * varchar(3)), an alias's column list (AS t(a, b), f(x) t(a)), a CTE's
 * (WITH t(a) AS ...) or a TABLESAMPLE method.
 */
static void scan_call(struct stmt_scan *sc)
{
	const struct recent *name = &sc->prev[0], *before = &sc->prev[1];

	if ((name->kind != TOK_IDENT && name->kind != TOK_QIDENT) || (name->flags & F_SYNTAX))
		return;
	if (before->kind == TOK_CAST || (before->kind == TOK_PUNCT && before->punct == ')') ||
	    before->word == W_AS || before->word == W_WITH || before->word == W_RECURSIVE ||
	    before->word == W_TABLESAMPLE || sc->is_naming_table)
		return;
	if (name->flags & F_SESSION_LOCK) {
		scan_pin(sc, "a session-level advisory lock");
		return;
	}
	if (name->flags & F_SET_CONFIG) {
		/* One call at a time is followed; one inside another's arguments pins. */
		if (sc->set_config_depth != 0)
			scan_pin(sc, SET_CONFIG_REASON);
		sc->set_config_depth = sc->depth + 1;
		sc->set_config_commas = 0;
		sc->is_set_config_local = false;
		sc->is_set_config_listed = false;
	}
	/* A built-in name qualified by another schema is somebody's own function. */
	if (!(name->flags & F_PURE) ||
	    (before->kind == TOK_PUNCT && before->punct == '.' && sc->prev[2].word != W_PG_CATALOG))
		sc->writes = sc->calls = true;
}

/*
 * A plain '...' literal (no escapes, no quotes) holding a listed setting's
 * name, folded as Postgres looks settings up (ASCII only).
 */
static bool is_listed_setting_literal(const char *sql, const struct token *t)
{
	char key[STMT_KEY_MAX];
	size_t n;

	if (t->kind != TOK_STRING || t->len < 2 || sql[t->start] != '\'' ||
	    t->len - 2 >= sizeof(key))
		return false;
	for (n = 0; n < t->len - 2; n++) {
		char c = sql[t->start + 1 + n];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
			return false;
		key[n] = c;
	}
	key[n] = '\0';
	return n > 0 && classify_setting_is_listed(key);
}

/*
 * set_config(name, value, is_local) keeps its setting for the session unless
 * is_local is true; only the literal true is taken for it. One pg_settings
 * lists, named by a literal, is read by the check before a move.
 */
static void scan_set_config(struct stmt_scan *sc, const char *sql, const struct token *t)
{
	if (sc->set_config_depth == 0 || sc->depth != sc->set_config_depth)
		return;
	if (t->kind == TOK_PUNCT && sql[t->start] == ',') {
		sc->set_config_commas++;
	} else if (t->kind == TOK_PUNCT && sql[t->start] == ')') {
		if (!sc->is_set_config_local)
			scan_pin(sc, sc->is_set_config_listed ? SET_CONFIG_LISTED_REASON
							      : SET_CONFIG_REASON);
		sc->set_config_depth = 0;
	} else if (sc->set_config_commas == 0) {
		/* The literal alone: right after the parenthesis, nothing else after it. */
		sc->is_set_config_listed =
			sc->prev[0].punct == '(' && is_listed_setting_literal(sql, t);
	} else if (sc->set_config_commas == 2) {
		/* The literal alone: "true" right after the comma, nothing else after it. */
		sc->is_set_config_local = t->word == W_TRUE && sc->prev[0].kind == TOK_PUNCT;
	}
}

static void scan_token(struct stmt_scan *sc, const char *sql, const struct token *t)
{
	const struct recent *p = sc->prev;

	scan_set_config(sc, sql, t);
	/* pg_temp.name: an object in the session's own schema (a function, a type, ...). */
	if (t->kind == TOK_PUNCT && sql[t->start] == '.' && p[0].word == W_PG_TEMP)
		scan_pin(sc, "an object in pg_temp");

	if (t->is_unterminated)
		sc->is_unterminated = true;
	switch (t->word) {
	case W_INSERT:
	case W_UPDATE:
	case W_DELETE:
	case W_MERGE:
	case W_ANALYZE: /* EXPLAIN ANALYZE runs the statement */
	case W_INTO:    /* SELECT INTO creates a table */
		sc->writes = true;
		break;
	case W_SHARE:
	case W_NO:
	case W_KEY:
		/* FOR SHARE, FOR NO KEY UPDATE, FOR KEY SHARE (FOR UPDATE writes anyway) */
		if (p[0].word == W_FOR)
			sc->writes = true;
		break;
	case W_TEMP:
	case W_TEMPORARY:
		/* SELECT ... INTO [LOCAL | GLOBAL] TEMP t */
		if (p[0].word == W_INTO ||
		    ((p[0].word == W_LOCAL || p[0].word == W_GLOBAL) && p[1].word == W_INTO))
			scan_pin(sc, "a temporary table");
		break;
	default:
		break;
	}
	if (t->kind == TOK_PUNCT) {
		if (sql[t->start] == '(') {
			scan_call(sc);
			sc->depth++;
		} else if (sql[t->start] == ')' && sc->depth > 0) {
			sc->depth--;
		}
	}
	/* INSERT INTO s.t (a, b): the parenthesis after the table's name is its column list. */
	sc->is_naming_table =
		t->word == W_INTO ||
		(sc->is_naming_table && (t->kind == TOK_IDENT || t->kind == TOK_QIDENT ||
					 (t->kind == TOK_PUNCT && sql[t->start] == '.')));
	sc->prev[2] = sc->prev[1];
	sc->prev[1] = sc->prev[0];
	sc->prev[0] = (struct recent){t->kind, t->word, t->flags,
				      t->kind == TOK_PUNCT ? sql[t->start] : '\0'};
}

/* ---- Recognising a statement by how it starts ---- */

/* Re-lexes a statement from its start, for the handful of tokens that decide its form. */
struct cursor {
	const char *sql;
	size_t pos, end;
};

static void next_token(struct cursor *c, struct token *t)
{
	lex(c->sql, c->end, &c->pos, t);
}

static bool next_is(struct cursor *c, enum word w)
{
	struct token t;

	next_token(c, &t);
	return t.word == w;
}

/* A key being built into stmt_info.key, cut to NAMEDATALEN - 1 bytes like Postgres does. */
struct key_builder {
	char *buf;
	size_t n;
	bool is_full;
};

static void key_put(struct key_builder *k, char c)
{
	if (k->is_full)
		return;
	if (k->n + 1 < STMT_KEY_MAX) {
		k->buf[k->n++] = c;
		k->buf[k->n] = '\0';
		return;
	}
	k->is_full = true;
	/* Don't leave half a UTF-8 character at the cut (pg_mbcliplen). */
	if (((unsigned char)c & 0xc0) == 0x80) {
		while (k->n > 0 && ((unsigned char)k->buf[k->n - 1] & 0xc0) == 0x80)
			k->n--;
		if (k->n > 0)
			k->n--;
		k->buf[k->n] = '\0';
	}
}

/*
 * Append an identifier as Postgres names it: unquoted folds to lower case,
 * quoted is taken as written with "" unescaped. Setting names fold even when
 * quoted, since the server looks them up case-insensitively.
 */
static void key_put_name(struct key_builder *k, const char *sql, const struct token *t,
			 bool fold_quoted)
{
	const char *s = sql + t->start;
	size_t n = t->len;
	bool fold = fold_quoted || t->kind == TOK_IDENT;

	if (t->kind == TOK_QIDENT) {
		s++;
		n -= 2;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (t->kind == TOK_QIDENT && c == '"')
			i++; /* the first of a doubled quote */
		key_put(k, fold && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
	}
}

static enum stmt_class session_key(struct stmt_info *info, enum session_op op, const char *sql,
				   const struct token *name, bool fold_quoted)
{
	struct key_builder k = {info->key, 0, false};

	if (!is_name(name))
		return STMT_OTHER;
	key_put_name(&k, sql, name, fold_quoted);
	info->op = op;
	return STMT_SESSION;
}

static enum stmt_class session_fixed_key(struct stmt_info *info, enum session_op op,
					 const char *key)
{
	/* Every literal key is far below STMT_KEY_MAX. */
	strcpy(info->key, key);
	info->op = op;
	return STMT_SESSION;
}

/*
 * The setting a SET or RESET names, starting at t: the SQL-standard spellings
 * map to the parameter they set, anything else is a possibly dotted name
 * (SET myapp.user_id = 5).
 */
static enum stmt_class setting_key(struct cursor *c, struct token *t, enum session_op op,
				   struct stmt_info *info)
{
	struct key_builder k = {info->key, 0, false};

	switch (t->word) {
	case W_TIME:
		return next_is(c, W_ZONE) ? session_fixed_key(info, op, "timezone") : STMT_OTHER;
	case W_NAMES:
		return session_fixed_key(info, op, "client_encoding");
	case W_SCHEMA:
		return session_fixed_key(info, op, "search_path");
	case W_ROLE:
		return session_fixed_key(info, op, "role");
	case W_XML:
		return next_is(c, W_OPTION) ? session_fixed_key(info, op, "xmloption") : STMT_OTHER;
	case W_SESSION:
		return next_is(c, W_AUTHORIZATION)
			       ? session_fixed_key(info, op, "session_authorization")
			       : STMT_OTHER;
	default:
		break;
	}
	for (;;) {
		if (!is_name(t))
			return STMT_OTHER;
		key_put_name(&k, c->sql, t, true);
		next_token(c, t);
		if (!is_punct(c->sql, t, '.'))
			break;
		key_put(&k, '.');
		next_token(c, t);
	}
	info->op = op;
	return STMT_SESSION;
}

static enum stmt_class classify_set(struct cursor *c, struct stmt_info *info)
{
	struct token t;

	next_token(c, &t);
	/* SET LOCAL dies with the transaction: nothing to replay. */
	if (t.word == W_LOCAL)
		return STMT_OTHER;
	if (t.word == W_SESSION) {
		struct cursor peek = *c;
		struct token u;

		next_token(&peek, &u);
		if (u.word == W_CHARACTERISTICS)
			/* The defaults for later transactions: session state with no one name. */
			return session_fixed_key(info, SESSION_SET, "session characteristics");
		if (u.word != W_AUTHORIZATION) {
			/* SET SESSION name: the default scope, said aloud */
			*c = peek;
			t = u;
		}
	}
	switch (t.word) {
	case W_TRANSACTION:
		return STMT_TX;
	case W_CONSTRAINTS:
		return STMT_OTHER; /* transaction-scoped */
	default:
		return setting_key(c, &t, SESSION_SET, info);
	}
}

static enum stmt_class classify_reset(struct cursor *c, struct stmt_info *info)
{
	struct token t;

	next_token(c, &t);
	switch (t.word) {
	case W_ALL:
		info->op = SESSION_RESET_ALL;
		return STMT_SESSION;
	case W_TRANSACTION:
		return STMT_OTHER; /* RESET TRANSACTION ISOLATION LEVEL: transaction-scoped */
	default:
		return setting_key(c, &t, SESSION_RESET, info);
	}
}

static enum stmt_class classify_prepare(struct cursor *c, struct stmt_info *info)
{
	struct token name, t;

	next_token(c, &name);
	if (name.word == W_TRANSACTION) {
		/* PREPARE TRANSACTION 'gid', unless a statement is called "transaction" */
		struct cursor peek = *c;

		next_token(&peek, &t);
		if (t.kind == TOK_STRING)
			return STMT_TX;
	}
	return session_key(info, SESSION_PREPARE, c->sql, &name, false);
}

static enum stmt_class classify_deallocate(struct cursor *c, struct stmt_info *info)
{
	struct token t;

	next_token(c, &t);
	if (t.word == W_PREPARE)
		next_token(c, &t);
	if (t.word == W_ALL) {
		info->op = SESSION_DEALLOCATE_ALL;
		return STMT_SESSION;
	}
	return session_key(info, SESSION_DEALLOCATE, c->sql, &t, false);
}

static enum stmt_class classify_unlisten(struct cursor *c, struct stmt_info *info)
{
	struct token t;

	next_token(c, &t);
	if (is_punct(c->sql, &t, '*')) {
		info->op = SESSION_UNLISTEN_ALL;
		return STMT_SESSION;
	}
	return session_key(info, SESSION_UNLISTEN, c->sql, &t, false);
}

static const char *temp_reason(enum word kind)
{
	switch (kind) {
	case W_TABLE:
		return "a temporary table";
	case W_VIEW:
		return "a temporary view";
	case W_SEQUENCE:
		return "a temporary sequence";
	default:
		return NULL;
	}
}

/*
 * CREATE [OR REPLACE] [GLOBAL | LOCAL] {TEMP | TEMPORARY} [UNLOGGED] [RECURSIVE]
 * {TABLE | VIEW | SEQUENCE}, or the same without TEMP on a name in pg_temp.
 */
static enum stmt_class classify_create(struct cursor *c, struct stmt_info *info)
{
	struct token t;
	bool is_temp = false;
	enum word kind;

	next_token(c, &t);
	if (t.word == W_OR && next_is(c, W_REPLACE))
		next_token(c, &t);
	if (t.word == W_GLOBAL || t.word == W_LOCAL)
		next_token(c, &t);
	if (t.word == W_TEMP || t.word == W_TEMPORARY) {
		is_temp = true;
		next_token(c, &t);
	}
	if (t.word == W_UNLOGGED)
		next_token(c, &t);
	if (t.word == W_RECURSIVE)
		next_token(c, &t);
	kind = t.word;
	if (temp_reason(kind) == NULL)
		return STMT_OTHER;
	if (!is_temp) {
		next_token(c, &t);
		if (t.word == W_IF && next_is(c, W_NOT) && next_is(c, W_EXISTS))
			next_token(c, &t);
		if (t.word != W_PG_TEMP)
			return STMT_OTHER;
		next_token(c, &t);
		if (!is_punct(c->sql, &t, '.'))
			return STMT_OTHER;
	}
	info->reason = temp_reason(kind);
	return STMT_UNMOVABLE;
}

/* DECLARE name [options] CURSOR [WITH HOLD | WITHOUT HOLD] FOR query */
static enum stmt_class classify_declare(struct cursor *c, struct stmt_info *info)
{
	struct token t;

	for (next_token(c, &t); t.kind != TOK_END && t.word != W_FOR; next_token(c, &t)) {
		if (t.word == W_WITH && next_is(c, W_HOLD)) {
			info->reason = "a cursor WITH HOLD";
			return STMT_UNMOVABLE;
		}
	}
	return STMT_OTHER;
}

/* A query proper, possibly parenthesized: (SELECT 1) UNION (SELECT 2). */
static enum stmt_class classify_query_head(struct cursor *c, struct token *t)
{
	while (is_punct(c->sql, t, '('))
		next_token(c, t);
	switch (t->word) {
	case W_SELECT:
	case W_VALUES:
	case W_TABLE:
	case W_WITH:
		return STMT_READ;
	default:
		return STMT_OTHER;
	}
}

/* EXPLAIN [(options)] [ANALYZE] [VERBOSE] query; ANALYZE marked the statement as writing. */
static enum stmt_class classify_explain(struct cursor *c)
{
	struct token t;

	next_token(c, &t);
	if (is_punct(c->sql, &t, '(')) {
		size_t depth = 1;

		while (depth > 0 && t.kind != TOK_END) {
			next_token(c, &t);
			if (is_punct(c->sql, &t, '('))
				depth++;
			else if (is_punct(c->sql, &t, ')'))
				depth--;
		}
		next_token(c, &t);
	}
	while (t.word == W_ANALYZE || t.word == W_VERBOSE)
		next_token(c, &t);
	return classify_query_head(c, &t);
}

static enum stmt_class classify_head(const char *sql, struct stmt_info *info)
{
	struct cursor c = {sql, info->start, info->start + info->len};
	struct token t;

	next_token(&c, &t);
	switch (t.word) {
	case W_SHOW:
		return STMT_READ;
	case W_EXPLAIN:
		return classify_explain(&c);
	case W_BEGIN:
	case W_START:
	case W_COMMIT:
	case W_END:
	case W_ROLLBACK:
	case W_ABORT:
	case W_SAVEPOINT:
	case W_RELEASE:
		return STMT_TX;
	case W_SET:
		return classify_set(&c, info);
	case W_RESET:
		return classify_reset(&c, info);
	case W_PREPARE:
		return classify_prepare(&c, info);
	case W_DEALLOCATE:
		return classify_deallocate(&c, info);
	case W_LISTEN:
		next_token(&c, &t);
		return session_key(info, SESSION_LISTEN, sql, &t, false);
	case W_UNLISTEN:
		return classify_unlisten(&c, info);
	case W_DISCARD:
		if (!next_is(&c, W_ALL))
			return STMT_OTHER; /* DISCARD TEMP/PLANS/SEQUENCES: not replayed */
		info->op = SESSION_DISCARD_ALL;
		return STMT_SESSION;
	case W_CREATE:
		return classify_create(&c, info);
	case W_LOAD:
		info->reason = LOAD_REASON;
		return STMT_UNMOVABLE;
	case W_DECLARE:
		return classify_declare(&c, info);
	default:
		return classify_query_head(&c, &t);
	}
}

/* ---- Splitting ---- */

/* t is the word w, in any case, quoted or not as Postgres would take it (not quoted). */
static bool is_word(const char *sql, const struct token *t, const char *w)
{
	return t->kind == TOK_IDENT && t->len == strlen(w) &&
	       strncasecmp(sql + t->start, w, t->len) == 0;
}

/* DO, CALL, EXECUTE: statements that run code by name, without a call's parentheses. */
static bool starts_code_statement(const char *sql, const struct stmt_info *info)
{
	struct cursor c = {sql, info->start, info->start + info->len};
	struct token t;

	next_token(&c, &t);
	return is_word(sql, &t, "do") || is_word(sql, &t, "call") || is_word(sql, &t, "execute");
}

struct splitter {
	const char *sql;
	size_t len, pos;
};

/* The next non-empty statement, classified; false at the end of the text. */
static bool split_next(struct splitter *sp, struct stmt_info *info)
{
	struct stmt_scan sc = {0};
	struct token t;
	bool is_empty = true;
	size_t end = 0;

	for (;;) {
		lex(sp->sql, sp->len, &sp->pos, &t);
		if (t.kind == TOK_END)
			break;
		if (sc.depth == 0 && is_punct(sp->sql, &t, ';')) {
			if (!is_empty)
				break;
			continue;
		}
		if (is_empty) {
			is_empty = false;
			info->start = t.start;
		}
		end = t.start + t.len;
		scan_token(&sc, sp->sql, &t);
	}
	if (is_empty)
		return false;
	info->len = end - info->start;
	info->op = SESSION_NONE;
	info->key[0] = '\0';
	info->reason = NULL;
	info->runs_code = false;
	if (sc.is_unterminated) {
		info->cls = STMT_OTHER; /* the server rejects it */
		return true;
	}
	info->cls = classify_head(sp->sql, info);
	if (sc.unmovable != NULL && (info->cls != STMT_UNMOVABLE ||
				     stronger_pin(info->reason, sc.unmovable) != info->reason)) {
		info->cls = STMT_UNMOVABLE;
		info->reason = sc.unmovable;
	} else if (info->cls == STMT_READ && sc.writes) {
		info->cls = STMT_OTHER;
	}
	if (info->cls != STMT_SESSION) {
		info->op = SESSION_NONE;
		info->key[0] = '\0';
	}
	info->runs_code = sc.calls || starts_code_statement(sp->sql, info);
	info->is_seen_by_check = info->cls == STMT_UNMOVABLE && is_seen_by_check(info->reason);
	return true;
}

size_t classify_query(const char *sql, size_t len, struct stmt_info *out, size_t max)
{
	struct splitter sp = {sql, len, 0};
	struct stmt_info scratch;
	size_t n = 0;

	while (split_next(&sp, n < max ? &out[n] : &scratch))
		n++;
	return n;
}

/*
 * Zero statements count as READ: an empty query changes nothing and is as
 * safe to repeat as a SELECT.
 */
enum stmt_class classify_query_class(const char *sql, size_t len)
{
	struct splitter sp = {sql, len, 0};
	struct stmt_info info;

	while (split_next(&sp, &info))
		if (info.cls != STMT_READ)
			return STMT_OTHER;
	return STMT_READ;
}

bool classify_query_runs_code(const char *sql, size_t len)
{
	struct splitter sp = {sql, len, 0};
	struct stmt_info info;

	while (split_next(&sp, &info))
		if (info.runs_code)
			return true;
	return false;
}

/* ---- Settings by name ---- */

bool classify_setting_is_custom(const char *key)
{
	return strchr(key, '.') != NULL;
}

bool classify_setting_is_identity(const char *key)
{
	return strcmp(key, "role") == 0 || strcmp(key, "session_authorization") == 0;
}

bool classify_setting_is_listed(const char *key)
{
	return !classify_setting_is_custom(key) && !classify_setting_is_identity(key);
}

/* ---- Statements that make pooled logins stale (classify_login_changes) ---- */

/* The next token as a name (folded as Postgres does) into buf; false if it is none. */
static bool next_name(struct cursor *c, struct token *t, char buf[STMT_KEY_MAX])
{
	struct key_builder k = {buf, 0, false};

	next_token(c, t);
	buf[0] = '\0';
	if (!is_name(t))
		return false;
	key_put_name(&k, c->sql, t, false);
	return true;
}

/* The role of ALTER ROLE: a name, or NULL for ALL and the keywords that mean the session's. */
static const char *role_named(const char *sql, const struct token *t, const char *name)
{
	if (t->kind != TOK_IDENT)
		return name;
	return is_word(sql, t, "all") || is_word(sql, t, "current_user") ||
			       is_word(sql, t, "session_user") || is_word(sql, t, "current_role")
		       ? NULL
		       : name;
}

static bool next_is_database(struct cursor *c)
{
	struct token t;

	next_token(c, &t);
	return is_word(c->sql, &t, "database");
}

/* ALTER DATABASE d {SET|RESET|RENAME} ..., ALTER {ROLE|USER} r [IN DATABASE d] {SET|RESET} ... */
static bool login_change_of_alter(struct cursor *c, char *database, char *role, const char **d,
				  const char **r)
{
	struct token t, what;

	next_token(c, &what);
	if (is_word(c->sql, &what, "database")) {
		if (!next_name(c, &t, database))
			return false;
		next_token(c, &t);
		*d = database;
		return t.word == W_SET || t.word == W_RESET || is_word(c->sql, &t, "rename");
	}
	if (what.word != W_ROLE && !is_word(c->sql, &what, "user"))
		return false;
	if (!next_name(c, &t, role) && !is_word(c->sql, &t, "all"))
		return false;
	*r = role_named(c->sql, &t, role);
	next_token(c, &t);
	if (is_word(c->sql, &t, "in")) {
		if (!next_is_database(c) || !next_name(c, &t, database))
			return false;
		*d = database;
		next_token(c, &t);
	}
	return t.word == W_SET || t.word == W_RESET;
}

/* DROP DATABASE [IF EXISTS] d; CREATE DATABASE n ... TEMPLATE [=] d ... */
static bool login_change_of_drop_or_create(struct cursor *c, bool is_drop, char *database)
{
	struct token t;

	if (!next_is_database(c))
		return false;
	if (is_drop) {
		struct cursor after_if = *c;

		next_token(&after_if, &t);
		if (t.word == W_IF && next_is(&after_if, W_EXISTS))
			*c = after_if;
		return next_name(c, &t, database);
	}
	for (next_token(c, &t); t.kind != TOK_END; next_token(c, &t)) {
		if (!is_word(c->sql, &t, "template"))
			continue;
		{
			struct cursor peek = *c;

			next_token(&peek, &t);
			if (is_punct(c->sql, &t, '='))
				*c = peek;
		}
		return next_name(c, &t, database);
	}
	return false;
}

/* The text names a database, a role or a user somewhere: else no statement is one of those. */
static bool mentions_login_words(const char *sql, size_t len)
{
	static const char *const words_of[] = {"database", "role", "user"};

	for (size_t i = 0; i < len; i++) {
		char c = (char)(sql[i] | 0x20);

		if (c != 'd' && c != 'r' && c != 'u')
			continue;
		for (size_t w = 0; w < ARRAY_SIZE(words_of); w++) {
			size_t n = strlen(words_of[w]);

			if (len - i >= n && strncasecmp(sql + i, words_of[w], n) == 0)
				return true;
		}
	}
	return false;
}

void classify_login_changes(const char *sql, size_t len,
			    void (*found)(void *arg, const char *database, const char *role),
			    void *arg)
{
	struct splitter sp = {sql, len, 0};
	struct stmt_info info;

	if (!mentions_login_words(sql, len))
		return;

	while (split_next(&sp, &info)) {
		struct cursor c = {sql, info.start, info.start + info.len};
		char database[STMT_KEY_MAX], role[STMT_KEY_MAX];
		const char *d = NULL, *r = NULL;
		struct token t;
		bool is_change = false;

		next_token(&c, &t);
		if (is_word(sql, &t, "alter")) {
			is_change = login_change_of_alter(&c, database, role, &d, &r);
		} else if (t.word == W_CREATE || is_word(sql, &t, "drop")) {
			is_change =
				login_change_of_drop_or_create(&c, t.word != W_CREATE, database);
			d = database;
		}
		if (is_change)
			found(arg, d, r);
	}
}

static bool starts_with_word(const char *s, size_t n, const char *w)
{
	size_t i;

	/* ASCII folding, as the lexer's: only 'A'..'Z' | 0x20 gives 'a'..'z'. */
	for (i = 0; w[i] != '\0'; i++)
		if (i >= n || ((unsigned char)s[i] | 0x20) != (unsigned char)w[i])
			return false;
	return true;
}

bool classify_may_read(const char *sql, size_t len)
{
	struct cursor c = {sql, 0, len};
	struct token t;
	size_t i = 0;

	/*
	 * Most queries start with a plain SELECT: a word at the first non-blank
	 * byte is the first token (no comment, quote or parenthesis before it),
	 * so those six letters and a byte no identifier continues with settle it
	 * without the lexer.
	 */
	while (i < len && is_space((unsigned char)sql[i]))
		i++;
	if (len - i > 6 && starts_with_word(sql + i, 6, "select") &&
	    !is_ident_char((unsigned char)sql[i + 6]))
		return true;
	do
		next_token(&c, &t);
	while (is_punct(sql, &t, ';'));
	if (t.word == W_SHOW || t.word == W_EXPLAIN)
		return true;
	return classify_query_head(&c, &t) == STMT_READ;
}

/*
 * Every statement classify_head() and scan_token() call SESSION or UNMOVABLE
 * has one of these words, in any case, at the start of a token or after a '_'
 * in one: SET, RESET; LISTEN, UNLISTEN; PREPARE; DEALLOCATE; DISCARD; TEMP,
 * TEMPORARY, pg_temp; WITH HOLD; pg_[try_]advisory_lock[_shared]; LOAD;
 * set_config. Keep in step with those.
 */

static bool is_state_word(const char *s, size_t n)
{
	switch ((unsigned char)s[0] | 0x20) {
	case 'a':
		return starts_with_word(s, n, "advisory");
	case 'd':
		return starts_with_word(s, n, "deallocate") || starts_with_word(s, n, "discard");
	case 'h':
		return starts_with_word(s, n, "hold");
	case 'l':
		return starts_with_word(s, n, "listen") || starts_with_word(s, n, "load");
	case 'p':
		return starts_with_word(s, n, "prepare");
	case 'r':
		return starts_with_word(s, n, "reset");
	case 's':
		return starts_with_word(s, n, "set");
	case 't':
		return starts_with_word(s, n, "temp");
	case 'u':
		return starts_with_word(s, n, "unlisten");
	default:
		return false;
	}
}

/*
 * The letters among 8 bytes, as 0x80 in each byte that is one: what
 * char_class calls C_LETTER ('A'..'Z', 'a'..'z', non-ASCII), eight at a time.
 * Byte k of the text is byte k of the word, least significant first.
 */
#define BYTES(b) (0x0101010101010101ULL * (b))

static uint64_t letters_of(const char *s)
{
	uint64_t x, folded;

	memcpy(&x, s, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	/* ASCII folding as the lexer's; then 'a' <= b <= 'z' without a carry between bytes. */
	folded = (x | BYTES(0x20)) & BYTES(0x7f);
	return ((folded + BYTES(0x80 - 'a')) & ~(folded + BYTES(0x80 - 'z' - 1)) & BYTES(0x80)) |
	       (x & BYTES(0x80));
}

/*
 * A word starts after anything but a letter or non-ASCII byte: a keyword may
 * follow a digit or '$' with no space ("1set" lexes as 1, set), so those count
 * as ends too, and so does '_' for the words inside function names. Every Query
 * passes here, so the text is read eight bytes at a time and only the starts
 * of words are looked at.
 */
bool classify_may_keep_state(const char *sql, size_t len)
{
	uint64_t prev = 0; /* 0x80 in the low byte: the byte before this block is a letter */

	for (size_t i = 0; i < len; i += 8) {
		char tail[8] = {0}; /* NUL is no letter */
		uint64_t letters, starts;

		if (len - i >= 8) {
			letters = letters_of(sql + i);
		} else {
			memcpy(tail, sql + i, len - i);
			letters = letters_of(tail);
		}
		starts = letters & ~((letters << 8) | prev);
		prev = letters >> 56;
		for (; starts != 0; starts &= starts - 1) {
			size_t at = i + (size_t)__builtin_ctzll(starts) / 8;

			if (is_state_word(sql + at, len - at))
				return true;
		}
	}
	return false;
}
