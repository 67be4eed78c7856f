/*
 * Identities built by methods, claim values for headers, and the
 * identity-header comparison ('-' and '_' alike).
 */
#include "fixture.h"

#include "auth/identity.h"

static void test_identity__build_copies_everything(void **state)
{
    (void)state;
    char scope_a[] = "read", scope_b[] = "";
    char *scopes[] = {scope_a, scope_b, "write"};
    char *roles[] = {"admin"};
    char sub[] = "alice";
    struct pt_auth_identity_spec spec = {
        .method = "jwt",
        .subject = sub,
        .client_id = "app",
        .tier = "free",
        .user_id = "alice",
        .scopes = scopes,
        .nscopes = 3,
        .roles = roles,
        .nroles = 1,
        .claims = json_pack("{s:s, s:i}", "sub", "alice", "n", 3),
    };
    struct pt_auth_identity id;
    pt_auth_identity_build(&id, &spec);
    sub[0] = 'X'; /* the identity has its own copy */
    scope_a[0] = 'X';
    assert_pt_str(id.view.subject, "alice");
    assert_pt_str(id.view.method, "jwt");
    assert_int_equal(id.view.client_name.len, 0);
    assert_int_equal(id.view.n[PT_IDENTITY_SCOPES], 2); /* the empty one dropped */
    assert_pt_str(id.view.list[PT_IDENTITY_SCOPES][0], "read");
    assert_pt_str(id.view.list[PT_IDENTITY_ROLES][0], "admin");
    assert_pt_str(id.view.claims, "{\"n\":3,\"sub\":\"alice\"}");
    pt_auth_identity_fini(&id);

    /* Claims that are not an object are dropped (and released). */
    struct pt_auth_identity_spec s2 = {.method = "x", .claims = json_string("nope")};
    pt_auth_identity_build(&id, &s2);
    assert_null(id.claims);
    assert_int_equal(id.view.claims.len, 0);
    pt_auth_identity_fini(&id);
}

static void test_identity__claim_text_for_headers(void **state)
{
    (void)state;
    struct pt_exchange *x = new_exchange();
    json_t *c = json_pack("{s:s, s:[s,s], s:i, s:b, s:n, s:{s:s}, s:[i,s], s:[], s:s}", "str",
                          "value", "scopes", "read", "write", "num", 42, "flag", 1, "nil", "obj",
                          "k", "v", "mixed", 1, "a", "empty", "bad", "a\r\nX-Evil: 1");
    struct pt_str v;
    assert_true(pt_auth_claim_text(x, c, "str", &v));
    assert_pt_str(v, "value");
    assert_true(pt_auth_claim_text(x, c, "scopes", &v));
    assert_pt_str(v, "read write");
    assert_true(pt_auth_claim_text(x, c, "num", &v));
    assert_pt_str(v, "42");
    assert_true(pt_auth_claim_text(x, c, "flag", &v));
    assert_pt_str(v, "true");
    assert_true(pt_auth_claim_text(x, c, "obj", &v));
    assert_pt_str(v, "{\"k\":\"v\"}");
    assert_true(pt_auth_claim_text(x, c, "mixed", &v));
    assert_pt_str(v, "[1,\"a\"]");
    assert_false(pt_auth_claim_text(x, c, "nil", &v));
    assert_false(pt_auth_claim_text(x, c, "missing", &v));
    assert_false(pt_auth_claim_text(x, c, "empty", &v));
    assert_false(pt_auth_claim_text(x, c, "bad", &v)); /* header injection refused */
    assert_false(pt_auth_claim_text(x, NULL, "str", &v));
    char *big = calloc(1, PT_AUTH_MAX_CLAIM_HEADER + 2);
    memset(big, 'a', PT_AUTH_MAX_CLAIM_HEADER + 1);
    json_object_set_new(c, "big", json_string(big));
    assert_false(pt_auth_claim_text(x, c, "big", &v));
    free(big);
    json_decref(c);
    pt_exchange_free(x);
}

static void test_identity__header_names_alike(void **state)
{
    (void)state;
    assert_true(pt_auth_header_name_alike(PT_STR("x-client-id"), PT_STR("X_Client_ID")));
    assert_true(
        pt_auth_header_name_alike(PT_STR("X-Authenticated-User"), PT_STR("x-authenticated_user")));
    assert_false(pt_auth_header_name_alike(PT_STR("x-client-id"), PT_STR("x-client-ids")));
    assert_false(pt_auth_header_name_alike(PT_STR("x-client-id"), PT_STR("x.client.id")));

    struct pt_exchange *x = new_exchange();
    add_header(x, "x-client-id", "a");
    add_header(x, "accept", "b");
    add_header(x, "x_client_id", "c");
    add_header(x, "x-client-id", "d");
    struct pt_str names[] = {PT_STR("x-client-id")};
    assert_int_equal(pt_auth_strip_alike(&x->req.headers, names, 1), 3);
    assert_int_equal(x->req.headers.n, 1);
    assert_true(has_header(x, "accept", "b"));
    pt_exchange_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity__build_copies_everything),
        cmocka_unit_test(test_identity__claim_text_for_headers),
        cmocka_unit_test(test_identity__header_names_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
