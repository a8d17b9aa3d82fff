/* rw_split's reading of SQL text (split.h): words only, nothing cleverer. */
#include "pgwing/split.h"

#include "pgwing/quote.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* The next word at *pos (letters, digits, _ and .), lowercased into word; false at the end. */
static bool next_word(const char **pos, const char *end, char *word, size_t wordlen)
{
	const char *p = *pos;
	size_t n = 0;

	while (p < end && (isspace((unsigned char)*p) || *p == ','))
		p++;
	while (p < end && (isalnum((unsigned char)*p) || *p == '_' || *p == '.')) {
		if (n + 1 < wordlen)
			word[n++] = (char)tolower((unsigned char)*p);
		p++;
	}
	word[n] = '\0';
	*pos = p;
	return n > 0;
}

bool split_begins_read_only(const char *sql, size_t len)
{
	const char *pos = sql, *end = sql + len;
	char word[16], prev[16] = "";
	bool is_read_only = false;

	/* Drop one trailing semicolon and blanks: psql sends "BEGIN READ ONLY;" as is. */
	while (end > sql && (isspace((unsigned char)end[-1]) || end[-1] == ';'))
		end--;
	if (!next_word(&pos, end, word, sizeof(word)))
		return false;
	if (strcmp(word, "start") == 0) {
		if (!next_word(&pos, end, word, sizeof(word)) || strcmp(word, "transaction") != 0)
			return false;
	} else if (strcmp(word, "begin") != 0) {
		return false;
	}
	while (next_word(&pos, end, word, sizeof(word))) {
		if (strcmp(prev, "read") == 0 && strcmp(word, "write") == 0)
			return false;
		is_read_only =
			is_read_only || (strcmp(prev, "read") == 0 && strcmp(word, "only") == 0);
		memcpy(prev, word, sizeof(prev));
	}
	/* Anything left is a character no plain word has: a comment, a quote, another statement. */
	return pos == end && is_read_only;
}

bool split_set_value(const char *set_text, char *buf, size_t buflen)
{
	const char *pos = set_text, *end = set_text + strlen(set_text);
	char word[64];

	while (end > set_text && (isspace((unsigned char)end[-1]) || end[-1] == ';'))
		end--;
	if (!next_word(&pos, end, word, sizeof(word)) || strcmp(word, "set") != 0 ||
	    !next_word(&pos, end, word, sizeof(word)))
		return false;
	if (strcmp(word, "session") == 0 && !next_word(&pos, end, word, sizeof(word)))
		return false;
	while (pos < end && isspace((unsigned char)*pos))
		pos++;
	if (pos < end && *pos == '=')
		pos++;
	else if (!next_word(&pos, end, word, sizeof(word)) || strcmp(word, "to") != 0)
		return false;
	while (pos < end && isspace((unsigned char)*pos))
		pos++;
	if (pos < end && *pos == '\'') {
		if (quote_sql_read(&pos, buf, buflen) != QUOTE_READ_OK)
			return false;
	} else {
		const char *start = pos;

		if (!next_word(&pos, end, buf, buflen) || (size_t)(pos - start) >= buflen ||
		    strcasecmp(buf, "default") == 0)
			return false;
		memcpy(buf, start, (size_t)(pos - start)); /* as written: an LSN's hex stays */
		buf[pos - start] = '\0';
	}
	while (pos < end && isspace((unsigned char)*pos))
		pos++;
	return pos == end;
}

/*
 * What tells a client which kind of server it has, or what only the primary
 * holds (a standby shows no prepared transactions). Lowercase; matched in any
 * case anywhere in the request.
 */
static const char *const role_words[] = {
	"pg_is_in_recovery",       "transaction_read_only", "in_hot_standby",
	"pg_is_wal_replay_paused", "pg_last_wal_",          "pg_current_wal_",
	"pg_stat_wal_receiver",    "pg_stat_replication",   "pg_prepared_xact",
};

/* Whether word (lowercase) occurs in data[0..len) in any case. */
static bool mentions(const uint8_t *data, size_t len, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i + n <= len; i++)
		if (strncasecmp((const char *)data + i, word, n) == 0)
			return true;
	return false;
}

bool split_asks_server_role(const uint8_t *request, size_t len)
{
	for (size_t i = 0; i < sizeof(role_words) / sizeof(role_words[0]); i++)
		if (mentions(request, len, role_words[i]))
			return true;
	return false;
}
