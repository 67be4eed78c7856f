#include "auth/introspect_cache.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/time.h"

#define MAX_STRIPES 16
#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull

struct entry {
    uint8_t key[PT_INTROSPECT_KEY_LEN];
    uint64_t expires_ns;
    struct pt_introspection *r;
    struct entry *chain;         /* hash bucket */
    struct entry *newer, *older; /* LRU: head is the most recent */
};

struct stripe {
    pthread_mutex_t mu;
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t n, max;
    struct entry *lru_head, *lru_tail;
};

struct pt_introspect_cache {
    atomic_uint refs;
    uint8_t salt[16];
    uint64_t max_ttl_ns, neg_ttl_ns;
    unsigned nstripes;
    struct stripe stripes[MAX_STRIPES];
};

struct pt_introspect_cache *pt_introspect_cache_new(const struct pt_introspect_cache_conf *conf)
{
    struct pt_introspect_cache *c = pt_xcalloc(1, sizeof(*c));
    atomic_init(&c->refs, 1);
    size_t max = conf && conf->max_entries ? conf->max_entries : PT_INTROSPECT_CACHE_DEFAULT_MAX;
    uint32_t ttl = conf && conf->max_ttl_ms ? conf->max_ttl_ms : PT_INTROSPECT_CACHE_DEFAULT_TTL_MS;
    uint32_t neg = conf && conf->negative_ttl_ms ? conf->negative_ttl_ms
                                                 : PT_INTROSPECT_CACHE_DEFAULT_NEG_TTL_MS;
    c->max_ttl_ns = (uint64_t)ttl * NS_PER_MS;
    c->neg_ttl_ns = (uint64_t)neg * NS_PER_MS;
    if (RAND_bytes(c->salt, sizeof(c->salt)) != 1) {
        uint64_t t = pt_time_mono_ns() ^ (uintptr_t)c; /* weaker, still unknown to clients */
        memcpy(c->salt, &t, sizeof(t));
    }
    c->nstripes = max < 64 ? 1 : MAX_STRIPES;
    for (unsigned i = 0; i < c->nstripes; i++) {
        struct stripe *s = &c->stripes[i];
        pthread_mutex_init(&s->mu, NULL);
        s->max = max / c->nstripes + (i < max % c->nstripes ? 1 : 0);
        s->nbuckets = 8;
        while (s->nbuckets < s->max && s->nbuckets < (1u << 20))
            s->nbuckets *= 2;
        s->buckets = pt_xcalloc(s->nbuckets, sizeof(*s->buckets));
    }
    return c;
}

void pt_introspect_cache_ref(struct pt_introspect_cache *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void pt_introspect_cache_unref(struct pt_introspect_cache *c)
{
    if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (unsigned i = 0; i < c->nstripes; i++) {
        struct stripe *s = &c->stripes[i];
        for (struct entry *e = s->lru_head; e;) {
            struct entry *next = e->older;
            pt_introspection_unref(e->r);
            free(e);
            e = next;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(c);
}

void pt_introspect_cache_key(const struct pt_introspect_cache *c, struct pt_str ns,
                             struct pt_str token, uint8_t key[PT_INTROSPECT_KEY_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        abort(); /* like a malloc failure */
    uint64_t nslen = ns.len;
    EVP_DigestUpdate(md, c->salt, sizeof(c->salt));
    EVP_DigestUpdate(md, &nslen, sizeof(nslen)); /* no ambiguity between ns and token */
    EVP_DigestUpdate(md, ns.ptr, ns.len);
    EVP_DigestUpdate(md, token.ptr, token.len);
    EVP_DigestFinal_ex(md, key, &len);
    EVP_MD_CTX_free(md);
}

static struct stripe *stripe_of(struct pt_introspect_cache *c, const uint8_t *key, size_t *bucket)
{
    uint64_t h;
    memcpy(&h, key, sizeof(h)); /* salted digest: uniform and unknown to clients */
    struct stripe *s = &c->stripes[(h >> 59) % c->nstripes];
    *bucket = (size_t)h & (s->nbuckets - 1);
    return s;
}

static void lru_unlink(struct stripe *s, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        s->lru_head = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->lru_tail = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(struct stripe *s, struct entry *e)
{
    e->newer = NULL;
    e->older = s->lru_head;
    if (s->lru_head)
        s->lru_head->newer = e;
    else
        s->lru_tail = e;
    s->lru_head = e;
}

/* Unlink e from its stripe; the caller frees it (outside the lock is fine). */
static void remove_entry(struct stripe *s, struct entry *e)
{
    uint64_t h;
    memcpy(&h, e->key, sizeof(h));
    struct entry **pp = &s->buckets[(size_t)h & (s->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->chain;
    if (*pp)
        *pp = e->chain;
    lru_unlink(s, e);
    s->n--;
}

static void entry_free(struct entry *e)
{
    pt_introspection_unref(e->r);
    free(e);
}

struct pt_introspection *pt_introspect_cache_lookup(struct pt_introspect_cache *c,
                                                    const uint8_t key[PT_INTROSPECT_KEY_LEN],
                                                    uint64_t now_ns)
{
    size_t b;
    struct stripe *s = stripe_of(c, key, &b);
    struct pt_introspection *r = NULL;
    struct entry *dead = NULL;
    pthread_mutex_lock(&s->mu);
    struct entry *e = s->buckets[b];
    while (e && memcmp(e->key, key, PT_INTROSPECT_KEY_LEN) != 0)
        e = e->chain;
    if (e && now_ns >= e->expires_ns) {
        remove_entry(s, e);
        dead = e;
    } else if (e) {
        lru_unlink(s, e);
        lru_push(s, e);
        r = pt_introspection_ref(e->r);
    }
    pthread_mutex_unlock(&s->mu);
    if (dead)
        entry_free(dead);
    return r;
}

void pt_introspect_cache_put(struct pt_introspect_cache *c,
                             const uint8_t key[PT_INTROSPECT_KEY_LEN], struct pt_introspection *r,
                             uint64_t now_ns)
{
    uint64_t expires;
    if (r->active) {
        expires = now_ns + c->max_ttl_ns;
        if (r->has_exp) {
            uint64_t exp_ns = (uint64_t)r->exp * NS_PER_S; /* exp <= 2^53 s: no overflow */
            if (exp_ns / NS_PER_S != (uint64_t)r->exp || exp_ns <= now_ns)
                return; /* expired (or absurd): never stored */
            if (exp_ns < expires)
                expires = exp_ns;
        }
    } else {
        expires = now_ns + c->neg_ttl_ns;
    }
    size_t b;
    struct stripe *s = stripe_of(c, key, &b);
    struct entry *drop[4] = {NULL, NULL, NULL, NULL};
    int ndrop = 0;
    struct entry *n = pt_xcalloc(1, sizeof(*n));
    memcpy(n->key, key, PT_INTROSPECT_KEY_LEN);
    n->expires_ns = expires;
    n->r = pt_introspection_ref(r);
    pthread_mutex_lock(&s->mu);
    struct entry *e = s->buckets[b];
    while (e && memcmp(e->key, key, PT_INTROSPECT_KEY_LEN) != 0)
        e = e->chain;
    if (e) {
        remove_entry(s, e);
        drop[ndrop++] = e;
    }
    /* Up to two expired entries at the LRU end go on every put; then, if
     * the stripe is still full, its least recently used entry. */
    for (int i = 0; i < 2 && s->lru_tail && now_ns >= s->lru_tail->expires_ns; i++) {
        struct entry *t = s->lru_tail;
        remove_entry(s, t);
        drop[ndrop++] = t;
    }
    if (s->n >= s->max && s->lru_tail) {
        struct entry *t = s->lru_tail;
        remove_entry(s, t);
        drop[ndrop++] = t;
    }
    if (s->n < s->max) {
        n->chain = s->buckets[b];
        s->buckets[b] = n;
        lru_push(s, n);
        s->n++;
        n = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < ndrop; i++)
        entry_free(drop[i]);
    if (n)
        entry_free(n);
}

size_t pt_introspect_cache_count(struct pt_introspect_cache *c)
{
    size_t n = 0;
    for (unsigned i = 0; i < c->nstripes; i++) {
        pthread_mutex_lock(&c->stripes[i].mu);
        n += c->stripes[i].n;
        pthread_mutex_unlock(&c->stripes[i].mu);
    }
    return n;
}
