/* A route's Transcode compiled against the bookstore test service
 * (tests/integration/protos/portico/test/bookstore.proto): which methods
 * get which rules, configuration errors, request messages built from the
 * body and the bindings, response_body, status mapping, the error shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "google/rpc/status.pb-c.h"
#include "portico/errors.h"
#include "transcode/route.h"

#define PKG "portico.test.bookstore."

static struct pt_descpool *pool;

static int setup(void **state)
{
    (void)state;
    FILE *f = fopen(PT_TC_BOOKSTORE_DESC, "rb");
    if (!f)
        return -1;
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    char err[256];
    pool = pt_descpool_new_from_set(buf, n, NULL, err, sizeof(err));
    if (!pool)
        fprintf(stderr, "pool: %s\n", err);
    return pool ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    pt_descpool_unref(pool);
    return 0;
}

static struct pt_tc_route *compile(Portico__Config__V1__Transcode *tc, struct pt_diag *d)
{
    pt_diag_init(d);
    return pt_tc_route_compile(tc, pool, "cfg.yaml:3:5", d);
}

/* Match method+target and build the request; returns its JSON (static). */
static const char *build(const struct pt_tc_route *r, const char *method, const char *path,
                         const char *query, const char *body, int *status)
{
    static char res[2048];
    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_httprule_request req = {pt_str_from_cstr(method), pt_str_from_cstr(path),
                                      pt_str_from_cstr(query)};
    struct pt_httprule_match m;
    int rc = pt_httprule_table_match(r->table, &req, &a, &m);
    *status = rc;
    res[0] = 0;
    if (rc == 0) {
        struct pt_json_out wire = {0}, json = {0};
        struct pt_tc_error err;
        rc = pt_tc_request_build(r, &m, pt_str_from_cstr(body), PT_STR_NULL, &wire, &err);
        *status = rc;
        if (rc == 0) {
            assert_int_equal(pt_json_encode(r->methods[m.method].in, (const uint8_t *)wire.data,
                                            wire.len, &r->hooks, NULL, &json, NULL),
                             0);
            snprintf(res, sizeof(res), "%.*s %.*s", (int)m.method_name.len, m.method_name.ptr,
                     (int)json.len, json.data);
        } else {
            snprintf(res, sizeof(res), "%d %s", err.http_status, err.message);
        }
        pt_json_out_fini(&wire);
        pt_json_out_fini(&json);
    }
    pt_arena_fini(&a);
    return res;
}

static void test_route__annotations_fallback_and_bindings(void **state)
{
    (void)state;
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    struct pt_diag d;
    struct pt_tc_route *r = compile(&tc, &d);
    assert_non_null(r);
    int st;
    assert_string_equal(build(r, "GET", "/v1/shelves/s1/books/b2", "", "", &st),
                        PKG "Bookstore/GetBook {\"name\":\"shelves/s1/books/b2\"}");
    assert_string_equal(build(r, "GET", "/v1/books/a%2Fb", "full=true", "", &st),
                        PKG "Bookstore/GetBook {\"name\":\"a/b\",\"full\":true}");
    /* the body first, then the path: the path wins; query repeats append */
    assert_string_equal(
        build(r, "GET", "/v1/shelves/s/books", "tags=a&tags=b&filter.born=7&genre=HISTORY", "",
              &st),
        PKG "Bookstore/ListBooks "
            "{\"shelf\":\"s\",\"tags\":[\"a\",\"b\"],\"filter\":{\"born\":\"7\"},\"genre\":"
            "\"HISTORY\"}");
    assert_string_equal(
        build(r, "POST", "/v1/shelves/s:archive", "", "{\"shelf\":\"x\",\"count\":2}", &st),
        PKG "Bookstore/Do {\"shelf\":\"s\",\"count\":2}");
    assert_string_equal(build(r, "POST", "/v1/shelves/s2/books", "", "{\"title\":\"T\"}", &st),
                        PKG "Bookstore/CreateBook {\"shelf\":\"s2\",\"book\":{\"title\":\"T\"}}");
    /* Plain has no annotation: its gRPC path with body "*" */
    assert_string_equal(build(r, "POST", "/" PKG "Bookstore/Plain", "", "{\"count\":3}", &st),
                        PKG "Bookstore/Plain {\"count\":3}");
    /* errors name the field; nothing is built */
    assert_string_equal(build(r, "POST", "/v1/shelves/s2/books", "", "{\"isbn\":\"x\"}", &st),
                        "400 invalid request: book.isbn: invalid int64 \"x\"");
    assert_int_equal(st, PT_ERR_INVALID);
    build(r, "GET", "/v1/shelves/s/books", "nope=1", "", &st);
    assert_int_equal(st, PT_ERR_INVALID);
    build(r, "GET", "/v1/shelves/s/books", "page_size=x", "", &st);
    assert_int_equal(st, PT_ERR_INVALID);
    /* a client stream: one framed message per NDJSON line */
    struct pt_arena a;
    pt_arena_init(&a, NULL, 0);
    struct pt_httprule_request req = {PT_STR("POST"), PT_STR("/" PKG "Bookstore/Upload"),
                                      PT_STR_NULL};
    struct pt_httprule_match m;
    assert_int_equal(pt_httprule_table_match(r->table, &req, &a, &m), 0);
    struct pt_json_out w = {0};
    struct pt_tc_error err;
    assert_int_equal(pt_tc_request_frames(r, &m, PT_STR("{\"count\":1}\n\n {\"count\":300}\n"),
                                          PT_STR_NULL, &w, &err),
                     0);
    assert_int_equal(w.len, 5 + 2 + 5 + 3);
    assert_memory_equal(w.data, "\0\0\0\0\x02\x40\x01\0\0\0\0\x03\x40\xac\x02", 15);
    w.len = 0;
    assert_int_equal(
        pt_tc_request_frames(r, &m, PT_STR("{}\n{\"count\":\"x\"}"), PT_STR_NULL, &w, &err),
        PT_ERR_INVALID);
    assert_int_equal(w.len, 0);
    assert_non_null(strstr(err.message, "line 2: "));
    /* one line at a time: a blank line adds nothing, a line a frame, an
     * error names the line number it was given and leaves out as it was */
    w.len = 0;
    assert_int_equal(pt_tc_request_line_frame(r, &m, PT_STR(" \r"), 1, PT_STR_NULL, &w, &err), 0);
    assert_int_equal(w.len, 0);
    assert_int_equal(
        pt_tc_request_line_frame(r, &m, PT_STR("{\"count\":1}\r"), 2, PT_STR_NULL, &w, &err), 0);
    assert_int_equal(w.len, 7);
    assert_memory_equal(w.data, "\0\0\0\0\x02\x40\x01", 7);
    assert_int_equal(
        pt_tc_request_line_frame(r, &m, PT_STR("{\"count\":true}"), 77, PT_STR_NULL, &w, &err),
        PT_ERR_INVALID);
    assert_int_equal(w.len, 7);
    assert_non_null(strstr(err.message, "line 77: invalid request: count"));
    pt_json_out_fini(&w);
    pt_arena_fini(&a);
    pt_tc_route_free(r);
    pt_diag_fini(&d);
}

static void test_route__unknown_query_ignored_by_option(void **state)
{
    (void)state;
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    tc.ignore_unknown_fields = true;
    struct pt_diag d;
    struct pt_tc_route *r = compile(&tc, &d);
    assert_non_null(r);
    int st;
    assert_string_equal(build(r, "GET", "/v1/shelves/s/books", "nope.x=1&page_size=2", "", &st),
                        PKG "Bookstore/ListBooks {\"shelf\":\"s\",\"pageSize\":2}");
    pt_tc_route_free(r);
    pt_diag_fini(&d);
}

static void test_route__config_errors(void **state)
{
    (void)state;
    struct pt_diag d;
    Portico__Config__V1__TranscodeRule rule = PORTICO__CONFIG__V1__TRANSCODE_RULE__INIT;
    Portico__Config__V1__TranscodeRule *rules[] = {&rule};
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    tc.rules = rules;
    tc.n_rules = 1;

    rule.method = "no.Such.Method";
    rule.get = "/x";
    assert_null(compile(&tc, &d));
    assert_non_null(strstr(pt_diag_text(&d), "cfg.yaml:3:5: transcode.rules[0].method: unknown"));
    pt_diag_fini(&d);

    rule.method = PKG "Bookstore.Upload";
    assert_null(compile(&tc, &d));
    assert_non_null(strstr(pt_diag_text(&d), "client-streaming"));
    pt_diag_fini(&d);

    rule.method = PKG "Bookstore.Plain";
    rule.post = "/y"; /* two verbs */
    assert_null(compile(&tc, &d));
    assert_non_null(strstr(pt_diag_text(&d), "exactly one of"));
    pt_diag_fini(&d);

    rule.post = NULL;
    rule.get = "/v1/books/{shelf}"; /* GetBook's additional binding has this shape */
    assert_null(compile(&tc, &d));
    assert_non_null(strstr(pt_diag_text(&d), "conflict"));
    pt_diag_fini(&d);

    rule.get = "/v1/plain";
    rule.body = "nope";
    assert_null(compile(&tc, &d));
    pt_diag_fini(&d);

    rule.body = NULL;
    rule.success_status = 302;
    assert_null(compile(&tc, &d));
    assert_non_null(strstr(pt_diag_text(&d), "2xx"));
    pt_diag_fini(&d);

    Portico__Config__V1__Transcode t2 = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    t2.stream_format = "xml";
    assert_null(compile(&t2, &d));
    pt_diag_fini(&d);
    char *svcs[] = {"no.Such"};
    t2.stream_format = NULL;
    t2.services = svcs;
    t2.n_services = 1;
    assert_null(compile(&t2, &d));
    assert_non_null(strstr(pt_diag_text(&d), "unknown gRPC service"));
    pt_diag_fini(&d);
    char *hdrs[] = {"grpc-timeout"};
    t2.services = NULL;
    t2.n_services = 0;
    t2.forward_headers = hdrs;
    t2.n_forward_headers = 1;
    assert_null(compile(&t2, &d));
    pt_diag_fini(&d);
}

/* Encode {json} as a ListBooksResponse and render it through the
 * response_body "books" of ListBookTitles. */
static void check_response_body(const struct pt_tc_route *r, const char *json, const char *want)
{
    const struct pt_tc_method *tm = NULL;
    uint32_t mi = 0;
    for (; mi < r->nmethods; mi++)
        if (strcmp(r->methods[mi].m->full_name, PKG "Bookstore.ListBookTitles") == 0) {
            tm = &r->methods[mi];
            break;
        }
    assert_non_null(tm);
    struct pt_json_out wire = {0}, out = {0};
    assert_int_equal(pt_json_decode(tm->out, pt_str_from_cstr(json), &r->hooks, NULL, &wire, NULL),
                     0);
    struct pt_str seg = PT_STR("books");
    struct pt_httprule_field f = {&seg, 1};
    struct pt_tc_error err;
    assert_int_equal(
        pt_tc_response_json(r, mi, &f, (const uint8_t *)wire.data, wire.len, &out, &err), 0);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    pt_json_out_fini(&wire);
    pt_json_out_fini(&out);
}

static void test_route__response_body(void **state)
{
    (void)state;
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    struct pt_diag d;
    struct pt_tc_route *r = compile(&tc, &d);
    assert_non_null(r);
    check_response_body(r, "{\"books\":[{\"name\":\"a\"},{}],\"nextPageToken\":\"x\"}",
                        "[{\"name\":\"a\"},{}]");
    check_response_body(r, "{\"nextPageToken\":\"x\"}", "[]");
    pt_tc_route_free(r);
    tc.emit_defaults = true;
    r = compile(&tc, &d);
    check_response_body(r, "{\"books\":[{\"name\":\"a\"}]}",
                        "[{\"name\":\"a\",\"title\":\"\",\"isbn\":\"0\",\"pages\":\"0\",\"genre\":"
                        "\"GENRE_UNSPECIFIED\",\"tags\":[],\"inPrint\":false,\"price\":0}]");
    check_response_body(r, "{}", "[]");
    pt_tc_route_free(r);
    pt_diag_fini(&d);
}

static void test_route__status_mapping(void **state)
{
    (void)state;
    static const int want[] = {200, 499, 500, 400, 504, 404, 409, 403, 429,
                               400, 409, 400, 501, 500, 503, 500, 401};
    for (int c = 0; c <= 16; c++)
        assert_int_equal(pt_tc_http_status(c), want[c]);
    assert_int_equal(pt_tc_http_status(17), 500);
    assert_int_equal(pt_tc_http_status(-1), 500);
    assert_int_equal(pt_tc_grpc_code_of_http(503), 14);
    assert_int_equal(pt_tc_grpc_code_of_http(401), 16);
    assert_int_equal(pt_tc_grpc_code_of_http(418), 2);
}

static void b64(const uint8_t *p, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = t[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = t[v & 63];
    }
    out[o] = 0; /* unpadded, as gRPC sends it */
}

static void test_route__error_json_with_details(void **state)
{
    (void)state;
    Portico__Config__V1__Transcode tc = PORTICO__CONFIG__V1__TRANSCODE__INIT;
    struct pt_diag d;
    struct pt_tc_route *r = compile(&tc, &d);
    assert_non_null(r);
    /* google.rpc.Status{code 5, details [Author{name "x"} (known), unknown.T{...}]} */
    uint8_t author[] = {0x0a, 0x01, 'x'};
    Google__Protobuf__Any a1 = GOOGLE__PROTOBUF__ANY__INIT, a2 = GOOGLE__PROTOBUF__ANY__INIT;
    a1.type_url = "type.googleapis.com/" PKG "Author";
    a1.value.data = author;
    a1.value.len = sizeof(author);
    a2.type_url = "type.googleapis.com/unknown.T";
    a2.value.data = author;
    a2.value.len = sizeof(author);
    Google__Protobuf__Any *details[] = {&a1, &a2};
    Google__Rpc__Status s = GOOGLE__RPC__STATUS__INIT;
    s.code = 5;
    s.n_details = 2;
    s.details = details;
    uint8_t buf[256];
    size_t n = google__rpc__status__pack(&s, buf);
    char text[400];
    b64(buf, n, text);
    struct pt_json_out out = {0};
    pt_tc_error_json(r, 5, PT_STR("not \"here\"\n"), pt_str_from_cstr(text), &out);
    const char *want = "{\"code\":5,\"message\":\"not \\\"here\\\"\\u000a\",\"details\":["
                       "{\"@type\":\"type.googleapis.com/" PKG "Author\",\"name\":\"x\"},"
                       "{\"@type\":\"type.googleapis.com/unknown.T\",\"value\":\"CgF4\"}]}";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    out.len = 0;
    /* garbage details are left out, never a crash */
    pt_tc_error_json(r, 13, PT_STR("x\xff"), PT_STR("!!!"), &out);
    want = "{\"code\":13,\"message\":\"x\\ufffd\",\"details\":[]}";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    pt_json_out_fini(&out);
    char m[32];
    size_t ml = pt_tc_grpc_message_decode(PT_STR("a%20b%zz%"), m, sizeof(m));
    assert_int_equal(ml, 7);
    assert_memory_equal(m, "a b%zz%", 7);
    pt_tc_route_free(r);
    pt_diag_fini(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route__annotations_fallback_and_bindings),
        cmocka_unit_test(test_route__unknown_query_ignored_by_option),
        cmocka_unit_test(test_route__config_errors),
        cmocka_unit_test(test_route__response_body),
        cmocka_unit_test(test_route__status_mapping),
        cmocka_unit_test(test_route__error_json_with_details),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
