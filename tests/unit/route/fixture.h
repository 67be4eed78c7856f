/*
 * Builders for Route config messages in tests: every allocation is recorded
 * in the fixture and released by fx_free().
 */
#ifndef PT_TEST_ROUTE_FIXTURE_H
#define PT_TEST_ROUTE_FIXTURE_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/diag.h"
#include "portico/config/v1/config.pb-c.h"
#include "route/router.h"

enum fx_kind { FX_EXACT, FX_PREFIX, FX_REGEX, FX_PRESENT, FX_ABSENT, FX_UNSET };

struct fx {
    Portico__Config__V1__Route **routes;
    size_t n;
    size_t cap;
    void **mem;
    size_t nmem;
    size_t capmem;
};

static inline void *fx_keep(struct fx *f, void *p)
{
    if (f->nmem == f->capmem) {
        f->capmem = f->capmem ? f->capmem * 2 : 64;
        f->mem = pt_xrealloc(f->mem, f->capmem * sizeof(*f->mem));
    }
    f->mem[f->nmem++] = p;
    return p;
}

static inline char *fx_str(struct fx *f, const char *s)
{
    return fx_keep(f, pt_xstrdup(s));
}

/* "prefix:/api" sets path_prefix; anything else sets path. */
static inline Portico__Config__V1__Route *fx_route(struct fx *f, const char *path)
{
    Portico__Config__V1__Route *r = fx_keep(f, pt_xmalloc(sizeof(*r)));
    portico__config__v1__route__init(r);
    if (strncmp(path, "prefix:", 7) == 0)
        r->path_prefix = fx_str(f, path + 7);
    else
        r->path = fx_str(f, path);
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->routes = pt_xrealloc(f->routes, f->cap * sizeof(*f->routes));
    }
    f->routes[f->n++] = r;
    return r;
}

/* NULL-terminated list of methods. */
static inline void fx_methods(struct fx *f, Portico__Config__V1__Route *r, ...)
{
    va_list ap;
    va_start(ap, r);
    const char *m;
    while ((m = va_arg(ap, const char *)) != NULL) {
        r->methods = pt_xrealloc(r->methods, (r->n_methods + 1) * sizeof(*r->methods));
        r->methods[r->n_methods++] = fx_str(f, m);
    }
    va_end(ap);
}

static inline void fx_host(struct fx *f, Portico__Config__V1__Route *r, const char *host)
{
    r->host = fx_str(f, host);
}

static inline void fx_header(struct fx *f, Portico__Config__V1__Route *r, const char *name,
                             enum fx_kind kind, const char *value, bool invert)
{
    Portico__Config__V1__HeaderMatch *m = fx_keep(f, pt_xmalloc(sizeof(*m)));
    portico__config__v1__header_match__init(m);
    m->name = fx_str(f, name);
    m->invert = invert;
    switch (kind) {
    case FX_EXACT:
        m->match_case = PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_EXACT;
        m->exact = fx_str(f, value);
        break;
    case FX_PREFIX:
        m->match_case = PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_PREFIX;
        m->prefix = fx_str(f, value);
        break;
    case FX_REGEX:
        m->match_case = PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_REGEX;
        m->regex = fx_str(f, value);
        break;
    case FX_PRESENT:
    case FX_ABSENT:
        m->match_case = PORTICO__CONFIG__V1__HEADER_MATCH__MATCH_PRESENT;
        m->present = kind == FX_PRESENT;
        break;
    case FX_UNSET:
        break;
    }
    r->headers = pt_xrealloc(r->headers, (r->n_headers + 1) * sizeof(*r->headers));
    r->headers[r->n_headers++] = m;
}

static inline void fx_query(struct fx *f, Portico__Config__V1__Route *r, const char *name,
                            enum fx_kind kind, const char *value, bool invert)
{
    Portico__Config__V1__QueryMatch *m = fx_keep(f, pt_xmalloc(sizeof(*m)));
    portico__config__v1__query_match__init(m);
    m->name = fx_str(f, name);
    m->invert = invert;
    switch (kind) {
    case FX_EXACT:
        m->match_case = PORTICO__CONFIG__V1__QUERY_MATCH__MATCH_EXACT;
        m->exact = fx_str(f, value);
        break;
    case FX_PREFIX:
        m->match_case = PORTICO__CONFIG__V1__QUERY_MATCH__MATCH_PREFIX;
        m->prefix = fx_str(f, value);
        break;
    case FX_REGEX:
        m->match_case = PORTICO__CONFIG__V1__QUERY_MATCH__MATCH_REGEX;
        m->regex = fx_str(f, value);
        break;
    case FX_PRESENT:
    case FX_ABSENT:
        m->match_case = PORTICO__CONFIG__V1__QUERY_MATCH__MATCH_PRESENT;
        m->present = kind == FX_PRESENT;
        break;
    case FX_UNSET:
        break;
    }
    r->query = pt_xrealloc(r->query, (r->n_query + 1) * sizeof(*r->query));
    r->query[r->n_query++] = m;
}

static inline void fx_enabled(struct fx *f, Portico__Config__V1__Route *r, bool enabled)
{
    Google__Protobuf__BoolValue *b = fx_keep(f, pt_xmalloc(sizeof(*b)));
    google__protobuf__bool_value__init(b);
    b->value = enabled;
    r->enabled = b;
}

static inline struct pt_router *fx_compile(struct fx *f, struct pt_diag *d)
{
    return pt_router_compile((const Portico__Config__V1__Route *const *)f->routes, f->n, NULL, d);
}

/* The methods, headers and query arrays grow by realloc, so they are
 * freed through their routes rather than recorded. */
static inline void fx_free(struct fx *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->routes[i]->methods);
        free(f->routes[i]->headers);
        free(f->routes[i]->query);
    }
    for (size_t i = 0; i < f->nmem; i++)
        free(f->mem[i]);
    free(f->mem);
    free(f->routes);
    memset(f, 0, sizeof(*f));
}

#endif
