/*
 * proxy/chain.h - the filter-chain runner.
 *
 * Runs a chain's request hooks in order, then the terminal step, then the
 * response hooks in reverse order over the filters whose request hook ran.
 * A hook that returns PT_FILTER_PAUSE stops the runner; the runner (not the
 * filter) remembers the position in x->chain_pos, and pt_exchange_resume()
 * continues from the next filter on a later turn of the loop - never inside
 * the resume call.
 *
 *   REQUEST ──all continued──> terminal() ... response head ──> RESPONSE ──> deliver()
 *      │ pause ──resume──┘                                        │ pause ──resume──┘
 *      └ replied: the reply's own response phase runs instead
 *
 * Thread: the exchange's worker.
 */
#ifndef PT_PROXY_CHAIN_H
#define PT_PROXY_CHAIN_H

#include "conf/snapshot.h"
#include "http/exchange.h"

enum pt_chain_phase {
    PT_PHASE_NONE = 0,
    PT_PHASE_REQUEST,
    PT_PHASE_FORWARD,
    PT_PHASE_RESPONSE,
    PT_PHASE_DELIVERED,
};

struct pt_chain_steps {
    /* Every request hook continued: produce the response (forward it, or
     * reply when the exchange has no route). */
    void (*terminal)(struct pt_exchange *x);
    /* Every response hook continued: hand the head to the codec. */
    void (*deliver)(struct pt_exchange *x);
    /* A hook returned PT_FILTER_REPLIED without replying: fail the exchange. */
    void (*broken)(struct pt_exchange *x, const char *filter);
};

void pt_chain_set_steps(const struct pt_chain_steps *steps);

/* Start the request phase of x over chain. */
void pt_chain_run_request(struct pt_exchange *x, const struct pt_chain *chain);
/* x->resp holds a response head: run the response hooks, then deliver. */
void pt_chain_run_response(struct pt_exchange *x);
/* A local reply replaced the response during the response phase: no more
 * response hooks run for it (no loops); it is delivered now if the phase
 * was paused, else when the running hook returns. */
void pt_chain_response_replaced(struct pt_exchange *x);
/* Continue a paused chain on a later loop turn (pt_exchange_resume). */
void pt_chain_resume(struct pt_exchange *x);
/* Call on_done of every filter whose request hook ran; once. */
void pt_chain_done(struct pt_exchange *x);

#endif
