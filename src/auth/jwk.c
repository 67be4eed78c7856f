/*
 * auth/jwk.c - key sets from secrets, PEM and JWKS (see jwk.h).
 *
 * RSA and EC keys from every source go through one funnel (adopt_pkey): an
 * EVP_PKEY checked by OpenSSL, its type, curve and size checked against our
 * rules, then kept (a reference) for verification and also written out as
 * SubjectPublicKeyInfo PEM text. JWKS members become an EVP_PKEY through
 * OSSL_PARAM_BLD and EVP_PKEY_fromdata (OpenSSL 3), never through the
 * deprecated RSA/EC_KEY setters.
 */
#include "auth/jwk.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/arena.h"
#include "portico/errors.h"

static const struct alg_info {
    const char *name;
    enum pt_jwk_kty kty;
    enum pt_jwk_crv crv;
    unsigned hash_bytes;
} alg_table[PT_JWT_ALG_COUNT] = {
    [PT_JWT_ALG_HS256] = {"HS256", PT_JWK_OCT, PT_JWK_CRV_NONE, 32},
    [PT_JWT_ALG_HS384] = {"HS384", PT_JWK_OCT, PT_JWK_CRV_NONE, 48},
    [PT_JWT_ALG_HS512] = {"HS512", PT_JWK_OCT, PT_JWK_CRV_NONE, 64},
    [PT_JWT_ALG_RS256] = {"RS256", PT_JWK_RSA, PT_JWK_CRV_NONE, 32},
    [PT_JWT_ALG_RS384] = {"RS384", PT_JWK_RSA, PT_JWK_CRV_NONE, 48},
    [PT_JWT_ALG_RS512] = {"RS512", PT_JWK_RSA, PT_JWK_CRV_NONE, 64},
    [PT_JWT_ALG_ES256] = {"ES256", PT_JWK_EC, PT_JWK_P256, 32},
    [PT_JWT_ALG_ES384] = {"ES384", PT_JWK_EC, PT_JWK_P384, 48},
    [PT_JWT_ALG_ES512] = {"ES512", PT_JWK_EC, PT_JWK_P521, 64},
};

/* JWK "crv" name, OpenSSL group name, field size in bytes. */
static const struct curve_info {
    const char *jwk;
    const char *group;
    size_t field_bytes;
} curves[] = {
    [PT_JWK_P256] = {"P-256", "prime256v1", 32},
    [PT_JWK_P384] = {"P-384", "secp384r1", 48},
    [PT_JWK_P521] = {"P-521", "secp521r1", 66},
};

const char *pt_jwt_alg_name(enum pt_jwt_alg alg)
{
    return (unsigned)alg < PT_JWT_ALG_COUNT ? alg_table[alg].name : "?";
}

int pt_jwt_alg_parse(struct pt_str name, enum pt_jwt_alg *alg)
{
    for (unsigned i = 0; i < PT_JWT_ALG_COUNT; i++)
        if (pt_str_eq(name, pt_str_from_cstr(alg_table[i].name))) {
            *alg = (enum pt_jwt_alg)i;
            return 0;
        }
    return PT_ERR_INVALID;
}

bool pt_jwk_fits(const struct pt_jwk *k, enum pt_jwt_alg alg)
{
    if ((unsigned)alg >= PT_JWT_ALG_COUNT)
        return false;
    const struct alg_info *a = &alg_table[alg];
    if (k->kty != a->kty || (k->has_alg && k->alg != alg))
        return false;
    if (k->kty == PT_JWK_EC && k->crv != a->crv)
        return false;
    if (k->kty == PT_JWK_OCT && k->material_len < a->hash_bytes)
        return false;
    return true;
}

void pt_jwk_limits_init(struct pt_jwk_limits *l)
{
    *l = (struct pt_jwk_limits){
        .max_doc_bytes = PT_JWK_DEFAULT_MAX_DOC_BYTES,
        .max_keys = PT_JWK_DEFAULT_MAX_KEYS,
        .allow_oct = false,
        .min_rsa_bits = PT_JWK_DEFAULT_MIN_RSA_BITS,
        .max_rsa_bits = PT_JWK_DEFAULT_MAX_RSA_BITS,
        .min_secret_bytes = PT_JWK_DEFAULT_MIN_SECRET_BYTES,
    };
}

/* ---- base64 ------------------------------------------------------------- */

static int b64_value(unsigned char c, bool lenient)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || (lenient && c == '+'))
        return 62;
    if (c == '_' || (lenient && c == '/'))
        return 63;
    return -1;
}

/* Strict: base64url without padding. Lenient (secrets typed by people):
 * either alphabet, optional '=' padding to a multiple of four. */
static int b64_decode(struct pt_str in, unsigned char *out, size_t cap, size_t *out_len,
                      bool lenient)
{
    if (lenient && in.len % 4 == 0 && in.len >= 4) {
        if (in.ptr[in.len - 1] == '=')
            in.len--;
        if (in.ptr[in.len - 1] == '=')
            in.len--;
    }
    size_t rem = in.len % 4;
    if (rem == 1)
        return PT_ERR_INVALID;
    size_t need = in.len / 4 * 3 + (rem ? rem - 1 : 0);
    if (need > cap)
        return PT_ERR_LIMIT;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned nbits = 0;
    for (size_t i = 0; i < in.len; i++) {
        int v = b64_value((unsigned char)in.ptr[i], lenient);
        if (v < 0)
            return PT_ERR_INVALID;
        acc = (acc << 6) | (uint32_t)v;
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            out[o++] = (unsigned char)(acc >> nbits);
            acc &= (1u << nbits) - 1;
        }
    }
    /* Bits left over must be zero, so each byte string has one encoding. */
    if (acc != 0)
        return PT_ERR_INVALID;
    *out_len = o;
    return 0;
}

int pt_b64url_decode(struct pt_str in, unsigned char *out, size_t cap, size_t *out_len)
{
    return b64_decode(in, out, cap, out_len, false);
}

/* ---- sets ---------------------------------------------------------------- */

struct pt_jwk_set {
    atomic_ulong refs;
    uint64_t generation;
    size_t count;
    struct pt_jwk keys[];
};

struct pt_jwk_builder {
    struct pt_jwk_limits lim;
    pt_jwk_skip_fn on_skip;
    void *ctx;
    struct pt_jwk *keys;
    size_t n, cap;
    char err[256];
};

static atomic_uint_fast64_t next_generation = 1;

static void key_fini(struct pt_jwk *k)
{
    free((void *)k->kid.ptr);
    if (k->material)
        OPENSSL_clear_free((void *)k->material, k->material_len);
    EVP_PKEY_free(k->pkey);
}

static void set_err(struct pt_jwk_builder *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_err(struct pt_jwk_builder *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, sizeof(b->err), fmt, ap);
    va_end(ap);
}

struct pt_jwk_builder *pt_jwk_builder_new(const struct pt_jwk_limits *limits,
                                          pt_jwk_skip_fn on_skip, void *ctx)
{
    struct pt_jwk_builder *b = pt_xcalloc(1, sizeof(*b));
    if (limits)
        b->lim = *limits;
    else
        pt_jwk_limits_init(&b->lim);
    b->on_skip = on_skip;
    b->ctx = ctx;
    return b;
}

void pt_jwk_builder_free(struct pt_jwk_builder *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        key_fini(&b->keys[i]);
    free(b->keys);
    free(b);
}

const char *pt_jwk_builder_error(const struct pt_jwk_builder *b)
{
    return b->err;
}

/* Status. Takes ownership of material and of k.pkey (both freed on failure
 * too). */
static int push_key(struct pt_jwk_builder *b, struct pt_jwk k, struct pt_str kid,
                    unsigned char *material, size_t len)
{
    if (b->n >= b->lim.max_keys) {
        OPENSSL_clear_free(material, len);
        EVP_PKEY_free(k.pkey);
        set_err(b, "more than %zu keys", b->lim.max_keys);
        return PT_ERR_LIMIT;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->keys = pt_xrealloc(b->keys, b->cap * sizeof(*b->keys));
    }
    if (kid.ptr) {
        char *copy = pt_xmalloc(kid.len + 1);
        memcpy(copy, kid.ptr, kid.len);
        copy[kid.len] = '\0';
        k.kid = (struct pt_str){copy, kid.len};
        k.has_kid = true;
    } else {
        k.kid = PT_STR_NULL;
        k.has_kid = false;
    }
    k.material = material;
    k.material_len = len;
    b->keys[b->n++] = k;
    return 0;
}

static int check_kid(struct pt_jwk_builder *b, struct pt_str kid)
{
    if (kid.ptr && kid.len > PT_JWK_MAX_KID_BYTES) {
        set_err(b, "kid longer than %u bytes", PT_JWK_MAX_KID_BYTES);
        return PT_ERR_INVALID;
    }
    return 0;
}

int pt_jwk_builder_add_secret(struct pt_jwk_builder *b, struct pt_str kid, struct pt_str secret)
{
    b->err[0] = '\0';
    if (check_kid(b, kid) != 0)
        return PT_ERR_INVALID;
    if (secret.len < b->lim.min_secret_bytes) {
        set_err(b, "HMAC secret of %zu bytes; at least %zu required", secret.len,
                b->lim.min_secret_bytes);
        return PT_ERR_INVALID;
    }
    if (secret.len > b->lim.max_doc_bytes) {
        set_err(b, "HMAC secret larger than %zu bytes", b->lim.max_doc_bytes);
        return PT_ERR_LIMIT;
    }
    unsigned char *m = pt_xmalloc(secret.len);
    memcpy(m, secret.ptr, secret.len);
    struct pt_jwk k = {.kty = PT_JWK_OCT, .bits = (unsigned)(secret.len * 8)};
    return push_key(b, k, kid, m, secret.len);
}

int pt_jwk_builder_add_secret_base64(struct pt_jwk_builder *b, struct pt_str kid, struct pt_str b64)
{
    b->err[0] = '\0';
    if (b64.len > b->lim.max_doc_bytes) {
        set_err(b, "HMAC secret larger than %zu bytes", b->lim.max_doc_bytes);
        return PT_ERR_LIMIT;
    }
    size_t cap = PT_B64URL_DECODED_MAX(b64.len), len = 0;
    unsigned char *raw = pt_xmalloc(cap ? cap : 1);
    int rc = b64_decode(b64, raw, cap, &len, true);
    if (rc != 0) {
        OPENSSL_clear_free(raw, cap ? cap : 1);
        set_err(b, "HMAC secret is not valid base64");
        return PT_ERR_INVALID;
    }
    rc = pt_jwk_builder_add_secret(b, kid, (struct pt_str){(const char *)raw, len});
    OPENSSL_clear_free(raw, cap ? cap : 1);
    return rc;
}

/* ---- RSA and EC public keys ---------------------------------------------- */

static enum pt_jwk_crv curve_of(const EVP_PKEY *pkey)
{
    char name[64];
    size_t len = 0;
    if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &len) != 1)
        return PT_JWK_CRV_NONE;
    for (int c = PT_JWK_P256; c <= PT_JWK_P521; c++)
        if (strcmp(name, curves[c].group) == 0)
            return (enum pt_jwk_crv)c;
    return PT_JWK_CRV_NONE;
}

/* Status: checks pkey (type, curve, size, OpenSSL's public-key check) and
 * adds it, with its SPKI PEM text. Takes a reference of its own to pkey
 * (the caller keeps and frees its own). alg < 0: none declared. */
static int adopt_pkey(struct pt_jwk_builder *b, struct pt_str kid, EVP_PKEY *pkey, int alg)
{
    struct pt_jwk k = {0};
    int id = EVP_PKEY_get_base_id(pkey);
    if (id == EVP_PKEY_RSA) {
        k.kty = PT_JWK_RSA;
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < (int)b->lim.min_rsa_bits || bits > (int)b->lim.max_rsa_bits) {
            set_err(b, "RSA key of %d bits; %u to %u allowed", bits, b->lim.min_rsa_bits,
                    b->lim.max_rsa_bits);
            return PT_ERR_INVALID;
        }
        k.bits = (unsigned)bits;
    } else if (id == EVP_PKEY_EC) {
        k.kty = PT_JWK_EC;
        k.crv = curve_of(pkey);
        if (k.crv == PT_JWK_CRV_NONE) {
            set_err(b, "EC key on a curve other than P-256, P-384 or P-521");
            return PT_ERR_INVALID;
        }
        k.bits = (unsigned)EVP_PKEY_get_bits(pkey);
    } else {
        set_err(b, "key type %s is not RSA or EC", OBJ_nid2sn(id));
        return PT_ERR_INVALID;
    }
    if (alg >= 0) {
        k.has_alg = true;
        k.alg = (enum pt_jwt_alg)alg;
        if (!pt_jwk_fits(&k, k.alg)) {
            set_err(b, "alg %s does not fit this key", pt_jwt_alg_name(k.alg));
            return PT_ERR_INVALID;
        }
    }

    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        set_err(b, "%s public key fails OpenSSL's key check", k.kty == PT_JWK_RSA ? "RSA" : "EC");
        return PT_ERR_INVALID;
    }

    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem || PEM_write_bio_PUBKEY(mem, pkey) != 1) {
        BIO_free(mem);
        ERR_clear_error();
        set_err(b, "cannot write the key as PEM");
        return PT_ERR_INVALID;
    }
    char *data = NULL;
    long len = BIO_get_mem_data(mem, &data);
    if (len <= 0) {
        BIO_free(mem);
        set_err(b, "cannot write the key as PEM");
        return PT_ERR_INVALID;
    }
    unsigned char *m = pt_xmalloc((size_t)len);
    memcpy(m, data, (size_t)len);
    BIO_free(mem);
    if (EVP_PKEY_up_ref(pkey) != 1) {
        OPENSSL_clear_free(m, (size_t)len);
        set_err(b, "cannot keep the key");
        return PT_ERR_INVALID;
    }
    k.pkey = pkey;
    return push_key(b, k, kid, m, (size_t)len);
}

int pt_jwk_builder_add_pem(struct pt_jwk_builder *b, struct pt_str kid, struct pt_str pem)
{
    b->err[0] = '\0';
    if (check_kid(b, kid) != 0)
        return PT_ERR_INVALID;
    if (pem.len == 0 || pem.len > b->lim.max_doc_bytes) {
        set_err(b, "PEM text empty or larger than %zu bytes", b->lim.max_doc_bytes);
        return pem.len ? PT_ERR_LIMIT : PT_ERR_INVALID;
    }
    BIO *bio = BIO_new_mem_buf(pem.ptr, (int)pem.len);
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    if (!bio || PEM_read_bio(bio, &name, &header, &data, &dlen) != 1) {
        BIO_free(bio);
        ERR_clear_error();
        set_err(b, "not PEM text");
        return PT_ERR_INVALID;
    }
    BIO_free(bio);

    EVP_PKEY *pkey = NULL;
    const unsigned char *p = data;
    if (strcmp(name, "PUBLIC KEY") == 0) {
        pkey = d2i_PUBKEY(NULL, &p, dlen);
        if (!pkey)
            set_err(b, "PEM PUBLIC KEY block does not parse");
    } else if (strcmp(name, "CERTIFICATE") == 0) {
        X509 *x = d2i_X509(NULL, &p, dlen);
        if (x)
            pkey = X509_get_pubkey(x);
        X509_free(x);
        if (!pkey)
            set_err(b, "PEM CERTIFICATE block does not parse");
    } else if (strstr(name, "PRIVATE KEY")) {
        set_err(b, "a private key; give the public key or a certificate");
    } else {
        set_err(b, "PEM block is not a PUBLIC KEY or CERTIFICATE");
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_clear_free(data, (size_t)dlen);
    ERR_clear_error();
    if (!pkey)
        return PT_ERR_INVALID;
    int rc = adopt_pkey(b, kid, pkey, -1);
    EVP_PKEY_free(pkey);
    return rc;
}

/* Pointer: an EVP_PKEY made from OSSL_PARAMs of key type "RSA" or "EC". */
static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    ERR_clear_error();
    return pkey;
}

/* ---- JWKS ------------------------------------------------------------------ */

/* Status: member name of k, base64url, decoded into a new buffer of at most
 * max bytes. */
static int b64_member(struct pt_jwk_builder *b, json_t *k, const char *name, size_t max,
                      unsigned char **out, size_t *len)
{
    json_t *v = json_object_get(k, name);
    if (!v) {
        set_err(b, "\"%s\" missing", name);
        return PT_ERR_INVALID;
    }
    if (!json_is_string(v)) {
        set_err(b, "\"%s\" is not a string", name);
        return PT_ERR_INVALID;
    }
    struct pt_str s = {json_string_value(v), json_string_length(v)};
    size_t cap = PT_B64URL_DECODED_MAX(s.len);
    if (cap > max + 2) {
        set_err(b, "\"%s\" is too long", name);
        return PT_ERR_INVALID;
    }
    *out = pt_xmalloc(cap ? cap : 1);
    if (pt_b64url_decode(s, *out, cap, len) != 0 || *len == 0 || *len > max) {
        OPENSSL_clear_free(*out, cap ? cap : 1);
        *out = NULL;
        set_err(b, "\"%s\" is not valid base64url of a fitting size", name);
        return PT_ERR_INVALID;
    }
    return 0;
}

static int jwk_rsa(struct pt_jwk_builder *b, json_t *k, struct pt_str kid, int alg)
{
    unsigned char *n = NULL, *e = NULL;
    size_t nlen = 0, elen = 0;
    /* Room for one leading zero byte beyond the largest modulus allowed. */
    if (b64_member(b, k, "n", b->lim.max_rsa_bits / 8 + 1, &n, &nlen) != 0)
        return PT_ERR_INVALID;
    /* Exponents longer than 64 bits only make verification slow. */
    if (b64_member(b, k, "e", 8, &e, &elen) != 0) {
        free(n);
        return PT_ERR_INVALID;
    }
    BIGNUM *bn_n = BN_bin2bn(n, (int)nlen, NULL), *bn_e = BN_bin2bn(e, (int)elen, NULL);
    free(n);
    free(e);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
        pkey = pkey_fromdata("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    if (!pkey) {
        set_err(b, "RSA key from n and e rejected by OpenSSL");
        return PT_ERR_INVALID;
    }
    int rc = adopt_pkey(b, kid, pkey, alg);
    EVP_PKEY_free(pkey);
    return rc;
}

static int jwk_ec(struct pt_jwk_builder *b, json_t *k, struct pt_str kid, int alg)
{
    json_t *crv = json_object_get(k, "crv");
    if (!json_is_string(crv)) {
        set_err(b, "\"crv\" missing or not a string");
        return PT_ERR_INVALID;
    }
    int c = PT_JWK_CRV_NONE;
    for (int i = PT_JWK_P256; i <= PT_JWK_P521; i++)
        if (strcmp(json_string_value(crv), curves[i].jwk) == 0)
            c = i;
    if (c == PT_JWK_CRV_NONE) {
        set_err(b, "\"crv\" is not P-256, P-384 or P-521");
        return PT_ERR_INVALID;
    }
    size_t fb = curves[c].field_bytes;
    unsigned char *x = NULL, *y = NULL;
    size_t xlen = 0, ylen = 0;
    if (b64_member(b, k, "x", fb, &x, &xlen) != 0)
        return PT_ERR_INVALID;
    if (b64_member(b, k, "y", fb, &y, &ylen) != 0) {
        free(x);
        return PT_ERR_INVALID;
    }
    /* RFC 7518 6.2.1.2: each coordinate is exactly the field size. */
    if (xlen != fb || ylen != fb) {
        free(x);
        free(y);
        set_err(b, "\"x\" and \"y\" must be %zu bytes for %s", fb, curves[c].jwk);
        return PT_ERR_INVALID;
    }
    unsigned char point[1 + 2 * 66];
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, fb);
    memcpy(point + 1 + fb, y, fb);
    free(x);
    free(y);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curves[c].group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * fb) == 1)
        pkey = pkey_fromdata("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pkey) {
        set_err(b, "EC key from x and y rejected by OpenSSL (not a point on %s?)", curves[c].jwk);
        return PT_ERR_INVALID;
    }
    int rc = adopt_pkey(b, kid, pkey, alg);
    EVP_PKEY_free(pkey);
    return rc;
}

static int jwk_oct(struct pt_jwk_builder *b, json_t *k, struct pt_str kid, int alg)
{
    if (!b->lim.allow_oct) {
        set_err(b, "kty \"oct\" (a shared secret) is not allowed here");
        return PT_ERR_INVALID;
    }
    unsigned char *s = NULL;
    size_t len = 0;
    if (b64_member(b, k, "k", b->lim.max_doc_bytes, &s, &len) != 0)
        return PT_ERR_INVALID;
    if (len < b->lim.min_secret_bytes) {
        OPENSSL_clear_free(s, len);
        set_err(b, "oct key of %zu bytes; at least %zu required", len, b->lim.min_secret_bytes);
        return PT_ERR_INVALID;
    }
    struct pt_jwk key = {.kty = PT_JWK_OCT, .bits = (unsigned)(len * 8)};
    if (alg >= 0) {
        key.has_alg = true;
        key.alg = (enum pt_jwt_alg)alg;
        key.material_len = len;
        if (!pt_jwk_fits(&key, key.alg)) {
            OPENSSL_clear_free(s, len);
            set_err(b, "alg %s does not fit this key", pt_jwt_alg_name(key.alg));
            return PT_ERR_INVALID;
        }
    }
    return push_key(b, key, kid, s, len);
}

/* Status: one JWK object; reason in b->err. */
static int jwk_one(struct pt_jwk_builder *b, json_t *k, struct pt_str *kid_out)
{
    if (!json_is_object(k)) {
        set_err(b, "not a JSON object");
        return PT_ERR_INVALID;
    }
    struct pt_str kid = PT_STR_NULL;
    json_t *v = json_object_get(k, "kid");
    if (v) {
        if (!json_is_string(v)) {
            set_err(b, "\"kid\" is not a string");
            return PT_ERR_INVALID;
        }
        kid = (struct pt_str){json_string_value(v), json_string_length(v)};
        *kid_out = kid;
        if (check_kid(b, kid) != 0)
            return PT_ERR_INVALID;
    }
    v = json_object_get(k, "use");
    if (v && !(json_is_string(v) && strcmp(json_string_value(v), "sig") == 0)) {
        set_err(b, "\"use\" is not \"sig\"");
        return PT_ERR_INVALID;
    }
    v = json_object_get(k, "key_ops");
    if (v) {
        bool verify = false;
        for (size_t i = 0; json_is_array(v) && i < json_array_size(v); i++) {
            json_t *op = json_array_get(v, i);
            if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
                verify = true;
        }
        if (!verify) {
            set_err(b, "\"key_ops\" does not include \"verify\"");
            return PT_ERR_INVALID;
        }
    }
    int alg = -1;
    v = json_object_get(k, "alg");
    if (v) {
        enum pt_jwt_alg a;
        if (!json_is_string(v) ||
            pt_jwt_alg_parse((struct pt_str){json_string_value(v), json_string_length(v)}, &a) !=
                0) {
            set_err(b, "\"alg\" is not a signature algorithm portico verifies");
            return PT_ERR_INVALID;
        }
        alg = (int)a;
    }
    v = json_object_get(k, "kty");
    if (!json_is_string(v)) {
        set_err(b, "\"kty\" missing or not a string");
        return PT_ERR_INVALID;
    }
    const char *kty = json_string_value(v);
    if (strcmp(kty, "RSA") == 0)
        return jwk_rsa(b, k, kid, alg);
    if (strcmp(kty, "EC") == 0)
        return jwk_ec(b, k, kid, alg);
    if (strcmp(kty, "oct") == 0)
        return jwk_oct(b, k, kid, alg);
    set_err(b, "\"kty\" is not RSA, EC or oct");
    return PT_ERR_INVALID;
}

int pt_jwk_builder_add_jwks(struct pt_jwk_builder *b, struct pt_str doc)
{
    b->err[0] = '\0';
    if (doc.len > b->lim.max_doc_bytes) {
        set_err(b, "JWKS document of %zu bytes; at most %zu allowed", doc.len,
                b->lim.max_doc_bytes);
        return PT_ERR_LIMIT;
    }
    json_error_t jerr;
    json_t *root = json_loadb(doc.ptr ? doc.ptr : "", doc.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_err(b, "JWKS is not JSON (line %d column %d: %s)", jerr.line, jerr.column, jerr.text);
        return PT_ERR_INVALID;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        json_decref(root);
        set_err(b, "JWKS has no \"keys\" array");
        return PT_ERR_INVALID;
    }
    size_t total = json_array_size(keys);
    if (total > b->lim.max_keys || b->n + total > b->lim.max_keys) {
        json_decref(root);
        set_err(b, "JWKS has %zu keys; at most %zu allowed", total, b->lim.max_keys - b->n);
        return PT_ERR_LIMIT;
    }
    size_t first = b->n, skipped = 0;
    for (size_t i = 0; i < total; i++) {
        struct pt_str kid = PT_STR_NULL;
        if (jwk_one(b, json_array_get(keys, i), &kid) != 0) {
            skipped++;
            if (b->on_skip)
                b->on_skip(b->ctx, i, kid.ptr ? kid : PT_STR(""), b->err);
        }
    }
    json_decref(root);
    if (b->n == first) {
        char last[sizeof(b->err)];
        memcpy(last, b->err, sizeof(last));
        set_err(b, "JWKS has no usable key (%zu skipped%s%.160s)", skipped,
                skipped ? "; last: " : "", last);
        return PT_ERR_INVALID;
    }
    b->err[0] = '\0';
    return 0;
}

struct pt_jwk_set *pt_jwk_builder_finish(struct pt_jwk_builder *b)
{
    if (b->n == 0) {
        set_err(b, "no keys");
        return NULL;
    }
    struct pt_jwk_set *s = pt_xmalloc(sizeof(*s) + b->n * sizeof(struct pt_jwk));
    atomic_init(&s->refs, 1);
    s->generation = atomic_fetch_add(&next_generation, 1);
    s->count = b->n;
    memcpy(s->keys, b->keys, b->n * sizeof(struct pt_jwk));
    free(b->keys);
    b->keys = NULL;
    b->n = b->cap = 0;
    b->err[0] = '\0';
    return s;
}

struct pt_jwk_set *pt_jwk_set_ref(struct pt_jwk_set *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void pt_jwk_set_unref(struct pt_jwk_set *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->count; i++)
        key_fini(&s->keys[i]);
    free(s);
}

size_t pt_jwk_set_count(const struct pt_jwk_set *s)
{
    return s->count;
}

const struct pt_jwk *pt_jwk_set_key(const struct pt_jwk_set *s, size_t i)
{
    return &s->keys[i];
}

uint64_t pt_jwk_set_generation(const struct pt_jwk_set *s)
{
    return s->generation;
}
