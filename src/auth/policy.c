/*
 * Route authorization by scopes and roles (see policy.h).
 */
#include "auth/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"

static struct pt_str *copy_words(char *const *v, size_t n)
{
    struct pt_str *out = pt_xcalloc(n ? n : 1, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        out[i].ptr = pt_xstrdup(v[i]);
        out[i].len = strlen(v[i]);
    }
    return out;
}

static bool word_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

int pt_auth_policy_compile(struct pt_auth_policy *p, const Portico__Config__V1__RouteAuth *ra,
                           char *field, size_t fieldlen, char *why, size_t whylen)
{
    memset(p, 0, sizeof(*p));
    const char *m = ra->scopes_match ? ra->scopes_match : "";
    if (!*m || strcmp(m, "all") == 0) {
        p->match = PT_AUTH_MATCH_ALL;
    } else if (strcmp(m, "any") == 0) {
        p->match = PT_AUTH_MATCH_ANY;
    } else {
        snprintf(field, fieldlen, "scopes_match");
        snprintf(why, whylen, "\"%s\": use all or any", m);
        return -1;
    }
    for (size_t i = 0; i < ra->n_required_scopes; i++)
        if (!word_ok(ra->required_scopes[i])) {
            snprintf(field, fieldlen, "required_scopes[%zu]", i);
            snprintf(why, whylen, "a scope is a non-empty word without spaces");
            return -1;
        }
    for (size_t i = 0; i < ra->n_roles; i++)
        if (!word_ok(ra->roles[i])) {
            snprintf(field, fieldlen, "roles[%zu]", i);
            snprintf(why, whylen, "a role is a non-empty word without spaces");
            return -1;
        }
    p->scopes = copy_words(ra->required_scopes, ra->n_required_scopes);
    p->nscopes = ra->n_required_scopes;
    p->roles = copy_words(ra->roles, ra->n_roles);
    p->nroles = ra->n_roles;
    return 0;
}

void pt_auth_policy_fini(struct pt_auth_policy *p)
{
    for (size_t i = 0; i < p->nscopes; i++)
        free((char *)p->scopes[i].ptr);
    for (size_t i = 0; i < p->nroles; i++)
        free((char *)p->roles[i].ptr);
    free(p->scopes);
    free(p->roles);
    memset(p, 0, sizeof(*p));
}

bool pt_auth_policy_present(const struct pt_auth_policy *p)
{
    return p->nscopes || p->nroles;
}

static bool holds(const struct pt_str *v, size_t n, struct pt_str want)
{
    for (size_t i = 0; i < n; i++)
        if (pt_str_eq(v[i], want))
            return true;
    return false;
}

enum pt_auth_verdict pt_auth_policy_check(const struct pt_auth_policy *p,
                                          const struct pt_str *scopes, size_t nscopes,
                                          const struct pt_str *roles, size_t nroles,
                                          size_t *missing)
{
    *missing = 0;
    if (p->nscopes) {
        bool any = false;
        for (size_t i = 0; i < p->nscopes; i++) {
            bool has = holds(scopes, nscopes, p->scopes[i]);
            if (!has && p->match == PT_AUTH_MATCH_ALL) {
                *missing = i;
                return PT_AUTH_POLICY_SCOPE;
            }
            any |= has;
        }
        if (p->match == PT_AUTH_MATCH_ANY && !any)
            return PT_AUTH_POLICY_SCOPE;
    }
    if (p->nroles) {
        for (size_t i = 0; i < p->nroles; i++)
            if (holds(roles, nroles, p->roles[i]))
                return PT_AUTH_POLICY_OK;
        return PT_AUTH_POLICY_ROLE;
    }
    return PT_AUTH_POLICY_OK;
}
