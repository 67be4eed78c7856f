/*
 * Tests for ratelimit/algo with a fake clock (no sleeping):
 *  - known answers worked out by hand for each algorithm;
 *  - the token bucket and GCRA admit exactly the same requests over long
 *    random traces (two formulations of one rule);
 *  - the sliding-window counter agrees, request by request, with a reference
 *    that keeps the log of admitted requests and recounts the windows;
 *  - retry_ns is exact (one ns earlier fails, at retry_ns it passes),
 *    remaining is exact (that many pass at the same instant, one more
 *    fails), reset_ns brings the quota back whole;
 *  - refund undoes a charge; take(k) equals k single decisions;
 *  - bounds: at most C at once, and never more than limit per fixed
 *    window for the counter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "portico/errors.h"
#include "ratelimit/algo.h"

#define MS 1000000ull
#define SEC 1000000000ull

static struct pt_rl_params params(enum pt_rl_algorithm a, uint64_t limit, uint64_t burst,
                                  uint64_t window_ns)
{
    return (struct pt_rl_params){a, limit, burst, window_ns};
}

static bool decide(const struct pt_rl_params *p, struct pt_rl_state *s, uint64_t now)
{
    struct pt_rl_decision d;
    pt_rl_decide(p, s, now, 1, &d);
    return d.allowed;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* --- known answers ---------------------------------------------------- */

static void test_algo__token_bucket_known_answers(void **st)
{
    (void)st;
    /* 10 per second, burst 5: 15 at once, then one every 100 ms. */
    struct pt_rl_params p = params(PT_RL_TOKEN_BUCKET, 10, 5, SEC);
    struct pt_rl_state s = {0};
    struct pt_rl_decision d;
    uint64_t t = 1000 * SEC;
    for (int i = 0; i < 15; i++) {
        pt_rl_decide(&p, &s, t, 1, &d);
        assert_true(d.allowed);
        assert_int_equal(d.remaining, 14 - i);
    }
    pt_rl_decide(&p, &s, t, 1, &d);
    assert_false(d.allowed);
    assert_int_equal(d.retry_ns, 100 * MS);
    assert_int_equal(d.reset_ns, 1500 * MS);
    assert_false(decide(&p, &s, t + 100 * MS - 1));
    assert_true(decide(&p, &s, t + 100 * MS));
    assert_false(decide(&p, &s, t + 100 * MS));
    /* A long pause fills it to 15, not more. */
    for (int i = 0; i < 15; i++)
        assert_true(decide(&p, &s, t + 3600 * SEC));
    assert_false(decide(&p, &s, t + 3600 * SEC));
}

static void test_algo__gcra_known_answers(void **st)
{
    (void)st;
    /* 3 per 10 s (T = 3.333 s, not an integer), burst 0: 3 at once, then
     * one each T, with the fraction carried exactly. */
    struct pt_rl_params p = params(PT_RL_GCRA, 3, 0, 10 * SEC);
    struct pt_rl_state s = {0};
    struct pt_rl_decision d;
    uint64_t t = 50 * SEC;
    for (int i = 0; i < 3; i++)
        assert_true(decide(&p, &s, t));
    pt_rl_decide(&p, &s, t, 1, &d);
    assert_false(d.allowed);
    assert_int_equal(d.retry_ns, 3333333334ull); /* ceil(10/3 s) */
    assert_int_equal(d.remaining, 0);
    assert_int_equal(d.reset_ns, 10 * SEC);
    assert_false(decide(&p, &s, t + 3333333333ull));
    assert_true(decide(&p, &s, t + 3333333334ull));
    /* Three intervals after the start, exactly 10 s: the third token. */
    assert_true(decide(&p, &s, t + 6666666667ull));
    assert_false(decide(&p, &s, t + 9999999999ull));
    assert_true(decide(&p, &s, t + 10 * SEC));
}

static void test_algo__sliding_window_known_answers(void **st)
{
    (void)st;
    /* 10 per 1 s window. */
    struct pt_rl_params p = params(PT_RL_SLIDING_WINDOW, 10, 0, SEC);
    struct pt_rl_state s = {0};
    struct pt_rl_decision d;
    uint64_t w = 7 * SEC; /* a window boundary */
    for (int i = 0; i < 10; i++)
        assert_true(decide(&p, &s, w + 900 * MS));
    pt_rl_decide(&p, &s, w + 900 * MS, 1, &d);
    assert_false(d.allowed);
    assert_int_equal(d.reset_ns, 100 * MS);
    /* Next window at 25%: prev 10 weighs 7.5, so 2 more pass, not 3. */
    assert_true(decide(&p, &s, w + SEC + 250 * MS));
    assert_true(decide(&p, &s, w + SEC + 250 * MS));
    pt_rl_decide(&p, &s, w + SEC + 250 * MS, 1, &d);
    assert_false(d.allowed);
    /* 10 x (1 - e) + 2 + 1 <= 10  <=>  e >= 0.3 s. */
    assert_int_equal(d.retry_ns, 50 * MS);
    assert_false(decide(&p, &s, w + SEC + 300 * MS - 1));
    assert_true(decide(&p, &s, w + SEC + 300 * MS));
    /* Two windows later everything is forgotten. */
    for (int i = 0; i < 10; i++)
        assert_true(decide(&p, &s, w + 3 * SEC));
    assert_false(decide(&p, &s, w + 3 * SEC));
}

/* --- token bucket == GCRA --------------------------------------------- */

static void test_algo__token_bucket_equals_gcra(void **st)
{
    (void)st;
    static const uint64_t limits[] = {1, 3, 7, 100, 1000};
    static const uint64_t bursts[] = {0, 1, 5};
    static const uint64_t windows[] = {SEC, 10 * SEC, 3 * SEC + 1, 86400 * SEC};
    for (size_t li = 0; li < sizeof(limits) / sizeof(limits[0]); li++)
        for (size_t bi = 0; bi < sizeof(bursts) / sizeof(bursts[0]); bi++)
            for (size_t wi = 0; wi < sizeof(windows) / sizeof(windows[0]); wi++) {
                struct pt_rl_params tb =
                    params(PT_RL_TOKEN_BUCKET, limits[li], bursts[bi], windows[wi]);
                struct pt_rl_params g = params(PT_RL_GCRA, limits[li], bursts[bi], windows[wi]);
                struct pt_rl_state a = {0}, b = {0};
                uint64_t t = 12345 * SEC;
                uint64_t step = windows[wi] / limits[li];
                for (int i = 0; i < 3000; i++) {
                    /* Mostly faster than the rate, sometimes idle. */
                    t += rnd() % 8 == 0 ? rnd() % (4 * step + 1) : rnd() % (step / 2 + 1);
                    uint64_t n = rnd() % 10 == 0 ? 2 : 1;
                    struct pt_rl_decision da, db;
                    pt_rl_decide(&tb, &a, t, n, &da);
                    pt_rl_decide(&g, &b, t, n, &db);
                    assert_int_equal(da.allowed, db.allowed);
                    assert_int_equal(da.remaining, db.remaining);
                    assert_int_equal(da.reset_ns, db.reset_ns);
                    assert_int_equal(da.retry_ns, db.retry_ns);
                }
            }
}

/* The same with what the local table and Redis really see: a clock that
 * sometimes steps back a little (threads read it before queueing for a
 * lock), refunds and batch takes mixed in. */
static void test_algo__token_bucket_equals_gcra_with_backward_steps(void **st)
{
    (void)st;
    static const uint64_t limits[] = {1, 3, 10};
    static const uint64_t bursts[] = {0, 4};
    for (size_t li = 0; li < 3; li++)
        for (size_t bi = 0; bi < 2; bi++) {
            struct pt_rl_params tb = params(PT_RL_TOKEN_BUCKET, limits[li], bursts[bi], 7919 * MS);
            struct pt_rl_params g = params(PT_RL_GCRA, limits[li], bursts[bi], 7919 * MS);
            struct pt_rl_state a = {0}, b = {0};
            uint64_t t = 1000 * SEC, step = tb.window_ns / tb.limit;
            uint64_t charged[64];
            size_t ncharged = 0;
            for (int i = 0; i < 5000; i++) {
                uint64_t r = rnd() % 10;
                if (r == 0 && t > 50 * MS)
                    t -= rnd() % (50 * MS); /* a step back */
                else
                    t += rnd() % (step / 2 + 1);
                if (r == 1 && ncharged) {
                    uint64_t at = charged[rnd() % ncharged];
                    pt_rl_refund(&tb, &a, at, 1);
                    pt_rl_refund(&g, &b, at, 1);
                    continue;
                }
                if (r == 2) {
                    uint64_t want = 1 + rnd() % 5;
                    assert_int_equal(pt_rl_take(&tb, &a, t, want), pt_rl_take(&g, &b, t, want));
                    continue;
                }
                struct pt_rl_decision da, db;
                pt_rl_decide(&tb, &a, t, 1, &da);
                pt_rl_decide(&g, &b, t, 1, &db);
                assert_int_equal(da.allowed, db.allowed);
                assert_int_equal(da.remaining, db.remaining);
                assert_int_equal(da.reset_ns, db.reset_ns);
                assert_int_equal(da.retry_ns, db.retry_ns);
                if (da.allowed && ncharged < 64)
                    charged[ncharged++] = t;
            }
        }
}

/* --- sliding window against a log-based reference ---------------------- */

struct ref_log {
    uint64_t *t;
    size_t n, cap;
};

/* Admitted requests in [from, to). */
static uint64_t ref_count(const struct ref_log *l, uint64_t from, uint64_t to)
{
    uint64_t c = 0;
    for (size_t i = 0; i < l->n; i++)
        c += l->t[i] >= from && l->t[i] < to;
    return c;
}

static bool ref_sliding(struct ref_log *l, uint64_t limit, uint64_t w, uint64_t now)
{
    uint64_t start = now / w * w;
    uint64_t prev = start >= w ? ref_count(l, start - w, start) : 0;
    uint64_t curr = ref_count(l, start, start + w);
    /* prev x (w - e) / w + curr + 1 <= limit, multiplied out by w. */
    unsigned __int128 lhs =
        (unsigned __int128)prev * (w - (now - start)) + (unsigned __int128)(curr + 1) * w;
    bool ok = lhs <= (unsigned __int128)limit * w;
    if (ok) {
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 256;
            l->t = realloc(l->t, l->cap * sizeof(*l->t));
            assert_non_null(l->t);
        }
        l->t[l->n++] = now;
    }
    return ok;
}

static void test_algo__sliding_window_matches_log_reference(void **st)
{
    (void)st;
    static const uint64_t limits[] = {1, 5, 50};
    static const uint64_t windows[] = {SEC, 7 * SEC + 3};
    for (size_t li = 0; li < 3; li++)
        for (size_t wi = 0; wi < 2; wi++) {
            uint64_t limit = limits[li], w = windows[wi];
            struct pt_rl_params p = params(PT_RL_SLIDING_WINDOW, limit, 0, w);
            struct pt_rl_state s = {0};
            struct ref_log log = {0};
            uint64_t t = 1000 * SEC + rnd() % w;
            uint64_t in_window = 0, window = t / w;
            for (int i = 0; i < 2000; i++) {
                t += rnd() % 16 == 0 ? rnd() % (3 * w) : rnd() % (w / limit / 2 + 1);
                bool got = decide(&p, &s, t);
                assert_int_equal(got, ref_sliding(&log, limit, w, t));
                if (t / w != window) {
                    window = t / w;
                    in_window = 0;
                }
                in_window += got;
                assert_true(in_window <= limit);
            }
            free(log.t);
        }
}

/* --- retry, remaining and reset are exact ------------------------------ */

static void check_results(enum pt_rl_algorithm a)
{
    struct pt_rl_params p = params(a, 7, a == PT_RL_SLIDING_WINDOW ? 0 : 2, 3 * SEC + 7);
    struct pt_rl_state s = {0};
    uint64_t t = 999 * SEC;
    for (int i = 0; i < 4000; i++) {
        t += rnd() % 5 == 0 ? rnd() % (2 * SEC) : rnd() % (200 * MS);
        struct pt_rl_decision d;
        pt_rl_decide(&p, &s, t, 1, &d);
        if (!d.allowed) {
            assert_true(d.retry_ns > 0 && d.retry_ns < 10 * SEC);
            struct pt_rl_state c = s;
            assert_false(decide(&p, &c, t + d.retry_ns - 1));
            c = s;
            assert_true(decide(&p, &c, t + d.retry_ns));
        } else {
            assert_int_equal(d.retry_ns, 0);
        }
        /* Exactly `remaining` more pass at the same instant. */
        struct pt_rl_state c = s;
        for (uint64_t k = 0; k < d.remaining; k++)
            assert_true(decide(&p, &c, t));
        assert_false(decide(&p, &c, t));
        /* After reset_ns the whole quota is back (no request meanwhile).
         * The counter is whole only once its previous window has passed
         * too, so it is checked for a bound instead. */
        c = s;
        if (a != PT_RL_SLIDING_WINDOW) {
            struct pt_rl_decision r;
            pt_rl_decide(&p, &c, t + d.reset_ns, 1, &r);
            assert_true(r.allowed);
            assert_int_equal(r.remaining, p.limit + p.burst - 1);
        } else {
            assert_true(d.reset_ns <= p.window_ns);
        }
    }
}

static void test_algo__retry_remaining_reset_exact(void **st)
{
    (void)st;
    check_results(PT_RL_TOKEN_BUCKET);
    check_results(PT_RL_GCRA);
    check_results(PT_RL_SLIDING_WINDOW);
}

/* --- refund and take --------------------------------------------------- */

static void test_algo__refund_undoes_a_charge(void **st)
{
    (void)st;
    for (int a = 0; a < 3; a++) {
        struct pt_rl_params p = params((enum pt_rl_algorithm)a, 5, 0, SEC);
        struct pt_rl_state s = {0};
        uint64_t t = 77 * SEC + 10 * MS;
        for (int i = 0; i < 4; i++)
            assert_true(decide(&p, &s, t));
        /* The 5th is charged then given back: 1 still passes, then none. */
        assert_true(decide(&p, &s, t));
        pt_rl_refund(&p, &s, t, 1);
        assert_true(decide(&p, &s, t));
        assert_false(decide(&p, &s, t));
        /* Refunding a full quota does not raise it above full. */
        struct pt_rl_state f = {0};
        assert_true(decide(&p, &f, t));
        pt_rl_refund(&p, &f, t, 3);
        for (int i = 0; i < 5; i++)
            assert_true(decide(&p, &f, t));
        assert_false(decide(&p, &f, t));
    }
    /* The counter: a charge in a window that has ended is not refunded. */
    struct pt_rl_params p = params(PT_RL_SLIDING_WINDOW, 5, 0, SEC);
    struct pt_rl_state s = {0};
    assert_true(decide(&p, &s, 10 * SEC));
    assert_true(decide(&p, &s, 11 * SEC));
    pt_rl_refund(&p, &s, 10 * SEC, 1);
    assert_int_equal(s.curr, 1);
}

static void test_algo__take_equals_single_decisions(void **st)
{
    (void)st;
    for (int a = 0; a < 3; a++) {
        struct pt_rl_params p = params((enum pt_rl_algorithm)a, 100, 20, 10 * SEC);
        struct pt_rl_state x = {0}, y = {0};
        uint64_t t = 5 * SEC;
        for (int i = 0; i < 300; i++) {
            t += rnd() % (300 * MS);
            uint64_t want = 1 + rnd() % 40;
            uint64_t got = pt_rl_take(&p, &x, t, want);
            uint64_t one = 0;
            while (one < want && decide(&p, &y, t))
                one++;
            assert_int_equal(got, one);
        }
    }
}

/* --- bounds and parameters ---------------------------------------------- */

static void test_algo__concurrent_burst_allows_capacity(void **st)
{
    (void)st;
    /* 100 per 10 s: 1,000 requests in the same millisecond, 100 pass. */
    for (int a = 0; a < 3; a++) {
        struct pt_rl_params p = params((enum pt_rl_algorithm)a, 100, 0, 10 * SEC);
        struct pt_rl_state s = {0};
        int allowed = 0;
        for (int i = 0; i < 1000; i++)
            allowed += decide(&p, &s, 3 * SEC + (uint64_t)i * 1000);
        assert_int_equal(allowed, 100);
    }
}

static void test_algo__extremes_do_not_overflow(void **st)
{
    (void)st;
    struct pt_rl_params p =
        params(PT_RL_TOKEN_BUCKET, PT_RL_MAX_LIMIT, PT_RL_MAX_LIMIT, PT_RL_MAX_WINDOW_NS);
    assert_int_equal(pt_rl_params_check(&p), 0);
    for (int a = 0; a < 3; a++) {
        p.algorithm = (enum pt_rl_algorithm)a;
        struct pt_rl_state s = {0};
        struct pt_rl_decision d;
        pt_rl_decide(&p, &s, UINT64_MAX / 2, 1, &d);
        assert_true(d.allowed);
        assert_true(d.remaining >= PT_RL_MAX_LIMIT - 1);
        /* A cost above the capacity never passes and says so. */
        pt_rl_decide(&p, &s, UINT64_MAX / 2, 3 * PT_RL_MAX_LIMIT, &d);
        assert_false(d.allowed);
        assert_int_equal(d.retry_ns, UINT64_MAX);
    }
    /* The clock going back is taken as no time passing. */
    struct pt_rl_params q = params(PT_RL_SLIDING_WINDOW, 2, 0, SEC);
    struct pt_rl_state s = {0};
    assert_true(decide(&q, &s, 10 * SEC + 500 * MS));
    assert_true(decide(&q, &s, 9 * SEC));
    assert_false(decide(&q, &s, 9 * SEC));
    struct pt_rl_params bad[] = {
        params(PT_RL_GCRA, 0, 0, SEC),
        params(PT_RL_GCRA, PT_RL_MAX_LIMIT + 1, 0, SEC),
        params(PT_RL_GCRA, 1, PT_RL_MAX_LIMIT + 1, SEC),
        params(PT_RL_GCRA, 1, 0, 0),
        params(PT_RL_GCRA, 1, 0, PT_RL_MAX_WINDOW_NS + 1),
        params((enum pt_rl_algorithm)9, 1, 0, SEC),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pt_rl_params_check(&bad[i]), PT_ERR_INVALID);
    assert_string_equal(pt_rl_algorithm_name(PT_RL_GCRA), "gcra");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_algo__token_bucket_known_answers),
        cmocka_unit_test(test_algo__gcra_known_answers),
        cmocka_unit_test(test_algo__sliding_window_known_answers),
        cmocka_unit_test(test_algo__token_bucket_equals_gcra),
        cmocka_unit_test(test_algo__token_bucket_equals_gcra_with_backward_steps),
        cmocka_unit_test(test_algo__sliding_window_matches_log_reference),
        cmocka_unit_test(test_algo__retry_remaining_reset_exact),
        cmocka_unit_test(test_algo__refund_undoes_a_charge),
        cmocka_unit_test(test_algo__take_equals_single_decisions),
        cmocka_unit_test(test_algo__concurrent_burst_allows_capacity),
        cmocka_unit_test(test_algo__extremes_do_not_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
