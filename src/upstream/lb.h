/*
 * upstream/lb.h - load balancing: which endpoint of a service gets a request.
 *
 * A sans-I/O core: every algorithm is a small function table that takes
 * compiled state, per-worker state, an optional request key and an endpoint
 * to avoid (retries), and returns an endpoint index. No sockets, no clocks
 * (callers pass the time), so each algorithm is unit-testable on its own.
 *
 * State:
 *   struct pt_lb        compiled with the service (immutable, except the
 *                       per-endpoint atomics in shared[]: in-flight counts
 *                       and peak-EWMA latencies, counted across all workers
 *                       for this snapshot's service);
 *   struct pt_lb_local  one per worker (round-robin position, smooth WRR
 *                       current weights, random generator); written only by
 *                       its worker.
 *
 * Algorithms:
 *   round_robin           each worker cycles through the endpoints (workers
 *                         start at different positions);
 *   weighted_round_robin  smooth weighted round robin (nginx's): weights
 *                         {5,1,1} give a a b a c a a, never a burst;
 *   least_connections     fewest in-flight requests relative to weight,
 *                         ties broken by power of two choices (two of
 *                         the tied at random, the fewer in flight when
 *                         read again), not always the first;
 *   ip_hash, hash         a Maglev table built at compile time from the
 *                         endpoints' "host:port" (deterministic across
 *                         workers and instances); the key is the client IP
 *                         (ip_hash) or hash_on ("ip", "header:<name>",
 *                         "cookie:<name>"); requests without the key fall
 *                         back to round robin;
 *   random                weighted random;
 *   peak_ewma             power of two random choices by cost = peak EWMA
 *                         of response times x (in-flight + 1); the EWMA
 *                         decays towards 0 while an endpoint is not
 *                         observed, so a once-slow endpoint is retried.
 *
 * With more than one endpoint, the avoided endpoint is never returned.
 *
 * Thread: pt_lb_init/_fini on the control plane; the rest on any worker
 * with its own pt_lb_local.
 */
#ifndef PT_UPSTREAM_LB_H
#define PT_UPSTREAM_LB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

struct pt_headers;

enum pt_lb_algorithm {
    PT_LB_ROUND_ROBIN = 0,
    PT_LB_WEIGHTED_ROUND_ROBIN,
    PT_LB_LEAST_CONNECTIONS,
    PT_LB_IP_HASH,
    PT_LB_HASH,
    PT_LB_RANDOM,
    PT_LB_PEAK_EWMA,
};

/* Where a hashing algorithm (or a traffic split) takes its key from. A new
 * key (e.g. the authenticated client id) is a new value here, parsed by
 * pt_lb_hash_on_parse and read by pt_lb_key_get. */
enum pt_lb_key {
    PT_LB_KEY_NONE = 0,
    PT_LB_KEY_IP,
    PT_LB_KEY_HEADER,
    PT_LB_KEY_COOKIE,
};

/* How an attempt ended (pt_lb_on_end). */
enum pt_lb_outcome {
    PT_LB_DONE,      /* a response: its latency is a sample */
    PT_LB_FAILED,    /* connect/reset/timeout: a penalty sample */
    PT_LB_ABANDONED, /* cancelled by the client or replaced: no sample */
};

/* Peak EWMA: decay time constant, and the sample a failure counts as. */
#define PT_LB_EWMA_TAU_NS 10000000000ull
#define PT_LB_FAILURE_PENALTY_NS 1000000000ull

/* Per endpoint, shared by all workers; own cache line each. */
struct pt_lb_shared {
    _Alignas(64) atomic_uint inflight;
    atomic_uint_fast64_t ewma_bits; /* double, nanoseconds; 0 = no sample */
    atomic_uint_fast64_t stamp_ns;  /* when ewma was last updated */
};

struct pt_lb;
struct pt_lb_local;

struct pt_lb_ops {
    const char *name;
    bool track; /* needs on_start/on_end (in-flight counts, latencies) */
    /* Status: 0 or PT_ERR_INVALID. Builds what choose needs (tables). */
    int (*init)(struct pt_lb *lb, const char *const *keys);
    uint32_t (*choose)(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key,
                       int avoid, uint64_t now_ns, const bool *down);
};

struct pt_lb {
    enum pt_lb_algorithm algorithm;
    const struct pt_lb_ops *ops;
    uint32_t n;
    uint32_t *weights; /* n, each >= 1 */
    uint64_t total_weight;
    struct pt_lb_shared *shared; /* n; NULL unless ops->track */
    uint32_t *table;             /* Maglev lookup table (hash algorithms) */
    uint32_t table_size;         /* prime */
    enum pt_lb_key key_kind;
    char *key_name; /* header (lower case) or cookie name */
};

struct pt_lb_local {
    _Alignas(64) uint32_t rr;
    uint64_t rng;
    int64_t *current; /* smooth WRR current weights (n), NULL for others */
};

/* Zeroed memory aligned for the _Alignas(64) structs above; free() it.
 * Aborts when out of memory. */
void *pt_lb_xcalloc_aligned(size_t nmemb, size_t size);

/* Parse a hash_on value: "ip", "header:<name>" or "cookie:<name>" (name
 * non-empty, a token). name points into s. Status: 0 or PT_ERR_INVALID. */
int pt_lb_hash_on_parse(const char *s, enum pt_lb_key *kind, struct pt_str *name);

/*
 * Compile a balancer for n endpoints (n may be 0: choose must not be
 * called then). weights: n values (0 counts as 1); keys: n endpoint keys
 * ("host:port") for hashing; hash_on: NULL/"" or as pt_lb_hash_on_parse
 * (ip_hash: defaults to "ip"). Status: 0 or PT_ERR_INVALID (nothing kept).
 */
int pt_lb_init(struct pt_lb *lb, enum pt_lb_algorithm a, const uint32_t *weights,
               const char *const *keys, uint32_t n, const char *hash_on);
void pt_lb_fini(struct pt_lb *lb);

/* Per-worker state; seed distinguishes workers (e.g. the worker id). */
void pt_lb_local_init(struct pt_lb_local *loc, const struct pt_lb *lb, uint64_t seed);
void pt_lb_local_fini(struct pt_lb_local *loc);

/* Index of the endpoint for a request (lb->n >= 1). key: the request's
 * hash key (ptr NULL: none); avoid: an index to skip, or -1. */
uint32_t pt_lb_choose(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key, int avoid,
                      uint64_t now_ns);

/*
 * pt_lb_choose, considering only endpoints i with !down[i] (down: n
 * flags, or NULL: all up): round robin cycles over the others, smooth WRR
 * gives them the turns, least connections / peak EWMA / random compare and
 * draw among them, hashing walks the Maglev table to the next slot of an
 * up endpoint. When every endpoint is down or avoided, the choice is made
 * as if none were down (callers decide beforehand whether to fail).
 */
uint32_t pt_lb_choose_usable(const struct pt_lb *lb, struct pt_lb_local *loc, struct pt_str key,
                             int avoid, uint64_t now_ns, const bool *down);

/* An attempt on endpoint i started / ended (only when lb->ops->track). */
void pt_lb_on_start(const struct pt_lb *lb, uint32_t i);
void pt_lb_on_end(const struct pt_lb *lb, uint32_t i, enum pt_lb_outcome o, uint64_t latency_ns,
                  uint64_t now_ns);

/* Current peak-EWMA latency of endpoint i at now_ns (decayed), ns. */
double pt_lb_ewma_ns(const struct pt_lb *lb, uint32_t i, uint64_t now_ns);

/* The value of a request key: the client IP (PT_LB_KEY_IP), the first
 * field called name (PT_LB_KEY_HEADER, name in lower case) or the cookie
 * called name in any Cookie field (PT_LB_KEY_COOKIE). ptr NULL when absent
 * or kind is PT_LB_KEY_NONE. Borrowed from headers/peer_ip. Shared by the
 * hashing balancers and traffic splits (proxy/select.h). */
struct pt_str pt_lb_key_get(enum pt_lb_key kind, const char *name, const struct pt_headers *h,
                            const char *peer_ip);

/* The request's hash key per lb's key_kind (ptr NULL when absent or the
 * algorithm does not hash). Borrowed from headers/peer_ip. */
struct pt_str pt_lb_request_key(const struct pt_lb *lb, const struct pt_headers *h,
                                const char *peer_ip);

#endif
