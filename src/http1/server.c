#include "http1/server.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"
#include "http1/parser.h"
#include "http1/writer.h"

#define OUT_HIWAT (256u * 1024u)
#define OUT_LOWAT (64u * 1024u)

struct pt_h1_server {
    struct pt_down_conn dc;
    struct pt_worker *w;
    struct pt_conn *conn;
    struct pt_h1_parser *parser;
    struct pt_exchange *x;
    struct pt_headers *req_trailers;
    struct pt_deferred task;
    struct event *timer;
    bool keep_alive;
    bool draining;
    bool req_done;
    bool discard_body;
    bool head_sent;
    bool resp_done;
    bool resp_chunked;
    bool resp_trailers_ok;
    bool resp_until_close;
    bool continue_sent;
    bool waiting_drain;
    bool in_head;   /* bytes of a request head have arrived */
    bool close_now; /* abort: close without flushing */
    bool closed;
    bool taken; /* transport handed to a tunnel */
    bool processing;
    bool kicked; /* the first task_run only parses buffered input */
};

static const struct pt_downstream_ops down_ops;
static void schedule(struct pt_h1_server *s);

static void arm_timer(struct pt_h1_server *s, uint32_t ms)
{
    if (!ms) {
        event_del(s->timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(s->timer, &tv);
}

static struct pt_exchange *new_exchange(struct pt_h1_server *s)
{
    struct pt_exchange *x =
        pt_exchange_new(s->w, &s->dc.info, &down_ops, s, s->dc.limits.exchange_arena_bytes);
    x->req.scheme = s->dc.info.tls ? PT_STR("https") : PT_STR("http");
    x->req.version = PT_HTTP_11;
    s->x = x;
    s->req_done = s->discard_body = s->head_sent = s->resp_done = false;
    s->resp_chunked = s->resp_until_close = s->continue_sent = s->waiting_drain = false;
    s->req_trailers = NULL;
    return x;
}

/* --- request ------------------------------------------------------------ */

static void on_req_drain(struct pt_pipe *p, size_t n, void *producer)
{
    struct pt_h1_server *s = producer;
    if (s->conn && s->conn->read_paused && pt_pipe_below_lowat(p) && !s->req_done)
        pt_conn_resume_read(s->conn);
}

static void pump_response(struct pt_h1_server *s);

static void on_resp_data(struct pt_pipe *p, void *consumer)
{
    struct pt_h1_server *s = consumer;
    if (s->head_sent && !s->waiting_drain)
        pump_response(s);
}

static int copy_str(struct pt_exchange *x, struct pt_str in, struct pt_str *out)
{
    return pt_arena_str(&x->arena, in, out);
}

static int p_on_head(void *ctx, const struct pt_h1_head *h)
{
    struct pt_h1_server *s = ctx;
    struct pt_exchange *x = s->x ? s->x : new_exchange(s);
    struct pt_request *r = &x->req;
    s->in_head = false;
    event_del(s->timer);
    r->version = h->version_minor == 0 ? PT_HTTP_10 : PT_HTTP_11;
    if (copy_str(x, h->method, &r->method) || copy_str(x, h->target, &r->target))
        return PT_ERR_HEADERS_TOO_LARGE;
    r->headers.max = s->dc.limits.max_headers;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        struct pt_str n, v;
        if (copy_str(x, h->headers[i].name, &n) || copy_str(x, h->headers[i].value, &v) ||
            pt_headers_add_ref(&r->headers, n, v) != 0)
            return PT_ERR_HEADERS_TOO_LARGE;
        if (pt_str_eq(n, PT_STR("host")) && !r->authority.len)
            r->authority = v;
        else if (pt_str_eq(n, PT_STR("content-type")))
            r->is_grpc = pt_http_is_grpc_content_type(v);
        else if (pt_str_eq(n, PT_STR("upgrade")) && h->upgrade)
            r->upgrade_websocket = pt_str_list_has_token(v, PT_STR("websocket"));
    }
    r->content_length = h->content_length;
    r->has_body = h->has_body;
    r->expect_continue = h->expect_continue;
    r->is_head = pt_str_eq(r->method, PT_STR("HEAD"));
    s->keep_alive = h->keep_alive && !s->draining;
    pt_pipe_set_producer(&x->req_body, on_req_drain, s);
    pt_pipe_set_consumer(&x->resp_body, on_resp_data, s);
    pt_exchange_handler->start(x);
    return 0;
}

static int p_on_body(void *ctx, const char *data, size_t len)
{
    struct pt_h1_server *s = ctx;
    struct pt_exchange *x = s->x;
    x->bytes_in += len;
    if (s->discard_body || s->resp_done)
        return 0;
    int rc = pt_pipe_write(&x->req_body, data, len);
    if (rc < 0) {
        s->discard_body = true;
        s->keep_alive = false;
        pt_exchange_handler->fail(x, rc);
        return 0;
    }
    if (rc == 1)
        pt_conn_pause_read(s->conn);
    return 0;
}

static int p_on_trailers(void *ctx, const struct pt_header *f, uint32_t n)
{
    struct pt_h1_server *s = ctx;
    struct pt_exchange *x = s->x;
    s->req_trailers = pt_arena_alloc(&x->arena, sizeof(*s->req_trailers));
    if (!s->req_trailers)
        return PT_ERR_HEADERS_TOO_LARGE;
    pt_headers_init(s->req_trailers, &x->arena, s->dc.limits.max_headers);
    for (uint32_t i = 0; i < n; i++) {
        struct pt_str nm, v;
        if (copy_str(x, f[i].name, &nm) || copy_str(x, f[i].value, &v) ||
            pt_headers_add_ref(s->req_trailers, nm, v) != 0)
            return PT_ERR_HEADERS_TOO_LARGE;
    }
    return 0;
}

static int p_on_complete(void *ctx)
{
    struct pt_h1_server *s = ctx;
    s->req_done = true;
    if (!s->discard_body)
        pt_pipe_end(&s->x->req_body, s->req_trailers);
    if (s->resp_done)
        schedule(s);
    return 0;
}

static const struct pt_h1_parser_cb parser_cb = {
    .on_head = p_on_head,
    .on_body = p_on_body,
    .on_trailers = p_on_trailers,
    .on_complete = p_on_complete,
};

/* --- response ----------------------------------------------------------- */

static bool status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

static void h1_send_head(struct pt_exchange *x)
{
    struct pt_h1_server *s = x->down_ctx;
    struct pt_response *resp = &x->resp;
    struct pt_headers h;
    pt_headers_init(&h, &x->arena, 0);
    bool ok = pt_headers_copy_ref(&h, &resp->headers) == 0;
    bool body = resp->has_body && status_has_body(resp->status) && !x->req.is_head;
    bool upgrade = resp->status == 101;
    int cl = pt_headers_index(&h, PT_STR("content-length"), 0);
    if (upgrade) {
        ok = ok && pt_headers_add_ref(&h, PT_STR("connection"), PT_STR("upgrade")) == 0;
    } else if (body && cl < 0) {
        if (x->req.version == PT_HTTP_11) {
            s->resp_chunked = true;
            s->resp_trailers_ok = false;
            struct pt_str te;
            if (pt_headers_find(&x->req.headers, PT_STR("te"), &te))
                s->resp_trailers_ok = pt_str_list_has_token(te, PT_STR("trailers"));
            ok = ok && pt_headers_add_ref(&h, PT_STR("transfer-encoding"), PT_STR("chunked")) == 0;
        } else {
            s->resp_until_close = true;
            s->keep_alive = false;
        }
    } else if (!body && cl < 0 && status_has_body(resp->status) && !x->req.is_head) {
        ok = ok && pt_headers_add_ref(&h, PT_STR("content-length"), PT_STR("0")) == 0;
    }
    if (!upgrade) {
        if (!s->keep_alive)
            ok = ok && pt_headers_add_ref(&h, PT_STR("connection"), PT_STR("close")) == 0;
        else if (x->req.version == PT_HTTP_10)
            ok = ok && pt_headers_add_ref(&h, PT_STR("connection"), PT_STR("keep-alive")) == 0;
    }
    if (!ok) {
        /* Arena limit while adding two fields: give up on the connection. */
        s->close_now = true;
        s->keep_alive = false;
        schedule(s);
        return;
    }
    pt_h1_write_response_head(s->conn->out, resp->status, &h);
    s->head_sent = true;
    pt_conn_write_soon(s->conn);
    if (upgrade)
        return;
    if (!body) {
        /* Whatever an upstream might still send for HEAD/204/304 is ignored. */
        s->resp_done = true;
        schedule(s);
        return;
    }
    pump_response(s);
}

static void pump_response(struct pt_h1_server *s)
{
    struct pt_exchange *x = s->x;
    if (!x || s->resp_done || !s->conn)
        return;
    uint64_t moved = 0;
    enum pt_h1_pump r = pt_h1_pump_body(&x->resp_body, s->conn->out, s->resp_chunked,
                                        s->resp_trailers_ok, OUT_HIWAT, &moved);
    x->bytes_out += moved;
    if (r == PT_H1_PUMP_DONE) {
        s->resp_done = true;
        schedule(s);
    } else if (r == PT_H1_PUMP_FULL) {
        s->waiting_drain = true;
        pt_conn_want_drained(s->conn, OUT_LOWAT);
    }
    pt_conn_write_soon(s->conn);
}

static void h1_want_body(struct pt_exchange *x)
{
    struct pt_h1_server *s = x->down_ctx;
    if (x->req.expect_continue && !s->continue_sent && !s->head_sent && !s->req_done) {
        s->continue_sent = true;
        evbuffer_add(s->conn->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        pt_conn_write_soon(s->conn);
    }
}

static void h1_reset(struct pt_exchange *x, int err)
{
    struct pt_h1_server *s = x->down_ctx;
    /* A response that cannot be completed must not look complete: drop the
     * connection so the client sees a truncated message. */
    s->close_now = true;
    s->keep_alive = false;
    schedule(s);
}

static void *h1_take_transport(struct pt_exchange *x)
{
    struct pt_h1_server *s = x->down_ctx;
    if (!s->conn || s->taken)
        return NULL;
    struct pt_conn *c = s->conn;
    s->conn = NULL;
    s->taken = true;
    s->x = NULL; /* the tunnel owns the exchange now */
    pt_conn_set_callbacks(c, NULL, NULL);
    schedule(s);
    return c;
}

static const struct pt_downstream_ops down_ops = {
    .send_head = h1_send_head,
    .want_body = h1_want_body,
    .reset = h1_reset,
    .take_transport = h1_take_transport,
};

/* --- connection --------------------------------------------------------- */

static void server_free(struct pt_h1_server *s)
{
    pt_worker_cancel_deferred(s->w, &s->task);
    event_free(s->timer);
    pt_h1_parser_free(s->parser);
    if (s->dc.on_closed)
        s->dc.on_closed(&s->dc);
    free(s);
}

static void close_server(struct pt_h1_server *s, int err)
{
    if (s->x) {
        struct pt_exchange *x = s->x;
        s->x = NULL;
        pt_exchange_handler->end(x, err);
    }
    if (s->conn) {
        if (s->close_now || err)
            pt_conn_free(s->conn);
        else
            pt_conn_close_after_flush(s->conn);
        s->conn = NULL;
    }
    server_free(s);
}

/* Reply to a request we could not even parse, then close. */
static void parse_error(struct pt_h1_server *s, int err)
{
    s->keep_alive = false;
    s->discard_body = true;
    struct pt_exchange *x = s->x;
    if (!x) {
        x = new_exchange(s);
        x->req.method = PT_STR("-");
        pt_pipe_set_consumer(&x->resp_body, on_resp_data, s);
    }
    s->req_done = true;
    if (s->head_sent) {
        s->close_now = true;
        schedule(s);
        return;
    }
    pt_exchange_handler->fail(x, err);
}

static void process_input(struct pt_h1_server *s)
{
    if (s->processing)
        return;
    s->processing = true;
    struct pt_conn *c = s->conn;
    while (c && !s->taken && evbuffer_get_length(c->in) > 0) {
        if (s->x && s->req_done)
            break; /* a pipelined request waits for the current response */
        if (!s->x && !s->in_head) {
            s->in_head = true;
            arm_timer(s, s->dc.limits.header_timeout_ms);
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1)
            break;
        ssize_t r = pt_h1_parser_execute(s->parser, v.iov_base, v.iov_len);
        if (r < 0) {
            evbuffer_drain(c->in, evbuffer_get_length(c->in));
            pt_conn_pause_read(c);
            parse_error(s, (int)r);
            break;
        }
        evbuffer_drain(c->in, (size_t)r);
        if ((size_t)r < v.iov_len || s->taken || c->read_paused)
            break;
    }
    if (c && s->conn && !s->taken) {
        /* Do not let a client queue unbounded pipelined bytes. */
        if (s->x && s->req_done &&
            evbuffer_get_length(c->in) > 2 * (size_t)s->dc.limits.max_header_bytes)
            pt_conn_pause_read(c);
        if (c->read_eof) {
            if (!s->x) {
                s->keep_alive = false;
                schedule(s);
            } else if (!s->req_done) {
                /* The client gave up mid-request. */
                s->close_now = true;
                s->keep_alive = false;
                schedule(s);
            } else {
                /* Half-close after a complete request: answer, then close. */
                s->keep_alive = false;
            }
        }
    }
    s->processing = false;
}

static void task_run(struct pt_deferred *d)
{
    struct pt_h1_server *s =
        (struct pt_h1_server *)((char *)d - offsetof(struct pt_h1_server, task));
    if (s->kicked) {
        /* First turn: parse what the sniffer already read, under the
         * header timeout armed at creation. */
        s->kicked = false;
        process_input(s);
        return;
    }
    if (s->taken) {
        server_free(s);
        return;
    }
    if (s->close_now) {
        close_server(s, PT_ERR_CANCELLED);
        return;
    }
    if (s->x) {
        if (!s->resp_done)
            return;
        if (!s->req_done) {
            /* Answered before the request body ended: the rest of it is
             * unread, so this connection cannot carry another request. */
            s->keep_alive = false;
        }
        struct pt_exchange *x = s->x;
        s->x = NULL;
        pt_exchange_handler->end(x, 0);
    }
    if (!s->keep_alive || !s->conn ||
        (s->conn->read_eof && evbuffer_get_length(s->conn->in) == 0)) {
        close_server(s, 0);
        return;
    }
    pt_h1_parser_next(s->parser);
    arm_timer(s, s->dc.limits.idle_timeout_ms);
    pt_conn_resume_read(s->conn);
    process_input(s);
}

static void schedule(struct pt_h1_server *s)
{
    pt_worker_defer(s->w, &s->task);
}

static void on_read(struct pt_conn *c, void *ctx)
{
    process_input(ctx);
}

static void on_drained(struct pt_conn *c, void *ctx)
{
    struct pt_h1_server *s = ctx;
    s->waiting_drain = false;
    pump_response(s);
}

static void on_conn_close(struct pt_conn *c, void *ctx, int err)
{
    struct pt_h1_server *s = ctx;
    pt_conn_free(s->conn);
    s->conn = NULL;
    close_server(s, PT_ERR_CANCELLED);
}

static const struct pt_conn_cb conn_cb = {
    .on_read = on_read,
    .on_drained = on_drained,
    .on_connected = NULL,
    .on_close = on_conn_close,
};

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pt_h1_server *s = arg;
    if (s->x)
        return; /* a request is running: its own timers apply */
    if (pt_h1_parser_in_message(s->parser)) {
        /* Part of a head arrived, not all of it in time: 408, then close. */
        pt_conn_pause_read(s->conn);
        parse_error(s, PT_ERR_REQUEST_TIMEOUT);
        return;
    }
    /* Idle, or nothing sent since accept: close quietly. */
    s->keep_alive = false;
    close_server(s, 0);
}

static void drain(struct pt_down_conn *dc)
{
    struct pt_h1_server *s = (struct pt_h1_server *)dc;
    s->draining = true;
    s->keep_alive = false;
    if (!s->x && !pt_h1_parser_in_message(s->parser))
        schedule(s);
}

static void force_close(struct pt_down_conn *dc)
{
    struct pt_h1_server *s = (struct pt_h1_server *)dc;
    s->close_now = true;
    close_server(s, PT_ERR_SHUTTING_DOWN);
}

static const struct pt_down_conn_ops dc_ops = {.drain = drain, .close = force_close};

static void kick(struct pt_h1_server *s)
{
    /* Slow-loris protection starts at accept for the first request. */
    arm_timer(s, s->dc.limits.header_timeout_ms);
    s->in_head = true;
    if (evbuffer_get_length(s->conn->in) > 0) {
        s->kicked = true;
        pt_worker_defer(s->w, &s->task);
    }
}

struct pt_down_conn *pt_h1_server_new(struct pt_worker *w, struct pt_conn *conn,
                                      const struct pt_down_conn *tmpl)
{
    struct pt_h1_server *s = pt_xcalloc(1, sizeof(*s));
    s->dc = *tmpl;
    s->dc.ops = &dc_ops;
    s->dc.prev = s->dc.next = NULL;
    s->w = w;
    s->conn = conn;
    s->keep_alive = true;
    s->task.fn = task_run;
    s->timer = event_new(w->base, -1, 0, on_timer, s);
    if (!s->timer)
        pt_abort_oom(sizeof(*s));
    struct pt_h1_limits lim = {
        .max_header_bytes = s->dc.limits.max_header_bytes,
        .max_headers = s->dc.limits.max_headers,
    };
    s->parser = pt_h1_parser_new(PT_H1_REQUEST, &lim, &parser_cb, s);
    pt_conn_set_callbacks(conn, &conn_cb, s);
    kick(s);
    return &s->dc;
}
