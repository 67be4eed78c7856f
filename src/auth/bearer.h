/*
 * auth/bearer.h - where a bearer token comes from, and removing it before
 * the request is forwarded.
 *
 * The "jwt" and "introspection" methods read one bearer token per request,
 * from the first of these sources that has one:
 *
 *   1. the Authorization header, scheme "Bearer" (any case, RFC 7235
 *      2.1), one space or more, then the token. Exactly one Authorization
 *      header: several are ambiguous (which would a backend read?) and
 *      refused. Another scheme (Basic, ...) is not a bearer token.
 *   2. the route's token_query_param (only when set): the first parameter
 *      of that name, percent-decoded;
 *   3. the route's token_cookie (only when set): the first cookie of that
 *      name in any Cookie header (HTTP/2 may split the header).
 *
 * A query parameter or cookie holding a token is removed before
 * forwarding (pt_auth_bearer_remove_query / _cookie), whatever the route
 * keeps: a backend should never see a credential it did not ask for.
 *
 * Thread: the exchange's worker. Sans I/O.
 */
#ifndef PT_AUTH_BEARER_H
#define PT_AUTH_BEARER_H

#include "http/exchange.h"
#include "portico/str.h"

struct pt_auth_route;

enum pt_auth_bearer {
    PT_AUTH_BEARER_FOUND = 0,
    PT_AUTH_BEARER_ABSENT,
    PT_AUTH_BEARER_INVALID, /* several Authorization headers, or "Bearer" without a token */
};

/* Look for the request's bearer token (route r's sources). FOUND: *token
 * (borrowed from the request, or exchange memory), *where ("header",
 * "query", "cookie"). */
enum pt_auth_bearer pt_auth_bearer_find(struct pt_exchange *x, const struct pt_auth_route *r,
                                        struct pt_str *token, const char **where);

/* Does token look like a JWS compact token (exactly two dots)? */
bool pt_auth_bearer_is_jwt(struct pt_str token);

/* Remove every query parameter called name from the forwarded target (and
 * from the request's query). */
void pt_auth_bearer_remove_query(struct pt_exchange *x, struct pt_str name);
/* Remove every cookie called name from the Cookie headers (a header left
 * empty is removed). */
void pt_auth_bearer_remove_cookie(struct pt_exchange *x, struct pt_str name);

/* Status: 0 and *out (exchange memory): in percent-decoded, '+' as a
 * space; PT_ERR_INVALID for a bad %XX, PT_ERR_LIMIT when out of memory. */
int pt_auth_form_decode(struct pt_exchange *x, struct pt_str in, struct pt_str *out);

/* Status: 0 and *out (exchange memory) with the first value of query
 * parameter name in query, percent-decoded ('+' is a space); PT_ERR_INVALID
 * when absent or badly encoded, PT_ERR_LIMIT when out of memory. */
int pt_auth_query_param(struct pt_exchange *x, struct pt_str query, struct pt_str name,
                        struct pt_str *out);

#endif
