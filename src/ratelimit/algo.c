/*
 * Rate-limit algorithms: token bucket, GCRA, sliding-window counter.
 * See algo.h for the exact semantics of each.
 */
#include "ratelimit/algo.h"

#include "core/error.h"

typedef unsigned __int128 u128;

static u128 div_ceil(u128 a, u128 b)
{
    return a / b + (a % b ? 1 : 0);
}

static uint64_t clamp64(u128 v)
{
    return v > UINT64_MAX ? UINT64_MAX : (uint64_t)v;
}

int pt_rl_params_check(const struct pt_rl_params *p)
{
    if (p->limit < 1 || p->limit > PT_RL_MAX_LIMIT || p->burst > PT_RL_MAX_LIMIT ||
        p->window_ns < 1 || p->window_ns > PT_RL_MAX_WINDOW_NS)
        return PT_ERR_INVALID;
    if (p->algorithm != PT_RL_TOKEN_BUCKET && p->algorithm != PT_RL_SLIDING_WINDOW &&
        p->algorithm != PT_RL_GCRA)
        return PT_ERR_INVALID;
    return 0;
}

const char *pt_rl_algorithm_name(enum pt_rl_algorithm a)
{
    switch (a) {
    case PT_RL_TOKEN_BUCKET:
        return "token_bucket";
    case PT_RL_SLIDING_WINDOW:
        return "sliding_window";
    case PT_RL_GCRA:
        return "gcra";
    }
    return "?";
}

/* Capacity in the units of the state: C x window_ns. */
static u128 full_units(const struct pt_rl_params *p)
{
    return (u128)(p->limit + p->burst) * p->window_ns;
}

/* --- token bucket -------------------------------------------------------- */

static void tb_refill(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now)
{
    u128 full = full_units(p);
    if (!s->used) {
        s->used = true;
        s->level = full;
        s->stamp_ns = now;
        return;
    }
    if (now <= s->stamp_ns)
        return;
    u128 level = s->level + (u128)(now - s->stamp_ns) * p->limit;
    s->level = level < full ? level : full;
    s->stamp_ns = now;
}

static void tb_decide(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now, uint64_t n,
                      struct pt_rl_decision *d)
{
    tb_refill(p, s, now);
    u128 full = full_units(p);
    u128 need = (u128)n * p->window_ns;
    d->allowed = s->level >= need;
    if (d->allowed)
        s->level -= need;
    else
        d->retry_ns = need > full ? UINT64_MAX : clamp64(div_ceil(need - s->level, p->limit));
    d->remaining = clamp64(s->level / p->window_ns);
    d->reset_ns = clamp64(div_ceil(full - s->level, p->limit));
}

/* --- GCRA ---------------------------------------------------------------- */

/* The TAT is kept x limit, so one request moves it by window_ns exactly.
 * stamp_ns is the latest time seen: an earlier now (threads that read the
 * clock, then queue for a stripe lock) is taken as that one, as the token
 * bucket does, so the two stay equivalent. */
static u128 gcra_tat(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now)
{
    if (s->used && now < s->stamp_ns)
        now = s->stamp_ns;
    s->stamp_ns = now;
    u128 now_s = (u128)now * p->limit;
    if (!s->used) {
        s->used = true;
        s->level = now_s;
    }
    if (s->level < now_s)
        s->level = now_s;
    return now_s;
}

static void gcra_decide(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now,
                        uint64_t n, struct pt_rl_decision *d)
{
    u128 now_s = gcra_tat(p, s, now);
    u128 full = full_units(p);
    u128 need = (u128)n * p->window_ns;
    u128 new_tat = s->level + need;
    d->allowed = new_tat <= now_s + full;
    if (d->allowed)
        s->level = new_tat;
    else
        d->retry_ns =
            need > full ? UINT64_MAX : clamp64(div_ceil(new_tat - full - now_s, p->limit));
    d->remaining = clamp64((now_s + full - s->level) / p->window_ns);
    d->reset_ns = clamp64(div_ceil(s->level - now_s, p->limit));
}

/* --- sliding-window counter ---------------------------------------------- */

static uint64_t sw_roll(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now)
{
    if (s->used && now < s->stamp_ns)
        now = s->stamp_ns; /* the clock went back: stay in the window */
    uint64_t start = now - now % p->window_ns;
    if (!s->used || start >= s->stamp_ns + 2 * p->window_ns) {
        s->prev = 0;
        s->curr = 0;
    } else if (start != s->stamp_ns) {
        s->prev = s->curr;
        s->curr = 0;
    }
    s->used = true;
    s->stamp_ns = start;
    return now - start;
}

/* Units in use: prev x (window - elapsed) + curr x window. */
static u128 sw_used(const struct pt_rl_params *p, const struct pt_rl_state *s, uint64_t elapsed)
{
    return (u128)s->prev * (p->window_ns - elapsed) + (u128)s->curr * p->window_ns;
}

/* Time until n would pass with no other request meanwhile. */
static uint64_t sw_retry(const struct pt_rl_params *p, const struct pt_rl_state *s,
                         uint64_t elapsed, uint64_t n)
{
    u128 w = p->window_ns;
    u128 cap = (u128)p->limit * w;
    u128 need = (u128)n * w;
    if (need > cap)
        return UINT64_MAX;
    uint64_t left = p->window_ns - elapsed;
    /* In this window, prev's weight falls by prev units per ns. */
    if (s->prev) {
        u128 excess = sw_used(p, s, elapsed) + need - cap;
        u128 t = div_ceil(excess, s->prev);
        if (t < left)
            return (uint64_t)t;
    }
    /* In the next one, this window's count becomes prev. */
    u128 e = 0;
    if ((u128)s->curr * w + need > cap)
        e = div_ceil((u128)s->curr * w + need - cap, s->curr);
    if (e < w)
        return clamp64((u128)left + e);
    return clamp64((u128)left + w);
}

static void sw_decide(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now, uint64_t n,
                      struct pt_rl_decision *d)
{
    uint64_t elapsed = sw_roll(p, s, now);
    u128 cap = (u128)p->limit * p->window_ns;
    u128 used = sw_used(p, s, elapsed);
    u128 need = (u128)n * p->window_ns;
    d->allowed = used + need <= cap;
    if (d->allowed) {
        s->curr += n;
        used += need;
    } else {
        d->retry_ns = sw_retry(p, s, elapsed, n);
    }
    d->remaining = used < cap ? clamp64((cap - used) / p->window_ns) : 0;
    d->reset_ns = p->window_ns - elapsed;
}

/* --- entry points -------------------------------------------------------- */

void pt_rl_decide(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now_ns, uint64_t n,
                  struct pt_rl_decision *d)
{
    *d = (struct pt_rl_decision){.limit = p->limit};
    if (n == 0)
        n = 1;
    switch (p->algorithm) {
    case PT_RL_TOKEN_BUCKET:
        tb_decide(p, s, now_ns, n, d);
        break;
    case PT_RL_GCRA:
        gcra_decide(p, s, now_ns, n, d);
        break;
    case PT_RL_SLIDING_WINDOW:
        sw_decide(p, s, now_ns, n, d);
        break;
    }
}

void pt_rl_refund(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t charged_ns,
                  uint64_t n)
{
    if (!s->used)
        return;
    u128 units = (u128)n * p->window_ns;
    switch (p->algorithm) {
    case PT_RL_TOKEN_BUCKET: {
        u128 full = full_units(p);
        s->level = s->level + units < full ? s->level + units : full;
        break;
    }
    case PT_RL_GCRA:
        /* A TAT below now only means a full quota (gcra_tat raises it). */
        s->level = s->level > units ? s->level - units : 0;
        break;
    case PT_RL_SLIDING_WINDOW:
        if (charged_ns - charged_ns % p->window_ns == s->stamp_ns)
            s->curr = s->curr > n ? s->curr - n : 0;
        break;
    }
}

uint64_t pt_rl_take(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now_ns,
                    uint64_t want)
{
    uint64_t k = 0;
    switch (p->algorithm) {
    case PT_RL_TOKEN_BUCKET: {
        tb_refill(p, s, now_ns);
        u128 avail = s->level / p->window_ns;
        k = avail < want ? (uint64_t)avail : want;
        s->level -= (u128)k * p->window_ns;
        break;
    }
    case PT_RL_GCRA: {
        u128 now_s = gcra_tat(p, s, now_ns);
        u128 avail = (now_s + full_units(p) - s->level) / p->window_ns;
        k = avail < want ? (uint64_t)avail : want;
        s->level += (u128)k * p->window_ns;
        break;
    }
    case PT_RL_SLIDING_WINDOW: {
        uint64_t elapsed = sw_roll(p, s, now_ns);
        u128 cap = (u128)p->limit * p->window_ns;
        u128 used = sw_used(p, s, elapsed);
        u128 avail = used < cap ? (cap - used) / p->window_ns : 0;
        k = avail < want ? (uint64_t)avail : want;
        s->curr += k;
        break;
    }
    }
    return k;
}
