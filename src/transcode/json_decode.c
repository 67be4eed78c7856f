/*
 * pt_json_decode: JSON text -> protobuf wire bytes, in one pass.
 *
 * The tokenizer (json_lex.c) pulls values; the descriptor says what each one
 * must be; wire bytes are appended to the output as soon as a value is
 * read. Fields are written in JSON order (any order is valid protobuf).
 * A nested message's length is not known before its body: one byte is
 * reserved and widened afterwards (wlen_end) - one memmove per nested body
 * of 128 bytes or more, cheaper than measuring every message in a first
 * pass.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "transcode/json_int.h"

/* Wire value (varint value, or fixed bits) of an integer of type t; -1 out of range. */
static int int_to_wire(ProtobufCType t, bool neg, uint64_t mag, uint64_t *w)
{
    int64_t s;
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        if (neg ? mag > 0x80000000ull : mag > 0x7fffffffull)
            return -1;
        s = neg ? -(int64_t)mag : (int64_t)mag;
        if (t == PROTOBUF_C_TYPE_SINT32)
            *w = zigzag32((int32_t)s);
        else if (t == PROTOBUF_C_TYPE_SFIXED32)
            *w = (uint32_t)(int32_t)s;
        else
            *w = (uint64_t)s; /* sign-extended, as protobuf writes negative int32 */
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((neg && mag != 0) || mag > 0xffffffffull)
            return -1;
        *w = mag;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (neg ? mag > 0x8000000000000000ull : mag > 0x7fffffffffffffffull)
            return -1;
        s = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        *w = t == PROTOBUF_C_TYPE_SINT64 ? zigzag64(s) : (uint64_t)s;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (neg && mag != 0)
            return -1;
        *w = mag;
        return 0;
    default:
        return -1;
    }
}

static int put_wire(struct jctx *c, ProtobufCType t, uint64_t w)
{
    switch (jwire_type(t)) {
    case WT_I32:
        return wput_fixed32(c, (uint32_t)w);
    case WT_I64:
        return wput_fixed64(c, w);
    default:
        return wput_varint(c, w);
    }
}

/* An integer of type t from number text (a JSON number, or the contents of
 * a JSON string) into its wire value. */
static int text_to_int(struct jdec *d, ProtobufCType t, struct pt_str text, size_t at, uint64_t *w)
{
    bool neg;
    uint64_t mag;
    if (!json_number_syntax(text.ptr, text.len))
        return jctx_fail(&d->c, PT_ERR_INVALID, at, "invalid %s \"%.*s\"", jtype_name(t),
                         (int)(text.len > 32 ? 32 : text.len), text.ptr);
    switch (num_to_int(text.ptr, text.len, &neg, &mag)) {
    case NUM_INT_OK:
        break;
    case NUM_INT_FRACTION:
        return jctx_fail(&d->c, PT_ERR_INVALID, at, "%s must be an integer, got %.*s",
                         jtype_name(t), (int)(text.len > 32 ? 32 : text.len), text.ptr);
    default:
        return jctx_fail(&d->c, PT_ERR_INVALID, at, "%s out of range", jtype_name(t));
    }
    if (int_to_wire(t, neg, mag, w) != 0)
        return jctx_fail(&d->c, PT_ERR_INVALID, at, "%s out of range", jtype_name(t));
    return 0;
}

/* Reads an integer given as a JSON number or a string. */
static int read_int(struct jdec *d, ProtobufCType t, uint64_t *w)
{
    size_t at = jdec_off(d);
    enum jtok k = jlex_peek(d);
    struct pt_str text;
    if (k == JT_NUM) {
        TRY(jlex_number(d, &text));
    } else if (k == JT_STR) {
        struct jstr s;
        TRY(jlex_string(d, &s));
        TRY(jstr_get(d, &s, &text));
    } else {
        return jdec_type_error(d, "a number", k);
    }
    return text_to_int(d, t, text, at, w);
}

static int read_float(struct jdec *d, bool is_float, double *v)
{
    size_t at = jdec_off(d);
    enum jtok k = jlex_peek(d);
    struct pt_str text;
    if (k == JT_NUM) {
        TRY(jlex_number(d, &text));
    } else if (k == JT_STR) {
        struct jstr s;
        TRY(jlex_string(d, &s));
        TRY(jstr_get(d, &s, &text));
        if (pt_str_eq(text, PT_STR("NaN"))) {
            *v = NAN;
            return 0;
        }
        if (pt_str_eq(text, PT_STR("Infinity"))) {
            *v = INFINITY;
            return 0;
        }
        if (pt_str_eq(text, PT_STR("-Infinity"))) {
            *v = -INFINITY;
            return 0;
        }
        if (!json_number_syntax(text.ptr, text.len))
            return jctx_fail(&d->c, PT_ERR_INVALID, at, "invalid number \"%.*s\"",
                             (int)(text.len > 32 ? 32 : text.len), text.ptr);
    } else {
        return jdec_type_error(d, "a number", k);
    }
    /* A float is read as a float (no double rounding): what rounds to a
     * finite float is accepted, e.g. 3.4028235e38, FLT_MAX as printed. */
    int rc;
    if (is_float) {
        float f;
        rc = num_to_float(text.ptr, text.len, &f);
        *v = f;
    } else {
        rc = num_to_double(text.ptr, text.len, v);
    }
    if (rc != 0)
        return jctx_fail(&d->c, PT_ERR_INVALID, at, "%s out of range (use \"Infinity\")",
                         is_float ? "float" : "double");
    return 0;
}

/* A string field's bytes (tag first when tag_field != 0). */
static int write_string(struct jdec *d, const struct jstr *s, uint32_t tag_field)
{
    struct jctx *c = &d->c;
    if (tag_field)
        TRY(wput_tag(c, tag_field, WT_LEN));
    if (!s->escaped) {
        TRY(wput_varint(c, s->len));
        return jout_put(c, s->raw, s->len);
    }
    size_t pos;
    TRY(wlen_begin(c, &pos));
    TRY(jout_reserve(c, s->len));
    c->out->len += jstr_decode(s, c->out->data + c->out->len);
    return wlen_end(c, pos);
}

static int write_bytes(struct jdec *d, struct pt_str b64, size_t at, uint32_t tag_field)
{
    struct jctx *c = &d->c;
    if (tag_field)
        TRY(wput_tag(c, tag_field, WT_LEN));
    size_t pos;
    TRY(wlen_begin(c, &pos));
    TRY(jout_reserve(c, b64.len / 4 * 3 + 3));
    long n = base64_decode(b64.ptr, b64.len, (uint8_t *)c->out->data + c->out->len);
    if (n < 0)
        return jctx_fail(c, PT_ERR_INVALID, at, "invalid base64 in bytes value");
    c->out->len += (size_t)n;
    return wlen_end(c, pos);
}

int jdec_scalar(struct jdec *d, const ProtobufCFieldDescriptor *f, bool skip_default,
                uint32_t tag_field)
{
    struct jctx *c = &d->c;
    size_t at = jdec_off(d);
    ProtobufCType t = f->type;
    uint64_t w = 0;
    switch (t) {
    case PROTOBUF_C_TYPE_BOOL: {
        enum jtok k = jlex_peek(d);
        if (k != JT_TRUE && k != JT_FALSE)
            return jdec_type_error(d, "true or false", k);
        TRY(jlex_literal(d, k));
        w = k == JT_TRUE;
        break;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        enum jtok k = jlex_peek(d);
        if (k == JT_NUM) {
            TRY(read_int(d, t, &w));
            break;
        }
        if (k != JT_STR)
            return jdec_type_error(d, "an enum name or number", k);
        struct jstr s;
        struct pt_str name;
        TRY(jlex_string(d, &s));
        TRY(jstr_get(d, &s, &name));
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        const ProtobufCEnumValue *ev = ed ? jenum_by_name(ed, name) : NULL;
        if (ev) {
            w = (uint64_t)(int64_t)ev->value;
            break;
        }
        bool neg;
        uint64_t mag;
        if (json_number_syntax(name.ptr, name.len) &&
            num_to_int(name.ptr, name.len, &neg, &mag) == NUM_INT_OK &&
            int_to_wire(t, neg, mag, &w) == 0)
            break;
        if (c->opt.ignore_unknown)
            return 0;
        return jctx_fail(c, PT_ERR_INVALID, at, "unknown value \"%.*s\" for enum %s",
                         (int)(name.len > 64 ? 64 : name.len), name.ptr, ed ? ed->name : "?");
    }
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        TRY(read_float(d, t == PROTOBUF_C_TYPE_FLOAT, &v));
        if (t == PROTOBUF_C_TYPE_FLOAT) {
            float fv = (float)v;
            uint32_t bits;
            memcpy(&bits, &fv, 4);
            w = bits;
        } else {
            memcpy(&w, &v, 8);
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        enum jtok k = jlex_peek(d);
        if (k != JT_STR)
            return jdec_type_error(d, "a string", k);
        struct jstr s;
        TRY(jlex_string(d, &s));
        if (skip_default && s.len == 0)
            return 1;
        TRY(write_string(d, &s, tag_field));
        return 1;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        enum jtok k = jlex_peek(d);
        if (k != JT_STR)
            return jdec_type_error(d, "a base64 string", k);
        struct jstr s;
        struct pt_str b64;
        TRY(jlex_string(d, &s));
        TRY(jstr_get(d, &s, &b64));
        if (skip_default && b64.len == 0)
            return 1;
        TRY(write_bytes(d, b64, at, tag_field));
        return 1;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return jctx_fail(c, PT_ERR_INTERNAL, at, "message where a scalar was expected");
    default:
        TRY(read_int(d, t, &w));
        break;
    }
    if (skip_default && w == 0)
        return 1;
    if (tag_field)
        TRY(wput_tag(c, tag_field, jwire_type(t)));
    TRY(put_wire(c, t, w));
    return 1;
}

/* google.protobuf.Value's null, as a field value: kind null_value = 0. */
int jdec_value_null(struct jctx *c, uint32_t tag_field)
{
    TRY(wput_tag(c, tag_field, WT_LEN));
    static const uint8_t null_value[] = {2, 0x08, 0x00};
    return jout_put(c, null_value, sizeof(null_value));
}

static bool is_value_msg(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor &&
           jwkt_kind(f->descriptor, NULL) == JWKT_VALUE;
}

static int dec_submessage(struct jdec *d, const ProtobufCFieldDescriptor *f, uint32_t tag_field)
{
    size_t pos;
    TRY(wput_tag(&d->c, tag_field, WT_LEN));
    TRY(wlen_begin(&d->c, &pos));
    TRY(jdec_message(d, f->descriptor));
    return wlen_end(&d->c, pos);
}

static int dec_map_key(struct jdec *d, const ProtobufCFieldDescriptor *kf, struct pt_str key,
                       size_t at)
{
    struct jctx *c = &d->c;
    uint64_t w;
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING:
        TRY(wput_tag(c, 1, WT_LEN));
        TRY(wput_varint(c, key.len));
        return jout_put(c, key.ptr, key.len);
    case PROTOBUF_C_TYPE_BOOL:
        if (pt_str_eq(key, PT_STR("true")))
            w = 1;
        else if (pt_str_eq(key, PT_STR("false")))
            w = 0;
        else
            return jctx_fail(c, PT_ERR_INVALID, at, "map key must be \"true\" or \"false\"");
        break;
    default:
        TRY(text_to_int(d, kf->type, key, at, &w));
        break;
    }
    TRY(wput_tag(c, 1, jwire_type(kf->type)));
    return put_wire(c, kf->type, w);
}

int jdec_map(struct jdec *d, const ProtobufCFieldDescriptor *f)
{
    struct jctx *c = &d->c;
    const ProtobufCFieldDescriptor *kf, *vf;
    jmap_entry_fields(f->descriptor, &kf, &vf); /* checked by jfield_is_map */
    TRY(jdec_expect(d, JT_OBJ, "an object (map)"));
    TRY(jlex_obj_begin(d));
    size_t kbase = d->nkeys;
    bool first = true;
    struct pt_str key;
    struct jstr raw;
    int r;
    while ((r = jlex_obj_next(d, &first, &key, &raw)) > 0) {
        size_t at = (size_t)(raw.raw - 1 - d->start);
        jkeys_push(d, key);
        jpath_push(c, JSEG_KEY, key.ptr, key.len, 0);
        size_t entry_start = c->out->len, pos;
        TRY(wput_tag(c, f->id, WT_LEN));
        TRY(wlen_begin(c, &pos));
        TRY(dec_map_key(d, kf, key, at));
        enum jtok k = jlex_peek(d);
        if (k == JT_NULL) {
            if (!is_value_msg(vf))
                return jctx_fail(c, PT_ERR_INVALID, jdec_off(d), "null is not a valid map value");
            TRY(jlex_literal(d, k));
            TRY(jdec_value_null(c, 2));
        } else if (vf->type == PROTOBUF_C_TYPE_MESSAGE) {
            TRY(dec_submessage(d, vf, 2));
        } else {
            int w = jdec_scalar(d, vf, false, 2);
            TRY(w);
            if (w == 0) { /* unknown enum name, ignored: drop the entry */
                c->out->len = entry_start;
                jpath_pop(c);
                continue;
            }
        }
        TRY(wlen_end(c, pos));
        jpath_pop(c);
    }
    TRY(r);
    return jkeys_check(d, kbase, jdec_off(d));
}

static bool packable(ProtobufCType t)
{
    return t != PROTOBUF_C_TYPE_STRING && t != PROTOBUF_C_TYPE_BYTES &&
           t != PROTOBUF_C_TYPE_MESSAGE;
}

int jdec_repeated(struct jdec *d, const ProtobufCFieldDescriptor *f)
{
    struct jctx *c = &d->c;
    TRY(jdec_expect(d, JT_ARR, "an array"));
    TRY(jlex_arr_begin(d));
    bool packed = (f->flags & PROTOBUF_C_FIELD_FLAG_PACKED) && packable(f->type);
    size_t tag_pos = c->out->len, pos = 0;
    if (packed) {
        TRY(wput_tag(c, f->id, WT_LEN));
        TRY(wlen_begin(c, &pos));
    }
    jpath_push(c, JSEG_INDEX, NULL, 0, 0);
    bool first = true, any = false;
    size_t i = 0;
    int r;
    while ((r = jlex_arr_next(d, &first)) > 0) {
        jpath_set_index(c, i++);
        enum jtok k = jlex_peek(d);
        if (k == JT_NULL) {
            if (!is_value_msg(f))
                return jctx_fail(c, PT_ERR_INVALID, jdec_off(d),
                                 "null is not allowed in a repeated field");
            TRY(jlex_literal(d, k));
            TRY(jdec_value_null(c, f->id));
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            TRY(dec_submessage(d, f, f->id));
        } else {
            int w = jdec_scalar(d, f, false, packed ? 0 : f->id);
            TRY(w);
            any |= w > 0;
        }
    }
    TRY(r);
    jpath_pop(c);
    if (packed) {
        if (!any)
            c->out->len = tag_pos; /* [] writes nothing */
        else
            TRY(wlen_end(c, pos));
    }
    return 0;
}

/* A null JSON value for field f: clears it, except that Value and NullValue
 * fields hold a null. */
static int dec_null(struct jdec *d, const ProtobufCFieldDescriptor *f)
{
    TRY(jlex_literal(d, JT_NULL));
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return 0;
    if (is_value_msg(f))
        return jdec_value_null(&d->c, f->id);
    if (f->type == PROTOBUF_C_TYPE_ENUM && f->descriptor &&
        strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name,
               "google.protobuf.NullValue") == 0 &&
        jfield_has_presence(f)) {
        TRY(wput_tag(&d->c, f->id, WT_VARINT));
        return wput_varint(&d->c, 0);
    }
    return 0;
}

static bool is_null_holder(const ProtobufCFieldDescriptor *f)
{
    return is_value_msg(f) || (f->type == PROTOBUF_C_TYPE_ENUM && f->descriptor &&
                               strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name,
                                      "google.protobuf.NullValue") == 0);
}

int jdec_regular_fields(struct jdec *d, const ProtobufCMessageDescriptor *m, bool any_body)
{
    struct jctx *c = &d->c;
    TRY(jdec_expect(d, JT_OBJ, "an object"));
    TRY(jlex_obj_begin(d));
    /* Fields seen, and oneof members set, in this object. */
    uint64_t small[8];
    size_t words = (m->n_fields + 63) / 64 * 2;
    uint64_t *seen = words <= 8 ? small : pt_arena_alloc(&c->arena, words * 8);
    if (!seen)
        return jctx_fail(c, PT_ERR_LIMIT, jdec_off(d), "out of scratch memory");
    memset(seen, 0, words * 8);
    uint64_t *oneof_set = seen + words / 2;
    size_t kbase = d->nkeys;
    unsigned hint = 0;
    bool first = true;
    struct pt_str key;
    struct jstr raw;
    int r;
    while ((r = jlex_obj_next(d, &first, &key, &raw)) > 0) {
        size_t at = (size_t)(raw.raw - 1 - d->start);
        if (any_body && pt_str_eq(key, PT_STR("@type"))) {
            TRY(jlex_skip(d)); /* read by the Any decoder */
            continue;
        }
        const ProtobufCFieldDescriptor *f = jfield_by_key(c, m, key, &hint);
        if (!f) {
            if (!c->opt.ignore_unknown)
                return jctx_fail(c, PT_ERR_INVALID, at, "unknown field \"%.*s\" in %s",
                                 (int)(key.len > 64 ? 64 : key.len), key.ptr, m->name);
            jkeys_push(d, key);
            jpath_push(c, JSEG_FIELD, key.ptr, key.len, 0);
            TRY(jlex_skip(d));
            jpath_pop(c);
            continue;
        }
        size_t fi = (size_t)(f - m->fields);
        jpath_push(c, JSEG_FIELD, key.ptr, key.len, 0);
        if (seen[fi / 64] & (1ull << (fi % 64)))
            return jctx_fail(c, PT_ERR_INVALID, at,
                             "field given twice (as \"%s\" or its JSON name)", f->name);
        seen[fi / 64] |= 1ull << (fi % 64);
        enum jtok k = jlex_peek(d);
        bool counts = k != JT_NULL || is_null_holder(f);
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && counts) {
            for (unsigned j = 0; j < m->n_fields; j++) {
                if ((oneof_set[j / 64] & (1ull << (j % 64))) && jfield_same_oneof(f, &m->fields[j]))
                    return jctx_fail(c, PT_ERR_INVALID, at,
                                     "oneof already set by \"%s\"; only one member may be set",
                                     m->fields[j].name);
            }
            oneof_set[fi / 64] |= 1ull << (fi % 64);
        }
        if (k == JT_NULL) {
            TRY(dec_null(d, f));
        } else if (jfield_is_map(c, m, f)) {
            TRY(jdec_map(d, f));
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            TRY(jdec_repeated(d, f));
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            TRY(dec_submessage(d, f, f->id));
        } else {
            TRY(jdec_scalar(d, f, !jfield_has_presence(f), f->id));
        }
        jpath_pop(c);
    }
    TRY(r);
    return jkeys_check(d, kbase, jdec_off(d));
}

int jdec_message(struct jdec *d, const ProtobufCMessageDescriptor *m)
{
    if (!m)
        return jctx_fail(&d->c, PT_ERR_INVALID, jdec_off(d), "message type without descriptor");
    ProtobufCType wrapped = 0;
    enum jwkt kind = jwkt_kind(m, &wrapped);
    if (kind != JWKT_NONE)
        return jdec_wkt(d, m, kind, wrapped);
    return jdec_regular_fields(d, m, false);
}

int pt_json_decode(const ProtobufCMessageDescriptor *desc, struct pt_str json,
                   const struct pt_json_hooks *hooks, const struct pt_json_options *opts,
                   struct pt_json_out *out, struct pt_json_error *err)
{
    struct jdec d;
    jctx_init(&d.c, hooks, opts, out, err);
    d.start = d.p = json.ptr ? json.ptr : "";
    d.end = d.start + (json.ptr ? json.len : 0);
    d.keys = NULL;
    d.nkeys = d.keys_cap = 0;
    if (jdec_message(&d, desc) == 0 && jlex_peek(&d) != JT_ERR)
        jctx_fail(&d.c, PT_ERR_INVALID, jdec_off(&d), "unexpected data after the JSON value");
    else if (d.c.status == 0 && d.p != d.end)
        jctx_fail(&d.c, PT_ERR_INVALID, jdec_off(&d), "unexpected data after the JSON value");
    free(d.keys);
    return jctx_finish(&d.c);
}
