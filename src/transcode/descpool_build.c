/*
 * transcode/descpool_build.c - FileDescriptorProtos -> protobuf-c
 * descriptors: enums, message layouts, fields, defaults, services.
 *
 * Layouts follow protoc-c 1.4's generated structs, because the same
 * libprotobuf-c code must read them and because the tests hold them to the
 * generated structs byte for byte:
 *
 *   struct Msg {
 *     ProtobufCMessage base;
 *     for each field not in a real oneof, in declaration order:
 *       repeated:                   size_t n_f;  T *f;
 *       optional, not string/msg:   protobuf_c_boolean has_f;  T f;
 *       otherwise:                  T f;
 *     for each real oneof, in declaration order:
 *       uint32_t (enum) f_case;  union { T member; ... };
 *   };
 *
 * with natural C alignment of each member and of the whole.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/errors.h"
#include "transcode/descpool_int.h"

#define NOMEM(b) dp_limit((b), "descriptor pool exceeds %zu bytes of memory", (b)->lim.max_memory)

/* FieldDescriptorProto.Type */
enum {
    FT_DOUBLE = 1,
    FT_FLOAT,
    FT_INT64,
    FT_UINT64,
    FT_INT32,
    FT_FIXED64,
    FT_FIXED32,
    FT_BOOL,
    FT_STRING,
    FT_GROUP,
    FT_MESSAGE,
    FT_BYTES,
    FT_UINT32,
    FT_ENUM,
    FT_SFIXED32,
    FT_SFIXED64,
    FT_SINT32,
    FT_SINT64,
};

/* ---- names --------------------------------------------------------------- */

/* "pkg.sub.Outer.Inner" -> "Pkg__Sub__Outer__Inner" (protoc-c's C type name). */
static char *c_name(struct dp_build *b, const char *full)
{
    size_t n = strlen(full), dots = 0;
    for (size_t i = 0; i < n; i++)
        dots += full[i] == '.';
    char *s = pt_arena_alloc(&b->pool->arena, n + dots + 1);
    if (!s)
        return NULL;
    size_t k = 0;
    bool start = true;
    for (size_t i = 0; i < n; i++) {
        if (full[i] == '.') {
            s[k++] = '_';
            s[k++] = '_';
            start = true;
            continue;
        }
        s[k++] = start && full[i] >= 'a' && full[i] <= 'z' ? (char)(full[i] - 32) : full[i];
        start = false;
    }
    s[k] = '\0';
    return s;
}

/* "pkg.FooBar" + "__" + value -> "PKG__FOO_BAR__VALUE" (protoc-c's enum
 * value constants). */
static char *c_value_name(struct dp_build *b, const char *full, const char *value)
{
    size_t n = strlen(full), lv = strlen(value);
    char *s = pt_arena_alloc(&b->pool->arena, 2 * n + 3 + lv);
    if (!s)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = full[i];
        if (c == '.') {
            s[k++] = '_';
            s[k++] = '_';
            continue;
        }
        if (c >= 'A' && c <= 'Z' && i > 0 && full[i - 1] >= 'a' && full[i - 1] <= 'z')
            s[k++] = '_';
        s[k++] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
    }
    s[k++] = '_';
    s[k++] = '_';
    memcpy(s + k, value, lv + 1);
    return s;
}

/* protoc's default json_name: drop '_' and upper-case the letter after it. */
static char *json_name(struct dp_build *b, const char *name)
{
    char *s = pt_arena_alloc(&b->pool->arena, strlen(name) + 1);
    if (!s)
        return NULL;
    size_t k = 0;
    bool up = false;
    for (const char *p = name; *p; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        s[k++] = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
        up = false;
    }
    s[k] = '\0';
    return s;
}

static const char *package_of(const struct dp_file *f)
{
    return f->fd->package ? f->fd->package : "";
}

/* Resolve a type name as protoc does: ".a.b.C" is absolute; a relative name
 * is tried in the scope, then in each enclosing scope out to the root. */
static const struct dp_sym *resolve(struct dp_build *b, const char *scope, const char *tn)
{
    if (!tn || !tn[0])
        return NULL;
    if (tn[0] == '.')
        return dp_sym_find(b->pool, tn + 1, strlen(tn + 1));
    size_t ls = strlen(scope), lt = strlen(tn);
    char *buf = pt_xmalloc(ls + lt + 2);
    const struct dp_sym *s = NULL;
    for (;;) {
        size_t k = 0;
        if (ls) {
            memcpy(buf, scope, ls);
            buf[ls] = '.';
            k = ls + 1;
        }
        memcpy(buf + k, tn, lt);
        s = dp_sym_find(b->pool, buf, k + lt);
        if (s || ls == 0)
            break;
        while (ls > 0 && scope[ls - 1] != '.')
            ls--;
        if (ls > 0)
            ls--; /* drop the dot */
    }
    free(buf);
    return s;
}

/* ---- enums --------------------------------------------------------------- */

struct eval {
    int32_t number;
    size_t decl;
    const char *name;
};

static int cmp_eval_number(const void *a, const void *b)
{
    const struct eval *x = a, *y = b;
    if (x->number != y->number)
        return x->number < y->number ? -1 : 1;
    return x->decl < y->decl ? -1 : x->decl > y->decl;
}

static int cmp_value_index(const void *a, const void *b)
{
    return strcmp(((const ProtobufCEnumValueIndex *)a)->name,
                  ((const ProtobufCEnumValueIndex *)b)->name);
}

static int build_enum(struct dp_build *b, size_t idx)
{
    const struct dp_benum *be = &b->enums[idx];
    const Google__Protobuf__EnumDescriptorProto *ep = be->ep;
    size_t n = ep->n_value;
    ProtobufCEnumDescriptor *d = dp_alloc(b, sizeof(*d));
    if (!d)
        return NOMEM(b);
    b->pool->enums[idx] = d;
    d->magic = PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC;
    d->name = be->full;
    d->short_name = dp_strdup(b, ep->name);
    d->c_name = c_name(b, be->full);
    d->package_name = dp_strdup(b, package_of(be->file));
    if (!d->short_name || !d->c_name || !d->package_name)
        return NOMEM(b);

    struct eval *ev = pt_xcalloc(n ? n : 1, sizeof(*ev));
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const Google__Protobuf__EnumValueDescriptorProto *vp = ep->value[i];
        if (!vp->name || !vp->name[0] || strchr(vp->name, '.'))
            rc = dp_fail(b, "%s: enum %s: value #%zu has no valid name", be->file->name, be->full,
                         i);
        ev[i] = (struct eval){vp->number, i, vp->name};
    }
    if (rc) {
        free(ev);
        return rc;
    }
    qsort(ev, n, sizeof(*ev), cmp_eval_number);
    /* values: one per distinct number (the first declared name wins, as in
     * protoc-c); aliases appear only in values_by_name. */
    size_t nu = 0;
    for (size_t i = 0; i < n; i++)
        nu += i == 0 || ev[i].number != ev[i - 1].number;
    ProtobufCEnumValue *vals = dp_alloc(b, nu * sizeof(*vals));
    ProtobufCEnumValueIndex *byname = dp_alloc(b, n * sizeof(*byname));
    if (!vals || !byname) {
        free(ev);
        return NOMEM(b);
    }
    size_t u = 0, nranges = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        bool first = i == 0 || ev[i].number != ev[i - 1].number;
        if (first) {
            vals[u].name = dp_strdup(b, ev[i].name);
            vals[u].c_name = c_value_name(b, be->full, ev[i].name);
            vals[u].value = ev[i].number;
            if (!vals[u].name || !vals[u].c_name)
                rc = NOMEM(b);
            if (u == 0 || (int64_t)vals[u].value != (int64_t)vals[u - 1].value + 1)
                nranges++;
            u++;
        }
        byname[i].name = dp_strdup(b, ev[i].name);
        byname[i].index = (unsigned)(u - 1);
        if (!byname[i].name)
            rc = NOMEM(b);
    }
    free(ev);
    if (rc)
        return rc;
    qsort(byname, n, sizeof(*byname), cmp_value_index);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(byname[i - 1].name, byname[i].name) == 0)
            return dp_fail(b, "%s: enum %s: value %s declared twice", be->file->name, be->full,
                           byname[i].name);
    }
    ProtobufCIntRange *ranges = dp_alloc(b, (nranges + 1) * sizeof(*ranges));
    if (!ranges)
        return NOMEM(b);
    size_t r = 0;
    for (size_t i = 0; i < nu; i++) {
        if (i == 0 || (int64_t)vals[i].value != (int64_t)vals[i - 1].value + 1)
            ranges[r++] = (ProtobufCIntRange){vals[i].value, (unsigned)i};
    }
    ranges[r] = (ProtobufCIntRange){0, (unsigned)nu};
    d->n_values = (unsigned)nu;
    d->values = vals;
    d->n_value_names = (unsigned)n;
    d->values_by_name = byname;
    d->n_value_ranges = (unsigned)nranges;
    d->value_ranges = ranges;
    return 0;
}

int dp_build_enums(struct dp_build *b)
{
    b->pool->enums = dp_alloc(b, b->nenums * sizeof(*b->pool->enums));
    if (!b->pool->enums)
        return NOMEM(b);
    b->pool->nenums = b->nenums;
    for (size_t i = 0; i < b->nenums; i++) {
        int rc = build_enum(b, i);
        if (rc)
            return rc;
    }
    return 0;
}

/* Value of the enum value called `name`, false when there is none. */
static bool enum_value(const ProtobufCEnumDescriptor *d, const char *name, int32_t *out)
{
    size_t lo = 0, hi = d->n_value_names;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->values_by_name[mid].name, name);
        if (c == 0) {
            *out = d->values[d->values_by_name[mid].index].value;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* ---- field types and defaults -------------------------------------------- */

static bool scalar_type(int ft, ProtobufCType *t)
{
    static const ProtobufCType map[] = {
        [FT_DOUBLE] = PROTOBUF_C_TYPE_DOUBLE,     [FT_FLOAT] = PROTOBUF_C_TYPE_FLOAT,
        [FT_INT64] = PROTOBUF_C_TYPE_INT64,       [FT_UINT64] = PROTOBUF_C_TYPE_UINT64,
        [FT_INT32] = PROTOBUF_C_TYPE_INT32,       [FT_FIXED64] = PROTOBUF_C_TYPE_FIXED64,
        [FT_FIXED32] = PROTOBUF_C_TYPE_FIXED32,   [FT_BOOL] = PROTOBUF_C_TYPE_BOOL,
        [FT_STRING] = PROTOBUF_C_TYPE_STRING,     [FT_BYTES] = PROTOBUF_C_TYPE_BYTES,
        [FT_UINT32] = PROTOBUF_C_TYPE_UINT32,     [FT_SFIXED32] = PROTOBUF_C_TYPE_SFIXED32,
        [FT_SFIXED64] = PROTOBUF_C_TYPE_SFIXED64, [FT_SINT32] = PROTOBUF_C_TYPE_SINT32,
        [FT_SINT64] = PROTOBUF_C_TYPE_SINT64,
    };
    if (ft < FT_DOUBLE || ft > FT_SINT64 || ft == FT_GROUP || ft == FT_MESSAGE || ft == FT_ENUM)
        return false;
    *t = map[ft];
    return true;
}

static void type_layout(ProtobufCType t, size_t *size, size_t *align)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        *size = sizeof(int32_t), *align = alignof(int32_t);
        return;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        *size = sizeof(int64_t), *align = alignof(int64_t);
        return;
    case PROTOBUF_C_TYPE_FLOAT:
        *size = sizeof(float), *align = alignof(float);
        return;
    case PROTOBUF_C_TYPE_DOUBLE:
        *size = sizeof(double), *align = alignof(double);
        return;
    case PROTOBUF_C_TYPE_BOOL:
        *size = sizeof(protobuf_c_boolean), *align = alignof(protobuf_c_boolean);
        return;
    case PROTOBUF_C_TYPE_ENUM: /* generated enums are forced to int size */
        *size = sizeof(int), *align = alignof(int);
        return;
    case PROTOBUF_C_TYPE_BYTES:
        *size = sizeof(ProtobufCBinaryData), *align = alignof(ProtobufCBinaryData);
        return;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
    default:
        *size = sizeof(void *), *align = alignof(void *);
        return;
    }
}

static bool packable(ProtobufCType t)
{
    return t != PROTOBUF_C_TYPE_STRING && t != PROTOBUF_C_TYPE_BYTES &&
           t != PROTOBUF_C_TYPE_MESSAGE;
}

static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (s[0] == '-' || s[0] == '+')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (strcmp(s, "inf") == 0 || strcmp(s, "+inf") == 0) {
        *out = __builtin_inf();
        return true;
    }
    if (strcmp(s, "-inf") == 0) {
        *out = -__builtin_inf();
        return true;
    }
    if (strcmp(s, "nan") == 0) {
        *out = __builtin_nan("");
        return true;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || (errno && v != 0.0 && errno != ERANGE))
        return false;
    *out = v;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* protoc C-escapes bytes defaults. Progress: decoded length, or -1 when s
 * holds an escape that protoc never writes. out has strlen(s) bytes. */
static long c_unescape(const char *s, uint8_t *out)
{
    size_t k = 0;
    while (*s) {
        if (*s != '\\') {
            out[k++] = (uint8_t)*s++;
            continue;
        }
        s++;
        switch (*s) {
        case 'a':
            out[k++] = '\a';
            s++;
            break;
        case 'b':
            out[k++] = '\b';
            s++;
            break;
        case 'f':
            out[k++] = '\f';
            s++;
            break;
        case 'n':
            out[k++] = '\n';
            s++;
            break;
        case 'r':
            out[k++] = '\r';
            s++;
            break;
        case 't':
            out[k++] = '\t';
            s++;
            break;
        case 'v':
            out[k++] = '\v';
            s++;
            break;
        case '\\':
        case '\'':
        case '"':
        case '?':
            out[k++] = (uint8_t)*s++;
            break;
        case 'x': {
            int v = 0, d = 0;
            s++;
            while (d < 2 && hexval(*s) >= 0) {
                v = v * 16 + hexval(*s++);
                d++;
            }
            if (!d)
                return -1;
            out[k++] = (uint8_t)v;
            break;
        }
        default: {
            int v = 0, d = 0;
            while (d < 3 && *s >= '0' && *s <= '7') {
                v = v * 8 + (*s++ - '0');
                d++;
            }
            if (!d || v > 255)
                return -1;
            out[k++] = (uint8_t)v;
        }
        }
    }
    return (long)k;
}

/* What one declared field becomes, before it is sorted by number. */
struct fdecl {
    const Google__Protobuf__FieldDescriptorProto *fp;
    ProtobufCFieldDescriptor fd;
    struct pt_descpool_field fi;
    int real_oneof; /* oneof_decl index, -1 */
    size_t enum_idx;
    size_t final; /* index in number order */
};

static int field_default(struct dp_build *b, const struct dp_bmsg *m, struct fdecl *x)
{
    ProtobufCFieldDescriptor *fd = &x->fd;
    const char *dv = x->fp->default_value;
    const char *file = m->file->name;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED && fd->type == PROTOBUF_C_TYPE_STRING &&
        m->file->proto3) {
        /* as protoc-c writes it; libprotobuf-c never reads it for repeated */
        fd->default_value = protobuf_c_empty_string;
        return 0;
    }
    if (fd->label == PROTOBUF_C_LABEL_REPEATED || x->real_oneof >= 0) {
        /* oneof members: see descpool.h (libprotobuf-c's generic init would
         * write every member's default into the one union) */
        return 0;
    }
    if (dv && m->file->proto3)
        return dp_fail(b, "%s: %s.%s: proto3 fields have no explicit defaults", file, m->full,
                       fd->name);
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
        if (dv)
            return dp_fail(b, "%s: %s.%s: a message field has no default", file, m->full, fd->name);
        return 0;
    }
    if (fd->type == PROTOBUF_C_TYPE_STRING) {
        if (dv) {
            fd->default_value = dp_strdup(b, dv);
            return fd->default_value ? 0 : NOMEM(b);
        }
        if (fd->label == PROTOBUF_C_LABEL_NONE)
            fd->default_value = protobuf_c_empty_string;
        return 0;
    }
    if (fd->type == PROTOBUF_C_TYPE_ENUM && !dv) {
        /* proto2: an unset enum reads as its first declared value */
        const Google__Protobuf__EnumDescriptorProto *ep = b->enums[x->enum_idx].ep;
        if (m->file->proto3 || ep->n_value == 0)
            return 0;
        int32_t *v = dp_alloc(b, sizeof(*v));
        if (!v)
            return NOMEM(b);
        *v = ep->value[0]->number;
        fd->default_value = v;
        return 0;
    }
    if (!dv)
        return 0;

    void *val = NULL;
    bool ok = true;
    int64_t i;
    uint64_t u;
    double d;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if ((ok = parse_int(dv, INT32_MIN, INT32_MAX, &i)) && (val = dp_alloc(b, 4)))
            *(int32_t *)val = (int32_t)i;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if ((ok = parse_int(dv, INT64_MIN, INT64_MAX, &i)) && (val = dp_alloc(b, 8)))
            *(int64_t *)val = i;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((ok = parse_uint(dv, UINT32_MAX, &u)) && (val = dp_alloc(b, 4)))
            *(uint32_t *)val = (uint32_t)u;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if ((ok = parse_uint(dv, UINT64_MAX, &u)) && (val = dp_alloc(b, 8)))
            *(uint64_t *)val = u;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        /* via double, as the C compiler reads generated code's literal */
        if ((ok = parse_double(dv, &d)) && (val = dp_alloc(b, sizeof(float))))
            *(float *)val = (float)d;
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        if ((ok = parse_double(dv, &d)) && (val = dp_alloc(b, sizeof(double))))
            *(double *)val = d;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        ok = strcmp(dv, "true") == 0 || strcmp(dv, "false") == 0;
        if (ok && (val = dp_alloc(b, sizeof(protobuf_c_boolean))))
            *(protobuf_c_boolean *)val = dv[0] == 't';
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t ev;
        ok = enum_value(b->pool->enums[x->enum_idx], dv, &ev);
        if (ok && (val = dp_alloc(b, sizeof(int32_t))))
            *(int32_t *)val = ev;
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bd = dp_alloc(b, sizeof(*bd));
        uint8_t *data = dp_alloc(b, strlen(dv) + 1);
        if (!bd || !data)
            break;
        long l = c_unescape(dv, data);
        ok = l >= 0;
        bd->len = ok ? (size_t)l : 0;
        bd->data = data;
        val = bd;
        break;
    }
    default:
        break;
    }
    if (!ok)
        return dp_fail(b, "%s: %s.%s: invalid default \"%s\"", file, m->full, fd->name, dv);
    if (!val)
        return NOMEM(b);
    fd->default_value = val;
    return 0;
}

/* ---- messages ------------------------------------------------------------ */

static int field_type(struct dp_build *b, const struct dp_bmsg *m, struct fdecl *x)
{
    const Google__Protobuf__FieldDescriptorProto *fp = x->fp;
    const char *file = m->file->name;
    int ft = fp->has_type ? (int)fp->type : 0;
    if (ft == FT_GROUP)
        return dp_fail(b, "%s: %s.%s: proto2 groups are not supported", file, m->full, fp->name);
    if (ft && ft != FT_MESSAGE && ft != FT_ENUM) {
        if (!scalar_type(ft, &x->fd.type))
            return dp_fail(b, "%s: %s.%s: unknown field type %d", file, m->full, fp->name, ft);
        x->fi.proto_type = ft;
        return 0;
    }
    const struct dp_sym *s = resolve(b, m->full, fp->type_name);
    if (!s)
        return dp_fail(b, "%s: %s.%s: unknown type %s", file, m->full, fp->name,
                       fp->type_name && fp->type_name[0] ? fp->type_name : "(none)");
    if ((ft == FT_MESSAGE && s->kind != DP_MESSAGE) || (ft == FT_ENUM && s->kind != DP_ENUM) ||
        (s->kind != DP_MESSAGE && s->kind != DP_ENUM))
        return dp_fail(b, "%s: %s.%s: %s is not %s", file, m->full, fp->name, s->name,
                       ft == FT_ENUM ? "an enum" : "a message");
    if (s->kind == DP_MESSAGE) {
        x->fd.type = PROTOBUF_C_TYPE_MESSAGE;
        x->fd.descriptor = &b->pool->msgs[s->index]->desc;
        x->fi.proto_type = FT_MESSAGE;
        const Google__Protobuf__DescriptorProto *target = b->msgs[s->index].dp;
        x->fi.is_map =
            fp->has_label &&
            fp->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED &&
            target->options && target->options->has_map_entry && target->options->map_entry;
    } else {
        x->fd.type = PROTOBUF_C_TYPE_ENUM;
        x->fd.descriptor = b->pool->enums[s->index];
        x->fi.proto_type = FT_ENUM;
        x->enum_idx = s->index;
    }
    return 0;
}

static size_t align_up(size_t off, size_t a)
{
    return (off + a - 1) & ~(a - 1);
}

/* Offsets and sizeof_message, in protoc-c's order (see the file comment). */
static int layout(struct dp_build *b, const struct dp_bmsg *m, struct fdecl *xs, size_t n,
                  struct dp_msg *dm)
{
    size_t off = sizeof(ProtobufCMessage), maxal = alignof(ProtobufCMessage), sz, al;
    for (size_t i = 0; i < n; i++) {
        ProtobufCFieldDescriptor *fd = &xs[i].fd;
        if (xs[i].real_oneof >= 0)
            continue;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            off = align_up(off, alignof(size_t));
            fd->quantifier_offset = (unsigned)off;
            off += sizeof(size_t);
            sz = sizeof(void *), al = alignof(void *);
        } else {
            type_layout(fd->type, &sz, &al);
            if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->type != PROTOBUF_C_TYPE_STRING &&
                fd->type != PROTOBUF_C_TYPE_MESSAGE) {
                off = align_up(off, alignof(protobuf_c_boolean));
                fd->quantifier_offset = (unsigned)off;
                off += sizeof(protobuf_c_boolean);
            }
        }
        off = align_up(off, al);
        fd->offset = (unsigned)off;
        off += sz;
        if (al > maxal)
            maxal = al;
    }
    const Google__Protobuf__DescriptorProto *dp = m->dp;
    for (size_t o = 0; o < dp->n_oneof_decl; o++) {
        size_t usz = 0, ual = 1, members = 0;
        for (size_t i = 0; i < n; i++) {
            if (xs[i].real_oneof != (int)o)
                continue;
            type_layout(xs[i].fd.type, &sz, &al);
            usz = sz > usz ? sz : usz;
            ual = al > ual ? al : ual;
            members++;
        }
        if (!members)
            continue; /* a proto3 optional field's synthetic oneof */
        off = align_up(off, alignof(uint32_t));
        size_t case_off = off;
        off += sizeof(uint32_t);
        off = align_up(off, ual);
        for (size_t i = 0; i < n; i++) {
            if (xs[i].real_oneof != (int)o)
                continue;
            xs[i].fd.quantifier_offset = (unsigned)case_off;
            xs[i].fd.offset = (unsigned)off;
        }
        off += usz;
        if (ual > maxal)
            maxal = ual;
        if (off > UINT32_MAX / 2)
            break;
    }
    if (off > UINT32_MAX / 2)
        return dp_limit(b, "%s: %s: the message struct would be too large", m->file->name, m->full);
    dm->desc.sizeof_message = align_up(off, maxal);
    return 0;
}

static int cmp_fdecl_number(const void *a, const void *b)
{
    const struct fdecl *x = *(const struct fdecl *const *)a, *y = *(const struct fdecl *const *)b;
    return x->fd.id < y->fd.id ? -1 : x->fd.id > y->fd.id;
}

static int cmp_field_name(const void *a, const void *b, void *fields)
{
    const ProtobufCFieldDescriptor *f = fields;
    return strcmp(f[*(const unsigned *)a].name, f[*(const unsigned *)b].name);
}

/* Label, flags, type and default of one declared field. */
static int field_decl(struct dp_build *b, const struct dp_bmsg *m, struct fdecl *x)
{
    const Google__Protobuf__FieldDescriptorProto *fp = x->fp;
    const char *file = m->file->name;
    bool proto3 = m->file->proto3;
    if (!fp->name || !fp->name[0] || strchr(fp->name, '.'))
        return dp_fail(b, "%s: %s: a field has no valid name", file, m->full);
    if (!fp->has_number || fp->number < 1 || fp->number > 0x1fffffff)
        return dp_fail(b, "%s: %s.%s: field number %d is out of range", file, m->full, fp->name,
                       fp->has_number ? fp->number : 0);
    if (fp->extendee && fp->extendee[0])
        return dp_fail(b, "%s: %s.%s: an extension among the fields", file, m->full, fp->name);
    x->fd.name = dp_strdup(b, fp->name);
    x->fi.json_name = fp->json_name ? dp_strdup(b, fp->json_name) : json_name(b, fp->name);
    if (!x->fd.name || !x->fi.json_name)
        return NOMEM(b);
    x->fd.id = (uint32_t)fp->number;
    x->real_oneof = -1;
    x->fi.oneof_index = -1;
    x->fi.proto3_optional = fp->has_proto3_optional && fp->proto3_optional;
    if (fp->has_oneof_index && !x->fi.proto3_optional) {
        if (fp->oneof_index < 0 || (size_t)fp->oneof_index >= m->dp->n_oneof_decl)
            return dp_fail(b, "%s: %s.%s: oneof index %d is out of range", file, m->full, fp->name,
                           fp->oneof_index);
        x->real_oneof = fp->oneof_index;
    }
    int rc = field_type(b, m, x);
    if (rc)
        return rc;

    int label = fp->has_label ? (int)fp->label : 1;
    if (label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED) {
        if (x->real_oneof >= 0)
            return dp_fail(b, "%s: %s.%s: a repeated field in a oneof", file, m->full, fp->name);
        x->fd.label = PROTOBUF_C_LABEL_REPEATED;
    } else if (label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REQUIRED) {
        x->fd.label = PROTOBUF_C_LABEL_REQUIRED;
    } else if (label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL) {
        x->fd.label =
            proto3 && !x->fi.proto3_optional ? PROTOBUF_C_LABEL_NONE : PROTOBUF_C_LABEL_OPTIONAL;
    } else {
        return dp_fail(b, "%s: %s.%s: unknown label %d", file, m->full, fp->name, label);
    }

    const Google__Protobuf__FieldOptions *opt = fp->options;
    if (x->fd.label == PROTOBUF_C_LABEL_REPEATED && packable(x->fd.type)) {
        bool packed = proto3 ? !(opt && opt->has_packed && !opt->packed)
                             : (opt && opt->has_packed && opt->packed);
        if (packed)
            x->fd.flags |= PROTOBUF_C_FIELD_FLAG_PACKED;
    }
    if (opt && opt->has_deprecated && opt->deprecated)
        x->fd.flags |= PROTOBUF_C_FIELD_FLAG_DEPRECATED;
    if (x->real_oneof >= 0)
        x->fd.flags |= PROTOBUF_C_FIELD_FLAG_ONEOF;
    return field_default(b, m, x);
}

static int build_fields(struct dp_build *b, size_t mi)
{
    const struct dp_bmsg *m = &b->msgs[mi];
    struct dp_msg *dm = b->pool->msgs[mi];
    const Google__Protobuf__DescriptorProto *dp = m->dp;
    size_t n = dp->n_field;
    struct fdecl *xs = pt_xcalloc(n ? n : 1, sizeof(*xs));
    struct fdecl **order = pt_xcalloc(n ? n : 1, sizeof(*order));
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        xs[i].fp = dp->field[i];
        order[i] = &xs[i];
        rc = field_decl(b, m, &xs[i]);
    }
    if (!rc)
        rc = layout(b, m, xs, n, dm);
    if (!rc) {
        qsort(order, n, sizeof(*order), cmp_fdecl_number);
        for (size_t i = 1; i < n && !rc; i++) {
            if (order[i - 1]->fd.id == order[i]->fd.id)
                rc = dp_fail(b, "%s: %s: fields %s and %s share number %u", m->file->name, m->full,
                             order[i - 1]->fd.name, order[i]->fd.name, order[i]->fd.id);
        }
    }
    ProtobufCFieldDescriptor *fields = NULL;
    struct pt_descpool_field *infos = NULL;
    unsigned *byname = NULL;
    size_t nranges = 0;
    if (!rc) {
        fields = dp_alloc(b, n * sizeof(*fields));
        infos = dp_alloc(b, n * sizeof(*infos));
        byname = dp_alloc(b, n * sizeof(*byname));
        if (!fields || !infos || !byname)
            rc = NOMEM(b);
    }
    for (size_t i = 0; i < n && !rc; i++) {
        order[i]->final = i;
        fields[i] = order[i]->fd;
        infos[i] = order[i]->fi;
        infos[i].field = &fields[i];
        infos[i].message = &dm->desc;
        byname[i] = (unsigned)i;
        if (i == 0 || fields[i].id != fields[i - 1].id + 1)
            nranges++;
    }
    if (!rc) {
        qsort_r(byname, n, sizeof(*byname), cmp_field_name, fields);
        for (size_t i = 1; i < n && !rc; i++) {
            if (strcmp(fields[byname[i - 1]].name, fields[byname[i]].name) == 0)
                rc = dp_fail(b, "%s: %s: field %s declared twice", m->file->name, m->full,
                             fields[byname[i]].name);
        }
    }
    ProtobufCIntRange *ranges = rc ? NULL : dp_alloc(b, (nranges + 1) * sizeof(*ranges));
    if (!rc && !ranges)
        rc = NOMEM(b);
    if (!rc) {
        size_t r = 0;
        for (size_t i = 0; i < n; i++) {
            if (i == 0 || fields[i].id != fields[i - 1].id + 1)
                ranges[r++] = (ProtobufCIntRange){(int)fields[i].id, (unsigned)i};
        }
        ranges[r] = (ProtobufCIntRange){0, (unsigned)n};
    }

    /* Real oneofs, in declaration order, with their members. */
    size_t noneofs = 0;
    struct pt_descpool_oneof *oneofs = NULL;
    if (!rc && dp->n_oneof_decl) {
        oneofs = dp_alloc(b, dp->n_oneof_decl * sizeof(*oneofs));
        if (!oneofs)
            rc = NOMEM(b);
    }
    for (size_t o = 0; o < dp->n_oneof_decl && !rc; o++) {
        size_t members = 0;
        for (size_t i = 0; i < n; i++)
            members += xs[i].real_oneof == (int)o;
        if (!members)
            continue;
        const ProtobufCFieldDescriptor **mf = dp_alloc(b, members * sizeof(*mf));
        const char *oname = dp->oneof_decl[o]->name ? dp->oneof_decl[o]->name : "";
        struct pt_descpool_oneof *od = &oneofs[noneofs];
        od->name = dp_strdup(b, oname);
        if (!mf || !od->name) {
            rc = NOMEM(b);
            break;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (xs[i].real_oneof != (int)o)
                continue;
            mf[k++] = &fields[xs[i].final];
            infos[xs[i].final].oneof_index = (int)noneofs;
            od->case_offset = xs[i].fd.quantifier_offset;
        }
        od->n_fields = members;
        od->fields = mf;
        noneofs++;
    }
    free(xs);
    free(order);
    if (rc)
        return rc;
    dm->desc.n_fields = (unsigned)n;
    dm->desc.fields = n ? fields : NULL;
    dm->desc.fields_sorted_by_name = n ? byname : NULL;
    dm->desc.n_field_ranges = (unsigned)nranges;
    dm->desc.field_ranges = ranges;
    dm->info.fields = infos;
    dm->info.n_oneofs = noneofs;
    dm->info.oneofs = oneofs;
    return 0;
}

int dp_build_messages(struct dp_build *b)
{
    struct pt_descpool *p = b->pool;
    p->msgs = dp_alloc(b, b->nmsgs * sizeof(*p->msgs));
    if (!p->msgs)
        return NOMEM(b);
    p->nmsgs = b->nmsgs;
    /* Every descriptor exists before any field points at one, so recursive
     * and mutually recursive messages need nothing special. */
    for (size_t i = 0; i < b->nmsgs; i++) {
        const struct dp_bmsg *m = &b->msgs[i];
        struct dp_msg *dm = dp_alloc(b, sizeof(*dm));
        if (!dm)
            return NOMEM(b);
        p->msgs[i] = dm;
        dm->desc.magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
        dm->desc.name = m->full;
        dm->desc.short_name = dp_strdup(b, m->dp->name);
        dm->desc.c_name = c_name(b, m->full);
        dm->desc.package_name = dp_strdup(b, package_of(m->file));
        dm->desc.message_init = NULL; /* see descpool.h */
        dm->desc.reserved1 = &dm->info;
        dm->info.desc = &dm->desc;
        dm->info.pool = p;
        dm->info.file = m->file->name;
        dm->info.proto3 = m->file->proto3;
        dm->info.map_entry =
            m->dp->options && m->dp->options->has_map_entry && m->dp->options->map_entry;
        if (!dm->desc.short_name || !dm->desc.c_name || !dm->desc.package_name)
            return NOMEM(b);
    }
    for (size_t i = 0; i < b->nmsgs; i++) {
        int rc = build_fields(b, i);
        if (rc)
            return rc;
    }
    /* Maps: the entry's key (1) and value (2), now that entries are built. */
    for (size_t i = 0; i < b->nmsgs; i++) {
        struct dp_msg *dm = p->msgs[i];
        for (size_t f = 0; f < dm->desc.n_fields; f++) {
            struct pt_descpool_field *fi = (struct pt_descpool_field *)&dm->info.fields[f];
            if (!fi->is_map)
                continue;
            const ProtobufCMessageDescriptor *e = fi->field->descriptor;
            if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
                e->fields[0].label == PROTOBUF_C_LABEL_REPEATED ||
                e->fields[1].label == PROTOBUF_C_LABEL_REPEATED)
                return dp_fail(b, "%s: %s.%s: map entry %s is not {key = 1; value = 2}",
                               b->msgs[i].file->name, b->msgs[i].full, fi->field->name, e->name);
            fi->map_key = &e->fields[0];
            fi->map_value = &e->fields[1];
        }
    }
    return 0;
}

/* ---- services ------------------------------------------------------------ */

static int cmp_method_name(const void *a, const void *b, void *methods)
{
    const ProtobufCMethodDescriptor *m = methods;
    return strcmp(m[*(const unsigned *)a].name, m[*(const unsigned *)b].name);
}

static int method_type(struct dp_build *b, const struct dp_bsvc *s, const char *method,
                       const char *tn, const ProtobufCMessageDescriptor **out)
{
    const struct dp_sym *sym = resolve(b, s->full, tn);
    if (!sym || sym->kind != DP_MESSAGE)
        return dp_fail(b, "%s: %s.%s: unknown message type %s", s->file->name, s->full, method,
                       tn && tn[0] ? tn : "(none)");
    *out = &b->pool->msgs[sym->index]->desc;
    return 0;
}

int dp_build_services(struct dp_build *b)
{
    struct pt_descpool *p = b->pool;
    p->nsvcs = b->nsvcs;
    for (size_t i = 0; i < b->nsvcs; i++) {
        const struct dp_bsvc *s = &b->svcs[i];
        const Google__Protobuf__ServiceDescriptorProto *sp = s->sp;
        struct pt_descpool_service *ps = &p->svcs[i];
        ProtobufCServiceDescriptor *d = dp_alloc(b, sizeof(*d));
        ProtobufCMethodDescriptor *ms = dp_alloc(b, sp->n_method * sizeof(*ms));
        unsigned *byname = dp_alloc(b, sp->n_method * sizeof(*byname));
        if (!d || !ms || !byname)
            return NOMEM(b);
        d->magic = PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC;
        d->name = s->full;
        d->short_name = dp_strdup(b, sp->name);
        d->c_name = c_name(b, s->full);
        d->package = dp_strdup(b, package_of(s->file));
        if (!d->short_name || !d->c_name || !d->package)
            return NOMEM(b);
        for (size_t j = 0; j < sp->n_method; j++) {
            const Google__Protobuf__MethodDescriptorProto *mp = sp->method[j];
            struct pt_descpool_method *pm = (struct pt_descpool_method *)&ps->methods[j];
            ms[j].name = dp_strdup(b, mp->name);
            if (!ms[j].name)
                return NOMEM(b);
            int rc = method_type(b, s, mp->name, mp->input_type, &ms[j].input);
            if (!rc)
                rc = method_type(b, s, mp->name, mp->output_type, &ms[j].output);
            if (rc)
                return rc;
            pm->desc = &ms[j];
            pm->service = d;
            pm->client_streaming = mp->has_client_streaming && mp->client_streaming;
            pm->server_streaming = mp->has_server_streaming && mp->server_streaming;
            if (mp->options && protobuf_c_message_get_packed_size(&mp->options->base)) {
                size_t len = protobuf_c_message_get_packed_size(&mp->options->base);
                uint8_t *buf = dp_alloc(b, len);
                if (!buf)
                    return NOMEM(b);
                pm->options_len = protobuf_c_message_pack(&mp->options->base, buf);
                pm->options = buf;
            }
            byname[j] = (unsigned)j;
        }
        qsort_r(byname, sp->n_method, sizeof(*byname), cmp_method_name, ms);
        d->n_methods = (unsigned)sp->n_method;
        d->methods = sp->n_method ? ms : NULL;
        d->method_indices_by_name = sp->n_method ? byname : NULL;
        ps->desc = d;
        ps->file = s->file->name;
    }
    return 0;
}
