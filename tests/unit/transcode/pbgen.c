/* Random protobuf-c messages and deep comparison, for any descriptor
 * (generated or built by a descriptor pool). See pbgen.h. */
#include "pbgen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transcode/descpool.h"

/* ---- random values (xorshift, fixed seed: failures reproduce) ----------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void pt_pbgen_seed(uint64_t seed)
{
    rng_state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t pt_pbgen_rand(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static uint64_t rnd_int(void)
{
    /* all magnitudes: 0, small, 1-5 byte varints, full 64 bits */
    switch (pt_pbgen_rand() % 5) {
    case 0:
        return 0;
    case 1:
        return pt_pbgen_rand() % 16;
    case 2:
        return pt_pbgen_rand() >> (pt_pbgen_rand() % 64);
    case 3:
        return (uint64_t) - (int64_t)(pt_pbgen_rand() % 1000);
    default:
        return pt_pbgen_rand();
    }
}

size_t pt_pbgen_elem_size(ProtobufCType t)
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

static void fill_message(const ProtobufCMessageDescriptor *d, ProtobufCMessage *m, int depth);

ProtobufCMessage *pt_pbgen_message(const ProtobufCMessageDescriptor *d, int depth)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    pt_descpool_message_init(d, m);
    fill_message(d, m, depth);
    return m;
}

/* One random value of f's type at p; false when a message is too deep. */
static bool fill_value(const ProtobufCFieldDescriptor *f, void *p, int depth)
{
    uint64_t v = rnd_int();
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, 4);
        return true;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        float x = (pt_pbgen_rand() & 1) ? (float)(int64_t)v / 7.0f : 0.0f;
        if (pt_pbgen_rand() % 16 == 0)
            x = pt_pbgen_rand() & 1 ? NAN : -INFINITY;
        memcpy(p, &x, 4);
        return true;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double x;
        uint64_t bits = pt_pbgen_rand();
        memcpy(&x, &bits, 8);
        if (pt_pbgen_rand() & 1)
            x = (double)(int64_t)v / 3.0;
        memcpy(p, &x, 8);
        return true;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        memcpy(p, &v, 8);
        return true;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)p = (protobuf_c_boolean)(pt_pbgen_rand() & 1);
        return true;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        int32_t x = e->n_values ? e->values[pt_pbgen_rand() % e->n_values].value : 0;
        memcpy(p, &x, 4);
        return true;
    }
    case PROTOBUF_C_TYPE_STRING: {
        size_t n = pt_pbgen_rand() % 9;
        char *s = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            s[i] = (char)(' ' + pt_pbgen_rand() % 95);
        s[n] = '\0';
        *(char **)p = s;
        return true;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        b->len = pt_pbgen_rand() % 9;
        b->data = b->len ? malloc(b->len) : NULL;
        for (size_t i = 0; i < b->len; i++)
            b->data[i] = (uint8_t)pt_pbgen_rand();
        return true;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        if (depth <= 0)
            return false;
        *(ProtobufCMessage **)p = pt_pbgen_message(f->descriptor, depth - 1);
        return true;
    }
    return false;
}

static void fill_message(const ProtobufCMessageDescriptor *d, ProtobufCMessage *m, int depth)
{
    char *base = (char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        void *p = base + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *c = (uint32_t *)(base + f->quantifier_offset);
            /* the first member decides for its whole oneof */
            bool first = true;
            for (unsigned j = 0; j < i; j++)
                first &= !((d->fields[j].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                           d->fields[j].quantifier_offset == f->quantifier_offset);
            if (!first)
                continue;
            unsigned members[32], n = 0;
            for (unsigned j = i; j < d->n_fields && n < 32; j++) {
                if ((d->fields[j].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                    d->fields[j].quantifier_offset == f->quantifier_offset)
                    members[n++] = j;
            }
            unsigned pick = (unsigned)(pt_pbgen_rand() % (n + 1));
            if (pick == n)
                continue;
            const ProtobufCFieldDescriptor *mf = &d->fields[members[pick]];
            if (fill_value(mf, base + mf->offset, depth))
                *c = mf->id;
            continue;
        }
        switch (f->label) {
        case PROTOBUF_C_LABEL_REPEATED: {
            size_t n = pt_pbgen_rand() % 4, es = pt_pbgen_elem_size(f->type);
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth <= 0)
                n = 0;
            void *arr = n ? calloc(n, es) : NULL;
            for (size_t k = 0; k < n; k++)
                fill_value(f, (char *)arr + k * es, depth);
            *(size_t *)(base + f->quantifier_offset) = n;
            *(void **)p = arr;
            break;
        }
        case PROTOBUF_C_LABEL_OPTIONAL:
            if (pt_pbgen_rand() & 1)
                break;
            if (fill_value(f, p, depth) && f->type != PROTOBUF_C_TYPE_STRING &&
                f->type != PROTOBUF_C_TYPE_MESSAGE)
                *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
            break;
        case PROTOBUF_C_LABEL_NONE:
            if (pt_pbgen_rand() % 4 == 0)
                break;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth <= 0)
                break;
            fill_value(f, p, depth);
            break;
        case PROTOBUF_C_LABEL_REQUIRED:
            fill_value(f, p, depth > 0 ? depth : 1);
            break;
        }
    }
}

/* ---- deep comparison of two messages with parallel descriptors ---------- */

bool pt_pbgen_value_equal(const ProtobufCFieldDescriptor *f, const void *a, const void *b)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT: {
        float x, y;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        return (isnan(x) && isnan(y)) || memcmp(a, b, 4) == 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        return (isnan(x) && isnan(y)) || memcmp(a, b, 8) == 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *x = *(char *const *)a, *y = *(char *const *)b;
        return (!x && !y) || (x && y && strcmp(x, y) == 0);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *x = a, *y = b;
        return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *x = *(ProtobufCMessage *const *)a;
        const ProtobufCMessage *y = *(ProtobufCMessage *const *)b;
        return (!x && !y) || (x && y && pt_pbgen_equal(x, y));
    }
    default:
        return memcmp(a, b, pt_pbgen_elem_size(f->type)) == 0;
    }
}

bool pt_pbgen_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    const ProtobufCMessageDescriptor *da = a->descriptor, *db = b->descriptor;
    if (da->n_fields != db->n_fields) {
        fprintf(stderr, "%s: field counts differ\n", da->name);
        return false;
    }
    const char *pa = (const char *)a, *pb = (const char *)b;
    for (unsigned i = 0; i < da->n_fields; i++) {
        const ProtobufCFieldDescriptor *fa = &da->fields[i], *fb = &db->fields[i];
        bool ok = fa->id == fb->id;
        if (ok && (fa->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            uint32_t ca = *(const uint32_t *)(pa + fa->quantifier_offset);
            uint32_t cb = *(const uint32_t *)(pb + fb->quantifier_offset);
            ok = ca == cb &&
                 (ca != fa->id || pt_pbgen_value_equal(fa, pa + fa->offset, pb + fb->offset));
        } else if (ok && fa->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t na = *(const size_t *)(pa + fa->quantifier_offset);
            size_t nb = *(const size_t *)(pb + fb->quantifier_offset);
            const char *xa = *(char *const *)(pa + fa->offset);
            const char *xb = *(char *const *)(pb + fb->offset);
            size_t es = pt_pbgen_elem_size(fa->type);
            ok = na == nb;
            for (size_t k = 0; ok && k < na; k++)
                ok = pt_pbgen_value_equal(fa, xa + k * es, xb + k * es);
        } else if (ok) {
            if (fa->label == PROTOBUF_C_LABEL_OPTIONAL && fa->type != PROTOBUF_C_TYPE_STRING &&
                fa->type != PROTOBUF_C_TYPE_MESSAGE)
                ok = *(const protobuf_c_boolean *)(pa + fa->quantifier_offset) ==
                     *(const protobuf_c_boolean *)(pb + fb->quantifier_offset);
            ok = ok && pt_pbgen_value_equal(fa, pa + fa->offset, pb + fb->offset);
        }
        if (!ok) {
            fprintf(stderr, "%s.%s differs\n", da->name, fa->name);
            return false;
        }
    }
    if (a->n_unknown_fields != b->n_unknown_fields) {
        fprintf(stderr, "%s: unknown field counts differ\n", da->name);
        return false;
    }
    for (unsigned i = 0; i < a->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *x = &a->unknown_fields[i], *y = &b->unknown_fields[i];
        if (x->tag != y->tag || x->wire_type != y->wire_type || x->len != y->len ||
            (x->len && memcmp(x->data, y->data, x->len) != 0)) {
            fprintf(stderr, "%s: unknown field %u differs\n", da->name, i);
            return false;
        }
    }
    return true;
}
