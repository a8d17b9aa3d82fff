/*
 * log_escape: what a client sent can neither end a log line nor garble it, and
 * the escaped text never outgrows LOG_ESCAPED_SIZE.
 */
#include "pgwing/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void escapes_to(const char *in, size_t len, const char *expected)
{
	char out[LOG_ESCAPED_SIZE(64)];
	size_t n;

	assert_true(len <= 64);
	n = log_escape(out, in, len);
	if (strcmp(out, expected) != 0)
		fail_msg("escaped \"%s\", expected \"%s\"", out, expected);
	assert_int_equal(n, strlen(expected));
}

#define ESCAPES_TO(in, expected) escapes_to(in, sizeof(in) - 1, expected)

static void test_controls(void **state UNUSED)
{
	ESCAPES_TO("plain text, 'quotes' \"too\"", "plain text, 'quotes' \"too\"");
	ESCAPES_TO("a\nFAKE LINE", "a\\nFAKE LINE");
	ESCAPES_TO("a\r\n\t", "a\\r\\n\\t");
	ESCAPES_TO("\x1b[31mred", "\\x1b[31mred");
	ESCAPES_TO("\x01\x1f\x7f", "\\x01\\x1f\\x7f");
	ESCAPES_TO("a\0b", "a\\x00b");
	ESCAPES_TO("back\\nslash", "back\\\\nslash");
	ESCAPES_TO("", "");
}

static void test_utf8(void **state UNUSED)
{
	/* Well-formed: 2, 3 and 4 bytes, the highest code point. */
	ESCAPES_TO("j\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
		   "j\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf");
	/* C1 controls: U+0085 (NEL), U+009B (CSI); U+00A0 is not one. */
	ESCAPES_TO("\xc2\x85\xc2\x9b\xc2\xa0", "\\u0085\\u009b\xc2\xa0");
	/* Stray continuation bytes, bytes never in UTF-8. */
	ESCAPES_TO("\x80\xbf\xfe\xff", "\\x80\\xbf\\xfe\\xff");
	/* Overlong forms ("/" and NUL), a surrogate, past U+10FFFF. */
	ESCAPES_TO("\xc0\xaf\xe0\x80\x80", "\\xc0\\xaf\\xe0\\x80\\x80");
	ESCAPES_TO("\xed\xa0\x80", "\\xed\\xa0\\x80");
	ESCAPES_TO("\xf4\x90\x80\x80\xf5\x80", "\\xf4\\x90\\x80\\x80\\xf5\\x80");
	/* Cut short: at the end, and before an ASCII byte. */
	ESCAPES_TO("a\xe2\x82", "a\\xe2\\x82");
	ESCAPES_TO("\xe2\x82z", "\\xe2\\x82z");
}

/* The worst case for every byte value fits the bound. */
static void test_size_bound(void **state UNUSED)
{
	char in[256], out[LOG_ESCAPED_SIZE(sizeof(in))];

	for (int i = 0; i < 256; i++)
		in[i] = (char)i;
	assert_true(log_escape(out, in, sizeof(in)) < sizeof(out));
	/* C1 controls: 6 bytes for 2. */
	for (int i = 0; i < 128; i++) {
		in[2 * i] = (char)0xc2;
		in[2 * i + 1] = (char)(0x80 + i % 32);
	}
	assert_int_equal(log_escape(out, in, sizeof(in)), 128 * 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_controls),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_size_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
