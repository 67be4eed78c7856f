/*
 * ratelimit/redis.h - the Redis side of rate limiting: one async hiredis
 * connection per worker, on the worker's event loop.
 *
 * Each call runs script.lua (EVALSHA of its SHA-1; the script is loaded
 * with SCRIPT LOAD when the connection opens, and sent whole with EVAL
 * when Redis answers NOSCRIPT - after SCRIPT FLUSH or a restart). Calls
 * made in one loop turn leave in one write (hiredis buffers them), so they
 * are pipelined. A call's key is "<key_prefix>{<rule tag>:<key>}": one key
 * per call and the whole key in the hash tag, ready for Redis Cluster.
 *
 * Connection states: connecting -> ready -> (error / closed) -> backoff
 * (50 ms doubling up to max_backoff_ms) -> connecting. While backing off,
 * calls fail at once (the rule's fail mode decides), so nothing waits for
 * a Redis that is down; while connecting, they queue behind the handshake
 * (bounded by each caller's budget and connect_timeout_ms). A call that takes longer than its
 * rule's budget is abandoned by its caller (pt_rl_redis_call_abandon) and its late reply ignored.
 *
 * Thread: everything on the worker that owns the connection.
 */
#ifndef PT_RATELIMIT_REDIS_H
#define PT_RATELIMIT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimit/algo.h"

struct pt_worker;
struct pt_rl_redis_call;

/* Where Redis is (from Config.redis), owned by the plan. */
struct pt_rl_redis_cfg {
    char *host;
    int port;
    char *password;   /* NULL: no AUTH */
    char *key_prefix; /* default "portico:rl:" */
    uint32_t connect_timeout_ms;
    uint32_t max_backoff_ms;
    char *id; /* host, port and password together: a change reconnects */
};

enum pt_rl_redis_op {
    PT_RL_OP_DECIDE = 0,
    PT_RL_OP_REFUND,
    PT_RL_OP_TAKE,
};

struct pt_rl_redis_result {
    bool ok;        /* false: Redis failed (error, disconnect) */
    uint64_t value; /* decide: 1 allowed / 0 not; take: how many taken */
    struct pt_rl_decision d;
    uint64_t now_us; /* Redis's clock at the call */
};

typedef void pt_rl_redis_done_fn(void *arg, const struct pt_rl_redis_result *r);

/* Pointer: a started call, or NULL when the worker's connection is down
 * (backing off before it reconnects; the first call of a worker starts
 * connecting and is queued behind the handshake). done runs later, once,
 * unless abandoned. With
 * done NULL the call is fire-and-forget (refunds). key is copied. */
struct pt_rl_redis_call *
pt_rl_redis_call_start(struct pt_worker *w, const struct pt_rl_redis_cfg *cfg, const char *tag,
                       const char *key, size_t klen, const struct pt_rl_params *p,
                       enum pt_rl_redis_op op, uint64_t n, uint64_t charged_us,
                       pt_rl_redis_done_fn *done, void *arg);
/* The caller no longer wants the result (its budget ran out, its exchange
 * ended). With refund_if_allowed, a late "allowed" answer is given back. */
void pt_rl_redis_call_abandon(struct pt_rl_redis_call *c, bool refund_if_allowed);

/* After the worker's thread has stopped: close and free its connection. */
void pt_rl_worker_fini(struct pt_worker *w);

#endif
