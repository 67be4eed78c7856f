/*
 * Query parameters as field bindings: nested and repeated fields, empty
 * values, '+' and percent-decoding, invalid input, and the fields the path
 * or the body already cover.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_httprule_fixture.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct rule rules[] = {
    {"s.S/List", "GET", "/v1/{parent=shelves/*}/books", NULL, NULL},
    {"s.S/Get", "GET", "/v1/{book.name}", NULL, NULL},
    {"s.S/Create", "POST", "/v1/{parent}/books", "book", NULL},
    {"s.S/Update", "PATCH", "/v1/{name}", "*", NULL},
    {"s.S/Plain", "GET", "/plain", NULL, NULL},
};

struct qfix {
    struct fixture f;
    struct pt_httprule_table *t;
};

static int setup(void **state)
{
    static struct qfix q;
    memset(&q, 0, sizeof(q));
    q.t = table_ok(rules, N(rules));
    *state = &q;
    return 0;
}

static int teardown(void **state)
{
    struct qfix *q = *state;
    pt_arena_fini(&q->f.arena);
    pt_httprule_table_free(q->t);
    return 0;
}

static int plain(struct qfix *q, const char *query)
{
    return match3(&q->f, q->t, "GET", "/plain", query);
}

static void test_query__nested_and_repeated(void **state)
{
    struct qfix *q = *state;
    assert_int_equal(plain(q, "a.b.c=1&x=1&x=2&y=3&x=4"), 0);
    ASSERT_PARAMS(&q->f.m, "a.b.c=1", "x=1", "x=2", "y=3", "x=4");
    assert_false(q->f.m.params[0].from_path);
    assert_int_equal(q->f.m.params[0].field.nseg, 3);
    assert_pt_str(q->f.m.params[0].field.seg[1], "b");
}

static void test_query__empty_values_and_pieces(void **state)
{
    struct qfix *q = *state;
    assert_int_equal(plain(q, "a=&b&&c=1&"), 0);
    ASSERT_PARAMS(&q->f.m, "a=", "b=", "c=1");
    assert_int_equal(plain(q, ""), 0);
    ASSERT_NO_PARAMS(&q->f.m);
    assert_int_equal(plain(q, "&&&"), 0);
    ASSERT_NO_PARAMS(&q->f.m);
    /* only the first '=' splits */
    assert_int_equal(plain(q, "a=b=c"), 0);
    ASSERT_PARAMS(&q->f.m, "a=b=c");
}

static void test_query__form_decoding(void **state)
{
    struct qfix *q = *state;
    assert_int_equal(plain(q, "q=hello+world&p=a%2Bb&r=%2F%26%3D%25&s=caf%C3%A9"), 0);
    ASSERT_PARAMS(&q->f.m, "q=hello world", "p=a+b", "r=/&=%", "s=caf\xc3\xa9");
    /* names are decoded too */
    assert_int_equal(plain(q, "a%2Eb=1&%61=2"), 0);
    ASSERT_PARAMS(&q->f.m, "a.b=1", "a=2");
    /* %252F is "%2F" */
    assert_int_equal(plain(q, "x=%252F"), 0);
    ASSERT_PARAMS(&q->f.m, "x=%2F");
}

static void test_query__invalid_input_rejected(void **state)
{
    struct qfix *q = *state;
    const char *bad_escape[] = {"a=%GZ", "a=%4", "a=%", "%zz=1", "a=1&b=%g0"};
    for (size_t i = 0; i < N(bad_escape); i++) {
        if (plain(q, bad_escape[i]) != PT_ERR_INVALID)
            fail_msg("%s accepted", bad_escape[i]);
        assert_string_equal(q->f.m.reason, "invalid percent-encoding in the query");
    }
    const char *bad_name[] = {"a[]=1", "=1", "a..b=1", ".a=1", "1a=1", "a+b=1", "a-b=1"};
    for (size_t i = 0; i < N(bad_name); i++) {
        if (plain(q, bad_name[i]) != PT_ERR_INVALID)
            fail_msg("%s accepted", bad_name[i]);
        assert_string_equal(q->f.m.reason, "query parameter name is not a field path");
    }
    const char *bad_utf8[] = {"a=%FF", "a=%C3", "a=%ED%A0%80", "a=\xc3"};
    for (size_t i = 0; i < N(bad_utf8); i++) {
        if (plain(q, bad_utf8[i]) != PT_ERR_INVALID)
            fail_msg("%s accepted", bad_utf8[i]);
        assert_string_equal(q->f.m.reason, "query parameter is not valid UTF-8");
    }
}

static void test_query__path_fields_win(void **state)
{
    struct qfix *q = *state;
    assert_int_equal(match3(&q->f, q->t, "GET", "/v1/shelves/1/books",
                            "parent=x&parent.sub=y&page_size=10&parentx=1"),
                     0);
    ASSERT_PARAMS(&q->f.m, "parent=shelves/1", "page_size=10", "parentx=1");
    assert_int_equal(match3(&q->f, q->t, "GET", "/v1/b1", "book.name=x&book=y&book.title=t&name=n"),
                     0);
    ASSERT_PARAMS(&q->f.m, "book.name=b1", "book.title=t", "name=n");
}

static void test_query__body_field_excluded(void **state)
{
    struct qfix *q = *state;
    assert_int_equal(
        match3(&q->f, q->t, "POST", "/v1/p1/books", "book.title=x&book=y&bookx=1&request_id=42"),
        0);
    assert_int_equal(q->f.m.body, PT_HTTPRULE_BODY_FIELD);
    ASSERT_PARAMS(&q->f.m, "parent=p1", "bookx=1", "request_id=42");
}

static void test_query__body_star_takes_nothing_from_the_query(void **state)
{
    struct qfix *q = *state;
    assert_int_equal(match3(&q->f, q->t, "PATCH", "/v1/n1", "a=1&b=2&bad[]=%ZZ"), 0);
    assert_int_equal(q->f.m.body, PT_HTTPRULE_BODY_ALL);
    ASSERT_PARAMS(&q->f.m, "name=n1");
}

static void test_query__limits(void **state)
{
    struct qfix *q = *state;
    /* default: 128 parameters */
    char buf[16 * 200];
    size_t n = 0;
    for (int i = 0; i < 128; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sx=%d", i ? "&" : "", i);
    assert_int_equal(plain(q, buf), 0);
    assert_int_equal(q->f.m.nparams, 128);
    snprintf(buf + n, sizeof(buf) - n, "&x=1");
    assert_int_equal(plain(q, buf), PT_ERR_LIMIT);

    /* default: 8192 bytes per decoded value */
    static char big[3 * 8200 + 8];
    memcpy(big, "v=", 2);
    memset(big + 2, 'a', 8192);
    big[2 + 8192] = '\0';
    assert_int_equal(plain(q, big), 0);
    big[2 + 8192] = 'a';
    big[3 + 8192] = '\0';
    assert_int_equal(plain(q, big), PT_ERR_LIMIT);
    assert_string_equal(q->f.m.reason, "query parameter too long");
    /* escaped: measured after decoding */
    for (int i = 0; i < 8192; i++)
        memcpy(big + 2 + 3 * i, "%41", 3);
    big[2 + 3 * 8192] = '\0';
    assert_int_equal(plain(q, big), 0);
    assert_int_equal(q->f.m.params[0].value.len, 8192);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_query__nested_and_repeated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query__empty_values_and_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query__form_decoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query__invalid_input_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query__path_fields_win, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query__body_field_excluded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query__body_star_takes_nothing_from_the_query, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_query__limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
