/*
 * The trie against the linear reference: thousands of random routes over a
 * small vocabulary (so they overlap a lot) and thousands of random requests;
 * both matchers must give the same route, captures and strip_len.
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

static uint32_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state % n;
}

static const char *const literals[] = {"a", "b", "api", "v1", "users", "x", "%41", "caf\xc3\xa9"};
static const char *const req_segments[] = {"a", "b",         "api", "v1", "users", "x",
                                           "A", "caf%C3%A9", "42",  "",   "a%2Fb"};
static const char *const route_hosts[] = {"a.com", "b.a.com", "*.a.com", "*.b.a.com", "[::1]"};
static const char *const req_hosts[] = {"",       "a.com", "b.a.com:8080", "c.b.a.com",
                                        "A.COM.", "z.com", "[::1]:80",     "x.a.com"};

static void random_template(char *out, size_t cap, bool *prefix)
{
    size_t n = 0;
    uint32_t nsegs = rnd(5);
    int nparams = 0;
    *prefix = rnd(6) == 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < nsegs; i++) {
        uint32_t k = rnd(10);
        if (k < 6)
            n += (size_t)snprintf(out + n, cap - n, "/%s", literals[rnd(8)]);
        else if (k < 7)
            n += (size_t)snprintf(out + n, cap - n, "/*");
        else
            n += (size_t)snprintf(out + n, cap - n, "/{p%d}", nparams++);
    }
    if (!*prefix) {
        uint32_t tail = rnd(8);
        if (tail == 0)
            n += (size_t)snprintf(out + n, cap - n, "/**");
        else if (tail == 1)
            n += (size_t)snprintf(out + n, cap - n, "/{rest=**}");
        else if (tail == 2 || n == 0)
            n += (size_t)snprintf(out + n, cap - n, "/");
    } else if (n == 0) {
        snprintf(out, cap, "/");
    }
}

static void add_random_route(struct fx *f)
{
    char tmpl[128];
    bool prefix;
    random_template(tmpl, sizeof(tmpl), &prefix);
    char spec[140];
    snprintf(spec, sizeof(spec), "%s%s", prefix ? "prefix:" : "", tmpl);
    Portico__Config__V1__Route *r = fx_route(f, spec);
    static const int32_t prios[] = {-1, 0, 0, 0, 0, 1};
    r->priority = prios[rnd(6)];
    r->strip_prefix = rnd(2);
    if (rnd(3) == 0)
        fx_host(f, r, route_hosts[rnd(5)]);
    switch (rnd(6)) {
    case 0:
        fx_methods(f, r, "GET", NULL);
        break;
    case 1:
        fx_methods(f, r, "POST", "GET", NULL);
        break;
    default:
        break;
    }
    if (rnd(5) == 0)
        fx_header(f, r, "x-h", rnd(2) ? FX_EXACT : FX_PRESENT, "1", rnd(3) == 0);
    if (rnd(8) == 0)
        fx_header(f, r, "x-r", FX_REGEX, "[0-9]+", false);
    if (rnd(5) == 0)
        fx_query(f, r, "q", rnd(2) ? FX_EXACT : FX_ABSENT, "1", rnd(3) == 0);
    if (rnd(20) == 0)
        fx_enabled(f, r, false);
}

static void random_path(char *out, size_t cap)
{
    size_t n = 0;
    uint32_t nsegs = rnd(6);
    for (uint32_t i = 0; i < nsegs; i++) {
        const char *s = req_segments[rnd(11)];
        if (*s == '\0' && i + 1 < nsegs)
            s = "b";
        n += (size_t)snprintf(out + n, cap - n, "/%s", s);
    }
    if (n == 0)
        snprintf(out, cap, "/");
}

static void compare(const struct pt_router *r, const struct pt_route_request *req, unsigned *hits)
{
    struct pt_route_result a, b;
    bool ha = pt_router_match(r, req, &a);
    bool hb = pt_router_match_linear(r, req, &b);
    if (ha != hb)
        fail_msg("trie %s, linear %s for %.*s%.*s", ha ? "hit" : "miss", hb ? "hit" : "miss",
                 (int)req->authority.len, req->authority.ptr, (int)req->path.len, req->path.ptr);
    if (!ha)
        return;
    (*hits)++;
    if (a.index != b.index)
        fail_msg("trie route %u, linear route %u for %.*s %.*s", a.index, b.index,
                 (int)req->authority.len, req->authority.ptr, (int)req->path.len, req->path.ptr);
    assert_int_equal(a.strip_len, b.strip_len);
    assert_int_equal(a.nparams, b.nparams);
    for (uint16_t i = 0; i < a.nparams; i++) {
        assert_true(pt_str_eq(a.params[i].name, b.params[i].name));
        assert_ptr_equal(a.params[i].value.ptr, b.params[i].value.ptr);
        assert_int_equal(a.params[i].value.len, b.params[i].value.len);
    }
}

static void run_round(uint32_t seed, size_t nroutes, size_t nrequests)
{
    rng_state = seed;
    struct fx f = {0};
    for (size_t i = 0; i < nroutes; i++)
        add_random_route(&f);
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_router *r = fx_compile(&f, &d);
    if (!r)
        fail_msg("compile failed:\n%s", pt_diag_text(&d));
    pt_diag_fini(&d);

    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_headers hsets[4];
    for (int i = 0; i < 4; i++)
        pt_headers_init(&hsets[i], &a, 0);
    pt_headers_add_ref(&hsets[1], PT_STR("x-h"), PT_STR("1"));
    pt_headers_add_ref(&hsets[2], PT_STR("x-h"), PT_STR("2"));
    pt_headers_add_ref(&hsets[2], PT_STR("x-r"), PT_STR("123"));
    pt_headers_add_ref(&hsets[3], PT_STR("x-r"), PT_STR("12a"));
    pt_headers_add_ref(&hsets[3], PT_STR("x-h"), PT_STR("1"));
    static const char *const queries[] = {"", "q=1", "q=2", "a=b&q", "q=%31"};
    static const char *const methods[] = {"GET", "POST", "DELETE"};

    unsigned hits = 0;
    for (size_t i = 0; i < nrequests; i++) {
        char path[128];
        random_path(path, sizeof(path));
        struct pt_route_request req = {
            .method = pt_str_from_cstr(methods[rnd(3)]),
            .authority = pt_str_from_cstr(req_hosts[rnd(8)]),
            .path = pt_str_from_cstr(path),
            .query = pt_str_from_cstr(queries[rnd(5)]),
            .headers = rnd(5) ? &hsets[rnd(4)] : NULL,
        };
        compare(r, &req, &hits);
    }
    /* The comparison means something only if a good share of requests hit. */
    assert_true(hits > nrequests / 4);
    pt_arena_fini(&a);
    pt_router_free(r);
    fx_free(&f);
}

static void test_router_match__trie_agrees_with_linear_small_tables(void **state)
{
    for (uint32_t seed = 1; seed <= 40; seed++)
        run_round(seed * 2654435761u, 60, 2000);
}

static void test_router_match__trie_agrees_with_linear_large_table(void **state)
{
    run_round(0x9e3779b9u, 3000, 5000);
    run_round(0x85ebca6bu, 5000, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_match__trie_agrees_with_linear_small_tables),
        cmocka_unit_test(test_router_match__trie_agrees_with_linear_large_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
