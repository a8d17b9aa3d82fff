/*
 * Statement classification and replayable session state: the tables below are
 * the spec of what a session move may retry or replay.
 */
#include "pgwing/classify.h"
#include "pgwing/session.h"

#include <event2/buffer.h>

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct single_case {
	const char *sql;
	enum stmt_class cls;
	enum session_op op;
	const char *key; /* STMT_SESSION with a name; else "" */
};

/* Each string is one statement (empty statements and trailing ';' aside). */
static const struct single_case single_cases[] = {
	/* Provably read-only */
	{"SELECT abalance FROM pgbench_accounts WHERE aid = 42;", STMT_READ, SESSION_NONE, ""},
	{"select 1", STMT_READ, SESSION_NONE, ""},
	{"select count(*) from t", STMT_READ, SESSION_NONE, ""},
	{"SELECT pg_catalog.count(*) FROM t", STMT_READ, SESSION_NONE, ""},
	{"select x::numeric(10,2), cast(y as varchar(3)), z::character varying(4) from t",
	 STMT_READ, SESSION_NONE, ""},
	{"select * from t where a in (1, 2) and exists (select 1) or b = any(array[1])", STMT_READ,
	 SESSION_NONE, ""},
	{"select g from generate_series(1, 3) as g(i) join u using (id)", STMT_READ, SESSION_NONE,
	 ""},
	{"with recursive r(n) as (select 1 union all select n + 1 from r) select * from r",
	 STMT_READ, SESSION_NONE, ""},
	{"with x as not materialized (select 1) select * from x", STMT_READ, SESSION_NONE, ""},
	{"select * from t tablesample bernoulli (10) repeatable (1)", STMT_READ, SESSION_NONE, ""},
	{"(select 1) union (select 2)", STMT_READ, SESSION_NONE, ""},
	{"values (1), (2)", STMT_READ, SESSION_NONE, ""},
	{"TABLE t", STMT_READ, SESSION_NONE, ""},
	{"show search_path", STMT_READ, SESSION_NONE, ""},
	{"select substring(s from 1 for 2), now(), pg_is_in_recovery()", STMT_READ, SESSION_NONE,
	 ""},
	{"select count(*) filter (where x) over (partition by y) from t", STMT_READ, SESSION_NONE,
	 ""},
	{"select $1::int, $$ a ; $1 $$, $f$ x $$ y $f$", STMT_READ, SESSION_NONE, ""},
	{"select 'nextval(', \"nextval\", E'\\'nextval(' from t", STMT_READ, SESSION_NONE, ""},
	{"explain select 1", STMT_READ, SESSION_NONE, ""},
	{"EXPLAIN (costs off, format json) VERBOSE select 1", STMT_READ, SESSION_NONE, ""},
	{"/* a /* nested */ comment ; */ select 1 -- trailing ;", STMT_READ, SESSION_NONE, ""},
	{"select \"COUNT\"(*) from t", STMT_OTHER, SESSION_NONE, ""},
	/* Can't be proven read-only */
	{"select nextval('s')", STMT_OTHER, SESSION_NONE, ""},
	{"select myschema.count(*) from t", STMT_OTHER, SESSION_NONE, ""},
	{"select * from t for update", STMT_OTHER, SESSION_NONE, ""},
	{"select * from t for no key update", STMT_OTHER, SESSION_NONE, ""},
	{"select * from t for key share", STMT_OTHER, SESSION_NONE, ""},
	{"select * from t for share", STMT_OTHER, SESSION_NONE, ""},
	{"with d as (delete from t returning *) select * from d", STMT_OTHER, SESSION_NONE, ""},
	{"select * into t2 from t", STMT_OTHER, SESSION_NONE, ""},
	{"select 1into t2", STMT_OTHER, SESSION_NONE, ""},
	{"explain analyze select 1", STMT_OTHER, SESSION_NONE, ""},
	{"explain (analyze) select 1", STMT_OTHER, SESSION_NONE, ""},
	{"explain delete from t", STMT_OTHER, SESSION_NONE, ""},
	{"select pg_advisory_xact_lock(1)", STMT_OTHER, SESSION_NONE, ""},
	{"select f(x) from t", STMT_OTHER, SESSION_NONE, ""},
	{"insert into t values (1)", STMT_OTHER, SESSION_NONE, ""},
	{"do $$ begin perform 1; end $$", STMT_OTHER, SESSION_NONE, ""},
	{"set local work_mem = '1MB'", STMT_OTHER, SESSION_NONE, ""},
	{"set constraints all deferred", STMT_OTHER, SESSION_NONE, ""},
	{"discard temp", STMT_OTHER, SESSION_NONE, ""},
	{"declare c cursor for select 1", STMT_OTHER, SESSION_NONE, ""},
	{"create table t (a int)", STMT_OTHER, SESSION_NONE, ""},
	/* Unterminated: the server rejects it, so it is nothing */
	{"select 'abc", STMT_OTHER, SESSION_NONE, ""},
	{"select \"abc", STMT_OTHER, SESSION_NONE, ""},
	{"select $q$ abc $q", STMT_OTHER, SESSION_NONE, ""},
	{"select E'abc\\'", STMT_OTHER, SESSION_NONE, ""},
	{"select 1 /* /* */", STMT_OTHER, SESSION_NONE, ""},
	{"set x = 1 /*", STMT_OTHER, SESSION_NONE, ""},
	/* Transaction control */
	{"BEGIN", STMT_TX, SESSION_NONE, ""},
	{"start transaction isolation level serializable", STMT_TX, SESSION_NONE, ""},
	{"commit", STMT_TX, SESSION_NONE, ""},
	{"END", STMT_TX, SESSION_NONE, ""},
	{"rollback to savepoint a", STMT_TX, SESSION_NONE, ""},
	{"abort", STMT_TX, SESSION_NONE, ""},
	{"savepoint a", STMT_TX, SESSION_NONE, ""},
	{"release a", STMT_TX, SESSION_NONE, ""},
	{"prepare transaction 'g'", STMT_TX, SESSION_NONE, ""},
	{"commit prepared 'g'", STMT_TX, SESSION_NONE, ""},
	{"rollback prepared 'g'", STMT_TX, SESSION_NONE, ""},
	{"set transaction read only", STMT_TX, SESSION_NONE, ""},
	{"set session transaction read only", STMT_TX, SESSION_NONE, ""},
	/* Replayable session state */
	{"SET search_path = a, b", STMT_SESSION, SESSION_SET, "search_path"},
	{"set session Work_Mem to '4MB'", STMT_SESSION, SESSION_SET, "work_mem"},
	{"set \"Work_Mem\" to '4MB'", STMT_SESSION, SESSION_SET, "work_mem"},
	{"set myapp.User_Id = 5", STMT_SESSION, SESSION_SET, "myapp.user_id"},
	{"set search_path from current", STMT_SESSION, SESSION_SET, "search_path"},
	{"set time zone 'UTC'", STMT_SESSION, SESSION_SET, "timezone"},
	{"set names 'UTF8'", STMT_SESSION, SESSION_SET, "client_encoding"},
	{"set schema 'x'", STMT_SESSION, SESSION_SET, "search_path"},
	{"set role app", STMT_SESSION, SESSION_SET, "role"},
	{"set session role app", STMT_SESSION, SESSION_SET, "role"},
	{"set session authorization app", STMT_SESSION, SESSION_SET, "session_authorization"},
	{"set xml option document", STMT_SESSION, SESSION_SET, "xmloption"},
	{"set session characteristics as transaction read only", STMT_SESSION, SESSION_SET,
	 "session characteristics"},
	{"reset work_mem", STMT_SESSION, SESSION_RESET, "work_mem"},
	{"reset time zone", STMT_SESSION, SESSION_RESET, "timezone"},
	{"reset session authorization", STMT_SESSION, SESSION_RESET, "session_authorization"},
	{"reset all", STMT_SESSION, SESSION_RESET_ALL, ""},
	{"reset transaction isolation level", STMT_OTHER, SESSION_NONE, ""},
	{"listen Chan", STMT_SESSION, SESSION_LISTEN, "chan"},
	{"listen \"Chan\"\"x\"", STMT_SESSION, SESSION_LISTEN, "Chan\"x"},
	{"unlisten chan", STMT_SESSION, SESSION_UNLISTEN, "chan"},
	{"unlisten *", STMT_SESSION, SESSION_UNLISTEN_ALL, ""},
	{"prepare Q1 (int) as select $1", STMT_SESSION, SESSION_PREPARE, "q1"},
	{"prepare transaction as select 1", STMT_SESSION, SESSION_PREPARE, "transaction"},
	{"deallocate q1", STMT_SESSION, SESSION_DEALLOCATE, "q1"},
	{"deallocate prepare \"Q1\"", STMT_SESSION, SESSION_DEALLOCATE, "Q1"},
	{"deallocate all", STMT_SESSION, SESSION_DEALLOCATE_ALL, ""},
	{"deallocate prepare all", STMT_SESSION, SESSION_DEALLOCATE_ALL, ""},
	{"DISCARD ALL", STMT_SESSION, SESSION_DISCARD_ALL, ""},
	/* Session state that can't move */
	{"create temporary table x()", STMT_UNMOVABLE, SESSION_NONE, ""},
	{"create global temp unlogged table x (a int)", STMT_UNMOVABLE, SESSION_NONE, ""},
	{"create or replace temp recursive view v as select 1", STMT_UNMOVABLE, SESSION_NONE, ""},
	{"create temp sequence s", STMT_UNMOVABLE, SESSION_NONE, ""},
	{"create table if not exists pg_temp.x (a int)", STMT_UNMOVABLE, SESSION_NONE, ""},
	{"select * into temp t2 from t", STMT_UNMOVABLE, SESSION_NONE, ""},
	{"declare c binary no scroll cursor with hold for select 1", STMT_UNMOVABLE, SESSION_NONE,
	 ""},
	{"select pg_advisory_lock(1)", STMT_UNMOVABLE, SESSION_NONE, ""},
	{"select pg_catalog.pg_try_advisory_lock_shared(1, 2)", STMT_UNMOVABLE, SESSION_NONE, ""},
	{"prepare p as select pg_advisory_lock(1)", STMT_UNMOVABLE, SESSION_NONE, ""},
};

static void test_single(void **state UNUSED)
{
	for (size_t i = 0; i < ARRAY_SIZE(single_cases); i++) {
		const struct single_case *c = &single_cases[i];
		struct stmt_info info[2];
		size_t n = classify_query(c->sql, strlen(c->sql), info, ARRAY_SIZE(info));

		if (n != 1 || info[0].cls != c->cls || info[0].op != c->op ||
		    strcmp(info[0].key, c->key) != 0 ||
		    (info[0].reason != NULL) != (c->cls == STMT_UNMOVABLE) ||
		    classify_query_class(c->sql, strlen(c->sql)) !=
			    (c->cls == STMT_READ ? STMT_READ : STMT_OTHER))
			fail_msg("%s: %zu statements, class %d op %d key \"%s\"", c->sql, n,
				 (int)info[0].cls, (int)info[0].op, info[0].key);
	}
}

/* set_config(..., true) lasts for the transaction only: nothing to keep. */
static void test_set_config_local(void **state UNUSED)
{
	static const char *const cases[] = {
		"select set_config('request.jwt', '{}', true)",
		"select set_config('a', format('%s', 1), TRUE), 1",
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct stmt_info info;

		assert_int_equal(classify_query(cases[i], strlen(cases[i]), &info, 1), 1);
		assert_int_equal(info.cls, STMT_OTHER);
	}
}

static void test_reasons(void **state UNUSED)
{
	static const struct {
		const char *sql, *reason;
	} cases[] = {
		{"create temp table t (a int)", "a temporary table"},
		{"create temp view v as select 1", "a temporary view"},
		{"create temporary sequence s", "a temporary sequence"},
		{"declare c cursor with hold for select 1", "a cursor WITH HOLD"},
		{"select 1, pg_advisory_lock_shared(7)", "a session-level advisory lock"},
		{"select set_config('a.b', 'c', false)",
		 "a setting made with set_config(..., false)"},
		{"select set_config('a.b', 'c', is_local)",
		 "a setting made with set_config(..., false)"},
		{"select set_config('a.b', 'c', true or x)",
		 "a setting made with set_config(..., false)"},
		{"select set_config('a', set_config('b', 'c', true), true)",
		 "a setting made with set_config(..., false)"},
		{"load 'auto_explain'", "a library loaded with LOAD"},
		{"create function pg_temp.f() returns int as 'select 1' language sql",
		 "an object in pg_temp"},
		{"create domain pg_temp.d as int", "an object in pg_temp"},
		{"create statistics pg_temp.s on a, b from t", "an object in pg_temp"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct stmt_info info;

		assert_int_equal(classify_query(cases[i].sql, strlen(cases[i].sql), &info, 1), 1);
		assert_int_equal(info.cls, STMT_UNMOVABLE);
		assert_string_equal(info.reason, cases[i].reason);
	}
}

/*
 * A pin a check of the server lifts (is_seen_by_check): set_config of a
 * setting pg_settings lists, named by a plain literal, whose value the check
 * reads. Anything else set_config may set (a custom or identity setting, a
 * name that is not a literal) pins for good, also beside a pin a check would
 * lift, whichever comes first.
 */
static void test_set_config_checked(void **state UNUSED)
{
	static const struct {
		const char *sql;
		bool is_seen;
	} cases[] = {
		{"select set_config('search_path', 'x', false)", true},
		{"SELECT pg_catalog.set_config('Work_Mem', '5MB', false), 1", true},
		{"select set_config('search_path', 'x', false), pg_advisory_lock(1)", true},
		{"select set_config('role', 'low', false)", false},
		{"select set_config('session_authorization', 'low', false)", false},
		{"select set_config('myapp.user', '42', false)", false},
		{"select set_config(E'search_path', 'x', false)", false},
		{"select set_config($$search_path$$, 'x', false)", false},
		{"select set_config('search' || '_path', 'x', false)", false},
		{"select set_config(lower('SEARCH_PATH'), 'x', false)", false},
		{"select set_config(name, 'x', false) from t", false},
		{"select set_config('search path', 'x', false)", false},
		{"select set_config('', 'x', false)", false},
		{"select pg_advisory_lock(1), set_config('a.b', 'c', false)", false},
		{"select set_config('a.b', 'c', false), pg_advisory_lock(1)", false},
		{"select set_config('search_path', 'x', false), set_config('a.b', 'c', false)",
		 false},
		{"select * from pg_temp.t, set_config('a.b', 'c', false)", false},
		{"create temp table t as select set_config('a.b', 'c', false)", false},
		{"declare c cursor with hold for select set_config('a.b', 'c', false)", false},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct stmt_info info;

		assert_int_equal(classify_query(cases[i].sql, strlen(cases[i].sql), &info, 1), 1);
		assert_int_equal(info.cls, STMT_UNMOVABLE);
		if (info.is_seen_by_check != cases[i].is_seen)
			fail_msg("%s: is_seen_by_check %d", cases[i].sql, info.is_seen_by_check);
	}
	/* The settings pg_settings lists: not custom ones, not the role. */
	assert_true(classify_setting_is_listed("datestyle"));
	assert_false(classify_setting_is_listed("my.x"));
	assert_false(classify_setting_is_listed("role"));
	assert_false(classify_setting_is_listed("session_authorization"));
}

/* The text of statement i, to compare spans. */
static void assert_span(const char *sql, const struct stmt_info *info, const char *text)
{
	assert_int_equal(info->len, strlen(text));
	assert_memory_equal(sql + info->start, text, info->len);
}

static void test_split(void **state UNUSED)
{
	const char *sql = " select ';' ; ;set x = 1;-- c\n"
			  "create function f() returns int as $$ select 1; $$ language sql ;"
			  "create rule r as on insert to t do also (insert into u values (1); "
			  "insert into u values (2));";
	struct stmt_info info[4];

	assert_int_equal(classify_query(sql, strlen(sql), info, ARRAY_SIZE(info)), 4);
	assert_span(sql, &info[0], "select ';'");
	assert_int_equal(info[0].cls, STMT_READ);
	assert_span(sql, &info[1], "set x = 1");
	assert_int_equal(info[1].cls, STMT_SESSION);
	assert_string_equal(info[1].key, "x");
	assert_span(sql, &info[2],
		    "create function f() returns int as $$ select 1; $$ language sql");
	assert_int_equal(info[2].cls, STMT_OTHER);
	assert_span(sql, &info[3],
		    "create rule r as on insert to t do also (insert into u values (1); "
		    "insert into u values (2))");
	assert_int_equal(classify_query_class(sql, strlen(sql)), STMT_OTHER);
}

static void test_counts(void **state UNUSED)
{
	const char *reads = "select 1; select 2;\nselect 3";
	struct stmt_info info[2];

	/* More statements than room: all counted, the first max filled. */
	assert_int_equal(classify_query(reads, strlen(reads), info, 2), 3);
	assert_span(reads, &info[1], "select 2");
	assert_int_equal(classify_query(reads, strlen(reads), NULL, 0), 3);
	assert_int_equal(classify_query_class(reads, strlen(reads)), STMT_READ);
	/* Nothing to run is as safe to repeat as a read. */
	assert_int_equal(classify_query("", 0, info, 2), 0);
	assert_int_equal(classify_query(" ; -- x\n;/* y */", 16, info, 2), 0);
	assert_int_equal(classify_query_class(" ;; ", 4), STMT_READ);
	/* len, not the NUL, ends the text. */
	assert_int_equal(classify_query("select 1; insert", 9, info, 2), 1);
	assert_int_equal(classify_query_class("select 1; insert", 9), STMT_READ);
	assert_int_equal(classify_query_class("select 1; set x = 1", 19), STMT_OTHER);
}

static void test_key_truncation(void **state UNUSED)
{
	char sql[256], want[STMT_KEY_MAX];
	struct stmt_info info;

	/* Unquoted: folded, cut at NAMEDATALEN - 1 bytes. */
	memcpy(sql, "listen ", 7);
	memset(sql + 7, 'A', 100);
	memset(want, 'a', STMT_KEY_MAX - 1);
	want[STMT_KEY_MAX - 1] = '\0';
	assert_int_equal(classify_query(sql, 107, &info, 1), 1);
	assert_string_equal(info.key, want);

	/* A cut through a UTF-8 character drops the whole character. */
	memcpy(sql, "listen \"", 8);
	memset(sql + 8, 'b', 62);
	memcpy(sql + 70, "\xc3\xa9\"", 3);
	memset(want, 'b', 62);
	want[62] = '\0';
	assert_int_equal(classify_query(sql, 73, &info, 1), 1);
	assert_string_equal(info.key, want);
}

/* Every prefix of tricky text: no read past len (ASan), always a verdict. */
static void test_prefixes(void **state UNUSED)
{
	static const char *const texts[] = {
		"select E'a\\'b', $t$ x $t$, \"q\"\"x\", /* a /* b */ c */ 1 -- d\n; set x = 1",
		"$$",
		"$a",
		"$1",
		"e'",
		"E'\\",
		"/*/",
		"--",
		"\"\"\"",
		"'''",
		"::",
		"1e+",
		".5e-3x",
	};
	struct stmt_info info[4];

	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		size_t len = strlen(texts[i]);

		for (size_t n = 0; n <= len; n++) {
			/* Exactly n bytes, so ASan sees any read past the prefix. */
			char *copy = malloc(n ? n : 1);
			size_t count, end = 0;
			bool has_state = false;

			memcpy(copy, texts[i], n);
			count = classify_query(copy, n, info, ARRAY_SIZE(info));
			/* Statements lie inside the text, in order, and their keys end. */
			for (size_t k = 0; k < count && k < ARRAY_SIZE(info); k++) {
				assert_true(info[k].start >= end);
				assert_true(info[k].start + info[k].len <= n);
				assert_true(memchr(info[k].key, '\0', STMT_KEY_MAX) != NULL);
				end = info[k].start + info[k].len;
				has_state = has_state || info[k].cls == STMT_SESSION ||
					    info[k].cls == STMT_UNMOVABLE;
			}
			/* The cheap checks' "false" is certain (no statement is not a read). */
			if (count > 0 && classify_query_class(copy, n) == STMT_READ)
				assert_true(classify_may_read(copy, n));
			if (has_state)
				assert_true(classify_may_keep_state(copy, n));
			free(copy);
		}
	}
}

/*
 * A quoted identifier may hold a NUL byte: a name that matches a known word
 * up to it is another name, and the compare must not read past the word (the
 * fuzzer found that under ASan).
 */
static void test_quoted_nul(void **state UNUSED)
{
	static const char with_nul[] = "select \"now\0x\"()";
	static const char exact[] = "select \"now\"()";
	/* The fuzzer's input: "table\0\b" hashes to the chain that holds "table". */
	static const char found[] = "litn \"table\0\b\"x@\"nowover";

	assert_int_equal(classify_query_class(exact, sizeof(exact) - 1), STMT_READ);
	assert_int_equal(classify_query_class(with_nul, sizeof(with_nul) - 1), STMT_OTHER);
	assert_int_equal(classify_query_class(found, sizeof(found) - 1), STMT_OTHER);
}

/*
 * The data path's cheap checks: a "no" must be right, or a read would be
 * run again when it isn't one, or session state would go unrecorded.
 */
static void test_cheap_checks(void **state UNUSED)
{
	static const char *const stateful[] = {
		"create temp table t (a int)",
		"CREATE TEMPORARY SEQUENCE s",
		"create table pg_temp.t (a int)",
		"declare c cursor WITH HOLD for select 1",
		"select 1, pg_advisory_lock_shared(7)",
		"select \"pg_try_advisory_lock\"(1)",
		"ReSeT all",
		"select 1; UNLISTEN *",
		"select * into temp t from u",
		"/* x */ Discard All",
		"DEALLOCATE p",
		"PREPARE p AS select 1",
	};
	static const char *const not_read[] = {
		"insert into t values (1)",
		"copy t to stdout",
		"update t set a = 1",
		"",
		" ; -- x\n;",
		"/* unterminated select 1",
		"begin",
		"set x = 1",
		/* Longer names that start with select are not the keyword. */
		"selectx()",
		"select_it()",
		"SELECT$1",
	};
	static const char *const may_read[] = {
		" ;(( SELECT 1))",
		"/* c */ show x",
		"with x as (select 1) select * from x",
		"explain analyze select 1",
		"select nextval('s')",
		"TABLE t",
		"values (1)",
		"\n\t SeLeCt(1)",
		"select\n1",
		"select;",
		"select",
	};
	const char *pgbench = "SELECT abalance FROM pgbench_accounts WHERE aid = 42;";

	for (size_t i = 0; i < ARRAY_SIZE(single_cases); i++) {
		const struct single_case *c = &single_cases[i];
		size_t len = strlen(c->sql);

		if (c->cls == STMT_READ && !classify_may_read(c->sql, len))
			fail_msg("classify_may_read said no to a read: %s", c->sql);
		if ((c->cls == STMT_SESSION || c->cls == STMT_UNMOVABLE) &&
		    !classify_may_keep_state(c->sql, len))
			fail_msg("classify_may_keep_state missed: %s", c->sql);
	}
	for (size_t i = 0; i < ARRAY_SIZE(stateful); i++)
		if (!classify_may_keep_state(stateful[i], strlen(stateful[i])))
			fail_msg("classify_may_keep_state missed: %s", stateful[i]);
	for (size_t i = 0; i < ARRAY_SIZE(not_read); i++)
		if (classify_may_read(not_read[i], strlen(not_read[i])))
			fail_msg("classify_may_read said yes: \"%s\"", not_read[i]);
	for (size_t i = 0; i < ARRAY_SIZE(may_read); i++)
		if (!classify_may_read(may_read[i], strlen(may_read[i])))
			fail_msg("classify_may_read said no: %s", may_read[i]);
	/* The common case costs no classify_query() at all. */
	assert_true(classify_may_read(pgbench, strlen(pgbench)));
	assert_false(classify_may_keep_state(pgbench, strlen(pgbench)));
	assert_false(classify_may_keep_state("insert into t values (1)", 24));
	/* len, not the NUL, ends the text. */
	assert_false(classify_may_keep_state("select 1; set x = 1", 9));
}

/*
 * classify_may_keep_state reads eight bytes at a time: a word is found, or
 * rightly not, wherever it falls against those blocks and the end.
 */
static void test_keep_state_blocks(void **state UNUSED)
{
	static const struct {
		const char *after; /* follows a run of 1 to 19 spaces or letters */
		bool is_after_space, expect;
	} cases[] = {
		{"set x = 1", true, true},
		{"reset all", true, true},
		{"_advisory_lock(1)", false, true},
		{"set x = 1", false, false},
		{"1set", true, true},
		{"\xc3\xa9set", true, false},
		{"sex", true, false},
		{"unlisten *", true, true},
		{"x", true, false},
	};
	char text[64];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (size_t k = 1; k < 20; k++) {
			size_t n = strlen(cases[i].after);

			memset(text, cases[i].is_after_space ? ' ' : 'x', k);
			memcpy(text + k, cases[i].after, n);
			if (classify_may_keep_state(text, k + n) != cases[i].expect)
				fail_msg("classify_may_keep_state(\"%.*s\") != %d", (int)(k + n),
					 text, cases[i].expect);
		}
	}
	/* A word that ends one block goes on into the next: "xxxxxxxset" has no word "set". */
	assert_false(classify_may_keep_state("xxxxxxxset", 10));
	assert_true(classify_may_keep_state("xxxxxxx set", 11));
}

/* ---- Session state ---- */

/* Records every statement of a successfully executed query string. */
static void apply(struct session_state *st, const char *sql)
{
	struct stmt_info info[8];
	size_t n = classify_query(sql, strlen(sql), info, ARRAY_SIZE(info));

	assert_true(n <= ARRAY_SIZE(info));
	for (size_t i = 0; i < n; i++)
		session_state_apply(st, &info[i], sql, n == 1);
}

/* Removes one message from b, checking its type, and returns its body (NUL-terminated). */
static char *take_message(struct evbuffer *b, char type, size_t *body_len)
{
	char t;
	uint32_t len;
	char *body;

	assert_true(evbuffer_get_length(b) >= 5);
	evbuffer_remove(b, &t, 1);
	evbuffer_remove(b, &len, 4);
	len = ntohl(len);
	assert_int_equal(t, type);
	assert_true(len >= 4 && evbuffer_get_length(b) >= len - 4);
	*body_len = len - 4;
	body = malloc(*body_len + 1);
	evbuffer_remove(b, body, *body_len);
	body[*body_len] = '\0';
	return body;
}

/*
 * The replay must be one Query per statement, their texts joined by ";\n" in
 * query (NULL: none), then each Parse with its own Sync.
 */
static void assert_replay(const struct session_state *st, const char *query,
			  const char *const *parse_names, size_t nparse)
{
	struct evbuffer *b = evbuffer_new();
	int ready = session_state_replay(st, NULL, NULL, b), queries = 0;
	char joined[1024] = "";
	size_t len;
	char *body;

	while (evbuffer_get_length(b) > 0 && evbuffer_pullup(b, 1)[0] == 'Q') {
		body = take_message(b, 'Q', &len);
		assert_int_equal(len, strlen(body) + 1);
		if (queries++ > 0)
			strcat(joined, ";\n");
		strcat(joined, body);
		free(body);
	}
	if (query != NULL)
		assert_string_equal(joined, query);
	else
		assert_int_equal(queries, 0);
	assert_int_equal(ready, queries + (int)nparse);
	for (size_t i = 0; i < nparse; i++) {
		body = take_message(b, 'P', &len);
		assert_string_equal(body, parse_names[i]); /* the name leads the body */
		free(body);
		body = take_message(b, 'S', &len);
		assert_int_equal(len, 0);
		free(body);
	}
	assert_int_equal(evbuffer_get_length(b), 0);
	evbuffer_free(b);
}

/* A Parse message: name, query, no parameter types. */
static size_t make_parse(uint8_t *buf, size_t size, const char *name, const char *query)
{
	size_t nlen = strlen(name) + 1, qlen = strlen(query) + 1, len = 4 + nlen + qlen + 2;
	uint32_t nl = htonl((uint32_t)len);

	assert_true(len + 1 <= size);
	buf[0] = 'P';
	memcpy(buf + 1, &nl, 4);
	memcpy(buf + 5, name, nlen);
	memcpy(buf + 5 + nlen, query, qlen);
	memset(buf + 5 + nlen + qlen, 0, 2);
	return len + 1;
}

static void note_parse(struct session_state *st, const char *name, const char *query)
{
	uint8_t buf[256];
	size_t len = make_parse(buf, sizeof(buf), name, query);

	session_state_note_parse(st, name, buf, len);
}

static void test_session_sql(void **state UNUSED)
{
	struct session_state *st = session_state_new();

	assert_true(session_state_is_empty(st));
	assert_replay(st, NULL, NULL, 0);
	apply(st, "set a = 1; SET b = 2; select 1; set A = 3");
	apply(st, "listen c; listen C; prepare p as select 1; begin; set local x = 1");
	apply(st, "reset b");
	assert_false(session_state_is_empty(st));
	assert_replay(st, "set A = 3;\nlisten c;\nprepare p as select 1", NULL, 0);

	apply(st, "set time zone 'UTC'; reset timezone; unlisten *; listen d; deallocate p");
	assert_replay(st, "set A = 3;\nlisten d", NULL, 0);
	apply(st, "set search_path = x; reset all; unlisten d");
	assert_true(session_state_is_empty(st));
	assert_replay(st, NULL, NULL, 0);
	session_state_free(st);
}

/* The identity a session runs as survives RESET ALL and ends with SESSION AUTHORIZATION. */
static void test_session_identity(void **state UNUSED)
{
	struct session_state *st = session_state_new();

	apply(st, "set role low; set work_mem = '1MB'; reset all");
	assert_replay(st, "set role low", NULL, 0);
	apply(st, "reset role; set session authorization a; set role b; reset all");
	assert_replay(st, "set session authorization a;\nset role b", NULL, 0);
	apply(st, "reset session authorization");
	assert_replay(st, NULL, NULL, 0);
	apply(st, "set role b; set session authorization a");
	assert_replay(st, "set session authorization a", NULL, 0);
	session_state_free(st);
}

/* A SET of DateStyle keeps the half it does not name: every one replays. */
static void test_session_datestyle(void **state UNUSED)
{
	struct session_state *st = session_state_new();

	apply(st, "set datestyle to postgres; set work_mem = '1MB'; set datestyle to dmy");
	assert_replay(st, "set datestyle to postgres;\nset work_mem = '1MB';\nset datestyle to dmy",
		      NULL, 0);
	apply(st, "reset datestyle");
	assert_replay(st, "set work_mem = '1MB'", NULL, 0);
	session_state_free(st);
}

static void test_session_parse(void **state UNUSED)
{
	struct session_state *st = session_state_new();
	struct evbuffer *b = evbuffer_new();
	uint8_t want[256], got[256];
	size_t want_len;

	note_parse(st, "s1", "select 1");
	note_parse(st, "s2", "select 2");
	note_parse(st, "s3", "select 3");
	note_parse(st, "s1", "select 11"); /* replaces, and moves last */
	session_state_note_close(st, "s2");
	assert_replay(st, NULL, (const char *const[]){"s3", "s1"}, 2);

	/* The messages go out byte for byte as recorded. */
	apply(st, "set x = 1");
	assert_int_equal(session_state_replay(st, NULL, NULL, b), 3);
	evbuffer_drain(b, 5 + strlen("set x = 1") + 1);
	want_len = make_parse(want, sizeof(want), "s3", "select 3");
	evbuffer_remove(b, got, want_len);
	assert_memory_equal(got, want, want_len);

	/* SQL PREPARE and Parse share one namespace: DEALLOCATE and Close reach both. */
	apply(st, "prepare q as select 1; prepare r as select 2");
	note_parse(st, "q", "select 3");
	apply(st, "deallocate q");
	session_state_note_close(st, "r");
	assert_replay(st, "set x = 1", (const char *const[]){"s3", "s1"}, 2);
	apply(st, "prepare q as select 1; deallocate all");
	assert_replay(st, "set x = 1", NULL, 0);
	evbuffer_free(b);
	session_state_free(st);
}

/*
 * A PREPARE alone in its query replays the query's whole text, which Postgres
 * shows as the statement's; one among others replays its own. A prepared
 * statement that fails to replay is forgotten, anything else is not.
 */
static void test_session_prepare_text(void **state UNUSED)
{
	struct session_state *st = session_state_new();
	struct session_replay plan = {.replays_sql = true}; /* onto a fresh server */

	apply(st, "PREPARE a AS SELECT 1; -- first");
	apply(st, "set x = 1; PREPARE b AS SELECT 2");
	note_parse(st, "c", "select 3");
	assert_replay(st, "PREPARE a AS SELECT 1; -- first;\nset x = 1;\nPREPARE b AS SELECT 2",
		      (const char *const[]){"c"}, 1);
	/* The requests: a, the SET, b, c. */
	assert_false(session_state_forget_unreplayable(st, NULL, &plan, 1));
	assert_true(session_state_forget_unreplayable(st, NULL, &plan, 2));
	assert_true(session_state_forget_unreplayable(st, NULL, &plan, 2)); /* c, next after b */
	assert_false(session_state_forget_unreplayable(st, NULL, &plan, 2));
	assert_replay(st, "PREPARE a AS SELECT 1; -- first;\nset x = 1", NULL, 0);
	session_state_free(st);
}

static void test_session_unmovable(void **state UNUSED)
{
	struct session_state *st = session_state_new();

	assert_null(session_state_unmovable(st));
	apply(st, "create temp table t (a int); select pg_advisory_lock(1)");
	assert_string_equal(session_state_unmovable(st), "a temporary table");
	session_state_mark_unmovable(st, "later");
	assert_string_equal(session_state_unmovable(st), "a temporary table");
	assert_false(session_state_is_empty(st));

	/* DISCARD ALL ends everything that kept the session in place. */
	apply(st, "set a = 1; listen c; prepare p as select 1");
	note_parse(st, "s", "select 1");
	apply(st, "discard all");
	assert_null(session_state_unmovable(st));
	assert_true(session_state_is_empty(st));
	assert_replay(st, NULL, NULL, 0);
	session_state_free(st);
}

static bool runs_code(const char *sql)
{
	return classify_query_runs_code(sql, strlen(sql));
}

/* What may make session state no statement shows: code of the database's own. */
static void test_runs_code(void **state UNUSED)
{
	assert_true(runs_code("SELECT make_temp()"));
	assert_true(
		runs_code("select 1; select public.now()")); /* a built-in name, another schema */
	assert_true(runs_code("DO $$BEGIN PERFORM 1; END$$"));
	assert_true(runs_code("call proc(1)"));
	assert_true(runs_code("EXECUTE stmt (1)"));
	assert_true(runs_code("INSERT INTO t VALUES (f(1))"));
	assert_true(runs_code("SELECT set_config('a', 'b', false)"));
	/* Plain reads and writes, and Postgres's own read-only functions, call nothing. */
	assert_false(runs_code("SELECT abs(-1), pg_catalog.now()"));
	assert_false(runs_code("UPDATE t SET v = v + 1 WHERE id = 3"));
	assert_false(runs_code("INSERT INTO t (a, b) VALUES (1, 2)"));
	assert_false(runs_code("insert into s.\"T\"(a) values (1) returning a"));
	assert_true(runs_code("INSERT INTO t (a) SELECT f(1)"));
	assert_false(runs_code("SELECT v::numeric(10, 2) FROM t AS x(v)"));
	assert_false(runs_code("SELECT 'do f()'; -- call g()"));
	assert_false(runs_code("BEGIN; COMMIT"));
}

static void note_change(void *arg, const char *database, const char *role)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 256 - n, "%s%s/%s", n > 0 ? " " : "", database != NULL ? database : "*",
		 role != NULL ? role : "*");
}

/* The login changes a query makes, as "database/role ..." (* for any). */
static const char *login_changes(const char *sql)
{
	static char out[256];

	out[0] = '\0';
	classify_login_changes(sql, strlen(sql), note_change, out);
	return out;
}

/* Statements after which pgwing's pooled logins must go (DROP DATABASE, ALTER ... SET). */
static void test_login_changes(void **state UNUSED)
{
	assert_string_equal(login_changes("DROP DATABASE shop"), "shop/*");
	assert_string_equal(login_changes("drop database if exists \"Shop\" with (force)"),
			    "Shop/*");
	assert_string_equal(login_changes("ALTER DATABASE shop SET work_mem = '8MB'"), "shop/*");
	assert_string_equal(login_changes("alter database shop reset all; select 1"), "shop/*");
	assert_string_equal(login_changes("ALTER DATABASE shop RENAME TO store"), "shop/*");
	assert_string_equal(login_changes("ALTER DATABASE shop SET TABLESPACE fast"), "shop/*");
	assert_string_equal(login_changes("CREATE DATABASE copy TEMPLATE = shop"), "shop/*");
	assert_string_equal(login_changes("create database copy with owner app template shop"),
			    "shop/*");
	assert_string_equal(login_changes("ALTER ROLE app SET search_path = a"), "*/app");
	assert_string_equal(login_changes("ALTER USER app IN DATABASE shop RESET ALL"), "shop/app");
	assert_string_equal(login_changes("ALTER ROLE ALL SET work_mem = '1MB'"), "*/*");
	assert_string_equal(login_changes("alter role current_user set work_mem = '1MB'"), "*/*");
	assert_string_equal(login_changes("SET x = 1; DROP DATABASE a; ALTER ROLE b SET y = 2"),
			    "a/* */b");
	/* Nothing else in a database's or a role's way, or in its defaults. */
	assert_string_equal(login_changes("ALTER DATABASE shop OWNER TO app"), "");
	assert_string_equal(login_changes("ALTER ROLE app PASSWORD 'x'"), "");
	assert_string_equal(login_changes("CREATE DATABASE copy"), "");
	assert_string_equal(login_changes("DROP TABLE database"), "");
	assert_string_equal(login_changes("SELECT 'DROP DATABASE shop'"), "");
}

static void test_session_caps(void **state UNUSED)
{
	struct session_state *st = session_state_new();
	char sql[64];
	uint8_t *big;

	for (int i = 0; i < 1000; i++) {
		snprintf(sql, sizeof(sql), "listen c%d", i);
		apply(st, sql);
	}
	assert_null(session_state_unmovable(st));
	apply(st, "listen one_too_many");
	assert_string_equal(session_state_unmovable(st), "too much session state to replay");
	session_state_free(st);

	/* Bytes: a Parse that would pass 1 MB in all is refused. */
	st = session_state_new();
	big = calloc(1, 1024 * 1024);
	session_state_note_parse(st, "big", big, 1024 * 1024 - 10);
	assert_null(session_state_unmovable(st));
	apply(st, "set application_name = 'x'");
	assert_string_equal(session_state_unmovable(st), "too much session state to replay");
	session_state_note_close(st, "big");
	assert_true(session_state_unmovable(st) != NULL);
	free(big);
	session_state_free(st);
	session_state_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_set_config_checked),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_key_truncation),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_cheap_checks),
		cmocka_unit_test(test_session_sql),
		cmocka_unit_test(test_session_identity),
		cmocka_unit_test(test_session_datestyle),
		cmocka_unit_test(test_set_config_local),
		cmocka_unit_test(test_session_parse),
		cmocka_unit_test(test_session_prepare_text),
		cmocka_unit_test(test_session_unmovable),
		cmocka_unit_test(test_session_caps),
		cmocka_unit_test(test_runs_code),
		cmocka_unit_test(test_login_changes),
		cmocka_unit_test(test_keep_state_blocks),
		cmocka_unit_test(test_quoted_nul),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
