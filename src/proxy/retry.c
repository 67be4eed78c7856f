/*
 * Retries of an exchange: the service's retry budget, the backoff wait
 * between attempts and the per-try timeout. Deciding *whether* a failure
 * may be retried stays in exchange.c (can_retry); this file decides
 * *when*, and whether the budget and the deadline allow it.
 *
 * One timer per exchange serves both the per-try timeout (while an attempt
 * runs) and the backoff (between attempts): they never overlap. The timer
 * is arena storage, created on first use; pt_proxy_retry_cancel() (called
 * whenever the upstream attempt is cancelled, so also when the client goes
 * away, a local reply replaces the response, or the deadline fires) stops
 * it, so no callback can run after the exchange ends.
 *
 * The state is per-exchange data in the arena, created at the first
 * attempt.
 */
#include <event2/event.h>

#include "conf/snapshot.h"
#include "core/time.h"
#include "proxy/proxy_int.h"
#include "upstream/retry.h"
#include "upstream/service.h"

static const char retry_key; /* the per-exchange data key */

enum timer_mode { T_IDLE, T_PER_TRY, T_BACKOFF };

struct retry_call {
    struct pt_exchange *x;
    struct event *timer; /* arena storage, NULL until needed */
    enum timer_mode mode;
    pt_proxy_retry_fn *fire;        /* what the timer calls */
    struct pt_retry_budget *budget; /* the request is counted active there, or NULL */
    bool holds_retry;               /* one active retry counted on budget */
    uint32_t budgeted;              /* retries that went through the budget */
    uint32_t per_try_timeouts;
    uint32_t hedges;
    bool denied;
};

/* A small per-worker random source for the jitter: xorshift64*, seeded
 * from the clock and the thread's stack address. */
static uint64_t jitter_random(void)
{
    static _Thread_local uint64_t s;
    if (!s) {
        int here;
        s = pt_time_mono_ns() ^ ((uint64_t)(uintptr_t)&here << 17) ^ 0x9e3779b97f4a7c15ull;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
}

static struct retry_call *call_of(struct pt_exchange *x, bool create)
{
    struct retry_call *c = pt_exchange_get_data(x, &retry_key);
    if (c || !create)
        return c;
    c = pt_exchange_alloc(x, sizeof(*c));
    if (!c)
        return NULL;
    *c = (struct retry_call){.x = x};
    if (pt_exchange_set_data(x, &retry_key, c) != 0)
        return NULL;
    return c;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct retry_call *c = arg;
    pt_proxy_retry_fn *fire = c->fire;
    c->mode = T_IDLE;
    c->fire = NULL;
    if (fire)
        fire(c->x);
}

/* Status: 0, or -1 at the arena limit (no timer). */
static int arm(struct retry_call *c, enum timer_mode mode, uint64_t ms, pt_proxy_retry_fn *fire)
{
    struct pt_exchange *x = c->x;
    if (!c->timer) {
        c->timer = pt_arena_alloc(&x->arena, event_get_struct_event_size());
        if (!c->timer)
            return -1;
        event_assign(c->timer, x->worker->base, -1, 0, on_timer, c);
    }
    c->mode = mode;
    c->fire = fire;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_add(c->timer, &tv);
    return 0;
}

static void disarm(struct retry_call *c)
{
    if (c->timer && c->mode != T_IDLE)
        event_del(c->timer);
    c->mode = T_IDLE;
    c->fire = NULL;
}

static void release_retry(struct retry_call *c)
{
    if (c->holds_retry && c->budget)
        pt_retry_budget_retry_end(c->budget);
    c->holds_retry = false;
}

void pt_proxy_retry_first(struct pt_exchange *x)
{
    struct retry_call *c = call_of(x, true);
    if (!c || c->budget || !x->service->retry_budget)
        return;
    c->budget = x->service->retry_budget;
    pt_retry_budget_request_start(c->budget);
    if (x->route->retry_count && x->req.has_body)
        pt_pipe_keep_replay(x->req_up, PT_RETRY_REPLAY_MAX_BYTES);
}

int64_t pt_proxy_retry_admit(struct pt_exchange *x, bool unseen)
{
    if (unseen)
        return 0; /* bounded by can_retry; a new connection or instance at once */
    struct retry_call *c = call_of(x, true);
    if (!c)
        return -1;
    const struct pt_route_conf *rc = x->route;
    if (c->budget) {
        if (!pt_retry_budget_retry_start(c->budget, rc->retry_budget_percent,
                                         rc->retry_min_concurrency)) {
            c->denied = true;
            return -1;
        }
        c->holds_retry = true;
    }
    c->budgeted++;
    uint64_t ms = pt_retry_backoff_ms(rc->retry_backoff_base_ms, rc->retry_backoff_max_ms,
                                      c->budgeted, jitter_random());
    /* Never wait past the deadline: a retry that could not even start in
     * time ends the request with the last outcome instead. */
    if (x->deadline_ns && pt_time_mono_ns() + ms * 1000000ull >= x->deadline_ns) {
        release_retry(c);
        return -1;
    }
    return (int64_t)ms;
}

void pt_proxy_retry_wait(struct pt_exchange *x, uint64_t ms, pt_proxy_retry_fn *go)
{
    struct retry_call *c = call_of(x, false);
    if (!c || arm(c, T_BACKOFF, ms, go) != 0)
        go(x); /* no timer at the arena limit: go now rather than never */
}

void pt_proxy_retry_attempt_started(struct pt_exchange *x, pt_proxy_retry_fn *on_timeout)
{
    uint32_t ms = x->route->per_try_timeout_ms;
    struct retry_call *c = ms ? call_of(x, true) : NULL;
    if (c)
        (void)arm(c, T_PER_TRY, ms, on_timeout); /* at the arena limit the deadline still holds */
}

void pt_proxy_retry_attempt_over(struct pt_exchange *x)
{
    struct retry_call *c = call_of(x, false);
    if (!c)
        return;
    if (c->mode == T_PER_TRY)
        disarm(c);
    release_retry(c);
}

void pt_proxy_retry_count_timeout(struct pt_exchange *x)
{
    struct retry_call *c = call_of(x, false);
    if (c)
        c->per_try_timeouts++;
}

void pt_proxy_retry_cancel(struct pt_exchange *x)
{
    struct retry_call *c = call_of(x, false);
    if (c)
        disarm(c);
}

void pt_proxy_retry_fini(struct pt_exchange *x)
{
    struct retry_call *c = call_of(x, false);
    if (!c)
        return;
    disarm(c);
    release_retry(c);
    if (c->budget)
        pt_retry_budget_request_end(c->budget);
    c->budget = NULL;
}

void pt_proxy_hedge_count(struct pt_exchange *x)
{
    struct retry_call *c = call_of(x, true);
    if (c)
        c->hedges++;
}

void pt_proxy_retry_stats(const struct pt_exchange *x, bool *denied, uint32_t *per_try_timeouts,
                          uint32_t *hedges)
{
    struct retry_call *c = pt_exchange_get_data(x, &retry_key);
    *denied = c && c->denied;
    *per_try_timeouts = c ? c->per_try_timeouts : 0;
    *hedges = c ? c->hedges : 0;
}
