/*
 * Quoted strings: the SQL rule and the ini rule (include/pgwing/quote.h).
 */
#include "pgwing/quote.h"

#include "pgwing/common.h"

#include <ctype.h>
#include <string.h>

size_t quote_sql_scan(const char *s, size_t len, size_t i, bool has_backslash_escapes,
		      bool *is_unterminated)
{
	char quote = s[i];
	size_t j = i + 1;

	while (j < len) {
		if (has_backslash_escapes && s[j] == '\\') {
			j += 2;
		} else if (s[j] == quote) {
			if (j + 1 < len && s[j + 1] == quote)
				j += 2;
			else
				return j + 1;
		} else {
			j++;
		}
	}
	*is_unterminated = true;
	return len;
}

enum quote_read quote_sql_read(const char **pos, char *dst, size_t dst_size)
{
	const char *p = *pos;
	char quote = *p++;
	size_t len = 0;
	enum quote_read result = QUOTE_READ_OK;

	for (;;) {
		if (*p == '\0') {
			result = QUOTE_READ_UNTERMINATED;
			break;
		}
		if (*p == quote) {
			if (p[1] != quote) {
				p++;
				break;
			}
			p++;
		}
		if (len + 1 >= dst_size) {
			result = QUOTE_READ_TOO_LONG;
			break;
		}
		dst[len++] = *p++;
	}
	if (dst_size > 0)
		dst[len] = '\0';
	*pos = p;
	return result;
}

char *quote_ini_read_word(const char *in, const char **end)
{
	char *word = xmalloc(strlen(in) + 1);
	char *out = word;
	bool is_quoted = false;

	for (; *in != '\0' && (is_quoted || !isspace((unsigned char)*in)); in++) {
		if (*in == '"')
			is_quoted = !is_quoted;
		else if (is_quoted && *in == '\\' && (in[1] == '"' || in[1] == '\\'))
			*out++ = *++in;
		else
			*out++ = *in;
	}
	*out = '\0';
	*end = in;
	return word;
}
