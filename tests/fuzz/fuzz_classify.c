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

/*
 * Protocol-level prepared statements: the client is taken to prepare each
 * read-only statement with a Parse as well (named "p<i % NAMES>") and to
 * close one at each transaction statement; held[] is what the session must
 * then keep.
 */
#define NAMES 4

static void note_parse(struct session_state *st, size_t i, bool held[NAMES])
{
	uint8_t msg[] = {'P', 0, 0, 0, 11, 'p', (uint8_t)('0' + i % NAMES), 0, 's', 0, 0, 0};
	char name[] = {'p', (char)('0' + i % NAMES), '\0'};

	session_state_note_parse(st, name, msg, sizeof(msg));
	held[i % NAMES] = true;
}

static void note_close(struct session_state *st, size_t i, bool held[NAMES])
{
	char name[] = {'p', (char)('0' + i % NAMES), '\0'};

	session_state_note_close(st, name);
	held[i % NAMES] = false;
}

static void forget_parse(const struct stmt_info *info, bool held[NAMES])
{
	for (size_t k = 0; k < NAMES; k++) {
		char name[] = {'p', (char)('0' + k), '\0'};

		if (info->op == SESSION_DEALLOCATE_ALL || info->op == SESSION_DISCARD_ALL ||
		    (info->op == SESSION_DEALLOCATE && strcmp(info->key, name) == 0))
			held[k] = false;
	}
}

/*
 * Runs a query's statements on st as if each succeeded, with the Parse and
 * Close messages above when held is not NULL. is_whole: sql ends at its first
 * NUL, as a query Postgres runs does. Returns whether a statement left the
 * session unmovable.
 */
static bool run_session(struct session_state *st, const char *sql, const struct stmt_info *info,
			size_t n, bool is_whole, bool held[NAMES])
{
	bool is_unmovable = false;

	for (size_t i = 0; i < n; i++) {
		session_state_apply(st, &info[i], sql, is_whole && n == 1);
		if (info[i].cls == STMT_UNMOVABLE)
			is_unmovable = true;
		else if (info[i].op == SESSION_DISCARD_ALL)
			is_unmovable = false;
		if (held == NULL)
			continue;
		forget_parse(&info[i], held);
		if (info[i].cls == STMT_READ)
			note_parse(st, i, held);
		else if (info[i].cls == STMT_TX)
			note_close(st, i, held);
	}
	return is_unmovable;
}

/* Takes a replay's next Query message off its front: its SQL text, or NULL if there is none. */
static char *take_query(struct evbuffer *replay, size_t *len)
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

/* What follows the Queries: one Parse per held name, each with its Sync. */
static size_t check_parses(struct evbuffer *rest, const bool held[NAMES])
{
	size_t nheld = 0, nparse = 0;
	uint8_t hdr[5];

	for (size_t k = 0; k < NAMES; k++)
		nheld += held[k];
	while (evbuffer_copyout(rest, hdr, sizeof(hdr)) == sizeof(hdr) && hdr[0] == 'P') {
		evbuffer_drain(rest, 1 + fuzz_be32(hdr + 1));
		nparse++;
		FUZZ_CHECK(evbuffer_copyout(rest, hdr, sizeof(hdr)) == sizeof(hdr));
		FUZZ_CHECK(hdr[0] == 'S' && fuzz_be32(hdr + 1) == 4);
		evbuffer_drain(rest, sizeof(hdr));
	}
	FUZZ_CHECK(nparse == nheld);
	FUZZ_CHECK(evbuffer_get_length(rest) == 0);
	return nparse;
}

/*
 * The replay: a Query per statement that recreates replayable state, then the
 * held Parse messages, each request answered once. A session rebuilt from
 * those Queries replays the same Queries again.
 */
static void check_replay(const struct session_state *st, const bool held[NAMES], bool is_unmovable)
{
	struct evbuffer *replay = evbuffer_new(), *again = evbuffer_new();
	struct session_state *rebuilt = session_state_new();
	int nready = session_state_replay(st, NULL, NULL, replay);
	size_t queries_len, nqueries = 0, len;
	bool is_listening = false;
	char *sql;

	while ((sql = take_query(replay, &len)) != NULL) {
		struct stmt_info info;

		/* Each Query is one statement, which a Query of its own replays as it is. */
		FUZZ_CHECK(classify_query(sql, len, &info, 1) == 1);
		/* A RESET of a custom (dotted) setting replays: it keeps the name defined. */
		FUZZ_CHECK(info.cls == STMT_SESSION &&
			   (info.op == SESSION_SET || info.op == SESSION_LISTEN ||
			    info.op == SESSION_PREPARE ||
			    (info.op == SESSION_RESET && strchr(info.key, '.') != NULL)));
		is_listening |= info.op == SESSION_LISTEN;
		FUZZ_CHECK(!run_session(rebuilt, sql, &info, 1, strlen(sql) == len, NULL));
		free(sql);
		nqueries++;
	}
	FUZZ_CHECK((size_t)nready == nqueries + check_parses(replay, held));
	FUZZ_CHECK(session_state_is_listening(st) == is_listening);
	FUZZ_CHECK(session_state_is_empty(st) == (nready == 0 && !is_unmovable));

	/* The rebuilt session (no Parses) replays the same Queries, byte for byte. */
	FUZZ_CHECK((size_t)session_state_replay(rebuilt, NULL, NULL, again) == nqueries);
	queries_len = evbuffer_get_length(again);
	session_state_replay(st, NULL, NULL, replay);
	FUZZ_CHECK(evbuffer_get_length(replay) >= queries_len);
	FUZZ_CHECK(queries_len == 0 || memcmp(evbuffer_pullup(replay, (ev_ssize_t)queries_len),
					      evbuffer_pullup(again, -1), queries_len) == 0);
	session_state_free(rebuilt);
	evbuffer_free(replay);
	evbuffer_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *sql = fuzz_copy(data, size), *query;
	struct stmt_info info[MAX_STMTS], few[FEW_STMTS];
	struct session_state *st;
	size_t n, prev_end = 0;
	bool is_read = true, is_unmovable, held[NAMES] = {false};

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
	/* The session keeps a query's text as Postgres reads it: up to a NUL (here, its end). */
	query = fuzz_cstring(data, size);
	is_unmovable = run_session(st, query, info, n, strlen(query) == size, held);
	FUZZ_CHECK((session_state_unmovable(st) != NULL) == is_unmovable);
	check_replay(st, held, is_unmovable);
	session_state_free(st);
	free(query);
	free(sql);
	return 0;
}
