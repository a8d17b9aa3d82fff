/*
 * The row a server answers pgwing's check of its session with
 * (capture_read_row): whatever the bytes, it is refused or read whole, and
 * what is read writes back to a row that reads the same. Judged against an
 * empty record (a session that ran nothing pgwing recorded), it may move
 * exactly when the server holds nothing: no temp object, lock, cursor,
 * listener, prepared statement, role or setting of its own.
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

static struct evbuffer *row_of(const struct capture *cap)
{
	struct evbuffer *b = evbuffer_new();

	proto_put_int16(b, 10);
	put_text(b, cap->has_temp_schema ? "t" : "f");
	put_text(b, cap->has_temp_objects ? "t" : "f");
	put_count(b, cap->advisory_locks);
	put_count(b, cap->cursors);
	put_count(b, cap->listens);
	put_count(b, cap->sql_prepares);
	put_count(b, cap->protocol_prepares);
	put_text(b, cap->has_role ? "t" : "f");
	put_text(b, cap->session_user);
	if (cap->settings[0] == '\0')
		proto_put_int32(b, UINT32_MAX);
	else
		put_text(b, cap->settings);
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = (uint8_t *)fuzz_copy(data, size);
	struct capture cap, again;
	struct capture_verdict v;
	struct evbuffer *b;
	bool holds_nothing;

	if (!capture_read_row(&cap, copy, size)) {
		free(copy);
		return 0;
	}
	free(copy);
	b = row_of(&cap);
	FUZZ_CHECK(capture_read_row(&again, evbuffer_pullup(b, -1), evbuffer_get_length(b)));
	FUZZ_CHECK(memcmp(&cap, &again, sizeof(cap)) == 0);
	evbuffer_free(b);

	capture_judge(&cap, NULL, cap.session_user, &v);
	holds_nothing = !cap.has_temp_objects && cap.advisory_locks == 0 && cap.cursors == 0 &&
			cap.listens == 0 && cap.sql_prepares == 0 && cap.protocol_prepares == 0 &&
			!cap.has_role && cap.settings[0] == '\0';
	FUZZ_CHECK((v.pin == NULL) == holds_nothing);
	FUZZ_CHECK(v.has_temp_schema == cap.has_temp_schema);
	return 0;
}
