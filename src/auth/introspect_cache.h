/*
 * auth/introspect_cache.h - introspection answers remembered for a while,
 * shared by every worker.
 *
 * Keys are SHA-256 digests of (a random per-cache salt, a namespace naming
 * the endpoint and client, the token): the cache never holds a token, and
 * clients cannot choose which hash chain their tokens land in. Values are
 * the refcounted, immutable answers (introspect_wire.h).
 *
 * Lifetimes (wall clock, passed in by the caller so tests use a fake one):
 *   active:   until min(exp, now + max_ttl); never past exp; an answer
 *             whose exp has passed is not stored at all;
 *   inactive: now + negative_ttl;
 * errors are never stored (the caller does not put them).
 *
 * Why shared with striped locks rather than per worker: a token checked on
 * one worker is then known to all (per-worker caches would ask the
 * endpoint once per worker for every token), and the cost is one stripe
 * mutex around a hash lookup — the same trade as the local rate-limit
 * tables. Up to 16 stripes (1 below 64 entries, so small caches evict in
 * exact LRU order), each a chained hash table with its own LRU list and
 * max_entries / stripes entries; a full stripe first drops expired entries
 * from its LRU end, then its least recently used one.
 *
 * Thread: any.
 */
#ifndef PT_AUTH_INTROSPECT_CACHE_H
#define PT_AUTH_INTROSPECT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "auth/introspect_wire.h"
#include "portico/str.h"

#define PT_INTROSPECT_CACHE_DEFAULT_MAX 10000u
#define PT_INTROSPECT_CACHE_DEFAULT_TTL_MS 300000u
#define PT_INTROSPECT_CACHE_DEFAULT_NEG_TTL_MS 10000u
#define PT_INTROSPECT_KEY_LEN 32

struct pt_introspect_cache_conf {
    size_t max_entries;       /* 0 = PT_INTROSPECT_CACHE_DEFAULT_MAX */
    uint32_t max_ttl_ms;      /* 0 = PT_INTROSPECT_CACHE_DEFAULT_TTL_MS */
    uint32_t negative_ttl_ms; /* 0 = PT_INTROSPECT_CACHE_DEFAULT_NEG_TTL_MS */
};

struct pt_introspect_cache;

/* Pointer (never NULL): an empty cache with one reference. conf NULL =
 * defaults. */
struct pt_introspect_cache *pt_introspect_cache_new(const struct pt_introspect_cache_conf *conf);
void pt_introspect_cache_ref(struct pt_introspect_cache *c);
/* NULL is a no-op; the last reference frees it. */
void pt_introspect_cache_unref(struct pt_introspect_cache *c);

/* The key of token under namespace ns (e.g. "endpoint\nclient_id"). */
void pt_introspect_cache_key(const struct pt_introspect_cache *c, struct pt_str ns,
                             struct pt_str token, uint8_t key[PT_INTROSPECT_KEY_LEN]);
/* Pointer: the live answer for key with one reference, or NULL (absent or
 * expired at now_ns; an expired one is dropped). */
struct pt_introspection *pt_introspect_cache_lookup(struct pt_introspect_cache *c,
                                                    const uint8_t key[PT_INTROSPECT_KEY_LEN],
                                                    uint64_t now_ns);
/* Remember r (the cache takes its own reference) under the lifetime rules
 * above; replaces an entry with the same key. */
void pt_introspect_cache_put(struct pt_introspect_cache *c,
                             const uint8_t key[PT_INTROSPECT_KEY_LEN], struct pt_introspection *r,
                             uint64_t now_ns);
/* Entries held (expired ones not yet dropped included). */
size_t pt_introspect_cache_count(struct pt_introspect_cache *c);

#endif
