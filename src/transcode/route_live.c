/*
 * Live routes: a route's Transcode recompiled from each pool the
 * reflection registry publishes for its service. See route_live.h.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/log.h"
#include "portico/errors.h"
#include "transcode/route_live.h"

/* One compiled generation, immutable once installed. */
struct state {
    atomic_uint refs;
    uint64_t generation;       /* registry generation; 0: nothing fetched */
    struct pt_tc_route *route; /* NULL: see why */
    char why[512];
};

/* A worker's hold on one state; worker-local counter. */
struct pt_tc_live_hold {
    struct state *st;
    uint32_t users; /* requests, + 1 while it is its slot's current hold */
};

/* One per worker, on its own cache line. */
struct slot {
    _Alignas(64) uint64_t version;
    struct pt_tc_live_hold *hold;
};

struct pt_tc_live {
    atomic_uint refs; /* the owner's, + one per publish hook at work */
    Portico__Config__V1__Transcode *tc;
    struct pt_tc_reflect_registry *reg;
    char *service;
    char *where;
    pthread_mutex_t compile_mu; /* one compile at a time; held across install */
    pthread_mutex_t mu;         /* cur (short: workers take it on a new version) */
    struct state *cur;
    _Atomic uint64_t version; /* bumped on every install */
    struct slot *slots;
    unsigned nslots;
    struct pt_tc_live *next; /* in the list, under list_mu */
};

static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pt_tc_live *list_head;

static struct state *state_new(uint64_t gen, struct pt_tc_route *route)
{
    struct state *st = pt_xcalloc(1, sizeof(*st));
    atomic_init(&st->refs, 1);
    st->generation = gen;
    st->route = route;
    return st;
}

static void state_ref(struct state *st)
{
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
}

static void state_unref(struct state *st)
{
    if (st && atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) == 1) {
        pt_tc_route_free(st->route); /* drops its pool reference too */
        free(st);
    }
}

static void hold_drop(struct pt_tc_live_hold *h)
{
    if (h && --h->users == 0) {
        state_unref(h->st);
        free(h);
    }
}

static void live_unref(struct pt_tc_live *l)
{
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* No request can reach l any more: every slot hold is down to its
     * slot's own use. */
    for (unsigned i = 0; i < l->nslots; i++)
        hold_drop(l->slots[i].hold);
    free(l->slots);
    state_unref(l->cur);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->compile_mu);
    portico__config__v1__transcode__free_unpacked(l->tc, NULL);
    free(l->service);
    free(l->where);
    free(l);
}

/* Install st (the caller's reference moves) unless l already has a newer
 * or equal generation. Under l->compile_mu. */
static void install(struct pt_tc_live *l, struct state *st)
{
    pthread_mutex_lock(&l->mu);
    struct state *old = l->cur;
    if (st->generation <= old->generation) {
        old = st;
    } else {
        l->cur = st;
        atomic_fetch_add_explicit(&l->version, 1, memory_order_release);
    }
    pthread_mutex_unlock(&l->mu);
    state_unref(old); /* holds keep it while requests use it */
}

/* First line of diag's text, without the position prefix the route
 * compile puts before each message (the operator reads it in a reply). */
static void first_error(const struct pt_diag *d, const char *where, char *buf, size_t n)
{
    const char *t = pt_diag_text(d);
    if (!t || !*t) {
        snprintf(buf, n, "invalid");
        return;
    }
    size_t wl = strlen(where);
    if (wl && strncmp(t, where, wl) == 0 && t[wl] == ':' && t[wl + 1] == ' ')
        t += wl + 2;
    const char *nl = strchr(t, '\n');
    size_t len = nl ? (size_t)(nl - t) : strlen(t);
    snprintf(buf, n, "%.*s", (int)len, t);
}

int pt_tc_live_refresh(struct pt_tc_live *l)
{
    /* cur changes only under compile_mu, so reading it here needs no mu;
     * workers wait for mu only while a pointer is swapped, never for a
     * compile. */
    pthread_mutex_lock(&l->compile_mu);
    uint64_t gen = 0;
    struct pt_descpool *pool = pt_tc_reflect_pool_ref(l->reg, l->service, &gen);
    if (!pool) {
        pthread_mutex_unlock(&l->compile_mu);
        return PT_ERR_NOT_FOUND;
    }
    if (gen <= l->cur->generation) {
        int rc = l->cur->route ? 0 : PT_ERR_INVALID;
        pthread_mutex_unlock(&l->compile_mu);
        pt_descpool_unref(pool);
        return rc;
    }
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_tc_route *r = pt_tc_route_compile(l->tc, pool, l->where, &d);
    struct state *st = state_new(gen, r);
    if (!r) {
        char first[384];
        first_error(&d, l->where, first, sizeof(first));
        snprintf(st->why, sizeof(st->why),
                 "the descriptors of service %s (reflection generation %llu) do not fit this "
                 "route: %s",
                 l->service, (unsigned long long)gen, first);
        /* Once per generation: workers only read the state. */
        pt_log_error("transcode: %s: %s", l->where, st->why);
    }
    pt_diag_fini(&d);
    pt_descpool_unref(pool); /* the route holds its own */
    install(l, st);
    pthread_mutex_unlock(&l->compile_mu);
    return r ? 0 : PT_ERR_INVALID;
}

/* The registry published service `name`: refresh its live routes. */
static void on_publish(void *ctx, struct pt_tc_reflect_registry *reg, const char *name,
                       uint64_t generation)
{
    (void)ctx;
    (void)generation;
    struct pt_tc_live **v = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&list_mu);
    for (struct pt_tc_live *l = list_head; l; l = l->next) {
        if (l->reg != reg || strcmp(l->service, name) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            v = pt_xrealloc(v, cap * sizeof(*v));
        }
        atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
        v[n++] = l;
    }
    pthread_mutex_unlock(&list_mu);
    /* Compiles run outside list_mu: a snapshot freed meanwhile unlists
     * without waiting, and its live route goes with the last unref here. */
    for (size_t i = 0; i < n; i++) {
        pt_tc_live_refresh(v[i]);
        live_unref(v[i]);
    }
    free(v);
}

struct pt_tc_live *pt_tc_live_new(const Portico__Config__V1__Transcode *tc,
                                  struct pt_tc_reflect_registry *reg, const char *service,
                                  const char *where, unsigned nslots)
{
    struct pt_tc_live *l = pt_xcalloc(1, sizeof(*l));
    atomic_init(&l->refs, 1);
    /* A copy: the publish hook may outlive the snapshot that holds tc. */
    size_t len = portico__config__v1__transcode__get_packed_size(tc);
    uint8_t *buf = pt_xmalloc(len + 1);
    portico__config__v1__transcode__pack(tc, buf);
    l->tc = portico__config__v1__transcode__unpack(NULL, len, buf);
    free(buf);
    if (!l->tc)
        pt_abort_oom(len);
    l->reg = reg;
    l->service = pt_xstrdup(service);
    l->where = pt_xstrdup(where ? where : "");
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->compile_mu, NULL);
    l->cur = state_new(0, NULL);
    snprintf(l->cur->why, sizeof(l->cur->why),
             "descriptors for service %s not fetched yet (gRPC server reflection)", service);
    atomic_init(&l->version, 1);
    l->nslots = nslots;
    if (nslots) {
        l->slots = aligned_alloc(_Alignof(struct slot), nslots * sizeof(*l->slots));
        if (!l->slots)
            pt_abort_oom(nslots * sizeof(*l->slots));
        memset(l->slots, 0, nslots * sizeof(*l->slots));
    }
    pt_tc_reflect_on_publish(reg, on_publish, NULL);
    pthread_mutex_lock(&list_mu);
    l->next = list_head;
    list_head = l;
    pthread_mutex_unlock(&list_mu);
    /* Listed first: a publish from now on reaches l; one before is here. */
    pt_tc_live_refresh(l);
    return l;
}

void pt_tc_live_free(struct pt_tc_live *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&list_mu);
    for (struct pt_tc_live **p = &list_head; *p; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            break;
        }
    }
    pthread_mutex_unlock(&list_mu);
    live_unref(l);
}

/* A new hold on l's current state; *version gets the version it is. */
static struct pt_tc_live_hold *hold_current(struct pt_tc_live *l, uint64_t *version)
{
    struct pt_tc_live_hold *h = pt_xmalloc(sizeof(*h));
    pthread_mutex_lock(&l->mu);
    h->st = l->cur;
    state_ref(h->st);
    *version = atomic_load_explicit(&l->version, memory_order_relaxed);
    pthread_mutex_unlock(&l->mu);
    h->users = 1;
    return h;
}

const struct pt_tc_route *pt_tc_live_acquire(struct pt_tc_live *l, unsigned worker,
                                             struct pt_tc_live_hold **hold, const char **why)
{
    struct pt_tc_live_hold *h;
    if (worker < l->nslots) {
        struct slot *s = &l->slots[worker];
        uint64_t v = atomic_load_explicit(&l->version, memory_order_acquire);
        if (!s->hold || s->version != v) {
            uint64_t got = 0;
            struct pt_tc_live_hold *nh = hold_current(l, &got);
            hold_drop(s->hold); /* requests still on it keep it */
            s->hold = nh;
            s->version = got;
        }
        h = s->hold;
        h->users++;
    } else {
        uint64_t unused;
        h = hold_current(l, &unused);
    }
    *hold = h;
    *why = h->st->why;
    return h->st->route;
}

void pt_tc_live_release(struct pt_tc_live_hold *hold)
{
    hold_drop(hold);
}

uint64_t pt_tc_live_generation(struct pt_tc_live *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t g = l->cur->generation;
    pthread_mutex_unlock(&l->mu);
    return g;
}

struct pt_tc_route *pt_tc_route_new_live(struct pt_tc_live *live)
{
    struct pt_tc_route *r = pt_xcalloc(1, sizeof(*r));
    r->live = live;
    return r;
}
