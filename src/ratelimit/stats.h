/*
 * ratelimit/stats.h - decisions counted per rule, outliving snapshots.
 *
 * A process-wide registry of counters keyed by rule name (like the route
 * counters of observe/metrics.h): each snapshot takes a reference on the
 * counters of every enabled rule and drops it when destroyed, so a rule
 * kept across a reload keeps counting, and a deleted rule's counters go
 * away with the last snapshot that had it.
 *
 * Outcomes, one per rule per request the rule applied to:
 *   allowed         the rule let it through (after queueing, if it waited)
 *   rejected        the rule rejected it (429 / RESOURCE_EXHAUSTED)
 *   shadow_rejected a shadow rule would have rejected it (it passed)
 *   queued          it was held for the rule (then allowed or rejected too)
 *   failed_open     the counter store failed and the rule let it through
 *   failed_closed   the counter store failed and the rule rejected it
 *
 * Threads: ref/unref/list from any thread (a registry mutex, never per
 * request); count from any thread (relaxed atomics spread over
 * cache-line slots by worker, no lock).
 */
#ifndef PT_RATELIMIT_STATS_H
#define PT_RATELIMIT_STATS_H

#include <stddef.h>
#include <stdint.h>

enum pt_rl_outcome {
    PT_RL_ALLOWED = 0,
    PT_RL_REJECTED,
    PT_RL_SHADOW_REJECTED,
    PT_RL_QUEUED,
    PT_RL_FAILED_OPEN,
    PT_RL_FAILED_CLOSED,
    PT_RL_NOUTCOMES,
};

struct pt_rl_stats;

/* Pointer, never NULL: the counters of rule `name`, one more reference. */
struct pt_rl_stats *pt_rl_stats_ref(const char *name);
/* NULL is a no-op. */
void pt_rl_stats_unref(struct pt_rl_stats *st);
void pt_rl_stats_count(struct pt_rl_stats *st, enum pt_rl_outcome o);

/* "allowed", "rejected", ... (the Prometheus `decision` label). */
const char *pt_rl_outcome_name(enum pt_rl_outcome o);

struct pt_rl_stats_entry {
    char *rule;
    uint64_t counts[PT_RL_NOUTCOMES];
};

/* Pointer, never NULL: every rule's counters sorted by name; free with
 * pt_rl_stats_list_free(). */
struct pt_rl_stats_entry *pt_rl_stats_list(size_t *n);
void pt_rl_stats_list_free(struct pt_rl_stats_entry *list, size_t n);

#endif
