/*
 * auth/auth.h - authentication and authorization, compiled per snapshot.
 *
 * pt_auth_plan_compile() turns a configuration's `auth` settings and
 * api_keys into a plan, once per snapshot, on the control thread: the
 * header names, the API-key table (apikey.h; the one lookup the rate
 * limiter uses too), each authentication method's state (method.h), and
 * the names of every header the gateway itself sets (identity and claim
 * headers of all routes).
 *
 * pt_auth_plan_route() gives the instance of the auth step
 * (pt_auth_filter_type, "auth") for one route. conf/snapshot.c puts it in
 * EVERY route's chain, after the global filters and before the route's own
 * filters and plugins (the rate-limit step stays last):
 *
 *   global filters ─> auth step ─> route filters, plugins ─> rate limit ─> proxy
 *
 * On every route the step first removes the headers the gateway sets
 * (spoofing them is pointless); on a route with `auth` it then
 * authenticates (the route's methods in order), authorizes (scopes,
 * roles: policy.h), sets the identity and its headers, and removes
 * Authorization and Cookie (unless kept) and the API-key header. Refusals:
 * 401 + WWW-Authenticate (gRPC: UNAUTHENTICATED), 403 (PERMISSION_DENIED);
 * the reason goes to the access log ("auth"), never to the client.
 * See docs/auth.md.
 *
 * Thread: compile/free and route/destroy on the control thread; the step's
 * hooks and the lookups below on workers.
 */
#ifndef PT_AUTH_AUTH_H
#define PT_AUTH_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "portico/config/v1/config.pb-c.h"
#include "portico/filter.h"

/* Defaults (the proto comments document them for operators). */
#define PT_AUTH_DEFAULT_API_KEY_HEADER "x-api-key"
#define PT_AUTH_DEFAULT_USER_HEADER "X-Authenticated-User"
#define PT_AUTH_DEFAULT_CLIENT_ID_HEADER "X-Client-ID"
#define PT_AUTH_DEFAULT_USAGE_FLUSH_MS 10000u
#define PT_AUTH_DEFAULT_REALM "portico"

struct pt_auth_plan;

/* Where a compile error is: msg is the config message (for pt_conf_where)
 * and field its field, or a path below it ("methods[1]"). */
struct pt_auth_error {
    const void *msg;
    char field[96];
    char text[256];
};

/* Pointer: the plan, or NULL with *err filled. */
struct pt_auth_plan *pt_auth_plan_compile(const Portico__Config__V1__Config *cfg,
                                          struct pt_auth_error *err);
/* NULL is a no-op. Call after every instance of the plan was destroyed (and
 * after the rate-limit plan, which borrows its key table). */
void pt_auth_plan_free(struct pt_auth_plan *p);

/* Pointer: a new instance of pt_auth_filter_type for route r (named name;
 * destroy it with the type's destroy hook), or NULL with *err filled
 * (msg = r->auth, field below it: an unknown method, a claim header that
 * is one of the identity headers, ...). */
void *pt_auth_plan_route(struct pt_auth_plan *p, const Portico__Config__V1__Route *r,
                         const char *name, struct pt_auth_error *err);

extern const struct pt_filter_type pt_auth_filter_type;

/* How often API-key usage is flushed to the store, in ms. */
uint32_t pt_auth_plan_usage_flush_ms(const struct pt_auth_plan *p);

/*
 * For the rate limiter on routes without `auth`: when the exchange has no
 * identity yet and carries a valid stored API key (enabled, not expired),
 * set the key's identity (and record its use). True when it did.
 */
bool pt_auth_identify_api_key(struct pt_exchange *x, const struct pt_auth_plan *p);

/* The API key the request presented: the header's value, or the value the
 * auth step removed from the request before forwarding. Empty when none. */
struct pt_str pt_auth_api_key(struct pt_exchange *x, const struct pt_auth_plan *p);

#endif
