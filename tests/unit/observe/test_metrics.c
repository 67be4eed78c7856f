/*
 * Tests for observe/metrics: the registry's lifetime rules across
 * "snapshots" (references), the counters, quantiles interpolated from the
 * histogram against hand-computed values, label escaping, and the
 * Prometheus exposition read back by a small strict checker written here.
 * Every test releases the references it takes, so the registry starts
 * empty in each.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "observe/metrics.h"
#include "auth/stats.h"
#include "ratelimit/stats.h"
#include "portico/errors.h"

static void sample(struct pt_route_stats *st, unsigned w, int status, uint64_t ns)
{
    struct pt_metrics_sample s = {.status = status, .duration_ns = ns};
    pt_metrics_stats_start(st, w);
    pt_metrics_stats_end(st, w, true, &s);
}

static void assert_registry_empty(void)
{
    size_t n = 99;
    struct pt_metrics_route_entry *l = pt_metrics_route_list(&n);
    assert_int_equal(n, 0);
    pt_metrics_route_list_free(l, n);
}

/* ---- registry ---------------------------------------------------------------- */

static void test_metrics_route__counters_survive_a_new_snapshot(void **state)
{
    (void)state;
    /* snapshot 1 has routes a and b */
    struct pt_route_stats *a1 = pt_metrics_route_ref("a", 2);
    struct pt_route_stats *b1 = pt_metrics_route_ref("b", 2);
    sample(a1, 0, 200, 1000000);
    sample(a1, 1, 200, 1000000);
    sample(b1, 0, 404, 1000000);
    /* snapshot 2 keeps a, drops b, adds c; then snapshot 1 goes away */
    struct pt_route_stats *a2 = pt_metrics_route_ref("a", 2);
    struct pt_route_stats *c2 = pt_metrics_route_ref("c", 2);
    assert_ptr_equal(a1, a2);
    pt_metrics_route_unref(a1);
    pt_metrics_route_unref(b1);

    struct pt_route_stats_sum s;
    assert_true(pt_metrics_route_read("a", &s));
    assert_int_equal(s.requests, 2);
    assert_int_equal(s.responses[1], 2);
    assert_false(pt_metrics_route_read("b", &s)); /* deleted route: gone */
    assert_int_equal(s.requests, 0);
    assert_true(pt_metrics_route_read("c", &s));
    assert_int_equal(s.requests, 0);

    /* b comes back in snapshot 3: from zero */
    struct pt_route_stats *b3 = pt_metrics_route_ref("b", 2);
    assert_true(pt_metrics_route_read("b", &s));
    assert_int_equal(s.requests, 0);
    assert_int_equal(s.responses[3], 0);

    pt_metrics_route_unref(a2);
    pt_metrics_route_unref(c2);
    pt_metrics_route_unref(b3);
    assert_false(pt_metrics_route_read("a", &s));
    assert_registry_empty();
}

static void test_metrics_route__no_workers_means_no_object(void **state)
{
    (void)state;
    assert_null(pt_metrics_route_ref("a", 0));
    pt_metrics_route_unref(NULL);
    pt_metrics_stats_start(NULL, 0);
    struct pt_metrics_sample s = {.status = 200};
    pt_metrics_stats_end(NULL, 0, true, &s);
    assert_registry_empty();
}

static void test_metrics_route__many_names_list_sorted(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct pt_route_stats *st[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "r%04d", (i * 7919) % N);
        st[i] = pt_metrics_route_ref(name, 1);
        sample(st[i], 0, 200, (uint64_t)(i + 1) * 1000);
    }
    struct pt_route_stats *none = pt_metrics_route_ref(PT_METRICS_NO_ROUTE, 1);
    size_t n = 0;
    struct pt_metrics_route_entry *l = pt_metrics_route_list(&n);
    assert_int_equal(n, N + 1);
    assert_string_equal(l[0].name, "");
    for (size_t i = 1; i < n; i++) {
        snprintf(name, sizeof(name), "r%04zu", i - 1);
        assert_string_equal(l[i].name, name);
        assert_int_equal(l[i].sum.requests, 1);
    }
    pt_metrics_route_list_free(l, n);
    for (int i = 0; i < N; i++)
        pt_metrics_route_unref(st[i]);
    pt_metrics_route_unref(none);
    assert_registry_empty();
}

/* ---- counters ------------------------------------------------------------------ */

static void test_metrics_stats__classes_errors_bytes_in_flight(void **state)
{
    (void)state;
    struct pt_route_stats *st = pt_metrics_route_ref("r", 3);
    static const int statuses[] = {101, 200, 204, 301, 404, 499, 502, 503, 0, 700};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        struct pt_metrics_sample s = {.status = statuses[i],
                                      .upstream_error = statuses[i] >= 502 && statuses[i] < 600,
                                      .duration_ns = 1000,
                                      .bytes_in = 10,
                                      .bytes_out = 100};
        unsigned w = (unsigned)i % 3;
        pt_metrics_stats_start(st, w);
        pt_metrics_stats_end(st, w, true, &s);
    }
    pt_metrics_stats_start(st, 1);
    pt_metrics_stats_start(st, 2);
    pt_metrics_stats_start(st, 7); /* no such worker: ignored */
    /* ended without having started (failed before routing) */
    struct pt_metrics_sample early = {.status = 400, .duration_ns = 5};
    pt_metrics_stats_end(st, 0, false, &early);

    struct pt_route_stats_sum s;
    assert_true(pt_metrics_route_read("r", &s));
    assert_int_equal(s.requests, 11);
    assert_int_equal(s.responses[0], 1);
    assert_int_equal(s.responses[1], 2);
    assert_int_equal(s.responses[2], 1);
    assert_int_equal(s.responses[3], 3);
    assert_int_equal(s.responses[4], 2);
    assert_int_equal(s.upstream_errors, 2);
    assert_int_equal(s.bytes_in, 100);
    assert_int_equal(s.bytes_out, 1000);
    assert_int_equal(s.in_flight, 2);
    assert_int_equal(s.latency_sum_ns, 10 * 1000 + 5);

    struct pt_metrics_sample done = {.status = 200};
    pt_metrics_stats_end(st, 1, true, &done);
    pt_metrics_stats_end(st, 2, true, &done);
    assert_true(pt_metrics_route_read("r", &s));
    assert_int_equal(s.in_flight, 0);
    pt_metrics_route_unref(st);
}

static void test_metrics__upstream_error_codes(void **state)
{
    (void)state;
    assert_true(pt_metrics_is_upstream_error(PT_ERR_UPSTREAM_CONNECT));
    assert_true(pt_metrics_is_upstream_error(PT_ERR_UPSTREAM_CONNECT_TIMEOUT));
    assert_true(pt_metrics_is_upstream_error(PT_ERR_UPSTREAM_RESET));
    assert_true(pt_metrics_is_upstream_error(PT_ERR_UPSTREAM_REFUSED));
    assert_true(pt_metrics_is_upstream_error(PT_ERR_UPSTREAM_PROTOCOL));
    assert_true(pt_metrics_is_upstream_error(PT_ERR_TIMEOUT));
    assert_true(pt_metrics_is_upstream_error(PT_ERR_NO_ENDPOINT));
    assert_false(pt_metrics_is_upstream_error(0));
    assert_false(pt_metrics_is_upstream_error(PT_ERR_NO_ROUTE));
    assert_false(pt_metrics_is_upstream_error(PT_ERR_CANCELLED));
    assert_false(pt_metrics_is_upstream_error(PT_ERR_BAD_REQUEST));
    assert_false(pt_metrics_is_upstream_error(PT_ERR_RATE_LIMITED));
}

/* ---- histogram and quantiles ----------------------------------------------------- */

static void test_metrics_histogram__bounds_are_inclusive(void **state)
{
    (void)state;
    struct pt_route_stats *st = pt_metrics_route_ref("h", 1);
    sample(st, 0, 200, 0);              /* bucket 0 */
    sample(st, 0, 200, 100000);         /* le 0.1 ms: bucket 0 */
    sample(st, 0, 200, 100001);         /* bucket 1 (le 0.2 ms) */
    sample(st, 0, 200, 60000000000);    /* le 60 s */
    sample(st, 0, 200, 60000000001);    /* +Inf */
    sample(st, 0, 200, UINT64_MAX / 4); /* +Inf */
    struct pt_route_stats_sum s;
    assert_true(pt_metrics_route_read("h", &s));
    assert_int_equal(s.buckets[0], 2);
    assert_int_equal(s.buckets[1], 1);
    assert_int_equal(s.buckets[PT_METRICS_NBOUNDS - 1], 1);
    assert_int_equal(s.buckets[PT_METRICS_NBOUNDS], 2);
    uint64_t total = 0;
    for (unsigned b = 0; b < PT_METRICS_NBUCKETS; b++)
        total += s.buckets[b];
    assert_int_equal(total, 6);
    /* Bounds increase strictly. */
    for (unsigned b = 1; b < PT_METRICS_NBOUNDS; b++)
        assert_true(pt_metrics_bucket_bounds_ns[b] > pt_metrics_bucket_bounds_ns[b - 1]);
    pt_metrics_route_unref(st);
}

static void test_metrics_quantile__interpolates_inside_a_bucket(void **state)
{
    (void)state;
    struct pt_route_stats_sum s = {0};
    assert_true(pt_metrics_quantile_ms(&s, 0.5) == 0.0);
    assert_true(pt_metrics_mean_ms(&s) == 0.0);

    /* 100 requests of 1.5 ms: all in (1 ms, 2 ms] (bucket 4). */
    s.buckets[4] = 100;
    s.latency_sum_ns = 100 * 1500000ull;
    assert_float_equal(pt_metrics_quantile_ms(&s, 0.5), 1.5, 1e-9);
    assert_float_equal(pt_metrics_quantile_ms(&s, 0.9), 1.9, 1e-9);
    assert_float_equal(pt_metrics_quantile_ms(&s, 0.99), 1.99, 1e-9);
    assert_float_equal(pt_metrics_mean_ms(&s), 1.5, 1e-9);
}

static void test_metrics_quantile__known_distribution(void **state)
{
    (void)state;
    /* Recorded through the hot path: 50 x 0.05 ms, 40 x 3 ms, 9 x 30 ms,
     * 1 x 2.5 s. Buckets: [0,0.1] has 50, (2,5] has 40, (20,50] has 9,
     * (2000,5000] has 1. */
    struct pt_route_stats *st = pt_metrics_route_ref("q", 2);
    for (int i = 0; i < 50; i++)
        sample(st, (unsigned)i % 2, 200, 50000);
    for (int i = 0; i < 40; i++)
        sample(st, (unsigned)i % 2, 200, 3000000);
    for (int i = 0; i < 9; i++)
        sample(st, 0, 200, 30000000);
    sample(st, 1, 200, 2500000000ull);
    struct pt_route_stats_sum s;
    assert_true(pt_metrics_route_read("q", &s));
    /* p50: rank 50 is the last of the first bucket -> its upper bound. */
    assert_float_equal(pt_metrics_quantile_ms(&s, 0.5), 0.1, 1e-9);
    /* p90: rank 90 -> all 40 of (2,5] -> 5 ms. */
    assert_float_equal(pt_metrics_quantile_ms(&s, 0.9), 5.0, 1e-9);
    /* p60: rank 60 -> 10 of 40 in (2,5] -> 2 + 3 * 0.25 = 2.75 ms. */
    assert_float_equal(pt_metrics_quantile_ms(&s, 0.6), 2.75, 1e-9);
    /* p99: rank 99 -> 9 of 9 in (20,50] -> 50 ms. */
    assert_float_equal(pt_metrics_quantile_ms(&s, 0.99), 50.0, 1e-9);
    /* p99.5: rank 99.5 -> half of the one in (2000,5000] -> 3500 ms. */
    assert_float_equal(pt_metrics_quantile_ms(&s, 0.995), 3500.0, 1e-9);
    double mean = (50 * 0.05 + 40 * 3.0 + 9 * 30.0 + 2500.0) / 100.0;
    assert_float_equal(pt_metrics_mean_ms(&s), mean, 1e-9);
    pt_metrics_route_unref(st);
}

static void test_metrics_quantile__inf_bucket_reads_as_largest_bound(void **state)
{
    (void)state;
    struct pt_route_stats_sum s = {0};
    s.buckets[PT_METRICS_NBOUNDS] = 3;
    s.latency_sum_ns = 3 * 100000000000ull;
    assert_float_equal(pt_metrics_quantile_ms(&s, 0.5), 60000.0, 1e-9);
    assert_float_equal(pt_metrics_mean_ms(&s), 100000.0, 1e-9);
}

/* ---- escaping ------------------------------------------------------------------------ */

static void test_metrics_escape__backslash_quote_newline(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(pt_metrics_escape_label("plain-name_1.2", out), 14);
    assert_string_equal(out, "plain-name_1.2");
    size_t n = pt_metrics_escape_label("a\\b\"c\nd\te", out);
    assert_string_equal(out, "a\\\\b\\\"c\\nd\te");
    assert_int_equal(n, strlen(out));
    assert_int_equal(pt_metrics_escape_label("", out), 0);
    assert_string_equal(out, "");
}

/* ---- a strict checker for the text format ------------------------------------------ */

struct sample_line {
    char name[96];
    char labels[8][2][256]; /* name, unescaped value */
    int nlabels;
    double value;
};

struct family {
    char name[96];
    char type[16];
    bool help;
};

struct exposition {
    struct family fam[32];
    int nfam;
    struct sample_line *s;
    int ns, cap;
};

static bool is_name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static const char *parse_name(const char *p, char *out, size_t cap)
{
    size_t k = 0;
    if (!is_name_char(*p, true))
        fail_msg("bad metric/label name at \"%.40s\"", p);
    while (is_name_char(*p, k == 0) && k + 1 < cap)
        out[k++] = *p++;
    out[k] = '\0';
    return p;
}

static struct family *fam_find(struct exposition *e, const char *name)
{
    for (int i = 0; i < e->nfam; i++)
        if (strcmp(e->fam[i].name, name) == 0)
            return &e->fam[i];
    return NULL;
}

/* The family a sample belongs to (histograms own _bucket/_sum/_count). */
static struct family *owner(struct exposition *e, const char *sample)
{
    struct family *f = fam_find(e, sample);
    if (f)
        return f;
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(sample), m = strlen(sfx[i]);
        if (n > m && strcmp(sample + n - m, sfx[i]) == 0) {
            char base[96];
            memcpy(base, sample, n - m);
            base[n - m] = '\0';
            f = fam_find(e, base);
            if (f && strcmp(f->type, "histogram") == 0)
                return f;
        }
    }
    return NULL;
}

static void parse_exposition(const char *text, size_t len, struct exposition *e)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(strlen(text), len);
    assert_true(len > 0 && text[len - 1] == '\n');
    struct family *current = NULL;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        if (p[0] == '#') {
            char kw[8], name[96];
            if (strncmp(p, "# HELP ", 7) == 0) {
                parse_name(p + 7, name, sizeof(name));
                struct family *f = fam_find(e, name);
                assert_null(f); /* HELP comes first and once */
                assert_true(e->nfam < 32);
                f = &e->fam[e->nfam++];
                snprintf(f->name, sizeof(f->name), "%s", name);
                f->help = true;
                current = f;
            } else {
                assert_int_equal(sscanf(p, "# %7s %95s", kw, name), 2);
                assert_string_equal(kw, "TYPE");
                struct family *f = fam_find(e, name);
                assert_non_null(f);
                assert_ptr_equal(f, current);
                assert_int_equal(f->type[0], '\0'); /* once */
                const char *t = p + 7 + strlen(name) + 1;
                size_t tl = (size_t)(eol - t);
                assert_true(tl < sizeof(f->type));
                memcpy(f->type, t, tl);
                assert_true(strcmp(f->type, "counter") == 0 || strcmp(f->type, "gauge") == 0 ||
                            strcmp(f->type, "histogram") == 0);
            }
            p = eol + 1;
            continue;
        }
        if (e->ns == e->cap) {
            e->cap = e->cap ? e->cap * 2 : 256;
            e->s = realloc(e->s, (size_t)e->cap * sizeof(*e->s));
            assert_non_null(e->s);
        }
        struct sample_line *s = &e->s[e->ns++];
        memset(s, 0, sizeof(*s));
        p = parse_name(p, s->name, sizeof(s->name));
        /* Samples of one family are contiguous: they follow its TYPE. */
        assert_non_null(current);
        assert_ptr_equal(owner(e, s->name), current);
        if (*p == '{') {
            p++;
            while (*p != '}') {
                assert_true(s->nlabels < 8);
                p = parse_name(p, s->labels[s->nlabels][0], 256);
                assert_int_equal(*p++, '=');
                assert_int_equal(*p++, '"');
                char *v = s->labels[s->nlabels][1];
                size_t k = 0;
                while (*p != '"') {
                    assert_true(*p && *p != '\n' && k < 255);
                    if (*p == '\\') {
                        p++;
                        assert_true(*p == '\\' || *p == '"' || *p == 'n');
                        v[k++] = *p == 'n' ? '\n' : *p;
                        p++;
                    } else {
                        v[k++] = *p++;
                    }
                }
                v[k] = '\0';
                p++;
                s->nlabels++;
                if (*p == ',')
                    p++;
                else
                    assert_int_equal(*p, '}');
            }
            p++;
        }
        assert_int_equal(*p++, ' ');
        char *end = NULL;
        if (strncmp(p, "+Inf", 4) == 0) {
            s->value = INFINITY;
            end = (char *)p + 4;
        } else {
            s->value = strtod(p, &end);
        }
        assert_ptr_equal(end, eol);
        p = eol + 1;
    }
}

static const char *label(const struct sample_line *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i][0], name) == 0)
            return s->labels[i][1];
    return NULL;
}

/* Value of the sample `name` whose labels include the given pairs. */
static double value_of(const struct exposition *e, const char *name, const char *l1, const char *v1,
                       const char *l2, const char *v2)
{
    int found = 0;
    double v = -1;
    for (int i = 0; i < e->ns; i++) {
        const struct sample_line *s = &e->s[i];
        if (strcmp(s->name, name) != 0)
            continue;
        if (l1 && (!label(s, l1) || strcmp(label(s, l1), v1) != 0))
            continue;
        if (l2 && (!label(s, l2) || strcmp(label(s, l2), v2) != 0))
            continue;
        found++;
        v = s->value;
    }
    if (found != 1)
        fail_msg("%d samples %s{%s=%s,%s=%s}", found, name, l1 ? l1 : "", v1 ? v1 : "",
                 l2 ? l2 : "", v2 ? v2 : "");
    return v;
}

/* Histogram rules: buckets non-decreasing in le and in value, +Inf last and
 * equal to _count. */
static void check_histogram(const struct exposition *e, const char *route)
{
    double prev_le = -1, prev = 0, inf = -1;
    int nb = 0;
    for (int i = 0; i < e->ns; i++) {
        const struct sample_line *s = &e->s[i];
        if (strcmp(s->name, "portico_request_duration_seconds_bucket") != 0 ||
            strcmp(label(s, "route"), route) != 0)
            continue;
        const char *le = label(s, "le");
        assert_non_null(le);
        double lev = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
        assert_true(lev > prev_le);
        assert_true(s->value >= prev);
        prev_le = lev;
        prev = s->value;
        if (isinf(lev))
            inf = s->value;
        nb++;
    }
    assert_int_equal(nb, PT_METRICS_NBUCKETS);
    assert_true(isinf(prev_le));
    assert_true(inf ==
                value_of(e, "portico_request_duration_seconds_count", "route", route, NULL, NULL));
}

static void test_metrics_prometheus__parses_back_with_the_counters(void **state)
{
    (void)state;
    const char *odd = "we\"ird\\na\nme";
    struct pt_route_stats *users = pt_metrics_route_ref("users", 2);
    struct pt_route_stats *weird = pt_metrics_route_ref(odd, 2);
    struct pt_route_stats *none = pt_metrics_route_ref(PT_METRICS_NO_ROUTE, 2);
    for (int i = 0; i < 7; i++)
        sample(users, (unsigned)i % 2, 200, 3000000);
    struct pt_metrics_sample bad = {.status = 502,
                                    .upstream_error = true,
                                    .duration_ns = 250000000,
                                    .bytes_in = 11,
                                    .bytes_out = 22};
    pt_metrics_stats_start(users, 1);
    pt_metrics_stats_end(users, 1, true, &bad);
    pt_metrics_stats_start(users, 0); /* still in flight */
    sample(none, 0, 404, 100000);
    sample(weird, 1, 301, 100000);

    struct pt_metrics_instance inst[] = {
        {.service = "web",
         .instance = "",
         .healthy = true,
         .has_breaker = true,
         .circuit_state = 1,
         .circuit_transitions = {0, 2, 1}},
        {.service = "web",
         .instance = "10.0.0.1:80",
         .healthy = true,
         .checks_total = 9,
         .check_failures_total = 3,
         .to_unhealthy_total = 1,
         .to_healthy_total = 1},
        {.service = "web",
         .instance = "10.0.0.2:80",
         .healthy = false,
         .ejected = true,
         .ejections_total = 4,
         .has_breaker = true,
         .circuit_state = 2},
    };
    struct pt_metrics_process proc = {.connections = 5,
                                      .config_version = 42,
                                      .snapshot_generation = 7,
                                      .uptime_seconds = 12.5,
                                      .instances = inst,
                                      .ninstances = 3};
    size_t len = 0;
    char *text = pt_metrics_prometheus(&proc, &len);
    struct exposition e;
    parse_exposition(text, len, &e);

    static const char *const fams[][2] = {
        {"portico_requests_total", "counter"},
        {"portico_upstream_errors_total", "counter"},
        {"portico_route_retries_total", "counter"},
        {"portico_route_retry_budget_exhausted_total", "counter"},
        {"portico_route_per_try_timeouts_total", "counter"},
        {"portico_route_hedges_total", "counter"},
        {"portico_request_duration_seconds", "histogram"},
        {"portico_requests_in_flight", "gauge"},
        {"portico_bytes_received_total", "counter"},
        {"portico_bytes_sent_total", "counter"},
        {"portico_connections", "gauge"},
        {"portico_config_version", "gauge"},
        {"portico_snapshot_generation", "gauge"},
        {"portico_uptime_seconds", "gauge"},
        {"portico_upstream_healthy", "gauge"},
        {"portico_upstream_ejected", "gauge"},
        {"portico_upstream_ejections_total", "counter"},
        {"portico_upstream_health_transitions_total", "counter"},
        {"portico_upstream_health_checks_total", "counter"},
        {"portico_circuit_state", "gauge"},
        {"portico_circuit_transitions_total", "counter"},
        {"portico_ratelimit_decisions_total", "counter"},
        {"portico_auth_decisions_total", "counter"},
    };
    assert_int_equal(e.nfam, 23);
    for (size_t i = 0; i < 23; i++) {
        struct family *f = fam_find(&e, fams[i][0]);
        assert_non_null(f);
        assert_string_equal(f->type, fams[i][1]);
    }

    assert_true(value_of(&e, "portico_requests_total", "route", "users", "code_class", "2xx") == 7);
    assert_true(value_of(&e, "portico_requests_total", "route", "users", "code_class", "5xx") == 1);
    assert_true(value_of(&e, "portico_requests_total", "route", "users", "code_class", "4xx") == 0);
    assert_true(value_of(&e, "portico_requests_total", "route", "(none)", "code_class", "4xx") ==
                1);
    assert_true(value_of(&e, "portico_requests_total", "route", odd, "code_class", "3xx") == 1);
    assert_true(value_of(&e, "portico_upstream_errors_total", "route", "users", NULL, NULL) == 1);
    assert_true(value_of(&e, "portico_upstream_errors_total", "route", "(none)", NULL, NULL) == 0);
    assert_true(value_of(&e, "portico_requests_in_flight", "route", "users", NULL, NULL) == 1);
    assert_true(value_of(&e, "portico_bytes_received_total", "route", "users", NULL, NULL) == 11);
    assert_true(value_of(&e, "portico_bytes_sent_total", "route", "users", NULL, NULL) == 22);
    assert_true(
        value_of(&e, "portico_request_duration_seconds_count", "route", "users", NULL, NULL) == 8);
    assert_float_equal(
        value_of(&e, "portico_request_duration_seconds_sum", "route", "users", NULL, NULL),
        7 * 0.003 + 0.25, 1e-9);
    assert_true(value_of(&e, "portico_request_duration_seconds_bucket", "route", "users", "le",
                         "0.005") == 7);
    assert_true(value_of(&e, "portico_request_duration_seconds_bucket", "route", "users", "le",
                         "0.2") == 7);
    assert_true(value_of(&e, "portico_request_duration_seconds_bucket", "route", "users", "le",
                         "0.5") == 8);
    check_histogram(&e, "users");
    check_histogram(&e, "(none)");
    check_histogram(&e, odd);
    assert_true(value_of(&e, "portico_connections", NULL, NULL, NULL, NULL) == 5);
    assert_true(value_of(&e, "portico_config_version", NULL, NULL, NULL, NULL) == 42);
    assert_true(value_of(&e, "portico_snapshot_generation", NULL, NULL, NULL, NULL) == 7);
    assert_float_equal(value_of(&e, "portico_uptime_seconds", NULL, NULL, NULL, NULL), 12.5, 1e-9);
    /* Upstream instances: health by instance; breakers also of the service
     * itself (instance ""). */
    assert_true(
        value_of(&e, "portico_upstream_healthy", "service", "web", "instance", "10.0.0.1:80") == 1);
    assert_true(
        value_of(&e, "portico_upstream_healthy", "service", "web", "instance", "10.0.0.2:80") == 0);
    assert_true(
        value_of(&e, "portico_upstream_ejected", "service", "web", "instance", "10.0.0.2:80") == 1);
    assert_true(value_of(&e, "portico_upstream_ejections_total", "service", "web", "instance",
                         "10.0.0.2:80") == 4);
    assert_true(value_of(&e, "portico_circuit_state", "service", "web", "instance", "") == 1);
    assert_true(
        value_of(&e, "portico_circuit_state", "service", "web", "instance", "10.0.0.2:80") == 2);
    assert_null(strstr(text, "portico_upstream_healthy{service=\"web\",instance=\"\"}"));
    assert_null(strstr(text, "portico_circuit_state{service=\"web\",instance=\"10.0.0.1:80\"}"));
    assert_non_null(strstr(text, "portico_circuit_transitions_total{service=\"web\",instance=\"\","
                                 "to=\"open\"} 2\n"));
    assert_non_null(strstr(text, "portico_upstream_health_checks_total{service=\"web\","
                                 "instance=\"10.0.0.1:80\",result=\"ok\"} 6\n"));
    assert_non_null(strstr(text, "portico_upstream_health_transitions_total{service=\"web\","
                                 "instance=\"10.0.0.1:80\",to=\"unhealthy\"} 1\n"));
    /* The raw text has the escaped label. */
    assert_non_null(strstr(text, "route=\"we\\\"ird\\\\na\\nme\""));
    free(e.s);
    free(text);

    pt_metrics_stats_end(users, 0, true, &bad);
    pt_metrics_route_unref(users);
    pt_metrics_route_unref(weird);
    pt_metrics_route_unref(none);
    assert_registry_empty();
}

static void test_metrics_prometheus__rate_limit_decisions_by_rule(void **state)
{
    (void)state;
    struct pt_rl_stats *st = pt_rl_stats_ref("per \"ip\"");
    pt_rl_stats_count(st, PT_RL_ALLOWED);
    pt_rl_stats_count(st, PT_RL_ALLOWED);
    pt_rl_stats_count(st, PT_RL_REJECTED);
    struct pt_metrics_process proc = {0};
    char *text = pt_metrics_prometheus(&proc, NULL);
    assert_non_null(strstr(
        text,
        "portico_ratelimit_decisions_total{rule=\"per \\\"ip\\\"\",decision=\"allowed\"} 2\n"));
    assert_non_null(strstr(
        text,
        "portico_ratelimit_decisions_total{rule=\"per \\\"ip\\\"\",decision=\"rejected\"} 1\n"));
    assert_non_null(strstr(
        text,
        "portico_ratelimit_decisions_total{rule=\"per \\\"ip\\\"\",decision=\"failed_open\"} 0\n"));
    free(text);
    pt_rl_stats_unref(st);
    text = pt_metrics_prometheus(&proc, NULL);
    assert_null(strstr(text, "decision=\"allowed\""));
    free(text);
}

static void test_metrics_prometheus__auth_decisions_by_route_and_method(void **state)
{
    (void)state;
    struct pt_auth_stats *st = pt_auth_stats_ref("api \"v1\"", 1u << 0);
    pt_auth_stats_count(st, 0, PT_AUTH_ALLOWED);
    pt_auth_stats_count(st, 0, PT_AUTH_ALLOWED);
    pt_auth_stats_count(st, 0, PT_AUTH_FORBIDDEN);
    pt_auth_stats_count(st, -1, PT_AUTH_DENIED);
    struct pt_metrics_process proc = {0};
    size_t len = 0;
    char *text = pt_metrics_prometheus(&proc, &len);
    struct exposition e;
    parse_exposition(text, len, &e); /* still valid text with the new family */
    free(e.s);
    static const char *const want[] = {
        "portico_auth_decisions_total{route=\"api \\\"v1\\\"\",method=\"api_key\","
        "decision=\"allowed\"} 2\n",
        "portico_auth_decisions_total{route=\"api \\\"v1\\\"\",method=\"api_key\","
        "decision=\"forbidden\"} 1\n",
        "portico_auth_decisions_total{route=\"api \\\"v1\\\"\",method=\"api_key\","
        "decision=\"denied\"} 0\n",
        "portico_auth_decisions_total{route=\"api \\\"v1\\\"\",method=\"none\","
        "decision=\"denied\"} 1\n",
        "portico_auth_decisions_total{route=\"api \\\"v1\\\"\",method=\"none\","
        "decision=\"anonymous\"} 0\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(text, want[i]))
            fail_msg("missing: %s", want[i]);
    free(text);
    pt_auth_stats_unref(st);
    text = pt_metrics_prometheus(&proc, NULL);
    assert_null(strstr(text, "portico_auth_decisions_total{"));
    free(text);
}

static void test_metrics_prometheus__empty_registry_has_process_gauges(void **state)
{
    (void)state;
    struct pt_metrics_process proc = {0};
    size_t len = 0;
    char *text = pt_metrics_prometheus(&proc, &len);
    struct exposition e;
    parse_exposition(text, len, &e);
    assert_int_equal(e.nfam, 23);
    assert_int_equal(e.ns, 4);
    free(e.s);
    free(text);
}

/* ---- threads and cost ------------------------------------------------------------------ */

struct writer_arg {
    struct pt_route_stats *st;
    unsigned worker;
    int n;
};

static void *writer(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < a->n; i++)
        sample(a->st, a->worker, 200 + (i % 2) * 300, (uint64_t)i * 1000);
    return NULL;
}

static void test_metrics_stats__workers_write_while_admin_reads(void **state)
{
    (void)state;
    enum { W = 4, N = 200000 };
    struct pt_route_stats *st = pt_metrics_route_ref("t", W);
    pthread_t th[W];
    struct writer_arg args[W];
    for (unsigned w = 0; w < W; w++) {
        args[w] = (struct writer_arg){st, w, N};
        assert_int_equal(pthread_create(&th[w], NULL, writer, &args[w]), 0);
    }
    struct pt_route_stats_sum s;
    uint64_t last = 0;
    for (int i = 0; i < 200; i++) {
        assert_true(pt_metrics_route_read("t", &s));
        assert_true(s.requests >= last); /* monotonic as seen by one reader */
        assert_true(s.in_flight <= W);
        last = s.requests;
    }
    for (unsigned w = 0; w < W; w++)
        pthread_join(th[w], NULL);
    assert_true(pt_metrics_route_read("t", &s));
    assert_int_equal(s.requests, (uint64_t)W * N);
    assert_int_equal(s.responses[1], (uint64_t)W * N / 2);
    assert_int_equal(s.responses[4], (uint64_t)W * N / 2);
    assert_int_equal(s.in_flight, 0);
    pt_metrics_route_unref(st);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Prints the cost of start+end; the bound is loose on purpose (sanitizers,
 * a shared machine) and only catches something grossly wrong, like a lock
 * or an allocation per call. */
static void test_metrics_stats__cost_per_request(void **state)
{
    (void)state;
    enum { N = 2000000 };
    struct pt_route_stats *st = pt_metrics_route_ref("cost", 2);
    struct pt_metrics_sample s = {.status = 200, .bytes_in = 10, .bytes_out = 100};
    uint64_t t0 = mono_ns();
    for (int i = 0; i < N; i++) {
        s.duration_ns = (uint64_t)(i & 0xffff) * 4096;
        pt_metrics_stats_start(st, 1);
        pt_metrics_stats_end(st, 1, true, &s);
    }
    double ns = (double)(mono_ns() - t0) / N;
    print_message("metrics: start+end %.1f ns per request\n", ns);
    struct pt_route_stats_sum sum;
    assert_true(pt_metrics_route_read("cost", &sum));
    assert_int_equal(sum.requests, N);
    assert_true(ns < 1000);
    pt_metrics_route_unref(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_route__counters_survive_a_new_snapshot),
        cmocka_unit_test(test_metrics_route__no_workers_means_no_object),
        cmocka_unit_test(test_metrics_route__many_names_list_sorted),
        cmocka_unit_test(test_metrics_stats__classes_errors_bytes_in_flight),
        cmocka_unit_test(test_metrics__upstream_error_codes),
        cmocka_unit_test(test_metrics_histogram__bounds_are_inclusive),
        cmocka_unit_test(test_metrics_quantile__interpolates_inside_a_bucket),
        cmocka_unit_test(test_metrics_quantile__known_distribution),
        cmocka_unit_test(test_metrics_quantile__inf_bucket_reads_as_largest_bound),
        cmocka_unit_test(test_metrics_escape__backslash_quote_newline),
        cmocka_unit_test(test_metrics_prometheus__parses_back_with_the_counters),
        cmocka_unit_test(test_metrics_prometheus__empty_registry_has_process_gauges),
        cmocka_unit_test(test_metrics_prometheus__rate_limit_decisions_by_rule),
        cmocka_unit_test(test_metrics_prometheus__auth_decisions_by_route_and_method),
        cmocka_unit_test(test_metrics_stats__workers_write_while_admin_reads),
        cmocka_unit_test(test_metrics_stats__cost_per_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
