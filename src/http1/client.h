/*
 * http1/client.h - HTTP/1.1 upstream connections.
 *
 * One request at a time per connection. The request head is serialized
 * from the exchange (Host from x->req.authority, x->forward_path), the body
 * is streamed from x->req_body with Content-Length when known or chunked
 * otherwise; the response is parsed into x->resp and x->resp_body. After a
 * complete exchange on a keep-alive connection the client reports itself
 * idle to its pool, which reuses it or parks it (an idle connection closes
 * after idle_timeout_ms, or as soon as the server closes it).
 *
 *   connecting ──> busy ──response done, keep-alive──> idle ──start──> busy
 *        │           └── close / error / no keep-alive ──> dead
 *        └── connect failure ──> dead        (101: the transport is taken)
 *
 * A failure before any response byte on a reused connection (the server
 * closed it while idle) is reported PT_UP_RETRYABLE.
 *
 * Thread: the connection's worker.
 */
#ifndef PT_HTTP1_CLIENT_H
#define PT_HTTP1_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/exchange.h"

struct pt_h1_client;
struct pt_conn;

struct pt_h1_client_hooks {
    /* The exchange finished and the connection can take another request. */
    void (*on_idle)(struct pt_h1_client *c, void *arg);
    /* The connection is gone; the pool must forget it. Called once, after
     * which the client frees itself. */
    void (*on_dead)(struct pt_h1_client *c, void *arg);
};

struct pt_h1_client_opts {
    uint32_t connect_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t max_header_bytes; /* response head limit */
    SSL_CTX *ssl_ctx;
    const char *sni;
};

/* Pointer: a connecting client, or NULL with *err. */
struct pt_h1_client *pt_h1_client_new(struct pt_worker *w, const struct sockaddr *addr,
                                      socklen_t addr_len, const struct pt_h1_client_opts *opts,
                                      const struct pt_h1_client_hooks *hooks, void *arg, int *err);
/* Status: 0 (x->up set) or PT_ERR_UPSTREAM_REFUSED when busy or dead. */
int pt_h1_client_start(struct pt_h1_client *c, struct pt_exchange *x,
                       const struct pt_upstream_events *ev);
/* Close an idle connection (pool eviction, shutdown); on_dead follows. */
void pt_h1_client_close(struct pt_h1_client *c);
/* After a 101 response: the transport (with bytes already read past the
 * head) now belongs to the caller; the client frees itself, no on_dead. */
struct pt_conn *pt_h1_client_take_transport(struct pt_h1_client *c);

#endif
