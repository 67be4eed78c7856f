/*
 * The pure parts of choosing a service: the split hash and its sides, and
 * reading an API version from a path, an Accept value or a query.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "conf/snapshot.h"
#include "portico/errors.h"
#include "proxy/select.h"

static struct pt_str S(const char *s) {
    return pt_str_from_cstr(s);
}

static void
assert_str(struct pt_str got, const char *want)
{
    if (got.len != strlen(want) || memcmp(got.ptr, want, got.len) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)got.len, got.ptr, want);
}

/* --- split hash and sides -------------------------------------------------- */

#define PIN_EMPTY 0xf52a15e9a9b5e89bull
#define PIN_USER1 0xc499b5f8a721df58ull

static void test_split_hash__is_fixed_across_builds(void **state)
{
    /* Pinned values (computed independently, in Python): a change here
     * moves every sticky client to another side, so it must be deliberate. */
    assert_true(pt_split_hash(S("")) == PIN_EMPTY);
    assert_true(pt_split_hash(S("user-1")) == PIN_USER1);
    assert_true(pt_split_hash((struct pt_str){"user-1xyz", 6}) == PIN_USER1);
    assert_true(pt_split_hash(S("user-2")) != PIN_USER1);
}

static void test_split_hash__pinned_values(void **state)
{
    uint64_t h = pt_split_hash(S("alice"));
    /* FNV-1a 64 of "alice" then the splitmix64 finish, computed by hand
     * below so the test states the algorithm, not a copy of the code. */
    uint64_t f = 0xcbf29ce484222325ull;
    for (const char *p = "alice"; *p; p++) {
        f ^= (unsigned char)*p;
        f *= 0x100000001b3ull;
    }
    f = (f ^ (f >> 30)) * 0xbf58476d1ce4e5b9ull;
    f = (f ^ (f >> 27)) * 0x94d049bb133111ebull;
    f ^= f >> 31;
    assert_true(h == f);
}

static void test_split_point__stays_below_total_and_spreads(void **state)
{
    assert_int_equal(pt_split_point(0, 100), 0);
    assert_int_equal(pt_split_point(UINT64_MAX, 100), 99);
    assert_int_equal(pt_split_point(UINT64_MAX / 2 + 1, 100), 50);
    assert_int_equal(pt_split_point(12345, 1), 0);
}

static void test_split_side_of__cumulative_ranges(void **state)
{
    struct pt_split_side s[3] = {{NULL, 90}, {NULL, 0}, {NULL, 10}};
    assert_int_equal(pt_split_side_of(s, 3, 0), 0);
    assert_int_equal(pt_split_side_of(s, 3, 89), 0);
    assert_int_equal(pt_split_side_of(s, 3, 90), 2); /* weight 0 holds no point */
    assert_int_equal(pt_split_side_of(s, 3, 99), 2);
    /* Out of range (not produced by pt_split_point): a weighted side. */
    assert_int_equal(pt_split_side_of(s, 3, 1000), 2);
}

static void test_split__hashed_keys_share_by_weight(void **state)
{
    struct pt_split_side s[2] = {{NULL, 90}, {NULL, 10}};
    unsigned n[2] = {0, 0};
    char key[32];
    for (int i = 0; i < 20000; i++) {
        int len = snprintf(key, sizeof(key), "client-%d", i);
        uint64_t p = pt_split_point(pt_split_hash((struct pt_str){key, (size_t)len}), 100);
        n[pt_split_side_of(s, 2, p)]++;
    }
    /* 10% of 20000 = 2000, sd ~ 42: 5 sd either way. */
    assert_in_range(n[1], 1790, 2210);
}

static void test_split__same_key_same_side(void **state)
{
    struct pt_split_side s[2] = {{NULL, 50}, {NULL, 50}};
    uint64_t p1 = pt_split_point(pt_split_hash(S("203.0.113.9")), 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(
            pt_split_side_of(s, 2, pt_split_point(pt_split_hash(S("203.0.113.9")), 100)),
            pt_split_side_of(s, 2, p1));
}

/* --- version in the path ----------------------------------------------------- */

static bool path_version(const char *path, uint32_t skip, struct pt_str *v, size_t *a, size_t *b)
{
    return pt_version_in_path(S(path), skip, v, a, b);
}

static void test_version_path__after_the_literal_prefix(void **state)
{
    struct pt_str v;
    size_t a, b;
    assert_true(path_version("/api/v2/users", 1, &v, &a, &b));
    assert_str(v, "2");
    assert_int_equal(a, 4);
    assert_int_equal(b, 7);
    assert_true(path_version("/v10?x=1", 0, &v, &a, &b));
    assert_str(v, "10");
    assert_int_equal(b, 4);
    assert_true(path_version("/api/v1.1/", 1, &v, &a, &b));
    assert_str(v, "1.1");
    assert_true(path_version("/a/b/v3", 2, &v, &a, &b));
    assert_str(v, "3");
}

static void test_version_path__edge_cases(void **state)
{
    struct pt_str v;
    size_t a, b;
    assert_false(path_version("/api/v", 1, &v, &a, &b));      /* "v" alone */
    assert_false(path_version("/api/values", 1, &v, &a, &b)); /* not v<digit> */
    assert_false(path_version("/api/V2", 1, &v, &a, &b));     /* case-sensitive */
    assert_false(path_version("/api", 1, &v, &a, &b));        /* nothing after */
    assert_false(path_version("/api/", 1, &v, &a, &b));       /* empty segment */
    assert_false(path_version("", 0, &v, &a, &b));            /* empty path */
    assert_false(path_version("/api/v2%20x", 1, &v, &a, &b)); /* odd characters */
    assert_false(path_version("/v2/api", 1, &v, &a, &b));     /* wrong place */
    assert_false(path_version("/api?v2", 1, &v, &a, &b));     /* the query is not the path */
    /* "v2x": a version segment asking for version "2x" (unknown -> 400). */
    assert_true(path_version("/api/v2x/users", 1, &v, &a, &b));
    assert_str(v, "2x");
    char longseg[128] = "/v1";
    memset(longseg + 3, '0', 70);
    longseg[73] = '\0';
    assert_false(path_version(longseg, 0, &v, &a, &b)); /* longer than PT_VERSION_MAX */
}

/* --- version in Accept ------------------------------------------------------- */

static bool accept_version(const char *accept, struct pt_str *v)
{
    return pt_version_in_accept(S(accept), v);
}

static void test_version_accept__media_type_parameter(void **state)
{
    struct pt_str v;
    assert_true(accept_version("application/vnd.api+json; version=2", &v));
    assert_str(v, "2");
    assert_true(accept_version("application/json;version=3", &v));
    assert_str(v, "3");
    assert_true(accept_version("text/html, application/vnd.api+json; q=0.9; Version=\"1.1\"", &v));
    assert_str(v, "1.1");
    assert_true(accept_version("a/b; version = 4 , c/d; version=5", &v));
    assert_str(v, "4");
    assert_true(accept_version("a/b, c/d;version=5", &v));
    assert_str(v, "5");
}

static void test_version_accept__weird_values(void **state)
{
    struct pt_str v;
    assert_false(accept_version("", &v));
    assert_false(accept_version("application/json", &v));
    assert_false(accept_version("*/*;q=0.8", &v));
    assert_false(accept_version("version=2", &v)); /* a media type, not a parameter */
    assert_false(accept_version("a/b; version=", &v));
    assert_false(accept_version("a/b; version=\"", &v));      /* unterminated */
    assert_false(accept_version("a/b; version=\"2", &v));     /* unterminated */
    assert_false(accept_version("a/b; version=\"\\2\"", &v)); /* escapes refused */
    assert_false(accept_version("a/b; versions=2", &v));
    assert_false(accept_version("a/b; xversion=2", &v));
    assert_false(accept_version(";;;,,,===", &v));
    assert_true(accept_version("a/b; x=\"a,b;version=9\"; version=2", &v));
    assert_str(v, "2"); /* a quoted string hides its separators */
}

/* --- version in the query ---------------------------------------------------- */

static int query_version(const char *q, const char *name, char *buf, size_t cap, struct pt_str *v)
{
    return pt_version_in_query(S(q), S(name), buf, cap, v);
}

static void test_version_query__percent_decoded(void **state)
{
    char buf[PT_VERSION_MAX];
    struct pt_str v;
    assert_int_equal(query_version("version=2", "version", buf, sizeof(buf), &v), 1);
    assert_str(v, "2");
    assert_int_equal(query_version("a=1&version=%32%2e0&b", "version", buf, sizeof(buf), &v), 1);
    assert_str(v, "2.0");
    assert_int_equal(query_version("a=1&api=%7e1", "api", buf, sizeof(buf), &v), 1);
    assert_str(v, "~1"); /* decoded; not a listed version, so a 400 later */
    assert_int_equal(query_version("version=1&version=2", "version", buf, sizeof(buf), &v), 1);
    assert_str(v, "1"); /* the first one */
    assert_int_equal(query_version("%76ersion=2", "version", buf, sizeof(buf), &v), 1);
    assert_str(v, "2"); /* names compare decoded, like route query matches */
    assert_int_equal(query_version("%7version=1&version=3", "version", buf, sizeof(buf), &v), 1);
    assert_str(v, "3"); /* a name with a bad escape is no match */
}

static void test_version_query__absent_empty_and_invalid(void **state)
{
    char buf[8];
    struct pt_str v;
    assert_int_equal(query_version("", "version", buf, sizeof(buf), &v), 0);
    assert_int_equal(query_version("versions=2", "version", buf, sizeof(buf), &v), 0);
    assert_int_equal(query_version("xversion=2", "version", buf, sizeof(buf), &v), 0);
    assert_int_equal(query_version("version", "version", buf, sizeof(buf), &v), 0);
    assert_int_equal(query_version("version=", "version", buf, sizeof(buf), &v), 0);
    assert_int_equal(query_version("version=%zz", "version", buf, sizeof(buf), &v), PT_ERR_INVALID);
    assert_int_equal(query_version("version=%2", "version", buf, sizeof(buf), &v), PT_ERR_INVALID);
    assert_int_equal(query_version("version=%", "version", buf, sizeof(buf), &v), PT_ERR_INVALID);
    assert_int_equal(query_version("version=123456789", "version", buf, sizeof(buf), &v),
                     PT_ERR_INVALID); /* longer than the buffer */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_hash__is_fixed_across_builds),
        cmocka_unit_test(test_split_hash__pinned_values),
        cmocka_unit_test(test_split_point__stays_below_total_and_spreads),
        cmocka_unit_test(test_split_side_of__cumulative_ranges),
        cmocka_unit_test(test_split__hashed_keys_share_by_weight),
        cmocka_unit_test(test_split__same_key_same_side),
        cmocka_unit_test(test_version_path__after_the_literal_prefix),
        cmocka_unit_test(test_version_path__edge_cases),
        cmocka_unit_test(test_version_accept__media_type_parameter),
        cmocka_unit_test(test_version_accept__weird_values),
        cmocka_unit_test(test_version_query__percent_decoded),
        cmocka_unit_test(test_version_query__absent_empty_and_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
