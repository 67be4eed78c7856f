/*
 * Circuit breakers around upstream attempts: admission before an attempt,
 * the outcome of each attempt recorded once (upstream/breaker.h).
 *
 * The state of the current attempt (its tickets) is per-exchange data in
 * the arena, created on the first attempt of a service that has a breaker
 * or outlier detection, so exchanges of services without either pay
 * nothing.
 *
 * Outlier detection (upstream/health.h) is fed here too: the outcome of
 * each attempt on an instance, classified like a breaker with the default
 * failure_on (5xx, timeout, reset, connect-failure).
 */
#include "conf/snapshot.h"
#include "core/log.h"
#include "core/time.h"
#include "portico/errors.h"
#include "proxy/proxy_int.h"
#include "upstream/breaker.h"
#include "upstream/health.h"

static const char circuit_key; /* the per-exchange data key */

struct circuit_call {
    struct pt_breaker *svc_b; /* NULL: no attempt outstanding */
    struct pt_breaker *ep_b;
    struct pt_breaker_ticket svc_t;
    struct pt_breaker_ticket ep_t;
    int ep_h; /* outlier detection: endpoint index of the attempt, or -1 */
};

static struct circuit_call *call_of(struct pt_exchange *x, bool create)
{
    struct circuit_call *c = pt_exchange_get_data(x, &circuit_key);
    if (c || !create)
        return c;
    c = pt_exchange_alloc(x, sizeof(*c));
    if (!c)
        return NULL;
    *c = (struct circuit_call){.ep_h = -1};
    if (pt_exchange_set_data(x, &circuit_key, c) != 0)
        return NULL;
    return c;
}

int pt_proxy_circuit_admit(struct pt_exchange *x)
{
    const struct pt_service *svc = x->service;
    if (!svc->breaker && !svc->outlier.consecutive)
        return 0;
    struct circuit_call *c = call_of(x, true);
    if (!c)
        return 0; /* at the arena limit: the attempt goes on unguarded */
    c->ep_h = -1;
    if (!svc->breaker)
        return 0;
    uint64_t now = pt_time_mono_ns();
    if (pt_breaker_allow(svc->breaker, now, &c->svc_t) == PT_BREAKER_REJECT)
        return PT_ERR_CIRCUIT_OPEN;
    if (pt_breaker_conf_of(svc->breaker)->per_instance) {
        bool any = false;
        for (uint32_t i = 0; i < svc->nendpoints && !any; i++)
            any = pt_breaker_would_allow(svc->endpoints[i].breaker, now);
        if (!any) {
            /* Give the admission back unused. */
            pt_breaker_record(svc->breaker, now, &c->svc_t, PT_BREAKER_IGNORED);
            return PT_ERR_CIRCUIT_OPEN;
        }
    }
    c->svc_b = svc->breaker;
    c->ep_b = NULL;
    return 0;
}

void pt_proxy_circuit_chosen(struct pt_exchange *x, int endpoint)
{
    struct circuit_call *c = call_of(x, false);
    if (!c || endpoint < 0)
        return;
    const struct pt_service *svc = x->service;
    if (svc->outlier.consecutive && (uint32_t)endpoint < svc->nendpoints &&
        svc->endpoints[endpoint].health)
        c->ep_h = endpoint;
    if (!c->svc_b)
        return;
    if ((uint32_t)endpoint >= svc->nendpoints || !svc->endpoints[endpoint].breaker)
        return;
    /* The choice skipped instances that would not admit a call; another
     * worker may have taken the last probe slot meanwhile: then this
     * attempt goes on and is not counted there (a REJECT ticket). */
    c->ep_b = svc->endpoints[endpoint].breaker;
    pt_breaker_allow(c->ep_b, pt_time_mono_ns(), &c->ep_t);
}

/* Outlier detection: the attempt's outcome on its instance. */
static void record_health(struct pt_exchange *x, struct circuit_call *c, bool known, int err,
                          int status, int grpc, uint64_t now)
{
    const struct pt_service *svc = x->service;
    uint32_t i = (uint32_t)c->ep_h;
    c->ep_h = -1;
    if (!known || i >= svc->nendpoints)
        return;
    /* gRPC: the codes that say the server failed, not the call's input. */
    static const struct pt_breaker_conf fail_on = {
        .fail_on = PT_BREAKER_ON_DEFAULT,
        .grpc_codes =
            1u << 2 | 1u << 13 | 1u << 14 | 1u << 15, /* UNKNOWN INTERNAL UNAVAILABLE DATA_LOSS */
    };
    bool failure = pt_breaker_conf_is_failure(&fail_on, err, status, grpc);
    if (pt_health_outcome(svc->endpoints[i].health, &svc->outlier, failure, now, svc->healths,
                          svc->nendpoints)) {
        struct pt_health_info info;
        pt_health_read(svc->endpoints[i].health, now, &info);
        uint64_t until =
            atomic_load_explicit(&svc->endpoints[i].health->ejected_until_ns, memory_order_relaxed);
        pt_log_info("service %s: instance %s ejected for %llu ms (outlier detection, ejection %u)",
                    svc->name, svc->endpoints[i].key, (unsigned long long)((until - now) / 1000000),
                    info.ejections);
    }
}

static void record(struct pt_exchange *x, bool known, int err, int status, int grpc)
{
    struct circuit_call *c = call_of(x, false);
    if (!c)
        return;
    uint64_t now = 0;
    if (c->ep_h >= 0) {
        now = pt_time_mono_ns();
        record_health(x, c, known, err, status, grpc, now);
    }
    if (!c->svc_b)
        return;
    if (!now)
        now = pt_time_mono_ns();
    enum pt_breaker_outcome o = PT_BREAKER_IGNORED;
    if (known)
        o = pt_breaker_conf_is_failure(pt_breaker_conf_of(c->svc_b), err, status, grpc)
                ? PT_BREAKER_FAILURE
                : PT_BREAKER_SUCCESS;
    pt_breaker_record(c->svc_b, now, &c->svc_t, o);
    if (c->ep_b)
        pt_breaker_record(c->ep_b, now, &c->ep_t, o);
    c->svc_b = c->ep_b = NULL;
}

void pt_proxy_circuit_done(struct pt_exchange *x, int err, int status, int grpc)
{
    record(x, true, err, status, grpc);
}

void pt_proxy_circuit_abandon(struct pt_exchange *x)
{
    record(x, false, 0, 0, -1);
}
