#include "conf/snapshot.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/filter_config.h"
#include "core/arena.h"
#include "core/log.h"
#include "core/registry.h"
#include "net/listener.h"
#include "net/tls.h"
#include "upstream/breaker.h"
#include "upstream/health.h"
#include "upstream/retry.h"

typedef Portico__Config__V1__Config Config;
typedef Portico__Config__V1__Route Route;
typedef Portico__Config__V1__Service Service;
typedef Portico__Config__V1__Listener Listener;
typedef Portico__Config__V1__Filter FilterCfg;

#define WHERE_LEN 512

static uint32_t or_default(uint32_t v, uint32_t def)
{
    return v ? v : def;
}

static void chain_fini(struct pt_chain *c)
{
    free(c->filters);
    c->filters = NULL;
    c->n = 0;
}

static void select_fini(struct pt_route_select *o);

static void snapshot_destroy(struct pt_snap_base *b)
{
    struct pt_snapshot *s = (struct pt_snapshot *)b;
    for (size_t i = 0; i < s->ninstances; i++)
        if (s->instances[i].type->destroy)
            s->instances[i].type->destroy(s->instances[i].instance);
    free(s->instances);
    pt_rl_plan_free(s->ratelimit); /* after the instances that point into it */
    pt_auth_plan_free(s->auth);    /* after the instances and the rate-limit plan */
    pt_snapshot_transcode_fini(s);
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].name);
        chain_fini(&s->routes[i].chain);
        select_fini(&s->routes[i].select);
        pt_metrics_route_unref(s->routes[i].stats);
        pt_conf_grpcweb_free(s->routes[i].grpc_web);
    }
    free(s->routes);
    pt_metrics_route_unref(s->no_route_stats);
    chain_fini(&s->global_chain);
    pt_router_free(s->router);
    for (size_t i = 0; i < s->nservices; i++) {
        pt_retry_budget_unref(s->services[i].retry_budget);
        pt_service_fini(&s->services[i]);
    }
    free(s->services);
    for (size_t i = 0; i < s->nlisteners; i++) {
        struct pt_listener_rt *l = &s->listeners[i];
        if (l->fds)
            pt_listen_release(l->address);
        if (l->ssl_ctx)
            SSL_CTX_free(l->ssl_ctx);
        free(l->name);
        free(l->address);
    }
    free(s->listeners);
    free(s->access_log_path);
    pt_conf_free(s->conf);
    free(s);
}

/* --- services ------------------------------------------------------------ */

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len,
                   char *err, size_t errlen)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    const char *h = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, h, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, h, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    if (ss->ss_family == AF_INET)
        in->sin_port = htons(port);
    else
        in6->sin6_port = htons(port);
    freeaddrinfo(res);
    return 0;
}

/* The service's balancer: algorithm, weights, Maglev table (lb.h). */
static int compile_lb(struct pt_snapshot *s, const Service *sc, struct pt_service *out,
                      struct pt_diag *diag)
{
    static const enum pt_lb_algorithm map[] = {
        [PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_UNSPECIFIED] = PT_LB_ROUND_ROBIN,
        [PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_ROUND_ROBIN] = PT_LB_ROUND_ROBIN,
        [PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_WEIGHTED_ROUND_ROBIN] =
            PT_LB_WEIGHTED_ROUND_ROBIN,
        [PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_LEAST_CONNECTIONS] =
            PT_LB_LEAST_CONNECTIONS,
        [PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_IP_HASH] = PT_LB_IP_HASH,
        [PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_HASH] = PT_LB_HASH,
        [PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_RANDOM] = PT_LB_RANDOM,
        [PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_PEAK_EWMA] = PT_LB_PEAK_EWMA,
    };
    char where[WHERE_LEN];
    unsigned a = (unsigned)sc->lb_algorithm;
    uint32_t n = out->nendpoints;
    uint32_t *weights = pt_xcalloc(n ? n : 1, sizeof(*weights));
    const char **keys = pt_xcalloc(n ? n : 1, sizeof(*keys));
    for (uint32_t i = 0; i < n; i++) {
        weights[i] = out->endpoints[i].weight;
        keys[i] = out->endpoints[i].key;
    }
    int rc = a < sizeof(map) / sizeof(map[0])
                 ? pt_lb_init(&out->lb, map[a], weights, keys, n, sc->hash_on)
                 : PT_ERR_INVALID;
    free(weights);
    free(keys);
    if (rc != 0)
        pt_diag_addf(diag, pt_conf_where(s->conf, sc, "lb_algorithm", where, sizeof(where)),
                     "lb_algorithm", "invalid lb_algorithm or hash_on");
    return rc;
}

/* Breakers live in the registry, not in the snapshot: a reload that keeps
 * the service and its breaker configuration keeps their state. */
static void compile_breakers(const Portico__Config__V1__CircuitBreaker *cb, struct pt_service *out)
{
    struct pt_breaker_conf c;
    pt_breaker_conf_defaults(&c);
    c.failure_threshold = or_default(cb->failure_threshold, c.failure_threshold);
    c.success_threshold = or_default(cb->success_threshold, c.success_threshold);
    c.timeout_ms = or_default(cb->timeout_ms, c.timeout_ms);
    c.half_open_max_calls = or_default(cb->half_open_max_calls, c.half_open_max_calls);
    c.window = or_default(cb->sliding_window_size, c.window);
    c.failure_rate = or_default(cb->failure_rate_threshold, c.failure_rate);
    c.per_instance = cb->per_instance;
    if (cb->n_failure_on) {
        c.fail_on = 0;
        for (size_t i = 0; i < cb->n_failure_on; i++)
            (void)pt_breaker_conf_add_fail_on(&c, cb->failure_on[i]); /* validated */
    }
    out->breaker = pt_breaker_ref(out->name, &c);
    if (!cb->per_instance)
        return;
    for (uint32_t i = 0; i < out->nendpoints; i++) {
        size_t klen = strlen(out->name) + strlen(out->endpoints[i].key) + 2;
        char *key = pt_xmalloc(klen);
        snprintf(key, klen, "%s/%s", out->name, out->endpoints[i].key);
        out->endpoints[i].breaker = pt_breaker_ref(key, &c);
        free(key);
    }
}

/* Health: the check and outlier configuration go into the service; the
 * state lives in the health registry under "service/host:port", so a
 * reload keeps it (and the health thread keeps its timers). */
static void compile_health(const Service *sc, struct pt_service *out)
{
    const Portico__Config__V1__HealthCheck *hc = sc->health_check;
    const Portico__Config__V1__OutlierDetection *od = sc->outlier_detection;
    out->panic_mode = sc->panic_mode;
    if (hc) {
        struct pt_health_check_conf *c = &out->check;
        pt_health_check_conf_defaults(c);
        out->has_check = true;
        c->kind = hc->type == PORTICO__CONFIG__V1__HEALTH_CHECK_TYPE__HEALTH_CHECK_TYPE_GRPC
                      ? PT_HEALTH_GRPC
                      : PT_HEALTH_HTTP;
        c->path = pt_xstrdup(hc->path && *hc->path ? hc->path : "/health");
        c->host = hc->host && *hc->host ? pt_xstrdup(hc->host) : NULL;
        c->grpc_service = pt_xstrdup(hc->grpc_service ? hc->grpc_service : "");
        c->interval_ms = or_default(hc->interval_ms, c->interval_ms);
        c->timeout_ms = or_default(hc->timeout_ms, c->timeout_ms);
        c->jitter_ms = hc->jitter_ms;
        c->healthy_threshold = or_default(hc->healthy_threshold, c->healthy_threshold);
        c->unhealthy_threshold = or_default(hc->unhealthy_threshold, c->unhealthy_threshold);
        for (size_t i = 0; i < hc->n_expected_statuses; i++)
            (void)pt_health_status_add(c, hc->expected_statuses[i]); /* validated */
    }
    if (od) {
        pt_outlier_conf_defaults(&out->outlier);
        out->outlier.consecutive = or_default(od->consecutive_failures, out->outlier.consecutive);
        out->outlier.base_ms = or_default(od->base_ejection_time_ms, out->outlier.base_ms);
        out->outlier.max_ms = or_default(od->max_ejection_time_ms, out->outlier.max_ms);
        out->outlier.max_percent = or_default(od->max_ejection_percent, out->outlier.max_percent);
    }
    if (!hc && !od)
        return;
    out->health_any = true;
    out->healths = pt_xcalloc(out->nendpoints ? out->nendpoints : 1, sizeof(*out->healths));
    for (uint32_t i = 0; i < out->nendpoints; i++) {
        size_t klen = strlen(out->name) + strlen(out->endpoints[i].key) + 2;
        char *key = pt_xmalloc(klen);
        snprintf(key, klen, "%s/%s", out->name, out->endpoints[i].key);
        out->endpoints[i].health = pt_health_ref(key);
        out->healths[i] = out->endpoints[i].health;
        free(key);
    }
}

/* Endpoints of a discovered service: the set the control plane handed in
 * (IP literals), or none yet. Status: 0, or -1 on an address that does not
 * parse (a bug upstream of here: discovery hands IP literals). */
static int compile_discovered(struct pt_snapshot *s, const Service *sc, struct pt_service *out)
{
    const struct pt_disc_set *set = NULL;
    for (size_t i = 0; i < s->ndisc && !set; i++)
        if (strcmp(s->disc[i].service, sc->name) == 0)
            set = &s->disc[i];
    size_t n = set ? set->n : 0;
    out->endpoints = pt_xcalloc(n ? n : 1, sizeof(*out->endpoints));
    char err[256];
    for (size_t i = 0; i < n; i++) {
        const struct pt_disc_instance *in = &set->v[i];
        struct pt_endpoint *ep = &out->endpoints[out->nendpoints];
        if (resolve(in->host, in->port, &ep->addr, &ep->addr_len, err, sizeof(err)) != 0) {
            pt_log_warn("service %s: discovered instance %s skipped: %s", sc->name, in->host, err);
            continue;
        }
        ep->host = pt_xstrdup(in->host);
        ep->port = in->port;
        ep->weight = in->weight ? in->weight : 1;
        size_t klen = strlen(in->host) + 16;
        ep->key = pt_xmalloc(klen);
        snprintf(ep->key, klen, strchr(in->host, ':') ? "[%s]:%u" : "%s:%u", in->host,
                 (unsigned)in->port);
        out->nendpoints++;
    }
    return 0;
}

static int compile_service(struct pt_snapshot *s, const Service *sc, struct pt_service *out,
                           struct pt_diag *diag)
{
    char where[WHERE_LEN];
    char err[512];
    memset(out, 0, sizeof(*out));
    out->name = pt_xstrdup(sc->name);
    switch (sc->protocol) {
    case PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_H2:
        out->protocol = PT_UP_H2;
        break;
    case PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_H2C:
        out->protocol = PT_UP_H2;
        break;
    case PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_GRPC:
        out->protocol = PT_UP_H2;
        out->grpc = true;
        break;
    default:
        out->protocol = PT_UP_HTTP1;
        break;
    }
    out->connect_timeout_ms = or_default(sc->connect_timeout_ms, PT_DEFAULT_CONNECT_TIMEOUT_MS);
    out->idle_timeout_ms = or_default(sc->idle_timeout_ms, PT_DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS);
    out->max_connections = or_default(sc->max_connections, PT_DEFAULT_UPSTREAM_MAX_CONNECTIONS);

    bool tls = sc->protocol == PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_H2 ||
               (sc->tls && sc->tls->enabled);
    if (tls) {
        const Portico__Config__V1__UpstreamTls *t = sc->tls;
        out->ssl_ctx = pt_tls_client_ctx_new(t ? t->ca_file : NULL, !(t && t->insecure_skip_verify),
                                             t ? t->cert_file : NULL, t ? t->key_file : NULL,
                                             out->protocol == PT_UP_H2, err, sizeof(err));
        if (!out->ssl_ctx) {
            pt_diag_addf(diag, pt_conf_where(s->conf, sc, "tls", where, sizeof(where)), "tls", "%s",
                         err);
            return -1;
        }
        if (t && t->server_name && *t->server_name)
            out->sni = pt_xstrdup(t->server_name);
    }
    char prefix[1024];
    snprintf(prefix, sizeof(prefix), "%s|%s|%s|%s|%s", out->protocol == PT_UP_H2 ? "h2" : "h1",
             tls ? "tls" : "plain", out->sni ? out->sni : "",
             tls && sc->tls && sc->tls->ca_file ? sc->tls->ca_file : "",
             tls && sc->tls && sc->tls->cert_file ? sc->tls->cert_file : "");
    out->pool_prefix = pt_xstrdup(prefix);

    if (sc->discovery) {
        if (compile_discovered(s, sc, out) != 0)
            return -1;
    } else {
        out->endpoints = pt_xcalloc(sc->n_instances ? sc->n_instances : 1, sizeof(*out->endpoints));
    }
    for (size_t i = 0; i < (sc->discovery ? 0 : sc->n_instances); i++) {
        const Portico__Config__V1__Instance *ic = sc->instances[i];
        struct pt_endpoint *ep = &out->endpoints[out->nendpoints];
        if (resolve(ic->host, (uint16_t)ic->port, &ep->addr, &ep->addr_len, err, sizeof(err)) !=
            0) {
            char field[64];
            snprintf(field, sizeof(field), "instances[%zu].host", i);
            pt_diag_addf(diag, pt_conf_where(s->conf, ic, "host", where, sizeof(where)), field,
                         "%s", err);
            return -1;
        }
        ep->host = pt_xstrdup(ic->host);
        ep->port = (uint16_t)ic->port;
        ep->weight = ic->weight ? ic->weight : 1;
        bool v6 = strchr(ic->host, ':') != NULL;
        size_t klen = strlen(ic->host) + 16;
        ep->key = pt_xmalloc(klen);
        snprintf(ep->key, klen, v6 ? "[%s]:%u" : "%s:%u", ic->host, (unsigned)ic->port);
        out->nendpoints++;
    }
    if (compile_lb(s, sc, out, diag) != 0)
        return -1;
    pt_service_alloc_caches(out, s->nworkers);
    if (sc->circuit_breaker && s->nworkers)
        compile_breakers(sc->circuit_breaker, out);
    if (s->nworkers) {
        compile_health(sc, out);
        out->retry_budget = pt_retry_budget_ref(out->name);
    }
    return 0;
}

static const struct pt_service *find_service(const struct pt_snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->nservices; i++)
        if (strcmp(s->services[i].name, name) == 0)
            return &s->services[i];
    return NULL;
}

/* --- filters ------------------------------------------------------------- */

static struct pt_filter_inst *add_instance(struct pt_snapshot *s, size_t *cap)
{
    if (s->ninstances == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        s->instances = pt_xrealloc(s->instances, *cap * sizeof(*s->instances));
    }
    return &s->instances[s->ninstances++];
}

/* Status: 0 or -1 (reported). `type_name` and `config` come from a
 * Filter or a Plugin (pos_msg, for positions); field_prefix is its path
 * ("routes[2].filters[0]", "plugins[1]"). */
static int create_filter(struct pt_snapshot *s, size_t *cap, const char *type_name,
                         const Portico__Config__V1__Filter *pos_filter, const void *pos_msg,
                         const Google__Protobuf__Struct *config, const char *field_prefix,
                         struct pt_str route, struct pt_diag *diag, struct pt_filter_inst *out)
{
    char where[WHERE_LEN];
    char field[160];
    const struct pt_filter_type *type = pt_filter_type_find(pt_str_from_cstr(type_name));
    if (!type) {
        snprintf(field, sizeof(field), "%s.%s", field_prefix, pos_filter ? "name" : "type");
        pt_diag_addf(
            diag,
            pt_conf_where(s->conf, pos_msg, pos_filter ? "name" : "type", where, sizeof(where)),
            field, "unknown filter \"%s\"", type_name);
        return -1;
    }
    struct pt_filter_config cfg;
    pt_filter_config_init(&cfg, config, route);
    snprintf(field, sizeof(field), "%s.config", field_prefix);
    pt_conf_where(s->conf, pos_msg, "config", where, sizeof(where));
    const char *old = pt_diag_set_context(diag, where);
    const char *old_field = pt_diag_set_context_field(diag, field);
    unsigned before = diag->errors;
    void *inst = type->create ? type->create(&cfg, diag) : NULL;
    pt_diag_set_context(diag, old);
    pt_diag_set_context_field(diag, old_field);
    if (!inst) {
        if (diag->errors == before)
            pt_diag_addf(diag, where, field, "filter \"%s\" rejected its configuration", type_name);
        return -1;
    }
    struct pt_filter_inst *fi = add_instance(s, cap);
    fi->type = type;
    fi->instance = inst;
    *out = *fi;
    return 0;
}

/* Enabled plugins in run order: by `order`, then name. */
static int plugin_cmp(const void *a, const void *b)
{
    const Portico__Config__V1__Plugin *x = *(Portico__Config__V1__Plugin *const *)a;
    const Portico__Config__V1__Plugin *y = *(Portico__Config__V1__Plugin *const *)b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return strcmp(x->name, y->name);
}

static size_t sorted_plugins(const Config *cfg, Portico__Config__V1__Plugin ***out)
{
    Portico__Config__V1__Plugin **v = pt_xcalloc(cfg->n_plugins + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (!cfg->plugins[i]->enabled || cfg->plugins[i]->enabled->value)
            v[n++] = cfg->plugins[i];
    qsort(v, n, sizeof(*v), plugin_cmp);
    *out = v;
    return n;
}

static size_t plugin_index(const Config *cfg, const Portico__Config__V1__Plugin *p)
{
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (cfg->plugins[i] == p)
            return i;
    return 0;
}

static bool plugin_binds(const Portico__Config__V1__Plugin *p, const char *route)
{
    for (size_t i = 0; i < p->n_routes; i++)
        if (strcmp(p->routes[i], route) == 0)
            return true;
    return false;
}

static void chain_flags(struct pt_chain *c)
{
    for (uint16_t i = 0; i < c->n; i++) {
        if (c->filters[i].type->on_request_body)
            c->request_body_hooks = true;
        if (c->filters[i].type->on_response_body)
            c->response_body_hooks = true;
    }
}

/* --- routes -------------------------------------------------------------- */

static unsigned parse_retry_on(const Route *r)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
        {"connect-failure", PT_RETRY_CONNECT_FAILURE},
        {"refused-stream", PT_RETRY_REFUSED_STREAM},
        {"reset", PT_RETRY_RESET},
        {"5xx", PT_RETRY_5XX},
        {"gateway-error", PT_RETRY_GATEWAY_ERROR},
        {"retriable-status-codes", PT_RETRY_GRPC_UNAVAILABLE},
        {"per-try-timeout", PT_RETRY_PER_TRY_TIMEOUT},
        {"timeout", PT_RETRY_PER_TRY_TIMEOUT},
    };
    unsigned mask = 0;
    for (size_t i = 0; i < r->n_retry_on; i++)
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (strcmp(r->retry_on[i], names[k].name) == 0)
                mask |= names[k].bit;
    if (!mask && r->retry_count)
        mask = PT_RETRY_CONNECT_FAILURE | PT_RETRY_REFUSED_STREAM;
    return mask;
}

/* --- traffic splits and API versions --------------------------------------- */

static struct pt_str owned_lower(const char *src, size_t len)
{
    char *p = pt_xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)tolower((unsigned char)src[i]);
    p[len] = '\0';
    return (struct pt_str){p, len};
}

static struct pt_str owned(const char *src)
{
    return pt_str_from_cstr(pt_xstrdup(src ? src : ""));
}

/* Leading literal segments of a path template or prefix: what precedes
 * the version segment of a request. */
static uint32_t literal_segments(const char *tmpl)
{
    uint32_t n = 0;
    const char *p = tmpl;
    while (*p == '/') {
        const char *seg = p + 1, *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 || memchr(seg, '{', len) || memchr(seg, '*', len))
            break;
        n++;
        if (!end)
            break;
        p = end;
    }
    return n;
}

static void compile_select(const struct pt_snapshot *s, const Route *r, struct pt_route_select *o)
{
    o->default_version = -1;
    if (r->n_splits) {
        o->sides = pt_xcalloc(r->n_splits, sizeof(*o->sides));
        for (size_t i = 0; i < r->n_splits; i++) {
            o->sides[i].service = find_service(s, r->splits[i]->service);
            o->sides[i].weight = r->splits[i]->weight;
            o->total_weight += r->splits[i]->weight;
        }
        o->nsides = (uint32_t)r->n_splits;
        struct pt_str name;
        if (r->split_key && *r->split_key && strcmp(r->split_key, "request") != 0 &&
            pt_lb_hash_on_parse(r->split_key, &o->key_kind, &name) == 0 && name.len)
            o->key_name = (char *)owned_lower(name.ptr, name.len).ptr;
    }
    if (r->n_split_overrides) {
        o->overrides = pt_xcalloc(r->n_split_overrides, sizeof(*o->overrides));
        for (size_t i = 0; i < r->n_split_overrides; i++) {
            const Portico__Config__V1__SplitOverride *so = r->split_overrides[i];
            o->overrides[i].header = owned_lower(so->header, strlen(so->header));
            o->overrides[i].value = owned(so->value);
            o->overrides[i].service = find_service(s, so->service);
        }
        o->noverrides = (uint32_t)r->n_split_overrides;
    }
    const Portico__Config__V1__Versioning *vs = r->versions;
    if (vs && vs->n_versions) {
        o->versions = pt_xcalloc(vs->n_versions, sizeof(*o->versions));
        for (size_t i = 0; i < vs->n_versions; i++) {
            o->versions[i].version = owned(vs->versions[i]->version);
            o->versions[i].service = find_service(s, vs->versions[i]->service);
            if (vs->default_version && strcmp(vs->default_version, vs->versions[i]->version) == 0)
                o->default_version = (int32_t)i;
        }
        o->nversions = (uint32_t)vs->n_versions;
        const char *from = vs->from ? vs->from : "";
        if (strncmp(from, "header:", 7) == 0) {
            o->version_from = PT_VERSION_FROM_HEADER;
            o->version_name = owned_lower(from + 7, strlen(from + 7));
        } else if (strncmp(from, "query:", 6) == 0) {
            o->version_from = PT_VERSION_FROM_QUERY;
            o->version_name = owned(from + 6);
        } else if (strcmp(from, "accept") == 0) {
            o->version_from = PT_VERSION_FROM_ACCEPT;
        } else {
            o->version_from = PT_VERSION_FROM_PATH;
            o->version_strip = vs->strip;
            o->version_segment =
                r->strip_prefix ? 0
                                : literal_segments(r->path && *r->path ? r->path : r->path_prefix);
        }
    }
}

static void select_fini(struct pt_route_select *o)
{
    free(o->sides);
    free(o->key_name);
    for (uint32_t i = 0; i < o->noverrides; i++) {
        free((char *)o->overrides[i].header.ptr);
        free((char *)o->overrides[i].value.ptr);
    }
    free(o->overrides);
    for (uint32_t i = 0; i < o->nversions; i++)
        free((char *)o->versions[i].version.ptr);
    free(o->versions);
    free((char *)o->version_name.ptr);
    memset(o, 0, sizeof(*o));
}

static int compile_routes(struct pt_snapshot *s, const Config *cfg, size_t *icap,
                          struct pt_diag *diag)
{
    int rc = 0;
    s->nroutes = cfg->n_routes;
    s->routes = pt_xcalloc(cfg->n_routes ? cfg->n_routes : 1, sizeof(*s->routes));
    char **where = pt_xcalloc(cfg->n_routes ? cfg->n_routes : 1, sizeof(char *));
    Portico__Config__V1__Plugin **plugins;
    size_t nplugins = sorted_plugins(cfg, &plugins);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const Route *r = cfg->routes[i];
        struct pt_route_conf *rc_ = &s->routes[i];
        char name[512];
        pt_conf_route_name(r, name, sizeof(name));
        rc_->name = pt_xstrdup(name);
        rc_->name_str = pt_str_from_cstr(rc_->name);
        where[i] = pt_xmalloc(WHERE_LEN);
        pt_conf_where(s->conf, r, NULL, where[i], WHERE_LEN);
        rc_->service = r->service && *r->service ? find_service(s, r->service) : NULL;
        compile_select(s, r, &rc_->select);
        if (pt_snapshot_compile_transcode(s, i, diag) != 0)
            rc = -1;
        rc_->timeout_ms = r->timeout_ms;
        rc_->timeout_set = r->timeout_ms != 0;
        rc_->max_body_bytes = r->max_body_bytes ? r->max_body_bytes->value : s->max_body_bytes;
        rc_->websocket = r->websocket;
        rc_->retry_count = r->retry_count;
        rc_->retry_on = parse_retry_on(r);
        rc_->retry_unsafe = r->retry_unsafe;
        rc_->per_try_timeout_ms = r->per_try_timeout_ms;
        rc_->retry_backoff_base_ms =
            or_default(r->retry_backoff_base_ms, PT_DEFAULT_RETRY_BACKOFF_BASE_MS);
        /* An unset cap never sits below a configured base. */
        rc_->retry_backoff_max_ms = or_default(
            r->retry_backoff_max_ms, rc_->retry_backoff_base_ms > PT_DEFAULT_RETRY_BACKOFF_MAX_MS
                                         ? rc_->retry_backoff_base_ms
                                         : PT_DEFAULT_RETRY_BACKOFF_MAX_MS);
        const Portico__Config__V1__RetryBudget *rb = r->retry_budget;
        rc_->retry_budget_percent =
            rb && rb->budget_percent ? rb->budget_percent->value : PT_DEFAULT_RETRY_BUDGET_PERCENT;
        rc_->retry_min_concurrency = rb && rb->min_retry_concurrency
                                         ? rb->min_retry_concurrency->value
                                         : PT_DEFAULT_RETRY_MIN_CONCURRENCY;
        if (r->hedge) {
            rc_->hedge_delay_ms = r->hedge->delay_ms;
            rc_->hedge_max_attempts =
                or_default(r->hedge->max_attempts, PT_DEFAULT_HEDGE_MAX_ATTEMPTS);
        }
        rc_->stats = pt_metrics_route_ref(rc_->name, s->nworkers);
        rc_->grpc_web = pt_conf_grpcweb_compile(r->grpc_web);

        struct pt_chain *ch = &rc_->chain;
        ch->filters =
            pt_xcalloc(s->global_chain.n + r->n_filters + cfg->n_plugins + 2, sizeof(*ch->filters));
        for (uint16_t k = 0; k < s->global_chain.n; k++)
            ch->filters[ch->n++] = s->global_chain.filters[k];
        /* The auth step, on every route (it removes spoofed identity
         * headers everywhere), before the route's own filters; auth.h. */
        struct pt_auth_error aerr = {0};
        void *ai = pt_auth_plan_route(s->auth, r, name, &aerr);
        if (!ai) {
            char field[160], wh[WHERE_LEN];
            snprintf(field, sizeof(field), "routes[%zu].auth%s%s", i, *aerr.field ? "." : "",
                     aerr.field);
            pt_diag_addf(diag,
                         pt_conf_where(s->conf, aerr.msg ? aerr.msg : r,
                                       *aerr.field ? aerr.field : NULL, wh, sizeof(wh)),
                         field, "%s", aerr.text);
            rc = -1;
        } else {
            struct pt_filter_inst *fi = add_instance(s, icap);
            fi->type = &pt_auth_filter_type;
            fi->instance = ai;
            ch->filters[ch->n++] = *fi;
        }
        for (size_t k = 0; k < r->n_filters; k++) {
            char field[96];
            snprintf(field, sizeof(field), "routes[%zu].filters[%zu]", i, k);
            struct pt_filter_inst fi;
            const FilterCfg *fc = r->filters[k];
            if (create_filter(s, icap, fc->name, fc, fc, fc->config, field, rc_->name_str, diag,
                              &fi) != 0) {
                rc = -1;
                continue;
            }
            ch->filters[ch->n++] = fi;
        }
        /* Plugins bound to this route run after its own filters. */
        for (size_t k = 0; k < nplugins; k++) {
            const Portico__Config__V1__Plugin *p = plugins[k];
            if (p->global || !plugin_binds(p, name))
                continue;
            char field[64];
            snprintf(field, sizeof(field), "plugins[%zu]", plugin_index(cfg, p));
            struct pt_filter_inst fi;
            if (create_filter(s, icap, p->type, NULL, p, p->config, field, rc_->name_str, diag,
                              &fi) != 0) {
                rc = -1;
                continue;
            }
            ch->filters[ch->n++] = fi;
        }
        /* Rate-limit rules run last, after every configured filter (so an
         * authentication filter has set the identity); see ratelimit.h. */
        void *rl = s->ratelimit ? pt_rl_plan_route(s->ratelimit, name) : NULL;
        if (rl) {
            struct pt_filter_inst *fi = add_instance(s, icap);
            fi->type = &pt_rl_filter_type;
            fi->instance = rl;
            ch->filters[ch->n++] = *fi;
        }
        chain_flags(ch);
    }
    if (rc == 0) {
        s->router = pt_router_compile((const Route *const *)cfg->routes, cfg->n_routes,
                                      (const char *const *)where, diag);
        if (!s->router)
            rc = -1;
    }
    for (size_t i = 0; i < cfg->n_routes; i++)
        free(where[i]);
    free(where);
    free(plugins);
    return rc;
}

/* --- listeners ----------------------------------------------------------- */

/* mTLS on a listener (validation checked the combination of fields). */
static int compile_client_verify(struct pt_snapshot *s, const Portico__Config__V1__ListenerTls *t,
                                 SSL_CTX *ctx, struct pt_diag *diag)
{
    struct pt_tls_client_verify v = {
        .mode = PT_TLS_CLIENT_CERT_NONE,
        .ca_file = t->client_ca_file,
        .crl_file = t->crl_file && *t->crl_file ? t->crl_file : NULL,
        .depth = or_default(t->verify_depth, PT_DEFAULT_CLIENT_VERIFY_DEPTH),
    };
    bool ca = t->client_ca_file && *t->client_ca_file;
    switch (t->client_cert) {
    case PORTICO__CONFIG__V1__CLIENT_CERT_MODE__CLIENT_CERT_MODE_OPTIONAL:
        v.mode = PT_TLS_CLIENT_CERT_OPTIONAL;
        break;
    case PORTICO__CONFIG__V1__CLIENT_CERT_MODE__CLIENT_CERT_MODE_REQUIRED:
        v.mode = PT_TLS_CLIENT_CERT_REQUIRED;
        break;
    case PORTICO__CONFIG__V1__CLIENT_CERT_MODE__CLIENT_CERT_MODE_UNSPECIFIED:
        /* A CA bundle alone means mTLS is wanted: require it. */
        v.mode = ca ? PT_TLS_CLIENT_CERT_REQUIRED : PT_TLS_CLIENT_CERT_NONE;
        break;
    default:
        break;
    }
    char where[WHERE_LEN];
    if (v.mode != PT_TLS_CLIENT_CERT_NONE && !ca) {
        /* Validation rejects this; never fall back to no verification. */
        pt_diag_addf(diag, pt_conf_where(s->conf, t, "client_ca_file", where, sizeof(where)),
                     "client_ca_file", "client_cert needs client_ca_file");
        return -1;
    }
    char err[512];
    if (pt_tls_server_ctx_verify_clients(ctx, &v, err, sizeof(err)) != 0) {
        const char *field = strncmp(err, "crl_file", 8) == 0 ? "crl_file" : "client_ca_file";
        pt_diag_addf(diag, pt_conf_where(s->conf, t, field, where, sizeof(where)), "tls", "%s",
                     err);
        return -1;
    }
    return 0;
}

static int compile_listeners(struct pt_snapshot *s, const Config *cfg, struct pt_diag *diag)
{
    char where[WHERE_LEN];
    char err[512];
    s->listeners = pt_xcalloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*s->listeners));
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const Listener *lc = cfg->listeners[i];
        struct pt_listener_rt *l = &s->listeners[s->nlisteners++];
        l->address = pt_xstrdup(lc->address);
        l->name = pt_xstrdup(lc->name && *lc->name ? lc->name : lc->address);
        bool tls = lc->tls && lc->tls->cert_file && *lc->tls->cert_file;
        if (lc->n_protocols == 0) {
            l->http1 = true;
            l->h2c = !tls;
            l->h2 = tls;
        }
        for (size_t k = 0; k < lc->n_protocols; k++) {
            switch (lc->protocols[k]) {
            case PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_HTTP1:
                l->http1 = true;
                break;
            case PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_H2C:
                l->h2c = true;
                break;
            case PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_H2:
                l->h2 = true;
                break;
            default:
                break;
            }
        }
        if (tls) {
            l->ssl_ctx = pt_tls_server_ctx_new(lc->tls->cert_file, lc->tls->key_file, l->h2,
                                               l->http1, err, sizeof(err));
            if (!l->ssl_ctx) {
                pt_diag_addf(diag, pt_conf_where(s->conf, lc, "tls", where, sizeof(where)), "tls",
                             "%s", err);
                return -1;
            }
            if (compile_client_verify(s, lc->tls, l->ssl_ctx, diag) != 0)
                return -1;
        }
        if (s->nworkers == 0)
            continue; /* checking only: bind nothing */
        l->fds = pt_listen_acquire(l->address, s->nworkers, err, sizeof(err));
        if (!l->fds) {
            pt_diag_addf(diag, pt_conf_where(s->conf, lc, "address", where, sizeof(where)),
                         "address", "%s", err);
            return -1;
        }
    }
    return 0;
}

/* --- the whole ------------------------------------------------------------ */

static void resolve_limits(struct pt_snapshot *s, const Config *cfg)
{
    const Portico__Config__V1__Limits *l = cfg->limits;
    Portico__Config__V1__Limits zero = PORTICO__CONFIG__V1__LIMITS__INIT;
    if (!l)
        l = &zero;
    s->limits.max_header_bytes = or_default(l->max_header_bytes, PT_DEFAULT_MAX_HEADER_BYTES);
    s->limits.max_headers = or_default(l->max_headers, PT_DEFAULT_MAX_HEADERS);
    s->limits.max_concurrent_streams =
        or_default(l->max_concurrent_streams, PT_DEFAULT_MAX_CONCURRENT_STREAMS);
    s->limits.idle_timeout_ms = or_default(l->idle_timeout_ms, PT_DEFAULT_IDLE_TIMEOUT_MS);
    s->limits.header_timeout_ms = or_default(l->header_timeout_ms, PT_DEFAULT_HEADER_TIMEOUT_MS);
    s->limits.max_resets_per_second =
        or_default(l->max_resets_per_second, PT_DEFAULT_MAX_RESETS_PER_SECOND);
    /* Headers, their copies for forwarding, and filter state. */
    s->limits.exchange_arena_bytes = 4u * s->limits.max_header_bytes + 256u * 1024u;
    s->max_body_bytes = l->max_body_bytes ? l->max_body_bytes : PT_DEFAULT_MAX_BODY_BYTES;
    s->request_timeout_ms = or_default(l->request_timeout_ms, PT_DEFAULT_REQUEST_TIMEOUT_MS);
    s->stream_idle_timeout_ms =
        or_default(l->stream_idle_timeout_ms, PT_DEFAULT_STREAM_IDLE_TIMEOUT_MS);
    s->max_connections = or_default(l->max_connections, PT_DEFAULT_MAX_CONNECTIONS);
    s->drain_timeout_ms = or_default(cfg->drain_timeout_ms, PT_DEFAULT_DRAIN_TIMEOUT_MS);
    s->access_log_enabled =
        !cfg->access_log || !cfg->access_log->enabled || cfg->access_log->enabled->value;
    const char *path = cfg->access_log && cfg->access_log->path && *cfg->access_log->path
                           ? cfg->access_log->path
                           : "stdout";
    s->access_log_path = pt_xstrdup(path);
}

static bool lists_filter(FilterCfg *const *filters, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(filters[i]->name, name) == 0)
            return true;
    return false;
}

struct pt_snapshot *pt_snapshot_compile(struct pt_conf *conf, unsigned nworkers,
                                        uint64_t generation, struct pt_diag *diag)
{
    return pt_snapshot_compile_with(conf, nworkers, generation, NULL, 0, diag);
}

struct pt_snapshot *pt_snapshot_compile_with(struct pt_conf *conf, unsigned nworkers,
                                             uint64_t generation, const struct pt_disc_set *sets,
                                             size_t nsets, struct pt_diag *diag)
{
    if (pt_conf_validate(conf, diag) != 0)
        return NULL;
    const Config *cfg = pt_conf_config(conf);
    struct pt_snapshot *s = pt_xcalloc(1, sizeof(*s));
    pt_snap_init(&s->base, generation, snapshot_destroy);
    s->conf = conf;
    s->nworkers = nworkers;
    s->disc = sets;
    s->ndisc = nsets;
    resolve_limits(s, cfg);
    size_t icap = 0;
    int rc = 0;

    s->services = pt_xcalloc(cfg->n_services ? cfg->n_services : 1, sizeof(*s->services));
    for (size_t i = 0; i < cfg->n_services; i++) {
        if (compile_service(s, cfg->services[i], &s->services[s->nservices], diag) != 0)
            rc = -1;
        s->nservices++;
    }
    if (pt_snapshot_load_descriptors(s, diag) != 0)
        rc = -1;

    /* Global chain: the default request-id filter first unless configured. */
    struct pt_chain *g = &s->global_chain;
    g->filters = pt_xcalloc(cfg->n_filters + cfg->n_plugins + 1, sizeof(*g->filters));
    const struct pt_filter_type *rid = pt_filter_type_find(PT_STR(PT_DEFAULT_REQUEST_ID_FILTER));
    if (rid && !lists_filter(cfg->filters, cfg->n_filters, PT_DEFAULT_REQUEST_ID_FILTER)) {
        struct pt_filter_config fc;
        pt_filter_config_init(&fc, NULL, PT_STR(""));
        void *inst = rid->create ? rid->create(&fc, diag) : NULL;
        if (inst) {
            struct pt_filter_inst *fi = add_instance(s, &icap);
            fi->type = rid;
            fi->instance = inst;
            g->filters[g->n++] = *fi;
        } else {
            rc = -1;
        }
    }
    for (size_t i = 0; i < cfg->n_filters; i++) {
        char field[64];
        snprintf(field, sizeof(field), "filters[%zu]", i);
        struct pt_filter_inst fi;
        const FilterCfg *fc = cfg->filters[i];
        if (create_filter(s, &icap, fc->name, fc, fc, fc->config, field, PT_STR(""), diag, &fi) !=
            0) {
            rc = -1;
            continue;
        }
        g->filters[g->n++] = fi;
    }
    /* Global plugins run after the instance's global filters. */
    Portico__Config__V1__Plugin **plugins;
    size_t nplugins = sorted_plugins(cfg, &plugins);
    for (size_t k = 0; k < nplugins; k++) {
        if (!plugins[k]->global)
            continue;
        char field[64];
        snprintf(field, sizeof(field), "plugins[%zu]", plugin_index(cfg, plugins[k]));
        struct pt_filter_inst fi;
        if (create_filter(s, &icap, plugins[k]->type, NULL, plugins[k], plugins[k]->config, field,
                          PT_STR(""), diag, &fi) != 0) {
            rc = -1;
            continue;
        }
        g->filters[g->n++] = fi;
    }
    free(plugins);
    chain_flags(g);

    struct pt_auth_error aerr = {0};
    if (rc == 0 && !(s->auth = pt_auth_plan_compile(cfg, &aerr))) {
        char wh[WHERE_LEN];
        pt_diag_addf(diag, pt_conf_where(conf, aerr.msg ? aerr.msg : cfg, NULL, wh, sizeof(wh)),
                     "auth", "%s", aerr.text);
        rc = -1;
    }
    if (rc == 0 && !(s->ratelimit = pt_rl_plan_compile(cfg, s->auth, diag)))
        rc = -1;
    if (rc == 0 && compile_routes(s, cfg, &icap, diag) != 0)
        rc = -1;
    if (rc == 0)
        s->no_route_stats = pt_metrics_route_ref(PT_METRICS_NO_ROUTE, nworkers);
    if (rc == 0 && compile_listeners(s, cfg, diag) != 0)
        rc = -1;
    s->disc = NULL;
    s->ndisc = 0;
    if (rc != 0) {
        s->conf = NULL; /* the caller keeps it */
        snapshot_destroy(&s->base);
        return NULL;
    }
    return s;
}
