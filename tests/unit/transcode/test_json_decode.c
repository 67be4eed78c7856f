/*
 * pt_json_decode (JSON -> wire): the proto3 JSON input rules one by one,
 * errors with their JSON paths, limits and hostile inputs. Results are
 * checked by unpacking the wire bytes with protobuf-c's generated code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "json_testutil.h"
#include "portico/errors.h"

#define KITCHEN (&pt__test__json__kitchen__descriptor)

static int dec_opts(const ProtobufCMessageDescriptor *d, const char *json,
                    const struct pt_json_options *o, struct pt_json_out *out,
                    struct pt_json_error *err)
{
    return pt_json_decode(d, pt_str_from_cstr(json), pt_test_json_hooks(), o, out, err);
}

/* Decodes json as a Kitchen (must succeed) and unpacks it. */
static Pt__Test__Json__Kitchen *kitchen_opts(const char *json, const struct pt_json_options *o)
{
    struct pt_json_out out = {0};
    struct pt_json_error err;
    if (dec_opts(KITCHEN, json, o, &out, &err) != 0)
        fail_msg("decode of %s failed: %s", json, err.message);
    Pt__Test__Json__Kitchen *k =
        pt__test__json__kitchen__unpack(NULL, out.len, (const uint8_t *)out.data);
    if (!k)
        fail_msg("protobuf-c cannot unpack the output of %s", json);
    pt_json_out_fini(&out);
    return k;
}

static Pt__Test__Json__Kitchen *kitchen(const char *json)
{
    return kitchen_opts(json, NULL);
}

/* Decoding fails with status `status`, a message containing `want`, and
 * leaves the output as it was. */
static void fails_opts(const ProtobufCMessageDescriptor *d, const char *json,
                       const struct pt_json_options *o, int status, const char *want)
{
    struct pt_json_out out = {0};
    struct pt_json_error err;
    out.data = malloc(16);
    out.cap = 16;
    memcpy(out.data, "abc", 3);
    out.len = 3;
    int rc = dec_opts(d, json, o, &out, &err);
    if (rc != status)
        fail_msg("%.80s: status %d, want %d (%s)", json, rc, status, rc ? err.message : "ok");
    if (!strstr(err.message, want))
        fail_msg("%.80s: message \"%s\" lacks \"%s\"", json, err.message, want);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "abc", 3);
    pt_json_out_fini(&out);
}

static void fails(const char *json, const char *want)
{
    fails_opts(KITCHEN, json, NULL, PT_ERR_INVALID, want);
}

static void test_json_decode__integers_as_numbers_or_strings(void **st)
{
    (void)st;
    Pt__Test__Json__Kitchen *k = kitchen(
        "{\"fInt32\": 1e2, \"fInt64\": \"-9223372036854775808\", \"fUint32\": 4294967295,"
        " \"fUint64\": 18446744073709551615, \"fSint32\": \"-5\", \"fSint64\": 1.0e18,"
        " \"fFixed32\": \"4e9\", \"fFixed64\": 12.000, \"fSfixed32\": -0, \"fSfixed64\": \"-1\"}");
    assert_int_equal(k->f_int32, 100);
    assert_true(k->f_int64 == INT64_MIN);
    assert_true(k->f_uint32 == 4294967295u);
    assert_true(k->f_uint64 == UINT64_MAX);
    assert_int_equal(k->f_sint32, -5);
    assert_true(k->f_sint64 == 1000000000000000000ll);
    assert_true(k->f_fixed32 == 4000000000u);
    assert_true(k->f_fixed64 == 12);
    assert_int_equal(k->f_sfixed32, 0);
    assert_true(k->f_sfixed64 == -1);
    pt__test__json__kitchen__free_unpacked(k, NULL);

    fails("{\"fInt32\": 1.5}", "fInt32: int32 must be an integer");
    fails("{\"fInt32\": 2147483648}", "fInt32: int32 out of range");
    fails("{\"fInt32\": -2147483649}", "out of range");
    fails("{\"fUint32\": -1}", "fUint32: uint32 out of range");
    fails("{\"fInt64\": 9223372036854775808}", "out of range");
    fails("{\"fUint64\": \"18446744073709551616\"}", "out of range");
    fails("{\"fInt64\": 1e400}", "out of range");
    fails("{\"fInt64\": 1e-400}", "must be an integer");
    fails("{\"fInt32\": \"12 \"}", "invalid int32");
    fails("{\"fInt32\": \"0x10\"}", "invalid int32");
    fails("{\"fInt32\": true}", "fInt32: expected a number, got boolean");
    fails("{\"fInt32\": 01}", "invalid number");
    fails("{\"fInt32\": +1}", "expected a number, got invalid JSON");
    fails("{\"fInt32\": 1.}", "invalid number");
}

static void test_json_decode__floats_and_special_values(void **st)
{
    (void)st;
    Pt__Test__Json__Kitchen *k = kitchen(
        "{\"fDouble\": \"NaN\", \"fFloat\": \"-Infinity\", \"rDouble\": [\"Infinity\", 1e308,"
        " \"2.5\", 5e-324, -0.0, 1e-400], \"rFloat\": [3.4028235e38, -3.4028235e38, 1e-50]}");
    assert_true(isnan(k->f_double));
    assert_true(isinf(k->f_float) && k->f_float < 0);
    assert_int_equal(k->n_r_double, 6);
    assert_true(isinf(k->r_double[0]) && k->r_double[0] > 0);
    assert_true(k->r_double[1] == 1e308 && k->r_double[2] == 2.5 && k->r_double[3] == 5e-324);
    assert_true(k->r_double[4] == 0 && signbit(k->r_double[4]) && k->r_double[5] == 0);
    assert_true(k->r_float[0] == 3.4028234663852886e38f && k->r_float[1] == -k->r_float[0]);
    assert_true(k->r_float[2] == 0);
    pt__test__json__kitchen__free_unpacked(k, NULL);

    fails("{\"fDouble\": 1e400}", "fDouble: double out of range");
    fails("{\"fFloat\": 3.5e38}", "fFloat: float out of range");
    fails("{\"fDouble\": \"nan\"}", "invalid number \"nan\"");
    fails("{\"fDouble\": \"inf\"}", "invalid number");
    fails("{\"fDouble\": NaN}", "expected a number, got invalid JSON");
    fails("{\"fFloat\": null, \"fDouble\": [1]}", "fDouble: expected a number, got array");
}

static void test_json_decode__bytes_base64_variants(void **st)
{
    (void)st;
    Pt__Test__Json__Kitchen *k =
        kitchen("{\"rBytes\": [\"+/8=\", \"-_8=\", \"-_8\", \"\", \"AQID\", \"AQ==\", \"AQ\","
                " \"\\/w==\"]}");
    assert_int_equal(k->n_r_bytes, 8);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(k->r_bytes[i].len, 2);
        assert_memory_equal(k->r_bytes[i].data, "\xfb\xff", 2);
    }
    assert_int_equal(k->r_bytes[3].len, 0);
    assert_int_equal(k->r_bytes[4].len, 3);
    assert_int_equal(k->r_bytes[5].len, 1);
    assert_int_equal(k->r_bytes[6].len, 1);
    assert_int_equal(k->r_bytes[7].len, 1);
    assert_int_equal(k->r_bytes[7].data[0], 0xff);
    pt__test__json__kitchen__free_unpacked(k, NULL);

    fails("{\"fBytes\": \"A\"}", "fBytes: invalid base64");
    fails("{\"fBytes\": \"AQ=\"}", "invalid base64");
    fails("{\"fBytes\": \"A===\"}", "invalid base64");
    fails("{\"fBytes\": \"AQID=\"}", "invalid base64");
    fails("{\"fBytes\": \"AQ ID\"}", "invalid base64");
    fails("{\"fBytes\": \"AQ*D\"}", "invalid base64");
    fails("{\"fBytes\": 12}", "expected a base64 string, got number");
}

static void test_json_decode__enums_by_name_or_number(void **st)
{
    (void)st;
    Pt__Test__Json__Kitchen *k =
        kitchen("{\"color\": \"BLUE\", \"size\": 100, \"rColor\": [\"RED\", 2, \"-3\", 99], "
                "\"mUint32\": {\"1\": \"GREEN\", \"2\": 7}, \"cColor\": \"COLOR_UNSPECIFIED\"}");
    assert_int_equal(k->color, PT__TEST__JSON__COLOR__BLUE);
    assert_int_equal(k->size, PT__TEST__JSON__KITCHEN__SIZE__LARGE);
    assert_int_equal(k->n_r_color, 4);
    assert_int_equal(k->r_color[2], -3);
    assert_int_equal(k->r_color[3], 99);
    assert_int_equal(k->n_m_uint32, 2);
    assert_int_equal(k->choice_case, PT__TEST__JSON__KITCHEN__CHOICE_C_COLOR);
    assert_int_equal(k->c_color, 0);
    pt__test__json__kitchen__free_unpacked(k, NULL);

    fails("{\"color\": \"PURPLE\"}", "color: unknown value \"PURPLE\" for enum pt.test.json.Color");
    fails("{\"color\": \"red\"}", "unknown value");
    fails("{\"color\": 2147483648}", "out of range");
    fails("{\"color\": true}", "color: expected an enum name or number, got boolean");

    /* ignore_unknown: an unknown name leaves the field unset; in a repeated
     * field the element is dropped; in a map the entry is. */
    struct pt_json_options ign = {.ignore_unknown = true};
    k = kitchen_opts("{\"color\": \"PURPLE\", \"rColor\": [\"X\", \"RED\", \"Y\"], "
                     "\"mUint32\": {\"1\": \"X\", \"2\": \"RED\"}, \"cColor\": \"X\"}",
                     &ign);
    assert_int_equal(k->color, 0);
    assert_int_equal(k->n_r_color, 1);
    assert_int_equal(k->r_color[0], 1);
    assert_int_equal(k->n_m_uint32, 1);
    assert_int_equal(k->m_uint32[0]->key, 2);
    assert_int_equal(k->choice_case, PT__TEST__JSON__KITCHEN__CHOICE__NOT_SET);
    pt__test__json__kitchen__free_unpacked(k, NULL);
}

static void test_json_decode__json_names_and_proto_names(void **st)
{
    (void)st;
    Pt__Test__Json__Kitchen *k =
        kitchen("{\"snakeCase2Name\": 1, \"_leading\": 2, \"trailing\": 3, \"double__under\": 4,"
                " \"renamed\": 5, \"f_string\": \"a\"}");
    assert_int_equal(k->snake_case_2_name, 1);
    assert_int_equal(k->_leading, 2);
    assert_int_equal(k->trailing_, 3);
    assert_int_equal(k->double__under, 4);
    assert_int_equal(k->custom_json, 5);
    assert_string_equal(k->f_string, "a");
    pt__test__json__kitchen__free_unpacked(k, NULL);
    k = kitchen("{\"custom_json\": 6, \"Leading\": 7}");
    assert_int_equal(k->custom_json, 6);
    assert_int_equal(k->_leading, 7);
    pt__test__json__kitchen__free_unpacked(k, NULL);

    /* The hook renames custom_json; its default camel name is not a name. */
    fails("{\"customJson\": 1}", "unknown field \"customJson\" in pt.test.json.Kitchen");
    fails("{\"fString\": \"a\", \"f_string\": \"b\"}", "f_string: field given twice");
    fails("{\"nested\": {\"a\": 1, \"a\": 2}}", "nested.a: field given twice");
}

static void test_json_decode__unknown_fields_error_or_ignored(void **st)
{
    (void)st;
    fails("{\"nested\": {\"kids\": [{}, {\"zz\": 1}]}}", "nested.kids[1]: unknown field \"zz\"");
    struct pt_json_options ign = {.ignore_unknown = true};
    Pt__Test__Json__Kitchen *k = kitchen_opts(
        "{\"zz\": {\"a\": [1, {\"b\": null}], \"c\": \"\\u00e9\"}, \"fInt32\": 3, \"yy\": []}",
        &ign);
    assert_int_equal(k->f_int32, 3);
    pt__test__json__kitchen__free_unpacked(k, NULL);
    /* Ignored values are still checked: JSON syntax, duplicates, depth. */
    fails_opts(KITCHEN, "{\"zz\": {\"a\": 1, \"a\": 2}}", &ign, PT_ERR_INVALID,
               "duplicate key \"a\"");
    fails_opts(KITCHEN, "{\"zz\": 1, \"zz\": 2}", &ign, PT_ERR_INVALID, "duplicate key \"zz\"");
    fails_opts(KITCHEN, "{\"zz\": [1,]}", &ign, PT_ERR_INVALID, "expected a JSON value");
    fails_opts(KITCHEN, "{\"zz\": \"\xff\"}", &ign, PT_ERR_INVALID, "invalid UTF-8");
}

static void test_json_decode__duplicate_keys_rejected(void **st)
{
    (void)st;
    fails("{\"mString\": {\"a\": \"1\", \"b\": \"2\", \"a\": \"3\"}}",
          "mString: duplicate key \"a\"");
    fails("{\"mString\": {\"\\u0061\": \"1\", \"a\": \"3\"}}", "duplicate key \"a\"");
    fails("{\"st\": {\"x\": 1, \"y\": {\"q\": 1, \"q\": 2}}}", "duplicate key \"q\"");
    fails("{\"any\": {\"@type\": \"type.googleapis.com/pt.test.json.Nested\", \"@type\": \"x\"}}",
          "duplicate key \"@type\"");
    fails("{\"mInt32\": {\"1\": 1, \"2\": 2, \"3\": 3, \"1\": 4}}", "duplicate key \"1\"");
}

static void test_json_decode__oneof_and_presence(void **st)
{
    (void)st;
    fails("{\"cInt\": 1, \"cString\": \"x\"}", "cString: oneof already set by \"c_int\"");
    fails("{\"cNull\": null, \"cInt\": 0}", "oneof already set");
    Pt__Test__Json__Kitchen *k = kitchen("{\"cInt\": 0, \"cString\": null, \"oBytes\": \"\"}");
    assert_int_equal(k->choice_case, PT__TEST__JSON__KITCHEN__CHOICE_C_INT);
    assert_int_equal(k->other_case, PT__TEST__JSON__KITCHEN__OTHER_O_BYTES);
    pt__test__json__kitchen__free_unpacked(k, NULL);
    k = kitchen("{\"cNull\": null, \"presence\": {\"optInt32\": 0, \"optString\": \"\", "
                "\"optBool\": false, \"optBytes\": \"\"}}");
    assert_int_equal(k->choice_case, PT__TEST__JSON__KITCHEN__CHOICE_C_NULL);
    assert_true(k->presence->has_opt_int32 && k->presence->has_opt_bool &&
                k->presence->has_opt_bytes);
    assert_non_null(k->presence->opt_string);
    pt__test__json__kitchen__free_unpacked(k, NULL);
}

static void test_json_decode__defaults_and_nulls_write_nothing(void **st)
{
    (void)st;
    struct pt_json_out out = {0};
    struct pt_json_error err;
    assert_int_equal(dec_opts(KITCHEN,
                              "{\"fInt32\": 0, \"fString\": \"\", \"fBool\": false, \"fDouble\": 0,"
                              " \"fBytes\": \"\", \"color\": \"COLOR_UNSPECIFIED\", \"rInt32\": [],"
                              " \"mString\": {}, \"nested\": null, \"rNested\": null,"
                              " \"ts\": null, \"nullValue\": null, \"wInt32\": null}",
                              NULL, &out, &err),
                     0);
    assert_int_equal(out.len, 0);
    /* -0.0 is not the default (protobuf compares bits). */
    assert_int_equal(dec_opts(KITCHEN, "{\"fDouble\": -0.0}", NULL, &out, &err), 0);
    assert_int_equal(out.len, 9);
    pt_json_out_fini(&out);
    /* null where a Value is expected is a null Value; elsewhere in lists an error. */
    Pt__Test__Json__Kitchen *k = kitchen("{\"val\": null, \"rValue\": [null, 1], "
                                         "\"mValue\": {\"a\": null}, \"list\": [null]}");
    assert_non_null(k->val);
    assert_int_equal(k->val->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    assert_int_equal(k->n_r_value, 2);
    assert_int_equal(k->r_value[0]->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    assert_int_equal(k->m_value[0]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    assert_int_equal(k->list->n_values, 1);
    pt__test__json__kitchen__free_unpacked(k, NULL);
    fails("{\"rInt32\": [1, null]}", "rInt32[1]: null is not allowed in a repeated field");
    fails("{\"rNested\": [null]}", "rNested[0]: null is not allowed");
    fails("{\"mString\": {\"a\": null}}", "mString[\"a\"]: null is not a valid map value");
}

static void test_json_decode__maps_with_typed_keys(void **st)
{
    (void)st;
    Pt__Test__Json__Kitchen *k = kitchen(
        "{\"mBool\": {\"true\": \"t\", \"false\": \"f\"}, \"mInt32\": {\"-2147483648\": \"1\"},"
        " \"mUint64\": {\"18446744073709551615\": \"AA==\"}, \"mSint32\": {\"-3\": 1.5},"
        " \"mFixed64\": {\"7\": \"NaN\"}, \"mSfixed32\": {\"-1\": true},"
        " \"mInt64\": {\"5\": {\"a\": 1}}, \"mDur\": {\"x\": \"2s\"}}");
    assert_int_equal(k->n_m_bool, 2);
    assert_true(k->m_bool[0]->key && !k->m_bool[1]->key);
    assert_true(k->m_int32[0]->key == INT32_MIN && k->m_int32[0]->value == 1);
    assert_true(k->m_uint64[0]->key == UINT64_MAX);
    assert_int_equal(k->m_sint32[0]->key, -3);
    assert_true(isnan(k->m_fixed64[0]->value));
    assert_int_equal(k->m_sfixed32[0]->key, -1);
    assert_int_equal(k->m_int64[0]->value->a, 1);
    assert_int_equal(k->m_dur[0]->value->seconds, 2);
    pt__test__json__kitchen__free_unpacked(k, NULL);

    fails("{\"mBool\": {\"1\": \"x\"}}", "mBool[\"1\"]: map key must be \"true\" or \"false\"");
    fails("{\"mInt32\": {\"x\": 1}}", "invalid int32 \"x\"");
    fails("{\"mInt32\": {\"2147483648\": 1}}", "out of range");
    fails("{\"mUint32\": {\"-1\": 1}}", "out of range");
    fails("{\"mString\": [\"a\"]}", "mString: expected an object (map), got array");
    fails("{\"mString\": {\"a\": 1}}", "mString[\"a\"]: expected a string, got number");
}

static void test_json_decode__error_paths_name_the_field(void **st)
{
    (void)st;
    fails("{\"rNested\": [{}, {}, {\"a\": \"x\"}]}", "rNested[2].a: invalid int32 \"x\"");
    fails("{\"rNested\": [{}, {}, {\"a\": false}]}",
          "rNested[2].a: expected a number, got boolean");
    fails("{\"mInt64\": {\"9\": {\"kids\": [{\"b\": 1}]}}}",
          "mInt64[\"9\"].kids[0].b: expected a string, got number");
    fails("{\"recursive\": {\"recursive\": {\"fBool\": 1}}}",
          "recursive.recursive.fBool: expected true or false, got number");
    fails("[]", "(root): expected an object, got array");
    fails("{\"st\": {\"a\": {\"b\": [1, {\"c\": nul}]}}}", "invalid literal");
}

static void test_json_decode__well_known_types(void **st)
{
    (void)st;
    Pt__Test__Json__Kitchen *k =
        kitchen("{\"ts\": \"1972-01-01T10:00:20.021-05:30\", \"rTs\": [\"0001-01-01T00:00:00Z\", "
                "\"9999-12-31T23:59:59.999999999Z\", \"2000-02-29T00:00:00+00:00\", "
                "\"1970-01-01T00:00:00.1Z\"], \"dur\": \"-0.5s\", \"mDur\": {\"a\": "
                "\"315576000000.999999999s\"},"
                " \"mask\": \"fooBar.bazQux,,x\", \"wInt64\": \"-3\", \"wBytes\": \"AQ\", "
                "\"wString\": \"\","
                " \"empty\": {}, \"any\": {}}");
    assert_true(k->ts->seconds == 63127820 && k->ts->nanos == 21000000);
    assert_true(k->r_ts[0]->seconds == -62135596800ll);
    assert_true(k->r_ts[1]->seconds == 253402300799ll && k->r_ts[1]->nanos == 999999999);
    assert_true(k->r_ts[2]->seconds == 951782400);
    assert_int_equal(k->r_ts[3]->nanos, 100000000);
    assert_true(k->dur->seconds == 0 && k->dur->nanos == -500000000);
    assert_true(k->m_dur[0]->value->seconds == 315576000000ll);
    assert_int_equal(k->mask->n_paths, 3);
    assert_string_equal(k->mask->paths[0], "foo_bar.baz_qux");
    assert_string_equal(k->mask->paths[1], "");
    assert_true(k->w_int64->value == -3);
    assert_int_equal(k->w_bytes->value.len, 1);
    assert_non_null(k->w_string);
    assert_non_null(k->empty);
    assert_non_null(k->any);
    assert_null(k->any->type_url == NULL || k->any->type_url[0] == '\0' ? NULL : k->any);
    pt__test__json__kitchen__free_unpacked(k, NULL);

    fails("{\"ts\": \"1972-01-01t10:00:20Z\"}", "ts: invalid timestamp");
    fails("{\"ts\": \"1972-01-01T10:00:20\"}", "invalid timestamp");
    fails("{\"ts\": \"1972-01-01T10:00:20.1234567890Z\"}", "invalid timestamp");
    fails("{\"ts\": \"0000-12-31T00:00:00Z\"}", "invalid timestamp");
    fails("{\"ts\": \"9999-12-31T23:59:59-00:01\"}", "invalid timestamp");
    fails("{\"ts\": \"2001-02-29T00:00:00Z\"}", "invalid timestamp");
    fails("{\"ts\": \"2001-01-01T24:00:00Z\"}", "invalid timestamp");
    fails("{\"ts\": \"2001-01-01T00:00:60Z\"}", "invalid timestamp");
    fails("{\"ts\": 0}", "ts: expected an RFC 3339 timestamp string, got number");
    fails("{\"dur\": \"315576000001s\"}", "dur: invalid duration");
    fails("{\"dur\": \"1.0000000001s\"}", "invalid duration");
    fails("{\"dur\": \"1\"}", "invalid duration");
    fails("{\"dur\": \"s\"}", "invalid duration");
    fails("{\"dur\": \"--1s\"}", "invalid duration");
    fails("{\"dur\": \"1.s\"}", "invalid duration");
    fails("{\"mask\": \"foo_bar\"}", "mask: FieldMask path must be lowerCamelCase");
    fails("{\"wInt32\": \"x\"}", "invalid int32");
    fails("{\"wInt32\": {\"value\": 1}}", "wInt32: expected a number, got object");
    fails("{\"empty\": {\"a\": 1}}", "empty: unknown field \"a\"");
    fails("{\"any\": {\"a\": 1}}", "any: Any without \"@type\"");
    fails("{\"any\": {\"@type\": \"type.googleapis.com/no.Such\"}}",
          "any: unknown type \"type.googleapis.com/no.Such\" in Any");
    fails("{\"any\": {\"@type\": \"x/google.protobuf.Duration\"}}", "needs \"value\"");
    fails("{\"any\": {\"@type\": \"x/google.protobuf.Duration\", \"value\": \"1\"}}",
          "any.value: invalid duration");
    fails("{\"any\": {\"@type\": \"x/pt.test.json.Nested\", \"a\": \"q\"}}",
          "any.a: invalid int32");
    fails("{\"any\": {\"@type\": 5}}", "expected a type URL string, got number");
    fails("{\"st\": []}", "st: expected an object (map), got array");
    fails("{\"list\": {}}", "list: expected an array, got object");
    fails("{\"val\": 1e999}", "val: number out of range");
}

static void test_json_decode__top_level_well_known_types(void **st)
{
    (void)st;
    struct pt_json_out out = {0};
    struct pt_json_error err;
    assert_int_equal(
        dec_opts(&google__protobuf__duration__descriptor, " \"1.5s\" ", NULL, &out, &err), 0);
    Google__Protobuf__Duration *d =
        google__protobuf__duration__unpack(NULL, out.len, (const uint8_t *)out.data);
    assert_true(d->seconds == 1 && d->nanos == 500000000);
    google__protobuf__duration__free_unpacked(d, NULL);
    out.len = 0;
    assert_int_equal(dec_opts(&google__protobuf__value__descriptor, "null", NULL, &out, &err), 0);
    assert_int_equal(out.len, 2);
    out.len = 0;
    assert_int_equal(
        dec_opts(&google__protobuf__struct__descriptor, "{\"a\": [true]}", NULL, &out, &err), 0);
    pt_json_out_fini(&out);
    fails_opts(&google__protobuf__duration__descriptor, "\"1s\" 1", NULL, PT_ERR_INVALID,
               "unexpected data after the JSON value");
}

static void test_json_decode__malformed_json(void **st)
{
    (void)st;
    fails("", "expected an object, got end of input");
    fails("   ", "got end of input");
    fails("{", "expected a string key");
    fails("{\"fInt32\"", "expected ':'");
    fails("{\"fInt32\": 1", "expected ',' or '}'");
    fails("{\"fInt32\": 1,}", "expected a string key");
    fails("{\"rInt32\": [1,]}", "expected a number, got invalid JSON");
    fails("{\"rInt32\": [1 2]}", "expected ',' or ']'");
    fails("{\"fInt32\": 1} {}", "unexpected data after the JSON value");
    fails("{\"fInt32\": 1}x", "unexpected data");
    fails("{'fInt32': 1}", "expected a string key");
    fails("{\"fString\": \"abc}", "unterminated string");
    fails("{\"fString\": \"a\\x\"}", "invalid escape");
    fails("{\"fString\": \"a\\u12\"}", "invalid \\u escape");
    fails("{\"fString\": \"\t\"}", "control character in string");
    fails("{\"fBool\": tru}", "invalid literal");
    fails("{\"fBool\": True}", "expected true or false, got invalid JSON");
    fails("\xef\xbb\xbf{}", "expected an object, got invalid JSON");
}

static void test_json_decode__strings_unicode_rules(void **st)
{
    (void)st;
    Pt__Test__Json__Kitchen *k = kitchen(
        "{\"rString\": [\"\\ud83d\\ude00\", \"\\u00e9\\n\\\"\\\\\\/\", \"\xf0\x9f\x98\x80\","
        " \"\\u0000x\", \"\xe2\x80\xa8\"]}");
    assert_string_equal(k->r_string[0], "\xf0\x9f\x98\x80");
    assert_string_equal(k->r_string[1], "\xc3\xa9\n\"\\/");
    assert_string_equal(k->r_string[2], "\xf0\x9f\x98\x80");
    assert_int_equal(k->r_string[3][0], 0);
    pt__test__json__kitchen__free_unpacked(k, NULL);

    fails("{\"fString\": \"\\ud800\"}", "lone high surrogate");
    fails("{\"fString\": \"\\ud800\\u0041\"}", "lone high surrogate");
    fails("{\"fString\": \"\\udc00\\ud800\"}", "lone low surrogate");
    fails("{\"fString\": \"\\ud800x\"}", "lone high surrogate");
    fails("{\"fString\": \"\xff\"}", "fString: invalid UTF-8 in string");
    fails("{\"fString\": \"\xc0\xaf\"}", "invalid UTF-8");         /* overlong */
    fails("{\"fString\": \"\xed\xa0\x80\"}", "invalid UTF-8");     /* encoded surrogate */
    fails("{\"fString\": \"\xf4\x90\x80\x80\"}", "invalid UTF-8"); /* > U+10FFFF */
    fails("{\"fString\": \"\xe2\x82\"}", "invalid UTF-8");         /* truncated */
    fails("{\"f\xffString\": 1}", "invalid UTF-8");
}

static void test_json_decode__depth_and_size_limits(void **st)
{
    (void)st;
    /* Nested ListValues: each [ is one level, plus the message and field. */
    char buf[4096];
    for (int depth = 60; depth <= 66; depth++) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "{\"list\": ");
        for (int i = 0; i < depth; i++)
            buf[n++] = '[';
        for (int i = 0; i < depth; i++)
            buf[n++] = ']';
        buf[n++] = '}';
        buf[n] = 0;
        struct pt_json_out out = {0};
        struct pt_json_error err;
        int rc = dec_opts(KITCHEN, buf, NULL, &out, &err);
        assert_int_equal(rc, depth + 1 <= 64 ? 0 : PT_ERR_LIMIT);
        if (rc)
            assert_non_null(strstr(err.message, "nesting deeper than 64 levels"));
        pt_json_out_fini(&out);
    }
    struct pt_json_options o = {.max_depth = 3};
    fails_opts(KITCHEN, "{\"nested\": {\"child\": {\"child\": {}}}}", &o, PT_ERR_LIMIT,
               "nested.child.child: nesting deeper than 3 levels");
    /* Even ignored content is bounded. */
    struct pt_json_options ign = {.ignore_unknown = true};
    char *deep = malloc(200001);
    size_t n = (size_t)sprintf(deep, "{\"zz\":");
    for (int i = 0; i < 100000; i++)
        deep[n++] = '[';
    deep[n] = 0;
    fails_opts(KITCHEN, deep, &ign, PT_ERR_LIMIT, "zz");
    free(deep);
    struct pt_json_options small = {.max_output = 8};
    fails_opts(KITCHEN, "{\"fString\": \"0123456789\"}", &small, PT_ERR_LIMIT,
               "output larger than 8 bytes");
}

static void test_json_decode__huge_numbers_are_bounded(void **st)
{
    (void)st;
    char *big = malloc(100100);
    size_t n = (size_t)sprintf(big, "{\"fInt64\": ");
    memset(big + n, '9', 100000);
    n += 100000;
    strcpy(big + n, "}");
    fails(big, "out of range");
    n = (size_t)sprintf(big, "{\"fDouble\": 0.");
    memset(big + n, '1', 100000);
    strcpy(big + n + 100000, "}");
    Pt__Test__Json__Kitchen *k = kitchen(big);
    assert_true(fabs(k->f_double - 0.1111111111111111) < 1e-15);
    pt__test__json__kitchen__free_unpacked(k, NULL);
    free(big);
    fails("{\"fInt64\": 1e999999999999999999999}", "out of range");
    k = kitchen("{\"fInt64\": 0e99999, \"fInt32\": 10000000000e-10, \"fUint64\": 0.000e5}");
    assert_true(k->f_int64 == 0 && k->f_int32 == 1 && k->f_uint64 == 0);
    pt__test__json__kitchen__free_unpacked(k, NULL);
}

static void test_json_decode__comparator_sees_differences(void **st)
{
    (void)st;
    /* A check of the checker used by the golden test. */
    struct pt_json_out a = {0}, b = {0};
    struct pt_json_error err;
    assert_int_equal(
        dec_opts(KITCHEN, "{\"mInt32\": {\"1\": 2, \"3\": 4}, \"fInt32\": 1}", NULL, &a, &err), 0);
    assert_int_equal(
        dec_opts(KITCHEN, "{\"fInt32\": 1, \"mInt32\": {\"3\": 4, \"1\": 2}}", NULL, &b, &err), 0);
    assert_true(tu_wire_equal(KITCHEN, a.data, a.len, b.data, b.len));
    b.len = 0;
    assert_int_equal(
        dec_opts(KITCHEN, "{\"fInt32\": 1, \"mInt32\": {\"3\": 4, \"1\": 3}}", NULL, &b, &err), 0);
    assert_false(tu_wire_equal(KITCHEN, a.data, a.len, b.data, b.len));
    pt_json_out_fini(&a);
    pt_json_out_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_decode__integers_as_numbers_or_strings),
        cmocka_unit_test(test_json_decode__floats_and_special_values),
        cmocka_unit_test(test_json_decode__bytes_base64_variants),
        cmocka_unit_test(test_json_decode__enums_by_name_or_number),
        cmocka_unit_test(test_json_decode__json_names_and_proto_names),
        cmocka_unit_test(test_json_decode__unknown_fields_error_or_ignored),
        cmocka_unit_test(test_json_decode__duplicate_keys_rejected),
        cmocka_unit_test(test_json_decode__oneof_and_presence),
        cmocka_unit_test(test_json_decode__defaults_and_nulls_write_nothing),
        cmocka_unit_test(test_json_decode__maps_with_typed_keys),
        cmocka_unit_test(test_json_decode__error_paths_name_the_field),
        cmocka_unit_test(test_json_decode__well_known_types),
        cmocka_unit_test(test_json_decode__top_level_well_known_types),
        cmocka_unit_test(test_json_decode__malformed_json),
        cmocka_unit_test(test_json_decode__strings_unicode_rules),
        cmocka_unit_test(test_json_decode__depth_and_size_limits),
        cmocka_unit_test(test_json_decode__huge_numbers_are_bounded),
        cmocka_unit_test(test_json_decode__comparator_sees_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
