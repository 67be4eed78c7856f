/*
 * bench_jwt_verify: what one JWT verification costs, per algorithm, and
 * what a verified-token cache hit costs instead.
 *
 * Makes fresh keys (RSA 2048, EC P-256, a 64-byte HMAC secret), signs one
 * token per algorithm with OpenSSL (typical claims, about 350 bytes), then
 * runs pt_jwt_verify() on it N times (the full path: our header and claim
 * checks and the signature check on the key parsed when the set was built)
 * and pt_token_cache_lookup() N times. Prints verifications per second and
 * microseconds each, on one thread (so per core). No timing assertion: it
 * exits non-zero only if a verification does not succeed.
 *
 * Usage: bench_jwt_verify [iterations]   (default 2000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
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

/* PEM text of pkey's public half; caller frees. */
static char *pub_pem(EVP_PKEY *pkey, size_t *len)
{
    BIO *m = BIO_new(BIO_s_mem());
    int ok = m && PEM_write_bio_PUBKEY(m, pkey);
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

static size_t b64url(const unsigned char *p, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tab[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = tab[v & 63];
    }
    out[o] = '\0';
    return o;
}

static void die(const char *what)
{
    fprintf(stderr, "cannot %s\n", what);
    exit(2);
}

/* A token signed with alg ("HS256", "RS256" or "ES256"): the secret for
 * HS256, else pkey (the private key). */
static char *sign(const char *alg, const char *kid, EVP_PKEY *pkey, const unsigned char *secret,
                  size_t secret_len)
{
    char header[128], claims[512];
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
    snprintf(claims, sizeof(claims),
             "{\"iss\":\"https://issuer.example\",\"aud\":\"portico\",\"sub\":\"user-12345\","
             "\"scope\":\"read write admin\",\"iat\":%d,\"exp\":%d}",
             NOW - 10, NOW + 3600);
    char *t = malloc(4096);
    size_t o = b64url((const unsigned char *)header, strlen(header), t);
    t[o++] = '.';
    o += b64url((const unsigned char *)claims, strlen(claims), t + o);
    unsigned char sig[512];
    size_t siglen = sizeof(sig);
    if (alg[0] == 'H') {
        unsigned len = 0;
        if (!HMAC(EVP_sha256(), secret, (int)secret_len, (unsigned char *)t, o, sig, &len))
            die("sign HS256");
        siglen = len;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
            EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)t, o) != 1)
            die("sign");
        EVP_MD_CTX_free(ctx);
        if (alg[0] == 'E') { /* DER to JOSE r || s */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
            if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) != 32 ||
                BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) != 32)
                die("convert an ECDSA signature");
            ECDSA_SIG_free(es);
            siglen = 64;
        }
    }
    t[o++] = '.';
    b64url(sig, siglen, t + o);
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

    size_t rsa_pub_len, ec_pub_len;
    char *rsa_pub = pub_pem(rsa, &rsa_pub_len), *ec_pub = pub_pem(ec, &ec_pub_len);

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
        {"HS256", sign("HS256", "hs", NULL, secret, sizeof(secret))},
        {"RS256", sign("RS256", "rsa", rsa, NULL, 0)},
        {"ES256", sign("ES256", "ec", ec, NULL, 0)},
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
    free(rsa_pub);
    free(ec_pub);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return status;
}
