/*
 * The portico.admin.v1.Admin service: one handler per method, over the
 * control plane (control.c).
 *
 * CRUD is written once for the five managed kinds. The request and
 * response messages of a kind share a shape (admin.proto keeps it so):
 *
 *   Create<K>Request   { K obj = 1; }
 *   Get / Delete       { string id = 1; uint64 version = 2 (delete); }
 *   List<K>sResponse   { repeated K items = 1; string next_page_token = 2;
 *                        uint32 total_size = 3; }
 *   Update<K>Request   { string id = 1; K obj = 2; FieldMask mask = 3;
 *                        uint64 version = 4; }
 *
 * so the handlers read them by field number through the descriptors.
 */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"
#include "auth/usage.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/time.h"
#include "observe/metrics.h"
#include "proxy/proxy.h"
#include "ratelimit/stats.h"
#include "upstream/breaker.h"
#include "upstream/health.h"
#include "upstream/service.h"
#include "portico/admin/v1/admin.pb-c.h"
#include "portico/errors.h"

#define GRPC_INVALID_ARGUMENT 3
#define GRPC_NOT_FOUND 5
#define GRPC_ALREADY_EXISTS 6
#define GRPC_FAILED_PRECONDITION 9
#define GRPC_ABORTED 10
#define GRPC_INTERNAL 13

#define DEFAULT_PAGE_SIZE 100u
#define MAX_PAGE_SIZE 1000u

typedef Portico__Config__V1__ApiKey ApiKey;

/* ---- generic field access by number ---- */

static const ProtobufCFieldDescriptor *fnum(const ProtobufCMessage *m, unsigned number)
{
    return protobuf_c_message_descriptor_get_field(m->descriptor, number);
}

static const char *get_str(const ProtobufCMessage *m, unsigned number)
{
    const char *s = *(char *const *)((const char *)m + fnum(m, number)->offset);
    return s ? s : "";
}

static uint64_t get_u64(const ProtobufCMessage *m, unsigned number)
{
    return *(const uint64_t *)((const char *)m + fnum(m, number)->offset);
}

static const ProtobufCMessage *get_msg(const ProtobufCMessage *m, unsigned number)
{
    return *(ProtobufCMessage *const *)((const char *)m + fnum(m, number)->offset);
}

static ProtobufCMessage *new_msg(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = pt_xcalloc(1, d->sizeof_message);
    d->message_init(m);
    return m;
}

static void set_str(ProtobufCMessage *m, unsigned number, const char *v)
{
    *(char **)((char *)m + fnum(m, number)->offset) = pt_xstrdup(v);
}

/* ---- kinds' request/response types ---- */

static const ProtobufCMessageDescriptor *const list_response[PT_KIND_COUNT] = {
    [PT_KIND_SERVICE] = &portico__admin__v1__list_services_response__descriptor,
    [PT_KIND_ROUTE] = &portico__admin__v1__list_routes_response__descriptor,
    [PT_KIND_RATE_LIMIT_RULE] = &portico__admin__v1__list_rate_limit_rules_response__descriptor,
    [PT_KIND_PLUGIN] = &portico__admin__v1__list_plugins_response__descriptor,
    [PT_KIND_API_KEY] = &portico__admin__v1__list_api_keys_response__descriptor,
};

static const char *const titles[PT_KIND_COUNT] = {
    [PT_KIND_SERVICE] = "service",
    [PT_KIND_ROUTE] = "route",
    [PT_KIND_RATE_LIMIT_RULE] = "rate-limit rule",
    [PT_KIND_PLUGIN] = "plugin",
    [PT_KIND_API_KEY] = "API key",
};

static void set_focus(struct pt_edit *e, enum pt_kind k, size_t index, const char *focus)
{
    snprintf(e->focus_path, sizeof(e->focus_path), "%s[%zu]", pt_kind_info(k)->field, index);
    e->focus = focus;
}

static void append_obj(Config *cfg, enum pt_kind k, ProtobufCMessage *obj)
{
    size_t n = pt_kind_count(cfg, k);
    ProtobufCMessage **v = pt_xrealloc(pt_kind_items(cfg, k), (n + 1) * sizeof(*v));
    v[n] = obj;
    pt_kind_set(cfg, k, v, n + 1);
}

static void remove_obj(Config *cfg, enum pt_kind k, size_t at)
{
    size_t n = pt_kind_count(cfg, k);
    ProtobufCMessage **v = pt_kind_items(cfg, k);
    pt_msg_free(v[at]);
    memmove(&v[at], &v[at + 1], (n - at - 1) * sizeof(*v));
    pt_kind_set(cfg, k, v, n - 1);
}

/* ---- API keys ---- */

static void set_timestamp_now(Google__Protobuf__Timestamp **ts)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (!*ts) {
        *ts = pt_xcalloc(1, sizeof(**ts));
        google__protobuf__timestamp__init(*ts);
    }
    (*ts)->seconds = now.tv_sec;
    (*ts)->nanos = 0;
}

/* A new key: 32 random bytes, base64url without padding (43 characters). */
static int make_key(char *out, size_t n)
{
    unsigned char raw[32];
    if (n < 48 || RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t j = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof(raw); i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[j++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[j++] = alphabet[(acc << (6 - bits)) & 63];
    out[j] = '\0';
    return 0;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < len && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- Create ---- */

struct crud {
    struct pt_control *c;
    enum pt_kind kind;
    const ProtobufCMessage *req;
    ProtobufCMessage *result; /* a copy of the object as stored */
    char key[64];             /* CreateApiKey: the plaintext */
    bool is_delete;
};

static int create_edit(struct pt_edit *e, Config *next, uint64_t nv, struct pt_admin_status *st)
{
    struct crud *x = e->arg;
    const struct pt_kind_info *ki = pt_kind_info(x->kind);
    const ProtobufCMessage *in = get_msg(x->req, 1);
    if (!in) {
        pt_admin_status_add_violation(st, ki->single, "required");
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "%s is required", ki->single);
        return -1;
    }
    ProtobufCMessage *obj = pt_msg_dup(in);
    if (x->kind == PT_KIND_API_KEY) {
        ApiKey *k = (ApiKey *)obj;
        if ((k->key_hash && *k->key_hash) || (k->key_prefix && *k->key_prefix)) {
            pt_admin_status_add_violation(st, "api_key.key_hash",
                                          "set by the server; leave key_hash and key_prefix empty");
            pt_admin_status_set(st, GRPC_INVALID_ARGUMENT,
                                "key_hash and key_prefix are set by "
                                "the server");
            pt_msg_free(obj);
            return -1;
        }
        if (make_key(x->key, sizeof(x->key)) != 0) {
            pt_admin_status_set(st, GRPC_INTERNAL, "no randomness available for a key");
            pt_msg_free(obj);
            return -1;
        }
        char hash[65];
        sha256_hex(x->key, hash);
        free(k->key_hash == protobuf_c_empty_string ? NULL : k->key_hash);
        k->key_hash = pt_xstrdup(hash);
        char prefix[9];
        memcpy(prefix, x->key, 8);
        prefix[8] = '\0';
        free(k->key_prefix == protobuf_c_empty_string ? NULL : k->key_prefix);
        k->key_prefix = pt_xstrdup(prefix);
        set_timestamp_now(&k->created_at);
        if (!*pt_obj_name(obj)) {
            char name[160];
            snprintf(name, sizeof(name), "%s-%s", k->client_id ? k->client_id : "", prefix);
            pt_obj_set_name(obj, name);
        }
    }
    if (x->kind == PT_KIND_ROUTE && !*pt_obj_name(obj)) {
        char name[512];
        pt_conf_route_name((const Portico__Config__V1__Route *)obj, name, sizeof(name));
        pt_obj_set_name(obj, name);
    }
    const char *name = pt_obj_name(obj);
    if (*name && pt_kind_find(next, x->kind, name) >= 0) {
        pt_admin_status_set(st, GRPC_ALREADY_EXISTS, "%s \"%s\" already exists", titles[x->kind],
                            name);
        pt_msg_free(obj);
        return -1;
    }
    pt_obj_set_version(obj, nv);
    set_focus(e, x->kind, pt_kind_count(next, x->kind), ki->single);
    append_obj(next, x->kind, obj);
    x->result = pt_msg_dup(obj);
    return 0;
}

static void do_create(struct pt_control *c, enum pt_kind k, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, struct pt_admin_status *st)
{
    struct crud x = {.c = c, .kind = k, .req = req};
    struct pt_edit e = {.fn = create_edit, .arg = &x};
    uint64_t v;
    if (pt_control_change(c, &e, false, st, &v) != 0) {
        pt_msg_free(x.result);
        return;
    }
    if (k == PT_KIND_API_KEY) {
        Portico__Admin__V1__CreateApiKeyResponse *r = pt_xcalloc(1, sizeof(*r));
        portico__admin__v1__create_api_key_response__init(r);
        r->api_key = (ApiKey *)x.result;
        r->key = pt_xstrdup(x.key);
        *resp = &r->base;
        pt_log_info("admin: API key \"%s\" created for client \"%s\"", pt_obj_name(x.result),
                    r->api_key->client_id);
    } else {
        *resp = x.result;
        pt_log_info("admin: %s \"%s\" created (version %llu)", titles[k], pt_obj_name(x.result),
                    (unsigned long long)v);
    }
    explicit_bzero(x.key, sizeof(x.key));
}

/* ---- Get, List ---- */

/* An API key's last_used_at as this instance knows it: the stored value,
 * or the newer one this instance flushed (auth/usage.h; with the file
 * store, usage lives only there). */
static void with_usage(enum pt_kind k, ProtobufCMessage *m)
{
    if (k != PT_KIND_API_KEY || !m)
        return;
    ApiKey *a = (ApiKey *)m;
    uint64_t ns;
    if (!a->name || !pt_auth_usage_last(a->name, &ns))
        return;
    int64_t sec = (int64_t)(ns / 1000000000ull);
    int32_t nanos = (int32_t)(ns % 1000000000ull);
    Google__Protobuf__Timestamp *t = a->last_used_at;
    if (t && (t->seconds > sec || (t->seconds == sec && t->nanos >= nanos)))
        return;
    if (!t) {
        t = pt_xcalloc(1, sizeof(*t));
        google__protobuf__timestamp__init(t);
        a->last_used_at = t;
    }
    t->seconds = sec;
    t->nanos = nanos;
}

static void do_get(struct pt_control *c, enum pt_kind k, const ProtobufCMessage *req,
                   ProtobufCMessage **resp, struct pt_admin_status *st)
{
    const char *name = get_str(req, 1);
    pt_control_lock(c);
    ssize_t at = pt_kind_find(c->managed, k, name);
    if (at >= 0) {
        *resp = pt_msg_dup(pt_kind_items(c->managed, k)[at]);
        with_usage(k, *resp);
    }
    pt_control_unlock(c);
    if (at < 0)
        pt_admin_status_set(st, GRPC_NOT_FOUND, "%s \"%s\" not found", titles[k], name);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(pt_obj_name(*(ProtobufCMessage *const *)a),
                  pt_obj_name(*(ProtobufCMessage *const *)b));
}

static void do_list(struct pt_control *c, enum pt_kind k, const ProtobufCMessage *req,
                    ProtobufCMessage **resp, struct pt_admin_status *st)
{
    const Portico__Admin__V1__ListRequest *lr = (const Portico__Admin__V1__ListRequest *)req;
    uint32_t size = lr->page_size ? lr->page_size : DEFAULT_PAGE_SIZE;
    if (size > MAX_PAGE_SIZE)
        size = MAX_PAGE_SIZE;
    const char *after = lr->page_token ? lr->page_token : "";
    if (strlen(after) > 1024) {
        pt_admin_status_add_violation(st, "page_token", "not a token from a previous page");
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "invalid page_token");
        return;
    }
    pt_control_lock(c);
    size_t n = pt_kind_count(c->managed, k);
    ProtobufCMessage **sorted = pt_xmalloc((n ? n : 1) * sizeof(*sorted));
    memcpy(sorted, pt_kind_items(c->managed, k), n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), by_name);
    ProtobufCMessage *r = new_msg(list_response[k]);
    const ProtobufCFieldDescriptor *items = fnum(r, 1);
    ProtobufCMessage **out = pt_xcalloc(size + 1, sizeof(*out));
    size_t m = 0, i = 0;
    while (i < n && *after && strcmp(pt_obj_name(sorted[i]), after) <= 0)
        i++;
    for (; i < n && m < size; i++) {
        out[m] = pt_msg_dup(sorted[i]);
        with_usage(k, out[m++]);
    }
    *(size_t *)((char *)r + items->quantifier_offset) = m;
    *(ProtobufCMessage ***)((char *)r + items->offset) = out;
    if (i < n && m)
        set_str(r, 2, pt_obj_name(out[m - 1]));
    *(uint32_t *)((char *)r + fnum(r, 3)->offset) = (uint32_t)n;
    pt_control_unlock(c);
    free(sorted);
    *resp = r;
}

/* ---- Update ---- */

static bool server_owned(enum pt_kind k, const char *path)
{
    if (strcmp(path, "version") == 0)
        return true;
    return k == PT_KIND_API_KEY &&
           (strcmp(path, "key_hash") == 0 || strcmp(path, "key_prefix") == 0 ||
            strcmp(path, "created_at") == 0 || strcmp(path, "last_used_at") == 0);
}

static void keep_api_key_secrets(ApiKey *to, const ApiKey *from)
{
    free(to->key_hash == protobuf_c_empty_string ? NULL : to->key_hash);
    to->key_hash = pt_xstrdup(from->key_hash);
    free(to->key_prefix == protobuf_c_empty_string ? NULL : to->key_prefix);
    to->key_prefix = pt_xstrdup(from->key_prefix);
    pt_msg_free(to->created_at ? &to->created_at->base : NULL);
    to->created_at = from->created_at
                         ? (Google__Protobuf__Timestamp *)pt_msg_dup(&from->created_at->base)
                         : NULL;
    pt_msg_free(to->last_used_at ? &to->last_used_at->base : NULL);
    to->last_used_at = from->last_used_at
                           ? (Google__Protobuf__Timestamp *)pt_msg_dup(&from->last_used_at->base)
                           : NULL;
}

static int update_edit(struct pt_edit *e, Config *next, uint64_t nv, struct pt_admin_status *st)
{
    struct crud *x = e->arg;
    const struct pt_kind_info *ki = pt_kind_info(x->kind);
    const ProtobufCMessage *in = get_msg(x->req, 2);
    const Google__Protobuf__FieldMask *mask =
        (const Google__Protobuf__FieldMask *)get_msg(x->req, 3);
    uint64_t version = get_u64(x->req, 4);
    const char *id = get_str(x->req, 1);
    if (!in) {
        pt_admin_status_add_violation(st, ki->single, "required");
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "%s is required", ki->single);
        return -1;
    }
    if (!*id)
        id = pt_obj_name(in);
    if (!version) {
        pt_admin_status_add_violation(st, "version",
                                      "required: the version this change is based on (from "
                                      "Get or List)");
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "version is required");
        return -1;
    }
    ssize_t at = pt_kind_find(next, x->kind, id);
    if (at < 0) {
        pt_admin_status_set(st, GRPC_NOT_FOUND, "%s \"%s\" not found", titles[x->kind], id);
        return -1;
    }
    ProtobufCMessage **items = pt_kind_items(next, x->kind);
    ProtobufCMessage *cur = items[at];
    if (pt_obj_version(cur) != version) {
        pt_admin_status_set(st, GRPC_ABORTED,
                            "%s \"%s\" is at version %llu, not %llu: it changed since you read "
                            "it; read it again",
                            titles[x->kind], id, (unsigned long long)pt_obj_version(cur),
                            (unsigned long long)version);
        return -1;
    }
    ProtobufCMessage *obj;
    if (mask && mask->n_paths) {
        obj = pt_msg_dup(cur);
        ProtobufCMessage *src = pt_msg_dup(in);
        int bad = 0;
        for (size_t i = 0; i < mask->n_paths; i++) {
            char field[64];
            snprintf(field, sizeof(field), "update_mask.paths[%zu]", i);
            if (server_owned(x->kind, mask->paths[i])) {
                pt_admin_status_add_violation(st, field, "\"%s\" is set by the server",
                                              mask->paths[i]);
                bad++;
            } else if (pt_msg_copy_path(obj, src, mask->paths[i]) != 0) {
                pt_admin_status_add_violation(st, field, "\"%s\" is not a field of %s",
                                              mask->paths[i], ki->desc->name);
                bad++;
            }
        }
        pt_msg_free(src);
        if (bad) {
            pt_msg_free(obj);
            pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "invalid update_mask");
            return -1;
        }
    } else {
        obj = pt_msg_dup(in);
        if (!*pt_obj_name(obj))
            pt_obj_set_name(obj, id);
        if (x->kind == PT_KIND_API_KEY) {
            const ApiKey *k = (const ApiKey *)obj, *c = (const ApiKey *)cur;
            if (k->key_hash && *k->key_hash && strcmp(k->key_hash, c->key_hash) != 0) {
                pt_admin_status_add_violation(st, "api_key.key_hash",
                                              "cannot be changed; create a new key to rotate");
                pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "key_hash cannot be changed");
                pt_msg_free(obj);
                return -1;
            }
        }
    }
    if (x->kind == PT_KIND_API_KEY)
        keep_api_key_secrets((ApiKey *)obj, (const ApiKey *)cur);
    if (x->kind == PT_KIND_ROUTE && !*pt_obj_name(obj)) {
        char name[512];
        pt_conf_route_name((const Portico__Config__V1__Route *)obj, name, sizeof(name));
        pt_obj_set_name(obj, name);
    }
    const char *name = pt_obj_name(obj);
    ssize_t other = pt_kind_find(next, x->kind, name);
    if (other >= 0 && other != at) {
        pt_admin_status_set(st, GRPC_ALREADY_EXISTS, "%s \"%s\" already exists", titles[x->kind],
                            name);
        pt_msg_free(obj);
        return -1;
    }
    if (pt_obj_equal(obj, cur)) {
        e->noop = true;
        x->result = pt_msg_dup(cur);
        pt_msg_free(obj);
        return 0;
    }
    pt_obj_set_version(obj, nv);
    pt_msg_free(cur);
    items[at] = obj;
    set_focus(e, x->kind, (size_t)at, ki->single);
    x->result = pt_msg_dup(obj);
    return 0;
}

static void do_update(struct pt_control *c, enum pt_kind k, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, struct pt_admin_status *st)
{
    struct crud x = {.c = c, .kind = k, .req = req};
    struct pt_edit e = {.fn = update_edit, .arg = &x};
    uint64_t v;
    if (pt_control_change(c, &e, false, st, &v) != 0) {
        pt_msg_free(x.result);
        x.result = NULL;
        return;
    }
    *resp = x.result;
    pt_log_info("admin: %s \"%s\" updated (version %llu)", titles[k], pt_obj_name(x.result),
                (unsigned long long)v);
}

/* ---- Delete ---- */

static int delete_edit(struct pt_edit *e, Config *next, uint64_t nv, struct pt_admin_status *st)
{
    (void)nv;
    struct crud *x = e->arg;
    const char *id = get_str(x->req, 1);
    uint64_t version = get_u64(x->req, 2);
    ssize_t at = pt_kind_find(next, x->kind, id);
    if (at < 0) {
        pt_admin_status_set(st, GRPC_NOT_FOUND, "%s \"%s\" not found", titles[x->kind], id);
        return -1;
    }
    uint64_t cur = pt_obj_version(pt_kind_items(next, x->kind)[at]);
    if (version && version != cur) {
        pt_admin_status_set(st, GRPC_ABORTED, "%s \"%s\" is at version %llu, not %llu",
                            titles[x->kind], id, (unsigned long long)cur,
                            (unsigned long long)version);
        return -1;
    }
    remove_obj(next, x->kind, (size_t)at);
    return 0;
}

static void do_delete(struct pt_control *c, enum pt_kind k, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, struct pt_admin_status *st)
{
    struct crud x = {.c = c, .kind = k, .req = req, .is_delete = true};
    struct pt_edit e = {.fn = delete_edit, .arg = &x};
    uint64_t v;
    if (pt_control_change(c, &e, false, st, &v) != 0) {
        /* What makes a valid deletion invalid is something still using
         * the object (a route of a service, a plugin bound to a route). */
        if (st->code == GRPC_INVALID_ARGUMENT) {
            char *m = pt_xstrdup(st->message ? st->message : "");
            pt_admin_status_set(st, GRPC_FAILED_PRECONDITION, "%s \"%s\" is still in use: %s",
                                titles[k], get_str(req, 1), m);
            free(m);
        }
        return;
    }
    Google__Protobuf__Empty *r = pt_xcalloc(1, sizeof(*r));
    google__protobuf__empty__init(r);
    *resp = &r->base;
    pt_log_info("admin: %s \"%s\" deleted (version %llu)", titles[k], get_str(req, 1),
                (unsigned long long)v);
}

/* ---- method table for the kinds ---- */

#define KIND_METHODS(K, fname)                                                               \
    static void create_##fname(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs, \
                               struct pt_admin_status *st)                                   \
    {                                                                                        \
        do_create(ctx, K, rq, rs, st);                                                       \
    }                                                                                        \
    static void get_##fname(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,    \
                            struct pt_admin_status *st)                                      \
    {                                                                                        \
        do_get(ctx, K, rq, rs, st);                                                          \
    }                                                                                        \
    static void list_##fname(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,   \
                             struct pt_admin_status *st)                                     \
    {                                                                                        \
        do_list(ctx, K, rq, rs, st);                                                         \
    }                                                                                        \
    static void update_##fname(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs, \
                               struct pt_admin_status *st)                                   \
    {                                                                                        \
        do_update(ctx, K, rq, rs, st);                                                       \
    }                                                                                        \
    static void delete_##fname(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs, \
                               struct pt_admin_status *st)                                   \
    {                                                                                        \
        do_delete(ctx, K, rq, rs, st);                                                       \
    }

KIND_METHODS(PT_KIND_ROUTE, route)
KIND_METHODS(PT_KIND_SERVICE, service)
KIND_METHODS(PT_KIND_RATE_LIMIT_RULE, rule)
KIND_METHODS(PT_KIND_PLUGIN, plugin)
KIND_METHODS(PT_KIND_API_KEY, api_key)

/* ---- Validate ---- */

static void validate(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                     struct pt_admin_status *st)
{
    struct pt_control *c = ctx;
    const Portico__Admin__V1__ValidateRequest *r = (const Portico__Admin__V1__ValidateRequest *)rq;
    const ProtobufCMessage *obj = NULL;
    enum pt_kind k = PT_KIND_ROUTE;
    switch (r->change_case) {
    case PORTICO__ADMIN__V1__VALIDATE_REQUEST__CHANGE_CONFIG:
        break;
    case PORTICO__ADMIN__V1__VALIDATE_REQUEST__CHANGE_ROUTE:
        obj = &r->route->base;
        k = PT_KIND_ROUTE;
        break;
    case PORTICO__ADMIN__V1__VALIDATE_REQUEST__CHANGE_SERVICE:
        obj = &r->service->base;
        k = PT_KIND_SERVICE;
        break;
    case PORTICO__ADMIN__V1__VALIDATE_REQUEST__CHANGE_RATE_LIMIT_RULE:
        obj = &r->rate_limit_rule->base;
        k = PT_KIND_RATE_LIMIT_RULE;
        break;
    case PORTICO__ADMIN__V1__VALIDATE_REQUEST__CHANGE_PLUGIN:
        obj = &r->plugin->base;
        k = PT_KIND_PLUGIN;
        break;
    default:
        pt_admin_status_add_violation(st, "change",
                                      "set config, route, service, "
                                      "rate_limit_rule or plugin");
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "nothing to validate");
        return;
    }
    pt_control_lock(c);
    Config *next;
    char focus_path[64] = "";
    const char *focus = "";
    if (!obj) {
        next = pt_managed_extract(r->config);
        focus_path[0] = '\0';
    } else {
        next = (Config *)pt_msg_dup(&c->managed->base);
        ProtobufCMessage *copy = pt_msg_dup(obj);
        if (k == PT_KIND_ROUTE && !*pt_obj_name(copy)) {
            char name[512];
            pt_conf_route_name((const Portico__Config__V1__Route *)copy, name, sizeof(name));
            pt_obj_set_name(copy, name);
        }
        ssize_t at = pt_kind_find(next, k, pt_obj_name(copy));
        if (at >= 0) {
            pt_msg_free(pt_kind_items(next, k)[at]);
            pt_kind_items(next, k)[at] = copy;
        } else {
            at = (ssize_t)pt_kind_count(next, k);
            append_obj(next, k, copy);
        }
        snprintf(focus_path, sizeof(focus_path), "%s[%zd]", pt_kind_info(k)->field, at);
        focus = pt_kind_info(k)->single;
    }
    struct pt_admin_status found = {0};
    int rc = pt_control_check(c, next, focus_path[0] ? focus_path : NULL, focus, &found);
    pt_control_unlock(c);
    pt_msg_free(&next->base);
    Portico__Admin__V1__ValidateResponse *out = pt_xcalloc(1, sizeof(*out));
    portico__admin__v1__validate_response__init(out);
    out->valid = rc == 0;
    if (found.nviolations) {
        out->violations = pt_xcalloc(found.nviolations, sizeof(*out->violations));
        for (size_t i = 0; i < found.nviolations; i++) {
            Portico__Admin__V1__FieldViolation *v = pt_xcalloc(1, sizeof(*v));
            portico__admin__v1__field_violation__init(v);
            v->field = pt_xstrdup(found.violations[i].field);
            v->description = pt_xstrdup(found.violations[i].description);
            out->violations[out->n_violations++] = v;
        }
    }
    pt_admin_status_fini(&found);
    *rs = &out->base;
}

/* ---- Apply ---- */

/* Instance settings: not applied by Apply. */
static const char *const instance_sections[] = {"workers",          "listeners", "limits",
                                                "access_log",       "filters",   "admin",
                                                "drain_timeout_ms", "dns",       "redis"};

struct apply {
    const Portico__Admin__V1__ApplyRequest *req;
    const Config *desired;
    struct pt_change *changes;
    size_t nchanges;
};

static int apply_edit(struct pt_edit *e, Config *next, uint64_t nv, struct pt_admin_status *st)
{
    struct apply *a = e->arg;
    if (a->req->expected_version && a->req->expected_version != nv - 1) {
        pt_admin_status_set(st, GRPC_ABORTED,
                            "the configuration is at version %llu, not %llu: it changed since "
                            "your dry run; run it again",
                            (unsigned long long)(nv - 1),
                            (unsigned long long)a->req->expected_version);
        return -1;
    }
    pt_changes_free(a->changes, a->nchanges);
    Config *applied =
        pt_managed_apply(next, a->desired, a->req->keep_absent, nv, &a->changes, &a->nchanges);
    for (int k = 0; k < PT_KIND_COUNT; k++) {
        size_t n = pt_kind_count(next, (enum pt_kind)k);
        ProtobufCMessage **v = pt_kind_items(next, (enum pt_kind)k);
        pt_kind_set(next, (enum pt_kind)k, pt_kind_items(applied, (enum pt_kind)k),
                    pt_kind_count(applied, (enum pt_kind)k));
        pt_kind_set(applied, (enum pt_kind)k, v, n);
    }
    pt_msg_free(&applied->base);
    if (a->nchanges == 0)
        e->noop = true;
    return 0;
}

static void apply(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                  struct pt_admin_status *st)
{
    struct pt_control *c = ctx;
    const Portico__Admin__V1__ApplyRequest *r = (const Portico__Admin__V1__ApplyRequest *)rq;
    struct pt_conf *loaded = NULL;
    const Config *desired;
    if (r->source_case == PORTICO__ADMIN__V1__APPLY_REQUEST__SOURCE_YAML) {
        struct pt_diag diag;
        pt_diag_init(&diag);
        loaded = pt_conf_load_string("apply", r->yaml, strlen(r->yaml), &diag);
        if (!loaded) {
            for (size_t i = 0; i < diag.nentries; i++)
                pt_admin_status_add_violation(
                    st, diag.entries[i].field[0] ? diag.entries[i].field : "yaml", "%s",
                    diag.entries[i].message);
            pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "the YAML does not load: %s",
                                diag.nentries ? diag.entries[0].message : "unknown error");
            pt_diag_fini(&diag);
            return;
        }
        pt_diag_fini(&diag);
        desired = pt_conf_config(loaded);
    } else if (r->source_case == PORTICO__ADMIN__V1__APPLY_REQUEST__SOURCE_CONFIG) {
        desired = r->config;
    } else {
        pt_admin_status_add_violation(st, "source", "set config or yaml");
        pt_admin_status_set(st, GRPC_INVALID_ARGUMENT, "nothing to apply");
        return;
    }
    Config *want = pt_managed_extract(desired);
    struct apply a = {.req = r, .desired = want};
    struct pt_edit e = {.fn = apply_edit, .arg = &a};
    uint64_t v = 0;
    int rc = pt_control_change(c, &e, r->dry_run, st, &v);
    if (rc == 0) {
        Portico__Admin__V1__ApplyResponse *out = pt_xcalloc(1, sizeof(*out));
        portico__admin__v1__apply_response__init(out);
        out->version = v;
        out->applied = !r->dry_run && a.nchanges > 0;
        out->changes = pt_xcalloc(a.nchanges + 1, sizeof(*out->changes));
        for (size_t i = 0; i < a.nchanges; i++) {
            Portico__Admin__V1__Change *ch = pt_xcalloc(1, sizeof(*ch));
            portico__admin__v1__change__init(ch);
            ch->action = (Portico__Admin__V1__Change__Action)a.changes[i].action;
            ch->kind = pt_xstrdup(pt_kind_info(a.changes[i].kind)->name);
            ch->name = pt_xstrdup(a.changes[i].name);
            ch->fields = pt_xcalloc(a.changes[i].nfields + 1, sizeof(char *));
            for (size_t f = 0; f < a.changes[i].nfields; f++)
                ch->fields[ch->n_fields++] = pt_xstrdup(a.changes[i].fields[f]);
            out->changes[out->n_changes++] = ch;
        }
        /* Report instance sections the request sets differently. */
        pt_control_lock(c);
        const char **diff;
        size_t nd = pt_obj_diff_fields(&pt_conf_config(c->local)->base, &desired->base, &diff);
        pt_control_unlock(c);
        size_t ns = sizeof(instance_sections) / sizeof(instance_sections[0]);
        out->ignored_sections = pt_xcalloc(ns + 1, sizeof(char *));
        for (size_t i = 0; i < nd; i++)
            for (size_t k = 0; k < ns; k++)
                if (strcmp(diff[i], instance_sections[k]) == 0)
                    out->ignored_sections[out->n_ignored_sections++] = pt_xstrdup(diff[i]);
        free(diff);
        *rs = &out->base;
        if (out->applied)
            pt_log_info("admin: apply: %zu change(s), version %llu", a.nchanges,
                        (unsigned long long)v);
    }
    pt_changes_free(a.changes, a.nchanges);
    pt_msg_free(&want->base);
    pt_conf_free(loaded);
}

/* ---- Export ---- */

static void export_config(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                          struct pt_admin_status *st)
{
    (void)rq;
    (void)st;
    struct pt_control *c = ctx;
    pt_control_lock(c);
    Config *cfg = pt_managed_merge(pt_conf_config(c->local), c->managed);
    uint64_t version = c->version;
    pt_control_unlock(c);
    pt_managed_clear_versions(cfg);
    /* Secrets stay where they are: the admin token is never exported
     * (token_env, which only names a variable, is). */
    if (cfg->admin && cfg->admin->token && *cfg->admin->token) {
        free(cfg->admin->token);
        cfg->admin->token = pt_xstrdup("");
    }
    Portico__Admin__V1__ExportResponse *out = pt_xcalloc(1, sizeof(*out));
    portico__admin__v1__export_response__init(out);
    out->config = cfg;
    out->yaml = pt_conf_emit_yaml(&cfg->base, NULL);
    out->version = version;
    *rs = &out->base;
}

/* ---- statistics ---- */

static Portico__Admin__V1__RouteStats *route_stats(const char *name,
                                                   const struct pt_route_stats_sum *sum)
{
    Portico__Admin__V1__RouteStats *r = pt_xcalloc(1, sizeof(*r));
    portico__admin__v1__route_stats__init(r);
    r->route = pt_xstrdup(name);
    r->requests = sum->requests;
    r->responses_1xx = sum->responses[0];
    r->responses_2xx = sum->responses[1];
    r->responses_3xx = sum->responses[2];
    r->responses_4xx = sum->responses[3];
    r->responses_5xx = sum->responses[4];
    r->upstream_errors = sum->upstream_errors;
    r->bytes_in = sum->bytes_in;
    r->bytes_out = sum->bytes_out;
    r->latency_ms_p50 = pt_metrics_quantile_ms(sum, 0.5);
    r->latency_ms_p90 = pt_metrics_quantile_ms(sum, 0.9);
    r->latency_ms_p99 = pt_metrics_quantile_ms(sum, 0.99);
    r->latency_ms_mean = pt_metrics_mean_ms(sum);
    r->in_flight = sum->in_flight;
    r->retries = sum->retries;
    r->retry_budget_exhausted = sum->retry_budget_denied;
    r->per_try_timeouts = sum->per_try_timeouts;
    r->hedges = sum->hedges;
    return r;
}

static void get_route_stats(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                            struct pt_admin_status *st)
{
    (void)ctx;
    const char *name = get_str(rq, 1);
    struct pt_route_stats_sum sum;
    if (!*name || !pt_metrics_route_read(name, &sum)) {
        pt_admin_status_set(st, GRPC_NOT_FOUND, "route \"%s\" not found", name);
        return;
    }
    *rs = &route_stats(name, &sum)->base;
}

/* ---- upstream instances: health and circuit breakers ---- */

struct upstream_row {
    struct pt_metrics_instance m;
    bool active_check;
    bool down; /* actively unhealthy */
    enum pt_health_last last;
    uint32_t ejections;
};

/* Pointer: a row per service breaker (instance "") and per instance of the
 * snapshot being served, names borrowed from *snap (unref it after use). */
static struct upstream_row *upstream_rows(struct pt_control *c, size_t *n,
                                          struct pt_snapshot **snap)
{
    *snap = pt_control_snapshot_ref(c);
    const struct pt_snapshot *s = *snap;
    size_t cap = 0;
    for (size_t i = 0; s && i < s->nservices; i++)
        cap += s->services[i].nendpoints + 1;
    struct upstream_row *rows = pt_xcalloc(cap ? cap : 1, sizeof(*rows));
    uint64_t now = pt_time_mono_ns();
    *n = 0;
    for (size_t i = 0; s && i < s->nservices; i++) {
        const struct pt_service *svc = &s->services[i];
        if (svc->breaker) {
            struct upstream_row *r = &rows[(*n)++];
            struct pt_breaker_info bi;
            pt_breaker_read(svc->breaker, &bi);
            r->m.service = svc->name;
            r->m.instance = "";
            r->m.healthy = true;
            r->m.has_breaker = true;
            r->m.circuit_state = (unsigned)bi.state;
            memcpy(r->m.circuit_transitions, bi.transitions, sizeof(bi.transitions));
        }
        for (uint32_t e = 0; e < svc->nendpoints; e++) {
            const struct pt_endpoint *ep = &svc->endpoints[e];
            struct upstream_row *r = &rows[(*n)++];
            r->m.service = svc->name;
            r->m.instance = ep->key;
            r->m.healthy = pt_health_usable(ep->health, now);
            r->active_check = svc->has_check;
            if (ep->health) {
                struct pt_health_info hi;
                pt_health_read(ep->health, now, &hi);
                r->m.ejected = hi.ejected;
                r->m.ejections_total = hi.ejections_total;
                r->m.to_healthy_total = hi.to_healthy_total;
                r->m.to_unhealthy_total = hi.to_unhealthy_total;
                r->m.checks_total = hi.checks_total;
                r->m.check_failures_total = hi.check_failures_total;
                r->down = !hi.healthy;
                r->last = hi.last;
                r->ejections = hi.ejections;
            }
            if (ep->breaker) {
                struct pt_breaker_info bi;
                pt_breaker_read(ep->breaker, &bi);
                r->m.has_breaker = true;
                r->m.circuit_state = (unsigned)bi.state;
                memcpy(r->m.circuit_transitions, bi.transitions, sizeof(bi.transitions));
            }
        }
    }
    return rows;
}

static void process_values(struct pt_control *c, struct pt_metrics_process *p)
{
    memset(p, 0, sizeof(*p));
    pt_control_lock(c);
    p->config_version = c->version;
    p->snapshot_generation = c->generation;
    if (c->wptrs)
        for (unsigned i = 0; i < c->nworkers; i++)
            p->connections += pt_proxy_connections(c->wptrs[i]);
    pt_control_unlock(c);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    p->uptime_seconds =
        (double)(now.tv_sec - c->started.tv_sec) + (double)(now.tv_nsec - c->started.tv_nsec) / 1e9;
}

static void get_metrics(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                        struct pt_admin_status *st)
{
    (void)rq;
    (void)st;
    struct pt_control *c = ctx;
    struct pt_metrics_process p;
    process_values(c, &p);
    size_t nrows = 0;
    struct pt_snapshot *snap;
    struct upstream_row *rows = upstream_rows(c, &nrows, &snap);
    struct pt_metrics_instance *inst = pt_xcalloc(nrows ? nrows : 1, sizeof(*inst));
    for (size_t i = 0; i < nrows; i++)
        inst[i] = rows[i].m;
    p.instances = inst;
    p.ninstances = nrows;
    Portico__Admin__V1__Metrics *m = pt_xcalloc(1, sizeof(*m));
    portico__admin__v1__metrics__init(m);
    m->prometheus_text = pt_metrics_prometheus(&p, NULL);
    free(inst);
    free(rows);
    if (snap)
        pt_snap_unref(&snap->base);
    m->config_version = p.config_version;
    m->snapshot_generation = p.snapshot_generation;
    m->connections = p.connections;
    m->uptime_seconds = p.uptime_seconds;
    size_t n;
    struct pt_metrics_route_entry *list = pt_metrics_route_list(&n);
    m->routes = pt_xcalloc(n + 1, sizeof(*m->routes));
    for (size_t i = 0; i < n; i++)
        m->routes[m->n_routes++] = route_stats(list[i].name, &list[i].sum);
    pt_metrics_route_list_free(list, n);
    *rs = &m->base;
}

/* ---- Rate limits ---- */

static void get_rate_limit_stats(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                                 struct pt_admin_status *st)
{
    (void)ctx;
    const char *want = get_str(rq, 1);
    size_t n;
    struct pt_rl_stats_entry *list = pt_rl_stats_list(&n);
    Portico__Admin__V1__RateLimitStats *m = pt_xcalloc(1, sizeof(*m));
    portico__admin__v1__rate_limit_stats__init(m);
    m->rules = pt_xcalloc(n + 1, sizeof(*m->rules));
    for (size_t i = 0; i < n; i++) {
        if (*want && strcmp(want, list[i].rule) != 0)
            continue;
        Portico__Admin__V1__RateLimitRuleStats *r = pt_xcalloc(1, sizeof(*r));
        portico__admin__v1__rate_limit_rule_stats__init(r);
        r->rule = pt_xstrdup(list[i].rule);
        r->allowed = list[i].counts[PT_RL_ALLOWED];
        r->rejected = list[i].counts[PT_RL_REJECTED];
        r->shadow_rejected = list[i].counts[PT_RL_SHADOW_REJECTED];
        r->queued = list[i].counts[PT_RL_QUEUED];
        r->failed_open = list[i].counts[PT_RL_FAILED_OPEN];
        r->failed_closed = list[i].counts[PT_RL_FAILED_CLOSED];
        m->rules[m->n_rules++] = r;
    }
    pt_rl_stats_list_free(list, n);
    if (*want && !m->n_rules) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        pt_admin_status_set(st, GRPC_NOT_FOUND, "rate-limit rule \"%s\" not found", want);
        return;
    }
    *rs = &m->base;
}

/* ---- Health ---- */

static void get_health(void *ctx, const ProtobufCMessage *rq, ProtobufCMessage **rs,
                       struct pt_admin_status *st)
{
    (void)rq;
    (void)st;
    struct pt_control *c = ctx;
    Portico__Admin__V1__Health *h = pt_xcalloc(1, sizeof(*h));
    portico__admin__v1__health__init(h);
    pt_control_lock(c);
    h->draining = c->draining;
    h->status = c->draining ? PORTICO__ADMIN__V1__HEALTH__STATUS__STATUS_NOT_SERVING
                            : PORTICO__ADMIN__V1__HEALTH__STATUS__STATUS_SERVING;
    h->store = pt_xstrdup(pt_store_kind(c->store));
    h->store_connected = pt_store_connected(c->store);
    h->config_version = c->version;
    h->snapshot_generation = c->generation;
    h->workers = c->nworkers;
    pt_control_unlock(c);
    h->version = pt_xstrdup(PORTICO_VERSION);
    size_t nrows = 0;
    struct pt_snapshot *snap;
    struct upstream_row *rows = upstream_rows(c, &nrows, &snap);
    h->upstreams = pt_xcalloc(nrows ? nrows : 1, sizeof(*h->upstreams));
    for (size_t i = 0; i < nrows; i++) {
        const struct upstream_row *r = &rows[i];
        if (!r->m.instance[0])
            continue; /* a service's own breaker: not an instance */
        Portico__Admin__V1__UpstreamHealth *u = pt_xcalloc(1, sizeof(*u));
        portico__admin__v1__upstream_health__init(u);
        u->service = pt_xstrdup(r->m.service);
        u->instance = pt_xstrdup(r->m.instance);
        u->state = pt_xstrdup(r->down ? "unhealthy" : r->m.ejected ? "ejected" : "healthy");
        u->active_check = r->active_check;
        u->last_check = pt_xstrdup(pt_health_last_name(r->last));
        u->ejections = r->ejections;
        u->ejections_total = r->m.ejections_total;
        u->circuit = pt_xstrdup(
            r->m.has_breaker ? pt_breaker_state_name((enum pt_breaker_state)r->m.circuit_state)
                             : "");
        h->upstreams[h->n_upstreams++] = u;
    }
    free(rows);
    if (snap)
        pt_snap_unref(&snap->base);
    *rs = &h->base;
}

/* ---- the table ---- */

#define M(name, type, fn)                                                              \
    {                                                                                  \
        "/portico.admin.v1.Admin/" name, &portico__admin__v1__##type##__descriptor, fn \
    }

static const struct pt_admin_method methods[] = {
    M("CreateRoute", create_route_request, create_route),
    M("GetRoute", get_route_request, get_route),
    M("ListRoutes", list_request, list_route),
    M("UpdateRoute", update_route_request, update_route),
    M("DeleteRoute", delete_route_request, delete_route),
    M("CreateService", create_service_request, create_service),
    M("GetService", get_request, get_service),
    M("ListServices", list_request, list_service),
    M("UpdateService", update_service_request, update_service),
    M("DeleteService", delete_request, delete_service),
    M("CreateRateLimitRule", create_rate_limit_rule_request, create_rule),
    M("GetRateLimitRule", get_request, get_rule),
    M("ListRateLimitRules", list_request, list_rule),
    M("UpdateRateLimitRule", update_rate_limit_rule_request, update_rule),
    M("DeleteRateLimitRule", delete_request, delete_rule),
    M("CreatePlugin", create_plugin_request, create_plugin),
    M("GetPlugin", get_request, get_plugin),
    M("ListPlugins", list_request, list_plugin),
    M("UpdatePlugin", update_plugin_request, update_plugin),
    M("DeletePlugin", delete_request, delete_plugin),
    M("CreateApiKey", create_api_key_request, create_api_key),
    M("GetApiKey", get_request, get_api_key),
    M("ListApiKeys", list_request, list_api_key),
    M("UpdateApiKey", update_api_key_request, update_api_key),
    M("DeleteApiKey", delete_request, delete_api_key),
    M("Validate", validate_request, validate),
    M("Apply", apply_request, apply),
    M("Export", export_request, export_config),
    M("GetHealth", get_health_request, get_health),
    M("GetRouteStats", get_route_stats_request, get_route_stats),
    M("GetMetrics", get_metrics_request, get_metrics),
    M("RegisterInstance", register_instance_request, pt_admin_register_instance),
    M("Heartbeat", heartbeat_request, pt_admin_heartbeat),
    M("DeregisterInstance", deregister_instance_request, pt_admin_deregister_instance),
    M("ListRegistrations", list_registrations_request, pt_admin_list_registrations),
    M("GetRateLimitStats", get_rate_limit_stats_request, get_rate_limit_stats),
    M("RefreshDescriptors", refresh_descriptors_request, pt_admin_refresh_descriptors),
    M("GetDescriptorsStatus", get_descriptors_status_request, pt_admin_get_descriptors_status),
};

const struct pt_admin_method *pt_admin_service_methods(size_t *n)
{
    *n = sizeof(methods) / sizeof(methods[0]);
    return methods;
}
