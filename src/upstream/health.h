/*
 * upstream/health.h - health of upstream instances: active checks (their
 * verdicts) and passive outlier detection (ejections).
 *
 * One struct pt_health per instance, kept outside snapshots in a
 * process-wide registry keyed by "service/host:port" (like the circuit
 * breakers): a reload or a discovery recompile that keeps an instance
 * keeps its health. Snapshots hold references (pt_endpoint.health).
 *
 * An instance is usable for traffic iff
 *   - it is actively healthy (instances start healthy; with no active check
 *     they stay so), and
 *   - it is not ejected (now >= ejected_until).
 * (The per-instance circuit breaker is checked apart, by the caller.)
 *
 * Active checks (the health thread, hcheck.c) report each result with
 * pt_health_check_result(): unhealthy after unhealthy_threshold failures in
 * a row, healthy again after healthy_threshold successes in a row.
 *
 * Outlier detection (the workers) reports each attempt's outcome with
 * pt_health_outcome(): consecutive_failures failures in a row eject the
 * instance for min(base_ejection_time x k, max_ejection_time), k being the
 * number of times it was ejected (k starts again at 1 once the instance
 * went max_ejection_time without being ejected). An ejection that would
 * make more than max_ejection_percent % of the service's instances
 * ejected at once is not made (pt_health_max_ejected()); the failure
 * count then starts again. The instance returns by itself when the time
 * is up (a clock comparison on the hot path).
 *
 * All functions take the time (monotonic ns), so unit tests use a fake
 * clock. Threads: every function on any thread (atomics; no locks).
 */
#ifndef PT_UPSTREAM_HEALTH_H
#define PT_UPSTREAM_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/named.h"

/* Defaults for fields left 0 in configuration. */
#define PT_HEALTH_DEFAULT_INTERVAL_MS 5000
#define PT_HEALTH_DEFAULT_TIMEOUT_MS 1000
#define PT_HEALTH_DEFAULT_HEALTHY_THRESHOLD 2
#define PT_HEALTH_DEFAULT_UNHEALTHY_THRESHOLD 3
#define PT_OUTLIER_DEFAULT_CONSECUTIVE 5
#define PT_OUTLIER_DEFAULT_BASE_MS 30000
#define PT_OUTLIER_DEFAULT_MAX_MS 300000
#define PT_OUTLIER_DEFAULT_MAX_PERCENT 50
/* Bounds accepted by validation. */
#define PT_HEALTH_MAX_INTERVAL_MS 3600000
#define PT_HEALTH_MIN_INTERVAL_MS 10
#define PT_HEALTH_MAX_THRESHOLD 1000
#define PT_HEALTH_MAX_STATUS_RANGES 16

enum pt_health_kind {
    PT_HEALTH_HTTP = 0,
    PT_HEALTH_GRPC,
};

/* A compiled active check (Service.health_check). */
struct pt_health_check_conf {
    enum pt_health_kind kind;
    char *path;         /* HTTP: request path (default "/health") */
    char *host;         /* Host/:authority override, or NULL: the instance */
    char *grpc_service; /* gRPC: HealthCheckRequest.service ("" = server) */
    uint32_t interval_ms;
    uint32_t timeout_ms;
    uint32_t jitter_ms;
    uint32_t healthy_threshold;
    uint32_t unhealthy_threshold;
    /* Healthy statuses: ranges [lo, hi]; default 200-399. */
    uint32_t nranges;
    uint16_t lo[PT_HEALTH_MAX_STATUS_RANGES];
    uint16_t hi[PT_HEALTH_MAX_STATUS_RANGES];
};

/* A compiled outlier detection (Service.outlier_detection). */
struct pt_outlier_conf {
    uint32_t consecutive; /* failures in a row that eject; 0: disabled */
    uint32_t base_ms;
    uint32_t max_ms;
    uint32_t max_percent; /* 1..100 */
};

/* Last active check result (for visibility). */
enum pt_health_last {
    PT_HEALTH_LAST_NONE = 0, /* not checked yet */
    PT_HEALTH_LAST_OK,
    PT_HEALTH_LAST_FAILED,
    PT_HEALTH_LAST_TIMEOUT,
    PT_HEALTH_LAST_CONNECT, /* connect or TLS failed */
};

struct pt_health {
    /* Read on the hot path (shared-clean while nothing changes). */
    _Alignas(64) atomic_bool down;         /* actively unhealthy */
    atomic_uint_fast64_t ejected_until_ns; /* 0: not ejected */
    /* Written by workers on failures (own line). */
    _Alignas(64) atomic_uint consecutive; /* outlier: failures in a row */
    /* Rarely written. */
    _Alignas(64) atomic_uint ejections;        /* times ejected (k) */
    atomic_uint_fast64_t last_ejection_end_ns; /* when the last ejection ends */
    atomic_uint_fast64_t ejections_total;      /* counter */
    atomic_uint_fast64_t to_unhealthy_total;   /* active transitions */
    atomic_uint_fast64_t to_healthy_total;
    atomic_uint_fast64_t checks_total;
    atomic_uint_fast64_t check_failures_total;
    atomic_uint last; /* enum pt_health_last */
    /* Health thread only: active check streaks. */
    uint32_t ok_streak;
    uint32_t fail_streak;
    struct pt_named named; /* its name and references (core/named.h) */
};

void pt_health_check_conf_defaults(struct pt_health_check_conf *c);
void pt_health_check_conf_fini(struct pt_health_check_conf *c);
/* Copy (strings duplicated). */
void pt_health_check_conf_copy(struct pt_health_check_conf *dst,
                               const struct pt_health_check_conf *src);
/* Parse one expected_statuses entry ("200" or "200-299", 100..599) into c
 * (appended). Status: 0 or PT_ERR_INVALID (bad text, or too many). */
int pt_health_status_add(struct pt_health_check_conf *c, const char *s);
/* Whether HTTP status st counts as healthy under c. */
bool pt_health_status_ok(const struct pt_health_check_conf *c, int st);

void pt_outlier_conf_defaults(struct pt_outlier_conf *c);

/* Pointer: the registry's health for key, one more reference (a new,
 * healthy one when unknown). Never NULL. Thread: any. */
struct pt_health *pt_health_ref(const char *key);
/* Drop a reference; the last frees it. NULL is a no-op. */
void pt_health_unref(struct pt_health *h);
/* Heap health outside the registry (tests). Free with unref. */
struct pt_health *pt_health_new(const char *key);

/* Whether h admits traffic at now_ns (NULL: yes). Hot path: one or two
 * relaxed loads. */
static inline bool pt_health_usable(const struct pt_health *h, uint64_t now_ns)
{
    if (!h)
        return true;
    if (atomic_load_explicit(&h->down, memory_order_relaxed))
        return false;
    uint64_t until = atomic_load_explicit(&h->ejected_until_ns, memory_order_relaxed);
    return until == 0 || now_ns >= until;
}

/* Whether h is ejected at now_ns. */
bool pt_health_ejected(const struct pt_health *h, uint64_t now_ns);

/* Most instances of a service of n that may be ejected at once under
 * max_percent: floor(n x max_percent / 100), but at least 1 when n > 1. */
uint32_t pt_health_max_ejected(uint32_t n, uint32_t max_percent);

/*
 * Outlier detection: one attempt on h ended (failure: a 5xx, connect
 * failure, reset or timeout). peers: the health of all instances of the
 * service (n, h among them) for the max_ejection_percent rule. Returns
 * true when this outcome ejected h (the caller may log). Success costs one
 * relaxed load (and a store only after failures).
 */
bool pt_health_outcome(struct pt_health *h, const struct pt_outlier_conf *c, bool failure,
                       uint64_t now_ns, struct pt_health *const *peers, uint32_t n);

/*
 * An active check's result (health thread). Returns +1 when h became
 * healthy, -1 when it became unhealthy, 0 when its state did not change.
 */
int pt_health_check_result(struct pt_health *h, const struct pt_health_check_conf *c,
                           enum pt_health_last r);

/* Forget the active verdict (the check was removed): healthy again. */
void pt_health_check_reset(struct pt_health *h);

const char *pt_health_last_name(enum pt_health_last r);

/* Read the registry's health of key into a copy of its counters; false
 * when unknown. */
struct pt_health_info {
    bool healthy; /* actively */
    bool ejected;
    uint32_t ejections; /* k */
    uint64_t ejections_total;
    uint64_t to_unhealthy_total;
    uint64_t to_healthy_total;
    uint64_t checks_total;
    uint64_t check_failures_total;
    enum pt_health_last last;
};
void pt_health_read(const struct pt_health *h, uint64_t now_ns, struct pt_health_info *out);

#endif
