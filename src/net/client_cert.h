/*
 * net/client_cert.h - reading a verified client certificate into the
 * struct pt_client_cert that filters see (portico/client_cert.h).
 *
 * Read once per connection, right after its server TLS handshake; the
 * result is one allocation (struct, arrays and strings), reference-counted
 * because the downstream connection and a WebSocket tunnel that takes over
 * its exchange may each outlive the other. Counts are not atomic: a
 * certificate belongs to the worker of its connection.
 *
 * Everything is bounded (PT_CLIENT_CERT_MAX_*): a value over its limit or
 * with forbidden bytes is left out whole and marks the result incomplete.
 */
#ifndef PT_NET_CLIENT_CERT_H
#define PT_NET_CLIENT_CERT_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>

#include "portico/client_cert.h"

/* Pointer: never NULL (allocation failure aborts); one reference for the
 * caller. verified is copied into the result as is. Any thread. */
struct pt_client_cert *pt_client_cert_new(X509 *cert, bool verified);

/* Pointer: the certificate the peer of a server-side ssl presented, after
 * the handshake, or NULL when it sent none. verified is true when OpenSSL's
 * verification result is X509_V_OK. One reference for the caller. */
struct pt_client_cert *pt_client_cert_of_ssl(SSL *ssl);

/* Take one more reference; NULL is a no-op. */
void pt_client_cert_ref(const struct pt_client_cert *c);
/* Drop one reference, freeing at the last; NULL is a no-op. */
void pt_client_cert_unref(const struct pt_client_cert *c);

#endif
