/*
 * The rate-limit filter: runs a route's rules on each request (see
 * ratelimit.h for the order and docs/ratelimiting.md for the behaviour).
 *
 * Request head: for each rule in order, build the key; skip the rule when
 * the request lacks an input it needs or is not of its tier; decide. An
 * allowed decision is remembered (key, time) so a later rejection can
 * refund it. A rejection by a shadow rule is counted and logged only; by a
 * queue rule, the request waits (a timer on the worker's loop, the chain
 * paused) for the rule's retry time if that fits in max_queue_ms, then the
 * same rule is asked again; otherwise the request is rejected: earlier
 * charges refunded, a 429 (RESOURCE_EXHAUSTED for gRPC) through the error
 * table. Response head: the rate-limit headers of the most restrictive
 * rule that decided (fewest remaining), with Retry-After on a rejection.
 * on_done: a request still waiting (client gone) refunds and frees its
 * timer.
 *
 * Redis rules (mode redis): the decision is a script call on the worker's
 * Redis connection (redis.h); the chain pauses until the answer, or until
 * the rule's redis_timeout_ms budget runs out, whichever comes first. A
 * failure (down, error, budget spent) lets the request through when the
 * rule fails open (counted failed_open) or rejects it (failed_closed); a
 * late answer to an abandoned call is ignored, or refunded when the
 * request was rejected meanwhile.
 *
 * Hybrid rules (mode hybrid): a token from the instance's lease for the key
 * decides at once; an empty lease fetches a new one (the same Redis wait),
 * or, while another request is fetching it, this request is decided alone
 * in Redis; a recent "Redis is empty" answer rejects at once.
 */
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"
#include "core/time.h"
#include "core/worker.h"
#include "ratelimit/ratelimit_int.h"

struct charge {
    const struct pt_rl_rule *rule;
    char *key;
    uint16_t len;
    uint64_t at; /* local: ns of the monotonic clock; redis: us of Redis's clock */
};

struct rl_x {
    const struct pt_rl_route *rr;
    struct pt_exchange *x;
    unsigned next; /* the rule to decide next */
    struct charge *charges;
    unsigned ncharges;
    struct pt_rl_decision shown; /* for the response headers */
    bool have_shown;
    bool rejected;
    struct event *timer;        /* queue wait, or a Redis call's budget */
    uint64_t queue_deadline_ns; /* 0: not queued yet */
    bool queued_counted;
    struct pt_rl_redis_call *pending; /* the Redis call being waited for */
    char *pending_key;                /* its key (arena) */
    uint16_t pending_len;
    bool pending_take; /* the call fetches a lease (hybrid) */
};

static void *rl_create(const struct pt_filter_config *cfg, struct pt_diag *diag)
{
    (void)cfg;
    pt_diag_errorf(diag, NULL, "rate-limit is configured with rate_limit_rules, not as a filter");
    return NULL;
}

static void rl_destroy(void *instance)
{
    struct pt_rl_route *rr = instance;
    if (!rr)
        return;
    free(rr->rules);
    free(rr);
}

static bool header_lookup(void *ctx, struct pt_str name, struct pt_str *value)
{
    return pt_headers_find(pt_exchange_request_headers(ctx), name, value);
}

/* Fewer remaining is more restrictive; on a tie, the later reset. */
static void show(struct rl_x *s, const struct pt_rl_decision *d, bool force)
{
    if (force || !s->have_shown || d->remaining < s->shown.remaining ||
        (d->remaining == s->shown.remaining && d->reset_ns > s->shown.reset_ns))
        s->shown = *d;
    s->have_shown = true;
}

static void refund_all(struct rl_x *s)
{
    for (unsigned i = 0; i < s->ncharges; i++) {
        const struct charge *c = &s->charges[i];
        if (c->rule->mode == PT_RL_LOCAL)
            pt_rl_table_refund(c->rule->table, c->key, c->len, c->at, 1);
        else if (c->rule->mode == PT_RL_HYBRID) /* the token goes back to the lease */
            pt_rl_table_lease_add(c->rule->table, c->key, c->len, pt_time_mono_ns(), 1,
                                  c->rule->lease_ttl_ns);
        else /* fire and forget: a lost refund only costs the client one request */
            pt_rl_redis_call_start(pt_worker_current(), &s->rr->plan->redis, c->rule->redis_tag,
                                   c->key, c->len, &c->rule->params, PT_RL_OP_REFUND, 1, c->at,
                                   NULL, NULL);
    }
    s->ncharges = 0;
}

static void shadow_log(const struct pt_rl_rule *r, struct pt_exchange *x)
{
    /* At most one line per rule and second: a flood must not flood the log. */
    uint64_t now = pt_time_mono_ns();
    uint64_t last =
        atomic_load_explicit(&((struct pt_rl_rule *)r)->last_log_ns, memory_order_relaxed);
    if (last && now - last < 1000000000ull)
        return;
    if (!atomic_compare_exchange_strong(&((struct pt_rl_rule *)r)->last_log_ns, &last, now))
        return;
    struct pt_str rid = pt_exchange_request_id(x);
    pt_log_info("rate limit: shadow rule \"%s\" would reject request %.*s on route \"%.*s\"",
                r->name, (int)rid.len, rid.ptr, (int)pt_exchange_route_name(x).len,
                pt_exchange_route_name(x).ptr);
}

static enum pt_filter_status reject(struct rl_x *s, const struct pt_rl_rule *r)
{
    refund_all(s);
    s->rejected = true;
    pt_rl_stats_count(r->stats, PT_RL_REJECTED);
    char detail[160];
    snprintf(detail, sizeof(detail), "rate limit exceeded (rule %s)", r->name);
    if (pt_exchange_reply_error(s->x, PT_ERR_RATE_LIMITED, pt_str_from_cstr(detail)) != 0)
        return PT_FILTER_CONTINUE; /* a response already started: nothing to stop */
    return PT_FILTER_REPLIED;
}

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_redis(void *arg, const struct pt_rl_redis_result *res);

enum step {
    STEP_NEXT,  /* go on with the next rule */
    STEP_WAIT,  /* paused (queue timer, Redis call) */
    STEP_REPLY, /* rejected (replied) */
};

static bool arm(struct rl_x *s, uint64_t ns)
{
    if (!s->timer)
        s->timer = evtimer_new(pt_exchange_event_base(s->x), on_timer, s);
    if (!s->timer)
        return false;
    struct timeval tv = {(time_t)(ns / 1000000000ull),
                         (suseconds_t)(ns % 1000000000ull / 1000 + 1)};
    evtimer_add(s->timer, &tv);
    return true;
}

/* A decision of rule r for key (at: when it was charged, in the rule's
 * clock). */
static enum step apply(struct rl_x *s, const struct pt_rl_rule *r, const struct pt_rl_decision *d,
                       const char *key, size_t klen, uint64_t at)
{
    if (d->allowed) {
        pt_rl_stats_count(r->stats, PT_RL_ALLOWED);
        if (r->action != PT_RL_SHADOW)
            show(s, d, false);
        struct charge *c = &s->charges[s->ncharges];
        c->key = pt_exchange_alloc(s->x, klen);
        if (c->key) { /* without memory the charge simply stays */
            memcpy(c->key, key, klen);
            c->rule = r;
            c->len = (uint16_t)klen;
            c->at = at;
            s->ncharges++;
        }
        return STEP_NEXT;
    }
    if (r->action == PT_RL_SHADOW) {
        pt_rl_stats_count(r->stats, PT_RL_SHADOW_REJECTED);
        shadow_log(r, s->x);
        return STEP_NEXT;
    }
    if (r->action == PT_RL_QUEUE) {
        uint64_t now = pt_time_mono_ns();
        if (!s->queue_deadline_ns)
            s->queue_deadline_ns = now + r->max_queue_ns;
        if (d->retry_ns != UINT64_MAX && now + d->retry_ns <= s->queue_deadline_ns &&
            arm(s, d->retry_ns)) {
            if (!s->queued_counted)
                pt_rl_stats_count(r->stats, PT_RL_QUEUED);
            s->queued_counted = true;
            return STEP_WAIT;
        }
    }
    show(s, d, true);
    (void)reject(s, r);
    return STEP_REPLY;
}

/* The counter store failed for rule r. */
static enum step failed(struct rl_x *s, const struct pt_rl_rule *r)
{
    if (r->fail_open || r->action == PT_RL_SHADOW) {
        pt_rl_stats_count(r->stats, PT_RL_FAILED_OPEN);
        return STEP_NEXT;
    }
    pt_rl_stats_count(r->stats, PT_RL_FAILED_CLOSED);
    struct pt_rl_decision d = {.limit = r->params.limit, .retry_ns = 1000000000ull};
    show(s, &d, true);
    refund_all(s);
    s->rejected = true;
    char detail[160];
    snprintf(detail, sizeof(detail), "rate limit unavailable (rule %s)", r->name);
    pt_exchange_reply_error(s->x, PT_ERR_RATE_LIMITED, pt_str_from_cstr(detail));
    return STEP_REPLY;
}

/* Decide from rule s->next on. */
static enum pt_filter_status run(struct rl_x *s)
{
    const struct pt_rl_route *rr = s->rr;
    struct pt_exchange *x = s->x;
    const struct pt_identity *id = pt_exchange_identity(x);
    socklen_t alen = 0;
    struct pt_rl_inputs in = {
        .addr = pt_exchange_client_addr(x, &alen),
        .route = pt_exchange_route_name(x),
        .client_id = id->client_id,
        .user_id = id->user_id,
        .header = header_lookup,
        .header_ctx = x,
    };
    in.api_key = pt_auth_api_key(x, rr->plan->auth);
    char key[PT_RL_MAX_KEY];
    for (; s->next < rr->n; s->next++) {
        const struct pt_rl_rule *r = rr->rules[s->next];
        if (r->tier &&
            (id->tier.len != strlen(r->tier) || memcmp(id->tier.ptr, r->tier, id->tier.len) != 0))
            continue;
        size_t klen = pt_rl_key_build(&r->key, &in, key);
        if (!klen)
            continue;
        enum step st;
        uint64_t now = pt_time_mono_ns(), left = 0;
        enum pt_rl_lease lease = PT_RL_LEASE_MISS;
        if (r->mode == PT_RL_LOCAL) {
            struct pt_rl_decision d;
            pt_rl_table_decide(r->table, key, klen, now, 1, &d);
            st = apply(s, r, &d, key, klen, now);
        } else if (r->mode == PT_RL_HYBRID &&
                   ((lease = pt_rl_table_lease_take(r->table, key, klen, now,
                                                    (uint64_t)r->redis_timeout_ms * 1000000ull,
                                                    &left)) == PT_RL_LEASE_TOKEN ||
                    lease == PT_RL_LEASE_DENIED)) {
            /* Served from the instance's lease (or its note that Redis is
             * empty for a while): no Redis call. */
            bool tok = lease == PT_RL_LEASE_TOKEN;
            struct pt_rl_decision d = {.allowed = tok,
                                       .limit = r->params.limit,
                                       .remaining = tok ? left : 0,
                                       .reset_ns = r->params.window_ns,
                                       .retry_ns = tok ? 0 : left};
            st = apply(s, r, &d, key, klen, now);
        } else {
            /* Hybrid: fetch a lease, unless another request is fetching
             * one (then decide this request alone in Redis). */
            bool take = r->mode == PT_RL_HYBRID && lease == PT_RL_LEASE_MISS;
            s->pending_take = take;
            s->pending_key = pt_exchange_alloc(x, klen);
            s->pending = s->pending_key
                             ? pt_rl_redis_call_start(pt_worker_current(), &rr->plan->redis,
                                                      r->redis_tag, key, klen, &r->params,
                                                      take ? PT_RL_OP_TAKE : PT_RL_OP_DECIDE,
                                                      take ? r->lease_size : 1, 0, on_redis, s)
                             : NULL;
            if (s->pending && arm(s, (uint64_t)r->redis_timeout_ms * 1000000ull)) {
                memcpy(s->pending_key, key, klen);
                s->pending_len = (uint16_t)klen;
                return PT_FILTER_PAUSE;
            }
            if (s->pending) {
                pt_rl_redis_call_abandon(s->pending, true);
                s->pending = NULL;
            }
            st = failed(s, r);
        }
        if (st == STEP_WAIT)
            return PT_FILTER_PAUSE;
        if (st == STEP_REPLY)
            return PT_FILTER_REPLIED;
    }
    return PT_FILTER_CONTINUE;
}

/* Continue after a wait: resume the chain when every rule passed. */
static void continue_after_wait(struct rl_x *s, enum step st)
{
    if (st == STEP_NEXT) {
        s->next++;
        st = run(s) == PT_FILTER_CONTINUE ? STEP_NEXT : STEP_WAIT;
        if (st == STEP_NEXT)
            pt_exchange_resume(s->x);
    }
    /* STEP_WAIT: waiting again; STEP_REPLY: the reply runs the response. */
}

static void on_redis(void *arg, const struct pt_rl_redis_result *res)
{
    struct rl_x *s = arg;
    const struct pt_rl_rule *r = s->rr->rules[s->next];
    s->pending = NULL;
    if (s->timer)
        evtimer_del(s->timer);
    enum step st;
    if (!res->ok) {
        st = failed(s, r);
    } else if (s->pending_take) {
        /* A lease of res->value tokens: this request spends one, the
         * instance keeps the rest for lease_ttl. */
        uint64_t now = pt_time_mono_ns();
        struct pt_rl_decision d = res->d;
        d.allowed = res->value > 0;
        if (d.allowed) {
            pt_rl_table_lease_add(r->table, s->pending_key, s->pending_len, now, res->value - 1,
                                  r->lease_ttl_ns);
            d.remaining += res->value - 1;
            d.retry_ns = 0;
        } else if (d.retry_ns != UINT64_MAX) {
            pt_rl_table_lease_deny(r->table, s->pending_key, s->pending_len, now, d.retry_ns,
                                   r->lease_ttl_ns);
        }
        st = apply(s, r, &d, s->pending_key, s->pending_len, now);
    } else {
        st = apply(s, r, &res->d, s->pending_key, s->pending_len, res->now_us);
    }
    continue_after_wait(s, st);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct rl_x *s = arg;
    if (s->pending) {
        /* The rule's Redis budget is spent. */
        const struct pt_rl_rule *r = s->rr->rules[s->next];
        pt_rl_redis_call_abandon(s->pending, !r->fail_open);
        s->pending = NULL;
        continue_after_wait(s, failed(s, r));
        return;
    }
    /* A queue wait is over: ask the same rule again. */
    if (run(s) == PT_FILTER_CONTINUE)
        pt_exchange_resume(s->x);
}

static enum pt_filter_status rl_request_head(struct pt_exchange *x, void *instance)
{
    const struct pt_rl_route *rr = instance;
    struct rl_x *s = pt_exchange_alloc(x, sizeof(*s));
    struct charge *charges = pt_exchange_alloc(x, rr->n * sizeof(*charges));
    if (!s || !charges || pt_exchange_set_data(x, rr, s) != 0) {
        pt_exchange_reply_error(x, PT_ERR_LIMIT, PT_STR_NULL);
        return PT_FILTER_REPLIED;
    }
    memset(s, 0, sizeof(*s));
    s->rr = rr;
    s->x = x;
    s->charges = charges;
    if (rr->wants_identity) /* a route with `auth` has set it already */
        (void)pt_auth_identify_api_key(x, rr->plan->auth);
    return run(s);
}

static int set_number(struct pt_headers *h, struct pt_str name, uint64_t v)
{
    char buf[24];
    return pt_headers_set(h, name, (struct pt_str){buf, pt_u64_format(v, buf)});
}

static uint64_t ceil_seconds(uint64_t ns)
{
    return ns / 1000000000ull + (ns % 1000000000ull ? 1 : 0);
}

static enum pt_filter_status rl_response_head(struct pt_exchange *x, void *instance)
{
    struct rl_x *s = pt_exchange_get_data(x, instance);
    if (!s || !s->have_shown)
        return PT_FILTER_CONTINUE;
    struct pt_headers *h = pt_exchange_response_headers(x);
    const struct pt_rl_decision *d = &s->shown;
    uint64_t reset = ceil_seconds(d->reset_ns);
    /* Best effort: a response at its header limit goes out without them. */
    (void)(set_number(h, PT_STR("ratelimit-limit"), d->limit) ||
           set_number(h, PT_STR("ratelimit-remaining"), d->remaining) ||
           set_number(h, PT_STR("ratelimit-reset"), reset) ||
           set_number(h, PT_STR("x-ratelimit-limit"), d->limit) ||
           set_number(h, PT_STR("x-ratelimit-remaining"), d->remaining) ||
           set_number(h, PT_STR("x-ratelimit-reset"), reset) ||
           (s->rejected &&
            set_number(h, PT_STR("retry-after"),
                       d->retry_ns == UINT64_MAX ? 86400
                                                 : ceil_seconds(d->retry_ns ? d->retry_ns : 1))));
    return PT_FILTER_CONTINUE;
}

static void rl_done(struct pt_exchange *x, void *instance)
{
    struct rl_x *s = pt_exchange_get_data(x, instance);
    if (!s)
        return;
    bool waiting = s->pending || (s->timer && evtimer_pending(s->timer, NULL));
    if (s->pending) {
        pt_rl_redis_call_abandon(s->pending, true);
        s->pending = NULL;
    }
    if (waiting) {
        /* The client left while the request waited (queue, Redis): give
         * back what it took from the rules before. */
        refund_all(s);
    }
    if (s->timer) {
        event_free(s->timer);
        s->timer = NULL;
    }
}

const struct pt_filter_type pt_rl_filter_type = {
    .name = "rate-limit",
    .abi_version = PT_ABI_VERSION,
    .create = rl_create,
    .destroy = rl_destroy,
    .on_request_head = rl_request_head,
    .on_response_head = rl_response_head,
    .on_done = rl_done,
};
