#include "net/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "portico/errors.h"

static void ssl_error(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s %s: %s", what, file ? file : "", buf);
    ERR_clear_error();
}

struct alpn_pref {
    bool h2;
    bool http1;
};

static const struct alpn_pref prefs[4] = {
    {false, false}, {false, true}, {true, false}, {true, true}};

int pt_tls_alpn_choose(const unsigned char *in, unsigned inlen, const char *const *order, size_t n,
                       const unsigned char **out, unsigned char *outlen)
{
    for (size_t k = 0; k < n; k++) {
        size_t want = strlen(order[k]);
        for (unsigned i = 0; i < inlen;) {
            unsigned l = in[i];
            if (i + 1 + l > inlen)
                break;
            if (l == want && memcmp(in + i + 1, order[k], l) == 0) {
                *out = in + i + 1;
                *outlen = (unsigned char)l;
                return SSL_TLSEXT_ERR_OK;
            }
            i += 1 + l;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const struct alpn_pref *p = arg;
    /* Server preference: h2 first. No overlap: continue without ALPN; the
     * connection is treated as HTTP/1.1. */
    const char *order[2];
    size_t n = 0;
    if (p->h2)
        order[n++] = "h2";
    if (p->http1)
        order[n++] = "http/1.1";
    return pt_tls_alpn_choose(in, inlen, order, n, out, outlen);
}

SSL_CTX *pt_tls_server_ctx_new(const char *cert_file, const char *key_file, bool offer_h2,
                               bool offer_http1, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error(err, errlen, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_error(err, errlen, "loading certificate", cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_error(err, errlen, "loading private key", key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, errlen, "private key does not match certificate", key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select,
                               (void *)&prefs[(offer_h2 ? 2 : 0) | (offer_http1 ? 1 : 0)]);
    return ctx;
}

/* "<field> \"<file>\": <what> (<OpenSSL's reason>)" */
static void file_error(char *err, size_t errlen, const char *field, const char *file,
                       const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    const char *reason = strstr(buf, "::");
    snprintf(err, errlen, "%s \"%s\": %s%s%s%s", field, file, what, *buf ? " (" : "",
             reason ? reason + 2 : buf, *buf ? ")" : "");
    ERR_clear_error();
}

int pt_tls_server_ctx_verify_clients(SSL_CTX *ctx, const struct pt_tls_client_verify *v, char *err,
                                     size_t errlen)
{
    if (v->mode == PT_TLS_CLIENT_CERT_NONE)
        return 0;
    ERR_clear_error();
    /* The names clients see in CertificateRequest (curl, browsers pick a
     * certificate by them), then the same certificates as trust anchors. */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(v->ca_file);
    if (!names || sk_X509_NAME_num(names) == 0) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        file_error(err, errlen, "client_ca_file", v->ca_file, "no PEM certificate could be read");
        return PT_ERR_CONFIG;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    if (SSL_CTX_load_verify_locations(ctx, v->ca_file, NULL) != 1) {
        file_error(err, errlen, "client_ca_file", v->ca_file, "not a valid PEM CA bundle");
        return PT_ERR_CONFIG;
    }
    if (v->crl_file && *v->crl_file) {
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
        int n = lookup ? X509_load_crl_file(lookup, v->crl_file, X509_FILETYPE_PEM) : 0;
        if (n <= 0) {
            file_error(err, errlen, "crl_file", v->crl_file, "no PEM CRL could be read");
            return PT_ERR_CONFIG;
        }
        /* The leaf only: its issuer must have a current CRL in the file. */
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    SSL_CTX_set_verify_depth(ctx, (int)v->depth);
    int mode = SSL_VERIFY_PEER;
    if (v->mode == PT_TLS_CLIENT_CERT_REQUIRED)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    /* OpenSSL refuses to resume a session under SSL_VERIFY_PEER without a
     * session id context. Sessions and tickets are per context, so a
     * reload (a new context) never resumes across CA bundles. */
    static const unsigned char sid_ctx[] = "portico-mtls";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    return 0;
}

SSL_CTX *pt_tls_client_ctx_new(const char *ca_file, bool verify, const char *cert_file,
                               const char *key_file, bool alpn_h2, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_error(err, errlen, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                     : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            ssl_error(err, errlen, "loading CA file", ca_file);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    if (cert_file && *cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
            ssl_error(err, errlen, "loading client certificate", cert_file);
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    static const unsigned char h2[] = "\x02h2";
    static const unsigned char h1[] = "\x08http/1.1";
    if (alpn_h2)
        SSL_CTX_set_alpn_protos(ctx, h2, sizeof(h2) - 1);
    else
        SSL_CTX_set_alpn_protos(ctx, h1, sizeof(h1) - 1);
    return ctx;
}

void pt_tls_client_set_peer(SSL *ssl, const char *name)
{
    if (!name || !*name)
        return;
    unsigned char addr[16];
    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
        return;
    }
    SSL_set_tlsext_host_name(ssl, name);
    SSL_set1_host(ssl, name);
}
