/*
 * Path normalization and request-target splitting: each rule of the normal
 * form, the classic traversal spellings, and idempotence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/path.h"
#include "portico/errors.h"

static int normalize_opts(const char *in, char *out, size_t cap, bool keep)
{
    struct pt_path_opts opts = {.keep_duplicate_slashes = keep};
    size_t len = 0;
    int rc = pt_path_normalize(pt_str_from_cstr(in), out, cap, &len, &opts);
    if (rc == 0)
        assert_int_equal(len, strlen(out));
    return rc;
}

/* Normalize with default options and check that normalizing the result
 * again changes nothing. */
static void check(const char *in, const char *want)
{
    char out[1024], again[1024];
    int rc = normalize_opts(in, out, sizeof(out), false);
    if (rc != 0)
        fail_msg("normalize(\"%s\") failed with %d, want \"%s\"", in, rc, want);
    if (strcmp(out, want) != 0)
        fail_msg("normalize(\"%s\") = \"%s\", want \"%s\"", in, out, want);
    assert_int_equal(normalize_opts(out, again, sizeof(again), false), 0);
    assert_string_equal(again, out);
}

static void check_keep(const char *in, const char *want)
{
    char out[1024], again[1024];
    assert_int_equal(normalize_opts(in, out, sizeof(out), true), 0);
    if (strcmp(out, want) != 0)
        fail_msg("normalize_keep(\"%s\") = \"%s\", want \"%s\"", in, out, want);
    assert_int_equal(normalize_opts(out, again, sizeof(again), true), 0);
    assert_string_equal(again, out);
}

static void check_bad(const char *in)
{
    char out[1024];
    int rc = normalize_opts(in, out, sizeof(out), false);
    if (rc != PT_ERR_BAD_REQUEST)
        fail_msg("normalize(\"%s\") = %d, want PT_ERR_BAD_REQUEST", in, rc);
}

static void test_path_normalize__plain_paths_unchanged(void **state)
{
    check("/", "/");
    check("/a", "/a");
    check("/api/v1/users/42", "/api/v1/users/42");
    check("/a-b_c.d~e/f;g=h,i!$&'()*+:@", "/a-b_c.d~e/f;g=h,i!$&'()*+:@");
}

static void test_path_normalize__asterisk_passes_through(void **state)
{
    check("*", "*");
    check_bad("**");
}

static void test_path_normalize__must_start_with_slash(void **state)
{
    check_bad("");
    check_bad("a/b");
    check_bad(".");
    check_bad("%2Fa");
}

static void test_path_normalize__unreserved_escapes_decoded(void **state)
{
    check("/%41%62%63", "/Abc");
    check("/%7euser", "/~user");
    check("/a%2Db%5fc%2E", "/a-b_c.");
    check("/%30%39", "/09");
}

static void test_path_normalize__reserved_escapes_kept_uppercase(void **state)
{
    check("/a%2fb", "/a%2Fb");
    check("/a%2Fb", "/a%2Fb");
    check("/%3a%3A%40%25", "/%3A%3A%40%25");
    check("/%e2%82%ac", "/%E2%82%AC");
}

static void test_path_normalize__encoded_slash_is_not_a_separator(void **state)
{
    check("/a/..%2fb", "/a/..%2Fb");
    check("/a/%2e%2e%2fb", "/a/..%2Fb");
    check("/%2F%2F/etc", "/%2F%2F/etc");
}

static void test_path_normalize__nul_escape_stays_encoded(void **state)
{
    check("/a%00b", "/a%00b");
    check("/%00", "/%00");
}

static void test_path_normalize__malformed_percent_rejected(void **state)
{
    check_bad("/%");
    check_bad("/a%2");
    check_bad("/a%zz");
    check_bad("/a%g0");
    check_bad("/a%0g");
    check_bad("/%%41");
}

static void test_path_normalize__raw_high_bytes_encoded(void **state)
{
    check("/caf\xc3\xa9", "/caf%C3%A9");
    check("/\xe2\x82\xac/x", "/%E2%82%AC/x");
    check("/\xff", "/%FF");
}

static void test_path_normalize__backslash_and_unsafe_ascii_encoded(void **state)
{
    check("/a\\..\\b", "/a%5C..%5Cb");
    check("/\\", "/%5C");
    check("/{x}|\"<>^`", "/%7Bx%7D%7C%22%3C%3E%5E%60");
    check("/a?b", "/a%3Fb");
}

static void test_path_normalize__controls_space_del_hash_rejected(void **state)
{
    check_bad("/a b");
    check_bad("/a\tb");
    check_bad("/a\rb");
    check_bad("/a\nb");
    check_bad("/a\x01");
    check_bad("/a\x7f");
    check_bad("/a#frag");
    char nul[] = {'/', 'a', '\0', 'b'};
    char out[32];
    size_t len;
    assert_int_equal(
        pt_path_normalize((struct pt_str){nul, sizeof(nul)}, out, sizeof(out), &len, NULL),
        PT_ERR_BAD_REQUEST);
}

static void test_path_normalize__dot_segments_removed(void **state)
{
    check("/a/./b", "/a/b");
    check("/a/../b", "/b");
    check("/a/b/../../c", "/c");
    check("/a/b/c/./../../g", "/a/g");
    check("/mid/content=5/../6", "/mid/6");
    check("/a/.", "/a/");
    check("/a/..", "/");
    check("/a/b/..", "/a/");
    check("/.", "/");
    check("/..", "/");
    check("/./", "/");
    check("/a/.b/..c/...", "/a/.b/..c/...");
}

static void test_path_normalize__dot_segments_clamp_at_root(void **state)
{
    check("/../../etc/passwd", "/etc/passwd");
    check("/a/../../../b", "/b");
    check("/../", "/");
}

static void test_path_normalize__encoded_dot_segments_removed(void **state)
{
    check("/a/%2e%2e/b", "/b");
    check("/a/%2E%2E/b", "/b");
    check("/a/.%2e/b", "/b");
    check("/a/%2e/b", "/a/b");
    check("/%2e%2e/%2e%2e/etc", "/etc");
}

static void test_path_normalize__duplicate_slashes_merged(void **state)
{
    check("//etc", "/etc");
    check("//", "/");
    check("///a///b///", "/a/b/");
    check("/a//../b", "/b");
}

static void test_path_normalize__duplicate_slashes_kept_when_asked(void **state)
{
    check_keep("//etc", "//etc");
    check_keep("/a//b", "/a//b");
    check_keep("/a//", "/a//");
    check_keep("/a//../b", "/a/b");
    check_keep("//", "//");
}

static void test_path_normalize__trailing_slash_preserved(void **state)
{
    check("/a/", "/a/");
    check("/a/b/", "/a/b/");
    check("/a/./", "/a/");
}

static void test_path_normalize__small_buffer_is_a_limit_not_an_overflow(void **state)
{
    char out[8];
    size_t len;
    assert_int_equal(pt_path_normalize(PT_STR("/\xff\xff\xff"), out, sizeof(out), &len, NULL),
                     PT_ERR_LIMIT);
    assert_int_equal(pt_path_normalize(PT_STR("/abcdefg"), out, sizeof(out), &len, NULL),
                     PT_ERR_LIMIT);
    assert_int_equal(pt_path_normalize(PT_STR("/abcdef"), out, sizeof(out), &len, NULL), 0);
    assert_string_equal(out, "/abcdef");
    assert_int_equal(pt_path_normalize(PT_STR("*"), out, 1, &len, NULL), PT_ERR_LIMIT);
}

static void test_path_normalize__documented_capacity_always_suffices(void **state)
{
    const char *inputs[] = {"/", "/a", "//", "/\xff", "/\xff/\xff/", "/%41", "/./", "/a/.."};
    for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
        size_t n = strlen(inputs[k]);
        char out[64];
        size_t len;
        struct pt_path_opts keep = {true};
        assert_int_equal(pt_path_normalize(pt_str_from_cstr(inputs[k]), out,
                                           PT_PATH_NORMALIZE_CAP(n), &len, &keep),
                         0);
        assert_int_equal(pt_path_normalize(pt_str_from_cstr(inputs[k]), out,
                                           PT_PATH_NORMALIZE_CAP(n), &len, NULL),
                         0);
    }
}

/* Random byte strings from a small alphabet full of separators, dots and
 * escapes: whatever is accepted must normalize to a fixed point. */
static void test_path_normalize__random_inputs_are_idempotent(void **state)
{
    static const char alphabet[] = "/./%2e%2E%2f%41..//a\\\xc3\xa9%%g";
    uint32_t seed = 12345;
    for (int iter = 0; iter < 200000; iter++) {
        char in[40];
        size_t n = 1;
        in[0] = '/';
        seed = seed * 1103515245u + 12345u;
        size_t want = 1 + (seed >> 16) % 30;
        while (n < want) {
            seed = seed * 1103515245u + 12345u;
            in[n++] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        for (int keep = 0; keep <= 1; keep++) {
            struct pt_path_opts opts = {.keep_duplicate_slashes = keep};
            char out[PT_PATH_NORMALIZE_CAP(40)], again[PT_PATH_NORMALIZE_CAP(3 * 40)];
            size_t len, len2;
            if (pt_path_normalize((struct pt_str){in, n}, out, sizeof(out), &len, &opts) != 0)
                continue;
            assert_int_equal(
                pt_path_normalize((struct pt_str){out, len}, again, sizeof(again), &len2, &opts),
                0);
            assert_int_equal(len, len2);
            assert_memory_equal(out, again, len);
            if (!keep)
                assert_null(strstr(out, "//"));
            assert_null(strstr(out, "/./"));
            assert_null(strstr(out, "/../"));
        }
    }
}

static void parse_ok(const char *target, const char *auth, const char *path, const char *query)
{
    struct pt_str a, p, q;
    int rc = pt_http_target_parse(pt_str_from_cstr(target), &a, &p, &q);
    if (rc != 0)
        fail_msg("target_parse(\"%s\") = %d", target, rc);
    assert_true(pt_str_eq(a, pt_str_from_cstr(auth)));
    assert_true(pt_str_eq(p, pt_str_from_cstr(path)));
    if (query) {
        assert_non_null(q.ptr);
        assert_true(pt_str_eq(q, pt_str_from_cstr(query)));
    } else {
        assert_null(q.ptr);
        assert_int_equal(q.len, 0);
    }
}

static void parse_bad(const char *target)
{
    struct pt_str a, p, q;
    int rc = pt_http_target_parse(pt_str_from_cstr(target), &a, &p, &q);
    if (rc != PT_ERR_BAD_REQUEST)
        fail_msg("target_parse(\"%s\") = %d, want PT_ERR_BAD_REQUEST", target, rc);
}

static void test_target_parse__origin_form_splits_query(void **state)
{
    parse_ok("/a/b", "", "/a/b", NULL);
    parse_ok("/a/b?x=1&y", "", "/a/b", "x=1&y");
    parse_ok("/a?", "", "/a", "");
    parse_ok("/a?b?c", "", "/a", "b?c");
    parse_ok("/", "", "/", NULL);
}

static void test_target_parse__absolute_form_returns_authority(void **state)
{
    parse_ok("http://example.com/a?q", "example.com", "/a", "q");
    parse_ok("HTTPS://Example.com:8443/a/b", "Example.com:8443", "/a/b", NULL);
    parse_ok("http://[::1]:8080/x", "[::1]:8080", "/x", NULL);
    parse_ok("http://example.com", "example.com", "/", NULL);
    parse_ok("http://example.com?q=1", "example.com", "/", "q=1");
}

static void test_target_parse__asterisk_form(void **state)
{
    parse_ok("*", "", "*", NULL);
}

static void test_target_parse__bad_targets_rejected(void **state)
{
    parse_bad("");
    parse_bad("a/b");
    parse_bad("ftp://example.com/");
    parse_bad("http:///a");
    parse_bad("http://user@example.com/");
    parse_bad("http://exa mple.com/");
    parse_bad("/a b");
    parse_bad("/a#frag");
    parse_bad("/a?x#frag");
    parse_bad("/a\x7f");
    parse_bad("/a?\r\n");
    parse_bad("example.com:443");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_normalize__plain_paths_unchanged),
        cmocka_unit_test(test_path_normalize__asterisk_passes_through),
        cmocka_unit_test(test_path_normalize__must_start_with_slash),
        cmocka_unit_test(test_path_normalize__unreserved_escapes_decoded),
        cmocka_unit_test(test_path_normalize__reserved_escapes_kept_uppercase),
        cmocka_unit_test(test_path_normalize__encoded_slash_is_not_a_separator),
        cmocka_unit_test(test_path_normalize__nul_escape_stays_encoded),
        cmocka_unit_test(test_path_normalize__malformed_percent_rejected),
        cmocka_unit_test(test_path_normalize__raw_high_bytes_encoded),
        cmocka_unit_test(test_path_normalize__backslash_and_unsafe_ascii_encoded),
        cmocka_unit_test(test_path_normalize__controls_space_del_hash_rejected),
        cmocka_unit_test(test_path_normalize__dot_segments_removed),
        cmocka_unit_test(test_path_normalize__dot_segments_clamp_at_root),
        cmocka_unit_test(test_path_normalize__encoded_dot_segments_removed),
        cmocka_unit_test(test_path_normalize__duplicate_slashes_merged),
        cmocka_unit_test(test_path_normalize__duplicate_slashes_kept_when_asked),
        cmocka_unit_test(test_path_normalize__trailing_slash_preserved),
        cmocka_unit_test(test_path_normalize__small_buffer_is_a_limit_not_an_overflow),
        cmocka_unit_test(test_path_normalize__documented_capacity_always_suffices),
        cmocka_unit_test(test_path_normalize__random_inputs_are_idempotent),
        cmocka_unit_test(test_target_parse__origin_form_splits_query),
        cmocka_unit_test(test_target_parse__absolute_form_returns_authority),
        cmocka_unit_test(test_target_parse__asterisk_form),
        cmocka_unit_test(test_target_parse__bad_targets_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
