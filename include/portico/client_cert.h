/*
 * portico/client_cert.h - the client certificate of a TLS connection (mTLS).
 *
 * On a listener with tls.client_cert optional or required, a client that
 * presents a certificate has it verified during the TLS handshake against
 * the listener's tls.client_ca_file (and tls.crl_file); a certificate that
 * fails verification fails the handshake, so no request ever comes with
 * one. After a successful handshake portico reads the certificate once and
 * keeps what identifies the client in one pt_client_cert per connection,
 * shared by every exchange on it (pt_exchange_client_cert()).
 *
 * Values are safe to compare, log and put in headers:
 *   - subject and issuer are RFC 2253 strings in which every byte outside
 *     printable ASCII is escaped (\XX), so they are plain ASCII;
 *   - common_name is UTF-8 without control characters;
 *   - dns_names, uris and emails are printable ASCII without spaces;
 *   - a value that is too long (PT_CLIENT_CERT_MAX_*) or has forbidden
 *     bytes is left out whole, never cut, and `incomplete` is set; SAN
 *     entries beyond PT_CLIENT_CERT_MAX_SANS of one kind are left out too.
 * An identity check must therefore never read "absent" as "not there";
 * policies should refuse a certificate marked incomplete when they match
 * on names.
 *
 * Ownership: portico allocates it; every pointer (strings and arrays) is
 * borrowed for as long as the exchange it came from. Fields may be added at
 * the end in later minor ABI versions; plugins only read it.
 */
#ifndef PORTICO_CLIENT_CERT_H
#define PORTICO_CLIENT_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

/* Entries kept per SAN kind (DNS names, URIs, emails). */
#define PT_CLIENT_CERT_MAX_SANS 16
/* Longest value kept, in bytes, per field. */
#define PT_CLIENT_CERT_MAX_DN 1024
#define PT_CLIENT_CERT_MAX_CN 256
#define PT_CLIENT_CERT_MAX_DNS 253
#define PT_CLIENT_CERT_MAX_URI 2048
#define PT_CLIENT_CERT_MAX_EMAIL 320
#define PT_CLIENT_CERT_MAX_SERIAL 64 /* hex digits: serials of up to 32 octets */

struct pt_client_cert {
    /* The chain verified against the listener's CA bundle. Always true for
     * a certificate exposed by portico today (an unverified one fails the
     * handshake); checks should still test it. */
    bool verified;
    /* Some value was left out (too long, forbidden bytes, too many SANs). */
    bool incomplete;
    struct pt_str subject;     /* RFC 2253, e.g. "CN=svc-a,O=Example"; empty if too long */
    struct pt_str issuer;      /* RFC 2253 */
    struct pt_str common_name; /* the subject's last (most specific) CN; empty if none */
    struct pt_str serial;      /* hex, upper case, as `openssl x509 -serial` prints */
    struct pt_str sha256;      /* SHA-256 of the DER certificate: 64 lower-case hex digits */
    int64_t not_before;        /* validity, Unix seconds (UTC) */
    int64_t not_after;
    const struct pt_str *dns_names; /* subjectAltName dNSName entries, in certificate order */
    size_t n_dns_names;
    const struct pt_str *uris; /* uniformResourceIdentifier entries (SPIFFE ids) */
    size_t n_uris;
    const struct pt_str *emails; /* rfc822Name entries */
    size_t n_emails;
};

#endif
