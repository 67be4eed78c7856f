/*
 * auth/token_cache.c - verified-token cache (see token_cache.h).
 *
 * All entries live in one array allocated up front; a chained hash table
 * (bucket heads and next links are array indices) finds them and an
 * intrusive doubly linked list keeps them in LRU order. Free slots are
 * chained through the same "next" link.
 */
#include "auth/token_cache.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/arena.h"

#define NIL UINT32_MAX

struct entry {
    unsigned char key[32];
    json_t *claims; /* NULL: a free slot */
    int64_t expires;
    uint32_t hnext;      /* hash chain */
    uint32_t prev, next; /* LRU list (most recent first), or the free list */
};

struct pt_token_cache {
    struct entry *e;
    uint32_t cap;
    uint32_t *buckets;
    uint32_t mask;
    uint32_t head, tail, free_head;
    uint32_t ttl_s;
    EVP_MD_CTX *md_ctx;
    EVP_MD *sha256;
    struct pt_token_cache_stats st;
};

struct pt_token_cache *pt_token_cache_new(const struct pt_token_cache_opts *opts)
{
    size_t max = opts && opts->max_entries ? opts->max_entries : PT_TOKEN_CACHE_DEFAULT_ENTRIES;
    if (max > PT_TOKEN_CACHE_MAX_ENTRIES)
        max = PT_TOKEN_CACHE_MAX_ENTRIES;
    struct pt_token_cache *c = pt_xcalloc(1, sizeof(*c));
    c->cap = (uint32_t)max;
    c->ttl_s = opts && opts->max_ttl_s ? opts->max_ttl_s : PT_TOKEN_CACHE_DEFAULT_TTL_S;
    c->e = pt_xcalloc(max, sizeof(*c->e));
    uint32_t nb = 1;
    while (nb < c->cap)
        nb <<= 1;
    c->mask = nb - 1;
    c->buckets = pt_xmalloc((size_t)nb * sizeof(*c->buckets));
    c->md_ctx = EVP_MD_CTX_new();
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!c->md_ctx || !c->sha256)
        abort(); /* only allocation can fail here: SHA-256 is always built in */
    pt_token_cache_flush(c);
    return c;
}

void pt_token_cache_free(struct pt_token_cache *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->cap; i++)
        json_decref(c->e[i].claims);
    EVP_MD_CTX_free(c->md_ctx);
    EVP_MD_free(c->sha256);
    free(c->buckets);
    free(c->e);
    free(c);
}

void pt_token_cache_flush(struct pt_token_cache *c)
{
    for (uint32_t i = 0; i < c->cap; i++) {
        json_decref(c->e[i].claims);
        c->e[i].claims = NULL;
        c->e[i].next = i + 1 < c->cap ? i + 1 : NIL;
    }
    for (uint32_t b = 0; b <= c->mask; b++)
        c->buckets[b] = NIL;
    c->free_head = 0;
    c->head = c->tail = NIL;
    c->st.entries = 0;
}

void pt_token_cache_stats(const struct pt_token_cache *c, struct pt_token_cache_stats *out)
{
    *out = c->st;
}

static void make_key(struct pt_token_cache *c, uint64_t g1, uint64_t g2, struct pt_str token,
                     unsigned char key[32])
{
    unsigned char gens[16];
    for (int i = 0; i < 8; i++) {
        gens[i] = (unsigned char)(g1 >> (8 * i));
        gens[8 + i] = (unsigned char)(g2 >> (8 * i));
    }
    unsigned int len = 0;
    if (EVP_DigestInit_ex(c->md_ctx, c->sha256, NULL) != 1 ||
        EVP_DigestUpdate(c->md_ctx, gens, sizeof(gens)) != 1 ||
        EVP_DigestUpdate(c->md_ctx, token.ptr, token.len) != 1 ||
        EVP_DigestFinal_ex(c->md_ctx, key, &len) != 1 || len != 32)
        abort(); /* SHA-256 over memory cannot fail but for allocation */
}

static uint32_t bucket_of(const struct pt_token_cache *c, const unsigned char key[32])
{
    uint32_t h;
    memcpy(&h, key, sizeof(h));
    return h & c->mask;
}

static uint32_t find(const struct pt_token_cache *c, const unsigned char key[32])
{
    for (uint32_t i = c->buckets[bucket_of(c, key)]; i != NIL; i = c->e[i].hnext)
        if (memcmp(c->e[i].key, key, 32) == 0)
            return i;
    return NIL;
}

static void lru_unlink(struct pt_token_cache *c, uint32_t i)
{
    struct entry *e = &c->e[i];
    if (e->prev != NIL)
        c->e[e->prev].next = e->next;
    else
        c->head = e->next;
    if (e->next != NIL)
        c->e[e->next].prev = e->prev;
    else
        c->tail = e->prev;
}

static void lru_push_front(struct pt_token_cache *c, uint32_t i)
{
    struct entry *e = &c->e[i];
    e->prev = NIL;
    e->next = c->head;
    if (c->head != NIL)
        c->e[c->head].prev = i;
    c->head = i;
    if (c->tail == NIL)
        c->tail = i;
}

static void remove_entry(struct pt_token_cache *c, uint32_t i)
{
    struct entry *e = &c->e[i];
    uint32_t *link = &c->buckets[bucket_of(c, e->key)];
    while (*link != i)
        link = &c->e[*link].hnext;
    *link = e->hnext;
    lru_unlink(c, i);
    json_decref(e->claims);
    e->claims = NULL;
    e->next = c->free_head;
    c->free_head = i;
    c->st.entries--;
}

json_t *pt_token_cache_lookup(struct pt_token_cache *c, uint64_t settings_gen, uint64_t keys_gen,
                              struct pt_str token, int64_t now)
{
    unsigned char key[32];
    make_key(c, settings_gen, keys_gen, token, key);
    uint32_t i = find(c, key);
    if (i == NIL) {
        c->st.misses++;
        return NULL;
    }
    if (now >= c->e[i].expires) {
        remove_entry(c, i);
        c->st.expired++;
        c->st.misses++;
        return NULL;
    }
    lru_unlink(c, i);
    lru_push_front(c, i);
    c->st.hits++;
    return json_incref(c->e[i].claims);
}

void pt_token_cache_insert(struct pt_token_cache *c, uint64_t settings_gen, uint64_t keys_gen,
                           struct pt_str token, json_t *claims, bool has_exp, int64_t exp,
                           int64_t now)
{
    if (!claims)
        return;
    const int64_t lim = (int64_t)1 << 62;
    int64_t expires = (now > lim ? lim : now) + (int64_t)c->ttl_s;
    if (has_exp && exp < expires)
        expires = exp;
    if (expires <= now)
        return;
    unsigned char key[32];
    make_key(c, settings_gen, keys_gen, token, key);
    uint32_t i = find(c, key);
    if (i != NIL) {
        json_t *old = c->e[i].claims;
        c->e[i].claims = json_incref(claims);
        json_decref(old);
        c->e[i].expires = expires;
        lru_unlink(c, i);
        lru_push_front(c, i);
        return;
    }
    if (c->free_head == NIL) {
        remove_entry(c, c->tail);
        c->st.evictions++;
    }
    i = c->free_head;
    struct entry *e = &c->e[i];
    c->free_head = e->next;
    memcpy(e->key, key, 32);
    e->claims = json_incref(claims);
    e->expires = expires;
    uint32_t b = bucket_of(c, key);
    e->hnext = c->buckets[b];
    c->buckets[b] = i;
    lru_push_front(c, i);
    c->st.entries++;
    c->st.inserts++;
}
