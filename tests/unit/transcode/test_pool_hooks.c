/* The JSON codec driven entirely by a run-time descriptor pool: json_name
 * from the pool (a custom json_name too), maps from the map_entry option,
 * Any resolved through the pool's registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transcode/descpool.h"
#include "transcode/json.h"
#include "transcode/pool_hooks.h"

static struct pt_descpool *pool;

static int setup(void **state)
{
    (void)state;
    FILE *f = fopen(PT_TC_DESC, "rb");
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

/* JSON -> wire -> JSON with the pool's hooks; returns the re-encoded JSON. */
static char *round_trip(const char *type, const char *json, const struct pt_json_options *o)
{
    const ProtobufCMessageDescriptor *d = pt_descpool_find_message(pool, pt_str_from_cstr(type));
    assert_non_null(d);
    struct pt_json_hooks h;
    pt_tc_pool_hooks(pool, &h);
    struct pt_json_out wire = {0}, text = {0};
    struct pt_json_error e;
    if (pt_json_decode(d, pt_str_from_cstr(json), &h, o, &wire, &e) != 0)
        fail_msg("decode %s: %s", json, e.message);
    if (pt_json_encode(d, (const uint8_t *)wire.data, wire.len, &h, o, &text, &e) != 0)
        fail_msg("encode: %s", e.message);
    pt_json_out_fini(&wire);
    char *s = strndup(text.data ? text.data : "", text.len);
    pt_json_out_fini(&text);
    return s;
}

static void test_pool_hooks__custom_json_name_both_ways(void **state)
{
    (void)state;
    char *s = round_trip("pt.test.kitchen.Outer", "{\"customJson\":\"a\",\"snake_case_name_2x\":3}",
                         NULL);
    assert_string_equal(s, "{\"customJson\":\"a\",\"snakeCaseName2x\":3}");
    free(s);
    /* The proto name is accepted on input too. */
    s = round_trip("pt.test.kitchen.Outer", "{\"json_named\":\"b\"}", NULL);
    assert_string_equal(s, "{\"customJson\":\"b\"}");
    free(s);
}

static void test_pool_hooks__maps_from_the_pool(void **state)
{
    (void)state;
    char *s = round_trip(
        "pt.test.kitchen.Maps",
        "{\"strMsg\":{\"k\":{}},\"boolStr\":{\"true\":\"t\"},\"longStr\":{\"-5\":\"x\"}}", NULL);
    assert_string_equal(
        s, "{\"strMsg\":{\"k\":{}},\"longStr\":{\"-5\":\"x\"},\"boolStr\":{\"true\":\"t\"}}");
    free(s);
}

static void test_pool_hooks__any_resolved_by_the_pool(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d =
        pt_descpool_find_message(pool, PT_STR("google.protobuf.Any"));
    assert_non_null(d);
    char *s = round_trip(
        "google.protobuf.Any",
        "{\"@type\":\"type.googleapis.com/pt.test.kitchen.Outer\",\"customJson\":\"z\"}", NULL);
    assert_string_equal(
        s, "{\"@type\":\"type.googleapis.com/pt.test.kitchen.Outer\",\"customJson\":\"z\"}");
    free(s);
    /* A type the pool does not know is an error, not a guess. */
    struct pt_json_hooks h;
    pt_tc_pool_hooks(pool, &h);
    struct pt_json_out wire = {0};
    struct pt_json_error e;
    assert_int_not_equal(
        pt_json_decode(d, PT_STR("{\"@type\":\"type.googleapis.com/no.Such\",\"a\":1}"), &h, NULL,
                       &wire, &e),
        0);
    assert_non_null(strstr(e.message, "no.Such"));
    pt_json_out_fini(&wire);
}

/* Enum values at the int32 edges print by name (libprotobuf-c's own
 * lookup by number misses INT32_MAX; found by ctl's json_conformance.py). */
static void test_pool_hooks__enum_values_at_int32_edges(void **state)
{
    (void)state;
    char *s = round_trip("pt.test.kitchen.Scalars", "{\"fMood\":\"MOOD_HUGE\"}", NULL);
    assert_string_equal(s, "{\"fMood\":\"MOOD_HUGE\"}");
    free(s);
    s = round_trip("pt.test.kitchen.Scalars", "{\"fMood\":-2147483648}", NULL);
    assert_string_equal(s, "{\"fMood\":\"MOOD_TINY\"}");
    free(s);
    s = round_trip("pt.test.kitchen.Repeated", "{\"rMood\":[2147483647,6,2147483646,1]}", NULL);
    assert_string_equal(s, "{\"rMood\":[\"MOOD_HUGE\",\"MOOD_SIX\",2147483646,\"MOOD_HAPPY\"]}");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_hooks__custom_json_name_both_ways),
        cmocka_unit_test(test_pool_hooks__maps_from_the_pool),
        cmocka_unit_test(test_pool_hooks__any_resolved_by_the_pool),
        cmocka_unit_test(test_pool_hooks__enum_values_at_int32_edges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
