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

/* What a pool compares to decide whether a server or a welcome fits a new client. */
static void test_startup_params_copy_equal_set(void **state UNUSED)
{
	static const char a_raw[] = "user\0alice\0application_name\0psql\0";
	static const char b_raw[] = "user\0alice\0application_name\0pgbench\0";
	static const char no_db[] = "user\0bob\0";
	struct startup_params a, b, c;
	const char *err = NULL;

	assert_true(proto_parse_startup((const uint8_t *)a_raw, sizeof(a_raw), &a, &err));
	assert_true(proto_parse_startup((const uint8_t *)b_raw, sizeof(b_raw), &b, &err));
	startup_params_copy(&c, &a);
	assert_true(startup_params_equal(&a, &c));
	assert_false(startup_params_equal(&a, &b));
	/* The copy owns its strings: user and database point into it. */
	assert_ptr_not_equal(c.user, a.user);
	assert_string_equal(c.user, "alice");
	assert_string_equal(c.database, "alice");
	assert_ptr_equal(c.database, c.user);

	/* set: replace reports a change once; a new name is added at the end. */
	assert_true(startup_params_set(&c, "application_name", "pgbench"));
	assert_false(startup_params_set(&c, "application_name", "pgbench"));
	assert_true(startup_params_equal(&b, &c));
	assert_true(startup_params_set(&c, "TimeZone", "UTC"));
	assert_int_equal(c.count, 3);
	assert_false(startup_params_equal(&b, &c));
	startup_params_free(&c);

	/* Fewer names is not equal; an empty copy is empty. */
	startup_params_free(&b);
	assert_true(proto_parse_startup((const uint8_t *)no_db, sizeof(no_db), &b, &err));
	assert_false(startup_params_equal(&a, &b));
	startup_params_free(&b);
	memset(&b, 0, sizeof(b));
	startup_params_copy(&c, &b);
	assert_int_equal(c.count, 0);
	assert_null(c.user);
	startup_params_free(&c);
	startup_params_free(&a);
}

/* Clients share their pool's welcome until one of them is told a different value. */
static void test_param_set_copy_on_write(void **state UNUSED)
{
	static const struct startup_params empty;
	struct param_set *pool = param_set_new(&empty), *a, *b = NULL;

	assert_true(startup_params_set(&pool->params, "TimeZone", "UTC"));
	assert_true(startup_params_set(&pool->params, "DateStyle", "ISO"));
	a = param_set_ref(pool);
	assert_int_equal(pool->refs, 2);

	/* The same value: no change, still shared. */
	assert_false(param_set_update(&a, "TimeZone", "UTC"));
	assert_ptr_equal(a, pool);
	/* Another value: a gets its own copy; the pool's stays as it was. */
	assert_true(param_set_update(&a, "TimeZone", "Asia/Kathmandu"));
	assert_ptr_not_equal(a, pool);
	assert_int_equal(pool->refs, 1);
	assert_int_equal(a->refs, 1);
	assert_string_equal(startup_params_get(&a->params, "TimeZone"), "Asia/Kathmandu");
	assert_string_equal(startup_params_get(&a->params, "DateStyle"), "ISO");
	assert_string_equal(startup_params_get(&pool->params, "TimeZone"), "UTC");
	/* Not shared: updated in place. */
	assert_true(param_set_update(&a, "DateStyle", "German"));
	assert_int_equal(a->refs, 1);
	/* What the sets are fed with. */
	{
		static const char good[] = "TimeZone\0UTC\0";
		static const char bad[] = {'T', 'i', 'm', 'e', 0, 'U'};
		const char *name, *value;

		assert_true(proto_parse_parameter_status((const uint8_t *)good, sizeof(good), &name,
							 &value));
		assert_string_equal(name, "TimeZone");
		assert_string_equal(value, "UTC");
		assert_false(proto_parse_parameter_status((const uint8_t *)bad, sizeof(bad), &name,
							  &value));
	}
	/* From nothing: a new set. */
	assert_true(param_set_update(&b, "server_version", "15.20"));
	assert_non_null(b);
	assert_string_equal(startup_params_get(&b->params, "server_version"), "15.20");
	param_set_unref(a);
	param_set_unref(b);
	param_set_unref(pool);
	param_set_unref(NULL);
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

static enum proto_inspect stop_on_x(void *arg, struct evbuffer *in UNUSED,
				    const struct proto_msg *msg)
{
	int *seen = arg;

	(*seen)++;
	return msg->type == 'X' ? PROTO_INSPECT_STOP : PROTO_INSPECT_FORWARD;
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

static enum proto_inspect want_status(void *arg, struct evbuffer *in, const struct proto_msg *msg)
{
	char *status = arg;
	uint8_t scratch[1];
	const uint8_t *body;

	if (msg->type != 'Z')
		return PROTO_INSPECT_FORWARD;
	body = proto_msg_body(in, msg, scratch);
	if (body == NULL)
		return PROTO_INSPECT_WAIT;
	*status = (char)body[0];
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

/*
 * What a socket read leaves: the bytes spread over chains, cut anywhere. Each
 * piece becomes a chain of its own (a reference is never merged with another).
 */
static void add_in_pieces(struct evbuffer *b, const uint8_t *bytes, size_t len, size_t piece)
{
	for (size_t i = 0; i < len; i += piece)
		evbuffer_add_reference(b, bytes + i, len - i < piece ? len - i : piece, NULL, NULL);
}

/* Q "select 1", P with a statement name, S; and the bytes' total. */
static size_t sample_stream(uint8_t *out)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;

	proto_put_query(b, "select 1");
	add_header(b, 'P', 4 + 9);
	evbuffer_add(b, "stmt\0q\0\0\0", 9);
	add_message(b, 'S', 0);
	n = evbuffer_get_length(b);
	evbuffer_remove(b, out, n);
	evbuffer_free(b);
	return n;
}

struct seen {
	char types[8];
	char bodies[8][16];
	int n;
	int in_place; /* how many bodies the scan offered in place */
};

static enum proto_inspect record(void *arg, struct evbuffer *in, const struct proto_msg *msg)
{
	struct seen *s = arg;
	uint8_t scratch[16];
	const uint8_t *body;

	assert_true(msg->len - 4 < sizeof(scratch));
	body = proto_msg_body(in, msg, scratch);
	if (body == NULL)
		return PROTO_INSPECT_WAIT;
	s->in_place += msg->body != NULL;
	s->types[s->n] = msg->type;
	memcpy(s->bodies[s->n], body, msg->len - 4);
	s->n++;
	return PROTO_INSPECT_FORWARD;
}

/* Every cut of the stream into chains, from one byte each on: the same messages, the same bodies.
 */
static void test_scan_across_chains(void **state UNUSED)
{
	uint8_t bytes[64];
	size_t len = sample_stream(bytes);

	for (size_t piece = 1; piece <= len; piece++) {
		struct evbuffer *b = evbuffer_new();
		struct seen s = {0};
		uint32_t remaining = 0;
		size_t movable;

		add_in_pieces(b, bytes, len, piece);
		assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, record, &s),
				 PROTO_SCAN_DONE);
		assert_int_equal(movable, len);
		assert_int_equal(remaining, 0);
		assert_int_equal(s.n, 3);
		assert_memory_equal(s.types, "QPS", 3);
		assert_string_equal(s.bodies[0], "select 1");
		assert_memory_equal(s.bodies[1], "stmt\0q\0\0\0", 9);
		if (piece == len)
			assert_int_equal(s.in_place, 3); /* one chain: nothing copied */
		if (piece == 1)
			assert_int_equal(s.in_place, 0); /* every body copied */
		evbuffer_free(b);
	}
}

/* A stream cut after every byte count: what is movable never passes a message not yet whole. */
static void test_scan_split_everywhere(void **state UNUSED)
{
	uint8_t bytes[64];
	size_t len = sample_stream(bytes);
	const size_t ends[] = {14, 28, 33}; /* where each message ends */

	for (size_t cut = 0; cut <= len; cut++) {
		struct evbuffer *b = evbuffer_new();
		struct seen s = {0};
		uint32_t remaining = 0;
		size_t movable, expect = 0;

		add_in_pieces(b, bytes, cut, 3);
		proto_scan_messages(b, 1000, &remaining, &movable, record, &s);
		for (size_t i = 0; i < 3; i++)
			if (ends[i] <= cut)
				expect = ends[i];
		assert_int_equal(movable, expect);
		evbuffer_free(b);
	}
}

/*
 * The scan over bytes in one piece (conn.c's fresh reads), cut after every
 * byte count: it moves what the buffer scan moves, shows every whole body in
 * place, and carries a message cut in its body over in *remaining.
 */
static void test_scan_bytes(void **state UNUSED)
{
	uint8_t bytes[64];
	size_t len = sample_stream(bytes);
	const size_t ends[] = {14, 28, 33};

	for (size_t cut = 0; cut <= len; cut++) {
		struct seen s = {0};
		uint32_t remaining = 0;
		size_t movable, expect = 0;
		int whole = 0;

		assert_int_equal(
			proto_scan_bytes(bytes, cut, 1000, &remaining, &movable, record, &s),
			PROTO_SCAN_DONE);
		for (size_t i = 0; i < 3; i++)
			if (ends[i] <= cut) {
				expect = ends[i];
				whole++;
			}
		assert_int_equal(movable, expect);
		assert_int_equal(remaining, 0);
		assert_int_equal(s.n, whole);
		assert_int_equal(s.in_place, whole);
	}
	{
		uint8_t big[5 + 100];
		uint32_t remaining = 0;
		size_t movable;
		int seen = 0;

		memset(big, 'd', sizeof(big));
		memcpy(big, "D\0\0\0\xe8", 5); /* 'D' of 1 + 232 bytes: 100 here */
		assert_int_equal(proto_scan_bytes(big, sizeof(big), 1000, &remaining, &movable,
						  stop_on_x, &seen),
				 PROTO_SCAN_DONE);
		assert_int_equal(movable, sizeof(big));
		assert_int_equal(remaining, 233 - sizeof(big));
		/* The next read starts inside that message. */
		assert_int_equal(
			proto_scan_bytes(big, 50, 1000, &remaining, &movable, stop_on_x, &seen),
			PROTO_SCAN_DONE);
		assert_int_equal(movable, 50);
		assert_int_equal(remaining, 233 - sizeof(big) - 50);
		assert_int_equal(seen, 1);
	}
}

/* An inspector that makes a NotificationResponse of pid 0x01020304 name pid 0x0a0b0c0d. */
static enum proto_inspect renumber(void *arg UNUSED, struct evbuffer *in,
				   const struct proto_msg *msg)
{
	if (msg->type != 'A')
		return PROTO_INSPECT_FORWARD;
	return proto_msg_replace_int32(in, msg, 0, 0x01020304, 0x0a0b0c0d) ? PROTO_INSPECT_FORWARD
									   : PROTO_INSPECT_WAIT;
}

/* The pid of a notification is replaced in place, wherever its bytes lie. */
static void test_replace_int32(void **state UNUSED)
{
	static const uint8_t stream[] = "C\0\0\0\x06x\0A\0\0\0\x0c\x01\x02\x03\x04"
					"c\0p\0";
	const size_t len = sizeof(stream) - 1, pid_at = 12;
	uint8_t bytes[sizeof(stream)];
	uint32_t remaining = 0;
	size_t movable;

	for (size_t piece = 1; piece <= len; piece++) {
		struct evbuffer *b = evbuffer_new();

		memcpy(bytes, stream, len);
		add_in_pieces(b, bytes, len, piece);
		assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, renumber, NULL),
				 PROTO_SCAN_DONE);
		assert_int_equal(movable, len);
		assert_memory_equal(bytes + pid_at, "\x0a\x0b\x0c\x0d", 4);
		/* Another pid stays as it is. */
		assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, renumber, NULL),
				 PROTO_SCAN_DONE);
		assert_memory_equal(bytes + pid_at, "\x0a\x0b\x0c\x0d", 4);
		evbuffer_free(b);
	}
	/* Read bytes: in place; cut inside the pid, the inspector waits for the rest. */
	memcpy(bytes, stream, len);
	assert_int_equal(
		proto_scan_bytes(bytes, pid_at + 2, 1000, &remaining, &movable, renumber, NULL),
		PROTO_SCAN_DONE);
	assert_int_equal(movable, 7);
	assert_memory_equal(bytes + pid_at, "\x01\x02\x03\x04", 4);
	assert_int_equal(proto_scan_bytes(bytes, len, 1000, &remaining, &movable, renumber, NULL),
			 PROTO_SCAN_DONE);
	assert_memory_equal(bytes + pid_at, "\x0a\x0b\x0c\x0d", 4);
}

/* A message streamed in many small chains: *remaining is walked over them without re-reading. */
static void test_scan_streams_over_many_chains(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint8_t body[100];
	uint8_t tail[5 + 1];
	uint32_t remaining = 0;
	size_t movable;
	int seen = 0;

	memset(body, 'd', sizeof(body));
	add_header(b, 'D', 4 + sizeof(body));
	add_in_pieces(b, body, sizeof(body), 3); /* 34 chains, more than one peek holds */
	tail[0] = 'X';
	memcpy(tail + 1, "\0\0\0\4", 4);
	add_in_pieces(b, tail, 5, 2);
	assert_int_equal(proto_scan_messages(b, 1000, &remaining, &movable, stop_on_x, &seen),
			 PROTO_SCAN_STOPPED);
	assert_int_equal(movable, 5 + sizeof(body));
	assert_int_equal(seen, 2);
	evbuffer_free(b);
}

/* Holds an answer (T, D, C) until its ReadyForQuery; notices go at once; X stops. */
static enum proto_inspect hold_until_ready(void *arg, struct evbuffer *in UNUSED,
					   const struct proto_msg *msg)
{
	int *seen = arg;

	(*seen)++;
	switch (msg->type) {
	case 'N':
		return PROTO_INSPECT_FORWARD;
	case 'Z':
		return PROTO_INSPECT_RELEASE;
	case 'X':
		return PROTO_INSPECT_STOP;
	default:
		return PROTO_INSPECT_HOLD;
	}
}

/*
 * A held answer goes on only with its ReadyForQuery, however its bytes
 * arrive; what came before the hold goes at once; bytes the caller moved are
 * never shown again.
 */
static void test_scan_holds(void **state UNUSED)
{
	struct evbuffer *whole = evbuffer_new();
	uint8_t bytes[256];
	size_t len, ready_at;

	add_message(whole, 'N', 10);
	add_message(whole, 'T', 20);
	add_message(whole, 'D', 30);
	add_message(whole, 'C', 8);
	ready_at = evbuffer_get_length(whole);
	add_header(whole, 'Z', 5);
	evbuffer_add(whole, "I", 1);
	len = evbuffer_get_length(whole);
	evbuffer_remove(whole, bytes, len);
	evbuffer_free(whole);

	for (size_t piece = 1; piece <= len; piece++) {
		struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
		uint32_t remaining = 0;
		int seen = 0;

		for (size_t fed = 0; fed < len; fed += piece) {
			size_t movable;

			evbuffer_add(in, bytes + fed, len - fed < piece ? len - fed : piece);
			assert_int_equal(proto_scan_messages(in, 1000, &remaining, &movable,
							     hold_until_ready, &seen),
					 PROTO_SCAN_DONE);
			evbuffer_remove_buffer(in, out, movable);
			if (fed + piece < ready_at + PROTO_HEADER_LEN)
				assert_true(evbuffer_get_length(out) <=
					    15); /* the notice at most */
		}
		assert_int_equal(evbuffer_get_length(out), len);
		assert_int_equal(evbuffer_get_length(in), 0);
		assert_int_equal(remaining, 0);
		assert_memory_equal(evbuffer_pullup(out, -1), bytes, len);
		evbuffer_free(in);
		evbuffer_free(out);
	}
}

/* A stop, a wait or the end inside a hold leaves all of it for the next scan. */
static void test_scan_hold_stop(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t remaining = 0;
	size_t movable;
	int seen = 0;

	add_message(b, 'N', 3);
	add_message(b, 'T', 20);
	add_message(b, 'D', 30);
	add_message(b, 'X', 0);
	assert_int_equal(
		proto_scan_messages(b, 1000, &remaining, &movable, hold_until_ready, &seen),
		PROTO_SCAN_STOPPED);
	assert_int_equal(movable, 8);
	assert_int_equal(seen, 4);
	evbuffer_free(b);

	/* Ending inside a held message: the next scan starts at the hold, not mid-message. */
	b = evbuffer_new();
	add_message(b, 'T', 20);
	add_header(b, 'D', 34);
	evbuffer_add(b, "xx", 2);
	assert_int_equal(
		proto_scan_messages(b, 1000, &remaining, &movable, hold_until_ready, &seen),
		PROTO_SCAN_DONE);
	assert_int_equal(movable, 0);
	assert_int_equal(remaining, 0);
	evbuffer_free(b);
}

/* The bytes in b are exactly want[0..n): what the hand-framed code sent before. */
static void assert_bytes(struct evbuffer *b, const void *want, size_t n)
{
	assert_int_equal(evbuffer_get_length(b), n);
	assert_memory_equal(evbuffer_pullup(b, -1), want, n);
	evbuffer_drain(b, n);
}

static void test_put_empty_query(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();

	proto_put_empty_query(b);
	assert_bytes(b, "I\0\0\0\4", 5);
	evbuffer_free(b);
}

static void test_put_negotiate_protocol_version(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	static const char *const options[] = {"_pq_.a", "_pq_.bc"};
	static const uint8_t want[] = {'v', 0,   0,   0,   27,  0,   0,   0,   0,   0,
				       0,   0,   2,   '_', 'p', 'q', '_', '.', 'a', 0,
				       '_', 'p', 'q', '_', '.', 'b', 'c', 0};
	static const uint8_t none[] = {'v', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0};

	proto_put_negotiate_protocol_version(b, 0, options, 2);
	assert_bytes(b, want, sizeof(want));
	proto_put_negotiate_protocol_version(b, 0, NULL, 0);
	assert_bytes(b, none, sizeof(none));
	evbuffer_free(b);
}

static void test_put_encryption_answer_and_ssl_request(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	static const uint8_t ssl_request[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
	uint32_t len, code;

	proto_put_encryption_answer(b, true);
	assert_bytes(b, "S", 1);
	proto_put_encryption_answer(b, false);
	assert_bytes(b, "N", 1);
	proto_put_ssl_request(b);
	assert_int_equal(proto_peek_startup(b, PROTO_STARTUP_MAX_LEN, &len, &code), PROTO_FRAME_OK);
	assert_int_equal(len, 8);
	assert_int_equal(code, PROTO_SSL_CODE);
	assert_bytes(b, ssl_request, sizeof(ssl_request));
	evbuffer_free(b);
}

static void test_put_sync_and_message(void **state UNUSED)
{
	struct evbuffer *b = evbuffer_new();
	static const uint8_t parse_body[] = "s1\0select $1\0\0\0";
	static const uint8_t want[] = "P\0\0\0\x13s1\0select $1\0\0\0";
	uint8_t header[PROTO_HEADER_LEN];

	proto_put_sync(b);
	assert_bytes(b, "S\0\0\0\4", 5);
	proto_put_message(b, PqMsg_Parse, parse_body, sizeof(parse_body) - 1);
	assert_bytes(b, want, sizeof(want) - 1);
	/* A body larger than the copy threshold comes out the same. */
	{
		size_t n = 10000;
		uint8_t *big = calloc(1, n);
		uint32_t len;
		char type;

		proto_put_message(b, PqMsg_Query, big, n);
		assert_int_equal(proto_peek_message(b, 1 << 20, &type, &len), PROTO_FRAME_OK);
		assert_int_equal(type, 'Q');
		assert_int_equal(len, n + 4);
		assert_int_equal(evbuffer_get_length(b), 1 + len);
		evbuffer_drain(b, 1 + len);
		free(big);
	}
	proto_encode_header(header, PqMsg_Query, 9);
	assert_memory_equal(header, "Q\0\0\0\x0d", PROTO_HEADER_LEN);
	/* The header proto_put_query writes for the same body. */
	proto_put_query(b, "select 1");
	assert_memory_equal(evbuffer_pullup(b, -1), header, PROTO_HEADER_LEN);
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
		cmocka_unit_test(test_startup_params_copy_equal_set),
		cmocka_unit_test(test_param_set_copy_on_write),
		cmocka_unit_test(test_error_roundtrip),
		cmocka_unit_test(test_builders_lengths),
		cmocka_unit_test(test_put_empty_query),
		cmocka_unit_test(test_put_negotiate_protocol_version),
		cmocka_unit_test(test_put_encryption_answer_and_ssl_request),
		cmocka_unit_test(test_put_sync_and_message),
		cmocka_unit_test(test_scan_batches_whole_messages),
		cmocka_unit_test(test_scan_streams_large_message),
		cmocka_unit_test(test_scan_partial_header_waits),
		cmocka_unit_test(test_scan_stops_and_rejects),
		cmocka_unit_test(test_scan_rejects_length_beyond_counter),
		cmocka_unit_test(test_scan_inspector_waits_for_body),
		cmocka_unit_test(test_scan_across_chains),
		cmocka_unit_test(test_scan_split_everywhere),
		cmocka_unit_test(test_scan_bytes),
		cmocka_unit_test(test_scan_streams_over_many_chains),
		cmocka_unit_test(test_replace_int32),
		cmocka_unit_test(test_scan_holds),
		cmocka_unit_test(test_scan_hold_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
