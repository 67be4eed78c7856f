/*
 * The reference matcher: every route, every time, with the template matched
 * segment by segment and the host compared directly. It shares only the
 * predicate evaluation and the rank with the trie, so the randomized test
 * and the benchmark compare the trie's structure and pruning against
 * something obviously right.
 */
#include <string.h>

#include "route/route_int.h"

static bool host_match(const struct pt_route_entry *e, bool have_host, struct pt_str host)
{
    switch (e->host_kind) {
    case PT_ROUTE_HOST_ANY:
        return true;
    case PT_ROUTE_HOST_EXACT:
        return have_host && pt_str_eq(host, e->host);
    case PT_ROUTE_HOST_WILDCARD:
        return have_host && host.len > e->host.len &&
               memcmp(host.ptr + host.len - e->host.len, e->host.ptr, e->host.len) == 0;
    }
    return false;
}

/* Match the template against path; fills singles and *rest. */
static bool template_match(const struct pt_route_tmpl *t, struct pt_str path,
                           struct pt_str *singles, struct pt_str *rest)
{
    size_t pos = 0; /* index of the '/' before the next segment, or len */
    uint32_t nsingles = 0;
    *rest = (struct pt_str){path.ptr + path.len, 0};
    for (uint32_t i = 0; i < t->nsegs; i++) {
        const struct pt_route_seg *s = &t->segs[i];
        if (s->kind == PT_ROUTE_SEG_REST) {
            if (pos < path.len)
                *rest = (struct pt_str){path.ptr + pos + 1, path.len - pos - 1};
            return true;
        }
        if (pos >= path.len)
            return false;
        size_t end = pos + 1;
        while (end < path.len && path.ptr[end] != '/')
            end++;
        struct pt_str seg = {path.ptr + pos + 1, end - pos - 1};
        if (s->kind == PT_ROUTE_SEG_LITERAL && !pt_str_eq(seg, s->lit))
            return false;
        if (s->kind == PT_ROUTE_SEG_SINGLE) {
            if (seg.len == 0)
                return false;
            singles[nsingles++] = seg;
        }
        pos = end;
    }
    return pos >= path.len;
}

bool pt_router_match_linear(const struct pt_router *r, const struct pt_route_request *req,
                            struct pt_route_result *out)
{
    const struct pt_route_entry *best = NULL;
    out->nparams = 0;
    out->strip_len = 0;
    if (!r || req->path.len == 0 || req->path.ptr[0] != '/')
        return false;

    char buf[PT_ROUTE_HOST_MAX];
    struct pt_str host = PT_STR_NULL;
    bool have_host = pt_route_request_host(req->authority, buf, &host);

    for (size_t i = 0; i < r->nroutes; i++) {
        const struct pt_route_entry *e = &r->routes[i];
        if (best && !pt_route_beats(e->rank, e->index, best->rank, best->index))
            continue;
        struct pt_str singles[PT_ROUTE_MAX_SEGMENTS];
        struct pt_str rest;
        if (!host_match(e, have_host, host) ||
            !template_match(&e->tmpl, req->path, singles, &rest) ||
            !pt_route_entry_predicates_match(e, req))
            continue;
        best = e;
        pt_route_result_fill(out, e, singles, rest);
    }
    return best != NULL;
}
