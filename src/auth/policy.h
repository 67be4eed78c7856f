/*
 * auth/policy.h - who may use a route, once authenticated: scopes and roles.
 *
 * A route's `auth` compiles into a policy once per snapshot; per request the
 * caller's scopes and roles (from its identity) are checked against it.
 * Sans-I/O: plain lists in, a verdict out, so the tests drive it directly.
 *
 *   required_scopes + scopes_match all   every listed scope is held
 *   required_scopes + scopes_match any   at least one listed scope is held
 *   roles                                at least one listed role is held
 * Both parts must pass when both are set. Comparison is exact
 * (case-sensitive), as OAuth scopes are.
 *
 * Thread: compile/fini on the control thread; check on any thread.
 */
#ifndef PT_AUTH_POLICY_H
#define PT_AUTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/config/v1/config.pb-c.h"
#include "portico/str.h"

enum pt_auth_match {
    PT_AUTH_MATCH_ALL = 0,
    PT_AUTH_MATCH_ANY,
};

struct pt_auth_policy {
    struct pt_str *scopes; /* owned */
    size_t nscopes;
    enum pt_auth_match match;
    struct pt_str *roles; /* owned */
    size_t nroles;
};

enum pt_auth_verdict {
    PT_AUTH_POLICY_OK = 0,
    PT_AUTH_POLICY_SCOPE, /* a required scope is missing (all), or none is held (any) */
    PT_AUTH_POLICY_ROLE,  /* none of the roles is held */
};

/* Status: 0, or -1 with *field ("scopes_match", "required_scopes[i]",
 * "roles[i]") and why (a sentence) filled: an unknown scopes_match, an
 * empty scope or role. The configuration is normally validated before. */
int pt_auth_policy_compile(struct pt_auth_policy *p, const Portico__Config__V1__RouteAuth *ra,
                           char *field, size_t fieldlen, char *why, size_t whylen);
void pt_auth_policy_fini(struct pt_auth_policy *p);

/* True when the policy requires anything (scopes or roles). */
bool pt_auth_policy_present(const struct pt_auth_policy *p);

/* The verdict for a caller holding these scopes and roles; on a refusal,
 * *missing is the index (in p->scopes or p->roles) of the first item that
 * failed (for "all": the missing scope; otherwise 0). */
enum pt_auth_verdict pt_auth_policy_check(const struct pt_auth_policy *p,
                                          const struct pt_str *scopes, size_t nscopes,
                                          const struct pt_str *roles, size_t nroles,
                                          size_t *missing);

#endif
