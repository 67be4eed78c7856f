/*
 * The path template grammar, through pt_route_template_check().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "portico/errors.h"
#include "route/template.h"

static void ok(const char *t)
{
    const char *err = NULL;
    int rc = pt_route_template_check(pt_str_from_cstr(t), &err);
    if (rc != 0)
        fail_msg("template \"%s\" rejected: %s", t, err);
}

static void bad(const char *t, const char *want_in_err)
{
    const char *err = NULL;
    int rc = pt_route_template_check(pt_str_from_cstr(t), &err);
    if (rc != PT_ERR_CONFIG)
        fail_msg("template \"%s\" accepted", t);
    assert_non_null(err);
    if (!strstr(err, want_in_err))
        fail_msg("template \"%s\": error \"%s\" does not mention \"%s\"", t, err, want_in_err);
}

static void test_template_check__literals_accepted(void **state)
{
    ok("/");
    ok("/api");
    ok("/api/v1/users");
    ok("/users/");
    ok("/a-b/c.d/e~f/%41/%2F/caf\xc3\xa9");
}

static void test_template_check__wildcards_and_params_accepted(void **state)
{
    ok("/*");
    ok("/**");
    ok("/api/*/x");
    ok("/api/**");
    ok("/users/{id}");
    ok("/users/{id=*}");
    ok("/files/{path=**}");
    ok("/{a}/{b}/{c.d}/{_e9}");
    ok("/users/{id}/");
}

static void test_template_check__must_start_with_slash(void **state)
{
    bad("", "must start with '/'");
    bad("api", "must start with '/'");
    bad("*", "must start with '/'");
}

static void test_template_check__rest_only_last(void **state)
{
    bad("/**/x", "last segment");
    bad("/{p=**}/x", "last segment");
    bad("/a/**/", "last segment");
}

static void test_template_check__partial_wildcards_rejected(void **state)
{
    bad("/files/*.txt", "whole segment");
    bad("/a{id}", "whole segment");
    bad("/a}", "whole segment");
    bad("/***", "whole segment");
    bad("/{id", "closing");
    bad("/{id}x", "closing");
}

static void test_template_check__bad_param_names_rejected(void **state)
{
    bad("/{}", "parameter name");
    bad("/{1a}", "parameter name");
    bad("/{a-b}", "parameter name");
    bad("/{a=}", "pattern");
    bad("/{a=x}", "pattern");
    bad("/{a=***}", "pattern");
}

static void test_template_check__duplicate_param_rejected(void **state)
{
    bad("/{id}/{id}", "duplicate");
    bad("/{id}/{id=**}", "duplicate");
}

static void test_template_check__at_most_16_params(void **state)
{
    char t[256] = "";
    for (int i = 0; i < 16; i++)
        snprintf(t + strlen(t), sizeof(t) - strlen(t), "/{p%d}", i);
    ok(t);
    strcat(t, "/{p16}");
    bad(t, "too many parameters");
}

static void test_template_check__at_most_128_segments(void **state)
{
    char t[600] = "";
    for (int i = 0; i < 128; i++)
        strcat(t, "/a");
    ok(t);
    strcat(t, "/a");
    bad(t, "too many segments");
}

static void test_template_check__bad_literals_rejected(void **state)
{
    bad("/a//b", "empty segment");
    bad("//", "empty segment");
    bad("/a/../b", "dot segments");
    bad("/a/./b", "dot segments");
    bad("/a/%2e%2E", "dot segments");
    bad("/a%zz", "escape");
    bad("/a b", "escape");
    bad("/a#b", "escape");
    bad("/a?b", "'?'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_check__literals_accepted),
        cmocka_unit_test(test_template_check__wildcards_and_params_accepted),
        cmocka_unit_test(test_template_check__must_start_with_slash),
        cmocka_unit_test(test_template_check__rest_only_last),
        cmocka_unit_test(test_template_check__partial_wildcards_rejected),
        cmocka_unit_test(test_template_check__bad_param_names_rejected),
        cmocka_unit_test(test_template_check__duplicate_param_rejected),
        cmocka_unit_test(test_template_check__at_most_16_params),
        cmocka_unit_test(test_template_check__at_most_128_segments),
        cmocka_unit_test(test_template_check__bad_literals_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
