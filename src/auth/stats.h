/*
 * auth/stats.h - authentication decisions counted per route, outliving
 * snapshots.
 *
 * A process-wide registry keyed by route name (like the rate-limit rule
 * counters): each snapshot takes a reference on the counters of every route
 * with `auth` and drops it when destroyed, so a route kept across a reload
 * keeps counting and a deleted route's counters go with the last snapshot
 * that had it.
 *
 * One count per request the auth step decided, by the method that decided
 * ("none" when no method found a credential) and the decision:
 *   allowed    authenticated and authorized: forwarded
 *   anonymous  no credential, and the route allows anonymous callers
 *   denied     401 / UNAUTHENTICATED: missing or invalid credential
 *   forbidden  403 / PERMISSION_DENIED: authenticated, refused by the policy
 * Prometheus: portico_auth_decisions_total{route,method,decision}.
 *
 * Threads: ref/unref/list from any thread (a registry mutex, never per
 * request); count from any thread (relaxed atomics in per-worker slots).
 */
#ifndef PT_AUTH_STATS_H
#define PT_AUTH_STATS_H

#include <stddef.h>
#include <stdint.h>

enum pt_auth_decision {
    PT_AUTH_ALLOWED = 0,
    PT_AUTH_ANONYMOUS,
    PT_AUTH_DENIED,
    PT_AUTH_FORBIDDEN,
    PT_AUTH_NDECISIONS,
};

/* Methods counted: the entries of the method table (method.h), then
 * "none". */
#define PT_AUTH_STATS_METHODS 8

struct pt_auth_stats;

/* Pointer, never NULL: the counters of route `name`, one more reference.
 * methods_mask: the methods (bit = index in the method table) the route
 * uses, shown in the exposition even while zero. */
struct pt_auth_stats *pt_auth_stats_ref(const char *name, unsigned methods_mask);
/* NULL is a no-op. */
void pt_auth_stats_unref(struct pt_auth_stats *st);
/* method: index in the method table, or -1 for "none". */
void pt_auth_stats_count(struct pt_auth_stats *st, int method, enum pt_auth_decision d);

/* "allowed", "anonymous", "denied", "forbidden". */
const char *pt_auth_decision_name(enum pt_auth_decision d);

struct pt_auth_stats_row {
    const char *method; /* a method's name or "none" (static) */
    uint64_t counts[PT_AUTH_NDECISIONS];
};

struct pt_auth_stats_entry {
    char *route;
    struct pt_auth_stats_row *rows; /* the route's methods, then "none" */
    size_t nrows;
};

/* Pointer, never NULL: every route's counters sorted by route name; free
 * with pt_auth_stats_list_free(). */
struct pt_auth_stats_entry *pt_auth_stats_list(size_t *n);
void pt_auth_stats_list_free(struct pt_auth_stats_entry *list, size_t n);

#endif
