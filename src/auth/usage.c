/*
 * API-key usage records (see usage.h).
 */
#include "auth/usage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

#define TOUCH_GRANULARITY_NS 1000000000ull

struct pt_auth_usage {
    struct pt_auth_usage *next;
    char *name;
    unsigned refs;            /* under mu */
    _Atomic uint64_t used_ns; /* written by workers */
    uint64_t flushed_ns;      /* under mu */
};

#define NBUCKETS 1024u

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pt_auth_usage *buckets[NBUCKETS];

static struct pt_auth_usage **bucket(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a: names are operators' own, not hostile */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &buckets[h % NBUCKETS];
}

struct pt_auth_usage *pt_auth_usage_ref(const char *name)
{
    pthread_mutex_lock(&mu);
    struct pt_auth_usage **b = bucket(name), *u = *b;
    while (u && strcmp(u->name, name) != 0)
        u = u->next;
    if (!u) {
        u = pt_xcalloc(1, sizeof(*u));
        u->name = pt_xstrdup(name);
        u->next = *b;
        *b = u;
    }
    u->refs++;
    pthread_mutex_unlock(&mu);
    return u;
}

void pt_auth_usage_unref(struct pt_auth_usage *u)
{
    if (!u)
        return;
    pthread_mutex_lock(&mu);
    if (--u->refs == 0) {
        struct pt_auth_usage **pp = bucket(u->name);
        while (*pp != u)
            pp = &(*pp)->next;
        *pp = u->next;
        free(u->name);
        free(u);
    }
    pthread_mutex_unlock(&mu);
}

void pt_auth_usage_touch(struct pt_auth_usage *u, uint64_t now_ns)
{
    /* A load of a line every worker only reads is cheap; a store is made
     * at most once per second, so a hot key does not bounce its line. */
    uint64_t prev = atomic_load_explicit(&u->used_ns, memory_order_relaxed);
    while (prev == 0 || now_ns >= prev + TOUCH_GRANULARITY_NS) {
        /* A compare-and-swap, so that a slower worker's older time never
         * replaces a newer one. */
        if (atomic_compare_exchange_weak_explicit(&u->used_ns, &prev, now_ns, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pt_auth_usage_entry *)a)->name,
                  ((const struct pt_auth_usage_entry *)b)->name);
}

size_t pt_auth_usage_collect(struct pt_auth_usage_batch *b)
{
    memset(b, 0, sizeof(*b));
    size_t cap = 0;
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < NBUCKETS; i++)
        for (struct pt_auth_usage *u = buckets[i]; u; u = u->next)
            cap++;
    b->v = pt_xcalloc(cap ? cap : 1, sizeof(*b->v));
    for (unsigned i = 0; i < NBUCKETS; i++)
        for (struct pt_auth_usage *u = buckets[i]; u; u = u->next) {
            uint64_t used = atomic_load_explicit(&u->used_ns, memory_order_relaxed);
            if (used <= u->flushed_ns)
                continue;
            u->refs++; /* the batch holds the record until batch_fini */
            b->v[b->n++] = (struct pt_auth_usage_entry){u->name, used, u};
        }
    pthread_mutex_unlock(&mu);
    qsort(b->v, b->n, sizeof(*b->v), entry_cmp);
    return b->n;
}

void pt_auth_usage_flushed(const struct pt_auth_usage_batch *b)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i].used_ns > b->v[i].rec->flushed_ns)
            b->v[i].rec->flushed_ns = b->v[i].used_ns;
    pthread_mutex_unlock(&mu);
}

void pt_auth_usage_batch_fini(struct pt_auth_usage_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        pt_auth_usage_unref(b->v[i].rec);
    free(b->v);
    memset(b, 0, sizeof(*b));
}

bool pt_auth_usage_last(const char *name, uint64_t *ns)
{
    bool found = false;
    pthread_mutex_lock(&mu);
    for (struct pt_auth_usage *u = *bucket(name); u; u = u->next)
        if (strcmp(u->name, name) == 0) {
            found = u->flushed_ns != 0;
            *ns = u->flushed_ns;
            break;
        }
    pthread_mutex_unlock(&mu);
    return found;
}
