/*
 * Per-rule decision counters (see stats.h).
 */
#include "ratelimit/stats.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/worker.h"

#define SLOTS 8

struct slot {
    alignas(64) _Atomic uint64_t counts[PT_RL_NOUTCOMES];
};

struct pt_rl_stats {
    struct pt_rl_stats *next;
    char *name;
    unsigned refs; /* under mu */
    struct slot slots[SLOTS];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pt_rl_stats *all;

struct pt_rl_stats *pt_rl_stats_ref(const char *name)
{
    pthread_mutex_lock(&mu);
    struct pt_rl_stats *st = all;
    while (st && strcmp(st->name, name) != 0)
        st = st->next;
    if (!st) {
        st = pt_xcalloc(1, sizeof(*st));
        st->name = pt_xstrdup(name);
        st->next = all;
        all = st;
    }
    st->refs++;
    pthread_mutex_unlock(&mu);
    return st;
}

void pt_rl_stats_unref(struct pt_rl_stats *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&mu);
    if (--st->refs == 0) {
        struct pt_rl_stats **pp = &all;
        while (*pp != st)
            pp = &(*pp)->next;
        *pp = st->next;
        free(st->name);
        free(st);
    }
    pthread_mutex_unlock(&mu);
}

void pt_rl_stats_count(struct pt_rl_stats *st, enum pt_rl_outcome o)
{
    struct pt_worker *w = pt_worker_current();
    unsigned slot = w ? w->id % SLOTS : 0;
    atomic_fetch_add_explicit(&st->slots[slot].counts[o], 1, memory_order_relaxed);
}

const char *pt_rl_outcome_name(enum pt_rl_outcome o)
{
    static const char *const names[PT_RL_NOUTCOMES] = {
        "allowed", "rejected", "shadow_rejected", "queued", "failed_open", "failed_closed",
    };
    return (unsigned)o < PT_RL_NOUTCOMES ? names[o] : "?";
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pt_rl_stats_entry *)a)->rule,
                  ((const struct pt_rl_stats_entry *)b)->rule);
}

struct pt_rl_stats_entry *pt_rl_stats_list(size_t *n)
{
    pthread_mutex_lock(&mu);
    size_t cnt = 0;
    for (struct pt_rl_stats *st = all; st; st = st->next)
        cnt++;
    struct pt_rl_stats_entry *list = pt_xcalloc(cnt ? cnt : 1, sizeof(*list));
    size_t i = 0;
    for (struct pt_rl_stats *st = all; st; st = st->next, i++) {
        list[i].rule = pt_xstrdup(st->name);
        for (unsigned s = 0; s < SLOTS; s++)
            for (unsigned o = 0; o < PT_RL_NOUTCOMES; o++)
                list[i].counts[o] +=
                    atomic_load_explicit(&st->slots[s].counts[o], memory_order_relaxed);
    }
    pthread_mutex_unlock(&mu);
    qsort(list, cnt, sizeof(*list), entry_cmp);
    *n = cnt;
    return list;
}

void pt_rl_stats_list_free(struct pt_rl_stats_entry *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i].rule);
    free(list);
}
