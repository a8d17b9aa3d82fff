/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as Postgres uses it: no authzid, username
 * empty in the messages (Postgres takes the user from the startup packet).
 * Verifying clients, SCRAM-SHA-256-PLUS with tls-server-end-point binding
 * (RFC 5929) when the client is on TLS; logging in to servers, no binding
 * ("n,," / "biws"). Pure code over strings; crypto by OpenSSL.
 */
#ifndef PGWING_SCRAM_H
#define PGWING_SCRAM_H

#include "pgwing/common.h"

#define SCRAM_KEY_LEN        32 /* SHA-256 */
#define SCRAM_SALT_MAX       64
#define SCRAM_NONCE_MAX      128
#define SCRAM_DEFAULT_ITER   4096
#define SCRAM_MECHANISM      "SCRAM-SHA-256"
#define SCRAM_PLUS_MECHANISM SCRAM_MECHANISM "-PLUS"
#define SCRAM_CBIND_MAX      64 /* a tls-server-end-point hash: EVP_MAX_MD_SIZE */
#define SCRAM_USER_SALT_LEN  16

/* A stored verifier: "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". */
#define SCRAM_SECRET_PREFIX SCRAM_MECHANISM "$"
struct scram_secret {
	int iterations;
	uint8_t salt[SCRAM_SALT_MAX];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

bool scram_parse_secret(const char *text, struct scram_secret *out);
/* Derive a secret from a plaintext password (used when the auth file holds plaintext). */
bool scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
				int iterations, struct scram_secret *out);
/* Format as the text form above; buf of at least 256 bytes. */
void scram_format_secret(const struct scram_secret *s, char *buf, size_t buflen);

/*
 * A salt derived from the user name with a per-process random key: stable while
 * the process lives, unpredictable to clients. Unknown users (the mock exchange)
 * and users stored in plaintext get such a salt, so they look alike to a client.
 */
void scram_user_salt(const char *user, uint8_t salt[SCRAM_USER_SALT_LEN]);

/*
 * SASLprep (RFC 4013) of a password, as Postgres's pg_saslprep: a malloc'd copy,
 * normalised; the input unchanged when it is ASCII, not valid UTF-8, or holds a
 * prohibited character (Postgres falls back to the raw bytes there, and so must
 * we to derive the same keys). scram_salted_password applies it.
 */
char *scram_saslprep(const char *password);

/* Hi(), ClientKey, StoredKey, ServerKey: exposed for the RFC 7677 test vector. */
bool scram_salted_password(const char *password, const uint8_t *salt, size_t salt_len,
			   int iterations, uint8_t out[SCRAM_KEY_LEN]);

/*
 * Server side: pgwing verifying a client. Feed the client's messages in order.
 * On success the ClientKey recovered from the proof is in client_key, which lets
 * pgwing log in to a server that has the same secret without any plaintext.
 */
struct scram_server {
	struct scram_secret secret;
	bool is_mock; /* unknown user: run the exchange to the end, then fail */
	/* tls-server-end-point of the client's TLS connection; cbind_len 0: not on TLS. */
	uint8_t cbind_data[SCRAM_CBIND_MAX];
	size_t cbind_len;
	bool is_plus; /* the client chose SCRAM-SHA-256-PLUS: it must bind */
	/* The gs2 header ("n,,", "y,,", "p=tls-server-end-point,,"): c= must repeat it. */
	char gs2_header[32];
	size_t gs2_len;
	char client_nonce[SCRAM_NONCE_MAX + 1];
	char server_nonce[SCRAM_NONCE_MAX + 1]; /* combined nonce (client + ours) */
	char *client_first_bare;
	char *server_first;
	uint8_t client_key[SCRAM_KEY_LEN];
	bool has_client_key;
};

/* secret == NULL starts a mock exchange for user (deterministic fake salt), which always fails. */
void scram_server_init(struct scram_server *st, const struct scram_secret *secret,
		       const char *user);
/*
 * The client is on TLS: SCRAM-SHA-256-PLUS may be offered, and a client that
 * could bind but says we can't ('y') is refused as a downgrade. After init.
 */
void scram_server_set_channel_binding(struct scram_server *st, const uint8_t *data, size_t len);
/* Parses client-first-message; on success returns a malloc'd server-first-message. */
char *scram_server_first(struct scram_server *st, const char *client_first, size_t len,
			 const char **err);
/*
 * Parses client-final-message and verifies the proof. On success returns a malloc'd
 * server-final-message ("v=..."); on a wrong proof returns NULL with *err set.
 */
char *scram_server_final(struct scram_server *st, const char *client_final, size_t len,
			 const char **err);
void scram_server_free(struct scram_server *st);

/*
 * Client side: pgwing logging in to a server. Credentials are either a plaintext
 * password or the (ClientKey, ServerKey) pair recovered from the client's login.
 */
struct scram_client {
	char *password; /* NULL when keys are used */
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
	bool has_keys;
	char client_nonce[SCRAM_NONCE_MAX + 1];
	char *client_first_bare;
	char *server_first;
	uint8_t server_signature[SCRAM_KEY_LEN];
	/* From server-first-message; keys only fit a secret with this salt and count. */
	uint8_t salt[SCRAM_SALT_MAX];
	size_t salt_len;
	int iterations;
};

void scram_client_init_password(struct scram_client *st, const char *password);
void scram_client_init_keys(struct scram_client *st, const uint8_t client_key[SCRAM_KEY_LEN],
			    const uint8_t server_key[SCRAM_KEY_LEN]);
/* Returns a malloc'd client-first-message ("n,,n=,r=<nonce>"), or NULL if the RNG fails. */
char *scram_client_first(struct scram_client *st);
/* Parses server-first-message; returns a malloc'd client-final-message with the proof. */
char *scram_client_final(struct scram_client *st, const char *server_first, size_t len,
			 const char **err);
/*
 * The iteration count a server-first-message asks for, read before anything is
 * derived, so that pgwing can refuse a costly login (its own, or a libpq
 * probe's) up front. Counts beyond INT_MAX read as INT_MAX; false when the
 * message does not start with well-formed r=, s= and i= attributes.
 */
bool scram_server_first_iterations(const char *server_first, size_t len, int *iterations);
/* Verifies the server's signature in server-final-message. */
bool scram_client_verify_server(struct scram_client *st, const char *server_final, size_t len,
				const char **err);
void scram_client_free(struct scram_client *st);

/*
 * md5 as Postgres does it: "md5" + hex(md5(password || user)); out of 36 bytes incl. NUL.
 * Both return false when MD5 is unavailable (a FIPS provider), so a failure can't match.
 */
bool md5_password_hash(const char *password, const char *user, char out[36]);
/* The response to AuthenticationMD5Password: "md5" + hex(md5(hex-part-of-hash || salt)). */
bool md5_salted_response(const char *md5_hash, const uint8_t salt[4], char out[36]);

#endif
