/*
 * Quoted strings, one function per quoting rule, so that the difference
 * between the rules is explicit and each is written once.
 *
 * - The SQL rule (statements, the console, the auth file): the quote
 *   character doubles to stand for itself ('it''s', "a""b"); in an E'...'
 *   string a backslash also escapes the next byte. quote_sql_scan() finds
 *   where such a token ends; quote_sql_read() takes its content.
 * - The ini rule (the config file, through ini.c): double quotes group text into one
 *   word with the bare text around them, as in a shell, and inside them \"
 *   and \\ stand for " and \.
 *
 * Pure: no allocation but where said, no global state.
 */
#ifndef PGWING_QUOTE_H
#define PGWING_QUOTE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The end of the quoted token opening at s[i] (s[i] is the quote: ' or "),
 * one past its closing quote. With has_backslash_escapes (E'...') a backslash
 * escapes the next byte. An unterminated token ends at len and sets
 * *is_unterminated. s need not be NUL-terminated.
 */
size_t quote_sql_scan(const char *s, size_t len, size_t i, bool has_backslash_escapes,
		      bool *is_unterminated);

enum quote_read {
	QUOTE_READ_OK,
	QUOTE_READ_UNTERMINATED, /* the string ended before the closing quote */
	QUOTE_READ_TOO_LONG,     /* the content does not fit dst */
};

/*
 * The content of the quoted token opening at **pos (its first character is the
 * quote), a doubled quote taken as one, into dst as a C string (at most
 * dst_size - 1 bytes); *pos then points past the closing quote. On failure
 * *pos points where reading stopped and dst holds what was read so far.
 */
enum quote_read quote_sql_read(const char **pos, char *dst, size_t dst_size);

/*
 * One blank-separated word at in (the ini rule above), newly allocated; *end
 * is where it ends (a blank or the NUL). An unterminated quote runs to the
 * end of the string.
 */
char *quote_ini_read_word(const char *in, const char **end);

#endif
