/*
 * PostgreSQL store, the server-independent half: kinds, diff by name and the
 * projection of an object onto its table's columns.
 *
 * The projection is derived from the message only, so rewriting a row from
 * its spec always gives the same columns. JSON is built here (not by the
 * server) because JSONB and TEXT[] parameters are sent as JSON text and
 * converted by the statement; nothing from an object ever becomes SQL.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "google/protobuf/struct.pb-c.h"
#include "store/pg_int.h"

/* Repeated TEXT[] from a JSON array parameter, keeping its order. */
#define TEXT_ARRAY(n)                                                                           \
    "ARRAY(SELECT e FROM jsonb_array_elements_text($" #n "::jsonb) WITH ORDINALITY AS t(e, i) " \
    "ORDER BY i)"

const struct pt_store_pg_kind_info pt_store_pg_kinds[PT_STORE_PG_NKINDS] = {
    [PT_STORE_PG_SERVICES] =
        {
            .table = "services",
            .field = "services",
            .desc = &portico__config__v1__service__descriptor,
            .nparams = 8,
            .spec_param = 7,
            .upsert_sql =
                "INSERT INTO services (name, protocol, load_balancer, instances, health_check, "
                "circuit_breaker, version, spec) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, "
                "$6::jsonb, $7::bigint, $8::bytea) ON CONFLICT (name) DO UPDATE SET "
                "protocol = EXCLUDED.protocol, load_balancer = EXCLUDED.load_balancer, "
                "instances = EXCLUDED.instances, health_check = EXCLUDED.health_check, "
                "circuit_breaker = EXCLUDED.circuit_breaker, version = EXCLUDED.version, "
                "spec = EXCLUDED.spec, updated_at = now()",
        },
    [PT_STORE_PG_ROUTES] =
        {
            .table = "routes",
            .field = "routes",
            .desc = &portico__config__v1__route__descriptor,
            .nparams = 12,
            .spec_param = 11,
            .upsert_sql =
                "INSERT INTO routes (name, path, methods, host, service_id, "
                "strip_prefix, timeout_ms, retry_count, priority, enabled, version, "
                "spec) VALUES ($1, $2, " TEXT_ARRAY(
                    3) ", $4, "
                       "(SELECT id FROM services WHERE name = $5), $6::boolean, "
                       "$7::integer, $8::integer, $9::integer, $10::boolean, $11::bigint, "
                       "$12::bytea) ON CONFLICT (name) DO UPDATE SET "
                       "path = EXCLUDED.path, methods = EXCLUDED.methods, "
                       "host = EXCLUDED.host, service_id = EXCLUDED.service_id, "
                       "strip_prefix = EXCLUDED.strip_prefix, "
                       "timeout_ms = EXCLUDED.timeout_ms, retry_count = EXCLUDED.retry_count, "
                       "priority = EXCLUDED.priority, enabled = EXCLUDED.enabled, "
                       "version = EXCLUDED.version, spec = EXCLUDED.spec, updated_at = now()",
        },
    [PT_STORE_PG_RULES] =
        {
            .table = "rate_limit_rules",
            .field = "rate_limit_rules",
            .desc = &portico__config__v1__rate_limit_rule__descriptor,
            .nparams = 11,
            .spec_param = 10,
            .upsert_sql =
                "INSERT INTO rate_limit_rules (name, route_id, key_type, limit_value, "
                "window_seconds, burst_size, action, algorithm, enabled, version, spec) "
                "VALUES ($1, (SELECT id FROM routes WHERE name = $2), $3, $4::bigint, "
                "$5::integer, $6::bigint, $7, $8, $9::boolean, $10::bigint, $11::bytea) "
                "ON CONFLICT (name) DO UPDATE SET route_id = EXCLUDED.route_id, "
                "key_type = EXCLUDED.key_type, limit_value = EXCLUDED.limit_value, "
                "window_seconds = EXCLUDED.window_seconds, burst_size = EXCLUDED.burst_size, "
                "action = EXCLUDED.action, algorithm = EXCLUDED.algorithm, "
                "enabled = EXCLUDED.enabled, version = EXCLUDED.version, spec = EXCLUDED.spec, "
                "updated_at = now()",
        },
    [PT_STORE_PG_PLUGINS] =
        {
            .table = "plugins",
            .field = "plugins",
            .desc = &portico__config__v1__plugin__descriptor,
            .nparams = 9,
            .spec_param = 8,
            .upsert_sql =
                "INSERT INTO plugins (name, type, config, routes, global, enabled, ord, "
                "version, spec) VALUES ($1, $2, $3::jsonb, " TEXT_ARRAY(
                    4) ", "
                       "$5::boolean, $6::boolean, $7::integer, $8::bigint, $9::bytea) "
                       "ON CONFLICT (name) DO UPDATE SET type = EXCLUDED.type, "
                       "config = EXCLUDED.config, routes = EXCLUDED.routes, "
                       "global = EXCLUDED.global, enabled = EXCLUDED.enabled, "
                       "ord = EXCLUDED.ord, version = EXCLUDED.version, spec = EXCLUDED.spec, "
                       "updated_at = now()",
        },
    [PT_STORE_PG_API_KEYS] =
        {
            .table = "api_keys",
            .field = "api_keys",
            .desc = &portico__config__v1__api_key__descriptor,
            .nparams = 13,
            .spec_param = 10,
            .upsert_sql =
                "INSERT INTO api_keys (name, key_hash, key_prefix, client_id, client_name, "
                "scopes, rate_limit_tier, expires_at, enabled, version, spec, created_at, "
                "last_used_at) VALUES ($1, $2, $3, $4, $5, " TEXT_ARRAY(
                    6) ", $7, "
                       "timestamptz 'epoch' + $8::bigint * interval '1 microsecond', $9::boolean, "
                       "$10::bigint, $11::bytea, "
                       "coalesce(timestamptz 'epoch' + $12::bigint * interval '1 microsecond', "
                       "now()), "
                       "timestamptz 'epoch' + $13::bigint * interval '1 microsecond') "
                       "ON CONFLICT (name) DO UPDATE SET key_hash = EXCLUDED.key_hash, "
                       "key_prefix = EXCLUDED.key_prefix, client_id = EXCLUDED.client_id, "
                       "client_name = EXCLUDED.client_name, scopes = EXCLUDED.scopes, "
                       "rate_limit_tier = EXCLUDED.rate_limit_tier, expires_at = "
                       "EXCLUDED.expires_at, "
                       "enabled = EXCLUDED.enabled, version = EXCLUDED.version, spec = "
                       "EXCLUDED.spec, "
                       "created_at = CASE WHEN $12::bigint IS NULL THEN api_keys.created_at "
                       "ELSE EXCLUDED.created_at END, last_used_at = "
                       "GREATEST(api_keys.last_used_at, "
                       "EXCLUDED.last_used_at)",
        },
};

size_t pt_store_pg_items(const Portico__Config__V1__Config *c, enum pt_store_pg_kind k,
                         ProtobufCMessage *const **items)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
        &portico__config__v1__config__descriptor, pt_store_pg_kinds[k].field);
    const char *base = (const char *)c;
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    *items = *(ProtobufCMessage *const *const *)(base + f->offset);
    return n;
}

const char *pt_store_pg_name(const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "name");
    const char *name = *(char *const *)((const char *)m + f->offset);
    return name ? name : "";
}

/* ---- diff ---- */

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(pt_store_pg_name(*(ProtobufCMessage *const *)a),
                  pt_store_pg_name(*(ProtobufCMessage *const *)b));
}

/* A sorted copy of the items; 0, or PT_ERR_INVALID for a missing or repeated name. */
static int sorted(const Portico__Config__V1__Config *c, enum pt_store_pg_kind k, const char *which,
                  ProtobufCMessage ***out, size_t *n, char *err, size_t errlen)
{
    ProtobufCMessage *const *items = NULL;
    *n = c ? pt_store_pg_items(c, k, &items) : 0;
    *out = pt_xmalloc((*n ? *n : 1) * sizeof(**out));
    if (*n)
        memcpy(*out, items, *n * sizeof(**out));
    qsort(*out, *n, sizeof(**out), cmp_by_name);
    for (size_t i = 0; i < *n; i++) {
        const char *name = pt_store_pg_name((*out)[i]);
        if (!*name) {
            pt_store_errf(err, errlen, "%s: an object of %s has no name", which,
                          pt_store_pg_kinds[k].field);
            goto bad;
        }
        if (i && strcmp(name, pt_store_pg_name((*out)[i - 1])) == 0) {
            pt_store_errf(err, errlen, "%s: %s \"%s\" appears twice", which,
                          pt_store_pg_kinds[k].field, name);
            goto bad;
        }
    }
    return 0;
bad:
    free(*out);
    *out = NULL;
    return PT_ERR_INVALID;
}

int pt_store_pg_diff(const Portico__Config__V1__Config *old,
                     const Portico__Config__V1__Config *next, enum pt_store_pg_kind k,
                     struct pt_store_pg_change **out, size_t *n, char *err, size_t errlen)
{
    ProtobufCMessage **a, **b;
    size_t na, nb;
    int rc = sorted(old, k, "old configuration", &a, &na, err, errlen);
    if (rc != 0)
        return rc;
    rc = sorted(next, k, "new configuration", &b, &nb, err, errlen);
    if (rc != 0) {
        free(a);
        return rc;
    }
    struct pt_store_pg_change *ch = pt_xmalloc((na + nb + 1) * sizeof(*ch));
    size_t i = 0, j = 0, m = 0;
    while (i < na || j < nb) {
        int c = i == na ? 1 : j == nb ? -1 : strcmp(pt_store_pg_name(a[i]), pt_store_pg_name(b[j]));
        if (c < 0) {
            ch[m++] = (struct pt_store_pg_change){PT_STORE_PG_DELETE, a[i++], NULL};
        } else if (c > 0) {
            ch[m++] = (struct pt_store_pg_change){PT_STORE_PG_ADD, NULL, b[j++]};
        } else {
            if (!pt_store_msg_equal(a[i], b[j]))
                ch[m++] = (struct pt_store_pg_change){PT_STORE_PG_CHANGE, a[i], b[j]};
            i++;
            j++;
        }
    }
    free(a);
    free(b);
    *out = ch;
    *n = m;
    return 0;
}

/* ---- JSON ---- */

struct json {
    char *p;
    size_t len, cap;
};

static void put(struct json *j, const char *s, size_t n)
{
    if (j->len + n + 1 > j->cap) {
        j->cap = (j->len + n + 1) * 2;
        j->p = pt_xrealloc(j->p, j->cap);
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
    j->p[j->len] = '\0';
}

static void puts_(struct json *j, const char *s)
{
    put(j, s, strlen(s));
}

static void putf(struct json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct json *j, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    put(j, buf, n < 0 ? 0 : (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* A JSON string. Bytes >= 0x80 pass through: protobuf strings are UTF-8, and
 * the server rejects a string that is not, which fails the commit cleanly. */
static void put_str(struct json *j, const char *s)
{
    put(j, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"':
            puts_(j, "\\\"");
            break;
        case '\\':
            puts_(j, "\\\\");
            break;
        case '\n':
            puts_(j, "\\n");
            break;
        case '\r':
            puts_(j, "\\r");
            break;
        case '\t':
            puts_(j, "\\t");
            break;
        default:
            if (*c < 0x20)
                putf(j, "\\u%04x", *c);
            else
                put(j, (const char *)c, 1);
        }
    }
    put(j, "\"", 1);
}

char *pt_store_pg_key_use_json(const struct pt_store_key_use *v, size_t n)
{
    struct json j = {0};
    put(&j, "[", 1);
    for (size_t i = 0; i < n; i++) {
        puts_(&j, i ? ",{\"n\":" : "{\"n\":");
        put_str(&j, v[i].name);
        putf(&j, ",\"us\":%llu}", (unsigned long long)(v[i].used_ns / 1000u));
    }
    put(&j, "]", 1);
    return j.p;
}

static void put_strings(struct json *j, size_t n, char *const *v)
{
    put(j, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(j, ",", 1);
        put_str(j, v[i]);
    }
    put(j, "]", 1);
}

static void put_value(struct json *j, const Google__Protobuf__Value *v, int depth);

static void put_struct(struct json *j, const Google__Protobuf__Struct *s, int depth)
{
    put(j, "{", 1);
    for (size_t i = 0; s && i < s->n_fields; i++) {
        if (i)
            put(j, ",", 1);
        put_str(j, s->fields[i]->key ? s->fields[i]->key : "");
        put(j, ":", 1);
        put_value(j, s->fields[i]->value, depth + 1);
    }
    put(j, "}", 1);
}

/* protobuf-c bounds the nesting of what it unpacks only by memory, so the
 * depth is capped here; deeper values are written as null. */
#define MAX_JSON_DEPTH 64

static void put_value(struct json *j, const Google__Protobuf__Value *v, int depth)
{
    if (!v || depth > MAX_JSON_DEPTH) {
        puts_(j, "null");
        return;
    }
    switch (v->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
        if (isfinite(v->number_value))
            putf(j, "%.17g", v->number_value);
        else
            puts_(j, "null");
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
        put_str(j, v->string_value ? v->string_value : "");
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
        puts_(j, v->bool_value ? "true" : "false");
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        put_struct(j, v->struct_value, depth);
        break;
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        put(j, "[", 1);
        for (size_t i = 0; v->list_value && i < v->list_value->n_values; i++) {
            if (i)
                put(j, ",", 1);
            put_value(j, v->list_value->values[i], depth + 1);
        }
        put(j, "]", 1);
        break;
    default:
        puts_(j, "null");
    }
}

char *pt_store_pg_struct_json(const ProtobufCMessage *s)
{
    struct json j = {0};
    put_struct(&j, (const Google__Protobuf__Struct *)s, 0);
    return j.p;
}

/* ---- projection ---- */

/* The lower-case enum value name without its type prefix, the form the YAML
 * file uses ("grpc"); unset values are written as the documented default. */
static char *enum_text(const ProtobufCEnumDescriptor *d, int v, const char *unset)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    if (!ev || v == 0)
        return pt_xstrdup(unset);
    /* The prefix is the upper-case type name: SERVICE_PROTOCOL_ for ServiceProtocol. */
    const char *name = ev->name, *zero = d->values[0].name;
    size_t plen = 0;
    while (name[plen] && name[plen] == zero[plen])
        plen++;
    while (plen && name[plen - 1] != '_')
        plen--;
    char *out = pt_xstrdup(name + plen);
    for (char *c = out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return out;
}

static char *text(const char *s)
{
    return pt_xstrdup(s ? s : "");
}

static char *text_or_null(const char *s)
{
    return s && *s ? pt_xstrdup(s) : NULL;
}

static char *num(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *num(const char *fmt, ...)
{
    char buf[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return pt_xstrdup(buf);
}

static char *boolean(bool b)
{
    return pt_xstrdup(b ? "true" : "false");
}

static char *enabled(const Google__Protobuf__BoolValue *v)
{
    return boolean(v ? v->value : true); /* "Default true." */
}

static char *strings(size_t n, char *const *v)
{
    struct json j = {0};
    put_strings(&j, n, v);
    return j.p;
}

/* Microseconds since the epoch, or NULL for an unset timestamp. */
static char *micros(const Google__Protobuf__Timestamp *t)
{
    if (!t)
        return NULL;
    return num("%" PRId64, t->seconds * 1000000 + t->nanos / 1000);
}

static char *service_instances(const Portico__Config__V1__Service *s)
{
    struct json j = {0};
    put(&j, "[", 1);
    for (size_t i = 0; i < s->n_instances; i++) {
        const Portico__Config__V1__Instance *in = s->instances[i];
        if (i)
            put(&j, ",", 1);
        puts_(&j, "{\"host\":");
        put_str(&j, in->host ? in->host : "");
        putf(&j, ",\"port\":%u,\"weight\":%u}", in->port, in->weight ? in->weight : 1);
    }
    put(&j, "]", 1);
    return j.p;
}

static char *health_check(const Portico__Config__V1__HealthCheck *h)
{
    if (!h)
        return NULL;
    struct json j = {0};
    puts_(&j, "{\"path\":");
    put_str(&j, h->path ? h->path : "");
    putf(&j, ",\"interval_ms\":%u,\"timeout_ms\":%u", h->interval_ms, h->timeout_ms);
    putf(&j, ",\"healthy_threshold\":%u,\"unhealthy_threshold\":%u}", h->healthy_threshold,
         h->unhealthy_threshold);
    return j.p;
}

static char *circuit_breaker(const Portico__Config__V1__CircuitBreaker *c)
{
    if (!c)
        return NULL;
    struct json j = {0};
    putf(&j, "{\"failure_threshold\":%u,\"success_threshold\":%u", c->failure_threshold,
         c->success_threshold);
    putf(&j, ",\"timeout_ms\":%u,\"half_open_max_calls\":%u", c->timeout_ms,
         c->half_open_max_calls);
    putf(&j, ",\"sliding_window_size\":%u,\"failure_rate_threshold\":%u}", c->sliding_window_size,
         c->failure_rate_threshold);
    return j.p;
}

void pt_store_pg_project(enum pt_store_pg_kind k, const ProtobufCMessage *m,
                         struct pt_store_pg_params *p)
{
    memset(p, 0, sizeof(*p));
    char **v = p->values;
    switch (k) {
    case PT_STORE_PG_SERVICES: {
        const Portico__Config__V1__Service *s = (const void *)m;
        v[0] = text(s->name);
        v[1] = enum_text(&portico__config__v1__service_protocol__descriptor, (int)s->protocol,
                         "http1");
        v[2] = enum_text(&portico__config__v1__lb_algorithm__descriptor, (int)s->lb_algorithm,
                         "round_robin");
        v[3] = service_instances(s);
        v[4] = health_check(s->health_check);
        v[5] = circuit_breaker(s->circuit_breaker);
        v[6] = num("%" PRIu64, s->version);
        break;
    }
    case PT_STORE_PG_ROUTES: {
        const Portico__Config__V1__Route *r = (const void *)m;
        v[0] = text(r->name);
        v[1] = text(r->path && *r->path ? r->path : r->path_prefix);
        v[2] = strings(r->n_methods, r->methods);
        v[3] = text_or_null(r->host);
        v[4] = text_or_null(r->service);
        v[5] = boolean(r->strip_prefix);
        v[6] = num("%u", r->timeout_ms);
        v[7] = num("%u", r->retry_count);
        v[8] = num("%d", r->priority);
        v[9] = enabled(r->enabled);
        v[10] = num("%" PRIu64, r->version);
        break;
    }
    case PT_STORE_PG_RULES: {
        const Portico__Config__V1__RateLimitRule *r = (const void *)m;
        v[0] = text(r->name);
        v[1] = text_or_null(r->route);
        v[2] = text(r->key_type);
        v[3] = num("%" PRIu64, r->limit);
        v[4] = num("%u", r->window_seconds);
        v[5] = num("%" PRIu64, r->burst);
        v[6] = enum_text(&portico__config__v1__rate_limit_action__descriptor, (int)r->action,
                         "reject");
        v[7] = enum_text(&portico__config__v1__rate_limit_algorithm__descriptor, (int)r->algorithm,
                         "token_bucket");
        v[8] = enabled(r->enabled);
        v[9] = num("%" PRIu64, r->version);
        break;
    }
    case PT_STORE_PG_PLUGINS: {
        const Portico__Config__V1__Plugin *pl = (const void *)m;
        v[0] = text(pl->name);
        v[1] = text(pl->type);
        v[2] = pt_store_pg_struct_json(pl->config ? &pl->config->base : NULL);
        v[3] = strings(pl->n_routes, pl->routes);
        v[4] = boolean(pl->global);
        v[5] = enabled(pl->enabled);
        v[6] = num("%d", pl->order);
        v[7] = num("%" PRIu64, pl->version);
        break;
    }
    case PT_STORE_PG_API_KEYS: {
        const Portico__Config__V1__ApiKey *a = (const void *)m;
        v[0] = text(a->name);
        v[1] = text(a->key_hash);
        v[2] = text(a->key_prefix);
        v[3] = text(a->client_id);
        v[4] = text_or_null(a->client_name);
        v[5] = strings(a->n_scopes, a->scopes);
        v[6] = text_or_null(a->rate_limit_tier);
        v[7] = micros(a->expires_at);
        v[8] = enabled(a->enabled);
        v[9] = num("%" PRIu64, a->version);
        /* v[10] is the spec, below */
        v[11] = micros(a->created_at);
        v[12] = micros(a->last_used_at);
        break;
    }
    default:
        abort();
    }
    /* The spec: the packed message, sent as binary bytea. */
    int spec = pt_store_pg_kinds[k].spec_param;
    size_t len = protobuf_c_message_get_packed_size(m);
    v[spec] = pt_xmalloc(len ? len : 1);
    protobuf_c_message_pack(m, (uint8_t *)v[spec]);
    p->lengths[spec] = (int)len;
    p->formats[spec] = 1;
    p->n = pt_store_pg_kinds[k].nparams;
}

void pt_store_pg_params_fini(struct pt_store_pg_params *p)
{
    for (int i = 0; i < PT_STORE_PG_MAX_PARAMS; i++) {
        free(p->values[i]);
        p->values[i] = NULL;
    }
}
