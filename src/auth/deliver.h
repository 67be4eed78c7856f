/*
 * auth/deliver.h - completions handed from the fetch thread to the thread
 * that asked, cancellable there.
 *
 * The fetch thread finishes work (an HTTP fetch, a JWKS refresh) that a
 * worker started; the worker's callback must run on that worker, later,
 * and must never run once the worker has cancelled. A pt_auth_deliv is a
 * one-shot hand-off: the finishing thread queues it for its target worker
 * (pt_auth_deliv_post); the target worker runs it from a message
 * (pt_worker_post) or, until then, can take it back
 * (pt_auth_deliv_unqueue, same thread as the run).
 *
 *   IDLE ──post (any thread)──> QUEUED ──drain (target thread)──> run(d)
 *                                  └──unqueue (target thread)──> IDLE (run never called)
 *
 * Queued deliveries live in this module's lists, not in a worker's inbox,
 * so a delivery whose wake-up message is lost (the worker's loop already
 * stopped at shutdown) is still found and freed by its owner's cancel.
 *
 * Lock order: a caller's own lock, then this module's (never the reverse).
 *
 * Thread: post from any thread; unqueue and the run only on the target
 * (`to`) thread, or on the fetch thread when `to` is NULL.
 */
#ifndef PT_AUTH_DELIVER_H
#define PT_AUTH_DELIVER_H

#include <stdbool.h>

struct pt_worker;

struct pt_auth_deliv {
    struct pt_worker *to; /* target worker; NULL = the fetch thread */
    /* Runs on the target thread; d is no longer queued and belongs to the
     * callee (it may free the structure that embeds d). */
    void (*run)(struct pt_auth_deliv *d);
    struct pt_auth_deliv *next, *prev; /* private */
    bool queued;                       /* private */
};

/* Queue d for its target; the target runs it from its loop, never inside
 * this call. to == NULL queues for the fetch thread. d must be idle.
 * pt_auth_deliv_post = pt_auth_deliv_queue + pt_auth_deliv_wake; the two
 * halves let a caller queue under its own lock (so that "finished" and
 * "queued" are one step for a concurrent cancel) and wake after unlocking. */
void pt_auth_deliv_post(struct pt_auth_deliv *d);
void pt_auth_deliv_queue(struct pt_auth_deliv *d);
void pt_auth_deliv_wake(struct pt_worker *to);
/* Target thread: take d back if it is still queued. Returns true if it
 * was (run will not be called), false if it was not queued. */
bool pt_auth_deliv_unqueue(struct pt_auth_deliv *d);
/* Run every delivery queued for w (NULL: the fetch thread's), in order,
 * on the calling thread, which must be w's. Deliveries queued while this
 * runs are run too. Used by the fetch thread when it stops. */
void pt_auth_deliv_drain(struct pt_worker *w);

#endif
