/*
 * admin/front.c - the admin listener: gRPC to grpc core, REST here
 * (see front.h).
 */
#include "admin/front.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/log.h"
#include "core/worker.h"
#include "http1/parser.h"
#include "http1/writer.h"
#include "net/conn.h"
#include "net/listener.h"
#include "net/tls.h"
#include "portico/errors.h"
#include "transcode/route.h"

/* Not a data-plane worker: an id no worker uses, for logs. */
#define FRONT_WORKER_ID 0xffffdu
#define SNIFF_TIMEOUT_S 10
#define SNIFF_RETRY_US 10000
#define HANDSHAKE_TIMEOUT_S 10
#define REST_IDLE_TIMEOUT_S 30
#define OUT_HIWAT (1u << 20)
#define OUT_LOWAT (64u << 10)

enum fkind { F_SNIFF, F_TLS, F_REST, F_PUMP };

struct fconn {
    struct pt_admin_front *f;
    struct fconn *prev, *next;
    enum fkind kind;
    struct event *timer; /* sniff deadline, handshake, idle */
    /* F_SNIFF */
    int fd;
    struct event *ev;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    unsigned retries;
    /* F_TLS, F_REST, F_PUMP */
    struct pt_conn *c;
    struct pt_conn *inner; /* F_PUMP: our end of the socketpair */
    /* F_REST */
    struct pt_h1_parser *p;
    struct evbuffer *body;
    char *method, *target, *ctype, *auth;
    int nauth;
    bool keep_alive;
    bool complete;
    int fail; /* an error found by a parser callback (413) */
};

struct pt_admin_front {
    struct pt_worker w;
    bool started;
    int listen_fd;
    int port;
    struct pt_acceptor *acceptor;
    SSL_CTX *ssl;
    struct pt_admin_rest *rest;
    pt_admin_front_grpc_fn *grpc;
    void *grpc_ctx;
    struct fconn conns; /* list head */
    size_t nconns;
};

static void timer_arm(struct fconn *fc, int seconds)
{
    struct timeval tv = {seconds, 0};
    event_add(fc->timer, &tv);
}

static void fconn_free(struct fconn *fc)
{
    fc->prev->next = fc->next;
    fc->next->prev = fc->prev;
    fc->f->nconns--;
    if (fc->timer)
        event_free(fc->timer);
    if (fc->ev)
        event_free(fc->ev);
    if (fc->fd >= 0)
        close(fc->fd);
    pt_conn_free(fc->c);
    pt_conn_free(fc->inner);
    if (fc->p)
        pt_h1_parser_free(fc->p);
    if (fc->body)
        evbuffer_free(fc->body);
    free(fc->method);
    free(fc->target);
    free(fc->ctype);
    free(fc->auth);
    free(fc);
}

/* Give c to the net module to send what it holds and close; fc forgets it. */
static void release_after_flush(struct pt_conn **c)
{
    if (*c)
        pt_conn_close_after_flush(*c);
    *c = NULL;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fconn *fc = arg;
    pt_log_debug("admin: %s connection timed out", fc->kind == F_SNIFF ? "silent"
                                                   : fc->kind == F_TLS ? "handshaking"
                                                                       : "idle");
    fconn_free(fc);
}

/* ---- REST over HTTP/1.1 ---- */

static char *dup_str(struct pt_str s)
{
    char *p = pt_xmalloc(s.len + 1);
    memcpy(p, s.ptr, s.len);
    p[s.len] = '\0';
    return p;
}

static void rest_reset(struct fconn *fc)
{
    free(fc->method);
    free(fc->target);
    free(fc->ctype);
    free(fc->auth);
    fc->method = fc->target = fc->ctype = fc->auth = NULL;
    fc->nauth = 0;
    fc->complete = false;
    fc->keep_alive = false;
    evbuffer_drain(fc->body, evbuffer_get_length(fc->body));
}

static void write_response(struct fconn *fc, int status, const struct pt_json_out *body,
                           const char *allow, bool www_auth, bool close)
{
    struct evbuffer *out = fc->c->out;
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                        "content-length: %zu\r\ncache-control: no-store\r\n",
                        status, pt_http_reason(status), body->len);
    if (allow && allow[0])
        evbuffer_add_printf(out, "allow: %s\r\n", allow);
    if (www_auth)
        evbuffer_add_printf(out, "www-authenticate: Bearer realm=\"portico-admin\"\r\n");
    if (close)
        evbuffer_add_printf(out, "connection: close\r\n");
    evbuffer_add(out, "\r\n", 2);
    evbuffer_add(out, body->data, body->len);
    pt_conn_write_soon(fc->c);
}

/* A request the parser refused: answer and close. */
static void rest_fail(struct fconn *fc, int err)
{
    int status, code;
    const char *msg;
    switch (err) {
    case PT_ERR_HEADERS_TOO_LARGE:
        status = 431, code = PT_ADMIN_RESOURCE_EXHAUSTED, msg = "request header too large";
        break;
    case PT_ERR_BODY_TOO_LARGE:
        status = 413, code = PT_ADMIN_RESOURCE_EXHAUSTED, msg = "request body too large";
        break;
    case PT_ERR_NOT_IMPLEMENTED:
        status = 501, code = PT_ADMIN_UNIMPLEMENTED, msg = "transfer coding not supported";
        break;
    default:
        status = 400, code = PT_ADMIN_INVALID_ARGUMENT, msg = "malformed HTTP/1.1 request";
        break;
    }
    struct pt_json_out body = {0};
    pt_tc_error_json(NULL, code, pt_str_from_cstr(msg), PT_STR_NULL, &body);
    write_response(fc, status, &body, NULL, false, true);
    pt_json_out_fini(&body);
    release_after_flush(&fc->c);
    fconn_free(fc);
}

static int rest_on_head(void *ctx, const struct pt_h1_head *h)
{
    struct fconn *fc = ctx;
    if (h->content_length > (int64_t)PT_ADMIN_MAX_RECV_BYTES) {
        fc->fail = PT_ERR_BODY_TOO_LARGE;
        return PT_ERR_BODY_TOO_LARGE;
    }
    fc->method = dup_str(h->method);
    fc->target = dup_str(h->target);
    fc->keep_alive = h->keep_alive;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct pt_header *hd = &h->headers[i];
        if (pt_str_eq(hd->name, PT_STR("content-type")) && !fc->ctype)
            fc->ctype = dup_str(hd->value);
        else if (pt_str_eq(hd->name, PT_STR("authorization"))) {
            fc->nauth++;
            if (!fc->auth)
                fc->auth = dup_str(hd->value);
        }
    }
    if (h->expect_continue) {
        evbuffer_add_printf(fc->c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        pt_conn_write_soon(fc->c);
    }
    return 0;
}

static int rest_on_body(void *ctx, const char *data, size_t len)
{
    struct fconn *fc = ctx;
    if (evbuffer_get_length(fc->body) + len > PT_ADMIN_MAX_RECV_BYTES) {
        fc->fail = PT_ERR_BODY_TOO_LARGE;
        return PT_ERR_BODY_TOO_LARGE;
    }
    evbuffer_add(fc->body, data, len);
    return 0;
}

static int rest_on_complete(void *ctx)
{
    struct fconn *fc = ctx;
    fc->complete = true;
    return 0;
}

static const struct pt_h1_parser_cb rest_parser_cb = {
    .on_head = rest_on_head,
    .on_body = rest_on_body,
    .on_complete = rest_on_complete,
};

static struct pt_str opt_str(const char *s)
{
    return s ? pt_str_from_cstr(s) : (struct pt_str){"", 0};
}

static void rest_answer(struct fconn *fc)
{
    size_t blen = evbuffer_get_length(fc->body);
    struct pt_admin_rest_request req = {
        .method = opt_str(fc->method),
        .target = opt_str(fc->target),
        .content_type = opt_str(fc->ctype),
        .authorization = opt_str(fc->auth),
        .nauthorization = fc->nauth,
        .body = {blen ? (const char *)evbuffer_pullup(fc->body, -1) : "", blen},
    };
    struct pt_admin_rest_response resp;
    memset(&resp, 0, sizeof(resp));
    pt_admin_rest_handle(fc->f->rest, &req, &resp);
    write_response(fc, resp.status, &resp.body, resp.allow, resp.unauthenticated, !fc->keep_alive);
    pt_json_out_fini(&resp.body);
}

static void rest_on_read(struct pt_conn *c, void *ctx)
{
    struct fconn *fc = ctx;
    timer_arm(fc, REST_IDLE_TIMEOUT_S);
    for (;;) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        ssize_t n = pt_h1_parser_execute(fc->p, v.iov_base, v.iov_len);
        if (n < 0) {
            rest_fail(fc, fc->fail ? fc->fail : (int)n);
            return;
        }
        evbuffer_drain(c->in, (size_t)n);
        if (!fc->complete) {
            if ((size_t)n < v.iov_len)
                break; /* paused without a message: nothing more to parse */
            continue;
        }
        rest_answer(fc);
        if (!fc->keep_alive) {
            release_after_flush(&fc->c);
            fconn_free(fc);
            return;
        }
        rest_reset(fc);
        pt_h1_parser_next(fc->p);
        if (evbuffer_get_length(c->out) > OUT_HIWAT) {
            pt_conn_pause_read(c);
            pt_conn_want_drained(c, OUT_LOWAT);
            return;
        }
    }
    if (c->read_eof) {
        /* A request cut short is not answered; a clean end after the last
         * answer just closes. */
        release_after_flush(&fc->c);
        fconn_free(fc);
    }
}

static void rest_on_drained(struct pt_conn *c, void *ctx)
{
    (void)ctx;
    pt_conn_resume_read(c);
}

static void conn_on_close(struct pt_conn *c, void *ctx, int err)
{
    (void)c;
    (void)err;
    fconn_free(ctx);
}

static const struct pt_conn_cb rest_cb = {
    .on_read = rest_on_read,
    .on_drained = rest_on_drained,
    .on_close = conn_on_close,
};

static void rest_begin(struct fconn *fc)
{
    fc->kind = F_REST;
    fc->p = pt_h1_parser_new(PT_H1_REQUEST, NULL, &rest_parser_cb, fc);
    fc->body = evbuffer_new();
    if (!fc->body)
        pt_abort_oom(64);
    timer_arm(fc, REST_IDLE_TIMEOUT_S);
    pt_conn_set_callbacks(fc->c, &rest_cb, fc);
    if (evbuffer_get_length(fc->c->in))
        rest_on_read(fc->c, fc);
}

/* ---- TLS: HTTP/2 bytes pumped to grpc core through a socketpair ---- */

static void pump_move(struct fconn *fc, struct pt_conn *from, struct pt_conn *to)
{
    if (evbuffer_get_length(from->in)) {
        evbuffer_add_buffer(to->out, from->in);
        pt_conn_write_soon(to);
    }
    if (evbuffer_get_length(to->out) > OUT_HIWAT) {
        pt_conn_pause_read(from);
        pt_conn_want_drained(to, OUT_LOWAT);
    }
}

/* One side ended: the other gets what is left, then closes. `ended` is
 * freed here only when it already failed (on_close, where freeing is the
 * owner's job); a side that read EOF is inside its own on_read, so the
 * net module closes it (pt_conn_close_after_flush) instead of a free that
 * its caller would outlive. */
static void pump_end(struct fconn *fc, struct pt_conn **ended, struct pt_conn **other, bool failed)
{
    if (failed) {
        pt_conn_free(*ended);
        *ended = NULL;
    } else {
        release_after_flush(ended);
    }
    release_after_flush(other);
    fconn_free(fc);
}

static void pump_outer_read(struct pt_conn *c, void *ctx)
{
    struct fconn *fc = ctx;
    pump_move(fc, c, fc->inner);
    if (c->read_eof)
        pump_end(fc, &fc->c, &fc->inner, false);
}

static void pump_inner_read(struct pt_conn *c, void *ctx)
{
    struct fconn *fc = ctx;
    pump_move(fc, c, fc->c);
    if (c->read_eof)
        pump_end(fc, &fc->inner, &fc->c, false);
}

static void pump_outer_drained(struct pt_conn *c, void *ctx)
{
    (void)c;
    struct fconn *fc = ctx;
    pt_conn_resume_read(fc->inner);
}

static void pump_inner_drained(struct pt_conn *c, void *ctx)
{
    (void)c;
    struct fconn *fc = ctx;
    pt_conn_resume_read(fc->c);
}

static void pump_outer_close(struct pt_conn *c, void *ctx, int err)
{
    (void)c;
    (void)err;
    struct fconn *fc = ctx;
    pump_end(fc, &fc->c, &fc->inner, true);
}

static void pump_inner_close(struct pt_conn *c, void *ctx, int err)
{
    (void)c;
    (void)err;
    struct fconn *fc = ctx;
    pump_end(fc, &fc->inner, &fc->c, true);
}

static const struct pt_conn_cb pump_outer_cb = {
    .on_read = pump_outer_read,
    .on_drained = pump_outer_drained,
    .on_close = pump_outer_close,
};
static const struct pt_conn_cb pump_inner_cb = {
    .on_read = pump_inner_read,
    .on_drained = pump_inner_drained,
    .on_close = pump_inner_close,
};

static void pump_begin(struct fconn *fc)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) {
        pt_log_error("admin: socketpair: %s", strerror(errno));
        release_after_flush(&fc->c); /* inside its on_connected: not freed here */
        fconn_free(fc);
        return;
    }
    fc->kind = F_PUMP;
    /* No idle timeout: a health Watch stream may rightly stay silent for
     * hours, as it may on a cleartext connection grpc core holds. */
    event_del(fc->timer);
    fc->f->grpc(fc->f->grpc_ctx, sp[1]);
    struct sockaddr_storage none;
    memset(&none, 0, sizeof(none));
    none.ss_family = AF_UNIX;
    fc->inner = pt_conn_accepted(&fc->f->w, sp[0], (struct sockaddr *)&none, sizeof(sa_family_t),
                                 NULL, &pump_inner_cb, fc);
    pt_conn_set_callbacks(fc->c, &pump_outer_cb, fc);
    pump_move(fc, fc->c, fc->inner);
}

static void tls_on_connected(struct pt_conn *c, void *ctx)
{
    struct fconn *fc = ctx;
    if (c->alpn && strcmp(c->alpn, "h2") == 0)
        pump_begin(fc);
    else
        rest_begin(fc);
}

static void tls_on_read(struct pt_conn *c, void *ctx)
{
    (void)c;
    (void)ctx; /* nothing arrives before the handshake ends */
}

static const struct pt_conn_cb tls_cb = {
    .on_read = tls_on_read,
    .on_connected = tls_on_connected,
    .on_close = conn_on_close,
};

/* ---- cleartext: which protocol? ---- */

static void on_sniff(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fconn *fc = arg;
    char b[3];
    ssize_t n = recv(fc->fd, b, sizeof(b), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        event_add(fc->ev, NULL);
        return;
    }
    if (n <= 0) {
        fconn_free(fc);
        return;
    }
    if (memcmp(b, "PRI", (size_t)n) == 0 && n < 3) {
        /* Part of the preface: look again shortly (the bytes stay in the
         * socket, so waiting for readability would spin). */
        if (++fc->retries > SNIFF_TIMEOUT_S * 1000000 / SNIFF_RETRY_US) {
            fconn_free(fc);
            return;
        }
        struct timeval tv = {0, SNIFF_RETRY_US};
        event_del(fc->ev);
        event_free(fc->ev);
        fc->ev = evtimer_new(fc->f->w.base, on_sniff, fc);
        event_add(fc->ev, &tv);
        return;
    }
    int sock = fc->fd;
    fc->fd = -1;
    event_free(fc->ev);
    fc->ev = NULL;
    if (n == 3 && memcmp(b, "PRI", 3) == 0) {
        fc->f->grpc(fc->f->grpc_ctx, sock);
        fconn_free(fc);
        return;
    }
    fc->c = pt_conn_accepted(&fc->f->w, sock, (struct sockaddr *)&fc->peer, fc->peer_len, NULL,
                             &rest_cb, fc);
    rest_begin(fc);
}

static void on_accept(void *arg, int fd, const struct sockaddr *peer, socklen_t peer_len)
{
    struct pt_admin_front *f = arg;
    if (f->nconns >= PT_ADMIN_FRONT_MAX_CONNS) {
        pt_log_warn("admin: %u connections open; refusing another", PT_ADMIN_FRONT_MAX_CONNS);
        close(fd);
        return;
    }
    struct fconn *fc = pt_xcalloc(1, sizeof(*fc));
    fc->f = f;
    fc->fd = -1;
    fc->next = f->conns.next;
    fc->prev = &f->conns;
    f->conns.next->prev = fc;
    f->conns.next = fc;
    f->nconns++;
    fc->timer = evtimer_new(f->w.base, on_timer, fc);
    if (f->ssl) {
        fc->kind = F_TLS;
        fc->c = pt_conn_accepted(&f->w, fd, peer, peer_len, f->ssl, &tls_cb, fc);
        timer_arm(fc, HANDSHAKE_TIMEOUT_S);
        return;
    }
    fc->kind = F_SNIFF;
    fc->fd = fd;
    if (peer_len > sizeof(fc->peer))
        peer_len = sizeof(fc->peer);
    memcpy(&fc->peer, peer, peer_len);
    fc->peer_len = peer_len;
    fc->ev = event_new(f->w.base, fd, EV_READ, on_sniff, fc);
    event_add(fc->ev, NULL);
    timer_arm(fc, SNIFF_TIMEOUT_S);
}

/* ---- start, stop ---- */

static void start_msg(struct pt_worker *w, void *arg)
{
    struct pt_admin_front *f = arg;
    f->acceptor = pt_acceptor_new(w, f->listen_fd, on_accept, f);
}

static void stop_msg(struct pt_worker *w, void *arg)
{
    struct pt_admin_front *f = arg;
    pt_acceptor_free(f->acceptor);
    f->acceptor = NULL;
    while (f->conns.next != &f->conns)
        fconn_free(f->conns.next);
    pt_conn_free_all();
    pt_worker_stop(w);
}

/* REST clients over TLS (curl, browsers) offer both protocols; gRPC
 * clients offer only h2. So here, unlike on data-plane listeners, HTTP/1.1
 * is preferred: it reaches REST, and h2 is chosen only by clients that
 * speak nothing else. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const char *const order[] = {"http/1.1", "h2"};
    return pt_tls_alpn_choose(in, inlen, order, 2, out, outlen); /* NOACK: HTTP/1.1 */
}

static SSL_CTX *make_ssl(const struct pt_admin_front_opts *o, char *err, size_t errlen)
{
    bool has_cert = o->cert_file && o->cert_file[0];
    bool has_key = o->key_file && o->key_file[0];
    bool has_ca = o->client_ca_file && o->client_ca_file[0];
    if (!has_cert && !has_key && !has_ca)
        return NULL;
    if (!has_cert || !has_key) {
        snprintf(err, errlen, "admin tls needs both cert_file and key_file%s",
                 has_ca ? " (client_ca_file is for verifying clients)" : "");
        return NULL;
    }
    char why[400];
    SSL_CTX *ctx = pt_tls_server_ctx_new(o->cert_file, o->key_file, true, true, why, sizeof(why));
    if (!ctx) {
        snprintf(err, errlen, "admin tls: %s", why);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (has_ca) {
        struct pt_tls_client_verify v = {
            .mode = PT_TLS_CLIENT_CERT_REQUIRED, .ca_file = o->client_ca_file, .depth = 4};
        if (pt_tls_server_ctx_verify_clients(ctx, &v, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "admin tls: %s", why);
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

struct pt_admin_front *pt_admin_front_start(const struct pt_admin_front_opts *o,
                                            struct pt_admin_rest *rest,
                                            pt_admin_front_grpc_fn *grpc, void *ctx, char *err,
                                            size_t errlen)
{
    struct pt_admin_front *f = pt_xcalloc(1, sizeof(*f));
    f->rest = rest;
    f->grpc = grpc;
    f->grpc_ctx = ctx;
    f->listen_fd = -1;
    f->conns.next = f->conns.prev = &f->conns;
    err[0] = '\0';
    f->ssl = make_ssl(o, err, errlen);
    if (!f->ssl && err[0]) {
        free(f);
        return NULL;
    }
    char why[300];
    f->listen_fd = pt_listen_socket_open(o->address, why, sizeof(why));
    if (f->listen_fd < 0) {
        snprintf(err, errlen, "admin: cannot listen on %s: %s", o->address, why);
        SSL_CTX_free(f->ssl);
        free(f);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    uint16_t port = 0;
    if (getsockname(f->listen_fd, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[64];
        pt_sockaddr_ip((struct sockaddr *)&ss, ip, sizeof(ip), &port);
    }
    f->port = port;
    if (pt_worker_init(&f->w, FRONT_WORKER_ID) != 0) {
        snprintf(err, errlen, "admin: cannot create its event loop");
        pt_worker_fini(&f->w);
        close(f->listen_fd);
        SSL_CTX_free(f->ssl);
        free(f);
        return NULL;
    }
    pt_worker_post(&f->w, start_msg, f);
    if (pt_worker_start(&f->w) != 0) {
        snprintf(err, errlen, "admin: cannot start its listener thread");
        pt_worker_fini(&f->w);
        close(f->listen_fd);
        SSL_CTX_free(f->ssl);
        free(f);
        return NULL;
    }
    f->started = true;
    return f;
}

int pt_admin_front_port(const struct pt_admin_front *f)
{
    return f->port;
}

void pt_admin_front_stop(struct pt_admin_front *f)
{
    if (!f)
        return;
    pt_worker_post(&f->w, stop_msg, f);
    pt_worker_join(&f->w);
    pt_worker_fini(&f->w);
    close(f->listen_fd);
    SSL_CTX_free(f->ssl);
    free(f);
}
