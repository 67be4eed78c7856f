#include "transcode/pool_hooks.h"

static struct pt_str pool_json_name(void *ctx, const ProtobufCMessageDescriptor *m,
                                    const ProtobufCFieldDescriptor *f)
{
    (void)ctx;
    const struct pt_descpool_field *fi = pt_descpool_field_info(m, f);
    if (!fi || !fi->json_name)
        return PT_STR_NULL; /* not a pool descriptor: the codec's default */
    return pt_str_from_cstr(fi->json_name);
}

static bool pool_is_map(void *ctx, const ProtobufCMessageDescriptor *m,
                        const ProtobufCFieldDescriptor *f)
{
    (void)ctx;
    const struct pt_descpool_field *fi = pt_descpool_field_info(m, f);
    return fi ? fi->is_map : pt_json_default_is_map(m, f);
}

static const ProtobufCMessageDescriptor *pool_find_message(void *ctx, struct pt_str full_name)
{
    return pt_descpool_find_message(ctx, full_name);
}

void pt_tc_pool_hooks(const struct pt_descpool *pool, struct pt_json_hooks *out)
{
    out->json_name = pool_json_name;
    out->is_map = pool_is_map;
    out->find_message = pool_find_message;
    out->ctx = (void *)pool; /* the hooks only read it */
}
