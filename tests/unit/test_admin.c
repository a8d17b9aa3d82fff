/* The console's tokenizer and parser: every command form, and every error. */
#include "pgwing/admin_parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static char err[1024];

static struct admin_command parse_ok(const char *query)
{
	struct admin_command cmd;

	if (!admin_parse(query, &cmd, err, sizeof(err)))
		fail_msg("\"%s\" failed: %s", query, err);
	assert_string_equal(err, "");
	return cmd;
}

/* Parsing fails and the message contains needle. */
static void parse_fails(const char *query, const char *needle)
{
	struct admin_command cmd;

	if (admin_parse(query, &cmd, err, sizeof(err)))
		fail_msg("\"%s\" parsed, expected an error with \"%s\"", query, needle);
	if (strstr(err, needle) == NULL)
		fail_msg("\"%s\": error \"%s\" lacks \"%s\"", query, err, needle);
}

static void test_show_items(void **state UNUSED)
{
	static const struct {
		const char *query;
		enum admin_show show;
	} cases[] = {
		{"SHOW HELP", ADMIN_SHOW_HELP},        {"show version", ADMIN_SHOW_VERSION},
		{"Show Config;", ADMIN_SHOW_CONFIG},   {"SHOW BACKENDS ;", ADMIN_SHOW_BACKENDS},
		{"  show\tpools\n", ADMIN_SHOW_POOLS}, {"SHOW clients", ADMIN_SHOW_CLIENTS},
		{"SHOW SERVERS", ADMIN_SHOW_SERVERS},  {"SHOW STATS", ADMIN_SHOW_STATS},
		{"SHOW LISTS", ADMIN_SHOW_LISTS},      {"sHoW sTaTe", ADMIN_SHOW_STATE},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct admin_command cmd = parse_ok(cases[i].query);

		assert_int_equal(cmd.verb, ADMIN_SHOW);
		assert_int_equal(cmd.show, cases[i].show);
	}
}

static void test_show_errors(void **state UNUSED)
{
	parse_fails("SHOW", "SHOW needs one of HELP, VERSION");
	parse_fails("SHOW;", "SHOW needs one of");
	parse_fails("SHOW FOO", "unknown SHOW item \"FOO\"");
	parse_fails("SHOW POOLS extra", "unexpected \"extra\" after SHOW");
	parse_fails("SHOW \"POOLS\"", "unknown SHOW item");
}

static void test_database_commands(void **state UNUSED)
{
	static const struct {
		const char *query;
		enum admin_verb verb;
		const char *database;
	} cases[] = {
		{"PAUSE", ADMIN_PAUSE, ""},
		{"pause;", ADMIN_PAUSE, ""},
		{"PAUSE appdb", ADMIN_PAUSE, "appdb"},
		{"PAUSE AppDB;", ADMIN_PAUSE, "appdb"},    /* bare names fold */
		{"PAUSE \"AppDB\"", ADMIN_PAUSE, "AppDB"}, /* quoted ones keep their case */
		{"PAUSE \"my \"\"db\"\"\"", ADMIN_PAUSE, "my \"db\""},
		{"RESUME", ADMIN_RESUME, ""},
		{"resume app_db", ADMIN_RESUME, "app_db"},
		{"RECONNECT", ADMIN_RECONNECT, ""},
		{"RECONNECT db1 ;", ADMIN_RECONNECT, "db1"},
		{"KILL", ADMIN_KILL, ""},
		{"kill db-2", ADMIN_KILL, "db-2"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct admin_command cmd = parse_ok(cases[i].query);

		assert_int_equal(cmd.verb, cases[i].verb);
		assert_string_equal(cmd.database, cases[i].database);
	}
	parse_fails("PAUSE a b", "unexpected \"b\" after PAUSE");
	parse_fails("PAUSE 'db'", "unexpected \"db\" after PAUSE");
	parse_fails("PAUSE \"\"", "a database name must not be empty");
	parse_fails("PAUSE \"unterminated", "unterminated quoted identifier");
	parse_fails("RESUME "
		    "a123456789012345678901234567890123456789012345678901234567890123",
		    "too long");
}

static void test_simple_commands(void **state UNUSED)
{
	struct admin_command cmd;

	assert_int_equal(parse_ok("RELOAD").verb, ADMIN_RELOAD);
	assert_int_equal(parse_ok("reload ;").verb, ADMIN_RELOAD);
	cmd = parse_ok("SHUTDOWN");
	assert_int_equal(cmd.verb, ADMIN_SHUTDOWN);
	assert_false(cmd.wait_for_clients);
	cmd = parse_ok("shutdown wait_for_clients;");
	assert_int_equal(cmd.verb, ADMIN_SHUTDOWN);
	assert_true(cmd.wait_for_clients);
	parse_fails("RELOAD now", "unexpected \"now\" after RELOAD");
	parse_fails("SHUTDOWN later", "unexpected \"later\" after SHUTDOWN");
}

static void test_kill_client(void **state UNUSED)
{
	struct admin_command cmd = parse_ok("KILL_CLIENT 42");

	assert_int_equal(cmd.verb, ADMIN_KILL_CLIENT);
	assert_int_equal(cmd.client_id, 42);
	cmd = parse_ok("kill_client 18446744073709551615;");
	assert_true(cmd.client_id == UINT64_MAX);
	parse_fails("KILL_CLIENT", "KILL_CLIENT needs a client id");
	parse_fails("KILL_CLIENT abc", "KILL_CLIENT needs a client id");
	parse_fails("KILL_CLIENT -1", "KILL_CLIENT needs a client id");
	parse_fails("KILL_CLIENT 18446744073709551616", "out of range");
	parse_fails("KILL_CLIENT 1 2", "unexpected \"2\"");
}

static void test_set(void **state UNUSED)
{
	static const struct {
		const char *query;
		const char *name;
		const char *value;
	} cases[] = {
		{"SET hold_timeout = 5s", "hold_timeout", "5s"},
		{"set Hold_Timeout=500ms;", "hold_timeout", "500ms"},
		{"SET max_packet_size TO 64MB", "max_packet_size", "64MB"}, /* value keeps case */
		{"SET region = 'ams'", "region", "ams"},
		{"SET stats_users = 'a, b'", "stats_users", "a, b"},
		{"SET region = ''", "region", ""},
		{"SET logfile = '/var/log/it''s.log'", "logfile", "/var/log/it's.log"},
		{"SET \"region\" = \"Fra\"", "region", "Fra"},
		{"SET listen_addr = 10.0.0.1", "listen_addr", "10.0.0.1"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct admin_command cmd = parse_ok(cases[i].query);

		assert_int_equal(cmd.verb, ADMIN_SET);
		assert_string_equal(cmd.name, cases[i].name);
		assert_string_equal(cmd.value, cases[i].value);
	}
	parse_fails("SET", "SET needs a setting");
	parse_fails("SET region", "expected \"=\" after SET region");
	parse_fails("SET region 'x'", "expected \"=\" after SET region");
	parse_fails("SET region =", "SET region needs a value");
	parse_fails("SET region = ;", "SET region needs a value");
	parse_fails("SET = 1", "expected a setting name");
	parse_fails("SET region = a b", "unexpected \"b\" after SET");
	parse_fails("SET region = 'open", "unterminated quoted string");
}

static void test_empty_and_comments(void **state UNUSED)
{
	assert_int_equal(parse_ok("").verb, ADMIN_EMPTY);
	assert_int_equal(parse_ok("  ;  ").verb, ADMIN_EMPTY);
	assert_int_equal(parse_ok("-- only a comment").verb, ADMIN_EMPTY);
	assert_int_equal(parse_ok("/* c */ SHOW /* c */ POOLS -- c").show, ADMIN_SHOW_POOLS);
	assert_int_equal(parse_ok("-- first line\nSHOW STATS;\n-- after\n").show, ADMIN_SHOW_STATS);
	parse_fails("/* open", "unterminated /* comment");
	parse_fails("SHOW POOLS /* open", "unterminated /* comment");
}

static void test_unknown_and_garbage(void **state UNUSED)
{
	parse_fails("SELECT 1", "unknown command \"SELECT\"");
	parse_fails("SELECT 1", "SHOW, PAUSE, RESUME, RELOAD, SET, RECONNECT, KILL, KILL_CLIENT, "
				"SHUTDOWN");
	parse_fails("'show' pools", "unknown command \"show\"");
	parse_fails("= 1", "unknown command \"=\"");
	parse_fails("SHOW POOLS; SHOW CLIENTS", "one command per query");
	parse_fails("SHOW POOLS;;", "one command per query");
	parse_fails("SHOW POOLS (", "syntax error at \"(\"");
	parse_fails("PAUSE *", "syntax error at \"*\"");
}

/* A word longer than the token buffer is an error, not a truncation. */
static void test_long_input(void **state UNUSED)
{
	char query[2 * ADMIN_VALUE_MAX];
	size_t n;

	n = strlen(strcpy(query, "SET region = "));
	memset(query + n, 'x', ADMIN_VALUE_MAX);
	query[n + ADMIN_VALUE_MAX] = '\0';
	parse_fails(query, "word is too long");
	n = strlen(strcpy(query, "SET region = '"));
	memset(query + n, 'x', ADMIN_VALUE_MAX);
	strcpy(query + n + ADMIN_VALUE_MAX, "'");
	parse_fails(query, "quoted text is too long");
}

static void test_help_covers_every_verb(void **state UNUSED)
{
	static const char *const verbs[] = {"SHOW",      "PAUSE", "RESUME",      "RELOAD",  "SET",
					    "RECONNECT", "KILL",  "KILL_CLIENT", "SHUTDOWN"};
	size_t n;
	const struct admin_help *help = admin_help_entries(&n);

	for (size_t v = 0; v < ARRAY_SIZE(verbs); v++) {
		bool is_found = false;

		for (size_t i = 0; i < n && !is_found; i++)
			is_found = strncmp(help[i].command, verbs[v], strlen(verbs[v])) == 0;
		if (!is_found)
			fail_msg("SHOW HELP does not mention %s", verbs[v]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_show_items),
		cmocka_unit_test(test_show_errors),
		cmocka_unit_test(test_database_commands),
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_kill_client),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_empty_and_comments),
		cmocka_unit_test(test_unknown_and_garbage),
		cmocka_unit_test(test_long_input),
		cmocka_unit_test(test_help_covers_every_verb),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
