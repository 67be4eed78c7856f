/*
 * JWKS sources without a network: the refresh policy with a fake clock
 * (auth/jwks_sched.h), and file: sources (auth/jwks_source.h) — read at
 * creation, refreshed on the fetch thread, shared by configuration, read
 * lock-free by threads while the document changes. HTTP(S) sources are in
 * test_fetch.c.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>

#include "auth/fetch.h"
#include "auth/jwks_sched.h"
#include "auth/jwks_source.h"
#include "core/time.h"
#include "core/worker.h"
#include "portico/errors.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* --- the policy ----------------------------------------------------------- */

static void test_sched__on_demand_is_rate_limited(void **state)
{
    (void)state;
    struct pt_jwks_sched s;
    pt_jwks_sched_init(&s, NULL, 1);
    uint64_t t = 1000 * SEC;
    assert_int_equal(pt_jwks_sched_demand(&s, t), PT_JWKS_DEMAND_START);
    /* While it runs, more demands join it. */
    assert_int_equal(pt_jwks_sched_demand(&s, t + 1), PT_JWKS_DEMAND_JOIN);
    pt_jwks_sched_done(&s, true);
    /* Within 30 s of the last on-demand start: limited. */
    assert_int_equal(pt_jwks_sched_demand(&s, t + 10 * SEC), PT_JWKS_DEMAND_LIMITED);
    assert_int_equal(pt_jwks_sched_demand(&s, t + 30 * SEC - 1), PT_JWKS_DEMAND_LIMITED);
    assert_int_equal(pt_jwks_sched_demand(&s, t + 30 * SEC), PT_JWKS_DEMAND_START);
    pt_jwks_sched_done(&s, false); /* failures do not reset the limit */
    assert_int_equal(pt_jwks_sched_demand(&s, t + 31 * SEC), PT_JWKS_DEMAND_LIMITED);
    /* A timed fetch in flight is joined even when limited. */
    pt_jwks_sched_timed_start(&s);
    assert_int_equal(pt_jwks_sched_demand(&s, t + 32 * SEC), PT_JWKS_DEMAND_JOIN);
    pt_jwks_sched_done(&s, true);
    assert_int_equal(pt_jwks_sched_demand(&s, t + 33 * SEC), PT_JWKS_DEMAND_LIMITED);
    /* A configured interval. */
    pt_jwks_sched_init(&s, &(struct pt_jwks_sched_conf){.on_demand_min_ms = 500}, 1);
    assert_int_equal(pt_jwks_sched_demand(&s, t), PT_JWKS_DEMAND_START);
    pt_jwks_sched_done(&s, true);
    assert_int_equal(pt_jwks_sched_demand(&s, t + 499 * MS), PT_JWKS_DEMAND_LIMITED);
    assert_int_equal(pt_jwks_sched_demand(&s, t + 500 * MS), PT_JWKS_DEMAND_START);
}

static void assert_near(uint64_t got, uint64_t base, unsigned pct)
{
    uint64_t span = base / 100 * pct;
    if (got < base - span || got > base + span)
        fail_msg("%llu not within %u%% of %llu", (unsigned long long)got, pct,
                 (unsigned long long)base);
}

static void test_sched__interval_with_jitter(void **state)
{
    (void)state;
    struct pt_jwks_sched s;
    pt_jwks_sched_init(&s, NULL, 42);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t d = pt_jwks_sched_done(&s, true);
        assert_near(d, 300 * SEC, 10);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* Spread over most of the ±10% band: instances do not fetch in step. */
    assert_true(hi - lo > 50 * SEC);
}

static void test_sched__backoff_after_failures(void **state)
{
    (void)state;
    struct pt_jwks_sched s;
    pt_jwks_sched_init(
        &s, &(struct pt_jwks_sched_conf){.retry_min_ms = 1000, .retry_max_ms = 10000}, 7);
    uint64_t want[] = {1, 2, 4, 8, 10, 10, 10};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_near(pt_jwks_sched_done(&s, false), want[i] * SEC, 10);
    /* Success: back to the refresh interval, and the next failure starts over. */
    assert_near(pt_jwks_sched_done(&s, true), 300 * SEC, 10);
    assert_near(pt_jwks_sched_done(&s, false), 1 * SEC, 10);
    /* Retrying is never slower than refreshing. */
    pt_jwks_sched_init(&s, &(struct pt_jwks_sched_conf){.refresh_ms = 5000}, 7);
    for (int i = 0; i < 20; i++)
        assert_true(pt_jwks_sched_done(&s, false) <= 5500 * MS);
    /* Many failures do not overflow. */
    pt_jwks_sched_init(&s, NULL, 7);
    for (int i = 0; i < 200; i++)
        assert_true(pt_jwks_sched_done(&s, false) <= 66 * SEC);
}

/* --- file sources --------------------------------------------------------- */

static char dir[128];

static const char *file(const char *name)
{
    static char bufs[4][256];
    static int i;
    char *b = bufs[i++ % 4];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

static void write_file(const char *name, const char *content)
{
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", file(name));
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    assert_int_equal(rename(tmp, file(name)), 0);
}

static void *parse_keys(const char *bytes, size_t len, void *arg, char *why, size_t wl)
{
    (void)arg;
    if (strncmp(bytes, "{\"keys\"", 7) != 0) {
        snprintf(why, wl, "no keys");
        return NULL;
    }
    char *copy = malloc(len + 1);
    memcpy(copy, bytes, len + 1);
    return copy;
}

static void free_keys(void *parsed, void *arg)
{
    (void)arg;
    free(parsed);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/pt-jwks-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char url_buf[300];

static const char *file_url(const char *name)
{
    snprintf(url_buf, sizeof(url_buf), "file:%s", file(name));
    return url_buf;
}

static void test_file__read_at_creation_and_shared(void **state)
{
    (void)state;
    write_file("a.json", "{\"keys\":[1]}");
    struct pt_jwks_source_conf conf = {
        .url = file_url("a.json"), .parse = parse_keys, .free_parsed = free_keys};
    struct pt_jwks_source *s = pt_jwks_source_new(&conf, NULL, NULL);
    assert_non_null(s);
    assert_int_equal(pt_jwks_source_generation(s), 1);
    struct pt_jwks_doc *d = pt_jwks_source_doc_ref(s);
    assert_non_null(d);
    assert_string_equal(d->bytes, "{\"keys\":[1]}");
    assert_int_equal(d->len, 12);
    assert_string_equal((char *)d->parsed, "{\"keys\":[1]}");
    assert_int_equal(d->generation, 1);
    assert_int_equal(pt_jwks_source_last_error(s, NULL, 0), 0);

    /* Same configuration: the same source; another: another. */
    char same_url[300];
    snprintf(same_url, sizeof(same_url), "%s", conf.url);
    struct pt_jwks_source_conf conf2 = conf;
    conf2.url = same_url;
    struct pt_jwks_source *s2 = pt_jwks_source_new(&conf2, NULL, NULL);
    assert_ptr_equal(s, s2);
    conf2.refresh_ms = 1000;
    struct pt_jwks_source *s3 = pt_jwks_source_new(&conf2, NULL, NULL);
    assert_ptr_not_equal(s, s3);
    pt_jwks_source_unref(s3);
    pt_jwks_source_unref(s2);
    pt_jwks_source_unref(s);
    /* The document outlives its source while referenced. */
    assert_string_equal(d->bytes, "{\"keys\":[1]}");
    pt_jwks_doc_unref(d);

    /* file:///abs is the same path. */
    char u[300];
    snprintf(u, sizeof(u), "file://%s", file("a.json"));
    conf.url = u;
    s = pt_jwks_source_new(&conf, NULL, NULL);
    assert_int_equal(pt_jwks_source_generation(s), 1);
    pt_jwks_source_unref(s);
}

static void test_file__failures_at_creation(void **state)
{
    (void)state;
    char why[200];
    /* Missing file: a source without a document, and why. */
    struct pt_jwks_source_conf conf = {.url = file_url("missing.json")};
    struct pt_jwks_source *s = pt_jwks_source_new(&conf, NULL, NULL);
    assert_non_null(s);
    assert_null(pt_jwks_source_doc_ref(s));
    assert_int_equal(pt_jwks_source_generation(s), 0);
    assert_int_equal(pt_jwks_source_last_error(s, why, sizeof(why)), PT_ERR_NOT_FOUND);
    assert_non_null(strstr(why, "missing.json"));
    pt_jwks_source_unref(s);
    /* Rejected by the hook. */
    write_file("bad.json", "[]");
    conf = (struct pt_jwks_source_conf){
        .url = file_url("bad.json"), .parse = parse_keys, .free_parsed = free_keys};
    s = pt_jwks_source_new(&conf, NULL, NULL);
    assert_null(pt_jwks_source_doc_ref(s));
    assert_int_equal(pt_jwks_source_last_error(s, why, sizeof(why)), PT_ERR_INVALID);
    assert_string_equal(why, "no keys");
    pt_jwks_source_unref(s);
    /* Too large. */
    write_file("big.json", "{\"keys\":[\"0123456789\"]}");
    conf = (struct pt_jwks_source_conf){.url = file_url("big.json"), .max_bytes = 10};
    s = pt_jwks_source_new(&conf, NULL, NULL);
    assert_null(pt_jwks_source_doc_ref(s));
    assert_int_equal(pt_jwks_source_last_error(s, NULL, 0), PT_ERR_LIMIT);
    pt_jwks_source_unref(s);
    /* A directory is not a document. */
    conf = (struct pt_jwks_source_conf){.url = file_url("")};
    s = pt_jwks_source_new(&conf, NULL, NULL);
    assert_int_equal(pt_jwks_source_last_error(s, NULL, 0), PT_ERR_INVALID);
    pt_jwks_source_unref(s);
    /* Bad URLs. */
    const char *bad[] = {"file://example.com/x", "gopher://x/", "https://", "", "file:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int err = 0;
        const char *w = NULL;
        conf = (struct pt_jwks_source_conf){.url = bad[i]};
        assert_null(pt_jwks_source_new(&conf, &err, &w));
        assert_int_equal(err, PT_ERR_INVALID);
        assert_non_null(w);
    }
}

/* Without the fetch thread, a waiter still hears back, on its worker. */
struct waited {
    int calls;
    int status;
    uint64_t gen;
    struct pt_worker *on;
};

static void waited_cb(void *arg, int status, uint64_t gen)
{
    struct waited *w = arg;
    w->calls++;
    w->status = status;
    w->gen = gen;
    w->on = pt_worker_current();
}

static void test_file__refresh_without_thread(void **state)
{
    (void)state;
    assert_false(pt_auth_fetch_thread_running());
    write_file("c.json", "{\"keys\":[3]}");
    struct pt_jwks_source_conf conf = {.url = file_url("c.json")};
    struct pt_jwks_source *s = pt_jwks_source_new(&conf, NULL, NULL);
    struct pt_worker w;
    assert_int_equal(pt_worker_init(&w, 3), 0);
    struct waited got = {0};
    struct pt_jwks_wait *h = pt_jwks_source_refresh_now(s, &w, waited_cb, &got);
    assert_non_null(h);
    assert_int_equal(got.calls, 0); /* never inside the call */
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    assert_int_equal(got.calls, 1);
    assert_int_equal(got.status, PT_ERR_SHUTTING_DOWN);
    assert_int_equal(got.gen, 1);
    /* Cancelled before its worker ran it: never called. */
    struct waited got2 = {0};
    h = pt_jwks_source_refresh_now(s, &w, waited_cb, &got2);
    pt_jwks_wait_cancel(h);
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    assert_int_equal(got2.calls, 0);
    pt_jwks_source_refresh_now(s, &w, NULL, NULL); /* fire and forget */
    pt_jwks_source_unref(s);
    event_base_loop(w.base, EVLOOP_NONBLOCK);
    pt_worker_fini(&w);
}

/* With the thread: timed refresh, on-demand refresh with waiters on the
 * fetch thread, and readers that never lock while documents change. */
#define READERS 4

static atomic_int stop_readers, reader_bad;
static atomic_long reads;

static void *reader(void *arg)
{
    struct pt_jwks_source *s = arg;
    uint64_t last = 0;
    while (!atomic_load(&stop_readers)) {
        struct pt_jwks_doc *d = pt_jwks_source_doc_ref(s);
        if (!d)
            continue;
        if (d->len != strlen(d->bytes) || strcmp(d->bytes, d->parsed) != 0 || d->generation < last)
            atomic_fetch_add(&reader_bad, 1);
        last = d->generation;
        pt_jwks_doc_unref(d);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

static atomic_int fetch_thread_calls, fetch_thread_status, elsewhere_calls;

static void on_fetch_thread_cb(void *arg, int status, uint64_t gen)
{
    (void)arg;
    (void)gen;
    atomic_store(&fetch_thread_status, status);
    if (pt_worker_current() && pt_worker_current() == pt_auth_fetch_thread_worker())
        atomic_fetch_add(&fetch_thread_calls, 1);
    else
        atomic_fetch_add(&elsewhere_calls, 1);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_file__refreshed_and_read_lock_free(void **state)
{
    (void)state;
    write_file("d.json", "{\"keys\":[\"d0\"]}");
    assert_int_equal(pt_auth_fetch_start_thread(NULL), 0);
    struct pt_jwks_source_conf conf = {.url = file_url("d.json"),
                                       .refresh_ms = 20,
                                       .on_demand_min_ms = 100000,
                                       .parse = parse_keys,
                                       .free_parsed = free_keys};
    struct pt_jwks_source *s = pt_jwks_source_new(&conf, NULL, NULL);
    assert_int_equal(pt_jwks_source_generation(s), 1);
    pthread_t th[READERS];
    atomic_store(&stop_readers, 0);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, s), 0);
    /* Bounded: 60 rewrites, each waited for up to 2 s. */
    char buf[64];
    for (int i = 1; i <= 60; i++) {
        snprintf(buf, sizeof(buf), "{\"keys\":[\"d%d\"]}", i);
        write_file("d.json", buf);
        uint64_t end = pt_time_mono_ns() + 2 * SEC;
        while (pt_jwks_source_generation(s) < (uint64_t)i + 1 && pt_time_mono_ns() < end)
            sleep_ms(1);
        assert_int_equal(pt_jwks_source_generation(s), i + 1);
    }
    atomic_store(&stop_readers, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&reader_bad), 0);
    assert_true(atomic_load(&reads) > 0);
    print_message("%ld lock-free reads during 60 swaps\n", (long)atomic_load(&reads));
    pt_jwks_source_unref(s);

    /* On demand, waiting on the fetch thread (worker NULL). */
    write_file("e.json", "{\"keys\":[\"e0\"]}");
    conf = (struct pt_jwks_source_conf){.url = file_url("e.json"),
                                        .refresh_ms = 600000,
                                        .parse = parse_keys,
                                        .free_parsed = free_keys};
    s = pt_jwks_source_new(&conf, NULL, NULL);
    write_file("e.json", "{\"keys\":[\"e1\"]}");
    atomic_store(&fetch_thread_calls, 0);
    pt_jwks_source_refresh_now(s, NULL, on_fetch_thread_cb, NULL);
    uint64_t end = pt_time_mono_ns() + 5 * SEC;
    while (atomic_load(&fetch_thread_calls) < 1 && pt_time_mono_ns() < end)
        sleep_ms(2);
    assert_int_equal(atomic_load(&fetch_thread_calls), 1);
    assert_int_equal(atomic_load(&fetch_thread_status), 0);
    assert_int_equal(pt_jwks_source_generation(s), 2);
    /* A waiter pending when the thread stops hears back before the stop
     * returns (rate-limited, or PT_ERR_SHUTTING_DOWN)... */
    atomic_store(&fetch_thread_calls, 0);
    pt_jwks_source_refresh_now(s, NULL, on_fetch_thread_cb, NULL);
    pt_auth_fetch_stop_thread();
    assert_int_equal(atomic_load(&fetch_thread_calls) + atomic_load(&elsewhere_calls), 1);
    assert_int_not_equal(atomic_load(&fetch_thread_status), 0);
    /* ...and the source survives a stop and a start (which also starts
     * its on-demand interval afresh). */
    assert_int_equal(pt_auth_fetch_start_thread(NULL), 0);
    write_file("e.json", "{\"keys\":[\"e2\"]}");
    atomic_store(&fetch_thread_calls, 0);
    pt_jwks_source_refresh_now(s, NULL, on_fetch_thread_cb, NULL);
    end = pt_time_mono_ns() + 5 * SEC;
    while (atomic_load(&fetch_thread_calls) < 1 && pt_time_mono_ns() < end)
        sleep_ms(2);
    assert_int_equal(atomic_load(&fetch_thread_calls), 1);
    assert_int_equal(atomic_load(&fetch_thread_status), 0);
    assert_int_equal(pt_jwks_source_generation(s), 3);
    pt_jwks_source_unref(s); /* destroyed on the fetch thread */
    pt_auth_fetch_stop_thread();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched__on_demand_is_rate_limited),
        cmocka_unit_test(test_sched__interval_with_jitter),
        cmocka_unit_test(test_sched__backoff_after_failures),
        cmocka_unit_test(test_file__read_at_creation_and_shared),
        cmocka_unit_test(test_file__failures_at_creation),
        cmocka_unit_test(test_file__refresh_without_thread),
        cmocka_unit_test(test_file__refreshed_and_read_lock_free),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
