#include "http/exchange.h"

#include <string.h>

#include "core/strutil.h"
#include "core/time.h"

const struct pt_exchange_handler *pt_exchange_handler;

void pt_exchange_set_handler(const struct pt_exchange_handler *h)
{
    pt_exchange_handler = h;
}

struct pt_exchange *pt_exchange_new(struct pt_worker *w, const struct pt_conn_info *conn,
                                    const struct pt_downstream_ops *down, void *down_ctx,
                                    size_t arena_limit)
{
    struct pt_arena arena;
    pt_arena_init(&arena, w ? &w->arena_pool : NULL, 0);
    struct pt_exchange *x = pt_arena_alloc(&arena, sizeof(*x));
    memset(x, 0, sizeof(*x));
    x->arena = arena;
    x->arena.limit = arena_limit;
    x->worker = w;
    x->conn = conn;
    x->down = down;
    x->down_ctx = down_ctx;
    x->req.content_length = -1;
    x->endpoint = -1;
    x->grpc_status = -1;
    x->resp.content_length = -1;
    pt_headers_init(&x->req.headers, &x->arena, 0);
    pt_headers_init(&x->resp.headers, &x->arena, 0);
    pt_pipe_init(&x->req_body, 0);
    pt_pipe_init(&x->resp_body, 0);
    pt_pipe_init(&x->req_filtered, 0);
    pt_pipe_init(&x->resp_raw, 0);
    x->req_up = &x->req_body;
    x->resp_up = &x->resp_body;
    x->start_ns = pt_time_real_ns();
    x->start_mono_ns = pt_time_mono_ns();
    return x;
}

static void release_claims_src(struct pt_identity_full *id)
{
    if (id->claims_src && id->claims_ops && id->claims_ops->release)
        id->claims_ops->release(id->claims_src);
    id->claims_src = NULL;
    id->claims_ops = NULL;
}

void pt_exchange_free(struct pt_exchange *x)
{
    if (!x)
        return;
    release_claims_src(&x->identity);
    pt_pipe_fini(&x->req_body);
    pt_pipe_fini(&x->resp_body);
    pt_pipe_fini(&x->req_filtered);
    pt_pipe_fini(&x->resp_raw);
    /* The exchange lives in its own arena: copy the arena out first. */
    struct pt_arena arena = x->arena;
    pt_arena_fini(&arena);
}

bool pt_http_is_grpc_content_type(struct pt_str ct)
{
    static const struct pt_str grpc = PT_STR("application/grpc");
    if (!pt_str_has_prefix_nocase(ct, grpc))
        return false;
    if (ct.len == grpc.len)
        return true;
    char c = ct.ptr[grpc.len];
    return c == '+' || c == ';';
}

/* --- plugin ABI ---------------------------------------------------------- */

struct pt_str pt_exchange_method(const struct pt_exchange *x)
{
    return x->req.method;
}

struct pt_str pt_exchange_path(const struct pt_exchange *x)
{
    return x->req.path;
}

struct pt_str pt_exchange_query(const struct pt_exchange *x)
{
    return x->req.query;
}

struct pt_str pt_exchange_authority(const struct pt_exchange *x)
{
    return x->req.authority;
}

struct pt_str pt_exchange_scheme(const struct pt_exchange *x)
{
    return x->req.scheme;
}

struct pt_str pt_exchange_request_id(const struct pt_exchange *x)
{
    return x->request_id;
}

int pt_exchange_set_request_id(struct pt_exchange *x, struct pt_str id)
{
    if (id.len == 0 || !pt_http_is_field_value(id))
        return PT_ERR_BAD_REQUEST;
    return pt_arena_str(&x->arena, id, &x->request_id);
}

bool pt_exchange_path_param(const struct pt_exchange *x, struct pt_str name, struct pt_str *value)
{
    for (uint16_t i = 0; i < x->nparams; i++) {
        if (pt_str_eq(x->params[i].name, name)) {
            *value = x->params[i].value;
            return true;
        }
    }
    return false;
}

const struct sockaddr *pt_exchange_client_addr(const struct pt_exchange *x, socklen_t *len)
{
    if (len)
        *len = x->conn->peer_len;
    return (const struct sockaddr *)&x->conn->peer;
}

bool pt_exchange_is_grpc(const struct pt_exchange *x)
{
    return x->req.is_grpc;
}

struct pt_headers *pt_exchange_request_headers(struct pt_exchange *x)
{
    return &x->req.headers;
}

int pt_exchange_response_status(const struct pt_exchange *x)
{
    return x->resp.status;
}

void pt_exchange_set_response_status(struct pt_exchange *x, int status)
{
    if (status >= 100 && status <= 999)
        x->resp.status = status;
}

struct pt_headers *pt_exchange_response_headers(struct pt_exchange *x)
{
    return &x->resp.headers;
}

void *pt_exchange_alloc(struct pt_exchange *x, size_t size)
{
    return pt_arena_alloc(&x->arena, size);
}

void *pt_exchange_get_data(const struct pt_exchange *x, const void *key)
{
    for (uint8_t i = 0; i < x->ndata; i++)
        if (x->data[i].key == key)
            return x->data[i].data;
    return NULL;
}

int pt_exchange_set_data(struct pt_exchange *x, const void *key, void *data)
{
    for (uint8_t i = 0; i < x->ndata; i++) {
        if (x->data[i].key == key) {
            x->data[i].data = data;
            return 0;
        }
    }
    if (x->ndata == x->data_cap) {
        if (x->data_cap >= 128)
            return PT_ERR_LIMIT;
        uint8_t cap = x->data_cap ? (uint8_t)(x->data_cap * 2) : 8;
        struct pt_exchange_data *d = pt_arena_alloc(&x->arena, cap * sizeof(*d));
        if (!d)
            return PT_ERR_LIMIT;
        if (x->ndata)
            memcpy(d, x->data, x->ndata * sizeof(*d));
        x->data = d;
        x->data_cap = cap;
    }
    x->data[x->ndata++] = (struct pt_exchange_data){key, data};
    return 0;
}

int pt_exchange_reply(struct pt_exchange *x, int http_status, struct pt_str content_type,
                      struct pt_str body)
{
    return pt_exchange_handler->reply(x, http_status, content_type, body);
}

int pt_exchange_reply_error(struct pt_exchange *x, enum pt_err err, struct pt_str detail)
{
    return pt_exchange_handler->reply_error(x, (int)err, detail);
}

void pt_exchange_resume(struct pt_exchange *x)
{
    pt_exchange_handler->resume(x);
}

const struct pt_identity *pt_exchange_identity(const struct pt_exchange *x)
{
    return &x->identity.base;
}

int pt_exchange_set_identity(struct pt_exchange *x, const struct pt_identity *id)
{
    struct pt_identity copy = {0};
    if ((id->client_id.len && pt_arena_str(&x->arena, id->client_id, &copy.client_id) != 0) ||
        (id->user_id.len && pt_arena_str(&x->arena, id->user_id, &copy.user_id) != 0) ||
        (id->tier.len && pt_arena_str(&x->arena, id->tier, &copy.tier) != 0) ||
        (id->credential.len && pt_arena_str(&x->arena, id->credential, &copy.credential) != 0))
        return PT_ERR_LIMIT;
    release_claims_src(&x->identity);
    memset(&x->identity, 0, sizeof(x->identity));
    x->identity.base = copy;
    x->identity_cap[0] = x->identity_cap[1] = 0;
    return 0;
}

void pt_exchange_identity_replace(struct pt_exchange *x, const struct pt_identity_full *id)
{
    release_claims_src(&x->identity);
    x->identity = *id;
    x->identity.claims_src = NULL;
    x->identity.claims_ops = NULL;
    x->identity_cap[0] = x->identity_cap[1] = 0;
}

void pt_exchange_identity_adopt(struct pt_exchange *x, const struct pt_identity_full *id, void *src,
                                const struct pt_identity_claims_ops *ops)
{
    pt_exchange_identity_replace(x, id);
    if (src && ops && !x->identity.claims.len) {
        x->identity.claims_src = src;
        x->identity.claims_ops = ops;
    } else if (src && ops && ops->release) {
        ops->release(src);
    }
}

/* The claims text, rendered into the arena on first read. */
static struct pt_str claims_text(struct pt_exchange *x)
{
    struct pt_identity_full *id = &x->identity;
    if (id->claims.len || !id->claims_src || !id->claims_ops->render)
        return id->claims;
    char stack[2048];
    size_t n = id->claims_ops->render(id->claims_src, stack, sizeof(stack));
    char *buf = n ? pt_arena_alloc(&x->arena, n) : NULL;
    if (!buf)
        return PT_STR_NULL; /* the arena's limit: no claims rather than a failure */
    if (n <= sizeof(stack))
        memcpy(buf, stack, n);
    else if (id->claims_ops->render(id->claims_src, buf, n) != n)
        return PT_STR_NULL;
    id->claims = (struct pt_str){buf, n};
    return id->claims;
}

/* The storage of attribute a, or NULL for a value this ABI does not know. */
static struct pt_str *attr_slot(struct pt_identity_full *id, enum pt_identity_attr a)
{
    switch (a) {
    case PT_IDENTITY_SUBJECT:
        return &id->subject;
    case PT_IDENTITY_CLIENT_ID:
        return &id->base.client_id;
    case PT_IDENTITY_CLIENT_NAME:
        return &id->client_name;
    case PT_IDENTITY_TIER:
        return &id->base.tier;
    case PT_IDENTITY_METHOD:
        return &id->method;
    case PT_IDENTITY_USER_ID:
        return &id->base.user_id;
    case PT_IDENTITY_CREDENTIAL:
        return &id->base.credential;
    case PT_IDENTITY_CLAIMS:
        return &id->claims;
    }
    return NULL;
}

struct pt_str pt_exchange_identity_get(const struct pt_exchange *x, enum pt_identity_attr a)
{
    const struct pt_identity_full *id = &x->identity;
    if (a == PT_IDENTITY_SUBJECT && !id->subject.len)
        return id->base.user_id.len ? id->base.user_id : id->base.client_id;
    if (a == PT_IDENTITY_CLAIMS) /* the ABI's const: rendering is a cache */
        return claims_text((struct pt_exchange *)x);
    const struct pt_str *v = attr_slot((struct pt_identity_full *)id, a);
    return v && v->len ? *v : PT_STR_NULL;
}

size_t pt_exchange_identity_count(const struct pt_exchange *x, enum pt_identity_list l)
{
    return (unsigned)l < 2 ? x->identity.n[l] : 0;
}

struct pt_str pt_exchange_identity_item(const struct pt_exchange *x, enum pt_identity_list l,
                                        size_t i)
{
    if ((unsigned)l >= 2 || i >= x->identity.n[l])
        return PT_STR_NULL;
    return x->identity.list[l][i];
}

bool pt_exchange_identity_has(const struct pt_exchange *x, enum pt_identity_list l,
                              struct pt_str value)
{
    for (size_t i = 0; i < pt_exchange_identity_count(x, l); i++)
        if (pt_str_eq(x->identity.list[l][i], value))
            return true;
    return false;
}

/* A JSON object's text, roughly: '{' ... '}' around optional blanks. The
 * writer (an authentication method) produced it with a JSON library. */
static bool looks_like_object(struct pt_str v)
{
    size_t a = 0, b = v.len;
    while (a < b && (v.ptr[a] == ' ' || v.ptr[a] == '\t' || v.ptr[a] == '\n' || v.ptr[a] == '\r'))
        a++;
    while (b > a && (v.ptr[b - 1] == ' ' || v.ptr[b - 1] == '\t' || v.ptr[b - 1] == '\n' ||
                     v.ptr[b - 1] == '\r'))
        b--;
    return b - a >= 2 && v.ptr[a] == '{' && v.ptr[b - 1] == '}';
}

int pt_exchange_identity_set(struct pt_exchange *x, enum pt_identity_attr a, struct pt_str value)
{
    struct pt_str *slot = attr_slot(&x->identity, a);
    if (!slot || (a == PT_IDENTITY_CLAIMS && value.len && !looks_like_object(value)))
        return PT_ERR_INVALID;
    struct pt_str copy = PT_STR_NULL;
    if (value.len && pt_arena_str(&x->arena, value, &copy) != 0)
        return PT_ERR_LIMIT;
    if (a == PT_IDENTITY_CLAIMS)
        release_claims_src(&x->identity); /* the text set here replaces them */
    *slot = copy;
    return 0;
}

int pt_exchange_identity_add(struct pt_exchange *x, enum pt_identity_list l, struct pt_str value)
{
    if ((unsigned)l >= 2 || !value.len)
        return PT_ERR_INVALID;
    struct pt_identity_full *id = &x->identity;
    if (id->n[l] >= PT_IDENTITY_MAX_ITEMS)
        return PT_ERR_LIMIT;
    if (!x->identity_cap[l] || id->n[l] == x->identity_cap[l]) {
        /* Grow, or take a private copy of a borrowed list. */
        uint16_t cap = id->n[l] < 4 ? 8 : (uint16_t)(id->n[l] * 2);
        if (cap > PT_IDENTITY_MAX_ITEMS)
            cap = PT_IDENTITY_MAX_ITEMS;
        struct pt_str *v = pt_arena_alloc(&x->arena, cap * sizeof(*v));
        if (!v)
            return PT_ERR_LIMIT;
        if (id->n[l])
            memcpy(v, id->list[l], id->n[l] * sizeof(*v));
        id->list[l] = v;
        x->identity_cap[l] = cap;
    }
    struct pt_str copy;
    if (pt_arena_str(&x->arena, value, &copy) != 0)
        return PT_ERR_LIMIT;
    ((struct pt_str *)id->list[l])[id->n[l]++] = copy;
    return 0;
}

bool pt_exchange_client_cert(const struct pt_exchange *x, const struct pt_client_cert **out)
{
    *out = x->conn ? x->conn->client_cert : NULL;
    return *out != NULL;
}

struct event_base *pt_exchange_event_base(struct pt_exchange *x)
{
    return x->worker->base;
}
