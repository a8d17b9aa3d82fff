/*
 * Logging: levels, one target (stderr or a file) and a format (text lines, or
 * one JSON object per line for log shippers). Every message is escaped
 * (log_escape, log_escape_json), so callers may log what clients sent as it came. Callers must
 * never pass a password, a SCRAM secret or a token: there is no redaction here.
 */
#ifndef PGWING_LOG_H
#define PGWING_LOG_H

#include "pgwing/common.h"

/* Config's log_format: the order is the setting's names (src/settings.c). */
enum log_format {
	LOG_FORMAT_TEXT,
	LOG_FORMAT_JSON,
};

enum log_level {
	LL_ERROR,
	LL_WARNING,
	LL_INFO,
	LL_DEBUG,
	LL_TRACE,
};

/* verbosity: 0 = info, each -v adds a level; quiet keeps only errors and warnings. */
int log_open(const char *logfile, int verbosity, bool quiet);
void log_close(void);
/* Re-open the log file (after rotation, on SIGHUP). */
int log_reopen(const char *logfile);
/* Takes effect from the next line; on reload too. */
void log_set_format(enum log_format format);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* Room log_escape needs for len bytes: at most 4 per byte ("\x1b"), and the NUL. */
#define LOG_ESCAPED_SIZE(len) (4 * (len) + 1)
/*
 * Copy len bytes of in to out (LOG_ESCAPED_SIZE(len) bytes), NUL-terminated,
 * with what could forge or garble a log line escaped: newline, CR and tab as
 * \n \r \t, other C0 controls, DEL and bytes that are not UTF-8 as \xNN, C1
 * controls as \uNNNN, and a backslash doubled. Returns the length written.
 */
size_t log_escape(char *out, const char *in, size_t len);

/* Room log_escape_json needs for len bytes: at most 6 per byte ("\ufffd"), and the NUL. */
#define LOG_JSON_ESCAPED_SIZE(len) (6 * (len) + 1)
/*
 * The same for the inside of a JSON string (RFC 8259), valid whatever the
 * bytes: quote and backslash as \" and \\, newline, CR and tab as \n \r \t,
 * other C0 controls, DEL and C1 controls as \u00NN, and each byte that is not
 * UTF-8 as U+FFFD (\ufffd), as JSON can carry only Unicode text.
 */
size_t log_escape_json(char *out, const char *in, size_t len);

#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LL_WARNING, __VA_ARGS__)
#define log_info(...)  log_msg(LL_INFO, __VA_ARGS__)
#define log_debug(...)                                  \
	do {                                            \
		if (log_enabled(LL_DEBUG))              \
			log_msg(LL_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
