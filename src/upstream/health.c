#include "upstream/health.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/named.h"
#include "core/strutil.h"
#include "portico/errors.h"
#include "upstream/lb.h"

/* Touched only when snapshots are built or freed. */
static struct pt_named_table reg = PT_NAMED_TABLE_INIT;

/* --- configuration --------------------------------------------------------- */

void pt_health_check_conf_defaults(struct pt_health_check_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->kind = PT_HEALTH_HTTP;
    c->interval_ms = PT_HEALTH_DEFAULT_INTERVAL_MS;
    c->timeout_ms = PT_HEALTH_DEFAULT_TIMEOUT_MS;
    c->healthy_threshold = PT_HEALTH_DEFAULT_HEALTHY_THRESHOLD;
    c->unhealthy_threshold = PT_HEALTH_DEFAULT_UNHEALTHY_THRESHOLD;
}

void pt_health_check_conf_fini(struct pt_health_check_conf *c)
{
    free(c->path);
    free(c->host);
    free(c->grpc_service);
    c->path = c->host = c->grpc_service = NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? pt_xstrdup(s) : NULL;
}

void pt_health_check_conf_copy(struct pt_health_check_conf *dst,
                               const struct pt_health_check_conf *src)
{
    *dst = *src;
    dst->path = dup_or_null(src->path);
    dst->host = dup_or_null(src->host);
    dst->grpc_service = dup_or_null(src->grpc_service);
}

int pt_health_status_add(struct pt_health_check_conf *c, const char *s)
{
    if (c->nranges >= PT_HEALTH_MAX_STATUS_RANGES)
        return PT_ERR_INVALID;
    const char *dash = strchr(s, '-');
    uint64_t lo, hi;
    if (dash) {
        if (pt_str_to_u64((struct pt_str){s, (size_t)(dash - s)}, &lo) != 0 ||
            pt_str_to_u64(pt_str_from_cstr(dash + 1), &hi) != 0)
            return PT_ERR_INVALID;
    } else {
        if (pt_str_to_u64(pt_str_from_cstr(s), &lo) != 0)
            return PT_ERR_INVALID;
        hi = lo;
    }
    if (lo < 100 || hi > 599 || lo > hi)
        return PT_ERR_INVALID;
    c->lo[c->nranges] = (uint16_t)lo;
    c->hi[c->nranges] = (uint16_t)hi;
    c->nranges++;
    return 0;
}

bool pt_health_status_ok(const struct pt_health_check_conf *c, int st)
{
    if (c->nranges == 0)
        return st >= 200 && st <= 399;
    for (uint32_t i = 0; i < c->nranges; i++)
        if (st >= c->lo[i] && st <= c->hi[i])
            return true;
    return false;
}

void pt_outlier_conf_defaults(struct pt_outlier_conf *c)
{
    c->consecutive = PT_OUTLIER_DEFAULT_CONSECUTIVE;
    c->base_ms = PT_OUTLIER_DEFAULT_BASE_MS;
    c->max_ms = PT_OUTLIER_DEFAULT_MAX_MS;
    c->max_percent = PT_OUTLIER_DEFAULT_MAX_PERCENT;
}

/* --- registry ------------------------------------------------------------- */

struct pt_health *pt_health_new(const char *key)
{
    struct pt_health *h = pt_lb_xcalloc_aligned(1, sizeof(*h));
    h->named.key = pt_xstrdup(key);
    h->named.refs = 1;
    return h;
}

static struct pt_named *health_make(const char *key, const void *arg)
{
    (void)arg;
    return &pt_health_new(key)->named;
}

static void health_destroy(struct pt_named *n)
{
    struct pt_health *h = PT_NAMED_OF(n, struct pt_health, named);
    free(h->named.key);
    free(h);
}

static const struct pt_named_ops health_ops = {health_make, NULL, health_destroy};

struct pt_health *pt_health_ref(const char *key)
{
    return PT_NAMED_OF(pt_named_ref(&reg, key, &health_ops, NULL), struct pt_health, named);
}

void pt_health_unref(struct pt_health *h)
{
    if (h)
        pt_named_unref(&reg, &h->named, &health_ops);
}

/* --- state ---------------------------------------------------------------- */

bool pt_health_ejected(const struct pt_health *h, uint64_t now_ns)
{
    uint64_t until = atomic_load_explicit(&h->ejected_until_ns, memory_order_relaxed);
    return until != 0 && now_ns < until;
}

uint32_t pt_health_max_ejected(uint32_t n, uint32_t max_percent)
{
    uint32_t m = (uint32_t)((uint64_t)n * max_percent / 100);
    if (m == 0 && n > 1 && max_percent > 0)
        m = 1;
    return m;
}

bool pt_health_outcome(struct pt_health *h, const struct pt_outlier_conf *c, bool failure,
                       uint64_t now_ns, struct pt_health *const *peers, uint32_t n)
{
    if (!h || !c->consecutive)
        return false;
    if (!failure) {
        if (atomic_load_explicit(&h->consecutive, memory_order_relaxed) != 0)
            atomic_store_explicit(&h->consecutive, 0, memory_order_relaxed);
        return false;
    }
    unsigned f = atomic_fetch_add_explicit(&h->consecutive, 1, memory_order_relaxed) + 1;
    if (f < c->consecutive)
        return false;
    /* Exactly one of the racing workers reaches the threshold first. */
    atomic_store_explicit(&h->consecutive, 0, memory_order_relaxed);
    uint64_t until = atomic_load_explicit(&h->ejected_until_ns, memory_order_relaxed);
    if (until != 0 && now_ns < until)
        return false; /* already ejected: a late outcome */
    uint32_t ejected = 0;
    for (uint32_t i = 0; i < n; i++)
        if (peers[i] && peers[i] != h && pt_health_ejected(peers[i], now_ns))
            ejected++;
    if (ejected + 1 > pt_health_max_ejected(n, c->max_percent))
        return false;
    /* k: ejections in a row; starts again once the instance has gone
     * max_ejection_time without being ejected. */
    uint64_t max_ns = (uint64_t)c->max_ms * 1000000ull;
    uint64_t last_end = atomic_load_explicit(&h->last_ejection_end_ns, memory_order_relaxed);
    unsigned k = atomic_load_explicit(&h->ejections, memory_order_relaxed);
    if (last_end && now_ns >= last_end && now_ns - last_end >= max_ns)
        k = 0;
    k++;
    uint64_t t = (uint64_t)c->base_ms * 1000000ull * k;
    if (t > max_ns)
        t = max_ns;
    if (!atomic_compare_exchange_strong(&h->ejected_until_ns, &until, now_ns + t))
        return false; /* another worker ejected it meanwhile */
    atomic_store_explicit(&h->ejections, k, memory_order_relaxed);
    atomic_store_explicit(&h->last_ejection_end_ns, now_ns + t, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->ejections_total, 1, memory_order_relaxed);
    return true;
}

int pt_health_check_result(struct pt_health *h, const struct pt_health_check_conf *c,
                           enum pt_health_last r)
{
    atomic_fetch_add_explicit(&h->checks_total, 1, memory_order_relaxed);
    atomic_store_explicit(&h->last, (unsigned)r, memory_order_relaxed);
    bool down = atomic_load_explicit(&h->down, memory_order_relaxed);
    if (r == PT_HEALTH_LAST_OK) {
        h->fail_streak = 0;
        h->ok_streak++;
        if (down && h->ok_streak >= c->healthy_threshold) {
            atomic_store_explicit(&h->down, false, memory_order_relaxed);
            atomic_fetch_add_explicit(&h->to_healthy_total, 1, memory_order_relaxed);
            return 1;
        }
        return 0;
    }
    atomic_fetch_add_explicit(&h->check_failures_total, 1, memory_order_relaxed);
    h->ok_streak = 0;
    h->fail_streak++;
    if (!down && h->fail_streak >= c->unhealthy_threshold) {
        atomic_store_explicit(&h->down, true, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->to_unhealthy_total, 1, memory_order_relaxed);
        return -1;
    }
    return 0;
}

void pt_health_check_reset(struct pt_health *h)
{
    h->ok_streak = h->fail_streak = 0;
    atomic_store_explicit(&h->last, PT_HEALTH_LAST_NONE, memory_order_relaxed);
    if (atomic_exchange_explicit(&h->down, false, memory_order_relaxed))
        atomic_fetch_add_explicit(&h->to_healthy_total, 1, memory_order_relaxed);
}

const char *pt_health_last_name(enum pt_health_last r)
{
    switch (r) {
    case PT_HEALTH_LAST_OK:
        return "ok";
    case PT_HEALTH_LAST_FAILED:
        return "failed";
    case PT_HEALTH_LAST_TIMEOUT:
        return "timeout";
    case PT_HEALTH_LAST_CONNECT:
        return "connect-failure";
    default:
        return "none";
    }
}

void pt_health_read(const struct pt_health *h, uint64_t now_ns, struct pt_health_info *out)
{
    out->healthy = !atomic_load_explicit(&h->down, memory_order_relaxed);
    out->ejected = pt_health_ejected(h, now_ns);
    out->ejections = atomic_load_explicit(&h->ejections, memory_order_relaxed);
    out->ejections_total = atomic_load_explicit(&h->ejections_total, memory_order_relaxed);
    out->to_unhealthy_total = atomic_load_explicit(&h->to_unhealthy_total, memory_order_relaxed);
    out->to_healthy_total = atomic_load_explicit(&h->to_healthy_total, memory_order_relaxed);
    out->checks_total = atomic_load_explicit(&h->checks_total, memory_order_relaxed);
    out->check_failures_total =
        atomic_load_explicit(&h->check_failures_total, memory_order_relaxed);
    out->last = (enum pt_health_last)atomic_load_explicit(&h->last, memory_order_relaxed);
}
