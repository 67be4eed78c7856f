/*
 * auth/method.h - authentication methods: one table, one shape.
 *
 * A route's `auth.methods` names methods from this table, tried in order.
 * Each method looks for its own kind of credential in the request and
 * answers with one of four statuses:
 *
 *   OK       a valid credential: out->id is the caller's identity
 *   ABSENT   no credential of this kind: the next method is tried
 *   FAIL     a credential of this kind that is not valid: 401 at once
 *            (out->reason for the log, out->challenge_params for the
 *            WWW-Authenticate challenge); no later method is tried
 *   PENDING  the answer needs I/O (a JWKS fetch, token introspection): the
 *            method started a cancellable operation and keeps it in
 *            call->op; the auth step pauses the chain. The operation's
 *            completion - later, on the exchange's worker, never inside
 *            authenticate() - calls pt_auth_call_done() with the final
 *            status; if the exchange ends first, cancel() runs instead
 *            (from the step's on_done) and done must not be called.
 *
 *   authenticate ──OK──────> policy (403?) ──> identity, headers, forward
 *        │ ──ABSENT──> next method ... none left: anonymous or 401
 *        │ ──FAIL────> 401 + WWW-Authenticate: <scheme> realm="..", <params>
 *        └─ ──PENDING─> paused ... pt_auth_call_done(OK|ABSENT|FAIL) ──> as above
 *
 * State: compile() builds a method's immutable state once per snapshot from
 * the whole configuration (NULL for a method the configuration does not use
 * is fine); authenticate() gets it back in call->state. A configuration
 * naming a method that is not in the table is a configuration error.
 *
 * Thread: compile/free on the control thread; authenticate, cancel and
 * pt_auth_call_done on the exchange's worker.
 */
#ifndef PT_AUTH_METHOD_H
#define PT_AUTH_METHOD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"
#include "http/exchange.h"
#include "portico/config/v1/config.pb-c.h"
#include "portico/str.h"

struct pt_auth_plan;
struct pt_auth_route;

enum pt_auth_status {
    PT_AUTH_OK = 0,
    PT_AUTH_ABSENT,
    PT_AUTH_FAIL,
    PT_AUTH_PENDING,
};

struct pt_auth_result {
    /* OK: the identity, borrowed until the exchange ends (the snapshot's
     * compiled data, or the exchange's arena). */
    const struct pt_identity_full *id;
    /* OK: the identity's claims as a JSON object (what claim_headers read),
     * or NULL. Borrowed like id, unless claims_owned: then the auth step
     * owns one reference and drops it when the exchange ends. */
    json_t *claims;
    bool claims_owned;
    /* FAIL: why, for the access log (static text or exchange memory). */
    const char *reason;
    /* FAIL: parameters after the realm in the challenge, e.g.
     * `error="invalid_token"`; empty for none. Static or exchange memory. */
    struct pt_str challenge_params;
    /* FAIL: the text the client is told (the JSON error body, gRPC's
     * grpc-message), e.g. RFC 6750's error_description; empty: "invalid
     * credentials". Static or exchange memory. */
    struct pt_str description;
    /* FAIL: 0 for a 401; PT_ERR_AGAIN when the method could not decide
     * (a token introspection endpoint or the JWKS is unreachable): 503,
     * gRPC UNAVAILABLE, no challenge. */
    int error;
};

/* One method's work on one exchange. The auth step owns it. */
struct pt_auth_call {
    struct pt_exchange *x;
    const struct pt_auth_plan *plan;
    void *state; /* the method's compiled state */
    /* What bind() gave for this route's entry ("jwt:<issuer>"), or NULL. */
    const void *arg;
    const struct pt_auth_route *route; /* token sources, mtls_identity, ... */
    unsigned index;                    /* this method's place in the route's methods */
    void *op;                          /* PENDING: the method's operation, for cancel() */
};

struct pt_auth_method {
    const char *name;   /* as written in auth.methods: "api_key" */
    const char *scheme; /* the WWW-Authenticate scheme: "ApiKey", "Bearer" */
    /* Pointer: the state (or NULL when the method needs none) with
     * err->text left empty; or NULL with err filled (err->msg: the config
     * message at fault). */
    void *(*compile)(const struct pt_auth_plan *plan, const Portico__Config__V1__Config *cfg,
                     struct pt_auth_error *err);
    void (*free)(void *state); /* NULL-safe; may be NULL */
    /* A route names the method as "<name>" (has_arg false) or
     * "<name>:<arg>". Status: 0 with *out (passed as call->arg), or -1 with
     * why in err. NULL: the method takes no argument and binds to NULL. */
    int (*bind)(void *state, bool has_arg, struct pt_str arg, const void **out, char *err,
                size_t errlen);
    /* Does the method read bearer tokens (Authorization: Bearer, the
     * route's token_query_param / token_cookie)? */
    bool bearer;
    enum pt_auth_status (*authenticate)(struct pt_auth_call *call, struct pt_auth_result *out);
    /* Abandon call->op (PENDING only). May be NULL for a method that never
     * pends. */
    void (*cancel)(struct pt_auth_call *call);
};

/* Pointer: the method called name, or NULL. name may be "<method>:<arg>";
 * *arg (may be NULL) is then what follows the colon and *has_arg true. */
const struct pt_auth_method *pt_auth_method_find(struct pt_str name, bool *has_arg,
                                                 struct pt_str *arg);
/* Pointer: the i-th method of the table, or NULL past its end. */
const struct pt_auth_method *pt_auth_method_at(size_t i);
/* Index of m in the table. */
size_t pt_auth_method_index(const struct pt_auth_method *m);
/* The table's names, ", "-separated, into buf (NUL-terminated, cut to n). */
void pt_auth_method_names(char *buf, size_t n);

/* A PENDING method's operation finished (see above). res is read during
 * the call only. */
void pt_auth_call_done(struct pt_auth_call *call, enum pt_auth_status st,
                       const struct pt_auth_result *res);

/* The methods themselves. */
extern const struct pt_auth_method pt_auth_method_api_key;
extern const struct pt_auth_method pt_auth_method_jwt;           /* jwt_method.c */
extern const struct pt_auth_method pt_auth_method_introspection; /* introspect_method.c */
extern const struct pt_auth_method pt_auth_method_mtls;          /* mtls.c */

#endif
