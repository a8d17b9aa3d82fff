/*
 * The rows a server answers pgwing's check of its session with
 * (capture_read_row), split from the input by a 2-byte length each: whatever
 * the bytes, a row is refused or read whole, and what is read writes back
 * to rows that read the same. Settled against an empty record (a session
 * that ran nothing pgwing recorded), the session may move exactly when the
 * server holds nothing it can't carry (no temp object, lock, cursor,
 * listener, prepared statement, role, nor a rounded setting); the record
 * then holds each setting, and settling again changes nothing.
 */
#include "fuzz.h"
#include "pgwing/capture.h"
#include "pgwing/proto.h"

#include <event2/buffer.h>

static void put_text(struct evbuffer *b, const char *text)
{
	proto_put_int32(b, (uint32_t)strlen(text));
	evbuffer_add(b, text, strlen(text));
}

static void put_count(struct evbuffer *b, uint32_t n)
{
	char text[16];

	snprintf(text, sizeof(text), "%u", n);
	put_text(b, text);
}

static bool read_back(struct capture *into, struct evbuffer *b)
{
	bool ok = capture_read_row(into, evbuffer_pullup(b, -1), evbuffer_get_length(b));

	evbuffer_drain(b, evbuffer_get_length(b));
	return ok;
}

/* cap written back as rows, read into a fresh capture, equals cap. */
static void check_round_trip(const struct capture *cap)
{
	struct evbuffer *b = evbuffer_new();
	struct capture again = {0};

	proto_put_int16(b, 9);
	put_text(b, cap->has_temp_schema ? "t" : "f");
	put_text(b, cap->has_temp_objects ? "t" : "f");
	put_count(b, cap->advisory_locks);
	put_count(b, cap->cursors);
	put_count(b, cap->listens);
	put_count(b, cap->sql_prepares);
	put_count(b, cap->protocol_prepares);
	put_text(b, cap->has_role ? "t" : "f");
	put_text(b, cap->session_user);
	FUZZ_CHECK(read_back(&again, b));
	for (size_t i = 0; i < cap->nsettings; i++) {
		proto_put_int16(b, 3);
		put_text(b, cap->settings[i].key);
		put_text(b, cap->settings[i].sql);
		put_text(b, cap->settings[i].is_exact ? "t" : "f");
		FUZZ_CHECK(read_back(&again, b));
	}
	FUZZ_CHECK(again.nsettings == cap->nsettings);
	for (size_t i = 0; i < cap->nsettings; i++)
		FUZZ_CHECK(strcmp(again.settings[i].key, cap->settings[i].key) == 0 &&
			   strcmp(again.settings[i].sql, cap->settings[i].sql) == 0 &&
			   again.settings[i].is_exact == cap->settings[i].is_exact);
	FUZZ_CHECK(again.has_temp_schema == cap->has_temp_schema &&
		   again.has_temp_objects == cap->has_temp_objects &&
		   again.advisory_locks == cap->advisory_locks && again.cursors == cap->cursors &&
		   again.listens == cap->listens && again.sql_prepares == cap->sql_prepares &&
		   again.protocol_prepares == cap->protocol_prepares &&
		   again.has_role == cap->has_role &&
		   strcmp(again.session_user, cap->session_user) == 0);
	capture_clear(&again);
	evbuffer_free(b);
}

static struct evbuffer *replay_of(const struct session_state *st)
{
	struct evbuffer *b = evbuffer_new();

	session_state_replay(st, NULL, NULL, b);
	return b;
}

static void check_settle(const struct capture *cap)
{
	struct session_state *st = session_state_new();
	struct capture_verdict v;
	struct evbuffer *before, *after;
	bool can_carry = !cap->has_temp_objects && cap->advisory_locks == 0 && cap->cursors == 0 &&
			 cap->listens == 0 && cap->sql_prepares == 0 &&
			 cap->protocol_prepares == 0 && !cap->has_role;

	for (size_t i = 0; i < cap->nsettings; i++)
		can_carry = can_carry && cap->settings[i].is_exact;
	capture_settle(cap, st, cap->session_user, &v);
	FUZZ_CHECK((v.pin == NULL) == can_carry);
	FUZZ_CHECK(v.has_temp_schema == cap->has_temp_schema);
	if (v.pin == NULL && session_state_unmovable(st) == NULL) {
		for (size_t i = 0; i < cap->nsettings; i++)
			FUZZ_CHECK(session_state_set_text(st, cap->settings[i].key) != NULL ||
				   strcmp(cap->settings[i].key, "role") == 0 ||
				   strcmp(cap->settings[i].key, "session_authorization") == 0);
		before = replay_of(st);
		capture_settle(cap, st, cap->session_user, &v);
		FUZZ_CHECK(v.pin == NULL);
		after = replay_of(st);
		FUZZ_CHECK(evbuffer_get_length(before) == evbuffer_get_length(after));
		FUZZ_CHECK(evbuffer_get_length(after) == 0 ||
			   memcmp(evbuffer_pullup(before, -1), evbuffer_pullup(after, -1),
				  evbuffer_get_length(after)) == 0);
		evbuffer_free(before);
		evbuffer_free(after);
	}
	session_state_free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct capture cap = {0};
	size_t at = 0;

	while (at + 2 <= size) {
		size_t n = (size_t)data[at] << 8 | data[at + 1];
		uint8_t *row;
		bool ok;

		at += 2;
		if (n > size - at)
			n = size - at;
		row = (uint8_t *)fuzz_copy(data + at, n);
		ok = capture_read_row(&cap, row, n);
		free(row);
		at += n;
		if (!ok)
			break;
	}
	if (cap.has_summary) {
		check_round_trip(&cap);
		check_settle(&cap);
	}
	capture_clear(&cap);
	return 0;
}
