/*
 * Body stages: when a chain has request or response body hooks, a stage
 * sits between the codec's pipe and the upstream's pipe and passes every
 * chunk through the hooks (request: chain order; response: reverse).
 *
 *   codec ─> x->req_body ─> [stage: on_request_body*] ─> x->req_filtered ─> upstream
 *   upstream ─> x->resp_raw ─> [stage: on_response_body*] ─> x->resp_body ─> codec
 *
 * Backpressure carries through: the stage takes bytes from its input only
 * while its output is below the high-water mark. A hook that pauses holds
 * its chunk; pt_exchange_resume() continues with the next hook. Chains
 * without body hooks have no stage at all (the pipes are used directly).
 * A gRPC-Web exchange (grpcweb.c) also gets stages: the request's to
 * decode -text bodies before the hooks, the response's to encode after
 * them, turning the trailers into the final frame.
 */
#include <event2/buffer.h>
#include <stdlib.h>

#include "proxy/chain.h"
#include "proxy/proxy_int.h"

#define CHUNK_MAX (64u * 1024u)

struct pt_chunk {
    struct evbuffer *buf;
};

struct stage {
    struct pt_exchange *x;
    struct pt_pipe *in;
    struct pt_pipe *out;
    struct pt_chunk chunk;
    struct pt_deferred task;
    uint16_t pos; /* next hook (in stage order) for the chunk in hand */
    bool request;
    bool running;
    bool have_chunk;
    bool chunk_end;
    bool paused;
    bool ended;
};

/* --- plugin ABI --------------------------------------------------------- */

size_t pt_chunk_len(const struct pt_chunk *c)
{
    return evbuffer_get_length(c->buf);
}

size_t pt_chunk_copyout(const struct pt_chunk *c, size_t offset, void *dst, size_t n)
{
    size_t len = evbuffer_get_length(c->buf);
    if (offset >= len)
        return 0;
    if (n > len - offset)
        n = len - offset;
    struct evbuffer_ptr pos;
    if (evbuffer_ptr_set(c->buf, &pos, offset, EVBUFFER_PTR_SET) != 0)
        return 0;
    ev_ssize_t r = evbuffer_copyout_from(c->buf, &pos, dst, n);
    return r > 0 ? (size_t)r : 0;
}

int pt_chunk_append(struct pt_chunk *c, const void *data, size_t n)
{
    return evbuffer_add(c->buf, data, n) == 0 ? 0 : PT_ERR_NOMEM;
}

void pt_chunk_clear(struct pt_chunk *c)
{
    evbuffer_drain(c->buf, evbuffer_get_length(c->buf));
}

/* --- stages ------------------------------------------------------------- */

static bool grpcweb_decode(struct stage *st);

static const struct pt_filter_inst *hook_at(const struct stage *st, uint16_t i)
{
    const struct pt_chain *c = st->x->chain;
    uint16_t n = st->x->chain_ran;
    return st->request ? &c->filters[i] : &c->filters[n - 1 - i];
}

static void pump(struct stage *st)
{
    struct pt_exchange *x = st->x;
    if (st->running)
        return; /* re-entered from a pipe callback: the outer loop continues */
    st->running = true;
    while (!st->paused && !st->ended && !x->finished) {
        if (!st->have_chunk) {
            size_t n = pt_pipe_len(st->in);
            if (n == 0 && !st->in->eof)
                break;
            if (pt_pipe_full(st->out))
                break;
            if (n > CHUNK_MAX)
                n = CHUNK_MAX;
            if (n)
                pt_pipe_read_into(st->in, st->chunk.buf, n);
            st->chunk_end = st->in->eof && pt_pipe_len(st->in) == 0;
            st->have_chunk = true;
            st->pos = 0;
            if (st->request && pt_proxy_grpcweb_decodes(x) && !grpcweb_decode(st))
                return;
        }
        uint16_t nhooks = x->chain_ran;
        while (st->pos < nhooks) {
            const struct pt_filter_inst *f = hook_at(st, st->pos++);
            enum pt_filter_status (*hook)(struct pt_exchange *, void *, struct pt_chunk *, bool) =
                st->request ? f->type->on_request_body : f->type->on_response_body;
            if (!hook)
                continue;
            enum pt_filter_status r = hook(x, f->instance, &st->chunk, st->chunk_end);
            if (r == PT_FILTER_PAUSE) {
                st->paused = true;
                st->running = false;
                return;
            }
            if (r == PT_FILTER_REPLIED && st->request && x->resp_local) {
                /* The filter answered instead: the upstream gets no more. */
                st->ended = true;
                st->running = false;
                return;
            }
        }
        /* gRPC-Web: the trailers travel in the body (grpcweb.c). */
        bool web = !st->request && x->grpcweb;
        if (web && pt_proxy_grpcweb_encode(x, st->chunk.buf, st->chunk_end, st->in->trailers) < 0)
            pt_chunk_clear(&st->chunk);
        size_t len = evbuffer_get_length(st->chunk.buf);
        st->have_chunk = false;
        if (st->out->eof) {
            /* The response was ended for us (abort_response). */
            pt_chunk_clear(&st->chunk);
            st->ended = true;
            break;
        }
        if (len && pt_pipe_write_buffer(st->out, st->chunk.buf, len) < 0)
            pt_chunk_clear(&st->chunk);
        if (st->chunk_end) {
            st->ended = true;
            pt_pipe_end(st->out, web ? NULL : st->in->trailers);
        }
    }
    st->running = false;
}

/* Decode a gRPC-Web-text request chunk in place. False when the body is
 * malformed: the exchange got its error reply and the stage is over. */
static bool grpcweb_decode(struct stage *st)
{
    struct pt_exchange *x = st->x;
    int rc = pt_proxy_grpcweb_decode(x, st->chunk.buf, st->chunk_end);
    if (rc == 0)
        return true;
    pt_chunk_clear(&st->chunk);
    st->have_chunk = false;
    st->ended = true;
    st->running = false;
    if (x->resp_started)
        pt_exchange_handler->fail(x, rc);
    else
        pt_exchange_handler->reply_error(x, rc,
                                         rc == PT_ERR_BODY_TOO_LARGE
                                             ? PT_STR("message larger than the route allows")
                                             : PT_STR("malformed grpc-web-text body"));
    return false;
}

static void on_in_data(struct pt_pipe *p, void *consumer)
{
    pump(consumer);
}

static void on_out_drain(struct pt_pipe *p, size_t n, void *producer)
{
    struct stage *st = producer;
    if (!pt_pipe_full(st->out))
        pump(st);
}

static void resume_task(struct pt_deferred *d)
{
    struct stage *st = (struct stage *)((char *)d - offsetof(struct stage, task));
    if (!st->paused)
        return;
    st->paused = false;
    pump(st);
}

static struct stage *stage_new(struct pt_exchange *x, struct pt_pipe *in, struct pt_pipe *out,
                               bool request)
{
    struct stage *st = pt_xcalloc(1, sizeof(*st));
    st->x = x;
    st->in = in;
    st->out = out;
    st->request = request;
    st->task.fn = resume_task;
    st->chunk.buf = evbuffer_new();
    if (!st->chunk.buf)
        pt_abort_oom(sizeof(*st));
    return st;
}

void pt_proxy_body_prepare(struct pt_exchange *x)
{
    const struct pt_chain *c = x->chain;
    if (!c)
        return;
    if ((c->request_body_hooks || pt_proxy_grpcweb_decodes(x)) && x->req.has_body) {
        x->req_up = &x->req_filtered;
        x->body_stage[0] = stage_new(x, &x->req_body, &x->req_filtered, true);
    }
    if (c->response_body_hooks || x->grpcweb)
        x->resp_up = &x->resp_raw;
}

void pt_proxy_body_start_request(struct pt_exchange *x)
{
    struct stage *st = x->body_stage[0];
    if (!st)
        return;
    pt_pipe_set_consumer(st->in, on_in_data, st);
    pt_pipe_set_producer(st->out, on_out_drain, st);
    pump(st);
}

void pt_proxy_body_start_response(struct pt_exchange *x)
{
    /* The stage body_prepare routed the upstream to resp_raw for (a
     * transcoded call writes its JSON there too). */
    const struct pt_chain *c = x->chain;
    bool wanted = c && (c->response_body_hooks || x->grpcweb);
    if (!wanted || x->resp_local || x->body_stage[1])
        return;
    struct stage *st = stage_new(x, &x->resp_raw, &x->resp_body, false);
    x->body_stage[1] = st;
    pt_pipe_set_consumer(st->in, on_in_data, st);
    pt_pipe_set_producer(st->out, on_out_drain, st);
    pump(st);
}

bool pt_proxy_body_resume(struct pt_exchange *x)
{
    bool any = false;
    for (int i = 0; i < 2; i++) {
        struct stage *st = x->body_stage[i];
        if (st && st->paused) {
            pt_worker_defer(x->worker, &st->task);
            any = true;
        }
    }
    return any;
}

void pt_proxy_body_fini(struct pt_exchange *x)
{
    for (int i = 0; i < 2; i++) {
        struct stage *st = x->body_stage[i];
        if (!st)
            continue;
        pt_worker_cancel_deferred(x->worker, &st->task);
        pt_pipe_set_consumer(st->in, NULL, NULL);
        pt_pipe_set_producer(st->out, NULL, NULL);
        evbuffer_free(st->chunk.buf);
        free(st);
        x->body_stage[i] = NULL;
    }
}
