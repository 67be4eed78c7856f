/*
 * net/tls.h - OpenSSL contexts for listeners (server) and services (client).
 *
 * Contexts are built on the control thread when a snapshot compiles and
 * shared read-only by workers (OpenSSL 3 contexts are thread-safe).
 */
#ifndef PT_NET_TLS_H
#define PT_NET_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

/* Pointer: a server context serving cert_file/key_file and choosing ALPN
 * "h2" (when offer_h2) over "http/1.1" (when offer_http1), or NULL with a
 * message in err. */
SSL_CTX *pt_tls_server_ctx_new(const char *cert_file, const char *key_file, bool offer_h2,
                               bool offer_http1, char *err, size_t errlen);

/* Pointer: a client context, or NULL with a message in err. verify checks
 * the server against ca_file (NULL: system store); cert_file/key_file (may
 * be NULL) present a client certificate; alpn_h2 offers "h2" only, else
 * "http/1.1" only. */
SSL_CTX *pt_tls_client_ctx_new(const char *ca_file, bool verify, const char *cert_file,
                               const char *key_file, bool alpn_h2, char *err, size_t errlen);

/* Per connection: set SNI (names only) and the name or IP to verify. */
void pt_tls_client_set_peer(SSL *ssl, const char *name);

#endif
