/*
 * Tests for auth/jwt: known-answer tokens for every algorithm (made by
 * fixtures/jwt/make_fixtures.sh with python3-jwt) verified with PEM keys
 * and with the JWKS of the same keys; RFC 9068 at+jwt access tokens and
 * the typ rules; key choice by kid and key type; the classic attacks (alg
 * none, HS256 keyed with the RSA public key, an RS256 token against an EC
 * key, tampering, truncation); signature encodings (ECDSA r || s of the
 * wrong length, DER, high-S, zero or out-of-range r and s; RSA signatures
 * shorter or longer than the modulus; truncated MACs); claim checks at a
 * fixed clock; limits; peek; accessors; result texts.
 *
 * libjwt 1.10 is the independent cross-check: cross_check() verifies a
 * token with its right key alone and asserts that libjwt's jwt_decode()
 * with the same key reaches the same verdict on the signature, wherever
 * libjwt supports the token (typ absent or JWT). Our verifier uses
 * OpenSSL directly (auth/jws.c); agreement on every known answer and every
 * attack token here is the argument that it is right.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <jwt.h>

#include "auth/jwt.h"
#include "fixtures/jwt/fixture.h"

/* The fixture tokens: iat = nbf = 1700000000, exp = 4102444800. */
#define IAT 1700000000
#define EXP 4102444800LL
#define NOW (IAT + 100)

static const char *const kat_algs[PT_JWT_ALG_COUNT] = {
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
};

static struct pt_jwk_set *pem_keys;  /* the secret and every PEM key, no kids */
static struct pt_jwk_set *jwks_keys; /* jwks.json, oct allowed */
static struct pt_str secret;
static const struct pt_str auds[] = {PT_STR("portico")};

static void add_pem(struct pt_jwk_builder *b, const char *file)
{
    struct pt_str pem = fixture_read(file);
    if (pt_jwk_builder_add_pem(b, PT_STR_NULL, pem) != 0)
        fail_msg("%s: %s", file, pt_jwk_builder_error(b));
    fixture_free(pem);
}

/* A set of the given PEM files (and the HMAC secret if with_secret). */
static struct pt_jwk_set *set_of(bool with_secret, const char *const *files, size_t n)
{
    struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
    if (with_secret)
        assert_int_equal(pt_jwk_builder_add_secret(b, PT_STR_NULL, secret), 0);
    for (size_t i = 0; i < n; i++)
        add_pem(b, files[i]);
    struct pt_jwk_set *s = pt_jwk_builder_finish(b);
    assert_non_null(s);
    pt_jwk_builder_free(b);
    return s;
}

/* ---- the libjwt cross-check ---------------------------------------------- */

/* The fixture keys, each as text (PEM, or the secret) and as a set of that
 * key alone, without kid (so it stands in for any kid). */
enum { K_SECRET, K_RSA, K_RSA2, K_EC256, K_EC384, K_EC521, K_COUNT };
static const char *const key_files[K_COUNT] = {
    "hmac_secret.txt",  "rsa_public.pem",   "rsa2_public.pem",
    "ec256_public.pem", "ec384_public.pem", "ec521_public.pem",
};
static struct pt_str key_text[K_COUNT];
static struct pt_jwk_set *key_alone[K_COUNT];
static size_t libjwt_compared; /* how many verdicts libjwt confirmed */

static int setup(void **state)
{
    (void)state;
    for (int k = 0; k < K_COUNT; k++) {
        key_text[k] = fixture_read(key_files[k]);
        struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
        int rc = k == K_SECRET ? pt_jwk_builder_add_secret(b, PT_STR_NULL, key_text[k])
                               : pt_jwk_builder_add_pem(b, PT_STR_NULL, key_text[k]);
        if (rc != 0)
            return -1;
        key_alone[k] = pt_jwk_builder_finish(b);
        pt_jwk_builder_free(b);
    }
    secret = fixture_read("hmac_secret.txt");
    static const char *const pems[] = {"rsa_public.pem", "ec256_public.pem", "ec384_public.pem",
                                       "ec521_public.pem"};
    pem_keys = set_of(true, pems, 4);
    struct pt_jwk_limits lim;
    pt_jwk_limits_init(&lim);
    lim.allow_oct = true;
    struct pt_jwk_builder *b = pt_jwk_builder_new(&lim, NULL, NULL);
    struct pt_str doc = fixture_read("jwks.json");
    if (pt_jwk_builder_add_jwks(b, doc) != 0)
        return -1;
    fixture_free(doc);
    jwks_keys = pt_jwk_builder_finish(b);
    pt_jwk_builder_free(b);
    return jwks_keys ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pt_jwk_set_unref(pem_keys);
    pt_jwk_set_unref(jwks_keys);
    fixture_free(secret);
    for (int k = 0; k < K_COUNT; k++) {
        pt_jwk_set_unref(key_alone[k]);
        fixture_free(key_text[k]);
    }
    return 0;
}

/* The settings the fixture tokens were made for, every algorithm allowed. */
static struct pt_jwt_issuer issuer(void)
{
    struct pt_jwt_issuer s;
    pt_jwt_issuer_init(&s);
    s.issuer = PT_STR("https://issuer.example");
    s.audiences = auds;
    s.naudiences = 1;
    s.algs = PT_JWT_ALGS_ALL;
    return s;
}

static enum pt_jwt_result verify(const struct pt_jwt_issuer *s, const struct pt_jwk_set *keys,
                                 const char *token, int64_t now)
{
    struct pt_jwt_verified v;
    enum pt_jwt_result r = pt_jwt_verify(s, keys, cstr(token), now, &v);
    if (r == PT_JWT_OK)
        assert_non_null(v.claims);
    else
        assert_null(v.claims);
    pt_jwt_verified_fini(&v);
    return r;
}

#define assert_result(r, want)                                                               \
    do {                                                                                     \
        enum pt_jwt_result got_ = (r);                                                       \
        if (got_ != (want))                                                                  \
            fail_msg("got %s, want %s", pt_jwt_result_name(got_), pt_jwt_result_name(want)); \
    } while (0)

static char *kat(const char *name)
{
    char file[64];
    snprintf(file, sizeof(file), "token_%s.jwt", name);
    struct pt_str t = fixture_read(file);
    return (char *)t.ptr;
}

/* An HS256 token under the fixture secret. */
static char *hs256(const char *header, const char *payload)
{
    return make_hs(EVP_sha256(), secret.ptr, secret.len, header, payload);
}

#define HS_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define GOOD_CLAIMS \
    "{\"iss\":\"https://issuer.example\",\"aud\":\"portico\",\"sub\":\"bob\",\"exp\":4102444800}"

/* The key a token was (or claims to be) signed with: by alg, and rsa-2's
 * key for kid rsa-2. -1: no such alg. */
static int right_key(const struct pt_jwt_peek *p)
{
    enum pt_jwt_alg alg;
    if (!p->alg.ptr || pt_jwt_alg_parse(p->alg, &alg) != 0)
        return -1;
    if (alg <= PT_JWT_ALG_HS512)
        return K_SECRET;
    if (alg <= PT_JWT_ALG_RS512)
        return pt_str_eq(p->kid, PT_STR("rsa-2")) ? K_RSA2 : K_RSA;
    return alg == PT_JWT_ALG_ES256 ? K_EC256 : alg == PT_JWT_ALG_ES384 ? K_EC384 : K_EC521;
}

/* 1: our result says the signature is valid (OK, or a later claim check
 * failed); 0: it is not; -1: the token was refused before its signature. */
static int signature_verdict(enum pt_jwt_result r)
{
    switch (r) {
    case PT_JWT_OK:
    case PT_JWT_EXPIRED:
    case PT_JWT_NOT_YET_VALID:
    case PT_JWT_BAD_ISSUER:
    case PT_JWT_BAD_AUDIENCE:
    case PT_JWT_MISSING_CLAIM:
    case PT_JWT_BAD_CLAIM:
        return 1;
    case PT_JWT_BAD_SIGNATURE:
        return 0;
    default:
        return -1;
    }
}

/* Verify token (a C string) with its right key alone, every alg allowed,
 * and return our result. When that result is a verdict on the signature
 * and libjwt supports the token (typ absent or JWT, in any case: libjwt
 * 1.10 refuses every other typ), libjwt's jwt_decode() with the same key
 * must agree: accept, with the alg of the header, exactly when we found
 * the signature valid. *compared (may be NULL) says whether it was asked. */
static enum pt_jwt_result cross_check(const char *token, bool *compared)
{
    struct pt_jwt_issuer s = issuer();
    struct pt_jwt_peek p;
    bool asked = false;
    int k = -1;
    if (pt_jwt_peek(cstr(token), s.max_token_bytes, &p) == PT_JWT_OK)
        k = right_key(&p);
    struct pt_jwt_verified v;
    enum pt_jwt_result r =
        pt_jwt_verify(&s, k >= 0 ? key_alone[k] : pem_keys, cstr(token), NOW, &v);
    pt_jwt_verified_fini(&v);
    int ours = signature_verdict(r);
    if (k >= 0 && ours >= 0) {
        json_t *typ = json_object_get(p.header, "typ");
        if (!typ || (json_is_string(typ) && strcasecmp(json_string_value(typ), "JWT") == 0)) {
            jwt_t *j = NULL;
            int rc =
                jwt_decode(&j, token, (const unsigned char *)key_text[k].ptr, (int)key_text[k].len);
            /* p.alg is a jansson string: NUL-terminated. */
            bool valid = rc == 0 && jwt_get_alg(j) == jwt_str_alg(p.alg.ptr);
            jwt_free(j);
            if (valid != (ours == 1))
                fail_msg("libjwt disagrees: we say %s, libjwt %s (jwt_decode %d) for %s",
                         pt_jwt_result_name(r), valid ? "valid" : "invalid", rc, token);
            asked = true;
            libjwt_compared++;
        }
    }
    pt_jwt_peek_fini(&p); /* zeroed by a failed peek: a no-op then */
    if (compared)
        *compared = asked;
    return r;
}

/* Our result with the JWKS (kid and declared alg choose the key), and the
 * same result, confirmed by libjwt, with the right key alone. */
static void expect_both(const char *token, enum pt_jwt_result want)
{
    struct pt_jwt_issuer s = issuer();
    assert_result(verify(&s, jwks_keys, token, NOW), want);
    bool compared = false;
    assert_result(cross_check(token, &compared), want);
    assert_true(compared);
}

/* ---- known answers ----------------------------------------------------------- */

static void check_kat(const struct pt_jwk_set *keys, const char *name, enum pt_jwt_alg alg)
{
    struct pt_jwt_issuer s = issuer();
    char *t = kat(name);
    struct pt_jwt_verified v;
    enum pt_jwt_result r = pt_jwt_verify(&s, keys, cstr(t), NOW, &v);
    if (r != PT_JWT_OK)
        fail_msg("%s: %s", name, pt_jwt_result_name(r));
    assert_int_equal(v.alg, alg);
    assert_true(v.has_exp);
    assert_int_equal(v.exp, EXP);
    assert_true(pt_str_eq(pt_jwt_claims_sub(v.claims), PT_STR("alice")));
    char jti[32];
    snprintf(jti, sizeof(jti), "kat-%s", name);
    assert_true(pt_str_eq(pt_jwt_claim_str(v.claims, "jti"), cstr(jti)));
    assert_int_equal(v.claims->refcount, 1);
    pt_jwt_verified_fini(&v);
    assert_null(v.claims);
    free(t);
}

static void test_jwt_kat__every_algorithm_with_pem_keys(void **state)
{
    (void)state;
    for (int a = 0; a < PT_JWT_ALG_COUNT; a++)
        check_kat(pem_keys, kat_algs[a], (enum pt_jwt_alg)a);
}

static void test_jwt_kat__every_algorithm_with_the_jwks_of_the_same_keys(void **state)
{
    (void)state;
    for (int a = 0; a < PT_JWT_ALG_COUNT; a++)
        check_kat(jwks_keys, kat_algs[a], (enum pt_jwt_alg)a);
}

/* RFC 9068 access tokens: typ at+jwt (RS256) and application/at+jwt
 * (ES256), signed by python3-jwt. */
static void test_jwt_typ__at_jwt_access_tokens_verify(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum pt_jwt_alg alg;
    } at[] = {{"RS256_atjwt", PT_JWT_ALG_RS256}, {"ES256_atjwt", PT_JWT_ALG_ES256}};
    for (size_t i = 0; i < 2; i++) {
        check_kat(pem_keys, at[i].name, at[i].alg);
        check_kat(jwks_keys, at[i].name, at[i].alg);
        /* Required: they pass; a plain JWT of the same issuer does not. */
        struct pt_jwt_issuer s = issuer();
        s.require_typ_at_jwt = true;
        char *t = kat(at[i].name);
        struct pt_jwt_verified v;
        assert_result(pt_jwt_verify(&s, jwks_keys, cstr(t), NOW, &v), PT_JWT_OK);
        assert_true(pt_str_eq(pt_jwt_claim_str(v.claims, "client_id"), PT_STR("client-1")));
        pt_jwt_verified_fini(&v);
        free(t);
        t = kat(pt_jwt_alg_name(at[i].alg));
        assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_UNSUPPORTED);
        free(t);
    }
    struct pt_jwt_issuer d;
    pt_jwt_issuer_init(&d);
    assert_false(d.require_typ_at_jwt);
}

/* typ is a media type: case-insensitive, "application/" optional (RFC
 * 7515 4.1.9). JWT and at+jwt pass; any other type is refused. */
static void test_jwt_typ__media_type_rules(void **state)
{
    (void)state;
    static const struct {
        const char *typ; /* NULL: no typ member */
        enum pt_jwt_result want, want_required;
    } cases[] = {
        {NULL, PT_JWT_OK, PT_JWT_UNSUPPORTED},
        {"JWT", PT_JWT_OK, PT_JWT_UNSUPPORTED},
        {"jwt", PT_JWT_OK, PT_JWT_UNSUPPORTED},
        {"application/jwt", PT_JWT_OK, PT_JWT_UNSUPPORTED},
        {"APPLICATION/JWT", PT_JWT_OK, PT_JWT_UNSUPPORTED},
        {"at+jwt", PT_JWT_OK, PT_JWT_OK},
        {"AT+JWT", PT_JWT_OK, PT_JWT_OK},
        {"application/at+jwt", PT_JWT_OK, PT_JWT_OK},
        {"Application/At+Jwt", PT_JWT_OK, PT_JWT_OK},
        {"", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"application/", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"application/application/at+jwt", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"text/at+jwt", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"at+jwt ", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {" JWT", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"at+jwt;charset=utf-8", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"JOSE", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"JOSE+JSON", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"dpop+jwt", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"logout+jwt", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
        {"secevent+jwt", PT_JWT_UNSUPPORTED, PT_JWT_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char header[128];
        if (cases[i].typ)
            snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"typ\":\"%s\"}", cases[i].typ);
        else
            snprintf(header, sizeof(header), "{\"alg\":\"HS256\"}");
        char *t = hs256(header, GOOD_CLAIMS);
        struct pt_jwt_issuer s = issuer();
        enum pt_jwt_result r = verify(&s, jwks_keys, t, NOW);
        s.require_typ_at_jwt = true;
        enum pt_jwt_result rr = verify(&s, jwks_keys, t, NOW);
        if (r != cases[i].want || rr != cases[i].want_required)
            fail_msg("typ %s: got %s/%s", cases[i].typ ? cases[i].typ : "(none)",
                     pt_jwt_result_name(r), pt_jwt_result_name(rr));
        /* Where libjwt reads the token, it agrees about the signature. */
        bool compared = false;
        assert_result(cross_check(t, &compared), cases[i].want);
        assert_int_equal(compared, cases[i].want == PT_JWT_OK &&
                                       (!cases[i].typ || strcasecmp(cases[i].typ, "JWT") == 0));
        free(t);
    }

    /* The order of checks stands: alg before typ, typ before the key and
     * the signature, and "crit" refused whatever the typ. */
    struct pt_jwt_issuer s = issuer();
    s.require_typ_at_jwt = true;
    s.algs = PT_JWT_ALGS_RS;
    char *t = hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", GOOD_CLAIMS);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_ALG_NOT_ALLOWED);
    free(t);
    s.algs = PT_JWT_ALGS_ALL;
    t = make_rs(EVP_sha256(), "rsa2_private.pem", "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
                GOOD_CLAIMS);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_UNSUPPORTED);
    s.require_typ_at_jwt = false;
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_BAD_SIGNATURE);
    free(t);
    t = hs256("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"nobody\"}", GOOD_CLAIMS);
    s.require_typ_at_jwt = true;
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_UNKNOWN_KID);
    free(t);
    t = hs256("{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"crit\":[\"x\"],\"x\":1}", GOOD_CLAIMS);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_UNSUPPORTED);
    free(t);
    t = hs256("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
              "{\"iss\":\"https://issuer.example\",\"exp\":4102444800}");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_BAD_AUDIENCE);
    free(t);
    t = hs256("{\"alg\":\"HS256\",\"typ\":[\"at+jwt\"]}", GOOD_CLAIMS);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_MALFORMED);
    free(t);
}

/* Every known-answer token: libjwt, with the same key, confirms our OK. */
static void test_jwt_kat__libjwt_agrees(void **state)
{
    (void)state;
    static const char *const more[] = {"RS256_nokid", "RS256_rsa2", "RS384_rsa2"};
    size_t before = libjwt_compared;
    for (size_t i = 0; i < PT_JWT_ALG_COUNT + 3; i++) {
        char *t = kat(i < PT_JWT_ALG_COUNT ? kat_algs[i] : more[i - PT_JWT_ALG_COUNT]);
        bool compared = false;
        assert_result(cross_check(t, &compared), PT_JWT_OK);
        assert_true(compared);
        free(t);
    }
    assert_int_equal(libjwt_compared - before, PT_JWT_ALG_COUNT + 3);
    /* libjwt 1.10 cannot read at+jwt tokens (the reason portico verifies
     * with OpenSSL directly): they are verified, not compared. */
    static const char *const at[] = {"RS256_atjwt", "ES256_atjwt"};
    for (size_t i = 0; i < 2; i++) {
        char *t = kat(at[i]);
        bool compared = true;
        assert_result(cross_check(t, &compared), PT_JWT_OK);
        assert_false(compared);
        free(t);
    }
}

static void test_jwt_kat__accessors(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = kat("ES384");
    struct pt_jwt_verified v;
    assert_result(pt_jwt_verify(&s, jwks_keys, cstr(t), NOW, &v), PT_JWT_OK);
    struct pt_str sc[4];
    assert_int_equal(pt_jwt_claims_scopes(v.claims, sc, 4), 2);
    assert_true(pt_str_eq(sc[0], PT_STR("read")));
    assert_true(pt_str_eq(sc[1], PT_STR("write")));
    int64_t exp = 0;
    assert_true(pt_jwt_claims_exp(v.claims, &exp));
    assert_int_equal(exp, EXP);
    assert_null(pt_jwt_claim_str(v.claims, "aud").ptr); /* an array */
    assert_null(pt_jwt_claim_str(v.claims, "nope").ptr);
    pt_jwt_verified_fini(&v);
    free(t);

    /* scp as an array, scope with odd spacing, truncation, none. */
    json_t *c = json_loads("{\"scp\":[\"a\",\"\",\"b\",3,\"c\"]}", 0, NULL);
    assert_int_equal(pt_jwt_claims_scopes(c, sc, 2), 3);
    assert_true(pt_str_eq(sc[0], PT_STR("a")));
    assert_true(pt_str_eq(sc[1], PT_STR("b")));
    json_decref(c);
    c = json_loads("{\"scope\":\"  x   y \",\"scp\":[\"ignored\"]}", 0, NULL);
    assert_int_equal(pt_jwt_claims_scopes(c, sc, 4), 2);
    assert_true(pt_str_eq(sc[1], PT_STR("y")));
    json_decref(c);
    c = json_loads("{\"scp\":\"p q\",\"exp\":\"soon\"}", 0, NULL);
    assert_int_equal(pt_jwt_claims_scopes(c, sc, 4), 2);
    assert_false(pt_jwt_claims_exp(c, &exp));
    json_decref(c);
    c = json_loads("{\"scope\":7}", 0, NULL);
    assert_int_equal(pt_jwt_claims_scopes(c, sc, 4), 0);
    assert_null(pt_jwt_claims_sub(c).ptr);
    json_decref(c);
}

/* ---- key choice ----------------------------------------------------------------- */

static void test_jwt_kid__token_without_kid_tries_fitting_keys(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = kat("RS256_nokid");
    /* jwks: rsa-1 and rsa-2 fit RS256 (order: rsa-1 first). */
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);
    assert_result(verify(&s, pem_keys, t, NOW), PT_JWT_OK);
    free(t);

    /* The number of keys tried is bounded: four other RSA keys first. */
    static const char *const five[] = {"rsa2_public.pem", "rsa2_public.pem", "rsa2_public.pem",
                                       "rsa2_public.pem", "rsa_public.pem"};
    struct pt_jwk_set *many = set_of(false, five, 5);
    t = kat("RS256_nokid");
    assert_int_equal(s.max_key_tries, 4);
    assert_result(verify(&s, many, t, NOW), PT_JWT_BAD_SIGNATURE);
    s.max_key_tries = 5;
    assert_result(verify(&s, many, t, NOW), PT_JWT_OK);
    /* With a kid, only the keys of that kid are candidates... */
    free(t);
    pt_jwk_set_unref(many);
}

static void test_jwt_kid__declared_alg_and_kid_select_the_key(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = kat("RS256_rsa2");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);
    /* The PEM set has no key with kid rsa-2: its kid-less RSA key (a
     * different key) stands in, and the signature does not match. */
    assert_result(verify(&s, pem_keys, t, NOW), PT_JWT_BAD_SIGNATURE);
    free(t);
    /* rsa-2 declares alg RS256: an RS384 token signed by that very key is
     * refused before any signature check. */
    t = kat("RS384_rsa2");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_NO_KEY);
    free(t);
    /* A kid pointing at a key of another type. */
    t = make_rs(EVP_sha256(), "rsa_private.pem", "{\"alg\":\"RS256\",\"kid\":\"ec256-1\"}",
                GOOD_CLAIMS);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_NO_KEY);
    free(t);
}

static void test_jwt_kid__unknown_kid_is_distinct(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = hs256("{\"alg\":\"HS256\",\"kid\":\"zzz\"}", GOOD_CLAIMS);
    /* Every JWKS key has a kid: refresh-worthy. */
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_UNKNOWN_KID);
    /* The PEM set's kid-less secret stands for any kid. */
    assert_result(verify(&s, pem_keys, t, NOW), PT_JWT_OK);
    free(t);
    t = hs256("{\"alg\":\"HS256\",\"kid\":\"hs-1\"}", GOOD_CLAIMS);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);
    free(t);
    /* A kid-less key of another type does not hide a new kid. */
    struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
    assert_int_equal(pt_jwk_builder_add_secret(b, PT_STR_NULL, secret), 0);
    struct pt_str doc = fixture_read("jwks.json");
    assert_int_equal(pt_jwk_builder_add_jwks(b, doc), 0);
    fixture_free(doc);
    struct pt_jwk_set *mixed = pt_jwk_builder_finish(b);
    pt_jwk_builder_free(b);
    t = make_rs(EVP_sha256(), "rsa_private.pem", "{\"alg\":\"RS256\",\"kid\":\"rsa-new\"}",
                GOOD_CLAIMS);
    assert_result(verify(&s, mixed, t, NOW), PT_JWT_UNKNOWN_KID);
    free(t);
    pt_jwk_set_unref(mixed);
    /* No key set at all. */
    t = hs256(HS_HEADER, GOOD_CLAIMS);
    assert_result(verify(&s, NULL, t, NOW), PT_JWT_NO_KEY);
    free(t);
}

static void test_jwt_kid__hmac_secret_shorter_than_the_hash(void **state)
{
    (void)state;
    struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
    assert_int_equal(pt_jwk_builder_add_secret(b, PT_STR_NULL, (struct pt_str){secret.ptr, 32}), 0);
    struct pt_jwk_set *k32 = pt_jwk_builder_finish(b);
    pt_jwk_builder_free(b);
    struct pt_jwt_issuer s = issuer();
    char *t = make_hs(EVP_sha512(), secret.ptr, 32, "{\"alg\":\"HS512\"}", GOOD_CLAIMS);
    assert_result(verify(&s, k32, t, NOW), PT_JWT_NO_KEY);
    free(t);
    t = make_hs(EVP_sha256(), secret.ptr, 32, "{\"alg\":\"HS256\"}", GOOD_CLAIMS);
    assert_result(verify(&s, k32, t, NOW), PT_JWT_OK);
    free(t);
    pt_jwk_set_unref(k32);
}

/* ---- attacks ----------------------------------------------------------------- */

static void test_jwt_attack__alg_none_in_any_case(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    s.algs = PT_JWT_ALGS_ALL;
    static const char *const names[] = {"none", "None", "NONE", "nOnE"};
    for (size_t i = 0; i < 4; i++) {
        char header[64];
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", names[i]);
        char *t = signing_input(header, GOOD_CLAIMS);
        strcat(t, ".");
        assert_result(verify(&s, pem_keys, t, NOW), PT_JWT_ALG_NOT_ALLOWED);
        strcat(t, "c2ln");
        assert_result(verify(&s, pem_keys, t, NOW), PT_JWT_ALG_NOT_ALLOWED);
        free(t);
    }
}

/* HS256 "signed" with the RSA public key's PEM text as the HMAC secret. */
static void test_jwt_attack__hs256_keyed_with_the_rsa_public_key(void **state)
{
    (void)state;
    struct pt_str pem = fixture_read("rsa_public.pem");
    static const char *const rsa_only[] = {"rsa_public.pem"};
    struct pt_jwk_set *rsa = set_of(false, rsa_only, 1);
    const struct pt_jwk *k = pt_jwk_set_key(rsa, 0);
    /* The PEM file as published, and our canonical copy of it. */
    const struct pt_str secrets[] = {pem, {(const char *)k->material, k->material_len}};
    static const char *const headers[] = {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                                          "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}"};
    for (size_t i = 0; i < 2; i++)
        for (size_t h = 0; h < 2; h++) {
            char *t =
                make_hs(EVP_sha256(), secrets[i].ptr, secrets[i].len, headers[h], GOOD_CLAIMS);
            /* The forgery is a valid HS256 token for a naive libjwt user
             * who passes the PEM as "the key" (so this test can fail). */
            jwt_t *j = NULL;
            assert_int_equal(
                jwt_decode(&j, t, (const unsigned char *)secrets[i].ptr, (int)secrets[i].len), 0);
            jwt_free(j);

            struct pt_jwt_issuer s = issuer();
            /* No key may verify HS256 (with a kid nobody has, a newer
             * JWKS might: UNKNOWN_KID, still refused). */
            assert_result(verify(&s, rsa, t, NOW), h == 0 ? PT_JWT_NO_KEY : PT_JWT_UNKNOWN_KID);
            assert_result(verify(&s, jwks_keys, t, NOW),
                          h == 0 ? PT_JWT_BAD_SIGNATURE /* tries hs-1 */ : PT_JWT_NO_KEY);
            /* With a real secret configured the forgery fails its check,
             * and libjwt given that secret agrees. */
            assert_result(verify(&s, pem_keys, t, NOW), PT_JWT_BAD_SIGNATURE);
            bool compared = false;
            assert_result(cross_check(t, &compared), PT_JWT_BAD_SIGNATURE);
            assert_true(compared);
            s.algs = PT_JWT_ALGS_RS;
            assert_result(verify(&s, rsa, t, NOW), PT_JWT_ALG_NOT_ALLOWED);
            free(t);
        }
    pt_jwk_set_unref(rsa);
    fixture_free(pem);
}

/* A set of one PEM key under kid. */
static struct pt_jwk_set *one_key(const char *kid, const char *file)
{
    struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
    struct pt_str pem = fixture_read(file);
    assert_int_equal(pt_jwk_builder_add_pem(b, kid ? cstr(kid) : PT_STR_NULL, pem), 0);
    fixture_free(pem);
    struct pt_jwk_set *s = pt_jwk_builder_finish(b);
    pt_jwk_builder_free(b);
    assert_non_null(s);
    return s;
}

static void test_jwt_attack__rs256_against_an_ec_key(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    /* No kid: the only key is EC, nothing may verify RS256. */
    struct pt_jwk_set *ec = one_key(NULL, "ec256_public.pem");
    char *t = kat("RS256_nokid");
    assert_result(verify(&s, ec, t, NOW), PT_JWT_NO_KEY);
    free(t);
    /* The token's kid names an EC key. */
    struct pt_jwk_set *named = one_key("rsa-1", "ec256_public.pem");
    t = kat("RS256");
    assert_result(verify(&s, named, t, NOW), PT_JWT_NO_KEY);
    /* A kid nobody has, and no kid-less key that fits: maybe a new key. */
    assert_result(verify(&s, ec, t, NOW), PT_JWT_UNKNOWN_KID);
    free(t);
    pt_jwk_set_unref(named);
    /* ES256 needs P-256: a P-384 key under the same kid does not fit. */
    struct pt_jwk_set *p384 = one_key("ec256-1", "ec384_public.pem");
    t = kat("ES256");
    assert_result(verify(&s, p384, t, NOW), PT_JWT_NO_KEY);
    assert_result(verify(&s, ec, t, NOW), PT_JWT_OK);
    free(t);
    pt_jwk_set_unref(p384);
    pt_jwk_set_unref(ec);
}

static void test_jwt_attack__tampering(void **state)
{
    (void)state;
    for (int a = 0; a < PT_JWT_ALG_COUNT; a++) {
        char *t = kat(kat_algs[a]);
        char *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');

        /* Payload replaced (sub mallory), signature kept. */
        char *forged =
            signing_input("{}", "{\"iss\":\"https://issuer.example\",\"aud\":\"portico\","
                                "\"sub\":\"mallory\",\"exp\":4102444800}");
        char *p2 = strchr(forged, '.') + 1;
        char buf[4096];
        snprintf(buf, sizeof(buf), "%.*s.%s%s", (int)(dot1 - t), t, p2, dot2);
        expect_both(buf, PT_JWT_BAD_SIGNATURE);
        free(forged);

        /* Header changed (an extra member), same alg and kid. */
        char header[128];
        const char *kid = a < 3    ? "hs-1"
                          : a < 6  ? "rsa-1"
                          : a == 6 ? "ec256-1"
                          : a == 7 ? "ec384-1"
                                   : "ec521-1";
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\",\"x\":1}", kat_algs[a],
                 kid);
        forged = signing_input(header, "{}");
        snprintf(buf, sizeof(buf), "%.*s%s", (int)(strchr(forged, '.') - forged), forged, dot1);
        expect_both(buf, PT_JWT_BAD_SIGNATURE);
        free(forged);

        /* One signature character changed in the middle. */
        snprintf(buf, sizeof(buf), "%s", t);
        char *c = buf + (dot2 - t) + 10;
        *c = *c == 'A' ? 'B' : 'A';
        expect_both(buf, PT_JWT_BAD_SIGNATURE);

        /* Signature of another algorithm's token. */
        char *other = kat(kat_algs[(a + 3) % PT_JWT_ALG_COUNT]);
        snprintf(buf, sizeof(buf), "%.*s%s", (int)(dot2 - t), t, strrchr(other, '.'));
        expect_both(buf, PT_JWT_BAD_SIGNATURE);
        free(other);
        free(t);
    }
}

static void test_jwt_attack__truncated_and_extra_segments(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = kat("ES256");
    size_t len = strlen(t);
    char buf[2048];
    char *dot2 = strrchr(t, '.');
    /* Every truncation is refused, and never with OK. */
    for (size_t cut = 0; cut < len; cut++) {
        snprintf(buf, sizeof(buf), "%.*s", (int)cut, t);
        enum pt_jwt_result r = verify(&s, jwks_keys, buf, NOW);
        if (cut <= (size_t)(dot2 - t))
            assert_result(r, PT_JWT_MALFORMED);
        else if (r != PT_JWT_MALFORMED && r != PT_JWT_BAD_SIGNATURE)
            fail_msg("cut %zu: %s", cut, pt_jwt_result_name(r));
        bool compared = false;
        assert_result(cross_check(buf, &compared), r);
        assert_int_equal(compared, r == PT_JWT_BAD_SIGNATURE);
    }
    /* 84 of the signature's 86 characters: 63 whole bytes, one short. */
    snprintf(buf, sizeof(buf), "%.*s", (int)(dot2 - t + 1 + 84), t);
    assert_int_equal(strlen(dot2 + 1), 86);
    expect_both(buf, PT_JWT_BAD_SIGNATURE);
    static const char *const wraps[] = {"%s.", "%s.abc",    "%s..", ".%s", " %s",
                                        "%s ", "Bearer %s", "%s\n", "%s=", "%s\r\n"};
    for (size_t i = 0; i < sizeof(wraps) / sizeof(wraps[0]); i++) {
        snprintf(buf, sizeof(buf), wraps[i], t);
        assert_result(verify(&s, jwks_keys, buf, NOW), PT_JWT_MALFORMED);
    }
    /* A NUL inside the bytes (libjwt would stop reading there). */
    memcpy(buf, t, len);
    buf[len - 3] = '\0';
    struct pt_jwt_verified v;
    assert_result(pt_jwt_verify(&s, jwks_keys, (struct pt_str){buf, len}, NOW, &v),
                  PT_JWT_MALFORMED);
    free(t);
}

static void test_jwt_attack__oversized(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = kat("RS256");
    s.max_token_bytes = strlen(t);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);
    s.max_token_bytes = strlen(t) - 1;
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_TOO_LARGE);
    free(t);

    s = issuer();
    size_t big = PT_JWT_DEFAULT_MAX_TOKEN_BYTES + 1;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[big] = '\0';
    assert_result(verify(&s, jwks_keys, huge, NOW), PT_JWT_TOO_LARGE);
    free(huge);
}

/* Header and payload shapes that fail before any signature check. */
static void test_jwt_attack__bad_headers_and_payloads(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    static const struct {
        const char *header, *payload;
        enum pt_jwt_result want;
    } cases[] = {
        {"not json", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {"[\"alg\",\"HS256\"]", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {"\"HS256\"", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {"{\"alg\":256}", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {"{\"alg\":null}", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {"{\"typ\":\"JWT\"}", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {"{\"alg\":\"HS256\",\"kid\":5}", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {"{\"alg\":\"HS256\",\"typ\":7}", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {"{\"alg\":\"hs256\"}", GOOD_CLAIMS, PT_JWT_ALG_NOT_ALLOWED},
        {"{\"alg\":\"HS256 \"}", GOOD_CLAIMS, PT_JWT_ALG_NOT_ALLOWED},
        {"{\"alg\":\"PS256\"}", GOOD_CLAIMS, PT_JWT_ALG_NOT_ALLOWED},
        {"{\"alg\":\"EdDSA\"}", GOOD_CLAIMS, PT_JWT_ALG_NOT_ALLOWED},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", GOOD_CLAIMS, PT_JWT_UNSUPPORTED},
        {"{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", GOOD_CLAIMS, PT_JWT_UNSUPPORTED},
        {"{\"alg\":\"HS256\",\"typ\":\"at+jwt\\u0000\"}", GOOD_CLAIMS, PT_JWT_MALFORMED},
        {HS_HEADER, "[1,2]", PT_JWT_MALFORMED},
        {HS_HEADER, "not json", PT_JWT_MALFORMED},
        {HS_HEADER, "{\"sub\":\"a\",\"sub\":\"b\"}", PT_JWT_MALFORMED},
        {HS_HEADER, "{\"sub\":\"a\\u0000b\"}", PT_JWT_MALFORMED},
        {"{\"alg\":\"HS256\"", GOOD_CLAIMS, PT_JWT_MALFORMED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = hs256(cases[i].header, cases[i].payload);
        enum pt_jwt_result r = verify(&s, jwks_keys, t, NOW);
        if (r != cases[i].want)
            fail_msg("case %zu: got %s want %s", i, pt_jwt_result_name(r),
                     pt_jwt_result_name(cases[i].want));
        free(t);
    }
    /* An HS256 token whose typ is "jwt" in lower case is fine. */
    char *t = hs256("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", GOOD_CLAIMS);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);
    free(t);
    /* Padding and the standard alphabet in a segment. */
    t = hs256(HS_HEADER, GOOD_CLAIMS);
    char buf[2048];
    char *dot1 = strchr(t, '.');
    snprintf(buf, sizeof(buf), "%.*s=%s", (int)(dot1 - t), t, dot1);
    assert_result(verify(&s, jwks_keys, buf, NOW), PT_JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%s", t);
    buf[3] = '+';
    assert_result(verify(&s, jwks_keys, buf, NOW), PT_JWT_MALFORMED);
    /* Empty header or payload segment. */
    snprintf(buf, sizeof(buf), "%s", dot1);
    assert_result(verify(&s, jwks_keys, buf, NOW), PT_JWT_MALFORMED);
    free(t);
}

static void test_jwt_attack__allow_list(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    s.algs = PT_JWT_ALG_BIT(PT_JWT_ALG_ES256);
    for (int a = 0; a < PT_JWT_ALG_COUNT; a++) {
        char *t = kat(kat_algs[a]);
        assert_result(verify(&s, jwks_keys, t, NOW),
                      a == PT_JWT_ALG_ES256 ? PT_JWT_OK : PT_JWT_ALG_NOT_ALLOWED);
        free(t);
    }
    s.algs = 0;
    char *t = kat("ES256");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_ALG_NOT_ALLOWED);
    free(t);
    /* The default allows no HS*. */
    pt_jwt_issuer_init(&s);
    t = kat("HS256");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_ALG_NOT_ALLOWED);
    free(t);
    t = kat("RS512");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);
    free(t);
}

/* ---- signature encodings ------------------------------------------------------ */

/* A token of input with these signature bytes, checked with the JWKS and,
 * confirmed by libjwt, with the right key alone. */
static void expect_sig(const char *input, const unsigned char *sig, size_t len,
                       enum pt_jwt_result want)
{
    char *t = with_signature(input, sig, len);
    expect_both(t, want);
    free(t);
}

/* ECDSA signatures are r || s, each exactly the field size (RFC 7518 3.4).
 * Any other length is refused, DER included, even when it carries the
 * very same r and s; r and s must be in [1, n-1]; high S is valid ECDSA
 * (JOSE has no low-S rule) and is accepted, as OpenSSL and libjwt do. */
static void test_jwt_sig__ecdsa_jose_form_only(void **state)
{
    (void)state;
    static const struct {
        const char *alg, *key_file, *kid;
        const EVP_MD *(*md)(void);
        size_t half;
        int nid;
    } es[] = {
        {"ES256", "ec256_private.pem", "ec256-1", EVP_sha256, 32, NID_X9_62_prime256v1},
        {"ES384", "ec384_private.pem", "ec384-1", EVP_sha384, 48, NID_secp384r1},
        {"ES512", "ec521_private.pem", "ec521-1", EVP_sha512, 66, NID_secp521r1},
    };
    for (size_t i = 0; i < 3; i++) {
        char header[64];
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\"}", es[i].alg, es[i].kid);
        char *in = signing_input(header, GOOD_CLAIMS);
        EVP_PKEY *pkey = fixture_private_key(es[i].key_file);
        unsigned char der[1024], raw[132], x[300];
        size_t derlen = sign_with(pkey, es[i].md(), in, der);
        EVP_PKEY_free(pkey);
        size_t h = es[i].half, n = der_to_jose(der, derlen, h, raw);
        expect_sig(in, raw, n, PT_JWT_OK);

        /* DER, as OpenSSL produced it: 70-72 / 102-104 / 137-139 bytes. */
        expect_sig(in, der, derlen, PT_JWT_BAD_SIGNATURE);
        /* Too short, too long, half, and one zero byte more in front or
         * at the end (the same r and s to a lenient reader). */
        expect_sig(in, raw, n - 1, PT_JWT_BAD_SIGNATURE);
        expect_sig(in, raw, h, PT_JWT_BAD_SIGNATURE);
        x[0] = 0;
        memcpy(x + 1, raw, n);
        expect_sig(in, x, n + 1, PT_JWT_BAD_SIGNATURE);
        memcpy(x, raw, n);
        x[n] = 0;
        expect_sig(in, x, n + 1, PT_JWT_BAD_SIGNATURE);
        /* The same r and s, each padded to another curve's size. */
        size_t other = h == 66 ? 32 : 66;
        if (other > h) {
            memset(x, 0, 2 * other);
            memcpy(x + other - h, raw, h);
            memcpy(x + 2 * other - h, raw + h, h);
            expect_sig(in, x, 2 * other, PT_JWT_BAD_SIGNATURE);
        }

        /* High S: (r, n - s) is a second valid signature. */
        EC_GROUP *g = EC_GROUP_new_by_curve_name(es[i].nid);
        const BIGNUM *order = EC_GROUP_get0_order(g);
        BIGNUM *sv = BN_bin2bn(raw + h, (int)h, NULL), *hs = BN_new();
        assert_int_equal(BN_sub(hs, order, sv), 1);
        memcpy(x, raw, h);
        assert_int_equal(BN_bn2binpad(hs, x + h, (int)h), (int)h);
        assert_memory_not_equal(x + h, raw + h, h);
        expect_sig(in, x, n, PT_JWT_OK);

        /* r or s zero, both zero, r or s equal to the order, r and s
         * swapped. */
        unsigned char nbytes[66];
        assert_int_equal(BN_bn2binpad(order, nbytes, (int)h), (int)h);
        const unsigned char *const parts[][2] = {
            {NULL, raw + h},   {raw, NULL},   {NULL, NULL},
            {nbytes, raw + h}, {raw, nbytes}, {raw + h, raw},
        };
        for (size_t c = 0; c < sizeof(parts) / sizeof(parts[0]); c++) {
            for (int half = 0; half < 2; half++) {
                if (parts[c][half])
                    memcpy(x + half * h, parts[c][half], h);
                else
                    memset(x + half * h, 0, h);
            }
            expect_sig(in, x, n, PT_JWT_BAD_SIGNATURE);
        }
        /* All 0xff: r and s above the order. */
        memset(x, 0xff, n);
        expect_sig(in, x, n, PT_JWT_BAD_SIGNATURE);
        BN_free(sv);
        BN_free(hs);
        EC_GROUP_free(g);
        free(in);
    }
}

/* An RSA signature is exactly as long as the modulus (RFC 8017 8.2.2):
 * one whose leading zero byte is dropped is the same number, and still
 * refused; so are longer ones and values not below the modulus. */
static void test_jwt_sig__rsa_signature_must_fill_the_modulus(void **state)
{
    (void)state;
    EVP_PKEY *pkey = fixture_private_key("rsa_private.pem");
    unsigned char sig[1024], x[1100];
    size_t len = 0;
    char *in = NULL;
    /* PKCS#1 v1.5 is deterministic: search (bounded) for claims whose
     * signature starts with a zero byte (1 in 256). */
    for (int jti = 0; jti < 4096; jti++) {
        char payload[256];
        snprintf(payload, sizeof(payload),
                 "{\"iss\":\"https://issuer.example\",\"aud\":\"portico\",\"exp\":4102444800,"
                 "\"jti\":\"%d\"}",
                 jti);
        free(in);
        in = signing_input("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", payload);
        len = sign_with(pkey, EVP_sha256(), in, sig);
        if (sig[0] == 0)
            break;
    }
    EVP_PKEY_free(pkey);
    assert_int_equal(len, 256);
    if (sig[0] != 0)
        fail_msg("no signature with a leading zero byte in 4096 tries");
    expect_sig(in, sig, len, PT_JWT_OK);
    expect_sig(in, sig + 1, len - 1, PT_JWT_BAD_SIGNATURE); /* the same number, short */
    expect_sig(in, sig, len - 1, PT_JWT_BAD_SIGNATURE);     /* truncated */
    x[0] = 0;
    memcpy(x + 1, sig, len);
    expect_sig(in, x, len + 1, PT_JWT_BAD_SIGNATURE); /* a zero byte more in front */
    memset(x, 0, len);
    expect_sig(in, x, len, PT_JWT_BAD_SIGNATURE);
    memset(x, 0xff, len); /* above the modulus */
    expect_sig(in, x, len, PT_JWT_BAD_SIGNATURE);
    /* Longer than any signature of any key: refused before decoding. */
    memset(x, 0x5a, sizeof(x));
    expect_sig(in, x, sizeof(x), PT_JWT_BAD_SIGNATURE);
    free(in);
}

/* An HMAC signature is the whole MAC: a truncated or extended one fails. */
static void test_jwt_sig__hmac_must_be_the_whole_mac(void **state)
{
    (void)state;
    char *in = signing_input("{\"alg\":\"HS512\",\"kid\":\"hs-1\"}", GOOD_CLAIMS);
    unsigned char mac[EVP_MAX_MD_SIZE + 1];
    unsigned maclen = 0;
    assert_non_null(HMAC(EVP_sha512(), secret.ptr, (int)secret.len, (const unsigned char *)in,
                         strlen(in), mac, &maclen));
    assert_int_equal(maclen, 64);
    expect_sig(in, mac, 64, PT_JWT_OK);
    expect_sig(in, mac, 32, PT_JWT_BAD_SIGNATURE);
    expect_sig(in, mac, 63, PT_JWT_BAD_SIGNATURE);
    mac[64] = 0;
    expect_sig(in, mac, 65, PT_JWT_BAD_SIGNATURE);
    free(in);
}

/* ---- claims ----------------------------------------------------------------- */

static void test_jwt_claims__expiry_with_leeway(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = kat("HS256");
    assert_result(verify(&s, jwks_keys, t, EXP + 59), PT_JWT_OK);
    assert_result(verify(&s, jwks_keys, t, EXP + 60), PT_JWT_EXPIRED);
    assert_result(verify(&s, jwks_keys, t, INT64_MAX), PT_JWT_EXPIRED);
    s.leeway_s = 0;
    assert_result(verify(&s, jwks_keys, t, EXP - 1), PT_JWT_OK);
    assert_result(verify(&s, jwks_keys, t, EXP), PT_JWT_EXPIRED);
    free(t);
}

static void test_jwt_claims__not_before_and_issued_at(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = kat("RS256");
    assert_result(verify(&s, jwks_keys, t, IAT - 60), PT_JWT_OK);
    assert_result(verify(&s, jwks_keys, t, IAT - 61), PT_JWT_NOT_YET_VALID);
    assert_result(verify(&s, jwks_keys, t, INT64_MIN), PT_JWT_NOT_YET_VALID);
    free(t);
    /* iat alone, in the future beyond the leeway. */
    char payload[256];
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"https://issuer.example\",\"aud\":\"portico\",\"exp\":4102444800,"
             "\"iat\":%d}",
             NOW + 61);
    t = hs256(HS_HEADER, payload);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_NOT_YET_VALID);
    assert_result(verify(&s, jwks_keys, t, NOW + 1), PT_JWT_OK);
    free(t);
    /* nbf as a fraction is rounded up. */
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"https://issuer.example\",\"aud\":\"portico\",\"exp\":4102444800,"
             "\"nbf\":%d.5}",
             NOW + 60);
    t = hs256(HS_HEADER, payload);
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_NOT_YET_VALID);
    assert_result(verify(&s, jwks_keys, t, NOW + 1), PT_JWT_OK);
    free(t);
}

static void test_jwt_claims__issuer_and_audience(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = kat("ES512");
    s.issuer = PT_STR("https://issuer.example/");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_BAD_ISSUER);
    s.issuer = PT_STR("https://ISSUER.example");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_BAD_ISSUER);
    s.issuer = PT_STR_NULL;
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);

    s = issuer();
    const struct pt_str nope[] = {PT_STR("nope"), PT_STR("other")};
    s.audiences = nope;
    s.naudiences = 1;
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_BAD_AUDIENCE);
    s.naudiences = 2; /* "other" is in the token's aud array */
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);
    s.naudiences = 0;
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);
    free(t);

    /* No iss, no aud. */
    s = issuer();
    t = hs256(HS_HEADER, "{\"aud\":\"portico\",\"exp\":4102444800}");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_BAD_ISSUER);
    free(t);
    t = hs256(HS_HEADER, "{\"iss\":\"https://issuer.example\",\"exp\":4102444800}");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_BAD_AUDIENCE);
    free(t);
    t = hs256(HS_HEADER, "{\"iss\":\"https://issuer.example\",\"aud\":\"portico2\","
                         "\"exp\":4102444800}");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_BAD_AUDIENCE);
    free(t);
}

static void test_jwt_claims__types(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
#define BASE "\"iss\":\"https://issuer.example\",\"aud\":\"portico\""
    static const struct {
        const char *payload;
        enum pt_jwt_result want;
    } cases[] = {
        {"{" BASE ",\"exp\":\"4102444800\"}", PT_JWT_BAD_CLAIM},
        {"{" BASE ",\"exp\":null}", PT_JWT_BAD_CLAIM},
        {"{" BASE ",\"exp\":[4102444800]}", PT_JWT_BAD_CLAIM},
        {"{" BASE ",\"exp\":4102444800,\"nbf\":true}", PT_JWT_BAD_CLAIM},
        {"{" BASE ",\"exp\":4102444800,\"iat\":{}}", PT_JWT_BAD_CLAIM},
        {"{\"iss\":5,\"aud\":\"portico\",\"exp\":4102444800}", PT_JWT_BAD_CLAIM},
        {"{\"iss\":\"https://issuer.example\",\"aud\":[\"portico\",1],\"exp\":4102444800}",
         PT_JWT_BAD_CLAIM},
        {"{\"iss\":\"https://issuer.example\",\"aud\":{},\"exp\":4102444800}", PT_JWT_BAD_CLAIM},
        {"{" BASE ",\"exp\":4102444800,\"sub\":{}}", PT_JWT_BAD_CLAIM},
        {"{" BASE ",\"exp\":4102444800,\"jti\":1}", PT_JWT_BAD_CLAIM},
        {"{" BASE ",\"exp\":4102444800.9}", PT_JWT_OK},
        {"{" BASE ",\"exp\":1e300}", PT_JWT_OK},
        {"{" BASE ",\"exp\":99999999999999999}", PT_JWT_OK},
        {"{" BASE ",\"exp\":-1}", PT_JWT_EXPIRED},
        {"{" BASE ",\"exp\":-1e300}", PT_JWT_EXPIRED},
        {"{" BASE ",\"exp\":4102444800,\"nbf\":-1e300,\"iat\":0}", PT_JWT_OK},
        {"{" BASE "}", PT_JWT_MISSING_CLAIM},
    };
#undef BASE
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = hs256(HS_HEADER, cases[i].payload);
        enum pt_jwt_result r = verify(&s, jwks_keys, t, NOW);
        if (r != cases[i].want)
            fail_msg("case %zu: got %s want %s", i, pt_jwt_result_name(r),
                     pt_jwt_result_name(cases[i].want));
        free(t);
    }
    /* A fractional exp is rounded down. */
    char *t = hs256(HS_HEADER, "{\"iss\":\"https://issuer.example\",\"aud\":\"portico\","
                               "\"exp\":4102444800.9}");
    struct pt_jwt_verified v;
    assert_result(pt_jwt_verify(&s, jwks_keys, cstr(t), NOW, &v), PT_JWT_OK);
    assert_int_equal(v.exp, EXP);
    pt_jwt_verified_fini(&v);
    free(t);
}

static void test_jwt_claims__required(void **state)
{
    (void)state;
    struct pt_jwt_issuer s = issuer();
    char *t = hs256(HS_HEADER, "{\"iss\":\"https://issuer.example\",\"aud\":\"portico\","
                               "\"email\":null,\"tenant\":\"t1\"}");
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_MISSING_CLAIM);
    s.require_exp = false;
    struct pt_jwt_verified v;
    assert_result(pt_jwt_verify(&s, jwks_keys, cstr(t), NOW, &v), PT_JWT_OK);
    assert_false(v.has_exp);
    pt_jwt_verified_fini(&v);

    /* Names from configuration need not be NUL-terminated. */
    const struct pt_str req[] = {{"tenantXYZ", 6}, PT_STR("email")};
    s.required_claims = req;
    s.nrequired_claims = 1;
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_OK);
    s.nrequired_claims = 2; /* email is null: missing */
    assert_result(verify(&s, jwks_keys, t, NOW), PT_JWT_MISSING_CLAIM);
    free(t);
}

/* ---- peek and texts ------------------------------------------------------------ */

static void test_jwt_peek__untrusted_alg_kid_iss(void **state)
{
    (void)state;
    char *t = kat("ES256");
    struct pt_jwt_peek p;
    assert_result(pt_jwt_peek(cstr(t), 8192, &p), PT_JWT_OK);
    assert_true(pt_str_eq(p.alg, PT_STR("ES256")));
    assert_true(pt_str_eq(p.kid, PT_STR("ec256-1")));
    assert_true(pt_str_eq(p.iss, PT_STR("https://issuer.example")));
    pt_jwt_peek_fini(&p);
    assert_null(p.header);
    assert_result(pt_jwt_peek(cstr(t), 10, &p), PT_JWT_TOO_LARGE);
    free(t);

    /* Peek reads unsigned tokens too; it verifies nothing. */
    t = signing_input("{\"alg\":\"none\"}", "{\"iss\":7}");
    strcat(t, ".");
    assert_result(pt_jwt_peek(cstr(t), 8192, &p), PT_JWT_OK);
    assert_true(pt_str_eq(p.alg, PT_STR("none")));
    assert_null(p.kid.ptr);
    assert_null(p.iss.ptr);
    pt_jwt_peek_fini(&p);
    free(t);
    assert_result(pt_jwt_peek(cstr("a.b"), 8192, &p), PT_JWT_MALFORMED);
    assert_null(p.header);
    assert_result(pt_jwt_peek(cstr("e30.bm9wZQ.x"), 8192, &p), PT_JWT_MALFORMED);
}

static void test_jwt_results__texts_are_fixed_and_header_safe(void **state)
{
    (void)state;
    for (int r = 0; r < PT_JWT_RESULT_COUNT; r++) {
        const char *text = pt_jwt_result_text((enum pt_jwt_result)r);
        const char *name = pt_jwt_result_name((enum pt_jwt_result)r);
        assert_non_null(text);
        assert_true(strlen(text) > 5 && strlen(name) > 1);
        for (const char *c = text; *c; c++)
            assert_true(*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\');
    }
    assert_string_equal(pt_jwt_result_text(PT_JWT_EXPIRED), "token expired");
    assert_string_equal(pt_jwt_result_name(PT_JWT_RESULT_COUNT), "?");
    assert_string_equal(pt_jwt_result_text(PT_JWT_RESULT_COUNT),
                        pt_jwt_result_text(PT_JWT_INTERNAL));
}

/* ---- threads ------------------------------------------------------------------ */

struct worker_arg {
    struct pt_jwk_set *keys; /* one reference, handed over by "message" */
    const char *token;
    int ok;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    struct pt_jwt_issuer s = issuer();
    for (int i = 0; i < 40; i++)
        a->ok += verify(&s, a->keys, a->token, NOW) == PT_JWT_OK;
    pt_jwk_set_unref(a->keys);
    return NULL;
}

/* Workers verify with references to a set the builder has already dropped
 * (as after a JWKS refresh); the last worker frees it (ASan checks). */
static void test_jwt_threads__workers_keep_a_swapped_set_alive(void **state)
{
    (void)state;
    struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
    struct pt_str doc = fixture_read("jwks.json");
    assert_int_equal(pt_jwk_builder_add_jwks(b, doc), 0);
    fixture_free(doc);
    struct pt_jwk_set *set = pt_jwk_builder_finish(b);
    pt_jwk_builder_free(b);
    static const char *const names[4] = {"RS256", "ES256", "ES384", "RS512"};
    char *tokens[4];
    pthread_t th[4];
    struct worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        tokens[i] = kat(names[i]);
        args[i] = (struct worker_arg){pt_jwk_set_ref(set), tokens[i], 0};
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    pt_jwk_set_unref(set); /* swapped out: only the workers hold it now */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].ok, 40);
        free(tokens[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_kat__every_algorithm_with_pem_keys),
        cmocka_unit_test(test_jwt_kat__every_algorithm_with_the_jwks_of_the_same_keys),
        cmocka_unit_test(test_jwt_typ__at_jwt_access_tokens_verify),
        cmocka_unit_test(test_jwt_typ__media_type_rules),
        cmocka_unit_test(test_jwt_kat__libjwt_agrees),
        cmocka_unit_test(test_jwt_kat__accessors),
        cmocka_unit_test(test_jwt_kid__token_without_kid_tries_fitting_keys),
        cmocka_unit_test(test_jwt_kid__declared_alg_and_kid_select_the_key),
        cmocka_unit_test(test_jwt_kid__unknown_kid_is_distinct),
        cmocka_unit_test(test_jwt_kid__hmac_secret_shorter_than_the_hash),
        cmocka_unit_test(test_jwt_attack__alg_none_in_any_case),
        cmocka_unit_test(test_jwt_attack__hs256_keyed_with_the_rsa_public_key),
        cmocka_unit_test(test_jwt_attack__rs256_against_an_ec_key),
        cmocka_unit_test(test_jwt_attack__tampering),
        cmocka_unit_test(test_jwt_attack__truncated_and_extra_segments),
        cmocka_unit_test(test_jwt_attack__oversized),
        cmocka_unit_test(test_jwt_attack__bad_headers_and_payloads),
        cmocka_unit_test(test_jwt_attack__allow_list),
        cmocka_unit_test(test_jwt_sig__ecdsa_jose_form_only),
        cmocka_unit_test(test_jwt_sig__rsa_signature_must_fill_the_modulus),
        cmocka_unit_test(test_jwt_sig__hmac_must_be_the_whole_mac),
        cmocka_unit_test(test_jwt_claims__expiry_with_leeway),
        cmocka_unit_test(test_jwt_claims__not_before_and_issued_at),
        cmocka_unit_test(test_jwt_claims__issuer_and_audience),
        cmocka_unit_test(test_jwt_claims__types),
        cmocka_unit_test(test_jwt_claims__required),
        cmocka_unit_test(test_jwt_peek__untrusted_alg_kid_iss),
        cmocka_unit_test(test_jwt_results__texts_are_fixed_and_header_safe),
        cmocka_unit_test(test_jwt_threads__workers_keep_a_swapped_set_alive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
