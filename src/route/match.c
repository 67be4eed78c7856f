/*
 * The per-request trie walk. Depth-first over literal, single-segment and
 * rest edges; each route list is sorted best first, so the first route in a
 * list whose predicates hold is that list's answer, and a subtree whose
 * bound cannot beat the best route so far is not entered. Recursion depth is
 * bounded by PT_ROUTE_MAX_SEGMENTS, because the trie is no deeper.
 */
#include <string.h>

#include "route/route_int.h"

struct walk {
    const struct pt_route_request *req;
    const char *path;
    size_t len;
    struct pt_route_result *out;
    const struct pt_route_entry *best;
    uint32_t nsingles;
    struct pt_str singles[PT_ROUTE_MAX_SEGMENTS];
};

static bool can_win(const struct walk *w, uint64_t rank, uint32_t index)
{
    return !w->best || pt_route_beats(rank, index, w->best->rank, w->best->index);
}

static void try_list(struct walk *w, const struct pt_route_entry *const *list, uint32_t n,
                     struct pt_str rest)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct pt_route_entry *e = list[i];
        if (!can_win(w, e->rank, e->index))
            return;
        if (pt_route_entry_predicates_match(e, w->req)) {
            w->best = e;
            pt_route_result_fill(w->out, e, w->singles, rest);
            return;
        }
    }
}

static const struct pt_route_node *literal_find(const struct pt_route_node *node, struct pt_str seg)
{
    uint32_t lo = 0, hi = node->nlits;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = pt_route_str_cmp(node->lits[mid].seg, seg);
        if (c == 0)
            return node->lits[mid].child;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* pos is the index of the '/' before the next segment, or len when the
 * path is used up. */
static void walk_node(struct walk *w, const struct pt_route_node *node, size_t pos)
{
    if (!can_win(w, node->bound_rank, node->bound_index))
        return;
    if (pos >= w->len) {
        try_list(w, node->ends, node->nends, (struct pt_str){w->path + w->len, 0});
        try_list(w, node->rests, node->nrests, (struct pt_str){w->path + w->len, 0});
        return;
    }
    size_t start = pos + 1, end = start;
    while (end < w->len && w->path[end] != '/')
        end++;
    struct pt_str seg = {w->path + start, end - start};

    if (node->nlits) {
        const struct pt_route_node *child = literal_find(node, seg);
        if (child)
            walk_node(w, child, end);
    }
    if (node->single && seg.len) {
        w->singles[w->nsingles++] = seg;
        walk_node(w, node->single, end);
        w->nsingles--;
    }
    if (node->nrests)
        try_list(w, node->rests, node->nrests, (struct pt_str){w->path + start, w->len - start});
}

static const struct pt_route_node *host_find(const struct pt_route_host_trie *v, size_t n,
                                             struct pt_str host)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = pt_route_str_cmp(v[mid].host, host);
        if (c == 0)
            return v[mid].root;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool pt_router_match(const struct pt_router *r, const struct pt_route_request *req,
                     struct pt_route_result *out)
{
    struct walk w;
    w.req = req;
    w.path = req->path.ptr;
    w.len = req->path.len;
    w.out = out;
    w.best = NULL;
    w.nsingles = 0;
    out->nparams = 0;
    out->strip_len = 0;

    if (!r || w.len == 0 || w.path[0] != '/')
        return false;

    char buf[PT_ROUTE_HOST_MAX];
    struct pt_str host;
    if ((r->nexact || r->nwild) && pt_route_request_host(req->authority, buf, &host)) {
        const struct pt_route_node *root = host_find(r->exact, r->nexact, host);
        if (root)
            walk_node(&w, root, 0);
        /* Every ".suffix" that leaves at least one byte in front. */
        for (size_t i = 1; r->nwild && i < host.len; i++) {
            if (host.ptr[i] != '.')
                continue;
            root = host_find(r->wild, r->nwild, (struct pt_str){host.ptr + i, host.len - i});
            if (root)
                walk_node(&w, root, 0);
        }
    }
    if (r->any)
        walk_node(&w, r->any, 0);
    return w.best != NULL;
}
