/*
 * The filter-config ABI (portico/config.h) over loaded configuration: each
 * accessor on every kind, the NULL-tolerant chaining filters rely on, and
 * pt_diag_errorf() with a context.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/filter_config.h"

static struct pt_conf *conf;
static struct pt_diag diag;
static struct pt_filter_config fc;

static const char *text = "filters:\n"
                          "  - name: x\n"
                          "    config:\n"
                          "      header: x-request-id\n"
                          "      enabled: true\n"
                          "      ratio: 0.25\n"
                          "      nothing: null\n"
                          "      set: {x-env: prod, x-zone: \"1\"}\n"
                          "      list: [a, 2, false]\n";

static int setup(void **state)
{
    pt_diag_init(&diag);
    conf = pt_conf_load_string("t.yaml", text, strlen(text), &diag);
    if (!conf)
        return -1;
    pt_filter_config_init(&fc, pt_conf_config(conf)->filters[0]->config, PT_STR("users"));
    return 0;
}

static int teardown(void **state)
{
    pt_conf_free(conf);
    pt_diag_fini(&diag);
    return 0;
}

static bool str_is(struct pt_str s, const char *want)
{
    return pt_str_eq(s, pt_str_from_cstr(want));
}

static void test_filter_config__root_is_a_map_in_config_order(void **state)
{
    const struct pt_config_value *root = pt_filter_config_root(&fc);
    assert_int_equal(pt_config_kind(root), PT_CONFIG_MAP);
    assert_int_equal(pt_config_len(root), 6);
    struct pt_str key;
    assert_non_null(pt_config_at(root, 0, &key));
    assert_true(str_is(key, "header"));
    assert_non_null(pt_config_at(root, 5, &key));
    assert_true(str_is(key, "list"));
    assert_null(pt_config_at(root, 6, &key));
}

static void test_filter_config__route_name_is_reported(void **state)
{
    assert_true(str_is(pt_filter_config_route(&fc), "users"));
}

static void test_filter_config__scalars_read_by_kind(void **state)
{
    const struct pt_config_value *root = pt_filter_config_root(&fc);
    struct pt_str s;
    bool b = false;
    double d = 0;
    assert_true(pt_config_string(pt_config_find(root, "header"), &s));
    assert_true(str_is(s, "x-request-id"));
    assert_int_equal(pt_config_kind(pt_config_find(root, "header")), PT_CONFIG_STRING);
    assert_true(pt_config_bool(pt_config_find(root, "enabled"), &b));
    assert_true(b);
    assert_int_equal(pt_config_kind(pt_config_find(root, "enabled")), PT_CONFIG_BOOL);
    assert_true(pt_config_number(pt_config_find(root, "ratio"), &d));
    assert_true(d == 0.25);
    assert_int_equal(pt_config_kind(pt_config_find(root, "ratio")), PT_CONFIG_NUMBER);
    assert_int_equal(pt_config_kind(pt_config_find(root, "nothing")), PT_CONFIG_NULL);
    assert_non_null(pt_config_find(root, "nothing"));
}

static void test_filter_config__wrong_kind_reads_fail(void **state)
{
    const struct pt_config_value *root = pt_filter_config_root(&fc);
    struct pt_str s;
    bool b;
    double d;
    assert_false(pt_config_bool(pt_config_find(root, "header"), &b));
    assert_false(pt_config_number(pt_config_find(root, "enabled"), &d));
    assert_false(pt_config_string(pt_config_find(root, "ratio"), &s));
    assert_false(pt_config_string(root, &s));
    assert_int_equal(pt_config_len(pt_config_find(root, "header")), 0);
    assert_null(pt_config_at(pt_config_find(root, "header"), 0, NULL));
    assert_null(pt_config_find(pt_config_find(root, "list"), "a"));
}

static void test_filter_config__nested_maps_and_lists(void **state)
{
    const struct pt_config_value *root = pt_filter_config_root(&fc);
    const struct pt_config_value *set = pt_config_find(root, "set");
    assert_int_equal(pt_config_kind(set), PT_CONFIG_MAP);
    assert_int_equal(pt_config_len(set), 2);
    struct pt_str key, s;
    assert_true(pt_config_string(pt_config_at(set, 1, &key), &s));
    assert_true(str_is(key, "x-zone"));
    assert_true(str_is(s, "1"));

    const struct pt_config_value *list = pt_config_find(root, "list");
    assert_int_equal(pt_config_kind(list), PT_CONFIG_LIST);
    assert_int_equal(pt_config_len(list), 3);
    key = PT_STR("junk");
    double d;
    bool b = true;
    assert_true(pt_config_number(pt_config_at(list, 1, &key), &d));
    assert_null(key.ptr);
    assert_true(d == 2.0);
    assert_true(pt_config_bool(pt_config_at(list, 2, NULL), &b));
    assert_false(b);
    assert_null(pt_config_at(list, 3, NULL));
}

static void test_filter_config__missing_keys_chain_to_null(void **state)
{
    const struct pt_config_value *root = pt_filter_config_root(&fc);
    const struct pt_config_value *v = pt_config_find(pt_config_find(root, "no"), "such");
    struct pt_str s;
    assert_null(v);
    assert_int_equal(pt_config_kind(v), PT_CONFIG_NULL);
    assert_false(pt_config_string(v, &s));
    assert_int_equal(pt_config_len(v), 0);
    assert_null(pt_config_at(v, 0, NULL));
    assert_null(pt_config_find(root, NULL));
}

static void test_filter_config__no_config_block_is_an_empty_map(void **state)
{
    struct pt_filter_config empty;
    pt_filter_config_init(&empty, NULL, PT_STR_NULL);
    const struct pt_config_value *root = pt_filter_config_root(&empty);
    assert_int_equal(pt_config_kind(root), PT_CONFIG_MAP);
    assert_int_equal(pt_config_len(root), 0);
    assert_null(pt_config_find(root, "x"));
    struct pt_str route = pt_filter_config_route(&empty);
    assert_int_equal(route.len, 0);
    assert_non_null(route.ptr);
}

static void test_filter_config__errorf_prefixes_context(void **state)
{
    struct pt_diag d;
    pt_diag_init(&d);
    char where[128];
    pt_conf_where(conf, pt_conf_config(conf)->filters[0], "config", where, sizeof(where));
    assert_string_equal(where, "t.yaml:4:7");
    pt_diag_set_context(&d, where);
    pt_diag_errorf(&d, "set.x-env", "must be %s", "lowercase");
    assert_string_equal(pt_diag_text(&d), "t.yaml:4:7: set.x-env: must be lowercase\n");
    pt_diag_fini(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_config__root_is_a_map_in_config_order),
        cmocka_unit_test(test_filter_config__route_name_is_reported),
        cmocka_unit_test(test_filter_config__scalars_read_by_kind),
        cmocka_unit_test(test_filter_config__wrong_kind_reads_fail),
        cmocka_unit_test(test_filter_config__nested_maps_and_lists),
        cmocka_unit_test(test_filter_config__missing_keys_chain_to_null),
        cmocka_unit_test(test_filter_config__no_config_block_is_an_empty_map),
        cmocka_unit_test(test_filter_config__errorf_prefixes_context),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
