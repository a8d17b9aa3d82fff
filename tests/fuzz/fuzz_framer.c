/*
 * The forwarding pump: a byte stream arrives in arbitrary pieces and
 * proto_scan_messages decides, message by message, what moves on. Each
 * direction gets an inspector shaped like the real one (client.c reads the
 * SQL of Query/Parse/Close and stops at Terminate; server.c reads
 * ReadyForQuery, ParameterStatus, CommandComplete and ErrorResponse and stops
 * at a FATAL). Properties: a scan moves no more than is buffered and consumes
 * nothing itself; the inspector is shown the header that is really there; and
 * what is forwarded, which messages are stopped, where a bad length is found
 * and how much of a message is still to come do not depend on how the stream
 * was split: they equal a plain walk over the whole stream at once.
 *
 * The pump works as conn.c's: a piece that arrives while nothing is
 * buffered may be scanned where it lies (proto_scan_bytes), its first
 * movable bytes moved from there and the rest buffered; any other piece is
 * appended to the buffer and scanned there (proto_scan_messages).
 *
 * The inspectors here never hold (PROTO_INSPECT_HOLD/RELEASE, server.c's
 * hold of a retryable answer): that path is covered by the unit tests.
 *
 * Input: byte 0 seeds the chunk sizes, byte 1 picks the limit, the chunking
 * and whether pieces are scanned where they lie; the rest is the stream.
 */
#include "fuzz.h"
#include "pgwing/proto.h"

#include <event2/buffer.h>

#define PEEK_MAX   64 /* bodies up to this size are read by the inspector */
#define MAX_EVENTS 4096

enum side {
	SIDE_CLIENT,
	SIDE_SERVER,
};

/* An inspector's final word on a message (WAIT is not final: it is asked again). */
struct event {
	uint64_t offset; /* of the type byte in the stream */
	char type;
	uint32_t len;
	enum proto_inspect decision;
};

struct result {
	struct event events[MAX_EVENTS];
	size_t nevents;
	struct evbuffer *out; /* what was forwarded */
	bool is_bad;          /* a bad length was found ... */
	uint64_t bad_offset;  /* ... at this offset */
	uint32_t remaining;   /* of a message forwarded in part */
	bool is_stop_pending; /* stopped at a message that is not whole yet */
};

struct pump {
	enum side side;
	uint32_t max_len;
	const uint8_t *stream;
	size_t stream_len;
	struct evbuffer *in;
	uint64_t consumed; /* stream bytes taken off the front of in (or of fresh) */
	struct result *res;
	const uint8_t *fresh; /* a piece being scanned where it lies, before in */
	size_t fresh_len;
};

static void check_error_fields(const uint8_t *body, size_t n, const struct proto_error_fields *ef)
{
	const char *fields[] = {ef->severity, ef->sqlstate, ef->message};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i] != NULL)
			FUZZ_CHECK((const uint8_t *)fields[i] > body &&
				   (const uint8_t *)fields[i] + strlen(fields[i]) < body + n);
}

/* The inspector's decision, given the body once it is all buffered (else NULL). */
static enum proto_inspect decide(enum side side, char type, uint32_t len, const uint8_t *body)
{
	size_t n = len - 4;
	struct proto_error_fields ef;
	bool is_fatal;

	if (side == SIDE_CLIENT) {
		if (type == 'X')
			return PROTO_INSPECT_STOP;
		if ((type != 'Q' && type != 'P' && type != 'C') || n > PEEK_MAX)
			return PROTO_INSPECT_FORWARD;
		return body != NULL ? PROTO_INSPECT_FORWARD : PROTO_INSPECT_WAIT;
	}
	if ((type != 'Z' && type != 'S' && type != 'E' && type != 'C') || n > PEEK_MAX)
		return PROTO_INSPECT_FORWARD;
	if (body == NULL)
		return PROTO_INSPECT_WAIT;
	if (type != 'E' || !proto_parse_error(body, n, &ef))
		return PROTO_INSPECT_FORWARD;
	check_error_fields(body, n, &ef);
	is_fatal = ef.severity != NULL && strcmp(ef.severity, "FATAL") == 0;
	return is_fatal ? PROTO_INSPECT_STOP : PROTO_INSPECT_FORWARD;
}

static void note(struct result *res, uint64_t offset, char type, uint32_t len,
		 enum proto_inspect decision)
{
	if (decision == PROTO_INSPECT_WAIT)
		return;
	FUZZ_CHECK(res->nevents == 0 || res->events[res->nevents - 1].offset < offset);
	if (res->nevents < MAX_EVENTS)
		res->events[res->nevents++] = (struct event){offset, type, len, decision};
}

static enum proto_inspect inspect(void *arg, struct evbuffer *in, const struct proto_msg *msg)
{
	struct pump *p = arg;
	uint8_t hdr[PROTO_HEADER_LEN], scratch[PEEK_MAX];
	const uint8_t *body = NULL;
	size_t buffered = in != NULL ? evbuffer_get_length(in) : p->fresh_len;
	size_t pos = msg->offset;
	uint64_t offset = p->consumed + pos;
	struct evbuffer_ptr at;
	enum proto_inspect decision;
	bool is_whole;

	/* The header shown is the one in the stream at that place. */
	FUZZ_CHECK(in == NULL ? p->fresh != NULL : in == p->in);
	FUZZ_CHECK(pos + PROTO_HEADER_LEN <= buffered);
	FUZZ_CHECK(offset + PROTO_HEADER_LEN <= p->stream_len);
	if (in == NULL) {
		memcpy(hdr, p->fresh + pos, sizeof(hdr));
	} else {
		FUZZ_CHECK(evbuffer_ptr_set(in, &at, pos, EVBUFFER_PTR_SET) == 0);
		FUZZ_CHECK(evbuffer_copyout_from(in, &at, hdr, sizeof(hdr)) == sizeof(hdr));
	}
	FUZZ_CHECK(memcmp(hdr, p->stream + offset, sizeof(hdr)) == 0);
	FUZZ_CHECK(msg->type == (char)hdr[0] && msg->len == fuzz_be32(hdr + 1));
	FUZZ_CHECK(msg->len >= 4 && msg->len <= p->max_len);

	/* A body shown in place is whole, and is the stream's; in one piece it always is. */
	is_whole = buffered - pos >= 1 + (uint64_t)msg->len;
	FUZZ_CHECK(msg->body == NULL ||
		   (is_whole &&
		    memcmp(msg->body, p->stream + offset + PROTO_HEADER_LEN, msg->len - 4) == 0));
	FUZZ_CHECK(in != NULL || (msg->body != NULL) == is_whole);
	if (msg->len - 4 <= PEEK_MAX) {
		body = proto_msg_body(in, msg, scratch);
		FUZZ_CHECK((body != NULL) == is_whole);
		FUZZ_CHECK(body == NULL ||
			   memcmp(body, p->stream + offset + PROTO_HEADER_LEN, msg->len - 4) == 0);
	}
	decision = decide(p->side, msg->type, msg->len, body);
	note(p->res, offset, msg->type, msg->len, decision);
	return decision;
}

/* The caller's part after a stop: it takes the message once it is whole. */
static bool take_stopped(struct pump *p)
{
	struct result *res = p->res;
	uint8_t *msg;
	uint32_t len;
	char type;

	switch (proto_next_message(p->in, p->max_len, &type, &len, &msg)) {
	case PROTO_FRAME_NEED_MORE:
		return false;
	case PROTO_FRAME_OK:
		break;
	case PROTO_FRAME_BAD_LENGTH:
	case PROTO_FRAME_TOO_LARGE:
		FUZZ_CHECK(!"a stopped message has a good header");
	}
	FUZZ_CHECK(res->nevents > 0 && res->events[res->nevents - 1].offset == p->consumed);
	FUZZ_CHECK(memcmp(msg, p->stream + p->consumed, 1 + (size_t)len) == 0);
	evbuffer_drain(p->in, 1 + (size_t)len);
	p->consumed += 1 + (uint64_t)len;
	res->is_stop_pending = false;
	return true;
}

/* Everything the pump can do with what is buffered; false once the stream is bad. */
static bool pump_run(struct pump *p)
{
	struct result *res = p->res;

	for (;;) {
		size_t buffered, movable = SIZE_MAX;
		enum proto_scan scan;

		if (res->is_stop_pending && !take_stopped(p))
			return true;
		if (p->fresh != NULL) {
			/* One scan where the piece lies; the rest is buffered, as conn.c does. */
			scan = proto_scan_bytes(p->fresh, p->fresh_len, p->max_len, &res->remaining,
						&movable, inspect, p);
			FUZZ_CHECK(movable <= p->fresh_len && evbuffer_get_length(p->in) == 0);
			evbuffer_add(res->out, p->fresh, movable);
			evbuffer_add(p->in, p->fresh + movable, p->fresh_len - movable);
			p->fresh = NULL;
		} else {
			buffered = evbuffer_get_length(p->in);
			scan = proto_scan_messages(p->in, p->max_len, &res->remaining, &movable,
						   inspect, p);
			FUZZ_CHECK(movable <= buffered && evbuffer_get_length(p->in) == buffered);
			FUZZ_CHECK(evbuffer_remove_buffer(p->in, res->out, movable) ==
				   (int)movable);
		}
		p->consumed += movable;
		switch (scan) {
		case PROTO_SCAN_DONE:
			return true;
		case PROTO_SCAN_BAD_LENGTH:
			FUZZ_CHECK(res->remaining == 0);
			res->is_bad = true;
			res->bad_offset = p->consumed;
			return false;
		case PROTO_SCAN_STOPPED:
			FUZZ_CHECK(res->remaining == 0);
			FUZZ_CHECK(res->nevents > 0 &&
				   res->events[res->nevents - 1].decision == PROTO_INSPECT_STOP &&
				   res->events[res->nevents - 1].offset == p->consumed);
			res->is_stop_pending = true;
			break;
		}
	}
}

/* The same stream fed in pieces, the way sockets deliver it. */
static void run_chunked(struct pump *p, uint32_t seed, unsigned chunking, bool is_fresh)
{
	size_t pos = 0;

	while (pos < p->stream_len) {
		struct evbuffer *piece = evbuffer_new();
		size_t n = p->stream_len - pos;

		seed ^= seed << 13;
		seed ^= seed >> 17;
		seed ^= seed << 5;
		if (chunking == 1 && n > 1 + seed % 8)
			n = 1 + seed % 8;
		else if (chunking == 2 && n > 1 + seed % 300)
			n = 1 + seed % 300;
		if (is_fresh && evbuffer_get_length(p->in) == 0 && !p->res->is_stop_pending) {
			p->fresh = p->stream + pos;
			p->fresh_len = n;
		} else {
			/* A separate buffer moved in: chain boundaries fall where pieces meet. */
			evbuffer_add(piece, p->stream + pos, n);
			evbuffer_add_buffer(p->in, piece);
		}
		evbuffer_free(piece);
		pos += n;
		if (!pump_run(p))
			break;
	}
}

/* The reference: one walk over the whole stream. */
static void run_reference(enum side side, uint32_t max_len, const uint8_t *s, size_t size,
			  struct result *res)
{
	uint64_t o = 0;

	while (size - o >= PROTO_HEADER_LEN) {
		char type = (char)s[o];
		uint32_t len = fuzz_be32(s + o + 1);
		bool is_whole;
		enum proto_inspect decision;
		uint64_t n;

		/* A message of 2^32 bytes can't be counted in a uint32_t: bad too. */
		if (len < 4 || len > max_len || len == UINT32_MAX) {
			res->is_bad = true;
			res->bad_offset = o;
			return;
		}
		is_whole = size - o >= 1 + (uint64_t)len;
		decision = decide(side, type, len, is_whole ? s + o + PROTO_HEADER_LEN : NULL);
		note(res, o, type, len, decision);
		switch (decision) {
		case PROTO_INSPECT_WAIT:
			return;
		case PROTO_INSPECT_STOP:
			if (!is_whole) {
				res->is_stop_pending = true;
				return;
			}
			o += 1 + (uint64_t)len;
			break;
		case PROTO_INSPECT_FORWARD:
			n = is_whole ? 1 + (uint64_t)len : size - o;
			evbuffer_add(res->out, s + o, n);
			o += n;
			if (!is_whole) {
				res->remaining = (uint32_t)(1 + (uint64_t)len - n);
				return;
			}
			break;
		case PROTO_INSPECT_HOLD:
		case PROTO_INSPECT_RELEASE:
			FUZZ_CHECK(!"decide() never holds");
		}
	}
}

static void check_side(enum side side, uint32_t max_len, const uint8_t *s, size_t size,
		       uint32_t seed, unsigned chunking, bool is_fresh)
{
	static struct result got, want;
	struct pump p = {side, max_len, s, size, evbuffer_new(), 0, &got, NULL, 0};
	size_t out_len;

	memset(&got, 0, sizeof(got));
	memset(&want, 0, sizeof(want));
	got.out = evbuffer_new();
	want.out = evbuffer_new();
	run_chunked(&p, seed, chunking, is_fresh);
	run_reference(side, max_len, s, size, &want);

	FUZZ_CHECK(got.nevents == want.nevents);
	for (size_t i = 0; i < got.nevents; i++) {
		const struct event *g = &got.events[i], *w = &want.events[i];

		FUZZ_CHECK(g->offset == w->offset && g->type == w->type && g->len == w->len &&
			   g->decision == w->decision);
	}
	FUZZ_CHECK(got.is_bad == want.is_bad && got.bad_offset == want.bad_offset);
	FUZZ_CHECK(got.remaining == want.remaining);
	FUZZ_CHECK(got.is_stop_pending == want.is_stop_pending);
	out_len = evbuffer_get_length(want.out);
	FUZZ_CHECK(evbuffer_get_length(got.out) == out_len);
	FUZZ_CHECK(out_len == 0 || memcmp(evbuffer_pullup(got.out, -1),
					  evbuffer_pullup(want.out, -1), out_len) == 0);
	/* Nothing is lost: moved + taken + still buffered is the stream. */
	FUZZ_CHECK(p.consumed + evbuffer_get_length(p.in) == size || got.is_bad);
	evbuffer_free(p.in);
	evbuffer_free(got.out);
	evbuffer_free(want.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t limits[] = {4, 64, 1 << 20, UINT32_MAX};
	uint32_t seed;
	unsigned chunking;
	uint32_t max_len;
	bool is_fresh;

	if (size < 2)
		return 0;
	seed = 0x9e3779b9u ^ data[0];
	chunking = data[1] % 3;
	max_len = limits[(data[1] >> 2) % 4];
	is_fresh = (data[1] >> 4) & 1;
	check_side(SIDE_CLIENT, max_len, data + 2, size - 2, seed, chunking, is_fresh);
	check_side(SIDE_SERVER, max_len, data + 2, size - 2, seed, chunking, is_fresh);
	return 0;
}
