/*
 * http2/client.h - HTTP/2 upstream connections (h2c or h2 over TLS).
 *
 * One nghttp2 client session per pooled connection, multiplexing up to the
 * peer's SETTINGS_MAX_CONCURRENT_STREAMS streams. A stream carries one
 * exchange: the request head and x->req_body go out (DATA deferred while
 * the pipe is empty), the response head goes into x->resp and the body into
 * x->resp_body; the stream's receive window is returned only as the
 * downstream takes bytes, so a slow client slows the backend.
 *
 * Streams the server refuses (RST_STREAM REFUSED_STREAM, or above the
 * last-stream-id of a GOAWAY) end with PT_UP_RETRYABLE so the proxy can
 * send them again on another connection.
 *
 *   connecting ──> open ──GOAWAY received / idle / closed by pool──> draining ──> dead
 *        └──────────────── connect or protocol failure ─────────────────────────> dead
 *
 * Thread: the connection's worker.
 */
#ifndef PT_HTTP2_CLIENT_H
#define PT_HTTP2_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/exchange.h"

struct pt_h2_client;

struct pt_h2_client_hooks {
    /* A stream slot opened (a stream ended or the peer raised its limit). */
    void (*on_capacity)(struct pt_h2_client *c, void *arg);
    /* The connection is gone or going: take it out of the pool. Called once;
     * the client frees itself after its last stream ends. */
    void (*on_dead)(struct pt_h2_client *c, void *arg);
};

struct pt_h2_client_opts {
    uint32_t connect_timeout_ms;
    uint32_t idle_timeout_ms;
    SSL_CTX *ssl_ctx; /* NULL: cleartext (h2c) */
    const char *sni;  /* TLS server name / verification name */
};

/* Pointer: a connecting client, or NULL with *err (socket creation failed). */
struct pt_h2_client *pt_h2_client_new(struct pt_worker *w, const struct sockaddr *addr,
                                      socklen_t addr_len, const struct pt_h2_client_opts *opts,
                                      const struct pt_h2_client_hooks *hooks, void *arg, int *err);
/* True when a new stream may start now. */
bool pt_h2_client_available(const struct pt_h2_client *c);
uint32_t pt_h2_client_active_streams(const struct pt_h2_client *c);
/* False until the server's first SETTINGS arrived (until then a connection
 * takes a single stream). */
bool pt_h2_client_settings_known(const struct pt_h2_client *c);
/*
 * Start the exchange's request on a new stream: pseudo-headers from
 * x->req.method, scheme ("https" when TLS), x->req.authority and
 * x->forward_path; fields from x->req.headers (already prepared for
 * forwarding). Sets x->up. Status: 0, or PT_ERR_UPSTREAM_REFUSED when the
 * connection cannot take it (nothing attached).
 */
int pt_h2_client_start(struct pt_h2_client *c, struct pt_exchange *x,
                       const struct pt_upstream_events *ev);
/* The pool lets go: no new streams; close once the active ones end. */
void pt_h2_client_release(struct pt_h2_client *c);

#endif
