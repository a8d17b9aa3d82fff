/*
 * The config file parser, fed through a memfd so it reads the input as it
 * reads any file. Property: whatever loads, written back out by config_write
 * (what --print-config prints: every setting as SHOW CONFIG formats it, every
 * backend and discover= line as key=value words, all values quoted) loads
 * again to the same configuration.
 */
#include "fuzz.h"
#include "pgwing/config.h"

#include <sys/mman.h>
#include <unistd.h>

extern char **environ;

/* The environment overrides the file; the run must not depend on who starts it. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	unsetenv("FLY_REGION");
	unsetenv("PRIMARY_REGION");
	for (size_t i = 0; environ[i] != NULL;) {
		char name[256];
		size_t len = strcspn(environ[i], "=");

		if (strncmp(environ[i], "PGWING_", 7) == 0 && len < sizeof(name)) {
			memcpy(name, environ[i], len);
			name[len] = '\0';
			unsetenv(name);
		} else {
			i++;
		}
	}
	return 0;
}

static struct config *load(const char *text, size_t len, char *err, size_t errlen)
{
	int fd = memfd_create("pgwing.ini", 0);
	char path[64];
	struct config *cfg;

	FUZZ_CHECK(fd >= 0 && write(fd, text, len) == (ssize_t)len);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cfg = config_load(path, err, errlen);
	if (cfg == NULL)
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
	close(fd);
	return cfg;
}

static char *write_back(const struct config *cfg, size_t *len)
{
	char *text;
	FILE *f = open_memstream(&text, len);

	config_write(f, cfg);
	fclose(f);
	return text;
}

static bool same_string(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_same(const struct config *a, const struct config *b)
{
	const struct setting *settings;
	size_t count;

	settings = config_settings(&count);
	for (size_t i = 0; i < count; i++)
		FUZZ_CHECK(!config_is_changed(a, b, &settings[i]));
	FUZZ_CHECK(a->nbackends == b->nbackends);
	for (int i = 0; i < a->nbackends; i++) {
		const struct backend_config *x = &a->backends[i], *y = &b->backends[i];

		FUZZ_CHECK(strcmp(x->name, y->name) == 0 && x->port == y->port);
		FUZZ_CHECK(same_string(x->host, y->host) && same_string(x->region, y->region));
		FUZZ_CHECK(same_string(x->sslmode, y->sslmode) && same_string(x->wake, y->wake));
		FUZZ_CHECK(same_string(x->wake_auth_env, y->wake_auth_env));
	}
	FUZZ_CHECK(a->ndiscovers == b->ndiscovers);
	for (int i = 0; i < a->ndiscovers; i++) {
		const struct discover_config *x = &a->discovers[i], *y = &b->discovers[i];

		FUZZ_CHECK(strcmp(x->source, y->source) == 0 &&
			   same_string(x->regions, y->regions));
		FUZZ_CHECK(x->tmpl.port == y->tmpl.port && x->tmpl.host == NULL &&
			   y->tmpl.host == NULL);
		FUZZ_CHECK(same_string(x->tmpl.region, y->tmpl.region));
		FUZZ_CHECK(same_string(x->tmpl.sslmode, y->tmpl.sslmode));
		FUZZ_CHECK(same_string(x->tmpl.wake, y->tmpl.wake));
		FUZZ_CHECK(same_string(x->tmpl.wake_auth_env, y->tmpl.wake_auth_env));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024], again_err[1024] = "";
	struct config *cfg = load((const char *)data, size, err, sizeof(err)), *again;
	size_t len;
	char *text;

	if (cfg == NULL)
		return 0;
	FUZZ_CHECK(cfg->nbackends > 0 || cfg->ndiscovers > 0);
	for (int i = 0; i < cfg->nbackends; i++)
		FUZZ_CHECK(cfg->backends[i].host[0] != '\0' && cfg->backends[i].region != NULL);
	text = write_back(cfg, &len);
	again = load(text, len, again_err, sizeof(again_err));
	if (again == NULL)
		fprintf(stderr, "written back:\n%s\nfails: %s\n", text, again_err);
	FUZZ_CHECK(again != NULL);
	check_same(cfg, again);
	config_free(again);
	config_free(cfg);
	free(text);
	return 0;
}
