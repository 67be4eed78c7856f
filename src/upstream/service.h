/*
 * upstream/service.h - a compiled service: a named group of endpoints.
 *
 * Services are part of a snapshot (immutable, shared by workers). Runtime
 * state (connection pools) lives per worker in pt_up_worker, keyed by
 * stable names, so a reload that keeps a service keeps its warm
 * connections. Balancer state (lb.h) belongs to the compiled service: one
 * pt_lb_local per worker, plus per-endpoint atomics for in-flight counts
 * and latencies; a reload starts it afresh.
 */
#ifndef PT_UPSTREAM_SERVICE_H
#define PT_UPSTREAM_SERVICE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "portico/str.h"
#include "upstream/health.h"
#include "upstream/lb.h"

struct pt_breaker;
struct pt_retry_budget;

enum pt_up_protocol {
    PT_UP_HTTP1 = 0,
    PT_UP_H2, /* HTTP/2; TLS when the service has an ssl_ctx */
};

struct pt_endpoint {
    char *host;
    uint16_t port;
    uint32_t weight;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char *key; /* "host:port": identity in pools and logs */
    /* One slot per worker, written only by that worker: its pool for this
     * endpoint, found by name once per snapshot instead of per request. */
    void **pool_cache;
    /* Per-instance circuit breaker (one reference), or NULL. */
    struct pt_breaker *breaker;
    /* Health (upstream/health.h; one reference) when the service has an
     * active check or outlier detection, else NULL. */
    struct pt_health *health;
};

struct pt_service {
    char *name;
    enum pt_up_protocol protocol;
    bool grpc; /* requests must be gRPC (415 otherwise) */
    struct pt_endpoint *endpoints;
    uint32_t nendpoints;
    uint32_t connect_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t max_connections;     /* per worker and endpoint */
    SSL_CTX *ssl_ctx;             /* NULL: cleartext */
    char *sni;                    /* NULL: the endpoint host */
    char *pool_prefix;            /* protocol and TLS identity, part of pool keys */
    struct pt_lb lb;              /* endpoint choice (compiled with the endpoints) */
    struct pt_lb_local *lb_local; /* per worker: its balancer state (see pool_cache) */
    unsigned nworkers;            /* entries in lb_local */
    /* Circuit breaker (upstream/breaker.h; one reference), or NULL. */
    struct pt_breaker *breaker;
    /* Health: an active check (has_check), outlier detection
     * (outlier.consecutive > 0), and what to do when no instance is
     * usable (panic_mode: use them all; else fail with
     * PT_ERR_NO_HEALTHY). health_any: endpoints have health. */
    bool has_check;
    bool health_any;
    bool panic_mode;
    struct pt_health_check_conf check;
    struct pt_outlier_conf outlier;
    struct pt_health **healths; /* nendpoints (the endpoints' health), or NULL */
    atomic_bool in_panic;       /* logged once per entering panic */
    /* Retry budget counters of this service name (upstream/retry.h; one
     * reference, taken and dropped by the snapshot), or NULL. */
    struct pt_retry_budget *retry_budget;
};

/* Allocate the per-worker cache slots and balancer states, after s->lb is
 * compiled (nworkers 0: none, checking only). */
void pt_service_alloc_caches(struct pt_service *s, unsigned nworkers);

/*
 * Index of the endpoint to use instead of i: i itself when its breaker
 * would admit a call, else the next one (in order, skipping avoid and
 * those down[] marks; down may be NULL) whose breaker would, else i. For endpoint choice. Thread:
 * any worker.
 */
uint32_t pt_service_skip_open(const struct pt_service *s, uint32_t i, int avoid, uint64_t now_ns,
                              const bool *down);

/*
 * Health of the endpoints for a choice at now_ns: down[i] = true when
 * endpoint i is not usable (actively unhealthy or ejected). Returns the
 * number of usable endpoints. s->health_any must be set.
 */
uint32_t pt_service_health_mask(const struct pt_service *s, uint64_t now_ns, bool *down);

/* Release what a compiled service owns (not the struct itself). */
void pt_service_fini(struct pt_service *s);

#endif
