/* Load-balancing algorithms (upstream/lb.c), without sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/lb.h"

static char keybuf[64][32];
static const char *keys[64];

static void make_keys(uint32_t n, uint32_t first_port)
{
    for (uint32_t i = 0; i < n; i++) {
        snprintf(keybuf[i], sizeof(keybuf[i]), "10.0.0.%u:%u", i + 1, first_port + i);
        keys[i] = keybuf[i];
    }
}

static void lb_new(struct pt_lb *lb, struct pt_lb_local *loc, enum pt_lb_algorithm a,
                   const uint32_t *w, uint32_t n, const char *hash_on)
{
    make_keys(n, 8000);
    assert_int_equal(pt_lb_init(lb, a, w, keys, n, hash_on), 0);
    pt_lb_local_init(loc, lb, 0);
}

static void lb_del(struct pt_lb *lb, struct pt_lb_local *loc)
{
    pt_lb_local_fini(loc);
    pt_lb_fini(lb);
}

static void test_wrr_smooth_sequence(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    uint32_t w[] = {5, 1, 1};
    lb_new(&lb, &loc, PT_LB_WEIGHTED_ROUND_ROBIN, w, 3, NULL);
    /* nginx's documented sequence for weights a=5, b=1, c=1. */
    const char *want = "aabacaa";
    for (int cycle = 0; cycle < 3; cycle++) {
        char got[8] = {0};
        for (int k = 0; k < 7; k++)
            got[k] = (char)('a' + pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, 0));
        /* "a a b a c a a" */
        assert_string_equal(got, "aabacaa");
        (void)want;
    }
    lb_del(&lb, &loc);
}

static void test_wrr_shares_and_avoid(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    uint32_t w[] = {3, 2, 1, 0}; /* 0 counts as 1 */
    lb_new(&lb, &loc, PT_LB_WEIGHTED_ROUND_ROBIN, w, 4, NULL);
    unsigned count[4] = {0};
    int run = 0, maxrun = 0, last = -1;
    for (int k = 0; k < 7000; k++) {
        int i = (int)pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, 0);
        count[i]++;
        run = i == last ? run + 1 : 1;
        last = i;
        if (run > maxrun)
            maxrun = run;
    }
    assert_int_equal(count[0], 3000);
    assert_int_equal(count[1], 2000);
    assert_int_equal(count[2], 1000);
    assert_int_equal(count[3], 1000);
    assert_true(maxrun <= 2); /* smooth: no bursts */
    for (int k = 0; k < 100; k++)
        assert_int_not_equal(pt_lb_choose(&lb, &loc, PT_STR_NULL, 0, 0), 0);
    lb_del(&lb, &loc);
}

static void test_rr_and_avoid_single(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    lb_new(&lb, &loc, PT_LB_ROUND_ROBIN, NULL, 3, NULL);
    for (uint32_t k = 0; k < 9; k++)
        assert_int_equal(pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, 0), k % 3);
    for (int k = 0; k < 9; k++)
        assert_int_not_equal(pt_lb_choose(&lb, &loc, PT_STR_NULL, 1, 0), 1);
    lb_del(&lb, &loc);
    lb_new(&lb, &loc, PT_LB_ROUND_ROBIN, NULL, 1, NULL);
    assert_int_equal(pt_lb_choose(&lb, &loc, PT_STR_NULL, 0, 0), 0); /* only one: retry it */
    lb_del(&lb, &loc);
}

static void test_least_connections(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    lb_new(&lb, &loc, PT_LB_LEAST_CONNECTIONS, NULL, 4, NULL);
    /* Equal counts: ties are broken at random, not always the first. */
    unsigned count[4] = {0};
    for (int k = 0; k < 4000; k++)
        count[pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, 0)]++;
    for (int i = 0; i < 4; i++)
        assert_true(count[i] > 800 && count[i] < 1200);
    /* Busy endpoints 0, 1, 3: the idle one wins every time. */
    pt_lb_on_start(&lb, 0);
    pt_lb_on_start(&lb, 1);
    pt_lb_on_start(&lb, 3);
    pt_lb_on_start(&lb, 3);
    for (int k = 0; k < 100; k++)
        assert_int_equal(pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, 0), 2);
    /* Avoiding it (a retry): the next least loaded, 0 or 1, never 3. */
    unsigned seen[4] = {0};
    for (int k = 0; k < 200; k++)
        seen[pt_lb_choose(&lb, &loc, PT_STR_NULL, 2, 0)]++;
    assert_int_equal(seen[2] + seen[3], 0);
    assert_true(seen[0] > 0 && seen[1] > 0);
    /* Simulated traffic keeps counts level. */
    pt_lb_on_end(&lb, 0, PT_LB_DONE, 1000, 0);
    pt_lb_on_end(&lb, 1, PT_LB_DONE, 1000, 0);
    pt_lb_on_end(&lb, 3, PT_LB_DONE, 1000, 0);
    pt_lb_on_end(&lb, 3, PT_LB_ABANDONED, 0, 0);
    for (int k = 0; k < 40; k++)
        pt_lb_on_start(&lb, pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, 0));
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&lb.shared[i].inflight), 10);
    lb_del(&lb, &loc);
    /* Weighted: weight 3 takes three times the in-flight of weight 1. */
    uint32_t w[] = {3, 1};
    lb_new(&lb, &loc, PT_LB_LEAST_CONNECTIONS, w, 2, NULL);
    for (int k = 0; k < 400; k++)
        pt_lb_on_start(&lb, pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, 0));
    unsigned a = atomic_load(&lb.shared[0].inflight), b = atomic_load(&lb.shared[1].inflight);
    assert_true(a >= 298 && a <= 302 && a + b == 400);
    lb_del(&lb, &loc);
}

static uint32_t hash_pick(const struct pt_lb *lb, struct pt_lb_local *loc, unsigned k)
{
    char key[32];
    int n = snprintf(key, sizeof(key), "client-%u", k);
    return pt_lb_choose(lb, loc, (struct pt_str){key, (size_t)n}, -1, 0);
}

#define NKEYS 10000

static void test_maglev_spread_and_stickiness(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    const uint32_t n = 10;
    lb_new(&lb, &loc, PT_LB_HASH, NULL, n, "header:X-User");
    assert_int_equal(lb.key_kind, PT_LB_KEY_HEADER);
    assert_string_equal(lb.key_name, "x-user");
    unsigned count[10] = {0};
    for (unsigned k = 0; k < NKEYS; k++)
        count[hash_pick(&lb, &loc, k)]++;
    /* Chi-square, 9 degrees of freedom: 27.9 is the 0.1% critical value. */
    double chi = 0, e = (double)NKEYS / n;
    for (uint32_t i = 0; i < n; i++)
        chi += (count[i] - e) * (count[i] - e) / e;
    assert_true(chi < 27.9);
    /* The table itself is balanced: each endpoint owns ~1/n of the slots. */
    unsigned slots[10] = {0};
    for (uint32_t c = 0; c < lb.table_size; c++)
        slots[lb.table[c]]++;
    for (uint32_t i = 0; i < n; i++)
        assert_true(slots[i] >= lb.table_size / n - 1 && slots[i] <= lb.table_size / n + 1);
    /* Same key, same endpoint, from any worker state. */
    struct pt_lb_local other;
    pt_lb_local_init(&other, &lb, 7);
    for (unsigned k = 0; k < 100; k++)
        assert_int_equal(hash_pick(&lb, &loc, k), hash_pick(&lb, &other, k));
    /* A retry avoiding the key's endpoint lands elsewhere, consistently. */
    char key[] = "client-1";
    uint32_t first = pt_lb_choose(&lb, &loc, PT_STR("client-1"), -1, 0);
    uint32_t second = pt_lb_choose(&lb, &loc, (struct pt_str){key, 8}, (int)first, 0);
    assert_int_not_equal(first, second);
    assert_int_equal(pt_lb_choose(&lb, &other, PT_STR("client-1"), (int)first, 0), second);
    /* No key: round robin. */
    for (uint32_t k = 0; k < 20; k++)
        assert_int_equal(pt_lb_choose(&lb, &other, PT_STR_NULL, -1, 0), (7 + k) % n);
    pt_lb_local_fini(&other);
    lb_del(&lb, &loc);
}

/* Keys that move when endpoint `drop` leaves a set of n (same keys for the
 * rest, since identity is "host:port", not position). */
static void test_maglev_minimal_disruption(void **state)
{
    (void)state;
    for (uint32_t n = 5; n <= 20; n += 5) {
        struct pt_lb full, less;
        struct pt_lb_local loc;
        make_keys(n, 8000);
        assert_int_equal(pt_lb_init(&full, PT_LB_HASH, NULL, keys, n, "cookie:sid"), 0);
        /* Remove endpoint 2: the others keep their keys (indices shift). */
        const char *rest[64];
        uint32_t map[64];
        for (uint32_t i = 0, j = 0; i < n; i++)
            if (i != 2) {
                rest[j] = keys[i];
                map[j++] = i;
            }
        assert_int_equal(pt_lb_init(&less, PT_LB_HASH, NULL, rest, n - 1, "cookie:sid"), 0);
        pt_lb_local_init(&loc, &full, 0);
        unsigned moved = 0, lost = 0;
        for (unsigned k = 0; k < NKEYS; k++) {
            uint32_t a = hash_pick(&full, &loc, k);
            uint32_t b = map[hash_pick(&less, &loc, k)];
            if (a == 2)
                lost++;
            if (a != b)
                moved++;
        }
        /* About 1/n of the keys move, the removed endpoint's own ones
         * included; adding it back is the same change reversed. */
        double frac = (double)moved / NKEYS;
        printf("maglev n=%u: %.4f of keys remapped (1/n = %.4f)\n", n, frac, 1.0 / n);
        assert_true(frac > 0.5 / n && frac < 1.5 / n);
        assert_true(moved >= lost);
        pt_lb_local_fini(&loc);
        pt_lb_fini(&full);
        pt_lb_fini(&less);
    }
}

static void test_maglev_weighted_and_ip(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    uint32_t w[] = {2, 1, 1};
    lb_new(&lb, &loc, PT_LB_IP_HASH, w, 3, NULL);
    assert_int_equal(lb.key_kind, PT_LB_KEY_IP);
    unsigned count[3] = {0};
    for (unsigned k = 0; k < NKEYS; k++)
        count[hash_pick(&lb, &loc, k)]++;
    assert_true(count[0] > 4500 && count[0] < 5500);
    assert_true(count[1] > 2000 && count[1] < 3000);
    lb_del(&lb, &loc);
    /* Bad hash_on values and hash_on where it does not apply. */
    make_keys(2, 8000);
    assert_int_not_equal(pt_lb_init(&lb, PT_LB_HASH, NULL, keys, 2, NULL), 0);
    assert_int_not_equal(pt_lb_init(&lb, PT_LB_HASH, NULL, keys, 2, "header:"), 0);
    assert_int_not_equal(pt_lb_init(&lb, PT_LB_HASH, NULL, keys, 2, "query:x"), 0);
    assert_int_not_equal(pt_lb_init(&lb, PT_LB_HASH, NULL, keys, 2, "cookie:a b"), 0);
    assert_int_not_equal(pt_lb_init(&lb, PT_LB_IP_HASH, NULL, keys, 2, "header:x"), 0);
    assert_int_not_equal(pt_lb_init(&lb, PT_LB_RANDOM, NULL, keys, 2, "ip"), 0);
    assert_int_equal(pt_lb_init(&lb, PT_LB_HASH, NULL, keys, 2, "ip"), 0);
    pt_lb_fini(&lb);
}

static void test_random(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    lb_new(&lb, &loc, PT_LB_RANDOM, NULL, 4, NULL);
    unsigned count[4] = {0};
    int same = 0, last = -1;
    for (int k = 0; k < 40000; k++) {
        int i = (int)pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, 0);
        count[i]++;
        same += i == last;
        last = i;
    }
    double chi = 0;
    for (int i = 0; i < 4; i++)
        chi += (count[i] - 10000.0) * (count[i] - 10000.0) / 10000.0;
    assert_true(chi < 16.3);                  /* 3 degrees of freedom, 0.1% */
    assert_true(same > 8000 && same < 12000); /* not a cycle */
    for (int k = 0; k < 1000; k++)
        assert_int_not_equal(pt_lb_choose(&lb, &loc, PT_STR_NULL, 3, 0), 3);
    lb_del(&lb, &loc);
}

static void test_peak_ewma(void **state)
{
    (void)state;
    struct pt_lb lb;
    struct pt_lb_local loc;
    lb_new(&lb, &loc, PT_LB_PEAK_EWMA, NULL, 3, NULL);
    const uint64_t ms = 1000000;
    uint64_t lat[3] = {50 * ms, 5 * ms, 20 * ms}; /* endpoint 1 is fastest */
    uint64_t now = 1000 * ms;
    unsigned count[3] = {0};
    for (int k = 0; k < 3000; k++) {
        uint32_t i = pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, now);
        pt_lb_on_start(&lb, i);
        count[i]++;
        now += ms;
        pt_lb_on_end(&lb, i, PT_LB_DONE, lat[i], now);
    }
    printf("ewma picks: %u %u %u\n", count[0], count[1], count[2]);
    /* Two random choices of three: the fastest wins both of its pairs
     * (2/3 of picks), the middle one its pair with the slowest, the
     * slowest none. */
    assert_true(count[1] > 1800 && count[2] > 800 && count[0] < 100);
    /* The fast one slows down (peak: seen at once), another speeds up. */
    lat[1] = 80 * ms;
    lat[0] = 2 * ms;
    unsigned late[3] = {0};
    for (int k = 0; k < 30000; k++) {
        uint32_t i = pt_lb_choose(&lb, &loc, PT_STR_NULL, -1, now);
        pt_lb_on_start(&lb, i);
        if (k >= 27000)
            late[i]++;
        now += ms;
        pt_lb_on_end(&lb, i, PT_LB_DONE, lat[i], now);
    }
    printf("ewma after change: %u %u %u\n", late[0], late[1], late[2]);
    assert_true(late[0] > 1800);
    assert_true(late[1] < 300);
    assert_true(pt_lb_ewma_ns(&lb, 0, now) < 10.0 * ms);
    /* A failure counts as a slow sample. */
    pt_lb_on_start(&lb, 0);
    pt_lb_on_end(&lb, 0, PT_LB_FAILED, 1000, now);
    assert_true(pt_lb_ewma_ns(&lb, 0, now) >= (double)PT_LB_FAILURE_PENALTY_NS);
    /* In flight: a busy endpoint costs more; avoid is honoured. */
    for (int k = 0; k < 100; k++)
        assert_int_not_equal(pt_lb_choose(&lb, &loc, PT_STR_NULL, 2, now), 2);
    lb_del(&lb, &loc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrr_smooth_sequence),
        cmocka_unit_test(test_wrr_shares_and_avoid),
        cmocka_unit_test(test_rr_and_avoid_single),
        cmocka_unit_test(test_least_connections),
        cmocka_unit_test(test_maglev_spread_and_stickiness),
        cmocka_unit_test(test_maglev_minimal_disruption),
        cmocka_unit_test(test_maglev_weighted_and_ip),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_peak_ewma),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
