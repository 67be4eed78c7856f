#include "http2/client.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"
#include "http2/common.h"
#include "net/conn.h"

/* Streams a connection carries before the server's SETTINGS say how many
 * it allows: one. Sending more risks REFUSED_STREAM from servers with a low
 * limit (nginx's http2_max_concurrent_streams 4 refused dozens of streams
 * in a burst); the pool keeps the others waiting a round trip instead. */
#define PRE_SETTINGS_STREAMS 1
#define MAX_STREAMS_CAP 1000

struct h2c_stream;

struct pt_h2_client {
    struct pt_worker *w;
    struct pt_conn *conn;
    nghttp2_session *ng;
    const struct pt_h2_client_hooks *hooks;
    void *arg;
    struct pt_flushable flushable;
    struct pt_deferred close_task;
    struct event *timer;
    struct h2c_stream *streams;
    uint32_t nstreams;
    uint32_t max_streams;
    bool settings_known; /* the server's SETTINGS arrived */
    uint32_t idle_timeout_ms;
    int close_err;
    bool tls;
    bool connected;
    bool goaway;   /* no new streams */
    bool released; /* the pool let go */
    bool dead_reported;
    bool closing;
    bool blocked;
};

struct h2c_stream {
    struct pt_up_stream up;
    struct pt_h2_client *c;
    struct pt_exchange *x; /* NULL once cancelled */
    const struct pt_upstream_events *ev;
    struct h2c_stream *prev;
    struct h2c_stream *next;
    int32_t id;
    uint64_t received;
    uint64_t consumed;
    struct pt_headers *trailers;
    int status;
    bool informational;
    bool head_done;
    bool resp_eof;
    bool req_deferred;
    int head_err;
};

static void report_dead(struct pt_h2_client *c)
{
    if (c->dead_reported)
        return;
    c->dead_reported = true;
    c->goaway = true;
    if (c->hooks->on_dead)
        c->hooks->on_dead(c, c->arg);
}

static void mark_dirty(struct pt_h2_client *c)
{
    if (!c->closing)
        pt_worker_mark_dirty(c->w, &c->flushable);
}

static void schedule_close(struct pt_h2_client *c, int err)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_err = err;
    pt_worker_unmark_dirty(c->w, &c->flushable);
    pt_worker_defer(c->w, &c->close_task);
}

static void arm_idle(struct pt_h2_client *c)
{
    if (c->nstreams == 0 && c->idle_timeout_ms && !c->closing) {
        struct timeval tv = {c->idle_timeout_ms / 1000, (c->idle_timeout_ms % 1000) * 1000};
        event_add(c->timer, &tv);
    }
}

static void stream_unlink(struct pt_h2_client *c, struct h2c_stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
    c->nstreams--;
}

/* Detach the stream from its exchange: no more pipe callbacks either way. */
static struct pt_exchange *stream_detach(struct h2c_stream *st)
{
    struct pt_exchange *x = st->x;
    if (!x)
        return NULL;
    st->x = NULL;
    x->up = NULL;
    pt_pipe_set_consumer(x->req_up, NULL, NULL);
    pt_pipe_set_producer(x->resp_up, NULL, NULL);
    return x;
}

/* Detach and report the outcome. */
static void stream_finish(struct h2c_stream *st, int err, unsigned flags)
{
    struct pt_exchange *x = stream_detach(st);
    if (x)
        st->ev->on_closed(x, err, flags);
}

/* --- request body ------------------------------------------------------- */

static void on_req_data(struct pt_pipe *p, void *consumer)
{
    struct h2c_stream *st = consumer;
    if (st->id <= 0)
        return;
    if (st->req_deferred) {
        st->req_deferred = false;
        nghttp2_session_resume_data(st->c->ng, st->id);
    }
    mark_dirty(st->c);
}

static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct h2c_stream *st = src->ptr;
    if (!st->x)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return pt_h2_pipe_read(ng, id, st->x->req_up, &st->x->arena, length, flags, &st->req_deferred);
}

static int send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                     size_t length, nghttp2_data_source *src, void *user)
{
    struct pt_h2_client *c = user;
    struct h2c_stream *st = src->ptr;
    if (!st->x)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return pt_h2_pipe_send(c->conn->out, framehd, st->x->req_up, length, &c->blocked);
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *user)
{
    struct pt_h2_client *c = user;
    if (evbuffer_get_length(c->conn->out) >= PT_H2_OUT_HIWAT) {
        c->blocked = true;
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    evbuffer_add(c->conn->out, data, len);
    return (ssize_t)len;
}

/* --- response ----------------------------------------------------------- */

static void on_resp_drain(struct pt_pipe *p, size_t n, void *producer)
{
    struct h2c_stream *st = producer;
    st->consumed += n;
    nghttp2_session_consume(st->c->ng, st->id, n);
    mark_dirty(st->c);
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct h2c_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (!st || !st->x || st->head_err)
        return 0;
    struct pt_exchange *x = st->x;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int code = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            code = code * 10 + (value[i] - '0');
        st->status = code;
        st->informational = code >= 100 && code < 200;
        return 0;
    }
    if (st->informational || (namelen && name[0] == ':'))
        return 0;
    struct pt_headers *h;
    if (!st->head_done) {
        h = &x->resp.headers;
    } else {
        if (!st->trailers) {
            st->trailers = pt_arena_alloc(&x->arena, sizeof(*st->trailers));
            if (!st->trailers) {
                st->head_err = PT_ERR_UPSTREAM_PROTOCOL;
                return 0;
            }
            pt_headers_init(st->trailers, &x->arena, 0);
        }
        h = st->trailers;
    }
    if (pt_h2_add_field(h, name, namelen, value, valuelen) != 0)
        st->head_err = PT_ERR_UPSTREAM_PROTOCOL;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct pt_h2_client *c = user;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        uint32_t m =
            nghttp2_session_get_remote_settings(ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        c->max_streams = m > MAX_STREAMS_CAP ? MAX_STREAMS_CAP : m;
        c->settings_known = true;
        if (c->hooks->on_capacity && !c->goaway)
            c->hooks->on_capacity(c, c->arg);
        return 0;
    }
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true;
        report_dead(c);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct h2c_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (!st || !st->x)
        return 0;
    struct pt_exchange *x = st->x;
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        if (st->informational) {
            st->informational = false;
            return 0;
        }
        if (!st->head_done) {
            if (st->head_err) {
                nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
                return 0;
            }
            st->head_done = true;
            x->resp.status = st->status;
            x->resp.has_body = !end_stream;
            int ci = pt_headers_index(&x->resp.headers, PT_STR("content-length"), 0);
            uint64_t cl;
            if (ci >= 0 && pt_str_to_u64(x->resp.headers.v[ci].value, &cl) == 0 && cl <= INT64_MAX)
                x->resp.content_length = (int64_t)cl;
            pt_pipe_set_producer(x->resp_up, on_resp_drain, st);
            st->ev->on_response_head(x);
            if (!st->x)
                return 0; /* cancelled by the head handler */
        }
    }
    if (end_stream && !st->resp_eof) {
        st->resp_eof = true;
        pt_pipe_end(st->x->resp_up, st->trailers);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    struct h2c_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st || !st->x) {
        nghttp2_session_consume_connection(ng, len);
        return 0;
    }
    st->received += len;
    if (pt_pipe_write(st->x->resp_up, data, len) < 0) {
        st->consumed += len;
        nghttp2_session_consume(ng, id, len);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    struct pt_h2_client *c = user;
    struct h2c_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    if (st->received > st->consumed)
        nghttp2_session_consume_connection(ng, (size_t)(st->received - st->consumed));
    stream_unlink(c, st);
    if (st->x) {
        if (st->resp_eof && code == NGHTTP2_NO_ERROR)
            stream_finish(st, 0, 0);
        else if (code == NGHTTP2_REFUSED_STREAM && !st->head_done)
            stream_finish(st, PT_ERR_UPSTREAM_REFUSED, PT_UP_RETRYABLE);
        else if (code == NGHTTP2_CANCEL)
            stream_finish(st, PT_ERR_UPSTREAM_RESET, PT_UP_PEER_CANCEL);
        else if (st->head_err)
            stream_finish(st, st->head_err, 0);
        else
            stream_finish(st, PT_ERR_UPSTREAM_RESET, 0);
    }
    free(st);
    if (c->nstreams == 0) {
        if (c->goaway || c->released)
            schedule_close(c, 0);
        else
            arm_idle(c);
    }
    if (!c->goaway && c->hooks->on_capacity)
        c->hooks->on_capacity(c, c->arg);
    return 0;
}

/* --- streams ------------------------------------------------------------ */

static void stream_cancel(struct pt_up_stream *up)
{
    struct h2c_stream *st = (struct h2c_stream *)up;
    if (!stream_detach(st))
        return;
    if (st->id > 0 && !st->c->closing) {
        nghttp2_submit_rst_stream(st->c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        mark_dirty(st->c);
    }
}

bool pt_h2_client_available(const struct pt_h2_client *c)
{
    return !c->goaway && !c->closing && c->nstreams < c->max_streams;
}

bool pt_h2_client_settings_known(const struct pt_h2_client *c)
{
    return c->settings_known;
}

uint32_t pt_h2_client_active_streams(const struct pt_h2_client *c)
{
    return c->nstreams;
}

int pt_h2_client_start(struct pt_h2_client *c, struct pt_exchange *x,
                       const struct pt_upstream_events *ev)
{
    if (!pt_h2_client_available(c))
        return PT_ERR_UPSTREAM_REFUSED;
    static const char *const pseudo[] = {":method", ":scheme", ":authority", ":path"};
    struct pt_str pv[4] = {x->req.method, c->tls ? PT_STR("https") : PT_STR("http"),
                           x->req.authority, x->forward_path};
    size_t n;
    nghttp2_nv *nva = pt_h2_make_nva(&x->arena, &x->req.headers, pseudo, pv, 4, &n);
    if (!nva)
        return PT_ERR_LIMIT;
    struct h2c_stream *st = pt_xcalloc(1, sizeof(*st));
    st->up.cancel = stream_cancel;
    st->c = c;
    st->x = x;
    st->ev = ev;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    bool body = x->req.has_body;
    int32_t id = nghttp2_submit_request(c->ng, NULL, nva, n, body ? &prd : NULL, st);
    if (id < 0) {
        free(st);
        return PT_ERR_UPSTREAM_REFUSED;
    }
    st->id = id;
    st->next = c->streams;
    if (c->streams)
        c->streams->prev = st;
    c->streams = st;
    c->nstreams++;
    event_del(c->timer);
    x->up = &st->up;
    if (body)
        pt_pipe_set_consumer(x->req_up, on_req_data, st);
    mark_dirty(c);
    return 0;
}

/* --- connection --------------------------------------------------------- */

static void close_now(struct pt_h2_client *c)
{
    int err = c->close_err;
    unsigned flags = 0;
    if (!c->connected) {
        flags = PT_UP_RETRYABLE;
        if (!err)
            err = PT_ERR_UPSTREAM_CONNECT;
    } else if (!err) {
        err = PT_ERR_UPSTREAM_RESET;
    }
    report_dead(c);
    while (c->streams) {
        struct h2c_stream *st = c->streams;
        stream_unlink(c, st);
        nghttp2_session_set_stream_user_data(c->ng, st->id, NULL);
        /* A stream that never left our buffers was not seen by the server. */
        stream_finish(st, err, st->head_done ? 0 : flags);
        free(st);
    }
    pt_worker_unmark_dirty(c->w, &c->flushable);
    pt_worker_cancel_deferred(c->w, &c->close_task);
    event_free(c->timer);
    nghttp2_session_del(c->ng);
    if (c->close_err)
        pt_conn_free(c->conn);
    else
        pt_conn_close_after_flush(c->conn);
    free(c);
}

static void close_task(struct pt_deferred *d)
{
    close_now((struct pt_h2_client *)((char *)d - offsetof(struct pt_h2_client, close_task)));
}

static void flush(struct pt_flushable *f)
{
    struct pt_h2_client *c =
        (struct pt_h2_client *)((char *)f - offsetof(struct pt_h2_client, flushable));
    /* Nothing is serialized before the connection is up, so a connect
     * failure leaves every request body intact for a retry elsewhere. */
    if (c->closing || !c->connected)
        return;
    c->blocked = false;
    int rv = nghttp2_session_send(c->ng);
    if (rv != 0) {
        pt_log_debug("h2 client: send: %s", nghttp2_strerror(rv));
        schedule_close(c, PT_ERR_UPSTREAM_RESET);
        return;
    }
    pt_conn_write_soon(c->conn);
    if (c->blocked)
        pt_conn_want_drained(c->conn, PT_H2_OUT_LOWAT);
    else if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))
        schedule_close(c, 0);
}

static void on_read(struct pt_conn *conn, void *ctx)
{
    struct pt_h2_client *c = ctx;
    struct evbuffer *in = conn->in;
    while (!c->closing && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        ssize_t r = nghttp2_session_mem_recv(c->ng, v.iov_base, v.iov_len);
        if (r < 0) {
            pt_log_warn("upstream HTTP/2 protocol error: %s", nghttp2_strerror((int)r));
            nghttp2_session_terminate_session(c->ng, NGHTTP2_PROTOCOL_ERROR);
            nghttp2_session_send(c->ng);
            evbuffer_drain(in, evbuffer_get_length(in));
            schedule_close(c, PT_ERR_UPSTREAM_PROTOCOL);
            return;
        }
        evbuffer_drain(in, (size_t)r);
    }
    if (conn->read_eof) {
        schedule_close(c, PT_ERR_UPSTREAM_RESET);
        return;
    }
    mark_dirty(c);
}

static void on_connected(struct pt_conn *conn, void *ctx)
{
    struct pt_h2_client *c = ctx;
    if (c->tls && (!conn->alpn || strcmp(conn->alpn, "h2") != 0)) {
        /* No h2 server saw the streams: they stay retryable elsewhere. */
        pt_log_warn("upstream did not negotiate h2 over TLS (ALPN)");
        schedule_close(c, PT_ERR_UPSTREAM_PROTOCOL);
        return;
    }
    c->connected = true;
    mark_dirty(c);
}

static void on_drained(struct pt_conn *conn, void *ctx)
{
    mark_dirty(ctx);
}

static void on_conn_close(struct pt_conn *conn, void *ctx, int err)
{
    struct pt_h2_client *c = ctx;
    schedule_close(c, c->connected ? PT_ERR_UPSTREAM_RESET : err);
}

static const struct pt_conn_cb conn_cb = {
    .on_read = on_read,
    .on_drained = on_drained,
    .on_connected = on_connected,
    .on_close = on_conn_close,
};

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct pt_h2_client *c = arg;
    if (c->nstreams)
        return;
    report_dead(c);
    nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
    nghttp2_session_send(c->ng);
    pt_conn_write_soon(c->conn);
    schedule_close(c, 0);
}

void pt_h2_client_release(struct pt_h2_client *c)
{
    c->released = true;
    c->goaway = true;
    c->dead_reported = true; /* the pool already forgot it */
    if (c->nstreams == 0)
        schedule_close(c, 0);
}

static nghttp2_session_callbacks *callbacks_client_callbacks;

static void init_client_callbacks(void)
{
    if (nghttp2_session_callbacks_new(&callbacks_client_callbacks) != 0)
        pt_abort_oom(64);
    nghttp2_session_callbacks_set_send_callback(callbacks_client_callbacks, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(callbacks_client_callbacks, send_data);
    nghttp2_session_callbacks_set_on_header_callback(callbacks_client_callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks_client_callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks_client_callbacks,
                                                              on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks_client_callbacks,
                                                           on_stream_close);
}

/* One table for the process (read-only once built). */
static nghttp2_session_callbacks *client_callbacks(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_client_callbacks);
    return callbacks_client_callbacks;
}

struct pt_h2_client *pt_h2_client_new(struct pt_worker *w, const struct sockaddr *addr,
                                      socklen_t addr_len, const struct pt_h2_client_opts *opts,
                                      const struct pt_h2_client_hooks *hooks, void *arg, int *err)
{
    struct pt_h2_client *c = pt_xcalloc(1, sizeof(*c));
    c->w = w;
    c->hooks = hooks;
    c->arg = arg;
    c->max_streams = PRE_SETTINGS_STREAMS;
    c->idle_timeout_ms = opts->idle_timeout_ms;
    c->tls = opts->ssl_ctx != NULL;
    c->flushable.flush = flush;
    c->close_task.fn = close_task;
    c->timer = event_new(w->base, -1, 0, on_idle, c);
    if (!c->timer)
        pt_abort_oom(sizeof(*c));
    c->conn = pt_conn_connect(w, addr, addr_len, opts->connect_timeout_ms, opts->ssl_ctx, opts->sni,
                              &conn_cb, c, err);
    if (!c->conn) {
        event_free(c->timer);
        free(c);
        return NULL;
    }
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0)
        pt_abort_oom(64);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, PRE_SETTINGS_STREAMS);
    if (nghttp2_session_client_new2(&c->ng, client_callbacks(), c, opt) != 0)
        pt_abort_oom(64);
    nghttp2_option_del(opt);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, PT_H2_STREAM_WINDOW},
    };
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, PT_H2_CONN_WINDOW);
    mark_dirty(c);
    return c;
}
