/*
 * A route's ABAC rule bound to a request (see rule.h): the lookup callback
 * of pt_expr_eval() over the exchange, the identity and its claims.
 */
#include "auth/rule.h"

#include <math.h>
#include <string.h>

#include "auth/bearer.h"
#include "core/strutil.h"
#include "http/headers.h"

#define MAX_QUERY_PARAMS 64
#define MAX_CLAIM_LIST 256

struct qparam {
    struct pt_str name, value; /* decoded, exchange memory */
};

struct binder {
    struct pt_exchange *x;
    const struct pt_identity_full *id;
    const json_t *claims;
    bool query_parsed;
    struct qparam *q;
    size_t nq;
};

static bool str_value(struct pt_str s, struct pt_expr_value *out)
{
    out->type = PT_EXPR_VTYPE_STRING;
    out->s = s;
    return true;
}

static bool claim_value(struct binder *b, const struct pt_str *keys, size_t nkeys,
                        struct pt_expr_value *out)
{
    const json_t *v = b->claims;
    for (size_t i = 0; i < nkeys; i++) {
        if (!v || !json_is_object(v))
            return false;
        v = json_object_getn(v, keys[i].ptr, keys[i].len);
    }
    if (!v)
        return false;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return str_value((struct pt_str){json_string_value(v), json_string_length(v)}, out);
    case JSON_INTEGER:
        out->type = PT_EXPR_VTYPE_INT;
        out->i = (int64_t)json_integer_value(v);
        return true;
    case JSON_REAL: {
        double d = json_real_value(v);
        if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
            return false;
        out->type = PT_EXPR_VTYPE_INT;
        out->i = (int64_t)d;
        return true;
    }
    case JSON_TRUE:
    case JSON_FALSE:
        out->type = PT_EXPR_VTYPE_BOOL;
        out->b = json_is_true(v);
        return true;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (n > MAX_CLAIM_LIST)
            return false;
        struct pt_str *items = n ? pt_exchange_alloc(b->x, n * sizeof(*items)) : NULL;
        if (n && !items)
            return false;
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(v, i);
            if (!json_is_string(e))
                return false;
            items[i] = (struct pt_str){json_string_value(e), json_string_length(e)};
        }
        out->type = PT_EXPR_VTYPE_LIST;
        out->list = (struct pt_expr_list){items, n};
        return true;
    }
    default:
        return false;
    }
}

static bool identity_value(struct binder *b, struct pt_str key, struct pt_expr_value *out)
{
    const struct pt_identity_full *id = b->id;
    if (pt_str_eq(key, PT_STR("scopes")) || pt_str_eq(key, PT_STR("roles"))) {
        unsigned l = key.ptr[0] == 's' ? PT_IDENTITY_SCOPES : PT_IDENTITY_ROLES;
        out->type = PT_EXPR_VTYPE_LIST;
        out->list = (struct pt_expr_list){id->list[l], id->n[l]};
        return true;
    }
    struct pt_str v = PT_STR_NULL;
    if (pt_str_eq(key, PT_STR("subject")))
        v = id->subject.len        ? id->subject
            : id->base.user_id.len ? id->base.user_id
                                   : id->base.client_id;
    else if (pt_str_eq(key, PT_STR("client_id")))
        v = id->base.client_id;
    else if (pt_str_eq(key, PT_STR("tier")))
        v = id->base.tier;
    else if (pt_str_eq(key, PT_STR("method")))
        v = id->method;
    else
        return false;
    return v.len ? str_value(v, out) : false;
}

static void parse_query(struct binder *b)
{
    b->query_parsed = true;
    struct pt_str q = b->x->req.query;
    if (!q.len)
        return;
    b->q = pt_exchange_alloc(b->x, MAX_QUERY_PARAMS * sizeof(*b->q));
    if (!b->q)
        return;
    for (size_t pos = 0; pos < q.len && b->nq < MAX_QUERY_PARAMS;) {
        size_t end = pos;
        while (end < q.len && q.ptr[end] != '&')
            end++;
        struct pt_str part = {q.ptr + pos, end - pos};
        pos = end + 1;
        if (!part.len)
            continue;
        const char *eq = memchr(part.ptr, '=', part.len);
        struct pt_str rawn = {part.ptr, eq ? (size_t)(eq - part.ptr) : part.len};
        struct pt_str n, v = PT_STR_NULL;
        if (pt_auth_form_decode(b->x, rawn, &n) != 0)
            continue; /* badly encoded: as if absent */
        if (eq &&
            pt_auth_form_decode(b->x, (struct pt_str){eq + 1, part.len - rawn.len - 1}, &v) != 0)
            continue;
        b->q[b->nq++] = (struct qparam){n, v};
    }
}

static bool query_value(struct binder *b, struct pt_str key, struct pt_expr_value *out)
{
    if (!b->query_parsed)
        parse_query(b);
    for (size_t i = 0; i < b->nq; i++)
        if (pt_str_eq(b->q[i].name, key))
            return str_value(b->q[i].value, out);
    return false;
}

static bool lookup(void *ctx, enum pt_expr_root root, const struct pt_str *keys, size_t nkeys,
                   struct pt_expr_value *out)
{
    struct binder *b = ctx;
    struct pt_exchange *x = b->x;
    struct pt_str v;
    switch (root) {
    case PT_EXPR_ROOT_CLAIMS:
        return claim_value(b, keys, nkeys, out);
    case PT_EXPR_ROOT_IDENTITY:
        return nkeys == 1 && identity_value(b, keys[0], out);
    case PT_EXPR_ROOT_PATH:
        return nkeys == 1 && pt_exchange_path_param(x, keys[0], &v) && str_value(v, out);
    case PT_EXPR_ROOT_HEADER:
        return nkeys == 1 && pt_headers_find(&x->req.headers, keys[0], &v) && str_value(v, out);
    case PT_EXPR_ROOT_QUERY:
        return nkeys == 1 && query_value(b, keys[0], out);
    case PT_EXPR_ROOT_REQUEST:
        if (nkeys != 1)
            return false;
        if (pt_str_eq(keys[0], PT_STR("method")))
            return str_value(x->req.method, out);
        if (pt_str_eq(keys[0], PT_STR("path")))
            return str_value(x->req.path, out);
        if (pt_str_eq(keys[0], PT_STR("host")))
            return x->req.authority.len && str_value(x->req.authority, out);
        return false;
    case PT_EXPR_ROOT_CLIENT_IP:
        if (!x->conn || !x->conn->peer_ip[0])
            return false;
        return str_value(pt_str_from_cstr(x->conn->peer_ip), out);
    }
    return false;
}

bool pt_auth_rule_allows(const struct pt_expr *rule, struct pt_exchange *x,
                         const struct pt_identity_full *id, const json_t *claims)
{
    struct binder b = {.x = x, .id = id, .claims = claims};
    return pt_expr_eval(rule, lookup, &b);
}
