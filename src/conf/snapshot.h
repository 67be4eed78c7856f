/*
 * conf/snapshot.h - a configuration compiled for the data plane.
 *
 * pt_snapshot_compile() turns a validated pt_conf into everything workers
 * need, once: the router, services with resolved addresses and TLS
 * contexts, listener sockets (acquired from the registry), filter instances
 * (each filter's create() checks its own config), and limits with defaults
 * applied. Nothing here is interpreted per request.
 *
 * A snapshot is immutable and reference-counted (core/snapshot.h); any
 * failure compiles nothing and leaves the running snapshot in place.
 *
 * Thread: compile on the control thread; read from any worker.
 */
#ifndef PT_CONF_SNAPSHOT_H
#define PT_CONF_SNAPSHOT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/conf.h"
#include "core/diag.h"
#include "core/snapshot.h"
#include "http/server.h"
#include "observe/metrics.h"
#include "portico/filter.h"
#include "ratelimit/ratelimit.h"
#include "route/router.h"
#include "upstream/service.h"

/* Defaults (the proto comments document them for operators). */
#define PT_DEFAULT_MAX_HEADER_BYTES 65536u
#define PT_DEFAULT_MAX_HEADERS 100u
#define PT_DEFAULT_MAX_BODY_BYTES (32ull * 1024 * 1024)
#define PT_DEFAULT_MAX_CONCURRENT_STREAMS 128u
#define PT_DEFAULT_IDLE_TIMEOUT_MS 60000u
#define PT_DEFAULT_HEADER_TIMEOUT_MS 10000u
#define PT_DEFAULT_REQUEST_TIMEOUT_MS 60000u
#define PT_DEFAULT_STREAM_IDLE_TIMEOUT_MS 300000u
#define PT_DEFAULT_MAX_CONNECTIONS 10000u
#define PT_DEFAULT_MAX_RESETS_PER_SECOND 200u
#define PT_DEFAULT_DRAIN_TIMEOUT_MS 30000u
#define PT_DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define PT_DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS 60000u
#define PT_DEFAULT_UPSTREAM_MAX_CONNECTIONS 64u

/* retry_on conditions. */
enum pt_retry_on {
    PT_RETRY_CONNECT_FAILURE = 1u << 0,
    PT_RETRY_REFUSED_STREAM = 1u << 1,
    PT_RETRY_RESET = 1u << 2,
    PT_RETRY_5XX = 1u << 3,
    PT_RETRY_GATEWAY_ERROR = 1u << 4,
    PT_RETRY_GRPC_UNAVAILABLE = 1u << 5,
};

struct pt_filter_inst {
    const struct pt_filter_type *type;
    void *instance;
};

/* An ordered filter chain: global filters, then the route's own. */
struct pt_chain {
    struct pt_filter_inst *filters;
    uint16_t n;
    bool request_body_hooks;
    bool response_body_hooks;
};

struct pt_route_conf {
    char *name;
    struct pt_str name_str;
    const struct pt_service *service;
    struct pt_chain chain;
    uint32_t timeout_ms; /* 0: none */
    bool timeout_set;    /* configured on the route (else the default applies to non-gRPC) */
    uint64_t max_body_bytes;
    bool websocket;
    uint32_t retry_count;
    unsigned retry_on; /* enum pt_retry_on */
    /* Counters of this route name (observe/metrics.h), shared with every
     * snapshot that has the route; one reference held by this snapshot.
     * NULL when compiled without workers. */
    struct pt_route_stats *stats;
};

struct pt_listener_rt {
    char *name;
    char *address;
    const int *fds; /* one per worker, owned by the listen registry */
    bool http1;
    bool h2c;
    bool h2;
    SSL_CTX *ssl_ctx; /* NULL without tls */
};

struct pt_snapshot {
    struct pt_snap_base base;
    struct pt_conf *conf; /* the source, kept for export and reporting */
    unsigned nworkers;
    struct pt_router *router;
    struct pt_route_conf *routes; /* indexed like the config's routes */
    size_t nroutes;
    struct pt_service *services;
    size_t nservices;
    struct pt_listener_rt *listeners;
    size_t nlisteners;
    /* Counters of requests no route matches (PT_METRICS_NO_ROUTE); one
     * reference held by this snapshot, NULL when compiled without workers. */
    struct pt_route_stats *no_route_stats;
    /* Global filters alone: the chain of requests no route matches. */
    struct pt_chain global_chain;
    /* Every filter instance, for destruction. */
    struct pt_filter_inst *instances;
    size_t ninstances;

    /* Rate-limit rules and API keys (ratelimit/ratelimit.h); each route's
     * chain ends with its rate-limit instance when rules apply to it. */
    struct pt_rl_plan *ratelimit;

    struct pt_server_limits limits;
    uint64_t max_body_bytes;
    uint32_t request_timeout_ms;
    uint32_t stream_idle_timeout_ms;
    uint32_t max_connections; /* per worker */
    uint32_t drain_timeout_ms;
    bool access_log_enabled;
    char *access_log_path;
};

/*
 * Pointer: a new snapshot (reference count 1) that takes ownership of conf,
 * or NULL with every error in diag (conf is then left to the caller).
 * Validates conf first. nworkers fixes how many listening sockets each
 * listener gets; 0 compiles without binding any (--check-config).
 */
struct pt_snapshot *pt_snapshot_compile(struct pt_conf *conf, unsigned nworkers,
                                        uint64_t generation, struct pt_diag *diag);

static inline const struct pt_snapshot *pt_snapshot_of(const struct pt_snap_base *b)
{
    return (const struct pt_snapshot *)b;
}

/* Name of the filter installed first in every chain unless configured. */
#define PT_DEFAULT_REQUEST_ID_FILTER "request-id"

#endif
