/*
 * The request tracker, driven by a random session: requests, Query texts,
 * Parse/Close bodies, answers with any status, errors, command tags, resets.
 * Properties: the count of requests in flight is never negative and is the
 * number begun minus the number answered (floored at zero); a kept retry is a
 * well-formed Query holding the text it was given, or whole extended messages
 * end to end; the retry is offered only with exactly one request in flight;
 * and nothing leaks (LeakSanitizer).
 */
#include "fuzz.h"
#include "pgwing/proto.h"
#include "pgwing/xact.h"

#define MAX_SESSION_SQL 256

/* The next length-prefixed chunk of the input (one byte of length), or NULL. */
static const uint8_t *take(const uint8_t **data, size_t *size, size_t *len)
{
	const uint8_t *chunk;

	if (*size < 1)
		return NULL;
	*len = (*data)[0] % 64;
	if (*len > *size - 1)
		*len = *size - 1;
	chunk = *data + 1;
	*data += 1 + *len;
	*size -= 1 + *len;
	return chunk;
}

/* The kept request is whole messages, end to end: one Query, or extended ones. */
static void check_retry(const struct xact *x)
{
	size_t pos = 0;

	if (x->retry_len == 0)
		return;
	FUZZ_CHECK(x->retry_len <= x->retry_cap);
	if (x->retry[0] == 'Q') {
		FUZZ_CHECK(x->retry_len >= 6 && x->retry[x->retry_len - 1] == '\0');
		FUZZ_CHECK(proto_decode_length(x->retry) == x->retry_len - 1);
		return;
	}
	while (pos < x->retry_len) {
		FUZZ_CHECK(pos + 5 <= x->retry_len && strchr("PBDES", x->retry[pos]) != NULL);
		pos += 1 + proto_decode_length(x->retry + pos);
	}
	FUZZ_CHECK(pos == x->retry_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session_state *st = NULL;
	struct xact x = {0};
	int expected = 0;

	while (size > 0) {
		uint8_t op = data[0];
		const uint8_t *chunk;
		char *text;
		size_t len;

		data++;
		size--;
		switch (op % 8) {
		case 0:
		case 1:
			chunk = take(&data, &size, &len);
			if (chunk == NULL)
				break;
			text = fuzz_copy(chunk, len);
			/* The text as the pump hands it over: its length, and a NUL after it. */
			text = realloc(text, len + 1);
			text[len] = '\0';
			xact_begin_request(&x);
			expected++;
			xact_note_query(&x, text, len, "ITE"[op % 3], MAX_SESSION_SQL);
			check_retry(&x);
			if (x.retry_len > 0)
				FUZZ_CHECK(memcmp(x.retry + 5, text, len + 1) == 0);
			free(text);
			break;
		case 2:
			chunk = take(&data, &size, &len);
			if (chunk == NULL)
				break;
			/* Parse, Close, Bind, Describe, Execute, as the pump passes them on. */
			xact_note_extended(&x, "PCBDE"[(op >> 3) % 5], chunk, len,
					   "ITE"[op >> 6 & 1]);
			if ((op >> 3) % 5 < 2)
				xact_note_statement(&x, &st, "PC"[(op >> 3) % 5], chunk, len);
			if (xact_can_retry(&x))
				(void)xact_retry_is_read(&x, st);
			break;
		case 3:
			xact_note_ready(&x, "ITE"[(op >> 3) % 3], &st);
			if (expected > 0)
				expected--;
			break;
		case 4:
			xact_note_error(&x);
			break;
		case 5:
			xact_note_command(&x, op & 0x80 ? "ROLLBACK" : "COMMIT");
			break;
		case 6:
			xact_note_sync(&x);
			expected++;
			if (xact_can_retry(&x))
				(void)xact_retry_is_read(&x, st);
			break;
		default:
			xact_reset(&x);
			expected = 0;
			break;
		}
		FUZZ_CHECK(x.pending_syncs == expected);
		FUZZ_CHECK(!xact_can_retry(&x) || x.pending_syncs == 1);
		check_retry(&x);
	}
	xact_free(&x);
	session_state_free(st);
	return 0;
}
