/*
 * Tests for net/client_cert: what a filter sees of a client certificate.
 * Certificates are built in memory (certs.h), including ones a CA should
 * never sign (control bytes, spaces, oversized names, too many SANs): the
 * reader must keep only safe values, whole, and say when it left some out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "certs.h"
#include "net/client_cert.h"

static EVP_PKEY *ca_key;
static X509 *ca;

static int setup(void **state)
{
    (void)state;
    ca_key = certs_key();
    struct certs_spec s = {.o = "Example", .cn = "Example Client CA", .ca = true, .serial = 7};
    ca = certs_make(&s, ca_key, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return 0;
}

/* Read a certificate made from spec, signed by the CA. */
static struct pt_client_cert *read_spec(const struct certs_spec *s, X509 **out)
{
    EVP_PKEY *k = certs_key();
    X509 *x = certs_make(s, k, ca, ca_key);
    EVP_PKEY_free(k);
    struct pt_client_cert *c = pt_client_cert_new(x, true);
    if (out)
        *out = x;
    else
        X509_free(x);
    return c;
}

static void assert_str(struct pt_str s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static void test_client_cert__reads_names_sans_serial_fingerprint_and_validity(void **state)
{
    (void)state;
    static const char ip[4] = {127, 0, 0, 1};
    const struct certs_san sans[] = {
        {GEN_DNS, "svc-a.internal", 0},
        {GEN_URI, "spiffe://example.org/ns/prod/sa/svc-a", 0},
        {GEN_IPADD, ip, 4},
        {GEN_EMAIL, "svc-a@example.org", 0},
        {GEN_DNS, "svc-a.example.org", 0},
    };
    struct certs_spec s = {.o = "Example",
                           .cn = "svc-a",
                           .sans = sans,
                           .n_sans = 5,
                           .serial = 0x1a2b3c,
                           .not_before = 1700000000,
                           .not_after = 1900000000};
    X509 *x;
    struct pt_client_cert *c = read_spec(&s, &x);
    assert_true(c->verified);
    assert_false(c->incomplete);
    /* RFC 2253: most specific RDN first. */
    assert_str(c->subject, "CN=svc-a,O=Example");
    assert_str(c->issuer, "CN=Example Client CA,O=Example");
    assert_str(c->common_name, "svc-a");
    assert_str(c->serial, "1A2B3C");
    assert_int_equal(c->not_before, 1700000000);
    assert_int_equal(c->not_after, 1900000000);
    assert_int_equal(c->n_dns_names, 2);
    assert_str(c->dns_names[0], "svc-a.internal");
    assert_str(c->dns_names[1], "svc-a.example.org");
    assert_int_equal(c->n_uris, 1);
    assert_str(c->uris[0], "spiffe://example.org/ns/prod/sa/svc-a");
    assert_int_equal(c->n_emails, 1);
    assert_str(c->emails[0], "svc-a@example.org");

    /* The fingerprint is SHA-256 over the DER encoding, in lower-case hex. */
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    unsigned char md[32];
    unsigned mdlen = 0;
    assert_int_equal(EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL), 1);
    char hex[65];
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    assert_str(c->sha256, hex);
    OPENSSL_free(der);
    X509_free(x);
    pt_client_cert_unref(c);
}

static void test_client_cert__no_cn_no_sans(void **state)
{
    (void)state;
    struct certs_spec s = {.o = "Example"};
    struct pt_client_cert *c = read_spec(&s, NULL);
    assert_false(c->incomplete);
    assert_str(c->subject, "O=Example");
    assert_int_equal(c->common_name.len, 0);
    assert_int_equal(c->n_dns_names + c->n_uris + c->n_emails, 0);
    assert_int_equal(c->sha256.len, 64);
    pt_client_cert_unref(c);
}

static void test_client_cert__keeps_at_most_16_sans_of_a_kind(void **state)
{
    (void)state;
    struct certs_san sans[20];
    char names[20][32];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "n%d.example.org", i);
        sans[i] = (struct certs_san){GEN_DNS, names[i], 0};
    }
    sans[19] = (struct certs_san){GEN_URI, "spiffe://example.org/x", 0};
    struct certs_spec s = {.cn = "many", .sans = sans, .n_sans = 20};
    struct pt_client_cert *c = read_spec(&s, NULL);
    assert_true(c->incomplete);
    assert_int_equal(c->n_dns_names, PT_CLIENT_CERT_MAX_SANS);
    assert_str(c->dns_names[0], "n0.example.org");
    assert_str(c->dns_names[15], "n15.example.org");
    /* Another kind still has room. */
    assert_int_equal(c->n_uris, 1);
    assert_str(c->uris[0], "spiffe://example.org/x");
    pt_client_cert_unref(c);
}

static void test_client_cert__hostile_values_are_left_out_whole(void **state)
{
    (void)state;
    static char long_uri[PT_CLIENT_CERT_MAX_URI + 2];
    memcpy(long_uri, "spiffe://example.org/", 21);
    memset(long_uri + 21, 'a', sizeof(long_uri) - 22);
    long_uri[sizeof(long_uri) - 1] = '\0';
    const struct certs_san sans[] = {
        {GEN_DNS, "evil\nx-admin: 1", 0},          /* a header injection attempt */
        {GEN_DNS, "has space.example", 0},         /* spaces are not in names */
        {GEN_DNS, "nul\0.example", 12},            /* a NUL inside */
        {GEN_URI, long_uri, 0},                    /* over the limit: never cut */
        {GEN_EMAIL, "caf\xc3\xa9@example.org", 0}, /* not ASCII */
        {GEN_DNS, "ok.example", 0},
    };
    struct certs_spec s = {.cn = "ctl\x01name", .sans = sans, .n_sans = 6};
    struct pt_client_cert *c = read_spec(&s, NULL);
    assert_true(c->incomplete);
    assert_int_equal(c->n_dns_names, 1);
    assert_str(c->dns_names[0], "ok.example");
    assert_int_equal(c->n_uris, 0);
    assert_int_equal(c->n_emails, 0);
    assert_int_equal(c->common_name.len, 0);
    /* The DN escapes what the CN could not carry. */
    assert_str(c->subject, "CN=ctl\\01name");
    pt_client_cert_unref(c);
}

static void test_client_cert__utf8_cn_is_kept_and_escaped_in_the_dn(void **state)
{
    (void)state;
    struct certs_spec s = {.o = "Acme, Inc.", .cn = "J\xc3\xa9r\xc3\xb4me"};
    struct pt_client_cert *c = read_spec(&s, NULL);
    assert_false(c->incomplete);
    assert_str(c->common_name, "J\xc3\xa9r\xc3\xb4me");
    assert_str(c->subject, "CN=J\\C3\\A9r\\C3\\B4me,O=Acme\\, Inc.");
    for (size_t i = 0; i < c->subject.len; i++)
        assert_true(c->subject.ptr[i] >= 0x20 && c->subject.ptr[i] < 0x7f);
    pt_client_cert_unref(c);
}

static void test_client_cert__control_characters_in_the_cn_leave_it_out(void **state)
{
    (void)state;
    /* OpenSSL refuses to encode or parse name strings that do not convert
     * to valid UTF-8 (so such certificates never get this far), but valid
     * UTF-8 can still carry controls: C0, DEL and C1. */
    const char *bad[] = {"tab\there", "del\x7f", "c1\xc2\x85", "nl\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct certs_spec s = {.cn = bad[i]};
        struct pt_client_cert *c = read_spec(&s, NULL);
        assert_true(c->incomplete);
        assert_int_equal(c->common_name.len, 0);
        assert_true(c->subject.len > 0);
        pt_client_cert_unref(c);
    }
    /* Other string types come out as UTF-8 (a BMPString is UTF-16). */
    static const char ok[] = {0, 'J', 0, (char)0xe9};
    struct certs_spec t = {.cn = ok, .cn_len = sizeof(ok), .cn_type = V_ASN1_BMPSTRING};
    struct pt_client_cert *c = read_spec(&t, NULL);
    assert_false(c->incomplete);
    assert_str(c->common_name, "J\xc3\xa9");
    pt_client_cert_unref(c);
}

static void test_client_cert__overlong_cn_and_dn_are_left_out(void **state)
{
    (void)state;
    char cn[PT_CLIENT_CERT_MAX_CN + 1];
    memset(cn, 'c', sizeof(cn));
    struct certs_spec s = {.cn = cn, .cn_len = sizeof(cn)};
    struct pt_client_cert *c = read_spec(&s, NULL);
    assert_true(c->incomplete);
    assert_int_equal(c->common_name.len, 0);
    assert_int_equal(c->subject.len, 3 + sizeof(cn));
    pt_client_cert_unref(c);

    /* 20 OUs of 60 bytes: a DN over PT_CLIENT_CERT_MAX_DN. */
    char ou[61];
    memset(ou, 'u', 60);
    ou[60] = '\0';
    struct certs_spec l = {.cn = "fine", .ou = ou, .n_ou = 20};
    c = read_spec(&l, NULL);
    assert_true(c->incomplete);
    assert_int_equal(c->subject.len, 0);
    assert_str(c->common_name, "fine");
    pt_client_cert_unref(c);
}

static void test_client_cert__references(void **state)
{
    (void)state;
    struct certs_spec s = {.cn = "shared"};
    struct pt_client_cert *c = read_spec(&s, NULL);
    pt_client_cert_ref(c);
    pt_client_cert_unref(c);
    assert_str(c->common_name, "shared"); /* still alive: one reference left */
    pt_client_cert_unref(c);
    pt_client_cert_ref(NULL);
    pt_client_cert_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_cert__reads_names_sans_serial_fingerprint_and_validity),
        cmocka_unit_test(test_client_cert__no_cn_no_sans),
        cmocka_unit_test(test_client_cert__keeps_at_most_16_sans_of_a_kind),
        cmocka_unit_test(test_client_cert__hostile_values_are_left_out_whole),
        cmocka_unit_test(test_client_cert__utf8_cn_is_kept_and_escaped_in_the_dn),
        cmocka_unit_test(test_client_cert__control_characters_in_the_cn_leave_it_out),
        cmocka_unit_test(test_client_cert__overlong_cn_and_dn_are_left_out),
        cmocka_unit_test(test_client_cert__references),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
