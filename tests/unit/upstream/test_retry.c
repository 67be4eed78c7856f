/*
 * Tests for upstream/retry: the full-jitter backoff with an injected random
 * number, the budget arithmetic, the registry's keying across "reloads",
 * and concurrent retry admission never exceeding the budget.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/retry.h"

static void test_retry__backoff_cap_doubles_up_to_max(void **state)
{
    (void)state;
    assert_int_equal(pt_retry_backoff_cap_ms(25, 250, 0), 25); /* 0 reads as the first */
    assert_int_equal(pt_retry_backoff_cap_ms(25, 250, 1), 25);
    assert_int_equal(pt_retry_backoff_cap_ms(25, 250, 2), 50);
    assert_int_equal(pt_retry_backoff_cap_ms(25, 250, 3), 100);
    assert_int_equal(pt_retry_backoff_cap_ms(25, 250, 4), 200);
    assert_int_equal(pt_retry_backoff_cap_ms(25, 250, 5), 250);
    assert_int_equal(pt_retry_backoff_cap_ms(25, 250, 6), 250);
    /* No overflow however many retries. */
    assert_int_equal(pt_retry_backoff_cap_ms(60000, 60000, 4000000000u), 60000);
    assert_int_equal(pt_retry_backoff_cap_ms(1, 60000, 200), 60000);
    assert_int_equal(pt_retry_backoff_cap_ms(0, 250, 9), 0);
}

static void test_retry__backoff_is_full_jitter_within_cap(void **state)
{
    (void)state;
    /* The random number decides, anywhere in [0, cap]. */
    assert_int_equal(pt_retry_backoff_ms(25, 250, 1, 0), 0);
    assert_int_equal(pt_retry_backoff_ms(25, 250, 1, 25), 25);
    assert_int_equal(pt_retry_backoff_ms(25, 250, 1, 26), 0);
    assert_int_equal(pt_retry_backoff_ms(25, 250, 2, 37), 37);
    assert_int_equal(pt_retry_backoff_ms(25, 250, 9, UINT64_MAX), UINT64_MAX % 251);
    /* A fake random source walking through many values stays in range and
     * reaches both ends. */
    uint64_t seed = 88172645463325252ull;
    bool lo = false, hi = false;
    for (int i = 0; i < 20000; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        uint64_t d = pt_retry_backoff_ms(10, 1000, 3, seed);
        assert_true(d <= 40);
        lo = lo || d == 0;
        hi = hi || d == 40;
    }
    assert_true(lo && hi);
    /* base 0: no wait at all. */
    assert_int_equal(pt_retry_backoff_ms(0, 250, 3, 12345), 0);
}

static void test_retry__budget_percent_with_minimum(void **state)
{
    (void)state;
    /* Few requests: the minimum concurrency rules. */
    assert_true(pt_retry_budget_allows(0, 0, 20, 3));
    assert_true(pt_retry_budget_allows(1, 2, 20, 3));
    assert_false(pt_retry_budget_allows(1, 3, 20, 3));
    /* 100 requests at 20%: 20 retries. */
    assert_true(pt_retry_budget_allows(100, 19, 20, 3));
    assert_false(pt_retry_budget_allows(100, 20, 20, 3));
    /* Rounding down: 14 requests at 20% is 2.8, the minimum 3 still holds. */
    assert_true(pt_retry_budget_allows(14, 2, 20, 3));
    assert_false(pt_retry_budget_allows(14, 3, 20, 3));
    assert_false(pt_retry_budget_allows(19, 3, 20, 0));
    /* min 0 and percent 0: never. */
    assert_false(pt_retry_budget_allows(1000, 0, 0, 0));
    /* 100%: as many retries as requests. */
    assert_true(pt_retry_budget_allows(50, 49, 100, 0));
    assert_false(pt_retry_budget_allows(50, 50, 100, 0));
}

static void test_retry__registry_keeps_counters_by_name(void **state)
{
    (void)state;
    struct pt_retry_budget *a = pt_retry_budget_ref("svc-a");
    pt_retry_budget_request_start(a);
    /* A "reload": the new snapshot takes its reference before the old one
     * drops its own, and gets the same counters. */
    struct pt_retry_budget *a2 = pt_retry_budget_ref("svc-a");
    assert_ptr_equal(a, a2);
    pt_retry_budget_unref(a);
    struct pt_retry_budget *b = pt_retry_budget_ref("svc-b");
    assert_ptr_not_equal(a2, b);
    uint64_t reqs, rets;
    pt_retry_budget_read(a2, &reqs, &rets);
    assert_int_equal(reqs, 1);
    assert_int_equal(rets, 0);
    /* The request that started before the reload ends on the same object. */
    pt_retry_budget_request_end(a2);
    pt_retry_budget_read(a2, &reqs, &rets);
    assert_int_equal(reqs, 0);

    /* Admission: minimum 2, 50% of 0 requests. */
    assert_true(pt_retry_budget_retry_start(b, 50, 2));
    assert_true(pt_retry_budget_retry_start(b, 50, 2));
    assert_false(pt_retry_budget_retry_start(b, 50, 2));
    for (int i = 0; i < 10; i++)
        pt_retry_budget_request_start(b);
    /* 10 requests at 50%: 5 retries. */
    assert_true(pt_retry_budget_retry_start(b, 50, 2));
    assert_true(pt_retry_budget_retry_start(b, 50, 2));
    assert_true(pt_retry_budget_retry_start(b, 50, 2));
    assert_false(pt_retry_budget_retry_start(b, 50, 2));
    pt_retry_budget_read(b, &reqs, &rets);
    assert_int_equal(rets, 5);
    pt_retry_budget_retry_end(b);
    assert_true(pt_retry_budget_retry_start(b, 50, 2));
    for (int i = 0; i < 5; i++)
        pt_retry_budget_retry_end(b);
    for (int i = 0; i < 10; i++)
        pt_retry_budget_request_end(b);
    pt_retry_budget_unref(b);
    pt_retry_budget_unref(a2);
    /* Gone with its last reference: a new object starts from zero. */
    struct pt_retry_budget *c = pt_retry_budget_ref("svc-b");
    pt_retry_budget_read(c, &reqs, &rets);
    assert_int_equal(reqs, 0);
    assert_int_equal(rets, 0);
    pt_retry_budget_unref(c);
}

#define NTHREADS 4
#define ROUNDS 20000

struct race {
    struct pt_retry_budget *b;
    pthread_barrier_t *go;
    int max_seen;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(r->go);
    for (int i = 0; i < ROUNDS; i++) {
        if (pt_retry_budget_retry_start(r->b, 10, 2)) {
            uint64_t reqs, rets;
            pt_retry_budget_read(r->b, &reqs, &rets);
            if ((int)rets > r->max_seen)
                r->max_seen = (int)rets;
            pt_retry_budget_retry_end(r->b);
        }
    }
    return NULL;
}

static void test_retry__concurrent_admission_stays_within_budget(void **state)
{
    (void)state;
    struct pt_retry_budget *b = pt_retry_budget_ref("svc-race");
    for (int i = 0; i < 30; i++)
        pt_retry_budget_request_start(b); /* 10% of 30 = 3 */
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NTHREADS);
    pthread_t t[NTHREADS];
    struct race r[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        r[i] = (struct race){b, &go, 0};
        pthread_create(&t[i], NULL, racer, &r[i]);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        assert_true(r[i].max_seen <= 3);
    }
    uint64_t reqs, rets;
    pt_retry_budget_read(b, &reqs, &rets);
    assert_int_equal(rets, 0);
    assert_int_equal(reqs, 30);
    for (int i = 0; i < 30; i++)
        pt_retry_budget_request_end(b);
    pthread_barrier_destroy(&go);
    pt_retry_budget_unref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry__backoff_cap_doubles_up_to_max),
        cmocka_unit_test(test_retry__backoff_is_full_jitter_within_cap),
        cmocka_unit_test(test_retry__budget_percent_with_minimum),
        cmocka_unit_test(test_retry__registry_keeps_counters_by_name),
        cmocka_unit_test(test_retry__concurrent_admission_stays_within_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
