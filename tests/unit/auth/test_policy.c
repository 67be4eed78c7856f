/*
 * Route policies: required scopes (all / any), roles (any of), both, and
 * the compile errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/policy.h"

typedef Portico__Config__V1__RouteAuth RouteAuth;

#define S(x) ((struct pt_str){x, sizeof(x) - 1})

static void compile(struct pt_auth_policy *p, RouteAuth *ra)
{
    char field[96], why[200];
    if (pt_auth_policy_compile(p, ra, field, sizeof(field), why, sizeof(why)) != 0)
        fail_msg("compile failed: %s: %s", field, why);
}

static void test_policy__none_allows_everyone(void **state)
{
    (void)state;
    RouteAuth ra = PORTICO__CONFIG__V1__ROUTE_AUTH__INIT;
    struct pt_auth_policy p;
    compile(&p, &ra);
    assert_false(pt_auth_policy_present(&p));
    size_t miss;
    assert_int_equal(pt_auth_policy_check(&p, NULL, 0, NULL, 0, &miss), PT_AUTH_POLICY_OK);
    pt_auth_policy_fini(&p);
}

static void test_policy__all_scopes(void **state)
{
    (void)state;
    char *want[] = {"read", "write"};
    RouteAuth ra = PORTICO__CONFIG__V1__ROUTE_AUTH__INIT;
    ra.required_scopes = want;
    ra.n_required_scopes = 2;
    struct pt_auth_policy p;
    compile(&p, &ra);
    assert_true(pt_auth_policy_present(&p));
    size_t miss = 99;
    struct pt_str both[] = {S("write"), S("admin"), S("read")};
    struct pt_str one[] = {S("read")};
    struct pt_str near[] = {S("Read"), S("write "), S("writ")};
    assert_int_equal(pt_auth_policy_check(&p, both, 3, NULL, 0, &miss), PT_AUTH_POLICY_OK);
    assert_int_equal(pt_auth_policy_check(&p, one, 1, NULL, 0, &miss), PT_AUTH_POLICY_SCOPE);
    assert_int_equal(miss, 1); /* "write" is missing */
    assert_int_equal(pt_auth_policy_check(&p, near, 3, NULL, 0, &miss), PT_AUTH_POLICY_SCOPE);
    assert_int_equal(miss, 0);
    assert_int_equal(pt_auth_policy_check(&p, NULL, 0, NULL, 0, &miss), PT_AUTH_POLICY_SCOPE);
    pt_auth_policy_fini(&p);
}

static void test_policy__any_scope(void **state)
{
    (void)state;
    char *want[] = {"read", "write"};
    RouteAuth ra = PORTICO__CONFIG__V1__ROUTE_AUTH__INIT;
    ra.required_scopes = want;
    ra.n_required_scopes = 2;
    ra.scopes_match = "any";
    struct pt_auth_policy p;
    compile(&p, &ra);
    size_t miss;
    struct pt_str w[] = {S("write")};
    struct pt_str other[] = {S("admin")};
    assert_int_equal(pt_auth_policy_check(&p, w, 1, NULL, 0, &miss), PT_AUTH_POLICY_OK);
    assert_int_equal(pt_auth_policy_check(&p, other, 1, NULL, 0, &miss), PT_AUTH_POLICY_SCOPE);
    assert_int_equal(pt_auth_policy_check(&p, NULL, 0, NULL, 0, &miss), PT_AUTH_POLICY_SCOPE);
    pt_auth_policy_fini(&p);
}

static void test_policy__roles_any_of(void **state)
{
    (void)state;
    char *roles[] = {"admin", "ops"};
    RouteAuth ra = PORTICO__CONFIG__V1__ROUTE_AUTH__INIT;
    ra.roles = roles;
    ra.n_roles = 2;
    struct pt_auth_policy p;
    compile(&p, &ra);
    size_t miss;
    struct pt_str ops[] = {S("viewer"), S("ops")};
    struct pt_str viewer[] = {S("viewer")};
    struct pt_str scopes_not_roles[] = {S("admin")};
    assert_int_equal(pt_auth_policy_check(&p, NULL, 0, ops, 2, &miss), PT_AUTH_POLICY_OK);
    assert_int_equal(pt_auth_policy_check(&p, NULL, 0, viewer, 1, &miss), PT_AUTH_POLICY_ROLE);
    /* A scope named like a role is not the role. */
    assert_int_equal(pt_auth_policy_check(&p, scopes_not_roles, 1, NULL, 0, &miss),
                     PT_AUTH_POLICY_ROLE);
    pt_auth_policy_fini(&p);
}

static void test_policy__scopes_and_roles_both_needed(void **state)
{
    (void)state;
    char *want[] = {"read"};
    char *roles[] = {"admin"};
    RouteAuth ra = PORTICO__CONFIG__V1__ROUTE_AUTH__INIT;
    ra.required_scopes = want;
    ra.n_required_scopes = 1;
    ra.roles = roles;
    ra.n_roles = 1;
    struct pt_auth_policy p;
    compile(&p, &ra);
    size_t miss;
    struct pt_str read[] = {S("read")};
    struct pt_str admin[] = {S("admin")};
    assert_int_equal(pt_auth_policy_check(&p, read, 1, admin, 1, &miss), PT_AUTH_POLICY_OK);
    assert_int_equal(pt_auth_policy_check(&p, read, 1, NULL, 0, &miss), PT_AUTH_POLICY_ROLE);
    assert_int_equal(pt_auth_policy_check(&p, NULL, 0, admin, 1, &miss), PT_AUTH_POLICY_SCOPE);
    pt_auth_policy_fini(&p);
}

static void test_policy__compile_errors(void **state)
{
    (void)state;
    char field[96], why[200];
    struct pt_auth_policy p;
    RouteAuth ra = PORTICO__CONFIG__V1__ROUTE_AUTH__INIT;
    ra.scopes_match = "most";
    assert_int_equal(pt_auth_policy_compile(&p, &ra, field, sizeof(field), why, sizeof(why)), -1);
    assert_string_equal(field, "scopes_match");
    char *bad[] = {"ok", ""};
    RouteAuth rb = PORTICO__CONFIG__V1__ROUTE_AUTH__INIT;
    rb.required_scopes = bad;
    rb.n_required_scopes = 2;
    assert_int_equal(pt_auth_policy_compile(&p, &rb, field, sizeof(field), why, sizeof(why)), -1);
    assert_string_equal(field, "required_scopes[1]");
    char *spaced[] = {"a role"};
    RouteAuth rc = PORTICO__CONFIG__V1__ROUTE_AUTH__INIT;
    rc.roles = spaced;
    rc.n_roles = 1;
    assert_int_equal(pt_auth_policy_compile(&p, &rc, field, sizeof(field), why, sizeof(why)), -1);
    assert_string_equal(field, "roles[0]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy__none_allows_everyone),
        cmocka_unit_test(test_policy__all_scopes),
        cmocka_unit_test(test_policy__any_scope),
        cmocka_unit_test(test_policy__roles_any_of),
        cmocka_unit_test(test_policy__scopes_and_roles_both_needed),
        cmocka_unit_test(test_policy__compile_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
