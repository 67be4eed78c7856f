/*
 * http1/server.h - HTTP/1.x downstream connections.
 *
 * One exchange at a time per connection: a pipelined request is parsed only
 * after the previous response is complete, which answers pipelined requests
 * in order without buffering responses. Request bodies stream into
 * x->req_body (reading stops while the pipe is above its high-water mark);
 * responses are framed with Content-Length when known, chunked for
 * HTTP/1.1 otherwise (trailers sent when the client accepts them), or
 * delimited by close for HTTP/1.0.
 *
 *   waiting ──first byte──> head ──on_head──> exchange ──response done──┬─> waiting (keep-alive)
 *     │  (idle timeout)       │ (header timeout: 408)                     └─> closed
 *     └──> closed             └── malformed: 400/431/501 then closed
 *   exchange ──101 + take_transport──> handed to the tunnel
 *
 * Thread: the connection's worker.
 */
#ifndef PT_HTTP1_SERVER_H
#define PT_HTTP1_SERVER_H

#include "http/server.h"
#include "net/conn.h"

/* Pointer: the codec connection (never NULL); it owns conn from now on.
 * tmpl supplies info, limits, on_closed and owner. Input already in
 * conn->in is processed from the next loop iteration. */
struct pt_down_conn *pt_h1_server_new(struct pt_worker *w, struct pt_conn *conn,
                                      const struct pt_down_conn *tmpl);

#endif
