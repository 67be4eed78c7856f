#include "proxy/chain.h"

#include "core/log.h"

static const struct pt_chain_steps *steps;

void pt_chain_set_steps(const struct pt_chain_steps *s)
{
    steps = s;
}

static const struct pt_chain *chain_of(const struct pt_exchange *x)
{
    return x->chain;
}

static void run_request(struct pt_exchange *x)
{
    const struct pt_chain *c = chain_of(x);
    while (c && x->chain_pos < c->n) {
        const struct pt_filter_inst *f = &c->filters[x->chain_pos++];
        x->chain_ran = x->chain_pos;
        if (!f->type->on_request_head)
            continue;
        enum pt_filter_status st = f->type->on_request_head(x, f->instance);
        if (st == PT_FILTER_PAUSE) {
            x->paused = true;
            return;
        }
        if (st == PT_FILTER_REPLIED) {
            if (!x->resp_local)
                steps->broken(x, f->type->name);
            return;
        }
        /* A hook may reply and still say continue: the reply wins. */
        if (x->resp_local)
            return;
    }
    x->phase = PT_PHASE_FORWARD;
    steps->terminal(x);
}

static void run_response(struct pt_exchange *x)
{
    const struct pt_chain *c = chain_of(x);
    while (c && x->chain_pos > 0) {
        const struct pt_filter_inst *f = &c->filters[--x->chain_pos];
        if (!f->type->on_response_head)
            continue;
        enum pt_filter_status st = f->type->on_response_head(x, f->instance);
        if (st == PT_FILTER_PAUSE) {
            x->paused = true;
            return;
        }
        /* REPLIED is meaningless once a response exists: carry on. */
    }
    x->phase = PT_PHASE_DELIVERED;
    steps->deliver(x);
}

void pt_chain_run_request(struct pt_exchange *x, const struct pt_chain *chain)
{
    x->chain = chain;
    x->chain_pos = 0;
    x->chain_ran = 0;
    x->phase = PT_PHASE_REQUEST;
    run_request(x);
}

void pt_chain_run_response(struct pt_exchange *x)
{
    x->paused = false;
    x->phase = PT_PHASE_RESPONSE;
    x->chain_pos = x->chain_ran;
    run_response(x);
}

void pt_chain_response_replaced(struct pt_exchange *x)
{
    x->chain_pos = 0;
    if (x->paused) {
        x->paused = false;
        if (x->resume_task.queued)
            pt_worker_cancel_deferred(x->worker, &x->resume_task);
        x->phase = PT_PHASE_DELIVERED;
        steps->deliver(x);
    }
}

static void resume_task(struct pt_deferred *d)
{
    struct pt_exchange *x =
        (struct pt_exchange *)((char *)d - offsetof(struct pt_exchange, resume_task));
    if (!x->paused || x->finished)
        return;
    x->paused = false;
    if (x->phase == PT_PHASE_REQUEST)
        run_request(x);
    else if (x->phase == PT_PHASE_RESPONSE)
        run_response(x);
}

void pt_chain_resume(struct pt_exchange *x)
{
    if (!x->paused || x->finished)
        return;
    x->resume_task.fn = resume_task;
    pt_worker_defer(x->worker, &x->resume_task);
}

void pt_chain_done(struct pt_exchange *x)
{
    const struct pt_chain *c = chain_of(x);
    if (!c)
        return;
    if (x->resume_task.queued)
        pt_worker_cancel_deferred(x->worker, &x->resume_task);
    uint16_t n = x->chain_ran;
    x->chain_ran = 0;
    for (uint16_t i = 0; i < n; i++) {
        const struct pt_filter_inst *f = &c->filters[i];
        if (f->type->on_done)
            f->type->on_done(x, f->instance);
    }
}
