/*
 * The serialized session state a takeover receives from another process
 * (session_state_deserialize): whatever the bytes, it is refused or read
 * whole; what is read writes back to a form that reads again to the same
 * form, and replays the same bytes. Replayed onto a server that holds its own
 * state, it sends nothing; an empty session replayed there resets the
 * settings and closes the statements, one request each.
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

	session_state_replay(st, NULL, NULL, b);
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
	struct session_state *held = session_state_copy(st);
	struct evbuffer *b = evbuffer_new(), *undo = evbuffer_new();
	struct session_replay plan;
	int n;

	FUZZ_CHECK(session_state_replay(st, held, NULL, b) == 0 && evbuffer_get_length(b) == 0);
	/* Onto an empty session: its settings reset, its statements closed, nothing else. */
	n = session_state_replay(NULL, held, &plan, undo);
	FUZZ_CHECK(n == plan.resets_settings + plan.closes && (n > 0) == (held != NULL));
	FUZZ_CHECK(count_messages(undo, 'Q') == plan.resets_settings);
	FUZZ_CHECK(count_messages(undo, 'S') == plan.closes && count_messages(undo, 'P') == 0);
	evbuffer_free(b);
	evbuffer_free(undo);
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
