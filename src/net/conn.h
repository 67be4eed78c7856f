/*
 * net/conn.h - a nonblocking connection (TCP, optionally TLS) with buffers.
 *
 * A pt_conn owns a socket, an input and an output evbuffer, and the events
 * that move bytes between them and the kernel. It does no protocol work:
 * its owner (a codec) reads c->in in on_read and appends to c->out.
 *
 * Writes are batched: appending to c->out and calling pt_conn_write_soon()
 * queues the connection on the worker's dirty list, so everything produced
 * during one loop iteration (many HTTP/2 frames, several pipelined
 * responses) leaves in one writev/SSL_write pass at the end of the
 * iteration. A write event is registered only when the kernel buffer is
 * full (EAGAIN), not for every response.
 *
 * Reads avoid libevent's FIONREAD probe: each readable event reads into
 * reserved evbuffer space until EAGAIN or a per-event budget.
 *
 *   connecting ──(TCP + TLS handshake)──> open ──close_after_flush──> lingering ──> freed
 *        └──────────── error ─────────────> on_close(err) ──owner calls pt_conn_free
 *
 * Callbacks never run inside a pt_conn_* call made by the owner; an error
 * found while flushing is reported from a deferred task.
 *
 * Thread: a connection belongs to one worker.
 */
#ifndef PT_NET_CONN_H
#define PT_NET_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/worker.h"

struct pt_conn;
struct evbuffer;
struct event;

struct pt_conn_cb {
    /* New bytes in c->in, or end of input (c->read_eof set; reading stops).
     * The owner may pt_conn_free(c) here: nothing touches c afterwards. */
    void (*on_read)(struct pt_conn *c, void *ctx);
    /* c->out fell to or below the low-water mark after being above it
     * (only when the owner asked with pt_conn_want_drained). May be NULL. */
    void (*on_drained)(struct pt_conn *c, void *ctx);
    /* Client connections: TCP connect and TLS handshake finished. Server
     * TLS connections: handshake finished (ALPN known). May be NULL. */
    void (*on_connected)(struct pt_conn *c, void *ctx);
    /* The connection failed (err < 0: PT_ERR_CLOSED, PT_ERR_UPSTREAM_CONNECT,
     * PT_ERR_UPSTREAM_CONNECT_TIMEOUT, ...). The owner must call
     * pt_conn_free() (now or later) and not write any more. */
    void (*on_close)(struct pt_conn *c, void *ctx, int err);
};

struct pt_conn {
    struct pt_conn *all_prev; /* this thread's connections (shutdown sweep) */
    struct pt_conn *all_next;
    int fd;
    struct pt_worker *w;
    struct evbuffer *in;
    struct evbuffer *out;
    const struct pt_conn_cb *cb;
    void *ctx;

    SSL *ssl;
    const char *alpn; /* negotiated protocol (static string) or NULL */

    struct sockaddr_storage peer;
    socklen_t peer_len;

    struct event *rev;
    struct event *wev;
    struct event *timer; /* connect timeout, then lingering close */
    struct pt_flushable flushable;
    struct pt_deferred error_task;
    struct pt_deferred read_task; /* on_read for bytes left in c->in at resume */

    size_t out_lowat;
    int error; /* pending error to report */
    uint64_t bytes_read;
    uint64_t bytes_written;

    bool connecting;
    bool handshaking;
    bool is_client;
    bool read_paused; /* by the owner */
    bool read_eof;
    bool want_drained;
    bool closing; /* close_after_flush requested */
    bool lingering;
    bool dead; /* reported error or closed; no more I/O */
    bool ssl_read_wants_write;
    bool ssl_write_wants_read;
};

/* Pointer: a connection for an accepted socket (server TLS handshake starts
 * when ssl_ctx is not NULL). Never NULL. */
struct pt_conn *pt_conn_accepted(struct pt_worker *w, int fd, const struct sockaddr *peer,
                                 socklen_t peer_len, SSL_CTX *ssl_ctx, const struct pt_conn_cb *cb,
                                 void *ctx);
/*
 * Pointer: a connecting client connection, or NULL with *err set when the
 * socket could not even be created. on_connected or on_close follows.
 * sni may be NULL; alpn is a wire-format ALPN list or NULL.
 */
struct pt_conn *pt_conn_connect(struct pt_worker *w, const struct sockaddr *addr,
                                socklen_t addr_len, uint32_t timeout_ms, SSL_CTX *ssl_ctx,
                                const char *sni, const struct pt_conn_cb *cb, void *ctx, int *err);

void pt_conn_set_callbacks(struct pt_conn *c, const struct pt_conn_cb *cb, void *ctx);
/* Queue c->out for writing at the end of the current loop iteration. */
void pt_conn_write_soon(struct pt_conn *c);
/* Write now (bypassing the batch); errors are reported later. */
void pt_conn_write_now(struct pt_conn *c);
void pt_conn_pause_read(struct pt_conn *c);
/* Resume reading; bytes the owner left in c->in while paused are offered
 * again through on_read (from a deferred task, never inside this call). */
void pt_conn_resume_read(struct pt_conn *c);
/* Ask for on_drained when c->out falls to lowat bytes or below. */
void pt_conn_want_drained(struct pt_conn *c, size_t lowat);
/* Send what is buffered, then close gracefully (lingering: half-close and
 * discard input for a moment so the peer reads our last response before any
 * reset). The owner loses the connection: no more callbacks. */
void pt_conn_close_after_flush(struct pt_conn *c);
/* Close immediately and free. NULL is a no-op. */
void pt_conn_free(struct pt_conn *c);
/* Shutdown: free every connection this thread still has (lingering
 * closes, anything an owner let go). Owners must be gone already. */
void pt_conn_free_all(void);
/* Bytes queued for sending. */
size_t pt_conn_out_len(const struct pt_conn *c);

/* Text form of a socket address ("127.0.0.1", "::1") and its port. */
void pt_sockaddr_ip(const struct sockaddr *sa, char *buf, size_t n, uint16_t *port);

#endif
