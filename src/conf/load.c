/*
 * YAML tree -> protobuf-c message, driven only by descriptors.
 *
 * Messages are built the way protobuf_c_message_unpack() builds them (every
 * message, string and array from malloc), so one
 * protobuf_c_message_free_unpacked() releases a document and other modules
 * can treat it as any unpacked message.
 *
 * Every node visit is counted, including each expansion of an alias, and
 * collection nesting is bounded, so hostile documents (alias bombs, deep
 * nesting through aliases) stop with an error rather than exhausting memory
 * or the stack.
 */
#include <errno.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"
#include "core/arena.h"
#include "core/strutil.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "portico/errors.h"

typedef struct pt_conf_ynode ynode;

struct loader {
    const char *name;
    struct pt_diag *diag;
    struct pt_conf_postab *pos;
    unsigned errors;
    bool stop;
    size_t visits;
    unsigned depth;
    char *path; /* field path of the value being loaded: "routes[2].timeout_ms" */
    size_t plen, pcap;
};

/* ---- errors and field paths ---- */

static void lverr(struct loader *L, const ynode *at, const char *fmt, va_list ap)
{
    if (L->stop)
        return;
    char where[512];
    if (at)
        snprintf(where, sizeof(where), "%s:%u:%u", L->name, at->line, at->col);
    else
        snprintf(where, sizeof(where), "%s", L->name);
    if (L->errors == PT_CONF_MAX_ERRORS) {
        pt_diag_addf(L->diag, where, NULL, "too many errors (%u); stopping", L->errors);
        L->errors++;
        L->stop = true;
        return;
    }
    L->errors++;
    pt_diag_vaddf(L->diag, where, L->plen ? L->path : NULL, fmt, ap);
}

static void lerr(struct loader *L, const ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lerr(struct loader *L, const ynode *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lverr(L, at, fmt, ap);
    va_end(ap);
}

/* A limit was hit: report it and abandon the walk. */
static void lfatal(struct loader *L, const ynode *at, const char *msg)
{
    lerr(L, at, "%s", msg);
    L->errors++;
    L->stop = true;
}

static void path_append(struct loader *L, const char *s, size_t n)
{
    if (L->plen + n + 1 > L->pcap) {
        size_t cap = L->pcap ? L->pcap * 2 : 128;
        while (cap < L->plen + n + 1)
            cap *= 2;
        L->path = pt_xrealloc(L->path, cap);
        L->pcap = cap;
    }
    memcpy(L->path + L->plen, s, n);
    L->plen += n;
    L->path[L->plen] = '\0';
}

/* Returns the length to restore with path_pop(). Keys are shortened and
 * made printable: a path must stay one readable line. */
static size_t path_push_key(struct loader *L, const char *key, size_t len)
{
    size_t old = L->plen;
    if (L->plen)
        path_append(L, ".", 1);
    size_t shown = len > 64 ? 64 : len;
    for (size_t i = 0; i < shown; i++) {
        char c = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
        path_append(L, &c, 1);
    }
    if (shown < len)
        path_append(L, "...", 3);
    return old;
}

static size_t path_push_index(struct loader *L, size_t i)
{
    size_t old = L->plen;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "[%zu]", i);
    path_append(L, buf, (size_t)n);
    return old;
}

static void path_pop(struct loader *L, size_t old)
{
    L->plen = old;
    if (L->path)
        L->path[old] = '\0';
}

/* For "got ..." in messages: a quoted, escaped, shortened scalar. */
static const char *describe(const ynode *n, char *buf, size_t size)
{
    if (n->kind == PT_CONF_YNODE_MAP)
        return "a mapping";
    if (n->kind == PT_CONF_YNODE_SEQ)
        return "a list";
    size_t j = 0;
    buf[j++] = '"';
    for (size_t i = 0; i < n->len && j + 8 < size; i++) {
        unsigned char c = (unsigned char)n->str[i];
        if (i == 40) {
            memcpy(buf + j, "...", 3);
            j += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[j++] = '\\';
            buf[j++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            j += (size_t)snprintf(buf + j, size - j, "\\x%02x", c);
        } else {
            buf[j++] = (char)c;
        }
    }
    buf[j++] = '"';
    buf[j] = '\0';
    return buf;
}

/* ---- node access with limits ---- */

/* Resolve an alias and count the visit. NULL when the walk must not use the
 * node (a limit was hit, or an unsupported tag, already reported). The
 * parser already refused documents whose expansion exceeds the node limit;
 * counting here keeps the walk bounded even if the two ever disagree. */
static const ynode *use(struct loader *L, const ynode *ref)
{
    if (L->stop)
        return NULL;
    if (++L->visits > PT_CONF_MAX_NODES) {
        lfatal(L, ref, "more than 1000000 nodes after expanding aliases");
        return NULL;
    }
    const ynode *n = ref->kind == PT_CONF_YNODE_ALIAS ? ref->target : ref;
    if (n->bad_tag) {
        lerr(L, ref, "unsupported tag %s", n->bad_tag);
        return NULL;
    }
    return n;
}

static bool enter_collection(struct loader *L, const ynode *at)
{
    if (L->depth >= PT_CONF_MAX_DEPTH) {
        lfatal(L, at, "nesting deeper than 64 levels (counting aliases)");
        return false;
    }
    L->depth++;
    return true;
}

static void leave_collection(struct loader *L)
{
    L->depth--;
}

static bool is_null(const ynode *n)
{
    return n->kind == PT_CONF_YNODE_SCALAR && n->plain && pt_conf_is_null_word(n->str, n->len);
}

/* Values and lists inside a Struct are not recorded: they are what an
 * alias bomb multiplies, and errors inside a filter's config are reported
 * by key path from the Struct's entries, which are recorded. */
static void record(struct loader *L, const void *msg, const void *field, int64_t index,
                   const ynode *at)
{
    const ProtobufCMessageDescriptor *d = ((const ProtobufCMessage *)msg)->descriptor;
    if (d == &google__protobuf__value__descriptor || d == &google__protobuf__list_value__descriptor)
        return;
    pt_conf_postab_put(L->pos, msg, field, index, at->line, at->col);
}

/* ---- mapping keys: duplicates and `<<` merges ---- */

struct epair {
    const ynode *key; /* resolved scalar */
    const ynode *value;
    bool merged; /* came from a `<<` merge: the mapping's own keys win */
};

struct epairs {
    struct epair *v;
    size_t n, cap;
};

struct keyref {
    const char *s;
    size_t len;
    size_t index;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static const ynode *key_scalar(const ynode *k)
{
    const ynode *n = k->kind == PT_CONF_YNODE_ALIAS ? k->target : k;
    return n->kind == PT_CONF_YNODE_SCALAR ? n : NULL;
}

/* Once per mapping node (an aliased mapping is checked on first use):
 * non-scalar keys and duplicate keys are errors, and such pairs are skipped
 * from then on. */
static void check_keys(struct loader *L, ynode *map)
{
    if (map->keys_checked)
        return;
    map->keys_checked = true;
    struct keyref *refs = pt_xmalloc((map->n ? map->n : 1) * sizeof(*refs));
    size_t nrefs = 0;
    for (size_t i = 0; i < map->n; i++) {
        const ynode *k = key_scalar(map->pairs[i].key);
        if (!k) {
            lerr(L, map->pairs[i].key, "mapping keys must be scalars");
            map->pairs[i].skip = true;
            continue;
        }
        refs[nrefs++] = (struct keyref){k->str, k->len, i};
    }
    qsort(refs, nrefs, sizeof(*refs), keyref_cmp);
    for (size_t i = 1; i < nrefs; i++) {
        size_t first = i - 1;
        while (i < nrefs && refs[i].len == refs[first].len &&
               memcmp(refs[i].s, refs[first].s, refs[i].len) == 0) {
            const struct pt_conf_ypair *a = &map->pairs[refs[first].index];
            struct pt_conf_ypair *b = &map->pairs[refs[i].index];
            char buf[128];
            lerr(L, b->key, "duplicate key %s (first at line %u, column %u)",
                 describe(key_scalar(b->key), buf, sizeof(buf)), a->key->line, a->key->col);
            b->skip = true;
            i++;
        }
    }
    free(refs);
}

static void epairs_push(struct epairs *e, struct epair p)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->v = pt_xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    e->v[e->n++] = p;
}

/* Keep the first pair of every key in e->v[start..]: own keys come first,
 * then each merged mapping in order, as the YAML merge key specifies. */
static void dedup_from(struct epairs *e, size_t start)
{
    size_t n = e->n - start;
    if (n < 2)
        return;
    struct keyref *refs = pt_xmalloc(n * sizeof(*refs));
    bool *drop = pt_xcalloc(n, sizeof(*drop));
    for (size_t i = 0; i < n; i++)
        refs[i] = (struct keyref){e->v[start + i].key->str, e->v[start + i].key->len, i};
    qsort(refs, n, sizeof(*refs), keyref_cmp);
    for (size_t i = 1; i < n; i++)
        if (refs[i].len == refs[i - 1].len && memcmp(refs[i].s, refs[i - 1].s, refs[i].len) == 0)
            drop[refs[i].index] = true;
    size_t out = start;
    for (size_t i = 0; i < n; i++)
        if (!drop[i])
            e->v[out++] = e->v[start + i];
    e->n = out;
    free(drop);
    free(refs);
}

static bool is_merge_key(const ynode *k)
{
    return k->plain && k->len == 2 && memcmp(k->str, "<<", 2) == 0;
}

static void collect_pairs(struct loader *L, ynode *map, struct epairs *out, bool merged);

static void merge_from(struct loader *L, const ynode *ref, struct epairs *out)
{
    const ynode *src = use(L, ref);
    if (!src)
        return;
    if (src->kind == PT_CONF_YNODE_MAP) {
        if (!enter_collection(L, ref))
            return;
        collect_pairs(L, (ynode *)src, out, true);
        leave_collection(L);
        return;
    }
    if (src->kind == PT_CONF_YNODE_SEQ) {
        for (size_t i = 0; i < src->n && !L->stop; i++) {
            const ynode *item = use(L, src->items[i]);
            if (!item)
                continue;
            if (item->kind != PT_CONF_YNODE_MAP) {
                lerr(L, src->items[i], "<< takes a mapping or a list of mappings");
                continue;
            }
            if (!enter_collection(L, src->items[i]))
                return;
            collect_pairs(L, (ynode *)item, out, true);
            leave_collection(L);
        }
        return;
    }
    lerr(L, ref, "<< takes a mapping or a list of mappings");
}

/* The mapping's effective pairs after `<<` merges, in precedence order. */
static void collect_pairs(struct loader *L, ynode *map, struct epairs *out, bool merged)
{
    check_keys(L, map);
    size_t start = out->n;
    for (size_t i = 0; i < map->n; i++) {
        const struct pt_conf_ypair *p = &map->pairs[i];
        if (p->skip || is_merge_key(key_scalar(p->key)))
            continue;
        epairs_push(out, (struct epair){key_scalar(p->key), p->value, merged});
    }
    bool any_merge = false;
    for (size_t i = 0; i < map->n && !L->stop; i++) {
        const struct pt_conf_ypair *p = &map->pairs[i];
        if (!p->skip && is_merge_key(key_scalar(p->key))) {
            merge_from(L, p->value, out);
            any_merge = true;
        }
    }
    if (any_merge)
        dedup_from(out, start);
}

/* ---- descriptors ---- */

bool pt_conf_is_wrapper(const ProtobufCMessageDescriptor *d)
{
    static const ProtobufCMessageDescriptor *const wrappers[] = {
        &google__protobuf__double_value__descriptor, &google__protobuf__float_value__descriptor,
        &google__protobuf__int64_value__descriptor,  &google__protobuf__uint64_value__descriptor,
        &google__protobuf__int32_value__descriptor,  &google__protobuf__uint32_value__descriptor,
        &google__protobuf__bool_value__descriptor,   &google__protobuf__string_value__descriptor,
        &google__protobuf__bytes_value__descriptor,
    };
    for (size_t i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); i++)
        if (d == wrappers[i])
            return true;
    return false;
}

/* protobuf-c keeps no map flag: a map field is a repeated "...Entry"
 * message with exactly key = 1 and value = 2. */
bool pt_conf_is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t len = strlen(d->name);
    return d->n_fields == 2 && len > 5 && strcmp(d->name + len - 5, "Entry") == 0 &&
           strcmp(d->fields[0].name, "key") == 0 && d->fields[0].id == 1 &&
           strcmp(d->fields[1].name, "value") == 0 && d->fields[1].id == 2;
}

size_t pt_conf_field_elem_size(const ProtobufCFieldDescriptor *fd)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

static void *member(void *msg, unsigned offset)
{
    return (char *)msg + offset;
}

/* ---- scalars ---- */

static bool write_int(struct loader *L, const ynode *n, int64_t min, int64_t max, int64_t *out)
{
    char buf[128];
    switch (pt_conf_parse_int(n->str, n->len, min, max, out)) {
    case PT_CONF_NUM_OK:
        return true;
    case PT_CONF_NUM_SYNTAX:
        lerr(L, n, "expected an integer, got %s", describe(n, buf, sizeof(buf)));
        return false;
    case PT_CONF_NUM_RANGE:
        lerr(L, n, "%s is out of range (%lld..%lld)", describe(n, buf, sizeof(buf)), (long long)min,
             (long long)max);
        return false;
    }
    return false;
}

static bool write_uint(struct loader *L, const ynode *n, uint64_t max, uint64_t *out)
{
    char buf[128];
    switch (pt_conf_parse_uint(n->str, n->len, max, out)) {
    case PT_CONF_NUM_OK:
        return true;
    case PT_CONF_NUM_SYNTAX:
        lerr(L, n, "expected an unsigned integer, got %s", describe(n, buf, sizeof(buf)));
        return false;
    case PT_CONF_NUM_RANGE:
        lerr(L, n, "%s is out of range (0..%llu)", describe(n, buf, sizeof(buf)),
             (unsigned long long)max);
        return false;
    }
    return false;
}

static bool write_double(struct loader *L, const ynode *n, double max, double *out)
{
    char buf[128];
    enum pt_conf_num r = pt_conf_parse_double(n->str, n->len, out);
    if (r == PT_CONF_NUM_OK && (*out > max || *out < -max))
        r = PT_CONF_NUM_RANGE;
    if (r == PT_CONF_NUM_SYNTAX)
        lerr(L, n, "expected a number, got %s", describe(n, buf, sizeof(buf)));
    else if (r == PT_CONF_NUM_RANGE)
        lerr(L, n, "%s is out of range", describe(n, buf, sizeof(buf)));
    return r == PT_CONF_NUM_OK;
}

void pt_conf_upper_snake(const char *camel, char *out, size_t size)
{
    size_t j = 0;
    for (size_t i = 0; camel[i] && j + 2 < size; i++) {
        char c = camel[i];
        bool upper = c >= 'A' && c <= 'Z';
        if (upper && i > 0) {
            char prev = camel[i - 1], next = camel[i + 1];
            bool prev_lower = (prev >= 'a' && prev <= 'z') || (prev >= '0' && prev <= '9');
            bool next_lower = next >= 'a' && next <= 'z';
            if (prev_lower || ((prev >= 'A' && prev <= 'Z') && next_lower))
                out[j++] = '_';
        }
        out[j++] = upper ? c : (c >= 'a' && c <= 'z' ? (char)(c - 32) : c);
    }
    out[j] = '\0';
}

/* The value name as operators write it: without the type prefix. */
static const char *enum_short(const char *name, const char *prefix, size_t plen)
{
    if (strncmp(name, prefix, plen) == 0 && name[plen] == '_' && name[plen + 1])
        return name + plen + 1;
    return name;
}

static bool is_unspecified(const ProtobufCEnumValue *v)
{
    size_t len = strlen(v->name);
    return v->value == 0 && len >= 11 && strcmp(v->name + len - 11, "UNSPECIFIED") == 0;
}

static bool write_enum(struct loader *L, const ProtobufCFieldDescriptor *fd, const ynode *n,
                       int *out)
{
    const ProtobufCEnumDescriptor *ed = fd->descriptor;
    char prefix[128];
    pt_conf_upper_snake(ed->short_name, prefix, sizeof(prefix));
    size_t plen = strlen(prefix);
    struct pt_str s = {n->str, n->len};
    for (unsigned i = 0; i < ed->n_value_names; i++) {
        const char *name = ed->values_by_name[i].name;
        if (!pt_str_eq_nocase(s, pt_str_from_cstr(name)) &&
            !pt_str_eq_nocase(s, pt_str_from_cstr(enum_short(name, prefix, plen))))
            continue;
        const ProtobufCEnumValue *v = &ed->values[ed->values_by_name[i].index];
        if (is_unspecified(v)) {
            lerr(L, n, "%.*s is the unset value and may not be written; leave the key out",
                 (int)n->len, n->str);
            return false;
        }
        *out = v->value;
        return true;
    }
    char list[512];
    size_t j = 0;
    list[0] = '\0';
    for (unsigned i = 0; i < ed->n_values && j + 1 < sizeof(list); i++) {
        if (is_unspecified(&ed->values[i]))
            continue;
        char lower[128];
        const char *sh = enum_short(ed->values[i].name, prefix, plen);
        size_t k = 0;
        for (; sh[k] && k + 1 < sizeof(lower); k++)
            lower[k] = pt_ascii_lower(sh[k]);
        lower[k] = '\0';
        j += (size_t)snprintf(list + j, sizeof(list) - j, "%s%s", j ? ", " : "", lower);
    }
    char buf[128];
    lerr(L, n, "unknown value %s; expected one of: %s", describe(n, buf, sizeof(buf)), list);
    return false;
}

static bool no_nul(struct loader *L, const ynode *n)
{
    if (memchr(n->str, '\0', n->len)) {
        lerr(L, n, "strings may not contain NUL characters");
        return false;
    }
    return true;
}

/* Write one scalar of fd's type to dst (a field, or an array element). */
static bool write_scalar(struct loader *L, const ProtobufCFieldDescriptor *fd, const ynode *n,
                         void *dst)
{
    char buf[128];
    if (n->kind != PT_CONF_YNODE_SCALAR) {
        static const char *const what[] = {
            [PROTOBUF_C_TYPE_INT32] = "an integer",
            [PROTOBUF_C_TYPE_SINT32] = "an integer",
            [PROTOBUF_C_TYPE_SFIXED32] = "an integer",
            [PROTOBUF_C_TYPE_INT64] = "an integer",
            [PROTOBUF_C_TYPE_SINT64] = "an integer",
            [PROTOBUF_C_TYPE_SFIXED64] = "an integer",
            [PROTOBUF_C_TYPE_UINT32] = "an unsigned integer",
            [PROTOBUF_C_TYPE_FIXED32] = "an unsigned integer",
            [PROTOBUF_C_TYPE_UINT64] = "an unsigned integer",
            [PROTOBUF_C_TYPE_FIXED64] = "an unsigned integer",
            [PROTOBUF_C_TYPE_FLOAT] = "a number",
            [PROTOBUF_C_TYPE_DOUBLE] = "a number",
            [PROTOBUF_C_TYPE_BOOL] = "true or false",
            [PROTOBUF_C_TYPE_ENUM] = "a name",
            [PROTOBUF_C_TYPE_STRING] = "a string",
            [PROTOBUF_C_TYPE_BYTES] = "base64 data",
            [PROTOBUF_C_TYPE_MESSAGE] = "a mapping",
        };
        lerr(L, n, "expected %s, got %s", what[fd->type], describe(n, buf, sizeof(buf)));
        return false;
    }
    int64_t i64;
    uint64_t u64;
    double d;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (!write_int(L, n, INT32_MIN, INT32_MAX, &i64))
            return false;
        *(int32_t *)dst = (int32_t)i64;
        return true;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (!write_int(L, n, INT64_MIN, INT64_MAX, &i64))
            return false;
        *(int64_t *)dst = i64;
        return true;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (!write_uint(L, n, UINT32_MAX, &u64))
            return false;
        *(uint32_t *)dst = (uint32_t)u64;
        return true;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (!write_uint(L, n, UINT64_MAX, &u64))
            return false;
        *(uint64_t *)dst = u64;
        return true;
    case PROTOBUF_C_TYPE_FLOAT:
        if (!write_double(L, n, FLT_MAX, &d))
            return false;
        *(float *)dst = (float)d;
        return true;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (!write_double(L, n, DBL_MAX, &d))
            return false;
        *(double *)dst = d;
        return true;
    case PROTOBUF_C_TYPE_BOOL: {
        bool b;
        /* A quoted "true" is a string, as in JSON. */
        if (!n->plain || !pt_conf_parse_bool(n->str, n->len, &b)) {
            lerr(L, n, "expected true or false, got %s", describe(n, buf, sizeof(buf)));
            return false;
        }
        *(protobuf_c_boolean *)dst = b;
        return true;
    }
    case PROTOBUF_C_TYPE_ENUM:
        return write_enum(L, fd, n, (int *)dst);
    case PROTOBUF_C_TYPE_STRING:
        if (!no_nul(L, n))
            return false;
        *(char **)dst = pt_xstrndup(n->str, n->len);
        return true;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bd = dst;
        if (pt_conf_base64_decode(n->str, n->len, &bd->data, &bd->len) != 0) {
            lerr(L, n, "expected base64 data, got %s", describe(n, buf, sizeof(buf)));
            return false;
        }
        return true;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    return false;
}

/* ---- messages ---- */

static ProtobufCMessage *message_alloc(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = pt_xmalloc(d->sizeof_message);
    protobuf_c_message_init(d, m);
    return m;
}

static void fill(struct loader *L, ProtobufCMessage *m, const ynode *ref, const ynode *n);
static void load_field(struct loader *L, ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                       const ynode *ref);

static ProtobufCMessage *new_message(struct loader *L, const ProtobufCMessageDescriptor *d,
                                     const ynode *ref, const ynode *n)
{
    ProtobufCMessage *m = message_alloc(d);
    record(L, m, NULL, -1, ref);
    fill(L, m, ref, n);
    return m;
}

static const ProtobufCFieldDescriptor *field_by_id(const ProtobufCMessageDescriptor *d, unsigned id)
{
    return protobuf_c_message_descriptor_get_field(d, id);
}

static void fill_repeated(struct loader *L, ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                          const ynode *n)
{
    char buf[128];
    if (n->kind != PT_CONF_YNODE_SEQ) {
        lerr(L, n, "expected a list, got %s", describe(n, buf, sizeof(buf)));
        return;
    }
    if (!enter_collection(L, n))
        return;
    size_t size = pt_conf_field_elem_size(fd);
    char *arr = pt_xcalloc(n->n ? n->n : 1, size);
    size_t count = 0;
    for (size_t i = 0; i < n->n && !L->stop; i++) {
        const ynode *ref = n->items[i];
        size_t old = path_push_index(L, i);
        const ynode *e = use(L, ref);
        bool is_value = fd->type == PROTOBUF_C_TYPE_MESSAGE &&
                        fd->descriptor == &google__protobuf__value__descriptor;
        if (e && is_null(e) && !is_value) {
            lerr(L, ref, "a list element may not be null");
        } else if (e) {
            void *dst = arr + count * size;
            bool ok = true;
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
                *(ProtobufCMessage **)dst = new_message(L, fd->descriptor, ref, e);
            else
                ok = write_scalar(L, fd, e, dst);
            if (ok)
                record(L, m, fd, (int64_t)count++, ref);
        }
        path_pop(L, old);
    }
    if (count) {
        *(size_t *)member(m, fd->quantifier_offset) = count;
        *(void **)member(m, fd->offset) = arr;
    } else {
        free(arr);
    }
    leave_collection(L);
}

/* A proto map (including Struct.fields): a YAML mapping of entries. */
static void fill_map(struct loader *L, ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                     const ynode *n)
{
    char buf[128];
    if (n->kind != PT_CONF_YNODE_MAP) {
        lerr(L, n, "expected a mapping, got %s", describe(n, buf, sizeof(buf)));
        return;
    }
    if (!enter_collection(L, n))
        return;
    const ProtobufCMessageDescriptor *ed = fd->descriptor;
    const ProtobufCFieldDescriptor *kfd = field_by_id(ed, 1), *vfd = field_by_id(ed, 2);
    struct epairs pairs = {0};
    collect_pairs(L, (ynode *)n, &pairs, false);
    ProtobufCMessage **arr = pt_xcalloc(pairs.n ? pairs.n : 1, sizeof(*arr));
    size_t count = 0;
    for (size_t i = 0; i < pairs.n && !L->stop; i++) {
        const struct epair *p = &pairs.v[i];
        size_t old = path_push_key(L, p->key->str, p->key->len);
        ProtobufCMessage *entry = message_alloc(ed);
        record(L, entry, NULL, -1, p->key);
        if (write_scalar(L, kfd, p->key, member(entry, kfd->offset))) {
            record(L, m, fd, (int64_t)count, p->key);
            arr[count++] = entry;
            load_field(L, entry, vfd, p->value);
        } else {
            protobuf_c_message_free_unpacked(entry, NULL);
        }
        path_pop(L, old);
    }
    free(pairs.v);
    if (count) {
        *(size_t *)member(m, fd->quantifier_offset) = count;
        *(void **)member(m, fd->offset) = arr;
    } else {
        free(arr);
    }
    leave_collection(L);
}

static void oneof_conflict(struct loader *L, const ProtobufCMessage *m,
                           const ProtobufCFieldDescriptor *fd, const ynode *at)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char list[256];
    size_t j = 0;
    list[0] = '\0';
    for (unsigned i = 0; i < d->n_fields && j + 1 < sizeof(list); i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            f->quantifier_offset == fd->quantifier_offset)
            j += (size_t)snprintf(list + j, sizeof(list) - j, "%s%s", j ? ", " : "", f->name);
    }
    lerr(L, at, "only one of %s may be set", list);
}

static void set_singular(struct loader *L, ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                         const ynode *ref, const ynode *n)
{
    bool oneof = (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
    if (oneof) {
        uint32_t which = *(uint32_t *)member(m, fd->quantifier_offset);
        if (which != 0 && which != fd->id) {
            oneof_conflict(L, m, fd, ref);
            return;
        }
    }
    void *dst = member(m, fd->offset);
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
        *(ProtobufCMessage **)dst = new_message(L, fd->descriptor, ref, n);
    else if (!write_scalar(L, fd, n, dst))
        return;
    if (oneof)
        *(uint32_t *)member(m, fd->quantifier_offset) = fd->id;
    else if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->type != PROTOBUF_C_TYPE_STRING &&
             fd->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)member(m, fd->quantifier_offset) = 1;
}

static void load_field(struct loader *L, ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                       const ynode *ref)
{
    const ynode *n = use(L, ref);
    if (!n)
        return;
    record(L, m, fd, -1, ref);
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        if (is_null(n))
            return;
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE && pt_conf_is_map_entry(fd->descriptor))
            fill_map(L, m, fd, n);
        else
            fill_repeated(L, m, fd, n);
        return;
    }
    /* null leaves a field unset, except a Value, where null is a value. */
    if (is_null(n) && !(fd->type == PROTOBUF_C_TYPE_MESSAGE &&
                        fd->descriptor == &google__protobuf__value__descriptor))
        return;
    set_singular(L, m, fd, ref, n);
}

static void unknown_key(struct loader *L, const ProtobufCMessageDescriptor *d, const ynode *key)
{
    char buf[128];
    size_t cap = key->len <= 3 ? 1 : key->len <= 6 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = cap + 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *f = d->fields[i].name;
        size_t dist = pt_conf_edit_distance(key->str, key->len, f, strlen(f), cap);
        if (dist < best_d) {
            best_d = dist;
            best = f;
        }
    }
    if (best)
        lerr(L, key, "unknown key %s; did you mean \"%s\"?", describe(key, buf, sizeof(buf)), best);
    else
        lerr(L, key, "unknown key %s", describe(key, buf, sizeof(buf)));
}

static void fill_fields(struct loader *L, ProtobufCMessage *m, const ynode *n)
{
    char buf[128];
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (n->kind != PT_CONF_YNODE_MAP) {
        lerr(L, n, "expected a mapping, got %s", describe(n, buf, sizeof(buf)));
        return;
    }
    if (!enter_collection(L, n))
        return;
    struct epairs pairs = {0};
    collect_pairs(L, (ynode *)n, &pairs, false);
    /* The key that set each field, to catch both spellings of one field. */
    const ynode **set = pt_xcalloc(d->n_fields ? d->n_fields : 1, sizeof(*set));
    for (size_t i = 0; i < pairs.n && !L->stop; i++) {
        const struct epair *p = &pairs.v[i];
        const ProtobufCFieldDescriptor *fd = pt_conf_field_find(d, p->key->str, p->key->len);
        if (!fd) {
            unknown_key(L, d, p->key);
            continue;
        }
        size_t idx = (size_t)(fd - d->fields);
        if (set[idx]) {
            /* Both spellings (snake_case and lowerCamelCase) of one field. */
            if (!p->merged)
                lerr(L, p->key, "duplicate key %s (%s is already set at line %u, column %u)",
                     describe(p->key, buf, sizeof(buf)), fd->name, set[idx]->line, set[idx]->col);
            continue;
        }
        set[idx] = p->key;
        size_t old = path_push_key(L, fd->name, strlen(fd->name));
        load_field(L, m, fd, p->value);
        path_pop(L, old);
    }
    free((void *)set);
    free(pairs.v);
    leave_collection(L);
}

/* google.protobuf.Value: any YAML. Plain scalars resolve as YAML 1.2 core
 * (null, booleans, decimal numbers); everything else is a string. */
static void fill_value(struct loader *L, Google__Protobuf__Value *v, const ynode *ref,
                       const ynode *n)
{
    char buf[128];
    double d;
    bool b;
    switch (n->kind) {
    case PT_CONF_YNODE_MAP:
        v->struct_value = (Google__Protobuf__Struct *)new_message(
            L, &google__protobuf__struct__descriptor, ref, n);
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
        return;
    case PT_CONF_YNODE_SEQ:
        v->list_value = (Google__Protobuf__ListValue *)new_message(
            L, &google__protobuf__list_value__descriptor, ref, n);
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
        return;
    default:
        break;
    }
    if (n->plain && pt_conf_is_null_word(n->str, n->len)) {
        v->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
    } else if (n->plain && pt_conf_parse_bool(n->str, n->len, &b)) {
        v->bool_value = b;
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
    } else if (n->plain && pt_conf_looks_numeric(n->str, n->len)) {
        if (pt_conf_parse_double(n->str, n->len, &d) != PT_CONF_NUM_OK) {
            lerr(L, n, "number %s is out of range", describe(n, buf, sizeof(buf)));
            return;
        }
        v->number_value = d;
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    } else if (no_nul(L, n)) {
        v->string_value = pt_xstrndup(n->str, n->len);
        v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    }
}

/* google.protobuf.Timestamp: an RFC 3339 string. */
static void fill_timestamp(struct loader *L, Google__Protobuf__Timestamp *t, const ynode *n)
{
    char buf[128];
    int64_t seconds;
    int32_t nanos;
    if (n->kind != PT_CONF_YNODE_SCALAR ||
        pt_conf_timestamp_parse(n->str, n->len, &seconds, &nanos) != 0) {
        lerr(L, n, "expected an RFC 3339 time (\"2026-11-28T01:02:03Z\"), got %s",
             describe(n, buf, sizeof(buf)));
        return;
    }
    t->seconds = seconds;
    t->nanos = nanos;
}

static void fill(struct loader *L, ProtobufCMessage *m, const ynode *ref, const ynode *n)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &google__protobuf__value__descriptor) {
        fill_value(L, (Google__Protobuf__Value *)m, ref, n);
    } else if (d == &google__protobuf__struct__descriptor) {
        const ProtobufCFieldDescriptor *fd = field_by_id(d, 1);
        record(L, m, fd, -1, ref);
        fill_map(L, m, fd, n);
    } else if (d == &google__protobuf__list_value__descriptor) {
        const ProtobufCFieldDescriptor *fd = field_by_id(d, 1);
        record(L, m, fd, -1, ref);
        fill_repeated(L, m, fd, n);
    } else if (d == &google__protobuf__timestamp__descriptor) {
        fill_timestamp(L, (Google__Protobuf__Timestamp *)m, n);
    } else if (pt_conf_is_wrapper(d)) {
        record(L, m, &d->fields[0], -1, ref);
        set_singular(L, m, &d->fields[0], ref, n);
    } else {
        fill_fields(L, m, n);
    }
}

/* ---- entry points ---- */

static struct pt_conf *conf_new(const ProtobufCMessageDescriptor *desc, const char *name)
{
    struct pt_conf *c = pt_xcalloc(1, sizeof(*c));
    c->name = pt_xstrdup(name ? name : "<config>");
    c->msg = message_alloc(desc);
    return c;
}

struct pt_conf *pt_conf_load_message_string(const ProtobufCMessageDescriptor *desc,
                                            const char *name, const char *text, size_t len,
                                            struct pt_diag *diag)
{
    struct pt_conf *c = conf_new(desc, name);
    if (len > PT_CONF_MAX_FILE_BYTES) {
        pt_diag_addf(diag, c->name, NULL, "file is larger than %u bytes", PT_CONF_MAX_FILE_BYTES);
        pt_conf_free(c);
        return NULL;
    }
    struct pt_conf_ytree tree;
    if (pt_conf_ytree_parse(&tree, c->name, text ? text : "", text ? len : 0, diag) != 0) {
        pt_conf_ytree_fini(&tree);
        pt_conf_free(c);
        return NULL;
    }
    struct loader L = {.name = c->name, .diag = diag, .pos = &c->pos};
    const ynode *root = tree.root;
    if (root) {
        const ynode *n = use(&L, root);
        record(&L, c->msg, NULL, -1, root);
        char buf[128];
        bool loose = desc == &google__protobuf__value__descriptor ||
                     desc == &google__protobuf__list_value__descriptor ||
                     desc == &google__protobuf__timestamp__descriptor || pt_conf_is_wrapper(desc);
        if (n && !is_null(n) && !loose && n->kind != PT_CONF_YNODE_MAP)
            lerr(&L, n, "a configuration document must be a mapping, got %s",
                 describe(n, buf, sizeof(buf)));
        else if (n && (!is_null(n) || desc == &google__protobuf__value__descriptor))
            fill(&L, c->msg, root, n);
    }
    pt_conf_ytree_fini(&tree);
    free(L.path);
    pt_conf_postab_seal(&c->pos);
    if (L.errors) {
        pt_conf_free(c);
        return NULL;
    }
    return c;
}

struct pt_conf *pt_conf_load_message_file(const ProtobufCMessageDescriptor *desc, const char *path,
                                          struct pt_diag *diag)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        pt_diag_addf(diag, path, NULL, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 64 * 1024, len = 0;
    char *text = pt_xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap > PT_CONF_MAX_FILE_BYTES)
                break;
            cap *= 2;
            text = pt_xrealloc(text, cap);
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        pt_diag_addf(diag, path, NULL, "cannot read: %s", strerror(err));
        free(text);
        return NULL;
    }
    struct pt_conf *c = pt_conf_load_message_string(desc, path, text, len, diag);
    free(text);
    return c;
}

struct pt_conf *pt_conf_load_file(const char *path, struct pt_diag *diag)
{
    return pt_conf_load_message_file(&portico__config__v1__config__descriptor, path, diag);
}

struct pt_conf *pt_conf_load_string(const char *name, const char *text, size_t len,
                                    struct pt_diag *diag)
{
    return pt_conf_load_message_string(&portico__config__v1__config__descriptor, name, text, len,
                                       diag);
}

const ProtobufCMessage *pt_conf_message(const struct pt_conf *c)
{
    return c->msg;
}

const Portico__Config__V1__Config *pt_conf_config(const struct pt_conf *c)
{
    if (!c || c->msg->descriptor != &portico__config__v1__config__descriptor)
        return NULL;
    return (const Portico__Config__V1__Config *)c->msg;
}

const char *pt_conf_name(const struct pt_conf *c)
{
    return c->name;
}

void pt_conf_free(struct pt_conf *c)
{
    if (!c)
        return;
    protobuf_c_message_free_unpacked(c->msg, NULL);
    pt_conf_postab_fini(&c->pos);
    free(c->name);
    free(c);
}
