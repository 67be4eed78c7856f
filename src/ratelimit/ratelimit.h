/*
 * ratelimit/ratelimit.h - rate-limit rules compiled for the data plane.
 *
 * pt_rl_plan_compile() turns a configuration's enabled rate_limit_rules
 * into a plan, once per snapshot, on the control thread (API keys are the
 * auth plan's, auth/auth.h, borrowed):
 * parameters checked (algo.h), key types parsed (key.h), each rule's local
 * table and counters taken from process-wide registries keyed by the rule's
 * name (and, for tables, a fingerprint of everything that gives counts
 * their meaning: algorithm, limit, burst, window, key type, prefixes,
 * mode), so a reload keeps counts of unchanged rules and a changed rule
 * starts over.
 *
 * pt_rl_plan_route() gives the filter instance of one route: its rules in
 * order - the global rules (no `route`) first, then the route's own, each
 * group in configuration order - or NULL when no rule applies. The snapshot
 * appends that instance (filter type pt_rl_filter_type, "rate-limit") at
 * the end of the route's request chain, after every configured filter, so
 * the auth step has set the caller's identity before it runs. On a route
 * without `auth`, a valid stored API key still identifies the caller (its
 * client_id and tier) for the rules; an invalid one is simply anonymous.
 *
 * Per request (filter.c): the first rejection wins; rules that allowed the
 * request before it are refunded; shadow rules count and log only; queue
 * rules hold the request (a timer, PAUSE/resume) until it passes or its
 * max_queue_ms is spent. See docs/ratelimiting.md.
 *
 * Thread: compile/free and instance create/destroy on the control thread;
 * the filter's hooks on workers.
 */
#ifndef PT_RATELIMIT_RATELIMIT_H
#define PT_RATELIMIT_RATELIMIT_H

#include "auth/auth.h"
#include "core/diag.h"
#include "portico/config/v1/config.pb-c.h"
#include "portico/filter.h"

struct pt_rl_plan;

/* Pointer: the plan (possibly with no rules), or NULL after reporting
 * every problem to diag. */
struct pt_rl_plan *pt_rl_plan_compile(const Portico__Config__V1__Config *cfg,
                                      const struct pt_auth_plan *auth, struct pt_diag *diag);
/* NULL is a no-op. Call after every instance of the plan was destroyed. */
void pt_rl_plan_free(struct pt_rl_plan *plan);

/* Pointer: a new instance of pt_rl_filter_type for the route (destroy it
 * with the type's destroy hook), or NULL when no enabled rule applies. */
void *pt_rl_plan_route(struct pt_rl_plan *plan, const char *route);

extern const struct pt_filter_type pt_rl_filter_type;

#endif
