/*
 * log_escape: what a client sent can neither end a log line nor garble it, and
 * the escaped text never outgrows LOG_ESCAPED_SIZE. log_escape_json: the same
 * for a JSON string, which stays valid JSON whatever the bytes; and a JSON log
 * line as a whole.
 */
#include "pgwing/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void json_escapes_to(const char *in, size_t len, const char *expected)
{
	char out[LOG_JSON_ESCAPED_SIZE(64)];
	size_t n;

	assert_true(len <= 64);
	n = log_escape_json(out, in, len);
	if (strcmp(out, expected) != 0)
		fail_msg("escaped \"%s\", expected \"%s\"", out, expected);
	assert_int_equal(n, strlen(expected));
}

#define JSON_ESCAPES_TO(in, expected) json_escapes_to(in, sizeof(in) - 1, expected)

static void test_json(void **state UNUSED)
{
	JSON_ESCAPES_TO("plain 'text'", "plain 'text'");
	/* The quote and the backslash would end the string or start an escape. */
	JSON_ESCAPES_TO("say \"hi\"", "say \\\"hi\\\"");
	JSON_ESCAPES_TO("back\\slash", "back\\\\slash");
	JSON_ESCAPES_TO("a\r\n\tb", "a\\r\\n\\tb");
	/* Raw controls are not allowed in a JSON string; DEL is escaped too. */
	JSON_ESCAPES_TO("\x1b[31m\x01\x7f", "\\u001b[31m\\u0001\\u007f");
	JSON_ESCAPES_TO("a\0b", "a\\u0000b");
	/* UTF-8 stays, C1 controls are escaped, and what is not UTF-8 becomes U+FFFD. */
	JSON_ESCAPES_TO("j\xc3\xbcrgen \xf0\x9f\x98\x80", "j\xc3\xbcrgen \xf0\x9f\x98\x80");
	JSON_ESCAPES_TO("\xc2\x9b", "\\u009b");
	JSON_ESCAPES_TO("\x80\xff\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd");
	JSON_ESCAPES_TO("a\xe2\x82", "a\\ufffd\\ufffd");
	JSON_ESCAPES_TO("", "");
}

/* Every byte value, escaped, is within the bound and has no raw control or quote. */
static void test_json_bound(void **state UNUSED)
{
	char in[256], out[LOG_JSON_ESCAPED_SIZE(sizeof(in))];
	size_t n;

	for (int i = 0; i < 256; i++)
		in[i] = (char)i;
	n = log_escape_json(out, in, sizeof(in));
	assert_true(n < sizeof(out));
	for (size_t i = 0; i < n; i++) {
		assert_true((unsigned char)out[i] >= 0x20);
		if (out[i] == '"')
			assert_int_equal(out[i - 1], '\\');
	}
	/* Only bytes that are not UTF-8: 6 for 1. */
	memset(in, 0xff, sizeof(in));
	assert_int_equal(log_escape_json(out, in, sizeof(in)), sizeof(in) * 6);
}

/* Log through a file and return its one line, newline included. */
static void log_one_line(enum log_format format, const char *msg, char *line, size_t size)
{
	char path[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(log_open(path, 0, false), 0);
	log_set_format(format);
	log_info("%s", msg);
	log_close();
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, (int)size, f));
	fclose(f);
	unlink(path);
	log_set_format(LOG_FORMAT_TEXT);
}

static void test_json_line(void **state UNUSED)
{
	char line[512], expected[256];
	int n;

	log_one_line(LOG_FORMAT_JSON, "client 42 from 127.0.0.1: \"x\"\n", line, sizeof(line));
	assert_int_equal(strncmp(line, "{\"time\":\"", 9), 0);
	/* 2026-12-05T01:30:00.123Z: RFC 3339, UTC. */
	assert_int_equal(line[9 + 10], 'T');
	assert_int_equal(line[9 + 23], 'Z');
	n = snprintf(expected, sizeof(expected),
		     "\",\"pid\":%d,\"level\":\"LOG\",\"client\":42,"
		     "\"message\":\"client 42 from 127.0.0.1: \\\"x\\\"\\n\"}\n",
		     (int)getpid());
	assert_string_equal(line + 9 + 24, expected);
	assert_int_equal(strlen(line), 9 + 24 + (size_t)n);

	/* A server's message names its id; one that only mentions a client later does not. */
	log_one_line(LOG_FORMAT_JSON, "server 7: pooled", line, sizeof(line));
	assert_non_null(strstr(line, "\"server\":7,\"message\":\"server 7: pooled\"}"));
	log_one_line(LOG_FORMAT_JSON, "pool a/b: client 9 waited", line, sizeof(line));
	assert_null(strstr(line, "\"client\":"));
	log_one_line(LOG_FORMAT_JSON, "clients 3", line, sizeof(line));
	assert_null(strstr(line, "\"client\":"));

	/* Text stays as it was: no braces, the message escaped the text way. */
	log_one_line(LOG_FORMAT_TEXT, "client 42: \"x\"\n", line, sizeof(line));
	assert_non_null(strstr(line, "] LOG client 42: \"x\"\\n\n"));
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
		cmocka_unit_test(test_controls),   cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_size_bound), cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_bound), cmocka_unit_test(test_json_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
