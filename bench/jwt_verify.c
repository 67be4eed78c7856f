/*
 * bench_jwt_verify: what one JWT verification costs, per algorithm, and
 * what a verified-token cache hit costs instead.
 *
 * Makes fresh keys (RSA 2048, EC P-256, a 64-byte HMAC secret), signs one
 * token per algorithm with libjwt (typical claims, about 350 bytes), then
 * runs pt_jwt_verify() on it N times (full path: our header and claim
 * checks plus libjwt's jwt_decode, which parses the PEM key each call) and
 * pt_token_cache_lookup() N times. Prints verifications per second and
 * microseconds each. No timing assertion: it exits non-zero only if a
 * verification does not succeed.
 *
 * Usage: bench_jwt_verify [iterations]   (default 2000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/jwk.h"
#include "auth/jwt.h"
#include "auth/token_cache.h"

#define NOW 1700000000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* PEM text of pkey's private (priv) or public half; caller frees. */
static char *pem_of(EVP_PKEY *pkey, int priv, size_t *len)
{
    BIO *m = BIO_new(BIO_s_mem());
    int ok = priv ? PEM_write_bio_PrivateKey(m, pkey, NULL, NULL, 0, NULL, NULL)
                  : PEM_write_bio_PUBKEY(m, pkey);
    char *data = NULL;
    long n = ok ? BIO_get_mem_data(m, &data) : 0;
    if (n <= 0) {
        fprintf(stderr, "cannot write PEM\n");
        exit(2);
    }
    char *out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    BIO_free(m);
    return out;
}

static char *sign(jwt_alg_t alg, const char *kid, const unsigned char *key, size_t len)
{
    jwt_t *j = NULL;
    if (jwt_new(&j) != 0 || jwt_add_header(j, "kid", kid) != 0 ||
        jwt_add_grant(j, "iss", "https://issuer.example") != 0 ||
        jwt_add_grant(j, "aud", "portico") != 0 || jwt_add_grant(j, "sub", "user-12345") != 0 ||
        jwt_add_grant(j, "scope", "read write admin") != 0 ||
        jwt_add_grant_int(j, "iat", NOW - 10) != 0 ||
        jwt_add_grant_int(j, "exp", NOW + 3600) != 0 || jwt_set_alg(j, alg, key, (int)len) != 0) {
        fprintf(stderr, "cannot build a token\n");
        exit(2);
    }
    char *t = jwt_encode_str(j);
    jwt_free(j);
    if (!t) {
        fprintf(stderr, "cannot sign a token\n");
        exit(2);
    }
    return t;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
    if (n <= 0 || n > 100000000) {
        fprintf(stderr, "usage: %s [iterations]\n", argv[0]);
        return 2;
    }
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!rsa || !ec) {
        fprintf(stderr, "key generation failed\n");
        return 2;
    }
    unsigned char secret[64];
    for (size_t i = 0; i < sizeof(secret); i++)
        secret[i] = (unsigned char)(i * 37 + 11);

    size_t rsa_priv_len, rsa_pub_len, ec_priv_len, ec_pub_len;
    char *rsa_priv = pem_of(rsa, 1, &rsa_priv_len), *rsa_pub = pem_of(rsa, 0, &rsa_pub_len);
    char *ec_priv = pem_of(ec, 1, &ec_priv_len), *ec_pub = pem_of(ec, 0, &ec_pub_len);

    struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, NULL, NULL);
    if (pt_jwk_builder_add_secret(b, PT_STR("hs"), (struct pt_str){(char *)secret, 64}) != 0 ||
        pt_jwk_builder_add_pem(b, PT_STR("rsa"), (struct pt_str){rsa_pub, rsa_pub_len}) != 0 ||
        pt_jwk_builder_add_pem(b, PT_STR("ec"), (struct pt_str){ec_pub, ec_pub_len}) != 0) {
        fprintf(stderr, "key set: %s\n", pt_jwk_builder_error(b));
        return 2;
    }
    struct pt_jwk_set *keys = pt_jwk_builder_finish(b);
    pt_jwk_builder_free(b);

    static const struct pt_str auds[] = {PT_STR("portico")};
    struct pt_jwt_issuer s;
    pt_jwt_issuer_init(&s);
    s.issuer = PT_STR("https://issuer.example");
    s.audiences = auds;
    s.naudiences = 1;
    s.algs = PT_JWT_ALGS_ALL;

    const struct {
        const char *name;
        char *token;
    } cases[] = {
        {"HS256", sign(JWT_ALG_HS256, "hs", secret, sizeof(secret))},
        {"RS256", sign(JWT_ALG_RS256, "rsa", (unsigned char *)rsa_priv, rsa_priv_len)},
        {"ES256", sign(JWT_ALG_ES256, "ec", (unsigned char *)ec_priv, ec_priv_len)},
    };
    printf("pt_jwt_verify, %ld iterations each (RSA 2048, EC P-256, 64-byte HMAC secret)\n", n);
    int status = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct pt_str tok = pt_str_from_cstr(cases[c].token);
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            struct pt_jwt_verified v;
            enum pt_jwt_result r = pt_jwt_verify(&s, keys, tok, NOW, &v);
            if (r != PT_JWT_OK) {
                fprintf(stderr, "%s: %s\n", cases[c].name, pt_jwt_result_name(r));
                status = 1;
                break;
            }
            pt_jwt_verified_fini(&v);
        }
        double dt = now_s() - t0;
        printf("  %s  %6zu-byte token  %10.0f verifications/s  %8.2f us each\n", cases[c].name,
               tok.len, (double)n / dt, dt * 1e6 / (double)n);
    }

    /* A cache hit instead: SHA-256 of the token and a table lookup. */
    struct pt_token_cache *cache = pt_token_cache_new(NULL);
    struct pt_str tok = pt_str_from_cstr(cases[1].token);
    struct pt_jwt_verified v;
    if (pt_jwt_verify(&s, keys, tok, NOW, &v) == PT_JWT_OK) {
        pt_token_cache_insert(cache, 1, pt_jwk_set_generation(keys), tok, v.claims, v.has_exp,
                              v.exp, NOW);
        pt_jwt_verified_fini(&v);
        long hits = n * 50;
        double t0 = now_s();
        for (long i = 0; i < hits; i++) {
            json_t *j = pt_token_cache_lookup(cache, 1, pt_jwk_set_generation(keys), tok, NOW);
            if (!j) {
                status = 1;
                break;
            }
            json_decref(j);
        }
        double dt = now_s() - t0;
        printf("  cache hit (RS256 token)         %10.0f lookups/s        %8.3f us each\n",
               (double)hits / dt, dt * 1e6 / (double)hits);
    }
    pt_token_cache_free(cache);

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
        free(cases[c].token);
    pt_jwk_set_unref(keys);
    free(rsa_priv);
    free(rsa_pub);
    free(ec_priv);
    free(ec_pub);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return status;
}
