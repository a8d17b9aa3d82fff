/*
 * The ini reader: lines, comments, double quotes, "[section]" headers and
 * "name = value" entries, and messages that say "file:line:". What sections
 * and names mean is the loader's (config.c).
 */
#ifndef PGWING_INI_H
#define PGWING_INI_H

#include "pgwing/common.h"

#include <stdio.h>

/* Where reading is, for messages. */
struct ini {
	const char *path; /* as the caller gave it */
	int line;         /* the line being read; 0 when a message is about the whole file */
	char *err;        /* ini_error writes "path:line: message" here */
	size_t errlen;
};

/* What the reader calls for each line that is not blank or a comment; false stops it. */
struct ini_handler {
	/* "[name]", name trimmed. */
	bool (*section)(void *ctx, const char *name);
	/* "name = value", both trimmed; value as written, quotes included (see ini_value). */
	bool (*entry)(void *ctx, const char *name, char *value);
};

/* Read f line by line into h; false (the message in ini->err) at the first error. */
bool ini_read(struct ini *ini, FILE *f, const struct ini_handler *h, void *ctx);

/* Write "path:line: message" (or "path: message" at line 0) into ini->err; returns false. */
bool ini_error(struct ini *ini, const char *fmt, ...) PRINTF_LIKE(2, 3);

/*
 * An entry's value: a quoted one without its quotes and escapes, else as it
 * is; newly allocated. NULL when text follows the closing quote.
 */
char *ini_value(char *value);

/*
 * One blank-separated word starting at *pos, advancing *pos past it, newly
 * allocated. Quoted parts join the bare text around them, as in a shell:
 * exec:"a b" is the word exec:a b. In quotes, \" and \\ stand for " and \.
 */
char *ini_read_word(char **pos);

/* s past its leading blanks (whatever isspace() says). */
char *ini_skip_blanks(char *s);
/* s without its leading and trailing blanks (the trailing ones cut in place). */
char *ini_trim(char *s);

#endif
