/* admin/rest.c: the Admin service's REST mapping, end to end without
 * sockets: HTTP method + target + JSON in, handler called with the right
 * message, JSON and HTTP status out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/rest.h"
#include "portico/admin/v1/admin.pb-c.h"

/* What the fake handlers saw. */
static struct {
    int calls;
    char route_id[64];
    char route_name[64];
    uint32_t page_size;
    uint64_t version;
} seen;

static void get_route(void *ctx, const ProtobufCMessage *request, ProtobufCMessage **response,
                      struct pt_admin_status *st)
{
    (void)ctx;
    const Portico__Admin__V1__GetRouteRequest *r = (const void *)request;
    seen.calls++;
    snprintf(seen.route_id, sizeof(seen.route_id), "%s", r->route_id);
    if (strcmp(r->route_id, "missing") == 0) {
        pt_admin_status_set(st, PT_ADMIN_NOT_FOUND, "route \"%s\" not found", r->route_id);
        return;
    }
    Portico__Config__V1__Route *out = calloc(1, sizeof(*out));
    portico__config__v1__route__init(out);
    out->name = strdup(r->route_id);
    out->path_prefix = strdup("/p");
    out->strip_prefix = true;
    *response = &out->base;
}

static void create_route(void *ctx, const ProtobufCMessage *request, ProtobufCMessage **response,
                         struct pt_admin_status *st)
{
    (void)ctx;
    (void)response;
    const Portico__Admin__V1__CreateRouteRequest *r = (const void *)request;
    seen.calls++;
    snprintf(seen.route_name, sizeof(seen.route_name), "%s",
             r->route && r->route->name ? r->route->name : "(none)");
    pt_admin_status_set(st, PT_ADMIN_INVALID_ARGUMENT, "1 problem");
    pt_admin_status_add_violation(st, "route.service", "no service named \"%s\"", "x");
}

static void list_routes(void *ctx, const ProtobufCMessage *request, ProtobufCMessage **response,
                        struct pt_admin_status *st)
{
    (void)ctx;
    (void)st;
    const Portico__Admin__V1__ListRequest *r = (const void *)request;
    seen.calls++;
    seen.page_size = r->page_size;
    Portico__Admin__V1__ListRoutesResponse *out = calloc(1, sizeof(*out));
    portico__admin__v1__list_routes_response__init(out);
    out->total_size = 7;
    *response = &out->base;
}

static void delete_route(void *ctx, const ProtobufCMessage *request, ProtobufCMessage **response,
                         struct pt_admin_status *st)
{
    (void)ctx;
    (void)st;
    const Portico__Admin__V1__DeleteRouteRequest *r = (const void *)request;
    seen.calls++;
    seen.version = r->version;
    snprintf(seen.route_id, sizeof(seen.route_id), "%s", r->route_id);
    /* A handler that forgets its answer: the caller must not crash. */
    *response = NULL;
}

static const struct pt_admin_method methods[] = {
    {"/portico.admin.v1.Admin/GetRoute", &portico__admin__v1__get_route_request__descriptor,
     get_route},
    {"/portico.admin.v1.Admin/CreateRoute", &portico__admin__v1__create_route_request__descriptor,
     create_route},
    {"/portico.admin.v1.Admin/ListRoutes", &portico__admin__v1__list_request__descriptor,
     list_routes},
    {"/portico.admin.v1.Admin/DeleteRoute", &portico__admin__v1__delete_route_request__descriptor,
     delete_route},
};

static void call_direct(void *ctx, const struct pt_admin_method *m, const ProtobufCMessage *req,
                        ProtobufCMessage **resp, struct pt_admin_status *st)
{
    m->fn(ctx, req, resp, st);
}

struct answer {
    int status;
    char body[2048];
    char allow[96];
    bool unauthenticated;
};

static struct answer ask(struct pt_admin_rest *r, const char *method, const char *target,
                         const char *body, const char *authorization, int nauth)
{
    struct pt_admin_rest_request req = {
        .method = pt_str_from_cstr(method),
        .target = pt_str_from_cstr(target),
        .content_type = PT_STR("application/json"),
        .authorization = pt_str_from_cstr(authorization ? authorization : ""),
        .nauthorization = nauth,
        .body = pt_str_from_cstr(body ? body : ""),
    };
    struct pt_admin_rest_response resp;
    memset(&resp, 0, sizeof(resp));
    pt_admin_rest_handle(r, &req, &resp);
    struct answer a;
    memset(&a, 0, sizeof(a));
    a.status = resp.status;
    snprintf(a.body, sizeof(a.body), "%.*s", (int)resp.body.len, resp.body.data);
    snprintf(a.allow, sizeof(a.allow), "%s", resp.allow);
    a.unauthenticated = resp.unauthenticated;
    pt_json_out_fini(&resp.body);
    return a;
}

static struct pt_admin_rest *new_rest(const char *token)
{
    char err[256];
    struct pt_admin_rest *r = pt_admin_rest_new(methods, sizeof(methods) / sizeof(methods[0]),
                                                call_direct, NULL, token, err, sizeof(err));
    if (!r)
        fail_msg("pt_admin_rest_new: %s", err);
    memset(&seen, 0, sizeof(seen));
    return r;
}

static void test_rest__path_variable_reaches_the_handler(void **state)
{
    (void)state;
    struct pt_admin_rest *r = new_rest(NULL);
    struct answer a = ask(r, "GET", "/admin/routes/r%2D1", NULL, NULL, 0);
    assert_int_equal(a.status, 200);
    assert_string_equal(seen.route_id, "r-1");
    assert_string_equal(a.body, "{\"name\":\"r-1\",\"pathPrefix\":\"/p\",\"stripPrefix\":true}");
    /* Dot segments and duplicate slashes are normalized before matching. */
    a = ask(r, "GET", "/admin//x/../routes/./r2", NULL, NULL, 0);
    assert_int_equal(a.status, 200);
    assert_string_equal(seen.route_id, "r2");
    pt_admin_rest_free(r);
}

static void test_rest__query_binds_fields(void **state)
{
    (void)state;
    struct pt_admin_rest *r = new_rest(NULL);
    struct answer a = ask(r, "GET", "/admin/routes?page_size=25&pageSize=3", NULL, NULL, 0);
    assert_int_equal(a.status, 200);
    assert_int_equal(seen.page_size, 3); /* the last one wins */
    assert_string_equal(a.body, "{\"totalSize\":7}");
    a = ask(r, "GET", "/admin/routes?page_size=lots", NULL, NULL, 0);
    assert_int_equal(a.status, 400);
    assert_non_null(strstr(a.body, "\"code\":3"));
    assert_non_null(strstr(a.body, "page_size"));
    a = ask(r, "DELETE", "/admin/routes/r9?version=18446744073709551615", NULL, NULL, 0);
    assert_int_equal(seen.version, UINT64_MAX);
    assert_string_equal(seen.route_id, "r9");
    /* The handler returned nothing: an INTERNAL error, not a crash. */
    assert_int_equal(a.status, 500);
    assert_non_null(strstr(a.body, "\"code\":13"));
    pt_admin_rest_free(r);
}

static void test_rest__body_and_error_details(void **state)
{
    (void)state;
    struct pt_admin_rest *r = new_rest(NULL);
    struct answer a =
        ask(r, "POST", "/admin/routes", "{\"name\":\"n1\",\"pathPrefix\":\"/n\"}", NULL, 0);
    assert_string_equal(seen.route_name, "n1");
    assert_int_equal(a.status, 400);
    assert_non_null(strstr(a.body, "\"message\":\"1 problem\""));
    assert_non_null(strstr(a.body, "\"@type\":\"type.googleapis.com/google.rpc.BadRequest\""));
    assert_non_null(strstr(a.body, "\"field\":\"route.service\""));
    assert_non_null(strstr(a.body, "no service named \\\"x\\\""));

    /* Malformed JSON and unknown fields: 400 naming the place; no call. */
    seen.calls = 0;
    a = ask(r, "POST", "/admin/routes", "{\"name\": ", NULL, 0);
    assert_int_equal(a.status, 400);
    a = ask(r, "POST", "/admin/routes", "{\"name\":\"n\",\"pathPrefx\":\"/n\"}", NULL, 0);
    assert_int_equal(a.status, 400);
    assert_non_null(strstr(a.body, "pathPrefx"));
    a = ask(r, "POST", "/admin/routes", "{\"stripPrefix\":\"yes\"}", NULL, 0);
    assert_int_equal(a.status, 400);
    assert_non_null(strstr(a.body, "route.strip"));
    assert_int_equal(seen.calls, 0);
    pt_admin_rest_free(r);
}

static void test_rest__not_found_and_not_allowed(void **state)
{
    (void)state;
    struct pt_admin_rest *r = new_rest(NULL);
    struct answer a = ask(r, "GET", "/admin/nothing", NULL, NULL, 0);
    assert_int_equal(a.status, 404);
    assert_non_null(strstr(a.body, "\"code\":5"));
    a = ask(r, "PATCH", "/admin/routes/r1", NULL, NULL, 0);
    assert_int_equal(a.status, 405);
    assert_non_null(strstr(a.allow, "GET"));
    assert_non_null(strstr(a.allow, "DELETE"));
    /* Annotated but not in the server's table: 501, not a crash. */
    a = ask(r, "GET", "/admin/services/s1", NULL, NULL, 0);
    assert_int_equal(a.status, 501);
    assert_non_null(strstr(a.body, "\"code\":12"));
    /* Not a path at all. */
    a = ask(r, "GET", "*", NULL, NULL, 0);
    assert_int_equal(a.status, 400);
    a = ask(r, "GET", "/admin/routes/%zz", NULL, NULL, 0);
    assert_int_equal(a.status, 400);
    assert_int_equal(seen.calls, 0);
    pt_admin_rest_free(r);
}

static void test_rest__bearer_token(void **state)
{
    (void)state;
    struct pt_admin_rest *r = new_rest("s3cret");
    struct answer a = ask(r, "GET", "/admin/routes/r1", NULL, NULL, 0);
    assert_int_equal(a.status, 401);
    assert_true(a.unauthenticated);
    assert_non_null(strstr(a.body, "\"code\":16"));
    a = ask(r, "GET", "/admin/routes/r1", NULL, "Bearer wrong", 1);
    assert_int_equal(a.status, 401);
    a = ask(r, "GET", "/admin/routes/r1", NULL, "Basic czNjcmV0", 1);
    assert_int_equal(a.status, 401);
    /* Two Authorization fields: which one would count is ambiguous. */
    a = ask(r, "GET", "/admin/routes/r1", NULL, "Bearer s3cret", 2);
    assert_int_equal(a.status, 401);
    /* Methods not allowed are not told without the token either. */
    a = ask(r, "PATCH", "/admin/routes/r1", NULL, NULL, 0);
    assert_int_equal(a.status, 401);
    assert_int_equal(seen.calls, 0);
    a = ask(r, "GET", "/admin/routes/r1", NULL, "Bearer s3cret", 1);
    assert_int_equal(a.status, 200);
    assert_false(a.unauthenticated);
    assert_int_equal(seen.calls, 1);
    pt_admin_rest_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rest__path_variable_reaches_the_handler),
        cmocka_unit_test(test_rest__query_binds_fields),
        cmocka_unit_test(test_rest__body_and_error_details),
        cmocka_unit_test(test_rest__not_found_and_not_allowed),
        cmocka_unit_test(test_rest__bearer_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
