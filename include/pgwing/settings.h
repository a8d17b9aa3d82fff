/*
 * The table of settings: for each, its name, type, default, whether a reload
 * changes it, its bounds and its documentation, in one place (settings.c).
 * Parsing (the file, the environment, the console's SET), defaults, SHOW
 * CONFIG, --print-config and the generated reference (doc/config.md,
 * pgwing.5) all read it. Also the syntax of values: units, booleans, lists.
 *
 * The functions keep their config_ names, which their callers have used since
 * the table lived in config.c; what the split added is named settings_.
 */
#ifndef PGWING_SETTINGS_H
#define PGWING_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

/* Values of the enum settings; settings.c has their names. */
enum auth_type {
	AUTH_TRUST,
	AUTH_PLAIN,
	AUTH_MD5,
	AUTH_SCRAM,
};

/* libpq's sslmode values; the order is the order of strictness. */
enum tls_mode {
	TLS_DISABLE,
	TLS_ALLOW,
	TLS_PREFER,
	TLS_REQUIRE,
	TLS_VERIFY_CA,
	TLS_VERIFY_FULL,
};

enum ro_fallback {
	RO_FALLBACK_PRIMARY,
	RO_FALLBACK_ERROR,
};

/* When a read-only client wakes a sleeping replica (see router_pick_wakeable). */
enum wake_for_reads {
	WAKE_FOR_READS_NEAREST,
	WAKE_FOR_READS_NEVER,
	WAKE_FOR_READS_ALWAYS,
};

/* When a session gives its server back between transactions (pool_should_release). */
enum server_release {
	SERVER_RELEASE_DEMAND, /* when others wait, and on idle timeout, PAUSE, RECONNECT, moves */
	SERVER_RELEASE_ALWAYS, /* at every idle point the session's state can move from */
};

/* When a server is asked what its session holds before the session moves (link.c). */
enum move_check {
	MOVE_CHECK_FUNCTIONS, /* after the session called code: a function, DO, CALL, EXECUTE */
	MOVE_CHECK_WRITES,    /* after anything not provably read-only (triggers too) */
};

/* The highest TCP port, for settings and backend lines alike. */
#define SETTINGS_PORT_MAX 65535

enum setting_type {
	SETTING_STRING,
	SETTING_INT,
	SETTING_BOOL,
	SETTING_DURATION, /* stored as int64_t milliseconds */
	SETTING_SIZE,     /* stored as int64_t bytes */
	SETTING_ENUM,     /* stored as int */
};

struct setting {
	const char *name;
	enum setting_type type;
	size_t offset; /* into struct config */
	const char *default_value;
	bool is_reloadable;
	const char *const *enum_names; /* SETTING_ENUM: NULL-terminated, index = value */
	/* Allowed range: of the value for numbers, of the length in bytes for strings. */
	int64_t min_value;
	int64_t max_value;
	bool is_path; /* relative values are resolved against the config file's directory */
	/*
	 * The reference text, one paragraph (doc/config.md's table and pgwing.5 are
	 * generated from it): plain text, with `code` and *emphasis* as in Markdown.
	 */
	const char *doc;
};

/* The table of settings, for SHOW CONFIG and the docs. */
const struct setting *config_settings(size_t *count);
/* The setting called name, or NULL. */
const struct setting *config_find_setting(const char *name);

/*
 * Parse text as the value of s and store it in cfg: the one way a value gets
 * in, from a default, the file, the environment or SET. Relative paths are
 * resolved against dir (NULL: s must not be a path). On failure, msg says why,
 * without a location (the caller knows where the text came from).
 */
bool settings_apply(struct config *cfg, const struct setting *s, const char *text, const char *dir,
		    char *msg, size_t msglen);

/* The name of a type as the reference writes it ("duration"). */
const char *settings_type_name(enum setting_type type);

/* Format a setting's current value as it would be written in the file. */
void config_format_value(const struct config *cfg, const struct setting *s, char *buf,
			 size_t buflen);
/* The values s accepts ("1 .. 65535", "1ms .. 24h", "non-empty"), "" when any is fine. */
void config_format_range(const struct setting *s, char *buf, size_t buflen);

/* True when s differs between a and b: reload uses it to find settings that need a restart. */
bool config_is_changed(const struct config *a, const struct config *b, const struct setting *s);
/* Copy one setting's value from src into dst (reload keeps what can't change live). */
void config_copy_setting(struct config *dst, const struct config *src, const struct setting *s);

/* An sslmode name ("verify-full") to its value; false when it names none. */
bool config_parse_tls_mode(const char *name, enum tls_mode *mode);
const char *config_tls_mode_name(enum tls_mode mode);

/* Parse helpers, exposed for tests and for SET in the admin console. */
bool config_parse_duration(const char *text, int64_t *ms);
bool config_parse_size(const char *text, int64_t *bytes);
bool config_parse_bool(const char *text, bool *value);
/* A whole number: digits only, no sign, no unit. */
bool settings_parse_int(const char *text, int64_t *value);

/* True when name is in the comma-separated list (whitespace around items ignored). */
bool config_list_contains(const char *list, const char *name);

/* dir + "/" + name, newly allocated; dir may be "" for the root. */
char *settings_path_join(const char *dir, const char *name);

#endif
