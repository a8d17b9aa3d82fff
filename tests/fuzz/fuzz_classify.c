/*
 * The statement classifier and the session state it feeds. Properties: the
 * statements found lie in order inside the query; how many entries the caller
 * has room for changes nothing; a statement classified on its own is what it
 * was inside the query; and a session rebuilt from its own replay replays the
 * same bytes again (what a moved session runs on its new server is what it
 * ran on the old one).
 */
#include "fuzz.h"
#include "pgwing/classify.h"
#include "pgwing/session.h"

#include <event2/buffer.h>

#define MAX_STMTS 64
#define FEW_STMTS 3

static bool infos_equal(const struct stmt_info *a, const struct stmt_info *b)
{
	return a->cls == b->cls && a->op == b->op && strcmp(a->key, b->key) == 0 &&
	       a->start == b->start && a->len == b->len && a->reason == b->reason;
}

static void check_info(const struct stmt_info *info, size_t size, size_t prev_end)
{
	FUZZ_CHECK(info->start >= prev_end && info->len > 0 && info->len <= size - info->start);
	FUZZ_CHECK(memchr(info->key, '\0', sizeof(info->key)) != NULL);
	FUZZ_CHECK(info->cls == STMT_SESSION || info->op == SESSION_NONE);
	FUZZ_CHECK(info->cls != STMT_UNMOVABLE || info->reason != NULL);
}

/* The same statement, cut out of the query, classifies the same. */
static void check_alone(const char *sql, const struct stmt_info *info)
{
	char *text = fuzz_copy((const uint8_t *)sql + info->start, info->len);
	struct stmt_info alone;

	FUZZ_CHECK(classify_query(text, info->len, &alone, 1) == 1);
	FUZZ_CHECK(alone.cls == info->cls && alone.op == info->op &&
		   strcmp(alone.key, info->key) == 0);
	free(text);
}

/* Applies a query's statements as if each succeeded; returns whether one left it unmovable. */
static bool apply_all(struct session_state *st, const char *sql, const struct stmt_info *info,
		      size_t n)
{
	bool is_unmovable = false;

	for (size_t i = 0; i < n; i++) {
		session_state_apply(st, &info[i], sql);
		if (info[i].cls == STMT_UNMOVABLE)
			is_unmovable = true;
		else if (info[i].op == SESSION_DISCARD_ALL)
			is_unmovable = false;
	}
	return is_unmovable;
}

/* The SQL text of a replay's Query message, or NULL if the replay has none. */
static char *replay_sql(struct evbuffer *replay, size_t *len)
{
	uint8_t hdr[5];
	char *sql;

	if (evbuffer_copyout(replay, hdr, sizeof(hdr)) != sizeof(hdr) || hdr[0] != 'Q')
		return NULL;
	*len = fuzz_be32(hdr + 1) - 4;
	FUZZ_CHECK(*len >= 1 && evbuffer_get_length(replay) >= 5 + *len);
	sql = malloc(*len);
	evbuffer_drain(replay, 5);
	evbuffer_remove(replay, sql, *len);
	FUZZ_CHECK(sql[*len - 1] == '\0');
	(*len)--;
	return sql;
}

static void check_replay(const struct session_state *st)
{
	struct evbuffer *replay = evbuffer_new(), *again = evbuffer_new();
	struct session_state *rebuilt = session_state_new();
	struct stmt_info info[MAX_STMTS];
	size_t len, n;
	char *sql;

	session_state_replay(st, replay);
	session_state_replay(st, again);
	sql = replay_sql(again, &len);
	if (sql == NULL) {
		FUZZ_CHECK(evbuffer_get_length(replay) == 0);
		goto out;
	}
	n = classify_query(sql, len, info, MAX_STMTS);
	FUZZ_CHECK(n <= MAX_STMTS);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(info[i].cls == STMT_SESSION &&
			   (info[i].op == SESSION_SET || info[i].op == SESSION_LISTEN ||
			    info[i].op == SESSION_PREPARE));
	FUZZ_CHECK(!apply_all(rebuilt, sql, info, n));
	evbuffer_drain(again, evbuffer_get_length(again));
	session_state_replay(rebuilt, again);
	FUZZ_CHECK(evbuffer_get_length(replay) == evbuffer_get_length(again));
	FUZZ_CHECK(memcmp(evbuffer_pullup(replay, -1), evbuffer_pullup(again, -1),
			  evbuffer_get_length(replay)) == 0);
	free(sql);
out:
	session_state_free(rebuilt);
	evbuffer_free(replay);
	evbuffer_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *sql = fuzz_copy(data, size);
	struct stmt_info info[MAX_STMTS], few[FEW_STMTS];
	struct session_state *st;
	size_t n, prev_end = 0;
	bool is_read = true, is_unmovable;

	n = classify_query(sql, size, info, MAX_STMTS);
	FUZZ_CHECK(classify_query(sql, size, few, FEW_STMTS) == n);
	for (size_t i = 0; i < n && i < FEW_STMTS; i++)
		FUZZ_CHECK(infos_equal(&info[i], &few[i]));
	if (n > MAX_STMTS) {
		free(sql);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		check_info(&info[i], size, prev_end);
		prev_end = info[i].start + info[i].len;
		check_alone(sql, &info[i]);
		if (info[i].cls != STMT_READ)
			is_read = false;
	}
	FUZZ_CHECK((classify_query_class(sql, size) == STMT_READ) == is_read);

	st = session_state_new();
	is_unmovable = apply_all(st, sql, info, n);
	FUZZ_CHECK((session_state_unmovable(st) != NULL) == is_unmovable);
	check_replay(st);
	session_state_free(st);
	free(sql);
	return 0;
}
