/*
 * auth/jwt.c - JWT verification (see jwt.h and docs/jwt.md).
 *
 * We parse the header and payload ourselves (strict base64url, jansson with
 * duplicate members rejected) and decide alg and key by our rules before
 * any cryptography: a JWS library that picks the algorithm from the token
 * header would happily verify HS256 with whatever bytes it is given as the
 * key. The signature is then checked by auth/jws.c with OpenSSL directly,
 * on the key parsed when the set was built, over the signing input exactly
 * as received.
 *
 * The claims returned are the payload we decoded from that same signed
 * base64url text, so they are exactly the signed claims.
 */
#include "auth/jwt.h"

#include <stdlib.h>
#include <string.h>

#include "auth/jws.h"
#include "core/arena.h"
#include "core/strutil.h"
#include "portico/errors.h"

static const struct {
    const char *name;
    const char *text;
} results[PT_JWT_RESULT_COUNT] = {
    [PT_JWT_OK] = {"OK", "token is valid"},
    [PT_JWT_MALFORMED] = {"MALFORMED", "malformed token"},
    [PT_JWT_TOO_LARGE] = {"TOO_LARGE", "token too large"},
    [PT_JWT_ALG_NOT_ALLOWED] = {"ALG_NOT_ALLOWED", "signing algorithm not allowed"},
    [PT_JWT_UNSUPPORTED] = {"UNSUPPORTED", "unsupported token type or header"},
    [PT_JWT_UNKNOWN_KID] = {"UNKNOWN_KID", "unknown signing key"},
    [PT_JWT_NO_KEY] = {"NO_KEY", "no key for the signing algorithm"},
    [PT_JWT_BAD_SIGNATURE] = {"BAD_SIGNATURE", "invalid signature"},
    [PT_JWT_EXPIRED] = {"EXPIRED", "token expired"},
    [PT_JWT_NOT_YET_VALID] = {"NOT_YET_VALID", "token not valid yet"},
    [PT_JWT_BAD_ISSUER] = {"BAD_ISSUER", "untrusted issuer"},
    [PT_JWT_BAD_AUDIENCE] = {"BAD_AUDIENCE", "audience not accepted"},
    [PT_JWT_MISSING_CLAIM] = {"MISSING_CLAIM", "required claim missing"},
    [PT_JWT_BAD_CLAIM] = {"BAD_CLAIM", "claim of the wrong type"},
    [PT_JWT_INTERNAL] = {"INTERNAL", "token could not be verified"},
};

const char *pt_jwt_result_text(enum pt_jwt_result r)
{
    return (unsigned)r < PT_JWT_RESULT_COUNT ? results[r].text : results[PT_JWT_INTERNAL].text;
}

const char *pt_jwt_result_name(enum pt_jwt_result r)
{
    return (unsigned)r < PT_JWT_RESULT_COUNT ? results[r].name : "?";
}

void pt_jwt_issuer_init(struct pt_jwt_issuer *s)
{
    *s = (struct pt_jwt_issuer){
        .algs = PT_JWT_DEFAULT_ALGS,
        .leeway_s = PT_JWT_DEFAULT_LEEWAY_S,
        .max_token_bytes = PT_JWT_DEFAULT_MAX_TOKEN_BYTES,
        .require_exp = true,
        .max_key_tries = PT_JWT_DEFAULT_MAX_KEY_TRIES,
        .require_typ_at_jwt = false,
    };
}

/* ---- parsing ------------------------------------------------------------- */

struct parsed {
    struct pt_str seg[3]; /* header, payload, signature: base64url text */
    json_t *header, *payload;
};

static bool b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : 63;
}

/* The signature segment (alphabet already checked) must be canonical too:
 * no impossible length, no stray bits in its last character. Otherwise
 * one signature would have several spellings (and several cache keys). */
static bool b64url_canonical(struct pt_str s)
{
    size_t rem = s.len % 4;
    if (rem == 1)
        return false;
    if (rem == 0)
        return true;
    int last = b64url_value((unsigned char)s.ptr[s.len - 1]);
    return (last & (rem == 2 ? 0x0f : 0x03)) == 0;
}

/* Pointer: the JSON object in base64url segment seg, or NULL. */
static json_t *segment_object(struct pt_str seg)
{
    size_t cap = PT_B64URL_DECODED_MAX(seg.len), len = 0;
    unsigned char *buf = pt_xmalloc(cap ? cap : 1);
    json_t *j = NULL;
    if (pt_b64url_decode(seg, buf, cap, &len) == 0) {
        /* Duplicate members are refused (RFC 8725 2.4's spirit): libjwt or
         * a backend reading the same JSON must not see another value. */
        j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
        if (j && !json_is_object(j)) {
            json_decref(j);
            j = NULL;
        }
    }
    free(buf);
    return j;
}

static enum pt_jwt_result parse(struct pt_str token, size_t max_bytes, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    if (token.len > max_bytes)
        return PT_JWT_TOO_LARGE;
    size_t start = 0, n = 0;
    for (size_t i = 0; i <= token.len; i++) {
        if (i == token.len || token.ptr[i] == '.') {
            if (n == 3)
                return PT_JWT_MALFORMED;
            p->seg[n++] = (struct pt_str){token.ptr + start, i - start};
            start = i + 1;
        } else if (!b64url_char((unsigned char)token.ptr[i])) {
            return PT_JWT_MALFORMED;
        }
    }
    if (n != 3 || p->seg[0].len == 0 || p->seg[1].len == 0 || !b64url_canonical(p->seg[2]))
        return PT_JWT_MALFORMED;
    p->header = segment_object(p->seg[0]);
    if (p->header)
        p->payload = segment_object(p->seg[1]);
    if (!p->payload) {
        json_decref(p->header);
        p->header = NULL;
        return PT_JWT_MALFORMED;
    }
    return PT_JWT_OK;
}

static void parsed_fini(struct parsed *p)
{
    json_decref(p->header);
    json_decref(p->payload);
    p->header = p->payload = NULL;
}

static struct pt_str str_member(const json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        return PT_STR_NULL;
    return (struct pt_str){json_string_value(v), json_string_length(v)};
}

enum pt_jwt_result pt_jwt_peek(struct pt_str token, size_t max_token_bytes, struct pt_jwt_peek *out)
{
    memset(out, 0, sizeof(*out));
    struct parsed p;
    enum pt_jwt_result r = parse(token, max_token_bytes, &p);
    if (r != PT_JWT_OK)
        return r;
    out->header = p.header;
    out->payload = p.payload;
    out->alg = str_member(p.header, "alg");
    out->kid = str_member(p.header, "kid");
    out->iss = str_member(p.payload, "iss");
    return PT_JWT_OK;
}

void pt_jwt_peek_fini(struct pt_jwt_peek *p)
{
    json_decref(p->header);
    json_decref(p->payload);
    memset(p, 0, sizeof(*p));
}

/* ---- header checks and key choice ---------------------------------------- */

enum typ { TYP_ABSENT, TYP_JWT, TYP_AT_JWT, TYP_OTHER };

/* RFC 7515 4.1.9: "typ" is a media type, compared case-insensitively, and
 * one without a '/' stands for "application/" followed by it. So JWT, jwt
 * and application/jwt are one type (RFC 7519 5.1), and at+jwt and
 * application/at+jwt another (RFC 9068 2.1). */
static enum typ typ_of(struct pt_str v)
{
    const struct pt_str app = PT_STR("application/");
    if (v.len > app.len && pt_str_eq_nocase((struct pt_str){v.ptr, app.len}, app))
        v = (struct pt_str){v.ptr + app.len, v.len - app.len};
    if (pt_str_eq_nocase(v, PT_STR("JWT")))
        return TYP_JWT;
    if (pt_str_eq_nocase(v, PT_STR("at+jwt")))
        return TYP_AT_JWT;
    return TYP_OTHER;
}

static enum pt_jwt_result check_header(const struct pt_jwt_issuer *s, const json_t *h,
                                       enum pt_jwt_alg *alg)
{
    json_t *v = json_object_get(h, "alg");
    if (!json_is_string(v))
        return PT_JWT_MALFORMED;
    struct pt_str name = {json_string_value(v), json_string_length(v)};
    /* "none" in any spelling is refused outright, whatever the allow-list. */
    if (pt_str_eq_nocase(name, PT_STR("none")))
        return PT_JWT_ALG_NOT_ALLOWED;
    if (pt_jwt_alg_parse(name, alg) != 0 || !(s->algs & PT_JWT_ALG_BIT(*alg)))
        return PT_JWT_ALG_NOT_ALLOWED;
    /* RFC 7515 4.1.11: we understand no extension, so any "crit" fails. */
    if (json_object_get(h, "crit"))
        return PT_JWT_UNSUPPORTED;
    v = json_object_get(h, "typ");
    if (v && !json_is_string(v))
        return PT_JWT_MALFORMED;
    enum typ t =
        v ? typ_of((struct pt_str){json_string_value(v), json_string_length(v)}) : TYP_ABSENT;
    /* Explicit typing (RFC 8725 3.11): a token that says it is something
     * else (a logout token, a DPoP proof, ...) is not taken for an access
     * token. RFC 9068 4: resource servers that require it refuse anything
     * but at+jwt. */
    if (t == TYP_OTHER || (s->require_typ_at_jwt && t != TYP_AT_JWT))
        return PT_JWT_UNSUPPORTED;
    v = json_object_get(h, "kid");
    if (v && !json_is_string(v))
        return PT_JWT_MALFORMED;
    return PT_JWT_OK;
}

/*
 * The keys to try, in order, at most max. With a kid: the keys with that
 * kid that fit alg; if no key has that kid, the kid-less keys that fit (a
 * key configured without kid stands for any). Without a kid: every key
 * that fits.
 */
static enum pt_jwt_result choose_keys(const struct pt_jwk_set *keys, enum pt_jwt_alg alg,
                                      struct pt_str kid, bool has_kid, const struct pt_jwk **out,
                                      size_t max, size_t *n)
{
    *n = 0;
    size_t count = keys ? pt_jwk_set_count(keys) : 0;
    bool kid_known = false;
    for (size_t i = 0; i < count; i++) {
        const struct pt_jwk *k = pt_jwk_set_key(keys, i);
        if (has_kid && !(k->has_kid && pt_str_eq(k->kid, kid)))
            continue;
        kid_known = true;
        if (pt_jwk_fits(k, alg) && *n < max)
            out[(*n)++] = k;
    }
    if (*n)
        return PT_JWT_OK;
    if (!has_kid || kid_known)
        return PT_JWT_NO_KEY;
    for (size_t i = 0; i < count; i++) {
        const struct pt_jwk *k = pt_jwk_set_key(keys, i);
        if (!k->has_kid && pt_jwk_fits(k, alg) && *n < max)
            out[(*n)++] = k;
    }
    /* Nothing stands in for the kid: a newer JWKS may have it. */
    return *n ? PT_JWT_OK : PT_JWT_UNKNOWN_KID;
}

/* The signing input is the token's first two segments and the dot between
 * them, exactly as received (RFC 7515 5.2 step 8). */
static enum pt_jwt_result check_signature(const struct parsed *p, enum pt_jwt_alg alg,
                                          const struct pt_jwk *const *cands, size_t n)
{
    struct pt_str input = {p->seg[0].ptr, p->seg[0].len + 1 + p->seg[1].len};
    /* A longer signature fits no key; it is refused before decoding. */
    unsigned char sig[PT_JWS_MAX_SIG_BYTES];
    size_t siglen = 0;
    if (pt_b64url_decode(p->seg[2], sig, sizeof(sig), &siglen) != 0)
        return PT_JWT_BAD_SIGNATURE;
    for (size_t i = 0; i < n; i++) {
        int rc = pt_jws_verify(cands[i], alg, input, sig, siglen);
        if (rc == 0)
            return PT_JWT_OK;
        if (rc == PT_ERR_NOMEM)
            return PT_JWT_INTERNAL;
    }
    return PT_JWT_BAD_SIGNATURE;
}

/* ---- claims ---------------------------------------------------------------- */

/* NumericDate (RFC 7519 2): any JSON number; fractions rounded down (up
 * when round_up), values beyond +-2^62 clamped. false if not a number. */
static bool numeric_date(const json_t *v, bool round_up, int64_t *out)
{
    const int64_t lim = (int64_t)1 << 62;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        *out = i > lim ? lim : i < -lim ? -lim : (int64_t)i;
        return true;
    }
    if (!json_is_real(v))
        return false;
    double d = json_real_value(v);
    if (!(d == d))
        return false;
    if (d >= (double)lim) {
        *out = lim;
    } else if (d <= -(double)lim) {
        *out = -lim;
    } else {
        int64_t t = (int64_t)d; /* toward zero */
        if (!round_up && (double)t > d)
            t--;
        if (round_up && (double)t < d)
            t++;
        *out = t;
    }
    return true;
}

static bool aud_contains(const json_t *aud, struct pt_str want)
{
    if (json_is_string(aud))
        return pt_str_eq((struct pt_str){json_string_value(aud), json_string_length(aud)}, want);
    for (size_t i = 0; i < json_array_size(aud); i++) {
        const json_t *a = json_array_get(aud, i);
        if (json_is_string(a) &&
            pt_str_eq((struct pt_str){json_string_value(a), json_string_length(a)}, want))
            return true;
    }
    return false;
}

static bool aud_well_typed(const json_t *aud)
{
    if (json_is_string(aud))
        return true;
    if (!json_is_array(aud))
        return false;
    for (size_t i = 0; i < json_array_size(aud); i++)
        if (!json_is_string(json_array_get(aud, i)))
            return false;
    return true;
}

/* json_object_getn: claim names from config need not be NUL-terminated. */
static json_t *member(const json_t *obj, struct pt_str name)
{
    return json_object_getn(obj, name.ptr ? name.ptr : "", name.len);
}

static enum pt_jwt_result check_claims(const struct pt_jwt_issuer *s, const json_t *c, int64_t now,
                                       struct pt_jwt_verified *out)
{
    int64_t lo = now - (int64_t)s->leeway_s, hi = now + (int64_t)s->leeway_s;
    int64_t t;
    json_t *v;

    /* Types of the registered claims first, so a wrong type never passes
     * for "absent". */
    static const char *const dates[] = {"exp", "nbf", "iat"};
    for (size_t i = 0; i < 3; i++)
        if ((v = json_object_get(c, dates[i])) && !numeric_date(v, false, &t))
            return PT_JWT_BAD_CLAIM;
    static const char *const strings[] = {"iss", "sub", "jti"};
    for (size_t i = 0; i < 3; i++)
        if ((v = json_object_get(c, strings[i])) && !json_is_string(v))
            return PT_JWT_BAD_CLAIM;
    if ((v = json_object_get(c, "aud")) && !aud_well_typed(v))
        return PT_JWT_BAD_CLAIM;

    if ((v = json_object_get(c, "exp"))) {
        numeric_date(v, false, &t);
        /* RFC 7519 4.1.4: valid only while now is before exp. */
        if (lo >= t)
            return PT_JWT_EXPIRED;
        out->has_exp = true;
        out->exp = t;
    } else if (s->require_exp) {
        return PT_JWT_MISSING_CLAIM;
    }
    if ((v = json_object_get(c, "nbf"))) {
        numeric_date(v, true, &t);
        if (t > hi)
            return PT_JWT_NOT_YET_VALID;
    }
    if ((v = json_object_get(c, "iat"))) {
        numeric_date(v, true, &t);
        if (t > hi)
            return PT_JWT_NOT_YET_VALID;
    }
    if (s->issuer.len) {
        v = json_object_get(c, "iss");
        if (!v ||
            !pt_str_eq((struct pt_str){json_string_value(v), json_string_length(v)}, s->issuer))
            return PT_JWT_BAD_ISSUER;
    }
    if (s->naudiences) {
        v = json_object_get(c, "aud");
        bool ok = false;
        for (size_t i = 0; v && !ok && i < s->naudiences; i++)
            ok = aud_contains(v, s->audiences[i]);
        if (!ok)
            return PT_JWT_BAD_AUDIENCE;
    }
    for (size_t i = 0; i < s->nrequired_claims; i++) {
        v = member(c, s->required_claims[i]);
        if (!v || json_is_null(v))
            return PT_JWT_MISSING_CLAIM;
    }
    return PT_JWT_OK;
}

enum pt_jwt_result pt_jwt_verify(const struct pt_jwt_issuer *s, const struct pt_jwk_set *keys,
                                 struct pt_str token, int64_t now, struct pt_jwt_verified *out)
{
    memset(out, 0, sizeof(*out));
    /* Keep now +- leeway inside int64 whatever the caller passes. */
    const int64_t lim = (int64_t)1 << 62;
    now = now > lim ? lim : now < -lim ? -lim : now;

    struct parsed p;
    enum pt_jwt_result r = parse(token, s->max_token_bytes, &p);
    if (r != PT_JWT_OK)
        return r;
    enum pt_jwt_alg alg;
    r = check_header(s, p.header, &alg);
    if (r == PT_JWT_OK && p.seg[2].len == 0)
        r = PT_JWT_MALFORMED;
    if (r != PT_JWT_OK)
        goto done;

    struct pt_str kid = str_member(p.header, "kid");
    size_t max = s->max_key_tries ? s->max_key_tries : 1, n = 0;
    if (max > PT_JWK_DEFAULT_MAX_KEYS)
        max = PT_JWK_DEFAULT_MAX_KEYS;
    const struct pt_jwk *cands[PT_JWK_DEFAULT_MAX_KEYS];
    r = choose_keys(keys, alg, kid, kid.ptr != NULL, cands, max, &n);
    if (r != PT_JWT_OK)
        goto done;
    r = check_signature(&p, alg, cands, n);
    if (r != PT_JWT_OK)
        goto done;

    r = check_claims(s, p.payload, now, out);
    if (r == PT_JWT_OK) {
        out->claims = p.payload;
        out->alg = alg;
        p.payload = NULL;
    } else {
        out->has_exp = false;
        out->exp = 0;
    }
done:
    parsed_fini(&p);
    return r;
}

void pt_jwt_verified_fini(struct pt_jwt_verified *v)
{
    json_decref(v->claims);
    memset(v, 0, sizeof(*v));
}

/* ---- accessors -------------------------------------------------------------- */

struct pt_str pt_jwt_claim_str(const json_t *claims, const char *name)
{
    return str_member(claims, name);
}

struct pt_str pt_jwt_claims_sub(const json_t *claims)
{
    return str_member(claims, "sub");
}

bool pt_jwt_claims_exp(const json_t *claims, int64_t *exp)
{
    json_t *v = json_object_get(claims, "exp");
    return v && numeric_date(v, false, exp);
}

/* Split a space-separated list; returns how many non-empty words. */
static size_t split_words(struct pt_str list, struct pt_str *out, size_t max, size_t n)
{
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && list.ptr[i] == ' ')
            i++;
        size_t start = i;
        while (i < list.len && list.ptr[i] != ' ')
            i++;
        if (i > start) {
            if (n < max)
                out[n] = (struct pt_str){list.ptr + start, i - start};
            n++;
        }
    }
    return n;
}

size_t pt_jwt_claims_scopes(const json_t *claims, struct pt_str *out, size_t max)
{
    json_t *v = json_object_get(claims, "scope");
    if (!json_is_string(v))
        v = json_object_get(claims, "scp");
    if (json_is_string(v))
        return split_words((struct pt_str){json_string_value(v), json_string_length(v)}, out, max,
                           0);
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e) || json_string_length(e) == 0)
            continue;
        if (n < max)
            out[n] = (struct pt_str){json_string_value(e), json_string_length(e)};
        n++;
    }
    return n;
}
