/*
 * Circuit breakers around upstream attempts: admission before an attempt,
 * the outcome of each attempt recorded once (upstream/breaker.h).
 *
 * The state of the current attempt (its tickets) is per-exchange data in
 * the arena, created on the first attempt of a service that has a breaker,
 * so exchanges of services without one pay nothing.
 */
#include "conf/snapshot.h"
#include "core/time.h"
#include "portico/errors.h"
#include "proxy/proxy_int.h"
#include "upstream/breaker.h"

static const char circuit_key; /* the per-exchange data key */

struct circuit_call {
    struct pt_breaker *svc_b; /* NULL: no attempt outstanding */
    struct pt_breaker *ep_b;
    struct pt_breaker_ticket svc_t;
    struct pt_breaker_ticket ep_t;
};

static struct circuit_call *call_of(struct pt_exchange *x, bool create)
{
    struct circuit_call *c = pt_exchange_get_data(x, &circuit_key);
    if (c || !create)
        return c;
    c = pt_exchange_alloc(x, sizeof(*c));
    if (!c)
        return NULL;
    *c = (struct circuit_call){0};
    if (pt_exchange_set_data(x, &circuit_key, c) != 0)
        return NULL;
    return c;
}

int pt_proxy_circuit_admit(struct pt_exchange *x)
{
    const struct pt_service *svc = x->service;
    if (!svc->breaker)
        return 0;
    struct circuit_call *c = call_of(x, true);
    if (!c)
        return 0; /* at the arena limit: the attempt goes on unguarded */
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
    if (!c || !c->svc_b || endpoint < 0)
        return;
    const struct pt_service *svc = x->service;
    if ((uint32_t)endpoint >= svc->nendpoints || !svc->endpoints[endpoint].breaker)
        return;
    /* The choice skipped instances that would not admit a call; another
     * worker may have taken the last probe slot meanwhile: then this
     * attempt goes on and is not counted there (a REJECT ticket). */
    c->ep_b = svc->endpoints[endpoint].breaker;
    pt_breaker_allow(c->ep_b, pt_time_mono_ns(), &c->ep_t);
}

static void record(struct pt_exchange *x, bool known, int err, int status, int grpc)
{
    struct circuit_call *c = call_of(x, false);
    if (!c || !c->svc_b)
        return;
    uint64_t now = pt_time_mono_ns();
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
