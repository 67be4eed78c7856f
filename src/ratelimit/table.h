/*
 * ratelimit/table.h - one rule's local counters, shared by every worker.
 *
 * An instance-wide table of key -> algorithm state (algo.h), so a limit of
 * 100 means 100 per instance whatever the worker thread. It is split into
 * PT_RL_TABLE_STRIPES stripes, each a small chained hash table with its own
 * mutex and its own LRU list; a key's stripe and bucket come from a keyed
 * hash (SipHash-2-4 with a random key per table), so clients choosing
 * their keys cannot pile them into one chain. A decision holds one stripe
 * lock for a hash lookup and a few integer operations.
 *
 * Memory is bounded: at most max_keys keys (spread over the stripes). A
 * key is "idle" once its quota is whole again (the algorithm's reset time;
 * two windows for the sliding-window counter): forgetting it then changes
 * nothing. Each operation drops up to two idle keys from its stripe's LRU
 * end; a full stripe evicts its least recently used key even if it is not
 * idle (that key starts over with a whole quota; counted in
 * evictions_busy).
 *
 * Thread: any; the table synchronizes itself.
 */
#ifndef PT_RATELIMIT_TABLE_H
#define PT_RATELIMIT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimit/algo.h"

#define PT_RL_TABLE_STRIPES 64
#define PT_RL_DEFAULT_MAX_KEYS 100000u

struct pt_rl_table;

/* Pointer: a new empty table (params copied; max_keys 0 = the default). */
struct pt_rl_table *pt_rl_table_new(const struct pt_rl_params *p, size_t max_keys);
/* NULL is a no-op. */
void pt_rl_table_free(struct pt_rl_table *t);

/* pt_rl_decide() on key's state at now_ns (the key is created when new). */
void pt_rl_table_decide(struct pt_rl_table *t, const void *key, size_t len, uint64_t now_ns,
                        uint64_t n, struct pt_rl_decision *d);
/* pt_rl_refund() on key's state (nothing when the key was evicted). */
void pt_rl_table_refund(struct pt_rl_table *t, const void *key, size_t len, uint64_t charged_ns,
                        uint64_t n);

/*
 * Leases (hybrid mode): the same table holding, per key, tokens taken from
 * Redis in a batch and not spent yet, valid until an expiry, or a note
 * that Redis had none left. take: PT_RL_LEASE_TOKEN (one token fewer;
 * *left = tokens that remain) when the key holds an unexpired token.
 * add: k more tokens, all valid until now_ns + ttl_ns.
 */
enum pt_rl_lease {
    PT_RL_LEASE_MISS = 0, /* no token: the caller fetches a lease (marked in flight) */
    PT_RL_LEASE_TOKEN,    /* one token spent from the lease */
    PT_RL_LEASE_DENIED,   /* Redis said "empty" until *left ns from now */
    PT_RL_LEASE_BUSY,     /* no token, another request is fetching a lease */
};
/* On MISS the key is marked "fetching" until now_ns + fetch_ns (or until
 * lease_add / lease_deny), so one lease at a time is in flight per key. */
enum pt_rl_lease pt_rl_table_lease_take(struct pt_rl_table *t, const void *key, size_t len,
                                        uint64_t now_ns, uint64_t fetch_ns, uint64_t *left);
/* Remember that Redis had no token for key until now_ns + retry_ns (capped
 * at ttl_ns): requests meanwhile are rejected without asking again. */
void pt_rl_table_lease_deny(struct pt_rl_table *t, const void *key, size_t len, uint64_t now_ns,
                            uint64_t retry_ns, uint64_t ttl_ns);
void pt_rl_table_lease_add(struct pt_rl_table *t, const void *key, size_t len, uint64_t now_ns,
                           uint64_t k, uint64_t ttl_ns);

/* Keys held now, and keys evicted while not idle, since creation. */
size_t pt_rl_table_count(struct pt_rl_table *t);
uint64_t pt_rl_table_evictions_busy(const struct pt_rl_table *t);

/* SipHash-2-4 of data under the 128-bit key k (exposed for the tests). */
uint64_t pt_rl_siphash(const uint64_t k[2], const void *data, size_t len);

#endif
