/*
 * The check of a server's session state (capture.h): its rows are read
 * strictly (a row that is not exactly the one expected is no answer), and
 * judged against the session's record: what the server holds beyond it, or
 * what pins, keeps the session in place; settings are taken with the values
 * the server shows, in place of the statements that set them.
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

/* A DataRow body of n text columns; NULL values are sent as NULL. */
static bool read_values(struct capture *cap, const char *const *values, int n)
{
	struct evbuffer *b = evbuffer_new();
	bool ok;

	proto_put_int16(b, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		proto_put_int32(b, values[i] == NULL ? UINT32_MAX : (uint32_t)strlen(values[i]));
		if (values[i] != NULL)
			evbuffer_add(b, values[i], strlen(values[i]));
	}
	ok = capture_read_row(cap, evbuffer_pullup(b, -1), evbuffer_get_length(b));
	evbuffer_free(b);
	return ok;
}

static bool read_summary(struct capture *cap, const char *const values[9])
{
	return read_values(cap, values, 9);
}

/* A fresh session's summary, session_user app. */
static void fresh(struct capture *cap)
{
	const char *v[9] = {"f", "f", "0", "0", "0", "0", "0", "f", "app"};

	capture_clear(cap);
	assert_true(read_summary(cap, v));
}

static void setting(struct capture *cap, const char *key, const char *value, bool is_exact)
{
	char sql[256];
	const char *v[3] = {key, sql, is_exact ? "t" : "f"};

	snprintf(sql, sizeof(sql), "SELECT pg_catalog.set_config('%s', '%s', false)", key, value);
	assert_true(read_values(cap, v, 3));
}

static void apply(struct session_state *st, const char *sql)
{
	struct stmt_info info[4];
	size_t n = classify_query(sql, strlen(sql), info, 4);

	for (size_t i = 0; i < n; i++)
		session_state_apply(st, &info[i], sql, n == 1);
}

static const char *settle(const struct capture *cap, struct session_state *st)
{
	struct capture_verdict v;

	capture_settle(cap, st, "app", &v);
	return v.pin;
}

/* The statements st replays, one per line. */
static char *replayed(const struct session_state *st)
{
	struct evbuffer *b = evbuffer_new(), *text = evbuffer_new();
	char type;
	uint32_t len;
	uint8_t *msg;
	char *out;

	session_state_replay(st, NULL, NULL, b);
	while (proto_next_message(b, UINT32_MAX, &type, &len, &msg) == PROTO_FRAME_OK) {
		if (type == 'Q')
			evbuffer_add_printf(text, "%s\n", (const char *)msg + 5);
		evbuffer_drain(b, 1 + len);
	}
	evbuffer_add(text, "", 1);
	out = strdup((const char *)evbuffer_pullup(text, -1));
	evbuffer_free(text);
	evbuffer_free(b);
	return out;
}

static void assert_replays(const struct session_state *st, const char *want)
{
	char *got = replayed(st);

	assert_string_equal(got, want);
	free(got);
}

static void test_read_rows(void **state UNUSED)
{
	const char *v[9] = {"t", "f", "2", "0", "1", "3", "4", "t", "alice"};
	struct capture cap = {0};

	assert_true(read_summary(&cap, v));
	assert_true(cap.has_summary);
	assert_true(cap.has_temp_schema);
	assert_false(cap.has_temp_objects);
	assert_int_equal(cap.advisory_locks, 2);
	assert_int_equal(cap.listens, 1);
	assert_int_equal(cap.sql_prepares, 3);
	assert_int_equal(cap.protocol_prepares, 4);
	assert_true(cap.has_role);
	assert_string_equal(cap.session_user, "alice");
	setting(&cap, "datestyle", "Postgres, DMY", true);
	setting(&cap, "seq_page_cost", "1.5", false);
	assert_int_equal(cap.nsettings, 2);
	assert_string_equal(cap.settings[0].key, "datestyle");
	assert_string_equal(cap.settings[0].sql,
			    "SELECT pg_catalog.set_config('datestyle', 'Postgres, DMY', false)");
	assert_false(cap.settings[1].is_exact);
	/* A second summary is not what comes after one. */
	assert_false(read_summary(&cap, v));
	capture_clear(&cap);
	assert_false(cap.has_summary);
	assert_int_equal(cap.nsettings, 0);
}

static void test_read_rows_refuse(void **state UNUSED)
{
	static const char *const bad[][9] = {
		{"x", "f", "0", "0", "0", "0", "0", "f", "app"},  /* not a boolean */
		{"f", "f", "-1", "0", "0", "0", "0", "f", "app"}, /* not a count */
		{"f", "f", "1a", "0", "0", "0", "0", "f", "app"},
		{"f", "f", "99999999999", "0", "0", "0", "0", "f", "app"},
		{"f", "f", "0", "0", "0", "0", "0", "f", NULL}, /* no session user */
		{NULL, "f", "0", "0", "0", "0", "0", "f", "app"},
	};
	const char *a_setting[3] = {"work_mem", "SELECT 1", "t"};
	const char *null_setting[3] = {"work_mem", NULL, "t"};
	char long_name[CAPTURE_NAME_MAX + 1];
	const char *too_long[9] = {"f", "f", "0", "0", "0", "0", "0", "f", long_name};
	struct capture cap = {0};
	struct evbuffer *b = evbuffer_new();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		capture_clear(&cap);
		assert_false(read_summary(&cap, bad[i]));
	}
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	capture_clear(&cap);
	assert_false(read_summary(&cap, too_long));
	/* A setting before the summary, or a NULL in one: not the answer. */
	capture_clear(&cap);
	assert_false(read_values(&cap, a_setting, 3));
	fresh(&cap);
	assert_false(read_values(&cap, null_setting, 3));
	/* Cut short, or followed by more: not the row. */
	proto_put_int16(b, 3);
	for (int i = 0; i < 3; i++) {
		proto_put_int32(b, (uint32_t)strlen(a_setting[i]));
		evbuffer_add(b, a_setting[i], strlen(a_setting[i]));
	}
	assert_false(capture_read_row(&cap, evbuffer_pullup(b, -1), evbuffer_get_length(b) - 1));
	evbuffer_add(b, "x", 1);
	assert_false(capture_read_row(&cap, evbuffer_pullup(b, -1), evbuffer_get_length(b)));
	evbuffer_free(b);
	capture_clear(&cap);
}

static void test_settle_takes_values(void **state UNUSED)
{
	struct session_state *st = session_state_new();
	struct capture cap = {0};

	fresh(&cap);
	assert_null(settle(&cap, st));
	assert_true(session_state_is_empty(st));
	/*
	 * DateStyle merges: the server's one value replaces both statements, in
	 * the place of the last; a setting changed in a function (search_path)
	 * gets the server's value; one nobody saw SET is added after the others.
	 */
	apply(st, "SET datestyle TO postgres");
	apply(st, "SET search_path TO a");
	apply(st, "SET datestyle TO dmy");
	apply(st, "SET my.x = 1");
	setting(&cap, "datestyle", "Postgres, DMY", true);
	setting(&cap, "search_path", "nowhere", true);
	setting(&cap, "work_mem", "4096", true);
	assert_null(settle(&cap, st));
	assert_replays(st, "SELECT pg_catalog.set_config('search_path', 'nowhere', false)\n"
			   "SELECT pg_catalog.set_config('datestyle', 'Postgres, DMY', false)\n"
			   "SET my.x = 1\n"
			   "SELECT pg_catalog.set_config('work_mem', '4096', false)\n");
	/* Taken again, as a later check does: nothing moves. */
	assert_null(settle(&cap, st));
	assert_replays(st, "SELECT pg_catalog.set_config('search_path', 'nowhere', false)\n"
			   "SELECT pg_catalog.set_config('datestyle', 'Postgres, DMY', false)\n"
			   "SET my.x = 1\n"
			   "SELECT pg_catalog.set_config('work_mem', '4096', false)\n");
	capture_clear(&cap);
	session_state_free(st);
}

static void test_settle_characteristics(void **state UNUSED)
{
	struct session_state *st = session_state_new();
	struct capture cap = {0};

	apply(st, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
	fresh(&cap);
	setting(&cap, "default_transaction_read_only", "on", true);
	setting(&cap, "default_transaction_isolation", "serializable", true);
	assert_null(settle(&cap, st));
	assert_replays(
		st, "SELECT pg_catalog.set_config('default_transaction_read_only', 'on', false)\n"
		    "SELECT pg_catalog.set_config('default_transaction_isolation', 'serializable', "
		    "false)\n");
	capture_clear(&cap);
	session_state_free(st);
}

static void test_settle_refuses(void **state UNUSED)
{
	struct session_state *st = session_state_new();
	struct capture cap = {0};

	/* A floating-point value is shown rounded: one the record lacks can't be carried. */
	fresh(&cap);
	setting(&cap, "seq_page_cost", "1.5", false);
	assert_non_null(settle(&cap, st));
	/* One it has keeps its statement. */
	apply(st, "SET seq_page_cost = 1.5000001");
	assert_null(settle(&cap, st));
	assert_replays(st, "SET seq_page_cost = 1.5000001\n");
	/* Made out of sight under a role the session set: its privileges are not known. */
	apply(st, "SET ROLE low");
	{
		const char *v[9] = {"f", "f", "0", "0", "0", "0", "0", "t", "app"};

		capture_clear(&cap);
		assert_true(read_summary(&cap, v));
	}
	setting(&cap, "seq_page_cost", "1.5", false);
	setting(&cap, "work_mem", "4096", true);
	assert_non_null(settle(&cap, st));
	/* Recorded, and no longer listed: reset out of sight (or hidden from the role). */
	capture_clear(&cap);
	fresh(&cap);
	apply(st, "RESET ROLE");
	assert_non_null(settle(&cap, st));
	assert_replays(st, "SET seq_page_cost = 1.5000001\n");
	capture_clear(&cap);
	session_state_free(st);
}

static void test_settle_identity_and_counts(void **state UNUSED)
{
	const char *as_other[9] = {"f", "f", "0", "0", "0", "0", "0", "f", "bob"};
	const char *with_role[9] = {"f", "f", "0", "0", "0", "0", "0", "t", "app"};
	const char *listening[9] = {"f", "f", "0", "0", "1", "0", "0", "f", "app"};
	const char *prepared[9] = {"f", "f", "0", "0", "0", "1", "0", "f", "app"};
	const char *parsed[9] = {"f", "f", "0", "0", "0", "0", "1", "f", "app"};
	struct session_state *st = session_state_new();
	struct capture cap = {0};

	assert_true(read_summary(&cap, with_role));
	assert_non_null(settle(&cap, st));
	apply(st, "SET ROLE low");
	assert_null(settle(&cap, st));
	capture_clear(&cap);
	assert_true(read_summary(&cap, as_other));
	assert_non_null(settle(&cap, st));
	apply(st, "SET SESSION AUTHORIZATION bob");
	assert_null(settle(&cap, st));
	session_state_free(st);

	st = session_state_new();
	capture_clear(&cap);
	assert_true(read_summary(&cap, listening));
	assert_non_null(settle(&cap, st));
	apply(st, "LISTEN ch");
	assert_null(settle(&cap, st));
	/* The record listens where the server does not (an UNLISTEN in a function). */
	fresh(&cap);
	assert_non_null(settle(&cap, st));
	apply(st, "UNLISTEN ch");
	capture_clear(&cap);
	assert_true(read_summary(&cap, prepared));
	assert_non_null(settle(&cap, st));
	apply(st, "PREPARE p AS SELECT 1");
	assert_null(settle(&cap, st));
	apply(st, "DEALLOCATE p");
	/* Named Parses are all seen; only the server having more than the record is news. */
	capture_clear(&cap);
	assert_true(read_summary(&cap, parsed));
	assert_non_null(settle(&cap, st));
	capture_clear(&cap);
	session_state_free(st);
}

static void test_settle_pins(void **state UNUSED)
{
	static const char *const pinning[][9] = {
		{"t", "t", "0", "0", "0", "0", "0", "f", "app"},
		{"f", "f", "1", "0", "0", "0", "0", "f", "app"},
		{"f", "f", "0", "1", "0", "0", "0", "f", "app"},
	};
	const char *temp_schema_only[9] = {"t", "f", "0", "0", "0", "0", "0", "f", "app"};
	struct session_state *st = session_state_new();
	struct capture_verdict v;
	struct capture cap = {0};

	for (size_t i = 0; i < sizeof(pinning) / sizeof(pinning[0]); i++) {
		capture_clear(&cap);
		assert_true(read_summary(&cap, pinning[i]));
		capture_settle(&cap, st, "app", &v);
		assert_non_null(v.pin);
		assert_true(v.is_pin_seen);
	}
	/* A temp schema with nothing in it moves, but its server serves nobody else. */
	capture_clear(&cap);
	assert_true(read_summary(&cap, temp_schema_only));
	capture_settle(&cap, st, "app", &v);
	assert_null(v.pin);
	assert_true(v.has_temp_schema);
	/* What the record can't take can't be seen to go: it pins for good. */
	fresh(&cap);
	setting(&cap, "random_page_cost", "1.1", false);
	capture_settle(&cap, st, "app", &v);
	assert_non_null(v.pin);
	assert_false(v.is_pin_seen);
	capture_clear(&cap);
	session_state_free(st);
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
	/* A setting Postgres lists, made with set_config: the check takes its value. */
	st = session_state_new();
	apply(st, "SELECT set_config('search_path', 'x', false)");
	assert_true(session_state_pin_is_checkable(st));
	session_state_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_rows),
		cmocka_unit_test(test_read_rows_refuse),
		cmocka_unit_test(test_settle_takes_values),
		cmocka_unit_test(test_settle_characteristics),
		cmocka_unit_test(test_settle_refuses),
		cmocka_unit_test(test_settle_identity_and_counts),
		cmocka_unit_test(test_settle_pins),
		cmocka_unit_test(test_unpin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
