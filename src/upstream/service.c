#include "upstream/service.h"

#include <stdlib.h>

#include "core/arena.h"
#include "upstream/breaker.h"

void pt_service_alloc_caches(struct pt_service *s, unsigned nworkers)
{
    if (!nworkers)
        return;
    s->nworkers = nworkers;
    s->lb_local = pt_lb_xcalloc_aligned(nworkers, sizeof(*s->lb_local));
    for (unsigned w = 0; w < nworkers; w++)
        pt_lb_local_init(&s->lb_local[w], &s->lb, w);
    for (uint32_t i = 0; i < s->nendpoints; i++)
        s->endpoints[i].pool_cache = pt_xcalloc(nworkers, sizeof(void *));
}

uint32_t pt_service_skip_open(const struct pt_service *s, uint32_t i, int avoid, uint64_t now_ns,
                              const bool *down)
{
    if (!s->endpoints[i].breaker || pt_breaker_would_allow(s->endpoints[i].breaker, now_ns))
        return i;
    for (uint32_t k = 1; k < s->nendpoints; k++) {
        uint32_t j = (i + k) % s->nendpoints;
        if ((int)j != avoid && !(down && down[j]) &&
            pt_breaker_would_allow(s->endpoints[j].breaker, now_ns))
            return j;
    }
    return i;
}

uint32_t pt_service_health_mask(const struct pt_service *s, uint64_t now_ns, bool *down)
{
    uint32_t usable = 0;
    for (uint32_t i = 0; i < s->nendpoints; i++) {
        down[i] = !pt_health_usable(s->endpoints[i].health, now_ns);
        usable += !down[i];
    }
    return usable;
}

void pt_service_fini(struct pt_service *s)
{
    for (uint32_t i = 0; i < s->nendpoints; i++) {
        free(s->endpoints[i].host);
        free(s->endpoints[i].key);
        free(s->endpoints[i].pool_cache);
        pt_breaker_unref(s->endpoints[i].breaker);
        pt_health_unref(s->endpoints[i].health);
    }
    free(s->healths);
    pt_health_check_conf_fini(&s->check);
    for (unsigned w = 0; s->lb_local && w < s->nworkers; w++)
        pt_lb_local_fini(&s->lb_local[w]);
    free(s->lb_local);
    pt_lb_fini(&s->lb);
    pt_breaker_unref(s->breaker);
    free(s->endpoints);
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    free(s->sni);
    free(s->pool_prefix);
    free(s->name);
}
