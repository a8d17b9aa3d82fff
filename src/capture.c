/*
 * The check of a server's session against its record (capture.h). The query
 * is written to cost little when there is nothing to find: the temp schema's
 * objects are looked up by their dependency on the schema (one index probe of
 * pg_depend, where scanning pg_class, pg_proc, pg_type, ... takes a
 * millisecond), and only when the backend has a temp schema at all.
 * pg_settings (about half the cost) is the only place that lists what the
 * session set, with each value as set_config takes it back (units in the
 * base unit, lists as written); it does not list custom (dotted) settings
 * nor role and session_authorization, which the record's own statements and
 * the summary's identity columns cover.
 */
#include "pgwing/capture.h"

#include "pgwing/proto.h"
#include "pgwing/session.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Operators are named with their schema too: the session's search_path may hold others. */
const char CAPTURE_QUERY[] =
	"SELECT pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0, "
	"EXISTS (SELECT FROM pg_catalog.pg_depend "
	"WHERE pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0 "
	"AND refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass "
	"AND refobjid OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()), "
	"(SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks "
	"WHERE locktype OPERATOR(pg_catalog.=) 'advisory' "
	"AND pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()), "
	"(SELECT pg_catalog.count(*) FROM pg_catalog.pg_cursors), "
	"(SELECT pg_catalog.count(*) FROM pg_catalog.pg_listening_channels()), "
	"(SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql), "
	"(SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_statements WHERE NOT from_sql), "
	"pg_catalog.current_setting('role') OPERATOR(pg_catalog.<>) 'none', session_user; "
	"SELECT pg_catalog.lower(name), "
	"pg_catalog.format('SELECT pg_catalog.set_config(%L, %L, false)', name, setting), "
	"vartype OPERATOR(pg_catalog.<>) 'real' FROM pg_catalog.pg_settings "
	"WHERE source OPERATOR(pg_catalog.=) 'session'";

#define SUMMARY_COLUMNS 9
#define SETTING_COLUMNS 3

/* One column's value, in place: NULL if it is NULL, max bytes or longer, holds a NUL or isn't
 * there. */
static const uint8_t *read_value(struct proto_reader *r, size_t max, uint32_t *n)
{
	const uint8_t *value;

	*n = proto_read_int32(r);
	if (r->has_failed || *n == UINT32_MAX || *n >= max)
		return NULL;
	value = proto_read_bytes(r, *n);
	return value != NULL && memchr(value, '\0', *n) == NULL ? value : NULL;
}

/* One column's value, NUL-terminated into buf; false if read_value refuses it. */
static bool read_text(struct proto_reader *r, char *buf, size_t buflen)
{
	uint32_t n;
	const uint8_t *value = read_value(r, buflen, &n);

	if (value == NULL)
		return false;
	memcpy(buf, value, n);
	buf[n] = '\0';
	return true;
}

static bool read_bool(struct proto_reader *r, bool *out)
{
	char text[2];

	if (!read_text(r, text, sizeof(text)) || (text[0] != 't' && text[0] != 'f'))
		return false;
	*out = text[0] == 't';
	return true;
}

/* A count(*): digits only, and below a bound no session reaches. */
static bool read_count(struct proto_reader *r, uint32_t *out)
{
	char text[11];
	char *end;
	unsigned long v;

	if (!read_text(r, text, sizeof(text)) || text[0] < '0' || text[0] > '9')
		return false;
	v = strtoul(text, &end, 10);
	if (*end != '\0' || v > INT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool read_summary(struct capture *cap, struct proto_reader *r)
{
	return read_bool(r, &cap->has_temp_schema) && read_bool(r, &cap->has_temp_objects) &&
	       read_count(r, &cap->advisory_locks) && read_count(r, &cap->cursors) &&
	       read_count(r, &cap->listens) && read_count(r, &cap->sql_prepares) &&
	       read_count(r, &cap->protocol_prepares) && read_bool(r, &cap->has_role) &&
	       read_text(r, cap->session_user, sizeof(cap->session_user));
}

static bool read_setting(struct capture *cap, struct proto_reader *r)
{
	struct session_setting set;
	const uint8_t *sql;
	uint32_t n;

	if (cap->nsettings == CAPTURE_SETTINGS_MAX || !read_text(r, set.key, sizeof(set.key)) ||
	    (sql = read_value(r, CAPTURE_VALUE_MAX, &n)) == NULL || !read_bool(r, &set.is_exact) ||
	    n > CAPTURE_BYTES_MAX - cap->bytes)
		return false;
	cap->bytes += n;
	/* Lowercased by the query; kept so whatever the server says (record keys are). */
	for (char *c = set.key; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	set.sql = xmalloc(n + 1);
	memcpy(set.sql, sql, n);
	set.sql[n] = '\0';
	cap->settings = xrealloc(cap->settings, (cap->nsettings + 1) * sizeof(cap->settings[0]));
	cap->settings[cap->nsettings++] = set;
	return true;
}

bool capture_read_row(struct capture *cap, const uint8_t *body, size_t len)
{
	struct proto_reader r;
	bool ok;

	proto_reader_init(&r, body, len);
	if (proto_read_int16(&r) != (cap->has_summary ? SETTING_COLUMNS : SUMMARY_COLUMNS))
		return false;
	if (cap->has_summary)
		ok = read_setting(cap, &r);
	else
		ok = cap->has_summary = read_summary(cap, &r);
	return ok && proto_reader_remaining(&r) == 0;
}

void capture_clear(struct capture *cap)
{
	for (size_t i = 0; i < cap->nsettings; i++)
		free(cap->settings[i].sql);
	free(cap->settings);
	memset(cap, 0, sizeof(*cap));
}

/* What the server holds that st does not, or that pins the session; NULL if nothing. */
static const char *unrecorded(const struct capture *cap, const struct session_state *st,
			      const char *login_user)
{
	struct session_counts counts;

	session_state_count(st, &counts);
	/*
	 * The record misses what was made out of its sight, or still holds what
	 * was undone there (a DEALLOCATE, an UNLISTEN in a function): either way
	 * a replay would not rebuild this session. Protocol-level statements
	 * are all seen (Parse), but one whose Parse failed stays recorded.
	 */
	if (cap->listens != counts.listens)
		return "a LISTEN or UNLISTEN pgwing could not see (made in a function)";
	if (cap->sql_prepares != counts.sql_prepares ||
	    cap->protocol_prepares > counts.protocol_prepares)
		return "a prepared statement pgwing could not see (made in a function)";
	if ((cap->has_role && session_state_set_text(st, "role") == NULL) ||
	    (strcmp(cap->session_user, login_user) != 0 &&
	     session_state_set_text(st, "session_authorization") == NULL))
		return "a role set where pgwing could not see it (in a function)";
	return NULL;
}

void capture_settle(const struct capture *cap, struct session_state *st, const char *login_user,
		    struct capture_verdict *out)
{
	out->has_temp_schema = cap->has_temp_schema;
	out->is_pin_seen = true;
	if (cap->has_temp_objects) {
		out->pin = "an object in its temporary schema";
	} else if (cap->advisory_locks > 0) {
		out->pin = "a session-level advisory lock";
	} else if (cap->cursors > 0) {
		out->pin = "a cursor WITH HOLD";
	} else {
		out->is_pin_seen = false;
		out->pin = unrecorded(cap, st, login_user);
		if (out->pin == NULL)
			out->pin = session_state_take_settings(st, cap->settings, cap->nsettings);
	}
}
