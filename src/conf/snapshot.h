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

#include "auth/auth.h"
#include "conf/conf.h"
#include "core/diag.h"
#include "core/snapshot.h"
#include "http/server.h"
#include "observe/metrics.h"
#include "portico/filter.h"
#include "ratelimit/ratelimit.h"
#include "route/router.h"
#include "upstream/lb.h"
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
#define PT_DEFAULT_CLIENT_VERIFY_DEPTH 4u

/* retry_on conditions. */
enum pt_retry_on {
    PT_RETRY_CONNECT_FAILURE = 1u << 0,
    PT_RETRY_REFUSED_STREAM = 1u << 1,
    PT_RETRY_RESET = 1u << 2,
    PT_RETRY_5XX = 1u << 3,
    PT_RETRY_GATEWAY_ERROR = 1u << 4,
    PT_RETRY_GRPC_UNAVAILABLE = 1u << 5,
    PT_RETRY_PER_TRY_TIMEOUT = 1u << 6,
};

/* Retry defaults (the proto comments document them for operators). */
#define PT_DEFAULT_RETRY_BACKOFF_BASE_MS 25u
#define PT_DEFAULT_RETRY_BACKOFF_MAX_MS 250u
#define PT_DEFAULT_RETRY_BUDGET_PERCENT 20u
#define PT_DEFAULT_RETRY_MIN_CONCURRENCY 3u
#define PT_DEFAULT_HEDGE_MAX_ATTEMPTS 2u
#define PT_HEDGE_MAX_ATTEMPTS 4u

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

/* Choosing the service per request (proxy/select.h): a traffic split, its
 * overrides, or API versions. Strings are owned (names lower case). */
struct pt_split_side {
    const struct pt_service *service;
    uint32_t weight;
};

struct pt_split_override {
    struct pt_str header; /* lower case */
    struct pt_str value;
    const struct pt_service *service;
};

enum pt_version_from {
    PT_VERSION_FROM_PATH = 0,
    PT_VERSION_FROM_HEADER,
    PT_VERSION_FROM_ACCEPT,
    PT_VERSION_FROM_QUERY,
};

struct pt_version_entry {
    struct pt_str version;
    const struct pt_service *service;
};

struct pt_route_select {
    struct pt_split_side *sides; /* nsides > 0: a split */
    uint32_t nsides;
    uint64_t total_weight;
    enum pt_lb_key key_kind; /* PT_LB_KEY_NONE: each request at random */
    char *key_name;
    struct pt_split_override *overrides;
    uint32_t noverrides;
    struct pt_version_entry *versions; /* nversions > 0: versioned */
    uint32_t nversions;
    enum pt_version_from version_from;
    struct pt_str version_name; /* header (lower case) or query parameter */
    int32_t default_version;    /* index in versions, or -1 */
    bool version_strip;
    /* from path: segments of the forwarded path before "v<version>" (the
     * route's leading literal segments, 0 when strip_prefix removed them) */
    uint32_t version_segment;
};

/* A route's gRPC-Web settings, compiled (src/conf/grpcweb.c). */
struct pt_grpcweb_conf {
    char **origins; /* exact origins allowed, lower case */
    size_t norigins;
    bool any_origin; /* "*" */
    bool allow_credentials;
    struct pt_str allow_headers;  /* Access-Control-Allow-Headers value */
    struct pt_str expose_headers; /* Access-Control-Expose-Headers value */
    struct pt_str max_age;        /* Access-Control-Max-Age value */
    char *text;                   /* owns the three values above */
};

struct pt_route_conf {
    char *name;
    struct pt_str name_str;
    const struct pt_service *service; /* NULL with a split or versions */
    struct pt_route_select select;
    struct pt_chain chain;
    uint32_t timeout_ms; /* 0: none */
    bool timeout_set;    /* configured on the route (else the default applies to non-gRPC) */
    uint64_t max_body_bytes;
    bool websocket;
    uint32_t retry_count;
    unsigned retry_on;           /* enum pt_retry_on */
    bool retry_unsafe;           /* also repeat non-idempotent requests the server saw */
    uint32_t per_try_timeout_ms; /* 0: none */
    uint32_t retry_backoff_base_ms;
    uint32_t retry_backoff_max_ms;
    uint32_t retry_budget_percent;
    uint32_t retry_min_concurrency;
    uint32_t hedge_delay_ms;     /* 0: no hedging */
    uint32_t hedge_max_attempts; /* the first attempt included */
    /* Counters of this route name (observe/metrics.h), shared with every
     * snapshot that has the route; one reference held by this snapshot.
     * NULL when compiled without workers. */
    struct pt_route_stats *stats;
    /* REST/JSON transcoding (transcode/route.h), or NULL. */
    struct pt_tc_route *transcode;
    /* gRPC-Web (Route.grpc_web), NULL when off. */
    struct pt_grpcweb_conf *grpc_web;
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

    /* Rate-limit rules (ratelimit/ratelimit.h); each route's chain ends
     * with its rate-limit instance when rules apply to it. */
    struct pt_rl_plan *ratelimit;
    /* Authentication settings and API keys (auth/auth.h); every route's
     * chain has its auth step right after the global filters. */
    struct pt_auth_plan *auth;

    struct pt_server_limits limits;
    uint64_t max_body_bytes;
    uint32_t request_timeout_ms;
    uint32_t stream_idle_timeout_ms;
    uint32_t max_connections; /* per worker */
    uint32_t drain_timeout_ms;
    bool access_log_enabled;
    char *access_log_path;
    /* Discovered instances handed to compilation (compile time only). */
    const struct pt_disc_set *disc;
    size_t ndisc;
    /* Per service (indexed like services): its descriptor pool
     * (Service.descriptor_set_file; one reference), or NULL. */
    struct pt_descpool **desc_pools;
};

/* snapshot_transcode.c: build the services' descriptor pools (after the
 * services), compile routes[route].transcode (after its service is set),
 * free both. Status: 0 or -1 with errors in diag. */
struct pt_tc_route;
struct pt_descpool;
int pt_snapshot_load_descriptors(struct pt_snapshot *s, struct pt_diag *diag);
int pt_snapshot_compile_transcode(struct pt_snapshot *s, size_t route, struct pt_diag *diag);
void pt_snapshot_transcode_fini(struct pt_snapshot *s);

/*
 * The instances of a discovered service (Service.discovery), found at run
 * time by src/discovery and handed to compilation by the control plane.
 * host is an IP literal. A discovered service without a set compiles with
 * no endpoints: its requests get 503 until instances appear.
 */
struct pt_disc_instance {
    char host[48];
    uint16_t port;
    uint32_t weight;
};

struct pt_disc_set {
    const char *service;
    const struct pt_disc_instance *v;
    size_t n;
};

/*
 * Pointer: a new snapshot (reference count 1) that takes ownership of conf,
 * or NULL with every error in diag (conf is then left to the caller).
 * Validates conf first. nworkers fixes how many listening sockets each
 * listener gets; 0 compiles without binding any (--check-config).
 */
struct pt_snapshot *pt_snapshot_compile(struct pt_conf *conf, unsigned nworkers,
                                        uint64_t generation, struct pt_diag *diag);

/* pt_snapshot_compile with the instances of discovered services (borrowed
 * for the call). */
struct pt_snapshot *pt_snapshot_compile_with(struct pt_conf *conf, unsigned nworkers,
                                             uint64_t generation, const struct pt_disc_set *sets,
                                             size_t nsets, struct pt_diag *diag);

static inline const struct pt_snapshot *pt_snapshot_of(const struct pt_snap_base *b)
{
    return (const struct pt_snapshot *)b;
}

/* Name of the filter installed first in every chain unless configured. */
#define PT_DEFAULT_REQUEST_ID_FILTER "request-id"

/* Compile/free a route's gRPC-Web settings (NULL when off); grpcweb.c. */
struct pt_grpcweb_conf *pt_conf_grpcweb_compile(const struct Portico__Config__V1__GrpcWeb *m);
void pt_conf_grpcweb_free(struct pt_grpcweb_conf *c);

#endif
