/*
 * Authentication: the auth file, pgwing verifying clients, and pgwing logging
 * in to servers with the user's credentials. Message bodies in, messages out
 * (appended to an evbuffer); the connection state machines only move bytes.
 */
#ifndef PGWING_AUTH_H
#define PGWING_AUTH_H

#include "pgwing/common.h"
#include "pgwing/config.h"
#include "pgwing/scram.h"

struct evbuffer;

/* PgBouncer-compatible: one `"user" "password"` per line; `""` escapes a quote; ';' or '#'
 * comments. */
struct auth_file;

struct auth_file *auth_file_load(const char *path, char *err, size_t errlen);
void auth_file_free(struct auth_file *af);
/* The stored password (plaintext, "md5..." hash or SCRAM secret), or NULL for an unknown user. */
const char *auth_file_lookup(const struct auth_file *af, const char *user);
/*
 * The SCRAM secret of user's plaintext password (with the per-user salt pgwing
 * offers), derived once and kept with the auth file; NULL when the stored
 * password is not plaintext, or there is none.
 */
const struct scram_secret *auth_file_derived_secret(struct auth_file *af, const char *user);

enum password_kind {
	PASSWORD_PLAIN,
	PASSWORD_MD5,
	PASSWORD_SCRAM,
};

enum password_kind password_kind(const char *stored);

enum auth_step {
	AUTH_STEP_CONTINUE, /* a request was appended to out; feed the next 'p' message */
	AUTH_STEP_OK,       /* authenticated (AuthenticationOk is not sent here) */
	AUTH_STEP_FAILED,   /* *err says why, for the log; the client gets one generic message */
};

/* What pgwing knows, after a client logged in, to log in to servers on its behalf. */
struct server_credentials {
	char *user;
	char *password; /* plaintext or "md5..." hash, or NULL */
	bool has_scram_keys;
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	/* The secret the keys belong to: a server with another salt or iteration count can't use
	 * them. */
	uint8_t scram_salt[SCRAM_SALT_MAX];
	size_t scram_salt_len;
	int scram_iterations;
};

void server_credentials_free(struct server_credentials *cred);
void server_credentials_copy(struct server_credentials *dst, const struct server_credentials *src);

/*
 * The auth_type a client gets: cfg's, except that trust does not reach the admin
 * console over TCP (anyone who can reach the port could claim an admin's name)
 * unless admin_trust_tcp says so; the console then asks for SCRAM.
 */
enum auth_type auth_client_type(const struct config *cfg, bool is_console, bool is_tcp);
/* Warns, at start and reload, about a cfg that lets anyone in: trust on TCP. */
void auth_warn_config(const struct config *cfg);

/*
 * Verifying a client. begin() chooses the method from auth_type and what is stored
 * (scram-sha-256 offers only SCRAM, so an md5 hash stored can't log in; md5 with a
 * SCRAM secret stored uses SCRAM, as Postgres does) and appends the first
 * AuthenticationRequest, or returns OK at once for trust. stored == NULL (unknown
 * user) runs the same exchange and fails at the end, so user names can't be probed.
 */
struct auth_client;

/* derived: stored's secret from auth_file_derived_secret(), or NULL to derive it here. */
struct auth_client *auth_client_new(enum auth_type type, const char *user, const char *stored,
				    const struct scram_secret *derived);
/*
 * The client is on TLS and this is its tls-server-end-point binding data: a
 * SCRAM login offers SCRAM-SHA-256-PLUS too. Call before auth_client_begin().
 */
void auth_client_set_channel_binding(struct auth_client *ac, const uint8_t *data, size_t len);
enum auth_step auth_client_begin(struct auth_client *ac, struct evbuffer *out);
/* Feed the body of one 'p' message from the client. */
enum auth_step auth_client_step(struct auth_client *ac, const uint8_t *body, size_t len,
				struct evbuffer *out, const char **err);
/* After AUTH_STEP_OK: fills cred (deep copy; free with server_credentials_free). */
void auth_client_credentials(const struct auth_client *ac, struct server_credentials *cred);
void auth_client_free(struct auth_client *ac);

/*
 * What a server may ask of pgwing logging in to it: server_require_auth and
 * server_scram_max_iterations. A copy, so a login under way outlives a reload.
 */
struct auth_server_policy {
	unsigned methods; /* SERVER_AUTH_* */
	int max_iterations;
};

struct auth_server_policy auth_server_policy_of(const struct config *cfg);
/*
 * Whether pgwing may answer a server's authentication request, body being an
 * 'R' message's (from the int32 code); err says why not. The server login and
 * the health probes (which look before libpq answers) both ask it.
 * is_requested: this login already answered a request, so AuthenticationOk
 * is no "none"; uses_password: an answer to SCRAM derives the key from a
 * plaintext password, which costs the iterations the server asks for.
 */
bool auth_login_allows(const struct auth_server_policy *policy, const uint8_t *body, size_t len,
		       bool is_requested, bool uses_password, char *err, size_t errlen);

/*
 * Logging in to a server. Feed the body of each 'R' message the server sends
 * (starting with the int32 code); responses are appended to out. Returns OK on
 * AuthenticationOk.
 */
struct auth_login;

struct auth_login *auth_login_new(const struct server_credentials *cred,
				  const struct auth_server_policy *policy);
enum auth_step auth_login_step(struct auth_login *al, const uint8_t *body, size_t len,
			       struct evbuffer *out, const char **err);
void auth_login_free(struct auth_login *al);

#endif
