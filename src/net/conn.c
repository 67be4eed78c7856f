#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/log.h"
#include "net/tls.h"
#include "portico/errors.h"

#define READ_CHUNK 16384
/* Bytes read per readable event before yielding to other connections. */
#define READ_BUDGET (256 * 1024)
#define TLS_WRITE_CHUNK 16384
#define LINGER_MS 2000

static _Thread_local struct pt_conn *all_conns;

static void do_flush(struct pt_conn *c);
static void do_read(struct pt_conn *c);

static void report_error_task(struct pt_deferred *d)
{
    struct pt_conn *c = (struct pt_conn *)((char *)d - offsetof(struct pt_conn, error_task));
    if (c->closing) {
        /* The owner already let go. */
        pt_conn_free(c);
        return;
    }
    if (c->cb && c->cb->on_close)
        c->cb->on_close(c, c->ctx, c->error);
}

/* Stop all I/O and tell the owner later. */
static void fail(struct pt_conn *c, int err)
{
    if (c->dead)
        return;
    c->dead = true;
    c->error = err;
    event_del(c->rev);
    event_del(c->wev);
    if (c->timer)
        event_del(c->timer);
    pt_worker_unmark_dirty(c->w, &c->flushable);
    pt_worker_defer(c->w, &c->error_task);
}

static void read_task(struct pt_deferred *d)
{
    struct pt_conn *c = (struct pt_conn *)((char *)d - offsetof(struct pt_conn, read_task));
    if (!c->dead && !c->read_paused && !c->closing && evbuffer_get_length(c->in) && c->cb &&
        c->cb->on_read)
        c->cb->on_read(c, c->ctx);
}

static void flush_cb(struct pt_flushable *f)
{
    struct pt_conn *c = (struct pt_conn *)((char *)f - offsetof(struct pt_conn, flushable));
    do_flush(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pt_conn *c = arg;
    if (c->lingering) {
        pt_conn_free(c);
        return;
    }
    if (c->connecting || c->handshaking)
        fail(c, c->is_client ? PT_ERR_UPSTREAM_CONNECT_TIMEOUT : PT_ERR_REQUEST_TIMEOUT);
}

static void update_read_interest(struct pt_conn *c)
{
    if (c->dead)
        return;
    bool want = !c->connecting && !c->read_eof &&
                (c->handshaking || c->lingering || !c->read_paused || c->ssl_write_wants_read);
    if (want)
        event_add(c->rev, NULL);
    else
        event_del(c->rev);
}

static void finish_linger(struct pt_conn *c)
{
    c->lingering = true;
    /* Nothing read from here on is kept: draining everything frees the
     * buffer's chains (a connection closed at a high rate must not hold a
     * read buffer for the whole linger time). */
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    if (c->ssl)
        SSL_shutdown(c->ssl);
    shutdown(c->fd, SHUT_WR);
    event_del(c->wev);
    /* A peer that already closed its side sends nothing more to wait for:
     * free on the next loop iteration. */
    struct timeval tv = {LINGER_MS / 1000, (LINGER_MS % 1000) * 1000};
    if (c->read_eof)
        tv = (struct timeval){0, 0};
    event_add(c->timer, &tv);
    update_read_interest(c);
}

static void connected(struct pt_conn *c)
{
    if (c->timer)
        event_del(c->timer);
    update_read_interest(c);
    if (c->cb && c->cb->on_connected)
        c->cb->on_connected(c, c->ctx);
    if (!c->dead && evbuffer_get_length(c->out))
        pt_conn_write_soon(c);
    /* Application data that came with the handshake's last flight sits
     * decrypted inside OpenSSL; the socket will not signal it again. */
    if (!c->dead && c->ssl && !c->is_client)
        event_active(c->rev, EV_READ, 1);
}

static void do_handshake(struct pt_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->handshaking = false;
        const unsigned char *proto = NULL;
        unsigned len = 0;
        SSL_get0_alpn_selected(c->ssl, &proto, &len);
        if (len == 2 && memcmp(proto, "h2", 2) == 0)
            c->alpn = "h2";
        else if (len == 8 && memcmp(proto, "http/1.1", 8) == 0)
            c->alpn = "http/1.1";
        connected(c);
        return;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        event_del(c->wev);
        event_add(c->rev, NULL);
        return;
    case SSL_ERROR_WANT_WRITE:
        event_add(c->wev, NULL);
        return;
    default: {
        unsigned long e = ERR_peek_last_error();
        char buf[256] = "connection closed";
        if (e)
            ERR_error_string_n(e, buf, sizeof(buf));
        pt_log_debug("tls handshake failed (fd %d): %s", c->fd, buf);
        ERR_clear_error();
        fail(c, c->is_client ? PT_ERR_UPSTREAM_CONNECT : PT_ERR_CLOSED);
    }
    }
}

static void finish_connect(struct pt_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err == EINPROGRESS)
        return;
    if (err) {
        fail(c, PT_ERR_UPSTREAM_CONNECT);
        return;
    }
    c->connecting = false;
    event_del(c->wev);
    if (c->ssl) {
        c->handshaking = true;
        do_handshake(c);
        return;
    }
    connected(c);
}

static void readable(struct pt_conn *c)
{
    if (c->dead)
        return;
    if (c->handshaking) {
        do_handshake(c);
        return;
    }
    if (c->ssl_write_wants_read) {
        c->ssl_write_wants_read = false;
        do_flush(c);
        if (c->dead)
            return;
    }
    do_read(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct pt_conn *c = arg;
    struct pt_worker *w = c->w; /* c may be freed by the callbacks */
    readable(c);
    pt_worker_run_pending(w);
}

static void writable(struct pt_conn *c)
{
    if (c->dead)
        return;
    if (c->connecting) {
        finish_connect(c);
        return;
    }
    if (c->handshaking) {
        do_handshake(c);
        return;
    }
    event_del(c->wev);
    if (c->ssl_read_wants_write) {
        /* The read runs from the readable path, where nothing touches c
         * after the owner's on_read (which may free it). */
        c->ssl_read_wants_write = false;
        event_active(c->rev, EV_READ, 1);
    }
    do_flush(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct pt_conn *c = arg;
    struct pt_worker *w = c->w;
    writable(c);
    pt_worker_run_pending(w);
}

static struct pt_conn *conn_new(struct pt_worker *w, int fd, SSL_CTX *ssl_ctx,
                                const struct pt_conn_cb *cb, void *ctx)
{
    struct pt_conn *c = pt_xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->w = w;
    c->cb = cb;
    c->ctx = ctx;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
    c->timer = event_new(w->base, -1, 0, on_timer, c);
    if (!c->in || !c->out || !c->rev || !c->wev || !c->timer)
        pt_abort_oom(sizeof(*c));
    c->all_next = all_conns;
    if (all_conns)
        all_conns->all_prev = c;
    all_conns = c;
    c->flushable.flush = flush_cb;
    c->error_task.fn = report_error_task;
    c->read_task.fn = read_task;
    if (ssl_ctx) {
        c->ssl = SSL_new(ssl_ctx);
        if (!c->ssl)
            pt_abort_oom(sizeof(SSL *));
        SSL_set_fd(c->ssl, fd);
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    }
    return c;
}

struct pt_conn *pt_conn_accepted(struct pt_worker *w, int fd, const struct sockaddr *peer,
                                 socklen_t peer_len, SSL_CTX *ssl_ctx, const struct pt_conn_cb *cb,
                                 void *ctx)
{
    struct pt_conn *c = conn_new(w, fd, ssl_ctx, cb, ctx);
    if (peer_len > sizeof(c->peer))
        peer_len = sizeof(c->peer);
    memcpy(&c->peer, peer, peer_len);
    c->peer_len = peer_len;
    if (c->ssl) {
        SSL_set_accept_state(c->ssl);
        c->handshaking = true;
    }
    event_add(c->rev, NULL);
    return c;
}

struct pt_conn *pt_conn_connect(struct pt_worker *w, const struct sockaddr *addr,
                                socklen_t addr_len, uint32_t timeout_ms, SSL_CTX *ssl_ctx,
                                const char *sni, const struct pt_conn_cb *cb, void *ctx, int *err)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = PT_ERR_UPSTREAM_CONNECT;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct pt_conn *c = conn_new(w, fd, ssl_ctx, cb, ctx);
    c->is_client = true;
    c->connecting = true;
    memcpy(&c->peer, addr, addr_len);
    c->peer_len = addr_len;
    if (c->ssl) {
        SSL_set_connect_state(c->ssl);
        pt_tls_client_set_peer(c->ssl, sni);
    }
    if (timeout_ms) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        event_add(c->timer, &tv);
    }
    if (connect(fd, addr, addr_len) != 0 && errno != EINPROGRESS) {
        fail(c, PT_ERR_UPSTREAM_CONNECT);
        return c;
    }
    event_add(c->wev, NULL);
    return c;
}

void pt_conn_set_callbacks(struct pt_conn *c, const struct pt_conn_cb *cb, void *ctx)
{
    c->cb = cb;
    c->ctx = ctx;
}

static void commit_read(struct pt_conn *c, struct evbuffer_iovec *v, int nv, size_t got)
{
    int used = 0;
    for (int i = 0; i < nv && got; i++) {
        if (v[i].iov_len > got)
            v[i].iov_len = got;
        got -= v[i].iov_len;
        used = i + 1;
    }
    evbuffer_commit_space(c->in, v, used);
}

static void do_read(struct pt_conn *c)
{
    size_t total = 0;
    bool eof = false;
    while (!c->dead && (!c->read_paused || c->lingering) && total < READ_BUDGET) {
        struct evbuffer_iovec v[2];
        int nv = evbuffer_reserve_space(c->in, READ_CHUNK, v, 2);
        if (nv <= 0)
            pt_abort_oom(READ_CHUNK);
        ssize_t r;
        size_t want = 0;
        for (int i = 0; i < nv; i++)
            want += v[i].iov_len;
        if (c->ssl) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, v[0].iov_base, (int)v[0].iov_len);
            if (n > 0) {
                r = n;
                want = v[0].iov_len; /* SSL_read fills one vector */
                nv = 1;
            } else {
                int e = SSL_get_error(c->ssl, n);
                evbuffer_commit_space(c->in, v, 0);
                if (e == SSL_ERROR_WANT_READ)
                    break;
                if (e == SSL_ERROR_WANT_WRITE) {
                    c->ssl_read_wants_write = true;
                    event_add(c->wev, NULL);
                    break;
                }
                if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && n == 0)) {
                    eof = true;
                    break;
                }
                ERR_clear_error();
                fail(c, PT_ERR_CLOSED);
                return;
            }
        } else {
            r = readv(c->fd, (struct iovec *)v, nv);
            if (r < 0) {
                evbuffer_commit_space(c->in, v, 0);
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                if (errno == EINTR)
                    continue;
                fail(c, PT_ERR_CLOSED);
                return;
            }
            if (r == 0) {
                evbuffer_commit_space(c->in, v, 0);
                eof = true;
                break;
            }
        }
        commit_read(c, v, nv, (size_t)r);
        total += (size_t)r;
        c->bytes_read += (size_t)r;
        /* A short plain read means the socket is drained: skip the EAGAIN probe. */
        if (!c->ssl && (size_t)r < want)
            break;
    }
    /* An empty buffer keeps the chain reserved for a read that found
     * nothing (EAGAIN, EOF) unless drained: idle connections hold no read
     * buffer. */
    if (!evbuffer_get_length(c->in))
        evbuffer_drain(c->in, 0);
    if (c->lingering) {
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
        if (eof)
            pt_conn_free(c);
        return;
    }
    if (eof) {
        c->read_eof = true;
        update_read_interest(c);
    }
    if ((total || eof) && c->cb && c->cb->on_read)
        c->cb->on_read(c, c->ctx);
}

static void do_flush(struct pt_conn *c)
{
    if (c->dead || c->connecting || c->handshaking)
        return;
    while (evbuffer_get_length(c->out) > 0) {
        if (c->ssl) {
            struct evbuffer_iovec v;
            if (evbuffer_peek(c->out, TLS_WRITE_CHUNK, NULL, &v, 1) < 1)
                break;
            size_t len = v.iov_len < TLS_WRITE_CHUNK ? v.iov_len : TLS_WRITE_CHUNK;
            ERR_clear_error();
            int n = SSL_write(c->ssl, v.iov_base, (int)len);
            if (n > 0) {
                evbuffer_drain(c->out, (size_t)n);
                c->bytes_written += (size_t)n;
                continue;
            }
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_WRITE) {
                event_add(c->wev, NULL);
                break;
            }
            if (e == SSL_ERROR_WANT_READ) {
                c->ssl_write_wants_read = true;
                update_read_interest(c);
                break;
            }
            ERR_clear_error();
            fail(c, PT_ERR_CLOSED);
            return;
        }
        size_t before = evbuffer_get_length(c->out);
        int n = evbuffer_write_atmost(c->out, c->fd, -1);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(c->wev, NULL);
                break;
            }
            if (errno == EINTR)
                continue;
            fail(c, PT_ERR_CLOSED);
            return;
        }
        c->bytes_written += (size_t)n;
        if ((size_t)n < before) {
            /* Kernel buffer full (or writev's iovec cap): wait until writable. */
            event_add(c->wev, NULL);
            break;
        }
    }
    size_t left = evbuffer_get_length(c->out);
    if (left == 0)
        event_del(c->wev);
    if (c->closing) {
        if (left == 0 && !c->lingering)
            finish_linger(c);
        return;
    }
    if (c->want_drained && left <= c->out_lowat) {
        c->want_drained = false;
        if (c->cb && c->cb->on_drained)
            c->cb->on_drained(c, c->ctx);
    }
}

void pt_conn_write_soon(struct pt_conn *c)
{
    if (!c->dead)
        pt_worker_mark_dirty(c->w, &c->flushable);
}

void pt_conn_pause_read(struct pt_conn *c)
{
    c->read_paused = true;
    update_read_interest(c);
}

void pt_conn_resume_read(struct pt_conn *c)
{
    if (!c->read_paused)
        return;
    c->read_paused = false;
    update_read_interest(c);
    /* Bytes already decrypted inside OpenSSL do not make the socket readable. */
    if (!c->dead && c->ssl && SSL_pending(c->ssl) > 0)
        event_active(c->rev, EV_READ, 1);
    /* Nor do bytes already read into c->in: the peer may have sent
     * everything while we were paused. */
    if (!c->dead && evbuffer_get_length(c->in))
        pt_worker_defer(c->w, &c->read_task);
}

void pt_conn_want_drained(struct pt_conn *c, size_t lowat)
{
    c->want_drained = true;
    c->out_lowat = lowat;
}

void pt_conn_close_after_flush(struct pt_conn *c)
{
    if (!c)
        return;
    c->cb = NULL;
    c->ctx = NULL;
    if (c->dead) {
        pt_worker_cancel_deferred(c->w, &c->error_task);
        pt_conn_free(c);
        return;
    }
    c->closing = true;
    c->read_paused = true;
    if (c->connecting || c->handshaking) {
        pt_conn_free(c);
        return;
    }
    pt_worker_mark_dirty(c->w, &c->flushable);
}

void pt_conn_free(struct pt_conn *c)
{
    if (!c)
        return;
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else if (all_conns == c)
        all_conns = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    pt_worker_unmark_dirty(c->w, &c->flushable);
    pt_worker_cancel_deferred(c->w, &c->error_task);
    pt_worker_cancel_deferred(c->w, &c->read_task);
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->timer);
    if (c->ssl)
        SSL_free(c->ssl);
    close(c->fd);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    free(c);
}

void pt_conn_free_all(void)
{
    while (all_conns)
        pt_conn_free(all_conns);
}

size_t pt_conn_out_len(const struct pt_conn *c)
{
    return evbuffer_get_length(c->out);
}

void pt_sockaddr_ip(const struct sockaddr *sa, char *buf, size_t n, uint16_t *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)n);
        if (port)
            *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)n);
        if (port)
            *port = ntohs(in6->sin6_port);
    } else {
        snprintf(buf, n, "unknown");
        if (port)
            *port = 0;
    }
}
