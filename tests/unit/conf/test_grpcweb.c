/* Route.grpc_web: validation (conf/validate.c) and compilation (conf/grpcweb.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/snapshot.h"
#include "portico/errors.h"

static struct pt_conf *conf;
static struct pt_diag diag;

#define SERVICES                                         \
    "listeners: [{address: \":80\"}]\n"                  \
    "services:\n"                                        \
    "  - {name: api, instances: [{host: a, port: 1}]}\n" \
    "  - {name: grpc, protocol: grpc, instances: [{host: b, port: 2}]}\n"

static int setup(void **state)
{
    conf = NULL;
    pt_diag_init(&diag);
    return 0;
}

static int teardown(void **state)
{
    pt_conf_free(conf);
    conf = NULL;
    pt_diag_fini(&diag);
    return 0;
}

static int validate(const char *text)
{
    pt_conf_free(conf);
    pt_diag_fini(&diag);
    pt_diag_init(&diag);
    conf = pt_conf_load_string("portico.yaml", text, strlen(text), &diag);
    if (!conf)
        fail_msg("load failed:\n%s", pt_diag_text(&diag));
    return pt_conf_validate(conf, &diag);
}

static void valid(const char *text)
{
    if (validate(text) != 0)
        fail_msg("validation failed:\n%s", pt_diag_text(&diag));
}

static void invalid(const char *text, const char *want)
{
    assert_int_equal(validate(text), PT_ERR_CONFIG);
    if (!strstr(pt_diag_text(&diag), want))
        fail_msg("diagnostics:\n%s\ndo not contain: %s", pt_diag_text(&diag), want);
}

static void test_grpcweb__needs_grpc_services(void **state)
{
    valid(SERVICES "routes: [{path_prefix: /a, service: grpc, grpc_web: {}}]\n");
    invalid(SERVICES "routes: [{path_prefix: /a, service: api, grpc_web: {}}]\n",
            "routes[0].grpc_web: grpc_web needs services with protocol grpc (service \"api\"");
    invalid(SERVICES "routes: [{path_prefix: /a, grpc_web: {},\n"
                     "  splits: [{service: grpc, weight: 1}, {service: api, weight: 1}]}]\n",
            "grpc_web needs services with protocol grpc (service \"api\"");
    /* Turned off, it asks nothing of the service. */
    valid(SERVICES "routes: [{path_prefix: /a, service: api, grpc_web: {enabled: false}}]\n");
}

static void test_grpcweb__checks_cors_lists(void **state)
{
    invalid(SERVICES "routes: [{path_prefix: /a, service: grpc,\n"
                     "  grpc_web: {allowed_origins: ['*'], allow_credentials: true}}]\n",
            "\"*\" cannot be combined with allow_credentials");
    invalid(SERVICES "routes: [{path_prefix: /a, service: grpc,\n"
                     "  grpc_web: {allowed_origins: ['app.example.com']}}]\n",
            "\"app.example.com\" is not an origin");
    invalid(SERVICES "routes: [{path_prefix: /a, service: grpc,\n"
                     "  grpc_web: {allowed_origins: ['https://a.example/path']}}]\n",
            "is not an origin");
    invalid(SERVICES "routes: [{path_prefix: /a, service: grpc,\n"
                     "  grpc_web: {allowed_headers: ['x ok']}}]\n",
            "\"x ok\" is not a header name");
    invalid(SERVICES "routes: [{path_prefix: /a, service: grpc,\n"
                     "  grpc_web: {expose_headers: ['']}}]\n",
            "is not a header name");
    invalid(SERVICES "routes: [{path_prefix: /a, service: grpc, grpc_web: {max_age_s: 86401}}]\n",
            "max_age_s: 86401 is too large");
    valid(SERVICES "routes: [{path_prefix: /a, service: grpc,\n"
                   "  grpc_web: {allowed_origins: ['https://a.example:8443', 'http://b'],\n"
                   "             allow_credentials: true, max_age_s: 0}}]\n");
}

static void assert_str(struct pt_str s, const char *want)
{
    if (s.len != strlen(want) || memcmp(s.ptr, want, s.len) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)s.len, s.ptr, want);
}

static void test_grpcweb__compiles_header_values(void **state)
{
    Portico__Config__V1__GrpcWeb m = PORTICO__CONFIG__V1__GRPC_WEB__INIT;
    assert_null(pt_conf_grpcweb_compile(NULL));
    struct pt_grpcweb_conf *c = pt_conf_grpcweb_compile(&m);
    assert_non_null(c);
    assert_str(c->allow_headers,
               "x-grpc-web, x-user-agent, grpc-timeout, content-type, authorization");
    assert_str(c->expose_headers, "grpc-status, grpc-message");
    assert_str(c->max_age, "600");
    assert_int_equal(c->norigins, 0);
    assert_false(c->any_origin);
    pt_conf_grpcweb_free(c);

    char *origins[] = {"https://App.Example", "*"};
    char *allow[] = {"X-Tenant"};
    char *expose[] = {"x-request-id", "x-b"};
    Google__Protobuf__UInt32Value age = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
    age.value = 0;
    m.n_allowed_origins = 2;
    m.allowed_origins = origins;
    m.n_allowed_headers = 1;
    m.allowed_headers = allow;
    m.n_expose_headers = 2;
    m.expose_headers = expose;
    m.max_age_s = &age;
    c = pt_conf_grpcweb_compile(&m);
    assert_true(c->any_origin);
    assert_int_equal(c->norigins, 1);
    assert_string_equal(c->origins[0], "https://app.example");
    assert_str(c->allow_headers,
               "x-grpc-web, x-user-agent, grpc-timeout, content-type, authorization, x-tenant");
    assert_str(c->expose_headers, "grpc-status, grpc-message, x-request-id, x-b");
    assert_str(c->max_age, "0");
    pt_conf_grpcweb_free(c);

    Google__Protobuf__BoolValue off = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
    off.value = false;
    m.enabled = &off;
    assert_null(pt_conf_grpcweb_compile(&m));
    pt_conf_grpcweb_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_grpcweb__needs_grpc_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grpcweb__checks_cors_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grpcweb__compiles_header_values, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
