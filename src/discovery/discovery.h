/*
 * discovery/discovery.h - the instances of discovered services.
 *
 * A service with `discovery` (config.proto) has no static instances: this
 * module finds them and hands every changed set to a publish callback (the
 * control plane, which recompiles the snapshot with them):
 *
 *   dns        A/AAAA records of dns_name (evdns), each with `port`
 *   dns_srv    SRV records of dns_name (our own query over UDP, TCP when
 *              truncated), lowest priority group, weights -> instance
 *              weights; targets' addresses from the additional section or
 *              evdns
 *   registration  leases made through the admin API (leases.h), removed
 *              when not renewed within their ttl
 *
 * DNS records are resolved again after their TTL, clamped to
 * [min_ttl_ms, max_ttl_ms]. A lookup that fails (timeout, SERVFAIL,
 * NXDOMAIN, no records) keeps the last good set and is retried with
 * backoff (dns_msg.h); each change between resolving and failing is
 * logged once.
 *
 * Threads: one discovery thread with its own event_base runs every lookup
 * and the lease timer; nothing here runs on workers. pt_discovery_configure
 * and the registration calls may be called from any thread; the publish
 * callback runs on the discovery thread (DNS, expiry) or on the calling
 * thread (registration), one call at a time, never with this module's lock
 * held, so it may take the control plane's lock.
 */
#ifndef PT_DISCOVERY_DISCOVERY_H
#define PT_DISCOVERY_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/snapshot.h"
#include "discovery/leases.h"
#include "portico/config/v1/config.pb-c.h"

#define PT_DISC_MAX_INSTANCES 1024 /* per service */
#define PT_DISC_DEFAULT_MIN_TTL_MS 1000u
#define PT_DISC_DEFAULT_MAX_TTL_MS 300000u
#define PT_DISC_DEFAULT_TIMEOUT_MS 2000u
#define PT_DISC_DEFAULT_ATTEMPTS 2u
#define PT_DISC_DEFAULT_MAX_REGISTRATIONS 1000u

struct pt_discovery;

typedef void pt_discovery_publish_fn(void *arg, const char *service,
                                     const struct pt_disc_instance *v, size_t n);

/* Pointer: a discovery object (never NULL; aborts when out of memory). */
struct pt_discovery *pt_discovery_new(pt_discovery_publish_fn *fn, void *arg);
/* Start the thread. Status: 0 or PT_ERR_INTERNAL (logged). */
int pt_discovery_start(struct pt_discovery *d);
/*
 * The configuration changed (or is the first): watch its discovered
 * services with its `dns` settings. Copies what it needs; a call with the
 * same services and settings changes nothing. Any thread.
 */
void pt_discovery_configure(struct pt_discovery *d, const Portico__Config__V1__Config *cfg);
/* Stop the thread and free everything. NULL is a no-op. */
void pt_discovery_free(struct pt_discovery *d);

/* ---- registration (any thread; the caller checked that the service opted in) ---- */

struct pt_disc_lease_info {
    char id[PT_LEASE_ID_LEN + 1];
    char service[256];
    struct pt_disc_instance inst;
    uint32_t ttl_ms;
    uint64_t expires_unix_ms;
};

/* Status: 0 (out filled), or PT_ERR_LIMIT (the service has max leases). */
int pt_discovery_register(struct pt_discovery *d, const char *service,
                          const struct pt_disc_instance *inst, uint32_t ttl_ms, size_t max,
                          struct pt_disc_lease_info *out);
/* Status: 0 (out filled) or PT_ERR_NOT_FOUND (unknown or expired). */
int pt_discovery_heartbeat(struct pt_discovery *d, const char *lease_id,
                           struct pt_disc_lease_info *out);
/* Status: 0 or PT_ERR_NOT_FOUND. */
int pt_discovery_deregister(struct pt_discovery *d, const char *lease_id);
/* Live leases of service (every service when NULL), in *out (caller
 * frees). Returns the count. */
size_t pt_discovery_list(struct pt_discovery *d, const char *service,
                         struct pt_disc_lease_info **out);

#endif
