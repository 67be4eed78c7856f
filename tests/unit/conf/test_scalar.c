/*
 * Scalar conversions behind the loader: integer syntax and ranges, the
 * YAML 1.2 core number/bool/null spellings, base64, and the edit distance
 * used for "did you mean" suggestions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf_int.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static void test_scalar__unsigned_accepts_digits_and_leading_zeros(void **state)
{
    uint64_t v;
    assert_int_equal(pt_conf_parse_uint(S("0"), 10, &v), PT_CONF_NUM_OK);
    assert_int_equal(v, 0);
    assert_int_equal(pt_conf_parse_uint(S("000000000000000000000042"), 100, &v), PT_CONF_NUM_OK);
    assert_int_equal(v, 42);
    assert_int_equal(pt_conf_parse_uint(S("+7"), 10, &v), PT_CONF_NUM_OK);
    assert_int_equal(v, 7);
    assert_int_equal(pt_conf_parse_uint(S("18446744073709551615"), UINT64_MAX, &v), PT_CONF_NUM_OK);
    assert_true(v == UINT64_MAX);
}

static void test_scalar__unsigned_rejects_syntax_and_range(void **state)
{
    uint64_t v;
    assert_int_equal(pt_conf_parse_uint(S(""), 10, &v), PT_CONF_NUM_SYNTAX);
    assert_int_equal(pt_conf_parse_uint(S("-"), 10, &v), PT_CONF_NUM_SYNTAX);
    assert_int_equal(pt_conf_parse_uint(S("1 "), 10, &v), PT_CONF_NUM_SYNTAX);
    assert_int_equal(pt_conf_parse_uint(S("0x10"), 100, &v), PT_CONF_NUM_SYNTAX);
    assert_int_equal(pt_conf_parse_uint(S("1e3"), 10000, &v), PT_CONF_NUM_SYNTAX);
    assert_int_equal(pt_conf_parse_uint(S("11"), 10, &v), PT_CONF_NUM_RANGE);
    assert_int_equal(pt_conf_parse_uint(S("-1"), 10, &v), PT_CONF_NUM_RANGE);
    assert_int_equal(pt_conf_parse_uint(S("18446744073709551616"), UINT64_MAX, &v),
                     PT_CONF_NUM_RANGE);
    assert_int_equal(pt_conf_parse_uint(S("-0"), 10, &v), PT_CONF_NUM_OK);
}

static void test_scalar__signed_covers_both_extremes(void **state)
{
    int64_t v;
    assert_int_equal(pt_conf_parse_int(S("-9223372036854775808"), INT64_MIN, INT64_MAX, &v),
                     PT_CONF_NUM_OK);
    assert_true(v == INT64_MIN);
    assert_int_equal(pt_conf_parse_int(S("9223372036854775807"), INT64_MIN, INT64_MAX, &v),
                     PT_CONF_NUM_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(pt_conf_parse_int(S("-9223372036854775809"), INT64_MIN, INT64_MAX, &v),
                     PT_CONF_NUM_RANGE);
    assert_int_equal(pt_conf_parse_int(S("9223372036854775808"), INT64_MIN, INT64_MAX, &v),
                     PT_CONF_NUM_RANGE);
    assert_int_equal(pt_conf_parse_int(S("-5"), -4, 4, &v), PT_CONF_NUM_RANGE);
    assert_int_equal(pt_conf_parse_int(S("--5"), -10, 10, &v), PT_CONF_NUM_SYNTAX);
}

static void test_scalar__numbers_follow_the_core_schema(void **state)
{
    const char *yes[] = {"1", "-1", "+1", "1.5", ".5", "1.", "1e3", "-2.5E-3", "0.0"};
    const char *no[] = {"",     ".",   "e3",    "1e", "1e+",   "0x10", "inf",
                        ".inf", "nan", "1_000", " 1", "1.2.3", "--1"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!pt_conf_looks_numeric(yes[i], strlen(yes[i])))
            fail_msg("%s should be numeric", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (pt_conf_looks_numeric(no[i], strlen(no[i])))
            fail_msg("%s should not be numeric", no[i]);
    double d;
    assert_int_equal(pt_conf_parse_double(S("-2.5e-3"), &d), PT_CONF_NUM_OK);
    assert_true(d == -0.0025);
    assert_int_equal(pt_conf_parse_double(S("1e400"), &d), PT_CONF_NUM_RANGE);
    assert_int_equal(pt_conf_parse_double(S("nan"), &d), PT_CONF_NUM_SYNTAX);
}

static void test_scalar__long_numbers_parse(void **state)
{
    char buf[300];
    memset(buf, '0', sizeof(buf));
    buf[0] = '0';
    buf[1] = '.';
    buf[sizeof(buf) - 1] = '1';
    double d = 1;
    assert_int_equal(pt_conf_parse_double(buf, sizeof(buf), &d), PT_CONF_NUM_OK);
    assert_true(d > 0 && d < 1e-290);
}

static void test_scalar__booleans_and_nulls_are_core_spellings_only(void **state)
{
    bool b;
    assert_true(pt_conf_parse_bool(S("true"), &b) && b);
    assert_true(pt_conf_parse_bool(S("TRUE"), &b) && b);
    assert_true(pt_conf_parse_bool(S("False"), &b) && !b);
    assert_false(pt_conf_parse_bool(S("yes"), &b));
    assert_false(pt_conf_parse_bool(S("on"), &b));
    assert_false(pt_conf_parse_bool(S("tRUE"), &b));
    assert_true(pt_conf_is_null_word(S("")));
    assert_true(pt_conf_is_null_word(S("~")));
    assert_true(pt_conf_is_null_word(S("Null")));
    assert_false(pt_conf_is_null_word(S("nil")));
    assert_false(pt_conf_is_null_word(S("none")));
}

static void check_b64(const char *in, const char *want, size_t want_len)
{
    uint8_t *out = NULL;
    size_t len = 0;
    if (pt_conf_base64_decode(in, strlen(in), &out, &len) != 0)
        fail_msg("base64 \"%s\" rejected", in);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, want_len);
    free(out);
}

static void test_scalar__base64_standard_and_url_safe(void **state)
{
    check_b64("", "", 0);
    check_b64("aGVsbG8=", "hello", 5);
    check_b64("aGVsbG8", "hello", 5);
    check_b64("aGk=", "hi", 2);
    check_b64("-_8=", "\xfb\xff", 2);
    check_b64("+/8=", "\xfb\xff", 2);
    uint8_t *out;
    size_t len;
    assert_int_not_equal(pt_conf_base64_decode(S("a"), &out, &len), 0);
    assert_int_not_equal(pt_conf_base64_decode(S("aGk=="), &out, &len), 0);
    assert_int_not_equal(pt_conf_base64_decode(S("aG k"), &out, &len), 0);
    assert_int_not_equal(pt_conf_base64_decode(S("aGVsbG8=x"), &out, &len), 0);
}

static void test_scalar__edit_distance_is_case_insensitive_and_capped(void **state)
{
    assert_int_equal(pt_conf_edit_distance(S("timeout_ms"), S("timeout_ms"), 3), 0);
    assert_int_equal(pt_conf_edit_distance(S("timout_ms"), S("timeout_ms"), 3), 1);
    assert_int_equal(pt_conf_edit_distance(S("TIMEOUT_MS"), S("timeout_ms"), 3), 0);
    assert_int_equal(pt_conf_edit_distance(S("path-prefix"), S("path_prefix"), 3), 1);
    assert_int_equal(pt_conf_edit_distance(S("abc"), S("xyz"), 2), 3);
    assert_int_equal(pt_conf_edit_distance(S("a"), S("abcdefgh"), 3), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar__unsigned_accepts_digits_and_leading_zeros),
        cmocka_unit_test(test_scalar__unsigned_rejects_syntax_and_range),
        cmocka_unit_test(test_scalar__signed_covers_both_extremes),
        cmocka_unit_test(test_scalar__numbers_follow_the_core_schema),
        cmocka_unit_test(test_scalar__long_numbers_parse),
        cmocka_unit_test(test_scalar__booleans_and_nulls_are_core_spellings_only),
        cmocka_unit_test(test_scalar__base64_standard_and_url_safe),
        cmocka_unit_test(test_scalar__edit_distance_is_case_insensitive_and_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
