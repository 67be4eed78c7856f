/*
 * Rate-limit plans: rules compiled once per snapshot, and the
 * registry of local tables that outlive snapshots (see ratelimit.h).
 */
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/strutil.h"
#include "core/time.h"
#include "ratelimit/ratelimit_int.h"

typedef Portico__Config__V1__RateLimitRule RuleCfg;

/* --- shared tables ---------------------------------------------------------- */

struct shared_table {
    struct shared_table *next;
    char *id; /* rule name, fingerprint and max_keys */
    unsigned refs;
    struct pt_rl_table *table;
};

static pthread_mutex_t tables_mu = PTHREAD_MUTEX_INITIALIZER;
static struct shared_table *tables;

static struct pt_rl_table *table_ref(const struct pt_rl_rule *r, size_t max_keys)
{
    char id[512];
    snprintf(id, sizeof(id), "%s/%s/%zu", r->name, r->fingerprint, max_keys);
    pthread_mutex_lock(&tables_mu);
    struct shared_table *t = tables;
    while (t && strcmp(t->id, id) != 0)
        t = t->next;
    if (!t) {
        t = pt_xcalloc(1, sizeof(*t));
        t->id = pt_xstrdup(id);
        t->table = pt_rl_table_new(&r->params, max_keys);
        t->next = tables;
        tables = t;
    }
    t->refs++;
    pthread_mutex_unlock(&tables_mu);
    return t->table;
}

static void table_unref(struct pt_rl_table *table)
{
    if (!table)
        return;
    pthread_mutex_lock(&tables_mu);
    struct shared_table **pp = &tables;
    while (*pp && (*pp)->table != table)
        pp = &(*pp)->next;
    struct shared_table *t = *pp;
    if (t && --t->refs == 0) {
        *pp = t->next;
        pt_rl_table_free(t->table);
        free(t->id);
        free(t);
    }
    pthread_mutex_unlock(&tables_mu);
}

/* --- rules ------------------------------------------------------------------ */

static void fingerprint(const RuleCfg *rc, const struct pt_rl_rule *r, char out[17])
{
    char text[512];
    int n = snprintf(text, sizeof(text), "%d|%llu|%llu|%llu|%s|%u|%u|%d", (int)r->params.algorithm,
                     (unsigned long long)r->params.limit, (unsigned long long)r->params.burst,
                     (unsigned long long)r->params.window_ns, rc->key_type, r->key.ipv4_prefix,
                     r->key.ipv6_prefix, (int)r->mode);
    char hex[65];
    pt_rl_sha256_hex(text, (size_t)(n < (int)sizeof(text) ? n : (int)sizeof(text) - 1), hex);
    memcpy(out, hex, 16);
    out[16] = '\0';
}

static int compile_rule(const RuleCfg *rc, size_t index, struct pt_rl_rule *r, struct pt_diag *diag)
{
    char field[64];
    snprintf(field, sizeof(field), "rate_limit_rules[%zu]", index);
    static const enum pt_rl_algorithm algos[] = {PT_RL_TOKEN_BUCKET, PT_RL_TOKEN_BUCKET,
                                                 PT_RL_SLIDING_WINDOW, PT_RL_GCRA};
    static const enum pt_rl_action actions[] = {PT_RL_REJECT, PT_RL_REJECT, PT_RL_QUEUE,
                                                PT_RL_SHADOW};
    static const enum pt_rl_mode modes[] = {PT_RL_LOCAL, PT_RL_LOCAL, PT_RL_REDIS, PT_RL_HYBRID};
    if ((unsigned)rc->algorithm > 3 || (unsigned)rc->action > 3 || (unsigned)rc->mode > 3) {
        pt_diag_addf(diag, NULL, field, "unknown algorithm, action or mode");
        return -1;
    }
    r->name = pt_xstrdup(rc->name);
    r->route = rc->route && *rc->route ? pt_xstrdup(rc->route) : NULL;
    r->params.algorithm = algos[rc->algorithm];
    r->params.limit = rc->limit;
    r->params.burst = rc->burst;
    r->params.window_ns = (uint64_t)rc->window_seconds * 1000000000ull;
    if (pt_rl_params_check(&r->params) != 0) {
        pt_diag_addf(diag, NULL, field, "limit, burst or window_seconds out of range");
        return -1;
    }
    if (pt_rl_keyspec_parse(
            rc->key_type, rc->ipv4_prefix ? rc->ipv4_prefix : PT_RL_DEFAULT_IPV4_PREFIX,
            rc->ipv6_prefix ? rc->ipv6_prefix : PT_RL_DEFAULT_IPV6_PREFIX, &r->key) != 0) {
        pt_diag_addf(diag, NULL, field, "key_type \"%s\" is not valid", rc->key_type);
        return -1;
    }
    r->action = actions[rc->action];
    r->mode = modes[rc->mode];
    r->tier = rc->tier && *rc->tier ? pt_xstrdup(rc->tier) : NULL;
    r->max_queue_ns =
        (uint64_t)(rc->max_queue_ms ? rc->max_queue_ms : PT_RL_DEFAULT_MAX_QUEUE_MS) * 1000000ull;
    r->fail_open = rc->fail_open ? rc->fail_open->value : true;
    r->redis_timeout_ms =
        rc->redis_timeout_ms ? rc->redis_timeout_ms : PT_RL_DEFAULT_REDIS_TIMEOUT_MS;
    uint64_t lease = rc->lease_size ? rc->lease_size : rc->limit / 10;
    r->lease_size = (uint32_t)(lease < 1 ? 1 : lease > 1000 ? 1000 : lease);
    r->lease_ttl_ns =
        r->params.window_ns < PT_RL_LEASE_TTL_NS ? r->params.window_ns : PT_RL_LEASE_TTL_NS;
    fingerprint(rc, r, r->fingerprint);
    char hex[65];
    pt_rl_sha256_hex(r->name, strlen(r->name), hex);
    snprintf(r->redis_tag, sizeof(r->redis_tag), "%.16s:%s", hex, r->fingerprint);
    r->table = table_ref(r, rc->max_keys);
    r->stats = pt_rl_stats_ref(r->name);
    return 0;
}

static void rule_fini(struct pt_rl_rule *r)
{
    table_unref(r->table);
    pt_rl_stats_unref(r->stats);
    free(r->name);
    free(r->route);
    free(r->tier);
}

/* --- Redis ------------------------------------------------------------------- */

/* Numeric text of host's first address, resolved here on the control
 * thread: hiredis would resolve a name with a blocking call on a worker.
 * Status: 0 or -1 (err set). */
static int numeric_host(const char *host, char *out, size_t outlen, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    rc =
        getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)outlen, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot use the address of \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    return 0;
}

static int compile_redis(struct pt_rl_plan *p, const Portico__Config__V1__Redis *rd,
                         struct pt_diag *diag)
{
    struct pt_rl_redis_cfg *c = &p->redis;
    const char *colon = strrchr(rd->address, ':'); /* validated: host:port */
    const char *h = rd->address;
    size_t hlen = colon ? (size_t)(colon - h) : strlen(h);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    char name[256], numeric[NI_MAXHOST], err[300];
    if (hlen >= sizeof(name)) {
        pt_diag_addf(diag, NULL, "redis.address", "host name too long");
        return -1;
    }
    memcpy(name, h, hlen);
    name[hlen] = '\0';
    if (numeric_host(name, numeric, sizeof(numeric), err, sizeof(err)) != 0) {
        pt_diag_addf(diag, NULL, "redis.address", "%s", err);
        return -1;
    }
    c->host = pt_xstrdup(numeric);
    c->port = colon ? atoi(colon + 1) : 6379;
    const char *pw = rd->password_env && *rd->password_env ? getenv(rd->password_env) : NULL;
    c->password = pw ? pt_xstrdup(pw) : NULL;
    c->key_prefix = pt_xstrdup(rd->key_prefix && *rd->key_prefix ? rd->key_prefix : "portico:rl:");
    c->connect_timeout_ms = rd->connect_timeout_ms ? rd->connect_timeout_ms : 1000;
    c->max_backoff_ms = rd->max_backoff_ms ? rd->max_backoff_ms : 2000;
    char id[600];
    char pwhash[65] = "";
    if (c->password)
        pt_rl_sha256_hex(c->password, strlen(c->password), pwhash);
    snprintf(id, sizeof(id), "%s|%d|%s|%u|%u", c->host, c->port, pwhash, c->connect_timeout_ms,
             c->max_backoff_ms);
    c->id = pt_xstrdup(id);
    return 0;
}

/* --- plan -------------------------------------------------------------------- */

struct pt_rl_plan *pt_rl_plan_compile(const Portico__Config__V1__Config *cfg,
                                      const struct pt_auth_plan *auth, struct pt_diag *diag)
{
    struct pt_rl_plan *p = pt_xcalloc(1, sizeof(*p));
    p->auth = auth;
    p->rules = pt_xcalloc(cfg->n_rate_limit_rules ? cfg->n_rate_limit_rules : 1, sizeof(*p->rules));
    int rc = 0;
    for (size_t i = 0; i < cfg->n_rate_limit_rules; i++) {
        const RuleCfg *r = cfg->rate_limit_rules[i];
        if (r->enabled && !r->enabled->value)
            continue;
        if (compile_rule(r, i, &p->rules[p->nrules], diag) != 0) {
            rc = -1;
            rule_fini(&p->rules[p->nrules]);
            memset(&p->rules[p->nrules], 0, sizeof(p->rules[0]));
            continue;
        }
        p->nrules++;
    }
    /* Only when a rule needs it: an unused redis section resolves nothing. */
    bool wants_redis = false;
    for (size_t i = 0; i < p->nrules; i++)
        if (p->rules[i].mode != PT_RL_LOCAL)
            wants_redis = true;
    if (wants_redis && cfg->redis && cfg->redis->address && *cfg->redis->address &&
        compile_redis(p, cfg->redis, diag) != 0)
        rc = -1;
    if (rc != 0) {
        pt_rl_plan_free(p);
        return NULL;
    }
    return p;
}

void pt_rl_plan_free(struct pt_rl_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nrules; i++)
        rule_fini(&p->rules[i]);
    free(p->rules);
    free(p->redis.host);
    free(p->redis.password);
    free(p->redis.key_prefix);
    free(p->redis.id);
    free(p);
}

void *pt_rl_plan_route(struct pt_rl_plan *plan, const char *route)
{
    struct pt_rl_route *rr = pt_xcalloc(1, sizeof(*rr));
    rr->plan = plan;
    rr->rules = pt_xcalloc(plan->nrules ? plan->nrules : 1, sizeof(*rr->rules));
    /* Global rules first, then the route's own; configuration order in each. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < plan->nrules; i++) {
            const struct pt_rl_rule *r = &plan->rules[i];
            if (pass == 0 ? r->route != NULL : !r->route || strcmp(r->route, route) != 0)
                continue;
            rr->rules[rr->n++] = r;
            if (r->tier || r->key.needs_identity)
                rr->wants_identity = true;
        }
    if (!rr->n) {
        free(rr->rules);
        free(rr);
        return NULL;
    }
    return rr;
}
