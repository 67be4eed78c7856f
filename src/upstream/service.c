#include "upstream/service.h"

#include <stdlib.h>

void pt_service_fini(struct pt_service *s)
{
    for (uint32_t i = 0; i < s->nendpoints; i++) {
        free(s->endpoints[i].host);
        free(s->endpoints[i].key);
    }
    free(s->endpoints);
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    free(s->sni);
    free(s->pool_prefix);
    free(s->name);
}
