/*
 * The pure half of discovery: Fly's machine lists parsed defensively, and the
 * DNS messages of a TXT lookup built and read, including answers a broken or
 * hostile name server could send.
 */
#include "pgwing/discovery_parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define MAX 8

static int parse(const char *txt, struct fly_machine *m)
{
	memset(m, 0, MAX * sizeof(*m));
	return discovery_parse_machines(txt, m, MAX);
}

static void machines_as_fly_lists_them(void **state)
{
	struct fly_machine m[MAX];

	(void)state;
	assert_int_equal(parse("148e21ea7b0089 ams,9080e6f3a12387 fra", m), 2);
	assert_string_equal(m[0].id, "148e21ea7b0089");
	assert_string_equal(m[0].region, "ams");
	assert_string_equal(m[1].id, "9080e6f3a12387");
	assert_string_equal(m[1].region, "fra");
	/* One machine, blanks around items, an empty list. */
	assert_int_equal(parse("e784079b449483 ord", m), 1);
	assert_int_equal(parse(" a1 ams , b2 fra ", m), 2);
	assert_string_equal(m[1].region, "fra");
	assert_int_equal(parse("", m), 0);
}

static void machines_bad_items_skipped(void **state)
{
	struct fly_machine m[MAX];
	char long_id[100];

	(void)state;
	/* No region, two spaces, extra words, bad characters, empty items: skipped; the rest stay.
	 */
	assert_int_equal(parse("a1,b2  fra,c3 fra x,d/4 ams,e5 am$,,f6 syd", m), 1);
	assert_string_equal(m[0].id, "f6");
	/* A repeated id counts once (the first). */
	assert_int_equal(parse("a1 ams,a1 fra", m), 1);
	assert_string_equal(m[0].region, "ams");
	/* Too long for the fields: skipped, not cut. */
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	memcpy(long_id + 80, " ams", 5);
	assert_int_equal(parse(long_id, m), 0);
	/* No more than max. */
	assert_int_equal(discovery_parse_machines("a ams,b ams,c ams", m, 2), 2);
}

/* A response to a query: the query itself with QR set and the answers appended. */
static size_t response(uint8_t *buf, const char *name, uint16_t id, int rcode, const uint8_t *ans,
		       size_t anslen, uint16_t nanswers)
{
	size_t len = discovery_build_query(buf, 512, id, name, DNS_TYPE_TXT);

	assert_true(len > 0);
	len -= 11; /* without the EDNS0 record */
	buf[2] |= 0x80;
	buf[3] = (uint8_t)rcode;
	buf[7] = (uint8_t)nanswers;
	buf[11] = 0;
	if (anslen > 0)
		memcpy(buf + len, ans, anslen);
	return len + anslen;
}

/* A TXT answer for the question's name (a pointer to offset 12), with two strings. */
static const uint8_t txt_rr[] = {
	0xc0, 12,  0,   16,  0,   1,   0,   0,
	0,    5,   0,   15,                      /* name, TXT, IN, TTL 5, rdlength 15 */
	7,    'a', '1', ' ', 'a', 'm', 's', ',', /* "a1 ams," */
	6,    'b', '2', ' ', 'f', 'r', 'a',      /* "b2 fra" */
};

static void query_is_well_formed(void **state)
{
	uint8_t buf[DNS_QUERY_MAX];
	size_t len;
	static const uint8_t question[] = {3,   'v', 'm', 's', 3,   'a', 'p', 'p', 8,  'i', 'n',
					   't', 'e', 'r', 'n', 'a', 'l', 0,   0,   16, 0,   1};

	(void)state;
	len = discovery_build_query(buf, sizeof(buf), 0x1234, "vms.app.internal", DNS_TYPE_TXT);
	assert_int_equal(len, 12 + sizeof(question) + 11);
	assert_int_equal(buf[0], 0x12);
	assert_int_equal(buf[1], 0x34);
	assert_int_equal(buf[2], 0x01); /* recursion desired */
	assert_int_equal(buf[5], 1);    /* one question */
	assert_int_equal(buf[11], 1);   /* one additional record: EDNS0 */
	assert_memory_equal(buf + 12, question, sizeof(question));
	/* A trailing dot is the same name. */
	assert_int_equal(discovery_build_query(buf, sizeof(buf), 1, "vms.app.internal.", 16), len);
	/* Empty labels, a label over 63 bytes, a name over 255, no room: no query. */
	assert_int_equal(discovery_build_query(buf, sizeof(buf), 1, "a..b", 16), 0);
	assert_int_equal(discovery_build_query(buf, sizeof(buf), 1, "", 16), 0);
	assert_int_equal(discovery_build_query(buf, sizeof(buf), 1, ".", 16), 0);
	char label[80], name[300];
	memset(label, 'x', 64);
	label[64] = '\0';
	assert_int_equal(discovery_build_query(buf, sizeof(buf), 1, label, 16), 0);
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	for (size_t i = 50; i < sizeof(name) - 1; i += 50)
		name[i] = '.';
	assert_int_equal(discovery_build_query(buf, sizeof(buf), 1, name, 16), 0);
	assert_int_equal(discovery_build_query(buf, 20, 1, "vms.app.internal", 16), 0);
}

static void answer_strings_joined(void **state)
{
	uint8_t msg[512];
	char out[64];
	size_t len = response(msg, "vms.app.internal", 7, 0, txt_rr, sizeof(txt_rr), 1);
	uint8_t two[2 * sizeof(txt_rr)];

	(void)state;
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)), DNS_ANSWER_OK);
	assert_string_equal(out, "a1 ams,b2 fra");
	/* Two records: joined with a comma. */
	memcpy(two, txt_rr, sizeof(txt_rr));
	memcpy(two + sizeof(txt_rr), txt_rr, sizeof(txt_rr));
	len = response(msg, "vms.app.internal", 7, 0, two, sizeof(two), 2);
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)), DNS_ANSWER_OK);
	assert_string_equal(out, "a1 ams,b2 fra,a1 ams,b2 fra");
	/* No records: an empty list. */
	len = response(msg, "vms.app.internal", 7, 0, NULL, 0, 0);
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)), DNS_ANSWER_OK);
	assert_string_equal(out, "");
}

static void answer_other_types_ignored(void **state)
{
	uint8_t msg[512], ans[64];
	char out[64];
	/* A CNAME first (rdata: a pointer to the question's name), then the TXT. */
	static const uint8_t cname[] = {0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 2, 0xc0, 12};
	size_t len;

	(void)state;
	memcpy(ans, cname, sizeof(cname));
	memcpy(ans + sizeof(cname), txt_rr, sizeof(txt_rr));
	len = response(msg, "vms.app.internal", 9, 0, ans, sizeof(cname) + sizeof(txt_rr), 2);
	assert_int_equal(discovery_parse_txt_answer(msg, len, 9, out, sizeof(out)), DNS_ANSWER_OK);
	assert_string_equal(out, "a1 ams,b2 fra");
}

static void answer_errors(void **state)
{
	uint8_t msg[512];
	char out[64], small[8];
	size_t len = response(msg, "vms.app.internal", 7, 0, txt_rr, sizeof(txt_rr), 1);

	(void)state;
	/* Another query's answer, or a query: not ours. */
	assert_int_equal(discovery_parse_txt_answer(msg, len, 8, out, sizeof(out)),
			 DNS_ANSWER_NOT_MINE);
	msg[2] &= 0x7f;
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)),
			 DNS_ANSWER_NOT_MINE);
	msg[2] |= 0x80;
	/* Too long for out: failed, never cut. */
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, small, sizeof(small)),
			 DNS_ANSWER_FAILED);
	/* Every truncation of the message fails cleanly (the header alone is a short answer). */
	for (size_t cut = 0; cut < len; cut++) {
		enum dns_answer a = discovery_parse_txt_answer(msg, cut, 7, out, sizeof(out));

		assert_true(a == DNS_ANSWER_FAILED || a == DNS_ANSWER_NOT_MINE);
	}
	/* Truncated (TC), NXDOMAIN, SERVFAIL. */
	msg[2] |= 0x02;
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)),
			 DNS_ANSWER_FAILED);
	msg[2] &= (uint8_t)~0x02;
	msg[3] = 3;
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)),
			 DNS_ANSWER_NXDOMAIN);
	msg[3] = 2;
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)),
			 DNS_ANSWER_FAILED);
	msg[3] = 0;
	/* A string longer than its record. */
	msg[len - sizeof(txt_rr) + 12] = 40;
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)),
			 DNS_ANSWER_FAILED);
}

static void answer_counts_lie(void **state)
{
	uint8_t msg[512];
	char out[64];
	size_t len = response(msg, "vms.app.internal", 7, 0, txt_rr, sizeof(txt_rr), 1);

	(void)state;
	/* More answers than the message holds, or questions: failed, no read past the end. */
	msg[6] = 0xff;
	msg[7] = 0xff;
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)),
			 DNS_ANSWER_FAILED);
	msg[6] = 0;
	msg[7] = 1;
	msg[5] = 2;
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)),
			 DNS_ANSWER_FAILED);
	/* A label length with the reserved top bits (01 or 10) is no name. */
	msg[5] = 1;
	msg[12] = 0x43;
	assert_int_equal(discovery_parse_txt_answer(msg, len, 7, out, sizeof(out)),
			 DNS_ANSWER_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(machines_as_fly_lists_them),
		cmocka_unit_test(machines_bad_items_skipped),
		cmocka_unit_test(query_is_well_formed),
		cmocka_unit_test(answer_strings_joined),
		cmocka_unit_test(answer_other_types_ignored),
		cmocka_unit_test(answer_errors),
		cmocka_unit_test(answer_counts_lie),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
