/*
 * The auth file, pgwing verifying its clients, and pgwing logging in to
 * servers on their behalf. Both exchanges are driven one message body at a
 * time and answer by appending whole messages to an evbuffer, so the
 * connection state machines never look inside authentication.
 */
#include "pgwing/common.h"
#include "pgwing/auth.h"
#include "pgwing/log.h"
#include "pgwing/proto.h"
#include "pgwing/quote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/* Auth file */

struct auth_entry {
	char *user;
	char *password;
	size_t order; /* position in the file: of two lines for one user, the later wins */
	/* A plaintext password's SCRAM secret, derived at its first use (see init_scram). */
	struct scram_secret *derived;
};

struct auth_file {
	struct auth_entry *entries; /* sorted by user, one per user */
	size_t count;
};

static void free_secret_string(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* A double-quoted field at *p, where "" stands for one quote; NULL with *err set. */
static char *read_quoted(const char **p, const char **err)
{
	const char *s = *p;
	size_t size;
	char *out;

	if (*s != '"') {
		*err = "expected a double-quoted field";
		return NULL;
	}
	size = strlen(s); /* the content and its NUL fit where its quotes were */
	out = xmalloc(size);
	if (quote_sql_read(&s, out, size) != QUOTE_READ_OK) {
		OPENSSL_cleanse(out, size);
		free(out);
		*err = "unterminated quoted field";
		return NULL;
	}
	*p = s;
	return out;
}

static const char *skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/*
 * One line into *entry. Returns false with *err for a bad line; a comment or
 * blank line gives true with entry->user NULL. Anything after the password is
 * ignored, as PgBouncer does (old files carry a third field).
 */
static bool parse_line(const char *line, struct auth_entry *entry, const char **err)
{
	const char *p = skip_blanks(line);
	struct scram_secret secret;

	memset(entry, 0, sizeof(*entry));
	if (*p == '\0' || *p == ';' || *p == '#')
		return true;
	entry->user = read_quoted(&p, err);
	if (entry->user == NULL)
		return false;
	p = skip_blanks(p);
	if (*p == '\0')
		*err = "missing password";
	else if (entry->user[0] == '\0')
		*err = "empty user name";
	else
		entry->password = read_quoted(&p, err);
	if (entry->password != NULL && password_kind(entry->password) == PASSWORD_SCRAM &&
	    !scram_parse_secret(entry->password, &secret)) {
		*err = "invalid SCRAM secret";
		free_secret_string(entry->password);
		entry->password = NULL;
	}
	if (entry->password == NULL) {
		free(entry->user);
		entry->user = NULL;
		return false;
	}
	return true;
}

static int compare_entries(const void *a, const void *b)
{
	const struct auth_entry *x = a, *y = b;
	int c = strcmp(x->user, y->user);

	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void free_entries(struct auth_entry *entries, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(entries[i].user);
		free_secret_string(entries[i].password);
		if (entries[i].derived != NULL) {
			OPENSSL_cleanse(entries[i].derived, sizeof(*entries[i].derived));
			free(entries[i].derived);
		}
	}
	free(entries);
}

/* Sorted by user and file order; keeps the last line of each user. */
static void sort_and_dedup(struct auth_file *af)
{
	size_t n = 0;

	if (af->count == 0)
		return;
	qsort(af->entries, af->count, sizeof(af->entries[0]), compare_entries);
	for (size_t i = 0; i < af->count; i++) {
		if (i + 1 < af->count &&
		    strcmp(af->entries[i].user, af->entries[i + 1].user) == 0) {
			free(af->entries[i].user);
			free_secret_string(af->entries[i].password);
			continue;
		}
		af->entries[n++] = af->entries[i];
	}
	af->count = n;
}

/*
 * Anyone who can write the auth file can give themselves any user (and the
 * console). A warning, not a refusal: the directory or the group may be meant to
 * be shared, and refusing would stop a running pool at the next reload.
 */
static void warn_if_writable(FILE *f, const char *path)
{
	struct stat st;

	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_IWGRP | S_IWOTH)))
		log_warn("auth file %s is writable by its group or by anyone (mode %04o): they can "
			 "log in as any user; chmod go-w it",
			 path, (unsigned)(st.st_mode & 07777));
}

struct auth_file *auth_file_load(const char *path, char *err, size_t errlen)
{
	struct auth_file *af;
	struct auth_entry entry;
	size_t cap = 0, lineno = 0, linecap = 0;
	const char *msg = NULL;
	char *line = NULL;
	ssize_t n;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	warn_if_writable(f, path);
	af = xcalloc(1, sizeof(*af));
	while ((n = getline(&line, &linecap, f)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!parse_line(line, &entry, &msg))
			break;
		if (entry.user == NULL)
			continue;
		if (af->count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			af->entries = xrealloc(af->entries, cap * sizeof(af->entries[0]));
		}
		entry.order = lineno;
		af->entries[af->count++] = entry;
	}
	if (msg == NULL && ferror(f))
		msg = strerror(errno);
	if (line != NULL)
		OPENSSL_cleanse(line, linecap);
	free(line);
	fclose(f);
	if (msg != NULL) {
		snprintf(err, errlen, "%s:%zu: %s", path, lineno, msg);
		auth_file_free(af);
		return NULL;
	}
	sort_and_dedup(af);
	return af;
}

void auth_file_free(struct auth_file *af)
{
	if (af == NULL)
		return;
	free_entries(af->entries, af->count);
	free(af);
}

static int compare_user(const void *key, const void *entry)
{
	return strcmp(key, ((const struct auth_entry *)entry)->user);
}

static struct auth_entry *find_entry(const struct auth_file *af, const char *user)
{
	if (af->count == 0)
		return NULL;
	return bsearch(user, af->entries, af->count, sizeof(af->entries[0]), compare_user);
}

const char *auth_file_lookup(const struct auth_file *af, const char *user)
{
	const struct auth_entry *e = find_entry(af, user);

	return e != NULL ? e->password : NULL;
}

/*
 * Deriving costs 4096 PBKDF2 rounds, more than the rest of a login; done once
 * per user and auth file (a reload loads a new file, and derives again).
 */
const struct scram_secret *auth_file_derived_secret(struct auth_file *af, const char *user)
{
	struct auth_entry *e = find_entry(af, user);
	uint8_t salt[SCRAM_USER_SALT_LEN];
	struct scram_secret secret;

	if (e == NULL || e->password[0] == '\0' || password_kind(e->password) != PASSWORD_PLAIN)
		return NULL;
	if (e->derived != NULL)
		return e->derived;
	scram_user_salt(user, salt);
	if (!scram_secret_from_password(e->password, salt, sizeof(salt), SCRAM_DEFAULT_ITER,
					&secret))
		return NULL;
	e->derived = xmalloc(sizeof(*e->derived));
	*e->derived = secret;
	OPENSSL_cleanse(&secret, sizeof(secret));
	return e->derived;
}

enum password_kind password_kind(const char *stored)
{
	if (strncmp(stored, SCRAM_SECRET_PREFIX, strlen(SCRAM_SECRET_PREFIX)) == 0)
		return PASSWORD_SCRAM;
	/* Exactly what Postgres recognizes: lowercase hex only. */
	if (strlen(stored) == 35 && strncmp(stored, "md5", 3) == 0 &&
	    strspn(stored + 3, "0123456789abcdef") == 32)
		return PASSWORD_MD5;
	return PASSWORD_PLAIN;
}

/* Compares secrets without leaking how much of them matched. */
static bool secrets_equal(const char *a, const char *b)
{
	size_t len = strlen(a);

	return len == strlen(b) && CRYPTO_memcmp(a, b, len) == 0;
}

/* Credentials */

void server_credentials_free(struct server_credentials *cred)
{
	free(cred->user);
	free_secret_string(cred->password);
	OPENSSL_cleanse(cred, sizeof(*cred));
}

void server_credentials_copy(struct server_credentials *dst, const struct server_credentials *src)
{
	*dst = *src;
	dst->user = src->user != NULL ? xstrdup(src->user) : NULL;
	dst->password = src->password != NULL ? xstrdup(src->password) : NULL;
}

/* Verifying a client */

enum auth_type auth_client_type(const struct config *cfg, bool is_console, bool is_tcp)
{
	if (cfg->auth_type == AUTH_TRUST && is_console && is_tcp && !cfg->admin_trust_tcp)
		return AUTH_SCRAM;
	return cfg->auth_type;
}

void auth_warn_config(const struct config *cfg)
{
	/* An empty listen_addr (blanks and commas only) opens no TCP port. */
	if (cfg->auth_type != AUTH_TRUST ||
	    cfg->listen_addr[strspn(cfg->listen_addr, " \t,")] == '\0')
		return;
	log_warn("auth_type = trust with listen_addr = %s: anyone who reaches these addresses "
		 "logs in as any user without a password%s",
		 cfg->listen_addr,
		 cfg->admin_trust_tcp ? ", and admin_trust_tcp = on gives them the admin console"
				      : "; the admin console still asks for a password");
}

enum client_method {
	METHOD_TRUST,
	METHOD_CLEARTEXT,
	METHOD_MD5,
	METHOD_SCRAM,
};

enum client_state {
	CS_START,
	CS_PASSWORD,     /* waiting for a PasswordMessage (cleartext or md5) */
	CS_SASL_INITIAL, /* waiting for SASLInitialResponse */
	CS_SASL_FIRST,   /* the initial response had no data: client-first comes next */
	CS_SASL_FINAL,   /* waiting for client-final-message */
	CS_DONE,
};

struct auth_client {
	enum client_method method;
	enum client_state state;
	bool is_authenticated;
	char *user;
	char *stored;
	enum password_kind kind;
	/* Set when nothing stored can ever match: the exchange still runs, then fails with this. */
	const char *no_password_reason;
	uint8_t md5_salt[4];
	struct scram_server scram;
	char *client_password; /* plaintext the client sent, once verified */
};

static enum client_method choose_method(enum auth_type type, enum password_kind kind)
{
	switch (type) {
	case AUTH_TRUST:
		return METHOD_TRUST;
	case AUTH_PLAIN:
		return METHOD_CLEARTEXT;
	case AUTH_MD5:
		/* An md5 response can't be checked against a SCRAM secret; PgBouncer uses SCRAM. */
		return kind == PASSWORD_SCRAM ? METHOD_SCRAM : METHOD_MD5;
	case AUTH_SCRAM:
		/*
		 * Only SCRAM, whatever is stored, as Postgres's scram-sha-256: offering md5 for
		 * an md5 entry would downgrade the login and tell a client the user exists.
		 */
		return METHOD_SCRAM;
	}
	return METHOD_SCRAM;
}

/*
 * The SCRAM verifier for this client. Plaintext gets a secret with a salt that is
 * stable per user, like a stored secret's or an unknown user's mock salt.
 */
static void init_scram(struct auth_client *ac, const struct scram_secret *derived)
{
	uint8_t salt[SCRAM_USER_SALT_LEN];
	struct scram_secret secret;
	bool has_secret = false;

	if (ac->no_password_reason == NULL) {
		if (ac->kind == PASSWORD_SCRAM) {
			has_secret = scram_parse_secret(ac->stored, &secret);
		} else if (derived != NULL) {
			secret = *derived;
			has_secret = true;
		} else {
			scram_user_salt(ac->user, salt);
			has_secret = scram_secret_from_password(ac->stored, salt, sizeof(salt),
								SCRAM_DEFAULT_ITER, &secret);
		}
		if (!has_secret)
			ac->no_password_reason =
				"unusable password or SCRAM secret in the auth file";
	}
	scram_server_init(&ac->scram, has_secret ? &secret : NULL, ac->user);
	OPENSSL_cleanse(&secret, sizeof(secret));
}

struct auth_client *auth_client_new(enum auth_type type, const char *user, const char *stored,
				    const struct scram_secret *derived)
{
	struct auth_client *ac = xcalloc(1, sizeof(*ac));

	ac->user = xstrdup(user);
	if (stored == NULL) {
		ac->no_password_reason = "user does not exist";
	} else {
		ac->stored = xstrdup(stored);
		ac->kind = password_kind(stored);
		/* Postgres refuses to store an empty password; never let one authenticate. */
		if (stored[0] == '\0')
			ac->no_password_reason = "empty password in the auth file";
		else if (type == AUTH_SCRAM && ac->kind == PASSWORD_MD5)
			ac->no_password_reason =
				"the auth file holds an md5 hash, which cannot verify SCRAM, and "
				"auth_type = scram-sha-256 offers only SCRAM";
	}
	ac->method = choose_method(type, ac->kind);
	if (ac->method == METHOD_SCRAM)
		init_scram(ac, derived);
	return ac;
}

void auth_client_set_channel_binding(struct auth_client *ac, const uint8_t *data, size_t len)
{
	if (ac->method == METHOD_SCRAM)
		scram_server_set_channel_binding(&ac->scram, data, len);
}

enum auth_step auth_client_begin(struct auth_client *ac, struct evbuffer *out)
{
	/* Each list ends with an empty name; -PLUS only where there is TLS to bind to. */
	static const char mechanisms[] = SCRAM_MECHANISM "\0";
	static const char plus_mechanisms[] = SCRAM_PLUS_MECHANISM "\0" SCRAM_MECHANISM "\0";

	switch (ac->method) {
	case METHOD_TRUST:
		ac->state = CS_DONE;
		ac->is_authenticated = true;
		return AUTH_STEP_OK;
	case METHOD_CLEARTEXT:
		proto_put_auth(out, AUTH_REQ_PASSWORD, NULL, 0);
		ac->state = CS_PASSWORD;
		return AUTH_STEP_CONTINUE;
	case METHOD_MD5:
		if (RAND_bytes(ac->md5_salt, sizeof(ac->md5_salt)) != 1) {
			ac->state = CS_DONE;
			return AUTH_STEP_FAILED;
		}
		proto_put_auth(out, AUTH_REQ_MD5, ac->md5_salt, sizeof(ac->md5_salt));
		ac->state = CS_PASSWORD;
		return AUTH_STEP_CONTINUE;
	case METHOD_SCRAM:
		if (ac->scram.cbind_len > 0)
			proto_put_auth(out, AUTH_REQ_SASL, plus_mechanisms,
				       sizeof(plus_mechanisms));
		else
			proto_put_auth(out, AUTH_REQ_SASL, mechanisms, sizeof(mechanisms));
		ac->state = CS_SASL_INITIAL;
		return AUTH_STEP_CONTINUE;
	}
	return AUTH_STEP_FAILED;
}

static bool verify_cleartext(struct auth_client *ac, const char *password, const char **err)
{
	struct scram_secret secret, derived;
	char hash[36];
	bool ok = false;

	if (ac->no_password_reason != NULL) {
		*err = ac->no_password_reason;
		return false;
	}
	switch (ac->kind) {
	case PASSWORD_PLAIN:
		ok = secrets_equal(password, ac->stored);
		break;
	case PASSWORD_MD5:
		ok = md5_password_hash(password, ac->user, hash) && secrets_equal(hash, ac->stored);
		break;
	case PASSWORD_SCRAM:
		ok = scram_parse_secret(ac->stored, &secret) &&
		     scram_secret_from_password(password, secret.salt, secret.salt_len,
						secret.iterations, &derived) &&
		     CRYPTO_memcmp(derived.stored_key, secret.stored_key, SCRAM_KEY_LEN) == 0 &&
		     CRYPTO_memcmp(derived.server_key, secret.server_key, SCRAM_KEY_LEN) == 0;
		OPENSSL_cleanse(&derived, sizeof(derived));
		break;
	}
	if (!ok)
		*err = "password does not match";
	return ok;
}

static bool verify_md5(struct auth_client *ac, const char *response, const char **err)
{
	char hash[36], expected[36];
	const char *stored_hash = ac->stored;

	if (ac->no_password_reason != NULL) {
		*err = ac->no_password_reason;
		return false;
	}
	if (ac->kind == PASSWORD_PLAIN) {
		if (!md5_password_hash(ac->stored, ac->user, hash)) {
			*err = "MD5 is not available";
			return false;
		}
		stored_hash = hash;
	}
	if (!md5_salted_response(stored_hash, ac->md5_salt, expected)) {
		*err = "MD5 is not available";
		return false;
	}
	if (!secrets_equal(response, expected)) {
		*err = "password does not match";
		return false;
	}
	return true;
}

static enum auth_step client_password(struct auth_client *ac, const uint8_t *body, size_t len,
				      const char **err)
{
	const char *password = (const char *)body;

	/* One NUL-terminated string filling the whole body. */
	if (len == 0 || memchr(body, '\0', len) != body + len - 1) {
		*err = "malformed password message";
		return AUTH_STEP_FAILED;
	}
	if (password[0] == '\0') {
		*err = "empty password";
		return AUTH_STEP_FAILED;
	}
	if (ac->method == METHOD_CLEARTEXT) {
		if (!verify_cleartext(ac, password, err))
			return AUTH_STEP_FAILED;
		ac->client_password = xstrdup(password);
	} else if (!verify_md5(ac, password, err)) {
		return AUTH_STEP_FAILED;
	}
	ac->is_authenticated = true;
	return AUTH_STEP_OK;
}

static enum auth_step client_sasl_first(struct auth_client *ac, const uint8_t *data, size_t len,
					struct evbuffer *out, const char **err)
{
	char *server_first = scram_server_first(&ac->scram, (const char *)data, len, err);

	if (server_first == NULL)
		return AUTH_STEP_FAILED;
	proto_put_auth(out, AUTH_REQ_SASL_CONTINUE, server_first, strlen(server_first));
	free(server_first);
	ac->state = CS_SASL_FINAL;
	return AUTH_STEP_CONTINUE;
}

/* SASLInitialResponse: mechanism name, int32 length (-1: no data), data. */
static enum auth_step client_sasl_initial(struct auth_client *ac, const uint8_t *body, size_t len,
					  struct evbuffer *out, const char **err)
{
	struct proto_reader r;
	const char *mechanism;
	int32_t data_len;

	proto_reader_init(&r, body, len);
	mechanism = proto_read_cstring(&r);
	data_len = (int32_t)proto_read_int32(&r);
	if (r.has_failed || (data_len != -1 && (size_t)data_len != proto_reader_remaining(&r)) ||
	    (data_len == -1 && proto_reader_remaining(&r) != 0)) {
		*err = "malformed SASLInitialResponse";
		return AUTH_STEP_FAILED;
	}
	if (ac->scram.cbind_len > 0 && strcmp(mechanism, SCRAM_PLUS_MECHANISM) == 0) {
		ac->scram.is_plus = true;
	} else if (strcmp(mechanism, SCRAM_MECHANISM) != 0) {
		*err = "client selected an unsupported SASL mechanism";
		return AUTH_STEP_FAILED;
	}
	if (data_len == -1) {
		/* As Postgres does: an empty challenge asks for client-first in a SASLResponse. */
		proto_put_auth(out, AUTH_REQ_SASL_CONTINUE, NULL, 0);
		ac->state = CS_SASL_FIRST;
		return AUTH_STEP_CONTINUE;
	}
	return client_sasl_first(ac, r.pos, (size_t)data_len, out, err);
}

static enum auth_step client_sasl_final(struct auth_client *ac, const uint8_t *body, size_t len,
					struct evbuffer *out, const char **err)
{
	char *server_final = scram_server_final(&ac->scram, (const char *)body, len, err);

	if (server_final == NULL) {
		if (ac->no_password_reason != NULL)
			*err = ac->no_password_reason;
		return AUTH_STEP_FAILED;
	}
	proto_put_auth(out, AUTH_REQ_SASL_FINAL, server_final, strlen(server_final));
	free(server_final);
	ac->is_authenticated = true;
	return AUTH_STEP_OK;
}

enum auth_step auth_client_step(struct auth_client *ac, const uint8_t *body, size_t len,
				struct evbuffer *out, const char **err)
{
	enum client_state state = ac->state;

	/* Whatever happens, this is the only message this state accepts. */
	ac->state = CS_DONE;
	switch (state) {
	case CS_PASSWORD:
		return client_password(ac, body, len, err);
	case CS_SASL_INITIAL:
		return client_sasl_initial(ac, body, len, out, err);
	case CS_SASL_FIRST:
		return client_sasl_first(ac, body, len, out, err);
	case CS_SASL_FINAL:
		return client_sasl_final(ac, body, len, out, err);
	case CS_START:
	case CS_DONE:
		break;
	}
	*err = "unexpected message during authentication";
	return AUTH_STEP_FAILED;
}

void auth_client_credentials(const struct auth_client *ac, struct server_credentials *cred)
{
	const struct scram_secret *secret = &ac->scram.secret;

	memset(cred, 0, sizeof(*cred));
	cred->user = xstrdup(ac->user);
	if (ac->client_password != NULL)
		cred->password = xstrdup(ac->client_password);
	else if (ac->stored != NULL && ac->kind != PASSWORD_SCRAM && ac->stored[0] != '\0')
		cred->password = xstrdup(ac->stored);
	if (ac->scram.has_client_key) {
		cred->has_scram_keys = true;
		memcpy(cred->client_key, ac->scram.client_key, SCRAM_KEY_LEN);
		memcpy(cred->server_key, secret->server_key, SCRAM_KEY_LEN);
		memcpy(cred->scram_salt, secret->salt, secret->salt_len);
		cred->scram_salt_len = secret->salt_len;
		cred->scram_iterations = secret->iterations;
	}
}

void auth_client_free(struct auth_client *ac)
{
	if (ac == NULL)
		return;
	free(ac->user);
	free_secret_string(ac->stored);
	free_secret_string(ac->client_password);
	scram_server_free(&ac->scram);
	OPENSSL_cleanse(ac, sizeof(*ac));
	free(ac);
}

/* Logging in to a server */

enum login_state {
	LS_START,
	LS_PASSWORD_SENT, /* cleartext or md5 response sent, waiting for AuthenticationOk */
	LS_SASL_CONTINUE, /* sent client-first, waiting for server-first */
	LS_SASL_FINAL,    /* sent client-final, waiting for server-final */
	LS_SASL_DONE,     /* server verified, waiting for AuthenticationOk */
	LS_DONE,
};

struct auth_login {
	struct server_credentials cred;
	struct auth_server_policy policy;
	struct scram_client scram;
	enum login_state state;
	char errbuf[160];
};

struct auth_login *auth_login_new(const struct server_credentials *cred,
				  const struct auth_server_policy *policy)
{
	struct auth_login *al = xcalloc(1, sizeof(*al));

	server_credentials_copy(&al->cred, cred);
	al->policy = *policy;
	return al;
}

/* The plaintext password, if that is what we hold (not a hash). */
static const char *login_plaintext(const struct auth_login *al)
{
	const char *p = al->cred.password;

	return p != NULL && password_kind(p) == PASSWORD_PLAIN ? p : NULL;
}

static enum auth_step login_cleartext(struct auth_login *al, struct proto_reader *r,
				      struct evbuffer *out, const char **err)
{
	const char *password = login_plaintext(al);

	if (proto_reader_remaining(r) != 0) {
		*err = "malformed AuthenticationCleartextPassword from server";
		return AUTH_STEP_FAILED;
	}
	if (password == NULL) {
		*err = al->cred.password != NULL
			       ? "server requested a cleartext password, but pgwing has only a hash"
			       : "server requested a password, but pgwing has none for this user";
		return AUTH_STEP_FAILED;
	}
	proto_put_password(out, password);
	al->state = LS_PASSWORD_SENT;
	return AUTH_STEP_CONTINUE;
}

static enum auth_step login_md5(struct auth_login *al, struct proto_reader *r, struct evbuffer *out,
				const char **err)
{
	const uint8_t *salt = proto_read_bytes(r, 4);
	const char *password = al->cred.password;
	char hash[36], response[36];

	if (salt == NULL || proto_reader_remaining(r) != 0) {
		*err = "malformed AuthenticationMD5Password from server";
		return AUTH_STEP_FAILED;
	}
	if (password == NULL || password_kind(password) == PASSWORD_SCRAM) {
		*err = "server requested md5, but pgwing has no password or md5 hash for this user";
		return AUTH_STEP_FAILED;
	}
	if (password_kind(password) == PASSWORD_PLAIN) {
		if (!md5_password_hash(password, al->cred.user, hash)) {
			*err = "MD5 is not available";
			return AUTH_STEP_FAILED;
		}
		password = hash;
	}
	if (!md5_salted_response(password, salt, response)) {
		*err = "MD5 is not available";
		return AUTH_STEP_FAILED;
	}
	proto_put_password(out, response);
	al->state = LS_PASSWORD_SENT;
	return AUTH_STEP_CONTINUE;
}

/* AuthenticationSASL: a list of mechanism names ending with an empty one. */
static enum auth_step login_sasl(struct auth_login *al, struct proto_reader *r,
				 struct evbuffer *out, const char **err)
{
	const char *password = login_plaintext(al);
	bool has_scram = false;
	const char *name;
	char *first;

	while ((name = proto_read_cstring(r)) != NULL && name[0] != '\0') {
		/* SCRAM-SHA-256-PLUS needs channel binding, which pgwing does not do. */
		if (strcmp(name, SCRAM_MECHANISM) == 0)
			has_scram = true;
	}
	if (name == NULL || proto_reader_remaining(r) != 0) {
		*err = "malformed AuthenticationSASL from server";
		return AUTH_STEP_FAILED;
	}
	if (!has_scram) {
		*err = "server offers no SASL mechanism pgwing supports";
		return AUTH_STEP_FAILED;
	}
	if (password != NULL) {
		scram_client_init_password(&al->scram, password);
	} else if (al->cred.has_scram_keys) {
		scram_client_init_keys(&al->scram, al->cred.client_key, al->cred.server_key);
	} else {
		*err = "server requested SCRAM, but pgwing has no password or SCRAM keys for this "
		       "user";
		return AUTH_STEP_FAILED;
	}
	first = scram_client_first(&al->scram);
	if (first == NULL) {
		*err = "could not generate a SCRAM nonce";
		return AUTH_STEP_FAILED;
	}
	proto_put_sasl_initial(out, SCRAM_MECHANISM, first, strlen(first));
	free(first);
	al->state = LS_SASL_CONTINUE;
	return AUTH_STEP_CONTINUE;
}

static enum auth_step login_sasl_continue(struct auth_login *al, struct proto_reader *r,
					  struct evbuffer *out, const char **err)
{
	size_t len = proto_reader_remaining(r);
	const struct scram_client *sc = &al->scram;
	char *final;

	final = scram_client_final(&al->scram, (const char *)r->pos, len, err);
	if (final == NULL)
		return AUTH_STEP_FAILED;
	/* Recovered keys are only good for the very secret the client proved itself against. */
	if (sc->has_keys && (sc->iterations != al->cred.scram_iterations ||
			     sc->salt_len != al->cred.scram_salt_len ||
			     memcmp(sc->salt, al->cred.scram_salt, sc->salt_len) != 0)) {
		free(final);
		*err = "server's SCRAM secret differs from the auth file's";
		return AUTH_STEP_FAILED;
	}
	proto_put_sasl_response(out, final, strlen(final));
	free(final);
	al->state = LS_SASL_FINAL;
	return AUTH_STEP_CONTINUE;
}

static const char *auth_method_name(uint32_t code)
{
	/* AuthenticationRequest codes pgwing never speaks. */
	switch (code) {
	case 2:
		return "Kerberos V5";
	case 6:
		return "SCM credentials";
	case 7:
	case 8:
		return "GSSAPI";
	case 9:
		return "SSPI";
	default:
		return "unknown";
	}
}

struct auth_server_policy auth_server_policy_of(const struct config *cfg)
{
	return (struct auth_server_policy){
		.methods = cfg->server_auth_methods,
		.max_iterations = cfg->server_scram_max_iterations,
	};
}

/* SCRAM's server-first-message: a password costs the iterations it asks for, on the loop. */
static bool login_allows_iterations(const struct auth_server_policy *policy, struct proto_reader *r,
				    char *err, size_t errlen)
{
	int iterations;

	if (!scram_server_first_iterations((const char *)r->pos, proto_reader_remaining(r),
					   &iterations)) {
		snprintf(err, errlen, "malformed SCRAM server-first-message");
		return false;
	}
	if (iterations <= policy->max_iterations)
		return true;
	snprintf(err, errlen,
		 "server asked for %d SCRAM iterations, more than server_scram_max_iterations "
		 "(%d)",
		 iterations, policy->max_iterations);
	return false;
}

bool auth_login_allows(const struct auth_server_policy *policy, const uint8_t *body, size_t len,
		       bool is_requested, bool uses_password, char *err, size_t errlen)
{
	struct proto_reader r;
	const char *what;
	unsigned method;
	uint32_t code;

	proto_reader_init(&r, body, len);
	code = proto_read_int32(&r);
	if (r.has_failed) {
		snprintf(err, errlen, "malformed authentication request from server");
		return false;
	}
	switch (code) {
	case AUTH_REQ_OK:
		if (is_requested)
			return true;
		method = SERVER_AUTH_NONE, what = "asked for no authentication";
		break;
	case AUTH_REQ_PASSWORD:
		method = SERVER_AUTH_PASSWORD, what = "asked for the password in clear";
		break;
	case AUTH_REQ_MD5:
		method = SERVER_AUTH_MD5, what = "asked for md5";
		break;
	case AUTH_REQ_SASL:
		method = SERVER_AUTH_SCRAM, what = "asked for SCRAM";
		break;
	case AUTH_REQ_SASL_CONTINUE:
		return !uses_password || login_allows_iterations(policy, &r, err, errlen);
	case AUTH_REQ_SASL_FINAL:
		return true;
	default:
		snprintf(err, errlen,
			 "server requested %s authentication (code %u), which pgwing does not "
			 "support",
			 auth_method_name(code), code);
		return false;
	}
	if (policy->methods & method)
		return true;
	snprintf(err, errlen, "server %s, which server_require_auth does not allow", what);
	return false;
}

enum auth_step auth_login_step(struct auth_login *al, const uint8_t *body, size_t len,
			       struct evbuffer *out, const char **err)
{
	enum login_state state = al->state;
	struct proto_reader r;
	uint32_t code;

	/* Keys recovered from the client's own SCRAM login derive nothing. */
	if (!auth_login_allows(&al->policy, body, len, state != LS_START,
			       login_plaintext(al) != NULL, al->errbuf, sizeof(al->errbuf))) {
		al->state = LS_DONE;
		*err = al->errbuf;
		return AUTH_STEP_FAILED;
	}
	proto_reader_init(&r, body, len);
	code = proto_read_int32(&r);
	/* Any failure ends the exchange; a success moves the state on below. */
	al->state = LS_DONE;
	switch (code) {
	case AUTH_REQ_OK:
		/* Before SASL is done, Ok would mean the server never proved it knows the secret.
		 */
		if (state != LS_START && state != LS_PASSWORD_SENT && state != LS_SASL_DONE)
			break;
		if (proto_reader_remaining(&r) != 0) {
			*err = "malformed AuthenticationOk from server";
			return AUTH_STEP_FAILED;
		}
		return AUTH_STEP_OK;
	case AUTH_REQ_PASSWORD:
		if (state != LS_START)
			break;
		return login_cleartext(al, &r, out, err);
	case AUTH_REQ_MD5:
		if (state != LS_START)
			break;
		return login_md5(al, &r, out, err);
	case AUTH_REQ_SASL:
		if (state != LS_START)
			break;
		return login_sasl(al, &r, out, err);
	case AUTH_REQ_SASL_CONTINUE:
		if (state != LS_SASL_CONTINUE)
			break;
		return login_sasl_continue(al, &r, out, err);
	case AUTH_REQ_SASL_FINAL:
		if (state != LS_SASL_FINAL)
			break;
		if (!scram_client_verify_server(&al->scram, (const char *)r.pos,
						proto_reader_remaining(&r), err))
			return AUTH_STEP_FAILED;
		al->state = LS_SASL_DONE;
		return AUTH_STEP_CONTINUE;
	}
	*err = "server sent an authentication request out of order";
	return AUTH_STEP_FAILED;
}

void auth_login_free(struct auth_login *al)
{
	if (al == NULL)
		return;
	server_credentials_free(&al->cred);
	scram_client_free(&al->scram);
	OPENSSL_cleanse(al, sizeof(*al));
	free(al);
}
