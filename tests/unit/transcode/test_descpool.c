/* transcode/descpool.c: run-time descriptors against protoc-c's generated
 * code for the same protos (tests/protos/transcode), which is the reference
 * for every descriptor, layout, default and byte on the wire. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.pb-c.h"
#include "google/api/http.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "kitchen.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "legacy.pb-c.h"
#include "portico/admin/v1/admin.pb-c.h"
#include "portico/config/v1/config.pb-c.h"
#include "portico/errors.h"
#include "pbgen.h"
#include "transcode/descpool.h"

static uint8_t *g_set;
static size_t g_set_len;
static struct pt_descpool *g_pool;

static int load_set(void **state)
{
    FILE *f = fopen(PT_TC_DESC, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    g_set = malloc((size_t)n);
    g_set_len = fread(g_set, 1, (size_t)n, f);
    fclose(f);
    char err[256] = "";
    g_pool = pt_descpool_new_from_set(g_set, g_set_len, NULL, err, sizeof(err));
    if (!g_pool) {
        fprintf(stderr, "pool: %s\n", err);
        return -1;
    }
    return 0;
}

static int free_set(void **state)
{
    pt_descpool_unref(g_pool);
    free(g_set);
    return 0;
}

/* The pool rt() and the compare_* helpers look in (g_pool unless a test
 * switches it). */
static struct pt_descpool *g_cur;

static const ProtobufCMessageDescriptor *rt(const char *name)
{
    const ProtobufCMessageDescriptor *d =
        pt_descpool_find_message(g_cur ? g_cur : g_pool, pt_str_from_cstr(name));
    if (!d)
        fail_msg("no runtime descriptor for %s", name);
    return d;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    assert_true(protobuf_c_message_check(m));
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_int_equal(protobuf_c_message_pack(m, buf), *len);
    return buf;
}

/*
 * Both directions for one message `g` built on descriptor `gd` (generated,
 * or a runtime one) against `od` (the other side):
 *   g --pack--> A --unpack(od)--> R (== g) --pack--> B (== A)
 *   B --unpack(gd)--> G2 (== g)
 */
static void roundtrip(const ProtobufCMessage *g, const ProtobufCMessageDescriptor *od)
{
    size_t la, lb;
    uint8_t *a = pack(g, &la);
    ProtobufCMessage *r = protobuf_c_message_unpack(od, NULL, la, a);
    assert_non_null(r);
    assert_true(pt_pbgen_equal(g, r));
    uint8_t *b = pack(r, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    ProtobufCMessage *g2 = protobuf_c_message_unpack(g->descriptor, NULL, lb, b);
    assert_non_null(g2);
    assert_true(pt_pbgen_equal(g, g2));
    protobuf_c_message_free_unpacked(g2, NULL);
    protobuf_c_message_free_unpacked(r, NULL);
    free(a);
    free(b);
}

/* ---- descriptors equal protoc-c's ---------------------------------------- */

static bool default_equal(const ProtobufCFieldDescriptor *g, const ProtobufCFieldDescriptor *r)
{
    if (!g->default_value || !r->default_value)
        return g->default_value == r->default_value;
    switch (g->type) {
    case PROTOBUF_C_TYPE_STRING:
        return strcmp(g->default_value, r->default_value) == 0 &&
               ((g->default_value == (const void *)protobuf_c_empty_string) ==
                (r->default_value == (const void *)protobuf_c_empty_string));
    default:
        return pt_pbgen_value_equal(g, g->default_value, r->default_value);
    }
}

static void compare_enum(const ProtobufCEnumDescriptor *g, const ProtobufCEnumDescriptor *r)
{
    assert_non_null(r);
    assert_int_equal(r->magic, PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC);
    assert_string_equal(g->name, r->name);
    assert_string_equal(g->short_name, r->short_name);
    assert_string_equal(g->c_name, r->c_name);
    assert_string_equal(g->package_name, r->package_name);
    assert_int_equal(g->n_values, r->n_values);
    for (unsigned i = 0; i < g->n_values; i++) {
        assert_string_equal(g->values[i].name, r->values[i].name);
        assert_string_equal(g->values[i].c_name, r->values[i].c_name);
        assert_int_equal(g->values[i].value, r->values[i].value);
    }
    assert_int_equal(g->n_value_names, r->n_value_names);
    for (unsigned i = 0; i < g->n_value_names; i++) {
        assert_string_equal(g->values_by_name[i].name, r->values_by_name[i].name);
        assert_int_equal(g->values_by_name[i].index, r->values_by_name[i].index);
    }
    assert_int_equal(g->n_value_ranges, r->n_value_ranges);
    for (unsigned i = 0; i <= g->n_value_ranges; i++) {
        assert_int_equal(g->value_ranges[i].start_value, r->value_ranges[i].start_value);
        assert_int_equal(g->value_ranges[i].orig_index, r->value_ranges[i].orig_index);
    }
}

struct seen {
    const void *p[512];
    size_t n;
};

static bool visit(struct seen *s, const void *p)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->p[i] == p)
            return false;
    }
    assert_true(s->n < 512);
    s->p[s->n++] = p;
    return true;
}

static size_t compared_fields, compared_messages, compared_enums;

static void compare_message(struct seen *s, const ProtobufCMessageDescriptor *g)
{
    if (!visit(s, g))
        return;
    const ProtobufCMessageDescriptor *r = rt(g->name);
    compared_messages++;
    assert_int_equal(r->magic, PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    assert_string_equal(g->name, r->name);
    assert_string_equal(g->short_name, r->short_name);
    assert_string_equal(g->c_name, r->c_name);
    assert_string_equal(g->package_name, r->package_name);
    assert_null(r->message_init);
    if (g->sizeof_message != r->sizeof_message)
        fail_msg("%s: sizeof %zu, generated %zu", g->name, r->sizeof_message, g->sizeof_message);
    assert_int_equal(g->n_fields, r->n_fields);
    for (unsigned i = 0; i < g->n_fields; i++) {
        const ProtobufCFieldDescriptor *gf = &g->fields[i], *rf = &r->fields[i];
        compared_fields++;
        assert_string_equal(gf->name, rf->name);
        assert_int_equal(gf->id, rf->id);
        if (gf->label != rf->label || gf->type != rf->type || gf->flags != rf->flags ||
            gf->offset != rf->offset || gf->quantifier_offset != rf->quantifier_offset)
            fail_msg("%s.%s: label %d/%d type %d/%d flags %u/%u offset %u/%u quantifier %u/%u",
                     g->name, gf->name, rf->label, gf->label, rf->type, gf->type, rf->flags,
                     gf->flags, rf->offset, gf->offset, rf->quantifier_offset,
                     gf->quantifier_offset);
        if (gf->type == PROTOBUF_C_TYPE_MESSAGE) {
            const ProtobufCMessageDescriptor *gs = gf->descriptor, *rs = rf->descriptor;
            assert_string_equal(gs->name, rs->name);
            assert_ptr_equal(rs, rt(gs->name)); /* the pool's own, by pointer */
        } else if (gf->type == PROTOBUF_C_TYPE_ENUM) {
            const ProtobufCEnumDescriptor *ge = gf->descriptor, *re = rf->descriptor;
            assert_ptr_equal(
                re, pt_descpool_find_enum(g_cur ? g_cur : g_pool, pt_str_from_cstr(ge->name)));
            if (visit(s, ge)) {
                compare_enum(ge, re);
                compared_enums++;
            }
        } else {
            assert_null(rf->descriptor);
        }
        /* Deliberate differences (descpool.h): no defaults on oneof members,
         * proto2 enums default to their first value. */
        if (gf->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            assert_null(rf->default_value);
        } else if (gf->type == PROTOBUF_C_TYPE_ENUM && !gf->default_value && rf->default_value) {
            const ProtobufCEnumDescriptor *re = rf->descriptor;
            assert_false(pt_descpool_message_info(r)->proto3);
            (void)re;
        } else if (!default_equal(gf, rf)) {
            fail_msg("%s.%s: default values differ", g->name, gf->name);
        }
    }
    for (unsigned i = 0; i < g->n_fields; i++)
        assert_int_equal(g->fields_sorted_by_name[i], r->fields_sorted_by_name[i]);
    assert_int_equal(g->n_field_ranges, r->n_field_ranges);
    if (g->n_field_ranges) {
        for (unsigned i = 0; i <= g->n_field_ranges; i++) {
            assert_int_equal(g->field_ranges[i].start_value, r->field_ranges[i].start_value);
            assert_int_equal(g->field_ranges[i].orig_index, r->field_ranges[i].orig_index);
        }
    }
    for (unsigned i = 0; i < g->n_fields; i++) {
        if (g->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
            compare_message(s, g->fields[i].descriptor);
    }
}

static void compare_service(const ProtobufCServiceDescriptor *g)
{
    const struct pt_descpool_service *ps =
        pt_descpool_find_service(g_cur ? g_cur : g_pool, pt_str_from_cstr(g->name));
    assert_non_null(ps);
    const ProtobufCServiceDescriptor *r = ps->desc;
    assert_int_equal(r->magic, PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC);
    assert_string_equal(g->name, r->name);
    assert_string_equal(g->short_name, r->short_name);
    assert_string_equal(g->c_name, r->c_name);
    assert_string_equal(g->package, r->package);
    assert_int_equal(g->n_methods, r->n_methods);
    for (unsigned i = 0; i < g->n_methods; i++) {
        assert_string_equal(g->methods[i].name, r->methods[i].name);
        assert_ptr_equal(r->methods[i].input, rt(g->methods[i].input->name));
        assert_ptr_equal(r->methods[i].output, rt(g->methods[i].output->name));
        assert_int_equal(g->method_indices_by_name[i], r->method_indices_by_name[i]);
    }
}

static void test_descpool__descriptors_match_protoc_c(void **state)
{
    const ProtobufCMessageDescriptor *roots[] = {
        &pt__test__kitchen__kitchen_sink__descriptor,
        &pt__test__kitchen__get_request__descriptor,
        &pt__test__legacy__defaults__descriptor,
        &pt__test__legacy__with_oneof__descriptor,
        &pt__test__legacy__optional_twin__descriptor,
        &google__protobuf__file_descriptor_set__descriptor,
        &google__api__http_rule__descriptor,
    };
    struct seen s = {.n = 0};
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
        compare_message(&s, roots[i]);
    compare_service(&pt__test__kitchen__kitchen__descriptor);
    compare_service(&pt__test__legacy__legacy__descriptor);
    /* the kitchen sink, its WKTs and all of descriptor.proto */
    assert_true(compared_messages >= 80);
    assert_true(compared_fields >= 390);
    assert_true(compared_enums >= 11);
}

static void random_roundtrips(const ProtobufCMessageDescriptor *gen,
                              const ProtobufCMessageDescriptor *run, int iterations, int depth);

extern const unsigned char pt_descriptor_set[];
extern const size_t pt_descriptor_set_len;

/* portico's own protos (config, admin, health, reflection: the set the
 * admin listener serves) against their generated code. */
static void test_descpool__portico_protos_match_protoc_c(void **state)
{
    char err[256] = "";
    struct pt_descpool *p =
        pt_descpool_new_from_set(pt_descriptor_set, pt_descriptor_set_len, NULL, err, sizeof(err));
    if (!p)
        fail_msg("%s", err);
    g_cur = p;
    const ProtobufCServiceDescriptor *svcs[] = {
        &portico__admin__v1__admin__descriptor, &grpc__health__v1__health__descriptor,
        &grpc__reflection__v1__server_reflection__descriptor};
    struct seen s = {.n = 0};
    size_t before = compared_messages;
    for (size_t i = 0; i < sizeof(svcs) / sizeof(svcs[0]); i++) {
        compare_service(svcs[i]);
        for (unsigned m = 0; m < svcs[i]->n_methods; m++) {
            compare_message(&s, svcs[i]->methods[m].input);
            compare_message(&s, svcs[i]->methods[m].output);
        }
    }
    compare_message(&s, &portico__config__v1__config__descriptor);
    assert_true(compared_messages - before >= 40);
    random_roundtrips(&portico__config__v1__config__descriptor, rt("portico.config.v1.Config"), 300,
                      4);
    g_cur = NULL;
    pt_descpool_unref(p);
}

/* ---- lookups and side tables --------------------------------------------- */

static void test_descpool__lookups_by_full_name(void **state)
{
    const ProtobufCMessageDescriptor *inner = rt("pt.test.kitchen.Outer.Middle.Inner");
    assert_ptr_equal(inner, rt(".pt.test.kitchen.Outer.Middle.Inner"));
    assert_string_equal(inner->short_name, "Inner");
    assert_string_equal(inner->package_name, "pt.test.kitchen");
    assert_null(pt_descpool_find_message(g_pool, PT_STR("pt.test.kitchen.Outer.Middle.Nope")));
    assert_null(pt_descpool_find_message(g_pool, PT_STR("pt.test.kitchen")));
    assert_null(pt_descpool_find_message(g_pool, PT_STR("")));
    assert_null(pt_descpool_find_message(g_pool, PT_STR(".")));
    /* a prefix of a name is not the name */
    assert_null(pt_descpool_find_message(g_pool, PT_STR("pt.test.kitchen.Outer.Midd")));
    /* the kinds do not mix */
    assert_null(pt_descpool_find_message(g_pool, PT_STR("pt.test.kitchen.Mood")));
    assert_null(pt_descpool_find_enum(g_pool, PT_STR("pt.test.kitchen.Scalars")));
    assert_non_null(
        pt_descpool_find_enum(g_pool, PT_STR("pt.test.kitchen.Outer.Middle.Inner.Level")));
    assert_non_null(pt_descpool_find_enum(g_pool, PT_STR("google.protobuf.NullValue")));

    const struct pt_descpool_service *svc =
        pt_descpool_find_service(g_pool, PT_STR("pt.test.kitchen.Kitchen"));
    assert_non_null(svc);
    assert_string_equal(svc->file, "kitchen.proto");
    assert_int_equal(svc->desc->n_methods, 5);
    const char *forms[] = {"pt.test.kitchen.Kitchen.Chat", "pt.test.kitchen.Kitchen/Chat",
                           "/pt.test.kitchen.Kitchen/Chat", ".pt.test.kitchen.Kitchen.Chat"};
    for (size_t i = 0; i < 4; i++) {
        const struct pt_descpool_method *m =
            pt_descpool_find_method(g_pool, pt_str_from_cstr(forms[i]));
        assert_non_null(m);
        assert_ptr_equal(m, &svc->methods[4]);
    }
    assert_null(pt_descpool_find_method(g_pool, PT_STR("pt.test.kitchen.Kitchen/Chat/x")));
    assert_null(pt_descpool_find_method(g_pool, PT_STR("pt.test.kitchen.Kitchen")));
    assert_null(pt_descpool_find_method(g_pool, PT_STR("pt.test.kitchen.Kitchen/Nope")));
    assert_null(pt_descpool_find_service(g_pool, PT_STR("pt.test.kitchen.Kitchen.Chat")));

    const struct pt_descpool_method *chat = &svc->methods[4];
    assert_string_equal(chat->full_name, "pt.test.kitchen.Kitchen.Chat");
    assert_string_equal(chat->path, "/pt.test.kitchen.Kitchen/Chat");
    assert_ptr_equal(chat->service, svc->desc);
    assert_true(chat->client_streaming && chat->server_streaming);
    assert_ptr_equal(chat->desc->input, rt("pt.test.kitchen.Ping"));
    assert_ptr_equal(chat->desc->output, rt("pt.test.kitchen.Pong"));
    assert_null(chat->options);
    const struct pt_descpool_method *watch = &svc->methods[2], *upload = &svc->methods[3];
    assert_string_equal(watch->desc->name, "Watch");
    assert_true(!watch->client_streaming && watch->server_streaming);
    assert_true(upload->client_streaming && !upload->server_streaming);
    assert_ptr_equal(upload->desc->output, rt("google.protobuf.Empty"));

    /* The http rule survives in the raw MethodOptions, as extension 72295728. */
    const struct pt_descpool_method *get =
        pt_descpool_find_method(g_pool, PT_STR("pt.test.kitchen.Kitchen/Get"));
    assert_non_null(get->options);
    assert_false(get->client_streaming || get->server_streaming);
    Google__Protobuf__MethodOptions *mo =
        google__protobuf__method_options__unpack(NULL, get->options_len, get->options);
    assert_non_null(mo);
    assert_int_equal(mo->base.n_unknown_fields, 1);
    assert_int_equal(mo->base.unknown_fields[0].tag, 72295728);
    /* libprotobuf-c keeps the length prefix in an unknown field's data */
    const ProtobufCMessageUnknownField *uf = &mo->base.unknown_fields[0];
    assert_int_equal(uf->wire_type, PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED);
    assert_true(uf->len >= 1 && uf->data[0] == uf->len - 1);
    Google__Api__HttpRule *rule = google__api__http_rule__unpack(NULL, uf->len - 1, uf->data + 1);
    assert_non_null(rule);
    assert_int_equal(rule->pattern_case, GOOGLE__API__HTTP_RULE__PATTERN_GET);
    assert_string_equal(rule->get, "/v1/{name=sinks/*}");
    google__api__http_rule__free_unpacked(rule, NULL);
    google__protobuf__method_options__free_unpacked(mo, NULL);

    /* iteration covers everything */
    size_t nm = pt_descpool_message_count(g_pool), found = 0;
    for (size_t i = 0; i < nm; i++) {
        const struct pt_descpool_message *mi = pt_descpool_message_at(g_pool, i);
        assert_ptr_equal(pt_descpool_message_info(mi->desc), mi);
        found += strcmp(mi->desc->name, "pt.test.kitchen.Maps.StrMsgEntry") == 0;
    }
    assert_int_equal(found, 1);
    assert_null(pt_descpool_message_at(g_pool, nm));
    assert_true(pt_descpool_enum_count(g_pool) >= 8);
    assert_non_null(pt_descpool_enum_at(g_pool, 0));
    assert_int_equal(pt_descpool_service_count(g_pool), 2);
    assert_non_null(pt_descpool_service_at(g_pool, 1));
}

static const struct pt_descpool_field *field_info(const char *msg, const char *field)
{
    const ProtobufCMessageDescriptor *d = rt(msg);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, field);
    assert_non_null(f);
    const struct pt_descpool_field *fi = pt_descpool_field_info(d, f);
    assert_non_null(fi);
    assert_ptr_equal(fi->field, f);
    assert_ptr_equal(fi->message, d);
    return fi;
}

static void test_descpool__side_tables(void **state)
{
    assert_string_equal(field_info("pt.test.kitchen.Outer", "json_named")->json_name, "customJson");
    assert_string_equal(field_info("pt.test.kitchen.Outer", "snake_case_name_2x")->json_name,
                        "snakeCaseName2x");
    assert_string_equal(field_info("pt.test.kitchen.Scalars", "f_int32")->json_name, "fInt32");
    assert_int_equal(field_info("pt.test.kitchen.Scalars", "f_sint32")->proto_type, 17);
    assert_int_equal(field_info("pt.test.kitchen.Scalars", "f_sint64")->proto_type, 18);
    assert_int_equal(field_info("pt.test.kitchen.Scalars", "f_mood")->proto_type, 14);
    assert_int_equal(field_info("pt.test.kitchen.Scalars", "f_bytes")->proto_type, 12);

    const struct pt_descpool_field *m = field_info("pt.test.kitchen.Maps", "str_msg");
    assert_true(m->is_map);
    assert_int_equal(m->map_key->type, PROTOBUF_C_TYPE_STRING);
    assert_int_equal(m->map_value->type, PROTOBUF_C_TYPE_MESSAGE);
    assert_ptr_equal(m->map_value->descriptor, rt("pt.test.kitchen.Scalars"));
    assert_true(pt_descpool_message_info(m->field->descriptor)->map_entry);
    m = field_info("pt.test.kitchen.Maps", "int_enum");
    assert_true(m->is_map);
    assert_int_equal(m->map_key->type, PROTOBUF_C_TYPE_INT32);
    assert_int_equal(m->map_value->type, PROTOBUF_C_TYPE_ENUM);
    m = field_info("pt.test.kitchen.Maps", "str_value");
    assert_ptr_equal(m->map_value->descriptor, rt("google.protobuf.Value"));
    assert_false(field_info("pt.test.kitchen.Repeated", "r_msg")->is_map);
    assert_false(field_info("pt.test.kitchen.Node", "children")->is_map);
    assert_false(pt_descpool_message_info(rt("pt.test.kitchen.Node"))->map_entry);

    /* oneofs: protoc-c's case fields */
    const struct pt_descpool_message *ch = pt_descpool_message_info(rt("pt.test.kitchen.Choices"));
    assert_true(ch->proto3);
    assert_string_equal(ch->file, "kitchen.proto");
    assert_int_equal(ch->n_oneofs, 2);
    assert_string_equal(ch->oneofs[0].name, "pick");
    assert_int_equal(ch->oneofs[0].case_offset, offsetof(Pt__Test__Kitchen__Choices, pick_case));
    assert_int_equal(ch->oneofs[0].n_fields, 8);
    assert_string_equal(ch->oneofs[0].fields[7]->name, "c_int64");
    assert_string_equal(ch->oneofs[1].name, "other");
    assert_int_equal(ch->oneofs[1].case_offset, offsetof(Pt__Test__Kitchen__Choices, other_case));
    assert_int_equal(field_info("pt.test.kitchen.Choices", "o_node")->oneof_index, 1);
    assert_int_equal(field_info("pt.test.kitchen.Choices", "before")->oneof_index, -1);

    /* proto3 optional: synthetic oneofs hidden, has_ flags like proto2 */
    const struct pt_descpool_message *opt =
        pt_descpool_message_info(rt("pt.test.optional.Optionals"));
    assert_int_equal(opt->n_oneofs, 0);
    const struct pt_descpool_field *o = field_info("pt.test.optional.Optionals", "o_int32");
    assert_true(o->proto3_optional);
    assert_int_equal(o->oneof_index, -1);
    assert_int_equal(o->field->label, PROTOBUF_C_LABEL_OPTIONAL);
    assert_false(o->field->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
    assert_false(field_info("pt.test.optional.Mixed", "plain")->proto3_optional);
    const struct pt_descpool_message *mixed =
        pt_descpool_message_info(rt("pt.test.optional.Mixed"));
    assert_int_equal(mixed->n_oneofs, 1);
    assert_string_equal(mixed->oneofs[0].name, "pick");

    /* generated descriptors have no side table */
    assert_null(pt_descpool_message_info(&pt__test__kitchen__scalars__descriptor));
    assert_null(pt_descpool_field_info(&pt__test__kitchen__scalars__descriptor,
                                       &pt__test__kitchen__scalars__descriptor.fields[0]));
    assert_null(pt_descpool_message_info(NULL));
    /* a field of another message */
    assert_null(pt_descpool_field_info(rt("pt.test.kitchen.Scalars"),
                                       &rt("pt.test.kitchen.Node")->fields[0]));
}

static void test_descpool__recursive_messages_point_at_each_other(void **state)
{
    const ProtobufCMessageDescriptor *node = rt("pt.test.kitchen.Node");
    const ProtobufCMessageDescriptor *ping = rt("pt.test.kitchen.Ping");
    const ProtobufCMessageDescriptor *pong = rt("pt.test.kitchen.Pong");
    assert_ptr_equal(protobuf_c_message_descriptor_get_field_by_name(node, "left")->descriptor,
                     node);
    assert_ptr_equal(protobuf_c_message_descriptor_get_field_by_name(node, "children")->descriptor,
                     node);
    assert_ptr_equal(protobuf_c_message_descriptor_get_field_by_name(ping, "pong")->descriptor,
                     pong);
    assert_ptr_equal(protobuf_c_message_descriptor_get_field_by_name(pong, "ping")->descriptor,
                     ping);
    const ProtobufCMessageDescriptor *inner = rt("pt.test.kitchen.Outer.Middle.Inner");
    assert_ptr_equal(protobuf_c_message_descriptor_get_field(inner, 3)->descriptor,
                     rt("pt.test.kitchen.Outer"));

    /* a chain Node -> Ping -> Pong -> Ping ... built with generated code */
    Pt__Test__Kitchen__Node n = PT__TEST__KITCHEN__NODE__INIT;
    Pt__Test__Kitchen__Ping pi[4];
    Pt__Test__Kitchen__Pong po[4];
    for (int i = 0; i < 4; i++) {
        pt__test__kitchen__ping__init(&pi[i]);
        pt__test__kitchen__pong__init(&po[i]);
        pi[i].hops = i + 1;
        pi[i].pong = &po[i];
        po[i].note = "pong";
        po[i].ping = i < 3 ? &pi[i + 1] : NULL;
    }
    n.name = "root";
    n.ping = &pi[0];
    Pt__Test__Kitchen__Node kids[3];
    Pt__Test__Kitchen__Node *kp[3];
    for (int i = 0; i < 3; i++) {
        pt__test__kitchen__node__init(&kids[i]);
        kids[i].name = "kid";
        kp[i] = &kids[i];
    }
    kids[0].left = &kids[1];
    kids[1].right = &kids[2];
    n.n_children = 3;
    n.children = kp;
    n.left = &kids[0];
    roundtrip(&n.base, node);
}

/* ---- round trips ---------------------------------------------------------- */

static void test_descpool__scalars_at_their_limits(void **state)
{
    uint8_t blob[] = {0, 1, 2, 0xff, 0x80};
    Pt__Test__Kitchen__Scalars s = PT__TEST__KITCHEN__SCALARS__INIT;
    const ProtobufCMessageDescriptor *d = rt("pt.test.kitchen.Scalars");
    roundtrip(&s.base, d); /* all zero: nothing on the wire */
    s.f_int32 = INT32_MIN;
    s.f_int64 = INT64_MIN;
    s.f_uint32 = UINT32_MAX;
    s.f_uint64 = UINT64_MAX;
    s.f_sint32 = INT32_MIN;
    s.f_sint64 = INT64_MIN;
    s.f_fixed32 = UINT32_MAX;
    s.f_fixed64 = UINT64_MAX;
    s.f_sfixed32 = INT32_MIN;
    s.f_sfixed64 = INT64_MIN;
    s.f_float = -INFINITY;
    s.f_double = NAN;
    s.f_bool = 1;
    s.f_string = "h\xc3\xa9llo";
    s.f_bytes = (ProtobufCBinaryData){sizeof(blob), blob};
    s.f_mood = PT__TEST__KITCHEN__MOOD__MOOD_TINY;
    roundtrip(&s.base, d);
    s.f_int32 = -1;
    s.f_sint32 = -1;
    s.f_sint64 = INT64_MAX;
    s.f_float = 1e-45f;
    s.f_double = -1e300;
    s.f_mood = PT__TEST__KITCHEN__MOOD__MOOD_GRUMPY;
    roundtrip(&s.base, d);

    /* the runtime struct is the generated struct */
    size_t len;
    uint8_t *buf = pack(&s.base, &len);
    Pt__Test__Kitchen__Scalars *r =
        (Pt__Test__Kitchen__Scalars *)protobuf_c_message_unpack(d, NULL, len, buf);
    assert_non_null(r);
    assert_ptr_equal(r->base.descriptor, d);
    assert_int_equal(r->f_int64, INT64_MIN);
    assert_int_equal(r->f_sint64, INT64_MAX);
    assert_true(r->f_uint64 == UINT64_MAX);
    assert_string_equal(r->f_string, "h\xc3\xa9llo");
    assert_int_equal(r->f_bytes.len, sizeof(blob));
    assert_int_equal(r->f_mood, -7);
    assert_true(r->f_double == -1e300);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    free(buf);
}

/* Offsets of the tags a packed field and an unpacked one start with. */
static void test_descpool__packed_and_unpacked_repeated(void **state)
{
    int32_t ints[] = {1, -2, 300};
    double dbl[] = {1.5, -0.0};
    protobuf_c_boolean bools[] = {1, 0, 1};
    Pt__Test__Kitchen__Mood moods[] = {PT__TEST__KITCHEN__MOOD__MOOD_SAD,
                                       PT__TEST__KITCHEN__MOOD__MOOD_GRUMPY};
    char *strs[] = {"a", "", "ccc"};
    const ProtobufCMessageDescriptor *d = rt("pt.test.kitchen.Repeated");
    Pt__Test__Kitchen__Repeated r = PT__TEST__KITCHEN__REPEATED__INIT;
    r.n_r_int32 = 3, r.r_int32 = ints;
    r.n_u_int32 = 3, r.u_int32 = ints;
    r.n_r_double = 2, r.r_double = dbl;
    r.n_u_double = 2, r.u_double = dbl;
    r.n_r_bool = 3, r.r_bool = bools;
    r.n_u_bool = 3, r.u_bool = bools;
    r.n_r_mood = 2, r.r_mood = moods;
    r.n_u_mood = 2, r.u_mood = moods;
    r.n_r_string = 3, r.r_string = strs;
    roundtrip(&r.base, d);

    /* The runtime packs r_int32 packed (one tag, wire type 2) and u_int32
     * one tag per element (field 21, wire type 0). */
    ProtobufCMessage *m = malloc(d->sizeof_message);
    pt_descpool_message_init(d, m);
    Pt__Test__Kitchen__Repeated *rm = (Pt__Test__Kitchen__Repeated *)m;
    rm->n_r_int32 = 2, rm->r_int32 = ints;
    rm->n_u_int32 = 2, rm->u_int32 = ints;
    size_t len;
    uint8_t *buf = pack(m, &len);
    const uint8_t want[] = {0x0a, 0x0b, 0x01, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0x01, 0xa8, 0x01, 0x01, 0xa8, 0x01, 0xfe, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, len);
    free(buf);
    free(m);

    /* Either encoding is accepted for either field on input. */
    const uint8_t swapped[] = {0x08, 0x05, 0xaa, 0x01, 0x02, 0x07, 0x09};
    Pt__Test__Kitchen__Repeated *x =
        (Pt__Test__Kitchen__Repeated *)protobuf_c_message_unpack(d, NULL, sizeof(swapped), swapped);
    assert_non_null(x);
    assert_int_equal(x->n_r_int32, 1);
    assert_int_equal(x->r_int32[0], 5);
    assert_int_equal(x->n_u_int32, 2);
    assert_int_equal(x->u_int32[1], 9);
    protobuf_c_message_free_unpacked(&x->base, NULL);

    /* proto2: unpacked unless [packed = true] */
    int32_t p2[] = {7, 8};
    Pt__Test__Legacy__Sub sub = PT__TEST__LEGACY__SUB__INIT;
    sub.n_plain = 2, sub.plain = p2;
    sub.n_packed = 2, sub.packed = p2;
    sub.n_packed_bools = 3, sub.packed_bools = bools;
    roundtrip(&sub.base, rt("pt.test.legacy.Sub"));
    assert_false(
        protobuf_c_message_descriptor_get_field_by_name(rt("pt.test.legacy.Sub"), "plain")->flags &
        PROTOBUF_C_FIELD_FLAG_PACKED);
    assert_true(
        protobuf_c_message_descriptor_get_field_by_name(rt("pt.test.legacy.Sub"), "packed")->flags &
        PROTOBUF_C_FIELD_FLAG_PACKED);
}

static void test_descpool__every_oneof_case(void **state)
{
    const ProtobufCMessageDescriptor *d = rt("pt.test.kitchen.Choices");
    Pt__Test__Kitchen__Scalars sc = PT__TEST__KITCHEN__SCALARS__INIT;
    Pt__Test__Kitchen__Node node = PT__TEST__KITCHEN__NODE__INIT;
    sc.f_int32 = 5;
    node.name = "n";
    uint8_t raw[] = {1, 2, 3};
    for (int pick = 0; pick <= 9; pick++) {
        for (int other = 0; other <= 3; other++) {
            Pt__Test__Kitchen__Choices c = PT__TEST__KITCHEN__CHOICES__INIT;
            c.before = "b";
            c.middle = pick;
            switch (pick) {
            case 2:
                c.c_int32 = -9;
                break;
            case 3:
                c.c_string = "";
                break; /* set to empty: still sent */
            case 4:
                c.c_bytes = (ProtobufCBinaryData){3, raw};
                break;
            case 5:
                c.c_msg = &sc;
                break;
            case 6:
                c.c_mood = PT__TEST__KITCHEN__MOOD__MOOD_HUGE;
                break;
            case 7:
                c.c_double = 0.0;
                break;
            case 8:
                c.c_bool = 0;
                break;
            case 9:
                c.c_int64 = INT64_MIN;
                break;
            default:
                break;
            }
            if (pick >= 2)
                c.pick_case = (Pt__Test__Kitchen__Choices__PickCase)pick;
            switch (other) {
            case 1:
                c.o_name = "name";
                c.other_case = 11;
                break;
            case 2:
                c.o_node = &node;
                c.other_case = 12;
                break;
            case 3:
                c.o_fixed64 = 0;
                c.other_case = 13;
                break;
            default:
                break;
            }
            roundtrip(&c.base, d);
            size_t len;
            uint8_t *buf = pack(&c.base, &len);
            Pt__Test__Kitchen__Choices *r =
                (Pt__Test__Kitchen__Choices *)protobuf_c_message_unpack(d, NULL, len, buf);
            assert_non_null(r);
            assert_int_equal(r->pick_case, c.pick_case);
            assert_int_equal(r->other_case, c.other_case);
            protobuf_c_message_free_unpacked(&r->base, NULL);
            free(buf);
        }
    }
    /* Two members of one oneof on the wire: the last wins, the first is freed. */
    const uint8_t two[] = {0x1a, 0x02, 'h', 'i', 0x2a, 0x02, 0x08, 0x01, 0x1a, 0x01, 'x'};
    Pt__Test__Kitchen__Choices *r =
        (Pt__Test__Kitchen__Choices *)protobuf_c_message_unpack(d, NULL, sizeof(two), two);
    assert_non_null(r);
    assert_int_equal(r->pick_case, 3);
    assert_string_equal(r->c_string, "x");
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_descpool__maps_and_well_known_types(void **state)
{
    /* maps are repeated entries: protoc-c's Entry structs read runtime data */
    Pt__Test__Kitchen__Scalars sc = PT__TEST__KITCHEN__SCALARS__INIT;
    sc.f_string = "v";
    Pt__Test__Kitchen__Maps__StrMsgEntry e1 = PT__TEST__KITCHEN__MAPS__STR_MSG_ENTRY__INIT;
    e1.key = "k1";
    e1.value = &sc;
    Pt__Test__Kitchen__Maps__StrMsgEntry e2 = PT__TEST__KITCHEN__MAPS__STR_MSG_ENTRY__INIT;
    e2.key = "";
    Pt__Test__Kitchen__Maps__StrMsgEntry *es[] = {&e1, &e2};
    Pt__Test__Kitchen__Maps__IntEnumEntry ie = PT__TEST__KITCHEN__MAPS__INT_ENUM_ENTRY__INIT;
    ie.key = -1;
    ie.value = PT__TEST__KITCHEN__MOOD__MOOD_GRUMPY;
    Pt__Test__Kitchen__Maps__IntEnumEntry *ies[] = {&ie};
    Pt__Test__Kitchen__Maps__BoolStrEntry be = PT__TEST__KITCHEN__MAPS__BOOL_STR_ENTRY__INIT;
    be.key = 1;
    be.value = "yes";
    Pt__Test__Kitchen__Maps__BoolStrEntry *bes[] = {&be};
    Pt__Test__Kitchen__Maps m = PT__TEST__KITCHEN__MAPS__INIT;
    m.n_str_msg = 2, m.str_msg = es;
    m.n_int_enum = 1, m.int_enum = ies;
    m.n_bool_str = 1, m.bool_str = bes;
    roundtrip(&m.base, rt("pt.test.kitchen.Maps"));

    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1700000000;
    ts.nanos = 123456789;
    Google__Protobuf__Duration du = GOOGLE__PROTOBUF__DURATION__INIT;
    du.seconds = -5;
    du.nanos = -500;
    char *paths[] = {"a.b", "c"};
    Google__Protobuf__FieldMask fm = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    fm.n_paths = 2, fm.paths = paths;
    Google__Protobuf__Value vn = GOOGLE__PROTOBUF__VALUE__INIT;
    vn.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
    Google__Protobuf__Value vs = GOOGLE__PROTOBUF__VALUE__INIT;
    vs.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    vs.string_value = "s";
    Google__Protobuf__Value *items[] = {&vn, &vs};
    Google__Protobuf__ListValue lv = GOOGLE__PROTOBUF__LIST_VALUE__INIT;
    lv.n_values = 2, lv.values = items;
    Google__Protobuf__Value vl = GOOGLE__PROTOBUF__VALUE__INIT;
    vl.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
    vl.list_value = &lv;
    Google__Protobuf__Struct__FieldsEntry fe = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    fe.key = "list";
    fe.value = &vl;
    Google__Protobuf__Struct__FieldsEntry *fes[] = {&fe};
    Google__Protobuf__Struct st = GOOGLE__PROTOBUF__STRUCT__INIT;
    st.n_fields = 1, st.fields = fes;
    size_t sclen;
    uint8_t *scbytes = pack(&sc.base, &sclen);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/pt.test.kitchen.Scalars";
    any.value = (ProtobufCBinaryData){sclen, scbytes};
    Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
    Google__Protobuf__DoubleValue dv = GOOGLE__PROTOBUF__DOUBLE_VALUE__INIT;
    dv.value = 2.5;
    Google__Protobuf__FloatValue fv = GOOGLE__PROTOBUF__FLOAT_VALUE__INIT;
    Google__Protobuf__Int64Value i64 = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
    i64.value = INT64_MIN;
    Google__Protobuf__UInt64Value u64 = GOOGLE__PROTOBUF__UINT64_VALUE__INIT;
    u64.value = UINT64_MAX;
    Google__Protobuf__Int32Value i32 = GOOGLE__PROTOBUF__INT32_VALUE__INIT;
    i32.value = -1;
    Google__Protobuf__UInt32Value u32 = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
    u32.value = 7;
    Google__Protobuf__BoolValue bv = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
    bv.value = 1;
    Google__Protobuf__StringValue sv = GOOGLE__PROTOBUF__STRING_VALUE__INIT;
    sv.value = "wrapped";
    Google__Protobuf__BytesValue bytv = GOOGLE__PROTOBUF__BYTES_VALUE__INIT;
    bytv.value = (ProtobufCBinaryData){3, (uint8_t *)"abc"};
    Google__Protobuf__Any *anys[] = {&any, &any};
    Pt__Test__Kitchen__WellKnown w = PT__TEST__KITCHEN__WELL_KNOWN__INIT;
    w.any = &any;
    w.timestamp = &ts;
    w.duration = &du;
    w.field_mask = &fm;
    w.struct_ = &st;
    w.value = &vs;
    w.list_value = &lv;
    w.null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
    w.empty = &empty;
    w.double_value = &dv;
    w.float_value = &fv; /* present but zero: an empty message on the wire */
    w.int64_value = &i64;
    w.uint64_value = &u64;
    w.int32_value = &i32;
    w.uint32_value = &u32;
    w.bool_value = &bv;
    w.string_value = &sv;
    w.bytes_value = &bytv;
    w.n_anys = 2, w.anys = anys;
    const ProtobufCMessageDescriptor *d = rt("pt.test.kitchen.WellKnown");
    roundtrip(&w.base, d);
    for (unsigned i = 0; i < d->n_fields; i++)
        assert_string_equal(d->fields[i].name,
                            pt__test__kitchen__well_known__descriptor.fields[i].name);
    free(scbytes);
}

static void test_descpool__unknown_fields_are_kept(void **state)
{
    /* Scalars{f_int32: 1} + field 999 (varint) + 1000 (bytes) + 1001 (fixed32) */
    const uint8_t in[] = {0x08, 0x01, 0xb8, 0x3e, 0x96, 0x01, 0xc2, 0x3e, 0x02,
                          'h',  'i',  0xcd, 0x3e, 1,    2,    3,    4};
    const ProtobufCMessageDescriptor *d = rt("pt.test.kitchen.Scalars");
    ProtobufCMessage *r = protobuf_c_message_unpack(d, NULL, sizeof(in), in);
    assert_non_null(r);
    assert_int_equal(r->n_unknown_fields, 3);
    assert_int_equal(r->unknown_fields[1].tag, 1000);
    size_t len;
    uint8_t *out = pack(r, &len);
    assert_int_equal(len, sizeof(in));
    assert_memory_equal(out, in, len);
    ProtobufCMessage *g =
        protobuf_c_message_unpack(&pt__test__kitchen__scalars__descriptor, NULL, len, out);
    assert_true(pt_pbgen_equal(g, r));
    protobuf_c_message_free_unpacked(g, NULL);
    protobuf_c_message_free_unpacked(r, NULL);
    free(out);

    /* extensions are unknown fields too (legacy.proto extends WithOneof) */
    const uint8_t ext[] = {0x08, 0x03, 0xa0, 0x06, 0x2a, 0xaa, 0x06, 0x01, 'e'};
    d = rt("pt.test.legacy.WithOneof");
    r = protobuf_c_message_unpack(d, NULL, sizeof(ext), ext);
    assert_non_null(r);
    assert_int_equal(r->n_unknown_fields, 2);
    out = pack(r, &len);
    assert_int_equal(len, sizeof(ext));
    assert_memory_equal(out, ext, len);
    protobuf_c_message_free_unpacked(r, NULL);
    free(out);
}

static void test_descpool__proto2_defaults_and_required(void **state)
{
    const ProtobufCMessageDescriptor *d = rt("pt.test.legacy.Defaults");
    /* initialised: the same as protoc-c's INIT, field by field */
    Pt__Test__Legacy__Defaults ref;
    pt__test__legacy__defaults__init(&ref);
    Pt__Test__Legacy__Defaults *m = malloc(d->sizeof_message);
    memset(m, 0xa5, d->sizeof_message);
    pt_descpool_message_init(d, m);
    assert_ptr_equal(m->base.descriptor, d);
    assert_true(pt_pbgen_equal(&ref.base, &m->base));
    assert_int_equal(m->d_int32, -42);
    assert_int_equal(m->d_int64, -9000000000ll);
    assert_true(m->d_uint32 == 4000000000u);
    assert_true(m->d_uint64 == 18000000000000000000ull);
    assert_true(m->d_float == 1.5f);
    assert_true(m->d_double == -2.25e10);
    assert_true(isinf(m->d_inf) && m->d_inf > 0);
    assert_true(isinf(m->d_ninf) && m->d_ninf < 0);
    assert_true(isnan(m->d_nan));
    assert_true(m->d_exp == 1e-300);
    assert_int_equal(m->d_min32, INT32_MIN);
    assert_true(m->d_min64 == INT64_MIN);
    assert_int_equal(m->d_bool, 1);
    assert_string_equal(m->d_string, "hello \"world\"\n");
    assert_string_equal(m->d_empty, "");
    assert_int_equal(m->d_bytes.len, 7);
    assert_memory_equal(m->d_bytes.data, "\000\001\xff\\abc", 7);
    assert_int_equal(m->d_level, PT__TEST__LEGACY__LEVEL__HIGH);
    assert_int_equal(m->d_level_first, PT__TEST__LEGACY__LEVEL__LOW);
    assert_int_equal(m->level, PT__TEST__LEGACY__LEVEL__LOW);
    assert_int_equal(m->neg_level, PT__TEST__LEGACY__LEVEL__NEGATIVE);
    assert_null(m->no_default);
    assert_false(m->has_d_int32);
    free(m);

    /* unpacked with only the required fields: defaults show through */
    Pt__Test__Legacy__Sub rs = PT__TEST__LEGACY__SUB__INIT;
    Pt__Test__Legacy__Defaults g;
    pt__test__legacy__defaults__init(&g);
    g.id = 7;
    g.name = "n";
    g.blob = (ProtobufCBinaryData){0, NULL};
    g.level = PT__TEST__LEGACY__LEVEL__MID;
    g.req_sub = &rs;
    roundtrip(&g.base, d);
    size_t len;
    uint8_t *buf = pack(&g.base, &len);
    Pt__Test__Legacy__Defaults *u =
        (Pt__Test__Legacy__Defaults *)protobuf_c_message_unpack(d, NULL, len, buf);
    assert_non_null(u);
    assert_int_equal(u->d_int32, -42);
    assert_string_equal(u->d_string, "hello \"world\"\n");
    assert_string_equal(u->req_sub->s, "sub");
    assert_int_equal(u->level, PT__TEST__LEGACY__LEVEL__MID);
    protobuf_c_message_free_unpacked(&u->base, NULL);
    free(buf);

    /* a missing required field fails to unpack, as with generated code */
    const uint8_t partial[] = {0x08, 0x07};
    assert_null(protobuf_c_message_unpack(d, NULL, sizeof(partial), partial));
    assert_null(protobuf_c_message_unpack(&pt__test__legacy__defaults__descriptor, NULL,
                                          sizeof(partial), partial));

    /* proto2 oneof members with defaults: nothing is preset in the union */
    const ProtobufCMessageDescriptor *wd = rt("pt.test.legacy.WithOneof");
    Pt__Test__Legacy__WithOneof *w = malloc(wd->sizeof_message);
    pt_descpool_message_init(wd, w);
    assert_int_equal(w->choice_case, 0);
    assert_null(w->name);
    assert_int_equal(w->a, 3);
    free(w);
    /* ... and parsing one string member, then a message member, frees cleanly */
    const uint8_t seq[] = {0x12, 0x01, 'q', 0x22, 0x02, 0x0a, 0x00, 0x2a, 0x01, 'z'};
    w = (Pt__Test__Legacy__WithOneof *)protobuf_c_message_unpack(wd, NULL, sizeof(seq), seq);
    assert_non_null(w);
    assert_int_equal(w->choice_case, 5);
    assert_int_equal(w->raw.len, 1);
    protobuf_c_message_free_unpacked(&w->base, NULL);
}

static void test_descpool__proto3_optional(void **state)
{
    /* The proto2 twin is the generated reference for layout and wire. */
    const ProtobufCMessageDescriptor *d = rt("pt.test.optional.Optionals");
    assert_int_equal(d->sizeof_message, sizeof(Pt__Test__Legacy__OptionalTwin));
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *g = &pt__test__legacy__optional_twin__descriptor.fields[i];
        assert_int_equal(d->fields[i].id, g->id);
        assert_int_equal(d->fields[i].label, PROTOBUF_C_LABEL_OPTIONAL);
        assert_int_equal(d->fields[i].offset, g->offset);
        assert_int_equal(d->fields[i].quantifier_offset, g->quantifier_offset);
        assert_null(d->fields[i].default_value);
    }
    Pt__Test__Legacy__OptionalTwin t = PT__TEST__LEGACY__OPTIONAL_TWIN__INIT;
    roundtrip(&t.base, d);
    /* zero but present is sent */
    t.has_o_int32 = 1;
    t.has_o_bool = 1;
    t.has_o_double = 1;
    t.o_string = "";
    t.has_o_bytes = 1;
    roundtrip(&t.base, d);
    size_t len;
    uint8_t *buf = pack(&t.base, &len);
    const uint8_t want[] = {0x08, 0x00, 0x61, 0,    0,    0,    0,    0,   0,
                            0,    0,    0x68, 0x00, 0x72, 0x00, 0x7a, 0x00};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, len);
    free(buf);

    /* Mixed: implicit presence, explicit presence and a real oneof together */
    const ProtobufCMessageDescriptor *md = rt("pt.test.optional.Mixed");
    const ProtobufCFieldDescriptor *plain = protobuf_c_message_descriptor_get_field(md, 1);
    const ProtobufCFieldDescriptor *maybe = protobuf_c_message_descriptor_get_field(md, 2);
    const ProtobufCFieldDescriptor *b = protobuf_c_message_descriptor_get_field(md, 4);
    const ProtobufCFieldDescriptor *mt = protobuf_c_message_descriptor_get_field(md, 5);
    const ProtobufCFieldDescriptor *many = protobuf_c_message_descriptor_get_field(md, 6);
    assert_int_equal(plain->label, PROTOBUF_C_LABEL_NONE);
    assert_int_equal(maybe->label, PROTOBUF_C_LABEL_OPTIONAL);
    assert_int_equal(mt->label, PROTOBUF_C_LABEL_OPTIONAL);
    assert_null(mt->default_value);
    assert_true(b->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
    assert_true(many->flags & PROTOBUF_C_FIELD_FLAG_PACKED);
    /* protoc-c's order: plain, has_maybe, maybe, maybe_text, n_many, many, case, union */
    assert_true(plain->offset < maybe->quantifier_offset);
    assert_true(maybe->quantifier_offset < maybe->offset);
    assert_true(maybe->offset < mt->offset);
    assert_true(mt->offset < many->quantifier_offset);
    assert_true(many->offset < b->quantifier_offset);
    assert_true(b->quantifier_offset < b->offset);
    char *m = malloc(md->sizeof_message);
    pt_descpool_message_init(md, m);
    *(protobuf_c_boolean *)(m + maybe->quantifier_offset) = 1;
    *(uint32_t *)(m + b->quantifier_offset) = 4;
    *(int32_t *)(m + b->offset) = 0;
    buf = pack((ProtobufCMessage *)m, &len);
    const uint8_t mwant[] = {0x10, 0x00, 0x20, 0x00};
    assert_int_equal(len, sizeof(mwant));
    assert_memory_equal(buf, mwant, len);
    ProtobufCMessage *back = protobuf_c_message_unpack(md, NULL, len, buf);
    assert_non_null(back);
    assert_int_equal(*(protobuf_c_boolean *)((char *)back + maybe->quantifier_offset), 1);
    assert_int_equal(*(uint32_t *)((char *)back + b->quantifier_offset), 4);
    assert_null(*(char **)((char *)back + mt->offset));
    protobuf_c_message_free_unpacked(back, NULL);
    free(buf);
    free(m);
}

/* Random messages, both directions, a few thousand times. */
static void random_roundtrips(const ProtobufCMessageDescriptor *gen,
                              const ProtobufCMessageDescriptor *run, int iterations, int depth)
{
    for (int i = 0; i < iterations; i++) {
        /* generated -> runtime -> generated */
        ProtobufCMessage *g = pt_pbgen_message(gen, depth);
        roundtrip(g, run);
        protobuf_c_message_free_unpacked(g, NULL);
        /* runtime -> generated -> runtime */
        ProtobufCMessage *r = pt_pbgen_message(run, depth);
        roundtrip(r, gen);
        protobuf_c_message_free_unpacked(r, NULL);
    }
}

static void test_descpool__random_kitchen_sinks_round_trip(void **state)
{
    random_roundtrips(&pt__test__kitchen__kitchen_sink__descriptor,
                      rt("pt.test.kitchen.KitchenSink"), 2000, 4);
    random_roundtrips(&pt__test__legacy__defaults__descriptor, rt("pt.test.legacy.Defaults"), 500,
                      3);
    random_roundtrips(&pt__test__legacy__with_oneof__descriptor, rt("pt.test.legacy.WithOneof"),
                      500, 3);
    random_roundtrips(&pt__test__legacy__optional_twin__descriptor,
                      rt("pt.test.optional.Optionals"), 500, 2);
    random_roundtrips(&google__protobuf__file_descriptor_set__descriptor,
                      rt("google.protobuf.FileDescriptorSet"), 200, 4);
}

/* ---- input forms ---------------------------------------------------------- */

struct files {
    struct pt_str *v;
    uint8_t **bufs;
    size_t n;
};

/* The set's files as a reflection answer would carry them. */
static struct files split_set(void)
{
    Google__Protobuf__FileDescriptorSet *set =
        google__protobuf__file_descriptor_set__unpack(NULL, g_set_len, g_set);
    assert_non_null(set);
    struct files f = {calloc(set->n_file + 1, sizeof(struct pt_str)),
                      calloc(set->n_file + 1, sizeof(uint8_t *)), set->n_file};
    for (size_t i = 0; i < set->n_file; i++) {
        size_t len;
        f.bufs[i] = pack(&set->file[i]->base, &len);
        f.v[i] = (struct pt_str){(const char *)f.bufs[i], len};
    }
    google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
    return f;
}

static void files_free(struct files *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->bufs[i]);
    free(f->bufs);
    free(f->v);
}

static void test_descpool__reflection_files_in_any_order(void **state)
{
    struct files f = split_set();
    assert_true(f.n >= 10);
    for (int round = 0; round < 20; round++) {
        for (size_t i = f.n - 1; i > 0; i--) {
            size_t j = pt_pbgen_rand() % (i + 1);
            struct pt_str t = f.v[i];
            f.v[i] = f.v[j];
            f.v[j] = t;
        }
        char err[256] = "";
        struct pt_descpool *p = pt_descpool_new_from_files(f.v, f.n, NULL, err, sizeof(err));
        if (!p)
            fail_msg("round %d: %s", round, err);
        assert_int_equal(pt_descpool_message_count(p), pt_descpool_message_count(g_pool));
        assert_int_equal(pt_descpool_enum_count(p), pt_descpool_enum_count(g_pool));
        const ProtobufCMessageDescriptor *ks =
            pt_descpool_find_message(p, PT_STR("pt.test.kitchen.KitchenSink"));
        assert_non_null(ks);
        assert_ptr_equal(pt_descpool_message_info(ks)->pool, p);
        random_roundtrips(&pt__test__kitchen__kitchen_sink__descriptor, ks, 5, 3);
        pt_descpool_unref(p);
    }
    /* the same file twice (two reflection answers overlap): counted once */
    struct pt_str *dup = calloc(f.n + 1, sizeof(*dup));
    memcpy(dup, f.v, f.n * sizeof(*dup));
    dup[f.n] = f.v[0];
    char err[256] = "";
    struct pt_descpool *p = pt_descpool_new_from_files(dup, f.n + 1, NULL, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(pt_descpool_message_count(p), pt_descpool_message_count(g_pool));
    /* refcounting: the pool lives until the last reference goes */
    assert_ptr_equal(pt_descpool_ref(p), p);
    const ProtobufCMessageDescriptor *d =
        pt_descpool_find_message(p, PT_STR("pt.test.kitchen.Node"));
    pt_descpool_unref(p);
    assert_string_equal(d->name, "pt.test.kitchen.Node");
    pt_descpool_unref(p);
    pt_descpool_unref(NULL);
    free(dup);
    files_free(&f);
}

static void *build_in_thread(void *arg)
{
    char err[256];
    for (int i = 0; i < 10; i++) {
        struct pt_descpool *p = pt_descpool_new_from_set(g_set, g_set_len, NULL, err, sizeof(err));
        if (!p)
            return "build failed";
        pt_descpool_unref(p);
    }
    return NULL;
}

static void test_descpool__builds_on_several_threads(void **state)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, build_in_thread, NULL), 0);
    for (int i = 0; i < 2; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
}

/* ---- errors --------------------------------------------------------------- */

/* A serialized FileDescriptorProto built with generated code. */
struct fdp {
    Google__Protobuf__FileDescriptorProto file;
    Google__Protobuf__DescriptorProto msg;
    Google__Protobuf__DescriptorProto *msgs[1];
    Google__Protobuf__FieldDescriptorProto field;
    Google__Protobuf__FieldDescriptorProto *fields[1];
};

static void fdp_init(struct fdp *f, const char *name, const char *pkg, const char *msg)
{
    google__protobuf__file_descriptor_proto__init(&f->file);
    google__protobuf__descriptor_proto__init(&f->msg);
    google__protobuf__field_descriptor_proto__init(&f->field);
    f->file.name = (char *)name;
    f->file.package = (char *)pkg;
    f->file.syntax = "proto3";
    f->msg.name = (char *)msg;
    f->msgs[0] = &f->msg;
    f->file.n_message_type = 1;
    f->file.message_type = f->msgs;
    f->field.name = "f";
    f->field.has_number = 1;
    f->field.number = 1;
    f->field.has_label = 1;
    f->field.label = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL;
    f->field.has_type = 1;
    f->field.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32;
    f->fields[0] = &f->field;
    f->msg.n_field = 1;
    f->msg.field = f->fields;
}

static struct pt_str fdp_pack(struct fdp *f)
{
    size_t len;
    uint8_t *b = pack(&f->file.base, &len);
    return (struct pt_str){(const char *)b, len};
}

/* Build from the given files; expect failure with `want` in the reason. */
static void expect_error(const struct pt_str *files, size_t n, const struct pt_descpool_limits *lim,
                         const char *want)
{
    char err[256] = "";
    struct pt_descpool *p = pt_descpool_new_from_files(files, n, lim, err, sizeof(err));
    if (p || !strstr(err, want))
        fail_msg("want an error with \"%s\", got %s \"%s\"", want, p ? "a pool" : "", err);
}

static void test_descpool__missing_unknown_and_duplicate_names(void **state)
{
    struct files f = split_set();
    /* drop common.proto: kitchen.proto's import is missing */
    size_t k = 0;
    struct pt_str *rest = calloc(f.n, sizeof(*rest));
    for (size_t i = 0; i < f.n; i++) {
        Google__Protobuf__FileDescriptorProto *fd = google__protobuf__file_descriptor_proto__unpack(
            NULL, f.v[i].len, (const uint8_t *)f.v[i].ptr);
        if (strcmp(fd->name, "common.proto") != 0)
            rest[k++] = f.v[i];
        google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    }
    assert_int_equal(k, f.n - 1);
    expect_error(rest, k, NULL, "kitchen.proto: imports common.proto, which is not among");
    free(rest);

    struct fdp a, b;
    struct pt_str in[2];
    /* unknown type names */
    fdp_init(&a, "a.proto", "pa", "A");
    a.field.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE;
    a.field.type_name = ".nope.Missing";
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "a.proto: pa.A.f: unknown type .nope.Missing");
    free((void *)in[0].ptr);
    /* a message type where an enum is declared */
    a.field.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_ENUM;
    a.field.type_name = ".pa.A";
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "pa.A is not an enum");
    free((void *)in[0].ptr);
    /* relative names and a missing type resolve by scope, as protoc does */
    a.field.has_type = 0;
    a.field.type_name = "A";
    in[0] = fdp_pack(&a);
    char err[256];
    struct pt_descpool *p = pt_descpool_new_from_files(in, 1, NULL, err, sizeof(err));
    assert_non_null(p);
    const ProtobufCMessageDescriptor *pa = pt_descpool_find_message(p, PT_STR("pa.A"));
    assert_ptr_equal(pa->fields[0].descriptor, pa);
    assert_int_equal(pt_descpool_field_info(pa, &pa->fields[0])->proto_type, 11);
    pt_descpool_unref(p);
    free((void *)in[0].ptr);

    /* the same symbol in two files */
    fdp_init(&a, "a.proto", "dup", "M");
    fdp_init(&b, "b.proto", "dup", "M");
    in[0] = fdp_pack(&a);
    in[1] = fdp_pack(&b);
    expect_error(in, 2, NULL, "duplicate symbol dup.M (in a.proto and b.proto)");
    free((void *)in[1].ptr);
    /* the same file name with other contents */
    fdp_init(&b, "a.proto", "dup", "N");
    in[1] = fdp_pack(&b);
    expect_error(in, 2, NULL, "a.proto: given twice with different contents");
    free((void *)in[0].ptr);
    free((void *)in[1].ptr);

    /* groups are rejected by name */
    fdp_init(&a, "g.proto", "pg", "G");
    a.file.syntax = "proto2";
    a.field.type = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_GROUP;
    a.field.type_name = ".pg.G";
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "g.proto: pg.G.f: proto2 groups are not supported");
    free((void *)in[0].ptr);

    /* bad numbers, names, defaults, syntax */
    fdp_init(&a, "n.proto", "pn", "N");
    a.field.number = 0;
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "field number 0 is out of range");
    free((void *)in[0].ptr);
    a.field.number = 536870912;
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "field number 536870912 is out of range");
    free((void *)in[0].ptr);
    a.field.number = 1;
    a.field.default_value = "3";
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "proto3 fields have no explicit defaults");
    free((void *)in[0].ptr);
    a.file.syntax = "proto2";
    a.field.default_value = "99999999999";
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "pn.N.f: invalid default \"99999999999\"");
    free((void *)in[0].ptr);
    a.field.default_value = NULL;
    a.file.syntax = "editions";
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "syntax \"editions\" is not supported");
    free((void *)in[0].ptr);
    a.file.syntax = "proto3";
    a.msg.name = "bad.name";
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "has no valid name");
    free((void *)in[0].ptr);
    a.msg.name = "N";
    Google__Protobuf__FieldDescriptorProto f2 = a.field;
    Google__Protobuf__FieldDescriptorProto *two[] = {&a.field, &f2};
    a.msg.field = two;
    a.msg.n_field = 2;
    f2.name = "g";
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "fields f and g share number 1");
    free((void *)in[0].ptr);
    f2.name = "f";
    f2.number = 2;
    in[0] = fdp_pack(&a);
    expect_error(in, 1, NULL, "field f declared twice");
    free((void *)in[0].ptr);

    /* not descriptors at all */
    const char junk[] = "\x0a\x05hello world";
    in[0] = (struct pt_str){junk, sizeof(junk) - 1};
    expect_error(in, 1, NULL, "file #0: not a serialized FileDescriptorProto");
    err[0] = 'x';
    assert_null(pt_descpool_new_from_set((const uint8_t *)"\x12\x80", 2, NULL, err, sizeof(err)));
    assert_string_equal(err, "descriptor set: not a serialized FileDescriptorSet");
    /* a length that runs past the end */
    assert_null(pt_descpool_new_from_set((const uint8_t *)"\x0a\xff\xff\xff\xff\x0f", 6, NULL, err,
                                         sizeof(err)));
    assert_non_null(strstr(err, "FileDescriptorSet"));
    assert_null(pt_descpool_new_from_set(NULL, 5, NULL, err, sizeof(err)));
    assert_string_equal(err, "descriptor set: no bytes");
    /* an empty set is an empty pool */
    p = pt_descpool_new_from_set(NULL, 0, NULL, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(pt_descpool_message_count(p), 0);
    assert_null(pt_descpool_find_message(p, PT_STR("a")));
    pt_descpool_unref(p);
    files_free(&f);
}

static void test_descpool__truncated_and_garbled_sets_fail_cleanly(void **state)
{
    char err[256];
    size_t ok = 0, failed = 0;
    /* every length up to 600, then a stride through the rest */
    for (size_t len = 0; len < g_set_len; len += len < 600 ? 1 : 97) {
        struct pt_descpool *p = pt_descpool_new_from_set(g_set, len, NULL, err, sizeof(err));
        if (p) {
            ok++;
            pt_descpool_unref(p);
        } else {
            failed++;
            assert_true(err[0] != '\0');
        }
    }
    assert_true(failed > 500);
    /* flipped bytes */
    uint8_t *copy = malloc(g_set_len);
    for (int i = 0; i < 300; i++) {
        memcpy(copy, g_set, g_set_len);
        for (int k = 0; k < 4; k++)
            copy[pt_pbgen_rand() % g_set_len] = (uint8_t)pt_pbgen_rand();
        struct pt_descpool *p = pt_descpool_new_from_set(copy, g_set_len, NULL, err, sizeof(err));
        pt_descpool_unref(p);
    }
    free(copy);
    (void)ok;
}

static void test_descpool__limits(void **state)
{
    struct pt_descpool_limits l;
    char err[256];
    pt_descpool_limits_default(&l);
    assert_int_equal(l.max_depth, PT_DESCPOOL_DEFAULT_MAX_DEPTH);
    const struct {
        size_t *field;
        size_t value;
        const char *want;
    } cases[] = {
        {&l.max_bytes, 1000, "exceeds the limit of 1000"},
        {&l.max_files, 2, "exceed the limit of 2"},
        {&l.max_messages, 10, "more than 10 messages"},
        {&l.max_fields, 20, "more than 20 fields"},
        {&l.max_enum_values, 5, "more than 5 enum values"},
        {&l.max_methods, 2, "more than 2 methods"},
        {&l.max_depth, 2, "nest deeper than 2"},
        {&l.max_memory, 20000, "exceeds 20000 bytes of memory"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&l, 0, sizeof(l)); /* 0 = default */
        *cases[i].field = cases[i].value;
        struct pt_descpool *p = pt_descpool_new_from_set(g_set, g_set_len, &l, err, sizeof(err));
        if (p || !strstr(err, cases[i].want))
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, cases[i].want, p ? "a pool" : err);
    }

    /* declarations nested 3000 deep on the wire: rejected before decoding */
    size_t n = 3000, cap = n * 8 + 64, len = 0;
    uint8_t *buf = malloc(cap), *tmp = malloc(cap);
    buf[len++] = 0x0a; /* DescriptorProto.name = "x" */
    buf[len++] = 0x01;
    buf[len++] = 'x';
    for (size_t i = 0; i < n; i++) {
        /* wrap: nested_type (3), or message_type (4) at the top */
        uint8_t tag = i + 1 == n ? 0x22 : 0x1a;
        size_t h = 0;
        tmp[h++] = tag;
        size_t v = len;
        do {
            tmp[h++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            v >>= 7;
        } while (v);
        memmove(buf + h, buf, len);
        memcpy(buf, tmp, h);
        len += h;
        if (i + 1 < n) { /* each level also needs a name */
            memmove(buf + 3, buf, len);
            memcpy(buf, "\x0a\x01y", 3);
            len += 3;
        }
    }
    struct pt_str in = {(const char *)buf, len};
    expect_error(&in, 1, NULL, "declarations nest deeper than 32");
    free(buf);
    free(tmp);

    /* many tiny elements: bounded by the scan, not by decoded memory */
    memset(&l, 0, sizeof(l));
    l.max_files = 1, l.max_messages = 1, l.max_fields = 1, l.max_enum_values = 1;
    l.max_methods = 1;
    size_t count = 10000;
    buf = malloc(count * 2 + 8);
    len = 0;
    buf[len++] = 0x0a;
    buf[len++] = 0x01;
    buf[len++] = 'f';
    for (size_t i = 0; i < count; i++) {
        buf[len++] = 0x1a; /* dependency = "" */
        buf[len++] = 0x00;
    }
    in = (struct pt_str){(const char *)buf, len};
    expect_error(&in, 1, &l, "more than 80 length-delimited elements");
    free(buf);
}

static void test_descpool__check_depth(void **state)
{
    const ProtobufCMessageDescriptor *d = rt("pt.test.kitchen.Node");
    Pt__Test__Kitchen__Node nodes[50];
    for (int i = 0; i < 50; i++) {
        pt__test__kitchen__node__init(&nodes[i]);
        nodes[i].left = i < 49 ? &nodes[i + 1] : NULL;
    }
    size_t len;
    uint8_t *buf = pack(&nodes[0].base, &len);
    assert_int_equal(pt_descpool_check_depth(d, buf, len, 50), 0);
    assert_int_equal(pt_descpool_check_depth(d, buf, len, 49), PT_ERR_LIMIT);
    assert_int_equal(pt_descpool_check_depth(&pt__test__kitchen__node__descriptor, buf, len, 50),
                     0);
    assert_int_equal(pt_descpool_check_depth(d, buf, len - 1, 100), PT_ERR_INVALID);
    assert_int_equal(pt_descpool_check_depth(d, buf, 0, 1), 0);
    assert_int_equal(pt_descpool_check_depth(d, buf, 0, 0), PT_ERR_LIMIT);
    /* unknown fields are not looked into; groups are not wire format we take */
    const uint8_t unk[] = {0xc2, 0x3e, 0x02, 0x12, 0x00};
    assert_int_equal(pt_descpool_check_depth(d, unk, sizeof(unk), 1), 0);
    const uint8_t group[] = {0x0b, 0x0c};
    assert_int_equal(pt_descpool_check_depth(d, group, sizeof(group), 10), PT_ERR_INVALID);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descpool__descriptors_match_protoc_c),
        cmocka_unit_test(test_descpool__portico_protos_match_protoc_c),
        cmocka_unit_test(test_descpool__lookups_by_full_name),
        cmocka_unit_test(test_descpool__side_tables),
        cmocka_unit_test(test_descpool__recursive_messages_point_at_each_other),
        cmocka_unit_test(test_descpool__scalars_at_their_limits),
        cmocka_unit_test(test_descpool__packed_and_unpacked_repeated),
        cmocka_unit_test(test_descpool__every_oneof_case),
        cmocka_unit_test(test_descpool__maps_and_well_known_types),
        cmocka_unit_test(test_descpool__unknown_fields_are_kept),
        cmocka_unit_test(test_descpool__proto2_defaults_and_required),
        cmocka_unit_test(test_descpool__proto3_optional),
        cmocka_unit_test(test_descpool__random_kitchen_sinks_round_trip),
        cmocka_unit_test(test_descpool__reflection_files_in_any_order),
        cmocka_unit_test(test_descpool__builds_on_several_threads),
        cmocka_unit_test(test_descpool__missing_unknown_and_duplicate_names),
        cmocka_unit_test(test_descpool__truncated_and_garbled_sets_fail_cleanly),
        cmocka_unit_test(test_descpool__limits),
        cmocka_unit_test(test_descpool__check_depth),
    };
    return cmocka_run_group_tests(tests, load_set, free_set);
}
