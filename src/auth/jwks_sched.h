/*
 * auth/jwks_sched.h - when to fetch a JWKS document again: the refresh
 * timer with jitter, backoff after failures, and the rate limit of
 * on-demand refreshes. Pure: the caller passes the clock, so the policy is
 * tested with a fake one.
 *
 *   fetch ends ok     ──> next timed fetch in interval ± jitter%
 *   fetch ends failed ──> next in retry_min·2^(failures-1) (≤ retry_max, ≤ interval) ± jitter%
 *   on demand: a fetch in flight          ──> JOIN (wait for it)
 *              last on-demand start < min ──> LIMITED (no fetch)
 *              otherwise                  ──> START (counts as the last on-demand start)
 *
 * Thread: the owner's (a JWKS source: the fetch thread).
 */
#ifndef PT_AUTH_JWKS_SCHED_H
#define PT_AUTH_JWKS_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#define PT_JWKS_DEFAULT_REFRESH_MS 300000u
#define PT_JWKS_DEFAULT_JITTER_PCT 10u
#define PT_JWKS_DEFAULT_ON_DEMAND_MIN_MS 30000u
#define PT_JWKS_DEFAULT_RETRY_MIN_MS 1000u
#define PT_JWKS_DEFAULT_RETRY_MAX_MS 60000u

struct pt_jwks_sched_conf {
    uint32_t refresh_ms;       /* 0 = PT_JWKS_DEFAULT_REFRESH_MS */
    uint32_t jitter_pct;       /* 0 = PT_JWKS_DEFAULT_JITTER_PCT; at most 50 */
    uint32_t on_demand_min_ms; /* 0 = PT_JWKS_DEFAULT_ON_DEMAND_MIN_MS */
    uint32_t retry_min_ms;     /* 0 = PT_JWKS_DEFAULT_RETRY_MIN_MS */
    uint32_t retry_max_ms;     /* 0 = PT_JWKS_DEFAULT_RETRY_MAX_MS */
};

struct pt_jwks_sched {
    struct pt_jwks_sched_conf conf; /* defaults applied */
    uint64_t rng;
    uint32_t failures; /* consecutive */
    bool in_flight;
    bool demanded; /* an on-demand fetch has started at least once */
    uint64_t last_demand_ns;
};

enum pt_jwks_demand {
    PT_JWKS_DEMAND_START,   /* fetch now */
    PT_JWKS_DEMAND_JOIN,    /* a fetch is in flight: wait for it */
    PT_JWKS_DEMAND_LIMITED, /* too soon after the last on-demand fetch */
};

/* conf copied with defaults applied; seed for the jitter (0 is fine). */
void pt_jwks_sched_init(struct pt_jwks_sched *s, const struct pt_jwks_sched_conf *conf,
                        uint64_t seed);
/* A timed fetch starts now. */
void pt_jwks_sched_timed_start(struct pt_jwks_sched *s);
/* Someone needs a fresh document at now_ns (monotonic); START also marks
 * the fetch as started. */
enum pt_jwks_demand pt_jwks_sched_demand(struct pt_jwks_sched *s, uint64_t now_ns);
/* The fetch in flight ended; returns the delay in ns until the next timed
 * fetch. */
uint64_t pt_jwks_sched_done(struct pt_jwks_sched *s, bool ok);

#endif
