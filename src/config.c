/*
 * The loader: a config file through the ini reader (ini.c) into the table of
 * settings (settings.c), the [backends] lines, environment overrides, the
 * rules across settings (with file:line in every message), the console's SET,
 * writing a config back out, and the config --fly stands for (no file).
 */
#include "pgwing/config.h"

#include "pgwing/ini.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Letters, digits and underscore: environment variable names, and backend names with ".-". */
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"

enum section {
	SECTION_NONE,
	SECTION_PGWING,
	SECTION_BACKENDS,
};

struct parser {
	struct ini ini; /* the file's path and line, for messages */
	struct config *cfg;
	char *dir; /* absolute directory of the file, for relative paths */
	enum section section;
	int *setting_lines; /* per setting, the line that set it; 0 if none */
};

static bool parse_section(void *ctx, const char *name)
{
	struct parser *p = ctx;

	if (strcmp(name, "pgwing") == 0)
		p->section = SECTION_PGWING;
	else if (strcmp(name, "backends") == 0)
		p->section = SECTION_BACKENDS;
	else
		return ini_error(&p->ini, "unknown section \"[%s]\"", name);
	return true;
}

static bool parse_setting(struct parser *p, const char *name, char *value)
{
	const struct setting *s = config_find_setting(name);
	char *text;
	char msg[512];
	bool ok;
	size_t idx, count;

	if (s == NULL)
		return ini_error(&p->ini, "unknown setting \"%s\"", name);
	idx = (size_t)(s - config_settings(&count));
	if (p->setting_lines[idx] != 0)
		return ini_error(&p->ini, "setting \"%s\" is already set on line %d", name,
				 p->setting_lines[idx]);
	p->setting_lines[idx] = p->ini.line;

	text = ini_value(value);
	if (text == NULL)
		return ini_error(&p->ini, "unexpected text after the quoted value of \"%s\"", name);
	ok = settings_apply(p->cfg, s, text, p->dir, msg, sizeof(msg));
	free(text);
	return ok || ini_error(&p->ini, "%s", msg);
}

static const char *check_not_empty(const char *value)
{
	return value[0] == '\0' ? "must not be empty" : NULL;
}

static const char *check_sslmode(const char *value)
{
	enum tls_mode mode;

	return config_parse_tls_mode(value, &mode)
		       ? NULL
		       : "expected disable, allow, prefer, require, verify-ca or verify-full";
}

static const char *check_wake(const char *value)
{
	const char *machine;

	if ((strncmp(value, "exec:", 5) == 0 || strncmp(value, "http:", 5) == 0) &&
	    value[5] != '\0')
		return NULL;
	/* Bare fly-api and none only make sense on a discover = fly: line; parse_backend checks. */
	if (strcmp(value, "fly-api") == 0 || strcmp(value, "none") == 0)
		return NULL;
	/* fly-api:<app>/<machine_id>: both go into the API's URL path, so no / ? % or blanks. */
	if (strncmp(value, "fly-api:", 8) == 0 && (machine = strchr(value + 8, '/')) != NULL &&
	    machine > value + 8 && machine[1] != '\0' &&
	    strspn(value + 8, NAME_CHARS ".-/") == strlen(value + 8) &&
	    strchr(machine + 1, '/') == NULL)
		return NULL;
	return "expected exec:\"command\", an http:// URL or fly-api:<app>/<machine_id>";
}

static const char *check_env_name(const char *value)
{
	if ((isalpha((unsigned char)value[0]) || value[0] == '_') &&
	    strspn(value, NAME_CHARS) == strlen(value))
		return NULL;
	return "expected the name of an environment variable";
}

/* The string keys of a backend line; port is the one number and is parsed apart. */
static const struct backend_key {
	const char *name;
	size_t offset;                           /* of a char * in struct backend_config */
	const char *(*check)(const char *value); /* NULL if fine, else what is wrong */
} backend_keys[] = {
	{"host", offsetof(struct backend_config, host), check_not_empty},
	{"region", offsetof(struct backend_config, region), NULL},
	{"sslmode", offsetof(struct backend_config, sslmode), check_sslmode},
	{"wake", offsetof(struct backend_config, wake), check_wake},
	{"wake_auth_env", offsetof(struct backend_config, wake_auth_env), check_env_name},
};

static bool backend_set(struct parser *p, struct backend_config *b, const char *key,
			const char *value, bool *has_port)
{
	const struct backend_key *k;
	const char *problem;
	char **field;
	int64_t port;

	if (strcmp(key, "port") == 0) {
		if (*has_port)
			return ini_error(&p->ini, "backend \"%s\": \"port\" is given twice",
					 b->name);
		if (!settings_parse_int(value, &port) || port < 1 || port > SETTINGS_PORT_MAX)
			return ini_error(&p->ini,
					 "backend \"%s\": invalid port \"%s\" (expected 1 .. %d)",
					 b->name, value, SETTINGS_PORT_MAX);
		*has_port = true;
		b->port = (int)port;
		return true;
	}
	for (k = backend_keys; k < backend_keys + ARRAY_SIZE(backend_keys); k++)
		if (strcmp(key, k->name) == 0)
			break;
	if (k == backend_keys + ARRAY_SIZE(backend_keys))
		return ini_error(&p->ini, "backend \"%s\": unknown key \"%s\"", b->name, key);
	field = (char **)((char *)b + k->offset);
	if (*field != NULL)
		return ini_error(&p->ini, "backend \"%s\": \"%s\" is given twice", b->name, key);
	problem = k->check != NULL ? k->check(value) : NULL;
	if (problem != NULL)
		return ini_error(&p->ini, "backend \"%s\": invalid %s \"%s\" (%s)", b->name, key,
				 value, problem);
	*field = xstrdup(value);
	return true;
}

/* The key=value words after a backend's name (or a discover= line's source) into b. */
static bool parse_backend_words(struct parser *p, struct backend_config *b, char *pos,
				char **regions)
{
	bool has_port = false;

	for (pos = ini_skip_blanks(pos); *pos != '\0'; pos = ini_skip_blanks(pos)) {
		char *word = ini_read_word(&pos);
		char *eq = strchr(word, '=');
		bool ok;

		if (eq == NULL) {
			ok = ini_error(&p->ini, "backend \"%s\": expected key=value, found \"%s\"",
				       b->name, word);
		} else {
			*eq = '\0';
			ok = true;
			if (regions != NULL && strcmp(word, "regions") == 0 && *regions == NULL)
				*regions = xstrdup(eq + 1);
			else if (regions != NULL && strcmp(word, "host") == 0)
				ok = ini_error(&p->ini,
					       "discover: the hosts come from DNS; no host=");
			else
				ok = backend_set(p, b, word, eq + 1, &has_port);
		}
		free(word);
		if (!ok)
			return false;
	}
	if (b->region == NULL)
		b->region = xstrdup("");
	return true;
}

/*
 * "discover = fly:<app> [port=5433] ..." or "discover = dns:<name> [regions=a,b]
 * ...": the source, then the words of a backend line, which every backend found gets.
 */
static bool parse_discover(struct parser *p, char *value)
{
	struct config *cfg = p->cfg;
	struct discover_config *d;
	char *pos = ini_skip_blanks(value);
	char *source = ini_read_word(&pos);
	bool is_fly = strncmp(source, "fly:", 4) == 0;
	const char *name = source + 4;

	if ((!is_fly && strncmp(source, "dns:", 4) != 0) || name[0] == '\0' ||
	    strspn(name, NAME_CHARS ".-") != strlen(name) || strlen(name) > 200) {
		ini_error(&p->ini, "discover: expected fly:<app> or dns:<name>, found \"%s\"",
			  source);
		free(source);
		return false;
	}
	cfg->discovers = xrealloc(cfg->discovers, (cfg->ndiscovers + 1) * sizeof(*cfg->discovers));
	d = &cfg->discovers[cfg->ndiscovers++];
	*d = (struct discover_config){
		.source = source,
		.tmpl = {.name = xstrdup("discover"),
			 .port = is_fly ? 5433 : 5432,
			 .line = p->ini.line},
	};
	if (!parse_backend_words(p, &d->tmpl, pos, &d->regions))
		return false;
	/* Discovery fills in the app and machine of each fly: machine; it has neither for dns:. */
	if (d->tmpl.wake != NULL && strncmp(d->tmpl.wake, "fly-api", 7) == 0 &&
	    (!is_fly || d->tmpl.wake[7] != '\0'))
		return ini_error(&p->ini,
				 "discover: wake=fly-api is for fly: lines, without an app or "
				 "machine (discovery gives both)");
	if (d->regions != NULL && (is_fly || d->tmpl.region[0] != '\0'))
		return ini_error(&p->ini, "discover: regions= is for dns: without region=");
	return true;
}

/* "name = host=H port=P region=R ...": words of key=value, values maybe quoted. */
static bool parse_backend(struct parser *p, const char *name, char *value)
{
	struct config *cfg = p->cfg;
	struct backend_config *b;

	if (strcmp(name, "discover") == 0)
		return parse_discover(p, value);
	if (strspn(name, NAME_CHARS ".-") != strlen(name))
		return ini_error(&p->ini,
				 "invalid backend name \"%s\" (use letters, digits, _ . -)", name);
	for (int i = 0; i < cfg->nbackends; i++)
		if (strcmp(cfg->backends[i].name, name) == 0)
			return ini_error(&p->ini,
					 "duplicate backend \"%s\" (first defined on line %d)",
					 name, cfg->backends[i].line);

	cfg->backends = xrealloc(cfg->backends, (cfg->nbackends + 1) * sizeof(*cfg->backends));
	b = &cfg->backends[cfg->nbackends++];
	*b = (struct backend_config){.name = xstrdup(name), .port = 5432, .line = p->ini.line};

	if (!parse_backend_words(p, b, value, NULL))
		return false;
	if (b->host == NULL)
		return ini_error(&p->ini, "backend \"%s\" has no host", name);
	if (b->wake != NULL && strcmp(b->wake, "fly-api") == 0)
		return ini_error(&p->ini,
				 "backend \"%s\": wake=fly-api needs the machine here: "
				 "fly-api:<app>/<machine_id>",
				 name);
	/* none is the default of a backend line: say it by having no wake. */
	if (b->wake != NULL && strcmp(b->wake, "none") == 0) {
		free(b->wake);
		b->wake = NULL;
	}
	return true;
}

static bool parse_entry(void *ctx, const char *name, char *value)
{
	struct parser *p = ctx;

	switch (p->section) {
	case SECTION_PGWING:
		return parse_setting(p, name, value);
	case SECTION_BACKENDS:
		return parse_backend(p, name, value);
	case SECTION_NONE:
		break;
	}
	return ini_error(&p->ini, "setting \"%s\" is outside any section", name);
}

static bool apply_defaults(struct parser *p)
{
	size_t n;
	const struct setting *settings = config_settings(&n);
	char msg[512];

	for (size_t i = 0; i < n; i++)
		if (!settings_apply(p->cfg, &settings[i], settings[i].default_value, p->dir, msg,
				    sizeof(msg)))
			return ini_error(&p->ini, "built-in default: %s", msg);
	return true;
}

static bool apply_env_var(struct parser *p, const char *var, const struct setting *s)
{
	const char *value = getenv(var);
	char msg[512];

	if (value == NULL || settings_apply(p->cfg, s, value, p->dir, msg, sizeof(msg)))
		return true;
	snprintf(p->ini.err, p->ini.errlen, "environment %s: %s", var, msg);
	return false;
}

/* The platform's variables first, so that PGWING_* ones win over them. */
static bool apply_env(struct parser *p)
{
	size_t n;
	const struct setting *settings = config_settings(&n);
	char var[64];

	if (!apply_env_var(p, "FLY_REGION", config_find_setting("region")) ||
	    !apply_env_var(p, "PRIMARY_REGION", config_find_setting("primary_region")) ||
	    !apply_env_var(p, "FLY_NAMESERVER", config_find_setting("dns_nameserver")))
		return false;
	for (size_t i = 0; i < n; i++) {
		size_t len = (size_t)snprintf(var, sizeof(var), "PGWING_%s", settings[i].name);

		for (size_t j = 0; j < len; j++)
			var[j] = (char)toupper((unsigned char)var[j]);
		if (!apply_env_var(p, var, &settings[i]))
			return false;
	}
	return true;
}

/*
 * server_require_auth into cfg->server_auth_methods. As libpq: either every
 * item names a method allowed, or every item is one refused ("!md5").
 */
static bool parse_server_auth_methods(struct parser *p)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		{"scram-sha-256", SERVER_AUTH_SCRAM},
		{"md5", SERVER_AUTH_MD5},
		{"password", SERVER_AUTH_PASSWORD},
		{"none", SERVER_AUTH_NONE},
	};
	const char *pos = p->cfg->server_require_auth;
	unsigned listed = 0;
	int negations = 0, items = 0;

	while (*pos != '\0') {
		size_t len = strcspn(pos, ","), item_len;
		const char *item = pos + strspn(pos, " \t");
		bool is_negated = *item == '!';
		size_t i;

		item += is_negated;
		item_len = (size_t)(pos + len - item);
		while (item_len > 0 && (item[item_len - 1] == ' ' || item[item_len - 1] == '\t'))
			item_len--;
		for (i = 0; i < ARRAY_SIZE(methods); i++)
			if (item_len == strlen(methods[i].name) &&
			    strncmp(item, methods[i].name, item_len) == 0)
				break;
		if (i == ARRAY_SIZE(methods))
			return ini_error(&p->ini, "server_require_auth: unknown method \"%.*s\"",
					 (int)len, pos);
		listed |= methods[i].bit;
		negations += is_negated;
		items++;
		pos += len + (pos[len] == ',');
	}
	if (negations != 0 && negations != items)
		return ini_error(&p->ini,
				 "server_require_auth: either every method has ! or none has");
	if (negations != 0)
		listed = SERVER_AUTH_ANY & ~listed;
	if (listed == 0)
		return ini_error(&p->ini, "server_require_auth refuses every method");
	p->cfg->server_auth_methods = listed;
	return true;
}

/* Rules across settings, checked once file and environment are both in. */
static bool validate(struct parser *p)
{
	const struct config *cfg = p->cfg;

	p->ini.line = 0;
	if (cfg->nbackends == 0 && cfg->ndiscovers == 0)
		return ini_error(&p->ini, "no backends: add at least one (or a discover= line) to "
					  "[backends]");
	if (cfg->rw_port == cfg->ro_port)
		return ini_error(&p->ini, "rw_port and ro_port must differ (both are %d)",
				 cfg->rw_port);
	if (cfg->health_user[0] == '\0' &&
	    strspn(cfg->admin_users, ", \t") == strlen(cfg->admin_users))
		return ini_error(&p->ini,
				 "health_user is empty and admin_users has no user to use instead");
	if (cfg->client_tls_sslmode != TLS_DISABLE &&
	    (cfg->client_tls_cert_file[0] == '\0' || cfg->client_tls_key_file[0] == '\0'))
		return ini_error(&p->ini,
				 "client_tls_sslmode %s needs client_tls_cert_file and "
				 "client_tls_key_file",
				 config_tls_mode_name(cfg->client_tls_sslmode));
	if (cfg->client_tls_sslmode >= TLS_VERIFY_CA && cfg->client_tls_ca_file[0] == '\0')
		return ini_error(&p->ini, "client_tls_sslmode %s needs client_tls_ca_file",
				 config_tls_mode_name(cfg->client_tls_sslmode));
	if ((cfg->server_tls_cert_file[0] == '\0') != (cfg->server_tls_key_file[0] == '\0'))
		return ini_error(&p->ini,
				 "server_tls_cert_file and server_tls_key_file go together");
	/*
	 * Last: config_set puts back a refused value's string but not the methods
	 * parsed from it, so they are parsed only once every other rule holds.
	 */
	return parse_server_auth_methods(p);
}

/*
 * The absolute form of path, and the directory it is in; with no file (NULL),
 * the name messages give it ("--fly my-db") and the current directory.
 */
static bool make_absolute(struct parser *p, const char *path, char **abs_path)
{
	char cwd[PATH_MAX];

	if (path != NULL && path[0] == '/') {
		*abs_path = xstrdup(path);
	} else if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return ini_error(&p->ini, "could not get the current directory: %s",
				 strerror(errno));
	} else if (path == NULL) {
		*abs_path = xstrdup(p->ini.path);
		p->dir = xstrdup(cwd);
		return true;
	} else {
		*abs_path = settings_path_join(cwd, path);
	}
	p->dir = xstrdup(*abs_path);
	*strrchr(p->dir, '/') = '\0';
	return true;
}

bool config_set(struct config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
	const struct setting *s = config_find_setting(name);
	char what[128];
	struct parser p = {.ini = {.path = what, .err = err, .errlen = errlen}, .cfg = cfg};
	struct config *saved;
	bool ok;

	if (s == NULL) {
		snprintf(err, errlen, "unknown setting \"%s\"", name);
		return false;
	}
	if (!s->is_reloadable) {
		snprintf(err, errlen, "setting \"%s\" cannot change while pgwing runs (restart it)",
			 name);
		return false;
	}
	/*
	 * A console user could otherwise point the log at any file pgwing may
	 * write, or have it read keys and passwords from one of their choosing:
	 * files are for whoever may edit the config file.
	 */
	if (s->is_path) {
		snprintf(err, errlen,
			 "setting \"%s\" names a file and cannot be changed with SET; edit the "
			 "config file and RELOAD",
			 name);
		return false;
	}
	snprintf(what, sizeof(what), "SET %s", name);
	/* The old value, to put back if the new one breaks a rule across settings. */
	saved = xcalloc(1, sizeof(*saved));
	config_copy_setting(saved, cfg, s);
	/* No directory: only a path would be resolved against one. */
	ok = settings_apply(cfg, s, value, NULL, err, errlen);
	if (ok && !validate(&p)) {
		config_copy_setting(cfg, saved, s);
		ok = false;
	}
	config_free(saved);
	return ok;
}

/*
 * A config from f, called name in messages: defaults, then f, then the
 * environment, then the rules across settings. path is f's file, or NULL when
 * f is no file (--fly's text).
 */
static struct config *load(FILE *f, const char *name, const char *path, char *err, size_t errlen)
{
	static const struct ini_handler handler = {.section = parse_section, .entry = parse_entry};
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	struct parser p = {.ini = {.path = name, .err = err, .errlen = errlen}, .cfg = cfg};
	size_t n;
	bool ok;

	config_settings(&n);
	p.setting_lines = xcalloc(n, sizeof(int));
	if (f == NULL) {
		ok = ini_error(&p.ini, "%s", strerror(errno));
	} else {
		ok = make_absolute(&p, path, &cfg->path) && apply_defaults(&p) &&
		     ini_read(&p.ini, f, &handler, &p) && apply_env(&p) && validate(&p);
		fclose(f);
	}
	free(p.dir);
	free(p.setting_lines);
	if (!ok) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	return load(fopen(path, "r"), path, path, err, errlen);
}

void config_free(struct config *cfg)
{
	size_t n;
	const struct setting *settings = config_settings(&n);

	if (cfg == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		if (settings[i].type == SETTING_STRING)
			free(*(char **)((char *)cfg + settings[i].offset));
	for (int i = 0; i < cfg->nbackends; i++)
		config_clear_backend(&cfg->backends[i]);
	free(cfg->backends);
	for (int i = 0; i < cfg->ndiscovers; i++) {
		free(cfg->discovers[i].source);
		free(cfg->discovers[i].regions);
		config_clear_backend(&cfg->discovers[i].tmpl);
	}
	free(cfg->discovers);
	free(cfg->path);
	free(cfg->fly_spec);
	free(cfg);
}

void config_clear_backend(struct backend_config *b)
{
	free(b->name);
	free(b->host);
	free(b->region);
	free(b->sslmode);
	free(b->wake);
	free(b->wake_auth_env);
}

static char *strdup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void config_copy_backend(struct backend_config *dst, const struct backend_config *src)
{
	*dst = *src;
	dst->name = strdup_or_null(src->name);
	dst->host = strdup_or_null(src->host);
	dst->region = strdup_or_null(src->region);
	dst->sslmode = strdup_or_null(src->sslmode);
	dst->wake = strdup_or_null(src->wake);
	dst->wake_auth_env = strdup_or_null(src->wake_auth_env);
}

/* A double-quoted value as the parser reads it back: \ and " escaped. */
static void write_quoted(FILE *f, const char *value)
{
	fputc('"', f);
	for (const char *c = value; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			fputc('\\', f);
		fputc(*c, f);
	}
	fputc('"', f);
}

static void write_key(FILE *f, const char *key, const char *value)
{
	if (value == NULL)
		return;
	fprintf(f, " %s=", key);
	write_quoted(f, value);
}

/* The words every backend line and discover= line may have, after host or source. */
static void write_backend_words(FILE *f, const struct backend_config *b)
{
	fprintf(f, " port=%d", b->port);
	write_key(f, "region", b->region);
	write_key(f, "sslmode", b->sslmode);
	write_key(f, "wake", b->wake);
	write_key(f, "wake_auth_env", b->wake_auth_env);
	fputc('\n', f);
}

void config_write(FILE *f, const struct config *cfg)
{
	size_t n;
	const struct setting *settings = config_settings(&n);
	char value[128];

	fputs("[pgwing]\n", f);
	for (size_t i = 0; i < n; i++) {
		const struct setting *s = &settings[i];

		fprintf(f, "%s = ", s->name);
		/* Strings as they are, whatever their length; the rest as SHOW CONFIG has them. */
		if (s->type == SETTING_STRING) {
			write_quoted(f, *(char *const *)((const char *)cfg + s->offset));
		} else {
			config_format_value(cfg, s, value, sizeof(value));
			write_quoted(f, value);
		}
		fputc('\n', f);
	}
	fputs("\n[backends]\n", f);
	for (int i = 0; i < cfg->nbackends; i++) {
		fprintf(f, "%s = host=", cfg->backends[i].name);
		write_quoted(f, cfg->backends[i].host);
		write_backend_words(f, &cfg->backends[i]);
	}
	for (int i = 0; i < cfg->ndiscovers; i++) {
		fprintf(f, "discover = %s", cfg->discovers[i].source);
		write_key(f, "regions", cfg->discovers[i].regions);
		write_backend_words(f, &cfg->discovers[i].tmpl);
	}
}

/*
 * The file --fly stands for: a sidecar on the defaults, which are Fly's
 * (listen_addr, rw_port, ro_port; discovery's port 5433 and wake=fly-api),
 * whose logins all go through auth_query as one user, who runs the probes
 * too. FLY_REGION, PRIMARY_REGION, FLY_NAMESERVER and PGWING_* apply after
 * it, as to a file.
 */
static char *fly_text(const char *spec)
{
	const char *user = getenv("PGWING_AUTH_USER");
	char *text;
	size_t len;
	FILE *f = CHECK_ALLOC(open_memstream(&text, &len));

	if (user == NULL || user[0] == '\0')
		user = CONFIG_FLY_AUTH_USER;
	fputs("[pgwing]\nauth_file = /dev/null\nauth_user = ", f);
	write_quoted(f, user);
	fputs("\nhealth_user = ", f);
	write_quoted(f, user);
	fprintf(f, "\n[backends]\ndiscover = fly:%s\n", spec);
	fclose(f);
	return text;
}

struct config *config_load_fly(const char *spec, char *err, size_t errlen)
{
	char what[256];
	char *text;
	struct config *cfg;

	snprintf(what, sizeof(what), "--fly %s", spec);
	/* The words of one discover= line: a line break would start lines of its own. */
	if (strpbrk(spec, "\r\n") != NULL) {
		snprintf(err, errlen, "%s: a line break is not allowed", what);
		return NULL;
	}
	text = fly_text(spec);
	cfg = load(fmemopen(text, strlen(text), "r"), what, NULL, err, errlen);
	free(text);
	if (cfg != NULL)
		cfg->fly_spec = xstrdup(spec);
	return cfg;
}

struct config *config_reload(const struct config *cfg, char *err, size_t errlen)
{
	return cfg->fly_spec != NULL ? config_load_fly(cfg->fly_spec, err, errlen)
				     : config_load(cfg->path, err, errlen);
}
