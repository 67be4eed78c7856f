/*
 * Retry budgets and backoff (retry.h).
 */
#include "upstream/retry.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/named.h"

struct pt_retry_budget {
    struct pt_named named; /* the service's name, references (core/named.h) */
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t retries;
};

static struct pt_named_table reg = PT_NAMED_TABLE_INIT;

uint64_t pt_retry_backoff_cap_ms(uint32_t base_ms, uint32_t max_ms, uint32_t n)
{
    if (n == 0)
        n = 1;
    uint64_t cap = base_ms;
    for (uint32_t i = 1; i < n && cap < max_ms; i++)
        cap <<= 1;
    return cap < max_ms ? cap : max_ms;
}

uint64_t pt_retry_backoff_ms(uint32_t base_ms, uint32_t max_ms, uint32_t n, uint64_t rnd)
{
    uint64_t cap = pt_retry_backoff_cap_ms(base_ms, max_ms, n);
    return rnd % (cap + 1);
}

bool pt_retry_budget_allows(uint64_t active_requests, uint64_t active_retries, uint32_t percent,
                            uint32_t min_concurrency)
{
    uint64_t limit = active_requests * percent / 100;
    if (limit < min_concurrency)
        limit = min_concurrency;
    return active_retries < limit;
}

static struct pt_named *budget_make(const char *key, const void *arg)
{
    (void)arg;
    struct pt_retry_budget *b = pt_xcalloc(1, sizeof(*b));
    b->named.key = pt_xstrdup(key);
    atomic_init(&b->requests, 0);
    atomic_init(&b->retries, 0);
    return &b->named;
}

static void budget_destroy(struct pt_named *n)
{
    free(n->key);
    free(PT_NAMED_OF(n, struct pt_retry_budget, named));
}

static const struct pt_named_ops budget_ops = {budget_make, NULL, budget_destroy};

struct pt_retry_budget *pt_retry_budget_ref(const char *name)
{
    return PT_NAMED_OF(pt_named_ref(&reg, name, &budget_ops, NULL), struct pt_retry_budget, named);
}

void pt_retry_budget_unref(struct pt_retry_budget *b)
{
    if (b)
        pt_named_unref(&reg, &b->named, &budget_ops);
}

void pt_retry_budget_request_start(struct pt_retry_budget *b)
{
    atomic_fetch_add_explicit(&b->requests, 1, memory_order_relaxed);
}

void pt_retry_budget_request_end(struct pt_retry_budget *b)
{
    atomic_fetch_sub_explicit(&b->requests, 1, memory_order_relaxed);
}

bool pt_retry_budget_retry_start(struct pt_retry_budget *b, uint32_t percent,
                                 uint32_t min_concurrency)
{
    uint64_t cur = atomic_load_explicit(&b->retries, memory_order_relaxed);
    for (;;) {
        uint64_t reqs = atomic_load_explicit(&b->requests, memory_order_relaxed);
        if (!pt_retry_budget_allows(reqs, cur, percent, min_concurrency))
            return false;
        /* A compare-and-swap, so concurrent workers cannot both take the
         * last slot. */
        if (atomic_compare_exchange_weak_explicit(&b->retries, &cur, cur + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

void pt_retry_budget_retry_end(struct pt_retry_budget *b)
{
    atomic_fetch_sub_explicit(&b->retries, 1, memory_order_relaxed);
}

void pt_retry_budget_read(const struct pt_retry_budget *b, uint64_t *active_requests,
                          uint64_t *active_retries)
{
    *active_requests = atomic_load_explicit(&b->requests, memory_order_relaxed);
    *active_retries = atomic_load_explicit(&b->retries, memory_order_relaxed);
}
