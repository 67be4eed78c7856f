/* Live routes (transcode/route_live.h): a route's Transcode recompiled
 * from every pool a (private) reflection registry publishes for its
 * service, the bookstore descriptor set standing in for a backend's
 * reflection answer. Holds keep what a request started with; workers past
 * their slots get private holds; a pool that does not fit says why. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "portico/errors.h"
#include "transcode/reflect.h"
#include "transcode/route.h"
#include "transcode/route_live.h"

#define SVC "portico.test.bookstore.Bookstore"

static uint8_t set_bytes[1 << 20];
static size_t set_len;

static int setup(void **state)
{
    (void)state;
    FILE *f = fopen(PT_TC_BOOKSTORE_DESC, "rb");
    if (!f)
        return -1;
    set_len = fread(set_bytes, 1, sizeof(set_bytes), f);
    fclose(f);
    return set_len ? 0 : -1;
}

static struct pt_descpool *new_pool(void)
{
    char err[256];
    struct pt_descpool *p = pt_descpool_new_from_set(set_bytes, set_len, NULL, err, sizeof(err));
    assert_non_null(p);
    return p;
}

static uint64_t publish(struct pt_tc_reflect_registry *reg, const char *name)
{
    const char *svcs[] = {SVC};
    return pt_tc_reflect_publish(reg, name, new_pool(), svcs, 1);
}

/* GET /v1/shelves/1/books/2 through r: matched to GetBook? */
static bool get_book_matches(const struct pt_tc_route *r)
{
    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_httprule_request req = {PT_STR("GET"), PT_STR("/v1/shelves/1/books/2"), PT_STR_NULL};
    struct pt_httprule_match m;
    int rc = pt_httprule_table_match(r->table, &req, &a, &m);
    bool ok = rc == 0 && pt_str_eq(m.method_name, PT_STR(SVC "/GetBook"));
    pt_arena_fini(&a);
    return ok;
}

static void test_route_live__not_fetched_then_compiled_on_publish(void **state)
{
    (void)state;
    struct pt_tc_reflect_registry *reg = pt_tc_reflect_registry_new();
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    struct pt_tc_live *l = pt_tc_live_new(&tc, reg, "books", "cfg.yaml:3:5", 2);
    assert_int_equal(pt_tc_live_generation(l), 0);
    assert_int_equal(pt_tc_live_refresh(l), PT_ERR_NOT_FOUND);

    struct pt_tc_live_hold *h = NULL;
    const char *why = NULL;
    assert_null(pt_tc_live_acquire(l, 0, &h, &why));
    assert_non_null(h);
    assert_string_equal(why,
                        "descriptors for service books not fetched yet (gRPC server reflection)");
    pt_tc_live_release(h);

    /* another service's publish changes nothing */
    publish(reg, "other");
    assert_int_equal(pt_tc_live_generation(l), 0);

    /* the publish hook compiles, on the publishing thread */
    assert_int_equal(publish(reg, "books"), 1);
    assert_int_equal(pt_tc_live_generation(l), 1);
    const struct pt_tc_route *r = pt_tc_live_acquire(l, 0, &h, &why);
    assert_non_null(r);
    assert_null(r->live);
    assert_true(get_book_matches(r));
    /* the same generation again: the slot's hold, no new compile */
    struct pt_tc_live_hold *h2 = NULL;
    assert_ptr_equal(pt_tc_live_acquire(l, 0, &h2, &why), r);
    assert_ptr_equal(h2, h);
    assert_int_equal(pt_tc_live_refresh(l), 0);
    pt_tc_live_release(h2);
    pt_tc_live_release(h);
    pt_tc_live_free(l);
    pt_tc_reflect_registry_free(reg);
}

static void test_route_live__request_keeps_its_route_across_a_swap(void **state)
{
    (void)state;
    struct pt_tc_reflect_registry *reg = pt_tc_reflect_registry_new();
    publish(reg, "books"); /* before the route exists: compiled at once */
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    struct pt_tc_live *l = pt_tc_live_new(&tc, reg, "books", "cfg.yaml:3:5", 1);
    assert_int_equal(pt_tc_live_generation(l), 1);

    struct pt_tc_live_hold *old_h, *new_h, *far_h;
    const char *why;
    const struct pt_tc_route *old_r = pt_tc_live_acquire(l, 0, &old_h, &why);
    assert_non_null(old_r);
    assert_int_equal(publish(reg, "books"), 2);
    const struct pt_tc_route *new_r = pt_tc_live_acquire(l, 0, &new_h, &why);
    assert_non_null(new_r);
    assert_ptr_not_equal(new_r, old_r);
    assert_ptr_not_equal(new_r->pool, old_r->pool);
    /* the request that started on generation 1 still has all of it */
    assert_true(get_book_matches(old_r));
    pt_tc_live_release(old_h);
    assert_true(get_book_matches(new_r));

    /* a worker past the slots gets a private hold on the same route */
    const struct pt_tc_route *far_r = pt_tc_live_acquire(l, 7, &far_h, &why);
    assert_ptr_equal(far_r, new_r);
    assert_ptr_not_equal(far_h, new_h);

    /* a failed fetch publishes nothing: the last good route stays */
    pt_tc_reflect_record_failure(reg, "books", "connection refused");
    pt_tc_live_release(new_h);
    assert_ptr_equal(pt_tc_live_acquire(l, 0, &new_h, &why), new_r);
    pt_tc_live_release(new_h);

    /* the owner goes first; the private hold still works */
    pt_tc_live_free(l);
    assert_true(get_book_matches(far_r));
    pt_tc_live_release(far_h);
    pt_tc_reflect_registry_free(reg);
}

static void test_route_live__pool_that_does_not_fit_says_why(void **state)
{
    (void)state;
    struct pt_tc_reflect_registry *reg = pt_tc_reflect_registry_new();
    Portico__Config__V1__TranscodeRule rule = PORTICO__CONFIG__V1__TRANSCODE_RULE__INIT;
    rule.method = SVC ".Vanished";
    rule.get = "/v1/gone";
    Portico__Config__V1__TranscodeRule *rules[] = {&rule};
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    tc.rules = rules;
    tc.n_rules = 1;
    struct pt_tc_live *l = pt_tc_live_new(&tc, reg, "books", "cfg.yaml:9:3", 1);
    rule.method = "changed.after.new"; /* the live route has its own copy */
    publish(reg, "books");
    assert_int_equal(pt_tc_live_generation(l), 1);
    struct pt_tc_live_hold *h;
    const char *why;
    assert_null(pt_tc_live_acquire(l, 0, &h, &why));
    assert_non_null(strstr(why, "the descriptors of service books (reflection generation 1) do "
                                "not fit this route: "));
    assert_non_null(strstr(why, "unknown method \"" SVC ".Vanished\""));
    assert_null(strstr(why, "cfg.yaml:9:3")); /* the position is for the log */
    pt_tc_live_release(h);
    assert_int_equal(pt_tc_live_refresh(l), PT_ERR_INVALID);
    pt_tc_live_free(l);
    pt_tc_reflect_registry_free(reg);
}

static void test_route_live__options_are_checked_without_a_schema(void **state)
{
    (void)state;
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    struct pt_diag d;
    pt_diag_init(&d);
    assert_int_equal(pt_tc_route_check_options(&tc, "w", &d), 0);
    tc.stream_format = "xml";
    char *hdr[] = {"Grpc-Timeout"};
    tc.forward_headers = hdr;
    tc.n_forward_headers = 1;
    assert_int_equal(pt_tc_route_check_options(&tc, "w", &d), -1);
    assert_non_null(strstr(pt_diag_text(&d), "\"xml\": expected"));
    assert_non_null(strstr(pt_diag_text(&d), "is set by the gateway"));
    pt_diag_fini(&d);
}

struct race {
    struct pt_tc_reflect_registry *reg;
    struct pt_tc_live *l;
    unsigned worker;
    unsigned ok;
};

static void *requests(void *arg)
{
    struct race *r = arg;
    /* Bounded: a fixed number of requests, each pinning then releasing. */
    for (int i = 0; i < 3000; i++) {
        struct pt_tc_live_hold *h;
        const char *why;
        const struct pt_tc_route *rt = pt_tc_live_acquire(r->l, r->worker, &h, &why);
        if (rt && rt->nmethods > 0 && rt->methods[0].grpc_path.len > 0)
            r->ok++;
        pt_tc_live_release(h);
    }
    return NULL;
}

static void test_route_live__workers_race_repeated_publishes(void **state)
{
    (void)state;
    struct pt_tc_reflect_registry *reg = pt_tc_reflect_registry_new();
    publish(reg, "books");
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    struct pt_tc_live *l = pt_tc_live_new(&tc, reg, "books", "w", 3);
    struct race rs[4];
    pthread_t th[4];
    for (unsigned i = 0; i < 4; i++) { /* slots 0..2 and one private */
        rs[i] = (struct race){reg, l, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, requests, &rs[i]), 0);
    }
    for (int i = 0; i < 40; i++)
        publish(reg, "books");
    for (unsigned i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rs[i].ok, 3000);
    }
    assert_int_equal(pt_tc_live_generation(l), 41);
    pt_tc_live_free(l);
    pt_tc_reflect_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_live__not_fetched_then_compiled_on_publish),
        cmocka_unit_test(test_route_live__request_keeps_its_route_across_a_swap),
        cmocka_unit_test(test_route_live__pool_that_does_not_fit_says_why),
        cmocka_unit_test(test_route_live__options_are_checked_without_a_schema),
        cmocka_unit_test(test_route_live__workers_race_repeated_publishes),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
