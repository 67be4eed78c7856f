/*
 * porticoctl's sans-I/O half: argument parsing, exit codes, the apply plan
 * and google.rpc.Status details formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/cli.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

static int parse(struct pt_ctl_args *a, const char *line, const char *env, char *err)
{
    char buf[512], *argv[32];
    int argc = 0;
    snprintf(buf, sizeof(buf), "porticoctl %s", line);
    for (char *t = strtok(buf, " "); t && argc < 32; t = strtok(NULL, " "))
        argv[argc++] = t;
    /* Strings in *a borrow from buf: callers check only static ones. */
    return pt_ctl_args_parse(a, argc, argv, env, err, 256);
}

static void test_parse_ok(void **state)
{
    struct pt_ctl_args a;
    char err[256];
    assert_int_equal(parse(&a, "get routes api", NULL, err), 0);
    assert_int_equal(a.cmd, PT_CTL_CMD_GET);
    assert_string_equal(a.kind->name, "route");
    assert_string_equal(a.addr, "127.0.0.1:9901");
    assert_null(a.token);
    assert_int_equal(parse(&a, "--addr 127.0.0.1:1 --token=t list rate_limit_rules", "env", err),
                     0);
    assert_string_equal(a.kind->name, "rate-limit");
    assert_int_equal(
        parse(&a, "apply -f x.yaml --dry-run --keep-absent -y --timeout 2.5", "env", err), 0);
    assert_true(a.dry_run && a.keep_absent && a.yes);
    assert_true(a.timeout_s == 2.5);
    assert_string_equal(a.token, "env");
    assert_int_equal(parse(&a, "create api-keys -f k.yaml", NULL, err), 0);
    assert_string_equal(a.kind->name, "api-key");
    assert_int_equal(parse(&a, "export", NULL, err), 0);
    assert_int_equal(parse(&a, "apply --help", NULL, err), 0);
    assert_true(a.help);
    assert_int_equal(a.cmd, PT_CTL_CMD_APPLY);
    assert_non_null(strstr(pt_ctl_usage(a.cmd), "--dry-run"));
    assert_int_equal(parse(&a, "registrations", NULL, err), 0);
    assert_int_equal(a.cmd, PT_CTL_CMD_REGISTRATIONS);
    assert_null(a.name);
    assert_int_equal(parse(&a, "registrations web", NULL, err), 0);
    assert_non_null(a.name);
    assert_int_equal(parse(&a, "deregister 0123abcd", NULL, err), 0);
    assert_int_equal(a.cmd, PT_CTL_CMD_DEREGISTER);
    assert_non_null(a.name);
}

static void test_parse_errors(void **state)
{
    static const struct {
        const char *line, *err;
    } bad[] = {
        {"", "no command"},
        {"frob", "unknown command"},
        {"get route", "missing the name"},
        {"get", "missing the kind"},
        {"get widget x", "unknown kind"},
        {"get route a b", "unexpected argument"},
        {"create route", "-f FILE is required"},
        {"get route a -f x", "not an option"},
        {"list routes --dry-run", "options of apply"},
        {"--timeout 0 health", "--timeout"},
        {"-o xml health", "-o takes"},
        {"--cert c health", "go together"},
        {"--cert c --key k health", "needs --cacert"},
        {"--bogus health", "unknown option"},
        {"health --addr", "needs a value"},
        {"deregister", "missing the lease id"},
        {"deregister a b", "unexpected argument"},
        {"registrations a b", "unexpected argument"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pt_ctl_args a;
        char err[256] = "";
        if (parse(&a, bad[i].line, NULL, err) != -1 || !strstr(err, bad[i].err))
            fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].line, err, bad[i].err);
    }
}

static void test_exit_codes(void **state)
{
    assert_int_equal(pt_ctl_exit_for_status(0, true), 0);
    assert_int_equal(pt_ctl_exit_for_status(5, true), 1);
    assert_int_equal(pt_ctl_exit_for_status(10, true), 1);
    assert_int_equal(pt_ctl_exit_for_status(14, true), 3);
    assert_int_equal(pt_ctl_exit_for_status(4, false), 3);
    assert_int_equal(pt_ctl_exit_for_status(4, true), 1);
    char buf[32];
    assert_string_equal(pt_ctl_code_name(3, buf, sizeof(buf)), "INVALID_ARGUMENT");
    assert_string_equal(pt_ctl_code_name(16, buf, sizeof(buf)), "UNAUTHENTICATED");
    assert_string_equal(pt_ctl_code_name(99, buf, sizeof(buf)), "CODE_99");
}

static char *capture(void (*fn)(FILE *, void *), void *arg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fn(f, arg);
    fclose(f);
    return text;
}

static void fmt_apply(FILE *f, void *arg)
{
    pt_ctl_apply_format(f, arg);
}

static void test_apply_format(void **state)
{
    Portico__Admin__V1__Change c1 = PORTICO__ADMIN__V1__CHANGE__INIT, c2 = c1, c3 = c1;
    c1.action = PORTICO__ADMIN__V1__CHANGE__ACTION__ACTION_CREATE;
    c1.kind = "route";
    c1.name = "foo";
    c2.action = PORTICO__ADMIN__V1__CHANGE__ACTION__ACTION_UPDATE;
    c2.kind = "service";
    c2.name = "bar";
    char *fields[] = {"instances", "timeout_ms"};
    c2.fields = fields;
    c2.n_fields = 2;
    c3.action = PORTICO__ADMIN__V1__CHANGE__ACTION__ACTION_DELETE;
    c3.kind = "plugin";
    c3.name = "baz";
    Portico__Admin__V1__Change *changes[] = {&c1, &c2, &c3};
    char *ignored[] = {"listeners"};
    Portico__Admin__V1__ApplyResponse r = PORTICO__ADMIN__V1__APPLY_RESPONSE__INIT;
    r.changes = changes;
    r.n_changes = 3;
    r.ignored_sections = ignored;
    r.n_ignored_sections = 1;
    char *text = capture(fmt_apply, &r);
    assert_string_equal(text, "+ route foo\n"
                              "~ service bar (instances, timeout_ms)\n"
                              "- plugin baz\n"
                              "ignored: listeners (not managed through the admin API)\n");
    free(text);
}

struct err_case {
    int code;
    const char *msg;
    const uint8_t *details;
    size_t len;
};

static void fmt_error(FILE *f, void *arg)
{
    struct err_case *e = arg;
    pt_ctl_error_format(f, e->code, e->msg, e->details, e->len);
}

static void test_error_details(void **state)
{
    Google__Rpc__BadRequest__FieldViolation v1 = GOOGLE__RPC__BAD_REQUEST__FIELD_VIOLATION__INIT,
                                            v2 = v1;
    v1.field = "route.service";
    v1.description = "is required";
    v2.field = "route.path";
    v2.description = "must start with /";
    Google__Rpc__BadRequest__FieldViolation *vs[] = {&v1, &v2};
    Google__Rpc__BadRequest br = GOOGLE__RPC__BAD_REQUEST__INIT;
    br.field_violations = vs;
    br.n_field_violations = 2;
    uint8_t brbuf[256];
    size_t brlen = google__rpc__bad_request__pack(&br, brbuf);
    Google__Protobuf__Any other = GOOGLE__PROTOBUF__ANY__INIT, any = other;
    other.type_url = "type.googleapis.com/google.rpc.RetryInfo";
    any.type_url = "type.googleapis.com/google.rpc.BadRequest";
    any.value = (ProtobufCBinaryData){brlen, brbuf};
    Google__Protobuf__Any *details[] = {&other, &any};
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = 3;
    st.message = "invalid route";
    st.details = details;
    st.n_details = 2;
    uint8_t buf[512];
    size_t len = google__rpc__status__pack(&st, buf);

    struct err_case e = {3, "invalid route", buf, len};
    char *text = capture(fmt_error, &e);
    assert_string_equal(text, "error: INVALID_ARGUMENT: invalid route\n"
                              "  route.service: is required\n"
                              "  route.path: must start with /\n");
    free(text);

    struct err_case plain = {5, "route \"x\" not found", NULL, 0};
    text = capture(fmt_error, &plain);
    assert_string_equal(text, "error: NOT_FOUND: route \"x\" not found\n");
    free(text);

    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    struct err_case bad = {10, "", junk, sizeof(junk)};
    text = capture(fmt_error, &bad);
    assert_string_equal(text, "error: ABORTED: (no message)\n");
    free(text);
}

static void test_msg_fields(void **state)
{
    Portico__Admin__V1__GetRouteRequest r = PORTICO__ADMIN__V1__GET_ROUTE_REQUEST__INIT;
    assert_int_equal(pt_ctl_msg_set_string(&r.base, "route_id", "api"), 0);
    assert_string_equal(r.route_id, "api");
    assert_string_equal(pt_ctl_msg_get_string(&r.base, "route_id"), "api");
    assert_int_equal(pt_ctl_msg_set_string(&r.base, "name", "x"), -1);
    free(r.route_id);
    Portico__Admin__V1__ApplyRequest ar = PORTICO__ADMIN__V1__APPLY_REQUEST__INIT;
    assert_int_equal(pt_ctl_msg_set_string(&ar.base, "yaml", "routes: []"), 0);
    assert_int_equal(ar.source_case, PORTICO__ADMIN__V1__APPLY_REQUEST__SOURCE_YAML);
    free(ar.yaml);
    assert_string_equal(pt_ctl_kind_find("services")->name, "service");
    assert_null(pt_ctl_kind_find("widget"));
    assert_string_equal(pt_ctl_kind_find("rate-limit-rules")->name, "rate-limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),      cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_exit_codes),    cmocka_unit_test(test_apply_format),
        cmocka_unit_test(test_error_details), cmocka_unit_test(test_msg_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
