/*
 * Helpers for the JSON codec's unit tests (header-only, static): files,
 * JSON compared as data (jansson), and protobuf messages compared field by
 * field through their descriptors (maps as sets), so wire bytes written in a
 * different order than protobuf's own serializer still compare equal.
 */
#ifndef PT_TEST_JSON_TESTUTIL_H
#define PT_TEST_JSON_TESTUTIL_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_fixture.h"

static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

/* JSON values equal as data: objects as key sets, numbers by value. */
static inline bool tu_json_equal(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (!w || !tu_json_equal(v, w))
                return false;
        }
        return true;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!tu_json_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default:
        return true; /* true, false, null */
    }
}

static inline bool tu_json_text_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    json_error_t e;
    json_t *x = json_loadb(a, alen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    json_t *y = json_loadb(b, blen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    bool eq = x && y && tu_json_equal(x, y);
    if (!eq)
        fprintf(stderr, "JSON differs:\n  got:  %.*s\n  want: %.*s\n", (int)alen, a, (int)blen, b);
    json_decref(x);
    json_decref(y);
    return eq;
}

static bool tu_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);

static inline bool tu_value_equal(const ProtobufCFieldDescriptor *f, const void *pa, const void *pb,
                                  bool null_is_empty)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return *(const uint32_t *)pa == *(const uint32_t *)pb;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)pa == *(const uint64_t *)pb;
    case PROTOBUF_C_TYPE_FLOAT: {
        float x = *(const float *)pa, y = *(const float *)pb;
        return (isnan(x) && isnan(y)) || memcmp(&x, &y, 4) == 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double x = *(const double *)pa, y = *(const double *)pb;
        return (isnan(x) && isnan(y)) || memcmp(&x, &y, 8) == 0;
    }
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)pa == !*(const protobuf_c_boolean *)pb;
    case PROTOBUF_C_TYPE_STRING: {
        const char *x = *(char *const *)pa, *y = *(char *const *)pb;
        if (null_is_empty) {
            x = x ? x : "";
            y = y ? y : "";
        }
        return (!x && !y) || (x && y && strcmp(x, y) == 0);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *x = pa, *y = pb;
        return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *x = *(ProtobufCMessage *const *)pa,
                               *y = *(ProtobufCMessage *const *)pb;
        return (!x && !y) || (x && y && tu_msg_equal(x, y));
    }
    }
    return false;
}

static inline size_t tu_elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

static bool tu_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    const ProtobufCMessageDescriptor *d = a->descriptor;
    if (d != b->descriptor || a->n_unknown_fields || b->n_unknown_fields)
        return false;
    const char *ca = (const char *)a, *cb = (const char *)b;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t na = *(const size_t *)(ca + f->quantifier_offset);
            size_t nb = *(const size_t *)(cb + f->quantifier_offset);
            if (na != nb)
                return false;
            const char *xa = *(char *const *)(ca + f->offset),
                       *xb = *(char *const *)(cb + f->offset);
            size_t es = tu_elem_size(f->type);
            if (pt_json_default_is_map(d, f)) {
                /* Maps: every entry of a matches a distinct entry of b. */
                bool *used = calloc(nb + 1, 1);
                for (size_t j = 0; j < na; j++) {
                    size_t k = 0;
                    for (; k < nb; k++)
                        if (!used[k] && tu_value_equal(f, xa + j * es, xb + k * es, true))
                            break;
                    if (k == nb) {
                        free(used);
                        return false;
                    }
                    used[k] = true;
                }
                free(used);
                continue;
            }
            for (size_t j = 0; j < na; j++)
                if (!tu_value_equal(f, xa + j * es, xb + j * es, true))
                    return false;
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t qa = *(const uint32_t *)(ca + f->quantifier_offset);
            uint32_t qb = *(const uint32_t *)(cb + f->quantifier_offset);
            if ((qa == f->id) != (qb == f->id))
                return false;
            if (qa != f->id)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE) {
            protobuf_c_boolean ha = *(const protobuf_c_boolean *)(ca + f->quantifier_offset);
            protobuf_c_boolean hb = *(const protobuf_c_boolean *)(cb + f->quantifier_offset);
            if (!ha != !hb)
                return false;
            if (!ha)
                continue;
        }
        if (!tu_value_equal(f, ca + f->offset, cb + f->offset,
                            f->label != PROTOBUF_C_LABEL_OPTIONAL))
            return false;
    }
    return true;
}

/* Do two serializations of desc hold the same message? */
static inline bool tu_wire_equal(const ProtobufCMessageDescriptor *desc, const void *a, size_t alen,
                                 const void *b, size_t blen)
{
    ProtobufCMessage *x = protobuf_c_message_unpack(desc, NULL, alen, a);
    ProtobufCMessage *y = protobuf_c_message_unpack(desc, NULL, blen, b);
    bool eq = x && y && tu_msg_equal(x, y);
    if (!eq)
        fprintf(stderr, "wire differs (%s): unpacked %d/%d\n", desc->name, x != NULL, y != NULL);
    if (x)
        protobuf_c_message_free_unpacked(x, NULL);
    if (y)
        protobuf_c_message_free_unpacked(y, NULL);
    return eq;
}

#endif
