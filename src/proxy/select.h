/*
 * proxy/select.h - which service a request goes to.
 *
 * A route names one service, or shares its traffic among several (a
 * split: canary, blue-green), or picks one by the API version the request
 * asks for. pt_proxy_select() runs once per exchange, before the first
 * attempt, and sets x->service; breakers, balancing and retries then use
 * x->service only.
 *
 *   split:     override header = value?  -> its service
 *              key present (ip, header, cookie)?
 *                  -> point = stable hash of the key in [0, total weight)
 *              else point = random in [0, total weight)
 *              -> the side whose cumulative weight range holds point
 *   versions:  version from path | header | accept | query
 *              missing   -> default_version, else 400 / INVALID_ARGUMENT
 *              listed    -> its service (from path with strip: the
 *                           "v<version>" segment leaves the forwarded path)
 *              unlisted  -> 400 / INVALID_ARGUMENT
 *
 * The hash is FNV-1a 64 with a fixed basis and a splitmix64 finish: the
 * same key lands on the same side in every worker, instance and restart,
 * as long as the sides and weights stay the same.
 *
 * The helpers below the entry point are pure (no exchange) so they are unit
 * tested on their own.
 *
 * Thread: workers.
 */
#ifndef PT_PROXY_SELECT_H
#define PT_PROXY_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

struct pt_exchange;
struct pt_split_side;

/* Longest version read from a request (longer ones are not listed). */
#define PT_VERSION_MAX 64u

/*
 * Set x->service for x->route: the route's service, a side of its split
 * or the service of the requested API version (and, from the path with
 * strip, rewrite x->forward_path). Status: 0, or PT_ERR_INVALID with
 * *detail saying why (missing or unknown version, arena-allocated), or
 * PT_ERR_LIMIT when the arena is full.
 */
int pt_proxy_select(struct pt_exchange *x, struct pt_str *detail);

/* Stable 64-bit hash of a split key. */
uint64_t pt_split_hash(struct pt_str key);

/* The point in [0, total) a hash maps to (total > 0), uniformly. */
uint64_t pt_split_point(uint64_t hash, uint64_t total);

/* Index of the side whose cumulative weight range holds point (< the sum
 * of the weights; sides of weight 0 never hold one). */
uint32_t pt_split_side_of(const struct pt_split_side *sides, uint32_t n, uint64_t point);

/*
 * The version segment of a path: after `skip` segments, a segment "v"
 * followed by a digit and then only letters, digits, '.', '-' or '_'.
 * path may end with "?query". true with *version (after the 'v') and
 * [*seg_start, *seg_end) the bytes of "/v<version>" in path; false when
 * there is no such segment.
 */
bool pt_version_in_path(struct pt_str path, uint32_t skip, struct pt_str *version,
                        size_t *seg_start, size_t *seg_end);

/*
 * The version= parameter of the first media range of an Accept value that
 * has one ("application/vnd.api+json; version=2, text/html"): a token or a
 * quoted string (quotes removed; a quoted string with a backslash is not
 * accepted). Parameter names are case-insensitive. false when none.
 */
bool pt_version_in_accept(struct pt_str accept, struct pt_str *version);

/*
 * The value of query parameter `name` (the first one whose percent-decoded
 * name is `name`), percent-decoded
 * into buf (cap bytes). Status: 1 found (*version points into buf), 0
 * absent (or empty), PT_ERR_INVALID for bad percent-encoding or a value
 * longer than cap.
 */
int pt_version_in_query(struct pt_str query, struct pt_str name, char *buf, size_t cap,
                        struct pt_str *version);

#endif
