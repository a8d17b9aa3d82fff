/*
 * TLS: the OpenSSL context clients connect to, the one used towards servers,
 * and the few questions the connection state machines ask about a TLS
 * bufferevent. Contexts are rebuilt on reload; SSL objects already made keep
 * the context they were made from (SSL_CTX is reference counted), so a reload
 * never drops an established connection.
 */
#ifndef PGWING_TLS_H
#define PGWING_TLS_H

#include "pgwing/config.h"
#include "pgwing/scram.h"

#include <openssl/ssl.h>

struct backend;
struct bufferevent;

/* The first byte of a TLS handshake record: a ClientHello where a startup packet should be. */
#define TLS_HANDSHAKE_RECORD 0x16

/*
 * Build both contexts from cfg (reading certificates, keys and CAs) and, on
 * success, make them the ones new connections use. On failure the running
 * contexts stay and err says why.
 */
bool tls_configure(const struct config *cfg, char *err, size_t errlen);
void tls_shutdown(void);

/* Clients may use TLS: SSLRequest is answered 'S' and direct TLS is accepted. */
bool tls_client_is_enabled(void);
/* A new SSL object for an accepted client, or NULL when out of memory (logged). */
SSL *tls_client_ssl_new(void);
/* The negotiated ALPN is "postgresql", as a direct TLS connection must have. */
bool tls_has_postgresql_alpn(SSL *ssl);
/* The CN of the client's certificate equals user (client_tls_sslmode verify-full). */
bool tls_client_cert_matches(SSL *ssl, const char *user);

/* The mode towards b: its sslmode= when set, else server_tls_sslmode. */
enum tls_mode tls_server_mode(const struct backend *b);
/* A new SSL object to connect to host in mode (SNI, verification), or NULL (logged). */
SSL *tls_server_ssl_new(const char *host, enum tls_mode mode);

/* The SSL object of a TLS bufferevent, NULL for a plaintext one. */
SSL *tls_of(struct bufferevent *bev);
/*
 * Why the handshake on bev failed, for a message: the certificate verification
 * error when there is one, else OpenSSL's error queue for bev.
 */
void tls_describe_error(struct bufferevent *bev, char *buf, size_t buflen);
/* tls-server-end-point (RFC 5929) of our certificate on ssl; false when not available. */
bool tls_server_end_point(SSL *ssl, uint8_t out[SCRAM_CBIND_MAX], size_t *len);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void tls_init(const struct runtime *runtime);

#endif
