/*
 * The session state's serialized form (a takeover hands it to another
 * process): what is read back replays exactly as the original, and anything
 * malformed is refused rather than half read. A replay onto a server that
 * holds prepared statements already (a hand-over without a reset) sends only
 * the difference, and a failure in it is charged to the right statement.
 */
#include "pgwing/session.h"

#include "pgwing/proto.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#define UNUSED __attribute__((unused))

static void apply(struct session_state *st, const char *sql)
{
	struct stmt_info info[4];
	size_t n = classify_query(sql, strlen(sql), info, 4);

	for (size_t i = 0; i < n; i++)
		session_state_apply(st, &info[i], sql, n == 1);
}

static void note_parse(struct session_state *st, const char *name, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	struct evbuffer *body = evbuffer_new();

	proto_put_cstring(body, name);
	proto_put_cstring(body, text);
	proto_put_int16(body, 0);
	proto_put_message(b, PqMsg_Parse, evbuffer_pullup(body, -1), evbuffer_get_length(body));
	session_state_note_parse(st, name, evbuffer_pullup(b, -1), evbuffer_get_length(b));
	evbuffer_free(body);
	evbuffer_free(b);
}

/* The bytes st replays, as a string to compare (its texts hold no NUL but the framing's). */
static char *replay_bytes(const struct session_state *st, size_t *len)
{
	struct evbuffer *b = evbuffer_new();
	char *out;

	session_state_replay(st, NULL, NULL, b);
	*len = evbuffer_get_length(b);
	out = malloc(*len + 1);
	evbuffer_remove(b, out, *len);
	evbuffer_free(b);
	return out;
}

/* st written and read back; NULL if the reader refused it. */
static struct session_state *round_trip(const struct session_state *st)
{
	struct evbuffer *b = evbuffer_new();
	struct session_state *copy;

	assert_true(session_state_serialize(st, b));
	copy = session_state_deserialize(evbuffer_pullup(b, -1), evbuffer_get_length(b));
	evbuffer_free(b);
	return copy;
}

static void test_round_trip(void **state UNUSED)
{
	struct session_state *st = session_state_new(), *copy;
	char *want, *got;
	size_t want_len, got_len;

	copy = round_trip(st);
	assert_non_null(copy);
	assert_true(session_state_is_empty(copy));
	session_state_free(copy);

	apply(st, "SET search_path TO app, public; SET application_name = 'x;y'");
	apply(st, "LISTEN jobs");
	apply(st, "PREPARE q(int) AS SELECT $1");
	note_parse(st, "s1", "SELECT 1");
	note_parse(st, "s2", "SELECT 2");
	copy = round_trip(st);
	assert_non_null(copy);
	want = replay_bytes(st, &want_len);
	got = replay_bytes(copy, &got_len);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
	assert_true(session_state_is_listening(copy));
	assert_string_equal(session_state_statement_text(copy, "s2"), "SELECT 2");
	/* What is read back goes on like the original: a DEALLOCATE drops the same. */
	apply(copy, "DEALLOCATE q");
	apply(st, "DEALLOCATE q");
	free(want);
	free(got);
	want = replay_bytes(st, &want_len);
	got = replay_bytes(copy, &got_len);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
	free(want);
	free(got);
	session_state_free(copy);

	/* A session that can't move is not written. */
	session_state_mark_unmovable(st, "a temporary table");
	{
		struct evbuffer *b = evbuffer_new();

		assert_false(session_state_serialize(st, b));
		assert_int_equal(evbuffer_get_length(b), 0);
		evbuffer_free(b);
	}
	session_state_free(st);
}

/* Every prefix of a good form, and each byte changed, is refused or read whole; never more. */
static void test_malformed(void **state UNUSED)
{
	struct session_state *st = session_state_new();
	struct evbuffer *b = evbuffer_new();
	uint8_t *good;
	size_t len;

	apply(st, "SET work_mem = '8MB'");
	note_parse(st, "s1", "SELECT 1");
	assert_true(session_state_serialize(st, b));
	len = evbuffer_get_length(b);
	good = malloc(len);
	evbuffer_remove(b, good, len);
	for (size_t n = 0; n < len; n++)
		assert_null(session_state_deserialize(good, n));
	for (size_t i = 0; i < len; i++) {
		uint8_t *bad = malloc(len);

		memcpy(bad, good, len);
		bad[i] ^= 0xff;
		session_state_free(session_state_deserialize(bad, len));
		free(bad);
	}
	{
		/* Trailing bytes, a huge count, an unknown kind, a Parse of another name. */
		uint8_t *longer = calloc(1, len + 1);
		static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
		static const uint8_t kind[] = {0, 0, 0, 1, 9, 'k', 0, 0, 0, 0, 1, 'x', 0, 0, 0, 0};
		struct session_state *other = session_state_new();

		memcpy(longer, good, len);
		assert_null(session_state_deserialize(longer, len + 1));
		assert_null(session_state_deserialize(huge, sizeof(huge)));
		assert_null(session_state_deserialize(kind, sizeof(kind)));
		note_parse(other, "a", "SELECT 1");
		evbuffer_drain(b, evbuffer_get_length(b));
		assert_true(session_state_serialize(other, b));
		/* The entry's name "a" and the message's "a": make the entry's "b". */
		{
			uint8_t *p = evbuffer_pullup(b, -1);

			assert_int_equal(p[8], 'a');
			p[8] = 'b';
			assert_null(session_state_deserialize(p, evbuffer_get_length(b)));
		}
		session_state_free(other);
		free(longer);
	}
	free(good);
	evbuffer_free(b);
	session_state_free(st);
}

/*
 * The replay's messages as "<type><name>" words (Parse and Close carry a
 * name, a Query its text in brackets; others nothing); plan gets its plan.
 */
static void replay_words(const struct session_state *st, const struct session_state *held,
			 int want_requests, const char *want, struct session_replay *plan)
{
	struct evbuffer *b = evbuffer_new();
	char words[512] = "";
	const uint8_t *p;
	size_t len;

	assert_int_equal(session_state_replay(st, held, plan, b), want_requests);
	p = evbuffer_pullup(b, -1);
	len = evbuffer_get_length(b);
	for (size_t at = 0; at < len;) {
		uint32_t n = (uint32_t)p[at + 1] << 24 | (uint32_t)p[at + 2] << 16 |
			     (uint32_t)p[at + 3] << 8 | p[at + 4];
		const char *name = (const char *)p + at + 5 + (p[at] == 'C');

		snprintf(words + strlen(words), sizeof(words) - strlen(words), "%s%c%s%s%s",
			 words[0] ? " " : "", p[at], p[at] == 'Q' ? "[" : "",
			 p[at] == 'P' || p[at] == 'C' || p[at] == 'Q' ? name : "",
			 p[at] == 'Q' ? "]" : "");
		at += 1 + n;
	}
	assert_string_equal(words, want);
	evbuffer_free(b);
}

static void test_replay_onto_held(void **state UNUSED)
{
	struct session_state *st = session_state_new(), *held = session_state_new(), *copy;
	struct session_replay plan;

	note_parse(st, "a", "SELECT 1");
	note_parse(st, "c", "SELECT 3");
	/* A server that holds exactly the session's statements: nothing to send. */
	copy = session_state_copy(st);
	replay_words(st, copy, 0, "", NULL);
	session_state_free(copy);
	/* Held: a as it is, b the session lacks, c under another text. */
	note_parse(held, "a", "SELECT 1");
	note_parse(held, "b", "SELECT 2");
	note_parse(held, "c", "SELECT 33");
	replay_words(st, held, 2, "Cb Cc S Pc S", NULL);
	/* A first login (no session): all of them closed, in one request. */
	replay_words(NULL, held, 1, "Ca Cb Cc S", NULL);
	/* Settings the server lacks replay; a held statement as it is is not prepared again. */
	apply(st, "SET datestyle = 'dmy'");
	assert_true(session_state_is_exact(st));
	replay_words(st, held, 3, "Cb Cc S Q[SET datestyle = 'dmy'] Pc S", &plan);
	/*
	 * Request 2 (Parse c) failed: c is forgotten. Request 0 (the Close) or 1
	 * (the SET) can't be done without.
	 */
	assert_false(session_state_forget_unreplayable(st, held, &plan, 0));
	assert_false(session_state_forget_unreplayable(st, held, &plan, 1));
	assert_true(session_state_forget_unreplayable(st, held, &plan, 2));
	assert_null(session_state_statement_text(st, "c"));
	assert_string_equal(session_state_statement_text(st, "a"), "SELECT 1");
	assert_false(session_state_forget_unreplayable(st, held, &plan, 2));
	session_state_free(held);
	session_state_free(st);
}

static void test_replay_onto_held_settings(void **state UNUSED)
{
	struct session_state *st = session_state_new(), *held = session_state_new();
	struct session_replay plan;

	apply(held, "SET search_path = a");
	apply(held, "SET ROLE alice");
	note_parse(held, "s", "SELECT 1");
	/* The same settings, in the same order: nothing to send. */
	apply(st, "SET search_path = a");
	apply(st, "SET ROLE alice");
	note_parse(st, "s", "SELECT 1");
	replay_words(st, held, 0, "", NULL);
	/* Others: reset first, then the session's own, in order; the statement stays. */
	apply(st, "SET search_path = b");
	replay_words(st, held, 3,
		     "Q[RESET SESSION AUTHORIZATION; RESET ALL] Q[SET ROLE alice] "
		     "Q[SET search_path = b]",
		     &plan);
	assert_true(plan.resets_settings && plan.replays_sql && !plan.closes);
	/* A first login: the settings reset, the statement closed. */
	replay_words(NULL, held, 2, "Q[RESET SESSION AUTHORIZATION; RESET ALL] Cs S", NULL);
	/* Not exact: what a pinned session holds isn't kept. */
	apply(st, "LISTEN ch");
	assert_false(session_state_is_exact(st));
	/* A PREPARE that fails to replay is forgotten, by the plan the replay sent. */
	session_state_free(st);
	st = session_state_new();
	apply(st, "SET search_path = a");
	apply(st, "SET ROLE alice");
	apply(st, "PREPARE p AS SELECT 1");
	note_parse(st, "s", "SELECT 1");
	replay_words(st, held, 4,
		     "Q[RESET SESSION AUTHORIZATION; RESET ALL] Q[SET search_path = a] "
		     "Q[SET ROLE alice] Q[PREPARE p AS SELECT 1]",
		     &plan);
	assert_true(session_state_forget_unreplayable(st, held, &plan, 3));
	/* Its settings are the server's now, but the replay's requests are counted as sent. */
	assert_false(session_state_forget_unreplayable(st, held, &plan, 1));
	session_state_free(held);
	session_state_free(st);
}

/* RESET ALL keeps a custom name defined (an empty placeholder), as Postgres does. */
static void test_reset_all_keeps_custom_names(void **state UNUSED)
{
	struct session_state *st = session_state_new();

	apply(st, "SET my.x = 'a'");
	apply(st, "SET work_mem = '1MB'");
	apply(st, "SET \"Odd\"\"q.y\" = 'b'");
	apply(st, "SET ROLE alice");
	apply(st, "RESET ALL");
	assert_null(session_state_set_text(st, "work_mem"));
	assert_string_equal(session_state_set_text(st, "role"), "SET ROLE alice");
	assert_string_equal(session_state_set_text(st, "my.x"), "RESET \"my.x\"");
	/* (Postgres refuses such a name; the key's quotes are doubled all the same.) */
	assert_string_equal(session_state_set_text(st, "odd\"q.y"), "RESET \"odd\"\"q.y\"");
	replay_words(st, NULL, 3, "Q[SET ROLE alice] Q[RESET \"my.x\"] Q[RESET \"odd\"\"q.y\"]",
		     NULL);
	/* A SET after it replaces the placeholder. */
	apply(st, "SET my.x = 'c'");
	assert_string_equal(session_state_set_text(st, "my.x"), "SET my.x = 'c'");
	replay_words(st, NULL, 3, "Q[SET ROLE alice] Q[RESET \"odd\"\"q.y\"] Q[SET my.x = 'c']",
		     NULL);
	session_state_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_replay_onto_held),
		cmocka_unit_test(test_replay_onto_held_settings),
		cmocka_unit_test(test_reset_all_keeps_custom_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
