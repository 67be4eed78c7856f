#include "net/client_cert.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"

/* Strings are gathered as offsets into one growing buffer, then the struct,
 * the SAN arrays and the bytes become a single allocation. */
struct field {
    size_t off;
    size_t len;
};

struct san_list {
    struct field v[PT_CLIENT_CERT_MAX_SANS];
    size_t n;
};

struct builder {
    char *buf;
    size_t len;
    size_t cap;
    bool incomplete;
    struct field subject, issuer, cn, serial, sha256;
    struct san_list dns, uris, emails;
};

struct cert_block {
    unsigned refs;
    struct pt_client_cert pub;
    struct pt_str dns[PT_CLIENT_CERT_MAX_SANS];
    struct pt_str uris[PT_CLIENT_CERT_MAX_SANS];
    struct pt_str emails[PT_CLIENT_CERT_MAX_SANS];
    char data[];
};

enum charset {
    CHARS_TOKEN, /* printable ASCII, no space (SAN entries) */
    CHARS_TEXT,  /* printable ASCII with space (escaped DNs, hex) */
    CHARS_UTF8,  /* valid UTF-8, no C0/C1 control characters, no DEL */
};

/* Length of the valid UTF-8 sequence at s (not a control character), or 0. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c >= 0x20 && c < 0x7f)
        return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0; /* ASCII control, DEL, continuation byte, 0xc0/0xc1, > 0xf4 */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
        return 0;
    return len;
}

static bool allowed(const unsigned char *s, size_t n, enum charset cs)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (cs == CHARS_UTF8) {
            size_t l = utf8_char(s + i, n - i);
            if (!l)
                return false;
            i += l;
            continue;
        }
        if (c > 0x7e || c < (cs == CHARS_TOKEN ? 0x21u : 0x20u))
            return false;
        i++;
    }
    return true;
}

/* Keep s in the buffer when it fits max and cs; else leave it out and mark
 * the result incomplete. Returns whether it was kept. */
static bool keep(struct builder *b, const void *s, size_t n, size_t max, enum charset cs,
                 struct field *f)
{
    f->off = 0;
    f->len = 0;
    if (n == 0)
        return false;
    if (n > max || !allowed(s, n, cs)) {
        b->incomplete = true;
        return false;
    }
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap - b->len < n)
            cap *= 2;
        b->buf = pt_xrealloc(b->buf, cap);
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    f->off = b->len;
    f->len = n;
    b->len += n;
    return true;
}

static void keep_dn(struct builder *b, const X509_NAME *name, struct field *f)
{
    f->len = 0;
    if (!name)
        return;
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        pt_abort_oom(sizeof(BIO *));
    /* RFC 2253 with every byte >= 0x80 and every control byte escaped. */
    int r = X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);
    if (r < 0 || n < 0)
        b->incomplete = true;
    else
        keep(b, p, (size_t)n, PT_CLIENT_CERT_MAX_DN, CHARS_TEXT, f);
    BIO_free(bio);
}

static void keep_cn(struct builder *b, const X509_NAME *name)
{
    int last = -1;
    for (int i = -1; name && (i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0;)
        last = i;
    if (last < 0)
        return;
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, last));
    unsigned char *utf8 = NULL;
    int n = s ? ASN1_STRING_to_UTF8(&utf8, s) : -1;
    if (n < 0)
        b->incomplete = true;
    else
        keep(b, utf8, (size_t)n, PT_CLIENT_CERT_MAX_CN, CHARS_UTF8, &b->cn);
    OPENSSL_free(utf8);
}

static void keep_san(struct builder *b, struct san_list *l, const ASN1_STRING *s, size_t max)
{
    if (l->n == PT_CLIENT_CERT_MAX_SANS) {
        b->incomplete = true;
        return;
    }
    if (keep(b, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s), max, CHARS_TOKEN,
             &l->v[l->n]))
        l->n++;
}

static void keep_sans(struct builder *b, X509 *cert)
{
    int crit = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (!names) {
        /* -1: no SAN extension; anything else (several, or undecodable)
         * means names we cannot report. */
        if (crit != -1)
            b->incomplete = true;
        return;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        switch (g->type) {
        case GEN_DNS:
            keep_san(b, &b->dns, g->d.dNSName, PT_CLIENT_CERT_MAX_DNS);
            break;
        case GEN_URI:
            keep_san(b, &b->uris, g->d.uniformResourceIdentifier, PT_CLIENT_CERT_MAX_URI);
            break;
        case GEN_EMAIL:
            keep_san(b, &b->emails, g->d.rfc822Name, PT_CLIENT_CERT_MAX_EMAIL);
            break;
        default:
            break; /* IP addresses, directory names, ...: not reported */
        }
    }
    GENERAL_NAMES_free(names);
}

static void keep_serial(struct builder *b, X509 *cert)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (!hex)
        b->incomplete = true;
    else
        keep(b, hex, strlen(hex), PT_CLIENT_CERT_MAX_SERIAL, CHARS_TOKEN, &b->serial);
    OPENSSL_free(hex);
    BN_free(bn);
}

static void keep_sha256(struct builder *b, X509 *cert)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32) {
        b->incomplete = true;
        return;
    }
    static const char hex[] = "0123456789abcdef";
    char out[64];
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    keep(b, out, sizeof(out), sizeof(out), CHARS_TOKEN, &b->sha256);
}

static int64_t unix_time(const ASN1_TIME *t, bool *ok)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
        *ok = false;
        return 0;
    }
    return (int64_t)timegm(&tm);
}

static struct pt_str str_at(const struct cert_block *blk, struct field f)
{
    return f.len ? (struct pt_str){blk->data + f.off, f.len} : PT_STR_NULL;
}

static size_t put_sans(const struct cert_block *blk, struct pt_str *out, const struct san_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        out[i] = str_at(blk, l->v[i]);
    return l->n;
}

struct pt_client_cert *pt_client_cert_new(X509 *cert, bool verified)
{
    struct builder b;
    memset(&b, 0, sizeof(b));
    keep_dn(&b, X509_get_subject_name(cert), &b.subject);
    keep_dn(&b, X509_get_issuer_name(cert), &b.issuer);
    keep_cn(&b, X509_get_subject_name(cert));
    keep_serial(&b, cert);
    keep_sha256(&b, cert);
    keep_sans(&b, cert);
    bool times_ok = true;
    int64_t not_before = unix_time(X509_get0_notBefore(cert), &times_ok);
    int64_t not_after = unix_time(X509_get0_notAfter(cert), &times_ok);
    if (!times_ok)
        b.incomplete = true;

    struct cert_block *blk = pt_xmalloc(sizeof(*blk) + b.len);
    memset(blk, 0, sizeof(*blk));
    if (b.len)
        memcpy(blk->data, b.buf, b.len);
    free(b.buf);
    blk->refs = 1;
    struct pt_client_cert *c = &blk->pub;
    c->verified = verified;
    c->incomplete = b.incomplete;
    c->subject = str_at(blk, b.subject);
    c->issuer = str_at(blk, b.issuer);
    c->common_name = str_at(blk, b.cn);
    c->serial = str_at(blk, b.serial);
    c->sha256 = str_at(blk, b.sha256);
    c->not_before = not_before;
    c->not_after = not_after;
    c->n_dns_names = put_sans(blk, blk->dns, &b.dns);
    c->dns_names = blk->dns;
    c->n_uris = put_sans(blk, blk->uris, &b.uris);
    c->uris = blk->uris;
    c->n_emails = put_sans(blk, blk->emails, &b.emails);
    c->emails = blk->emails;
    return c;
}

struct pt_client_cert *pt_client_cert_of_ssl(SSL *ssl)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert)
        return NULL;
    return pt_client_cert_new(cert, SSL_get_verify_result(ssl) == X509_V_OK);
}

static struct cert_block *block_of(const struct pt_client_cert *c)
{
    return (struct cert_block *)((char *)c - offsetof(struct cert_block, pub));
}

void pt_client_cert_ref(const struct pt_client_cert *c)
{
    if (c)
        block_of(c)->refs++;
}

void pt_client_cert_unref(const struct pt_client_cert *c)
{
    if (!c)
        return;
    struct cert_block *blk = block_of(c);
    if (--blk->refs == 0)
        free(blk);
}
