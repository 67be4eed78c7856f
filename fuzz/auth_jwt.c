/*
 * Fuzz target: arbitrary bytes as a bearer token (pt_jwt_peek and
 * pt_jwt_verify, then the token cache on success), or as a JWKS document.
 * Must never crash, hang or leak, and must keep its promises: a verified
 * token has claims that are a JSON object, an alg in the allow-list, and
 * peeks the same alg; no result text is ever empty.
 *
 * Input: byte 0 selects the mode (low two bits 3: JWKS document, else a
 * token; bit 2 set: the issuer requires typ at+jwt, and a verified token
 * must then say so); the rest is the token or document. The keys are copies of
 * tests/unit/auth/fixtures/jwt/{hmac_secret.txt,rsa_public.pem,
 * ec256_public.pem}, so the committed seeds (fixture tokens) verify all the
 * way; refresh both if those fixtures are regenerated.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/jwk.h"
#include "auth/jwt.h"
#include "auth/token_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000100

static const char secret[] = "17227b957af3f09f748bcf9928d960afc286026b0f19d8ec7ce3a00b2f16fded";
static const char rsa_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzSZvRjTmAAs8W+cMv0ix\n"
                              "ks5MJ6QxOLKw8tdIRQUur01mbMwONRfSxzhl+3KC5pBTJoJSfZudWX/y7Yn4SuhA\n"
                              "IiBW4ECSUv+kKfY80felYiSd7LMjkailyzsPPMH9AnupliEEon4h940uz4dmo6dz\n"
                              "NXkHx1o+2Lh6Rgtsyu8Yp3UOgRYiCQ/E0+G9JvtlXacJ70PjaPxqZ01Is2Ke8H7F\n"
                              "o3FMssYooUAW4WGHlXAA8HE9DiIeeOj7TpWt/jzLvHcKkLU2CKcCFdH7VV47gj/g\n"
                              "ODzTo2QvrJGjF9Z1axI06zKl64VXmAwg8TOUINkROBJ8lKQOyUohEqS/IMrHyyQL\n"
                              "iQIDAQAB\n"
                              "-----END PUBLIC KEY-----\n";
static const char ec256_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEnfQRuqHj6CYOBYv44X+Fogr05kkM\n"
                                "vH3ceziLULqjE+PPc6DcEb4ykABIM4e6pwzAVRoxemVG2gbEeSURPsAQaw==\n"
                                "-----END PUBLIC KEY-----\n";

static void check(bool ok)
{
    if (!ok)
        abort();
}

static struct pt_jwk_set *keys(void)
{
    static struct pt_jwk_set *set;
    if (!set) {
        struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
        check(pt_jwk_builder_add_secret(b, PT_STR("hs-1"), PT_STR(secret)) == 0);
        check(pt_jwk_builder_add_pem(b, PT_STR_NULL, PT_STR(rsa_pem)) == 0);
        check(pt_jwk_builder_add_pem(b, PT_STR("ec256-1"), PT_STR(ec256_pem)) == 0);
        set = pt_jwk_builder_finish(b);
        check(set != NULL);
        pt_jwk_builder_free(b);
    }
    return set;
}

static void fuzz_jwks(struct pt_str doc)
{
    struct pt_jwk_limits lim;
    pt_jwk_limits_init(&lim);
    lim.allow_oct = true;
    lim.max_doc_bytes = 64 * 1024;
    struct pt_jwk_builder *b = pt_jwk_builder_new(&lim, NULL, NULL);
    int rc = pt_jwk_builder_add_jwks(b, doc);
    struct pt_jwk_set *s = pt_jwk_builder_finish(b);
    check((rc == 0) == (s != NULL));
    check(pt_jwk_builder_error(b) != NULL);
    for (size_t i = 0; s && i < pt_jwk_set_count(s); i++) {
        const struct pt_jwk *k = pt_jwk_set_key(s, i);
        check(k->material_len > 0);
        check(!k->has_alg || pt_jwk_fits(k, k->alg));
        /* Public keys are parsed once, here; secrets never are keys. */
        check((k->pkey != NULL) == (k->kty != PT_JWK_OCT));
    }
    pt_jwk_set_unref(s);
    pt_jwk_builder_free(b);
}

/* The peeked header says typ at+jwt or application/at+jwt, in any case. */
static bool says_at_jwt(const json_t *header)
{
    json_t *typ = json_object_get(header, "typ");
    if (!json_is_string(typ))
        return false;
    struct pt_str v = {json_string_value(typ), json_string_length(typ)};
    struct pt_str app = PT_STR("application/");
    if (v.len > app.len && strncasecmp(v.ptr, app.ptr, app.len) == 0)
        v = (struct pt_str){v.ptr + app.len, v.len - app.len};
    return v.len == 6 && strncasecmp(v.ptr, "at+jwt", 6) == 0;
}

static void fuzz_token(struct pt_str token, bool require_at_jwt)
{
    static const struct pt_str auds[] = {PT_STR("portico")};
    struct pt_jwt_issuer s;
    pt_jwt_issuer_init(&s);
    s.issuer = PT_STR("https://issuer.example");
    s.audiences = auds;
    s.naudiences = 1;
    s.algs = PT_JWT_ALGS_ALL;
    s.require_typ_at_jwt = require_at_jwt;

    struct pt_jwt_peek p;
    enum pt_jwt_result pr = pt_jwt_peek(token, s.max_token_bytes, &p);
    check(pr == PT_JWT_OK || pr == PT_JWT_MALFORMED || pr == PT_JWT_TOO_LARGE);

    struct pt_jwt_verified v;
    enum pt_jwt_result r = pt_jwt_verify(&s, keys(), token, NOW, &v);
    check(r < PT_JWT_RESULT_COUNT && pt_jwt_result_text(r)[0] != '\0');
    if (r == PT_JWT_OK) {
        check(pr == PT_JWT_OK);
        check(json_is_object(v.claims));
        check(s.algs & PT_JWT_ALG_BIT(v.alg));
        check(pt_str_eq(p.alg, pt_str_from_cstr(pt_jwt_alg_name(v.alg))));
        check(!require_at_jwt || says_at_jwt(p.header));
        struct pt_str scopes[4];
        pt_jwt_claims_scopes(v.claims, scopes, 4);
        pt_jwt_claims_sub(v.claims);

        struct pt_token_cache_opts o = {.max_entries = 2};
        struct pt_token_cache *c = pt_token_cache_new(&o);
        pt_token_cache_insert(c, 1, 1, token, v.claims, v.has_exp, v.exp, NOW);
        json_t *hit = pt_token_cache_lookup(c, 1, 1, token, NOW);
        check(hit == v.claims);
        json_decref(hit);
        pt_token_cache_free(c);
    } else {
        check(v.claims == NULL);
    }
    pt_jwt_verified_fini(&v);
    if (pr == PT_JWT_OK)
        pt_jwt_peek_fini(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct pt_str rest = {(const char *)data + 1, size - 1};
    if ((data[0] & 3) == 3)
        fuzz_jwks(rest);
    else
        fuzz_token(rest, (data[0] & 4) != 0);
    return 0;
}
