/*
 * tests/unit/net/certs.h - certificates made in memory for the net tests.
 *
 * EC P-256 keys, X.509 v3 certificates with chosen names, SANs (any bytes,
 * so tests can build hostile ones), validity and serial, CRLs, and PEM
 * files in a temporary directory. Test code: any failure aborts the test.
 */
#ifndef PT_TEST_NET_CERTS_H
#define PT_TEST_NET_CERTS_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CERTS_CHECK(cond)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #cond); \
            abort();                                                          \
        }                                                                     \
    } while (0)

static inline EVP_PKEY *certs_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    CERTS_CHECK(k);
    return k;
}

/* A subjectAltName entry: type GEN_DNS, GEN_URI, GEN_EMAIL or GEN_IPADD. */
struct certs_san {
    int type;
    const char *value;
    size_t len; /* 0: strlen(value) */
};

struct certs_spec {
    const char *o;  /* organization, or NULL */
    const char *cn; /* common name, or NULL */
    size_t cn_len;  /* 0: strlen(cn); set to build CNs with any bytes */
    int cn_type;    /* 0: V_ASN1_UTF8STRING; V_ASN1_BMPSTRING takes UTF-16BE bytes */
    const char *ou; /* repeated n_ou times (to make long DNs), or NULL */
    unsigned n_ou;
    const struct certs_san *sans;
    size_t n_sans;
    long serial;       /* 0: 1 */
    time_t not_before; /* 0: now - 1 hour */
    time_t not_after;  /* 0: now + 1 day */
    bool ca;
};

static inline void certs_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    CERTS_CHECK(e);
    CERTS_CHECK(X509_add_ext(x, e, -1) == 1);
    X509_EXTENSION_free(e);
}

/* A certificate for key, signed by issuer/issuer_key (NULL: self-signed). */
static inline X509 *certs_make(const struct certs_spec *s, EVP_PKEY *key, X509 *issuer,
                               EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    CERTS_CHECK(x);
    CERTS_CHECK(X509_set_version(x, 2) == 1);
    CERTS_CHECK(ASN1_INTEGER_set(X509_get_serialNumber(x), s->serial ? s->serial : 1) == 1);
    time_t now = time(NULL);
    CERTS_CHECK(ASN1_TIME_set(X509_getm_notBefore(x), s->not_before ? s->not_before : now - 3600));
    CERTS_CHECK(ASN1_TIME_set(X509_getm_notAfter(x), s->not_after ? s->not_after : now + 86400));
    X509_NAME *name = X509_get_subject_name(x);
    if (s->o)
        CERTS_CHECK(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                               (const unsigned char *)s->o, -1, -1, 0) == 1);
    for (unsigned i = 0; i < s->n_ou; i++)
        CERTS_CHECK(X509_NAME_add_entry_by_txt(name, "OU", V_ASN1_UTF8STRING,
                                               (const unsigned char *)s->ou, -1, -1, 0) == 1);
    if (s->cn) {
        int len = (int)(s->cn_len ? s->cn_len : strlen(s->cn));
        /* An explicit string type skips OpenSSL's length table (CN <= 64). */
        CERTS_CHECK(X509_NAME_add_entry_by_NID(name, NID_commonName,
                                               s->cn_type ? s->cn_type : V_ASN1_UTF8STRING,
                                               (const unsigned char *)s->cn, len, -1, 0) == 1);
    }
    CERTS_CHECK(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) == 1);
    CERTS_CHECK(X509_set_pubkey(x, key) == 1);
    certs_add_ext(x, issuer, NID_basic_constraints, s->ca ? "critical,CA:TRUE" : "CA:FALSE");
    certs_add_ext(x, issuer, NID_key_usage,
                  s->ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    if (!s->ca)
        certs_add_ext(x, issuer, NID_ext_key_usage, "clientAuth,serverAuth");
    certs_add_ext(x, issuer, NID_subject_key_identifier, "hash");
    if (issuer)
        certs_add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
    if (s->n_sans) {
        GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
        CERTS_CHECK(names);
        for (size_t i = 0; i < s->n_sans; i++) {
            const struct certs_san *san = &s->sans[i];
            size_t len = san->len ? san->len : strlen(san->value);
            ASN1_STRING *str = ASN1_STRING_type_new(san->type == GEN_IPADD ? V_ASN1_OCTET_STRING
                                                                           : V_ASN1_IA5STRING);
            CERTS_CHECK(str && ASN1_STRING_set(str, san->value, (int)len) == 1);
            GENERAL_NAME *g = GENERAL_NAME_new();
            CERTS_CHECK(g);
            GENERAL_NAME_set0_value(g, san->type, str);
            CERTS_CHECK(sk_GENERAL_NAME_push(names, g) > 0);
        }
        CERTS_CHECK(X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, 0) == 1);
        GENERAL_NAMES_free(names);
    }
    CERTS_CHECK(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

/* A CRL of issuer revoking the given serials, valid from an hour ago for next_update_s. */
static inline X509_CRL *certs_crl(X509 *issuer, EVP_PKEY *issuer_key, const long *serials, size_t n,
                                  long next_update_s)
{
    X509_CRL *crl = X509_CRL_new();
    CERTS_CHECK(crl);
    CERTS_CHECK(X509_CRL_set_version(crl, 1) == 1);
    CERTS_CHECK(X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) == 1);
    time_t now = time(NULL);
    ASN1_TIME *t = ASN1_TIME_set(NULL, now - 3600);
    CERTS_CHECK(t && X509_CRL_set1_lastUpdate(crl, t) == 1);
    CERTS_CHECK(ASN1_TIME_set(t, now + next_update_s) && X509_CRL_set1_nextUpdate(crl, t) == 1);
    for (size_t i = 0; i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *sn = ASN1_INTEGER_new();
        CERTS_CHECK(r && sn && ASN1_INTEGER_set(sn, serials[i]) == 1);
        CERTS_CHECK(X509_REVOKED_set_serialNumber(r, sn) == 1);
        ASN1_TIME_set(t, now - 1800);
        CERTS_CHECK(X509_REVOKED_set_revocationDate(r, t) == 1);
        CERTS_CHECK(X509_CRL_add0_revoked(crl, r) == 1);
        ASN1_INTEGER_free(sn);
    }
    ASN1_TIME_free(t);
    X509_CRL_sort(crl);
    CERTS_CHECK(X509_CRL_sign(crl, issuer_key, EVP_sha256()) > 0);
    return crl;
}

/* Write PEM blocks to dir/name; returns the path (static storage rotated over 8 calls). */
static inline const char *certs_path(const char *dir, const char *name)
{
    static char paths[8][512];
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static inline FILE *certs_open(const char *path)
{
    FILE *f = fopen(path, "w");
    CERTS_CHECK(f);
    return f;
}

static inline void certs_write_cert(FILE *f, X509 *x)
{
    CERTS_CHECK(PEM_write_X509(f, x) == 1);
}

static inline void certs_write_key(FILE *f, EVP_PKEY *k)
{
    CERTS_CHECK(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1);
}

static inline void certs_write_crl(FILE *f, X509_CRL *c)
{
    CERTS_CHECK(PEM_write_X509_CRL(f, c) == 1);
}

#endif
