/*
 * auth/auth_int.h - private to src/auth: the plan and a route's step.
 */
#ifndef PT_AUTH_AUTH_INT_H
#define PT_AUTH_AUTH_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/apikey.h"
#include "auth/auth.h"
#include "auth/expr.h"
#include "auth/method.h"
#include "auth/policy.h"
#include "auth/stats.h"

/* Methods one route may list. */
#define PT_AUTH_MAX_ROUTE_METHODS 8

struct pt_auth_plan {
    struct pt_str api_key_header; /* owned, lower case */
    struct pt_str user_header;    /* owned, lower case */
    struct pt_str client_id_header;
    char *realm;
    uint32_t usage_flush_ms;
    struct pt_auth_keys *keys;
    void *state[PT_AUTH_STATS_METHODS]; /* by method index */
    /* Every header the gateway sets: removed from every request. */
    struct pt_str *strip; /* owned, lower case */
    size_t nstrip;
};

struct pt_auth_claim_header {
    char *claim;
    struct pt_str header; /* owned, lower case */
};

/* Which certificate field the "mtls" method makes the subject. */
enum pt_auth_mtls_field {
    PT_AUTH_MTLS_SUBJECT_CN = 0,
    PT_AUTH_MTLS_SAN_DNS,
    PT_AUTH_MTLS_SAN_URI,
    PT_AUTH_MTLS_SAN_EMAIL,
    PT_AUTH_MTLS_SUBJECT,
    PT_AUTH_MTLS_FINGERPRINT,
};

/* Status: 0 and *out for NULL, "" (the default, subject_cn) or a field
 * name; -1 for anything else. (mtls.c) */
int pt_auth_mtls_field_parse(const char *s, enum pt_auth_mtls_field *out);

/* The instance of the auth step on one route. */
struct pt_auth_route {
    const struct pt_auth_plan *plan;
    char *name;
    bool enabled; /* false: the route has no `auth` (header hygiene only) */
    const struct pt_auth_method *methods[PT_AUTH_MAX_ROUTE_METHODS];
    const void *method_args[PT_AUTH_MAX_ROUTE_METHODS]; /* from each method's bind() */
    unsigned nmethods;
    struct pt_str token_query_param; /* owned; empty: off */
    struct pt_str token_cookie;      /* owned; empty: off */
    enum pt_auth_mtls_field mtls_identity;
    struct pt_expr *rule; /* ABAC rule (rule.h), or NULL */
    bool allow_anonymous;
    bool keep_authorization;
    bool keep_cookie;
    struct pt_auth_policy policy;
    struct pt_auth_claim_header *claims;
    size_t nclaims;
    /* WWW-Authenticate values when no method found a credential: one per
     * method, "<scheme> realm=\"<realm>\"". Owned. */
    struct pt_str *challenges;
    size_t nchallenges;
    struct pt_auth_stats *stats; /* NULL when !enabled */
};

/* Pointer: the step of a route with auth settings ra (NULL: hygiene only),
 * or NULL with *err filled. */
struct pt_auth_route *pt_auth_route_new(const struct pt_auth_plan *p,
                                        const Portico__Config__V1__RouteAuth *ra, const char *name,
                                        struct pt_auth_error *err);
void pt_auth_route_free(struct pt_auth_route *r);

#endif
