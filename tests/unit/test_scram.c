#include "pgwing/common.h"
#include "pgwing/scram.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <cmocka.h>

/* RFC 7677, section 3. */
#define RFC_PASSWORD       "pencil"
#define RFC_SALT_B64       "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_NONCE   "rOprNGfwEbeRWgbNEkqO"
#define RFC_COMBINED_NONCE "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST   "n,,n=user,r=" RFC_CLIENT_NONCE
#define RFC_SERVER_FIRST   "r=" RFC_COMBINED_NONCE ",s=" RFC_SALT_B64 ",i=4096"
#define RFC_CLIENT_FINAL \
	"c=biws,r=" RFC_COMBINED_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* Computed independently (Python hashlib) from the vector's password and salt. */
#define RFC_SECRET                                                                          \
	"SCRAM-SHA-256$4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t rfc_salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
				     0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};

static void hex_to_bytes(const char *hex, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
}

static void test_salted_password_vector(void **state)
{
	uint8_t salted[SCRAM_KEY_LEN], expected[SCRAM_KEY_LEN];

	(void)state;
	hex_to_bytes("c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d", expected,
		     sizeof(expected));
	assert_true(scram_salted_password(RFC_PASSWORD, rfc_salt, sizeof(rfc_salt), 4096, salted));
	assert_memory_equal(salted, expected, SCRAM_KEY_LEN);
	assert_false(scram_salted_password(RFC_PASSWORD, rfc_salt, sizeof(rfc_salt), 0, salted));
}

static void test_secret_from_password_vector(void **state)
{
	struct scram_secret secret, parsed;
	char text[256];

	(void)state;
	assert_true(scram_secret_from_password(RFC_PASSWORD, rfc_salt, sizeof(rfc_salt), 4096,
					       &secret));
	scram_format_secret(&secret, text, sizeof(text));
	assert_string_equal(text, RFC_SECRET);
	assert_true(scram_parse_secret(text, &parsed));
	assert_memory_equal(&parsed, &secret, sizeof(secret));
}

static void assert_saslprep(const char *in, const char *expected)
{
	char *out = scram_saslprep(in);

	assert_string_equal(out, expected);
	free(out);
}

/* RFC 4013, section 3, and Postgres's fallbacks to the raw bytes. */
static void test_saslprep(void **state)
{
	(void)state;
	assert_saslprep("I\xc2\xad"
			"X",
			"IX");                       /* SOFT HYPHEN mapped to nothing */
	assert_saslprep("user", "user");             /* no transformation */
	assert_saslprep("USER", "USER");             /* case preserved */
	assert_saslprep("\xc2\xaa", "a");            /* NFKC: FEMININE ORDINAL INDICATOR */
	assert_saslprep("\xe2\x85\xa8", "IX");       /* NFKC: ROMAN NUMERAL NINE */
	assert_saslprep("IX-\xe2\x85\xa8", "IX-IX"); /* node-postgres's SASLprep test */
	assert_saslprep("a\xc2\xa0"
			"b",
			"a b");                   /* NO-BREAK SPACE mapped to SPACE */
	assert_saslprep("e\xcc\x81", "\xc3\xa9"); /* NFKC composes e + COMBINING ACUTE */
	assert_saslprep("", "");
	/* Prohibited (RFC 4013's examples): Postgres keeps the password as it is. */
	assert_saslprep("\x07", "\x07"); /* ASCII control character */
	assert_saslprep("\xd8\xa7"
			"1",
			"\xd8\xa7"
			"1"); /* RandALCat then LCat: bidi rule */
	assert_saslprep("a\xef\xbf\xbd\xe2\x80\x8e", "a\xef\xbf\xbd\xe2\x80\x8e");
	/* Not UTF-8: raw bytes too. */
	assert_saslprep("\xff\xfe\xe2\x85\xa8", "\xff\xfe\xe2\x85\xa8");
	assert_saslprep("\xc3", "\xc3");
	/* Unassigned code points are allowed, as Postgres allows them (U+0378). */
	assert_saslprep("a\xcd\xb8", "a\xcd\xb8");
}

/* The salted password is Hi() of the prepared password; raw bytes when preparing fails. */
static void test_salted_password_saslprep(void **state)
{
	static const char invalid[] = "\xff\xe2\x85\xa8";
	uint8_t a[SCRAM_KEY_LEN], b[SCRAM_KEY_LEN];

	(void)state;
	assert_true(scram_salted_password("IX-\xe2\x85\xa8", rfc_salt, sizeof(rfc_salt), 4096, a));
	assert_true(scram_salted_password("IX-IX", rfc_salt, sizeof(rfc_salt), 4096, b));
	assert_memory_equal(a, b, SCRAM_KEY_LEN);
	assert_true(scram_salted_password(invalid, rfc_salt, sizeof(rfc_salt), 4096, a));
	assert_int_equal(PKCS5_PBKDF2_HMAC(invalid, (int)strlen(invalid), rfc_salt,
					   sizeof(rfc_salt), 4096, EVP_sha256(), SCRAM_KEY_LEN, b),
			 1);
	assert_memory_equal(a, b, SCRAM_KEY_LEN);
}

/* The client half of the RFC exchange, with the vector's nonce and user name swapped in. */
static void test_client_vector(void **state)
{
	struct scram_client cl;
	const char *err = NULL;
	char *first, *final;

	(void)state;
	scram_client_init_password(&cl, RFC_PASSWORD);
	first = scram_client_first(&cl);
	assert_non_null(first);
	free(first);
	strcpy(cl.client_nonce, RFC_CLIENT_NONCE);
	free(cl.client_first_bare);
	cl.client_first_bare = strdup(RFC_CLIENT_FIRST + 3);

	final = scram_client_final(&cl, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &err);
	assert_non_null(final);
	assert_string_equal(final, RFC_CLIENT_FINAL);
	assert_int_equal(cl.iterations, 4096);
	assert_memory_equal(cl.salt, rfc_salt, sizeof(rfc_salt));
	assert_true(
		scram_client_verify_server(&cl, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err));
	free(final);
	scram_client_free(&cl);
}

/* The server half, with the vector's server nonce swapped in. */
static void test_server_vector(void **state)
{
	struct scram_server sv;
	struct scram_secret secret;
	const char *err = NULL;
	char *first, *final;

	(void)state;
	assert_true(scram_parse_secret(RFC_SECRET, &secret));
	scram_server_init(&sv, &secret, "user");
	first = scram_server_first(&sv, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), &err);
	assert_non_null(first);
	assert_string_equal(sv.client_nonce, RFC_CLIENT_NONCE);
	assert_true(strncmp(first, "r=" RFC_CLIENT_NONCE, strlen("r=" RFC_CLIENT_NONCE)) == 0);
	assert_non_null(strstr(first, ",s=" RFC_SALT_B64 ",i=4096"));
	free(first);
	strcpy(sv.server_nonce, RFC_COMBINED_NONCE);
	free(sv.server_first);
	sv.server_first = strdup(RFC_SERVER_FIRST);

	final = scram_server_final(&sv, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), &err);
	assert_non_null(final);
	assert_string_equal(final, RFC_SERVER_FINAL);
	assert_true(sv.has_client_key);
	free(final);
	scram_server_free(&sv);
}

static void test_parse_secret_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"md5a3556571e93b0d20722ba62be61e8c2d",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256$4096",
		"SCRAM-SHA-256$4096:" RFC_SALT_B64,
		"SCRAM-SHA-256$4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
		/* iterations: zero, too many, sign, leading zero, not a number */
		"SCRAM-SHA-256$0:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$10000001:" RFC_SALT_B64
		"$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$-4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$04096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4k:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		/* empty salt, bad base64, short key, trailing garbage, whitespace */
		"SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:W22Z*J0SNY7soEsUEjb6gQ==$"
		"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2d=",
		"SCRAM-SHA-256$4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=$",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsU=jb6gQ==$"
		"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:" RFC_SALT_B64 "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU= ",
	};
	struct scram_secret secret;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (scram_parse_secret(bad[i], &secret))
			fail_msg("accepted bad secret #%zu: %s", i, bad[i]);
	}
}

/* Runs a whole exchange in memory; returns whether both sides accepted. */
static bool exchange(struct scram_client *cl, const struct scram_secret *secret, const char *user,
		     uint8_t client_key[SCRAM_KEY_LEN])
{
	struct scram_server sv;
	const char *err = NULL;
	char *c1, *s1 = NULL, *c2 = NULL, *s2 = NULL;
	bool ok = false;

	scram_server_init(&sv, secret, user);
	c1 = scram_client_first(cl);
	assert_non_null(c1);
	s1 = scram_server_first(&sv, c1, strlen(c1), &err);
	assert_non_null(s1);
	c2 = scram_client_final(cl, s1, strlen(s1), &err);
	assert_non_null(c2);
	s2 = scram_server_final(&sv, c2, strlen(c2), &err);
	if (s2 != NULL) {
		assert_true(sv.has_client_key);
		if (client_key != NULL)
			memcpy(client_key, sv.client_key, SCRAM_KEY_LEN);
		ok = scram_client_verify_server(cl, s2, strlen(s2), &err);
	} else {
		assert_non_null(err);
		assert_false(sv.has_client_key);
	}
	free(c1);
	free(s1);
	free(c2);
	free(s2);
	scram_server_free(&sv);
	return ok;
}

static void test_exchange_password_and_keys(void **state)
{
	uint8_t salt[SCRAM_USER_SALT_LEN], client_key[SCRAM_KEY_LEN];
	struct scram_secret secret;
	struct scram_client cl;

	(void)state;
	scram_user_salt("alice", salt);
	assert_true(scram_secret_from_password("s3cret", salt, sizeof(salt), 4096, &secret));

	scram_client_init_password(&cl, "s3cret");
	assert_true(exchange(&cl, &secret, "alice", client_key));
	scram_client_free(&cl);

	/* The recovered ClientKey logs in again without the password. */
	scram_client_init_keys(&cl, client_key, secret.server_key);
	assert_true(exchange(&cl, &secret, "alice", NULL));
	assert_int_equal(cl.iterations, 4096);
	assert_memory_equal(cl.salt, salt, sizeof(salt));
	scram_client_free(&cl);

	scram_client_init_password(&cl, "wrong");
	assert_false(exchange(&cl, &secret, "alice", NULL));
	scram_client_free(&cl);
}

/*
 * Logins to servers reuse salted passwords: whatever is reused, each login
 * must still prove exactly the password, salt and count it is given, also
 * after more logins than are remembered.
 */
static void test_client_logins_again(void **state)
{
	static const char *const passwords[] = {"s3cret", "s3cret2", ""}; /* [0] is right */
	static const int counts[] = {4096, 4097};
	struct scram_secret secret;
	struct scram_client cl;
	uint8_t salt[SCRAM_USER_SALT_LEN];
	char user[16];

	(void)state;
	for (int round = 0; round < 2; round++) {
		for (int u = 0; u < 12; u++) {
			snprintf(user, sizeof(user), "user%d", u);
			scram_user_salt(user, salt);
			for (size_t c = 0; c < ARRAY_SIZE(counts); c++) {
				assert_true(scram_secret_from_password("s3cret", salt, sizeof(salt),
								       counts[c], &secret));
				/* Each twice: the second finds the first's result. */
				for (size_t i = 0; i < 2 * ARRAY_SIZE(passwords); i++) {
					const char *password = passwords[i / 2];

					scram_client_init_password(&cl, password);
					if (exchange(&cl, &secret, user, NULL) != (i / 2 == 0))
						fail_msg("round %d, %s, count %d, password '%s': "
							 "wrong outcome",
							 round, user, counts[c], password);
					scram_client_free(&cl);
				}
			}
		}
	}
}

static void test_user_salt_is_stable(void **state)
{
	uint8_t a1[SCRAM_USER_SALT_LEN], a2[SCRAM_USER_SALT_LEN], b[SCRAM_USER_SALT_LEN];

	(void)state;
	scram_user_salt("alice", a1);
	scram_user_salt("alice", a2);
	scram_user_salt("bob", b);
	assert_memory_equal(a1, a2, sizeof(a1));
	assert_memory_not_equal(a1, b, sizeof(a1));
}

static void test_mock_exchange_fails(void **state)
{
	uint8_t salt[SCRAM_USER_SALT_LEN];
	struct scram_server sv1, sv2;
	struct scram_client cl;
	const char *err = NULL;
	char *c1, *s1, *s1again;

	(void)state;
	/* The mock salt is the same every time, as a real user's would be. */
	scram_server_init(&sv1, NULL, "nobody");
	scram_server_init(&sv2, NULL, "nobody");
	assert_true(sv1.is_mock);
	assert_int_equal(sv1.secret.iterations, SCRAM_DEFAULT_ITER);
	scram_user_salt("nobody", salt);
	assert_memory_equal(sv1.secret.salt, salt, sizeof(salt));

	scram_client_init_password(&cl, "");
	c1 = scram_client_first(&cl);
	s1 = scram_server_first(&sv1, c1, strlen(c1), &err);
	s1again = scram_server_first(&sv2, c1, strlen(c1), &err);
	assert_non_null(s1);
	assert_string_equal(strchr(s1, ','), strchr(s1again, ','));
	free(c1);
	free(s1);
	free(s1again);
	scram_server_free(&sv1);
	scram_server_free(&sv2);
	scram_client_free(&cl);

	scram_client_init_password(&cl, "anything");
	assert_false(exchange(&cl, NULL, "nobody", NULL));
	scram_client_free(&cl);
}

static void test_server_rejects_malformed_first(void **state)
{
	static const char *const bad[] = {
		"",
		"n",
		"n,,",
		"p=tls-server-end-point,,n=,r=abc",
		"x,,n=,r=abc",
		"n,a=admin,n=,r=abc",
		"n,,r=abc",
		"n,,n=,",
		"n,,n=,r=",
		"n,,n=,r=abc,",
		"n,,n=,r=abc,m=mandatory",
		"n,,n=,r=ab c",
		"n,,n=,r=abc,=x",
		"n,,m=x,n=,r=abc",
	};
	struct scram_server sv;
	const char *err;
	char longnonce[200];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		scram_server_init(&sv, NULL, "u");
		err = NULL;
		if (scram_server_first(&sv, bad[i], strlen(bad[i]), &err) != NULL)
			fail_msg("accepted bad client-first #%zu: %s", i, bad[i]);
		assert_non_null(err);
		scram_server_free(&sv);
	}

	/* An embedded NUL, and a nonce that would overflow the combined nonce. */
	scram_server_init(&sv, NULL, "u");
	assert_null(scram_server_first(&sv, "n,,n=,r=a\0b", 11, &err));
	memset(longnonce, 'x', sizeof(longnonce));
	memcpy(longnonce, "n,,n=,r=", 8);
	assert_null(scram_server_first(&sv, longnonce, sizeof(longnonce), &err));
	scram_server_free(&sv);
}

/* Replaces the first '@' of tmpl with nonce (the nonces are random, so the cases are templates). */
static void fill_nonce(char *out, size_t outlen, const char *tmpl, const char *nonce)
{
	const char *at = strchr(tmpl, '@');
	char copy[256];

	snprintf(copy, sizeof(copy), "%s", tmpl);
	if (at == NULL)
		snprintf(out, outlen, "%s", copy);
	else
		snprintf(out, outlen, "%.*s%s%s", (int)(at - tmpl), copy, nonce,
			 copy + (at - tmpl) + 1);
}

static void test_server_rejects_malformed_final(void **state)
{
	static const char *const bad[] = {
		"",
		"c=biws",
		"c=eSws,r=@,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=@X,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"c=biws,r=@",
		"c=biws,r=@,p=",
		"c=biws,r=@,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndV=",
		"c=biws,r=@,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
		"c=biws,r=@,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,",
		"r=@,c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	};
	const char *client_first = "n,,n=,r=abc";
	struct scram_server sv;
	const char *err;
	char msg[256];
	char *s1;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		scram_server_init(&sv, NULL, "u");
		s1 = scram_server_first(&sv, client_first, strlen(client_first), &err);
		assert_non_null(s1);
		fill_nonce(msg, sizeof(msg), bad[i], sv.server_nonce);
		err = NULL;
		if (scram_server_final(&sv, msg, strlen(msg), &err) != NULL)
			fail_msg("accepted bad client-final #%zu: %s", i, msg);
		assert_non_null(err);
		free(s1);
		scram_server_free(&sv);
	}

	/* Out of order: final before first. */
	scram_server_init(&sv, NULL, "u");
	assert_null(scram_server_final(&sv, "c=biws,r=x,p=", 13, &err));
	scram_server_free(&sv);
}

/* A client that said 'y' (could bind, thinks we can't) must repeat that in c=. */
static void test_server_accepts_y_flag(void **state)
{
	struct scram_secret secret;
	struct scram_server sv;
	struct scram_client cl;
	const char *err = NULL;
	char *c1, *s1, *c2, *s2;

	(void)state;
	assert_true(scram_parse_secret(RFC_SECRET, &secret));
	scram_server_init(&sv, &secret, "user");
	scram_client_init_password(&cl, RFC_PASSWORD);
	c1 = scram_client_first(&cl);
	c1[0] = 'y';
	s1 = scram_server_first(&sv, c1, strlen(c1), &err);
	assert_non_null(s1);
	c2 = scram_client_final(&cl, s1, strlen(s1), &err);
	assert_non_null(c2);
	/* The client's proof covers c=biws, so it fails on the channel binding check first. */
	assert_null(scram_server_final(&sv, c2, strlen(c2), &err));
	assert_non_null(strstr(err, "channel binding"));
	free(c1);
	free(s1);
	free(c2);
	scram_client_free(&cl);
	scram_server_free(&sv);

	/* With a matching c=eSws the flag passes; the proof then decides. */
	scram_server_init(&sv, &secret, "user");
	scram_client_init_password(&cl, RFC_PASSWORD);
	c1 = scram_client_first(&cl);
	c1[0] = 'y';
	s1 = scram_server_first(&sv, c1, strlen(c1), &err);
	c2 = scram_client_final(&cl, s1, strlen(s1), &err);
	memcpy(c2, "c=eSws", 6);
	s2 = scram_server_final(&sv, c2, strlen(c2), &err);
	assert_null(s2);
	assert_non_null(strstr(err, "proof"));
	free(c1);
	free(s1);
	free(c2);
	scram_client_free(&cl);
	scram_server_free(&sv);
}

/* Feeds server_first (with '@' standing for nonce + suffix) to a fresh client; true if rejected. */
static bool client_rejects(const char *tmpl, const char *suffix)
{
	struct scram_client cl;
	const char *err = NULL;
	char nonce[SCRAM_NONCE_MAX + 8], msg[256];
	char *c1, *c2;

	scram_client_init_password(&cl, "pw");
	c1 = scram_client_first(&cl);
	snprintf(nonce, sizeof(nonce), "%s%s", cl.client_nonce, suffix);
	fill_nonce(msg, sizeof(msg), tmpl, nonce);
	c2 = scram_client_final(&cl, msg, strlen(msg), &err);
	free(c1);
	free(c2);
	scram_client_free(&cl);
	return c2 == NULL && err != NULL;
}

static void test_client_rejects_bad_server_first(void **state)
{
	static const char *const bad[] = {
		"",
		"r=@",
		"r=@,s=" RFC_SALT_B64,
		"r=@,s=" RFC_SALT_B64 ",i=0",
		"r=@,s=" RFC_SALT_B64 ",i=99999999",
		"r=@,s=" RFC_SALT_B64 ",i=4096,",
		"r=@,s=,i=4096",
		"r=@,s=W22Z,,i=4096",
		"r=@,s=!!!!,i=4096",
		"m=x,r=@,s=" RFC_SALT_B64 ",i=4096",
		"s=" RFC_SALT_B64 ",r=@,i=4096",
		"r=someoneelse,s=" RFC_SALT_B64 ",i=4096",
		"r=,s=" RFC_SALT_B64 ",i=4096",
	};

	(void)state;
	assert_false(client_rejects("r=@,s=" RFC_SALT_B64 ",i=4096", "XYZ"));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (!client_rejects(bad[i], "XYZ"))
			fail_msg("accepted bad server-first #%zu: %s", i, bad[i]);
	}
	/* The server must add to our nonce, not just echo it. */
	assert_true(client_rejects("r=@,s=" RFC_SALT_B64 ",i=4096", ""));
}

static void test_client_rejects_bad_server_final(void **state)
{
	static const char *const bad[] = {
		"",
		"v=",
		"e=invalid-proof",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
		"x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		/* a well-formed signature that is not the right one */
		"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	};
	struct scram_client cl;
	const char *err;
	char *first, *final;

	(void)state;
	scram_client_init_password(&cl, RFC_PASSWORD);
	assert_false(
		scram_client_verify_server(&cl, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err));
	first = scram_client_first(&cl);
	strcpy(cl.client_nonce, RFC_CLIENT_NONCE);
	free(cl.client_first_bare);
	cl.client_first_bare = strdup(RFC_CLIENT_FIRST + 3);
	final = scram_client_final(&cl, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), &err);
	assert_non_null(final);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err = NULL;
		if (scram_client_verify_server(&cl, bad[i], strlen(bad[i]), &err))
			fail_msg("accepted bad server-final #%zu: %s", i, bad[i]);
		assert_non_null(err);
	}
	free(first);
	free(final);
	scram_client_free(&cl);
}

static void test_md5(void **state)
{
	static const uint8_t salt[4] = {1, 2, 3, 4};
	char hash[36], response[36];

	(void)state;
	assert_true(md5_password_hash("pencil", "user", hash));
	assert_string_equal(hash, "md520c46e3762c864548e296b33c3406aa9");
	assert_true(md5_salted_response(hash, salt, response));
	assert_string_equal(response, "md54376eb6913b38f9aaff38dc7cf19ca76");
	assert_false(md5_salted_response("md5short", salt, response));
}

/* Whether scram_server_first accepts client_first, as the TLS setup and mechanism make it. */
static bool first_accepted(const char *client_first, bool has_tls, bool is_plus)
{
	static const uint8_t cbind[32] = {1, 2, 3};
	struct scram_server sv;
	const char *err = NULL;
	char *s1;
	bool is_accepted;

	scram_server_init(&sv, NULL, "u");
	if (has_tls)
		scram_server_set_channel_binding(&sv, cbind, sizeof(cbind));
	sv.is_plus = is_plus;
	s1 = scram_server_first(&sv, client_first, strlen(client_first), &err);
	is_accepted = s1 != NULL;
	free(s1);
	scram_server_free(&sv);
	return is_accepted;
}

static void test_channel_binding_header(void **state)
{
	(void)state;
	/* Without TLS: no binding; 'y' is fine (we offered no -PLUS). */
	assert_true(first_accepted("n,,n=,r=abc", false, false));
	assert_true(first_accepted("y,,n=,r=abc", false, false));
	assert_false(first_accepted("p=tls-server-end-point,,n=,r=abc", false, false));
	/* On TLS with plain SCRAM: 'y' means -PLUS was stripped on the way. */
	assert_true(first_accepted("n,,n=,r=abc", true, false));
	assert_false(first_accepted("y,,n=,r=abc", true, false));
	/* -PLUS must bind, and with the one type pgwing has. */
	assert_true(first_accepted("p=tls-server-end-point,,n=,r=abc", true, true));
	assert_false(first_accepted("n,,n=,r=abc", true, true));
	assert_false(first_accepted("p=tls-unique,,n=,r=abc", true, true));
	assert_false(first_accepted("p=tls-server-end-point,a=x,n=,r=abc", true, true));
}

/* c= must carry the gs2 header and the binding data: anything else fails before the proof. */
static void test_channel_binding_data(void **state)
{
	static const char gs2[] = "p=tls-server-end-point,,";
	static const uint8_t cbind[32] = {9, 8, 7};
	uint8_t input[sizeof(gs2) - 1 + sizeof(cbind)];
	char b64[128], *s1, *c2, nonce[SCRAM_NONCE_MAX + 1];
	struct scram_server sv;
	const char *err = NULL;
	const char *r;

	(void)state;
	memcpy(input, gs2, sizeof(gs2) - 1);
	memcpy(input + sizeof(gs2) - 1, cbind, sizeof(cbind));
	for (int variant = 0; variant < 2; variant++) {
		scram_server_init(&sv, NULL, "u");
		scram_server_set_channel_binding(&sv, cbind, sizeof(cbind));
		sv.is_plus = true;
		s1 = scram_server_first(&sv, "p=tls-server-end-point,,n=,r=abc", 32, &err);
		assert_non_null(s1);
		r = strstr(s1, "r=") + 2;
		snprintf(nonce, sizeof(nonce), "%.*s", (int)strcspn(r, ","), r);
		/* variant 1 binds to other data, as a man in the middle's connection would. */
		input[sizeof(input) - 1] = (uint8_t)variant;
		EVP_EncodeBlock((unsigned char *)b64, input, (int)sizeof(input));
		c2 = NULL;
		assert_true(asprintf(&c2,
				     "c=%s,r=%s,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
				     b64, nonce) > 0);
		err = NULL;
		assert_null(scram_server_final(&sv, c2, strlen(c2), &err));
		if (variant == 0)
			assert_null(strstr(err, "channel binding"));
		else
			assert_non_null(strstr(err, "channel binding"));
		free(c2);
		free(s1);
		scram_server_free(&sv);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_salted_password_vector),
		cmocka_unit_test(test_secret_from_password_vector),
		cmocka_unit_test(test_saslprep),
		cmocka_unit_test(test_salted_password_saslprep),
		cmocka_unit_test(test_client_vector),
		cmocka_unit_test(test_server_vector),
		cmocka_unit_test(test_parse_secret_bad),
		cmocka_unit_test(test_exchange_password_and_keys),
		cmocka_unit_test(test_client_logins_again),
		cmocka_unit_test(test_user_salt_is_stable),
		cmocka_unit_test(test_mock_exchange_fails),
		cmocka_unit_test(test_server_rejects_malformed_first),
		cmocka_unit_test(test_server_rejects_malformed_final),
		cmocka_unit_test(test_server_accepts_y_flag),
		cmocka_unit_test(test_client_rejects_bad_server_first),
		cmocka_unit_test(test_client_rejects_bad_server_final),
		cmocka_unit_test(test_md5),
		cmocka_unit_test(test_channel_binding_header),
		cmocka_unit_test(test_channel_binding_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
