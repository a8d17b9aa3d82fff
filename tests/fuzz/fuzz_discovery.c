/*
 * What a name server sends discovery: a DNS response to a TXT query and the
 * Fly machine list in it. Properties: the joined TXT text is NUL-terminated
 * inside the room given, and empty unless the answer is OK; every machine
 * parsed is a plain non-empty id and region, no id twice, no more than asked
 * for; and a query built from the input's first line, once flagged as a
 * response, reads back as an answer with no records.
 */
#include "fuzz.h"
#include "pgwing/discovery_parse.h"

#define TXT_ROOM     512
#define MAX_MACHINES 16

static bool is_plain(const char *s)
{
	if (s[0] == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return false;
	return true;
}

static void check_machines(const char *txt)
{
	struct fly_machine m[MAX_MACHINES];
	int n = discovery_parse_machines(txt, m, MAX_MACHINES);

	FUZZ_CHECK(n >= 0 && n <= MAX_MACHINES);
	for (int i = 0; i < n; i++) {
		FUZZ_CHECK(memchr(m[i].id, '\0', sizeof(m[i].id)) != NULL && is_plain(m[i].id));
		FUZZ_CHECK(memchr(m[i].region, '\0', sizeof(m[i].region)) != NULL &&
			   is_plain(m[i].region));
		FUZZ_CHECK(strstr(txt, m[i].id) != NULL);
		for (int j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(m[i].id, m[j].id) != 0);
	}
}

/* A query for the input's first line is well formed: as a response it has no records. */
static void check_query(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	char *name = fuzz_cstring(data, nl != NULL ? (size_t)(nl - data) : size);
	uint8_t query[DNS_QUERY_MAX];
	char out[8];
	size_t len = discovery_build_query(query, sizeof(query), 0x4242, name, DNS_TYPE_TXT);

	FUZZ_CHECK(len <= sizeof(query));
	if (len > 0) {
		query[2] |= 0x80;
		FUZZ_CHECK(discovery_parse_txt_answer(query, len, 0x4242, out, sizeof(out)) ==
			   DNS_ANSWER_OK);
		FUZZ_CHECK(out[0] == '\0');
	}
	free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *msg = (uint8_t *)fuzz_copy(data, size);
	char *out = malloc(TXT_ROOM), *txt;
	uint16_t id = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0;
	enum dns_answer answer;

	memset(out, 'x', TXT_ROOM);
	answer = discovery_parse_txt_answer(msg, size, id, out, TXT_ROOM);
	FUZZ_CHECK(memchr(out, '\0', TXT_ROOM) != NULL);
	if (answer == DNS_ANSWER_OK)
		check_machines(out);
	else
		FUZZ_CHECK(out[0] == '\0');
	/* The input as a machine list too: Fly's text reaches the parser as it came. */
	txt = fuzz_cstring(data, size);
	check_machines(txt);
	check_query(data, size);
	free(txt);
	free(out);
	free(msg);
	return 0;
}
