/*
 * The registration methods of portico.admin.v1.Admin: instances of
 * services with discovery.kind registration, kept as leases by the
 * discovery module (in this instance's memory only).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "core/arena.h"
#include "portico/admin/v1/admin.pb-c.h"
#include "portico/errors.h"

#define GRPC_INVALID_ARGUMENT 3
#define GRPC_NOT_FOUND 5
#define GRPC_RESOURCE_EXHAUSTED 8
#define GRPC_FAILED_PRECONDITION 9
#define GRPC_UNAVAILABLE 14

#define DEFAULT_TTL_S 30u
#define MAX_TTL_S 3600u
#define MAX_WEIGHT 10000u

static Portico__Admin__V1__Lease *lease_msg(const struct pt_disc_lease_info *l)
{
    Portico__Admin__V1__Lease *m = pt_xcalloc(1, sizeof(*m));
    portico__admin__v1__lease__init(m);
    m->lease_id = pt_xstrdup(l->id);
    m->service = pt_xstrdup(l->service);
    m->host = pt_xstrdup(l->inst.host);
    m->port = l->inst.port;
    m->weight = l->inst.weight;
    m->ttl_seconds = l->ttl_ms / 1000u;
    m->expires = pt_xcalloc(1, sizeof(*m->expires));
    google__protobuf__timestamp__init(m->expires);
    m->expires->seconds = (int64_t)(l->expires_unix_ms / 1000u);
    m->expires->nanos = (int32_t)(l->expires_unix_ms % 1000u) * 1000000;
    return m;
}

/* The discovery object when registrations are possible now, else NULL
 * with st set (draining, or not attached yet). */
static struct pt_discovery *discovery(struct pt_control *c, struct pt_admin_status *st)
{
    pt_control_lock(c);
    bool draining = c->draining;
    struct pt_discovery *d = c->disc;
    pt_control_unlock(c);
    if (draining || !d) {
        pt_admin_status_set(st, GRPC_UNAVAILABLE, "%s",
                            draining ? "the gateway is shutting down; registrations are refused"
                                     : "service discovery is not running");
        return NULL;
    }
    return d;
}

void pt_admin_register_instance(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                struct pt_admin_status *st)
{
    struct pt_control *c = ctx;
    const Portico__Admin__V1__RegisterInstanceRequest *r =
        (const Portico__Admin__V1__RegisterInstanceRequest *)rq;
    struct pt_disc_instance inst;
    memset(&inst, 0, sizeof(inst));
    unsigned char ip[16];
    if (!r->service || !*r->service)
        pt_admin_status_add_violation(st, "service", "service is required");
    if (!r->host || !*r->host)
        pt_admin_status_add_violation(st, "host", "host is required");
    else if (strlen(r->host) >= sizeof(inst.host) ||
             (inet_pton(AF_INET, r->host, ip) != 1 && inet_pton(AF_INET6, r->host, ip) != 1))
        pt_admin_status_add_violation(st, "host", "\"%s\" is not an IP address", r->host);
    if (r->port == 0 || r->port > 65535)
        pt_admin_status_add_violation(st, "port", "port %u is out of range (1..65535)", r->port);
    if (r->weight > MAX_WEIGHT)
        pt_admin_status_add_violation(st, "weight", "%u is too large (at most %u)", r->weight,
                                      MAX_WEIGHT);
    if (r->ttl_seconds > MAX_TTL_S)
        pt_admin_status_add_violation(st, "ttl_seconds",
                                      "%u is out of range (1..%u, or 0 for the default %u)",
                                      r->ttl_seconds, MAX_TTL_S, DEFAULT_TTL_S);
    if (st->nviolations) {
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "%s", st->violations[0].description);
        return;
    }
    pt_control_lock(c);
    ssize_t at = pt_kind_find(c->managed, PT_KIND_SERVICE, r->service);
    const Portico__Config__V1__Service *svc = at < 0 ? NULL : c->managed->services[at];
    bool opted =
        svc && svc->discovery &&
        svc->discovery->kind == PORTICO__CONFIG__V1__DISCOVERY_KIND__DISCOVERY_KIND_REGISTRATION;
    uint32_t max = opted && svc->discovery->max_registrations ? svc->discovery->max_registrations
                                                              : PT_DISC_DEFAULT_MAX_REGISTRATIONS;
    pt_control_unlock(c);
    if (!svc) {
        pt_admin_status_set(st, GRPC_NOT_FOUND, "service \"%s\" not found", r->service);
        return;
    }
    if (!opted) {
        pt_admin_status_set(st, GRPC_FAILED_PRECONDITION,
                            "service \"%s\" does not take registrations (its discovery.kind is "
                            "not registration)",
                            r->service);
        return;
    }
    struct pt_discovery *d = discovery(c, st);
    if (!d)
        return;
    snprintf(inst.host, sizeof(inst.host), "%s", r->host);
    inst.port = (uint16_t)r->port;
    inst.weight = r->weight ? r->weight : 1;
    uint32_t ttl = r->ttl_seconds ? r->ttl_seconds : DEFAULT_TTL_S;
    struct pt_disc_lease_info info;
    /* Not under the control lock: the new set is compiled and published
     * (under that lock) before this returns. */
    if (pt_discovery_register(d, r->service, &inst, ttl * 1000u, max, &info) != 0) {
        pt_admin_status_set(st, GRPC_RESOURCE_EXHAUSTED,
                            "service \"%s\" has %u registrations already "
                            "(discovery.max_registrations)",
                            r->service, max);
        return;
    }
    *rs = &lease_msg(&info)->base;
}

void pt_admin_heartbeat(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                        struct pt_admin_status *st)
{
    const Portico__Admin__V1__HeartbeatRequest *r =
        (const Portico__Admin__V1__HeartbeatRequest *)rq;
    if (!r->lease_id || !*r->lease_id) {
        pt_admin_status_add_violation(st, "lease_id", "lease_id is required");
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "lease_id is required");
        return;
    }
    struct pt_discovery *d = discovery(ctx, st);
    if (!d)
        return;
    struct pt_disc_lease_info info;
    if (pt_discovery_heartbeat(d, r->lease_id, &info) != 0) {
        pt_admin_status_set(st, GRPC_NOT_FOUND,
                            "lease \"%s\" not found (expired, deregistered, or never made here)",
                            r->lease_id);
        return;
    }
    *rs = &lease_msg(&info)->base;
}

void pt_admin_deregister_instance(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                  struct pt_admin_status *st)
{
    const Portico__Admin__V1__DeregisterInstanceRequest *r =
        (const Portico__Admin__V1__DeregisterInstanceRequest *)rq;
    if (!r->lease_id || !*r->lease_id) {
        pt_admin_status_add_violation(st, "lease_id", "lease_id is required");
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "lease_id is required");
        return;
    }
    struct pt_discovery *d = discovery(ctx, st);
    if (!d)
        return;
    if (pt_discovery_deregister(d, r->lease_id) != 0) {
        pt_admin_status_set(st, GRPC_NOT_FOUND, "lease \"%s\" not found", r->lease_id);
        return;
    }
    Google__Protobuf__Empty *e = pt_xcalloc(1, sizeof(*e));
    google__protobuf__empty__init(e);
    *rs = &e->base;
}

void pt_admin_list_registrations(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                 struct pt_admin_status *st)
{
    struct pt_control *c = ctx;
    const Portico__Admin__V1__ListRegistrationsRequest *r =
        (const Portico__Admin__V1__ListRegistrationsRequest *)rq;
    if (r->service && *r->service) {
        pt_control_lock(c);
        bool found = pt_kind_find(c->managed, PT_KIND_SERVICE, r->service) >= 0;
        pt_control_unlock(c);
        if (!found) {
            pt_admin_status_set(st, GRPC_NOT_FOUND, "service \"%s\" not found", r->service);
            return;
        }
    }
    pt_control_lock(c);
    struct pt_discovery *d = c->disc;
    pt_control_unlock(c);
    Portico__Admin__V1__ListRegistrationsResponse *m = pt_xcalloc(1, sizeof(*m));
    portico__admin__v1__list_registrations_response__init(m);
    *rs = &m->base;
    if (!d)
        return;
    struct pt_disc_lease_info *v;
    size_t n = pt_discovery_list(d, r->service, &v);
    m->registrations = pt_xcalloc(n + 1, sizeof(*m->registrations));
    for (size_t i = 0; i < n; i++)
        m->registrations[m->n_registrations++] = lease_msg(&v[i]);
    free(v);
}
