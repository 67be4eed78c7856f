/*
 * ratelimit/ratelimit_int.h - private to src/ratelimit: compiled rules.
 */
#ifndef PT_RATELIMIT_RATELIMIT_INT_H
#define PT_RATELIMIT_RATELIMIT_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "ratelimit/algo.h"
#include "ratelimit/key.h"
#include "ratelimit/ratelimit.h"
#include "ratelimit/redis.h"
#include "ratelimit/stats.h"
#include "ratelimit/table.h"

enum pt_rl_action {
    PT_RL_REJECT = 0,
    PT_RL_QUEUE,
    PT_RL_SHADOW,
};

enum pt_rl_mode {
    PT_RL_LOCAL = 0,
    PT_RL_REDIS,
    PT_RL_HYBRID,
};

#define PT_RL_DEFAULT_MAX_QUEUE_MS 1000u
#define PT_RL_DEFAULT_IPV6_PREFIX 64u
#define PT_RL_DEFAULT_IPV4_PREFIX 32u
#define PT_RL_DEFAULT_REDIS_TIMEOUT_MS 50u
/* Hybrid: unspent leased tokens expire after min(window, this). */
#define PT_RL_LEASE_TTL_NS 1000000000ull

struct pt_rl_rule {
    char *name;
    char *route; /* NULL: global (every route) */
    struct pt_rl_params params;
    struct pt_rl_keyspec key;
    enum pt_rl_action action;
    enum pt_rl_mode mode;
    char *tier; /* NULL: every request */
    uint64_t max_queue_ns;
    bool fail_open;
    uint32_t redis_timeout_ms;
    uint32_t lease_size;
    uint64_t lease_ttl_ns;     /* hybrid: a lease's unspent tokens expire then */
    char fingerprint[17];      /* hex; part of table and Redis keys */
    char redis_tag[34];        /* hash of the name, fingerprint: the rule's Redis keys */
    struct pt_rl_table *table; /* shared, refcounted (registry in rules.c) */
    struct pt_rl_stats *stats;
    _Atomic uint64_t last_log_ns; /* throttles shadow log lines (the one mutable field) */
};

struct pt_rl_plan {
    struct pt_rl_redis_cfg redis; /* host NULL: no Redis configured */
    struct pt_rl_rule *rules;
    size_t nrules;
    /* API keys and their header (auth/auth.h), borrowed: the snapshot
     * frees the auth plan after this one. */
    const struct pt_auth_plan *auth;
};

/* The instance of one route. */
struct pt_rl_route {
    const struct pt_rl_plan *plan;
    const struct pt_rl_rule **rules;
    unsigned n;
    bool wants_identity; /* a rule has a tier or a client_id/user_id part */
};

#endif
