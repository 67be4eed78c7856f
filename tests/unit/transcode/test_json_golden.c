/*
 * The JSON codec against fixtures written by protobuf's json_format
 * (json_golden/gen.py): wire -> JSON must equal json_format's JSON as data
 * (plain, emit_defaults, original names); JSON -> wire must hold the same
 * message as json_format's serialization (compared through protobuf-c, so
 * field order does not matter), for its own output and for hand-written
 * inputs in other accepted spellings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "json_testutil.h"

static char *fixture(const char *name, const char *suffix, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s%s", PT_JSON_GOLDEN_DIR, name, suffix);
    char *s = tu_read_file(path, len);
    if (!s)
        fail_msg("missing fixture %s", path);
    return s;
}

static void check_encode(const ProtobufCMessageDescriptor *desc, const char *name,
                         const char *suffix, const struct pt_json_options *opts)
{
    size_t blen, jlen;
    char *bin = fixture(name, ".bin", &blen), *want = fixture(name, suffix, &jlen);
    struct pt_json_out out = {0};
    struct pt_json_error err;
    int rc =
        pt_json_encode(desc, (const uint8_t *)bin, blen, pt_test_json_hooks(), opts, &out, &err);
    if (rc != 0)
        fail_msg("%s%s: encode failed: %s", name, suffix, err.message);
    if (!tu_json_text_equal(out.data, out.len, want, jlen))
        fail_msg("%s%s: JSON differs from json_format's", name, suffix);
    pt_json_out_fini(&out);
    free(bin);
    free(want);
}

static void check_decode(const ProtobufCMessageDescriptor *desc, const char *name,
                         const char *suffix)
{
    size_t blen, jlen;
    char *bin = fixture(name, ".bin", &blen), *json = fixture(name, suffix, &jlen);
    struct pt_json_out out = {0};
    struct pt_json_error err;
    int rc =
        pt_json_decode(desc, (struct pt_str){json, jlen}, pt_test_json_hooks(), NULL, &out, &err);
    if (rc != 0)
        fail_msg("%s%s: decode failed: %s", name, suffix, err.message);
    if (!tu_wire_equal(desc, out.data, out.len, bin, blen))
        fail_msg("%s%s: wire bytes hold another message than json_format's", name, suffix);
    pt_json_out_fini(&out);
    free(bin);
    free(json);
}

static void test_json_golden__all_fixtures_match_json_format(void **st)
{
    (void)st;
    size_t mlen;
    char *manifest = fixture("MANIFEST", "", &mlen);
    int cases = 0;
    char *save = NULL;
    manifest[mlen - 1] = '\0';
    for (char *line = strtok_r(manifest, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char type[128], name[128], flags[8];
        assert_int_equal(sscanf(line, "%127s %127s %7s", type, name, flags), 3);
        const ProtobufCMessageDescriptor *desc = pt_test_json_find(pt_str_from_cstr(type));
        assert_non_null(desc);
        if (flags[0] == 'i') { /* an input spelling: JSON -> wire only */
            check_decode(desc, name, ".json");
            cases++;
            continue;
        }
        struct pt_json_options names = {.original_names = true}, defs = {.emit_defaults = true};
        check_encode(desc, name, ".json", NULL);
        check_encode(desc, name, ".names.json", &names);
        if (flags[0] == 'd')
            check_encode(desc, name, ".defaults.json", &defs);
        check_decode(desc, name, ".json");
        check_decode(desc, name, ".names.json");
        cases++;
    }
    assert_true(cases >= 9);
    free(manifest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_golden__all_fixtures_match_json_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
