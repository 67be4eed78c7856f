/*
 * Generic helpers over protobuf-c messages for the admin API: the managed
 * kinds as one table, copies, comparisons, field-mask paths.
 *
 * Everything works from descriptors, so a field added to config.proto is
 * handled by Update masks, Apply diffs and exports without code here.
 * Messages are owned the protobuf-c way (default allocator: malloc), so
 * protobuf_c_message_free_unpacked(m, NULL) frees anything built here.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"
#include "store/store.h"
#include "core/arena.h"
#include "portico/errors.h"

/* ---- kinds ---- */

static const struct pt_kind_info kinds[PT_KIND_COUNT] = {
    [PT_KIND_SERVICE] = {"service", "services", "service",
                         &portico__config__v1__service__descriptor},
    [PT_KIND_ROUTE] = {"route", "routes", "route", &portico__config__v1__route__descriptor},
    [PT_KIND_RATE_LIMIT_RULE] = {"rate_limit_rule", "rate_limit_rules", "rule",
                                 &portico__config__v1__rate_limit_rule__descriptor},
    [PT_KIND_PLUGIN] = {"plugin", "plugins", "plugin", &portico__config__v1__plugin__descriptor},
    [PT_KIND_API_KEY] = {"api_key", "api_keys", "api_key",
                         &portico__config__v1__api_key__descriptor},
};

const struct pt_kind_info *pt_kind_info(enum pt_kind k)
{
    return &kinds[k];
}

static const ProtobufCFieldDescriptor *config_field(enum pt_kind k)
{
    return protobuf_c_message_descriptor_get_field_by_name(&portico__config__v1__config__descriptor,
                                                           kinds[k].field);
}

size_t pt_kind_count(const Config *cfg, enum pt_kind k)
{
    const ProtobufCFieldDescriptor *fd = config_field(k);
    return *(const size_t *)((const char *)cfg + fd->quantifier_offset);
}

ProtobufCMessage **pt_kind_items(const Config *cfg, enum pt_kind k)
{
    const ProtobufCFieldDescriptor *fd = config_field(k);
    return *(ProtobufCMessage * *const *)((const char *)cfg + fd->offset);
}

void pt_kind_set(Config *cfg, enum pt_kind k, ProtobufCMessage **items, size_t n)
{
    const ProtobufCFieldDescriptor *fd = config_field(k);
    *(size_t *)((char *)cfg + fd->quantifier_offset) = n;
    *(ProtobufCMessage ***)((char *)cfg + fd->offset) = items;
}

ssize_t pt_kind_find(const Config *cfg, enum pt_kind k, const char *name)
{
    size_t n = pt_kind_count(cfg, k);
    ProtobufCMessage **v = pt_kind_items(cfg, k);
    for (size_t i = 0; i < n; i++)
        if (strcmp(pt_obj_name(v[i]), name) == 0)
            return (ssize_t)i;
    return -1;
}

static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessage *m, const char *name)
{
    return protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
}

const char *pt_obj_name(const ProtobufCMessage *m)
{
    const char *s = *(char *const *)((const char *)m + field_of(m, "name")->offset);
    return s ? s : "";
}

void pt_obj_set_name(ProtobufCMessage *m, const char *name)
{
    char **p = (char **)((char *)m + field_of(m, "name")->offset);
    if (*p != protobuf_c_empty_string)
        free(*p);
    *p = pt_xstrdup(name);
}

uint64_t pt_obj_version(const ProtobufCMessage *m)
{
    return *(const uint64_t *)((const char *)m + field_of(m, "version")->offset);
}

void pt_obj_set_version(ProtobufCMessage *m, uint64_t v)
{
    *(uint64_t *)((char *)m + field_of(m, "version")->offset) = v;
}

/* ---- copies and comparisons ---- */

ProtobufCMessage *pt_msg_dup(const ProtobufCMessage *m)
{
    return pt_store_msg_dup(m);
}

void pt_msg_free(ProtobufCMessage *m)
{
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

bool pt_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    return pt_store_msg_equal(a, b);
}

bool pt_obj_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    /* Versions live in our own mutable copies; compare with both at 0. */
    ProtobufCMessage *x = (ProtobufCMessage *)a, *y = (ProtobufCMessage *)b;
    uint64_t va = pt_obj_version(x), vb = pt_obj_version(y);
    pt_obj_set_version(x, 0);
    pt_obj_set_version(y, 0);
    bool eq = pt_msg_equal(x, y);
    pt_obj_set_version(x, va);
    pt_obj_set_version(y, vb);
    return eq;
}

static bool value_equal(const ProtobufCFieldDescriptor *fd, const void *a, const void *b)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *x = *(char *const *)a, *y = *(char *const *)b;
        return strcmp(x ? x : "", y ? y : "") == 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *x = a, *y = b;
        return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return pt_msg_equal(*(ProtobufCMessage *const *)a, *(ProtobufCMessage *const *)b);
    default:
        return memcmp(a, b, pt_conf_field_elem_size(fd)) == 0;
    }
}

static bool field_equal(const ProtobufCFieldDescriptor *fd, const ProtobufCMessage *a,
                        const ProtobufCMessage *b)
{
    const char *pa = (const char *)a, *pb = (const char *)b;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t na = *(const size_t *)(pa + fd->quantifier_offset);
        size_t nb = *(const size_t *)(pb + fd->quantifier_offset);
        if (na != nb)
            return false;
        const char *va = *(char *const *)(pa + fd->offset), *vb = *(char *const *)(pb + fd->offset);
        size_t sz = pt_conf_field_elem_size(fd);
        for (size_t i = 0; i < na; i++)
            if (!value_equal(fd, va + i * sz, vb + i * sz))
                return false;
        return true;
    }
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t ca = *(const uint32_t *)(pa + fd->quantifier_offset);
        uint32_t cb = *(const uint32_t *)(pb + fd->quantifier_offset);
        if ((ca == fd->id) != (cb == fd->id))
            return false;
        if (ca != fd->id)
            return true;
    } else if (fd->quantifier_offset && fd->label == PROTOBUF_C_LABEL_OPTIONAL) {
        protobuf_c_boolean ha = *(const protobuf_c_boolean *)(pa + fd->quantifier_offset);
        protobuf_c_boolean hb = *(const protobuf_c_boolean *)(pb + fd->quantifier_offset);
        if (ha != hb)
            return false;
        if (!ha)
            return true;
    }
    return value_equal(fd, pa + fd->offset, pb + fd->offset);
}

size_t pt_obj_diff_fields(const ProtobufCMessage *a, const ProtobufCMessage *b, const char ***names)
{
    const ProtobufCMessageDescriptor *d = a->descriptor;
    const char **v = pt_xcalloc(d->n_fields + 1, sizeof(*v));
    size_t n = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (strcmp(fd->name, "version") == 0)
            continue;
        if (!field_equal(fd, a, b))
            v[n++] = fd->name;
    }
    *names = v;
    return n;
}

/* ---- field-mask paths ---- */

/* Bytes a field occupies in its message (for a oneof: the whole union). */
static size_t storage_size(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *fd)
{
    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
        return sizeof(void *);
    if (!(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return pt_conf_field_elem_size(fd);
    size_t max = 0;
    for (unsigned i = 0; i < d->n_fields; i++)
        if ((d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            d->fields[i].quantifier_offset == fd->quantifier_offset &&
            pt_conf_field_elem_size(&d->fields[i]) > max)
            max = pt_conf_field_elem_size(&d->fields[i]);
    return max;
}

static void swap_bytes(void *a, void *b, size_t n)
{
    unsigned char tmp[64];
    while (n) {
        size_t k = n < sizeof(tmp) ? n : sizeof(tmp);
        memcpy(tmp, a, k);
        memcpy(a, b, k);
        memcpy(b, tmp, k);
        a = (char *)a + k;
        b = (char *)b + k;
        n -= k;
    }
}

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = pt_xcalloc(1, d->sizeof_message);
    d->message_init(m);
    return m;
}

int pt_msg_copy_path(ProtobufCMessage *dst, ProtobufCMessage *src, const char *path)
{
    const char *dot = strchr(path, '.');
    size_t len = dot ? (size_t)(dot - path) : strlen(path);
    char name[128];
    if (len == 0 || len >= sizeof(name))
        return PT_ERR_INVALID;
    memcpy(name, path, len);
    name[len] = '\0';
    const ProtobufCMessageDescriptor *d = dst->descriptor;
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(d, name);
    if (!fd)
        return PT_ERR_INVALID;
    char *pd = (char *)dst, *ps = (char *)src;
    if (dot) {
        /* Into a sub-message: both sides get one, so the leaf can move. */
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE || fd->label == PROTOBUF_C_LABEL_REPEATED ||
            (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            return PT_ERR_INVALID;
        const ProtobufCMessageDescriptor *sub = fd->descriptor;
        ProtobufCMessage **sd = (ProtobufCMessage **)(pd + fd->offset);
        ProtobufCMessage **ss = (ProtobufCMessage **)(ps + fd->offset);
        bool made_d = false;
        if (!*sd) {
            *sd = new_message(sub);
            made_d = true;
        }
        if (!*ss)
            *ss = new_message(sub);
        int rc = pt_msg_copy_path(*sd, *ss, dot + 1);
        if (rc != 0 && made_d) {
            pt_msg_free(*sd);
            *sd = NULL;
        }
        return rc;
    }
    swap_bytes(pd + fd->offset, ps + fd->offset, storage_size(d, fd));
    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
        swap_bytes(pd + fd->quantifier_offset, ps + fd->quantifier_offset, sizeof(size_t));
    else if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        swap_bytes(pd + fd->quantifier_offset, ps + fd->quantifier_offset, sizeof(uint32_t));
    else if (fd->quantifier_offset && fd->label == PROTOBUF_C_LABEL_OPTIONAL)
        swap_bytes(pd + fd->quantifier_offset, ps + fd->quantifier_offset,
                   sizeof(protobuf_c_boolean));
    return 0;
}

/* ---- managed documents ---- */

Config *pt_managed_extract(const Config *cfg)
{
    Config tmp = PORTICO__CONFIG__V1__CONFIG__INIT;
    for (int k = 0; k < PT_KIND_COUNT; k++)
        pt_kind_set(&tmp, (enum pt_kind)k, pt_kind_items(cfg, (enum pt_kind)k),
                    pt_kind_count(cfg, (enum pt_kind)k));
    return (Config *)pt_msg_dup(&tmp.base);
}

Config *pt_managed_merge(const Config *local, const Config *managed)
{
    Config tmp = *local;
    for (int k = 0; k < PT_KIND_COUNT; k++)
        pt_kind_set(&tmp, (enum pt_kind)k, pt_kind_items(managed, (enum pt_kind)k),
                    pt_kind_count(managed, (enum pt_kind)k));
    return (Config *)pt_msg_dup(&tmp.base);
}

void pt_managed_clear_versions(Config *managed)
{
    for (int k = 0; k < PT_KIND_COUNT; k++) {
        size_t n = pt_kind_count(managed, (enum pt_kind)k);
        ProtobufCMessage **v = pt_kind_items(managed, (enum pt_kind)k);
        for (size_t i = 0; i < n; i++)
            pt_obj_set_version(v[i], 0);
    }
}

char *pt_managed_hash(const Config *managed)
{
    Config *copy = pt_managed_extract(managed);
    pt_managed_clear_versions(copy);
    size_t n = protobuf_c_message_get_packed_size(&copy->base);
    uint8_t *buf = pt_xmalloc(n ? n : 1);
    protobuf_c_message_pack(&copy->base, buf);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_Digest(buf, n, md, &mdlen, EVP_sha256(), NULL);
    free(buf);
    pt_msg_free(&copy->base);
    char *hex = pt_xmalloc(2 * mdlen + 1);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return hex;
}
