#include "upstream/pool.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/time.h"
#include "http1/client.h"
#include "http2/client.h"

#define NBUCKETS 256

struct up_pool;

/* An exchange waiting for a connection slot. */
struct up_waiter {
    struct pt_up_stream up;
    struct pt_exchange *x;
    const struct pt_upstream_events *ev;
    const struct pt_service *svc;
    const struct pt_endpoint *ep;
    struct up_pool *pool;
    struct up_waiter *prev;
    struct up_waiter *next;
};

struct conn_entry {
    struct conn_entry *prev;
    struct conn_entry *next;
    struct up_pool *pool;
    union {
        struct pt_h1_client *h1;
        struct pt_h2_client *h2;
    } u;
    bool idle;
};

struct up_pool {
    struct up_pool *hnext;
    char *key;
    bool h2;
    /* The endpoint left the current snapshot: connections close once idle
     * (see pt_up_worker_sweep). The pool itself stays, as older snapshots
     * still in use may cache it. */
    bool draining;
    uint32_t nconns;
    struct conn_entry *conns; /* h2: all; h1: busy and idle */
    struct up_waiter *wait_head;
    struct up_waiter *wait_tail;
};

struct pt_up_worker {
    struct pt_worker *w;
    struct up_pool *pools[NBUCKETS];
};

static uint32_t hash_str(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ '|') * 16777619u;
    for (const char *p = b; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

void pt_up_worker_init(struct pt_worker *w)
{
    struct pt_up_worker *uw = pt_xcalloc(1, sizeof(*uw));
    uw->w = w;
    w->up = uw;
}

static struct up_pool *pool_find(struct pt_up_worker *uw, const struct pt_service *svc,
                                 const struct pt_endpoint *ep)
{
    uint32_t b = hash_str(svc->pool_prefix, ep->key) % NBUCKETS;
    size_t plen = strlen(svc->pool_prefix);
    for (struct up_pool *p = uw->pools[b]; p; p = p->hnext)
        if (strncmp(p->key, svc->pool_prefix, plen) == 0 && p->key[plen] == '|' &&
            strcmp(p->key + plen + 1, ep->key) == 0)
            return p;
    struct up_pool *p = pt_xcalloc(1, sizeof(*p));
    size_t n = plen + 1 + strlen(ep->key) + 1;
    p->key = pt_xmalloc(n);
    snprintf(p->key, n, "%s|%s", svc->pool_prefix, ep->key);
    p->h2 = svc->protocol == PT_UP_H2;
    p->hnext = uw->pools[b];
    uw->pools[b] = p;
    return p;
}

static struct up_pool *pool_get(struct pt_up_worker *uw, const struct pt_service *svc,
                                const struct pt_endpoint *ep)
{
    unsigned id = uw->w->id;
    struct up_pool *p = ep->pool_cache ? ep->pool_cache[id] : NULL;
    if (p)
        return p;
    p = pool_find(uw, svc, ep);
    if (ep->pool_cache)
        ep->pool_cache[id] = p;
    return p;
}

static void entry_link(struct up_pool *p, struct conn_entry *e)
{
    e->pool = p;
    e->prev = NULL;
    e->next = p->conns;
    if (p->conns)
        p->conns->prev = e;
    p->conns = e;
    p->nconns++;
}

static void entry_unlink(struct conn_entry *e)
{
    struct up_pool *p = e->pool;
    if (e->prev)
        e->prev->next = e->next;
    else
        p->conns = e->next;
    if (e->next)
        e->next->prev = e->prev;
    p->nconns--;
}

/* --- waiters -------------------------------------------------------------- */

static void waiter_unlink(struct up_waiter *wt)
{
    struct up_pool *p = wt->pool;
    if (wt->prev)
        wt->prev->next = wt->next;
    else
        p->wait_head = wt->next;
    if (wt->next)
        wt->next->prev = wt->prev;
    else
        p->wait_tail = wt->prev;
    wt->prev = wt->next = NULL;
}

static void waiter_cancel(struct pt_up_stream *up)
{
    struct up_waiter *wt = (struct up_waiter *)up;
    waiter_unlink(wt);
    wt->x->up = NULL;
}

static void waiter_add(struct up_pool *p, struct pt_exchange *x, const struct pt_service *svc,
                       const struct pt_endpoint *ep, const struct pt_upstream_events *ev)
{
    struct up_waiter *wt = pt_arena_alloc(&x->arena, sizeof(*wt));
    if (!wt) {
        ev->on_closed(x, PT_ERR_LIMIT, 0);
        return;
    }
    memset(wt, 0, sizeof(*wt));
    wt->up.cancel = waiter_cancel;
    wt->x = x;
    wt->ev = ev;
    wt->svc = svc;
    wt->ep = ep;
    wt->pool = p;
    wt->prev = p->wait_tail;
    if (p->wait_tail)
        p->wait_tail->next = wt;
    else
        p->wait_head = wt;
    p->wait_tail = wt;
    x->up = &wt->up;
}

/* --- HTTP/2 --------------------------------------------------------------- */

static void dispatch(struct up_pool *p);

static void h2_on_capacity(struct pt_h2_client *c, void *arg)
{
    struct conn_entry *e = arg;
    if (e->pool->wait_head)
        dispatch(e->pool);
}

static void h2_on_dead(struct pt_h2_client *c, void *arg)
{
    struct conn_entry *e = arg;
    struct up_pool *p = e->pool;
    entry_unlink(e);
    free(e);
    if (p->wait_head)
        dispatch(p);
}

static const struct pt_h2_client_hooks h2_hooks = {
    .on_capacity = h2_on_capacity,
    .on_dead = h2_on_dead,
};

static struct conn_entry *h2_connect(struct up_pool *p, const struct pt_service *svc,
                                     const struct pt_endpoint *ep, int *err)
{
    struct conn_entry *e = pt_xcalloc(1, sizeof(*e));
    struct pt_h2_client_opts o = {
        .connect_timeout_ms = svc->connect_timeout_ms,
        .idle_timeout_ms = svc->idle_timeout_ms,
        .ssl_ctx = svc->ssl_ctx,
        .sni = svc->sni ? svc->sni : ep->host,
    };
    e->u.h2 = pt_h2_client_new(pt_worker_current(), (const struct sockaddr *)&ep->addr,
                               ep->addr_len, &o, &h2_hooks, e, err);
    if (!e->u.h2) {
        free(e);
        return NULL;
    }
    entry_link(p, e);
    return e;
}

/* Status: 0 started, 1 queued, <0 failed. */
static int h2_start(struct up_pool *p, const struct pt_service *svc, const struct pt_endpoint *ep,
                    struct pt_exchange *x, const struct pt_upstream_events *ev)
{
    bool pending = false; /* a connection that has not learnt its limit yet */
    for (struct conn_entry *e = p->conns; e; e = e->next) {
        if (pt_h2_client_available(e->u.h2) && pt_h2_client_start(e->u.h2, x, ev) == 0)
            return 0;
        if (!pt_h2_client_settings_known(e->u.h2))
            pending = true;
    }
    /* Grow one connection at a time: while one is still learning its
     * limit, its SETTINGS will make room or tell us to open another. */
    if (!pending && p->nconns < svc->max_connections) {
        int err = PT_ERR_UPSTREAM_CONNECT;
        struct conn_entry *e = h2_connect(p, svc, ep, &err);
        if (!e)
            return err;
        return pt_h2_client_start(e->u.h2, x, ev);
    }
    return 1;
}

/* --- HTTP/1.1 ------------------------------------------------------------- */

static void h1_on_idle(struct pt_h1_client *c, void *arg)
{
    struct conn_entry *e = arg;
    struct up_pool *p = e->pool;
    struct up_waiter *wt = p->wait_head;
    if (wt) {
        waiter_unlink(wt);
        wt->x->up = NULL;
        if (pt_h1_client_start(c, wt->x, wt->ev) == 0)
            return;
        e->idle = true;
        wt->ev->on_closed(wt->x, PT_ERR_UPSTREAM_CONNECT, PT_UP_RETRYABLE);
        return;
    }
    if (p->draining) {
        /* Its endpoint is gone: done with it now, not at the idle timeout. */
        entry_unlink(e);
        pt_h1_client_close(c);
        free(e);
        return;
    }
    e->idle = true;
    /* Most recently used first: it is the least likely to have timed out. */
    if (e != p->conns) {
        entry_unlink(e);
        entry_link(p, e);
    }
}

static void h1_on_dead(struct pt_h1_client *c, void *arg)
{
    struct conn_entry *e = arg;
    struct up_pool *p = e->pool;
    entry_unlink(e);
    free(e);
    if (p->wait_head)
        dispatch(p);
}

static const struct pt_h1_client_hooks h1_hooks = {
    .on_idle = h1_on_idle,
    .on_dead = h1_on_dead,
};

static struct pt_h1_client *h1_connect(const struct pt_service *svc, const struct pt_endpoint *ep,
                                       const struct pt_h1_client_hooks *hooks, void *arg, int *err)
{
    struct pt_h1_client_opts o = {
        .connect_timeout_ms = svc->connect_timeout_ms,
        .idle_timeout_ms = svc->idle_timeout_ms,
        .max_header_bytes = 65536,
        .ssl_ctx = svc->ssl_ctx,
        .sni = svc->sni ? svc->sni : ep->host,
    };
    return pt_h1_client_new(pt_worker_current(), (const struct sockaddr *)&ep->addr, ep->addr_len,
                            &o, hooks, arg, err);
}

static int h1_start(struct up_pool *p, const struct pt_service *svc, const struct pt_endpoint *ep,
                    struct pt_exchange *x, const struct pt_upstream_events *ev)
{
    for (struct conn_entry *e = p->conns; e; e = e->next) {
        if (!e->idle)
            continue;
        e->idle = false;
        if (pt_h1_client_start(e->u.h1, x, ev) == 0)
            return 0;
    }
    if (p->nconns < svc->max_connections) {
        struct conn_entry *e = pt_xcalloc(1, sizeof(*e));
        int err = PT_ERR_UPSTREAM_CONNECT;
        e->u.h1 = h1_connect(svc, ep, &h1_hooks, e, &err);
        if (!e->u.h1) {
            free(e);
            return err;
        }
        entry_link(p, e);
        return pt_h1_client_start(e->u.h1, x, ev);
    }
    return 1;
}

static void dispatch(struct up_pool *p)
{
    while (p->wait_head) {
        struct up_waiter *wt = p->wait_head;
        struct pt_exchange *x = wt->x;
        const struct pt_upstream_events *ev = wt->ev;
        waiter_unlink(wt);
        x->up = NULL;
        int rc = p->h2 ? h2_start(p, wt->svc, wt->ep, x, ev) : h1_start(p, wt->svc, wt->ep, x, ev);
        if (rc == 1) {
            /* Still full: put it back at the head and stop. */
            wt->next = p->wait_head;
            if (p->wait_head)
                p->wait_head->prev = wt;
            else
                p->wait_tail = wt;
            p->wait_head = wt;
            x->up = &wt->up;
            return;
        }
        if (rc < 0)
            ev->on_closed(x, rc, PT_UP_RETRYABLE);
    }
}

/* --- entry points --------------------------------------------------------- */

/* An attempt counted in the balancer's in-flight numbers (exchange data). */
struct up_attempt {
    const struct pt_lb *lb;
    uint32_t index;
    bool active;
    uint64_t start_ns;
};

static int attempt_key;

static void attempt_begin(struct pt_exchange *x, const struct pt_service *svc, uint32_t i)
{
    if (!svc->lb.ops || !svc->lb.ops->track)
        return;
    struct up_attempt *a = pt_exchange_get_data(x, &attempt_key);
    if (a && a->active)
        pt_up_attempt_end(x, PT_LB_ABANDONED);
    if (!a) {
        a = pt_arena_alloc(&x->arena, sizeof(*a));
        if (!a || pt_exchange_set_data(x, &attempt_key, a) != 0)
            return; /* at the arena limit: this attempt goes uncounted */
    }
    a->lb = &svc->lb;
    a->index = i;
    a->active = true;
    a->start_ns = pt_time_mono_ns();
    pt_lb_on_start(a->lb, i);
}

void pt_up_attempt_end(struct pt_exchange *x, enum pt_lb_outcome o)
{
    struct up_attempt *a = pt_exchange_get_data(x, &attempt_key);
    if (!a || !a->active)
        return;
    a->active = false;
    uint64_t now = pt_time_mono_ns();
    pt_lb_on_end(a->lb, a->index, o, now - a->start_ns, now);
}

/* Once per entering panic (no usable instance, panic_mode on). */
static void panic_note(const struct pt_service *svc, bool panic)
{
    atomic_bool *flag = (atomic_bool *)&svc->in_panic; /* runtime state in the service */
    if (panic) {
        if (!atomic_load_explicit(flag, memory_order_relaxed) &&
            !atomic_exchange_explicit(flag, true, memory_order_relaxed))
            pt_log_warn("service %s: no healthy instance; panic mode: using all %u", svc->name,
                        svc->nendpoints);
    } else if (atomic_load_explicit(flag, memory_order_relaxed)) {
        atomic_store_explicit(flag, false, memory_order_relaxed);
        pt_log_info("service %s: healthy instances again; leaving panic mode", svc->name);
    }
}

/* Endpoint down flags on the stack up to this many endpoints. */
#define PICK_STACK 128

static const struct pt_endpoint *pick(struct pt_up_worker *uw, const struct pt_service *svc,
                                      struct pt_exchange *x, int avoid, int *chosen, int *err)
{
    *err = PT_ERR_NO_ENDPOINT;
    if (svc->nendpoints == 0)
        return NULL;
    unsigned id = uw->w->id;
    uint32_t i = 0;
    uint64_t now = 0;
    bool stack_down[PICK_STACK];
    bool *down = NULL;
    if (svc->health_any) {
        now = pt_time_mono_ns();
        down = svc->nendpoints <= PICK_STACK
                   ? stack_down
                   : pt_arena_alloc(&x->arena, svc->nendpoints * sizeof(*down));
        uint32_t usable = down ? pt_service_health_mask(svc, now, down) : svc->nendpoints;
        if (usable == svc->nendpoints) {
            down = NULL;
            panic_note(svc, false);
        } else if (usable == 0) {
            if (!svc->panic_mode) {
                *err = PT_ERR_NO_HEALTHY;
                return NULL;
            }
            panic_note(svc, true);
            down = NULL;
        } else {
            panic_note(svc, false);
            /* A retry whose avoided instance is the only usable one goes
             * back to it rather than to a down one. */
            if (usable == 1 && avoid >= 0 && (uint32_t)avoid < svc->nendpoints && !down[avoid])
                avoid = -1;
        }
    }
    if (svc->lb.ops && svc->lb_local && id < svc->nworkers) {
        struct pt_str key =
            pt_lb_request_key(&svc->lb, &x->req.headers, x->conn ? x->conn->peer_ip : NULL);
        if (svc->lb.algorithm == PT_LB_PEAK_EWMA && !now)
            now = pt_time_mono_ns();
        i = pt_lb_choose_usable(&svc->lb, &svc->lb_local[id], key, avoid, now, down);
    } else if (avoid == 0 && svc->nendpoints > 1) {
        i = 1; /* no balancer state (not compiled for workers) */
    }
    if (svc->endpoints[i].breaker) /* per-instance circuit breakers: skip open ones */
        i = pt_service_skip_open(svc, i, avoid, pt_time_mono_ns(), down);
    if (chosen)
        *chosen = (int)i;
    attempt_begin(x, svc, i);
    return &svc->endpoints[i];
}

int pt_up_forward(struct pt_worker *w, const struct pt_service *svc, struct pt_exchange *x,
                  const struct pt_upstream_events *ev, int avoid, int *chosen)
{
    struct pt_up_worker *uw = w->up;
    int err;
    const struct pt_endpoint *ep = pick(uw, svc, x, avoid, chosen, &err);
    if (!ep)
        return err;
    x->upstream_addr = pt_str_from_cstr(ep->key);
    struct up_pool *p = pool_get(uw, svc, ep);
    int rc = p->h2 ? h2_start(p, svc, ep, x, ev) : h1_start(p, svc, ep, x, ev);
    if (rc == 1) {
        waiter_add(p, x, svc, ep, ev);
        return 0;
    }
    return rc;
}

static int upgrade_key;

static void up_on_idle(struct pt_h1_client *c, void *arg)
{
    /* The backend answered without upgrading; this connection is not pooled. */
    pt_h1_client_close(c);
}

static void up_on_dead(struct pt_h1_client *c, void *arg)
{
    /* Not pooled: nothing to forget. */
}

static const struct pt_h1_client_hooks upgrade_hooks = {
    .on_idle = up_on_idle,
    .on_dead = up_on_dead,
};

int pt_up_forward_upgrade(struct pt_worker *w, const struct pt_service *svc, struct pt_exchange *x,
                          const struct pt_upstream_events *ev, int *chosen)
{
    int perr;
    const struct pt_endpoint *ep = pick(w->up, svc, x, -1, chosen, &perr);
    if (!ep)
        return perr;
    x->upstream_addr = pt_str_from_cstr(ep->key);
    int err = PT_ERR_UPSTREAM_CONNECT;
    struct pt_h1_client *c = h1_connect(svc, ep, &upgrade_hooks, NULL, &err);
    if (!c)
        return err;
    int rc = pt_h1_client_start(c, x, ev);
    if (rc != 0) {
        pt_h1_client_close(c);
        return rc;
    }
    pt_exchange_set_data(x, &upgrade_key, c);
    return 0;
}

void *pt_up_take_transport(struct pt_exchange *x)
{
    struct pt_h1_client *c = pt_exchange_get_data(x, &upgrade_key);
    if (!c)
        return NULL;
    pt_exchange_set_data(x, &upgrade_key, NULL);
    return pt_h1_client_take_transport(c);
}

static bool pool_in(const struct up_pool *p, const struct pt_service *svcs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct pt_service *svc = &svcs[i];
        size_t plen = strlen(svc->pool_prefix);
        if (strncmp(p->key, svc->pool_prefix, plen) != 0 || p->key[plen] != '|')
            continue;
        for (uint32_t k = 0; k < svc->nendpoints; k++)
            if (strcmp(p->key + plen + 1, svc->endpoints[k].key) == 0)
                return true;
    }
    return false;
}

/* Let go of a pool whose endpoint left: HTTP/2 connections take no new
 * streams and close after their last one; idle HTTP/1.1 connections
 * close now, busy ones when their response ends (h1_on_idle). */
static void pool_drain(struct up_pool *p)
{
    p->draining = true;
    for (struct conn_entry *e = p->conns, *next; e; e = next) {
        next = e->next;
        if (p->h2) {
            entry_unlink(e);
            pt_h2_client_release(e->u.h2);
            free(e);
        } else if (e->idle) {
            entry_unlink(e);
            pt_h1_client_close(e->u.h1);
            free(e);
        }
    }
}

size_t pt_up_worker_sweep(struct pt_worker *w, const struct pt_service *svcs, size_t n)
{
    struct pt_up_worker *uw = w->up;
    size_t drained = 0;
    if (!uw)
        return 0;
    for (size_t b = 0; b < NBUCKETS; b++) {
        for (struct up_pool *p = uw->pools[b]; p; p = p->hnext) {
            if (pool_in(p, svcs, n)) {
                p->draining = false;
                continue;
            }
            if (!p->draining || p->conns) {
                pool_drain(p);
                drained++;
            }
        }
    }
    return drained;
}

void pt_up_worker_fini(struct pt_worker *w)
{
    struct pt_up_worker *uw = w->up;
    if (!uw)
        return;
    for (size_t b = 0; b < NBUCKETS; b++) {
        while (uw->pools[b]) {
            struct up_pool *p = uw->pools[b];
            uw->pools[b] = p->hnext;
            while (p->conns) {
                struct conn_entry *e = p->conns;
                entry_unlink(e);
                if (p->h2)
                    pt_h2_client_release(e->u.h2);
                else
                    pt_h1_client_close(e->u.h1);
                free(e);
            }
            free(p->key);
            free(p);
        }
    }
    free(uw);
    w->up = NULL;
}
