/*
 * The header name and value checks the built-in filters apply to their
 * configuration, including bytes YAML cannot deliver (NUL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filters/field.h"

#define S(lit) ((struct pt_str){(lit), sizeof(lit) - 1})

static void test_name__tokens_of_any_case_are_accepted(void **state)
{
    assert_null(pt_filters_name_problem(S("x-env")));
    assert_null(pt_filters_name_problem(S("X-Request-ID")));
    assert_null(pt_filters_name_problem(S("!#$%&'*+-.^_`|~09azAZ")));
}

static void test_name__empty_pseudo_and_non_token_names_are_refused(void **state)
{
    assert_non_null(strstr(pt_filters_name_problem(S("")), "empty"));
    assert_non_null(strstr(pt_filters_name_problem(S(":method")), "pseudo-header"));
    assert_non_null(strstr(pt_filters_name_problem(S("x env")), "token"));
    assert_non_null(strstr(pt_filters_name_problem(S("x:env")), "token"));
    assert_non_null(strstr(pt_filters_name_problem(S("x\0env")), "token"));
    assert_non_null(strstr(pt_filters_name_problem(S("x\xc3\xa9")), "token"));
}

static void test_name__managed_headers_are_refused_in_any_case(void **state)
{
    static const char *const managed[] = {
        "connection", "Keep-Alive", "TRANSFER-ENCODING", "upgrade",          "TE",
        "Trailer",    "host",       "Content-Length",    "proxy-connection",
    };
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++) {
        const char *why = pt_filters_name_problem(pt_str_from_cstr(managed[i]));
        if (!why || !strstr(why, "hop-by-hop"))
            fail_msg("%s was accepted", managed[i]);
    }
    /* Only exact names: longer names that start like them are fine. */
    assert_null(pt_filters_name_problem(S("content-length-hint")));
    assert_null(pt_filters_name_problem(S("tes")));
}

static void test_name__longer_than_256_bytes_is_refused(void **state)
{
    char name[PT_FILTERS_MAX_NAME + 1];
    memset(name, 'a', sizeof(name));
    assert_null(pt_filters_name_problem((struct pt_str){name, PT_FILTERS_MAX_NAME}));
    assert_non_null(pt_filters_name_problem((struct pt_str){name, sizeof(name)}));
}

static void test_value__accepts_empty_tabs_inside_and_non_ascii(void **state)
{
    char why[128];
    assert_true(pt_filters_value_ok(S(""), why, sizeof(why)));
    assert_true(pt_filters_value_ok(S("a\tb c"), why, sizeof(why)));
    assert_true(pt_filters_value_ok(S("caf\xc3\xa9"), why, sizeof(why)));
}

static void test_value__refuses_nul_cr_lf_ctl_and_del_with_their_offset(void **state)
{
    char why[128];
    assert_false(pt_filters_value_ok(S("a\0b"), why, sizeof(why)));
    assert_non_null(strstr(why, "byte 0x00 at offset 1"));
    assert_false(pt_filters_value_ok(S("ab\r"), why, sizeof(why)));
    assert_non_null(strstr(why, "byte 0x0d at offset 2"));
    assert_false(pt_filters_value_ok(S("\nb"), why, sizeof(why)));
    assert_non_null(strstr(why, "byte 0x0a at offset 0"));
    assert_false(pt_filters_value_ok(S("a\x1b"), why, sizeof(why)));
    assert_false(pt_filters_value_ok(S("a\x7f"), why, sizeof(why)));
}

static void test_value__refuses_surrounding_whitespace(void **state)
{
    char why[128];
    assert_false(pt_filters_value_ok(S(" a"), why, sizeof(why)));
    assert_false(pt_filters_value_ok(S("a\t"), why, sizeof(why)));
    assert_non_null(strstr(why, "start or end"));
}

static void test_value__refuses_more_than_8192_bytes(void **state)
{
    char why[128];
    char *v = malloc(PT_FILTERS_MAX_VALUE + 1);
    assert_non_null(v);
    memset(v, 'v', PT_FILTERS_MAX_VALUE + 1);
    assert_true(pt_filters_value_ok((struct pt_str){v, PT_FILTERS_MAX_VALUE}, why, sizeof(why)));
    assert_false(
        pt_filters_value_ok((struct pt_str){v, PT_FILTERS_MAX_VALUE + 1}, why, sizeof(why)));
    assert_non_null(strstr(why, "8192"));
    free(v);
}

static void test_lower_dup__copies_in_lower_case_with_a_nul(void **state)
{
    char *p = pt_filters_lower_dup(S("X-Request-ID"));
    assert_string_equal(p, "x-request-id");
    free(p);
}

static void test_printable__escapes_quotes_and_non_printable_bytes(void **state)
{
    char buf[64];
    assert_string_equal(pt_filters_printable(S("a\"b\\c\n\xff"), buf, sizeof(buf)),
                        "a\\\"b\\\\c\\x0a\\xff");
}

static void test_printable__truncates_with_an_ellipsis(void **state)
{
    char buf[10];
    assert_string_equal(pt_filters_printable(S("abcdefghijklmnop"), buf, sizeof(buf)), "abcdef...");
    char tiny[2];
    assert_string_equal(pt_filters_printable(S("abc"), tiny, sizeof(tiny)), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name__tokens_of_any_case_are_accepted),
        cmocka_unit_test(test_name__empty_pseudo_and_non_token_names_are_refused),
        cmocka_unit_test(test_name__managed_headers_are_refused_in_any_case),
        cmocka_unit_test(test_name__longer_than_256_bytes_is_refused),
        cmocka_unit_test(test_value__accepts_empty_tabs_inside_and_non_ascii),
        cmocka_unit_test(test_value__refuses_nul_cr_lf_ctl_and_del_with_their_offset),
        cmocka_unit_test(test_value__refuses_surrounding_whitespace),
        cmocka_unit_test(test_value__refuses_more_than_8192_bytes),
        cmocka_unit_test(test_lower_dup__copies_in_lower_case_with_a_nul),
        cmocka_unit_test(test_printable__escapes_quotes_and_non_printable_bytes),
        cmocka_unit_test(test_printable__truncates_with_an_ellipsis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
