/*
 * The request tracker: what may run again after a lost server, and which
 * session statements count once their request is answered.
 */
#include "pgwing/xact.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>

#define UNUSED  __attribute__((unused))
#define MAX_SQL 4096

static void query(struct xact *x, const char *sql, char tx_status)
{
	xact_begin_request(x);
	xact_note_query(x, sql, strlen(sql), tx_status, MAX_SQL);
}

/* The SQL text st replays (its Queries' texts joined by ";\n"), "" when it replays none. */
static const char *replay_of(const struct session_state *st)
{
	static char text[1024];
	struct evbuffer *b = evbuffer_new();
	uint8_t hdr[5];

	text[0] = '\0';
	session_state_replay(st, NULL, NULL, b);
	while (evbuffer_copyout(b, hdr, sizeof(hdr)) == sizeof(hdr) && hdr[0] == 'Q') {
		uint32_t len = ((uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 |
				(uint32_t)hdr[3] << 8 | hdr[4]) -
			       4;
		char *sql = malloc(len);

		evbuffer_drain(b, sizeof(hdr));
		evbuffer_remove(b, sql, len);
		if (text[0] != '\0')
			strcat(text, ";\n");
		strncat(text, sql, sizeof(text) - strlen(text) - 1);
		free(sql);
	}
	evbuffer_free(b);
	return text;
}

static void test_requests(void **state UNUSED)
{
	struct session_state *st = NULL;
	struct xact x = {0};

	assert_true(xact_is_idle(&x));
	assert_true(xact_begin_request(&x));
	assert_false(xact_begin_request(&x)); /* pipelined: the second is not the first */
	assert_int_equal(x.pending_syncs, 2);
	assert_false(xact_is_idle(&x));
	xact_note_ready(&x, 'I', &st);
	xact_note_ready(&x, 'I', &st);
	assert_true(xact_is_idle(&x));
	xact_note_ready(&x, 'I', &st); /* an unasked ReadyForQuery does not go below zero */
	assert_int_equal(x.pending_syncs, 0);

	x.is_mid_request = true; /* a Bind, say */
	assert_true(x.is_mid_request);
	assert_false(xact_is_idle(&x));
	xact_begin_request(&x); /* its Sync */
	assert_false(x.is_mid_request);
	xact_reset(&x);
	assert_true(xact_is_idle(&x));
	assert_null(st);
	xact_free(&x);
}

static void test_retry(void **state UNUSED)
{
	struct session_state *st = NULL;
	struct xact x = {0};

	query(&x, "select 1", 'I');
	assert_true(xact_can_retry(&x));
	assert_true(xact_retry_is_read(&x, st));
	assert_int_equal(x.retry[0], 'Q');
	assert_memory_equal(x.retry + 5, "select 1", 9);
	xact_note_ready(&x, 'I', &st);
	assert_false(xact_can_retry(&x));

	/* Inside a transaction block, a write, or a second request in flight: never. */
	query(&x, "select 1", 'T');
	assert_false(xact_can_retry(&x));
	xact_note_ready(&x, 'T', &st);
	query(&x, "insert into t values (1)", 'I');
	assert_false(xact_can_retry(&x) && xact_retry_is_read(&x, st));
	xact_note_ready(&x, 'I', &st);
	query(&x, "select 1", 'I');
	query(&x, "select 2", 'I');
	assert_false(xact_can_retry(&x));
	xact_reset(&x);
	assert_null(x.retry);
	assert_null(st);
	xact_free(&x);
}

/* An extended message as the pump hands it over: type and body. */
static void extended(struct xact *x, struct session_state **st, char type, const char *body,
		     size_t len)
{
	xact_note_extended(x, type, (const uint8_t *)body, len, 'I');
	if (type == 'P' || type == 'C')
		xact_note_statement(x, st, type, (const uint8_t *)body, len);
}

/* A Parse body written out whole (name, text, no parameter types), without the literal's NUL. */
#define PARSE(body) body, sizeof(body) - 1
/* Bind of statement to the unnamed portal, no parameters, text results. */
#define BIND(stmt)  "\0" stmt "\0\0\0\0\0\0\0", sizeof(stmt) + 7
#define EXECUTE     "\0\0\0\0\0", 5

static void test_retry_extended(void **state UNUSED)
{
	struct session_state *st = NULL;
	struct xact x = {0};

	/* Parse/Bind/Execute/Sync of a read: kept whole, and it may run again. */
	extended(&x, &st, 'P', PARSE("\0select 1\0\0\0"));
	extended(&x, &st, 'B', BIND(""));
	extended(&x, &st, 'E', EXECUTE);
	assert_false(xact_can_retry(&x)); /* not before its Sync */
	assert_true(xact_note_sync(&x));
	assert_true(xact_can_retry(&x));
	assert_true(xact_retry_is_read(&x, st));
	assert_int_equal(x.retry_len, 5 + 12 + 5 + sizeof("") + 7 + 5 + 5 + 5);
	assert_int_equal(x.retry[0], 'P');
	assert_int_equal(x.retry[x.retry_len - 5], 'S');
	xact_note_ready(&x, 'I', &st);

	/* A named statement prepared earlier, bound again: a read if its text is. */
	extended(&x, &st, 'P', PARSE("s1\0select 2\0\0\0"));
	xact_note_sync(&x);
	/* Its Parse runs nothing: no state but the statement, which the session records. */
	assert_false(xact_retry_is_read(&x, st));
	assert_true(xact_retry_leaves_statements_only(&x, st));
	xact_note_ready(&x, 'I', &st);
	extended(&x, &st, 'B', BIND("s1"));
	extended(&x, &st, 'E', EXECUTE);
	xact_note_sync(&x);
	assert_true(xact_can_retry(&x) && xact_retry_is_read(&x, st));
	xact_note_ready(&x, 'I', &st);

	/* A write, a named Parse in the request, a Flush: not run again. */
	extended(&x, &st, 'P', PARSE("\0insert into t values (1)\0\0\0"));
	extended(&x, &st, 'B', BIND(""));
	xact_note_sync(&x);
	assert_false(xact_can_retry(&x) && xact_retry_is_read(&x, st));
	xact_note_ready(&x, 'I', &st);
	extended(&x, &st, 'P', PARSE("s2\0select 3\0\0\0"));
	extended(&x, &st, 'B', BIND("s2"));
	xact_note_sync(&x);
	assert_false(xact_can_retry(&x) && xact_retry_is_read(&x, st));
	assert_true(xact_retry_leaves_statements_only(&x, st));
	xact_note_ready(&x, 'I', &st);
	/* A named write prepared is only a statement; bound and run, it may leave state. */
	extended(&x, &st, 'P', PARSE("w\0insert into t values (1)\0\0\0"));
	xact_note_sync(&x);
	assert_true(xact_retry_leaves_statements_only(&x, st));
	xact_note_ready(&x, 'I', &st);
	extended(&x, &st, 'B', BIND("w"));
	extended(&x, &st, 'E', EXECUTE);
	xact_note_sync(&x);
	assert_false(xact_retry_leaves_statements_only(&x, st));
	xact_note_ready(&x, 'I', &st);
	extended(&x, &st, 'P', PARSE("\0select 4\0\0\0"));
	xact_stop_keeping(&x); /* Flush */
	extended(&x, &st, 'B', BIND(""));
	xact_note_sync(&x);
	assert_false(xact_can_retry(&x));
	xact_note_ready(&x, 'I', &st);

	/* Inside a transaction block: never. */
	xact_note_extended(&x, 'B', (const uint8_t *)BIND("s1"), 'T');
	xact_note_sync(&x);
	assert_false(xact_can_retry(&x));
	session_state_free(st);
	xact_free(&x);
}

static void test_session_statements(void **state UNUSED)
{
	struct session_state *st = NULL;
	struct xact x = {0};

	/* Autocommit: counts once answered without an error. */
	query(&x, "set work_mem = '3MB'", 'I');
	assert_true(xact_wants_command_tags(&x));
	xact_note_ready(&x, 'I', &st);
	assert_non_null(st);
	assert_string_equal(replay_of(st), "set work_mem = '3MB'");
	assert_false(xact_wants_command_tags(&x));

	/* A failed request leaves no trace. */
	query(&x, "set search_path = x", 'I');
	xact_note_error(&x);
	xact_note_ready(&x, 'I', &st);
	assert_string_equal(replay_of(st), "set work_mem = '3MB'");

	/* In a block: held until the end; ROLLBACK drops it, COMMIT keeps it. */
	query(&x, "begin; set search_path = y", 'I');
	xact_note_ready(&x, 'T', &st);
	query(&x, "rollback", 'T');
	xact_note_command(&x, "ROLLBACK");
	xact_note_ready(&x, 'I', &st);
	assert_string_equal(replay_of(st), "set work_mem = '3MB'");
	query(&x, "begin; set search_path = z", 'I');
	xact_note_ready(&x, 'T', &st);
	query(&x, "commit", 'T');
	xact_note_command(&x, "COMMIT");
	xact_note_ready(&x, 'I', &st);
	assert_string_equal(replay_of(st), "set work_mem = '3MB';\nset search_path = z");
	assert_null(session_state_unmovable(st));
	session_state_free(st);
	xact_free(&x);
}

/* What the statements alone can't carry exactly pins the session instead. */
static void test_session_pins(void **state UNUSED)
{
	static const uint8_t parse_set[] = "\0set datestyle to postgres\0\0";
	static const uint8_t parse_custom[] = "\0set my.x to 1\0\0";
	struct session_state *st = NULL;
	struct xact x = {0};

	/* A session advisory lock outlives the rollback of its transaction. */
	query(&x, "begin; select pg_advisory_lock(1)", 'I');
	xact_note_ready(&x, 'T', &st);
	query(&x, "rollback", 'T');
	xact_note_command(&x, "ROLLBACK");
	xact_note_ready(&x, 'I', &st);
	assert_string_equal(session_state_unmovable(st), "a session-level advisory lock");
	session_state_free(st);
	st = NULL;

	/* ROLLBACK TO SAVEPOINT undoes part of what the block set. */
	query(&x, "begin; set a.b = 1; savepoint s; set search_path = x; rollback to s", 'I');
	xact_note_command(&x, "ROLLBACK");
	xact_note_ready(&x, 'T', &st);
	query(&x, "commit", 'T');
	xact_note_ready(&x, 'I', &st);
	assert_non_null(st);
	assert_string_equal(session_state_unmovable(st),
			    "session state set in a transaction that rolled back to a savepoint");
	session_state_free(st);
	st = NULL;

	/*
	 * A SET through the extended protocol, even unnamed: of a setting the
	 * server lists, until a check of the server reads its value; of another
	 * (a custom one), for good.
	 */
	xact_note_statement(&x, &st, 'P', parse_set, sizeof(parse_set) - 1);
	assert_non_null(st);
	assert_string_equal(session_state_unmovable(st),
			    "a setting made through the extended protocol");
	assert_true(session_state_pin_is_checkable(st));
	session_state_free(st);
	st = NULL;
	xact_note_statement(&x, &st, 'P', parse_custom, sizeof(parse_custom) - 1);
	assert_string_equal(session_state_unmovable(st),
			    "session state set through the extended protocol");
	assert_false(session_state_pin_is_checkable(st));
	session_state_free(st);
	xact_free(&x);
}

static void test_session_limit(void **state UNUSED)
{
	struct session_state *st = NULL;
	struct xact x = {0};
	char big[MAX_SQL + 16];

	memset(big, ' ', sizeof(big) - 1);
	memcpy(big, "set a = 1;", 10);
	big[sizeof(big) - 1] = '\0';
	query(&x, "begin", 'I');
	xact_note_ready(&x, 'T', &st);
	query(&x, big, 'T');
	xact_note_ready(&x, 'T', &st);
	query(&x, "commit", 'T');
	xact_note_ready(&x, 'I', &st);
	assert_non_null(st);
	assert_non_null(session_state_unmovable(st));
	session_state_free(st);
	xact_free(&x);
}

static void test_statements(void **state UNUSED)
{
	static const uint8_t named[] = "s1\0select 1\0\0";
	static const uint8_t unnamed[] = "\0select 1\0\0";
	static const uint8_t close_named[] = "Ss1";
	struct session_state *st = NULL;
	struct xact x = {0};

	xact_note_statement(&x, &st, 'P', unnamed, sizeof(unnamed) - 1);
	assert_null(st); /* the unnamed statement does not outlive its request */
	xact_note_statement(&x, &st, 'P', named, sizeof(named) - 1);
	assert_non_null(st);
	assert_false(session_state_is_empty(st));
	xact_note_statement(&x, &st, 'C', close_named, sizeof(close_named));
	assert_true(session_state_is_empty(st));
	xact_note_untracked_statement(&x, st);
	assert_non_null(session_state_unmovable(st));
	session_state_free(st);
	xact_free(&x);
}

/* A request as the client frames it, message after message. */
struct request {
	uint8_t bytes[256];
	size_t len;
};

static void put(struct request *req, char type, const char *body, size_t len)
{
	uint32_t n = (uint32_t)len + 4;
	uint8_t *at = req->bytes + req->len;

	assert_true(req->len + 5 + len <= sizeof(req->bytes));
	at[0] = (uint8_t)type;
	at[1] = (uint8_t)(n >> 24);
	at[2] = (uint8_t)(n >> 16);
	at[3] = (uint8_t)(n >> 8);
	at[4] = (uint8_t)n;
	memcpy(at + 5, body, len);
	req->len += 5 + len;
}

/* A Query of sql, with its NUL. */
static struct request query_request(const char *sql)
{
	struct request req = {.len = 0};

	put(&req, 'Q', sql, strlen(sql) + 1);
	return req;
}

/* Parse (body given), Bind of stmt, Describe of the portal, Execute, Sync. */
static struct request extended_request(const char *parse, size_t parse_len, const char *bind,
				       size_t bind_len)
{
	struct request req = {.len = 0};

	if (parse != NULL)
		put(&req, 'P', parse, parse_len);
	put(&req, 'B', bind, bind_len);
	put(&req, 'D', "P", 2);
	put(&req, 'E', EXECUTE);
	put(&req, 'S', "", 0);
	return req;
}

static bool is_read(const struct request *req, const struct session_state *st)
{
	return xact_request_is_read(req->bytes, req->len, st);
}

static void test_request_is_read_query(void **state UNUSED)
{
	struct request req = query_request("select 1");

	assert_true(is_read(&req, NULL));
	req = query_request("delete from t");
	assert_false(is_read(&req, NULL));
	req = query_request("select 1; delete from t");
	assert_false(is_read(&req, NULL));

	/* Without its NUL: no Query Postgres would run. */
	req.len = 0;
	put(&req, 'Q', "select 1", 8);
	assert_false(is_read(&req, NULL));
	assert_false(xact_request_is_read(req.bytes, 5, NULL));
	assert_false(xact_request_is_read(req.bytes, 0, NULL));
}

static void test_request_is_read_extended(void **state UNUSED)
{
	static const uint8_t named_read[] = "P\0\0\0\x12s1\0select 2\0\0\0";
	static const uint8_t named_write[] = "P\0\0\0\x17s2\0delete from t\0\0\0";
	struct session_state *st = session_state_new();
	struct request req;

	req = extended_request(PARSE("\0select 1\0\0\0"), BIND(""));
	assert_true(is_read(&req, NULL));
	req = extended_request(PARSE("\0delete from t\0\0\0"), BIND(""));
	assert_false(is_read(&req, NULL));
	/* A named Parse in the request: the statement would outlive it on that server. */
	req = extended_request(PARSE("s0\0select 1\0\0\0"), BIND("s0"));
	assert_false(is_read(&req, st));

	/* Bind of a statement the session prepared earlier: as its text is. */
	session_state_note_parse(st, "s1", named_read, sizeof(named_read) - 1);
	session_state_note_parse(st, "s2", named_write, sizeof(named_write) - 1);
	req = extended_request(NULL, 0, BIND("s1"));
	assert_true(is_read(&req, st));
	req = extended_request(NULL, 0, BIND("s2"));
	assert_false(is_read(&req, st));
	req = extended_request(NULL, 0, BIND("s3")); /* unknown to the session */
	assert_false(is_read(&req, st));
	req = extended_request(NULL, 0, BIND("s1"));
	assert_false(is_read(&req, NULL));
	/* Bind of the unnamed statement with no Parse of it in the request. */
	req = extended_request(NULL, 0, BIND(""));
	assert_false(is_read(&req, st));

	/* Any other message: a Flush, a Close, a function call. */
	req = extended_request(PARSE("\0select 1\0\0\0"), BIND(""));
	put(&req, 'H', "", 0);
	assert_false(is_read(&req, NULL));
	req.len = 0;
	put(&req, 'C', "Ss1", 4);
	put(&req, 'S', "", 0);
	assert_false(is_read(&req, st));
	req.len = 0;
	put(&req, 'F', "\0\0\0\1\0\0\0\0\0\0", 10);
	assert_false(is_read(&req, NULL));
	session_state_free(st);
}

/* Only what provably writes nothing escapes rw_split's question for the commit LSN. */
/* Settings alone: they leave only what the session records. */
static void test_query_only_sets(void **state UNUSED)
{
	assert_true(xact_query_only_sets("SET search_path = a", 19));
	assert_true(xact_query_only_sets("RESET ALL; SET ROLE x", 21));
	assert_false(xact_query_only_sets("SELECT 1", 8));
	/* A read could reach a function that sets what no record holds. */
	assert_false(xact_query_only_sets("RESET ALL; SELECT 1; SET ROLE x", 31));
	assert_false(xact_query_only_sets("SET LOCAL work_mem = '1MB'", 26));
	assert_false(xact_query_only_sets("SET x.y = 1; LISTEN ch", 22));
	assert_false(xact_query_only_sets("BEGIN; SET x.y = 1", 18));
	assert_false(xact_query_only_sets("SET x.y = 1; SELECT nextval('s')", 32));
	assert_false(xact_query_only_sets("DISCARD ALL", 11));
}

static void test_request_may_write(void **state UNUSED)
{
	struct request req = query_request("select 1");

	assert_false(xact_request_may_write(req.bytes, req.len));
	req = query_request("SET search_path = a; PREPARE p AS SELECT 1; select 2");
	assert_false(xact_request_may_write(req.bytes, req.len));
	req = query_request("insert into t values (1)");
	assert_true(xact_request_may_write(req.bytes, req.len));
	req = query_request("BEGIN");
	assert_true(xact_request_may_write(req.bytes, req.len)); /* what follows may write */
	req = query_request("SET x = 1; select f()");
	assert_true(xact_request_may_write(req.bytes, req.len));
	assert_true(xact_request_may_write(req.bytes, 3)); /* cut: unknown */
	/* Extended: Parse and Sync run nothing; Bind and Execute may. */
	req.len = 0;
	put(&req, 'P', "s1\0delete from t\0\0\0", 19);
	put(&req, 'S', "", 0);
	assert_false(xact_request_may_write(req.bytes, req.len));
	req = extended_request(PARSE("\0select 1\0\0\0"), BIND(""));
	assert_true(xact_request_may_write(req.bytes, req.len));
}

/* What the LSN question may ride behind: one statement that commits by itself. */
static void test_request_commits_alone(void **state UNUSED)
{
	struct request req = query_request("insert into t values (1)");

	assert_true(xact_request_commits_alone(req.bytes, req.len));
	req = query_request("BEGIN; insert into t values (1)");
	assert_false(xact_request_commits_alone(req.bytes, req.len));
	req = query_request("COMMIT");
	assert_false(xact_request_commits_alone(req.bytes, req.len));
	/* COPY FROM STDIN waits for data: nothing may follow it. */
	req = query_request("  Copy t FROM stdin");
	assert_false(xact_request_commits_alone(req.bytes, req.len));
	req = extended_request(PARSE("\0insert into t values (1)\0\0\0"), BIND(""));
	assert_false(xact_request_commits_alone(req.bytes, req.len));
}

/* Bytes that are not whole messages are no request to route. */
static void test_request_is_read_truncated(void **state UNUSED)
{
	struct request req = query_request("select 1"), whole;

	/* A Query shorter than its length says, though what is there ends in a NUL. */
	req.bytes[4] += 10;
	assert_false(is_read(&req, NULL));

	whole = extended_request(PARSE("\0select 1\0\0\0"), BIND(""));
	/* Cut anywhere: inside a message, between two, before or inside the Sync. */
	for (size_t cut = 1; cut < whole.len; cut++)
		if (xact_request_is_read(whole.bytes, cut, NULL))
			fail_msg("a read cut to %zu of its %zu bytes is taken whole", cut,
				 whole.len);

	/* A length below its own 4 bytes. */
	req.len = 0;
	put(&req, 'P', "\0select 1\0\0\0", 12);
	put(&req, 'S', "", 0);
	req.bytes[4] = 3;
	assert_false(is_read(&req, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_retry_extended),
		cmocka_unit_test(test_session_statements),
		cmocka_unit_test(test_session_pins),
		cmocka_unit_test(test_session_limit),
		cmocka_unit_test(test_statements),
		cmocka_unit_test(test_request_is_read_query),
		cmocka_unit_test(test_request_is_read_extended),
		cmocka_unit_test(test_request_is_read_truncated),
		cmocka_unit_test(test_query_only_sets),
		cmocka_unit_test(test_request_may_write),
		cmocka_unit_test(test_request_commits_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
