/*
 * Tests for auth/jwk: algorithm names, strict base64url, key sets from
 * secrets, PEM keys and certificates and JWKS documents (every conversion
 * compared with the PEM of the same key), skipped JWKS keys with their
 * reasons, limits, and which key fits which algorithm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/jwk.h"
#include "fixtures/jwt/fixture.h"
#include "portico/errors.h"

/* ---- skipped-key reports ----------------------------------------------- */

struct skips {
    int n;
    size_t last_index;
    char last_kid[64];
    char last_reason[256];
};

static void on_skip(void *ctx, size_t index, struct pt_str kid, const char *reason)
{
    struct skips *s = ctx;
    s->n++;
    s->last_index = index;
    snprintf(s->last_kid, sizeof(s->last_kid), "%.*s", (int)kid.len, kid.ptr);
    snprintf(s->last_reason, sizeof(s->last_reason), "%s", reason);
}

/* A set from one PEM fixture (asserts success). */
static struct pt_jwk_set *pem_set(const char *file, const struct pt_jwk_limits *lim)
{
    struct pt_jwk_builder *b = pt_jwk_builder_new(lim, NULL, NULL);
    struct pt_str pem = fixture_read(file);
    int rc = pt_jwk_builder_add_pem(b, PT_STR_NULL, pem);
    if (rc != 0)
        fail_msg("%s: %s", file, pt_jwk_builder_error(b));
    fixture_free(pem);
    struct pt_jwk_set *s = pt_jwk_builder_finish(b);
    assert_non_null(s);
    pt_jwk_builder_free(b);
    return s;
}

static bool same_material(const struct pt_jwk *a, const struct pt_jwk *b)
{
    return a->material_len == b->material_len &&
           memcmp(a->material, b->material, a->material_len) == 0;
}

/* Status of adding one JWKS document; the reason of the last skip (or the
 * error) in *why. */
static int add_jwks(const char *doc, const struct pt_jwk_limits *lim, struct skips *sk,
                    struct pt_jwk_set **out)
{
    struct pt_jwk_builder *b = pt_jwk_builder_new(lim, on_skip, sk);
    int rc = pt_jwk_builder_add_jwks(b, cstr(doc));
    if (rc != 0)
        snprintf(sk->last_reason, sizeof(sk->last_reason), "%s", pt_jwk_builder_error(b));
    *out = rc == 0 ? pt_jwk_builder_finish(b) : NULL;
    pt_jwk_builder_free(b);
    return rc;
}

/* One key of the fixture JWKS, re-serialized (jansson would do, but a
 * string search keeps the test independent of the parser under test). */
static char *fixture_jwk(const char *kid)
{
    struct pt_str doc = fixture_read("jwks.json");
    char needle[64];
    snprintf(needle, sizeof(needle), "\"kid\": \"%s\"", kid);
    const char *at = strstr(doc.ptr, needle);
    assert_non_null(at);
    const char *open = at, *close = strchr(at, '}');
    while (open > doc.ptr && *open != '{')
        open--;
    size_t n = (size_t)(close - open + 1);
    char *out = malloc(n + 1);
    memcpy(out, open, n);
    out[n] = '\0';
    fixture_free(doc);
    return out;
}

/* A JWKS with one key: the fixture key kid with member name removed and,
 * unless value is NULL, put back first with value (a JSON text). */
static char *edited_jwks(const char *kid, const char *name, const char *value)
{
    char *k = fixture_jwk(kid);
    char needle[64];
    snprintf(needle, sizeof(needle), "\"%s\": ", name);
    char *at = strstr(k, needle);
    assert_non_null(at);
    char *end = at + strlen(needle);
    if (*end == '"')
        end = strchr(end + 1, '"') + 1;
    else if (*end == '[')
        end = strchr(end, ']') + 1;
    char *after = end;
    while (*after == ' ' || *after == '\n')
        after++;
    char *cut_from = at, *cut_to = end;
    if (*after == ',') {
        cut_to = after + 1;
    } else {
        char *p = at - 1;
        while (p > k && *p != ',' && *p != '{')
            p--;
        if (*p == ',')
            cut_from = p;
    }
    char *doc = malloc(strlen(k) + 256);
    int n = sprintf(doc, "{\"keys\": [{");
    if (value)
        n += sprintf(doc + n, "\"%s\": %s, ", name, value);
    sprintf(doc + n, "%.*s%s]}", (int)(cut_from - (k + 1)), k + 1, cut_to);
    free(k);
    return doc;
}

/* ---- algorithms and base64url -------------------------------------------- */

static void test_jwk_alg__names_exact_and_case_sensitive(void **state)
{
    (void)state;
    enum pt_jwt_alg a;
    for (int i = 0; i < PT_JWT_ALG_COUNT; i++) {
        assert_int_equal(pt_jwt_alg_parse(cstr(pt_jwt_alg_name((enum pt_jwt_alg)i)), &a), 0);
        assert_int_equal(a, i);
    }
    static const char *const bad[] = {"none",  "None",   "NONE", "rs256", "Rs256", "PS256",
                                      "EdDSA", "RS256 ", "",     "HS2",   "ES256K"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pt_jwt_alg_parse(cstr(bad[i]), &a), PT_ERR_INVALID);
    assert_string_equal(pt_jwt_alg_name(PT_JWT_ALG_COUNT), "?");
}

static void test_jwk_b64url__strict(void **state)
{
    (void)state;
    unsigned char out[32];
    size_t n = 0;
    assert_int_equal(pt_b64url_decode(cstr("Zm9vYmFy"), out, sizeof(out), &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "foobar", 6);
    assert_int_equal(pt_b64url_decode(cstr("Zm9vYg"), out, sizeof(out), &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(pt_b64url_decode(cstr("Zm9vYmE"), out, sizeof(out), &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(pt_b64url_decode(cstr("-_8"), out, sizeof(out), &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(pt_b64url_decode(cstr(""), out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    /* Padding, the standard alphabet, whitespace, a lone char, non-zero
     * trailing bits. */
    static const char *const bad[] = {"Zm9vYg==", "+/8", "Zm9v Yg", "Zm9vY", "Zm9vYh", "Zm9vYmF"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pt_b64url_decode(cstr(bad[i]), out, sizeof(out), &n), PT_ERR_INVALID);
    assert_int_equal(pt_b64url_decode(cstr("Zm9vYmFy"), out, 5, &n), PT_ERR_LIMIT);
}

/* ---- secrets ---------------------------------------------------------------- */

static void test_jwk_secret__raw_and_base64_forms_are_equal(void **state)
{
    (void)state;
    struct pt_str secret = fixture_read("hmac_secret.txt");
    assert_int_equal(secret.len, 64);
    char b64[128];
    b64url_encode(secret.ptr, secret.len, b64);

    struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
    assert_int_equal(pt_jwk_builder_add_secret(b, cstr("raw"), secret), 0);
    assert_int_equal(pt_jwk_builder_add_secret_base64(b, cstr("url"), cstr(b64)), 0);
    /* The standard alphabet with padding decodes to the same bytes. */
    unsigned char bin[48];
    for (int i = 0; i < 48; i++)
        bin[i] = (unsigned char)(0xf8 + i);
    char std[80], url[80];
    b64url_encode(bin, sizeof(bin), url);
    strcpy(std, url);
    for (char *p = std; *p; p++)
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    assert_non_null(strchr(std, '+'));
    assert_int_equal(pt_jwk_builder_add_secret_base64(b, cstr("std"), cstr(std)), 0);
    assert_int_equal(pt_jwk_builder_add_secret_base64(b, cstr("bad"), cstr("!!!!")),
                     PT_ERR_INVALID);
    assert_int_equal(pt_jwk_builder_add_secret(b, cstr("short"), cstr("0123456789")),
                     PT_ERR_INVALID);
    assert_non_null(strstr(pt_jwk_builder_error(b), "at least 32"));

    struct pt_jwk_set *s = pt_jwk_builder_finish(b);
    assert_non_null(s);
    assert_int_equal(pt_jwk_set_count(s), 3);
    const struct pt_jwk *raw = pt_jwk_set_key(s, 0), *u = pt_jwk_set_key(s, 1),
                        *st = pt_jwk_set_key(s, 2);
    assert_int_equal(raw->kty, PT_JWK_OCT);
    assert_null(raw->pkey); /* a secret is never an EVP_PKEY */
    assert_true(same_material(raw, u));
    assert_int_equal(st->material_len, 48);
    assert_memory_equal(st->material, bin, 48);
    assert_true(raw->has_kid);
    assert_true(pt_str_eq(raw->kid, cstr("raw")));
    assert_int_equal(raw->bits, 512);
    pt_jwk_set_unref(s);
    pt_jwk_builder_free(b);
    fixture_free(secret);
}

/* ---- PEM ------------------------------------------------------------------ */

static void test_jwk_pem__rsa_ec_and_certificate(void **state)
{
    (void)state;
    struct pt_jwk_set *rsa = pem_set("rsa_public.pem", NULL);
    const struct pt_jwk *k = pt_jwk_set_key(rsa, 0);
    assert_int_equal(k->kty, PT_JWK_RSA);
    assert_int_equal(k->bits, 2048);
    assert_false(k->has_kid);
    assert_false(k->has_alg);
    assert_non_null(strstr((const char *)k->material, "-----BEGIN PUBLIC KEY-----"));
    /* Parsed once, here: the key signatures are verified with. */
    assert_non_null(k->pkey);
    assert_true(EVP_PKEY_is_a(k->pkey, "RSA"));
    assert_int_equal(EVP_PKEY_get_bits(k->pkey), 2048);

    /* A certificate gives the same key, in the same canonical PEM. */
    struct pt_jwk_set *cert = pem_set("rsa_cert.pem", NULL);
    assert_true(same_material(k, pt_jwk_set_key(cert, 0)));
    assert_int_equal(EVP_PKEY_eq(k->pkey, pt_jwk_set_key(cert, 0)->pkey), 1);

    static const struct {
        const char *file;
        enum pt_jwk_crv crv;
        unsigned bits;
    } ec[] = {{"ec256_public.pem", PT_JWK_P256, 256},
              {"ec384_public.pem", PT_JWK_P384, 384},
              {"ec521_public.pem", PT_JWK_P521, 521}};
    for (size_t i = 0; i < 3; i++) {
        struct pt_jwk_set *s = pem_set(ec[i].file, NULL);
        assert_int_equal(pt_jwk_set_key(s, 0)->kty, PT_JWK_EC);
        assert_int_equal(pt_jwk_set_key(s, 0)->crv, ec[i].crv);
        assert_int_equal(pt_jwk_set_key(s, 0)->bits, ec[i].bits);
        assert_true(EVP_PKEY_is_a(pt_jwk_set_key(s, 0)->pkey, "EC"));
        pt_jwk_set_unref(s);
    }
    pt_jwk_set_unref(cert);
    pt_jwk_set_unref(rsa);
}

static void test_jwk_pem__refuses_private_small_and_garbage(void **state)
{
    (void)state;
    struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
    struct pt_str priv = fixture_read("rsa_private.pem");
    assert_int_equal(pt_jwk_builder_add_pem(b, PT_STR_NULL, priv), PT_ERR_INVALID);
    assert_non_null(strstr(pt_jwk_builder_error(b), "private key"));
    fixture_free(priv);

    struct pt_str small = fixture_read("rsa1024_public.pem");
    assert_int_equal(pt_jwk_builder_add_pem(b, PT_STR_NULL, small), PT_ERR_INVALID);
    assert_non_null(strstr(pt_jwk_builder_error(b), "1024 bits"));

    assert_int_equal(pt_jwk_builder_add_pem(b, PT_STR_NULL, cstr("hello")), PT_ERR_INVALID);
    assert_int_equal(pt_jwk_builder_add_pem(b, PT_STR_NULL, PT_STR_NULL), PT_ERR_INVALID);
    assert_int_equal(
        pt_jwk_builder_add_pem(
            b, PT_STR_NULL, cstr("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")),
        PT_ERR_INVALID);
    /* Nothing was added: finishing fails. */
    assert_null(pt_jwk_builder_finish(b));
    assert_string_equal(pt_jwk_builder_error(b), "no keys");
    pt_jwk_builder_free(b);

    /* A lower minimum admits the 1024-bit key. */
    struct pt_jwk_limits lim;
    pt_jwk_limits_init(&lim);
    lim.min_rsa_bits = 1024;
    struct pt_jwk_set *s = pem_set("rsa1024_public.pem", &lim);
    assert_int_equal(pt_jwk_set_key(s, 0)->bits, 1024);
    pt_jwk_set_unref(s);
    fixture_free(small);
}

/* ---- JWKS ------------------------------------------------------------------ */

static void test_jwk_jwks__same_keys_as_pem(void **state)
{
    (void)state;
    struct pt_str doc = fixture_read("jwks.json");
    struct skips sk = {0};
    struct pt_jwk_set *s = NULL;
    assert_int_equal(add_jwks(doc.ptr, NULL, &sk, &s), 0);
    /* oct is not allowed by default: reported, the rest is used. */
    assert_int_equal(sk.n, 1);
    assert_int_equal(sk.last_index, 5);
    assert_string_equal(sk.last_kid, "hs-1");
    assert_non_null(strstr(sk.last_reason, "oct"));
    assert_int_equal(pt_jwk_set_count(s), 5);

    static const struct {
        const char *kid, *pem;
        enum pt_jwk_kty kty;
        enum pt_jwk_crv crv;
        int alg;
    } want[] = {
        {"rsa-1", "rsa_public.pem", PT_JWK_RSA, PT_JWK_CRV_NONE, -1},
        {"rsa-2", "rsa2_public.pem", PT_JWK_RSA, PT_JWK_CRV_NONE, PT_JWT_ALG_RS256},
        {"ec256-1", "ec256_public.pem", PT_JWK_EC, PT_JWK_P256, PT_JWT_ALG_ES256},
        {"ec384-1", "ec384_public.pem", PT_JWK_EC, PT_JWK_P384, PT_JWT_ALG_ES384},
        {"ec521-1", "ec521_public.pem", PT_JWK_EC, PT_JWK_P521, PT_JWT_ALG_ES512},
    };
    for (size_t i = 0; i < 5; i++) {
        const struct pt_jwk *k = pt_jwk_set_key(s, i);
        assert_true(k->has_kid);
        assert_true(pt_str_eq(k->kid, cstr(want[i].kid)));
        assert_int_equal(k->kty, want[i].kty);
        assert_int_equal(k->crv, want[i].crv);
        assert_int_equal(k->has_alg, want[i].alg >= 0);
        if (want[i].alg >= 0)
            assert_int_equal(k->alg, want[i].alg);
        struct pt_jwk_set *p = pem_set(want[i].pem, NULL);
        /* The JWK converted by OSSL_PARAM_BLD/EVP_PKEY_fromdata is the very
         * key of the PEM file. */
        assert_true(same_material(k, pt_jwk_set_key(p, 0)));
        assert_int_equal(EVP_PKEY_eq(k->pkey, pt_jwk_set_key(p, 0)->pkey), 1);
        pt_jwk_set_unref(p);
    }
    pt_jwk_set_unref(s);

    /* Allowed, the oct key is the HMAC secret. */
    struct pt_jwk_limits lim;
    pt_jwk_limits_init(&lim);
    lim.allow_oct = true;
    memset(&sk, 0, sizeof(sk));
    assert_int_equal(add_jwks(doc.ptr, &lim, &sk, &s), 0);
    assert_int_equal(sk.n, 0);
    assert_int_equal(pt_jwk_set_count(s), 6);
    struct pt_str secret = fixture_read("hmac_secret.txt");
    const struct pt_jwk *oct = pt_jwk_set_key(s, 5);
    assert_int_equal(oct->kty, PT_JWK_OCT);
    assert_null(oct->pkey);
    assert_int_equal(oct->material_len, secret.len);
    assert_memory_equal(oct->material, secret.ptr, secret.len);
    fixture_free(secret);
    pt_jwk_set_unref(s);
    fixture_free(doc);
}

/* Each edit makes the only key unusable: the JWKS is an error, and the
 * reason names the problem. */
static void test_jwk_jwks__bad_keys_skipped_with_reason(void **state)
{
    (void)state;
    static const struct {
        const char *kid, *member, *value, *reason;
    } cases[] = {
        {"rsa-1", "n", "\"not*base64\"", "\"n\" is not valid base64url"},
        {"rsa-1", "n", "\"AQAB\"", "RSA"}, /* a 17-bit modulus */
        {"rsa-1", "n", NULL, "\"n\" missing"},
        {"rsa-1", "n", "12", "\"n\" is not a string"},
        {"rsa-1", "e", NULL, "\"e\" missing"},
        {"rsa-1", "e", "\"AQABAQABAQABAQAB\"", "\"e\" is too long"},
        {"rsa-1", "use", "\"enc\"", "\"use\" is not \"sig\""},
        {"rsa-1", "key_ops", "[\"sign\"]", "key_ops"},
        {"rsa-1", "kty", "\"OKP\"", "\"kty\" is not RSA, EC or oct"},
        {"rsa-1", "kty", NULL, "\"kty\" missing"},
        {"rsa-1", "kid", "7", "\"kid\" is not a string"},
        {"rsa-2", "alg", "\"RSA-OAEP\"", "\"alg\" is not a signature algorithm"},
        {"rsa-2", "alg", "\"PS256\"", "\"alg\" is not a signature algorithm"},
        {"rsa-2", "alg", "\"HS256\"", "does not fit"},
        {"rsa-2", "alg", "\"ES256\"", "does not fit"},
        {"ec256-1", "crv", "\"P-192\"", "\"crv\" is not P-256"},
        {"ec256-1", "crv", "\"secp256k1\"", "\"crv\" is not P-256"},
        {"ec256-1", "crv", NULL, "\"crv\" missing"},
        {"ec256-1", "alg", "\"ES384\"", "does not fit"},
        {"ec256-1", "x", "\"AAAA\"", "must be 32 bytes"},
        {"ec256-1", "x", "\"!\"", "\"x\" is not valid base64url"},
        {"ec256-1", "y", NULL, "\"y\" missing"},
        /* x and y both zero: not a point on the curve. */
        {"ec256-1", "y", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"", "EC key"},
        {"ec384-1", "crv", "\"P-256\"", "\"x\" is too long"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *doc = edited_jwks(cases[i].kid, cases[i].member, cases[i].value);
        struct skips sk = {0};
        struct pt_jwk_set *s = NULL;
        int rc = add_jwks(doc, NULL, &sk, &s);
        if (rc != PT_ERR_INVALID || sk.n != 1 || !strstr(sk.last_reason, cases[i].reason))
            fail_msg("case %zu (%s.%s): rc %d, %d skips, reason \"%s\"", i, cases[i].kid,
                     cases[i].member, rc, sk.n, sk.last_reason);
        assert_null(s);
        assert_non_null(strstr(sk.last_reason, "no usable key"));
        free(doc);
    }
}

static void test_jwk_jwks__good_key_survives_bad_neighbours(void **state)
{
    (void)state;
    char *good = fixture_jwk("ec256-1");
    char doc[4096];
    snprintf(doc, sizeof(doc),
             "{\"keys\": [42, {\"kty\": \"EC\", \"crv\": \"P-999\"}, %s, "
             "{\"kty\": \"RSA\", \"kid\": \"x\", \"use\": \"enc\", \"n\": \"AQAB\", \"e\": "
             "\"AQAB\"}]}",
             good);
    free(good);
    struct skips sk = {0};
    struct pt_jwk_set *s = NULL;
    assert_int_equal(add_jwks(doc, NULL, &sk, &s), 0);
    assert_int_equal(sk.n, 3);
    assert_int_equal(sk.last_index, 3);
    assert_string_equal(sk.last_kid, "x");
    assert_int_equal(pt_jwk_set_count(s), 1);
    assert_int_equal(pt_jwk_set_key(s, 0)->crv, PT_JWK_P256);
    pt_jwk_set_unref(s);
}

static void test_jwk_jwks__document_errors_and_limits(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"keys\": {}}",
        "{\"nokeys\": []}",
        "{\"keys\": []}",
        "{\"keys\": [], \"keys\": []}", /* duplicate member */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct skips sk = {0};
        struct pt_jwk_set *s = NULL;
        assert_int_equal(add_jwks(bad[i], NULL, &sk, &s), PT_ERR_INVALID);
        assert_null(s);
    }

    struct pt_str doc = fixture_read("jwks.json");
    struct pt_jwk_limits lim;
    pt_jwk_limits_init(&lim);
    lim.max_doc_bytes = doc.len - 1;
    struct skips sk = {0};
    struct pt_jwk_set *s = NULL;
    assert_int_equal(add_jwks(doc.ptr, &lim, &sk, &s), PT_ERR_LIMIT);
    assert_non_null(strstr(sk.last_reason, "bytes"));

    pt_jwk_limits_init(&lim);
    lim.max_keys = 5; /* the fixture has 6 */
    assert_int_equal(add_jwks(doc.ptr, &lim, &sk, &s), PT_ERR_LIMIT);
    assert_non_null(strstr(sk.last_reason, "6 keys"));

    /* The key limit counts every source of one builder. */
    struct pt_jwk_builder *b = pt_jwk_builder_new(&lim, NULL, NULL);
    struct pt_str secret = fixture_read("hmac_secret.txt");
    for (int i = 0; i < 5; i++)
        assert_int_equal(pt_jwk_builder_add_secret(b, PT_STR_NULL, secret), 0);
    assert_int_equal(pt_jwk_builder_add_secret(b, PT_STR_NULL, secret), PT_ERR_LIMIT);
    /* A parsed public key refused at the limit is freed (LeakSanitizer). */
    struct pt_str rsa_pem = fixture_read("rsa_public.pem");
    assert_int_equal(pt_jwk_builder_add_pem(b, PT_STR_NULL, rsa_pem), PT_ERR_LIMIT);
    fixture_free(rsa_pem);
    struct pt_jwk_set *five = pt_jwk_builder_finish(b);
    assert_int_equal(pt_jwk_set_count(five), 5);
    pt_jwk_set_unref(five);
    pt_jwk_builder_free(b);
    fixture_free(secret);
    fixture_free(doc);

    /* A kid longer than the limit. */
    char longkid[PT_JWK_MAX_KID_BYTES + 2];
    memset(longkid, 'k', sizeof(longkid) - 1);
    longkid[sizeof(longkid) - 1] = '\0';
    b = pt_jwk_builder_new(NULL, NULL, NULL);
    struct pt_str pem = fixture_read("ec256_public.pem");
    assert_int_equal(pt_jwk_builder_add_pem(b, cstr(longkid), pem), PT_ERR_INVALID);
    fixture_free(pem);
    pt_jwk_builder_free(b);
}

/* ---- fitting keys to algorithms ------------------------------------------- */

static void test_jwk_fits__key_type_decides_the_family(void **state)
{
    (void)state;
    struct pt_jwk rsa = {.kty = PT_JWK_RSA, .material_len = 400};
    struct pt_jwk p256 = {.kty = PT_JWK_EC, .crv = PT_JWK_P256, .material_len = 200};
    struct pt_jwk p521 = {.kty = PT_JWK_EC, .crv = PT_JWK_P521, .material_len = 300};
    struct pt_jwk s32 = {.kty = PT_JWK_OCT, .material_len = 32};
    struct pt_jwk s64 = {.kty = PT_JWK_OCT, .material_len = 64};
    for (int a = 0; a < PT_JWT_ALG_COUNT; a++) {
        enum pt_jwt_alg alg = (enum pt_jwt_alg)a;
        bool rs = PT_JWT_ALG_BIT(alg) & PT_JWT_ALGS_RS;
        assert_int_equal(pt_jwk_fits(&rsa, alg), rs);
        assert_int_equal(pt_jwk_fits(&p256, alg), alg == PT_JWT_ALG_ES256);
        assert_int_equal(pt_jwk_fits(&p521, alg), alg == PT_JWT_ALG_ES512);
        /* A secret must be as long as the hash. */
        assert_int_equal(pt_jwk_fits(&s32, alg), alg == PT_JWT_ALG_HS256);
        assert_int_equal(pt_jwk_fits(&s64, alg), (PT_JWT_ALG_BIT(alg) & PT_JWT_ALGS_HS) != 0);
    }
    rsa.has_alg = true;
    rsa.alg = PT_JWT_ALG_RS384;
    assert_false(pt_jwk_fits(&rsa, PT_JWT_ALG_RS256));
    assert_true(pt_jwk_fits(&rsa, PT_JWT_ALG_RS384));
    assert_false(pt_jwk_fits(&rsa, PT_JWT_ALG_COUNT));
}

static void test_jwk_set__refcount_and_generation(void **state)
{
    (void)state;
    struct pt_jwk_set *a = pem_set("ec256_public.pem", NULL);
    struct pt_jwk_set *b = pem_set("ec256_public.pem", NULL);
    assert_int_not_equal(pt_jwk_set_generation(a), 0);
    assert_int_not_equal(pt_jwk_set_generation(a), pt_jwk_set_generation(b));
    assert_ptr_equal(pt_jwk_set_ref(a), a);
    pt_jwk_set_unref(a);
    /* Still alive: one reference left. */
    assert_int_equal(pt_jwk_set_count(a), 1);
    pt_jwk_set_unref(a);
    pt_jwk_set_unref(b);
    pt_jwk_set_unref(NULL);
    pt_jwk_builder_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwk_alg__names_exact_and_case_sensitive),
        cmocka_unit_test(test_jwk_b64url__strict),
        cmocka_unit_test(test_jwk_secret__raw_and_base64_forms_are_equal),
        cmocka_unit_test(test_jwk_pem__rsa_ec_and_certificate),
        cmocka_unit_test(test_jwk_pem__refuses_private_small_and_garbage),
        cmocka_unit_test(test_jwk_jwks__same_keys_as_pem),
        cmocka_unit_test(test_jwk_jwks__bad_keys_skipped_with_reason),
        cmocka_unit_test(test_jwk_jwks__good_key_survives_bad_neighbours),
        cmocka_unit_test(test_jwk_jwks__document_errors_and_limits),
        cmocka_unit_test(test_jwk_fits__key_type_decides_the_family),
        cmocka_unit_test(test_jwk_set__refcount_and_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
