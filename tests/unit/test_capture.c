/*
 * The check of a server's session state (capture.h): its one row is read
 * strictly (a row that is not exactly the query's answer is no answer), and
 * judged against the session's record: what the server holds beyond it, or
 * what pins, keeps the session in place, and nothing else does.
 */
#include "pgwing/capture.h"

#include "pgwing/proto.h"
#include "pgwing/session.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#define UNUSED __attribute__((unused))

/* A DataRow body of the check's ten columns; NULL values are passed as NULL. */
static struct evbuffer *row_of(const char *const values[10])
{
	struct evbuffer *b = evbuffer_new();

	proto_put_int16(b, 10);
	for (int i = 0; i < 10; i++) {
		if (values[i] == NULL) {
			proto_put_int32(b, UINT32_MAX);
			continue;
		}
		proto_put_int32(b, (uint32_t)strlen(values[i]));
		evbuffer_add(b, values[i], strlen(values[i]));
	}
	return b;
}

static bool read_values(struct capture *cap, const char *const values[10])
{
	struct evbuffer *b = row_of(values);
	bool ok = capture_read_row(cap, evbuffer_pullup(b, -1), evbuffer_get_length(b));

	evbuffer_free(b);
	return ok;
}

/* A fresh session's answer, with settings (NULL: none) and session_user app. */
static void fresh(struct capture *cap, const char *settings)
{
	const char *v[10] = {"f", "f", "0", "0", "0", "0", "0", "f", "app", settings};

	assert_true(read_values(cap, v));
}

static void apply(struct session_state *st, const char *sql)
{
	struct stmt_info info[4];
	size_t n = classify_query(sql, strlen(sql), info, 4);

	for (size_t i = 0; i < n; i++)
		session_state_apply(st, &info[i], sql, n == 1);
}

static const char *judge(const struct capture *cap, const struct session_state *st)
{
	struct capture_verdict v;

	capture_judge(cap, st, "app", &v);
	return v.pin;
}

static void test_read_row(void **state UNUSED)
{
	const char *v[10] = {"t", "f", "2", "0", "1", "3", "4", "t", "alice", "datestyle,timezone"};
	struct capture cap;

	assert_true(read_values(&cap, v));
	assert_true(cap.has_temp_schema);
	assert_false(cap.has_temp_objects);
	assert_int_equal(cap.advisory_locks, 2);
	assert_int_equal(cap.listens, 1);
	assert_int_equal(cap.sql_prepares, 3);
	assert_int_equal(cap.protocol_prepares, 4);
	assert_true(cap.has_role);
	assert_string_equal(cap.session_user, "alice");
	assert_string_equal(cap.settings, "datestyle,timezone");
	/* No setting of the session's own: string_agg gives NULL. */
	fresh(&cap, NULL);
	assert_string_equal(cap.settings, "");
}

static void test_read_row_refuses(void **state UNUSED)
{
	static const char *const bad[][10] = {
		{"x", "f", "0", "0", "0", "0", "0", "f", "app", NULL},  /* not a boolean */
		{"f", "f", "-1", "0", "0", "0", "0", "f", "app", NULL}, /* not a count */
		{"f", "f", "1a", "0", "0", "0", "0", "f", "app", NULL},
		{"f", "f", "99999999999", "0", "0", "0", "0", "f", "app", NULL},
		{"f", "f", "0", "0", "0", "0", "0", "f", NULL, NULL}, /* no session user */
		{NULL, "f", "0", "0", "0", "0", "0", "f", "app", NULL},
	};
	char long_name[CAPTURE_NAME_MAX + 1];
	const char *too_long[10] = {"f", "f", "0", "0", "0", "0", "0", "f", long_name, NULL};
	struct capture cap;
	struct evbuffer *b;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(read_values(&cap, bad[i]));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_false(read_values(&cap, too_long));
	/* Cut short, or followed by more: not the row. */
	b = row_of((const char *const[10]){"f", "f", "0", "0", "0", "0", "0", "f", "app", "a"});
	assert_false(capture_read_row(&cap, evbuffer_pullup(b, -1), evbuffer_get_length(b) - 1));
	evbuffer_add(b, "x", 1);
	assert_false(capture_read_row(&cap, evbuffer_pullup(b, -1), evbuffer_get_length(b)));
	evbuffer_free(b);
}

static void test_judge_settings(void **state UNUSED)
{
	struct session_state *st = session_state_new();
	struct capture cap;

	fresh(&cap, NULL);
	assert_null(judge(&cap, NULL));
	/* A setting nobody saw SET: made in a function. */
	fresh(&cap, "search_path");
	assert_non_null(judge(&cap, NULL));
	apply(st, "SET search_path TO a");
	assert_null(judge(&cap, st));
	/* Postgres lists names in their own case (DateStyle); the check lowercases them. */
	fresh(&cap, "datestyle,timezone,search_path");
	assert_non_null(judge(&cap, st));
	apply(st, "SET datestyle TO postgres");
	apply(st, "SET TIME ZONE 'UTC'");
	assert_null(judge(&cap, st));
	/* SET SESSION CHARACTERISTICS sets the defaults of later transactions. */
	fresh(&cap, "default_transaction_read_only,default_transaction_isolation");
	assert_non_null(judge(&cap, st));
	apply(st, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
	assert_null(judge(&cap, st));
	session_state_free(st);
}

static void test_judge_identity(void **state UNUSED)
{
	const char *as_other[10] = {"f", "f", "0", "0", "0", "0", "0", "f", "bob", NULL};
	const char *with_role[10] = {"f", "f", "0", "0", "0", "0", "0", "t", "app", NULL};
	struct session_state *st = session_state_new();
	struct capture cap;

	assert_true(read_values(&cap, with_role));
	assert_non_null(judge(&cap, st));
	apply(st, "SET ROLE low");
	assert_null(judge(&cap, st));
	assert_true(read_values(&cap, as_other));
	assert_non_null(judge(&cap, st));
	apply(st, "SET SESSION AUTHORIZATION bob");
	assert_null(judge(&cap, st));
	session_state_free(st);
}

static void test_judge_counts(void **state UNUSED)
{
	const char *listening[10] = {"f", "f", "0", "0", "1", "0", "0", "f", "app", NULL};
	const char *prepared[10] = {"f", "f", "0", "0", "0", "1", "0", "f", "app", NULL};
	const char *parsed[10] = {"f", "f", "0", "0", "0", "0", "1", "f", "app", NULL};
	struct session_state *st = session_state_new();
	struct capture cap;

	assert_true(read_values(&cap, listening));
	assert_non_null(judge(&cap, st));
	apply(st, "LISTEN ch");
	assert_null(judge(&cap, st));
	/* The record listens where the server does not (an UNLISTEN in a function). */
	fresh(&cap, NULL);
	assert_non_null(judge(&cap, st));
	apply(st, "UNLISTEN ch");
	assert_true(read_values(&cap, prepared));
	assert_non_null(judge(&cap, st));
	apply(st, "PREPARE p AS SELECT 1");
	assert_null(judge(&cap, st));
	apply(st, "DEALLOCATE p");
	/* A named Parse is always seen; one that failed stays recorded, which is no harm. */
	assert_true(read_values(&cap, parsed));
	assert_non_null(judge(&cap, st));
	session_state_free(st);
}

static void test_judge_pins(void **state UNUSED)
{
	static const char *const pinning[][10] = {
		{"t", "t", "0", "0", "0", "0", "0", "f", "app", NULL},
		{"f", "f", "1", "0", "0", "0", "0", "f", "app", NULL},
		{"f", "f", "0", "1", "0", "0", "0", "f", "app", NULL},
	};
	const char *temp_schema_only[10] = {"t", "f", "0", "0", "0", "0", "0", "f", "app", NULL};
	struct capture_verdict v;
	struct capture cap;

	for (size_t i = 0; i < sizeof(pinning) / sizeof(pinning[0]); i++) {
		assert_true(read_values(&cap, pinning[i]));
		capture_judge(&cap, NULL, "app", &v);
		assert_non_null(v.pin);
		assert_true(v.is_pin_seen);
	}
	/* A temp schema with nothing in it moves, but its server serves nobody else. */
	assert_true(read_values(&cap, temp_schema_only));
	capture_judge(&cap, NULL, "app", &v);
	assert_null(v.pin);
	assert_true(v.has_temp_schema);
	/* What the record misses can't be seen to go: it pins for good. */
	fresh(&cap, "work_mem");
	capture_judge(&cap, NULL, "app", &v);
	assert_non_null(v.pin);
	assert_false(v.is_pin_seen);
}

static void test_unpin(void **state UNUSED)
{
	struct session_state *st = session_state_new();

	apply(st, "CREATE TEMP TABLE t (a int)");
	assert_true(session_state_pin_is_checkable(st));
	session_state_unpin(st);
	assert_null(session_state_unmovable(st));
	/* A pin a check can't see go stays, whatever came before or after it. */
	apply(st, "SELECT pg_advisory_lock(1)");
	apply(st, "SELECT set_config('a.b', 'c', false)");
	assert_false(session_state_pin_is_checkable(st));
	session_state_unpin(st);
	assert_non_null(session_state_unmovable(st));
	apply(st, "DISCARD ALL");
	apply(st, "LOAD 'auto_explain'");
	apply(st, "DECLARE c CURSOR WITH HOLD FOR SELECT 1");
	assert_false(session_state_pin_is_checkable(st));
	session_state_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_row),       cmocka_unit_test(test_read_row_refuses),
		cmocka_unit_test(test_judge_settings), cmocka_unit_test(test_judge_identity),
		cmocka_unit_test(test_judge_counts),   cmocka_unit_test(test_judge_pins),
		cmocka_unit_test(test_unpin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
