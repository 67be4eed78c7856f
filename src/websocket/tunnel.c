/*
 * A WebSocket tunnel after a 101: bytes flow both ways between the client's
 * and the backend's connections, with backpressure (a side stops reading
 * while the other side's output is above the high-water mark) and an idle
 * timeout. When either side closes, what it sent is flushed to the other,
 * which is then closed too; the exchange ends and is logged.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>

#include "core/log.h"
#include "net/client_cert.h"
#include "websocket/tunnel.h"

#define HIWAT (256u * 1024u)
#define LOWAT (64u * 1024u)

struct tunnel {
    struct tunnel *prev;
    struct tunnel *next;
    struct pt_exchange *x;
    atomic_uint *count;
    struct pt_conn *side[2]; /* 0 = downstream (client), 1 = upstream (backend) */
    struct event *idle;
    uint32_t idle_ms;
    struct pt_deferred end_task;
    int err;
    bool ending;
    /* The exchange's connection info: the HTTP/1.1 codec that held it is
     * freed once it hands over its transport. */
    struct pt_conn_info info;
};

static const struct pt_conn_cb cb[2];
static _Thread_local struct tunnel *tunnels;

static void arm_idle(struct tunnel *t)
{
    struct timeval tv = {t->idle_ms / 1000, (t->idle_ms % 1000) * 1000};
    event_add(t->idle, &tv);
}

static void end_task(struct pt_deferred *d)
{
    struct tunnel *t = (struct tunnel *)((char *)d - offsetof(struct tunnel, end_task));
    if (t->prev)
        t->prev->next = t->next;
    else
        tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    for (int i = 0; i < 2; i++) {
        if (!t->side[i])
            continue;
        /* Flush what the other side sent, then close gracefully. */
        pt_conn_close_after_flush(t->side[i]);
        t->side[i] = NULL;
    }
    event_free(t->idle);
    if (t->count)
        atomic_fetch_sub(t->count, 1);
    pt_exchange_handler->end(t->x, t->err);
    pt_client_cert_unref(t->info.client_cert);
    free(t);
}

static void finish(struct tunnel *t, int err)
{
    if (t->ending)
        return;
    t->ending = true;
    t->err = err;
    pt_worker_defer(t->x->worker, &t->end_task);
}

/* Move what side i received to the other side. */
static void pump(struct tunnel *t, int i)
{
    struct pt_conn *from = t->side[i], *to = t->side[1 - i];
    if (!from || !to)
        return;
    size_t n = evbuffer_get_length(from->in);
    if (n) {
        evbuffer_add_buffer(to->out, from->in);
        if (i == 0)
            t->x->bytes_in += n;
        else
            t->x->bytes_out += n;
        pt_conn_write_soon(to);
        arm_idle(t);
    }
    if (evbuffer_get_length(to->out) > HIWAT) {
        pt_conn_pause_read(from);
        pt_conn_want_drained(to, LOWAT);
    }
    if (from->read_eof)
        finish(t, 0);
}

static void on_read0(struct pt_conn *c, void *ctx)
{
    pump(ctx, 0);
}

static void on_read1(struct pt_conn *c, void *ctx)
{
    pump(ctx, 1);
}

static void on_drained0(struct pt_conn *c, void *ctx)
{
    struct tunnel *t = ctx;
    if (t->side[1])
        pt_conn_resume_read(t->side[1]);
}

static void on_drained1(struct pt_conn *c, void *ctx)
{
    struct tunnel *t = ctx;
    if (t->side[0])
        pt_conn_resume_read(t->side[0]);
}

static void on_close0(struct pt_conn *c, void *ctx, int err)
{
    struct tunnel *t = ctx;
    pt_conn_free(t->side[0]);
    t->side[0] = NULL;
    finish(t, PT_ERR_CANCELLED);
}

static void on_close1(struct pt_conn *c, void *ctx, int err)
{
    struct tunnel *t = ctx;
    pt_conn_free(t->side[1]);
    t->side[1] = NULL;
    finish(t, PT_ERR_UPSTREAM_RESET);
}

static const struct pt_conn_cb cb[2] = {
    {.on_read = on_read0, .on_drained = on_drained0, .on_close = on_close0},
    {.on_read = on_read1, .on_drained = on_drained1, .on_close = on_close1},
};

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    finish(arg, PT_ERR_STREAM_IDLE);
}

void pt_ws_tunnel_start(struct pt_exchange *x, struct pt_conn *down, struct pt_conn *up,
                        uint32_t idle_ms, atomic_uint *count)
{
    struct tunnel *t = pt_xcalloc(1, sizeof(*t));
    struct pt_worker *w = x->worker;
    t->x = x;
    t->info = *x->conn;
    pt_client_cert_ref(t->info.client_cert);
    x->conn = &t->info;
    t->count = count;
    t->side[0] = down;
    t->side[1] = up;
    t->end_task.fn = end_task;
    t->idle_ms = idle_ms ? idle_ms : 300000;
    t->idle = event_new(w->base, -1, 0, on_idle, t);
    if (!t->idle)
        pt_abort_oom(sizeof(*t));
    /* The exchange no longer belongs to the HTTP/1.1 codec. */
    x->down = NULL;
    x->down_ctx = t;
    if (count)
        atomic_fetch_add(count, 1);
    t->next = tunnels;
    if (tunnels)
        tunnels->prev = t;
    tunnels = t;
    pt_conn_set_callbacks(down, &cb[0], t);
    pt_conn_set_callbacks(up, &cb[1], t);
    pt_conn_resume_read(down);
    pt_conn_resume_read(up);
    arm_idle(t);
    /* Either side may have sent bytes right behind its upgrade head. */
    pump(t, 0);
    pump(t, 1);
}

void pt_ws_tunnel_close_all(void)
{
    while (tunnels) {
        struct tunnel *t = tunnels;
        pt_worker_cancel_deferred(t->x->worker, &t->end_task);
        t->ending = true;
        t->err = PT_ERR_SHUTTING_DOWN;
        end_task(&t->end_task);
    }
}
