/*
 * bench_backend: the fast backend behind every proxy in bench/bench.py.
 *
 *   bench_backend H1_PORT H2C_PORT      (listens on 127.0.0.1 only)
 *
 * One thread, libevent + nghttp2, nothing else. It does as little as a server
 * can and still be a correct peer:
 *
 *   H1_PORT   HTTP/1.1 keep-alive (pipelining works): every request, whatever
 *             its method or path, gets 200 with a 100-byte text/plain body.
 *             A Content-Length request body is read and dropped; chunked
 *             request bodies are not supported (501, close).
 *   H2C_PORT  HTTP/2 cleartext with prior knowledge. Any path: 200 with the
 *             same 100-byte body. A request with content-type
 *             application/grpc... is answered like a gRPC server would:
 *             once the whole request (END_STREAM) has arrived, 200 +
 *             content-type application/grpc, one 27-byte gRPC message
 *             (5-byte prefix + 22-byte protobuf), trailer grpc-status: 0.
 *
 * Waiting for END_STREAM before answering matters: nginx's grpc_pass rejects
 * the RST_STREAM(NO_ERROR) a server sends when it answers before the request
 * body is in ("upstream sent frame for unknown stream"), which is what an
 * nginx static-file "gRPC backend" does.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>

#define BODY100                                                                                   \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
    "xxxxxxxx\n"

static const char h1_response[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 100\r\n"
                                  "\r\n" BODY100;
static const char h1_501[] = "HTTP/1.1 501 Not Implemented\r\n"
                             "Content-Length: 0\r\n"
                             "Connection: close\r\n"
                             "\r\n";

static const char body100[] = BODY100;
/* gRPC message: uncompressed, length 22, protobuf field 1 (string, 20 bytes). */
static const char grpc_msg[] = "\x00\x00\x00\x00\x16"
                               "\x0a\x14"
                               "reply from backend!!";
#define GRPC_MSG_LEN 27

_Static_assert(sizeof(body100) - 1 == 100, "body is 100 bytes");
_Static_assert(sizeof(grpc_msg) - 1 == GRPC_MSG_LEN, "gRPC message is 27 bytes");

#define MAX_HEAD 65536

/* ------------------------------------------------------------------------ */
/* HTTP/1.1 */

struct h1conn {
    struct bufferevent *bev;
    bool closing;
};

static void h1_free(struct h1conn *c)
{
    bufferevent_free(c->bev);
    free(c);
}

/* Case-insensitive search for a header line "name:" in [p, end); returns the
 * value start or NULL. */
static const char *find_header(const char *p, const char *end, const char *name)
{
    size_t n = strlen(name);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

static void h1_read(struct bufferevent *bev, void *arg)
{
    struct h1conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);
    while (!c->closing) {
        struct evbuffer_ptr pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (pos.pos < 0) {
            if (evbuffer_get_length(in) > MAX_HEAD) {
                h1_free(c);
                return;
            }
            return;
        }
        size_t head = (size_t)pos.pos + 4;
        const char *h = (const char *)evbuffer_pullup(in, (ev_ssize_t)head);
        const char *end = h + head;
        const char *first_eol = memchr(h, '\n', head);
        const char *hdrs = first_eol ? first_eol + 1 : end;
        size_t clen = 0;
        const char *v = find_header(hdrs, end, "content-length");
        if (v)
            clen = strtoul(v, NULL, 10);
        if (find_header(hdrs, end, "transfer-encoding")) {
            evbuffer_add(out, h1_501, sizeof(h1_501) - 1);
            c->closing = true;
            return;
        }
        v = find_header(hdrs, end, "connection");
        bool close_after = v && strncasecmp(v, "close", 5) == 0;
        if (memmem(h, first_eol ? (size_t)(first_eol - h) : head, "HTTP/1.0", 8) &&
            !(v && strncasecmp(v, "keep-alive", 10) == 0))
            close_after = true;
        if (evbuffer_get_length(in) < head + clen)
            return; /* wait for the body */
        evbuffer_drain(in, head + clen);
        evbuffer_add_reference(out, h1_response, sizeof(h1_response) - 1, NULL, NULL);
        if (close_after)
            c->closing = true;
    }
}

static void h1_write(struct bufferevent *bev, void *arg)
{
    struct h1conn *c = arg;
    if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        h1_free(c);
}

static void h1_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        h1_free(arg);
}

/* ------------------------------------------------------------------------ */
/* HTTP/2 */

struct h2conn {
    struct bufferevent *bev;
    nghttp2_session *s;
};

struct stream {
    bool grpc;
    size_t off;
};

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *arg)
{
    struct h2conn *c = arg;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) > 1 << 20)
        return NGHTTP2_ERR_WOULDBLOCK;
    evbuffer_add(out, data, len);
    return (ssize_t)len;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *st = calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *arg)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st && namelen == 12 && memcmp(name, "content-type", 12) == 0 && valuelen >= 16 &&
        memcmp(value, "application/grpc", 16) == 0)
        st->grpc = true;
    return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *arg)
{
    struct stream *st = src->ptr;
    const char *body = st->grpc ? grpc_msg : body100;
    size_t total = st->grpc ? GRPC_MSG_LEN : 100;
    size_t n = total - st->off;
    if (n > len)
        n = len;
    memcpy(buf, body + st->off, n);
    st->off += n;
    if (st->off == total) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->grpc) {
            static const nghttp2_nv trailer[] = {
                {(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1,
                 NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE},
            };
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (nghttp2_submit_trailer(s, id, trailer, 1) != 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }
    return (ssize_t)n;
}

#define NV(n, v)                                                         \
    {                                                                    \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,    \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE \
    }

static int respond(nghttp2_session *s, int32_t id, struct stream *st)
{
    static const nghttp2_nv plain[] = {
        NV(":status", "200"),
        NV("content-type", "text/plain"),
        NV("content-length", "100"),
    };
    static const nghttp2_nv grpc[] = {
        NV(":status", "200"),
        NV("content-type", "application/grpc"),
    };
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_body};
    if (st->grpc)
        return nghttp2_submit_response(s, id, grpc, 2, &dp);
    return nghttp2_submit_response(s, id, plain, 3, &dp);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *arg)
{
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (st && respond(s, f->hd.stream_id, st) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t err, void *arg)
{
    free(nghttp2_session_get_stream_user_data(s, id));
    nghttp2_session_set_stream_user_data(s, id, NULL);
    return 0;
}

static nghttp2_session_callbacks *h2_callbacks;

static void h2_free(struct h2conn *c)
{
    nghttp2_session_del(c->s);
    bufferevent_free(c->bev);
    free(c);
}

/* Returns false when the connection was freed. */
static bool h2_flush(struct h2conn *c)
{
    if (nghttp2_session_send(c->s) != 0) {
        h2_free(c);
        return false;
    }
    if (!nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s) &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        h2_free(c);
        return false;
    }
    return true;
}

static void h2_read(struct bufferevent *bev, void *arg)
{
    struct h2conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    const uint8_t *data = evbuffer_pullup(in, -1);
    ssize_t n = nghttp2_session_mem_recv(c->s, data, len);
    if (n < 0) {
        h2_free(c);
        return;
    }
    evbuffer_drain(in, (size_t)n);
    h2_flush(c);
}

static void h2_write(struct bufferevent *bev, void *arg)
{
    struct h2conn *c = arg;
    if (nghttp2_session_want_write(c->s)) {
        h2_flush(c);
        return;
    }
    if (!nghttp2_session_want_read(c->s) && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        h2_free(c);
}

static void h2_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        h2_free(arg);
}

/* ------------------------------------------------------------------------ */

static void set_nodelay(evutil_socket_t fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void accept_h1(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct event_base *base = arg;
    set_nodelay(fd);
    struct h1conn *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, h1_read, h1_write, h1_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void accept_h2(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct event_base *base = arg;
    set_nodelay(fd);
    struct h2conn *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (nghttp2_session_server_new(&c->s, h2_callbacks, c) != 0) {
        bufferevent_free(c->bev);
        free(c);
        return;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1024}};
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 1);
    bufferevent_setcb(c->bev, h2_read, h2_write, h2_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    h2_flush(c);
}

static struct evconnlistener *listen_on(struct event_base *base, int port, evconnlistener_cb cb)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l =
        evconnlistener_new_bind(base, cb, base, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 4096,
                                (struct sockaddr *)&sin, sizeof(sin));
    if (!l) {
        fprintf(stderr, "bench_backend: cannot listen on 127.0.0.1:%d: %s\n", port,
                strerror(errno));
        exit(1);
    }
    return l;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s H1_PORT H2C_PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    nghttp2_session_callbacks_new(&h2_callbacks);
    nghttp2_session_callbacks_set_send_callback(h2_callbacks, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(h2_callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(h2_callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(h2_callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(h2_callbacks, on_stream_close);
    struct evconnlistener *l1 = listen_on(base, atoi(argv[1]), accept_h1);
    struct evconnlistener *l2 = listen_on(base, atoi(argv[2]), accept_h2);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    fprintf(stderr, "bench_backend: HTTP/1.1 on 127.0.0.1:%s, h2c on 127.0.0.1:%s\n", argv[1],
            argv[2]);
    event_base_dispatch(base);
    event_free(sigterm);
    event_free(sigint);
    evconnlistener_free(l1);
    evconnlistener_free(l2);
    nghttp2_session_callbacks_del(h2_callbacks);
    event_base_free(base);
    return 0;
}
