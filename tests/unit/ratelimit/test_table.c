/*
 * Tests for ratelimit/table with a fake clock: per-key decisions, refunds,
 * the memory bound (LRU eviction of busy keys, dropping of idle ones),
 * SipHash known answers, and a concurrency smoke test: threads hammering
 * one table never admit more than the limit in total.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit/table.h"

#define SEC 1000000000ull

static struct pt_rl_params tb(uint64_t limit, uint64_t window_ns)
{
    return (struct pt_rl_params){
        .algorithm = PT_RL_TOKEN_BUCKET, .limit = limit, .burst = 0, .window_ns = window_ns};
}

static bool decide(struct pt_rl_table *t, const char *key, uint64_t now)
{
    struct pt_rl_decision d;
    pt_rl_table_decide(t, key, strlen(key), now, 1, &d);
    return d.allowed;
}

static void test_table__siphash_reference_vectors(void **state)
{
    (void)state;
    /* From the SipHash paper's reference implementation: key 00..0f. */
    uint64_t k[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    unsigned char msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    assert_int_equal(pt_rl_siphash(k, msg, 0), 0x726fdb47dd0e0e31ull);
    assert_int_equal(pt_rl_siphash(k, msg, 15), 0xa129ca6149be45e5ull);
}

static void test_table__keys_are_independent_and_refunds_work(void **state)
{
    (void)state;
    struct pt_rl_params p = tb(3, 60 * SEC);
    struct pt_rl_table *t = pt_rl_table_new(&p, 0);
    uint64_t now = 1000 * SEC;
    for (int i = 0; i < 3; i++)
        assert_true(decide(t, "a", now));
    assert_false(decide(t, "a", now));
    assert_true(decide(t, "b", now));
    pt_rl_table_refund(t, "a", 1, now, 1);
    assert_true(decide(t, "a", now));
    assert_false(decide(t, "a", now));
    /* A refund of a key never seen changes nothing and creates nothing. */
    pt_rl_table_refund(t, "zzz", 3, now, 1);
    assert_int_equal(pt_rl_table_count(t), 2);
    /* 20 s later one token is back. */
    assert_true(decide(t, "a", now + 20 * SEC));
    assert_false(decide(t, "a", now + 20 * SEC));
    pt_rl_table_free(t);
}

static void test_table__memory_is_bounded(void **state)
{
    (void)state;
    struct pt_rl_params p = tb(1, 60 * SEC);
    struct pt_rl_table *t = pt_rl_table_new(&p, 128);
    uint64_t now = 1000 * SEC;
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_true(decide(t, key, now));
    }
    assert_true(pt_rl_table_count(t) <= 128);
    /* Every key was busy (its token taken): evictions were lossy. */
    assert_true(pt_rl_table_evictions_busy(t) >= 10000 - 128);
    pt_rl_table_free(t);
}

static void test_table__idle_drop_is_lossless(void **state)
{
    (void)state;
    /* With room for every key, idle ones still go (2 per operation) and
     * nothing busy is ever evicted. */
    struct pt_rl_params p = tb(5, 1 * SEC);
    struct pt_rl_table *t = pt_rl_table_new(&p, 1000000);
    uint64_t now = 1000 * SEC;
    char key[32];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "a%d", i);
        decide(t, key, now);
    }
    assert_int_equal(pt_rl_table_count(t), 500);
    now += 2 * SEC;
    for (int round = 0; round < 200; round++)
        for (int i = 0; i < 64; i++) {
            snprintf(key, sizeof(key), "same%d", i);
            decide(t, key, now);
        }
    assert_true(pt_rl_table_count(t) < 500);
    assert_int_equal(pt_rl_table_evictions_busy(t), 0);
    pt_rl_table_free(t);
}

#define FETCH (50 * 1000000ull)

static enum pt_rl_lease take(struct pt_rl_table *t, uint64_t now, uint64_t *left)
{
    return pt_rl_table_lease_take(t, "k", 1, now, FETCH, left);
}

static void test_table__leases_spend_expire_and_deny(void **state)
{
    (void)state;
    struct pt_rl_params p = tb(100, 10 * SEC);
    struct pt_rl_table *t = pt_rl_table_new(&p, 0);
    uint64_t now = 1000 * SEC, left = 99;
    /* The first miss fetches; others wait for it (one fetch in flight). */
    assert_int_equal(take(t, now, &left), PT_RL_LEASE_MISS);
    assert_int_equal(take(t, now + 1, &left), PT_RL_LEASE_BUSY);
    assert_int_equal(take(t, now + FETCH - 1, &left), PT_RL_LEASE_BUSY);
    pt_rl_table_lease_add(t, "k", 1, now, 3, SEC);
    for (uint64_t i = 3; i-- > 0;) {
        assert_int_equal(take(t, now, &left), PT_RL_LEASE_TOKEN);
        assert_int_equal(left, i);
    }
    assert_int_equal(take(t, now, &left), PT_RL_LEASE_MISS);
    /* A fetch that never completes stops blocking after FETCH. */
    assert_int_equal(take(t, now + FETCH, &left), PT_RL_LEASE_MISS);
    /* Unspent tokens expire with their lease. */
    pt_rl_table_lease_add(t, "k", 1, now, 5, SEC);
    assert_int_equal(take(t, now + SEC, &left), PT_RL_LEASE_MISS);
    /* Expired tokens are not revived by a new lease. */
    pt_rl_table_lease_add(t, "k", 1, now + 2 * SEC, 1, SEC);
    assert_int_equal(take(t, now + 2 * SEC, &left), PT_RL_LEASE_TOKEN);
    assert_int_equal(left, 0);
    /* Denied: for the retry time, capped at the ttl. */
    pt_rl_table_lease_deny(t, "k", 1, now + 3 * SEC, 300 * 1000000ull, SEC);
    assert_int_equal(take(t, now + 3 * SEC + 100 * 1000000ull, &left), PT_RL_LEASE_DENIED);
    assert_int_equal(left, 200 * 1000000ull);
    assert_int_equal(take(t, now + 3 * SEC + 300 * 1000000ull, &left), PT_RL_LEASE_MISS);
    pt_rl_table_lease_deny(t, "k", 1, now + 4 * SEC, 3600 * SEC, SEC);
    assert_int_equal(take(t, now + 5 * SEC - 1, &left), PT_RL_LEASE_DENIED);
    assert_int_equal(take(t, now + 5 * SEC, &left), PT_RL_LEASE_MISS);
    /* A new lease ends the denial. */
    pt_rl_table_lease_deny(t, "k", 1, now + 6 * SEC, SEC / 2, SEC);
    pt_rl_table_lease_add(t, "k", 1, now + 6 * SEC, 1, SEC);
    assert_int_equal(take(t, now + 6 * SEC, &left), PT_RL_LEASE_TOKEN);
    pt_rl_table_free(t);
}

struct worker_arg {
    struct pt_rl_table *t;
    int allowed;
    int id;
};

static void *hammer(void *p)
{
    struct worker_arg *a = p;
    char key[16];
    for (int i = 0; i < 20000; i++) {
        struct pt_rl_decision d;
        /* Half on one hot key, half spread over 100 keys. */
        if (i % 2) {
            pt_rl_table_decide(a->t, "hot", 3, 1000 * SEC, 1, &d);
            a->allowed += d.allowed;
        } else {
            snprintf(key, sizeof(key), "k%d", (i / 2 + a->id) % 100);
            pt_rl_table_decide(a->t, key, strlen(key), 1000 * SEC, 1, &d);
        }
    }
    return NULL;
}

static void test_table__concurrent_total_is_exact(void **state)
{
    (void)state;
    struct pt_rl_params p = tb(1000, 3600 * SEC);
    struct pt_rl_table *t = pt_rl_table_new(&p, 0);
    pthread_t th[4];
    struct worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct worker_arg){.t = t, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += args[i].allowed;
    }
    assert_int_equal(total, 1000);
    assert_int_equal(pt_rl_table_count(t), 101);
    pt_rl_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table__siphash_reference_vectors),
        cmocka_unit_test(test_table__keys_are_independent_and_refunds_work),
        cmocka_unit_test(test_table__memory_is_bounded),
        cmocka_unit_test(test_table__idle_drop_is_lossless),
        cmocka_unit_test(test_table__concurrent_total_is_exact),
        cmocka_unit_test(test_table__leases_spend_expire_and_deny),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
