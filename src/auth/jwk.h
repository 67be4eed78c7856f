/*
 * auth/jwk.h - JWT verification keys: algorithms, keys and key sets.
 *
 * A key set holds the keys one issuer signs with. It is built once (on the
 * control thread) from any mix of
 *   - HMAC secrets (raw bytes, or base64 text),
 *   - PEM public keys or certificates (RSA or EC),
 *   - JWKS documents (RFC 7517): kty RSA (n, e), EC (crv P-256/P-384/P-521,
 *     x, y) and, only when the limits allow it, oct (k),
 * and is immutable afterwards. It is reference-counted with atomics: a JWKS
 * refresh builds a new set and swaps the pointer while workers that still
 * verify with the old set keep their reference until they drop it.
 *
 * Every RSA/EC key is checked by OpenSSL (EVP_PKEY_public_check) and kept
 * twice: as the parsed EVP_PKEY that signatures are verified with
 * (auth/jws.h; parsed once here, never per token) and as canonical
 * SubjectPublicKeyInfo PEM text (for comparison and display).
 * A key's type fixes the algorithms it may verify (pt_jwk_fits): HS* only
 * with secrets, RS* only with RSA keys, ES256/384/512 only with EC keys on
 * P-256/P-384/P-521, and only the declared "alg" when a JWK names one. A
 * public key is never usable as an HMAC secret.
 *
 * A JWKS key that cannot be used (use other than "sig", key_ops without
 * "verify", unknown kty, bad base64url, wrong curve, missing n, too short,
 * oct not allowed, ...) is skipped and reported through the builder's skip
 * callback; a JWKS with no usable key at all is an error. Limits (struct
 * pt_jwk_limits) bound the document size, the number of keys and the key
 * sizes, each with a safe default.
 *
 * Thread: a builder belongs to one thread. A finished set is read-only and
 * may be used from any thread; pt_jwk_set_ref/unref are atomic.
 */
#ifndef PT_AUTH_JWK_H
#define PT_AUTH_JWK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "portico/str.h"

/* The JWS algorithms portico verifies. No PS256/384/512 (RSASSA-PSS) and
 * no EdDSA yet (see docs/jwt.md). */
enum pt_jwt_alg {
    PT_JWT_ALG_HS256 = 0,
    PT_JWT_ALG_HS384,
    PT_JWT_ALG_HS512,
    PT_JWT_ALG_RS256,
    PT_JWT_ALG_RS384,
    PT_JWT_ALG_RS512,
    PT_JWT_ALG_ES256,
    PT_JWT_ALG_ES384,
    PT_JWT_ALG_ES512,
    PT_JWT_ALG_COUNT
};

/* Allow-lists are bitmasks of PT_JWT_ALG_BIT(alg). */
#define PT_JWT_ALG_BIT(a) (1u << (unsigned)(a))
#define PT_JWT_ALGS_HS                                                     \
    (PT_JWT_ALG_BIT(PT_JWT_ALG_HS256) | PT_JWT_ALG_BIT(PT_JWT_ALG_HS384) | \
     PT_JWT_ALG_BIT(PT_JWT_ALG_HS512))
#define PT_JWT_ALGS_RS                                                     \
    (PT_JWT_ALG_BIT(PT_JWT_ALG_RS256) | PT_JWT_ALG_BIT(PT_JWT_ALG_RS384) | \
     PT_JWT_ALG_BIT(PT_JWT_ALG_RS512))
#define PT_JWT_ALGS_ES                                                     \
    (PT_JWT_ALG_BIT(PT_JWT_ALG_ES256) | PT_JWT_ALG_BIT(PT_JWT_ALG_ES384) | \
     PT_JWT_ALG_BIT(PT_JWT_ALG_ES512))
#define PT_JWT_ALGS_ALL (PT_JWT_ALGS_HS | PT_JWT_ALGS_RS | PT_JWT_ALGS_ES)

/* Pointer: the JOSE name ("RS256"); "?" for a value out of range. */
const char *pt_jwt_alg_name(enum pt_jwt_alg alg);
/* Status: 0 and *alg for an exact, case-sensitive JOSE name of a supported
 * algorithm; PT_ERR_INVALID otherwise ("none" in any case included). */
int pt_jwt_alg_parse(struct pt_str name, enum pt_jwt_alg *alg);

enum pt_jwk_kty {
    PT_JWK_OCT = 1, /* an HMAC secret */
    PT_JWK_RSA,
    PT_JWK_EC,
};

enum pt_jwk_crv {
    PT_JWK_CRV_NONE = 0, /* not an EC key */
    PT_JWK_P256,
    PT_JWK_P384,
    PT_JWK_P521,
};

/* One key of a set; every field is owned by the set and read-only. */
struct pt_jwk {
    enum pt_jwk_kty kty;
    enum pt_jwk_crv crv;
    bool has_alg; /* the JWK declared "alg": only that algorithm verifies */
    enum pt_jwt_alg alg;
    bool has_kid;
    struct pt_str kid; /* untrusted bytes when the key came from a JWKS */
    unsigned bits;     /* RSA modulus, EC field size, or secret length in bits */
    /* oct: the secret bytes; RSA/EC: SubjectPublicKeyInfo PEM text. */
    const unsigned char *material;
    size_t material_len;
    /* RSA/EC: the public key, parsed and checked once when the key was
     * added; what signatures are verified with. NULL for oct. Owned by the
     * set; may be used from several threads at once (read-only). */
    EVP_PKEY *pkey;
};

/* Can key k verify a token signed with alg? Family from kty, the curve for
 * ES*, a secret at least as long as the hash (RFC 7518 3.2) for HS*, and the
 * declared alg if any. */
bool pt_jwk_fits(const struct pt_jwk *k, enum pt_jwt_alg alg);

#define PT_JWK_DEFAULT_MAX_DOC_BYTES ((size_t)1 << 20)
#define PT_JWK_DEFAULT_MAX_KEYS 100u
#define PT_JWK_DEFAULT_MIN_RSA_BITS 2048u
#define PT_JWK_DEFAULT_MAX_RSA_BITS 8192u
#define PT_JWK_DEFAULT_MIN_SECRET_BYTES 32u
#define PT_JWK_MAX_KID_BYTES 256u

struct pt_jwk_limits {
    size_t max_doc_bytes;    /* a JWKS document; default 1 MiB */
    size_t max_keys;         /* keys in one set, all sources together; default 100 */
    bool allow_oct;          /* accept kty "oct" from a JWKS; default false */
    unsigned min_rsa_bits;   /* default 2048 */
    unsigned max_rsa_bits;   /* default 8192 (bounds the cost of one verification) */
    size_t min_secret_bytes; /* HMAC secrets and oct keys; default 32 */
};

/* Fill l with the defaults above. */
void pt_jwk_limits_init(struct pt_jwk_limits *l);

/* Reports a JWKS key that was skipped: its position in "keys", its kid
 * (untrusted bytes, empty when none; escape before logging) and why. */
typedef void (*pt_jwk_skip_fn)(void *ctx, size_t index, struct pt_str kid, const char *reason);

struct pt_jwk_builder;
struct pt_jwk_set;

/* Pointer: a new, empty builder (never NULL; a failed malloc aborts).
 * limits NULL: the defaults; copied. on_skip may be NULL. */
struct pt_jwk_builder *pt_jwk_builder_new(const struct pt_jwk_limits *limits,
                                          pt_jwk_skip_fn on_skip, void *ctx);
/* NULL is a no-op. Frees keys added but not finished. */
void pt_jwk_builder_free(struct pt_jwk_builder *b);

/*
 * The add functions return a status: 0, or PT_ERR_INVALID (bad input; the
 * builder is unchanged) or PT_ERR_LIMIT (too many keys, document too
 * large), with the reason in pt_jwk_builder_error(). kid may be empty
 * (PT_STR_NULL): such a key matches any token kid (see docs/jwt.md).
 */
/* secret: raw bytes, at least min_secret_bytes. */
int pt_jwk_builder_add_secret(struct pt_jwk_builder *b, struct pt_str kid, struct pt_str secret);
/* b64: the secret in base64 (standard or url alphabet, padding optional). */
int pt_jwk_builder_add_secret_base64(struct pt_jwk_builder *b, struct pt_str kid,
                                     struct pt_str b64);
/* pem: the first PEM block must be "PUBLIC KEY" or "CERTIFICATE" (its
 * subject key) with an RSA or EC (P-256/P-384/P-521) key. Private keys are
 * refused: verification needs only the public part. */
int pt_jwk_builder_add_pem(struct pt_jwk_builder *b, struct pt_str kid, struct pt_str pem);
/* doc: a JWKS ({"keys": [...]}). Unusable keys are skipped and reported;
 * PT_ERR_INVALID when none is usable (nothing is added then). */
int pt_jwk_builder_add_jwks(struct pt_jwk_builder *b, struct pt_str doc);
/* Pointer: the reason of the last failed add or finish ("" if none);
 * valid until the next call on b. */
const char *pt_jwk_builder_error(const struct pt_jwk_builder *b);

/* Pointer: the set of every key added so far (refcount 1, owned by the
 * caller), or NULL with pt_jwk_builder_error() set when there is none. The
 * builder is left empty and may be reused or freed. */
struct pt_jwk_set *pt_jwk_builder_finish(struct pt_jwk_builder *b);

/* Pointer: s (one more reference). Any thread. */
struct pt_jwk_set *pt_jwk_set_ref(struct pt_jwk_set *s);
/* Drop one reference; the last frees the set. NULL is a no-op. Any thread. */
void pt_jwk_set_unref(struct pt_jwk_set *s);
size_t pt_jwk_set_count(const struct pt_jwk_set *s);
/* Pointer: key i (< count), borrowed for the life of the set. */
const struct pt_jwk *pt_jwk_set_key(const struct pt_jwk_set *s, size_t i);
/* A number unique to this set in the process (never 0), e.g. part of a
 * verified-token cache's generation. */
uint64_t pt_jwk_set_generation(const struct pt_jwk_set *s);

/*
 * Strict base64url (RFC 4648 section 5, no padding, no whitespace, zero
 * trailing bits), as JOSE uses it. Status: 0 with *out_len bytes written,
 * PT_ERR_INVALID for a bad encoding, PT_ERR_LIMIT when cap is too small
 * (PT_B64URL_DECODED_MAX(len) always suffices).
 */
#define PT_B64URL_DECODED_MAX(n) (((n) / 4) * 3 + 2)
int pt_b64url_decode(struct pt_str in, unsigned char *out, size_t cap, size_t *out_len);

#endif
