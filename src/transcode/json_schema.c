/*
 * What the JSON codec asks of a schema: field names (hook or protoc's
 * lowerCamelCase), map detection, lookups by number, by key and by enum
 * name, and which well-known type a message is.
 */
#include <stdlib.h>

#include "transcode/json_int.h"

static char upper(char ch)
{
    return ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
}

size_t pt_json_default_name(const ProtobufCFieldDescriptor *f, char *buf, size_t cap)
{
    size_t n = 0;
    bool cap_next = false;
    for (const char *s = f->name; *s; s++) {
        if (*s == '_') {
            cap_next = true;
            continue;
        }
        if (n < cap)
            buf[n] = cap_next ? upper(*s) : *s;
        n++;
        cap_next = false;
    }
    return n;
}

/* Does key equal the default JSON name of proto name `name`? */
static bool default_name_eq(const char *name, struct pt_str key)
{
    size_t k = 0;
    bool cap_next = false;
    for (const char *s = name; *s; s++) {
        if (*s == '_') {
            cap_next = true;
            continue;
        }
        if (k == key.len || key.ptr[k] != (cap_next ? upper(*s) : *s))
            return false;
        k++;
        cap_next = false;
    }
    return k == key.len;
}

static bool name_eq(const char *name, struct pt_str key)
{
    size_t i = 0;
    for (; i < key.len; i++)
        if (name[i] != key.ptr[i] || name[i] == '\0')
            return false;
    return name[i] == '\0';
}

struct pt_str jfield_name(struct jctx *c, const ProtobufCMessageDescriptor *m,
                          const ProtobufCFieldDescriptor *f, char *buf, size_t cap)
{
    if (c->opt.original_names)
        return pt_str_from_cstr(f->name);
    if (c->hooks->json_name) {
        struct pt_str s = c->hooks->json_name(c->hooks->ctx, m, f);
        if (s.ptr)
            return s;
    }
    size_t n = pt_json_default_name(f, buf, cap);
    return (struct pt_str){buf, n < cap ? n : cap};
}

bool pt_json_default_is_map(const ProtobufCMessageDescriptor *m, const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE ||
        !f->descriptor)
        return false;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    const ProtobufCFieldDescriptor *k, *v;
    if (jmap_entry_fields(e, &k, &v) != 0 || e->n_fields != 2 || strcmp(k->name, "key") != 0 ||
        strcmp(v->name, "value") != 0)
        return false;
    /* protoc names the entry <Parent>.<CamelCase(field)>Entry. */
    size_t plen = strlen(m->name);
    if (strncmp(e->name, m->name, plen) != 0 || e->name[plen] != '.')
        return false;
    const char *s = e->name + plen + 1;
    bool cap_next = true;
    for (const char *n = f->name; *n; n++) {
        if (*n == '_') {
            cap_next = true;
            continue;
        }
        if (*s++ != (cap_next ? upper(*n) : *n))
            return false;
        cap_next = false;
    }
    return strcmp(s, "Entry") == 0;
}

bool jfield_is_map(struct jctx *c, const ProtobufCMessageDescriptor *m,
                   const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    bool yes =
        c->hooks->is_map ? c->hooks->is_map(c->hooks->ctx, m, f) : pt_json_default_is_map(m, f);
    if (!yes)
        return false;
    /* Whatever the hook says, only a key/value entry can be read as one. */
    const ProtobufCFieldDescriptor *k, *v;
    return jmap_entry_fields(f->descriptor, &k, &v) == 0;
}

int jmap_entry_fields(const ProtobufCMessageDescriptor *entry, const ProtobufCFieldDescriptor **key,
                      const ProtobufCFieldDescriptor **value)
{
    *key = *value = NULL;
    if (!entry)
        return -1;
    for (unsigned i = 0; i < entry->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &entry->fields[i];
        if (f->id == 1)
            *key = f;
        else if (f->id == 2)
            *value = f;
    }
    if (!*key || !*value || (*key)->label == PROTOBUF_C_LABEL_REPEATED ||
        (*value)->label == PROTOBUF_C_LABEL_REPEATED)
        return -1;
    switch ((*key)->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
    case PROTOBUF_C_TYPE_ENUM:
        return -1;
    default:
        return 0;
    }
}

const ProtobufCFieldDescriptor *jfield_by_number(const ProtobufCMessageDescriptor *m,
                                                 uint32_t number, unsigned *hint)
{
    unsigned h = *hint;
    if (h < m->n_fields && m->fields[h].id == number) {
        *hint = h + 1;
        return &m->fields[h];
    }
    unsigned lo = 0, hi = m->n_fields;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        uint32_t id = m->fields[mid].id;
        if (id == number) {
            *hint = mid + 1;
            return &m->fields[mid];
        }
        if (id < number)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const ProtobufCFieldDescriptor *jfield_by_key(struct jctx *c, const ProtobufCMessageDescriptor *m,
                                              struct pt_str key, unsigned *hint)
{
    unsigned n = m->n_fields;
    if (n == 0 || key.len == 0)
        return NULL;
    /* JSON usually lists fields in declaration order: start after the last
     * match, and wrap around. */
    unsigned start = *hint < n ? *hint : 0;
    for (unsigned k = 0; k < n; k++) {
        unsigned i = start + k < n ? start + k : start + k - n;
        const ProtobufCFieldDescriptor *f = &m->fields[i];
        bool hit;
        if (c->hooks->json_name) {
            struct pt_str s = c->hooks->json_name(c->hooks->ctx, m, f);
            hit = s.ptr ? pt_str_eq(s, key) : default_name_eq(f->name, key);
        } else {
            hit = default_name_eq(f->name, key);
        }
        if (hit || name_eq(f->name, key)) {
            *hint = i + 1;
            return f;
        }
    }
    return NULL;
}

const ProtobufCEnumValue *jenum_by_name(const ProtobufCEnumDescriptor *e, struct pt_str name)
{
    unsigned lo = 0, hi = e->n_value_names;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const char *s = e->values_by_name[mid].name;
        size_t sl = strlen(s);
        int r = memcmp(s, name.ptr, sl < name.len ? sl : name.len);
        if (r == 0)
            r = sl < name.len ? -1 : sl > name.len ? 1 : 0;
        if (r == 0) {
            unsigned idx = e->values_by_name[mid].index;
            return idx < e->n_values ? &e->values[idx] : NULL;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Not protobuf_c_enum_descriptor_get_value(): libprotobuf-c 1.4's range
 * search computes start_value + length in int, which overflows for a range
 * starting at INT32_MAX, so a value of 2147483647 is never found. values[]
 * is sorted by number (protoc-c and the pool both emit it so). */
const ProtobufCEnumValue *jenum_by_number(const ProtobufCEnumDescriptor *e, int32_t v)
{
    unsigned lo = 0, hi = e->n_values;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (e->values[mid].value == v)
            return &e->values[mid];
        if (e->values[mid].value < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int jwire_type(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return WT_I32;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return WT_I64;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return WT_LEN;
    default:
        return WT_VARINT;
    }
}

const char *jtype_name(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return "int32";
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return "int64";
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return "uint32";
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return "uint64";
    case PROTOBUF_C_TYPE_FLOAT:
        return "float";
    case PROTOBUF_C_TYPE_DOUBLE:
        return "double";
    case PROTOBUF_C_TYPE_BOOL:
        return "bool";
    case PROTOBUF_C_TYPE_ENUM:
        return "enum";
    case PROTOBUF_C_TYPE_STRING:
        return "string";
    case PROTOBUF_C_TYPE_BYTES:
        return "bytes";
    case PROTOBUF_C_TYPE_MESSAGE:
        return "message";
    }
    return "value";
}

enum jwkt jwkt_kind(const ProtobufCMessageDescriptor *m, ProtobufCType *wrapped)
{
    static const char prefix[] = "google.protobuf.";
    if (!m || strncmp(m->name, prefix, sizeof(prefix) - 1) != 0)
        return JWKT_NONE;
    const char *n = m->name + sizeof(prefix) - 1;
    static const struct {
        const char *name;
        enum jwkt kind;
        ProtobufCType wrapped;
    } table[] = {
        {"Any", JWKT_ANY, 0},
        {"Timestamp", JWKT_TIMESTAMP, 0},
        {"Duration", JWKT_DURATION, 0},
        {"FieldMask", JWKT_FIELD_MASK, 0},
        {"Struct", JWKT_STRUCT, 0},
        {"Value", JWKT_VALUE, 0},
        {"ListValue", JWKT_LIST_VALUE, 0},
        {"DoubleValue", JWKT_WRAPPER, PROTOBUF_C_TYPE_DOUBLE},
        {"FloatValue", JWKT_WRAPPER, PROTOBUF_C_TYPE_FLOAT},
        {"Int64Value", JWKT_WRAPPER, PROTOBUF_C_TYPE_INT64},
        {"UInt64Value", JWKT_WRAPPER, PROTOBUF_C_TYPE_UINT64},
        {"Int32Value", JWKT_WRAPPER, PROTOBUF_C_TYPE_INT32},
        {"UInt32Value", JWKT_WRAPPER, PROTOBUF_C_TYPE_UINT32},
        {"BoolValue", JWKT_WRAPPER, PROTOBUF_C_TYPE_BOOL},
        {"StringValue", JWKT_WRAPPER, PROTOBUF_C_TYPE_STRING},
        {"BytesValue", JWKT_WRAPPER, PROTOBUF_C_TYPE_BYTES},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(n, table[i].name) == 0) {
            if (wrapped)
                *wrapped = table[i].wrapped;
            return table[i].kind;
        }
    }
    return JWKT_NONE;
}
