#include "auth/introspect.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/fetch.h"
#include "core/arena.h"
#include "core/time.h"
#include "core/worker.h"
#include "portico/errors.h"

#define PENDING_STRIPES 64
#define DEFAULT_MAX_RESPONSE (64u * 1024u)
#define NS_PER_S 1000000000ull

struct pending;

struct pt_introspect_op {
    struct pt_introspect_client *c; /* one reference */
    struct pt_worker *w;
    pt_introspect_done_fn *cb;
    void *arg;
    struct pending *p;                    /* the request joined, or NULL */
    struct pt_introspect_op *next, *prev; /* p->ops */
    struct pt_deferred task;              /* an answer known at start */
    int status;
    struct pt_introspection *res;
    char *detail;
    bool running; /* inside cb */
};

/* One endpoint request of one worker, and everyone on that worker waiting
 * for it. Found through the client's table (shared: stripe locks); the
 * ops list is touched only on w. */
struct pending {
    struct pending *next; /* table stripe */
    uint8_t key[PT_INTROSPECT_KEY_LEN];
    struct pt_worker *w;
    struct pt_introspect_client *c;
    struct pt_fetch *fetch;
    struct pt_introspect_op *ops_head, *ops_tail;
    bool completing;
};

struct pt_introspect_client {
    atomic_uint refs;
    char *url;
    char *ns; /* cache namespace: url "\n" client_id */
    char *auth;
    char *hint;
    char *ca_file;
    uint32_t timeout_ms;
    size_t max_bytes;
    uint32_t leeway_s;
    uint64_t (*clock_ns)(void);
    struct pt_introspect_cache *cache;
    struct {
        pthread_mutex_t mu;
        struct pending *head;
    } pend[PENDING_STRIPES];
};

static void client_unref(struct pt_introspect_client *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < PENDING_STRIPES; i++)
        pthread_mutex_destroy(&c->pend[i].mu);
    pt_introspect_cache_unref(c->cache);
    free(c->url);
    free(c->ns);
    free(c->auth);
    free(c->hint);
    free(c->ca_file);
    free(c);
}

static bool has_ctl(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

struct pt_introspect_client *pt_introspect_client_new(const struct pt_introspect_conf *conf,
                                                      int *err, const char **why)
{
    int e;
    const char *w;
    if (!err)
        err = &e;
    if (!why)
        why = &w;
    *err = PT_ERR_INVALID;
    if (!conf || !conf->url) {
        *why = "no introspection endpoint URL";
        return NULL;
    }
    if (pt_fetch_url_check(conf->url, why) != 0)
        return NULL;
    if (!conf->client_id || !*conf->client_id || !conf->client_secret) {
        *why = "the introspection client needs a client_id and a client_secret";
        return NULL;
    }
    if (has_ctl(conf->token_type_hint)) {
        *why = "invalid token_type_hint";
        return NULL;
    }
    *err = 0;
    struct pt_introspect_client *c = pt_xcalloc(1, sizeof(*c));
    atomic_init(&c->refs, 1);
    c->url = pt_xstrdup(conf->url);
    size_t nl = strlen(conf->url) + strlen(conf->client_id) + 2;
    c->ns = pt_xmalloc(nl);
    snprintf(c->ns, nl, "%s\n%s", conf->url, conf->client_id);
    c->auth = pt_introspect_basic_auth(conf->client_id, conf->client_secret);
    c->hint =
        conf->token_type_hint && *conf->token_type_hint ? pt_xstrdup(conf->token_type_hint) : NULL;
    c->ca_file = conf->ca_file ? pt_xstrdup(conf->ca_file) : NULL;
    c->timeout_ms = conf->timeout_ms;
    c->max_bytes = conf->max_response_bytes ? conf->max_response_bytes : DEFAULT_MAX_RESPONSE;
    c->leeway_s = conf->leeway_s;
    c->clock_ns = conf->clock_ns ? conf->clock_ns : pt_time_real_ns;
    if (conf->cache) {
        pt_introspect_cache_ref(conf->cache);
        c->cache = conf->cache;
    } else {
        c->cache = pt_introspect_cache_new(&conf->cache_conf);
    }
    for (int i = 0; i < PENDING_STRIPES; i++)
        pthread_mutex_init(&c->pend[i].mu, NULL);
    return c;
}

void pt_introspect_client_free(struct pt_introspect_client *c)
{
    if (c)
        client_unref(c);
}

struct pt_introspection *pt_introspect_lookup(struct pt_introspect_client *c, struct pt_str token)
{
    uint8_t key[PT_INTROSPECT_KEY_LEN];
    pt_introspect_cache_key(c->cache, pt_str_from_cstr(c->ns), token, key);
    return pt_introspect_cache_lookup(c->cache, key, c->clock_ns());
}

/* --- operations ----------------------------------------------------------- */

static void op_free(struct pt_introspect_op *op)
{
    pt_introspection_unref(op->res);
    free(op->detail);
    client_unref(op->c);
    free(op);
}

static void op_run_deferred(struct pt_deferred *d)
{
    struct pt_introspect_op *op =
        (struct pt_introspect_op *)((char *)d - offsetof(struct pt_introspect_op, task));
    op->running = true;
    op->cb(op->arg, op->status, op->status == 0 ? op->res : NULL, op->detail);
    op_free(op);
}

/* Answer op later on its worker (never inside pt_introspect_start). */
static void answer_later(struct pt_introspect_op *op, int status, struct pt_introspection *res,
                         const char *detail)
{
    op->status = status;
    op->res = res;
    op->detail = detail ? pt_xstrdup(detail) : NULL;
    pt_worker_defer(op->w, &op->task);
}

static unsigned stripe_of(const uint8_t *key)
{
    return key[0] % PENDING_STRIPES;
}

static void pending_unlink(struct pending *p)
{
    unsigned i = stripe_of(p->key);
    pthread_mutex_lock(&p->c->pend[i].mu);
    struct pending **pp = &p->c->pend[i].head;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    pthread_mutex_unlock(&p->c->pend[i].mu);
}

static void op_append(struct pending *p, struct pt_introspect_op *op)
{
    op->p = p;
    op->next = NULL;
    op->prev = p->ops_tail;
    if (p->ops_tail)
        p->ops_tail->next = op;
    else
        p->ops_head = op;
    p->ops_tail = op;
}

static void op_unlink(struct pending *p, struct pt_introspect_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        p->ops_head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        p->ops_tail = op->prev;
    op->next = op->prev = NULL;
    op->p = NULL;
}

/* The endpoint's response as a status and an answer. */
static int interpret(struct pt_introspect_client *c, const struct pt_fetch_result *res,
                     struct pt_introspection **out, char *detail, size_t dl)
{
    *out = NULL;
    if (res->err) {
        snprintf(detail, dl, "introspection endpoint: %s", res->error);
        return res->err;
    }
    if (res->status != 200) {
        snprintf(detail, dl, "introspection endpoint answered HTTP %d%s", res->status,
                 res->status == 401 || res->status == 403 ? " (check the client credentials)" : "");
        return PT_ERR_UPSTREAM_PROTOCOL;
    }
    char why[160];
    struct pt_introspection *r = NULL;
    if (pt_introspection_parse(res->body, res->body_len, &r, why, sizeof(why)) != 0) {
        snprintf(detail, dl, "introspection endpoint: %s", why);
        return PT_ERR_UPSTREAM_PROTOCOL;
    }
    *out = r;
    return 0;
}

static void on_response(struct pt_fetch *f, const struct pt_fetch_result *res, void *arg)
{
    (void)f;
    struct pending *p = arg;
    struct pt_introspect_client *c = p->c;
    pending_unlink(p); /* later starts for this token ask again or hit the cache */
    p->fetch = NULL;
    p->completing = true;
    char detail[256];
    struct pt_introspection *r = NULL;
    int status = interpret(c, res, &r, detail, sizeof(detail));
    if (status == 0) {
        uint64_t now = c->clock_ns();
        uint64_t now_s = now / NS_PER_S;
        bool expired = r->active && r->has_exp && (uint64_t)r->exp <= now_s;
        bool early = r->active && r->has_nbf && (uint64_t)r->nbf > now_s + c->leeway_s;
        if (expired || early) {
            pt_introspection_unref(r);
            r = pt_introspection_new_inactive();
        }
        pt_introspect_cache_put(c->cache, p->key, r, now);
    }
    /* One at a time: a callback may cancel another op of this request. */
    while (p->ops_head) {
        struct pt_introspect_op *op = p->ops_head;
        op_unlink(p, op);
        op->running = true;
        op->cb(op->arg, status, r, status == 0 ? NULL : detail);
        op_free(op);
    }
    pt_introspection_unref(r);
    client_unref(c);
    free(p);
}

static void start_request(struct pt_introspect_client *c, struct pending *p, struct pt_str token)
{
    size_t blen;
    char *body = pt_introspect_form_body(token, c->hint, &blen);
    struct pt_fetch_header h[2] = {{"Authorization", c->auth}, {"Accept", "application/json"}};
    struct pt_fetch_req req = {
        .method = "POST",
        .url = c->url,
        .headers = h,
        .nheaders = 2,
        .body = body,
        .body_len = blen,
        .content_type = "application/x-www-form-urlencoded",
        .ca_file = c->ca_file,
        .timeout_ms = c->timeout_ms,
        .max_response_bytes = c->max_bytes,
    };
    int err = 0;
    const char *why = NULL;
    p->fetch = pt_fetch_start(&req, p->w, on_response, p, &err, &why);
    explicit_bzero(body, blen); /* the token */
    free(body);
    if (p->fetch)
        return;
    /* Not sent (the fetch thread is not running): everyone gets the error. */
    pending_unlink(p);
    char detail[200];
    snprintf(detail, sizeof(detail), "introspection: %s", why ? why : "cannot start");
    while (p->ops_head) {
        struct pt_introspect_op *op = p->ops_head;
        op_unlink(p, op);
        answer_later(op, err ? err : PT_ERR_INTERNAL, NULL, detail);
    }
    client_unref(c);
    free(p);
}

struct pt_introspect_op *pt_introspect_start(struct pt_introspect_client *c, struct pt_str token,
                                             struct pt_worker *w, pt_introspect_done_fn *cb,
                                             void *arg)
{
    struct pt_introspect_op *op = pt_xcalloc(1, sizeof(*op));
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    op->c = c;
    op->w = w;
    op->cb = cb;
    op->arg = arg;
    op->task.fn = op_run_deferred;
    if (token.len == 0 || token.len > PT_INTROSPECT_MAX_TOKEN) {
        answer_later(op, 0, pt_introspection_new_inactive(), NULL);
        return op;
    }
    uint8_t key[PT_INTROSPECT_KEY_LEN];
    pt_introspect_cache_key(c->cache, pt_str_from_cstr(c->ns), token, key);
    struct pt_introspection *hit = pt_introspect_cache_lookup(c->cache, key, c->clock_ns());
    if (hit) {
        answer_later(op, 0, hit, NULL);
        return op;
    }
    unsigned i = stripe_of(key);
    pthread_mutex_lock(&c->pend[i].mu);
    struct pending *p = c->pend[i].head;
    while (p && (p->w != w || memcmp(p->key, key, sizeof(key)) != 0))
        p = p->next;
    if (p) { /* the same token is being asked on this worker: join */
        op_append(p, op);
        pthread_mutex_unlock(&c->pend[i].mu);
        return op;
    }
    p = pt_xcalloc(1, sizeof(*p));
    memcpy(p->key, key, sizeof(key));
    p->w = w;
    p->c = c;
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    p->next = c->pend[i].head;
    c->pend[i].head = p;
    op_append(p, op);
    pthread_mutex_unlock(&c->pend[i].mu);
    start_request(c, p, token);
    return op;
}

void pt_introspect_cancel(struct pt_introspect_op *op)
{
    if (!op || op->running)
        return;
    if (op->task.queued) {
        pt_worker_cancel_deferred(op->w, &op->task);
        op_free(op);
        return;
    }
    struct pending *p = op->p;
    if (p) {
        op_unlink(p, op);
        if (!p->ops_head && !p->completing) { /* nobody waits: abandon the request */
            pending_unlink(p);
            pt_fetch_cancel(p->fetch);
            client_unref(p->c);
            free(p);
        }
    }
    op_free(op);
}
