/*
 * Per-route authentication decision counters (see stats.h).
 */
#include "auth/stats.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "auth/method.h"
#include "core/arena.h"
#include "core/worker.h"

#define SLOTS 8
#define ROWS (PT_AUTH_STATS_METHODS + 1) /* the last row is "none" */

struct slot {
    alignas(64) _Atomic uint64_t counts[ROWS][PT_AUTH_NDECISIONS];
};

struct pt_auth_stats {
    struct pt_auth_stats *next;
    char *name;
    unsigned refs;    /* under mu */
    unsigned methods; /* under mu: every method any snapshot gave the route */
    struct slot slots[SLOTS];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct pt_auth_stats *all;

struct pt_auth_stats *pt_auth_stats_ref(const char *name, unsigned methods_mask)
{
    pthread_mutex_lock(&mu);
    struct pt_auth_stats *st = all;
    while (st && strcmp(st->name, name) != 0)
        st = st->next;
    if (!st) {
        st = pt_xcalloc(1, sizeof(*st));
        st->name = pt_xstrdup(name);
        st->next = all;
        all = st;
    }
    st->refs++;
    st->methods |= methods_mask;
    pthread_mutex_unlock(&mu);
    return st;
}

void pt_auth_stats_unref(struct pt_auth_stats *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&mu);
    if (--st->refs == 0) {
        struct pt_auth_stats **pp = &all;
        while (*pp != st)
            pp = &(*pp)->next;
        *pp = st->next;
        free(st->name);
        free(st);
    }
    pthread_mutex_unlock(&mu);
}

void pt_auth_stats_count(struct pt_auth_stats *st, int method, enum pt_auth_decision d)
{
    if (!st || (unsigned)d >= PT_AUTH_NDECISIONS)
        return;
    unsigned row = method >= 0 && method < PT_AUTH_STATS_METHODS ? (unsigned)method : ROWS - 1;
    struct pt_worker *w = pt_worker_current();
    unsigned slot = w ? w->id % SLOTS : 0;
    atomic_fetch_add_explicit(&st->slots[slot].counts[row][d], 1, memory_order_relaxed);
}

const char *pt_auth_decision_name(enum pt_auth_decision d)
{
    static const char *const names[PT_AUTH_NDECISIONS] = {"allowed", "anonymous", "denied",
                                                          "forbidden"};
    return (unsigned)d < PT_AUTH_NDECISIONS ? names[d] : "?";
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pt_auth_stats_entry *)a)->route,
                  ((const struct pt_auth_stats_entry *)b)->route);
}

struct pt_auth_stats_entry *pt_auth_stats_list(size_t *n)
{
    pthread_mutex_lock(&mu);
    size_t cnt = 0;
    for (struct pt_auth_stats *st = all; st; st = st->next)
        cnt++;
    struct pt_auth_stats_entry *list = pt_xcalloc(cnt ? cnt : 1, sizeof(*list));
    size_t i = 0;
    for (struct pt_auth_stats *st = all; st; st = st->next, i++) {
        struct pt_auth_stats_entry *e = &list[i];
        e->route = pt_xstrdup(st->name);
        e->rows = pt_xcalloc(ROWS, sizeof(*e->rows));
        for (unsigned r = 0; r < ROWS; r++) {
            const struct pt_auth_method *m = r < ROWS - 1 ? pt_auth_method_at(r) : NULL;
            if (r < ROWS - 1 && (!m || !(st->methods & (1u << r))))
                continue;
            struct pt_auth_stats_row *row = &e->rows[e->nrows++];
            row->method = m ? m->name : "none";
            for (unsigned s = 0; s < SLOTS; s++)
                for (unsigned d = 0; d < PT_AUTH_NDECISIONS; d++)
                    row->counts[d] +=
                        atomic_load_explicit(&st->slots[s].counts[r][d], memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&mu);
    qsort(list, cnt, sizeof(*list), entry_cmp);
    *n = cnt;
    return list;
}

void pt_auth_stats_list_free(struct pt_auth_stats_entry *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i].route);
        free(list[i].rows);
    }
    free(list);
}
