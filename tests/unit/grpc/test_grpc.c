#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "grpc/grpc.h"
#include "portico/errors.h"

static uint64_t parse(const char *s)
{
    uint64_t ns = 0;
    assert_int_equal(pt_grpc_timeout_parse(pt_str_from_cstr(s), &ns), 0);
    return ns;
}

static void test_timeout__parses_every_unit(void **state)
{
    assert_true(parse("1H") == 3600ull * 1000000000ull);
    assert_true(parse("2M") == 120ull * 1000000000ull);
    assert_true(parse("3S") == 3000000000ull);
    assert_true(parse("250m") == 250000000ull);
    assert_true(parse("7u") == 7000ull);
    assert_true(parse("99999999n") == 99999999ull);
}

static void test_timeout__rejects_malformed(void **state)
{
    const char *bad[] = {"", "S", "1", "1x", "-1S", "123456789S", "1.5S", " 1S"};
    uint64_t ns;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pt_grpc_timeout_parse(pt_str_from_cstr(bad[i]), &ns), PT_ERR_BAD_REQUEST);
}

static void test_timeout__format_round_trips_without_shortening(void **state)
{
    uint64_t cases[] = {1, 999, 1000, 1500000, 250000000ull, 30000000000ull, 3600000000000ull * 30};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[16];
        size_t n = pt_grpc_timeout_format(cases[i], buf);
        assert_true(n >= 2 && n <= 9);
        uint64_t back;
        assert_int_equal(pt_grpc_timeout_parse((struct pt_str){buf, n}, &back), 0);
        /* Never less time than given, and never more than one unit extra. */
        assert_true(back >= cases[i]);
    }
}

static void test_message__percent_encodes_non_printable_and_percent(void **state)
{
    char out[64];
    const char in[] = "a b%\n\xc3\xa9~";
    size_t n = pt_grpc_message_encode((struct pt_str){in, sizeof(in) - 1}, out, sizeof(out));
    assert_int_equal(n, strlen("a b%25%0A%C3%A9~"));
    assert_memory_equal(out, "a b%25%0A%C3%A9~", n);
}

static void test_message__never_overflows(void **state)
{
    char out[5];
    size_t n = pt_grpc_message_encode(PT_STR("\n\n\n"), out, sizeof(out));
    assert_int_equal(n, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout__parses_every_unit),
        cmocka_unit_test(test_timeout__rejects_malformed),
        cmocka_unit_test(test_timeout__format_round_trips_without_shortening),
        cmocka_unit_test(test_message__percent_encodes_non_printable_and_percent),
        cmocka_unit_test(test_message__never_overflows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
