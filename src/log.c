/*
 * Logging to stderr or a file. One line per message, with a wall-clock time
 * stamp and the process id (several SO_REUSEPORT processes may share a file).
 */
#include "pgwing/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static FILE *log_file;
static enum log_level max_level = LL_INFO;

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

bool log_enabled(enum log_level level)
{
	return level <= max_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	FILE *f = log_file != NULL ? log_file : stderr;
	int saved_errno = errno;
	struct timeval tv;
	struct tm tm;
	char stamp[32];
	va_list ap;

	if (!log_enabled(level))
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(f, "%s.%03d [%d] %s ", stamp, (int)(tv.tv_usec / 1000), (int)getpid(),
		level_names[level]);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	errno = saved_errno;
}
