/*
 * transcode/descpool.c - the pool's life cycle: input (a FileDescriptorSet
 * or a list of FileDescriptorProtos), limits, the symbol table, lookups,
 * message initialisation and the wire-depth check. Descriptor construction
 * itself is in descpool_build.c.
 */
#include "transcode/descpool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/errors.h"
#include "transcode/descpool_int.h"

/* How far a FileDescriptorProto nests on the wire beyond its message
 * declarations (field -> options -> uninterpreted option -> name part). */
#define WIRE_DEPTH_SLACK 8u

void pt_descpool_limits_default(struct pt_descpool_limits *l)
{
    l->max_bytes = PT_DESCPOOL_DEFAULT_MAX_BYTES;
    l->max_files = PT_DESCPOOL_DEFAULT_MAX_FILES;
    l->max_messages = PT_DESCPOOL_DEFAULT_MAX_MESSAGES;
    l->max_fields = PT_DESCPOOL_DEFAULT_MAX_FIELDS;
    l->max_enum_values = PT_DESCPOOL_DEFAULT_MAX_ENUM_VALUES;
    l->max_methods = PT_DESCPOOL_DEFAULT_MAX_METHODS;
    l->max_depth = PT_DESCPOOL_DEFAULT_MAX_DEPTH;
    l->max_memory = PT_DESCPOOL_DEFAULT_MAX_MEMORY;
}

static void limits_fill(struct pt_descpool_limits *out, const struct pt_descpool_limits *in)
{
    pt_descpool_limits_default(out);
    if (!in)
        return;
#define TAKE(f) \
    if (in->f)  \
    out->f = in->f
    TAKE(max_bytes);
    TAKE(max_files);
    TAKE(max_messages);
    TAKE(max_fields);
    TAKE(max_enum_values);
    TAKE(max_methods);
    TAKE(max_depth);
    TAKE(max_memory);
#undef TAKE
}

static void verr(struct dp_build *b, const char *fmt, va_list ap)
{
    if (b->err && b->errlen && !b->err[0])
        vsnprintf(b->err, b->errlen, fmt, ap);
}

int dp_fail(struct dp_build *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(b, fmt, ap);
    va_end(ap);
    return PT_ERR_INVALID;
}

int dp_limit(struct dp_build *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(b, fmt, ap);
    va_end(ap);
    return PT_ERR_LIMIT;
}

void *dp_alloc(struct dp_build *b, size_t n)
{
    void *p = pt_arena_alloc(&b->pool->arena, n ? n : 1);
    if (p)
        memset(p, 0, n ? n : 1);
    return p;
}

char *dp_strdup(struct dp_build *b, const char *s)
{
    return pt_arena_strndup(&b->pool->arena, s, strlen(s));
}

/* ---- wire format scan ---------------------------------------------------- */

struct scan {
    size_t max_depth;
    size_t *budget; /* length-delimited elements still allowed; NULL = unbounded */
    bool over_budget;
};

/* Progress: bytes of the varint at p, or 0 when truncated or longer than 10. */
static size_t varint(const uint8_t *p, size_t len, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

static const ProtobufCFieldDescriptor *field_by_number(const ProtobufCMessageDescriptor *d,
                                                       uint64_t number)
{
    size_t lo = 0, hi = d->n_fields;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->fields[mid].id == number)
            return &d->fields[mid];
        if (d->fields[mid].id < number)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int scan_message(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
                        size_t depth, struct scan *s)
{
    if (depth > s->max_depth)
        return PT_ERR_LIMIT;
    while (len) {
        uint64_t tag, v;
        size_t n = varint(p, len, &tag);
        if (!n || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
            return PT_ERR_INVALID;
        p += n;
        len -= n;
        switch (tag & 7) {
        case 0:
            n = varint(p, len, &v);
            if (!n)
                return PT_ERR_INVALID;
            break;
        case 1:
            n = 8;
            break;
        case 5:
            n = 4;
            break;
        case 2: {
            size_t h = varint(p, len, &v);
            if (!h || v > len - h)
                return PT_ERR_INVALID;
            if (s->budget) {
                if (*s->budget == 0) {
                    s->over_budget = true;
                    return PT_ERR_LIMIT;
                }
                (*s->budget)--;
            }
            const ProtobufCFieldDescriptor *f = d ? field_by_number(d, tag >> 3) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor) {
                int rc = scan_message(f->descriptor, p + h, (size_t)v, depth + 1, s);
                if (rc)
                    return rc;
            }
            n = h + (size_t)v;
            break;
        }
        default: /* groups (3, 4) and the unused wire types */
            return PT_ERR_INVALID;
        }
        if (n > len)
            return PT_ERR_INVALID;
        p += n;
        len -= n;
    }
    return 0;
}

int pt_descpool_check_depth(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                            size_t max_depth)
{
    struct scan s = {max_depth, NULL, false};
    if (max_depth == 0)
        return PT_ERR_LIMIT;
    return scan_message(d, buf, len, 1, &s);
}

/* ---- input --------------------------------------------------------------- */

static int cmp_file_name(const void *a, const void *b)
{
    const struct dp_file *x = *(const struct dp_file *const *)a;
    const struct dp_file *y = *(const struct dp_file *const *)b;
    int c = strcmp(x->fd->name, y->fd->name);
    if (c)
        return c;
    return x < y ? -1 : x > y;
}

static const struct dp_file *file_find(struct dp_file **byname, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(byname[mid]->fd->name, name);
        if (c == 0)
            return byname[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Decode each file, drop exact duplicates, check every import is present. */
static int load_files(struct dp_build *b, const struct pt_str *in, size_t n)
{
    size_t total = 0;
    if (n > b->lim.max_files)
        return dp_limit(b, "%zu files exceed the limit of %zu", n, b->lim.max_files);
    for (size_t i = 0; i < n; i++) {
        if (in[i].len > b->lim.max_bytes - total)
            return dp_limit(b, "descriptors exceed the limit of %zu bytes", b->lim.max_bytes);
        total += in[i].len;
    }
    size_t allowed = 4 * (b->lim.max_messages + b->lim.max_fields + b->lim.max_enum_values +
                          b->lim.max_methods) +
                     64 * b->lim.max_files;
    size_t budget = allowed;
    struct scan s = {b->lim.max_depth + WIRE_DEPTH_SLACK, &budget, false};
    b->files = pt_xcalloc(n ? n : 1, sizeof(*b->files));
    b->nfiles = n;
    for (size_t i = 0; i < n; i++) {
        struct dp_file *f = &b->files[i];
        f->raw = (const uint8_t *)in[i].ptr;
        f->len = in[i].len;
        if (in[i].len && !in[i].ptr)
            return dp_fail(b, "file #%zu: no bytes", i);
        int rc = scan_message(&google__protobuf__file_descriptor_proto__descriptor, f->raw, f->len,
                              1, &s);
        if (rc == PT_ERR_LIMIT && s.over_budget)
            return dp_limit(b, "file #%zu: more than %zu length-delimited elements in all files", i,
                            allowed);
        if (rc == PT_ERR_LIMIT)
            return dp_limit(b, "file #%zu: declarations nest deeper than %zu", i, b->lim.max_depth);
        if (rc)
            return dp_fail(b, "file #%zu: not a serialized FileDescriptorProto (truncated?)", i);
        f->fd = google__protobuf__file_descriptor_proto__unpack(NULL, f->len, f->raw);
        if (!f->fd)
            return dp_fail(b, "file #%zu: not a serialized FileDescriptorProto", i);
        if (!f->fd->name || !f->fd->name[0])
            return dp_fail(b, "file #%zu: FileDescriptorProto without a name", i);
        const char *syntax = f->fd->syntax ? f->fd->syntax : "";
        if (strcmp(syntax, "proto3") == 0)
            f->proto3 = true;
        else if (strcmp(syntax, "") != 0 && strcmp(syntax, "proto2") != 0)
            return dp_fail(b, "%s: syntax \"%s\" is not supported (proto2 and proto3 are)",
                           f->fd->name, syntax);
    }

    struct dp_file **byname = pt_xcalloc(n ? n : 1, sizeof(*byname));
    for (size_t i = 0; i < n; i++)
        byname[i] = &b->files[i];
    qsort(byname, n, sizeof(*byname), cmp_file_name);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++) {
        struct dp_file *x = byname[i - 1], *y = byname[i];
        if (strcmp(x->fd->name, y->fd->name) != 0)
            continue;
        if (x->len != y->len || (x->len && memcmp(x->raw, y->raw, x->len) != 0))
            rc = dp_fail(b, "%s: given twice with different contents", y->fd->name);
        y->skip = true; /* byname keeps input order among equals: the first one stays */
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const Google__Protobuf__FileDescriptorProto *fd = b->files[i].fd;
        if (b->files[i].skip)
            continue;
        for (size_t d = 0; d < fd->n_dependency && !rc; d++) {
            if (!file_find(byname, n, fd->dependency[d]))
                rc = dp_fail(b, "%s: imports %s, which is not among the descriptors", fd->name,
                             fd->dependency[d]);
        }
    }
    free(byname);
    return rc;
}

/* ---- symbols ------------------------------------------------------------- */

static bool name_ok(const char *s)
{
    if (!s || !s[0])
        return false;
    for (; *s; s++) {
        if (*s == '.' || *s == '/' || (unsigned char)*s <= ' ')
            return false;
    }
    return true;
}

static char *join(struct dp_build *b, const char *scope, const char *name)
{
    size_t ls = scope ? strlen(scope) : 0, ln = strlen(name);
    char *s = pt_arena_alloc(&b->pool->arena, ls + ln + 2);
    if (!s)
        return NULL;
    if (ls) {
        memcpy(s, scope, ls);
        s[ls++] = '.';
    }
    memcpy(s + ls, name, ln + 1);
    return s;
}

#define GROW(arr, n, cap)                                       \
    do {                                                        \
        if ((n) == (cap)) {                                     \
            (cap) = (cap) ? (cap)*2 : 16;                       \
            (arr) = pt_xrealloc((arr), (cap) * sizeof(*(arr))); \
        }                                                       \
    } while (0)

static int collect_enum(struct dp_build *b, const struct dp_file *f,
                        const Google__Protobuf__EnumDescriptorProto *ep, const char *scope)
{
    if (!name_ok(ep->name))
        return dp_fail(b, "%s: an enum in %s has no valid name", f->fd->name,
                       scope && scope[0] ? scope : "the file");
    if (ep->n_value > b->lim.max_enum_values - b->nvalues)
        return dp_limit(b, "%s: more than %zu enum values", f->fd->name, b->lim.max_enum_values);
    b->nvalues += ep->n_value;
    GROW(b->enums, b->nenums, b->capenums);
    struct dp_benum *e = &b->enums[b->nenums];
    e->ep = ep;
    e->file = f;
    e->full = join(b, scope, ep->name);
    if (!e->full)
        return dp_limit(b, "descriptor pool exceeds %zu bytes of memory", b->lim.max_memory);
    b->nenums++;
    return 0;
}

static int collect_message(struct dp_build *b, const struct dp_file *f,
                           const Google__Protobuf__DescriptorProto *dp, const char *scope,
                           size_t depth)
{
    if (depth > b->lim.max_depth)
        return dp_limit(b, "%s: messages nest deeper than %zu in %s", f->fd->name, b->lim.max_depth,
                        scope);
    if (!name_ok(dp->name))
        return dp_fail(b, "%s: a message in %s has no valid name", f->fd->name,
                       scope && scope[0] ? scope : "the file");
    if (b->nmsgs >= b->lim.max_messages)
        return dp_limit(b, "%s: more than %zu messages", f->fd->name, b->lim.max_messages);
    if (dp->n_field > b->lim.max_fields - b->nfields)
        return dp_limit(b, "%s: more than %zu fields", f->fd->name, b->lim.max_fields);
    b->nfields += dp->n_field;
    GROW(b->msgs, b->nmsgs, b->capmsgs);
    struct dp_bmsg *m = &b->msgs[b->nmsgs];
    m->dp = dp;
    m->file = f;
    m->full = join(b, scope, dp->name);
    if (!m->full)
        return dp_limit(b, "descriptor pool exceeds %zu bytes of memory", b->lim.max_memory);
    b->nmsgs++;
    const char *full = m->full; /* b->msgs may move below */
    for (size_t i = 0; i < dp->n_nested_type; i++) {
        int rc = collect_message(b, f, dp->nested_type[i], full, depth + 1);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < dp->n_enum_type; i++) {
        int rc = collect_enum(b, f, dp->enum_type[i], full);
        if (rc)
            return rc;
    }
    return 0;
}

static int collect_file(struct dp_build *b, const struct dp_file *f)
{
    const Google__Protobuf__FileDescriptorProto *fd = f->fd;
    const char *pkg = fd->package && fd->package[0] ? fd->package : NULL;
    if (pkg) {
        size_t l = strlen(pkg);
        if (pkg[0] == '.' || pkg[l - 1] == '.' || strstr(pkg, "..") || strchr(pkg, '/'))
            return dp_fail(b, "%s: invalid package name \"%s\"", fd->name, pkg);
    }
    for (size_t i = 0; i < fd->n_message_type; i++) {
        int rc = collect_message(b, f, fd->message_type[i], pkg, 1);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < fd->n_enum_type; i++) {
        int rc = collect_enum(b, f, fd->enum_type[i], pkg);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < fd->n_service; i++) {
        const Google__Protobuf__ServiceDescriptorProto *sp = fd->service[i];
        if (!name_ok(sp->name))
            return dp_fail(b, "%s: a service has no valid name", fd->name);
        if (sp->n_method > b->lim.max_methods - b->nmethods)
            return dp_limit(b, "%s: more than %zu methods", fd->name, b->lim.max_methods);
        b->nmethods += sp->n_method;
        GROW(b->svcs, b->nsvcs, b->capsvcs);
        struct dp_bsvc *s = &b->svcs[b->nsvcs];
        s->sp = sp;
        s->file = f;
        s->full = join(b, pkg, sp->name);
        if (!s->full)
            return dp_limit(b, "descriptor pool exceeds %zu bytes of memory", b->lim.max_memory);
        b->nsvcs++;
    }
    return 0;
}

static int cmp_sym(const void *a, const void *b)
{
    return strcmp(((const struct dp_sym *)a)->name, ((const struct dp_sym *)b)->name);
}

static const char *sym_file(const struct dp_build *b, const struct dp_sym *s)
{
    switch (s->kind) {
    case DP_MESSAGE:
        return b->msgs[s->index].file->fd->name;
    case DP_ENUM:
        return b->enums[s->index].file->fd->name;
    default:
        return b->svcs[s->index].file->fd->name;
    }
}

/* The sorted symbol table; methods' full names and paths are made here. */
static int build_symbols(struct dp_build *b)
{
    struct pt_descpool *p = b->pool;
    size_t n = b->nmsgs + b->nenums + b->nsvcs + b->nmethods;
    p->syms = dp_alloc(b, n * sizeof(*p->syms));
    p->svcs = dp_alloc(b, b->nsvcs * sizeof(*p->svcs));
    if (!p->syms || !p->svcs)
        return dp_limit(b, "descriptor pool exceeds %zu bytes of memory", b->lim.max_memory);
    size_t k = 0;
    for (size_t i = 0; i < b->nmsgs; i++)
        p->syms[k++] = (struct dp_sym){b->msgs[i].full, DP_MESSAGE, i, 0};
    for (size_t i = 0; i < b->nenums; i++)
        p->syms[k++] = (struct dp_sym){b->enums[i].full, DP_ENUM, i, 0};
    for (size_t i = 0; i < b->nsvcs; i++) {
        const Google__Protobuf__ServiceDescriptorProto *sp = b->svcs[i].sp;
        struct pt_descpool_method *ms = dp_alloc(b, sp->n_method * sizeof(*ms));
        if (!ms)
            return dp_limit(b, "descriptor pool exceeds %zu bytes of memory", b->lim.max_memory);
        p->svcs[i].methods = ms;
        p->syms[k++] = (struct dp_sym){b->svcs[i].full, DP_SERVICE, i, 0};
        for (size_t j = 0; j < sp->n_method; j++) {
            const char *mname = sp->method[j]->name;
            if (!name_ok(mname))
                return dp_fail(b, "%s: a method of %s has no valid name", b->svcs[i].file->fd->name,
                               b->svcs[i].full);
            char *full = join(b, b->svcs[i].full, mname);
            char *path = full ? pt_arena_alloc(&p->arena, strlen(full) + 2) : NULL;
            if (!path)
                return dp_limit(b, "descriptor pool exceeds %zu bytes of memory",
                                b->lim.max_memory);
            size_t sl = strlen(b->svcs[i].full);
            path[0] = '/';
            memcpy(path + 1, full, strlen(full) + 1);
            path[1 + sl] = '/';
            ms[j].full_name = full;
            ms[j].path = path;
            p->syms[k++] = (struct dp_sym){full, DP_METHOD, i, j};
        }
    }
    p->nsyms = k;
    qsort(p->syms, k, sizeof(*p->syms), cmp_sym);
    for (size_t i = 1; i < k; i++) {
        if (strcmp(p->syms[i - 1].name, p->syms[i].name) == 0)
            return dp_fail(b, "duplicate symbol %s (in %s and %s)", p->syms[i].name,
                           sym_file(b, &p->syms[i - 1]), sym_file(b, &p->syms[i]));
    }
    return 0;
}

const struct dp_sym *dp_sym_find(const struct pt_descpool *p, const char *name, size_t len)
{
    size_t lo = 0, hi = p->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *s = p->syms[mid].name;
        int c = strncmp(s, name, len);
        if (c == 0 && s[len] != '\0')
            c = 1;
        if (c == 0)
            return &p->syms[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- life cycle ---------------------------------------------------------- */

static void build_fini(struct dp_build *b)
{
    for (size_t i = 0; i < b->nfiles; i++) {
        if (b->files[i].fd)
            google__protobuf__file_descriptor_proto__free_unpacked(b->files[i].fd, NULL);
    }
    free(b->files);
    free(b->msgs);
    free(b->enums);
    free(b->svcs);
}

static void pool_free(struct pt_descpool *p)
{
    pt_arena_fini(&p->arena);
    free(p);
}

struct pt_descpool *pt_descpool_new_from_files(const struct pt_str *files, size_t n,
                                               const struct pt_descpool_limits *lim, char *err,
                                               size_t errlen)
{
    struct dp_build b = {0};
    if (err && errlen)
        err[0] = '\0';
    b.err = err;
    b.errlen = errlen;
    limits_fill(&b.lim, lim);
    b.pool = pt_xcalloc(1, sizeof(*b.pool));
    atomic_init(&b.pool->refs, 1);
    pt_arena_init(&b.pool->arena, NULL, b.lim.max_memory);

    int rc = (n && !files) ? dp_fail(&b, "no files") : load_files(&b, files, n);
    for (size_t i = 0; i < b.nfiles && !rc; i++) {
        if (b.files[i].skip)
            continue;
        b.files[i].name = dp_strdup(&b, b.files[i].fd->name);
        rc = b.files[i].name
                 ? collect_file(&b, &b.files[i])
                 : dp_limit(&b, "descriptor pool exceeds %zu bytes of memory", b.lim.max_memory);
    }
    if (!rc)
        rc = build_symbols(&b);
    if (!rc)
        rc = dp_build_enums(&b);
    if (!rc)
        rc = dp_build_messages(&b);
    if (!rc)
        rc = dp_build_services(&b);
    build_fini(&b);
    if (rc) {
        if (err && errlen && !err[0])
            snprintf(err, errlen, "descriptor pool: error %d", rc);
        pool_free(b.pool);
        return NULL;
    }
    return b.pool;
}

struct pt_descpool *pt_descpool_new_from_set(const uint8_t *set, size_t len,
                                             const struct pt_descpool_limits *lim, char *err,
                                             size_t errlen)
{
    struct pt_descpool_limits l;
    limits_fill(&l, lim);
    if (err && errlen)
        err[0] = '\0';
    if (!set && len) {
        if (err && errlen)
            snprintf(err, errlen, "descriptor set: no bytes");
        return NULL;
    }
    if (len > l.max_bytes) {
        if (err && errlen)
            snprintf(err, errlen, "descriptor set of %zu bytes exceeds the limit of %zu", len,
                     l.max_bytes);
        return NULL;
    }
    /* FileDescriptorSet is `repeated FileDescriptorProto file = 1`: split it
     * by hand so both inputs share one path. */
    struct pt_str *files = NULL;
    size_t n = 0, cap = 0;
    const char *why = NULL;
    const uint8_t *p = set;
    size_t left = set ? len : 0;
    while (left && !why) {
        uint64_t tag, v;
        size_t k = varint(p, left, &tag);
        if (!k) {
            why = "truncated";
            break;
        }
        p += k;
        left -= k;
        switch (tag & 7) {
        case 0:
            k = varint(p, left, &v);
            break;
        case 1:
            k = left >= 8 ? 8 : 0;
            break;
        case 5:
            k = left >= 4 ? 4 : 0;
            break;
        case 2: {
            size_t h = varint(p, left, &v);
            if (!h || v > left - h) {
                k = 0;
                break;
            }
            if (tag >> 3 == 1) {
                GROW(files, n, cap); /* bounded by len: a file takes at least 2 bytes */
                files[n++] = (struct pt_str){(const char *)p + h, (size_t)v};
            }
            k = h + (size_t)v;
            break;
        }
        default:
            k = 0;
        }
        if (!why && (!k || (tag >> 3) == 0 || (tag >> 3 == 1 && (tag & 7) != 2)))
            why = "not a serialized FileDescriptorSet";
        p += k;
        left -= k;
    }
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "descriptor set: %s", why);
        free(files);
        return NULL;
    }
    struct pt_descpool *pool = pt_descpool_new_from_files(files, n, &l, err, errlen);
    free(files);
    return pool;
}

struct pt_descpool *pt_descpool_ref(struct pt_descpool *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void pt_descpool_unref(struct pt_descpool *p)
{
    if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        pool_free(p);
}

/* ---- lookups ------------------------------------------------------------- */

static const struct dp_sym *lookup(const struct pt_descpool *p, struct pt_str name, enum dp_kind k)
{
    if (!p || !name.ptr || !name.len)
        return NULL;
    if (name.ptr[0] == '.') {
        name.ptr++;
        name.len--;
    }
    if (!name.len || memchr(name.ptr, '\0', name.len))
        return NULL;
    const struct dp_sym *s = dp_sym_find(p, name.ptr, name.len);
    return s && s->kind == k ? s : NULL;
}

const ProtobufCMessageDescriptor *pt_descpool_find_message(const struct pt_descpool *p,
                                                           struct pt_str name)
{
    const struct dp_sym *s = lookup(p, name, DP_MESSAGE);
    return s ? &p->msgs[s->index]->desc : NULL;
}

const ProtobufCEnumDescriptor *pt_descpool_find_enum(const struct pt_descpool *p,
                                                     struct pt_str name)
{
    const struct dp_sym *s = lookup(p, name, DP_ENUM);
    return s ? p->enums[s->index] : NULL;
}

const struct pt_descpool_service *pt_descpool_find_service(const struct pt_descpool *p,
                                                           struct pt_str name)
{
    const struct dp_sym *s = lookup(p, name, DP_SERVICE);
    return s ? &p->svcs[s->index] : NULL;
}

const struct pt_descpool_method *pt_descpool_find_method(const struct pt_descpool *p,
                                                         struct pt_str name)
{
    char buf[1024];
    if (!name.ptr || name.len == 0 || name.len >= sizeof(buf))
        return NULL;
    /* "/pkg.Svc/Method" and "pkg.Svc/Method" -> "pkg.Svc.Method" */
    if (name.ptr[0] == '/') {
        name.ptr++;
        name.len--;
    }
    memcpy(buf, name.ptr, name.len);
    const char *slash = memchr(buf, '/', name.len);
    if (slash) {
        if (memchr(slash + 1, '/', name.len - (size_t)(slash + 1 - buf)))
            return NULL;
        buf[slash - buf] = '.';
    }
    const struct dp_sym *s = lookup(p, (struct pt_str){buf, name.len}, DP_METHOD);
    return s ? &p->svcs[s->index].methods[s->sub] : NULL;
}

size_t pt_descpool_message_count(const struct pt_descpool *p)
{
    return p->nmsgs;
}

const struct pt_descpool_message *pt_descpool_message_at(const struct pt_descpool *p, size_t i)
{
    return i < p->nmsgs ? &p->msgs[i]->info : NULL;
}

size_t pt_descpool_enum_count(const struct pt_descpool *p)
{
    return p->nenums;
}

const ProtobufCEnumDescriptor *pt_descpool_enum_at(const struct pt_descpool *p, size_t i)
{
    return i < p->nenums ? p->enums[i] : NULL;
}

size_t pt_descpool_service_count(const struct pt_descpool *p)
{
    return p->nsvcs;
}

const struct pt_descpool_service *pt_descpool_service_at(const struct pt_descpool *p, size_t i)
{
    return i < p->nsvcs ? &p->svcs[i] : NULL;
}

const struct pt_descpool_message *pt_descpool_message_info(const ProtobufCMessageDescriptor *d)
{
    if (!d || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC || !d->reserved1)
        return NULL;
    const struct pt_descpool_message *m = d->reserved1;
    return m->desc == d ? m : NULL;
}

const struct pt_descpool_field *pt_descpool_field_info(const ProtobufCMessageDescriptor *d,
                                                       const ProtobufCFieldDescriptor *f)
{
    const struct pt_descpool_message *m = pt_descpool_message_info(d);
    if (!m || !f || f < d->fields || f >= d->fields + d->n_fields)
        return NULL;
    return &m->fields[f - d->fields];
}

/* ---- messages ------------------------------------------------------------ */

void pt_descpool_message_init(const ProtobufCMessageDescriptor *d, void *msg)
{
    if (d->message_init) {
        d->message_init(msg);
        return;
    }
    memset(msg, 0, d->sizeof_message);
    ((ProtobufCMessage *)msg)->descriptor = d;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!f->default_value || f->label == PROTOBUF_C_LABEL_REPEATED ||
            (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            continue;
        char *m = (char *)msg + f->offset;
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
        case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_ENUM:
            memcpy(m, f->default_value, 4);
            break;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
            memcpy(m, f->default_value, 8);
            break;
        case PROTOBUF_C_TYPE_BOOL:
            memcpy(m, f->default_value, sizeof(protobuf_c_boolean));
            break;
        case PROTOBUF_C_TYPE_BYTES:
            memcpy(m, f->default_value, sizeof(ProtobufCBinaryData));
            break;
        case PROTOBUF_C_TYPE_STRING:
        case PROTOBUF_C_TYPE_MESSAGE:
            memcpy(m, &f->default_value, sizeof(void *));
            break;
        }
    }
}
