/*
 * http/server.h - what every downstream (server-side) codec connection shares.
 *
 * A codec connection (HTTP/1.1 or HTTP/2) embeds a pt_down_conn. The proxy
 * keeps its worker's pt_down_conns in a list so it can drain them on
 * SIGTERM and count them for limits; the codec calls on_closed() once when
 * it frees itself.
 */
#ifndef PT_HTTP_SERVER_H
#define PT_HTTP_SERVER_H

#include <stdint.h>

#include "http/exchange.h"

/* Resolved limits (defaults applied), copied into each connection at accept
 * so a reload never changes a live connection's limits. */
struct pt_server_limits {
    uint32_t max_header_bytes;
    uint32_t max_headers;
    uint32_t max_concurrent_streams;
    uint32_t idle_timeout_ms;
    uint32_t header_timeout_ms;
    uint32_t max_resets_per_second;
    size_t exchange_arena_bytes; /* memory per exchange (headers, filter state) */
};

struct pt_down_conn;

struct pt_down_conn_ops {
    /* Stop taking new requests: GOAWAY (HTTP/2), Connection: close on the
     * next response or close when idle (HTTP/1.1). */
    void (*drain)(struct pt_down_conn *dc);
    /* Shutdown: close now, ending every exchange (err PT_ERR_SHUTTING_DOWN);
     * on_closed runs before this returns. Not from inside a codec callback. */
    void (*close)(struct pt_down_conn *dc);
};

struct pt_down_conn {
    const struct pt_down_conn_ops *ops;
    struct pt_down_conn *prev;
    struct pt_down_conn *next;
    void (*on_closed)(struct pt_down_conn *dc); /* set by the proxy */
    void *owner;                                /* proxy's per-worker state */
    struct pt_conn_info info;
    struct pt_server_limits limits;
};

#endif
