/*
 * The JSON codec's test schema: protoc-c descriptors of
 * the protos in tests/protos/transcode_json and of the well-known types, with the
 * schema hooks a descriptor pool would provide (a type registry for Any, and
 * the one explicit json_name of kitchen.proto). Shared by the unit tests,
 * tc_json, the fuzz harness and bench_json_codec.
 */
#ifndef PT_TEST_JSON_FIXTURE_H
#define PT_TEST_JSON_FIXTURE_H

#include "kitchen.pb-c.h"
#include "presence.pb-c.h"
#include "transcode/json.h"

/* Message descriptor by full name ("pt.test.json.Kitchen",
 * "google.protobuf.Duration"), or NULL. */
const ProtobufCMessageDescriptor *pt_test_json_find(struct pt_str full_name);
/* Hooks over the generated descriptors: find_message = pt_test_json_find,
 * json_name for Kitchen.custom_json = "renamed"; is_map by default. */
const struct pt_json_hooks *pt_test_json_hooks(void);

#endif
