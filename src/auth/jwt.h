/*
 * auth/jwt.h - JWT (JWS compact form) verification, sans I/O.
 *
 * pt_jwt_verify() takes the token bytes, one issuer's settings, that
 * issuer's key set (auth/jwk.h) and the current time from the caller (no
 * clock is read here, so results are reproducible), and returns one result
 * code. The order of checks is fixed:
 *
 *   size -> three base64url segments -> header JSON object -> "alg" present,
 *   not "none", in the allow-list -> "crit"/"typ"/"kid" -> payload JSON
 *   object -> key choice by "kid", key type and curve -> signature with
 *   the alg checked above (auth/jws.h: OpenSSL on keys parsed once, over
 *   "header.payload" exactly as received) -> claims: exp, nbf, iat, iss,
 *   aud, required claims (each of the right JSON type)
 *
 * so nothing about the token is trusted before its alg and key are decided
 * by our rules, and no claim is believed before the signature checks out.
 * An unknown "kid" has its own result (PT_JWT_UNKNOWN_KID) so the caller
 * can refresh the issuer's JWKS (rate-limited: anyone can send any kid).
 * "typ" may be absent, JWT or at+jwt (RFC 9068 access tokens), with or
 * without "application/", in any case; require_typ_at_jwt demands at+jwt.
 *
 * pt_jwt_result_text() gives a short fixed text per result, fit for
 * WWW-Authenticate: Bearer error="invalid_token", error_description="...";
 * no text ever contains bytes of the token.
 *
 * Thread: any; nothing here has state. The settings and key set are only
 * read. docs/jwt.md has the full rules.
 */
#ifndef PT_AUTH_JWT_H
#define PT_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "auth/jwk.h"
#include "portico/str.h"

enum pt_jwt_result {
    PT_JWT_OK = 0,
    PT_JWT_MALFORMED,       /* not three base64url segments of JSON objects, bad header */
    PT_JWT_TOO_LARGE,       /* more than max_token_bytes */
    PT_JWT_ALG_NOT_ALLOWED, /* "none", unknown, or not in the issuer's allow-list */
    PT_JWT_UNSUPPORTED,     /* "crit" header, "typ" not JWT or at+jwt (or not at+jwt when
                               required) */
    PT_JWT_UNKNOWN_KID,     /* "kid" names no key of the set: refresh the JWKS? */
    PT_JWT_NO_KEY,          /* no key of the set fits the token's alg */
    PT_JWT_BAD_SIGNATURE,
    PT_JWT_EXPIRED,       /* exp (+ leeway) has passed */
    PT_JWT_NOT_YET_VALID, /* nbf or iat later than now + leeway */
    PT_JWT_BAD_ISSUER,
    PT_JWT_BAD_AUDIENCE,
    PT_JWT_MISSING_CLAIM, /* exp (when required) or a required claim absent or null */
    PT_JWT_BAD_CLAIM,     /* a registered claim of the wrong JSON type */
    PT_JWT_INTERNAL,      /* allocation failure inside OpenSSL */
    PT_JWT_RESULT_COUNT
};

/* Pointer: a short fixed English text (no quotes, no token bytes). */
const char *pt_jwt_result_text(enum pt_jwt_result r);
/* Pointer: the result's name ("EXPIRED"), for logs and metrics. */
const char *pt_jwt_result_name(enum pt_jwt_result r);

#define PT_JWT_DEFAULT_LEEWAY_S 60u
#define PT_JWT_DEFAULT_MAX_TOKEN_BYTES 8192u
#define PT_JWT_DEFAULT_MAX_KEY_TRIES 4u
/* Default allow-list: the asymmetric algorithms. HS* must be chosen. */
#define PT_JWT_DEFAULT_ALGS (PT_JWT_ALGS_RS | PT_JWT_ALGS_ES)

/*
 * One issuer's settings; plain data filled by the config compiler. Strings
 * and arrays are borrowed (the snapshot owns them) and must outlive every
 * verification that uses them.
 */
struct pt_jwt_issuer {
    struct pt_str issuer; /* exact "iss"; empty (len 0): not checked */
    const struct pt_str *audiences;
    size_t naudiences; /* "aud" must contain one of them; 0: not checked */
    uint32_t algs;     /* allow-list, PT_JWT_ALG_BIT() mask */
    uint32_t leeway_s; /* clock skew allowed for exp, nbf, iat */
    const struct pt_str *required_claims;
    size_t nrequired_claims;
    size_t max_token_bytes;
    bool require_exp;
    /* At most this many fitting keys are tried per token (each try is one
     * signature verification): keys sharing the token's kid, or, for a
     * token without kid, every key of the right type. */
    unsigned max_key_tries;
    /* RFC 9068 4: the header's "typ" must be at+jwt (or
     * application/at+jwt), so that no other kind of JWT from the same
     * issuer (an ID token, say) passes for an access token. Default
     * false: plain JWTs and tokens without typ are accepted too. */
    bool require_typ_at_jwt;
};

/* Fill s with the defaults: no issuer/audience check, PT_JWT_DEFAULT_ALGS,
 * 60 s leeway, 8192 bytes, exp required, 4 key tries, typ at+jwt not
 * required. */
void pt_jwt_issuer_init(struct pt_jwt_issuer *s);

/* The outcome of a successful verification. */
struct pt_jwt_verified {
    json_t *claims; /* the payload object; one reference owned by the caller */
    enum pt_jwt_alg alg;
    bool has_exp;
    int64_t exp; /* seconds, rounded down */
};

/*
 * Verify token against issuer settings s and key set keys at time now
 * (seconds since the epoch). Returns PT_JWT_OK and fills *out (release with
 * pt_jwt_verified_fini), or another result and leaves *out zeroed. keys may
 * be NULL (no keys yet): PT_JWT_UNKNOWN_KID for a token with kid, else
 * PT_JWT_NO_KEY.
 */
enum pt_jwt_result pt_jwt_verify(const struct pt_jwt_issuer *s, const struct pt_jwk_set *keys,
                                 struct pt_str token, int64_t now, struct pt_jwt_verified *out);
/* Drop the claims reference; zeroes v. */
void pt_jwt_verified_fini(struct pt_jwt_verified *v);

/*
 * UNVERIFIED look at a token: its header's "alg" and "kid" and its
 * payload's "iss", so a caller with several issuers can pick the settings
 * and keys to verify with. Nothing here is authenticated: use the values
 * only to choose what to verify against, never to grant anything.
 * Returns PT_JWT_OK (fields absent or not strings are PT_STR_NULL),
 * PT_JWT_TOO_LARGE or PT_JWT_MALFORMED; release with pt_jwt_peek_fini.
 */
struct pt_jwt_peek {
    struct pt_str alg, kid, iss; /* borrowed from header/payload */
    json_t *header, *payload;    /* owned */
};
enum pt_jwt_result pt_jwt_peek(struct pt_str token, size_t max_token_bytes,
                               struct pt_jwt_peek *out);
void pt_jwt_peek_fini(struct pt_jwt_peek *p);

/*
 * Accessors on verified claims (a JSON object). Returned strings are
 * borrowed from claims and live as long as the caller's reference.
 */
/* Pointer-like: claim name as a string, or PT_STR_NULL (absent, not a
 * string). */
struct pt_str pt_jwt_claim_str(const json_t *claims, const char *name);
/* The "sub" claim, or PT_STR_NULL. */
struct pt_str pt_jwt_claims_sub(const json_t *claims);
/* true and *exp (rounded down) when "exp" is a number. */
bool pt_jwt_claims_exp(const json_t *claims, int64_t *exp);
/* The scopes: "scope" (a space-separated string, RFC 8693), or else "scp"
 * (an array of strings, or a space-separated string). Writes up to max of
 * them to out and returns how many there are in all (empty ones skipped). */
size_t pt_jwt_claims_scopes(const json_t *claims, struct pt_str *out, size_t max);

#endif
