/*
 * The "introspection" authentication method (method.h): opaque bearer
 * tokens checked with an OAuth 2.0 token introspection endpoint (RFC 7662,
 * introspect.h) of auth.introspection (docs/auth.md).
 *
 *   bearer token ──none──> ABSENT
 *     ──cached answer──> active: OK | inactive: 401 invalid_token   (no pause)
 *     ──else: ask the endpoint (PENDING) ──> the same, on the worker
 *                                        ──> no answer: 503 (UNAVAILABLE), logged
 *
 * Clients are rebuilt per snapshot; their answer caches are shared by
 * every client with the same endpoint, client id and lifetimes, through a
 * small registry, so a reload keeps what was learned.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "auth/bearer.h"
#include "auth/introspect.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/named.h"

typedef Portico__Config__V1__Introspection IntroCfg;

#define MAX_SECRET_FILE 4096
#define INTROSPECT_LEEWAY_S 60u
#define MAX_LIST 256

/* --- shared caches ------------------------------------------------------------ */

/* One answer cache per (endpoint, client, cache settings), shared by every
 * snapshot that names it, so a reload keeps what it learned (core/named.h:
 * the key holds every setting, so a listed cache always fits). */
struct cache_entry {
    struct pt_named named;
    struct pt_introspect_cache *cache;
};

static struct pt_named_table reg = PT_NAMED_TABLE_INIT;

static struct pt_named *cache_make(const char *key, const void *arg)
{
    const IntroCfg *ic = arg;
    struct cache_entry *e = pt_xcalloc(1, sizeof(*e));
    e->named.key = pt_xstrdup(key);
    struct pt_introspect_cache_conf cc = {
        .max_ttl_ms = ic->cache_max_ttl_ms,
        .negative_ttl_ms = ic->negative_ttl_ms,
    };
    e->cache = pt_introspect_cache_new(&cc);
    return &e->named;
}

static void cache_destroy(struct pt_named *n)
{
    struct cache_entry *e = PT_NAMED_OF(n, struct cache_entry, named);
    pt_introspect_cache_unref(e->cache);
    free(e->named.key);
    free(e);
}

static const struct pt_named_ops cache_ops = {cache_make, NULL, cache_destroy};

static struct cache_entry *cache_obtain(const IntroCfg *ic)
{
    char key[4096];
    snprintf(key, sizeof(key), "%u\n%u\n%s\n%s", ic->cache_max_ttl_ms, ic->negative_ttl_ms,
             ic->url ? ic->url : "", ic->client_id ? ic->client_id : "");
    return PT_NAMED_OF(pt_named_ref(&reg, key, &cache_ops, ic), struct cache_entry, named);
}

static void cache_put(struct cache_entry *e)
{
    if (e)
        pt_named_unref(&reg, &e->named, &cache_ops);
}

/* --- compile -------------------------------------------------------------------- */

struct intro_client {
    char *name;
    char *roles_claim;
    struct pt_introspect_client *c;
    struct cache_entry *cache;
};

struct intro_state {
    struct intro_client *v;
    size_t n;
};

static void errf(struct pt_auth_error *err, const void *msg, const char *field, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));
static void errf(struct pt_auth_error *err, const void *msg, const char *field, const char *fmt,
                 ...)
{
    err->msg = msg;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
}

static bool set(const char *s)
{
    return s && *s;
}

static void intro_free(void *state)
{
    struct intro_state *st = state;
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++) {
        pt_introspect_client_free(st->v[i].c);
        cache_put(st->v[i].cache);
        free(st->v[i].name);
        free(st->v[i].roles_claim);
    }
    free(st->v);
    free(st);
}

/* Status: 0 with the secret in buf, or -1 with err filled. */
static int read_secret(const IntroCfg *ic, char *buf, size_t cap, struct pt_auth_error *err)
{
    if (set(ic->client_secret_env)) {
        const char *v = getenv(ic->client_secret_env);
        if (!v) {
            errf(err, ic, "client_secret_env",
                 "introspection \"%s\": environment variable %s is not set", ic->name,
                 ic->client_secret_env);
            return -1;
        }
        snprintf(buf, cap, "%s", v);
        return 0;
    }
    if (!set(ic->client_secret_file)) {
        errf(err, ic, NULL, "introspection \"%s\": give client_secret_env or client_secret_file",
             ic->name);
        return -1;
    }
    FILE *f = fopen(ic->client_secret_file, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    bool bad = !f || ferror(f) || n == cap - 1;
    if (f)
        fclose(f);
    if (bad) {
        errf(err, ic, "client_secret_file", "introspection \"%s\": cannot read \"%s\" (or %s)",
             ic->name, ic->client_secret_file, "larger than 4 KiB");
        return -1;
    }
    buf[n] = '\0';
    if (n && buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    return 0;
}

static void *intro_compile(const struct pt_auth_plan *plan, const Portico__Config__V1__Config *cfg,
                           struct pt_auth_error *err)
{
    (void)plan;
    const Portico__Config__V1__Auth *a = cfg->auth;
    if (!a || !a->n_introspection)
        return NULL;
    struct intro_state *st = pt_xcalloc(1, sizeof(*st));
    st->v = pt_xcalloc(a->n_introspection, sizeof(*st->v));
    for (size_t i = 0; i < a->n_introspection; i++) {
        const IntroCfg *ic = a->introspection[i];
        if (!set(ic->name)) {
            errf(err, ic, "name", "every introspection endpoint needs a name");
            intro_free(st);
            return NULL;
        }
        for (size_t k = 0; k < st->n; k++)
            if (strcmp(st->v[k].name, ic->name) == 0) {
                errf(err, ic, "name", "introspection \"%s\" is defined twice", ic->name);
                intro_free(st);
                return NULL;
            }
        char secret[MAX_SECRET_FILE];
        if (read_secret(ic, secret, sizeof(secret), err) != 0) {
            intro_free(st);
            return NULL;
        }
        struct intro_client *c = &st->v[st->n];
        c->cache = cache_obtain(ic);
        struct pt_introspect_conf conf = {
            .url = ic->url,
            .client_id = ic->client_id,
            .client_secret = secret,
            .token_type_hint = set(ic->token_type_hint) ? ic->token_type_hint : NULL,
            .ca_file = set(ic->ca_file) ? ic->ca_file : NULL,
            .timeout_ms = ic->timeout_ms,
            .leeway_s = INTROSPECT_LEEWAY_S,
            .cache = c->cache->cache,
        };
        int e;
        const char *why = NULL;
        c->c = pt_introspect_client_new(&conf, &e, &why);
        memset(secret, 0, sizeof(secret));
        if (!c->c) {
            cache_put(c->cache);
            errf(err, ic, NULL, "introspection \"%s\": %s", ic->name, why ? why : "invalid");
            intro_free(st);
            return NULL;
        }
        c->name = pt_xstrdup(ic->name);
        c->roles_claim = pt_xstrdup(set(ic->roles_claim) ? ic->roles_claim : "roles");
        st->n++;
    }
    return st;
}

static int intro_bind(void *state, bool has_arg, struct pt_str arg, const void **out, char *err,
                      size_t errlen)
{
    const struct intro_state *st = state;
    if (!st || !st->n) {
        snprintf(err, errlen, "no introspection endpoints are configured (auth.introspection)");
        return -1;
    }
    if (!has_arg) {
        if (st->n != 1) {
            snprintf(err, errlen,
                     "%zu introspection endpoints are configured: name one "
                     "(introspection:<name>)",
                     st->n);
            return -1;
        }
        *out = &st->v[0];
        return 0;
    }
    for (size_t i = 0; i < st->n; i++)
        if (pt_str_eq(arg, pt_str_from_cstr(st->v[i].name))) {
            *out = &st->v[i];
            return 0;
        }
    snprintf(err, errlen, "no introspection endpoint is called \"%.*s\"",
             (int)(arg.len > 100 ? 100 : arg.len), arg.ptr);
    return -1;
}

/* --- requests ------------------------------------------------------------------- */

static struct pt_str cstr(const char *s)
{
    return s ? pt_str_from_cstr(s) : PT_STR_NULL;
}

static enum pt_auth_status answer(struct pt_exchange *x, const struct intro_client *ic,
                                  struct pt_introspection *r, struct pt_auth_result *out)
{
    if (!r->active) {
        out->reason = "introspection: token not active";
        out->challenge_params =
            PT_STR("error=\"invalid_token\", error_description=\"token is not active\"");
        out->description = PT_STR("token is not active");
        return PT_AUTH_FAIL;
    }
    struct pt_str scopes[MAX_LIST], roles[MAX_LIST];
    size_t ns = 0;
    for (size_t i = 0; i < r->nscopes && ns < MAX_LIST; i++)
        scopes[ns++] = pt_str_from_cstr(r->scopes[i]);
    size_t nr =
        pt_auth_claim_words(pt_auth_claim_at(r->claims, ic->roles_claim), false, roles, MAX_LIST);
    const json_t *tier = r->claims ? json_object_get(r->claims, "tier") : NULL;
    struct pt_str sub = cstr(r->sub);
    struct pt_auth_id_fields f = {
        .method = "introspection",
        .subject = sub.len ? sub : cstr(r->username),
        .user_id = sub.len ? sub : cstr(r->username),
        .client_id = cstr(r->client_id),
        .tier = json_is_string(tier)
                    ? (struct pt_str){json_string_value(tier), json_string_length(tier)}
                    : PT_STR_NULL,
        .credential = pt_str_from_cstr(ic->name),
        .scopes = scopes,
        .nscopes = ns,
        .roles = roles,
        .nroles = nr,
        .claims = r->claims,
    };
    const struct pt_identity_full *id = pt_auth_identity_in_exchange(x, &f);
    if (!id) {
        out->reason = "introspection: the identity does not fit the exchange's memory";
        out->error = PT_ERR_HEADERS_TOO_LARGE;
        return PT_AUTH_FAIL;
    }
    out->id = id;
    if (r->claims) {
        out->claims = json_incref(r->claims);
        out->claims_owned = true;
    }
    return PT_AUTH_OK;
}

struct intro_op {
    struct pt_auth_call *call;
    const struct intro_client *ic;
    struct pt_introspect_op *op;
};

static void on_answer(void *arg, int status, struct pt_introspection *res, const char *detail)
{
    struct intro_op *o = arg;
    o->op = NULL;
    struct pt_auth_result out = {0};
    enum pt_auth_status st;
    if (status < 0 || !res) {
        pt_log_warn("introspection %s: no answer: %s", o->ic->name, detail ? detail : "error");
        out.reason = "introspection: the endpoint did not answer";
        out.error = PT_ERR_AGAIN;
        st = PT_AUTH_FAIL;
    } else {
        st = answer(o->call->x, o->ic, res, &out);
    }
    pt_auth_call_done(o->call, st, &out);
}

static enum pt_auth_status intro_authenticate(struct pt_auth_call *call, struct pt_auth_result *out)
{
    struct pt_exchange *x = call->x;
    const struct intro_client *ic = call->arg;
    struct pt_str tok;
    const char *where;
    switch (pt_auth_bearer_find(x, call->route, &tok, &where)) {
    case PT_AUTH_BEARER_ABSENT:
        return PT_AUTH_ABSENT;
    case PT_AUTH_BEARER_INVALID:
        out->reason = "introspection: several Authorization headers, or Bearer without a token";
        out->challenge_params = PT_STR("error=\"invalid_request\"");
        out->description = PT_STR("invalid request");
        return PT_AUTH_FAIL;
    case PT_AUTH_BEARER_FOUND:
        break;
    }
    if (!ic)
        return PT_AUTH_ABSENT; /* cannot happen: bind refuses the route */
    struct pt_introspection *r = pt_introspect_lookup(ic->c, tok);
    if (r) {
        enum pt_auth_status st = answer(x, ic, r, out);
        pt_introspection_unref(r);
        return st;
    }
    struct intro_op *o = x->worker ? pt_exchange_alloc(x, sizeof(*o)) : NULL;
    if (!o) {
        out->reason = "introspection: cannot ask the endpoint from here";
        out->error = PT_ERR_AGAIN;
        return PT_AUTH_FAIL;
    }
    o->call = call;
    o->ic = ic;
    call->op = o;
    o->op = pt_introspect_start(ic->c, tok, x->worker, on_answer, o);
    return PT_AUTH_PENDING;
}

static void intro_cancel(struct pt_auth_call *call)
{
    struct intro_op *o = call->op;
    if (o && o->op) {
        pt_introspect_cancel(o->op);
        o->op = NULL;
    }
}

const struct pt_auth_method pt_auth_method_introspection = {
    .name = "introspection",
    .scheme = "Bearer",
    .compile = intro_compile,
    .free = intro_free,
    .bind = intro_bind,
    .bearer = true,
    .authenticate = intro_authenticate,
    .cancel = intro_cancel,
};
