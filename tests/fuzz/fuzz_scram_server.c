/*
 * pgwing verifying a client: the client-first-message, then the
 * client-final-message (the input splits at its first NUL; SCRAM text has
 * none). Byte 0 picks the situation: on TLS or not, SCRAM-SHA-256-PLUS chosen
 * or not, a known user or the mock exchange for an unknown one. The secret is
 * RFC 7677's and the server nonce is pinned to the RFC's, so the RFC exchange
 * verifies. Properties: a server-final-message comes only for a correct proof
 * of a known user, and the ClientKey recovered from it is the real one (its
 * hash is the StoredKey). The input, read as a stored secret, must survive
 * scram_format_secret and a second parse unchanged.
 */
#include "fuzz.h"
#include "pgwing/scram.h"
#include "scram_rfc7677.h"

#include <openssl/evp.h>

static struct scram_secret rfc_secret;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const salt_b64 = RFC_SALT_B64;
	uint8_t salt[SCRAM_SALT_MAX];
	int n = EVP_DecodeBlock(salt, (const uint8_t *)salt_b64, (int)strlen(salt_b64));

	(void)argc;
	(void)argv;
	FUZZ_CHECK(n == 18); /* 16 bytes and two of padding */
	FUZZ_CHECK(scram_secret_from_password(RFC_PASSWORD, salt, 16, RFC_ITERATIONS, &rfc_secret));
	return 0;
}

static void check_secret_round_trip(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstring(data, size);
	struct scram_secret s, again;
	char buf[256];

	if (scram_parse_secret(text, &s)) {
		scram_format_secret(&s, buf, sizeof(buf));
		FUZZ_CHECK(scram_parse_secret(buf, &again));
		FUZZ_CHECK(again.iterations == s.iterations && again.salt_len == s.salt_len);
		FUZZ_CHECK(memcmp(again.salt, s.salt, s.salt_len) == 0);
		FUZZ_CHECK(memcmp(again.stored_key, s.stored_key, SCRAM_KEY_LEN) == 0);
		FUZZ_CHECK(memcmp(again.server_key, s.server_key, SCRAM_KEY_LEN) == 0);
		FUZZ_CHECK(s.iterations > 0 && s.salt_len > 0 && s.salt_len <= SCRAM_SALT_MAX);
	}
	free(text);
}

/* Replace our random half of the nonce with the RFC's, in the state and in server-first. */
static void pin_server_nonce(struct scram_server *st)
{
	size_t client_len = strlen(st->client_nonce);
	const char *rest = strchr(st->server_first, ',');
	char *pinned;
	size_t len;

	if (client_len + strlen(RFC_SERVER_NONCE_PART) > SCRAM_NONCE_MAX)
		return;
	snprintf(st->server_nonce, sizeof(st->server_nonce), "%s%s", st->client_nonce,
		 RFC_SERVER_NONCE_PART);
	len = 2 + strlen(st->server_nonce) + strlen(rest) + 1;
	pinned = malloc(len);
	snprintf(pinned, len, "r=%s%s", st->server_nonce, rest);
	free(st->server_first);
	st->server_first = pinned;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t cbind[32] = "tls-server-end-point hash bytes";
	struct scram_server st;
	const uint8_t *nul;
	const char *err = NULL;
	char *first, *final, *server_first, *server_final;
	size_t first_len, final_len;
	uint8_t flags, stored_key[SCRAM_KEY_LEN];

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	check_secret_round_trip(data, size);

	nul = memchr(data, '\0', size);
	first_len = nul != NULL ? (size_t)(nul - data) : size;
	final_len = nul != NULL ? size - first_len - 1 : 0;
	first = fuzz_copy(data, first_len);
	final = fuzz_copy(data + first_len + (nul != NULL), final_len);

	scram_server_init(&st, (flags & 4) ? NULL : &rfc_secret, "user");
	if (flags & 1)
		scram_server_set_channel_binding(&st, cbind, sizeof(cbind));
	st.is_plus = (flags & 1) && (flags & 2);

	server_first = scram_server_first(&st, first, first_len, &err);
	if (server_first == NULL) {
		FUZZ_CHECK(err != NULL && st.client_first_bare == NULL && st.server_first == NULL);
		goto out;
	}
	FUZZ_CHECK(strcmp(server_first, st.server_first) == 0);
	FUZZ_CHECK(strncmp(server_first, "r=", 2) == 0 &&
		   strncmp(server_first + 2, st.client_nonce, strlen(st.client_nonce)) == 0);
	FUZZ_CHECK(strlen(st.server_nonce) > strlen(st.client_nonce));
	FUZZ_CHECK(scram_server_first(&st, first, first_len, &err) == NULL);
	free(server_first);
	pin_server_nonce(&st);

	err = NULL;
	server_final = scram_server_final(&st, final, final_len, &err);
	if (server_final == NULL) {
		FUZZ_CHECK(err != NULL && !st.has_client_key);
		goto out;
	}
	FUZZ_CHECK(!st.is_mock && st.has_client_key);
	FUZZ_CHECK(strncmp(server_final, "v=", 2) == 0 && strlen(server_final) == 2 + 44);
	FUZZ_CHECK(EVP_Digest(st.client_key, SCRAM_KEY_LEN, stored_key, NULL, EVP_sha256(), NULL) ==
		   1);
	FUZZ_CHECK(memcmp(stored_key, rfc_secret.stored_key, SCRAM_KEY_LEN) == 0);
	if (strcmp(st.client_first_bare, RFC_CLIENT_FIRST_BARE) == 0 &&
	    strcmp(st.gs2_header, "n,,") == 0)
		FUZZ_CHECK(strcmp(server_final, RFC_SERVER_FINAL) == 0);
	free(server_final);
out:
	scram_server_free(&st);
	free(first);
	free(final);
	return 0;
}
