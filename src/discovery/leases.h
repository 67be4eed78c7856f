/*
 * discovery/leases.h - instances registered through the admin API, sans I/O.
 *
 * A lease is one registered instance of a service that opted in
 * (discovery.kind registration): it lives ttl_ms past its registration or
 * its last heartbeat. Times are milliseconds of a clock the caller passes
 * (monotonic in the gateway, a fake one in tests). Leases are kept in
 * memory, per gateway instance.
 *
 * Thread: not synchronized; discovery.c holds its lock around every call.
 */
#ifndef PT_DISCOVERY_LEASES_H
#define PT_DISCOVERY_LEASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"

#define PT_LEASE_ID_LEN 32

struct pt_lease {
    char id[PT_LEASE_ID_LEN + 1];
    char *service;
    struct pt_disc_instance inst;
    uint32_t ttl_ms;
    uint64_t expires_ms;
};

struct pt_leases {
    struct pt_lease *v;
    size_t n;
    size_t cap;
};

void pt_leases_init(struct pt_leases *l);
void pt_leases_fini(struct pt_leases *l);

/*
 * Register inst for service, or renew the lease that already holds the
 * same service, host and port (its weight and ttl are updated, its id
 * kept). id: the new lease's id (caller's random hex). max: the service's
 * limit on live leases. Pointer: the lease (valid until the next call), or
 * NULL when the service has max leases already.
 */
struct pt_lease *pt_leases_put(struct pt_leases *l, const char *service,
                               const struct pt_disc_instance *inst, uint32_t ttl_ms, const char *id,
                               size_t max, uint64_t now_ms);
/* Pointer: the live lease with this id (expiry pushed to now + ttl), or
 * NULL (unknown or expired). */
struct pt_lease *pt_leases_renew(struct pt_leases *l, const char *id, uint64_t now_ms);
/* Remove the lease with this id. Pointer-free: on success *service gets a
 * malloc'd copy of its service name (caller frees). Status: 0 or
 * PT_ERR_NOT_FOUND. */
int pt_leases_remove(struct pt_leases *l, const char *id, uint64_t now_ms, char **service);
/* Remove expired leases; the services that lost one are appended to
 * *services (malloc'd names, caller frees each and the array). Returns how
 * many were removed. */
size_t pt_leases_expire(struct pt_leases *l, uint64_t now_ms, char ***services, size_t *nservices);
/* Remove every lease of services keep() rejects (no longer opted in).
 * Returns how many were removed. */
size_t pt_leases_retain(struct pt_leases *l, bool (*keep)(void *arg, const char *service),
                        void *arg);
/* The live instances of service, normalized (sorted). Returns the count
 * written to out (at most cap). */
size_t pt_leases_instances(const struct pt_leases *l, const char *service, uint64_t now_ms,
                           struct pt_disc_instance *out, size_t cap);
/* Live leases of service; the earliest expiry among all leases (UINT64_MAX
 * when none). */
size_t pt_leases_count(const struct pt_leases *l, const char *service, uint64_t now_ms);
uint64_t pt_leases_next_expiry(const struct pt_leases *l);

#endif
