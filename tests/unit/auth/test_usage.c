/*
 * API-key usage records: touches deduplicated per key, batches collected
 * and marked flushed, failed flushes retried, records forgotten with their
 * key, and workers touching concurrently.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/usage.h"

#define SEC 1000000000ull

static void test_usage__collect_dedupes_and_flushes(void **state)
{
    (void)state;
    struct pt_auth_usage *a = pt_auth_usage_ref("key-a");
    struct pt_auth_usage *b = pt_auth_usage_ref("key-b");
    struct pt_auth_usage_batch batch;
    assert_int_equal(pt_auth_usage_collect(&batch), 0); /* nothing used yet */
    pt_auth_usage_batch_fini(&batch);

    for (int i = 0; i < 1000; i++)
        pt_auth_usage_touch(a, 100 * SEC + (uint64_t)i); /* within one second */
    pt_auth_usage_touch(b, 50 * SEC);
    assert_int_equal(pt_auth_usage_collect(&batch), 2);
    assert_string_equal(batch.v[0].name, "key-a");
    assert_int_equal(batch.v[0].used_ns, 100 * SEC); /* later touches in the same second skipped */
    assert_string_equal(batch.v[1].name, "key-b");
    uint64_t ns;
    assert_false(pt_auth_usage_last("key-a", &ns)); /* not flushed yet */
    pt_auth_usage_flushed(&batch);
    pt_auth_usage_batch_fini(&batch);
    assert_true(pt_auth_usage_last("key-a", &ns));
    assert_int_equal(ns, 100 * SEC);

    /* Nothing new: nothing collected. A newer use: only that key. */
    assert_int_equal(pt_auth_usage_collect(&batch), 0);
    pt_auth_usage_batch_fini(&batch);
    pt_auth_usage_touch(a, 102 * SEC);
    assert_int_equal(pt_auth_usage_collect(&batch), 1);
    assert_int_equal(batch.v[0].used_ns, 102 * SEC);
    pt_auth_usage_flushed(&batch);
    pt_auth_usage_batch_fini(&batch);

    pt_auth_usage_unref(a);
    pt_auth_usage_unref(b);
    assert_false(pt_auth_usage_last("key-a", &ns)); /* forgotten with its last reference */
}

static void test_usage__failed_flush_is_collected_again(void **state)
{
    (void)state;
    struct pt_auth_usage *a = pt_auth_usage_ref("key-retry");
    pt_auth_usage_touch(a, 7 * SEC);
    struct pt_auth_usage_batch batch;
    assert_int_equal(pt_auth_usage_collect(&batch), 1);
    pt_auth_usage_batch_fini(&batch); /* the store failed: not marked flushed */
    assert_int_equal(pt_auth_usage_collect(&batch), 1);
    assert_int_equal(batch.v[0].used_ns, 7 * SEC);
    pt_auth_usage_flushed(&batch);
    pt_auth_usage_batch_fini(&batch);
    assert_int_equal(pt_auth_usage_collect(&batch), 0);
    pt_auth_usage_batch_fini(&batch);
    pt_auth_usage_unref(a);
}

static void test_usage__shared_across_snapshots(void **state)
{
    (void)state;
    /* Two snapshots reference the same key: one record. */
    struct pt_auth_usage *s1 = pt_auth_usage_ref("shared");
    struct pt_auth_usage *s2 = pt_auth_usage_ref("shared");
    assert_ptr_equal(s1, s2);
    pt_auth_usage_touch(s1, 9 * SEC);
    pt_auth_usage_unref(s1); /* the old snapshot goes; the use stays */
    struct pt_auth_usage_batch batch;
    assert_int_equal(pt_auth_usage_collect(&batch), 1);
    /* The batch holds the record even if the key is deleted meanwhile. */
    pt_auth_usage_unref(s2);
    assert_string_equal(batch.v[0].name, "shared");
    pt_auth_usage_flushed(&batch);
    pt_auth_usage_batch_fini(&batch);
    uint64_t ns;
    assert_false(pt_auth_usage_last("shared", &ns));
}

struct toucher {
    struct pt_auth_usage *u;
    uint64_t base;
};

static void *touch_many(void *arg)
{
    struct toucher *t = arg;
    for (uint64_t i = 0; i < 200000; i++)
        pt_auth_usage_touch(t->u, t->base + i * 10000); /* 10 us apart: 2 s in all */
    return NULL;
}

static void test_usage__concurrent_touches(void **state)
{
    (void)state;
    struct pt_auth_usage *u = pt_auth_usage_ref("hot");
    pthread_t th[4];
    struct toucher t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct toucher){u, 1000 * SEC};
        pthread_create(&th[i], NULL, touch_many, &t[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct pt_auth_usage_batch batch;
    assert_int_equal(pt_auth_usage_collect(&batch), 1);
    /* Within a second of the newest use (the granularity of a record). */
    uint64_t newest = 1000 * SEC + 199999ull * 10000;
    assert_true(batch.v[0].used_ns <= newest);
    assert_true(batch.v[0].used_ns + SEC >= newest);
    pt_auth_usage_batch_fini(&batch);
    pt_auth_usage_unref(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage__collect_dedupes_and_flushes),
        cmocka_unit_test(test_usage__failed_flush_is_collected_again),
        cmocka_unit_test(test_usage__shared_across_snapshots),
        cmocka_unit_test(test_usage__concurrent_touches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
