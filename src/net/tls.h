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

/* Whether a server asks TLS clients for a certificate (mTLS). */
enum pt_tls_client_cert {
    PT_TLS_CLIENT_CERT_NONE = 0, /* not asked for */
    /* Asked for: none is fine; one that fails verification fails the
     * handshake (nginx's ssl_verify_client optional). */
    PT_TLS_CLIENT_CERT_OPTIONAL,
    /* A certificate that passes verification, or the handshake fails. */
    PT_TLS_CLIENT_CERT_REQUIRED,
};

struct pt_tls_client_verify {
    enum pt_tls_client_cert mode;
    const char
        *ca_file; /* PEM CA bundle: trust anchors, and the names sent in CertificateRequest */
    const char *crl_file; /* PEM CRLs, or NULL; then the leaf's issuer must have a current CRL */
    unsigned depth;       /* most intermediate CAs between a client certificate and an anchor */
};

/* Status: 0, or PT_ERR_CONFIG with a message in err that starts with the
 * field at fault, "client_ca_file" or "crl_file" (a bundle without any
 * certificate, a file OpenSSL cannot read or parse, a CRL file without any
 * CRL). Makes ctx, a server context, verify client certificates as v says;
 * mode NONE leaves ctx unchanged. Control thread, before ctx is shared. */
int pt_tls_server_ctx_verify_clients(SSL_CTX *ctx, const struct pt_tls_client_verify *v, char *err,
                                     size_t errlen);

/* Pointer: a client context, or NULL with a message in err. verify checks
 * the server against ca_file (NULL: system store); cert_file/key_file (may
 * be NULL) present a client certificate; alpn_h2 offers "h2" only, else
 * "http/1.1" only. */
SSL_CTX *pt_tls_client_ctx_new(const char *ca_file, bool verify, const char *cert_file,
                               const char *key_file, bool alpn_h2, char *err, size_t errlen);

/*
 * ALPN selection for a server: the first protocol of order[0..n) (server
 * preference) that the client's wire-format list in[0..inlen) offers.
 * Returns SSL_TLSEXT_ERR_OK with *out and *outlen pointing into in, or
 * SSL_TLSEXT_ERR_NOACK when none is offered (the connection goes on
 * without ALPN). For SSL_CTX_set_alpn_select_cb callbacks.
 */
int pt_tls_alpn_choose(const unsigned char *in, unsigned inlen, const char *const *order, size_t n,
                       const unsigned char **out, unsigned char *outlen);

/* Per connection: set SNI (names only) and the name or IP to verify. */
void pt_tls_client_set_peer(SSL *ssl, const char *name);

#endif
