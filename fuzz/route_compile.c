/*
 * Fuzz the route compiler and matcher.
 *
 * Input: lines. Every line but the last is a route:
 *   <flags byte><template> [<host> [<name> [<value>]]]   (fields split on ' ')
 * flags bit 0: path_prefix instead of path; bit 1: strip_prefix; bit 2: use
 * the host field; bits 3-4: a header predicate on <name> (exact, prefix,
 * regex, present); bit 5: a query predicate instead; bit 6: invert it;
 * bit 7: methods GET and POST. Odd lines get priority 1.
 * The last line is a request-target, normalized as a codec would, matched
 * together with a path derived from the first route's template.
 *
 * Compilation may fail (and must then report errors); when it succeeds,
 * the trie and the linear reference must give the same answer. Nothing may
 * crash or leak.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/diag.h"
#include "http/headers.h"
#include "http/path.h"
#include "portico/config/v1/config.pb-c.h"
#include "route/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROUTES 24
#define MAX_FIELD 64

static void check(bool ok)
{
    if (!ok)
        abort();
}

struct route_mem {
    Portico__Config__V1__Route route;
    Portico__Config__V1__HeaderMatch header;
    Portico__Config__V1__QueryMatch query;
    Portico__Config__V1__HeaderMatch *headers[1];
    Portico__Config__V1__QueryMatch *queries[1];
    char *methods[2];
    char fields[4][MAX_FIELD + 1];
};

static char method_get[] = "GET";
static char method_post[] = "POST";

/* Split line into up to 4 space-separated, NUL-terminated fields. */
static int split_fields(const uint8_t *p, size_t n, char fields[4][MAX_FIELD + 1])
{
    int nf = 0;
    size_t i = 0;
    while (nf < 4 && i <= n) {
        size_t j = i;
        while (j < n && p[j] != ' ')
            j++;
        size_t len = j - i < MAX_FIELD ? j - i : MAX_FIELD;
        memcpy(fields[nf], p + i, len);
        fields[nf][len] = '\0';
        nf++;
        i = j + 1;
    }
    return nf;
}

static void build_route(struct route_mem *m, const uint8_t *line, size_t n, size_t index)
{
    portico__config__v1__route__init(&m->route);
    if (n == 0)
        return;
    uint8_t flags = line[0];
    memset(m->fields, 0, sizeof(m->fields));
    split_fields(line + 1, n - 1, m->fields);
    char *tmpl = m->fields[0], *host = m->fields[1], *name = m->fields[2], *value = m->fields[3];

    if (flags & 1)
        m->route.path_prefix = tmpl;
    else
        m->route.path = tmpl;
    m->route.strip_prefix = (flags >> 1) & 1;
    if (flags & 4)
        m->route.host = host;
    m->route.priority = (int32_t)(index & 1);
    if (flags & 0x80) {
        m->methods[0] = method_get;
        m->methods[1] = method_post;
        m->route.methods = m->methods;
        m->route.n_methods = 2;
    }
    int kind = (flags >> 3) & 3;
    /* Regexes stay short and without bounded repetition, so a case is
     * about the router and not about how slow regcomp can be made. */
    if (kind == 2) {
        value[16] = '\0';
        for (char *c = value; *c; c++)
            if (*c == '{')
                *c = '.';
    }
    if (flags & 0x20) {
        Portico__Config__V1__QueryMatch *q = &m->query;
        portico__config__v1__query_match__init(q);
        q->name = name;
        q->invert = (flags >> 6) & 1;
        q->match_case = (Portico__Config__V1__QueryMatch__MatchCase)(kind + 2);
        if (kind == 3)
            q->present = 1;
        else
            q->exact = value; /* the union: also prefix and regex */
        m->queries[0] = q;
        m->route.query = m->queries;
        m->route.n_query = 1;
    } else if (flags & 0x18) {
        Portico__Config__V1__HeaderMatch *h = &m->header;
        portico__config__v1__header_match__init(h);
        h->name = name;
        h->invert = (flags >> 6) & 1;
        h->match_case = (Portico__Config__V1__HeaderMatch__MatchCase)(kind + 2);
        if (kind == 3)
            h->present = 1;
        else
            h->exact = value;
        m->headers[0] = h;
        m->route.headers = m->headers;
        m->route.n_headers = 1;
    }
}

static void compare(const struct pt_router *r, const struct pt_route_request *req)
{
    struct pt_route_result a, b;
    bool ha = pt_router_match(r, req, &a);
    bool hb = pt_router_match_linear(r, req, &b);
    check(ha == hb);
    if (!ha)
        return;
    check(a.index == b.index && a.nparams == b.nparams && a.strip_len == b.strip_len);
    check(a.strip_len <= req->path.len);
    for (uint16_t i = 0; i < a.nparams; i++) {
        check(a.params[i].value.ptr == b.params[i].value.ptr);
        check(a.params[i].value.len == b.params[i].value.len);
        check(a.params[i].value.len == 0 ||
              (a.params[i].value.ptr >= req->path.ptr &&
               a.params[i].value.ptr + a.params[i].value.len <= req->path.ptr + req->path.len));
    }
}

/* The template with every parameter and '*' replaced by a value. */
static size_t path_from_template(const char *t, char *out, size_t cap)
{
    size_t n = 0;
    while (*t && n + 4 < cap) {
        if (*t == '{') {
            while (*t && *t != '}')
                t++;
            if (*t)
                t++;
            out[n++] = 'v';
        } else if (*t == '*') {
            t++;
            out[n++] = 'w';
        } else {
            out[n++] = *t++;
        }
    }
    return n;
}

static void match_target(const struct pt_router *r, struct pt_str target,
                         const struct pt_headers *headers, bool keep)
{
    struct pt_str authority, path, query;
    if (pt_http_target_parse(target, &authority, &path, &query) != 0)
        return;
    size_t cap = PT_PATH_NORMALIZE_CAP(path.len);
    char *norm = malloc(cap);
    if (!norm)
        abort();
    size_t len;
    struct pt_path_opts opts = {keep};
    if (pt_path_normalize(path, norm, cap, &len, &opts) == 0) {
        struct pt_route_request req = {
            .method = keep ? PT_STR("POST") : PT_STR("GET"),
            .authority = authority.len ? authority : PT_STR("a.example.com:80"),
            .path = {norm, len},
            .query = query,
            .headers = headers,
        };
        compare(r, &req);
    }
    free(norm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct route_mem *mem = calloc(MAX_ROUTES, sizeof(*mem));
    const Portico__Config__V1__Route *routes[MAX_ROUTES];
    if (!mem)
        abort();

    size_t nroutes = 0, i = 0;
    const uint8_t *last = data;
    size_t last_len = size;
    while (i < size) {
        size_t j = i;
        while (j < size && data[j] != '\n')
            j++;
        if (j == size) {
            last = data + i;
            last_len = j - i;
            break;
        }
        if (nroutes < MAX_ROUTES) {
            build_route(&mem[nroutes], data + i, j - i, nroutes);
            routes[nroutes] = &mem[nroutes].route;
            nroutes++;
        }
        i = j + 1;
        last = data + i;
        last_len = size - i;
    }

    struct pt_diag diag;
    pt_diag_init(&diag);
    struct pt_router *r = pt_router_compile(routes, nroutes, NULL, &diag);
    check((r != NULL) == (diag.errors == 0));

    if (r) {
        struct pt_arena arena;
        pt_arena_init(&arena, NULL, 0);
        struct pt_headers headers;
        pt_headers_init(&headers, &arena, 0);
        for (size_t k = 0; k < nroutes; k++) {
            if (mem[k].route.n_headers) {
                struct pt_str name = pt_str_from_cstr(mem[k].header.name);
                pt_headers_add_ref(&headers, name, pt_str_from_cstr(mem[k].fields[3]));
            }
        }
        for (int keep = 0; keep <= 1; keep++) {
            match_target(r, (struct pt_str){(const char *)last, last_len}, &headers, keep);
            if (nroutes) {
                const char *t = mem[0].route.path[0] ? mem[0].route.path : mem[0].route.path_prefix;
                char path[MAX_FIELD * 2];
                size_t n = path_from_template(t, path, sizeof(path));
                match_target(r, (struct pt_str){path, n}, keep ? NULL : &headers, keep);
            }
        }
        pt_arena_fini(&arena);
        pt_router_free(r);
    }
    pt_diag_fini(&diag);
    free(mem);
    return 0;
}
