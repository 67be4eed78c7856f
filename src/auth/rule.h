/*
 * auth/rule.h - a route's ABAC rule (auth.rule, expr.h) bound to a request.
 *
 * The rule is compiled with the route (plan.c); after authentication and
 * the scopes/roles policy the auth step asks pt_auth_rule_allows(), which
 * answers the rule's attribute lookups from the request:
 *
 *   claims.*       the identity's claims (a verified token's payload, an
 *                  API key's {client_id, client_name, scopes, tier}, a
 *                  certificate's fields), walked through nested objects
 *   identity.*     subject, client_id, tier, method; scopes, roles (lists)
 *   path.<p>       the route's path parameter p
 *   header.<h>     the FIRST field called h (a repeated header is not
 *                  joined: a rule compares one value)
 *   query.<q>      the first parameter q, percent-decoded; the query is
 *                  parsed once per request, on the first query lookup
 *   request.method / path / host
 *   client_ip      the peer's address as text, no port
 *
 * Thread: the exchange's worker. Allocates only in the exchange's arena.
 */
#ifndef PT_AUTH_RULE_H
#define PT_AUTH_RULE_H

#include <jansson.h>
#include <stdbool.h>

#include "auth/expr.h"
#include "http/exchange.h"

/* True when rule is TRUE for the request x made by identity id (whose
 * claims object is claims, may be NULL). */
bool pt_auth_rule_allows(const struct pt_expr *rule, struct pt_exchange *x,
                         const struct pt_identity_full *id, const json_t *claims);

#endif
