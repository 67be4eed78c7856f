/*
 * The Admin methods over the reflection thread (transcode/reflect_client.h):
 * RefreshDescriptors and GetDescriptorsStatus. The refresh waits on the
 * admin thread for the fetch it asked for (bounded by REFRESH_WAIT_MS),
 * which delays other admin calls, never the workers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "core/arena.h"
#include "portico/admin/v1/admin.pb-c.h"
#include "portico/errors.h"
#include "transcode/reflect.h"
#include "transcode/reflect_client.h"

#define GRPC_INVALID_ARGUMENT 3
#define GRPC_DEADLINE_EXCEEDED 4
#define GRPC_NOT_FOUND 5
#define GRPC_FAILED_PRECONDITION 9
#define REFRESH_WAIT_MS 15000u

/* The service's reflection status as a message (never NULL). */
static ProtobufCMessage *status_msg(const char *service)
{
    struct pt_tc_reflect_status s;
    pt_tc_reflect_status_get(pt_tc_reflect_registry_default(), service, &s);
    Portico__Admin__V1__DescriptorsStatus *m = pt_xcalloc(1, sizeof(*m));
    portico__admin__v1__descriptors_status__init(m);
    m->service = pt_xstrdup(service);
    m->generation = s.generation;
    m->message_types = (uint32_t)s.n_messages;
    m->last_error = pt_xstrdup(s.last_error);
    m->failures = s.failures;
    size_t n = s.services[0] ? 1 : 0;
    for (const char *p = s.services; *p; p++)
        n += *p == ',';
    m->grpc_services = pt_xcalloc(n + 1, sizeof(*m->grpc_services));
    for (char *p = s.services; n && p;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        m->grpc_services[m->n_grpc_services++] = pt_xstrdup(p);
        p = comma ? comma + 1 : NULL;
    }
    return &m->base;
}

/* Status: 0 when `service` is configured with reflection; else a gRPC
 * error in st. */
static int check_service(struct pt_control *c, const char *service, struct pt_admin_status *st)
{
    if (!service || !*service) {
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "service is required");
        return -1;
    }
    pt_control_lock(c);
    int i = pt_kind_find(c->managed, PT_KIND_SERVICE, service);
    bool reflection =
        i >= 0 &&
        ((const Portico__Config__V1__Service *)pt_kind_items(c->managed, PT_KIND_SERVICE)[i])
            ->reflection;
    pt_control_unlock(c);
    if (i < 0) {
        pt_admin_status_set(st, GRPC_NOT_FOUND, "service \"%s\" not found", service);
        return -1;
    }
    if (!reflection) {
        pt_admin_status_set(st, GRPC_NOT_FOUND,
                            "service \"%s\" does not fetch descriptors by reflection "
                            "(reflection: false)",
                            service);
        return -1;
    }
    return 0;
}

void pt_admin_refresh_descriptors(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                  struct pt_admin_status *st)
{
    struct pt_control *c = ctx;
    const Portico__Admin__V1__RefreshDescriptorsRequest *r =
        (const Portico__Admin__V1__RefreshDescriptorsRequest *)rq;
    if (check_service(c, r->service, st) != 0)
        return;
    pt_control_lock(c);
    struct pt_tc_reflector *refl = c->reflector;
    pt_control_unlock(c);
    if (!refl) {
        pt_admin_status_set(st, GRPC_FAILED_PRECONDITION, "the reflection thread is not running");
        return;
    }
    uint64_t gen;
    char err[256];
    int rc = pt_tc_reflector_refresh(refl, r->service, REFRESH_WAIT_MS, &gen, err, sizeof(err));
    if (rc == PT_ERR_NOT_FOUND) {
        pt_admin_status_set(st, GRPC_NOT_FOUND, "%s", err);
        return;
    }
    if (rc != 0) {
        /* Not UNAVAILABLE: that would read as "the admin service is down". */
        pt_admin_status_set(
            st, rc == PT_ERR_TIMEOUT ? GRPC_DEADLINE_EXCEEDED : GRPC_FAILED_PRECONDITION,
            "service \"%s\": %s (the last good descriptors stay in use)", r->service, err);
        return;
    }
    *rs = status_msg(r->service);
}

void pt_admin_get_descriptors_status(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                     struct pt_admin_status *st)
{
    struct pt_control *c = ctx;
    const Portico__Admin__V1__GetDescriptorsStatusRequest *r =
        (const Portico__Admin__V1__GetDescriptorsStatusRequest *)rq;
    if (check_service(c, r->service, st) != 0)
        return;
    *rs = status_msg(r->service);
}
