/*
 * route/template.h - the path template grammar of Route.path.
 *
 *   template  = "/" segment *( "/" segment )
 *   segment   = literal            matches itself exactly (case-sensitive)
 *             | "*"                one non-empty segment
 *             | "{" name "}"       one non-empty segment, captured
 *             | "{" name "=*}"     the same
 *             | "**"               the rest: zero or more segments (last only)
 *             | "{" name "=**}"    the rest, captured (last only)
 *   name      = [A-Za-z_][A-Za-z0-9_.]*, unique, at most PT_ROUTE_MAX_PARAMS
 *
 * Literals are normalized like request paths (http/path.h) when compiled,
 * so "/caf%c3%a9" and "/%7Euser" compare equal to the normalized requests
 * that spell them. A literal may not contain '{', '}', '*' or '?', may not
 * be a dot segment, and only the last segment may be empty (a trailing
 * slash: "/users/" matches "/users/" and not "/users").
 *
 * Route.path_prefix "/api" is the template "/api" followed by a '**'
 * segment (a trailing '/' in the prefix is ignored); the prefix "/" matches
 * every path.
 */
#ifndef PT_ROUTE_TEMPLATE_H
#define PT_ROUTE_TEMPLATE_H

#include "portico/str.h"

/* Most segments in one template. */
#define PT_ROUTE_MAX_SEGMENTS 128

/*
 * Check a Route.path template, for configuration validation.
 * Status: 0, or PT_ERR_CONFIG with *err set to a static message.
 */
int pt_route_template_check(struct pt_str tmpl, const char **err);

#endif
