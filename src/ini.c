/*
 * The ini reader: the syntax of the file, and nothing of what it configures.
 */
#include "pgwing/ini.h"

#include "pgwing/quote.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

bool ini_error(struct ini *ini, const char *fmt, ...)
{
	int len;
	va_list ap;

	if (ini->line > 0)
		len = snprintf(ini->err, ini->errlen, "%s:%d: ", ini->path, ini->line);
	else
		len = snprintf(ini->err, ini->errlen, "%s: ", ini->path);
	if (len >= 0 && (size_t)len < ini->errlen) {
		va_start(ap, fmt);
		vsnprintf(ini->err + len, ini->errlen - (size_t)len, fmt, ap);
		va_end(ap);
	}
	return false;
}

/*
 * Blanks are whatever isspace() says, at the start as at the end: a line that
 * began with a \v once passed for a backend with an empty name.
 */
char *ini_skip_blanks(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

char *ini_trim(char *s)
{
	char *end;

	s = ini_skip_blanks(s);
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/*
 * Cut a trailing comment: ';' or '#' at the start of the line or after a
 * blank, outside double quotes (so "a;b" and 'x = "1 ; 2"' keep theirs).
 * Inside quotes a backslash escapes the next character.
 */
static bool strip_comment(struct ini *ini, char *line)
{
	bool is_quoted = false;

	for (char *c = line; *c != '\0'; c++) {
		if (is_quoted && *c == '\\' && c[1] != '\0') {
			c++;
		} else if (*c == '"') {
			is_quoted = !is_quoted;
		} else if (!is_quoted && (*c == ';' || *c == '#') &&
			   (c == line || isspace((unsigned char)c[-1]))) {
			*c = '\0';
			break;
		}
	}
	return !is_quoted || ini_error(ini, "unterminated quoted string");
}

char *ini_read_word(char **pos)
{
	const char *end;
	char *word = quote_ini_read_word(*pos, &end);

	*pos = *pos + (end - *pos);
	return word;
}

char *ini_value(char *value)
{
	char *rest = value;
	char *text;

	if (value[0] != '"')
		return xstrdup(value);
	text = ini_read_word(&rest);
	if (*ini_trim(rest) != '\0') {
		free(text);
		return NULL;
	}
	return text;
}

static bool read_section(struct ini *ini, char *line, const struct ini_handler *h, void *ctx)
{
	char *close = strchr(line, ']');

	if (close == NULL || *ini_trim(close + 1) != '\0')
		return ini_error(ini, "syntax error in section header: expected \"[name]\"");
	*close = '\0';
	return h->section(ctx, ini_trim(line + 1));
}

static bool read_line(struct ini *ini, char *line, const struct ini_handler *h, void *ctx)
{
	char *eq;

	if (!strip_comment(ini, line))
		return false;
	line = ini_trim(line);
	if (line[0] == '\0')
		return true;
	if (line[0] == '[')
		return read_section(ini, line, h, ctx);
	eq = strchr(line, '=');
	if (eq == NULL || eq == line)
		return ini_error(ini, "syntax error: expected \"name = value\" or \"[section]\"");
	*eq = '\0';
	return h->entry(ctx, ini_trim(line), ini_trim(eq + 1));
}

bool ini_read(struct ini *ini, FILE *f, const struct ini_handler *h, void *ctx)
{
	char *line = NULL;
	size_t cap = 0;
	bool ok = true;

	while (ok && getline(&line, &cap, f) != -1) {
		ini->line++;
		line[strcspn(line, "\r\n")] = '\0';
		ok = read_line(ini, line, h, ctx);
	}
	free(line);
	if (ok && ferror(f)) {
		ini->line = 0;
		ok = ini_error(ini, "%s", strerror(errno));
	}
	return ok;
}
