/*
 * The google.api.http path template grammar: every form it accepts, what
 * the parsed template holds, and errors with their column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "portico/errors.h"
#include "transcode/httprule.h"

static void parse_ok(const char *src, struct pt_httprule_template *t)
{
    struct pt_httprule_error err = {0};
    if (pt_httprule_template_parse(pt_str_from_cstr(src), t, &err) != 0)
        fail_msg("\"%s\" rejected at column %u: %s", src, err.column, err.message);
}

static void bad(const char *src, uint32_t column, const char *msg)
{
    struct pt_httprule_template t;
    struct pt_httprule_error err = {0};
    int rc = pt_httprule_template_parse(pt_str_from_cstr(src), &t, &err);
    if (rc != PT_ERR_INVALID)
        fail_msg("\"%s\" accepted", src);
    assert_null(t.mem);
    assert_non_null(err.message);
    if (err.column != column || !strstr(err.message, msg))
        fail_msg("\"%s\": got column %u \"%s\", want column %u \"%s\"", src, err.column,
                 err.message, column, msg);
}

static void assert_str(struct pt_str s, const char *want)
{
    if (!pt_str_eq(s, pt_str_from_cstr(want)))
        fail_msg("got \"%.*s\", want \"%s\"", (int)s.len, s.ptr, want);
}

static void test_parse__literals(void **state)
{
    struct pt_httprule_template t;
    parse_ok("/v1/shelves", &t);
    assert_int_equal(t.nsegs, 2);
    assert_int_equal(t.segs[0].kind, PT_HTTPRULE_SEG_LITERAL);
    assert_str(t.segs[0].literal, "v1");
    assert_str(t.segs[1].literal, "shelves");
    assert_int_equal(t.nvars, 0);
    assert_int_equal(t.verb.len, 0);
    assert_false(t.has_rest);
    pt_httprule_template_fini(&t);

    /* canonical: unreserved escapes decoded, others upper case */
    parse_ok("/%7euser/a%2fb/%41!$&'()+,;=@", &t);
    assert_str(t.segs[0].literal, "~user");
    assert_str(t.segs[1].literal, "a%2Fb");
    assert_str(t.segs[2].literal, "A!$&'()+,;=@");
    pt_httprule_template_fini(&t);

    parse_ok("/", &t);
    assert_int_equal(t.nsegs, 0);
    pt_httprule_template_fini(&t);
}

static void test_parse__variables(void **state)
{
    struct pt_httprule_template t;
    parse_ok("/v1/{name}", &t);
    assert_int_equal(t.nsegs, 2);
    assert_int_equal(t.segs[1].kind, PT_HTTPRULE_SEG_SINGLE);
    assert_int_equal(t.nvars, 1);
    assert_str(t.vars[0].text, "name");
    assert_int_equal(t.vars[0].field.nseg, 1);
    assert_int_equal(t.vars[0].first, 1);
    assert_int_equal(t.vars[0].end, 2);
    assert_true(t.vars[0].single);
    pt_httprule_template_fini(&t);

    parse_ok("/v1/{name=*}", &t);
    assert_int_equal(t.segs[1].kind, PT_HTTPRULE_SEG_SINGLE);
    assert_true(t.vars[0].single);
    pt_httprule_template_fini(&t);

    parse_ok("/v1/{a.b_c.d9}/x", &t);
    assert_int_equal(t.vars[0].field.nseg, 3);
    assert_str(t.vars[0].field.seg[0], "a");
    assert_str(t.vars[0].field.seg[1], "b_c");
    assert_str(t.vars[0].field.seg[2], "d9");
    assert_str(t.vars[0].text, "a.b_c.d9");
    pt_httprule_template_fini(&t);

    parse_ok("/v1/{name=shelves/*/books/*}", &t);
    assert_int_equal(t.nsegs, 5);
    assert_int_equal(t.vars[0].first, 1);
    assert_int_equal(t.vars[0].end, 5);
    assert_false(t.vars[0].single);
    assert_str(t.segs[1].literal, "shelves");
    assert_int_equal(t.segs[2].kind, PT_HTTPRULE_SEG_SINGLE);
    pt_httprule_template_fini(&t);

    parse_ok("/v1/{name=lit}", &t);
    assert_true(t.vars[0].single);
    assert_int_equal(t.segs[1].kind, PT_HTTPRULE_SEG_LITERAL);
    pt_httprule_template_fini(&t);

    parse_ok("/v1/{a}/{b}/*/{c.d=x/*}", &t);
    assert_int_equal(t.nvars, 3);
    assert_int_equal(t.nsegs, 6);
    assert_int_equal(t.vars[2].first, 4);
    assert_int_equal(t.vars[2].end, 6);
    pt_httprule_template_fini(&t);
}

static void test_parse__rest(void **state)
{
    struct pt_httprule_template t;
    parse_ok("/v1/**", &t);
    assert_true(t.has_rest);
    assert_int_equal(t.segs[1].kind, PT_HTTPRULE_SEG_REST);
    pt_httprule_template_fini(&t);

    parse_ok("/v1/{name=**}", &t);
    assert_true(t.has_rest);
    assert_false(t.vars[0].single);
    pt_httprule_template_fini(&t);

    parse_ok("/v1/{name=files/**}:get", &t);
    assert_true(t.has_rest);
    assert_str(t.verb, "get");
    pt_httprule_template_fini(&t);

    parse_ok("/**", &t);
    assert_int_equal(t.nsegs, 1);
    pt_httprule_template_fini(&t);
}

static void test_parse__verbs(void **state)
{
    struct pt_httprule_template t;
    parse_ok("/v1/{name}:cancel", &t);
    assert_str(t.verb, "cancel");
    assert_int_equal(t.nsegs, 2);
    pt_httprule_template_fini(&t);

    parse_ok("/v1/operations:batchGet", &t);
    assert_str(t.segs[1].literal, "operations");
    assert_str(t.verb, "batchGet");
    pt_httprule_template_fini(&t);

    parse_ok("/v1/*:x%41", &t);
    assert_str(t.verb, "xA");
    pt_httprule_template_fini(&t);
}

static void test_parse__errors_have_columns(void **state)
{
    bad("", 1, "must start with '/'");
    bad("v1/x", 1, "must start with '/'");
    bad("/v1/", 5, "empty segment");
    bad("/v1//x", 5, "empty segment");
    bad("/v1/{name", 10, "expected '}'");
    bad("/v1/{}", 6, "expected a field name");
    bad("/v1/{1a}", 6, "expected a field name");
    bad("/v1/{a.}", 8, "expected a field name");
    bad("/v1/{a..b}", 8, "expected a field name");
    bad("/v1/{a={b}}", 8, "variables may not nest");
    bad("/v1/{a=}", 8, "empty segment");
    bad("/v1/}", 5, "unexpected '}'");
    bad("/v1/**/x", 5, "'**' must be the last segment");
    bad("/v1/{a=**}/x", 8, "'**' must be the last segment");
    bad("/v1/{a=**/b}", 8, "'**' must be the last segment");
    bad("/v1/a*", 6, "whole segments");
    bad("/v1/*a", 5, "whole segments");
    bad("/v1/***", 5, "whole segments");
    bad("/v1/a{b}", 6, "whole segments");
    bad("/v1/{a}b", 8, "expected '/', ':' or the end");
    bad("/v1/x:", 7, "empty verb");
    bad("/v1/x:a:b", 8, "invalid character in the verb");
    bad("/v1/x:a/b", 8, "invalid character in the verb");
    bad("/:verb", 2, "empty segment");
    bad("/v1/a b", 6, "invalid character in a literal");
    bad("/v1/a?b", 6, "invalid character in a literal");
    bad("/v1/caf\xc3\xa9", 8, "invalid character in a literal");
    bad("/v1/%GZ", 5, "invalid percent-encoding");
    bad("/v1/%4", 5, "invalid percent-encoding");
    bad("/v1/..", 5, "dot segment");
    bad("/v1/%2e", 5, "dot segment");
    bad("/v1/caf%A9", 5, "valid UTF-8");
    bad("/v1/{a=x/%C3}", 10, "valid UTF-8");
    bad("/v1/x:%FF", 7, "valid UTF-8");
    bad("/v1/{a}/{a}", 10, "field bound twice");
    bad("/v1/{a.b}/{a}", 12, "overlaps");
    bad("/v1/{a}/{a.b.c}", 10, "overlaps");
    bad("/v1/{a:b}", 7, "expected '}'");
}

static void test_parse__limits(void **state)
{
    char buf[PT_HTTPRULE_MAX_TEMPLATE_LEN + 8];
    /* 128 segments are fine, 129 are not */
    size_t n = 0;
    for (int i = 0; i < 128; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "/a");
    struct pt_httprule_template t;
    parse_ok(buf, &t);
    assert_int_equal(t.nsegs, 128);
    pt_httprule_template_fini(&t);
    snprintf(buf + n, sizeof(buf) - n, "/a");
    bad(buf, 258, "too many segments");

    /* 32 variables, then too many */
    n = 0;
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "/{f%d}", i);
    struct pt_httprule_error err;
    assert_int_equal(pt_httprule_template_parse(pt_str_from_cstr(buf), &t, &err), PT_ERR_INVALID);
    assert_string_equal(err.message, "too many variables");

    /* field path depth */
    n = (size_t)snprintf(buf, sizeof(buf), "/{a");
    for (int i = 1; i < 33; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".a");
    snprintf(buf + n, sizeof(buf) - n, "}");
    bad(buf, 3, "too deep");

    memset(buf, 'a', sizeof(buf) - 1);
    buf[0] = '/';
    buf[sizeof(buf) - 1] = '\0';
    assert_int_equal(pt_httprule_template_parse(pt_str_from_cstr(buf), &t, &err), PT_ERR_INVALID);
    assert_int_equal(err.column, 0);
    assert_string_equal(err.message, "template too long");
}

static void test_parse__not_nul_terminated(void **state)
{
    /* the parser reads exactly len bytes */
    const char src[] = "/v1/{name}XXXX";
    struct pt_httprule_template t;
    struct pt_httprule_error err;
    assert_int_equal(pt_httprule_template_parse((struct pt_str){src, 10}, &t, &err), 0);
    assert_int_equal(t.nvars, 1);
    pt_httprule_template_fini(&t);
    assert_int_equal(pt_httprule_template_parse((struct pt_str){src, 9}, &t, &err), PT_ERR_INVALID);
    assert_int_equal(err.column, 10);
}

static void test_field_path_check(void **state)
{
    uint32_t n = 0;
    struct pt_httprule_error err;
    assert_int_equal(pt_httprule_field_path_check(PT_STR("a"), &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(pt_httprule_field_path_check(PT_STR("a.b_1._c"), &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(pt_httprule_field_path_check(PT_STR(""), &n, &err), PT_ERR_INVALID);
    assert_int_equal(err.column, 1);
    assert_int_equal(pt_httprule_field_path_check(PT_STR("a."), &n, &err), PT_ERR_INVALID);
    assert_int_equal(err.column, 3);
    assert_int_equal(pt_httprule_field_path_check(PT_STR("a-b"), &n, &err), PT_ERR_INVALID);
    assert_int_equal(err.column, 2);
    assert_int_equal(pt_httprule_field_path_check(PT_STR("*"), &n, &err), PT_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse__literals),
        cmocka_unit_test(test_parse__variables),
        cmocka_unit_test(test_parse__rest),
        cmocka_unit_test(test_parse__verbs),
        cmocka_unit_test(test_parse__errors_have_columns),
        cmocka_unit_test(test_parse__limits),
        cmocka_unit_test(test_parse__not_nul_terminated),
        cmocka_unit_test(test_field_path_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
