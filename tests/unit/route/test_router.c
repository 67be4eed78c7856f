/*
 * The router: each template form and predicate, the precedence rules, host
 * forms, strip_len, captures, disabled routes and compile errors. Every
 * lookup is also answered by the linear reference matcher and the two must
 * agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "http/headers.h"
#include "portico/errors.h"

struct req {
    const char *method;
    const char *authority;
    const char *path;
    const char *query;
    const struct pt_headers *headers;
};

static bool lookup(const struct pt_router *r, struct req q, struct pt_route_result *out)
{
    struct pt_route_request req = {
        .method = pt_str_from_cstr(q.method ? q.method : "GET"),
        .authority = pt_str_from_cstr(q.authority ? q.authority : ""),
        .path = pt_str_from_cstr(q.path),
        .query = pt_str_from_cstr(q.query ? q.query : ""),
        .headers = q.headers,
    };
    struct pt_route_result lin;
    bool hit = pt_router_match(r, &req, out);
    bool lin_hit = pt_router_match_linear(r, &req, &lin);
    assert_int_equal(hit, lin_hit);
    if (hit) {
        assert_int_equal(out->index, lin.index);
        assert_int_equal(out->strip_len, lin.strip_len);
        assert_int_equal(out->nparams, lin.nparams);
        for (uint16_t i = 0; i < out->nparams; i++) {
            assert_true(pt_str_eq(out->params[i].name, lin.params[i].name));
            assert_ptr_equal(out->params[i].value.ptr, lin.params[i].value.ptr);
            assert_int_equal(out->params[i].value.len, lin.params[i].value.len);
        }
    }
    return hit;
}

/* Index of the matching route, or -1. */
static int route_for(const struct pt_router *r, struct req q)
{
    struct pt_route_result out;
    return lookup(r, q, &out) ? (int)out.index : -1;
}

static int path_route(const struct pt_router *r, const char *path)
{
    return route_for(r, (struct req){.path = path});
}

static void assert_param(const struct pt_route_result *out, const char *name, const char *value)
{
    for (uint16_t i = 0; i < out->nparams; i++) {
        if (pt_str_eq(out->params[i].name, pt_str_from_cstr(name))) {
            if (!pt_str_eq(out->params[i].value, pt_str_from_cstr(value)))
                fail_msg("param %s = \"%.*s\", want \"%s\"", name, (int)out->params[i].value.len,
                         out->params[i].value.ptr, value);
            return;
        }
    }
    fail_msg("param %s not captured", name);
}

static struct pt_router *compile_ok(struct fx *f)
{
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_router *r = fx_compile(f, &d);
    if (!r)
        fail_msg("compile failed:\n%s", pt_diag_text(&d));
    pt_diag_fini(&d);
    return r;
}

/* Compile expecting failure; returns the diagnostics (caller frees). */
static char *compile_fail(struct fx *f, unsigned *nerrors)
{
    struct pt_diag d;
    pt_diag_init(&d);
    const char *where[16] = {"routes.yaml:3", NULL, "routes.yaml:9"};
    struct pt_router *r = pt_router_compile((const Portico__Config__V1__Route *const *)f->routes,
                                            f->n, f->n <= 16 ? where : NULL, &d);
    assert_null(r);
    assert_true(d.errors > 0);
    if (nerrors)
        *nerrors = d.errors;
    char *text = pt_xstrdup(pt_diag_text(&d));
    pt_diag_fini(&d);
    return text;
}

/* ---- templates ---- */

static void test_router_match__literal_is_exact_and_case_sensitive(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/api/users");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/api/users"), 0);
    assert_int_equal(path_route(r, "/api/users/"), -1);
    assert_int_equal(path_route(r, "/api/user"), -1);
    assert_int_equal(path_route(r, "/api/usersx"), -1);
    assert_int_equal(path_route(r, "/API/users"), -1);
    assert_int_equal(path_route(r, "/api"), -1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__trailing_slash_is_significant(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/users/");
    fx_route(&f, "/");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/users/"), 0);
    assert_int_equal(path_route(r, "/users"), -1);
    assert_int_equal(path_route(r, "/"), 1);
    assert_int_equal(path_route(r, "/x"), -1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__star_is_one_nonempty_segment(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/a/*/c");
    fx_route(&f, "/b/*");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/a/x/c"), 0);
    assert_int_equal(path_route(r, "/a/c"), -1);
    assert_int_equal(path_route(r, "/a/x/y/c"), -1);
    assert_int_equal(path_route(r, "/b/x"), 1);
    assert_int_equal(path_route(r, "/b/"), -1);
    assert_int_equal(path_route(r, "/b/x/"), -1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__param_captures_one_segment(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/users/{id}");
    fx_route(&f, "/orgs/{org=*}/repos/{repo}");
    struct pt_router *r = compile_ok(&f);
    struct pt_route_result out;
    assert_true(lookup(r, (struct req){.path = "/users/42"}, &out));
    assert_int_equal(out.index, 0);
    assert_int_equal(out.nparams, 1);
    assert_param(&out, "id", "42");
    assert_true(lookup(r, (struct req){.path = "/orgs/acme/repos/portico"}, &out));
    assert_int_equal(out.nparams, 2);
    assert_true(pt_str_eq(out.params[0].name, PT_STR("org")));
    assert_param(&out, "org", "acme");
    assert_param(&out, "repo", "portico");
    assert_int_equal(path_route(r, "/users/"), -1);
    assert_int_equal(path_route(r, "/users/42/x"), -1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__captures_are_undecoded_slices(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/files/{name}");
    struct pt_router *r = compile_ok(&f);
    struct pt_route_result out;
    const char *path = "/files/a%2Fb%20c";
    assert_true(lookup(r, (struct req){.path = path}, &out));
    assert_param(&out, "name", "a%2Fb%20c");
    assert_ptr_equal(out.params[0].value.ptr, path + 7);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__rest_matches_zero_or_more_segments(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/api/{rest=**}");
    fx_route(&f, "/static/**");
    struct pt_router *r = compile_ok(&f);
    struct pt_route_result out;
    assert_true(lookup(r, (struct req){.path = "/api"}, &out));
    assert_param(&out, "rest", "");
    assert_true(lookup(r, (struct req){.path = "/api/"}, &out));
    assert_param(&out, "rest", "");
    assert_true(lookup(r, (struct req){.path = "/api/x/y"}, &out));
    assert_param(&out, "rest", "x/y");
    assert_true(lookup(r, (struct req){.path = "/api/x/"}, &out));
    assert_param(&out, "rest", "x/");
    assert_int_equal(path_route(r, "/apix"), -1);
    assert_int_equal(path_route(r, "/static/css/a.css"), 1);
    assert_true(lookup(r, (struct req){.path = "/static"}, &out));
    assert_int_equal(out.nparams, 0);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__path_prefix_is_segment_wise(void **state)
{
    struct fx f = {0};
    fx_route(&f, "prefix:/api");
    fx_route(&f, "prefix:/docs/");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/api"), 0);
    assert_int_equal(path_route(r, "/api/"), 0);
    assert_int_equal(path_route(r, "/api/v1/x"), 0);
    assert_int_equal(path_route(r, "/apix"), -1);
    assert_int_equal(path_route(r, "/docs"), 1);
    assert_int_equal(path_route(r, "/docs/a"), 1);
    assert_int_equal(path_route(r, "/"), -1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__root_prefix_matches_everything(void **state)
{
    struct fx f = {0};
    fx_route(&f, "prefix:/");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/"), 0);
    assert_int_equal(path_route(r, "/a"), 0);
    assert_int_equal(path_route(r, "/a/b/c/"), 0);
    assert_int_equal(path_route(r, "*"), -1);
    assert_int_equal(path_route(r, ""), -1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__literals_compare_in_normal_form(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/%7euser/caf\xc3\xa9");
    fx_route(&f, "/a%2fb");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/~user/caf%C3%A9"), 0);
    assert_int_equal(path_route(r, "/a%2Fb"), 1);
    assert_int_equal(path_route(r, "/a/b"), -1);
    pt_router_free(r);
    fx_free(&f);
}

/* ---- predicates ---- */

static void test_router_match__methods_are_exact_tokens(void **state)
{
    struct fx f = {0};
    fx_methods(&f, fx_route(&f, "/a"), "GET", "HEAD", NULL);
    fx_route(&f, "/b");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(route_for(r, (struct req){.method = "GET", .path = "/a"}), 0);
    assert_int_equal(route_for(r, (struct req){.method = "HEAD", .path = "/a"}), 0);
    assert_int_equal(route_for(r, (struct req){.method = "get", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.method = "POST", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.method = "PURGE", .path = "/b"}), 1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__exact_host_ignores_case_port_and_trailing_dot(void **state)
{
    struct fx f = {0};
    fx_host(&f, fx_route(&f, "/a"), "Api.Example.com");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(route_for(r, (struct req){.authority = "api.example.com", .path = "/a"}), 0);
    assert_int_equal(route_for(r, (struct req){.authority = "API.EXAMPLE.COM:8443", .path = "/a"}),
                     0);
    assert_int_equal(route_for(r, (struct req){.authority = "api.example.com.", .path = "/a"}), 0);
    assert_int_equal(route_for(r, (struct req){.authority = "x.api.example.com", .path = "/a"}),
                     -1);
    assert_int_equal(route_for(r, (struct req){.authority = "example.com", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.authority = "", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.authority = "u@api.example.com", .path = "/a"}),
                     -1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__wildcard_host_matches_any_depth_not_apex(void **state)
{
    struct fx f = {0};
    fx_host(&f, fx_route(&f, "/a"), "*.example.com");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(route_for(r, (struct req){.authority = "a.example.com", .path = "/a"}), 0);
    assert_int_equal(route_for(r, (struct req){.authority = "a.b.example.com:80", .path = "/a"}),
                     0);
    assert_int_equal(route_for(r, (struct req){.authority = "A.Example.COM", .path = "/a"}), 0);
    assert_int_equal(route_for(r, (struct req){.authority = "example.com", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.authority = ".example.com", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.authority = "badexample.com", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.authority = "example.com.evil", .path = "/a"}), -1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__ipv6_literal_host(void **state)
{
    struct fx f = {0};
    fx_host(&f, fx_route(&f, "/a"), "[::1]");
    fx_host(&f, fx_route(&f, "/b"), "[2001:DB8::1]");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(route_for(r, (struct req){.authority = "[::1]:8080", .path = "/a"}), 0);
    assert_int_equal(route_for(r, (struct req){.authority = "[::1]", .path = "/a"}), 0);
    assert_int_equal(route_for(r, (struct req){.authority = "[::2]:8080", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.authority = "[::1", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.authority = "[::1]x", .path = "/a"}), -1);
    assert_int_equal(route_for(r, (struct req){.authority = "[2001:db8::1]:443", .path = "/b"}), 1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__header_predicates(void **state)
{
    struct fx f = {0};
    fx_header(&f, fx_route(&f, "/exact"), "X-Env", FX_EXACT, "prod", false);
    fx_header(&f, fx_route(&f, "/prefix"), "x-env", FX_PREFIX, "pr", false);
    fx_header(&f, fx_route(&f, "/regex"), "x-env", FX_REGEX, "p[a-z]+|staging", false);
    fx_header(&f, fx_route(&f, "/present"), "x-env", FX_PRESENT, NULL, false);
    fx_header(&f, fx_route(&f, "/absent"), "x-env", FX_ABSENT, NULL, false);
    fx_header(&f, fx_route(&f, "/invert"), "x-env", FX_EXACT, "prod", true);
    struct pt_router *r = compile_ok(&f);

    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_headers none, prod, other, multi;
    pt_headers_init(&none, &a, 0);
    pt_headers_init(&prod, &a, 0);
    pt_headers_init(&other, &a, 0);
    pt_headers_init(&multi, &a, 0);
    pt_headers_add_ref(&prod, PT_STR("x-env"), PT_STR("prod"));
    pt_headers_add_ref(&other, PT_STR("x-env"), PT_STR("production-like"));
    pt_headers_add_ref(&multi, PT_STR("x-env"), PT_STR("dev"));
    pt_headers_add_ref(&multi, PT_STR("x-other"), PT_STR("prod"));
    pt_headers_add_ref(&multi, PT_STR("x-env"), PT_STR("prod"));

    assert_int_equal(route_for(r, (struct req){.path = "/exact", .headers = &prod}), 0);
    assert_int_equal(route_for(r, (struct req){.path = "/exact", .headers = &other}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/exact", .headers = &multi}), 0);
    assert_int_equal(route_for(r, (struct req){.path = "/exact", .headers = NULL}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/prefix", .headers = &other}), 1);
    assert_int_equal(route_for(r, (struct req){.path = "/prefix", .headers = &none}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/regex", .headers = &prod}), 2);
    assert_int_equal(route_for(r, (struct req){.path = "/regex", .headers = &other}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/present", .headers = &multi}), 3);
    assert_int_equal(route_for(r, (struct req){.path = "/present", .headers = &none}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/absent", .headers = &none}), 4);
    assert_int_equal(route_for(r, (struct req){.path = "/absent", .headers = NULL}), 4);
    assert_int_equal(route_for(r, (struct req){.path = "/absent", .headers = &prod}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/invert", .headers = &other}), 5);
    assert_int_equal(route_for(r, (struct req){.path = "/invert", .headers = &none}), 5);
    assert_int_equal(route_for(r, (struct req){.path = "/invert", .headers = &prod}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/invert", .headers = &multi}), -1);
    pt_arena_fini(&a);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__header_regex_is_anchored_to_whole_value(void **state)
{
    struct fx f = {0};
    fx_header(&f, fx_route(&f, "/a"), "x-v", FX_REGEX, "b", false);
    fx_header(&f, fx_route(&f, "/b"), "x-v", FX_REGEX, "^a.*$", false);
    struct pt_router *r = compile_ok(&f);
    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_headers h1, h2;
    pt_headers_init(&h1, &a, 0);
    pt_headers_init(&h2, &a, 0);
    pt_headers_add_ref(&h1, PT_STR("x-v"), PT_STR("abc"));
    pt_headers_add_ref(&h2, PT_STR("x-v"), PT_STR("b"));
    assert_int_equal(route_for(r, (struct req){.path = "/a", .headers = &h1}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/a", .headers = &h2}), 0);
    assert_int_equal(route_for(r, (struct req){.path = "/b", .headers = &h1}), 1);
    /* A value that is a slice of a longer buffer: only the slice counts. */
    struct pt_headers h3;
    pt_headers_init(&h3, &a, 0);
    pt_headers_add_ref(&h3, PT_STR("x-v"), (struct pt_str){"bcd", 1});
    assert_int_equal(route_for(r, (struct req){.path = "/a", .headers = &h3}), 0);
    pt_arena_fini(&a);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__query_predicates_decode_names_and_values(void **state)
{
    struct fx f = {0};
    fx_query(&f, fx_route(&f, "/exact"), "q name", FX_EXACT, "a b/c", false);
    fx_query(&f, fx_route(&f, "/prefix"), "v", FX_PREFIX, "1.", false);
    fx_query(&f, fx_route(&f, "/regex"), "id", FX_REGEX, "[0-9]+", false);
    fx_query(&f, fx_route(&f, "/present"), "debug", FX_PRESENT, NULL, false);
    fx_query(&f, fx_route(&f, "/absent"), "debug", FX_ABSENT, NULL, false);
    fx_query(&f, fx_route(&f, "/invert"), "v", FX_EXACT, "2", true);
    struct pt_router *r = compile_ok(&f);

    assert_int_equal(route_for(r, (struct req){.path = "/exact", .query = "q+name=a+b%2Fc"}), 0);
    assert_int_equal(route_for(r, (struct req){.path = "/exact", .query = "x=1&q%20name=a%20b/c"}),
                     0);
    assert_int_equal(route_for(r, (struct req){.path = "/exact", .query = "q+name=a+b"}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/prefix", .query = "v=1.2"}), 1);
    assert_int_equal(route_for(r, (struct req){.path = "/prefix", .query = "v=2.1&v=1.0"}), 1);
    assert_int_equal(route_for(r, (struct req){.path = "/prefix", .query = "v=2.1"}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/regex", .query = "id=%34%32"}), 2);
    assert_int_equal(route_for(r, (struct req){.path = "/regex", .query = "id=42x"}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/regex", .query = "id="}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/present", .query = "a=1&debug&b"}), 3);
    assert_int_equal(route_for(r, (struct req){.path = "/present", .query = "debug=0"}), 3);
    assert_int_equal(route_for(r, (struct req){.path = "/present", .query = "debugx=1"}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/absent", .query = ""}), 4);
    assert_int_equal(route_for(r, (struct req){.path = "/absent", .query = "&&debug"}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/invert", .query = "v=1"}), 5);
    assert_int_equal(route_for(r, (struct req){.path = "/invert", .query = "v=1&v=2"}), -1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__query_malformed_escapes_are_literal(void **state)
{
    struct fx f = {0};
    fx_query(&f, fx_route(&f, "/a"), "p", FX_EXACT, "100%", false);
    fx_query(&f, fx_route(&f, "/b"), "p", FX_REGEX, "%zz", false);
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(route_for(r, (struct req){.path = "/a", .query = "p=100%"}), 0);
    assert_int_equal(route_for(r, (struct req){.path = "/a", .query = "p=100%25"}), 0);
    assert_int_equal(route_for(r, (struct req){.path = "/b", .query = "p=%zz"}), 1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__regex_sees_the_whole_decoded_value(void **state)
{
    struct fx f = {0};
    fx_query(&f, fx_route(&f, "/a"), "id", FX_REGEX, "[0-9]+", false);
    struct pt_router *r = compile_ok(&f);
    /* A decoded NUL does not end the value early. */
    assert_int_equal(route_for(r, (struct req){.path = "/a", .query = "id=1%00"}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/a", .query = "id=1&x=%00"}), 0);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__overlong_regex_value_fails_even_inverted(void **state)
{
    struct fx f = {0};
    fx_header(&f, fx_route(&f, "/h"), "x-v", FX_REGEX, "a*", false);
    fx_header(&f, fx_route(&f, "/hi"), "x-v", FX_REGEX, "b", true);
    fx_query(&f, fx_route(&f, "/q"), "v", FX_REGEX, "a*", false);
    struct pt_router *r = compile_ok(&f);
    size_t n = 8193;
    char *big = pt_xmalloc(n + 3);
    memcpy(big, "v=", 2);
    memset(big + 2, 'a', n);
    big[n + 2] = '\0';
    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_headers h, ok;
    pt_headers_init(&h, &a, 0);
    pt_headers_init(&ok, &a, 0);
    pt_headers_add_ref(&h, PT_STR("x-v"), (struct pt_str){big + 2, n});
    pt_headers_add_ref(&ok, PT_STR("x-v"), (struct pt_str){big + 2, n - 1});
    assert_int_equal(route_for(r, (struct req){.path = "/h", .headers = &h}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/hi", .headers = &h}), -1);
    assert_int_equal(route_for(r, (struct req){.path = "/h", .headers = &ok}), 0);
    assert_int_equal(route_for(r, (struct req){.path = "/hi", .headers = &ok}), 1);
    assert_int_equal(route_for(r, (struct req){.path = "/q", .query = big}), -1);
    big[n + 1] = '\0';
    assert_int_equal(route_for(r, (struct req){.path = "/q", .query = big}), 2);
    pt_arena_fini(&a);
    free(big);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__all_predicates_must_hold(void **state)
{
    struct fx f = {0};
    Portico__Config__V1__Route *rt = fx_route(&f, "/a");
    fx_methods(&f, rt, "POST", NULL);
    fx_host(&f, rt, "example.com");
    fx_header(&f, rt, "x-a", FX_PRESENT, NULL, false);
    fx_query(&f, rt, "b", FX_PRESENT, NULL, false);
    struct pt_router *r = compile_ok(&f);
    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_headers h;
    pt_headers_init(&h, &a, 0);
    pt_headers_add_ref(&h, PT_STR("x-a"), PT_STR("1"));
    struct req q = {"POST", "example.com", "/a", "b", &h};
    assert_int_equal(route_for(r, q), 0);
    struct req q1 = q;
    q1.method = "GET";
    assert_int_equal(route_for(r, q1), -1);
    struct req q2 = q;
    q2.authority = "other.com";
    assert_int_equal(route_for(r, q2), -1);
    struct req q3 = q;
    q3.headers = NULL;
    assert_int_equal(route_for(r, q3), -1);
    struct req q4 = q;
    q4.query = "";
    assert_int_equal(route_for(r, q4), -1);
    pt_arena_fini(&a);
    pt_router_free(r);
    fx_free(&f);
}

/* ---- precedence ---- */

static void test_router_match__priority_beats_specificity(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/users/me");
    fx_route(&f, "prefix:/")->priority = 1;
    fx_route(&f, "/users/{id}")->priority = -1;
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/users/me"), 1);
    assert_int_equal(path_route(r, "/users/42"), 1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__negative_priority_loses_to_default(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/users/me")->priority = -5;
    fx_route(&f, "prefix:/");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/users/me"), 1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__more_literal_segments_win(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/users/{id}");
    fx_route(&f, "/users/me");
    fx_route(&f, "/{a}/{b}");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/users/me"), 1);
    assert_int_equal(path_route(r, "/users/42"), 0);
    assert_int_equal(path_route(r, "/x/y"), 2);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__longest_prefix_wins(void **state)
{
    struct fx f = {0};
    fx_route(&f, "prefix:/");
    fx_route(&f, "prefix:/api");
    fx_route(&f, "prefix:/api/v1");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/api/v1/x"), 2);
    assert_int_equal(path_route(r, "/api/v2/x"), 1);
    assert_int_equal(path_route(r, "/other"), 0);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__single_segment_beats_rest(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/files/**");
    fx_route(&f, "/files/{name}");
    fx_route(&f, "/a/{x}/**");
    fx_route(&f, "/a/{x}/{y}");
    fx_route(&f, "/a/*");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/files/x"), 1);
    assert_int_equal(path_route(r, "/files/x/y"), 0);
    assert_int_equal(path_route(r, "/files"), 0);
    assert_int_equal(path_route(r, "/a/1/2"), 3);
    assert_int_equal(path_route(r, "/a/1/2/3"), 2);
    /* Same literals and singles: the route without '**' wins. */
    assert_int_equal(path_route(r, "/a/1"), 4);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__exact_host_beats_wildcard_beats_none(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/a");
    fx_host(&f, fx_route(&f, "/a"), "*.example.com");
    fx_host(&f, fx_route(&f, "/a"), "api.example.com");
    fx_host(&f, fx_route(&f, "/a"), "*.api.example.com");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(route_for(r, (struct req){.authority = "api.example.com", .path = "/a"}), 2);
    assert_int_equal(route_for(r, (struct req){.authority = "www.example.com", .path = "/a"}), 1);
    /* Two wildcards match: they tie on host, so config order decides. */
    assert_int_equal(route_for(r, (struct req){.authority = "x.api.example.com", .path = "/a"}), 1);
    assert_int_equal(route_for(r, (struct req){.authority = "other.org", .path = "/a"}), 0);
    assert_int_equal(route_for(r, (struct req){.path = "/a"}), 0);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__path_specificity_beats_host(void **state)
{
    struct fx f = {0};
    fx_host(&f, fx_route(&f, "prefix:/"), "api.example.com");
    fx_route(&f, "/users");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(route_for(r, (struct req){.authority = "api.example.com", .path = "/users"}),
                     1);
    assert_int_equal(route_for(r, (struct req){.authority = "api.example.com", .path = "/x"}), 0);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__more_predicates_win(void **state)
{
    struct fx f = {0};
    fx_header(&f, fx_route(&f, "/a"), "x-a", FX_PRESENT, NULL, false);
    Portico__Config__V1__Route *two = fx_route(&f, "/a");
    fx_header(&f, two, "x-a", FX_PRESENT, NULL, false);
    fx_query(&f, two, "q", FX_PRESENT, NULL, false);
    fx_route(&f, "/a");
    struct pt_router *r = compile_ok(&f);
    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_headers h;
    pt_headers_init(&h, &a, 0);
    pt_headers_add_ref(&h, PT_STR("x-a"), PT_STR("1"));
    assert_int_equal(route_for(r, (struct req){.path = "/a", .query = "q", .headers = &h}), 1);
    assert_int_equal(route_for(r, (struct req){.path = "/a", .headers = &h}), 0);
    assert_int_equal(route_for(r, (struct req){.path = "/a"}), 2);
    pt_arena_fini(&a);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__method_list_beats_any_method(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/a");
    fx_methods(&f, fx_route(&f, "/a"), "GET", NULL);
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(route_for(r, (struct req){.method = "GET", .path = "/a"}), 1);
    assert_int_equal(route_for(r, (struct req){.method = "PUT", .path = "/a"}), 0);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__earlier_route_wins_a_tie(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/a/{x}/c");
    fx_route(&f, "/a/b/{y}");
    fx_route(&f, "/a/b/{z}");
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(path_route(r, "/a/b/c"), 0);
    assert_int_equal(path_route(r, "/a/b/d"), 1);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__falls_back_when_best_route_predicates_fail(void **state)
{
    struct fx f = {0};
    fx_route(&f, "prefix:/api");
    fx_methods(&f, fx_route(&f, "/api/users/{id}"), "DELETE", NULL);
    fx_methods(&f, fx_route(&f, "/api/users/{id}"), "GET", NULL);
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(route_for(r, (struct req){.method = "GET", .path = "/api/users/1"}), 2);
    assert_int_equal(route_for(r, (struct req){.method = "DELETE", .path = "/api/users/1"}), 1);
    assert_int_equal(route_for(r, (struct req){.method = "POST", .path = "/api/users/1"}), 0);
    pt_router_free(r);
    fx_free(&f);
}

/* ---- strip_len, params, disabled ---- */

static void test_router_match__strip_len_covers_leading_literals(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/api/v1/{id}")->strip_prefix = true;
    fx_route(&f, "prefix:/svc")->strip_prefix = true;
    fx_route(&f, "/plain/{id}");
    fx_route(&f, "prefix:/")->strip_prefix = true;
    fx_route(&f, "/exact/path")->strip_prefix = true;
    struct pt_router *r = compile_ok(&f);
    struct pt_route_result out;
    assert_true(lookup(r, (struct req){.path = "/api/v1/42"}, &out));
    assert_int_equal(out.strip_len, strlen("/api/v1"));
    assert_true(lookup(r, (struct req){.path = "/svc/x/y"}, &out));
    assert_int_equal(out.strip_len, strlen("/svc"));
    assert_true(lookup(r, (struct req){.path = "/svc"}, &out));
    assert_int_equal(out.strip_len, 4);
    assert_true(lookup(r, (struct req){.path = "/plain/1"}, &out));
    assert_int_equal(out.strip_len, 0);
    assert_true(lookup(r, (struct req){.path = "/other"}, &out));
    assert_int_equal(out.index, 3);
    assert_int_equal(out.strip_len, 0);
    assert_true(lookup(r, (struct req){.path = "/exact/path"}, &out));
    assert_int_equal(out.strip_len, strlen("/exact/path"));
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__strip_len_uses_normalized_literals(void **state)
{
    struct fx f = {0};
    fx_route(&f, "prefix:/caf\xc3\xa9")->strip_prefix = true;
    struct pt_router *r = compile_ok(&f);
    struct pt_route_result out;
    assert_true(lookup(r, (struct req){.path = "/caf%C3%A9/menu"}, &out));
    assert_int_equal(out.strip_len, strlen("/caf%C3%A9"));
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__sixteen_params_captured_in_order(void **state)
{
    struct fx f = {0};
    char tmpl[256] = "", path[256] = "";
    for (int i = 0; i < 15; i++) {
        snprintf(tmpl + strlen(tmpl), sizeof(tmpl) - strlen(tmpl), "/{p%d}", i);
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "/v%d", i);
    }
    strcat(tmpl, "/x/{tail=**}");
    strcat(path, "/x/t/u");
    fx_route(&f, tmpl);
    struct pt_router *r = compile_ok(&f);
    struct pt_route_result out;
    assert_true(lookup(r, (struct req){.path = path}, &out));
    assert_int_equal(out.nparams, 16);
    for (int i = 0; i < 15; i++) {
        char name[8], value[8];
        snprintf(name, sizeof(name), "p%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        assert_true(pt_str_eq(out.params[i].name, pt_str_from_cstr(name)));
        assert_param(&out, name, value);
    }
    assert_param(&out, "tail", "t/u");
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__disabled_routes_skipped_but_keep_index(void **state)
{
    struct fx f = {0};
    fx_enabled(&f, fx_route(&f, "/a"), false);
    fx_route(&f, "/a");
    fx_enabled(&f, fx_route(&f, "/b"), true);
    struct pt_router *r = compile_ok(&f);
    assert_int_equal(pt_router_size(r), 2);
    assert_int_equal(path_route(r, "/a"), 1);
    assert_int_equal(path_route(r, "/b"), 2);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__empty_router_matches_nothing(void **state)
{
    struct fx f = {0};
    struct pt_router *r = compile_ok(&f);
    assert_non_null(r);
    assert_int_equal(path_route(r, "/"), -1);
    pt_router_free(r);
    pt_router_free(NULL);
    fx_free(&f);
}

/* ---- compile errors ---- */

static void expect_in(const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("diagnostics do not mention \"%s\":\n%s", want, text);
}

static void test_router_compile__path_and_prefix_exclusive(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/a")->path_prefix = "/b";
    fx_route(&f, "/a")->path = "";
    unsigned n;
    char *text = compile_fail(&f, &n);
    assert_int_equal(n, 2);
    expect_in(text, "routes.yaml:3: routes[0].path: set exactly one of path and path_prefix");
    expect_in(text, "\nroutes[1].path: set exactly one of path and path_prefix");
    free(text);
    fx_free(&f);
}

static void test_router_compile__template_errors_name_the_field(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/a/**/b");
    fx_route(&f, "/ok");
    fx_route(&f, "prefix:/a/**");
    unsigned n;
    char *text = compile_fail(&f, &n);
    assert_int_equal(n, 2);
    expect_in(text, "routes.yaml:3: routes[0].path: '**' must be the last segment: \"/a/**/b\"");
    expect_in(text, "routes.yaml:9: routes[2].path_prefix: path_prefix must not contain '**'");
    free(text);
    fx_free(&f);
}

static void test_router_compile__bad_methods_reported(void **state)
{
    struct fx f = {0};
    fx_methods(&f, fx_route(&f, "/a"), "GET", "BAD METHOD", "", "GET", NULL);
    char *text = compile_fail(&f, NULL);
    expect_in(text, "routes[0].methods[1]: not a valid method token");
    expect_in(text, "routes[0].methods[2]: not a valid method token");
    expect_in(text, "routes[0].methods[3]: duplicate method \"GET\"");
    free(text);
    fx_free(&f);
}

static void test_router_compile__bad_hosts_reported(void **state)
{
    const char *hosts[] = {
        "api.example.com:80", "*.", "*example.com", "a..b", "a.*.com", "[::1", "[zz]", "bad host",
        "example.com.",       "*"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        struct fx f = {0};
        fx_host(&f, fx_route(&f, "/a"), hosts[i]);
        char *text = compile_fail(&f, NULL);
        expect_in(text, "routes[0].host: ");
        free(text);
        fx_free(&f);
    }
}

static void test_router_compile__bad_predicates_reported(void **state)
{
    struct fx f = {0};
    Portico__Config__V1__Route *rt = fx_route(&f, "/a");
    fx_header(&f, rt, "bad name", FX_EXACT, "x", false);
    fx_header(&f, rt, "x-ok", FX_REGEX, "(unclosed", false);
    fx_header(&f, rt, "x-unset", FX_UNSET, NULL, false);
    fx_query(&f, rt, "", FX_EXACT, "x", false);
    fx_query(&f, rt, "q", FX_REGEX, "a{2,1}", false);
    fx_query(&f, rt, "q", FX_UNSET, NULL, false);
    unsigned n;
    char *text = compile_fail(&f, &n);
    assert_int_equal(n, 6);
    expect_in(text, "routes[0].headers[0].name: not a valid header name");
    expect_in(text, "routes[0].headers[1].regex: invalid regex \"(unclosed\"");
    expect_in(text, "routes[0].headers[2]: set one of exact, prefix, regex or present");
    expect_in(text, "routes[0].query[0].name: empty query parameter name");
    expect_in(text, "routes[0].query[1].regex: invalid regex");
    expect_in(text, "routes[0].query[2]: set one of");
    free(text);
    fx_free(&f);
}

static void test_router_compile__disabled_routes_are_still_validated(void **state)
{
    struct fx f = {0};
    fx_enabled(&f, fx_route(&f, "/a/{"), false);
    char *text = compile_fail(&f, NULL);
    expect_in(text, "routes[0].path: ");
    free(text);
    fx_free(&f);
}

static void test_router_compile__missing_route_reported(void **state)
{
    struct fx f = {0};
    fx_route(&f, "/a");
    fx_route(&f, "/b");
    Portico__Config__V1__Route *saved = f.routes[1];
    f.routes[1] = NULL;
    char *text = compile_fail(&f, NULL);
    expect_in(text, "routes[1]: missing route");
    f.routes[1] = saved;
    free(text);
    fx_free(&f);
}

static void test_router_compile__null_diag_still_fails_cleanly(void **state)
{
    struct fx f = {0};
    fx_route(&f, "nope");
    assert_null(fx_compile(&f, NULL));
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_match__literal_is_exact_and_case_sensitive),
        cmocka_unit_test(test_router_match__trailing_slash_is_significant),
        cmocka_unit_test(test_router_match__star_is_one_nonempty_segment),
        cmocka_unit_test(test_router_match__param_captures_one_segment),
        cmocka_unit_test(test_router_match__captures_are_undecoded_slices),
        cmocka_unit_test(test_router_match__rest_matches_zero_or_more_segments),
        cmocka_unit_test(test_router_match__path_prefix_is_segment_wise),
        cmocka_unit_test(test_router_match__root_prefix_matches_everything),
        cmocka_unit_test(test_router_match__literals_compare_in_normal_form),
        cmocka_unit_test(test_router_match__methods_are_exact_tokens),
        cmocka_unit_test(test_router_match__exact_host_ignores_case_port_and_trailing_dot),
        cmocka_unit_test(test_router_match__wildcard_host_matches_any_depth_not_apex),
        cmocka_unit_test(test_router_match__ipv6_literal_host),
        cmocka_unit_test(test_router_match__header_predicates),
        cmocka_unit_test(test_router_match__header_regex_is_anchored_to_whole_value),
        cmocka_unit_test(test_router_match__query_predicates_decode_names_and_values),
        cmocka_unit_test(test_router_match__query_malformed_escapes_are_literal),
        cmocka_unit_test(test_router_match__regex_sees_the_whole_decoded_value),
        cmocka_unit_test(test_router_match__overlong_regex_value_fails_even_inverted),
        cmocka_unit_test(test_router_match__all_predicates_must_hold),
        cmocka_unit_test(test_router_match__priority_beats_specificity),
        cmocka_unit_test(test_router_match__negative_priority_loses_to_default),
        cmocka_unit_test(test_router_match__more_literal_segments_win),
        cmocka_unit_test(test_router_match__longest_prefix_wins),
        cmocka_unit_test(test_router_match__single_segment_beats_rest),
        cmocka_unit_test(test_router_match__exact_host_beats_wildcard_beats_none),
        cmocka_unit_test(test_router_match__path_specificity_beats_host),
        cmocka_unit_test(test_router_match__more_predicates_win),
        cmocka_unit_test(test_router_match__method_list_beats_any_method),
        cmocka_unit_test(test_router_match__earlier_route_wins_a_tie),
        cmocka_unit_test(test_router_match__falls_back_when_best_route_predicates_fail),
        cmocka_unit_test(test_router_match__strip_len_covers_leading_literals),
        cmocka_unit_test(test_router_match__strip_len_uses_normalized_literals),
        cmocka_unit_test(test_router_match__sixteen_params_captured_in_order),
        cmocka_unit_test(test_router_match__disabled_routes_skipped_but_keep_index),
        cmocka_unit_test(test_router_match__empty_router_matches_nothing),
        cmocka_unit_test(test_router_compile__path_and_prefix_exclusive),
        cmocka_unit_test(test_router_compile__template_errors_name_the_field),
        cmocka_unit_test(test_router_compile__bad_methods_reported),
        cmocka_unit_test(test_router_compile__bad_hosts_reported),
        cmocka_unit_test(test_router_compile__bad_predicates_reported),
        cmocka_unit_test(test_router_compile__disabled_routes_are_still_validated),
        cmocka_unit_test(test_router_compile__missing_route_reported),
        cmocka_unit_test(test_router_compile__null_diag_still_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
