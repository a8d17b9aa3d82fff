/*
 * OpenSSL contexts and the questions asked about TLS connections. The
 * handshakes themselves run in libevent's OpenSSL filter bufferevents, set up
 * by client.c and server.c.
 */
#include "pgwing/tls.h"

#include "pgwing/log.h"
#include "pgwing/runtime.h"
#include "pgwing/topology.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The process state, given by the runtime at start (tls_init): read, never written. */
static const struct runtime *rt;

void tls_init(const struct runtime *runtime)
{
	rt = runtime;
}

/* ALPN as PostgreSQL 17 defines it: length-prefixed "postgresql". */
static const unsigned char PG_ALPN[] = "\x0apostgresql";
#define PG_ALPN_LEN (sizeof(PG_ALPN) - 1)

static SSL_CTX *client_ctx; /* NULL while client_tls_sslmode is disable */
static SSL_CTX *server_ctx;

/* The most recent OpenSSL error as text (and the queue cleared), for config errors. */
static bool fail_openssl(char *err, size_t errlen, const char *what, const char *file)
{
	char reason[256];

	ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
	ERR_clear_error();
	snprintf(err, errlen, "%s %s: %s", what, file, reason);
	return false;
}

static bool parse_protocol(const char *name, size_t len, int *version)
{
	static const struct {
		const char *name;
		int version;
	} versions[] = {
		{"tlsv1.0", TLS1_VERSION},
		{"tlsv1.1", TLS1_1_VERSION},
		{"tlsv1.2", TLS1_2_VERSION},
		{"tlsv1.3", TLS1_3_VERSION},
	};

	for (size_t i = 0; i < ARRAY_SIZE(versions); i++) {
		if (strlen(versions[i].name) == len && strncmp(name, versions[i].name, len) == 0) {
			*version = versions[i].version;
			return true;
		}
	}
	return false;
}

/* client_tls_protocols to the range of versions OpenSSL allows. */
static bool set_protocols(SSL_CTX *ctx, const char *list, char *err, size_t errlen)
{
	int lowest = 0, highest = 0, version;

	if (strcmp(list, "secure") == 0)
		list = "tlsv1.2,tlsv1.3";
	else if (strcmp(list, "all") == 0)
		list = "tlsv1.0,tlsv1.3";
	for (const char *p = list; *p != '\0';) {
		size_t len;

		p += strspn(p, ", \t");
		len = strcspn(p, ", \t");
		if (len == 0)
			break;
		if (!parse_protocol(p, len, &version)) {
			snprintf(err, errlen, "client_tls_protocols: unknown protocol \"%.*s\"",
				 (int)len, p);
			return false;
		}
		if (lowest == 0 || version < lowest)
			lowest = version;
		if (version > highest)
			highest = version;
		p += len;
	}
	if (lowest == 0) {
		snprintf(err, errlen, "client_tls_protocols: no protocol given");
		return false;
	}
	SSL_CTX_set_min_proto_version(ctx, lowest);
	SSL_CTX_set_max_proto_version(ctx, highest);
	return true;
}

/*
 * Offer only "postgresql". A client that offers ALPN without it speaks
 * something else (PostgreSQL refuses it too); one that offers none came through
 * SSLRequest from an older libpq, and client.c refuses it on direct TLS.
 */
static int select_alpn(SSL *ssl UNUSED, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg UNUSED)
{
	unsigned char *selected;

	if (SSL_select_next_proto(&selected, outlen, PG_ALPN, PG_ALPN_LEN, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = selected;
	return SSL_TLSEXT_ERR_OK;
}

/*
 * A private key others can read is no longer private, so refuse it as Postgres
 * does (be-secure-common.c): owned by us, nothing for group or others (0600);
 * owned by root, the group may read (0640), which lets a shared ssl-cert group
 * hand the key to the daemon.
 */
static bool check_key_permissions(const char *key, char *err, size_t errlen)
{
	struct stat st;

	if (stat(key, &st) != 0) {
		snprintf(err, errlen, "could not access private key file %s: %s", key,
			 strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "private key file %s is not a regular file", key);
		return false;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errlen, "private key file %s must be owned by pgwing's user or root",
			 key);
		return false;
	}
	if ((st.st_uid != 0 && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
	    (st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)))) {
		snprintf(err, errlen,
			 "private key file %s has group or world access (mode %04o): it must be "
			 "u=rw (0600) or less if owned by pgwing's user, or u=rw,g=r (0640) or "
			 "less if owned by root",
			 key, (unsigned)(st.st_mode & 07777));
		return false;
	}
	return true;
}

static bool load_cert_and_key(SSL_CTX *ctx, const char *cert, const char *key, char *err,
			      size_t errlen)
{
	if (!check_key_permissions(key, err, errlen))
		return false;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		return fail_openssl(err, errlen, "could not load certificate", cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		return fail_openssl(err, errlen, "could not load private key", key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return fail_openssl(err, errlen, "private key does not match certificate", cert);
	return true;
}

static SSL_CTX *new_client_ctx(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		fail_openssl(err, errlen, "could not create a TLS context", "for clients");
		return NULL;
	}
	/* Like PostgreSQL: no renegotiation, no session cache (connections are long-lived). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
	if (!set_protocols(ctx, cfg->client_tls_protocols, err, errlen))
		goto fail;
	if (SSL_CTX_set_cipher_list(ctx, cfg->client_tls_ciphers) != 1) {
		fail_openssl(err, errlen, "client_tls_ciphers: no usable cipher in",
			     cfg->client_tls_ciphers);
		goto fail;
	}
	if (!load_cert_and_key(ctx, cfg->client_tls_cert_file, cfg->client_tls_key_file, err,
			       errlen))
		goto fail;
	if (cfg->client_tls_sslmode >= TLS_VERIFY_CA) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_tls_ca_file);

		if (names == NULL ||
		    SSL_CTX_load_verify_locations(ctx, cfg->client_tls_ca_file, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			fail_openssl(err, errlen, "could not load CA file",
				     cfg->client_tls_ca_file);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL_CTX *new_server_ctx(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		fail_openssl(err, errlen, "could not create a TLS context", "for servers");
		return NULL;
	}
	/* libpq's default minimum since PostgreSQL 14. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	if (cfg->server_tls_ca_file[0] != '\0') {
		if (SSL_CTX_load_verify_locations(ctx, cfg->server_tls_ca_file, NULL) != 1) {
			fail_openssl(err, errlen, "could not load CA file",
				     cfg->server_tls_ca_file);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		fail_openssl(err, errlen, "could not load", "the system's trusted CAs");
		goto fail;
	}
	if (cfg->server_tls_cert_file[0] != '\0' &&
	    !load_cert_and_key(ctx, cfg->server_tls_cert_file, cfg->server_tls_key_file, err,
			       errlen))
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

bool tls_configure(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *new_client = NULL, *new_server;

	if (cfg->client_tls_sslmode != TLS_DISABLE) {
		new_client = new_client_ctx(cfg, err, errlen);
		if (new_client == NULL)
			return false;
	}
	new_server = new_server_ctx(cfg, err, errlen);
	if (new_server == NULL) {
		SSL_CTX_free(new_client);
		return false;
	}
	/* Connections made from the old contexts hold their own references. */
	SSL_CTX_free(client_ctx);
	SSL_CTX_free(server_ctx);
	client_ctx = new_client;
	server_ctx = new_server;
	return true;
}

void tls_shutdown(void)
{
	SSL_CTX_free(client_ctx);
	SSL_CTX_free(server_ctx);
	client_ctx = NULL;
	server_ctx = NULL;
}

bool tls_client_is_enabled(void)
{
	/* SET from the console may change the mode before a reload builds the context. */
	return client_ctx != NULL && rt->cfg->client_tls_sslmode != TLS_DISABLE;
}

SSL *tls_client_ssl_new(void)
{
	SSL *ssl = SSL_new(client_ctx);

	if (ssl == NULL)
		log_error("could not create a TLS connection: out of memory");
	return ssl;
}

bool tls_has_postgresql_alpn(SSL *ssl)
{
	const unsigned char *alpn;
	unsigned int len;

	SSL_get0_alpn_selected(ssl, &alpn, &len);
	return len == PG_ALPN_LEN - 1 && memcmp(alpn, PG_ALPN + 1, len) == 0;
}

bool tls_client_cert_matches(SSL *ssl, const char *user)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	char cn[256];
	int len;

	if (cert == NULL)
		return false;
	len = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
					sizeof(cn));
	X509_free(cert);
	/* A CN with an embedded NUL must not match a prefix of it. */
	return len >= 0 && (size_t)len == strlen(cn) && strcmp(cn, user) == 0;
}

enum tls_mode tls_server_mode(const struct backend *b)
{
	enum tls_mode mode;

	/* As libpq: a unix socket needs no TLS, whatever the mode. */
	if (b->host[0] == '/')
		return TLS_DISABLE;
	if (b->sslmode != NULL && config_parse_tls_mode(b->sslmode, &mode))
		return mode;
	return rt->cfg->server_tls_sslmode;
}

SSL *tls_server_ssl_new(const char *host, enum tls_mode mode)
{
	SSL *ssl = SSL_new(server_ctx);
	unsigned char addr[sizeof(struct in6_addr)];
	bool is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;

	if (ssl == NULL) {
		log_error("could not create a TLS connection: out of memory");
		return NULL;
	}
	/* SNI carries names only (RFC 6066). */
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, host);
	if (mode >= TLS_VERIFY_CA)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	if (mode == TLS_VERIFY_FULL) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
			       : X509_VERIFY_PARAM_set1_host(param, host, 0);

		if (ok != 1) {
			log_error("could not set the host name to verify: %s", host);
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

SSL *tls_of(struct bufferevent *bev)
{
	return bufferevent_openssl_get_ssl(bev);
}

void tls_describe_error(struct bufferevent *bev, char *buf, size_t buflen)
{
	SSL *ssl = tls_of(bev);
	unsigned long e = bufferevent_get_openssl_error(bev);
	long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (verify != X509_V_OK) {
		snprintf(buf, buflen, "certificate verify failed: %s",
			 X509_verify_cert_error_string(verify));
	} else if (e != 0) {
		char reason[256];

		ERR_error_string_n(e, reason, sizeof(reason));
		snprintf(buf, buflen, "TLS error: %s", reason);
	} else if (errno != 0) {
		snprintf(buf, buflen, "TLS handshake: %s", strerror(errno));
	} else {
		snprintf(buf, buflen, "connection closed during the TLS handshake");
	}
	/* What is left of the queue belongs to this connection only. */
	while (bufferevent_get_openssl_error(bev) != 0)
		continue;
}

bool tls_server_end_point(SSL *ssl, uint8_t out[SCRAM_CBIND_MAX], size_t *len)
{
	X509 *cert = SSL_get_certificate(ssl);
	const EVP_MD *md;
	unsigned int n;
	int algo;

	if (cert == NULL || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo, NULL))
		return false;
	/* RFC 5929 4.1: MD5 and SHA-1 are replaced by SHA-256. */
	if (algo == NID_md5 || algo == NID_sha1)
		algo = NID_sha256;
	md = EVP_get_digestbynid(algo);
	if (md == NULL || EVP_MD_size(md) > SCRAM_CBIND_MAX || X509_digest(cert, md, out, &n) != 1)
		return false;
	*len = n;
	return true;
}
