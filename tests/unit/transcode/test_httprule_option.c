/*
 * The google.api.http option read from serialized MethodOptions: built
 * here with the generated google.api and google.protobuf code, the rule
 * carried as an unknown field (which is how an extension looks to
 * protobuf-c), then compiled and matched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "google/api/http.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "test_httprule_fixture.h"

struct bytes {
    uint8_t *p;
    size_t n;
};

static struct bytes pack_rule(const Google__Api__HttpRule *r)
{
    struct bytes b;
    b.n = google__api__http_rule__get_packed_size(r);
    b.p = malloc(b.n ? b.n : 1);
    assert_non_null(b.p);
    assert_int_equal(google__api__http_rule__pack(r, b.p), b.n);
    return b;
}

/* MethodOptions with known fields set and the given payloads as occurrences
 * of the google.api.http extension. protobuf-c keeps a length-delimited
 * unknown field's length prefix in its data, so add one. */
static struct bytes pack_options(const struct bytes *payloads, size_t n)
{
    Google__Protobuf__MethodOptions o = GOOGLE__PROTOBUF__METHOD_OPTIONS__INIT;
    o.has_deprecated = 1;
    o.deprecated = 1;
    o.has_idempotency_level = 1;
    o.idempotency_level = GOOGLE__PROTOBUF__METHOD_OPTIONS__IDEMPOTENCY_LEVEL__NO_SIDE_EFFECTS;
    ProtobufCMessageUnknownField uf[4];
    uint8_t data[4][256];
    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        for (size_t v = payloads[i].n; k == 0 || v; v >>= 7)
            data[i][k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        assert_true(k + payloads[i].n <= sizeof(data[i]));
        memcpy(data[i] + k, payloads[i].p, payloads[i].n);
        uf[i] = (ProtobufCMessageUnknownField){.tag = PT_HTTPRULE_EXTENSION_FIELD,
                                               .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
                                               .len = k + payloads[i].n,
                                               .data = data[i]};
    }
    o.base.n_unknown_fields = (unsigned)n;
    o.base.unknown_fields = n ? uf : NULL;
    struct bytes b;
    b.n = google__protobuf__method_options__get_packed_size(&o);
    b.p = malloc(b.n ? b.n : 1);
    assert_non_null(b.p);
    assert_int_equal(google__protobuf__method_options__pack(&o, b.p), b.n);
    return b;
}

static void test_option__rule_with_additional_bindings(void **state)
{
    Google__Api__HttpRule more0 = GOOGLE__API__HTTP_RULE__INIT;
    more0.pattern_case = GOOGLE__API__HTTP_RULE__PATTERN_GET;
    more0.get = "/v1/users/{user_id}/messages/{message_id}";
    Google__Api__CustomHttpPattern custom = GOOGLE__API__CUSTOM_HTTP_PATTERN__INIT;
    custom.kind = "HEAD";
    custom.path = "/v1/messages/{message_id}";
    Google__Api__HttpRule more1 = GOOGLE__API__HTTP_RULE__INIT;
    more1.pattern_case = GOOGLE__API__HTTP_RULE__PATTERN_CUSTOM;
    more1.custom = &custom;
    Google__Api__HttpRule *more[] = {&more0, &more1};
    Google__Api__HttpRule rule = GOOGLE__API__HTTP_RULE__INIT;
    rule.pattern_case = GOOGLE__API__HTTP_RULE__PATTERN_PATCH;
    rule.patch = "/v1/{message.name=messages/*}";
    rule.body = "message";
    rule.response_body = "payload";
    rule.n_additional_bindings = 2;
    rule.additional_bindings = more;

    struct bytes payload = pack_rule(&rule);
    struct bytes opts = pack_options(&payload, 1);
    struct pt_httprule_proto p;
    const char *err = NULL;
    assert_int_equal(pt_httprule_proto_load(&p, opts.p, opts.n, &err), 0);
    assert_pt_str(p.spec.method, "PATCH");
    assert_pt_str(p.spec.path, "/v1/{message.name=messages/*}");
    assert_pt_str(p.spec.body, "message");
    assert_pt_str(p.spec.response_body, "payload");
    assert_int_equal(p.spec.nadditional_bindings, 2);
    assert_pt_str(p.spec.additional_bindings[0].method, "GET");
    assert_pt_str(p.spec.additional_bindings[1].method, "HEAD");
    assert_pt_str(p.spec.additional_bindings[1].path, "/v1/messages/{message_id}");

    const struct pt_httprule_method m[] = {{PT_STR("pkg.Msgs/Update"), &p.spec}};
    struct pt_diag d;
    pt_diag_init(&d);
    struct pt_httprule_table *t = pt_httprule_table_compile(m, 1, NULL, NULL, &d);
    if (!t)
        fail_msg("%s", pt_diag_text(&d));
    pt_diag_fini(&d);
    struct fixture f = {0};
    assert_int_equal(match3(&f, t, "PATCH", "/v1/messages/7", "message.text=x&mask=a"), 0);
    assert_int_equal(f.m.binding, 0);
    ASSERT_PARAMS(&f.m, "message.name=messages/7", "mask=a");
    assert_int_equal(match(&f, t, "GET", "/v1/users/u/messages/7"), 0);
    assert_int_equal(f.m.binding, 1);
    assert_int_equal(match(&f, t, "HEAD", "/v1/messages/7"), 0);
    assert_int_equal(f.m.binding, 2);
    pt_arena_fini(&f.arena);
    pt_httprule_table_free(t);
    pt_httprule_proto_fini(&p);
    free(payload.p);
    free(opts.p);
}

static void test_option__occurrences_merge(void **state)
{
    /* protobuf merges repeated occurrences of a message field */
    Google__Api__HttpRule a = GOOGLE__API__HTTP_RULE__INIT;
    a.pattern_case = GOOGLE__API__HTTP_RULE__PATTERN_POST;
    a.post = "/v1/things";
    Google__Api__HttpRule b = GOOGLE__API__HTTP_RULE__INIT;
    b.body = "*";
    struct bytes payloads[2] = {pack_rule(&a), pack_rule(&b)};
    struct bytes opts = pack_options(payloads, 2);
    struct pt_httprule_proto p;
    assert_int_equal(pt_httprule_proto_load(&p, opts.p, opts.n, NULL), 0);
    assert_pt_str(p.spec.method, "POST");
    assert_pt_str(p.spec.path, "/v1/things");
    assert_pt_str(p.spec.body, "*");
    pt_httprule_proto_fini(&p);
    free(payloads[0].p);
    free(payloads[1].p);
    free(opts.p);
}

static void test_option__absent(void **state)
{
    struct bytes opts = pack_options(NULL, 0);
    assert_true(opts.n > 0); /* deprecated and idempotency_level are there */
    struct pt_httprule_proto p;
    assert_int_equal(pt_httprule_proto_load(&p, opts.p, opts.n, NULL), PT_ERR_NOT_FOUND);
    assert_null(p.msg);
    pt_httprule_proto_fini(&p); /* harmless on an empty one */
    assert_int_equal(pt_httprule_proto_load(&p, NULL, 0, NULL), PT_ERR_NOT_FOUND);
    free(opts.p);
}

static void expect_invalid(const uint8_t *bytes, size_t n, const char *want)
{
    struct pt_httprule_proto p;
    const char *err = NULL;
    assert_int_equal(pt_httprule_proto_load(&p, bytes, n, &err), PT_ERR_INVALID);
    assert_null(p.msg);
    assert_non_null(err);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not mention \"%s\"", err, want);
}

static void test_option__malformed(void **state)
{
    /* the extension's tag: field 72295728, wire type 2 = varint 0x82 0xd3 0xe4 0x93 0x02 */
    const uint8_t truncated_len[] = {0x82, 0xd3, 0xe4, 0x93, 0x02, 0x05, 0x12, 0x01};
    expect_invalid(truncated_len, sizeof(truncated_len), "malformed");
    const uint8_t truncated_tag[] = {0x82, 0xd3};
    expect_invalid(truncated_tag, sizeof(truncated_tag), "malformed");
    /* field 72295728 as a varint */
    const uint8_t wrong_type[] = {0x80, 0xd3, 0xe4, 0x93, 0x02, 0x01};
    expect_invalid(wrong_type, sizeof(wrong_type), "malformed");
    /* field 0, wire types 6 and 7, an end group with no start */
    const uint8_t field0[] = {0x00, 0x01};
    expect_invalid(field0, sizeof(field0), "malformed");
    const uint8_t wt6[] = {0x0e, 0x01};
    expect_invalid(wt6, sizeof(wt6), "malformed");
    const uint8_t endgroup[] = {0x0c};
    expect_invalid(endgroup, sizeof(endgroup), "malformed");
    /* a 64-bit field cut short */
    const uint8_t fixed64[] = {0x09, 1, 2, 3};
    expect_invalid(fixed64, sizeof(fixed64), "malformed");
    /* a payload that is not an HttpRule: field 2 (get) as a varint */
    const uint8_t not_rule[] = {0x82, 0xd3, 0xe4, 0x93, 0x02, 0x02, 0x10, 0x01};
    expect_invalid(not_rule, sizeof(not_rule), "not a valid google.api.HttpRule");
    /* an eleven-byte varint */
    const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_invalid(long_varint, sizeof(long_varint), "malformed");
}

static void test_option__groups_are_skipped(void **state)
{
    Google__Api__HttpRule a = GOOGLE__API__HTTP_RULE__INIT;
    a.pattern_case = GOOGLE__API__HTTP_RULE__PATTERN_GET;
    a.get = "/x";
    struct bytes payload = pack_rule(&a);
    /* group 100 { field 1 varint; group 101 { fixed32 } } then the option */
    uint8_t buf[64];
    size_t n = 0;
    const uint8_t group[] = {0xa3, 0x06, 0x08, 0x05, 0xab, 0x06, 0x15, 1,
                             2,    3,    4,    0xac, 0x06, 0xa4, 0x06};
    memcpy(buf, group, sizeof(group));
    n += sizeof(group);
    const uint8_t tag[] = {0x82, 0xd3, 0xe4, 0x93, 0x02};
    memcpy(buf + n, tag, sizeof(tag));
    n += sizeof(tag);
    buf[n++] = (uint8_t)payload.n;
    memcpy(buf + n, payload.p, payload.n);
    n += payload.n;
    struct pt_httprule_proto p;
    assert_int_equal(pt_httprule_proto_load(&p, buf, n, NULL), 0);
    assert_pt_str(p.spec.path, "/x");
    pt_httprule_proto_fini(&p);
    /* a group closed by another field's end tag */
    const uint8_t mismatched[] = {0xa3, 0x06, 0xac, 0x06};
    expect_invalid(mismatched, sizeof(mismatched), "malformed");
    /* groups nested too deep */
    uint8_t deep[2 * 40];
    for (int i = 0; i < 40; i++) {
        deep[2 * i] = 0xa3;
        deep[2 * i + 1] = 0x06;
    }
    expect_invalid(deep, sizeof(deep), "malformed");
    free(payload.p);
}

static void test_option__rule_errors(void **state)
{
    Google__Api__HttpRule none = GOOGLE__API__HTTP_RULE__INIT;
    none.body = "*";
    struct bytes payload = pack_rule(&none);
    struct bytes opts = pack_options(&payload, 1);
    expect_invalid(opts.p, opts.n, "no pattern");
    free(payload.p);
    free(opts.p);

    Google__Api__HttpRule inner = GOOGLE__API__HTTP_RULE__INIT;
    inner.pattern_case = GOOGLE__API__HTTP_RULE__PATTERN_GET;
    inner.get = "/inner";
    Google__Api__HttpRule *inners[] = {&inner};
    Google__Api__HttpRule mid = GOOGLE__API__HTTP_RULE__INIT;
    mid.pattern_case = GOOGLE__API__HTTP_RULE__PATTERN_GET;
    mid.get = "/mid";
    mid.n_additional_bindings = 1;
    mid.additional_bindings = inners;
    Google__Api__HttpRule *mids[] = {&mid};
    Google__Api__HttpRule top = GOOGLE__API__HTTP_RULE__INIT;
    top.pattern_case = GOOGLE__API__HTTP_RULE__PATTERN_DELETE;
    top.delete_ = "/top";
    top.n_additional_bindings = 1;
    top.additional_bindings = mids;
    payload = pack_rule(&top);
    opts = pack_options(&payload, 1);
    expect_invalid(opts.p, opts.n, "additional_bindings may not have additional_bindings");
    free(payload.p);
    free(opts.p);

    /* an additional binding without a pattern */
    Google__Api__HttpRule empty = GOOGLE__API__HTTP_RULE__INIT;
    Google__Api__HttpRule *empties[] = {&empty};
    top.additional_bindings = empties;
    payload = pack_rule(&top);
    opts = pack_options(&payload, 1);
    expect_invalid(opts.p, opts.n, "no pattern");
    free(payload.p);
    free(opts.p);
}

static void test_option__every_pattern(void **state)
{
    struct {
        Google__Api__HttpRule__PatternCase c;
        const char *method;
    } cases[] = {
        {GOOGLE__API__HTTP_RULE__PATTERN_GET, "GET"},
        {GOOGLE__API__HTTP_RULE__PATTERN_PUT, "PUT"},
        {GOOGLE__API__HTTP_RULE__PATTERN_POST, "POST"},
        {GOOGLE__API__HTTP_RULE__PATTERN_DELETE, "DELETE"},
        {GOOGLE__API__HTTP_RULE__PATTERN_PATCH, "PATCH"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Google__Api__HttpRule r = GOOGLE__API__HTTP_RULE__INIT;
        r.pattern_case = cases[i].c;
        char *path = "/p";
        switch (cases[i].c) {
        case GOOGLE__API__HTTP_RULE__PATTERN_GET:
            r.get = path;
            break;
        case GOOGLE__API__HTTP_RULE__PATTERN_PUT:
            r.put = path;
            break;
        case GOOGLE__API__HTTP_RULE__PATTERN_POST:
            r.post = path;
            break;
        case GOOGLE__API__HTTP_RULE__PATTERN_DELETE:
            r.delete_ = path;
            break;
        default:
            r.patch = path;
            break;
        }
        struct bytes payload = pack_rule(&r);
        struct bytes opts = pack_options(&payload, 1);
        struct pt_httprule_proto p;
        assert_int_equal(pt_httprule_proto_load(&p, opts.p, opts.n, NULL), 0);
        assert_pt_str(p.spec.method, cases[i].method);
        assert_pt_str(p.spec.path, "/p");
        pt_httprule_proto_fini(&p);
        free(payload.p);
        free(opts.p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_option__rule_with_additional_bindings),
        cmocka_unit_test(test_option__occurrences_merge),
        cmocka_unit_test(test_option__absent),
        cmocka_unit_test(test_option__malformed),
        cmocka_unit_test(test_option__groups_are_skipped),
        cmocka_unit_test(test_option__rule_errors),
        cmocka_unit_test(test_option__every_pattern),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
