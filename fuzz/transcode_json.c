/*
 * Fuzz the proto3 JSON codec (src/transcode/json*.c), JSON -> protobuf
 * first of all, over the test schema (tests/protos/transcode_json).
 *
 * Input: byte 0 picks options and mode (bit 0 ignore_unknown, bit 1
 * emit_defaults, bit 2 original_names, bit 3: the rest is protobuf bytes to
 * print instead of JSON to parse; bits 4-5: the message type: Kitchen,
 * Order, google.protobuf.Value, google.protobuf.Any), the rest is the input.
 * Checked: nothing crashes or leaks; a failed call appends nothing and says
 * why; accepted JSON gives bytes libprotobuf-c unpacks; and printing is a
 * fixed point: JSON printed from accepted input parses again, and prints
 * the same bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "json_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* print(parse(json1)) == json1 for JSON this codec printed. */
static void check_fixed_point(const ProtobufCMessageDescriptor *desc,
                              const struct pt_json_options *opts, const struct pt_json_out *json1)
{
    struct pt_json_out wire = {0}, json2 = {0};
    struct pt_json_error err;
    check(pt_json_decode(desc, (struct pt_str){json1->data, json1->len}, pt_test_json_hooks(), opts,
                         &wire, &err) == 0);
    check(pt_json_encode(desc, (const uint8_t *)wire.data, wire.len, pt_test_json_hooks(), opts,
                         &json2, &err) == 0);
    check(json2.len == json1->len && memcmp(json2.data, json1->data, json1->len) == 0);
    pt_json_out_fini(&wire);
    pt_json_out_fini(&json2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const ProtobufCMessageDescriptor *const types[] = {
        &pt__test__json__kitchen__descriptor,
        &pt__test__json__order__descriptor,
        &google__protobuf__value__descriptor,
        &google__protobuf__any__descriptor,
    };
    const ProtobufCMessageDescriptor *desc = types[(data[0] >> 4) & 3];
    struct pt_json_options opts = {
        .ignore_unknown = data[0] & 1,
        .emit_defaults = data[0] & 2,
        .original_names = data[0] & 4,
    };
    bool wire_in = data[0] & 8;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    struct pt_json_out out = {0}, json = {0};
    struct pt_json_error err;

    if (!wire_in) {
        int rc = pt_json_decode(desc, (struct pt_str){(const char *)in, n}, pt_test_json_hooks(),
                                &opts, &out, &err);
        if (rc != 0) {
            check(out.len == 0 && err.message[0] != '\0');
            pt_json_out_fini(&out);
            return 0;
        }
        ProtobufCMessage *m =
            protobuf_c_message_unpack(desc, NULL, out.len, (const uint8_t *)out.data);
        check(m != NULL);
        protobuf_c_message_free_unpacked(m, NULL);
        check(pt_json_encode(desc, (const uint8_t *)out.data, out.len, pt_test_json_hooks(), &opts,
                             &json, &err) == 0);
        check_fixed_point(desc, &opts, &json);
    } else {
        int rc = pt_json_encode(desc, in, n, pt_test_json_hooks(), &opts, &json, &err);
        if (rc != 0) {
            check(json.len == 0 && err.message[0] != '\0');
            pt_json_out_fini(&json);
            return 0;
        }
        check_fixed_point(desc, &opts, &json);
    }
    pt_json_out_fini(&out);
    pt_json_out_fini(&json);
    return 0;
}
