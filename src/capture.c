/*
 * The check of a server's session against its record (capture.h). The query
 * is written to cost little when there is nothing to find: the temp schema's
 * objects are looked up by their dependency on the schema (one index probe of
 * pg_depend, where scanning pg_class, pg_proc, pg_type, ... takes a
 * millisecond), and only when the backend has a temp schema at all.
 * pg_settings (about half the cost) is the only place that lists what the
 * session set; it does not list custom (dotted) settings nor role and
 * session_authorization, which the record's own statements and the two
 * columns for the identity cover.
 */
#include "pgwing/capture.h"

#include "pgwing/proto.h"
#include "pgwing/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
	"pg_catalog.current_setting('role') OPERATOR(pg_catalog.<>) 'none', session_user, "
	"(SELECT pg_catalog.string_agg(pg_catalog.lower(name), ',') FROM pg_catalog.pg_settings "
	"WHERE source OPERATOR(pg_catalog.=) 'session')";

#define CAPTURE_COLUMNS 10

/* One column's value, NUL-terminated into buf; false if it is NULL, too long or not there. */
static bool read_text(struct proto_reader *r, char *buf, size_t buflen)
{
	uint32_t n = proto_read_int32(r);
	const uint8_t *value;

	if (r->has_failed || n == UINT32_MAX || n >= buflen)
		return false;
	value = proto_read_bytes(r, n);
	if (value == NULL || memchr(value, '\0', n) != NULL)
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

bool capture_read_row(struct capture *cap, const uint8_t *body, size_t len)
{
	struct proto_reader r;

	memset(cap, 0, sizeof(*cap));
	proto_reader_init(&r, body, len);
	if (proto_read_int16(&r) != CAPTURE_COLUMNS)
		return false;
	if (!read_bool(&r, &cap->has_temp_schema) || !read_bool(&r, &cap->has_temp_objects) ||
	    !read_count(&r, &cap->advisory_locks) || !read_count(&r, &cap->cursors) ||
	    !read_count(&r, &cap->listens) || !read_count(&r, &cap->sql_prepares) ||
	    !read_count(&r, &cap->protocol_prepares) || !read_bool(&r, &cap->has_role) ||
	    !read_text(&r, cap->session_user, sizeof(cap->session_user)))
		return false;
	/* No setting of the session's own: string_agg of no rows is NULL. */
	if (proto_reader_remaining(&r) == 4) {
		if (proto_read_int32(&r) != UINT32_MAX)
			return false;
	} else if (!read_text(&r, cap->settings, sizeof(cap->settings))) {
		return false;
	}
	return proto_reader_remaining(&r) == 0;
}

/*
 * Settings the record keeps under another name: SET SESSION CHARACTERISTICS
 * sets the defaults of later transactions, recorded as one statement.
 */
static const char *record_key_of(const char *setting)
{
	static const char *const characteristics[] = {
		"default_transaction_isolation",
		"default_transaction_read_only",
		"default_transaction_deferrable",
	};

	for (size_t i = 0; i < sizeof(characteristics) / sizeof(characteristics[0]); i++)
		if (strcmp(setting, characteristics[i]) == 0)
			return "session characteristics";
	return setting;
}

/* Every setting the session set, as the server lists them, has a statement in the record. */
static bool records_settings(const struct session_state *st, const char *settings)
{
	const char *at = settings;

	while (*at != '\0') {
		char name[CAPTURE_NAME_MAX];
		size_t n = strcspn(at, ",");

		if (n >= sizeof(name))
			return false;
		memcpy(name, at, n);
		name[n] = '\0';
		if (session_state_set_text(st, record_key_of(name)) == NULL)
			return false;
		at += n + (at[n] == ',');
	}
	return true;
}

/* What the server holds that st does not, or that pins the session; NULL if nothing. */
static const char *unrecorded(const struct capture *cap, const struct session_state *st,
			      const char *login_user)
{
	struct session_counts counts = {0, 0, 0};

	if (st != NULL)
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
	if (!records_settings(st, cap->settings))
		return "a setting made where pgwing could not see it (in a function, a DO block, "
		       "an extended-protocol request)";
	return NULL;
}

void capture_judge(const struct capture *cap, const struct session_state *st,
		   const char *login_user, struct capture_verdict *out)
{
	out->has_temp_schema = cap->has_temp_schema;
	out->is_pin_seen = true;
	if (cap->has_temp_objects)
		out->pin = "an object in its temporary schema";
	else if (cap->advisory_locks > 0)
		out->pin = "a session-level advisory lock";
	else if (cap->cursors > 0)
		out->pin = "a cursor WITH HOLD";
	else
		out->is_pin_seen = (out->pin = unrecorded(cap, st, login_user)) == NULL;
}
