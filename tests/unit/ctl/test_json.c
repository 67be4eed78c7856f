/*
 * porticoctl json encode|decode without processes: argument rules and
 * pt_ctl_json_run over the descpool test protos' descriptor set
 * (tests/protos/transcode, compiled by protoc at build time).
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
#include "ctl/json.h"

static uint8_t set[1 << 20];
static size_t set_len;

static int setup(void **state)
{
    (void)state;
    FILE *f = fopen(PT_TC_DESC, "rb");
    if (!f)
        return -1;
    set_len = fread(set, 1, sizeof(set), f);
    fclose(f);
    return set_len > 0 && set_len < sizeof(set) ? 0 : -1;
}

static int parse(struct pt_ctl_args *a, const char *line, char *err)
{
    char *buf = strdup(line), *argv[32];
    int argc = 0;
    argv[argc++] = "porticoctl";
    for (char *t = strtok(buf, " "); t && argc < 32; t = strtok(NULL, " "))
        argv[argc++] = t;
    /* The tests only look at flags, numbers and static strings. */
    int rc = pt_ctl_args_parse(a, argc, argv, NULL, err, 256);
    free(buf);
    return rc;
}

static void test_json__parse_ok(void **state)
{
    (void)state;
    struct pt_ctl_args a;
    char err[256];
    assert_int_equal(
        parse(&a, "json encode --descriptor-set x.desc --type a.B --ignore-unknown", err), 0);
    assert_int_equal(a.cmd, PT_CTL_CMD_JSON);
    assert_int_equal(a.json_op, PT_CTL_JSON_ENCODE);
    assert_true(a.ignore_unknown);
    assert_int_equal(a.max_input, PT_CTL_JSON_DEFAULT_MAX_INPUT);
    assert_int_equal(parse(&a,
                           "json decode --descriptor-set=x.desc --type=a.B --emit-defaults "
                           "--original-names --max-input 100",
                           err),
                     0);
    assert_int_equal(a.json_op, PT_CTL_JSON_DECODE);
    assert_true(a.emit_defaults && a.original_names && !a.ignore_unknown);
    assert_int_equal(a.max_input, 100);
    assert_int_equal(parse(&a, "descriptors orders --refresh", err), 0);
    assert_int_equal(a.cmd, PT_CTL_CMD_DESCRIPTORS);
    assert_true(a.refresh);
    assert_int_equal(parse(&a, "json --help", err), 0);
    assert_non_null(strstr(pt_ctl_usage(a.cmd), "--descriptor-set"));
}

static void test_json__parse_errors(void **state)
{
    (void)state;
    struct pt_ctl_args a;
    char err[256];
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"json", "encode or decode"},
        {"json frob --descriptor-set x --type a.B", "encode or decode"},
        {"json encode --type a.B", "--descriptor-set"},
        {"json encode --descriptor-set x", "--type"},
        {"json encode --descriptor-set x --type a.B --emit-defaults", "options of json decode"},
        {"json decode --descriptor-set x --type a.B --ignore-unknown", "option of json encode"},
        {"json decode --descriptor-set x --type a.B --max-input 0", "--max-input"},
        {"json decode --descriptor-set x --type a.B --max-input -5", "--max-input"},
        {"json decode --descriptor-set x --type a.B --max-input 99999999999", "--max-input"},
        {"json decode --descriptor-set x --type a.B extra", "unexpected argument"},
        {"json decode --descriptor-set x --type a.B -f y", "-f is not"},
        {"get route r --type a.B", "options of json"},
        {"descriptors", "missing the service"},
        {"list routes --refresh", "--refresh is an option of descriptors"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        if (parse(&a, cases[i].line, err) != -1 || !strstr(err, cases[i].want))
            fail_msg("\"%s\": got \"%s\", want \"%s\"", cases[i].line, err, cases[i].want);
    }
}

static int run(enum pt_ctl_json_op op, const char *type, const char *in, size_t in_len,
               struct pt_json_out *out, char *err, bool ignore, bool defaults, bool orig)
{
    struct pt_ctl_args a = {.cmd = PT_CTL_CMD_JSON,
                            .json_op = op,
                            .type_name = type,
                            .ignore_unknown = ignore,
                            .emit_defaults = defaults,
                            .original_names = orig};
    return pt_ctl_json_run(&a, set, set_len, (const uint8_t *)in, in_len, out, err, 256);
}

static void test_json__round_trip(void **state)
{
    (void)state;
    const char *json = "{\"scalars\":{\"fInt32\":-5,\"fString\":\"h\",\"fMood\":\"MOOD_SAD\"},"
                       "\"maps\":{\"intEnum\":{\"7\":\"MOOD_HAPPY\"}},\"outer\":{\"customJson\":"
                       "\"x\"}}";
    struct pt_json_out wire = {0}, text = {0};
    char err[256];
    assert_int_equal(run(PT_CTL_JSON_ENCODE, "pt.test.kitchen.KitchenSink", json, strlen(json),
                         &wire, err, false, false, false),
                     0);
    assert_true(wire.len > 0);
    assert_int_equal(run(PT_CTL_JSON_DECODE, ".pt.test.kitchen.KitchenSink", wire.data, wire.len,
                         &text, err, false, false, false),
                     0);
    /* decode ends its one line with a newline */
    assert_true(text.len > 0 && text.data[text.len - 1] == '\n');
    assert_int_equal(text.len - 1, strlen(json));
    assert_memory_equal(text.data, json, strlen(json));
    pt_json_out_fini(&text);
    assert_int_equal(run(PT_CTL_JSON_DECODE, "pt.test.kitchen.KitchenSink", wire.data, wire.len,
                         &text, err, false, false, true),
                     0);
    assert_non_null(strstr(text.data, "\"f_int32\":-5"));
    assert_non_null(strstr(text.data, "\"json_named\":\"x\""));
    pt_json_out_fini(&text);
    /* an empty message: {} plain, every implicit-presence field with defaults */
    assert_int_equal(
        run(PT_CTL_JSON_DECODE, "pt.test.kitchen.Scalars", "", 0, &text, err, false, false, false),
        0);
    assert_int_equal(text.len, 3);
    assert_memory_equal(text.data, "{}\n", 3);
    pt_json_out_fini(&text);
    assert_int_equal(
        run(PT_CTL_JSON_DECODE, "pt.test.kitchen.Scalars", "", 0, &text, err, false, true, false),
        0);
    assert_non_null(strstr(text.data, "\"fUint64\":\"0\""));
    assert_non_null(strstr(text.data, "\"fMood\":\"MOOD_UNSPECIFIED\""));
    pt_json_out_fini(&text);
    pt_json_out_fini(&wire);
}

static void test_json__errors(void **state)
{
    (void)state;
    struct pt_json_out out = {0};
    char err[256];
    const char *bad = "{\"scalars\":{\"fInt32\":\"x\"}}";
    assert_int_equal(run(PT_CTL_JSON_ENCODE, "pt.test.kitchen.KitchenSink", bad, strlen(bad), &out,
                         err, false, false, false),
                     -1);
    assert_non_null(strstr(err, "scalars.fInt32"));
    assert_int_equal(out.len, 0);
    const char *unknown = "{\"nope\":1,\"fInt32\":3}";
    assert_int_equal(run(PT_CTL_JSON_ENCODE, "pt.test.kitchen.Scalars", unknown, strlen(unknown),
                         &out, err, false, false, false),
                     -1);
    assert_non_null(strstr(err, "nope"));
    assert_int_equal(run(PT_CTL_JSON_ENCODE, "pt.test.kitchen.Scalars", unknown, strlen(unknown),
                         &out, err, true, false, false),
                     0);
    assert_int_equal(out.len, 2); /* field 1 = 3 */
    pt_json_out_fini(&out);
    const char *notjson = "{\"fInt32\":";
    assert_int_equal(run(PT_CTL_JSON_ENCODE, "pt.test.kitchen.Scalars", notjson, strlen(notjson),
                         &out, err, false, false, false),
                     -1);
    /* truncated wire bytes: a length-delimited field claiming 9 bytes */
    assert_int_equal(run(PT_CTL_JSON_DECODE, "pt.test.kitchen.Scalars",
                         "\x72\x09"
                         "ab",
                         4, &out, err, false, false, false),
                     -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(
        run(PT_CTL_JSON_DECODE, "pt.test.kitchen.Nope", "", 0, &out, err, false, false, false), -1);
    assert_non_null(strstr(err, "\"pt.test.kitchen.Nope\" not found"));
    /* a service name is not a message type */
    assert_int_equal(
        run(PT_CTL_JSON_DECODE, "pt.test.kitchen.Kitchen", "", 0, &out, err, false, false, false),
        -1);
    assert_int_equal(out.len, 0);
}

static void test_json__bad_descriptor_set(void **state)
{
    (void)state;
    struct pt_ctl_args a = {
        .cmd = PT_CTL_CMD_JSON, .json_op = PT_CTL_JSON_DECODE, .type_name = "a.B"};
    struct pt_json_out out = {0};
    char err[256];
    static const uint8_t garbage[] = {0x0a, 0x50, 0x01, 0x02};
    assert_int_equal(pt_ctl_json_run(&a, garbage, sizeof(garbage), NULL, 0, &out, err, 256), -1);
    assert_non_null(strstr(err, "descriptor set: "));
    /* half of a real set: cut mid-file */
    assert_int_equal(pt_ctl_json_run(&a, set, set_len / 2, NULL, 0, &out, err, 256), -1);
    assert_non_null(strstr(err, "descriptor set: "));
    /* an empty set builds an empty pool: the type is simply not there */
    assert_int_equal(pt_ctl_json_run(&a, NULL, 0, NULL, 0, &out, err, 256), -1);
    assert_non_null(strstr(err, "not found"));
    assert_int_equal(out.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json__parse_ok),           cmocka_unit_test(test_json__parse_errors),
        cmocka_unit_test(test_json__round_trip),         cmocka_unit_test(test_json__errors),
        cmocka_unit_test(test_json__bad_descriptor_set),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
