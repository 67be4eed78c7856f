/*
 * route/route_int.h - what the route module's files share. Never included
 * from outside src/route.
 *
 * A compiled route (pt_route_entry) holds its parsed template, its
 * predicates and its rank, a 64-bit key that orders routes exactly as the
 * precedence rules in router.h say (higher wins; ties go to the lower
 * index):
 *
 *   63..32 priority (sign-flipped)   31..24 literal segments
 *   23..16 single-segment matches    15     no '**'
 *   14..13 host kind                 12..1  header + query predicates
 *   0      has a method list
 */
#ifndef PT_ROUTE_INT_H
#define PT_ROUTE_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/router.h"
#include "route/template.h"

#define PT_ROUTE_MAX_PREDICATES 4095u
/* Longest request host (after the port is cut) that can match a host. */
#define PT_ROUTE_HOST_MAX 255u
/* A header or (decoded) query value longer than this cannot be tested by a
 * regex predicate: the predicate fails, inverted or not, so the route does
 * not match. */
#define PT_ROUTE_REGEX_VALUE_MAX 8192u
/* params[].single for a '**' capture. */
#define PT_ROUTE_PARAM_REST 0xffu

/* ---- templates (template.c) ---- */

enum pt_route_seg_kind {
    PT_ROUTE_SEG_LITERAL,
    PT_ROUTE_SEG_SINGLE,
    PT_ROUTE_SEG_REST,
};

struct pt_route_seg {
    enum pt_route_seg_kind kind;
    struct pt_str lit; /* normalized; literals only */
};

struct pt_route_tmpl_param {
    struct pt_str name;
    uint8_t single; /* index among the single-segment matches, or PT_ROUTE_PARAM_REST */
};

struct pt_route_tmpl {
    struct pt_route_seg *segs;
    uint32_t nsegs;
    uint32_t nliteral;
    uint32_t nsingle;
    bool has_rest;
    size_t strip_len; /* bytes of path covered by the leading literal segments */
    struct pt_route_tmpl_param params[PT_ROUTE_MAX_PARAMS];
    uint16_t nparams;
    char *buf; /* owns the literal and name bytes */
};

/* Parse src into t (owning copies); as_prefix parses a Route.path_prefix.
 * Status: 0, or PT_ERR_CONFIG with *err a static message (t then holds
 * nothing to free). */
int pt_route_tmpl_parse(struct pt_str src, bool as_prefix, struct pt_route_tmpl *t,
                        const char **err);
void pt_route_tmpl_fini(struct pt_route_tmpl *t);

/* ---- predicates (predicate.c) ---- */

enum pt_route_host_kind {
    PT_ROUTE_HOST_ANY = 0,
    PT_ROUTE_HOST_WILDCARD = 1,
    PT_ROUTE_HOST_EXACT = 2,
};

enum pt_route_pred_kind {
    PT_ROUTE_PRED_EXACT,
    PT_ROUTE_PRED_PREFIX,
    PT_ROUTE_PRED_REGEX,
    PT_ROUTE_PRED_PRESENT,
};

struct pt_route_pred {
    enum pt_route_pred_kind kind;
    bool present; /* PRESENT: true = must be there, false = must be absent */
    bool invert;
    struct pt_str name;  /* headers: lower case */
    struct pt_str value; /* EXACT, PREFIX */
    regex_t re;          /* REGEX, anchored to the whole value */
    char *owned;         /* name and value bytes */
};

struct pt_route_entry {
    uint32_t index;
    uint64_t rank;
    bool strip_prefix;
    struct pt_route_tmpl tmpl;
    enum pt_route_host_kind host_kind;
    struct pt_str host; /* lower case; a wildcard keeps its ".suffix" */
    struct pt_str *methods;
    uint32_t nmethods;
    struct pt_route_pred *headers;
    uint32_t nheaders;
    struct pt_route_pred *query;
    uint32_t nquery;
    char *owned; /* host and method bytes */
};

/* Validate and compile one route's host, methods, headers and query into e;
 * every problem goes to diag under "routes[<index>].<field>". Status: 0 or
 * PT_ERR_CONFIG. e must be zeroed; pt_route_entry_fini() frees it either way. */
int pt_route_entry_compile_predicates(struct pt_route_entry *e,
                                      const Portico__Config__V1__Route *route, size_t index,
                                      const char *where, struct pt_diag *diag);
void pt_route_entry_fini(struct pt_route_entry *e);

/* Methods, headers and query (not path or host) hold for req. */
bool pt_route_entry_predicates_match(const struct pt_route_entry *e,
                                     const struct pt_route_request *req);

/* The request's host: the authority without port or a trailing dot, lower
 * case, in buf (PT_ROUTE_HOST_MAX bytes). false when there is none usable. */
bool pt_route_request_host(struct pt_str authority, char *buf, struct pt_str *host);

/* ---- compiled router (compile.c), walked by match.c ---- */

struct pt_route_node;

struct pt_route_edge {
    struct pt_str seg;
    struct pt_route_node *child;
};

struct pt_route_node {
    struct pt_route_edge *lits; /* sorted by (length, bytes) */
    uint32_t nlits;
    uint32_t cap_lits;
    struct pt_route_node *single;       /* '*' and '{x}' share this edge */
    const struct pt_route_entry **ends; /* templates that end here; best first */
    uint32_t nends;
    uint32_t cap_ends;
    const struct pt_route_entry **rests; /* templates whose '**' starts here; best first */
    uint32_t nrests;
    uint32_t cap_rests;
    /* The best (rank, index) of any route in this subtree. */
    uint64_t bound_rank;
    uint32_t bound_index;
};

struct pt_route_host_trie {
    struct pt_str host; /* exact host, or ".suffix" of a wildcard */
    struct pt_route_node *root;
};

struct pt_router {
    struct pt_route_entry *routes; /* enabled routes, config order */
    size_t nroutes;
    struct pt_route_node *any;        /* routes without a host; NULL when none */
    struct pt_route_host_trie *exact; /* sorted by (length, bytes) */
    size_t nexact;
    size_t cap_exact;
    struct pt_route_host_trie *wild; /* sorted by (length, bytes) */
    size_t nwild;
    size_t cap_wild;
};

/* Order used for segment and host lookups: length first, then bytes. */
static inline int pt_route_str_cmp(struct pt_str a, struct pt_str b)
{
    if (a.len != b.len)
        return a.len < b.len ? -1 : 1;
    return a.len ? memcmp(a.ptr, b.ptr, a.len) : 0;
}

/* Does (rank, index) win over (best_rank, best_index)? */
static inline bool pt_route_beats(uint64_t rank, uint32_t index, uint64_t best_rank,
                                  uint32_t best_index)
{
    return rank > best_rank || (rank == best_rank && index < best_index);
}

/* Fill out for e, given the values of the single-segment matches on the
 * way and the rest of the path for a '**'. */
void pt_route_result_fill(struct pt_route_result *out, const struct pt_route_entry *e,
                          const struct pt_str *singles, struct pt_str rest);

#endif
