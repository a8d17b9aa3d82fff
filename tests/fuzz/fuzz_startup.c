/*
 * The first bytes a client sends: the startup-packet frame (StartupMessage,
 * SSLRequest, GSSENCRequest, CancelRequest), then the StartupMessage
 * parameters. What parses must survive the trip through proto_put_startup,
 * which is how pgwing hands the parameters on to servers.
 */
#include "fuzz.h"
#include "pgwing/proto.h"

#include <event2/buffer.h>

static void check_frame(enum proto_frame frame, const uint8_t *data, size_t size, uint32_t len,
			uint32_t code)
{
	switch (frame) {
	case PROTO_FRAME_NEED_MORE:
		FUZZ_CHECK(size < 8);
		FUZZ_CHECK(size < 4 ||
			   (fuzz_be32(data) >= 8 && fuzz_be32(data) <= PROTO_STARTUP_MAX_LEN));
		break;
	case PROTO_FRAME_BAD_LENGTH:
		FUZZ_CHECK(size >= 4 && fuzz_be32(data) < 8 && len == fuzz_be32(data));
		break;
	case PROTO_FRAME_TOO_LARGE:
		FUZZ_CHECK(size >= 4 && fuzz_be32(data) > PROTO_STARTUP_MAX_LEN);
		break;
	case PROTO_FRAME_OK:
		FUZZ_CHECK(size >= 8 && len == fuzz_be32(data) && code == fuzz_be32(data + 4));
		FUZZ_CHECK(len >= 8 && len <= PROTO_STARTUP_MAX_LEN);
		break;
	}
}

static void check_params(const struct startup_params *p)
{
	FUZZ_CHECK(p->user != NULL && p->user[0] != '\0');
	FUZZ_CHECK(p->database != NULL && p->database[0] != '\0');
	FUZZ_CHECK(startup_params_get(p, "user") == p->user);
	for (size_t i = 0; i < p->count; i++) {
		FUZZ_CHECK(p->items[i].name[0] != '\0');
		FUZZ_CHECK(startup_params_get(p, p->items[i].name) == p->items[i].value);
	}
}

/* What pgwing sends a server parses back to the same parameters, in the same order. */
static void check_round_trip(const struct startup_params *p)
{
	struct evbuffer *buf = evbuffer_new();
	struct startup_params again;
	uint32_t len, code;
	const char *err;
	uint8_t *packet;

	proto_put_startup(buf, p);
	FUZZ_CHECK(proto_peek_startup(buf, UINT32_MAX, &len, &code) == PROTO_FRAME_OK);
	FUZZ_CHECK(code == PROTO_VERSION_3 && len == evbuffer_get_length(buf));
	packet = evbuffer_pullup(buf, -1);
	FUZZ_CHECK(proto_parse_startup(packet + 8, len - 8, &again, &err));
	FUZZ_CHECK(again.count == p->count);
	for (size_t i = 0; i < p->count; i++) {
		FUZZ_CHECK(strcmp(again.items[i].name, p->items[i].name) == 0);
		FUZZ_CHECK(strcmp(again.items[i].value, p->items[i].value) == 0);
	}
	FUZZ_CHECK(strcmp(again.user, p->user) == 0 && strcmp(again.database, p->database) == 0);
	startup_params_free(&again);
	evbuffer_free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *buf = evbuffer_new();
	struct startup_params params;
	enum proto_frame frame;
	uint32_t len = 0, code = 0;
	const char *err = NULL;
	char *body;

	evbuffer_add(buf, data, size);
	frame = proto_peek_startup(buf, PROTO_STARTUP_MAX_LEN, &len, &code);
	check_frame(frame, data, size, len, code);
	FUZZ_CHECK(evbuffer_get_length(buf) == size); /* a peek consumes nothing */
	evbuffer_free(buf);
	if (frame != PROTO_FRAME_OK || size < len || code >> 16 != 3)
		return 0;

	body = fuzz_copy(data + 8, len - 8);
	if (proto_parse_startup((const uint8_t *)body, len - 8, &params, &err)) {
		check_params(&params);
		check_round_trip(&params);
		startup_params_free(&params);
	} else {
		FUZZ_CHECK(err != NULL && params.count == 0 && params.items == NULL);
	}
	free(body);
	return 0;
}
