/*
 * Hedged requests: extra attempts of a GET, HEAD or OPTIONS request
 * without a body, started when the first attempt has produced no response
 * head after the route's hedge delay.
 *
 * The exchange's own attempt (the primary, x->up) writes into x directly.
 * Each extra attempt runs in a shadow exchange: a second pt_exchange with
 * its own arena, a copy of the request head and an ended, empty request
 * body, forwarded with pt_up_forward() like any exchange, so pools,
 * balancers and breakers see an ordinary attempt. The upstream fills the
 * shadow's response; nothing reaches the client until one attempt wins:
 *
 *   primary head first      every shadow is cancelled; the exchange goes
 *                           on as if it had never hedged (retries included)
 *   a shadow's head first   the primary is cancelled, the shadow's head is
 *                           copied into x and its body relayed from the
 *                           shadow's pipe into x's (with backpressure both
 *                           ways); the winner lives until x ends
 *   a shadow's 5xx or gRPC  dropped while the primary still runs (it may
 *   UNAVAILABLE head        still succeed); it wins if the primary is gone
 *   the primary fails       held while shadows run; the last shadow's
 *                           failure hands the primary's error back to the
 *                           exchange (which may then retry)
 *
 * Cancelling (client gone, local reply, deadline, a retry) cancels every
 * shadow, the winner included (pt_proxy_hedge_cancel). Hedges are not
 * retried themselves and do not use the retry budget; max_attempts (at
 * most 4) bounds them.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "conf/snapshot.h"
#include "core/strutil.h"
#include "proxy/proxy_int.h"
#include "upstream/pool.h"

static const char hedge_key; /* the per-exchange data key */

#define MAX_SHADOWS (PT_HEDGE_MAX_ATTEMPTS - 1)

struct hedge;

struct shadow {
    struct hedge *h;
    struct pt_exchange *sx; /* NULL: not started or gone */
    int endpoint;
    bool won; /* x refers to its memory: freed only in fini */
};

struct hedge {
    struct pt_exchange *x;
    const struct pt_proxy_hedge_ops *ops;
    struct event *timer; /* x's arena */
    struct shadow s[MAX_SHADOWS];
    unsigned started;
    unsigned running; /* shadows started and not gone, winner excluded */
    struct shadow *winner;
    struct evbuffer *tmp; /* relay scratch */
    bool relaying;
    bool primary_failed;
    int primary_err;
    unsigned primary_flags;
};

static const struct pt_upstream_events shadow_events;

static struct hedge *hedge_of(const struct pt_exchange *x)
{
    return pt_exchange_get_data(x, &hedge_key);
}

static int grpc_status_of(const struct pt_headers *h)
{
    struct pt_str v;
    uint64_t n;
    if (!pt_headers_find(h, PT_STR("grpc-status"), &v))
        return -1;
    return pt_str_to_u64(v, &n) == 0 && n < 1000 ? (int)n : -1;
}

/* Stop one shadow's attempt and give its tickets back. */
static void shadow_stop(struct pt_exchange *sx)
{
    if (sx->up)
        sx->up->cancel(sx->up);
    sx->up = NULL;
    pt_proxy_circuit_abandon(sx);
    pt_up_attempt_end(sx, PT_LB_ABANDONED);
}

/* End a shadow that lost: nothing of it is referenced from x. */
static void shadow_drop(struct shadow *s, bool running)
{
    struct pt_exchange *sx = s->sx;
    if (!sx)
        return;
    shadow_stop(sx);
    pt_exchange_free(sx);
    s->sx = NULL;
    if (running && s->h->running)
        s->h->running--;
}

static void stop_timer(struct hedge *h)
{
    if (h->timer)
        event_del(h->timer);
}

/* --- relaying the winner's body ------------------------------------------ */

static void relay(struct hedge *h)
{
    if (!h->winner || h->relaying)
        return;
    struct pt_pipe *sp = h->winner->sx->resp_up;
    struct pt_pipe *xp = h->x->resp_up;
    h->relaying = true;
    while (pt_pipe_len(sp) && !pt_pipe_full(xp) && !xp->eof) {
        size_t n = pt_pipe_read_into(sp, h->tmp, 64 * 1024);
        if (pt_pipe_write_buffer(xp, h->tmp, n) < 0)
            break; /* a response pipe has no limit */
    }
    if (pt_pipe_done(sp) && !xp->eof)
        pt_pipe_end(xp, sp->trailers); /* trailers: the winner's arena, alive until x ends */
    h->relaying = false;
}

static void relay_data(struct pt_pipe *p, void *consumer)
{
    (void)p;
    relay(consumer);
}

static void relay_drain(struct pt_pipe *p, size_t n, void *producer)
{
    (void)p;
    (void)n;
    relay(producer);
}

/* --- shadow events ------------------------------------------------------- */

static void all_shadows_failed(struct hedge *h)
{
    if (h->running || h->winner || !h->primary_failed)
        return;
    h->primary_failed = false;
    h->ops->failed(h->x, h->primary_err, h->primary_flags);
}

static void shadow_head(struct pt_exchange *sx)
{
    struct shadow *s = sx->down_ctx;
    struct hedge *h = s->h;
    struct pt_exchange *x = h->x;
    int grpc = sx->req.is_grpc ? grpc_status_of(&sx->resp.headers) : -1;
    if (!sx->req.is_grpc || grpc >= 0 || sx->resp.status != 200)
        pt_proxy_circuit_done(sx, 0, sx->resp.status, grpc);
    bool failing = sx->resp.status >= 500 || grpc == 14;
    if (failing && !h->primary_failed) {
        shadow_drop(s, true); /* the primary may still answer well */
        return;
    }
    /* This shadow wins. */
    stop_timer(h);
    h->running--;
    h->winner = s;
    s->won = true;
    h->primary_failed = false;
    for (unsigned i = 0; i < MAX_SHADOWS; i++)
        if (&h->s[i] != s)
            shadow_drop(&h->s[i], true);
    if (!h->tmp) {
        h->tmp = evbuffer_new();
        if (!h->tmp)
            abort(); /* a real allocation failure aborts */
    }
    h->ops->won(x, sx, s->endpoint);
    /* x's response pipe was reset by won(): the relay now feeds it. */
    pt_pipe_set_consumer(sx->resp_up, relay_data, h);
    pt_pipe_set_producer(x->resp_up, relay_drain, h);
    h->ops->run_response(x);
    relay(h);
}

static void shadow_closed(struct pt_exchange *sx, int err, unsigned flags)
{
    struct shadow *s = sx->down_ctx;
    struct hedge *h = s->h;
    if (s == h->winner) {
        pt_up_attempt_end(sx, err ? PT_LB_FAILED : PT_LB_DONE);
        if (err == 0 && sx->req.is_grpc && sx->resp_up->trailers) {
            int g = grpc_status_of(sx->resp_up->trailers);
            pt_proxy_circuit_done(sx, 0, sx->resp.status, g >= 0 ? g : sx->grpc_status);
        } else {
            pt_proxy_circuit_done(sx, err, sx->resp.status, -1);
        }
        relay(h);
        h->ops->closed(h->x, err, flags);
        return;
    }
    pt_up_attempt_end(sx, PT_LB_FAILED);
    pt_proxy_circuit_done(sx, err, 0, -1);
    shadow_drop(s, true);
    all_shadows_failed(h);
}

static const struct pt_upstream_events shadow_events = {
    .on_response_head = shadow_head,
    .on_closed = shadow_closed,
};

/* --- starting shadows ---------------------------------------------------- */

static struct pt_exchange *shadow_new(struct pt_exchange *x, struct shadow *s)
{
    struct pt_exchange *sx = pt_exchange_new(x->worker, x->conn, NULL, s, x->arena.limit);
    sx->req = x->req;
    pt_headers_init(&sx->req.headers, &sx->arena, 0);
    if (pt_headers_copy_ref(&sx->req.headers, &x->req.headers) != 0) {
        pt_exchange_free(sx);
        return NULL;
    }
    sx->req.has_body = false;
    pt_pipe_end(&sx->req_body, NULL);
    sx->pin = NULL; /* x's pin keeps the snapshot: shadows never outlive x */
    sx->snap = x->snap;
    sx->route = x->route;
    sx->service = x->service;
    sx->forward_path = x->forward_path;
    sx->upstream_addr = x->upstream_addr;
    sx->request_id = x->request_id;
    return sx;
}

static void arm(struct hedge *h)
{
    uint32_t ms = h->x->route->hedge_delay_ms;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    event_add(h->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hedge *h = arg;
    struct pt_exchange *x = h->x;
    /* Only while the primary runs and nothing answered. */
    if (!x->up || x->resp_started || h->winner || h->started >= MAX_SHADOWS ||
        h->started + 1 >= x->route->hedge_max_attempts)
        return;
    struct shadow *s = &h->s[h->started++];
    *s = (struct shadow){.h = h, .endpoint = -1};
    struct pt_exchange *sx = shadow_new(x, s);
    if (!sx)
        return;
    s->sx = sx;
    h->running++;
    if (pt_proxy_circuit_admit(sx) != 0) {
        shadow_drop(s, true);
        return; /* the breaker says no: no hedge */
    }
    int chosen = -1;
    if (pt_up_forward(x->worker, x->service, sx, &shadow_events, x->endpoint, &chosen) != 0) {
        pt_proxy_circuit_done(sx, PT_ERR_UPSTREAM_CONNECT, 0, -1);
        shadow_drop(s, true);
        return;
    }
    s->endpoint = chosen;
    pt_proxy_circuit_chosen(sx, chosen);
    pt_proxy_hedge_count(x);
    if (h->started + 1 < x->route->hedge_max_attempts && h->started < MAX_SHADOWS)
        arm(h);
}

bool pt_proxy_hedge_eligible(const struct pt_exchange *x)
{
    const struct pt_route_conf *rc = x->route;
    if (!rc || !rc->hedge_delay_ms || rc->hedge_max_attempts < 2 || x->req.has_body || x->upgrade)
        return false;
    struct pt_str m = x->req.method;
    return pt_str_eq(m, PT_STR("GET")) || pt_str_eq(m, PT_STR("HEAD")) ||
           pt_str_eq(m, PT_STR("OPTIONS"));
}

void pt_proxy_hedge_start(struct pt_exchange *x, const struct pt_proxy_hedge_ops *ops)
{
    if (hedge_of(x) || !pt_proxy_hedge_eligible(x))
        return;
    struct hedge *h = pt_exchange_alloc(x, sizeof(*h));
    struct event *ev = pt_arena_alloc(&x->arena, event_get_struct_event_size());
    if (!h || !ev)
        return; /* at the arena limit: no hedging */
    *h = (struct hedge){.x = x, .ops = ops, .timer = ev};
    if (pt_exchange_set_data(x, &hedge_key, h) != 0)
        return;
    event_assign(ev, x->worker->base, -1, 0, on_timer, h);
    arm(h);
}

bool pt_proxy_hedge_hold(struct pt_exchange *x, int err, unsigned flags)
{
    struct hedge *h = hedge_of(x);
    if (!h || h->winner || !h->running)
        return false;
    stop_timer(h); /* nothing to hedge any more: the shadows are the attempt */
    h->primary_failed = true;
    h->primary_err = err;
    h->primary_flags = flags;
    return true;
}

void pt_proxy_hedge_primary_answered(struct pt_exchange *x)
{
    struct hedge *h = hedge_of(x);
    if (!h || h->winner)
        return;
    stop_timer(h);
    for (unsigned i = 0; i < MAX_SHADOWS; i++)
        shadow_drop(&h->s[i], true);
}

void pt_proxy_hedge_cancel(struct pt_exchange *x)
{
    struct hedge *h = hedge_of(x);
    if (!h)
        return;
    stop_timer(h);
    h->primary_failed = false;
    if (h->winner) {
        /* x's response head and trailers point into the winner's arena:
         * stop its attempt and the relay, free it only in fini. */
        struct pt_exchange *sx = h->winner->sx;
        if (x->resp_up->producer == h)
            pt_pipe_set_producer(x->resp_up, NULL, NULL);
        pt_pipe_set_consumer(sx->resp_up, NULL, NULL);
        shadow_stop(sx);
        h->winner = NULL;
    }
    for (unsigned i = 0; i < MAX_SHADOWS; i++)
        if (!h->s[i].won)
            shadow_drop(&h->s[i], true);
}

void pt_proxy_hedge_fini(struct pt_exchange *x)
{
    struct hedge *h = hedge_of(x);
    if (!h)
        return;
    pt_proxy_hedge_cancel(x);
    for (unsigned i = 0; i < MAX_SHADOWS; i++)
        if (h->s[i].sx) {
            pt_exchange_free(h->s[i].sx);
            h->s[i].sx = NULL;
        }
    if (h->tmp)
        evbuffer_free(h->tmp);
    h->tmp = NULL;
}
