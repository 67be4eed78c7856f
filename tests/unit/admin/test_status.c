/* admin/status.c: status details encoding and the access predicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/server.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

static void test_status__details_carry_bad_request(void **state)
{
    struct pt_admin_status st = {0};
    pt_admin_status_set(&st, PT_ADMIN_INVALID_ARGUMENT, "%d problem(s)", 2);
    pt_admin_status_add_violation(&st, "route.path_prefix", "must start with %s", "/");
    pt_admin_status_add_violation(&st, "route.service", "unknown service \"%s\"", "x");
    size_t len;
    uint8_t *b = pt_admin_status_details_pack(&st, &len);
    assert_non_null(b);
    Google__Rpc__Status *s = google__rpc__status__unpack(NULL, len, b);
    assert_non_null(s);
    assert_int_equal(s->code, 3);
    assert_string_equal(s->message, "2 problem(s)");
    assert_int_equal(s->n_details, 1);
    assert_string_equal(s->details[0]->type_url, "type.googleapis.com/google.rpc.BadRequest");
    Google__Rpc__BadRequest *br =
        google__rpc__bad_request__unpack(NULL, s->details[0]->value.len, s->details[0]->value.data);
    assert_non_null(br);
    assert_int_equal(br->n_field_violations, 2);
    assert_string_equal(br->field_violations[0]->field, "route.path_prefix");
    assert_string_equal(br->field_violations[0]->description, "must start with /");
    assert_string_equal(br->field_violations[1]->description, "unknown service \"x\"");
    google__rpc__bad_request__free_unpacked(br, NULL);
    google__rpc__status__free_unpacked(s, NULL);
    free(b);
    pt_admin_status_fini(&st);
    assert_null(st.message);
    assert_int_equal(st.nviolations, 0);
}

static void test_status__no_violations_no_details(void **state)
{
    struct pt_admin_status st = {0};
    pt_admin_status_set(&st, PT_ADMIN_NOT_FOUND, "route %s not found", "r1");
    pt_admin_status_set(&st, PT_ADMIN_NOT_FOUND, "route %s not found", "r2"); /* replaces */
    assert_string_equal(st.message, "route r2 not found");
    size_t len = 99;
    assert_null(pt_admin_status_details_pack(&st, &len));
    pt_admin_status_fini(&st);
}

static void test_access__loopback_addresses(void **state)
{
    const char *yes[] = {"127.0.0.1:9901", "127.1.2.3:1", "[::1]:9901",
                         "localhost:9901", "LocalHost:1", "::1"};
    const char *no[] = {"0.0.0.0:9901",
                        "[::]:9901",
                        "10.0.0.1:9901",
                        "192.0.2.1:80",
                        "[::ffff:127.0.0.1]:1",
                        "example.com:9901",
                        "localhost.evil:1",
                        "128.0.0.1:1",
                        "[::1:9901",
                        ":9901",
                        ""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(pt_admin_address_is_loopback(yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(pt_admin_address_is_loopback(no[i]));
}

static void test_access__token_matches(void **state)
{
    const char *t = "s3cret";
    assert_true(pt_admin_token_matches(t, "Bearer s3cret", 13));
    assert_true(pt_admin_token_matches(t, "bearer s3cret", 13));
    assert_false(pt_admin_token_matches(t, "Bearer s3cret", 12));
    assert_false(pt_admin_token_matches(t, "Bearer s3cret2", 14));
    assert_false(pt_admin_token_matches(t, "Basic s3cret", 12));
    assert_false(pt_admin_token_matches(t, "s3cret", 6));
    assert_false(pt_admin_token_matches(t, "Bearer ", 7));
}

static void test_access__start_refuses_open_non_loopback(void **state)
{
    char err[512] = "";
    struct pt_admin_opts o = {.address = "0.0.0.0:1"};
    assert_null(pt_admin_server_start(&o, NULL, 0, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "not loopback"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status__details_carry_bad_request),
        cmocka_unit_test(test_status__no_violations_no_details),
        cmocka_unit_test(test_access__loopback_addresses),
        cmocka_unit_test(test_access__token_matches),
        cmocka_unit_test(test_access__start_refuses_open_non_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
