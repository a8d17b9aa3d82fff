/*
 * The serialized session state a takeover receives from another process
 * (session_state_deserialize): whatever the bytes, it is refused or read
 * whole; what is read writes back to a form that reads again to the same
 * form, and replays the same bytes. Replayed onto a server that holds its own
 * prepared statements, it prepares and closes nothing; onto an empty session,
 * those statements are closed in one request.
 */
#include "fuzz.h"
#include "pgwing/session.h"

#include <event2/buffer.h>

/* The form st writes; NULL for a session that can't move (never one just read). */
static struct evbuffer *form_of(const struct session_state *st)
{
	struct evbuffer *b = evbuffer_new();

	FUZZ_CHECK(session_state_serialize(st, b));
	return b;
}

static struct evbuffer *replay_of(const struct session_state *st)
{
	struct evbuffer *b = evbuffer_new();

	session_state_replay(st, NULL, b);
	return b;
}

/* The messages of type in b (a replay: whole messages). */
static size_t count_messages(struct evbuffer *b, char type)
{
	const uint8_t *p = evbuffer_pullup(b, -1);
	size_t len = evbuffer_get_length(b), n = 0;

	for (size_t at = 0; at + 5 <= len;) {
		uint32_t msg_len = (uint32_t)p[at + 1] << 24 | (uint32_t)p[at + 2] << 16 |
				   (uint32_t)p[at + 3] << 8 | p[at + 4];

		n += p[at] == type;
		at += 1 + msg_len;
	}
	return n;
}

static void check_replay_onto_held(const struct session_state *st)
{
	struct session_state *held = session_state_copy_statements(st);
	struct evbuffer *b = evbuffer_new(), *closes = evbuffer_new();
	int n = session_state_replay(st, held, b);

	FUZZ_CHECK(count_messages(b, 'P') == 0 && count_messages(b, 'C') == 0);
	FUZZ_CHECK((size_t)n == count_messages(b, 'Q'));
	FUZZ_CHECK(session_state_replay(NULL, held, closes) == (held != NULL));
	FUZZ_CHECK(count_messages(closes, 'S') == (held != NULL));
	evbuffer_free(b);
	evbuffer_free(closes);
	session_state_free(held);
}

static bool same(struct evbuffer *a, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(a);

	return n == evbuffer_get_length(b) &&
	       (n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = fuzz_copy(data, size);
	struct session_state *st = session_state_deserialize(copy, size), *again;
	struct evbuffer *form, *form2, *replay, *replay2;

	free(copy);
	if (st == NULL)
		return 0;
	FUZZ_CHECK(session_state_unmovable(st) == NULL);
	form = form_of(st);
	FUZZ_CHECK(evbuffer_get_length(form) <= size);
	again = session_state_deserialize(evbuffer_pullup(form, -1), evbuffer_get_length(form));
	FUZZ_CHECK(again != NULL);
	form2 = form_of(again);
	FUZZ_CHECK(same(form, form2));
	replay = replay_of(st);
	replay2 = replay_of(again);
	FUZZ_CHECK(same(replay, replay2));
	check_replay_onto_held(st);
	evbuffer_free(form);
	evbuffer_free(form2);
	evbuffer_free(replay);
	evbuffer_free(replay2);
	session_state_free(again);
	session_state_free(st);
	return 0;
}
