/*
 * The matcher table: compile every (HTTP method, template) of a set of
 * gRPC methods into one trie of path segments, then match requests on it.
 *
 * A trie node has literal edges (sorted, binary search on the canonical
 * segment), one edge for single-segment matches ("*" and variables), the
 * routes whose template ends there and the routes whose "**" starts there.
 * The walk tries the literal edge, then the single edge, then the "**"
 * routes, and stops at the first route of the request's method and verb:
 * that order is the precedence httprule.h documents. Each node is reached by
 * one path of edges, so a walk visits every node at most once, and a full
 * walk (collecting the methods for a 405) costs at most the trie's size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transcode/httprule_int.h"

#include "core/arena.h"
#include "portico/errors.h"

struct pt_httprule_edge {
    struct pt_str seg;
    struct pt_httprule_node *child;
};

struct route_list {
    const struct pt_httprule_route **v;
    uint32_t n;
    uint32_t cap;
};

struct pt_httprule_node {
    struct pt_httprule_edge *lits; /* sorted by (length, bytes) */
    uint32_t nlits;
    uint32_t cap_lits;
    struct pt_httprule_node *single;
    struct route_list ends;
    struct route_list rests;
};

static int seg_cmp(struct pt_str a, struct pt_str b)
{
    if (a.len != b.len)
        return a.len < b.len ? -1 : 1;
    return a.len ? memcmp(a.ptr, b.ptr, a.len) : 0;
}

/* ---- compile ---- */

static void node_free(struct pt_httprule_node *n)
{
    if (!n)
        return;
    for (uint32_t i = 0; i < n->nlits; i++)
        node_free(n->lits[i].child);
    node_free(n->single);
    free(n->lits);
    free(n->ends.v);
    free(n->rests.v);
    free(n);
}

static void route_fini(struct pt_httprule_route *r)
{
    pt_httprule_template_fini(&r->tmpl);
    free(r->owned);
    free(r->owned_fields);
    memset(r, 0, sizeof(*r));
}

void pt_httprule_table_free(struct pt_httprule_table *t)
{
    if (!t)
        return;
    node_free(t->root);
    for (size_t i = 0; i < t->nroutes; i++)
        route_fini(&t->routes[i]);
    free(t->routes);
    for (uint32_t i = 0; i < t->nhttp_methods; i++)
        free((char *)t->http_methods[i].ptr);
    free(t);
}

struct compile {
    struct pt_httprule_table *t;
    const struct pt_httprule_table_opts *opts;
    const char *where;
    struct pt_diag *diag;
    char field[256]; /* diag field of the rule being compiled */
};

static bool is_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int http_method_index(struct compile *c, struct pt_str m, uint32_t *idx)
{
    bool ok = m.len > 0 && m.len <= PT_HTTPRULE_MAX_HTTP_METHOD_LEN;
    for (size_t i = 0; ok && i < m.len; i++)
        ok = is_tchar(m.ptr[i]);
    if (!ok) {
        pt_diag_addf(c->diag, c->where, c->field, "invalid HTTP method \"%.*s\"",
                     (int)(m.len > 64 ? 64 : m.len), m.ptr ? m.ptr : "");
        return PT_ERR_CONFIG;
    }
    struct pt_httprule_table *t = c->t;
    for (uint32_t i = 0; i < t->nhttp_methods; i++) {
        if (pt_str_eq(t->http_methods[i], m)) {
            *idx = i;
            return 0;
        }
    }
    if (t->nhttp_methods == PT_HTTPRULE_MAX_HTTP_METHODS) {
        pt_diag_addf(c->diag, c->where, c->field, "more than %u distinct HTTP methods",
                     PT_HTTPRULE_MAX_HTTP_METHODS);
        return PT_ERR_CONFIG;
    }
    t->http_methods[t->nhttp_methods] = (struct pt_str){pt_xstrndup(m.ptr, m.len), m.len};
    *idx = t->nhttp_methods++;
    return 0;
}

static bool field_ok(struct compile *c, struct pt_str method, enum pt_httprule_field_use use,
                     const struct pt_str *seg, size_t n)
{
    if (!c->opts || !c->opts->field_exists)
        return true;
    return c->opts->field_exists(c->opts->field_ctx, method, use, seg, n);
}

/* A top-level field name for body or response_body; "" is none. */
static int top_field(struct compile *c, const char *what, struct pt_str s)
{
    if (s.len == 0)
        return 0;
    uint32_t n;
    struct pt_httprule_error err;
    if (pt_httprule_field_path_check(s, &n, &err) != 0) {
        pt_diag_addf(c->diag, c->where, c->field, "%s \"%.*s\": column %u: %s", what,
                     (int)(s.len > 128 ? 128 : s.len), s.ptr, err.column, err.message);
        return PT_ERR_CONFIG;
    }
    if (n != 1) {
        pt_diag_addf(c->diag, c->where, c->field, "%s \"%.*s\" must name a top-level field", what,
                     (int)(s.len > 128 ? 128 : s.len), s.ptr);
        return PT_ERR_CONFIG;
    }
    return 0;
}

/* Compile one binding into the next free route slot. */
static int compile_route(struct compile *c, uint32_t method, struct pt_str name, uint32_t binding,
                         const struct pt_httprule_spec *s, bool fallback)
{
    struct pt_httprule_table *t = c->t;
    struct pt_httprule_route *r = &t->routes[t->nroutes];
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->binding = binding;
    r->fallback = fallback;
    int rc = http_method_index(c, s->method, &r->http_method);
    struct pt_httprule_error err;
    if (pt_httprule_template_parse(s->path, &r->tmpl, &err) != 0) {
        pt_diag_addf(c->diag, c->where, c->field, "%.*s \"%.*s\": column %u: %s",
                     (int)(s->method.len > 32 ? 32 : s->method.len), s->method.ptr,
                     (int)(s->path.len > 256 ? 256 : s->path.len), s->path.ptr, err.column,
                     err.message);
        rc = PT_ERR_CONFIG;
    }
    for (uint32_t i = 0; i < r->tmpl.nvars; i++) {
        const struct pt_httprule_var *v = &r->tmpl.vars[i];
        if (!field_ok(c, name, PT_HTTPRULE_FIELD_PATH, v->field.seg, v->field.nseg)) {
            pt_diag_addf(c->diag, c->where, c->field,
                         "\"%.*s\": path variable %.*s: no such field, or not usable in a path",
                         (int)s->path.len, s->path.ptr, (int)v->text.len, v->text.ptr);
            rc = PT_ERR_CONFIG;
        }
    }
    if (pt_str_eq(s->response_body, PT_STR("*"))) {
        pt_diag_addf(c->diag, c->where, c->field,
                     "response_body \"*\": name a field, or leave it empty for the whole response");
        rc = PT_ERR_CONFIG;
    } else if (top_field(c, "response_body", s->response_body) != 0) {
        rc = PT_ERR_CONFIG;
    }
    bool body_all = pt_str_eq(s->body, PT_STR("*"));
    if (!body_all && top_field(c, "body", s->body) != 0)
        rc = PT_ERR_CONFIG;
    if (rc != 0) {
        route_fini(r);
        return rc;
    }

    /* name, "METHOD path", body, response_body; one buffer */
    size_t plen = s->method.len + 1 + s->path.len;
    char *o = r->owned = pt_xmalloc(name.len + plen + s->body.len + s->response_body.len + 1);
    memcpy(o, name.ptr, name.len);
    r->name = (struct pt_str){o, name.len};
    o += name.len;
    memcpy(o, s->method.ptr, s->method.len);
    o[s->method.len] = ' ';
    memcpy(o + s->method.len + 1, s->path.ptr, s->path.len);
    r->pattern = (struct pt_str){o, plen};
    o += plen;
    r->owned_fields = pt_xcalloc(2, sizeof(struct pt_str));
    if (body_all) {
        r->body = PT_HTTPRULE_BODY_ALL;
    } else if (s->body.len) {
        memcpy(o, s->body.ptr, s->body.len);
        r->owned_fields[0] = (struct pt_str){o, s->body.len};
        o += s->body.len;
        r->body = PT_HTTPRULE_BODY_FIELD;
        r->body_field = (struct pt_httprule_field){&r->owned_fields[0], 1};
        if (!field_ok(c, name, PT_HTTPRULE_FIELD_BODY, r->body_field.seg, 1)) {
            pt_diag_addf(c->diag, c->where, c->field, "body \"%.*s\": no such request field",
                         (int)s->body.len, s->body.ptr);
            rc = PT_ERR_CONFIG;
        }
    }
    if (s->response_body.len) {
        memcpy(o, s->response_body.ptr, s->response_body.len);
        r->owned_fields[1] = (struct pt_str){o, s->response_body.len};
        r->response_field = (struct pt_httprule_field){&r->owned_fields[1], 1};
        if (!field_ok(c, name, PT_HTTPRULE_FIELD_RESPONSE_BODY, r->response_field.seg, 1)) {
            pt_diag_addf(c->diag, c->where, c->field,
                         "response_body \"%.*s\": no such response field",
                         (int)s->response_body.len, s->response_body.ptr);
            rc = PT_ERR_CONFIG;
        }
    }
    if (rc != 0) {
        route_fini(r);
        return rc;
    }
    t->nroutes++;
    return 0;
}

static bool is_name_char(char ch, bool dot)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || (dot && ch == '.');
}

/* POST /pkg.Service/Method with body "*", for a method without a rule. */
static int compile_fallback(struct compile *c, uint32_t method, struct pt_str name)
{
    const char *slash = memchr(name.ptr, '/', name.len);
    size_t svc = slash ? (size_t)(slash - name.ptr) : 0;
    bool ok = slash && svc > 0 && svc + 1 < name.len && name.len < PT_HTTPRULE_MAX_TEMPLATE_LEN;
    for (size_t i = 0; ok && i < name.len; i++)
        ok = i == svc || is_name_char(name.ptr[i], i < svc);
    if (!ok) {
        pt_diag_addf(c->diag, c->where, c->field,
                     "method name must be \"pkg.Service/Method\" for its default route");
        return PT_ERR_CONFIG;
    }
    char *path = pt_xmalloc(name.len + 1);
    path[0] = '/';
    memcpy(path + 1, name.ptr, name.len);
    struct pt_httprule_spec s = {
        .method = PT_STR("POST"),
        .path = {path, name.len + 1},
        .body = PT_STR("*"),
    };
    int rc = compile_route(c, method, name, 0, &s, true);
    free(path);
    return rc;
}

static void list_add(struct route_list *l, const struct pt_httprule_route *r)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->v = pt_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = r;
}

static struct pt_httprule_node *lit_child(struct pt_httprule_node *n, struct pt_str seg)
{
    uint32_t lo = 0, hi = n->nlits;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int cmp = seg_cmp(n->lits[mid].seg, seg);
        if (cmp == 0)
            return n->lits[mid].child;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (n->nlits == n->cap_lits) {
        n->cap_lits = n->cap_lits ? n->cap_lits * 2 : 4;
        n->lits = pt_xrealloc(n->lits, n->cap_lits * sizeof(*n->lits));
    }
    memmove(&n->lits[lo + 1], &n->lits[lo], (n->nlits - lo) * sizeof(*n->lits));
    n->lits[lo] = (struct pt_httprule_edge){seg, pt_xcalloc(1, sizeof(struct pt_httprule_node))};
    n->nlits++;
    return n->lits[lo].child;
}

static void insert(struct compile *c, const struct pt_httprule_route *r)
{
    struct pt_httprule_node *n = c->t->root;
    struct route_list *l = NULL;
    for (uint32_t k = 0; k < r->tmpl.nsegs && !l; k++) {
        const struct pt_httprule_seg *s = &r->tmpl.segs[k];
        switch (s->kind) {
        case PT_HTTPRULE_SEG_LITERAL:
            n = lit_child(n, s->literal);
            break;
        case PT_HTTPRULE_SEG_SINGLE:
            if (!n->single)
                n->single = pt_xcalloc(1, sizeof(*n->single));
            n = n->single;
            break;
        case PT_HTTPRULE_SEG_REST:
            l = &n->rests;
            break;
        }
    }
    if (!l)
        l = &n->ends;
    for (uint32_t i = 0; i < l->n; i++) {
        const struct pt_httprule_route *q = l->v[i];
        if (q->http_method == r->http_method && pt_str_eq(q->tmpl.verb, r->tmpl.verb)) {
            pt_diag_addf(c->diag, c->where, c->field,
                         "\"%.*s\" conflicts with \"%.*s\" of %.*s (same method, verb and "
                         "segments)",
                         (int)r->pattern.len, r->pattern.ptr, (int)q->pattern.len, q->pattern.ptr,
                         (int)q->name.len, q->name.ptr);
            return;
        }
    }
    list_add(l, r);
}

static void set_field(struct compile *c, struct pt_str name, size_t binding)
{
    int nl = (int)(name.len > 160 ? 160 : name.len);
    if (binding == 0)
        snprintf(c->field, sizeof(c->field), "%.*s", nl, name.ptr ? name.ptr : "");
    else
        snprintf(c->field, sizeof(c->field), "%.*s.additional_bindings[%zu]", nl, name.ptr,
                 binding - 1);
}

static uint32_t limit_or(uint32_t v, uint32_t def)
{
    return v ? v : def;
}

struct pt_httprule_table *pt_httprule_table_compile(const struct pt_httprule_method *methods,
                                                    size_t n,
                                                    const struct pt_httprule_table_opts *opts,
                                                    const char *where, struct pt_diag *diag)
{
    struct pt_diag local;
    if (!diag) {
        pt_diag_init(&local);
        diag = &local;
    }
    unsigned errors = diag->errors;
    struct pt_httprule_table *t = pt_xcalloc(1, sizeof(*t));
    struct compile c = {.t = t, .opts = opts, .where = where, .diag = diag};
    const struct pt_httprule_limits *lim = opts ? &opts->limits : &t->limits;
    t->limits.max_path_segments =
        limit_or(lim->max_path_segments, PT_HTTPRULE_DEFAULT_MAX_PATH_SEGMENTS);
    if (t->limits.max_path_segments > PT_HTTPRULE_CAP_MAX_PATH_SEGMENTS)
        t->limits.max_path_segments = PT_HTTPRULE_CAP_MAX_PATH_SEGMENTS;
    t->limits.max_query_params =
        limit_or(lim->max_query_params, PT_HTTPRULE_DEFAULT_MAX_QUERY_PARAMS);
    t->limits.max_value_len = limit_or(lim->max_value_len, PT_HTTPRULE_DEFAULT_MAX_VALUE_LEN);

    size_t nroutes = 0;
    for (size_t i = 0; i < n; i++)
        nroutes += 1 + (methods[i].rule ? methods[i].rule->nadditional_bindings : 0);
    if (n > UINT32_MAX || nroutes > UINT32_MAX) {
        pt_diag_addf(diag, where, NULL, "too many methods");
        n = 0;
    }
    t->routes = pt_xcalloc(nroutes ? nroutes : 1, sizeof(*t->routes));
    t->root = pt_xcalloc(1, sizeof(*t->root));

    for (size_t i = 0; i < n; i++) {
        const struct pt_httprule_method *m = &methods[i];
        set_field(&c, m->name, 0);
        if (m->name.len == 0) {
            pt_diag_addf(diag, where, c.field, "method %zu has no name", i);
            continue;
        }
        if (!m->rule) {
            compile_fallback(&c, (uint32_t)i, m->name);
            continue;
        }
        compile_route(&c, (uint32_t)i, m->name, 0, m->rule, false);
        for (size_t k = 0; k < m->rule->nadditional_bindings; k++) {
            const struct pt_httprule_spec *a = &m->rule->additional_bindings[k];
            set_field(&c, m->name, k + 1);
            if (a->nadditional_bindings) {
                pt_diag_addf(diag, where, c.field,
                             "additional_bindings may not have additional_bindings");
                continue;
            }
            compile_route(&c, (uint32_t)i, m->name, (uint32_t)(k + 1), a, false);
        }
    }
    /* Conflicts only make sense among rules that compiled; report them all. */
    bool compiled = diag->errors == errors;
    for (size_t i = 0; i < t->nroutes && compiled; i++) {
        const struct pt_httprule_route *r = &t->routes[i];
        set_field(&c, r->name, r->binding);
        insert(&c, r);
    }
    if (diag->errors != errors) {
        pt_httprule_table_free(t);
        t = NULL;
    }
    if (diag == &local)
        pt_diag_fini(&local);
    return t;
}

/* ---- match ---- */

struct rseg {
    struct pt_str raw;
    struct pt_str canon;
};

struct walk {
    const struct rseg *segs;
    uint32_t n;
    struct pt_str verb; /* canonical; empty: templates without a verb */
    int64_t method;     /* -1: collect every method into allow */
    const struct pt_httprule_route *hit;
    uint64_t allow;
};

static bool pick(const struct route_list *l, struct walk *w)
{
    for (uint32_t i = 0; i < l->n; i++) {
        const struct pt_httprule_route *r = l->v[i];
        if (!pt_str_eq(r->tmpl.verb, w->verb))
            continue;
        if (w->method < 0) {
            w->allow |= (uint64_t)1 << r->http_method;
        } else if (r->http_method == (uint64_t)w->method) {
            w->hit = r;
            return true;
        }
    }
    return false;
}

static const struct pt_httprule_node *lit_find(const struct pt_httprule_node *n, struct pt_str seg)
{
    uint32_t lo = 0, hi = n->nlits;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int cmp = seg_cmp(n->lits[mid].seg, seg);
        if (cmp == 0)
            return n->lits[mid].child;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static bool walk(const struct pt_httprule_node *n, uint32_t depth, struct walk *w)
{
    if (depth == w->n) {
        if (pick(&n->ends, w))
            return true;
    } else {
        struct pt_str seg = w->segs[depth].canon;
        const struct pt_httprule_node *child = n->nlits ? lit_find(n, seg) : NULL;
        if (child && walk(child, depth + 1, w))
            return true;
        if (n->single && seg.len > 0 && walk(n->single, depth + 1, w))
            return true;
    }
    return pick(&n->rests, w);
}

static bool is_dot(struct pt_str canon)
{
    return (canon.len == 1 && canon.ptr[0] == '.') ||
           (canon.len == 2 && canon.ptr[0] == '.' && canon.ptr[1] == '.');
}

static int fail(struct pt_httprule_match *out, int rc, const char *reason)
{
    out->reason = reason;
    return rc;
}

static int bind_path(const struct pt_httprule_table *t, const struct pt_httprule_route *r,
                     const struct rseg *segs, uint32_t n, struct pt_arena *arena,
                     struct pt_httprule_match *out)
{
    for (uint32_t i = 0; i < r->tmpl.nvars; i++) {
        const struct pt_httprule_var *v = &r->tmpl.vars[i];
        uint32_t end = v->end == r->tmpl.nsegs && r->tmpl.has_rest ? n : v->end;
        if (end <= v->first)
            continue; /* "**" matched nothing */
        const char *from = segs[v->first].raw.ptr;
        struct pt_str raw = {from, (size_t)(segs[end - 1].raw.ptr + segs[end - 1].raw.len - from)};
        char *buf = pt_arena_alloc(arena, raw.len ? raw.len : 1);
        if (!buf)
            return fail(out, PT_ERR_LIMIT, "request too large");
        size_t len;
        if (pt_httprule_decode(raw,
                               v->single ? PT_HTTPRULE_DECODE_ALL : PT_HTTPRULE_DECODE_KEEP_SLASH,
                               buf, &len) != 0)
            return fail(out, PT_ERR_INVALID, "invalid percent-encoding in the path");
        if (len > t->limits.max_value_len)
            return fail(out, PT_ERR_LIMIT, "path variable value too long");
        if (!pt_httprule_utf8_valid(buf, len))
            return fail(out, PT_ERR_INVALID, "path variable value is not valid UTF-8");
        out->params[out->nparams++] =
            (struct pt_httprule_param){.field = v->field, .value = {buf, len}, .from_path = true};
    }
    return 0;
}

int pt_httprule_table_match(const struct pt_httprule_table *t,
                            const struct pt_httprule_request *req, struct pt_arena *arena,
                            struct pt_httprule_match *out)
{
    memset(out, 0, sizeof(*out));
    struct pt_str path = req->path;
    if (path.len == 0 || path.ptr[0] != '/')
        return fail(out, PT_ERR_NO_ROUTE, "the path must start with '/'");
    if (!pt_httprule_escapes_valid(path))
        return fail(out, PT_ERR_INVALID, "invalid percent-encoding in the path");

    uint32_t n = 0;
    if (path.len > 1) {
        n = 1;
        for (size_t i = 1; i < path.len; i++) {
            if (path.ptr[i] == '/' && ++n > t->limits.max_path_segments)
                return fail(out, PT_ERR_LIMIT, "too many path segments");
        }
    }
    struct rseg *segs = pt_arena_alloc(arena, (n + 1) * sizeof(*segs));
    /* Room for the canonical form of every segment, then of the last
     * segment's stem and verb. */
    char *canon = pt_arena_alloc(arena, 6 * path.len + 1);
    if (!segs || !canon)
        return fail(out, PT_ERR_LIMIT, "request too large");
    size_t start = 1, k = 0, used = 0;
    for (size_t i = 1; n && i <= path.len; i++) {
        if (i < path.len && path.ptr[i] != '/')
            continue;
        segs[k].raw = (struct pt_str){path.ptr + start, i - start};
        size_t len = pt_httprule_canon(segs[k].raw, canon + used);
        segs[k].canon = (struct pt_str){canon + used, len};
        used += len;
        if (is_dot(segs[k].canon))
            return fail(out, PT_ERR_NO_ROUTE, "dot segment in the path");
        k++;
        start = i + 1;
    }

    /* The verb: after the last ':' of the last segment, not at its start. */
    struct rseg stem = {0};
    struct pt_str verb = PT_STR_NULL;
    if (n) {
        struct pt_str last = segs[n - 1].raw;
        for (size_t i = last.len; i > 1; i--) {
            if (last.ptr[i - 1] != ':')
                continue;
            stem.raw = (struct pt_str){last.ptr, i - 1};
            struct pt_str vraw = {last.ptr + i, last.len - i};
            size_t len = pt_httprule_canon(stem.raw, canon + used);
            stem.canon = (struct pt_str){canon + used, len};
            used += len;
            len = pt_httprule_canon(vraw, canon + used);
            verb = (struct pt_str){canon + used, len};
            used += len;
            break;
        }
    }
    bool try_verb = verb.len > 0 && !is_dot(stem.canon);

    int64_t m = -1;
    for (uint32_t i = 0; i < t->nhttp_methods; i++) {
        if (pt_str_eq(t->http_methods[i], req->method))
            m = i;
    }
    struct rseg full_last = n ? segs[n - 1] : stem;
    struct walk w = {.segs = segs, .n = n, .method = m};
    if (m >= 0 && try_verb) {
        segs[n - 1] = stem;
        w.verb = verb;
        if (!walk(t->root, 0, &w))
            segs[n - 1] = full_last;
    }
    if (m >= 0 && !w.hit) {
        w.verb = PT_STR_NULL;
        walk(t->root, 0, &w);
    }
    if (!w.hit) {
        w.method = -1;
        if (try_verb) {
            segs[n - 1] = stem;
            w.verb = verb;
            walk(t->root, 0, &w);
            segs[n - 1] = full_last;
        }
        w.verb = PT_STR_NULL;
        walk(t->root, 0, &w);
        if (!w.allow)
            return fail(out, PT_ERR_NO_ROUTE, "no HTTP rule matches the path");
        struct pt_str *allow = pt_arena_alloc(arena, t->nhttp_methods * sizeof(*allow));
        if (!allow)
            return fail(out, PT_ERR_LIMIT, "request too large");
        for (uint32_t i = 0; i < t->nhttp_methods; i++) {
            if (w.allow & ((uint64_t)1 << i))
                allow[out->nallow++] = t->http_methods[i];
        }
        out->allow = allow;
        return fail(out, PT_ERR_METHOD_NOT_ALLOWED, "method not allowed for this path");
    }

    const struct pt_httprule_route *r = w.hit;
    out->method = r->method;
    out->method_name = r->name;
    out->binding = r->binding;
    out->fallback = r->fallback;
    out->pattern = r->pattern;
    out->body = r->body;
    out->body_field = r->body_field;
    out->response_field = r->response_field;

    size_t nq = r->body == PT_HTTPRULE_BODY_ALL ? 0 : pt_httprule_query_count(req->query);
    if (nq > t->limits.max_query_params)
        return fail(out, PT_ERR_LIMIT, "too many query parameters");
    out->params = pt_arena_alloc(arena, (r->tmpl.nvars + nq + 1) * sizeof(*out->params));
    if (!out->params)
        return fail(out, PT_ERR_LIMIT, "request too large");
    int rc = bind_path(t, r, segs, n, arena, out);
    if (rc == 0 && nq)
        rc = pt_httprule_query_bind(r, req->query, &t->limits, arena, out);
    return rc;
}
