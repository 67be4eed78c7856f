/*
 * Tests for upstream/breaker: the state machine driven with a fake clock
 * through every transition, failure classification, failure_on parsing,
 * the registry's keys and reload rules, and a thread-safety smoke test.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"
#include "portico/errors.h"
#include "upstream/breaker.h"
#include "upstream/service.h"

#define MS 1000000ull

static struct pt_breaker_conf conf(uint32_t fail, uint32_t window, uint32_t rate)
{
    struct pt_breaker_conf c;
    pt_breaker_conf_defaults(&c);
    c.failure_threshold = fail;
    c.window = window;
    c.failure_rate = rate;
    c.timeout_ms = 1000;
    return c;
}

static enum pt_breaker_state state(struct pt_breaker *b)
{
    struct pt_breaker_info i;
    pt_breaker_read(b, &i);
    return i.state;
}

/* One whole call: admitted (asserted) and recorded at once. */
static void call(struct pt_breaker *b, uint64_t now, enum pt_breaker_outcome o)
{
    struct pt_breaker_ticket t;
    assert_int_not_equal(pt_breaker_allow(b, now, &t), PT_BREAKER_REJECT);
    pt_breaker_record(b, now, &t, o);
}

static struct pt_breaker *opened(uint64_t now)
{
    struct pt_breaker_conf c = conf(3, 100, 100);
    struct pt_breaker *b = pt_breaker_new("svc", &c);
    for (int i = 0; i < 3; i++)
        call(b, now, PT_BREAKER_FAILURE);
    assert_int_equal(state(b), PT_BREAKER_OPEN);
    return b;
}

static void test_breaker__consecutive_failures_open(void **st)
{
    (void)st;
    struct pt_breaker_conf c = conf(3, 100, 100);
    struct pt_breaker *b = pt_breaker_new("svc", &c);
    call(b, 0, PT_BREAKER_FAILURE);
    call(b, 0, PT_BREAKER_FAILURE);
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    call(b, 0, PT_BREAKER_FAILURE);
    assert_int_equal(state(b), PT_BREAKER_OPEN);
    struct pt_breaker_info i;
    pt_breaker_read(b, &i);
    assert_int_equal(i.transitions[PT_BREAKER_OPEN], 1);
    assert_int_equal(i.transitions[PT_BREAKER_CLOSED], 0);
    pt_breaker_unref(b);
}

static void test_breaker__success_resets_consecutive_count(void **st)
{
    (void)st;
    struct pt_breaker_conf c = conf(3, 100, 100);
    struct pt_breaker *b = pt_breaker_new("svc", &c);
    for (int round = 0; round < 5; round++) {
        call(b, 0, PT_BREAKER_FAILURE);
        call(b, 0, PT_BREAKER_FAILURE);
        call(b, 0, PT_BREAKER_SUCCESS);
    }
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    /* Ignored outcomes neither count nor reset. */
    call(b, 0, PT_BREAKER_FAILURE);
    call(b, 0, PT_BREAKER_IGNORED);
    call(b, 0, PT_BREAKER_FAILURE);
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    call(b, 0, PT_BREAKER_FAILURE);
    assert_int_equal(state(b), PT_BREAKER_OPEN);
    pt_breaker_unref(b);
}

static void test_breaker__failure_rate_opens_only_on_full_window(void **st)
{
    (void)st;
    /* Window 10, 50%: failures alternate, so never 2 in a row. */
    struct pt_breaker_conf c = conf(1000, 10, 50);
    struct pt_breaker *b = pt_breaker_new("svc", &c);
    for (int i = 0; i < 9; i++) {
        call(b, 0, i % 2 == 0 ? PT_BREAKER_FAILURE : PT_BREAKER_SUCCESS);
        /* 5 of 9 failed (56%) but the window is not full yet. */
        assert_int_equal(state(b), PT_BREAKER_CLOSED);
    }
    call(b, 0, PT_BREAKER_SUCCESS); /* 5 of 10: 50% */
    assert_int_equal(state(b), PT_BREAKER_OPEN);
    pt_breaker_unref(b);
}

static void test_breaker__failure_rate_slides(void **st)
{
    (void)st;
    struct pt_breaker_conf c = conf(1000, 4, 75);
    struct pt_breaker *b = pt_breaker_new("svc", &c);
    /* F F S S: 50% */
    call(b, 0, PT_BREAKER_FAILURE);
    call(b, 0, PT_BREAKER_FAILURE);
    call(b, 0, PT_BREAKER_SUCCESS);
    call(b, 0, PT_BREAKER_SUCCESS);
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    /* F S S F: still 50% (the first two slid out) */
    call(b, 0, PT_BREAKER_FAILURE);
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    call(b, 0, PT_BREAKER_SUCCESS); /* window S S F S */
    call(b, 0, PT_BREAKER_FAILURE); /* S F S F */
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    call(b, 0, PT_BREAKER_SUCCESS); /* F S F S */
    call(b, 0, PT_BREAKER_FAILURE); /* S F S F */
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    call(b, 0, PT_BREAKER_FAILURE); /* F S F F: 75% */
    assert_int_equal(state(b), PT_BREAKER_OPEN);
    pt_breaker_unref(b);
}

static void test_breaker__open_rejects_until_timeout(void **st)
{
    (void)st;
    struct pt_breaker *b = opened(5 * MS);
    struct pt_breaker_ticket t;
    assert_int_equal(pt_breaker_allow(b, 5 * MS, &t), PT_BREAKER_REJECT);
    assert_int_equal(pt_breaker_allow(b, 1004 * MS, &t), PT_BREAKER_REJECT);
    assert_false(pt_breaker_would_allow(b, 1004 * MS));
    /* A reject ticket records nothing. */
    pt_breaker_record(b, 1004 * MS, &t, PT_BREAKER_SUCCESS);
    assert_int_equal(state(b), PT_BREAKER_OPEN);
    struct pt_breaker_info i;
    pt_breaker_read(b, &i);
    assert_int_equal(i.rejected, 2);
    assert_true(pt_breaker_would_allow(b, 1005 * MS));
    pt_breaker_unref(b);
}

static void test_breaker__open_to_half_open_after_timeout(void **st)
{
    (void)st;
    struct pt_breaker *b = opened(0);
    struct pt_breaker_ticket t;
    assert_int_equal(pt_breaker_allow(b, 1000 * MS, &t), PT_BREAKER_PROBE);
    assert_int_equal(state(b), PT_BREAKER_HALF_OPEN);
    struct pt_breaker_info i;
    pt_breaker_read(b, &i);
    assert_int_equal(i.transitions[PT_BREAKER_HALF_OPEN], 1);
    pt_breaker_unref(b);
}

static void test_breaker__half_open_limits_concurrent_probes(void **st)
{
    (void)st;
    struct pt_breaker_conf c = conf(1, 100, 100);
    c.half_open_max_calls = 2;
    c.success_threshold = 3;
    struct pt_breaker *b = pt_breaker_new("svc", &c);
    call(b, 0, PT_BREAKER_FAILURE);
    struct pt_breaker_ticket t1, t2, t3, t4;
    uint64_t now = 1000 * MS;
    assert_int_equal(pt_breaker_allow(b, now, &t1), PT_BREAKER_PROBE);
    assert_int_equal(pt_breaker_allow(b, now, &t2), PT_BREAKER_PROBE);
    assert_int_equal(pt_breaker_allow(b, now, &t3), PT_BREAKER_REJECT);
    assert_false(pt_breaker_would_allow(b, now));
    /* A finished probe frees its slot. */
    pt_breaker_record(b, now, &t1, PT_BREAKER_SUCCESS);
    assert_int_equal(state(b), PT_BREAKER_HALF_OPEN);
    assert_int_equal(pt_breaker_allow(b, now, &t3), PT_BREAKER_PROBE);
    assert_int_equal(pt_breaker_allow(b, now, &t4), PT_BREAKER_REJECT);
    /* An ignored probe frees its slot without a verdict. */
    pt_breaker_record(b, now, &t2, PT_BREAKER_IGNORED);
    assert_int_equal(pt_breaker_allow(b, now, &t4), PT_BREAKER_PROBE);
    pt_breaker_record(b, now, &t3, PT_BREAKER_SUCCESS);
    assert_int_equal(state(b), PT_BREAKER_HALF_OPEN);
    pt_breaker_record(b, now, &t4, PT_BREAKER_SUCCESS);
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    pt_breaker_unref(b);
}

static void test_breaker__half_open_closes_after_successes(void **st)
{
    (void)st;
    struct pt_breaker_conf c = conf(2, 100, 100);
    c.success_threshold = 2;
    struct pt_breaker *b = pt_breaker_new("svc", &c);
    call(b, 0, PT_BREAKER_FAILURE);
    call(b, 0, PT_BREAKER_FAILURE);
    call(b, 1000 * MS, PT_BREAKER_SUCCESS);
    assert_int_equal(state(b), PT_BREAKER_HALF_OPEN);
    call(b, 1001 * MS, PT_BREAKER_SUCCESS);
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    /* Closed again with a clean count: one failure does not reopen it. */
    call(b, 1002 * MS, PT_BREAKER_FAILURE);
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    call(b, 1003 * MS, PT_BREAKER_FAILURE);
    assert_int_equal(state(b), PT_BREAKER_OPEN);
    struct pt_breaker_info i;
    pt_breaker_read(b, &i);
    assert_int_equal(i.transitions[PT_BREAKER_OPEN], 2);
    assert_int_equal(i.transitions[PT_BREAKER_HALF_OPEN], 1);
    assert_int_equal(i.transitions[PT_BREAKER_CLOSED], 1);
    pt_breaker_unref(b);
}

static void test_breaker__half_open_failure_reopens(void **st)
{
    (void)st;
    struct pt_breaker *b = opened(0);
    call(b, 1000 * MS, PT_BREAKER_FAILURE);
    assert_int_equal(state(b), PT_BREAKER_OPEN);
    /* The timeout restarts from the reopening. */
    struct pt_breaker_ticket t;
    assert_int_equal(pt_breaker_allow(b, 1999 * MS, &t), PT_BREAKER_REJECT);
    assert_int_equal(pt_breaker_allow(b, 2000 * MS, &t), PT_BREAKER_PROBE);
    pt_breaker_unref(b);
}

static void test_breaker__stale_outcomes_are_ignored(void **st)
{
    (void)st;
    struct pt_breaker_conf c = conf(1, 100, 100);
    struct pt_breaker *b = pt_breaker_new("svc", &c);
    struct pt_breaker_ticket slow;
    assert_int_equal(pt_breaker_allow(b, 0, &slow), PT_BREAKER_ALLOW);
    call(b, 0, PT_BREAKER_FAILURE); /* opens */
    struct pt_breaker_ticket probe;
    assert_int_equal(pt_breaker_allow(b, 1000 * MS, &probe), PT_BREAKER_PROBE);
    /* The slow call admitted while closed ends now: it must not count as
     * a probe's success nor free the probe's slot. */
    pt_breaker_record(b, 1000 * MS, &slow, PT_BREAKER_SUCCESS);
    assert_int_equal(state(b), PT_BREAKER_HALF_OPEN);
    struct pt_breaker_ticket t;
    assert_int_equal(pt_breaker_allow(b, 1000 * MS, &t), PT_BREAKER_REJECT);
    pt_breaker_record(b, 1000 * MS, &probe, PT_BREAKER_SUCCESS);
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    pt_breaker_unref(b);
}

static void test_breaker__classification(void **st)
{
    (void)st;
    struct pt_breaker_conf c;
    pt_breaker_conf_defaults(&c);
    assert_true(pt_breaker_conf_is_failure(&c, 0, 500, -1));
    assert_true(pt_breaker_conf_is_failure(&c, 0, 503, -1));
    assert_false(pt_breaker_conf_is_failure(&c, 0, 404, -1));
    assert_false(pt_breaker_conf_is_failure(&c, 0, 200, 14)); /* no gRPC codes by default */
    assert_true(pt_breaker_conf_is_failure(&c, PT_ERR_TIMEOUT, 0, -1));
    assert_true(pt_breaker_conf_is_failure(&c, PT_ERR_UPSTREAM_RESET, 0, -1));
    assert_true(pt_breaker_conf_is_failure(&c, PT_ERR_UPSTREAM_CONNECT, 0, -1));
    assert_false(pt_breaker_conf_is_failure(&c, PT_ERR_CANCELLED, 0, -1));

    memset(&c, 0, sizeof(c));
    assert_int_equal(pt_breaker_conf_add_fail_on(&c, "gateway-error"), 0);
    assert_int_equal(pt_breaker_conf_add_fail_on(&c, "grpc:UNAVAILABLE"), 0);
    assert_int_equal(pt_breaker_conf_add_fail_on(&c, "grpc:4"), 0);
    assert_true(pt_breaker_conf_is_failure(&c, 0, 502, -1));
    assert_false(pt_breaker_conf_is_failure(&c, 0, 500, -1));
    assert_true(pt_breaker_conf_is_failure(&c, 0, 200, 14));
    assert_true(pt_breaker_conf_is_failure(&c, 0, 200, 4));
    assert_false(pt_breaker_conf_is_failure(&c, 0, 200, 13));
    assert_false(pt_breaker_conf_is_failure(&c, 0, 200, 0));
    assert_false(pt_breaker_conf_is_failure(&c, PT_ERR_TIMEOUT, 0, -1));

    assert_int_equal(pt_breaker_conf_add_fail_on(&c, "grpc:OK"), PT_ERR_INVALID);
    assert_int_equal(pt_breaker_conf_add_fail_on(&c, "grpc:0"), PT_ERR_INVALID);
    assert_int_equal(pt_breaker_conf_add_fail_on(&c, "grpc:17"), PT_ERR_INVALID);
    assert_int_equal(pt_breaker_conf_add_fail_on(&c, "grpc:"), PT_ERR_INVALID);
    assert_int_equal(pt_breaker_conf_add_fail_on(&c, "grpc:unavailable"), PT_ERR_INVALID);
    assert_int_equal(pt_breaker_conf_add_fail_on(&c, "4xx"), PT_ERR_INVALID);
}

static void test_breaker__registry_keys_and_reload(void **st)
{
    (void)st;
    struct pt_breaker_conf c = conf(1, 100, 100);
    c.per_instance = true;
    struct pt_breaker *svc = pt_breaker_ref("svc", &c);
    struct pt_breaker *a = pt_breaker_ref("svc/127.0.0.1:1", &c);
    struct pt_breaker *b = pt_breaker_ref("svc/127.0.0.1:2", &c);
    assert_ptr_not_equal(a, b);
    assert_ptr_not_equal(svc, a);
    call(a, 0, PT_BREAKER_FAILURE);
    assert_int_equal(state(a), PT_BREAKER_OPEN);
    assert_int_equal(state(b), PT_BREAKER_CLOSED);
    assert_int_equal(state(svc), PT_BREAKER_CLOSED);
    struct pt_breaker_info i;
    assert_true(pt_breaker_lookup("svc/127.0.0.1:1", &i));
    assert_int_equal(i.state, PT_BREAKER_OPEN);
    assert_false(pt_breaker_lookup("other", &i));

    /* A reload with the same configuration keeps the breaker and its state. */
    struct pt_breaker *a2 = pt_breaker_ref("svc/127.0.0.1:1", &c);
    assert_ptr_equal(a, a2);
    pt_breaker_unref(a); /* the old snapshot goes */
    assert_int_equal(state(a2), PT_BREAKER_OPEN);

    /* A changed configuration starts closed; the old one lives on. */
    struct pt_breaker_conf c2 = c;
    c2.timeout_ms = 5000;
    struct pt_breaker *a3 = pt_breaker_ref("svc/127.0.0.1:1", &c2);
    assert_ptr_not_equal(a3, a2);
    assert_int_equal(state(a3), PT_BREAKER_CLOSED);
    assert_int_equal(state(a2), PT_BREAKER_OPEN);
    assert_true(pt_breaker_lookup("svc/127.0.0.1:1", &i));
    assert_int_equal(i.state, PT_BREAKER_CLOSED);
    pt_breaker_unref(a2);
    pt_breaker_unref(a3);
    assert_false(pt_breaker_lookup("svc/127.0.0.1:1", &i));
    pt_breaker_unref(b);
    pt_breaker_unref(svc);
    assert_false(pt_breaker_lookup("svc", &i));
}

static void test_breaker__endpoint_choice_skips_open_instances(void **st)
{
    (void)st;
    struct pt_breaker_conf c = conf(1, 100, 100);
    struct pt_endpoint eps[3];
    memset(eps, 0, sizeof(eps));
    for (int i = 0; i < 3; i++)
        eps[i].breaker = pt_breaker_new("svc/x", &c);
    struct pt_service svc = {.endpoints = eps, .nendpoints = 3};
    assert_int_equal(pt_service_skip_open(&svc, 1, -1, 0, NULL), 1);
    call(eps[1].breaker, 0, PT_BREAKER_FAILURE);
    assert_int_equal(pt_service_skip_open(&svc, 1, -1, 0, NULL), 2);
    /* The retry's avoided endpoint is skipped too. */
    assert_int_equal(pt_service_skip_open(&svc, 1, 2, 0, NULL), 0);
    call(eps[2].breaker, 0, PT_BREAKER_FAILURE);
    call(eps[0].breaker, 0, PT_BREAKER_FAILURE);
    /* None admits: the choice stays (the proxy rejects before choosing). */
    assert_int_equal(pt_service_skip_open(&svc, 1, -1, 0, NULL), 1);
    /* After the timeout the open instance may be probed again. */
    assert_int_equal(pt_service_skip_open(&svc, 1, -1, 1000 * MS, NULL), 1);
    for (int i = 0; i < 3; i++)
        pt_breaker_unref(eps[i].breaker);
}

#define NTHREADS 4
#define NCALLS 20000

struct smoke {
    struct pt_breaker *b;
    _Atomic uint64_t *clock;
    unsigned seed;
};

static void *smoke_run(void *arg)
{
    struct smoke *s = arg;
    unsigned r = s->seed;
    for (int i = 0; i < NCALLS; i++) {
        r = r * 1103515245u + 12345u;
        uint64_t now = atomic_fetch_add(s->clock, 1 * MS);
        struct pt_breaker_ticket t;
        if (pt_breaker_allow(s->b, now, &t) == PT_BREAKER_REJECT)
            continue;
        pt_breaker_record(s->b, now, &t,
                          (r >> 16) % 3 == 0 ? PT_BREAKER_FAILURE : PT_BREAKER_SUCCESS);
    }
    return NULL;
}

static void test_breaker__threads_smoke(void **st)
{
    (void)st;
    struct pt_breaker_conf c = conf(3, 20, 50);
    c.timeout_ms = 5;
    c.half_open_max_calls = 2;
    struct pt_breaker *b = pt_breaker_new("svc", &c);
    _Atomic uint64_t clock = 0;
    pthread_t th[NTHREADS];
    struct smoke s[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        s[i] = (struct smoke){b, &clock, (unsigned)i + 1};
        assert_int_equal(pthread_create(&th[i], NULL, smoke_run, &s[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    struct pt_breaker_info i;
    pt_breaker_read(b, &i);
    /* It went through every state, and transitions alternate consistently:
     * every entry into HALF_OPEN followed an entry into OPEN. */
    assert_true(i.transitions[PT_BREAKER_OPEN] > 0);
    assert_true(i.transitions[PT_BREAKER_HALF_OPEN] > 0);
    assert_true(i.transitions[PT_BREAKER_HALF_OPEN] <= i.transitions[PT_BREAKER_OPEN]);
    assert_true(i.transitions[PT_BREAKER_CLOSED] <= i.transitions[PT_BREAKER_HALF_OPEN]);
    /* Quiet afterwards: once the timeout passes, probes flow and at most
     * half_open_max_calls are out at once. */
    uint64_t now = atomic_load(&clock) + 10 * MS;
    struct pt_breaker_ticket t[3];
    enum pt_breaker_verdict v = pt_breaker_allow(b, now, &t[0]);
    if (v == PT_BREAKER_PROBE) {
        assert_int_equal(pt_breaker_allow(b, now, &t[1]), PT_BREAKER_PROBE);
        assert_int_equal(pt_breaker_allow(b, now, &t[2]), PT_BREAKER_REJECT);
    } else {
        assert_int_equal(v, PT_BREAKER_ALLOW);
    }
    pt_breaker_unref(b);
}

int main(void)
{
    pt_log_set_level(PT_LOG_WARN); /* transitions log at info */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker__consecutive_failures_open),
        cmocka_unit_test(test_breaker__success_resets_consecutive_count),
        cmocka_unit_test(test_breaker__failure_rate_opens_only_on_full_window),
        cmocka_unit_test(test_breaker__failure_rate_slides),
        cmocka_unit_test(test_breaker__open_rejects_until_timeout),
        cmocka_unit_test(test_breaker__open_to_half_open_after_timeout),
        cmocka_unit_test(test_breaker__half_open_limits_concurrent_probes),
        cmocka_unit_test(test_breaker__half_open_closes_after_successes),
        cmocka_unit_test(test_breaker__half_open_failure_reopens),
        cmocka_unit_test(test_breaker__stale_outcomes_are_ignored),
        cmocka_unit_test(test_breaker__classification),
        cmocka_unit_test(test_breaker__registry_keys_and_reload),
        cmocka_unit_test(test_breaker__endpoint_choice_skips_open_instances),
        cmocka_unit_test(test_breaker__threads_smoke),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
