#include "http1/client.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http1/parser.h"
#include "http1/writer.h"
#include "net/conn.h"

#define OUT_HIWAT (256u * 1024u)
#define OUT_LOWAT (64u * 1024u)

struct pt_h1_client {
    struct pt_up_stream up;
    struct pt_worker *w;
    struct pt_conn *conn;
    struct pt_h1_parser *parser;
    const struct pt_h1_client_hooks *hooks;
    void *arg;
    struct pt_exchange *x;
    const struct pt_upstream_events *ev;
    struct pt_headers *trailers;
    struct pt_deferred task;
    struct event *idle_timer;
    uint32_t idle_timeout_ms;
    int fail_err; /* pending failure for task */
    bool connected;
    bool reused; /* completed at least one exchange */
    bool req_chunked;
    bool req_done;  /* whole request written */
    bool resp_head; /* response head delivered */
    bool resp_done;
    bool resp_bytes; /* any response byte arrived */
    bool keep_alive;
    bool upgraded;
    bool waiting_drain;
    bool dead;
    bool idle_pending;
};

static void client_free(struct pt_h1_client *c)
{
    pt_worker_cancel_deferred(c->w, &c->task);
    if (c->idle_timer)
        event_free(c->idle_timer);
    pt_h1_parser_free(c->parser);
    free(c);
}

/* Detach the exchange, whatever happened to it. */
static void detach(struct pt_h1_client *c)
{
    struct pt_exchange *x = c->x;
    if (!x)
        return;
    c->x = NULL;
    x->up = NULL;
    pt_pipe_set_consumer(x->req_up, NULL, NULL);
    pt_pipe_set_producer(x->resp_up, NULL, NULL);
}

static void task_run(struct pt_deferred *d)
{
    struct pt_h1_client *c =
        (struct pt_h1_client *)((char *)d - offsetof(struct pt_h1_client, task));
    if (c->dead) {
        const struct pt_h1_client_hooks *hooks = c->hooks;
        void *arg = c->arg;
        client_free(c);
        if (hooks && hooks->on_dead)
            hooks->on_dead(NULL, arg);
        return;
    }
    if (c->idle_pending) {
        c->idle_pending = false;
        if (c->idle_timeout_ms) {
            struct timeval tv = {c->idle_timeout_ms / 1000, (c->idle_timeout_ms % 1000) * 1000};
            event_add(c->idle_timer, &tv);
        }
        if (c->hooks && c->hooks->on_idle)
            c->hooks->on_idle(c, c->arg);
    }
}

/* The connection is unusable: report to the exchange (if any) and die. */
static void die(struct pt_h1_client *c, int err)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->x) {
        unsigned flags = 0;
        if (!c->connected || (c->reused && !c->resp_bytes))
            flags = PT_UP_RETRYABLE;
        if (err == PT_ERR_CLOSED || err == 0)
            err = c->connected ? PT_ERR_UPSTREAM_RESET : PT_ERR_UPSTREAM_CONNECT;
        struct pt_exchange *x = c->x;
        const struct pt_upstream_events *ev = c->ev;
        detach(c);
        ev->on_closed(x, err, flags);
    }
    if (c->conn) {
        pt_conn_free(c->conn);
        c->conn = NULL;
    }
    event_del(c->idle_timer);
    pt_worker_defer(c->w, &c->task);
}

static void maybe_finish(struct pt_h1_client *c)
{
    if (!c->resp_done || !c->x)
        return;
    struct pt_exchange *x = c->x;
    const struct pt_upstream_events *ev = c->ev;
    bool reusable = c->req_done && c->keep_alive && !c->conn->read_eof;
    detach(c);
    ev->on_closed(x, 0, 0);
    if (c->dead)
        return;
    if (!reusable) {
        pt_conn_close_after_flush(c->conn);
        c->conn = NULL;
        c->dead = true;
        pt_worker_defer(c->w, &c->task);
        return;
    }
    c->reused = true;
    /* The response may have ended while reading was paused for
     * backpressure: an idle connection must see the server close it. */
    pt_conn_resume_read(c->conn);
    pt_h1_parser_next(c->parser);
    c->idle_pending = true;
    pt_worker_defer(c->w, &c->task);
}

/* --- request body ------------------------------------------------------- */

static void pump_request(struct pt_h1_client *c)
{
    struct pt_exchange *x = c->x;
    /* Before the connection is up the body stays in the pipe, so a connect
     * failure can be retried on another endpoint with nothing lost. */
    if (!x || c->req_done || !c->conn || !c->connected)
        return;
    enum pt_h1_pump r =
        pt_h1_pump_body(x->req_up, c->conn->out, c->req_chunked, true, OUT_HIWAT, NULL);
    if (r == PT_H1_PUMP_DONE) {
        c->req_done = true;
    } else if (r == PT_H1_PUMP_FULL) {
        c->waiting_drain = true;
        pt_conn_want_drained(c->conn, OUT_LOWAT);
    }
    pt_conn_write_soon(c->conn);
    if (c->req_done)
        maybe_finish(c);
}

static void on_req_data(struct pt_pipe *p, void *consumer)
{
    struct pt_h1_client *c = consumer;
    if (!c->waiting_drain)
        pump_request(c);
}

/* --- response ----------------------------------------------------------- */

static void on_resp_drain(struct pt_pipe *p, size_t n, void *producer)
{
    struct pt_h1_client *c = producer;
    if (c->conn && c->conn->read_paused && pt_pipe_below_lowat(p))
        pt_conn_resume_read(c->conn);
}

static int p_on_head(void *ctx, const struct pt_h1_head *h)
{
    struct pt_h1_client *c = ctx;
    struct pt_exchange *x = c->x;
    if (!x)
        return PT_ERR_CANCELLED;
    c->resp_head = true;
    c->keep_alive = h->keep_alive;
    x->resp.status = h->status;
    x->resp.content_length = h->content_length;
    x->resp.has_body = h->has_body;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        struct pt_str n, v;
        if (pt_arena_str(&x->arena, h->headers[i].name, &n) != 0 ||
            pt_arena_str(&x->arena, h->headers[i].value, &v) != 0 ||
            pt_headers_add_ref(&x->resp.headers, n, v) != 0)
            return PT_ERR_UPSTREAM_PROTOCOL;
    }
    pt_pipe_set_producer(x->resp_up, on_resp_drain, c);
    if (h->status == 101 && !x->upgrade)
        return PT_ERR_UPSTREAM_PROTOCOL; /* nobody asked this backend to switch */
    if (h->status == 101) {
        /* Delivered by on_read once the head's bytes are consumed: the
         * bytes after it belong to the tunnel. */
        c->upgraded = true;
        c->keep_alive = false;
        return 0;
    }
    c->ev->on_response_head(x);
    return c->x ? 0 : PT_ERR_CANCELLED;
}

static int p_on_body(void *ctx, const char *data, size_t len)
{
    struct pt_h1_client *c = ctx;
    if (!c->x)
        return PT_ERR_CANCELLED;
    int rc = pt_pipe_write(c->x->resp_up, data, len);
    if (rc < 0)
        return rc;
    if (rc == 1)
        pt_conn_pause_read(c->conn);
    return 0;
}

static int p_on_trailers(void *ctx, const struct pt_header *f, uint32_t n)
{
    struct pt_h1_client *c = ctx;
    struct pt_exchange *x = c->x;
    if (!x)
        return PT_ERR_CANCELLED;
    c->trailers = pt_arena_alloc(&x->arena, sizeof(*c->trailers));
    if (!c->trailers)
        return PT_ERR_UPSTREAM_PROTOCOL;
    pt_headers_init(c->trailers, &x->arena, 0);
    for (uint32_t i = 0; i < n; i++) {
        struct pt_str nm, v;
        if (pt_arena_str(&x->arena, f[i].name, &nm) != 0 ||
            pt_arena_str(&x->arena, f[i].value, &v) != 0 ||
            pt_headers_add_ref(c->trailers, nm, v) != 0)
            return PT_ERR_UPSTREAM_PROTOCOL;
    }
    return 0;
}

static int p_on_complete(void *ctx)
{
    struct pt_h1_client *c = ctx;
    if (!c->x)
        return PT_ERR_CANCELLED;
    if (c->upgraded)
        return 0;
    c->resp_done = true;
    pt_pipe_end(c->x->resp_up, c->trailers);
    c->trailers = NULL;
    return 0;
}

static const struct pt_h1_parser_cb parser_cb = {
    .on_head = p_on_head,
    .on_body = p_on_body,
    .on_trailers = p_on_trailers,
    .on_complete = p_on_complete,
};

static void on_read(struct pt_conn *conn, void *ctx)
{
    struct pt_h1_client *c = ctx;
    struct evbuffer *in = conn->in;
    if (!c->x) {
        /* Idle: a well-behaved server sends nothing; anything else means
         * this connection cannot be trusted for the next request. */
        if (evbuffer_get_length(in) || conn->read_eof)
            die(c, PT_ERR_CLOSED);
        return;
    }
    while (c->x && !c->resp_done && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        c->resp_bytes = true;
        ssize_t r = pt_h1_parser_execute(c->parser, v.iov_base, v.iov_len);
        if (r >= 0 && c->upgraded) {
            evbuffer_drain(in, (size_t)r);
            /* The handler takes the transport or cancels; either way c
             * must not be touched after this call. */
            c->ev->on_response_head(c->x);
            return;
        }
        if (r < 0) {
            if (c->x)
                die(c, r == PT_ERR_CANCELLED ? PT_ERR_UPSTREAM_RESET : PT_ERR_UPSTREAM_PROTOCOL);
            else
                die(c, PT_ERR_CLOSED);
            return;
        }
        evbuffer_drain(in, (size_t)r);
        if ((size_t)r < v.iov_len)
            break; /* paused at the end of the response */
        if (conn->read_paused)
            break;
    }
    if (c->resp_done) {
        if (evbuffer_get_length(in))
            c->keep_alive = false; /* bytes after the response: not reusable */
        maybe_finish(c);
        return;
    }
    if (conn->read_eof && c->x) {
        if (pt_h1_parser_finish(c->parser) == 0 && c->resp_done) {
            maybe_finish(c);
            return;
        }
        die(c, PT_ERR_CLOSED);
    }
}

static void on_drained(struct pt_conn *conn, void *ctx)
{
    struct pt_h1_client *c = ctx;
    c->waiting_drain = false;
    pump_request(c);
}

static void on_connected(struct pt_conn *conn, void *ctx)
{
    struct pt_h1_client *c = ctx;
    c->connected = true;
    pump_request(c);
}

static void on_conn_close(struct pt_conn *conn, void *ctx, int err)
{
    struct pt_h1_client *c = ctx;
    die(c, err);
}

static const struct pt_conn_cb conn_cb = {
    .on_read = on_read,
    .on_drained = on_drained,
    .on_connected = on_connected,
    .on_close = on_conn_close,
};

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pt_h1_client *c = arg;
    if (!c->x)
        die(c, PT_ERR_CLOSED);
}

/* --- API ---------------------------------------------------------------- */

static void client_cancel(struct pt_up_stream *up)
{
    struct pt_h1_client *c = (struct pt_h1_client *)up;
    detach(c);
    /* Mid-exchange: the connection's state is unknown, do not reuse it. */
    die(c, PT_ERR_CANCELLED);
}

struct pt_h1_client *pt_h1_client_new(struct pt_worker *w, const struct sockaddr *addr,
                                      socklen_t addr_len, const struct pt_h1_client_opts *opts,
                                      const struct pt_h1_client_hooks *hooks, void *arg, int *err)
{
    struct pt_h1_client *c = pt_xcalloc(1, sizeof(*c));
    c->up.cancel = client_cancel;
    c->w = w;
    c->hooks = hooks;
    c->arg = arg;
    c->idle_timeout_ms = opts->idle_timeout_ms;
    c->task.fn = task_run;
    c->idle_timer = event_new(w->base, -1, 0, on_idle_timeout, c);
    if (!c->idle_timer)
        pt_abort_oom(sizeof(*c));
    struct pt_h1_limits lim = {.max_header_bytes = opts->max_header_bytes, .max_headers = 1000};
    c->parser = pt_h1_parser_new(PT_H1_RESPONSE, &lim, &parser_cb, c);
    c->conn = pt_conn_connect(w, addr, addr_len, opts->connect_timeout_ms, opts->ssl_ctx, opts->sni,
                              &conn_cb, c, err);
    if (!c->conn) {
        client_free(c);
        return NULL;
    }
    return c;
}

static bool method_expects_body(struct pt_str m)
{
    return pt_str_eq(m, PT_STR("POST")) || pt_str_eq(m, PT_STR("PUT")) ||
           pt_str_eq(m, PT_STR("PATCH"));
}

int pt_h1_client_start(struct pt_h1_client *c, struct pt_exchange *x,
                       const struct pt_upstream_events *ev)
{
    if (c->x || c->dead || !c->conn)
        return PT_ERR_UPSTREAM_REFUSED;
    event_del(c->idle_timer);
    c->x = x;
    c->ev = ev;
    c->req_done = c->resp_done = c->resp_head = c->resp_bytes = false;
    c->waiting_drain = false;
    c->trailers = NULL;
    c->keep_alive = false;
    pt_h1_parser_set_no_body(c->parser, x->req.is_head);

    /* Framing: keep a Content-Length the client sent; otherwise chunked
     * when a body follows; an explicit zero length for bodiless POST/PUT. */
    bool has_cl = pt_headers_index(&x->req.headers, PT_STR("content-length"), 0) >= 0;
    c->req_chunked = false;
    struct pt_headers h;
    pt_headers_init(&h, &x->arena, 0);
    if (pt_headers_add_ref(&h, PT_STR("host"), x->req.authority) != 0 ||
        pt_headers_copy_ref(&h, &x->req.headers) != 0)
        goto limit;
    if (x->req.has_body && !has_cl) {
        c->req_chunked = true;
        if (pt_headers_add_ref(&h, PT_STR("transfer-encoding"), PT_STR("chunked")) != 0)
            goto limit;
    } else if (!x->req.has_body && !has_cl && method_expects_body(x->req.method)) {
        if (pt_headers_add_ref(&h, PT_STR("content-length"), PT_STR("0")) != 0)
            goto limit;
    }
    if (x->upgrade) {
        int ui = pt_headers_index(&x->req.headers, PT_STR("upgrade"), 0);
        if (pt_headers_add_ref(&h, PT_STR("connection"), PT_STR("upgrade")) != 0 ||
            (ui < 0 && pt_headers_add_ref(&h, PT_STR("upgrade"), PT_STR("websocket")) != 0))
            goto limit;
    }
    pt_h1_write_request_head(c->conn->out, x->req.method, x->forward_path, &h);
    x->up = &c->up;
    if (x->req.has_body) {
        pt_pipe_set_consumer(x->req_up, on_req_data, c);
        pump_request(c);
    } else {
        c->req_done = true;
        pt_conn_write_soon(c->conn);
    }
    return 0;
limit:
    c->x = NULL;
    return PT_ERR_LIMIT;
}

void pt_h1_client_close(struct pt_h1_client *c)
{
    if (!c)
        return;
    if (c->dead) {
        /* Already dying: let the queued task free it, but without hooks. */
        c->hooks = NULL;
        return;
    }
    detach(c);
    if (c->conn)
        pt_conn_free(c->conn);
    client_free(c);
}

struct pt_conn *pt_h1_client_take_transport(struct pt_h1_client *c)
{
    struct pt_conn *conn = c->conn;
    if (!c->upgraded || c->dead || !conn)
        return NULL;
    detach(c);
    c->conn = NULL;
    pt_conn_set_callbacks(conn, NULL, NULL);
    client_free(c);
    return conn;
}
