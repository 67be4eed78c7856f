#include "http2/server.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strutil.h"
#include "http2/common.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Request body still read (and discarded) after an early complete response. */
#define EARLY_DRAIN_MAX (1u << 20)

struct h2s_stream;

struct pt_h2_server {
    struct pt_down_conn dc;
    struct pt_worker *w;
    struct pt_conn *conn;
    nghttp2_session *ng;
    struct pt_flushable flushable;
    struct pt_deferred kick; /* process input already buffered at creation */
    struct pt_deferred close_task;
    struct event *timer;
    struct h2s_stream *streams; /* open streams with an exchange */
    uint32_t nstreams;
    int close_err;
    bool draining;
    bool closing; /* close_task queued */
    bool blocked; /* output above the high-water mark */
};

struct h2s_stream {
    struct pt_h2_server *s;
    struct pt_exchange *x;
    struct h2s_stream *prev;
    struct h2s_stream *next;
    int32_t id;
    int err; /* request rejected while its head arrived */
    size_t header_bytes;
    uint64_t received; /* DATA payload delivered to us */
    uint64_t consumed; /* returned to the peer as window */
    struct pt_headers *trailers;
    bool in_trailers;
    bool started;
    bool req_eof;
    bool resp_submitted;
    bool deferred;
    bool resp_complete;
    bool discard_body;
    uint32_t drain_left; /* after an early response: body bytes still accepted */
};

static const struct pt_downstream_ops down_ops;

static struct pt_h2_server *from_flushable(struct pt_flushable *f)
{
    return (struct pt_h2_server *)((char *)f - offsetof(struct pt_h2_server, flushable));
}

static void mark_dirty(struct pt_h2_server *s)
{
    if (!s->closing)
        pt_worker_mark_dirty(s->w, &s->flushable);
}

static void schedule_close(struct pt_h2_server *s, int err)
{
    if (s->closing)
        return;
    s->closing = true;
    s->close_err = err;
    pt_worker_unmark_dirty(s->w, &s->flushable);
    pt_worker_defer(s->w, &s->close_task);
}

static void arm_timer(struct pt_h2_server *s, uint32_t ms)
{
    if (!ms) {
        event_del(s->timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(s->timer, &tv);
}

static void stream_unlink(struct pt_h2_server *s, struct h2s_stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
    s->nstreams--;
    if (s->nstreams == 0 && !s->closing)
        arm_timer(s, s->dc.limits.idle_timeout_ms);
}

/* --- request body flow control ------------------------------------------ */

static void on_req_drain(struct pt_pipe *p, size_t n, void *producer)
{
    struct h2s_stream *st = producer;
    struct pt_h2_server *s = st->s;
    st->consumed += n;
    nghttp2_session_consume(s->ng, st->id, n);
    mark_dirty(s);
}

/* --- response body ------------------------------------------------------ */

static void on_resp_data(struct pt_pipe *p, void *consumer)
{
    struct h2s_stream *st = consumer;
    if (!st->resp_submitted)
        return;
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->s->ng, st->id);
    }
    mark_dirty(st->s);
}

static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    struct h2s_stream *st = src->ptr;
    return pt_h2_pipe_read(ng, id, &st->x->resp_body, &st->x->arena, length, flags, &st->deferred);
}

static int send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                     size_t length, nghttp2_data_source *src, void *user)
{
    struct pt_h2_server *s = user;
    struct h2s_stream *st = src->ptr;
    int rc = pt_h2_pipe_send(s->conn->out, framehd, &st->x->resp_body, length, &s->blocked);
    if (rc == 0)
        st->x->bytes_out += length;
    return rc;
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *user)
{
    struct pt_h2_server *s = user;
    if (evbuffer_get_length(s->conn->out) >= PT_H2_OUT_HIWAT) {
        s->blocked = true;
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    evbuffer_add(s->conn->out, data, len);
    return (ssize_t)len;
}

/* --- request head ------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct pt_h2_server *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct pt_exchange *x =
        pt_exchange_new(s->w, &s->dc.info, &down_ops, NULL, s->dc.limits.exchange_arena_bytes);
    struct h2s_stream *st = pt_arena_alloc(&x->arena, sizeof(*st));
    if (!st) {
        pt_exchange_free(x);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    memset(st, 0, sizeof(*st));
    st->s = s;
    st->x = x;
    st->id = frame->hd.stream_id;
    x->down_ctx = st;
    x->req.version = PT_HTTP_2;
    x->req.headers.max = s->dc.limits.max_headers;
    pt_pipe_set_producer(&x->req_body, on_req_drain, st);
    pt_pipe_set_consumer(&x->resp_body, on_resp_data, st);
    nghttp2_session_set_stream_user_data(ng, st->id, st);
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->nstreams++;
    event_del(s->timer);
    return 0;
}

static int copy_pseudo(struct pt_exchange *x, struct pt_str *dst, const uint8_t *v, size_t len)
{
    return pt_arena_str(&x->arena, (struct pt_str){(const char *)v, len}, dst);
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    struct pt_h2_server *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct h2s_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (!st || st->err)
        return 0;
    struct pt_exchange *x = st->x;
    st->header_bytes += namelen + valuelen + 32;
    if (st->header_bytes > s->dc.limits.max_header_bytes) {
        st->err = PT_ERR_HEADERS_TOO_LARGE;
        return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        /* Trailers (nghttp2 rejects pseudo-headers in them). */
        if (!st->trailers) {
            st->trailers = pt_arena_alloc(&x->arena, sizeof(*st->trailers));
            if (!st->trailers) {
                st->err = PT_ERR_HEADERS_TOO_LARGE;
                return 0;
            }
            pt_headers_init(st->trailers, &x->arena, s->dc.limits.max_headers);
        }
        if (pt_h2_add_field(st->trailers, name, namelen, value, valuelen) != 0)
            st->err = PT_ERR_HEADERS_TOO_LARGE;
        return 0;
    }
    int rc = 0;
    if (namelen && name[0] == ':') {
        struct pt_str n = {(const char *)name, namelen};
        if (pt_str_eq(n, PT_STR(":method")))
            rc = copy_pseudo(x, &x->req.method, value, valuelen);
        else if (pt_str_eq(n, PT_STR(":path")))
            rc = copy_pseudo(x, &x->req.target, value, valuelen);
        else if (pt_str_eq(n, PT_STR(":authority")))
            rc = copy_pseudo(x, &x->req.authority, value, valuelen);
        else if (pt_str_eq(n, PT_STR(":scheme")))
            rc = copy_pseudo(x, &x->req.scheme, value, valuelen);
        /* :protocol (RFC 8441) is accepted by nghttp2 only when we enable it. */
    } else {
        rc = pt_h2_add_field(&x->req.headers, name, namelen, value, valuelen);
    }
    if (rc)
        st->err = PT_ERR_HEADERS_TOO_LARGE;
    return 0;
}

static void finish_request_head(struct pt_h2_server *s, struct h2s_stream *st, bool end_stream)
{
    struct pt_exchange *x = st->x;
    struct pt_request *r = &x->req;
    int hi = pt_headers_index(&r->headers, PT_STR("host"), 0);
    if (!r->authority.len && hi >= 0)
        r->authority = r->headers.v[hi].value;
    int ci = pt_headers_index(&r->headers, PT_STR("content-length"), 0);
    if (ci >= 0) {
        uint64_t cl;
        if (pt_str_to_u64(r->headers.v[ci].value, &cl) == 0 && cl <= INT64_MAX)
            r->content_length = (int64_t)cl;
    }
    int ti = pt_headers_index(&r->headers, PT_STR("content-type"), 0);
    if (ti >= 0)
        r->is_grpc = pt_http_is_grpc_content_type(r->headers.v[ti].value);
    r->is_head = pt_str_eq(r->method, PT_STR("HEAD"));
    r->has_body = !end_stream;
    st->started = true;
    if (st->err) {
        st->discard_body = true;
        pt_exchange_handler->fail(x, st->err);
    } else {
        pt_exchange_handler->start(x);
    }
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    struct pt_h2_server *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct h2s_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (!st)
        return 0;
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        finish_request_head(s, st, end_stream);
    if (end_stream && !st->req_eof) {
        st->req_eof = true;
        if (!st->discard_body)
            pt_pipe_end(&st->x->req_body, st->trailers);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    struct pt_h2_server *s = user;
    struct h2s_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st) {
        nghttp2_session_consume_connection(ng, len);
        return 0;
    }
    st->received += len;
    st->x->bytes_in += len;
    if (st->discard_body) {
        st->consumed += len;
        nghttp2_session_consume(ng, id, len);
        if (st->resp_complete) {
            if (len >= st->drain_left)
                nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
            st->drain_left = len >= st->drain_left ? 0 : st->drain_left - (uint32_t)len;
        }
        return 0;
    }
    int rc = pt_pipe_write(&st->x->req_body, data, len);
    if (rc < 0) {
        st->discard_body = true;
        st->consumed += len;
        nghttp2_session_consume(ng, id, len);
        pt_exchange_handler->fail(st->x, rc);
    }
    (void)s;
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct h2s_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (!st)
        return 0;
    st->resp_complete = true;
    if (!st->req_eof) {
        /* The response is complete before the request (an early local
         * reply). gRPC streams may never end: RST_STREAM(NO_ERROR) now, as
         * RFC 9113 §8.1 allows. Others: let the client finish a modest body
         * (discarded, window returned) - some clients treat that reset as
         * a failure - and reset only past EARLY_DRAIN_MAX. */
        if (st->x->req.is_grpc) {
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        } else {
            st->discard_body = true;
            st->drain_left = EARLY_DRAIN_MAX;
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    struct pt_h2_server *s = user;
    struct h2s_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    if (st->received > st->consumed)
        nghttp2_session_consume_connection(ng, (size_t)(st->received - st->consumed));
    stream_unlink(s, st);
    struct pt_exchange *x = st->x;
    int err = st->resp_complete ? 0 : PT_ERR_CANCELLED;
    pt_exchange_handler->end(x, err);
    return 0;
}

/* --- downstream ops ----------------------------------------------------- */

static void h2_send_head(struct pt_exchange *x)
{
    struct h2s_stream *st = x->down_ctx;
    struct pt_h2_server *s = st->s;
    char *status = pt_arena_alloc(&x->arena, 4);
    if (!status) {
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        mark_dirty(s);
        return;
    }
    int code = x->resp.status;
    if (code < 100 || code > 999)
        code = 502;
    status[0] = (char)('0' + code / 100);
    status[1] = (char)('0' + (code / 10) % 10);
    status[2] = (char)('0' + code % 10);
    status[3] = '\0';
    static const char *const pseudo[] = {":status"};
    struct pt_str pv[] = {{status, 3}};
    size_t n;
    nghttp2_nv *nva = pt_h2_make_nva(&x->arena, &x->resp.headers, pseudo, pv, 1, &n);
    if (!nva) {
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        mark_dirty(s);
        return;
    }
    bool body = x->resp.has_body && !x->req.is_head;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    int rv = nghttp2_submit_response(s->ng, st->id, nva, n, body ? &prd : NULL);
    if (rv != 0) {
        pt_log_debug("h2: submit_response stream %d: %s", st->id, nghttp2_strerror(rv));
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    }
    st->resp_submitted = true;
    mark_dirty(s);
}

static void h2_reset(struct pt_exchange *x, int err)
{
    struct h2s_stream *st = x->down_ctx;
    nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, pt_h2_error_code(err));
    st->discard_body = true;
    mark_dirty(st->s);
}

static const struct pt_downstream_ops down_ops = {
    .send_head = h2_send_head,
    .want_body = NULL,
    .reset = h2_reset,
    .take_transport = NULL,
};

/* --- connection --------------------------------------------------------- */

static void close_now(struct pt_h2_server *s)
{
    /* End every exchange still open: the client is gone. */
    while (s->streams) {
        struct h2s_stream *st = s->streams;
        nghttp2_session_set_stream_user_data(s->ng, st->id, NULL);
        stream_unlink(s, st);
        pt_exchange_handler->end(st->x, PT_ERR_CANCELLED);
    }
    pt_worker_unmark_dirty(s->w, &s->flushable);
    pt_worker_cancel_deferred(s->w, &s->kick);
    pt_worker_cancel_deferred(s->w, &s->close_task);
    event_free(s->timer);
    nghttp2_session_del(s->ng);
    if (s->close_err)
        pt_conn_free(s->conn);
    else
        pt_conn_close_after_flush(s->conn);
    if (s->dc.on_closed)
        s->dc.on_closed(&s->dc);
    free(s);
}

static void close_task(struct pt_deferred *d)
{
    struct pt_h2_server *s =
        (struct pt_h2_server *)((char *)d - offsetof(struct pt_h2_server, close_task));
    close_now(s);
}

static void flush(struct pt_flushable *f)
{
    struct pt_h2_server *s = from_flushable(f);
    if (s->closing)
        return;
    s->blocked = false;
    int rv = nghttp2_session_send(s->ng);
    if (rv != 0) {
        pt_log_debug("h2 server: send: %s", nghttp2_strerror(rv));
        schedule_close(s, PT_ERR_CLOSED);
        return;
    }
    pt_conn_write_soon(s->conn);
    if (s->blocked)
        pt_conn_want_drained(s->conn, PT_H2_OUT_LOWAT);
    else if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng))
        schedule_close(s, 0);
}

static void process_input(struct pt_h2_server *s)
{
    struct evbuffer *in = s->conn->in;
    while (!s->closing && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        ssize_t r = nghttp2_session_mem_recv(s->ng, v.iov_base, v.iov_len);
        if (r < 0) {
            pt_log_debug("h2 server: %s from %s", nghttp2_strerror((int)r), s->dc.info.peer_ip);
            /* nghttp2 queued a GOAWAY for protocol errors; send it, then close. */
            if (r != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
                nghttp2_session_terminate_session(s->ng, NGHTTP2_PROTOCOL_ERROR);
            nghttp2_session_send(s->ng);
            evbuffer_drain(in, evbuffer_get_length(in));
            schedule_close(s, 0);
            return;
        }
        evbuffer_drain(in, (size_t)r);
    }
    mark_dirty(s);
}

static void on_read(struct pt_conn *c, void *ctx)
{
    struct pt_h2_server *s = ctx;
    process_input(s);
    if (c->read_eof)
        schedule_close(s, PT_ERR_CLOSED);
}

static void on_drained(struct pt_conn *c, void *ctx)
{
    mark_dirty(ctx);
}

static void on_conn_close(struct pt_conn *c, void *ctx, int err)
{
    schedule_close(ctx, err ? err : PT_ERR_CLOSED);
}

static const struct pt_conn_cb conn_cb = {
    .on_read = on_read,
    .on_drained = on_drained,
    .on_connected = NULL,
    .on_close = on_conn_close,
};

static void kick(struct pt_deferred *d)
{
    struct pt_h2_server *s =
        (struct pt_h2_server *)((char *)d - offsetof(struct pt_h2_server, kick));
    process_input(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pt_h2_server *s = arg;
    if (s->nstreams)
        return;
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    s->draining = true;
    nghttp2_session_send(s->ng);
    schedule_close(s, 0);
}

static void drain(struct pt_down_conn *dc)
{
    struct pt_h2_server *s = (struct pt_h2_server *)dc;
    if (s->draining || s->closing)
        return;
    s->draining = true;
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    mark_dirty(s);
}

static void force_close(struct pt_down_conn *dc)
{
    struct pt_h2_server *s = (struct pt_h2_server *)dc;
    s->close_err = PT_ERR_SHUTTING_DOWN;
    close_now(s);
}

static const struct pt_down_conn_ops dc_ops = {.drain = drain, .close = force_close};

static nghttp2_session_callbacks *callbacks_server_callbacks;

static void init_server_callbacks(void)
{
    if (nghttp2_session_callbacks_new(&callbacks_server_callbacks) != 0)
        pt_abort_oom(64);
    nghttp2_session_callbacks_set_send_callback(callbacks_server_callbacks, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(callbacks_server_callbacks, send_data);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks_server_callbacks,
                                                            on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks_server_callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks_server_callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks_server_callbacks,
                                                              on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks_server_callbacks, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks_server_callbacks,
                                                           on_stream_close);
}

/* One table for the process (read-only once built). */
static nghttp2_session_callbacks *server_callbacks(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_server_callbacks);
    return callbacks_server_callbacks;
}

struct pt_down_conn *pt_h2_server_new(struct pt_worker *w, struct pt_conn *conn,
                                      const struct pt_down_conn *tmpl)
{
    struct pt_h2_server *s = pt_xcalloc(1, sizeof(*s));
    s->dc = *tmpl;
    s->dc.ops = &dc_ops;
    s->dc.prev = s->dc.next = NULL;
    s->w = w;
    s->conn = conn;
    s->flushable.flush = flush;
    s->kick.fn = kick;
    s->close_task.fn = close_task;
    s->timer = event_new(w->base, -1, 0, on_timer, s);
    if (!s->timer)
        pt_abort_oom(sizeof(*s));

    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0)
        pt_abort_oom(64);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    uint32_t rps = s->dc.limits.max_resets_per_second ? s->dc.limits.max_resets_per_second : 200;
    nghttp2_option_set_stream_reset_rate_limit(opt, (uint64_t)rps * 2, rps);
    if (nghttp2_session_server_new2(&s->ng, server_callbacks(), s, opt) != 0)
        pt_abort_oom(64);
    nghttp2_option_del(opt);

    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->dc.limits.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, PT_H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, s->dc.limits.max_header_bytes},
    };
    nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, PT_H2_CONN_WINDOW);

    pt_conn_set_callbacks(conn, &conn_cb, s);
    arm_timer(s, s->dc.limits.header_timeout_ms);
    pt_worker_defer(w, &s->kick);
    return &s->dc;
}

bool pt_h2_is_preface(const char *data, size_t len, bool *need_more)
{
    size_t plen = sizeof(preface) - 1;
    size_t n = len < plen ? len : plen;
    *need_more = false;
    if (memcmp(data, preface, n) != 0)
        return false;
    if (len < plen) {
        *need_more = true;
        return false;
    }
    return true;
}
