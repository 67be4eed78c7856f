#include "auth/jwks_sched.h"

#include <string.h>

#define MS 1000000ull

void pt_jwks_sched_init(struct pt_jwks_sched *s, const struct pt_jwks_sched_conf *conf,
                        uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    struct pt_jwks_sched_conf c = conf ? *conf : (struct pt_jwks_sched_conf){0};
    if (!c.refresh_ms)
        c.refresh_ms = PT_JWKS_DEFAULT_REFRESH_MS;
    if (!c.jitter_pct)
        c.jitter_pct = PT_JWKS_DEFAULT_JITTER_PCT;
    if (c.jitter_pct > 50)
        c.jitter_pct = 50;
    if (!c.on_demand_min_ms)
        c.on_demand_min_ms = PT_JWKS_DEFAULT_ON_DEMAND_MIN_MS;
    if (!c.retry_min_ms)
        c.retry_min_ms = PT_JWKS_DEFAULT_RETRY_MIN_MS;
    if (!c.retry_max_ms)
        c.retry_max_ms = PT_JWKS_DEFAULT_RETRY_MAX_MS;
    if (c.retry_max_ms > c.refresh_ms)
        c.retry_max_ms = c.refresh_ms; /* a failing source is never retried less often */
    if (c.retry_min_ms > c.retry_max_ms)
        c.retry_min_ms = c.retry_max_ms;
    s->conf = c;
    s->rng = seed ? seed : 0x853c49e6748fea9bull;
}

/* xorshift64*: jitter only, no security role. */
static uint64_t next_rand(struct pt_jwks_sched *s)
{
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* base ± jitter_pct%, uniformly. */
static uint64_t jitter(struct pt_jwks_sched *s, uint64_t base)
{
    uint64_t span = base / 100 * s->conf.jitter_pct;
    if (span == 0)
        return base;
    uint64_t r = next_rand(s) % (2 * span + 1);
    return base - span + r;
}

void pt_jwks_sched_timed_start(struct pt_jwks_sched *s)
{
    s->in_flight = true;
}

enum pt_jwks_demand pt_jwks_sched_demand(struct pt_jwks_sched *s, uint64_t now_ns)
{
    if (s->in_flight)
        return PT_JWKS_DEMAND_JOIN;
    uint64_t min = (uint64_t)s->conf.on_demand_min_ms * MS;
    if (s->demanded && now_ns - s->last_demand_ns < min)
        return PT_JWKS_DEMAND_LIMITED;
    s->demanded = true;
    s->last_demand_ns = now_ns;
    s->in_flight = true;
    return PT_JWKS_DEMAND_START;
}

uint64_t pt_jwks_sched_done(struct pt_jwks_sched *s, bool ok)
{
    s->in_flight = false;
    if (ok) {
        s->failures = 0;
        return jitter(s, (uint64_t)s->conf.refresh_ms * MS);
    }
    if (s->failures < 64)
        s->failures++;
    uint64_t d = (uint64_t)s->conf.retry_min_ms * MS;
    uint64_t max = (uint64_t)s->conf.retry_max_ms * MS;
    for (uint32_t i = 1; i < s->failures && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    return jitter(s, d);
}
