/* Instance health (upstream/health.c) with a fake clock, and balancers
 * skipping unusable instances (pt_lb_choose_usable). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/health.h"
#include "upstream/lb.h"
#include "upstream/service.h"

#define MS 1000000ull

/* --- active checks -------------------------------------------------------- */

static void test_active_thresholds(void **state)
{
    (void)state;
    struct pt_health_check_conf c;
    pt_health_check_conf_defaults(&c); /* healthy 2, unhealthy 3 */
    assert_int_equal(c.interval_ms, 5000);
    assert_int_equal(c.timeout_ms, 1000);
    struct pt_health *h = pt_health_new("svc/a:1");
    /* Starts healthy. */
    assert_true(pt_health_usable(h, 0));
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_FAILED), 0);
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_TIMEOUT), 0);
    /* A success in between starts the count again. */
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_OK), 0);
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_FAILED), 0);
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_CONNECT), 0);
    assert_true(pt_health_usable(h, 0));
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_FAILED), -1);
    assert_false(pt_health_usable(h, 0));
    /* Further failures change nothing; one success is not enough. */
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_FAILED), 0);
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_OK), 0);
    assert_false(pt_health_usable(h, 0));
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_OK), 1);
    assert_true(pt_health_usable(h, 0));
    struct pt_health_info info;
    pt_health_read(h, 0, &info);
    assert_true(info.healthy);
    assert_int_equal(info.to_unhealthy_total, 1);
    assert_int_equal(info.to_healthy_total, 1);
    assert_int_equal(info.checks_total, 9);
    assert_int_equal(info.check_failures_total, 6);
    assert_int_equal(info.last, PT_HEALTH_LAST_OK);
    /* A removed check forgets the verdict. */
    c.unhealthy_threshold = 1;
    assert_int_equal(pt_health_check_result(h, &c, PT_HEALTH_LAST_FAILED), -1);
    pt_health_check_reset(h);
    assert_true(pt_health_usable(h, 0));
    pt_health_unref(h);
}

static void test_expected_statuses(void **state)
{
    (void)state;
    struct pt_health_check_conf c;
    pt_health_check_conf_defaults(&c);
    /* Default 200-399. */
    assert_true(pt_health_status_ok(&c, 200));
    assert_true(pt_health_status_ok(&c, 302));
    assert_false(pt_health_status_ok(&c, 404));
    assert_false(pt_health_status_ok(&c, 199));
    assert_int_equal(pt_health_status_add(&c, "200-299"), 0);
    assert_int_equal(pt_health_status_add(&c, "418"), 0);
    assert_true(pt_health_status_ok(&c, 204));
    assert_true(pt_health_status_ok(&c, 418));
    assert_false(pt_health_status_ok(&c, 302));
    assert_int_not_equal(pt_health_status_add(&c, "299-200"), 0);
    assert_int_not_equal(pt_health_status_add(&c, "99"), 0);
    assert_int_not_equal(pt_health_status_add(&c, "600"), 0);
    assert_int_not_equal(pt_health_status_add(&c, "2xx"), 0);
    assert_int_not_equal(pt_health_status_add(&c, "200-"), 0);
    assert_int_not_equal(pt_health_status_add(&c, ""), 0);
}

/* --- outlier detection ---------------------------------------------------- */

static void fail_n(struct pt_health *h, const struct pt_outlier_conf *c, int n, uint64_t now,
                   struct pt_health **peers, uint32_t np, int *ejected)
{
    for (int i = 0; i < n; i++)
        *ejected += pt_health_outcome(h, c, true, now, peers, np);
}

static void test_ejection_growth_and_return(void **state)
{
    (void)state;
    struct pt_outlier_conf c;
    pt_outlier_conf_defaults(&c);
    assert_int_equal(c.consecutive, 5);
    c.consecutive = 3;
    c.base_ms = 1000;
    c.max_ms = 2500;
    c.max_percent = 100;
    struct pt_health *p[2] = {pt_health_new("s/a:1"), pt_health_new("s/b:1")};
    struct pt_health *h = p[0];
    int ej = 0;
    uint64_t t = 1000 * MS;
    /* Two failures, a success: no ejection; three in a row: ejected. */
    fail_n(h, &c, 2, t, p, 2, &ej);
    assert_false(pt_health_outcome(h, &c, false, t, p, 2));
    fail_n(h, &c, 2, t, p, 2, &ej);
    assert_int_equal(ej, 0);
    fail_n(h, &c, 1, t, p, 2, &ej);
    assert_int_equal(ej, 1);
    assert_false(pt_health_usable(h, t));
    assert_false(pt_health_usable(h, t + 999 * MS));
    /* Back after base x 1. */
    assert_true(pt_health_usable(h, t + 1000 * MS));
    /* Ejected again at once: base x 2. */
    t += 1000 * MS;
    fail_n(h, &c, 3, t, p, 2, &ej);
    assert_int_equal(ej, 2);
    assert_false(pt_health_usable(h, t + 1999 * MS));
    assert_true(pt_health_usable(h, t + 2000 * MS));
    /* Third: base x 3 = 3000, capped at max 2500. */
    t += 2000 * MS;
    fail_n(h, &c, 3, t, p, 2, &ej);
    assert_int_equal(ej, 3);
    assert_false(pt_health_usable(h, t + 2499 * MS));
    assert_true(pt_health_usable(h, t + 2500 * MS));
    struct pt_health_info info;
    pt_health_read(h, t, &info);
    assert_true(info.ejected);
    assert_int_equal(info.ejections, 3);
    assert_int_equal(info.ejections_total, 3);
    /* Failures while ejected (late outcomes) do not extend it. */
    fail_n(h, &c, 6, t + 10 * MS, p, 2, &ej);
    assert_int_equal(ej, 3);
    /* max_ejection_time without an ejection: k starts again at 1. */
    t += 2500 * MS + 2500 * MS;
    fail_n(h, &c, 3, t, p, 2, &ej);
    assert_int_equal(ej, 4);
    assert_true(pt_health_usable(h, t + 1000 * MS));
    pt_health_read(h, t, &info);
    assert_int_equal(info.ejections, 1);
    pt_health_unref(p[0]);
    pt_health_unref(p[1]);
}

static void test_max_ejection_percent(void **state)
{
    (void)state;
    /* floor(n x pct / 100), at least 1 when n > 1. */
    assert_int_equal(pt_health_max_ejected(1, 50), 0);
    assert_int_equal(pt_health_max_ejected(1, 100), 1);
    assert_int_equal(pt_health_max_ejected(2, 50), 1);
    assert_int_equal(pt_health_max_ejected(3, 50), 1);
    assert_int_equal(pt_health_max_ejected(4, 50), 2);
    assert_int_equal(pt_health_max_ejected(3, 10), 1);
    assert_int_equal(pt_health_max_ejected(10, 10), 1);
    assert_int_equal(pt_health_max_ejected(10, 35), 3);

    struct pt_outlier_conf c = {
        .consecutive = 1, .base_ms = 1000, .max_ms = 5000, .max_percent = 50};
    struct pt_health *p[4];
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof(key), "s/%d:1", i);
        p[i] = pt_health_new(key);
    }
    uint64_t t = 5000 * MS;
    assert_true(pt_health_outcome(p[0], &c, true, t, p, 4));
    assert_true(pt_health_outcome(p[1], &c, true, t, p, 4));
    /* Two of four ejected: the third is not. */
    assert_false(pt_health_outcome(p[2], &c, true, t, p, 4));
    assert_true(pt_health_usable(p[2], t));
    /* Once one returns, another may go. */
    assert_true(pt_health_outcome(p[2], &c, true, t + 1000 * MS, p, 4));
    /* A lone instance (pct 50): never ejected. */
    struct pt_health *one[1] = {p[3]};
    assert_false(pt_health_outcome(p[3], &c, true, t, one, 1));
    for (int i = 0; i < 4; i++)
        pt_health_unref(p[i]);
}

static void test_registry_keeps_state(void **state)
{
    (void)state;
    struct pt_health *a = pt_health_ref("svc/10.0.0.1:80");
    struct pt_health_check_conf c;
    pt_health_check_conf_defaults(&c);
    c.unhealthy_threshold = 1;
    pt_health_check_result(a, &c, PT_HEALTH_LAST_FAILED);
    /* A new snapshot takes its reference before the old one lets go. */
    struct pt_health *b = pt_health_ref("svc/10.0.0.1:80");
    assert_ptr_equal(a, b);
    pt_health_unref(a);
    assert_false(pt_health_usable(b, 0));
    struct pt_health *other = pt_health_ref("svc/10.0.0.2:80");
    assert_ptr_not_equal(other, b);
    assert_true(pt_health_usable(other, 0));
    pt_health_unref(other);
    pt_health_unref(b);
    /* All references gone: a fresh, healthy one. */
    struct pt_health *fresh = pt_health_ref("svc/10.0.0.1:80");
    assert_true(pt_health_usable(fresh, 0));
    pt_health_unref(fresh);
}

/* --- balancers skipping down instances ------------------------------------ */

static char keybuf[16][32];
static const char *keys[16];

static void lb_new(struct pt_lb *lb, struct pt_lb_local *loc, enum pt_lb_algorithm a,
                   const uint32_t *w, uint32_t n, const char *hash_on)
{
    for (uint32_t i = 0; i < n; i++) {
        snprintf(keybuf[i], sizeof(keybuf[i]), "10.0.0.%u:80", i + 1);
        keys[i] = keybuf[i];
    }
    assert_int_equal(pt_lb_init(lb, a, w, keys, n, hash_on), 0);
    pt_lb_local_init(loc, lb, 0);
}

static void lb_del(struct pt_lb *lb, struct pt_lb_local *loc)
{
    pt_lb_local_fini(loc);
    pt_lb_fini(lb);
}

static void count_picks(struct pt_lb *lb, struct pt_lb_local *loc, const bool *down, int avoid,
                        unsigned n, unsigned *count)
{
    for (unsigned k = 0; k < n; k++) {
        uint32_t i = pt_lb_choose_usable(lb, loc, PT_STR_NULL, avoid, 0, down);
        count[i]++;
        if (lb->shared) /* least connections: keep loads level */
            pt_lb_on_start(lb, i);
    }
}

static void test_rr_skips_evenly(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    lb_new(&lb, &loc, PT_LB_ROUND_ROBIN, NULL, 4, NULL);
    bool down[4] = {false, true, false, false};
    unsigned count[4] = {0};
    count_picks(&lb, &loc, down, -1, 300, count);
    /* Not all of 1's share on its neighbour 2: exactly a third each. */
    assert_int_equal(count[1], 0);
    assert_int_equal(count[0], 100);
    assert_int_equal(count[2], 100);
    assert_int_equal(count[3], 100);
    /* With a retry avoiding 2: only 0 and 3. */
    memset(count, 0, sizeof(count));
    count_picks(&lb, &loc, down, 2, 100, count);
    assert_int_equal(count[0] + count[3], 100);
    assert_int_equal(count[0], 50);
    lb_del(&lb, &loc);
}

static void test_wrr_skips_by_weight(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    uint32_t w[] = {3, 1, 1};
    lb_new(&lb, &loc, PT_LB_WEIGHTED_ROUND_ROBIN, w, 3, NULL);
    bool down[3] = {false, false, true};
    unsigned count[3] = {0};
    count_picks(&lb, &loc, down, -1, 400, count);
    assert_int_equal(count[2], 0);
    assert_int_equal(count[0], 300);
    assert_int_equal(count[1], 100);
    /* Back up: its turns again. */
    memset(count, 0, sizeof(count));
    count_picks(&lb, &loc, NULL, -1, 500, count);
    assert_true(count[2] >= 99 && count[2] <= 101);
    lb_del(&lb, &loc);
}

static void test_random_and_lc_skip(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    bool down[4] = {true, false, false, true};
    unsigned count[4] = {0};
    lb_new(&lb, &loc, PT_LB_RANDOM, NULL, 4, NULL);
    count_picks(&lb, &loc, down, -1, 4000, count);
    assert_int_equal(count[0] + count[3], 0);
    assert_true(count[1] > 1800 && count[2] > 1800);
    lb_del(&lb, &loc);

    memset(count, 0, sizeof(count));
    lb_new(&lb, &loc, PT_LB_LEAST_CONNECTIONS, NULL, 4, NULL);
    /* The idle instance 0 is down: never chosen although least loaded. */
    pt_lb_on_start(&lb, 1);
    pt_lb_on_start(&lb, 2);
    count_picks(&lb, &loc, down, -1, 100, count);
    assert_int_equal(count[0] + count[3], 0);
    assert_int_equal(count[1], 50);
    assert_int_equal(count[2], 50);
    lb_del(&lb, &loc);

    memset(count, 0, sizeof(count));
    lb_new(&lb, &loc, PT_LB_PEAK_EWMA, NULL, 4, NULL);
    count_picks(&lb, &loc, down, -1, 200, count);
    assert_int_equal(count[0] + count[3], 0);
    assert_true(count[1] > 0 && count[2] > 0);
    /* One candidate left (2 avoided): always 1. */
    memset(count, 0, sizeof(count));
    count_picks(&lb, &loc, down, 2, 50, count);
    assert_int_equal(count[1], 50);
    lb_del(&lb, &loc);
}

static uint32_t hash_pick(struct pt_lb *lb, struct pt_lb_local *loc, unsigned k, const bool *down)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "client-%u", k);
    return pt_lb_choose_usable(lb, loc, (struct pt_str){key, (size_t)n}, -1, 0, down);
}

#define NKEYS 6000

static void test_hash_spreads_and_returns(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    lb_new(&lb, &loc, PT_LB_HASH, NULL, 4, "header:x-user");
    static uint32_t before[NKEYS];
    for (unsigned k = 0; k < NKEYS; k++)
        before[k] = hash_pick(&lb, &loc, k, NULL);
    bool down[4] = {false, false, true, false};
    unsigned moved_to[4] = {0};
    for (unsigned k = 0; k < NKEYS; k++) {
        uint32_t i = hash_pick(&lb, &loc, k, down);
        assert_int_not_equal(i, 2);
        if (before[k] != 2)
            assert_int_equal(i, before[k]); /* others' keys stay */
        else
            moved_to[i]++;
    }
    /* The down instance's keys spread over all the others. */
    unsigned moved = moved_to[0] + moved_to[1] + moved_to[3];
    assert_true(moved > NKEYS / 8);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            assert_true(moved_to[i] > moved / 6);
    /* And come back when it recovers. */
    for (unsigned k = 0; k < NKEYS; k++)
        assert_int_equal(hash_pick(&lb, &loc, k, NULL), before[k]);
    lb_del(&lb, &loc);
}

static void test_lc_ties_uniform(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    lb_new(&lb, &loc, PT_LB_LEAST_CONNECTIONS, NULL, 5, NULL);
    /* 1 and 3 busy; 0, 2, 4 tie: uniform among the three. */
    pt_lb_on_start(&lb, 1);
    pt_lb_on_start(&lb, 3);
    unsigned count[5] = {0};
    for (int k = 0; k < 3000; k++)
        count[pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, 0)]++;
    assert_int_equal(count[1] + count[3], 0);
    for (int i = 0; i < 5; i += 2)
        assert_true(count[i] > 850 && count[i] < 1150);
    lb_del(&lb, &loc);
}

static void test_service_mask(void **state)
{
    (void)state;
    struct pt_endpoint eps[3];
    memset(eps, 0, sizeof(eps));
    eps[0].health = pt_health_new("s/a");
    eps[2].health = pt_health_new("s/c");
    struct pt_service svc = {.endpoints = eps, .nendpoints = 3, .health_any = true};
    bool down[3];
    assert_int_equal(pt_service_health_mask(&svc, 0, down), 3);
    struct pt_outlier_conf c = {.consecutive = 1, .base_ms = 10, .max_ms = 10, .max_percent = 100};
    struct pt_health *peers[3] = {eps[0].health, NULL, eps[2].health};
    assert_true(pt_health_outcome(eps[2].health, &c, true, 0, peers, 3));
    assert_int_equal(pt_service_health_mask(&svc, 5 * MS, down), 2);
    assert_true(down[2] && !down[0] && !down[1]);
    assert_int_equal(pt_service_health_mask(&svc, 10 * MS, down), 3);
    pt_health_unref(eps[0].health);
    pt_health_unref(eps[2].health);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_active_thresholds),
        cmocka_unit_test(test_expected_statuses),
        cmocka_unit_test(test_ejection_growth_and_return),
        cmocka_unit_test(test_max_ejection_percent),
        cmocka_unit_test(test_registry_keeps_state),
        cmocka_unit_test(test_rr_skips_evenly),
        cmocka_unit_test(test_wrr_skips_by_weight),
        cmocka_unit_test(test_random_and_lc_skip),
        cmocka_unit_test(test_hash_spreads_and_returns),
        cmocka_unit_test(test_lc_ties_uniform),
        cmocka_unit_test(test_service_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
