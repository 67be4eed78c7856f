#include "observe/metrics.h"

#include "auth/stats.h"
#include "ratelimit/stats.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "portico/errors.h"

const uint64_t pt_metrics_bucket_bounds_ns[PT_METRICS_NBOUNDS] = {
    100000,     200000,      500000,      1000000,     2000000,     5000000,    10000000,
    20000000,   50000000,    100000000,   200000000,   500000000,   1000000000, 2000000000,
    5000000000, 10000000000, 20000000000, 50000000000, 60000000000,
};

/* The same bounds as Prometheus "le" values (seconds), written out so the
 * text is exact and stable. */
static const char *const bucket_le[PT_METRICS_NBUCKETS] = {
    "0.0001", "0.0002", "0.0005", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1",
    "0.2",    "0.5",    "1",      "2",     "5",     "10",    "20",   "50",   "60",   "+Inf",
};

/* One worker's counters of one route, alone on its cache lines so that two
 * workers never write the same line. Only that worker writes it. */
struct slot {
    alignas(64) _Atomic int64_t in_flight;
    _Atomic uint64_t requests;
    _Atomic uint64_t responses[PT_METRICS_NCLASSES];
    _Atomic uint64_t upstream_errors;
    _Atomic uint64_t retries;
    _Atomic uint64_t retry_budget_denied;
    _Atomic uint64_t per_try_timeouts;
    _Atomic uint64_t hedges;
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
    _Atomic uint64_t latency_sum_ns;
    _Atomic uint64_t buckets[PT_METRICS_NBUCKETS];
};

struct pt_route_stats {
    struct slot *slots; /* nslots, 64-byte aligned */
    unsigned nslots;
    unsigned refs; /* under reg.mu */
    uint64_t hash;
    struct pt_route_stats *next; /* hash chain */
    char name[];
};

/* The registry: a chained hash table under one mutex, touched when
 * snapshots are built or destroyed and when statistics are read. */
static struct {
    pthread_mutex_t mu;
    struct pt_route_stats **buckets;
    size_t nbuckets; /* power of two, or 0 before the first ref */
    size_t count;
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Caller holds reg.mu. */
static struct pt_route_stats *find_locked(const char *name, uint64_t h)
{
    if (!reg.nbuckets)
        return NULL;
    for (struct pt_route_stats *e = reg.buckets[h & (reg.nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* Caller holds reg.mu. Keeps the load factor at most 1. */
static void grow_locked(void)
{
    if (reg.count < reg.nbuckets)
        return;
    size_t n = reg.nbuckets ? reg.nbuckets * 2 : 64;
    struct pt_route_stats **b = pt_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < reg.nbuckets; i++) {
        struct pt_route_stats *e = reg.buckets[i];
        while (e) {
            struct pt_route_stats *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(reg.buckets);
    reg.buckets = b;
    reg.nbuckets = n;
}

struct pt_route_stats *pt_metrics_route_ref(const char *name, unsigned nworkers)
{
    if (!nworkers || !name)
        return NULL;
    uint64_t h = hash_name(name);
    pthread_mutex_lock(&reg.mu);
    struct pt_route_stats *st = find_locked(name, h);
    if (st) {
        st->refs++;
        pthread_mutex_unlock(&reg.mu);
        return st;
    }
    size_t nlen = strlen(name);
    st = pt_xcalloc(1, sizeof(*st) + nlen + 1);
    memcpy(st->name, name, nlen + 1);
    void *mem = NULL;
    if (posix_memalign(&mem, alignof(struct slot), (size_t)nworkers * sizeof(struct slot)) != 0)
        mem = NULL;
    if (!mem)
        abort(); /* a real allocation failure aborts, like pt_xmalloc */
    memset(mem, 0, (size_t)nworkers * sizeof(struct slot));
    st->slots = mem;
    st->nslots = nworkers;
    st->refs = 1;
    st->hash = h;
    reg.count++;
    grow_locked();
    size_t i = h & (reg.nbuckets - 1);
    st->next = reg.buckets[i];
    reg.buckets[i] = st;
    pthread_mutex_unlock(&reg.mu);
    return st;
}

void pt_metrics_route_unref(struct pt_route_stats *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&reg.mu);
    if (--st->refs > 0) {
        pthread_mutex_unlock(&reg.mu);
        return;
    }
    struct pt_route_stats **pp = &reg.buckets[st->hash & (reg.nbuckets - 1)];
    while (*pp != st)
        pp = &(*pp)->next;
    *pp = st->next;
    reg.count--;
    if (reg.count == 0) {
        free(reg.buckets);
        reg.buckets = NULL;
        reg.nbuckets = 0;
    }
    pthread_mutex_unlock(&reg.mu);
    free(st->slots);
    free(st);
}

bool pt_metrics_is_upstream_error(int err)
{
    switch (err) {
    case PT_ERR_UPSTREAM_CONNECT:
    case PT_ERR_UPSTREAM_CONNECT_TIMEOUT:
    case PT_ERR_UPSTREAM_RESET:
    case PT_ERR_UPSTREAM_PROTOCOL:
    case PT_ERR_UPSTREAM_REFUSED:
    case PT_ERR_TIMEOUT:
    case PT_ERR_NO_ENDPOINT:
        return true;
    default:
        return false;
    }
}

/* ---- hot path ------------------------------------------------------------- */

/* Each slot has a single writer, so a relaxed load and store replace the
 * locked read-modify-write, and readers never see a torn value. */
static inline void add_u64(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline void add_i64(_Atomic int64_t *c, int64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline unsigned bucket_of(uint64_t ns)
{
    unsigned lo = 0, hi = PT_METRICS_NBOUNDS; /* first bound >= ns, in [lo, hi] */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (pt_metrics_bucket_bounds_ns[mid] < ns)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo; /* PT_METRICS_NBOUNDS: the +Inf bucket */
}

void pt_metrics_stats_start(struct pt_route_stats *st, unsigned worker)
{
    if (!st || worker >= st->nslots)
        return;
    add_i64(&st->slots[worker].in_flight, 1);
}

void pt_metrics_stats_end(struct pt_route_stats *st, unsigned worker, bool started,
                          const struct pt_metrics_sample *s)
{
    if (!st || worker >= st->nslots)
        return;
    struct slot *sl = &st->slots[worker];
    if (started)
        add_i64(&sl->in_flight, -1);
    add_u64(&sl->requests, 1);
    unsigned cls = (unsigned)(s->status / 100);
    if (cls >= 1 && cls <= PT_METRICS_NCLASSES)
        add_u64(&sl->responses[cls - 1], 1);
    if (s->upstream_error)
        add_u64(&sl->upstream_errors, 1);
    if (s->retries)
        add_u64(&sl->retries, s->retries);
    if (s->retry_budget_denied)
        add_u64(&sl->retry_budget_denied, 1);
    if (s->per_try_timeouts)
        add_u64(&sl->per_try_timeouts, s->per_try_timeouts);
    if (s->hedges)
        add_u64(&sl->hedges, s->hedges);
    add_u64(&sl->bytes_in, s->bytes_in);
    add_u64(&sl->bytes_out, s->bytes_out);
    add_u64(&sl->latency_sum_ns, s->duration_ns);
    add_u64(&sl->buckets[bucket_of(s->duration_ns)], 1);
}

/* ---- reading ---------------------------------------------------------------- */

static uint64_t ld(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Caller holds reg.mu (st stays alive). */
static void sum_locked(struct pt_route_stats *st, struct pt_route_stats_sum *out)
{
    memset(out, 0, sizeof(*out));
    int64_t in_flight = 0;
    for (unsigned w = 0; w < st->nslots; w++) {
        struct slot *sl = &st->slots[w];
        in_flight += atomic_load_explicit(&sl->in_flight, memory_order_relaxed);
        out->requests += ld(&sl->requests);
        for (unsigned c = 0; c < PT_METRICS_NCLASSES; c++)
            out->responses[c] += ld(&sl->responses[c]);
        out->upstream_errors += ld(&sl->upstream_errors);
        out->retries += ld(&sl->retries);
        out->retry_budget_denied += ld(&sl->retry_budget_denied);
        out->per_try_timeouts += ld(&sl->per_try_timeouts);
        out->hedges += ld(&sl->hedges);
        out->bytes_in += ld(&sl->bytes_in);
        out->bytes_out += ld(&sl->bytes_out);
        out->latency_sum_ns += ld(&sl->latency_sum_ns);
        for (unsigned b = 0; b < PT_METRICS_NBUCKETS; b++)
            out->buckets[b] += ld(&sl->buckets[b]);
    }
    out->in_flight = in_flight > 0 ? (uint64_t)in_flight : 0;
}

bool pt_metrics_route_read(const char *name, struct pt_route_stats_sum *out)
{
    memset(out, 0, sizeof(*out));
    if (!name)
        return false;
    uint64_t h = hash_name(name);
    pthread_mutex_lock(&reg.mu);
    struct pt_route_stats *st = find_locked(name, h);
    if (st)
        sum_locked(st, out);
    pthread_mutex_unlock(&reg.mu);
    return st != NULL;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pt_metrics_route_entry *)a)->name,
                  ((const struct pt_metrics_route_entry *)b)->name);
}

struct pt_metrics_route_entry *pt_metrics_route_list(size_t *n)
{
    pthread_mutex_lock(&reg.mu);
    struct pt_metrics_route_entry *list = pt_xcalloc(reg.count ? reg.count : 1, sizeof(*list));
    size_t k = 0;
    for (size_t i = 0; i < reg.nbuckets; i++)
        for (struct pt_route_stats *e = reg.buckets[i]; e; e = e->next) {
            list[k].name = pt_xstrdup(e->name);
            sum_locked(e, &list[k].sum);
            k++;
        }
    pthread_mutex_unlock(&reg.mu);
    qsort(list, k, sizeof(*list), entry_cmp);
    *n = k;
    return list;
}

void pt_metrics_route_list_free(struct pt_metrics_route_entry *list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i].name);
    free(list);
}

static uint64_t total_count(const struct pt_route_stats_sum *s)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < PT_METRICS_NBUCKETS; b++)
        n += s->buckets[b];
    return n;
}

double pt_metrics_quantile_ms(const struct pt_route_stats_sum *s, double q)
{
    uint64_t count = total_count(s);
    if (!count)
        return 0;
    if (q <= 0)
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * (double)count;
    uint64_t below = 0;
    for (unsigned b = 0; b < PT_METRICS_NBUCKETS; b++) {
        uint64_t in = s->buckets[b];
        if (!in || (double)(below + in) < rank) {
            below += in;
            continue;
        }
        if (b == PT_METRICS_NBOUNDS)
            break; /* +Inf bucket: the largest bound is all we know */
        double lo = b ? (double)pt_metrics_bucket_bounds_ns[b - 1] : 0.0;
        double hi = (double)pt_metrics_bucket_bounds_ns[b];
        double frac = (rank - (double)below) / (double)in;
        return (lo + (hi - lo) * frac) / 1e6;
    }
    return (double)pt_metrics_bucket_bounds_ns[PT_METRICS_NBOUNDS - 1] / 1e6;
}

double pt_metrics_mean_ms(const struct pt_route_stats_sum *s)
{
    uint64_t count = total_count(s);
    return count ? (double)s->latency_sum_ns / (double)count / 1e6 : 0;
}

/* ---- Prometheus text ---------------------------------------------------------- */

size_t pt_metrics_escape_label(const char *v, char *out)
{
    size_t k = 0;
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') {
            out[k++] = '\\';
            out[k++] = *v;
        } else if (*v == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *v;
        }
    }
    out[k] = '\0';
    return k;
}

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->p = pt_xrealloc(b->p, b->cap);
    }
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Rate-limit decisions per rule (ratelimit/stats.h), every outcome shown. */
static void rate_limit_families(struct buf *b)
{
    size_t n = 0;
    struct pt_rl_stats_entry *list = pt_rl_stats_list(&n);
    family(b, "portico_ratelimit_decisions_total", "counter",
           "Rate-limit decisions by rule: allowed, rejected, shadow_rejected, queued, "
           "failed_open, failed_closed.");
    for (size_t i = 0; i < n; i++) {
        char *label = pt_xmalloc(2 * strlen(list[i].rule) + 1);
        pt_metrics_escape_label(list[i].rule, label);
        for (unsigned o = 0; o < PT_RL_NOUTCOMES; o++)
            buf_printf(b, "portico_ratelimit_decisions_total{rule=\"%s\",decision=\"%s\"} %llu\n",
                       label, pt_rl_outcome_name((enum pt_rl_outcome)o),
                       (unsigned long long)list[i].counts[o]);
        free(label);
    }
    pt_rl_stats_list_free(list, n);
}

/* Authentication decisions per route (auth/stats.h), every decision of
 * every method the route uses (and "none") shown. */
static void auth_families(struct buf *b)
{
    size_t n = 0;
    struct pt_auth_stats_entry *list = pt_auth_stats_list(&n);
    family(b, "portico_auth_decisions_total", "counter",
           "Authentication decisions by route and method: allowed, anonymous, denied (401), "
           "forbidden (403).");
    for (size_t i = 0; i < n; i++) {
        char *label = pt_xmalloc(2 * strlen(list[i].route) + 1);
        pt_metrics_escape_label(list[i].route, label);
        for (size_t r = 0; r < list[i].nrows; r++)
            for (unsigned d = 0; d < PT_AUTH_NDECISIONS; d++)
                buf_printf(b,
                           "portico_auth_decisions_total{route=\"%s\",method=\"%s\","
                           "decision=\"%s\"} %llu\n",
                           label, list[i].rows[r].method,
                           pt_auth_decision_name((enum pt_auth_decision)d),
                           (unsigned long long)list[i].rows[r].counts[d]);
        free(label);
    }
    pt_auth_stats_list_free(list, n);
}

/* Health and circuit breakers of the upstream instances. */
static void upstream_families(struct buf *b, const struct pt_metrics_process *p)
{
    static const char *const states[3] = {"closed", "open", "half_open"};
    size_t n = p->ninstances;
    char **lab = pt_xcalloc(n ? n : 1, sizeof(*lab));
    for (size_t i = 0; i < n; i++) {
        const struct pt_metrics_instance *m = &p->instances[i];
        char *svc = pt_xmalloc(2 * strlen(m->service) + 1);
        char *ins = pt_xmalloc(2 * strlen(m->instance) + 1);
        pt_metrics_escape_label(m->service, svc);
        pt_metrics_escape_label(m->instance, ins);
        size_t len = strlen(svc) + strlen(ins) + 32;
        lab[i] = pt_xmalloc(len);
        snprintf(lab[i], len, "service=\"%s\",instance=\"%s\"", svc, ins);
        free(svc);
        free(ins);
    }
    family(b, "portico_upstream_healthy", "gauge",
           "1 when the instance may get traffic by its health (active check passing or none, "
           "not ejected), else 0.");
    for (size_t i = 0; i < n; i++)
        if (p->instances[i].instance[0])
            buf_printf(b, "portico_upstream_healthy{%s} %d\n", lab[i],
                       p->instances[i].healthy ? 1 : 0);
    family(b, "portico_upstream_ejected", "gauge",
           "1 while outlier detection has the instance ejected, else 0.");
    for (size_t i = 0; i < n; i++)
        if (p->instances[i].instance[0])
            buf_printf(b, "portico_upstream_ejected{%s} %d\n", lab[i],
                       p->instances[i].ejected ? 1 : 0);
    family(b, "portico_upstream_ejections_total", "counter",
           "Times outlier detection ejected the instance.");
    for (size_t i = 0; i < n; i++)
        if (p->instances[i].instance[0])
            buf_printf(b, "portico_upstream_ejections_total{%s} %llu\n", lab[i],
                       (unsigned long long)p->instances[i].ejections_total);
    family(b, "portico_upstream_health_transitions_total", "counter",
           "Active health check transitions of the instance, by the state entered.");
    for (size_t i = 0; i < n; i++) {
        if (!p->instances[i].instance[0])
            continue;
        buf_printf(b, "portico_upstream_health_transitions_total{%s,to=\"healthy\"} %llu\n", lab[i],
                   (unsigned long long)p->instances[i].to_healthy_total);
        buf_printf(b, "portico_upstream_health_transitions_total{%s,to=\"unhealthy\"} %llu\n",
                   lab[i], (unsigned long long)p->instances[i].to_unhealthy_total);
    }
    family(b, "portico_upstream_health_checks_total", "counter",
           "Active health checks of the instance, by result.");
    for (size_t i = 0; i < n; i++) {
        if (!p->instances[i].instance[0])
            continue;
        const struct pt_metrics_instance *m = &p->instances[i];
        buf_printf(b, "portico_upstream_health_checks_total{%s,result=\"ok\"} %llu\n", lab[i],
                   (unsigned long long)(m->checks_total - m->check_failures_total));
        buf_printf(b, "portico_upstream_health_checks_total{%s,result=\"failed\"} %llu\n", lab[i],
                   (unsigned long long)m->check_failures_total);
    }
    family(b, "portico_circuit_state", "gauge",
           "Circuit breaker state: 0 closed, 1 open, 2 half-open (instance=\"\": the "
           "service's breaker).");
    for (size_t i = 0; i < n; i++)
        if (p->instances[i].has_breaker)
            buf_printf(b, "portico_circuit_state{%s} %u\n", lab[i], p->instances[i].circuit_state);
    family(b, "portico_circuit_transitions_total", "counter",
           "Circuit breaker transitions, by the state entered.");
    for (size_t i = 0; i < n; i++)
        if (p->instances[i].has_breaker)
            for (unsigned s = 0; s < 3; s++)
                buf_printf(b, "portico_circuit_transitions_total{%s,to=\"%s\"} %llu\n", lab[i],
                           states[s], (unsigned long long)p->instances[i].circuit_transitions[s]);
    for (size_t i = 0; i < n; i++)
        free(lab[i]);
    free(lab);
}

char *pt_metrics_prometheus(const struct pt_metrics_process *p, size_t *len)
{
    size_t n = 0;
    struct pt_metrics_route_entry *list = pt_metrics_route_list(&n);
    /* Escaped route labels, computed once. */
    char **label = pt_xcalloc(n ? n : 1, sizeof(*label));
    for (size_t i = 0; i < n; i++) {
        const char *name = list[i].name[0] ? list[i].name : PT_METRICS_NO_ROUTE_LABEL;
        label[i] = pt_xmalloc(2 * strlen(name) + 1);
        pt_metrics_escape_label(name, label[i]);
    }
    struct buf b = {.cap = 4096 + n * 4096};
    b.p = pt_xmalloc(b.cap);
    b.p[0] = '\0';

    family(&b, "portico_requests_total", "counter",
           "Requests completed, by route and class of the HTTP status sent downstream.");
    for (size_t i = 0; i < n; i++)
        for (unsigned c = 0; c < PT_METRICS_NCLASSES; c++)
            buf_printf(&b, "portico_requests_total{route=\"%s\",code_class=\"%uxx\"} %llu\n",
                       label[i], c + 1, (unsigned long long)list[i].sum.responses[c]);

    family(&b, "portico_upstream_errors_total", "counter",
           "Requests that ended because the upstream failed (connect, reset, timeout).");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "portico_upstream_errors_total{route=\"%s\"} %llu\n", label[i],
                   (unsigned long long)list[i].sum.upstream_errors);

    family(&b, "portico_route_retries_total", "counter",
           "Upstream attempts that were retries of an earlier attempt of the same request.");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "portico_route_retries_total{route=\"%s\"} %llu\n", label[i],
                   (unsigned long long)list[i].sum.retries);
    family(&b, "portico_route_retry_budget_exhausted_total", "counter",
           "Requests whose retry the service's retry budget refused.");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "portico_route_retry_budget_exhausted_total{route=\"%s\"} %llu\n", label[i],
                   (unsigned long long)list[i].sum.retry_budget_denied);
    family(&b, "portico_route_per_try_timeouts_total", "counter",
           "Upstream attempts cancelled by the route's per_try_timeout_ms.");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "portico_route_per_try_timeouts_total{route=\"%s\"} %llu\n", label[i],
                   (unsigned long long)list[i].sum.per_try_timeouts);
    family(&b, "portico_route_hedges_total", "counter",
           "Hedged attempts started (route hedge.delay_ms passed without a response head).");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "portico_route_hedges_total{route=\"%s\"} %llu\n", label[i],
                   (unsigned long long)list[i].sum.hedges);

    family(&b, "portico_request_duration_seconds", "histogram",
           "Time from the first request byte to the last response byte.");
    for (size_t i = 0; i < n; i++) {
        const struct pt_route_stats_sum *s = &list[i].sum;
        uint64_t cum = 0;
        for (unsigned k = 0; k < PT_METRICS_NBUCKETS; k++) {
            cum += s->buckets[k];
            buf_printf(&b, "portico_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} %llu\n",
                       label[i], bucket_le[k], (unsigned long long)cum);
        }
        buf_printf(&b, "portico_request_duration_seconds_sum{route=\"%s\"} %.9f\n", label[i],
                   (double)s->latency_sum_ns / 1e9);
        buf_printf(&b, "portico_request_duration_seconds_count{route=\"%s\"} %llu\n", label[i],
                   (unsigned long long)cum);
    }

    family(&b, "portico_requests_in_flight", "gauge", "Requests started and not finished yet.");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "portico_requests_in_flight{route=\"%s\"} %llu\n", label[i],
                   (unsigned long long)list[i].sum.in_flight);

    family(&b, "portico_bytes_received_total", "counter",
           "Request body bytes received from clients.");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "portico_bytes_received_total{route=\"%s\"} %llu\n", label[i],
                   (unsigned long long)list[i].sum.bytes_in);

    family(&b, "portico_bytes_sent_total", "counter", "Response body bytes sent to clients.");
    for (size_t i = 0; i < n; i++)
        buf_printf(&b, "portico_bytes_sent_total{route=\"%s\"} %llu\n", label[i],
                   (unsigned long long)list[i].sum.bytes_out);

    family(&b, "portico_connections", "gauge", "Open downstream connections.");
    buf_printf(&b, "portico_connections %llu\n", (unsigned long long)p->connections);
    family(&b, "portico_config_version", "gauge", "Version of the stored configuration.");
    buf_printf(&b, "portico_config_version %llu\n", (unsigned long long)p->config_version);
    family(&b, "portico_snapshot_generation", "gauge",
           "Generation of the configuration snapshot being served.");
    buf_printf(&b, "portico_snapshot_generation %llu\n",
               (unsigned long long)p->snapshot_generation);
    family(&b, "portico_uptime_seconds", "gauge", "Seconds since the process started.");
    buf_printf(&b, "portico_uptime_seconds %.3f\n", p->uptime_seconds);

    upstream_families(&b, p);
    rate_limit_families(&b);
    auth_families(&b);

    for (size_t i = 0; i < n; i++)
        free(label[i]);
    free(label);
    pt_metrics_route_list_free(list, n);
    if (len)
        *len = b.len;
    return b.p;
}
