/*
 * route/router.h - compiled route tables and the per-request match.
 *
 * The control thread compiles the configured routes of one snapshot into a
 * pt_router; worker threads then match requests against it concurrently.
 * The router is immutable after pt_router_compile() returns, so matching
 * takes no lock and allocates nothing (see the README for the one libc
 * caveat, regex predicates).
 *
 * A route matches when all of its predicates hold: path template (or
 * path_prefix), methods, host, headers and query. Among the routes that
 * match, the winner is decided by, in order:
 *   1. the highest priority;
 *   2. more literal path segments;
 *   3. more single-segment matches ('{x}', '*'), then no '**' over '**';
 *   4. exact host over wildcard host over no host;
 *   5. more header and query predicates;
 *   6. a method list over any method;
 *   7. earlier in the configuration.
 *
 * Inside, routes hang off a trie of path segments (one trie per exact host,
 * one per wildcard suffix, one for routes without a host); every node knows
 * the best rank in its subtree, so the walk skips subtrees that cannot beat
 * the best route found so far.
 */
#ifndef PT_ROUTE_ROUTER_H
#define PT_ROUTE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "http/exchange.h"
#include "http/headers.h"
#include "portico/config/v1/config.pb-c.h"
#include "portico/str.h"

struct pt_router;

struct pt_route_request {
    struct pt_str method;
    struct pt_str authority;          /* raw Host or :authority: any case, may carry a port */
    struct pt_str path;               /* normalized (http/path.h) */
    struct pt_str query;              /* raw, without '?' */
    const struct pt_headers *headers; /* may be NULL */
};

struct pt_route_result {
    uint32_t index; /* of the route in the array given to pt_router_compile() */
    uint16_t nparams;
    /* Names borrow from the router; values are slices of the request path
     * (still percent-encoded); a '**' capture is the rest without its
     * leading '/'. */
    struct pt_route_param params[PT_ROUTE_MAX_PARAMS];
    /* With strip_prefix: how many leading bytes of the path the template's
     * leading literal segments cover; the proxy forwards "/" + the rest.
     * 0 without strip_prefix. */
    size_t strip_len;
};

/*
 * Pointer: the compiled router, or NULL with every error found added to diag
 * ("<where[i]>: routes[i].<field>: message"). where may be NULL, and so may
 * any where[i]. A route whose `enabled` is false is validated like the
 * others but never matches; indexes always refer to the routes array.
 * The router copies what it needs: routes may be freed afterwards.
 * Thread: control thread.
 */
struct pt_router *pt_router_compile(const Portico__Config__V1__Route *const *routes, size_t n,
                                    const char *const *where, struct pt_diag *diag);

/* Free the router; NULL is a no-op. No match may be running on it. */
void pt_router_free(struct pt_router *r);

/*
 * true when a route matches; *out is then filled (it is left in an
 * unspecified state otherwise). Never allocates. Thread: any, concurrently.
 */
bool pt_router_match(const struct pt_router *r, const struct pt_route_request *req,
                     struct pt_route_result *out);

/*
 * The same answer as pt_router_match() found by checking every route in
 * turn. It is the reference the trie is tested and benchmarked against;
 * nothing on the data path should call it.
 */
bool pt_router_match_linear(const struct pt_router *r, const struct pt_route_request *req,
                            struct pt_route_result *out);

/* Number of enabled routes compiled into r. */
size_t pt_router_size(const struct pt_router *r);

#endif
