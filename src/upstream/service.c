#include "upstream/service.h"

#include <stdlib.h>

#include "core/arena.h"

void pt_service_alloc_caches(struct pt_service *s, unsigned nworkers)
{
    if (!nworkers)
        return;
    s->rr_cache = pt_xcalloc(nworkers, sizeof(void *));
    for (uint32_t i = 0; i < s->nendpoints; i++)
        s->endpoints[i].pool_cache = pt_xcalloc(nworkers, sizeof(void *));
}

void pt_service_fini(struct pt_service *s)
{
    for (uint32_t i = 0; i < s->nendpoints; i++) {
        free(s->endpoints[i].host);
        free(s->endpoints[i].key);
        free(s->endpoints[i].pool_cache);
    }
    free(s->rr_cache);
    free(s->endpoints);
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    free(s->sni);
    free(s->pool_prefix);
    free(s->name);
}
