/*
 * websocket/tunnel.h - a byte tunnel between two connections after a
 * successful HTTP/1.1 Upgrade (101 Switching Protocols).
 *
 * Bytes flow both ways with backpressure (a side stops reading while the
 * other side's output is above the high-water mark) and an idle timeout.
 * When either side closes, what it sent is flushed to the other, which is
 * then closed too, and the exchange ends (pt_exchange_handler->end) with
 * the byte counts in x->bytes_in / bytes_out. The RFC 8441 (HTTP/2
 * extended CONNECT) variant will reuse this with a stream for one side.
 *
 *   open ──EOF/error on either side──> flushing other side ──> ended
 *     └── no byte either way for idle_ms ──────────────────────────┘
 *
 * Thread: the exchange's worker.
 */
#ifndef PT_WEBSOCKET_TUNNEL_H
#define PT_WEBSOCKET_TUNNEL_H

#include <stdatomic.h>
#include <stdint.h>

#include "http/exchange.h"
#include "net/conn.h"

/* Takes ownership of x and both connections (any bytes already read past
 * the upgrade heads are forwarded at once). count, if not NULL, is raised
 * while the tunnel is open (drain accounting). */
void pt_ws_tunnel_start(struct pt_exchange *x, struct pt_conn *down, struct pt_conn *up,
                        uint32_t idle_ms, atomic_uint *count);

/* Shutdown: close every tunnel of the calling worker now (each exchange
 * ends with PT_ERR_SHUTTING_DOWN). */
void pt_ws_tunnel_close_all(void);

#endif
