/*
 * Local rate-limit table: striped locks, keyed hashing, LRU and idle
 * eviction (see table.h).
 */
#include "ratelimit/table.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>
#include <sys/random.h>

#include "core/arena.h"

struct entry {
    struct entry *hnext;
    struct entry *prev, *next; /* LRU list: head = most recent */
    uint64_t hash;
    uint64_t idle_at_ns; /* the quota is whole from then on */
    struct pt_rl_state st;
    uint16_t len;
    char key[];
};

struct stripe {
    alignas(64) pthread_mutex_t mu;
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    struct entry lru; /* sentinel */
};

struct pt_rl_table {
    struct pt_rl_params p;
    uint64_t sipkey[2];
    size_t max_per_stripe;
    _Atomic uint64_t evictions_busy;
    struct stripe stripes[PT_RL_TABLE_STRIPES];
};

/* --- SipHash-2-4 (Aumasson and Bernstein) -------------------------------- */

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND           \
    do {                   \
        v0 += v1;          \
        v1 = rotl(v1, 13); \
        v1 ^= v0;          \
        v0 = rotl(v0, 32); \
        v2 += v3;          \
        v3 = rotl(v3, 16); \
        v3 ^= v2;          \
        v0 += v3;          \
        v3 = rotl(v3, 21); \
        v3 ^= v0;          \
        v2 += v1;          \
        v1 = rotl(v1, 17); \
        v1 ^= v2;          \
        v2 = rotl(v2, 32); \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t pt_rl_siphash(const uint64_t k[2], const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ k[0];
    uint64_t v1 = 0x646f72616e646f6dull ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ k[0];
    uint64_t v3 = 0x7465646279746573ull ^ k[1];
    size_t end = len - len % 8;
    for (size_t i = 0; i < end; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++)
        b |= (uint64_t)in[end + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* --- table ---------------------------------------------------------------- */

struct pt_rl_table *pt_rl_table_new(const struct pt_rl_params *p, size_t max_keys)
{
    struct pt_rl_table *t = pt_xcalloc(1, sizeof(*t));
    t->p = *p;
    if (!max_keys)
        max_keys = PT_RL_DEFAULT_MAX_KEYS;
    t->max_per_stripe = (max_keys + PT_RL_TABLE_STRIPES - 1) / PT_RL_TABLE_STRIPES;
    if (getrandom(t->sipkey, sizeof(t->sipkey), 0) != (ssize_t)sizeof(t->sipkey)) {
        /* No entropy yet (very early boot): mix the address and time. */
        t->sipkey[0] = (uint64_t)(uintptr_t)t ^ 0x9e3779b97f4a7c15ull;
        t->sipkey[1] = (uint64_t)(uintptr_t)&t ^ 0xc2b2ae3d27d4eb4full;
    }
    for (unsigned i = 0; i < PT_RL_TABLE_STRIPES; i++) {
        struct stripe *s = &t->stripes[i];
        pthread_mutex_init(&s->mu, NULL);
        s->nbuckets = 16;
        s->buckets = pt_xcalloc(s->nbuckets, sizeof(*s->buckets));
        s->lru.next = s->lru.prev = &s->lru;
    }
    return t;
}

void pt_rl_table_free(struct pt_rl_table *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < PT_RL_TABLE_STRIPES; i++) {
        struct stripe *s = &t->stripes[i];
        struct entry *e = s->lru.next;
        while (e != &s->lru) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(t);
}

static void lru_unlink(struct entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(struct stripe *s, struct entry *e)
{
    e->next = s->lru.next;
    e->prev = &s->lru;
    s->lru.next->prev = e;
    s->lru.next = e;
}

static void remove_entry(struct stripe *s, struct entry *e)
{
    struct entry **pp = &s->buckets[(e->hash >> 6) & (s->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(e);
    s->count--;
    free(e);
}

static void grow(struct stripe *s)
{
    size_t nb = s->nbuckets * 2;
    struct entry **b = pt_xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct entry *e = s->buckets[i];
        while (e) {
            struct entry *next = e->hnext;
            size_t k = (e->hash >> 6) & (nb - 1);
            e->hnext = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

/* The stripe comes from the hash's low 6 bits, the bucket from the rest. */
static struct stripe *stripe_of(struct pt_rl_table *t, uint64_t h)
{
    return &t->stripes[h & (PT_RL_TABLE_STRIPES - 1)];
}

static struct entry *find(struct stripe *s, uint64_t h, const void *key, size_t len)
{
    for (struct entry *e = s->buckets[(h >> 6) & (s->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

static void drop_idle(struct stripe *s, uint64_t now, unsigned max)
{
    while (max-- && s->lru.prev != &s->lru && s->lru.prev->idle_at_ns <= now)
        remove_entry(s, s->lru.prev);
}

static uint64_t idle_at(const struct pt_rl_params *p, const struct pt_rl_state *st, uint64_t now,
                        const struct pt_rl_decision *d)
{
    if (p->algorithm == PT_RL_SLIDING_WINDOW)
        return st->stamp_ns + 2 * p->window_ns;
    return now + d->reset_ns < now ? UINT64_MAX : now + d->reset_ns;
}

/* A new entry for key in s (locked), evicting the LRU one when full. */
static struct entry *insert_locked(struct pt_rl_table *t, struct stripe *s, uint64_t h,
                                   const void *key, size_t len, uint64_t now_ns)
{
    if (s->count >= t->max_per_stripe) {
        struct entry *old = s->lru.prev;
        if (old->idle_at_ns > now_ns)
            atomic_fetch_add_explicit(&t->evictions_busy, 1, memory_order_relaxed);
        remove_entry(s, old);
    }
    struct entry *e = pt_xcalloc(1, sizeof(*e) + len);
    e->hash = h;
    e->len = (uint16_t)len;
    memcpy(e->key, key, len);
    if (s->count + 1 > s->nbuckets && s->nbuckets < (1u << 20))
        grow(s);
    struct entry **b = &s->buckets[(h >> 6) & (s->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    s->count++;
    lru_push_front(s, e);
    return e;
}

/* key's entry (created when absent, when create), moved to the front of
 * its stripe's LRU list, with the stripe locked (the caller unlocks). */
static struct entry *lookup_locked(struct pt_rl_table *t, const void *key, size_t len,
                                   uint64_t now_ns, bool create, struct stripe **out)
{
    uint64_t h = pt_rl_siphash(t->sipkey, key, len);
    struct stripe *s = stripe_of(t, h);
    pthread_mutex_lock(&s->mu);
    *out = s;
    drop_idle(s, now_ns, 2);
    struct entry *e = find(s, h, key, len);
    if (e) {
        lru_unlink(e);
        lru_push_front(s, e);
    } else if (create) {
        e = insert_locked(t, s, h, key, len, now_ns);
    }
    return e;
}

void pt_rl_table_decide(struct pt_rl_table *t, const void *key, size_t len, uint64_t now_ns,
                        uint64_t n, struct pt_rl_decision *d)
{
    if (len > UINT16_MAX)
        len = UINT16_MAX;
    struct stripe *s;
    struct entry *e = lookup_locked(t, key, len, now_ns, true, &s);
    pt_rl_decide(&t->p, &e->st, now_ns, n, d);
    e->idle_at_ns = idle_at(&t->p, &e->st, now_ns, d);
    pthread_mutex_unlock(&s->mu);
}

void pt_rl_table_refund(struct pt_rl_table *t, const void *key, size_t len, uint64_t charged_ns,
                        uint64_t n)
{
    if (len > UINT16_MAX)
        len = UINT16_MAX;
    uint64_t h = pt_rl_siphash(t->sipkey, key, len);
    struct stripe *s = stripe_of(t, h);
    pthread_mutex_lock(&s->mu);
    struct entry *e = find(s, h, key, len);
    if (e)
        pt_rl_refund(&t->p, &e->st, charged_ns, n);
    pthread_mutex_unlock(&s->mu);
}

/* In lease mode the state holds: curr = tokens, stamp_ns = their expiry,
 * prev = "Redis is empty" until then (ns), level = a fetch is in flight
 * until then (ns). */
enum pt_rl_lease pt_rl_table_lease_take(struct pt_rl_table *t, const void *key, size_t len,
                                        uint64_t now_ns, uint64_t fetch_ns, uint64_t *left)
{
    if (len > UINT16_MAX)
        len = UINT16_MAX;
    struct stripe *s;
    struct entry *e = lookup_locked(t, key, len, now_ns, true, &s);
    enum pt_rl_lease r;
    if (e->st.curr > 0 && e->st.stamp_ns > now_ns) {
        e->st.curr--;
        *left = e->st.curr;
        r = PT_RL_LEASE_TOKEN;
    } else if (e->st.prev > now_ns) {
        *left = e->st.prev - now_ns;
        r = PT_RL_LEASE_DENIED;
    } else if (e->st.level > now_ns) {
        r = PT_RL_LEASE_BUSY;
    } else {
        e->st.level = now_ns + fetch_ns;
        if (e->idle_at_ns < now_ns + fetch_ns)
            e->idle_at_ns = now_ns + fetch_ns;
        r = PT_RL_LEASE_MISS;
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

void pt_rl_table_lease_deny(struct pt_rl_table *t, const void *key, size_t len, uint64_t now_ns,
                            uint64_t retry_ns, uint64_t ttl_ns)
{
    if (len > UINT16_MAX)
        len = UINT16_MAX;
    struct stripe *s;
    struct entry *e = lookup_locked(t, key, len, now_ns, true, &s);
    e->st.prev = now_ns + (retry_ns < ttl_ns ? retry_ns : ttl_ns);
    e->st.level = 0;
    if (e->idle_at_ns < e->st.prev)
        e->idle_at_ns = e->st.prev;
    pthread_mutex_unlock(&s->mu);
}

void pt_rl_table_lease_add(struct pt_rl_table *t, const void *key, size_t len, uint64_t now_ns,
                           uint64_t k, uint64_t ttl_ns)
{
    if (!k)
        return;
    if (len > UINT16_MAX)
        len = UINT16_MAX;
    struct stripe *s;
    struct entry *e = lookup_locked(t, key, len, now_ns, true, &s);
    if (e->st.stamp_ns <= now_ns)
        e->st.curr = 0; /* expired tokens are gone */
    e->st.curr += k;
    e->st.stamp_ns = now_ns + ttl_ns;
    e->st.prev = 0;
    e->st.level = 0;
    e->idle_at_ns = e->st.stamp_ns;
    pthread_mutex_unlock(&s->mu);
}

size_t pt_rl_table_count(struct pt_rl_table *t)
{
    size_t n = 0;
    for (unsigned i = 0; i < PT_RL_TABLE_STRIPES; i++) {
        pthread_mutex_lock(&t->stripes[i].mu);
        n += t->stripes[i].count;
        pthread_mutex_unlock(&t->stripes[i].mu);
    }
    return n;
}

uint64_t pt_rl_table_evictions_busy(const struct pt_rl_table *t)
{
    return atomic_load_explicit(&t->evictions_busy, memory_order_relaxed);
}
