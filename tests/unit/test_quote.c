/*
 * The quoting rules (src/quote.c): SQL's doubled quote and E'' backslash,
 * and the ini file's shell-like words.
 */
#include "pgwing/quote.h"

#include "pgwing/common.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static size_t scan(const char *s, size_t i, bool backslash, bool *is_unterminated)
{
	*is_unterminated = false;
	return quote_sql_scan(s, strlen(s), i, backslash, is_unterminated);
}

static void test_sql_scan(void **state UNUSED)
{
	bool is_unterminated;

	assert_int_equal(scan("'abc' x", 0, false, &is_unterminated), 5);
	assert_false(is_unterminated);
	/* A doubled quote stays inside; the other quote character is plain text. */
	assert_int_equal(scan("'it''s \"q\"' x", 0, false, &is_unterminated), 11);
	assert_int_equal(scan("\"a\"\"b\" x", 0, false, &is_unterminated), 6);
	assert_int_equal(scan("x = 'a'", 4, false, &is_unterminated), 7);
	/* Backslashes: plain in a standard string, an escape in E'...'. */
	assert_int_equal(scan("'a\\' x'", 0, false, &is_unterminated), 4);
	assert_int_equal(scan("'a\\' x'", 0, true, &is_unterminated), 7);
	assert_false(is_unterminated);
	/* Unterminated, also by a backslash at the very end. */
	assert_int_equal(scan("'abc", 0, false, &is_unterminated), 4);
	assert_true(is_unterminated);
	assert_int_equal(scan("'abc\\", 0, true, &is_unterminated), 5);
	assert_true(is_unterminated);
	assert_int_equal(scan("'ab''", 0, false, &is_unterminated), 5);
	assert_true(is_unterminated);
	/* The length bounds the scan, not a NUL. */
	is_unterminated = false;
	assert_int_equal(quote_sql_scan("'ab' x", 3, 0, false, &is_unterminated), 3);
	assert_true(is_unterminated);
}

static void test_sql_read(void **state UNUSED)
{
	char dst[8];
	const char *pos;

	pos = "'it''s' rest";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_OK);
	assert_string_equal(dst, "it's");
	assert_string_equal(pos, " rest");

	pos = "\"A\"\"b\"";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_OK);
	assert_string_equal(dst, "A\"b");
	assert_string_equal(pos, "");

	pos = "''";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_OK);
	assert_string_equal(dst, "");

	/* No escapes but the doubled quote. */
	pos = "'a\\'";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_OK);
	assert_string_equal(dst, "a\\");

	pos = "'abc";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_UNTERMINATED);
	pos = "'ab''";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_UNTERMINATED);

	/* Seven bytes fit with their NUL; the eighth does not, terminated or not. */
	pos = "'1234567'";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_OK);
	assert_string_equal(dst, "1234567");
	pos = "'12345678'";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_TOO_LONG);
	pos = "'12345678";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_TOO_LONG);
	/* Unterminated is seen first when the text ends before the limit. */
	pos = "'1234567";
	assert_int_equal(quote_sql_read(&pos, dst, sizeof(dst)), QUOTE_READ_UNTERMINATED);
}

static void test_ini_read_word(void **state UNUSED)
{
	const char *end;
	char *w;

	w = quote_ini_read_word("plain rest", &end);
	assert_string_equal(w, "plain");
	assert_string_equal(end, " rest");
	free(w);

	/* Quotes join the bare text around them and may hold blanks. */
	w = quote_ini_read_word("exec:\"a b\"c\td", &end);
	assert_string_equal(w, "exec:a bc");
	assert_string_equal(end, "\td");
	free(w);

	/* In quotes \" and \\ are escapes, any other backslash is kept; outside, all are. */
	w = quote_ini_read_word("\"q\\\"x\\\\y\\n\" a\\\"", &end);
	assert_string_equal(w, "q\"x\\y\\n");
	free(w);
	w = quote_ini_read_word("a\\\"", &end);
	assert_string_equal(w, "a\\");
	assert_string_equal(end, "");
	free(w);

	/* SQL's doubled quote is no escape here: "" is an empty quoted part. */
	w = quote_ini_read_word("\"a\"\"b\"", &end);
	assert_string_equal(w, "ab");
	free(w);

	/* An unterminated quote runs to the end. */
	w = quote_ini_read_word("\"a b", &end);
	assert_string_equal(w, "a b");
	assert_string_equal(end, "");
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sql_scan),
		cmocka_unit_test(test_sql_read),
		cmocka_unit_test(test_ini_read_word),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
