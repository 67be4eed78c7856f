/*
 * Auth plans and the per-route steps, compiled once per snapshot (see
 * auth.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "core/arena.h"
#include "core/strutil.h"
#include "http/headers.h"

typedef Portico__Config__V1__Config Config;
typedef Portico__Config__V1__RouteAuth RouteAuth;

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

static struct pt_str lower_copy(const char *s)
{
    size_t n = strlen(s);
    char *p = pt_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = pt_ascii_lower(s[i]);
    p[n] = '\0';
    return (struct pt_str){p, n};
}

static const char *or_default(const char *v, const char *def)
{
    return v && *v ? v : def;
}

/* --- the plan ------------------------------------------------------------------ */

static void strip_add(struct pt_auth_plan *p, size_t *cap, const char *name)
{
    struct pt_str n = pt_str_from_cstr(name);
    for (size_t i = 0; i < p->nstrip; i++)
        if (pt_auth_header_name_alike(p->strip[i], n))
            return;
    if (p->nstrip == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        p->strip = pt_xrealloc(p->strip, *cap * sizeof(*p->strip));
    }
    p->strip[p->nstrip++] = lower_copy(name);
}

struct pt_auth_plan *pt_auth_plan_compile(const Config *cfg, struct pt_auth_error *err)
{
    const Portico__Config__V1__Auth *a = cfg->auth;
    struct pt_auth_plan *p = pt_xcalloc(1, sizeof(*p));
    p->api_key_header =
        lower_copy(or_default(a ? a->api_key_header : NULL, PT_AUTH_DEFAULT_API_KEY_HEADER));
    p->user_header = lower_copy(or_default(a ? a->user_header : NULL, PT_AUTH_DEFAULT_USER_HEADER));
    p->client_id_header =
        lower_copy(or_default(a ? a->client_id_header : NULL, PT_AUTH_DEFAULT_CLIENT_ID_HEADER));
    p->realm = pt_xstrdup(or_default(a ? a->realm : NULL, PT_AUTH_DEFAULT_REALM));
    p->usage_flush_ms = a && a->usage_flush_ms ? a->usage_flush_ms : PT_AUTH_DEFAULT_USAGE_FLUSH_MS;
    p->keys = pt_auth_keys_compile(cfg);

    size_t cap = 0;
    strip_add(p, &cap, p->user_header.ptr);
    strip_add(p, &cap, p->client_id_header.ptr);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const RouteAuth *ra = cfg->routes[i]->auth;
        for (size_t k = 0; ra && k < ra->n_claim_headers; k++)
            if (ra->claim_headers[k]->value && *ra->claim_headers[k]->value)
                strip_add(p, &cap, ra->claim_headers[k]->value);
    }

    for (size_t i = 0; pt_auth_method_at(i); i++) {
        const struct pt_auth_method *m = pt_auth_method_at(i);
        if (!m->compile)
            continue;
        struct pt_auth_error merr = {0};
        p->state[i] = m->compile(p, cfg, &merr);
        if (merr.text[0]) {
            errf(err, merr.msg ? merr.msg : a, merr.field, "%s: %s", m->name, merr.text);
            pt_auth_plan_free(p);
            return NULL;
        }
    }
    return p;
}

void pt_auth_plan_free(struct pt_auth_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; pt_auth_method_at(i); i++)
        if (pt_auth_method_at(i)->free)
            pt_auth_method_at(i)->free(p->state[i]);
    pt_auth_keys_free(p->keys);
    free((char *)p->api_key_header.ptr);
    free((char *)p->user_header.ptr);
    free((char *)p->client_id_header.ptr);
    free(p->realm);
    for (size_t i = 0; i < p->nstrip; i++)
        free((char *)p->strip[i].ptr);
    free(p->strip);
    free(p);
}

uint32_t pt_auth_plan_usage_flush_ms(const struct pt_auth_plan *p)
{
    return p->usage_flush_ms;
}

/* --- a route's step -------------------------------------------------------------- */

/* Headers a claim may not be sent as: the gateway's own, and the ones whose
 * meaning to the upstream is not the caller's identity. */
static const char *reserved_header(const struct pt_auth_plan *p, struct pt_str h)
{
    static const char *const fixed[] = {"authorization",   "cookie",       "host",
                                        "content-length",  "content-type", "transfer-encoding",
                                        "connection",      "te",           "upgrade",
                                        "x-forwarded-for", "x-request-id"};
    if (pt_auth_header_name_alike(h, p->api_key_header))
        return "the API-key header";
    if (pt_auth_header_name_alike(h, p->user_header))
        return "the user header (auth.user_header)";
    if (pt_auth_header_name_alike(h, p->client_id_header))
        return "the client-id header (auth.client_id_header)";
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (pt_auth_header_name_alike(h, pt_str_from_cstr(fixed[i])))
            return "a header the gateway or HTTP itself manages";
    return NULL;
}

static int compile_claims(struct pt_auth_route *r, const RouteAuth *ra, struct pt_auth_error *err)
{
    r->claims = pt_xcalloc(ra->n_claim_headers ? ra->n_claim_headers : 1, sizeof(*r->claims));
    for (size_t i = 0; i < ra->n_claim_headers; i++) {
        const Portico__Config__V1__RouteAuth__ClaimHeadersEntry *e = ra->claim_headers[i];
        char field[96];
        snprintf(field, sizeof(field), "claim_headers.%s", e->key ? e->key : "");
        if (!e->key || !*e->key || !e->value || !pt_http_is_token(pt_str_from_cstr(e->value))) {
            errf(err, ra, field, "a claim name and a valid header name are required");
            return -1;
        }
        struct pt_str h = pt_str_from_cstr(e->value);
        const char *why = reserved_header(r->plan, h);
        if (why) {
            errf(err, ra, field, "\"%s\" is %s", e->value, why);
            return -1;
        }
        for (size_t k = 0; k < r->nclaims; k++)
            if (pt_auth_header_name_alike(r->claims[k].header, h)) {
                errf(err, ra, field, "header \"%s\" is already used by claim \"%s\"", e->value,
                     r->claims[k].claim);
                return -1;
            }
        r->claims[r->nclaims].claim = pt_xstrdup(e->key);
        r->claims[r->nclaims].header = lower_copy(e->value);
        r->nclaims++;
    }
    return 0;
}

static int compile_methods(struct pt_auth_route *r, const RouteAuth *ra, struct pt_auth_error *err)
{
    if (ra->n_methods > PT_AUTH_MAX_ROUTE_METHODS) {
        errf(err, ra, "methods", "at most %d methods", PT_AUTH_MAX_ROUTE_METHODS);
        return -1;
    }
    if (!ra->n_methods && !ra->allow_anonymous) {
        errf(err, ra, "methods", "name at least one method (or set allow_anonymous: true)");
        return -1;
    }
    r->challenges = pt_xcalloc(ra->n_methods ? ra->n_methods : 1, sizeof(*r->challenges));
    for (size_t i = 0; i < ra->n_methods; i++) {
        char field[32];
        snprintf(field, sizeof(field), "methods[%zu]", i);
        const char *name = ra->methods[i] ? ra->methods[i] : "";
        bool has_arg;
        struct pt_str arg;
        const struct pt_auth_method *m =
            pt_auth_method_find(pt_str_from_cstr(name), &has_arg, &arg);
        if (!m) {
            char known[200];
            pt_auth_method_names(known, sizeof(known));
            errf(err, ra, field, "unknown authentication method \"%s\" (known: %s)", name, known);
            return -1;
        }
        const void *bound = NULL;
        if (m->bind) {
            char why[200] = "";
            if (m->bind(r->plan->state[pt_auth_method_index(m)], has_arg, arg, &bound, why,
                        sizeof(why)) != 0) {
                errf(err, ra, field, "%s: %s", name, why);
                return -1;
            }
        } else if (has_arg) {
            errf(err, ra, field, "method \"%s\" takes no \":<name>\"", m->name);
            return -1;
        }
        for (unsigned k = 0; k < r->nmethods; k++)
            if (r->methods[k] == m &&
                (r->method_args[k] == bound || !bound || !r->method_args[k])) {
                errf(err, ra, field, "method \"%s\" is listed twice (or with and without a name)",
                     name);
                return -1;
            }
        r->method_args[r->nmethods] = bound;
        r->methods[r->nmethods++] = m;
        /* One challenge per scheme: two methods may share one (Bearer). */
        char buf[300];
        int n = snprintf(buf, sizeof(buf), "%s realm=\"%s\"", m->scheme, r->plan->realm);
        bool dup = false;
        for (size_t k = 0; k < r->nchallenges; k++)
            dup |= strncmp(r->challenges[k].ptr, buf, (size_t)n) == 0 &&
                   r->challenges[k].len == (size_t)n;
        if (!dup)
            r->challenges[r->nchallenges++] = (struct pt_str){pt_xstrdup(buf), (size_t)n};
    }
    return 0;
}

struct pt_auth_route *pt_auth_route_new(const struct pt_auth_plan *p, const RouteAuth *ra,
                                        const char *name, struct pt_auth_error *err)
{
    struct pt_auth_route *r = pt_xcalloc(1, sizeof(*r));
    r->plan = p;
    r->name = pt_xstrdup(name);
    if (!ra)
        return r;
    r->enabled = true;
    r->allow_anonymous = ra->allow_anonymous;
    r->keep_authorization = ra->keep_authorization;
    r->keep_cookie = ra->keep_cookie;
    if (ra->token_query_param && *ra->token_query_param)
        r->token_query_param =
            (struct pt_str){pt_xstrdup(ra->token_query_param), strlen(ra->token_query_param)};
    if (ra->token_cookie && *ra->token_cookie)
        r->token_cookie = (struct pt_str){pt_xstrdup(ra->token_cookie), strlen(ra->token_cookie)};
    char field[96] = "", why[200] = "";
    if (pt_auth_mtls_field_parse(ra->mtls_identity, &r->mtls_identity) != 0) {
        errf(err, ra, "mtls_identity",
             "\"%s\": use subject_cn, san_dns, san_uri, san_email, "
             "subject or fingerprint",
             ra->mtls_identity);
        pt_auth_route_free(r);
        return NULL;
    }
    if (ra->rule && *ra->rule) {
        char rerr[PT_EXPR_ERR_MAX];
        r->rule = pt_expr_compile(pt_str_from_cstr(ra->rule), rerr, sizeof(rerr));
        if (!r->rule) {
            errf(err, ra, "rule", "rule: %s", rerr);
            pt_auth_route_free(r);
            return NULL;
        }
    }
    if (compile_methods(r, ra, err) != 0 || compile_claims(r, ra, err) != 0) {
        pt_auth_route_free(r);
        return NULL;
    }
    if (pt_auth_policy_compile(&r->policy, ra, field, sizeof(field), why, sizeof(why)) != 0) {
        errf(err, ra, field, "%s", why);
        pt_auth_route_free(r);
        return NULL;
    }
    unsigned mask = 0;
    for (unsigned i = 0; i < r->nmethods; i++)
        mask |= 1u << pt_auth_method_index(r->methods[i]);
    r->stats = pt_auth_stats_ref(name, mask);
    return r;
}

void pt_auth_route_free(struct pt_auth_route *r)
{
    if (!r)
        return;
    pt_auth_policy_fini(&r->policy);
    pt_expr_free(r->rule);
    free((char *)r->token_query_param.ptr);
    free((char *)r->token_cookie.ptr);
    for (size_t i = 0; i < r->nclaims; i++) {
        free(r->claims[i].claim);
        free((char *)r->claims[i].header.ptr);
    }
    free(r->claims);
    for (size_t i = 0; i < r->nchallenges; i++)
        free((char *)r->challenges[i].ptr);
    free(r->challenges);
    pt_auth_stats_unref(r->stats);
    free(r->name);
    free(r);
}

void *pt_auth_plan_route(struct pt_auth_plan *p, const Portico__Config__V1__Route *r,
                         const char *name, struct pt_auth_error *err)
{
    return pt_auth_route_new(p, r->auth, name, err);
}
