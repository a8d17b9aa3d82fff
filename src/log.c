/*
 * Logging to stderr or a file. One line per message, with a wall-clock time
 * stamp and the process id (several SO_REUSEPORT processes may share a file):
 * text, or with log_format = json one JSON object, so that log shippers need
 * no regular expressions.
 *
 * Messages carry what clients sent (user and database names, application
 * names, statements), so every message is escaped here, once, for all
 * callers: a client must not be able to end a line and forge the next one,
 * nor send terminal escapes or bytes that make the file invalid UTF-8.
 */
#include "pgwing/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * Most messages fit: they are formatted, and their line built, on the stack;
 * a longer one (a long statement at debug level) takes the heap.
 */
#define MSG_STACK_SIZE 1024
/* Time stamp, pid and level name before the message. */
#define PREFIX_MAX     64
/* JSON: the fields around the message, with a client and a server id. */
#define JSON_FRAME_MAX 192

static FILE *log_file;
static enum log_level max_level = LL_INFO;
static enum log_format format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {
	[LL_ERROR] = "ERROR", [LL_WARNING] = "WARNING", [LL_INFO] = "LOG",
	[LL_DEBUG] = "DEBUG", [LL_TRACE] = "TRACE",
};

static FILE *open_target(const char *logfile)
{
	FILE *f;

	if (logfile == NULL || logfile[0] == '\0')
		return stderr;
	f = fopen(logfile, "a");
	if (f == NULL)
		return NULL;
	setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

int log_open(const char *logfile, int verbosity, bool quiet)
{
	FILE *f = open_target(logfile);

	if (f == NULL)
		return -1;
	log_file = f;
	max_level = quiet ? LL_WARNING : LL_INFO + verbosity;
	if (max_level > LL_TRACE)
		max_level = LL_TRACE;
	return 0;
}

int log_reopen(const char *logfile)
{
	FILE *f = open_target(logfile);

	if (f == NULL)
		return -1;
	if (log_file != NULL && log_file != stderr)
		fclose(log_file);
	log_file = f;
	return 0;
}

void log_close(void)
{
	if (log_file != NULL && log_file != stderr)
		fclose(log_file);
	log_file = NULL;
}

void log_set_format(enum log_format f)
{
	format = f;
}

bool log_enabled(enum log_level level)
{
	return level <= max_level;
}

/* Bytes of the well-formed UTF-8 sequence at s (n bytes left), or 0 when it is malformed. */
static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0; /* a continuation byte, an overlong lead (c0, c1) or past Unicode */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/*
 * The one walk over the bytes for both formats: they agree on what is safe to
 * copy and differ only in how they spell the rest. Text keeps the value of a
 * byte that is not UTF-8 (\xNN); a JSON string cannot hold one, so it becomes
 * U+FFFD as in any JSON decoder. Text doubles the backslash, so an escape in a
 * log line always stands for a byte; JSON must also escape the quote.
 */
static size_t escape(char *out, const char *in, size_t len, bool is_json)
{
	const unsigned char *s = (const unsigned char *)in;
	char *o = out;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_sequence_len(s + i, len - i);

		if (n == 0) {
			if (is_json)
				o += sprintf(o, "\\ufffd");
			else
				o += sprintf(o, "\\x%02x", s[i]);
			i++;
		} else if (n == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0) {
			/* C1 controls: some terminals take U+009B as an escape (CSI). */
			o += sprintf(o, "\\u%04x", s[i + 1]);
			i += 2;
		} else if (n > 1) {
			memcpy(o, s + i, n);
			o += n;
			i += n;
		} else if (s[i] == '\\' || (is_json && s[i] == '"')) {
			*o++ = '\\';
			*o++ = (char)s[i++];
		} else if (s[i] >= 0x20 && s[i] != 0x7f) {
			*o++ = (char)s[i++];
		} else {
			const char *name = s[i] == '\n'   ? "\\n"
					   : s[i] == '\r' ? "\\r"
					   : s[i] == '\t' ? "\\t"
							  : NULL;

			if (name != NULL)
				o += sprintf(o, "%s", name);
			else
				o += sprintf(o, is_json ? "\\u%04x" : "\\x%02x", s[i]);
			i++;
		}
	}
	*o = '\0';
	return (size_t)(o - out);
}

size_t log_escape(char *out, const char *in, size_t len)
{
	return escape(out, in, len, false);
}

size_t log_escape_json(char *out, const char *in, size_t len)
{
	return escape(out, in, len, true);
}

/*
 * The id of the connection a message is about, when it starts with one
 * ("client 42 from ...", "server 7: pooled"): the messages of client.c,
 * server.c and pool.c do, and SHOW CLIENTS and SHOW SERVERS list the same
 * ids. Only at the start, as what follows may be a name a client chose.
 */
static void leading_id(const char *msg, const char **kind, unsigned long long *id)
{
	static const char *const kinds[] = {"client", "server"};
	char *end;

	*kind = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		size_t n = strlen(kinds[i]);

		if (strncmp(msg, kinds[i], n) != 0 || msg[n] != ' ' || msg[n + 1] < '0' ||
		    msg[n + 1] > '9')
			continue;
		*id = strtoull(msg + n + 1, &end, 10);
		if (*end == ' ' || *end == ':' || *end == '\0')
			*kind = kinds[i];
		return;
	}
}

/* The time stamp and the fields before the message, of either format. */
static size_t format_prefix(char *line, enum log_level level, const char *msg)
{
	struct timeval tv;
	struct tm tm;
	char stamp[32];
	const char *kind;
	unsigned long long id = 0;
	size_t len;

	gettimeofday(&tv, NULL);
	if (format == LOG_FORMAT_TEXT) {
		localtime_r(&tv.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		return (size_t)snprintf(line, PREFIX_MAX, "%s.%03d [%d] %s ", stamp,
					(int)(tv.tv_usec / 1000), (int)getpid(),
					level_names[level]);
	}
	/* UTC in RFC 3339, which every log shipper parses without a format string. */
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	len = (size_t)snprintf(line, JSON_FRAME_MAX,
			       "{\"time\":\"%s.%03dZ\",\"pid\":%d,\"level\":\"%s\",", stamp,
			       (int)(tv.tv_usec / 1000), (int)getpid(), level_names[level]);
	leading_id(msg, &kind, &id);
	if (kind != NULL)
		len += (size_t)snprintf(line + len, JSON_FRAME_MAX - len, "\"%s\":%llu,", kind, id);
	return len + (size_t)snprintf(line + len, JSON_FRAME_MAX - len, "\"message\":\"");
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	FILE *f = log_file != NULL ? log_file : stderr;
	int saved_errno = errno;
	char msg_stack[MSG_STACK_SIZE];
	char line_stack[JSON_FRAME_MAX + LOG_JSON_ESCAPED_SIZE(MSG_STACK_SIZE)];
	char *msg = msg_stack, *line = line_stack;
	size_t len;
	va_list ap;
	int n;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg_stack, sizeof(msg_stack), fmt, ap);
	va_end(ap);
	if (n < 0)
		goto out;
	if ((size_t)n >= sizeof(msg_stack)) {
		msg = xmalloc((size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(msg, (size_t)n + 1, fmt, ap);
		va_end(ap);
		line = xmalloc(JSON_FRAME_MAX + LOG_JSON_ESCAPED_SIZE((size_t)n));
	}
	len = format_prefix(line, level, msg);
	if (format == LOG_FORMAT_JSON) {
		len += log_escape_json(line + len, msg, (size_t)n);
		line[len++] = '"';
		line[len++] = '}';
	} else {
		len += log_escape(line + len, msg, (size_t)n);
	}
	line[len++] = '\n';
	/* One write per line, so processes sharing the file never interleave within one. */
	fwrite(line, 1, len, f);
	if (msg != msg_stack) {
		free(msg);
		free(line);
	}
out:
	errno = saved_errno;
}
