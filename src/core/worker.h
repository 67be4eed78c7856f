/*
 * core/worker.h - a worker thread: one event_base, share-nothing state.
 *
 * Everything a worker owns (connections, upstream pools, exchanges) is
 * touched only by its thread. Other threads talk to it only through
 * pt_worker_post(), which queues a message and wakes the loop via an eventfd.
 *
 * End-of-callback work. Two lists let code schedule work that must not run
 * inside the current call:
 *   - deferred tasks (pt_worker_defer): e.g. resuming a paused filter chain;
 *     completions never run inside the call that started them;
 *   - dirty flushables (pt_worker_mark_dirty): an HTTP/2 session with frames
 *     to serialize, a connection with bytes to write. Many events in one loop
 *     iteration mark the same connection once, and it is written once.
 * Both run at the end of every connection callback (so a response to one
 * connection does not wait for the other connections ready in the same
 * loop iteration, while everything one read produces still leaves in one
 * write), and otherwise from one "pending" event activated at the tail of
 * the loop's active queue: deferred tasks first, then flushes, until both
 * lists are empty.
 */
#ifndef PT_CORE_WORKER_H
#define PT_CORE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"

struct event_base;
struct event;

struct pt_deferred {
    void (*fn)(struct pt_deferred *d);
    struct pt_deferred *next;
    bool queued;
};

struct pt_flushable {
    void (*flush)(struct pt_flushable *f);
    struct pt_flushable *next;
    bool queued;
};

struct pt_worker;
typedef void pt_worker_msg_fn(struct pt_worker *w, void *arg);

struct pt_worker_msg;
struct pt_snap_pin;

/* Module-owned per-worker state, declared by each module. */
struct pt_net_worker;
struct pt_up_worker;
struct pt_proxy_worker;
struct pt_access_ring;
struct pt_rl_worker;

struct pt_worker {
    unsigned id;
    struct event_base *base;
    pthread_t thread;
    bool running;
    struct pt_arena_pool arena_pool;

    /* cross-thread inbox */
    pthread_mutex_t inbox_mu;
    struct pt_worker_msg *inbox_head, *inbox_tail;
    int wake_fd;
    struct event *wake_ev;

    /* end-of-callback work */
    struct event *pending_ev;
    bool pending_active;
    struct pt_deferred *deferred_head;
    struct pt_deferred **deferred_tail;
    struct pt_flushable *dirty_head;
    struct pt_flushable **dirty_tail;
    bool in_pending; /* pt_worker_run_pending() is running */

    struct pt_snap_pin *pin; /* current snapshot */

    struct pt_net_worker *net;
    struct pt_up_worker *up;
    struct pt_proxy_worker *proxy;
    struct pt_access_ring *access_ring;
    struct pt_rl_worker *rl; /* rate limiting's Redis connection (src/ratelimit) */
};

/* Status: 0 or PT_ERR_INTERNAL (event_base or eventfd creation failed). */
int pt_worker_init(struct pt_worker *w, unsigned id);
void pt_worker_fini(struct pt_worker *w);
/* Status: 0 or PT_ERR_INTERNAL. Runs the loop on a new thread until
 * pt_worker_stop() (posted) is processed. */
int pt_worker_start(struct pt_worker *w);
/* Block until the worker's thread has exited. */
void pt_worker_join(struct pt_worker *w);
/* Any thread: queue fn(w, arg) to run on the worker. */
void pt_worker_post(struct pt_worker *w, pt_worker_msg_fn *fn, void *arg);
/* Worker thread: leave the loop after the current iteration. */
void pt_worker_stop(struct pt_worker *w);

/* Worker thread only. */
void pt_worker_defer(struct pt_worker *w, struct pt_deferred *d);
void pt_worker_cancel_deferred(struct pt_worker *w, struct pt_deferred *d);
void pt_worker_mark_dirty(struct pt_worker *w, struct pt_flushable *f);
void pt_worker_unmark_dirty(struct pt_worker *w, struct pt_flushable *f);
/* Run deferred tasks and flushes now (tests, and loops without pending_ev). */
void pt_worker_run_pending(struct pt_worker *w);

/* The worker whose thread is calling, or NULL on other threads. */
struct pt_worker *pt_worker_current(void);

#endif
