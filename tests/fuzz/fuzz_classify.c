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
 * Close messages above when held is not NULL. Returns whether a statement
 * left the session unmovable.
 */
static bool run_session(struct session_state *st, const char *sql, const struct stmt_info *info,
			size_t n, bool held[NAMES])
{
	bool is_unmovable = false;

	for (size_t i = 0; i < n; i++) {
		session_state_apply(st, &info[i], sql);
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

/* Takes a replay's Query message off its front: its SQL text, or NULL if there is none. */
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

/* What follows the Query: one Parse per held name, then a Sync. */
static void check_parses(struct evbuffer *rest, const bool held[NAMES])
{
	size_t nheld = 0, nparse = 0;
	uint8_t hdr[5];

	for (size_t k = 0; k < NAMES; k++)
		nheld += held[k];
	while (evbuffer_copyout(rest, hdr, sizeof(hdr)) == sizeof(hdr) && hdr[0] == 'P') {
		evbuffer_drain(rest, 1 + fuzz_be32(hdr + 1));
		nparse++;
	}
	FUZZ_CHECK(nparse == nheld);
	if (nheld > 0) {
		FUZZ_CHECK(evbuffer_copyout(rest, hdr, sizeof(hdr)) == sizeof(hdr));
		FUZZ_CHECK(hdr[0] == 'S' && fuzz_be32(hdr + 1) == 4);
		evbuffer_drain(rest, sizeof(hdr));
	}
	FUZZ_CHECK(evbuffer_get_length(rest) == 0);
}

/*
 * The replay: SQL that recreates only replayable state, then the held Parse
 * messages. A session rebuilt from that SQL replays the same SQL again.
 */
static void check_replay(const struct session_state *st, const bool held[NAMES], bool is_unmovable)
{
	struct evbuffer *replay = evbuffer_new(), *again = evbuffer_new();
	struct session_state *rebuilt = session_state_new();
	struct stmt_info info[MAX_STMTS];
	int nready = session_state_replay(st, replay);
	size_t query_len = 0, len, n = 0;
	bool is_listening = false;
	char *sql = take_query(replay, &len);

	if (sql != NULL) {
		query_len = 5 + len + 1;
		n = classify_query(sql, len, info, MAX_STMTS);
		FUZZ_CHECK(n > 0 && n <= MAX_STMTS);
		for (size_t i = 0; i < n; i++) {
			FUZZ_CHECK(info[i].cls == STMT_SESSION &&
				   (info[i].op == SESSION_SET || info[i].op == SESSION_LISTEN ||
				    info[i].op == SESSION_PREPARE));
			is_listening |= info[i].op == SESSION_LISTEN;
		}
		FUZZ_CHECK(!run_session(rebuilt, sql, info, n, NULL));
	}
	FUZZ_CHECK(nready == (sql != NULL) + (evbuffer_get_length(replay) > 0));
	check_parses(replay, held);
	FUZZ_CHECK(session_state_is_listening(st) == is_listening);
	FUZZ_CHECK(session_state_is_empty(st) == (nready == 0 && !is_unmovable));

	session_state_replay(rebuilt, again);
	FUZZ_CHECK(evbuffer_get_length(again) == query_len);
	evbuffer_drain(replay, evbuffer_get_length(replay));
	session_state_replay(st, replay);
	FUZZ_CHECK(query_len == 0 || memcmp(evbuffer_pullup(replay, (ev_ssize_t)query_len),
					    evbuffer_pullup(again, -1), query_len) == 0);
	free(sql);
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
	is_unmovable = run_session(st, sql, info, n, held);
	FUZZ_CHECK((session_state_unmovable(st) != NULL) == is_unmovable);
	check_replay(st, held, is_unmovable);
	session_state_free(st);
	free(sql);
	return 0;
}
