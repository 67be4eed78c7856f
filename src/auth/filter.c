/*
 * The auth step (see auth.h): header hygiene on every route; on a route
 * with `auth`, authentication by the route's methods in order, the policy,
 * the identity and its headers, and the refusals.
 *
 * Request head:
 *   1. remove every header the gateway sets (identity and claim headers)
 *   2. no `auth`: continue
 *   3. methods in order (method.h): OK decides, ABSENT tries the next,
 *      FAIL is a 401, PENDING pauses until pt_auth_call_done()
 *   4. no credential at all: allow_anonymous (and no policy) continues as
 *      anonymous, anything else is a 401 with every method's challenge
 *   5. an identity: the policy (scopes, roles), then the route's rule
 *      (rule.h) - 403 on refusal; then the identity is set, its headers
 *      added, Authorization / Cookie (unless kept), the API-key header
 *      and the route's token query parameter / cookie removed, and the
 *      request continues
 * A method that could not decide (JWKS or introspection endpoint
 * unavailable: result.error) makes a 503 without a challenge.
 * Response head: a 401 gets its WWW-Authenticate challenges.
 * on_done: a pending method is cancelled; owned claims are released.
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"
#include "auth/bearer.h"
#include "auth/rule.h"
#include "core/error.h"
#include "core/log.h"
#include "core/time.h"
#include "http/headers.h"

struct auth_x {
    const struct pt_auth_route *r;
    struct pt_exchange *x;
    unsigned next; /* the method to try next */
    struct pt_auth_call call;
    bool pending;              /* call is in a method's hands */
    struct pt_str *challenges; /* the 401's, or NULL */
    size_t nchallenges;
    json_t *claims_owned; /* released in on_done */
};

/* The presented API key the step removed, for the rate limiter. */
struct removed_key {
    struct pt_str value;
};

static void *auth_create(const struct pt_filter_config *cfg, struct pt_diag *diag)
{
    (void)cfg;
    pt_diag_errorf(diag, NULL, "auth is configured with a route's `auth`, not as a filter");
    return NULL;
}

static void auth_destroy(void *instance)
{
    pt_auth_route_free(instance);
}

static void set_reason(struct pt_exchange *x, const char *reason)
{
    x->auth_reason = pt_str_from_cstr(reason);
}

static int method_index(const struct pt_auth_method *m)
{
    return m ? (int)pt_auth_method_index(m) : -1;
}

/* 401: the challenges are added by the response hook, which the reply runs
 * at once (the step's request hook has run, so its response hook does). */
static enum pt_filter_status unauthenticated(struct auth_x *s, const struct pt_auth_method *m,
                                             const struct pt_auth_result *res, const char *reason)
{
    const struct pt_auth_route *r = s->r;
    set_reason(s->x, reason);
    pt_auth_stats_count(r->stats, method_index(m), PT_AUTH_DENIED);
    if (res && res->error) {
        /* The method could not decide (an endpoint is down): not the
         * caller's fault, so no challenge; logged by the method. */
        pt_log_debug("auth: route %s: %s (%s)", r->name, pt_err_text(res->error), reason);
        if (pt_exchange_reply_error(s->x, res->error, PT_STR("authentication unavailable")) != 0)
            return PT_FILTER_CONTINUE;
        return PT_FILTER_REPLIED;
    }
    if (m) {
        /* One challenge: the failed method's, with its parameters. */
        char buf[512];
        int n = snprintf(buf, sizeof(buf), "%s realm=\"%s\"%s%.*s", m->scheme, r->plan->realm,
                         res && res->challenge_params.len ? ", " : "",
                         res ? (int)res->challenge_params.len : 0,
                         res ? res->challenge_params.ptr : "");
        struct pt_str *c = pt_exchange_alloc(s->x, sizeof(*c));
        char *copy = pt_exchange_alloc(s->x, (size_t)n);
        if (c && copy && n > 0 && (size_t)n < sizeof(buf)) {
            memcpy(copy, buf, (size_t)n);
            *c = (struct pt_str){copy, (size_t)n};
            s->challenges = c;
            s->nchallenges = 1;
        }
    } else {
        s->challenges = r->challenges;
        s->nchallenges = r->nchallenges;
    }
    pt_log_debug("auth: route %s: 401 (%s)", r->name, reason);
    struct pt_str detail = pt_str_from_cstr(m ? "invalid credentials" : "authentication required");
    if (m && res && res->description.len)
        detail = res->description;
    if (pt_exchange_reply_error(s->x, PT_ERR_UNAUTHENTICATED, detail) != 0)
        return PT_FILTER_CONTINUE; /* cannot happen before a response started */
    return PT_FILTER_REPLIED;
}

static enum pt_filter_status forbidden(struct auth_x *s, const struct pt_auth_method *m,
                                       const char *reason)
{
    set_reason(s->x, reason);
    pt_auth_stats_count(s->r->stats, method_index(m), PT_AUTH_FORBIDDEN);
    pt_log_debug("auth: route %s: 403 (%s)", s->r->name, reason);
    if (pt_exchange_reply_error(s->x, PT_ERR_FORBIDDEN, PT_STR_NULL) != 0)
        return PT_FILTER_CONTINUE;
    return PT_FILTER_REPLIED;
}

/* Remove the credentials before forwarding; keep the API key's value for
 * the rate limiter (key_type api_key), which runs after this step. */
static void remove_credentials(struct auth_x *s)
{
    const struct pt_auth_route *r = s->r;
    struct pt_headers *h = &s->x->req.headers;
    struct pt_str key;
    if (pt_headers_find(h, r->plan->api_key_header, &key) && key.len) {
        struct removed_key *rk = pt_exchange_alloc(s->x, sizeof(*rk));
        if (rk) {
            rk->value = key; /* the value lives in the arena, not in the list */
            (void)pt_exchange_set_data(s->x, r->plan, rk);
        }
    }
    pt_headers_remove(h, r->plan->api_key_header);
    if (!r->keep_authorization)
        pt_headers_remove(h, PT_STR("authorization"));
    if (!r->keep_cookie)
        pt_headers_remove(h, PT_STR("cookie"));
    else if (r->token_cookie.len)
        pt_auth_bearer_remove_cookie(s->x, r->token_cookie);
    if (r->token_query_param.len)
        pt_auth_bearer_remove_query(s->x, r->token_query_param);
}

/* Identity headers for the upstream. A header that cannot be added (the
 * exchange's limits) fails the request: forwarding without the identity
 * the route promises would be worse. Status: 0 or PT_ERR_*. */
static int identity_headers(struct auth_x *s, const json_t *claims)
{
    const struct pt_auth_route *r = s->r;
    struct pt_exchange *x = s->x;
    struct pt_headers *h = &x->req.headers;
    struct pt_str subject = pt_exchange_identity_get(x, PT_IDENTITY_SUBJECT);
    struct pt_str client = pt_exchange_identity_get(x, PT_IDENTITY_CLIENT_ID);
    int rc = 0;
    if (subject.len)
        rc = pt_headers_set(h, r->plan->user_header, subject);
    if (!rc && client.len)
        rc = pt_headers_set(h, r->plan->client_id_header, client);
    for (size_t i = 0; !rc && i < r->nclaims; i++) {
        struct pt_str v;
        if (pt_auth_claim_text(x, claims, r->claims[i].claim, &v))
            rc = pt_headers_set(h, r->claims[i].header, v);
    }
    return rc == PT_ERR_BAD_REQUEST ? 0 : rc; /* a value with bad bytes is not sent */
}

static enum pt_filter_status authenticated(struct auth_x *s, const struct pt_auth_method *m,
                                           const struct pt_auth_result *res)
{
    const struct pt_auth_route *r = s->r;
    struct pt_exchange *x = s->x;
    if (res->claims_owned)
        s->claims_owned = res->claims;
    const struct pt_identity_full *id = res->id;
    size_t missing;
    enum pt_auth_verdict v =
        pt_auth_policy_check(&r->policy, id->list[PT_IDENTITY_SCOPES], id->n[PT_IDENTITY_SCOPES],
                             id->list[PT_IDENTITY_ROLES], id->n[PT_IDENTITY_ROLES], &missing);
    if (v != PT_AUTH_POLICY_OK) {
        char buf[256];
        if (v == PT_AUTH_POLICY_ROLE)
            snprintf(buf, sizeof(buf), "%s: none of the required roles", m->name);
        else if (r->policy.match == PT_AUTH_MATCH_ALL)
            snprintf(buf, sizeof(buf), "%s: missing scope \"%.*s\"", m->name,
                     (int)r->policy.scopes[missing].len, r->policy.scopes[missing].ptr);
        else
            snprintf(buf, sizeof(buf), "%s: none of the required scopes", m->name);
        char *reason = pt_exchange_alloc(x, strlen(buf) + 1);
        if (reason)
            memcpy(reason, buf, strlen(buf) + 1);
        return forbidden(s, m, reason ? reason : "policy refused");
    }
    if (r->rule && !pt_auth_rule_allows(r->rule, x, id, res->claims)) {
        char buf[160];
        snprintf(buf, sizeof(buf), "%s: the route's rule is not true for the caller", m->name);
        char *reason = pt_exchange_alloc(x, strlen(buf) + 1);
        if (reason)
            memcpy(reason, buf, strlen(buf) + 1);
        return forbidden(s, m, reason ? reason : "rule refused");
    }
    if (!id->claims.len && res->claims && json_is_object(res->claims)) {
        /* The exchange keeps a reference and renders the text only if
         * someone reads it: most requests never do. */
        json_t *ref = s->claims_owned ? s->claims_owned : json_incref(res->claims);
        s->claims_owned = NULL;
        pt_exchange_identity_adopt(x, id, ref, &pt_auth_claims_ops);
    } else {
        pt_exchange_identity_replace(x, id);
    }
    remove_credentials(s);
    if (identity_headers(s, res->claims) != 0) {
        pt_exchange_reply_error(x, PT_ERR_HEADERS_TOO_LARGE, PT_STR_NULL);
        return PT_FILTER_REPLIED;
    }
    pt_auth_stats_count(r->stats, method_index(m), PT_AUTH_ALLOWED);
    return PT_FILTER_CONTINUE;
}

/* Try the methods from s->next on. */
static enum pt_filter_status run(struct auth_x *s)
{
    const struct pt_auth_route *r = s->r;
    for (; s->next < r->nmethods; s->next++) {
        const struct pt_auth_method *m = r->methods[s->next];
        struct pt_auth_result res = {0};
        s->call = (struct pt_auth_call){
            .x = s->x,
            .plan = r->plan,
            .state = r->plan->state[pt_auth_method_index(m)],
            .arg = r->method_args[s->next],
            .route = r,
            .index = s->next,
        };
        switch (m->authenticate(&s->call, &res)) {
        case PT_AUTH_OK:
            return authenticated(s, m, &res);
        case PT_AUTH_FAIL:
            return unauthenticated(s, m, &res, res.reason ? res.reason : "invalid credential");
        case PT_AUTH_PENDING:
            s->pending = true;
            return PT_FILTER_PAUSE;
        case PT_AUTH_ABSENT:
            break;
        }
    }
    /* No credential of any kind the route accepts. */
    if (!r->allow_anonymous)
        return unauthenticated(s, NULL, NULL, "no credential");
    if (pt_auth_policy_present(&r->policy) || r->rule)
        return unauthenticated(s, NULL, NULL, "no credential; the route's policy needs one");
    remove_credentials(s);
    pt_auth_stats_count(r->stats, -1, PT_AUTH_ANONYMOUS);
    return PT_FILTER_CONTINUE;
}

void pt_auth_call_done(struct pt_auth_call *call, enum pt_auth_status st,
                       const struct pt_auth_result *res)
{
    struct auth_x *s = (struct auth_x *)((char *)call - offsetof(struct auth_x, call));
    if (!s->pending)
        return;
    s->pending = false;
    const struct pt_auth_method *m = s->r->methods[s->next];
    enum pt_filter_status fs;
    switch (st) {
    case PT_AUTH_OK:
        fs = authenticated(s, m, res);
        break;
    case PT_AUTH_ABSENT:
        s->next++;
        fs = run(s);
        break;
    case PT_AUTH_PENDING: /* not a final answer: treat as a failure */
    case PT_AUTH_FAIL:
    default:
        fs = unauthenticated(s, m, res, res && res->reason ? res->reason : "invalid credential");
        break;
    }
    if (fs == PT_FILTER_CONTINUE)
        pt_exchange_resume(s->x);
    /* PAUSE: another method pends; REPLIED: the reply runs the response. */
}

static enum pt_filter_status auth_request_head(struct pt_exchange *x, void *instance)
{
    const struct pt_auth_route *r = instance;
    pt_auth_strip_alike(&x->req.headers, r->plan->strip, r->plan->nstrip);
    if (!r->enabled)
        return PT_FILTER_CONTINUE;
    struct auth_x *s = pt_exchange_alloc(x, sizeof(*s));
    if (!s || pt_exchange_set_data(x, r, s) != 0) {
        pt_exchange_reply_error(x, PT_ERR_LIMIT, PT_STR_NULL);
        return PT_FILTER_REPLIED;
    }
    memset(s, 0, sizeof(*s));
    s->r = r;
    s->x = x;
    return run(s);
}

static enum pt_filter_status auth_response_head(struct pt_exchange *x, void *instance)
{
    struct auth_x *s = pt_exchange_get_data(x, instance);
    if (!s || !s->nchallenges)
        return PT_FILTER_CONTINUE;
    struct pt_headers *h = pt_exchange_response_headers(x);
    for (size_t i = 0; i < s->nchallenges; i++)
        (void)pt_headers_add(h, PT_STR("www-authenticate"), s->challenges[i]);
    return PT_FILTER_CONTINUE;
}

static void auth_done(struct pt_exchange *x, void *instance)
{
    struct auth_x *s = pt_exchange_get_data(x, instance);
    if (!s)
        return;
    if (s->pending) {
        s->pending = false;
        const struct pt_auth_method *m = s->r->methods[s->next];
        if (m->cancel)
            m->cancel(&s->call);
    }
    if (s->claims_owned) {
        json_decref(s->claims_owned);
        s->claims_owned = NULL;
    }
}

const struct pt_filter_type pt_auth_filter_type = {
    .name = "auth",
    .abi_version = PT_ABI_VERSION,
    .create = auth_create,
    .destroy = auth_destroy,
    .on_request_head = auth_request_head,
    .on_response_head = auth_response_head,
    .on_done = auth_done,
};

/* --- for the rate limiter ------------------------------------------------------- */

bool pt_auth_identify_api_key(struct pt_exchange *x, const struct pt_auth_plan *p)
{
    if (x->identity.base.client_id.len || !p->keys->n)
        return false;
    struct pt_str v;
    if (!pt_headers_find(&x->req.headers, p->api_key_header, &v) || !v.len)
        return false;
    const struct pt_auth_key *k;
    uint64_t now = pt_time_real_ns();
    if (pt_auth_keys_lookup(p->keys, v, now, &k) != PT_AUTH_KEY_OK)
        return false;
    pt_auth_usage_touch(k->usage, now);
    pt_exchange_identity_replace(x, &k->id.view);
    return true;
}

struct pt_str pt_auth_api_key(struct pt_exchange *x, const struct pt_auth_plan *p)
{
    struct pt_str v;
    if (pt_headers_find(&x->req.headers, p->api_key_header, &v))
        return v;
    const struct removed_key *rk = pt_exchange_get_data(x, p);
    return rk ? rk->value : PT_STR_NULL;
}
