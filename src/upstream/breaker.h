/*
 * upstream/breaker.h - circuit breakers: per service, and per instance when
 * configured (per_instance).
 *
 * A breaker is a sans-I/O state machine: callers pass the time (monotonic
 * nanoseconds), so tests drive it with a fake clock. Each upstream attempt
 * asks pt_breaker_allow() first and reports its outcome once with
 * pt_breaker_record().
 *
 *            failure_threshold consecutive failures, or
 *            failure rate >= failure_rate_threshold % over a full
 *            window of sliding_window_size calls
 *   ┌────────┐ ─────────────────────────────────────────> ┌──────┐
 *   │ CLOSED │                                            │ OPEN │ rejects
 *   └────────┘ <──┐                                 ┌───> └──────┘ every call
 *                 │ success_threshold               │ a      │
 *                 │ successes                       │ failure│ timeout_ms
 *                 │        ┌───────────┐            │        │ elapsed
 *                 └─────── │ HALF_OPEN │ ───────────┘        │
 *                          └───────────┘ <───────────────────┘
 *                 admits at most half_open_max_calls calls at once (probes)
 *
 * Every transition starts a new epoch: an outcome recorded for a call
 * admitted in an earlier epoch is ignored (a slow call admitted while
 * CLOSED must not close a breaker that opened meanwhile, nor use up a
 * half-open probe slot it never had).
 *
 * Breakers are runtime state kept outside snapshots, in a process-wide
 * registry keyed by "service" (and "service/host:port" per instance).
 * Snapshots hold references; a reload that keeps a key with the same
 * configuration keeps its breaker (and its state); a changed configuration
 * gets a fresh breaker (CLOSED) under the same key.
 *
 * Threads: allow/record/would_allow from any worker (one mutex per breaker,
 * held for a few instructions); ref/unref from any thread (registry mutex,
 * never per request).
 */
#ifndef PT_UPSTREAM_BREAKER_H
#define PT_UPSTREAM_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults for fields left 0 in configuration. */
#define PT_BREAKER_DEFAULT_FAILURE_THRESHOLD 5
#define PT_BREAKER_DEFAULT_SUCCESS_THRESHOLD 1
#define PT_BREAKER_DEFAULT_TIMEOUT_MS 30000
#define PT_BREAKER_DEFAULT_HALF_OPEN_MAX_CALLS 1
#define PT_BREAKER_DEFAULT_WINDOW 20
#define PT_BREAKER_DEFAULT_FAILURE_RATE 50
/* Upper bounds accepted by validation. */
#define PT_BREAKER_MAX_THRESHOLD 10000
#define PT_BREAKER_MAX_WINDOW 10000
#define PT_BREAKER_MAX_TIMEOUT_MS 3600000

/* What counts as a failure (failure_on). */
enum pt_breaker_fail_on {
    PT_BREAKER_ON_5XX = 1u << 0,             /* any HTTP status >= 500 */
    PT_BREAKER_ON_GATEWAY_ERROR = 1u << 1,   /* 502, 503, 504 */
    PT_BREAKER_ON_TIMEOUT = 1u << 2,         /* request or connect timeout */
    PT_BREAKER_ON_RESET = 1u << 3,           /* reset, closed, refused, bad response */
    PT_BREAKER_ON_CONNECT_FAILURE = 1u << 4, /* connect failed or timed out */
};
#define PT_BREAKER_ON_DEFAULT                                          \
    (PT_BREAKER_ON_5XX | PT_BREAKER_ON_TIMEOUT | PT_BREAKER_ON_RESET | \
     PT_BREAKER_ON_CONNECT_FAILURE)

/* A compiled configuration. */
struct pt_breaker_conf {
    uint32_t failure_threshold;
    uint32_t success_threshold;
    uint32_t timeout_ms;
    uint32_t half_open_max_calls;
    uint32_t window;       /* sliding_window_size */
    uint32_t failure_rate; /* percent, 1..100 */
    uint32_t fail_on;      /* enum pt_breaker_fail_on bits */
    uint32_t grpc_codes;   /* bit c: grpc-status c (0..16) is a failure */
    bool per_instance;
};

enum pt_breaker_state {
    PT_BREAKER_CLOSED = 0,
    PT_BREAKER_OPEN,
    PT_BREAKER_HALF_OPEN,
};
#define PT_BREAKER_NSTATES 3

enum pt_breaker_verdict {
    PT_BREAKER_REJECT = 0,
    PT_BREAKER_ALLOW, /* closed: an ordinary call */
    PT_BREAKER_PROBE, /* half-open: one of the half_open_max_calls probes */
};

enum pt_breaker_outcome {
    PT_BREAKER_SUCCESS = 0,
    PT_BREAKER_FAILURE,
    PT_BREAKER_IGNORED, /* no verdict on the upstream (e.g. the client left) */
};

/* The admission of one call, handed back to pt_breaker_record. */
struct pt_breaker_ticket {
    uint32_t epoch;
    uint8_t verdict; /* enum pt_breaker_verdict */
};

struct pt_breaker;

/* Fill c with the defaults (failure_on default, no gRPC codes). */
void pt_breaker_conf_defaults(struct pt_breaker_conf *c);

/*
 * Parse one failure_on entry ("5xx", "gateway-error", "timeout", "reset",
 * "connect-failure", "grpc:<CODE>" with a canonical gRPC code name such as
 * UNAVAILABLE, or its number) into c. Status: 0 or PT_ERR_INVALID.
 */
int pt_breaker_conf_add_fail_on(struct pt_breaker_conf *c, const char *s);

/*
 * Whether an attempt's result is a failure under c: err is the attempt's
 * error (0 when a response arrived), status its HTTP status (0: none),
 * grpc its grpc-status (-1: none).
 */
bool pt_breaker_conf_is_failure(const struct pt_breaker_conf *c, int err, int status, int grpc);

/*
 * Pointer: the registry's breaker for key with configuration c, one more
 * reference (a new CLOSED one when the key is unknown or its breaker has
 * another configuration). Never NULL. Thread: any.
 */
struct pt_breaker *pt_breaker_ref(const char *key, const struct pt_breaker_conf *c);
/* Drop a reference; the last frees it. NULL is a no-op. Thread: any. */
void pt_breaker_unref(struct pt_breaker *b);

/* Heap breaker outside the registry (tests, tools). Free with unref. */
struct pt_breaker *pt_breaker_new(const char *key, const struct pt_breaker_conf *c);

const struct pt_breaker_conf *pt_breaker_conf_of(const struct pt_breaker *b);

/* Admit a call or not; *t is what pt_breaker_record needs (always set). */
enum pt_breaker_verdict pt_breaker_allow(struct pt_breaker *b, uint64_t now_ns,
                                         struct pt_breaker_ticket *t);

/* Report the outcome of a call admitted with ticket t, exactly once. A
 * REJECT ticket is a no-op. */
void pt_breaker_record(struct pt_breaker *b, uint64_t now_ns, const struct pt_breaker_ticket *t,
                       enum pt_breaker_outcome o);

/* Whether pt_breaker_allow would admit a call now (does not take a probe
 * slot): for endpoint choice. NULL: true. */
bool pt_breaker_would_allow(struct pt_breaker *b, uint64_t now_ns);

/* A breaker's state and transition counts, read at once. */
struct pt_breaker_info {
    enum pt_breaker_state state;
    uint64_t transitions[PT_BREAKER_NSTATES]; /* by the state entered */
    uint64_t rejected;                        /* calls refused */
};

void pt_breaker_read(struct pt_breaker *b, struct pt_breaker_info *out);

/* Read the registry's breaker of key (the newest when a reload replaced
 * it). Returns false (and zeroes *out) when the registry has none. */
bool pt_breaker_lookup(const char *key, struct pt_breaker_info *out);

const char *pt_breaker_state_name(enum pt_breaker_state s);

#endif
