/*
 * auth/jws.c - one JWS signature check with OpenSSL 3 (see jws.h).
 *
 * Why not libjwt: libjwt 1.10 takes keys only as PEM bytes and parses them
 * on every call (about 250 us of a 270 us RS256 verification), and it
 * refuses every "typ" but JWT. Here the EVP_PKEY was parsed once, when the
 * key set was built, and the caller has already decided alg and key by
 * portico's rules, so this file is only the three signature schemes.
 *
 * Lengths are checked before any arithmetic: a JOSE signature has exactly
 * one valid length per algorithm and key, so a signature of another length
 * (a DER ECDSA signature, an RSA signature with its leading zero bytes
 * dropped, a truncated MAC) is refused whatever a lenient decoder below
 * would make of it.
 */
#include "auth/jws.h"

#include <limits.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "portico/errors.h"

/* ES*: bytes of r and of s (the field size of P-256, P-384, P-521). */
static size_t es_half(enum pt_jwt_alg alg)
{
    switch (alg) {
    case PT_JWT_ALG_ES256:
        return 32;
    case PT_JWT_ALG_ES384:
        return 48;
    case PT_JWT_ALG_ES512:
        return 66;
    default:
        return 0;
    }
}

static const EVP_MD *digest_of(enum pt_jwt_alg alg)
{
    switch (alg) {
    case PT_JWT_ALG_HS256:
    case PT_JWT_ALG_RS256:
    case PT_JWT_ALG_ES256:
        return EVP_sha256();
    case PT_JWT_ALG_HS384:
    case PT_JWT_ALG_RS384:
    case PT_JWT_ALG_ES384:
        return EVP_sha384();
    default:
        return EVP_sha512();
    }
}

static int verify_hmac(const struct pt_jwk *k, const EVP_MD *md, struct pt_str input,
                       const unsigned char *sig, size_t siglen)
{
    if (siglen != (size_t)EVP_MD_get_size(md) || k->material_len > INT_MAX)
        return PT_ERR_INVALID;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (!HMAC(md, k->material, (int)k->material_len, (const unsigned char *)input.ptr, input.len,
              mac, &maclen)) {
        ERR_clear_error();
        return PT_ERR_NOMEM;
    }
    int rc = maclen == siglen && CRYPTO_memcmp(mac, sig, siglen) == 0 ? 0 : PT_ERR_INVALID;
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

/* RSASSA-PKCS1-v1_5 or ECDSA (sig in DER) over input. */
static int digest_verify(EVP_PKEY *pkey, const EVP_MD *md, bool rsa, struct pt_str input,
                         const unsigned char *sig, size_t siglen)
{
    int rc;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    if (!ctx || EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) != 1 ||
        (rsa && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0))
        rc = PT_ERR_NOMEM;
    else if (EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input.ptr, input.len) == 1)
        rc = 0;
    else
        rc = PT_ERR_INVALID;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

static int verify_rsa(const struct pt_jwk *k, const EVP_MD *md, struct pt_str input,
                      const unsigned char *sig, size_t siglen)
{
    int size = EVP_PKEY_get_size(k->pkey);
    if (size <= 0 || siglen != (size_t)size)
        return PT_ERR_INVALID;
    return digest_verify(k->pkey, md, true, input, sig, siglen);
}

/* JOSE r || s to a DER ECDSA-Sig-Value, then verify. */
static int verify_ecdsa(const struct pt_jwk *k, enum pt_jwt_alg alg, const EVP_MD *md,
                        struct pt_str input, const unsigned char *sig, size_t siglen)
{
    size_t half = es_half(alg);
    if (half == 0 || siglen != 2 * half)
        return PT_ERR_INVALID;
    /* SEQUENCE (3 bytes of header at most) of two INTEGERs of at most
     * half + 1 bytes (a leading zero) with 2-byte headers: 141 for P-521. */
    unsigned char der[2 * (66 + 1 + 2) + 3];
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        ERR_clear_error();
        return PT_ERR_NOMEM;
    }
    int rc = PT_ERR_NOMEM, len = i2d_ECDSA_SIG(es, NULL);
    if (len > 0 && (size_t)len <= sizeof(der)) {
        unsigned char *p = der;
        if (i2d_ECDSA_SIG(es, &p) == len)
            rc = digest_verify(k->pkey, md, false, input, der, (size_t)len);
    }
    ECDSA_SIG_free(es);
    ERR_clear_error();
    return rc;
}

int pt_jws_verify(const struct pt_jwk *k, enum pt_jwt_alg alg, struct pt_str input,
                  const unsigned char *sig, size_t siglen)
{
    if (!pt_jwk_fits(k, alg) || siglen == 0 || siglen > PT_JWS_MAX_SIG_BYTES)
        return PT_ERR_INVALID;
    const EVP_MD *md = digest_of(alg);
    switch (k->kty) {
    case PT_JWK_OCT:
        return verify_hmac(k, md, input, sig, siglen);
    case PT_JWK_RSA:
        return k->pkey ? verify_rsa(k, md, input, sig, siglen) : PT_ERR_INVALID;
    case PT_JWK_EC:
        return k->pkey ? verify_ecdsa(k, alg, md, input, sig, siglen) : PT_ERR_INVALID;
    }
    return PT_ERR_INVALID;
}
