/*
 * The pure helpers of src/pq.c: libpq's messages made one line (for the log
 * and SHOW BACKENDS), and which hosts libpq can reach without a blocking
 * name lookup (the rest are resolved with evdns, or refused by auth_query).
 */
#include "pgwing/pq.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_copy_one_line(void **state)
{
	char buf[64];

	(void)state;
	pq_copy_one_line(buf, sizeof(buf),
			 "connection to server at \"127.0.0.1\", port 1 failed: Connection "
			 "refused\n\tIs the server running?\n");
	/* Cut between words: the next word is not glued to the last one kept. */
	assert_string_equal(buf,
			    "connection to server at \"127.0.0.1\", port 1 failed: Connection");
	pq_copy_one_line(buf, sizeof(buf), "  FATAL:\n\n  role \"x\"\tdoes not exist \n");
	assert_string_equal(buf, "FATAL: role \"x\" does not exist");
	pq_copy_one_line(buf, sizeof(buf), "");
	assert_string_equal(buf, "");
	pq_copy_one_line(buf, 1, "anything");
	assert_string_equal(buf, "");
	/* A blank is never the last byte kept: the text is cut, not left dangling. */
	pq_copy_one_line(buf, 5, "abc def");
	assert_string_equal(buf, "abc");
}

static void test_is_literal_host(void **state)
{
	(void)state;
	assert_true(pq_is_literal_host("127.0.0.1"));
	assert_true(pq_is_literal_host("::1"));
	assert_true(pq_is_literal_host("fdaa:0:1:a7b:1::2"));
	assert_true(pq_is_literal_host("/var/run/postgresql"));
	assert_true(pq_is_literal_host("@abstract"));
	assert_false(pq_is_literal_host("localhost"));
	assert_false(pq_is_literal_host("db.internal"));
	assert_false(pq_is_literal_host("127.0.0.1.nip.io"));
	assert_false(pq_is_literal_host(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_one_line),
		cmocka_unit_test(test_is_literal_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
