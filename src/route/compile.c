/*
 * Route compilation: validate every route (reporting all errors at once),
 * rank it, and hang it in the trie of its host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "portico/errors.h"
#include "route/route_int.h"

static uint64_t rank_of(const struct pt_route_entry *e, int32_t priority)
{
    uint32_t npred = e->nheaders + e->nquery;
    return (uint64_t)((uint32_t)priority ^ 0x80000000u) << 32 | (uint64_t)e->tmpl.nliteral << 24 |
           (uint64_t)e->tmpl.nsingle << 16 | (uint64_t)!e->tmpl.has_rest << 15 |
           (uint64_t)e->host_kind << 13 | (uint64_t)npred << 1 | (uint64_t)(e->nmethods > 0);
}

static int compile_path(struct pt_route_entry *e, const Portico__Config__V1__Route *route,
                        size_t index, const char *where, struct pt_diag *diag)
{
    const char *path = route->path ? route->path : "";
    const char *prefix = route->path_prefix ? route->path_prefix : "";
    char field[64];
    if ((*path != '\0') == (*prefix != '\0')) {
        snprintf(field, sizeof(field), "routes[%zu].path", index);
        pt_diag_addf(diag, where, field, "set exactly one of path and path_prefix");
        return PT_ERR_CONFIG;
    }
    bool as_prefix = *prefix != '\0';
    const char *src = as_prefix ? prefix : path;
    const char *err;
    if (pt_route_tmpl_parse(pt_str_from_cstr(src), as_prefix, &e->tmpl, &err) != 0) {
        snprintf(field, sizeof(field), "routes[%zu].%s", index, as_prefix ? "path_prefix" : "path");
        pt_diag_addf(diag, where, field, "%s: \"%s\"", err, src);
        return PT_ERR_CONFIG;
    }
    return 0;
}

/* ---- trie construction ---- */

static void push_entry(const struct pt_route_entry ***v, uint32_t *n, uint32_t *cap,
                       const struct pt_route_entry *e)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 2;
        *v = pt_xrealloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = e;
}

/* Binary search in edges sorted by pt_route_str_cmp: the index of seg, or
 * where it would go (with *found false). */
static uint32_t edge_search(const struct pt_route_edge *v, uint32_t n, struct pt_str seg,
                            bool *found)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = pt_route_str_cmp(v[mid].seg, seg);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct pt_route_node *literal_child(struct pt_route_node *node, struct pt_str seg)
{
    bool found;
    uint32_t at = edge_search(node->lits, node->nlits, seg, &found);
    if (found)
        return node->lits[at].child;
    if (node->nlits == node->cap_lits) {
        node->cap_lits = node->cap_lits ? node->cap_lits * 2 : 2;
        node->lits = pt_xrealloc(node->lits, node->cap_lits * sizeof(*node->lits));
    }
    memmove(&node->lits[at + 1], &node->lits[at], (node->nlits - at) * sizeof(*node->lits));
    node->nlits++;
    /* seg borrows the entry's template bytes, which live as long as the router. */
    node->lits[at] = (struct pt_route_edge){seg, pt_xcalloc(1, sizeof(struct pt_route_node))};
    return node->lits[at].child;
}

static void trie_insert(struct pt_route_node *node, const struct pt_route_entry *e)
{
    for (uint32_t i = 0; i < e->tmpl.nsegs; i++) {
        const struct pt_route_seg *s = &e->tmpl.segs[i];
        switch (s->kind) {
        case PT_ROUTE_SEG_LITERAL:
            node = literal_child(node, s->lit);
            break;
        case PT_ROUTE_SEG_SINGLE:
            if (!node->single)
                node->single = pt_xcalloc(1, sizeof(*node->single));
            node = node->single;
            break;
        case PT_ROUTE_SEG_REST:
            push_entry(&node->rests, &node->nrests, &node->cap_rests, e);
            return;
        }
    }
    push_entry(&node->ends, &node->nends, &node->cap_ends, e);
}

static int entry_order(const void *a, const void *b)
{
    const struct pt_route_entry *x = *(const struct pt_route_entry *const *)a;
    const struct pt_route_entry *y = *(const struct pt_route_entry *const *)b;
    if (x->rank != y->rank)
        return x->rank > y->rank ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

static void bound_take(struct pt_route_node *node, uint64_t rank, uint32_t index)
{
    if (pt_route_beats(rank, index, node->bound_rank, node->bound_index)) {
        node->bound_rank = rank;
        node->bound_index = index;
    }
}

/* Sort the route lists best first and compute every subtree's bound. */
static void trie_finish(struct pt_route_node *node)
{
    node->bound_rank = 0;
    node->bound_index = UINT32_MAX;
    if (node->nends) {
        qsort(node->ends, node->nends, sizeof(*node->ends), entry_order);
        bound_take(node, node->ends[0]->rank, node->ends[0]->index);
    }
    if (node->nrests) {
        qsort(node->rests, node->nrests, sizeof(*node->rests), entry_order);
        bound_take(node, node->rests[0]->rank, node->rests[0]->index);
    }
    for (uint32_t i = 0; i < node->nlits; i++) {
        trie_finish(node->lits[i].child);
        bound_take(node, node->lits[i].child->bound_rank, node->lits[i].child->bound_index);
    }
    if (node->single) {
        trie_finish(node->single);
        bound_take(node, node->single->bound_rank, node->single->bound_index);
    }
}

static void trie_free(struct pt_route_node *node)
{
    if (!node)
        return;
    for (uint32_t i = 0; i < node->nlits; i++)
        trie_free(node->lits[i].child);
    trie_free(node->single);
    free(node->lits);
    free(node->ends);
    free(node->rests);
    free(node);
}

static struct pt_route_node *host_root(struct pt_route_host_trie **v, size_t *n, size_t *cap,
                                       struct pt_str host)
{
    size_t lo = 0, hi = *n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = pt_route_str_cmp((*v)[mid].host, host);
        if (c == 0)
            return (*v)[mid].root;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        *v = pt_xrealloc(*v, *cap * sizeof(**v));
    }
    memmove(&(*v)[lo + 1], &(*v)[lo], (*n - lo) * sizeof(**v));
    (*n)++;
    (*v)[lo] = (struct pt_route_host_trie){host, pt_xcalloc(1, sizeof(struct pt_route_node))};
    return (*v)[lo].root;
}

static void build_tries(struct pt_router *r)
{
    for (size_t i = 0; i < r->nroutes; i++) {
        const struct pt_route_entry *e = &r->routes[i];
        struct pt_route_node *root;
        switch (e->host_kind) {
        case PT_ROUTE_HOST_EXACT:
            root = host_root(&r->exact, &r->nexact, &r->cap_exact, e->host);
            break;
        case PT_ROUTE_HOST_WILDCARD:
            root = host_root(&r->wild, &r->nwild, &r->cap_wild, e->host);
            break;
        default:
            if (!r->any)
                r->any = pt_xcalloc(1, sizeof(*r->any));
            root = r->any;
            break;
        }
        trie_insert(root, e);
    }
    if (r->any)
        trie_finish(r->any);
    for (size_t i = 0; i < r->nexact; i++)
        trie_finish(r->exact[i].root);
    for (size_t i = 0; i < r->nwild; i++)
        trie_finish(r->wild[i].root);
}

/* ---- public ---- */

struct pt_router *pt_router_compile(const Portico__Config__V1__Route *const *routes, size_t n,
                                    const char *const *where, struct pt_diag *diag)
{
    struct pt_diag local;
    if (!diag) {
        pt_diag_init(&local);
        diag = &local;
    }
    unsigned errors_before = diag->errors;

    struct pt_router *r = pt_xcalloc(1, sizeof(*r));
    if (n > UINT32_MAX - 1) {
        pt_diag_addf(diag, NULL, "routes", "too many routes");
        n = 0;
    }
    r->routes = pt_xcalloc(n ? n : 1, sizeof(*r->routes));

    for (size_t i = 0; i < n; i++) {
        const char *w = where ? where[i] : NULL;
        const Portico__Config__V1__Route *route = routes[i];
        if (!route) {
            char field[48];
            snprintf(field, sizeof(field), "routes[%zu]", i);
            pt_diag_addf(diag, w, field, "missing route");
            continue;
        }
        struct pt_route_entry *e = &r->routes[r->nroutes];
        memset(e, 0, sizeof(*e));
        e->index = (uint32_t)i;
        e->strip_prefix = route->strip_prefix;
        int rc = compile_path(e, route, i, w, diag);
        if (pt_route_entry_compile_predicates(e, route, i, w, diag) != 0)
            rc = PT_ERR_CONFIG;
        bool enabled = !route->enabled || route->enabled->value;
        if (rc != 0 || !enabled) {
            pt_route_entry_fini(e);
            continue;
        }
        e->rank = rank_of(e, route->priority);
        r->nroutes++;
    }

    if (diag->errors != errors_before) {
        pt_router_free(r);
        r = NULL;
    } else {
        build_tries(r);
    }
    if (diag == &local)
        pt_diag_fini(&local);
    return r;
}

void pt_router_free(struct pt_router *r)
{
    if (!r)
        return;
    trie_free(r->any);
    for (size_t i = 0; i < r->nexact; i++)
        trie_free(r->exact[i].root);
    for (size_t i = 0; i < r->nwild; i++)
        trie_free(r->wild[i].root);
    free(r->exact);
    free(r->wild);
    for (size_t i = 0; i < r->nroutes; i++)
        pt_route_entry_fini(&r->routes[i]);
    free(r->routes);
    free(r);
}

size_t pt_router_size(const struct pt_router *r)
{
    return r ? r->nroutes : 0;
}

void pt_route_result_fill(struct pt_route_result *out, const struct pt_route_entry *e,
                          const struct pt_str *singles, struct pt_str rest)
{
    out->index = e->index;
    out->strip_len = e->strip_prefix ? e->tmpl.strip_len : 0;
    out->nparams = e->tmpl.nparams;
    for (uint16_t i = 0; i < e->tmpl.nparams; i++) {
        const struct pt_route_tmpl_param *p = &e->tmpl.params[i];
        out->params[i].name = p->name;
        out->params[i].value = p->single == PT_ROUTE_PARAM_REST ? rest : singles[p->single];
    }
}
