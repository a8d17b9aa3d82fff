/*
 * Framing and builders: the code every byte from a client or server goes
 * through first.
 */
#include "pgwing/proto.h"

#include <event2/buffer.h>

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void add_header(struct evbuffer *b, char type, uint32_t len)
{
	uint32_t n = htonl(len);

	evbuffer_add(b, &type, 1);
	evbuffer_add(b, &n, 4);
}

/* A message of the given type with a body of n bytes of 'x'. */
static void add_message(struct evbuffer *b, char type, size_t n)
{
	char *body = malloc(n + 1);

	memset(body, 'x', n);
	add_header(b, type, (uint32_t)n + 4);
	evbuffer_add(b, body, n);
	free(body);
}

static void test_peek_message(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t len;
	char type;

	assert_int_equal(proto_peek_message(b, 1000, &type, &len), PROTO_FRAME_NEED_MORE);
	add_header(b, 'Q', 9);
	assert_int_equal(proto_peek_message(b, 1000, &type, &len), PROTO_FRAME_OK);
	assert_int_equal(type, 'Q');
	assert_int_equal(len, 9);
	/* Peeking consumes nothing. */
	assert_int_equal(evbuffer_get_length(b), 5);
	assert_int_equal(proto_peek_message(b, 8, &type, &len), PROTO_FRAME_TOO_LARGE);
	evbuffer_drain(b, 5);
	add_header(b, 'Q', 3);
	assert_int_equal(proto_peek_message(b, 1000, &type, &len), PROTO_FRAME_BAD_LENGTH);
	evbuffer_drain(b, 5);
	add_header(b, 'Q', 0xffffffffu);
	assert_int_equal(proto_peek_message(b, 1000, &type, &len), PROTO_FRAME_TOO_LARGE);
	evbuffer_free(b);
}

static void test_next_message_waits_for_all(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint8_t *msg = NULL;
	uint32_t len;
	char type;

	add_header(b, 'p', 4 + 3);
	evbuffer_add(b, "ab", 2);
	assert_int_equal(proto_next_message(b, 1000, &type, &len, &msg), PROTO_FRAME_NEED_MORE);
	evbuffer_add(b, "c", 1);
	assert_int_equal(proto_next_message(b, 1000, &type, &len, &msg), PROTO_FRAME_OK);
	assert_int_equal(type, 'p');
	assert_int_equal(len, 7);
	assert_memory_equal(msg + PROTO_HEADER_LEN, "abc", 3);
	/* Nothing consumed; length errors come as they do from the peek. */
	assert_int_equal(evbuffer_get_length(b), 8);
	assert_int_equal(proto_next_message(b, 6, &type, &len, &msg), PROTO_FRAME_TOO_LARGE);
	evbuffer_free(b);
}

static void test_peek_startup(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t v[2] = {htonl(8), htonl(PROTO_SSL_CODE)};
	uint32_t len, code;

	evbuffer_add(b, v, 4);
	assert_int_equal(proto_peek_startup(b, 10000, &len, &code), PROTO_FRAME_NEED_MORE);
	evbuffer_add(b, &v[1], 4);
	assert_int_equal(proto_peek_startup(b, 10000, &len, &code), PROTO_FRAME_OK);
	assert_int_equal(len, 8);
	assert_int_equal(code, PROTO_SSL_CODE);
	evbuffer_drain(b, 8);
	/* A bad length is refused from its 4 bytes alone, without waiting for the code. */
	v[0] = htonl(7);
	evbuffer_add(b, v, 4);
	assert_int_equal(proto_peek_startup(b, 10000, &len, &code), PROTO_FRAME_BAD_LENGTH);
	evbuffer_add(b, &v[1], 4);
	assert_int_equal(proto_peek_startup(b, 10000, &len, &code), PROTO_FRAME_BAD_LENGTH);
	evbuffer_drain(b, 8);
	v[0] = htonl(10001);
	evbuffer_add(b, v, 8);
	assert_int_equal(proto_peek_startup(b, 10000, &len, &code), PROTO_FRAME_TOO_LARGE);
	evbuffer_free(b);
}

static void test_reader_bounds(void **state UNUSED)
{
	const uint8_t data[] = {0, 0, 0, 7, 'a', 'b', 0, 'c'};
	struct proto_reader r;

	proto_reader_init(&r, data, sizeof(data));
	assert_int_equal(proto_read_int32(&r), 7);
	assert_string_equal(proto_read_cstring(&r), "ab");
	assert_false(r.has_failed);
	/* "c" has no terminator: reading it fails instead of running off the end. */
	assert_null(proto_read_cstring(&r));
	assert_true(r.has_failed);
	/* Once failed, everything yields zero. */
	assert_int_equal(proto_read_int16(&r), 0);
	assert_int_equal(proto_read_byte(&r), 0);

	proto_reader_init(&r, data, 3);
	assert_int_equal(proto_read_int32(&r), 0);
	assert_true(r.has_failed);
}

static void test_parse_startup(void **state UNUSED)
{
	static const char good[] = "user\0alice\0database\0shop\0application_name\0psql\0";
	static const char no_db[] = "user\0bob\0";
	static const char no_user[] = "database\0shop\0";
	static const char dup[] = "user\0a\0user\0b\0";
	static const char unterminated[] = {'u', 's', 'e', 'r', 0, 'a'};
	struct startup_params p;
	const char *err = NULL;

	assert_true(proto_parse_startup((const uint8_t *)good, sizeof(good), &p, &err));
	assert_int_equal(p.count, 3);
	assert_string_equal(p.user, "alice");
	assert_string_equal(p.database, "shop");
	assert_string_equal(startup_params_get(&p, "application_name"), "psql");
	assert_null(startup_params_get(&p, "options"));
	startup_params_free(&p);

	/* No database: Postgres' default, the user name. */
	assert_true(proto_parse_startup((const uint8_t *)no_db, sizeof(no_db), &p, &err));
	assert_string_equal(p.database, "bob");
	startup_params_free(&p);

	assert_false(proto_parse_startup((const uint8_t *)no_user, sizeof(no_user), &p, &err));
	assert_non_null(strstr(err, "user name"));
	assert_false(proto_parse_startup((const uint8_t *)dup, sizeof(dup), &p, &err));
	assert_false(
		proto_parse_startup((const uint8_t *)unterminated, sizeof(unterminated), &p, &err));
	/* Trailing bytes after the terminator. */
	{
		char extra[sizeof(good) + 1];

		memcpy(extra, good, sizeof(good));
		extra[sizeof(good)] = 'z';
		assert_false(proto_parse_startup((const uint8_t *)extra, sizeof(extra), &p, &err));
	}
}

static void test_error_roundtrip(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	struct proto_error_fields ef;
	uint32_t len;
	char type;
	uint8_t *msg;

	proto_put_error(b, "FATAL", SQLSTATE_TOO_MANY_CONNECTIONS, "no more than %d", 3);
	assert_int_equal(proto_peek_message(b, 1 << 20, &type, &len), PROTO_FRAME_OK);
	assert_int_equal(type, 'E');
	assert_int_equal(evbuffer_get_length(b), 1 + len);
	msg = evbuffer_pullup(b, -1);
	assert_true(proto_parse_error(msg + 5, len - 4, &ef));
	assert_string_equal(ef.severity, "FATAL");
	assert_string_equal(ef.sqlstate, "53300");
	assert_string_equal(ef.message, "no more than 3");
	/* A body cut short is rejected, not overread. */
	assert_false(proto_parse_error(msg + 5, 6, &ef));
	evbuffer_free(b);
}

static void test_builders_lengths(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	static const struct proto_column cols[] = {{"name", PROTO_OID_TEXT}, {"n", PROTO_OID_INT8}};
	const char *row[] = {"pg1", NULL};
	struct startup_params p;
	const char *err;
	static const char params[] = "user\0u\0database\0d\0";
	size_t total = 0;

	proto_put_ready(b, 'I');
	proto_put_backend_key(b, 1, 2);
	proto_put_parameter_status(b, "server_version", "15");
	proto_put_row_description(b, cols, 2);
	proto_put_data_row(b, row, 2);
	proto_put_command_complete(b, "SHOW");
	proto_put_query(b, "select 1");
	proto_put_terminate(b);
	/* Every message's length field covers exactly its bytes. */
	while (evbuffer_get_length(b) > 0) {
		uint32_t len;
		char type;

		assert_int_equal(proto_peek_message(b, 1 << 20, &type, &len), PROTO_FRAME_OK);
		assert_true(evbuffer_get_length(b) >= 1 + len);
		evbuffer_drain(b, 1 + len);
		total++;
	}
	assert_int_equal(total, 8);

	assert_true(proto_parse_startup((const uint8_t *)params, sizeof(params), &p, &err));
	proto_put_startup(b, &p);
	{
		uint32_t len, code;

		assert_int_equal(proto_peek_startup(b, 10000, &len, &code), PROTO_FRAME_OK);
		assert_int_equal(code, PROTO_VERSION_3);
		assert_int_equal(len, 8 + sizeof(params));
	}
	startup_params_free(&p);
	evbuffer_free(b);
}

static enum proto_inspect stop_on_x(void *arg, char type, uint32_t len UNUSED,
				    struct evbuffer *in UNUSED,
				    const struct evbuffer_ptr *at UNUSED)
{
	int *seen = arg;

	(*seen)++;
	return type == 'X' ? PROTO_INSPECT_STOP : PROTO_INSPECT_FORWARD;
}

static void test_scan_batches_whole_messages(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t remaining = 0;
	size_t movable;
	int seen = 0;

	add_message(b, 'P', 10);
	add_message(b, 'B', 3);
	add_message(b, 'S', 0);
	assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, stop_on_x, &seen),
			 PROTO_SCAN_DONE);
	assert_int_equal(movable, 15 + 8 + 5);
	assert_int_equal(remaining, 0);
	assert_int_equal(seen, 3);
	evbuffer_free(b);
}

static void test_scan_streams_large_message(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t remaining = 0;
	size_t movable;

	/* Header and 100 of 1000 body bytes arrive: all of it may go on already. */
	add_header(b, 'd', 1004);
	{
		char part[100];

		memset(part, 'y', sizeof(part));
		evbuffer_add(b, part, sizeof(part));
	}
	assert_int_equal(proto_scan_messages(b, 2000, &remaining, &movable, NULL, NULL),
			 PROTO_SCAN_DONE);
	assert_int_equal(movable, 105);
	assert_int_equal(remaining, 900);
	evbuffer_drain(b, movable);
	/* The rest plus the next header split mid-way. */
	{
		char *rest = calloc(1, 900);

		evbuffer_add(b, rest, 900);
		free(rest);
	}
	add_header(b, 'c', 4);
	assert_int_equal(proto_scan_messages(b, 2000, &remaining, &movable, NULL, NULL),
			 PROTO_SCAN_DONE);
	assert_int_equal(movable, 905);
	assert_int_equal(remaining, 0);
	evbuffer_free(b);
}

static void test_scan_partial_header_waits(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t remaining = 0;
	size_t movable;

	add_message(b, 'Q', 2);
	evbuffer_add(b, "Q\0\0", 3);
	assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, NULL, NULL),
			 PROTO_SCAN_DONE);
	assert_int_equal(movable, 7);
	evbuffer_free(b);
}

static void test_scan_stops_and_rejects(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t remaining = 0;
	size_t movable;
	int seen = 0;

	add_message(b, 'Q', 4);
	add_message(b, 'X', 0);
	add_message(b, 'Q', 4);
	assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, stop_on_x, &seen),
			 PROTO_SCAN_STOPPED);
	assert_int_equal(movable, 9);
	evbuffer_free(b);

	b = evbuffer_new();
	add_message(b, 'Q', 4);
	add_header(b, 'Q', 2); /* below its own size */
	assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, NULL, NULL),
			 PROTO_SCAN_BAD_LENGTH);
	assert_int_equal(movable, 9);
	evbuffer_drain(b, evbuffer_get_length(b));
	add_header(b, 'Q', 1001); /* over max_packet_size */
	assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, NULL, NULL),
			 PROTO_SCAN_BAD_LENGTH);
	assert_int_equal(movable, 0);
	evbuffer_free(b);
}

/* Found by fuzz_framer: 1 + 0xffffffff wrapped *remaining to 0, and the scan reread the header. */
static void test_scan_rejects_length_beyond_counter(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t remaining = 0;
	size_t movable;

	add_message(b, 'Q', 4);
	add_header(b, 'd', UINT32_MAX);
	evbuffer_add(b, "xxxxxxxx", 8);
	assert_int_equal(proto_scan_messages(b, UINT32_MAX, &remaining, &movable, NULL, NULL),
			 PROTO_SCAN_BAD_LENGTH);
	assert_int_equal(movable, 9);
	assert_int_equal(remaining, 0);
	evbuffer_free(b);
}

static enum proto_inspect want_status(void *arg, char type, uint32_t len UNUSED,
				      struct evbuffer *in, const struct evbuffer_ptr *at)
{
	char *status = arg;
	struct evbuffer_ptr p = *at;

	if (type != 'Z')
		return PROTO_INSPECT_FORWARD;
	if (evbuffer_ptr_set(in, &p, 5, EVBUFFER_PTR_ADD) < 0 ||
	    evbuffer_copyout_from(in, &p, status, 1) != 1)
		return PROTO_INSPECT_WAIT;
	return PROTO_INSPECT_FORWARD;
}

static void test_scan_inspector_waits_for_body(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t remaining = 0;
	size_t movable;
	char status = '?';

	add_message(b, 'C', 6);
	add_header(b, 'Z', 5);
	assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, want_status, &status),
			 PROTO_SCAN_DONE);
	assert_int_equal(movable, 11);
	assert_int_equal(status, '?');
	evbuffer_drain(b, movable);
	evbuffer_add(b, "T", 1);
	assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, want_status, &status),
			 PROTO_SCAN_DONE);
	assert_int_equal(movable, 6);
	assert_int_equal(status, 'T');
	evbuffer_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peek_message),
		cmocka_unit_test(test_next_message_waits_for_all),
		cmocka_unit_test(test_peek_startup),
		cmocka_unit_test(test_reader_bounds),
		cmocka_unit_test(test_parse_startup),
		cmocka_unit_test(test_error_roundtrip),
		cmocka_unit_test(test_builders_lengths),
		cmocka_unit_test(test_scan_batches_whole_messages),
		cmocka_unit_test(test_scan_streams_large_message),
		cmocka_unit_test(test_scan_partial_header_waits),
		cmocka_unit_test(test_scan_stops_and_rejects),
		cmocka_unit_test(test_scan_rejects_length_beyond_counter),
		cmocka_unit_test(test_scan_inspector_waits_for_body),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
