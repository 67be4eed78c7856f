/* Registered instances and their expiry. See leases.h. */
#include "discovery/leases.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "discovery/dns_msg.h"
#include "portico/errors.h"

void pt_leases_init(struct pt_leases *l)
{
    memset(l, 0, sizeof(*l));
}

static void lease_drop(struct pt_leases *l, size_t i)
{
    free(l->v[i].service);
    l->v[i] = l->v[l->n - 1];
    l->n--;
}

void pt_leases_fini(struct pt_leases *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].service);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

size_t pt_leases_count(const struct pt_leases *l, const char *service, uint64_t now_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].expires_ms > now_ms && strcmp(l->v[i].service, service) == 0)
            n++;
    return n;
}

struct pt_lease *pt_leases_put(struct pt_leases *l, const char *service,
                               const struct pt_disc_instance *inst, uint32_t ttl_ms, const char *id,
                               size_t max, uint64_t now_ms)
{
    for (size_t i = 0; i < l->n; i++) {
        struct pt_lease *e = &l->v[i];
        if (strcmp(e->service, service) == 0 && strcmp(e->inst.host, inst->host) == 0 &&
            e->inst.port == inst->port) {
            e->inst.weight = inst->weight;
            e->ttl_ms = ttl_ms;
            e->expires_ms = now_ms + ttl_ms;
            return e;
        }
    }
    if (pt_leases_count(l, service, now_ms) >= max)
        return NULL;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = pt_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    struct pt_lease *e = &l->v[l->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->service = pt_xstrdup(service);
    e->inst = *inst;
    e->ttl_ms = ttl_ms;
    e->expires_ms = now_ms + ttl_ms;
    return e;
}

static ssize_t find(const struct pt_leases *l, const char *id, uint64_t now_ms)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].id, id) == 0)
            return l->v[i].expires_ms > now_ms ? (ssize_t)i : -1;
    return -1;
}

struct pt_lease *pt_leases_renew(struct pt_leases *l, const char *id, uint64_t now_ms)
{
    ssize_t i = find(l, id, now_ms);
    if (i < 0)
        return NULL;
    l->v[i].expires_ms = now_ms + l->v[i].ttl_ms;
    return &l->v[i];
}

int pt_leases_remove(struct pt_leases *l, const char *id, uint64_t now_ms, char **service)
{
    ssize_t i = find(l, id, now_ms);
    if (i < 0)
        return PT_ERR_NOT_FOUND;
    *service = pt_xstrdup(l->v[i].service);
    lease_drop(l, (size_t)i);
    return 0;
}

static void note_service(char ***services, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*services)[i], name) == 0)
            return;
    *services = pt_xrealloc(*services, (*n + 1) * sizeof(**services));
    (*services)[(*n)++] = pt_xstrdup(name);
}

size_t pt_leases_expire(struct pt_leases *l, uint64_t now_ms, char ***services, size_t *nservices)
{
    size_t removed = 0;
    for (size_t i = 0; i < l->n;) {
        if (l->v[i].expires_ms > now_ms) {
            i++;
            continue;
        }
        note_service(services, nservices, l->v[i].service);
        lease_drop(l, i);
        removed++;
    }
    return removed;
}

size_t pt_leases_retain(struct pt_leases *l, bool (*keep)(void *arg, const char *service),
                        void *arg)
{
    size_t removed = 0;
    for (size_t i = 0; i < l->n;) {
        if (keep(arg, l->v[i].service)) {
            i++;
            continue;
        }
        lease_drop(l, i);
        removed++;
    }
    return removed;
}

size_t pt_leases_instances(const struct pt_leases *l, const char *service, uint64_t now_ms,
                           struct pt_disc_instance *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n && n < cap; i++)
        if (l->v[i].expires_ms > now_ms && strcmp(l->v[i].service, service) == 0)
            out[n++] = l->v[i].inst;
    return pt_disc_instances_normalize(out, n);
}

uint64_t pt_leases_next_expiry(const struct pt_leases *l)
{
    uint64_t t = UINT64_MAX;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].expires_ms < t)
            t = l->v[i].expires_ms;
    return t;
}
