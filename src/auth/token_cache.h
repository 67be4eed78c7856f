/*
 * auth/token_cache.h - a bounded cache of verified tokens, one per worker.
 *
 * Verifying an RS256 token costs tens of microseconds; a client sends the
 * same bearer token on every request. The cache maps a token to the claims
 * its verification produced, so a repeat costs one SHA-256 and a lookup.
 *
 *   key     SHA-256(settings_gen, keys_gen, token bytes); a lookup compares
 *           all 32 bytes, so two tokens never share an entry (no token
 *           bytes are stored). SHA-256 rather than a keyed 64-bit SipHash:
 *           a 64-bit hash would need the token stored to rule out
 *           collisions, and a collision here would hand one caller another
 *           caller's identity.
 *   value   the claims (a json_t reference, read-only for everyone) and an
 *           expiry = min(token exp, insertion time + max_ttl_s): an entry
 *           never outlives its token's exp (leeway is not applied here).
 *   bound   max_entries; the least recently used entry is evicted when a
 *           new one does not fit. Expired entries are dropped when met.
 *
 * Generations: the caller passes two numbers that must change whenever a
 * verdict could change: settings_gen (the issuer settings, e.g. the
 * configuration snapshot's generation) and keys_gen (the key set,
 * pt_jwk_set_generation()). Both are part of the key, so after a config
 * change or a key rotation (JWKS refresh) no old verdict is ever served;
 * the old entries simply age out. One cache may therefore serve several
 * issuers on a worker. pt_token_cache_flush() empties it at once.
 *
 * Only successful verifications belong here; failures are not cached.
 *
 * Thread: one worker. The cache has no locks; give each worker its own.
 * The clock is the caller's (now, in seconds), as for pt_jwt_verify().
 */
#ifndef PT_AUTH_TOKEN_CACHE_H
#define PT_AUTH_TOKEN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "portico/str.h"

#define PT_TOKEN_CACHE_DEFAULT_ENTRIES 10000u
#define PT_TOKEN_CACHE_DEFAULT_TTL_S 300u
#define PT_TOKEN_CACHE_MAX_ENTRIES (1u << 24)

struct pt_token_cache_opts {
    size_t max_entries; /* 0: the default; capped at PT_TOKEN_CACHE_MAX_ENTRIES */
    uint32_t max_ttl_s; /* 0: the default */
};

struct pt_token_cache_stats {
    uint64_t hits, misses, inserts, evictions, expired;
    size_t entries;
};

struct pt_token_cache;

/* Pointer: a new empty cache (never NULL; a failed malloc aborts). opts
 * NULL: the defaults. Memory for max_entries entries is taken up front. */
struct pt_token_cache *pt_token_cache_new(const struct pt_token_cache_opts *opts);
/* NULL is a no-op; drops every claims reference. */
void pt_token_cache_free(struct pt_token_cache *c);

/* Pointer: the claims cached for token under these generations and still
 * unexpired at now (a new reference: json_decref it), or NULL. */
json_t *pt_token_cache_lookup(struct pt_token_cache *c, uint64_t settings_gen, uint64_t keys_gen,
                              struct pt_str token, int64_t now);
/* Remember claims (a reference is taken) for token until min(exp,
 * now + max_ttl_s); has_exp false: now + max_ttl_s. Nothing is stored when
 * that is not after now. Replaces an entry for the same key. */
void pt_token_cache_insert(struct pt_token_cache *c, uint64_t settings_gen, uint64_t keys_gen,
                           struct pt_str token, json_t *claims, bool has_exp, int64_t exp,
                           int64_t now);
/* Drop every entry. */
void pt_token_cache_flush(struct pt_token_cache *c);
void pt_token_cache_stats(const struct pt_token_cache *c, struct pt_token_cache_stats *out);

#endif
