/*
 * pgwing logging in to a server: the server-first-message, then the
 * server-final-message (the input splits at its first NUL; SCRAM text has
 * none). pgwing logs in with the ClientKey and ServerKey it recovered from
 * its own client, here RFC 7677's, and its client nonce is pinned to the
 * RFC's. Properties: a client-final-message echoes the server's nonce and
 * carries a proof; for the RFC's server-first-message it is the RFC's
 * client-final-message; the count scram_server_first_iterations() reads is
 * the one used; and the server's signature is accepted exactly when it is the
 * RFC's.
 */
#include "fuzz.h"
#include "pgwing/scram.h"
#include "scram_rfc7677.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

static uint8_t client_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const salt_b64 = RFC_SALT_B64;
	uint8_t salt[SCRAM_SALT_MAX], salted[SCRAM_KEY_LEN];
	int n = EVP_DecodeBlock(salt, (const uint8_t *)salt_b64, (int)strlen(salt_b64));

	(void)argc;
	(void)argv;
	FUZZ_CHECK(n == 18); /* 16 bytes and two of padding */
	FUZZ_CHECK(scram_salted_password(RFC_PASSWORD, salt, 16, RFC_ITERATIONS, salted));
	FUZZ_CHECK(HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const uint8_t *)"Client Key", 10,
			client_key, NULL) != NULL);
	FUZZ_CHECK(HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const uint8_t *)"Server Key", 10,
			server_key, NULL) != NULL);
	return 0;
}

static void pin_client_nonce(struct scram_client *st)
{
	snprintf(st->client_nonce, sizeof(st->client_nonce), "%s", RFC_CLIENT_NONCE);
	free(st->client_first_bare);
	st->client_first_bare = strdup(RFC_CLIENT_FIRST_BARE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scram_client st;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t first_len = nul != NULL ? (size_t)(nul - data) : size;
	size_t final_len = nul != NULL ? size - first_len - 1 : 0;
	char *first = fuzz_copy(data, first_len);
	char *final = fuzz_copy(data + first_len + (nul != NULL), final_len);
	bool is_rfc_first = first_len == strlen(RFC_SERVER_FIRST) &&
			    memcmp(first, RFC_SERVER_FIRST, first_len) == 0;
	const char *err = NULL, *nonce_end;
	char *client_first, *client_final;
	bool is_verified;
	int iterations;

	scram_client_init_keys(&st, client_key, server_key);
	client_first = scram_client_first(&st);
	FUZZ_CHECK(client_first != NULL && strncmp(client_first, "n,,n=,r=", 8) == 0);
	free(client_first);
	pin_client_nonce(&st);

	FUZZ_CHECK(!scram_client_verify_server(&st, final, final_len, &err));
	client_final = scram_client_final(&st, first, first_len, &err);
	if (client_final == NULL) {
		FUZZ_CHECK(err != NULL && st.server_first == NULL && !is_rfc_first);
		goto out;
	}
	/* c=biws,r=<the server's nonce>,p=<proof> */
	FUZZ_CHECK(strncmp(client_final, "c=biws,r=" RFC_CLIENT_NONCE, 29) == 0);
	nonce_end = strchr(client_final + 9, ',');
	FUZZ_CHECK(nonce_end != NULL && strncmp(nonce_end, ",p=", 3) == 0 &&
		   strlen(nonce_end + 3) == 44);
	FUZZ_CHECK(first_len > 2 + (size_t)(nonce_end - client_final - 9) &&
		   memcmp(first + 2, client_final + 9, (size_t)(nonce_end - client_final - 9)) ==
			   0 &&
		   first[2 + (nonce_end - client_final - 9)] == ',');
	FUZZ_CHECK(st.salt_len > 0 && st.iterations > 0);
	/* The gate that refuses costly logins (auth_login_allows) reads the very count used. */
	FUZZ_CHECK(scram_server_first_iterations(first, first_len, &iterations) &&
		   iterations == st.iterations);
	if (is_rfc_first)
		FUZZ_CHECK(strcmp(client_final, RFC_CLIENT_FINAL) == 0);
	free(client_final);
	FUZZ_CHECK(scram_client_final(&st, first, first_len, &err) == NULL);

	is_verified = scram_client_verify_server(&st, final, final_len, &err);
	if (is_rfc_first && final_len == strlen(RFC_SERVER_FINAL) &&
	    memcmp(final, RFC_SERVER_FINAL, final_len) == 0)
		FUZZ_CHECK(is_verified);
	if (is_verified)
		FUZZ_CHECK(final_len >= strlen(RFC_SERVER_FINAL) && memcmp(final, "v=", 2) == 0 &&
			   is_rfc_first);
	else
		FUZZ_CHECK(err != NULL);
out:
	scram_client_free(&st);
	free(first);
	free(final);
	return 0;
}
