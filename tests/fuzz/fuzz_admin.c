/*
 * The console's command language. Blanks and comments around a command don't
 * change what it means, so the parse of the input must equal the parse of the
 * input wrapped in them.
 */
#include "fuzz.h"
#include "pgwing/admin_parse.h"

static void check_command(const struct admin_command *cmd)
{
	FUZZ_CHECK(cmd->verb >= ADMIN_EMPTY && cmd->verb <= ADMIN_SHUTDOWN);
	FUZZ_CHECK(memchr(cmd->database, '\0', sizeof(cmd->database)) != NULL);
	FUZZ_CHECK(memchr(cmd->name, '\0', sizeof(cmd->name)) != NULL);
	FUZZ_CHECK(memchr(cmd->value, '\0', sizeof(cmd->value)) != NULL);
	if (cmd->verb == ADMIN_SHOW)
		FUZZ_CHECK(cmd->show >= ADMIN_SHOW_HELP && cmd->show <= ADMIN_SHOW_STATE);
	if (cmd->verb == ADMIN_SET)
		FUZZ_CHECK(cmd->name[0] != '\0');
}

static bool commands_equal(const struct admin_command *a, const struct admin_command *b)
{
	return a->verb == b->verb && (a->verb != ADMIN_SHOW || a->show == b->show) &&
	       strcmp(a->database, b->database) == 0 && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->value, b->value) == 0 && a->client_id == b->client_id &&
	       a->wait_for_clients == b->wait_for_clients;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char prefix[] = " /* c */\t", suffix[] = " \n-- c";
	struct admin_command cmd, wrapped_cmd;
	char err[256] = "", wrapped_err[256] = "";
	char *query = fuzz_cstring(data, size);
	size_t qlen = strlen(query);
	char *wrapped = malloc(sizeof(prefix) + qlen + sizeof(suffix));
	bool ok, wrapped_ok;

	memset(&cmd, 0, sizeof(cmd));
	memset(&wrapped_cmd, 0, sizeof(wrapped_cmd));
	ok = admin_parse(query, &cmd, err, sizeof(err));
	if (ok)
		check_command(&cmd);
	else
		FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);

	/* The suffix starts on a new line: a trailing "-- comment" in query must end first. */
	snprintf(wrapped, sizeof(prefix) + qlen + sizeof(suffix), "%s%s%s", prefix, query, suffix);
	wrapped_ok = admin_parse(wrapped, &wrapped_cmd, wrapped_err, sizeof(wrapped_err));
	FUZZ_CHECK(ok == wrapped_ok);
	if (ok)
		FUZZ_CHECK(commands_equal(&cmd, &wrapped_cmd));
	free(wrapped);
	free(query);
	return 0;
}
