/*
 * Transcoding in a snapshot: each gRPC service's descriptor set
 * (Service.descriptor_set_file) read and built into a pool, and each
 * route's Transcode compiled against its service's pool. A service with
 * reflection: true and no descriptor set gives its routes a live route
 * instead, recompiled from every pool the reflection thread publishes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"
#include "conf/snapshot.h"
#include "transcode/descpool.h"
#include "transcode/reflect.h"
#include "transcode/route.h"
#include "transcode/route_live.h"

#define WHERE_LEN 512

/* Read path whole (at most max bytes). Pointer: malloc'd bytes, or NULL
 * with why set. */
static uint8_t *read_file(const char *path, size_t max, size_t *len, char *why, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, n, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 64 * 1024, got = 0;
    uint8_t *buf = pt_xmalloc(cap);
    for (;;) {
        if (got == cap) {
            if (cap > max) {
                snprintf(why, n, "%s is larger than %zu bytes", path, max);
                free(buf);
                fclose(f);
                return NULL;
            }
            cap *= 2;
            buf = pt_xrealloc(buf, cap);
        }
        size_t r = fread(buf + got, 1, cap - got, f);
        got += r;
        if (r == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad || got > max) {
        snprintf(why, n, bad ? "cannot read %s" : "%s is too large", path);
        free(buf);
        return NULL;
    }
    *len = got;
    return buf;
}

int pt_snapshot_load_descriptors(struct pt_snapshot *s, struct pt_diag *diag)
{
    const Portico__Config__V1__Config *cfg = pt_conf_config(s->conf);
    int rc = 0;
    s->desc_pools = pt_xcalloc(cfg->n_services + 1, sizeof(*s->desc_pools));
    for (size_t i = 0; i < cfg->n_services && i < s->nservices; i++) {
        const Portico__Config__V1__Service *sc = cfg->services[i];
        if (!sc->descriptor_set_file || !*sc->descriptor_set_file)
            continue;
        char where[WHERE_LEN], field[64], why[512];
        snprintf(field, sizeof(field), "services[%zu].descriptor_set_file", i);
        pt_conf_where(s->conf, sc, "descriptor_set_file", where, sizeof(where));
        if (!s->services[i].grpc) {
            pt_diag_addf(diag, where, field, "a descriptor set needs protocol grpc");
            rc = -1;
            continue;
        }
        size_t len = 0;
        uint8_t *set = read_file(sc->descriptor_set_file, PT_DESCPOOL_DEFAULT_MAX_BYTES, &len, why,
                                 sizeof(why));
        if (set)
            s->desc_pools[i] = pt_descpool_new_from_set(set, len, NULL, why, sizeof(why));
        free(set);
        if (!s->desc_pools[i]) {
            pt_diag_addf(diag, where, field, "%s", why);
            rc = -1;
        }
    }
    return rc;
}

int pt_snapshot_compile_transcode(struct pt_snapshot *s, size_t route, struct pt_diag *diag)
{
    const Portico__Config__V1__Config *cfg = pt_conf_config(s->conf);
    const Portico__Config__V1__Route *r = cfg->routes[route];
    struct pt_route_conf *rc = &s->routes[route];
    if (!r->transcode)
        return 0;
    char where[WHERE_LEN], field[64];
    pt_conf_where(s->conf, r, "transcode", where, sizeof(where));
    snprintf(field, sizeof(field), "routes[%zu].transcode", route);
    if (!rc->service) {
        pt_diag_addf(diag, where, field, "transcoding needs one service (not splits or versions)");
        return -1;
    }
    size_t si = (size_t)(rc->service - s->services);
    bool reflection = si < s->nservices && si < cfg->n_services && cfg->services[si]->reflection;
    if (!rc->service->grpc || si >= s->nservices || (!s->desc_pools[si] && !reflection)) {
        pt_diag_addf(diag, where, field,
                     "service \"%s\" needs protocol grpc and a descriptor_set_file or "
                     "reflection: true",
                     rc->service->name);
        return -1;
    }
    if (!s->desc_pools[si]) {
        /* Reflection only (a descriptor_set_file, when set, wins): the
         * route follows the registry's pools without a reload; until the
         * first fetch it answers 503 (transcode/route_live.h). */
        if (pt_tc_route_check_options(r->transcode, where, diag) != 0)
            return -1;
        rc->transcode = pt_tc_route_new_live(pt_tc_live_new(
            r->transcode, pt_tc_reflect_registry_default(), rc->service->name, where, s->nworkers));
        return 0;
    }
    rc->transcode = pt_tc_route_compile(r->transcode, s->desc_pools[si], where, diag);
    return rc->transcode ? 0 : -1;
}

void pt_snapshot_transcode_fini(struct pt_snapshot *s)
{
    for (size_t i = 0; s->routes && i < s->nroutes; i++) {
        pt_tc_route_free(s->routes[i].transcode);
        s->routes[i].transcode = NULL;
    }
    if (s->desc_pools)
        for (size_t i = 0; i < s->nservices; i++)
            pt_descpool_unref(s->desc_pools[i]);
    free(s->desc_pools);
    s->desc_pools = NULL;
}
