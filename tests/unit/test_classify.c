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
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct stmt_info info;

		assert_int_equal(classify_query(cases[i].sql, strlen(cases[i].sql), &info, 1), 1);
		assert_int_equal(info.cls, STMT_UNMOVABLE);
		assert_string_equal(info.reason, cases[i].reason);
	}
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
			char *copy = malloc(n ? n : 1);

			memcpy(copy, texts[i], n);
			classify_query(copy, n, info, ARRAY_SIZE(info));
			classify_query_class(copy, n);
			free(copy);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),         cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_split),          cmocka_unit_test(test_counts),
		cmocka_unit_test(test_key_truncation), cmocka_unit_test(test_prefixes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
