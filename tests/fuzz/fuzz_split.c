/*
 * What rw_split reads from a client's request and session: whether a request
 * is a read (xact_request_is_read), asks which kind of server answers, or
 * opens a read-only block; the value a SET gave pgwing's settings; LSNs.
 * Properties: a read is whole messages ending exactly at its end; a block
 * called read-only is plain words (nothing a comment, quote or second
 * statement needs) and stops being one when READ WRITE follows; a role
 * question is found in any case and in any longer request; a SET value read
 * into a small buffer is the one read into a large one, and SET again
 * quoted reads back the same; an LSN parsed is hex/hex, 1 to 8 digits a
 * half, and formats back to the same position.
 */
#include "fuzz.h"
#include "pgwing/lsn.h"
#include "pgwing/split.h"
#include "pgwing/xact.h"

#include <ctype.h>

#define SMALL_VALUE 8
#define LARGE_VALUE 256

/* A read is one Query of exactly size bytes, or Parse/Bind/Describe/Execute up to a final Sync. */
static void check_request_is_read(const uint8_t *data, size_t size, const struct session_state *st)
{
	uint8_t *copy = (uint8_t *)fuzz_copy(data, size);
	size_t pos = 0;

	if (!xact_request_is_read(copy, size, st)) {
		free(copy);
		return;
	}
	if (copy[0] == 'Q') {
		FUZZ_CHECK(1 + (size_t)fuzz_be32(copy + 1) == size && copy[size - 1] == '\0');
		free(copy);
		return;
	}
	for (;;) {
		FUZZ_CHECK(pos + 5 <= size && fuzz_be32(copy + pos + 1) >= 4);
		FUZZ_CHECK(strchr("PBDES", copy[pos]) != NULL);
		if (copy[pos] == 'S')
			break;
		pos += 1 + fuzz_be32(copy + pos + 1);
	}
	FUZZ_CHECK(pos + 1 + fuzz_be32(copy + pos + 1) == size);
	free(copy);
}

static bool is_plain_byte(uint8_t c)
{
	return isalnum(c) || isspace(c) || c == '_' || c == '.' || c == ',' || c == ';';
}

static void check_begins_read_only(const uint8_t *data, size_t size)
{
	char *sql = fuzz_copy(data, size), *more;
	bool is_read_only = split_begins_read_only(sql, size);
	static const char read_write[] = " read write";

	free(sql);
	if (!is_read_only)
		return;
	for (size_t i = 0; i < size; i++)
		FUZZ_CHECK(is_plain_byte(data[i]));
	/* Its modes may say READ ONLY, but not when READ WRITE follows. */
	more = malloc(size + sizeof(read_write) - 1);
	memcpy(more, data, size);
	memcpy(more + size, read_write, sizeof(read_write) - 1);
	FUZZ_CHECK(!split_begins_read_only(more, size + sizeof(read_write) - 1));
	free(more);
}

static void check_asks_server_role(const uint8_t *data, size_t size)
{
	uint8_t *copy = (uint8_t *)fuzz_copy(data, size);
	bool is_asked = split_asks_server_role(copy, size);

	/* Any case; and what a prefix asks, the whole request asks. */
	for (size_t i = 0; i < size; i++)
		copy[i] = (uint8_t)(i % 2 ? toupper(copy[i]) : tolower(copy[i]));
	FUZZ_CHECK(split_asks_server_role(copy, size) == is_asked);
	FUZZ_CHECK(is_asked || !split_asks_server_role(copy, size / 2));
	free(copy);
}

static void check_set_value(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstring(data, size), small[SMALL_VALUE], large[LARGE_VALUE];
	char again[LARGE_VALUE], *set;
	bool is_small = split_set_value(text, small, sizeof(small));
	bool is_large = split_set_value(text, large, sizeof(large));
	size_t n = 0;

	free(text);
	FUZZ_CHECK(!is_small || (is_large && strcmp(small, large) == 0));
	if (!is_large)
		return;
	FUZZ_CHECK(strlen(large) < sizeof(large));
	/* The value SET again as a quoted string reads back the same. */
	set = malloc(sizeof("SET x = ''") + 2 * strlen(large));
	n = (size_t)sprintf(set, "SET x = '");
	for (const char *c = large; *c != '\0'; c++) {
		if (*c == '\'')
			set[n++] = '\'';
		set[n++] = *c;
	}
	strcpy(set + n, "'");
	FUZZ_CHECK(split_set_value(set, again, sizeof(again)) && strcmp(again, large) == 0);
	free(set);
}

static bool is_hex_half(const char *text, size_t len)
{
	if (len < 1 || len > 8)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)text[i]))
			return false;
	return true;
}

static void check_lsn(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstring(data, size), buf[LSN_TEXT_MAX];
	const char *slash = strchr(text, '/');
	uint64_t lsn, again, bits = 0;

	if (lsn_parse(text, &lsn)) {
		FUZZ_CHECK(slash != NULL && is_hex_half(text, (size_t)(slash - text)) &&
			   is_hex_half(slash + 1, strlen(slash + 1)));
		lsn_format(lsn, buf);
		FUZZ_CHECK(lsn_parse(buf, &again) && again == lsn);
	}
	free(text);
	/* Any position formats to text that parses back to it. */
	memcpy(&bits, data, size < sizeof(bits) ? size : sizeof(bits));
	lsn_format(bits, buf);
	FUZZ_CHECK(lsn_parse(buf, &again) && again == bits);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A session that prepared one read and one write, for Binds of them. */
	static const uint8_t read_parse[] = "P\0\0\0\x11r\0select 1\0\0\0";
	static const uint8_t write_parse[] = "P\0\0\0\x16w\0delete from t\0\0\0";
	struct session_state *st = session_state_new();

	session_state_note_parse(st, "r", read_parse, sizeof(read_parse) - 1);
	session_state_note_parse(st, "w", write_parse, sizeof(write_parse) - 1);
	check_request_is_read(data, size, st);
	session_state_free(st);
	check_begins_read_only(data, size);
	check_asks_server_role(data, size);
	check_set_value(data, size);
	check_lsn(data, size);
	return 0;
}
