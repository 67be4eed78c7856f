/*
 * The HTTP rule matcher table: precedence, verbs, custom methods, 404 vs
 * 405, percent-decoding of path variables, dot and empty segments,
 * additional_bindings, the POST /pkg.Service/Method fallback, compile
 * errors and conflicts, and limits.
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

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pt_arena_fini(&f->arena);
    return 0;
}

static void test_match__literal_beats_variable_beats_wildcard(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/Rest", "GET", "/v1/**", NULL, NULL},
        {"s.S/Var", "GET", "/v1/{name}", NULL, NULL},
        {"s.S/Lit", "GET", "/v1/special", NULL, NULL},
        {"s.S/Deep", "GET", "/v1/special/{id}", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match(f, t, "GET", "/v1/special"), 0);
    assert_pt_str(f->m.method_name, "s.S/Lit");
    assert_int_equal(f->m.method, 2);
    ASSERT_NO_PARAMS(&f->m);
    assert_int_equal(match(f, t, "GET", "/v1/other"), 0);
    assert_pt_str(f->m.method_name, "s.S/Var");
    ASSERT_PARAMS(&f->m, "name=other");
    assert_true(f->m.params[0].from_path);
    assert_int_equal(match(f, t, "GET", "/v1/special/7"), 0);
    assert_pt_str(f->m.method_name, "s.S/Deep");
    assert_int_equal(match(f, t, "GET", "/v1/other/7"), 0);
    assert_pt_str(f->m.method_name, "s.S/Rest");
    assert_int_equal(match(f, t, "GET", "/v1"), 0);
    assert_pt_str(f->m.method_name, "s.S/Rest");
    assert_int_equal(match(f, t, "GET", "/v2"), PT_ERR_NO_ROUTE);
    pt_httprule_table_free(t);
}

static void test_match__precedence_is_left_to_right(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/A", "GET", "/v1/{a}/y", NULL, NULL},
        {"s.S/B", "GET", "/v1/x/{b}", NULL, NULL},
        {"s.S/C", "GET", "/v1/x/{c=**}", NULL, NULL},
        {"s.S/D", "GET", "/v1/{d}/y/z", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    /* the literal at the second segment decides, whatever follows */
    assert_int_equal(match(f, t, "GET", "/v1/x/y"), 0);
    assert_pt_str(f->m.method_name, "s.S/B");
    assert_int_equal(match(f, t, "GET", "/v1/x/y/z"), 0);
    assert_pt_str(f->m.method_name, "s.S/C");
    ASSERT_PARAMS(&f->m, "c=y/z");
    assert_int_equal(match(f, t, "GET", "/v1/w/y/z"), 0);
    assert_pt_str(f->m.method_name, "s.S/D");
    assert_int_equal(match(f, t, "GET", "/v1/w/y"), 0);
    assert_pt_str(f->m.method_name, "s.S/A");
    /* backtracking: the literal branch fails further on, the variable wins */
    assert_int_equal(match(f, t, "GET", "/v1/x"), 0);
    assert_pt_str(f->m.method_name, "s.S/C");
    ASSERT_NO_PARAMS(&f->m); /* '**' matched nothing: no binding */
    pt_httprule_table_free(t);
}

static void test_match__end_beats_empty_rest(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/Rest", "GET", "/v1/{p=**}", NULL, NULL},
        {"s.S/Exact", "GET", "/v1", NULL, NULL},
        {"s.S/Root", "GET", "/", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match(f, t, "GET", "/v1"), 0);
    assert_pt_str(f->m.method_name, "s.S/Exact");
    assert_int_equal(match(f, t, "GET", "/v1/"), 0);
    assert_pt_str(f->m.method_name, "s.S/Rest");
    ASSERT_PARAMS(&f->m, "p=");
    assert_int_equal(match(f, t, "GET", "/"), 0);
    assert_pt_str(f->m.method_name, "s.S/Root");
    assert_int_equal(match(f, t, "GET", "/v2"), PT_ERR_NO_ROUTE);
    pt_httprule_table_free(t);
}

static void test_match__precedence_is_per_method(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/Get", "GET", "/v1/{name}", NULL, NULL},
        {"s.S/Special", "POST", "/v1/special", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match(f, t, "GET", "/v1/special"), 0);
    assert_pt_str(f->m.method_name, "s.S/Get");
    assert_int_equal(match(f, t, "POST", "/v1/special"), 0);
    assert_pt_str(f->m.method_name, "s.S/Special");
    pt_httprule_table_free(t);
}

static void test_match__verbs(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/Get", "GET", "/v1/{name}", NULL, NULL},
        {"s.S/Cancel", "POST", "/v1/{name}:cancel", NULL, NULL},
        {"s.S/CancelGet", "GET", "/v1/{name}:cancel", NULL, NULL},
        {"s.S/Undelete", "POST", "/v1/{name=**}:undelete", NULL, NULL},
        {"s.S/Batch", "POST", "/v1/things:batchGet", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match(f, t, "POST", "/v1/op1:cancel"), 0);
    assert_pt_str(f->m.method_name, "s.S/Cancel");
    ASSERT_PARAMS(&f->m, "name=op1");
    /* the exact verb wins over a template without one */
    assert_int_equal(match(f, t, "GET", "/v1/op1:cancel"), 0);
    assert_pt_str(f->m.method_name, "s.S/CancelGet");
    /* another verb: the template without a verb takes the whole segment */
    assert_int_equal(match(f, t, "GET", "/v1/op1:other"), 0);
    assert_pt_str(f->m.method_name, "s.S/Get");
    ASSERT_PARAMS(&f->m, "name=op1:other");
    /* %3A never starts a verb */
    assert_int_equal(match(f, t, "GET", "/v1/op1%3Acancel"), 0);
    assert_pt_str(f->m.method_name, "s.S/Get");
    ASSERT_PARAMS(&f->m, "name=op1:cancel");
    /* a ':' at the start of the segment is not a verb */
    assert_int_equal(match(f, t, "GET", "/v1/:cancel"), 0);
    assert_pt_str(f->m.method_name, "s.S/Get");
    ASSERT_PARAMS(&f->m, "name=:cancel");
    /* the last ':' splits */
    assert_int_equal(match(f, t, "POST", "/v1/a:b:cancel"), 0);
    assert_pt_str(f->m.method_name, "s.S/Cancel");
    ASSERT_PARAMS(&f->m, "name=a:b");
    /* '**' with a verb */
    assert_int_equal(match(f, t, "POST", "/v1/a/b/c:undelete"), 0);
    assert_pt_str(f->m.method_name, "s.S/Undelete");
    ASSERT_PARAMS(&f->m, "name=a/b/c");
    assert_int_equal(match(f, t, "POST", "/v1/things:batchGet"), 0);
    assert_pt_str(f->m.method_name, "s.S/Batch");
    /* a template with a verb needs the verb, exactly */
    assert_int_equal(match(f, t, "POST", "/v1/things"), PT_ERR_METHOD_NOT_ALLOWED);
    assert_int_equal(match(f, t, "POST", "/v1/things:batchget"), PT_ERR_METHOD_NOT_ALLOWED);
    assert_int_equal(match(f, t, "POST", "/v1/things:"), PT_ERR_METHOD_NOT_ALLOWED);
    assert_int_equal(match(f, t, "POST", "/v1/things:batchGet/x"), PT_ERR_NO_ROUTE);
    /* verbs compare canonically */
    assert_int_equal(match(f, t, "POST", "/v1/things:batch%47et"), 0);
    assert_pt_str(f->m.method_name, "s.S/Batch");
    pt_httprule_table_free(t);
}

static void test_match__custom_methods(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/Head", "HEAD", "/v1/{name}", NULL, NULL},
        {"s.S/Purge", "PURGE", "/v1/{name}", NULL, NULL},
        {"s.S/Opts", "OPTIONS", "/v1/**", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match(f, t, "PURGE", "/v1/x"), 0);
    assert_pt_str(f->m.method_name, "s.S/Purge");
    assert_pt_str(f->m.pattern, "PURGE /v1/{name}");
    assert_int_equal(match(f, t, "HEAD", "/v1/x"), 0);
    assert_pt_str(f->m.method_name, "s.S/Head");
    assert_int_equal(match(f, t, "OPTIONS", "/v1/x/y"), 0);
    assert_pt_str(f->m.method_name, "s.S/Opts");
    /* methods are case-sensitive */
    assert_int_equal(match(f, t, "purge", "/v1/x"), PT_ERR_METHOD_NOT_ALLOWED);
    pt_httprule_table_free(t);

    const struct rule bad[] = {{"s.S/X", "GE T", "/v1", NULL, NULL}};
    table_bad(bad, 1, NULL, "invalid HTTP method \"GE T\"");
    const struct rule empty[] = {{"s.S/X", "", "/v1", NULL, NULL}};
    table_bad(empty, 1, NULL, "invalid HTTP method");
}

static void test_match__405_lists_the_methods_of_the_path(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/Get", "GET", "/v1/{name}", NULL, NULL},
        {"s.S/Delete", "DELETE", "/v1/{name}", NULL, NULL},
        {"s.S/Run", "POST", "/v1/{name}:run", NULL, NULL},
        {"s.S/Other", "PUT", "/v2/x", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match(f, t, "PUT", "/v1/a"), PT_ERR_METHOD_NOT_ALLOWED);
    assert_int_equal(f->m.nallow, 2);
    assert_pt_str(f->m.allow[0], "GET");
    assert_pt_str(f->m.allow[1], "DELETE");
    assert_non_null(f->m.reason);
    /* "a:run" matches POST (verb) and GET, DELETE (whole segment) */
    assert_int_equal(match(f, t, "PUT", "/v1/a:run"), PT_ERR_METHOD_NOT_ALLOWED);
    assert_int_equal(f->m.nallow, 3);
    assert_pt_str(f->m.allow[2], "POST");
    /* a method no rule uses */
    assert_int_equal(match(f, t, "BREW", "/v1/a"), PT_ERR_METHOD_NOT_ALLOWED);
    assert_int_equal(f->m.nallow, 2);
    /* no template matches the path at all */
    assert_int_equal(match(f, t, "GET", "/v3/a"), PT_ERR_NO_ROUTE);
    assert_int_equal(f->m.nallow, 0);
    assert_int_equal(match(f, t, "GET", "/v1/a/b"), PT_ERR_NO_ROUTE);
    assert_int_equal(match(f, t, "GET", ""), PT_ERR_NO_ROUTE);
    assert_int_equal(match(f, t, "GET", "*"), PT_ERR_NO_ROUTE);
    pt_httprule_table_free(t);
}

static void test_match__single_segment_variable_decodes_everything(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/One", "GET", "/v1/{name}", NULL, NULL},
        {"s.S/Two", "GET", "/v1/{a}/{b}", NULL, NULL},
        {"s.S/Lit", "GET", "/lit/{x=abc}", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    /* %2F binds a '/' and never splits the path */
    assert_int_equal(match(f, t, "GET", "/v1/a%2Fb"), 0);
    assert_pt_str(f->m.method_name, "s.S/One");
    ASSERT_PARAMS(&f->m, "name=a/b");
    assert_int_equal(match(f, t, "GET", "/v1/a%2fb%2F"), 0);
    ASSERT_PARAMS(&f->m, "name=a/b/");
    /* %252F is a literal "%2F" */
    assert_int_equal(match(f, t, "GET", "/v1/a%252Fb"), 0);
    ASSERT_PARAMS(&f->m, "name=a%2Fb");
    assert_int_equal(match(f, t, "GET", "/v1/%20%3F%23%25%2B+"), 0);
    ASSERT_PARAMS(&f->m, "name= ?#%++");
    assert_int_equal(match(f, t, "GET", "/v1/caf%C3%A9"), 0);
    ASSERT_PARAMS(&f->m, "name=caf\xc3\xa9");
    assert_int_equal(match(f, t, "GET", "/v1/caf\xc3\xa9"), 0);
    ASSERT_PARAMS(&f->m, "name=caf\xc3\xa9");
    assert_int_equal(match(f, t, "GET", "/v1/%E2%82%AC/%F0%9F%98%80"), 0);
    ASSERT_PARAMS(&f->m, "a=\xe2\x82\xac", "b=\xf0\x9f\x98\x80");
    assert_int_equal(match(f, t, "GET", "/lit/abc"), 0);
    ASSERT_PARAMS(&f->m, "x=abc");
    assert_int_equal(match(f, t, "GET", "/lit/%61bc"), 0);
    ASSERT_PARAMS(&f->m, "x=abc");
    pt_httprule_table_free(t);
}

static void test_match__multi_segment_variable_keeps_2f(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/Rest", "GET", "/v1/{name=**}", NULL, NULL},
        {"s.S/Book", "GET", "/v2/{name=shelves/*/books/*}", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match(f, t, "GET", "/v1/a%2Fb/c"), 0);
    ASSERT_PARAMS(&f->m, "name=a%2Fb/c");
    assert_int_equal(match(f, t, "GET", "/v1/a%2fb"), 0);
    ASSERT_PARAMS(&f->m, "name=a%2fb");
    /* everything else is decoded; %252F arrives as "%2F" too (the rule's cost) */
    assert_int_equal(match(f, t, "GET", "/v1/a%252Fb/%20x%3A/caf%C3%A9"), 0);
    ASSERT_PARAMS(&f->m, "name=a%2Fb/ x:/caf\xc3\xa9");
    assert_int_equal(match(f, t, "GET", "/v1/a//b/"), 0);
    ASSERT_PARAMS(&f->m, "name=a//b/");
    assert_int_equal(match(f, t, "GET", "/v2/shelves/s%2F1/books/b%201"), 0);
    ASSERT_PARAMS(&f->m, "name=shelves/s%2F1/books/b 1");
    assert_int_equal(match(f, t, "GET", "/v2/shelves/s1/books"), PT_ERR_NO_ROUTE);
    assert_int_equal(match(f, t, "GET", "/v2/shelves/s1/books/b/c"), PT_ERR_NO_ROUTE);
    pt_httprule_table_free(t);
}

static void test_match__invalid_encodings_rejected(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/One", "GET", "/v1/{name}", NULL, NULL},
        {"s.S/Lit", "GET", "/lit/x", NULL, NULL},
        {"s.S/Rest", "GET", "/v2/{name=**}", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    const char *bad[] = {"/v1/%GZ",  "/v1/%4",       "/v1/%",      "/v1/a%2",
                         "/lit/%zz", "/nothing/%G0", "/v2/a/%x1/b"};
    for (size_t i = 0; i < N(bad); i++) {
        if (match(f, t, "GET", bad[i]) != PT_ERR_INVALID)
            fail_msg("%s accepted", bad[i]);
        assert_non_null(f->m.reason);
    }
    /* invalid UTF-8 after decoding */
    const char *bad_utf8[] = {"/v1/%C3%28",       "/v1/%FF",  "/v1/%C0%AF",  "/v1/%ED%A0%80",
                              "/v1/%F4%90%80%80", "/v1/\xc3", "/v2/a/%E2%82"};
    for (size_t i = 0; i < N(bad_utf8); i++) {
        if (match(f, t, "GET", bad_utf8[i]) != PT_ERR_INVALID)
            fail_msg("%s accepted", bad_utf8[i]);
        assert_string_equal(f->m.reason, "path variable value is not valid UTF-8");
    }
    /* NUL is valid UTF-8 */
    assert_int_equal(match(f, t, "GET", "/v1/a%00b"), 0);
    assert_int_equal(f->m.params[0].value.len, 3);
    pt_httprule_table_free(t);
}

static void test_match__literals_compare_canonically(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/Tilde", "GET", "/v1/~user", NULL, NULL},
        {"s.S/Colon", "GET", "/v1/a%3Ab", NULL, NULL},
        {"s.S/Cafe", "GET", "/v1/caf%c3%a9", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match(f, t, "GET", "/v1/%7Euser"), 0);
    assert_pt_str(f->m.method_name, "s.S/Tilde");
    assert_int_equal(match(f, t, "GET", "/v1/%7euser"), 0);
    assert_int_equal(match(f, t, "GET", "/v1/a%3ab"), 0);
    assert_pt_str(f->m.method_name, "s.S/Colon");
    /* a reserved character and its escape differ */
    assert_int_equal(match(f, t, "GET", "/v1/a:b"), PT_ERR_NO_ROUTE);
    assert_int_equal(match(f, t, "GET", "/v1/caf\xc3\xa9"), 0);
    assert_pt_str(f->m.method_name, "s.S/Cafe");
    assert_int_equal(match(f, t, "GET", "/v1/CAF%C3%A9"), PT_ERR_NO_ROUTE);
    pt_httprule_table_free(t);
}

static void test_match__dot_segments_never_match(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/One", "GET", "/v1/{name}", NULL, NULL},
        {"s.S/Rest", "GET", "/v2/{name=**}", NULL, NULL},
        {"s.S/Star", "GET", "/v3/*/x", NULL, NULL},
        {"s.S/Verb", "GET", "/v4/{name}:do", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    const char *dots[] = {"/v1/..",        "/v1/.",       "/v1/%2E%2E", "/v1/.%2e",
                          "/v2/a/../b",    "/v2/a/%2e/b", "/v2/..",     "/v3/../x",
                          "/v1/../v2/etc", "/v4/..:do",   "/v4/%2E:do"};
    for (size_t i = 0; i < N(dots); i++) {
        if (match(f, t, "GET", dots[i]) != PT_ERR_NO_ROUTE)
            fail_msg("%s matched", dots[i]);
    }
    /* but dots inside a segment are ordinary */
    assert_int_equal(match(f, t, "GET", "/v1/..."), 0);
    ASSERT_PARAMS(&f->m, "name=...");
    assert_int_equal(match(f, t, "GET", "/v1/a..b"), 0);
    assert_int_equal(match(f, t, "GET", "/v1/..:do"), 0); /* not the verb template's */
    assert_pt_str(f->m.method_name, "s.S/One");
    /* %2E%2E%2F in one segment is a value, not a path */
    assert_int_equal(match(f, t, "GET", "/v1/%2E%2E%2Fetc"), 0);
    ASSERT_PARAMS(&f->m, "name=../etc");
    pt_httprule_table_free(t);
}

static void test_match__empty_segments(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/One", "GET", "/v1/{name}", NULL, NULL},
        {"s.S/Star", "GET", "/v2/*/x", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match(f, t, "GET", "/v1/"), PT_ERR_NO_ROUTE);
    assert_int_equal(match(f, t, "GET", "/v2//x"), PT_ERR_NO_ROUTE);
    assert_int_equal(match(f, t, "GET", "/v1//"), PT_ERR_NO_ROUTE);
    assert_int_equal(match(f, t, "GET", "//v1/a"), PT_ERR_NO_ROUTE);
    pt_httprule_table_free(t);
}

static void test_match__additional_bindings(void **state)
{
    struct fixture *f = *state;
    const struct pt_httprule_spec more[] = {
        {.method = PT_STR("GET"), .path = PT_STR("/v1/users/{user_id}/messages/{message_id}")},
        {.method = PT_STR("POST"),
         .path = PT_STR("/v1/messages"),
         .body = PT_STR("message"),
         .response_body = PT_STR("result")},
    };
    const struct pt_httprule_spec rule = {
        .method = PT_STR("GET"),
        .path = PT_STR("/v1/{name=messages/*}"),
        .additional_bindings = more,
        .nadditional_bindings = 2,
    };
    const struct pt_httprule_method methods[] = {
        {PT_STR("pkg.Messaging/GetMessage"), &rule},
    };
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_httprule_table *t = pt_httprule_table_compile(methods, 1, NULL, NULL, &d);
    assert_non_null(t);
    pt_diag_fini(&d);

    assert_int_equal(match(f, t, "GET", "/v1/messages/123"), 0);
    assert_int_equal(f->m.binding, 0);
    assert_int_equal(f->m.body, PT_HTTPRULE_BODY_NONE);
    ASSERT_PARAMS(&f->m, "name=messages/123");
    assert_int_equal(match(f, t, "GET", "/v1/users/me/messages/123"), 0);
    assert_int_equal(f->m.binding, 1);
    ASSERT_PARAMS(&f->m, "user_id=me", "message_id=123");
    assert_int_equal(match(f, t, "POST", "/v1/messages"), 0);
    assert_int_equal(f->m.binding, 2);
    assert_int_equal(f->m.method, 0);
    assert_pt_str(f->m.method_name, "pkg.Messaging/GetMessage");
    assert_int_equal(f->m.body, PT_HTTPRULE_BODY_FIELD);
    assert_int_equal(f->m.body_field.nseg, 1);
    assert_pt_str(f->m.body_field.seg[0], "message");
    assert_int_equal(f->m.response_field.nseg, 1);
    assert_pt_str(f->m.response_field.seg[0], "result");
    assert_false(f->m.fallback);
    pt_httprule_table_free(t);

    /* additional bindings may not nest */
    const struct pt_httprule_spec inner[] = {{.method = PT_STR("GET"), .path = PT_STR("/x")}};
    const struct pt_httprule_spec nested[] = {{.method = PT_STR("GET"),
                                               .path = PT_STR("/y"),
                                               .additional_bindings = inner,
                                               .nadditional_bindings = 1}};
    const struct pt_httprule_spec outer = {.method = PT_STR("GET"),
                                           .path = PT_STR("/z"),
                                           .additional_bindings = nested,
                                           .nadditional_bindings = 1};
    const struct pt_httprule_method m2[] = {{PT_STR("pkg.S/M"), &outer}};
    pt_diag_init(&d);
    assert_null(pt_httprule_table_compile(m2, 1, NULL, NULL, &d));
    assert_non_null(strstr(pt_diag_text(&d), "pkg.S/M.additional_bindings[0]: additional_bindings "
                                             "may not have additional_bindings"));
    pt_diag_fini(&d);

    /* an additional binding that repeats the rule conflicts */
    const struct pt_httprule_spec dup[] = {{.method = PT_STR("GET"), .path = PT_STR("/v1/{x}")}};
    const struct pt_httprule_spec r3 = {.method = PT_STR("GET"),
                                        .path = PT_STR("/v1/{name}"),
                                        .additional_bindings = dup,
                                        .nadditional_bindings = 1};
    const struct pt_httprule_method m3[] = {{PT_STR("pkg.S/M"), &r3}};
    pt_diag_init(&d);
    assert_null(pt_httprule_table_compile(m3, 1, NULL, NULL, &d));
    assert_non_null(strstr(pt_diag_text(&d), "conflicts with"));
    pt_diag_fini(&d);
}

static void test_match__fallback_routes(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"pkg.v1.Greeter/SayHello", NULL, NULL, NULL, NULL},
        {"pkg.v1.Greeter/SayBye", NULL, NULL, NULL, NULL},
        {"pkg.v1.Greeter/Annotated", "GET", "/v1/hello/{name}", NULL, NULL},
    };
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    assert_int_equal(match3(f, t, "POST", "/pkg.v1.Greeter/SayHello", "a=1"), 0);
    assert_int_equal(f->m.method, 0);
    assert_true(f->m.fallback);
    assert_int_equal(f->m.body, PT_HTTPRULE_BODY_ALL);
    assert_pt_str(f->m.pattern, "POST /pkg.v1.Greeter/SayHello");
    ASSERT_NO_PARAMS(&f->m); /* body "*": no query binding */
    assert_int_equal(match(f, t, "POST", "/pkg.v1.Greeter/SayBye"), 0);
    assert_int_equal(f->m.method, 1);
    assert_int_equal(match(f, t, "GET", "/pkg.v1.Greeter/SayBye"), PT_ERR_METHOD_NOT_ALLOWED);
    assert_int_equal(f->m.nallow, 1);
    assert_pt_str(f->m.allow[0], "POST");
    /* a method with a rule gets no fallback */
    assert_int_equal(match(f, t, "POST", "/pkg.v1.Greeter/Annotated"), PT_ERR_NO_ROUTE);
    pt_httprule_table_free(t);

    const struct rule bad[] = {{"pkg.Greeter", NULL, NULL, NULL, NULL}};
    table_bad(bad, 1, NULL, "\"pkg.Service/Method\"");
    const struct rule bad2[] = {{"pkg.Greeter/Say/Hello", NULL, NULL, NULL, NULL}};
    table_bad(bad2, 1, NULL, "\"pkg.Service/Method\"");
    const struct rule bad3[] = {{"/pkg.Greeter", NULL, NULL, NULL, NULL}};
    table_bad(bad3, 1, NULL, "\"pkg.Service/Method\"");
    const struct rule bad4[] = {{"pkg.G/Say.Hi", NULL, NULL, NULL, NULL}};
    table_bad(bad4, 1, NULL, "\"pkg.Service/Method\"");
}

static void test_compile__conflicts_reported(void **state)
{
    const struct rule a[] = {{"s.S/A", "GET", "/v1/{a}", NULL, NULL},
                             {"s.S/B", "GET", "/v1/{b}", NULL, NULL}};
    table_bad(a, 2, NULL, "s.S/B: \"GET /v1/{b}\" conflicts with \"GET /v1/{a}\" of s.S/A");
    const struct rule b[] = {{"s.S/A", "GET", "/v1/*", NULL, NULL},
                             {"s.S/B", "GET", "/v1/{x=*}", NULL, NULL}};
    table_bad(b, 2, NULL, "conflicts with");
    const struct rule c[] = {{"s.S/A", "GET", "/v1/%7Ex", NULL, NULL},
                             {"s.S/B", "GET", "/v1/~x", NULL, NULL}};
    table_bad(c, 2, NULL, "conflicts with");
    const struct rule d[] = {{"s.S/A", "GET", "/v1/{a=**}", NULL, NULL},
                             {"s.S/B", "GET", "/v1/**", NULL, NULL}};
    table_bad(d, 2, NULL, "conflicts with");
    const struct rule e[] = {{"s.S/A", "GET", "/v1/{a=x/*}", NULL, NULL},
                             {"s.S/B", "GET", "/v1/x/{b}", NULL, NULL}};
    table_bad(e, 2, NULL, "conflicts with");
    const struct rule g[] = {{"s.S/A", "POST", "/v1/{a}:go", NULL, NULL},
                             {"s.S/B", "POST", "/v1/*:go", NULL, NULL}};
    table_bad(g, 2, NULL, "conflicts with");

    /* every conflict is reported */
    const struct rule three[] = {{"s.S/A", "GET", "/v1/{a}", NULL, NULL},
                                 {"s.S/B", "GET", "/v1/*", NULL, NULL},
                                 {"s.S/C", "GET", "/v1/{c}", NULL, NULL}};
    struct pt_diag diag;
    pt_diag_init(&diag);
    assert_null(table_of(three, 3, NULL, &diag));
    assert_int_equal(diag.errors, 2);
    pt_diag_fini(&diag);

    /* different method, verb or shape: fine */
    const struct rule ok[] = {
        {"s.S/A", "GET", "/v1/{a}", NULL, NULL},   {"s.S/B", "POST", "/v1/{a}", NULL, NULL},
        {"s.S/C", "GET", "/v1/{a}:x", NULL, NULL}, {"s.S/D", "GET", "/v1/{a}:y", NULL, NULL},
        {"s.S/E", "GET", "/v1/**", NULL, NULL},    {"s.S/F", "GET", "/v1/x", NULL, NULL},
        {"s.S/G", "GET", "/v1/X", NULL, NULL},     {"s.S/H", "GET", "/v1/{a}/{b=**}", NULL, NULL},
    };
    pt_httprule_table_free(table_ok(ok, N(ok)));
}

static void test_compile__errors_name_the_method_and_column(void **state)
{
    const struct rule a[] = {{"s.S/A", "GET", "/v1/{name", NULL, NULL}};
    table_bad(a, 1, NULL, "test: s.S/A: GET \"/v1/{name\": column 10: expected '}'");
    const struct rule b[] = {{"s.S/A", "GET", "/v1", "a.b", NULL}};
    table_bad(b, 1, NULL, "body \"a.b\" must name a top-level field");
    const struct rule c[] = {{"s.S/A", "GET", "/v1", "a-b", NULL}};
    table_bad(c, 1, NULL, "body \"a-b\": column 2");
    const struct rule d[] = {{"s.S/A", "GET", "/v1", "", "*"}};
    table_bad(d, 1, NULL, "response_body \"*\"");
    const struct rule e[] = {{"s.S/A", "GET", "/v1", "", "x.y"}};
    table_bad(e, 1, NULL, "response_body \"x.y\" must name a top-level field");
    const struct rule g[] = {{"", "GET", "/v1", NULL, NULL}};
    table_bad(g, 1, NULL, "has no name");
    const struct rule h[] = {{"s.S/A", "GET", "", NULL, NULL}};
    table_bad(h, 1, NULL, "must start with '/'");

    /* every error is reported, not only the first */
    const struct rule many[] = {{"s.S/A", "GET", "/v1/{", NULL, NULL},
                                {"s.S/B", "GET", "/v1/}", NULL, NULL}};
    struct pt_diag diag;
    pt_diag_init(&diag);
    assert_null(table_of(many, 2, NULL, &diag));
    assert_int_equal(diag.errors, 2);
    pt_diag_fini(&diag);
    /* and a NULL diag is fine */
    assert_null(table_of(many, 2, NULL, NULL));
}

struct seen {
    int calls;
    char log[1024];
    size_t len;
};

static bool field_exists(void *ctx, struct pt_str method, enum pt_httprule_field_use use,
                         const struct pt_str *path, size_t n)
{
    struct seen *s = ctx;
    s->calls++;
    s->len += (size_t)snprintf(s->log + s->len, sizeof(s->log) - s->len,
                               "%.*s:%d:", (int)method.len, method.ptr, (int)use);
    for (size_t i = 0; i < n; i++)
        s->len += (size_t)snprintf(s->log + s->len, sizeof(s->log) - s->len, "%s%.*s", i ? "." : "",
                                   (int)path[i].len, path[i].ptr);
    s->len += (size_t)snprintf(s->log + s->len, sizeof(s->log) - s->len, ";");
    return !(n == 1 && pt_str_eq(path[0], PT_STR("missing")));
}

static void test_compile__field_callback(void **state)
{
    struct seen s = {0};
    struct pt_httprule_table_opts opts = {.field_exists = field_exists, .field_ctx = &s};
    const struct rule ok[] = {{"s.S/A", "PATCH", "/v1/{book.name=shelves/*}", "book", "out"}};
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_httprule_table *t = table_of(ok, 1, &opts, &d);
    assert_non_null(t);
    pt_httprule_table_free(t);
    pt_diag_fini(&d);
    assert_int_equal(s.calls, 3);
    assert_string_equal(s.log, "s.S/A:0:book.name;s.S/A:1:book;s.S/A:2:out;");

    const struct rule bad[] = {{"s.S/A", "GET", "/v1/{missing}", NULL, NULL}};
    table_bad(bad, 1, &opts, "path variable missing: no such field");
    const struct rule bad2[] = {{"s.S/A", "POST", "/v1", "missing", NULL}};
    table_bad(bad2, 1, &opts, "body \"missing\": no such request field");
    const struct rule bad3[] = {{"s.S/A", "POST", "/v1", "*", "missing"}};
    table_bad(bad3, 1, &opts, "response_body \"missing\": no such response field");
}

static void test_match__limits(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {
        {"s.S/Rest", "GET", "/v1/{p=**}", NULL, NULL},
        {"s.S/One", "GET", "/one/{p}", NULL, NULL},
    };
    struct pt_httprule_table_opts opts = {
        .limits = {.max_path_segments = 4, .max_query_params = 2, .max_value_len = 8}};
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_httprule_table *t = table_of(rules, N(rules), &opts, &d);
    pt_diag_fini(&d);
    assert_non_null(t);
    assert_int_equal(match(f, t, "GET", "/v1/a/b/c"), 0);
    assert_int_equal(match(f, t, "GET", "/v1/a/b/c/d"), PT_ERR_LIMIT);
    assert_string_equal(f->m.reason, "too many path segments");
    assert_int_equal(match(f, t, "GET", "/one/12345678"), 0);
    assert_int_equal(match(f, t, "GET", "/one/123456789"), PT_ERR_LIMIT);
    /* the limit is on the decoded value */
    assert_int_equal(match(f, t, "GET", "/one/%31%32%33%34%35%36%37%38"), 0);
    assert_int_equal(match3(f, t, "GET", "/one/x", "a=1&b=2"), 0);
    assert_int_equal(match3(f, t, "GET", "/one/x", "a=1&b=2&c=3"), PT_ERR_LIMIT);
    assert_string_equal(f->m.reason, "too many query parameters");
    assert_int_equal(match3(f, t, "GET", "/one/x", "a=123456789"), PT_ERR_LIMIT);
    pt_httprule_table_free(t);

    /* defaults */
    t = table_ok(rules, N(rules));
    char path[2 * 200 + 8];
    size_t n = (size_t)snprintf(path, sizeof(path), "/v1");
    for (int i = 1; i < 128; i++)
        n += (size_t)snprintf(path + n, sizeof(path) - n, "/a");
    assert_int_equal(match(f, t, "GET", path), 0);
    snprintf(path + n, sizeof(path) - n, "/a");
    assert_int_equal(match(f, t, "GET", path), PT_ERR_LIMIT);

    /* the arena's byte limit is a PT_ERR_LIMIT, not a crash */
    struct pt_arena small;
    pt_arena_init(&small, NULL, 64);
    struct pt_httprule_request req = {PT_STR("GET"), PT_STR("/v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                                      PT_STR("")};
    assert_int_equal(pt_httprule_table_match(t, &req, &small, &f->m), PT_ERR_LIMIT);
    pt_arena_fini(&small);
    pt_httprule_table_free(t);
}

static void test_match__reads_only_the_given_bytes(void **state)
{
    struct fixture *f = *state;
    const struct rule rules[] = {{"s.S/One", "GET", "/v1/{name}", NULL, NULL}};
    struct pt_httprule_table *t = table_ok(rules, N(rules));
    const char buf[] = "/v1/abc/def?x=1";
    struct pt_httprule_request req = {PT_STR("GETX"), {buf, 7}, {buf + 12, 1}};
    req.method.len = 3;
    pt_arena_init(&f->arena, NULL, 0);
    assert_int_equal(pt_httprule_table_match(t, &req, &f->arena, &f->m), 0);
    ASSERT_PARAMS(&f->m, "name=abc", "x=");
    pt_httprule_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_match__literal_beats_variable_beats_wildcard, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_match__precedence_is_left_to_right, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__end_beats_empty_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__precedence_is_per_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__verbs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__custom_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__405_lists_the_methods_of_the_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_match__single_segment_variable_decodes_everything,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__multi_segment_variable_keeps_2f, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_match__invalid_encodings_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__literals_compare_canonically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__dot_segments_never_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__empty_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__additional_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__fallback_routes, setup, teardown),
        cmocka_unit_test(test_compile__conflicts_reported),
        cmocka_unit_test(test_compile__errors_name_the_method_and_column),
        cmocka_unit_test(test_compile__field_callback),
        cmocka_unit_test_setup_teardown(test_match__limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_match__reads_only_the_given_bytes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
