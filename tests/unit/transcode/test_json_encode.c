/*
 * pt_json_encode (wire -> JSON): field order and merging of repeated,
 * packed, singular and oneof occurrences, maps with duplicate keys, unknown
 * and malformed input, number formatting, well-known-type range checks,
 * options and limits. Wire bytes are written by hand here, so every odd
 * but valid encoding is covered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "json_testutil.h"
#include "portico/errors.h"

#define KITCHEN (&pt__test__json__kitchen__descriptor)

struct wb {
    uint8_t b[8192];
    size_t n;
};

static void w_varint(struct wb *w, uint64_t v)
{
    while (v >= 0x80) {
        w->b[w->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    w->b[w->n++] = (uint8_t)v;
}
static void w_tag(struct wb *w, uint32_t field, int wt)
{
    w_varint(w, (uint64_t)field << 3 | (uint64_t)wt);
}
static void w_vfield(struct wb *w, uint32_t field, uint64_t v)
{
    w_tag(w, field, 0);
    w_varint(w, v);
}
static void w_lfield(struct wb *w, uint32_t field, const void *p, size_t n)
{
    w_tag(w, field, 2);
    w_varint(w, n);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void w_sfield(struct wb *w, uint32_t field, const char *s)
{
    w_lfield(w, field, s, strlen(s));
}
static void w_f64(struct wb *w, uint32_t field, double d)
{
    w_tag(w, field, 1);
    memcpy(w->b + w->n, &d, 8);
    w->n += 8;
}
static void w_f32(struct wb *w, uint32_t field, float f)
{
    w_tag(w, field, 5);
    memcpy(w->b + w->n, &f, 4);
    w->n += 4;
}

static void encodes_opts(const ProtobufCMessageDescriptor *d, const struct wb *w,
                         const struct pt_json_options *o, const char *want)
{
    struct pt_json_out out = {0};
    struct pt_json_error err;
    int rc = pt_json_encode(d, w->b, w->n, pt_test_json_hooks(), o, &out, &err);
    if (rc != 0)
        fail_msg("encode failed: %s (want %s)", err.message, want);
    if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0)
        fail_msg("got  %.*s\nwant %s", (int)out.len, out.data, want);
    pt_json_out_fini(&out);
}

static void encodes(const struct wb *w, const char *want)
{
    encodes_opts(KITCHEN, w, NULL, want);
}

static void fails_opts(const ProtobufCMessageDescriptor *d, const struct wb *w,
                       const struct pt_json_options *o, int status, const char *want)
{
    struct pt_json_out out = {0};
    struct pt_json_error err;
    out.data = malloc(8);
    out.cap = 8;
    out.data[0] = 'x';
    out.len = 1;
    int rc = pt_json_encode(d, w->b, w->n, pt_test_json_hooks(), o, &out, &err);
    if (rc != status)
        fail_msg("status %d, want %d (%s)", rc, status, rc ? err.message : "ok");
    if (!strstr(err.message, want))
        fail_msg("message \"%s\" lacks \"%s\"", err.message, want);
    assert_int_equal(out.len, 1);
    pt_json_out_fini(&out);
}

static void fails(const struct wb *w, const char *want)
{
    fails_opts(KITCHEN, w, NULL, PT_ERR_INVALID, want);
}

static void test_json_encode__declaration_order_and_last_wins(void **st)
{
    (void)st;
    struct wb w = {.n = 0};
    w_vfield(&w, 30, 1);             /* rInt32 unpacked element */
    w_vfield(&w, 3, 7);              /* fInt32 */
    w_lfield(&w, 30, "\x02\x03", 2); /* rInt32 packed run */
    w_vfield(&w, 3, 8);              /* fInt32 again: last wins */
    w_vfield(&w, 30, 4);
    w_sfield(&w, 14, "a");
    w_vfield(&w, 1000, 5); /* unknown */
    encodes(&w, "{\"fInt32\":8,\"fString\":\"a\",\"rInt32\":[1,2,3,4]}");
}

static void test_json_encode__singular_messages_merge(void **st)
{
    (void)st;
    struct wb w = {.n = 0}, n1 = {.n = 0}, n2 = {.n = 0};
    w_vfield(&n1, 1, 5);
    w_sfield(&n1, 2, "x");
    w_lfield(&n1, 4, "", 0);
    w_vfield(&n2, 1, 6);
    w_lfield(&n2, 4, "\x08\x01", 2);
    w_lfield(&w, 20, n1.b, n1.n);
    w_lfield(&w, 20, n2.b, n2.n);
    encodes(&w, "{\"nested\":{\"a\":6,\"b\":\"x\",\"kids\":[{},{\"a\":1}]}}");
}

static void test_json_encode__oneof_last_member_wins(void **st)
{
    (void)st;
    struct wb w = {.n = 0};
    w_vfield(&w, 60, 1);
    w_sfield(&w, 61, "s");
    w_lfield(&w, 62, "\x08\x07", 2);
    encodes(&w, "{\"cNested\":{\"a\":7}}");
    w.n = 0;
    w_lfield(&w, 62, "\x08\x07", 2);
    w_vfield(&w, 60, 0);
    w_f64(&w, 66, 0.0);
    encodes(&w, "{\"cInt\":0,\"oDouble\":0}");
    /* A message member set, then another member, then the message again:
     * only what follows the other member counts. */
    w.n = 0;
    w_lfield(&w, 62, "\x08\x07", 2);
    w_vfield(&w, 60, 3);
    w_lfield(&w, 62, "\x12\x01q", 3);
    encodes(&w, "{\"cNested\":{\"b\":\"q\"}}");
    w.n = 0;
    w_vfield(&w, 64, 0);
    encodes(&w, "{\"cNull\":null}");
}

static void test_json_encode__maps_last_duplicate_wins(void **st)
{
    (void)st;
    struct wb w = {.n = 0};
    w_lfield(&w, 50, "\x0a\x01k\x12\x01v", 6);
    w_lfield(&w, 50, "\x0a\x01j\x12\x01w", 6);
    w_lfield(&w, 50, "\x0a\x01k\x12\x01z", 6);
    w_lfield(&w, 50,
             "\x12\x01"
             "e",
             3);                                                                  /* no key: "" */
    w_lfield(&w, 51, "\x08\x05", 2);                                              /* no value: 0 */
    w_lfield(&w, 51, "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x10\x01", 13); /* key -1 */
    w_lfield(&w, 51, "\x08\xff\xff\xff\xff\x0f\x10\x02", 8); /* key -1 as 5 bytes */
    w_lfield(&w, 58, "\x08\x01", 2);
    w_lfield(&w, 52, "\x08\x01", 2);  /* message value missing: {} */
    w_lfield(&w, 59, "\x0a\x01n", 3); /* Value missing: null */
    encodes(&w, "{\"mString\":{\"j\":\"w\",\"k\":\"z\",\"\":\"e\"},\"mInt32\":{\"5\":\"0\",\"-1\":"
                "\"2\"},\"mInt64\":{\"1\":{}},\"mBool\":{\"true\":\"\"},\"mValue\":{\"n\":null}}");
}

static void test_json_encode__implicit_defaults_omitted(void **st)
{
    (void)st;
    struct wb w = {.n = 0};
    w_vfield(&w, 3, 0);
    w_sfield(&w, 14, "");
    w_f64(&w, 1, 0.0);
    w_f32(&w, 2, -0.0f);
    w_vfield(&w, 16, 0);
    encodes(&w, "{\"fFloat\":-0}");
    struct pt_json_options o = {.emit_defaults = true};
    struct wb e = {.n = 0};
    struct pt_json_out out = {0};
    struct pt_json_error err;
    assert_int_equal(pt_json_encode(KITCHEN, e.b, 0, pt_test_json_hooks(), &o, &out, &err), 0);
    const char *must[] = {"\"fInt32\":0",       "\"fInt64\":\"0\"",
                          "\"fBytes\":\"\"",    "\"color\":\"COLOR_UNSPECIFIED\"",
                          "\"rInt32\":[]",      "\"mString\":{}",
                          "\"nullValue\":null", "\"fBool\":false",
                          "\"renamed\":0"};
    const char *must_not[] = {"nested", "cInt", "presence", "ts", "oBytes", "empty"};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        if (!memmem(out.data, out.len, must[i], strlen(must[i])))
            fail_msg("emit_defaults output lacks %s: %.*s", must[i], (int)out.len, out.data);
    for (size_t i = 0; i < sizeof(must_not) / sizeof(must_not[0]); i++)
        if (memmem(out.data, out.len, must_not[i], strlen(must_not[i])))
            fail_msg("emit_defaults output has %s", must_not[i]);
    pt_json_out_fini(&out);
    /* Presence: zero values set explicitly are printed. */
    w.n = 0;
    w_lfield(&w, 70, "\x08\x00\x12\x00\x20\x00", 6);
    encodes(&w, "{\"presence\":{\"optInt32\":0,\"optString\":\"\",\"optBool\":false}}");
}

static void test_json_encode__scalars_and_number_formats(void **st)
{
    (void)st;
    struct wb w = {.n = 0};
    w_f64(&w, 36, 0.1);
    w_f64(&w, 36, 1.0 / 3);
    w_f64(&w, 36, 5e-324);
    w_f64(&w, 36, 1e21);
    w_f64(&w, 36, 123456789012345680.0);
    w_f64(&w, 36, 100);
    w_f64(&w, 36, -1e15);
    w_f64(&w, 36, 0.0 / 0.0);
    w_f64(&w, 36, -1.0 / 0.0);
    encodes(&w, "{\"rDouble\":[0.1,0.3333333333333333,5e-324,1e+21,"
                "1.2345678901234568e+17,100,-1e+15,\"NaN\",\"-Infinity\"]}");
    w.n = 0;
    w_f32(&w, 37, 0.1f);
    w_f32(&w, 37, 16777216.0f);
    w_f32(&w, 37, 3.4028234663852886e38f);
    w_f32(&w, 37, 1e-45f);
    w_f32(&w, 37, 1.0f / 0.0f);
    w_f32(&w, 37, 2.5f);
    encodes(&w, "{\"rFloat\":[0.1,16777216,3.4028235e+38,1.4013e-45,\"Infinity\",2.5]}");
    w.n = 0;
    w_vfield(&w, 3, 0xffffffffffffffffull); /* int32 -1 sign-extended */
    w_vfield(&w, 4, 0x8000000000000000ull);
    w_vfield(&w, 5, 0x1ffffffffull); /* uint32: low 32 bits */
    w_vfield(&w, 7, 3);              /* sint32 zigzag: -2 */
    w_vfield(&w, 8, 1);              /* sint64: -1 */
    w_vfield(&w, 13, 2);             /* bool: non-zero */
    w_vfield(&w, 16, 1000);          /* unknown enum number */
    w_sfield(&w, 14, "\"\\\x01\n\xc3\xa9\xe2\x80\xa8/");
    w_lfield(&w, 15, "\xfb\xff\xbf", 3);
    encodes(&w, "{\"fInt32\":-1,\"fInt64\":\"-9223372036854775808\",\"fUint32\":4294967295,"
                "\"fSint32\":-2,\"fSint64\":\"-1\",\"fBool\":true,\"fString\":\"\\\"\\\\\\u0001\\n"
                "\xc3\xa9\xe2\x80\xa8/\",\"fBytes\":\"+/+/\",\"color\":1000}");
}

static void test_json_encode__unknown_fields_and_wire_types_skipped(void **st)
{
    (void)st;
    struct wb w = {.n = 0};
    w_tag(&w, 500, 3);  /* unknown group ... */
    w_vfield(&w, 1, 1); /* ... with a field ... */
    w_tag(&w, 501, 3);  /* ... and a nested group */
    w_tag(&w, 501, 4);
    w_tag(&w, 500, 4);     /* end */
    w_sfield(&w, 3, "xx"); /* fInt32 with LEN: not this field */
    w_f32(&w, 14, 1.0f);   /* fString with fixed32: not this field */
    w_vfield(&w, 9, 1);    /* fFixed32 as varint: not this field */
    w_vfield(&w, 3, 2);
    encodes(&w, "{\"fInt32\":2}");
}

static void test_json_encode__malformed_wire_rejected(void **st)
{
    (void)st;
    struct wb w = {.n = 0};
    w.b[w.n++] = 0x18; /* fInt32, truncated varint */
    w.b[w.n++] = 0x80;
    fails(&w, "(root): malformed protobuf: bad varint");
    w.n = 0;
    w_tag(&w, 14, 2);
    w_varint(&w, 5);
    w.b[w.n++] = 'a';
    fails(&w, "length past the end");
    w.n = 0;
    w_tag(&w, 3, 0);
    memcpy(w.b + w.n, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10);
    w.n += 10;
    fails(&w, "bad varint");
    w.n = 0;
    w.b[w.n++] = 0x1e; /* wire type 6 */
    fails(&w, "bad wire type");
    w.n = 0;
    w.b[w.n++] = 0x00;
    w.b[w.n++] = 0x00;
    fails(&w, "bad tag");
    w.n = 0;
    w_tag(&w, 5, 4); /* end group without start */
    fails(&w, "bad wire type");
    w.n = 0;
    w_tag(&w, 5, 3);
    fails(&w, "unterminated group");
    w.n = 0;
    w_tag(&w, 5, 3);
    w_tag(&w, 6, 4);
    fails(&w, "mismatched end group");
    w.n = 0;
    w_tag(&w, 1, 1);
    w.b[w.n++] = 0;
    fails(&w, "truncated fixed64");
    w.n = 0;
    w_lfield(&w, 30, "\x80", 1); /* packed run with a cut varint */
    fails(&w, "rInt32[0]: malformed protobuf: bad varint in packed field");
    w.n = 0;
    w_lfield(&w, 36, "\x00\x00\x00", 3);
    fails(&w, "rDouble[0]: malformed protobuf: truncated packed field");
    w.n = 0;
    w_lfield(&w, 20, "\x0a\x05", 2); /* nested: string past its end */
    fails(&w, "nested: malformed protobuf: length past the end");
    w.n = 0;
    w_lfield(&w, 42, "", 0);
    w_lfield(&w, 42, "\x12\x01\xff", 3);
    fails(&w, "rNested[1].b: invalid UTF-8 in string field");
    w.n = 0;
    w_lfield(&w, 50, "\x0a\x01\xff", 3);
    fails(&w, "mString: invalid UTF-8 in map key");
    w.n = 0;
    w_lfield(&w, 52, "\x08\x7f\x12\x02\x12\x01", 6);
    fails(&w, "mInt64[\"127\"]: malformed protobuf: length past the end");
}

static void test_json_encode__well_known_types(void **st)
{
    (void)st;
    struct wb w = {.n = 0};
    w_lfield(&w, 80, "\x08\x80\x80\x80\x80\x10\x10\xe8\x07", 9); /* ts 2^32 s, 1000 ns */
    w_lfield(&w, 81,
             "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
             "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
             22);                                                         /* -1s, -1ns */
    w_lfield(&w, 82, "\x0a\x07\x61\x5f\x62\x2e\x63\x5f\x64\x0a\x00", 11); /* a_b.c_d, "" */
    w_lfield(&w, 89, "", 0);
    w_lfield(&w, 92, "\x08\x00", 2);
    w_lfield(&w, 84, "\x2a\x00", 2); /* Value: empty struct */
    w_lfield(&w, 85, "\x0a\x00\x0a\x02\x20\x01", 6);
    w_lfield(&w, 87, "", 0);
    w_lfield(&w, 88, "", 0);
    encodes(&w, "{\"ts\":\"2106-02-07T06:28:16.000001Z\",\"dur\":\"-1.000000001s\","
                "\"mask\":\"aB.cD,\",\"val\":{},\"list\":[null,true],\"empty\":{},\"any\":{},"
                "\"wBool\":false,\"wUint32\":0}");
    /* Timestamp and Duration ranges, Value numbers, FieldMask paths. */
    w.n = 0;
    w_lfield(&w, 80, "\x10\xff\xff\xff\xff\x0f", 6); /* nanos -1 */
    fails(&w, "ts: Timestamp out of range");
    w.n = 0;
    w_lfield(&w, 80, "\x08\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10); /* 2^56 s */
    fails(&w, "Timestamp out of range");
    w.n = 0;
    w_lfield(&w, 81, "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x10\x01",
             13); /* -1s, +1ns: sign mismatch */
    fails(&w, "dur: Duration out of range");
    w.n = 0;
    w_lfield(&w, 81, "\x08\x81\x80\x80\x80\x99\x09", 7); /* > 315576000000 s */
    fails(&w, "Duration out of range");
    w.n = 0;
    double nan = 0.0 / 0.0;
    uint8_t v[9] = {0x11};
    memcpy(v + 1, &nan, 8);
    w_lfield(&w, 84, v, 9);
    fails(&w, "val: Value.number_value cannot be NaN");
    w.n = 0;
    w_lfield(&w, 82, "\x0a\x03\x61\x42\x63", 5); /* "aBc" */
    fails(&w, "mask: FieldMask path \"aBc\" has no JSON form");
    w.n = 0;
    w_lfield(&w, 82, "\x0a\x02\x61\x5f", 4); /* "a_" */
    fails(&w, "FieldMask path ends with '_'");
    w.n = 0;
    w_lfield(&w, 88, "\x0a\x05x/y.Z", 7);
    fails(&w, "any: unknown type \"x/y.Z\" in Any");
    /* Without a type registry no Any with a type can be printed. */
    w.n = 0;
    struct wb any = {.n = 0};
    w_sfield(&any, 1, "x/google.protobuf.Empty");
    w_lfield(&w, 88, any.b, any.n);
    struct pt_json_out out = {0};
    struct pt_json_error err;
    assert_int_equal(pt_json_encode(KITCHEN, w.b, w.n, NULL, NULL, &out, &err), PT_ERR_INVALID);
    assert_non_null(strstr(err.message, "unknown type"));
    pt_json_out_fini(&out);
}

static void test_json_encode__any_forms(void **st)
{
    (void)st;
    struct wb any = {.n = 0}, w = {.n = 0};
    w_sfield(&any, 1, "type.googleapis.com/google.protobuf.Duration");
    w_lfield(&any, 2, "\x08\x02", 2);
    w_lfield(&w, 88, any.b, any.n);
    encodes(&w, "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Duration\","
                "\"value\":\"2s\"}}");
    any.n = w.n = 0;
    w_sfield(&any, 1, "t/pt.test.json.Nested");
    w_lfield(&any, 2, "\x08\x02\x12\x01z", 5);
    w_lfield(&w, 98, any.b, any.n);
    any.n = 0;
    w_sfield(&any, 1, "t/google.protobuf.Empty");
    w_lfield(&w, 98, any.b, any.n);
    encodes(&w, "{\"rAny\":[{\"@type\":\"t/pt.test.json.Nested\",\"a\":2,\"b\":\"z\"},"
                "{\"@type\":\"t/google.protobuf.Empty\"}]}");
}

static void test_json_encode__original_names_and_hooks(void **st)
{
    (void)st;
    struct wb w = {.n = 0};
    w_vfield(&w, 110, 1);
    w_vfield(&w, 111, 2);
    w_vfield(&w, 114, 3);
    encodes(&w, "{\"snakeCase2Name\":1,\"Leading\":2,\"renamed\":3}");
    struct pt_json_options o = {.original_names = true};
    encodes_opts(KITCHEN, &w, &o, "{\"snake_case_2_name\":1,\"_leading\":2,\"custom_json\":3}");
    /* Without hooks: default names, no Any types. */
    struct pt_json_out out = {0};
    struct pt_json_error err;
    assert_int_equal(pt_json_encode(KITCHEN, w.b, w.n, NULL, NULL, &out, &err), 0);
    assert_int_equal(out.len, strlen("{\"snakeCase2Name\":1,\"Leading\":2,\"customJson\":3}"));
    pt_json_out_fini(&out);
}

static void test_json_encode__depth_and_output_limits(void **st)
{
    (void)st;
    /* Nested.child 100 deep, built inside out. */
    static struct wb a, b;
    a.n = 0;
    for (int i = 0; i < 100; i++) {
        b.n = 0;
        w_lfield(&b, 3, a.b, a.n);
        a = b;
    }
    fails_opts(&pt__test__json__nested__descriptor, &a, NULL, PT_ERR_LIMIT,
               "nesting deeper than 64 levels");
    struct pt_json_options deep = {.max_depth = 200};
    struct pt_json_out out = {0};
    struct pt_json_error err;
    assert_int_equal(
        pt_json_encode(&pt__test__json__nested__descriptor, a.b, a.n, NULL, &deep, &out, &err), 0);
    pt_json_out_fini(&out);
    struct wb w = {.n = 0};
    for (int i = 0; i < 100; i++)
        w_lfield(&w, 42, "", 0);
    struct pt_json_options small = {.max_output = 64};
    fails_opts(KITCHEN, &w, &small, PT_ERR_LIMIT, "output larger than 64 bytes");
    /* Exactly enough is enough. */
    char want[512];
    size_t n = (size_t)sprintf(want, "{\"rNested\":[");
    for (int i = 0; i < 100; i++)
        n += (size_t)sprintf(want + n, i ? ",{}" : "{}");
    strcpy(want + n, "]}");
    small.max_output = strlen(want);
    encodes_opts(KITCHEN, &w, &small, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_encode__declaration_order_and_last_wins),
        cmocka_unit_test(test_json_encode__singular_messages_merge),
        cmocka_unit_test(test_json_encode__oneof_last_member_wins),
        cmocka_unit_test(test_json_encode__maps_last_duplicate_wins),
        cmocka_unit_test(test_json_encode__implicit_defaults_omitted),
        cmocka_unit_test(test_json_encode__scalars_and_number_formats),
        cmocka_unit_test(test_json_encode__unknown_fields_and_wire_types_skipped),
        cmocka_unit_test(test_json_encode__malformed_wire_rejected),
        cmocka_unit_test(test_json_encode__well_known_types),
        cmocka_unit_test(test_json_encode__any_forms),
        cmocka_unit_test(test_json_encode__original_names_and_hooks),
        cmocka_unit_test(test_json_encode__depth_and_output_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
