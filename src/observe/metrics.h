/*
 * observe/metrics.h - per-route request statistics and Prometheus text.
 *
 * Counters outlive configuration changes: they live in a process-wide
 * registry of stats objects keyed by route name, not in snapshots. Each
 * compiled snapshot takes a reference on the object of every route it has
 * (and on the pseudo-route "" that counts requests no route matched, shown
 * as route="(none)" in Prometheus text) and drops them when it is destroyed.
 * A route kept across a reload keeps its counters; the object of a route no
 * snapshot references any more is freed, so a deleted route's statistics
 * disappear and a route recreated later starts from zero.
 *
 *   control thread            workers (hot path)            admin / any thread
 *   snapshot compile ─ref──>  ┌─────────────────────────┐  <──read/list/prometheus
 *   snapshot destroy ─unref─> │ registry (mutex)        │     (mutex held while
 *   (any thread)              │  "users" ─> stats obj ──┼──>  summing the slots)
 *                             │  ""      ─> stats obj   │
 *                             └─────────────────────────┘
 *   stats obj = one cache-line-aligned slot per worker; worker i writes only
 *   slot i with plain relaxed load/store pairs (no read-modify-write, no
 *   lock, no allocation); readers sum the slots with relaxed loads.
 *
 * What is counted, per route:
 *   requests        exchanges that completed (started and ended)
 *   responses by class (1xx..5xx) of the status sent downstream (499 when
 *                   the client went away first; an exchange that ended with
 *                   no status and no error has no class)
 *   upstream_errors exchanges that ended with an upstream failure (see
 *                   pt_metrics_is_upstream_error)
 *   retries         upstream attempts that repeated an earlier one
 *   retry_budget_denied  exchanges whose retry the retry budget refused
 *   per_try_timeouts attempts cancelled by the route's per-try timeout
 *   hedges          hedged attempts started
 *   in_flight       exchanges started on the route and not ended yet
 *   bytes_in/out    request/response body bytes
 *   latency         from the first request byte to the last response byte,
 *                   in a fixed histogram (PT_METRICS_BUCKET_BOUNDS_NS);
 *                   quantiles are interpolated in it at read time, the mean
 *                   is exact.
 *
 * Threads: ref/unref from any thread (the registry mutex; never per
 * request); pt_metrics_stats_start/end only on worker `worker` with the
 * caller holding a reference (a pinned snapshot); readers from any thread.
 */
#ifndef PT_OBSERVE_METRICS_H
#define PT_OBSERVE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Name of the pseudo-route of requests that matched no route, and how it is
 * labelled in Prometheus text. */
#define PT_METRICS_NO_ROUTE ""
#define PT_METRICS_NO_ROUTE_LABEL "(none)"

/* Upper bounds of the latency buckets (1-2-5 steps from 0.1 ms to 60 s);
 * one more bucket (+Inf) holds what is slower. Prometheus "le" values are
 * the same bounds in seconds. */
#define PT_METRICS_NBOUNDS 19
#define PT_METRICS_NBUCKETS (PT_METRICS_NBOUNDS + 1)
extern const uint64_t pt_metrics_bucket_bounds_ns[PT_METRICS_NBOUNDS];

/* Status classes counted: index 0 is 1xx ... index 4 is 5xx. */
#define PT_METRICS_NCLASSES 5

/* The registry's object for one route name (opaque outside metrics.c). */
struct pt_route_stats;

/* A consistent-enough sum over all worker slots, taken at read time. */
struct pt_route_stats_sum {
    uint64_t requests;
    uint64_t responses[PT_METRICS_NCLASSES]; /* [0] = 1xx ... [4] = 5xx */
    uint64_t upstream_errors;
    uint64_t retries;
    uint64_t retry_budget_denied;
    uint64_t per_try_timeouts;
    uint64_t hedges;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t in_flight;
    uint64_t latency_sum_ns;
    uint64_t buckets[PT_METRICS_NBUCKETS]; /* per bucket, not cumulative */
};

/* What one completed exchange contributes. */
struct pt_metrics_sample {
    int status;          /* HTTP status sent downstream (0: none) */
    bool upstream_error; /* pt_metrics_is_upstream_error(the exchange's error) */
    uint32_t retries;    /* attempts after the first */
    bool retry_budget_denied;
    uint32_t per_try_timeouts;
    uint32_t hedges; /* hedged attempts started */
    uint64_t duration_ns;
    uint64_t bytes_in;
    uint64_t bytes_out;
};

/*
 * Pointer: the stats object of route `name` (created with zero counters and
 * one slot per worker if the registry has none), with one more reference;
 * NULL when nworkers is 0 (a snapshot compiled without a data plane, e.g.
 * --check-config). The number of workers is fixed for the process: an
 * existing object keeps the slot count it was created with.
 * Thread: any (takes the registry mutex).
 */
struct pt_route_stats *pt_metrics_route_ref(const char *name, unsigned nworkers);

/* Drop one reference; the last one removes the object from the registry
 * and frees it. NULL is a no-op. Thread: any (takes the registry mutex). */
void pt_metrics_route_unref(struct pt_route_stats *st);

/* True for the error codes that mean the upstream failed the exchange:
 * connect failure or timeout, reset, refused stream, invalid response,
 * request timeout, no endpoint available. */
bool pt_metrics_is_upstream_error(int err);

/* Count an exchange entering st (in_flight + 1). st may be NULL (no-op).
 * Thread: worker `worker` only. */
void pt_metrics_stats_start(struct pt_route_stats *st, unsigned worker);

/* Count a completed exchange; `started` says whether pt_metrics_stats_start
 * was called for it (then in_flight - 1). st may be NULL (no-op). Never
 * allocates, locks or performs an atomic read-modify-write.
 * Thread: worker `worker` only. */
void pt_metrics_stats_end(struct pt_route_stats *st, unsigned worker, bool started,
                          const struct pt_metrics_sample *s);

/*
 * Fill *out with the sums of route `name` ("" for unmatched requests).
 * Returns false (and zeroes *out) when no snapshot references that route.
 * Thread: any.
 */
bool pt_metrics_route_read(const char *name, struct pt_route_stats_sum *out);

/* One route's sums in a list. */
struct pt_metrics_route_entry {
    char *name;
    struct pt_route_stats_sum sum;
};

/*
 * Pointer: every route of the registry, sorted by name (the pseudo-route ""
 * first when present), never NULL (an empty list has *n == 0); free it with
 * pt_metrics_route_list_free. The sums are taken under the registry mutex,
 * the list is the caller's afterwards.
 * Thread: any.
 */
struct pt_metrics_route_entry *pt_metrics_route_list(size_t *n);
void pt_metrics_route_list_free(struct pt_metrics_route_entry *list, size_t n);

/* Latency quantile q (0 < q <= 1) in milliseconds, linearly interpolated
 * inside the bucket that holds rank q * count (a value in the +Inf bucket
 * reads as the largest bound, 60 s). 0 when nothing was counted. */
double pt_metrics_quantile_ms(const struct pt_route_stats_sum *s, double q);
/* Mean latency in milliseconds (exact); 0 when nothing was counted. */
double pt_metrics_mean_ms(const struct pt_route_stats_sum *s);

/* Process-level values the caller (the admin service) knows and feeds in. */
/* One upstream instance (or, with instance "", a service's own circuit
 * breaker) as read by the caller: health and circuit breaker state. */
struct pt_metrics_instance {
    const char *service;
    const char *instance; /* "host:port"; "" = the service's breaker only */
    bool healthy;         /* usable by health now (active check, ejection) */
    bool ejected;
    uint64_t ejections_total;
    uint64_t to_healthy_total; /* active-check transitions */
    uint64_t to_unhealthy_total;
    uint64_t checks_total;
    uint64_t check_failures_total;
    bool has_breaker;
    unsigned circuit_state;          /* 0 closed, 1 open, 2 half-open */
    uint64_t circuit_transitions[3]; /* by state entered, same order */
};

struct pt_metrics_process {
    uint64_t connections;         /* open downstream connections, all workers */
    uint64_t config_version;      /* version of the stored configuration */
    uint64_t snapshot_generation; /* generation of the snapshot being served */
    double uptime_seconds;
    /* Upstream instances of the snapshot being served (may be NULL/0). */
    const struct pt_metrics_instance *instances;
    size_t ninstances;
};

/*
 * Pointer: the Prometheus text exposition (format 0.0.4) of every route in
 * the registry plus the process gauges in *p, NUL-terminated, with its
 * length (without the NUL) in *len; free() it. Never NULL.
 * Families: portico_requests_total{route,code_class} (counter),
 * portico_upstream_errors_total{route} (counter),
 * portico_route_retries_total{route}, portico_route_retry_budget_exhausted_total{route},
 * portico_route_per_try_timeouts_total{route}, portico_route_hedges_total{route} (counters),
 * portico_request_duration_seconds{route} (histogram),
 * portico_requests_in_flight{route} (gauge),
 * portico_bytes_received_total{route}, portico_bytes_sent_total{route}
 * (counters), portico_connections, portico_config_version,
 * portico_snapshot_generation, portico_uptime_seconds (gauges),
 * portico_ratelimit_decisions_total{rule,decision} and
 * portico_auth_decisions_total{route,method,decision} (counters).
 * Thread: any.
 */
char *pt_metrics_prometheus(const struct pt_metrics_process *p, size_t *len); /* len may be NULL */

/*
 * Append label value v escaped for the text format ('\\' -> "\\\\",
 * '"' -> "\\\"", '\n' -> "\\n") to out, which must hold 2 * strlen(v) + 1
 * bytes; returns the escaped length (out is NUL-terminated).
 */
size_t pt_metrics_escape_label(const char *v, char *out);

#endif
