/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as Postgres speaks it, both sides, and
 * the md5 password helpers. Every message parser works on (pointer, length)
 * spans of untrusted bytes and fails cleanly on anything unexpected: these
 * functions see input before the peer is authenticated.
 */
#include "pgwing/common.h"
#include "pgwing/scram.h"
#include "pgwing/log.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stringprep.h>

/* Postgres uses 18 random bytes: 24 base64 characters, no padding. */
#define SCRAM_RAW_NONCE_LEN 18
/* Far above any sane setting; stops a hostile server or file from pinning a CPU. */
#define SCRAM_ITER_MAX      10000000

#define B64_LEN(n) (((n) + 2) / 3 * 4)

struct span {
	const char *ptr;
	size_t len;
};

/*
 * SHA-256 and HMAC-SHA-256 fail only when OpenSSL can't allocate or has no
 * usable provider; like xmalloc, treat that as fatal rather than threading an
 * error through every key derivation.
 */
static void crypto_fatal(const char *what)
{
	log_error("OpenSSL %s failed", what);
	abort();
}

static void sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	if (EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL) != 1)
		crypto_fatal("SHA-256");
}

/* One digest over two pieces; false only if OpenSSL fails or, for MD5, forbids it. */
static bool digest_two(const EVP_MD *md, const void *a, size_t alen, const void *b, size_t blen,
		       uint8_t *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
		  EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
		  EVP_DigestFinal_ex(ctx, out, NULL) == 1;

	EVP_MD_CTX_free(ctx);
	return ok;
}

static void hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
			uint8_t out[SCRAM_KEY_LEN])
{
	if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out, NULL) == NULL)
		crypto_fatal("HMAC-SHA-256");
}

static void xor_keys(const uint8_t a[SCRAM_KEY_LEN], const uint8_t b[SCRAM_KEY_LEN],
		     uint8_t out[SCRAM_KEY_LEN])
{
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		out[i] = a[i] ^ b[i];
}

static char *format_message(const char *fmt, ...) PRINTF_LIKE(1, 2);

static char *format_message(const char *fmt, ...)
{
	va_list ap;
	int len;
	char *s;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = xmalloc((size_t)len + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)len + 1, fmt, ap);
	va_end(ap);
	return s;
}

static char *span_dup(const char *ptr, size_t len)
{
	char *s = xmalloc(len + 1);

	memcpy(s, ptr, len);
	s[len] = '\0';
	return s;
}

static bool span_equals(struct span s, const char *str)
{
	return s.len == strlen(str) && memcmp(s.ptr, str, s.len) == 0;
}

/* dst must hold B64_LEN(len) + 1 bytes. */
static void b64_encode(char *dst, const uint8_t *src, size_t len)
{
	EVP_EncodeBlock((unsigned char *)dst, src, (int)len);
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict base64: whole quads, padding only at the very end, no whitespace.
 * (EVP_DecodeBlock skips whitespace and reports padding as data.) Fails if the
 * text decodes to more than outmax bytes.
 */
static bool b64_decode(const char *src, size_t len, uint8_t *out, size_t outmax, size_t *outlen)
{
	size_t pad = 0, n = 0;
	uint32_t acc = 0;

	if (len % 4 != 0)
		return false;
	if (len > 0 && src[len - 1] == '=')
		pad = src[len - 2] == '=' ? 2 : 1;
	if (len / 4 * 3 - pad > outmax)
		return false;
	for (size_t i = 0; i < len - pad; i++) {
		int v = b64_value(src[i]);

		if (v < 0)
			return false;
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 == 3) {
			out[n++] = (uint8_t)(acc >> 16);
			out[n++] = (uint8_t)(acc >> 8);
			out[n++] = (uint8_t)acc;
			acc = 0;
		}
	}
	if (pad == 1) {
		out[n++] = (uint8_t)(acc >> 10);
		out[n++] = (uint8_t)(acc >> 2);
	} else if (pad == 2) {
		out[n++] = (uint8_t)(acc >> 4);
	}
	*outlen = n;
	return true;
}

static bool b64_decode_key(const char *src, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	size_t n;

	return b64_decode(src, len, out, SCRAM_KEY_LEN, &n) && n == SCRAM_KEY_LEN;
}

static bool b64_decode_salt(const char *src, size_t len, uint8_t out[SCRAM_SALT_MAX],
			    size_t *outlen)
{
	return b64_decode(src, len, out, SCRAM_SALT_MAX, outlen) && *outlen > 0;
}

/*
 * Decimal digits only, no sign or leading zero; a count beyond INT_MAX reads
 * as INT_MAX, so a caller can still say how far over its limit it is.
 */
static bool read_count(const char *s, size_t len, int *out)
{
	int64_t value = 0;

	if (len == 0 || s[0] == '0')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		value = value * 10 + (s[i] - '0');
		if (value > INT_MAX)
			value = INT_MAX;
	}
	*out = (int)value;
	return true;
}

/* A count within [1, SCRAM_ITER_MAX]. */
static bool parse_iterations(const char *s, size_t len, int *out)
{
	return read_count(s, len, out) && *out <= SCRAM_ITER_MAX;
}

/* A cursor over an "a=value,b=value" attribute list. */
struct attr_reader {
	const char *pos;
	const char *end;
	bool is_first;
};

static void attr_reader_init(struct attr_reader *r, const char *start, const char *end)
{
	r->pos = start;
	r->end = end;
	r->is_first = true;
}

/* The next attribute: a letter, '=', and a value up to the next comma or the end. */
static bool read_attr(struct attr_reader *r, char *name, struct span *value)
{
	const char *comma;
	char c;

	if (!r->is_first) {
		if (r->pos == r->end || *r->pos != ',')
			return false;
		r->pos++;
	}
	if (r->end - r->pos < 2 || r->pos[1] != '=')
		return false;
	c = r->pos[0];
	if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
		return false;
	*name = c;
	value->ptr = r->pos + 2;
	comma = memchr(value->ptr, ',', (size_t)(r->end - value->ptr));
	value->len = (size_t)((comma != NULL ? comma : r->end) - value->ptr);
	r->pos = value->ptr + value->len;
	r->is_first = false;
	return true;
}

static bool expect_attr(struct attr_reader *r, char name, struct span *value)
{
	char got;

	return read_attr(r, &got, value) && got == name;
}

/* Extensions may follow the attributes we need; they are syntax-checked and ignored. */
static bool skip_extensions(struct attr_reader *r)
{
	struct span value;
	char name;

	while (r->pos != r->end) {
		if (!read_attr(r, &name, &value) || name == 'm')
			return false;
	}
	return true;
}

/* RFC 5802: printable ASCII except ','. */
static bool is_valid_nonce(struct span s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		if (s.ptr[i] < 0x21 || s.ptr[i] > 0x7e || s.ptr[i] == ',')
			return false;
	}
	return true;
}

/* SCRAM text never contains a NUL byte; one would cut the strings we keep short. */
static bool has_nul(const char *msg, size_t len)
{
	return memchr(msg, '\0', len) != NULL;
}

static bool random_nonce(char out[B64_LEN(SCRAM_RAW_NONCE_LEN) + 1])
{
	uint8_t raw[SCRAM_RAW_NONCE_LEN];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return false;
	b64_encode(out, raw, sizeof(raw));
	return true;
}

/* ClientKey and ServerKey from SaltedPassword. */
static void derive_keys(const uint8_t salted[SCRAM_KEY_LEN], uint8_t client_key[SCRAM_KEY_LEN],
			uint8_t server_key[SCRAM_KEY_LEN])
{
	hmac_sha256(salted, SCRAM_KEY_LEN, "Client Key", strlen("Client Key"), client_key);
	hmac_sha256(salted, SCRAM_KEY_LEN, "Server Key", strlen("Server Key"), server_key);
}

/* HMAC(key, AuthMessage), AuthMessage = client-first-bare "," server-first ","
 * client-final-without-proof. */
static void auth_message_hmac(const uint8_t key[SCRAM_KEY_LEN], const char *client_first_bare,
			      const char *server_first, const char *final_without_proof,
			      size_t final_len, uint8_t out[SCRAM_KEY_LEN])
{
	char *msg = format_message("%s,%s,%.*s", client_first_bare, server_first, (int)final_len,
				   final_without_proof);

	hmac_sha256(key, SCRAM_KEY_LEN, msg, strlen(msg), out);
	free(msg);
}

char *scram_saslprep(const char *password)
{
	char *prepared = NULL;
	const char *p;

	/* ASCII maps to itself (or is prohibited, which keeps it as it is): Postgres skips it. */
	for (p = password; *p != '\0' && !(*p & 0x80); p++)
		;
	if (*p == '\0')
		return xstrdup(password);
	/* Flags 0: unassigned code points allowed, as Postgres allows them in stored passwords. */
	if (stringprep_profile(password, &prepared, "SASLprep", 0) != STRINGPREP_OK) {
		/* Invalid UTF-8 or a prohibited character: the raw bytes, as Postgres uses. */
		free(prepared);
		return xstrdup(password);
	}
	return prepared;
}

/* Hi() of the SASLprep'ed password, as Postgres derives it on both sides. */
bool scram_salted_password(const char *password, const uint8_t *salt, size_t salt_len,
			   int iterations, uint8_t out[SCRAM_KEY_LEN])
{
	char *prepared;
	size_t len;
	bool ok;

	if (iterations < 1 || iterations > SCRAM_ITER_MAX || salt_len > INT_MAX)
		return false;
	prepared = scram_saslprep(password);
	len = strlen(prepared);
	ok = len <= INT_MAX && PKCS5_PBKDF2_HMAC(prepared, (int)len, salt, (int)salt_len,
						 iterations, EVP_sha256(), SCRAM_KEY_LEN, out) == 1;
	OPENSSL_cleanse(prepared, len);
	free(prepared);
	return ok;
}

/*
 * Logging in to a server with a plaintext password costs the server's PBKDF2
 * rounds (4096 by default, milliseconds of the one event loop) for every new
 * server connection, though a role's salt and count change only with its
 * password: a pool refilling after failover, a wake or an idle timeout would
 * stall every client meanwhile. A few results are kept, found by a digest of
 * everything that went in; a miss derives again.
 */
#define SALTED_CACHE_SIZE 16

static struct {
	uint8_t inputs[SCRAM_KEY_LEN]; /* SHA-256 over count, salt length, salt, password */
	uint8_t salted[SCRAM_KEY_LEN];
	bool is_set;
} salted_cache[SALTED_CACHE_SIZE];
static size_t salted_cache_next;
_Static_assert(SCRAM_SALT_MAX <= UINT8_MAX, "the salt's length is digested as one byte");

static void digest_salted_inputs(const char *password, const uint8_t *salt, size_t salt_len,
				 int iterations, uint8_t out[SCRAM_KEY_LEN])
{
	uint8_t head[5 + SCRAM_SALT_MAX] = {(uint8_t)(iterations >> 24),
					    (uint8_t)(iterations >> 16), (uint8_t)(iterations >> 8),
					    (uint8_t)iterations, (uint8_t)salt_len};

	memcpy(head + 5, salt, salt_len);
	if (!digest_two(EVP_sha256(), head, 5 + salt_len, password, strlen(password), out))
		crypto_fatal("SHA-256");
}

static bool salted_password_cached(const char *password, const uint8_t *salt, size_t salt_len,
				   int iterations, uint8_t out[SCRAM_KEY_LEN])
{
	uint8_t inputs[SCRAM_KEY_LEN];
	size_t i;

	digest_salted_inputs(password, salt, salt_len, iterations, inputs);
	for (i = 0; i < SALTED_CACHE_SIZE; i++) {
		if (salted_cache[i].is_set &&
		    CRYPTO_memcmp(salted_cache[i].inputs, inputs, SCRAM_KEY_LEN) == 0) {
			memcpy(out, salted_cache[i].salted, SCRAM_KEY_LEN);
			return true;
		}
	}
	if (!scram_salted_password(password, salt, salt_len, iterations, out))
		return false;
	i = salted_cache_next++ % SALTED_CACHE_SIZE;
	memcpy(salted_cache[i].inputs, inputs, SCRAM_KEY_LEN);
	memcpy(salted_cache[i].salted, out, SCRAM_KEY_LEN);
	salted_cache[i].is_set = true;
	return true;
}

bool scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
				int iterations, struct scram_secret *out)
{
	uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];

	if (salt_len == 0 || salt_len > SCRAM_SALT_MAX ||
	    !scram_salted_password(password, salt, salt_len, iterations, salted))
		return false;
	memset(out, 0, sizeof(*out));
	out->iterations = iterations;
	memcpy(out->salt, salt, salt_len);
	out->salt_len = salt_len;
	derive_keys(salted, client_key, out->server_key);
	sha256(client_key, SCRAM_KEY_LEN, out->stored_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return true;
}

bool scram_parse_secret(const char *text, struct scram_secret *out)
{
	const char *iter, *colon1, *dollar, *colon2, *server_key;
	struct scram_secret s;

	/* ':' and '$' are not base64, so splitting on them first is unambiguous. */
	if (strncmp(text, SCRAM_SECRET_PREFIX, strlen(SCRAM_SECRET_PREFIX)) != 0)
		return false;
	iter = text + strlen(SCRAM_SECRET_PREFIX);
	colon1 = strchr(iter, ':');
	if (colon1 == NULL)
		return false;
	dollar = strchr(colon1 + 1, '$');
	if (dollar == NULL)
		return false;
	colon2 = strchr(dollar + 1, ':');
	if (colon2 == NULL)
		return false;
	server_key = colon2 + 1;

	memset(&s, 0, sizeof(s));
	if (!parse_iterations(iter, (size_t)(colon1 - iter), &s.iterations) ||
	    !b64_decode_salt(colon1 + 1, (size_t)(dollar - colon1 - 1), s.salt, &s.salt_len) ||
	    !b64_decode_key(dollar + 1, (size_t)(colon2 - dollar - 1), s.stored_key) ||
	    !b64_decode_key(server_key, strlen(server_key), s.server_key))
		return false;
	*out = s;
	return true;
}

void scram_format_secret(const struct scram_secret *s, char *buf, size_t buflen)
{
	char salt[B64_LEN(SCRAM_SALT_MAX) + 1];
	char stored_key[B64_LEN(SCRAM_KEY_LEN) + 1], server_key[B64_LEN(SCRAM_KEY_LEN) + 1];

	b64_encode(salt, s->salt, s->salt_len);
	b64_encode(stored_key, s->stored_key, SCRAM_KEY_LEN);
	b64_encode(server_key, s->server_key, SCRAM_KEY_LEN);
	snprintf(buf, buflen, SCRAM_SECRET_PREFIX "%d:%s$%s:%s", s->iterations, salt, stored_key,
		 server_key);
}

void scram_user_salt(const char *user, uint8_t salt[SCRAM_USER_SALT_LEN])
{
	static uint8_t key[SCRAM_KEY_LEN];
	static bool has_key;
	uint8_t mac[SCRAM_KEY_LEN];

	if (!has_key) {
		/* A guessable key would let a client compute the fake salts and spot unknown users.
		 */
		if (RAND_bytes(key, sizeof(key)) != 1)
			crypto_fatal("RAND_bytes");
		has_key = true;
	}
	hmac_sha256(key, sizeof(key), user, strlen(user), mac);
	memcpy(salt, mac, SCRAM_USER_SALT_LEN);
}

/* Server side */

void scram_server_init(struct scram_server *st, const struct scram_secret *secret, const char *user)
{
	memset(st, 0, sizeof(*st));
	if (secret != NULL) {
		st->secret = *secret;
		return;
	}
	/* The keys stay zero: verification runs as usual and then fails on is_mock. */
	st->is_mock = true;
	st->secret.iterations = SCRAM_DEFAULT_ITER;
	scram_user_salt(user, st->secret.salt);
	st->secret.salt_len = SCRAM_USER_SALT_LEN;
}

void scram_server_set_channel_binding(struct scram_server *st, const uint8_t *data, size_t len)
{
	if (len > sizeof(st->cbind_data))
		return; /* can't happen with a hash; then -PLUS is simply not offered */
	memcpy(st->cbind_data, data, len);
	st->cbind_len = len;
}

/*
 * The gs2 header: "p=tls-server-end-point" exactly when the client chose -PLUS;
 * "y" (the client could bind but thinks we can't) only when we offered no
 * -PLUS, else someone removed it on the way (RFC 5802 6); no authzid.
 */
static bool parse_gs2_header(struct scram_server *st, const char *msg, size_t len, const char **err)
{
	static const char plus_flag[] = "p=tls-server-end-point";
	const char *comma = memchr(msg, ',', len);
	size_t flag_len = comma != NULL ? (size_t)(comma - msg) : len;

	if (comma == NULL || flag_len + 1 >= len || flag_len + 2 > sizeof(st->gs2_header)) {
		*err = "malformed SCRAM client-first-message";
		return false;
	}
	if (msg[flag_len + 1] != ',') {
		*err = msg[flag_len + 1] == 'a' ? "SCRAM authorization identity is not supported"
						: "malformed SCRAM client-first-message";
		return false;
	}
	if (msg[0] == 'p') {
		if (flag_len != strlen(plus_flag) || strncmp(msg, plus_flag, flag_len) != 0) {
			*err = "unsupported SCRAM channel binding type";
			return false;
		}
		if (!st->is_plus) {
			*err = "SCRAM channel binding requested without " SCRAM_PLUS_MECHANISM;
			return false;
		}
	} else if (flag_len != 1 || (msg[0] != 'n' && msg[0] != 'y')) {
		*err = "malformed SCRAM client-first-message";
		return false;
	} else if (st->is_plus) {
		*err = SCRAM_PLUS_MECHANISM " chosen without channel binding";
		return false;
	} else if (msg[0] == 'y' && st->cbind_len > 0) {
		*err = "SCRAM channel binding was offered but the client thinks it was not";
		return false;
	}
	st->gs2_len = flag_len + 2;
	memcpy(st->gs2_header, msg, st->gs2_len);
	return true;
}

char *scram_server_first(struct scram_server *st, const char *client_first, size_t len,
			 const char **err)
{
	static const char *const malformed = "malformed SCRAM client-first-message";
	char our_nonce[B64_LEN(SCRAM_RAW_NONCE_LEN) + 1], salt[B64_LEN(SCRAM_SALT_MAX) + 1];
	struct attr_reader r;
	struct span user, nonce;

	if (st->client_first_bare != NULL) {
		*err = "unexpected SCRAM client-first-message";
		return NULL;
	}
	if (has_nul(client_first, len) || len < 3) {
		*err = malformed;
		return NULL;
	}
	if (!parse_gs2_header(st, client_first, len, err))
		return NULL;
	/* The user name is ignored: Postgres takes it from the startup packet. */
	attr_reader_init(&r, client_first + st->gs2_len, client_first + len);
	if (!expect_attr(&r, 'n', &user) || !expect_attr(&r, 'r', &nonce) ||
	    !is_valid_nonce(nonce) || !skip_extensions(&r)) {
		*err = malformed;
		return NULL;
	}
	if (nonce.len > SCRAM_NONCE_MAX - B64_LEN(SCRAM_RAW_NONCE_LEN)) {
		*err = "SCRAM client nonce too long";
		return NULL;
	}
	if (!random_nonce(our_nonce)) {
		*err = "could not generate a SCRAM nonce";
		return NULL;
	}
	memcpy(st->client_nonce, nonce.ptr, nonce.len);
	st->client_nonce[nonce.len] = '\0';
	memcpy(st->server_nonce, nonce.ptr, nonce.len);
	memcpy(st->server_nonce + nonce.len, our_nonce, sizeof(our_nonce));
	st->client_first_bare = span_dup(client_first + st->gs2_len, len - st->gs2_len);
	b64_encode(salt, st->secret.salt, st->secret.salt_len);
	st->server_first =
		format_message("r=%s,s=%s,i=%d", st->server_nonce, salt, st->secret.iterations);
	return xstrdup(st->server_first);
}

char *scram_server_final(struct scram_server *st, const char *client_final, size_t len,
			 const char **err)
{
	static const char *const malformed = "malformed SCRAM client-final-message";
	/* c= is the gs2 header, followed by the binding data when the client binds. */
	uint8_t cbind_input[sizeof(st->gs2_header) + SCRAM_CBIND_MAX];
	size_t cbind_input_len = st->gs2_len;
	char cbind[B64_LEN(sizeof(cbind_input)) + 1], signature[B64_LEN(SCRAM_KEY_LEN) + 1];
	uint8_t proof[SCRAM_KEY_LEN], client_signature[SCRAM_KEY_LEN];
	uint8_t client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN];
	uint8_t server_signature[SCRAM_KEY_LEN];
	const char *proof_attr;
	struct attr_reader r;
	struct span value;
	bool is_match;
	char name;

	if (st->server_first == NULL) {
		*err = "unexpected SCRAM client-final-message";
		return NULL;
	}
	if (has_nul(client_final, len)) {
		*err = malformed;
		return NULL;
	}
	memcpy(cbind_input, st->gs2_header, st->gs2_len);
	if (st->is_plus) {
		memcpy(cbind_input + cbind_input_len, st->cbind_data, st->cbind_len);
		cbind_input_len += st->cbind_len;
	}
	b64_encode(cbind, cbind_input, cbind_input_len);
	attr_reader_init(&r, client_final, client_final + len);
	if (!expect_attr(&r, 'c', &value) || !span_equals(value, cbind)) {
		*err = "SCRAM channel binding data does not match";
		return NULL;
	}
	if (!expect_attr(&r, 'r', &value) || !span_equals(value, st->server_nonce)) {
		*err = "SCRAM nonce mismatch";
		return NULL;
	}
	/* Extensions may come before the proof, which must be the last attribute. */
	do {
		proof_attr = r.pos;
		if (!read_attr(&r, &name, &value)) {
			*err = malformed;
			return NULL;
		}
	} while (name != 'p');
	if (r.pos != r.end || !b64_decode_key(value.ptr, value.len, proof)) {
		*err = malformed;
		return NULL;
	}

	auth_message_hmac(st->secret.stored_key, st->client_first_bare, st->server_first,
			  client_final, (size_t)(proof_attr - client_final), client_signature);
	xor_keys(proof, client_signature, client_key);
	sha256(client_key, SCRAM_KEY_LEN, stored_key);
	is_match = CRYPTO_memcmp(stored_key, st->secret.stored_key, SCRAM_KEY_LEN) == 0;
	if (st->is_mock || !is_match) {
		OPENSSL_cleanse(client_key, sizeof(client_key));
		*err = st->is_mock ? "user does not exist"
				   : "SCRAM proof does not match (wrong password)";
		return NULL;
	}
	memcpy(st->client_key, client_key, SCRAM_KEY_LEN);
	st->has_client_key = true;
	OPENSSL_cleanse(client_key, sizeof(client_key));

	auth_message_hmac(st->secret.server_key, st->client_first_bare, st->server_first,
			  client_final, (size_t)(proof_attr - client_final), server_signature);
	b64_encode(signature, server_signature, SCRAM_KEY_LEN);
	return format_message("v=%s", signature);
}

void scram_server_free(struct scram_server *st)
{
	free(st->client_first_bare);
	free(st->server_first);
	OPENSSL_cleanse(st, sizeof(*st));
}

/* Client side */

void scram_client_init_password(struct scram_client *st, const char *password)
{
	memset(st, 0, sizeof(*st));
	st->password = xstrdup(password);
}

void scram_client_init_keys(struct scram_client *st, const uint8_t client_key[SCRAM_KEY_LEN],
			    const uint8_t server_key[SCRAM_KEY_LEN])
{
	memset(st, 0, sizeof(*st));
	memcpy(st->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(st->server_key, server_key, SCRAM_KEY_LEN);
	st->has_keys = true;
}

bool scram_server_first_iterations(const char *server_first, size_t len, int *iterations)
{
	struct span nonce, salt, count;
	struct attr_reader r;

	attr_reader_init(&r, server_first, server_first + len);
	return !has_nul(server_first, len) && expect_attr(&r, 'r', &nonce) &&
	       expect_attr(&r, 's', &salt) && expect_attr(&r, 'i', &count) &&
	       read_count(count.ptr, count.len, iterations);
}

char *scram_client_first(struct scram_client *st)
{
	if (!random_nonce(st->client_nonce))
		return NULL;
	st->client_first_bare = format_message("n=,r=%s", st->client_nonce);
	return format_message("n,,%s", st->client_first_bare);
}

char *scram_client_final(struct scram_client *st, const char *server_first, size_t len,
			 const char **err)
{
	static const char *const malformed = "malformed SCRAM server-first-message";
	size_t our_len = strlen(st->client_nonce);
	uint8_t salted[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN];
	uint8_t client_signature[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	char proof_b64[B64_LEN(SCRAM_KEY_LEN) + 1];
	struct span nonce, salt, iterations;
	struct attr_reader r;
	char *without_proof, *final;

	if (st->client_first_bare == NULL || st->server_first != NULL) {
		*err = "unexpected SCRAM server-first-message";
		return NULL;
	}
	attr_reader_init(&r, server_first, server_first + len);
	if (has_nul(server_first, len) || !expect_attr(&r, 'r', &nonce) ||
	    !expect_attr(&r, 's', &salt) || !expect_attr(&r, 'i', &iterations) ||
	    !skip_extensions(&r) || !is_valid_nonce(nonce)) {
		*err = malformed;
		return NULL;
	}
	/* The server must extend our nonce; anything else may be a replay. */
	if (nonce.len <= our_len || nonce.len > SCRAM_NONCE_MAX ||
	    memcmp(nonce.ptr, st->client_nonce, our_len) != 0) {
		*err = "SCRAM server nonce does not extend ours";
		return NULL;
	}
	if (!b64_decode_salt(salt.ptr, salt.len, st->salt, &st->salt_len)) {
		*err = "invalid SCRAM salt from server";
		return NULL;
	}
	if (!parse_iterations(iterations.ptr, iterations.len, &st->iterations)) {
		*err = "invalid SCRAM iteration count from server";
		return NULL;
	}
	if (!st->has_keys) {
		if (!salted_password_cached(st->password, st->salt, st->salt_len, st->iterations,
					    salted)) {
			*err = "could not derive the SCRAM salted password";
			return NULL;
		}
		derive_keys(salted, st->client_key, st->server_key);
		OPENSSL_cleanse(salted, sizeof(salted));
	}
	st->server_first = span_dup(server_first, len);

	without_proof = format_message("c=biws,r=%.*s", (int)nonce.len, nonce.ptr);
	sha256(st->client_key, SCRAM_KEY_LEN, stored_key);
	auth_message_hmac(stored_key, st->client_first_bare, st->server_first, without_proof,
			  strlen(without_proof), client_signature);
	auth_message_hmac(st->server_key, st->client_first_bare, st->server_first, without_proof,
			  strlen(without_proof), st->server_signature);
	xor_keys(st->client_key, client_signature, proof);
	b64_encode(proof_b64, proof, SCRAM_KEY_LEN);
	final = format_message("%s,p=%s", without_proof, proof_b64);
	free(without_proof);
	return final;
}

bool scram_client_verify_server(struct scram_client *st, const char *server_final, size_t len,
				const char **err)
{
	uint8_t signature[SCRAM_KEY_LEN];
	struct attr_reader r;
	struct span value;
	char name;

	if (st->server_first == NULL) {
		*err = "unexpected SCRAM server-final-message";
		return false;
	}
	attr_reader_init(&r, server_final, server_final + len);
	if (has_nul(server_final, len) || !read_attr(&r, &name, &value)) {
		*err = "malformed SCRAM server-final-message";
		return false;
	}
	if (name == 'e') {
		*err = "server rejected the SCRAM exchange";
		return false;
	}
	if (name != 'v' || !skip_extensions(&r) ||
	    !b64_decode_key(value.ptr, value.len, signature)) {
		*err = "malformed SCRAM server-final-message";
		return false;
	}
	if (CRYPTO_memcmp(signature, st->server_signature, SCRAM_KEY_LEN) != 0) {
		*err = "SCRAM server signature does not match: the server does not know the "
		       "password";
		return false;
	}
	return true;
}

void scram_client_free(struct scram_client *st)
{
	if (st->password != NULL) {
		OPENSSL_cleanse(st->password, strlen(st->password));
		free(st->password);
	}
	free(st->client_first_bare);
	free(st->server_first);
	OPENSSL_cleanse(st, sizeof(*st));
}

/* md5 */

static bool md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[36])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[16];

	if (!digest_two(EVP_md5(), a, alen, b, blen, digest))
		return false;
	memcpy(out, "md5", 3);
	for (size_t i = 0; i < sizeof(digest); i++) {
		out[3 + 2 * i] = hex[digest[i] >> 4];
		out[4 + 2 * i] = hex[digest[i] & 0xf];
	}
	out[35] = '\0';
	return true;
}

bool md5_password_hash(const char *password, const char *user, char out[36])
{
	return md5_hex(password, strlen(password), user, strlen(user), out);
}

bool md5_salted_response(const char *md5_hash, const uint8_t salt[4], char out[36])
{
	if (strncmp(md5_hash, "md5", 3) != 0 || strlen(md5_hash) != 35)
		return false;
	return md5_hex(md5_hash + 3, 32, salt, 4, out);
}
