#include "upstream/lb.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "http/headers.h"
#include "portico/errors.h"

/* --- helpers -------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* FNV-1a over the bytes, then a finalizer so every bit depends on all. */
static uint64_t hash_bytes(const char *p, size_t n, uint64_t seed)
{
    uint64_t h = 14695981039346656037ull ^ mix64(seed);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return mix64(h);
}

void *pt_lb_xcalloc_aligned(size_t nmemb, size_t size)
{
    void *p = NULL;
    size_t n = (nmemb ? nmemb : 1) * size;
    if (posix_memalign(&p, 64, n) != 0)
        pt_abort_oom(n);
    memset(p, 0, n);
    return p;
}

static uint64_t rng_next(struct pt_lb_local *loc)
{
    /* splitmix64: tiny, fast, good enough for balancing. */
    loc->rng += 0x9e3779b97f4a7c15ull;
    return mix64(loc->rng);
}

static uint32_t rng_below(struct pt_lb_local *loc, uint32_t n)
{
    return (uint32_t)(((rng_next(loc) >> 32) * (uint64_t)n) >> 32);
}

static bool skip(const struct pt_lb *lb, uint32_t i, int avoid)
{
    return lb->n > 1 && (int)i == avoid;
}

/* Whether endpoint i is a candidate: not avoided and not down. */
static bool cand(const struct pt_lb *lb, uint32_t i, int avoid, const bool *down)
{
    return !skip(lb, i, avoid) && !(down && down[i]);
}

/* Candidates (not avoided, not down). */
static uint32_t ncand(const struct pt_lb *lb, int avoid, const bool *down)
{
    uint32_t c = lb->n;
    if (lb->n > 1 && avoid >= 0 && (uint32_t)avoid < lb->n)
        c--;
    if (down)
        for (uint32_t i = 0; i < lb->n; i++)
            if (down[i] && !skip(lb, i, avoid))
                c--;
    return c;
}

/* Index of the r-th candidate (r < ncand). O(1) without a down mask. */
static uint32_t nth_cand(const struct pt_lb *lb, uint32_t r, int avoid, const bool *down)
{
    if (!down) {
        if (lb->n > 1 && avoid >= 0 && (uint32_t)avoid < lb->n && r >= (uint32_t)avoid)
            r++;
        return r;
    }
    for (uint32_t i = 0; i < lb->n; i++)
        if (cand(lb, i, avoid, down) && r-- == 0)
            return i;
    return 0; /* not reached */
}

static uint32_t rr_pick(const struct pt_lb *lb, struct pt_lb_local *loc, int avoid)
{
    uint32_t i = loc->rr++ % lb->n;
    if (skip(lb, i, avoid))
        i = (i + 1) % lb->n;
    return i;
}

/* Round robin over the candidates only: with instances down, each of the
 * others takes an equal share (not the down one's neighbour all of it). */
static uint32_t rr_pick_masked(const struct pt_lb *lb, struct pt_lb_local *loc, int avoid,
                               const bool *down)
{
    if (!down)
        return rr_pick(lb, loc, avoid);
    uint32_t c = ncand(lb, avoid, down);
    if (c == 0)
        return rr_pick(lb, loc, avoid);
    return nth_cand(lb, loc->rr++ % c, avoid, down);
}

static int init_none(struct pt_lb *lb, const char *const *keys)
{
    (void)lb;
    (void)keys;
    return 0;
}

/* --- round robin ---------------------------------------------------------- */

static uint32_t rr_choose(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key,
                          int avoid, uint64_t now_ns, const bool *down)
{
    (void)key;
    (void)now_ns;
    return rr_pick_masked(lb, loc, avoid, down);
}

/* --- smooth weighted round robin ------------------------------------------ */

/* Each pick, every candidate's current weight grows by its weight; the
 * largest wins and drops by the total. Over a cycle of sum(weights) picks
 * each endpoint gets exactly its weight, interleaved. */
static uint32_t wrr_choose(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key,
                           int avoid, uint64_t now_ns, const bool *down)
{
    (void)key;
    (void)now_ns;
    if (!loc->current)
        return rr_pick_masked(lb, loc, avoid, down);
    /* Down instances take no turn: the others share their weight in
     * proportion to their own, still interleaved. */
    int64_t total = 0;
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < lb->n; i++) {
        if (!cand(lb, i, avoid, down))
            continue;
        loc->current[i] += lb->weights[i];
        total += lb->weights[i];
        if (best == UINT32_MAX || loc->current[i] > loc->current[best])
            best = i;
    }
    if (best == UINT32_MAX)
        return rr_pick(lb, loc, avoid);
    loc->current[best] -= total;
    return best;
}

/* --- least connections ---------------------------------------------------- */

/* The fewest in-flight requests relative to weight, among candidates. One
 * pass finds the least load and how many share it. Equally loaded
 * candidates are settled by power of two choices: two of them drawn at
 * random (not one random draw per tie), the fewer in flight when read
 * again wins (another worker may have moved the counts meanwhile). */
static uint32_t lc_choose(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key,
                          int avoid, uint64_t now_ns, const bool *down)
{
    (void)key;
    (void)now_ns;
    uint32_t best = UINT32_MAX;
    uint64_t bload = 0;
    uint32_t bweight = 1;
    uint32_t ties = 0;
    for (uint32_t i = 0; i < lb->n; i++) {
        if (!cand(lb, i, avoid, down))
            continue;
        uint64_t load = atomic_load_explicit(&lb->shared[i].inflight, memory_order_relaxed);
        uint32_t w = lb->weights[i];
        /* load/w < bload/bweight, without division */
        if (best == UINT32_MAX || load * bweight < bload * w) {
            best = i;
            bload = load;
            bweight = w;
            ties = 1;
        } else if (load * bweight == bload * w) {
            ties++;
        }
    }
    if (best == UINT32_MAX)
        return rr_pick(lb, loc, avoid);
    if (ties <= 1)
        return best;
    uint32_t ra = rng_below(loc, ties);
    uint32_t rb = rng_below(loc, ties - 1);
    if (rb >= ra)
        rb++;
    /* The ra-th and rb-th tied candidates (all at or after best). Counts
     * moved by other workers since the first pass may drop a tie: a rank
     * not found then stays best. */
    uint32_t a = best, b = best, r = 0;
    for (uint32_t i = best; i < lb->n; i++) {
        if (!cand(lb, i, avoid, down) ||
            atomic_load_explicit(&lb->shared[i].inflight, memory_order_relaxed) * bweight !=
                bload * lb->weights[i])
            continue;
        if (r == ra)
            a = i;
        if (r == rb)
            b = i;
        r++;
    }
    uint64_t la = atomic_load_explicit(&lb->shared[a].inflight, memory_order_relaxed);
    uint64_t lbb = atomic_load_explicit(&lb->shared[b].inflight, memory_order_relaxed);
    return lbb * lb->weights[a] < la * lb->weights[b] ? b : a;
}

/* --- Maglev consistent hashing -------------------------------------------- */

/* Table sizes (prime). The size must not follow every change in the
 * number of endpoints: a different size reshuffles every key. One size
 * serves up to 650 endpoints (>= 100 slots each); past that, the next. */
#define MAGLEV_SMALL 65521u
#define MAGLEV_LARGE 1048573u
/* Eisenbud et al., "Maglev" (NSDI 2016), section 3.4: each endpoint has a
 * permutation of the table's slots (offset, skip) and, in turns, takes its
 * next free preferred slot. Weighted: endpoint i takes a turn in round r
 * only when floor((r+1) w_i / w_max) > floor(r w_i / w_max). */
static int maglev_init(struct pt_lb *lb, const char *const *keys)
{
    uint32_t n = lb->n;
    if (n == 0)
        return 0;
    uint32_t m = n <= 650 ? MAGLEV_SMALL : MAGLEV_LARGE;
    uint64_t *offset = pt_xcalloc(n, sizeof(*offset));
    uint64_t *step = pt_xcalloc(n, sizeof(*step));
    uint64_t *next = pt_xcalloc(n, sizeof(*next));
    uint32_t wmax = 1;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = strlen(keys[i]);
        offset[i] = hash_bytes(keys[i], len, 0x6d61676c6576ull) % m;
        step[i] = hash_bytes(keys[i], len, 0x736b6970ull) % (m - 1) + 1;
        if (lb->weights[i] > wmax)
            wmax = lb->weights[i];
    }
    lb->table = pt_xmalloc((size_t)m * sizeof(*lb->table));
    for (uint32_t c = 0; c < m; c++)
        lb->table[c] = UINT32_MAX;
    lb->table_size = m;
    uint32_t filled = 0;
    /* The heaviest endpoint takes a slot every round: at most m rounds. */
    for (uint64_t r = 0; filled < m && r < (uint64_t)m * wmax; r++) {
        for (uint32_t i = 0; i < n && filled < m; i++) {
            uint64_t w = lb->weights[i];
            if ((r + 1) * w / wmax == r * w / wmax)
                continue;
            uint64_t c = (offset[i] + next[i] * step[i]) % m;
            while (lb->table[c] != UINT32_MAX) {
                next[i]++;
                c = (offset[i] + next[i] * step[i]) % m;
            }
            lb->table[c] = i;
            next[i]++;
            filled++;
        }
    }
    free(offset);
    free(step);
    free(next);
    return 0;
}

static uint32_t hash_choose(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key,
                            int avoid, uint64_t now_ns, const bool *down)
{
    (void)now_ns;
    if (!key.ptr || !lb->table)
        return rr_pick_masked(lb, loc, avoid, down);
    uint64_t c = hash_bytes(key.ptr, key.len, 0x6b6579ull) % lb->table_size;
    uint32_t i = lb->table[c];
    /* A retry, or a down instance, moves to the next slot that names a
     * candidate: the same key still lands on the same second choice, and
     * the keys of a down instance spread over the others in proportion to
     * their slots (and come back when it recovers). Bounded by the table. */
    for (uint32_t k = 1; !cand(lb, i, avoid, down) && k < lb->table_size; k++)
        i = lb->table[(c + k) % lb->table_size];
    if (!cand(lb, i, avoid, down))
        return rr_pick_masked(lb, loc, avoid, down);
    return i;
}

/* --- random --------------------------------------------------------------- */

static uint32_t random_choose(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key,
                              int avoid, uint64_t now_ns, const bool *down)
{
    (void)key;
    (void)now_ns;
    uint64_t total = lb->total_weight;
    if (lb->n > 1 && avoid >= 0 && (uint32_t)avoid < lb->n)
        total -= lb->weights[avoid];
    if (down)
        for (uint32_t i = 0; i < lb->n; i++)
            if (down[i] && !skip(lb, i, avoid))
                total -= lb->weights[i];
    if (total == 0)
        return rr_pick(lb, loc, avoid);
    uint64_t r = (rng_next(loc) >> 11) % total;
    for (uint32_t i = 0; i < lb->n; i++) {
        if (!cand(lb, i, avoid, down))
            continue;
        if (r < lb->weights[i])
            return i;
        r -= lb->weights[i];
    }
    return rr_pick(lb, loc, avoid); /* not reached */
}

/* --- peak EWMA ------------------------------------------------------------ */

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

double pt_lb_ewma_ns(const struct pt_lb *lb, uint32_t i, uint64_t now_ns)
{
    if (!lb->shared)
        return 0;
    const struct pt_lb_shared *s = &lb->shared[i];
    double e = bits_to_double(atomic_load_explicit(&s->ewma_bits, memory_order_relaxed));
    uint64_t at = atomic_load_explicit(&s->stamp_ns, memory_order_relaxed);
    if (now_ns > at)
        e *= exp(-(double)(now_ns - at) / (double)PT_LB_EWMA_TAU_NS);
    return e;
}

static double ewma_cost(const struct pt_lb *lb, uint32_t i, uint64_t now_ns)
{
    double e = pt_lb_ewma_ns(lb, i, now_ns);
    unsigned inflight = atomic_load_explicit(&lb->shared[i].inflight, memory_order_relaxed);
    if (e <= 0)
        /* Never measured: free while idle, then worse than anything known
         * until its first response says how fast it is. */
        return inflight ? 1e15 + inflight : 0;
    return e * (inflight + 1) / lb->weights[i];
}

static uint32_t ewma_choose(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key,
                            int avoid, uint64_t now_ns, const bool *down)
{
    (void)key;
    uint32_t c = ncand(lb, avoid, down);
    if (c == 0)
        return rr_pick(lb, loc, avoid);
    if (c == 1)
        return nth_cand(lb, 0, avoid, down);
    /* Two distinct random candidates. */
    uint32_t ra = rng_below(loc, c);
    uint32_t rb = rng_below(loc, c - 1);
    if (rb >= ra)
        rb++;
    uint32_t a = nth_cand(lb, ra, avoid, down);
    uint32_t b = nth_cand(lb, rb, avoid, down);
    return ewma_cost(lb, b, now_ns) < ewma_cost(lb, a, now_ns) ? b : a;
}

/* --- tables --------------------------------------------------------------- */

static const struct pt_lb_ops ops_table[] = {
    [PT_LB_ROUND_ROBIN] = {"round_robin", false, init_none, rr_choose},
    [PT_LB_WEIGHTED_ROUND_ROBIN] = {"weighted_round_robin", false, init_none, wrr_choose},
    [PT_LB_LEAST_CONNECTIONS] = {"least_connections", true, init_none, lc_choose},
    [PT_LB_IP_HASH] = {"ip_hash", false, maglev_init, hash_choose},
    [PT_LB_HASH] = {"hash", false, maglev_init, hash_choose},
    [PT_LB_RANDOM] = {"random", false, init_none, random_choose},
    [PT_LB_PEAK_EWMA] = {"peak_ewma", true, init_none, ewma_choose},
};

static bool token_char(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int pt_lb_hash_on_parse(const char *s, enum pt_lb_key *kind, struct pt_str *name)
{
    *name = PT_STR_NULL;
    if (strcmp(s, "ip") == 0) {
        *kind = PT_LB_KEY_IP;
        return 0;
    }
    const char *rest;
    if (strncmp(s, "header:", 7) == 0) {
        *kind = PT_LB_KEY_HEADER;
        rest = s + 7;
    } else if (strncmp(s, "cookie:", 7) == 0) {
        *kind = PT_LB_KEY_COOKIE;
        rest = s + 7;
    } else {
        return PT_ERR_INVALID;
    }
    if (!*rest || strlen(rest) > 256)
        return PT_ERR_INVALID;
    for (const char *p = rest; *p; p++)
        if (!token_char((unsigned char)*p))
            return PT_ERR_INVALID;
    *name = pt_str_from_cstr(rest);
    return 0;
}

int pt_lb_init(struct pt_lb *lb, enum pt_lb_algorithm a, const uint32_t *weights,
               const char *const *keys, uint32_t n, const char *hash_on)
{
    memset(lb, 0, sizeof(*lb));
    if ((unsigned)a >= sizeof(ops_table) / sizeof(ops_table[0]))
        return PT_ERR_INVALID;
    bool hashing = a == PT_LB_IP_HASH || a == PT_LB_HASH;
    bool given = hash_on && *hash_on;
    if (given && !hashing)
        return PT_ERR_INVALID;
    if (hashing) {
        struct pt_str name = PT_STR_NULL;
        if (!given && a == PT_LB_HASH)
            return PT_ERR_INVALID;
        if (!given)
            lb->key_kind = PT_LB_KEY_IP;
        else if (pt_lb_hash_on_parse(hash_on, &lb->key_kind, &name) != 0)
            return PT_ERR_INVALID;
        if (a == PT_LB_IP_HASH && lb->key_kind != PT_LB_KEY_IP)
            return PT_ERR_INVALID;
        if (name.len) {
            lb->key_name = pt_xmalloc(name.len + 1);
            for (size_t i = 0; i < name.len; i++)
                lb->key_name[i] =
                    (char)(lb->key_kind == PT_LB_KEY_HEADER ? tolower((unsigned char)name.ptr[i])
                                                            : name.ptr[i]);
            lb->key_name[name.len] = '\0';
        }
    }
    lb->algorithm = a;
    lb->ops = &ops_table[a];
    lb->n = n;
    lb->weights = pt_xcalloc(n ? n : 1, sizeof(*lb->weights));
    for (uint32_t i = 0; i < n; i++) {
        lb->weights[i] = weights && weights[i] ? weights[i] : 1;
        lb->total_weight += lb->weights[i];
    }
    if (lb->ops->track)
        lb->shared = pt_lb_xcalloc_aligned(n, sizeof(*lb->shared));
    int rc = lb->ops->init(lb, keys);
    if (rc != 0)
        pt_lb_fini(lb);
    return rc;
}

void pt_lb_fini(struct pt_lb *lb)
{
    free(lb->weights);
    free(lb->shared);
    free(lb->table);
    free(lb->key_name);
    memset(lb, 0, sizeof(*lb));
}

void pt_lb_local_init(struct pt_lb_local *loc, const struct pt_lb *lb, uint64_t seed)
{
    memset(loc, 0, sizeof(*loc));
    /* Workers start at different positions so they do not all hit the
     * first endpoint together. */
    loc->rr = (uint32_t)seed;
    loc->rng = mix64(seed + 0x5851f42d4c957f2dull);
    if (lb->algorithm == PT_LB_WEIGHTED_ROUND_ROBIN && lb->n)
        loc->current = pt_xcalloc(lb->n, sizeof(*loc->current));
}

void pt_lb_local_fini(struct pt_lb_local *loc)
{
    free(loc->current);
    loc->current = NULL;
}

uint32_t pt_lb_choose(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key, int avoid,
                      uint64_t now_ns)
{
    if (lb->n <= 1)
        return 0;
    return lb->ops->choose(lb, loc, key, avoid, now_ns, NULL);
}

uint32_t pt_lb_choose_usable(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key,
                             int avoid, uint64_t now_ns, const bool *down)
{
    if (lb->n <= 1)
        return 0;
    return lb->ops->choose(lb, loc, key, avoid, now_ns, down);
}

void pt_lb_on_start(const struct pt_lb *lb, uint32_t i)
{
    if (lb->shared && i < lb->n)
        atomic_fetch_add_explicit(&lb->shared[i].inflight, 1, memory_order_relaxed);
}

void pt_lb_on_end(const struct pt_lb *lb, uint32_t i, enum pt_lb_outcome o, uint64_t latency_ns,
                  uint64_t now_ns)
{
    if (!lb->shared || i >= lb->n)
        return;
    struct pt_lb_shared *s = &lb->shared[i];
    atomic_fetch_sub_explicit(&s->inflight, 1, memory_order_relaxed);
    if (lb->algorithm != PT_LB_PEAK_EWMA || o == PT_LB_ABANDONED)
        return;
    double rtt = (double)latency_ns;
    if (o == PT_LB_FAILED && rtt < (double)PT_LB_FAILURE_PENALTY_NS)
        rtt = (double)PT_LB_FAILURE_PENALTY_NS;
    if (rtt < 1)
        rtt = 1;
    /* Racing workers may lose an update; a sample more or less does not
     * change the picture, and the data path stays lock-free. */
    double e = bits_to_double(atomic_load_explicit(&s->ewma_bits, memory_order_relaxed));
    uint64_t at = atomic_load_explicit(&s->stamp_ns, memory_order_relaxed);
    if (rtt > e || e <= 0) {
        e = rtt; /* peak: slowness shows at once */
    } else {
        double w = now_ns > at ? exp(-(double)(now_ns - at) / (double)PT_LB_EWMA_TAU_NS) : 1.0;
        /* At least a small step per sample, so a burst at one instant
         * still moves the average. */
        if (w > 0.9)
            w = 0.9;
        e = e * w + rtt * (1 - w);
    }
    atomic_store_explicit(&s->ewma_bits, double_to_bits(e), memory_order_relaxed);
    atomic_store_explicit(&s->stamp_ns, now_ns, memory_order_relaxed);
}

/* --- request keys --------------------------------------------------------- */

static struct pt_str trim(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (struct pt_str){p, (size_t)(end - p)};
}

/* The value of cookie `name` in one Cookie field ("a=1; b=2"). */
static bool cookie_find(struct pt_str field, const char *name, struct pt_str *value)
{
    size_t nlen = strlen(name);
    const char *p = field.ptr, *end = field.ptr + field.len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq) {
            struct pt_str k = trim(p, eq);
            if (k.len == nlen && memcmp(k.ptr, name, nlen) == 0) {
                *value = trim(eq + 1, stop);
                return true;
            }
        }
        p = stop + 1;
    }
    return false;
}

struct pt_str pt_lb_key_get(enum pt_lb_key kind, const char *name, const struct pt_headers *h,
                            const char *peer_ip)
{
    switch (kind) {
    case PT_LB_KEY_IP:
        return peer_ip && *peer_ip ? pt_str_from_cstr(peer_ip) : PT_STR_NULL;
    case PT_LB_KEY_HEADER: {
        int i = h ? pt_headers_index(h, pt_str_from_cstr(name), 0) : -1;
        return i >= 0 ? h->v[i].value : PT_STR_NULL;
    }
    case PT_LB_KEY_COOKIE: {
        /* HTTP/2 may split cookies over several fields. */
        for (int i = h ? pt_headers_index(h, PT_STR("cookie"), 0) : -1; i >= 0;
             i = pt_headers_index(h, PT_STR("cookie"), (uint32_t)i + 1)) {
            struct pt_str v;
            if (cookie_find(h->v[i].value, name, &v))
                return v;
        }
        return PT_STR_NULL;
    }
    default:
        return PT_STR_NULL;
    }
}

struct pt_str pt_lb_request_key(const struct pt_lb *lb, const struct pt_headers *h,
                                const char *peer_ip)
{
    if (lb->algorithm != PT_LB_IP_HASH && lb->algorithm != PT_LB_HASH)
        return PT_STR_NULL;
    return pt_lb_key_get(lb->key_kind, lb->key_name, h, peer_ip);
}
