/*
 * ratelimit/algo.h - rate-limit algorithms as pure functions over a state.
 *
 * Sans-I/O: each decision takes the rule's parameters, the key's state and
 * the time (callers pass it, so tests drive a fake clock), and updates the
 * state. The same arithmetic runs wherever the state lives: a local table
 * (under its stripe's lock), a Redis script (which mirrors it), or a lease
 * of tokens spent locally. All arithmetic is exact (integers, 128-bit where
 * products need it): no floating point, no drift.
 *
 * Parameters: `limit` requests per `window_ns`, plus `burst`.
 *
 *   token_bucket    A bucket of capacity C = limit + burst tokens, full at
 *                   first, refilled continuously at limit tokens per
 *                   window. A request of cost n is allowed iff the bucket
 *                   holds at least n tokens; it takes them. So at most C
 *                   requests pass at once, and limit per window sustained.
 *   gcra            The generic cell rate algorithm (virtual scheduling):
 *                   emission interval T = window / limit, tolerance
 *                   (C - 1) * T with the same C. It admits exactly what the
 *                   token bucket admits (the tests check it request by
 *                   request) with one timestamp of state, the theoretical
 *                   arrival time (TAT).
 *   sliding_window  Sliding-window counter: counts of the current and the
 *                   previous fixed window (windows aligned to multiples of
 *                   window_ns of the clock passed in); a request of cost n
 *                   is allowed iff
 *                       prev * (window - elapsed) / window + curr + n <= limit
 *                   where elapsed is the time since the current window
 *                   began. burst is not used. It never admits more than
 *                   limit in one fixed window, and assumes requests of the
 *                   previous window were spread evenly.
 *
 * Results, for response headers (RateLimit-*, X-RateLimit-*, Retry-After):
 *   remaining    requests of cost 1 that would pass right after this one;
 *   reset_ns     until the quota is whole again (bucket full, TAT back to
 *                now, or the end of the current window for the counter);
 *   retry_ns     when rejected: until a request of the same cost would pass.
 *
 * Thread: none of its own; a state is guarded by its owner.
 */
#ifndef PT_RATELIMIT_ALGO_H
#define PT_RATELIMIT_ALGO_H

#include <stdbool.h>
#include <stdint.h>

enum pt_rl_algorithm {
    PT_RL_TOKEN_BUCKET = 0,
    PT_RL_SLIDING_WINDOW,
    PT_RL_GCRA,
};

/* Ranges the configuration allows (validation uses them). */
#define PT_RL_MAX_LIMIT 1000000000ull
#define PT_RL_MAX_WINDOW_NS (86400ull * 1000000000ull)

struct pt_rl_params {
    enum pt_rl_algorithm algorithm;
    uint64_t limit;     /* 1..PT_RL_MAX_LIMIT */
    uint64_t burst;     /* 0..PT_RL_MAX_LIMIT */
    uint64_t window_ns; /* 1..PT_RL_MAX_WINDOW_NS */
};

/* One key's state; all zero = never seen (a full quota). */
struct pt_rl_state {
    /* token_bucket: tokens x window_ns (so refill is `limit` per ns);
     * gcra: TAT x limit (ns); sliding_window: unused. */
    unsigned __int128 level;
    uint64_t stamp_ns; /* token_bucket: last refill; gcra: latest now; sliding: window start */
    uint64_t prev;     /* sliding_window: previous window's count */
    uint64_t curr;     /* sliding_window: current window's count */
    bool used;         /* false: never seen */
};

struct pt_rl_decision {
    bool allowed;
    uint64_t limit;
    uint64_t remaining;
    uint64_t reset_ns;
    uint64_t retry_ns; /* 0 when allowed */
};

/* Status: 0, or PT_ERR_INVALID when p is out of the ranges above. */
int pt_rl_params_check(const struct pt_rl_params *p);

/* Decide one request of cost n (>= 1) at now_ns and, when allowed, charge
 * it to s. The clock must not go backwards for a state (a smaller now_ns is
 * taken as the last one seen). */
void pt_rl_decide(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now_ns, uint64_t n,
                  struct pt_rl_decision *d);

/* Give back n that pt_rl_decide charged at charged_ns (a later rule
 * rejected the request): as if it had not been taken, except that nothing
 * goes above a full quota and a window that has ended keeps its count. */
void pt_rl_refund(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t charged_ns,
                  uint64_t n);

/* Take up to want (>= 1) at once, for a lease spent elsewhere: returns how
 * many were taken (0..want; as many as would pass one by one at now_ns). */
uint64_t pt_rl_take(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now_ns,
                    uint64_t want);

/* The configuration's name of an algorithm. */
const char *pt_rl_algorithm_name(enum pt_rl_algorithm a);

#endif
