/*
 * upstream/retry.h - retry budgets and backoff, the parts of retrying that
 * do no I/O.
 *
 * Backoff: full jitter. The n-th budgeted retry of a request (n >= 1) waits
 * a uniformly random time in [0, min(max, base * 2^(n-1))] milliseconds;
 * the caller supplies the random number, so tests inject their own.
 *
 * Budget (Envoy's retry budget): retries in flight on a service may be at
 * most budget_percent of the requests in flight on it, but
 * min_concurrency retries are always allowed:
 *
 *     allowed  <=>  active_retries < max(min_concurrency,
 *                                        active_requests * percent / 100)
 *
 * The counters are runtime state outside snapshots, in a process-wide
 * registry keyed by service name, shared by every worker (atomics). A
 * snapshot holds one reference per service; a reload that keeps the
 * service keeps the object, so requests that started under the old
 * snapshot decrement the same counters they incremented (a request always
 * releases on the object it counted on, which its pinned snapshot keeps
 * alive: counters cannot underflow across a reload).
 *
 * Threads: ref/unref from any thread (registry mutex, never per request);
 * the counters from any worker (lock-free).
 */
#ifndef PT_UPSTREAM_RETRY_H
#define PT_UPSTREAM_RETRY_H

#include <stdbool.h>
#include <stdint.h>

/* The counters of one service name (opaque outside retry.c). */
struct pt_retry_budget;

/* Upper bound of the wait before the n-th retry (n >= 1; 0 reads as 1):
 * min(max_ms, base_ms * 2^(n-1)), without overflow. */
uint64_t pt_retry_backoff_cap_ms(uint32_t base_ms, uint32_t max_ms, uint32_t n);
/* The wait before the n-th retry: rnd reduced into [0, cap] (full jitter). */
uint64_t pt_retry_backoff_ms(uint32_t base_ms, uint32_t max_ms, uint32_t n, uint64_t rnd);

/* Budget arithmetic: may one more retry start now? */
bool pt_retry_budget_allows(uint64_t active_requests, uint64_t active_retries, uint32_t percent,
                            uint32_t min_concurrency);

/* Pointer: the counters of service `name` (created at zero), with one more
 * reference; never NULL. Thread: any. */
struct pt_retry_budget *pt_retry_budget_ref(const char *name);
/* Drop one reference; the last one frees it. NULL is a no-op. */
void pt_retry_budget_unref(struct pt_retry_budget *b);

/* A request to the service starts / ends (active requests). */
void pt_retry_budget_request_start(struct pt_retry_budget *b);
void pt_retry_budget_request_end(struct pt_retry_budget *b);
/* True (and one more active retry) if the budget allows a retry now;
 * release it with pt_retry_budget_retry_end once that retry is over. */
bool pt_retry_budget_retry_start(struct pt_retry_budget *b, uint32_t percent,
                                 uint32_t min_concurrency);
void pt_retry_budget_retry_end(struct pt_retry_budget *b);

/* Current counters, for tests and diagnostics. */
void pt_retry_budget_read(const struct pt_retry_budget *b, uint64_t *active_requests,
                          uint64_t *active_retries);

#endif
