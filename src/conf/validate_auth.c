/*
 * Validation of the authentication settings that name outside things:
 * JWT issuers (auth.jwt_issuers), token introspection endpoints
 * (auth.introspection), and the per-route token sources, ABAC rule and
 * mTLS identity (routes[].auth). Called from pt_conf_validate (validate.c
 * holds the older auth checks); errors carry file:line:col, and a rule's
 * compile error points at the column inside the rule.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/expr.h"
#include "auth/fetch.h"
#include "auth/jwk.h"
#include "auth/token_cache.h"
#include "conf/conf_int.h"

typedef Portico__Config__V1__JwtIssuer JwtIssuer;
typedef Portico__Config__V1__Introspection IntroCfg;

#define MAX_LEEWAY_S 3600u
#define MIN_JWKS_REFRESH_MS 100u
#define MAX_JWKS_REFRESH_MS 86400000u
#define MAX_TOKEN_BYTES 65536u
#define MAX_INTROSPECT_TIMEOUT_MS 60000u
#define MAX_INTROSPECT_TTL_MS 86400000u

struct actx {
    const struct pt_conf *c;
    struct pt_diag *diag;
    unsigned *errors;
};

static void aerr_at(struct actx *v, const char *where, const char *path, const char *field,
                    const char *fmt, va_list ap)
{
    (*v->errors)++;
    if (*v->errors > PT_CONF_MAX_ERRORS)
        return;
    char full[256];
    snprintf(full, sizeof(full), "%s%s%s", path, field ? "." : "", field ? field : "");
    pt_diag_vaddf(v->diag, where, full, fmt, ap);
}

static void aerr(struct actx *v, const void *msg, const char *field, const char *path,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void aerr(struct actx *v, const void *msg, const char *field, const char *path,
                 const char *fmt, ...)
{
    char wbuf[512];
    const char *where = pt_conf_where(v->c, msg, field, wbuf, sizeof(wbuf));
    va_list ap;
    va_start(ap, fmt);
    aerr_at(v, where, path, field, fmt, ap);
    va_end(ap);
}

static bool set(const char *s)
{
    return s && *s;
}

static void readable(struct actx *v, const void *msg, const char *field, const char *path,
                     const char *file)
{
    struct stat st;
    if (stat(file, &st) != 0 || access(file, R_OK) != 0)
        aerr(v, msg, field, path, "cannot read \"%s\"", file);
    else if (S_ISDIR(st.st_mode))
        aerr(v, msg, field, path, "\"%s\" is a directory, not a file", file);
}

static bool name_ok(const char *s)
{
    if (!set(s) || strlen(s) > 100)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void unique_names(struct actx *v, const char *kind, const char *path_fmt,
                         const char *const *names, void *const *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < i; k++)
            if (set(names[i]) && set(names[k]) && strcmp(names[i], names[k]) == 0) {
                char path[64];
                snprintf(path, sizeof(path), path_fmt, i);
                aerr(v, msgs[i], "name", path, "%s \"%s\" is defined twice", kind, names[i]);
                break;
            }
}

static void check_issuer(struct actx *v, const JwtIssuer *ji, const char *p)
{
    if (!name_ok(ji->name))
        aerr(v, ji, "name", p, "a name (printable ASCII, no spaces, at most 100) is required");
    bool secret = set(ji->secret_env) || set(ji->secret_file);
    int sources = set(ji->jwks_url) + set(ji->jwks_file) + set(ji->public_key_file) +
                  set(ji->secret_env) + set(ji->secret_file);
    if (sources != 1)
        aerr(v, ji, NULL, p,
             "give exactly one key source: jwks_url, jwks_file, public_key_file, secret_env or "
             "secret_file (%d given)",
             sources);
    for (size_t i = 0; i < ji->n_algorithms; i++) {
        char f[48];
        snprintf(f, sizeof(f), "algorithms[%zu]", i);
        const char *a = ji->algorithms[i] ? ji->algorithms[i] : "";
        enum pt_jwt_alg alg;
        if (strcasecmp(a, "none") == 0)
            aerr(v, ji, f, p, "\"%s\" is never accepted: tokens must be signed", a);
        else if (pt_jwt_alg_parse(pt_str_from_cstr(a), &alg) != 0)
            aerr(v, ji, f, p,
                 "\"%s\" is not an algorithm portico verifies (HS256/384/512, RS256/384/512, "
                 "ES256/384/512)",
                 a);
        else if (((PT_JWT_ALG_BIT(alg) & PT_JWT_ALGS_HS) != 0) != secret)
            aerr(v, ji, f, p, "%s %s", a,
                 secret ? "cannot be verified with a secret (only HS256/384/512 can)"
                        : "needs a secret (secret_env or secret_file), never a public key");
    }
    if (set(ji->jwks_url)) {
        const char *why = NULL;
        if (strncmp(ji->jwks_url, "http://", 7) != 0 && strncmp(ji->jwks_url, "https://", 8) != 0)
            aerr(v, ji, "jwks_url", p, "\"%s\": use an http:// or https:// URL", ji->jwks_url);
        else if (pt_fetch_url_check(ji->jwks_url, &why) != 0)
            aerr(v, ji, "jwks_url", p, "\"%s\": %s", ji->jwks_url, why ? why : "invalid URL");
    }
    if (set(ji->jwks_file))
        readable(v, ji, "jwks_file", p, ji->jwks_file);
    if (set(ji->public_key_file))
        readable(v, ji, "public_key_file", p, ji->public_key_file);
    if (set(ji->secret_file))
        readable(v, ji, "secret_file", p, ji->secret_file);
    if (set(ji->ca_file)) {
        if (!set(ji->jwks_url) || strncmp(ji->jwks_url, "https://", 8) != 0)
            aerr(v, ji, "ca_file", p, "ca_file is for an https:// jwks_url");
        readable(v, ji, "ca_file", p, ji->ca_file);
    }
    if (ji->leeway_s && ji->leeway_s->value > MAX_LEEWAY_S)
        aerr(v, ji, "leeway_s", p, "%u is too large (at most %u)", ji->leeway_s->value,
             MAX_LEEWAY_S);
    if (ji->jwks_refresh_ms &&
        (ji->jwks_refresh_ms < MIN_JWKS_REFRESH_MS || ji->jwks_refresh_ms > MAX_JWKS_REFRESH_MS))
        aerr(v, ji, "jwks_refresh_ms", p, "%u is out of range (%u..%u)", ji->jwks_refresh_ms,
             MIN_JWKS_REFRESH_MS, MAX_JWKS_REFRESH_MS);
    if (ji->jwks_refresh_ms && !set(ji->jwks_url) && !set(ji->jwks_file))
        aerr(v, ji, "jwks_refresh_ms", p, "jwks_refresh_ms is for jwks_url or jwks_file");
    if (ji->max_token_bytes > MAX_TOKEN_BYTES)
        aerr(v, ji, "max_token_bytes", p, "%u is too large (at most %u)", ji->max_token_bytes,
             MAX_TOKEN_BYTES);
    if (ji->cache_max_entries > PT_TOKEN_CACHE_MAX_ENTRIES)
        aerr(v, ji, "cache_max_entries", p, "%u is too large (at most %u)", ji->cache_max_entries,
             PT_TOKEN_CACHE_MAX_ENTRIES);
    for (size_t i = 0; i < ji->n_required_claims; i++)
        if (!set(ji->required_claims[i])) {
            char f[48];
            snprintf(f, sizeof(f), "required_claims[%zu]", i);
            aerr(v, ji, f, p, "a claim name is required");
        }
    for (size_t i = 0; i < ji->n_audiences; i++)
        if (!set(ji->audiences[i])) {
            char f[48];
            snprintf(f, sizeof(f), "audiences[%zu]", i);
            aerr(v, ji, f, p, "an audience is a non-empty string");
        }
}

static void check_introspection(struct actx *v, const IntroCfg *ic, const char *p)
{
    if (!name_ok(ic->name))
        aerr(v, ic, "name", p, "a name (printable ASCII, no spaces, at most 100) is required");
    const char *why = NULL;
    if (!set(ic->url))
        aerr(v, ic, "url", p, "the endpoint url is required");
    else if (strncmp(ic->url, "http://", 7) != 0 && strncmp(ic->url, "https://", 8) != 0)
        aerr(v, ic, "url", p, "\"%s\": use an http:// or https:// URL", ic->url);
    else if (pt_fetch_url_check(ic->url, &why) != 0)
        aerr(v, ic, "url", p, "\"%s\": %s", ic->url, why ? why : "invalid URL");
    if (!set(ic->client_id))
        aerr(v, ic, "client_id", p, "client_id is required (HTTP Basic at the endpoint)");
    if (set(ic->client_secret_env) == set(ic->client_secret_file))
        aerr(v, ic, NULL, p, "give exactly one of client_secret_env and client_secret_file");
    if (set(ic->client_secret_file))
        readable(v, ic, "client_secret_file", p, ic->client_secret_file);
    if (set(ic->ca_file))
        readable(v, ic, "ca_file", p, ic->ca_file);
    if (ic->timeout_ms > MAX_INTROSPECT_TIMEOUT_MS)
        aerr(v, ic, "timeout_ms", p, "%u is too large (at most %u)", ic->timeout_ms,
             MAX_INTROSPECT_TIMEOUT_MS);
    if (ic->cache_max_ttl_ms > MAX_INTROSPECT_TTL_MS)
        aerr(v, ic, "cache_max_ttl_ms", p, "%u is too large (at most %u)", ic->cache_max_ttl_ms,
             MAX_INTROSPECT_TTL_MS);
    if (ic->negative_ttl_ms > MAX_INTROSPECT_TTL_MS)
        aerr(v, ic, "negative_ttl_ms", p, "%u is too large (at most %u)", ic->negative_ttl_ms,
             MAX_INTROSPECT_TTL_MS);
    if (set(ic->token_type_hint) && !pt_conf_is_token(ic->token_type_hint))
        aerr(v, ic, "token_type_hint", p, "\"%s\" is not a token type name", ic->token_type_hint);
}

/*
 * Where column col (1-based) of a rule is in the file: from the position
 * of the rule's value, looking at the source line to tell quoted and
 * block scalars apart. Falls back to the value's position.
 */
static void rule_where(struct actx *v, const void *msg, const char *rule, size_t col, char *buf,
                       size_t n)
{
    char wbuf[512];
    const char *w = pt_conf_where(v->c, msg, "rule", wbuf, sizeof(wbuf));
    snprintf(buf, n, "%s", w);
    /* "name:line:col" */
    const char *c2 = strrchr(w, ':');
    if (!c2 || c2 == w)
        return;
    const char *c1 = c2 - 1;
    while (c1 > w && *c1 != ':')
        c1--;
    if (*c1 != ':')
        return;
    unsigned long line = strtoul(c1 + 1, NULL, 10), vcol = strtoul(c2 + 1, NULL, 10);
    if (!line || !vcol)
        return;
    size_t nl = 0, line_start = 0;
    for (size_t i = 0; i + 1 < col && rule[i]; i++)
        if (rule[i] == '\n') {
            nl++;
            line_start = i + 1;
        }
    size_t in_line = col - line_start; /* 1-based column in that line of the rule */
    FILE *f = fopen(pt_conf_name(v->c), "r");
    if (!f)
        return;
    char text[4096];
    unsigned long ln = 0, out_line = 0, out_col = 0;
    char ind = 0;
    bool block = false;
    while (fgets(text, sizeof(text), f)) {
        ln++;
        if (ln == line) {
            ind = strlen(text) >= vcol ? text[vcol - 1] : 0;
            if (ind != '|' && ind != '>') {
                if (nl == 0) {
                    out_line = line;
                    out_col = vcol + (ind == '"' || ind == '\'') + in_line - 1;
                }
                break;
            }
            block = true;
            continue;
        }
        if (block && ln > line) {
            size_t sp = strspn(text, " ");
            if (text[sp] == '\n' || !text[sp])
                continue; /* blank lines before the content */
            if (ind == '|') {
                out_line = ln + nl;
                out_col = sp + in_line;
            } else if (nl == 0) {
                out_line = ln;
                out_col = sp + in_line; /* a folded rule: right while on its first line */
            }
            break;
        }
    }
    fclose(f);
    if (!out_line)
        return;
    size_t prefix = (size_t)(c1 - w);
    snprintf(buf, n, "%.*s:%lu:%lu", (int)prefix, w, out_line, out_col);
}

static void check_route(struct actx *v, const Portico__Config__V1__Route *r, size_t ri)
{
    const Portico__Config__V1__RouteAuth *a = r->auth;
    if (!a)
        return;
    char p[64];
    snprintf(p, sizeof(p), "routes[%zu].auth", ri);
    if (set(a->token_query_param) &&
        (strlen(a->token_query_param) > 100 || strpbrk(a->token_query_param, "&=#?% +")))
        aerr(v, a, "token_query_param", p,
             "\"%s\": a query parameter name without '&', '=', '#', '?', '%%', '+' or spaces",
             a->token_query_param);
    if (set(a->token_cookie) &&
        (!pt_conf_is_token(a->token_cookie) || strlen(a->token_cookie) > 100))
        aerr(v, a, "token_cookie", p, "\"%s\" is not a cookie name (an HTTP token)",
             a->token_cookie);
    static const char *const fields[] = {"subject_cn", "san_dns", "san_uri",
                                         "san_email",  "subject", "fingerprint"};
    if (set(a->mtls_identity)) {
        bool ok = false;
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
            ok |= strcmp(a->mtls_identity, fields[i]) == 0;
        if (!ok)
            aerr(v, a, "mtls_identity", p,
                 "\"%s\": use subject_cn, san_dns, san_uri, san_email, subject or fingerprint",
                 a->mtls_identity);
    }
    if (set(a->rule)) {
        char e[PT_EXPR_ERR_MAX];
        struct pt_expr *x = pt_expr_compile(pt_str_from_cstr(a->rule), e, sizeof(e));
        if (x) {
            pt_expr_free(x);
            if (!a->n_methods)
                aerr(v, a, "rule", p, "a rule needs a method (it reads the caller's identity)");
        } else {
            size_t col = 1;
            const char *msg = e;
            if (strncmp(e, "col ", 4) == 0) {
                col = strtoul(e + 4, NULL, 10);
                const char *colon = strchr(e, ':');
                if (colon)
                    msg = colon + 2 <= e + strlen(e) ? colon + 2 : colon;
            }
            char where[600];
            rule_where(v, a, a->rule, col ? col : 1, where, sizeof(where));
            (*v->errors)++;
            if (*v->errors <= PT_CONF_MAX_ERRORS) {
                char full[96];
                snprintf(full, sizeof(full), "%s.rule", p);
                pt_diag_addf(v->diag, where, full, "rule: %s (column %zu of the rule)", msg, col);
            }
        }
    }
}

void pt_conf_validate_auth_ext(const struct pt_conf *c, const Portico__Config__V1__Config *cfg,
                               struct pt_diag *diag, unsigned *errors)
{
    struct actx v = {c, diag, errors};
    const Portico__Config__V1__Auth *a = cfg->auth;
    if (a) {
        const char **names = pt_xcalloc(a->n_jwt_issuers + 1, sizeof(*names));
        for (size_t i = 0; i < a->n_jwt_issuers; i++) {
            char p[64];
            snprintf(p, sizeof(p), "auth.jwt_issuers[%zu]", i);
            check_issuer(&v, a->jwt_issuers[i], p);
            names[i] = a->jwt_issuers[i]->name;
        }
        unique_names(&v, "issuer", "auth.jwt_issuers[%zu]", names, (void *const *)a->jwt_issuers,
                     a->n_jwt_issuers);
        free(names);
        names = pt_xcalloc(a->n_introspection + 1, sizeof(*names));
        for (size_t i = 0; i < a->n_introspection; i++) {
            char p[64];
            snprintf(p, sizeof(p), "auth.introspection[%zu]", i);
            check_introspection(&v, a->introspection[i], p);
            names[i] = a->introspection[i]->name;
        }
        unique_names(&v, "introspection endpoint", "auth.introspection[%zu]", names,
                     (void *const *)a->introspection, a->n_introspection);
        free(names);
    }
    for (size_t i = 0; i < cfg->n_routes; i++)
        check_route(&v, cfg->routes[i], i);
    for (size_t i = 0; i < cfg->n_api_keys; i++) {
        const Portico__Config__V1__ApiKey *k = cfg->api_keys[i];
        for (size_t r = 0; r < k->n_roles; r++)
            if (!name_ok(k->roles[r])) {
                char p[64], f[48];
                snprintf(p, sizeof(p), "api_keys[%zu]", i);
                snprintf(f, sizeof(f), "roles[%zu]", r);
                aerr(&v, k, f, p, "a role is a non-empty word of printable ASCII (at most 100)");
            }
    }
}
