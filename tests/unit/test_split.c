/*
 * rw_split's reading of SQL text (src/split.c) and WAL positions (src/lsn.c):
 * what may run on a replica, the values a session SET pgwing's settings to,
 * what asks which kind of server answers, and LSNs as Postgres writes them.
 */
#include "pgwing/lsn.h"
#include "pgwing/split.h"

#include "pgwing/common.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static bool begins_read_only(const char *sql)
{
	return split_begins_read_only(sql, strlen(sql));
}

static void test_begins_read_only(void **state UNUSED)
{
	assert_true(begins_read_only("BEGIN READ ONLY"));
	assert_true(begins_read_only("begin read only;"));
	assert_true(begins_read_only("  Begin Transaction Read Only ; \n"));
	assert_true(begins_read_only("START TRANSACTION READ ONLY"));
	assert_true(begins_read_only("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"));
	assert_true(begins_read_only("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"));
	/* The length bounds the text: what follows it is not the statement's. */
	assert_true(split_begins_read_only("BEGIN READ ONLY; DELETE FROM t", 15));
}

static void test_begins_read_only_misses(void **state UNUSED)
{
	/* A block that may write runs on the primary. */
	assert_false(begins_read_only("BEGIN"));
	assert_false(begins_read_only("BEGIN READ WRITE"));
	assert_false(begins_read_only("BEGIN READ ONLY, READ WRITE"));
	assert_false(begins_read_only("BEGIN READ WRITE, READ ONLY"));
	assert_false(begins_read_only("BEGIN ISOLATION LEVEL READ COMMITTED"));
	assert_false(begins_read_only("BEGIN ONLY"));
	/* Text it cannot read plainly: a comment, a quote, a second statement. */
	assert_false(begins_read_only("BEGIN /* read only */"));
	assert_false(begins_read_only("BEGIN READ ONLY /* c */"));
	assert_false(begins_read_only("BEGIN -- read only"));
	assert_false(begins_read_only("BEGIN 'read only'"));
	assert_false(begins_read_only("BEGIN \"read\" only"));
	assert_false(begins_read_only("BEGIN READ ONLY; DELETE FROM t"));
	assert_false(begins_read_only("DELETE FROM t; BEGIN READ ONLY"));
	/* Other statements. */
	assert_false(begins_read_only("START READ ONLY"));
	assert_false(begins_read_only("START"));
	assert_false(begins_read_only("SELECT 'begin read only'"));
	assert_false(begins_read_only("BEGINNING READ ONLY"));
	assert_false(begins_read_only(""));
	assert_false(begins_read_only(" ; "));
	assert_false(split_begins_read_only("BEGIN READ ONLY", 0));
	/* A NUL inside the text is no blank. */
	assert_false(split_begins_read_only("BEGIN\0READ ONLY", 15));
}

static void assert_set_value(const char *set, const char *value)
{
	char buf[32];

	assert_true(split_set_value(set, buf, sizeof(buf)));
	assert_string_equal(buf, value);
}

static void assert_no_set_value(const char *set)
{
	char buf[32];

	assert_false(split_set_value(set, buf, sizeof(buf)));
}

static void test_set_value(void **state UNUSED)
{
	assert_set_value("SET pgwing.min_lsn = '0/3000060'", "0/3000060");
	assert_set_value("set pgwing.min_lsn to '0/3000060';", "0/3000060");
	assert_set_value("SET SESSION x TO 'a''b'", "a'b");
	assert_set_value("SET x TO on", "on");
	assert_set_value("SET x=off ;", "off");
	assert_set_value("SET x = ''", "");
	/* An unquoted value keeps its case, as an LSN's hex digits need. */
	assert_set_value("SET pgwing.max_staleness = 5S", "5S");
	assert_set_value("SET pgwing.split TO 'On'  ", "On");
}

static void test_set_value_misses(void **state UNUSED)
{
	char buf[4];

	/* Not one plain value: the caller then takes the setting as not set. */
	assert_no_set_value("SET x = DEFAULT");
	assert_no_set_value("SET x TO default");
	assert_no_set_value("SET search_path = a, b");
	assert_no_set_value("SET search_path TO 'a', 'b'");
	assert_no_set_value("SET x = 'a' junk");
	assert_no_set_value("SET x = 'unterminated");
	assert_no_set_value("SET x = -1");
	assert_no_set_value("SET LOCAL x = 1");
	assert_no_set_value("SET TIME ZONE 'UTC'");
	assert_no_set_value("SET x 1");
	assert_no_set_value("SET x =");
	assert_no_set_value("SET x");
	assert_no_set_value("RESET x");
	assert_no_set_value("");
	/* Too long for the caller's buffer, quoted or not: no value rather than a cut one. */
	assert_false(split_set_value("SET x = 'abcd'", buf, sizeof(buf)));
	assert_false(split_set_value("SET x = abcd", buf, sizeof(buf)));
	assert_true(split_set_value("SET x = abc", buf, sizeof(buf)));
	assert_string_equal(buf, "abc");
}

static bool asks_server_role(const char *sql)
{
	return split_asks_server_role((const uint8_t *)sql, strlen(sql));
}

static void test_asks_server_role(void **state UNUSED)
{
	static const uint8_t framed[] = "Q\0\0\0\x1f"
					"SELECT PG_IS_IN_RECOVERY()\0";

	assert_true(asks_server_role("select pg_is_in_recovery()"));
	assert_true(asks_server_role("SHOW transaction_read_only"));
	assert_true(asks_server_role("show In_Hot_Standby"));
	assert_true(asks_server_role("SELECT pg_is_wal_replay_paused()"));
	assert_true(asks_server_role("SELECT pg_last_wal_replay_lsn()"));
	assert_true(asks_server_role("SELECT pg_current_wal_lsn()"));
	assert_true(asks_server_role("SELECT * FROM pg_stat_wal_receiver"));
	assert_true(asks_server_role("SELECT * FROM PG_STAT_REPLICATION"));
	assert_true(asks_server_role("SELECT gid FROM pg_prepared_xacts"));
	/* Anywhere: in a string or a comment it costs the replica one read. */
	assert_true(asks_server_role("SELECT 1 /* pg_is_in_recovery */"));
	assert_true(split_asks_server_role(framed, sizeof(framed) - 1));

	assert_false(asks_server_role("SELECT 1"));
	assert_false(asks_server_role("SELECT pg_is_in"));
	assert_false(asks_server_role("SHOW transaction_isolation"));
	assert_false(asks_server_role(""));
	/* The length bounds the search. */
	assert_false(split_asks_server_role((const uint8_t *)"pg_is_in_recovery", 16));
}

static uint64_t parsed(const char *text)
{
	uint64_t lsn = 42;

	assert_true(lsn_parse(text, &lsn));
	return lsn;
}

static void assert_round_trip(const char *text)
{
	char buf[LSN_TEXT_MAX];

	lsn_format(parsed(text), buf);
	assert_string_equal(buf, text);
}

static void test_lsn(void **state UNUSED)
{
	char buf[LSN_TEXT_MAX];

	assert_int_equal(parsed("0/3000060"), 0x3000060);
	assert_int_equal(parsed("1/0"), UINT64_C(1) << 32);
	assert_int_equal(parsed("0/0"), 0);
	/* Postgres takes either case and leading zeros; it writes upper case, none. */
	assert_int_equal(parsed("a/b"), UINT64_C(0xa) << 32 | 0xb);
	assert_int_equal(parsed("00000001/0000000F"), UINT64_C(1) << 32 | 0xf);
	assert_round_trip("0/3000060");
	assert_round_trip("16/B374D848");
	assert_round_trip("0/0");
	/* The largest one fills LSN_TEXT_MAX exactly. */
	assert_round_trip("FFFFFFFF/FFFFFFFF");
	assert_int_equal(parsed("FFFFFFFF/FFFFFFFF"), UINT64_MAX);
	lsn_format(UINT64_C(0x100000000), buf);
	assert_string_equal(buf, "1/0");
}

static void test_lsn_rejects(void **state UNUSED)
{
	static const char *const bad[] = {
		"",
		"0/",
		"/0",
		"0",
		"G/1",
		"1/G",
		"1/2 ",
		"1/2/3",
		"1/2x",
		/* What pg_lsn rejects too, though sscanf's %x would take it. */
		" 1/2",
		"1/ 2",
		"+1/2",
		"-1/2",
		"1/-2",
		"0x1/2",
		"1/0x2",
		"100000000/0",
		"0/100000000",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t lsn = 42;

		if (lsn_parse(bad[i], &lsn))
			fail_msg("lsn_parse took \"%s\" as %" PRIu64, bad[i], lsn);
		assert_int_equal(lsn, 42); /* untouched */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_begins_read_only),
		cmocka_unit_test(test_begins_read_only_misses),
		cmocka_unit_test(test_set_value),
		cmocka_unit_test(test_set_value_misses),
		cmocka_unit_test(test_asks_server_role),
		cmocka_unit_test(test_lsn),
		cmocka_unit_test(test_lsn_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
