/*
 * Tests for net/tls's client-certificate verification on server contexts:
 * real TLS handshakes between an OpenSSL client and server joined by a
 * memory BIO pair (no sockets), with certificates made by the test
 * (certs.h): required and optional modes, foreign, expired and revoked
 * certificates, intermediate CAs against verify_depth, and the errors a
 * broken CA bundle or CRL file gives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>

#include "certs.h"
#include "net/client_cert.h"
#include "net/tls.h"
#include "portico/errors.h"

static char dir[] = "/tmp/portico-test-tls-XXXXXX";
static EVP_PKEY *ca_key, *other_key, *inter_key, *leaf_key;
static X509 *ca, *other, *inter;
static char server_cert[512], server_key[512], ca_file[512], other_file[512];

enum client_kind {
    CLIENT_NONE,
    CLIENT_GOOD,
    CLIENT_FOREIGN,
    CLIENT_EXPIRED,
    CLIENT_REVOKED,
    CLIENT_VIA_INTERMEDIATE,
};
static X509 *clients[6];

static void write_file(char *path, const char *name, X509 *cert, EVP_PKEY *key)
{
    snprintf(path, 512, "%s/%s", dir, name);
    FILE *f = certs_open(path);
    if (cert)
        certs_write_cert(f, cert);
    if (key)
        certs_write_key(f, key);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    ca_key = certs_key();
    other_key = certs_key();
    inter_key = certs_key();
    leaf_key = certs_key();
    struct certs_spec cas = {.o = "Example", .cn = "Client CA", .ca = true, .serial = 1};
    ca = certs_make(&cas, ca_key, NULL, NULL);
    struct certs_spec os = {.o = "Example", .cn = "Other CA", .ca = true, .serial = 1};
    other = certs_make(&os, other_key, NULL, NULL);
    struct certs_spec is = {.o = "Example", .cn = "Intermediate CA", .ca = true, .serial = 50};
    inter = certs_make(&is, inter_key, ca, ca_key);

    EVP_PKEY *sk = certs_key();
    struct certs_spec ss = {.cn = "localhost", .serial = 2};
    X509 *server = certs_make(&ss, sk, ca, ca_key);
    write_file(server_cert, "server.pem", server, NULL);
    write_file(server_key, "server.key", NULL, sk);
    X509_free(server);
    EVP_PKEY_free(sk);
    write_file(ca_file, "ca.pem", ca, NULL);
    write_file(other_file, "other.pem", other, NULL);

    struct certs_spec good = {.cn = "svc-a", .serial = 10};
    clients[CLIENT_GOOD] = certs_make(&good, leaf_key, ca, ca_key);
    clients[CLIENT_FOREIGN] = certs_make(&good, leaf_key, other, other_key);
    time_t now = time(NULL);
    struct certs_spec old = {.cn = "svc-old",
                             .serial = 11,
                             .not_before = now - 10 * 86400,
                             .not_after = now - 9 * 86400};
    clients[CLIENT_EXPIRED] = certs_make(&old, leaf_key, ca, ca_key);
    struct certs_spec rev = {.cn = "svc-revoked", .serial = 12};
    clients[CLIENT_REVOKED] = certs_make(&rev, leaf_key, ca, ca_key);
    struct certs_spec deep = {.cn = "svc-deep", .serial = 13};
    clients[CLIENT_VIA_INTERMEDIATE] = certs_make(&deep, leaf_key, inter, inter_key);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < 6; i++)
        X509_free(clients[i]);
    X509_free(ca);
    X509_free(other);
    X509_free(inter);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(inter_key);
    EVP_PKEY_free(leaf_key);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static SSL_CTX *server_ctx(enum pt_tls_client_cert mode, const char *cas, const char *crl,
                           unsigned depth)
{
    char err[512];
    SSL_CTX *ctx = pt_tls_server_ctx_new(server_cert, server_key, true, true, err, sizeof(err));
    assert_non_null(ctx);
    struct pt_tls_client_verify v = {.mode = mode, .ca_file = cas, .crl_file = crl, .depth = depth};
    assert_int_equal(pt_tls_server_ctx_verify_clients(ctx, &v, err, sizeof(err)), 0);
    return ctx;
}

/*
 * Handshake a client presenting `kind` (at most tls_max) with a server on
 * sctx. Returns whether the server side completed it; *cert receives what
 * the server read of the client's certificate (NULL when none).
 */
static bool handshake(SSL_CTX *sctx, enum client_kind kind, int tls_max,
                      struct pt_client_cert **cert)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(cctx);
    SSL_CTX_set_max_proto_version(cctx, tls_max);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    if (kind != CLIENT_NONE) {
        assert_int_equal(SSL_CTX_use_certificate(cctx, clients[kind]), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(cctx, leaf_key), 1);
        if (kind == CLIENT_VIA_INTERMEDIATE)
            assert_int_equal(SSL_CTX_add1_chain_cert(cctx, inter), 1);
    }
    SSL *c = SSL_new(cctx);
    SSL *s = SSL_new(sctx);
    BIO *cb, *sb;
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    int cr = 0, sr = 0;
    bool failed = false;
    for (int i = 0; i < 50 && sr != 1 && !failed; i++) {
        if (cr != 1) {
            cr = SSL_do_handshake(c);
            if (cr != 1 && SSL_get_error(c, cr) != SSL_ERROR_WANT_READ)
                failed = true; /* the client saw the server's alert */
        }
        sr = SSL_do_handshake(s);
        if (sr != 1 && SSL_get_error(s, sr) != SSL_ERROR_WANT_READ)
            failed = true;
    }
    ERR_clear_error();
    *cert = sr == 1 ? pt_client_cert_of_ssl(s) : NULL;
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(cctx);
    return sr == 1;
}

static const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};

static void test_tls__required_accepts_only_a_valid_certificate(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(PT_TLS_CLIENT_CERT_REQUIRED, ca_file, NULL, 4);
    for (size_t v = 0; v < 2; v++) {
        struct pt_client_cert *c;
        assert_true(handshake(sctx, CLIENT_GOOD, versions[v], &c));
        assert_non_null(c);
        assert_true(c->verified);
        assert_int_equal(c->common_name.len, 5);
        assert_memory_equal(c->common_name.ptr, "svc-a", 5);
        pt_client_cert_unref(c);
        assert_false(handshake(sctx, CLIENT_NONE, versions[v], &c));
        assert_false(handshake(sctx, CLIENT_FOREIGN, versions[v], &c));
        assert_false(handshake(sctx, CLIENT_EXPIRED, versions[v], &c));
    }
    SSL_CTX_free(sctx);
}

static void test_tls__optional_accepts_none_but_not_an_invalid_one(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(PT_TLS_CLIENT_CERT_OPTIONAL, ca_file, NULL, 4);
    for (size_t v = 0; v < 2; v++) {
        struct pt_client_cert *c;
        assert_true(handshake(sctx, CLIENT_NONE, versions[v], &c));
        assert_null(c);
        assert_true(handshake(sctx, CLIENT_GOOD, versions[v], &c));
        assert_non_null(c);
        pt_client_cert_unref(c);
        assert_false(handshake(sctx, CLIENT_FOREIGN, versions[v], &c));
        assert_false(handshake(sctx, CLIENT_EXPIRED, versions[v], &c));
    }
    SSL_CTX_free(sctx);
}

static void test_tls__none_asks_for_nothing(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(PT_TLS_CLIENT_CERT_NONE, NULL, NULL, 0);
    struct pt_client_cert *c;
    assert_true(handshake(sctx, CLIENT_GOOD, TLS1_3_VERSION, &c));
    assert_null(c); /* never requested, so never sent */
    assert_true(handshake(sctx, CLIENT_FOREIGN, TLS1_2_VERSION, &c));
    assert_null(c);
    SSL_CTX_free(sctx);
}

static void test_tls__crl_rejects_revoked_and_needs_the_issuers_crl(void **state)
{
    (void)state;
    char crl_file[512], other_crl[512];
    long revoked = 12;
    X509_CRL *crl = certs_crl(ca, ca_key, &revoked, 1, 86400);
    snprintf(crl_file, sizeof(crl_file), "%s/ca.crl", dir);
    FILE *f = certs_open(crl_file);
    certs_write_crl(f, crl);
    fclose(f);
    X509_CRL_free(crl);
    crl = certs_crl(other, other_key, NULL, 0, 86400);
    snprintf(other_crl, sizeof(other_crl), "%s/other.crl", dir);
    f = certs_open(other_crl);
    certs_write_crl(f, crl);
    fclose(f);
    X509_CRL_free(crl);

    SSL_CTX *sctx = server_ctx(PT_TLS_CLIENT_CERT_REQUIRED, ca_file, crl_file, 4);
    struct pt_client_cert *c;
    assert_true(handshake(sctx, CLIENT_GOOD, TLS1_3_VERSION, &c));
    pt_client_cert_unref(c);
    assert_false(handshake(sctx, CLIENT_REVOKED, TLS1_3_VERSION, &c));
    assert_false(handshake(sctx, CLIENT_REVOKED, TLS1_2_VERSION, &c));
    SSL_CTX_free(sctx);

    /* A CRL file without the client CA's CRL: nobody of that CA gets in. */
    sctx = server_ctx(PT_TLS_CLIENT_CERT_REQUIRED, ca_file, other_crl, 4);
    assert_false(handshake(sctx, CLIENT_GOOD, TLS1_3_VERSION, &c));
    SSL_CTX_free(sctx);
}

static void test_tls__verify_depth_limits_intermediates(void **state)
{
    (void)state;
    struct pt_client_cert *c;
    /* leaf <- intermediate (sent by the client) <- CA of the bundle */
    SSL_CTX *sctx = server_ctx(PT_TLS_CLIENT_CERT_REQUIRED, ca_file, NULL, 1);
    assert_true(handshake(sctx, CLIENT_VIA_INTERMEDIATE, TLS1_3_VERSION, &c));
    assert_non_null(c);
    pt_client_cert_unref(c);
    /* Depth 1 still takes a leaf issued by the bundle's CA itself. */
    assert_true(handshake(sctx, CLIENT_GOOD, TLS1_3_VERSION, &c));
    pt_client_cert_unref(c);
    SSL_CTX_free(sctx);
    /* Depth 0: only certificates issued directly by a CA of the bundle. */
    sctx = server_ctx(PT_TLS_CLIENT_CERT_REQUIRED, ca_file, NULL, 0);
    assert_false(handshake(sctx, CLIENT_VIA_INTERMEDIATE, TLS1_3_VERSION, &c));
    assert_true(handshake(sctx, CLIENT_GOOD, TLS1_3_VERSION, &c));
    pt_client_cert_unref(c);
    SSL_CTX_free(sctx);
}

static void assert_config_error(const char *cas, const char *crl, const char *want)
{
    char err[512];
    SSL_CTX *ctx = pt_tls_server_ctx_new(server_cert, server_key, true, true, err, sizeof(err));
    assert_non_null(ctx);
    struct pt_tls_client_verify v = {
        .mode = PT_TLS_CLIENT_CERT_REQUIRED, .ca_file = cas, .crl_file = crl, .depth = 4};
    err[0] = '\0';
    assert_int_equal(pt_tls_server_ctx_verify_clients(ctx, &v, err, sizeof(err)), PT_ERR_CONFIG);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    SSL_CTX_free(ctx);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_tls__bad_bundles_and_crl_files_are_config_errors(void **state)
{
    (void)state;
    char garbage[512], empty[512], missing[512];
    snprintf(garbage, sizeof(garbage), "%s/garbage.pem", dir);
    FILE *f = certs_open(garbage);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    snprintf(empty, sizeof(empty), "%s/empty.pem", dir);
    fclose(certs_open(empty));
    snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
    assert_config_error(garbage, NULL, "client_ca_file");
    assert_config_error(empty, NULL, "client_ca_file");
    assert_config_error(missing, NULL, "client_ca_file");
    /* A key file is not a CA bundle. */
    assert_config_error(server_key, NULL, "no PEM certificate could be read");
    /* A certificate is not a CRL. */
    assert_config_error(ca_file, ca_file, "crl_file");
    assert_config_error(ca_file, empty, "crl_file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls__required_accepts_only_a_valid_certificate),
        cmocka_unit_test(test_tls__optional_accepts_none_but_not_an_invalid_one),
        cmocka_unit_test(test_tls__none_asks_for_nothing),
        cmocka_unit_test(test_tls__crl_rejects_revoked_and_needs_the_issuers_crl),
        cmocka_unit_test(test_tls__verify_depth_limits_intermediates),
        cmocka_unit_test(test_tls__bad_bundles_and_crl_files_are_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
