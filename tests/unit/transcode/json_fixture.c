/*
 * See json_fixture.h.
 */
#include <string.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "json_fixture.h"

static const ProtobufCMessageDescriptor *const known[] = {
    &pt__test__json__kitchen__descriptor,        &pt__test__json__nested__descriptor,
    &pt__test__json__presence__descriptor,       &pt__test__json__item__descriptor,
    &pt__test__json__order__descriptor,          &google__protobuf__any__descriptor,
    &google__protobuf__duration__descriptor,     &google__protobuf__empty__descriptor,
    &google__protobuf__field_mask__descriptor,   &google__protobuf__struct__descriptor,
    &google__protobuf__value__descriptor,        &google__protobuf__list_value__descriptor,
    &google__protobuf__timestamp__descriptor,    &google__protobuf__double_value__descriptor,
    &google__protobuf__float_value__descriptor,  &google__protobuf__int64_value__descriptor,
    &google__protobuf__uint64_value__descriptor, &google__protobuf__int32_value__descriptor,
    &google__protobuf__uint32_value__descriptor, &google__protobuf__bool_value__descriptor,
    &google__protobuf__string_value__descriptor, &google__protobuf__bytes_value__descriptor,
};

const ProtobufCMessageDescriptor *pt_test_json_find(struct pt_str name)
{
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i]->name) == name.len && memcmp(known[i]->name, name.ptr, name.len) == 0)
            return known[i];
    return NULL;
}

static const ProtobufCMessageDescriptor *find_hook(void *ctx, struct pt_str name)
{
    (void)ctx;
    return pt_test_json_find(name);
}

static struct pt_str name_hook(void *ctx, const ProtobufCMessageDescriptor *m,
                               const ProtobufCFieldDescriptor *f)
{
    (void)ctx;
    if (m == &pt__test__json__kitchen__descriptor && f->id == 114)
        return PT_STR("renamed");
    return PT_STR_NULL;
}

const struct pt_json_hooks *pt_test_json_hooks(void)
{
    static const struct pt_json_hooks hooks = {
        .json_name = name_hook,
        .find_message = find_hook,
    };
    return &hooks;
}
