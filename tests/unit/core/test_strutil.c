/*
 * Tests for core/strutil: decimal formatting and parsing round trips.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/strutil.h"

static void test_strutil__u64_format_matches_printf(void **st)
{
    (void)st;
    uint64_t v[] = {
        0, 1, 9, 10, 99, 100, 4294967295ull, 4294967296ull, 10000000000000000000ull, UINT64_MAX};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]) + 1000; i++) {
        uint64_t n =
            i < sizeof(v) / sizeof(v[0]) ? v[i] : (x = x * 6364136223846793005ull + 1) >> (i % 64);
        char a[24], b[24];
        size_t la = pt_u64_format(n, a);
        int lb = snprintf(b, sizeof(b), "%" PRIu64, n);
        assert_int_equal(la, (size_t)lb);
        assert_memory_equal(a, b, la);
        uint64_t back = 0;
        assert_int_equal(pt_str_to_u64((struct pt_str){a, la}, &back), 0);
        assert_true(back == n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strutil__u64_format_matches_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
