/*
 * Descriptors from server reflection: the fetch state machine and the
 * registry of published pools. See reflect.h.
 */
#include "transcode/reflect.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "portico/errors.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest Req;
typedef Grpc__Reflection__V1__ServerReflectionResponse Resp;

enum ask { ASK_LIST = 1, ASK_SYMBOL, ASK_FILE };

struct rfile {
    char *name;
    uint8_t *data;
    size_t len;
};

struct wanted {
    char *name;
    bool sent;
};

struct pt_tc_reflect_fetch {
    struct pt_tc_reflect_limits lim;
    char **services; /* from list_services */
    size_t n_services;
    size_t next_symbol; /* services[] asked so far */
    struct rfile *files;
    size_t n_files, cap_files, bytes;
    struct wanted *wanted; /* imports seen, each asked for at most once */
    size_t n_wanted, cap_wanted;
    size_t requests;
    enum ask last; /* the question awaiting its answer; 0 = none */
    char *last_name;
    bool listed, failed;
    char err[256];
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        abort();
    return q;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int fail(struct pt_tc_reflect_fetch *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct pt_tc_reflect_fetch *f, int code, const char *fmt, ...)
{
    if (!f->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->err, sizeof(f->err), fmt, ap);
        va_end(ap);
        f->failed = true;
    }
    return code;
}

struct pt_tc_reflect_fetch *pt_tc_reflect_fetch_new(const struct pt_tc_reflect_limits *lim)
{
    struct pt_tc_reflect_fetch *f = xrealloc(NULL, sizeof(*f));
    memset(f, 0, sizeof(*f));
    if (lim)
        f->lim = *lim;
    if (!f->lim.max_files)
        f->lim.max_files = PT_TC_REFLECT_DEFAULT_MAX_FILES;
    if (!f->lim.max_bytes)
        f->lim.max_bytes = PT_TC_REFLECT_DEFAULT_MAX_BYTES;
    if (!f->lim.max_requests)
        f->lim.max_requests = PT_TC_REFLECT_DEFAULT_MAX_REQUESTS;
    if (!f->lim.max_services)
        f->lim.max_services = PT_TC_REFLECT_DEFAULT_MAX_SERVICES;
    return f;
}

void pt_tc_reflect_fetch_free(struct pt_tc_reflect_fetch *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_services; i++)
        free(f->services[i]);
    free(f->services);
    for (size_t i = 0; i < f->n_files; i++) {
        free(f->files[i].name);
        free(f->files[i].data);
    }
    free(f->files);
    for (size_t i = 0; i < f->n_wanted; i++)
        free(f->wanted[i].name);
    free(f->wanted);
    free(f->last_name);
    free(f);
}

const char *pt_tc_reflect_fetch_error(const struct pt_tc_reflect_fetch *f)
{
    return f->err;
}

size_t pt_tc_reflect_fetch_services(const struct pt_tc_reflect_fetch *f, const char *const **names)
{
    *names = (const char *const *)f->services;
    return f->n_services;
}

size_t pt_tc_reflect_fetch_file_count(const struct pt_tc_reflect_fetch *f)
{
    return f->n_files;
}

static const struct rfile *file_find(const struct pt_tc_reflect_fetch *f, const char *name,
                                     size_t len)
{
    for (size_t i = 0; i < f->n_files; i++)
        if (strlen(f->files[i].name) == len && memcmp(f->files[i].name, name, len) == 0)
            return &f->files[i];
    return NULL;
}

static bool wanted(const struct pt_tc_reflect_fetch *f, const char *name, size_t len)
{
    for (size_t i = 0; i < f->n_wanted; i++)
        if (strlen(f->wanted[i].name) == len && memcmp(f->wanted[i].name, name, len) == 0)
            return true;
    return false;
}

/* -- a FileDescriptorProto's name (1) and imports (3), read off the wire -- */

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p == end)
            return -1;
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* Status: 0 with *name set (borrowed from buf; len 0 = none) and dep(...)
 * called for each import, -1 on malformed bytes. Only the top level is
 * read; nested messages are skipped unparsed (the pool parses them). */
static int scan_file(const uint8_t *buf, size_t len, struct pt_str *name,
                     int (*dep)(void *, const char *, size_t), void *arg)
{
    const uint8_t *p = buf, *end = buf + len;
    *name = PT_STR_NULL;
    while (p < end) {
        uint64_t tag, v;
        if (varint(&p, end, &tag) != 0)
            return -1;
        switch (tag & 7) {
        case 0:
            if (varint(&p, end, &v) != 0)
                return -1;
            break;
        case 1:
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        case 2:
            if (varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
                return -1;
            if (tag >> 3 == 1)
                *name = (struct pt_str){(const char *)p, (size_t)v};
            else if (tag >> 3 == 3 && dep(arg, (const char *)p, (size_t)v) != 0)
                return -1;
            p += v;
            break;
        default: /* groups are not used by descriptor.proto */
            return -1;
        }
    }
    return 0;
}

static int note_dep(void *arg, const char *name, size_t len)
{
    struct pt_tc_reflect_fetch *f = arg;
    if (len == 0 || file_find(f, name, len) || wanted(f, name, len))
        return 0;
    /* Bounded like the files themselves: every wanted name is a file. */
    if (f->n_wanted == f->lim.max_files)
        return -1;
    if (f->n_wanted == f->cap_wanted) {
        f->cap_wanted = f->cap_wanted ? 2 * f->cap_wanted : 16;
        f->wanted = xrealloc(f->wanted, f->cap_wanted * sizeof(*f->wanted));
    }
    f->wanted[f->n_wanted++] = (struct wanted){xstrndup(name, len), false};
    return 0;
}

static int add_file(struct pt_tc_reflect_fetch *f, const uint8_t *data, size_t len)
{
    struct pt_str name;
    if (scan_file(data, len, &name, note_dep, f) != 0)
        return f->n_wanted == f->lim.max_files
                   ? fail(f, PT_ERR_LIMIT, "more than %zu files", f->lim.max_files)
                   : fail(f, PT_ERR_INVALID,
                          "a file_descriptor_proto is not a FileDescriptorProto");
    if (!name.len)
        return fail(f, PT_ERR_INVALID, "a file_descriptor_proto has no name");
    const struct rfile *old = file_find(f, name.ptr, name.len);
    if (old) {
        if (old->len != len || memcmp(old->data, data, len) != 0)
            return fail(f, PT_ERR_INVALID, "%s: served twice with different contents", old->name);
        return 0;
    }
    if (f->n_files == f->lim.max_files)
        return fail(f, PT_ERR_LIMIT, "more than %zu files", f->lim.max_files);
    if (len > f->lim.max_bytes - f->bytes)
        return fail(f, PT_ERR_LIMIT, "more than %zu bytes of descriptors", f->lim.max_bytes);
    if (f->n_files == f->cap_files) {
        f->cap_files = f->cap_files ? 2 * f->cap_files : 16;
        f->files = xrealloc(f->files, f->cap_files * sizeof(*f->files));
    }
    struct rfile *r = &f->files[f->n_files++];
    r->name = xstrndup(name.ptr, name.len);
    r->data = xrealloc(NULL, len);
    memcpy(r->data, data, len);
    r->len = len;
    f->bytes += len;
    return 0;
}

/* -- questions and answers ------------------------------------------------ */

static int ask(struct pt_tc_reflect_fetch *f, enum ask kind, const char *name, uint8_t **out,
               size_t *len)
{
    if (f->requests == f->lim.max_requests)
        return fail(f, PT_ERR_LIMIT, "more than %zu reflection requests", f->lim.max_requests);
    Req q = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    switch (kind) {
    case ASK_LIST:
        q.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
        q.list_services = "";
        break;
    case ASK_SYMBOL:
        q.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
        q.file_containing_symbol = (char *)name;
        break;
    case ASK_FILE:
        q.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
        q.file_by_filename = (char *)name;
        break;
    }
    *len = protobuf_c_message_get_packed_size(&q.base);
    *out = xrealloc(NULL, *len);
    protobuf_c_message_pack(&q.base, *out);
    f->requests++;
    f->last = kind;
    free(f->last_name);
    f->last_name = name ? xstrndup(name, strlen(name)) : NULL;
    return 1;
}

/* The first import still missing (sent or not), or NULL. */
static struct wanted *next_file(const struct pt_tc_reflect_fetch *f)
{
    for (size_t i = 0; i < f->n_wanted; i++) {
        struct wanted *w = &f->wanted[i];
        if (!file_find(f, w->name, strlen(w->name)))
            return w;
    }
    return NULL;
}

int pt_tc_reflect_fetch_next(struct pt_tc_reflect_fetch *f, uint8_t **req, size_t *len)
{
    *req = NULL;
    *len = 0;
    if (f->failed)
        return PT_ERR_INVALID;
    if (f->last)
        return fail(f, PT_ERR_INVALID, "the previous request has no answer yet");
    if (!f->listed)
        return ask(f, ASK_LIST, NULL, req, len);
    if (f->next_symbol < f->n_services)
        return ask(f, ASK_SYMBOL, f->services[f->next_symbol++], req, len);
    struct wanted *w = next_file(f);
    if (w) {
        /* Asked before and still missing: the answer carried other files. */
        if (w->sent)
            return fail(f, PT_ERR_NOT_FOUND, "import %.100s is not served", w->name);
        w->sent = true;
        return ask(f, ASK_FILE, w->name, req, len);
    }
    return 0;
}

static bool is_reflection(const char *s)
{
    return strncmp(s, "grpc.reflection.", 16) == 0;
}

int pt_tc_reflect_fetch_on_response(struct pt_tc_reflect_fetch *f, const uint8_t *resp, size_t len)
{
    if (f->failed)
        return PT_ERR_INVALID;
    enum ask kind = f->last;
    if (!kind)
        return fail(f, PT_ERR_INVALID, "an answer without a question");
    f->last = 0;
    /* The schema of ServerReflectionResponse is not recursive: unpacking
     * it nests at most three messages deep. */
    Resp *r = (Resp *)protobuf_c_message_unpack(
        &grpc__reflection__v1__server_reflection_response__descriptor, NULL, len, resp);
    if (!r)
        return fail(f, PT_ERR_INVALID, "an answer that is not a ServerReflectionResponse");
    int rc = 0;
    const char *what = f->last_name ? f->last_name : "";
    switch (r->message_response_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE: {
        const char *m = r->error_response->error_message ? r->error_response->error_message : "";
        if (kind == ASK_LIST)
            rc = fail(f, PT_ERR_NOT_FOUND, "list_services failed: code %d: %.120s",
                      r->error_response->error_code, m);
        else
            rc = fail(f, PT_ERR_NOT_FOUND, "%s \"%.100s\" not served: code %d: %.80s",
                      kind == ASK_SYMBOL ? "symbol" : "file", what, r->error_response->error_code,
                      m);
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE: {
        if (kind != ASK_LIST) {
            rc = fail(f, PT_ERR_INVALID, "list_services_response to another question");
            break;
        }
        const Grpc__Reflection__V1__ListServiceResponse *ls = r->list_services_response;
        for (size_t i = 0; i < ls->n_service && rc == 0; i++) {
            const char *s = ls->service[i]->name ? ls->service[i]->name : "";
            if (!*s || is_reflection(s))
                continue;
            bool dup = false;
            for (size_t j = 0; j < f->n_services; j++)
                dup = dup || strcmp(f->services[j], s) == 0;
            if (dup)
                continue;
            if (f->n_services == f->lim.max_services) {
                rc = fail(f, PT_ERR_LIMIT, "more than %zu services", f->lim.max_services);
                break;
            }
            f->services = xrealloc(f->services, (f->n_services + 1) * sizeof(*f->services));
            f->services[f->n_services++] = xstrndup(s, strlen(s));
        }
        if (rc == 0 && f->n_services == 0)
            rc = fail(f, PT_ERR_NOT_FOUND, "the server lists no service besides reflection");
        f->listed = true;
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE: {
        if (kind == ASK_LIST) {
            rc = fail(f, PT_ERR_INVALID, "file_descriptor_response to list_services");
            break;
        }
        const Grpc__Reflection__V1__FileDescriptorResponse *fr = r->file_descriptor_response;
        if (fr->n_file_descriptor_proto == 0)
            rc = fail(f, PT_ERR_INVALID, "an empty file_descriptor_response for \"%.100s\"", what);
        for (size_t i = 0; i < fr->n_file_descriptor_proto && rc == 0; i++)
            rc = add_file(f, fr->file_descriptor_proto[i].data, fr->file_descriptor_proto[i].len);
        if (rc == 0 && kind == ASK_FILE && !file_find(f, what, strlen(what)))
            rc = fail(f, PT_ERR_INVALID, "asked for %.100s, got other files", what);
        break;
    }
    default:
        rc = fail(f, PT_ERR_INVALID, "an unexpected answer (case %d)",
                  (int)r->message_response_case);
        break;
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

struct pt_descpool *pt_tc_reflect_fetch_pool(struct pt_tc_reflect_fetch *f,
                                             const struct pt_descpool_limits *lim, char *err,
                                             size_t errlen)
{
    if (f->failed || !f->listed || f->last || next_file(f)) {
        snprintf(err, errlen, "%s", f->failed ? f->err : "the fetch is not finished");
        return NULL;
    }
    struct pt_str *v = xrealloc(NULL, f->n_files * sizeof(*v));
    for (size_t i = 0; i < f->n_files; i++)
        v[i] = (struct pt_str){(const char *)f->files[i].data, f->files[i].len};
    struct pt_descpool *p = pt_descpool_new_from_files(v, f->n_files, lim, err, errlen);
    free(v);
    return p;
}

uint32_t pt_tc_reflect_backoff_ms(unsigned failures)
{
    if (failures <= 1)
        return 1000;
    if (failures > 7)
        return 60000;
    uint32_t ms = 1000u << (failures - 1);
    return ms > 60000 ? 60000 : ms;
}

/* -- registry ------------------------------------------------------------- */

struct pt_tc_reflect_entry {
    char *name;
    _Atomic uint64_t generation;
    struct pt_descpool *pool; /* under the registry's lock */
    uint64_t failures;
    char last_error[256];
    char services[1024];
    struct pt_tc_reflect_entry *next;
};

struct pt_tc_reflect_registry {
    pthread_mutex_t lock;
    struct pt_tc_reflect_entry *entries;
    pt_tc_reflect_published_fn on_publish; /* under lock */
    void *on_publish_ctx;
};

struct pt_tc_reflect_registry *pt_tc_reflect_registry_new(void)
{
    struct pt_tc_reflect_registry *r = xrealloc(NULL, sizeof(*r));
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void pt_tc_reflect_registry_free(struct pt_tc_reflect_registry *r)
{
    if (!r)
        return;
    for (struct pt_tc_reflect_entry *e = r->entries, *n; e; e = n) {
        n = e->next;
        pt_descpool_unref(e->pool);
        free(e->name);
        free(e);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static struct pt_tc_reflect_registry *default_registry;

static void default_init(void)
{
    default_registry = pt_tc_reflect_registry_new();
}

struct pt_tc_reflect_registry *pt_tc_reflect_registry_default(void)
{
    pthread_once(&default_once, default_init);
    return default_registry;
}

/* Under r->lock. */
static struct pt_tc_reflect_entry *entry_locked(struct pt_tc_reflect_registry *r, const char *name,
                                                bool create)
{
    for (struct pt_tc_reflect_entry *e = r->entries; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    if (!create)
        return NULL;
    struct pt_tc_reflect_entry *e = xrealloc(NULL, sizeof(*e));
    memset(e, 0, sizeof(*e));
    e->name = xstrndup(name, strlen(name));
    atomic_init(&e->generation, 0);
    e->next = r->entries;
    r->entries = e;
    return e;
}

struct pt_tc_reflect_entry *pt_tc_reflect_entry_get(struct pt_tc_reflect_registry *r,
                                                    const char *name)
{
    pthread_mutex_lock(&r->lock);
    struct pt_tc_reflect_entry *e = entry_locked(r, name, true);
    pthread_mutex_unlock(&r->lock);
    return e;
}

uint64_t pt_tc_reflect_entry_generation(const struct pt_tc_reflect_entry *e)
{
    return atomic_load_explicit(&((struct pt_tc_reflect_entry *)e)->generation,
                                memory_order_acquire);
}

uint64_t pt_tc_reflect_publish(struct pt_tc_reflect_registry *r, const char *name,
                               struct pt_descpool *pool, const char *const *services, size_t n)
{
    pthread_mutex_lock(&r->lock);
    struct pt_tc_reflect_entry *e = entry_locked(r, name, true);
    struct pt_descpool *old = e->pool;
    e->pool = pool;
    e->failures = 0;
    e->last_error[0] = '\0';
    size_t at = 0;
    e->services[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w =
            snprintf(e->services + at, sizeof(e->services) - at, "%s%s", i ? "," : "", services[i]);
        if (w < 0 || (size_t)w >= sizeof(e->services) - at) {
            e->services[at] = '\0'; /* whole names only */
            break;
        }
        at += (size_t)w;
    }
    uint64_t gen = atomic_load_explicit(&e->generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&e->generation, gen, memory_order_release);
    pt_tc_reflect_published_fn hook = r->on_publish;
    void *hook_ctx = r->on_publish_ctx;
    pthread_mutex_unlock(&r->lock);
    pt_descpool_unref(old);
    if (hook)
        hook(hook_ctx, r, name, gen);
    return gen;
}

void pt_tc_reflect_on_publish(struct pt_tc_reflect_registry *r, pt_tc_reflect_published_fn fn,
                              void *ctx)
{
    pthread_mutex_lock(&r->lock);
    r->on_publish = fn;
    r->on_publish_ctx = ctx;
    pthread_mutex_unlock(&r->lock);
}

void pt_tc_reflect_record_failure(struct pt_tc_reflect_registry *r, const char *name,
                                  const char *why)
{
    pthread_mutex_lock(&r->lock);
    struct pt_tc_reflect_entry *e = entry_locked(r, name, true);
    e->failures++;
    snprintf(e->last_error, sizeof(e->last_error), "%s", why && *why ? why : "failed");
    pthread_mutex_unlock(&r->lock);
}

struct pt_descpool *pt_tc_reflect_pool_ref(struct pt_tc_reflect_registry *r, const char *name,
                                           uint64_t *generation)
{
    pthread_mutex_lock(&r->lock);
    struct pt_tc_reflect_entry *e = entry_locked(r, name, false);
    struct pt_descpool *p = e && e->pool ? pt_descpool_ref(e->pool) : NULL;
    uint64_t gen = p ? atomic_load_explicit(&e->generation, memory_order_relaxed) : 0;
    pthread_mutex_unlock(&r->lock);
    if (generation)
        *generation = gen;
    return p;
}

int pt_tc_reflect_status_get(struct pt_tc_reflect_registry *r, const char *name,
                             struct pt_tc_reflect_status *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&r->lock);
    struct pt_tc_reflect_entry *e = entry_locked(r, name, false);
    if (e) {
        out->generation = atomic_load_explicit(&e->generation, memory_order_relaxed);
        out->failures = e->failures;
        memcpy(out->last_error, e->last_error, sizeof(out->last_error));
        memcpy(out->services, e->services, sizeof(out->services));
        out->n_messages = e->pool ? pt_descpool_message_count(e->pool) : 0;
    }
    pthread_mutex_unlock(&r->lock);
    return e ? 0 : PT_ERR_NOT_FOUND;
}
