/*
 * Validation of a loaded Config: everything that can be checked without
 * binding a socket or compiling a route table. Checks run to the end and
 * report every problem (up to PT_CONF_MAX_ERRORS); duplicate detection sorts
 * rather than compares pairs, so a config with many thousands of routes
 * still validates in a blink.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf_int.h"
#include "core/arena.h"
#include "core/registry.h"
#include "portico/errors.h"
#include "upstream/lb.h"
#include "upstream/breaker.h"
#include "upstream/health.h"

typedef Portico__Config__V1__Config Config;
typedef Portico__Config__V1__Listener Listener;
typedef Portico__Config__V1__Service Service;
typedef Portico__Config__V1__Instance Instance;
typedef Portico__Config__V1__UpstreamTls UpstreamTls;
typedef Portico__Config__V1__Route Route;
typedef Portico__Config__V1__Filter Filter;
typedef Portico__Config__V1__Limits Limits;

#define MAX_TIMEOUT_MS 86400000u     /* a day */
#define MAX_LONG_TIMEOUT_MS 3600000u /* an hour */
#define MAX_BODY_BYTES (1ull << 40)
#define MAX_SPLIT_WEIGHT 1000000u
#define MAX_CLIENT_VERIFY_DEPTH 16u

struct vctx {
    const struct pt_conf *c;
    struct pt_diag *diag;
    unsigned errors;
};

static void verr(struct vctx *v, const void *msg, const char *field, const char *path,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void verr(struct vctx *v, const void *msg, const char *field, const char *path,
                 const char *fmt, ...)
{
    v->errors++;
    if (v->errors > PT_CONF_MAX_ERRORS + 1)
        return;
    char wbuf[512], full[512];
    const char *where = pt_conf_where(v->c, msg, field, wbuf, sizeof(wbuf));
    if (v->errors == PT_CONF_MAX_ERRORS + 1) {
        pt_diag_addf(v->diag, pt_conf_name(v->c), NULL, "too many errors; stopping");
        return;
    }
    snprintf(full, sizeof(full), "%s%s%s", path, *path && field ? "." : "", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    pt_diag_vaddf(v->diag, where, full, fmt, ap);
    va_end(ap);
}

static bool set(const char *s)
{
    return s && *s;
}

/* For each i, the index of the first earlier element with the same name,
 * or SIZE_MAX. Empty names never collide. Caller frees. */
struct named {
    const char *name;
    size_t index;
};

static int named_cmp(const void *a, const void *b)
{
    const struct named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

static size_t *first_dups(const char *const *names, size_t n)
{
    size_t *first = pt_xmalloc((n ? n : 1) * sizeof(*first));
    struct named *v = pt_xmalloc((n ? n : 1) * sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = (struct named){names[i] ? names[i] : "", i};
        first[i] = SIZE_MAX;
    }
    qsort(v, n, sizeof(*v), named_cmp);
    for (size_t i = 1; i < n; i++) {
        size_t g = i - 1;
        while (i < n && *v[i].name && strcmp(v[i].name, v[g].name) == 0)
            first[v[i++].index] = v[g].index;
    }
    free(v);
    return first;
}

/* Each repeated string value once: "<field>[i]: X is listed twice". */
static void check_listed_once(struct vctx *v, const void *msg, const char *path, const char *field,
                              char *const *values, size_t n)
{
    size_t *dup = first_dups((const char *const *)values, n);
    for (size_t i = 0; i < n; i++)
        if (dup[i] != SIZE_MAX) {
            char f[96];
            snprintf(f, sizeof(f), "%s[%zu]", field, i);
            verr(v, msg, f, path, "%s is listed twice", values[i]);
        }
    free(dup);
}

static void check_readable(struct vctx *v, const void *msg, const char *field, const char *path,
                           const char *file)
{
    struct stat st;
    if (stat(file, &st) != 0 || access(file, R_OK) != 0)
        verr(v, msg, field, path, "cannot read \"%s\": %s", file, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        verr(v, msg, field, path, "\"%s\" is a directory, not a file", file);
}

static void check_max(struct vctx *v, const void *msg, const char *field, const char *path,
                      uint64_t value, uint64_t max)
{
    if (value > max)
        verr(v, msg, field, path, "%llu is too large (at most %llu)", (unsigned long long)value,
             (unsigned long long)max);
}

/* For fields where 0 means "default": a non-zero value must be in range. */
static void check_range_set(struct vctx *v, const void *msg, const char *field, const char *path,
                            uint64_t value, uint64_t min, uint64_t max)
{
    if (value != 0 && (value < min || value > max))
        verr(v, msg, field, path, "%llu is out of range (%llu..%llu, or 0 for the default)",
             (unsigned long long)value, (unsigned long long)min, (unsigned long long)max);
}

static const char *closest(const char *word, const char *const *names, size_t n)
{
    size_t len = strlen(word);
    size_t cap = len <= 3 ? 1 : len <= 6 ? 2 : 3, best_d = cap + 1;
    const char *best = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t d = pt_conf_edit_distance(word, len, names[i], strlen(names[i]), cap);
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    return best;
}

/* ---- filters ---- */

static void check_filter(struct vctx *v, const Filter *f, const char *path)
{
    if (!set(f->name)) {
        verr(v, f, "name", path, "a filter needs a name (its type)");
        return;
    }
    if (pt_filter_type_find(pt_str_from_cstr(f->name)))
        return;
    char known[512];
    size_t j = 0;
    known[0] = '\0';
    size_t n = pt_filter_type_count();
    for (size_t i = 0; i < n && j + 1 < sizeof(known); i++)
        j += (size_t)snprintf(known + j, sizeof(known) - j, "%s%s", i ? ", " : "",
                              pt_filter_type_at(i)->name);
    verr(v, f, "name", path, "unknown filter type \"%s\" (known: %s)", f->name,
         n ? known : "none registered");
}

static void check_filters(struct vctx *v, Filter *const *filters, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        char p[256];
        snprintf(p, sizeof(p), "%s%sfilters[%zu]", path, *path ? "." : "", i);
        check_filter(v, filters[i], p);
    }
}

/* ---- listeners ---- */

static const char *listener_protocol_name(int p)
{
    switch (p) {
    case PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_HTTP1:
        return "http1";
    case PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_H2C:
        return "h2c";
    case PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_H2:
        return "h2";
    default:
        return NULL;
    }
}

/* mTLS: client_cert, client_ca_file, verify_depth, crl_file (docs/tls.md). */
static void check_listener_client_certs(struct vctx *v, const Portico__Config__V1__ListenerTls *t,
                                        const char *p)
{
    int mode = t->client_cert;
    bool ca = set(t->client_ca_file);
    switch (mode) {
    case PORTICO__CONFIG__V1__CLIENT_CERT_MODE__CLIENT_CERT_MODE_UNSPECIFIED:
        break;
    case PORTICO__CONFIG__V1__CLIENT_CERT_MODE__CLIENT_CERT_MODE_NONE:
        if (ca)
            verr(v, t, "client_ca_file", p,
                 "client_ca_file is unused with client_cert: none; remove one of them");
        break;
    case PORTICO__CONFIG__V1__CLIENT_CERT_MODE__CLIENT_CERT_MODE_OPTIONAL:
    case PORTICO__CONFIG__V1__CLIENT_CERT_MODE__CLIENT_CERT_MODE_REQUIRED:
        if (!ca)
            verr(v, t, "client_ca_file", p,
                 "client_cert: %s needs client_ca_file (the CAs that issue client certificates)",
                 mode == PORTICO__CONFIG__V1__CLIENT_CERT_MODE__CLIENT_CERT_MODE_OPTIONAL
                     ? "optional"
                     : "required");
        break;
    default:
        verr(v, t, "client_cert", p, "unknown client_cert mode %d", mode);
        break;
    }
    if (ca)
        check_readable(v, t, "client_ca_file", p, t->client_ca_file);
    if (t->verify_depth && !ca)
        verr(v, t, "verify_depth", p, "verify_depth needs client_ca_file");
    check_max(v, t, "verify_depth", p, t->verify_depth, MAX_CLIENT_VERIFY_DEPTH);
    if (set(t->crl_file)) {
        if (!ca)
            verr(v, t, "crl_file", p, "crl_file needs client_ca_file");
        check_readable(v, t, "crl_file", p, t->crl_file);
    }
}

static void check_listener(struct vctx *v, const Listener *l, const char *path, char *addr_key,
                           size_t addr_key_len)
{
    addr_key[0] = '\0';
    struct pt_conf_address a;
    const char *why;
    if (!set(l->address))
        verr(v, l, "address", path, "address is required (host:port, [v6]:port or :port)");
    else if (pt_conf_address_parse(l->address, &a, &why) != 0)
        verr(v, l, "address", path, "\"%s\": %s", l->address, why);
    else {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(a.family, a.ip, ip, sizeof(ip));
        snprintf(addr_key, addr_key_len, "%s%s%s:%u", a.family == AF_INET6 ? "[" : "", ip,
                 a.family == AF_INET6 ? "]" : "", a.port);
    }

    const char **names = pt_xmalloc((l->n_protocols ? l->n_protocols : 1) * sizeof(*names));
    bool tls = l->tls != NULL;
    for (size_t i = 0; i < l->n_protocols; i++) {
        char field[64];
        snprintf(field, sizeof(field), "protocols[%zu]", i);
        const char *name = listener_protocol_name(l->protocols[i]);
        names[i] = name;
        if (!name) {
            verr(v, l, field, path, "unknown protocol %d", l->protocols[i]);
            continue;
        }
        if (l->protocols[i] == PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_H2 && !tls)
            verr(v, l, field, path, "h2 is HTTP/2 over TLS and needs tls; use h2c for cleartext");
        if (l->protocols[i] == PORTICO__CONFIG__V1__LISTENER_PROTOCOL__LISTENER_PROTOCOL_H2C && tls)
            verr(v, l, field, path, "h2c is cleartext and cannot be served with tls; use h2");
    }
    size_t *dup = first_dups(names, l->n_protocols);
    for (size_t i = 0; i < l->n_protocols; i++) {
        char field[64];
        snprintf(field, sizeof(field), "protocols[%zu]", i);
        if (dup[i] != SIZE_MAX)
            verr(v, l, field, path, "%s is listed twice", names[i]);
    }
    free(dup);
    free(names);

    if (tls) {
        char p[256];
        snprintf(p, sizeof(p), "%s.tls", path);
        const Portico__Config__V1__ListenerTls *t = l->tls;
        if (!set(t->cert_file))
            verr(v, t, "cert_file", p, "cert_file is required with tls");
        else
            check_readable(v, t, "cert_file", p, t->cert_file);
        if (!set(t->key_file))
            verr(v, t, "key_file", p, "key_file is required with tls");
        else
            check_readable(v, t, "key_file", p, t->key_file);
        check_listener_client_certs(v, t, p);
    }
}

static void check_listeners(struct vctx *v, const Config *cfg)
{
    size_t n = cfg->n_listeners;
    if (n == 0) {
        verr(v, cfg, "listeners", "", "at least one listener is required");
        return;
    }
    const char **names = pt_xmalloc(n * sizeof(*names));
    char **addrs = pt_xmalloc(n * sizeof(*addrs));
    for (size_t i = 0; i < n; i++) {
        const Listener *l = cfg->listeners[i];
        char path[64];
        snprintf(path, sizeof(path), "listeners[%zu]", i);
        addrs[i] = pt_xmalloc(INET6_ADDRSTRLEN + 16);
        check_listener(v, l, path, addrs[i], INET6_ADDRSTRLEN + 16);
        names[i] = set(l->name) ? l->name : l->address;
    }
    size_t *dup = first_dups(names, n);
    for (size_t i = 0; i < n; i++)
        if (dup[i] != SIZE_MAX) {
            char path[64];
            snprintf(path, sizeof(path), "listeners[%zu]", i);
            verr(v, cfg->listeners[i], set(cfg->listeners[i]->name) ? "name" : "address", path,
                 "duplicate listener name \"%s\" (also listeners[%zu])", names[i], dup[i]);
        }
    free(dup);
    dup = first_dups((const char *const *)addrs, n);
    for (size_t i = 0; i < n; i++)
        if (dup[i] != SIZE_MAX) {
            char path[64];
            snprintf(path, sizeof(path), "listeners[%zu]", i);
            verr(v, cfg->listeners[i], "address", path, "listeners[%zu] already listens on %s",
                 dup[i], addrs[i]);
        }
    free(dup);
    for (size_t i = 0; i < n; i++)
        free(addrs[i]);
    free(addrs);
    free(names);
}

/* ---- services ---- */

static bool service_name_valid(const char *s)
{
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static void check_instances(struct vctx *v, const Service *s, const char *path)
{
    if (s->n_instances == 0) {
        verr(v, s, "instances", path, "a service needs at least one instance");
        return;
    }
    char **keys = pt_xmalloc(s->n_instances * sizeof(*keys));
    for (size_t i = 0; i < s->n_instances; i++) {
        const Instance *in = s->instances[i];
        char p[256];
        snprintf(p, sizeof(p), "%s.instances[%zu]", path, i);
        keys[i] = NULL;
        if (!set(in->host))
            verr(v, in, "host", p, "host is required");
        else if (!pt_conf_host_valid(in->host))
            verr(v, in, "host", p, "\"%s\" is neither an IP address nor a host name", in->host);
        if (in->port == 0)
            verr(v, in, "port", p, "port is required (1..65535)");
        else if (in->port > 65535)
            verr(v, in, "port", p, "port %u is out of range (1..65535)", in->port);
        check_max(v, in, "weight", p, in->weight, 10000);
        if (set(in->host)) {
            size_t len = strlen(in->host) + 16;
            keys[i] = pt_xmalloc(len);
            snprintf(keys[i], len, "%s:%u", in->host, in->port);
        }
    }
    size_t *dup = first_dups((const char *const *)keys, s->n_instances);
    for (size_t i = 0; i < s->n_instances; i++) {
        if (dup[i] != SIZE_MAX) {
            char p[256];
            snprintf(p, sizeof(p), "%s.instances[%zu]", path, i);
            verr(v, s->instances[i], NULL, p, "%s is listed twice (also instances[%zu])", keys[i],
                 dup[i]);
        }
        free(keys[i]);
    }
    free(dup);
    free(keys);
}

static void check_upstream_tls(struct vctx *v, const Service *s, const char *path)
{
    const UpstreamTls *t = s->tls;
    bool h2 = s->protocol == PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_H2;
    bool h2c = s->protocol == PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_H2C;
    if (!t)
        return;
    char p[256];
    snprintf(p, sizeof(p), "%s.tls", path);
    if (t->enabled && h2c) {
        verr(v, t, "enabled", p, "protocol h2c is cleartext; use protocol h2 for HTTP/2 over TLS");
        return;
    }
    bool on = t->enabled || h2;
    if (!on) {
        if (set(t->ca_file) || set(t->server_name) || t->insecure_skip_verify ||
            set(t->cert_file) || set(t->key_file))
            verr(v, t, NULL, p, "tls settings are given but tls.enabled is not true");
        return;
    }
    if (set(t->ca_file))
        check_readable(v, t, "ca_file", p, t->ca_file);
    if (set(t->cert_file))
        check_readable(v, t, "cert_file", p, t->cert_file);
    if (set(t->key_file))
        check_readable(v, t, "key_file", p, t->key_file);
    if (set(t->cert_file) != set(t->key_file))
        verr(v, t, set(t->cert_file) ? "key_file" : "cert_file", p,
             "cert_file and key_file (the client certificate) must be given together");
    if (t->insecure_skip_verify && set(t->ca_file))
        verr(v, t, "ca_file", p, "ca_file has no effect with insecure_skip_verify");
    if (set(t->server_name) && !pt_conf_host_valid(t->server_name))
        verr(v, t, "server_name", p, "\"%s\" is not a host name", t->server_name);
}

/* Load balancing: the algorithm, its hash key and, for weighted round
 * robin, instance weights 1..1000 (0 = 1). */
static void check_lb(struct vctx *v, const Service *s, const char *path)
{
    int a = (int)s->lb_algorithm;
    bool ip_hash = a == PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_IP_HASH;
    bool hash = a == PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_HASH;
    if (a < 0 || a > PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_PEAK_EWMA) {
        verr(v, s, "lb_algorithm", path, "unknown lb_algorithm %d", a);
        return;
    }
    if (set(s->hash_on)) {
        enum pt_lb_key kind;
        struct pt_str name;
        if (!ip_hash && !hash)
            verr(v, s, "hash_on", path, "hash_on applies only to lb_algorithm hash or ip_hash");
        else if (pt_lb_hash_on_parse(s->hash_on, &kind, &name) != 0)
            verr(v, s, "hash_on", path,
                 "\"%s\": hash_on is \"ip\", \"header:<name>\" or \"cookie:<name>\"", s->hash_on);
        else if (ip_hash && kind != PT_LB_KEY_IP)
            verr(v, s, "hash_on", path, "ip_hash hashes the client IP; use lb_algorithm hash");
    } else if (hash) {
        verr(v, s, "hash_on", path,
             "lb_algorithm hash needs hash_on (\"ip\", \"header:<name>\" or "
             "\"cookie:<name>\")");
    }
    if (a == PORTICO__CONFIG__V1__LB_ALGORITHM__LB_ALGORITHM_WEIGHTED_ROUND_ROBIN) {
        for (size_t i = 0; i < s->n_instances; i++) {
            if (s->instances[i]->weight <= 1000)
                continue;
            char p[96];
            snprintf(p, sizeof(p), "%s.instances[%zu]", path, i);
            verr(v, s->instances[i], "weight", p,
                 "weighted_round_robin weights are 1..1000 (0 means 1), not %u",
                 s->instances[i]->weight);
        }
    }
}

static void check_circuit_breaker(struct vctx *v, const Service *s, const char *path)
{
    const Portico__Config__V1__CircuitBreaker *cb = s->circuit_breaker;
    if (!cb)
        return;
    char p[256];
    snprintf(p, sizeof(p), "%s.circuit_breaker", path);
    check_max(v, cb, "failure_threshold", p, cb->failure_threshold, PT_BREAKER_MAX_THRESHOLD);
    check_max(v, cb, "success_threshold", p, cb->success_threshold, PT_BREAKER_MAX_THRESHOLD);
    check_max(v, cb, "half_open_max_calls", p, cb->half_open_max_calls, PT_BREAKER_MAX_THRESHOLD);
    check_max(v, cb, "sliding_window_size", p, cb->sliding_window_size, PT_BREAKER_MAX_WINDOW);
    check_max(v, cb, "timeout_ms", p, cb->timeout_ms, PT_BREAKER_MAX_TIMEOUT_MS);
    check_range_set(v, cb, "failure_rate_threshold", p, cb->failure_rate_threshold, 1, 100);
    struct pt_breaker_conf c;
    memset(&c, 0, sizeof(c));
    for (size_t i = 0; i < cb->n_failure_on; i++) {
        char field[64];
        snprintf(field, sizeof(field), "failure_on[%zu]", i);
        if (pt_breaker_conf_add_fail_on(&c, cb->failure_on[i]) != 0)
            verr(v, cb, field, p,
                 "unknown failure kind \"%s\" (one of: 5xx, gateway-error, timeout, reset, "
                 "connect-failure, grpc:<CODE> with a gRPC code name such as UNAVAILABLE)",
                 cb->failure_on[i]);
    }
    check_listed_once(v, cb, p, "failure_on", cb->failure_on, cb->n_failure_on);
}

/* ---- health: active checks, outlier detection ---- */

static void check_health_check(struct vctx *v, const Service *s, const char *path)
{
    const Portico__Config__V1__HealthCheck *hc = s->health_check;
    if (!hc)
        return;
    char p[256];
    snprintf(p, sizeof(p), "%s.health_check", path);
    int t = (int)hc->type;
    bool grpc = t == PORTICO__CONFIG__V1__HEALTH_CHECK_TYPE__HEALTH_CHECK_TYPE_GRPC;
    if (t < 0 || t > PORTICO__CONFIG__V1__HEALTH_CHECK_TYPE__HEALTH_CHECK_TYPE_GRPC)
        verr(v, hc, "type", p, "unknown health check type %d (http or grpc)", t);
    check_range_set(v, hc, "interval_ms", p, hc->interval_ms, PT_HEALTH_MIN_INTERVAL_MS,
                    PT_HEALTH_MAX_INTERVAL_MS);
    check_range_set(v, hc, "timeout_ms", p, hc->timeout_ms, 1, PT_HEALTH_MAX_INTERVAL_MS);
    check_max(v, hc, "jitter_ms", p, hc->jitter_ms, PT_HEALTH_MAX_INTERVAL_MS);
    check_max(v, hc, "healthy_threshold", p, hc->healthy_threshold, PT_HEALTH_MAX_THRESHOLD);
    check_max(v, hc, "unhealthy_threshold", p, hc->unhealthy_threshold, PT_HEALTH_MAX_THRESHOLD);
    if (set(hc->path) && (hc->path[0] != '/' || strpbrk(hc->path, " \t\r\n")))
        verr(v, hc, "path", p, "\"%s\": a health check path starts with '/' and has no spaces",
             hc->path);
    if (grpc && set(hc->path))
        verr(v, hc, "path", p, "path has no effect with type grpc");
    if (grpc && hc->n_expected_statuses)
        verr(v, hc, "expected_statuses", p, "expected_statuses has no effect with type grpc");
    if (!grpc && set(hc->grpc_service))
        verr(v, hc, "grpc_service", p, "grpc_service needs type grpc");
    if (grpc && s->protocol != PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_GRPC &&
        s->protocol != PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_H2 &&
        s->protocol != PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_H2C)
        verr(v, hc, "type", p,
             "gRPC health checks need an HTTP/2 service (protocol grpc, h2 or h2c)");
    if (set(hc->host) && strpbrk(hc->host, " \t\r\n/"))
        verr(v, hc, "host", p, "\"%s\" is not a host", hc->host);
    struct pt_health_check_conf c;
    pt_health_check_conf_defaults(&c);
    for (size_t i = 0; i < hc->n_expected_statuses; i++) {
        char field[64];
        snprintf(field, sizeof(field), "expected_statuses[%zu]", i);
        if (i >= PT_HEALTH_MAX_STATUS_RANGES) {
            verr(v, hc, field, p, "at most %d expected_statuses entries",
                 PT_HEALTH_MAX_STATUS_RANGES);
            break;
        }
        if (pt_health_status_add(&c, hc->expected_statuses[i]) != 0)
            verr(v, hc, field, p,
                 "\"%s\": a status (100..599) or a range of them such as \"200-299\"",
                 hc->expected_statuses[i]);
    }
}

static void check_outlier(struct vctx *v, const Service *s, const char *path)
{
    const Portico__Config__V1__OutlierDetection *od = s->outlier_detection;
    if (!od)
        return;
    char p[256];
    snprintf(p, sizeof(p), "%s.outlier_detection", path);
    check_max(v, od, "consecutive_failures", p, od->consecutive_failures, PT_HEALTH_MAX_THRESHOLD);
    check_max(v, od, "base_ejection_time_ms", p, od->base_ejection_time_ms,
              PT_HEALTH_MAX_INTERVAL_MS);
    check_max(v, od, "max_ejection_time_ms", p, od->max_ejection_time_ms,
              PT_HEALTH_MAX_INTERVAL_MS);
    check_range_set(v, od, "max_ejection_percent", p, od->max_ejection_percent, 1, 100);
    uint32_t base =
        od->base_ejection_time_ms ? od->base_ejection_time_ms : PT_OUTLIER_DEFAULT_BASE_MS;
    uint32_t max = od->max_ejection_time_ms ? od->max_ejection_time_ms : PT_OUTLIER_DEFAULT_MAX_MS;
    if (max < base)
        verr(v, od, "max_ejection_time_ms", p,
             "max_ejection_time_ms (%u) is shorter than base_ejection_time_ms (%u)", max, base);
}

/* ---- service discovery (Service.discovery, Config.dns) ---- */

/* A DNS name: labels of letters, digits, '-' and '_' (SRV owner names),
 * 1..63 bytes each, at most 253 in all; one trailing dot allowed. */
static bool dns_name_valid(const char *s)
{
    size_t len = strlen(s), label = 0;
    if (len == 0 || len > 254 || (len == 254 && s[253] != '.') || s[0] == '.')
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || ++label > 63)
            return false;
    }
    return true;
}

static void check_discovery(struct vctx *v, const Service *s, const char *path)
{
    const Portico__Config__V1__Discovery *d = s->discovery;
    char p[256];
    snprintf(p, sizeof(p), "%s.discovery", path);
    if (s->n_instances)
        verr(v, s, "instances", path,
             "a service takes its instances either from `instances` or from `discovery`, not "
             "both");
    bool dns = d->kind == PORTICO__CONFIG__V1__DISCOVERY_KIND__DISCOVERY_KIND_DNS ||
               d->kind == PORTICO__CONFIG__V1__DISCOVERY_KIND__DISCOVERY_KIND_DNS_SRV;
    bool reg = d->kind == PORTICO__CONFIG__V1__DISCOVERY_KIND__DISCOVERY_KIND_REGISTRATION;
    if (!dns && !reg) {
        verr(v, d, "kind", p, "kind is required: dns, dns_srv or registration");
        return;
    }
    if (dns) {
        if (!set(d->dns_name))
            verr(v, d, "dns_name", p, "dns_name is required for DNS discovery");
        else if (!dns_name_valid(d->dns_name))
            verr(v, d, "dns_name", p, "\"%s\" is not a DNS name", d->dns_name);
        if (d->kind == PORTICO__CONFIG__V1__DISCOVERY_KIND__DISCOVERY_KIND_DNS) {
            if (d->port == 0)
                verr(v, d, "port", p, "port is required for kind dns (1..65535)");
            else if (d->port > 65535)
                verr(v, d, "port", p, "port %u is out of range (1..65535)", d->port);
        } else if (d->port) {
            verr(v, d, "port", p, "kind dns_srv takes the ports from the SRV records");
        }
        if (set(d->family) && strcmp(d->family, "any") != 0 && strcmp(d->family, "ipv4") != 0 &&
            strcmp(d->family, "ipv6") != 0)
            verr(v, d, "family", p, "\"%s\": family is \"any\", \"ipv4\" or \"ipv6\"", d->family);
        check_range_set(v, d, "min_ttl_ms", p, d->min_ttl_ms, 100, 86400000);
        check_range_set(v, d, "max_ttl_ms", p, d->max_ttl_ms, 100, 86400000);
        if (d->min_ttl_ms && d->max_ttl_ms && d->min_ttl_ms > d->max_ttl_ms)
            verr(v, d, "max_ttl_ms", p, "max_ttl_ms (%u) is below min_ttl_ms (%u)", d->max_ttl_ms,
                 d->min_ttl_ms);
        if (d->max_registrations)
            verr(v, d, "max_registrations", p, "max_registrations applies to kind registration");
    } else {
        if (set(d->dns_name) || d->port || set(d->family) || d->min_ttl_ms || d->max_ttl_ms)
            verr(v, d, NULL, p,
                 "kind registration takes no dns_name, port, family or TTLs: instances register "
                 "through the admin API");
        check_range_set(v, d, "max_registrations", p, d->max_registrations, 1, 100000);
    }
}

static void check_dns(struct vctx *v, const Portico__Config__V1__Dns *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_nameservers; i++) {
        char field[64];
        snprintf(field, sizeof(field), "nameservers[%zu]", i);
        const char *ns = d->nameservers[i];
        unsigned char ip[16];
        struct pt_conf_address a;
        const char *why = NULL;
        if (inet_pton(AF_INET, ns, ip) == 1 || inet_pton(AF_INET6, ns, ip) == 1)
            continue;
        if (pt_conf_address_parse(ns, &a, &why) != 0 || !a.host[0] ||
            strcmp(a.host, "localhost") == 0)
            verr(v, d, field, "dns",
                 "\"%s\": a nameserver is an IP address, \"ip:port\" or \"[ipv6]:port\"", ns);
    }
    check_listed_once(v, d, "dns", "nameservers", d->nameservers, d->n_nameservers);
    check_range_set(v, d, "timeout_ms", "dns", d->timeout_ms, 10, 60000);
    check_range_set(v, d, "attempts", "dns", d->attempts, 1, 10);
}

static void check_service(struct vctx *v, const Service *s, const char *path)
{
    if (!set(s->name))
        verr(v, s, "name", path, "a service needs a name");
    else if (!service_name_valid(s->name))
        verr(v, s, "name", path,
             "\"%s\": a service name uses only letters, digits, '_', '.' and '-'", s->name);
    if ((int)s->protocol < 0 ||
        (int)s->protocol > PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_GRPC)
        verr(v, s, "protocol", path, "unknown protocol %d", s->protocol);
    if (s->discovery)
        check_discovery(v, s, path);
    else
        check_instances(v, s, path);
    check_lb(v, s, path);
    check_health_check(v, s, path);
    check_outlier(v, s, path);
    check_circuit_breaker(v, s, path);
    check_max(v, s, "connect_timeout_ms", path, s->connect_timeout_ms, MAX_LONG_TIMEOUT_MS);
    check_max(v, s, "idle_timeout_ms", path, s->idle_timeout_ms, MAX_LONG_TIMEOUT_MS);
    check_max(v, s, "max_connections", path, s->max_connections, 100000);
    check_upstream_tls(v, s, path);
}

static void check_services(struct vctx *v, const Config *cfg)
{
    size_t n = cfg->n_services;
    const char **names = pt_xmalloc((n ? n : 1) * sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "services[%zu]", i);
        check_service(v, cfg->services[i], path);
        names[i] = cfg->services[i]->name;
    }
    size_t *dup = first_dups(names, n);
    for (size_t i = 0; i < n; i++)
        if (dup[i] != SIZE_MAX) {
            char path[64];
            snprintf(path, sizeof(path), "services[%zu]", i);
            verr(v, cfg->services[i], "name", path,
                 "duplicate service name \"%s\" (also services[%zu])", names[i], dup[i]);
        }
    free(dup);
    free(names);
}

/* ---- routes ---- */

struct service_index {
    struct named *byname; /* sorted */
    size_t n;
};

static const Service *service_find(const Config *cfg, const struct service_index *ix,
                                   const char *name)
{
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->byname[mid].name, name);
        if (c == 0)
            return cfg->services[ix->byname[mid].index];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void check_methods(struct vctx *v, const Route *r, const char *path)
{
    static const char *const standard[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                           "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    for (size_t i = 0; i < r->n_methods; i++) {
        char field[64];
        snprintf(field, sizeof(field), "methods[%zu]", i);
        const char *m = r->methods[i];
        if (!pt_conf_is_token(m)) {
            verr(v, r, field, path, "\"%s\" is not an HTTP method (a token)", m);
            continue;
        }
        /* Methods are case-sensitive: "get" would never match a GET. */
        for (size_t k = 0; k < sizeof(standard) / sizeof(standard[0]); k++)
            if (strcasecmp(m, standard[k]) == 0 && strcmp(m, standard[k]) != 0)
                verr(v, r, field, path, "methods are case-sensitive; write \"%s\"", standard[k]);
    }
    check_listed_once(v, r, path, "methods", r->methods, r->n_methods);
}

static void check_retries(struct vctx *v, const Route *r, const char *path)
{
    static const char *const conditions[] = {
        "connect-failure", "refused-stream",         "reset",           "5xx",
        "gateway-error",   "retriable-status-codes", "per-try-timeout", "timeout"};
    size_t nconds = sizeof(conditions) / sizeof(conditions[0]);
    check_max(v, r, "retry_count", path, r->retry_count, 10);
    if (r->n_retry_on && r->retry_count == 0)
        verr(v, r, "retry_on", path, "retry_on has no effect while retry_count is 0");
    for (size_t i = 0; i < r->n_retry_on; i++) {
        char field[64];
        snprintf(field, sizeof(field), "retry_on[%zu]", i);
        bool known = false;
        for (size_t k = 0; k < nconds; k++)
            known = known || strcmp(r->retry_on[i], conditions[k]) == 0;
        if (!known) {
            const char *hint = closest(r->retry_on[i], conditions, nconds);
            verr(v, r, field, path,
                 "unknown retry condition \"%s\"%s%s%s (one of: connect-failure, refused-stream, "
                 "reset, 5xx, gateway-error, retriable-status-codes, per-try-timeout, timeout)",
                 r->retry_on[i], hint ? "; did you mean \"" : "", hint ? hint : "",
                 hint ? "\"?" : "");
        }
    }
    check_listed_once(v, r, path, "retry_on", r->retry_on, r->n_retry_on);
    /* retry: per-try timeout, backoff, budget, unsafe methods */
    check_max(v, r, "per_try_timeout_ms", path, r->per_try_timeout_ms, MAX_LONG_TIMEOUT_MS);
    check_max(v, r, "retry_backoff_base_ms", path, r->retry_backoff_base_ms, 60000);
    check_max(v, r, "retry_backoff_max_ms", path, r->retry_backoff_max_ms, 60000);
    if (r->retry_backoff_base_ms && r->retry_backoff_max_ms &&
        r->retry_backoff_base_ms > r->retry_backoff_max_ms)
        verr(v, r, "retry_backoff_max_ms", path,
             "retry_backoff_max_ms (%u) is below retry_backoff_base_ms (%u)",
             r->retry_backoff_max_ms, r->retry_backoff_base_ms);
    if (r->retry_count == 0) {
        const char *unused = r->retry_unsafe            ? "retry_unsafe"
                             : r->retry_backoff_base_ms ? "retry_backoff_base_ms"
                             : r->retry_backoff_max_ms  ? "retry_backoff_max_ms"
                             : r->retry_budget          ? "retry_budget"
                                                        : NULL;
        if (unused)
            verr(v, r, unused, path, "%s has no effect while retry_count is 0", unused);
    }
    if (r->hedge) {
        char p[256];
        snprintf(p, sizeof(p), "%s.hedge", path);
        if (r->hedge->delay_ms == 0)
            verr(v, r->hedge, "delay_ms", p, "a hedge needs delay_ms (1..60000)");
        check_max(v, r->hedge, "delay_ms", p, r->hedge->delay_ms, 60000);
        if (r->hedge->max_attempts == 1)
            verr(v, r->hedge, "max_attempts", p, "max_attempts 1 never hedges (2..%u)", 4u);
        check_max(v, r->hedge, "max_attempts", p, r->hedge->max_attempts, 4u);
    }
    if (r->retry_budget) {
        const Portico__Config__V1__RetryBudget *b = r->retry_budget;
        char p[256];
        snprintf(p, sizeof(p), "%s.retry_budget", path);
        if (b->budget_percent)
            check_max(v, b, "budget_percent", p, b->budget_percent->value, 100);
        if (b->min_retry_concurrency)
            check_max(v, b, "min_retry_concurrency", p, b->min_retry_concurrency->value, 100000);
    }
}

static void check_matchers(struct vctx *v, const Route *r, const char *path)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        const Portico__Config__V1__HeaderMatch *h = r->headers[i];
        char p[256];
        snprintf(p, sizeof(p), "%s.headers[%zu]", path, i);
        if (!set(h->name))
            verr(v, h, "name", p, "a header match needs a name");
        else if (!pt_conf_is_token(h->name))
            verr(v, h, "name", p, "\"%s\" is not a valid header name", h->name);
        if (h->match_case == PORTICO__CONFIG__V1__HEADER_MATCH__MATCH__NOT_SET)
            verr(v, h, NULL, p, "set one of exact, prefix, regex or present");
    }
    for (size_t i = 0; i < r->n_query; i++) {
        const Portico__Config__V1__QueryMatch *q = r->query[i];
        char p[256];
        snprintf(p, sizeof(p), "%s.query[%zu]", path, i);
        if (!set(q->name))
            verr(v, q, "name", p, "a query match needs a name");
        if (q->match_case == PORTICO__CONFIG__V1__QUERY_MATCH__MATCH__NOT_SET)
            verr(v, q, NULL, p, "set one of exact, prefix, regex or present");
    }
}

/* A reference to a service: set and existing (with a "did you mean"). */
static const Service *service_ref(struct vctx *v, const Config *cfg, const struct service_index *ix,
                                  const void *msg, const char *field, const char *path,
                                  const char *name)
{
    if (!set(name)) {
        verr(v, msg, field, path, "service is required");
        return NULL;
    }
    const Service *s = service_find(cfg, ix, name);
    if (!s) {
        const char **names = pt_xmalloc((ix->n ? ix->n : 1) * sizeof(*names));
        for (size_t i = 0; i < ix->n; i++)
            names[i] = ix->byname[i].name;
        const char *hint = closest(name, names, ix->n);
        verr(v, msg, field, path, "no service named \"%s\"%s%s%s", name,
             hint ? "; did you mean \"" : "", hint ? hint : "", hint ? "\"?" : "");
        free(names);
    }
    return s;
}

static void check_websocket_service(struct vctx *v, const Route *r, const char *path,
                                    const Service *s)
{
    if (s->protocol != PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_UNSPECIFIED &&
        s->protocol != PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_HTTP1)
        verr(v, r, "websocket", path,
             "websocket needs a service with protocol http1 (service \"%s\" is not; websocket "
             "over an HTTP/2 upstream is not supported)",
             s->name);
}

/* An API version: what a path segment "v<version>", a header or a query
 * parameter can carry unambiguously. */
static bool version_valid(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != '_')
            return false;
    return true;
}

static void check_splits(struct vctx *v, const Config *cfg, const struct service_index *ix,
                         const Route *r, const char *path)
{
    uint64_t total = 0;
    char **names = pt_xmalloc((r->n_splits ? r->n_splits : 1) * sizeof(*names));
    for (size_t i = 0; i < r->n_splits; i++) {
        const Portico__Config__V1__WeightedService *w = r->splits[i];
        char p[96];
        snprintf(p, sizeof(p), "%s.splits[%zu]", path, i);
        service_ref(v, cfg, ix, w, "service", p, w->service);
        check_max(v, w, "weight", p, w->weight, MAX_SPLIT_WEIGHT);
        total += w->weight;
        names[i] = w->service ? w->service : "";
    }
    if (r->n_splits && total == 0)
        verr(v, r, "splits", path, "the weights of a split add up to 0: give one a weight");
    check_listed_once(v, r, path, "splits", names, r->n_splits);
    free(names);

    if (set(r->split_key) && strcmp(r->split_key, "request") != 0) {
        enum pt_lb_key kind;
        struct pt_str name;
        if (pt_lb_hash_on_parse(r->split_key, &kind, &name) != 0)
            verr(v, r, "split_key", path,
                 "\"%s\" is not a split key (one of: request, ip, header:<name>, "
                 "cookie:<name>)",
                 r->split_key);
    }
    if (set(r->split_key) && !r->n_splits)
        verr(v, r, "split_key", path, "split_key has no effect without splits");
    if (r->n_split_overrides && !r->n_splits)
        verr(v, r, "split_overrides", path, "split_overrides need splits");
    for (size_t i = 0; i < r->n_split_overrides; i++) {
        const Portico__Config__V1__SplitOverride *o = r->split_overrides[i];
        char p[128];
        snprintf(p, sizeof(p), "%s.split_overrides[%zu]", path, i);
        if (!set(o->header))
            verr(v, o, "header", p, "an override needs a header name");
        else if (!pt_conf_is_token(o->header))
            verr(v, o, "header", p, "\"%s\" is not a valid header name", o->header);
        service_ref(v, cfg, ix, o, "service", p, o->service);
    }
}

static void check_versions(struct vctx *v, const Config *cfg, const struct service_index *ix,
                           const Route *r, const char *path)
{
    const Portico__Config__V1__Versioning *vs = r->versions;
    char p[96];
    snprintf(p, sizeof(p), "%s.versions", path);
    const char *from = set(vs->from) ? vs->from : "path";
    bool by_path = strcmp(from, "path") == 0;
    bool named = strncmp(from, "header:", 7) == 0 || strncmp(from, "query:", 6) == 0;
    const char *name = strchr(from, ':') ? strchr(from, ':') + 1 : "";
    if (!by_path && strcmp(from, "accept") != 0 && !named)
        verr(v, vs, "from", p,
             "\"%s\" is not a version source (one of: path, header:<name>, accept, "
             "query:<name>)",
             from);
    else if (named && (!*name || strlen(name) > 256 || !pt_conf_is_token(name)))
        verr(v, vs, "from", p, "\"%s\": a name must follow \"%.*s\"", from, (int)(name - from),
             from);
    if (vs->strip && !by_path)
        verr(v, vs, "strip", p, "strip applies to versions from \"path\" only");
    if (!vs->n_versions)
        verr(v, vs, "versions", p, "list at least one version");
    char **names = pt_xmalloc((vs->n_versions ? vs->n_versions : 1) * sizeof(*names));
    bool has_default = false;
    for (size_t i = 0; i < vs->n_versions; i++) {
        const Portico__Config__V1__VersionedService *e = vs->versions[i];
        char q[160];
        snprintf(q, sizeof(q), "%s.versions[%zu]", p, i);
        names[i] = e->version ? e->version : "";
        if (!set(e->version))
            verr(v, e, "version", q, "a version needs a name (e.g. \"2\")");
        else if (!version_valid(e->version))
            verr(v, e, "version", q,
                 "\"%s\": a version uses only letters, digits, '.', '-' and '_' (at most 64)",
                 e->version);
        else if (by_path && !isdigit((unsigned char)e->version[0]))
            verr(v, e, "version", q,
                 "\"%s\": a version read from the path (\"v<version>\") starts with a digit",
                 e->version);
        service_ref(v, cfg, ix, e, "service", q, e->service);
        has_default = has_default || (set(vs->default_version) && set(e->version) &&
                                      strcmp(vs->default_version, e->version) == 0);
    }
    check_listed_once(v, vs, p, "versions", names, vs->n_versions);
    free(names);
    if (set(vs->default_version) && !has_default)
        verr(v, vs, "default_version", p, "\"%s\" is not one of the versions listed",
             vs->default_version);
}

/* Traffic splits and API versions (the service itself is checked by the
 * caller). */
static void check_selection(struct vctx *v, const Config *cfg, const struct service_index *ix,
                            const Route *r, const char *path)
{
    check_splits(v, cfg, ix, r, path);
    if (r->versions)
        check_versions(v, cfg, ix, r, path);
}

static void check_route_auth(struct vctx *v, const Route *r, const char *route_path);

static void check_grpc_web_service(struct vctx *v, const Route *r, const char *path,
                                   const Service *s)
{
    if (s->protocol != PORTICO__CONFIG__V1__SERVICE_PROTOCOL__SERVICE_PROTOCOL_GRPC)
        verr(v, r, "grpc_web", path,
             "grpc_web needs services with protocol grpc (service \"%s\" is not)", s->name);
}

static bool grpc_web_token(const char *t)
{
    if (!*t)
        return false;
    for (; *t; t++)
        if (!isalnum((unsigned char)*t) && !strchr("!#$%&'*+-.^_`|~", *t))
            return false;
    return true;
}

/* Route.grpc_web: CORS lists and the route's services (all gRPC). */
static void check_grpc_web(struct vctx *v, const Config *cfg, const struct service_index *ix,
                           const Route *r, const char *path)
{
    const Portico__Config__V1__GrpcWeb *g = r->grpc_web;
    if (!g || (g->enabled && !g->enabled->value))
        return;
    char p[512];
    snprintf(p, sizeof(p), "%s.grpc_web", path);
    const Service *s;
    if (r->service && *r->service && (s = service_find(cfg, ix, r->service)))
        check_grpc_web_service(v, r, path, s);
    for (size_t i = 0; i < r->n_splits; i++)
        if ((s = service_find(cfg, ix, r->splits[i]->service)))
            check_grpc_web_service(v, r, path, s);
    for (size_t i = 0; r->versions && i < r->versions->n_versions; i++)
        if ((s = service_find(cfg, ix, r->versions->versions[i]->service)))
            check_grpc_web_service(v, r, path, s);
    for (size_t i = 0; i < g->n_allowed_origins; i++) {
        const char *o = g->allowed_origins[i];
        char f[64];
        snprintf(f, sizeof(f), "allowed_origins[%zu]", i);
        if (strcmp(o, "*") == 0) {
            if (g->allow_credentials)
                verr(v, g, f, p, "\"*\" cannot be combined with allow_credentials");
            continue;
        }
        const char *sep = strstr(o, "://");
        bool ok = sep && sep > o && sep[3] && !strchr(sep + 3, '/') && strlen(o) <= 256;
        for (const char *c = o; ok && *c; c++)
            if ((unsigned char)*c <= ' ' || *c == ',' || (unsigned char)*c >= 0x7f)
                ok = false;
        if (!ok)
            verr(v, g, f, p, "\"%s\" is not an origin (scheme://host[:port], or \"*\")", o);
    }
    for (size_t i = 0; i < g->n_allowed_headers; i++)
        if (!grpc_web_token(g->allowed_headers[i]))
            verr(v, g, "allowed_headers", p, "\"%s\" is not a header name", g->allowed_headers[i]);
    for (size_t i = 0; i < g->n_expose_headers; i++)
        if (!grpc_web_token(g->expose_headers[i]))
            verr(v, g, "expose_headers", p, "\"%s\" is not a header name", g->expose_headers[i]);
    if (g->max_age_s)
        check_max(v, g, "max_age_s", p, g->max_age_s->value, 86400);
}

static void check_route(struct vctx *v, const Config *cfg, const struct service_index *ix,
                        const Route *r, const char *path)
{
    if (set(r->path) && set(r->path_prefix))
        verr(v, r, "path_prefix", path, "set either path or path_prefix, not both");
    else if (!set(r->path) && !set(r->path_prefix))
        verr(v, r, NULL, path, "a route needs path or path_prefix");

    const Service *s = NULL;
    int targets = set(r->service) + (r->n_splits > 0) + (r->versions != NULL);
    if (targets == 0)
        verr(v, r, "service", path, "service is required (or splits or versions)");
    else if (targets > 1)
        verr(v, r, NULL, path, "set exactly one of service, splits and versions");
    if (set(r->service))
        s = service_ref(v, cfg, ix, r, "service", path, r->service);
    check_selection(v, cfg, ix, r, path);

    check_methods(v, r, path);
    if (r->priority < -1000000 || r->priority > 1000000)
        verr(v, r, "priority", path, "%d is out of range (-1000000..1000000)", r->priority);
    check_max(v, r, "timeout_ms", path, r->timeout_ms, MAX_TIMEOUT_MS);
    check_retries(v, r, path);
    if (r->max_body_bytes)
        check_max(v, r, "max_body_bytes", path, r->max_body_bytes->value, MAX_BODY_BYTES);
    check_matchers(v, r, path);
    check_filters(v, r->filters, r->n_filters, path);
    check_route_auth(v, r, path);

    if (r->websocket && s)
        check_websocket_service(v, r, path, s);
    for (size_t i = 0; r->websocket && i < r->n_splits; i++)
        if ((s = service_find(cfg, ix, r->splits[i]->service)))
            check_websocket_service(v, r, path, s);
    for (size_t i = 0; r->websocket && r->versions && i < r->versions->n_versions; i++)
        if ((s = service_find(cfg, ix, r->versions->versions[i]->service)))
            check_websocket_service(v, r, path, s);
    check_grpc_web(v, cfg, ix, r, path);
}

static void check_routes(struct vctx *v, const Config *cfg)
{
    struct service_index ix = {
        pt_xmalloc((cfg->n_services ? cfg->n_services : 1) * sizeof(*ix.byname)), 0};
    for (size_t i = 0; i < cfg->n_services; i++)
        if (set(cfg->services[i]->name))
            ix.byname[ix.n++] = (struct named){cfg->services[i]->name, i};
    qsort(ix.byname, ix.n, sizeof(*ix.byname), named_cmp);

    size_t n = cfg->n_routes;
    char **names = pt_xmalloc((n ? n : 1) * sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        char path[64], name[512];
        snprintf(path, sizeof(path), "routes[%zu]", i);
        check_route(v, cfg, &ix, cfg->routes[i], path);
        pt_conf_route_name(cfg->routes[i], name, sizeof(name));
        names[i] = pt_xstrdup(name);
    }
    size_t *dup = first_dups((const char *const *)names, n);
    for (size_t i = 0; i < n; i++) {
        if (dup[i] != SIZE_MAX) {
            char path[64];
            snprintf(path, sizeof(path), "routes[%zu]", i);
            bool named = set(cfg->routes[i]->name);
            verr(v, cfg->routes[i], named ? "name" : NULL, path,
                 "duplicate route name \"%s\" (also routes[%zu])%s", names[i], dup[i],
                 named ? "" : "; unnamed routes are named by path and methods: give one a name");
        }
        free(names[i]);
    }
    free(dup);
    free(names);
    free(ix.byname);
}

/* ---- limits, access log ---- */

static void check_limits(struct vctx *v, const Limits *l)
{
    if (!l)
        return;
    const char *p = "limits";
    check_range_set(v, l, "max_header_bytes", p, l->max_header_bytes, 1024, 1048576);
    check_range_set(v, l, "max_headers", p, l->max_headers, 8, 10000);
    check_max(v, l, "max_body_bytes", p, l->max_body_bytes, MAX_BODY_BYTES);
    check_range_set(v, l, "max_concurrent_streams", p, l->max_concurrent_streams, 1, 10000);
    check_max(v, l, "idle_timeout_ms", p, l->idle_timeout_ms, MAX_TIMEOUT_MS);
    check_max(v, l, "header_timeout_ms", p, l->header_timeout_ms, MAX_TIMEOUT_MS);
    check_max(v, l, "request_timeout_ms", p, l->request_timeout_ms, MAX_TIMEOUT_MS);
    check_max(v, l, "stream_idle_timeout_ms", p, l->stream_idle_timeout_ms, MAX_TIMEOUT_MS);
    check_range_set(v, l, "max_connections", p, l->max_connections, 1, 1000000);
    check_range_set(v, l, "max_resets_per_second", p, l->max_resets_per_second, 1, 100000);
}

static void check_access_log(struct vctx *v, const Portico__Config__V1__AccessLog *a)
{
    if (!a || !set(a->path) || strcmp(a->path, "stdout") == 0 || strcmp(a->path, "stderr") == 0)
        return;
    struct stat st;
    if (stat(a->path, &st) == 0) {
        if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode))
            verr(v, a, "path", "access_log", "\"%s\" exists and is not a file", a->path);
        return;
    }
    size_t len = strlen(a->path);
    char *dir = pt_xstrdup(a->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (len && a->path[len - 1] == '/')
        verr(v, a, "path", "access_log", "\"%s\" names a directory; give a file name", a->path);
    else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        verr(v, a, "path", "access_log", "directory \"%s\" does not exist", dir);
    free(dir);
}

/* ---- rate-limit rules, plugins, API keys, admin ---- */

/* Sorted names of every route (explicit or derived), for references. */
struct name_set {
    char **v;
    size_t n;
};

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void route_names(const Config *cfg, struct name_set *out)
{
    out->v = pt_xmalloc((cfg->n_routes ? cfg->n_routes : 1) * sizeof(char *));
    out->n = cfg->n_routes;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        char name[512];
        pt_conf_route_name(cfg->routes[i], name, sizeof(name));
        out->v[i] = pt_xstrdup(name);
    }
    qsort(out->v, out->n, sizeof(char *), str_cmp);
}

static bool name_set_has(const struct name_set *s, const char *name)
{
    return bsearch(&name, s->v, s->n, sizeof(char *), str_cmp) != NULL;
}

static void name_set_fini(struct name_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* Object names used as ids in admin URLs: printable, no '/' or spaces at
 * the ends, at most 200 bytes. Routes keep their older, looser rule
 * (derived names contain '/' and spaces). */
static const char *object_name_problem(const char *name)
{
    size_t n = strlen(name);
    if (n == 0)
        return "a name is required";
    if (n > 200)
        return "a name is at most 200 bytes";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x21 || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '%')
            return "a name uses printable characters other than space, '/', '?', '#' and '%'";
    }
    return NULL;
}

static void check_unique(struct vctx *v, const char *kind, const char *const *names,
                         void *const *msgs, size_t n)
{
    size_t *dup = first_dups(names, n);
    for (size_t i = 0; i < n; i++)
        if (dup[i] != SIZE_MAX) {
            char path[64];
            snprintf(path, sizeof(path), "%s[%zu]", kind, i);
            verr(v, msgs[i], "name", path, "duplicate name \"%s\" (also %s[%zu])", names[i], kind,
                 dup[i]);
        }
    free(dup);
}

static bool key_part_valid(const char *p, size_t len)
{
    static const char *const simple[] = {"global",  "route",   "client_id",
                                         "api_key", "user_id", "ip"};
    for (size_t k = 0; k < sizeof(simple) / sizeof(simple[0]); k++)
        if (strlen(simple[k]) == len && memcmp(p, simple[k], len) == 0)
            return true;
    if (len > 7 && memcmp(p, "header:", 7) == 0) {
        char name[256];
        if (len - 7 >= sizeof(name))
            return false;
        memcpy(name, p + 7, len - 7);
        name[len - 7] = '\0';
        return pt_conf_is_token(name);
    }
    return false;
}

static bool tier_valid(const char *t);

/* Enforcement settings of one rule (issue 6): prefixes, tier, mode, Redis
 * budget, table size, lease. */
static void check_rate_limit_enforcement(struct vctx *v, const Config *cfg,
                                         const Portico__Config__V1__RateLimitRule *r,
                                         const char *path)
{
    check_range_set(v, r, "ipv6_prefix", path, r->ipv6_prefix, 1, 128);
    check_range_set(v, r, "ipv4_prefix", path, r->ipv4_prefix, 1, 32);
    if (set(r->tier) && !tier_valid(r->tier))
        verr(v, r, "tier", path,
             "\"%s\": a tier uses lowercase letters, digits, '_' and '-' (at most 50)", r->tier);
    if ((int)r->mode < 0 ||
        (int)r->mode > PORTICO__CONFIG__V1__RATE_LIMIT_MODE__RATE_LIMIT_MODE_HYBRID)
        verr(v, r, "mode", path, "unknown mode %d", r->mode);
    bool redis = r->mode == PORTICO__CONFIG__V1__RATE_LIMIT_MODE__RATE_LIMIT_MODE_REDIS ||
                 r->mode == PORTICO__CONFIG__V1__RATE_LIMIT_MODE__RATE_LIMIT_MODE_HYBRID;
    if (redis && (!cfg->redis || !set(cfg->redis->address)))
        verr(v, r, "mode", path, "mode %s needs redis.address in the instance configuration",
             r->mode == PORTICO__CONFIG__V1__RATE_LIMIT_MODE__RATE_LIMIT_MODE_REDIS ? "redis"
                                                                                    : "hybrid");
    /* The Redis script computes in Lua numbers (doubles): it is exact
     * while every product stays below 2^52. */
    if (redis && r->limit >= 1 && r->window_seconds >= 1 &&
        (r->limit + r->burst) * (uint64_t)r->window_seconds > 4000000000ull)
        verr(v, r, "mode", path,
             "in redis and hybrid mode (limit + burst) x window_seconds is at most 4000000000 "
             "(here %llu)",
             (unsigned long long)((r->limit + r->burst) * (uint64_t)r->window_seconds));
    check_range_set(v, r, "redis_timeout_ms", path, r->redis_timeout_ms, 1, 10000);
    check_range_set(v, r, "max_keys", path, r->max_keys, 1, 10000000);
    if (r->lease_size && r->limit >= 1 && r->lease_size > r->limit)
        verr(v, r, "lease_size", path, "%u is larger than limit (%llu)", r->lease_size,
             (unsigned long long)r->limit);
    if (set(r->key_type)) {
        unsigned parts = 1;
        for (const char *p = r->key_type; *p; p++)
            parts += *p == '+';
        if (parts > 4)
            verr(v, r, "key_type", path, "\"%s\" joins %u parts (at most 4)", r->key_type, parts);
    }
}

static void check_redis(struct vctx *v, const Portico__Config__V1__Redis *rd)
{
    if (!rd)
        return;
    if (set(rd->address)) {
        const char *colon = strrchr(rd->address, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == rd->address || !end || *end || port < 1 || port > 65535)
            verr(v, rd, "address", "redis", "\"%s\": expected host:port", rd->address);
    }
    check_range_set(v, rd, "connect_timeout_ms", "redis", rd->connect_timeout_ms, 1, 60000);
    check_range_set(v, rd, "max_backoff_ms", "redis", rd->max_backoff_ms, 50, 600000);
    if (set(rd->key_prefix) && strlen(rd->key_prefix) > 64)
        verr(v, rd, "key_prefix", "redis", "longer than 64 bytes");
    if (set(rd->key_prefix))
        for (const char *p = rd->key_prefix; *p; p++)
            if (*p <= 0x20 || *p >= 0x7f || *p == '{' || *p == '}') {
                verr(v, rd, "key_prefix", "redis",
                     "use printable characters other than space, '{' and '}'");
                break;
            }
    if (set(rd->password_env) && !getenv(rd->password_env))
        verr(v, rd, "password_env", "redis", "environment variable %s is not set",
             rd->password_env);
}

static void check_rate_limits(struct vctx *v, const Config *cfg, const struct name_set *routes)
{
    size_t n = cfg->n_rate_limit_rules;
    const char **names = pt_xmalloc((n ? n : 1) * sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        const Portico__Config__V1__RateLimitRule *r = cfg->rate_limit_rules[i];
        char path[64];
        snprintf(path, sizeof(path), "rate_limit_rules[%zu]", i);
        names[i] = r->name;
        const char *why = object_name_problem(r->name);
        if (why)
            verr(v, r, "name", path, "%s", why);
        if (set(r->route) && !name_set_has(routes, r->route))
            verr(v, r, "route", path, "no route named \"%s\"", r->route);
        if (!set(r->key_type)) {
            verr(v, r, "key_type", path,
                 "key_type is required (global, route, client_id, api_key, user_id, ip, "
                 "header:<name>, or several joined with '+')");
        } else {
            const char *p = r->key_type;
            for (;;) {
                const char *plus = strchr(p, '+');
                size_t len = plus ? (size_t)(plus - p) : strlen(p);
                if (!key_part_valid(p, len)) {
                    verr(v, r, "key_type", path,
                         "\"%s\": each part is one of global, route, client_id, api_key, "
                         "user_id, ip, header:<name>",
                         r->key_type);
                    break;
                }
                if (!plus)
                    break;
                p = plus + 1;
            }
        }
        if (r->limit < 1 || r->limit > 1000000000ull)
            verr(v, r, "limit", path, "%llu is out of range (1..1000000000)",
                 (unsigned long long)r->limit);
        if (r->window_seconds < 1 || r->window_seconds > 86400)
            verr(v, r, "window_seconds", path, "%u is out of range (1..86400)", r->window_seconds);
        check_max(v, r, "burst", path, r->burst, 1000000000ull);
        if ((int)r->action < 0 ||
            (int)r->action > PORTICO__CONFIG__V1__RATE_LIMIT_ACTION__RATE_LIMIT_ACTION_SHADOW)
            verr(v, r, "action", path, "unknown action %d", r->action);
        if ((int)r->algorithm < 0 ||
            (int)r->algorithm >
                PORTICO__CONFIG__V1__RATE_LIMIT_ALGORITHM__RATE_LIMIT_ALGORITHM_GCRA)
            verr(v, r, "algorithm", path, "unknown algorithm %d", r->algorithm);
        check_max(v, r, "max_queue_ms", path, r->max_queue_ms, 60000);
        check_rate_limit_enforcement(v, cfg, r, path);
    }
    check_redis(v, cfg->redis);
    check_unique(v, "rate_limit_rules", names, (void *const *)cfg->rate_limit_rules, n);
    free(names);
}

static void check_plugins(struct vctx *v, const Config *cfg, const struct name_set *routes)
{
    size_t n = cfg->n_plugins;
    const char **names = pt_xmalloc((n ? n : 1) * sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        const Portico__Config__V1__Plugin *p = cfg->plugins[i];
        char path[64];
        snprintf(path, sizeof(path), "plugins[%zu]", i);
        names[i] = p->name;
        const char *why = object_name_problem(p->name);
        if (why)
            verr(v, p, "name", path, "%s", why);
        if (!set(p->type))
            verr(v, p, "type", path, "type is required (a filter type)");
        else if (!pt_filter_type_find(pt_str_from_cstr(p->type)))
            verr(v, p, "type", path, "unknown filter type \"%s\"", p->type);
        if (p->global && p->n_routes)
            verr(v, p, "routes", path, "a global plugin runs on every route; remove routes");
        if (!p->global && !p->n_routes)
            verr(v, p, NULL, path, "bind the plugin: set global: true or list routes");
        for (size_t k = 0; k < p->n_routes; k++) {
            char field[64];
            snprintf(field, sizeof(field), "routes[%zu]", k);
            if (!name_set_has(routes, p->routes[k]))
                verr(v, p, field, path, "no route named \"%s\"", p->routes[k]);
        }
        check_listed_once(v, p, path, "routes", p->routes, p->n_routes);
        if (p->order < -1000000 || p->order > 1000000)
            verr(v, p, "order", path, "%d is out of range (-1000000..1000000)", p->order);
    }
    check_unique(v, "plugins", names, (void *const *)cfg->plugins, n);
    free(names);
}

static bool lower_hex(const char *s, size_t want)
{
    size_t n = strlen(s);
    if (n != want)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool tier_valid(const char *t)
{
    size_t n = strlen(t);
    if (n > 50)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '_' ||
              t[i] == '-'))
            return false;
    return true;
}

static void check_api_keys(struct vctx *v, const Config *cfg)
{
    size_t n = cfg->n_api_keys;
    const char **names = pt_xmalloc((n ? n : 1) * sizeof(*names));
    const char **hashes = pt_xmalloc((n ? n : 1) * sizeof(*hashes));
    for (size_t i = 0; i < n; i++) {
        const Portico__Config__V1__ApiKey *k = cfg->api_keys[i];
        char path[64];
        snprintf(path, sizeof(path), "api_keys[%zu]", i);
        names[i] = k->name;
        hashes[i] = k->key_hash;
        const char *why = object_name_problem(k->name);
        if (why)
            verr(v, k, "name", path, "%s", why);
        if (!set(k->client_id))
            verr(v, k, "client_id", path, "client_id is required");
        else if (strlen(k->client_id) > 100)
            verr(v, k, "client_id", path, "client_id is at most 100 bytes");
        if (set(k->client_name) && strlen(k->client_name) > 255)
            verr(v, k, "client_name", path, "client_name is at most 255 bytes");
        if (!lower_hex(k->key_hash, 64))
            verr(v, k, "key_hash", path,
                 "key_hash must be the lowercase hex SHA-256 of the key (64 characters)");
        if (strlen(k->key_prefix) != 8)
            verr(v, k, "key_prefix", path, "key_prefix must be the key's first 8 characters");
        if (!tier_valid(k->rate_limit_tier))
            verr(v, k, "rate_limit_tier", path,
                 "\"%s\": a tier uses lowercase letters, digits, '_' and '-' (at most 50)",
                 k->rate_limit_tier);
        for (size_t s = 0; s < k->n_scopes; s++) {
            char field[64];
            snprintf(field, sizeof(field), "scopes[%zu]", s);
            if (!set(k->scopes[s]) || strchr(k->scopes[s], ' '))
                verr(v, k, field, path, "a scope is a non-empty word without spaces");
        }
    }
    check_unique(v, "api_keys", names, (void *const *)cfg->api_keys, n);
    size_t *dup = first_dups(hashes, n);
    for (size_t i = 0; i < n; i++)
        if (dup[i] != SIZE_MAX && lower_hex(hashes[i], 64)) {
            char path[64];
            snprintf(path, sizeof(path), "api_keys[%zu]", i);
            verr(v, cfg->api_keys[i], "key_hash", path, "the same key as api_keys[%zu]", dup[i]);
        }
    free(dup);
    free(hashes);
    free(names);
}

static void check_admin(struct vctx *v, const Portico__Config__V1__Admin *a)
{
    if (!a)
        return;
    const char *p = "admin";
    if (set(a->address) && strcmp(a->address, "off") != 0) {
        struct pt_conf_address addr;
        const char *why;
        if (pt_conf_address_parse(a->address, &addr, &why) != 0)
            verr(v, a, "address", p, "\"%s\": %s", a->address, why);
    }
    if (set(a->token) && set(a->token_env))
        verr(v, a, "token_env", p, "set token or token_env, not both");
    if (set(a->token) && strlen(a->token) < 16)
        verr(v, a, "token", p, "a token is at least 16 characters");
    if (set(a->store) && strcmp(a->store, "file") != 0 &&
        strncmp(a->store, "postgres://", 11) != 0 && strncmp(a->store, "postgresql://", 13) != 0)
        verr(v, a, "store", p, "\"%s\": use file or a postgres:// URI", a->store);
    if (a->tls) {
        const Portico__Config__V1__AdminTls *t = a->tls;
        if (set(t->cert_file) != set(t->key_file))
            verr(v, t, set(t->cert_file) ? "key_file" : "cert_file", "admin.tls",
                 "cert_file and key_file go together");
        if (set(t->client_ca_file) && !set(t->cert_file))
            verr(v, t, "cert_file", "admin.tls", "client_ca_file needs cert_file and key_file");
        if (set(t->cert_file))
            check_readable(v, t, "cert_file", "admin.tls", t->cert_file);
        if (set(t->key_file))
            check_readable(v, t, "key_file", "admin.tls", t->key_file);
        if (set(t->client_ca_file))
            check_readable(v, t, "client_ca_file", "admin.tls", t->client_ca_file);
    }
}

/* ---- authentication (docs/auth.md) ---- */

#define MAX_AUTH_FLUSH_MS 3600000u
#define MIN_AUTH_FLUSH_MS 1000u

/* A header the gateway may set or read as a credential: a token that is
 * not one HTTP or the gateway already gives a meaning to. */
static const char *auth_header_problem(const char *h)
{
    static const char *const taken[] = {"host",
                                        "content-length",
                                        "content-type",
                                        "transfer-encoding",
                                        "connection",
                                        "te",
                                        "upgrade",
                                        "authorization",
                                        "cookie",
                                        "x-forwarded-for",
                                        "x-request-id",
                                        "keep-alive",
                                        "proxy-connection",
                                        "trailer"};
    if (!pt_conf_is_token(h))
        return "is not a valid header name";
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
        if (strcasecmp(h, taken[i]) == 0)
            return "is a header HTTP or the gateway already uses";
    return NULL;
}

/* The same header name as the gateway compares them (case and '-'/'_'). */
static bool header_alike(const char *a, const char *b)
{
    if (strlen(a) != strlen(b))
        return false;
    for (; *a; a++, b++) {
        char x = (char)tolower((unsigned char)*a), y = (char)tolower((unsigned char)*b);
        if ((x == '_' ? '-' : x) != (y == '_' ? '-' : y))
            return false;
    }
    return true;
}

static void check_auth(struct vctx *v, const Portico__Config__V1__Auth *a)
{
    if (!a)
        return;
    const char *p = "auth";
    const char *names[3] = {a->api_key_header, a->user_header, a->client_id_header};
    const char *fields[3] = {"api_key_header", "user_header", "client_id_header"};
    for (int i = 0; i < 3; i++) {
        if (!set(names[i]))
            continue;
        const char *why = auth_header_problem(names[i]);
        if (why)
            verr(v, a, fields[i], p, "\"%s\" %s", names[i], why);
        for (int k = 0; k < i; k++)
            if (set(names[k]) && header_alike(names[i], names[k]))
                verr(v, a, fields[i], p, "\"%s\" is also %s", names[i], fields[k]);
    }
    if (a->usage_flush_ms &&
        (a->usage_flush_ms < MIN_AUTH_FLUSH_MS || a->usage_flush_ms > MAX_AUTH_FLUSH_MS))
        verr(v, a, "usage_flush_ms", p, "%u is out of range (%u..%u)", a->usage_flush_ms,
             MIN_AUTH_FLUSH_MS, MAX_AUTH_FLUSH_MS);
    if (set(a->realm)) {
        bool ok = strlen(a->realm) <= 100;
        for (const char *c = a->realm; ok && *c; c++)
            ok = (unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f && *c != '"' && *c != '\\';
        if (!ok)
            verr(v, a, "realm", p,
                 "a realm is at most 100 printable ASCII characters without '\"' or '\\'");
    }
}

static bool auth_word_ok(const char *s)
{
    if (!set(s) || strlen(s) > 200)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void check_auth_words(struct vctx *v, const void *msg, const char *path, const char *field,
                             const char *what, char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char f[64];
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (!auth_word_ok(words[i]))
            verr(v, msg, f, path, "a %s is a non-empty word of printable ASCII (at most 200)",
                 what);
    }
    check_listed_once(v, msg, path, field, words, n);
}

static void check_route_auth(struct vctx *v, const Route *r, const char *route_path)
{
    const Portico__Config__V1__RouteAuth *a = r->auth;
    if (!a)
        return;
    char path[160];
    snprintf(path, sizeof(path), "%s%sauth", route_path, *route_path ? "." : "");
    for (size_t i = 0; i < a->n_methods; i++) {
        char f[32];
        snprintf(f, sizeof(f), "methods[%zu]", i);
        if (!set(a->methods[i]))
            verr(v, a, f, path, "a method name is required");
    }
    check_listed_once(v, a, path, "methods", a->methods, a->n_methods);
    if (!a->n_methods && !a->allow_anonymous)
        verr(v, a, "methods", path, "name at least one method (or set allow_anonymous: true)");
    if (!a->n_methods && (a->n_required_scopes || a->n_roles))
        verr(v, a, "methods", path, "required_scopes and roles need a method");
    check_auth_words(v, a, path, "required_scopes", "scope", a->required_scopes,
                     a->n_required_scopes);
    check_auth_words(v, a, path, "roles", "role", a->roles, a->n_roles);
    if (set(a->scopes_match) && strcmp(a->scopes_match, "all") != 0 &&
        strcmp(a->scopes_match, "any") != 0)
        verr(v, a, "scopes_match", path, "\"%s\": use all or any", a->scopes_match);
    else if (set(a->scopes_match) && !a->n_required_scopes)
        verr(v, a, "scopes_match", path, "scopes_match needs required_scopes");
    for (size_t i = 0; i < a->n_claim_headers; i++) {
        const Portico__Config__V1__RouteAuth__ClaimHeadersEntry *e = a->claim_headers[i];
        char f[300];
        snprintf(f, sizeof(f), "claim \"%s\"", e->key ? e->key : "");
        if (!set(e->key))
            verr(v, a, "claim_headers", path, "a claim name is required");
        const char *why = set(e->value) ? auth_header_problem(e->value) : "is empty";
        if (why)
            verr(v, a, "claim_headers", path, "%s: header \"%s\" %s", f, e->value ? e->value : "",
                 why);
        for (size_t k = 0; k < i && !why; k++)
            if (set(a->claim_headers[k]->value) &&
                header_alike(e->value, a->claim_headers[k]->value))
                verr(v, a, "claim_headers", path, "%s: header \"%s\" is used twice", f, e->value);
    }
}

/* ---- entry points ---- */

static void append(char *buf, size_t n, size_t *j, const char *s)
{
    size_t len = strlen(s);
    if (*j + 1 >= n)
        return;
    size_t room = n - 1 - *j;
    if (len > room)
        len = room;
    memcpy(buf + *j, s, len);
    *j += len;
    buf[*j] = '\0';
}

void pt_conf_route_name(const Route *r, char *buf, size_t n)
{
    if (!buf || n == 0)
        return;
    size_t j = 0;
    buf[0] = '\0';
    if (set(r->name)) {
        append(buf, n, &j, r->name);
        return;
    }
    append(buf, n, &j, set(r->path) ? r->path : set(r->path_prefix) ? r->path_prefix : "");
    for (size_t i = 0; i < r->n_methods; i++) {
        append(buf, n, &j, i ? "," : " ");
        append(buf, n, &j, r->methods[i] ? r->methods[i] : "");
    }
}

int pt_conf_validate(const struct pt_conf *c, struct pt_diag *diag)
{
    const Config *cfg = pt_conf_config(c);
    if (!cfg) {
        pt_diag_addf(diag, c ? pt_conf_name(c) : NULL, NULL, "not a portico configuration");
        return PT_ERR_CONFIG;
    }
    struct vctx v = {c, diag, 0};
    check_max(&v, cfg, "workers", "", cfg->workers, 1024);
    check_max(&v, cfg, "drain_timeout_ms", "", cfg->drain_timeout_ms, MAX_LONG_TIMEOUT_MS);
    check_listeners(&v, cfg);
    check_services(&v, cfg);
    check_routes(&v, cfg);
    check_limits(&v, cfg->limits);
    check_access_log(&v, cfg->access_log);
    check_filters(&v, cfg->filters, cfg->n_filters, "");
    struct name_set routes;
    route_names(cfg, &routes);
    check_rate_limits(&v, cfg, &routes);
    check_plugins(&v, cfg, &routes);
    name_set_fini(&routes);
    check_api_keys(&v, cfg);
    check_admin(&v, cfg->admin);
    check_dns(&v, cfg->dns);
    check_auth(&v, cfg->auth);
    pt_conf_validate_auth_ext(c, cfg, diag, &v.errors);
    return v.errors ? PT_ERR_CONFIG : 0;
}
