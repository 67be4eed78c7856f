/*
 * admin/desc.c - descriptor index and the reflection exchange (sans I/O).
 */
#include "admin/desc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "portico/errors.h"

/* Bounds on what we index: the embedded set is ours, but a bound costs
 * nothing and keeps every loop finite. */
#define MAX_FILES 4096u
#define MAX_NESTING 64u

struct desc_file {
    const uint8_t *raw;
    size_t len;
    Google__Protobuf__FileDescriptorProto *fd;
    size_t *deps; /* indexes of direct dependencies */
    size_t ndeps;
};

struct symbol {
    char *name;
    size_t file;
    bool is_message;
};

struct extension {
    char *extendee; /* fully qualified, no leading dot */
    int32_t number;
    size_t file;
};

struct pt_admin_desc {
    struct desc_file *files;
    size_t nfiles;
    struct symbol *syms;
    size_t nsyms, capsyms;
    struct extension *exts;
    size_t nexts, capexts;
};

/* Progress: bytes of the varint at p (>0), or 0 when it is truncated/too long. */
static size_t read_varint(const uint8_t *p, size_t len, uint64_t *v)
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

static char *join_name(const char *prefix, const char *name)
{
    size_t a = prefix ? strlen(prefix) : 0, b = strlen(name);
    char *s = pt_xmalloc(a + b + 2);
    if (a) {
        memcpy(s, prefix, a);
        s[a++] = '.';
    }
    memcpy(s + a, name, b + 1);
    return s;
}

static void add_symbol(struct pt_admin_desc *d, char *name, size_t file, bool is_message)
{
    if (d->nsyms == d->capsyms) {
        d->capsyms = d->capsyms ? d->capsyms * 2 : 256;
        d->syms = pt_xrealloc(d->syms, d->capsyms * sizeof(*d->syms));
    }
    d->syms[d->nsyms++] = (struct symbol){name, file, is_message};
}

static void add_extensions(struct pt_admin_desc *d, const char *scope, size_t file,
                           Google__Protobuf__FieldDescriptorProto **f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!f[i]->name || !f[i]->extendee)
            continue;
        add_symbol(d, join_name(scope, f[i]->name), file, false);
        if (d->nexts == d->capexts) {
            d->capexts = d->capexts ? d->capexts * 2 : 64;
            d->exts = pt_xrealloc(d->exts, d->capexts * sizeof(*d->exts));
        }
        const char *e = f[i]->extendee;
        d->exts[d->nexts++] =
            (struct extension){pt_xstrdup(e[0] == '.' ? e + 1 : e), f[i]->number, file};
    }
}

static void add_enums(struct pt_admin_desc *d, const char *scope, size_t file,
                      Google__Protobuf__EnumDescriptorProto **e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (e[i]->name)
            add_symbol(d, join_name(scope, e[i]->name), file, false);
}

static void add_messages(struct pt_admin_desc *d, const char *scope, size_t file,
                         Google__Protobuf__DescriptorProto **m, size_t n, unsigned depth)
{
    if (depth > MAX_NESTING)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!m[i]->name)
            continue;
        char *full = join_name(scope, m[i]->name);
        add_symbol(d, full, file, true);
        add_messages(d, full, file, m[i]->nested_type, m[i]->n_nested_type, depth + 1);
        add_enums(d, full, file, m[i]->enum_type, m[i]->n_enum_type);
        add_extensions(d, full, file, m[i]->extension, m[i]->n_extension);
    }
}

static int cmp_symbol(const void *a, const void *b)
{
    return strcmp(((const struct symbol *)a)->name, ((const struct symbol *)b)->name);
}

static void index_file(struct pt_admin_desc *d, size_t fi)
{
    Google__Protobuf__FileDescriptorProto *fd = d->files[fi].fd;
    const char *pkg = fd->package && fd->package[0] ? fd->package : NULL;
    add_messages(d, pkg, fi, fd->message_type, fd->n_message_type, 0);
    add_enums(d, pkg, fi, fd->enum_type, fd->n_enum_type);
    add_extensions(d, pkg, fi, fd->extension, fd->n_extension);
    for (size_t i = 0; i < fd->n_service; i++) {
        Google__Protobuf__ServiceDescriptorProto *s = fd->service[i];
        if (!s->name)
            continue;
        char *svc = join_name(pkg, s->name);
        add_symbol(d, svc, fi, false);
        for (size_t j = 0; j < s->n_method; j++)
            if (s->method[j]->name)
                add_symbol(d, join_name(svc, s->method[j]->name), fi, false);
    }
}

struct pt_admin_desc *pt_admin_desc_new(const uint8_t *set, size_t len, char *err, size_t errlen)
{
    struct pt_admin_desc *d = pt_xcalloc(1, sizeof(*d));
    size_t cap = 0;
    size_t off = 0;
    while (off < len) {
        uint64_t key, flen;
        size_t k = read_varint(set + off, len - off, &key);
        if (!k || key != ((1u << 3) | 2u)) {
            snprintf(err, errlen, "descriptor set: unexpected field at byte %zu", off);
            goto fail;
        }
        off += k;
        k = read_varint(set + off, len - off, &flen);
        if (!k || flen > len - off - k) {
            snprintf(err, errlen, "descriptor set: truncated file at byte %zu", off);
            goto fail;
        }
        off += k;
        if (d->nfiles == MAX_FILES) {
            snprintf(err, errlen, "descriptor set: more than %u files", MAX_FILES);
            goto fail;
        }
        if (d->nfiles == cap) {
            cap = cap ? cap * 2 : 32;
            d->files = pt_xrealloc(d->files, cap * sizeof(*d->files));
        }
        struct desc_file *f = &d->files[d->nfiles];
        memset(f, 0, sizeof(*f));
        f->raw = set + off;
        f->len = (size_t)flen;
        f->fd = google__protobuf__file_descriptor_proto__unpack(NULL, f->len, f->raw);
        if (!f->fd || !f->fd->name) {
            if (f->fd)
                google__protobuf__file_descriptor_proto__free_unpacked(f->fd, NULL);
            snprintf(err, errlen, "descriptor set: file %zu does not parse", d->nfiles);
            goto fail;
        }
        d->nfiles++;
        off += (size_t)flen;
    }
    for (size_t i = 0; i < d->nfiles; i++) {
        struct desc_file *f = &d->files[i];
        f->deps = pt_xcalloc(f->fd->n_dependency + 1, sizeof(*f->deps));
        for (size_t j = 0; j < f->fd->n_dependency; j++) {
            size_t dep;
            if (pt_admin_desc_find_file(d, f->fd->dependency[j], &dep) != 0) {
                snprintf(err, errlen, "descriptor set: %s imports %s, which is not in the set",
                         f->fd->name, f->fd->dependency[j]);
                goto fail;
            }
            f->deps[f->ndeps++] = dep;
        }
        index_file(d, i);
    }
    if (d->nsyms)
        qsort(d->syms, d->nsyms, sizeof(*d->syms), cmp_symbol);
    return d;
fail:
    pt_admin_desc_free(d);
    return NULL;
}

void pt_admin_desc_free(struct pt_admin_desc *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nfiles; i++) {
        google__protobuf__file_descriptor_proto__free_unpacked(d->files[i].fd, NULL);
        free(d->files[i].deps);
    }
    for (size_t i = 0; i < d->nsyms; i++)
        free(d->syms[i].name);
    for (size_t i = 0; i < d->nexts; i++)
        free(d->exts[i].extendee);
    free(d->files);
    free(d->syms);
    free(d->exts);
    free(d);
}

size_t pt_admin_desc_file_count(const struct pt_admin_desc *d)
{
    return d->nfiles;
}

const char *pt_admin_desc_file_name(const struct pt_admin_desc *d, size_t file)
{
    return d->files[file].fd->name;
}

const uint8_t *pt_admin_desc_file_bytes(const struct pt_admin_desc *d, size_t file, size_t *len)
{
    *len = d->files[file].len;
    return d->files[file].raw;
}

int pt_admin_desc_find_file(const struct pt_admin_desc *d, const char *name, size_t *file)
{
    for (size_t i = 0; i < d->nfiles; i++) {
        if (strcmp(d->files[i].fd->name, name) == 0) {
            *file = i;
            return 0;
        }
    }
    return PT_ERR_NOT_FOUND;
}

static const struct symbol *find_sym(const struct pt_admin_desc *d, const char *name)
{
    if (!d->nsyms)
        return NULL;
    struct symbol key = {.name = (char *)name};
    return bsearch(&key, d->syms, d->nsyms, sizeof(*d->syms), cmp_symbol);
}

int pt_admin_desc_find_symbol(const struct pt_admin_desc *d, const char *symbol, size_t *file)
{
    if (symbol[0] == '.')
        symbol++;
    const struct symbol *s = find_sym(d, symbol);
    if (!s)
        return PT_ERR_NOT_FOUND;
    *file = s->file;
    return 0;
}

int pt_admin_desc_find_extension(const struct pt_admin_desc *d, const char *extendee,
                                 int32_t number, size_t *file)
{
    if (extendee[0] == '.')
        extendee++;
    for (size_t i = 0; i < d->nexts; i++) {
        if (d->exts[i].number == number && strcmp(d->exts[i].extendee, extendee) == 0) {
            *file = d->exts[i].file;
            return 0;
        }
    }
    return PT_ERR_NOT_FOUND;
}

int pt_admin_desc_extension_numbers(const struct pt_admin_desc *d, const char *type, int32_t **out,
                                    size_t *n)
{
    if (type[0] == '.')
        type++;
    const struct symbol *s = find_sym(d, type);
    if (!s || !s->is_message)
        return PT_ERR_NOT_FOUND;
    *out = pt_xcalloc(d->nexts + 1, sizeof(**out));
    *n = 0;
    for (size_t i = 0; i < d->nexts; i++)
        if (strcmp(d->exts[i].extendee, type) == 0)
            (*out)[(*n)++] = d->exts[i].number;
    return 0;
}

size_t pt_admin_desc_closure(const struct pt_admin_desc *d, size_t file, size_t **out)
{
    /* Breadth-first over imports; `seen` bounds the work by nfiles. */
    size_t *list = pt_xcalloc(d->nfiles, sizeof(*list));
    bool *seen = pt_xcalloc(d->nfiles, sizeof(*seen));
    size_t n = 0;
    list[n++] = file;
    seen[file] = true;
    for (size_t i = 0; i < n; i++) {
        const struct desc_file *f = &d->files[list[i]];
        for (size_t j = 0; j < f->ndeps; j++) {
            if (!seen[f->deps[j]]) {
                seen[f->deps[j]] = true;
                list[n++] = f->deps[j];
            }
        }
    }
    free(seen);
    *out = list;
    return n;
}

/* ---- the reflection exchange ---- */

#define GRPC_STATUS_INVALID_ARGUMENT 3
#define GRPC_STATUS_NOT_FOUND 5

static uint8_t *pack(const ProtobufCMessage *m, size_t *outlen)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = pt_xmalloc(n ? n : 1);
    *outlen = protobuf_c_message_pack(m, buf);
    return buf;
}

uint8_t *pt_admin_reflect_answer(const struct pt_admin_desc *d, const char *const *services,
                                 size_t n, const uint8_t *req, size_t reqlen, size_t *outlen)
{
    Grpc__Reflection__V1__ServerReflectionRequest *rq =
        grpc__reflection__v1__server_reflection_request__unpack(NULL, reqlen, req);
    if (!rq)
        return NULL;
    Grpc__Reflection__V1__ServerReflectionResponse rs =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1__FileDescriptorResponse fdr =
        GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1__ExtensionNumberResponse enr =
        GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
    Grpc__Reflection__V1__ListServiceResponse lsr =
        GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1__ErrorResponse er = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1__ServiceResponse *svcs = NULL, **svcp = NULL;
    size_t *closure = NULL;
    int32_t *numbers = NULL;
    char msg[512];
    size_t file = 0;
    int rc = PT_ERR_NOT_FOUND;

    rs.valid_host = rq->host;
    rs.original_request = rq;
    switch (rq->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        svcs = pt_xcalloc(n + 1, sizeof(*svcs));
        svcp = pt_xcalloc(n + 1, sizeof(*svcp));
        for (size_t i = 0; i < n; i++) {
            grpc__reflection__v1__service_response__init(&svcs[i]);
            svcs[i].name = (char *)services[i];
            svcp[i] = &svcs[i];
        }
        lsr.n_service = n;
        lsr.service = svcp;
        rs.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        rs.list_services_response = &lsr;
        goto done;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        snprintf(msg, sizeof(msg), "file %s not found", rq->file_by_filename);
        rc = pt_admin_desc_find_file(d, rq->file_by_filename, &file);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        snprintf(msg, sizeof(msg), "symbol %s not found", rq->file_containing_symbol);
        rc = pt_admin_desc_find_symbol(d, rq->file_containing_symbol, &file);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
        const Grpc__Reflection__V1__ExtensionRequest *x = rq->file_containing_extension;
        snprintf(msg, sizeof(msg), "extension %d of %s not found", x ? x->extension_number : 0,
                 x && x->containing_type ? x->containing_type : "");
        if (x && x->containing_type)
            rc = pt_admin_desc_find_extension(d, x->containing_type, x->extension_number, &file);
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
        size_t nn = 0;
        snprintf(msg, sizeof(msg), "type %s not found", rq->all_extension_numbers_of_type);
        if (pt_admin_desc_extension_numbers(d, rq->all_extension_numbers_of_type, &numbers, &nn) !=
            0)
            goto error;
        enr.base_type_name = rq->all_extension_numbers_of_type;
        if (enr.base_type_name[0] == '.')
            enr.base_type_name++;
        enr.n_extension_number = nn;
        enr.extension_number = numbers;
        rs.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        rs.all_extension_numbers_response = &enr;
        goto done;
    }
    default:
        er.error_code = GRPC_STATUS_INVALID_ARGUMENT;
        er.error_message = "no request in ServerReflectionRequest";
        rs.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
        rs.error_response = &er;
        goto done;
    }
    if (rc != 0)
        goto error;
    size_t nf = pt_admin_desc_closure(d, file, &closure);
    fdr.file_descriptor_proto = pt_xcalloc(nf, sizeof(*fdr.file_descriptor_proto));
    for (size_t i = 0; i < nf; i++) {
        size_t l;
        const uint8_t *b = pt_admin_desc_file_bytes(d, closure[i], &l);
        fdr.file_descriptor_proto[i].data = (uint8_t *)b;
        fdr.file_descriptor_proto[i].len = l;
    }
    fdr.n_file_descriptor_proto = nf;
    rs.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    rs.file_descriptor_response = &fdr;
    goto done;
error:
    er.error_code = GRPC_STATUS_NOT_FOUND;
    er.error_message = msg;
    rs.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    rs.error_response = &er;
done:;
    uint8_t *out = pack(&rs.base, outlen);
    free(fdr.file_descriptor_proto);
    free(closure);
    free(numbers);
    free(svcs);
    free(svcp);
    grpc__reflection__v1__server_reflection_request__free_unpacked(rq, NULL);
    return out;
}
