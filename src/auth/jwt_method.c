/*
 * The "jwt" authentication method (method.h): bearer tokens verified
 * against the issuers of auth.jwt_issuers (docs/auth.md).
 *
 * Issuers are compiled per snapshot, but their runtime - the key set
 * built from PEM or a secret, the JWKS source, the per-worker caches of
 * verified tokens - lives in a process-wide registry keyed by the issuer's
 * whole configuration (key material included, as a SHA-256): a reload
 * that keeps an issuer as it was keeps its keys, JWKS document and cached
 * tokens. Its settings generation (for token_cache.h) is the registry
 * entry's number, so a changed issuer never sees an old verdict.
 *
 * On a worker, per request:
 *   bearer token ──none──> ABSENT
 *     ──not three segments──> ABSENT when a later method reads bearer
 *                             tokens (introspection), else 401 malformed
 *     ──issuer: the route's (jwt:<name>), the only one, or by the token's
 *       unverified iss (an unknown iss is a 401)
 *     ──keys: the static set, or the JWKS source's current document
 *       (none yet: wait for the first fetch)
 *     ──cache hit──> OK
 *     ──verify──> OK (cached) | UNKNOWN_KID with a JWKS: refresh and wait
 *                             | anything else: 401 invalid_token
 * A wait (PENDING) ends when the source's fetch ends: the token is
 * verified once more with whatever keys there are then; no second wait.
 * A rate-limited refresh (PT_ERR_AGAIN) ends it at once. With no document
 * at all after the wait the answer is 503: the keys are unavailable, the
 * token may be fine. Waits are bounded by the fetch timeout (5 s).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "auth/bearer.h"
#include "auth/jwks_sched.h"
#include "auth/jwks_source.h"
#include "auth/jwt.h"
#include "auth/token_cache.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/log.h"
#include "core/time.h"

typedef Portico__Config__V1__JwtIssuer JwtIssuer;

/* Worker ids index the per-worker caches; validation allows 1024 workers. */
#define MAX_WORKERS 1024u
#define MAX_KEY_FILE ((size_t)1 << 20)
#define DEFAULT_ROLES_CLAIM "roles"
#define MAX_LIST 256

struct issuer_rt {
    struct issuer_rt *next;
    unsigned refs; /* registry mutex */
    char *key;     /* the canonical configuration */
    uint64_t gen;  /* settings generation for the token caches */
    char *name;
    struct pt_jwt_issuer s;
    char *iss;
    struct pt_str *auds, *reqs; /* owned arrays of owned strings */
    char *roles_claim;
    struct pt_jwk_set *keys;        /* public_key_file, secret_*: static */
    struct pt_jwks_source *src;     /* jwks_url, jwks_file */
    struct pt_token_cache **caches; /* [MAX_WORKERS], each made by its worker; NULL: no cache */
    size_t cache_max;
};

struct jwt_state {
    struct issuer_rt **v;
    size_t n;
    size_t peek_max; /* the largest max_token_bytes: for choosing by iss */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct issuer_rt *reg;
static uint64_t reg_gen;

/* --- compile -------------------------------------------------------------------- */

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

/* Status: 0 with *out (malloc'd, NUL-terminated) and *len, or -1 with
 * why in err. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
        return -1;
    }
    char *buf = pt_xmalloc(MAX_KEY_FILE + 1);
    size_t n = fread(buf, 1, MAX_KEY_FILE + 1, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad || n > MAX_KEY_FILE) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path,
                 bad ? "read error" : "larger than 1 MiB");
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Canonical text of the settings: length-prefixed fields, so equal text
 * means equal configuration. */
struct sbuf {
    char *p;
    size_t n, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t len)
{
    char pre[24];
    int w = snprintf(pre, sizeof(pre), "%zu:", len);
    if (b->n + (size_t)w + len + 1 > b->cap) {
        b->cap = (b->n + (size_t)w + len + 1) * 2;
        b->p = pt_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, pre, (size_t)w);
    memcpy(b->p + b->n + (size_t)w, s, len);
    b->n += (size_t)w + len;
    b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s ? s : "", s ? strlen(s) : 0);
}

static void sb_u64(struct sbuf *b, uint64_t v)
{
    char t[24];
    snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
    sb_str(b, t);
}

static void sb_sha(struct sbuf *b, const char *s, size_t len)
{
    unsigned char d[32];
    char hex[65];
    SHA256((const unsigned char *)s, len, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    sb_str(b, hex);
}

/* What an issuer is, besides its keys. */
struct issuer_conf {
    uint32_t algs;
    bool secret;
    char *material; /* PEM or secret bytes (static sources), malloc'd */
    size_t material_len;
    char url[4096]; /* JWKS source URL (jwks_url or file:...) */
};

static int issuer_conf(const JwtIssuer *ji, struct issuer_conf *ic, struct pt_auth_error *err)
{
    int sources = set(ji->jwks_url) + set(ji->jwks_file) + set(ji->public_key_file) +
                  (set(ji->secret_env) || set(ji->secret_file));
    if (sources != 1 || (set(ji->secret_env) && set(ji->secret_file))) {
        errf(err, ji, NULL,
             "issuer \"%s\": give exactly one key source: jwks_url, jwks_file, "
             "public_key_file, secret_env or secret_file",
             ji->name ? ji->name : "");
        return -1;
    }
    ic->secret = set(ji->secret_env) || set(ji->secret_file);
    ic->algs = 0;
    for (size_t i = 0; i < ji->n_algorithms; i++) {
        enum pt_jwt_alg alg;
        char f[48];
        snprintf(f, sizeof(f), "algorithms[%zu]", i);
        if (pt_jwt_alg_parse(pt_str_from_cstr(ji->algorithms[i] ? ji->algorithms[i] : ""), &alg) !=
            0) {
            errf(err, ji, f, "issuer \"%s\": \"%s\" is not an algorithm portico verifies", ji->name,
                 ji->algorithms[i] ? ji->algorithms[i] : "");
            return -1;
        }
        bool hs = PT_JWT_ALG_BIT(alg) & PT_JWT_ALGS_HS;
        if (hs != ic->secret) {
            errf(err, ji, f, "issuer \"%s\": %s %s", ji->name, ji->algorithms[i],
                 hs ? "needs a secret (secret_env or secret_file)"
                    : "needs a public key or JWKS, not a secret");
            return -1;
        }
        ic->algs |= PT_JWT_ALG_BIT(alg);
    }
    if (!ic->algs)
        ic->algs = ic->secret ? PT_JWT_ALGS_HS : PT_JWT_DEFAULT_ALGS;
    char why[300];
    ic->url[0] = '\0';
    ic->material = NULL;
    if (set(ji->jwks_url)) {
        snprintf(ic->url, sizeof(ic->url), "%s", ji->jwks_url);
    } else if (set(ji->jwks_file)) {
        snprintf(ic->url, sizeof(ic->url), "file:%s", ji->jwks_file);
    } else if (set(ji->public_key_file)) {
        if (read_file(ji->public_key_file, &ic->material, &ic->material_len, why, sizeof(why))) {
            errf(err, ji, "public_key_file", "issuer \"%s\": %s", ji->name, why);
            return -1;
        }
    } else if (set(ji->secret_file)) {
        if (read_file(ji->secret_file, &ic->material, &ic->material_len, why, sizeof(why))) {
            errf(err, ji, "secret_file", "issuer \"%s\": %s", ji->name, why);
            return -1;
        }
        if (ic->material_len && ic->material[ic->material_len - 1] == '\n')
            ic->material_len--; /* the newline editors add */
    } else {
        const char *v = getenv(ji->secret_env);
        if (!v || !*v) {
            errf(err, ji, "secret_env", "issuer \"%s\": environment variable %s is not set",
                 ji->name, ji->secret_env);
            return -1;
        }
        ic->material = pt_xstrdup(v);
        ic->material_len = strlen(v);
    }
    return 0;
}

static char *canonical(const JwtIssuer *ji, const struct issuer_conf *ic)
{
    struct sbuf b = {0};
    sb_str(&b, ji->name);
    sb_str(&b, ji->issuer);
    sb_u64(&b, ji->n_audiences);
    for (size_t i = 0; i < ji->n_audiences; i++)
        sb_str(&b, ji->audiences[i]);
    sb_u64(&b, ic->algs);
    sb_u64(&b, ji->leeway_s ? ji->leeway_s->value : PT_JWT_DEFAULT_LEEWAY_S);
    sb_u64(&b, ji->n_required_claims);
    for (size_t i = 0; i < ji->n_required_claims; i++)
        sb_str(&b, ji->required_claims[i]);
    sb_str(&b, ji->roles_claim);
    sb_u64(&b, ji->max_token_bytes);
    sb_u64(&b, ji->require_typ_at_jwt);
    sb_u64(&b, !ji->cache || ji->cache->value);
    sb_u64(&b, ji->cache_max_entries);
    sb_str(&b, ic->url);
    sb_str(&b, ji->ca_file);
    sb_u64(&b, ji->jwks_refresh_ms);
    sb_u64(&b, ic->secret);
    if (ic->material)
        sb_sha(&b, ic->material, ic->material_len);
    return b.p;
}

static void on_skip(void *ctx, size_t index, struct pt_str kid, const char *reason)
{
    (void)kid; /* untrusted bytes: not logged */
    pt_log_warn("jwt: JWKS %s: key %zu skipped: %s", ctx ? (const char *)ctx : "document", index,
                reason);
}

/* The JWKS source's parse hook: a document into a key set. */
static void *jwks_parse(const char *bytes, size_t len, void *arg, char *why, size_t why_len)
{
    (void)arg;
    struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, on_skip, NULL);
    struct pt_jwk_set *set = NULL;
    if (pt_jwk_builder_add_jwks(b, (struct pt_str){bytes, len}) == 0)
        set = pt_jwk_builder_finish(b);
    if (!set)
        snprintf(why, why_len, "%s", pt_jwk_builder_error(b));
    pt_jwk_builder_free(b);
    return set;
}

static void jwks_free(void *parsed, void *arg)
{
    (void)arg;
    pt_jwk_set_unref(parsed);
}

static struct pt_str *str_array(char *const *v, size_t n)
{
    struct pt_str *a = pt_xcalloc(n ? n : 1, sizeof(*a));
    for (size_t i = 0; i < n; i++)
        a[i] = (struct pt_str){pt_xstrdup(v[i] ? v[i] : ""), v[i] ? strlen(v[i]) : 0};
    return a;
}

static void str_array_free(struct pt_str *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        free((char *)a[i].ptr);
    free(a);
}

static void rt_free(struct issuer_rt *rt)
{
    if (!rt)
        return;
    if (rt->caches) {
        for (unsigned i = 0; i < MAX_WORKERS; i++)
            pt_token_cache_free(rt->caches[i]);
        free(rt->caches);
    }
    pt_jwk_set_unref(rt->keys);
    pt_jwks_source_unref(rt->src);
    str_array_free(rt->auds, rt->s.naudiences);
    str_array_free(rt->reqs, rt->s.nrequired_claims);
    free(rt->iss);
    free(rt->roles_claim);
    free(rt->name);
    free(rt->key);
    free(rt);
}

static struct issuer_rt *rt_build(const JwtIssuer *ji, struct issuer_conf *ic, char *key,
                                  struct pt_auth_error *err)
{
    struct issuer_rt *rt = pt_xcalloc(1, sizeof(*rt));
    rt->key = key;
    rt->name = pt_xstrdup(ji->name);
    pt_jwt_issuer_init(&rt->s);
    rt->iss = pt_xstrdup(set(ji->issuer) ? ji->issuer : "");
    rt->s.issuer = pt_str_from_cstr(rt->iss);
    rt->auds = str_array(ji->audiences, ji->n_audiences);
    rt->s.audiences = rt->auds;
    rt->s.naudiences = ji->n_audiences;
    rt->reqs = str_array(ji->required_claims, ji->n_required_claims);
    rt->s.required_claims = rt->reqs;
    rt->s.nrequired_claims = ji->n_required_claims;
    rt->s.algs = ic->algs;
    if (ji->leeway_s)
        rt->s.leeway_s = ji->leeway_s->value;
    if (ji->max_token_bytes)
        rt->s.max_token_bytes = ji->max_token_bytes;
    rt->s.require_typ_at_jwt = ji->require_typ_at_jwt;
    rt->roles_claim = pt_xstrdup(set(ji->roles_claim) ? ji->roles_claim : DEFAULT_ROLES_CLAIM);
    if (!ji->cache || ji->cache->value) {
        rt->caches = pt_xcalloc(MAX_WORKERS, sizeof(*rt->caches));
        rt->cache_max = ji->cache_max_entries;
    }
    if (ic->url[0]) {
        uint32_t refresh = ji->jwks_refresh_ms ? ji->jwks_refresh_ms : PT_JWKS_DEFAULT_REFRESH_MS;
        struct pt_jwks_source_conf sc = {
            .url = ic->url,
            .ca_file = set(ji->ca_file) ? ji->ca_file : NULL,
            .refresh_ms = refresh,
            /* On-demand refreshes no more often than timed ones. */
            .on_demand_min_ms = refresh < PT_JWKS_DEFAULT_ON_DEMAND_MIN_MS
                                    ? refresh
                                    : PT_JWKS_DEFAULT_ON_DEMAND_MIN_MS,
            .parse = jwks_parse,
            .free_parsed = jwks_free,
            .parse_arg = NULL, /* stable: equal configurations share the source */
        };
        int e;
        const char *why = NULL;
        rt->src = pt_jwks_source_new(&sc, &e, &why);
        if (!rt->src) {
            errf(err, ji, set(ji->jwks_url) ? "jwks_url" : "jwks_file", "issuer \"%s\": %s",
                 ji->name, why ? why : "invalid JWKS location");
            rt_free(rt);
            return NULL;
        }
    } else {
        struct pt_jwk_builder *b = pt_jwk_builder_new(NULL, on_skip, NULL);
        struct pt_str m = {ic->material, ic->material_len};
        int rc = ic->secret ? pt_jwk_builder_add_secret(b, PT_STR_NULL, m)
                            : pt_jwk_builder_add_pem(b, PT_STR_NULL, m);
        if (rc == 0)
            rt->keys = pt_jwk_builder_finish(b);
        if (!rt->keys) {
            errf(err, ji,
                 ic->secret ? (set(ji->secret_env) ? "secret_env" : "secret_file")
                            : "public_key_file",
                 "issuer \"%s\": %s", ji->name, pt_jwk_builder_error(b));
            pt_jwk_builder_free(b);
            rt_free(rt);
            return NULL;
        }
        pt_jwk_builder_free(b);
    }
    return rt;
}

/* Pointer: the runtime of issuer ji (shared with an equal one), or NULL
 * with err filled. */
static struct issuer_rt *rt_obtain(const JwtIssuer *ji, struct pt_auth_error *err)
{
    struct issuer_conf ic;
    if (issuer_conf(ji, &ic, err) != 0)
        return NULL;
    char *key = canonical(ji, &ic);
    pthread_mutex_lock(&reg_mu);
    for (struct issuer_rt *rt = reg; rt; rt = rt->next)
        if (strcmp(rt->key, key) == 0) {
            rt->refs++;
            pthread_mutex_unlock(&reg_mu);
            free(key);
            free(ic.material);
            return rt;
        }
    pthread_mutex_unlock(&reg_mu);
    struct issuer_rt *rt = rt_build(ji, &ic, key, err);
    if (ic.material)
        OPENSSL_cleanse(ic.material, ic.material_len);
    free(ic.material);
    if (!rt)
        return NULL;
    pthread_mutex_lock(&reg_mu);
    rt->refs = 1;
    rt->gen = ++reg_gen;
    rt->next = reg;
    reg = rt;
    pthread_mutex_unlock(&reg_mu);
    return rt;
}

static void rt_put(struct issuer_rt *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&reg_mu);
    bool last = --rt->refs == 0;
    if (last) {
        struct issuer_rt **pp = &reg;
        while (*pp != rt)
            pp = &(*pp)->next;
        *pp = rt->next;
    }
    pthread_mutex_unlock(&reg_mu);
    if (last)
        rt_free(rt);
}

static void jwt_free(void *state)
{
    struct jwt_state *st = state;
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        rt_put(st->v[i]);
    free(st->v);
    free(st);
}

static void *jwt_compile(const struct pt_auth_plan *plan, const Portico__Config__V1__Config *cfg,
                         struct pt_auth_error *err)
{
    (void)plan;
    const Portico__Config__V1__Auth *a = cfg->auth;
    if (!a || !a->n_jwt_issuers)
        return NULL;
    struct jwt_state *st = pt_xcalloc(1, sizeof(*st));
    st->v = pt_xcalloc(a->n_jwt_issuers, sizeof(*st->v));
    for (size_t i = 0; i < a->n_jwt_issuers; i++) {
        const JwtIssuer *ji = a->jwt_issuers[i];
        if (!set(ji->name)) {
            errf(err, ji, "name", "every issuer needs a name");
            jwt_free(st);
            return NULL;
        }
        for (size_t k = 0; k < st->n; k++)
            if (strcmp(st->v[k]->name, ji->name) == 0) {
                errf(err, ji, "name", "issuer \"%s\" is defined twice", ji->name);
                jwt_free(st);
                return NULL;
            }
        struct issuer_rt *rt = rt_obtain(ji, err);
        if (!rt) {
            jwt_free(st);
            return NULL;
        }
        st->v[st->n++] = rt;
        if (rt->s.max_token_bytes > st->peek_max)
            st->peek_max = rt->s.max_token_bytes;
    }
    return st;
}

static int jwt_bind(void *state, bool has_arg, struct pt_str arg, const void **out, char *err,
                    size_t errlen)
{
    const struct jwt_state *st = state;
    if (!st || !st->n) {
        snprintf(err, errlen, "no JWT issuers are configured (auth.jwt_issuers)");
        return -1;
    }
    *out = NULL;
    if (!has_arg)
        return 0;
    for (size_t i = 0; i < st->n; i++)
        if (pt_str_eq(arg, pt_str_from_cstr(st->v[i]->name))) {
            *out = st->v[i];
            return 0;
        }
    snprintf(err, errlen, "no JWT issuer is called \"%.*s\"", (int)(arg.len > 100 ? 100 : arg.len),
             arg.ptr);
    return -1;
}

/* --- requests ------------------------------------------------------------------- */

static const char *xprintf(struct pt_exchange *x, const char *fallback, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *xprintf(struct pt_exchange *x, const char *fallback, const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return fallback;
    size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    char *p = pt_exchange_alloc(x, len + 1);
    if (!p)
        return fallback;
    memcpy(p, buf, len);
    p[len] = '\0';
    return p;
}

static enum pt_auth_status fail(struct pt_exchange *x, const struct issuer_rt *rt,
                                enum pt_jwt_result r, struct pt_auth_result *out)
{
    const char *text = pt_jwt_result_text(r);
    out->reason =
        xprintf(x, "jwt: invalid token", "jwt: %s: %s", rt ? rt->name : "-", pt_jwt_result_name(r));
    const char *params = xprintf(x, "error=\"invalid_token\"",
                                 "error=\"invalid_token\", error_description=\"%s\"", text);
    out->challenge_params = pt_str_from_cstr(params);
    out->description = pt_str_from_cstr(text);
    return PT_AUTH_FAIL;
}

static struct pt_token_cache *cache_of(struct issuer_rt *rt, struct pt_exchange *x)
{
    if (!rt->caches || !x->worker || x->worker->id >= MAX_WORKERS)
        return NULL;
    struct pt_token_cache **c = &rt->caches[x->worker->id];
    if (!*c) {
        struct pt_token_cache_opts o = {.max_entries = rt->cache_max};
        *c = pt_token_cache_new(&o);
    }
    return *c;
}

/* OK with the identity of claims (one reference, handed to the step). */
static enum pt_auth_status accept_claims(struct pt_exchange *x, const struct issuer_rt *rt,
                                         json_t *claims, struct pt_auth_result *out)
{
    struct pt_str scopes[MAX_LIST], roles[MAX_LIST];
    size_t ns = pt_jwt_claims_scopes(claims, scopes, MAX_LIST);
    size_t nr =
        pt_auth_claim_words(pt_auth_claim_at(claims, rt->roles_claim), false, roles, MAX_LIST);
    struct pt_str sub = pt_jwt_claims_sub(claims);
    struct pt_str client = pt_jwt_claim_str(claims, "client_id");
    if (!client.len)
        client = pt_jwt_claim_str(claims, "azp");
    if (!client.len)
        client = pt_jwt_claim_str(claims, "cid");
    struct pt_auth_id_fields f = {
        .method = "jwt",
        .subject = sub,
        .user_id = sub,
        .client_id = client,
        .tier = pt_jwt_claim_str(claims, "tier"),
        .credential = pt_str_from_cstr(rt->name),
        .scopes = scopes,
        .nscopes = ns < MAX_LIST ? ns : MAX_LIST,
        .roles = roles,
        .nroles = nr,
        .claims = claims,
    };
    const struct pt_identity_full *id = pt_auth_identity_in_exchange(x, &f);
    if (!id) {
        json_decref(claims);
        out->reason = "jwt: the identity does not fit the exchange's memory";
        out->error = PT_ERR_HEADERS_TOO_LARGE;
        return PT_AUTH_FAIL;
    }
    out->id = id;
    out->claims = claims;
    out->claims_owned = true;
    return PT_AUTH_OK;
}

struct jwt_wait {
    struct pt_auth_call *call;
    struct issuer_rt *rt;
    struct pt_str token; /* exchange memory */
    struct pt_jwks_wait *w;
};

static enum pt_auth_status verify(struct pt_auth_call *call, struct issuer_rt *rt,
                                  struct pt_str tok, bool may_wait, struct pt_auth_result *out);

static void on_refreshed(void *arg, int status, uint64_t generation)
{
    (void)generation;
    struct jwt_wait *jw = arg;
    jw->w = NULL;
    if (status != 0)
        pt_log_debug("jwt: issuer %s: JWKS refresh: %s", jw->rt->name, pt_err_name(status));
    struct pt_auth_result res = {0};
    enum pt_auth_status st = verify(jw->call, jw->rt, jw->token, false, &res);
    pt_auth_call_done(jw->call, st, &res);
}

static enum pt_auth_status wait_for_keys(struct pt_auth_call *call, struct issuer_rt *rt,
                                         struct pt_str tok, struct pt_auth_result *out)
{
    struct pt_exchange *x = call->x;
    struct jwt_wait *jw = pt_exchange_alloc(x, sizeof(*jw));
    char *copy = pt_exchange_alloc(x, tok.len);
    if (!jw || !copy) {
        out->reason = "jwt: out of exchange memory";
        out->error = PT_ERR_HEADERS_TOO_LARGE;
        return PT_AUTH_FAIL;
    }
    memcpy(copy, tok.ptr, tok.len);
    *jw = (struct jwt_wait){.call = call, .rt = rt, .token = {copy, tok.len}};
    jw->w = pt_jwks_source_refresh_now(rt->src, x->worker, on_refreshed, jw);
    call->op = jw;
    return PT_AUTH_PENDING;
}

static enum pt_auth_status verify(struct pt_auth_call *call, struct issuer_rt *rt,
                                  struct pt_str tok, bool may_wait, struct pt_auth_result *out)
{
    struct pt_exchange *x = call->x;
    int64_t now = (int64_t)(pt_time_real_ns() / 1000000000ull);
    struct pt_jwks_doc *doc = NULL;
    const struct pt_jwk_set *keys = rt->keys;
    if (!keys) {
        doc = pt_jwks_source_doc_ref(rt->src);
        keys = doc ? doc->parsed : NULL;
    }
    /* Waiting needs the exchange's worker to deliver the end of the wait. */
    may_wait = may_wait && rt->src && x->worker;
    if (!keys) {
        pt_jwks_doc_unref(doc);
        if (may_wait)
            return wait_for_keys(call, rt, tok, out);
        char e[160] = "";
        if (rt->src)
            pt_jwks_source_last_error(rt->src, e, sizeof(e));
        pt_log_warn("jwt: issuer %s: no keys to verify with yet%s%s", rt->name, *e ? ": " : "", e);
        out->reason = xprintf(x, "jwt: no keys", "jwt: %s: no keys (JWKS not fetched)", rt->name);
        out->error = PT_ERR_AGAIN;
        return PT_AUTH_FAIL;
    }
    uint64_t kgen = pt_jwk_set_generation(keys);
    struct pt_token_cache *c = cache_of(rt, x);
    if (c) {
        json_t *claims = pt_token_cache_lookup(c, rt->gen, kgen, tok, now);
        if (claims) {
            pt_jwks_doc_unref(doc);
            return accept_claims(x, rt, claims, out);
        }
    }
    struct pt_jwt_verified v;
    enum pt_jwt_result r = pt_jwt_verify(&rt->s, keys, tok, now, &v);
    pt_jwks_doc_unref(doc);
    if (r == PT_JWT_UNKNOWN_KID && may_wait)
        return wait_for_keys(call, rt, tok, out);
    if (r != PT_JWT_OK)
        return fail(x, rt, r, out);
    if (c)
        pt_token_cache_insert(c, rt->gen, kgen, tok, v.claims, v.has_exp, v.exp, now);
    json_t *claims = v.claims;
    v.claims = NULL;
    return accept_claims(x, rt, claims, out);
}

/* Does a method after this one on the route read bearer tokens? */
static bool later_bearer(const struct pt_auth_call *call)
{
    const struct pt_auth_route *r = call->route;
    for (unsigned k = call->index + 1; r && k < r->nmethods; k++)
        if (r->methods[k]->bearer)
            return true;
    return false;
}

static enum pt_auth_status jwt_authenticate(struct pt_auth_call *call, struct pt_auth_result *out)
{
    const struct jwt_state *st = call->state;
    struct pt_exchange *x = call->x;
    struct pt_str tok;
    const char *where;
    switch (pt_auth_bearer_find(x, call->route, &tok, &where)) {
    case PT_AUTH_BEARER_ABSENT:
        return PT_AUTH_ABSENT;
    case PT_AUTH_BEARER_INVALID:
        out->reason = "jwt: several Authorization headers, or Bearer without a token";
        out->challenge_params = PT_STR("error=\"invalid_request\"");
        out->description = PT_STR("invalid request");
        return PT_AUTH_FAIL;
    case PT_AUTH_BEARER_FOUND:
        break;
    }
    if (!st || !st->n)
        return PT_AUTH_ABSENT; /* cannot happen: bind refuses the route */
    struct issuer_rt *rt = (struct issuer_rt *)call->arg;
    if (!pt_auth_bearer_is_jwt(tok)) {
        if (later_bearer(call))
            return PT_AUTH_ABSENT; /* an opaque token: introspection's */
        return fail(x, rt, PT_JWT_MALFORMED, out);
    }
    if (!rt && st->n == 1)
        rt = st->v[0];
    if (!rt) {
        /* Several issuers: the token's own (unverified) iss chooses whose
         * rules verify it; the chosen issuer checks iss again. */
        struct pt_jwt_peek p;
        enum pt_jwt_result r = pt_jwt_peek(tok, st->peek_max, &p);
        if (r != PT_JWT_OK)
            return fail(x, NULL, r, out);
        for (size_t i = 0; i < st->n && !rt; i++)
            if (st->v[i]->s.issuer.len && pt_str_eq(p.iss, st->v[i]->s.issuer))
                rt = st->v[i];
        pt_jwt_peek_fini(&p);
        if (!rt)
            return fail(x, NULL, PT_JWT_BAD_ISSUER, out);
    }
    return verify(call, rt, tok, true, out);
}

static void jwt_cancel(struct pt_auth_call *call)
{
    struct jwt_wait *jw = call->op;
    if (jw && jw->w) {
        pt_jwks_wait_cancel(jw->w);
        jw->w = NULL;
    }
}

const struct pt_auth_method pt_auth_method_jwt = {
    .name = "jwt",
    .scheme = "Bearer",
    .compile = jwt_compile,
    .free = jwt_free,
    .bind = jwt_bind,
    .bearer = true,
    .authenticate = jwt_authenticate,
    .cancel = jwt_cancel,
};
