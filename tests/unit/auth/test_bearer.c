/*
 * Bearer tokens on exchanges without a worker (bearer.h): the
 * Authorization header (scheme case, repeats, empty), the route's query
 * parameter and cookie (only when set, decoding, precedence), and their
 * removal from the forwarded query and Cookie headers. Also the rule
 * binder (rule.h) over the same exchanges.
 */
#include "fixture.h"

#include "auth/bearer.h"
#include "auth/rule.h"

static struct pt_auth_route route_with(const char *query_param, const char *cookie)
{
    struct pt_auth_route r;
    memset(&r, 0, sizeof(r));
    if (query_param)
        r.token_query_param = pt_str_from_cstr(query_param);
    if (cookie)
        r.token_cookie = pt_str_from_cstr(cookie);
    return r;
}

static void set_query(struct pt_exchange *x, const char *path, const char *query)
{
    x->req.query = pt_str_from_cstr(query);
    size_t n = strlen(path) + 1 + strlen(query);
    char *fp = pt_exchange_alloc(x, n + 1);
    snprintf(fp, n + 1, "%s?%s", path, query);
    x->forward_path = (struct pt_str){fp, n};
}

static enum pt_auth_bearer find(struct pt_exchange *x, const struct pt_auth_route *r,
                                struct pt_str *tok)
{
    const char *where;
    return pt_auth_bearer_find(x, r, tok, &where);
}

static void test_bearer__authorization_header(void **state)
{
    (void)state;
    struct pt_auth_route r = route_with(NULL, NULL);
    struct pt_str tok;
    const char *ok[][2] = {
        {"Bearer abc.def.ghi", "abc.def.ghi"}, {"bearer   abc", "abc"}, {"BEARER\tabc ", "abc"}};
    for (size_t i = 0; i < 3; i++) {
        struct pt_exchange *x = new_exchange();
        add_header(x, "authorization", ok[i][0]);
        assert_int_equal(find(x, &r, &tok), PT_AUTH_BEARER_FOUND);
        assert_pt_str(tok, ok[i][1]);
        pt_exchange_free(x);
    }
    const char *absent[] = {"Basic YTpi", "Bearerabc", "Token abc"};
    for (size_t i = 0; i < 3; i++) {
        struct pt_exchange *x = new_exchange();
        add_header(x, "authorization", absent[i]);
        assert_int_equal(find(x, &r, &tok), PT_AUTH_BEARER_ABSENT);
        pt_exchange_free(x);
    }
    struct pt_exchange *x = new_exchange();
    add_header(x, "authorization", "Bearer   ");
    assert_int_equal(find(x, &r, &tok), PT_AUTH_BEARER_INVALID);
    pt_exchange_free(x);
    x = new_exchange();
    add_header(x, "authorization", "Bearer a");
    add_header(x, "authorization", "Bearer b");
    assert_int_equal(find(x, &r, &tok), PT_AUTH_BEARER_INVALID);
    pt_exchange_free(x);
    x = new_exchange();
    assert_int_equal(find(x, &r, &tok), PT_AUTH_BEARER_ABSENT);
    pt_exchange_free(x);
}

static void test_bearer__query_and_cookie_only_when_set(void **state)
{
    (void)state;
    struct pt_auth_route off = route_with(NULL, NULL), on = route_with("access_token", "at");
    struct pt_str tok;
    struct pt_exchange *x = new_exchange();
    set_query(x, "/v1/items", "a=1&access%5Ftoken=t%2Eq&b=2");
    add_header(x, "cookie", "x=1");
    add_header(x, "cookie", "theme=dark; at=\"t.c\"; lang=en");
    assert_int_equal(find(x, &off, &tok), PT_AUTH_BEARER_ABSENT);
    assert_int_equal(find(x, &on, &tok), PT_AUTH_BEARER_FOUND);
    assert_pt_str(tok, "t.q"); /* the query before the cookie, name and value decoded */
    x->req.query = PT_STR("a=1");
    assert_int_equal(find(x, &on, &tok), PT_AUTH_BEARER_FOUND);
    assert_pt_str(tok, "t.c"); /* in the second Cookie header, quotes dropped */
    add_header(x, "authorization", "Bearer t.h");
    assert_int_equal(find(x, &on, &tok), PT_AUTH_BEARER_FOUND);
    assert_pt_str(tok, "t.h"); /* the header first */
    pt_exchange_free(x);

    x = new_exchange();
    set_query(x, "/v1/items", "access_token=%zz");
    assert_int_equal(find(x, &on, &tok), PT_AUTH_BEARER_ABSENT); /* bad encoding: no token */
    pt_exchange_free(x);
}

static void test_bearer__removed_before_forwarding(void **state)
{
    (void)state;
    struct pt_exchange *x = new_exchange();
    set_query(x, "/up/items", "a=1&access_token=x&b=2&access%5ftoken=y&&c");
    pt_auth_bearer_remove_query(x, PT_STR("access_token"));
    assert_pt_str(x->req.query, "a=1&b=2&c");
    assert_pt_str(x->forward_path, "/up/items?a=1&b=2&c");
    set_query(x, "/up/items", "access_token=x");
    pt_auth_bearer_remove_query(x, PT_STR("access_token"));
    assert_pt_str(x->forward_path, "/up/items");
    assert_int_equal(x->req.query.len, 0);
    set_query(x, "/up/items", "keep=1");
    pt_auth_bearer_remove_query(x, PT_STR("access_token"));
    assert_pt_str(x->forward_path, "/up/items?keep=1");

    add_header(x, "cookie", "at=1");
    add_header(x, "cookie", "theme=dark;at=2; lang=en");
    add_header(x, "cookie", "other=3");
    pt_auth_bearer_remove_cookie(x, PT_STR("at"));
    assert_int_equal(pt_headers_count(&x->req.headers), 2);
    struct pt_str n, v;
    pt_headers_at(&x->req.headers, 0, &n, &v);
    assert_pt_str(v, "theme=dark; lang=en");
    pt_headers_at(&x->req.headers, 1, &n, &v);
    assert_pt_str(v, "other=3");
    pt_exchange_free(x);
}

static void test_bearer__jwt_shape(void **state)
{
    (void)state;
    assert_true(pt_auth_bearer_is_jwt(PT_STR("a.b.c")));
    assert_true(pt_auth_bearer_is_jwt(PT_STR("a.b.")));
    assert_false(pt_auth_bearer_is_jwt(PT_STR("a.b")));
    assert_false(pt_auth_bearer_is_jwt(PT_STR("opaque-token")));
    assert_false(pt_auth_bearer_is_jwt(PT_STR("a.b.c.d")));
}

/* --- the rule binder ---------------------------------------------------------------- */

static bool allows(const char *src, struct pt_exchange *x, const struct pt_identity_full *id,
                   const json_t *claims)
{
    char err[PT_EXPR_ERR_MAX];
    struct pt_expr *e = pt_expr_compile(pt_str_from_cstr(src), err, sizeof(err));
    if (!e)
        fail_msg("%s: %s", src, err);
    bool ok = pt_auth_rule_allows(e, x, id, claims);
    pt_expr_free(e);
    return ok;
}

static void test_rule__attributes(void **state)
{
    (void)state;
    struct pt_exchange *x = new_exchange();
    set_query(x, "/v1/items", "mode=read+only&n=%31");
    add_header(x, "x-tenant", "t1");
    add_header(x, "x-tenant", "t2");
    x->params[0] = (struct pt_route_param){PT_STR("user_id"), PT_STR("alice")};
    x->nparams = 1;
    json_error_t je;
    json_t *claims =
        json_loads("{\"sub\":\"alice\",\"n\":42,\"f\":1.5,\"r\":3.0,\"ok\":true,"
                   "\"roles\":[\"a\",\"b\"],\"mixed\":[\"a\",1],\"o\":{\"p\":{\"q\":\"deep\"}}}",
                   0, &je);
    assert_non_null(claims);
    struct pt_str scopes[] = {PT_STR("read"), PT_STR("write")};
    struct pt_identity_full id = {0};
    id.subject = PT_STR("alice");
    id.base.client_id = PT_STR("app");
    id.method = PT_STR("jwt");
    id.list[PT_IDENTITY_SCOPES] = scopes;
    id.n[PT_IDENTITY_SCOPES] = 2;

    assert_true(allows("claims.sub == path.user_id", x, &id, claims));
    assert_true(allows("claims.n == 42 && claims.r == 3 && claims.ok", x, &id, claims));
    assert_false(allows("claims.f == 1", x, &id, claims));         /* a fraction: MISSING */
    assert_false(allows("\"a\" in claims.mixed", x, &id, claims)); /* not all strings */
    assert_true(allows("\"b\" in claims.roles && claims.o.p.q == \"deep\"", x, &id, claims));
    assert_true(allows("header.x-tenant == \"t1\"", x, &id, claims)); /* the first */
    assert_false(allows("header.x-tenant == \"t2\"", x, &id, claims));
    assert_true(allows("query.mode == \"read only\" && query.n == \"1\"", x, &id, claims));
    assert_false(allows("exists(query.missing)", x, &id, claims));
    assert_true(
        allows("request.method == \"GET\" && request.path == \"/v1/items\"", x, &id, claims));
    assert_true(
        allows("client_ip == \"192.0.2.7\" && ip_in(client_ip, \"192.0.2.0/24\")", x, &id, claims));
    assert_true(allows("identity.subject == \"alice\" && identity.method == \"jwt\" && "
                       "all_in([\"read\"], identity.scopes) && size(identity.roles) == 0",
                       x, &id, claims));
    assert_false(allows("identity.tier == \"free\"", x, &id, claims)); /* unset: MISSING */
    assert_false(allows("claims.sub == \"alice\"", x, &id, NULL));     /* no claims */
    json_decref(claims);
    pt_exchange_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer__authorization_header),
        cmocka_unit_test(test_bearer__query_and_cookie_only_when_set),
        cmocka_unit_test(test_bearer__removed_before_forwarding),
        cmocka_unit_test(test_bearer__jwt_shape),
        cmocka_unit_test(test_rule__attributes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
