/*
 * Logging: levels and one target (stderr or a file). Callers must never pass a
 * password, a SCRAM secret or a token: there is no redaction here.
 */
#ifndef PGWING_LOG_H
#define PGWING_LOG_H

#include "pgwing/common.h"

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
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) PRINTF_LIKE(2, 3);

#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LL_WARNING, __VA_ARGS__)
#define log_info(...)  log_msg(LL_INFO, __VA_ARGS__)
#define log_debug(...)                                  \
	do {                                            \
		if (log_enabled(LL_DEBUG))              \
			log_msg(LL_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
